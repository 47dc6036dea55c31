//! The batch builder: messages are encoded straight into the batch payload
//! (`[u32 size][SingleMessageMetadata][payload]` entries) as they arrive; a closed batch becomes one
//! pending entry of the producer.
//!
//! In key-based mode there is one open batch per key (ordering key, else partition key) and the
//! limits apply to their sum. Messages of interleaved keys would give the batches interleaved
//! sequence ids, and a deduplicating broker drops a batch whose first id is not above the highest
//! one it stored: so in this mode messages wait unencoded and get their automatic sequence ids when
//! the batches close, batch after batch in the order of their oldest message. The ids on the wire
//! then strictly increase.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use pulsar_proto::batch::encode_entry;
use pulsar_proto::pb;

use super::message::OutgoingMessage;
use super::options::BatchingOptions;
use crate::handle::{SendId, TxnId};
use crate::time;

/// The key a batch is about, in key-based mode (written to the batch's `MessageMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BatchKey {
    pub(super) key: Option<String>,
    pub(super) key_is_base64: bool,
    pub(super) ordering_key: Option<Bytes>,
}

/// A batch being filled.
#[derive(Debug)]
struct Open {
    buf: BytesMut,
    sends: Vec<SendId>,
    /// Key-based mode: the messages, encoded when the batch closes (sequence ids assigned then).
    held: Vec<OutgoingMessage>,
    first_seq: u64,
    highest_seq: u64,
    /// Payload bytes of the messages (memory accounting).
    bytes: usize,
    /// When the first message was accepted (send timeout).
    created: Instant,
    publish_time: u64,
    key: Option<BatchKey>,
}

/// A batch ready to be sent.
#[derive(Debug)]
pub(super) struct Closed {
    /// The uncompressed batch payload.
    pub(super) payload: Bytes,
    pub(super) sends: Vec<SendId>,
    pub(super) first_seq: u64,
    pub(super) highest_seq: u64,
    pub(super) bytes: usize,
    pub(super) created: Instant,
    pub(super) publish_time: u64,
    pub(super) key: Option<BatchKey>,
    /// The transaction of every message inside.
    pub(super) txn: Option<TxnId>,
}

/// The open batch (or batches, key-based) of one producer.
#[derive(Debug)]
pub(super) struct Batcher {
    opts: BatchingOptions,
    single: Option<Open>,
    keyed: BTreeMap<Vec<u8>, Open>,
    /// Messages and payload bytes over all open batches.
    count: usize,
    bytes: usize,
    /// When the open batches must be sent (`max_delay` after the first message).
    pub(super) deadline: Option<Instant>,
    /// Reused metadata of the entry being encoded.
    scratch: pb::SingleMessageMetadata,
    /// Size and message count of the last closed batch: the capacities of the next one.
    size_hint: (usize, usize),
    /// The list [`Batcher::close`] fills (kept for reuse).
    closed: Vec<Closed>,
    /// The transaction of the open batches' messages (a batch never mixes transactions).
    txn: Option<TxnId>,
}

impl Batcher {
    pub(super) fn new(opts: BatchingOptions) -> Batcher {
        Batcher {
            opts,
            single: None,
            keyed: BTreeMap::new(),
            count: 0,
            bytes: 0,
            deadline: None,
            scratch: pb::SingleMessageMetadata::default(),
            size_hint: (256, 8),
            closed: Vec::new(),
            txn: None,
        }
    }

