//! Everything of a client except its producers and consumers: configuration, handle and random
//! sources, connections and pool, lookup operations, and the output queues.
//!
//! Producer and consumer modules receive `&mut Shared` and use its small API: pick a connection,
//! write commands, send requests with deadlines, attach to / detach from connections. Whatever the
//! connections learn for them (responses, broker commands, readiness, loss) is queued as [`Dispatch`]
//! items that `Client` routes with one-line calls.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{DecodeError, Frame, Payload, PROTOCOL_VERSION};

use crate::config::ClientConfig;
use crate::connection::{Connection, PendingRequest};
use crate::consumer::ConsumerRequest;
use crate::error::{Error, ProtocolError, UsageError};
use crate::event::Event;
use crate::handle::{ConnectionId, ConsumerId, IdGen, ProducerId};
use crate::io::{IoRequest, Transmit};
use crate::lookup::{Op, OpResult, Owner};
use crate::pool::{Pool, PoolKey};
use crate::producer::ProducerRequest;
use crate::rng::SplitMix64;
use crate::service_url::{BrokerAddress, ServiceUrl};
use crate::stats::{ClientCounters, ConnectionState};
use crate::time;

/// What a request in flight is for; decides where its answer goes.
///
/// Requests of producers and consumers are not failed one by one when their connection drops: the
/// owner gets [`Dispatch::ConnectionLost`] and handles all of them at once.
#[derive(Debug, Clone)]
pub(crate) enum RequestKind {
    /// A lookup / metadata / topic list operation.
    Op(u64),
    /// A producer's request.
    Producer(ProducerId, ProducerRequest),
    /// A consumer's request.
    Consumer(ConsumerId, ConsumerRequest),
}

/// Work the connections produced for the producer and consumer modules.
// MESSAGE payloads travel inline: boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// The handshake finished; these producers/consumers were waiting for it.
    ConnectionReady {
        conn: ConnectionId,
        producers: Vec<ProducerId>,
        consumers: Vec<ConsumerId>,
    },
    /// The connection is gone; these producers/consumers were attached to it.
    ConnectionLost {
        conn: ConnectionId,
        reason: Error,
        producers: Vec<ProducerId>,
        consumers: Vec<ConsumerId>,
    },
    /// The answer (or timeout) of a producer request.
    ProducerResponse {
        conn: ConnectionId,
        producer: ProducerId,
        request_id: u64,
        request: ProducerRequest,
        result: Result<pb::BaseCommand, Error>,
    },
    /// The answer (or timeout) of a consumer request.
    ConsumerResponse {
        conn: ConnectionId,
        consumer: ConsumerId,
        request_id: u64,
        request: ConsumerRequest,
        result: Result<pb::BaseCommand, Error>,
    },
    /// A SEND_RECEIPT for a producer attached to `conn`.
    Receipt {
        conn: ConnectionId,
        producer: ProducerId,
        receipt: pb::CommandSendReceipt,
    },
    /// A broker command naming a producer attached to `conn` (SEND_ERROR, CLOSE_PRODUCER,
    /// TOPIC_MIGRATED).
    ProducerCommand {
        conn: ConnectionId,
        producer: ProducerId,
        command: pb::BaseCommand,
    },
    /// A MESSAGE for a consumer attached to `conn`. `checksum_ok` is false when its checksum did
    /// not match (then `payload` is `None`).
    Message {
        conn: ConnectionId,
        consumer: ConsumerId,
        message: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    },
    /// A broker command naming a consumer attached to `conn` (CLOSE_CONSUMER,
    /// REACHED_END_OF_TOPIC, ACTIVE_CONSUMER_CHANGE, ACK_RESPONSE without request id, TOPIC_MIGRATED).
    ConsumerCommand {
        conn: ConnectionId,
        consumer: ConsumerId,
        command: pb::BaseCommand,
    },
    /// An operation started by a producer or consumer finished.
    OpDone {
        owner: Owner,
        op: u64,
        result: OpResult,
    },
}

