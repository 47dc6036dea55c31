//! What every perf workload shares: run limits, counters, latency histograms and the reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

use crate::args::{Format, PerfRun};
use crate::connect::seconds;
use crate::error::CliError;
use crate::output::out;
use crate::progress::Progress;

/// Highest latency recorded, in microseconds (one hour); larger values are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latencies in microseconds, for the whole run and for the current interval.
#[derive(Debug)]
pub struct Latencies {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

impl Latencies {
    /// Empty histograms.
    pub fn new() -> Result<Latencies, CliError> {
        let make = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| CliError::Usage(format!("histogram: {e}")))
        };
        Ok(Latencies {
            total: make()?,
            interval: make()?,
        })
    }

    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        let v = micros.clamp(1, MAX_LATENCY_US);
        self.total.saturating_record(v);
        self.interval.saturating_record(v);
    }
}

/// Records into shared histograms.
pub fn record(latencies: &Mutex<Latencies>, micros: u64) {
    latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(micros);
}

/// Counters shared by the workers.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages done (acknowledged by the broker, or received).
    pub messages: AtomicU64,
    /// Their payload bytes.
    pub bytes: AtomicU64,
    /// Sends that failed.
    pub failed: AtomicU64,
}

impl Counters {
    /// Counts one message of `bytes`.
    pub fn add(&self, bytes: u64) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// When the run stops.
#[derive(Debug)]
pub struct Limits {
    /// Messages in total (0: no limit).
    pub messages: u64,
    /// Run time.
    pub duration: Option<Duration>,
    /// Between interim reports (`None`: no interim reports).
    pub interval: Option<Duration>,
}

impl Limits {
    /// From the flags.
    pub fn new(messages: u64, run: &PerfRun) -> Result<Limits, CliError> {
        Ok(Limits {
            messages,
            duration: (run.test_duration > 0.0)
                .then(|| seconds(run.test_duration, "--test-duration"))
                .transpose()?,
            interval: (run.stats_interval_seconds != 0.0)
                .then(|| seconds(run.stats_interval_seconds, "--stats-interval-seconds"))
                .transpose()?,
        })
    }

    /// Whether `count` messages or the time since `started` end the run.
    pub fn done(&self, count: u64, started: Instant) -> bool {
        (self.messages > 0 && count >= self.messages)
            || self.duration.is_some_and(|d| started.elapsed() >= d)
    }

    /// The message count for a progress bar.
    pub fn total(&self) -> Option<u64> {
        (self.messages > 0).then_some(self.messages)
    }
}

/// Who did the work: the number of topics and of producers, consumers or readers.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    /// `producers`, `consumers` or `readers`.
    pub kind: &'static str,
    /// How many.
    pub count: usize,
    /// On how many topics.
    pub topics: usize,
}

/// One line (or JSON object) of results.
pub struct Report<'a> {
    /// `produce`, `consume` or `read`.
    pub what: &'a str,
    /// Messages done.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Failed sends.
    pub failed: u64,
    /// Over this time.
    pub elapsed: Duration,
    /// Their latencies.
    pub latency: &'a Histogram<u64>,
    /// Who did it.
    pub workers: Workers,
}

impl Report<'_> {
    /// The final report of a run from the shared counters.
    pub fn print_final(
        what: &str,
        counters: &Counters,
        latencies: &Mutex<Latencies>,
        elapsed: Duration,
        workers: Workers,
        format: Format,
    ) -> Result<(), CliError> {
        let lat = latencies.lock().unwrap_or_else(PoisonError::into_inner);
        let report = Report {
            what,
            messages: counters.messages.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            elapsed,
            latency: &lat.total,
            workers,
        };
        match format {
            Format::Text => out(&report.text()),
            Format::Json => out(&report.json()),
        }
    }

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
            "{}: {} msgs in {:.2} s · {msgs:.1} msg/s · {mb:.2} MB/s · failed {} · latency ms: p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} · {} {} on {} topic(s)",
            self.what,
            self.messages,
            self.elapsed.as_secs_f64(),
            self.failed,
            self.ms(0.5),
            self.ms(0.99),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
            self.workers.count,
            self.workers.kind,
            self.workers.topics,
        )
    }

    fn json(&self) -> String {
        let (msgs, mb) = self.rate();
        let mut value = json!({
            "kind": self.what,
            "messages": self.messages,
            "bytes": self.bytes,
            "failed": self.failed,
            "seconds": self.elapsed.as_secs_f64(),
            "msg_per_sec": msgs,
            "mb_per_sec": mb,
            "topics": self.workers.topics,
            "latency_ms": {
                "p50": self.ms(0.5),
                "p99": self.ms(0.99),
                "p99_9": self.ms(0.999),
                "max": self.latency.max() as f64 / 1000.0,
                "samples": self.latency.len(),
            },
        });
        value[self.workers.kind] = json!(self.workers.count);
        value.to_string()
    }
}

/// Interim reports every `interval` (none when `None`), from the shared counters.
#[derive(Debug)]
pub struct Ticker {
    what: &'static str,
    interval: Option<Duration>,
    workers: Workers,
    /// When the next report is due (`None`: never).
    next: Option<Instant>,
    last_at: Instant,
    last_messages: u64,
    last_bytes: u64,
}

impl Ticker {
    /// Reports start `interval` from now.
    pub fn new(what: &'static str, interval: Option<Duration>, workers: Workers) -> Ticker {
        let now = Instant::now();
        Ticker {
            what,
            interval,
            workers,
            next: interval.map(|i| now + i),
            last_at: now,
            last_messages: 0,
            last_bytes: 0,
        }
    }

    /// Prints the interval's figures above the progress bar when the interval has passed.
    pub fn maybe_report(
        &mut self,
        counters: &Counters,
        latencies: &Mutex<Latencies>,
        progress: &Progress,
    ) {
        let now = Instant::now();
        if self.next.is_none_or(|next| now < next) {
            return;
        }
        let messages = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let mut lat = latencies.lock().unwrap_or_else(PoisonError::into_inner);
        let line = Report {
            what: self.what,
            messages: messages - self.last_messages,
            bytes: bytes - self.last_bytes,
            failed: counters.failed.load(Ordering::Relaxed),
            elapsed: now - self.last_at,
            latency: &lat.interval,
            workers: self.workers,
        }
        .text();
        lat.interval.reset();
        drop(lat);
        progress.println(&line);
        self.next = self.interval.map(|i| now + i);
        self.last_at = now;
        self.last_messages = messages;
        self.last_bytes = bytes;
    }
}
