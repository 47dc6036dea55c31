//! The application's acknowledgements, negative acknowledgements and redelivery requests,
//! routed to the wire consumer that received the message.

use super::acks::entry_of;
use super::acks::Entry;
use super::group::Group;
use super::group::Phase;
use super::Consumers;
use crate::error::Error;
use crate::handle::ConsumerId;
use crate::handle::RequestId;
use crate::message::MessageId;
use crate::shared::Shared;
use std::collections::BTreeSet;
use std::time::Instant;

impl Consumers {
    /// The wire consumer a message id belongs to.
    pub(super) fn resolve_sub(
        &self,
        g: &Group,
        id: &MessageId,
        via: Option<ConsumerId>,
    ) -> Result<ConsumerId, Error> {
        if let Some(s) = via {
            return if g.subs.contains(&s) {
                Ok(s)
            } else {
                Err(Error::InvalidState(
                    "the message was received by another consumer (or before a resubscription)",
                ))
            };
        }
        if g.subs.len() == 1 {
            if let Some(s) = g.subs.first() {
                return Ok(*s);
            }
        }
        let mut matching = g.subs.iter().filter(|s| {
            self.subs
                .get(s)
                .is_some_and(|s| s.partition == id.partition)
        });
        match (matching.next(), matching.next()) {
            (Some(s), None) if g.topics.len() == 1 => Ok(*s),
            _ => Err(Error::InvalidState(
                "ambiguous message id on a multi-topic consumer: acknowledge the Message itself",
            )),
        }
    }

    /// The wire consumer of a multi-topic (or partitioned) consumer that reads `topic`.
    pub(crate) fn sub_of_topic(&self, gid: ConsumerId, topic: &str) -> Result<ConsumerId, Error> {
        let g = self.usable_group(gid)?;
        // (a short name such as `my-topic-partition-1` names the same topic as its full name)
        let full = crate::topic::TopicName::parse(topic);
        let full = full.as_ref().map_or(topic, |t| t.as_str());
        g.subs
            .iter()
            .copied()
            .find(|s| self.subs.get(s).is_some_and(|s| &*s.topic_name == full))
            .ok_or(Error::InvalidState(
                "the message id names a topic this consumer does not read",
            ))
    }

    pub(super) fn usable_group(&self, gid: ConsumerId) -> Result<&Group, Error> {
        let g = self.groups.get(&gid).ok_or(Error::UnknownConsumer(gid))?;
        if g.phase == Phase::Closing {
            return Err(Error::Closed);
        }
        Ok(g)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ack(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        id: &MessageId,
        cumulative: bool,
        via: Option<ConsumerId>,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        if cumulative && g.opts.subscription_type.is_shared() {
            return Err(Error::InvalidState(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions",
            ));
        }
        let sid = self.resolve_sub(g, id, via)?;
        let receipts = g.opts.ack_receipts;
        let request = sh.env.ids.request();
        let receipt = receipts.then_some(request);
        let Some(outcomes) = self.subs.modify(&sid, |s| {
            s.app_acks += 1;
            s.ack(sh, now, id, cumulative, receipt)
        }) else {
            return Err(Error::UnknownConsumer(gid));
        };
        if !outcomes.is_empty() {
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    pub(crate) fn negative_ack(
        &mut self,
        now: Instant,
        gid: ConsumerId,
        id: &MessageId,
        via: Option<ConsumerId>,
        redelivery_count: u32,
    ) -> Result<(), Error> {
        let g = self.usable_group(gid)?;
        let sid = self.resolve_sub(g, id, via)?;
        if let Some(s) = self.subs.get_mut(&sid) {
            s.nack(now, id, redelivery_count);
        }
        Ok(())
    }

    pub(crate) fn redeliver_unacknowledged(
        &mut self,
        sh: &mut Shared,
        gid: ConsumerId,
    ) -> Result<(), Error> {
        let g = self.usable_group(gid)?;
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        for sid in subs {
            self.redeliver_all(sh, sid);
        }
        Ok(())
    }

    /// Redelivers entries of a wire consumer: single entries on Shared / Key_Shared (dead-lettering
    /// those that were redelivered too often), everything unacknowledged otherwise.
    pub(super) fn redeliver(&mut self, sh: &mut Shared, sid: ConsumerId, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if !s.opts.subscription_type.is_shared() {
            self.redeliver_all(sh, sid);
            return;
        }
        let (dead, rest): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|e| s.dlq_candidates.contains_key(e));
        s.dead_lettered += dead.len() as u64;
        for e in dead {
            self.dlq.push_dead(sid, e);
        }
        if rest.is_empty() {
            return;
        }
        let set: BTreeSet<Entry> = rest.iter().copied().collect();
        let removed = match self.groups.get_mut(&s.group) {
            Some(g) => {
                let before = g.queue.len();
                g.queue
                    .retain(|m| !(m.sub == sid && set.contains(&entry_of(&m.id))));
                before - g.queue.len()
            }
            None => 0,
        };
        s.queued = s.queued.saturating_sub(removed);
        s.send_redeliver(sh, &rest);
        s.return_permits(sh, removed as u32);
    }

    pub(super) fn redeliver_all(&mut self, sh: &mut Shared, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let removed = match self.groups.get_mut(&s.group) {
            Some(g) => g.take_sub_messages(sid).0,
            None => 0,
        };
        s.queued = s.queued.saturating_sub(removed);
        s.dlq_candidates.clear();
        s.send_redeliver_all(sh);
        s.return_permits(sh, removed as u32);
    }
}
