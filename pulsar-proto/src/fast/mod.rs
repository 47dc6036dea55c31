//! Hand-written protobuf codecs for the messages on the hot path, with prost as the fallback.
//!
//! Decoding: `BaseCommand` carrying `SEND`, `SEND_RECEIPT`, `MESSAGE`, `ACK`, `FLOW`, `PING` or
//! `PONG`, `MessageMetadata` (encryption keys included) and `SingleMessageMetadata` are parsed
//! by hand. Anything else — other commands, unknown fields, packed repeated fields,
//! malformed input — is handed to prost, which decodes the whole message from scratch. The
//! result, value or error, is therefore always prost's.
//!
//! Encoding: `CommandSend`, `MessageMetadata` (encryption keys included) and
//! `SingleMessageMetadata` are written by hand, byte-identical to prost's encoding.
//!
//! The frame codec ([`crate::FrameDecoder`], [`crate::encode_send`], [`crate::batch`]) uses
//! these; they are public for callers that handle the messages on their own.

mod decode;
pub(crate) mod encode;
pub(crate) mod wire;

use bytes::BytesMut;
use prost::Message;

use crate::pb;
use encode::Counter;
use wire::{Reader, Writer, SLACK};

/// Merges `bytes` into an empty `msg` by hand, or resets it and lets prost decode.
#[inline(always)]
fn merge_with<T: Message + Default>(
    msg: &mut T,
    bytes: &[u8],
    fast: impl FnOnce(&mut T, Reader<'_>) -> Option<()>,
) -> Result<(), prost::DecodeError> {
    if fast(msg, Reader::new(bytes)).is_none() {
        *msg = T::default();
        msg.merge(bytes)?;
    }
    Ok(())
}

/// Allocations of an earlier frame that the next decode may take instead of allocating.
///
/// The boxes hold default (empty) commands; `producer_name` holds the earlier frame's value (a
/// valid string), which a metadata carrying the same name takes as is.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    pub(crate) send: Option<Box<pb::CommandSend>>,
    pub(crate) send_receipt: Option<Box<pb::CommandSendReceipt>>,
    pub(crate) message: Option<Box<pb::CommandMessage>>,
    pub(crate) producer_name: String,
}

impl Spare {
    /// Empties `command` for a new decode, keeping its reusable boxes (emptied) in `self`.
    #[inline]
    pub(crate) fn recycle_command(&mut self, command: &mut pb::BaseCommand) {
        self.send = command.send.take().map(|mut send| {
            *send = pb::CommandSend::default();
            send
        });
        self.send_receipt = command.send_receipt.take().map(|mut receipt| {
            *receipt = pb::CommandSendReceipt::default();
            receipt
        });
        self.message = command.message.take().map(|mut message| {
            *message = pb::CommandMessage::default();
            message
        });
        // prost's default: the enum's first value (a command without `type` reads as CONNECT).
        command.r#type = pb::base_command::Type::default() as i32;
        if !command.has_no_body() {
            *command = pb::BaseCommand::default();
        }
    }

    /// Empties `metadata` for a new decode, keeping its producer name in `self` and the
    /// capacity of its property list in place.
    #[inline]
    pub(crate) fn recycle_metadata(&mut self, metadata: &mut pb::MessageMetadata) {
        self.producer_name = std::mem::take(&mut metadata.producer_name);
        let mut properties = std::mem::take(&mut metadata.properties);
        properties.clear();
        *metadata = pb::MessageMetadata {
            properties,
            ..Default::default()
        };
    }
}

/// Where the decoders take the allocations of an earlier frame from: [`Spare`], or `()` for
/// none (everything allocated afresh, and no code for reuse compiled in).
pub(crate) trait Reuse {
    /// An empty `CommandSend`.
    fn send(&mut self) -> Box<pb::CommandSend>;
    /// An empty `CommandSendReceipt`.
    fn send_receipt(&mut self) -> Box<pb::CommandSendReceipt>;
    /// An empty `CommandMessage`.
    fn message(&mut self) -> Box<pb::CommandMessage>;
    /// The previous frame's producer name, if reuse is on.
    fn producer_name(&mut self) -> Option<&mut String>;
}

impl Reuse for () {
    #[inline(always)]
    fn send(&mut self) -> Box<pb::CommandSend> {
        Box::default()
    }
    #[inline(always)]
    fn send_receipt(&mut self) -> Box<pb::CommandSendReceipt> {
        Box::default()
    }
    #[inline(always)]
    fn message(&mut self) -> Box<pb::CommandMessage> {
        Box::default()
    }
    #[inline(always)]
    fn producer_name(&mut self) -> Option<&mut String> {
        None
    }
}

impl Reuse for Spare {
    #[inline(always)]
    fn send(&mut self) -> Box<pb::CommandSend> {
        self.send.take().unwrap_or_default()
    }
    #[inline(always)]
    fn send_receipt(&mut self) -> Box<pb::CommandSendReceipt> {
        self.send_receipt.take().unwrap_or_default()
    }
    #[inline(always)]
    fn message(&mut self) -> Box<pb::CommandMessage> {
        self.message.take().unwrap_or_default()
    }
    #[inline(always)]
    fn producer_name(&mut self) -> Option<&mut String> {
        Some(&mut self.producer_name)
    }
}

/// Decodes `bytes` into `command` (which must be empty), as `prost::Message::merge` would,
/// taking allocations from `spare`.
#[inline]
pub(crate) fn merge_base_command(
    command: &mut pb::BaseCommand,
    bytes: &[u8],
    spare: &mut impl Reuse,
) -> Result<(), prost::DecodeError> {
    merge_with(command, bytes, |msg, r| {
        decode::merge_base_command(msg, r, spare)
    })
}

