//! Producers.
//!
//! The application sees one [`ProducerId`] per [`Client::create_producer`](crate::Client::create_producer)
//! call. Behind it:
//!
//! 1. PARTITIONED_METADATA (retried with backoff until the operation timeout) tells whether the
//!    topic is partitioned;
//! 2. one wire producer (`part::Part`) for a non-partitioned topic (its wire id is the
//!    application's handle), or one per partition, created eagerly or on their first message, with
//!    messages routed by key hash, round robin, a single partition or a custom router;
//! 3. each wire producer registers, assigns sequence ids, batches, compresses, chunks, keeps an
//!    ordered pending queue matched against receipts, and resends it in order after any loss.
//!
//! Limits (pending messages per producer, the client-wide memory limit) are enforced here when a
//! message is accepted: [`SendError::QueueFull`] / [`SendError::MemoryLimit`] are returned at once
//! (never a silent drop) and [`Event::ProducerHasRoom`] tells when to try again. A partitioned
//! topic's partition count is checked periodically and new partitions are used.
//!
//! Completion events ([`Event::SendCompleted`]) of one partition come in send order.
//!
//! The application's commands (create, send, flush, close) are in `commands.rs`; the inputs from
//! the connections and the routing of messages to partitions are here.

mod batch;
mod commands;
mod message;
mod options;
mod part;
mod pending;
/// Schemas (moved to the crate root: [`crate::schema`]; this path stays for compatibility).
pub use crate::schema;
mod txn;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsar_proto::pb;

pub use crate::schema::{SchemaInfo, SchemaType};
pub(crate) use message::Refusal;
pub use message::{OutgoingMessage, Refused};
pub(crate) use options::ProducerRequest;
pub use options::{
    AccessMode, BatchingOptions, ProducerOptions, RoutingMode, DEFAULT_MAX_PENDING_MESSAGES,
    DEFAULT_PARTITIONS_CHECK_INTERVAL, DEFAULT_SEND_TIMEOUT,
};

use crate::backoff::Backoff;
use crate::compression::CompressionType;
use crate::deadline::Deadline as CreateDeadline;
use crate::deadline_map::{DeadlineMap, NextTimeout};
use crate::env::Env;
use crate::error::{Error, SendError};
use crate::event::Event;
use crate::handle::{ConnectionId, ProducerId, RequestId, SendId};
use crate::latency::LatencyHistogram;
use crate::outputs::Outputs;
use crate::request::{OpKind, OpResult, Owner};
use crate::routing::{HashingScheme, MessageRouter, RoundRobinRouter, SinglePartitionRouter};
use crate::service_url::BrokerAddress;
use crate::shared::Shared;
use crate::stats::{ProducerStats, ResourceState};
use crate::time;
use crate::topic::TopicName;
use options::PartSettings;
use part::{Outcome, Part, Queued};

