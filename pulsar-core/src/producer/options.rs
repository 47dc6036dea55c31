//! Producer options and the producer's request kinds.

use std::fmt;
use std::time::Duration;

use crate::compression::CompressionType;
use crate::crypto::{MessageEncryptor, ProducerCryptoFailureAction};
use crate::routing::{HashingScheme, MessageRouter};
use std::sync::Arc;

use crate::schema::SchemaInfo;

/// Default send timeout: a message without a receipt after this long fails with
/// [`SendError::Timeout`](crate::SendError::Timeout).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on messages accepted and not yet completed, per producer.
pub const DEFAULT_MAX_PENDING_MESSAGES: usize = 1000;
/// Default interval between partition count checks of a partitioned producer.
pub const DEFAULT_PARTITIONS_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// How a producer shares its topic with other producers (protocol `ProducerAccessMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AccessMode {
    /// Any number of producers (the default).
    #[default]
    Shared,
    /// The only producer; creation fails with `ProducerBusy` if another one exists.
    Exclusive,
    /// The only producer; an existing exclusive producer is fenced off (it fails with
    /// `ProducerFenced`).
    ExclusiveWithFencing,
    /// The only producer; creation waits until the current exclusive producer goes away (the
    /// broker answers `producer_ready = false`, then a second `PRODUCER_SUCCESS`).
    WaitForExclusive,
}

impl AccessMode {
    pub(crate) fn to_protocol(self) -> i32 {
        match self {
            AccessMode::Shared => 0,
            AccessMode::Exclusive => 1,
            AccessMode::WaitForExclusive => 2,
            AccessMode::ExclusiveWithFencing => 3,
        }
    }

    pub(crate) fn is_exclusive(self) -> bool {
        self != AccessMode::Shared
    }
}

/// Batching: messages are grouped into one broker entry until one of the limits is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchingOptions {
    /// Whether batching is on (off by default, as in the Python client; the Java client turns it
    /// on by default).
    pub enabled: bool,
    /// A batch is sent once it holds this many messages (default 1000).
    pub max_messages: usize,
    /// A batch is sent before it would exceed this many payload bytes (default 128 KiB). A message
    /// larger than this is sent on its own.
    pub max_bytes: usize,
    /// A batch is sent at the latest this long after its first message (default 1 ms). When a
    /// batch timer of the client fires, the batches whose delay ends within an eighth of it go
    /// in the same pass (so the batches of many producers on one connection leave together).
    pub max_delay: Duration,
    /// Key-based batching: one batch per key (ordering key, else partition key), so that every
    /// entry carries a single key (for `Key_Shared` consumers). The limits apply to the sum.
    ///
    /// Automatic sequence ids are assigned when the batches close, batch after batch in the order
    /// of their oldest message, so that they strictly increase on the wire (a deduplicating broker
    /// drops anything not above the highest id it stored). A message's id therefore follows the
    /// order its batch is sent in, not the order of the sends across keys. A message carrying its
    /// own sequence id first closes the open batches of other keys, so increasing user ids stay
    /// increasing on the wire (at the cost of smaller batches when keys alternate).
    pub key_based: bool,
}

impl Default for BatchingOptions {
    fn default() -> Self {
        BatchingOptions {
            enabled: false,
            max_messages: 1000,
            max_bytes: 128 * 1024,
            max_delay: Duration::from_millis(1),
            key_based: false,
        }
    }
}

impl BatchingOptions {
    /// Batching on, with the default limits (1000 messages / 128 KiB / 1 ms).
    pub fn enabled() -> Self {
        BatchingOptions {
            enabled: true,
            ..Default::default()
        }
    }

    /// Key-based batching on, with the default limits.
    pub fn key_based() -> Self {
        BatchingOptions {
            enabled: true,
            key_based: true,
            ..Default::default()
        }
    }

    /// Sets the limits (builder style).
    pub fn with_limits(
        mut self,
        max_messages: usize,
        max_bytes: usize,
        max_delay: Duration,
    ) -> Self {
        self.max_messages = max_messages;
        self.max_bytes = max_bytes;
        self.max_delay = max_delay;
        self
    }
}

