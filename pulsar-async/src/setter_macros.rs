//! The builder setters that `pulsar-async` and `pulsar-blocking` share, as macros that expand
//! inside each crate's `impl ProducerBuilder`, `impl ConsumerBuilder` and `impl ReaderBuilder`
//! (`setters.rs` and `crypto_setters.rs` of both crates): one text for the methods, their
//! documentation and their defaults, so that the two APIs cannot drift apart. Each setter sets
//! the field of the same name of the core's options through the builder's `configure`. Not
//! part of the public API.

/// The producer's option setters (routing, hashing, chunk size, lazy partitions, partition checks).
#[doc(hidden)]
#[macro_export]
macro_rules! __producer_option_setters {
    () => {
        /// Partitioned topics: how messages are routed to partitions
        /// ([`RoutingMode`](crate::core::RoutingMode)).
        pub fn routing(self, routing: $crate::core::RoutingMode) -> Self {
            self.configure(|o| o.routing = routing)
        }

        /// Partitioned topics: how keys are hashed (Java's `String.hashCode` by default).
        pub fn hashing_scheme(self, scheme: $crate::core::routing::HashingScheme) -> Self {
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
        pub fn partitions_check_interval(self, interval: ::std::time::Duration) -> Self {
            self.configure(|o| o.partitions_check_interval = interval)
        }
    };
}

/// The consumer's option setters (dead letters, acknowledgements, Key_Shared, chunking, patterns
/// ...).
#[doc(hidden)]
#[macro_export]
macro_rules! __consumer_option_setters {
    () => {
        /// Dead-letter and retry-letter topics
        /// ([`DeadLetterPolicy`](crate::core::DeadLetterPolicy)).
        pub fn dead_letter_policy(self, policy: $crate::core::DeadLetterPolicy) -> Self {
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
        pub fn ack_group_time(self, time: ::std::time::Duration) -> Self {
            self.configure(|o| o.ack_group_time = time)
        }

        /// Acknowledgement grouping: how many acknowledgements make a flush.
        pub fn ack_group_max(self, n: usize) -> Self {
            self.configure(|o| o.ack_group_max = n)
        }

        /// Exponential redelivery delay of negatively acknowledged messages.
        pub fn negative_ack_backoff(self, backoff: $crate::core::RedeliveryBackoff) -> Self {
            self.configure(|o| o.negative_ack_backoff = Some(backoff))
        }

        /// Key_Shared settings ([`KeySharedPolicy`](crate::core::KeySharedPolicy)).
        pub fn key_shared_policy(self, policy: $crate::core::KeySharedPolicy) -> Self {
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
        pub fn subscription_property(
            self,
            key: impl Into<String>,
            value: impl Into<String>,
        ) -> Self {
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
        pub fn pattern_topics_mode(self, mode: $crate::core::TopicsMode) -> Self {
            self.configure(|o| o.pattern_topics_mode = mode)
        }

        /// Pattern subscriptions: how often the namespace is listed again.
        pub fn pattern_discovery_interval(self, interval: ::std::time::Duration) -> Self {
            self.configure(|o| o.pattern_discovery_interval = interval)
        }

        /// Partitioned topics: how often the partition count is checked (`None`: never).
        pub fn partitions_update_interval(self, interval: Option<::std::time::Duration>) -> Self {
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
        pub fn expire_incomplete_chunked_message(self, after: ::std::time::Duration) -> Self {
            self.configure(|o| o.expire_incomplete_chunked_message = after)
        }

        /// Largest reassembled chunked message accepted.
        pub fn max_chunked_message_size(self, bytes: usize) -> Self {
            self.configure(|o| o.max_chunked_message_size = bytes)
        }
    };
}

/// The reader's option setters (compacted reads, subscription name).
#[doc(hidden)]
#[macro_export]
macro_rules! __reader_option_setters {
    () => {
        /// Read the compacted view of the topic.
        pub fn read_compacted(self, enable: bool) -> Self {
            self.configure(|o| o.read_compacted = enable)
        }

        /// The name of the reader's (non-durable) subscription (random by default).
        pub fn subscription_name(self, name: impl Into<String>) -> Self {
            let name = name.into();
            self.configure(|o| o.subscription_name = Some(name))
        }
    };
}

/// The producer's end-to-end encryption setters (key names and reader, encryptor, failure action).
#[doc(hidden)]
#[macro_export]
macro_rules! __producer_crypto_setters {
    () => {
        /// End-to-end encryption: encrypt every message for the key names `names`, each one's
        /// public key from `reader` (Java's `addEncryptionKey` and `cryptoKeyReader`), with
        /// [`Encryptor`](crate::crypto::Encryptor)'s defaults (OS random source, 4-hour data key
        /// rotation).
        pub fn encryption_keys<I, S>(
            self,
            names: I,
            reader: ::std::sync::Arc<dyn $crate::crypto::CryptoKeyReader>,
        ) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            let encryptor = ::std::sync::Arc::new($crate::crypto::Encryptor::new(names, reader));
            self.configure(|o| o.encryption = Some(encryptor))
        }

        /// End-to-end encryption with an encryptor of the application's (or an
        /// [`Encryptor`](crate::crypto::Encryptor) with its own rotation or random source).
        pub fn encryptor(
            self,
            encryptor: ::std::sync::Arc<dyn $crate::core::MessageEncryptor>,
        ) -> Self {
            self.configure(|o| o.encryption = Some(encryptor))
        }

        /// What to do with a message that cannot be encrypted: fail the send (the default) or send
        /// it unencrypted (Java's `cryptoFailureAction`).
        pub fn crypto_failure_action(
            self,
            action: $crate::core::ProducerCryptoFailureAction,
        ) -> Self {
            self.configure(|o| o.crypto_failure_action = action)
        }
    };
}

/// The consumer's and reader's end-to-end decryption setters (key reader, decryptor, failure
/// action).
#[doc(hidden)]
#[macro_export]
macro_rules! __decrypt_setters {
    () => {
        /// End-to-end encryption: decrypt messages with the private keys of `reader` (Java's
        /// `cryptoKeyReader`).
        pub fn crypto_key_reader(
            self,
            reader: ::std::sync::Arc<dyn $crate::crypto::CryptoKeyReader>,
        ) -> Self {
            let decryptor = ::std::sync::Arc::new($crate::crypto::Decryptor::new(reader));
            self.configure(|o| o.crypto.decryptor = Some(decryptor))
        }

        /// End-to-end encryption with a decryptor of the application's.
        pub fn decryptor(
            self,
            decryptor: ::std::sync::Arc<dyn $crate::core::MessageDecryptor>,
        ) -> Self {
            self.configure(|o| o.crypto.decryptor = Some(decryptor))
        }

        /// What to do with a message that cannot be decrypted
        /// ([`CryptoFailureAction`](crate::core::CryptoFailureAction); Java's
        /// `cryptoFailureAction`).
        pub fn crypto_failure_action(self, action: $crate::core::CryptoFailureAction) -> Self {
            self.configure(|o| o.crypto.failure_action = action)
        }
    };
}
