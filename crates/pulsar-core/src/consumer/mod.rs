//! Consumers: SUBSCRIBE → SUCCESS → FLOW, a receiver queue inside the core with permits refilled at
//! half, individual acks, and transparent resubscription (dropping locally queued messages) after any
//! loss (connection drop, CLOSE_CONSUMER, TOPIC_MIGRATED).
//!
//! This is the minimal consumer; batch-index acks, ack grouping, nacks, redelivery, DLQ, seek,
//! decompression and chunk reassembly extend it.

mod message;
mod options;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use pulsar_proto::pb::command_ack::ValidationError;
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{batch, Payload};

pub use message::Message;
pub(crate) use options::ConsumerRequest;
pub use options::{ConsumerOptions, InitialPosition, SubscriptionType};

use crate::compression::{self, CompressionType};
use crate::error::{Error, ProtocolError};
use crate::event::{Event, Resource};
use crate::handle::{ConnectionId, ConsumerId};
use crate::link::{Link, Phase, Step};
use crate::lookup::OpResult;
use crate::message::MessageId;
use crate::shared::{pick_broker_url, RequestKind, Shared};
use crate::stats::ConsumerStats;
use crate::topic::TopicName;

/// One consumer.
#[derive(Debug)]
struct Consumer {
    id: ConsumerId,
    topic: TopicName,
    topic_name: Arc<str>,
    options: ConsumerOptions,
    link: Link,
    queue: VecDeque<Message>,
    /// Messages handed to the application since the last FLOW.
    consumed_since_flow: u32,
    close_requested: bool,
    messages_received: u64,
    acks_sent: u64,
}

/// All consumers of a client.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    map: BTreeMap<ConsumerId, Consumer>,
}

impl Consumers {
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn stats(&self) -> Vec<ConsumerStats> {
        self.map
            .values()
            .map(|c| ConsumerStats {
                id: c.id,
                topic: c.topic.to_string(),
                subscription: c.options.subscription.clone(),
                state: c.link.state(),
                connection: c.link.conn(),
                queued_messages: c.queue.len(),
                messages_received: c.messages_received,
                acks_sent: c.acks_sent,
                reconnects: c.link.reconnects,
            })
            .collect()
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.map
            .values()
            .filter_map(|c| c.link.next_timeout())
            .min()
    }

    // ---- application commands -------------------------------------------------------------------

    pub(crate) fn subscribe(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topic: &str,
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        let topic = TopicName::parse(topic)?;
        if options.subscription.is_empty() {
            return Err(Error::InvalidState("empty subscription name"));
        }
        let id = sh.ids.consumer();
        let link = Link::new(Resource::Consumer(id), topic.to_string(), sh, now);
        self.map.insert(
            id,
            Consumer {
                id,
                topic_name: Arc::from(topic.as_str()),
                topic,
                options,
                link,
                queue: VecDeque::new(),
                consumed_since_flow: 0,
                close_requested: false,
                messages_received: 0,
                acks_sent: 0,
            },
        );
        self.step_timeout(sh, now, id);
        Ok(id)
    }

    pub(crate) fn receive(&mut self, sh: &mut Shared, id: ConsumerId) -> Option<Message> {
        let c = self.map.get_mut(&id)?;
        let m = c.queue.pop_front()?;
        c.consumed_since_flow += 1;
        if c.consumed_since_flow >= (c.options.queue_size() / 2).max(1) {
            if let Some(conn) = c.link.ready_conn() {
                send_flow(sh, conn, id, c.consumed_since_flow);
                c.consumed_since_flow = 0;
            }
        }
        Some(m)
    }

    pub(crate) fn ack(
        &mut self,
        sh: &mut Shared,
        id: ConsumerId,
        message: &MessageId,
    ) -> Result<(), Error> {
        let c = self.map.get_mut(&id).ok_or(Error::UnknownConsumer(id))?;
        let conn = c.link.ready_conn().ok_or(Error::ConnectionClosed)?;
        let mut wire = message.to_pb();
        if message.batch_index >= 0 && message.batch_size > 0 {
            wire.ack_set = ack_set_without(message.batch_index, message.batch_size);
        }
        let cmd = pb::BaseCommand::from(pb::CommandAck {
            consumer_id: id.get(),
            ack_type: pb::command_ack::AckType::Individual as i32,
            message_id: vec![wire],
            ..Default::default()
        });
        if sh.send_command(conn, &cmd) {
            c.acks_sent += 1;
            Ok(())
        } else {
            Err(Error::ConnectionClosed)
        }
    }

