//! Produces a few messages and consumes them back.
//!
//! `cargo run -p pulsar-tokio --example tokio_roundtrip -- [pulsar://127.0.0.1:6650] [topic]`

use pulsar_tokio::{Client, InitialPosition};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), pulsar_tokio::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into());
    let topic = args
        .next()
        .unwrap_or_else(|| "persistent://public/default/pulsar-tokio-example".into());
    let client = Client::builder(url).build()?;
    let consumer = client
        .consumer(&topic)
        .subscription("example")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client.producer(&topic).create().await?;
    for i in 0..10 {
        let id = producer.send(format!("message {i}")).await?;
        println!("sent {id}");
    }
    for _ in 0..10 {
        let message = consumer.receive().await?;
        println!(
            "received {} {:?}",
            message.id,
            String::from_utf8_lossy(&message.payload)
        );
        consumer.ack(&message)?;
    }
    println!("{:#?}", client.stats().counters);
    client.close().await
}