/// How the partition of a message is chosen.
enum Router {
    RoundRobin(RoundRobinRouter),
    Single(SinglePartitionRouter),
    Custom(Box<dyn MessageRouter + Send>),
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Router::RoundRobin(r) => r.fmt(f),
            Router::Single(r) => r.fmt(f),
            Router::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Router {
    fn choose(&mut self, key: Option<&str>, n: u32, now_ms: u64) -> u32 {
        let p = match self {
            Router::RoundRobin(r) => r.choose(key, n, now_ms),
            Router::Single(r) => r.choose(key, n),
            Router::Custom(r) => r.choose_partition(key, n, now_ms),
        };
        p % n.max(1)
    }
}

/// Partition metadata of an application producer.
#[derive(Debug)]
enum Topology {
    /// Not known yet (boxed: an application producer keeps this only while it is created).
    Unknown(Box<Resolving>),
    /// A non-partitioned topic: one wire producer whose id is the application's handle.
    Single,
    /// A partitioned topic.
    Partitioned(Box<Partitions>),
}

/// PARTITIONED_METADATA in flight (`op`) or waiting to be retried (`retry_at`).
#[derive(Debug)]
struct Resolving {
    op: Option<u64>,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// The creation's deadline (its operations carry it too; retries never wait past it).
    deadline: CreateDeadline,
    /// Lazy partitions (see `ProducerOptions::lazy_partitions`), for the topology to come.
    lazy: bool,
    /// How often a partitioned topology checks for new partitions (zero: never).
    check_interval: Duration,
}

#[derive(Debug)]
struct Partitions {
    /// Wire producer of each partition (`None`: not created yet, lazy mode).
    slots: Vec<Option<ProducerId>>,
    router: Router,
    lazy: bool,
    /// The partition whose registration makes the producer ready (lazy mode).
    first: Option<ProducerId>,
    check_interval: Option<Duration>,
    next_check: Option<Instant>,
    check_op: Option<u64>,
}

/// What the application holds: one producer, maybe over several partitions.
#[derive(Debug)]
struct App {
    id: ProducerId,
    topic: TopicName,
    /// Shared with its wire producers.
    settings: Arc<PartSettings>,
    max_pending: usize,
    hashing: HashingScheme,
    /// Taken once the partition count is known.
    routing: Option<RoutingMode>,
    topology: Topology,
    /// Messages accepted before the partition count is known.
    unrouted: VecDeque<Queued>,
    /// Messages accepted and not completed.
    pending: usize,
    ready: bool,
    /// Creation (partition count, then the first registrations) fails at this deadline.
    create_by: Instant,
    /// Flush requests: done when every message with a smaller send id is completed.
    flushes: Vec<(RequestId, SendId)>,
    closing: bool,
    /// The first error a partition ended with while closing (boxed: rare, and every idle
    /// producer carries the field).
    close_error: Option<Box<Error>>,
}

impl App {
    fn parts(&self) -> Vec<ProducerId> {
        match &self.topology {
            Topology::Single => vec![self.id],
            Topology::Partitioned(p) => p.slots.iter().flatten().copied().collect(),
            Topology::Unknown { .. } => Vec::new(),
        }
    }
}

/// Client-wide memory accounting of messages held by producers.
#[derive(Debug, Default)]
struct Memory {
    used: usize,
    /// Producers that were refused for lack of room and want [`Event::ProducerHasRoom`].
    waiters: BTreeSet<ProducerId>,
}

/// All producers of a client.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    apps: DeadlineMap<ProducerId, App>,
    parts: DeadlineMap<ProducerId, Part>,
    memory: Memory,
    /// The longest batch slack of any producer created (see `part::batch_slack`): a timer at
    /// `now` looks at the producers due by `now` plus this, so that the batches of many
    /// producers that end together are sent in one pass.
    batch_slack: Duration,
    /// The settings of the last producer created: the next one created with equal settings
    /// shares them.
    last_settings: Option<Arc<PartSettings>>,
}

impl Producers {
    pub(crate) fn is_empty(&self) -> bool {
        self.apps.is_empty() && self.parts.is_empty()
    }

    /// `settings`, or the equal settings of the last producer created (one copy for both).
    fn shared_settings(&mut self, settings: PartSettings) -> Arc<PartSettings> {
        match &self.last_settings {
            Some(s) if **s == settings => s.clone(),
            _ => {
                let s = Arc::new(settings);
                self.last_settings = Some(s.clone());
                s
            }
        }
    }

    /// Payload bytes held, as the client-wide memory limit counts them.
    pub(crate) fn memory_used(&self) -> usize {
        self.memory.used
    }

    pub(crate) fn stats(&self) -> Vec<ProducerStats> {
        self.parts.values().map(Part::stats).collect()
    }

