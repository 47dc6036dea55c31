//! Interoperability of the core producer with the official Python client (C++ core): what is
//! produced here (batched with each codec, chunked, with keys, ordering keys, properties, event
//! times, a JSON schema) is read there intact; and keys land on the same partitions as the official
//! clients send them (Python: BoostHash; Java's `pulsar-perf`: JavaStringHash).

mod producer_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use producer_support::{python, python_read, Driver, TestResult};
use pulsar_core::compression::CompressionType;
use pulsar_core::routing::{partition_for_key, HashingScheme};
use pulsar_core::{BatchingOptions, OutgoingMessage, ProducerOptions, SchemaInfo};
use pulsar_tests::support::{broker, create_partitioned, script_path, unique_topic};

/// Message `i` of the field test: payload, key, ordering key, properties, event time.
fn rich(i: usize) -> OutgoingMessage {
    let mut m = OutgoingMessage::new(Bytes::from(format!("payload-{i}-{}", "z".repeat(i % 40))))
        .with_property("index", i.to_string())
        .with_property("kind", "rich")
        .with_event_time(1_600_000_000_000 + i as u64);
    if !i.is_multiple_of(3) {
        m = m.with_key(format!("key-{}", i % 7));
    }
    if i.is_multiple_of(5) {
        m = m.with_ordering_key(format!("ord-{i}").into_bytes());
    }
    m
}

const CHECK_RICH: &str = r#"
    i = n
    want = {
        "data": "payload-%d-%s" % (i, "z" * (i % 40)),
        "key": ("key-%d" % (i % 7)) if i % 3 != 0 else "",
        "ord": ("ord-%d" % i) if i % 5 == 0 else "",
        "props": {"index": str(i), "kind": "rich"},
        "event": 1600000000000 + i,
    }
    ok = (msg.data().decode() == want["data"]
        and msg.partition_key() == want["key"]
        and text(msg.ordering_key()) == want["ord"]
        and msg.properties() == want["props"]
        and msg.event_timestamp() == want["event"]
        and msg.publish_timestamp() > 0
        and msg.producer_name() == "rich-producer")
    if not ok:
        out.append({"bad": i, "data": msg.data()[:30].decode("latin-1"), "key": msg.partition_key(),
                    "ord": text(msg.ordering_key()), "props": msg.properties(),
                    "event": msg.event_timestamp(), "producer": msg.producer_name()})
        if len(out) > 3:
            break"#;

fn rich_round_trip(codec: CompressionType, batching: bool) -> TestResult {
    const N: usize = 2_000;
    let url = &broker().service_url;
    let topic = unique_topic(&format!("prod-interop-{}", codec.name().to_lowercase()));
    let mut d = Driver::new(url)?;
    let mut opts = ProducerOptions::with_name("rich-producer").with_compression(codec);
    if batching {
        opts.batching = BatchingOptions::enabled();
    }
    let p = d.producer(&topic, opts)?;
    let r = d.produce(p, (0..N).map(rich), Duration::from_secs(60))?;
    assert!(r.iter().all(Result::is_ok), "{codec}");
    if batching {
        assert!(r
            .iter()
            .any(|x| x.as_ref().is_ok_and(|id| id.batch_size > 1)));
    }
    d.close()?;
    let setup =
        "def text(v):\n    return v.decode('latin-1') if isinstance(v, bytes) else (v or '')";
    let out = python_read(url, &topic, N, setup, CHECK_RICH)?;
    assert_eq!(out, serde_json::json!([]), "{codec} batching={batching}");
    Ok(())
}

#[test]
fn batched_messages_of_every_codec_are_read_intact_by_the_official_client() -> TestResult {
    for codec in CompressionType::ALL {
        rich_round_trip(codec, true)?;
    }
    Ok(())
}

#[test]
fn unbatched_compressed_messages_are_read_intact_by_the_official_client() -> TestResult {
    rich_round_trip(CompressionType::Zstd, false)?;
    rich_round_trip(CompressionType::Snappy, false)
}

