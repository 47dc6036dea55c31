//! Producers: registration (PRODUCER → PRODUCER_SUCCESS), sends with an ordered pending queue matched
//! against SEND_RECEIPTs by sequence id, and transparent re-creation with in-order resend after any
//! loss (connection drop, CLOSE_PRODUCER, TOPIC_MIGRATED).
//!
//! This is the minimal unbatched producer; batching, compression, chunking, send timeouts and
//! partitioned producers extend it.

mod options;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use pulsar_proto::encode_send;
use pulsar_proto::pb::{self, base_command::Type};

pub(crate) use options::ProducerRequest;
pub use options::{OutgoingMessage, ProducerOptions};

use crate::error::{Error, ProtocolError, SendError, ServerErrorCode};
use crate::event::{Event, Resource};
use crate::handle::{ConnectionId, ProducerId, SendId};
use crate::link::{Link, Step};
use crate::lookup::OpResult;
use crate::message::MessageId;
use crate::shared::{pick_broker_url, RequestKind, Shared};
use crate::stats::ProducerStats;
use crate::topic::TopicName;

/// A message waiting for its receipt.
#[derive(Debug)]
struct Pending {
    send: SendId,
    sequence_id: u64,
    metadata: pb::MessageMetadata,
    payload: Bytes,
}

/// One producer.
#[derive(Debug)]
struct Producer {
    id: ProducerId,
    topic: TopicName,
    options: ProducerOptions,
    link: Link,
    /// The name in use (the broker's choice once registered, if none was given).
    name: Option<String>,
    pending: VecDeque<Pending>,
    next_sequence_id: u64,
    /// Producer epoch, incremented on each re-registration.
    epoch: u64,
    /// The application asked to close.
    close_requested: bool,
    messages_sent: u64,
    messages_acked: u64,
}

/// All producers of a client.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    map: BTreeMap<ProducerId, Producer>,
}

impl Producers {
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn stats(&self) -> Vec<ProducerStats> {
        self.map
            .values()
            .map(|p| ProducerStats {
                id: p.id,
                topic: p.topic.to_string(),
                name: p.name.clone(),
                state: p.link.state(),
                connection: p.link.conn(),
                pending_messages: p.pending.len(),
                messages_sent: p.messages_sent,
                messages_acked: p.messages_acked,
                reconnects: p.link.reconnects,
            })
            .collect()
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.map
            .values()
            .filter_map(|p| p.link.next_timeout())
            .min()
    }

    // ---- application commands -------------------------------------------------------------------

