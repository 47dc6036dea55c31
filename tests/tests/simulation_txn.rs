//! Deterministic simulation of transactions (issue 17): a consume-transform-produce pipeline on
//! the client core against the model cluster's transaction coordinators, transaction buffers and
//! pending acknowledgements, under the seed's faults (`pulsar_tests::sim::txn_world`).
//!
//! * `seeds`: `PULSAR_SIM_SEEDS` consecutive seeds (default 200; `PULSAR_SIM_TXN_SEEDS`
//!   overrides it for this test only) from `PULSAR_SIM_START`, or the one seed `PULSAR_SIM_SEED`;
//! * `one_seed`: one seed (`PULSAR_SIM_SEED`, default 0) with its parameters printed, and every
//!   trace line with `PULSAR_SIM_TRACE=1`;
//! * `determinism`: the same seeds twice, same trace hash.
//!
//! See `docs/simulation.md`.

use std::time::Instant;

use pulsar_tests::sim::runner::{self, fail_on, run_seed_in, seeds_from_env, Sim};

/// Seeds run by default (CI).
const DEFAULT_SEEDS: u64 = 200;

/// `PULSAR_SIM_TXN_SEEDS` (a count) takes precedence over `PULSAR_SIM_SEEDS` here.
fn txn_seeds() -> Vec<u64> {
    let count = std::env::var("PULSAR_SIM_TXN_SEEDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match count {
        Some(n) if std::env::var("PULSAR_SIM_SEED").is_err() => {
            let start = seeds_from_env(1).first().copied().unwrap_or(0);
            (start..start.saturating_add(n)).collect()
        }
        _ => seeds_from_env(DEFAULT_SEEDS),
    }
}

#[test]
fn seeds() {
    let seeds = txn_seeds();
    let started = Instant::now();
    let stop_at_first = std::env::var("PULSAR_SIM_STOP_AT_FIRST").is_ok();
    let mut outcomes = Vec::with_capacity(seeds.len());
    for s in &seeds {
        let o = run_seed_in(Sim::Txn, *s, false);
        let failed = !o.passed();
        outcomes.push(o);
        if failed && stop_at_first {
            break;
        }
    }
    let wall = started.elapsed();
    let steps: u64 = outcomes.iter().map(|o| o.steps).sum();
    let committed: u64 = outcomes.iter().map(|o| o.stats.acked).sum();
    let dropped: u64 = outcomes.iter().map(|o| o.stats.failed).sum();
    let received: u64 = outcomes.iter().map(|o| o.stats.received).sum();
    let faults: u64 = outcomes.iter().map(|o| o.stats.faults).sum();
    println!(
        "simulated {} transaction seeds in {:.1?}, {steps} events, {committed} committed and \
         {dropped} aborted source messages, {received} messages at the verifier, {faults} faults \
         injected",
        outcomes.len(),
        wall,
    );
    assert!(
        committed > 0 || outcomes.is_empty(),
        "no source transaction committed"
    );
    fail_on(&outcomes);
}

#[test]
fn one_seed() {
    runner::one_seed(Sim::Txn);
}

#[test]
fn determinism() {
    runner::determinism(Sim::Txn, &[1, 2, 3, 17, 99]);
}
