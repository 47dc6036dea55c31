//! The sans-IO broker: one or more brokers sharing one store, speaking the binary protocol through
//! pulsar-proto.
//!
//! It does no I/O and reads no clock: its driver (the tokio server of this crate, or a simulator)
//! hands it connections and bytes ([`Cluster::accept`], [`Cluster::on_bytes`],
//! [`Cluster::on_closed`]) and time ([`Cluster::tick`] at [`Cluster::poll_timeout`]), and drains
//! bytes and closes with [`Cluster::poll_transmit`]. All of its random choices come from
//! [`ClusterConfig::seed`], so the same inputs give the same outputs.
//!
//! Modelled: handshake with optional auth challenges and refreshes, keep-alive pings, lookups with
//! redirects following topic ownership (which moves on demand), partitioned metadata, producers with
//! `last_sequence_id` and optional deduplication, a persisted log per topic written with latency,
//! subscriptions of every type with flow permits, individual / cumulative / batch-index acks,
//! redelivery, seek, broker-initiated CLOSE_PRODUCER / CLOSE_CONSUMER / TOPIC_MIGRATED, injected
//! retriable errors, crash-restarts that keep the store and lose everything else, and (with
//! [`ClusterConfig::transaction_coordinators`]) transactions: coordinators, transaction buffers,
//! pending acknowledgements and timeouts.

mod auth;
mod conn;
mod consumer;
mod delayed;
mod describe;
mod lookup;
mod producer;
mod retention;
mod rng;
mod schema;
mod security;
mod stats;
pub mod store;
mod topic;
mod txn;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pulsar_proto::{encode_command, encode_payload_command, pb};

use self::conn::{Conn, ConnState};
use self::rng::Rng;
use self::topic::LoadedTopic;

pub use self::auth::{JwtConfig, JwtKey, TokenError};
pub use self::describe::describe;
#[cfg(feature = "server")]
pub(crate) use self::producer::non_last_chunk as is_non_last_chunk;
pub use self::retention::{BacklogPolicy, BacklogQuota, Retention};
pub use self::security::{RoleRules, ANONYMOUS};
pub use self::stats::{ClientInfo, ConsumerStats, ProducerStats, SubscriptionStats, TopicStats};
pub use self::store::{
    Cursor, Entry, PendingAck, PendingAcks, Store, TopicLog, TxnKey, TxnRecord, TxnStatus,
};
pub use self::txn::TC_ASSIGN_TOPIC;

/// A connection as the cluster knows it (chosen by the simulator, unique over a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// How a connection reached the broker: what lookups answered on it name, and who is at the
/// other end (for [`Cluster::clients`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listener {
    /// `pulsar://host:port` lookups answer (`None`: the simulator's `broker-N` names).
    pub service_url: Option<String>,
    /// `pulsar+ssl://host:port` lookups answer.
    pub service_url_tls: Option<String>,
    /// The peer's address, as the driver knows it (`127.0.0.1:50122`, `in-process`).
    pub peer: String,
}

impl Listener {
    /// A listener answering lookups with `service_url` (and `service_url_tls`), the peer at
    /// `peer`.
    pub fn new(
        service_url: Option<String>,
        service_url_tls: Option<String>,
        peer: impl Into<String>,
    ) -> Listener {
        Listener {
            service_url,
            service_url_tls,
            peer: peer.into(),
        }
    }
}

/// Probabilities of the cluster's injected misbehaviours (each drawn per occasion).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Faults {
    /// A LOOKUP fails with ServiceNotReady or TooManyRequests.
    pub lookup_error: f64,
    /// A PRODUCER fails with ServiceNotReady or TooManyRequests.
    pub producer_error: f64,
    /// A SUBSCRIBE fails with ServiceNotReady or TooManyRequests.
    pub subscribe_error: f64,
    /// A SEND fails to persist (SEND_ERROR PersistenceError; later sends of the same registration
    /// fail too until the client resends from the failed one or registers again).
    pub persist_error: f64,
    /// A lookup on a non-owner answers Redirect (instead of Connect to the owner).
    pub redirect: f64,
    /// A redirect points at a broker that is not the owner (which redirects again).
    pub stale_redirect: f64,
    /// The handshake goes through an AUTH_CHALLENGE (when authentication is on).
    pub auth_challenge: f64,
    /// At each keep-alive check, the broker asks for fresh credentials (when the client supports it).
    pub auth_refresh: f64,
}

