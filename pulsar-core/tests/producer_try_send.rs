//! `Client::try_send`: a message refused before it was queued comes back intact, and sending it
//! again later works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use producer_util::{completions, count, hold, ready, receipt, sent};
use pulsar_core::{
    ClientConfig, Event, MessageId, OutgoingMessage, ProducerOptions, Refused, SendError,
};
use support::Sim;

/// A message with every commonly used field set (all of it must come back).
fn rich(payload: &'static [u8]) -> OutgoingMessage {
    OutgoingMessage::new(payload)
        .with_key("k1")
        .with_ordering_key(&b"ok"[..])
        .with_property("a", "1")
        .with_property("b", "2")
        .with_event_time(1_234)
}

#[test]
fn a_message_refused_for_a_full_queue_comes_back_intact_and_a_retry_succeeds() {
    let mut sim = Sim::new();
    let held = hold(&mut sim);
    let mut opts = ProducerOptions::default();
    opts.max_pending_messages = 2;
    let p = ready(&mut sim, "t", opts);
    let first = sim.client.try_send(sim.now, p, rich(b"0")).unwrap();
    sim.client.try_send(sim.now, p, rich(b"1")).unwrap();
    let refused: Refused = sim
        .client
        .try_send(sim.now, p, rich(b"2"))
        .expect_err("the queue is full");
    assert_eq!(refused.error, SendError::QueueFull);
    assert_eq!(refused.message, Some(rich(b"2")), "handed back unchanged");
    sim.run_until_idle();
    assert_eq!(sent(&sim).len(), 2, "the refused one was not sent");
    assert_eq!(completions(&sim), vec![], "nor completed");

    // room again: the returned message goes as it is
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 0));
    assert_eq!(
        count(&sim, |e| matches!(e, Event::ProducerHasRoom { .. })),
        1
    );
    let again = sim
        .client
        .try_send(sim.now, p, refused.message.unwrap())
        .unwrap();
    held.held.borrow_mut().remove(0);
    held.release(&mut sim, 1);
    let sends = sent(&sim);
    assert_eq!(sends.len(), 3);
    let last = &sends[2];
    assert_eq!(last.payload.as_ref(), b"2");
    assert_eq!(last.metadata.partition_key.as_deref(), Some("k1"));
    assert_eq!(last.metadata.ordering_key.as_deref(), Some(&b"ok"[..]));
    assert_eq!(last.metadata.event_time, Some(1_234));
    assert_eq!(last.metadata.properties.len(), 2);
    assert_eq!(last.send.sequence_id, 2);
    let done = completions(&sim);
    assert_eq!(done.len(), 3);
    assert_eq!(done[0], (first, Ok(MessageId::new(7, 0, -1))));
    assert_eq!(done[2], (again, Ok(MessageId::new(7, 2, -1))));
}

#[test]
fn a_message_refused_for_the_memory_limit_comes_back_intact_and_a_retry_succeeds() {
    let mut config = ClientConfig::new("pulsar://svc:6650");
    config.memory_limit = 100;
    let mut sim = Sim::with_config(config);
    let held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    sim.client
        .try_send(sim.now, p, OutgoingMessage::new(vec![1u8; 60]))
        .unwrap();
    let big = OutgoingMessage::new(vec![2u8; 50]).with_key("big");
    let refused = sim
        .client
        .try_send(sim.now, p, big.clone())
        .expect_err("over the limit");
    assert_eq!(refused.error, SendError::MemoryLimit { limit: 100 });
    assert_eq!(refused.message.as_ref(), Some(&big));
    held.release(&mut sim, 0);
    let again = sim
        .client
        .try_send(sim.now, p, refused.message.unwrap())
        .unwrap();
    held.release(&mut sim, 1);
    let sends = sent(&sim);
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1].payload.as_ref(), &[2u8; 50][..]);
    assert_eq!(sends[1].metadata.partition_key.as_deref(), Some("big"));
    assert_eq!(
        completions(&sim).last(),
        Some(&(again, Ok(MessageId::new(7, 1, -1))))
    );
}

#[test]
fn refusals_for_a_closed_or_unknown_producer_or_a_closed_client_hand_the_message_back() {
    let mut sim = Sim::new();
    let _held = hold(&mut sim);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    sim.client.close_producer(sim.now, p).unwrap();
    let r = sim.client.try_send(sim.now, p, rich(b"x")).unwrap_err();
    assert_eq!(r.error, SendError::ProducerClosed);
    assert_eq!(r.message, Some(rich(b"x")));
    sim.run_for(Duration::from_secs(31));
    let r = sim.client.try_send(sim.now, p, rich(b"y")).unwrap_err();
    assert_eq!(r.error, SendError::UnknownProducer(p));
    assert_eq!(r.message, Some(rich(b"y")));
    sim.client.close(sim.now);
    let r = sim.client.try_send(sim.now, p, rich(b"z")).unwrap_err();
    assert_eq!(r.error, SendError::ClientClosed);
    assert_eq!(r.message, Some(rich(b"z")));
    assert!(completions(&sim).is_empty());
}

#[test]
fn send_still_reports_the_bare_error() {
    let mut sim = Sim::new();
    let _held = hold(&mut sim);
    let mut opts = ProducerOptions::default();
    opts.max_pending_messages = 1;
    let p = ready(&mut sim, "t", opts);
    sim.client.send(sim.now, p, rich(b"a")).unwrap();
    assert_eq!(
        sim.client.send(sim.now, p, rich(b"b")),
        Err(SendError::QueueFull)
    );
    let r = sim.client.try_send(sim.now, p, rich(b"c")).unwrap_err();
    assert_eq!(SendError::from(r), SendError::QueueFull);
}
