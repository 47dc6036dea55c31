//! The client minus its producers and consumers, in four parts: the environment ([`Env`]: configuration,
//! id and random sources, wall clock, counters), the connections ([`Connections`]: pool, connection
//! table, requests in flight), the lookup operations ([`Lookups`]) and the output queues
//! ([`Outputs`]).
//!
//! `Shared` holds the parts and does what needs several of them: the runtime's inputs (connection
//! outcomes, bytes, timers), routing each decoded frame, and losing a connection. Producer and
//! consumer modules receive `&mut Shared` and use the part they need; whatever the connections learn
//! for them (responses, broker commands, readiness, loss) is queued as
//! [`Dispatch`] items that `Client` routes with one-line calls.

use std::collections::BTreeSet;
use std::time::Instant;

use bytes::Bytes;
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{DecodeError, Frame, Payload, PROTOCOL_VERSION};

use crate::config::ClientConfig;
use crate::connections::Connections;
use crate::deadline::Deadline;
use crate::env::Env;
use crate::error::{ConfigError, Error, ProtocolError, UsageError};
use crate::event::Event;
use crate::handle::{ConnectionId, ConsumerId, ProducerId};
use crate::io::{IoRequest, Transmit};
use crate::lookup::Lookups;
use crate::outputs::{Dispatch, Outputs};
use crate::pool::PoolKey;
use crate::request::{OpKind, Owner, RequestKind};
use crate::service_url::{BrokerAddress, ServiceUrl};
use crate::stats::ConnectionState;
use crate::time;

/// The client minus producers and consumers: its parts, and what needs several of them.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Configuration, id and random sources, wall clock, counters.
    pub(crate) env: Env,
    /// The connections, their pool and the requests in flight on them.
    pub(crate) conns: Connections,
    /// Lookup, metadata and topic list operations in progress.
    pub(crate) lookups: Lookups,
    /// Events, dispatch queue and connection requests.
    pub(crate) out: Outputs,
    /// The frame connections decode into, kept so that each frame reuses the previous one's
    /// allocations (boxed command bodies, metadata buffers).
    scratch: Option<Box<Frame>>,
    /// Socket addresses that could not be reached since a connection last reached them: the
    /// next connection that does tells the waiting producers and consumers
    /// ([`Dispatch::AddressUp`]).
    unreachable: BTreeSet<BrokerAddress>,
}

impl Shared {
    /// A client's parts before anything happened.
    pub(crate) fn new(config: ClientConfig, service: ServiceUrl, now: Instant) -> Shared {
        Shared {
            conns: Connections::new(&config, service),
            env: Env::new(config, now),
            lookups: Lookups::default(),
            out: Outputs::default(),
            scratch: None,
            unreachable: BTreeSet::new(),
        }
    }

    // ---- operations and connections of producers, consumers and the application --------------

    /// Starts an operation that must end within the operation timeout. `via` overrides the service
    /// URL as the first target (a migrated cluster's URL).
    pub(crate) fn start_op(
        &mut self,
        now: Instant,
        owner: Owner,
        kind: OpKind,
        via: Option<PoolKey>,
    ) -> u64 {
        self.start_op_until(now, owner, kind, via, None)
    }

    /// [`start_op`](Self::start_op) for a part of a larger operation: it also ends by `limit`, the
    /// larger operation's deadline.
    pub(crate) fn start_op_until(
        &mut self,
        now: Instant,
        owner: Owner,
        kind: OpKind,
        via: Option<PoolKey>,
        limit: Option<Instant>,
    ) -> u64 {
        let deadline = Deadline::within(now, self.env.config.operation_timeout, limit);
        let id = match owner {
            Owner::App(r) => r.get(),
            _ => self.env.ids.next(),
        };
        let (target, on_service) = match via {
            Some(k) => (k, false),
            None => (self.conns.service_key(), true),
        };
        self.lookups
            .insert(now, id, owner, kind, target, on_service, deadline);
        let (env, conns, out) = (&mut self.env, &mut self.conns, &mut self.out);
        self.lookups.issue(now, env, conns, out, id);
        id
    }

