//! Statistics count what their documentation says: producers count messages, SEND frames
//! (batches) and payload bytes apart, receipts and confirmed messages apart, failures per message,
//! and nothing twice when entries are written again after a reconnection; consumers count
//! messages (not entries) and their bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use bytes::BytesMut;
use producer_util::{hold, ready, sent, sim_at};
use pulsar_core::{
    BatchingOptions, ConsumerId, ConsumerOptions, ConsumerStats, Event, OutgoingMessage,
    ProducerId, ProducerOptions, ProducerStats,
};
use pulsar_proto::pb;
use support::{message, meta, Sim};

fn batching(max_messages: usize) -> ProducerOptions {
    ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
        max_messages,
        1 << 20,
        Duration::from_secs(1),
    ))
}

fn producer_stats(sim: &Sim, p: ProducerId) -> ProducerStats {
    let stats = sim.client.stats();
    let mine: Vec<_> = stats.producers.into_iter().filter(|s| s.id == p).collect();
    assert_eq!(mine.len(), 1, "one partition");
    mine.into_iter().next().unwrap()
}

fn consumer_stats(sim: &Sim, c: ConsumerId) -> ConsumerStats {
    sim.client
        .stats()
        .consumers
        .into_iter()
        .find(|s| s.id == c)
        .unwrap()
}

/// The payload bytes of every SEND the broker received.
fn sent_payload_bytes(sim: &Sim) -> u64 {
    sent(sim).iter().map(|s| s.payload.len() as u64).sum()
}

#[test]
fn ten_messages_in_four_batches_count_as_ten_messages_and_four_batches() {
    let mut sim = sim_at(1_000);
    let p = ready(&mut sim, "t", batching(3));
    for i in 0..10u8 {
        sim.client
            .send(sim.now, p, OutgoingMessage::new(vec![i; 7]))
            .unwrap();
    }
    // three full batches went at once; the tenth message waits for the delay
    sim.run_for(Duration::from_secs(2));
    let frames = sent(&sim);
    assert_eq!(frames.len(), 4);
    assert_eq!(
        frames
            .iter()
            .map(|f| f.send.num_messages.unwrap())
            .collect::<Vec<_>>(),
        vec![3, 3, 3, 1]
    );
    let s = producer_stats(&sim, p);
    assert_eq!(s.messages_sent, 10);
    assert_eq!(s.batches_sent, 4);
    assert_eq!(s.bytes_sent, sent_payload_bytes(&sim));
    assert!(
        s.bytes_sent > 70,
        "the batch containers hold the 70 payload bytes"
    );
    assert_eq!(s.receipts_received, 4);
    assert_eq!(s.messages_acked, 10);
    assert_eq!(s.messages_failed, 0);
    assert_eq!(s.pending_messages, 0);
}

#[test]
fn unbatched_messages_are_one_frame_each_and_bytes_are_their_payloads() {
    let mut sim = sim_at(1_000);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    for len in [1usize, 10, 100] {
        sim.client
            .send(sim.now, p, OutgoingMessage::new(vec![b'x'; len]))
            .unwrap();
    }
    sim.run_until_idle();
    let s = producer_stats(&sim, p);
    assert_eq!((s.messages_sent, s.batches_sent, s.bytes_sent), (3, 3, 111));
    assert_eq!((s.receipts_received, s.messages_acked), (3, 3));
}

#[test]
fn entries_written_again_after_a_reconnection_are_not_counted_twice() {
    let mut sim = sim_at(1_000);
    let receipts = hold(&mut sim);
    let p = ready(&mut sim, "t", batching(5));
    for _ in 0..10 {
        sim.client
            .send(sim.now, p, OutgoingMessage::new("abc"))
            .unwrap();
    }
    sim.run_until_idle();
    assert_eq!(sent(&sim).len(), 2, "two batches, receipts held");
    let before = producer_stats(&sim, p);
    assert_eq!((before.messages_sent, before.batches_sent), (10, 2));
    assert_eq!((before.receipts_received, before.messages_acked), (0, 0));
    assert_eq!(before.pending_messages, 10);

    // the broker drops the connection: both batches are written again on the new one
    let conn = sim.conn_ids()[0];
    receipts.held.borrow_mut().clear();
    sim.broker_close(conn);
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    assert_eq!(sent(&sim).len(), 4, "both batches resent");
    let after = producer_stats(&sim, p);
    assert_eq!(after.messages_sent, 10);
    assert_eq!(after.batches_sent, 2);
    assert_eq!(after.bytes_sent, before.bytes_sent);
    receipts.release(&mut sim, 0);
    sim.run_until_idle();
    let done = producer_stats(&sim, p);
    assert_eq!((done.receipts_received, done.messages_acked), (2, 10));
}

