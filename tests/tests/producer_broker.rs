//! The core producer against a real broker: 100,000 batched messages per compression codec read
//! back intact (by the official Python client), delayed delivery, key routing on a partitioned
//! topic, a topic unloaded mid-stream, and a broker restarted mid-stream with deduplication.

mod producer_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use producer_support::{bulk_payload, python_read, Driver, TestResult};
use pulsar_core::compression::CompressionType;
use pulsar_core::routing::{partition_for_key, HashingScheme};
use pulsar_core::{
    BatchingOptions, ConsumerOptions, Event, InitialPosition, OutgoingMessage, ProducerOptions,
    SubscriptionType,
};
use pulsar_tests::support::{
    admin, broker, create_partitioned, unique_topic, BrokerOptions, BrokerProcess,
};

/// Python body checking that message `n` is `bulk_payload(n)`; at most a few mismatches reported.
const CHECK_BULK: &str = r#"
    exp = ("%08d|" % n + "".join(chr(97 + j % 26) for j in range(n % 64))).encode()
    if msg.data() != exp:
        out.append({"bad": n, "got": msg.data()[:20].decode("latin-1")})
        if len(out) > 5:
            break"#;

fn bulk(codec: CompressionType) -> TestResult {
    const N: usize = 100_000;
    let url = &broker().service_url;
    let topic = unique_topic(&format!("prod-bulk-{}", codec.name().to_lowercase()));
    let mut d = Driver::new(url)?;
    let mut opts = ProducerOptions::default()
        .with_compression(codec)
        .with_batching(BatchingOptions::enabled());
    opts.max_pending_messages = 10_000;
    let p = d.producer(&topic, opts)?;
    let started = Instant::now();
    let results = d.produce(
        p,
        (0..N).map(|i| OutgoingMessage::new(bulk_payload(i))),
        Duration::from_secs(300),
    )?;
    let elapsed = started.elapsed();
    let mut batches = BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        let id = r.as_ref().map_err(|e| format!("message {i}: {e}"))?;
        assert!(id.batch_index >= 0 && id.batch_size >= 1, "{id:?}");
        batches.insert((id.ledger_id, id.entry_id));
    }
    eprintln!(
        "{codec}: {N} messages in {} batches, {elapsed:?}",
        batches.len()
    );
    assert!(batches.len() < N / 10, "messages were batched");
    d.close()?;
    let out = python_read(url, &topic, N, "", CHECK_BULK)?;
    assert_eq!(out, serde_json::json!([]), "{codec}");
    Ok(())
}

#[test]
fn hundred_thousand_batched_messages_uncompressed() -> TestResult {
    bulk(CompressionType::None)
}

#[test]
fn hundred_thousand_batched_messages_lz4() -> TestResult {
    bulk(CompressionType::Lz4)
}

#[test]
fn hundred_thousand_batched_messages_zlib() -> TestResult {
    bulk(CompressionType::Zlib)
}

#[test]
fn hundred_thousand_batched_messages_zstd() -> TestResult {
    bulk(CompressionType::Zstd)
}

#[test]
fn hundred_thousand_batched_messages_snappy() -> TestResult {
    bulk(CompressionType::Snappy)
}

#[test]
fn delayed_delivery_holds_the_message_back() -> TestResult {
    let url = &broker().service_url;
    let topic = unique_topic("prod-delayed");
    let mut d = Driver::new(url)?;
    let mut copts = ConsumerOptions::new("delayed");
    copts.subscription_type = SubscriptionType::Shared;
    copts.initial_position = InitialPosition::Earliest;
    let c = d.client.subscribe(Instant::now(), &topic, copts)?;
    d.wait_for(Duration::from_secs(30), |e| {
        matches!(e, Event::ConsumerReady { consumer } if *consumer == c).then_some(())
    })?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let sent_at = Instant::now();
    let r = d.produce(
        p,
        [
            OutgoingMessage::new(&b"later"[..]).with_deliver_after(Duration::from_secs(3)),
            OutgoingMessage::new(&b"now"[..]),
        ],
        Duration::from_secs(30),
    )?;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 && Instant::now() < end {
        d.step()?;
        while let Some(m) = d.client.receive(Instant::now(), c) {
            got.push((m.payload.clone(), sent_at.elapsed()));
            d.client.ack(Instant::now(), c, &m.id)?;
        }
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(&got[0].0[..], b"now");
    assert_eq!(&got[1].0[..], b"later");
    assert!(got[0].1 < Duration::from_secs(2), "{got:?}");
    assert!(got[1].1 >= Duration::from_millis(2_900), "{got:?}");
    d.close()
}

#[test]
fn keys_land_on_the_partition_their_hash_names() -> TestResult {
    let url = &broker().service_url;
    for (scheme, name) in [
        (HashingScheme::JavaStringHash, "java"),
        (HashingScheme::Murmur3_32, "murmur"),
    ] {
        let topic = unique_topic(&format!("prod-keys-{name}"));
        create_partitioned(&topic, 5)?;
        let mut d = Driver::new(url)?;
        let opts = ProducerOptions::default()
            .with_hashing_scheme(scheme)
            .with_batching(BatchingOptions::enabled());
        let p = d.producer(&topic, opts)?;
        let keys: Vec<String> = (0..300).map(|i| format!("customer-{i}")).collect();
        let r = d.produce(
            p,
            keys.iter()
                .map(|k| OutgoingMessage::new(k.clone()).with_key(k.clone())),
            Duration::from_secs(60),
        )?;
        let mut used = BTreeSet::new();
        for (k, r) in keys.iter().zip(&r) {
            let id = r.as_ref().map_err(|e| e.to_string())?;
            assert_eq!(
                id.partition as u32,
                partition_for_key(k, 5, scheme),
                "{name} {k}"
            );
            used.insert(id.partition);
        }
        assert_eq!(used.len(), 5);
        d.close()?;
        // what the broker stored agrees: every message read back from the partition it names
        let out = python_read(
            url,
            &topic,
            keys.len(),
            "",
            "    out.append([msg.partition_key(), msg.topic_name()])",
        )?;
        for pair in out.as_array().ok_or("list")? {
            let key = pair[0].as_str().ok_or("key")?;
            let topic_name = pair[1].as_str().ok_or("topic")?;
            let expected = partition_for_key(key, 5, scheme);
            assert!(
                topic_name.ends_with(&format!("-partition-{expected}")),
                "{key} in {topic_name}"
            );
        }
    }
    Ok(())
}

/// Indices of `bulk_payload` payloads, in the order read.
fn read_indices(
    url: &str,
    topic: &str,
    count: usize,
) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let out = python_read(url, topic, count, "", "    out.append(int(msg.data()[:8]))")?;
    out.as_array()
        .ok_or("list")?
        .iter()
        .map(|v| {
            v.as_u64()
                .ok_or_else(|| format!("not an index: {v}").into())
        })
        .collect()
}

