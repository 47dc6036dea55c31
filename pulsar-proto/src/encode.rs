//! Frame encoders: they write straight into the caller's `BytesMut`, with no temporary buffer.
//!
//! Sizes are written as `u32`; callers keep frames within the broker's `max_message_size`
//! (far below 4 GiB).

use bytes::BytesMut;
use prost::Message;

use crate::fast::encode::{self as fields, Counter};
use crate::fast::wire::{varint_len, Writer, SLACK};
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
    let frame_len = 8 + command_len;
    out.resize(start + frame_len + SLACK, 0);
    if let Some(slot) = out.get_mut(start..) {
        let mut w = Writer::new(slot);
        w.u32_be((4 + command_len) as u32);
        w.u32_be(command_len as u32);
        w.prost(command, command_len);
    }
    out.truncate(start + frame_len);
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
        |w| w.prost(command, command_len),
        None,
        metadata,
        payload,
        PayloadBytes::Copied,
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
        |w| w.prost(command, command_len),
        Some(broker_entry_metadata),
        metadata,
        payload,
        PayloadBytes::Copied,
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
    write_send(send, metadata, payload, out, PayloadBytes::Copied);
}

/// Appends everything of a `SEND` frame but its payload: the bytes of
/// [`encode_send`]`(send, metadata, payload, out)` without the final `payload.len()` (the frame's
/// size and its checksum still cover the payload). Write `payload` right after them: large
/// payloads then go out by reference (a vectored write) instead of being copied into `out`.
pub fn encode_send_head(
    send: &pb::CommandSend,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
) {
    write_send(send, metadata, payload, out, PayloadBytes::Left);
}

#[inline(always)]
fn write_send(
    send: &pb::CommandSend,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    out: &mut BytesMut,
    payload_bytes: PayloadBytes,
) {
    // prost writes fields in number order: `type` (1), then `send` (6).
    let mut counter = Counter(0);
    fields::command_send(&mut counter, send);
    let send_len = counter.0;
    let command_len = SEND_TYPE.len() + 1 + varint_len(send_len as u64) + send_len;
    write_payload_frame(
        out,
        command_len,
        |w| {
            w.array(SEND_TYPE);
            w.u8(SEND_FIELD_KEY);
            w.varint(send_len as u64);
            fields::command_send(w, send);
        },
        None,
        metadata,
        payload,
        payload_bytes,
    );
}

/// Whether [`write_payload_frame`] appends the payload or leaves it to the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PayloadBytes {
    Copied,
    Left,
}

/// Writes a whole payload frame; `write_command` must write exactly `command_len` bytes.
///
/// The headers (everything before the payload) are written into a zero-filled slice of `out`
/// (with [`SLACK`] scratch bytes, cut off afterwards) rather than through `BytesMut`'s
/// `BufMut`, which checks capacity on every byte; the payload is then copied once and the
/// checksum computed in one pass over metadata and payload. With [`PayloadBytes::Left`] the
/// payload is not appended: the checksum is computed over the metadata and then over the
/// caller's payload where it is.
#[inline(always)]
fn write_payload_frame(
    out: &mut BytesMut,
    command_len: usize,
    write_command: impl FnOnce(&mut Writer<'_>),
    broker_entry_metadata: Option<&pb::BrokerEntryMetadata>,
    metadata: &pb::MessageMetadata,
    payload: &[u8],
    payload_bytes: PayloadBytes,
) {
    let entry_len = broker_entry_metadata.map(Message::encoded_len);
    let entry_section = entry_len.map_or(0, |len| 2 + 4 + len);
    let fast_metadata_len = fields::message_metadata_len(metadata);
    let metadata_len = fast_metadata_len.unwrap_or_else(|| metadata.encoded_len());
    let header_len = 8 + command_len + entry_section + 2 + 4 + 4 + metadata_len;
    let total = header_len - 4 + payload.len();
    let appended = match payload_bytes {
        PayloadBytes::Copied => payload.len(),
        PayloadBytes::Left => 0,
    };
    out.reserve(header_len + SLACK.max(appended));

    let start = out.len();
    out.resize(start + header_len + SLACK, 0);
    let checksum_at = start + header_len - metadata_len - 8;
    if let Some(slot) = out.get_mut(start..) {
        let mut w = Writer::new(slot);
        w.u32_be(total as u32);
        w.u32_be(command_len as u32);
        write_command(&mut w);
        if let (Some(entry), Some(len)) = (broker_entry_metadata, entry_len) {
            w.u16_be(MAGIC_BROKER_ENTRY_METADATA);
            w.u32_be(len as u32);
            w.prost(entry, len);
        }
        w.u16_be(MAGIC_CRC32C);
        w.u32_be(0); // checksum, filled in below
        w.u32_be(metadata_len as u32);
        if fast_metadata_len.is_some() {
            fields::message_metadata(&mut w, metadata);
        } else {
            w.prost(metadata, metadata_len);
        }
        debug_assert_eq!(
            w.position(),
            header_len,
            "encoded lengths disagree with the bytes written"
        );
    }
    out.truncate(start + header_len);
    if payload_bytes == PayloadBytes::Copied {
        out.extend_from_slice(payload);
    }
    if let Some(covered) = out.get(checksum_at + 4..) {
        let mut checksum = crc32c::crc32c(covered);
        if payload_bytes == PayloadBytes::Left {
            checksum = crc32c::crc32c_append(checksum, payload);
        }
        if let Some(slot) = out.get_mut(checksum_at..checksum_at + 4) {
            slot.copy_from_slice(&checksum.to_be_bytes());
        }
    }
}
