//! The transaction simulation (issue 17): an exactly-once consume-transform-produce pipeline
//! run by the client core against the model cluster's coordinators, under the seed's faults
//! (resets, partitions, crashes, moves of the topics and of the coordinators).
//!
//! * The source (client 0) writes a few messages to `txn-in` in each of its transactions, then
//!   commits, aborts or abandons it (the coordinator's timeout aborts it).
//! * The pipeline consumes `txn-in` (subscription `pipe`) and, in one transaction per batch of
//!   received messages, writes one message per input to `txn-out` and acknowledges the input;
//!   it commits, aborts or abandons it (a crashed application) during the chaos, and commits
//!   once healed.
//! * The verifier reads `txn-out` (subscription `verify`, plain acknowledgements).
//!
//! Invariants, as they happen: every message received (by the pipeline or the verifier) belongs
//! to a transaction the coordinator committed; the outcome the client reports for each
//! transaction is the coordinator's; once a pipeline transaction ended, its acknowledgements are
//! in the cursor if it committed and not if it aborted (unless another, committed, transaction
//! acknowledged the same message). At the end: every message of a committed source transaction
//! reached `txn-out` exactly once (in the log's committed entries, and at the verifier), and no
//! message of an aborted one did; every transaction ended at the coordinator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_core::{
    Client, ClientConfig, ConnectionId, ConsumerId, ConsumerOptions, Event, InitialPosition,
    IoRequest, Message, OutgoingMessage, ProducerId, ProducerOptions, RequestId, SubscriptionType,
    TxnId,
};

use crate::sim::broker::{ConnId, ModelCluster};
use crate::sim::fabric::{configure_client, ClientEnds, Fabric, NetEv, SimEvent, ToClient};
use crate::sim::net::Dir;
use crate::sim::params::{Params, TopicSpec};
use crate::sim::rng::SimRng;
use crate::sim::sched::CoreTimer;
use crate::sim::world::RunResult;
use pulsar_embedded::core::{TxnStatus, TC_ASSIGN_TOPIC};

mod checks;

/// The pipeline's input topic.
pub const IN: &str = "persistent://public/default/txn-in";
/// The pipeline's output topic.
pub const OUT: &str = "persistent://public/default/txn-out";
/// Most events one run may process.
const MAX_STEPS: u64 = 3_000_000;
/// Most outputs one drain may produce before it counts as a livelock.
const MAX_DRAIN: u64 = 100_000;

impl Params {
    /// The parameters of seed `seed` of the transaction simulation: the cluster, network, faults
    /// and client settings of [`Params::from_seed`], deduplication on (exactly-once production
    /// needs it), one or two coordinators, and the pipeline's two topics (each partitioned or
    /// not) instead of the workload.
    pub fn for_transactions(seed: u64) -> Params {
        let mut p = Params::from_seed(seed);
        let mut r = SimRng::new(seed ^ 0x7C7C_0000_0000_0004);
        p.dedup = true;
        p.producers.clear();
        p.consumers.clear();
        p.max_message_size = 5 * 1024 * 1024;
        p.transaction_coordinators = r.range(1, 2) as u32;
        let mut parts = || {
            if r.chance(0.4) {
                r.range(2, 3) as u32
            } else {
                0
            }
        };
        p.topics = vec![
            TopicSpec {
                name: IN.into(),
                partitions: parts(),
            },
            TopicSpec {
                name: OUT.into(),
                partitions: parts(),
            },
        ];
        // the longest transaction timeout, and a few pipeline rounds after it
        p.settle_bound += Duration::from_secs(60);
        p
    }
}

/// Runs one seed of the transaction simulation.
pub fn run(p: Params, echo: bool) -> RunResult {
    TxnWorld::new(p, echo).run()
}

/// The scheduler's events.
#[derive(Debug)]
enum Ev {
    Net(NetEv),
    ClientTimer { client: usize, generation: u64 },
    Setup,
    Create(Role),
    SrcNext,
    PipePoll,
    PipeOpen,
    VerifyPoll,
    RetryEnd { txn: TxnId, commit: bool },
    Check,
    CloseClients,
}

