//! What both simulations run on below the client: the event queue, the simulated network, the
//! model cluster, the fault injector ([`faults`]), the trace and the run's violations and
//! counters. The core simulation (`world.rs`) and the async one (`async_world`) each hold one
//! [`Fabric`] and differ only in their client ends of the connections (the crate's `ClientEnds`).

pub mod faults;

use std::time::Duration;

use bytes::Bytes;
use pulsar_core::{ClientConfig, ConnectionId, TokenAuth};

use crate::sim::broker::{ClusterConfig, ConnId, ModelCluster, Output};
use crate::sim::net::{Dir, Network, Phase, Segment, Wake};
use crate::sim::params::Params;
use crate::sim::rng::SimRng;
use crate::sim::sched::Scheduler;
use crate::sim::trace::Trace;
use crate::sim::world::RunStats;

/// The token clients present when the run uses authentication.
pub const TOKEN: &str = "sim-token";
/// Most outputs one drain of the cluster may produce before it counts as a livelock.
const MAX_DRAIN: u64 = 100_000;
/// Trace lines kept for the failure report.
const TRACE_TAIL: usize = 400;

/// The scheduler events of the fabric.
#[derive(Debug)]
pub enum NetEv {
    /// The head of a pipe is due.
    Wake(Wake),
    /// A SYN reaches its broker.
    ConnectArrive(ConnId),
    /// A refusal reaches the client.
    ConnectRefused(ConnId),
    /// The cluster's deadline (stale when its generation moved on).
    ClusterTimer {
        /// Generation when scheduled.
        generation: u64,
    },
    /// The next injected fault.
    Fault,
    /// A partition ends.
    Unblock {
        /// Client.
        client: usize,
        /// Broker.
        broker: usize,
    },
    /// A crashed broker restarts.
    Restart(usize),
    /// The chaos phase ends.
    Heal,
}

/// A simulation's scheduler event: the fabric's ([`NetEv`]) or one of its own.
pub trait SimEvent: From<NetEv> {
    /// The event that checks whether the run settled (first scheduled a second after healing).
    fn settle_check() -> Self;
}

/// What reaches the client end of a connection that is still open.
#[derive(Debug)]
pub enum ToClient {
    /// Bytes from the broker.
    Data(Bytes),
    /// The connection was established.
    Connected,
    /// The broker's FIN or a reset arrived (`connected`: the connection had been established;
    /// `reset`: an RST, not a FIN).
    Closed {
        /// Whether the connection had been established.
        connected: bool,
        /// An RST rather than a FIN.
        reset: bool,
    },
    /// The connect was refused.
    Refused,
}

/// The client ends of a simulation's connections: how its clients take what the fabric
/// delivers. The provided methods are the network's event handling, shared by both simulations.
pub(crate) trait ClientEnds {
    /// The simulation's scheduler event.
    type Ev: SimEvent;

    /// The fabric of the run.
    fn fabric(&mut self) -> &mut Fabric<Self::Ev>;

    /// `what` reached link `id` of client `client` (`core`: the core's connection, in the core
    /// simulation).
    fn deliver(&mut self, id: ConnId, client: usize, core: Option<ConnectionId>, what: ToClient);

    /// Bytes of link `id` reached the broker end: room in the client's send buffer.
    fn sent(&mut self, id: ConnId) {
        let _ = id;
    }

    /// Handles one event of the fabric.
    fn handle_net(&mut self, ev: NetEv) {
        match ev {
            NetEv::Wake(w) => self.on_wake(w),
            NetEv::ConnectArrive(id) => self.fabric().on_connect_arrive(id),
            NetEv::ConnectRefused(id) => self.on_connect_refused(id),
            NetEv::ClusterTimer { generation } => self.fabric().on_cluster_timer(generation),
            NetEv::Fault => self.fabric().fault(),
            NetEv::Unblock { client, broker } => self.fabric().unblock(client, broker),
            NetEv::Restart(b) => self.fabric().restart(b),
            NetEv::Heal => self.fabric().heal(),
        }
    }

