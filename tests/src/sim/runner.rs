//! Running seeds: one run per seed inside `catch_unwind`, reports with everything needed to
//! reproduce a failure, the determinism check, and the environment variables of the workflow.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::sim::params::Params;
use crate::sim::world::{RunResult, RunStats, World};
use crate::sim::{async_world, txn_world};

/// Which client a simulation runs: the core driven directly (`tests/tests/simulation.rs`) or the
/// async client on a simulated runtime (`tests/tests/simulation_async.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sim {
    /// `pulsar-core`, driven by the world as an adapter would.
    Core,
    /// `pulsar-async` (driver, waiters, futures) on the simulated runtime.
    Async,
    /// Transactions: a consume-transform-produce pipeline on the core
    /// (`tests/tests/simulation_txn.rs`).
    Txn,
}

impl Sim {
    /// The test binary that runs this simulation.
    pub fn test_name(self) -> &'static str {
        match self {
            Sim::Core => "simulation",
            Sim::Async => "simulation_async",
            Sim::Txn => "simulation_txn",
        }
    }

    fn run(self, params: Params, echo: bool) -> RunResult {
        match self {
            Sim::Core => World::new(params, echo).run(),
            Sim::Async => async_world::run(params, echo),
            Sim::Txn => txn_world::run(params, echo),
        }
    }
}

/// Trace lines shown in a failure report.
pub const REPORT_TAIL: usize = 50;

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The simulation that ran it.
    pub sim: Sim,
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
            self.reproduce_command()
        ));
        s
    }
}

impl Outcome {
    /// The command that replays this seed with its full trace.
    pub fn reproduce_command(&self) -> String {
        format!(
            "PULSAR_SIM_SEED={} PULSAR_SIM_TRACE=1 cargo test -p pulsar-tests --test {} -- \
             one_seed --nocapture",
            self.seed,
            self.sim.test_name()
        )
    }
}

/// The command that replays `seed` of the core simulation with its full trace.
pub fn reproduce_command(seed: u64) -> String {
    format!(
        "PULSAR_SIM_SEED={seed} PULSAR_SIM_TRACE=1 cargo test -p pulsar-tests --test simulation -- one_seed --nocapture"
    )
}

/// Runs one seed of the core simulation (`echo` prints every trace line as it happens).
pub fn run_seed(seed: u64, echo: bool) -> Outcome {
    run_seed_in(Sim::Core, seed, echo)
}

/// Runs one seed of `sim` (`echo` prints every trace line as it happens).
pub fn run_seed_in(sim: Sim, seed: u64, echo: bool) -> Outcome {
    let params = match sim {
        Sim::Txn => Params::for_transactions(seed),
        Sim::Core | Sim::Async => Params::from_seed(seed),
    };
    if echo {
        println!("{params}");
    }
    let started = Instant::now();
    let p = params.clone();
    let result = catch_unwind(AssertUnwindSafe(move || sim.run(p, echo)));
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
            sim,
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
                sim,
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

/// Runs `seed` of the core simulation twice; `Err` describes a difference between the two
/// traces.
pub fn check_determinism(seed: u64) -> Result<u64, String> {
    check_determinism_in(Sim::Core, seed)
}

/// Runs `seed` of `sim` twice; `Err` describes a difference between the two traces.
pub fn check_determinism_in(sim: Sim, seed: u64) -> Result<u64, String> {
    let a = run_seed_in(sim, seed, false);
    let b = run_seed_in(sim, seed, false);
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

/// Fails the test if any seed failed: the full reports of the first three, the first violation
/// of each of the first 200, and the failed seeds.
pub fn fail_on(outcomes: &[Outcome]) {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    if failed.is_empty() {
        return;
    }
    for o in failed.iter().take(3) {
        eprintln!("{}", o.report());
    }
    for o in failed.iter().take(200) {
        eprintln!(
            "seed {}: {}",
            o.seed,
            o.violations.first().map_or("", String::as_str)
        );
    }
    let seeds: Vec<u64> = failed.iter().map(|o| o.seed).collect();
    panic!(
        "{} of {} seeds failed: {:?}",
        failed.len(),
        outcomes.len(),
        &seeds[..seeds.len().min(50)]
    );
}

/// The `one_seed` test of `sim`: runs `PULSAR_SIM_SEED` (default 0), printing its parameters, its
/// figures and trace hash (and every trace line with `PULSAR_SIM_TRACE`); fails with its report.
pub fn one_seed(sim: Sim) {
    let seed = seeds_from_env(1).first().copied().unwrap_or(0);
    let o = run_seed_in(sim, seed, trace_from_env());
    println!(
        "seed {seed}: {} events, {:?} simulated, {:?} wall, stats {:?}, trace hash {:#x}",
        o.steps, o.sim_time, o.wall, o.stats, o.trace_hash
    );
    fail_on(&[o]);
}

/// The `determinism` test of `sim`: each of `seeds` twice, the same trace hash.
pub fn determinism(sim: Sim, seeds: &[u64]) {
    for seed in seeds {
        if let Err(e) = check_determinism_in(sim, *seed) {
            panic!("{e}");
        }
    }
}

/// Runs one recorded seed of `sim` and fails with its report.
pub fn regression(sim: Sim, seed: u64) {
    let o = run_seed_in(sim, seed, false);
    fail_on(&[o]);
}
