//! The client's connections: the pool, the table of open (or opening) connections, which of them have
//! bytes to write, and the deadlines of the requests in flight on them.
//!
//! Producers, consumers and lookups use its small API: pick a connection, write commands, send
//! requests with deadlines, attach to / detach from connections. What happens when a connection is
//! lost (failing lookups, telling producers and consumers) is [`Shared`](crate::shared::Shared)'s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use pulsar_proto::pb;

use crate::config::ClientConfig;
use crate::connection::{Connection, PendingRequest};
use crate::env::Env;
use crate::error::{ConfigError, Error, ProtocolError, UsageError};
use crate::event::Event;
use crate::handle::{ConnectionId, ConsumerId, IdGen, ProducerId};
use crate::io::{IoRequest, Transmit};
use crate::outputs::Outputs;
use crate::pool::{Pool, PoolKey};
use crate::request::RequestKind;
use crate::service_url::{BrokerAddress, ServiceUrl};
use crate::stats::{ClientCounters, ConnectionState};
use crate::time;
use crate::write_buf::WriteBuf;

/// Every connection of a client and the pool that picks them.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Which connection serves which broker.
    pub(crate) pool: Pool,
    /// Where every socket goes when connections go through an SNI proxy.
    sni_proxy: Option<BrokerAddress>,
    /// The connections, by id.
    by_id: BTreeMap<ConnectionId, Connection>,
    /// Connections with bytes to write.
    dirty: BTreeSet<ConnectionId>,
    /// Request deadlines: (deadline, connection, request id).
    deadlines: BTreeSet<(Instant, ConnectionId, u64)>,
    /// How long connect and handshake may take together.
    connection_timeout: Duration,
    /// How long a request waits for its answer by default.
    operation_timeout: Duration,
    /// Silence after which a connection is pinged (and closed after another one).
    keep_alive_interval: Duration,
}

impl Connections {
    /// No connection yet; `service` is what the pool starts from.
    pub(crate) fn new(config: &ClientConfig, service: ServiceUrl) -> Connections {
        // validated by `ClientConfig::validate`
        let sni_proxy = config.sni_proxy(&service).ok().flatten();
        Connections {
            pool: Pool::new(service, config.connections_per_broker),
            sni_proxy,
            by_id: BTreeMap::new(),
            dirty: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            connection_timeout: config.connection_timeout,
            operation_timeout: config.operation_timeout,
            keep_alive_interval: config.keep_alive_interval,
        }
    }

    /// Uses `service` from now on (and the SNI proxy `config` gives for it); returns whether it
    /// differs from the service URL in use.
    pub(crate) fn set_service(
        &mut self,
        config: &ClientConfig,
        service: ServiceUrl,
    ) -> Result<bool, ConfigError> {
        let sni_proxy = config.sni_proxy(&service)?;
        if !self.pool.set_service(service) {
            return Ok(false);
        }
        self.sni_proxy = sni_proxy;
        Ok(true)
    }

    /// The connection for `key` in the slot chosen by `hint`, opened if needed (its id comes from
    /// `env`, and `out` gets the [`IoRequest::Connect`]).
    pub(crate) fn connection_for(
        &mut self,
        now: Instant,
        env: &mut Env,
        out: &mut Outputs,
        key: &PoolKey,
        hint: Option<u64>,
    ) -> ConnectionId {
        let slot = self.pool.slot_for(hint, &mut env.rng);
        if let Some(conn) = self.pool.get(key, slot) {
            return conn;
        }
        let conn = env.ids.connection();
        let socket = match &self.sni_proxy {
            Some(proxy) => BrokerAddress {
                tls: key.physical.tls,
                ..proxy.clone()
            },
            None => key.physical.clone(),
        };
        let c = Connection::new(
            conn,
            key.clone(),
            socket.clone(),
            slot,
            now,
            self.connection_timeout,
        );
        self.by_id.insert(conn, c);
        self.pool.insert(key.clone(), slot, conn);
        env.counters.connections_opened += 1;
        out.push_io(IoRequest::Connect {
            conn,
            address: socket,
        });
        conn
    }

    /// The name TLS presents and verifies on `conn` when it is not the host of its
    /// [`IoRequest::Connect`] address: through an SNI proxy, the broker's host.
    pub(crate) fn tls_server_name(&self, conn: ConnectionId) -> Option<&str> {
        self.sni_proxy.as_ref()?;
        self.by_id.get(&conn).map(|c| c.key.physical.host.as_str())
    }

    /// The service URL host currently in use, as a direct pool key.
    pub(crate) fn service_key(&self) -> PoolKey {
        PoolKey::direct(self.pool.service_host())
    }