    /// The head of a pipe arrives at its end.
    fn on_wake(&mut self, w: Wake) {
        let f = self.fabric();
        let now = f.now();
        let (seg, next) = f.net.on_wake(now, w);
        f.schedule_wake(next);
        let Some(seg) = seg else {
            return;
        };
        let Some(link) = f.net.link(w.id) else {
            return;
        };
        let (client, core, client_open, broker_open, connected) = (
            link.client,
            link.core,
            link.client_open,
            link.broker_open,
            link.client_connected,
        );
        let tag = core.map(|c| format!(" ({c})")).unwrap_or_default();
        match (w.dir, seg) {
            (Dir::ToBroker, Segment::Data(d)) => {
                if broker_open {
                    f.cluster.on_bytes(now, w.id, &d);
                    f.drain_cluster();
                }
                self.sent(w.id);
            }
            (Dir::ToBroker, Segment::Accepted) => {}
            (Dir::ToBroker, Segment::Fin | Segment::Rst) => {
                if broker_open {
                    f.log(format!("{} end at broker", w.id));
                    f.cluster.on_closed(now, w.id);
                    if let Some(l) = f.net.link_mut(w.id) {
                        l.broker_open = false;
                    }
                    f.drain_cluster();
                }
                f.maybe_finish(w.id);
            }
            (Dir::ToClient, Segment::Data(d)) => {
                if client_open {
                    self.deliver(w.id, client, core, ToClient::Data(d));
                }
            }
            (Dir::ToClient, Segment::Accepted) => {
                if let Some(l) = f.net.link_mut(w.id) {
                    l.client_connected = true;
                }
                if client_open {
                    f.log(format!("{} connected for client {client}{tag}", w.id));
                    self.deliver(w.id, client, core, ToClient::Connected);
                }
            }
            (Dir::ToClient, seg @ (Segment::Fin | Segment::Rst)) => {
                if client_open {
                    f.log(format!("{} {:?} at client {client}{tag}", w.id, seg));
                    if let Some(l) = f.net.link_mut(w.id) {
                        l.client_open = false;
                    }
                    let reset = !matches!(seg, Segment::Fin);
                    self.deliver(w.id, client, core, ToClient::Closed { connected, reset });
                }
                self.fabric().maybe_finish(w.id);
            }
        }
    }

    /// A refusal reaches the client.
    fn on_connect_refused(&mut self, id: ConnId) {
        let f = self.fabric();
        let Some(l) = f.net.link(id) else {
            return;
        };
        let (client, core, client_open) = (l.client, l.core, l.client_open);
        f.net.finish(id);
        if !client_open {
            return;
        }
        let tag = core.map(|c| format!(" ({c})")).unwrap_or_default();
        f.log(format!("{id} connect failed for client {client}{tag}"));
        self.deliver(id, client, core, ToClient::Refused);
    }
}

/// See the [module documentation](self).
#[derive(Debug)]
pub struct Fabric<E> {
    /// The run's parameters.
    pub p: Params,
    /// The event queue (and the clock).
    pub sched: Scheduler<E>,
    /// The simulated network.
    pub net: Network,
    /// The model cluster.
    pub cluster: ModelCluster,
    trace: Trace,
    fault_rng: SimRng,
    cluster_timer: Option<Duration>,
    cluster_generation: u64,
    /// SYNs held by a partition, sent again when it ends.
    syn_waiting: Vec<ConnId>,
    /// The chaos phase ended.
    pub healed: bool,
    /// What went wrong.
    pub violations: Vec<String>,
    /// A violation that ends the run at once.
    pub fatal: bool,
    /// Counters.
    pub stats: RunStats,
}

impl<E: SimEvent> Fabric<E> {
    /// The fabric of `p`, nothing scheduled yet. Draws from `root`, in this order, the network's
    /// stream, the application's (returned), the faults' and the cluster's seed. `echo` prints
    /// every trace line.
    pub fn new(p: Params, root: &mut SimRng, echo: bool) -> (Fabric<E>, SimRng) {
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
        cc.transaction_coordinators = p.transaction_coordinators;
        let mut cluster = ModelCluster::new(cc);
        for t in &p.topics {
            if t.partitions > 0 {
                cluster.create_partitioned_topic(&t.name, t.partitions);
            }
        }
        let fabric = Fabric {
            sched: Scheduler::default(),
            net: Network::new(p.net.clone(), net_rng),
            cluster,
            trace: Trace::new(TRACE_TAIL, echo),
            fault_rng,
            cluster_timer: None,
            cluster_generation: 0,
            syn_waiting: Vec::new(),
            healed: false,
            violations: Vec::new(),
            fatal: false,
            stats: RunStats::default(),
            p,
        };
        (fabric, app_rng)
    }