impl Faults {
    /// No injected faults at all.
    pub fn none() -> Faults {
        Faults::default()
    }
}

/// How a cluster behaves.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// Number of brokers (at least 1).
    pub brokers: usize,
    /// Seed of the cluster's random choices.
    pub seed: u64,
    /// Broker-side message deduplication on every topic.
    pub dedup: bool,
    /// Token the clients must present (`None`: no authentication); its role is `token`.
    pub auth_token: Option<String>,
    /// More tokens, each with its role (token → role); any of them (or `auth_token`) is accepted
    /// once this or `auth_token` is set.
    pub tokens: BTreeMap<String, String>,
    /// JWT validation (HS256 or RS256 tokens, the role in `sub`): authentication is on when set,
    /// and a token that is not one of `tokens` / `auth_token` must verify.
    pub jwt: Option<JwtConfig>,
    /// Keep-alive interval (PING, then close when unanswered by the next check); zero disables.
    pub keep_alive: Duration,
    /// Storage write latency range.
    pub persist_latency: (Duration, Duration),
    /// `maxMessageSize` announced in CONNECTED.
    pub max_message_size: i32,
    /// Injected misbehaviours.
    pub faults: Faults,
    /// Record a note for every frame in and out (for traces).
    pub trace_frames: bool,
    /// Keep the history a simulator checks: every SEND received
    /// ([`Cluster::received_sends`]) and first dispatches ([`Cluster::first_dispatch`]). It grows
    /// with the traffic: a long-running broker turns it off.
    pub history: bool,
    /// Keep notes for [`Cluster::poll_note`] (a driver that never polls them turns this off, or
    /// they pile up).
    pub notes: bool,
    /// The wall clock, in milliseconds since the Unix epoch, at time zero of the driver's clock.
    /// With it, messages carrying `deliver_at_time` (delayed delivery) wait on Shared and
    /// Key_Shared subscriptions until then; without it (`None`) they are delivered at once.
    pub unix_time_at_zero_ms: Option<u64>,
    /// The `server_version` announced in CONNECTED.
    pub server_version: String,
    /// Transaction coordinators (partitions of [`TC_ASSIGN_TOPIC`]); 0: transactions are off
    /// (TC_CLIENT_CONNECT is answered NotAllowed).
    pub transaction_coordinators: u32,
    /// Retention of acknowledged entries (default: everything is kept).
    pub retention: Retention,
    /// Backlog quota of every topic (default: none).
    pub backlog_quota: Option<BacklogQuota>,
    /// How often retention and the backlog quota are checked (when either is set).
    pub storage_check_interval: Duration,
    /// PRODUCER_SUCCESS carries an empty `schema_version` for a producer without a schema, as
    /// Apache Pulsar's does (the Java client needs it); off: none (the simulation's model).
    pub empty_schema_version: bool,
}

impl ClusterConfig {
    /// A quiet cluster of `brokers` brokers: no faults, no auth, no dedup, 1–5 ms writes.
    pub fn new(brokers: usize, seed: u64) -> ClusterConfig {
        ClusterConfig {
            brokers: brokers.max(1),
            seed,
            dedup: false,
            auth_token: None,
            tokens: BTreeMap::new(),
            jwt: None,
            keep_alive: Duration::from_secs(30),
            persist_latency: (Duration::from_millis(1), Duration::from_millis(5)),
            max_message_size: 5 * 1024 * 1024,
            faults: Faults::none(),
            trace_frames: false,
            notes: true,
            history: true,
            unix_time_at_zero_ms: None,
            server_version: format!("pulsar-embedded {}", env!("CARGO_PKG_VERSION")),
            transaction_coordinators: 0,
            retention: Retention::unlimited(),
            backlog_quota: None,
            storage_check_interval: Duration::from_secs(1),
            empty_schema_version: false,
        }
    }
}

