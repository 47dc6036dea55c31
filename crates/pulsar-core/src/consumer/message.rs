//! Received messages.

use std::sync::Arc;

use bytes::Bytes;

use crate::handle::ConsumerId;
use crate::message::MessageId;

/// A message taken from a consumer's receiver queue with [`Client::receive`](crate::Client::receive).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The consumer it was received by.
    pub consumer: ConsumerId,
    /// The topic (partition) it came from.
    pub topic: Arc<str>,
    /// Its id (acknowledge with it).
    pub id: MessageId,
    /// The payload (a slice of the connection's read buffer, not a copy, when uncompressed).
    pub payload: Bytes,
    /// Partition key.
    pub key: Option<String>,
    /// Properties.
    pub properties: Vec<(String, String)>,
    /// Publish time (Unix milliseconds).
    pub publish_time: u64,
    /// Event time (Unix milliseconds), if set.
    pub event_time: Option<u64>,
    /// Producer name.
    pub producer_name: String,
    /// Sequence id.
    pub sequence_id: u64,
    /// How many times the broker redelivered it.
    pub redelivery_count: u32,
}
