//! One simulated run: the model cluster, the network, the client cores driven exactly as a runtime
//! adapter drives them, the workload, the fault injector and the checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_core::compression::CompressionType;
use pulsar_core::{
    BatchingOptions, Client, ClientConfig, ConsumerOptions, Event, InitialPosition, IoRequest,
    MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SeekTo, SubscriptionType,
    TokenAuth,
};

use crate::sim::app::{parse_payload, short, ConsumerModel, ProducerModel, SubRecord};
use crate::sim::broker::{ClusterConfig, ConnId, ModelCluster, MoveKind, Output};
use crate::sim::check::{all_messages, base_topic, check_log, unsettled};
use crate::sim::net::{Dir, Network, Phase, Segment, Wake};
use crate::sim::params::{Params, SubKind};
use crate::sim::rng::SimRng;
use crate::sim::sched::Scheduler;
use crate::sim::trace::Trace;

/// The token clients present when the run uses authentication.
const TOKEN: &str = "sim-token";
/// Most events one run may process.
const MAX_STEPS: u64 = 3_000_000;
/// Most events at one instant before the run counts as a livelock.
const MAX_SAME_INSTANT: u64 = 200_000;
/// Most outputs one drain may produce before it counts as a livelock.
const MAX_DRAIN: u64 = 100_000;

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Hash of the full event trace.
    pub trace_hash: u64,
    /// Trace lines.
    pub trace_lines: u64,
    /// What went wrong (empty: the run passed).
    pub violations: Vec<String>,
    /// The last lines of the trace.
    pub tail: Vec<String>,
    /// Events processed.
    pub steps: u64,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Counters.
    pub stats: RunStats,
}

/// What happened in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Sends acknowledged to the application.
    pub acked: u64,
    /// Sends failed to the application.
    pub failed: u64,
    /// Messages in the logs.
    pub persisted: u64,
    /// Messages handed to consumers.
    pub received: u64,
    /// Of those, messages larger than the brokers' maximum message size (they came in chunks).
    pub chunked: u64,
    /// Faults injected.
    pub faults: u64,
    /// Connections opened.
    pub connections: u64,
}

#[derive(Debug)]
enum Ev {
    Wake(Wake),
    ConnectArrive(ConnId),
    ConnectRefused(ConnId),
    ClientTimer {
        client: usize,
        generation: u64,
    },
    ClusterTimer {
        generation: u64,
    },
    CreateProducer(usize),
    Send(usize),
    CloseProducer(usize),
    Subscribe(usize),
    Poll(usize),
    Ack {
        consumer: usize,
        handle: pulsar_core::ConsumerId,
        id: MessageId,
        nack: bool,
    },
    Seek(usize),
    CloseConsumer(usize),
    EarlyCloseProducer(usize, pulsar_core::ProducerId),
    EarlyCloseConsumer(usize, pulsar_core::ConsumerId),
    Fault,
    Unblock {
        client: usize,
        broker: usize,
    },
    Restart(usize),
    Heal,
    Check,
    Limits,
    CloseClients,
}

#[derive(Debug)]
struct Slot {
    core: Client,
    timer: Option<Duration>,
    generation: u64,
    closed: bool,
}

/// A run in progress.
#[derive(Debug)]
pub struct World {
    p: Params,
    sched: Scheduler<Ev>,
    net: Network,
    cluster: ModelCluster,
    clients: Vec<Slot>,
    base: Instant,
    producers: Vec<ProducerModel>,
    consumers: Vec<ConsumerModel>,
    subs: BTreeMap<(String, String), SubRecord>,
    app_rng: SimRng,
    fault_rng: SimRng,
    /// Choices of workload features added later (a separate stream keeps older seeds stable).
    feature_rng: SimRng,
    trace: Trace,
    violations: Vec<String>,
    fatal: bool,
    healed: bool,
    settled: bool,
    closing_clients: bool,
    done: bool,
    cluster_timer: Option<Duration>,
    cluster_generation: u64,
    syn_waiting: Vec<ConnId>,
    steps: u64,
    stats: RunStats,
}

impl World {
    /// Builds the world of `p` (nothing runs yet). `echo` prints every trace line.
    pub fn new(p: Params, echo: bool) -> World {
        let mut root = SimRng::new(p.seed);
        let net_rng = root.fork();
        let app_rng = root.fork();
        let fault_rng = root.fork();
        let cluster_seed = root.next_u64();
        let mut cc = ClusterConfig::new(p.brokers, cluster_seed);
        cc.dedup = p.dedup;
        cc.auth_token = p.auth.then(|| TOKEN.to_owned());
        cc.keep_alive = p.broker_keep_alive;
        cc.persist_latency = p.persist_latency;
        cc.faults = p.broker_faults.clone();
        cc.trace_frames = true;
        cc.max_message_size = p.max_message_size;
        let mut cluster = ModelCluster::new(cc);
        for t in &p.topics {
            if t.partitions > 0 {
                cluster.create_partitioned_topic(&t.name, t.partitions);
            }
        }
        let base = Instant::now();
        let mut clients = Vec::new();
        for i in 0..p.clients {
            let mut cfg = ClientConfig::new(ModelCluster::service_url(p.brokers));
            cfg.seed = root.next_u64() ^ i as u64;
            cfg.operation_timeout = p.client.operation_timeout;
            cfg.connection_timeout = p.client.connection_timeout;
            cfg.keep_alive_interval = p.client.keep_alive;
            cfg.backoff_initial = p.client.backoff_initial;
            cfg.backoff_max = p.client.backoff_max;
            cfg.unix_time_ms = 1_700_000_000_000;
            if p.auth {
                cfg.auth = Some(Box::new(TokenAuth::new(TOKEN)));
            }
            let core = match Client::new(cfg, base) {
                Ok(c) => c,
                Err(e) => panic!("client config rejected: {e}"),
            };
            clients.push(Slot {
                core,
                timer: None,
                generation: 0,
                closed: false,
            });
        }
        let feature_rng = root.fork();
        let producers = p
            .producers
            .iter()
            .map(|s| {
                ProducerModel::new(
                    s.clone(),
                    p.topics[s.topic].name.clone(),
                    p.max_message_size as usize,
                )
            })
            .collect();
        let consumers: Vec<ConsumerModel> = p
            .consumers
            .iter()
            .map(|s| ConsumerModel::new(s.clone(), p.topics[s.topic].name.clone()))
            .collect();
        let mut subs: BTreeMap<(String, String), SubRecord> = BTreeMap::new();
        for c in &consumers {
            let r = subs
                .entry((c.topic.clone(), c.spec.subscription.clone()))
                .or_default();
            r.durable = c.spec.durable;
            r.members += 1;
            r.physical = p.topics[c.spec.topic].physical();
        }
        let net = Network::new(p.net.clone(), net_rng);
        World {
            sched: Scheduler::default(),
            net,
            cluster,
            clients,
            base,
            producers,
            consumers,
            subs,
            app_rng,
            fault_rng,
            feature_rng,
            trace: Trace::new(400, echo),
            violations: Vec::new(),
            fatal: false,
            healed: false,
            settled: false,
            closing_clients: false,
            done: false,
            cluster_timer: None,
            cluster_generation: 0,
            syn_waiting: Vec::new(),
            steps: 0,
            stats: RunStats::default(),
            p,
        }
    }

