//! Producer batching: triggers (count, bytes, delay, flush), several batches in flight, key-based
//! batching, messages that never join a batch, and per-message receipts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use bytes::Bytes;
use producer_util::{completions, hold, ready, sent, sim_at};
use pulsar_core::{BatchingOptions, Event, MessageId, OutgoingMessage, ProducerOptions, SendId};

fn batching(max_messages: usize, max_bytes: usize, max_delay: Duration) -> ProducerOptions {
    ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
        max_messages,
        max_bytes,
        max_delay,
    ))
}

#[test]
fn defaults_are_1000_messages_128_kib_1_ms_and_off() {
    let d = BatchingOptions::default();
    assert!(!d.enabled);
    assert_eq!(d.max_messages, 1000);
    assert_eq!(d.max_bytes, 128 * 1024);
    assert_eq!(d.max_delay, Duration::from_millis(1));
    assert!(BatchingOptions::enabled().enabled);
}

#[test]
fn a_full_batch_goes_at_once_and_each_message_gets_its_batch_index() {
    let mut sim = sim_at(1_000);
    let p = ready(&mut sim, "t", batching(3, 1 << 20, Duration::from_secs(1)));
    let sends: Vec<SendId> = (0..7u8)
        .map(|i| {
            let m = OutgoingMessage::new(vec![i; 5])
                .with_key(format!("k{i}"))
                .with_property("i", i.to_string())
                .with_event_time(500 + u64::from(i));
            sim.client.send(sim.now, p, m).unwrap()
        })
        .collect();
    sim.run_until_idle();
    let s = sent(&sim);
    assert_eq!(s.len(), 2, "two full batches, the 7th message waits");
    for (b, x) in s.iter().enumerate() {
        let first = 3 * b as u64;
        assert_eq!(x.send.sequence_id, first);
        assert_eq!(x.send.num_messages, Some(3));
        assert_eq!(x.send.highest_sequence_id, Some(first + 2));
        assert_eq!(x.metadata.num_messages_in_batch, Some(3));
        assert_eq!(x.metadata.sequence_id, first);
        assert_eq!(x.metadata.highest_sequence_id, Some(first + 2));
        assert_eq!(x.metadata.publish_time, 1_000);
        assert_eq!(x.metadata.partition_key, None, "not key-based");
        let entries = x.entries();
        assert_eq!(entries.len(), 3);
        for (j, (m, payload)) in entries.iter().enumerate() {
            let i = first + j as u64;
            assert_eq!(m.sequence_id, Some(i));
            assert_eq!(m.partition_key.as_deref(), Some(format!("k{i}").as_str()));
            assert_eq!(m.event_time, Some(500 + i));
            assert_eq!(m.properties[0].value, i.to_string());
            assert_eq!(payload, &Bytes::from(vec![i as u8; 5]));
            assert_eq!(m.payload_size, 5);
        }
    }
    // the delay sends the last one
    let t = sim.client.poll_timeout().unwrap();
    assert_eq!(t - sim.now, Duration::from_secs(1));
    sim.run_for(Duration::from_secs(1));
    let s = sent(&sim);
    assert_eq!(s.len(), 3);
    assert_eq!(s[2].send.num_messages, Some(1));
    assert_eq!(s[2].send.highest_sequence_id, None);
    let done = completions(&sim);
    let expected: Vec<_> = sends
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut id = MessageId::new(7, i as u64 / 3, -1);
            id.batch_index = (i % 3) as i32;
            id.batch_size = if i < 6 { 3 } else { 1 };
            (*s, Ok(id))
        })
        .collect();
    assert_eq!(done, expected);
}

