//! The Java `pulsar-perf` as a peer: its command lines, and what the harness reads from its
//! output.
//!
//! `pulsar-perf` prints its own throughput only every 10 s, so the harness enables the Java
//! client's per-second statistics (`-i 1`): every producer logs its "Ack received rate" and
//! every consumer its "Consume throughput received" once a second. The harness samples the JVM's
//! CPU time (`/proc`) when each line arrives, and integrates the rates between
//! ticks (log timestamps) into message counts. Fixed-rate latency comes from pulsar-perf's
//! "Aggregated latency stats" (its own HdrHistogram, after its warm-up, in milliseconds,
//! measured from the actual send call rather than the scheduled time).

use crate::spec::LatencySummary;
use crate::window::WindowFigures;

/// Seconds since midnight of a log line starting with `HH:MM:SS.mmm`.
pub fn log_time(line: &str) -> Option<f64> {
    let t = line.get(..12)?;
    let b = t.as_bytes();
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') || b.get(8) != Some(&b'.') {
        return None;
    }
    let h: f64 = t.get(0..2)?.parse().ok()?;
    let m: f64 = t.get(3..5)?.parse().ok()?;
    let s: f64 = t.get(6..8)?.parse().ok()?;
    let ms: f64 = t.get(9..12)?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s + ms / 1000.0)
}

/// The number after `key` (commas allowed as thousands separators).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let token: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',' || *c == '-')
        .filter(|c| *c != ',')
        .collect();
    token.parse().ok()
}

/// What one per-second statistics line says.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsLine {
    /// Log time (seconds since midnight).
    pub time: f64,
    /// Acknowledged (producer) or received (consumer) messages per second since this
    /// producer's or consumer's previous line.
    pub rate: f64,
    /// Which producer or consumer (`"[topic] [name]"`).
    pub key: String,
}

/// The "[topic] [name] ..." part that names the producer or consumer of a statistics line.
fn source_key(line: &str) -> String {
    let rest = line.split_once("Impl - ").map(|(_, r)| r).unwrap_or(line);
    let end = [rest.find(" ---"), rest.find(" Prefetched")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// A producer's per-second line: "... ProducerStatsRecorderImpl - ... Ack received rate: X ack/s".
pub fn producer_stats(line: &str) -> Option<StatsLine> {
    if !line.contains("ProducerStatsRecorderImpl") {
        return None;
    }
    Some(StatsLine {
        time: log_time(line)?,
        rate: number_after(line, "Ack received rate:")?,
        key: source_key(line),
    })
}

/// A consumer's per-second line: "... Consume throughput received: X msgs/s".
pub fn consumer_stats(line: &str) -> Option<StatsLine> {
    if !line.contains("ConsumerStatsRecorderImpl") {
        return None;
    }
    Some(StatsLine {
        time: log_time(line)?,
        rate: number_after(line, "Consume throughput received:")?,
        key: source_key(line),
    })
}

/// "Aggregated latency stats --- Latency: mean: A ms - med: B - 95pct: C - 99pct: D -
/// 99.9pct: E - ... - Max: H" (milliseconds) as microseconds.
pub fn aggregated_latency(line: &str) -> Option<LatencySummary> {
    if !line.contains("Aggregated latency stats") {
        return None;
    }
    let ms = |k: &str| number_after(line, k).map(|v| v * 1000.0);
    Some(LatencySummary {
        p50_us: ms("med:")?,
        p99_us: ms("- 99pct:")?,
        p999_us: ms("99.9pct:")?,
        max_us: ms("Max:")?,
        count: 0,
    })
}

/// A point of the Java client's progress: log time, the JVM's CPU time when the line arrived,
/// and the messages counted so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Log time (seconds, monotonic across midnight).
    pub time: f64,
    /// CPU seconds of the JVM when the line arrived.
    pub cpu_s: f64,
    /// Messages so far (each line's rate times the time since the same producer's or
    /// consumer's previous line; one second for its first line).
    pub messages: f64,
}

/// The progress of a pulsar-perf run, from its per-second statistics lines.
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Samples, at most one per 0.2 s of log time.
    pub samples: Vec<Sample>,
    last_by_key: std::collections::HashMap<String, f64>,
    messages: f64,
    day_offset: f64,
    last_raw: f64,
    /// "Start receiving" of pulsar-perf consume: (log time, JVM CPU seconds).
    pub started: Option<(f64, f64)>,
    /// "DONE" of pulsar-perf consume after `-m` messages: (log time, JVM CPU seconds).
    pub done: Option<(f64, f64)>,
}

/// pulsar-perf consume's line just before its consumers start receiving.
pub fn is_consume_start(line: &str) -> bool {
    line.contains("PerformanceConsumer") && line.contains("Start receiving from")
}

/// pulsar-perf consume's line once `-m` messages (or its time limit) are reached.
pub fn is_consume_done(line: &str) -> bool {
    line.contains("PerformanceConsumer") && line.contains("- DONE -")
}

