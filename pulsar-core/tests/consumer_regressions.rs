//! Consumer regressions found by the deterministic simulator and by review, each against a
//! scripted broker: closing during SUBSCRIBE, reader resubscription inside a batch, partly
//! acknowledged batches, lost acks, cleanup requests that never expire, hostile batch indexes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pulsar_core::{ConsumerOptions, Event, MessageId, ReceiveError};
use pulsar_proto::pb::{self, base_command::Type};
use support::{chunk, message, meta, partitioned_metadata, Reply, Sim, SERVICE};

/// SUBSCRIBE requests held back by the broker (request ids), answered by the test.
fn hold_subscribes(sim: &mut Sim) -> Rc<RefCell<Vec<u64>>> {
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = held.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.subscribe.as_deref()?;
        h.borrow_mut().push(s.request_id);
        Some(vec![])
    });
    held
}

fn close_consumers(sim: &Sim) -> Vec<u64> {
    sim.received_of(Type::CloseConsumer)
        .iter()
        .map(|r| r.command.close_consumer.as_deref().unwrap().consumer_id)
        .collect()
}

#[test]
fn closing_during_subscribe_closes_the_broker_side_consumer_once_subscribed() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    assert_eq!(held.borrow().len(), 1, "SUBSCRIBE in flight");
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| matches!(e, Event::ConsumerClosed { consumer, .. } | Event::ConsumerFailed { consumer, .. } if *consumer == c)),
        "close finishes locally at once: {:?}",
        sim.events
    );
    assert!(close_consumers(&sim).is_empty(), "nothing registered yet");
    // The broker registers it anyway: the client must close it there.
    let conn = sim.conn_ids()[0];
    let request_id = held.borrow()[0];
    sim.inject(conn, Reply::Cmd(support::success(request_id)));
    assert_eq!(close_consumers(&sim), vec![c.get()]);
}

#[test]
fn closing_during_a_subscribe_that_times_out_still_closes_the_broker_side_consumer() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(held.borrow().len(), 1);
    // no answer at all: the SUBSCRIBE times out, the broker may have registered it
    sim.run_for(Duration::from_secs(60));
    assert_eq!(close_consumers(&sim), vec![c.get()]);
}

#[test]
fn a_failed_subscribe_of_a_closed_consumer_needs_no_close() {
    let mut sim = Sim::new();
    let held = hold_subscribes(&mut sim);
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until_idle();
    sim.client.close_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    let conn = sim.conn_ids()[0];
    let request_id = held.borrow()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandError {
                request_id,
                error: pb::ServerError::ConsumerBusy as i32,
                message: "busy".into(),
            }
            .into(),
        ),
    );
    sim.run_for(Duration::from_secs(60));
    assert!(close_consumers(&sim).is_empty());
}

#[test]
fn cleanup_close_of_a_failed_partitioned_consumer_expires_when_unanswered() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        if let Some(m) = cmd.partition_metadata.as_deref() {
            return Some(vec![partitioned_metadata(m.request_id, 2)]);
        }
        if let Some(s) = cmd.subscribe.as_deref() {
            if s.topic.ends_with("-partition-1") {
                return Some(vec![Reply::Cmd(
                    pb::CommandError {
                        request_id: s.request_id,
                        error: pb::ServerError::AuthorizationError as i32,
                        message: "no".into(),
                    }
                    .into(),
                )]);
            }
            return None;
        }
        // the broker never answers CLOSE_CONSUMER
        cmd.close_consumer.as_ref().map(|_| vec![])
    });
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("sub"))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerFailed { .. })
    });
    let _ = c;
    assert_eq!(
        close_consumers(&sim).len(),
        1,
        "the subscribed partition is closed"
    );
    let pending = |sim: &Sim| -> usize {
        sim.client
            .stats()
            .connections
            .iter()
            .map(|c| c.pending_requests)
            .sum()
    };
    assert_eq!(pending(&sim), 1, "the CLOSE_CONSUMER waits for its answer");
    sim.run_for(Duration::from_secs(60));
    assert_eq!(pending(&sim), 0, "its request entry expired");
}

/// A MESSAGE carrying a batch of `n` one-byte messages at entry `entry` of ledger 9.
fn batch(consumer: u64, entry: u64, n: usize) -> Reply {
    let mut data = BytesMut::new();
    for _ in 0..n {
        let single = pb::SingleMessageMetadata {
            payload_size: 1,
            ..Default::default()
        };
        pulsar_proto::batch::encode_entry(&single, b"x", &mut data);
    }
    let mut m = meta(entry);
    m.num_messages_in_batch = Some(n as i32);
    message(consumer, entry, &data, m)
}

