//! Incremental frame decoder.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

use crate::error::{DecodeError, FrameSection};
use crate::fast::{Reuse, Spare};
use crate::pb;
use crate::{
    DEFAULT_MAX_MESSAGE_SIZE, FRAME_HEADER_ROOM, MAGIC_BROKER_ENTRY_METADATA, MAGIC_CRC32C,
};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The command. Its body field (the one `type` designates) is always present.
    pub command: pb::BaseCommand,
    /// Metadata and payload, for payload commands (`SEND`, `MESSAGE`).
    pub payload: Option<Payload>,
}

/// The part of a payload frame after the command.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Metadata the broker prepended to the entry (only when the client advertised support).
    pub broker_entry_metadata: Option<pb::BrokerEntryMetadata>,
    /// The message metadata.
    pub metadata: pb::MessageMetadata,
    /// The (possibly compressed, possibly batched) payload: a slice of the read buffer, not a
    /// copy.
    pub data: Bytes,
}

/// Decodes frames from a read buffer, enforcing a frame size limit.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

/// The optional sections of a payload frame, before the metadata.
struct PayloadHead {
    broker_entry_metadata: Option<pb::BrokerEntryMetadata>,
    /// The checksum carried by the frame, if any.
    checksum: Option<u32>,
    /// The first two bytes where the checksum magic may have been.
    magic: Option<u16>,
    /// Offset of `[metadataSize]`, where the checksummed part starts.
    body_start: usize,
}

impl FrameDecoder {
    /// A decoder accepting frames for messages of up to `max_message_size` bytes
    /// (the frame limit is `max_message_size + FRAME_HEADER_ROOM`).
    pub fn new(max_message_size: usize) -> Self {
        FrameDecoder {
            max_frame_size: max_message_size.saturating_add(FRAME_HEADER_ROOM),
        }
    }

    /// Adjusts the limit, typically to the broker's `CommandConnected::max_message_size`.
    pub fn set_max_message_size(&mut self, max_message_size: usize) {
        self.max_frame_size = max_message_size.saturating_add(FRAME_HEADER_ROOM);
    }

