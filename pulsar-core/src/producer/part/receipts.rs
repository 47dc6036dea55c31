//! The broker's commands to a wire producer: SEND_RECEIPT matched against the ordered pending
//! queue, SEND_ERROR, and CLOSE_PRODUCER or TOPIC_MIGRATED (the registration lost, resent in
//! order after the next one).

use super::Closing;
use super::Outcome;
use super::Part;
use crate::error::Error;
use crate::error::ProtocolError;
use crate::error::SendError;
use crate::error::ServerErrorCode;
use crate::event::Event;
use crate::handle::ConnectionId;
use crate::latency::LatencyHistogram;
use crate::message::MessageId;
use crate::pool::pick_broker_url;
use crate::producer::pending::Sends;
use crate::shared::Shared;
use pulsar_proto::pb;
use pulsar_proto::pb::base_command::Type;
use std::time::Instant;

impl Part {
    /// A SEND_RECEIPT from the broker.
    pub(in crate::producer) fn receipt_command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        receipt: &pb::CommandSendReceipt,
    ) -> Outcome {
        self.receipt(sh, now, conn, receipt);
        self.try_finish_close(sh, now)
    }

    pub(in crate::producer) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        command: pb::BaseCommand,
    ) -> Outcome {
        match command.kind() {
            Some(Type::SendReceipt) => match command.send_receipt {
                Some(r) => self.receipt_command(sh, now, conn, &r),
                None => Outcome::None,
            },
            Some(Type::SendError) => {
                let Some(e) = command.send_error else {
                    return Outcome::None;
                };
                self.send_error(sh, now, conn, *e)
            }
            Some(Type::CloseProducer) => {
                let Some(c) = command.close_producer else {
                    return Outcome::None;
                };
                if self.closing == Closing::Requested {
                    return self.finish(sh, SendError::ProducerClosed, None);
                }
                let assigned = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    c.assigned_broker_service_url.as_deref(),
                    c.assigned_broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => Some(a),
                    _ => None,
                };
                let mark = sh.out.events.len();
                let step = self.link.closed_by_broker(sh, now, assigned);
                self.relabel(sh, mark);
                self.apply(sh, now, step)
            }
            Some(Type::TopicMigrated) => {
                let Some(m) = command.topic_migrated else {
                    return Outcome::None;
                };
                let to = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    m.broker_service_url.as_deref(),
                    m.broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => a,
                    _ => return Outcome::None,
                };
                if self.closing == Closing::Requested {
                    return Outcome::None;
                }
                let mark = sh.out.events.len();
                let step = self.link.migrated(sh, now, to);
                self.relabel(sh, mark);
                self.apply(sh, now, step)
            }
            _ => Outcome::None,
        }
    }

    pub(super) fn send_error(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        e: pb::CommandSendError,
    ) -> Outcome {
        let code = ServerErrorCode::from_i32(e.error);
        match code {
            ServerErrorCode::NotAllowedError => {
                // This message only (every entry of it, for a chunked one).
                let send_error = SendError::Server {
                    code,
                    message: e.message,
                };
                while self.pending.front().is_some_and(|o| o.seq == e.sequence_id) {
                    if let Some(op) = self.pending.pop_front() {
                        self.fail_op(sh, op, &send_error);
                    }
                }
                self.try_finish_close(sh, now)
            }
            ServerErrorCode::TopicTerminatedError => {
                self.fail(sh, Error::server(e.error, e.message))
            }
            _ => {
                // Checksum error or a transient failure: the state is unknown; reconnect and resend
                // everything pending (the Java client's rule). The reason given for the close must
                // be retriable, or the other users of the connection would give up.
                let reason = if code.is_retriable() {
                    Error::server(e.error, e.message)
                } else {
                    Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                        "SEND_ERROR {code:?} for sequence id {}: {}",
                        e.sequence_id, e.message
                    )))
                };
                sh.close_connection(now, conn, reason);
                Outcome::None
            }
        }
    }

    pub(super) fn receipt(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        r: &pb::CommandSendReceipt,
    ) {
        let Some(head) = self.pending.front() else {
            return; // late duplicate after everything completed
        };
        if r.sequence_id < head.seq {
            return; // late duplicate
        }
        // The broker sends -1 (as an unsigned 64-bit value) when no highest sequence id applies:
        // compare as the Java client does, in signed arithmetic.
        let highest = r.highest_sequence_id.unwrap_or(0) as i64;
        let batch_mismatch = (r.sequence_id as i64) < highest && highest != head.highest as i64;
        if r.sequence_id > head.seq || batch_mismatch {
            // Client and broker disagree: reconnect and resend everything pending.
            let detail = format!(
                "receipt for sequence id {} (highest {highest}) while {}..={} is pending",
                r.sequence_id, head.seq, head.highest
            );
            sh.close_connection(
                now,
                conn,
                Error::Protocol(ProtocolError::OutOfOrder(detail)),
            );
            return;
        }
        let Some(op) = self.pending.pop_front() else {
            return;
        };
        let counters = self.counters.get_or_insert_with(Box::default);
        counters.receipts_received += 1;
        counters.messages_acked += op.sends.len() as u64;
        counters
            .latency
            .get_or_insert_with(LatencyHistogram::new)
            .record_n(
                now.saturating_duration_since(op.created),
                op.sends.len() as u64,
            );
        self.freed_bytes += op.bytes;
        let mut id = r
            .message_id
            .as_ref()
            .map(MessageId::from_pb)
            .unwrap_or(MessageId::new(0, 0, -1));
        if id.partition < 0 {
            id.partition = self.partition;
        }
        match op.sends {
            Sends::None => {}
            Sends::One(send) => self.complete(&mut sh.out, send, Ok(id)),
            Sends::Many(sends)
                if sh.env.batch_receipts && op.metadata.txnid_most_bits.is_none() =>
            {
                self.freed_messages += sends.len();
                sh.out.events.push_back(Event::SendsCompleted {
                    producer: self.app,
                    batch: id,
                    sends,
                });
            }
            Sends::Many(sends) => {
                let size = i32::try_from(sends.len()).unwrap_or(i32::MAX);
                sh.out.events.reserve(sends.len());
                self.freed_messages += sends.len();
                for (i, send) in sends.into_iter().enumerate() {
                    let mut m = id;
                    m.batch_index = i32::try_from(i).unwrap_or(i32::MAX);
                    m.batch_size = size;
                    sh.out.events.push_back(Event::SendCompleted {
                        producer: self.app,
                        send,
                        result: Ok(m),
                    });
                }
            }
        }
    }
}