    /// Whether the open batches hold messages of another transaction (or of none) than `msg`:
    /// then they are closed first.
    pub(super) fn holds_other_txn(&self, msg: &OutgoingMessage) -> bool {
        self.count > 0 && self.txn != msg.txn
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// Payload bytes of the messages in the open batches.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `msg` would open a new batch (then it needs a publish time).
    #[inline]
    pub(super) fn opens_batch_for(&self, msg: &OutgoingMessage) -> bool {
        if self.opts.key_based {
            !self.keyed.contains_key(group_key(msg).as_slice())
        } else {
            self.single.is_none()
        }
    }

    /// Whether adding `size` payload bytes would overflow the open batches (then close them first).
    pub(super) fn would_overflow(&self, size: usize) -> bool {
        self.count > 0 && self.bytes + size > self.opts.max_bytes
    }

    /// The oldest message's acceptance time and send id.
    pub(super) fn oldest(&self) -> Option<(Instant, SendId)> {
        let first = |o: &Open| o.sends.first().map(|s| (o.created, *s));
        match &self.single {
            Some(o) => first(o),
            None => self.keyed.values().filter_map(first).min_by_key(|x| x.1),
        }
    }

    /// The oldest message's acceptance time.
    #[inline]
    pub(super) fn oldest_at(&self) -> Option<Instant> {
        match &self.single {
            // an open batch holds at least one message
            Some(o) => Some(o.created),
            None => self.oldest().map(|x| x.0),
        }
    }

    /// Whether batching is per key (sequence ids are then assigned when the batches close).
    pub(super) fn key_based(&self) -> bool {
        self.opts.key_based
    }

    /// Key-based mode: whether batches of keys other than `msg`'s are open.
    pub(super) fn holds_other_keys(&self, msg: &OutgoingMessage) -> bool {
        let own = usize::from(self.keyed.contains_key(group_key(msg).as_slice()));
        self.keyed.len() > own
    }

    /// Adds a message; returns true when the batch is now full (close it). `seq` is its sequence
    /// id, ignored in key-based mode (assigned by [`Batcher::close_into`] unless the message
    /// carries its own).
    #[inline]
    pub(super) fn add(
        &mut self,
        now: Instant,
        send: SendId,
        seq: u64,
        publish_time: u64,
        msg: &mut OutgoingMessage,
    ) -> bool {
        let size = msg.payload.len();
        let hint = self.size_hint;
        if self.count == 0 {
            self.deadline = Some(time::after(now, self.opts.max_delay));
            self.txn = msg.txn;
        }
        let open = if self.opts.key_based {
            let key = || BatchKey {
                key: msg.key.clone(),
                key_is_base64: msg.key_is_base64,
                ordering_key: msg.ordering_key.clone(),
            };
            let open = self
                .keyed
                .entry(group_key(msg))
                .or_insert_with(|| Open::new(hint, now, 0, publish_time, Some(key())));
            open.held.push(std::mem::take(msg));
            open
        } else {
            let open = self
                .single
                .get_or_insert_with(|| Open::new(hint, now, seq, publish_time, None));
            encode(&mut self.scratch, seq, msg, &mut open.buf);
            open.highest_seq = open.highest_seq.max(seq);
            open
        };
        open.sends.push(send);
        open.bytes += size;
        self.count += 1;
        self.bytes += size;
        self.count >= self.opts.max_messages || self.bytes >= self.opts.max_bytes
    }

    /// Closes every open batch (see [`Batcher::close_into`]) into a list to hand back with
    /// [`Batcher::reuse`] once drained.
    pub(super) fn close(&mut self, next_seq: &mut u64) -> Vec<Closed> {
        let mut out = std::mem::take(&mut self.closed);
        self.close_into(next_seq, &mut out);
        out
    }

    /// Takes back the list [`Batcher::close`] returned.
    pub(super) fn reuse(&mut self, mut closed: Vec<Closed>) {
        closed.clear();
        self.closed = closed;
    }

    /// Closes every open batch into `out`. Key-based batches come out in the order of their oldest
    /// message, their messages numbered from `next_seq` on (a message's own id is kept, and
    /// automatic ids continue after it); `next_seq` is advanced past the ids used.
    pub(super) fn close_into(&mut self, next_seq: &mut u64, out: &mut Vec<Closed>) {
        if self.count == 0 {
            return;
        }
        self.count = 0;
        self.bytes = 0;
        self.deadline = None;
        if let Some(o) = self.single.take() {
            self.size_hint = (o.buf.len().max(64), o.sends.len());
            out.push(o.close(self.txn));
        }
        if !self.keyed.is_empty() {
            let mut open: Vec<Open> = std::mem::take(&mut self.keyed).into_values().collect();
            open.sort_by_key(|o| o.sends.first().copied());
            let mut total = 0;
            for mut o in open {
                for (i, mut msg) in std::mem::take(&mut o.held).into_iter().enumerate() {
                    let seq = msg.sequence_id.unwrap_or(*next_seq);
                    *next_seq = (*next_seq).max(seq.wrapping_add(1));
                    if i == 0 {
                        o.first_seq = seq;
                        o.highest_seq = seq;
                    }
                    o.highest_seq = o.highest_seq.max(seq);
                    encode(&mut self.scratch, seq, &mut msg, &mut o.buf);
                }
                total += o.buf.len();
                out.push(o.close(self.txn));
            }
            self.size_hint = (total.max(64), 8);
        }
    }
}

/// Appends one message as a batch entry (its fields other than the payload are taken out),
/// `scratch` being the reused entry metadata.
#[inline]
fn encode(
    m: &mut pb::SingleMessageMetadata,
    seq: u64,
    msg: &mut OutgoingMessage,
    buf: &mut BytesMut,
) {
    if msg.properties.is_empty()
        && msg.key.is_none()
        && msg.ordering_key.is_none()
        && msg.event_time.is_none()
        && !msg.null_value
    {
        encode_plain(seq, &msg.payload, buf);
        return;
    }
    if !msg.properties.is_empty() {
        m.properties.extend(
            msg.properties
                .drain(..)
                .map(|(key, value)| pb::KeyValue { key, value }),
        );
    }
    m.partition_key = msg.key.take();
    m.partition_key_b64_encoded = msg.key_is_base64.then_some(true);
    m.ordering_key = msg.ordering_key.take();
    m.event_time = msg.event_time;
    m.sequence_id = Some(seq);
    m.null_value = msg.null_value.then_some(true);
    let payload = if msg.null_value {
        &[][..]
    } else {
        &msg.payload[..]
    };
    m.payload_size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    encode_entry(m, payload, buf);
    m.null_value = None;
    m.properties.clear();
    m.partition_key = None;
    m.ordering_key = None;
}

/// Writes `v` as a varint at `at`, returning the position after it.
#[inline(always)]
fn put_varint(out: &mut [u8; PLAIN_HEAD], mut at: usize, mut v: u64) -> usize {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        let byte = if v == 0 { low } else { low | 0x80 };
        if let Some(b) = out.get_mut(at) {
            *b = byte;
        }
        at += 1;
        if v == 0 {
            return at;
        }
    }
}

