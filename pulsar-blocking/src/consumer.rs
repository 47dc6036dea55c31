//! Blocking consumers and readers.

use std::sync::Arc;
use std::time::Duration;

use pulsar_async::core::ConsumerStats;
use pulsar_async::{
    BatchReceivePolicy, ConsumerInterceptor, ConsumerOptions, Error, InitialPosition, Message,
    MessageId, ReaderOptions, SeekTo, SubscriptionType, TopicMessageId,
};

use crate::transaction::Transaction;
use crate::wait::{wait, wait_for};

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

    pub(crate) fn into_async(self) -> pulsar_async::ConsumerBuilder {
        self.inner
    }

    fn map(
        self,
        f: impl FnOnce(pulsar_async::ConsumerBuilder) -> pulsar_async::ConsumerBuilder,
    ) -> Self {
        ConsumerBuilder {
            inner: f(self.inner),
        }
    }

    /// Adds an interceptor: it sees every message before the application gets it (and may
    /// change it), every acknowledgement and negative acknowledgement, in the order added.
    pub fn interceptor(self, interceptor: Arc<dyn ConsumerInterceptor>) -> Self {
        self.map(|b| b.interceptor(interceptor))
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

    /// Receiver queue size (`0`: one message at a time, on demand).
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

    /// Redeliver messages not acknowledged within `timeout`.
    pub fn ack_timeout(self, timeout: Duration) -> Self {
        self.map(|b| b.ack_timeout(timeout))
    }

    /// Delay before negatively acknowledged messages are redelivered.
    pub fn negative_ack_delay(self, delay: Duration) -> Self {
        self.map(|b| b.negative_ack_delay(delay))
    }

    /// Replaces all core options (including the subscription name).
    pub fn options(self, options: ConsumerOptions) -> Self {
        self.map(|b| b.options(options))
    }

    /// Subscribe paused: no message comes until [`Consumer::resume`] (Java's `startPaused`).
    pub fn start_paused(self, paused: bool) -> Self {
        self.map(|b| b.start_paused(paused))
    }

    /// The limits of [`Consumer::batch_receive`].
    pub fn batch_receive_policy(self, policy: BatchReceivePolicy) -> Self {
        self.map(|b| b.batch_receive_policy(policy))
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
    pub(crate) inner: pulsar_async::Consumer,
}

impl Consumer {
    /// The topic (several topics joined by commas, or the pattern).
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
        wait_for(self.inner.receive(), timeout).transpose()
    }

    /// The next message if one is queued, without blocking.
    pub fn try_receive(&self) -> Result<Option<Message>, Error> {
        self.inner.try_receive()
    }

    /// Up to `max_messages` messages (at most `max_bytes` of payload), blocking at most `timeout`
    /// for the first one; empty if none arrived by then.
    pub fn receive_batch_timeout(
        &self,
        max_messages: usize,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Vec<Message>, Error> {
        wait_for(self.inner.receive_batch(max_messages, max_bytes), timeout)
            .unwrap_or(Ok(Vec::new()))
    }

    /// A batch of messages by the consumer's [`BatchReceivePolicy`] (set with
    /// [`ConsumerBuilder::batch_receive_policy`]; Java's `batchReceive`).
    pub fn batch_receive(&self) -> Result<Vec<Message>, Error> {
        self.batch_receive_with(self.inner.batch_receive_policy())
    }

    /// A batch of messages by `policy`: as soon as the receiver queue holds `max_messages`
    /// messages or `max_bytes` bytes, or when `timeout` has passed (then what is queued, possibly
    /// nothing). Fails once the consumer is closed and its queue empty, and on a consumer with a
    /// zero-size receiver queue (as in Java).
    pub fn batch_receive_with(&self, policy: BatchReceivePolicy) -> Result<Vec<Message>, Error> {
        if let Some(r) = wait_for(self.inner.batch_ready(policy), policy.timeout) {
            r?;
        }
        self.inner
            .try_receive_batch(policy.message_limit(), policy.byte_limit())
    }

    /// Stops asking the broker for messages until [`resume`](Self::resume); queued messages can
    /// still be received, nothing is lost.
    pub fn pause(&self) -> Result<(), Error> {
        self.inner.pause()
    }

    /// Resumes a paused consumer.
    pub fn resume(&self) -> Result<(), Error> {
        self.inner.resume()
    }

    /// Whether the consumer is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.is_paused()
    }

    /// Acknowledges a message by topic and id (multi-topic and partitioned consumers).
    pub fn ack_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        self.inner.ack_topic_id(id)
    }

    /// Acknowledges every message of `id`'s topic up to and including it (Exclusive, Failover).
    pub fn ack_cumulative_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        self.inner.ack_cumulative_topic_id(id)
    }

    /// Negatively acknowledges a message by topic and id.
    pub fn nack_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        self.inner.nack_topic_id(id)
    }

    /// Acknowledges a message.
    pub fn ack(&self, message: &Message) -> Result<(), Error> {
        self.inner.ack(message)
    }

    /// Acknowledges a message by id (single-topic consumers).
    pub fn ack_id(&self, id: &MessageId) -> Result<(), Error> {
        self.inner.ack_id(id)
    }

    /// Acknowledges and blocks until the broker confirms (needs the `ack_receipts` option).
    pub fn ack_with_receipt(&self, message: &Message) -> Result<(), Error> {
        wait(self.inner.ack_with_receipt(message))
    }

    /// Acknowledges every message up to and including this one (Exclusive and Failover).
    pub fn ack_cumulative(&self, message: &Message) -> Result<(), Error> {
        self.inner.ack_cumulative(message)
    }

    /// Acknowledges a message in transaction `txn`, blocking until the broker answered (applied
    /// only if the transaction commits; a conflict with another transaction is an error).
    pub fn ack_with_txn(&self, txn: &Transaction, message: &Message) -> Result<(), Error> {
        wait(self.inner.ack_with_txn(txn.inner(), message))
    }

    /// Acknowledges every message up to and including this one in transaction `txn`
    /// (Exclusive and Failover), blocking until the broker answered.
    pub fn ack_cumulative_with_txn(
        &self,
        txn: &Transaction,
        message: &Message,
    ) -> Result<(), Error> {
        wait(self.inner.ack_cumulative_with_txn(txn.inner(), message))
    }

    /// Negatively acknowledges a message (redelivered after the negative-ack delay).
    pub fn nack(&self, message: &Message) -> Result<(), Error> {
        self.inner.nack(message)
    }

    /// Negatively acknowledges a message by id.
    pub fn nack_id(&self, id: &MessageId) -> Result<(), Error> {
        self.inner.nack_id(id)
    }

    /// Asks the broker to redeliver every message received and not acknowledged.
    pub fn redeliver_unacknowledged(&self) -> Result<(), Error> {
        self.inner.redeliver_unacknowledged()
    }

    /// Publishes a copy to the retry-letter topic (delivered after `delay`) and acknowledges the
    /// original.
    pub fn reconsume_later(
        &self,
        message: &Message,
        delay: Duration,
        properties: Vec<(String, String)>,
    ) -> Result<(), Error> {
        wait(self.inner.reconsume_later(message, delay, properties))
    }

    /// Moves the subscription to a message id or a publish time.
    pub fn seek(&self, to: SeekTo) -> Result<(), Error> {
        wait(self.inner.seek(to))
    }

    /// The last message id of every topic (partition) of the consumer.
    pub fn last_message_ids(&self) -> Result<Vec<TopicMessageId>, Error> {
        wait(self.inner.last_message_ids())
    }

    /// Whether a message can be received without new publishes.
    pub fn has_message_available(&self) -> Result<bool, Error> {
        wait(self.inner.has_message_available())
    }

    /// Deletes the subscription on the broker (the consumer is closed).
    pub fn unsubscribe(self) -> Result<(), Error> {
        wait(self.inner.unsubscribe())
    }

    /// Closes the consumer on the broker (flushing pending acknowledgements).
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

