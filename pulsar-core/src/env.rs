//! The environment of a client: its configuration, handle and random sources, wall clock reference,
//! counters, and whether it is shut.

use std::time::Instant;

use crate::config::ClientConfig;
use crate::handle::IdGen;
use crate::rng::SplitMix64;
use crate::stats::ClientCounters;

/// Configuration, id and random sources, wall clock and counters: what every part of the client reads
/// or counts in, and nothing that routes work.
#[derive(Debug)]
pub(crate) struct Env {
    /// The configuration the client was created with.
    pub(crate) config: ClientConfig,
    /// The source of every handle value and wire request id.
    pub(crate) ids: IdGen,
    /// The source of every random choice (seeded from [`ClientConfig::seed`]).
    pub(crate) rng: SplitMix64,
    /// Client-wide counters.
    pub(crate) counters: ClientCounters,
    /// No new connection may be opened and no operation started (the client is closed).
    pub(crate) shut: bool,
    /// Batches without a transaction complete with one [`Event::SendsCompleted`](crate::Event::SendsCompleted)
    /// (see [`Client::set_batch_receipts`](crate::Client::set_batch_receipts)).
    pub(crate) batch_receipts: bool,
    /// The topic names in use, one shared copy each.
    pub(crate) topics: crate::topic::TopicNames,
    /// Wall clock reference: (instant, unix milliseconds at that instant).
    clock: (Instant, u64),
}

impl Env {
    /// The environment of a new client created at `now`.
    pub(crate) fn new(config: ClientConfig, now: Instant) -> Env {
        Env {
            rng: SplitMix64::new(config.seed),
            clock: (now, config.unix_time_ms),
            config,
            ids: IdGen::new(),
            counters: ClientCounters::default(),
            shut: false,
            batch_receipts: false,
            topics: Default::default(),
        }
    }

    /// Unix milliseconds at `now`, from the reference the runtime gave.
    pub(crate) fn unix_millis(&self, now: Instant) -> u64 {
        let (at, ms) = self.clock;
        ms.saturating_add(now.saturating_duration_since(at).as_millis() as u64)
    }

    /// Sets the wall clock reference: `unix_ms` is the Unix time in milliseconds at `now`.
    pub(crate) fn set_unix_millis(&mut self, now: Instant, unix_ms: u64) {
        self.clock = (now, unix_ms);
    }

    /// A fresh wire request id.
    pub(crate) fn next_request_id(&mut self) -> u64 {
        self.ids.next()
    }
}
