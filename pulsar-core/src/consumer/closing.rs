//! Closing: wire consumers and groups closed by the application, given up, or dropped with the
//! client.

use super::group::Group;
use super::group::GroupOp;
use super::group::Phase;
use super::group::Watch;
use super::send_cleanup_close;
use super::send_close;
use super::ConsumerRequest;
use super::Consumers;
use crate::error::Error;
use crate::event::Event;
use crate::handle::ConsumerId;
use crate::shared::Shared;
use std::time::Instant;

impl Consumers {
    pub(crate) fn close(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
    ) -> Result<(), Error> {
        let g = self
            .groups
            .get_mut(&gid)
            .ok_or(Error::UnknownConsumer(gid))?;
        if g.phase == Phase::Closing {
            return Ok(());
        }
        g.phase = Phase::Closing;
        g.topics.for_each_mut(|_, t| {
            if let Some(op) = t.op.take() {
                sh.lookups.cancel(op);
            }
            t.retry_at = None;
            t.next_check = None;
        });
        self.stop_discovery(sh, now, gid);
        let subs: Vec<ConsumerId> = self
            .groups
            .get(&gid)
            .map(|g| g.subs.iter().copied().collect())
            .unwrap_or_default();
        for sid in subs {
            self.close_sub(sh, now, sid);
        }
        self.check_closed(sh, now, gid);
        Ok(())
    }

    pub(super) fn close_sub(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if s.close_requested {
            return;
        }
        s.close_requested = true;
        let gid = s.group;
        let flushed = s.flush_acks(sh, now);
        self.outcomes(sh, now, sid, gid, flushed);
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        match s.link.ready_conn() {
            Some(conn) => {
                let request_id = send_close(sh, now, conn, sid, ConsumerRequest::Close);
                s.link.closing(conn, request_id);
            }
            None => self.finish_sub(sh, now, sid),
        }
    }

    /// Removes a wire consumer (closed, unsubscribed or given up) and its queued messages.
    pub(super) fn finish_sub(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(mut s) = self.subs.remove(&sid) else {
            return;
        };
        s.link.abandon(sh);
        let gid = s.group;
        let outcomes = s.fail_requests(Error::Closed);
        if let Some(g) = self.groups.get_mut(&gid) {
            g.subs.remove(&sid);
            g.take_sub_messages(sid);
            forget_topic_sub(g, &s.topic_name, sid);
        }
        self.dlq.forget_sub(sid);
        // outcomes of a removed sub only concern group requests
        for o in outcomes {
            self.group_outcome_without_sub(sh, now, gid, o);
        }
    }

    pub(super) fn check_closed(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let done = self
            .groups
            .get(&gid)
            .is_some_and(|g| g.phase == Phase::Closing && g.subs.is_empty());
        if done {
            self.end_group(sh, Some(now), gid, None, false);
        }
    }

    /// Removes a group and everything it has; `failed`: it never became ready. `now` is `None`
    /// when the client is shutting every connection down (no CLOSE_CONSUMER for its wire consumers).
    pub(super) fn end_group(
        &mut self,
        sh: &mut Shared,
        now: Option<Instant>,
        gid: ConsumerId,
        error: Option<Error>,
        failed: bool,
    ) {
        let Some(g) = self.groups.remove(&gid) else {
            return;
        };
        for t in g.topics.values() {
            if let Some(op) = t.op {
                sh.lookups.cancel(op);
            }
        }
        if let Some(d) = &g.discovery {
            if let Some(op) = d.op {
                sh.lookups.cancel(op);
            }
            if let Watch::Active(conn) | Watch::Pending(conn, _) | Watch::Connecting(conn) = d.watch
            {
                sh.conns.detach_consumer(conn, gid);
            }
        }
        for sid in g.subs {
            if let Some(mut s) = self.subs.remove(&sid) {
                if let (Some(conn), Some(now)) = (s.link.ready_conn(), now) {
                    // The broker may still hold it: close it, ignoring the answer.
                    send_cleanup_close(sh, now, conn, sid);
                }
                s.link.abandon(sh);
                self.dlq.forget_sub(sid);
            }
        }
        self.dlq.close_group(gid);
        for (request, op) in g.ops {
            let e = Error::Closed;
            sh.out.events.push_back(match op {
                GroupOp::LastIds { .. } => Event::LastMessageIds {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::HasAvailable { .. } => Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::Seek { .. } => Event::SeekCompleted {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::Unsubscribe { .. } => Event::Unsubscribed {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
            });
        }
        sh.out.events.push_back(if failed {
            Event::ConsumerFailed {
                consumer: gid,
                error: error.unwrap_or(Error::Closed),
            }
        } else {
            Event::ConsumerClosed {
                consumer: gid,
                error,
            }
        });
    }

    pub(crate) fn close_all(&mut self, sh: &mut Shared, now: Instant) {
        let ids: Vec<ConsumerId> = self.groups.keys().copied().collect();
        for id in ids {
            let _ = self.close(sh, now, id);
        }
    }

    pub(crate) fn force_close_all(&mut self, sh: &mut Shared, error: Error) {
        let ids: Vec<ConsumerId> = self.groups.keys().copied().collect();
        for id in ids {
            // the client shuts every connection down next: nothing to clean up on the broker
            self.end_group(sh, None, id, Some(error.clone()), false);
        }
    }
}

/// Removes wire consumer `sid` (on `topic`) from its topic's entry: the entry of `topic` itself
/// (a partition named directly, or found by a pattern) or of the partitioned topic it belongs
/// to, without a walk over every topic, so closing a pattern consumer over n topics is not
/// O(n²). Walks them all only when neither entry holds it (its topic was dropped first). No
/// deadline, resolution or operation depends on a topic's wire consumers.
fn forget_topic_sub(g: &mut Group, topic: &str, sid: ConsumerId) {
    let mut found = false;
    for name in std::iter::once(topic).chain(partitioned_base(topic)) {
        if let Some(subs) = g.topics.subs_mut(name) {
            let before = subs.len();
            subs.retain(|_, id| *id != sid);
            found |= subs.len() != before;
        }
    }
    if !found {
        g.topics
            .for_each_subs(|subs| subs.retain(|_, id| *id != sid));
    }
}

/// The partitioned topic that `topic` is a partition of (`<name>-partition-<n>`), if it is one.
fn partitioned_base(topic: &str) -> Option<&str> {
    let (base, index) = topic.rsplit_once("-partition-")?;
    (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::partitioned_base;

    #[test]
    fn partitioned_base_strips_only_a_numbered_partition_suffix() {
        let t = "persistent://public/default/orders";
        assert_eq!(
            partitioned_base("persistent://public/default/orders-partition-12"),
            Some(t)
        );
        assert_eq!(partitioned_base(t), None);
        assert_eq!(partitioned_base("persistent://p/d/a-partition-"), None);
        assert_eq!(partitioned_base("persistent://p/d/a-partition-x1"), None);
    }
}
