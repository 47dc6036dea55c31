//! The runtime adapters against the real broker: every test body runs once per runtime (tokio,
//! smol, blocking) through a small facade (`TClient`, `TProducer`, ...) that calls the adapter's
//! own API — the async adapters' futures and `Stream`s, the blocking adapter's blocking calls.
//!
//! Brokers: the shared broker on 127.0.0.1:6650 for most tests; a broker owned by the test for
//! the restart test; a shared mTLS broker from the broker script for the TLS tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pulsar_async::core::ServerErrorCode;
use pulsar_async::{
    BatchingOptions, ClientEvent, ClientOptions, ConsumerOptions, Error, Event, InitialPosition,
    Message, MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SeekTo, SendError,
    SubscriptionType,
};
use pulsar_tests::facade::{Env, Rt, TConsumer, TReceipt, RECEIVE};
use pulsar_tests::per_runtime;
use pulsar_tests::support::{self, unique_topic, Admin, BrokerOptions, BrokerProcess};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

// ------------------------------------------------------------------------------------- facade

/// Client options for the shared broker.
fn options() -> ClientOptions {
    let broker = support::broker();
    options_for(&broker.service_url)
}

fn options_for(url: &str) -> ClientOptions {
    let mut o = ClientOptions::new(url);
    o.core.operation_timeout = Duration::from_secs(30);
    o
}

fn consumer_topic(c: &TConsumer) -> String {
    match c {
        TConsumer::Async(_, c) => c.topic().to_string(),
        TConsumer::Blocking(c) => c.topic().to_string(),
    }
}

/// Polls `check` every 20 ms until it holds or `d` passes.
fn eventually(d: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn msg(payload: impl Into<String>) -> OutgoingMessage {
    OutgoingMessage::new(payload.into().into_bytes())
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

fn consumer_options(sub: &str, t: SubscriptionType) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(sub);
    o.subscription_type = t;
    o.initial_position = InitialPosition::Earliest;
    o
}

fn admin() -> Admin {
    support::admin().expect("admin client")
}

/// Publishers of a topic, from the admin REST stats.
fn publishers(admin: &Admin, topic: &str) -> usize {
    admin
        .topic_stats(topic)
        .ok()
        .and_then(|s| s.get("publishers").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(usize::MAX)
}

/// Consumers of a subscription, from the admin REST stats.
fn sub_consumers(admin: &Admin, topic: &str, sub: &str) -> usize {
    admin
        .topic_stats(topic)
        .ok()
        .and_then(|s| {
            s.get("subscriptions")?
                .get(sub)?
                .get("consumers")?
                .as_array()
                .map(Vec::len)
        })
        .unwrap_or(usize::MAX)
}

per_runtime!(
    round_trip,
    exclusive_and_failover,
    shared_and_key_shared,
    backpressure_waits,
    backpressure_fails_fast,
    memory_limit_backpressure,
    graceful_close,
    drop_closes_on_the_broker,
    client_requests,
    partitioned_batched_and_multi_topic,
    readers_and_seek,
    negative_ack_redelivers,
    tls_verified_and_mutual,
    tls_wrong_ca_fails_clearly,
    tls_required_refuses_plain_urls,
    large_payloads_arrive_intact,
);

// -------------------------------------------------------------------------------------- tests

/// Produce (awaiting each receipt, then many in flight), consume in order with keys, properties
/// and event times, acknowledge (the backlog drains on the broker), and read everything again
/// from the start with a non-durable subscription.
fn round_trip(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-roundtrip-{:?}", env.rt));
    let client = env.client(options())?;
    let mut consumer =
        client.consumer(&topic, consumer_options("sub", SubscriptionType::Exclusive))?;
    let producer = client.producer(&topic)?;
    assert!(!producer.name().is_empty(), "the broker names the producer");

    let message = |i: usize| {
        msg(format!("message {i}"))
            .with_key(format!("key-{}", i % 3))
            .with_property("index", i.to_string())
    };
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(producer.send(message(i))?);
    }
    let receipts = (10..30)
        .map(|i| producer.send_async(message(i)))
        .collect::<Result<Vec<_>, _>>()?;
    for r in receipts {
        ids.push(r.wait()?);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    for (i, id) in ids.iter().enumerate() {
        let m = consumer.receive()?;
        assert_eq!(text(&m), format!("message {i}"));
        assert_eq!(m.key.as_deref(), Some(format!("key-{}", i % 3).as_str()));
        assert_eq!(m.properties, vec![("index".to_string(), i.to_string())]);
        assert_eq!(m.id.ledger_id, id.ledger_id);
        assert_eq!(m.id.entry_id, id.entry_id);
        assert!(m.publish_time > 0);
        consumer.ack(&m)?;
    }
    assert!(
        consumer
            .receive_timeout(Duration::from_millis(300))?
            .is_none(),
        "nothing more"
    );
    let admin = admin();
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| Ok(a
            .subscription_backlog(&topic, "sub")?
            == 0)),
        "acknowledgements reach the broker"
    );

    // Read it all again from the start.
    let mut read = consumer_options("reader", SubscriptionType::Exclusive);
    read.durable = false;
    let mut reader = client.consumer(&topic, read)?;
    for i in 0..30 {
        assert_eq!(text(&reader.receive()?), format!("message {i}"));
    }

    let stats = client.stats();
    assert!(!stats.connections.is_empty());
    assert_eq!(stats.producers.len(), 1);
    assert_eq!(stats.consumers.len(), 2);
    assert!(stats.counters.bytes_in > 0 && stats.counters.bytes_out > 0);

    producer.close()?;
    consumer.close()?;
    reader.close()?;
    client.close()?;
    assert!(client.is_closed());
    Ok(())
}

