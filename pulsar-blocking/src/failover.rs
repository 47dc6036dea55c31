//! Cluster-level failover for the blocking client: a thread probes every cluster with blocking
//! TCP connects each check interval and reports to the shared
//! [`FailoverControl`](pulsar_async::failover::FailoverControl), which switches the client's
//! service URL when the policy says so. The thread ends soon after the client closes.

use std::net::{TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use pulsar_async::core::ServiceUrl;
use pulsar_async::failover::FailoverControl;
use pulsar_async::Error;

/// How often a sleeping prober checks whether the client closed.
const CLOSE_CHECK: Duration = Duration::from_millis(100);

/// Starts the prober thread.
pub(crate) fn spawn(control: FailoverControl) -> Result<(), Error> {
    thread::Builder::new()
        .name("pulsar-failover".into())
        .spawn(move || run(control))
        .map(drop)
        .map_err(|e| Error::Runtime(format!("cannot spawn the failover thread: {e}")))
}

fn run(mut control: FailoverControl) {
    let interval = control.config().check_interval;
    let timeout = control.config().probe_timeout;
    let mut next = Instant::now() + interval;
    loop {
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if control.is_closing() {
                return;
            }
            thread::sleep(left.min(CLOSE_CHECK));
        }
        if control.is_closing() {
            return;
        }
        let clusters = control.policy().clusters();
        let results: Vec<bool> = thread::scope(|scope| {
            let probes: Vec<_> = clusters
                .iter()
                .map(|cluster| scope.spawn(move || reachable(cluster, timeout)))
                .collect();
            probes
                .into_iter()
                .map(|p| p.join().unwrap_or(false))
                .collect()
        });
        let now = Instant::now();
        control.report(now, &results);
        next = (next + interval).max(now);
    }
}

/// Whether any host of `cluster` accepts a TCP connection within `timeout`.
fn reachable(cluster: &ServiceUrl, timeout: Duration) -> bool {
    cluster.hosts.iter().any(|host| {
        (host.host.as_str(), host.port)
            .to_socket_addrs()
            .is_ok_and(|mut addrs| addrs.any(|a| TcpStream::connect_timeout(&a, timeout).is_ok()))
    })
}
