//! Consumer and reader options, and the consumer's request kinds.

use std::time::Duration;

use crate::crypto::ConsumerCrypto;
use crate::event::TopicsMode;
use crate::message::MessageId;
use crate::schema::SchemaInfo;

/// How messages are distributed among the consumers of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SubscriptionType {
    /// One consumer.
    #[default]
    Exclusive,
    /// Round robin among consumers.
    Shared,
    /// One active consumer, others on standby.
    Failover,
    /// Consistent hashing of keys to consumers.
    KeyShared,
}

impl SubscriptionType {
    pub(crate) fn to_pb(self) -> i32 {
        match self {
            SubscriptionType::Exclusive => 0,
            SubscriptionType::Shared => 1,
            SubscriptionType::Failover => 2,
            SubscriptionType::KeyShared => 3,
        }
    }

    /// Whether single messages can be redelivered (Shared, Key_Shared); the other types can only
    /// ask the broker to redeliver everything unacknowledged.
    pub(crate) fn is_shared(self) -> bool {
        matches!(self, SubscriptionType::Shared | SubscriptionType::KeyShared)
    }
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InitialPosition {
    /// After the last message published.
    #[default]
    Latest,
    /// At the first message retained.
    Earliest,
}

/// How a Key_Shared subscription assigns key hash ranges to consumers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeySharedMode {
    /// The broker splits the hash range among the consumers (the default).
    #[default]
    AutoSplit,
    /// This consumer takes exactly these inclusive hash ranges `(start, end)` of `0..=65535`.
    Sticky(Vec<(i32, i32)>),
}

/// Key_Shared settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeySharedPolicy {
    /// Range assignment.
    pub mode: KeySharedMode,
    /// Let the broker deliver messages of a key to a new consumer before the previous consumer has
    /// acknowledged all of them (relaxes per-key ordering).
    pub allow_out_of_order_delivery: bool,
}

impl KeySharedPolicy {
    /// Auto-split ranges.
    pub fn auto_split() -> KeySharedPolicy {
        KeySharedPolicy::default()
    }

    /// Sticky ranges (inclusive `(start, end)` pairs within `0..=65535`).
    pub fn sticky(ranges: Vec<(i32, i32)>) -> KeySharedPolicy {
        KeySharedPolicy {
            mode: KeySharedMode::Sticky(ranges),
            allow_out_of_order_delivery: false,
        }
    }
}

/// Exponential delay before a negatively acknowledged message is redelivered:
/// `min × multiplier^redelivery_count`, at most `max` (Java's `MultiplierRedeliveryBackoff`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RedeliveryBackoff {
    /// Delay for a message delivered for the first time.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth factor per redelivery.
    pub multiplier: f64,
}

impl RedeliveryBackoff {
    /// A backoff from `min` to `max`, doubling with each redelivery.
    pub fn new(min: Duration, max: Duration) -> RedeliveryBackoff {
        RedeliveryBackoff {
            min,
            max,
            multiplier: 2.0,
        }
    }

    /// The delay for a message already redelivered `redelivery_count` times.
    pub fn delay(&self, redelivery_count: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(redelivery_count.min(64) as i32);
        let ms = (self.min.as_millis() as f64 * factor).min(self.max.as_millis() as f64);
        Duration::from_millis(ms.max(0.0) as u64).min(self.max)
    }
}

/// Dead-letter and retry-letter topics, as in the Java client.
///
/// A message redelivered `max_redeliver_count` times (as counted by the broker) is delivered one
/// last time; if it is negatively acknowledged or times out again it is published to the
/// dead-letter topic and acknowledged on its own topic. Only Shared and Key_Shared subscriptions
/// redeliver single messages, so only they dead-letter on redelivery (as in Java).
/// [`Client::reconsume_later`](crate::Client::reconsume_later) publishes to the retry-letter topic
/// (any subscription type) and dead-letters once `RECONSUMETIMES` exceeds `max_redeliver_count`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DeadLetterPolicy {
    /// Redeliveries before a message goes to the dead-letter topic.
    pub max_redeliver_count: u32,
    /// Dead-letter topic; default `<topic>-<subscription>-DLQ`.
    pub dead_letter_topic: Option<String>,
    /// Retry-letter topic; default `<topic>-<subscription>-RETRY`.
    pub retry_letter_topic: Option<String>,
    /// A subscription created with the dead-letter topic, so that the broker keeps the messages
    /// dead-lettered before anyone subscribes to it (PIP-124; `None`: none, and without a
    /// subscription a topic keeps nothing unless its retention says so).
    pub initial_subscription_name: Option<String>,
}

impl DeadLetterPolicy {
    /// A policy with default topic names.
    pub fn new(max_redeliver_count: u32) -> DeadLetterPolicy {
        DeadLetterPolicy {
            max_redeliver_count,
            ..Default::default()
        }
    }