/// The client minus producers and consumers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    pub(crate) ids: IdGen,
    pub(crate) rng: SplitMix64,
    pub(crate) pool: Pool,
    /// Where every socket goes when connections go through an SNI proxy.
    sni_proxy: Option<BrokerAddress>,
    pub(crate) conns: BTreeMap<ConnectionId, Connection>,
    pub(crate) ops: BTreeMap<u64, Op>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) dispatch: VecDeque<Dispatch>,
    pub(crate) counters: ClientCounters,
    io: VecDeque<IoRequest>,
    dirty: BTreeSet<ConnectionId>,
    /// Request deadlines: (deadline, connection, request id).
    deadlines: BTreeSet<(Instant, ConnectionId, u64)>,
    /// Operation deadlines: (deadline, operation id); see `lookup.rs`.
    pub(crate) op_deadlines: BTreeSet<(Instant, u64)>,
    /// The frame connections decode into, kept so that each frame reuses the previous one's
    /// allocations (boxed command bodies, metadata buffers).
    scratch: Option<Box<Frame>>,
    /// Wall clock reference: (instant, unix milliseconds at that instant).
    clock: (Instant, u64),
    /// No new connection may be opened (the client is closed).
    pub(crate) shut: bool,
}

impl Shared {
    pub(crate) fn new(config: ClientConfig, service: ServiceUrl, now: Instant) -> Shared {
        let rng = SplitMix64::new(config.seed);
        // validated by `ClientConfig::validate`
        let sni_proxy = config.sni_proxy(&service).ok().flatten();
        let pool = Pool::new(service, config.connections_per_broker);
        Shared {
            clock: (now, config.unix_time_ms),
            config,
            ids: IdGen::new(),
            rng,
            pool,
            sni_proxy,
            conns: BTreeMap::new(),
            ops: BTreeMap::new(),
            events: VecDeque::new(),
            dispatch: VecDeque::new(),
            counters: ClientCounters::default(),
            io: VecDeque::new(),
            dirty: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            op_deadlines: BTreeSet::new(),
            scratch: None,
            shut: false,
        }
    }

    // ---- wall clock -------------------------------------------------------------------------

    /// Unix milliseconds at `now`, from the reference the runtime gave.
    pub(crate) fn unix_millis(&self, now: Instant) -> u64 {
        let (at, ms) = self.clock;
        ms.saturating_add(now.saturating_duration_since(at).as_millis() as u64)
    }

    pub(crate) fn set_unix_millis(&mut self, now: Instant, unix_ms: u64) {
        self.clock = (now, unix_ms);
    }

    // ---- connection API for producers, consumers and operations ------------------------------