    fn now(&self) -> Duration {
        self.sched.now()
    }

    fn inst(&self, t: Duration) -> Instant {
        self.base + t
    }

    fn log(&mut self, text: impl AsRef<str>) {
        let now = self.now();
        self.trace.line(now, text);
    }

    fn violation(&mut self, text: String) {
        self.log(format!("VIOLATION {text}"));
        self.violations.push(text);
    }

    fn fatal(&mut self, text: String) {
        self.violation(text);
        self.fatal = true;
    }

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> RunResult {
        self.start();
        let mut last = Duration::ZERO;
        let mut same = 0u64;
        while let Some((now, ev)) = self.sched.pop() {
            self.steps += 1;
            if now == last {
                same += 1;
                if same > MAX_SAME_INSTANT {
                    self.fatal(format!("livelock: {same} events at one instant"));
                }
            } else {
                same = 0;
                last = now;
            }
            if self.steps > MAX_STEPS {
                self.fatal(format!("no progress: {MAX_STEPS} events without finishing"));
            }
            if self.fatal {
                break;
            }
            self.handle(ev);
            if self.closing_clients && self.clients.iter().all(|c| c.core.is_closed()) {
                self.log("every client closed");
                self.done = true;
            }
            if self.fatal || self.done {
                break;
            }
            if self.steps & 4095 == 0 {
                self.net.collect_garbage();
            }
        }
        if !self.done && !self.fatal {
            self.violation("the event queue ran dry before the run finished".into());
        }
        self.finish()
    }

    fn start(&mut self) {
        self.log(format!("start seed {}", self.p.seed));
        for i in 0..self.producers.len() {
            let d = self
                .app_rng
                .duration(Duration::ZERO, Duration::from_millis(500));
            self.sched.at(d, Ev::CreateProducer(i));
            if let Some(t) = self.producers[i].spec.recreate_at {
                self.sched.at(t, Ev::CloseProducer(i));
            }
        }
        for i in 0..self.consumers.len() {
            let d = self
                .app_rng
                .duration(Duration::ZERO, Duration::from_millis(500));
            self.sched.at(d, Ev::Subscribe(i));
            if let Some(t) = self.consumers[i].spec.recreate_at {
                self.sched.at(t, Ev::CloseConsumer(i));
            }
            if let Some(t) = self.consumers[i].spec.seek_at {
                self.sched.at(t, Ev::Seek(i));
            }
        }
        if self.p.has_faults() {
            self.schedule_fault();
        }
        self.sched.at(self.p.chaos, Ev::Heal);
        self.sched.at(Duration::from_millis(500), Ev::Limits);
    }