    /// Sets the dead-letter topic (builder style).
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// Sets the retry-letter topic (builder style).
    pub fn with_retry_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.retry_letter_topic = Some(topic.into());
        self
    }

    /// Sets the subscription created with the dead-letter topic (builder style; PIP-124).
    pub fn with_initial_subscription_name(mut self, name: impl Into<String>) -> Self {
        self.initial_subscription_name = Some(name.into());
        self
    }
}

/// When a batch receive completes, as Java's `BatchReceivePolicy`: as soon as `max_messages`
/// messages or `max_bytes` bytes of payload are queued, or when `timeout` has passed since the
/// call (with what is queued then, possibly nothing). A batch never exceeds either limit, except
/// that its first message is taken whatever its size.
///
/// The default is Java's: no message limit, 10 MiB, 100 ms. A message limit above the receiver
/// queue size (per topic or partition) can only be met by the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchReceivePolicy {
    /// Most messages in a batch (`None`: no limit but the bytes).
    pub max_messages: Option<usize>,
    /// Most payload bytes in a batch (`None`: no limit but the messages).
    pub max_bytes: Option<usize>,
    /// Longest wait for the batch to fill.
    pub timeout: Duration,
}

impl BatchReceivePolicy {
    /// A policy with these limits.
    pub fn new(
        max_messages: Option<usize>,
        max_bytes: Option<usize>,
        timeout: Duration,
    ) -> BatchReceivePolicy {
        BatchReceivePolicy {
            max_messages,
            max_bytes,
            timeout,
        }
    }

    /// The message limit to take with ([`usize::MAX`] when none).
    pub fn message_limit(&self) -> usize {
        self.max_messages.unwrap_or(usize::MAX).max(1)
    }

    /// The byte limit to take with ([`usize::MAX`] when none).
    pub fn byte_limit(&self) -> usize {
        self.max_bytes.unwrap_or(usize::MAX)
    }

    /// Whether `messages` queued messages of `bytes` payload bytes make a full batch.
    pub fn is_full(&self, messages: usize, bytes: usize) -> bool {
        messages > 0 && (messages >= self.message_limit() || bytes >= self.byte_limit())
    }
}

impl Default for BatchReceivePolicy {
    fn default() -> Self {
        BatchReceivePolicy {
            max_messages: None,
            max_bytes: Some(10 * 1024 * 1024),
            timeout: Duration::from_millis(100),
        }
    }
}

