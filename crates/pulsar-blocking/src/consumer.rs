//! Blocking consumers.

use std::time::{Duration, Instant};

use pulsar_async::core::ConsumerStats;
use pulsar_async::{ConsumerOptions, Error, InitialPosition, Message, MessageId, SubscriptionType};

use crate::wait::{wait, wait_until};

/// Builds a [`Consumer`]. Every option of the core's [`ConsumerOptions`] is reachable through
/// [`options`](Self::options) or [`configure`](Self::configure).
#[derive(Debug)]
#[must_use]
pub struct ConsumerBuilder {
    inner: pulsar_async::ConsumerBuilder,
}

impl ConsumerBuilder {
    pub(crate) fn new(inner: pulsar_async::ConsumerBuilder) -> Self {
        ConsumerBuilder { inner }
    }

    fn map(
        self,
        f: impl FnOnce(pulsar_async::ConsumerBuilder) -> pulsar_async::ConsumerBuilder,
    ) -> Self {
        ConsumerBuilder {
            inner: f(self.inner),
        }
    }

    /// Subscription name (required).
    pub fn subscription(self, name: impl Into<String>) -> Self {
        self.map(|b| b.subscription(name))
    }

    /// Subscription type (Exclusive by default).
    pub fn subscription_type(self, t: SubscriptionType) -> Self {
        self.map(|b| b.subscription_type(t))
    }

    /// Where a new subscription starts (latest by default).
    pub fn initial_position(self, p: InitialPosition) -> Self {
        self.map(|b| b.initial_position(p))
    }

    /// Receiver queue size.
    pub fn receiver_queue_size(self, n: u32) -> Self {
        self.map(|b| b.receiver_queue_size(n))
    }

    /// Consumer name.
    pub fn consumer_name(self, name: impl Into<String>) -> Self {
        self.map(|b| b.consumer_name(name))
    }

    /// Durable subscription (default) or not.
    pub fn durable(self, durable: bool) -> Self {
        self.map(|b| b.durable(durable))
    }

    /// Replaces all core options (including the subscription name).
    pub fn options(self, options: ConsumerOptions) -> Self {
        self.map(|b| b.options(options))
    }

    /// Changes any core option.
    pub fn configure(self, f: impl FnOnce(&mut ConsumerOptions)) -> Self {
        self.map(|b| b.configure(f))
    }

    /// Subscribes, blocking until the broker registered the consumer.
    pub fn subscribe(self) -> Result<Consumer, Error> {
        wait(self.inner.subscribe()).map(|inner| Consumer { inner })
    }
}

/// A consumer whose receives block. Also an [`Iterator`] of messages that ends when the consumer
/// is closed. Dropping it closes it on the broker.
#[derive(Debug)]
pub struct Consumer {
    inner: pulsar_async::Consumer,
}

impl Consumer {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The subscription.
    pub fn subscription(&self) -> &str {
        self.inner.subscription()
    }

    /// The next message, blocking until one arrives. Fails once the consumer is closed.
    pub fn receive(&self) -> Result<Message, Error> {
        wait(self.inner.receive())
    }

    /// The next message, blocking at most `timeout`; `Ok(None)` if none arrived by then.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        wait_until(self.inner.receive(), Instant::now() + timeout).transpose()
    }

    /// The next message if one is queued, without blocking.
    pub fn try_receive(&self) -> Result<Option<Message>, Error> {
        self.inner.try_receive()
    }

    /// Acknowledges a message.
    pub fn ack(&self, message: &Message) -> Result<(), Error> {
        self.inner.ack(message)
    }

    /// Acknowledges a message by id.
    pub fn ack_id(&self, id: &MessageId) -> Result<(), Error> {
        self.inner.ack_id(id)
    }

    /// Closes the consumer on the broker.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }

    /// This consumer's state and counters.
    pub fn stats(&self) -> Option<ConsumerStats> {
        self.inner.stats()
    }
}

impl Iterator for Consumer {
    type Item = Result<Message, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        use futures::StreamExt;
        wait(self.inner.next())
    }
}
