//! Consumer regressions found by the deterministic simulator and by review, each against a
//! scripted broker: closing during SUBSCRIBE, reader resubscription inside a batch, partly
//! acknowledged batches, lost acks, cleanup requests that never expire, hostile batch indexes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use pulsar_core::{ConsumerOptions, Event, MessageId, ReaderOptions};
use pulsar_proto::pb::{self, base_command::Type};
use support::{meta, Reply, Sim, SERVICE};

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
            return Some(vec![Reply::Cmd(
                pb::CommandPartitionedTopicMetadataResponse {
                    partitions: Some(2),
                    request_id: m.request_id,
                    response: Some(0),
                    ..Default::default()
                }
                .into(),
            )]);
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
    Reply::Payload(
        pb::CommandMessage {
            consumer_id: consumer,
            message_id: pb::MessageIdData {
                ledger_id: 9,
                entry_id: entry,
                ..Default::default()
            },
            ..Default::default()
        }
        .into(),
        Box::new(m),
        data.freeze(),
    )
}

/// A reader gets entry 1 and the batch at entry 2, the application reads `read` messages, the
/// connection drops: returns the start id of the resubscription.
fn reader_resubscribe_start(read: usize) -> pb::MessageIdData {
    let mut sim = Sim::new();
    let r = sim
        .client
        .create_reader(sim.now, "t", ReaderOptions::new(MessageId::EARLIEST))
        .unwrap();
    sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    let conn = sim.conn_ids()[0];
    sim.inject(conn, batch(r.get(), 1, 1));
    sim.inject(conn, batch(r.get(), 2, 3));
    for _ in 0..read {
        sim.client.receive(sim.now, r).unwrap();
    }
    sim.broker_close(conn);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    let subs = sim.received_of(Type::Subscribe);
    assert_eq!(subs.len(), 2);
    subs[1]
        .command
        .subscribe
        .as_deref()
        .unwrap()
        .start_message_id
        .clone()
        .unwrap()
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