impl Series {
    fn adjust(&mut self, raw: f64) -> f64 {
        if raw + 43_200.0 < self.last_raw {
            self.day_offset += 86_400.0;
        }
        self.last_raw = raw;
        raw + self.day_offset
    }

    /// Records pulsar-perf consume's start line (log time `raw`, JVM CPU `cpu_s`).
    pub fn mark_start(&mut self, raw: f64, cpu_s: f64) {
        let t = self.adjust(raw);
        self.started = Some((t, cpu_s));
    }

    /// Records pulsar-perf consume's DONE line.
    pub fn mark_done(&mut self, raw: f64, cpu_s: f64) {
        let t = self.adjust(raw);
        self.done = Some((t, cpu_s));
    }

    /// Adds a line; `cpu_s` is called (to sample the JVM) only when the line starts a new
    /// sample (0.2 s or more after the previous one).
    pub fn add(&mut self, line: &StatsLine, cpu_s: impl FnOnce() -> f64) {
        let time = self.adjust(line.time);
        let prev = self.last_by_key.insert(line.key.clone(), time);
        self.messages += line.rate * (time - prev.unwrap_or(time - 1.0)).max(0.0);
        if self.samples.last().is_none_or(|s| time - s.time >= 0.2) {
            self.samples.push(Sample {
                time,
                cpu_s: cpu_s(),
                messages: self.messages,
            });
        }
    }

    fn between(&self, k0: usize, k1: usize) -> Option<WindowFigures> {
        let (a, b) = (self.samples.get(k0)?, self.samples.get(k1)?);
        if k1 <= k0 {
            return None;
        }
        Some(WindowFigures {
            messages: (b.messages - a.messages).max(0.0).round() as u64,
            seconds: b.time - a.time,
            cpu_s: (b.cpu_s - a.cpu_s).max(0.0),
        })
    }

    /// The last sample that counted new messages.
    fn last_busy(&self) -> Option<usize> {
        (1..self.samples.len())
            .rev()
            .find(|&k| self.samples[k].messages > self.samples[k - 1].messages)
    }

    /// A throughput window: from the first sample at least `warmup_s` after the first line's
    /// interval began (one second before it) to the last sample that counted messages.
    pub fn window_after(&self, warmup_s: f64) -> Option<WindowFigures> {
        let start = self.samples.first()?.time - 1.0 + warmup_s;
        let k0 = self.samples.iter().position(|s| s.time >= start)?;
        self.between(k0, self.last_busy()?)
    }

    /// A drain window of `expected` messages (pulsar-perf consume run with `-m expected`): from
    /// the sample where 10 % had arrived to the DONE line (exactly `expected` then); without a
    /// DONE line, to the last sample at or below 90 % (or the last that counted messages); when
    /// the drain finished before any sample, from the start line to DONE (JIT warm-up included).
    pub fn drain_window(&self, expected: u64) -> Option<WindowFigures> {
        let lo = expected as f64 * 0.1;
        let hi = expected as f64 * 0.9;
        let k0 = self.samples.iter().position(|s| s.messages >= lo);
        match (k0, self.done) {
            (Some(k0), Some((t, cpu))) if t > self.samples[k0].time => {
                let a = self.samples[k0];
                Some(WindowFigures {
                    messages: (expected as f64 - a.messages).max(0.0).round() as u64,
                    seconds: t - a.time,
                    cpu_s: (cpu - a.cpu_s).max(0.0),
                })
            }
            (Some(k0), None) => {
                let k1 = self
                    .samples
                    .iter()
                    .rposition(|s| s.messages <= hi)
                    .filter(|&k| k > k0)
                    .or_else(|| self.last_busy())?;
                self.between(k0, k1)
            }
            (_, Some((t, cpu))) => {
                let (t0, cpu0) = self.started?;
                (t > t0).then(|| WindowFigures {
                    messages: expected,
                    seconds: t - t0,
                    cpu_s: (cpu - cpu0).max(0.0),
                })
            }
            (None, None) => None,
        }
    }

