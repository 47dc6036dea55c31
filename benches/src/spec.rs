//! What a client process is asked to do ([`Spec`]) and what it answers ([`ClientResult`]).
//!
//! The harness passes a spec as JSON (`--spec '{...}'`) to every client binary (this project's,
//! pulsar-rs's and the Python one), which prints one line `RESULT {json}` on stdout when done.

use serde::{Deserialize, Serialize};

/// Messages per batch at most (every client).
pub const BATCH_MAX_MESSAGES: usize = 1000;
/// Batch payload bytes at most.
pub const BATCH_MAX_BYTES: usize = 128 * 1024;
/// Batch delay, in microseconds.
pub const BATCH_DELAY_US: u64 = 1000;
/// Messages waiting for a receipt, per producer.
pub const MAX_PENDING: usize = 10_000;
/// Client memory limit for pending messages (the Java, C++ and this project's default).
pub const MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Receiver queue size of every consumer.
pub const RECEIVER_QUEUE: u32 = 1000;
/// Bytes at the start of a timestamped payload: scheduled send time (ns) and sequence number.
pub const HEADER_LEN: usize = 16;

/// The workload of one client process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Publish: as fast as possible (`rate == 0`, throughput and CPU per message) or at a fixed
    /// offered rate (publish latency from the scheduled send time).
    Produce,
    /// Publish `messages` messages as fast as possible, then exit (fills a backlog).
    Prefill,
    /// Drain a pre-filled backlog of `messages` messages.
    Consume,
    /// Publish at a fixed rate and consume in the same process: end-to-end latency from the
    /// scheduled send time carried in the payload.
    E2e,
    /// Create `count` idle producers and report the resident memory they added.
    IdleProducers,
    /// Create `count` idle consumers and report the resident memory they added.
    IdleConsumers,
}

/// How a draining consumer acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AckMode {
    /// Every message on its own.
    Individual,
    /// Cumulatively, every [`CUMULATIVE_EVERY`] messages and at the end.
    Cumulative,
}

/// Messages between two cumulative acknowledgements.
pub const CUMULATIVE_EVERY: u64 = 1000;

/// The job of one client process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// The workload.
    pub mode: Mode,
    /// Broker service URL.
    pub url: String,
    /// Full topic name (a fresh non-partitioned topic per run).
    pub topic: String,
    /// Subscription (consume, e2e, idle consumers).
    pub subscription: String,
    /// Payload bytes per message.
    pub payload_size: usize,
    /// Batching on (limits [`BATCH_MAX_MESSAGES`] / [`BATCH_MAX_BYTES`] / [`BATCH_DELAY_US`]).
    pub batching: bool,
    /// Producers on the one connection, messages sent round robin.
    pub producers: usize,
    /// Offered rate in messages per second; 0: as fast as possible.
    pub rate: f64,
    /// Seconds before the measured window.
    pub warmup_s: f64,
    /// Seconds of the measured window.
    pub measure_s: f64,
    /// Prefill: messages to publish. Consume: the backlog to drain.
    pub messages: u64,
    /// Consume: acknowledgement mode.
    pub ack: AckMode,
    /// Idle modes: producers or consumers to create.
    pub count: usize,
    /// Consume: give up after this many seconds.
    pub time_limit_s: f64,
    /// Produce: messages per transaction (0: no transactions). Each transaction is committed
    /// once its messages are sent, without waiting (as `pulsar-perf produce --txn-enable`), at
    /// most [`TXN_IN_FLIGHT`] commits in flight; a message counts when its transaction
    /// committed.
    #[serde(default)]
    pub txn_messages: u64,
    /// Produce: encrypt end to end for this key name, with the RSA or EC public key in
    /// `encryption_key_file` (PEM), as `pulsar-perf produce -k NAME -v FILE` does.
    #[serde(default)]
    pub encryption_key_name: Option<String>,
    /// Produce: the public key (PEM file) of `encryption_key_name`.
    #[serde(default)]
    pub encryption_key_file: Option<String>,
}

/// Commits in flight at most in transactional produce runs.
pub const TXN_IN_FLIGHT: usize = 64;

/// Transaction timeout of the transactional produce runs.
pub const TXN_TIMEOUT_S: u64 = 60;