/// What the cluster asks of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes on the connection, in order.
    Data {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        data: Bytes,
    },
    /// Close the connection (after the bytes already output for it).
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// How [`Cluster::move_topic`] tells the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// CLOSE_PRODUCER / CLOSE_CONSUMER without a destination: clients look the topic up again.
    Close,
    /// CLOSE_PRODUCER / CLOSE_CONSUMER with `assignedBrokerServiceUrl` (load-manager extension).
    CloseWithUrl,
    /// TOPIC_MIGRATED with the new URL, then CLOSE_PRODUCER / CLOSE_CONSUMER (as the real broker does).
    Migrated,
}

/// Why [`Cluster::accept`] refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The broker is crashed.
    #[error("broker {0} is down")]
    BrokerDown(usize),
    /// No such broker.
    #[error("no broker {0}")]
    UnknownBroker(usize),
    /// The connection id is already in use.
    #[error("connection {0} already exists")]
    Duplicate(ConnId),
}

/// What became of a SEND the cluster received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued for persistence.
    Accepted,
    /// Dropped as a duplicate of a persisted message (receipt `-1:-1`).
    Duplicate,
    /// Rejected: maybe a duplicate of a message still being persisted (PersistenceError).
    DupUnknown,
    /// Failed to persist (injected, or the registration is failed).
    Failed,
    /// Ignored: the producer was recently closed by the broker.
    Ignored,
}

/// A SEND as the cluster received it (for the simulator's checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSend {
    /// Topic.
    pub topic: String,
    /// Producer name of the registration.
    pub producer_name: String,
    /// `CommandSend.sequence_id`.
    pub sequence_id: u64,
    /// The registration it came on.
    pub registration: u64,
    /// When.
    pub at: Duration,
    /// What happened to it.
    pub outcome: SendOutcome,
}

/// The broker (one or more brokers sharing a store). See the [module documentation](self).
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    rng: Rng,
    up: Vec<bool>,
    store: Store,
    conns: BTreeMap<ConnId, Conn>,
    loaded: BTreeMap<String, LoadedTopic>,
    out: VecDeque<Output>,
    wbufs: BTreeMap<ConnId, BytesMut>,
    notes: VecDeque<String>,
    now: Duration,
    next_registration: u64,
    sends: Vec<ReceivedSend>,
    faults_on: bool,
    /// Authorization rules by role (`None`: everything allowed).
    rules: Option<BTreeMap<String, security::RoleRules>>,
    /// Latest first-time (redelivery count 0) dispatch of each entry, per subscription.
    first_dispatch: BTreeMap<(String, String, u64, u64), Duration>,
    /// When retention and backlog quotas are next checked.
    next_storage_check: Duration,
}

impl Cluster {
    /// A cluster with every broker up and an empty store.
    pub fn new(config: ClusterConfig) -> Cluster {
        let mut store = Store {
            dedup: config.dedup,
            ..Store::default()
        };
        if config.transaction_coordinators > 0 {
            store
                .partitions
                .insert(TC_ASSIGN_TOPIC.to_owned(), config.transaction_coordinators);
        }
        Cluster {
            rng: Rng::new(config.seed),
            up: vec![true; config.brokers.max(1)],
            store,
            conns: BTreeMap::new(),
            loaded: BTreeMap::new(),
            out: VecDeque::new(),
            wbufs: BTreeMap::new(),
            notes: VecDeque::new(),
            now: Duration::ZERO,
            next_registration: 0,
            sends: Vec::new(),
            faults_on: true,
            first_dispatch: BTreeMap::new(),
            rules: None,
            next_storage_check: Duration::ZERO,
            config,
        }
    }

