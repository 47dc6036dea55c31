//! Partitioned producers: one application handle over every partition, eager or lazy partition
//! producers, routing (key hash, round robin, single partition, custom), partition growth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use producer_util::{completions, count, hold_then, sent, sim_at};
use pulsar_core::routing::{partition_for_key, HashingScheme, MessageRouter};
use pulsar_core::{
    BatchingOptions, Event, OutgoingMessage, ProducerId, ProducerOptions, RoutingMode,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{HookCtx, Reply, Sim, SERVICE};

const TOPIC: &str = "persistent://public/default/pt";

/// A broker where `pt` has `partitions` partitions (changeable).
fn partitioned_sim(partitions: Rc<Cell<u32>>) -> Sim {
    let mut sim = sim_at(1_000_000);
    sim.hook(SERVICE, metadata(partitions));
    sim
}

/// Answers PARTITIONED_METADATA: `pt` has `partitions` partitions.
fn metadata(
    partitions: Rc<Cell<u32>>,
) -> impl FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>> + 'static {
    move |_, cmd| {
        let m = cmd.partition_metadata.as_deref()?;
        let n = if m.topic == TOPIC {
            partitions.get()
        } else {
            0
        };
        Some(vec![support::partitioned_metadata(m.request_id, n)])
    }
}

fn create(sim: &mut Sim, opts: ProducerOptions) -> ProducerId {
    let p = sim.client.create_producer(sim.now, "pt", opts).unwrap();
    sim.run_until_seen(
        Duration::from_secs(5),
        |e| matches!(e, Event::ProducerReady { producer, .. } if *producer == p),
    );
    p
}

/// Wire producer id -> partition index, from the PRODUCER commands.
fn partition_of(sim: &Sim) -> BTreeMap<u64, u32> {
    sim.received_of(Type::Producer)
        .iter()
        .map(|r| {
            let c = r.command.producer.as_deref().unwrap();
            let index = c
                .topic
                .rsplit_once("-partition-")
                .map(|(_, i)| i.parse().unwrap())
                .expect("a partition topic");
            (c.producer_id, index)
        })
        .collect()
}

/// The partition each SEND went to, in order.
fn sent_partitions(sim: &Sim) -> Vec<u32> {
    let map = partition_of(sim);
    sent(sim).iter().map(|s| map[&s.send.producer_id]).collect()
}

#[test]
fn eager_producer_registers_every_partition_and_routes_keys_like_java() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(4)));
    let p = create(&mut sim, ProducerOptions::with_name("pp"));
    let regs = partition_of(&sim);
    assert_eq!(regs.len(), 4);
    assert_eq!(
        regs.values()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        (0..4).collect()
    );
    assert!(
        !regs.contains_key(&p.get()),
        "the application handle is not a wire id"
    );
    assert_eq!(
        count(&sim, |e| matches!(e, Event::ProducerReady { .. })),
        1,
        "ready once, for the application handle"
    );
    for r in sim.received_of(Type::Producer) {
        let c = r.command.producer.as_deref().unwrap();
        assert_eq!(c.producer_name.as_deref(), Some("pp"));
    }
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let sends: Vec<_> = keys
        .iter()
        .map(|k| {
            sim.client
                .send(
                    sim.now,
                    p,
                    OutgoingMessage::new(&b"v"[..]).with_key(k.clone()),
                )
                .unwrap()
        })
        .collect();
    sim.run_until_idle();
    let expected: Vec<u32> = keys
        .iter()
        .map(|k| partition_for_key(k, 4, HashingScheme::JavaStringHash))
        .collect();
    assert_eq!(sent_partitions(&sim), expected);
    assert!(expected.iter().any(|&x| x != expected[0]), "keys spread");
    // completions carry the application handle and the partition
    let done = completions(&sim);
    assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), sends);
    for (d, part) in done.iter().zip(&expected) {
        assert_eq!(d.1.as_ref().unwrap().partition, *part as i32);
    }
    assert!(sim.events.iter().all(|(_, e)| match e {
        Event::SendCompleted { producer, .. } => *producer == p,
        _ => true,
    }));
    assert_eq!(sim.client.stats().producers.len(), 4);
    assert!(sim.client.stats().producers.iter().all(|s| s.id == p));
}