/// Exclusive: a second consumer is refused with ConsumerBusy. Failover: every message goes to
/// the one active consumer.
fn exclusive_and_failover(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-excl-{:?}", env.rt));
    let client = env.client(options())?;
    let _first = client.consumer(&topic, consumer_options("ex", SubscriptionType::Exclusive))?;
    match client.consumer(&topic, consumer_options("ex", SubscriptionType::Exclusive)) {
        Err(Error::Client(e)) => assert_eq!(e.server_code(), Some(ServerErrorCode::ConsumerBusy)),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("two exclusive consumers on one subscription"),
    }

    let mut a = client.consumer(&topic, consumer_options("fo", SubscriptionType::Failover))?;
    let mut b = client.consumer(&topic, consumer_options("fo", SubscriptionType::Failover))?;
    let producer = client.producer(&topic)?;
    for i in 0..20 {
        producer.send(msg(format!("f{i}")))?;
    }
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + RECEIVE;
    while got_a.len() + got_b.len() < 20 && Instant::now() < deadline {
        if let Some(m) = a.receive_timeout(Duration::from_millis(100))? {
            a.ack(&m)?;
            got_a.push(text(&m));
        }
        if let Some(m) = b.receive_timeout(Duration::from_millis(100))? {
            b.ack(&m)?;
            got_b.push(text(&m));
        }
    }
    let expected: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    assert!(
        (got_a == expected && got_b.is_empty()) || (got_b == expected && got_a.is_empty()),
        "failover: one consumer gets everything in order: {got_a:?} / {got_b:?}"
    );
    client.close()?;
    Ok(())
}

/// Shared: messages spread over both consumers, none lost or duplicated. Key_Shared: each key
/// goes to exactly one consumer.
fn shared_and_key_shared(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-shared-{:?}", env.rt));
    let client = env.client(options())?;
    let small_queue = |sub: &str, t: SubscriptionType| {
        let mut o = consumer_options(sub, t);
        o.receiver_queue_size = 4;
        o
    };
    let mut s1 = client.consumer(&topic, small_queue("sh", SubscriptionType::Shared))?;
    let mut s2 = client.consumer(&topic, small_queue("sh", SubscriptionType::Shared))?;
    let mut k1 = client.consumer(&topic, small_queue("ks", SubscriptionType::KeyShared))?;
    let mut k2 = client.consumer(&topic, small_queue("ks", SubscriptionType::KeyShared))?;

    let producer = client.producer(&topic)?;
    let receipts = (0..60)
        .map(|i| producer.send_async(msg(format!("m{i}")).with_key(format!("key{}", i % 6))))
        .collect::<Result<Vec<_>, _>>()?;
    for r in receipts {
        r.wait()?;
    }

    let drain = |c1: &mut TConsumer, c2: &mut TConsumer| -> Result<[Vec<Message>; 2], Error> {
        let mut got = [Vec::new(), Vec::new()];
        let deadline = Instant::now() + RECEIVE;
        while got[0].len() + got[1].len() < 60 && Instant::now() < deadline {
            for (i, c) in [&mut *c1, &mut *c2].into_iter().enumerate() {
                if let Some(m) = c.receive_timeout(Duration::from_millis(50))? {
                    c.ack(&m)?;
                    got[i].push(m);
                }
            }
        }
        Ok(got)
    };

    let [a, b] = drain(&mut s1, &mut s2)?;
    assert!(
        !a.is_empty() && !b.is_empty(),
        "shared: both consumers get messages ({} / {})",
        a.len(),
        b.len()
    );
    let all: BTreeSet<String> = a.iter().chain(&b).map(text).collect();
    assert_eq!(all.len(), 60, "shared: every message exactly once");
    assert_eq!(a.len() + b.len(), 60);

    let [a, b] = drain(&mut k1, &mut k2)?;
    assert_eq!(a.len() + b.len(), 60, "key_shared: every message");
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, got) in [&a, &b].into_iter().enumerate() {
        for m in got {
            let key = m.key.clone().unwrap_or_default();
            let previous = owner.insert(key.clone(), i);
            assert!(
                previous.is_none() || previous == Some(i),
                "key {key} went to both consumers"
            );
        }
    }
    assert_eq!(owner.len(), 6);
    // Per key, order is kept.
    for got in [&a, &b] {
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for m in got {
            let n: usize = text(m)[1..].parse()?;
            let key = m.key.clone().unwrap_or_default();
            if let Some(prev) = last.insert(key, n) {
                assert!(prev < n, "key_shared keeps per-key order");
            }
        }
    }
    client.close()?;
    Ok(())
}

