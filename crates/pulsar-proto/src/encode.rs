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
    out.reserve(8 + command_len);
    out.put_u32((4 + command_len) as u32);
    out.put_u32(command_len as u32);
    command.encode_raw(out);
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
        |out| command.encode_raw(out),
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
        |out| command.encode_raw(out),
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
        |out| {
            out.put_slice(&SEND_TYPE);
            out.put_u8(SEND_FIELD_KEY);
            encode_varint(send_len as u64, out);
            send.encode_raw(out);
        },
        None,
        metadata,
        payload,
    );
}

/// Writes a whole payload frame; `write_command` must write exactly `command_len` bytes.
#[inline(always)]
fn write_payload_frame(
    out: &mut BytesMut,
    command_len: usize,
    write_command: impl FnOnce(&mut BytesMut),
    broker_entry_metadata: Option<&pb::BrokerEntryMetadata>,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
) {
    let entry_len = broker_entry_metadata.map(Message::encoded_len);
    let entry_section = entry_len.map_or(0, |len| 2 + 4 + len);
    let metadata_len = metadata.encoded_len();
    let total = 4 + command_len + entry_section + 2 + 4 + 4 + metadata_len + payload.len();
    out.reserve(4 + total);

    out.put_u32(total as u32);
    out.put_u32(command_len as u32);
    write_command(out);
    if let (Some(entry), Some(len)) = (broker_entry_metadata, entry_len) {
        out.put_u16(MAGIC_BROKER_ENTRY_METADATA);
        out.put_u32(len as u32);
        entry.encode_raw(out);
    }
    out.put_u16(MAGIC_CRC32C);
    let checksum_at = out.len();
    out.put_u32(0);
    out.put_u32(metadata_len as u32);
    metadata.encode_raw(out);
    let checksum = crc32c::crc32c_append(crc32c::crc32c(&out[checksum_at + 4..]), payload);
    out.put_slice(payload);
    out[checksum_at..checksum_at + 4].copy_from_slice(&checksum.to_be_bytes());
}
