//! Inputs from the connections and lookups, dispatched to the wire consumer or group they
//! concern: lookup results, request answers, MESSAGE and the broker's other consumer commands.

use super::intake::Frame;
use super::remap_events;
use super::ConsumerRequest;
use super::Consumers;
use crate::error::Error;
use crate::event::Event;
use crate::handle::ConnectionId;
use crate::handle::ConsumerId;
use crate::pool::pick_broker_url;
use crate::request::OpResult;
use crate::shared::Shared;
use pulsar_proto::pb;
use pulsar_proto::pb::base_command::Type;
use pulsar_proto::Payload;
use std::time::Instant;

impl Consumers {
    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
        op: u64,
        result: OpResult,
    ) {
        if let Some(g) = self.groups.get(&id) {
            let name = g.topics.by_op(op).cloned();
            if let Some(name) = name {
                self.metadata_done(sh, now, id, &name, result);
                return;
            }
            if g.discovery.as_ref().is_some_and(|d| d.op == Some(op)) {
                self.topics_listed(sh, now, id, result);
                return;
            }
        }
        if let Some(s) = self.subs.get_mut(&id) {
            let gid = s.group;
            let mark = sh.out.events.len();
            let step = s.link.op_done(sh, now, op, result);
            remap_events(&mut sh.out, mark, id, gid);
            self.apply(sh, now, id, step);
        }
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
        match request {
            ConsumerRequest::Cleanup => {}
            ConsumerRequest::WatchTopics => self.watch_response(sh, now, id, conn, result),
            ConsumerRequest::Close => {
                let gid = self.subs.get(&id).map(|s| s.group);
                self.finish_sub(sh, now, id);
                if let Some(gid) = gid {
                    self.check_closed(sh, now, gid);
                }
            }
            ConsumerRequest::Subscribe => self.subscribed(sh, now, conn, id, request_id, result),
            ConsumerRequest::Ack
            | ConsumerRequest::Seek
            | ConsumerRequest::LastMessageId
            | ConsumerRequest::Unsubscribe => {
                let Some(s) = self.subs.get_mut(&id) else {
                    return;
                };
                let gid = s.group;
                if let Some(o) = s.tracked_response(request_id, result) {
                    self.outcomes(sh, now, id, gid, vec![o]);
                }
            }
        }
    }

    /// A MESSAGE for wire consumer `id` on `conn` (`payload` is `None` when `checksum_ok` is false).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn message(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        message: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if s.link.ready_conn() != Some(conn) {
            return;
        }
        let gid = s.group;
        let Some(g) = self.groups.get_mut_untimed(&gid) else {
            return;
        };
        let was_len = g.queue.len();
        let frame = Frame {
            conn,
            message,
            payload,
            checksum_ok,
        };
        let out = s.intake(sh, now, frame, &mut self.codec, &mut g.queue);
        if g.queue.len() > was_len && (was_len == 0 || g.watch_growth) {
            g.watch_growth = false;
            sh.out
                .events
                .push_back(Event::MessagesAvailable { consumer: gid });
        }
        s.dead_lettered += out.dead_letter.len() as u64;
        for e in out.dead_letter {
            self.dlq.push_dead(id, e);
        }
        self.redeliver(sh, id, out.redeliver);
    }

    /// A broker command other than MESSAGE for wire consumer (or pattern watcher) `id` on `conn`.
    pub(crate) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        command: pb::BaseCommand,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            if command.kind() == Some(Type::WatchTopicUpdate) {
                if let Some(u) = command.watch_topic_update {
                    self.watch_update(sh, now, id, conn, *u);
                }
            }
            return;
        };
        let gid = s.group;
        match command.kind() {
            Some(Type::CloseConsumer) => {
                let Some(cc) = command.close_consumer else {
                    return;
                };
                if s.close_requested {
                    self.finish_sub(sh, now, id);
                    self.check_closed(sh, now, gid);
                    return;
                }
                let assigned = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    cc.assigned_broker_service_url.as_deref(),
                    cc.assigned_broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => Some(a),
                    _ => None,
                };
                self.lose_registration(sh, now, id, |s, sh, now| {
                    s.link.closed_by_broker(sh, now, assigned)
                });
            }
            Some(Type::TopicMigrated) => {
                let Some(m) = command.topic_migrated else {
                    return;
                };
                let to = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    m.broker_service_url.as_deref(),
                    m.broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => a,
                    _ => return,
                };
                if s.close_requested {
                    return;
                }
                self.lose_registration(sh, now, id, |s, sh, now| s.link.migrated(sh, now, to));
            }
            Some(Type::ActiveConsumerChange) => {
                let active = command
                    .active_consumer_change
                    .and_then(|a| a.is_active)
                    .unwrap_or(false);
                sh.out.events.push_back(Event::ActiveConsumerChanged {
                    consumer: gid,
                    topic: s.topic_name.clone(),
                    active,
                });
            }
            Some(Type::ReachedEndOfTopic) => {
                s.reached_end = true;
                sh.out.events.push_back(Event::ReachedEndOfTopic {
                    consumer: gid,
                    topic: s.topic_name.clone(),
                });
            }
            _ => {}
        }
    }
}
