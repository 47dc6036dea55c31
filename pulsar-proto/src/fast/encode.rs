//! Hand-written encoders, byte-identical to prost's: fields in declaration order, required
//! fields always, optional fields when set, repeated fields element by element (unpacked, as
//! the protocol declares them). Each message is described once, generically over a [`Sink`]
//! that either counts bytes or writes them, so lengths and bytes cannot disagree.

use super::wire::{key, varint_len, Writer, LEN, VARINT};
use crate::pb;

/// Receives the fields of a message in wire order.
pub(crate) trait Sink {
    /// A varint field.
    fn varint(&mut self, key: u64, value: u64);
    /// A length-delimited field with its content.
    fn bytes(&mut self, key: u64, bytes: &[u8]);
    /// The key and length of a nested message; its fields follow.
    fn nested(&mut self, key: u64, len: usize);
}

/// Counts the bytes a message takes.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    #[inline(always)]
    fn varint(&mut self, key: u64, value: u64) {
        self.0 += varint_len(key) + varint_len(value);
    }

    #[inline(always)]
    fn bytes(&mut self, key: u64, bytes: &[u8]) {
        self.0 += varint_len(key) + varint_len(bytes.len() as u64) + bytes.len();
    }

    #[inline(always)]
    fn nested(&mut self, key: u64, len: usize) {
        self.0 += varint_len(key) + varint_len(len as u64);
    }
}

impl Sink for Writer<'_> {
    #[inline(always)]
    fn varint(&mut self, key: u64, value: u64) {
        self.varint_field(key, value);
    }

    #[inline(always)]
    fn bytes(&mut self, key: u64, bytes: &[u8]) {
        self.bytes_field(key, bytes);
    }

    #[inline(always)]
    fn nested(&mut self, key: u64, len: usize) {
        self.key(key);
        self.varint(len as u64);
    }
}

/// Bytes `f` writes for `value`.
#[inline(always)]
fn len_of<T: ?Sized>(value: &T, f: impl FnOnce(&mut Counter, &T)) -> usize {
    let mut counter = Counter(0);
    f(&mut counter, value);
    counter.0
}

/// prost's encoding of `int32` / `enum` values: sign-extended to 64 bits.
#[inline(always)]
fn i32_wire(value: i32) -> u64 {
    i64::from(value) as u64
}

#[inline(always)]
fn opt_varint<S: Sink>(s: &mut S, key: u64, value: Option<u64>) {
    if let Some(value) = value {
        s.varint(key, value);
    }
}

#[inline(always)]
fn opt_i32<S: Sink>(s: &mut S, key: u64, value: Option<i32>) {
    opt_varint(s, key, value.map(i32_wire));
}

#[inline(always)]
fn opt_bool<S: Sink>(s: &mut S, key: u64, value: Option<bool>) {
    opt_varint(s, key, value.map(u64::from));
}

#[inline(always)]
fn opt_bytes<S: Sink>(s: &mut S, key: u64, value: Option<&[u8]>) {
    if let Some(value) = value {
        s.bytes(key, value);
    }
}

const fn v(field: u64) -> u64 {
    key(field, VARINT)
}

const fn l(field: u64) -> u64 {
    key(field, LEN)
}

/// `CommandSend`'s fields.
#[inline(always)]
pub(crate) fn command_send<S: Sink>(s: &mut S, m: &pb::CommandSend) {
    s.varint(v(1), m.producer_id);
    s.varint(v(2), m.sequence_id);
    opt_i32(s, v(3), m.num_messages);
    opt_varint(s, v(4), m.txnid_least_bits);
    opt_varint(s, v(5), m.txnid_most_bits);
    opt_varint(s, v(6), m.highest_sequence_id);
    opt_bool(s, v(7), m.is_chunk);
    opt_bool(s, v(8), m.marker);
    if let Some(id) = &m.message_id {
        s.nested(l(9), len_of(id, message_id));
        message_id(s, id);
    }
}

/// `MessageIdData`'s fields.
pub(crate) fn message_id<S: Sink>(s: &mut S, m: &pb::MessageIdData) {
    s.varint(v(1), m.ledger_id);
    s.varint(v(2), m.entry_id);
    opt_i32(s, v(3), m.partition);
    opt_i32(s, v(4), m.batch_index);
    for &bits in &m.ack_set {
        s.varint(v(5), bits as u64);
    }
    opt_i32(s, v(6), m.batch_size);
    if let Some(first) = &m.first_chunk_message_id {
        s.nested(l(7), len_of(&**first, message_id));
        message_id(s, first);
    }
}