/// A producer allowed 3 pending messages sends 200 without waiting for receipts: each send waits
/// for room, the pending queue never exceeds 3, and every message arrives once, in order.
fn backpressure_waits(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-bp-{:?}", env.rt));
    let client = env.client(options())?;
    let mut consumer =
        client.consumer(&topic, consumer_options("bp", SubscriptionType::Exclusive))?;
    let mut po = ProducerOptions::default();
    po.max_pending_messages = 3;
    let producer = client.producer_with(&topic, po, true)?;
    let mut receipts = Vec::new();
    let mut max_pending = 0;
    for i in 0..200 {
        receipts.push(producer.send_async(msg(format!("bp{i}")))?);
        max_pending = max_pending.max(producer.pending());
    }
    assert!(max_pending <= 3, "pending queue bounded: {max_pending}");
    producer.flush()?;
    assert_eq!(producer.pending(), 0, "flush waits for every receipt");
    let ids = receipts
        .into_iter()
        .map(TReceipt::wait)
        .collect::<Result<Vec<_>, _>>()?;
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for i in 0..200 {
        let m = consumer.receive()?;
        assert_eq!(text(&m), format!("bp{i}"));
        consumer.ack(&m)?;
    }
    assert!(consumer
        .receive_timeout(Duration::from_millis(200))?
        .is_none());
    client.close()?;
    Ok(())
}

/// The same producer configured to fail fast: a full queue is a typed `QueueFull` error at once,
/// and every accepted message arrives (nothing silently dropped).
fn backpressure_fails_fast(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-ff-{:?}", env.rt));
    let client = env.client(options())?;
    let mut consumer =
        client.consumer(&topic, consumer_options("ff", SubscriptionType::Exclusive))?;
    let mut po = ProducerOptions::default();
    po.max_pending_messages = 2;
    let producer = client.producer_with(&topic, po, false)?;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..50 {
        let m = msg(format!("ff{i}"));
        // Both entry points: the waiting one must not wait on a fail-fast producer.
        let r = if i % 2 == 0 {
            producer.try_send(m)
        } else {
            producer.send_async(m)
        };
        match r {
            Ok(r) => accepted.push((i, r)),
            Err(Error::Send(SendError::QueueFull)) => refused += 1,
            Err(e) => return Err(e.into()),
        }
    }
    assert!(
        refused > 0,
        "a queue of 2 refuses some of 50 immediate sends"
    );
    assert!(accepted.len() >= 2);
    let expected: Vec<String> = accepted.iter().map(|(i, _)| format!("ff{i}")).collect();
    for (_, r) in accepted {
        r.wait()?;
    }
    for e in &expected {
        assert_eq!(&text(&consumer.receive()?), e);
    }
    assert!(consumer
        .receive_timeout(Duration::from_millis(300))?
        .is_none());
    client.close()?;
    Ok(())
}

