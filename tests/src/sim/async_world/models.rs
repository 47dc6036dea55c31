//! The application's records in an async run (the same [`ProducerModel`] / [`ConsumerModel`] /
//! [`SubRecord`] the core simulation keeps, so `check.rs` judges both alike), and the
//! observations the tasks make, with their checks.

use std::collections::BTreeMap;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pulsar_async::{Error, Message, MessageId};
use pulsar_core::ProducerId;

use crate::sim::app::{short, ConsumerModel, ProducerModel, SendRef, SubRecord};
use crate::sim::async_world::env::Env;
use crate::sim::params::Params;
use crate::sim::records::{received_violations, Records};
use crate::sim::rng::SimRng;

/// See the [module documentation](self).
#[derive(Debug)]
pub struct Models {
    /// One per producer of the workload.
    pub producers: Vec<ProducerModel>,
    /// One per consumer of the workload.
    pub consumers: Vec<ConsumerModel>,
    /// What each subscription received.
    pub subs: BTreeMap<(String, String), SubRecord>,
    /// The application's random choices (delays).
    pub rng: SimRng,
    /// The application's random choices of async features (negative acks, dropped receipts).
    pub feature_rng: SimRng,
    /// Everything settled (or the bound passed): the clients are being closed.
    pub closing: bool,
    closing_waiters: Vec<Waker>,
    /// Which clients finished `close()`.
    pub closed: Vec<bool>,
}

impl Models {
    /// The records of `p`'s workload, nothing sent or received yet.
    pub fn new(p: &Params, rng: SimRng, feature_rng: SimRng) -> Models {
        let Records {
            producers,
            consumers,
            subs,
        } = Records::new(p);
        Models {
            producers,
            consumers,
            subs,
            rng,
            feature_rng,
            closing: false,
            closing_waiters: Vec::new(),
            closed: vec![false; p.clients],
        }
    }

    /// Ready once the clients are being closed.
    pub fn poll_closing(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.closing {
            return Poll::Ready(());
        }
        if !self.closing_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            self.closing_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The clients are being closed: wakes every task waiting for it.
    pub fn begin_closing(&mut self) {
        self.closing = true;
        for w in self.closing_waiters.drain(..) {
            w.wake();
        }
    }
}

impl Env {
    /// Producer `i` handed message `index` over on `handle`.
    pub fn app_sent(&mut self, i: usize, handle: ProducerId, index: u32) {
        let now = self.now();
        let m = &mut self.app.producers[i];
        debug_assert_eq!(m.next_index, index);
        m.record_send(handle, SendRef::App(index), now);
        let shown = short(&m.payload_of(index));
        self.log(format!("app send {shown} on {handle}"));
    }

    /// The outcome of producer `i`'s message `index` reached the application (a receipt, a
    /// callback, or the error of a send refused after it was recorded). `ordered: false` for
    /// outcomes not ordered against the others (refusals, dropped receipts).
    pub fn app_completed(
        &mut self,
        i: usize,
        handle: ProducerId,
        index: u32,
        result: Result<MessageId, String>,
        ordered: bool,
    ) {
        let m = &self.app.producers[i];
        let partitioned = self.fab.p.topics[m.spec.topic].partitions > 0;
        let partition = result.as_ref().ok().map(|id| id.partition);
        let domain = if ordered {
            m.domain_of(Some(index), partition, partitioned)
        } else {
            Some(String::new())
        };
        let shown = short(&m.payload_of(index));
        match &result {
            Ok(id) => {
                self.fab.stats.acked += 1;
                self.log(format!("app {shown} on {handle} acked {id}"));
            }
            Err(e) => {
                self.fab.stats.failed += 1;
                self.log(format!("app {shown} on {handle} failed: {e}"));
            }
        }
        let r =
            self.app.producers[i].complete(handle, SendRef::App(index), result, domain.as_deref());
        if let Err(v) = r {
            self.violation(v);
        }
    }

    /// After `flush()` of producer `i` returned: every message before `upto` has its outcome.
    pub fn app_flushed(&mut self, i: usize, upto: u32, result: &Result<(), Error>) {
        let m = &self.app.producers[i];
        match result {
            Ok(()) => {
                let waiting: Vec<String> = m
                    .sends
                    .iter()
                    .filter(|s| s.index < upto && s.result.is_none())
                    .map(|s| short(&s.payload))
                    .collect();
                let label = m.spec.label.clone();
                self.log(format!("app {label} flushed before #{upto}"));
                if !waiting.is_empty() {
                    self.violation(format!(
                        "{label}: flush() returned with sends still without an outcome: {waiting:?}"
                    ));
                }
            }
            Err(e) => {
                let label = m.spec.label.clone();
                self.log(format!("app {label} flush failed: {e}"));
            }
        }
    }

    /// Consumer `i` received `msg`; the checks of the core simulation. Returns whether to
    /// acknowledge it negatively.
    pub fn app_received(&mut self, i: usize, msg: &Message) -> bool {
        self.fab.stats.received += 1;
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        if msg.payload.len() > self.fab.p.max_message_size as usize {
            self.fab.stats.chunked += 1;
        }
        let c = &self.app.consumers[i];
        let label = c.spec.label.clone();
        let key = (c.topic.clone(), c.spec.subscription.clone());
        let members = self.app.subs.get(&key).map_or(1, |s| s.members);
        let partitioned = self.fab.p.topics[c.spec.topic].partitions > 0;
        let acks = c.spec.acks;
        let ordered = c.checks_order(members)
            && !partitioned
            && acks.nack_rate == 0.0
            && acks.ack_timeout.is_none();
        self.log(format!(
            "app {label} receives {} id {} redeliveries {}",
            short(&text),
            msg.id,
            msg.redelivery_count
        ));
        if let Some(r) = self.app.subs.get_mut(&key) {
            r.received.insert(text.clone());
        }
        let found = received_violations(
            &self.fab.cluster,
            &self.app.producers,
            &mut self.app.consumers[i],
            msg,
            &text,
            msg.redelivery_count == 0 && !partitioned,
            ordered,
        );
        for v in found {
            self.violation(v);
        }
        msg.redelivery_count == 0
            && acks.nack_rate > 0.0
            && self.app.feature_rng.chance(acks.nack_rate)
    }

    /// A random delay of the application.
    pub fn app_delay(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.app.rng.duration(lo, hi)
    }

    /// A random choice of the application's async features.
    pub fn app_chance(&mut self, p: f64) -> bool {
        self.app.feature_rng.chance(p)
    }
}