    // ---- event dispatch -------------------------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake(w) => self.on_wake(w),
            Ev::ConnectArrive(id) => self.on_connect_arrive(id),
            Ev::ConnectRefused(id) => self.on_connect_refused(id),
            Ev::ClientTimer { client, generation } => self.on_client_timer(client, generation),
            Ev::ClusterTimer { generation } => {
                if generation == self.cluster_generation {
                    self.cluster_timer = None;
                    let now = self.now();
                    self.cluster.tick(now);
                    self.drain_cluster();
                }
            }
            Ev::CreateProducer(i) => self.create_producer(i),
            Ev::Send(i) => self.send(i),
            Ev::CloseProducer(i) => self.close_producer(i),
            Ev::Subscribe(i) => self.subscribe(i),
            Ev::Poll(i) => self.poll(i),
            Ev::Ack {
                consumer,
                handle,
                id,
                nack,
            } => self.ack(consumer, handle, id, nack),
            Ev::Seek(i) => self.seek(i),
            Ev::CloseConsumer(i) => self.close_consumer(i),
            Ev::EarlyCloseProducer(i, h) => {
                if self.producers[i].handle == Some(h) {
                    self.close_producer(i);
                }
            }
            Ev::EarlyCloseConsumer(i, h) => {
                if self.consumers[i].handle == Some(h) {
                    self.close_consumer(i);
                }
            }
            Ev::Fault => self.fault(),
            Ev::Unblock { client, broker } => {
                if !self.healed {
                    self.log(format!("partition c{client}-b{broker} heals"));
                    let wakes = self.net.unblock(client, broker);
                    self.schedule_wakes(wakes);
                    self.retry_syns();
                }
            }
            Ev::Restart(b) => {
                let now = self.now();
                self.cluster.restart(now, b);
                self.drain_cluster();
            }
            Ev::Heal => self.heal(),
            Ev::Check => self.check(),
            Ev::Limits => self.check_limits(),
            Ev::CloseClients => self.check_closed(),
        }
    }

    // ---- network and cluster ----------------------------------------------------------------------

    fn schedule_wake(&mut self, w: Option<Wake>) {
        if let Some(w) = w {
            self.sched.at(w.at, Ev::Wake(w));
        }
    }

    fn schedule_wakes(&mut self, ws: Vec<Wake>) {
        for w in ws {
            self.sched.at(w.at, Ev::Wake(w));
        }
    }

    fn on_wake(&mut self, w: Wake) {
        let now = self.now();
        let (seg, next) = self.net.on_wake(now, w);
        self.schedule_wake(next);
        let Some(seg) = seg else {
            return;
        };
        let Some(link) = self.net.link(w.id) else {
            return;
        };
        let Some(core) = link.core else {
            return;
        };
        let (client, core, client_open, broker_open, connected) = (
            link.client,
            core,
            link.client_open,
            link.broker_open,
            link.client_connected,
        );
        match (w.dir, seg) {
            (Dir::ToBroker, Segment::Data(d)) => {
                if broker_open {
                    self.cluster.on_bytes(now, w.id, &d);
                    self.drain_cluster();
                }
            }
            (Dir::ToBroker, Segment::Accepted) => {}
            (Dir::ToBroker, Segment::Fin | Segment::Rst) => {
                if broker_open {
                    self.log(format!("{} end at broker", w.id));
                    self.cluster.on_closed(now, w.id);
                    if let Some(l) = self.net.link_mut(w.id) {
                        l.broker_open = false;
                    }
                    self.drain_cluster();
                }
                self.maybe_finish(w.id);
            }
            (Dir::ToClient, Segment::Data(d)) => {
                if client_open {
                    let at = self.inst(now);
                    let r = self.clients[client].core.handle_bytes(at, core, &d);
                    if let Err(e) = r {
                        self.violation(format!("handle_bytes({core}) refused: {e}"));
                    }
                    self.drain_client(client);
                }
            }
            (Dir::ToClient, Segment::Accepted) => {
                if let Some(l) = self.net.link_mut(w.id) {
                    l.client_connected = true;
                }
                if client_open {
                    self.log(format!("{} connected for client {client} ({core})", w.id));
                    let at = self.inst(now);
                    let r = self.clients[client].core.handle_connected(at, core);
                    if let Err(e) = r {
                        self.violation(format!("handle_connected({core}) refused: {e}"));
                    }
                    self.drain_client(client);
                }
            }
            (Dir::ToClient, seg @ (Segment::Fin | Segment::Rst)) => {
                if client_open {
                    self.log(format!("{} {:?} at client {client} ({core})", w.id, seg));
                    if let Some(l) = self.net.link_mut(w.id) {
                        l.client_open = false;
                    }
                    let at = self.inst(now);
                    let r = if connected {
                        self.clients[client].core.handle_closed(at, core)
                    } else {
                        self.clients[client].core.handle_connect_failed(
                            at,
                            core,
                            "connection reset".into(),
                        )
                    };
                    if let Err(e) = r {
                        self.violation(format!("closing {core} refused: {e}"));
                    }
                    self.drain_client(client);
                }
                self.maybe_finish(w.id);
            }
        }
    }

    fn maybe_finish(&mut self, id: ConnId) {
        if let Some(l) = self.net.link(id) {
            if !l.client_open && !l.broker_open && l.phase != Phase::Done {
                self.net.finish(id);
            }
        }
    }

    fn drain_cluster(&mut self) {
        let now = self.now();
        let mut n = 0u64;
        while let Some(o) = self.cluster.poll_transmit() {
            n += 1;
            if n > MAX_DRAIN {
                self.fatal("livelock: the cluster keeps producing output".into());
                return;
            }
            match o {
                Output::Data { conn, data } => {
                    let w = self.net.write(now, conn, Dir::ToClient, data);
                    self.schedule_wake(w);
                }
                Output::Close { conn } => {
                    if let Some(l) = self.net.link_mut(conn) {
                        l.broker_open = false;
                    }
                    self.net.discard(conn, Dir::ToBroker);
                    let w = self.net.fin(now, conn, Dir::ToClient);
                    self.schedule_wake(w);
                }
            }
        }
        while let Some(note) = self.cluster.poll_note() {
            self.trace.line(now, format!("  {note}"));
        }
        match self.cluster.poll_timeout() {
            Some(t) if self.cluster_timer != Some(t) => {
                self.cluster_generation += 1;
                self.cluster_timer = Some(t);
                let g = self.cluster_generation;
                self.sched.at(t, Ev::ClusterTimer { generation: g });
            }
            Some(_) => {}
            None => self.cluster_timer = None,
        }
    }

    fn on_connect_arrive(&mut self, id: ConnId) {
        let now = self.now();
        let Some(l) = self.net.link(id) else {
            return;
        };
        if !l.client_open {
            self.net.finish(id);
            return;
        }
        let (client, broker) = (l.client, l.broker);
        let Some(b) = broker else {
            self.refuse_connect(id);
            return;
        };
        if self.net.is_blocked(client, b) {
            self.log(format!("{id} SYN lost in partition c{client}-b{b}"));
            self.syn_waiting.push(id);
            return;
        }
        if self.net.roll_refuse() {
            self.log(format!("{id} connect refused (injected)"));
            self.refuse_connect(id);
            return;
        }
        match self.cluster.accept(now, id, b) {
            Ok(()) => {
                self.stats.connections += 1;
                let w = self.net.accept(now, id);
                self.schedule_wake(w);
            }
            Err(e) => {
                self.log(format!("{id} connect refused: {e}"));
                self.refuse_connect(id);
            }
        }
    }

    fn refuse_connect(&mut self, id: ConnId) {
        let d = self.net.latency();
        self.sched.after(d, Ev::ConnectRefused(id));
    }

    fn on_connect_refused(&mut self, id: ConnId) {
        let now = self.now();
        let Some(l) = self.net.link(id) else {
            return;
        };
        let Some(core) = l.core else {
            return;
        };
        let (client, client_open) = (l.client, l.client_open);
        self.net.finish(id);
        if !client_open {
            return;
        }
        self.log(format!("{id} connect failed for client {client} ({core})"));
        let at = self.inst(now);
        let r =
            self.clients[client]
                .core
                .handle_connect_failed(at, core, "connection refused".into());
        if let Err(e) = r {
            self.violation(format!("handle_connect_failed({core}) refused: {e}"));
        }
        self.drain_client(client);
    }

    fn retry_syns(&mut self) {
        let waiting = std::mem::take(&mut self.syn_waiting);
        for id in waiting {
            self.sched.after(Duration::ZERO, Ev::ConnectArrive(id));
        }
    }

    // ---- the client cores -------------------------------------------------------------------------

    /// Drains every output of a client core, reacting to events (which may issue commands), then
    /// re-arms its timer: what a runtime adapter does after every input.
    fn drain_client(&mut self, ci: usize) {
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
                match self.net.find(ci, t.conn) {
                    Some(id) => {
                        let w = self.net.write(now, id, Dir::ToBroker, t.data);
                        self.schedule_wake(w);
                    }
                    None => self.violation(format!(
                        "client {ci} transmits on {} which it never opened or already closed",
                        t.conn
                    )),
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
                self.fatal(format!("livelock: client {ci} keeps producing output"));
                return;
            }
        }
        self.arm_client_timer(ci);
    }

    fn arm_client_timer(&mut self, ci: usize) {
        let deadline = self.clients[ci]
            .core
            .poll_timeout()
            .map(|t| t.saturating_duration_since(self.base));
        let slot = &mut self.clients[ci];
        match deadline {
            Some(t) if slot.timer != Some(t) => {
                slot.generation += 1;
                slot.timer = Some(t);
                let generation = slot.generation;
                self.sched.at(
                    t,
                    Ev::ClientTimer {
                        client: ci,
                        generation,
                    },
                );
            }
            Some(_) => {}
            None => slot.timer = None,
        }
    }

    fn on_client_timer(&mut self, ci: usize, generation: u64) {
        if self.clients[ci].generation != generation {
            return;
        }
        self.clients[ci].timer = None;
        let now = self.now();
        let at = self.inst(now);
        self.clients[ci].core.handle_timeout(at);
        self.drain_client(ci);
        if let Some(next) = self.clients[ci].core.poll_timeout() {
            if next <= at {
                self.fatal(format!(
                    "timer hygiene: after handle_timeout({:?}) client {ci} asks for {:?} again",
                    now,
                    next.saturating_duration_since(self.base)
                ));
            }
        }
    }

    fn on_io(&mut self, ci: usize, io: IoRequest) {
        let now = self.now();
        match io {
            IoRequest::Connect { conn, address } => {
                let broker = ModelCluster::broker_for_host(&address.host);
                let id = self.net.open(ci, Some(conn), broker);
                self.log(format!(
                    "client {ci} connect {conn} to {}:{} as {id}",
                    address.host, address.port
                ));
                let d = self.net.latency();
                self.sched.after(d, Ev::ConnectArrive(id));
            }
            IoRequest::Close { conn } => {
                let Some(id) = self.net.find(ci, conn) else {
                    self.violation(format!("client {ci} closes {conn} which is not open"));
                    return;
                };
                let rst = self.net.roll_rst_on_close();
                self.log(format!(
                    "client {ci} closes {conn} ({id}){}",
                    if rst { " with RST" } else { "" }
                ));
                let broker_open = self.net.link(id).is_some_and(|l| l.broker_open);
                if let Some(l) = self.net.link_mut(id) {
                    l.client_open = false;
                }
                self.net.discard(id, Dir::ToClient);
                if broker_open {
                    if rst {
                        let ws = self.net.reset(now, id);
                        self.schedule_wakes(ws);
                    } else {
                        let w = self.net.fin(now, id, Dir::ToBroker);
                        self.schedule_wake(w);
                    }
                } else if self.net.link(id).is_some_and(|l| l.phase == Phase::Open) {
                    self.net.finish(id);
                }
            }
            other => self.violation(format!("unexpected I/O request {other:?}")),
        }
    }

    fn on_event(&mut self, ci: usize, ev: Event) {
        self.log(format!("client {ci} event {}", short_event(&ev)));
        match ev {
            Event::ProducerReady { producer, .. } | Event::ProducerReconnected { producer } => {
                let _ = producer;
            }
            Event::ProducerFailed { producer, .. } | Event::ProducerClosed { producer, .. } => {
                if let Some(i) = self.producer_by_handle(ci, producer) {
                    let m = &mut self.producers[i];
                    m.handle = None;
                    m.creating = false;
                    let planned = std::mem::take(&mut m.closing);
                    let unfinished: Vec<String> = m
                        .sends
                        .iter()
                        .filter(|s| s.handle == producer && s.result.is_none())
                        .map(|s| short(&s.payload))
                        .collect();
                    if !unfinished.is_empty() {
                        self.violation(format!(
                            "producer {producer} ended with sends never completed: {unfinished:?}"
                        ));
                    }
                    let delay = if planned {
                        self.app_rng
                            .duration(Duration::ZERO, Duration::from_millis(2000))
                    } else {
                        Duration::from_millis(1000)
                    };
                    self.sched.after(delay, Ev::CreateProducer(i));
                }
            }
            Event::SendCompleted {
                producer,
                send,
                result,
            } => {
                let Some(i) = self
                    .producers
                    .iter()
                    .position(|m| m.spec.client == ci && m.owns(send))
                else {
                    self.violation(format!("completion of unknown send {send}"));
                    return;
                };
                let partitioned = self.p.topics[self.producers[i].spec.topic].partitions > 0;
                let index = self.producers[i].index_of(send);
                // order holds per partition, and per key with key-based batching
                let partition = result.as_ref().ok().map(|id| id.partition);
                let domain = self.producers[i].domain_of(index, partition, partitioned);
                let r = result.map_err(|e| e.to_string());
                if r.is_ok() {
                    self.stats.acked += 1;
                } else {
                    self.stats.failed += 1;
                }
                if let Err(v) = self.producers[i].complete(producer, send, r, domain.as_deref()) {
                    self.violation(v);
                }
            }
            Event::ConsumerReconnecting { consumer, .. } => {
                if let Some(i) = self.consumer_by_handle(ci, consumer) {
                    self.consumers[i].allow_rewind();
                    self.consumers[i].last_loss = Some(self.now());
                }
            }
            Event::ConsumerFailed { consumer, .. } | Event::ConsumerClosed { consumer, .. } => {
                if let Some(i) = self.consumer_by_handle(ci, consumer) {
                    let m = &mut self.consumers[i];
                    m.handle = None;
                    m.subscribing = false;
                    let planned = std::mem::take(&mut m.closing);
                    let delay = if planned {
                        self.app_rng
                            .duration(Duration::ZERO, Duration::from_millis(2000))
                    } else {
                        Duration::from_millis(1000)
                    };
                    self.sched.after(delay, Ev::Subscribe(i));
                }
            }
            Event::MessagesAvailable { consumer } => {
                if let Some(i) = self.consumer_by_handle(ci, consumer) {
                    if !self.consumers[i].poll_scheduled {
                        self.consumers[i].poll_scheduled = true;
                        let (lo, hi) = self.consumers[i].spec.poll_interval;
                        let d = self.app_rng.duration(lo, hi);
                        self.sched.after(d, Ev::Poll(i));
                    }
                }
            }
            _ => {}
        }
    }

    fn producer_by_handle(&self, ci: usize, h: pulsar_core::ProducerId) -> Option<usize> {
        self.producers
            .iter()
            .position(|m| m.spec.client == ci && m.handle == Some(h))
    }

    fn consumer_by_handle(&self, ci: usize, h: pulsar_core::ConsumerId) -> Option<usize> {
        self.consumers
            .iter()
            .position(|m| m.spec.client == ci && m.handle == Some(h))
    }

    // ---- the workload -----------------------------------------------------------------------------

    fn create_producer(&mut self, i: usize) {
        if self.closing_clients || self.producers[i].handle.is_some() {
            return;
        }
        let now = self.now();
        let m = &self.producers[i];
        let ci = m.spec.client;
        let mut opts = match &m.spec.name {
            Some(n) => ProducerOptions::with_name(n.clone()),
            None => ProducerOptions::default(),
        };
        opts.max_pending_messages = m.spec.max_pending;
        if let Some(b) = m.spec.batching {
            let mut batching =
                BatchingOptions::enabled().with_limits(b.max_messages, 128 * 1024, b.max_delay);
            batching.key_based = b.key_based;
            opts.batching = batching;
        }
        if m.spec.compression != 0 {
            if let Ok(c) = CompressionType::from_protocol(m.spec.compression) {
                opts.compression = c;
            }
        }
        if let Some(t) = m.spec.send_timeout {
            opts.send_timeout = t;
        }
        opts.chunking = m.spec.chunking;
        let topic = m.topic.clone();
        let first = m.sends.is_empty() && !m.creating && m.next_index == 0;
        let early = (first && !m.recreated)
            .then_some(m.spec.early_close)
            .flatten();
        let at = self.inst(now);
        match self.clients[ci].core.create_producer(at, &topic, opts) {
            Ok(h) => {
                self.log(format!("app {} creates {h}", self.producers[i].spec.label));
                let m = &mut self.producers[i];
                m.handle = Some(h);
                m.creating = true;
                if first {
                    let (lo, hi) = m.spec.interval;
                    let d = self.app_rng.duration(lo, hi);
                    self.sched.after(d, Ev::Send(i));
                }
                if let Some(d) = early {
                    self.sched.after(d, Ev::EarlyCloseProducer(i, h));
                }
            }
            Err(e) => {
                self.log(format!("app create_producer failed: {e}"));
                self.sched
                    .after(Duration::from_secs(1), Ev::CreateProducer(i));
            }
        }
        self.drain_client(ci);
    }

    fn send(&mut self, i: usize) {
        if self.closing_clients {
            return;
        }
        let m = &self.producers[i];
        if m.next_index >= m.spec.messages {
            return;
        }
        let (lo, hi) = m.spec.interval;
        let Some(h) = m.handle else {
            self.sched.after(Duration::from_millis(100), Ev::Send(i));
            return;
        };
        let ci = m.spec.client;
        let body = m.payload_of(m.next_index);
        let shown = short(&body);
        let mut message = OutgoingMessage::new(body);
        if m.spec.keyed {
            message = message.with_key(format!("k{}", m.next_index % 5));
        }
        let now = self.now();
        let at = self.inst(now);
        match self.clients[ci].core.send(at, h, message) {
            Ok(s) => {
                self.log(format!("app send {shown} on {h} as {s}"));
                self.producers[i].record_send(h, s, now);
                let d = self.app_rng.duration(lo, hi);
                self.sched.after(d, Ev::Send(i));
            }
            Err(e) => {
                self.log(format!("app send {shown} on {h} rejected: {e}"));
                self.sched.after(Duration::from_millis(50), Ev::Send(i));
            }
        }
        self.drain_client(ci);
    }

    fn close_producer(&mut self, i: usize) {
        if self.healed || self.closing_clients {
            return;
        }
        let Some(h) = self.producers[i].handle else {
            return;
        };
        if self.producers[i].closing {
            return;
        }
        let ci = self.producers[i].spec.client;
        let at = self.inst(self.now());
        self.log(format!("app closes {h} (to re-create it)"));
        self.producers[i].closing = true;
        self.producers[i].recreated = true;
        if let Err(e) = self.clients[ci].core.close_producer(at, h) {
            self.violation(format!("close_producer({h}) refused: {e}"));
        }
        self.drain_client(ci);
    }

    fn subscribe(&mut self, i: usize) {
        if self.closing_clients || self.consumers[i].handle.is_some() {
            return;
        }
        let m = &self.consumers[i];
        let ci = m.spec.client;
        let kind = match m.spec.kind {
            SubKind::Exclusive => SubscriptionType::Exclusive,
            SubKind::Shared => SubscriptionType::Shared,
            SubKind::Failover => SubscriptionType::Failover,
            SubKind::KeyShared => SubscriptionType::KeyShared,
        };
        let mut opts = ConsumerOptions::new(m.spec.subscription.clone())
            .with_type(kind)
            .with_initial_position(InitialPosition::Earliest);
        opts.receiver_queue_size = m.spec.queue_size;
        opts.consumer_name = Some(m.spec.label.clone());
        opts.durable = m.spec.durable;
        opts.batch_index_ack = m.spec.acks.batch_index_ack;
        opts.ack_receipts = m.spec.acks.receipts;
        opts.ack_timeout = m.spec.acks.ack_timeout;
        opts.negative_ack_delay = Duration::from_millis(300);
        let reader = m.spec.reader.then(|| {
            let mut r = ReaderOptions::new(MessageId::EARLIEST);
            r.receiver_queue_size = m.spec.queue_size;
            r.reader_name = Some(m.spec.label.clone());
            r.subscription_name = Some(m.spec.subscription.clone());
            r
        });
        let early = (!m.recreated && !m.closing && m.received == 0 && !m.subscribing)
            .then_some(m.spec.early_close)
            .flatten();
        let topic = m.topic.clone();
        let at = self.inst(self.now());
        let created = match reader {
            Some(r) => self.clients[ci].core.create_reader(at, &topic, r),
            None => self.clients[ci].core.subscribe(at, &topic, opts),
        };
        match created {
            Ok(h) => {
                self.log(format!(
                    "app {} subscribes as {h}",
                    self.consumers[i].spec.label
                ));
                let m = &mut self.consumers[i];
                m.handle = Some(h);
                m.subscribing = true;
                m.last_loss = None;
                m.allow_rewind();
                if let Some(d) = early {
                    self.sched.after(d, Ev::EarlyCloseConsumer(i, h));
                }
            }
            Err(e) => {
                self.log(format!("app subscribe failed: {e}"));
                self.sched.after(Duration::from_secs(1), Ev::Subscribe(i));
            }
        }
        self.drain_client(ci);
    }

    fn poll(&mut self, i: usize) {
        self.consumers[i].poll_scheduled = false;
        let Some(h) = self.consumers[i].handle else {
            return;
        };
        let ci = self.consumers[i].spec.client;
        let batch = self.consumers[i].spec.receive_batch;
        let members = self
            .subs
            .get(&(
                self.consumers[i].topic.clone(),
                self.consumers[i].spec.subscription.clone(),
            ))
            .map_or(1, |s| s.members);
        let partitioned = self.p.topics[self.consumers[i].spec.topic].partitions > 0;
        let acks = self.consumers[i].spec.acks;
        let ordered = self.consumers[i].checks_order(members)
            && !partitioned
            && acks.nack_rate == 0.0
            && acks.ack_timeout.is_none();
        let mut got = 0;
        while got < batch {
            let at = self.inst(self.now());
            let Some(msg) = self.clients[ci].core.receive(at, h) else {
                break;
            };
            got += 1;
            self.stats.received += 1;
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            if msg.payload.len() > self.p.max_message_size as usize {
                self.stats.chunked += 1;
            }
            self.log(format!(
                "app {} receives {} id {} redeliveries {}",
                self.consumers[i].spec.label,
                short(&text),
                msg.id,
                msg.redelivery_count
            ));
            let key = (
                self.consumers[i].topic.clone(),
                self.consumers[i].spec.subscription.clone(),
            );
            if let Some(r) = self.subs.get_mut(&key) {
                r.received.insert(text.clone());
            }
            let sent = parse_payload(&msg.payload).and_then(|(label, index)| {
                self.producers
                    .iter()
                    .find(|p| p.spec.label == label)
                    .map(|p| p.payload_of(index))
            });
            if sent.as_deref() != Some(text.as_str()) {
                // a chunked message must come back whole and byte-identical
                self.violation(format!(
                    "received a payload the workload never sent: {:?} ({} bytes)",
                    short(&text),
                    text.len()
                ));
            }
            let pos = (msg.id.ledger_id, msg.id.entry_id, msg.id.batch_index);
            if msg.redelivery_count == 0 && !partitioned {
                let dispatched = self.cluster.first_dispatch(
                    &msg.topic,
                    &key.1,
                    msg.id.ledger_id,
                    msg.id.entry_id,
                );
                if let (Some(d), Some(lost)) = (dispatched, self.consumers[i].last_loss) {
                    if d < lost {
                        self.violation(format!(
                            "{} received {text} ({}) dispatched at {d:?} on a connection it lost at \
                             {lost:?}: a stale message survived the resubscription",
                            self.consumers[i].spec.label, msg.id
                        ));
                    }
                }
            }
            if let Err(v) = self.consumers[i].on_message(&short(&text), pos, ordered) {
                self.violation(v);
            }
            if base_topic(&msg.topic) != self.consumers[i].topic {
                self.violation(format!(
                    "{} received {text} from {} which it did not subscribe to",
                    self.consumers[i].spec.label, msg.topic
                ));
            }
            let (lo, hi) = self.consumers[i].spec.ack_delay;
            let d = self.app_rng.duration(lo, hi);
            if !self.consumers[i].spec.reader {
                let nack = msg.redelivery_count == 0
                    && acks.nack_rate > 0.0
                    && self.feature_rng.chance(acks.nack_rate);
                self.sched.after(
                    d,
                    Ev::Ack {
                        consumer: i,
                        handle: h,
                        id: msg.id,
                        nack,
                    },
                );
            }
        }
        if got == batch {
            self.consumers[i].poll_scheduled = true;
            let (lo, hi) = self.consumers[i].spec.poll_interval;
            let d = self.app_rng.duration(lo, hi);
            self.sched.after(d, Ev::Poll(i));
        }
        self.drain_client(ci);
    }

    fn ack(&mut self, i: usize, h: pulsar_core::ConsumerId, id: MessageId, nack: bool) {
        if self.consumers[i].handle != Some(h) {
            return;
        }
        let ci = self.consumers[i].spec.client;
        let at = self.inst(self.now());
        let core = &mut self.clients[ci].core;
        let r = if nack {
            core.negative_ack(at, h, &id).map(|_| ())
        } else if self.consumers[i].spec.acks.cumulative {
            core.ack_cumulative(at, h, &id).map(|_| ())
        } else {
            core.ack(at, h, &id).map(|_| ())
        };
        if let Err(e) = r {
            self.log(format!("app ack {id} on {h} (nack {nack}) refused: {e}"));
        }
        self.drain_client(ci);
    }

    fn seek(&mut self, i: usize) {
        if self.healed || self.closing_clients {
            return;
        }
        let Some(h) = self.consumers[i].handle else {
            return;
        };
        let ci = self.consumers[i].spec.client;
        let at = self.inst(self.now());
        self.log(format!("app seeks {h} to the earliest message"));
        self.consumers[i].allow_rewind();
        match self.clients[ci]
            .core
            .seek(at, h, SeekTo::Id(MessageId::EARLIEST))
        {
            Ok(r) => self.log(format!("app seek request {r}")),
            Err(e) => self.log(format!("app seek refused: {e}")),
        }
        self.drain_client(ci);
    }

    fn close_consumer(&mut self, i: usize) {
        if self.healed || self.closing_clients {
            return;
        }
        let Some(h) = self.consumers[i].handle else {
            return;
        };
        if self.consumers[i].closing {
            return;
        }
        let ci = self.consumers[i].spec.client;
        let at = self.inst(self.now());
        self.log(format!("app closes {h} (to subscribe again)"));
        self.consumers[i].closing = true;
        self.consumers[i].recreated = true;
        if let Err(e) = self.clients[ci].core.close_consumer(at, h) {
            self.violation(format!("close_consumer({h}) refused: {e}"));
        }
        self.drain_client(ci);
    }

    // ---- faults -----------------------------------------------------------------------------------

    fn schedule_fault(&mut self) {
        let total = {
            let f = &self.p.faults;
            f.reset + f.half_open + f.clog + f.partition + f.crash + f.move_topic
        };
        if total <= 0.0 {
            return;
        }
        let mean = 60.0 / total;
        let d = Duration::from_secs_f64(self.fault_rng.next_f64() * 2.0 * mean);
        self.sched.after(d, Ev::Fault);
    }

    fn fault(&mut self) {
        if self.healed {
            return;
        }
        self.schedule_fault();
        let f = self.p.faults.clone();
        let weights = [
            f.reset,
            f.half_open,
            f.clog,
            f.partition,
            f.crash,
            f.move_topic,
        ];
        let total: f64 = weights.iter().sum();
        let mut x = self.fault_rng.next_f64() * total;
        let mut kind = 0;
        for (k, w) in weights.iter().enumerate() {
            if x < *w {
                kind = k;
                break;
            }
            x -= w;
        }
        let now = self.now();
        let open: Vec<ConnId> = self
            .net
            .live()
            .into_iter()
            .filter(|id| self.net.link(*id).is_some_and(|l| l.phase == Phase::Open))
            .collect();
        self.stats.faults += 1;
        match kind {
            0 => {
                if let Some(&id) = self.fault_rng.pick(&open) {
                    self.log(format!("FAULT reset {id}"));
                    let ws = self.net.reset(now, id);
                    self.schedule_wakes(ws);
                }
            }
            1 => {
                let cands: Vec<ConnId> = open
                    .iter()
                    .copied()
                    .filter(|id| {
                        self.net
                            .link(*id)
                            .is_some_and(|l| l.broker_open && l.client_open)
                    })
                    .collect();
                if let Some(&id) = self.fault_rng.pick(&cands) {
                    self.log(format!("FAULT half-open {id}"));
                    self.cluster.on_closed(now, id);
                    self.net.half_open(id);
                    self.drain_cluster();
                }
            }
            2 => {
                if let Some(&id) = self.fault_rng.pick(&open) {
                    let dir = if self.fault_rng.chance(0.5) {
                        Dir::ToBroker
                    } else {
                        Dir::ToClient
                    };
                    let d = self
                        .fault_rng
                        .duration(Duration::from_millis(200), Duration::from_secs(6));
                    self.log(format!("FAULT clog {id} {dir:?} for {d:?}"));
                    self.net.clog(id, dir, now + d);
                }
            }
            3 => {
                let client = self.fault_rng.index(self.p.clients);
                let broker = self.fault_rng.index(self.p.brokers);
                let d = self
                    .fault_rng
                    .duration(Duration::from_secs(1), Duration::from_secs(12));
                self.log(format!("FAULT partition c{client}-b{broker} for {d:?}"));
                self.net.block(client, broker);
                self.sched.after(d, Ev::Unblock { client, broker });
            }
            4 => {
                let up: Vec<usize> = (0..self.p.brokers)
                    .filter(|b| self.cluster.is_up(*b))
                    .collect();
                if let Some(&b) = self.fault_rng.pick(&up) {
                    let d = self
                        .fault_rng
                        .duration(Duration::from_millis(500), Duration::from_secs(8));
                    self.log(format!("FAULT crash b{b} for {d:?}"));
                    let conns = self.cluster.crash(now, b);
                    for id in conns {
                        if let Some(l) = self.net.link_mut(id) {
                            l.broker_open = false;
                        }
                        if self.fault_rng.chance(0.5) {
                            let ws = self.net.reset(now, id);
                            self.schedule_wakes(ws);
                        } else {
                            self.log(format!("  {id} left half-open by the crash"));
                            self.net.half_open(id);
                        }
                    }
                    self.drain_cluster();
                    self.sched.after(d, Ev::Restart(b));
                }
            }
            _ => {
                let topics: Vec<String> = self.p.topics.iter().map(|t| t.name.clone()).collect();
                let up: Vec<usize> = (0..self.p.brokers)
                    .filter(|b| self.cluster.is_up(*b))
                    .collect();
                if let (Some(t), Some(&b)) = (
                    self.fault_rng.pick(&topics).cloned(),
                    self.fault_rng.pick(&up),
                ) {
                    let how = match self.fault_rng.range(0, 2) {
                        0 => MoveKind::Close,
                        1 => MoveKind::CloseWithUrl,
                        _ => MoveKind::Migrated,
                    };
                    self.log(format!("FAULT move {t} to b{b} ({how:?})"));
                    self.cluster.move_topic(now, &t, b, how);
                    self.drain_cluster();
                }
            }
        }
    }

    fn heal(&mut self) {
        self.healed = true;
        self.log("HEAL: partitions and clogs end, brokers restart, no more faults");
        let now = self.now();
        let ws = self.net.heal();
        self.schedule_wakes(ws);
        for b in 0..self.p.brokers {
            self.cluster.restart(now, b);
        }
        self.cluster.set_faults_enabled(false);
        self.drain_cluster();
        self.retry_syns();
        self.sched.after(Duration::from_secs(1), Ev::Check);
    }

    /// Queues within their configured limits: a producer's pending messages within
    /// `max_pending_messages`, a consumer's receiver queue within its size (plus one batch).
    fn check_limits(&mut self) {
        if self.closing_clients {
            return;
        }
        let mut found = Vec::new();
        for (ci, slot) in self.clients.iter().enumerate() {
            let stats = slot.core.stats();
            for ps in &stats.producers {
                let Some(m) = self
                    .producers
                    .iter()
                    .find(|m| m.spec.client == ci && m.handle == Some(ps.id))
                else {
                    continue;
                };
                let limit = if m.spec.max_pending == 0 {
                    1000
                } else {
                    m.spec.max_pending
                };
                if ps.pending_messages > limit {
                    found.push(format!(
                        "{} holds {} pending messages, above max_pending_messages {limit}",
                        m.spec.label, ps.pending_messages
                    ));
                }
            }
            for cs in &stats.consumers {
                let Some(m) = self
                    .consumers
                    .iter()
                    .find(|m| m.spec.client == ci && m.handle == Some(cs.id))
                else {
                    continue;
                };
                if self.p.topics[m.spec.topic].partitions > 0 {
                    continue;
                }
                // a batch may overshoot the permits by its size minus one (10 messages at most)
                let limit = m.spec.queue_size.max(1) as usize + 9;
                if cs.queued_messages > limit {
                    found.push(format!(
                        "{} queues {} messages, above its receiver queue of {} (+ one batch)",
                        m.spec.label, cs.queued_messages, m.spec.queue_size
                    ));
                }
            }
        }
        for v in found {
            self.violation(v);
        }
        self.sched.after(Duration::from_millis(500), Ev::Limits);
    }

    // ---- settling and the end ---------------------------------------------------------------------

    fn missing(&self) -> Vec<String> {
        unsettled(&self.producers, &self.subs, &self.cluster)
    }

    fn check(&mut self) {
        if self.settled {
            return;
        }
        let missing = self.missing();
        let now = self.now();
        if missing.is_empty() {
            self.log("settled: every send finished, every subscription caught up");
            self.settled = true;
            self.begin_close();
            return;
        }
        if now >= self.p.chaos + self.p.settle_bound {
            for m in missing {
                self.violation(format!(
                    "not settled {:?} after healing: {m}",
                    self.p.settle_bound
                ));
            }
            self.settled = true;
            self.begin_close();
            return;
        }
        self.sched.after(Duration::from_secs(1), Ev::Check);
    }

    fn begin_close(&mut self) {
        self.closing_clients = true;
        let at = self.inst(self.now());
        for ci in 0..self.clients.len() {
            self.clients[ci].core.close(at);
            self.drain_client(ci);
        }
        let bound = self.p.client.operation_timeout + Duration::from_secs(5);
        self.sched.after(bound, Ev::CloseClients);
    }

    fn check_closed(&mut self) {
        for ci in 0..self.clients.len() {
            if !self.clients[ci].core.is_closed() && !self.clients[ci].closed {
                self.clients[ci].closed = true;
                self.violation(format!(
                    "client {ci} did not finish closing within the operation timeout"
                ));
            }
        }
        self.done = true;
    }

    fn finish(mut self) -> RunResult {
        if !self.fatal {
            let v = check_log(self.cluster.store(), self.p.dedup, &self.producers);
            for x in v {
                self.violation(x);
            }
        }
        self.stats.persisted = all_messages(self.cluster.store())
            .map(|m| m.values().map(|v| v.len() as u64).sum())
            .unwrap_or(0);
        let now = self.now();
        self.trace.line(
            now,
            format!(
                "end: {} violations, stats {:?}",
                self.violations.len(),
                self.stats
            ),
        );
        RunResult {
            trace_hash: self.trace.hash(),
            trace_lines: self.trace.len(),
            violations: self.violations,
            tail: self.trace.last(400),
            steps: self.steps,
            sim_time: now,
            stats: self.stats,
        }
    }
}

/// A compact rendering of a core event for the trace.
fn short_event(ev: &Event) -> String {
    match ev {
        Event::SendCompleted {
            producer,
            send,
            result,
        } => match result {
            Ok(id) => format!("SendCompleted {producer} {send} ok {id}"),
            Err(e) => format!("SendCompleted {producer} {send} err {e}"),
        },
        other => format!("{other:?}"),
    }
}
