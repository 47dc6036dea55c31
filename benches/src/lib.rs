//! Benchmark support: the end-to-end comparison harness and its client processes.
//!
//! * `src/bin/bench-client.rs`: this project's client (tokio, smol or blocking) running one
//!   workload ([`spec::Spec`]) and printing its [`spec::ClientResult`].
//! * `src/bin/bench-pulsar-rs.rs`: the same workloads on pulsar-rs (crates.io `pulsar`).
//! * `bin/bench_client.py`: the same workloads on the official Python client.
//! * `src/bin/pulsar-bench.rs`: the harness; runs every client as a separate process against
//!   the real broker (and the Java `pulsar-perf`), then writes `BENCHMARKS.md`, charts and raw
//!   numbers. `scripts/bench` is the entry point.
//!
//! Benchmarks are never tests: nothing here is timed by `cargo test`; the unit tests only check
//! the arithmetic and parsing.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod error;
pub mod harness;
pub mod java;
pub mod latency;
pub mod primitives;
pub mod procfs;
pub mod report;
pub mod spec;
pub mod stats;
pub mod window;

pub use error::BenchError;
