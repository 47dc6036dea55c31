//! Frame encoders: they write straight into the caller's `BytesMut`, with no temporary buffer.
//!
//! Sizes are written as `u32`; callers keep frames within the broker's `max_message_size`
//! (far below 4 GiB).

use bytes::{BufMut, BytesMut};
use prost::encoding::{encode_varint, encoded_len_varint};
use prost::Message;

use crate::pb;
use crate::{MAGIC_BROKER_ENTRY_METADATA, MAGIC_CRC32C};

/// Key of `BaseCommand.type` (field 1, varint) followed by the value `SEND` (6).
const SEND_TYPE: [u8; 2] = [0x08, pb::base_command::Type::Send as u8];
/// Key of `BaseCommand.send` (field 6, length-delimited).
const SEND_FIELD_KEY: u8 = (6 << 3) | 2;

/// Appends a simple frame: `[totalSize][commandSize][BaseCommand]`.
pub fn encode_command(command: &pb::BaseCommand, out: &mut BytesMut) {
    let command_len = command.encoded_len();
    let start = out.len();
    out.resize(start + 8 + command_len, 0);
    if let Some(mut w) = out.get_mut(start..) {
        w.put_u32((4 + command_len) as u32);
        w.put_u32(command_len as u32);
        command.encode_raw(&mut w);
        debug_assert!(
            w.is_empty(),
            "encoded length disagrees with the bytes written"
        );
    }
}

/// Appends a payload frame: the command, then `[0x0e01][crc32c][metadataSize][metadata][payload]`.
pub fn encode_payload_command(
    command: &pb::BaseCommand,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let command_len = command.encoded_len();
    write_payload_frame(
        out,
        command_len,
        |w| command.encode_raw(w),
        None,
        metadata,
        payload,
    );
}

/// Like [`encode_payload_command`], with a `0x0e02` broker entry metadata section before the
/// checksum, as a broker sends `MESSAGE` frames to clients that advertised
/// `supports_broker_entry_metadata`. Useful to simulate a broker.
pub fn encode_payload_command_with_broker_entry_metadata(
    command: &pb::BaseCommand,
    broker_entry_metadata: &pb::BrokerEntryMetadata,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let command_len = command.encoded_len();
    write_payload_frame(
        out,
        command_len,
        |w| command.encode_raw(w),
        Some(broker_entry_metadata),
        metadata,
        payload,
    );
}

/// Appends a `SEND` frame for `send`, byte-identical to
/// `encode_payload_command(&BaseCommand::from(send.clone()), ..)` but without building the
/// `BaseCommand` (no allocation, no copy of `send`).
pub fn encode_send(
    send: &pb::CommandSend,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
) {
    // prost writes fields in number order: `type` (1), then `send` (6).
    let send_len = send.encoded_len();
    let command_len = SEND_TYPE.len() + 1 + encoded_len_varint(send_len as u64) + send_len;
    write_payload_frame(
        out,
        command_len,
        |w| {
            w.put_slice(&SEND_TYPE);
            w.put_u8(SEND_FIELD_KEY);
            encode_varint(send_len as u64, w);
            send.encode_raw(w);
        },
        None,
        metadata,
        payload,
    );
}

/// Writes a whole payload frame; `write_command` must write exactly `command_len` bytes.
///
/// The headers (everything before the payload) are written into a zero-filled slice of `out`
/// rather than through `BytesMut`'s `BufMut`, which checks capacity on every byte; the payload
/// is then copied once and the checksum computed in one pass over metadata and payload.
#[inline(always)]
fn write_payload_frame(
    out: &mut BytesMut,
    command_len: usize,
    write_command: impl FnOnce(&mut &mut [u8]),
    broker_entry_metadata: Option<&pb::BrokerEntryMetadata>,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
) {
    let entry_len = broker_entry_metadata.map(Message::encoded_len);
    let entry_section = entry_len.map_or(0, |len| 2 + 4 + len);
    let metadata_len = metadata.encoded_len();
    let header_len = 8 + command_len + entry_section + 2 + 4 + 4 + metadata_len;
    let total = header_len - 4 + payload.len();
    out.reserve(header_len + payload.len());

    let start = out.len();
    out.resize(start + header_len, 0);
    let checksum_at = start + header_len - metadata_len - 8;
    if let Some(mut w) = out.get_mut(start..) {
        w.put_u32(total as u32);
        w.put_u32(command_len as u32);
        write_command(&mut w);
        if let (Some(entry), Some(len)) = (broker_entry_metadata, entry_len) {
            w.put_u16(MAGIC_BROKER_ENTRY_METADATA);
            w.put_u32(len as u32);
            entry.encode_raw(&mut w);
        }
        w.put_u16(MAGIC_CRC32C);
        w.put_u32(0); // checksum, filled in below
        w.put_u32(metadata_len as u32);
        metadata.encode_raw(&mut w);
        debug_assert!(
            w.is_empty(),
            "encoded lengths disagree with the bytes written"
        );
    }
    out.extend_from_slice(payload);
    if let Some(covered) = out.get(checksum_at + 4..) {
        let checksum = crc32c::crc32c(covered);
        if let Some(slot) = out.get_mut(checksum_at..checksum_at + 4) {
            slot.copy_from_slice(&checksum.to_be_bytes());
        }
    }
}