    /// The connection for `key` in the slot chosen by `hint`, opened if needed.
    pub(crate) fn connection_for(
        &mut self,
        now: Instant,
        key: &PoolKey,
        hint: Option<u64>,
    ) -> ConnectionId {
        let slot = self.pool.slot_for(hint, &mut self.rng);
        if let Some(conn) = self.pool.get(key, slot) {
            return conn;
        }
        let conn = self.ids.connection();
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
            self.config.connection_timeout,
        );
        self.conns.insert(conn, c);
        self.pool.insert(key.clone(), slot, conn);
        self.counters.connections_opened += 1;
        self.io.push_back(IoRequest::Connect {
            conn,
            address: socket,
        });
        conn
    }

    /// The name TLS presents and verifies on `conn` when it is not the host of its
    /// [`IoRequest::Connect`] address: through an SNI proxy, the broker's host.
    pub(crate) fn tls_server_name(&self, conn: ConnectionId) -> Option<&str> {
        self.sni_proxy.as_ref()?;
        self.conns.get(&conn).map(|c| c.key.physical.host.as_str())
    }

    /// The service URL host currently in use, as a direct pool key.
    pub(crate) fn service_key(&self) -> PoolKey {
        PoolKey::direct(self.pool.service_host())
    }

    /// Whether the broker on `conn` supports topic-list watchers.
    pub(crate) fn supports_topic_watchers(&self, conn: ConnectionId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.topic_watchers)
    }

    pub(crate) fn is_ready(&self, conn: ConnectionId) -> bool {
        self.conns.get(&conn).is_some_and(Connection::is_ready)
    }

    pub(crate) fn connection(&self, conn: ConnectionId) -> Option<&Connection> {
        self.conns.get(&conn)
    }

    /// The broker's maximum message size on `conn` (the default before CONNECTED).
    pub(crate) fn max_message_size(&self, conn: ConnectionId) -> usize {
        self.conns
            .get(&conn)
            .map_or(pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE, |c| {
                c.max_message_size
            })
    }

    /// Writes a command on a ready connection. Returns false if the connection is not usable.
    pub(crate) fn send_command(&mut self, conn: ConnectionId, command: &pb::BaseCommand) -> bool {
        match self.conns.get_mut(&conn) {
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
    ) -> Option<&mut BytesMut> {
        match self.conns.get_mut(&conn) {
            Some(c) if c.state != ConnectionState::Connecting => {
                c.frames_out += frames;
                self.dirty.insert(conn);
                Some(&mut c.write_buf)
            }
            _ => None,
        }
    }

    /// A fresh wire request id.
    pub(crate) fn next_request_id(&mut self) -> u64 {
        self.ids.next()
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
        let deadline = Some(time::after(now, self.config.operation_timeout));
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
        if let Some(c) = self.conns.get_mut(&conn) {
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

    /// Attaches a producer to a connection (it gets readiness and loss notifications).
    pub(crate) fn attach_producer(&mut self, conn: ConnectionId, producer: ProducerId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.producers.insert(producer);
        }
    }

    pub(crate) fn detach_producer(&mut self, conn: ConnectionId, producer: ProducerId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.producers.remove(&producer);
        }
    }

    pub(crate) fn attach_consumer(&mut self, conn: ConnectionId, consumer: ConsumerId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.consumers.insert(consumer);
        }
    }

    pub(crate) fn detach_consumer(&mut self, conn: ConnectionId, consumer: ConsumerId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.consumers.remove(&consumer);
        }
    }

    /// Closes a connection on the client's initiative (bad input, keep-alive, client close).
    pub(crate) fn close_connection(&mut self, now: Instant, conn: ConnectionId, reason: Error) {
        if self.conns.contains_key(&conn) {
            self.io.push_back(IoRequest::Close { conn });
            self.lose(now, conn, reason);
        }
    }

    /// Forgets a connection and tells everyone who depended on it.
    fn lose(&mut self, now: Instant, conn: ConnectionId, reason: Error) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.pool.remove(&c.key, c.slot, conn);
        self.dirty.remove(&conn);
        self.counters.connections_closed += 1;
        for (id, p) in &c.pending {
            if let Some(d) = p.deadline {
                self.deadlines.remove(&(d, conn, *id));
            }
        }
        self.events.push_back(Event::ConnectionClosed {
            conn,
            address: c.socket.clone(),
            reason: reason.clone(),
        });
        // Operations on the connection fail with the reason it closed, when that says more than
        // "connection closed".
        let failure = match &reason {
            Error::Server { .. } | Error::Auth(_) => reason.clone(),
            Error::ConnectFailed { .. } | Error::HandshakeTimeout(_) => reason.clone(),
            Error::NotPulsar { .. } | Error::Protocol(_) => reason.clone(),
            _ => Error::ConnectionClosed,
        };
        for p in c.pending.values() {
            if let RequestKind::Op(op) = p.kind {
                self.op_failed(now, op, failure.clone());
            }
        }
        for op in c.waiting_ops {
            self.op_failed(now, op, failure.clone());
        }
        self.dispatch.push_back(Dispatch::ConnectionLost {
            conn,
            reason,
            producers: c.producers.into_iter().collect(),
            consumers: c.consumers.into_iter().collect(),
        });
    }

    // ---- runtime inputs ---------------------------------------------------------------------

    pub(crate) fn handle_connected(
        &mut self,
        now: Instant,
        conn: ConnectionId,
    ) -> Result<(), UsageError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state != ConnectionState::Connecting {
            return Err(UsageError::AlreadyConnected(conn));
        }
        c.state = ConnectionState::Handshaking;
        c.last_received = now;
        // `setup_deadline` stays: the connection timeout bounds connect and handshake together.
        let proxy_to = c.key.is_proxied().then(|| c.key.logical.host_port());
        let (method, data) = match self.config.auth.as_mut() {
            None => (None, None),
            Some(a) => match a.auth_data() {
                Ok(d) => (Some(a.method_name().to_string()), Some(d)),
                Err(e) => {
                    self.counters.connect_failures += 1;
                    self.close_connection(now, conn, Error::Auth(e));
                    return Ok(());
                }
            },
        };
        let connect = pb::CommandConnect {
            client_version: self.config.client_version.clone(),
            auth_method_name: method,
            auth_data: data,
            protocol_version: Some(PROTOCOL_VERSION),
            proxy_to_broker_url: proxy_to,
            feature_flags: Some(pb::FeatureFlags {
                supports_auth_refresh: Some(true),
                supports_broker_entry_metadata: Some(true),
                supports_partial_producer: Some(true),
                supports_topic_watchers: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.send_command(conn, &pb::BaseCommand::from(connect));
        Ok(())
    }

    pub(crate) fn handle_connect_failed(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        reason: String,
    ) -> Result<(), UsageError> {
        let c = self
            .conns
            .get(&conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state != ConnectionState::Connecting {
            return Err(UsageError::AlreadyConnected(conn));
        }
        let error = c.connect_failed(reason);
        self.counters.connect_failures += 1;
        self.pool.service_host_failed(&c.key.physical);
        self.lose(now, conn, error);
        Ok(())
    }

    pub(crate) fn handle_closed(
        &mut self,
        now: Instant,
        conn: ConnectionId,
    ) -> Result<(), UsageError> {
        let c = self
            .conns
            .get(&conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state == ConnectionState::Connecting {
            return Err(UsageError::NotConnected(conn));
        }
        if c.state == ConnectionState::Handshaking {
            self.counters.connect_failures += 1;
            let address = c.key.physical.clone();
            self.pool.service_host_failed(&address);
        }
        self.lose(now, conn, Error::ConnectionClosed);
        Ok(())
    }

    /// Buffers bytes read from a connection; [`process_frames`](Self::process_frames) decodes them.
    pub(crate) fn ingest(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        data: &[u8],
    ) -> Result<(), UsageError> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state == ConnectionState::Connecting {
            return Err(UsageError::NotConnected(conn));
        }
        c.ingest(now, data);
        self.counters.bytes_in += data.len() as u64;
        Ok(())
    }

    /// Processes the complete frames buffered for `conn` until `max_dispatch` items wait in
    /// [`dispatch`](Self::dispatch). Returns whether frames may remain (route the dispatch queue,
    /// then call again): the queue stays short (its items are large), as if the bytes had been read
    /// in smaller pieces.
    pub(crate) fn process_frames(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        max_dispatch: usize,
    ) -> bool {
        let mut frame = self
            .scratch
            .take()
            .unwrap_or_else(|| Box::new(Frame::empty()));
        let mut more = false;
        // The connection may be closed while processing (then the loop ends).
        while let Some(c) = self.conns.get_mut(&conn) {
            if self.dispatch.len() >= max_dispatch {
                more = true;
                break;
            }
            match c.next_frame(&mut frame) {
                Ok(false) => break,
                Ok(true) => {
                    self.counters.frames_in += 1;
                    if let Err(e) = self.process_frame(now, conn, &mut frame) {
                        self.protocol_error(now, conn, e);
                        break;
                    }
                }
                Err(DecodeError::ChecksumMismatch { command, .. }) => {
                    self.counters.frames_in += 1;
                    self.checksum_mismatch(conn, *command);
                }
                Err(e) => {
                    let e = self
                        .conns
                        .get(&conn)
                        .map_or_else(|| ProtocolError::from_decode(&e), |c| c.undecodable(&e));
                    self.protocol_error(now, conn, e);
                    break;
                }
            }
        }
        self.scratch = Some(frame);
        more
    }

    /// Closes `conn` after bad input. Before the handshake finished the peer has not shown that it
    /// speaks the Pulsar protocol at all: that is [`Error::NotPulsar`], which is not retried.
    fn protocol_error(&mut self, now: Instant, conn: ConnectionId, e: ProtocolError) {
        self.counters.protocol_errors += 1;
        let reason = match self.conns.get(&conn) {
            Some(c) if c.state == ConnectionState::Handshaking => {
                self.counters.connect_failures += 1;
                self.pool.service_host_failed(&c.key.physical);
                Error::NotPulsar {
                    address: c.socket.clone(),
                    cause: e,
                }
            }
            _ => Error::Protocol(e),
        };
        self.close_connection(now, conn, reason);
    }

    fn checksum_mismatch(&mut self, conn: ConnectionId, command: pb::BaseCommand) {
        if let Some(message) = command.message {
            self.route_message(conn, *message, None, false);
        }
    }

    /// Dispatches a MESSAGE to its consumer, if that consumer is attached to `conn`.
    fn route_message(
        &mut self,
        conn: ConnectionId,
        message: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) {
        let consumer = ConsumerId(message.consumer_id);
        if self.attached_consumer(conn, consumer) {
            self.dispatch.push_back(Dispatch::Message {
                conn,
                consumer,
                message,
                payload,
                checksum_ok,
            });
        }
    }

    fn attached_producer(&self, conn: ConnectionId, producer: ProducerId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.producers.contains(&producer))
    }

    fn attached_consumer(&self, conn: ConnectionId, consumer: ConsumerId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.consumers.contains(&consumer))
    }

    /// Routes one frame. The hot commands (SEND_RECEIPT, MESSAGE) are taken out of `frame` by
    /// body, leaving the boxed bodies for the next decode to reuse; the others are taken whole.
    fn process_frame(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        frame: &mut Frame,
    ) -> Result<(), ProtocolError> {
        let Frame { command, payload } = frame;
        let kind = command
            .kind()
            .ok_or_else(|| ProtocolError::UnexpectedCommand(format!("type {}", command.r#type)))?;
        let state = self.conns.get(&conn).map(|c| c.state);
        if state == Some(ConnectionState::Handshaking) {
            return self.process_handshake(now, conn, kind, std::mem::take(command));
        }
        match kind {
            Type::Ping => {
                self.send_command(conn, &pb::BaseCommand::from(pb::CommandPong {}));
            }
            Type::Pong => {}
            Type::AuthChallenge => self.answer_challenge(now, conn, command),
            Type::Connected => return Err(ProtocolError::OutOfOrder("CONNECTED".into())),
            Type::SendReceipt => {
                let receipt = command
                    .send_receipt
                    .as_deref_mut()
                    .ok_or(ProtocolError::MissingField("producer_id"))?;
                let producer = ProducerId(receipt.producer_id);
                // A receipt for a producer no longer on this connection is stale: ignored.
                if self.attached_producer(conn, producer) {
                    self.dispatch.push_back(Dispatch::Receipt {
                        conn,
                        producer,
                        receipt: std::mem::take(receipt),
                    });
                }
            }
            Type::SendError | Type::CloseProducer => {
                let id = match kind {
                    Type::SendError => command.send_error.as_ref().map(|c| c.producer_id),
                    _ => command.close_producer.as_ref().map(|c| c.producer_id),
                };
                let producer = ProducerId(id.ok_or(ProtocolError::MissingField("producer_id"))?);
                self.route_to_producer(conn, producer, std::mem::take(command));
            }
            Type::Message => {
                let message = command
                    .message
                    .as_deref_mut()
                    .ok_or(ProtocolError::MissingField("consumer_id"))?;
                let message = std::mem::take(message);
                self.route_message(conn, message, payload.take(), true);
            }
            Type::CloseConsumer | Type::ReachedEndOfTopic | Type::ActiveConsumerChange => {
                let id = match kind {
                    Type::CloseConsumer => command.close_consumer.as_ref().map(|c| c.consumer_id),
                    Type::ReachedEndOfTopic => {
                        command.reached_end_of_topic.as_ref().map(|c| c.consumer_id)
                    }
                    _ => command
                        .active_consumer_change
                        .as_ref()
                        .map(|c| c.consumer_id),
                };
                let consumer = ConsumerId(id.ok_or(ProtocolError::MissingField("consumer_id"))?);
                self.route_to_consumer(conn, consumer, std::mem::take(command));
            }
            Type::AckResponse
                if command
                    .ack_response
                    .as_ref()
                    .is_some_and(|a| a.request_id.is_none()) =>
            {
                let id = command.ack_response.as_ref().map_or(0, |a| a.consumer_id);
                self.route_to_consumer(conn, ConsumerId(id), std::mem::take(command));
            }
            Type::TopicMigrated => {
                let m = command
                    .topic_migrated
                    .as_ref()
                    .ok_or(ProtocolError::MissingField("topic_migrated"))?;
                let (id, is_producer) = (m.resource_id, m.resource_type == 0);
                let command = std::mem::take(command);
                if is_producer {
                    self.route_to_producer(conn, ProducerId(id), command);
                } else {
                    self.route_to_consumer(conn, ConsumerId(id), command);
                }
            }
            Type::WatchTopicUpdate => {
                // The watcher id is the pattern consumer's handle.
                let id = command
                    .watch_topic_update
                    .as_ref()
                    .map_or(0, |w| w.watcher_id);
                self.route_to_consumer(conn, ConsumerId(id), std::mem::take(command));
            }
            _ => match response_request_id(command) {
                Some(request_id) => {
                    self.process_response(now, conn, request_id, std::mem::take(command))?
                }
                None => return Err(ProtocolError::UnexpectedCommand(format!("{kind:?}"))),
            },
        }
        Ok(())
    }

    fn process_handshake(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        kind: Type,
        command: pb::BaseCommand,
    ) -> Result<(), ProtocolError> {
        match kind {
            Type::Connected => {
                let connected = command.connected.unwrap_or_default();
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Ok(());
                };
                c.state = ConnectionState::Ready;
                c.setup_deadline = None;
                c.server_version = Some(connected.server_version.clone());
                c.topic_watchers = connected
                    .feature_flags
                    .as_ref()
                    .and_then(|f| f.supports_topic_watchers)
                    .unwrap_or(false);
                if let Some(max) = connected.max_message_size.filter(|m| *m > 0) {
                    c.set_max_message_size(max as usize);
                }
                let address = c.socket.clone();
                let ops = std::mem::take(&mut c.waiting_ops);
                let producers = c.producers.iter().copied().collect();
                let consumers = c.consumers.iter().copied().collect();
                self.events
                    .push_back(Event::ConnectionOpened { conn, address });
                // Sent here, on the connection they waited for (not on a new pick of the pool).
                for op in ops {
                    self.send_op_request(conn, op);
                }
                self.dispatch.push_back(Dispatch::ConnectionReady {
                    conn,
                    producers,
                    consumers,
                });
                Ok(())
            }
            Type::Error => {
                let e = command.error.unwrap_or_default();
                self.counters.connect_failures += 1;
                self.close_connection(now, conn, Error::server(e.error, e.message));
                Ok(())
            }
            Type::AuthChallenge => {
                self.answer_challenge(now, conn, &command);
                Ok(())
            }
            Type::Ping => {
                self.send_command(conn, &pb::BaseCommand::from(pb::CommandPong {}));
                Ok(())
            }
            other => Err(ProtocolError::OutOfOrder(format!("{other:?}"))),
        }
    }

    fn answer_challenge(&mut self, now: Instant, conn: ConnectionId, command: &pb::BaseCommand) {
        let challenge = command
            .auth_challenge
            .as_ref()
            .and_then(|c| c.challenge.clone())
            .unwrap_or_default();
        let Some(auth) = self.config.auth.as_mut() else {
            // No provider: answer like an authentication-disabled client (method "none", no data)
            // and let the broker decide.
            let response = pb::CommandAuthResponse {
                client_version: Some(self.config.client_version.clone()),
                response: Some(pb::AuthData {
                    auth_method_name: Some("none".into()),
                    auth_data: Some(Bytes::new()),
                }),
                protocol_version: Some(PROTOCOL_VERSION),
            };
            self.send_command(conn, &pb::BaseCommand::from(response));
            return;
        };
        match auth.challenge(&challenge) {
            Ok(data) => {
                let response = pb::CommandAuthResponse {
                    client_version: Some(self.config.client_version.clone()),
                    response: Some(pb::AuthData {
                        auth_method_name: Some(auth.method_name().to_string()),
                        auth_data: Some(data),
                    }),
                    protocol_version: Some(PROTOCOL_VERSION),
                };
                self.send_command(conn, &pb::BaseCommand::from(response));
            }
            Err(e) => self.close_connection(now, conn, Error::Auth(e)),
        }
    }

    fn route_to_producer(
        &mut self,
        conn: ConnectionId,
        producer: ProducerId,
        command: pb::BaseCommand,
    ) {
        if self.attached_producer(conn, producer) {
            self.dispatch.push_back(Dispatch::ProducerCommand {
                conn,
                producer,
                command,
            });
        }
        // A command for a producer no longer on this connection (closed, moved) is stale: ignored.
    }

    fn route_to_consumer(
        &mut self,
        conn: ConnectionId,
        consumer: ConsumerId,
        command: pb::BaseCommand,
    ) {
        if self.attached_consumer(conn, consumer) {
            self.dispatch.push_back(Dispatch::ConsumerCommand {
                conn,
                consumer,
                command,
            });
        }
    }

    fn process_response(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        request_id: u64,
        command: pb::BaseCommand,
    ) -> Result<(), ProtocolError> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let Some(pending) = c.pending.remove(&request_id) else {
            // Ids are never reused: an id the client issued is a late answer to a request that
            // timed out or was given up (ignored, however many there are); any other id is bogus.
            if self.ids.issued(request_id) {
                return Ok(());
            }
            return Err(ProtocolError::UnknownRequestId(request_id));
        };
        if let Some(d) = pending.deadline {
            self.deadlines.remove(&(d, conn, request_id));
        }
        let result = match command.error.as_deref() {
            Some(e) if command.kind() == Some(Type::Error) => {
                Err(Error::server(e.error, e.message.clone()))
            }
            _ => Ok(command),
        };
        self.route_response(now, conn, request_id, pending.kind, result);
        Ok(())
    }

    fn route_response(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        request_id: u64,
        kind: RequestKind,
        result: Result<pb::BaseCommand, Error>,
    ) {
        match kind {
            RequestKind::Op(op) => self.op_response(now, op, result),
            RequestKind::Producer(producer, request) => {
                self.dispatch.push_back(Dispatch::ProducerResponse {
                    conn,
                    producer,
                    request_id,
                    request,
                    result,
                })
            }
            RequestKind::Consumer(consumer, request) => {
                self.dispatch.push_back(Dispatch::ConsumerResponse {
                    conn,
                    consumer,
                    request_id,
                    request,
                    result,
                })
            }
        }
    }

    // ---- timers -----------------------------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        // operations whose deadline passed, whatever they wait for
        self.expire_ops(now);
        // connect / handshake deadlines and keep-alive
        let interval = self.config.keep_alive_interval;
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            if c.setup_deadline.is_some_and(|d| d <= now) {
                let reason = if c.state == ConnectionState::Connecting {
                    c.connect_failed("connect timed out".into())
                } else {
                    Error::HandshakeTimeout(c.socket.clone())
                };
                self.counters.connect_failures += 1;
                self.pool.service_host_failed(&c.key.physical);
                self.close_connection(now, id, reason);
                continue;
            }
            if c.keep_alive_deadline(interval).is_some_and(|d| d <= now) {
                if c.ping_sent.is_some() {
                    let address = c.socket.clone();
                    self.close_connection(now, id, Error::KeepAliveTimeout(address));
                } else {
                    self.send_command(id, &pb::BaseCommand::from(pb::CommandPing {}));
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.ping_sent = Some(now);
                    }
                }
            }
        }
        // request deadlines
        while let Some(&(d, conn, request_id)) = self.deadlines.first() {
            if d > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let Some(p) = c.pending.remove(&request_id) else {
                continue;
            };
            self.counters.requests_timed_out += 1;
            self.route_response(now, conn, request_id, p.kind, Err(Error::Timeout));
        }
    }

    /// The earliest of the request deadlines and every connection's setup and keep-alive
    /// deadlines. Called after every application call: a plain loop over the (few) connections.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let interval = self.config.keep_alive_interval;
        let mut next = self.deadlines.first().map(|d| d.0);
        next = earliest(next, self.next_op_deadline());
        for c in self.conns.values() {
            next = earliest(next, c.setup_deadline);
            next = earliest(next, c.keep_alive_deadline(interval));
        }
        next
    }

    // ---- outputs ----------------------------------------------------------------------------

    pub(crate) fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(conn) = self.dirty.pop_first() {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            if c.write_buf.is_empty() {
                continue;
            }
            let data: Bytes = c.write_buf.split().freeze();
            c.bytes_out += data.len() as u64;
            self.counters.bytes_out += data.len() as u64;
            return Some(Transmit { conn, data });
        }
        None
    }

    /// Closes every connection (client shutdown). Operations still running fail.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.shut = true;
        let ops: Vec<u64> = self.ops.keys().copied().collect();
        for op in ops {
            self.finish_op(op, Err(Error::ClientClosed));
        }
        let ids: Vec<ConnectionId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_connection(now, id, Error::ClientClosed);
        }
    }
}