/// A reader gets entry 1 and the batch at entry 2, the application reads `read` messages, the
/// connection drops: returns the start id of the resubscription.
fn reader_resubscribe_start(read: usize) -> pb::MessageIdData {
    let mut sim = Sim::new();
    let r = sim.reader_from_earliest();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(r.get(), 1, 1));
    sim.inject(conn, batch(r.get(), 2, 3));
    for _ in 0..read {
        sim.client.receive(sim.now, r).unwrap();
    }
    sim.close_and_resubscribe(conn);
    let starts = sim.subscribe_starts();
    assert_eq!(starts.len(), 2);
    starts[1].clone().unwrap()
}

#[test]
fn reader_resubscribing_before_an_unread_batch_restarts_after_the_previous_entry() {
    // nothing of entry 2 read: restart after entry 1 (an id of entry 2 without a batch index
    // means "after entry 2" to the broker, which would skip the whole batch)
    let start = reader_resubscribe_start(1);
    assert_eq!((start.ledger_id, start.entry_id), (9, 1));
    assert_eq!(start.batch_index, None);
    // part of entry 2 read: restart inside it, after the last index read
    let start = reader_resubscribe_start(2);
    assert_eq!((start.ledger_id, start.entry_id), (9, 2));
    assert_eq!(start.batch_index, Some(0));
}

#[test]
fn hostile_batch_sizes_and_indexes_in_acks_are_clamped() {
    let mut sim = Sim::new();
    let c = sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(c.get(), 2, 3));
    let got = sim.drain(c);
    assert_eq!(got.len(), 3);
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    // an id claiming a huge batch and an index far past its end: the batch's real size wins,
    // no allocation or loop proportional to the claimed size
    let mut forged = got[1].id;
    forged.batch_index = i32::MAX - 1;
    forged.batch_size = i32::MAX;
    let started = std::time::Instant::now();
    sim.client.ack_cumulative(sim.now, c, &forged).unwrap();
    sim.run_until_idle();
    assert!(started.elapsed() < Duration::from_secs(2), "no huge loop");
    let a = sim.acks();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].ack_type, pb::command_ack::AckType::Cumulative as i32);
    assert_eq!(a[0].message_id[0].entry_id, 2, "the whole entry");
    // a fresh entry with a forged size: bounded state, the one index acked, nothing sent
    let mut forged = MessageId::new(9, 5, -1);
    forged.batch_index = 7;
    forged.batch_size = i32::MAX;
    sim.client.ack(sim.now, c, &forged).unwrap();
    sim.run_until_idle();
    assert_eq!(
        sim.acks().len(),
        1,
        "the rest of the forged batch is unacked"
    );
    // seeking to a forged id sends a bounded ack set
    let mut forged = MessageId::new(9, 5, -1);
    forged.batch_index = 3;
    forged.batch_size = i32::MAX;
    sim.client
        .seek(sim.now, c, pulsar_core::SeekTo::Id(forged))
        .unwrap();
    sim.run_until_idle();
    let seeks = sim.received_of(Type::Seek);
    let set = &seeks[0]
        .command
        .seek
        .as_deref()
        .unwrap()
        .message_id
        .as_ref()
        .unwrap()
        .ack_set;
    assert!(set.len() <= (1 << 20) / 64, "bounded: {} words", set.len());
    assert_eq!(set[0], !0b111i64, "indexes from 3 on");
}

