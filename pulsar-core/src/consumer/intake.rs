//! Message intake: one MESSAGE frame becomes zero or more [`Message`]s in the group's queue.
//!
//! In order: stale frames (old consumer epoch, pre-seek) are dropped; a corrupt frame is reported
//! to the broker (ACK with a validation error) and to the application (a typed error) and its
//! permits are returned; an encrypted payload (each chunk of a chunked message) is decrypted, or
//! handled by the crypto failure action; chunks are reassembled; the payload is decompressed (no copy without
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
use crate::crypto::{CryptoError, CryptoFailureAction, EncryptionContext};
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

/// One MESSAGE frame as it came from the connection.
#[derive(Debug)]
pub(super) struct Frame {
    /// The connection it came on.
    pub(super) conn: ConnectionId,
    /// The MESSAGE command.
    pub(super) message: pb::CommandMessage,
    /// The metadata and payload; `None` when `checksum_ok` is false.
    pub(super) payload: Option<Payload>,
    /// Whether the frame's checksum (when it has one) matched.
    pub(super) checksum_ok: bool,
}

/// What every stage of one frame's intake needs to know about it.
struct FrameContext {
    /// The connection it came on (a corrupt entry is reported there).
    conn: ConnectionId,
    /// Its entry.
    entry: Entry,
    /// The id of its entry, no batch index.
    base: MessageId,
    /// The permits it cost (its batch size; discarded entries return them all).
    permits: u32,
    /// How often the broker redelivered it.
    redelivery_count: u32,
    /// The broker's ack set of a batch: the indexes it still counts (empty: all).
    ack_set: Vec<i64>,
}

/// What the messages of one entry share, once its payload is whole and decompressed.
struct EntryFields {
    producer_name: Arc<str>,
    broker_entry: Option<BrokerEntryMetadata>,
    /// Its messages are set aside for the dead-letter topic (redelivered the policy's maximum
    /// number of times, on Shared and Key_Shared).
    candidate: bool,
    /// Its messages are not delivered but dead-lettered (redelivered more than the maximum).
    too_many: bool,
    /// How it was encrypted, when it was.
    encryption: Option<Arc<EncryptionContext>>,
}

impl Sub {
    /// Takes one MESSAGE frame, through the stages in the order of the module documentation:
    /// [`is_stale`](Self::is_stale), [`checked_payload`](Self::checked_payload),
    /// [`decrypt`](Self::decrypt), [`reassemble`](Self::reassemble) (or the duplicate check of
    /// an unbatched entry), [`decompress`](Self::decompress), then [`take_single`](Self::take_single) or
    /// [`take_batch`](Self::take_batch), and [`set_aside`](Self::set_aside) for the dead-letter
    /// topic. A stage that ends the frame returns `None` (or `false`), its permits returned.
    pub(super) fn intake(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        frame: Frame,
        codec: &mut CodecContext,
        queue: &mut VecDeque<Message>,
    ) -> IntakeOut {
        let Frame {
            conn,
            message: m,
            payload,
            checksum_ok,
        } = frame;
        let mut out = IntakeOut::default();
        let count = payload
            .as_ref()
            .and_then(|p| p.metadata.num_messages_in_batch)
            .unwrap_or(1)
            .max(1) as u32;
        self.broker_permits -= i64::from(count);
        self.zq_waiting = false;
        if self.is_stale(&m) {
            self.return_permits(sh, count);
            return out;
        }
        let entry = (m.message_id.ledger_id, m.message_id.entry_id);
        if self.chunks.as_mut().is_some_and(|c| c.passed(entry)) {
            self.release_held_cumulative(now);
        }
        let ctx = FrameContext {
            conn,
            entry,
            base: MessageId {
                ledger_id: entry.0,
                entry_id: entry.1,
                partition: self.partition,
                batch_index: -1,
                batch_size: 0,
            },
            permits: count,
            redelivery_count: m.redelivery_count.unwrap_or(0),
            ack_set: m.ack_set,
        };
        let Some(payload) = self.checked_payload(sh, &ctx, payload, checksum_ok) else {
            return out;
        };
        let Payload {
            broker_entry_metadata,
            metadata,
            data,
        } = payload;
        let is_batch = metadata.num_messages_in_batch.is_some();
        let chunked = !is_batch && metadata.num_chunks_from_msg.unwrap_or(0) > 1;
        let limit = sh.conns.max_message_size(conn).saturating_mul(8);
        // each chunk is encrypted on its own (as the Java client does): decrypted, then joined
        let (data, limit, undecrypted) = if chunked {
            let Some((chunk, undecrypted)) = self.decrypt(sh, now, &ctx, &metadata, data) else {
                return out;
            };
            match self.reassemble(sh, now, &ctx, &metadata, chunk, &mut out) {
                Some(whole) => (whole, self.opts.max_chunked_message_size, undecrypted),
                None => return out,
            }
        } else if !is_batch && self.acks.is_duplicate(entry) {
            self.return_permits(sh, 1);
            return out;
        } else {
            let Some((data, undecrypted)) = self.decrypt(sh, now, &ctx, &metadata, data) else {
                return out;
            };
            (data, limit, undecrypted)
        };
        // an undecrypted payload stays compressed: it goes to the application as it came
        let data = if undecrypted {
            data
        } else {
            match self.decompress(sh, codec, &ctx, &metadata, data, limit) {
                Some(data) => data,
                None => return out,
            }
        };
        let mut fields = self.entry_fields(&ctx, &metadata, broker_entry_metadata);
        fields.encryption = EncryptionContext::of(&metadata, undecrypted).map(Arc::new);
        let mut set_aside: Vec<Message> = Vec::new();
        if !is_batch || undecrypted {
            // an undecrypted batch is one message: the permits of the others come back
            self.return_permits(sh, ctx.permits.saturating_sub(1));
            self.take_single(sh, &ctx, &fields, metadata, data, queue, &mut set_aside);
        } else if !self.take_batch(
            sh,
            now,
            &ctx,
            &fields,
            &metadata,
            data,
            queue,
            &mut set_aside,
        ) {
            return out;
        }
        self.set_aside(ctx.entry, set_aside, fields.too_many, &mut out);
        out
    }