/// The request id of a response command, if `command` is one.
/// The earlier of two optional deadlines.
#[inline]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn response_request_id(command: &pb::BaseCommand) -> Option<u64> {
    match command.kind()? {
        Type::Success => command.success.as_ref().map(|c| c.request_id),
        Type::Error => command.error.as_ref().map(|c| c.request_id),
        Type::ProducerSuccess => command.producer_success.as_ref().map(|c| c.request_id),
        Type::LookupResponse => command.lookup_topic_response.as_ref().map(|c| c.request_id),
        Type::PartitionedMetadataResponse => command
            .partition_metadata_response
            .as_ref()
            .map(|c| c.request_id),
        Type::GetTopicsOfNamespaceResponse => command
            .get_topics_of_namespace_response
            .as_ref()
            .map(|c| c.request_id),
        Type::GetLastMessageIdResponse => command
            .get_last_message_id_response
            .as_ref()
            .map(|c| c.request_id),
        Type::GetSchemaResponse => command.get_schema_response.as_ref().map(|c| c.request_id),
        Type::GetOrCreateSchemaResponse => command
            .get_or_create_schema_response
            .as_ref()
            .map(|c| c.request_id),
        Type::ConsumerStatsResponse => command
            .consumer_stats_response
            .as_ref()
            .map(|c| c.request_id),
        Type::WatchTopicListSuccess => command
            .watch_topic_list_success
            .as_ref()
            .map(|c| c.request_id),
        Type::AckResponse => command.ack_response.as_ref().and_then(|c| c.request_id),
        _ => None,
    }
}

/// The broker URL of a lookup answer or a close/migration command, in the service URL's TLS mode.
///
/// As in the Java client, TLS is client-wide: a TLS client takes only the TLS URL (never falling back
/// to the plaintext one) and connects with TLS whatever scheme the broker wrote; a plaintext client
/// takes the plaintext URL.
pub(crate) fn pick_broker_url(
    tls: bool,
    plain: Option<&str>,
    secure: Option<&str>,
) -> Option<Result<BrokerAddress, Error>> {
    let url = if tls { secure } else { plain }?;
    if url.is_empty() {
        return None;
    }
    Some(
        BrokerAddress::parse(url)
            .map(|address| BrokerAddress { tls, ..address })
            .map_err(Error::from),
    )
}