/// Decodes `bytes` into `metadata` (which must be empty but for the capacity of its property
/// list), as `prost::Message::merge` would, taking allocations from `spare`.
#[inline]
pub(crate) fn merge_message_metadata(
    metadata: &mut pb::MessageMetadata,
    bytes: &[u8],
    spare: &mut impl Reuse,
) -> Result<(), prost::DecodeError> {
    merge_with(metadata, bytes, |msg, r| {
        decode::merge_message_metadata(msg, r, spare)
    })
}

/// Decodes a `BaseCommand`; same result as `pb::BaseCommand::decode(bytes)`.
pub fn decode_base_command(bytes: &[u8]) -> Result<pb::BaseCommand, prost::DecodeError> {
    let mut command = pb::BaseCommand::default();
    merge_base_command(&mut command, bytes, &mut ())?;
    Ok(command)
}

/// Decodes a `MessageMetadata`; same result as `pb::MessageMetadata::decode(bytes)`.
pub fn decode_message_metadata(bytes: &[u8]) -> Result<pb::MessageMetadata, prost::DecodeError> {
    let mut metadata = pb::MessageMetadata::default();
    merge_message_metadata(&mut metadata, bytes, &mut ())?;
    Ok(metadata)
}

/// Decodes a `SingleMessageMetadata`; same result as `pb::SingleMessageMetadata::decode(bytes)`.
pub fn decode_single_message_metadata(
    bytes: &[u8],
) -> Result<pb::SingleMessageMetadata, prost::DecodeError> {
    let mut metadata = pb::SingleMessageMetadata::default();
    merge_with(&mut metadata, bytes, decode::merge_single_message_metadata)?;
    Ok(metadata)
}

/// The hand-written `BaseCommand` parser alone: `None` when `bytes` needs prost (another
/// command, an unknown field, malformed input). When `Some`, equal to prost's result.
pub fn try_decode_base_command(bytes: &[u8]) -> Option<pb::BaseCommand> {
    let mut command = pb::BaseCommand::default();
    decode::merge_base_command(&mut command, Reader::new(bytes), &mut ())?;
    Some(command)
}

/// The hand-written `MessageMetadata` parser alone; see [`try_decode_base_command`].
pub fn try_decode_message_metadata(bytes: &[u8]) -> Option<pb::MessageMetadata> {
    let mut metadata = pb::MessageMetadata::default();
    decode::merge_message_metadata(&mut metadata, Reader::new(bytes), &mut ())?;
    Some(metadata)
}

/// The hand-written `SingleMessageMetadata` parser alone; see [`try_decode_base_command`].
pub fn try_decode_single_message_metadata(bytes: &[u8]) -> Option<pb::SingleMessageMetadata> {
    let mut metadata = pb::SingleMessageMetadata::default();
    decode::merge_single_message_metadata(&mut metadata, Reader::new(bytes))?;
    Some(metadata)
}

/// Appends the encoding of a message described by `fields` (`len` bytes) to `out`.
#[inline(always)]
fn append(out: &mut BytesMut, len: usize, fields: impl FnOnce(&mut Writer<'_>)) {
    let start = out.len();
    out.resize(start + len + SLACK, 0);
    if let Some(slot) = out.get_mut(start..) {
        let mut w = Writer::new(slot);
        fields(&mut w);
        debug_assert_eq!(w.position(), len, "encoded length disagrees with the bytes");
    }
    out.truncate(start + len);
}

/// Encoded length of a `MessageMetadata` (same as `prost::Message::encoded_len`).
pub fn message_metadata_len(metadata: &pb::MessageMetadata) -> usize {
    encode::message_metadata_len(metadata).unwrap_or_else(|| metadata.encoded_len())
}

/// Appends a `MessageMetadata`, byte-identical to `prost::Message::encode_raw` (by hand).
pub fn encode_message_metadata(metadata: &pb::MessageMetadata, out: &mut BytesMut) {
    match encode::message_metadata_len(metadata) {
        Some(len) => append(out, len, |w| {
            encode::message_metadata(w, metadata);
        }),
        None => metadata.encode_raw(out),
    }
}

/// Encoded length of a `SingleMessageMetadata` (same as `prost::Message::encoded_len`).
pub fn single_message_metadata_len(metadata: &pb::SingleMessageMetadata) -> usize {
    let mut counter = Counter(0);
    encode::single_message_metadata(&mut counter, metadata);
    counter.0
}

/// Appends a `SingleMessageMetadata`, byte-identical to `prost::Message::encode_raw`.
pub fn encode_single_message_metadata(metadata: &pb::SingleMessageMetadata, out: &mut BytesMut) {
    append_single_message_metadata(metadata, single_message_metadata_len(metadata), out);
}

/// Appends a `SingleMessageMetadata` whose encoded length is `len`.
#[inline]
pub(crate) fn append_single_message_metadata(
    metadata: &pb::SingleMessageMetadata,
    len: usize,
    out: &mut BytesMut,
) {
    append(out, len, |w| encode::single_message_metadata(w, metadata));
}

/// Encoded length of a `CommandSend` (same as `prost::Message::encoded_len`).
pub fn command_send_len(send: &pb::CommandSend) -> usize {
    let mut counter = Counter(0);
    encode::command_send(&mut counter, send);
    counter.0
}

/// Appends a `CommandSend`, byte-identical to `prost::Message::encode_raw`.
pub fn encode_command_send(send: &pb::CommandSend, out: &mut BytesMut) {
    let len = command_send_len(send);
    append(out, len, |w| encode::command_send(w, send));
}
