//! The pulsar-core consumer against the real broker (127.0.0.1:6650), through a minimal blocking
//! driver: every subscription type, ack modes (individual, cumulative, batch messages), negative
//! acks and the ack timeout with redelivery counts, the dead-letter topic, readers (earliest,
//! latest, message id inclusive or not), seek by id and by time, last message id, partitioned and
//! pattern subscriptions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pulsar_core::{
    BatchingOptions, ConsumerId, ConsumerOptions, DeadLetterPolicy, Event, InitialPosition,
    MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SeekTo, SubscriptionType,
};
use pulsar_tests::support::{broker, create_partitioned, texts, unique_topic, unix_ms, CoreDriver};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The shared core driver, on the shared test broker.
fn driver() -> R<CoreDriver> {
    CoreDriver::new(&broker().service_url, 11)
}

/// A reader of `topic` starting inclusively at the latest message, once it is ready.
fn inclusive_latest_reader(d: &mut CoreDriver, topic: &str) -> R<ConsumerId> {
    let r = d.client.create_reader(
        Instant::now(),
        topic,
        ReaderOptions::new(MessageId::LATEST).inclusive(),
    )?;
    d.ready(r)
}

fn earliest(sub: &str) -> ConsumerOptions {
    ConsumerOptions::new(sub).with_initial_position(InitialPosition::Earliest)
}

fn batching() -> ProducerOptions {
    let mut o = ProducerOptions::default();
    o.batching = BatchingOptions::enabled().with_limits(1000, 1 << 20, Duration::from_millis(50));
    o
}

#[test]
fn exclusive_and_failover_and_shared_subscriptions() -> R {
    let topic = unique_topic("cons-types");
    let mut d = driver()?;
    // Exclusive: a second consumer is refused
    let _a = d.subscribe(&topic, earliest("excl"))?;
    let b = d
        .client
        .subscribe(Instant::now(), &topic, earliest("excl"))?;
    let e = d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::ConsumerFailed { consumer, .. } if *consumer == b),
    )?;
    assert!(matches!(e, Event::ConsumerFailed { .. }), "{e:?}");

    // Failover: exactly one consumer is told it is active
    let f1 = d.subscribe(&topic, earliest("fo").with_type(SubscriptionType::Failover))?;
    let f2 = d.subscribe(&topic, earliest("fo").with_type(SubscriptionType::Failover))?;
    d.wait(Duration::from_secs(30), |e| {
        matches!(e, Event::ActiveConsumerChanged { active: true, .. })
    })?;
    let active: BTreeSet<ConsumerId> = d
        .events
        .iter()
        .filter_map(|e| match e {
            Event::ActiveConsumerChanged {
                consumer,
                active: true,
                ..
            } => Some(*consumer),
            _ => None,
        })
        .collect();
    assert!(active.len() == 1 && (active.contains(&f1) || active.contains(&f2)));

    // Shared: two consumers split the messages, together they get each once
    let s1 = d.subscribe(
        &topic,
        earliest("sh")
            .with_type(SubscriptionType::Shared)
            .with_receiver_queue_size(5),
    )?;
    let s2 = d.subscribe(
        &topic,
        earliest("sh")
            .with_type(SubscriptionType::Shared)
            .with_receiver_queue_size(5),
    )?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let payloads: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    d.send_payloads(p, &refs)?;
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while got1.len() + got2.len() < 40 && Instant::now() < end {
        while let Some(m) = d.client.receive(Instant::now(), s1) {
            d.client.ack_message(Instant::now(), &m)?;
            got1.push(m);
        }
        while let Some(m) = d.client.receive(Instant::now(), s2) {
            d.client.ack_message(Instant::now(), &m)?;
            got2.push(m);
        }
        d.idle()?;
    }
    assert!(
        !got1.is_empty() && !got2.is_empty(),
        "{} / {}",
        got1.len(),
        got2.len()
    );
    let mut all: Vec<String> = texts(&got1).into_iter().chain(texts(&got2)).collect();
    all.sort();
    let mut want = payloads.clone();
    want.sort();
    assert_eq!(all, want);
    d.close()
}