/// Consumer settings. Build with [`ConsumerOptions::new`] and set fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub subscription_type: SubscriptionType,
    /// Receiver queue size: FLOW permits granted on subscribe, refilled at half. `0` is the
    /// zero-queue mode: one permit per [`receive`](crate::Client::receive) that finds the queue
    /// empty.
    pub receiver_queue_size: u32,
    /// For multi-topic and partitioned consumers, each topic gets
    /// `min(receiver_queue_size, max_total_receiver_queue_size / topics)` permits (at least 1).
    pub max_total_receiver_queue_size: u32,
    /// Consumer name.
    pub consumer_name: Option<String>,
    /// Where a new subscription starts.
    pub initial_position: InitialPosition,
    /// Durable subscription (default true). Non-durable subscriptions vanish with their consumer.
    pub durable: bool,
    /// Priority level for Shared subscriptions (lower is served first).
    pub priority_level: Option<i32>,
    /// Read the compacted view of the topic.
    pub read_compacted: bool,
    /// Replicate the subscription state across geo-replicated clusters.
    pub replicate_subscription_state: bool,
    /// Subscription properties (set when the subscription is created).
    pub subscription_properties: Vec<(String, String)>,
    /// Consumer metadata properties.
    pub properties: Vec<(String, String)>,
    /// Key_Shared settings (used when `subscription_type` is Key_Shared).
    pub key_shared: KeySharedPolicy,
    /// Where a non-durable subscription starts (readers); `None`: `initial_position`.
    pub start_message_id: Option<MessageId>,
    /// Deliver the message at `start_message_id` too (Java's `startMessageIdInclusive`).
    pub start_message_id_inclusive: bool,
    /// Create the topic if it does not exist (when the broker allows auto-creation).
    pub create_topic_if_missing: bool,
    /// Acknowledgement grouping: acks are flushed this long after the first pending one.
    /// `Duration::ZERO` sends every acknowledgement at once.
    pub ack_group_time: Duration,
    /// Acknowledgement grouping: flush as soon as this many acks are pending.
    pub ack_group_max: usize,
    /// Ask the broker to confirm each acknowledgement (ACK_RESPONSE); an
    /// [`Event::AckCompleted`](crate::Event::AckCompleted) then reports each one.
    pub ack_receipts: bool,
    /// Acknowledge single messages of a batch on the broker (ack sets); requires
    /// `acknowledgmentAtBatchIndexLevelEnabled` on the broker. When off (the default, as in Java) a
    /// batch is acknowledged once all its messages are; either way acknowledging one message of a
    /// batch never acknowledges its neighbours.
    pub batch_index_ack: bool,
    /// Delay before negatively acknowledged messages are redelivered (default 1 minute).
    pub negative_ack_delay: Duration,
    /// Exponential backoff by redelivery count for negative acks (overrides `negative_ack_delay`).
    pub negative_ack_backoff: Option<RedeliveryBackoff>,
    /// Redeliver messages received but not acknowledged within this time (`None`: never).
    pub ack_timeout: Option<Duration>,
    /// Report each ack-timeout redelivery as an
    /// [`Event::AckTimeoutRedelivery`](crate::Event::AckTimeoutRedelivery) naming the message ids
    /// asked again (what Java's `ConsumerInterceptor::onAckTimeoutSend` sees). Off by default: the
    /// runtimes turn it on only for a consumer with interceptors, so others pay nothing.
    pub report_ack_timeouts: bool,
    /// Dead-letter / retry-letter topics.
    pub dead_letter: Option<DeadLetterPolicy>,
    /// Also subscribe to the retry-letter topic (Java's `enableRetry`); without a dead-letter
    /// policy one with `max_redeliver_count` 16 is used, both topics named after the first topic.
    pub retry_enabled: bool,
    /// Chunked messages being reassembled at once; the oldest is dropped beyond this (0: no limit).
    pub max_pending_chunked_messages: usize,
    /// Acknowledge (instead of redeliver) the oldest chunked message dropped by the limit above.
    pub auto_ack_oldest_chunked_message_on_queue_full: bool,
    /// Incomplete chunked messages are dropped (and acknowledged) after this long.
    pub expire_incomplete_chunked_message: Duration,
    /// Largest reassembled chunked message accepted.
    pub max_chunked_message_size: usize,
    /// Pattern subscriptions: how often the namespace is listed again (also when the broker
    /// pushes topic-list updates, as a safety net).
    pub pattern_discovery_interval: Duration,
    /// Pattern subscriptions: which topics to consider.
    pub pattern_topics_mode: TopicsMode,
    /// Partitioned topics: how often the partition count is checked for new partitions
    /// (`None`: never).
    pub partitions_update_interval: Option<Duration>,
    /// Schema declared on `SUBSCRIBE` (`None`, or bytes: none is declared). The broker checks it
    /// against the topic's schema and refuses an incompatible one
    /// ([`Error::IncompatibleSchema`](crate::Error::IncompatibleSchema)); with
    /// [`SchemaInfo::auto_consume`] the consumer takes whatever the messages were written with.
    pub schema: Option<SchemaInfo>,
    /// The limits of the runtimes' `batch_receive` (the core itself does not wait for batches).
    pub batch_receive: BatchReceivePolicy,
    /// Subscribe paused (Java's `startPaused`): no FLOW permits until
    /// [`Client::resume_consumer`](crate::Client::resume_consumer).
    pub start_paused: bool,
    /// End-to-end decryption: the decryptor and what to do with a message that cannot be
    /// decrypted (default: no decryptor, [`CryptoFailureAction::Fail`](crate::CryptoFailureAction::Fail)).
    pub crypto: ConsumerCrypto,
}

impl ConsumerOptions {
    /// Options for `subscription` with defaults (Exclusive, queue 1000, latest, durable, acks
    /// grouped for 100 ms or 1000 acks, negative acks redelivered after 1 minute).
    pub fn new(subscription: impl Into<String>) -> ConsumerOptions {
        ConsumerOptions {
            subscription: subscription.into(),
            subscription_type: SubscriptionType::Exclusive,
            receiver_queue_size: 1000,
            max_total_receiver_queue_size: 50_000,
            consumer_name: None,
            initial_position: InitialPosition::Latest,
            durable: true,
            priority_level: None,
            read_compacted: false,
            replicate_subscription_state: false,
            subscription_properties: Vec::new(),
            properties: Vec::new(),
            key_shared: KeySharedPolicy::default(),
            start_message_id: None,
            start_message_id_inclusive: false,
            create_topic_if_missing: true,
            ack_group_time: Duration::from_millis(100),
            ack_group_max: 1000,
            ack_receipts: false,
            batch_index_ack: false,
            negative_ack_delay: Duration::from_secs(60),
            negative_ack_backoff: None,
            ack_timeout: None,
            report_ack_timeouts: false,
            dead_letter: None,
            retry_enabled: false,
            max_pending_chunked_messages: 10,
            auto_ack_oldest_chunked_message_on_queue_full: false,
            expire_incomplete_chunked_message: Duration::from_secs(60),
            max_chunked_message_size: 128 * 1024 * 1024,
            pattern_discovery_interval: Duration::from_secs(60),
            pattern_topics_mode: TopicsMode::Persistent,
            partitions_update_interval: Some(Duration::from_secs(60)),
            schema: None,
            batch_receive: BatchReceivePolicy::default(),
            start_paused: false,
            crypto: ConsumerCrypto::default(),
        }
    }

