//! Registration of wire consumers with their brokers: SUBSCRIBE and its answer, connections
//! ready and lost, and a wire consumer that gives up.

use super::group::Phase;
use super::group::Watch;
use super::remap_events;
use super::send_cleanup_close;
use super::sub::Sub;
use super::ConsumerRequest;
use super::Consumers;
use crate::error::Error;
use crate::error::ProtocolError;
use crate::event::Event;
use crate::handle::ConnectionId;
use crate::handle::ConsumerId;
use crate::link::Phase as LinkPhase;
use crate::link::Step;
use crate::request::RequestKind;
use crate::service_url::BrokerAddress;
use crate::shared::Shared;
use crate::time;
use pulsar_proto::pb;
use pulsar_proto::pb::base_command::Type;
use std::time::Instant;

impl Consumers {
    pub(crate) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        ids: &[ConsumerId],
    ) {
        for &id in ids {
            if let Some(s) = self.subs.get_mut(&id) {
                let step = s.link.connection_ready(conn);
                self.apply(sh, now, id, step);
            } else if self.groups.contains_key(&id) {
                self.send_watch(sh, now, id, conn);
            }
        }
    }

    /// `address` can be reached again: consumers waiting because it could not retry now.
    pub(crate) fn address_up(&mut self, sh: &mut Shared, now: Instant, address: &BrokerAddress) {
        let ids: Vec<ConsumerId> = self.subs.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.subs.get_mut(&id) {
                let step = s.link.address_up(sh, now, address);
                self.apply(sh, now, id, step);
            }
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
        // Requests sent on the connection fail, whoever sent them (a consumer closed by the
        // broker may have left requests behind on it).
        let waiting: Vec<ConsumerId> = self
            .subs
            .values()
            .filter(|s| s.requests.values().any(|(c, _)| *c == conn))
            .map(|s| s.id)
            .collect();
        for sid in waiting {
            if let Some(s) = self.subs.get_mut(&sid) {
                let gid = s.group;
                let outcomes = s.fail_requests_on(conn);
                self.outcomes(sh, now, sid, gid, outcomes);
            }
        }
        for &id in ids {
            if let Some(s) = self.subs.get(&id) {
                if s.link.conn() != Some(conn) {
                    continue;
                }
                if s.close_requested {
                    let gid = s.group;
                    self.finish_sub(sh, now, id);
                    self.check_closed(sh, now, gid);
                    continue;
                }
                self.lose_registration(sh, now, id, |s, sh, now| {
                    s.link.connection_lost(sh, now, conn, reason)
                });
            } else if let Some(d) = self.groups.get_mut(&id).and_then(|g| g.discovery.as_mut()) {
                if matches!(d.watch, Watch::Active(c) | Watch::Pending(c, _) | Watch::Connecting(c) if c == conn)
                {
                    // Resynchronise with a listing, which opens a new watcher.
                    d.watch = Watch::Off;
                    d.next_poll = time::after(now, d.backoff.next_delay(&mut sh.env.rng));
                }
            }
        }
    }

    /// A wire consumer lost its registration: drop its queued messages, reset, and let the link
    /// decide what comes next.
    pub(super) fn lose_registration(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        link_step: impl FnOnce(&mut Sub, &mut Shared, Instant) -> Step,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let (_, first) = match self.groups.get_mut(&gid) {
            Some(g) => g.take_sub_messages(sid),
            None => (0, None),
        };
        s.reset_for_reconnect(first);
        let mark = sh.out.events.len();
        let step = link_step(s, sh, now);
        remap_events(&mut sh.out, mark, sid, gid);
        self.apply(sh, now, sid, step);
    }

    pub(super) fn subscribed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        sid: ConsumerId,
        request_id: u64,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            // Closed (or given up) while the SUBSCRIBE was in flight: the broker may hold the
            // registration, so close it there (as Java does), also when the request timed out.
            if matches!(&result, Ok(cmd) if cmd.kind() == Some(Type::Success))
                || matches!(result, Err(Error::Timeout))
            {
                send_cleanup_close(sh, now, conn, sid);
            }
            return;
        };
        if s.link.phase
            != (LinkPhase::Registering {
                conn,
                request: request_id,
            })
        {
            return;
        }
        let gid = s.group;
        match result {
            Ok(cmd) if cmd.kind() == Some(Type::Success) => {
                let (first, outcomes) = s.registered(sh, now, conn);
                self.outcomes(sh, now, sid, gid, outcomes);
                self.ask_head(sh, now, sid);
                if first {
                    self.check_ready(&mut sh.out, gid);
                } else {
                    sh.out
                        .events
                        .push_back(Event::ConsumerReconnected { consumer: gid });
                }
            }
            Ok(cmd) => {
                let e = Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                    "{:?} for SUBSCRIBE",
                    cmd.kind()
                )));
                let step = s.link.failure(sh, now, e);
                self.apply(sh, now, sid, step);
            }
            Err(e) => {
                if e == Error::Timeout {
                    // The broker may still create it: close it before trying again.
                    send_cleanup_close(sh, now, conn, sid);
                }
                let step = s.link.failure(sh, now, e);
                self.apply(sh, now, sid, step);
            }
        }
    }

    pub(super) fn apply(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId, step: Step) {
        match step {
            Step::Idle => {}
            Step::Register(conn) => self.register(sh, now, conn, sid),
            Step::Failed(error) => self.sub_failed(sh, now, sid, error),
        }
    }

    pub(super) fn register(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        sid: ConsumerId,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let request_id = sh.env.next_request_id();
        let cmd = s.subscribe_command(request_id);
        let deadline = s.link.request_deadline(&sh.env, now);
        if sh.conns.send_request_until(
            conn,
            request_id,
            &cmd,
            RequestKind::Consumer(sid, ConsumerRequest::Subscribe),
            Some(deadline),
        ) {
            s.link.registering(conn, request_id);
        } else {
            let step = s.link.failure(sh, now, Error::ConnectionClosed);
            self.apply(sh, now, sid, step);
        }
    }

    /// A wire consumer gave up (creation failed, or a fatal error after it was ready).
    pub(super) fn sub_failed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        error: Error,
    ) {
        let Some(gid) = self.subs.get(&sid).map(|s| s.group) else {
            return;
        };
        let topic = self.subs.get(&sid).map(|s| s.topic_name.to_string());
        self.finish_sub(sh, now, sid);
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        match g.phase {
            Phase::Starting => self.end_group(sh, Some(now), gid, Some(error), true),
            Phase::Closing => self.check_closed(sh, now, gid),
            Phase::Ready => {
                // A topic found by a pattern is retried as long as it matches; anything else
                // ends the consumer (as Java's consumer fails).
                let name = topic.as_deref().and_then(|t| {
                    g.topics
                        .iter()
                        .find(|(name, e)| {
                            e.discovered && (t == name.as_str() || t.starts_with(name.as_str()))
                        })
                        .map(|(name, _)| name.clone())
                });
                let retried = match &name {
                    Some(name) => match g.topics.get_mut(name) {
                        Some(mut e) => {
                            e.retry_at =
                                Some(time::after(now, e.backoff.next_delay(&mut sh.env.rng)));
                            true
                        }
                        None => false,
                    },
                    None => false,
                };
                if retried {
                    sh.out.events.push_back(Event::ConsumerReconnecting {
                        consumer: gid,
                        reason: error,
                    });
                } else {
                    self.end_group(sh, Some(now), gid, Some(error), false);
                }
            }
        }
    }
}