#[test]
fn a_chunked_message_is_reassembled_by_the_official_client() -> TestResult {
    let url = &broker().service_url;
    let topic = unique_topic("prod-chunked");
    let mut d = Driver::new(url)?;
    let p = d.producer(
        &topic,
        ProducerOptions::with_name("chunker").with_chunking(),
    )?;
    // 12 MB: three chunks at the broker's 5 MiB limit; a small message on each side
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = d.produce(
        p,
        [
            OutgoingMessage::new(&b"before"[..]),
            OutgoingMessage::new(big)
                .with_key("big")
                .with_property("size", "12000000"),
            OutgoingMessage::new(&b"after"[..]),
        ],
        Duration::from_secs(120),
    )?;
    assert!(r.iter().all(Result::is_ok), "{r:?} {:?}", d.events);
    d.close()?;
    let out = python_read(
        url,
        &topic,
        3,
        "import hashlib",
        r#"    data = msg.data()
    out.append([len(data), hashlib.sha256(data).hexdigest()[:16], msg.partition_key(), msg.properties()])"#,
    )?;
    let expected_big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let sha = python(
        url,
        &format!(
            "import hashlib\nprint(hashlib.sha256(bytes(i % 251 for i in range({}))).hexdigest()[:16])",
            expected_big.len()
        ),
    )?;
    let rows = out.as_array().ok_or("list")?;
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0][0], 6);
    assert_eq!(rows[1][0], 12_000_000);
    assert_eq!(rows[1][1], serde_json::Value::String(sha));
    assert_eq!(rows[1][2], "big");
    assert_eq!(rows[1][3]["size"], "12000000");
    assert_eq!(rows[2][0], 5);
    Ok(())
}

#[test]
fn json_schema_messages_are_decoded_by_the_official_clients_json_schema() -> TestResult {
    let url = &broker().service_url;
    let topic = unique_topic("prod-json");
    let setup = r#"
class User(Record):
    id = Integer()
    name = String()
SUBSCRIBE = {"schema": JsonSchema(User)}
"#;
    // the definition the Python client declares for the same record
    let definition = python(
        url,
        "from pulsar.schema import *\nclass User(Record):\n    id = Integer()\n    name = String()\nprint(json.dumps(json.loads(JsonSchema(User).schema_info().schema())))",
    )?;
    let mut d = Driver::new(url)?;
    let p = d.producer(
        &topic,
        ProducerOptions::default().with_schema(SchemaInfo::json(definition)),
    )?;
    let msgs = (0..10).map(|i| {
        let json = pulsar_core::producer::schema::json_payload(
            &serde_json::json!({"id": i, "name": "ada"}),
        )
        .expect("serializable");
        OutgoingMessage::new(json)
    });
    let r = d.produce(p, msgs, Duration::from_secs(60))?;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    d.close()?;
    let out = python_read(
        url,
        &topic,
        10,
        setup,
        "    v = msg.value()\n    out.append([v.id, v.name, len(msg.schema_version() or b'')])",
    )?;
    let rows = out.as_array().ok_or("list")?;
    assert_eq!(rows.len(), 10, "{out}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i);
        assert_eq!(row[1], "ada");
        assert!(row[2].as_u64().unwrap_or(0) > 0, "a schema version: {row}");
    }
    Ok(())
}

/// Key -> partition, as the official Python producer (BoostHash) places them.
fn python_partitions(
    url: &str,
    topic: &str,
    keys: &[String],
) -> Result<BTreeMap<String, u32>, Box<dyn std::error::Error>> {
    let code = format!(
        r#"
keys = {keys:?}
producer = client.create_producer({topic:?})
for k in keys:
    producer.send(k.encode(), partition_key=k)
producer.close()
consumer = client.subscribe({topic:?}, "where", initial_position=pulsar.InitialPosition.Earliest)
seen = {{}}
for _ in keys:
    m = consumer.receive(timeout_millis=30000)
    seen[m.partition_key()] = int(m.topic_name().rsplit("-partition-", 1)[1])
    consumer.acknowledge(m)
print(json.dumps(seen))
"#
    );
    let out = python(url, &code)?;
    Ok(serde_json::from_str(&out)?)
}

