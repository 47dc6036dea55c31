//! Seeking: the application's seeks, a reader's positioning at the latest message, and what a
//! completed seek resets.

use super::acks;
use super::group::GroupOp;
use super::sub::SubOutcome;
use super::sub::SubRequest;
use super::Consumers;
use super::SeekTo;
use crate::error::Error;
use crate::handle::ConsumerId;
use crate::handle::RequestId;
use crate::message::MessageId;
use crate::shared::Shared;
use pulsar_proto::pb;
use std::time::Instant;

impl Consumers {
    pub(crate) fn seek(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        to: SeekTo,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        let targets: Vec<ConsumerId> = match to {
            SeekTo::Id(id)
                if id != MessageId::EARLIEST && id != MessageId::LATEST && g.subs.len() > 1 =>
            {
                vec![self.resolve_sub(g, &id, None)?]
            }
            _ => g.subs.iter().copied().collect(),
        };
        if targets.is_empty() {
            return Err(Error::InvalidState("the consumer has no topic to seek"));
        }
        if targets
            .iter()
            .any(|s| self.subs.get(s).is_some_and(|s| s.seek.is_some()))
        {
            return Err(Error::InvalidState("a seek is already in progress"));
        }
        let request = sh.env.ids.request();
        if let Some(g) = self.groups.get_mut(&gid) {
            g.ops.insert(
                request,
                GroupOp::Seek {
                    waiting: targets.len(),
                    error: None,
                },
            );
        }
        for sid in targets {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            let mut outcomes = s.flush_acks(sh, now);
            if !s.send_seek(sh, now, to, SubRequest::Seek(request)) {
                outcomes.push(SubOutcome::Seek(request, Err(Error::ConnectionClosed)));
            }
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    /// Asks for the last message of a reader starting inclusively at the latest message
    /// ([`Sub::head_pending`](super::sub::Sub::head_pending)); [`seek_head`](Self::seek_head)
    /// follows.
    pub(super) fn ask_head(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if !s.head_pending || s.seek.is_some() {
            return;
        }
        // Not sent: the registration is gone, and the next one asks again.
        s.send_get_last_id(sh, now, SubRequest::HeadLastId);
    }

    /// Seeks a reader starting inclusively at the latest message to `last`, the topic's last
    /// message (an empty topic has none: the reader is positioned already).
    pub(super) fn seek_head(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        last: MessageId,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        if (last.entry_id as i64) < 0 {
            s.head_pending = false;
            self.check_ready(&mut sh.out, gid);
            return;
        }
        // Not sent: the registration is gone, and the next one starts over.
        s.send_seek(sh, now, SeekTo::Id(last), SubRequest::HeadSeek);
    }

    /// Positioning a reader at the last message failed: a retriable error starts over (now if
    /// the registration is still there, else at the next one); any other fails the reader.
    pub(super) fn head_failed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        error: Error,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        s.seek = None;
        if error.is_retriable() {
            self.resume_link(sh, now, sid);
            self.ask_head(sh, now, sid);
        } else {
            self.sub_failed(sh, now, sid, error);
        }
    }

    /// The broker reset the subscription: forget what was received before (Java's behaviour:
    /// delivery resumes after the target, or at it with `start_message_id_inclusive`).
    pub(super) fn seek_done(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let Some(st) = s.seek.take() else { return };
        let flushed = s.flush_acks(sh, now);
        s.acks.reset();
        s.last_dequeued = None;
        s.seen_through = None;
        s.start = Some(st.start);
        s.start_inclusive = s.opts.start_message_id_inclusive;
        s.sought_by_time = st.by_time;
        if let Some(c) = s.chunks.as_mut() {
            c.clear();
        }
        s.chunk_ids.clear();
        s.nacks.clear();
        s.unacked.clear();
        s.dlq_candidates.clear();
        s.last_in_broker = None;
        let gid = s.group;
        if s.gen == st.gen {
            // Still on the registration the seek was sent on: what it queued is stale.
            let removed = match self.groups.get_mut(&gid) {
                Some(g) => g.take_sub_messages(sid).0,
                None => 0,
            };
            s.queued = s.queued.saturating_sub(removed);
            s.return_permits(sh, removed as u32);
        }
        self.outcomes(sh, now, sid, gid, flushed);
    }
}

/// The wire position of a seek to message `id` (within its batch when it has one).
pub(super) fn seek_target(id: &MessageId) -> pb::MessageIdData {
    let mut wire = pb::MessageIdData {
        ledger_id: id.ledger_id,
        entry_id: id.entry_id,
        ..Default::default()
    };
    if id.batch_index >= 0 && id.batch_size > 1 {
        wire.ack_set = ack_set_from(id.batch_index, id.batch_size);
    }
    wire
}

/// The ack set of a batch seek: every index from `index` on still to be delivered (the size
/// clamped to [`acks::MAX_BATCH_SIZE`], the index to the batch).
fn ack_set_from(index: i32, size: i32) -> Vec<i64> {
    let size = acks::clamped_batch_size(size);
    let from = (index.max(0) as u32).min(size);
    let mut set = vec![u64::MAX; size.div_ceil(64) as usize];
    if let Some(last) = set.last_mut() {
        if size % 64 != 0 {
            *last = (1u64 << (size % 64)) - 1;
        }
    }
    let (full, rest) = ((from / 64) as usize, from % 64);
    for w in set.iter_mut().take(full) {
        *w = 0;
    }
    if let Some(w) = set.get_mut(full) {
        *w &= !((1u64 << rest) - 1);
    }
    set.into_iter().map(|w| w as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_ack_set_keeps_indexes_from_the_target() {
        assert_eq!(ack_set_from(0, 3), vec![0b111]);
        assert_eq!(ack_set_from(2, 3), vec![0b100]);
        let s = ack_set_from(64, 70);
        assert_eq!(s, vec![0, 0b111111]);
        assert_eq!(ack_set_from(5, 3), vec![0]);
        assert_eq!(ack_set_from(-1, 64), vec![-1]);
        assert_eq!(
            ack_set_from(0, i32::MAX).len(),
            (acks::MAX_BATCH_SIZE / 64) as usize,
            "a hostile size is clamped"
        );
    }
}