/// The client-wide memory limit: sends of a blocking producer wait for room (every message gets
/// through); a fail-fast producer gets the typed `MemoryLimit` error.
fn memory_limit_backpressure(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-mem-{:?}", env.rt));
    let mut o = options();
    o.core.memory_limit = 4 * 1024;
    let client = env.client(o)?;
    let mut consumer =
        client.consumer(&topic, consumer_options("mem", SubscriptionType::Exclusive))?;
    let producer = client.producer(&topic)?;
    let payload = |i: usize| format!("{i:04}").repeat(256);
    let receipts = (0..100)
        .map(|i| producer.send_async(msg(payload(i))))
        .collect::<Result<Vec<_>, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    for i in 0..100 {
        let m = consumer.receive()?;
        assert_eq!(text(&m), payload(i));
        consumer.ack(&m)?;
    }

    let mut po = ProducerOptions::default();
    po.max_pending_messages = 1000;
    let fast = client.producer_with(&topic, po, false)?;
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..50 {
        match fast.try_send(msg(payload(i))) {
            Ok(r) => accepted.push(r),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    match refused {
        Some(Error::Send(SendError::MemoryLimit { limit })) => assert_eq!(limit, 4096),
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    assert!(!accepted.is_empty() && accepted.len() <= 5);
    for r in accepted {
        r.wait()?;
    }
    client.close()?;
    Ok(())
}

/// Closing the client with sends in flight completes them, closes everything on the broker,
/// ends the event stream with `ClientClosed`, and makes later calls fail with "closed".
fn graceful_close(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-close-{:?}", env.rt));
    let client = env.client(options())?;
    let mut events = client.events();
    let mut consumer =
        client.consumer(&topic, consumer_options("c", SubscriptionType::Exclusive))?;
    let producer = client.producer(&topic)?;
    let receipts = (0..50)
        .map(|i| producer.send_async(msg(format!("c{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    client.close()?;
    assert!(client.is_closed());
    for r in receipts {
        r.wait()?;
    }
    let (closed, seen) =
        events.wait_for(Duration::from_secs(5), |e| matches!(e, Event::ClientClosed));
    assert!(closed, "ClientClosed on the event stream: {seen:?}");
    assert!(
        events.next_timeout(Duration::from_secs(1)).is_none(),
        "the stream ends"
    );

    match producer.send(msg("late")) {
        Err(e) => assert!(e.is_closed(), "closed error, got {e}"),
        Ok(id) => panic!("send after close succeeded: {id}"),
    }
    assert!(consumer
        .receive_timeout(Duration::from_millis(200))
        .is_err());

    let admin = admin();
    assert!(admin.wait_until(Duration::from_secs(10), |a| Ok(
        publishers(a, &topic) == 0 && sub_consumers(a, &topic, "c") == 0
    )));
    // Every message of the close is stored.
    let check = env.client(options())?;
    let mut reader = check.consumer(
        &topic,
        consumer_options("check", SubscriptionType::Exclusive),
    )?;
    for i in 0..50 {
        assert_eq!(text(&reader.receive()?), format!("c{i}"));
    }
    check.close()?;
    Ok(())
}

/// Dropping a producer or consumer closes it on the broker; dropping the last handle of a
/// client closes everything it had.
fn drop_closes_on_the_broker(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-drop-{:?}", env.rt));
    let admin = admin();
    let client = env.client(options())?;
    let producer = client.producer(&topic)?;
    let consumer = client.consumer(&topic, consumer_options("d", SubscriptionType::Shared))?;
    assert_eq!(publishers(&admin, &topic), 1);
    assert_eq!(sub_consumers(&admin, &topic, "d"), 1);
    producer.send(msg("before drop"))?;

    drop(producer);
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| Ok(publishers(a, &topic) == 0)),
        "dropped producer closed on the broker"
    );
    drop(consumer);
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| Ok(sub_consumers(
            a, &topic, "d"
        ) == 0)),
        "dropped consumer closed on the broker"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            let stats = client.stats();
            stats.producers.is_empty() && stats.consumers.is_empty()
        }),
        "the client forgot them once the broker answered"
    );

    // Handles keep the client alive; the last one closes it.
    let producer = client.producer(&topic)?;
    let consumer = client.consumer(&topic, consumer_options("d", SubscriptionType::Shared))?;
    assert_eq!(publishers(&admin, &topic), 1);
    drop(client);
    producer.send(msg("after the client handle is gone"))?;
    drop(producer);
    drop(consumer);
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| Ok(
            publishers(a, &topic) == 0 && sub_consumers(a, &topic, "d") == 0
        )),
        "the client closed with its last handle"
    );
    Ok(())
}

/// Lookup-level requests: partition count and namespace listing.
fn client_requests(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-req-{:?}", env.rt));
    support::create_partitioned(&topic, 3)?;
    let client = env.client(options())?;
    assert_eq!(client.partitions(&topic)?, 3);
    let plain = unique_topic(&format!("rt-req-plain-{:?}", env.rt));
    client.producer(&plain)?.send(msg("x"))?;
    assert_eq!(client.partitions(&plain)?, 0);
    let topics = client.topics_of_namespace("public/default")?;
    assert!(topics.contains(&plain), "{plain} listed");
    client.close()?;
    Ok(())
}