#[test]
fn a_batch_closes_before_it_would_exceed_max_bytes() {
    let mut sim = sim_at(0);
    let p = ready(&mut sim, "t", batching(1000, 100, Duration::from_secs(1)));
    for _ in 0..5 {
        sim.client.send_payload(sim.now, p, vec![1u8; 40]).unwrap();
    }
    sim.run_until_idle();
    let s = sent(&sim);
    // 40+40 fit, a third would make 120 > 100
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].send.num_messages, Some(2));
    assert_eq!(s[1].send.num_messages, Some(2));
    sim.client.send_payload(sim.now, p, vec![1u8; 60]).unwrap();
    sim.run_until_idle();
    // 40 + 60 = 100 reaches the limit: sent at once
    let s = sent(&sim);
    assert_eq!(s.len(), 3);
    assert_eq!(s[2].send.num_messages, Some(2));
}

#[test]
fn the_delay_sends_a_partial_batch_via_the_timer() {
    let mut sim = sim_at(0);
    let p = ready(
        &mut sim,
        "t",
        batching(1000, 1 << 20, Duration::from_millis(1)),
    );
    let start = sim.now;
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.run_for(Duration::from_micros(500));
    sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.run_until_idle();
    assert!(sent(&sim).is_empty());
    assert_eq!(
        sim.client.poll_timeout(),
        Some(start + Duration::from_millis(1))
    );
    sim.run_for(Duration::from_micros(500));
    let s = sent(&sim);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].send.num_messages, Some(2));
    assert_eq!(completions(&sim).len(), 2);
}

#[test]
fn several_batches_are_in_flight_and_complete_in_order() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let mut opts = batching(10, 1 << 20, Duration::from_secs(1));
    opts.max_pending_messages = 100;
    let p = ready(&mut sim, "t", opts);
    let sends: Vec<SendId> = (0..40u8)
        .map(|i| sim.client.send_payload(sim.now, p, vec![i]).unwrap())
        .collect();
    sim.run_until_idle();
    assert_eq!(
        held.held.borrow().len(),
        4,
        "four batches written before any receipt"
    );
    assert!(completions(&sim).is_empty());
    held.release(&mut sim, 0);
    let done: Vec<SendId> = completions(&sim).into_iter().map(|c| c.0).collect();
    assert_eq!(done, sends);
}

#[test]
fn key_based_batching_makes_one_batch_per_key_numbered_in_wire_order() {
    let mut sim = sim_at(0);
    let opts = ProducerOptions::default().with_batching(BatchingOptions::key_based());
    let p = ready(&mut sim, "t", opts);
    let msgs = [Some("b"), Some("a"), None, Some("b"), Some("a"), Some("c")];
    let sends: Vec<SendId> = msgs
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut m = OutgoingMessage::new(vec![i as u8]);
            if let Some(k) = k {
                m = m.with_key(*k);
            }
            sim.client.send(sim.now, p, m).unwrap()
        })
        .collect();
    // an ordering key groups on its own, even with a partition key
    sim.client
        .send(
            sim.now,
            p,
            OutgoingMessage::new(&b"o"[..])
                .with_key("a")
                .with_ordering_key(&b"ord"[..]),
        )
        .unwrap();
    sim.run_for(Duration::from_millis(1));
    let s = sent(&sim);
    let groups: Vec<(Option<String>, Option<Bytes>, Vec<u64>)> = s
        .iter()
        .map(|x| {
            (
                x.metadata.partition_key.clone(),
                x.metadata.ordering_key.clone(),
                x.entries()
                    .iter()
                    .map(|(m, _)| m.sequence_id.unwrap())
                    .collect(),
            )
        })
        .collect();
    // batches in the order of their oldest message, sequence ids assigned as they close (so they
    // increase along the wire, as a deduplicating broker needs)
    assert_eq!(
        groups,
        vec![
            (Some("b".into()), None, vec![0, 1]),
            (Some("a".into()), None, vec![2, 3]),
            (None, None, vec![4]),
            (Some("c".into()), None, vec![5]),
            (Some("a".into()), Some(Bytes::from_static(b"ord")), vec![6]),
        ]
    );
    // receipts complete messages by batch: b's first
    let done: Vec<SendId> = completions(&sim).into_iter().map(|c| c.0).collect();
    assert_eq!(done.len(), 7);
    assert_eq!(&done[..2], &[sends[0], sends[3]]);
}