    /// Uses `service` for lookups from now on; returns whether it differs from the one in use.
    pub(crate) fn set_service(&mut self, service: ServiceUrl) -> Result<bool, ConfigError> {
        self.conns.set_service(&self.env.config, service)
    }

    /// Closes a connection on the client's initiative (bad input, keep-alive, client close).
    pub(crate) fn close_connection(&mut self, now: Instant, conn: ConnectionId, reason: Error) {
        if self.conns.connection(conn).is_some() {
            self.out.push_io(IoRequest::Close { conn });
            self.lose(now, conn, reason);
        }
    }

    /// Forgets a connection and tells everyone who depended on it.
    fn lose(&mut self, now: Instant, conn: ConnectionId, reason: Error) {
        let Some(c) = self
            .conns
            .remove(&mut self.env.counters, &mut self.out, conn, &reason)
        else {
            return;
        };
        if let Some(address) = reason.unreachable_address() {
            self.unreachable.insert(address.clone());
        }
        // Operations on the connection fail with the reason it closed, when that says more than
        // "connection closed".
        let failure = match &reason {
            Error::Server { .. } | Error::IncompatibleSchema { .. } | Error::Auth(_) => {
                reason.clone()
            }
            Error::ConnectFailed { .. } | Error::HandshakeTimeout(_) => reason.clone(),
            Error::NotPulsar { .. } | Error::Protocol(_) => reason.clone(),
            _ => Error::ConnectionClosed,
        };
        let (env, conns, out) = (&mut self.env, &mut self.conns, &mut self.out);
        for p in c.pending.values() {
            if let RequestKind::Op(op) = p.kind {
                self.lookups
                    .failed(now, env, conns, out, op, failure.clone());
            }
        }
        for op in c.waiting_ops {
            self.lookups
                .failed(now, env, conns, out, op, failure.clone());
        }
        self.out.dispatch.push_back(Dispatch::ConnectionLost {
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
            .connection_mut(conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state != ConnectionState::Connecting {
            return Err(UsageError::AlreadyConnected(conn));
        }
        c.state = ConnectionState::Handshaking;
        c.last_received = now;
        // `setup_deadline` stays: the connection timeout bounds connect and handshake together.
        let proxy_to = c.key.is_proxied().then(|| c.key.logical.host_port());
        let (method, data) = match self.env.config.auth.as_mut() {
            None => (None, None),
            Some(a) => match a.auth_data() {
                Ok(d) => (Some(a.method_name().to_string()), Some(d)),
                Err(e) => {
                    self.env.counters.connect_failures += 1;
                    self.env.counters.handshake_failures += 1;
                    self.close_connection(now, conn, Error::Auth(e));
                    return Ok(());
                }
            },
        };
        let connect = pb::CommandConnect {
            client_version: self.env.config.client_version.clone(),
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
        self.conns
            .send_command(conn, &pb::BaseCommand::from(connect));
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
            .connection(conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state != ConnectionState::Connecting {
            return Err(UsageError::AlreadyConnected(conn));
        }
        let error = c.connect_failed(reason);
        self.env.counters.connect_failures += 1;
        self.conns.service_host_failed(conn);
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
            .connection(conn)
            .ok_or(UsageError::UnknownConnection(conn))?;
        if c.state == ConnectionState::Connecting {
            return Err(UsageError::NotConnected(conn));
        }
        if c.state == ConnectionState::Handshaking {
            self.env.counters.connect_failures += 1;
            self.env.counters.handshake_failures += 1;
            self.conns.service_host_failed(conn);
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
        self.conns.ingest(now, &mut self.env.counters, conn, data)
    }

    /// Processes the complete frames buffered for `conn` until `max_dispatch` items wait in
    /// [`dispatch`](Outputs::dispatch). Returns whether frames may remain (route the dispatch queue,
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
        while let Some(c) = self.conns.connection_mut(conn) {
            if self.out.dispatch.len() >= max_dispatch {
                more = true;
                break;
            }
            match c.next_frame(&mut frame) {
                Ok(false) => break,
                Ok(true) => {
                    self.env.counters.frames_in += 1;
                    if let Err(e) = self.process_frame(now, conn, &mut frame) {
                        self.protocol_error(now, conn, e);
                        break;
                    }
                }
                Err(DecodeError::ChecksumMismatch { command, .. }) => {
                    self.env.counters.frames_in += 1;
                    self.checksum_mismatch(conn, *command);
                }
                Err(e) => {
                    let e = self
                        .conns
                        .connection(conn)
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
        self.env.counters.protocol_errors += 1;
        let reason = match self.conns.connection(conn) {
            Some(c) if c.state == ConnectionState::Handshaking => {
                self.env.counters.connect_failures += 1;
                self.env.counters.handshake_failures += 1;
                let address = c.socket.clone();
                self.conns.service_host_failed(conn);
                Error::NotPulsar { address, cause: e }
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
        if self.conns.attached_consumer(conn, consumer) {
            self.out.dispatch.push_back(Dispatch::Message {
                conn,
                consumer,
                message,
                payload,
                checksum_ok,
            });
        }
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
        let state = self.conns.connection(conn).map(|c| c.state);
        if state == Some(ConnectionState::Handshaking) {
            return self.process_handshake(now, conn, kind, std::mem::take(command));
        }
        match kind {
            Type::Ping => {
                self.conns
                    .send_command(conn, &pb::BaseCommand::from(pb::CommandPong {}));
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
                if self.conns.attached_producer(conn, producer) {
                    self.out.dispatch.push_back(Dispatch::Receipt {
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
                let Some(c) = self.conns.connection_mut(conn) else {
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
                // Links waiting because this address was unreachable may try again now.
                if self.unreachable.remove(&address) {
                    self.out.dispatch.push_back(Dispatch::AddressUp {
                        address: address.clone(),
                    });
                }
                self.out
                    .events
                    .push_back(Event::ConnectionOpened { conn, address });
                // Sent here, on the connection they waited for (not on a new pick of the pool).
                for op in ops {
                    self.lookups
                        .send_request(&mut self.env, &mut self.conns, conn, op);
                }
                self.out.dispatch.push_back(Dispatch::ConnectionReady {
                    conn,
                    producers,
                    consumers,
                });
                Ok(())
            }
            Type::Error => {
                let e = command.error.unwrap_or_default();
                self.env.counters.connect_failures += 1;
                self.env.counters.handshake_failures += 1;
                self.close_connection(now, conn, Error::server(e.error, e.message));
                Ok(())
            }
            Type::AuthChallenge => {
                self.answer_challenge(now, conn, &command);
                Ok(())
            }
            Type::Ping => {
                self.conns
                    .send_command(conn, &pb::BaseCommand::from(pb::CommandPong {}));
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
        let Some(auth) = self.env.config.auth.as_mut() else {
            // No provider: answer like an authentication-disabled client (method "none", no data)
            // and let the broker decide.
            let response = pb::CommandAuthResponse {
                client_version: Some(self.env.config.client_version.clone()),
                response: Some(pb::AuthData {
                    auth_method_name: Some("none".into()),
                    auth_data: Some(Bytes::new()),
                }),
                protocol_version: Some(PROTOCOL_VERSION),
            };
            self.conns
                .send_command(conn, &pb::BaseCommand::from(response));
            return;
        };
        match auth.challenge(&challenge) {
            Ok(data) => {
                let response = pb::CommandAuthResponse {
                    client_version: Some(self.env.config.client_version.clone()),
                    response: Some(pb::AuthData {
                        auth_method_name: Some(auth.method_name().to_string()),
                        auth_data: Some(data),
                    }),
                    protocol_version: Some(PROTOCOL_VERSION),
                };
                self.conns
                    .send_command(conn, &pb::BaseCommand::from(response));
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
        if self.conns.attached_producer(conn, producer) {
            self.out.dispatch.push_back(Dispatch::ProducerCommand {
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
        if self.conns.attached_consumer(conn, consumer) {
            self.out.dispatch.push_back(Dispatch::ConsumerCommand {
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
        let Some(kind) = self.conns.take_response(conn, request_id, &self.env.ids)? else {
            return Ok(());
        };
        let result = match command.error.as_deref() {
            Some(e) if command.kind() == Some(Type::Error) => {
                Err(Error::server(e.error, e.message.clone()))
            }
            _ => Ok(command),
        };
        self.route_response(now, conn, request_id, kind, result);
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
            RequestKind::Op(op) => {
                let (env, conns, out) = (&mut self.env, &mut self.conns, &mut self.out);
                self.lookups.response(now, env, conns, out, op, result)
            }
            RequestKind::Producer(producer, request) => {
                self.out.dispatch.push_back(Dispatch::ProducerResponse {
                    conn,
                    producer,
                    request_id,
                    request,
                    result,
                })
            }
            RequestKind::Coordinator(coordinator) => {
                self.out.dispatch.push_back(Dispatch::CoordinatorResponse {
                    conn,
                    coordinator,
                    request_id,
                    result,
                })
            }
            RequestKind::Consumer(consumer, request) => {
                self.out.dispatch.push_back(Dispatch::ConsumerResponse {
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

    /// Fails the operations and requests whose deadline passed, and closes or pings the
    /// connections whose setup or keep-alive deadline passed.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        // operations whose deadline passed, whatever they wait for
        self.lookups.expire(now, &mut self.out);
        // connect / handshake deadlines and keep-alive
        let interval = self.env.config.keep_alive_interval;
        for id in self.conns.ids() {
            let Some(c) = self.conns.connection(id) else {
                continue;
            };
            if c.setup_deadline.is_some_and(|d| d <= now) {
                let reason = if c.state == ConnectionState::Connecting {
                    c.connect_failed("connect timed out".into())
                } else {
                    self.env.counters.handshake_failures += 1;
                    Error::HandshakeTimeout(c.socket.clone())
                };
                self.env.counters.connect_failures += 1;
                self.conns.service_host_failed(id);
                self.close_connection(now, id, reason);
                continue;
            }
            if c.keep_alive_deadline(interval).is_some_and(|d| d <= now) {
                if c.ping_sent.is_some() {
                    let address = c.socket.clone();
                    self.close_connection(now, id, Error::KeepAliveTimeout(address));
                } else {
                    self.conns
                        .send_command(id, &pb::BaseCommand::from(pb::CommandPing {}));
                    if let Some(c) = self.conns.connection_mut(id) {
                        c.ping_sent = Some(now);
                    }
                }
            }
        }
        // request deadlines
        while let Some((conn, request_id, kind)) = self.conns.expire_request(now) {
            self.env.counters.requests_timed_out += 1;
            self.route_response(now, conn, request_id, kind, Err(Error::Timeout));
        }
    }

    /// The earliest deadline of the connections, their requests and the operations.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        time::earliest(self.conns.next_timeout(), self.lookups.next_deadline())
    }

    /// Everything queued for the next connection with bytes to write.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.conns.poll_transmit(&mut self.env.counters)
    }

    /// Closes every connection (client shutdown). Operations still running fail.
    pub(crate) fn shutdown(&mut self, now: Instant) {
        self.env.shut = true;
        self.lookups
            .finish_all(now, &mut self.out, &Error::ClientClosed);
        for id in self.conns.ids() {
            self.close_connection(now, id, Error::ClientClosed);
        }
    }
}

/// The request id of a response command, if `command` is one.
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
        Type::TcClientConnectResponse => command
            .tc_client_connect_response
            .as_ref()
            .map(|c| c.request_id),
        Type::NewTxnResponse => command.new_txn_response.as_ref().map(|c| c.request_id),
        Type::AddPartitionToTxnResponse => command
            .add_partition_to_txn_response
            .as_ref()
            .map(|c| c.request_id),
        Type::AddSubscriptionToTxnResponse => command
            .add_subscription_to_txn_response
            .as_ref()
            .map(|c| c.request_id),
        Type::EndTxnResponse => command.end_txn_response.as_ref().map(|c| c.request_id),
        _ => None,
    }
}
