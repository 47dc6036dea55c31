//! Blocking producers.

use std::sync::Arc;
use std::time::Duration;

use pulsar_async::core::{ProducerStats, SendId};
use pulsar_async::{
    AccessMode, BatchingOptions, CompressionType, Error, IntoMessage, MessageId,
    ProducerInterceptor, ProducerOptions,
};

use crate::transaction::Transaction;
use crate::wait::{wait, wait_for};

/// Builds a [`Producer`]. Every option of the core's [`ProducerOptions`] is reachable through
/// [`options`](Self::options) or [`configure`](Self::configure).
#[derive(Debug)]
#[must_use]
pub struct ProducerBuilder {
    inner: pulsar_async::ProducerBuilder,
}

impl ProducerBuilder {
    pub(crate) fn new(inner: pulsar_async::ProducerBuilder) -> Self {
        ProducerBuilder { inner }
    }

    pub(crate) fn into_async(self) -> pulsar_async::ProducerBuilder {
        self.inner
    }

    /// Producer name (the broker picks one when unset).
    pub fn name(self, name: impl Into<String>) -> Self {
        ProducerBuilder {
            inner: self.inner.name(name),
        }
    }

    /// Maximum messages waiting for a receipt (the core's default when 0).
    pub fn max_pending_messages(self, n: usize) -> Self {
        ProducerBuilder {
            inner: self.inner.max_pending_messages(n),
        }
    }

    /// The first message gets sequence id `id + 1`.
    pub fn initial_sequence_id(self, id: u64) -> Self {
        ProducerBuilder {
            inner: self.inner.initial_sequence_id(id),
        }
    }

    /// Adds a producer property.
    pub fn property(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        ProducerBuilder {
            inner: self.inner.property(key, value),
        }
    }

    /// Batching (off by default).
    pub fn batching(self, batching: BatchingOptions) -> Self {
        ProducerBuilder {
            inner: self.inner.batching(batching),
        }
    }

    /// Compression of every payload or batch.
    pub fn compression(self, compression: CompressionType) -> Self {
        ProducerBuilder {
            inner: self.inner.compression(compression),
        }
    }

    /// A message without a receipt after this long fails (`Duration::ZERO`: never).
    pub fn send_timeout(self, timeout: Duration) -> Self {
        ProducerBuilder {
            inner: self.inner.send_timeout(timeout),
        }
    }

    /// How the producer shares the topic with other producers.
    pub fn access_mode(self, mode: AccessMode) -> Self {
        ProducerBuilder {
            inner: self.inner.access_mode(mode),
        }
    }

    /// Split payloads larger than the broker's maximum message size into chunks.
    pub fn chunking(self, enabled: bool) -> Self {
        ProducerBuilder {
            inner: self.inner.chunking(enabled),
        }
    }

    /// Replaces all core options.
    pub fn options(self, options: ProducerOptions) -> Self {
        ProducerBuilder {
            inner: self.inner.options(options),
        }
    }

    /// Changes any core option: `.configure(|o| o.max_pending_messages = 10)`.
    pub fn configure(self, f: impl FnOnce(&mut ProducerOptions)) -> Self {
        ProducerBuilder {
            inner: self.inner.configure(f),
        }
    }

    /// When the pending queue is full: block until there is room (`true`, the default) or fail
    /// at once with `SendError::QueueFull` (`false`).
    pub fn block_if_queue_full(self, block: bool) -> Self {
        ProducerBuilder {
            inner: self.inner.block_if_queue_full(block),
        }
    }

    /// Adds an interceptor: it sees every message before it is sent (and may change it), and
    /// the outcome of every send, in the order added.
    pub fn interceptor(self, interceptor: Arc<dyn ProducerInterceptor>) -> Self {
        ProducerBuilder {
            inner: self.inner.interceptor(interceptor),
        }
    }

    /// Creates the producer, blocking until the broker registered it.
    pub fn create(self) -> Result<Producer, Error> {
        wait(self.inner.create()).map(|inner| Producer { inner })
    }
}

