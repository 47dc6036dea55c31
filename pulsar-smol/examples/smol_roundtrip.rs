//! Produces a few messages and consumes them back on smol.
//!
//! `cargo run -p pulsar-smol --example smol_roundtrip -- [pulsar://127.0.0.1:6650] [topic]`

use futures::StreamExt;
use pulsar_smol::{Client, InitialPosition};

fn main() -> Result<(), pulsar_smol::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into());
    let topic = args
        .next()
        .unwrap_or_else(|| "persistent://public/default/pulsar-smol-example".into());
    smol::block_on(async {
        let client = Client::builder(url).build()?;
        let mut consumer = client
            .consumer(&topic)
            .subscription("example")
            .initial_position(InitialPosition::Earliest)
            .subscribe()
            .await?;
        let producer = client.producer(&topic).create().await?;
        let mut receipts = Vec::new();
        for i in 0..10 {
            receipts.push(producer.send_async(format!("message {i}")).await?);
        }
        for receipt in receipts {
            println!("sent {}", receipt.await?);
        }
        for _ in 0..10 {
            let Some(message) = consumer.next().await else {
                break;
            };
            let message = message?;
            println!(
                "received {} {:?}",
                message.id,
                String::from_utf8_lossy(&message.payload)
            );
            consumer.ack(&message)?;
        }
        client.close().await
    })
}