#[test]
fn a_topic_unloaded_mid_stream_loses_nothing_and_keeps_the_order() -> TestResult {
    const N: usize = 20_000;
    let url = &broker().service_url;
    let topic = unique_topic("prod-unload");
    let mut d = Driver::new(url)?;
    let mut opts = ProducerOptions::with_name("unloader").with_batching(
        BatchingOptions::enabled().with_limits(100, 128 * 1024, Duration::from_millis(1)),
    );
    opts.max_pending_messages = 2_000;
    let p = d.producer(&topic, opts)?;
    let first = d.produce(
        p,
        (0..N / 2).map(|i| OutgoingMessage::new(bulk_payload(i))),
        Duration::from_secs(60),
    )?;
    // send the second half and unload the topic while it is in flight
    let mut pending = Vec::new();
    for i in N / 2..N / 2 + 1_000 {
        pending.push(
            d.client
                .send(Instant::now(), p, OutgoingMessage::new(bulk_payload(i)))?,
        );
    }
    d.turn()?;
    let path = pulsar_tests::support::topic_admin_path(&topic)?;
    let r = admin()?.request("PUT", &format!("/admin/v2/{path}/unload"), None)?;
    assert!(r.is_success(), "unload: {}", r.text());
    let rest = d.produce(
        p,
        (N / 2 + 1_000..N).map(|i| OutgoingMessage::new(bulk_payload(i))),
        Duration::from_secs(120),
    )?;
    // the 1000 sent around the unload complete too
    let mut early = 0;
    let end = Instant::now() + Duration::from_secs(60);
    while early < pending.len() && Instant::now() < end {
        d.step()?;
        d.events.retain(|e| match e {
            Event::SendCompleted { send, result, .. } if pending.contains(send) => {
                assert!(result.is_ok(), "{result:?}");
                early += 1;
                false
            }
            _ => true,
        });
    }
    assert_eq!(early, pending.len());
    assert!(first.iter().chain(&rest).all(Result::is_ok));
    let reconnects = d.client.stats().producers[0].reconnects;
    eprintln!("unload: producer reconnected {reconnects} time(s)");
    assert!(reconnects >= 1, "the unload closed the producer");
    d.close()?;
    let got = read_indices(url, &topic, N)?;
    // every message, in order (no broker deduplication here: a resend may only repeat a tail)
    let mut expected = 0u64;
    for i in &got {
        assert!(*i <= expected, "gap: {i} after {expected}");
        if *i == expected {
            expected += 1;
        }
    }
    assert_eq!(expected as usize, N);
    Ok(())
}

#[test]
fn a_broker_restart_mid_stream_with_deduplication_stores_every_message_exactly_once() -> TestResult
{
    const N: usize = 30_000;
    let mut own = BrokerProcess::start(BrokerOptions::new().dedup())?;
    let url = own.info().service_url.clone();
    let topic = unique_topic("prod-dedup");
    let mut d = Driver::new(&url)?;
    let mut opts = ProducerOptions::with_name("dedup-producer")
        .with_batching(BatchingOptions::enabled().with_limits(
            50,
            128 * 1024,
            Duration::from_millis(1),
        ))
        .with_send_timeout(Duration::ZERO);
    opts.max_pending_messages = 5_000;
    let p = d.producer(&topic, opts)?;
    let first = d.produce(
        p,
        (0..N / 3).map(|i| OutgoingMessage::new(bulk_payload(i))),
        Duration::from_secs(60),
    )?;
    assert!(first.iter().all(Result::is_ok));
    // restart the broker while the next messages are in flight
    let restarter = std::thread::spawn(move || {
        let r = own.restart().map_err(|e| e.to_string());
        (own, r)
    });
    let rest = d.produce(
        p,
        (N / 3..N).map(|i| OutgoingMessage::new(bulk_payload(i))),
        Duration::from_secs(400),
    )?;
    let (own, restarted) = restarter.join().map_err(|_| "restart thread panicked")?;
    restarted?;
    let failed: Vec<_> = rest.iter().filter(|r| r.is_err()).collect();
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(3)]);
    let reconnects = d.client.stats().producers[0].reconnects;
    eprintln!("restart: producer reconnected {reconnects} time(s)");
    assert!(reconnects >= 1);
    d.close()?;
    let got = read_indices(&url, &topic, N)?;
    let expected: Vec<u64> = (0..N as u64).collect();
    assert_eq!(got.len(), N);
    assert!(got == expected, "exactly once, in order");
    drop(own);
    Ok(())
}
