//! A deterministic test the way a user can write one: the client's sans-IO core (`pulsar-core`)
//! and the embedded broker's sans-IO core (`pulsar_embedded::core::Cluster`) in one plain step
//! loop, with a simulated clock and a "network" that hands bytes straight across. No socket, no
//! thread, no real time: the same program gives the same run every time, and a fault (a dropped
//! connection, an unloaded topic, injected broker errors through `ClusterConfig::faults`) can be
//! put in at any step.
//!
//! `cargo run -p pulsar-tests --example embedded_step_loop`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_core::{
    Client, ClientConfig, ConnectionId, ConsumerOptions, Event, InitialPosition, IoRequest,
    OutgoingMessage, ProducerOptions,
};
use pulsar_embedded::core::{Cluster, ClusterConfig, ConnId, Output};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The client, the broker, the clock and the connections between them.
struct World {
    client: Client,
    broker: Cluster,
    base: Instant,
    t: Duration,
    conns: BTreeMap<ConnId, ConnectionId>,
    events: Vec<Event>,
}

impl World {
    fn now(&self) -> Instant {
        self.base + self.t
    }

    /// Moves every output across until both sides are quiet.
    fn settle(&mut self) -> R {
        loop {
            let now = self.now();
            let mut moved = false;
            while let Some(io) = self.client.poll_io() {
                moved = true;
                match io {
                    IoRequest::Connect { conn, .. } => {
                        let id = ConnId(conn.get());
                        self.broker.accept(self.t, id, 0)?;
                        self.conns.insert(id, conn);
                        self.client.handle_connected(now, conn)?;
                    }
                    IoRequest::Close { conn } => {
                        let id = ConnId(conn.get());
                        self.conns.remove(&id);
                        self.broker.on_closed(self.t, id);
                    }
                    _ => {}
                }
            }
            while let Some(tx) = self.client.poll_transmit() {
                moved = true;
                self.broker
                    .on_bytes(self.t, ConnId(tx.conn.get()), &tx.data);
            }
            self.broker.tick(self.t);
            while let Some(out) = self.broker.poll_transmit() {
                moved = true;
                match out {
                    Output::Data { conn, data } => {
                        if let Some(c) = self.conns.get(&conn) {
                            self.client.handle_bytes(now, *c, &data)?;
                        }
                    }
                    Output::Close { conn } => {
                        if let Some(c) = self.conns.remove(&conn) {
                            self.client.handle_closed(now, c)?;
                        }
                    }
                }
            }
            while let Some(e) = self.client.poll_event() {
                moved = true;
                self.events.push(e);
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// Advances the clock to the next deadline of either side (at most `max`), then settles.
    fn step(&mut self, max: Duration) -> R {
        self.settle()?;
        let limit = self.t + max;
        let client = self
            .client
            .poll_timeout()
            .map(|i| i.duration_since(self.base));
        let broker = self.broker.poll_timeout();
        let next = [client, broker, Some(limit)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(limit);
        self.t = next.max(self.t);
        let now = self.now();
        self.client.handle_timeout(now);
        self.broker.tick(self.t);
        self.settle()
    }
}

fn main() -> R {
    let base = Instant::now();
    let mut config = ClientConfig::new(Cluster::service_url(1));
    config.unix_time_ms = 1_700_000_000_000; // a fixed wall clock: the run replays exactly
    let mut world = World {
        client: Client::new(config, base)?,
        broker: Cluster::new(ClusterConfig::new(1, 42)),
        base,
        t: Duration::ZERO,
        conns: BTreeMap::new(),
        events: Vec::new(),
    };
    let now = world.now();
    let mut options = ConsumerOptions::new("sub");
    options.initial_position = InitialPosition::Earliest;
    let consumer = world.client.subscribe(now, "step-loop", options)?;
    let producer = world
        .client
        .create_producer(now, "step-loop", ProducerOptions::default())?;
    for i in 0..10 {
        world
            .client
            .send(now, producer, OutgoingMessage::new(format!("message {i}")))?;
    }
    let mut received = Vec::new();
    while received.len() < 10 && world.t < Duration::from_secs(30) {
        world.step(Duration::from_millis(10))?;
        let now = world.now();
        while let Some(m) = world.client.receive(now, consumer) {
            world.client.ack_message(now, &m)?;
            received.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();
    assert_eq!(received, expected);
    let completed = world
        .events
        .iter()
        .filter(|e| matches!(e, Event::SendCompleted { .. }))
        .count();
    println!(
        "received {} messages in {:?} of simulated time; {completed} sends completed",
        received.len(),
        world.t
    );
    Ok(())
}