    pub(crate) fn close(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
    ) -> Result<(), Error> {
        let c = self.map.get_mut(&id).ok_or(Error::UnknownConsumer(id))?;
        if c.close_requested {
            return Ok(());
        }
        c.close_requested = true;
        match c.link.ready_conn() {
            Some(conn) => {
                let request_id = sh.next_request_id();
                let cmd = pb::BaseCommand::from(pb::CommandCloseConsumer {
                    consumer_id: id.get(),
                    request_id,
                    ..Default::default()
                });
                sh.send_request(
                    now,
                    conn,
                    request_id,
                    &cmd,
                    RequestKind::Consumer(id, ConsumerRequest::Close),
                );
                c.link.closing(conn, request_id);
            }
            None => self.finish(sh, id, None),
        }
        Ok(())
    }

    pub(crate) fn close_all(&mut self, sh: &mut Shared, now: Instant) {
        let ids: Vec<ConsumerId> = self.map.keys().copied().collect();
        for id in ids {
            let _ = self.close(sh, now, id);
        }
    }

    pub(crate) fn force_close_all(&mut self, sh: &mut Shared, error: Error) {
        let ids: Vec<ConsumerId> = self.map.keys().copied().collect();
        for id in ids {
            self.finish(sh, id, Some(error.clone()));
        }
    }

