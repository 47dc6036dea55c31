//! Outgoing messages.

use std::time::Duration;

use bytes::Bytes;

use crate::error::SendError;

/// A message to publish. Build with [`OutgoingMessage::new`] and set fields or use the `with_*`
/// builders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutgoingMessage {
    /// The payload.
    pub payload: Bytes,
    /// Partition key (routing on partitioned topics, compaction, `Key_Shared` dispatch).
    pub key: Option<String>,
    /// `key` is the base64 text of a binary key (set by [`OutgoingMessage::with_key_bytes`]).
    pub key_is_base64: bool,
    /// Ordering key: used instead of the key for `Key_Shared` dispatch (and key-based batching).
    pub ordering_key: Option<Bytes>,
    /// Properties.
    pub properties: Vec<(String, String)>,
    /// Application event time (Unix milliseconds).
    pub event_time: Option<u64>,
    /// Sequence id chosen by the application (it should increase); `None`: the producer's next
    /// one. Automatic ids continue after the highest one used. With broker deduplication, a
    /// message whose id is not above the highest one the broker stored for this producer name is
    /// dropped as a duplicate and acknowledged with the id `-1:-1` (`ledger_id` and `entry_id`
    /// `u64::MAX`), as the Java client reports it; automatic ids only meet that answer when the
    /// message was already stored (a resend whose first receipt was lost). See
    /// [`BatchingOptions::key_based`](crate::BatchingOptions::key_based) for ids in key-based
    /// batches.
    pub sequence_id: Option<u64>,
    /// Delayed delivery: deliver at this Unix time (milliseconds). Delayed messages are never
    /// batched.
    pub deliver_at: Option<u64>,
    /// Delayed delivery: deliver this long after the send (converted with the client's wall clock;
    /// ignored when `deliver_at` is set).
    pub deliver_after: Option<Duration>,
    /// Replicate only to these clusters (empty: the namespace's clusters). Such messages are never
    /// batched.
    pub replication_clusters: Vec<String>,
    /// Do not replicate this message to other clusters.
    pub disable_replication: bool,
    /// A null value (a tombstone): the payload is ignored and sent empty, and compaction deletes
    /// the message's key. Set by [`OutgoingMessage::tombstone`].
    pub null_value: bool,
    /// The transaction the message is sent in (set by
    /// [`Client::send_in_transaction`](crate::Client::send_in_transaction), never by hand: the
    /// message's partition must join the transaction first).
    pub(crate) txn: Option<crate::handle::TxnId>,
}

impl OutgoingMessage {
    /// A message with this payload.
    pub fn new(payload: impl Into<Bytes>) -> OutgoingMessage {
        OutgoingMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// A message with a null value for `key` (a tombstone): consumers receive it with
    /// [`Message::value`](crate::Message::value) `None`, and compaction deletes the key.
    pub fn tombstone(key: impl Into<String>) -> OutgoingMessage {
        OutgoingMessage {
            key: Some(key.into()),
            null_value: true,
            ..Default::default()
        }
    }

    /// Sets the key (builder style).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self.key_is_base64 = false;
        self
    }

    /// Sets a binary key, carried base64-encoded with `partition_key_b64_encoded` (builder style).
    /// Routing hashes the base64 text, as the Java client does.
    pub fn with_key_bytes(mut self, key: &[u8]) -> Self {
        self.key = Some(base64_encode(key));
        self.key_is_base64 = true;
        self
    }

    /// Sets the ordering key (builder style).
    pub fn with_ordering_key(mut self, key: impl Into<Bytes>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Adds a property (builder style).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Sets the event time, Unix milliseconds (builder style).
    pub fn with_event_time(mut self, unix_ms: u64) -> Self {
        self.event_time = Some(unix_ms);
        self
    }

    /// Sets the sequence id (builder style).
    pub fn with_sequence_id(mut self, sequence_id: u64) -> Self {
        self.sequence_id = Some(sequence_id);
        self
    }

    /// Delivers at this Unix time in milliseconds (builder style).
    pub fn with_deliver_at(mut self, unix_ms: u64) -> Self {
        self.deliver_at = Some(unix_ms);
        self
    }

    /// Delivers this long after the send (builder style).
    pub fn with_deliver_after(mut self, delay: Duration) -> Self {
        self.deliver_after = Some(delay);
        self
    }

    /// Restricts replication to these clusters (builder style).
    pub fn with_replication_clusters(mut self, clusters: Vec<String>) -> Self {
        self.replication_clusters = clusters;
        self
    }

    /// Disables replication (builder style).
    pub fn with_replication_disabled(mut self) -> Self {
        self.disable_replication = true;
        self
    }

    /// The value of `replicate_to`: the clusters, or `["__local__"]` when replication is disabled.
    pub(crate) fn replicate_to(&mut self) -> Vec<String> {
        if self.disable_replication {
            vec!["__local__".to_string()]
        } else {
            std::mem::take(&mut self.replication_clusters)
        }
    }

    /// Whether this message may go into a batch.
    pub(crate) fn batchable(&self) -> bool {
        self.deliver_at.is_none()
            && self.deliver_after.is_none()
            && self.replication_clusters.is_empty()
            && !self.disable_replication
    }
}

/// A message that [`Client::try_send`](crate::Client::try_send) refused, and why. Nothing of it
/// was queued: no [`Event::SendCompleted`](crate::Event::SendCompleted) will name it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
#[non_exhaustive]
pub struct Refused {
    /// Why it was refused.
    pub error: SendError,
    /// The message, intact, whenever it was refused before being taken apart: every check of the
    /// client's and the producer's state and limits ([`SendError::QueueFull`] and
    /// [`SendError::MemoryLimit`] among them, which are worth retrying after
    /// [`Event::ProducerHasRoom`](crate::Event::ProducerHasRoom)). `None` only when the message
    /// failed while being encoded (a compression error, or too big once compressed): retrying it
    /// unchanged would fail again.
    pub message: Option<OutgoingMessage>,
}

impl Refused {
    /// Refused before being taken apart: the message comes back.
    pub(crate) fn with(error: SendError, message: OutgoingMessage) -> Refused {
        Refused {
            error,
            message: Some(message),
        }
    }

    /// Refused while being encoded: the message is gone.
    pub(crate) fn consumed(error: SendError) -> Refused {
        Refused {
            error,
            message: None,
        }
    }
}

/// Why a producer did not take a message: before touching it (`Intact`: the caller still holds it
/// whole) or while encoding it (`Consumed`: parts of it are gone).
#[derive(Debug)]
pub(crate) enum Refusal {
    Intact(SendError),
    Consumed(SendError),
}

impl Refusal {
    pub(crate) fn into_error(self) -> SendError {
        match self {
            Refusal::Intact(e) | Refusal::Consumed(e) => e,
        }
    }

    /// The [`Refused`] for the application, with `message` back when it is intact.
    pub(crate) fn into_refused(self, message: OutgoingMessage) -> Refused {
        match self {
            Refusal::Intact(e) => Refused::with(e, message),
            Refusal::Consumed(e) => Refused::consumed(e),
        }
    }
}

impl From<Refused> for SendError {
    fn from(r: Refused) -> SendError {
        r.error
    }
}

/// Standard base64 with padding (RFC 4648), as `java.util.Base64.getEncoder()` writes it.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