#[test]
fn murmur3_hashing_is_an_option() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(7)));
    let p = create(
        &mut sim,
        ProducerOptions::default().with_hashing_scheme(HashingScheme::Murmur3_32),
    );
    let keys: Vec<String> = (0..30).map(|i| format!("user-{i}")).collect();
    for k in &keys {
        sim.client
            .send(
                sim.now,
                p,
                OutgoingMessage::new(&b"v"[..]).with_key(k.clone()),
            )
            .unwrap();
    }
    sim.run_until_idle();
    let expected: Vec<u32> = keys
        .iter()
        .map(|k| partition_for_key(k, 7, HashingScheme::Murmur3_32))
        .collect();
    assert_eq!(sent_partitions(&sim), expected);
    let java: Vec<u32> = keys
        .iter()
        .map(|k| partition_for_key(k, 7, HashingScheme::JavaStringHash))
        .collect();
    assert_ne!(expected, java);
}

#[test]
fn round_robin_cycles_unbatched_and_sticks_to_a_partition_per_time_slot_when_batching() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(3)));
    let p = create(&mut sim, ProducerOptions::default());
    for _ in 0..6 {
        sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    }
    sim.run_until_idle();
    let parts = sent_partitions(&sim);
    let start = parts[0];
    let expected: Vec<u32> = (0..6).map(|i| (start + i) % 3).collect();
    assert_eq!(parts, expected);

    let mut sim = partitioned_sim(Rc::new(Cell::new(3)));
    let opts = ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
        1000,
        1 << 20,
        Duration::from_millis(1),
    ));
    let p = create(&mut sim, opts);
    // a 10 ms slot (10 × max delay): everything sent within it goes to one partition
    for _ in 0..5 {
        sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    }
    sim.run_for(Duration::from_millis(10));
    for _ in 0..5 {
        sim.client.send_payload(sim.now, p, &b"y"[..]).unwrap();
    }
    sim.run_for(Duration::from_millis(2));
    let s = sent(&sim);
    assert_eq!(s.len(), 2, "one batch per slot");
    assert_eq!(s[0].send.num_messages, Some(5));
    let parts = sent_partitions(&sim);
    assert_eq!(
        (parts[0] + 1) % 3,
        parts[1],
        "the next slot, the next partition"
    );
}

#[test]
fn single_partition_mode_pins_keyless_messages_and_still_hashes_keys() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(5)));
    let p = create(
        &mut sim,
        ProducerOptions::default().with_routing(RoutingMode::SinglePartition),
    );
    for _ in 0..10 {
        sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    }
    sim.client
        .send(sim.now, p, OutgoingMessage::new(&b"k"[..]).with_key("abc"))
        .unwrap();
    sim.run_until_idle();
    let parts = sent_partitions(&sim);
    assert!(parts[..10].iter().all(|&x| x == parts[0]));
    assert_eq!(
        parts[10],
        partition_for_key("abc", 5, HashingScheme::JavaStringHash)
    );
}

/// Sends everything to the last partition, and remembers what it was asked.
struct Last(Arc<AtomicU32>);

impl MessageRouter for Last {
    fn choose_partition(&mut self, _key: Option<&str>, n: u32, _now_ms: u64) -> u32 {
        self.0.store(n, Ordering::Relaxed);
        n - 1
    }
}

#[test]
fn a_custom_router_decides_and_partition_growth_is_detected_and_used() {
    let partitions = Rc::new(Cell::new(2));
    let mut sim = partitioned_sim(partitions.clone());
    let seen = Arc::new(AtomicU32::new(0));
    let mut opts =
        ProducerOptions::default().with_routing(RoutingMode::Custom(Box::new(Last(seen.clone()))));
    opts.partitions_check_interval = Duration::from_secs(10);
    let p = create(&mut sim, opts);
    sim.client
        .send(sim.now, p, OutgoingMessage::new(&b"a"[..]).with_key("k"))
        .unwrap();
    sim.run_until_idle();
    assert_eq!(seen.load(Ordering::Relaxed), 2);
    assert_eq!(sent_partitions(&sim), vec![1]);
    let metadata_before = sim.received_of(Type::PartitionedMetadata).len();
    partitions.set(3);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.received_of(Type::PartitionedMetadata).len(),
        metadata_before + 1,
        "checked after the interval"
    );
    // eager: the new partition has a producer now
    assert_eq!(partition_of(&sim).len(), 3);
    sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_until_idle();
    assert_eq!(seen.load(Ordering::Relaxed), 3);
    assert_eq!(sent_partitions(&sim), vec![1, 2]);
    // and again every interval
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.received_of(Type::PartitionedMetadata).len(),
        metadata_before + 2
    );
}