    /// The largest `totalSize` accepted (the frame without its own 4-byte length prefix).
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Decodes the next frame from `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame; nothing is consumed then. On
    /// `Ok(Some(_))` the frame's bytes are consumed from `buf`. On
    /// [`DecodeError::ChecksumMismatch`] the frame is consumed too; on every other error `buf` is
    /// left untouched and the connection should be closed.
    ///
    /// The frame size is checked against the limit as soon as its 4-byte length is readable,
    /// before anything is reserved or allocated for it. This function never grows `buf`.
    #[inline]
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        // The frame is built where it is returned: `Frame` is about 1 KiB, and moving it costs
        // more than decoding a small command.
        let mut result = Ok(None);
        self.decode_to(buf, &mut result);
        result
    }

    /// Decodes the next frame from `buf` into `frame`, reusing what `frame` holds from an
    /// earlier decode (boxed command bodies, the producer name's buffer, the property list)
    /// instead of allocating afresh, and without moving a `Frame` around.
    ///
    /// Returns `Ok(true)` when a frame was decoded: `frame` then equals what
    /// [`FrameDecoder::decode`] would have returned, with nothing left over from its earlier
    /// contents. Returns `Ok(false)` when `buf` holds only part of a frame: nothing is consumed
    /// and `frame` is left as it was. On an error, `buf` is treated as by
    /// [`FrameDecoder::decode`] and `frame` is left empty (a default command, no payload).
    ///
    /// `frame` may start as any value, e.g. [`Frame::empty`].
    pub fn decode_into(&self, buf: &mut BytesMut, frame: &mut Frame) -> Result<bool, DecodeError> {
        let result = self.decode_reusing(buf, frame);
        if result.is_err() {
            frame.command = pb::BaseCommand::default();
            frame.payload = None;
        }
        result
    }

    /// [`FrameDecoder::decode_into`] without the cleanup after an error.
    #[inline(always)]
    fn decode_reusing(&self, buf: &mut BytesMut, frame: &mut Frame) -> Result<bool, DecodeError> {
        let Some((frame_len, has_payload)) = self.frame_bounds(buf)? else {
            return Ok(false);
        };
        let mut spare = Spare::default();
        spare.recycle_command(&mut frame.command);
        match (&mut frame.payload, has_payload) {
            (Some(payload), true) => {
                spare.recycle_metadata(&mut payload.metadata);
                payload.broker_entry_metadata = None;
                payload.data = Bytes::new();
            }
            (None, true) => frame.payload = Some(Payload::empty()),
            (_, false) => frame.payload = None,
        }
        fill(buf, frame_len, frame, &mut spare)?;
        Ok(true)
    }

    /// [`FrameDecoder::decode`], writing its result into `result` (which holds `Ok(None)`).
    #[inline(never)]
    fn decode_to(&self, buf: &mut BytesMut, result: &mut Result<Option<Frame>, DecodeError>) {
        let (frame_len, has_payload) = match self.frame_bounds(buf) {
            Ok(Some(bounds)) => bounds,
            Ok(None) => return,
            Err(error) => {
                *result = Err(error);
                return;
            }
        };
        *result = Ok(Some(Frame {
            command: pb::BaseCommand::default(),
            payload: has_payload.then(Payload::empty),
        }));
        if let Ok(Some(out)) = result {
            if let Err(error) = fill(buf, frame_len, out, &mut ()) {
                *result = Err(error);
            }
        }
    }

    /// The length of the complete frame at the start of `buf` and whether it has a payload
    /// section (its command ends before the frame does); `None` while it is incomplete.
    #[inline(always)]
    fn frame_bounds(&self, buf: &[u8]) -> Result<Option<(usize, bool)>, DecodeError> {
        let Some(total) = read_u32(buf, 0) else {
            return Ok(None);
        };
        let total = total as usize;
        if total > self.max_frame_size {
            return Err(DecodeError::FrameTooLarge {
                size: total,
                limit: self.max_frame_size,
            });
        }
        if total < 4 {
            return Err(DecodeError::Truncated {
                section: FrameSection::CommandSize,
                needed: 4,
                available: total,
            });
        }
        let frame_len = 4 + total;
        if buf.len() < frame_len {
            return Ok(None);
        }
        // `total >= 4`, so the command size is readable; a command running past the frame is
        // reported by `decode_command`.
        let command_size = read_u32(buf, 4).unwrap_or_default() as usize;
        Ok(Some((
            frame_len,
            8usize.saturating_add(command_size) < frame_len,
        )))
    }
}

impl Frame {
    /// A frame with a default command and no payload: a starting value for
    /// [`FrameDecoder::decode_into`].
    pub fn empty() -> Self {
        Frame {
            command: pb::BaseCommand::default(),
            payload: None,
        }
    }
}

impl Payload {
    /// Default metadata, no broker entry metadata, no data.
    fn empty() -> Self {
        Payload {
            broker_entry_metadata: None,
            metadata: pb::MessageMetadata::default(),
            data: Bytes::new(),
        }
    }
}

/// Decodes the complete frame of `frame_len` bytes at the start of `buf` into `out` (built
/// with a payload exactly when the command ends before the frame does, both empty), and
/// consumes it. Allocations are taken from `spare` where it has them.
#[inline(always)]
fn fill(
    buf: &mut BytesMut,
    frame_len: usize,
    out: &mut Frame,
    spare: &mut impl Reuse,
) -> Result<(), DecodeError> {
    let frame = buf.get(..frame_len).unwrap_or_default();
    let command_end = decode_command(frame, &mut out.command, spare)?;
    let Some(payload) = &mut out.payload else {
        buf.advance(frame_len);
        return Ok(());
    };

    let head = payload_head(frame, command_end)?;
    if let Some(expected) = head.checksum {
        // Verified before the metadata size is trusted: the checksum covers it.
        let actual = crc32c::crc32c(frame.get(head.body_start..).unwrap_or_default());
        if actual != expected {
            buf.advance(frame_len);
            return Err(DecodeError::ChecksumMismatch {
                command: Box::new(std::mem::take(&mut out.command)),
                expected,
                actual,
            });
        }
    }
    let (metadata_range, data_range) = metadata_ranges(frame, &head)?;
    payload.broker_entry_metadata = head.broker_entry_metadata;
    crate::fast::merge_message_metadata(
        &mut payload.metadata,
        frame.get(metadata_range).unwrap_or_default(),
        spare,
    )
    .map_err(|source| DecodeError::Protobuf {
        section: FrameSection::Metadata,
        source,
    })?;
    // Skip the headers, then take the payload: no reference-count traffic beyond the split.
    buf.advance(data_range.start);
    payload.data = buf.split_to(data_range.len()).freeze();
    Ok(())
}

/// Decodes and validates the command of a complete frame into `command` (which must be empty);
/// returns the offset after it.
fn decode_command(
    frame: &[u8],
    command: &mut pb::BaseCommand,
    spare: &mut impl Reuse,
) -> Result<usize, DecodeError> {
    let available = frame.len() - 8;
    let command_size = read_u32(frame, 4).unwrap_or_default() as usize;
    let command_end = 8usize.saturating_add(command_size);
    let Some(bytes) = frame.get(8..command_end) else {
        return Err(DecodeError::Truncated {
            section: FrameSection::Command,
            needed: command_size,
            available,
        });
    };
    crate::fast::merge_base_command(command, bytes, spare).map_err(|source| {
        DecodeError::Protobuf {
            section: FrameSection::Command,
            source,
        }
    })?;
    let Some(kind) = command.kind() else {
        return Err(DecodeError::UnknownCommand(command.r#type));
    };
    if !command.has_body(kind) {
        // Empty commands carry nothing: be lenient with peers that omit their body.
        match kind {
            pb::base_command::Type::Ping => command.ping = Some(Box::default()),
            pb::base_command::Type::Pong => command.pong = Some(Box::default()),
            _ => return Err(DecodeError::MissingCommandBody { kind }),
        }
    }
    Ok(command_end)
}

/// Reads the optional sections after the command of a payload frame.
///
/// Layout: `[0x0e02][u32 size][BrokerEntryMetadata]` (optional), `[0x0e01][u32 crc32c]`
/// (optional), `[u32 metadataSize][MessageMetadata][payload]`; the checksum covers everything after
/// itself.
fn payload_head(frame: &[u8], mut pos: usize) -> Result<PayloadHead, DecodeError> {
    let end = frame.len();

    let mut broker_entry_metadata = None;
    if read_u16(frame, pos) == Some(MAGIC_BROKER_ENTRY_METADATA) {
        let size = read_u32(frame, pos + 2).ok_or_else(|| DecodeError::Truncated {
            section: FrameSection::BrokerEntryMetadata,
            needed: 6,
            available: end - pos,
        })? as usize;
        let start = pos + 6;
        let Some(bytes) = frame.get(start..start.saturating_add(size)) else {
            return Err(DecodeError::Truncated {
                section: FrameSection::BrokerEntryMetadata,
                needed: size,
                available: end - start,
            });
        };
        broker_entry_metadata = Some(pb::BrokerEntryMetadata::decode(bytes).map_err(|source| {
            DecodeError::Protobuf {
                section: FrameSection::BrokerEntryMetadata,
                source,
            }
        })?);
        pos = start + size;
    }

    let magic = read_u16(frame, pos);
    let mut checksum = None;
    if magic == Some(MAGIC_CRC32C) {
        checksum = Some(
            read_u32(frame, pos + 2).ok_or_else(|| DecodeError::Truncated {
                section: FrameSection::Checksum,
                needed: 6,
                available: end - pos,
            })?,
        );
        pos += 6;
    }
    Ok(PayloadHead {
        broker_entry_metadata,
        checksum,
        magic,
        body_start: pos,
    })
}

/// Locates the metadata and the payload data after the optional sections.
fn metadata_ranges(
    frame: &[u8],
    head: &PayloadHead,
) -> Result<(Range<usize>, Range<usize>), DecodeError> {
    let end = frame.len();
    let pos = head.body_start;
    let metadata_size = read_u32(frame, pos).ok_or_else(|| DecodeError::Truncated {
        section: FrameSection::MetadataSize,
        needed: 4,
        available: end - pos,
    })? as usize;
    let metadata_start = pos + 4;
    let metadata_end = metadata_start.saturating_add(metadata_size);
    if metadata_end > end {
        return Err(match (head.checksum, head.magic) {
            // Neither magic and no plausible metadata section: garbage after the command.
            (None, Some(found)) => DecodeError::BadMagic { found },
            _ => DecodeError::Truncated {
                section: FrameSection::Metadata,
                needed: metadata_size,
                available: end - metadata_start,
            },
        });
    }
    Ok((metadata_start..metadata_end, metadata_end..end))
}

#[inline]
fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(chunk.try_into().ok()?))
}

#[inline]
fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let chunk = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes(chunk.try_into().ok()?))
}