#[test]
fn key_shared_keeps_each_key_on_one_consumer_in_order() -> R {
    let topic = unique_topic("cons-keyshared");
    let mut d = driver()?;
    let opts = || earliest("ks").with_type(SubscriptionType::KeyShared);
    let k1 = d.subscribe(&topic, opts())?;
    let k2 = d.subscribe(&topic, opts())?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let msgs = (0..60)
        .map(|i| {
            OutgoingMessage::new(format!("{}", i / 6).into_bytes())
                .with_key(format!("key-{}", i % 6))
        })
        .collect();
    d.send_all(p, msgs)?;
    let mut per_consumer: BTreeMap<String, BTreeSet<ConsumerId>> = BTreeMap::new();
    let mut order: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let end = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while n < 60 && Instant::now() < end {
        for c in [k1, k2] {
            while let Some(m) = d.client.receive(Instant::now(), c) {
                let key = m.key.clone().unwrap_or_default();
                per_consumer.entry(key.clone()).or_default().insert(c);
                order
                    .entry(key)
                    .or_default()
                    .push(String::from_utf8_lossy(&m.payload).parse()?);
                d.client.ack_message(Instant::now(), &m)?;
                n += 1;
            }
        }
        d.idle()?;
    }
    assert_eq!(n, 60);
    assert!(
        per_consumer.values().all(|s| s.len() == 1),
        "{per_consumer:?}"
    );
    for (k, seq) in &order {
        assert_eq!(*seq, (0..10).collect::<Vec<u32>>(), "order of {k}");
    }
    d.close()
}

#[test]
fn acks_individual_and_cumulative_survive_a_resubscription() -> R {
    let topic = unique_topic("cons-acks");
    let mut d = driver()?;
    let c = d.subscribe(&topic, earliest("s"))?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let payloads: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    d.send_payloads(p, &refs)?;
    let got = d.take(c, 10, Duration::from_secs(30))?;
    assert_eq!(texts(&got), payloads);
    // m0..=m3 cumulatively, m5 and m7 individually; m4, m6, m8, m9 stay unacknowledged
    d.client.ack_cumulative_message(Instant::now(), &got[3])?;
    d.client.ack_message(Instant::now(), &got[5])?;
    d.client.ack_message(Instant::now(), &got[7])?;
    d.client.close_consumer(Instant::now(), c)?; // flushes the grouped acks first
    d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::ConsumerClosed { consumer, .. } if *consumer == c),
    )?;
    let c2 = d.subscribe(&topic, earliest("s"))?;
    let again = texts(&d.during(c2, Duration::from_secs(3))?);
    assert_eq!(again, vec!["m4", "m6", "m8", "m9"]);
    d.close()
}

#[test]
fn acking_part_of_a_batch_keeps_its_neighbours() -> R {
    // The broker here has acknowledgmentAtBatchIndexLevelEnabled=false (the default): the batch is
    // tracked locally and acknowledged as a whole once every message of it is.
    let topic = unique_topic("cons-batch-acks");
    let mut d = driver()?;
    let c = d.subscribe(&topic, earliest("s"))?;
    let p = d.producer(&topic, batching())?;
    let payloads: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
    d.send_payloads(p, &refs)?;
    let got = d.take(c, 6, Duration::from_secs(30))?;
    assert!(got.iter().all(|m| m.id.batch_size == 6), "one batch");
    for i in [0, 2, 4] {
        d.client.ack_message(Instant::now(), &got[i])?;
    }
    // the broker redelivers the whole batch; only the unacknowledged messages reach the app
    d.client.redeliver_unacknowledged(Instant::now(), c)?;
    let again = d.take(c, 3, Duration::from_secs(30))?;
    assert_eq!(texts(&again), vec!["b1", "b3", "b5"]);
    assert!(d.during(c, Duration::from_secs(1))?.is_empty());
    for m in &again {
        d.client.ack_message(Instant::now(), m)?;
    }
    d.client.close_consumer(Instant::now(), c)?;
    d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::ConsumerClosed { consumer, .. } if *consumer == c),
    )?;
    let c2 = d.subscribe(&topic, earliest("s"))?;
    assert!(
        d.during(c2, Duration::from_secs(3))?.is_empty(),
        "the whole batch is acknowledged"
    );
    d.close()
}