    /// Sets the subscription type (builder style).
    pub fn with_type(mut self, t: SubscriptionType) -> Self {
        self.subscription_type = t;
        self
    }

    /// Sets the initial position (builder style).
    pub fn with_initial_position(mut self, p: InitialPosition) -> Self {
        self.initial_position = p;
        self
    }

    /// Sets the receiver queue size (builder style).
    pub fn with_receiver_queue_size(mut self, size: u32) -> Self {
        self.receiver_queue_size = size;
        self
    }

    /// Sets the consumer name (builder style).
    pub fn with_consumer_name(mut self, name: impl Into<String>) -> Self {
        self.consumer_name = Some(name.into());
        self
    }

    /// Sets the ack grouping time (builder style); `Duration::ZERO` acknowledges at once.
    pub fn with_ack_group_time(mut self, t: Duration) -> Self {
        self.ack_group_time = t;
        self
    }

    /// Sets the ack timeout (builder style).
    pub fn with_ack_timeout(mut self, t: Duration) -> Self {
        self.ack_timeout = Some(t);
        self
    }

    /// Sets the negative-ack redelivery delay (builder style).
    pub fn with_negative_ack_delay(mut self, t: Duration) -> Self {
        self.negative_ack_delay = t;
        self
    }

    /// Sets the dead-letter policy (builder style).
    pub fn with_dead_letter(mut self, policy: DeadLetterPolicy) -> Self {
        self.dead_letter = Some(policy);
        self
    }

    /// Sets the schema declared on `SUBSCRIBE` (builder style).
    pub fn with_schema(mut self, schema: SchemaInfo) -> Self {
        self.schema = Some(schema);
        self
    }
}

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReaderOptions {
    /// First message: [`MessageId::EARLIEST`], [`MessageId::LATEST`] or a message id. On a
    /// partitioned topic a message id applies to the partition it names; the other partitions
    /// start at the earliest message.
    pub start_message_id: MessageId,
    /// Deliver the message at `start_message_id` too.
    pub start_message_id_inclusive: bool,
    /// Receiver queue size.
    pub receiver_queue_size: u32,
    /// Reader name (the consumer name).
    pub reader_name: Option<String>,
    /// Subscription name; default `reader-<10 hex digits>` (from the client's seed).
    pub subscription_name: Option<String>,
    /// Read the compacted view of the topic.
    pub read_compacted: bool,
    /// Schema declared on `SUBSCRIBE` (see [`ConsumerOptions::schema`]).
    pub schema: Option<SchemaInfo>,
    /// End-to-end decryption (see [`ConsumerOptions::crypto`]).
    pub crypto: ConsumerCrypto,
}

impl ReaderOptions {
    /// A reader starting at `start` (exclusive).
    pub fn new(start: MessageId) -> ReaderOptions {
        ReaderOptions {
            start_message_id: start,
            start_message_id_inclusive: false,
            receiver_queue_size: 1000,
            reader_name: None,
            subscription_name: None,
            read_compacted: false,
            schema: None,
            crypto: ConsumerCrypto::default(),
        }
    }

    /// Makes the start inclusive (builder style).
    pub fn inclusive(mut self) -> Self {
        self.start_message_id_inclusive = true;
        self
    }

    pub(crate) fn into_consumer_options(self, subscription: String) -> ConsumerOptions {
        let mut o = ConsumerOptions::new(subscription);
        o.subscription_type = SubscriptionType::Exclusive;
        o.durable = false;
        o.receiver_queue_size = self.receiver_queue_size;
        o.consumer_name = self.reader_name;
        o.read_compacted = self.read_compacted;
        o.schema = self.schema;
        o.crypto = self.crypto;
        o.start_message_id = Some(self.start_message_id);
        o.start_message_id_inclusive = self.start_message_id_inclusive;
        o.initial_position = if self.start_message_id == MessageId::EARLIEST {
            InitialPosition::Earliest
        } else {
            InitialPosition::Latest
        };
        o
    }
}

/// Where [`Client::seek`](crate::Client::seek) moves a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeekTo {
    /// To a message id ([`MessageId::EARLIEST`] and [`MessageId::LATEST`] included). Delivery resumes
    /// after it, or at it when `start_message_id_inclusive` is set (as in Java).
    Id(MessageId),
    /// To the first message published at or after this Unix time in milliseconds.
    PublishTime(u64),
}

// Where it was defined; kept so that `super::options::ConsumerRequest` stays valid.
pub(crate) use crate::request::ConsumerRequest;