    /// A cluster over a store recovered from elsewhere (the server's on-disk log): its topics,
    /// cursors and partitioned topics are there, nothing is loaded. Ledger ids continue after the
    /// store's highest.
    pub fn with_store(config: ClusterConfig, mut store: Store) -> Cluster {
        let highest = store
            .topics
            .values()
            .filter_map(|l| l.entries.last().map(|e| e.ledger_id))
            .max()
            .unwrap_or(0);
        store.next_ledger = store.next_ledger.max(highest);
        // generated producer names must not repeat a recovered one (deduplication keys on names)
        let named = store
            .topics
            .values()
            .flat_map(|l| l.persisted_seq.keys())
            .filter_map(|n| n.strip_prefix("sim-")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        store.next_name = store.next_name.max(named);
        store.dedup = config.dedup;
        let mut c = Cluster::new(config);
        c.store = store;
        c
    }

    /// Replaces the injected faults' probabilities (for users' own fault tests:
    /// `persist_error: 1.0` fails every write until set back).
    pub fn set_faults(&mut self, faults: Faults) {
        self.config.faults = faults;
    }

    /// Replaces the storage write latency range (delays every receipt by that much).
    pub fn set_persist_latency(&mut self, min: Duration, max: Duration) {
        self.config.persist_latency = (min, max.max(min));
    }

    // ---- addresses ------------------------------------------------------------------------------

    /// Host name of broker `b`.
    pub fn broker_host(b: usize) -> String {
        format!("broker-{b}")
    }

    /// Service URL of broker `b` (as a simulator names it; a connection accepted through a
    /// [`Listener`] with URLs is answered with those).
    pub fn broker_url(b: usize) -> String {
        format!("pulsar://broker-{b}:6650")
    }

    /// The URLs (plain, TLS) a lookup on `conn` answers for broker `b`.
    pub(crate) fn urls_for(&self, conn: ConnId, b: usize) -> (String, Option<String>) {
        let listener = self.conns.get(&conn).map(|c| &c.listener);
        match listener {
            Some(l) if l.service_url.is_some() || l.service_url_tls.is_some() => (
                l.service_url
                    .clone()
                    .or_else(|| l.service_url_tls.clone())
                    .unwrap_or_else(|| Self::broker_url(b)),
                l.service_url_tls.clone(),
            ),
            _ => (Self::broker_url(b), None),
        }
    }

    /// The broker behind a host name.
    pub fn broker_for_host(host: &str) -> Option<usize> {
        host.strip_prefix("broker-")?.parse().ok()
    }

    /// A service URL listing every broker of a `brokers`-broker cluster.
    pub fn service_url(brokers: usize) -> String {
        let hosts: Vec<String> = (0..brokers.max(1))
            .map(|b| format!("{}:6650", Self::broker_host(b)))
            .collect();
        format!("pulsar://{}", hosts.join(","))
    }

    // ---- configuration and inspection -----------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Turns injected faults on or off (the configured probabilities are kept).
    pub fn set_faults_enabled(&mut self, on: bool) {
        self.faults_on = on;
    }

    /// Declares `topic` (full name) partitioned with `partitions` partitions.
    pub fn create_partitioned_topic(&mut self, topic: &str, partitions: u32) {
        self.store
            .partitions
            .insert(normalize_topic(topic), partitions);
    }

    /// The persisted state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every SEND received, in order.
    pub fn received_sends(&self) -> &[ReceivedSend] {
        &self.sends
    }

    /// Whether broker `b` is up.
    pub fn is_up(&self, b: usize) -> bool {
        self.up.get(b).copied().unwrap_or(false)
    }

    /// Number of brokers.
    pub fn brokers(&self) -> usize {
        self.up.len()
    }

    /// Live connections of broker `b`.
    pub fn connections_of(&self, b: usize) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.broker == b)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Topics currently loaded (owned and in use), with their broker.
    pub fn loaded_topics(&self) -> Vec<(String, usize)> {
        self.loaded
            .iter()
            .map(|(t, l)| (t.clone(), l.broker))
            .collect()
    }