/// The longest head of a plain entry: the u32 metadata length, then two tagged varints.
const PLAIN_HEAD: usize = 4 + 1 + 10 + 1 + 10;

/// The entry of a message with nothing but a payload and a sequence id, byte for byte what
/// `encode_entry` writes for `SingleMessageMetadata { payload_size, sequence_id }` (fields in
/// number order: 3, then 8), without building the metadata or measuring it first: the head (length
/// and metadata) is built on the stack and appended with the payload.
#[inline]
fn encode_plain(seq: u64, payload: &[u8], buf: &mut BytesMut) {
    let size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let mut head = [0u8; PLAIN_HEAD];
    // payload_size: int32 varint (non-negative here), field 3
    head[4] = 3 << 3;
    let n = put_varint(&mut head, 5, size as u64);
    // sequence_id: uint64 varint, field 8
    if let Some(b) = head.get_mut(n) {
        *b = 8 << 3;
    }
    let n = put_varint(&mut head, n + 1, seq);
    let meta_len = (n - 4) as u32;
    head[..4].copy_from_slice(&meta_len.to_be_bytes());
    buf.reserve(n + payload.len());
    buf.put_slice(head.get(..n).unwrap_or_default());
    buf.put_slice(payload);
}

impl Open {
    fn new(
        (bytes, count): (usize, usize),
        now: Instant,
        seq: u64,
        publish_time: u64,
        key: Option<BatchKey>,
    ) -> Open {
        Open {
            buf: BytesMut::with_capacity(bytes + bytes / 8),
            sends: Vec::with_capacity(count),
            held: Vec::new(),
            first_seq: seq,
            highest_seq: seq,
            bytes: 0,
            created: now,
            publish_time,
            key,
        }
    }

    fn close(mut self, txn: Option<TxnId>) -> Closed {
        Closed {
            payload: self.buf.split().freeze(),
            sends: self.sends,
            first_seq: self.first_seq,
            highest_seq: self.highest_seq,
            bytes: self.bytes,
            created: self.created,
            publish_time: self.publish_time,
            key: self.key,
            txn,
        }
    }
}

/// The grouping key of a message in key-based mode: the ordering key, else the partition key.
fn group_key(msg: &OutgoingMessage) -> Vec<u8> {
    match (&msg.ordering_key, &msg.key) {
        (Some(k), _) => [&[1u8][..], k].concat(),
        (None, Some(k)) => [&[2u8][..], k.as_bytes()].concat(),
        (None, None) => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_entry_is_byte_identical_to_encode_entry() {
        for (seq, len) in [
            (0u64, 0usize),
            (1, 1),
            (127, 100),
            (128, 200),
            (u64::MAX, 70_000),
        ] {
            let payload = vec![9u8; len];
            let mut fast = BytesMut::new();
            encode_plain(seq, &payload, &mut fast);
            let mut slow = BytesMut::new();
            let meta = pb::SingleMessageMetadata {
                payload_size: len as i32,
                sequence_id: Some(seq),
                ..Default::default()
            };
            encode_entry(&meta, &payload, &mut slow);
            assert_eq!(fast, slow, "seq {seq} len {len}");
        }
    }
}