    pub(crate) fn create(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<ProducerId, Error> {
        let topic = TopicName::parse(topic)?;
        let id = sh.ids.producer();
        let link = Link::new(Resource::Producer(id), topic.to_string(), sh, now);
        let next_sequence_id = options.initial_sequence_id.map_or(0, |s| s.wrapping_add(1));
        self.map.insert(
            id,
            Producer {
                id,
                topic,
                name: options.name.clone(),
                options,
                link,
                pending: VecDeque::new(),
                next_sequence_id,
                epoch: 0,
                close_requested: false,
                messages_sent: 0,
                messages_acked: 0,
            },
        );
        self.step_timeout(sh, now, id);
        Ok(id)
    }

    pub(crate) fn send(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        message: OutgoingMessage,
    ) -> Result<SendId, SendError> {
        let p = self
            .map
            .get_mut(&id)
            .ok_or(SendError::UnknownProducer(id))?;
        if p.close_requested {
            return Err(SendError::ProducerClosed);
        }
        if p.pending.len() >= p.options.max_pending() {
            return Err(SendError::QueueFull);
        }
        let max = p
            .link
            .conn()
            .map_or(pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE, |c| {
                sh.max_message_size(c)
            });
        if message.payload.len() > max {
            return Err(SendError::MessageTooBig {
                size: message.payload.len(),
                max,
            });
        }
        let send = sh.ids.send();
        let sequence_id = p.next_sequence_id;
        p.next_sequence_id += 1;
        let metadata = pb::MessageMetadata {
            producer_name: String::new(),
            sequence_id,
            publish_time: sh.unix_millis(now),
            properties: message
                .properties
                .into_iter()
                .map(|(key, value)| pb::KeyValue { key, value })
                .collect(),
            partition_key: message.key,
            event_time: message.event_time,
            ..Default::default()
        };
        p.pending.push_back(Pending {
            send,
            sequence_id,
            metadata,
            payload: message.payload,
        });
        if let Some(conn) = p.link.ready_conn() {
            if let Some(last) = p.pending.back_mut() {
                write_send(sh, conn, p.id, p.name.as_deref(), last);
                p.messages_sent += 1;
            }
        }
        Ok(send)
    }

    pub(crate) fn close(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
    ) -> Result<(), Error> {
        let p = self.map.get_mut(&id).ok_or(Error::UnknownProducer(id))?;
        if p.close_requested {
            return Ok(());
        }
        p.close_requested = true;
        match p.link.ready_conn() {
            Some(conn) => {
                let request_id = sh.next_request_id();
                let cmd = pb::BaseCommand::from(pb::CommandCloseProducer {
                    producer_id: id.get(),
                    request_id,
                    ..Default::default()
                });
                sh.send_request(
                    now,
                    conn,
                    request_id,
                    &cmd,
                    RequestKind::Producer(id, ProducerRequest::Close),
                );
                p.link.closing(conn, request_id);
            }
            None => self.finish(sh, id, None),
        }
        let _ = now;
        Ok(())
    }

    /// Closes every producer (client shutdown).
    pub(crate) fn close_all(&mut self, sh: &mut Shared, now: Instant) {
        let ids: Vec<ProducerId> = self.map.keys().copied().collect();
        for id in ids {
            let _ = self.close(sh, now, id);
        }
    }

    /// Drops every producer still there (close timed out).
    pub(crate) fn force_close_all(&mut self, sh: &mut Shared, error: Error) {
        let ids: Vec<ProducerId> = self.map.keys().copied().collect();
        for id in ids {
            self.finish(sh, id, Some(error.clone()));
        }
    }

    // ---- inputs from the connections -----------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        let due: Vec<ProducerId> = self
            .map
            .values()
            .filter(|p| p.link.next_timeout().is_some_and(|t| t <= now))
            .map(|p| p.id)
            .collect();
        for id in due {
            self.step_timeout(sh, now, id);
        }
    }

