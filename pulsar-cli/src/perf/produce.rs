//! `perf produce`: `-n` producers on each of the `-t` topics, fed in turn by one thread at `-r`
//! messages per second in total (as pulsar-perf's sending thread), with send latency measured
//! from the send call to the broker's receipt.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pulsar_blocking::core::producer::BatchingOptions;
use pulsar_blocking::{Client, CompressionType, OutgoingMessage, Producer};

use super::report::{record, Counters, Latencies, Limits, Report, Ticker, Workers};
use crate::args::{CompressionArg, Format, KeyModeArg, PerfProduce};
use crate::connect::seconds;
use crate::error::CliError;
use crate::progress::{Pacer, Progress};

/// The core's codec for the flag.
fn compression(c: CompressionArg) -> CompressionType {
    match c {
        CompressionArg::None => CompressionType::None,
        CompressionArg::Lz4 => CompressionType::Lz4,
        CompressionArg::Zlib => CompressionType::Zlib,
        CompressionArg::Zstd => CompressionType::Zstd,
        CompressionArg::Snappy => CompressionType::Snappy,
    }
}

/// Creates the producers: `-n` per topic, in topic order.
fn producers(client: &Client, args: &PerfProduce) -> Result<Vec<Producer>, CliError> {
    let topics = args.topics.names().map_err(CliError::Usage)?;
    let delay = seconds(
        args.batch_time_window.max(1e-6) / 1000.0,
        "--batch-time-window",
    )?;
    let batching = (!args.disable_batching && !args.chunking).then(|| {
        BatchingOptions::enabled().with_limits(
            args.batch_max_messages.max(1),
            args.batch_max_bytes.max(1),
            delay,
        )
    });
    let per_topic = args.num_producers as usize;
    let several = topics.len() * per_topic > 1;
    let mut out = Vec::with_capacity(topics.len() * per_topic);
    for topic in &topics {
        for _ in 0..per_topic {
            let mut builder = client
                .producer(topic.clone())
                .max_pending_messages(args.max_pending())
                .compression(compression(args.compression))
                .send_timeout(Duration::from_secs(args.send_timeout))
                .chunking(args.chunking);
            if let Some(b) = &batching {
                builder = builder.batching(b.clone());
            }
            if let Some(name) = &args.producer_name {
                let name = if several {
                    format!("{name}-{}", out.len())
                } else {
                    name.clone()
                };
                builder = builder.name(name);
            }
            out.push(builder.create()?);
        }
    }
    Ok(out)
}

/// Message keys of `-mk`.
struct Keys {
    mode: Option<KeyModeArg>,
    next: u64,
    /// xorshift64 state for random keys.
    state: u64,
}

impl Keys {
    fn new(mode: Option<KeyModeArg>) -> Keys {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Keys {
            mode,
            next: 0,
            state: seed | 1,
        }
    }

    fn next(&mut self) -> Option<String> {
        match self.mode? {
            KeyModeArg::AutoIncrement => {
                let k = self.next;
                self.next += 1;
                Some(k.to_string())
            }
            KeyModeArg::Random => {
                let mut x = self.state;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.state = x;
                Some(x.to_string())
            }
        }
    }
}

/// Runs `perf produce`.
pub fn produce(client: &Client, args: &PerfProduce, format: Format) -> Result<(), CliError> {
    let limits = Limits::new(args.num_messages, &args.run)?;
    if args.size == 0 {
        return Err(CliError::Usage("--size must be at least 1".into()));
    }
    let topics = args.topics.names().map_err(CliError::Usage)?.len();
    let producers = producers(client, args)?;
    let workers = Workers {
        kind: "producers",
        count: producers.len(),
        topics,
    };
    let payload = Bytes::from(
        (0..args.size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let plain = args.key_mode.is_none() && !args.set_event_time && args.delay == 0;
    let mut keys = Keys::new(args.key_mode);
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Latencies::new()?));
    let progress = Progress::new(limits.total(), "msgs", true);
    let mut pacer = Pacer::new(args.rate);
    let mut ticker = Ticker::new("produce", limits.interval, workers);
    let started = Instant::now();
    let mut sent = 0u64;
    while !limits.done(sent, started) {
        pacer.wait();
        let producer = &producers[(sent % producers.len() as u64) as usize];
        let (done, lat, size) = (counters.clone(), latencies.clone(), payload.len() as u64);
        let at = Instant::now();
        let callback = move |result: Result<_, pulsar_blocking::Error>| match result {
            Ok(_) => {
                record(
                    &lat,
                    u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX),
                );
                done.add(size);
            }
            Err(_) => {
                done.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        if plain {
            producer.send_with_callback(payload.clone(), callback)?;
        } else {
            let mut message = OutgoingMessage::new(payload.clone());
            if let Some(key) = keys.next() {
                message = message.with_key(key);
            }
            if args.set_event_time {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                message = message.with_event_time(now);
            }
            if args.delay > 0 {
                message = message.with_deliver_after(Duration::from_secs(args.delay));
            }
            producer.send_with_callback(message, callback)?;
        }
        sent += 1;
        progress.inc(1);
        ticker.maybe_report(&counters, &latencies, &progress);
    }
    for p in &producers {
        p.flush()?;
    }
    let elapsed = started.elapsed();
    progress.finish();
    for p in producers {
        p.close()?;
    }
    Report::print_final("produce", &counters, &latencies, elapsed, workers, format)
}