    /// Number of messages (not entries) persisted but not yet acknowledged on a durable
    /// subscription (a partly acknowledged batch counts its unacknowledged messages).
    pub fn backlog(&self, topic: &str, subscription: &str) -> Option<u64> {
        let log = self.store.topics.get(topic)?;
        let cursor = log.cursors.get(subscription)?;
        Some(cursor_backlog(log, cursor))
    }

    /// When `(ledger, entry)` of `topic` was last dispatched on `subscription` with redelivery
    /// count 0 (the model counts every re-dispatch while the topic stays loaded).
    pub fn first_dispatch(
        &self,
        topic: &str,
        subscription: &str,
        ledger_id: u64,
        entry_id: u64,
    ) -> Option<Duration> {
        self.first_dispatch
            .get(&(
                topic.to_owned(),
                subscription.to_owned(),
                ledger_id,
                entry_id,
            ))
            .copied()
    }

    /// Positions `(ledger, entry)` persisted but not acknowledged on a durable subscription, with
    /// the batch indexes still unacknowledged of partly acknowledged batches.
    pub fn unacked(&self, topic: &str, subscription: &str) -> Vec<(u64, u64, Vec<i64>)> {
        let Some(log) = self.store.topics.get(topic) else {
            return Vec::new();
        };
        let Some(cursor) = log.cursors.get(subscription) else {
            return Vec::new();
        };
        log.entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !cursor.is_acked(*i))
            .map(|(i, e)| {
                let partial = cursor.partial.get(&i).cloned().unwrap_or_default();
                (e.ledger_id, e.entry_id, partial)
            })
            .collect()
    }

    /// The next note (one line per notable broker event, frames too when `trace_frames`).
    pub fn poll_note(&mut self) -> Option<String> {
        self.notes.pop_front()
    }

    // ---- the sans-IO interface ------------------------------------------------------------------

    /// A connection to broker `broker` was opened (the TCP handshake succeeded).
    pub fn accept(
        &mut self,
        now: Duration,
        conn: ConnId,
        broker: usize,
    ) -> Result<(), AcceptError> {
        self.accept_from(now, conn, broker, Listener::default())
    }

    /// A connection to broker `broker` was opened through `listener`: lookups answered on it name
    /// the listener's URLs for this broker, and [`clients`](Self::clients) shows its peer address.
    pub fn accept_from(
        &mut self,
        now: Duration,
        conn: ConnId,
        broker: usize,
        listener: Listener,
    ) -> Result<(), AcceptError> {
        self.now = now;
        if broker >= self.up.len() {
            return Err(AcceptError::UnknownBroker(broker));
        }
        if !self.up[broker] {
            return Err(AcceptError::BrokerDown(broker));
        }
        if self.conns.contains_key(&conn) {
            return Err(AcceptError::Duplicate(conn));
        }
        let keep_alive = self.config.keep_alive;
        let mut c = Conn::new(broker, now, keep_alive);
        c.listener = listener;
        // the frame decoder allows some slack above maxMessageSize; larger frames close the
        // connection
        let max = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        c.decoder = pulsar_proto::FrameDecoder::new(
            max.saturating_add(producer::MESSAGE_SIZE_FRAME_PADDING),
        );
        self.conns.insert(conn, c);
        Ok(())
    }

    /// Bytes arrived on a connection (any split). Unknown connections are ignored.
    pub fn on_bytes(&mut self, now: Duration, conn: ConnId, data: &[u8]) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rbuf.extend_from_slice(data);
        c.last_input = now;
        c.ping_outstanding = false;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.decoder.decode(&mut c.rbuf) {
                Ok(Some(frame)) => self.handle_frame(conn, frame),
                Ok(None) => return,
                Err(e) => {
                    self.note(format!("{conn} undecodable input: {e}"));
                    self.close_conn(conn, "protocol error");
                    return;
                }
            }
        }
    }

    /// The peer closed the connection (or it was reset). Unknown connections are ignored.
    pub fn on_closed(&mut self, now: Duration, conn: ConnId) {
        self.now = now;
        if self.conns.contains_key(&conn) {
            self.note(format!("{conn} closed by peer"));
            self.forget_conn(conn);
        }
    }

    /// Time passed: persist writes whose latency elapsed, run keep-alive checks.
    pub fn tick(&mut self, now: Duration) {
        self.now = now;
        self.persist_ready();
        self.release_delayed();
        self.storage_checks();
        self.probe_checks();
        self.keep_alive_checks();
        self.expire_txns();
    }

    /// When [`tick`](Self::tick) has something to do next.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let writes = self
            .loaded
            .values()
            .filter_map(|t| t.pending.front().map(|w| w.ready_at));
        let checks = self
            .conns
            .values()
            .filter(|_| !self.config.keep_alive.is_zero())
            .map(|c| c.next_check);
        let probes = self.conns.values().filter_map(|c| c.probe_deadline);
        writes
            .chain(checks)
            .chain(probes)
            .chain(self.next_delayed())
            .chain(self.next_txn_timeout())
            .chain(self.next_storage_check())
            .min()
    }

    /// The next output for the network.
    pub fn poll_transmit(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        while let Some((conn, buf)) = self.wbufs.pop_first() {
            if !buf.is_empty() {
                return Some(Output::Data {
                    conn,
                    data: buf.freeze(),
                });
            }
        }
        None
    }

    // ---- cluster operations ---------------------------------------------------------------------

    /// Crashes broker `b`: its connections, loaded topics and unpersisted writes are lost. Returns the
    /// connections it had (the network decides how their peers learn about it).
    pub fn crash(&mut self, now: Duration, b: usize) -> Vec<ConnId> {
        self.now = now;
        if !self.is_up(b) {
            return Vec::new();
        }
        self.up[b] = false;
        let conns = self.connections_of(b);
        for c in &conns {
            self.wbufs.remove(c);
            self.drop_conn_state(*c);
        }
        let topics: Vec<String> = self
            .loaded
            .iter()
            .filter(|(_, t)| t.broker == b)
            .map(|(name, _)| name.clone())
            .collect();
        for t in topics {
            if let Some(l) = self.loaded.remove(&t) {
                self.note(format!(
                    "b{b} crash loses {} unpersisted writes on {t}",
                    l.pending.len()
                ));
            }
        }
        self.out.retain(|o| match o {
            Output::Data { conn, .. } | Output::Close { conn } => !conns.contains(conn),
        });
        self.note(format!("b{b} CRASH ({} connections)", conns.len()));
        conns
    }

    /// Restarts a crashed broker (with nothing loaded).
    pub fn restart(&mut self, now: Duration, b: usize) {
        self.now = now;
        if let Some(u) = self.up.get_mut(b) {
            if !*u {
                *u = true;
                self.note(format!("b{b} RESTART"));
            }
        }
    }

    /// Moves ownership of `topic` to broker `to`: the current owner flushes pending writes, tells
    /// its producers and consumers (as `how` says) and unloads the topic.
    pub fn move_topic(&mut self, now: Duration, topic: &str, to: usize, how: MoveKind) {
        self.now = now;
        let topic = normalize_topic(topic);
        if to >= self.up.len() {
            return;
        }
        self.note(format!("move {topic} to b{to} ({how:?})"));
        self.unload_topic(&topic, Some((to, how)));
        self.store.owners.insert(topic, to);
    }

    // ---- internals shared by the submodules -----------------------------------------------------

    fn faults(&self) -> Option<&Faults> {
        self.faults_on.then_some(&self.config.faults)
    }

    fn fault(&mut self, pick: impl Fn(&Faults) -> f64) -> bool {
        let p = self.faults().map_or(0.0, pick);
        self.rng.chance(p)
    }

    fn note(&mut self, line: String) {
        if self.config.notes {
            self.notes.push_back(line);
        }
    }

    fn handle_frame(&mut self, conn: ConnId, frame: pulsar_proto::Frame) {
        use pb::base_command::Type;
        let Some(kind) = frame.command.kind() else {
            return;
        };
        if self.config.trace_frames {
            self.note(format!("{conn} <- {}", describe(&frame.command)));
        }
        let state = match self.conns.get(&conn) {
            Some(c) => c.state,
            None => return,
        };
        let cmd = frame.command;
        match (state, kind) {
            (ConnState::AwaitConnect, Type::Connect) => {
                if let Some(c) = cmd.connect {
                    self.handle_connect(conn, &c);
                }
            }
            (ConnState::AwaitAuth, Type::AuthResponse) | (ConnState::Ready, Type::AuthResponse) => {
                if let Some(r) = cmd.auth_response {
                    self.handle_auth_response(conn, &r);
                }
            }
            (ConnState::Ready, _) => self.handle_ready(conn, kind, cmd, frame.payload),
            _ => {
                self.note(format!("{conn} {kind:?} before the handshake"));
                self.close_conn(conn, "command before handshake");
            }
        }
    }

    fn handle_ready(
        &mut self,
        conn: ConnId,
        kind: pb::base_command::Type,
        cmd: pb::BaseCommand,
        payload: Option<pulsar_proto::Payload>,
    ) {
        use pb::base_command::Type;
        match kind {
            Type::Ping => self.write(conn, pb::CommandPong {}.into()),
            Type::Pong => {}
            Type::Lookup => {
                if let Some(c) = cmd.lookup_topic {
                    self.handle_lookup(conn, &c);
                }
            }
            Type::PartitionedMetadata => {
                if let Some(c) = cmd.partition_metadata {
                    self.handle_partitioned_metadata(conn, &c);
                }
            }
            Type::GetTopicsOfNamespace => {
                if let Some(c) = cmd.get_topics_of_namespace {
                    self.handle_topics_of_namespace(conn, &c);
                }
            }
            Type::Producer => {
                if let Some(c) = cmd.producer {
                    self.handle_producer(conn, &c);
                }
            }
            Type::Send => {
                if let (Some(c), Some(p)) = (cmd.send, payload) {
                    self.handle_send(conn, &c, p);
                }
            }
            Type::CloseProducer => {
                if let Some(c) = cmd.close_producer {
                    self.handle_close_producer(conn, &c);
                }
            }
            Type::Subscribe => {
                if let Some(c) = cmd.subscribe {
                    self.handle_subscribe(conn, &c);
                }
            }
            Type::Flow => {
                if let Some(c) = cmd.flow {
                    self.handle_flow(conn, &c);
                }
            }
            Type::Ack => {
                if let Some(c) = cmd.ack {
                    self.handle_ack(conn, &c);
                }
            }
            Type::RedeliverUnacknowledgedMessages => {
                if let Some(c) = cmd.redeliver_unacknowledged_messages {
                    self.handle_redeliver(conn, &c);
                }
            }
            Type::Seek => {
                if let Some(c) = cmd.seek {
                    self.handle_seek(conn, &c);
                }
            }
            Type::CloseConsumer => {
                if let Some(c) = cmd.close_consumer {
                    self.handle_close_consumer(conn, &c);
                }
            }
            Type::Unsubscribe => {
                if let Some(c) = cmd.unsubscribe {
                    self.handle_unsubscribe(conn, &c);
                }
            }
            Type::GetSchema => {
                if let Some(c) = cmd.get_schema {
                    self.handle_get_schema(conn, &c);
                }
            }
            Type::GetLastMessageId => {
                if let Some(c) = cmd.get_last_message_id {
                    self.handle_get_last_message_id(conn, &c);
                }
            }
            Type::TcClientConnectRequest => {
                if let Some(c) = cmd.tc_client_connect_request {
                    self.handle_tc_connect(conn, &c);
                }
            }
            Type::NewTxn => {
                if let Some(c) = cmd.new_txn {
                    self.handle_new_txn(conn, &c);
                }
            }
            Type::AddPartitionToTxn => {
                if let Some(c) = cmd.add_partition_to_txn {
                    self.handle_add_partition(conn, &c);
                }
            }
            Type::AddSubscriptionToTxn => {
                if let Some(c) = cmd.add_subscription_to_txn {
                    self.handle_add_subscription(conn, &c);
                }
            }
            Type::EndTxn => {
                if let Some(c) = cmd.end_txn {
                    self.handle_end_txn(conn, &c);
                }
            }
            other => self.note(format!("{conn} ignores {other:?}")),
        }
    }

    /// Queues a command on a live connection.
    fn write(&mut self, conn: ConnId, cmd: pb::BaseCommand) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        if self.config.trace_frames {
            self.note(format!("{conn} -> {}", describe(&cmd)));
        }
        let buf = self.wbufs.entry(conn).or_default();
        encode_command(&cmd, buf);
    }

    /// Queues a payload command on a live connection.
    fn write_payload(
        &mut self,
        conn: ConnId,
        cmd: pb::BaseCommand,
        metadata: &pb::MessageMetadata,
        payload: &[u8],
    ) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        if self.config.trace_frames {
            self.note(format!("{conn} -> {}", describe(&cmd)));
        }
        let buf = self.wbufs.entry(conn).or_default();
        encode_payload_command(&cmd, metadata, payload, buf);
    }

    /// Closes a connection from the broker side: what was written goes first.
    fn close_conn(&mut self, conn: ConnId, why: &str) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.note(format!("{conn} closed by broker: {why}"));
        if let Some(buf) = self.wbufs.remove(&conn) {
            if !buf.is_empty() {
                self.out.push_back(Output::Data {
                    conn,
                    data: buf.freeze(),
                });
            }
        }
        self.out.push_back(Output::Close { conn });
        self.forget_conn(conn);
    }

    /// Forgets a connection and its producers and consumers.
    fn forget_conn(&mut self, conn: ConnId) {
        self.wbufs.remove(&conn);
        self.drop_conn_state(conn);
    }

    fn drop_conn_state(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for (pid, p) in &c.producers {
            self.release_name(&p.topic, &p.name, conn, *pid);
        }
        for p in c.producers.values() {
            self.wake_waiting(&p.topic);
        }
        let mut touched = Vec::new();
        for (cid, reg) in &c.consumers {
            self.detach_consumer(&reg.topic, &reg.subscription, (conn, *cid));
            touched.push((reg.topic.clone(), reg.subscription.clone()));
        }
        for (t, s) in touched {
            self.dispatch(&t, &s);
        }
    }

    fn next_registration(&mut self) -> u64 {
        self.next_registration += 1;
        self.next_registration
    }
}

/// Messages of `log` not acknowledged on `cursor`.
pub(crate) fn cursor_backlog(log: &TopicLog, cursor: &Cursor) -> u64 {
    log.entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !cursor.is_acked(*i))
        .map(|(i, e)| match cursor.partial.get(&i) {
            Some(set) => set.iter().map(|w| u64::from(w.count_ones())).sum(),
            None => e.num_messages.max(1) as u64,
        })
        .sum()
}

/// `my-topic` → `persistent://public/default/my-topic`; full names unchanged.
pub fn normalize_topic(topic: &str) -> String {
    if topic.contains("://") {
        topic.to_owned()
    } else if topic.matches('/').count() == 2 {
        format!("persistent://{topic}")
    } else {
        format!("persistent://public/default/{topic}")
    }
}

/// The partition index of a partition topic name (`-1` otherwise).
pub fn partition_index(topic: &str) -> i32 {
    topic
        .rsplit_once("-partition-")
        .and_then(|(_, i)| i.parse().ok())
        .unwrap_or(-1)
}
