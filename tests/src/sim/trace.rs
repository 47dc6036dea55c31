//! The event trace: one line per event, hashed in full (for the determinism check) and kept in a
//! ring buffer (for failure reports).

use std::collections::VecDeque;
use std::time::Duration;

/// A running FNV-1a hash of every line plus the last lines.
#[derive(Debug, Clone)]
pub struct Trace {
    hash: u64,
    lines: u64,
    tail: VecDeque<String>,
    keep: usize,
    echo: bool,
}

impl Trace {
    /// A trace keeping the last `keep` lines; `echo` also prints every line (single-seed runs).
    pub fn new(keep: usize, echo: bool) -> Trace {
        Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            lines: 0,
            tail: VecDeque::with_capacity(keep),
            keep,
            echo,
        }
    }

    /// Records one line at simulated time `now`.
    pub fn line(&mut self, now: Duration, text: impl AsRef<str>) {
        let text = text.as_ref();
        let line = format!("{:>11.6} {text}", now.as_secs_f64());
        for b in line.as_bytes().iter().chain(b"\n") {
            self.hash ^= u64::from(*b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.lines += 1;
        if self.echo {
            println!("{line}");
        }
        if self.keep > 0 {
            if self.tail.len() == self.keep {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
    }

    /// The hash of every line so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many lines were recorded.
    pub fn len(&self) -> u64 {
        self.lines
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The last `n` lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        let skip = self.tail.len().saturating_sub(n);
        self.tail.iter().skip(skip).cloned().collect()
    }
}
