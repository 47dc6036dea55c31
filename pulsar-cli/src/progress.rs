//! Progress display for long runs: a bar with the current rate on a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A progress bar on stderr, present only when stderr is a terminal.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar counting `unit` towards `total` (`None`: unbounded), shown only on a terminal and
    /// when `wanted`.
    pub fn new(total: Option<u64>, unit: &str, wanted: bool) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let (bar, template) = match total {
            Some(n) => (
                ProgressBar::new(n),
                format!("{{bar:30}} {{pos}}/{{len}} {unit} · {{rate}} · {{elapsed_precise}}"),
            ),
            None => (
                ProgressBar::no_length(),
                format!("{{spinner}} {{pos}} {unit} · {{rate}} · {{elapsed_precise}}"),
            ),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        if let Ok(style) = ProgressStyle::with_template(&template) {
            let rate = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            };
            bar.set_style(style.with_key("rate", rate));
        }
        bar.enable_steady_tick(Duration::from_millis(250));
        Progress { bar: Some(bar) }
    }

    /// Whether a bar is shown.
    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Counts `n` more.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Prints a line on stderr above the bar (or plainly when there is none).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Paces a loop at `rate` iterations per second (`0`: no pacing).
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: std::time::Instant,
}

impl Pacer {
    /// A pacer for `rate` per second.
    pub fn new(rate: f64) -> Pacer {
        let interval =
            (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
        Pacer {
            interval,
            next: std::time::Instant::now(),
        }
    }

    /// Sleeps until the next slot. Falling behind is caught up without bursts beyond one second.
    pub fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = std::time::Instant::now();
        if self.next > now {
            std::thread::sleep(self.next - now);
        } else if now - self.next > Duration::from_secs(1) {
            self.next = now;
        }
        self.next += interval;
    }
}