#[test]
fn lazy_partitions_are_created_on_their_first_message() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(4)));
    let mut opts = ProducerOptions::default().with_routing(RoutingMode::SinglePartition);
    opts.lazy_partitions = true;
    let p = create(&mut sim, opts);
    assert_eq!(partition_of(&sim).len(), 1, "one partition up front");
    let first = *partition_of(&sim).values().next().unwrap();
    sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_until_idle();
    assert_eq!(
        sent_partitions(&sim),
        vec![first],
        "keyless: the pinned partition"
    );
    // a key that hashes elsewhere creates that partition's producer
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| partition_for_key(k, 4, HashingScheme::JavaStringHash) != first)
        .unwrap();
    let target = partition_for_key(&key, 4, HashingScheme::JavaStringHash);
    let s = sim
        .client
        .send(sim.now, p, OutgoingMessage::new(&b"y"[..]).with_key(key))
        .unwrap();
    sim.run_until_idle();
    assert_eq!(partition_of(&sim).len(), 2);
    assert_eq!(sent_partitions(&sim), vec![first, target]);
    let done = completions(&sim);
    assert_eq!(done[1].0, s);
    assert_eq!(done[1].1.as_ref().unwrap().partition, target as i32);
    assert_eq!(count(&sim, |e| matches!(e, Event::ProducerReady { .. })), 1);
}

#[test]
fn sends_before_the_partition_count_is_known_are_routed_in_order() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(2)));
    let p = sim
        .client
        .create_producer(sim.now, "pt", ProducerOptions::default())
        .unwrap();
    let keys = ["a", "b", "c", "d"];
    let sends: Vec<_> = keys
        .iter()
        .map(|k| {
            sim.client
                .send(sim.now, p, OutgoingMessage::new(&b"v"[..]).with_key(*k))
                .unwrap()
        })
        .collect();
    assert!(
        sent(&sim).is_empty(),
        "nothing is sent before the partition count is known"
    );
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    sim.run_until_idle();
    let expected: Vec<u32> = keys
        .iter()
        .map(|k| partition_for_key(k, 2, HashingScheme::JavaStringHash))
        .collect();
    assert_ne!(expected[0], expected[1]);
    // partitions become ready in their own time: order holds per partition
    let done: BTreeMap<_, _> = completions(&sim).into_iter().collect();
    assert_eq!(done.len(), 4);
    let parts: Vec<u32> = sends
        .iter()
        .map(|s| done[s].as_ref().unwrap().partition as u32)
        .collect();
    assert_eq!(parts, expected);
    let seqs: Vec<(u32, u64)> = sent(&sim)
        .iter()
        .map(|s| (partition_of(&sim)[&s.send.producer_id], s.send.sequence_id))
        .collect();
    for part in 0..2 {
        let of: Vec<u64> = seqs.iter().filter(|x| x.0 == part).map(|x| x.1).collect();
        assert_eq!(of, vec![0, 1], "partition {part}");
    }
}

