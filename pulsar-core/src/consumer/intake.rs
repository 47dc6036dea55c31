//! Message intake: one MESSAGE frame becomes zero or more [`Message`]s in the group's queue.
//!
//! In order: stale frames (old consumer epoch, pre-seek) are dropped; a corrupt frame is reported
//! to the broker (ACK with a validation error) and to the application (a typed error) and its
//! permits are returned; chunks are reassembled; the payload is decompressed (no copy without
//! compression); a batch is split into messages whose payloads are slices of the (decompressed)
//! batch; messages before a reader's start, compacted out, or already acknowledged are skipped
//! (their permits returned); messages redelivered too often are set aside for the dead-letter
//! topic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulsar_proto::pb::command_ack::ValidationError;
use pulsar_proto::{batch, pb, Payload};

use super::acks::Entry;
use super::chunks::{ChunkStep, Dropped};
use super::message::{BrokerEntryMetadata, Message, ReceiveError};
use super::sub::Sub;
use crate::compression::{CodecContext, CompressionType};
use crate::event::Event;
use crate::handle::ConnectionId;
use crate::message::MessageId;
use crate::outputs::Outputs;
use crate::shared::Shared;
use crate::time;

/// Work the intake leaves for the consumer set (it needs the group queue or the producers).
#[derive(Debug, Default)]
pub(super) struct IntakeOut {
    /// Entries to redeliver (dropped chunks).
    pub(super) redeliver: Vec<Entry>,
    /// Entries to publish to the dead-letter topic now.
    pub(super) dead_letter: Vec<Entry>,
}

