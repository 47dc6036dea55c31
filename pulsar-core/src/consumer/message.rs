//! Received messages and the typed errors of message intake.

use std::sync::Arc;

use bytes::Bytes;

use crate::crypto::EncryptionContext;
pub use crate::error::ReceiveError;
use crate::handle::ConsumerId;
use crate::message::MessageId;
pub use crate::message::TopicMessageId;

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
    /// The key is base64 text of bytes (`partition_key_b64_encoded`: a byte key, or the key of a
    /// key-value schema with SEPARATED encoding); [`key_bytes`](Self::key_bytes) decodes it.
    pub key_is_base64: bool,
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
    /// How it was encrypted, when it was (see [`EncryptionContext::undecrypted`] for a payload
    /// delivered still encrypted).
    pub encryption: Option<Arc<EncryptionContext>>,
    /// The wire consumer (topic or partition) that received it.
    pub(crate) sub: ConsumerId,
}

impl Message {
    /// The key as bytes: base64-decoded when [`key_is_base64`](Self::key_is_base64) (`None` if it
    /// is not valid base64), the UTF-8 text (borrowed) otherwise.
    pub fn key_bytes(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        use base64::Engine as _;
        let key = self.key.as_deref()?;
        if self.key_is_base64 {
            base64::engine::general_purpose::STANDARD
                .decode(key)
                .ok()
                .map(std::borrow::Cow::Owned)
        } else {
            Some(std::borrow::Cow::Borrowed(key.as_bytes()))
        }
    }

    /// Its topic (partition) and id: acknowledge by this on a consumer of several topics or
    /// partitions when the message itself is no longer at hand.
    pub fn topic_message_id(&self) -> TopicMessageId {
        TopicMessageId::new(self.topic.clone(), self.id)
    }

    /// The value, `None` for a tombstone (a message sent with a null value, which compaction
    /// turns into the deletion of its key).
    pub fn value(&self) -> Option<&Bytes> {
        (!self.null_value).then_some(&self.payload)
    }

    /// Whether the payload is still encrypted (delivered under
    /// [`CryptoFailureAction::Consume`](crate::CryptoFailureAction::Consume)).
    pub fn is_encrypted(&self) -> bool {
        self.encryption.as_ref().is_some_and(|c| c.undecrypted)
    }

    /// The value of a property.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
