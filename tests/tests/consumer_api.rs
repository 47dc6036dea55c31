//! The consumer API against the real broker, each body once per runtime (tokio, smol, blocking):
//! `receive_timeout`, batch receive by policy, listeners, acknowledgement by topic and message
//! id (and the id's text form), pause / resume, tombstones; the `FusedStream` in `select!` on
//! the async runtimes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pulsar_async::{
    BatchReceivePolicy, ClientOptions, ConsumerOptions, InitialPosition, Message, MessageId,
    OutgoingMessage, ProducerOptions, ReaderOptions, SubscriptionType, TopicMessageId,
};
use pulsar_tests::facade::{Env, Rt, TClient, TConsumer, RECEIVE};
use pulsar_tests::per_runtime;
use pulsar_tests::support::{self, unique_topic, Admin};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client(env: &Env) -> Result<TClient, pulsar_async::Error> {
    let mut o = ClientOptions::new(&support::broker().service_url);
    o.core.operation_timeout = Duration::from_secs(30);
    env.client(o)
}

fn admin() -> Admin {
    support::admin().expect("admin client")
}

fn options(sub: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(sub);
    o.initial_position = InitialPosition::Earliest;
    o
}

fn unbatched() -> ProducerOptions {
    let mut o = ProducerOptions::default();
    o.batching.enabled = false;
    o
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

/// Polls `check` every 50 ms until it holds or `d` passes.
fn eventually(d: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The broker's view of the subscription's consumers: their available permits.
fn available_permits(admin: &Admin, topic: &str, sub: &str) -> Vec<i64> {
    admin
        .topic_stats(topic)
        .ok()
        .and_then(|s| {
            s.get("subscriptions")?
                .get(sub)?
                .get("consumers")?
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c.get("availablePermits").and_then(Value::as_i64))
                        .collect()
                })
        })
        .unwrap_or_default()
}

per_runtime!(
    receive_timeout_and_batch_policy,
    listener_hands_over_every_message,
    reader_listener_hands_over_every_message,
    ack_by_topic_message_id,
    pause_and_resume_lose_nothing,
    tombstones_are_none,
    table_view_of_a_compacted_topic,
    typed_table_view,
);