/// Chooses the partition of each message of a producer on a partitioned topic. Keyed messages
/// are always hashed with [`ProducerOptions::hashing_scheme`] by the built-in modes.
#[non_exhaustive]
#[derive(Default)]
pub enum RoutingMode {
    /// Messages without a key go round robin over the partitions; with batching on, all messages
    /// of the same 10 × `max_delay` time slot go to the same partition (the Java client's
    /// default).
    #[default]
    RoundRobin,
    /// Messages without a key all go to one partition chosen when the producer is created.
    SinglePartition,
    /// The application's router decides for every message (keyed or not).
    Custom(Box<dyn MessageRouter + Send>),
}

impl fmt::Debug for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingMode::RoundRobin => f.write_str("RoundRobin"),
            RoutingMode::SinglePartition => f.write_str("SinglePartition"),
            RoutingMode::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Producer settings. Build with [`ProducerOptions::default`] (or [`ProducerOptions::with_name`])
/// and set fields or use the `with_*` builders.
#[derive(Debug)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// Producer name; the broker assigns one when `None`.
    pub name: Option<String>,
    /// How the producer shares the topic.
    pub access_mode: AccessMode,
    /// The first automatic sequence id is `initial_sequence_id + 1`. When `None`, it continues
    /// after the broker's `last_sequence_id` for this producer name (or starts at 0).
    pub initial_sequence_id: Option<u64>,
    /// A message without a receipt after this long fails with
    /// [`SendError::Timeout`](crate::SendError::Timeout), and so does every message queued behind
    /// it on the same partition. `Duration::ZERO`: no timeout. Default 30 s.
    pub send_timeout: Duration,
    /// Maximum messages accepted and not completed (0 = default 1000), over all partitions. Beyond
    /// it [`Client::send`](crate::Client::send) fails with
    /// [`SendError::QueueFull`](crate::SendError::QueueFull).
    pub max_pending_messages: usize,
    /// Batching.
    pub batching: BatchingOptions,
    /// Compression of every payload (or batch).
    pub compression: CompressionType,
    /// Split payloads larger than the broker's maximum message size into chunks instead of failing
    /// with [`SendError::MessageTooBig`](crate::SendError::MessageTooBig).
    pub chunking: bool,
    /// With `chunking`: the largest chunk frame (metadata + payload), at most the broker's maximum
    /// message size (`None`: the broker's maximum).
    pub chunk_max_size: Option<usize>,
    /// Schema sent on `PRODUCER` (`None`: bytes, no schema).
    pub schema: Option<SchemaInfo>,
    /// Partitioned topics: routing of messages to partitions.
    pub routing: RoutingMode,
    /// Partitioned topics: how keys are hashed (Java's `String.hashCode` by default).
    pub hashing_scheme: HashingScheme,
    /// Partitioned topics: create each partition's producer on its first message instead of all
    /// at once (one partition is still created up front to detect errors early). Only with
    /// [`AccessMode::Shared`]; ignored otherwise.
    pub lazy_partitions: bool,
    /// Partitioned topics: how often to check whether the partition count grew (`Duration::ZERO`:
    /// never). Default 60 s.
    pub partitions_check_interval: Duration,
    /// Properties attached to the producer.
    pub properties: Vec<(String, String)>,
    /// A subscription the broker creates with the topic, so that what is published before any
    /// consumer subscribes is kept (PIP-124; set by the dead-letter producer).
    pub(crate) initial_subscription: Option<String>,
    /// End-to-end encryption: encrypts every entry's payload after compression (a batch as one
    /// payload, each chunk of a chunked message on its own, as Java does); `None`: no encryption.
    pub encryption: Option<Arc<dyn MessageEncryptor>>,
    /// With `encryption`: what to do with a message that cannot be encrypted (fail the send,
    /// the default, or send it unencrypted).
    pub crypto_failure_action: ProducerCryptoFailureAction,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            name: None,
            access_mode: AccessMode::Shared,
            initial_sequence_id: None,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_pending_messages: 0,
            batching: BatchingOptions::default(),
            compression: CompressionType::None,
            chunking: false,
            chunk_max_size: None,
            schema: None,
            routing: RoutingMode::RoundRobin,
            hashing_scheme: HashingScheme::JavaStringHash,
            lazy_partitions: false,
            partitions_check_interval: DEFAULT_PARTITIONS_CHECK_INTERVAL,
            properties: Vec::new(),
            initial_subscription: None,
            encryption: None,
            crypto_failure_action: ProducerCryptoFailureAction::Fail,
        }
    }
}

