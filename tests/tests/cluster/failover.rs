//! Cluster-level failover (the Java client's `AutoClusterFailover`) between two real clusters:
//! the multi-broker cluster behind its proxy (primary) and the standalone test broker, a cluster
//! of its own (secondary). Killing the proxy makes the primary unreachable: the client switches to
//! the standalone after the failover delay and keeps producing there; when the proxy is back, it
//! switches back after the switch-back delay.

use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::Duration;

use pulsar_async::core::ClusterFailoverConfig;
use pulsar_async::{Event, ProducerOptions, SubscriptionType};
use pulsar_tests::facade::{Env, TClient};
use pulsar_tests::support;

use crate::load::{numbers, stored, Producing};
use crate::{consumer_options, options_for, per_runtime, take_cluster, TestResult};

per_runtime!(fails_over_to_another_cluster_and_back);

/// A durable subscription on `topic`, so that what is stored stays countable.
fn keep(client: &TClient, topic: &str) -> TestResult {
    client
        .consumer(topic, consumer_options("keep", SubscriptionType::Exclusive))?
        .close()?;
    Ok(())
}

fn switched_to(url: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::ServiceUrlChanged { url: to } if to == url)
}

fn fails_over_to_another_cluster_and_back(env: Env) -> TestResult {
    let (cluster, _turn) = take_cluster();
    let standalone = support::broker();
    let primary = cluster.proxy_url().to_owned();
    let secondary = standalone.service_url.clone();
    let local = support::unique_topic(&format!("failover-{:?}", env.rt).to_lowercase());
    let topic = local.as_str();
    let on_primary = env.client(options_for(cluster, &primary))?;
    let on_secondary = env.client(options_for(cluster, &secondary))?;
    keep(&on_primary, topic)?;
    keep(&on_secondary, topic)?;

    let mut options = options_for(cluster, &primary);
    options.cluster_failover = Some(
        ClusterFailoverConfig::new(&primary, [&secondary])
            .failover_delay(Duration::from_secs(1))
            .switch_back_delay(Duration::from_secs(2))
            .check_interval(Duration::from_millis(200))
            .probe_timeout(Duration::from_secs(1)),
    );
    let client = env.client(options)?;
    let mut events = client.events();
    let producer = client.producer_with(
        topic,
        ProducerOptions::default().with_send_timeout(Duration::ZERO),
        true,
    )?;
    let tag = "failover";
    let producing = Producing::start(producer, tag, Duration::from_millis(20));
    sleep(Duration::from_millis(1500));

    cluster.kill_proxy()?;
    let (failed_over, seen) = events.wait_for(Duration::from_secs(30), switched_to(&secondary));
    assert!(failed_over, "switched to the secondary: {seen:?}");
    sleep(Duration::from_secs(2));
    cluster.start_proxy()?;
    let (back, seen) = events.wait_for(Duration::from_secs(30), switched_to(&primary));
    assert!(back, "switched back to the primary: {seen:?}");
    sleep(Duration::from_secs(2));
    let produced = producing.finish()?;

    assert!(
        produced.failures.is_empty(),
        "no send failed: {:?}",
        produced.failures.first()
    );
    assert_eq!(
        produced.receipts.len() as u64,
        produced.sent,
        "every send has its receipt"
    );
    let in_primary = numbers(tag, &stored(&on_primary, topic)?);
    let in_secondary = numbers(tag, &stored(&on_secondary, topic)?);
    // Each cluster holds its messages in the order sent (the primary deduplicates; messages in
    // flight at a switch may be in both clusters).
    assert!(
        in_primary.windows(2).all(|w| w[0] < w[1]),
        "the primary holds its messages once each, in order"
    );
    let mut first_seen = BTreeSet::new();
    let secondary_firsts: Vec<u64> = in_secondary
        .iter()
        .copied()
        .filter(|n| first_seen.insert(*n))
        .collect();
    assert!(
        secondary_firsts.windows(2).all(|w| w[0] < w[1]),
        "the secondary holds its messages in order"
    );
    let all: BTreeSet<u64> = in_primary.iter().chain(&in_secondary).copied().collect();
    assert!(
        (0..produced.sent).all(|n| all.contains(&n)),
        "every message is stored in one cluster or the other"
    );
    assert!(
        !in_secondary.is_empty(),
        "messages went to the secondary during the outage"
    );
    let last = produced.sent - 1;
    assert!(
        in_primary.contains(&last) && in_primary.first() == Some(&0),
        "the first and the last messages went to the primary"
    );
    eprintln!(
        "cluster failover ({:?}): {} messages, {} in the primary, {} in the secondary",
        env.rt,
        produced.sent,
        in_primary.len(),
        in_secondary.len()
    );
    client.close()?;
    on_primary.close()?;
    on_secondary.close()?;
    Ok(())
}
