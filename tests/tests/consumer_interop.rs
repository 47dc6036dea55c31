//! Messages produced by the official Python client (`pulsar-client` from PyPI, the C++ client
//! underneath) and consumed by the pulsar-core consumer against the real broker: batched with each
//! compression codec, keys, ordering keys, properties, event times, a chunked message, and a
//! Key_Shared subscription keeping each key on one consumer in order. Fails (does not skip) when
//! the test interpreter ([`pulsar_tests::support::python_interpreter`]) cannot `import pulsar`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pulsar_core::{
    Client, ClientConfig, ConsumerId, ConsumerOptions, Event, InitialPosition, Message,
    SubscriptionType,
};
use pulsar_tests::support::{broker, python_command, unique_topic, unix_ms, StdSockets};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const PRODUCE: &str = r#"
import sys, pulsar
url, topic, mode = sys.argv[1], sys.argv[2], sys.argv[3]
client = pulsar.Client(url)
if mode == "codecs":
    for name in ["NONE", "LZ4", "ZLib", "ZSTD", "SNAPPY"]:
        p = client.create_producer(topic, compression_type=getattr(pulsar.CompressionType, name),
                                   batching_enabled=True, batching_max_messages=10,
                                   batching_max_publish_delay_ms=100)
        for i in range(20):
            p.send_async(("%s-%d-" % (name, i)).encode() + b"x" * (i * 37),
                         None, properties={"codec": name, "i": str(i)},
                         partition_key="k%d" % (i % 4), ordering_key="o%d" % (i % 2),
                         event_timestamp=1000 + i)
        p.flush()
        p.close()
    p = client.create_producer(topic, chunking_enabled=True, batching_enabled=False,
                               compression_type=pulsar.CompressionType.LZ4)
    big = bytes((i * 7 + i // 251) % 256 for i in range(6 * 1024 * 1024 + 123))
    p.send(big, properties={"chunked": "yes"}, partition_key="big")
    p.close()
elif mode == "keys":
    p = client.create_producer(topic, batching_enabled=True,
                               batching_type=pulsar.BatchingType.KeyBased,
                               batching_max_publish_delay_ms=20)
    for n in range(30):
        for k in range(8):
            p.send_async(("%d" % n).encode(), None, partition_key="key-%d" % k)
    p.flush()
    p.close()
client.close()
"#;

fn python(topic: &str, mode: &str) -> R {
    let out = python_command()
        .args(["-c", PRODUCE, &broker().service_url, topic, mode])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "python producer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

struct Driver {
    client: Client,
    io: StdSockets,
    events: Vec<Event>,
}

impl Driver {
    fn new() -> R<Driver> {
        let mut config = ClientConfig::new(broker().service_url.clone());
        config.unix_time_ms = unix_ms();
        Ok(Driver {
            client: Client::new(config, Instant::now())?,
            io: StdSockets::new(),
            events: Vec::new(),
        })
    }

    fn turn(&mut self) -> R<bool> {
        let events = &mut self.events;
        Ok(self.io.turn(&mut self.client, |e| events.push(e))?)
    }

    fn subscribe(&mut self, topic: &str, opts: ConsumerOptions) -> R<ConsumerId> {
        let c = self.client.subscribe(Instant::now(), topic, opts)?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if self
                .events
                .iter()
                .any(|e| matches!(e, Event::ConsumerReady { consumer } if *consumer == c))
            {
                return Ok(c);
            }
            if Instant::now() > end {
                return Err(format!("not subscribed: {:?}", self.events).into());
            }
            if !self.turn()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Receives from `consumers` until `n` messages in total arrived.
    fn take(&mut self, consumers: &[ConsumerId], n: usize) -> R<Vec<(ConsumerId, Message)>> {
        let end = Instant::now() + Duration::from_secs(60);
        let mut got = Vec::new();
        while got.len() < n {
            for c in consumers {
                while let Some(m) = self.client.receive(Instant::now(), *c) {
                    self.client.ack_message(Instant::now(), &m)?;
                    got.push((*c, m));
                }
            }
            if Instant::now() > end {
                return Err(
                    format!("{} of {n} messages; events {:?}", got.len(), self.events).into(),
                );
            }
            if !self.turn()? {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(got)
    }
}

#[test]
fn batched_compressed_and_chunked_messages_from_the_python_client() -> R {
    let topic = unique_topic("interop-consume");
    let mut d = Driver::new()?;
    let c = d.subscribe(
        &topic,
        ConsumerOptions::new("s").with_initial_position(InitialPosition::Earliest),
    )?;
    python(&topic, "codecs")?;
    let got = d.take(&[c], 5 * 20 + 1)?;
    assert!(
        !d.events
            .iter()
            .any(|e| matches!(e, Event::ReceiveFailed { .. })),
        "{:?}",
        d.events
    );
    let mut seen = BTreeSet::new();
    let mut batched = 0;
    for (_, m) in &got {
        if m.property("chunked") == Some("yes") {
            let want: Vec<u8> = (0..6 * 1024 * 1024 + 123usize)
                .map(|i| ((i * 7 + i / 251) % 256) as u8)
                .collect();
            assert!(m.payload[..] == want[..], "chunked payload intact");
            assert_eq!(m.key.as_deref(), Some("big"));
            seen.insert("chunked".to_string());
            continue;
        }
        let codec = m.property("codec").ok_or("codec property")?;
        let i: usize = m.property("i").ok_or("i property")?.parse()?;
        let mut want = format!("{codec}-{i}-").into_bytes();
        want.extend(std::iter::repeat_n(b'x', i * 37));
        assert_eq!(&m.payload[..], &want[..], "{codec} {i}");
        assert_eq!(m.key.as_deref(), Some(format!("k{}", i % 4).as_str()));
        assert_eq!(
            m.ordering_key.as_deref(),
            Some(format!("o{}", i % 2).as_bytes())
        );
        assert_eq!(m.event_time, Some(1000 + i as u64));
        if m.id.batch_size > 1 {
            batched += 1;
        }
        assert!(seen.insert(format!("{codec}-{i}")), "duplicate {codec}-{i}");
    }
    assert_eq!(seen.len(), 101);
    assert!(batched >= 50, "most messages came in batches ({batched})");
    // per producer, in order
    for codec in ["NONE", "LZ4", "ZLib", "ZSTD", "SNAPPY"] {
        let order: Vec<usize> = got
            .iter()
            .filter(|(_, m)| m.property("codec") == Some(codec))
            .filter_map(|(_, m)| m.property("i").and_then(|i| i.parse().ok()))
            .collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>(), "{codec}");
    }
    Ok(())
}

#[test]
fn key_shared_with_python_key_based_batches_keeps_per_key_order() -> R {
    let topic = unique_topic("interop-keys");
    let mut d = Driver::new()?;
    let opts = || {
        ConsumerOptions::new("ks")
            .with_type(SubscriptionType::KeyShared)
            .with_initial_position(InitialPosition::Earliest)
    };
    let a = d.subscribe(&topic, opts())?;
    let b = d.subscribe(&topic, opts())?;
    python(&topic, "keys")?;
    let got = d.take(&[a, b], 30 * 8)?;
    let mut order: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut owner: BTreeMap<String, BTreeSet<ConsumerId>> = BTreeMap::new();
    for (c, m) in &got {
        let key = m.key.clone().ok_or("key")?;
        owner.entry(key.clone()).or_default().insert(*c);
        order
            .entry(key)
            .or_default()
            .push(String::from_utf8_lossy(&m.payload).parse()?);
    }
    assert_eq!(order.len(), 8);
    for (k, seq) in &order {
        assert_eq!(*seq, (0..30).collect::<Vec<u32>>(), "order of {k}");
    }
    assert!(owner.values().all(|s| s.len() == 1), "{owner:?}");
    let used: BTreeSet<ConsumerId> = owner.values().flatten().copied().collect();
    assert_eq!(used.len(), 2, "both consumers got keys");
    Ok(())
}
