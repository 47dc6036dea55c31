//! Tests on a real multi-broker Apache Pulsar cluster (`scripts/pulsar-cluster`: ZooKeeper, a
//! bookie, three brokers with the extensible load manager and deduplication, and a proxy), started
//! once for this test binary: lookup redirects, partitions spread over brokers, the proxy, bundle
//! transfers, broker kills, several-host service URLs and a chaos run.
//!
//! The tests take turns on the cluster ([`Cluster::exclusive`]): most of them move topics or kill
//! brokers. Each test works in a namespace of its own, with enough bundles to place each topic on
//! the broker it wants, and with retention, so that stored messages can be counted.

mod chaos;
mod failover;
mod load;
mod moves;
mod placement;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_async::core::TokenAuth;
use pulsar_async::{ClientOptions, ConsumerOptions, InitialPosition, SubscriptionType, TrustRoots};
use pulsar_tests::support::{self, Cluster};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The shared cluster, held for the calling test until the guard drops.
fn take_cluster() -> (&'static Cluster, std::sync::MutexGuard<'static, ()>) {
    let cluster = support::cluster();
    let guard = cluster.exclusive();
    (cluster, guard)
}

/// A namespace of its own for one test, with 16 bundles.
fn namespace(cluster: &Cluster, label: &str) -> Result<String, Box<dyn std::error::Error>> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{label}-{}-{millis}-{n}", std::process::id());
    Ok(cluster.create_namespace(&name, 16)?)
}

/// Topics of `namespace`, topic i owned by broker `owners[i]`: names are drawn until each falls
/// in a bundle of its own (a transfer moves a whole bundle), then each bundle is transferred.
fn place_topics(
    cluster: &Cluster,
    namespace: &str,
    owners: &[usize],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut topics = Vec::new();
    let mut bundles = BTreeSet::new();
    for k in 0.. {
        if topics.len() == owners.len() {
            break;
        }
        if k > 200 {
            return Err("no topic names with distinct bundles".into());
        }
        let topic = format!("persistent://{namespace}/t{k}");
        if bundles.insert(cluster.bundle_of(&topic)?) {
            topics.push(topic);
        }
    }
    for (topic, owner) in topics.iter().zip(owners) {
        cluster.transfer(topic, *owner)?;
    }
    Ok(topics)
}

/// A partitioned topic of `namespace` whose partition i is owned by broker `owners[i]`.
fn place_partitioned(
    cluster: &Cluster,
    namespace: &str,
    owners: &[usize],
) -> Result<String, Box<dyn std::error::Error>> {
    let partitions = u32::try_from(owners.len())?;
    for k in 0..200 {
        let topic = format!("persistent://{namespace}/p{k}");
        let mut bundles = BTreeSet::new();
        let mut distinct = true;
        for i in 0..partitions {
            distinct &= bundles.insert(cluster.bundle_of(&format!("{topic}-partition-{i}"))?);
        }
        if !distinct {
            continue;
        }
        cluster.create_partitioned(&topic, partitions)?;
        for (i, owner) in owners.iter().enumerate() {
            cluster.transfer(&format!("{topic}-partition-{i}"), *owner)?;
        }
        return Ok(topic);
    }
    Err("no partitioned topic name with distinct bundles".into())
}

/// Client options for `url` with the cluster's token and CA, and the timeouts a cluster test
/// wants.
fn options_for(cluster: &Cluster, url: &str) -> ClientOptions {
    let mut o = ClientOptions::new(url);
    o.core.operation_timeout = Duration::from_secs(60);
    let credentials = cluster.credentials();
    if let Some(file) = &credentials.client_token_file {
        o.core.auth = Some(Box::new(TokenAuth::from_file(file)));
    }
    if let Some(ca) = &credentials.tls_ca {
        o.tls.trust = TrustRoots::PemFile(ca.clone());
    }
    o
}

/// `host:port` of a `pulsar://` or `pulsar+ssl://` URL of one host.
fn host_port(url: &str) -> &str {
    url.trim_start_matches("pulsar+ssl://")
        .trim_start_matches("pulsar://")
}

/// The URL a client through the proxy names broker `b` by: its TLS URL when the proxy is on
/// TLS.
fn behind_proxy(cluster: &Cluster, b: usize) -> String {
    let broker = &cluster.brokers()[b];
    match &broker.service_url_tls {
        Some(tls) if cluster.proxy_url().starts_with("pulsar+ssl://") => tls.clone(),
        _ => broker.service_url.clone(),
    }
}

fn consumer_options(sub: &str, t: SubscriptionType) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(sub);
    o.subscription_type = t;
    o.initial_position = InitialPosition::Earliest;
    o
}

pub(crate) use pulsar_tests::per_runtime;