#[test]
fn negative_acks_and_ack_timeout_redeliver_with_counts() -> R {
    let topic = unique_topic("cons-nack");
    let mut d = driver()?;
    let c = d.subscribe(
        &topic,
        earliest("s")
            .with_type(SubscriptionType::Shared)
            .with_negative_ack_delay(Duration::from_millis(500))
            .with_ack_timeout(Duration::from_secs(2)),
    )?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    d.send_payloads(p, &["nack-me", "forget-me"])?;
    let got = d.take(c, 2, Duration::from_secs(30))?;
    let t0 = Instant::now();
    let nacked = got
        .iter()
        .find(|m| &m.payload[..] == b"nack-me")
        .ok_or("missing")?;
    d.client.negative_ack_message(Instant::now(), nacked)?;
    // both come back: one after the nack delay, one after the ack timeout, counted
    let again = d.take(c, 2, Duration::from_secs(30))?;
    let elapsed = t0.elapsed();
    for m in &again {
        assert_eq!(m.redelivery_count, 1, "{:?}", texts(&again));
        d.client.ack_message(Instant::now(), m)?;
    }
    let mut t = texts(&again);
    t.sort();
    assert_eq!(t, vec!["forget-me", "nack-me"]);
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    d.close()
}

#[test]
fn messages_failing_too_often_land_in_the_dead_letter_topic() -> R {
    let topic = unique_topic("cons-dlq");
    let dlq = format!("{topic}-s-DLQ");
    let mut d = driver()?;
    let dl = d.subscribe(&dlq, earliest("dlq-reader"))?;
    let c = d.subscribe(
        &topic,
        earliest("s")
            .with_type(SubscriptionType::Shared)
            .with_negative_ack_delay(Duration::from_millis(200))
            .with_ack_group_time(Duration::ZERO)
            .with_dead_letter(DeadLetterPolicy::new(2)),
    )?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let ids = d.send_all(
        p,
        vec![OutgoingMessage::new(&b"poison"[..])
            .with_key("k1")
            .with_property("origin", "test")],
    )?;
    let mut counts = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        if let Some(m) = d.client.receive(Instant::now(), c) {
            counts.push(m.redelivery_count);
            d.client.negative_ack_message(Instant::now(), &m)?;
        }
        if let Some(m) = d.client.receive(Instant::now(), dl) {
            break m;
        }
        if Instant::now() > end {
            return Err(format!("nothing in the DLQ; deliveries {counts:?}").into());
        }
        d.idle()?;
    };
    assert_eq!(
        counts,
        vec![0, 1, 2],
        "delivered until the limit, then dead-lettered"
    );
    assert_eq!(&dead.payload[..], b"poison");
    assert_eq!(dead.key.as_deref(), Some("k1"));
    assert_eq!(dead.property("origin"), Some("test"));
    assert_eq!(dead.property("REAL_TOPIC"), Some(topic.as_str()));
    let origin = ids[0];
    assert_eq!(
        dead.property("ORIGIN_MESSAGE_ID"),
        Some(format!("{}:{}:-1", origin.ledger_id, origin.entry_id).as_str())
    );
    // and acknowledged on its topic: nothing more arrives
    assert!(d.during(c, Duration::from_secs(2))?.is_empty());
    d.close()
}