impl From<NetEv> for Ev {
    fn from(ev: NetEv) -> Ev {
        Ev::Net(ev)
    }
}

impl SimEvent for Ev {
    fn settle_check() -> Ev {
        Ev::Check
    }
}

/// A producer or consumer of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    PipeOut,
    PipeIn,
    Verify,
}

/// Who a transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Source,
    Pipeline,
}

/// A transaction as the application knows it.
#[derive(Debug, Clone)]
struct AppTxn {
    owner: Owner,
    /// Source: the payloads sent in it.
    payloads: Vec<String>,
    /// Pipeline: the inputs acknowledged in it (topic, ledger, entry) with their payloads.
    inputs: Vec<(String, u64, u64, String)>,
    /// Commit (`Some(true)`), abort (`Some(false)`) asked; `None`: open or abandoned.
    asked: Option<bool>,
    /// The outcome the client reported (`Some(true)`: committed).
    outcome: Option<bool>,
    abandoned: bool,
}

#[derive(Debug)]
struct Slot {
    core: Client,
    timer: CoreTimer,
}

/// A run of the transaction simulation.
#[derive(Debug)]
struct TxnWorld {
    fab: Fabric<Ev>,
    clients: Vec<Slot>,
    base: Instant,
    rng: SimRng,
    src_client: usize,
    pipe_client: usize,
    verify_client: usize,
    src_producer: Option<ProducerId>,
    src_ready: bool,
    src_txns_left: u32,
    src_opening: Option<RequestId>,
    src_seq: u32,
    pipe_producer: Option<ProducerId>,
    pipe_consumer: Option<ConsumerId>,
    pipe_kind: SubscriptionType,
    /// The pipeline's transaction in progress: the batch it handles, and the transaction once
    /// open.
    pipe_batch: Vec<Message>,
    pipe_opening: Option<RequestId>,
    pipe_txn: Option<TxnId>,
    verify_consumer: Option<ConsumerId>,
    txn_timeout: (Duration, Duration),
    txns: BTreeMap<TxnId, AppTxn>,
    /// Ends in flight: (client, request) → (transaction, commit).
    ending: BTreeMap<(usize, RequestId), (TxnId, bool)>,
    /// What the verifier received: message (topic, id) → payload.
    verified: BTreeMap<String, String>,
    settled: bool,
    closing: bool,
    done: bool,
    steps: u64,
}

fn txn_label(t: TxnId) -> String {
    format!("{}.{}", t.most_bits, t.least_bits)
}

fn parse_txn(label: &str) -> Option<TxnId> {
    let (m, l) = label.split_once('.')?;
    Some(TxnId::new(m.parse().ok()?, l.parse().ok()?))
}

/// `S<txn>#<i>`: the source transaction of a source payload.
fn source_txn(payload: &str) -> Option<TxnId> {
    parse_txn(payload.strip_prefix('S')?.split('#').next()?)
}

/// `O<txn>:<source payload>`: the pipeline transaction and the input of an output payload.
fn output_parts(payload: &str) -> Option<(TxnId, &str)> {
    let (t, src) = payload.strip_prefix('O')?.split_once(':')?;
    Some((parse_txn(t)?, src))
}

