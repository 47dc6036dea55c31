//! Builder setters for the options that have no setter of their own in `producer.rs` and
//! `consumer.rs` (the same as `pulsar-async`'s), so that no option needs
//! [`configure`](crate::ConsumerBuilder::configure) on the core's structs. Each one sets the
//! field of the same name of the core's options. Schemas: `.schema(S)` turns a builder into a
//! typed one.

use std::time::Duration;

use pulsar_async::core::routing::HashingScheme;
use pulsar_async::core::{KeySharedPolicy, RedeliveryBackoff, RoutingMode, TopicsMode};
use pulsar_async::DeadLetterPolicy;

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    /// Partitioned topics: how messages are routed to partitions ([`RoutingMode`]).
    pub fn routing(self, routing: RoutingMode) -> Self {
        self.configure(|o| o.routing = routing)
    }

    /// Partitioned topics: how keys are hashed (Java's `String.hashCode` by default).
    pub fn hashing_scheme(self, scheme: HashingScheme) -> Self {
        self.configure(|o| o.hashing_scheme = scheme)
    }

    /// With chunking: the largest chunk (at most the broker's maximum message size).
    pub fn chunk_max_size(self, bytes: usize) -> Self {
        self.configure(|o| o.chunk_max_size = Some(bytes))
    }

    /// Partitioned topics: create each partition's producer on its first message.
    pub fn lazy_partitions(self, lazy: bool) -> Self {
        self.configure(|o| o.lazy_partitions = lazy)
    }

    /// Partitioned topics: how often the partition count is checked (`Duration::ZERO`: never).
    pub fn partitions_check_interval(self, interval: Duration) -> Self {
        self.configure(|o| o.partitions_check_interval = interval)
    }
}

impl ConsumerBuilder {
    /// Dead-letter and retry-letter topics ([`DeadLetterPolicy`]).
    pub fn dead_letter_policy(self, policy: DeadLetterPolicy) -> Self {
        self.configure(|o| o.dead_letter = Some(policy))
    }

    /// Also subscribe to the retry-letter topic, for
    /// [`reconsume_later`](crate::Consumer::reconsume_later) (Java's `enableRetry`).
    pub fn retry_enable(self, enable: bool) -> Self {
        self.configure(|o| o.retry_enabled = enable)
    }

    /// Ask the broker to confirm each acknowledgement (for
    /// [`ack_with_receipt`](crate::Consumer::ack_with_receipt)).
    pub fn ack_receipts(self, enable: bool) -> Self {
        self.configure(|o| o.ack_receipts = enable)
    }

    /// Acknowledge single messages of a batch on the broker (needs the broker's
    /// `acknowledgmentAtBatchIndexLevelEnabled`; off by default, as in Java).
    pub fn batch_index_ack(self, enable: bool) -> Self {
        self.configure(|o| o.batch_index_ack = enable)
    }

    /// Acknowledgement grouping: how long acknowledgements wait to go out together
    /// (`Duration::ZERO`: at once).
    pub fn ack_group_time(self, time: Duration) -> Self {
        self.configure(|o| o.ack_group_time = time)
    }

    /// Acknowledgement grouping: how many acknowledgements make a flush.
    pub fn ack_group_max(self, n: usize) -> Self {
        self.configure(|o| o.ack_group_max = n)
    }

    /// Exponential redelivery delay of negatively acknowledged messages.
    pub fn negative_ack_backoff(self, backoff: RedeliveryBackoff) -> Self {
        self.configure(|o| o.negative_ack_backoff = Some(backoff))
    }

    /// Key_Shared settings ([`KeySharedPolicy`]).
    pub fn key_shared_policy(self, policy: KeySharedPolicy) -> Self {
        self.configure(|o| o.key_shared = policy)
    }

    /// Read the compacted view of the topic.
    pub fn read_compacted(self, enable: bool) -> Self {
        self.configure(|o| o.read_compacted = enable)
    }

    /// Priority level on Shared subscriptions (lower is served first).
    pub fn priority_level(self, level: i32) -> Self {
        self.configure(|o| o.priority_level = Some(level))
    }

    /// A property of the subscription (set when it is created).
    pub fn subscription_property(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.configure(|o| o.subscription_properties.push((key, value)))
    }

    /// A property of the consumer.
    pub fn property(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        self.configure(|o| o.properties.push((key, value)))
    }

    /// Multi-topic and partitioned consumers: the receiver queue shared by all topics.
    pub fn max_total_receiver_queue_size(self, n: u32) -> Self {
        self.configure(|o| o.max_total_receiver_queue_size = n)
    }

    /// Replicate the subscription's state across geo-replicated clusters.
    pub fn replicate_subscription_state(self, enable: bool) -> Self {
        self.configure(|o| o.replicate_subscription_state = enable)
    }

    /// Create the topic if it does not exist (default true, when the broker allows it).
    pub fn create_topic_if_missing(self, create: bool) -> Self {
        self.configure(|o| o.create_topic_if_missing = create)
    }

    /// Pattern subscriptions: which topics to consider.
    pub fn pattern_topics_mode(self, mode: TopicsMode) -> Self {
        self.configure(|o| o.pattern_topics_mode = mode)
    }

    /// Pattern subscriptions: how often the namespace is listed again.
    pub fn pattern_discovery_interval(self, interval: Duration) -> Self {
        self.configure(|o| o.pattern_discovery_interval = interval)
    }

    /// Partitioned topics: how often the partition count is checked (`None`: never).
    pub fn partitions_update_interval(self, interval: Option<Duration>) -> Self {
        self.configure(|o| o.partitions_update_interval = interval)
    }

    /// Chunked messages reassembled at once (the oldest is dropped beyond it; 0: no limit).
    pub fn max_pending_chunked_messages(self, n: usize) -> Self {
        self.configure(|o| o.max_pending_chunked_messages = n)
    }

    /// Acknowledge, instead of redeliver, the chunked message dropped by that limit.
    pub fn auto_ack_oldest_chunked_message_on_queue_full(self, enable: bool) -> Self {
        self.configure(|o| o.auto_ack_oldest_chunked_message_on_queue_full = enable)
    }

    /// Incomplete chunked messages are dropped after this long.
    pub fn expire_incomplete_chunked_message(self, after: Duration) -> Self {
        self.configure(|o| o.expire_incomplete_chunked_message = after)
    }

    /// Largest reassembled chunked message accepted.
    pub fn max_chunked_message_size(self, bytes: usize) -> Self {
        self.configure(|o| o.max_chunked_message_size = bytes)
    }
}

impl ReaderBuilder {
    /// Read the compacted view of the topic.
    pub fn read_compacted(self, enable: bool) -> Self {
        self.configure(|o| o.read_compacted = enable)
    }

    /// The name of the reader's (non-durable) subscription (random by default).
    pub fn subscription_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.configure(|o| o.subscription_name = Some(name))
    }
}