/// `receive_timeout` gives `None` after about the timeout on an empty topic and the message when
/// one comes; batch receive completes by message count, by bytes (never above the limit), and
/// by timeout (with what is queued, then nothing).
fn receive_timeout_and_batch_policy(env: Env) -> TestResult {
    let client = client(&env)?;
    let topic = unique_topic("capi-batch");
    let consumer = client.consumer(&topic, options("s"))?;
    let producer = client.producer_with(&topic, unbatched(), true)?;

    let start = Instant::now();
    assert!(consumer
        .receive_within(Duration::from_millis(300))?
        .is_none());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    producer.send(OutgoingMessage::new("first"))?;
    let m = consumer
        .receive_within(RECEIVE)?
        .ok_or("no message within the timeout")?;
    assert_eq!(text(&m), "first");
    consumer.ack(&m)?;

    // 10 messages of 100 bytes
    for i in 0..10u8 {
        producer.send(OutgoingMessage::new(vec![b'0' + i; 100]))?;
    }
    let by_count = BatchReceivePolicy::new(Some(4), None, RECEIVE);
    let start = Instant::now();
    let batch = consumer.batch_receive_with(by_count)?;
    assert_eq!(
        batch.len(),
        4,
        "{:?}",
        batch.iter().map(text).collect::<Vec<_>>()
    );
    assert!(start.elapsed() < RECEIVE / 2, "{:?}", start.elapsed());
    // wait until the other 6 are queued, then 250 bytes: two messages (a third would exceed)
    std::thread::sleep(Duration::from_millis(300));
    let by_bytes = BatchReceivePolicy::new(None, Some(250), RECEIVE);
    let batch2 = consumer.batch_receive_with(by_bytes)?;
    assert_eq!(batch2.len(), 2);
    // the last 4 by the timeout (more messages asked for than there are)
    let by_time = BatchReceivePolicy::new(Some(100), None, Duration::from_millis(400));
    let start = Instant::now();
    let batch3 = consumer.batch_receive_with(by_time)?;
    assert!(
        start.elapsed() >= Duration::from_millis(390),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(batch3.len(), 4);
    let all: Vec<u8> = batch
        .iter()
        .chain(&batch2)
        .chain(&batch3)
        .map(|m| m.payload[0])
        .collect();
    assert_eq!(all, (0..10u8).map(|i| b'0' + i).collect::<Vec<_>>());
    for m in batch.iter().chain(&batch2).chain(&batch3) {
        consumer.ack(m)?;
    }
    // nothing left: an empty batch after the timeout
    let empty = consumer.batch_receive_with(by_time)?;
    assert!(empty.is_empty());

    // the builder's policy (Java's default: 100 ms) with a zero-size queue is refused, as in Java
    let mut zq = options("zq");
    zq.receiver_queue_size = 0;
    let zero = client.consumer(&topic, zq)?;
    assert!(matches!(
        zero.batch_receive(),
        Err(pulsar_async::Error::Unsupported(_))
    ));
    zero.close()?;
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// A reader's listener gets every message from the start in order; stopping gives the reader
/// back, which reads on from where the listener stopped.
fn reader_listener_hands_over_every_message(env: Env) -> TestResult {
    let client = client(&env)?;
    let topic = unique_topic("capi-reader-listener");
    let producer = client.producer(&topic)?;
    for i in 0..30 {
        producer.send_async(OutgoingMessage::new(format!("m{i}")))?;
    }
    producer.flush()?;
    let reader = client.reader(&topic, ReaderOptions::new(MessageId::EARLIEST))?;
    let (tx, rx) = mpsc::channel();
    let listener = reader.listen(move |m| {
        let _ = tx.send(text(&m));
    })?;
    let mut got = Vec::new();
    while got.len() < 30 {
        got.push(rx.recv_timeout(RECEIVE)?);
    }
    assert_eq!(got, (0..30).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let mut reader = listener.stop()?;
    // the listener is gone: the next message is the reader's
    producer.send(OutgoingMessage::new("after"))?;
    assert_eq!(text(&reader.receive()?), "after");
    assert!(rx.try_recv().is_err());
    client.close()?;
    Ok(())
}

/// A listener gets every message in order and acknowledges it; stopping gives the consumer back,
/// and the backlog is empty.
fn listener_hands_over_every_message(env: Env) -> TestResult {
    let client = client(&env)?;
    let topic = unique_topic("capi-listener");
    let consumer = client.consumer(&topic, options("s"))?;
    let producer = client.producer(&topic)?;
    let (tx, rx) = mpsc::channel();
    let listener = consumer.listen(move |c, m| {
        c.ack(&m).expect("ack in the listener");
        let _ = tx.send(text(&m));
    })?;
    for i in 0..50 {
        producer.send_async(OutgoingMessage::new(format!("m{i}")))?;
    }
    producer.flush()?;
    let mut got = Vec::new();
    while got.len() < 50 {
        got.push(rx.recv_timeout(RECEIVE)?);
    }
    assert_eq!(got, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let consumer = listener.stop()?;
    // the listener is gone: a new message stays for the consumer
    producer.send(OutgoingMessage::new("after"))?;
    let m = consumer
        .receive_within(RECEIVE)?
        .ok_or("no message after the listener stopped")?;
    assert_eq!(text(&m), "after");
    consumer.ack(&m)?;
    assert!(rx.try_recv().is_err());
    consumer.close()?;
    let admin = admin();
    assert!(eventually(Duration::from_secs(10), || admin
        .subscription_backlog(&topic, "s")
        .is_ok_and(|b| b == 0)));
    client.close()?;
    Ok(())
}

/// On a consumer of two topics (one of them partitioned), messages are acknowledged by their
/// `TopicMessageId`, rebuilt from the text forms of the topic and the id: a new consumer of the
/// subscription gets nothing again.
fn ack_by_topic_message_id(env: Env) -> TestResult {
    let client = client(&env)?;
    let admin = admin();
    let partitioned = unique_topic("capi-tmid-p");
    admin.create_partitioned(&partitioned, 3)?;
    let plain = unique_topic("capi-tmid");
    let topics = vec![partitioned.clone(), plain.clone()];
    let mut o = options("s");
    o.subscription_type = SubscriptionType::Shared;
    let consumer = client.consumer_topics(&topics, o.clone())?;
    // batched: ids with batch indexes and sizes
    let mut batched = ProducerOptions::default();
    batched.batching.enabled = true;
    let p1 = client.producer_with(&partitioned, batched, true)?;
    let p2 = client.producer(&plain)?;
    for i in 0..12 {
        p1.send_async(OutgoingMessage::new(format!("p{i}")).with_key(format!("k{i}")))?;
        p2.send_async(OutgoingMessage::new(format!("t{i}")))?;
    }
    p1.flush()?;
    p2.flush()?;
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    while seen.len() < 24 {
        let m = consumer
            .receive_within(RECEIVE)?
            .ok_or("missing messages")?;
        seen.insert(text(&m));
        // through the text form and back
        let tmid = m.topic_message_id();
        let id: MessageId = tmid.id.to_string().parse()?;
        assert_eq!(id, m.id, "{}", m.id);
        ids.push(TopicMessageId::new(tmid.topic.to_string(), id));
    }
    // the text of a topic message id names both
    let shown = ids[0].to_string();
    assert!(
        shown.contains('@') && shown.ends_with(&ids[0].id.to_string()),
        "{shown}"
    );
    for id in &ids {
        consumer.ack_topic_id(id)?;
    }
    // a topic the consumer does not read is refused
    let stranger = TopicMessageId::new(unique_topic("capi-other"), ids[0].id);
    assert!(consumer.ack_topic_id(&stranger).is_err());
    consumer.close()?;
    let again = client.consumer_topics(&topics, o)?;
    assert!(
        again.receive_within(Duration::from_secs(2))?.is_none(),
        "acknowledged messages came again"
    );
    again.close()?;
    client.close()?;
    Ok(())
}

/// A consumer that starts paused gets nothing and the broker sees no permits; resumed, it gets
/// everything. Paused again after some messages, it only gets what the broker had permits for,
/// and after the resume the rest: every message once, in order.
fn pause_and_resume_lose_nothing(env: Env) -> TestResult {
    let client = client(&env)?;
    let admin = admin();
    let topic = unique_topic("capi-pause");
    let mut o = options("s");
    o.receiver_queue_size = 10;
    o.start_paused = true;
    let mut consumer = client.consumer(&topic, o)?;
    assert!(consumer.is_paused());
    let producer = client.producer_with(&topic, unbatched(), true)?;
    for i in 0..60 {
        producer.send_async(OutgoingMessage::new(format!("m{i}")))?;
    }
    producer.flush()?;
    assert!(consumer.receive_within(Duration::from_secs(1))?.is_none());
    assert_eq!(available_permits(&admin, &topic, "s"), vec![0]);

    consumer.resume()?;
    assert!(!consumer.is_paused());
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
        got.push(text(&m));
    }
    consumer.pause()?;
    // at most a queue's worth (10 permits, half refilled) arrives; then nothing
    let mut while_paused = 0;
    while let Some(m) = consumer.receive_within(Duration::from_secs(1))? {
        consumer.ack(&m)?;
        got.push(text(&m));
        while_paused += 1;
        assert!(while_paused <= 20, "messages keep coming while paused");
    }
    assert!(got.len() < 60, "everything came while paused");
    assert!(eventually(Duration::from_secs(5), || available_permits(
        &admin, &topic, "s"
    ) == vec![0]));
    consumer.resume()?;
    while got.len() < 60 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
        got.push(text(&m));
    }
    assert_eq!(got, (0..60).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(consumer
        .receive_within(Duration::from_millis(500))?
        .is_none());
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// A tombstone (null value) arrives with `value()` `None` and `null_value` set, batched or not,
/// beside an empty value that is not a tombstone.
fn tombstones_are_none(env: Env) -> TestResult {
    let client = client(&env)?;
    let topic = unique_topic("capi-tombstone");
    let consumer = client.consumer(&topic, options("s"))?;
    for batched in [false, true] {
        let mut o = ProducerOptions::default();
        o.batching.enabled = batched;
        let producer = client.producer_with(&topic, o, true)?;
        producer.send_async(OutgoingMessage::new("v1").with_key("a"))?;
        producer.send_async(OutgoingMessage::tombstone("a"))?;
        producer.send_async(OutgoingMessage::new("").with_key("b"))?;
        producer.flush()?;
        producer.close()?;
        let mut got = Vec::new();
        for _ in 0..3 {
            let m = consumer
                .receive_within(RECEIVE)?
                .ok_or("no message within the timeout")?;
            consumer.ack(&m)?;
            got.push((m.key.clone(), m.null_value, m.value().map(|v| v.to_vec())));
        }
        assert_eq!(
            got,
            vec![
                (Some("a".into()), false, Some(b"v1".to_vec())),
                (Some("a".into()), true, None),
                (Some("b".into()), false, Some(Vec::new())),
            ],
            "batched: {batched}"
        );
    }
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// The async consumers are `FusedStream`s: `select!` over a consumer and a timer, the consumer
/// ending once closed.
#[test]
fn fused_stream_in_select() -> TestResult {
    use futures::{select, FutureExt, StreamExt};
    for rt in [Rt::Tokio, Rt::Smol] {
        let env = Env::new(rt);
        let client = client(&env)?;
        let topic = unique_topic("capi-select");
        let TConsumer::Async(_, mut consumer) = client.consumer(&topic, options("s"))? else {
            unreachable!("an async runtime");
        };
        let producer = client.producer(&topic)?;
        for i in 0..3 {
            producer.send(OutgoingMessage::new(format!("m{i}")))?;
        }
        let got = env.block_on(async {
            let mut got = Vec::new();
            loop {
                let mut tick = futures_timer(&env, Duration::from_millis(700)).fuse();
                select! {
                    m = consumer.select_next_some() => {
                        let m = m?;
                        consumer.ack(&m)?;
                        got.push(text(&m));
                    }
                    _ = tick => break,
                }
            }
            Ok::<_, pulsar_async::Error>(got)
        })?;
        assert_eq!(got, ["m0", "m1", "m2"]);
        assert!(!futures::stream::FusedStream::is_terminated(&consumer));
        client.close()?;
        // closed with its client: the stream ends and stays ended
        let next = env.block_on(consumer.next());
        assert!(next.is_none(), "{next:?}");
        assert!(futures::stream::FusedStream::is_terminated(&consumer));
    }
    Ok(())
}

/// A timer future of the test's runtime.
fn futures_timer(env: &Env, d: Duration) -> futures::future::BoxFuture<'static, ()> {
    match env.rt {
        Rt::Tokio => Box::pin(tokio::time::sleep(d)),
        _ => Box::pin(async move {
            smol::Timer::after(d).await;
        }),
    }
}

/// A table view of any runtime (only what the test uses).
enum TTable {
    Async(Env, pulsar_async::TableView),
    Blocking(pulsar_blocking::TableView),
}

impl TTable {
    fn create(client: &TClient, topic: &str) -> Result<TTable, pulsar_async::Error> {
        match client {
            TClient::Async(env, c) => env
                .block_on(c.table_view(topic).create())
                .map(|t| TTable::Async(env.clone(), t)),
            TClient::Blocking(c) => c.table_view(topic).create().map(TTable::Blocking),
        }
    }

    fn entries(&self) -> BTreeMap<String, String> {
        let entries = match self {
            TTable::Async(_, t) => t.entries(),
            TTable::Blocking(t) => t.entries(),
        };
        entries
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    fn listen(&self, f: impl FnMut(&str, Option<&bytes::Bytes>) + Send + 'static) {
        match self {
            TTable::Async(_, t) => t.listen(f),
            TTable::Blocking(t) => t.listen(f),
        }
    }

    fn refresh(&self) -> Result<(), pulsar_async::Error> {
        match self {
            TTable::Async(env, t) => env.block_on(t.refresh()),
            TTable::Blocking(t) => t.refresh(),
        }
    }
}

/// Ten keys on a topic of two partitions; five updated, two deleted by tombstones and one by an
/// empty value. Compacted through the admin REST API, the topic holds only the latest live
/// values (a compacted reader sees exactly those), and a table view holds the same map; later
/// updates and a deletion reach it and its listener, and `refresh` waits for them.
fn table_view_of_a_compacted_topic(env: Env) -> TestResult {
    let client = client(&env)?;
    let admin = admin();
    let topic = unique_topic("capi-table");
    admin.create_partitioned(&topic, 2)?;
    let producer = client.producer_with(&topic, unbatched(), true)?;
    let mut expected = BTreeMap::new();
    for i in 0..10 {
        producer.send(OutgoingMessage::new(format!("v0-{i}")).with_key(format!("k{i}")))?;
        expected.insert(format!("k{i}"), format!("v0-{i}"));
    }
    for i in 0..5 {
        producer.send(OutgoingMessage::new(format!("v1-{i}")).with_key(format!("k{i}")))?;
        expected.insert(format!("k{i}"), format!("v1-{i}"));
    }
    producer.send(OutgoingMessage::tombstone("k5"))?;
    producer.send(OutgoingMessage::tombstone("k6"))?;
    producer.send(OutgoingMessage::new("").with_key("k7"))?;
    for k in ["k5", "k6", "k7"] {
        expected.remove(k);
    }
    for p in 0..2 {
        admin.compact(&format!("{topic}-partition-{p}"), Duration::from_secs(60))?;
    }
    // the compacted topic: only the latest live value of each key
    let mut reader_options = pulsar_async::ReaderOptions::new(MessageId::EARLIEST);
    reader_options.read_compacted = true;
    let mut reader = client.reader(&topic, reader_options)?;
    let mut compacted = BTreeMap::new();
    while reader.has_message_available()? {
        let m = reader.receive()?;
        let key = m.key.clone().ok_or("a message without its key")?;
        assert!(
            compacted.insert(key, text(&m)).is_none(),
            "a key twice in the compacted topic"
        );
    }
    assert_eq!(compacted, expected, "the compacted topic");

    let table = TTable::create(&client, &topic)?;
    assert_eq!(table.entries(), expected, "the table view");
    let (tx, rx) = mpsc::channel();
    table.listen(move |k, v| {
        let _ = tx.send((
            k.to_owned(),
            v.map(|v| String::from_utf8_lossy(v).into_owned()),
        ));
    });
    producer.send(OutgoingMessage::new("v2-8").with_key("k8"))?;
    producer.send(OutgoingMessage::tombstone("k9"))?;
    producer.send(OutgoingMessage::new("no key"))?;
    producer.send(OutgoingMessage::new("v0-5").with_key("k5"))?;
    table.refresh()?;
    expected.insert("k8".into(), "v2-8".into());
    expected.remove("k9");
    expected.insert("k5".into(), "v0-5".into());
    assert_eq!(table.entries(), expected, "after the updates");
    let mut updates: Vec<(String, Option<String>)> = (0..3)
        .map(|_| rx.recv_timeout(RECEIVE))
        .collect::<Result<_, _>>()?;
    updates.sort();
    assert_eq!(
        updates,
        vec![
            ("k5".into(), Some("v0-5".into())),
            ("k8".into(), Some("v2-8".into())),
            ("k9".into(), None),
        ]
    );
    drop(table);
    client.close()?;
    Ok(())
}

/// A table view with a schema (INT64) holds the decoded values: the latest of each key, a
/// tombstone deletes, a payload that does not decode leaves its key as it was and is counted;
/// later updates reach the listener decoded.
fn typed_table_view(env: Env) -> TestResult {
    use pulsar_async::schema::{primitive, Schema};
    let client = client(&env)?;
    let topic = unique_topic("capi-typed-table");
    let producer = client.producer_with(&topic, unbatched(), true)?;
    let int = primitive::<i64>();
    let send = |key: &str, v: i64| -> Result<(), Box<dyn std::error::Error>> {
        let payload = int.encode(&v)?;
        producer.send(OutgoingMessage::new(payload).with_key(key))?;
        Ok(())
    };
    send("a", 1)?;
    send("b", 2)?;
    send("a", 3)?;
    send("c", 4)?;
    producer.send(OutgoingMessage::tombstone("c"))?;
    // three bytes are no INT64: "b" keeps 2
    producer.send(OutgoingMessage::new("bad").with_key("b"))?;
    let mut expected = BTreeMap::from([("a".to_owned(), 3i64), ("b".to_owned(), 2)]);
    let (tx, rx) = mpsc::channel();
    let check = |entries: BTreeMap<String, i64>, failures: u64| {
        assert_eq!(entries, expected, "the typed table view");
        assert_eq!(failures, 1, "one value did not decode");
    };
    match &client {
        TClient::Async(env, c) => {
            let view = env.block_on(c.table_view(&topic).schema(primitive::<i64>()).create())?;
            check(view.entries(), view.decode_failures());
            view.listen(move |k, v| {
                let _ = tx.send((k.to_owned(), v.copied()));
            });
            send("d", -5)?;
            env.block_on(view.refresh())?;
            expected.insert("d".into(), -5);
            assert_eq!(view.entries(), expected);
        }
        TClient::Blocking(c) => {
            let view = c.table_view(&topic).schema(primitive::<i64>()).create()?;
            check(view.entries(), view.decode_failures());
            view.listen(move |k, v| {
                let _ = tx.send((k.to_owned(), v.copied()));
            });
            send("d", -5)?;
            view.refresh()?;
            expected.insert("d".into(), -5);
            assert_eq!(view.entries(), expected);
        }
    }
    assert_eq!(rx.recv_timeout(RECEIVE)?, ("d".to_owned(), Some(-5)));
    client.close()?;
    Ok(())
}

/// The official Python client: sends a value and a tombstone for one key each, batched and not,
/// then reads back what this client sent and prints, per message, the key and `None` for a
/// null value.
const PYTHON_TOMBSTONES: &str = r#"
import sys, pulsar
url, to_rust, from_rust = sys.argv[1], sys.argv[2], sys.argv[3]
client = pulsar.Client(url)
for batched in (False, True):
    p = client.create_producer(to_rust, batching_enabled=batched)
    p.send(b"py-value", partition_key="py-%s" % batched)
    p.send(None, partition_key="py-%s" % batched)
    p.flush()
    p.close()
reader = client.create_reader(from_rust, pulsar.MessageId.earliest)
for _ in range(2):
    m = reader.read_next(15000)
    value = None if m.has_null_value() else m.data().decode()
    print("RESULT %s=%s" % (m.partition_key(), value))
client.close()
"#;

/// Tombstones both ways with the official Python client: its null values arrive with
/// `value()` `None` (batched or not), and ours are null values for it.
#[test]
fn tombstones_interoperate_with_python() -> TestResult {
    let env = Env::new(Rt::Blocking);
    let client = client(&env)?;
    let to_rust = unique_topic("capi-py-tomb-in");
    let from_rust = unique_topic("capi-py-tomb-out");
    let consumer = client.consumer(&to_rust, options("s"))?;
    let producer = client.producer_with(&from_rust, unbatched(), true)?;
    producer.send(OutgoingMessage::new("rust-value").with_key("rust"))?;
    producer.send(OutgoingMessage::tombstone("rust"))?;
    let out = support::python_command()
        .args([
            "-c",
            PYTHON_TOMBSTONES,
            &support::broker().service_url,
            &to_rust,
            &from_rust,
        ])
        .output()?;
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    // (the client's own log lines go to stdout too)
    let lines: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .collect();
    assert_eq!(lines, ["rust=rust-value", "rust=None"]);
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = consumer
            .receive_within(RECEIVE)?
            .ok_or("no message from python")?;
        consumer.ack(&m)?;
        got.push((
            m.key.clone().unwrap_or_default(),
            m.value().map(|v| String::from_utf8_lossy(v).into_owned()),
        ));
    }
    assert_eq!(
        got,
        [
            ("py-False".to_owned(), Some("py-value".to_owned())),
            ("py-False".to_owned(), None),
            ("py-True".to_owned(), Some("py-value".to_owned())),
            ("py-True".to_owned(), None),
        ]
    );
    consumer.close()?;
    client.close()?;
    Ok(())
}

/// Tombstones both ways with the official Java client: its null values (batched or not) arrive
/// with `value()` `None`; ours read as null values there, and its TableView drops their keys.
#[test]
fn tombstones_interoperate_with_java() -> TestResult {
    let program = support::JavaProgram::compile("TombstoneInterop")?;
    let env = Env::new(Rt::Blocking);
    let client = client(&env)?;
    let to_rust = unique_topic("capi-java-tomb-in");
    let from_rust = unique_topic("capi-java-tomb-out");
    let consumer = client.consumer(&to_rust, options("s"))?;
    let producer = client.producer_with(&from_rust, unbatched(), true)?;
    producer.send(OutgoingMessage::new("v1").with_key("gone"))?;
    producer.send(OutgoingMessage::tombstone("gone"))?;
    producer.send(OutgoingMessage::new("v2").with_key("kept"))?;
    let out = program
        .command([
            support::broker().service_url.as_str(),
            &to_rust,
            &from_rust,
            "3",
        ])
        .output()?;
    assert!(
        out.status.success(),
        "java failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let results: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .collect();
    assert_eq!(results, ["gone=v1", "gone=null", "kept=v2"]);
    let table: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.strip_prefix("TABLE "))
        .collect();
    assert_eq!(table, ["kept=v2"]);
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = consumer
            .receive_within(RECEIVE)?
            .ok_or("no message from java")?;
        consumer.ack(&m)?;
        got.push((
            m.key.clone().unwrap_or_default(),
            m.value().map(|v| String::from_utf8_lossy(v).into_owned()),
        ));
    }
    assert_eq!(
        got,
        [
            ("java-false".to_owned(), Some("java-value".to_owned())),
            ("java-false".to_owned(), None),
            ("java-true".to_owned(), Some("java-value".to_owned())),
            ("java-true".to_owned(), None),
        ]
    );
    consumer.close()?;
    client.close()?;
    Ok(())
}
