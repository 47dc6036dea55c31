//! The Apache Pulsar binary protocol (version 21): prost types and a zero-copy frame codec.
//!
//! This crate does no I/O. Encoders append frames to a [`bytes::BytesMut`]; the
//! [`FrameDecoder`] takes frames off the front of a read buffer as they become complete.
//!
//! Wire format (big-endian):
//!
//! * simple command: `[totalSize u32][commandSize u32][BaseCommand]`;
//! * payload command (`SEND`, `MESSAGE`): the above, then optionally
//!   `[0x0e02][size u32][BrokerEntryMetadata]` (broker to client only), then
//!   `[0x0e01][crc32c u32][metadataSize u32][MessageMetadata][payload]`, the checksum covering
//!   everything after itself. Magic and checksum are optional on receive.
//!
//! ```
//! use bytes::BytesMut;
//! use pulsar_proto::{encode_send, pb, FrameDecoder};
//!
//! let send = pb::CommandSend { producer_id: 1, sequence_id: 7, ..Default::default() };
//! let metadata = pb::MessageMetadata {
//!     producer_name: "producer-1".into(),
//!     sequence_id: 7,
//!     publish_time: 1_700_000_000_000,
//!     ..Default::default()
//! };
//! let mut wire = BytesMut::new();
//! encode_send(&send, &metadata, b"hello", &mut wire);
//! pulsar_proto::encode_command(&pb::BaseCommand::from(pb::CommandPing {}), &mut wire);
//!
//! let decoder = FrameDecoder::default();
//! let frame = decoder.decode(&mut wire)?.expect("a complete frame");
//! assert_eq!(frame.command.kind(), Some(pb::base_command::Type::Send));
//! assert_eq!(frame.command.send.as_deref(), Some(&send));
//! let payload = frame.payload.expect("SEND carries a payload");
//! assert_eq!(payload.metadata, metadata);
//! assert_eq!(&payload.data[..], b"hello");
//!
//! let ping = decoder.decode(&mut wire)?.expect("a complete frame");
//! assert_eq!(ping.command.kind(), Some(pb::base_command::Type::Ping));
//! assert!(wire.is_empty());
//! assert!(decoder.decode(&mut wire)?.is_none()); // nothing buffered: wait for more bytes
//! # Ok::<(), pulsar_proto::DecodeError>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

/// The examples of the crate's README.md, compiled (and run unless `no_run`) by `cargo test --doc`
/// so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub mod batch;
mod decode;
mod encode;
mod error;
pub mod fast;
pub mod pb;

pub use decode::{Frame, FrameDecoder, Payload};
pub use encode::{
    encode_command, encode_payload_command, encode_payload_command_with_broker_entry_metadata,
    encode_send, encode_send_head,
};
pub use error::{DecodeError, FrameSection};

/// The protocol version this crate implements and announces in `CONNECT`.
pub const PROTOCOL_VERSION: i32 = 21;

/// The broker's default `maxMessageSize` (5 MiB), used until `CONNECTED` says otherwise.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 * 1024 * 1024;

/// Slack allowed above the maximum message size for the command and metadata of a frame.
pub const FRAME_HEADER_ROOM: usize = 10 * 1024;

/// Magic number opening the checksum section of a payload frame.
pub const MAGIC_CRC32C: u16 = 0x0e01;

/// Magic number opening the broker entry metadata section of a payload frame.
pub const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;
