//! Errors reported by the frame decoder.

use crate::pb;

/// A part of a frame, named in decode errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameSection {
    /// The `u32` command size after the total size.
    CommandSize,
    /// The serialized `BaseCommand`.
    Command,
    /// The `0x0e02` broker entry metadata section (magic, size and message).
    BrokerEntryMetadata,
    /// The `0x0e01` magic and the CRC32C after it.
    Checksum,
    /// The `u32` metadata size.
    MetadataSize,
    /// The serialized `MessageMetadata`.
    Metadata,
}

impl std::fmt::Display for FrameSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameSection::CommandSize => "command size",
            FrameSection::Command => "command",
            FrameSection::BrokerEntryMetadata => "broker entry metadata",
            FrameSection::Checksum => "checksum",
            FrameSection::MetadataSize => "metadata size",
            FrameSection::Metadata => "message metadata",
        })
    }
}

/// Why a frame could not be decoded.
///
/// Only [`DecodeError::ChecksumMismatch`] leaves the stream usable (see
/// [`DecodeError::is_recoverable`]); after any other error the connection must be closed, and the
/// read buffer is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame announces more bytes than the decoder accepts. Detected from the first four
    /// bytes, before anything is buffered or allocated for the frame.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// The announced size (the `totalSize` field).
        size: usize,
        /// The decoder's limit.
        limit: usize,
    },
    /// A size field inside the frame points past the end of the frame (or of its section).
    #[error("{section} needs {needed} bytes but only {available} remain in the frame")]
    Truncated {
        /// The section that does not fit.
        section: FrameSection,
        /// Bytes the section needs.
        needed: usize,
        /// Bytes left in the frame at that point.
        available: usize,
    },
    /// The bytes after the command start with neither the checksum magic `0x0e01` nor the broker
    /// entry metadata magic `0x0e02`, and cannot be a plain metadata section either.
    #[error("unrecognised payload section starting with {found:#06x}")]
    BadMagic {
        /// The first two bytes after the command.
        found: u16,
    },
    /// The CRC32C over metadata and payload does not match the one in the frame.
    ///
    /// The frame has been consumed and the stream is still in sync: the connection may go on. The
    /// command is kept so a consumer can tell the broker which message was corrupt.
    #[error("checksum mismatch: frame says {expected:#010x}, content gives {actual:#010x}")]
    ChecksumMismatch {
        /// The frame's command (for `MESSAGE`: consumer id and message id).
        command: Box<pb::BaseCommand>,
        /// The checksum carried by the frame.
        expected: u32,
        /// The checksum computed over the received bytes.
        actual: u32,
    },
    /// A protobuf message inside the frame is malformed.
    #[error("malformed {section}: {source}")]
    Protobuf {
        /// Which message failed to decode.
        section: FrameSection,
        /// The protobuf decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// The command's `type` is not a command this crate knows.
    #[error("unknown command type {0}")]
    UnknownCommand(i32),
    /// The command's `type` is known but its body field is absent.
    #[error("{kind:?} command without its body")]
    MissingCommandBody {
        /// The command type.
        kind: pb::base_command::Type,
    },
}

impl DecodeError {
    /// `true` when the stream is still in sync after this error and decoding may continue.
    ///
    /// That is only the case for [`DecodeError::ChecksumMismatch`]; every other error is fatal for
    /// the connection.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, DecodeError::ChecksumMismatch { .. })
    }
}