impl Spec {
    /// A spec with the common settings and nothing to do yet.
    pub fn new(mode: Mode, url: &str, topic: &str) -> Spec {
        Spec {
            mode,
            url: url.to_owned(),
            topic: topic.to_owned(),
            subscription: "bench".to_owned(),
            payload_size: 100,
            batching: true,
            producers: 1,
            rate: 0.0,
            warmup_s: 3.0,
            measure_s: 5.0,
            messages: 0,
            ack: AckMode::Individual,
            count: 0,
            time_limit_s: 60.0,
            txn_messages: 0,
            encryption_key_name: None,
            encryption_key_file: None,
        }
    }

    /// Messages a producer may keep pending: [`MAX_PENDING`], lowered so that all producers'
    /// pending payloads fit in [`MEMORY_LIMIT`] (used by clients without a memory limit).
    pub fn pending_window(&self) -> usize {
        let per_producer = MEMORY_LIMIT / self.payload_size.max(1) / self.producers.max(1);
        per_producer.clamp(1, MAX_PENDING)
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Samples.
    pub count: u64,
}

/// Memory added by idle producers or consumers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleResult {
    /// Producers or consumers created.
    pub count: usize,
    /// Resident set (KiB) with one producer or consumer open (connection established).
    pub rss_before_kib: u64,
    /// Resident set (KiB) once `count` more were created.
    pub rss_after_kib: u64,
    /// `(after - before) / count`, in bytes.
    pub bytes_per_item: f64,
}

/// What a client process reports (`RESULT {json}` on stdout).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientResult {
    /// Messages acknowledged (produce) or received (consume) inside the measured window.
    pub window_messages: u64,
    /// Length of the measured window, seconds.
    pub window_s: f64,
    /// Process CPU time (all threads) spent inside the window, seconds.
    pub window_cpu_s: f64,
    /// `window_messages / window_s`.
    pub msg_per_s: f64,
    /// Payload megabytes (10^6 B) per second.
    pub mb_per_s: f64,
    /// `window_cpu_s / window_messages`, microseconds.
    pub cpu_us_per_msg: f64,
    /// Messages sent (or received) in the whole run.
    pub total_messages: u64,
    /// Sends or receives that failed.
    pub failed: u64,
    /// Fixed-rate runs: the offered rate.
    pub offered_rate: f64,
    /// Fixed-rate runs: the rate the client kept up with in the window.
    pub achieved_rate: f64,
    /// Publish latency from the scheduled send time.
    pub latency: Option<LatencySummary>,
    /// End-to-end latency from the scheduled send time (in the payload) to reception.
    pub e2e: Option<LatencySummary>,
    /// Idle modes.
    pub idle: Option<IdleResult>,
    /// Peak resident set (VmHWM) of the process, KiB.
    pub peak_rss_kib: u64,
    /// Process CPU time over the whole run, seconds.
    pub total_cpu_s: f64,
    /// Anything the report should mention.
    pub notes: Vec<String>,
}

impl ClientResult {
    /// Fills the rates from the window figures.
    pub fn set_window(&mut self, messages: u64, seconds: f64, cpu_s: f64, payload_size: usize) {
        self.window_messages = messages;
        self.window_s = seconds;
        self.window_cpu_s = cpu_s;
        if seconds > 0.0 {
            self.msg_per_s = messages as f64 / seconds;
            self.mb_per_s = self.msg_per_s * payload_size as f64 / 1e6;
        }
        if messages > 0 {
            self.cpu_us_per_msg = cpu_s * 1e6 / messages as f64;
        }
    }

    /// The line a client prints.
    pub fn to_line(&self) -> String {
        format!(
            "RESULT {}",
            serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"notes\":[\"{e}\"]}}"))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_window_respects_the_memory_limit() {
        let mut s = Spec::new(Mode::Produce, "pulsar://x", "t");
        assert_eq!(s.pending_window(), MAX_PENDING);
        s.payload_size = 1024 * 1024;
        assert_eq!(s.pending_window(), 64);
        s.producers = 1000;
        assert_eq!(s.pending_window(), 1);
    }

    #[test]
    fn window_rates() {
        let mut r = ClientResult::default();
        r.set_window(200_000, 2.0, 0.5, 100);
        assert_eq!(r.msg_per_s, 100_000.0);
        assert_eq!(r.mb_per_s, 10.0);
        assert_eq!(r.cpu_us_per_msg, 2.5);
        let line = r.to_line();
        assert!(line.starts_with("RESULT {"));
        let back: ClientResult = serde_json::from_str(&line["RESULT ".len()..]).unwrap();
        assert_eq!(back.window_messages, 200_000);
    }
}
