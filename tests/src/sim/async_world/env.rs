//! The environment of an async run: the scheduler, the network, the model cluster, the client
//! ends of the connections, the timers, the trace and the application's records, behind one
//! lock that only the simulation thread takes (briefly, never while calling the client).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::sim::async_world::models::Models;
use crate::sim::async_world::params::AsyncParams;
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

/// What the scheduler holds.
#[derive(Debug)]
pub enum Ev {
    /// The head of a pipe is due.
    Wake(Wake),
    /// A SYN reaches its broker.
    ConnectArrive(ConnId),
    /// A refusal reaches the client.
    ConnectRefused(ConnId),
    /// A timer's deadline (stale when its generation moved on).
    Timer {
        /// The timer.
        id: u64,
        /// Its generation when scheduled.
        generation: u64,
    },
    /// The cluster's deadline.
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
    /// Is everything settled?
    Check,
    /// The bound on the clients' close.
    CloseBound,
}

/// Where the client end of a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SockState {
    Connecting,
    Open,
    /// The connect failed (refused, or reset before it was established).
    Refused(&'static str),
    /// The broker closed gracefully (everything before the FIN is still readable).
    PeerClosed,
    /// The connection was reset.
    Reset,
}

/// The client end of one connection.
#[derive(Debug)]
struct Socket {
    client: usize,
    state: SockState,
    inbox: VecDeque<Bytes>,
    connect_waker: Option<Waker>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl Socket {
    fn wake_all(&mut self) {
        for w in [
            self.connect_waker.take(),
            self.read_waker.take(),
            self.write_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }
}

/// One timer of the runtime (the drivers' and the application's sleeps).
#[derive(Debug)]
struct TimerSlot {
    deadline: Duration,
    generation: u64,
    /// The deadline of the scheduler entry of the current generation, if one is pending.
    scheduled: Option<Duration>,
    waker: Option<Waker>,
}

/// See the [module documentation](self).
#[derive(Debug)]
pub struct Env {
    /// The run's parameters.
    pub p: Params,
    /// What the async layer adds to them.
    pub ap: AsyncParams,
    /// The event queue (and the clock).
    pub sched: Scheduler<Ev>,
    pub(crate) net: Network,
    /// The model cluster.
    pub cluster: ModelCluster,
    base: Instant,
    trace: Trace,
    sockets: BTreeMap<ConnId, Socket>,
    timers: BTreeMap<u64, TimerSlot>,
    next_timer: u64,
    pub(crate) fault_rng: SimRng,
    cluster_timer: Option<Duration>,
    cluster_generation: u64,
    pub(crate) syn_waiting: Vec<ConnId>,
    /// The chaos phase ended.
    pub healed: bool,
    /// What went wrong.
    pub violations: Vec<String>,
    /// A violation that ends the run at once.
    pub fatal: bool,
    /// Counters.
    pub stats: RunStats,
    /// The application's records.
    pub app: Models,
}

impl Env {
    /// The environment of `p` (nothing scheduled yet).
    pub fn new(p: Params, ap: AsyncParams, echo: bool) -> Env {
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
        let app = Models::new(&p, app_rng, SimRng::new(p.seed ^ 0xA5C0_0000_0000_0003));
        Env {
            ap,
            sched: Scheduler::default(),
            net: Network::new(p.net.clone(), net_rng),
            cluster,
            base: Instant::now(),
            trace: Trace::new(400, echo),
            sockets: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            fault_rng,
            cluster_timer: None,
            cluster_generation: 0,
            syn_waiting: Vec::new(),
            healed: false,
            violations: Vec::new(),
            fatal: false,
            stats: RunStats::default(),
            app,
            p,
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Duration {
        self.sched.now()
    }

    /// Simulated time as the client sees it.
    pub fn now_instant(&self) -> Instant {
        self.base + self.sched.now()
    }

    /// Simulated time of a client's `Instant`.
    pub fn since_base(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
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
        (self.trace.hash(), self.trace.len(), self.trace.last(400))
    }

    /// Handles one scheduler event of the network, the cluster, the timers or the faults.
    /// (`Check` and `CloseBound` belong to the run loop.)
    pub fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Wake(w) => self.on_wake(w),
            Ev::ConnectArrive(id) => self.on_connect_arrive(id),
            Ev::ConnectRefused(id) => self.on_connect_refused(id),
            Ev::Timer { id, generation } => self.on_timer(id, generation),
            Ev::ClusterTimer { generation } => {
                if generation == self.cluster_generation {
                    self.cluster_timer = None;
                    let now = self.now();
                    self.cluster.tick(now);
                    self.drain_cluster();
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
            Ev::Check | Ev::CloseBound => {}
        }
    }

    // ---- timers -----------------------------------------------------------------------------------

    /// A new timer due at `deadline`.
    pub fn timer_new(&mut self, deadline: Instant) -> u64 {
        self.next_timer += 1;
        let id = self.next_timer;
        self.timers.insert(
            id,
            TimerSlot {
                deadline: Duration::ZERO,
                generation: 0,
                scheduled: None,
                waker: None,
            },
        );
        self.timer_reset(id, deadline);
        id
    }

    /// Moves a timer's deadline.
    pub fn timer_reset(&mut self, id: u64, deadline: Instant) {
        let at = self.since_base(deadline);
        let Some(slot) = self.timers.get_mut(&id) else {
            return;
        };
        slot.deadline = at;
        if slot.scheduled == Some(at) {
            return;
        }
        slot.generation += 1;
        slot.scheduled = Some(at);
        let generation = slot.generation;
        self.sched.at(at, Ev::Timer { id, generation });
    }

    /// Ready once the timer's deadline has come.
    pub fn timer_poll(&mut self, id: u64, cx: &Context<'_>) -> Poll<()> {
        let now = self.now();
        let Some(slot) = self.timers.get_mut(&id) else {
            return Poll::Ready(());
        };
        if now >= slot.deadline {
            return Poll::Ready(());
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        // A deadline reached by an entry of an older generation is scheduled again.
        if slot.scheduled.is_none() {
            slot.generation += 1;
            slot.scheduled = Some(slot.deadline);
            let (at, generation) = (slot.deadline, slot.generation);
            self.sched.at(at, Ev::Timer { id, generation });
        }
        Poll::Pending
    }

    /// A timer was dropped.
    pub fn timer_drop(&mut self, id: u64) {
        self.timers.remove(&id);
    }

    fn on_timer(&mut self, id: u64, generation: u64) {
        let Some(slot) = self.timers.get_mut(&id) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        slot.scheduled = None;
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }

    // ---- the client ends of connections -----------------------------------------------------------

    /// Client `client` connects to `host:port`: a link of the network, its SYN on the way.
    pub fn connect(&mut self, client: usize, host: &str, port: u16) -> ConnId {
        let broker = ModelCluster::broker_for_host(host);
        let id = self.net.open(client, None, broker);
        self.log(format!("client {client} connect to {host}:{port} as {id}"));
        self.sockets.insert(
            id,
            Socket {
                client,
                state: SockState::Connecting,
                inbox: VecDeque::new(),
                connect_waker: None,
                read_waker: None,
                write_waker: None,
            },
        );
        let d = self.net.latency();
        self.sched.after(d, Ev::ConnectArrive(id));
        id
    }

    /// Ready once the connection is established (or failed).
    pub fn poll_connect(&mut self, id: ConnId, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let Some(s) = self.sockets.get_mut(&id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        match &s.state {
            SockState::Connecting => {
                s.connect_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            SockState::Refused(why) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionRefused, *why)))
            }
            SockState::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            SockState::Open | SockState::PeerClosed => Poll::Ready(Ok(())),
        }
    }

    /// Reads what has arrived: data first, then EOF (a FIN) or an error (a reset).
    pub fn poll_read(
        &mut self,
        id: ConnId,
        cx: &Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let Some(s) = self.sockets.get_mut(&id) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if let Some(front) = s.inbox.front_mut() {
            let n = front.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), front.get(..n)) {
                dst.copy_from_slice(src);
            }
            if n == front.len() {
                s.inbox.pop_front();
            } else {
                *front = front.slice(n..);
            }
            return Poll::Ready(Ok(n));
        }
        match s.state {
            SockState::PeerClosed => Poll::Ready(Ok(0)),
            SockState::Reset => Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            SockState::Refused(_) => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            SockState::Open | SockState::Connecting => {
                s.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Writes into the socket's send buffer (`ap.socket_buffer` bytes in flight at most).
    pub fn poll_write(
        &mut self,
        id: ConnId,
        cx: &Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(s) = self.sockets.get_mut(&id) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        match s.state {
            SockState::Reset => return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into())),
            SockState::Refused(_) | SockState::Connecting => {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
            }
            // The broker end is gone: what is written now goes nowhere.
            SockState::PeerClosed => return Poll::Ready(Ok(buf.len())),
            SockState::Open => {}
        }
        let in_flight = self
            .net
            .link(id)
            .map_or(0, |l| l.bytes_in_flight(Dir::ToBroker));
        let room = self.ap.socket_buffer.saturating_sub(in_flight);
        // Like TCP's avoidance of the silly window: no write of a few bytes into a full buffer.
        if room == 0 || room < buf.len().min(self.ap.socket_buffer / 2) {
            s.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
        let now = self.now();
        let w = self.net.write(now, id, Dir::ToBroker, data);
        self.schedule_wake(w);
        Poll::Ready(Ok(n))
    }

    /// The client closes (or drops) its end: a FIN, or a reset now and then, as in the core
    /// simulation.
    pub fn close(&mut self, id: ConnId) {
        let Some(s) = self.sockets.remove(&id) else {
            return;
        };
        let now = self.now();
        let Some(l) = self.net.link(id) else {
            return;
        };
        if !l.client_open {
            self.maybe_finish(id);
            return;
        }
        let (broker_open, open) = (l.broker_open, l.phase == Phase::Open);
        let rst = self.net.roll_rst_on_close();
        self.log(format!(
            "client {} closes {id}{}",
            s.client,
            if rst { " with RST" } else { "" }
        ));
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

    fn socket_event(&mut self, id: ConnId, state: Option<SockState>, data: Option<Bytes>) {
        if let Some(s) = self.sockets.get_mut(&id) {
            if let Some(d) = data {
                s.inbox.push_back(d);
            }
            if let Some(st) = state {
                s.state = st;
            }
            s.wake_all();
        }
    }

    // ---- network and cluster ----------------------------------------------------------------------

    pub(crate) fn schedule_wake(&mut self, w: Option<Wake>) {
        if let Some(w) = w {
            self.sched.at(w.at, Ev::Wake(w));
        }
    }

    pub(crate) fn schedule_wakes(&mut self, ws: Vec<Wake>) {
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
        let (client, client_open, broker_open, connected) = (
            link.client,
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
                // room in the send buffer
                if let Some(s) = self.sockets.get_mut(&w.id) {
                    if let Some(waker) = s.write_waker.take() {
                        waker.wake();
                    }
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
                    self.socket_event(w.id, None, Some(d));
                }
            }
            (Dir::ToClient, Segment::Accepted) => {
                if let Some(l) = self.net.link_mut(w.id) {
                    l.client_connected = true;
                }
                if client_open {
                    self.log(format!("{} connected for client {client}", w.id));
                    self.socket_event(w.id, Some(SockState::Open), None);
                }
            }
            (Dir::ToClient, seg @ (Segment::Fin | Segment::Rst)) => {
                if client_open {
                    self.log(format!("{} {:?} at client {client}", w.id, seg));
                    if let Some(l) = self.net.link_mut(w.id) {
                        l.client_open = false;
                    }
                    let state = match (connected, seg) {
                        (false, _) => SockState::Refused("connection reset"),
                        (true, Segment::Fin) => SockState::PeerClosed,
                        (true, _) => SockState::Reset,
                    };
                    self.socket_event(w.id, Some(state), None);
                }
                self.maybe_finish(w.id);
            }
        }
    }

    pub(crate) fn maybe_finish(&mut self, id: ConnId) {
        if let Some(l) = self.net.link(id) {
            if !l.client_open && !l.broker_open && l.phase != Phase::Done {
                self.net.finish(id);
            }
        }
    }

    pub(crate) fn drain_cluster(&mut self) {
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
        let Some(l) = self.net.link(id) else {
            return;
        };
        let (client, client_open) = (l.client, l.client_open);
        self.net.finish(id);
        if !client_open {
            return;
        }
        self.log(format!("{id} connect failed for client {client}"));
        self.socket_event(id, Some(SockState::Refused("connection refused")), None);
    }

    pub(crate) fn retry_syns(&mut self) {
        let waiting = std::mem::take(&mut self.syn_waiting);
        for id in waiting {
            self.sched.after(Duration::ZERO, Ev::ConnectArrive(id));
        }
    }

    /// Drops finished connections with nothing in flight.
    pub fn collect_garbage(&mut self) {
        self.net.collect_garbage();
    }
}