/// Bug D: acks written on a connection that dies are lost with it; the broker redelivers those
/// messages after the resubscription and they must reach the application again (and be acked
/// again), not be dropped by the local "already acknowledged" state.
#[test]
fn messages_redelivered_after_a_lost_ack_reach_the_application_again() {
    let mut sim = Sim::new();
    let c = sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    for e in 1..=3 {
        sim.inject(conn, support::message(c.get(), e, b"m", meta(e)));
    }
    sim.inject(conn, batch(c.get(), 4, 3));
    let got = sim.drain(c);
    assert_eq!(got.len(), 6);
    // the broker never sees these acks
    sim.black_hole(conn);
    sim.client.ack_cumulative(sim.now, c, &got[2].id).unwrap();
    sim.client.ack(sim.now, c, &got[3].id).unwrap();
    sim.run_until_idle();
    assert_eq!(sim.acks().len(), 1, "the cumulative ack was written");
    sim.close_and_resubscribe(conn);
    let conn = *sim.conn_ids().last().unwrap();
    // the broker redelivers everything: the cursor never moved
    for e in 1..=3 {
        sim.inject(conn, support::message(c.get(), e, b"m", meta(e)));
    }
    sim.inject(conn, batch(c.get(), 4, 3));
    let again = sim.drain(c);
    assert_eq!(
        again.len(),
        6,
        "every redelivered message is delivered again"
    );
    sim.client.ack_cumulative(sim.now, c, &again[5].id).unwrap();
    sim.run_until_idle();
    let a = sim.acks();
    let last = a.last().unwrap();
    assert_eq!(last.ack_type, pb::command_ack::AckType::Cumulative as i32);
    assert_eq!(last.message_id[0].entry_id, 4);
    assert!(last.message_id[0].ack_set.is_empty(), "the whole batch");
}

/// Acks still waiting for a flush when the connection drops go out on the new connection before
/// its permits, so the broker does not redeliver what they cover.
#[test]
fn pending_acks_precede_the_permits_of_a_resubscription() {
    let mut sim = Sim::new();
    let c =
        sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::from_secs(10)));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, support::message(c.get(), 1, b"m", meta(1)));
    let got = sim.drain(c);
    sim.client.ack_cumulative(sim.now, c, &got[0].id).unwrap();
    sim.close_and_resubscribe(conn);
    let conn = *sim.conn_ids().last().unwrap();
    let order: Vec<Type> = sim
        .received
        .iter()
        .filter(|r| r.conn == conn)
        .filter_map(|r| r.command.kind())
        .filter(|k| matches!(k, Type::Ack | Type::Flow))
        .collect();
    assert_eq!(order, vec![Type::Ack, Type::Flow]);
    // still acknowledged: a redelivery racing the ack is not shown again
    sim.inject(conn, support::message(c.get(), 1, b"m", meta(1)));
    assert!(sim.drain(c).is_empty());
}

/// Bug C: without batch index acks, a redelivered partly acknowledged batch (MESSAGE with the
/// broker's `ack_set`) only yields its unacknowledged indexes; acknowledging those completes the
/// entry.
#[test]
fn a_redelivered_partly_acknowledged_batch_is_acknowledged_once_its_rest_is() {
    let mut sim = Sim::new();
    let c = sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    let Reply::Payload(mut cmd, m, data) = batch(c.get(), 2, 3) else {
        unreachable!()
    };
    // indexes 0 and 2 acknowledged on the broker (e.g. by an earlier consumer)
    cmd.message.as_mut().unwrap().ack_set = vec![0b010];
    sim.inject(conn, Reply::Payload(cmd, m, data));
    let got = sim.drain(c);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.batch_index, 1);
    sim.client.ack(sim.now, c, &got[0].id).unwrap();
    sim.run_until_idle();
    let a = sim.acks();
    assert_eq!(a.len(), 1, "the entry is acknowledged: {a:?}");
    assert_eq!(a[0].message_id[0].entry_id, 2);
    assert!(a[0].message_id[0].ack_set.is_empty(), "whole entry");
}