#[inline(always)]
fn key_value<S: Sink>(s: &mut S, m: &pb::KeyValue) {
    s.bytes(l(1), m.key.as_bytes());
    s.bytes(l(2), m.value.as_bytes());
}

#[inline(always)]
fn key_value_len(m: &pb::KeyValue) -> usize {
    len_of(m, key_value)
}

/// `EncryptionKeys`' fields (an encrypted entry's wrapped data key).
#[inline(always)]
fn encryption_keys<S: Sink>(s: &mut S, m: &pb::EncryptionKeys) {
    s.bytes(l(1), m.key.as_bytes());
    s.bytes(l(2), &m.value);
    for kv in &m.metadata {
        s.nested(l(3), key_value_len(kv));
        key_value(s, kv);
    }
}

/// `MessageMetadata`'s fields (all of them, `encryption_keys` included: an encrypted entry
/// is encoded by hand too); always `true`.
#[inline(always)]
pub(crate) fn message_metadata<S: Sink>(s: &mut S, m: &pb::MessageMetadata) -> bool {
    s.bytes(l(1), m.producer_name.as_bytes());
    s.varint(v(2), m.sequence_id);
    s.varint(v(3), m.publish_time);
    for kv in &m.properties {
        s.nested(l(4), key_value_len(kv));
        key_value(s, kv);
    }
    opt_bytes(s, l(5), m.replicated_from.as_deref().map(str::as_bytes));
    opt_bytes(s, l(6), m.partition_key.as_deref().map(str::as_bytes));
    for cluster in &m.replicate_to {
        s.bytes(l(7), cluster.as_bytes());
    }
    opt_i32(s, v(8), m.compression);
    opt_varint(s, v(9), m.uncompressed_size.map(u64::from));
    opt_i32(s, v(11), m.num_messages_in_batch);
    opt_varint(s, v(12), m.event_time);
    for k in &m.encryption_keys {
        s.nested(l(13), len_of(k, encryption_keys));
        encryption_keys(s, k);
    }
    opt_bytes(s, l(14), m.encryption_algo.as_deref().map(str::as_bytes));
    opt_bytes(s, l(15), m.encryption_param.as_deref());
    opt_bytes(s, l(16), m.schema_version.as_deref());
    opt_bool(s, v(17), m.partition_key_b64_encoded);
    opt_bytes(s, l(18), m.ordering_key.as_deref());
    opt_varint(s, v(19), m.deliver_at_time.map(|t| t as u64));
    opt_i32(s, v(20), m.marker_type);
    opt_varint(s, v(22), m.txnid_least_bits);
    opt_varint(s, v(23), m.txnid_most_bits);
    opt_varint(s, v(24), m.highest_sequence_id);
    opt_bool(s, v(25), m.null_value);
    opt_bytes(s, l(26), m.uuid.as_deref().map(str::as_bytes));
    opt_i32(s, v(27), m.num_chunks_from_msg);
    opt_i32(s, v(28), m.total_chunk_msg_size);
    opt_i32(s, v(29), m.chunk_id);
    opt_bool(s, v(30), m.null_partition_key);
    true
}

/// `SingleMessageMetadata`'s fields.
#[inline(always)]
pub(crate) fn single_message_metadata<S: Sink>(s: &mut S, m: &pb::SingleMessageMetadata) {
    for kv in &m.properties {
        s.nested(l(1), key_value_len(kv));
        key_value(s, kv);
    }
    opt_bytes(s, l(2), m.partition_key.as_deref().map(str::as_bytes));
    s.varint(v(3), i32_wire(m.payload_size));
    opt_bool(s, v(4), m.compacted_out);
    opt_varint(s, v(5), m.event_time);
    opt_bool(s, v(6), m.partition_key_b64_encoded);
    opt_bytes(s, l(7), m.ordering_key.as_deref());
    opt_varint(s, v(8), m.sequence_id);
    opt_bool(s, v(9), m.null_value);
    opt_bool(s, v(10), m.null_partition_key);
}

/// Encoded length of a `MessageMetadata` (always `Some`: every field is encoded by hand).
#[inline(always)]
pub(crate) fn message_metadata_len(m: &pb::MessageMetadata) -> Option<usize> {
    let mut counter = Counter(0);
    message_metadata(&mut counter, m).then_some(counter.0)
}