    /// Messages counted over the whole run.
    pub fn total(&self) -> f64 {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCER: &str = "16:26:50.682 INFO  ProducerStatsRecorderImpl - [t] [standalone-0-37] --- Publish throughput: 180641.23 msg/s --- 137.82 Mbit/s --- Latency: med: 36.000 ms - 95pct: 96.000 ms - 99pct: 127.000 ms - 99.9pct: 137.000 ms - max: 137.000 ms --- BatchSize: med: 1000.000 - 95pct: 1000.000 - 99pct: 1000.000 - 99.9pct: 1000.000 - max: 1000.000 --- MsgSize: med: 100000.000 bytes - 95pct: 100000.000 bytes - 99pct: 100000.000 bytes - 99.9pct: 100000.000 bytes - max: 100000.000 bytes --- Ack received rate: 177924.31 ack/s --- Failed messages: 0 --- Pending messages: 8462";
    const CONSUMER: &str = "17:08:02.801 INFO  ConsumerStatsRecorderImpl - [persistent://public/default/x] [s1] [P9fEn] Prefetched messages: 469 --- Consume throughput received: 43143.02 msgs/s --- 32.92 Mbit/s --- Ack sent rate: 43394.58 ack/s --- Failed messages: 0 --- batch messages: 0 ---Failed acks: 0";
    const LATENCY: &str = "16:27:03.824 INFO  PerformanceProducer - Aggregated latency stats --- Latency: mean:  19.497 ms - med:  15.086 - 95pct:  49.299 - 99pct:  86.686 - 99.9pct: 131.823 - 99.99pct: 137.529 - 99.999pct: 137.581 - Max: 152.273";

    #[test]
    fn parses_pulsar_perf_lines() {
        let p = producer_stats(PRODUCER).unwrap();
        assert_eq!(p.rate, 177_924.31);
        assert!((p.time - (16.0 * 3600.0 + 26.0 * 60.0 + 50.682)).abs() < 1e-9);
        let c = consumer_stats(CONSUMER).unwrap();
        assert_eq!(c.rate, 43_143.02);
        assert!(producer_stats(CONSUMER).is_none());
        let l = aggregated_latency(LATENCY).unwrap();
        assert!((l.p50_us - 15_086.0).abs() < 1e-6);
        assert!((l.p99_us - 86_686.0).abs() < 1e-6);
        assert!((l.p999_us - 131_823.0).abs() < 1e-6);
        assert!((l.max_us - 152_273.0).abs() < 1e-6);
        assert!(log_time("no time here").is_none());
    }

    fn line(time: f64, rate: f64, key: &str) -> StatsLine {
        StatsLine {
            time,
            rate,
            key: key.to_owned(),
        }
    }

    #[test]
    fn series_integrates_each_producer_separately() {
        let mut t = Series::default();
        let mut cpu = 0.0;
        for s in 0..6 {
            for producer in ["a", "b"] {
                let at = 100.0 + s as f64 + if producer == "b" { 0.01 } else { 0.0 };
                t.add(&line(at, 1000.0, producer), || {
                    cpu += 0.5;
                    cpu
                });
            }
        }
        assert_eq!(t.samples.len(), 6);
        assert_eq!(t.total(), 12_000.0);
        // first line at 100 => sending started ~99; warm-up 3 s => window from the sample at 102.
        let w = t.window_after(3.0).unwrap();
        // samples are taken at producer a's lines: b's line of each second lands in the next.
        assert_eq!(w.messages, 6000);
        assert!((w.seconds - 3.0).abs() < 1e-9);
        assert!((w.cpu_s - 1.5).abs() < 1e-9);
    }

    #[test]
    fn drain_window_uses_the_middle_of_the_backlog() {
        let mut t = Series::default();
        for s in 0..10 {
            t.add(&line(s as f64, 100.0, "c"), || s as f64 * 0.1);
        }
        // 100 per second, 1000 expected: 10 % reached at the first sample, 90 % at the ninth.
        let w = t.drain_window(1000).unwrap();
        assert_eq!(w.messages, 800);
        assert!((w.cpu_s - 0.8).abs() < 1e-9);
    }

    #[test]
    fn drain_window_ends_at_done() {
        let mut t = Series::default();
        t.mark_start(9.5, 1.0);
        for s in 0..3 {
            t.add(&line(10.0 + s as f64, 300.0, "c"), || 2.0 + s as f64);
        }
        // 300 by 10.0 (first line counts one second), 600 by 11.0, 900 by 12.0; DONE at 12.5.
        t.mark_done(12.5, 5.0);
        let w = t.drain_window(1000).unwrap();
        assert_eq!(w.messages, 700);
        assert!((w.seconds - 2.5).abs() < 1e-9);
        assert!((w.cpu_s - 3.0).abs() < 1e-9);
        // Done before any statistics line: start to DONE, everything.
        let mut quick = Series::default();
        quick.mark_start(1.0, 0.5);
        quick.mark_done(1.8, 1.3);
        let w = quick.drain_window(1000).unwrap();
        assert_eq!(w.messages, 1000);
        assert!((w.seconds - 0.8).abs() < 1e-9);
        assert!(is_consume_done("17:08:03.566 INFO  PerformanceConsumer - ------------------- DONE -----------------------"));
        assert!(is_consume_start("17:08:00.901 INFO  PerformanceConsumer - Start receiving from 1 consumers per subscription on 1 topics"));
    }

    #[test]
    fn midnight_does_not_go_backwards() {
        let mut t = Series::default();
        t.add(&line(86_399.5, 1.0, "x"), || 0.0);
        t.add(&line(0.5, 1.0, "x"), || 0.0);
        assert!((t.samples[1].time - t.samples[0].time - 1.0).abs() < 1e-9);
        assert_eq!(t.total(), 2.0);
    }

    #[test]
    fn source_keys_name_the_producer() {
        assert_eq!(
            producer_stats(PRODUCER).unwrap().key,
            "[t] [standalone-0-37]"
        );
        assert_eq!(
            consumer_stats(CONSUMER).unwrap().key,
            "[persistent://public/default/x] [s1] [P9fEn]"
        );
    }
}