/// A partitioned topic: a batched producer with keys spreads messages over the partitions, a
/// consumer of the partitioned topic gets them all (per key in order), a multi-topic consumer
/// gets the partitioned topic's and a plain topic's messages, and acknowledgements of batched
/// messages from several partitions drain the backlog.
fn partitioned_batched_and_multi_topic(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-part-{:?}", env.rt));
    let plain = unique_topic(&format!("rt-part-plain-{:?}", env.rt));
    support::create_partitioned(&topic, 3)?;
    let client = env.client(options())?;
    let mut consumer = client.consumer(&topic, consumer_options("p", SubscriptionType::Shared))?;
    let mut multi = client.consumer_topics(
        &[topic.clone(), plain.clone()],
        consumer_options("multi", SubscriptionType::Shared),
    )?;
    let mut po = ProducerOptions::default();
    po.batching = BatchingOptions::enabled();
    let producer = client.producer_with(&topic, po, true)?;
    let receipts = (0..90)
        .map(|i| producer.send_async(msg(format!("p{i}")).with_key(format!("k{}", i % 9))))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = receipts
        .into_iter()
        .map(TReceipt::wait)
        .collect::<Result<Vec<_>, _>>()?;
    let partitions: BTreeSet<i32> = ids.iter().map(|id| id.partition).collect();
    assert!(
        partitions.len() >= 2,
        "keys spread over partitions: {partitions:?}"
    );
    assert!(partitions.iter().all(|p| (0..3).contains(p)));
    assert!(
        ids.iter().any(|id| id.batch_index >= 0),
        "batching produced batched ids"
    );
    client.producer(&plain)?.send(msg("plain"))?;

    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for _ in 0..90 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
        per_key
            .entry(m.key.clone().unwrap_or_default())
            .or_default()
            .push(text(&m)[1..].parse()?);
    }
    assert_eq!(per_key.values().map(Vec::len).sum::<usize>(), 90);
    for (key, seen) in &per_key {
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "key {key} in order: {seen:?}"
        );
    }
    let mut got = BTreeSet::new();
    for _ in 0..91 {
        let m = multi.receive()?;
        multi.ack(&m)?;
        got.insert(text(&m));
    }
    assert_eq!(got.len(), 91);
    assert!(got.contains("plain"));
    let admin = admin();
    assert!(
        admin.wait_until(Duration::from_secs(10), |a| {
            let mut backlog = 0;
            for p in 0..3 {
                backlog += a.subscription_backlog(&format!("{topic}-partition-{p}"), "p")?;
            }
            Ok(backlog == 0)
        }),
        "acks of batched messages on every partition reach the broker"
    );
    client.close()?;
    Ok(())
}

/// Readers from the earliest message and from a message id (exclusive and inclusive),
/// `has_message_available`, and seeking a reader and a consumer back to the start.
fn readers_and_seek(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-reader-{:?}", env.rt));
    let client = env.client(options())?;
    let producer = client.producer(&topic)?;
    let ids = (0..10)
        .map(|i| producer.send(msg(format!("r{i}"))))
        .collect::<Result<Vec<_>, _>>()?;

    let mut from_start = client.reader(&topic, ReaderOptions::new(MessageId::EARLIEST))?;
    for i in 0..10 {
        assert!(from_start.has_message_available()?);
        assert_eq!(text(&from_start.receive()?), format!("r{i}"));
    }
    assert!(!from_start.has_message_available()?, "everything read");
    from_start.seek(SeekTo::Id(MessageId::EARLIEST))?;
    assert_eq!(text(&from_start.receive()?), "r0", "seek back to the start");

    let mut after = client.reader(&topic, ReaderOptions::new(ids[4]))?;
    assert_eq!(text(&after.receive()?), "r5", "exclusive start");
    let mut at = client.reader(&topic, ReaderOptions::new(ids[4]).inclusive())?;
    assert_eq!(text(&at.receive()?), "r4", "inclusive start");

    let mut consumer = client.consumer(
        &topic,
        consumer_options("seek", SubscriptionType::Exclusive),
    )?;
    for i in 0..10 {
        let m = consumer.receive()?;
        assert_eq!(text(&m), format!("r{i}"));
        consumer.ack(&m)?;
    }
    consumer.seek(SeekTo::Id(MessageId::EARLIEST))?;
    assert_eq!(text(&consumer.receive()?), "r0", "consumer seek back");
    client.close()?;
    Ok(())
}

/// A negatively acknowledged message comes back after the delay with its redelivery count.
fn negative_ack_redelivers(env: Env) -> TestResult {
    let topic = unique_topic(&format!("rt-nack-{:?}", env.rt));
    let client = env.client(options())?;
    let mut o = consumer_options("nack", SubscriptionType::Shared);
    o.negative_ack_delay = Duration::from_millis(300);
    let mut consumer = client.consumer(&topic, o)?;
    client.producer(&topic)?.send(msg("again"))?;
    let first = consumer.receive()?;
    assert_eq!(first.redelivery_count, 0);
    let nacked_at = Instant::now();
    consumer.nack(&first)?;
    let second = consumer.receive()?;
    assert!(
        nacked_at.elapsed() >= Duration::from_millis(250),
        "after the delay"
    );
    assert_eq!(text(&second), "again");
    assert_eq!(second.redelivery_count, 1);
    assert_eq!(second.id, first.id);
    consumer.ack(&second)?;
    assert!(consumer
        .receive_timeout(Duration::from_millis(800))?
        .is_none());
    client.close()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------- TLS

/// Payloads large enough to leave the core by reference (a transmit of their own, written with
/// vectored writes), many in flight so that writes end part-way through a payload, batched and
/// not, mixed with small ones: every byte arrives, in order.
fn large_payloads_arrive_intact(env: Env) -> TestResult {
    let client = env.client(options())?;
    for batching in [false, true] {
        let topic = unique_topic(&format!("rt-large-{:?}-{batching}", env.rt));
        let mut consumer = client.consumer(
            &topic,
            consumer_options("large", SubscriptionType::Exclusive),
        )?;
        let mut po = ProducerOptions::default();
        if batching {
            po.batching = BatchingOptions::enabled();
        }
        let producer = client.producer_with(&topic, po, true)?;
        let sizes: Vec<usize> = (0..40)
            .map(|i| [10, 8 * 1024, 70_000, 300_000][i % 4] + i)
            .collect();
        let payload = |i: usize, size: usize| -> Vec<u8> {
            (0..size).map(|b| (b * 31 + i * 7) as u8).collect()
        };
        let receipts = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| producer.send_async(OutgoingMessage::new(payload(i, size))))
            .collect::<Result<Vec<_>, _>>()?;
        for r in receipts {
            r.wait()?;
        }
        for (i, &size) in sizes.iter().enumerate() {
            let m = consumer.receive()?;
            assert_eq!(m.payload.len(), size, "message {i}");
            assert!(m.payload[..] == payload(i, size)[..], "message {i} intact");
        }
    }
    client.close()?;
    Ok(())
}

