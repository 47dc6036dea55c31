//! Support for the integration tests of the workspace.
//!
//! * [`support`]: a real Apache Pulsar broker (one already running is reused, otherwise the
//!   project's `scripts/pulsar-broker` starts one, once per test process, stopped when the process
//!   exits), separate broker variants (TLS, authentication, deduplication) owned by a test,
//!   unique topic names, and admin REST calls.
//! * [`facade`]: one API over the tokio, smol and blocking adapters, for tests run on each.
//! * [`wire`]: a blocking client speaking raw protocol frames (pulsar-proto) over a
//!   `std::net::TcpStream`.
//! * [`proxy`]: a recording TCP proxy on 127.0.0.1 capturing both directions of a connection.
//! * [`golden`]: splitting captured byte streams into frames and checking that they re-encode
//!   byte for byte.
#![deny(missing_docs)]

/// The repository README's examples (one per runtime crate), compiled by `cargo test --doc` so
/// that they cannot go stale. This crate has every runtime crate as a dev-dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

pub mod facade;
pub mod facade_txn;
pub mod golden;
pub mod proxy;
pub mod sim;
pub mod support;
pub mod wire;