impl Sub {
    /// Takes one MESSAGE frame.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn intake(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        codec: &mut CodecContext,
        queue: &mut VecDeque<Message>,
        m: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) -> IntakeOut {
        let mut out = IntakeOut::default();
        let count = payload
            .as_ref()
            .and_then(|p| p.metadata.num_messages_in_batch)
            .unwrap_or(1)
            .max(1) as u32;
        self.broker_permits -= i64::from(count);
        self.zq_waiting = false;
        let stale_epoch = m.consumer_epoch.is_some_and(|e| e < self.epoch);
        let stale_seek = self.seek.is_some_and(|s| s.gen == self.gen);
        if stale_epoch || stale_seek {
            self.return_permits(sh, count);
            return out;
        }
        let entry = (m.message_id.ledger_id, m.message_id.entry_id);
        if self.chunks.as_mut().is_some_and(|c| c.passed(entry)) {
            self.release_held_cumulative(now);
        }
        let base = MessageId {
            ledger_id: entry.0,
            entry_id: entry.1,
            partition: self.partition,
            batch_index: -1,
            batch_size: 0,
        };
        let payload = match payload {
            Some(p) if checksum_ok => p,
            _ => {
                self.discard(sh, conn, entry, ValidationError::ChecksumMismatch, count);
                self.report(&mut sh.out, ReceiveError::ChecksumMismatch(base));
                return out;
            }
        };
        let Payload {
            broker_entry_metadata,
            metadata,
            data,
        } = payload;
        let redelivery_count = m.redelivery_count.unwrap_or(0);
        let is_batch = metadata.num_messages_in_batch.is_some();
        let chunked = !is_batch && metadata.num_chunks_from_msg.unwrap_or(0) > 1;

        let mut data = data;
        let mut limit = sh.conns.max_message_size(conn).saturating_mul(8);
        if chunked {
            let expire_ms = u64::try_from(self.opts.expire_incomplete_chunked_message.as_millis())
                .unwrap_or(u64::MAX);
            let expires_at = metadata.publish_time.saturating_add(expire_ms);
            let unix_now = sh.env.unix_millis(now);
            let expired = expires_at < unix_now;
            // when this message expires, on the client's clock (orphaned chunks wait for it)
            let expiry = time::after(
                now,
                Duration::from_millis(expires_at.saturating_sub(unix_now).saturating_add(1)),
            );
            let mut dropped = Vec::new();
            let step =
                self.chunks_mut()
                    .accept(now, entry, &metadata, &data, expired, &mut dropped);
            for d in dropped {
                self.handle_dropped(sh, now, d, expiry, &mut out);
            }
            match step {
                ChunkStep::Stored => {
                    self.return_permits(sh, 1);
                    return out;
                }
                ChunkStep::Duplicate { ack } => {
                    if ack {
                        self.ack_entry(sh, now, entry);
                    }
                    self.return_permits(sh, 1);
                    return out;
                }
                ChunkStep::Dropped(d) => {
                    self.handle_dropped(sh, now, d, expiry, &mut out);
                    self.return_permits(sh, 1);
                    return out;
                }
                ChunkStep::Complete { data: whole, ids } => {
                    data = whole;
                    limit = self.opts.max_chunked_message_size;
                    if ids.len() > 1 {
                        self.chunk_ids.insert(entry, ids);
                    }
                }
            }
        } else if !is_batch && self.acks.is_duplicate(entry) {
            self.return_permits(sh, 1);
            return out;
        }

        let kind = metadata.compression.unwrap_or(0);
        if kind != 0 {
            let size = metadata.uncompressed_size.unwrap_or(0) as usize;
            let decoded = CompressionType::try_from(kind)
                .and_then(|k| codec.decompress_bytes(k, &data, size, limit));
            match decoded {
                Ok(d) => data = d,
                Err(error) => {
                    self.discard(sh, conn, entry, ValidationError::DecompressionError, count);
                    self.report(&mut sh.out, ReceiveError::Decompression { id: base, error });
                    return out;
                }
            }
        }

        let dlq_max = self
            .opts
            .dead_letter
            .as_ref()
            .filter(|_| self.opts.subscription_type.is_shared())
            .map(|p| p.max_redeliver_count);
        let candidate = dlq_max.is_some_and(|max| redelivery_count >= max);
        let too_many = dlq_max.is_some_and(|max| redelivery_count > max);
        let producer_name: Arc<str> = Arc::from(metadata.producer_name.as_str());
        let broker_entry = broker_entry_metadata.map(|b| BrokerEntryMetadata {
            broker_timestamp: b.broker_timestamp,
            index: b.index,
        });
        let group = self.group;
        let mut set_aside: Vec<Message> = Vec::new();

        if !is_batch {
            if self.is_before_start(entry, None) || self.seen_before(&base) {
                self.return_permits(sh, 1);
                return out;
            }
            let pb::MessageMetadata {
                sequence_id,
                publish_time,
                properties,
                partition_key,
                event_time,
                schema_version,
                ordering_key,
                null_value,
                ..
            } = metadata;
            let msg = Message {
                consumer: group,
                topic: self.topic_name.clone(),
                id: base,
                payload: data,
                key: partition_key,
                ordering_key,
                properties: kv(properties),
                publish_time,
                event_time: event_time.filter(|t| *t > 0),
                producer_name,
                sequence_id,
                redelivery_count,
                schema_version,
                broker_entry_metadata: broker_entry,
                null_value: null_value.unwrap_or(false),
                sub: self.id,
            };
            if candidate {
                set_aside.push(msg.clone());
            }
            if too_many {
                self.return_permits(sh, 1);
            } else {
                self.messages_received += 1;
                self.bytes_received += msg.payload.len() as u64;
                self.queued += 1;
                queue.push_back(msg);
            }
        } else {
            let n = metadata.num_messages_in_batch.unwrap_or(1).max(0) as u32;
            let before = queue.len();
            let mut skipped = 0u32;
            let mut pushed = 0usize;
            let mut pushed_bytes = 0u64;
            let broker_ack_set = &m.ack_set;
            for (i, e) in batch::split(data.clone(), n).enumerate() {
                let index = i as u32;
                let e = match e {
                    Ok(e) => e,
                    Err(err) => {
                        // (the counters are only raised once the whole batch decoded)
                        queue.truncate(before);
                        self.discard(sh, conn, entry, ValidationError::BatchDeSerializeError, n);
                        self.report(
                            &mut sh.out,
                            ReceiveError::BadBatch {
                                id: base,
                                reason: err.to_string(),
                            },
                        );
                        return out;
                    }
                };
                if !broker_ack_set.is_empty() && !bit_set(broker_ack_set, index) {
                    continue; // the broker did not count it
                }
                let em = e.metadata;
                let id = MessageId {
                    batch_index: index as i32,
                    batch_size: n as i32,
                    ..base
                };
                if self.is_before_start(entry, Some(index))
                    || self.seen_before(&id)
                    || em.compacted_out.unwrap_or(false)
                    || self.acks.is_index_acked(entry, index)
                {
                    skipped += 1;
                    continue;
                }
                let msg = Message {
                    consumer: group,
                    topic: self.topic_name.clone(),
                    id: MessageId {
                        batch_index: index as i32,
                        batch_size: n as i32,
                        ..base
                    },
                    payload: e.payload,
                    key: em.partition_key,
                    ordering_key: em.ordering_key.or_else(|| metadata.ordering_key.clone()),
                    properties: kv(em.properties),
                    publish_time: metadata.publish_time,
                    event_time: em.event_time.or(metadata.event_time).filter(|t| *t > 0),
                    producer_name: producer_name.clone(),
                    sequence_id: em
                        .sequence_id
                        .unwrap_or(metadata.sequence_id.wrapping_add(u64::from(index))),
                    redelivery_count,
                    schema_version: metadata.schema_version.clone(),
                    broker_entry_metadata: broker_entry,
                    null_value: em.null_value.unwrap_or(false),
                    sub: self.id,
                };
                if candidate {
                    set_aside.push(msg.clone());
                }
                if too_many {
                    skipped += 1;
                    continue;
                }
                pushed += 1;
                pushed_bytes += msg.payload.len() as u64;
                queue.push_back(msg);
            }
            self.queued += pushed;
            self.messages_received += pushed as u64;
            self.bytes_received += pushed_bytes;
            self.return_permits(sh, skipped);
            // what the broker left out (once the batch decoded whole) is acknowledged there: the
            // entry completes when the application acknowledges the rest
            if !broker_ack_set.is_empty() && self.acks.broker_acked(now, entry, n, broker_ack_set) {
                self.forget(entry);
            }
        }
        if !set_aside.is_empty() {
            self.dlq_candidates.insert(entry, set_aside);
            if too_many {
                out.dead_letter.push(entry);
            }
        }
        out
    }

    /// Whether message `index` of `entry` (or the unbatched message) comes before a reader's start.
    fn is_before_start(&self, entry: Entry, index: Option<u32>) -> bool {
        let Some(s) = self.start else { return false };
        if !self.persistent || (s.ledger_id, s.entry_id) != entry {
            return false;
        }
        match index {
            None => !self.start_inclusive,
            Some(i) => {
                let i = i as i32;
                if self.start_inclusive {
                    i < s.batch_index
                } else {
                    i <= s.batch_index
                }
            }
        }
    }

    /// Tells the broker an entry is unusable (it is not redelivered) and returns its permits.
    fn discard(
        &mut self,
        sh: &mut Shared,
        conn: ConnectionId,
        entry: Entry,
        error: ValidationError,
        permits: u32,
    ) {
        let cmd = pb::BaseCommand::from(pb::CommandAck {
            consumer_id: self.id.get(),
            ack_type: pb::command_ack::AckType::Individual as i32,
            message_id: vec![pb::MessageIdData {
                ledger_id: entry.0,
                entry_id: entry.1,
                ..Default::default()
            }],
            validation_error: Some(error as i32),
            ..Default::default()
        });
        sh.conns.send_command(conn, &cmd);
        self.return_permits(sh, permits);
    }

    fn report(&self, out: &mut Outputs, error: ReceiveError) {
        out.events.push_back(Event::ReceiveFailed {
            consumer: self.group,
            topic: self.topic_name.clone(),
            error,
        });
    }

    /// Acknowledges a whole entry (dropped chunks, duplicates).
    fn ack_entry(&mut self, sh: &mut Shared, now: Instant, entry: Entry) {
        let id = MessageId::new(entry.0, entry.1, self.partition);
        // receipts are not involved: nothing to report
        let _ = self.ack(sh, now, &id, false, None);
    }

    /// Applies the fate of a dropped chunked message. Its orphaned chunks (see
    /// [`ChunkAssembler::hold`](super::chunks::ChunkAssembler::hold)) are redelivered one by one
    /// on Shared and Key_Shared (by the ack timeout when there is one), and are held until
    /// `orphans_expire` (their message's expiry time), then acknowledged, on Exclusive and
    /// Failover, ack timeout or not: a redelivery of everything unacknowledged, which is all an
    /// in-order subscription can ask for, rewinds it for nothing. Handed to the ack timeout, an
    /// evicted message's chunks came back with its redelivery as a new incomplete message, were
    /// evicted again and handed to it again, every ack timeout, forever (simulation seed 101180).
    pub(super) fn handle_dropped(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        d: Dropped,
        orphans_expire: Instant,
        out: &mut IntakeOut,
    ) {
        for e in d.ack {
            self.ack_entry(sh, now, e);
        }
        if !d.orphaned.is_empty() {
            if !self.opts.subscription_type.is_shared() {
                for e in d.orphaned {
                    if let Some(full) = self.chunks_mut().hold(e, orphans_expire) {
                        self.ack_entry(sh, now, full);
                    }
                }
            } else if self.unacked.enabled() {
                for e in &d.orphaned {
                    self.unacked.add(now, *e);
                }
            } else {
                out.redeliver.extend(d.orphaned);
            }
        }
        if !d.redeliver.is_empty() {
            if self.unacked.enabled() {
                for e in &d.redeliver {
                    self.unacked.add(now, *e);
                }
            } else {
                out.redeliver.extend(d.redeliver);
            }
        }
        if let Some(error) = d.error {
            self.report(&mut sh.out, error);
        }
        self.release_held_cumulative(now);
    }
}

fn kv(properties: Vec<pb::KeyValue>) -> Vec<(String, String)> {
    properties.into_iter().map(|p| (p.key, p.value)).collect()
}

/// Whether bit `index` is set in a protocol bit set (`long[]`, little-endian words).
fn bit_set(words: &[i64], index: u32) -> bool {
    words
        .get(index as usize / 64)
        .is_some_and(|w| (*w as u64) & (1 << (index % 64)) != 0)
}

/// Unused-import guard for `Bytes` in docs.
#[allow(dead_code)]
fn _bytes(_: Bytes) {}