#[test]
fn reconnection_flush_and_close_are_reported_under_the_application_handle() {
    let mut sim = sim_at(0);
    let held = hold_then(&mut sim, metadata(Rc::new(Cell::new(3))));
    let p = create(&mut sim, ProducerOptions::default());
    for i in 0..6u8 {
        sim.client.send_payload(sim.now, p, vec![i]).unwrap();
    }
    let f = sim.client.flush(sim.now, p).unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    held.auto.set(true);
    held.held.borrow_mut().clear();
    sim.broker_close(conn);
    sim.run_for(Duration::from_secs(2));
    let reconnecting = count(
        &sim,
        |e| matches!(e, Event::ProducerReconnecting { producer, .. } if *producer == p),
    );
    let reconnected = count(
        &sim,
        |e| matches!(e, Event::ProducerReconnected { producer } if *producer == p),
    );
    assert_eq!(
        (reconnecting, reconnected),
        (3, 3),
        "one per partition: {:#?}",
        sim.events
    );
    assert!(sim.events.iter().all(
        |(_, e)| !matches!(e, Event::ProducerReconnecting { producer, .. } if *producer != p)
    ));
    assert!(sim.events.iter().any(|(_, e)| *e
        == Event::FlushCompleted {
            producer: p,
            request: f
        }));
    assert_eq!(completions(&sim).len(), 6);
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::CloseProducer).len(), 3);
    assert_eq!(
        count(&sim, |e| *e
            == Event::ProducerClosed {
                producer: p,
                error: None
            }),
        1
    );
    assert!(sim.client.stats().producers.is_empty());
}

#[test]
fn a_partition_failing_at_creation_fails_the_whole_producer() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(3)));
    sim.hook(SERVICE, |_, cmd| {
        if let Some(m) = cmd.partition_metadata.as_deref() {
            return Some(vec![support::partitioned_metadata(m.request_id, 3)]);
        }
        let p = cmd.producer.as_deref()?;
        p.topic.ends_with("-partition-1").then(|| {
            vec![Reply::Cmd(
                pb::CommandError {
                    request_id: p.request_id,
                    error: 4,
                    message: "not authorized".into(),
                }
                .into(),
            )]
        })
    });
    let p = sim
        .client
        .create_producer(sim.now, "pt", ProducerOptions::default())
        .unwrap();
    let s = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    let Event::ProducerFailed { producer, error } = e else {
        unreachable!()
    };
    assert_eq!(producer, p);
    assert_eq!(
        error.server_code(),
        Some(pulsar_core::ServerErrorCode::AuthorizationError)
    );
    let done = completions(&sim);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, s);
    assert!(done[0].1.is_err());
    sim.run_until_idle();
    assert!(sim.client.stats().producers.is_empty());
    assert_eq!(count(&sim, |e| matches!(e, Event::ProducerReady { .. })), 0);
}

#[test]
fn a_partitioned_producers_stats_sum_its_partitions_under_the_topics_name() {
    let mut sim = partitioned_sim(Rc::new(Cell::new(3)));
    let p = create(&mut sim, ProducerOptions::default());
    for _ in 0..9 {
        sim.client.send_payload(sim.now, p, &b"abcd"[..]).unwrap();
    }
    sim.run_until_idle();
    assert_eq!(completions(&sim).len(), 9);

    // the client's snapshot lists each partition on its own, under the application's id
    let parts: Vec<_> = sim
        .client
        .stats()
        .producers
        .into_iter()
        .filter(|s| s.id == p)
        .collect();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|s| s.messages_sent == 3), "{parts:?}");

    let total = sim.client.producer_stats(p).expect("a known producer");
    assert_eq!(total.id, p);
    assert_eq!(total.topic, TOPIC);
    assert_eq!(total.state, pulsar_core::ResourceState::Ready);
    assert_eq!(total.messages_sent, 9);
    assert_eq!(total.batches_sent, 9);
    assert_eq!(total.bytes_sent, 36);
    assert_eq!(total.messages_acked, 9);
    assert_eq!(total.receipts_received, 9);
    assert_eq!(total.messages_failed, 0);
    assert_eq!(total.pending_messages, 0);
}

#[test]
fn a_partitioned_producer_not_yet_routed_counts_what_it_holds_as_pending() {
    let mut sim = sim_at(1_000_000);
    // no answer to PARTITIONED_METADATA: the partition count stays unknown
    sim.hook(SERVICE, |_, cmd| {
        cmd.partition_metadata.as_ref().map(|_| vec![])
    });
    let p = sim
        .client
        .create_producer(sim.now, "pt", ProducerOptions::default())
        .unwrap();
    sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.client.send_payload(sim.now, p, &b"y"[..]).unwrap();
    let total = sim
        .client
        .producer_stats(p)
        .expect("a producer being created");
    assert_eq!(total.state, pulsar_core::ResourceState::LookingUp);
    assert_eq!(total.pending_messages, 2);
    assert_eq!(total.messages_sent, 0);
}
