//! The limit on incomplete chunked messages against a scripted broker: on an in-order
//! subscription, evicting the oldest must not ask for a redelivery of everything, which brings
//! the same chunks back in the same order (simulation seeds 40714 and 62597).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{
    ConnectionId, ConsumerId, ConsumerOptions, Event, ReceiveError, SubscriptionType,
};
use pulsar_proto::pb::base_command::Type;
use support::{chunk, Sim};

fn acked_entries(sim: &Sim) -> Vec<u64> {
    sim.received_of(Type::Ack)
        .iter()
        .flat_map(|a| {
            a.command
                .ack
                .as_deref()
                .unwrap()
                .message_id
                .iter()
                .map(|m| m.entry_id)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn subscribed(sim: &mut Sim, kind: SubscriptionType) -> ConsumerId {
    subscribed_with(sim, kind, None)
}

fn subscribed_with(
    sim: &mut Sim,
    kind: SubscriptionType,
    ack_timeout: Option<Duration>,
) -> ConsumerId {
    let mut o = ConsumerOptions::new("sub")
        .with_type(kind)
        .with_ack_group_time(Duration::ZERO);
    if let Some(t) = ack_timeout {
        o = o.with_ack_timeout(t);
    }
    o.max_pending_chunked_messages = 2;
    sim.subscribed(o)
}

/// Messages a, b and c begin (entries 1-3) before b and c end (entries 4 and 5): with room for
/// two incomplete messages, a is evicted when c begins.
fn inject_three_begun_two_ended(sim: &mut Sim, conn: ConnectionId, c: ConsumerId) {
    sim.inject(conn, chunk(c.get(), 1, "a", 0, 2, b"a0"));
    sim.inject(conn, chunk(c.get(), 2, "b", 0, 2, b"b0"));
    sim.inject(conn, chunk(c.get(), 3, "c", 0, 2, b"c0"));
    sim.inject(conn, chunk(c.get(), 4, "b", 1, 2, b"b1"));
    sim.inject(conn, chunk(c.get(), 5, "c", 1, 2, b"c1"));
}

/// Three messages begin before any completes, with room for two: the first is evicted. It used
/// to be redelivered with everything unacknowledged (a new epoch), which on Exclusive and
/// Failover replays the same entries in the same order, so the same eviction happened at the
/// same point every time and the subscription never got past it. Now its chunks are held until
/// its message expires and then acknowledged; the messages after it are delivered.
#[test]
fn evicting_an_incomplete_chunked_message_does_not_rewind_an_in_order_subscription() {
    for kind in [SubscriptionType::Exclusive, SubscriptionType::Failover] {
        let mut sim = Sim::new();
        let c = subscribed(&mut sim, kind);
        let conn = sim.conn_ids()[0];
        inject_three_begun_two_ended(&mut sim, conn, c);
        sim.run_for(Duration::from_secs(1));
        assert!(
            sim.received_of(Type::RedeliverUnacknowledgedMessages)
                .is_empty(),
            "{kind:?}: no redelivery, it would replay the same eviction"
        );
        let got: Vec<Vec<u8>> = sim.drain(c).iter().map(|m| m.payload.to_vec()).collect();
        assert_eq!(got, vec![b"b0b1".to_vec(), b"c0c1".to_vec()], "{kind:?}");
        assert!(
            sim.events.iter().any(|(_, e)| matches!(
                e,
                Event::ReceiveFailed {
                    error: ReceiveError::ChunkQueueFull { uuid, acked: false },
                    ..
                } if uuid == "a"
            )),
            "{kind:?}: the application is told"
        );
        assert!(
            acked_entries(&sim).is_empty(),
            "{kind:?}: nothing acknowledged before the evicted message expires"
        );
        // the chunk expiry (60 s after publication) acknowledges the evicted chunk, nothing else
        sim.run_for(Duration::from_secs(61));
        assert_eq!(acked_entries(&sim), vec![1], "{kind:?}");
        assert!(sim
            .received_of(Type::RedeliverUnacknowledgedMessages)
            .is_empty());
    }
}

/// Simulation seed 101180: with an ack timeout, the evicted message's chunks were handed to it,
/// and on Exclusive and Failover its redelivery is a redelivery of everything unacknowledged:
/// the same chunks came back in the same order as a new incomplete message, were evicted again,
/// handed to the ack timeout again, and so on every ack timeout until the end (the chunk expiry
/// never ran: an evicted message has left the assembler). Now they are held until their message
/// expires and then acknowledged, ack timeout or not.
#[test]
fn an_evicted_chunked_message_is_not_left_to_the_ack_timeout_on_an_in_order_subscription() {
    for kind in [SubscriptionType::Exclusive, SubscriptionType::Failover] {
        let mut sim = Sim::new();
        let c = subscribed_with(&mut sim, kind, Some(Duration::from_secs(5)));
        let conn = sim.conn_ids()[0];
        inject_three_begun_two_ended(&mut sim, conn, c);
        sim.run_for(Duration::from_secs(1));
        let got = sim.drain(c);
        assert_eq!(got.len(), 2, "{kind:?}: b and c");
        for m in &got {
            sim.client.ack_message(sim.now, m).unwrap();
        }
        // past the ack timeout, several times over, and past the evicted message's expiry
        sim.run_for(Duration::from_secs(61));
        assert!(
            sim.received_of(Type::RedeliverUnacknowledgedMessages)
                .is_empty(),
            "{kind:?}: no redelivery, it would replay the same eviction"
        );
        let mut acked = acked_entries(&sim);
        acked.sort_unstable();
        assert_eq!(acked, vec![1, 2, 3, 4, 5], "{kind:?}");
    }
}

/// On Shared, the evicted message's chunks are still redelivered one by one (by id): that does
/// not rewind anything, and another consumer may complete the message.
#[test]
fn evicting_an_incomplete_chunked_message_redelivers_its_chunks_on_shared() {
    let mut sim = Sim::new();
    let c = subscribed(&mut sim, SubscriptionType::Shared);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, chunk(c.get(), 1, "a", 0, 2, b"a0"));
    sim.inject(conn, chunk(c.get(), 2, "b", 0, 2, b"b0"));
    sim.inject(conn, chunk(c.get(), 3, "c", 0, 2, b"c0"));
    sim.run_for(Duration::from_secs(1));
    let redelivered: Vec<Vec<u64>> = sim
        .received_of(Type::RedeliverUnacknowledgedMessages)
        .iter()
        .map(|r| {
            r.command
                .redeliver_unacknowledged_messages
                .as_deref()
                .unwrap()
                .message_ids
                .iter()
                .map(|m| m.entry_id)
                .collect()
        })
        .collect();
    assert_eq!(redelivered, vec![vec![1]]);
}