/// A producer whose sends block.
///
/// Dropping it closes it on the broker once its pending sends have completed, in the
/// background: the drop does not wait (dropping the client's last handle does, see
/// [`Client`](crate::Client#dropping-without-close)), and a warning is logged when messages were
/// still unacknowledged. Call [`flush`](Self::flush) or [`close`](Self::close) to learn their
/// outcome. Once the producer or its client is closed, every call fails with an error whose
/// `is_closed()` is true.
#[derive(Debug)]
pub struct Producer {
    inner: pulsar_async::Producer,
}

impl Producer {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The producer name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The last sequence id the broker had stored for this producer name (`-1`: none).
    pub fn last_sequence_id(&self) -> i64 {
        self.inner.last_sequence_id()
    }

    /// Sends a message and blocks until the broker's receipt.
    pub fn send(&self, message: impl IntoMessage) -> Result<MessageId, Error> {
        wait(self.inner.send(message))
    }

    /// Queues a message (blocking only while the queue is full) and returns its [`Receipt`].
    pub fn send_async(&self, message: impl IntoMessage) -> Result<Receipt, Error> {
        wait(self.inner.send_async(message)).map(|inner| Receipt { inner })
    }

    /// Sends a message in transaction `txn` and blocks until the broker's receipt (delivered
    /// to consumers only once the transaction commits).
    pub fn send_with_txn(
        &self,
        txn: &Transaction,
        message: impl IntoMessage,
    ) -> Result<MessageId, Error> {
        wait(self.inner.send_with_txn(txn.inner(), message))
    }

    /// Queues a message in transaction `txn` and returns its [`Receipt`].
    pub fn send_async_with_txn(
        &self,
        txn: &Transaction,
        message: impl IntoMessage,
    ) -> Result<Receipt, Error> {
        wait(self.inner.send_async_with_txn(txn.inner(), message)).map(|inner| Receipt { inner })
    }

    /// Queues a message without ever blocking: a full queue fails with `SendError::QueueFull`.
    pub fn try_send(&self, message: impl IntoMessage) -> Result<Receipt, Error> {
        self.inner.try_send(message).map(|inner| Receipt { inner })
    }

    /// Queues a message and returns at once (blocking only while the queue is full, unless the
    /// producer fails fast); `callback` runs with the outcome, outside the client's lock, on the
    /// thread that handed the outcome over (almost always the driver thread) — keep it short and
    /// do not block in it.
    pub fn send_with_callback(
        &self,
        message: impl IntoMessage,
        callback: impl FnOnce(Result<MessageId, Error>) + Send + 'static,
    ) -> Result<(), Error> {
        wait(self.inner.send_with_callback(message, callback))
    }

    /// Sends what is batched and blocks until every message sent so far has its receipt (or
    /// failed).
    pub fn flush(&self) -> Result<(), Error> {
        wait(self.inner.flush())
    }

    /// Closes the producer on the broker, after sending what is batched and waiting for the
    /// receipts of pending messages (at most the operation timeout).
    pub fn close(self) -> Result<(), Error> {
        wait(self.inner.close())
    }

    /// This producer's state and counters (see [`ProducerStats`] for what each counts). On a
    /// partitioned topic, the sum over its partitions under the partitioned topic's name (the
    /// client's `stats()` lists every partition on its own). `None` once closed.
    pub fn stats(&self) -> Option<ProducerStats> {
        self.inner.stats()
    }
}

/// The broker's answer to one send. Dropping it does not cancel the send.
#[derive(Debug)]
#[must_use = "a receipt does nothing unless waited for; drop it to ignore the outcome"]
pub struct Receipt {
    inner: pulsar_async::Receipt,
}

impl Receipt {
    /// The core's handle of this send.
    pub fn send_id(&self) -> SendId {
        self.inner.send_id()
    }

    /// Blocks until the broker answered.
    pub fn wait(self) -> Result<MessageId, Error> {
        wait(self.inner)
    }

    /// Blocks at most `timeout`; `None` if the broker has not answered by then (the receipt can
    /// be waited for again).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<MessageId, Error>> {
        wait_for(&mut self.inner, timeout)
    }
}
