//! The measured window of a throughput run: counts and CPU time after a warm-up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::procfs::process_cpu_s;

/// Counters shared by a sending loop, its receipt callbacks and the window monitor.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages the broker acknowledged (or the consumer received).
    pub done: AtomicU64,
    /// Failed sends.
    pub failed: AtomicU64,
    /// Messages handed to the client.
    pub sent: AtomicU64,
    /// Set by the monitor when the window is over: the loop stops sending.
    pub stop: AtomicBool,
}

impl Counters {
    /// All zero (usable in a `static`, so that receipt callbacks capture nothing).
    pub const fn new() -> Counters {
        Counters {
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether the loop should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Counts and CPU time at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// When.
    pub at: Instant,
    /// `Counters::done` then.
    pub done: u64,
    /// Process CPU seconds then.
    pub cpu_s: f64,
}

impl Snapshot {
    /// Now.
    pub fn take(done: u64) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            done,
            cpu_s: process_cpu_s(),
        }
    }
}

/// The figures of a window: messages, seconds, CPU seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowFigures {
    /// Messages done inside the window.
    pub messages: u64,
    /// Window length.
    pub seconds: f64,
    /// CPU seconds inside the window.
    pub cpu_s: f64,
}

impl WindowFigures {
    /// Between two snapshots.
    pub fn between(a: Snapshot, b: Snapshot) -> WindowFigures {
        WindowFigures {
            messages: b.done.saturating_sub(a.done),
            seconds: (b.at - a.at).as_secs_f64(),
            cpu_s: (b.cpu_s - a.cpu_s).max(0.0),
        }
    }
}

/// Starts a thread that waits `warmup`, snapshots, waits `measure`, snapshots and sets
/// `counters.stop`. Join it for the window's figures.
pub fn spawn_monitor(
    counters: &'static Counters,
    warmup: Duration,
    measure: Duration,
) -> std::thread::JoinHandle<WindowFigures> {
    std::thread::spawn(move || {
        std::thread::sleep(warmup);
        let a = Snapshot::take(counters.done.load(Ordering::Relaxed));
        std::thread::sleep(measure);
        let b = Snapshot::take(counters.done.load(Ordering::Relaxed));
        counters.stop.store(true, Ordering::Relaxed);
        WindowFigures::between(a, b)
    })
}

/// Snapshots a drain when it crosses 10 % and 90 % of the expected messages.
#[derive(Debug, Clone)]
pub struct DrainWindow {
    from: u64,
    to: u64,
    start: Option<Snapshot>,
    end: Option<Snapshot>,
}

impl DrainWindow {
    /// A window over the middle 80 % of `expected` messages.
    pub fn new(expected: u64) -> DrainWindow {
        DrainWindow {
            from: expected / 10,
            to: expected - expected / 10,
            start: None,
            end: None,
        }
    }

    /// Call with the number of messages received so far (cheap unless a bound is crossed).
    pub fn observe(&mut self, received: u64) {
        if received == self.from && self.start.is_none() {
            self.start = Some(Snapshot::take(received));
        } else if received == self.to && self.end.is_none() {
            self.end = Some(Snapshot::take(received));
        }
    }

    /// The window; if the drain stopped early (time limit), from the start snapshot to `last`.
    pub fn figures(&self, last: Snapshot) -> Option<WindowFigures> {
        let start = self.start?;
        Some(WindowFigures::between(start, self.end.unwrap_or(last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_window_covers_the_middle() {
        let mut w = DrainWindow::new(100);
        for i in 1..=100 {
            w.observe(i);
        }
        let f = w.figures(Snapshot::take(100)).unwrap();
        assert_eq!(f.messages, 80);
    }

    #[test]
    fn drain_window_stopped_early_ends_at_the_last_snapshot() {
        let mut w = DrainWindow::new(1000);
        for i in 1..=500 {
            w.observe(i);
        }
        let f = w.figures(Snapshot::take(500)).unwrap();
        assert_eq!(f.messages, 400);
        assert!(DrainWindow::new(1000).figures(Snapshot::take(0)).is_none());
    }
}
