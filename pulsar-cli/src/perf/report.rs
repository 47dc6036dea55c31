//! `perf produce` and `perf consume`: throughput (msg/s, MB/s) and HdrHistogram latency
//! percentiles, with interim reports and a progress bar on a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use pulsar_blocking::core::producer::BatchingOptions;
use pulsar_blocking::Client;
use serde_json::json;

use crate::args::{Format, PerfConsume, PerfProduce, PerfRun};
use crate::connect::seconds;
use crate::error::CliError;
use crate::output::out;
use crate::progress::{Pacer, Progress};
use crate::receive::{position, subscription_type};

/// Highest latency recorded, in microseconds (one hour); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latencies in microseconds, for the whole run and for the current interval.
#[derive(Debug)]
struct Latencies {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

impl Latencies {
    fn new() -> Result<Latencies, CliError> {
        let make = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| CliError::Usage(format!("histogram: {e}")))
        };
        Ok(Latencies {
            total: make()?,
            interval: make()?,
        })
    }

    fn record(&mut self, micros: u64) {
        let v = micros.clamp(1, MAX_LATENCY_US);
        self.total.saturating_record(v);
        self.interval.saturating_record(v);
    }
}

/// Counters shared with the send callbacks.
#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

/// When the run stops.
struct Limits {
    messages: u64,
    duration: Option<Duration>,
    interval: Duration,
}

impl Limits {
    fn from(run: &PerfRun) -> Result<Limits, CliError> {
        Ok(Limits {
            messages: run.num_messages,
            duration: (run.test_duration > 0.0)
                .then(|| seconds(run.test_duration, "--test-duration"))
                .transpose()?,
            interval: seconds(run.stats_interval, "--stats-interval")?,
        })
    }

    fn done(&self, count: u64, started: Instant) -> bool {
        (self.messages > 0 && count >= self.messages)
            || self.duration.is_some_and(|d| started.elapsed() >= d)
    }

    fn total(&self) -> Option<u64> {
        (self.messages > 0).then_some(self.messages)
    }
}

/// One line (or JSON object) of results.
struct Report<'a> {
    what: &'a str,
    messages: u64,
    bytes: u64,
    failed: u64,
    elapsed: Duration,
    latency: &'a Histogram<u64>,
}

impl Report<'_> {
    fn rate(&self) -> (f64, f64) {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        (self.messages as f64 / secs, self.bytes as f64 / secs / 1e6)
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn text(&self) -> String {
        let (msgs, mb) = self.rate();
        format!(
            "{}: {} msgs in {:.2} s · {msgs:.1} msg/s · {mb:.2} MB/s · failed {} · latency ms: p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            self.what,
            self.messages,
            self.elapsed.as_secs_f64(),
            self.failed,
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
        )
    }

    fn json(&self) -> String {
        let (msgs, mb) = self.rate();
        json!({
            "kind": self.what,
            "messages": self.messages,
            "bytes": self.bytes,
            "failed": self.failed,
            "seconds": self.elapsed.as_secs_f64(),
            "msg_per_sec": msgs,
            "mb_per_sec": mb,
            "latency_ms": {
                "p50": self.ms(0.5),
                "p99": self.ms(0.99),
                "p99_9": self.ms(0.999),
                "max": self.latency.max() as f64 / 1000.0,
                "samples": self.latency.len(),
            },
        })
        .to_string()
    }

    fn print_final(&self, format: Format) -> Result<(), CliError> {
        match format {
            Format::Text => out(&self.text()),
            Format::Json => out(&self.json()),
        }
    }
}

/// Interim reports every `interval`.
struct Ticker {
    next: Instant,
    last_at: Instant,
    last_messages: u64,
    last_bytes: u64,
}

impl Ticker {
    fn new(interval: Duration) -> Ticker {
        let now = Instant::now();
        Ticker {
            next: now + interval,
            last_at: now,
            last_messages: 0,
            last_bytes: 0,
        }
    }

