//! The environment of an async run: the scheduler, the network, the model cluster, the client
//! ends of the connections, the timers, the trace and the application's records, behind one
//! lock that only the simulation thread takes (briefly, never while calling the client).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use pulsar_core::ConnectionId;

use crate::sim::async_world::models::Models;
use crate::sim::async_world::params::AsyncParams;
use crate::sim::broker::ConnId;
use crate::sim::fabric::{ClientEnds, Fabric, NetEv, SimEvent, ToClient};
use crate::sim::net::Dir;
use crate::sim::params::Params;
use crate::sim::rng::SimRng;

/// What the scheduler holds.
#[derive(Debug)]
pub enum Ev {
    /// An event of the network, the cluster or the faults.
    Net(NetEv),
    /// A timer's deadline (stale when its generation moved on).
    Timer {
        /// The timer.
        id: u64,
        /// Its generation when scheduled.
        generation: u64,
    },
    /// Is everything settled?
    Check,
    /// The bound on the clients' close.
    CloseBound,
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
    /// The network, the cluster, the faults, the trace and the run's violations and counters.
    pub fab: Fabric<Ev>,
    /// What the async layer adds to the run's parameters.
    pub ap: AsyncParams,
    base: Instant,
    sockets: BTreeMap<ConnId, Socket>,
    timers: BTreeMap<u64, TimerSlot>,
    next_timer: u64,
    /// The application's records.
    pub app: Models,
}

impl Env {
    /// The environment of `p` (nothing scheduled yet).
    pub fn new(p: Params, ap: AsyncParams, echo: bool) -> Env {
        let seed = p.seed;
        let mut root = SimRng::new(seed);
        let (fab, app_rng) = Fabric::new(p, &mut root, echo);
        let app = Models::new(&fab.p, app_rng, SimRng::new(seed ^ 0xA5C0_0000_0000_0003));
        Env {
            fab,
            ap,
            base: Instant::now(),
            sockets: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
            app,
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Duration {
        self.fab.now()
    }

    /// Simulated time as the client sees it.
    pub fn now_instant(&self) -> Instant {
        self.base + self.fab.now()
    }

    /// Simulated time of a client's `Instant`.
    pub fn since_base(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
    }

    /// A trace line.
    pub fn log(&mut self, text: impl AsRef<str>) {
        self.fab.log(text);
    }

    /// A violation (also in the trace).
    pub fn violation(&mut self, text: String) {
        self.fab.violation(text);
    }

    /// A violation that ends the run.
    pub fn fatal(&mut self, text: String) {
        self.fab.fatal(text);
    }

    /// Handles one scheduler event of the network, the cluster, the timers or the faults.
    /// (`Check` and `CloseBound` belong to the run loop.)
    pub fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Net(ev) => self.handle_net(ev),
            Ev::Timer { id, generation } => self.on_timer(id, generation),
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
        self.fab.sched.at(at, Ev::Timer { id, generation });
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
            self.fab.sched.at(at, Ev::Timer { id, generation });
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
        let id = self.fab.connect(client, None, host);
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
            .fab
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
        let w = self.fab.net.write(now, id, Dir::ToBroker, data);
        self.fab.schedule_wake(w);
        Poll::Ready(Ok(n))
    }

    /// The client closes (or drops) its end: a FIN, or a reset now and then, as in the core
    /// simulation.
    pub fn close(&mut self, id: ConnId) {
        let Some(s) = self.sockets.remove(&id) else {
            return;
        };
        let Some(l) = self.fab.net.link(id) else {
            return;
        };
        if !l.client_open {
            self.fab.maybe_finish(id);
            return;
        }
        let rst = self.fab.net.roll_rst_on_close();
        self.log(format!(
            "client {} closes {id}{}",
            s.client,
            if rst { " with RST" } else { "" }
        ));
        self.fab.close_client_end(id, rst);
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

    /// Drops finished connections with nothing in flight.
    pub fn collect_garbage(&mut self) {
        self.fab.net.collect_garbage();
    }
}

impl ClientEnds for Env {
    type Ev = Ev;

    fn fabric(&mut self) -> &mut Fabric<Ev> {
        &mut self.fab
    }

    /// Wakes the socket's tasks with what reached it.
    fn deliver(&mut self, id: ConnId, _client: usize, _core: Option<ConnectionId>, what: ToClient) {
        let (state, data) = match what {
            ToClient::Data(d) => (None, Some(d)),
            ToClient::Connected => (Some(SockState::Open), None),
            ToClient::Closed {
                connected: false, ..
            } => (Some(SockState::Refused("connection reset")), None),
            ToClient::Closed { reset: false, .. } => (Some(SockState::PeerClosed), None),
            ToClient::Closed { reset: true, .. } => (Some(SockState::Reset), None),
            ToClient::Refused => (Some(SockState::Refused("connection refused")), None),
        };
        self.socket_event(id, state, data);
    }

    /// Room in the send buffer: wakes the writer.
    fn sent(&mut self, id: ConnId) {
        if let Some(s) = self.sockets.get_mut(&id) {
            if let Some(waker) = s.write_waker.take() {
                waker.wake();
            }
        }
    }
}
