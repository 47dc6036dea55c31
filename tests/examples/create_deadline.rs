//! Times producer creation on tokio against a service URL that refuses or never answers, to check
//! that the operation timeout is a deadline.
//!
//! `cargo run -p pulsar-tests --example create_deadline -- [url] [operation timeout s] [connection timeout s]`

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), pulsar_tokio::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "pulsar://127.0.0.1:7999".into());
    let seconds = |s: Option<String>, default: f64| {
        Duration::from_secs_f64(s.and_then(|s| s.parse().ok()).unwrap_or(default))
    };
    let operation = seconds(args.next(), 3.0);
    let connection = seconds(args.next(), 10.0);
    let client = pulsar_tokio::Client::builder(url)
        .operation_timeout(operation)
        .connection_timeout(connection)
        .build()?;
    let start = Instant::now();
    let result = client.producer("x").create().await;
    let elapsed = start.elapsed();
    match result {
        Ok(_) => println!("created after {elapsed:?}"),
        Err(e) => println!("failed after {elapsed:?}: {e}"),
    }
    Ok(())
}
