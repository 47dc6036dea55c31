//! The raw results of a comparison run (written to `benches/report/results.json`).

use serde::{Deserialize, Serialize};

use crate::primitives::Primitives;
use crate::spec::ClientResult;
use crate::stats::median;

use super::clients::{ClientKind, Phase};
use super::machine::Machine;

/// The settings of a comparison run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Quick mode (one run each, short windows): for checking the harness, not for figures.
    pub quick: bool,
    /// Runs per client of the main phases (produce, consume, latency at 10k msg/s).
    pub runs: usize,
    /// Warm-up before each measured window, seconds.
    pub warmup_s: f64,
    /// Measured window, seconds.
    pub measure_s: f64,
    /// Warm-up of the secondary runs (latency at other rates than the first, payload sizes,
    /// producer counts), seconds.
    pub scaling_warmup_s: f64,
    /// Measured window of the secondary runs, seconds.
    pub scaling_measure_s: f64,
    /// Warm-up of the Java client's throughput runs (at least `warmup_s`): its JIT compiler
    /// needs longer, and a longer warm-up only favours it.
    pub java_warmup_s: f64,
    /// Payload of the main phases, bytes.
    pub payload_size: usize,
    /// Backlog drained by each consumer.
    pub drain_messages: u64,
    /// A consumer stops draining after this long.
    pub drain_time_limit_s: f64,
    /// Fixed offered rates (the half of each client's maximum is added).
    pub latency_rates: Vec<f64>,
    /// Payload sizes of the CPU-per-byte scaling.
    pub payload_sizes: Vec<usize>,
    /// Producer counts of the one-connection scaling.
    pub producer_counts: Vec<usize>,
    /// Idle producers or consumers created.
    pub idle_count: usize,
    /// Clients compared.
    pub clients: Vec<ClientKind>,
    /// Phases run.
    pub phases: Vec<Phase>,
    /// Broker service URL.
    pub url: String,
    /// Broker admin URL.
    pub web_url: String,
}

impl Config {
    /// The full comparison (about 15 minutes on 2 cores).
    pub fn full(url: &str, web_url: &str) -> Config {
        Config {
            quick: false,
            runs: 3,
            warmup_s: 3.0,
            measure_s: 5.0,
            scaling_warmup_s: 2.0,
            scaling_measure_s: 3.0,
            java_warmup_s: 5.0,
            payload_size: 100,
            drain_messages: 1_500_000,
            drain_time_limit_s: 12.0,
            latency_rates: vec![10_000.0, 50_000.0],
            payload_sizes: vec![16, 256, 4096, 65_536, 1_048_576],
            producer_counts: vec![1, 10, 100, 1000],
            idle_count: 1000,
            clients: ClientKind::ALL.to_vec(),
            phases: Phase::ALL.to_vec(),
            url: url.to_owned(),
            web_url: web_url.to_owned(),
        }
    }

    /// One run each with short windows, to check that everything works.
    pub fn quick(url: &str, web_url: &str) -> Config {
        Config {
            quick: true,
            runs: 1,
            warmup_s: 1.0,
            measure_s: 2.0,
            scaling_warmup_s: 1.0,
            scaling_measure_s: 2.0,
            java_warmup_s: 2.0,
            drain_messages: 500_000,
            drain_time_limit_s: 8.0,
            payload_sizes: vec![16, 1024, 65_536, 1_048_576],
            producer_counts: vec![1, 100, 1000],
            idle_count: 300,
            ..Config::full(url, web_url)
        }
    }
}

/// One client process run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Phase.
    pub phase: Phase,
    /// Client.
    pub client: ClientKind,
    /// What varied ("10000 msg/s", "1024 B", "100 producers", ...; empty for the main phases).
    pub variant: String,
    /// The varied quantity as a number (rate, size, producer count; 0 when none).
    pub param: f64,
    /// Round (0-based) of the interleaved runs.
    pub round: usize,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// What the client reported.
    pub result: ClientResult,
    /// Wall time of the run, seconds.
    pub wall_s: f64,
}

/// A measurement a client cannot take.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotApplicable {
    /// Phase.
    pub phase: Phase,
    /// Client.
    pub client: ClientKind,
    /// Why.
    pub reason: String,
}

/// Everything a comparison run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Settings.
    pub config: Config,
    /// The machine and the broker.
    pub machine: Machine,
    /// memcpy and CRC32C costs measured in the same run.
    pub primitives: Primitives,
    /// Every client run.
    pub runs: Vec<RunRecord>,
    /// Measurements some clients cannot take.
    pub not_applicable: Vec<NotApplicable>,
    /// Start (Unix seconds).
    pub started_unix: u64,
    /// Duration of the whole run, seconds.
    pub duration_s: f64,
}

impl Results {
    /// The successful runs of (phase, client, variant param).
    pub fn runs_of(&self, phase: Phase, client: ClientKind, param: Option<f64>) -> Vec<&RunRecord> {
        self.runs
            .iter()
            .filter(|r| {
                r.phase == phase
                    && r.client == client
                    && r.error.is_none()
                    && param.is_none_or(|p| r.param == p)
            })
            .collect()
    }

    /// The median of `metric` over the successful runs of (phase, client, param), ignoring
    /// runs where the metric is zero (not measured).
    pub fn median_of(
        &self,
        phase: Phase,
        client: ClientKind,
        param: Option<f64>,
        metric: impl Fn(&ClientResult) -> Option<f64>,
    ) -> Option<f64> {
        let values: Vec<f64> = self
            .runs_of(phase, client, param)
            .into_iter()
            .filter_map(|r| metric(&r.result))
            .filter(|v| *v > 0.0)
            .collect();
        median(&values)
    }

    /// The error of the last failed run of (phase, client, param), if no run succeeded.
    pub fn failure(&self, phase: Phase, client: ClientKind, param: Option<f64>) -> Option<&str> {
        if !self.runs_of(phase, client, param).is_empty() {
            return None;
        }
        self.runs
            .iter()
            .rev()
            .find(|r| r.phase == phase && r.client == client && param.is_none_or(|p| r.param == p))
            .and_then(|r| r.error.as_deref())
    }

    /// Why a client cannot take a phase's measurement, if it cannot.
    pub fn not_applicable(&self, phase: Phase, client: ClientKind) -> Option<&str> {
        self.not_applicable
            .iter()
            .find(|n| n.phase == phase && n.client == client)
            .map(|n| n.reason.as_str())
    }
}