    /// The application producer `id` as one entry: its wire producer on a non-partitioned
    /// topic; on a partitioned topic the sum of its partitions' counters under the topic's own
    /// name, in the first state short of ready among them; before the partition count is known,
    /// no counters and the messages accepted meanwhile as pending.
    pub(crate) fn app_stats(&self, id: ProducerId) -> Option<ProducerStats> {
        let app = self.apps.get(&id)?;
        if matches!(app.topology, Topology::Single) {
            return self.parts.get(&id).map(Part::stats);
        }
        let mut total = ProducerStats {
            id,
            topic: app.topic.to_string(),
            name: None,
            state: ResourceState::LookingUp,
            connection: None,
            pending_messages: app.unrouted.len(),
            pending_bytes: app.unrouted.iter().map(|q| q.size).sum(),
            messages_sent: 0,
            batches_sent: 0,
            bytes_sent: 0,
            messages_acked: 0,
            receipts_received: 0,
            messages_failed: 0,
            reconnects: 0,
            send_latency: LatencyHistogram::new(),
        };
        let (mut any_part, mut unready) = (false, None);
        for part in self.parts.values().filter(|p| p.app == id) {
            let s = part.stats();
            total.name = total.name.or(s.name);
            total.pending_messages += s.pending_messages;
            total.pending_bytes += s.pending_bytes;
            total.send_latency.merge(&s.send_latency);
            total.messages_sent += s.messages_sent;
            total.batches_sent += s.batches_sent;
            total.bytes_sent += s.bytes_sent;
            total.messages_acked += s.messages_acked;
            total.receipts_received += s.receipts_received;
            total.messages_failed += s.messages_failed;
            total.reconnects += s.reconnects;
            any_part = true;
            if s.state != ResourceState::Ready {
                unready = unready.or(Some(s.state));
            }
        }
        total.state = if app.closing {
            ResourceState::Closing
        } else if any_part {
            unready.unwrap_or(ResourceState::Ready)
        } else {
            ResourceState::LookingUp
        };
        Some(total)
    }