    /// Stage 1: whether the frame predates the current registration's state (an older consumer
    /// epoch, or sent before a seek still in progress on this registration).
    fn is_stale(&self, m: &pb::CommandMessage) -> bool {
        let stale_epoch = m.consumer_epoch.is_some_and(|e| e < self.epoch);
        let stale_seek = self.seek.as_ref().is_some_and(|s| s.gen == self.gen);
        stale_epoch || stale_seek
    }

    /// Stage 2: the payload of a frame whose checksum matched; a corrupt one is reported to the
    /// broker and the application (`None`).
    fn checked_payload(
        &mut self,
        sh: &mut Shared,
        ctx: &FrameContext,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) -> Option<Payload> {
        match payload {
            Some(p) if checksum_ok => Some(p),
            _ => {
                let (conn, entry) = (ctx.conn, ctx.entry);
                self.discard(
                    sh,
                    conn,
                    entry,
                    ValidationError::ChecksumMismatch,
                    ctx.permits,
                );
                self.report(&mut sh.out, ReceiveError::ChecksumMismatch(ctx.base));
                None
            }
        }
    }

    /// Stage 4, for a chunk: hands it to the assembler and returns the whole message's payload
    /// once its last chunk came; `None` while it is incomplete, or when the chunk was a
    /// duplicate or its message was dropped (its permit returned).
    fn reassemble(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        ctx: &FrameContext,
        metadata: &pb::MessageMetadata,
        data: Bytes,
        out: &mut IntakeOut,
    ) -> Option<Bytes> {
        let entry = ctx.entry;
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
        let step = self
            .chunks_mut()
            .accept(now, entry, metadata, &data, expired, &mut dropped);
        for d in dropped {
            self.handle_dropped(sh, now, d, expiry, out);
        }
        match step {
            ChunkStep::Stored => {}
            ChunkStep::Duplicate { ack } => {
                if ack {
                    self.ack_entry(sh, now, entry);
                }
            }
            ChunkStep::Dropped(d) => self.handle_dropped(sh, now, d, expiry, out),
            ChunkStep::Complete { data: whole, ids } => {
                if ids.len() > 1 {
                    self.chunk_ids.insert(entry, ids);
                }
                return Some(whole);
            }
        }
        self.return_permits(sh, 1);
        None
    }