#[test]
fn readers_start_where_asked_and_seek_by_id_and_time() -> R {
    let topic = unique_topic("cons-reader");
    let mut d = driver()?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let before = unix_ms();
    let ids = d.send_payloads(p, &["r0", "r1", "r2", "r3", "r4"])?;
    std::thread::sleep(Duration::from_millis(1100));
    // Publish times come from the client's clock (wall time at creation plus elapsed time): a
    // margin keeps a small offset between it and this reading from moving the boundary.
    let middle = unix_ms() - 500;
    let ids2 = d.send_payloads(p, &["r5", "r6"])?;
    assert!(middle > before);

    let read = |d: &mut CoreDriver, opts: ReaderOptions, n: usize| -> R<Vec<String>> {
        let r = d.client.create_reader(Instant::now(), &topic, opts)?;
        d.ready(r)?;
        let got = if n == 0 {
            d.during(r, Duration::from_secs(2))?
        } else {
            d.take(r, n, Duration::from_secs(30))?
        };
        Ok(texts(&got))
    };
    assert_eq!(
        read(&mut d, ReaderOptions::new(MessageId::EARLIEST), 7)?.len(),
        7
    );
    assert!(read(&mut d, ReaderOptions::new(MessageId::LATEST), 0)?.is_empty());
    assert_eq!(
        read(&mut d, ReaderOptions::new(ids[2]), 4)?,
        vec!["r3", "r4", "r5", "r6"]
    );
    assert_eq!(
        read(&mut d, ReaderOptions::new(ids[2]).inclusive(), 5)?,
        vec!["r2", "r3", "r4", "r5", "r6"]
    );

    // last message id / has_message_available
    let r = d.client.create_reader(
        Instant::now(),
        &topic,
        ReaderOptions::new(MessageId::EARLIEST),
    )?;
    d.ready(r)?;
    let q = d.client.get_last_message_ids(Instant::now(), r)?;
    let e = d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::LastMessageIds { request, .. } if *request == q),
    )?;
    let Event::LastMessageIds { result, .. } = e else {
        unreachable!()
    };
    let last = result?;
    assert_eq!(last[0].id.entry_id, ids2[1].entry_id);
    let has = |d: &mut CoreDriver| -> R<bool> {
        let q = d.client.has_message_available(Instant::now(), r)?;
        match d.wait(
            Duration::from_secs(30),
            |e| matches!(e, Event::HasMessageAvailable { request, .. } if *request == q),
        )? {
            Event::HasMessageAvailable { result, .. } => Ok(result?),
            _ => unreachable!(),
        }
    };
    assert!(has(&mut d)?);
    d.take(r, 7, Duration::from_secs(30))?;
    assert!(!has(&mut d)?);

    // seek by message id (delivery resumes after it) and by publish time
    let seek = |d: &mut CoreDriver, to: SeekTo| -> R {
        let q = d.client.seek(Instant::now(), r, to)?;
        match d.wait(
            Duration::from_secs(30),
            |e| matches!(e, Event::SeekCompleted { request, .. } if *request == q),
        )? {
            Event::SeekCompleted { result, .. } => Ok(result?),
            _ => unreachable!(),
        }
    };
    seek(&mut d, SeekTo::Id(ids[3]))?;
    assert_eq!(
        texts(&d.take(r, 3, Duration::from_secs(30))?),
        vec!["r4", "r5", "r6"]
    );
    seek(&mut d, SeekTo::PublishTime(middle))?;
    assert_eq!(
        texts(&d.take(r, 2, Duration::from_secs(30))?),
        vec!["r5", "r6"]
    );

    // a durable consumer seeks too
    let c = d.subscribe(&topic, earliest("seeker"))?;
    d.take(c, 7, Duration::from_secs(30))?;
    let q = d
        .client
        .seek(Instant::now(), c, SeekTo::Id(MessageId::EARLIEST))?;
    d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::SeekCompleted { request, result: Ok(()), .. } if *request == q),
    )?;
    assert_eq!(d.take(c, 7, Duration::from_secs(30))?.len(), 7);
    // and by publish time: the first message published at or after `middle`
    let q = d
        .client
        .seek(Instant::now(), c, SeekTo::PublishTime(middle))?;
    d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::SeekCompleted { request, result: Ok(()), .. } if *request == q),
    )?;
    assert_eq!(
        texts(&d.take(c, 2, Duration::from_secs(30))?),
        vec!["r5", "r6"]
    );

    // inclusive at the latest message: the last message, then what follows (Java's readNext
    // misses the last one, apache/pulsar#10483; Go's reader seeks to it, as this one does)
    let r = inclusive_latest_reader(&mut d, &topic)?;
    assert_eq!(texts(&d.take(r, 1, Duration::from_secs(30))?), vec!["r6"]);
    d.send_payloads(p, &["r7"])?;
    assert_eq!(texts(&d.take(r, 1, Duration::from_secs(30))?), vec!["r7"]);
    assert!(d.during(r, Duration::from_secs(1))?.is_empty());
    d.close()
}

