//! Producer regressions found by the deterministic simulator, each against a scripted broker:
//! key-based batches whose sequence ids interleave (bug E: a deduplicating broker drops the later,
//! lower ids as duplicates) and a producer closed while its PRODUCER is in flight (bug A: the
//! broker keeps the registration).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use producer_util::{completions, ready, sent, sim_at};
use pulsar_core::{AccessMode, BatchingOptions, Event, OutgoingMessage, ProducerOptions, SendId};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

/// A broker with deduplication: a SEND whose (highest) sequence id is not above the highest one
/// persisted is answered `-1:-1` and not stored. Returns, per SEND received, whether it was
/// persisted.
fn dedup_broker(sim: &mut Sim) -> Rc<RefCell<Vec<bool>>> {
    let persisted = Rc::new(RefCell::new(Vec::new()));
    let p = persisted.clone();
    let mut last: i64 = -1;
    let mut entry = 0u64;
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.send.as_deref()?;
        let highest = s.highest_sequence_id.unwrap_or(s.sequence_id) as i64;
        let (ledger, entry_id) = if (s.sequence_id as i64) <= last {
            p.borrow_mut().push(false);
            (u64::MAX, u64::MAX)
        } else {
            last = highest.max(s.sequence_id as i64);
            p.borrow_mut().push(true);
            entry += 1;
            (7, entry - 1)
        };
        Some(vec![Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: s.producer_id,
                sequence_id: s.sequence_id,
                highest_sequence_id: s.highest_sequence_id,
                message_id: Some(pb::MessageIdData {
                    ledger_id: ledger,
                    entry_id,
                    ..Default::default()
                }),
            }
            .into(),
        )])
    });
    persisted
}

fn keyed(i: u8, key: &str) -> OutgoingMessage {
    OutgoingMessage::new(vec![i]).with_key(key)
}

/// A batch as sent: SEND sequence id, highest sequence id, its entries' sequence ids and payloads.
type Batch = (u64, Option<u64>, Vec<u64>, Vec<u8>);

/// Every batch, in wire order.
fn batches(sim: &Sim) -> Vec<Batch> {
    sent(sim)
        .iter()
        .map(|x| {
            let entries = x.entries();
            assert_eq!(x.metadata.sequence_id, x.send.sequence_id);
            assert_eq!(x.metadata.highest_sequence_id, x.send.highest_sequence_id);
            (
                x.send.sequence_id,
                x.send.highest_sequence_id,
                entries
                    .iter()
                    .map(|(m, _)| m.sequence_id.unwrap())
                    .collect(),
                entries.iter().map(|(_, p)| p[0]).collect(),
            )
        })
        .collect()
}

/// Sequence ids strictly increase along the wire, batch after batch, and each SEND carries its
/// batch's first and highest ids.
fn assert_monotonic(b: &[Batch]) {
    let mut prev: Option<u64> = None;
    for (seq, highest, ids, _) in b {
        assert_eq!(ids.first(), Some(seq), "{b:?}");
        let top = *ids.last().unwrap();
        assert_eq!(highest.unwrap_or(*seq), top, "{b:?}");
        for id in ids {
            assert!(prev.is_none_or(|p| *id > p), "not increasing: {b:?}");
            prev = Some(*id);
        }
    }
}

#[test]
fn key_based_batches_carry_strictly_increasing_sequence_ids_on_the_wire() {
    let mut sim = sim_at(0);
    let opts = ProducerOptions::default().with_batching(BatchingOptions::key_based());
    let p = ready(&mut sim, "t", opts);
    let keys = ["a", "b", "a", "b", "c", "a", "b"];
    for (i, k) in keys.iter().enumerate() {
        sim.client.send(sim.now, p, keyed(i as u8, k)).unwrap();
    }
    sim.run_for(Duration::from_millis(1));
    let b = batches(&sim);
    assert_monotonic(&b);
    // one batch per key, in the order of their first messages, numbered as they go out
    assert_eq!(
        b,
        vec![
            (0, Some(2), vec![0, 1, 2], vec![0, 2, 5]),
            (3, Some(5), vec![3, 4, 5], vec![1, 3, 6]),
            (6, None, vec![6], vec![4]),
        ]
    );
}

