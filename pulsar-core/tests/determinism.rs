//! Same seed and same inputs ⇒ the same outputs; the seed is the only source of randomness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use pulsar_core::{ClientConfig, ConsumerOptions, Event};
use support::{message, meta, Sim, SERVICE};

/// A scenario with jittered reconnections, producers, consumers and a close; returns the trace.
fn scenario(seed: u64) -> String {
    let mut sim = Sim::with_config(ClientConfig::new("pulsar://svc:6650").with_seed(seed));
    sim.broker(SERVICE).refuse = true;
    let p = sim
        .client
        .create_producer(sim.now, "t", Default::default())
        .unwrap();
    let c = sim
        .client
        .subscribe(sim.now, "t", ConsumerOptions::new("s"))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    sim.broker(SERVICE).refuse = false;
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerReady { .. })
    });
    sim.run_until_seen(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    for i in 0..5u8 {
        sim.client.send_payload(sim.now, p, vec![i; 10]).unwrap();
    }
    let conn = sim.conn_ids()[0];
    sim.inject(conn, message(c.get(), 1, b"hello", meta(1)));
    let m = sim.client.receive(sim.now, c).unwrap();
    sim.client.ack(sim.now, c, &m.id).unwrap();
    sim.broker_close(conn);
    sim.run_for(Duration::from_secs(2));
    sim.run_for(Duration::from_secs(65));
    sim.client.close(sim.now);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.client.is_closed());
    sim.trace
}

#[test]
fn same_seed_same_trace() {
    let a = scenario(42);
    let b = scenario(42);
    assert!(a.lines().count() > 50, "the scenario does something");
    assert_eq!(a, b);
}

#[test]
fn the_seed_changes_the_jitter() {
    let a = scenario(1);
    let b = scenario(2);
    assert_ne!(a, b);
}