fn mtls_broker() -> support::BrokerInfo {
    support::shared_broker(BrokerOptions::new().mtls()).expect("mTLS broker")
}

/// TLS with the broker's CA and a client certificate: connects (hostname verified) and works;
/// the same without a client certificate is refused by the broker.
fn tls_verified_and_mutual(env: Env) -> TestResult {
    let broker = mtls_broker();
    let files = broker.tls.clone().ok_or("no TLS files")?;
    let url = broker.service_url_tls.clone().ok_or("no TLS URL")?;
    let topic = unique_topic(&format!("rt-tls-{:?}", env.rt));

    let mut o = options_for(&url);
    o.tls.trust = pulsar_async::TrustRoots::PemFile(files.ca.clone());
    o.tls.client_certificate = Some(pulsar_async::ClientCertificate::new(
        &files.client_cert,
        &files.client_key,
    ));
    o.tls.require_tls = true;
    let client = env.client(o)?;
    let mut consumer =
        client.consumer(&topic, consumer_options("tls", SubscriptionType::Exclusive))?;
    let producer = client.producer(&topic)?;
    for i in 0..5 {
        producer.send(msg(format!("tls{i}")))?;
    }
    for i in 0..5 {
        assert_eq!(text(&consumer.receive()?), format!("tls{i}"));
    }
    // Payloads large enough to leave the core by reference (written with vectored writes
    // through the TLS session), around the 8 KiB threshold and far above it.
    let sizes = [8 * 1024 - 1, 8 * 1024, 100_000, 1 << 20];
    for (i, size) in sizes.into_iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
        producer.send(OutgoingMessage::new(payload))?;
    }
    for (i, size) in sizes.into_iter().enumerate() {
        let m = consumer.receive()?;
        assert_eq!(m.payload.len(), size);
        assert!(
            m.payload
                .iter()
                .enumerate()
                .all(|(b, v)| *v == (b * 7 + i) as u8),
            "payload {i} ({size} B) arrived intact"
        );
    }
    assert!(client.stats().connections.iter().all(|c| c.address.tls));
    client.close()?;

    let mut o = options_for(&url);
    o.tls.trust = pulsar_async::TrustRoots::PemFile(files.ca.clone());
    o.core.operation_timeout = Duration::from_secs(5);
    let client = env.client(o)?;
    assert!(
        client.producer(&topic).is_err(),
        "an mTLS broker refuses a client without certificate"
    );
    client.close()?;
    Ok(())
}

/// A CA that did not sign the broker's certificate: creation fails, and the error (and the
/// connection event) says why.
fn tls_wrong_ca_fails_clearly(env: Env) -> TestResult {
    let broker = mtls_broker();
    let files = broker.tls.clone().ok_or("no TLS files")?;
    let url = broker.service_url_tls.clone().ok_or("no TLS URL")?;
    let mut o = options_for(&url);
    o.tls.trust = pulsar_async::TrustRoots::PemFile(files.other_ca.clone());
    o.tls.client_certificate = Some(pulsar_async::ClientCertificate::new(
        &files.client_cert,
        &files.client_key,
    ));
    o.core.operation_timeout = Duration::from_secs(4);
    let client = env.client(o)?;
    let mut events = client.events();
    let error = match client.producer(&unique_topic("rt-tls-wrong-ca")) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected with the wrong CA"),
    };
    assert!(
        error.contains("certificate") && error.contains("TLS handshake"),
        "clear error: {error}"
    );
    let (found, seen) = events.wait_for(Duration::from_secs(2), |e| {
        matches!(e, Event::ConnectionClosed { reason, .. } if reason.to_string().contains("UnknownIssuer"))
    });
    assert!(found, "the connection event names the cause: {seen:?}");
    client.close()?;
    Ok(())
}

