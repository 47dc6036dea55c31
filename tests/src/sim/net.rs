//! The simulated network: TCP connections between clients and brokers.
//!
//! Inside a live connection bytes are never dropped or reordered, but they arrive in random chunks
//! after a random latency. Faults: clogged directions (data held, then released in order), partitions
//! between a client and a broker (connects hang, data held until the partition heals), resets (data
//! in flight lost both ways, both ends told), half-open connections (the broker end vanishes
//! silently: the client's writes disappear until its keep-alive notices), refused connects.
//!
//! The network does not own the clock or the event queue: operations return [`Wake`]s that the
//! simulator schedules, and a wake hands back the next [`Segment`] to deliver.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use pulsar_core::ConnectionId;

use crate::sim::broker::ConnId;
use crate::sim::rng::SimRng;

/// A direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// Client to broker.
    ToBroker,
    /// Broker to client.
    ToClient,
}

/// What arrives at one end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes.
    Data(Bytes),
    /// The peer closed gracefully (after everything it sent).
    Fin,
    /// The connection was reset.
    Rst,
    /// The connection is established (the SYN-ACK reaching the client): always first.
    Accepted,
}

/// A request to be woken at `at` to deliver the head of a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wake {
    /// When.
    pub at: Duration,
    /// The connection.
    pub id: ConnId,
    /// The direction.
    pub dir: Dir,
    /// Generation (stale wakes are ignored).
    pub generation: u64,
}

/// Timing and fault parameters of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetParams {
    /// One-way latency range.
    pub latency: (Duration, Duration),
    /// Probability that a write is split into several chunks.
    pub split: f64,
    /// Most cut points in one write.
    pub max_splits: u32,
    /// Probability that a connect is refused.
    pub refuse: f64,
    /// Probability that a close by the client resets instead of closing gracefully.
    pub rst_on_close: f64,
}

#[derive(Debug, Default)]
struct Pipe {
    queue: VecDeque<(Duration, Segment)>,
    last_at: Duration,
    clog_until: Duration,
    armed: bool,
    generation: u64,
    /// Writes vanish (half-open: the far end is gone).
    blackhole: bool,
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connect requested, SYN travelling.
    Connecting,
    /// Established.
    Open,
    /// Over (refused, reset, or closed at both ends).
    Done,
}

/// One simulated TCP connection.
#[derive(Debug)]
pub struct Link {
    /// Which client opened it.
    pub client: usize,
    /// The client core's handle (`None` for a connection opened through an async runtime's
    /// `connect`, which never learns it).
    pub core: Option<ConnectionId>,
    /// Which broker it goes to (`None`: unknown host).
    pub broker: Option<usize>,
    /// Its phase.
    pub phase: Phase,
    /// The client core still knows the connection.
    pub client_open: bool,
    /// The broker still knows the connection.
    pub broker_open: bool,
    /// The client core was told the connection is established.
    pub client_connected: bool,
    to_broker: Pipe,
    to_client: Pipe,
}

impl Link {
    fn pipe(&mut self, dir: Dir) -> &mut Pipe {
        match dir {
            Dir::ToBroker => &mut self.to_broker,
            Dir::ToClient => &mut self.to_client,
        }
    }

    /// Bytes and closes in flight in `dir`.
    pub fn in_flight(&self, dir: Dir) -> usize {
        match dir {
            Dir::ToBroker => self.to_broker.queue.len(),
            Dir::ToClient => self.to_client.queue.len(),
        }
    }

    /// Data bytes in flight in `dir` (written and not yet delivered).
    pub fn bytes_in_flight(&self, dir: Dir) -> usize {
        let pipe = match dir {
            Dir::ToBroker => &self.to_broker,
            Dir::ToClient => &self.to_client,
        };
        pipe.queue
            .iter()
            .map(|(_, s)| match s {
                Segment::Data(d) => d.len(),
                _ => 0,
            })
            .sum()
    }
}

/// Every connection of a run.
#[derive(Debug)]
pub struct Network {
    params: NetParams,
    rng: SimRng,
    links: BTreeMap<ConnId, Link>,
    next_id: u64,
    /// Blocked (client, broker) pairs.
    blocked: BTreeSet<(usize, usize)>,
}