#[test]
fn key_based_batching_loses_nothing_with_a_deduplicating_broker() {
    let mut sim = sim_at(0);
    let persisted = dedup_broker(&mut sim);
    let mut opts = ProducerOptions::default().with_batching(BatchingOptions::key_based());
    opts.max_pending_messages = 1000;
    let p = ready(&mut sim, "t", opts);
    let mut sends: Vec<SendId> = Vec::new();
    for round in 0..5u8 {
        for i in 0..20u8 {
            let key = ["a", "b", "c"][usize::from(i % 3)];
            sends.push(
                sim.client
                    .send(sim.now, p, keyed(round * 20 + i, key))
                    .unwrap(),
            );
        }
        sim.run_for(Duration::from_millis(1));
    }
    sim.run_until_idle();
    let done = completions(&sim);
    assert_eq!(done.len(), sends.len());
    let stored: BTreeSet<u8> = sent(&sim)
        .iter()
        .zip(persisted.borrow().iter())
        .filter(|(_, kept)| **kept)
        .flat_map(|(x, _)| x.entries().into_iter().map(|(_, p)| p[0]))
        .collect();
    for (send, result) in &done {
        let id = result.as_ref().expect("acknowledged");
        assert_ne!(id.ledger_id, u64::MAX, "{send:?} taken for a duplicate");
    }
    assert_eq!(
        stored.len(),
        sends.len(),
        "every acknowledged message stored"
    );
    assert!(persisted.borrow().iter().all(|p| *p));
}

#[test]
fn key_based_batching_with_user_sequence_ids_keeps_them_in_wire_order() {
    let mut sim = sim_at(0);
    let opts = ProducerOptions::default().with_batching(BatchingOptions::key_based());
    let p = ready(&mut sim, "t", opts);
    // increasing user ids, keys interleaved: a batch may only hold a contiguous run
    let plan = [
        ("a", 10),
        ("a", 11),
        ("b", 12),
        ("a", 13),
        ("b", 14),
        ("b", 15),
    ];
    for (i, (k, seq)) in plan.iter().enumerate() {
        let mut m = keyed(i as u8, k);
        m.sequence_id = Some(*seq);
        sim.client.send(sim.now, p, m).unwrap();
    }
    sim.run_for(Duration::from_millis(1));
    let b = batches(&sim);
    assert_monotonic(&b);
    let ids: Vec<u64> = b.iter().flat_map(|x| x.2.clone()).collect();
    assert_eq!(ids, vec![10, 11, 12, 13, 14, 15], "user ids kept");
    // an automatic id continues after them
    sim.client.send(sim.now, p, keyed(9, "c")).unwrap();
    sim.run_for(Duration::from_millis(1));
    let b = batches(&sim);
    assert_monotonic(&b);
    assert_eq!(b.last().unwrap().2, vec![16]);
}

#[test]
fn an_unbatched_message_after_open_key_batches_gets_the_next_id() {
    let mut sim = sim_at(1_000);
    let opts = ProducerOptions::default().with_batching(BatchingOptions::key_based());
    let p = ready(&mut sim, "t", opts);
    sim.client.send(sim.now, p, keyed(0, "a")).unwrap();
    sim.client.send(sim.now, p, keyed(1, "b")).unwrap();
    sim.client.send(sim.now, p, keyed(2, "a")).unwrap();
    let mut delayed = keyed(3, "b");
    delayed.deliver_after = Some(Duration::from_secs(5));
    sim.client.send(sim.now, p, delayed).unwrap();
    sim.run_until_idle();
    let s = sent(&sim);
    assert_eq!(s.len(), 3);
    let seqs: Vec<(u64, Option<u64>)> = s
        .iter()
        .map(|x| (x.send.sequence_id, x.send.highest_sequence_id))
        .collect();
    assert_eq!(seqs, vec![(0, Some(1)), (2, None), (3, None)]);
    assert_eq!(s[2].metadata.sequence_id, 3);
    assert_eq!(s[2].metadata.deliver_at_time, Some(6_000));
}

