//! Running seeds: one run per seed inside `catch_unwind`, reports with everything needed to
//! reproduce a failure, the determinism check, and the environment variables of the workflow.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::sim::params::Params;
use crate::sim::world::{RunResult, RunStats, World};

/// Trace lines shown in a failure report.
pub const REPORT_TAIL: usize = 50;

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Its parameters.
    pub params: Params,
    /// Hash of the full trace (0 after a panic).
    pub trace_hash: u64,
    /// Violations; a panic is one too.
    pub violations: Vec<String>,
    /// Last trace lines.
    pub tail: Vec<String>,
    /// Events processed.
    pub steps: u64,
    /// Simulated time.
    pub sim_time: Duration,
    /// Counters.
    pub stats: RunStats,
    /// Wall-clock time of the run.
    pub wall: Duration,
}

impl Outcome {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// A report: seed, parameters, violations, the last trace lines and the reproduce command.
    pub fn report(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "==== simulation seed {} FAILED ({} violations) ====\n",
            self.seed,
            self.violations.len()
        ));
        s.push_str(&self.params.to_string());
        s.push_str("---- violations ----\n");
        for v in self.violations.iter().take(20) {
            s.push_str(&format!("  {v}\n"));
        }
        s.push_str(&format!(
            "---- last {} trace lines (of {} events, {:?} simulated) ----\n",
            REPORT_TAIL, self.steps, self.sim_time
        ));
        let skip = self.tail.len().saturating_sub(REPORT_TAIL);
        for l in self.tail.iter().skip(skip) {
            s.push_str(&format!("  {l}\n"));
        }
        s.push_str(&format!(
            "---- reproduce ----\n  {}\n",
            reproduce_command(self.seed)
        ));
        s
    }
}

/// The command that replays `seed` with its full trace.
pub fn reproduce_command(seed: u64) -> String {
    format!(
        "PULSAR_SIM_SEED={seed} PULSAR_SIM_TRACE=1 cargo test -p pulsar-tests --test simulation -- one_seed --nocapture"
    )
}

/// Runs one seed (`echo` prints every trace line as it happens).
pub fn run_seed(seed: u64, echo: bool) -> Outcome {
    let params = Params::from_seed(seed);
    if echo {
        println!("{params}");
    }
    let started = Instant::now();
    let p = params.clone();
    let result = catch_unwind(AssertUnwindSafe(move || World::new(p, echo).run()));
    let wall = started.elapsed();
    match result {
        Ok(RunResult {
            trace_hash,
            violations,
            tail,
            steps,
            sim_time,
            stats,
            ..
        }) => Outcome {
            seed,
            params,
            trace_hash,
            violations,
            tail,
            steps,
            sim_time,
            stats,
            wall,
        },
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "non-string panic".to_owned());
            Outcome {
                seed,
                params,
                trace_hash: 0,
                violations: vec![format!("panic: {msg}")],
                tail: Vec::new(),
                steps: 0,
                sim_time: Duration::ZERO,
                stats: RunStats::default(),
                wall,
            }
        }
    }
}

/// Runs `seed` twice; `Err` describes a difference between the two traces.
pub fn check_determinism(seed: u64) -> Result<u64, String> {
    let a = run_seed(seed, false);
    let b = run_seed(seed, false);
    if a.trace_hash != b.trace_hash || a.steps != b.steps {
        return Err(format!(
            "seed {seed} is not deterministic: trace hash {:#x} vs {:#x}, {} vs {} events",
            a.trace_hash, b.trace_hash, a.steps, b.steps
        ));
    }
    Ok(a.trace_hash)
}

/// Which seeds to run, from the environment: `PULSAR_SIM_SEED=N` (one seed), otherwise
/// `PULSAR_SIM_SEEDS=N` consecutive seeds from `PULSAR_SIM_START` (default 0), `default_count`
/// when unset.
pub fn seeds_from_env(default_count: u64) -> Vec<u64> {
    let var = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = var("PULSAR_SIM_SEED") {
        return vec![s];
    }
    let count = var("PULSAR_SIM_SEEDS").unwrap_or(default_count);
    let start = var("PULSAR_SIM_START").unwrap_or(0);
    (start..start.saturating_add(count)).collect()
}

/// Whether `PULSAR_SIM_TRACE` asks for every trace line to be printed.
pub fn trace_from_env() -> bool {
    std::env::var("PULSAR_SIM_TRACE").is_ok_and(|v| v != "0" && !v.is_empty())
}