    /// The earliest deadline of every producer (kept in order as they change, not scanned).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        [self.parts.next_timeout(), self.apps.next_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- inputs from the connections -----------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        // When a producer's deadline has come, the batches ending within their slack go too;
        // producers due only within the slack by another deadline than a batch's find nothing
        // to do (each of their other checks compares with `now`).
        let fired = self.parts.next_timeout().is_some_and(|t| t <= now);
        let horizon = if fired {
            time::after(now, self.batch_slack)
        } else {
            now
        };
        for id in self.parts.due(horizon) {
            self.on_part(sh, now, id, |part, sh| part.handle_timeout(sh, now, fired));
        }
        let due = self.apps.due(now);
        for id in due {
            self.app_timeout(sh, now, id);
        }
    }

    pub(crate) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        ids: &[ProducerId],
    ) {
        for &id in ids {
            self.on_part(sh, now, id, |part, sh| part.connection_ready(sh, now, conn));
        }
    }

    /// `address` can be reached again: parts waiting because it could not retry now.
    pub(crate) fn address_up(&mut self, sh: &mut Shared, now: Instant, address: &BrokerAddress) {
        let ids: Vec<ProducerId> = self.parts.keys().copied().collect();
        for id in ids {
            self.on_part(sh, now, id, |part, sh| part.address_up(sh, now, address));
        }
    }

    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
        ids: &[ProducerId],
    ) {
        for &id in ids {
            self.on_part(sh, now, id, |part, sh| {
                part.connection_lost(sh, now, conn, reason)
            });
        }
    }

    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        op: u64,
        result: OpResult,
    ) {
        if let Some(app) = self.apps.get(&id) {
            let mine = match &app.topology {
                Topology::Unknown(r) => r.op == Some(op),
                Topology::Partitioned(p) => p.check_op == Some(op),
                Topology::Single => false,
            };
            if mine {
                if let OpResult::PartitionedMetadata(result) = result {
                    self.metadata(sh, now, id, result);
                }
                return;
            }
        }
        self.on_part(sh, now, id, |part, sh| part.op_done(sh, now, op, result));
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        request_id: u64,
        request: ProducerRequest,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let unclaimed = match self.parts.get_mut(&id) {
            Some(mut part) => Ok(part.response(sh, now, conn, request_id, request, result)),
            None => Err(result),
        };
        let result = match unclaimed {
            Ok(outcome) => return self.after_part(sh, now, id, outcome),
            Err(result) => result,
        };
        if request == ProducerRequest::Create
            && (matches!(&result, Ok(cmd) if cmd.producer_success.is_some())
                || matches!(result, Err(Error::Timeout)))
        {
            // Closed (or given up) while its PRODUCER was in flight: the broker may hold the
            // registration (also when the request timed out, or while it waits for exclusive
            // access), so close it there, as Java does.
            part::send_cleanup_close(sh, now, conn, id);
        }
    }

    pub(crate) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        command: pb::BaseCommand,
    ) {
        self.on_part(sh, now, id, |part, sh| part.command(sh, now, conn, command));
    }

    /// A SEND_RECEIPT for producer `id` on `conn`, read by reference from the connection's frame.
    pub(crate) fn receipt(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        receipt: &pb::CommandSendReceipt,
    ) {
        self.on_part(sh, now, id, |part, sh| {
            part.receipt_command(sh, now, conn, receipt)
        });
    }

    // ---- internals ------------------------------------------------------------------------------

    /// Runs `f` on wire producer `id`, if it still exists, and applies its outcome.
    fn on_part(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        f: impl FnOnce(&mut Part, &mut Shared) -> Outcome,
    ) {
        // One look-up: the outcome, the application producer and what was freed together.
        let done = self.parts.get_mut(&id).map(|mut part| {
            let outcome = f(&mut part, sh);
            (part.app, part.take_freed(), outcome)
        });
        if let Some((app, freed, outcome)) = done {
            self.part_done(sh, now, id, app, freed, outcome);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_part(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        app: ProducerId,
        settings: Arc<PartSettings>,
        id: ProducerId,
        partition: i32,
        topic: Arc<str>,
    ) {
        if let Some(b) = &settings.batching {
            self.batch_slack = self.batch_slack.max(part::batch_slack(b.max_delay));
        }
        let mut part = Part::new(sh, now, id, app, partition, topic, settings);
        // A partition registered while the application waits for creation shares its deadline.
        if let Some(a) = self.apps.get(&app).filter(|a| !a.ready) {
            part.link.end_creation_by(a.create_by);
        }
        self.parts.insert(id, part);
        // The link starts at once (its first deadline is `now`).
        self.on_part(sh, now, id, |part, sh| part.handle_timeout(sh, now, false));
    }

    /// The partition producer for a message, created if needed.
    fn route(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        msg: &OutgoingMessage,
    ) -> Option<ProducerId> {
        let now_ms = sh.env.unix_millis(now);
        let index = {
            let mut app = self.apps.get_mut(&id)?;
            let Topology::Partitioned(p) = &mut app.topology else {
                return None;
            };
            let n = u32::try_from(p.slots.len()).unwrap_or(u32::MAX);
            let index = p.router.choose(msg.key.as_deref(), n, now_ms);
            if let Some(Some(part)) = p.slots.get(index as usize) {
                return Some(*part);
            }
            index
        };
        self.create_partition(sh, now, id, index)
    }

    fn create_partition(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        index: u32,
    ) -> Option<ProducerId> {
        let part_id = sh.env.ids.producer();
        let mut app = self.apps.get_mut(&id)?;
        let Topology::Partitioned(p) = &mut app.topology else {
            return None;
        };
        *p.slots.get_mut(index as usize)? = Some(part_id);
        let topic = sh
            .env
            .topics
            .intern(app.topic.partition_name(index).as_str());
        let partition = i32::try_from(index).unwrap_or(i32::MAX);
        let settings = app.settings.clone();
        drop(app);
        self.add_part(sh, now, id, settings, part_id, partition, topic);
        Some(part_id)
    }

    /// The answer to PARTITIONED_METADATA (at creation or a periodic check).
    fn metadata(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        result: Result<u32, Error>,
    ) {
        let Some(mut guard) = self.apps.get_mut(&id) else {
            return;
        };
        let app = &mut *guard;
        if let Topology::Partitioned(p) = &mut app.topology {
            // A periodic check: use new partitions.
            p.check_op = None;
            p.next_check = p.check_interval.map(|d| time::after(now, d));
            let Ok(n) = result else { return };
            let old = p.slots.len();
            if (n as usize) <= old {
                return;
            }
            p.slots.resize(n as usize, None);
            let lazy = p.lazy;
            drop(guard);
            if !lazy {
                for index in old..n as usize {
                    self.create_partition(sh, now, id, index as u32);
                }
            }
            return;
        }
        let Topology::Unknown(resolving) = &mut app.topology else {
            return;
        };
        match result {
            Ok(0) => {
                app.topology = Topology::Single;
                let (settings, topic) = (app.settings.clone(), app.topic.shared());
                drop(guard);
                self.add_part(sh, now, id, settings, id, -1, topic);
            }
            Ok(n) => {
                let (lazy, check_interval) = (resolving.lazy, resolving.check_interval);
                let batching = app.settings.batching.as_ref();
                let switch_ms =
                    batching.map_or(RoundRobinRouter::DEFAULT_PARTITION_SWITCH_MS, |b| {
                        u64::try_from(b.max_delay.as_millis())
                            .unwrap_or(u64::MAX)
                            .saturating_mul(10)
                            .max(1)
                    });
                let seed = sh.env.rng.next_u64();
                let router = match app.routing.take().unwrap_or_default() {
                    RoutingMode::RoundRobin => Router::RoundRobin(RoundRobinRouter::from_seed(
                        app.hashing,
                        seed,
                        n,
                        batching.is_some(),
                        switch_ms,
                    )),
                    RoutingMode::SinglePartition => {
                        Router::Single(SinglePartitionRouter::from_seed(app.hashing, seed, n))
                    }
                    RoutingMode::Custom(r) => Router::Custom(r),
                };
                let interval = (!check_interval.is_zero()).then_some(check_interval);
                app.topology = Topology::Partitioned(Box::new(Partitions {
                    slots: vec![None; n as usize],
                    router,
                    lazy,
                    first: None,
                    check_interval: interval,
                    next_check: interval.map(|d| time::after(now, d)),
                    check_op: None,
                }));
                drop(guard);
                if lazy {
                    // One partition up front, to detect errors early (the Java client does so).
                    let keyless = OutgoingMessage::default();
                    if let Some(first) = self.route(sh, now, id, &keyless) {
                        if let Some(mut app) = self.apps.get_mut(&id) {
                            if let Topology::Partitioned(p) = &mut app.topology {
                                p.first = Some(first);
                            }
                        }
                    }
                } else {
                    for index in 0..n {
                        self.create_partition(sh, now, id, index);
                    }
                }
            }
            Err(e) => {
                let fatal = if !e.is_retriable() {
                    Some(e)
                } else if resolving.deadline.expired(now) {
                    Some(resolving.deadline.expire_with(&e))
                } else {
                    resolving.deadline.record(&e);
                    let delay = resolving.backoff.next_delay(&mut sh.env.rng);
                    resolving.op = None;
                    resolving.retry_at = Some(resolving.deadline.retry_at(now, delay));
                    None
                };
                if let Some(e) = fatal {
                    drop(guard);
                    self.fail_app(sh, now, id, e);
                }
                return;
            }
        }
        // Route what was sent meanwhile, in order.
        let unrouted = match self.apps.get_mut(&id) {
            Some(mut app) => std::mem::take(&mut app.unrouted),
            None => return,
        };
        for mut q in unrouted {
            let part = match self.apps.get(&id).map(|a| &a.topology) {
                Some(Topology::Single) => Some(id),
                Some(Topology::Partitioned(_)) => self.route(sh, now, id, &q.msg),
                _ => None,
            };
            let (send, size) = (q.send, q.size);
            let result = match part.and_then(|p| self.parts.get_mut(&p)) {
                Some(mut part) => part
                    .add(sh, now, q.send, &mut q.msg, q.at)
                    .map_err(Refusal::into_error),
                None => Err(SendError::ProducerClosed),
            };
            if let Err(e) = result {
                self.complete_unrouted(&mut sh.out, id, send, size, e);
            }
        }
        self.settle(sh, now, id);
    }

    fn complete_unrouted(
        &mut self,
        out: &mut Outputs,
        id: ProducerId,
        send: SendId,
        size: usize,
        error: SendError,
    ) {
        if let Some(mut app) = self.apps.get_mut(&id) {
            app.pending = app.pending.saturating_sub(1);
        }
        self.memory.used = self.memory.used.saturating_sub(size);
        out.events.push_back(Event::SendCompleted {
            producer: id,
            send,
            result: Err(error),
        });
    }

    fn app_timeout(&mut self, sh: &mut Shared, now: Instant, id: ProducerId) {
        // Messages waiting for the partition count time out like the others.
        let timed_out = match self.apps.get_mut(&id) {
            None => return,
            Some(mut app) => match app.settings.send_timeout {
                Some(t)
                    if app
                        .unrouted
                        .front()
                        .is_some_and(|q| time::passed(q.at, t, now)) =>
                {
                    std::mem::take(&mut app.unrouted)
                }
                _ => VecDeque::new(),
            },
        };
        for q in timed_out {
            self.complete_unrouted(&mut sh.out, id, q.send, q.size, SendError::Timeout);
        }
        let Some(mut guard) = self.apps.get_mut(&id) else {
            return;
        };
        let app = &mut *guard;
        match &mut app.topology {
            Topology::Unknown(r) if r.op.is_none() && r.retry_at.is_some_and(|t| t <= now) => {
                r.retry_at = None;
                if r.deadline.expired(now) {
                    let error = r.deadline.error();
                    drop(guard);
                    self.fail_app(sh, now, id, error);
                    return;
                }
                r.op = Some(sh.start_op_until(
                    now,
                    Owner::Producer(id),
                    OpKind::PartitionedMetadata {
                        topic: app.topic.to_string(),
                    },
                    None,
                    Some(r.deadline.at()),
                ));
            }
            Topology::Partitioned(p)
                if p.check_op.is_none()
                    && !app.closing
                    && p.next_check.is_some_and(|t| t <= now) =>
            {
                p.next_check = None;
                p.check_op = Some(sh.start_op(
                    now,
                    Owner::Producer(id),
                    OpKind::PartitionedMetadata {
                        topic: app.topic.to_string(),
                    },
                    None,
                ));
            }
            _ => {}
        }
        drop(guard);
        self.settle(sh, now, id);
    }

    /// Creation failed: the partition producers there are (some may have registered) are given
    /// up and closed on the broker, as the Java client closes the partitions that started.
    fn fail_app(&mut self, sh: &mut Shared, now: Instant, id: ProducerId, error: Error) {
        let unrouted = match self.apps.get_mut(&id) {
            Some(mut app) => std::mem::take(&mut app.unrouted),
            None => return,
        };
        for q in unrouted {
            self.complete_unrouted(
                &mut sh.out,
                id,
                q.send,
                q.size,
                SendError::Failed(error.clone()),
            );
        }
        let parts = self.apps.get(&id).map(App::parts).unwrap_or_default();
        for p in parts {
            if let Some(mut part) = self.parts.remove(&p) {
                part.discard(sh, now, SendError::Failed(error.clone()));
                let (m, b) = part.take_freed();
                self.free(id, m, b);
            }
        }
        if self.apps.remove(&id).is_some() {
            sh.out.events.push_back(Event::ProducerFailed {
                producer: id,
                error,
            });
        }
        self.notify_room(&sh.env, &mut sh.out);
    }

    /// Removes an application producer and reports it closed.
    fn end_app(&mut self, out: &mut Outputs, id: ProducerId, error: Option<Error>) {
        let Some(mut app) = self.apps.remove(&id) else {
            return;
        };
        for q in std::mem::take(&mut app.unrouted) {
            self.memory.used = self.memory.used.saturating_sub(q.size);
            let e = match &error {
                None => SendError::ProducerClosed,
                Some(e) => SendError::Failed(e.clone()),
            };
            out.events.push_back(Event::SendCompleted {
                producer: id,
                send: q.send,
                result: Err(e),
            });
        }
        for (request, _) in app.flushes.drain(..) {
            out.events.push_back(Event::FlushCompleted {
                producer: id,
                request,
            });
        }
        self.memory.waiters.remove(&id);
        out.events.push_back(Event::ProducerClosed {
            producer: id,
            error,
        });
    }

    fn free(&mut self, id: ProducerId, messages: usize, bytes: usize) {
        if let Some(mut app) = self.apps.get_mut(&id) {
            app.pending = app.pending.saturating_sub(messages);
        }
        self.memory.used = self.memory.used.saturating_sub(bytes);
    }

    /// Applies what a wire producer reported.
    fn after_part(&mut self, sh: &mut Shared, now: Instant, part_id: ProducerId, outcome: Outcome) {
        // What was freed changes no deadline: no refiling.
        let Some((app_id, freed)) = self
            .parts
            .get_mut_untracked(&part_id)
            .map(|part| (part.app, part.take_freed()))
        else {
            return;
        };
        self.part_done(sh, now, part_id, app_id, freed, outcome);
    }

    /// Applies what wire producer `part_id` of `app_id` reported, with the messages and bytes
    /// it completed.
    fn part_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        part_id: ProducerId,
        app_id: ProducerId,
        (m, b): (usize, usize),
        outcome: Outcome,
    ) {
        if outcome == Outcome::None {
            // The common case (a receipt, a batch sent): one look-up of the application
            // producer, whose deadline does not depend on its count of pending messages; the rest
            // of `settle` only matters with a flush waiting or while closing.
            let quiet = self.apps.get_mut_untracked(&app_id).is_some_and(|app| {
                app.pending = app.pending.saturating_sub(m);
                app.flushes.is_empty() && !app.closing
            });
            if quiet {
                self.memory.used = self.memory.used.saturating_sub(b);
                self.notify_room(&sh.env, &mut sh.out);
                return;
            }
            self.memory.used = self.memory.used.saturating_sub(b);
            return self.settle(sh, now, app_id);
        }
        self.free(app_id, m, b);
        match outcome {
            Outcome::None => {}
            Outcome::Ready => self.part_ready(&mut sh.out, app_id),
            Outcome::Gone { error, ever_ready } => {
                self.parts.remove(&part_id);
                self.part_gone(sh, now, app_id, part_id, error, ever_ready);
            }
        }
        self.settle(sh, now, app_id);
    }

    fn part_ready(&mut self, out: &mut Outputs, id: ProducerId) {
        let Some(app) = self.apps.get(&id) else {
            return;
        };
        if app.ready {
            return;
        }
        let ready_parts: Vec<&Part> = match &app.topology {
            Topology::Single => self.parts.get(&id).into_iter().collect(),
            Topology::Partitioned(p) => {
                let required: Vec<ProducerId> = if p.lazy {
                    p.first.into_iter().collect()
                } else {
                    p.slots.iter().flatten().copied().collect()
                };
                let parts: Vec<&Part> = required
                    .iter()
                    .filter_map(|r| self.parts.get(r))
                    .filter(|p| p.is_registered_once())
                    .collect();
                if parts.len() < required.len() || (!p.lazy && required.len() < p.slots.len()) {
                    return;
                }
                parts
            }
            Topology::Unknown { .. } => return,
        };
        let Some(first) = ready_parts.first() else {
            return;
        };
        let name = app
            .settings
            .name
            .clone()
            .or_else(|| first.name.clone())
            .unwrap_or_default();
        let last_sequence_id = ready_parts
            .iter()
            .map(|p| p.last_sequence_id)
            .max()
            .unwrap_or(-1);
        let schema_version = first.schema_version.as_deref().cloned();
        if let Some(mut app) = self.apps.get_mut(&id) {
            app.ready = true;
        }
        out.events.push_back(Event::ProducerReady {
            producer: id,
            name,
            last_sequence_id,
            schema_version,
        });
    }

    fn part_gone(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        part_id: ProducerId,
        error: Option<Error>,
        ever_ready: bool,
    ) {
        let Some(mut guard) = self.apps.get_mut(&id) else {
            return;
        };
        let app = &mut *guard;
        if app.closing {
            if app.close_error.is_none() {
                app.close_error = error.map(Box::new);
            }
            if let Topology::Partitioned(p) = &mut app.topology {
                for s in p.slots.iter_mut() {
                    if *s == Some(part_id) {
                        *s = None;
                    }
                }
            }
            if !app.parts().iter().any(|p| self.parts.contains_key(p)) {
                let e = app.close_error.take().map(|e| *e);
                drop(guard);
                self.end_app(&mut sh.out, id, e);
            }
            return;
        }
        match &mut app.topology {
            Topology::Partitioned(p) if app.ready => {
                // Recreated on its next message.
                for s in p.slots.iter_mut() {
                    if *s == Some(part_id) {
                        *s = None;
                    }
                }
            }
            _ => {
                let error = error.unwrap_or(Error::Closed);
                if app.ready || ever_ready {
                    // Fail the other partitions too (and close them on the broker).
                    let others = app.parts();
                    drop(guard);
                    for p in others {
                        if let Some(mut part) = self.parts.remove(&p) {
                            part.discard(sh, now, SendError::Failed(error.clone()));
                            let (m, b) = part.take_freed();
                            self.free(id, m, b);
                        }
                    }
                    self.end_app(&mut sh.out, id, Some(error));
                } else {
                    drop(guard);
                    self.fail_app(sh, now, id, error);
                }
            }
        }
    }

    /// Completes flushes, reports room, and finishes closing when possible.
    fn settle(&mut self, sh: &mut Shared, _now: Instant, id: ProducerId) {
        let ended = self.apps.get_mut(&id).and_then(|mut guard| {
            let app = &mut *guard;
            if !app.flushes.is_empty() {
                let parts = app.parts();
                let oldest = parts
                    .iter()
                    .filter_map(|p| self.parts.get(p).and_then(Part::oldest_send))
                    .chain(app.unrouted.front().map(|q| q.send))
                    .min();
                app.flushes.retain(|(request, mark)| {
                    let done = oldest.is_none_or(|o| o > *mark);
                    if done {
                        sh.out.events.push_back(Event::FlushCompleted {
                            producer: id,
                            request: *request,
                        });
                    }
                    !done
                });
            }
            let live = || app.parts().iter().any(|p| self.parts.contains_key(p));
            (app.closing && app.unrouted.is_empty() && !live())
                .then(|| app.close_error.take().map(|e| *e))
        });
        if let Some(error) = ended {
            self.end_app(&mut sh.out, id, error);
        }
        self.notify_room(&sh.env, &mut sh.out);
    }

    /// Tells producers that were refused that there is room again.
    fn notify_room(&mut self, env: &Env, out: &mut Outputs) {
        if self.memory.waiters.is_empty() {
            return;
        }
        let limit = env.config.memory_limit;
        let memory_ok = limit == 0 || self.memory.used < limit;
        if !memory_ok {
            return;
        }
        let apps = &self.apps;
        self.memory.waiters.retain(|id| match apps.get(id) {
            Some(app) if app.pending < app.max_pending => {
                out.events
                    .push_back(Event::ProducerHasRoom { producer: *id });
                false
            }
            Some(_) => true,
            None => false,
        });
    }
}