    /// Stage 3, for an encrypted entry (or chunk): the decrypted payload (`false`), or under
    /// [`CryptoFailureAction::Consume`] the payload as it came (`true`) when it cannot be
    /// decrypted. Under `Fail` the entry is neither delivered nor acknowledged, under `Discard`
    /// it is acknowledged with a `DecryptionError`; both report the error (`None`).
    fn decrypt(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        ctx: &FrameContext,
        metadata: &pb::MessageMetadata,
        data: Bytes,
    ) -> Option<(Bytes, bool)> {
        if metadata.encryption_keys.is_empty() {
            return Some((data, false));
        }
        let result = match &self.opts.crypto.decryptor {
            Some(d) => d.decrypt(now, metadata, &data),
            None => Err(CryptoError::NoDecryptor),
        };
        let error = match result {
            Ok(plain) => return Some((Bytes::from(plain), false)),
            Err(error) => error,
        };
        match self.opts.crypto.failure_action {
            CryptoFailureAction::Consume => return Some((data, true)),
            CryptoFailureAction::Discard => {
                let (conn, entry) = (ctx.conn, ctx.entry);
                self.discard(
                    sh,
                    conn,
                    entry,
                    ValidationError::DecryptionError,
                    ctx.permits,
                );
            }
            CryptoFailureAction::Fail => self.return_permits(sh, ctx.permits),
        }
        let id = ctx.base;
        self.report(&mut sh.out, ReceiveError::Crypto { id, error });
        None
    }

    /// Stage 5: the decompressed payload (the same bytes without compression, no copy); an
    /// entry that does not decompress within `limit` bytes is discarded and reported (`None`).
    fn decompress(
        &mut self,
        sh: &mut Shared,
        codec: &mut CodecContext,
        ctx: &FrameContext,
        metadata: &pb::MessageMetadata,
        data: Bytes,
        limit: usize,
    ) -> Option<Bytes> {
        let kind = metadata.compression.unwrap_or(0);
        if kind == 0 {
            return Some(data);
        }
        let size = metadata.uncompressed_size.unwrap_or(0) as usize;
        let decoded = CompressionType::try_from(kind)
            .and_then(|k| codec.decompress_bytes(k, &data, size, limit));
        match decoded {
            Ok(d) => Some(d),
            Err(error) => {
                let (conn, entry) = (ctx.conn, ctx.entry);
                self.discard(
                    sh,
                    conn,
                    entry,
                    ValidationError::DecompressionError,
                    ctx.permits,
                );
                let id = ctx.base;
                self.report(&mut sh.out, ReceiveError::Decompression { id, error });
                None
            }
        }
    }

    /// What the messages of the entry share, and its fate under the dead-letter policy.
    fn entry_fields(
        &self,
        ctx: &FrameContext,
        metadata: &pb::MessageMetadata,
        broker_entry_metadata: Option<pb::BrokerEntryMetadata>,
    ) -> EntryFields {
        let dlq_max = self
            .opts
            .dead_letter
            .as_ref()
            .filter(|_| self.opts.subscription_type.is_shared())
            .map(|p| p.max_redeliver_count);
        EntryFields {
            producer_name: Arc::from(metadata.producer_name.as_str()),
            broker_entry: broker_entry_metadata.map(|b| BrokerEntryMetadata {
                broker_timestamp: b.broker_timestamp,
                index: b.index,
            }),
            candidate: dlq_max.is_some_and(|max| ctx.redelivery_count >= max),
            too_many: dlq_max.is_some_and(|max| ctx.redelivery_count > max),
            encryption: None,
        }
    }

    /// Stage 6, for an unbatched entry: its message, unless it comes before a reader's start or
    /// was seen already (its permit returned).
    #[allow(clippy::too_many_arguments)]
    fn take_single(
        &mut self,
        sh: &mut Shared,
        ctx: &FrameContext,
        fields: &EntryFields,
        metadata: pb::MessageMetadata,
        data: Bytes,
        queue: &mut VecDeque<Message>,
        set_aside: &mut Vec<Message>,
    ) {
        let base = ctx.base;
        if self.is_before_start(ctx.entry, None) || self.seen_before(&base) {
            self.return_permits(sh, 1);
            return;
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
            partition_key_b64_encoded,
            ..
        } = metadata;
        let msg = Message {
            consumer: self.group,
            topic: self.topic_name.clone(),
            id: base,
            payload: data,
            key: partition_key,
            key_is_base64: partition_key_b64_encoded.unwrap_or(false),
            ordering_key,
            properties: kv(properties),
            publish_time,
            event_time: event_time.filter(|t| *t > 0),
            producer_name: fields.producer_name.clone(),
            sequence_id,
            redelivery_count: ctx.redelivery_count,
            schema_version,
            broker_entry_metadata: fields.broker_entry,
            null_value: null_value.unwrap_or(false),
            encryption: fields.encryption.clone(),
            sub: self.id,
        };
        if fields.candidate {
            set_aside.push(msg.clone());
        }
        if fields.too_many {
            self.return_permits(sh, 1);
        } else {
            self.messages_received += 1;
            self.bytes_received += msg.payload.len() as u64;
            self.queued += 1;
            queue.push_back(msg);
        }
    }

