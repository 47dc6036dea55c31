//! Sends N messages with many in flight and reports the rate; then drains them with a consumer.
//!
//! `cargo run --release -p pulsar-tokio --example throughput -- [N] [SIZE] [URL]`
//! (`BATCH=1` in the environment turns producer batching on).

use std::time::Instant;

use futures::StreamExt;
use pulsar_tokio::{Client, InitialPosition};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let size: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:6650".into());
    let topic = format!(
        "persistent://public/default/pulsar-tokio-throughput-{}",
        std::process::id()
    );
    let client = Client::builder(url).build()?;
    let mut consumer = client
        .consumer(&topic)
        .subscription("throughput")
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(1000)
        .subscribe()
        .await?;
    let mut builder = client.producer(&topic).max_pending_messages(1000);
    if std::env::var("BATCH").is_ok_and(|v| v == "1") {
        builder = builder.batching(pulsar_tokio::BatchingOptions::enabled());
    }
    let producer = builder.create().await?;
    let payload = bytes::Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    let mut receipts = std::collections::VecDeque::new();
    for _ in 0..n {
        receipts.push_back(producer.send_async(payload.clone()).await?);
        // keep the receipt table small: resolve the oldest ones as we go
        while receipts.len() > 2000 {
            if let Some(r) = receipts.pop_front() {
                r.await?;
            }
        }
    }
    for r in receipts {
        r.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "produced {n} x {size} B in {secs:.2} s: {:.0} msg/s",
        n as f64 / secs
    );
    let start = Instant::now();
    for _ in 0..n {
        let m = consumer.next().await.ok_or("stream ended")??;
        consumer.ack(&m)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("consumed {n} in {secs:.2} s: {:.0} msg/s", n as f64 / secs);
    client.close().await?;
    Ok(())
}
