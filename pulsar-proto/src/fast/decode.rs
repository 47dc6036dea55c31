//! Hand-written decoders for the messages on the hot path. Each `merge_*` function merges the
//! fields it reads into `msg` exactly as prost's `merge` would (last value wins for scalars and
//! strings, nested messages merged, repeated fields appended) and returns `None` as soon as it
//! meets anything else: an unsupported or unknown field, a wire type prost would reject or
//! treat specially (packed repeated scalars), a truncated or overlong value, invalid UTF-8. The
//! caller then discards the partial result and decodes with prost.

use super::wire::{Reader, LEN, VARINT};
use super::Reuse;
use crate::pb;

/// A key's field number and wire type.
#[inline(always)]
fn split_key(key: u64) -> (u64, u64) {
    (key >> 3, key & 7)
}

/// `BaseCommand` carrying `SEND`, `SEND_RECEIPT`, `MESSAGE`, `ACK`, `FLOW`, `PING` or `PONG`.
pub(crate) fn merge_base_command(
    msg: &mut pb::BaseCommand,
    mut r: Reader<'_>,
    spare: &mut impl Reuse,
) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.r#type = r.varint()? as i32,
            (6, LEN) => merge_send(msg.send.get_or_insert_with(|| spare.send()), r.message()?)?,
            (7, LEN) => merge_send_receipt(
                msg.send_receipt.get_or_insert_with(|| spare.send_receipt()),
                r.message()?,
            )?,
            (9, LEN) => merge_message(
                msg.message.get_or_insert_with(|| spare.message()),
                r.message()?,
            )?,
            (10, LEN) => merge_ack(msg.ack.get_or_insert_with(Box::default), r.message()?)?,
            (11, LEN) => merge_flow(msg.flow.get_or_insert_with(Box::default), r.message()?)?,
            (18, LEN) => {
                // CommandPing has no fields: anything inside goes to prost.
                if !r.bytes()?.is_empty() {
                    return None;
                }
                msg.ping.get_or_insert_with(Box::default);
            }
            (19, LEN) => {
                if !r.bytes()?.is_empty() {
                    return None;
                }
                msg.pong.get_or_insert_with(Box::default);
            }
            _ => return None,
        }
    }
    Some(())
}

#[inline(always)]
fn merge_send(msg: &mut pb::CommandSend, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.producer_id = r.varint()?,
            (2, VARINT) => msg.sequence_id = r.varint()?,
            (3, VARINT) => msg.num_messages = Some(r.varint()? as i32),
            (4, VARINT) => msg.txnid_least_bits = Some(r.varint()?),
            (5, VARINT) => msg.txnid_most_bits = Some(r.varint()?),
            (6, VARINT) => msg.highest_sequence_id = Some(r.varint()?),
            (7, VARINT) => msg.is_chunk = Some(r.varint()? != 0),
            (8, VARINT) => msg.marker = Some(r.varint()? != 0),
            (9, LEN) => merge_message_id(
                msg.message_id.get_or_insert_with(Default::default),
                r.message()?,
            )?,
            _ => return None,
        }
    }
    Some(())
}

fn merge_send_receipt(msg: &mut pb::CommandSendReceipt, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.producer_id = r.varint()?,
            (2, VARINT) => msg.sequence_id = r.varint()?,
            (3, LEN) => merge_message_id(
                msg.message_id.get_or_insert_with(Default::default),
                r.message()?,
            )?,
            (4, VARINT) => msg.highest_sequence_id = Some(r.varint()?),
            _ => return None,
        }
    }
    Some(())
}

fn merge_message(msg: &mut pb::CommandMessage, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.consumer_id = r.varint()?,
            (2, LEN) => merge_message_id(&mut msg.message_id, r.message()?)?,
            (3, VARINT) => msg.redelivery_count = Some(r.varint()? as u32),
            // Unpacked only; a packed run goes to prost.
            (4, VARINT) => msg.ack_set.push(r.varint()? as i64),
            (5, VARINT) => msg.consumer_epoch = Some(r.varint()?),
            _ => return None,
        }
    }
    Some(())
}

fn merge_ack(msg: &mut pb::CommandAck, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.consumer_id = r.varint()?,
            (2, VARINT) => msg.ack_type = r.varint()? as i32,
            (3, LEN) => {
                let mut id = pb::MessageIdData::default();
                merge_message_id(&mut id, r.message()?)?;
                msg.message_id.push(id);
            }
            (4, VARINT) => msg.validation_error = Some(r.varint()? as i32),
            (6, VARINT) => msg.txnid_least_bits = Some(r.varint()?),
            (7, VARINT) => msg.txnid_most_bits = Some(r.varint()?),
            (8, VARINT) => msg.request_id = Some(r.varint()?),
            _ => return None,
        }
    }
    Some(())
}

fn merge_flow(msg: &mut pb::CommandFlow, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.consumer_id = r.varint()?,
            (2, VARINT) => msg.message_permits = r.varint()? as u32,
            _ => return None,
        }
    }
    Some(())
}

