//! Produces a few messages and consumes them back, blocking.
//!
//! `cargo run -p pulsar-blocking --example blocking_roundtrip -- [pulsar://127.0.0.1:6650] [topic]`

use std::time::Duration;

use pulsar_blocking::{Client, InitialPosition};

fn main() -> Result<(), pulsar_blocking::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into());
    let topic = args
        .next()
        .unwrap_or_else(|| "persistent://public/default/pulsar-blocking-example".into());
    let client = Client::builder(url).build()?;
    let consumer = client
        .consumer(&topic)
        .subscription("example")
        .initial_position(InitialPosition::Earliest)
        .subscribe()?;
    let producer = client.producer(&topic).create()?;
    for i in 0..10 {
        let id = producer.send(format!("message {i}"))?;
        println!("sent {id}");
    }
    while let Some(message) = consumer.receive_timeout(Duration::from_secs(2))? {
        println!(
            "received {} {:?}",
            message.id,
            String::from_utf8_lossy(&message.payload)
        );
        consumer.ack(&message)?;
    }
    client.close()
}
