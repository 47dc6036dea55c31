//! An exactly-once pipeline (consume, transform, produce) with transactions: each round takes up
//! to `--batch` messages from the input topic, publishes their transformation to the output topic
//! and acknowledges the inputs, all in one transaction, then commits. The output gets every input's
//! transformation exactly once, whatever crashes:
//!
//! - a crash before the commit leaves the transaction open; its coordinator aborts it after the
//!   transaction timeout: its output messages are never delivered and its acknowledgements are
//!   dropped, so the inputs are delivered again and the restarted pipeline redoes that work;
//! - a commit makes the outputs visible and the acknowledgements effective at once.
//!
//! Needs a broker with `transactionCoordinatorEnabled=true` (`scripts/pulsar-broker start --txn`).
//!
//! ```text
//! cargo run -p pulsar-tokio --example exactly_once -- \
//!     pulsar://127.0.0.1:6650 persistent://public/default/in persistent://public/default/out \
//!     [--batch N] [--txn-timeout-secs S] [--idle-secs S] [--crash-after N]
//! ```
//!
//! `--crash-after N` exits the process abruptly (status 3, no close, no abort) once the Nth
//! message of the run is produced and acknowledged, before its transaction commits; the pipeline
//! stops by itself after `--idle-secs` without input. The tests run it, crash it and run it again
//! (`tests/tests/transactions.rs`).

use std::time::Duration;

use pulsar_tokio::{Client, Consumer, Error, InitialPosition, Message, Producer, SubscriptionType};

/// The command line.
struct Args {
    url: String,
    input: String,
    output: String,
    batch: usize,
    txn_timeout: Duration,
    idle: Duration,
    crash_after: Option<usize>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut a = Args {
        url: String::new(),
        input: String::new(),
        output: String::new(),
        batch: 10,
        txn_timeout: Duration::from_secs(10),
        idle: Duration::from_secs(5),
        crash_after: None,
    };
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--batch" => a.batch = number("--batch")? as usize,
            "--txn-timeout-secs" => {
                a.txn_timeout = Duration::from_secs(number("--txn-timeout-secs")?)
            }
            "--idle-secs" => a.idle = Duration::from_secs(number("--idle-secs")?),
            "--crash-after" => a.crash_after = Some(number("--crash-after")? as usize),
            _ => positional.push(arg),
        }
    }
    let [url, input, output]: [String; 3] = positional
        .try_into()
        .map_err(|_| "usage: exactly_once URL INPUT OUTPUT [options]".to_string())?;
    (a.url, a.input, a.output) = (url, input, output);
    Ok(a)
}

/// The transformation: `in-<x>` becomes `out-<x>`.
fn transform(message: &Message) -> String {
    let text = String::from_utf8_lossy(&message.payload);
    match text.strip_prefix("in-") {
        Some(rest) => format!("out-{rest}"),
        None => format!("out-{text}"),
    }
}

/// Up to `max` messages: waits `idle` for the first one, then takes what arrives within 100 ms.
async fn next_batch(
    consumer: &Consumer,
    max: usize,
    idle: Duration,
) -> Result<Vec<Message>, Error> {
    let mut batch = Vec::new();
    let mut wait = idle;
    while batch.len() < max {
        match tokio::time::timeout(wait, consumer.receive()).await {
            Ok(message) => batch.push(message?),
            Err(_) => break,
        }
        wait = Duration::from_millis(100);
    }
    Ok(batch)
}

/// One round: transform and produce the batch, acknowledge its inputs, commit — all or nothing.
async fn process(
    client: &Client,
    consumer: &Consumer,
    producer: &Producer,
    batch: &[Message],
    a: &Args,
    done: usize,
) -> Result<(), Error> {
    let txn = client
        .new_transaction()
        .timeout(a.txn_timeout)
        .build()
        .await?;
    for (i, message) in batch.iter().enumerate() {
        producer.send_with_txn(&txn, transform(message)).await?;
        consumer.ack_with_txn(&txn, message).await?;
        if a.crash_after == Some(done + i + 1) {
            println!(
                "crashing in transaction {} after {} of its messages",
                txn.id(),
                i + 1
            );
            std::process::exit(3);
        }
    }
    match txn.commit().await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Not committed: the inputs come back (after the abort, or the coordinator's
            // timeout) and are processed again.
            let _ = txn.abort().await;
            Err(e)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let client = Client::builder(a.url.clone()).build()?;
    // Failover: one active pipeline instance at a time; a standby takes over when it dies.
    let consumer = client
        .consumer(&a.input)
        .subscription("exactly-once-pipeline")
        .subscription_type(SubscriptionType::Failover)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client.producer(&a.output).create().await?;
    let mut done = 0;
    loop {
        let batch = next_batch(&consumer, a.batch, a.idle).await?;
        if batch.is_empty() {
            break;
        }
        match process(&client, &consumer, &producer, &batch, &a, done).await {
            Ok(()) => {
                done += batch.len();
                println!("committed {} messages ({done} in all)", batch.len());
            }
            // A conflict or a timeout: the batch is redone once its inputs come back.
            Err(e) => eprintln!("transaction failed (redone later): {e}"),
        }
    }
    println!("idle: {done} messages processed");
    client.close().await?;
    Ok(())
}