/// Builds a [`Reader`].
#[derive(Debug)]
#[must_use]
pub struct ReaderBuilder {
    inner: pulsar_async::ReaderBuilder,
}

impl ReaderBuilder {
    pub(crate) fn new(inner: pulsar_async::ReaderBuilder) -> Self {
        ReaderBuilder { inner }
    }

    pub(crate) fn into_async(self) -> pulsar_async::ReaderBuilder {
        self.inner
    }

    fn map(
        self,
        f: impl FnOnce(pulsar_async::ReaderBuilder) -> pulsar_async::ReaderBuilder,
    ) -> Self {
        ReaderBuilder {
            inner: f(self.inner),
        }
    }

    /// Where to start: `MessageId::EARLIEST` (the default), `MessageId::LATEST` or an id.
    pub fn start_message_id(self, id: MessageId) -> Self {
        self.map(|b| b.start_message_id(id))
    }

    /// Deliver the start message too.
    pub fn start_inclusive(self) -> Self {
        self.map(|b| b.start_inclusive())
    }

    /// Receiver queue size.
    pub fn receiver_queue_size(self, n: u32) -> Self {
        self.map(|b| b.receiver_queue_size(n))
    }

    /// Reader name.
    pub fn reader_name(self, name: impl Into<String>) -> Self {
        self.map(|b| b.reader_name(name))
    }

    /// Replaces all core options.
    pub fn options(self, options: ReaderOptions) -> Self {
        self.map(|b| b.options(options))
    }

    /// Changes any core option.
    pub fn configure(self, f: impl FnOnce(&mut ReaderOptions)) -> Self {
        self.map(|b| b.configure(f))
    }

    /// Creates the reader, blocking until the broker registered it.
    pub fn create(self) -> Result<Reader, Error> {
        wait(self.inner.create()).map(|inner| Reader { inner })
    }
}

/// A reader whose receives block; also an [`Iterator`]. Dropping it closes it.
#[derive(Debug)]
pub struct Reader {
    pub(crate) inner: pulsar_async::Reader,
}

impl Reader {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The next message, blocking until one arrives.
    pub fn receive(&self) -> Result<Message, Error> {
        wait(self.inner.receive())
    }

    /// The next message, blocking at most `timeout`.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        wait_for(self.inner.receive(), timeout).transpose()
    }

    /// Whether a message can be read without new publishes.
    pub fn has_message_available(&self) -> Result<bool, Error> {
        wait(self.inner.has_message_available())
    }

    /// Moves the reader.
    pub fn seek(&self, to: SeekTo) -> Result<(), Error> {
        wait(self.inner.seek(to))
    }

    /// The last message id of every topic (partition).
    pub fn last_message_ids(&self) -> Result<Vec<TopicMessageId>, Error> {
        wait(self.inner.last_message_ids())
    }

    /// Closes the reader.
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }
}

impl Iterator for Reader {
    type Item = Result<Message, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        use futures::StreamExt;
        wait(self.inner.next())
    }
}