#[test]
fn a_duplicate_receipt_reports_the_brokers_minus_one_id() {
    // The broker answers -1:-1 when it already stored this sequence id (a resend whose first
    // receipt was lost): the message is stored, its position unknown, as Java reports it.
    let mut sim = sim_at(0);
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.send.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandSendReceipt {
                producer_id: s.producer_id,
                sequence_id: s.sequence_id,
                message_id: Some(pb::MessageIdData {
                    ledger_id: u64::MAX,
                    entry_id: u64::MAX,
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        )])
    });
    let p = ready(&mut sim, "t", ProducerOptions::default());
    let send = sim.client.send_payload(sim.now, p, &b"x"[..]).unwrap();
    sim.run_until_idle();
    let done = completions(&sim);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, send);
    let id = done[0].1.as_ref().unwrap();
    assert_eq!((id.ledger_id, id.entry_id), (u64::MAX, u64::MAX));
}

// ---- bug A: closed while PRODUCER is in flight --------------------------------------------------

/// PRODUCER requests held back by the broker (request ids), answered by the test.
fn hold_producers(sim: &mut Sim) -> Rc<RefCell<Vec<u64>>> {
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = held.clone();
    sim.hook(SERVICE, move |_, cmd| {
        let s = cmd.producer.as_deref()?;
        h.borrow_mut().push(s.request_id);
        Some(vec![])
    });
    held
}

fn close_producers(sim: &Sim) -> Vec<u64> {
    sim.received_of(Type::CloseProducer)
        .iter()
        .map(|r| r.command.close_producer.as_deref().unwrap().producer_id)
        .collect()
}

fn producer_success(request_id: u64, ready: Option<bool>) -> Reply {
    Reply::Cmd(
        pb::CommandProducerSuccess {
            request_id,
            producer_name: "p".into(),
            last_sequence_id: Some(-1),
            producer_ready: ready,
            ..Default::default()
        }
        .into(),
    )
}

fn closed_while_registering(sim: &mut Sim, opts: ProducerOptions) -> (u64, u64) {
    let held = hold_producers(sim);
    let p = sim.client.create_producer(sim.now, "t", opts).unwrap();
    sim.run_until_idle();
    assert_eq!(held.borrow().len(), 1, "PRODUCER in flight");
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_until_idle();
    assert!(
        sim.events.iter().any(|(_, e)| matches!(
            e,
            Event::ProducerClosed { producer, .. } | Event::ProducerFailed { producer, .. }
                if *producer == p
        )),
        "close finishes locally at once: {:?}",
        sim.events
    );
    assert!(close_producers(sim).is_empty(), "nothing registered yet");
    let request_id = held.borrow()[0];
    (p.get(), request_id)
}

#[test]
fn closing_during_producer_creation_closes_the_broker_side_producer_once_created() {
    let mut sim = Sim::new();
    let (p, request_id) = closed_while_registering(&mut sim, ProducerOptions::default());
    let conn = sim.conn_ids()[0];
    sim.inject(conn, producer_success(request_id, None));
    assert_eq!(close_producers(&sim), vec![p]);
}

#[test]
fn closing_while_waiting_for_exclusive_access_closes_the_broker_side_producer() {
    let mut sim = Sim::new();
    let mut opts = ProducerOptions::default();
    opts.access_mode = AccessMode::WaitForExclusive;
    let (p, request_id) = closed_while_registering(&mut sim, opts);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, producer_success(request_id, Some(false)));
    assert_eq!(close_producers(&sim), vec![p]);
}

#[test]
fn closing_during_a_producer_creation_that_times_out_still_closes_it_on_the_broker() {
    let mut sim = Sim::new();
    let (p, _) = closed_while_registering(&mut sim, ProducerOptions::default());
    sim.run_for(Duration::from_secs(60));
    assert_eq!(close_producers(&sim), vec![p]);
}

#[test]
fn a_failed_creation_of_a_closed_producer_needs_no_close() {
    let mut sim = Sim::new();
    let (_, request_id) = closed_while_registering(&mut sim, ProducerOptions::default());
    let conn = sim.conn_ids()[0];
    sim.inject(
        conn,
        Reply::Cmd(
            pb::CommandError {
                request_id,
                error: pb::ServerError::ProducerBusy as i32,
                message: "busy".into(),
            }
            .into(),
        ),
    );
    sim.run_for(Duration::from_secs(60));
    assert!(close_producers(&sim).is_empty());
}
