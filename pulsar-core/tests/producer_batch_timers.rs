//! Batches of many producers: the batch timers that end together are handled in one pass (one
//! write), and a client that asks for it gets one `SendsCompleted` event per batch receipt with
//! the same message ids as the per-message `SendCompleted` events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use producer_util::{completions, ready, sent, sim_at};
use pulsar_core::{BatchingOptions, Event, MessageId, OutgoingMessage, ProducerOptions, SendId};

fn batching(max_messages: usize, max_delay: Duration) -> ProducerOptions {
    ProducerOptions::default().with_batching(BatchingOptions::enabled().with_limits(
        max_messages,
        1 << 20,
        max_delay,
    ))
}

/// The range receipts reported so far: (sends, batch id).
fn range_receipts(sim: &support::Sim) -> Vec<(Vec<SendId>, MessageId)> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SendsCompleted { sends, batch, .. } => Some((sends.clone(), *batch)),
            _ => None,
        })
        .collect()
}

/// Sends 7 messages in batches of 3 (the last one closed by its delay) and returns the
/// completions as (send, message id), in order, from whichever events the client reports.
fn run(batch_receipts: bool) -> (Vec<(SendId, MessageId)>, usize, usize) {
    let mut sim = sim_at(1_000);
    sim.client.set_batch_receipts(batch_receipts);
    let p = ready(&mut sim, "t", batching(3, Duration::from_millis(10)));
    for i in 0..7u8 {
        sim.client
            .send(sim.now, p, OutgoingMessage::new(vec![i; 5]))
            .unwrap();
    }
    sim.run_for(Duration::from_millis(10));
    let singles = completions(&sim);
    let ranges = range_receipts(&sim);
    let mut all: Vec<(SendId, MessageId)> = singles
        .iter()
        .map(|(s, r)| (*s, r.clone().expect("stored")))
        .collect();
    for (sends, batch) in &ranges {
        for (i, s) in sends.iter().enumerate() {
            all.push((*s, batch.in_batch(i, sends.len())));
        }
    }
    all.sort_by_key(|(s, _)| *s);
    (all, singles.len(), ranges.len())
}

#[test]
fn a_batch_receipt_completes_every_message_with_its_own_id() {
    let (per_message, singles, ranges) = run(false);
    assert_eq!(
        (singles, ranges),
        (7, 0),
        "off by default: one event per message"
    );
    let (per_batch, singles, ranges) = run(true);
    assert_eq!(
        (singles, ranges),
        (0, 3),
        "one event per batch receipt (3 + 3 + 1 messages)"
    );
    assert_eq!(per_batch, per_message, "the same sends and message ids");
    assert_eq!(per_batch.len(), 7);
    let last = per_batch.last().unwrap().1;
    assert_eq!((last.batch_index, last.batch_size), (0, 1));
    let third = per_batch[2].1;
    assert_eq!((third.batch_index, third.batch_size), (2, 3));
}

#[test]
fn batch_timers_ending_together_are_handled_in_one_pass() {
    let mut sim = sim_at(1_000);
    let delay = Duration::from_millis(8);
    let slack = delay / 8;
    let ps: Vec<_> = (0..3)
        .map(|i| ready(&mut sim, &format!("t{i}"), batching(100, delay)))
        .collect();
    let t0 = sim.now;
    // p0 at t0, p1 half the slack later, p2 twice the slack later.
    sim.client
        .send(sim.now, ps[0], OutgoingMessage::new(vec![0; 5]))
        .unwrap();
    sim.run_for(slack / 2);
    sim.client
        .send(sim.now, ps[1], OutgoingMessage::new(vec![1; 5]))
        .unwrap();
    sim.run_for(slack * 3 / 2);
    sim.client
        .send(sim.now, ps[2], OutgoingMessage::new(vec![2; 5]))
        .unwrap();
    // Nothing leaves before the first delay ends (calls at other times close nothing early).
    sim.run_for(t0 + delay - Duration::from_micros(1) - sim.now);
    assert_eq!(sent(&sim).len(), 0, "no batch before its timer");
    // The first timer sends the batch of p1 too (within the slack), not that of p2.
    assert_eq!(sim.client.poll_timeout(), Some(t0 + delay));
    sim.run_for(Duration::from_micros(1));
    assert_eq!(sent(&sim).len(), 2, "p0 and p1 in one pass");
    assert_eq!(
        sim.client.poll_timeout(),
        Some(t0 + delay + 2 * slack),
        "p1's own timer is gone; p2's stays"
    );
    sim.run_for(2 * slack);
    assert_eq!(sent(&sim).len(), 3);
    sim.run_until_idle();
    assert_eq!(completions(&sim).len(), 3);
}