#[test]
fn failed_sends_count_per_message() {
    let mut sim = sim_at(1_000);
    let _receipts = hold(&mut sim);
    let mut options = batching(4);
    options.send_timeout = Duration::from_secs(3);
    let p = ready(&mut sim, "t", options);
    for _ in 0..6 {
        sim.client
            .send(sim.now, p, OutgoingMessage::new("x"))
            .unwrap();
    }
    sim.run_for(Duration::from_secs(10));
    let s = producer_stats(&sim, p);
    assert_eq!((s.messages_sent, s.batches_sent), (6, 2));
    assert_eq!(
        s.messages_failed, 6,
        "every message of both batches timed out"
    );
    assert_eq!((s.receipts_received, s.messages_acked), (0, 0));
}

/// A MESSAGE frame holding a batch container of `entries` (already encoded).
fn batch_frame(consumer: u64, entry: u64, count: i32, entries: &[u8]) -> support::Reply {
    let mut m = meta(entry);
    m.num_messages_in_batch = Some(count);
    message(consumer, entry, entries, m)
}

fn container(payloads: &[&str]) -> BytesMut {
    let mut data = BytesMut::new();
    for p in payloads {
        let single = pb::SingleMessageMetadata {
            payload_size: p.len() as i32,
            ..Default::default()
        };
        pulsar_proto::batch::encode_entry(&single, p.as_bytes(), &mut data);
    }
    data
}

fn subscribe(sim: &mut Sim) -> ConsumerId {
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    c
}

#[test]
fn a_consumer_counts_the_messages_of_a_batch_and_their_bytes() {
    let mut sim = Sim::new();
    let c = subscribe(&mut sim);
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        batch_frame(c.get(), 1, 3, &container(&["a", "bb", "ccc"])),
    );
    sim.inject(conn, message(c.get(), 2, b"dddd", meta(2)));
    let got: Vec<_> = std::iter::from_fn(|| sim.client.receive(sim.now, c)).collect();
    assert_eq!(got.len(), 4);
    let s = consumer_stats(&sim, c);
    assert_eq!(s.messages_received, 4);
    assert_eq!(s.bytes_received, 1 + 2 + 3 + 4);
    for m in &got {
        sim.client.ack_message(sim.now, m).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    // the batch's entry is acknowledged whole: one id for its three messages, one for the other
    assert_eq!(consumer_stats(&sim, c).acks_sent, 2);
}

#[test]
fn a_batch_that_breaks_after_good_messages_leaves_the_counters_as_they_were() {
    let mut sim = Sim::new();
    let c = subscribe(&mut sim);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, message(c.get(), 1, b"first", meta(1)));
    // two good messages, then one whose payload is cut short
    let mut data = container(&["ok", "ok"]);
    data.extend_from_slice(b"\x00\x00\x00\x02\x18\x05ab");
    sim.inject(conn, batch_frame(c.get(), 2, 3, &data));
    sim.run_until_idle();
    let s = consumer_stats(&sim, c);
    assert_eq!(
        s.messages_received, 1,
        "the broken batch counts for nothing"
    );
    assert_eq!(s.bytes_received, 5);
    assert_eq!(s.queued_messages, 1);
    let m = sim.client.receive(sim.now, c).unwrap();
    assert_eq!(&m.payload[..], b"first");
    assert!(sim.client.receive(sim.now, c).is_none(), "never garbage");
}
