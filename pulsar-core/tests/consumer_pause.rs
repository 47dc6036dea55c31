//! Pausing and resuming a consumer (no FLOW while paused, the held permits on resume, a
//! resubscription included) and the receiver-queue watch of batch receives, against a scripted
//! broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use pulsar_core::{ConsumerOptions, Event};
use pulsar_proto::pb::base_command::Type;
use support::{message, meta, Sim};

fn flows(sim: &Sim) -> Vec<u32> {
    sim.received_of(Type::Flow)
        .iter()
        .map(|f| f.command.flow.as_deref().unwrap().message_permits)
        .collect()
}

fn queue_of(n: u32) -> ConsumerOptions {
    ConsumerOptions::new("sub").with_receiver_queue_size(n)
}

#[test]
fn a_paused_consumer_sends_no_permits_and_resume_sends_those_held() {
    let mut sim = Sim::new();
    let c = sim.subscribed(queue_of(4));
    assert_eq!(flows(&sim), vec![4]);
    sim.client.pause_consumer(sim.now, c).unwrap();
    assert_eq!(sim.client.is_consumer_paused(c), Some(true));
    let conn = sim.conn_ids()[0];
    for entry in 1..=4 {
        sim.inject(conn, message(c.get(), entry, b"m", meta(entry)));
    }
    sim.run_until_idle();
    // what the broker had permits for still arrives and is received...
    assert_eq!(sim.drain(c).len(), 4);
    sim.run_until_idle();
    // ...but no permit goes back while paused
    assert_eq!(flows(&sim), vec![4]);
    sim.client.resume_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![4, 4]);
    assert_eq!(sim.client.is_consumer_paused(c), Some(false));
    // resuming twice sends nothing more
    sim.client.resume_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![4, 4]);
}

#[test]
fn a_consumer_resubscribed_while_paused_stays_paused() {
    let mut sim = Sim::new();
    let c = sim.subscribed(queue_of(6));
    sim.client.pause_consumer(sim.now, c).unwrap();
    let conn = sim.conn_ids()[0];
    sim.close_and_resubscribe(conn);
    sim.run_until_idle();
    assert_eq!(
        flows(&sim),
        vec![6],
        "permits sent on resubscription while paused"
    );
    sim.client.resume_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![6, 6]);
}

#[test]
fn a_consumer_started_paused_sends_its_first_permits_on_resume() {
    let mut sim = Sim::new();
    let mut options = queue_of(10);
    options.start_paused = true;
    let c = sim.subscribed(options);
    assert!(flows(&sim).is_empty(), "permits sent while paused");
    sim.client.resume_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![10]);
}

#[test]
fn a_paused_zero_queue_consumer_asks_for_a_message_only_after_resume() {
    let mut sim = Sim::new();
    let c = sim.subscribed(queue_of(0));
    sim.client.pause_consumer(sim.now, c).unwrap();
    assert!(sim.client.receive(sim.now, c).is_none());
    sim.run_until_idle();
    assert!(flows(&sim).is_empty());
    sim.client.resume_consumer(sim.now, c).unwrap();
    sim.run_until_idle();
    assert_eq!(flows(&sim), vec![1]);
}

#[test]
fn the_queue_watch_reports_the_next_message_even_on_a_non_empty_queue() {
    let mut sim = Sim::new();
    let c = sim.subscribed(queue_of(10));
    let conn = sim.conn_ids()[0];
    let available = |sim: &mut Sim| {
        sim.take_events()
            .iter()
            .filter(|e| matches!(e, Event::MessagesAvailable { consumer } if *consumer == c))
            .count()
    };
    sim.take_events();
    sim.inject(conn, message(c.get(), 1, b"abc", meta(1)));
    sim.run_until_idle();
    assert_eq!(available(&mut sim), 1, "empty to non-empty");
    sim.inject(conn, message(c.get(), 2, b"de", meta(2)));
    sim.run_until_idle();
    assert_eq!(
        available(&mut sim),
        0,
        "no event for a queue that was not empty"
    );
    assert_eq!(sim.client.receiver_queue(c), Some((2, 5)));
    sim.client.watch_receiver_queue(c);
    sim.inject(conn, message(c.get(), 3, b"f", meta(3)));
    sim.inject(conn, message(c.get(), 4, b"g", meta(4)));
    sim.run_until_idle();
    assert_eq!(available(&mut sim), 1, "the watch reports once");
    assert_eq!(sim.client.receiver_queue(c), Some((4, 7)));
}