    /// Whether the broker on `conn` supports topic-list watchers.
    pub(crate) fn supports_topic_watchers(&self, conn: ConnectionId) -> bool {
        self.by_id.get(&conn).is_some_and(|c| c.topic_watchers)
    }

    /// Whether `conn` finished its handshake.
    pub(crate) fn is_ready(&self, conn: ConnectionId) -> bool {
        self.by_id.get(&conn).is_some_and(Connection::is_ready)
    }

    /// The connection `conn`, if it is open (or opening).
    pub(crate) fn connection(&self, conn: ConnectionId) -> Option<&Connection> {
        self.by_id.get(&conn)
    }

    /// The connection `conn`, to change, if it is open (or opening).
    pub(crate) fn connection_mut(&mut self, conn: ConnectionId) -> Option<&mut Connection> {
        self.by_id.get_mut(&conn)
    }

    /// Every connection, by id.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Connection> {
        self.by_id.values()
    }

    /// The ids of every connection, in order.
    pub(crate) fn ids(&self) -> Vec<ConnectionId> {
        self.by_id.keys().copied().collect()
    }

    /// The broker's maximum message size on `conn` (the default before CONNECTED).
    pub(crate) fn max_message_size(&self, conn: ConnectionId) -> usize {
        self.by_id
            .get(&conn)
            .map_or(pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE, |c| {
                c.max_message_size
            })
    }

    /// Writes a command on a ready connection. Returns false if the connection is not usable.
    pub(crate) fn send_command(&mut self, conn: ConnectionId, command: &pb::BaseCommand) -> bool {
        match self.by_id.get_mut(&conn) {
            Some(c) if c.state != ConnectionState::Connecting => {
                c.write_command(command);
                self.dirty.insert(conn);
                true
            }
            _ => false,
        }
    }

    /// The write buffer of a handshaken connection, for payload frames encoded in place. The caller
    /// must append whole frames; `frames` is added to the frame counter.
    pub(crate) fn write_buffer(
        &mut self,
        conn: ConnectionId,
        frames: u64,
    ) -> Option<&mut WriteBuf> {
        match self.by_id.get_mut(&conn) {
            Some(c) if c.state != ConnectionState::Connecting => {
                c.frames_out += frames;
                self.dirty.insert(conn);
                Some(&mut c.write_buf)
            }
            _ => None,
        }
    }

    /// Writes a request and waits for its answer until the operation timeout.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        request_id: u64,
        command: &pb::BaseCommand,
        kind: RequestKind,
    ) -> bool {
        let deadline = Some(time::after(now, self.operation_timeout));
        self.send_request_until(conn, request_id, command, kind, deadline)
    }

    /// Like [`send_request`](Self::send_request) with an explicit deadline (`None`: wait forever).
    pub(crate) fn send_request_until(
        &mut self,
        conn: ConnectionId,
        request_id: u64,
        command: &pb::BaseCommand,
        kind: RequestKind,
        deadline: Option<Instant>,
    ) -> bool {
        if !self.send_command(conn, command) {
            return false;
        }
        self.expect_response(conn, request_id, kind, deadline);
        true
    }

    /// Registers (again) a request id whose answer is expected on `conn`.
    pub(crate) fn expect_response(
        &mut self,
        conn: ConnectionId,
        request_id: u64,
        kind: RequestKind,
        deadline: Option<Instant>,
    ) {
        if let Some(c) = self.by_id.get_mut(&conn) {
            if let Some(old) = c
                .pending
                .insert(request_id, PendingRequest { kind, deadline })
            {
                if let Some(d) = old.deadline {
                    self.deadlines.remove(&(d, conn, request_id));
                }
            }
            if let Some(d) = deadline {
                self.deadlines.insert((d, conn, request_id));
            }
        }
    }

    /// The tag of the request `request_id` answered on `conn`, which is no longer pending. `None`
    /// for a late answer (an id the client issued: a request that timed out or was given up) or a
    /// connection that is gone; an id the client never issued is a protocol error.
    pub(crate) fn take_response(
        &mut self,
        conn: ConnectionId,
        request_id: u64,
        ids: &IdGen,
    ) -> Result<Option<RequestKind>, ProtocolError> {
        let Some(c) = self.by_id.get_mut(&conn) else {
            return Ok(None);
        };
        let Some(pending) = c.pending.remove(&request_id) else {
            // Ids are never reused: an id the client issued is a late answer to a request that
            // timed out or was given up (ignored, however many there are); any other id is bogus.
            if ids.issued(request_id) {
                return Ok(None);
            }
            return Err(ProtocolError::UnknownRequestId(request_id));
        };
        if let Some(d) = pending.deadline {
            self.deadlines.remove(&(d, conn, request_id));
        }
        Ok(Some(pending.kind))
    }

    /// The next request whose deadline passed at `now` (no longer pending): its connection, id and
    /// tag.
    pub(crate) fn expire_request(
        &mut self,
        now: Instant,
    ) -> Option<(ConnectionId, u64, RequestKind)> {
        while let Some(&(d, conn, request_id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(c) = self.by_id.get_mut(&conn) else {
                continue;
            };
            let Some(p) = c.pending.remove(&request_id) else {
                continue;
            };
            return Some((conn, request_id, p.kind));
        }
        None
    }

    /// Attaches a producer to a connection (it gets readiness and loss notifications).
    pub(crate) fn attach_producer(&mut self, conn: ConnectionId, producer: ProducerId) {
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.producers.insert(producer);
        }
    }

    /// Detaches a producer from a connection.
    pub(crate) fn detach_producer(&mut self, conn: ConnectionId, producer: ProducerId) {
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.producers.remove(&producer);
        }
    }

    /// Attaches a consumer to a connection (it gets readiness and loss notifications).
    pub(crate) fn attach_consumer(&mut self, conn: ConnectionId, consumer: ConsumerId) {
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.consumers.insert(consumer);
        }
    }

    /// Detaches a consumer from a connection.
    pub(crate) fn detach_consumer(&mut self, conn: ConnectionId, consumer: ConsumerId) {
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.consumers.remove(&consumer);
        }
    }

    /// Whether `producer` is attached to `conn`.
    pub(crate) fn attached_producer(&self, conn: ConnectionId, producer: ProducerId) -> bool {
        self.by_id
            .get(&conn)
            .is_some_and(|c| c.producers.contains(&producer))
    }

    /// Whether `consumer` is attached to `conn`.
    pub(crate) fn attached_consumer(&self, conn: ConnectionId, consumer: ConsumerId) -> bool {
        self.by_id
            .get(&conn)
            .is_some_and(|c| c.consumers.contains(&consumer))
    }

    /// Tells the pool that the service host `conn` went to failed (another one is tried next).
    pub(crate) fn service_host_failed(&mut self, conn: ConnectionId) {
        if let Some(c) = self.by_id.get(&conn) {
            self.pool.service_host_failed(&c.key.physical);
        }
    }

    /// Buffers bytes read from a connection.
    pub(crate) fn ingest(
        &mut self,
        now: Instant,
        counters: &mut ClientCounters,
        conn: ConnectionId,
        data: &[u8],
    ) -> Result<(), UsageError> {
        let c = self
            .by_id
            .get_mut(&conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state == ConnectionState::Connecting {
            return Err(UsageError::NotConnected(conn));
        }
        c.ingest(now, data);
        counters.bytes_in += data.len() as u64;
        Ok(())
    }

    /// Forgets a connection (its requests' deadlines included) and reports it closed for `reason`.
    /// Returns it, for whoever depended on it to be told.
    pub(crate) fn remove(
        &mut self,
        counters: &mut ClientCounters,
        out: &mut Outputs,
        conn: ConnectionId,
        reason: &Error,
    ) -> Option<Connection> {
        let c = self.by_id.remove(&conn)?;
        self.pool.remove(&c.key, c.slot, conn);
        self.dirty.remove(&conn);
        counters.connections_closed += 1;
        for (id, p) in &c.pending {
            if let Some(d) = p.deadline {
                self.deadlines.remove(&(d, conn, *id));
            }
        }
        out.events.push_back(Event::ConnectionClosed {
            conn,
            address: c.socket.clone(),
            reason: reason.clone(),
        });
        Some(c)
    }

    /// The earliest of the request deadlines and every connection's setup and keep-alive
    /// deadlines. Called after every application call: a plain loop over the (few) connections.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let interval = self.keep_alive_interval;
        let mut next = self.deadlines.first().map(|d| d.0);
        for c in self.by_id.values() {
            next = time::earliest(next, c.setup_deadline);
            next = time::earliest(next, c.keep_alive_deadline(interval));
        }
        next
    }

    /// Everything queued for the next connection with bytes to write.
    pub(crate) fn poll_transmit(&mut self, counters: &mut ClientCounters) -> Option<Transmit> {
        // A connection stays dirty until its last chunk is out: a large payload comes as a
        // chunk of its own (see `WriteBuf`).
        while let Some(&conn) = self.dirty.first() {
            let Some(data) = self.by_id.get_mut(&conn).and_then(|c| {
                let data = c.write_buf.take()?;
                c.bytes_out += data.len() as u64;
                Some(data)
            }) else {
                self.dirty.remove(&conn);
                continue;
            };
            counters.bytes_out += data.len() as u64;
            return Some(Transmit { conn, data });
        }
        None
    }
}