impl Network {
    /// An empty network.
    pub fn new(params: NetParams, rng: SimRng) -> Network {
        Network {
            params,
            rng,
            links: BTreeMap::new(),
            next_id: 0,
            blocked: BTreeSet::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &NetParams {
        &self.params
    }

    /// A connection.
    pub fn link(&self, id: ConnId) -> Option<&Link> {
        self.links.get(&id)
    }

    /// A connection, mutably.
    pub fn link_mut(&mut self, id: ConnId) -> Option<&mut Link> {
        self.links.get_mut(&id)
    }

    /// The connection a client core calls `core`.
    pub fn find(&self, client: usize, core: ConnectionId) -> Option<ConnId> {
        self.links
            .iter()
            .rev()
            .find(|(_, l)| l.client == client && l.core == Some(core) && l.phase != Phase::Done)
            .map(|(id, _)| *id)
    }

    /// Connections not finished, in id order.
    pub fn live(&self) -> Vec<ConnId> {
        self.links
            .iter()
            .filter(|(_, l)| l.phase != Phase::Done)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether traffic between `client` and `broker` is blocked.
    pub fn is_blocked(&self, client: usize, broker: usize) -> bool {
        self.blocked.contains(&(client, broker))
    }

    /// A random one-way latency.
    pub fn latency(&mut self) -> Duration {
        let (lo, hi) = self.params.latency;
        self.rng.duration(lo, hi)
    }

    /// Whether the next connect is refused (random).
    pub fn roll_refuse(&mut self) -> bool {
        let p = self.params.refuse;
        self.rng.chance(p)
    }

    /// Whether the next client close is a reset (random).
    pub fn roll_rst_on_close(&mut self) -> bool {
        let p = self.params.rst_on_close;
        self.rng.chance(p)
    }

    /// Registers a connection the client asked for.
    pub fn open(
        &mut self,
        client: usize,
        core: Option<ConnectionId>,
        broker: Option<usize>,
    ) -> ConnId {
        self.next_id += 1;
        let id = ConnId(self.next_id);
        self.links.insert(
            id,
            Link {
                client,
                core,
                broker,
                phase: Phase::Connecting,
                client_open: true,
                broker_open: false,
                client_connected: false,
                to_broker: Pipe::default(),
                to_client: Pipe::default(),
            },
        );
        id
    }

    fn blocked_link(&self, l: &Link) -> bool {
        l.broker
            .is_some_and(|b| self.blocked.contains(&(l.client, b)))
    }

    /// Queues bytes in `dir`, split into random chunks with random latency, in order.
    pub fn write(&mut self, now: Duration, id: ConnId, dir: Dir, data: Bytes) -> Option<Wake> {
        if data.is_empty() {
            return None;
        }
        let chunks = self.chunks(data);
        let mut delays = Vec::with_capacity(chunks.len());
        for _ in 0..chunks.len() {
            delays.push(self.latency());
        }
        let link = self.links.get_mut(&id)?;
        let pipe = link.pipe(dir);
        if pipe.blackhole {
            return None;
        }
        for (c, d) in chunks.into_iter().zip(delays) {
            let at = (now + d).max(pipe.last_at);
            pipe.last_at = at;
            pipe.queue.push_back((at, Segment::Data(c)));
        }
        self.arm(id, dir)
    }

    /// Queues a graceful close in `dir` (after the data already queued).
    pub fn fin(&mut self, now: Duration, id: ConnId, dir: Dir) -> Option<Wake> {
        let d = self.latency();
        let link = self.links.get_mut(&id)?;
        let pipe = link.pipe(dir);
        if pipe.blackhole {
            return None;
        }
        let at = (now + d).max(pipe.last_at);
        pipe.last_at = at;
        pipe.queue.push_back((at, Segment::Fin));
        self.arm(id, dir)
    }

    /// The broker accepted the connection: the client learns it after a latency, before any byte.
    pub fn accept(&mut self, now: Duration, id: ConnId) -> Option<Wake> {
        let d = self.latency();
        let link = self.links.get_mut(&id)?;
        link.broker_open = true;
        link.phase = Phase::Open;
        let pipe = &mut link.to_client;
        let at = (now + d).max(pipe.last_at);
        pipe.last_at = at;
        pipe.queue.push_back((at, Segment::Accepted));
        self.arm(id, Dir::ToClient)
    }

    /// Drops everything in flight in `dir` (the receiving end is gone).
    pub fn discard(&mut self, id: ConnId, dir: Dir) {
        if let Some(l) = self.links.get_mut(&id) {
            let p = l.pipe(dir);
            p.queue.clear();
            p.generation += 1;
            p.armed = false;
        }
    }

    /// Resets the connection: data in flight both ways is lost; each end still open gets an RST.
    pub fn reset(&mut self, now: Duration, id: ConnId) -> Vec<Wake> {
        let d1 = self.latency();
        let d2 = self.latency();
        let mut wakes = Vec::new();
        let Some(l) = self.links.get_mut(&id) else {
            return wakes;
        };
        let (to_client, to_broker) = (l.client_open, l.broker_open);
        for (dir, open, d) in [
            (Dir::ToClient, to_client, d1),
            (Dir::ToBroker, to_broker, d2),
        ] {
            let p = l.pipe(dir);
            p.queue.clear();
            p.generation += 1;
            p.armed = false;
            p.blackhole = false;
            p.clog_until = Duration::ZERO;
            if open {
                p.last_at = now + d;
                p.queue.push_back((now + d, Segment::Rst));
            }
        }
        for dir in [Dir::ToClient, Dir::ToBroker] {
            if let Some(w) = self.arm(id, dir) {
                wakes.push(w);
            }
        }
        wakes
    }

    /// Makes the connection half-open: the broker end vanished without telling the client. Data to
    /// the client in flight is lost and the client's writes vanish from now on.
    pub fn half_open(&mut self, id: ConnId) {
        if let Some(l) = self.links.get_mut(&id) {
            l.broker_open = false;
            l.to_client.queue.clear();
            l.to_client.generation += 1;
            l.to_client.armed = false;
            l.to_broker.queue.clear();
            l.to_broker.generation += 1;
            l.to_broker.armed = false;
            l.to_broker.blackhole = true;
        }
    }

    /// Holds everything in `dir` until `until`.
    pub fn clog(&mut self, id: ConnId, dir: Dir, until: Duration) {
        if let Some(l) = self.links.get_mut(&id) {
            let p = l.pipe(dir);
            p.clog_until = p.clog_until.max(until);
        }
    }

    /// Blocks all traffic between `client` and `broker` until [`heal`](Self::heal).
    pub fn block(&mut self, client: usize, broker: usize) {
        self.blocked.insert((client, broker));
    }

    /// Unblocks a pair; returns the wakes of the pipes held by it.
    pub fn unblock(&mut self, client: usize, broker: usize) -> Vec<Wake> {
        self.blocked.remove(&(client, broker));
        self.rearm_all()
    }

    /// Ends every partition and clog; returns the wakes of the held pipes.
    pub fn heal(&mut self) -> Vec<Wake> {
        self.blocked.clear();
        for l in self.links.values_mut() {
            l.to_broker.clog_until = Duration::ZERO;
            l.to_client.clog_until = Duration::ZERO;
        }
        self.rearm_all()
    }

    fn rearm_all(&mut self) -> Vec<Wake> {
        let ids: Vec<ConnId> = self.links.keys().copied().collect();
        let mut wakes = Vec::new();
        for id in ids {
            for dir in [Dir::ToBroker, Dir::ToClient] {
                if let Some(w) = self.arm(id, dir) {
                    wakes.push(w);
                }
            }
        }
        wakes
    }

    /// A wake for the head of a pipe, unless one is pending or the pipe is held by a partition.
    fn arm(&mut self, id: ConnId, dir: Dir) -> Option<Wake> {
        let blocked = {
            let l = self.links.get(&id)?;
            self.blocked_link(l)
        };
        let l = self.links.get_mut(&id)?;
        let p = l.pipe(dir);
        if p.armed || blocked {
            return None;
        }
        let (at, _) = p.queue.front()?;
        let at = (*at).max(p.clog_until);
        p.armed = true;
        p.generation += 1;
        Some(Wake {
            at,
            id,
            dir,
            generation: p.generation,
        })
    }

    /// Handles a wake: the segment to deliver now (if any) and the next wake.
    pub fn on_wake(&mut self, now: Duration, w: Wake) -> (Option<Segment>, Option<Wake>) {
        let blocked = match self.links.get(&w.id) {
            Some(l) => self.blocked_link(l),
            None => return (None, None),
        };
        let Some(l) = self.links.get_mut(&w.id) else {
            return (None, None);
        };
        let p = l.pipe(w.dir);
        if p.generation != w.generation {
            return (None, None);
        }
        p.armed = false;
        if blocked {
            return (None, None);
        }
        let due = p
            .queue
            .front()
            .is_some_and(|(at, _)| *at <= now && p.clog_until <= now);
        let seg = if due {
            p.queue.pop_front().map(|(_, s)| s)
        } else {
            None
        };
        (seg, self.arm(w.id, w.dir))
    }

    /// Marks the connection finished.
    pub fn finish(&mut self, id: ConnId) {
        if let Some(l) = self.links.get_mut(&id) {
            l.phase = Phase::Done;
            l.client_open = false;
            l.broker_open = false;
            l.to_broker.queue.clear();
            l.to_client.queue.clear();
            l.to_broker.generation += 1;
            l.to_client.generation += 1;
        }
    }

    /// Drops finished connections with nothing in flight (keeps the map small).
    pub fn collect_garbage(&mut self) {
        self.links.retain(|_, l| {
            l.phase != Phase::Done || !l.to_broker.queue.is_empty() || !l.to_client.queue.is_empty()
        });
    }

    fn chunks(&mut self, data: Bytes) -> Vec<Bytes> {
        let len = data.len();
        if len < 2 || !self.rng.chance(self.params.split) {
            return vec![data];
        }
        let k = self.rng.range(1, u64::from(self.params.max_splits.max(1))) as usize;
        let mut cuts: Vec<usize> = (0..k)
            .map(|_| self.rng.range(1, len as u64 - 1) as usize)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut start = 0;
        for c in cuts {
            out.push(data.slice(start..c));
            start = c;
        }
        out.push(data.slice(start..));
        out
    }
}
