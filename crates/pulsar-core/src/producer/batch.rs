//! The batch builder: messages are encoded straight into the batch payload
//! (`[u32 size][SingleMessageMetadata][payload]` entries) as they arrive; a closed batch becomes one
//! pending entry of the producer.
//!
//! In key-based mode there is one open batch per key (ordering key, else partition key) and the
//! limits apply to their sum; closed batches come out ordered by their first sequence id.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pulsar_proto::batch::encode_entry;
use pulsar_proto::pb;

use super::message::OutgoingMessage;
use super::options::BatchingOptions;
use crate::handle::SendId;

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
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(super) fn len(&self) -> usize {
        self.count
    }

    pub(super) fn max_bytes(&self) -> usize {
        self.opts.max_bytes
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

    /// Adds a message; returns true when the batch is now full (close it).
    pub(super) fn add(
        &mut self,
        now: Instant,
        send: SendId,
        seq: u64,
        publish_time: u64,
        msg: OutgoingMessage,
    ) -> bool {
        let size = msg.payload.len();
        let hint = self.size_hint;
        let open = if self.opts.key_based {
            let key = || BatchKey {
                key: msg.key.clone(),
                key_is_base64: msg.key_is_base64,
                ordering_key: msg.ordering_key.clone(),
            };
            self.keyed
                .entry(group_key(&msg))
                .or_insert_with(|| Open::new(hint, now, seq, publish_time, Some(key())))
        } else {
            self.single
                .get_or_insert_with(|| Open::new(hint, now, seq, publish_time, None))
        };
        if self.count == 0 {
            self.deadline = Some(now + self.opts.max_delay);
        }
        let m = &mut self.scratch;
        m.properties.extend(
            msg.properties
                .into_iter()
                .map(|(key, value)| pb::KeyValue { key, value }),
        );
        m.partition_key = msg.key;
        m.partition_key_b64_encoded = msg.key_is_base64.then_some(true);
        m.ordering_key = msg.ordering_key;
        m.event_time = msg.event_time;
        m.sequence_id = Some(seq);
        m.payload_size = i32::try_from(size).unwrap_or(i32::MAX);
        encode_entry(m, &msg.payload, &mut open.buf);
        m.properties.clear();
        m.partition_key = None;
        m.ordering_key = None;
        open.sends.push(send);
        open.highest_seq = open.highest_seq.max(seq);
        open.bytes += size;
        self.count += 1;
        self.bytes += size;
        self.count >= self.opts.max_messages || self.bytes >= self.opts.max_bytes
    }

    /// Closes every open batch into `out`, ordered by first sequence id.
    pub(super) fn close_into(&mut self, out: &mut Vec<Closed>) {
        if self.count == 0 {
            return;
        }
        self.count = 0;
        self.bytes = 0;
        self.deadline = None;
        if let Some(o) = self.single.take() {
            self.size_hint = (o.buf.len().max(64), o.sends.len());
            out.push(o.close());
        }
        if !self.keyed.is_empty() {
            let start = out.len();
            let mut total = 0;
            for (_, o) in std::mem::take(&mut self.keyed) {
                total += o.buf.len();
                out.push(o.close());
            }
            self.size_hint = (total.max(64), 8);
            if let Some(closed) = out.get_mut(start..) {
                closed.sort_by_key(|c| c.first_seq);
            }
        }
    }
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
            first_seq: seq,
            highest_seq: seq,
            bytes: 0,
            created: now,
            publish_time,
            key,
        }
    }

    fn close(mut self) -> Closed {
        Closed {
            payload: self.buf.split().freeze(),
            sends: self.sends,
            first_seq: self.first_seq,
            highest_seq: self.highest_seq,
            bytes: self.bytes,
            created: self.created,
            publish_time: self.publish_time,
            key: self.key,
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