/// Simulation seed 52702: a producer resent the last chunks of a message that a deduplicating
/// broker had already stored whole; the broker answered the resent last chunk as a duplicate and
/// stored the chunks before it again. An Exclusive (or Failover) consumer meets those leftover
/// chunks without their first chunk. It used to ask for a redelivery of everything
/// unacknowledged (a new epoch), which can never bring that first chunk on an in-order
/// subscription: the application got its received-but-unacknowledged messages again without
/// any reconnection, and again each time the leftovers came back, until they expired. Now the
/// leftovers are held and acknowledged once their message has expired, without a redelivery.
#[test]
fn leftover_chunks_of_a_resent_message_neither_rewind_the_subscription_nor_stay_unacknowledged() {
    let mut sim = Sim::new();
    let c = sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    // the whole message (entries 1-3), then a plain message, then the leftovers (entries 5-6)
    sim.inject(conn, chunk(c.get(), 1, "u", 0, 3, b"abc"));
    sim.inject(conn, chunk(c.get(), 2, "u", 1, 3, b"def"));
    sim.inject(conn, chunk(c.get(), 3, "u", 2, 3, b"ghi"));
    let mut plain = meta(4);
    plain.publish_time = 1_000;
    sim.inject(
        conn,
        Reply::Payload(
            pb::CommandMessage {
                consumer_id: c.get(),
                message_id: pb::MessageIdData {
                    ledger_id: 9,
                    entry_id: 4,
                    ..Default::default()
                },
                ..Default::default()
            }
            .into(),
            Box::new(plain),
            Bytes::from_static(b"plain"),
        ),
    );
    let got = sim.drain(c);
    let payloads: Vec<&[u8]> = got.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(payloads, vec![&b"abcdefghi"[..], &b"plain"[..]]);
    // the application holds both, unacknowledged, when the leftovers arrive
    sim.inject(conn, chunk(c.get(), 5, "u", 1, 3, b"def"));
    sim.inject(conn, chunk(c.get(), 6, "u", 2, 3, b"ghi"));
    sim.run_for(Duration::from_secs(30));
    assert!(
        sim.received_of(Type::RedeliverUnacknowledgedMessages)
            .is_empty(),
        "no redelivery: it would rewind the subscription and the leftovers would come again"
    );
    assert!(sim.drain(c).is_empty());
    assert!(
        sim.events.iter().any(|(_, e)| matches!(
            e,
            Event::ReceiveFailed {
                error: ReceiveError::ChunkOutOfOrder { uuid, chunk_id: 1 },
                ..
            } if uuid == "u"
        )),
        "the application is told"
    );
    let acked = |sim: &Sim| -> Vec<u64> {
        sim.acks()
            .iter()
            .flat_map(|a| a.message_id.iter().map(|m| m.entry_id))
            .collect()
    };
    assert!(acked(&sim).is_empty(), "not before the message expires");
    // the chunk expiry (60 s after publication) acknowledges the leftovers, nothing else
    sim.run_for(Duration::from_secs(32));
    assert_eq!(acked(&sim), vec![5, 6]);
    assert!(sim
        .received_of(Type::RedeliverUnacknowledgedMessages)
        .is_empty());
}

/// Simulation seed 63908: a reader held a plain message (entry 3) and, behind it, a chunked
/// message whose chunks were at entries 2 and 4 (it is queued when its last chunk comes). When
/// the connection dropped, it resubscribed after entry 2, the entry before the first message
/// queued: the first chunk was never fetched again and the message was lost for the reader.
#[test]
fn reader_resubscribing_fetches_the_first_chunk_of_a_message_queued_behind_a_later_entry() {
    let mut sim = Sim::new();
    let r = sim.reader_from_earliest();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(r.get(), 1, 1));
    assert!(sim.client.receive(sim.now, r).is_some());
    sim.inject(conn, chunk(r.get(), 2, "u", 0, 2, b"ab"));
    sim.inject(conn, batch(r.get(), 3, 1));
    sim.inject(conn, chunk(r.get(), 4, "u", 1, 2, b"cd"));
    sim.close_and_resubscribe(conn);
    let starts = sim.subscribe_starts();
    assert_eq!(starts.len(), 2);
    let start = starts[1].clone().unwrap();
    assert_eq!(
        (start.ledger_id, start.entry_id),
        (9, 1),
        "after the last entry read, before the first chunk: {start:?}"
    );
}

/// Simulation seed 270009 (found with the chunks a reconnection forgets remembered until they
/// come again): a non-durable consumer held a message (entry 1) it had not read yet and the first
/// chunk of a message (entry 2); it restarted after entry 0, before both. The connection dropped
/// again before anything came: with nothing queued or read, the restart must stay there, not
/// move to just before the remembered chunk, which skipped entry 1 (and, in the seed, two ledgers
/// of messages the application had never seen).
#[test]
fn a_second_resubscription_with_nothing_received_keeps_the_start_before_remembered_chunks() {
    let mut sim = Sim::new();
    let r = sim.reader_from_earliest();
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(r.get(), 1, 1));
    sim.inject(conn, chunk(r.get(), 2, "u", 0, 2, b"ab"));
    for _ in 0..2 {
        let conn = *sim.conn_ids().last().unwrap();
        sim.close_and_resubscribe(conn);
    }
    let starts: Vec<(u64, u64)> = sim
        .subscribe_starts()
        .iter()
        .skip(1)
        .map(|id| {
            let id = id.as_ref().unwrap();
            (id.ledger_id, id.entry_id)
        })
        .collect();
    assert_eq!(starts, vec![(9, 0), (9, 0)]);
}
