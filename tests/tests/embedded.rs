//! The project's clients (tokio, smol, blocking through the facade, and the in-process transport)
//! against the embedded broker of `pulsar-embedded` over TCP. Each test starts its own broker (a
//! millisecond) on a shared tokio runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pulsar_async::core::ServerErrorCode;
use pulsar_async::{
    AccessMode, BatchingOptions, ClientOptions, ConsumerOptions, Error, InitialPosition, Message,
    MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SeekTo, SubscriptionType,
};
use pulsar_embedded::{BrokerHandle, EmbeddedBroker};
use pulsar_tests::facade::{Env, Rt, TConsumer, RECEIVE};
use pulsar_tests::per_runtime;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The runtime the brokers run on (separate from the clients' runtimes).
fn broker_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn start(
    configure: impl FnOnce(pulsar_embedded::Builder) -> pulsar_embedded::Builder,
) -> BrokerHandle {
    let b = configure(EmbeddedBroker::builder().bind("127.0.0.1:0"));
    broker_runtime()
        .block_on(b.start())
        .expect("embedded broker starts")
}

fn options(broker: &BrokerHandle) -> ClientOptions {
    let mut o = ClientOptions::new(broker.service_url());
    o.core.operation_timeout = Duration::from_secs(10);
    o
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

fn backlog(broker: &BrokerHandle, topic: &str, sub: &str) -> Option<u64> {
    let full = format!("persistent://public/default/{topic}");
    broker
        .stats()
        .into_iter()
        .find(|t| t.name == full)?
        .subscriptions
        .into_iter()
        .find(|s| s.name == sub)
        .map(|s| s.backlog)
}

fn eventually(d: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Receives `n` messages from two consumers in turn, acknowledging each.
fn drain2(c1: &mut TConsumer, c2: &mut TConsumer, n: usize) -> Result<[Vec<Message>; 2], Error> {
    let mut got = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + RECEIVE;
    while got[0].len() + got[1].len() < n && Instant::now() < deadline {
        for (i, c) in [&mut *c1, &mut *c2].into_iter().enumerate() {
            if let Some(m) = c.receive_timeout(Duration::from_millis(20))? {
                c.ack(&m)?;
                got[i].push(m);
            }
        }
    }
    Ok(got)
}

per_runtime!(
    round_trip_and_stats,
    subscription_types,
    acks_and_redelivery,
    readers_and_seek,
    partitioned_batched,
    deduplication_and_access_modes,
    delayed_delivery,
);

/// Produce, consume in order with keys and properties, acknowledge (the backlog drains), read
/// everything again with a non-durable subscription; stats and clients show it all.
fn round_trip_and_stats(env: Env) -> TestResult {
    let broker = start(|b| b);
    let client = env.client(options(&broker))?;
    let topic = "round-trip";
    let mut consumer =
        client.consumer(topic, consumer_options("sub", SubscriptionType::Exclusive))?;
    let producer = client.producer(topic)?;
    assert!(!producer.name().is_empty());
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
        assert_eq!((m.id.ledger_id, m.id.entry_id), (id.ledger_id, id.entry_id));
        assert!(m.publish_time > 0);
        consumer.ack(&m)?;
    }
    assert!(consumer
        .receive_timeout(Duration::from_millis(200))?
        .is_none());
    assert!(
        eventually(Duration::from_secs(5), || backlog(&broker, topic, "sub")
            == Some(0)),
        "acknowledgements reach the broker"
    );
    let mut read = consumer_options("again", SubscriptionType::Exclusive);
    read.durable = false;
    let mut reader = client.consumer(topic, read)?;
    for i in 0..30 {
        assert_eq!(text(&reader.receive()?), format!("message {i}"));
    }

    let stats = broker.stats();
    let t = stats
        .iter()
        .find(|t| t.name.ends_with("/round-trip"))
        .ok_or("topic in stats")?;
    assert_eq!(t.msg_in, 30);
    assert_eq!(t.entries, 30);
    assert_eq!(t.producers.len(), 1);
    assert_eq!(t.subscriptions.len(), 2);
    let clients = broker.clients();
    assert_eq!(clients.len(), 1, "one connection: {clients:?}");
    assert_eq!(clients[0].producers.len(), 1);
    assert_eq!(clients[0].consumers.len(), 2);
    assert!(clients[0].peer.starts_with("127.0.0.1:"));
    assert_eq!(broker.info().connections, 1);

    producer.close()?;
    consumer.close()?;
    reader.close()?;
    client.close()?;
    assert!(eventually(Duration::from_secs(5), || broker
        .clients()
        .is_empty()));
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// Exclusive refuses a second consumer; Failover gives everything to one consumer; Shared spreads
/// without loss or duplicates; Key_Shared keeps each key on one consumer, in order.
fn subscription_types(env: Env) -> TestResult {
    let broker = start(|b| b);
    let client = env.client(options(&broker))?;
    let topic = "sub-types";
    let _first = client.consumer(topic, consumer_options("ex", SubscriptionType::Exclusive))?;
    match client.consumer(topic, consumer_options("ex", SubscriptionType::Exclusive)) {
        Err(Error::Client(e)) => assert_eq!(e.server_code(), Some(ServerErrorCode::ConsumerBusy)),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("two exclusive consumers on one subscription"),
    }
    let small = |sub: &str, t: SubscriptionType| {
        let mut o = consumer_options(sub, t);
        o.receiver_queue_size = 4;
        o
    };
    let mut f1 = client.consumer(topic, small("fo", SubscriptionType::Failover))?;
    let mut f2 = client.consumer(topic, small("fo", SubscriptionType::Failover))?;
    let mut s1 = client.consumer(topic, small("sh", SubscriptionType::Shared))?;
    let mut s2 = client.consumer(topic, small("sh", SubscriptionType::Shared))?;
    let mut k1 = client.consumer(topic, small("ks", SubscriptionType::KeyShared))?;
    let mut k2 = client.consumer(topic, small("ks", SubscriptionType::KeyShared))?;
    let producer = client.producer(topic)?;
    let receipts = (0..60)
        .map(|i| producer.send_async(msg(format!("m{i}")).with_key(format!("key{}", i % 6))))
        .collect::<Result<Vec<_>, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    let expected: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();

    let [a, b] = drain2(&mut f1, &mut f2, 60)?;
    let (a, b): (Vec<String>, Vec<String>) =
        (a.iter().map(text).collect(), b.iter().map(text).collect());
    assert!(
        (a == expected && b.is_empty()) || (b == expected && a.is_empty()),
        "failover: one consumer gets everything in order: {a:?} / {b:?}"
    );

    let [a, b] = drain2(&mut s1, &mut s2, 60)?;
    assert!(!a.is_empty() && !b.is_empty(), "shared: both get messages");
    let all: BTreeSet<String> = a.iter().chain(&b).map(text).collect();
    assert_eq!(
        (all.len(), a.len() + b.len()),
        (60, 60),
        "shared: each once"
    );

    let [a, b] = drain2(&mut k1, &mut k2, 60)?;
    assert_eq!(a.len() + b.len(), 60, "key_shared: every message");
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for (i, got) in [&a, &b].into_iter().enumerate() {
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for m in got {
            let key = m.key.clone().unwrap_or_default();
            let prev = owner.insert(key.clone(), i);
            assert!(prev.is_none() || prev == Some(i), "key {key} on both");
            let n: usize = text(m)[1..].parse()?;
            if let Some(p) = last.insert(key, n) {
                assert!(p < n, "key_shared keeps per-key order");
            }
        }
    }
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// Negative acks and ack timeouts redeliver; cumulative acks clear the backlog; batch-index acks
/// of part of a batch leave only the rest.
fn acks_and_redelivery(env: Env) -> TestResult {
    let broker = start(|b| {
        let mut c = pulsar_embedded::core::ClusterConfig::new(1, 0);
        c.persist_latency = (Duration::ZERO, Duration::ZERO);
        c.trace_frames = std::env::var_os("EMBEDDED_TRACE").is_some();
        c.notes = c.trace_frames;
        b.cluster_config(c)
    });
    let dump = |b: &BrokerHandle| {
        b.with_cluster(|c, _| {
            while let Some(n) = c.poll_note() {
                eprintln!("{n}");
            }
        })
    };
    let client = env.client(options(&broker))?;
    let topic = "acks";
    let mut nack = consumer_options("nack", SubscriptionType::Shared);
    nack.negative_ack_delay = Duration::from_millis(100);
    let mut nacker = client.consumer(topic, nack)?;
    let mut timeout = consumer_options("timeout", SubscriptionType::Shared);
    timeout.ack_timeout = Some(Duration::from_millis(1000));
    let mut timed = client.consumer(topic, timeout)?;
    let mut cumulative =
        client.consumer(topic, consumer_options("cum", SubscriptionType::Exclusive))?;
    let producer = client.producer(topic)?;
    for i in 0..5 {
        producer.send(msg(format!("a{i}")))?;
    }

    let first = nacker.receive().map_err(|e| format!("first: {e}"))?;
    assert_eq!(first.redelivery_count, 0);
    nacker.nack(&first)?;
    let mut again = None;
    for i in 0..5 {
        let m = nacker.receive().map_err(|e| {
            dump(&broker);
            format!("nacked {i}: {e}")
        })?;
        if text(&m) == text(&first) {
            again = Some(m.redelivery_count);
        }
        nacker.ack(&m)?;
    }
    assert_eq!(again, Some(1), "the nacked message comes back, counted");

    let m = timed.receive()?; // never acknowledged
    for _ in 0..4 {
        let other = timed.receive()?;
        timed.ack(&other)?;
    }
    let back = timed.receive().map_err(|e| format!("ack timeout: {e}"))?;
    assert_eq!(text(&back), text(&m), "ack timeout redelivers");
    assert!(back.redelivery_count >= 1);
    timed.ack(&back)?;

    let mut last = None;
    for _ in 0..5 {
        last = Some(cumulative.receive()?);
    }
    match (&cumulative, &last) {
        (TConsumer::Async(_, c), Some(m)) => c.ack_cumulative(m)?,
        (TConsumer::Blocking(c), Some(m)) => c.ack_cumulative(m)?,
        _ => {}
    }
    assert!(
        eventually(Duration::from_secs(5), || backlog(&broker, topic, "cum")
            == Some(0)),
        "cumulative ack clears the backlog"
    );

    // batch index acks: a batch of 4, two acknowledged, the other two come back after reconnecting
    let batched = client.producer_with(
        "acks-batch",
        ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
            4,
            1 << 20,
            Duration::from_millis(50),
        )),
        true,
    )?;
    let mut o = consumer_options("bi", SubscriptionType::Shared);
    o.batch_index_ack = true;
    let mut c = client.consumer("acks-batch", o.clone())?;
    let receipts = (0..4)
        .map(|i| batched.send_async(msg(format!("b{i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    for i in 0..4 {
        let m = c.receive()?;
        if i % 2 == 0 {
            c.ack(&m)?;
        }
    }
    assert!(eventually(Duration::from_secs(5), || {
        backlog(&broker, "acks-batch", "bi") == Some(2)
    }));
    c.close()?;
    let mut c = client.consumer("acks-batch", o)?;
    let rest: BTreeSet<String> = (0..2)
        .map(|_| c.receive().map(|m| text(&m)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("batch rest: {e}"))?;
    assert_eq!(rest, BTreeSet::from(["b1".to_string(), "b3".to_string()]));
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// Readers from the start, from an id, has_message_available (last message id); consumer seek
/// back to the start and to a publish time.
fn readers_and_seek(env: Env) -> TestResult {
    let broker = start(|b| b);
    let client = env.client(options(&broker))?;
    let topic = "readers";
    let producer = client.producer(topic)?;
    let ids = (0..10)
        .map(|i| producer.send(msg(format!("r{i}"))))
        .collect::<Result<Vec<MessageId>, _>>()?;
    let mut reader = client.reader(topic, ReaderOptions::new(MessageId::EARLIEST))?;
    for i in 0..10 {
        assert_eq!(text(&reader.receive()?), format!("r{i}"));
    }
    assert!(!reader.has_message_available()?);
    producer.send(msg("r10"))?;
    assert!(reader.has_message_available()?);
    assert_eq!(text(&reader.receive()?), "r10");

    let mut from = client.reader(topic, ReaderOptions::new(ids[4]))?;
    assert_eq!(text(&from.receive()?), "r5", "a reader starts after its id");
    let mut inclusive = ReaderOptions::new(ids[4]);
    inclusive.start_message_id_inclusive = true;
    let mut at = client.reader(topic, inclusive)?;
    assert_eq!(
        text(&at.receive()?),
        "r4",
        "an inclusive reader starts at its id"
    );
    from.seek(SeekTo::Id(MessageId::EARLIEST))?;
    assert_eq!(text(&from.receive()?), "r0", "reader seek");

    let mut consumer =
        client.consumer(topic, consumer_options("seek", SubscriptionType::Exclusive))?;
    for _ in 0..11 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
    }
    consumer.seek(SeekTo::Id(MessageId::EARLIEST))?;
    assert_eq!(
        text(&consumer.receive()?),
        "r0",
        "consumer seek to the start"
    );
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// A partitioned topic: keyed messages spread over partitions, every one received once, in
/// order per key; batched sends.
fn partitioned_batched(env: Env) -> TestResult {
    let broker = start(|b| b.partitioned_topic("persistent://public/default/parts", 3));
    let client = env.client(options(&broker))?;
    assert_eq!(client.partitions("parts")?, 3);
    let mut consumer = client.consumer("parts", consumer_options("s", SubscriptionType::Shared))?;
    let producer = client.producer_with(
        "parts",
        ProducerOptions::default().with_batching(BatchingOptions::enabled()),
        true,
    )?;
    let receipts = (0..90)
        .map(|i| producer.send_async(msg(format!("p{i}")).with_key(format!("k{}", i % 9))))
        .collect::<Result<Vec<_>, _>>()?;
    let mut partitions = BTreeSet::new();
    for r in receipts {
        partitions.insert(r.wait()?.partition);
    }
    assert_eq!(partitions.len(), 3, "keys spread over the partitions");
    let mut got = BTreeSet::new();
    for _ in 0..90 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
        assert!(got.insert(text(&m)), "once");
    }
    assert_eq!(broker.stats().len(), 3, "one log per partition");
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// With deduplication a producer re-created under its name resumes after its last sequence id and
/// a resent sequence id is dropped; Exclusive producers keep others out.
fn deduplication_and_access_modes(env: Env) -> TestResult {
    let broker = start(|b| b.deduplication(true));
    let client = env.client(options(&broker))?;
    let topic = "dedup";
    let p = client.producer_with(topic, ProducerOptions::with_name("dd"), true)?;
    for i in 0..5 {
        p.send(msg(format!("d{i}")).with_sequence_id(i))?;
    }
    p.close()?;
    let p = client.producer_with(topic, ProducerOptions::with_name("dd"), true)?;
    p.send(msg("again d3").with_sequence_id(3))?;
    p.send(msg("d5").with_sequence_id(5))?;
    let mut c = client.consumer(topic, consumer_options("s", SubscriptionType::Exclusive))?;
    let got: Vec<String> = (0..6)
        .map(|_| c.receive().map(|m| text(&m)))
        .collect::<Result<_, _>>()?;
    assert_eq!(got, ["d0", "d1", "d2", "d3", "d4", "d5"]);
    assert!(
        c.receive_timeout(Duration::from_millis(200))?.is_none(),
        "no duplicate"
    );
    p.close()?;

    let ex = client.producer_with(
        "excl",
        ProducerOptions::default().with_access_mode(AccessMode::Exclusive),
        true,
    )?;
    match client.producer("excl") {
        Err(Error::Client(e)) => assert_eq!(e.server_code(), Some(ServerErrorCode::ProducerBusy)),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a shared producer beside an exclusive one"),
    }
    ex.close()?;
    let _shared = client.producer("excl")?;
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// A message delivered after a delay arrives on a Shared subscription no sooner, after a message
/// sent later without one.
fn delayed_delivery(env: Env) -> TestResult {
    let broker = start(|b| b);
    let client = env.client(options(&broker))?;
    let mut c = client.consumer("delayed", consumer_options("s", SubscriptionType::Shared))?;
    let p = client.producer("delayed")?;
    let sent = Instant::now();
    p.send(msg("late").with_deliver_after(Duration::from_millis(600)))?;
    p.send(msg("now"))?;
    assert_eq!(text(&c.receive()?), "now");
    let late = c.receive()?;
    assert_eq!(text(&late), "late");
    assert!(
        sent.elapsed() >= Duration::from_millis(550),
        "{:?}",
        sent.elapsed()
    );
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// The in-process transport: a client reaching the broker through memory, no socket.
#[test]
fn in_process_round_trip() -> TestResult {
    broker_runtime().block_on(async {
        let broker = EmbeddedBroker::builder().start().await?;
        let client = pulsar_embedded::InProcessClient::builder(broker.in_process_url()).build()?;
        let consumer = client
            .consumer("mem")
            .subscription("s")
            .initial_position(InitialPosition::Earliest)
            .subscribe()
            .await?;
        let producer = client.producer("mem").create().await?;
        for i in 0..100 {
            producer.send(format!("m{i}")).await?;
        }
        for i in 0..100 {
            let m = consumer.receive().await?;
            assert_eq!(m.payload.as_ref(), format!("m{i}").as_bytes());
            consumer.ack(&m)?;
        }
        let clients = broker.clients();
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].peer, "in-process");
        client.close().await?;
        broker.shutdown().await;
        Ok(())
    })
}

/// Start-up time of a broker with a TCP listener (printed; the bound is generous for a loaded
/// machine).
/// Transactions (issue 17) on the embedded broker: messages of a transaction are delivered
/// once it commits and never if it aborts; an acknowledgement in a transaction is applied only
/// when it commits, and one in another transaction of a message already pending conflicts.
#[test]
fn transactions() -> TestResult {
    broker_runtime().block_on(async {
        let broker = EmbeddedBroker::builder().transactions(2).start().await?;
        let client = pulsar_embedded::InProcessClient::builder(broker.in_process_url()).build()?;
        let consumer = client
            .consumer("txn")
            .subscription("s")
            .initial_position(InitialPosition::Earliest)
            .subscribe()
            .await?;
        let producer = client.producer("txn").create().await?;
        let quiet = Duration::from_millis(200);
        // aborted: never delivered
        let t = client.new_transaction().build().await?;
        producer.send_with_txn(&t, "aborted").await?;
        t.abort().await?;
        // committed: delivered once the commit is done, not before
        let t = client.new_transaction().build().await?;
        for i in 0..3 {
            producer.send_with_txn(&t, format!("c{i}")).await?;
        }
        assert!(tokio::time::timeout(quiet, consumer.receive())
            .await
            .is_err());
        t.commit().await?;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(consumer.receive().await?);
        }
        let texts: Vec<String> = got.iter().map(text).collect();
        assert_eq!(texts, ["c0", "c1", "c2"]);
        // an acknowledgement in a transaction that aborts is not applied: redelivered
        let a = client.new_transaction().build().await?;
        consumer.ack_with_txn(&a, &got[0]).await?;
        // the same message in another transaction: a conflict
        let b = client.new_transaction().build().await?;
        let conflict = consumer.ack_with_txn(&b, &got[0]).await;
        assert!(conflict.is_err(), "{conflict:?}");
        let _ = b.abort().await;
        a.abort().await?;
        let again = consumer.receive().await?;
        assert_eq!(text(&again), "c0");
        // committed acknowledgements are applied
        let t = client.new_transaction().build().await?;
        consumer.ack_with_txn(&t, &again).await?;
        consumer.ack_with_txn(&t, &got[1]).await?;
        consumer.ack_with_txn(&t, &got[2]).await?;
        t.commit().await?;
        let stats = broker.stats();
        let backlog: u64 = stats
            .iter()
            .flat_map(|t| t.subscriptions.iter().map(|s| s.backlog))
            .sum();
        assert_eq!(backlog, 0, "{stats:?}");
        client.close().await?;
        broker.shutdown().await;
        Ok(())
    })
}

#[test]
fn starts_in_milliseconds() -> TestResult {
    let rt = broker_runtime();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let b = rt.block_on(EmbeddedBroker::builder().bind("127.0.0.1:0").start())?;
        times.push(t.elapsed());
        rt.block_on(b.shutdown());
    }
    times.sort();
    println!(
        "embedded broker start-up: median {:?}, max {:?}",
        times[10], times[19]
    );
    assert!(times[10] < Duration::from_millis(50), "{times:?}");
    Ok(())
}

/// The official Python client (`tests/py/embedded_interop.py`): produce and consume with batching
/// and compression, every subscription type, negative acks and ack timeouts, cumulative acks,
/// readers and seek, a partitioned topic, deduplication and a chunked message.
#[test]
fn python_client() -> TestResult {
    let broker = start(|b| {
        b.deduplication(true)
            .partitioned_topic("persistent://public/default/py-parts", 3)
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/embedded_interop.py");
    let out = pulsar_tests::support::python_command()
        .args([script, &broker.service_url(), "py-parts"])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) -> TestResult {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// The TLS listener: a client trusting the CA that signed the broker's certificate produces and
/// consumes over `pulsar+ssl://`; lookups answer the TLS URL.
#[test]
fn tls_listener() -> TestResult {
    let dir = std::env::temp_dir().join(format!("pulsar-embedded-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
        ],
    )?;
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )?;
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    )?;
    let tls = pulsar_embedded::TlsConfig::new(dir.join("server.pem"), dir.join("server.key"));
    let broker = start(|b| b.bind_tls("127.0.0.1:0", tls));
    let url = broker.service_url_tls().ok_or("a TLS URL")?;
    assert!(url.starts_with("pulsar+ssl://127.0.0.1:"), "{url}");
    let mut o = ClientOptions::new(url);
    o.core.operation_timeout = Duration::from_secs(10);
    o.tls.trust = pulsar_async::TrustRoots::PemFile(dir.join("ca.pem"));
    o.tls.require_tls = true;
    let env = Env::new(Rt::Tokio);
    let client = env.client(o)?;
    let mut c = client.consumer("tls", consumer_options("s", SubscriptionType::Exclusive))?;
    let p = client.producer("tls")?;
    for i in 0..10 {
        p.send(msg(format!("t{i}")))?;
    }
    for i in 0..10 {
        assert_eq!(text(&c.receive()?), format!("t{i}"));
    }
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Tokens give roles; rules say what each role may produce to and consume from, and from where;
/// a role whose rights change is disconnected and reconnects under the new rules.
#[test]
fn roles_rules_and_forced_disconnect() -> TestResult {
    use pulsar_embedded::core::RoleRules;
    let rules = |alice_produces: &[&str]| {
        BTreeMap::from([
            ("alice".to_string(), RoleRules::new(alice_produces, &["*"])),
            (
                "bob".to_string(),
                RoleRules::new(&[], &["persistent://public/default/a-*"])
                    .from_networks(&["127.0.0.0/8"]),
            ),
            (
                "mallory".to_string(),
                RoleRules::new(&["*"], &["*"]).from_networks(&["10.0.0.0/8"]),
            ),
        ])
    };
    let broker = start(|b| {
        b.token("t-alice", "alice")
            .token("t-bob", "bob")
            .token("t-mallory", "mallory")
            .rules(rules(&["persistent://public/default/a-*"]))
    });
    let env = Env::new(Rt::Blocking);
    let as_role = |token: &str| {
        let mut o = options(&broker);
        o.core.auth = Some(Box::new(pulsar_async::core::TokenAuth::new(token)));
        env.client(o)
    };
    let code = |r: Result<pulsar_tests::facade::TProducer, Error>| match r {
        Err(Error::Client(e)) => e.server_code(),
        Err(_) => None,
        Ok(_) => Some(ServerErrorCode::UnknownError),
    };
    let alice = as_role("t-alice")?;
    let bob = as_role("t-bob")?;
    let p = alice.producer("a-1")?;
    p.send(msg("hello"))?;
    assert_eq!(
        code(alice.producer("b-1")),
        Some(ServerErrorCode::AuthorizationError)
    );
    assert_eq!(
        code(bob.producer("a-1")),
        Some(ServerErrorCode::AuthorizationError)
    );
    let mut c = bob.consumer("a-1", consumer_options("s", SubscriptionType::Exclusive))?;
    assert_eq!(text(&c.receive()?), "hello");
    match bob.consumer("b-1", consumer_options("s", SubscriptionType::Exclusive)) {
        Err(Error::Client(e)) => {
            assert_eq!(e.server_code(), Some(ServerErrorCode::AuthorizationError));
        }
        other => panic!("bob consumes b-1: {other:?}"),
    }
    // mallory's token is good, but not from this network
    let mallory = as_role("t-mallory")?;
    assert!(mallory.producer("a-1").is_err());
    let roles: Vec<Option<String>> = broker.clients().into_iter().map(|c| c.role).collect();
    assert!(roles.contains(&Some("alice".into())) && roles.contains(&Some("bob".into())));

    // alice loses the right to produce: her connection is closed, the producer cannot come back
    broker.set_rules(Some(rules(&[])));
    assert_eq!(broker.force_disconnect("alice"), 1);
    assert!(eventually(Duration::from_secs(5), || !broker
        .clients()
        .iter()
        .any(
            |c| c.role.as_deref() == Some("alice") && !c.producers.is_empty()
        )));
    assert_eq!(
        code(alice.producer("a-2")),
        Some(ServerErrorCode::AuthorizationError)
    );
    assert!(
        p.send(msg("after")).is_err(),
        "the fenced-out producer fails"
    );
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// The admin REST subset, through the tests' own admin client (as against Apache Pulsar).
#[test]
fn admin_rest_subset() -> TestResult {
    let broker = start(|b| b.bind_admin("127.0.0.1:0"));
    let admin = pulsar_tests::support::Admin::new(&broker.admin_url().ok_or("admin URL")?, None)?;
    assert!(admin.is_ready());
    admin.create_partitioned("persistent://public/default/adm-parts", 2)?;
    assert_eq!(
        admin.partitions("persistent://public/default/adm-parts")?,
        2
    );
    assert!(admin
        .create_partitioned("persistent://public/default/adm-parts", 2)
        .is_err());
    let env = Env::new(Rt::Blocking);
    let client = env.client(options(&broker))?;
    assert_eq!(client.partitions("adm-parts")?, 2);
    let topic = "persistent://public/default/adm";
    let _c = client.consumer(topic, consumer_options("s", SubscriptionType::Shared))?;
    let p = client.producer(topic)?;
    for i in 0..3 {
        p.send(msg(format!("m{i}")))?;
    }
    let stats = admin.topic_stats(topic)?;
    assert_eq!(stats["msgInCounter"], 3);
    assert_eq!(stats["publishers"].as_array().map(Vec::len), Some(1));
    assert_eq!(stats["subscriptions"]["s"]["type"], "Shared");
    assert_eq!(
        stats["subscriptions"]["s"]["consumers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let topics = admin.get_json("/admin/v2/persistent/public/default")?;
    assert!(topics
        .as_array()
        .is_some_and(|t| t.iter().any(|x| x == topic)));
    assert_eq!(
        admin.get_json("/admin/v2/tenants")?,
        serde_json::json!(["public"])
    );
    admin.call(
        "PUT",
        "/admin/v2/persistent/public/default/adm/unload",
        None,
    )?;
    p.send(msg("after unload"))?; // the producer reconnects
    assert!(admin
        .get_json("/admin/v2/persistent/public/default/none/stats")
        .is_err());
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// One scripted workload; what the application sees, broker-independent (texts, error codes,
/// redelivery counts), one line per observation.
fn workload(url: &str, prefix: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let env = Env::new(Rt::Blocking);
    let mut o = ClientOptions::new(url);
    o.core.operation_timeout = Duration::from_secs(10);
    let client = env.client(o)?;
    let mut log = Vec::new();
    let code = |r: Result<(), Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(Error::Client(e)) => format!("{:?}", e.server_code()),
        Err(e) => format!("other error {e}"),
    };
    let t = format!("{prefix}-main");
    let p = client.producer_with(&t, ProducerOptions::with_name(format!("{prefix}-p")), true)?;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(p.send(msg(format!("m{i}")).with_key(format!("k{}", i % 3)))?);
    }
    let same_name =
        client.producer_with(&t, ProducerOptions::with_name(format!("{prefix}-p")), true);
    log.push(format!("same producer name: {}", code(same_name.map(drop))));

    let mut ex = client.consumer(&t, consumer_options("ex", SubscriptionType::Exclusive))?;
    let got: Vec<String> = (0..10)
        .map(|_| ex.receive().map(|m| text(&m)))
        .collect::<Result<_, _>>()?;
    log.push(format!("exclusive: {got:?}"));
    let busy = client.consumer(&t, consumer_options("ex", SubscriptionType::Exclusive));
    log.push(format!("second exclusive: {}", code(busy.map(drop))));
    let other_type = client.consumer(&t, consumer_options("ex", SubscriptionType::Shared));
    log.push(format!("other type: {}", code(other_type.map(drop))));
    ex.seek(SeekTo::Id(MessageId::EARLIEST))?;
    log.push(format!("after seek: {}", text(&ex.receive()?)));

    let mut nack = consumer_options("sh", SubscriptionType::Shared);
    nack.negative_ack_delay = Duration::from_millis(100);
    let mut sh = client.consumer(&t, nack)?;
    let first = sh.receive()?;
    sh.nack(&first)?;
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        let m = sh.receive()?;
        sh.ack(&m)?;
        seen.insert(text(&m), m.redelivery_count);
    }
    log.push(format!("shared with a nack: {seen:?}"));

    let mut reader = client.reader(&t, ReaderOptions::new(MessageId::EARLIEST))?;
    let read: Vec<String> = (0..10)
        .map(|_| reader.receive().map(|m| text(&m)))
        .collect::<Result<_, _>>()?;
    log.push(format!(
        "reader: {read:?}, more: {}",
        reader.has_message_available()?
    ));
    let mut after = client.reader(&t, ReaderOptions::new(ids[4]))?;
    let mut at = client.reader(&t, ReaderOptions::new(ids[4]).inclusive())?;
    log.push(format!(
        "reader after m4: {}, inclusive: {}",
        text(&after.receive()?),
        text(&at.receive()?)
    ));

    let t2 = format!("{prefix}-modes");
    let exclusive = || ProducerOptions::default().with_access_mode(AccessMode::Exclusive);
    let holder = client.producer_with(&t2, exclusive(), true)?;
    log.push(format!(
        "shared beside exclusive: {}",
        code(client.producer(&t2).map(drop))
    ));
    let second = client.producer_with(&t2, exclusive(), true);
    log.push(format!(
        "exclusive beside exclusive: {}",
        code(second.map(drop))
    ));
    holder.close()?;
    let shared = client.producer(&t2)?;
    let third = client.producer_with(&t2, exclusive(), true);
    log.push(format!(
        "exclusive beside shared: {}",
        code(third.map(drop))
    ));
    shared.close()?;
    client.close()?;
    Ok(log)
}

/// The same workload against Apache Pulsar (the tests' shared broker) and the embedded broker
/// gives the same observations.
#[test]
fn differential_against_apache_pulsar() -> TestResult {
    let real = pulsar_tests::support::broker();
    let prefix = pulsar_tests::support::unique_topic("diff");
    let apache = workload(&real.service_url, &prefix)?;
    let broker = start(|b| b);
    let embedded = workload(&broker.service_url(), "persistent://public/default/diff")?;
    for (a, e) in apache.iter().zip(&embedded) {
        println!("apache:   {a}\nembedded: {e}");
    }
    assert_eq!(apache, embedded);
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// WaitForExclusive: the producer waits (PRODUCER_SUCCESS "not ready") while an exclusive one
/// holds the topic, and becomes ready when it closes; a shared producer is refused meanwhile.
#[test]
fn wait_for_exclusive() -> TestResult {
    let broker = start(|b| b);
    let env = Env::new(Rt::Blocking);
    let client = std::sync::Arc::new(env.client(options(&broker))?);
    let exclusive = ProducerOptions::default().with_access_mode(AccessMode::Exclusive);
    let holder = client.producer_with("wfe", exclusive, true)?;
    holder.send(msg("first"))?;
    let c2 = client.clone();
    let waiter = std::thread::spawn(move || {
        let o = ProducerOptions::default().with_access_mode(AccessMode::WaitForExclusive);
        let p = c2.producer_with("wfe", o, true)?;
        p.send(msg("second"))?;
        Ok::<_, Error>(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "the second producer waits");
    assert!(
        client.producer("wfe").is_err(),
        "no shared producer meanwhile"
    );
    holder.close()?;
    waiter.join().map_err(|_| "waiter panicked")??;
    let mut c = client.consumer("wfe", consumer_options("s", SubscriptionType::Exclusive))?;
    assert_eq!(text(&c.receive()?), "first");
    assert_eq!(text(&c.receive()?), "second");
    client.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}
