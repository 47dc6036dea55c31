//! One simulated run: the model cluster, the network, the client cores driven exactly as a runtime
//! adapter drives them, the workload, the fault injector and the checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_core::compression::CompressionType;
use pulsar_core::{
    BatchingOptions, Client, ClientConfig, ConnectionId, ConsumerOptions, Event, InitialPosition,
    IoRequest, MessageId, OutgoingMessage, ProducerOptions, ReaderOptions, SchemaInfo, SeekTo,
    SubscriptionType,
};

use crate::sim::app::{short, ConsumerModel, ProducerModel, SubRecord};
use crate::sim::broker::{ConnId, ModelCluster};
use crate::sim::check::{all_messages, check_log, unsettled};
use crate::sim::fabric::{configure_client, ClientEnds, Fabric, NetEv, SimEvent, ToClient};
use crate::sim::net::Dir;
use crate::sim::params::{ConsumerSchema, Params, SubKind};
use crate::sim::records::{queue_limit_violations, received_violations, Records};
use crate::sim::rng::SimRng;
use crate::sim::sched::CoreTimer;

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

/// What the scheduler holds.
#[derive(Debug)]
pub(crate) enum Ev {
    Net(NetEv),
    ClientTimer {
        client: usize,
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
    Check,
    Limits,
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

#[derive(Debug)]
struct Slot {
    core: Client,
    timer: CoreTimer,
    closed: bool,
}

/// A run in progress.
#[derive(Debug)]
pub struct World {
    fab: Fabric<Ev>,
    clients: Vec<Slot>,
    base: Instant,
    producers: Vec<ProducerModel>,
    consumers: Vec<ConsumerModel>,
    subs: BTreeMap<(String, String), SubRecord>,
    app_rng: SimRng,
    /// Choices of workload features added later (a separate stream keeps older seeds stable).
    feature_rng: SimRng,
    settled: bool,
    closing_clients: bool,
    done: bool,
    steps: u64,
}

impl World {
    /// Builds the world of `p` (nothing runs yet). `echo` prints every trace line.
    pub fn new(p: Params, echo: bool) -> World {
        let mut root = SimRng::new(p.seed);
        let (fab, app_rng) = Fabric::new(p, &mut root, echo);
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
                closed: false,
            });
        }
        let feature_rng = root.fork();
        let Records {
            producers,
            consumers,
            subs,
        } = Records::new(p);
        World {
            fab,
            clients,
            base,
            producers,
            consumers,
            subs,
            app_rng,
            feature_rng,
            settled: false,
            closing_clients: false,
            done: false,
            steps: 0,
        }
    }

    fn now(&self) -> Duration {
        self.fab.now()
    }

    fn inst(&self, t: Duration) -> Instant {
        self.base + t
    }

    fn log(&mut self, text: impl AsRef<str>) {
        self.fab.log(text);
    }

    fn violation(&mut self, text: String) {
        self.fab.violation(text);
    }

    fn fatal(&mut self, text: String) {
        self.fab.fatal(text);
    }

    /// Runs to the end and checks everything.
    pub fn run(mut self) -> RunResult {
        self.start();
        let mut last = Duration::ZERO;
        let mut same = 0u64;
        while let Some((now, ev)) = self.fab.sched.pop() {
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
            if self.fab.fatal {
                break;
            }
            self.handle(ev);
            if self.closing_clients && self.clients.iter().all(|c| c.core.is_closed()) {
                self.log("every client closed");
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

    fn start(&mut self) {
        self.log(format!("start seed {}", self.fab.p.seed));
        for i in 0..self.producers.len() {
            let d = self
                .app_rng
                .duration(Duration::ZERO, Duration::from_millis(500));
            self.fab.sched.at(d, Ev::CreateProducer(i));
            if let Some(t) = self.producers[i].spec.recreate_at {
                self.fab.sched.at(t, Ev::CloseProducer(i));
            }
        }
        for i in 0..self.consumers.len() {
            let d = self
                .app_rng
                .duration(Duration::ZERO, Duration::from_millis(500));
            self.fab.sched.at(d, Ev::Subscribe(i));
            if let Some(t) = self.consumers[i].spec.recreate_at {
                self.fab.sched.at(t, Ev::CloseConsumer(i));
            }
            if let Some(t) = self.consumers[i].spec.seek_at {
                self.fab.sched.at(t, Ev::Seek(i));
            }
        }
        self.fab.start_chaos();
        self.fab.sched.at(Duration::from_millis(500), Ev::Limits);
    }

    // ---- event dispatch -------------------------------------------------------------------------

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Net(ev) => self.handle_net(ev),
            Ev::ClientTimer { client, generation } => self.on_client_timer(client, generation),
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
            Ev::Check => self.check(),
            Ev::Limits => self.check_limits(),
            Ev::CloseClients => self.check_closed(),
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
                match self.fab.net.find(ci, t.conn) {
                    Some(id) => {
                        let w = self.fab.net.write(now, id, Dir::ToBroker, t.data);
                        self.fab.schedule_wake(w);
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

    fn on_client_timer(&mut self, ci: usize, generation: u64) {
        if !self.clients[ci].timer.fire(generation) {
            return;
        }
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
        match io {
            IoRequest::Connect { conn, address } => {
                let id = self.fab.connect(ci, Some(conn), &address.host);
                self.log(format!(
                    "client {ci} connect {conn} to {}:{} as {id}",
                    address.host, address.port
                ));
            }
            IoRequest::Close { conn } => {
                let Some(id) = self.fab.net.find(ci, conn) else {
                    self.violation(format!("client {ci} closes {conn} which is not open"));
                    return;
                };
                let rst = self.fab.net.roll_rst_on_close();
                self.log(format!(
                    "client {ci} closes {conn} ({id}){}",
                    if rst { " with RST" } else { "" }
                ));
                self.fab.close_client_end(id, rst);
            }
            other => self.violation(format!("unexpected I/O request {other:?}")),
        }
    }

    fn on_event(&mut self, ci: usize, ev: Event) {
        self.log(format!("client {ci} event {}", short_event(&ev)));
        if let Event::ProducerFailed {
            error: pulsar_core::Error::IncompatibleSchema { message },
            ..
        }
        | Event::ConsumerFailed {
            error: pulsar_core::Error::IncompatibleSchema { message },
            ..
        } = &ev
        {
            // every producer declares STRING or nothing, every consumer STRING, AUTO_CONSUME or
            // nothing: the registry has no reason to refuse
            self.violation(format!("client {ci}: schema refused: {message}"));
        }
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
                    self.fab.sched.after(delay, Ev::CreateProducer(i));
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
                let partitioned = self.fab.p.topics[self.producers[i].spec.topic].partitions > 0;
                let index = self.producers[i].index_of(send);
                // order holds per partition, and per key with key-based batching
                let partition = result.as_ref().ok().map(|id| id.partition);
                let domain = self.producers[i].domain_of(index, partition, partitioned);
                let r = result.map_err(|e| e.to_string());
                if r.is_ok() {
                    self.fab.stats.acked += 1;
                } else {
                    self.fab.stats.failed += 1;
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
                    self.fab.sched.after(delay, Ev::Subscribe(i));
                }
            }
            Event::MessagesAvailable { consumer } => {
                if let Some(i) = self.consumer_by_handle(ci, consumer) {
                    if !self.consumers[i].poll_scheduled {
                        self.consumers[i].poll_scheduled = true;
                        let (lo, hi) = self.consumers[i].spec.poll_interval;
                        let d = self.app_rng.duration(lo, hi);
                        self.fab.sched.after(d, Ev::Poll(i));
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
        if m.spec.schema {
            opts.schema = Some(SchemaInfo::string());
        }
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
                    self.fab.sched.after(d, Ev::Send(i));
                }
                if let Some(d) = early {
                    self.fab.sched.after(d, Ev::EarlyCloseProducer(i, h));
                }
            }
            Err(e) => {
                self.log(format!("app create_producer failed: {e}"));
                self.fab
                    .sched
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
            self.fab
                .sched
                .after(Duration::from_millis(100), Ev::Send(i));
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
                self.fab.sched.after(d, Ev::Send(i));
            }
            Err(e) => {
                self.log(format!("app send {shown} on {h} rejected: {e}"));
                self.fab.sched.after(Duration::from_millis(50), Ev::Send(i));
            }
        }
        self.drain_client(ci);
    }

    fn close_producer(&mut self, i: usize) {
        if self.fab.healed || self.closing_clients {
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
        let schema = m.spec.schema.map(|s| match s {
            ConsumerSchema::String => SchemaInfo::string(),
            ConsumerSchema::AutoConsume => SchemaInfo::auto_consume(),
        });
        opts.schema = schema.clone();
        let reader = m.spec.reader.then(|| {
            let mut r = ReaderOptions::new(MessageId::EARLIEST);
            r.schema = schema;
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
                    self.fab.sched.after(d, Ev::EarlyCloseConsumer(i, h));
                }
            }
            Err(e) => {
                self.log(format!("app subscribe failed: {e}"));
                self.fab
                    .sched
                    .after(Duration::from_secs(1), Ev::Subscribe(i));
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
        let partitioned = self.fab.p.topics[self.consumers[i].spec.topic].partitions > 0;
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
            self.fab.stats.received += 1;
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            if msg.payload.len() > self.fab.p.max_message_size as usize {
                self.fab.stats.chunked += 1;
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
            if let Some(v) = self.schema_version_violation(&text, msg.schema_version.as_ref()) {
                self.violation(format!("app {}: {v}", self.consumers[i].spec.label));
            }
            let found = received_violations(
                &self.fab.cluster,
                &self.producers,
                &mut self.consumers[i],
                &msg,
                &text,
                msg.redelivery_count == 0 && !partitioned,
                ordered,
            );
            for v in found {
                self.violation(v);
            }
            let (lo, hi) = self.consumers[i].spec.ack_delay;
            let d = self.app_rng.duration(lo, hi);
            if !self.consumers[i].spec.reader {
                let nack = msg.redelivery_count == 0
                    && acks.nack_rate > 0.0
                    && self.feature_rng.chance(acks.nack_rate);
                self.fab.sched.after(
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
            self.fab.sched.after(d, Ev::Poll(i));
        }
        self.drain_client(ci);
    }

    /// A message (`label#index`) of a producer that declared a schema carries a schema version, a
    /// message of one that did not carries none.
    fn schema_version_violation(
        &self,
        text: &str,
        version: Option<&bytes::Bytes>,
    ) -> Option<String> {
        let label = text.split('#').next()?;
        let p = self.producers.iter().find(|p| p.spec.label == label)?;
        match (p.spec.schema, version) {
            (true, None) => Some(format!(
                "{} from a STRING producer has no schema version",
                short(text)
            )),
            (false, Some(v)) => Some(format!(
                "{} from a bytes producer has schema version {v:?}",
                short(text)
            )),
            _ => None,
        }
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
        if self.fab.healed || self.closing_clients {
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
        if self.fab.healed || self.closing_clients {
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

    /// Queues within their configured limits: a producer's pending messages within
    /// `max_pending_messages`, a consumer's receiver queue within its size (plus one batch).
    fn check_limits(&mut self) {
        if self.closing_clients {
            return;
        }
        let mut found = Vec::new();
        for (ci, slot) in self.clients.iter().enumerate() {
            let stats = slot.core.stats();
            found.extend(queue_limit_violations(
                &self.fab.p,
                ci,
                &stats,
                &self.producers,
                &self.consumers,
            ));
        }
        for v in found {
            self.violation(v);
        }
        self.fab.sched.after(Duration::from_millis(500), Ev::Limits);
    }

    // ---- settling and the end ---------------------------------------------------------------------

    fn missing(&self) -> Vec<String> {
        unsettled(&self.producers, &self.subs, &self.fab.cluster)
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
        if now >= self.fab.p.chaos + self.fab.p.settle_bound {
            for m in missing {
                self.violation(format!(
                    "not settled {:?} after healing: {m}",
                    self.fab.p.settle_bound
                ));
            }
            self.settled = true;
            self.begin_close();
            return;
        }
        self.fab.sched.after(Duration::from_secs(1), Ev::Check);
    }

    fn begin_close(&mut self) {
        self.closing_clients = true;
        let at = self.inst(self.now());
        for ci in 0..self.clients.len() {
            self.clients[ci].core.close(at);
            self.drain_client(ci);
        }
        let bound = self.fab.p.client.operation_timeout + Duration::from_secs(5);
        self.fab.sched.after(bound, Ev::CloseClients);
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
        if !self.fab.fatal {
            let v = check_log(self.fab.cluster.store(), self.fab.p.dedup, &self.producers);
            for x in v {
                self.violation(x);
            }
        }
        self.fab.stats.persisted = all_messages(self.fab.cluster.store())
            .map(|m| m.values().map(|v| v.len() as u64).sum())
            .unwrap_or(0);
        let text = format!(
            "end: {} violations, stats {:?}",
            self.fab.violations.len(),
            self.fab.stats
        );
        self.log(text);
        let (trace_hash, trace_lines, tail) = self.fab.trace_summary();
        let sim_time = self.fab.now();
        RunResult {
            trace_hash,
            trace_lines,
            violations: self.fab.violations,
            tail,
            steps: self.steps,
            sim_time,
            stats: self.fab.stats,
        }
    }
}

impl ClientEnds for World {
    type Ev = Ev;

    fn fabric(&mut self) -> &mut Fabric<Ev> {
        &mut self.fab
    }

    /// Hands what reached a connection to its client core, then drains the core.
    fn deliver(&mut self, _id: ConnId, client: usize, core: Option<ConnectionId>, what: ToClient) {
        let Some(core) = core else {
            return;
        };
        let at = self.inst(self.now());
        let c = &mut self.clients[client].core;
        let refused = |call: &str, e: pulsar_core::UsageError| format!("{call} refused: {e}");
        let r = match what {
            ToClient::Data(d) => c
                .handle_bytes(at, core, &d)
                .map_err(|e| refused(&format!("handle_bytes({core})"), e)),
            ToClient::Connected => c
                .handle_connected(at, core)
                .map_err(|e| refused(&format!("handle_connected({core})"), e)),
            ToClient::Closed { connected, .. } => if connected {
                c.handle_closed(at, core)
            } else {
                c.handle_connect_failed(at, core, "connection reset".into())
            }
            .map_err(|e| refused(&format!("closing {core}"), e)),
            ToClient::Refused => c
                .handle_connect_failed(at, core, "connection refused".into())
                .map_err(|e| refused(&format!("handle_connect_failed({core})"), e)),
        };
        if let Err(v) = r {
            self.violation(v);
        }
        self.drain_client(client);
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