    fn step_timeout(&mut self, sh: &mut Shared, now: Instant, id: ProducerId) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        let step = p.link.handle_timeout(sh, now);
        self.apply(sh, now, id, step);
    }

    pub(crate) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        ids: &[ProducerId],
    ) {
        for &id in ids {
            let Some(p) = self.map.get_mut(&id) else {
                continue;
            };
            let step = p.link.connection_ready(conn);
            self.apply(sh, now, id, step);
        }
    }

    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
        ids: &[ProducerId],
    ) {
        for &id in ids {
            let Some(p) = self.map.get_mut(&id) else {
                continue;
            };
            if p.link.conn() != Some(conn) {
                continue;
            }
            if p.close_requested {
                self.finish(sh, id, None);
                continue;
            }
            let step = p.link.connection_lost(sh, now, conn, reason);
            self.apply(sh, now, id, step);
        }
    }

    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        op: u64,
        result: OpResult,
    ) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        let step = p.link.op_done(sh, now, op, result);
        self.apply(sh, now, id, step);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        request_id: u64,
        request: ProducerRequest,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        match request {
            ProducerRequest::Cleanup => {}
            ProducerRequest::Close => self.finish(sh, id, result.err()),
            ProducerRequest::Create => {
                if p.link.phase
                    != (crate::link::Phase::Registering {
                        conn,
                        request: request_id,
                    })
                {
                    return;
                }
                match result {
                    Ok(cmd) => {
                        let Some(success) = cmd.producer_success else {
                            let e = Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                                "{:?} for PRODUCER",
                                cmd.kind()
                            )));
                            let step = p.link.failure(sh, now, e);
                            self.apply(sh, now, id, step);
                            return;
                        };
                        if success.producer_ready == Some(false) {
                            // WaitForExclusive: a second PRODUCER_SUCCESS follows, no deadline.
                            sh.expect_response(
                                conn,
                                request_id,
                                RequestKind::Producer(id, ProducerRequest::Create),
                                None,
                            );
                            return;
                        }
                        self.registered(sh, conn, id, *success);
                    }
                    Err(e) => {
                        if e == Error::Timeout {
                            // The broker may still create it: clean up before trying again.
                            let request_id = sh.next_request_id();
                            let cmd = pb::BaseCommand::from(pb::CommandCloseProducer {
                                producer_id: id.get(),
                                request_id,
                                ..Default::default()
                            });
                            sh.send_request(
                                now,
                                conn,
                                request_id,
                                &cmd,
                                RequestKind::Producer(id, ProducerRequest::Cleanup),
                            );
                        }
                        let step = p.link.failure(sh, now, e);
                        self.apply(sh, now, id, step);
                    }
                }
            }
        }
    }

    pub(crate) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        command: pb::BaseCommand,
    ) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        match command.kind() {
            Some(Type::SendReceipt) => {
                let Some(r) = command.send_receipt else {
                    return;
                };
                self.receipt(sh, now, conn, id, &r);
            }
            Some(Type::SendError) => {
                let Some(e) = command.send_error else { return };
                if ServerErrorCode::from_i32(e.error) == ServerErrorCode::NotAllowedError {
                    if p.pending
                        .front()
                        .is_some_and(|m| m.sequence_id == e.sequence_id)
                    {
                        if let Some(m) = p.pending.pop_front() {
                            sh.events.push_back(Event::SendCompleted {
                                producer: id,
                                send: m.send,
                                result: Err(SendError::Server {
                                    code: ServerErrorCode::NotAllowedError,
                                    message: e.message,
                                }),
                            });
                        }
                    }
                } else {
                    // Java client rule: the state is unknown, reconnect and resend everything pending.
                    sh.close_connection(now, conn, Error::server(e.error, e.message));
                }
            }
            Some(Type::CloseProducer) => {
                let Some(c) = command.close_producer else {
                    return;
                };
                let assigned = match pick_broker_url(
                    sh.pool.service_tls(),
                    c.assigned_broker_service_url.as_deref(),
                    c.assigned_broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => Some(a),
                    _ => None,
                };
                if p.close_requested {
                    self.finish(sh, id, None);
                    return;
                }
                let step = p.link.closed_by_broker(sh, now, assigned);
                self.apply(sh, now, id, step);
            }
            Some(Type::TopicMigrated) => {
                let Some(m) = command.topic_migrated else {
                    return;
                };
                let to = match pick_broker_url(
                    sh.pool.service_tls(),
                    m.broker_service_url.as_deref(),
                    m.broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => a,
                    _ => return,
                };
                if p.close_requested {
                    return;
                }
                let step = p.link.migrated(sh, now, to);
                self.apply(sh, now, id, step);
            }
            _ => {}
        }
    }

    // ---- internals ---------------------------------------------------------------------------

    fn apply(&mut self, sh: &mut Shared, now: Instant, id: ProducerId, step: Step) {
        match step {
            Step::Idle => {}
            Step::Register(conn) => self.register(sh, now, conn, id),
            Step::Failed(error) => {
                let ever_ready = self.map.get(&id).is_some_and(|p| p.link.ever_ready);
                if ever_ready {
                    self.finish(sh, id, Some(error));
                } else {
                    self.fail_pending(sh, id, SendError::Failed(error.clone()));
                    if let Some(p) = self.map.remove(&id) {
                        p.link.detach(sh);
                    }
                    sh.events.push_back(Event::ProducerFailed {
                        producer: id,
                        error,
                    });
                }
            }
        }
    }

    fn register(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId, id: ProducerId) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        let request_id = sh.next_request_id();
        let cmd = pb::BaseCommand::from(pb::CommandProducer {
            topic: p.topic.to_string(),
            producer_id: id.get(),
            request_id,
            producer_name: p.name.clone(),
            epoch: Some(p.epoch),
            user_provided_producer_name: Some(p.options.name.is_some()),
            metadata: p
                .options
                .properties
                .iter()
                .map(|(k, v)| pb::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            ..Default::default()
        });
        p.epoch += 1;
        if sh.send_request(
            now,
            conn,
            request_id,
            &cmd,
            RequestKind::Producer(id, ProducerRequest::Create),
        ) {
            p.link.registering(conn, request_id);
        } else {
            let step = p.link.failure(sh, now, Error::ConnectionClosed);
            self.apply(sh, now, id, step);
        }
    }

    fn registered(
        &mut self,
        sh: &mut Shared,
        conn: ConnectionId,
        id: ProducerId,
        success: pb::CommandProducerSuccess,
    ) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        let first = p.link.registered(conn);
        p.name = Some(success.producer_name.clone());
        let last = success.last_sequence_id.unwrap_or(-1);
        if first && p.options.initial_sequence_id.is_none() && last >= 0 {
            // Continue after what the broker already stored for this name; renumber anything queued
            // before registration (none of it was sent yet).
            let start = (last as u64).wrapping_add(1);
            if start > p.next_sequence_id.saturating_sub(p.pending.len() as u64) {
                let mut seq = start;
                for m in &mut p.pending {
                    m.sequence_id = seq;
                    m.metadata.sequence_id = seq;
                    seq += 1;
                }
                p.next_sequence_id = seq;
            }
        }
        // Resend everything pending, in order, with the original sequence ids.
        for m in &mut p.pending {
            write_send(sh, conn, id, p.name.as_deref(), m);
            p.messages_sent += 1;
        }
        sh.events.push_back(if first {
            Event::ProducerReady {
                producer: id,
                name: success.producer_name,
                last_sequence_id: last,
            }
        } else {
            Event::ProducerReconnected { producer: id }
        });
    }

    fn receipt(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ProducerId,
        r: &pb::CommandSendReceipt,
    ) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        let Some(head) = p.pending.front() else {
            return; // late duplicate after everything completed
        };
        if r.sequence_id < head.sequence_id {
            return; // late duplicate
        }
        if r.sequence_id > head.sequence_id {
            // Client and broker disagree: reconnect and resend everything pending.
            sh.close_connection(
                now,
                conn,
                Error::Protocol(ProtocolError::OutOfOrder(format!(
                    "receipt for sequence id {} while {} is pending",
                    r.sequence_id, head.sequence_id
                ))),
            );
            return;
        }
        let Some(m) = p.pending.pop_front() else {
            return;
        };
        p.messages_acked += 1;
        let mut message_id = r
            .message_id
            .as_ref()
            .map(MessageId::from_pb)
            .unwrap_or(MessageId::new(0, 0, -1));
        if message_id.partition < 0 {
            message_id.partition = p.topic.partition().map_or(-1, |n| n as i32);
        }
        sh.events.push_back(Event::SendCompleted {
            producer: id,
            send: m.send,
            result: Ok(message_id),
        });
    }

    fn fail_pending(&mut self, sh: &mut Shared, id: ProducerId, error: SendError) {
        let Some(p) = self.map.get_mut(&id) else {
            return;
        };
        for m in p.pending.drain(..) {
            sh.events.push_back(Event::SendCompleted {
                producer: id,
                send: m.send,
                result: Err(error.clone()),
            });
        }
    }

    /// Removes a producer that was ready (or asked to close) and tells the application.
    fn finish(&mut self, sh: &mut Shared, id: ProducerId, error: Option<Error>) {
        let send_error = match &error {
            None => SendError::ProducerClosed,
            Some(e) => SendError::Failed(e.clone()),
        };
        self.fail_pending(sh, id, send_error);
        if let Some(mut p) = self.map.remove(&id) {
            p.link.abandon(sh);
            sh.events.push_back(Event::ProducerClosed {
                producer: id,
                error,
            });
        }
    }
}

/// Writes one SEND frame.
fn write_send(
    sh: &mut Shared,
    conn: ConnectionId,
    id: ProducerId,
    name: Option<&str>,
    m: &mut Pending,
) {
    if let Some(name) = name {
        if m.metadata.producer_name != name {
            m.metadata.producer_name = name.to_string();
        }
    }
    let send = pb::CommandSend {
        producer_id: id.get(),
        sequence_id: m.sequence_id,
        ..Default::default()
    };
    if let Some(buf) = sh.write_buffer(conn, 1) {
        encode_send(&send, &m.metadata, &m.payload, buf);
    }
}
