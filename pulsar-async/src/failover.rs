//! Cluster-level failover, the probing side: [`FailoverControl`] feeds the core's
//! [`ClusterFailover`] policy with probe results and switches the client's service URL when it
//! says so. The async client runs it in a task of its runtime (`spawn`); `pulsar-blocking` runs
//! it in a thread of its own with blocking probes.
//!
//! A probe is a TCP connection to each host of a cluster's service URL, closed at once: a cluster
//! is reachable when any host accepts within the probe timeout (the Java client's
//! `AutoClusterFailover` probes the same way).

use std::sync::Arc;
use std::time::Instant;

use futures::future::{join_all, poll_fn, select, Either};
use pulsar_core::{ClusterFailover, ClusterFailoverConfig, ServiceUrl};

use crate::error::Error;
use crate::runtime::Runtime;
use crate::state::Shared;

/// Switches a client between clusters as its [`ClusterFailover`] policy decides. It holds the
/// client's state without keeping the client alive: once the client closes,
/// [`is_closing`](Self::is_closing) says so and the prober stops.
#[derive(Debug)]
pub struct FailoverControl {
    shared: Shared,
    policy: ClusterFailover,
}

impl FailoverControl {
    pub(crate) fn new(shared: Shared, policy: ClusterFailover) -> FailoverControl {
        FailoverControl { shared, policy }
    }

    /// The policy (its clusters, in the order [`report`](Self::report) wants, and its delays).
    pub fn policy(&self) -> &ClusterFailover {
        &self.policy
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterFailoverConfig {
        self.policy.config()
    }

    /// Whether the client is closing or closed: the prober should stop.
    pub fn is_closing(&self) -> bool {
        self.shared.with(|st| st.client_closing())
    }

    /// Takes one round of probes (`reachable[i]` for the policy's `clusters()[i]`) made at `now`
    /// and switches the client if the policy says so; returns the URL switched to.
    pub fn report(&mut self, now: Instant, reachable: &[bool]) -> Option<String> {
        let url = self.policy.on_probes(now, reachable)?;
        match self.shared.with(|st| st.set_service_url(&url)) {
            Ok(_) => {
                tracing::warn!(
                    service_url = %url,
                    primary = self.policy.on_primary(),
                    "cluster failover: switched the client to another cluster"
                );
                Some(url)
            }
            Err(e) => {
                tracing::warn!(service_url = %url, error = %e, "cluster failover: switch refused");
                None
            }
        }
    }
}

/// Runs `control` in a task of `runtime` until the client closes.
pub(crate) fn spawn(runtime: Arc<dyn Runtime>, control: FailoverControl) -> Result<(), Error> {
    let task = run(runtime.clone(), control);
    runtime.spawn(Box::pin(task)).map_err(Error::Runtime)
}

async fn run(runtime: Arc<dyn Runtime>, mut control: FailoverControl) {
    let interval = control.config().check_interval;
    let timeout = control.config().probe_timeout;
    let mut next = runtime.now() + interval;
    loop {
        sleep_until(&*runtime, next).await;
        if control.is_closing() {
            return;
        }
        let probes = control
            .policy()
            .clusters()
            .iter()
            .map(|cluster| reachable(&runtime, cluster, timeout));
        let results = join_all(probes).await;
        if control.is_closing() {
            return;
        }
        let now = runtime.now();
        control.report(now, &results);
        next = (next + interval).max(now);
    }
}

async fn sleep_until(runtime: &dyn Runtime, deadline: Instant) {
    let mut timer = runtime.timer(deadline);
    poll_fn(|cx| timer.as_mut().poll(cx)).await;
}

/// Whether any host of `cluster` accepts a TCP connection within `timeout`.
async fn reachable(
    runtime: &Arc<dyn Runtime>,
    cluster: &ServiceUrl,
    timeout: std::time::Duration,
) -> bool {
    let attempts = cluster.hosts.iter().map(|host| {
        let connect = runtime.connect(host.host.clone(), host.port);
        let deadline = runtime.now() + timeout;
        async move {
            let mut timer = runtime.timer(deadline);
            let expired = poll_fn(move |cx| timer.as_mut().poll(cx));
            match select(connect, Box::pin(expired)).await {
                Either::Left((Ok(_io), _)) => true,
                Either::Left((Err(_), _)) | Either::Right(_) => false,
            }
        }
    });
    join_all(attempts).await.into_iter().any(|up| up)
}
