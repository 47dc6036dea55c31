//! Timers: the due deadlines of wire consumers (link, grouped acks, negative acks, ack timeout,
//! chunk expiry) and of groups (topic retries, partition checks, pattern polls).

use super::group::Phase;
use super::intake;
use super::remap_events;
use super::Consumers;
use crate::event::Event;
use crate::handle::ConsumerId;
use crate::message::MessageId;
use crate::shared::Shared;
use crate::topic::TopicName;
use std::time::Instant;

impl Consumers {
    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        self.refresh_deadlines();
        for sid in self.subs.due(now) {
            self.sub_timeout(sh, now, sid);
        }
        self.refresh_deadlines();
        for gid in self.groups.due(now) {
            self.group_timeout(sh, now, gid);
        }
        self.refresh_deadlines();
    }

    pub(super) fn step_link(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let mark = sh.out.events.len();
        let step = s.link.handle_timeout(sh, now);
        remap_events(&mut sh.out, mark, sid, gid);
        self.apply(sh, now, sid, step);
    }

    pub(super) fn sub_timeout(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        self.resume_link(sh, now, sid);
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let mut outcomes = Vec::new();
        if s.acks.next_timeout().is_some_and(|t| t <= now) {
            outcomes = s.flush_acks(sh, now);
        }
        let mut redeliver = s.nacks.take_due(now);
        let timed_out = s.unacked.take_expired(now);
        s.ack_timeouts += timed_out.len() as u64;
        if s.opts.report_ack_timeouts && !timed_out.is_empty() {
            let partition = s.partition;
            sh.out.events.push_back(Event::AckTimeoutRedelivery {
                consumer: gid,
                topic: s.topic_name.clone(),
                ids: timed_out
                    .iter()
                    .map(|&(ledger, entry)| MessageId::new(ledger, entry, partition))
                    .collect(),
            });
        }
        redeliver.extend(timed_out);
        let mut out = intake::IntakeOut::default();
        let expired = s.chunks.as_mut().map(|c| c.expire(now)).unwrap_or_default();
        for d in expired {
            // (expired messages have no orphaned chunks left to hold)
            s.handle_dropped(sh, now, d, now, &mut out);
        }
        redeliver.extend(out.redeliver);
        self.outcomes(sh, now, sid, gid, outcomes);
        self.redeliver(sh, sid, redeliver);
    }

    /// Runs the link's timer if it is due and no seek holds it: the broker closes a consumer when
    /// it seeks, and resubscribing before the answer could restart a reader at the old position.
    pub(super) fn resume_link(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        if self
            .subs
            .get(&sid)
            .is_some_and(|s| s.seek.is_none() && s.link.next_timeout().is_some_and(|t| t <= now))
        {
            self.step_link(sh, now, sid);
        }
    }

    pub(super) fn group_timeout(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.phase == Phase::Starting && g.create_deadline.expired(now) {
            let error = g.create_deadline.error();
            self.end_group(sh, Some(now), gid, Some(error), true);
            return;
        }
        let mut resolve = Vec::new();
        let mut ensure = Vec::new();
        for name in g.topics.due(now) {
            let Some(mut t) = g.topics.get_mut(&name) else {
                continue;
            };
            if t.retry_at.is_some_and(|r| r <= now) {
                t.retry_at = None;
                if t.partitions.is_none() || (t.partitions == Some(0) && !t.discovered) {
                    resolve.push(name.clone());
                } else {
                    ensure.push(name.clone());
                }
            }
            if t.next_check.is_some_and(|r| r <= now) && t.op.is_none() {
                t.next_check = None;
                resolve.push(name.clone());
            }
        }
        let poll = g
            .discovery
            .as_ref()
            .is_some_and(|d| d.op.is_none() && d.next_poll <= now);
        for name in resolve {
            if let Ok(topic) = TopicName::parse(&name) {
                self.resolve_topic(sh, now, gid, &topic);
            }
        }
        for name in ensure {
            self.ensure_subs(sh, now, gid, &name);
        }
        if poll {
            self.poll_topics(sh, now, gid);
        }
    }
}