    // ---- inputs from the connections -----------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        let due: Vec<ConsumerId> = self
            .map
            .values()
            .filter(|c| c.link.next_timeout().is_some_and(|t| t <= now))
            .map(|c| c.id)
            .collect();
        for id in due {
            self.step_timeout(sh, now, id);
        }
    }

    fn step_timeout(&mut self, sh: &mut Shared, now: Instant, id: ConsumerId) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        let step = c.link.handle_timeout(sh, now);
        self.apply(sh, now, id, step);
    }

    pub(crate) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        ids: &[ConsumerId],
    ) {
        for &id in ids {
            let Some(c) = self.map.get_mut(&id) else {
                continue;
            };
            let step = c.link.connection_ready(conn);
            self.apply(sh, now, id, step);
        }
    }

    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
        ids: &[ConsumerId],
    ) {
        for &id in ids {
            let Some(c) = self.map.get_mut(&id) else {
                continue;
            };
            if c.link.conn() != Some(conn) {
                continue;
            }
            if c.close_requested {
                self.finish(sh, id, None);
                continue;
            }
            c.queue.clear();
            c.consumed_since_flow = 0;
            let step = c.link.connection_lost(sh, now, conn, reason);
            self.apply(sh, now, id, step);
        }
    }

    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
        op: u64,
        result: OpResult,
    ) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        let step = c.link.op_done(sh, now, op, result);
        self.apply(sh, now, id, step);
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        request_id: u64,
        request: ConsumerRequest,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        match request {
            ConsumerRequest::Cleanup => {}
            ConsumerRequest::Close => self.finish(sh, id, result.err()),
            ConsumerRequest::Subscribe => {
                if c.link.phase
                    != (Phase::Registering {
                        conn,
                        request: request_id,
                    })
                {
                    return;
                }
                match result {
                    Ok(cmd) if cmd.kind() == Some(Type::Success) => {
                        let first = c.link.registered(conn);
                        c.queue.clear();
                        c.consumed_since_flow = 0;
                        send_flow(sh, conn, id, c.options.queue_size());
                        sh.events.push_back(if first {
                            Event::ConsumerReady { consumer: id }
                        } else {
                            Event::ConsumerReconnected { consumer: id }
                        });
                    }
                    Ok(cmd) => {
                        let e = Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                            "{:?} for SUBSCRIBE",
                            cmd.kind()
                        )));
                        let step = c.link.failure(sh, now, e);
                        self.apply(sh, now, id, step);
                    }
                    Err(e) => {
                        if e == Error::Timeout {
                            let request_id = sh.next_request_id();
                            let cmd = pb::BaseCommand::from(pb::CommandCloseConsumer {
                                consumer_id: id.get(),
                                request_id,
                                ..Default::default()
                            });
                            sh.send_request(
                                now,
                                conn,
                                request_id,
                                &cmd,
                                RequestKind::Consumer(id, ConsumerRequest::Cleanup),
                            );
                        }
                        let step = c.link.failure(sh, now, e);
                        self.apply(sh, now, id, step);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        command: pb::BaseCommand,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        match command.kind() {
            Some(Type::Message) => {
                if c.link.ready_conn() != Some(conn) {
                    return;
                }
                let Some(m) = command.message else { return };
                let payload = match payload {
                    Some(p) if checksum_ok => p,
                    _ => {
                        // Corrupt in transit: tell the broker, give the permit back.
                        c.discard(sh, conn, &m, ValidationError::ChecksumMismatch, 1);
                        return;
                    }
                };
                let was_empty = c.queue.is_empty();
                let limit = sh.max_message_size(conn).saturating_mul(2);
                c.enqueue(sh, conn, &m, payload, limit);
                if was_empty && !c.queue.is_empty() {
                    sh.events
                        .push_back(Event::MessagesAvailable { consumer: id });
                }
            }
            Some(Type::CloseConsumer) => {
                let Some(cc) = command.close_consumer else {
                    return;
                };
                if c.close_requested {
                    self.finish(sh, id, None);
                    return;
                }
                let assigned = match pick_broker_url(
                    sh.pool.service_tls(),
                    cc.assigned_broker_service_url.as_deref(),
                    cc.assigned_broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => Some(a),
                    _ => None,
                };
                c.queue.clear();
                c.consumed_since_flow = 0;
                let step = c.link.closed_by_broker(sh, now, assigned);
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
                if c.close_requested {
                    return;
                }
                c.queue.clear();
                c.consumed_since_flow = 0;
                let step = c.link.migrated(sh, now, to);
                self.apply(sh, now, id, step);
            }
            _ => {}
        }
    }

    // ---- internals ---------------------------------------------------------------------------

    fn apply(&mut self, sh: &mut Shared, now: Instant, id: ConsumerId, step: Step) {
        match step {
            Step::Idle => {}
            Step::Register(conn) => self.register(sh, now, conn, id),
            Step::Failed(error) => {
                let ever_ready = self.map.get(&id).is_some_and(|c| c.link.ever_ready);
                if ever_ready {
                    self.finish(sh, id, Some(error));
                } else if let Some(c) = self.map.remove(&id) {
                    c.link.detach(sh);
                    sh.events.push_back(Event::ConsumerFailed {
                        consumer: id,
                        error,
                    });
                }
            }
        }
    }

    fn register(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId, id: ConsumerId) {
        let Some(c) = self.map.get_mut(&id) else {
            return;
        };
        let request_id = sh.next_request_id();
        let o = &c.options;
        let cmd = pb::BaseCommand::from(pb::CommandSubscribe {
            topic: c.topic.to_string(),
            subscription: o.subscription.clone(),
            sub_type: o.subscription_type.to_pb(),
            consumer_id: id.get(),
            request_id,
            consumer_name: o.consumer_name.clone(),
            durable: Some(o.durable),
            initial_position: Some(match o.initial_position {
                InitialPosition::Latest => 0,
                InitialPosition::Earliest => 1,
            }),
            ..Default::default()
        });
        if sh.send_request(
            now,
            conn,
            request_id,
            &cmd,
            RequestKind::Consumer(id, ConsumerRequest::Subscribe),
        ) {
            c.link.registering(conn, request_id);
        } else {
            let step = c.link.failure(sh, now, Error::ConnectionClosed);
            self.apply(sh, now, id, step);
        }
    }

    fn finish(&mut self, sh: &mut Shared, id: ConsumerId, error: Option<Error>) {
        if let Some(mut c) = self.map.remove(&id) {
            c.link.abandon(sh);
            sh.events.push_back(Event::ConsumerClosed {
                consumer: id,
                error,
            });
        }
    }
}

