//! Consumer options and the consumer's request kinds.

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

/// Consumer settings. Build with [`ConsumerOptions::new`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub subscription_type: SubscriptionType,
    /// Receiver queue size: FLOW permits granted on subscribe, refilled at half (at least 1).
    pub receiver_queue_size: u32,
    /// Consumer name.
    pub consumer_name: Option<String>,
    /// Where a new subscription starts.
    pub initial_position: InitialPosition,
    /// Durable subscription (default true).
    pub durable: bool,
}

impl ConsumerOptions {
    /// Options for `subscription` with defaults (Exclusive, queue 1000, latest, durable).
    pub fn new(subscription: impl Into<String>) -> ConsumerOptions {
        ConsumerOptions {
            subscription: subscription.into(),
            subscription_type: SubscriptionType::Exclusive,
            receiver_queue_size: 1000,
            consumer_name: None,
            initial_position: InitialPosition::Latest,
            durable: true,
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

    pub(crate) fn queue_size(&self) -> u32 {
        self.receiver_queue_size.max(1)
    }
}

/// Requests a consumer sends; the answer comes back with this tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ConsumerRequest {
    /// SUBSCRIBE.
    Subscribe,
    /// CLOSE_CONSUMER requested by the application.
    Close,
    /// CLOSE_CONSUMER sent to clean up after a timed-out SUBSCRIBE (answer ignored).
    Cleanup,
}