/// Quick size check before acceptance (the exact one, after compression, happens on admission).
fn precheck(cfg: &PartSettings, msg: &OutgoingMessage, max: usize) -> Result<(), SendError> {
    let size = msg.payload.len();
    if !cfg.chunking && cfg.compression == CompressionType::None && size > max {
        return Err(SendError::MessageTooBig { size, max });
    }
    Ok(())
}

impl NextTimeout for Part {
    fn next_timeout(&self) -> Option<Instant> {
        Part::next_timeout(self)
    }
}

impl NextTimeout for App {
    fn next_timeout(&self) -> Option<Instant> {
        app_timeout(self)
    }
}

/// When an application producer wants `handle_timeout`.
fn app_timeout(app: &App) -> Option<Instant> {
    let unrouted = app
        .settings
        .send_timeout
        .and_then(|t| app.unrouted.front().map(|q| time::after(q.at, t)));
    let own = match &app.topology {
        Topology::Unknown(r) => r.retry_at,
        Topology::Partitioned(p) if p.check_op.is_none() && !app.closing => p.next_check,
        _ => None,
    };
    unrouted.into_iter().chain(own).min()
}

/// Sizes of what every idle producer holds (issue 21: at most 1 KiB of client memory per idle
/// producer). A field added to these structs should be boxed if rarely used.
#[cfg(test)]
mod layout {
    use std::mem::size_of;

    #[test]
    fn idle_producer_structs_stay_small() {
        assert!(size_of::<super::part::Part>() <= 512);
        assert!(size_of::<super::App>() <= 200);
        assert!(size_of::<crate::link::Link>() <= 184);
        assert!(size_of::<crate::deadline::Deadline>() <= 40);
        assert!(size_of::<crate::topic::TopicName>() <= 40);
    }
}