    /// Simulated time.
    pub fn now(&self) -> Duration {
        self.sched.now()
    }

    /// A trace line.
    pub fn log(&mut self, text: impl AsRef<str>) {
        let now = self.now();
        self.trace.line(now, text);
    }

    /// A violation (also in the trace).
    pub fn violation(&mut self, text: String) {
        self.log(format!("VIOLATION {text}"));
        self.violations.push(text);
    }

    /// A violation that ends the run.
    pub fn fatal(&mut self, text: String) {
        self.violation(text);
        self.fatal = true;
    }

    /// The trace's hash, line count and last lines.
    pub fn trace_summary(&self) -> (u64, u64, Vec<String>) {
        (
            self.trace.hash(),
            self.trace.len(),
            self.trace.last(TRACE_TAIL),
        )
    }

    /// Schedules the arrival of a pipe's head.
    pub fn schedule_wake(&mut self, w: Option<Wake>) {
        if let Some(w) = w {
            self.sched.at(w.at, NetEv::Wake(w).into());
        }
    }

    /// Schedules the arrivals of several pipes' heads.
    pub fn schedule_wakes(&mut self, ws: Vec<Wake>) {
        for w in ws {
            self.sched.at(w.at, NetEv::Wake(w).into());
        }
    }

    /// Client `client` opens a link to the broker `host` names (`core`: the core's connection,
    /// in the core simulation) and sends its SYN.
    pub fn connect(&mut self, client: usize, core: Option<ConnectionId>, host: &str) -> ConnId {
        let broker = ModelCluster::broker_for_host(host);
        let id = self.net.open(client, core, broker);
        let d = self.net.latency();
        self.sched.after(d, NetEv::ConnectArrive(id).into());
        id
    }

    /// The client closes its end of `id` (already logged): a FIN, or a reset with `rst`.
    pub fn close_client_end(&mut self, id: ConnId, rst: bool) {
        let now = self.now();
        let (broker_open, open) = self
            .net
            .link(id)
            .map_or((false, false), |l| (l.broker_open, l.phase == Phase::Open));
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
        } else if open {
            self.net.finish(id);
        }
    }

    /// Finishes a link both ends of which are closed.
    pub fn maybe_finish(&mut self, id: ConnId) {
        if let Some(l) = self.net.link(id) {
            if !l.client_open && !l.broker_open && l.phase != Phase::Done {
                self.net.finish(id);
            }
        }
    }

    /// Hands everything the cluster has to send to the network, and re-arms its timer.
    pub fn drain_cluster(&mut self) {
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
                let generation = self.cluster_generation;
                self.sched.at(t, NetEv::ClusterTimer { generation }.into());
            }
            Some(_) => {}
            None => self.cluster_timer = None,
        }
    }

    fn on_cluster_timer(&mut self, generation: u64) {
        if generation == self.cluster_generation {
            self.cluster_timer = None;
            let now = self.now();
            self.cluster.tick(now);
            self.drain_cluster();
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
        self.sched.after(d, NetEv::ConnectRefused(id).into());
    }

    fn retry_syns(&mut self) {
        let waiting = std::mem::take(&mut self.syn_waiting);
        for id in waiting {
            self.sched
                .after(Duration::ZERO, NetEv::ConnectArrive(id).into());
        }
    }
}

/// Sets a client's configuration from the run's parameters, as both simulations start their
/// clients (the seed and the fixed clock are the caller's).
pub fn configure_client(cfg: &mut ClientConfig, p: &Params) {
    cfg.operation_timeout = p.client.operation_timeout;
    cfg.connection_timeout = p.client.connection_timeout;
    cfg.keep_alive_interval = p.client.keep_alive;
    cfg.backoff_initial = p.client.backoff_initial;
    cfg.backoff_max = p.client.backoff_max;
    if p.auth {
        cfg.auth = Some(Box::new(TokenAuth::new(TOKEN)));
    }
}