#[test]
fn delayed_and_oversized_messages_go_alone_after_the_open_batch() {
    let mut sim = sim_at(10_000);
    let p = ready(&mut sim, "t", batching(1000, 100, Duration::from_secs(1)));
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.client
        .send(
            sim.now,
            p,
            OutgoingMessage::new(&b"later"[..]).with_deliver_after(Duration::from_secs(3)),
        )
        .unwrap();
    sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    sim.client.send_payload(sim.now, p, vec![7u8; 101]).unwrap();
    sim.client.send_payload(sim.now, p, &b"c"[..]).unwrap();
    sim.run_for(Duration::from_secs(1));
    let s = sent(&sim);
    let shape: Vec<(u64, Option<i32>, Option<i64>)> = s
        .iter()
        .map(|x| {
            (
                x.send.sequence_id,
                x.metadata.num_messages_in_batch,
                x.metadata.deliver_at_time,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (0, Some(1), None),
            (1, None, Some(13_000)),
            (2, Some(1), None),
            (3, None, None),
            (4, Some(1), None),
        ]
    );
    assert_eq!(s[3].payload.len(), 101);
}

#[test]
fn flush_sends_the_open_batch_and_completes_after_the_receipts() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let p = ready(
        &mut sim,
        "t",
        batching(1000, 1 << 20, Duration::from_secs(10)),
    );
    sim.client.send_payload(sim.now, p, &b"a"[..]).unwrap();
    sim.client.send_payload(sim.now, p, &b"b"[..]).unwrap();
    let f = sim.client.flush(sim.now, p).unwrap();
    sim.run_until_idle();
    assert_eq!(
        held.held.borrow().len(),
        1,
        "sent without waiting for the delay"
    );
    // a message after the flush does not hold it back
    sim.client.send_payload(sim.now, p, &b"c"[..]).unwrap();
    sim.run_until_idle();
    let flushed = |sim: &support::Sim| {
        sim.events.iter().any(|(_, e)| {
            *e == Event::FlushCompleted {
                producer: p,
                request: f,
            }
        })
    };
    assert!(!flushed(&sim));
    held.release(&mut sim, 0);
    assert!(flushed(&sim));
    assert_eq!(completions(&sim).len(), 2, "c is still batched");
    // nothing outstanding: a flush completes at once
    sim.run_for(Duration::from_secs(10));
    held.release(&mut sim, 1);
    let g = sim.client.flush(sim.now, p).unwrap();
    assert!(sim
        .client
        .poll_event()
        .into_iter()
        .chain(std::iter::from_fn(|| sim.client.poll_event()))
        .any(|e| e
            == Event::FlushCompleted {
                producer: p,
                request: g
            }));
}

#[test]
fn messages_batched_before_registration_continue_the_brokers_sequence() {
    let mut sim = sim_at(0);
    sim.hook(support::SERVICE, |_, cmd| {
        let p = cmd.producer.as_deref()?;
        Some(vec![support::Reply::Cmd(
            pulsar_proto::pb::CommandProducerSuccess {
                request_id: p.request_id,
                producer_name: "n".into(),
                last_sequence_id: Some(99),
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = sim
        .client
        .create_producer(sim.now, "t", batching(2, 1 << 20, Duration::from_millis(1)))
        .unwrap();
    for i in 0..3u8 {
        sim.client.send_payload(sim.now, p, vec![i]).unwrap();
    }
    sim.run_for(Duration::from_millis(5));
    let s = sent(&sim);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].send.sequence_id, 100);
    assert_eq!(s[0].send.highest_sequence_id, Some(101));
    assert_eq!(s[1].send.sequence_id, 102);
    assert_eq!(s[0].metadata.producer_name, "n");
    assert_eq!(completions(&sim).len(), 3);
}