impl TxnWorld {
    fn new(p: Params, echo: bool) -> TxnWorld {
        let mut root = SimRng::new(p.seed);
        let (mut fab, rng) = Fabric::<Ev>::new(p, &mut root, echo);
        // moves hit the physical topics and the coordinators
        let mut physical: Vec<TopicSpec> = Vec::new();
        for t in &fab.p.topics {
            for name in t.physical() {
                physical.push(TopicSpec {
                    name,
                    partitions: 0,
                });
            }
        }
        for tc in 0..fab.p.transaction_coordinators {
            physical.push(TopicSpec {
                name: format!("{TC_ASSIGN_TOPIC}-partition-{tc}"),
                partitions: 0,
            });
        }
        fab.p.topics = physical;
        let p = &fab.p;
        let base = Instant::now();
        let mut clients = Vec::new();
        for i in 0..p.clients {
            let mut cfg = ClientConfig::new(ModelCluster::service_url(p.brokers));
            cfg.seed = root.next_u64() ^ i as u64;
            configure_client(&mut cfg, p);
            cfg.unix_time_ms = 1_700_000_000_000;
            let core = match Client::new(cfg, base) {
                Ok(c) => c,
                Err(e) => panic!("client config rejected: {e}"),
            };
            clients.push(Slot {
                core,
                timer: CoreTimer::default(),
            });
        }
        let mut w = root.fork();
        let n = p.clients;
        let pipe_kind = match w.range(0, 2) {
            0 => SubscriptionType::Exclusive,
            1 => SubscriptionType::Failover,
            _ => SubscriptionType::Shared,
        };
        let lo = w.range(2_000, 6_000);
        TxnWorld {
            src_client: 0,
            pipe_client: w.index(n),
            verify_client: w.index(n),
            src_txns_left: w.range(6, 20) as u32,
            pipe_kind,
            txn_timeout: (
                Duration::from_millis(lo),
                Duration::from_millis(lo + w.range(0, 10_000)),
            ),
            fab,
            clients,
            base,
            rng,
            src_producer: None,
            src_ready: false,
            src_opening: None,
            src_seq: 0,
            pipe_producer: None,
            pipe_consumer: None,
            pipe_batch: Vec::new(),
            pipe_opening: None,
            pipe_txn: None,
            verify_consumer: None,
            txns: BTreeMap::new(),
            ending: BTreeMap::new(),
            verified: BTreeMap::new(),
            settled: false,
            closing: false,
            done: false,
            steps: 0,
        }
    }

    fn now(&self) -> Duration {
        self.fab.now()
    }

    fn at(&self) -> Instant {
        self.base + self.now()
    }

    fn log(&mut self, text: impl AsRef<str>) {
        self.fab.log(text);
    }

    fn violation(&mut self, text: String) {
        self.fab.violation(text);
    }