#[test]
fn inclusive_reader_at_latest_reads_the_last_message_of_a_batch() -> R {
    let topic = unique_topic("cons-reader-head");
    let mut d = driver()?;
    let batching = BatchingOptions::enabled().with_limits(1000, 1 << 20, Duration::from_millis(50));
    let p = d.producer(&topic, ProducerOptions::default().with_batching(batching))?;
    let ids = d.send_payloads(p, &["b0", "b1", "b2"])?;
    assert!(
        ids.iter().all(|id| id.entry_id == ids[0].entry_id),
        "one batch: {ids:?}"
    );
    let r = inclusive_latest_reader(&mut d, &topic)?;
    assert_eq!(texts(&d.take(r, 1, Duration::from_secs(30))?), vec!["b2"]);
    assert!(d.during(r, Duration::from_secs(1))?.is_empty());
    d.close()
}

#[test]
fn partitioned_topics_are_consumed_as_one() -> R {
    let topic = unique_topic("cons-part");
    create_partitioned(&topic, 3)?;
    let mut d = driver()?;
    let c = d.subscribe(&topic, earliest("s").with_ack_group_time(Duration::ZERO))?;
    let p = d.producer(&topic, ProducerOptions::default())?;
    let msgs = (0..30)
        .map(|i| OutgoingMessage::new(format!("p{i}").into_bytes()).with_key(format!("k{i}")))
        .collect();
    d.send_all(p, msgs)?;
    let got = d.take(c, 30, Duration::from_secs(30))?;
    let partitions: BTreeSet<i32> = got.iter().map(|m| m.id.partition).collect();
    assert!(partitions.len() > 1, "{partitions:?}");
    for m in &got {
        assert!(m.topic.ends_with(&format!("-partition-{}", m.id.partition)));
        d.client.ack(Instant::now(), c, &m.id)?; // the partition names the wire consumer
    }
    let mut t = texts(&got);
    t.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(t, want);
    // a reader on the partitioned topic sees them all too
    let r = d.client.create_reader(
        Instant::now(),
        &topic,
        ReaderOptions::new(MessageId::EARLIEST),
    )?;
    d.ready(r)?;
    assert_eq!(d.take(r, 30, Duration::from_secs(30))?.len(), 30);
    d.close()
}

#[test]
fn pattern_subscriptions_follow_the_namespace() -> R {
    let prefix = unique_topic("cons-pat");
    let local = prefix.rsplit('/').next().ok_or("name")?.to_string();
    let t1 = format!("{prefix}-a");
    let t2 = format!("{prefix}-b");
    let mut d = driver()?;
    let p1 = d.producer(&t1, ProducerOptions::default())?;
    d.send_payloads(p1, &["a0"])?;
    let mut opts = earliest("s");
    opts.pattern_discovery_interval = Duration::from_secs(5);
    let c = d.client.subscribe_pattern(
        Instant::now(),
        &format!("persistent://public/default/{local}-.*"),
        opts,
    )?;
    d.ready(c)?;
    assert_eq!(texts(&d.take(c, 1, Duration::from_secs(30))?), vec!["a0"]);
    // a topic created later is joined (watcher or polling)
    let p2 = d.producer(&t2, ProducerOptions::default())?;
    d.send_payloads(p2, &["b0"])?;
    d.wait(
        Duration::from_secs(30),
        |e| matches!(e, Event::TopicsChanged { added, .. } if added.iter().any(|t| t == &t2)),
    )?;
    assert_eq!(texts(&d.take(c, 1, Duration::from_secs(30))?), vec!["b0"]);
    d.close()
}
