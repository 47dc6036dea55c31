//! Fixed-rate sending without coordinated omission, and HdrHistogram latency records.
//!
//! Message `i` of a paced run has the scheduled send time `start + i / rate`. Its latency is
//! measured from that time, not from when the client got around to sending it: a client that
//! falls behind sees the delay in its latency, as a real application would.

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::spec::{LatencySummary, HEADER_LEN};

/// Largest latency recorded, microseconds (ten minutes); larger values are clamped.
const MAX_US: u64 = 600_000_000;

/// A latency histogram in microseconds, shareable with callbacks on other threads.
#[derive(Debug)]
pub struct Recorder {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty recorder (1 µs to 10 min, 3 significant digits).
    pub fn new() -> Recorder {
        let histogram = Histogram::new_with_bounds(1, MAX_US, 3)
            .unwrap_or_else(|e| unreachable!("constant histogram bounds: {e}"));
        Recorder {
            histogram: Mutex::new(histogram),
        }
    }

    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(us);
    }

    /// Records `now - scheduled` when `scheduled` is inside the measured window.
    pub fn record_since(&self, scheduled: Instant, window_start: Instant, now: Instant) {
        if scheduled >= window_start {
            self.record(now.saturating_duration_since(scheduled));
        }
    }

    /// Percentiles so far.
    pub fn summary(&self) -> LatencySummary {
        let h = self
            .histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        summarize(&h)
    }
}

/// p50 / p99 / p99.9 / max of a histogram in microseconds.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary {
        p50_us: h.value_at_quantile(0.5) as f64,
        p99_us: h.value_at_quantile(0.99) as f64,
        p999_us: h.value_at_quantile(0.999) as f64,
        max_us: h.max() as f64,
        count: h.len(),
    }
}

/// Scheduled send times at a fixed rate.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    interval_ns: f64,
    warmup: Duration,
    end: Duration,
}

impl Schedule {
    /// Starts now: `rate` messages per second, a warm-up, then the measured window.
    pub fn new(rate: f64, warmup: Duration, measure: Duration) -> Schedule {
        Schedule {
            start: Instant::now(),
            interval_ns: 1e9 / rate.max(1e-3),
            warmup,
            end: warmup + measure,
        }
    }

    /// Scheduled time of message `i`, or `None` once past the end of the run.
    pub fn at(&self, i: u64) -> Option<Instant> {
        let offset = Duration::from_nanos((i as f64 * self.interval_ns) as u64);
        (offset < self.end).then(|| self.start + offset)
    }

    /// When a sender that is idle until message time `at` wakes up: `at` rounded up to the
    /// schedule's next whole millisecond. Every runtime thus wakes at most once per millisecond
    /// and sends the messages that came due together, as tokio's timer (millisecond ticks) does
    /// by itself: the pacing then costs every client the same few wake-ups, where a timer
    /// precise to the microsecond (smol's, `thread::sleep`) would wake the sender for each
    /// message and charge the client for 10,000 timer wake-ups per second at 10,000 msg/s.
    /// Latency is still counted from `at`, so the rounding shows in it.
    pub fn wake_at(&self, at: Instant) -> Instant {
        const TICK_NS: u128 = 1_000_000;
        let since = at.saturating_duration_since(self.start).as_nanos();
        let ticks = since.div_ceil(TICK_NS);
        let ns = u64::try_from(ticks * TICK_NS).unwrap_or(u64::MAX);
        self.start + Duration::from_nanos(ns)
    }

    /// Start of the measured window.
    pub fn window_start(&self) -> Instant {
        self.start + self.warmup
    }

    /// End of the measured window.
    pub fn window_end(&self) -> Instant {
        self.start + self.end
    }

    /// Sleeps until `at` (returns at once when it is already past).
    pub fn wait_until(at: Instant) {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }
}

/// The instant all payload timestamps of this process are counted from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A payload of `size` bytes (at least [`HEADER_LEN`]) carrying the scheduled send time and a
/// sequence number.
pub fn stamped_payload(size: usize, scheduled: Instant, seq: u64) -> Vec<u8> {
    let mut p = vec![0u8; size.max(HEADER_LEN)];
    let ns = u64::try_from(scheduled.saturating_duration_since(epoch()).as_nanos()).unwrap_or(0);
    p[..8].copy_from_slice(&ns.to_le_bytes());
    p[8..16].copy_from_slice(&seq.to_le_bytes());
    p
}

/// The scheduled send time in a payload made by [`stamped_payload`] in this process.
pub fn payload_time(payload: &[u8]) -> Option<Instant> {
    let ns = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    Some(epoch() + Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_evenly_spaced_and_ends() {
        let s = Schedule::new(1000.0, Duration::from_millis(10), Duration::from_millis(20));
        let t0 = s.at(0).unwrap();
        assert_eq!(s.at(5).unwrap() - t0, Duration::from_millis(5));
        assert!(s.at(29).is_some());
        assert!(s.at(30).is_none());
        assert_eq!(s.window_start() - t0, Duration::from_millis(10));
    }

    #[test]
    fn wake_ups_fall_on_whole_milliseconds() {
        let s = Schedule::new(10_000.0, Duration::ZERO, Duration::from_secs(1));
        let t0 = s.at(0).unwrap();
        assert_eq!(s.wake_at(t0), t0);
        assert_eq!(s.wake_at(s.at(1).unwrap()) - t0, Duration::from_millis(1));
        assert_eq!(s.wake_at(s.at(10).unwrap()) - t0, Duration::from_millis(1));
        assert_eq!(s.wake_at(s.at(11).unwrap()) - t0, Duration::from_millis(2));
    }

    #[test]
    fn recorder_keeps_only_the_window() {
        let r = Recorder::new();
        let base = Instant::now();
        let window = base + Duration::from_millis(10);
        r.record_since(base, window, base + Duration::from_millis(50));
        r.record_since(window, window, window + Duration::from_micros(300));
        r.record_since(window, window, window + Duration::from_micros(900));
        let s = r.summary();
        assert_eq!(s.count, 2);
        assert!((299.0..=301.0).contains(&s.p50_us));
        assert!((899.0..=901.0).contains(&s.max_us));
    }

    #[test]
    fn payload_carries_its_time() {
        let at = epoch() + Duration::from_micros(1234);
        let p = stamped_payload(100, at, 7);
        assert_eq!(p.len(), 100);
        assert_eq!(payload_time(&p), Some(at));
        assert_eq!(payload_time(&p[..4]), None);
    }
}
