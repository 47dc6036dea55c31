//! Received messages and the typed errors of message intake.

use std::sync::Arc;

use bytes::Bytes;

use crate::compression::CompressionError;
use crate::handle::ConsumerId;
use crate::message::MessageId;

/// Metadata the broker attached to the entry (when it has `brokerEntryMetadataInterceptors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerEntryMetadata {
    /// When the broker stored the entry (Unix milliseconds).
    pub broker_timestamp: Option<u64>,
    /// The entry's index in the topic.
    pub index: Option<u64>,
}

/// A message taken from a consumer's receiver queue with [`Client::receive`](crate::Client::receive).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The consumer it was received by (the handle the application subscribed with).
    pub consumer: ConsumerId,
    /// The topic (partition) it came from.
    pub topic: Arc<str>,
    /// Its id (acknowledge with it). For a chunked message: the id of its last chunk.
    pub id: MessageId,
    /// The payload: a slice of the connection's read buffer (no copy) when uncompressed, of the
    /// decompressed batch otherwise.
    pub payload: Bytes,
    /// Partition key.
    pub key: Option<String>,
    /// Ordering key (Key_Shared routing key when set).
    pub ordering_key: Option<Bytes>,
    /// Properties.
    pub properties: Vec<(String, String)>,
    /// Publish time (Unix milliseconds).
    pub publish_time: u64,
    /// Event time (Unix milliseconds), if set.
    pub event_time: Option<u64>,
    /// Producer name (shared by the messages of one batch).
    pub producer_name: Arc<str>,
    /// Sequence id.
    pub sequence_id: u64,
    /// How many times the broker redelivered it.
    pub redelivery_count: u32,
    /// Schema version, if the producer used a schema.
    pub schema_version: Option<Bytes>,
    /// Broker entry metadata, when the broker sent some.
    pub broker_entry_metadata: Option<BrokerEntryMetadata>,
    /// The producer sent a null value (tombstone for compaction).
    pub null_value: bool,
    /// The wire consumer (topic or partition) that received it.
    pub(crate) sub: ConsumerId,
}

impl Message {
    /// The value of a property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A message id and the topic (partition) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicMessageId {
    /// The topic or partition.
    pub topic: Arc<str>,
    /// The id.
    pub id: MessageId,
}

/// Why a message (or chunk) from the broker was not handed to the application. The broker was told
/// (with the matching validation error where one exists) and the permits were returned; the
/// application never sees the damaged data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The frame's CRC32C did not match.
    #[error("checksum mismatch for message {0}")]
    ChecksumMismatch(MessageId),
    /// The payload could not be decompressed.
    #[error("cannot decompress message {id}: {error}")]
    Decompression {
        /// The message (entry).
        id: MessageId,
        /// Why.
        error: CompressionError,
    },
    /// The batch container is malformed.
    #[error("malformed batch {id}: {reason}")]
    BadBatch {
        /// The entry.
        id: MessageId,
        /// Why.
        reason: String,
    },
    /// An incomplete chunked message was dropped after the expiry time (its chunks were
    /// acknowledged).
    #[error("chunked message {uuid} incomplete after the expiry time")]
    ChunkExpired {
        /// The chunked message's uuid.
        uuid: String,
    },
    /// The oldest incomplete chunked message was dropped to stay within
    /// `max_pending_chunked_messages`.
    #[error("chunked message {uuid} dropped: too many chunked messages pending")]
    ChunkQueueFull {
        /// The chunked message's uuid.
        uuid: String,
        /// Whether its chunks were acknowledged (else they are redelivered).
        acked: bool,
    },
    /// A chunked message declares more bytes than `max_chunked_message_size`.
    #[error("chunked message {uuid} of {size} bytes exceeds the limit of {limit}")]
    ChunkTooLarge {
        /// The chunked message's uuid.
        uuid: String,
        /// Declared total size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A chunk arrived without its predecessors (its chunked message is dropped).
    #[error("chunk {chunk_id} of {uuid} arrived out of order")]
    ChunkOutOfOrder {
        /// The chunked message's uuid.
        uuid: String,
        /// The chunk.
        chunk_id: i32,
    },
    /// The chunks do not add up to the declared size.
    #[error("chunked message {uuid} is corrupt: {reason}")]
    ChunkCorrupt {
        /// The chunked message's uuid.
        uuid: String,
        /// Why.
        reason: &'static str,
    },
}