/// `require_tls` refuses a plain URL when the client is built.
fn tls_required_refuses_plain_urls(env: Env) -> TestResult {
    let mut o = options_for("pulsar://127.0.0.1:6650");
    o.tls.require_tls = true;
    match env.client(o) {
        Err(Error::TlsRequired(url)) => assert_eq!(url, "pulsar://127.0.0.1:6650"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a plain URL accepted with require_tls"),
    }
    // The builders say the same.
    let e = match env.rt {
        Rt::Blocking => pulsar_blocking::Client::builder("pulsar://127.0.0.1:6650")
            .require_tls()
            .build()
            .err(),
        Rt::Smol => pulsar_smol::Client::builder("pulsar://127.0.0.1:6650")
            .require_tls()
            .build()
            .err(),
        Rt::Tokio => {
            let _inside = env.tokio.as_ref().ok_or("no runtime")?.enter();
            pulsar_tokio::Client::builder("pulsar://127.0.0.1:6650")
                .require_tls()
                .build()
                .err()
        }
    };
    assert!(matches!(e, Some(Error::TlsRequired(_))), "{e:?}");
    Ok(())
}

// ------------------------------------------------------------------------- broker restart

/// One broker of the test's own, restarted once with clients of all three runtimes connected:
/// each producer and consumer reconnects by itself (events say so), messages sent before and
/// after arrive, and nothing acknowledged is lost.
#[test]
fn reconnect_after_broker_restart_all_runtimes() -> TestResult {
    let mut broker = BrokerProcess::start(BrokerOptions::new())?;
    let url = broker.info().service_url.clone();
    let rts = [Rt::Tokio, Rt::Smol, Rt::Blocking];
    let mut sides = Vec::new();
    for rt in rts {
        let env = Env::new(rt);
        let mut o = options_for(&url);
        o.core.backoff_initial = Duration::from_millis(100);
        o.core.backoff_max = Duration::from_secs(1);
        o.core.operation_timeout = Duration::from_secs(60);
        let client = env.client(o)?;
        let events = client.events();
        let topic = unique_topic(&format!("rt-restart-{rt:?}"));
        let mut consumer =
            client.consumer(&topic, consumer_options("r", SubscriptionType::Exclusive))?;
        let mut po = ProducerOptions::default();
        // Messages queued while the broker is down wait for it, however long it takes.
        po.send_timeout = Duration::ZERO;
        let producer = client.producer_with(&topic, po, true)?;
        for i in 0..5 {
            producer.send(msg(format!("before{i}")))?;
        }
        for i in 0..5 {
            let m = consumer.receive()?;
            assert_eq!(text(&m), format!("before{i}"));
            consumer.ack(&m)?;
        }
        sides.push((rt, env, client, events, consumer, producer));
    }

    // The acknowledgements are on the broker before it stops (they are grouped and sent
    // asynchronously; an unacknowledged message would rightly be redelivered).
    let restart_admin = broker.info().admin()?;
    for (rt, _, _, _, consumer, _) in &sides {
        let topic = consumer_topic(consumer);
        assert!(
            restart_admin.wait_until(Duration::from_secs(10), |a| Ok(a
                .subscription_backlog(&topic, "r")?
                == 0)),
            "{rt:?}: acknowledgements reached the broker"
        );
    }
    broker.stop()?;
    // Sent while the broker is down: queued, resent once the producers are back.
    let mut queued = Vec::new();
    for (_, _, _, _, _, producer) in &sides {
        let receipts = (0..5)
            .map(|i| producer.send_async(msg(format!("during{i}"))))
            .collect::<Result<Vec<_>, _>>()?;
        queued.push(receipts);
    }
    broker.start_again()?;

    for ((rt, _env, client, events, consumer, producer), receipts) in sides.iter_mut().zip(queued) {
        for r in receipts {
            r.wait()?;
        }
        for i in 0..5 {
            producer.send(msg(format!("after{i}")))?;
        }
        let expected = (0..5)
            .map(|i| format!("during{i}"))
            .chain((0..5).map(|i| format!("after{i}")));
        for e in expected {
            let m = consumer.receive()?;
            assert_eq!(text(&m), e, "{rt:?}");
            consumer.ack(&m)?;
        }
        let seen = events.collect_for(Duration::from_secs(2));
        let saw = |f: &dyn Fn(&Event) -> bool| {
            seen.iter()
                .any(|e| matches!(e, ClientEvent::Core(ev) if f(ev)))
        };
        assert!(
            saw(&|e| matches!(e, Event::ConnectionClosed { .. })),
            "{rt:?}: connection loss reported: {seen:?}"
        );
        assert!(
            saw(&|e| matches!(e, Event::ProducerReconnected { .. })),
            "{rt:?}: producer reconnected: {seen:?}"
        );
        assert!(
            saw(&|e| matches!(e, Event::ConsumerReconnected { .. })),
            "{rt:?}: consumer reconnected: {seen:?}"
        );
        assert!(client.stats().counters.reconnects >= 2, "{rt:?}");
    }
    for (_, _, client, ..) in &sides {
        client.close()?;
    }
    Ok(())
}

// ------------------------------------------------------------- blocking inside an async runtime

/// The blocking client called from inside a tokio runtime (current-thread, so any hidden
/// `block_on` would panic and any hidden dependency on that runtime would deadlock).
#[tokio::test(flavor = "current_thread")]
async fn blocking_client_inside_a_tokio_runtime() -> TestResult {
    let topic = unique_topic("rt-blocking-in-tokio");
    let client = pulsar_blocking::Client::builder(&support::broker().service_url).build()?;
    let consumer = client
        .consumer(&topic)
        .subscription("in-tokio")
        .initial_position(InitialPosition::Earliest)
        .subscribe()?;
    let producer = client.producer(&topic).create()?;
    let id = producer.send("from inside tokio")?;
    let (tx, rx) = std::sync::mpsc::channel();
    producer.send_with_callback("with a callback", move |r| {
        let _ = tx.send(r);
    })?;
    let second = rx.recv_timeout(RECEIVE)??;
    assert!(second > id);
    let m = consumer.receive_timeout(RECEIVE)?.ok_or("no message")?;
    assert_eq!(m.payload.as_ref(), b"from inside tokio");
    consumer.ack(&m)?;
    let m = consumer.receive_timeout(RECEIVE)?.ok_or("no message")?;
    assert_eq!(m.payload.as_ref(), b"with a callback");
    // Still usable by async code on the same thread afterwards.
    tokio::task::yield_now().await;
    client.close()?;
    Ok(())
}

// ------------------------------------------------------- slow sockets: partial writes, bounds

/// smol's runtime with sockets that accept at most 700 bytes per millisecond, in pieces: every
/// write is partial, and the client's write buffer fills up.
#[derive(Debug)]
struct Trickle;

struct TrickleIo {
    inner: pulsar_async::BoxIo,
    timer: Option<smol::Timer>,
}

impl futures::io::AsyncRead for TrickleIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl futures::io::AsyncWrite for TrickleIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let this = &mut *self;
        let timer = this
            .timer
            .get_or_insert_with(|| smol::Timer::after(Duration::from_millis(1)));
        if futures::FutureExt::poll_unpin(timer, cx).is_pending() {
            return Poll::Pending;
        }
        this.timer = None;
        let n = buf.len().min(700);
        std::pin::Pin::new(&mut this.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl pulsar_async::Runtime for Trickle {
    fn connect(
        &self,
        host: String,
        port: u16,
    ) -> pulsar_async::BoxFuture<std::io::Result<pulsar_async::BoxIo>> {
        let connect = pulsar_smol::Smol.connect(host, port);
        Box::pin(async move {
            let inner = connect.await?;
            Ok(Box::new(TrickleIo { inner, timer: None }) as pulsar_async::BoxIo)
        })
    }

    fn timer(&self, deadline: Instant) -> std::pin::Pin<Box<dyn pulsar_async::AsyncTimer>> {
        pulsar_smol::Smol.timer(deadline)
    }

    fn spawn(&self, future: pulsar_async::BoxFuture<()>) -> Result<(), String> {
        pulsar_smol::Smol.spawn(future)
    }

    fn now(&self) -> Instant {
        pulsar_smol::Smol.now()
    }
}

/// Over sockets that take every write in small pieces, 300 messages of 1 KiB arrive intact and
/// in order, and the bytes waiting for the socket stay within the configured bound (sends wait).
#[test]
fn slow_sockets_partial_writes_and_bounded_write_buffer() -> TestResult {
    let topic = unique_topic("rt-trickle");
    let mut o = options();
    o.max_write_buffer = 8 * 1024;
    let client = pulsar_async::start(Trickle, o)?;
    smol::block_on(async {
        let mut consumer = client
            .consumer(&topic)
            .subscription("trickle")
            .initial_position(InitialPosition::Earliest)
            .subscribe()
            .await?;
        let producer = client
            .producer(&topic)
            .max_pending_messages(1000)
            .create()
            .await?;
        let payload = |i: usize| format!("{i:05}").repeat(205).into_bytes();
        let mut receipts = Vec::new();
        let mut max_buffered = 0;
        for i in 0..300 {
            receipts.push(producer.send_async(payload(i)).await?);
            max_buffered = max_buffered.max(client.buffered_bytes());
        }
        assert!(
            max_buffered <= 8 * 1024 + 2 * 1024,
            "write buffer bounded: {max_buffered}"
        );
        assert!(
            max_buffered > 4 * 1024,
            "the slow socket did fill the buffer: {max_buffered}"
        );
        for r in receipts {
            r.await?;
        }
        for i in 0..300 {
            let m = consumer.next().await.ok_or("stream ended")??;
            assert!(
                m.payload.as_ref() == payload(i).as_slice(),
                "message {i} intact"
            );
            consumer.ack(&m)?;
        }
        client.close().await?;
        Ok(())
    })
}