impl ProducerOptions {
    /// Options with a producer name.
    pub fn with_name(name: impl Into<String>) -> ProducerOptions {
        ProducerOptions {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// Sets the batching options (builder style).
    pub fn with_batching(mut self, batching: BatchingOptions) -> Self {
        self.batching = batching;
        self
    }

    /// Sets the compression (builder style).
    pub fn with_compression(mut self, compression: CompressionType) -> Self {
        self.compression = compression;
        self
    }

    /// Turns chunking on (builder style).
    pub fn with_chunking(mut self) -> Self {
        self.chunking = true;
        self
    }

    /// Sets the access mode (builder style).
    pub fn with_access_mode(mut self, mode: AccessMode) -> Self {
        self.access_mode = mode;
        self
    }

    /// Sets the send timeout (builder style; `Duration::ZERO`: none).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets the schema (builder style).
    pub fn with_schema(mut self, schema: SchemaInfo) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets the routing mode (builder style).
    pub fn with_routing(mut self, routing: RoutingMode) -> Self {
        self.routing = routing;
        self
    }

    /// Sets the key hashing scheme (builder style).
    pub fn with_hashing_scheme(mut self, scheme: HashingScheme) -> Self {
        self.hashing_scheme = scheme;
        self
    }

    pub(crate) fn max_pending(&self) -> usize {
        if self.max_pending_messages == 0 {
            DEFAULT_MAX_PENDING_MESSAGES
        } else {
            self.max_pending_messages
        }
    }
}

/// The settings every partition producer of one application producer shares.
#[derive(Debug, Clone)]
pub(crate) struct PartSettings {
    pub(crate) name: Option<String>,
    pub(crate) access_mode: AccessMode,
    pub(crate) initial_sequence_id: Option<u64>,
    pub(crate) send_timeout: Option<Duration>,
    pub(crate) batching: Option<BatchingOptions>,
    pub(crate) compression: CompressionType,
    pub(crate) chunking: bool,
    pub(crate) chunk_max_size: Option<usize>,
    pub(crate) schema: Option<SchemaInfo>,
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) initial_subscription: Option<String>,
    pub(crate) encryption: Option<Arc<dyn MessageEncryptor>>,
    pub(crate) crypto_failure_action: ProducerCryptoFailureAction,
}

impl PartialEq for PartSettings {
    /// Equal settings (the same encryptor instance, if any): producers created with equal settings
    /// share one copy.
    fn eq(&self, o: &PartSettings) -> bool {
        let same_encryptor = match (&self.encryption, &o.encryption) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_encryptor
            && self.name == o.name
            && self.access_mode == o.access_mode
            && self.initial_sequence_id == o.initial_sequence_id
            && self.send_timeout == o.send_timeout
            && self.batching == o.batching
            && self.compression == o.compression
            && self.chunking == o.chunking
            && self.chunk_max_size == o.chunk_max_size
            && self.schema == o.schema
            && self.properties == o.properties
            && self.initial_subscription == o.initial_subscription
    }
}

impl PartSettings {
    pub(crate) fn from_options(o: &ProducerOptions) -> PartSettings {
        let batching = o.batching.enabled.then(|| {
            let mut b = o.batching.clone();
            b.max_messages = b.max_messages.max(1);
            b.max_bytes = b.max_bytes.max(1);
            b
        });
        PartSettings {
            name: o.name.clone(),
            access_mode: o.access_mode,
            initial_sequence_id: o.initial_sequence_id,
            send_timeout: (!o.send_timeout.is_zero()).then_some(o.send_timeout),
            batching,
            compression: o.compression,
            chunking: o.chunking,
            chunk_max_size: o.chunk_max_size,
            schema: o.schema.clone(),
            properties: o.properties.clone(),
            initial_subscription: o.initial_subscription.clone(),
            encryption: o.encryption.clone(),
            crypto_failure_action: o.crypto_failure_action,
        }
    }
}

// Where it was defined; kept so that `super::options::ProducerRequest` stays valid.
pub(crate) use crate::request::ProducerRequest;