    /// Stage 6, for a batch: splits it into messages whose payloads are slices of the batch,
    /// skipping those the broker left out of its ack set, before a reader's start, seen
    /// already, compacted out or acknowledged (their permits returned). A batch that does not
    /// decode whole is discarded and reported, nothing of it queued (`false`).
    #[allow(clippy::too_many_arguments)]
    fn take_batch(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        ctx: &FrameContext,
        fields: &EntryFields,
        metadata: &pb::MessageMetadata,
        data: Bytes,
        queue: &mut VecDeque<Message>,
        set_aside: &mut Vec<Message>,
    ) -> bool {
        let (entry, base) = (ctx.entry, ctx.base);
        let n = metadata.num_messages_in_batch.unwrap_or(1).max(0) as u32;
        let before = queue.len();
        let mut skipped = 0u32;
        let mut pushed = 0usize;
        let mut pushed_bytes = 0u64;
        let broker_ack_set = &ctx.ack_set;
        for (i, e) in batch::split(data.clone(), n).enumerate() {
            let index = i as u32;
            let e = match e {
                Ok(e) => e,
                Err(err) => {
                    // (the counters are only raised once the whole batch decoded)
                    queue.truncate(before);
                    self.discard(
                        sh,
                        ctx.conn,
                        entry,
                        ValidationError::BatchDeSerializeError,
                        n,
                    );
                    let reason = err.to_string();
                    self.report(&mut sh.out, ReceiveError::BadBatch { id: base, reason });
                    return false;
                }
            };
            if !broker_ack_set.is_empty() && !bit_set(broker_ack_set, index) {
                continue; // the broker did not count it
            }
            let id = MessageId {
                batch_index: index as i32,
                batch_size: n as i32,
                ..base
            };
            if self.is_before_start(entry, Some(index))
                || self.seen_before(&id)
                || e.metadata.compacted_out.unwrap_or(false)
                || self.acks.is_index_acked(entry, index)
            {
                skipped += 1;
                continue;
            }
            let msg = self.batch_message(ctx, fields, metadata, id, e);
            if fields.candidate {
                set_aside.push(msg.clone());
            }
            if fields.too_many {
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
        true
    }

    /// Message `id` of a batch: its own metadata, the batch's where it has none.
    fn batch_message(
        &self,
        ctx: &FrameContext,
        fields: &EntryFields,
        metadata: &pb::MessageMetadata,
        id: MessageId,
        e: batch::BatchEntry,
    ) -> Message {
        let em = e.metadata;
        let index = id.batch_index as u32;
        Message {
            consumer: self.group,
            topic: self.topic_name.clone(),
            id,
            payload: e.payload,
            key: em.partition_key,
            key_is_base64: em.partition_key_b64_encoded.unwrap_or(false),
            ordering_key: em.ordering_key.or_else(|| metadata.ordering_key.clone()),
            properties: kv(em.properties),
            publish_time: metadata.publish_time,
            event_time: em.event_time.or(metadata.event_time).filter(|t| *t > 0),
            producer_name: fields.producer_name.clone(),
            sequence_id: em
                .sequence_id
                .unwrap_or(metadata.sequence_id.wrapping_add(u64::from(index))),
            redelivery_count: ctx.redelivery_count,
            schema_version: metadata.schema_version.clone(),
            broker_entry_metadata: fields.broker_entry,
            null_value: em.null_value.unwrap_or(false),
            encryption: fields.encryption.clone(),
            sub: self.id,
        }
    }

    /// Stage 7: keeps the messages set aside for the dead-letter topic by entry, and hands the
    /// entry to the dead-letter producer at once when its messages were not delivered.
    fn set_aside(
        &mut self,
        entry: Entry,
        set_aside: Vec<Message>,
        too_many: bool,
        out: &mut IntakeOut,
    ) {
        if !set_aside.is_empty() {
            self.dlq_candidates.insert(entry, set_aside);
            if too_many {
                out.dead_letter.push(entry);
            }
        }
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
