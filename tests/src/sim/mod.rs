//! Deterministic simulation testing of the client core (issue 7; see `docs/simulation.md`).
//!
//! One seed decides everything: the cluster, the network, the faults, the client settings and the
//! workload ([`params`]). The [`world`] runs the unmodified client core against a model cluster
//! ([`broker`]) over a simulated network ([`net`]) in a discrete-event loop ([`sched`]), driving the
//! core exactly as a runtime adapter does, and checks the invariants as it goes ([`app`]) and at the
//! end ([`check`]). [`runner`] runs seeds, reports failures and checks determinism.
//! [`async_world`] runs the async client (`pulsar-async`) on a simulated runtime against the same
//! cluster, network and checks: both run on a [`fabric`] (network, cluster, faults) and keep the
//! same [`records`]. [`txn_world`] runs a transactional consume-transform-produce pipeline on the
//! core against the cluster's transaction coordinators.
pub mod app;
pub mod async_world;
pub mod broker;
pub mod check;
pub mod fabric;
pub mod net;
pub mod params;
pub mod records;
pub mod rng;
pub mod runner;
pub mod sched;
pub mod trace;
pub mod txn_world;
pub mod world;