    fn maybe_report(
        &mut self,
        interval: Duration,
        what: &str,
        counters: &Counters,
        latencies: &Mutex<Latencies>,
        progress: &Progress,
    ) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        let messages = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let mut lat = latencies.lock().unwrap_or_else(PoisonError::into_inner);
        let line = Report {
            what,
            messages: messages - self.last_messages,
            bytes: bytes - self.last_bytes,
            failed: counters.failed.load(Ordering::Relaxed),
            elapsed: now - self.last_at,
            latency: &lat.interval,
        }
        .text();
        lat.interval.reset();
        drop(lat);
        progress.println(&line);
        *self = Ticker {
            next: now + interval,
            last_at: now,
            last_messages: messages,
            last_bytes: bytes,
        };
    }
}

/// Runs `perf produce`.
pub fn produce(client: &Client, args: &PerfProduce, format: Format) -> Result<(), CliError> {
    let limits = Limits::from(&args.run)?;
    if args.size == 0 {
        return Err(CliError::Usage("--size must be at least 1".into()));
    }
    let delay = seconds(
        args.batch_time_window.max(1e-6) / 1000.0,
        "--batch-time-window",
    )?;
    let batching = (!args.disable_batching).then(|| {
        BatchingOptions::enabled().with_limits(
            args.batch_max_messages.max(1),
            args.batch_max_bytes.max(1),
            delay,
        )
    });
    let producer = client
        .producer(args.topic.clone())
        .max_pending_messages(args.max_outstanding.max(1))
        .configure(move |o| {
            if let Some(b) = batching {
                o.batching = b;
            }
        })
        .create()?;
    let payload = Bytes::from(
        (0..args.size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    );
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Latencies::new()?));
    let progress = Progress::new(limits.total(), "msgs", true);
    let mut pacer = Pacer::new(args.rate);
    let mut ticker = Ticker::new(limits.interval);
    let started = Instant::now();
    let mut sent = 0u64;
    while !limits.done(sent, started) {
        pacer.wait();
        let (done, lat, size) = (counters.clone(), latencies.clone(), payload.len() as u64);
        let at = Instant::now();
        producer.send_with_callback(payload.clone(), move |result| match result {
            Ok(_) => {
                let micros = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                lat.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(micros);
                done.messages.fetch_add(1, Ordering::Relaxed);
                done.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(_) => {
                done.failed.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        sent += 1;
        progress.inc(1);
        ticker.maybe_report(limits.interval, "produce", &counters, &latencies, &progress);
    }
    producer.flush()?;
    let elapsed = started.elapsed();
    progress.finish();
    producer.close()?;
    let lat = latencies.lock().unwrap_or_else(PoisonError::into_inner);
    Report {
        what: "produce",
        messages: counters.messages.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        elapsed,
        latency: &lat.total,
    }
    .print_final(format)
}

/// Runs `perf consume`; latency is end to end, from each message's publish time.
pub fn consume(client: &Client, args: &PerfConsume, format: Format) -> Result<(), CliError> {
    let limits = Limits::from(&args.run)?;
    let consumer = client
        .consumer(args.topic.clone())
        .subscription(args.subscription_name.clone())
        .subscription_type(subscription_type(args.subscription_type))
        .initial_position(position(args.subscription_position))
        .receiver_queue_size(args.receiver_queue_size.max(1))
        .subscribe()?;
    let counters = Counters::default();
    let latencies = Mutex::new(Latencies::new()?);
    let progress = Progress::new(limits.total(), "msgs", true);
    let mut ticker = Ticker::new(limits.interval);
    let mut started: Option<Instant> = None;
    let waiting_since = Instant::now();
    let mut count = 0u64;
    loop {
        if limits.done(count, started.unwrap_or(waiting_since)) {
            break;
        }
        let Some(message) = consumer.receive_timeout(Duration::from_millis(100))? else {
            ticker.maybe_report(limits.interval, "consume", &counters, &latencies, &progress);
            continue;
        };
        started.get_or_insert_with(Instant::now);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let latency_us = now_ms
            .saturating_sub(message.publish_time)
            .saturating_mul(1000);
        latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(latency_us);
        counters.messages.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add(message.payload.len() as u64, Ordering::Relaxed);
        count += 1;
        consumer.ack(&message)?;
        progress.inc(1);
        ticker.maybe_report(limits.interval, "consume", &counters, &latencies, &progress);
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    progress.finish();
    consumer.close()?;
    let lat = latencies.lock().unwrap_or_else(PoisonError::into_inner);
    Report {
        what: "consume",
        messages: counters.messages.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        failed: 0,
        elapsed,
        latency: &lat.total,
    }
    .print_final(format)
}
