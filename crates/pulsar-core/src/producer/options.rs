//! Producer options, outgoing messages and the producer's request kinds.

use bytes::Bytes;

/// Producer settings. Build with [`ProducerOptions::default`] and set fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// Producer name; the broker assigns one when `None`.
    pub name: Option<String>,
    /// Sequence id of the first message is `initial_sequence_id + 1`; when `None`, the broker's
    /// `last_sequence_id` for this name (+1), or 0.
    pub initial_sequence_id: Option<u64>,
    /// Maximum messages waiting for a receipt (0 = default 1000).
    pub max_pending_messages: usize,
    /// Properties attached to the producer.
    pub properties: Vec<(String, String)>,
}

impl ProducerOptions {
    /// Options with a producer name.
    pub fn with_name(name: impl Into<String>) -> ProducerOptions {
        ProducerOptions {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    pub(crate) fn max_pending(&self) -> usize {
        if self.max_pending_messages == 0 {
            1000
        } else {
            self.max_pending_messages
        }
    }
}

/// A message to publish. Build with [`OutgoingMessage::new`] and set fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutgoingMessage {
    /// The payload.
    pub payload: Bytes,
    /// Partition key.
    pub key: Option<String>,
    /// Properties.
    pub properties: Vec<(String, String)>,
    /// Application event time (Unix milliseconds).
    pub event_time: Option<u64>,
}

impl OutgoingMessage {
    /// A message with this payload.
    pub fn new(payload: impl Into<Bytes>) -> OutgoingMessage {
        OutgoingMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// Sets the key (builder style).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a property (builder style).
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }
}

/// Requests a producer sends; the answer comes back with this tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ProducerRequest {
    /// PRODUCER.
    Create,
    /// CLOSE_PRODUCER requested by the application.
    Close,
    /// CLOSE_PRODUCER sent to clean up after a timed-out PRODUCER (answer ignored).
    Cleanup,
}
