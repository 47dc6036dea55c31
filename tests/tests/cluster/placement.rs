//! Where topics live: lookup redirects, partitions spread over brokers (one connection per
//! broker), the proxy in front of all of them, and service URLs whose first host is down.

use std::collections::BTreeSet;
use std::net::TcpListener;

use pulsar_async::core::ServerErrorCode;
use pulsar_async::{MessageId, OutgoingMessage, ReaderOptions, SubscriptionType};
use pulsar_tests::facade::{Env, TClient};

use crate::load::text;
use crate::{
    behind_proxy, consumer_options, host_port, namespace, options_for, per_runtime,
    place_partitioned, place_topics, take_cluster, TestResult,
};

per_runtime!(
    redirects_and_partitions_spread,
    through_the_proxy,
    first_host_down
);

/// Sends `count` messages `"{tag}-{n}"` to `topic` and receives them on a new subscription.
fn round_trip(client: &TClient, topic: &str, tag: &str, count: usize) -> TestResult {
    let mut consumer = client.consumer(topic, consumer_options("sub", SubscriptionType::Shared))?;
    let producer = client.producer(topic)?;
    let mut expected = BTreeSet::new();
    for n in 0..count {
        let payload = format!("{tag}-{n}");
        producer.send(OutgoingMessage::new(payload.clone().into_bytes()))?;
        expected.insert(payload);
    }
    let mut got = BTreeSet::new();
    while got.len() < count {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
        got.insert(text(&m));
    }
    assert_eq!(got, expected, "{topic}: received what was sent");
    producer.close()?;
    consumer.close()?;
    Ok(())
}

/// A client given broker 0 alone uses topics owned by brokers 1 and 2 (the lookups redirect it),
/// and a partitioned topic with a partition on each broker: one connection per broker.
fn redirects_and_partitions_spread(env: Env) -> TestResult {
    let (cluster, _turn) = take_cluster();
    let ns = namespace(cluster, &format!("spread-{:?}", env.rt).to_lowercase())?;
    let topics = place_topics(cluster, &ns, &[0, 1, 2])?;
    let partitioned = place_partitioned(cluster, &ns, &[2, 0, 1])?;

    let client = env.client(options_for(cluster, &cluster.brokers()[0].service_url))?;
    for (i, topic) in topics.iter().enumerate() {
        round_trip(&client, topic, &format!("owned-by-{i}"), 10)?;
    }
    round_trip(&client, &partitioned, "partitioned", 30)?;

    let stats = client.stats();
    let addresses: Vec<String> = stats
        .connections
        .iter()
        .map(|c| format!("pulsar://{}", c.address.host_port()))
        .collect();
    let expected: BTreeSet<String> = cluster
        .brokers()
        .iter()
        .map(|b| b.service_url.clone())
        .collect();
    assert_eq!(
        addresses.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "a connection to each broker"
    );
    assert_eq!(
        addresses.len(),
        3,
        "one connection per broker: {addresses:?}"
    );
    assert!(
        stats.counters.lookups >= 6,
        "lookups for 3 topics and 3 partitions: {}",
        stats.counters.lookups
    );
    client.close()?;
    Ok(())
}

/// Through the proxy alone: producers, consumers, a reader and a partitioned topic on topics of
/// all three brokers. Every socket goes to the proxy; the connections name the brokers behind it.
fn through_the_proxy(env: Env) -> TestResult {
    let (cluster, _turn) = take_cluster();
    let ns = namespace(cluster, &format!("proxy-{:?}", env.rt).to_lowercase())?;
    let topics = place_topics(cluster, &ns, &[0, 1, 2])?;
    let partitioned = place_partitioned(cluster, &ns, &[1, 2, 0])?;

    let client = env.client(options_for(cluster, cluster.proxy_url()))?;
    for (i, topic) in topics.iter().enumerate() {
        round_trip(&client, topic, &format!("proxied-{i}"), 10)?;
    }
    round_trip(&client, &partitioned, "proxied-partitioned", 30)?;

    // A reader reads one of the topics again from the start.
    let mut reader = client.reader(&topics[2], ReaderOptions::new(MessageId::EARLIEST))?;
    let mut read = Vec::new();
    while reader.has_message_available()? {
        read.push(text(&reader.receive()?));
    }
    let expected: Vec<String> = (0..10).map(|n| format!("proxied-2-{n}")).collect();
    assert_eq!(read, expected, "the reader reads the topic in order");

    let stats = client.stats();
    let proxy = host_port(cluster.proxy_url());
    assert!(
        stats
            .connections
            .iter()
            .all(|c| c.address.host_port() == proxy),
        "every socket goes to the proxy: {:?}",
        stats.connections
    );
    let behind: BTreeSet<String> = stats
        .connections
        .iter()
        .map(|c| c.logical_address.host_port())
        .collect();
    for b in 0..cluster.brokers().len() {
        let broker = behind_proxy(cluster, b);
        assert!(
            behind.contains(host_port(&broker)),
            "a connection through the proxy to {broker}: {behind:?}"
        );
    }
    client.close()?;
    Ok(())
}

/// A service URL whose first host refuses connections: the client goes on to the next hosts.
fn first_host_down(env: Env) -> TestResult {
    let (cluster, _turn) = take_cluster();
    let ns = namespace(cluster, &format!("down-{:?}", env.rt).to_lowercase())?;
    let topics = place_topics(cluster, &ns, &[1])?;
    let dead_port = {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let hosts: Vec<&str> = cluster.brokers()[1..]
        .iter()
        .map(|b| b.service_url.trim_start_matches("pulsar://"))
        .collect();
    let url = format!("pulsar://127.0.0.1:{dead_port},{}", hosts.join(","));
    for attempt in 0..3 {
        let client = env.client(options_for(cluster, &url))?;
        round_trip(&client, &topics[0], &format!("first-down-{attempt}"), 5)?;
        client.close()?;
    }
    Ok(())
}

/// The cluster authenticates, directly and through the proxy: a client without a token is
/// refused with an authentication error, and one with it gets through (the other tests).
#[test]
fn a_client_without_a_token_is_refused() -> TestResult {
    let (cluster, _turn) = take_cluster();
    assert!(
        cluster.credentials().client_token_file.is_some(),
        "the test cluster authenticates"
    );
    let env = pulsar_tests::facade::Env::new(pulsar_tests::facade::Rt::Blocking);
    for url in [
        cluster.brokers()[0].service_url.as_str(),
        cluster.proxy_url(),
    ] {
        let mut options = options_for(cluster, url);
        options.core.auth = None;
        options.core.operation_timeout = std::time::Duration::from_secs(10);
        let client = env.client(options)?;
        let refused = client
            .producer("persistent://public/default/no-token")
            .expect_err("no token: refused");
        let code = match &refused {
            pulsar_async::Error::Client(e) => e.server_code(),
            _ => None,
        };
        assert_eq!(
            code,
            Some(ServerErrorCode::AuthenticationError),
            "{url}: refused for authentication: {refused}"
        );
        client.close()?;
    }
    Ok(())
}
