//! Captured frame streams: splitting them into frames, re-encoding, and a corpus on disk.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use pulsar_proto::pb::base_command::Type;
use pulsar_proto::{
    encode_command, encode_payload_command, encode_payload_command_with_broker_entry_metadata,
    DecodeError, Frame, FrameDecoder,
};

use crate::proxy::CapturedConnection;

/// Limit on frames read from a capture (far above anything a test sends).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// A frame together with its exact bytes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFrame {
    /// Offset of the frame in its stream.
    pub offset: usize,
    /// The frame's bytes, length prefix included.
    pub raw: Bytes,
    /// The decoded frame.
    pub frame: Frame,
}

impl RawFrame {
    /// The command type.
    pub fn kind(&self) -> Option<Type> {
        self.frame.command.kind()
    }
}

/// Why a captured stream could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoldenError {
    /// A frame failed to decode.
    #[error("frame at offset {offset}: {source}")]
    Decode {
        /// Offset of the frame in the stream.
        offset: usize,
        /// The codec's error.
        #[source]
        source: DecodeError,
    },
    /// The stream ends inside a frame.
    #[error("stream ends inside a frame at offset {offset} ({left} bytes left)")]
    Truncated {
        /// Offset of the incomplete frame.
        offset: usize,
        /// Bytes left in the stream.
        left: usize,
    },
    /// The decoder consumed a different number of bytes than the frame's length prefix says.
    #[error("frame at offset {offset}: length prefix says {expected} bytes, decoder used {used}")]
    Length {
        /// Offset of the frame.
        offset: usize,
        /// Length from the prefix.
        expected: usize,
        /// Bytes consumed.
        used: usize,
    },
    /// Reading or writing a corpus file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Splits a whole stream into frames, decoding each one; fails on the first bad frame and on
/// trailing bytes.
pub fn split_frames(stream: &[u8]) -> Result<Vec<RawFrame>, GoldenError> {
    let decoder = FrameDecoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < stream.len() {
        let rest = stream.get(offset..).unwrap_or_default();
        let truncated = GoldenError::Truncated {
            offset,
            left: rest.len(),
        };
        let Some(prefix) = rest.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok()) else {
            return Err(truncated);
        };
        let len = 4 + u32::from_be_bytes(prefix) as usize;
        let Some(raw) = rest.get(..len) else {
            return Err(truncated);
        };
        let mut buf = BytesMut::from(raw);
        let frame = decoder
            .decode(&mut buf)
            .map_err(|source| GoldenError::Decode { offset, source })?
            .ok_or(GoldenError::Truncated {
                offset,
                left: rest.len(),
            })?;
        if !buf.is_empty() {
            return Err(GoldenError::Length {
                offset,
                expected: len,
                used: len - buf.len(),
            });
        }
        frames.push(RawFrame {
            offset,
            raw: Bytes::copy_from_slice(raw),
            frame,
        });
        offset += len;
    }
    Ok(frames)
}

/// Encodes a decoded frame again with pulsar-proto's encoders (payload frames with a checksum,
/// as every client and broker send them).
pub fn reencode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    match &frame.payload {
        None => encode_command(&frame.command, &mut out),
        Some(payload) => match &payload.broker_entry_metadata {
            None => {
                encode_payload_command(&frame.command, &payload.metadata, &payload.data, &mut out)
            }
            Some(entry) => encode_payload_command_with_broker_entry_metadata(
                &frame.command,
                entry,
                &payload.metadata,
                &payload.data,
                &mut out,
            ),
        },
    }
    out
}

/// The command types of `frames`, in order (`None` for an unknown type).
pub fn kinds(frames: &[RawFrame]) -> Vec<Option<Type>> {
    frames.iter().map(RawFrame::kind).collect()
}

/// Writes captures as `conn-N.client.bin` / `conn-N.broker.bin` files into `dir`.
pub fn write_corpus(dir: &Path, connections: &[CapturedConnection]) -> Result<(), GoldenError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| GoldenError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (i, connection) in connections.iter().enumerate() {
        for (side, bytes) in [
            ("client", &connection.client_to_broker),
            ("broker", &connection.broker_to_client),
        ] {
            let path = dir.join(format!("conn-{i}.{side}.bin"));
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Reads the captures [`write_corpus`] wrote, in connection order.
pub fn read_corpus(dir: &Path) -> Result<Vec<CapturedConnection>, GoldenError> {
    let mut connections = Vec::new();
    for i in 0.. {
        let client = dir.join(format!("conn-{i}.client.bin"));
        if !client.exists() {
            break;
        }
        let broker = dir.join(format!("conn-{i}.broker.bin"));
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| GoldenError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        connections.push(CapturedConnection {
            client_to_broker: read(&client)?,
            broker_to_client: read(&broker)?,
            lookups_rewritten: 0,
        });
    }
    Ok(connections)
}