    fn run(mut self) -> RunResult {
        self.log(format!(
            "start transaction seed {}: pipeline {:?} on client {}, verifier on client {}, \
             {} source transactions, timeouts {:?}",
            self.fab.p.seed,
            self.pipe_kind,
            self.pipe_client,
            self.verify_client,
            self.src_txns_left,
            self.txn_timeout
        ));
        self.fab.sched.at(Duration::ZERO, Ev::Setup);
        self.fab.start_chaos();
        let mut same = 0u64;
        let mut last = Duration::ZERO;
        while let Some((now, ev)) = self.fab.sched.pop() {
            self.steps += 1;
            if now == last {
                same += 1;
                if same > 200_000 {
                    self.fab
                        .fatal(format!("livelock: {same} events at one instant"));
                }
            } else {
                same = 0;
                last = now;
            }
            if self.steps > MAX_STEPS {
                self.fab.fatal(format!("no progress: {MAX_STEPS} events"));
            }
            if self.fab.fatal {
                break;
            }
            self.handle(ev);
            if self.closing && self.clients.iter().all(|c| c.core.is_closed()) {
                self.done = true;
            }
            if self.fab.fatal || self.done {
                break;
            }
            if self.steps & 4095 == 0 {
                self.fab.net.collect_garbage();
            }
        }
        if !self.done && !self.fab.fatal {
            self.violation("the event queue ran dry before the run finished".into());
        }
        self.finish()
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Net(ev) => self.handle_net(ev),
            Ev::ClientTimer { client, generation } => self.on_timer(client, generation),
            Ev::Setup => self.setup(),
            Ev::Create(role) => self.create(role),
            Ev::SrcNext => self.src_next(),
            Ev::PipePoll => self.pipe_poll(),
            Ev::PipeOpen => self.pipe_open(),
            Ev::VerifyPoll => self.verify_poll(),
            Ev::RetryEnd { txn, commit } => self.end(txn, commit),
            Ev::Check => self.check(),
            Ev::CloseClients => self.done = true,
        }
    }

    // ---- the client cores (as world.rs drives them) ---------------------------------------------

    fn drain(&mut self, ci: usize) {
        let now = self.now();
        let mut n = 0u64;
        loop {
            let mut any = false;
            while let Some(io) = self.clients[ci].core.poll_io() {
                any = true;
                n += 1;
                self.on_io(ci, io);
            }
            while let Some(t) = self.clients[ci].core.poll_transmit() {
                any = true;
                n += 1;
                if let Some(id) = self.fab.net.find(ci, t.conn) {
                    let w = self.fab.net.write(now, id, Dir::ToBroker, t.data);
                    self.fab.schedule_wake(w);
                }
            }
            while let Some(ev) = self.clients[ci].core.poll_event() {
                any = true;
                n += 1;
                self.on_event(ci, ev);
            }
            if !any {
                break;
            }
            if n > MAX_DRAIN {
                self.fab
                    .fatal(format!("livelock: client {ci} keeps producing output"));
                return;
            }
        }
        let deadline = self.clients[ci]
            .core
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.base));
        if let Some((t, generation)) = self.clients[ci].timer.arm(deadline) {
            self.fab.sched.at(
                t,
                Ev::ClientTimer {
                    client: ci,
                    generation,
                },
            );
        }
    }

    fn on_timer(&mut self, ci: usize, generation: u64) {
        if !self.clients[ci].timer.fire(generation) {
            return;
        }
        let at = self.at();
        self.clients[ci].core.handle_timeout(at);
        self.drain(ci);
    }

    fn on_io(&mut self, ci: usize, io: IoRequest) {
        match io {
            IoRequest::Connect { conn, address } => {
                let id = self.fab.connect(ci, Some(conn), &address.host);
                self.log(format!(
                    "client {ci} connect {conn} to {} as {id}",
                    address.host
                ));
            }
            IoRequest::Close { conn } => {
                if let Some(id) = self.fab.net.find(ci, conn) {
                    let rst = self.fab.net.roll_rst_on_close();
                    self.fab.close_client_end(id, rst);
                }
            }
            other => self.violation(format!("unexpected I/O request {other:?}")),
        }
    }

    // ---- set-up -----------------------------------------------------------------------------------

    fn setup(&mut self) {
        for role in [Role::Source, Role::PipeOut, Role::PipeIn, Role::Verify] {
            self.create(role);
        }
        self.fab
            .sched
            .after(Duration::from_millis(200), Ev::PipePoll);
        self.fab
            .sched
            .after(Duration::from_millis(200), Ev::VerifyPoll);
    }

    /// Creates (again) the producer or consumer of `role`.
    fn create(&mut self, role: Role) {
        if self.closing {
            return;
        }
        let at = self.at();
        let ci = match role {
            Role::Source => self.src_client,
            Role::PipeOut | Role::PipeIn => self.pipe_client,
            Role::Verify => self.verify_client,
        };
        let core = &mut self.clients[ci].core;
        let created = match role {
            Role::Source => core
                .create_producer(at, IN, ProducerOptions::with_name("src"))
                .map(|h| self.src_producer = Some(h)),
            Role::PipeOut => core
                .create_producer(at, OUT, ProducerOptions::with_name("pipe-out"))
                .map(|h| self.pipe_producer = Some(h)),
            Role::PipeIn => {
                let opts = ConsumerOptions::new("pipe")
                    .with_type(self.pipe_kind)
                    .with_initial_position(InitialPosition::Earliest);
                core.subscribe(at, IN, opts)
                    .map(|h| self.pipe_consumer = Some(h))
            }
            Role::Verify => {
                let opts = ConsumerOptions::new("verify")
                    .with_type(SubscriptionType::Exclusive)
                    .with_initial_position(InitialPosition::Earliest);
                core.subscribe(at, OUT, opts)
                    .map(|h| self.verify_consumer = Some(h))
            }
        };
        if let Err(e) = created {
            self.violation(format!("creating {role:?} refused: {e}"));
        }
        self.drain(ci);
    }

    /// The role of a producer or consumer that failed or closed on client `ci`.
    fn role_of(
        &self,
        ci: usize,
        producer: Option<ProducerId>,
        consumer: Option<ConsumerId>,
    ) -> Option<Role> {
        if producer.is_some() && ci == self.src_client && producer == self.src_producer {
            Some(Role::Source)
        } else if producer.is_some() && ci == self.pipe_client && producer == self.pipe_producer {
            Some(Role::PipeOut)
        } else if consumer.is_some() && ci == self.pipe_client && consumer == self.pipe_consumer {
            Some(Role::PipeIn)
        } else if consumer.is_some() && ci == self.verify_client && consumer == self.verify_consumer
        {
            Some(Role::Verify)
        } else {
            None
        }
    }

    /// A producer or consumer is gone: created again a second later.
    fn gone(&mut self, role: Role) {
        match role {
            Role::Source => {
                self.src_producer = None;
                self.src_ready = false;
            }
            Role::PipeOut => self.pipe_producer = None,
            Role::PipeIn => {
                // its messages come again to the next consumer
                self.pipe_consumer = None;
                if self.pipe_opening.is_none() && self.pipe_txn.is_none() {
                    self.pipe_batch.clear();
                }
            }
            Role::Verify => self.verify_consumer = None,
        }
        self.fab
            .sched
            .after(Duration::from_secs(1), Ev::Create(role));
    }

    // ---- events -----------------------------------------------------------------------------------

    fn on_event(&mut self, ci: usize, ev: Event) {
        self.log(format!("client {ci} event {ev:?}"));
        match ev {
            Event::ProducerReady { producer, .. }
                if ci == self.src_client
                    && Some(producer) == self.src_producer
                    && !self.src_ready =>
            {
                self.src_ready = true;
                self.fab.sched.after(Duration::ZERO, Ev::SrcNext);
            }
            Event::ProducerFailed { producer, .. } | Event::ProducerClosed { producer, .. } => {
                if let Some(role) = self.role_of(ci, Some(producer), None) {
                    self.gone(role);
                }
            }
            Event::ConsumerFailed { consumer, .. } | Event::ConsumerClosed { consumer, .. } => {
                if let Some(role) = self.role_of(ci, None, Some(consumer)) {
                    self.gone(role);
                }
            }
            Event::TransactionOpened { request, result } => self.opened(ci, request, result),
            Event::TransactionEnded {
                request,
                txn,
                result,
            } => self.ended(ci, request, txn, result),
            _ => {}
        }
    }

    fn opened(&mut self, ci: usize, request: RequestId, result: Result<TxnId, pulsar_core::Error>) {
        let owner = if ci == self.src_client && self.src_opening == Some(request) {
            self.src_opening = None;
            Owner::Source
        } else if ci == self.pipe_client && self.pipe_opening == Some(request) {
            self.pipe_opening = None;
            Owner::Pipeline
        } else {
            return;
        };
        let txn = match result {
            Ok(t) => t,
            Err(e) => {
                self.log(format!("app: new transaction failed: {e}"));
                let retry = if owner == Owner::Source {
                    Ev::SrcNext
                } else {
                    Ev::PipeOpen
                };
                self.fab.sched.after(Duration::from_millis(500), retry);
                return;
            }
        };
        self.txns.insert(
            txn,
            AppTxn {
                owner,
                payloads: Vec::new(),
                inputs: Vec::new(),
                asked: None,
                outcome: None,
                abandoned: false,
            },
        );
        match owner {
            Owner::Source => self.src_fill(txn),
            Owner::Pipeline => self.pipe_fill(txn),
        }
    }

    /// What the application does with a transaction it filled: commit, abort or abandon.
    fn decide(&mut self, txn: TxnId, always_commit: bool) {
        let x = self.rng.next_f64();
        if always_commit || x < 0.75 {
            self.end(txn, true);
        } else if x < 0.9 {
            self.end(txn, false);
        } else {
            self.log(format!("app abandons transaction {}", txn_label(txn)));
            let owner = self.txns.get_mut(&txn).map(|t| {
                t.abandoned = true;
                t.owner
            });
            if owner == Some(Owner::Pipeline) {
                // the application crashed: it comes back with a new consumer
                if let Some(h) = self.pipe_consumer.take() {
                    let (ci, at) = (self.pipe_client, self.at());
                    if let Err(e) = self.clients[ci].core.close_consumer(at, h) {
                        self.log(format!("app: close_consumer refused: {e}"));
                    }
                    self.drain(ci);
                    self.fab
                        .sched
                        .after(Duration::from_millis(500), Ev::Create(Role::PipeIn));
                }
            }
            self.after_end(txn);
        }
    }

    fn end(&mut self, txn: TxnId, commit: bool) {
        let Some(t) = self.txns.get(&txn) else {
            return;
        };
        let ci = if t.owner == Owner::Source {
            self.src_client
        } else {
            self.pipe_client
        };
        if t.asked.is_none() && t.owner == Owner::Pipeline {
            // the acknowledgements are pending until the end: not in the cursor yet, unless
            // another committed transaction made them
            let inputs = t.inputs.clone();
            for (topic, l, e, payload) in inputs {
                if self.acked_in_cursor(&topic, l, e) && !self.acked_elsewhere(txn, &topic, l, e) {
                    self.violation(format!(
                        "transaction {} not ended yet, but its acknowledgement of {payload} is \
                         applied",
                        txn_label(txn)
                    ));
                }
            }
        }
        if let Some(t) = self.txns.get_mut(&txn) {
            t.asked = Some(commit);
        }
        let at = self.at();
        let r = if commit {
            self.clients[ci].core.commit_transaction(at, txn)
        } else {
            self.clients[ci].core.abort_transaction(at, txn)
        };
        match r {
            Ok(request) => {
                self.log(format!(
                    "app {} transaction {}",
                    if commit { "commits" } else { "aborts" },
                    txn_label(txn)
                ));
                self.ending.insert((ci, request), (txn, commit));
            }
            Err(e) => {
                self.log(format!("app: ending {} refused: {e}", txn_label(txn)));
                self.after_end(txn);
            }
        }
        self.drain(ci);
    }

    fn ended(
        &mut self,
        ci: usize,
        request: RequestId,
        txn: TxnId,
        result: Result<(), pulsar_core::Error>,
    ) {
        let Some((_, commit)) = self.ending.remove(&(ci, request)) else {
            return;
        };
        let status = self.status(txn);
        match &result {
            Ok(()) => {
                if let Some(t) = self.txns.get_mut(&txn) {
                    t.outcome = Some(commit);
                }
                let want = if commit {
                    TxnStatus::Committed
                } else {
                    TxnStatus::Aborted
                };
                if status != Some(want) {
                    self.violation(format!(
                        "transaction {} reported {want:?} but the coordinator has {status:?}",
                        txn_label(txn)
                    ));
                }
            }
            Err(e) if e.is_retriable() && !self.closing => {
                self.log(format!(
                    "app: ending {} failed ({e}); again",
                    txn_label(txn)
                ));
                self.fab
                    .sched
                    .after(Duration::from_millis(300), Ev::RetryEnd { txn, commit });
                return;
            }
            Err(e) => {
                self.log(format!("app: ending {} failed: {e}", txn_label(txn)));
                let pipeline = self.txns.get(&txn).map(|t| t.owner) == Some(Owner::Pipeline);
                // a commit turned into an abort: the client already asked for the inputs again
                let aborted = matches!(
                    e,
                    pulsar_core::Error::Transaction(pulsar_core::TxnError::OperationFailed(_))
                );
                if let (true, false, Some(h)) = (pipeline, aborted, self.pipe_consumer) {
                    // as an application does when a transaction failed: its inputs again
                    let (ci, at) = (self.pipe_client, self.at());
                    if let Err(e) = self.clients[ci].core.redeliver_unacknowledged(at, h) {
                        self.log(format!("app: redeliver refused: {e}"));
                    }
                    self.drain(ci);
                }
                if status == Some(TxnStatus::Committed) && !commit {
                    self.violation(format!(
                        "transaction {} failed to abort but the coordinator committed it",
                        txn_label(txn)
                    ));
                }
                if status == Some(TxnStatus::Committed) {
                    // a commit that failed (e.g. turned into an abort) must not have committed
                    self.violation(format!(
                        "the commit of {} failed ({e}) but the coordinator committed it",
                        txn_label(txn)
                    ));
                }
            }
        }
        self.check_acks(txn);
        self.after_end(txn);
    }

    /// Once the client reported how a pipeline transaction ended: its acknowledgements are in
    /// the cursor if the coordinator committed it, and not otherwise (unless another committed
    /// transaction made them).
    fn check_acks(&mut self, txn: TxnId) {
        let Some(t) = self.txns.get(&txn) else {
            return;
        };
        if t.owner != Owner::Pipeline {
            return;
        }
        let committed = self.status(txn) == Some(TxnStatus::Committed);
        for (topic, l, e, payload) in t.inputs.clone() {
            let acked = self.acked_in_cursor(&topic, l, e);
            if committed && !acked {
                self.violation(format!(
                    "transaction {} committed but its acknowledgement of {payload} is not applied",
                    txn_label(txn)
                ));
            }
            if !committed && acked && !self.acked_elsewhere(txn, &topic, l, e) {
                self.violation(format!(
                    "transaction {} did not commit but its acknowledgement of {payload} is applied",
                    txn_label(txn)
                ));
            }
        }
    }

    fn after_end(&mut self, txn: TxnId) {
        let owner = self.txns.get(&txn).map(|t| t.owner);
        match owner {
            Some(Owner::Source) => {
                let d = self
                    .rng
                    .duration(Duration::from_millis(10), Duration::from_millis(800));
                self.fab.sched.after(d, Ev::SrcNext);
            }
            Some(Owner::Pipeline) if self.pipe_txn == Some(txn) => {
                self.pipe_txn = None;
                self.pipe_batch.clear();
                self.fab
                    .sched
                    .after(Duration::from_millis(50), Ev::PipePoll);
            }
            _ => {}
        }
    }

    // ---- the source -------------------------------------------------------------------------------

    fn src_next(&mut self) {
        if self.closing || self.src_opening.is_some() || self.fab.healed {
            return;
        }
        if self.src_txns_left == 0 {
            return;
        }
        self.src_txns_left -= 1;
        self.open(self.src_client, Owner::Source);
    }

    fn open(&mut self, ci: usize, owner: Owner) {
        let (lo, hi) = self.txn_timeout;
        let timeout = self.rng.duration(lo, hi);
        let at = self.at();
        match self.clients[ci].core.new_transaction(at, timeout) {
            Ok(r) => match owner {
                Owner::Source => self.src_opening = Some(r),
                Owner::Pipeline => self.pipe_opening = Some(r),
            },
            Err(e) => self.violation(format!("new_transaction refused: {e}")),
        }
        self.drain(ci);
    }

    fn src_fill(&mut self, txn: TxnId) {
        let Some(h) = self.src_producer else {
            return;
        };
        let n = self.rng.range(1, 6);
        let at = self.at();
        let ci = self.src_client;
        for i in 0..n {
            self.src_seq += 1;
            let payload = format!("S{}#{i}", txn_label(txn));
            let msg = OutgoingMessage::new(payload.clone());
            match self.clients[ci].core.send_in_transaction(at, h, txn, msg) {
                Ok(_) => {
                    if let Some(t) = self.txns.get_mut(&txn) {
                        t.payloads.push(payload);
                    }
                }
                Err(e) => self.log(format!("app: source send refused: {}", e.error)),
            }
        }
        self.drain(ci);
        self.decide(txn, false);
    }

    // ---- the pipeline -----------------------------------------------------------------------------

    fn pipe_poll(&mut self) {
        if self.closing {
            return;
        }
        self.fab
            .sched
            .after(Duration::from_millis(200), Ev::PipePoll);
        if self.pipe_opening.is_some() || self.pipe_txn.is_some() || !self.pipe_batch.is_empty() {
            return;
        }
        let Some(h) = self.pipe_consumer else {
            return;
        };
        let ci = self.pipe_client;
        let want = self.rng.range(1, 6);
        for _ in 0..want {
            let at = self.at();
            let Some(msg) = self.clients[ci].core.receive(at, h) else {
                break;
            };
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            self.log(format!("app pipeline receives {text} id {}", msg.id));
            match source_txn(&text).map(|t| (t, self.status(t))) {
                Some((_, Some(TxnStatus::Committed))) => {}
                Some((t, s)) => self.violation(format!(
                    "the pipeline received {text} of transaction {} which is {s:?}",
                    txn_label(t)
                )),
                None => self.violation(format!("the pipeline received a stranger: {text}")),
            }
            self.pipe_batch.push(msg);
        }
        self.drain(ci);
        if !self.pipe_batch.is_empty() {
            self.pipe_open();
        }
    }

    fn pipe_open(&mut self) {
        if self.closing || self.pipe_batch.is_empty() || self.pipe_opening.is_some() {
            return;
        }
        self.open(self.pipe_client, Owner::Pipeline);
    }

    fn pipe_fill(&mut self, txn: TxnId) {
        let (Some(p), ci) = (self.pipe_producer, self.pipe_client) else {
            return;
        };
        self.pipe_txn = Some(txn);
        let batch = self.pipe_batch.clone();
        // a send or acknowledgement refused at once: the transaction must not commit
        let mut refused = false;
        for msg in &batch {
            let at = self.at();
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            let out = format!("O{}:{text}", txn_label(txn));
            if let Err(e) =
                self.clients[ci]
                    .core
                    .send_in_transaction(at, p, txn, OutgoingMessage::new(out))
            {
                self.log(format!("app: pipeline send refused: {}", e.error));
                refused = true;
            }
            match self.clients[ci]
                .core
                .ack_message_in_transaction(at, msg, false, txn)
            {
                Ok(_) => {
                    let input = (
                        msg.topic.to_string(),
                        msg.id.ledger_id,
                        msg.id.entry_id,
                        text,
                    );
                    if let Some(t) = self.txns.get_mut(&txn) {
                        t.inputs.push(input);
                    }
                }
                Err(e) => {
                    self.log(format!("app: pipeline ack refused: {e}"));
                    refused = true;
                }
            }
        }
        self.drain(ci);
        if refused {
            self.end(txn, false);
            return;
        }
        let healed = self.fab.healed;
        self.decide(txn, healed);
    }

    // ---- the verifier -----------------------------------------------------------------------------

    fn verify_poll(&mut self) {
        if self.closing {
            return;
        }
        self.fab
            .sched
            .after(Duration::from_millis(150), Ev::VerifyPoll);
        let Some(h) = self.verify_consumer else {
            return;
        };
        let ci = self.verify_client;
        loop {
            let at = self.at();
            let Some(msg) = self.clients[ci].core.receive(at, h) else {
                break;
            };
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            let key = format!("{} {}", msg.topic, msg.id);
            match output_parts(&text) {
                Some((t, src)) => {
                    let s = self.status(t);
                    if s != Some(TxnStatus::Committed) {
                        self.violation(format!(
                            "the verifier received {text} of pipeline transaction {} which is \
                             {s:?}",
                            txn_label(t)
                        ));
                    }
                    let st = source_txn(src).map(|t| self.status(t));
                    if st != Some(Some(TxnStatus::Committed)) {
                        self.violation(format!(
                            "the verifier received {text} whose input's transaction is {st:?}"
                        ));
                    }
                }
                None => self.violation(format!("the verifier received a stranger: {text}")),
            }
            self.verified.insert(key, text);
            let _ = self.clients[ci].core.ack(at, h, &msg.id);
        }
        self.drain(ci);
    }
}

impl ClientEnds for TxnWorld {
    type Ev = Ev;

    fn fabric(&mut self) -> &mut Fabric<Ev> {
        &mut self.fab
    }

    fn deliver(&mut self, _id: ConnId, client: usize, core: Option<ConnectionId>, what: ToClient) {
        let Some(core) = core else {
            return;
        };
        let at = self.at();
        let c = &mut self.clients[client].core;
        let r = match what {
            ToClient::Data(d) => c.handle_bytes(at, core, &d),
            ToClient::Connected => c.handle_connected(at, core),
            ToClient::Closed {
                connected: true, ..
            } => c.handle_closed(at, core),
            ToClient::Closed { .. } => c.handle_connect_failed(at, core, "connection reset".into()),
            ToClient::Refused => c.handle_connect_failed(at, core, "connection refused".into()),
        };
        if let Err(e) = r {
            self.violation(format!("client {client}: {e}"));
        }
        self.drain(client);
    }
}
