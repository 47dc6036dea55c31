//! Cumulative acks and chunked messages against a scripted broker (bug K, simulation seeds 109508
//! and 160023): a chunked message is delivered at its last chunk, and other producers' entries
//! may lie between its chunks. A cumulative ack of one of those must not acknowledge the first
//! chunks of the chunked message on the broker: a rewind (reconnection, redelivery) would then
//! bring its later chunks alone, and the message would be lost for the subscription.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{ConnectionId, ConsumerId, ConsumerOptions, Event};
use pulsar_proto::pb::{base_command::Type, command_ack::AckType};
use support::{meta, Reply, Sim};

/// Chunk `id` of 2 of message `uuid` at entry `entry` of ledger 9.
fn chunk(consumer: ConsumerId, entry: u64, uuid: &str, id: i32, data: &[u8]) -> Reply {
    support::chunk(consumer.get(), entry, uuid, id, 2, data)
}

/// A plain message at entry `entry` of ledger 9.
fn plain(consumer: ConsumerId, entry: u64) -> Reply {
    support::message(consumer.get(), entry, b"m", meta(entry))
}

/// The ACKs the broker got: (type, entry of the first id).
fn acks(sim: &Sim) -> Vec<(i32, u64)> {
    sim.received_of(Type::Ack)
        .iter()
        .map(|a| {
            let a = a.command.ack.as_deref().unwrap();
            (a.ack_type, a.message_id[0].entry_id)
        })
        .collect()
}

fn cumulative(entry: u64) -> (i32, u64) {
    (AckType::Cumulative as i32, entry)
}

/// A consumer acknowledging at once gets the first chunk of message `a` at entry 5 and a plain
/// message at entry 6.
fn chunk_then_plain(sim: &mut Sim) -> (ConsumerId, ConnectionId) {
    let c = sim.subscribed(ConsumerOptions::new("sub").with_ack_group_time(Duration::ZERO));
    let conn = sim.conn_ids()[0];
    sim.inject(conn, chunk(c, 5, "a", 0, b"a0"));
    sim.inject(conn, plain(c, 6));
    (c, conn)
}

/// Message `a` has its chunks at entries 5 and 8, plain messages at 6 and 7 between them.
/// Acknowledging 7 cumulatively goes to the broker as 4 until `a` is acknowledged.
#[test]
fn a_cumulative_ack_stops_before_the_first_chunk_of_a_message_not_yet_acknowledged() {
    let mut sim = Sim::new();
    let (c, conn) = chunk_then_plain(&mut sim);
    sim.inject(conn, plain(c, 7));
    let got = sim.drain(c);
    assert_eq!(got.len(), 2);
    sim.client.ack_cumulative(sim.now, c, &got[1].id).unwrap();
    sim.run_until_idle();
    assert_eq!(acks(&sim), vec![cumulative(4)]);
    // whole but not acknowledged yet: still held
    sim.inject(conn, chunk(c, 8, "a", 1, b"a1"));
    let a = sim.drain(c);
    assert_eq!(a[0].payload.as_ref(), b"a0a1");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(acks(&sim), vec![cumulative(4)]);
    sim.client.ack_cumulative(sim.now, c, &a[0].id).unwrap();
    sim.run_until_idle();
    assert_eq!(acks(&sim), vec![cumulative(4), cumulative(8)]);
}

/// A message that never completes stops holding the cumulative ack back when it expires: its
/// chunk and everything the application acknowledged are acknowledged then.
#[test]
fn a_cumulative_ack_held_back_goes_out_when_the_incomplete_message_expires() {
    let mut sim = Sim::new();
    let (c, _) = chunk_then_plain(&mut sim);
    let got = sim.drain(c);
    sim.client.ack_cumulative(sim.now, c, &got[0].id).unwrap();
    sim.run_until_idle();
    assert_eq!(acks(&sim), vec![cumulative(4)]);
    sim.run_for(Duration::from_secs(61));
    assert_eq!(acks(&sim), vec![cumulative(4), cumulative(6)]);
}

/// Seed 160023's rewind was a reconnection. A cumulative ack made while the consumer is
/// disconnected goes out on the new connection before its permits: it must still stop before
/// the chunks the consumer held when the connection dropped (forgotten with it, they come
/// again), and the message is then delivered whole.
#[test]
fn a_cumulative_ack_made_while_disconnected_stops_before_the_chunks_held_at_the_loss() {
    let mut sim = Sim::new();
    let (c, conn) = chunk_then_plain(&mut sim);
    let got = sim.drain(c);
    sim.broker_close(conn);
    sim.client.ack_cumulative(sim.now, c, &got[0].id).unwrap();
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReconnected { .. })
    });
    assert_eq!(acks(&sim), vec![cumulative(4)]);
    // the broker redelivers from entry 5
    let conn = *sim.conn_ids().last().unwrap();
    sim.inject(conn, chunk(c, 5, "a", 0, b"a0"));
    sim.inject(conn, plain(c, 6));
    sim.inject(conn, chunk(c, 8, "a", 1, b"a1"));
    // (entry 6 is acknowledged, its ack only held back: not shown again)
    let again = sim.drain(c);
    let payloads: Vec<&[u8]> = again.iter().map(|m| m.payload.as_ref()).collect();
    assert_eq!(payloads, vec![&b"a0a1"[..]]);
    sim.client.ack_cumulative(sim.now, c, &again[0].id).unwrap();
    sim.run_until_idle();
    assert_eq!(acks(&sim).last(), Some(&cumulative(8)));
}
