//! Transactional acknowledgements: written at once with a request id and the transaction's id,
//! outside the grouping tracker (the broker keeps them pending until the transaction ends, so
//! nothing is recorded as acknowledged here).

use super::Consumers;
use crate::error::Error;
use crate::handle::{ConsumerId, RequestId, TxnId};
use crate::message::MessageId;
use crate::request::{ConsumerRequest, RequestKind};
use crate::shared::Shared;
use pulsar_proto::pb;
use std::time::Instant;

/// Where a transactional acknowledgement goes: the wire consumer, its topic (a partition's name
/// for a partitioned topic) and the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AckTarget {
    pub(crate) sub: ConsumerId,
    pub(crate) topic: String,
    pub(crate) subscription: String,
}

impl Consumers {
    /// The wire consumer, topic and subscription an acknowledgement of `id` in a transaction
    /// names (`via`: the wire consumer that received the message, when known).
    pub(crate) fn txn_ack_target(
        &self,
        gid: ConsumerId,
        id: &MessageId,
        cumulative: bool,
        via: Option<ConsumerId>,
    ) -> Result<AckTarget, Error> {
        let g = self.usable_group(gid)?;
        if cumulative && g.opts.subscription_type.is_shared() {
            return Err(Error::InvalidState(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions",
            ));
        }
        let sid = self.resolve_sub(g, id, via)?;
        let s = self.subs.get(&sid).ok_or(Error::UnknownConsumer(gid))?;
        Ok(AckTarget {
            sub: sid,
            topic: s.link.topic.to_string(),
            subscription: s.opts.subscription.clone(),
        })
    }

    /// Writes an acknowledgement of `id` in transaction `txn` on wire consumer `sid`, as
    /// `request`: [`Event::AckCompleted`](crate::Event::AckCompleted) for consumer `gid` reports
    /// the broker's answer (a conflict with another transaction is an error). Fails at once when
    /// the consumer is not connected.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn txn_ack(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        sid: ConsumerId,
        id: &MessageId,
        cumulative: bool,
        txn: TxnId,
        request: RequestId,
    ) -> Result<(), Error> {
        let Some(s) = self.subs.get_mut(&sid) else {
            return Err(Error::UnknownConsumer(gid));
        };
        let Some(conn) = s.link.ready_conn() else {
            return Err(Error::ConnectionClosed);
        };
        let kind = if cumulative {
            pb::command_ack::AckType::Cumulative
        } else {
            pb::command_ack::AckType::Individual
        };
        let mut message_id = pb::MessageIdData {
            ledger_id: id.ledger_id,
            entry_id: id.entry_id,
            ..Default::default()
        };
        if id.batch_index >= 0 && id.batch_size > 1 {
            // Set bits are the indexes that stay unacknowledged (the Java client's encoding).
            let size = super::acks::clamped_batch_size(id.batch_size);
            let index = u32::try_from(id.batch_index).unwrap_or(u32::MAX);
            message_id.ack_set = batch_ack_set(size, index, cumulative);
            message_id.batch_size = Some(id.batch_size);
        }
        let rid = request.get();
        let cmd = pb::BaseCommand::from(pb::CommandAck {
            consumer_id: sid.get(),
            ack_type: kind as i32,
            message_id: vec![message_id],
            txnid_least_bits: Some(txn.least_bits),
            txnid_most_bits: Some(txn.most_bits),
            request_id: Some(rid),
            ..Default::default()
        });
        s.acks_sent += 1;
        sh.conns.send_request(
            now,
            conn,
            rid,
            &cmd,
            RequestKind::Consumer(sid, ConsumerRequest::Ack),
        );
        s.requests
            .insert(rid, (conn, super::sub::SubRequest::TxnAck(request, txn)));
        Ok(())
    }
}

/// The ack set of a batch index: every bit of the batch set, but `index` cleared (cumulative:
/// `0..=index` cleared). Trailing zero words are left out, as Java's `BitSet.toLongArray` does:
/// a cumulative acknowledgement of a batch's last message has an empty set (the whole entry),
/// which the broker reads differently from a set of zeros.
fn batch_ack_set(size: u32, index: u32, cumulative: bool) -> Vec<i64> {
    let mut words = vec![0u64; size.div_ceil(64) as usize];
    for i in 0..size {
        let acked = if cumulative { i <= index } else { i == index };
        if !acked {
            words[(i / 64) as usize] |= 1u64 << (i % 64);
        }
    }
    while words.last() == Some(&0) {
        words.pop();
    }
    words.into_iter().map(|w| w as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::batch_ack_set;

    #[test]
    fn ack_sets_clear_the_acknowledged_indexes() {
        assert_eq!(batch_ack_set(4, 1, false), vec![0b1101]);
        assert_eq!(batch_ack_set(4, 1, true), vec![0b1100]);
        assert_eq!(batch_ack_set(65, 64, false), vec![-1]);
        assert_eq!(batch_ack_set(10, 9, true), Vec::<i64>::new());
        assert_eq!(batch_ack_set(10, 9, false), vec![0x1ff]);
    }
}