#[test]
fn keys_go_to_the_same_partitions_as_the_official_python_producer_sends_them() -> TestResult {
    let url = &broker().service_url;
    let keys: Vec<String> = (0..120)
        .map(|i| format!("order-{i}-{}", "x".repeat(i % 9)))
        .collect();
    let topic = unique_topic("prod-boost");
    create_partitioned(&topic, 7)?;
    let theirs = python_partitions(url, &topic, &keys)?;
    assert_eq!(theirs.len(), keys.len());
    let mut d = Driver::new(url)?;
    let p = d.producer(
        &topic,
        ProducerOptions::default().with_hashing_scheme(HashingScheme::BoostHash),
    )?;
    let r = d.produce(
        p,
        keys.iter()
            .map(|k| OutgoingMessage::new(&b"v"[..]).with_key(k.clone())),
        Duration::from_secs(60),
    )?;
    for (k, r) in keys.iter().zip(&r) {
        let ours = r.as_ref().map_err(|e| e.to_string())?.partition as u32;
        assert_eq!(Some(&ours), theirs.get(k), "key {k}");
        assert_eq!(ours, partition_for_key(k, 7, HashingScheme::BoostHash));
    }
    d.close()
}

#[test]
fn keys_go_to_the_same_partitions_as_the_java_producer_sends_them() -> TestResult {
    // pulsar-perf (the Java client) with autoIncrement keys: message n has the key "n"
    let url = &broker().service_url;
    let topic = unique_topic("prod-java-keys");
    create_partitioned(&topic, 5)?;
    const N: usize = 1_000;
    // the script reads the shared broker's address from its home directory
    let out = std::process::Command::new(script_path())
        .arg("perf-produce")
        .arg(&topic)
        .args(["-m", &N.to_string(), "-r", "2000", "-s", "16"])
        .args(["--message-key-generation-mode", "autoIncrement", "-db"])
        .output()?;
    assert!(
        out.status.success(),
        "pulsar-perf failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = format!(
        r#"
consumer = client.subscribe({topic:?}, "where", initial_position=pulsar.InitialPosition.Earliest)
seen = []
for _ in range({N}):
    m = consumer.receive(timeout_millis=30000)
    seen.append([m.partition_key(), int(m.topic_name().rsplit("-partition-", 1)[1])])
    consumer.acknowledge(m)
print(json.dumps(seen))
"#
    );
    let placed: Vec<(String, u32)> = serde_json::from_str(&python(url, &code)?)?;
    assert_eq!(placed.len(), N);
    // pulsar-perf's keys repeat: each key must always be on one partition
    let mut java: BTreeMap<String, u32> = BTreeMap::new();
    for (k, part) in &placed {
        let first = *java.entry(k.clone()).or_insert(*part);
        assert_eq!(
            first, *part,
            "the Java producer put key {k} on two partitions"
        );
    }
    assert!(java.len() >= 10, "enough distinct keys: {java:?}");
    assert!(
        java.values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 3,
        "keys spread over partitions: {java:?}"
    );
    let mut d = Driver::new(url)?;
    let p = d.producer(&topic, ProducerOptions::default())?; // JavaStringHash by default
    let keys: Vec<&String> = java.keys().collect();
    let r = d.produce(
        p,
        keys.iter()
            .map(|k| OutgoingMessage::new(&b"v"[..]).with_key((*k).clone())),
        Duration::from_secs(60),
    )?;
    for (k, r) in keys.iter().zip(&r) {
        let ours = r.as_ref().map_err(|e| e.to_string())?.partition as u32;
        assert_eq!(ours, java[*k], "key {k}");
    }
    d.close()
}