impl Consumer {
    /// Tells the broker a message could not be used (it will not be redelivered) and returns its
    /// permits.
    fn discard(
        &mut self,
        sh: &mut Shared,
        conn: ConnectionId,
        m: &pb::CommandMessage,
        error: ValidationError,
        permits: u32,
    ) {
        let cmd = pb::BaseCommand::from(pb::CommandAck {
            consumer_id: self.id.get(),
            ack_type: pb::command_ack::AckType::Individual as i32,
            message_id: vec![m.message_id.clone()],
            validation_error: Some(error as i32),
            ..Default::default()
        });
        sh.send_command(conn, &cmd);
        self.consumed_since_flow += permits;
        if self.consumed_since_flow >= (self.options.queue_size() / 2).max(1) {
            send_flow(sh, conn, self.id, self.consumed_since_flow);
            self.consumed_since_flow = 0;
        }
    }

    /// Adds the message(s) of one MESSAGE frame to the receiver queue.
    fn enqueue(
        &mut self,
        sh: &mut Shared,
        conn: ConnectionId,
        m: &pb::CommandMessage,
        mut payload: Payload,
        limit: usize,
    ) {
        let count = payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32;
        let kind = payload.metadata.compression.unwrap_or(0);
        if kind != 0 {
            let size = payload.metadata.uncompressed_size.unwrap_or(0) as usize;
            let decoded = CompressionType::try_from(kind)
                .and_then(|k| compression::decompress(k, &payload.data, size, limit));
            match decoded {
                Ok(data) => payload.data = data,
                Err(_) => {
                    self.discard(sh, conn, m, ValidationError::DecompressionError, count);
                    return;
                }
            }
        }
        let base = MessageId::from_pb(&m.message_id);
        let meta = &payload.metadata;
        let redelivery_count = m.redelivery_count.unwrap_or(0);
        let properties = |kv: &[pb::KeyValue]| -> Vec<(String, String)> {
            kv.iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect()
        };
        match meta.num_messages_in_batch {
            Some(n) => {
                for (i, entry) in batch::split(payload.data.clone(), n as u32).enumerate() {
                    let Ok(entry) = entry else { break };
                    self.messages_received += 1;
                    let em = &entry.metadata;
                    self.queue.push_back(Message {
                        consumer: self.id,
                        topic: self.topic_name.clone(),
                        id: MessageId {
                            batch_index: i as i32,
                            batch_size: n,
                            ..base
                        },
                        payload: entry.payload,
                        key: em.partition_key.clone(),
                        properties: properties(&em.properties),
                        publish_time: meta.publish_time,
                        event_time: em.event_time.or(meta.event_time).filter(|t| *t > 0),
                        producer_name: meta.producer_name.clone(),
                        sequence_id: em.sequence_id.unwrap_or(meta.sequence_id + i as u64),
                        redelivery_count,
                    });
                }
            }
            _ => {
                self.messages_received += 1;
                self.queue.push_back(Message {
                    consumer: self.id,
                    topic: self.topic_name.clone(),
                    id: base,
                    payload: payload.data,
                    key: meta.partition_key.clone(),
                    properties: properties(&meta.properties),
                    publish_time: meta.publish_time,
                    event_time: meta.event_time.filter(|t| *t > 0),
                    producer_name: meta.producer_name.clone(),
                    sequence_id: meta.sequence_id,
                    redelivery_count,
                });
            }
        }
    }
}

fn send_flow(sh: &mut Shared, conn: ConnectionId, id: ConsumerId, permits: u32) {
    let cmd = pb::BaseCommand::from(pb::CommandFlow {
        consumer_id: id.get(),
        message_permits: permits,
    });
    sh.send_command(conn, &cmd);
}

/// The ack set of a batch with only `index` acknowledged (set bits = still unacknowledged).
fn ack_set_without(index: i32, size: i32) -> Vec<i64> {
    let size = size.max(0) as usize;
    let words = size.div_ceil(64);
    let mut set = vec![0u64; words];
    for bit in 0..size {
        if let Some(w) = set.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }
    if let Some(w) = set.get_mut(index as usize / 64) {
        *w &= !(1u64 << (index as usize % 64));
    }
    set.into_iter().map(|w| w as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_set_clears_only_the_acked_index() {
        assert_eq!(ack_set_without(0, 3), vec![0b110]);
        assert_eq!(ack_set_without(2, 3), vec![0b011]);
        let s = ack_set_without(64, 70);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], -1);
        assert_eq!(s[1], 0b111110);
    }
}