fn merge_message_id(msg: &mut pb::MessageIdData, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, VARINT) => msg.ledger_id = r.varint()?,
            (2, VARINT) => msg.entry_id = r.varint()?,
            (3, VARINT) => msg.partition = Some(r.varint()? as i32),
            (4, VARINT) => msg.batch_index = Some(r.varint()? as i32),
            (5, VARINT) => msg.ack_set.push(r.varint()? as i64),
            (6, VARINT) => msg.batch_size = Some(r.varint()? as i32),
            // first_chunk_message_id (7) and packed ack sets go to prost.
            _ => return None,
        }
    }
    Some(())
}

fn merge_key_value(msg: &mut pb::KeyValue, mut r: Reader<'_>) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, LEN) => msg.key = r.string()?,
            (2, LEN) => msg.value = r.string()?,
            _ => return None,
        }
    }
    Some(())
}

fn key_value(r: &mut Reader<'_>) -> Option<pb::KeyValue> {
    let mut kv = pb::KeyValue::default();
    merge_key_value(&mut kv, r.message()?)?;
    Some(kv)
}

/// One `EncryptionKeys` (an encrypted entry's wrapped data key), as prost merges it: the
/// required `key` and `value` default to empty when absent, the last occurrence wins.
fn encryption_keys(r: &mut Reader<'_>) -> Option<pb::EncryptionKeys> {
    let mut keys = pb::EncryptionKeys::default();
    let mut r = r.message()?;
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, LEN) => keys.key = r.string()?,
            (2, LEN) => keys.value = r.owned_bytes()?,
            (3, LEN) => keys.metadata.push(key_value(&mut r)?),
            _ => return None,
        }
    }
    Some(keys)
}

/// `MessageMetadata`, every field.
pub(crate) fn merge_message_metadata(
    msg: &mut pb::MessageMetadata,
    mut r: Reader<'_>,
    spare: &mut impl Reuse,
) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, LEN) => match spare.producer_name() {
                Some(previous) => r.string_into(&mut msg.producer_name, previous)?,
                None => msg.producer_name = r.string()?,
            },
            (2, VARINT) => msg.sequence_id = r.varint()?,
            (3, VARINT) => msg.publish_time = r.varint()?,
            (4, LEN) => msg.properties.push(key_value(&mut r)?),
            (5, LEN) => msg.replicated_from = Some(r.string()?),
            (6, LEN) => msg.partition_key = Some(r.string()?),
            (7, LEN) => msg.replicate_to.push(r.string()?),
            (8, VARINT) => msg.compression = Some(r.varint()? as i32),
            (9, VARINT) => msg.uncompressed_size = Some(r.varint()? as u32),
            (11, VARINT) => msg.num_messages_in_batch = Some(r.varint()? as i32),
            (12, VARINT) => msg.event_time = Some(r.varint()?),
            (13, LEN) => msg.encryption_keys.push(encryption_keys(&mut r)?),
            (14, LEN) => msg.encryption_algo = Some(r.string()?),
            (15, LEN) => msg.encryption_param = Some(r.owned_bytes()?),
            (16, LEN) => msg.schema_version = Some(r.owned_bytes()?),
            (17, VARINT) => msg.partition_key_b64_encoded = Some(r.varint()? != 0),
            (18, LEN) => msg.ordering_key = Some(r.owned_bytes()?),
            (19, VARINT) => msg.deliver_at_time = Some(r.varint()? as i64),
            (20, VARINT) => msg.marker_type = Some(r.varint()? as i32),
            (22, VARINT) => msg.txnid_least_bits = Some(r.varint()?),
            (23, VARINT) => msg.txnid_most_bits = Some(r.varint()?),
            (24, VARINT) => msg.highest_sequence_id = Some(r.varint()?),
            (25, VARINT) => msg.null_value = Some(r.varint()? != 0),
            (26, LEN) => msg.uuid = Some(r.string()?),
            (27, VARINT) => msg.num_chunks_from_msg = Some(r.varint()? as i32),
            (28, VARINT) => msg.total_chunk_msg_size = Some(r.varint()? as i32),
            (29, VARINT) => msg.chunk_id = Some(r.varint()? as i32),
            (30, VARINT) => msg.null_partition_key = Some(r.varint()? != 0),
            _ => return None,
        }
    }
    Some(())
}

/// `SingleMessageMetadata`, every field.
pub(crate) fn merge_single_message_metadata(
    msg: &mut pb::SingleMessageMetadata,
    mut r: Reader<'_>,
) -> Option<()> {
    while !r.is_empty() {
        match split_key(r.varint()?) {
            (1, LEN) => msg.properties.push(key_value(&mut r)?),
            (2, LEN) => msg.partition_key = Some(r.string()?),
            (3, VARINT) => msg.payload_size = r.varint()? as i32,
            (4, VARINT) => msg.compacted_out = Some(r.varint()? != 0),
            (5, VARINT) => msg.event_time = Some(r.varint()?),
            (6, VARINT) => msg.partition_key_b64_encoded = Some(r.varint()? != 0),
            (7, LEN) => msg.ordering_key = Some(r.owned_bytes()?),
            (8, VARINT) => msg.sequence_id = Some(r.varint()?),
            (9, VARINT) => msg.null_value = Some(r.varint()? != 0),
            (10, VARINT) => msg.null_partition_key = Some(r.varint()? != 0),
            _ => return None,
        }
    }
    Some(())
}
