//! Producers: builder, sends with receipts, backpressure, flush, close.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::poll_fn;
use futures::FutureExt;
use std::time::Duration;

use pulsar_core::compression::CompressionType;
use pulsar_core::{
    AccessMode, BatchingOptions, MessageId, OutgoingMessage, ProducerId, ProducerOptions,
    ProducerStats, Resource, SendId,
};

use crate::client::ClientHandle;
use crate::error::Error;
use crate::interceptor::{Chain, ProducerInterceptor};
use crate::state::RequestResult;
use crate::transaction::Transaction;
use std::sync::Arc;

/// Anything that can be sent: an [`OutgoingMessage`] (key, properties, event time, ...) or a bare
/// payload (`Vec<u8>`, `Bytes`, `String`, `&'static str`, `&'static [u8]`).
///
/// `Send`: the send futures hold the value as given until their first poll converts it (a bare
/// payload is much smaller than an [`OutgoingMessage`], and futures are moved a few times before
/// they run).
pub trait IntoMessage: Send {
    /// The message.
    fn into_message(self) -> OutgoingMessage;
}

impl IntoMessage for OutgoingMessage {
    fn into_message(self) -> OutgoingMessage {
        self
    }
}

impl IntoMessage for Bytes {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage::new(self)
    }
}

impl IntoMessage for Vec<u8> {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage::new(self)
    }
}

impl IntoMessage for String {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage::new(self)
    }
}

impl IntoMessage for &'static str {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage::new(Bytes::from_static(self.as_bytes()))
    }
}

impl IntoMessage for &'static [u8] {
    fn into_message(self) -> OutgoingMessage {
        OutgoingMessage::new(Bytes::from_static(self))
    }
}

/// Builds a [`Producer`]. Every option of the core's [`ProducerOptions`] is reachable through
/// [`options`](Self::options) or [`configure`](Self::configure); the common ones have setters.
#[derive(Debug)]
#[must_use]
pub struct ProducerBuilder {
    client: ClientHandle,
    topic: String,
    options: ProducerOptions,
    block_if_queue_full: bool,
    interceptors: Option<Chain<dyn ProducerInterceptor>>,
}

impl ProducerBuilder {
    pub(crate) fn new(client: ClientHandle, topic: String) -> Self {
        ProducerBuilder {
            client,
            topic,
            options: ProducerOptions::default(),
            block_if_queue_full: true,
            interceptors: None,
        }
    }

    /// Adds an interceptor: it sees every message before it is sent (and may change it), and
    /// the outcome of every send. Interceptors run in the order they were added.
    pub fn interceptor(mut self, interceptor: Arc<dyn ProducerInterceptor>) -> Self {
        self.interceptors = Some(Chain::append(self.interceptors.take(), interceptor));
        self
    }

    /// The topic and the client (for the builders layered on this one).
    pub(crate) fn target(&self) -> (&ClientHandle, &str) {
        (&self.client, &self.topic)
    }

    /// Producer name (the broker picks one when unset).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.options.name = Some(name.into());
        self
    }

    /// Maximum messages waiting for a receipt (the core's default when 0).
    pub fn max_pending_messages(mut self, n: usize) -> Self {
        self.options.max_pending_messages = n;
        self
    }

    /// The first message gets sequence id `id + 1`.
    pub fn initial_sequence_id(mut self, id: u64) -> Self {
        self.options.initial_sequence_id = Some(id);
        self
    }

    /// Adds a producer property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.properties.push((key.into(), value.into()));
        self
    }

    /// Batching (off by default): messages grouped into one broker entry up to a count, a size
    /// or a delay.
    pub fn batching(mut self, batching: BatchingOptions) -> Self {
        self.options.batching = batching;
        self
    }

    /// Compression of every payload or batch.
    pub fn compression(mut self, compression: CompressionType) -> Self {
        self.options.compression = compression;
        self
    }

    /// A message without a receipt after this long fails (`Duration::ZERO`: never).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.options.send_timeout = timeout;
        self
    }

    /// How the producer shares the topic with other producers.
    pub fn access_mode(mut self, mode: AccessMode) -> Self {
        self.options.access_mode = mode;
        self
    }

    /// Split payloads larger than the broker's maximum message size into chunks.
    pub fn chunking(mut self, enabled: bool) -> Self {
        self.options.chunking = enabled;
        self
    }

    /// Replaces all core options.
    pub fn options(mut self, options: ProducerOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes any core option: `.configure(|o| o.max_pending_messages = 10)`.
    pub fn configure(mut self, f: impl FnOnce(&mut ProducerOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// When the pending queue (or the client's write buffer) is full: wait for room (`true`, the
    /// default) or fail at once with `SendError::QueueFull` (`false`).
    pub fn block_if_queue_full(mut self, block: bool) -> Self {
        self.block_if_queue_full = block;
        self
    }

    /// Creates the producer and waits until the broker registered it.
    pub async fn create(self) -> Result<Producer, Error> {
        let ProducerBuilder {
            client,
            topic,
            options,
            block_if_queue_full,
            interceptors,
        } = self;
        let id = client.shared().with(|st| {
            let id = st.create_producer(&topic, options)?;
            if let Some(chain) = &interceptors {
                st.set_producer_interceptors(id, chain.clone(), &topic);
            }
            Ok::<_, Error>(id)
        })?;
        let span = tracing::info_span!("pulsar_producer", producer = id.get(), topic = %topic);
        // From here on, dropping (cancelling) closes it.
        let mut producer = Producer {
            client,
            id,
            topic,
            name: String::new(),
            last_sequence_id: -1,
            block_if_queue_full,
            closed: false,
            interceptors,
            span,
        };
        let (name, last) = poll_fn(|cx| {
            producer
                .client
                .shared()
                .with(|st| st.poll_producer_ready(id, cx))
        })
        .await?;
        producer
            .span
            .in_scope(|| tracing::debug!(%name, "producer ready"));
        producer.name = name;
        producer.last_sequence_id = last;
        Ok(producer)
    }
}

/// A producer.
///
/// # Dropping without `close`
///
/// Dropping it closes it on the broker after its pending sends, as [`close`](Self::close) does,
/// but in the background: the drop does not wait, nobody learns the outcome of those sends, and
/// a warning is logged (`tracing`) if some were still unacknowledged. They are stored only if
/// the client's driver keeps running long enough: with tokio, only while the runtime the client
/// was built in runs (leaving a current-thread runtime right away loses them all); with smol,
/// until the process exits; with `pulsar-blocking`, dropping the client's last handle waits
/// for them. See [`ClientHandle`](crate::ClientHandle#dropping-without-close) for the details,
/// and call [`flush`](Self::flush) or [`close`](Self::close) to be sure.
///
/// Once the client is closing or closed, sends fail with `SendError::ClientClosed` and
/// [`flush`](Self::flush) with `pulsar_core::Error::ClientClosed`; once the producer is closed,
/// with `SendError::ProducerClosed` and `pulsar_core::Error::Closed`. [`Error::is_closed`] is
/// true for all of them; [`close`](Self::close) of a producer already closed succeeds.
#[derive(Debug)]
pub struct Producer {
    client: ClientHandle,
    id: ProducerId,
    topic: String,
    name: String,
    last_sequence_id: i64,
    block_if_queue_full: bool,
    closed: bool,
    interceptors: Option<Chain<dyn ProducerInterceptor>>,
    /// The producer's lifecycle span (`pulsar_producer`, with its id and topic): its creation,
    /// close and drop are logged inside it; nothing per message.
    span: tracing::Span,
}

impl Producer {
    /// The core's handle.
    pub fn id(&self) -> ProducerId {
        self.id
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer name (the broker's choice when none was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last sequence id the broker had stored for this producer name (`-1`: none).
    pub fn last_sequence_id(&self) -> i64 {
        self.last_sequence_id
    }

    /// Sends a message and waits for the broker's receipt.
    pub async fn send(&self, message: impl IntoMessage) -> Result<MessageId, Error> {
        self.send_async(message).await?.await
    }

    /// Queues a message (waiting for room when the queue is full and the producer blocks) and
    /// returns its [`Receipt`] without waiting for the broker: many messages can be in flight.
    pub fn send_async<'a>(
        &'a self,
        message: impl IntoMessage + 'a,
    ) -> impl Future<Output = Result<Receipt, Error>> + Send + 'a {
        self.enqueue(message, None, true, None).map(move |r| {
            r.map(|send| Receipt {
                client: self.client.clone(),
                producer: self.id,
                send,
                done: false,
            })
        })
    }

    /// Sends a message in transaction `txn` and waits for the broker's receipt. The message is
    /// delivered to consumers only once the transaction commits (never if it aborts); its
    /// partition joins the transaction before the first message sent to it.
    pub async fn send_with_txn(
        &self,
        txn: &Transaction,
        message: impl IntoMessage,
    ) -> Result<MessageId, Error> {
        self.send_async_with_txn(txn, message).await?.await
    }

    /// [`send_async`](Self::send_async) in transaction `txn`: queues the message and returns its
    /// [`Receipt`] (a commit waits for every receipt of the transaction anyway).
    pub fn send_async_with_txn<'a>(
        &'a self,
        txn: &Transaction,
        message: impl IntoMessage + 'a,
    ) -> impl Future<Output = Result<Receipt, Error>> + Send + 'a {
        self.enqueue(message, None, true, Some(txn.id()))
            .map(move |r| {
                r.map(|send| Receipt {
                    client: self.client.clone(),
                    producer: self.id,
                    send,
                    done: false,
                })
            })
    }

    /// Queues a message without ever waiting: a full queue fails with `SendError::QueueFull`.
    pub fn try_send(&self, message: impl IntoMessage) -> Result<Receipt, Error> {
        let mut message = Some(self.intercept(message.into_message()));
        let mut callback = None;
        match self
            .client
            .shared()
            .with(|st| st.poll_enqueue(self.id, &mut message, &mut callback, true, None))
        {
            Poll::Ready(Ok(send)) => Ok(Receipt {
                client: self.client.clone(),
                producer: self.id,
                send,
                done: false,
            }),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Err(pulsar_core::SendError::QueueFull.into()),
        }
    }

    /// Queues a message (waiting for room like [`send_async`](Self::send_async)); `callback` runs
    /// with the outcome once the broker answered, outside the client's lock, on the thread that
    /// handed the outcome over (almost always the client's driver task or thread): keep it short
    /// and do not block in it.
    pub fn send_with_callback<'a>(
        &'a self,
        message: impl IntoMessage + 'a,
        callback: impl FnOnce(Result<MessageId, Error>) + Send + 'static,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'a {
        self.enqueue(message, Some(Box::new(callback)), false, None)
            .map(|r| r.map(drop))
    }

    /// Queues `message` (retrying while there is no room and the producer blocks). A plain
    /// future rather than an `async fn`, holding the message as given (often a bare payload, a
    /// few tens of bytes) until its first poll converts it: every move of the future before it
    /// runs copies it whole, and an [`OutgoingMessage`] is a couple of hundred bytes. A message
    /// that must wait for room is boxed while it waits.
    fn enqueue<'a>(
        &'a self,
        message: impl IntoMessage + 'a,
        callback: Option<crate::state::SendCallback>,
        want_receipt: bool,
        txn: Option<pulsar_core::TxnId>,
    ) -> impl Future<Output = Result<SendId, Error>> + Send + 'a {
        let mut given = Some(message);
        let mut waiting: Option<Box<OutgoingMessage>> = None;
        let mut callback = callback;
        let block = self.block_if_queue_full;
        let id = self.id;
        poll_fn(move |cx| {
            let mut message = match waiting.take() {
                Some(boxed) => Some(*boxed),
                None => given.take().map(|m| self.intercept(m.into_message())),
            };
            let polled = self.client.shared().with(|st| {
                st.poll_enqueue_in(
                    id,
                    &mut message,
                    &mut callback,
                    want_receipt,
                    block.then_some(&*cx),
                    txn,
                )
            });
            if polled.is_pending() {
                waiting = message.map(Box::new);
            }
            polled
        })
    }

    /// `message` through the interceptors, if any.
    #[inline]
    fn intercept(&self, message: OutgoingMessage) -> OutgoingMessage {
        match &self.interceptors {
            None => message,
            Some(chain) => chain.before_send(&self.topic, message),
        }
    }

    /// Sends whatever is batched now and waits until every message sent so far has its receipt
    /// (or failed).
    pub async fn flush(&self) -> Result<(), Error> {
        let id = self.id;
        match self
            .client
            .request_for(Some(Resource::Producer(id)), |core, now| {
                core.flush(now, id)
            })
            .await?
        {
            RequestResult::Done(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    /// Closes the producer on the broker and waits for the answer. The core flushes first: what
    /// is batched is sent and the receipts of pending messages are awaited (at most the operation
    /// timeout).
    pub async fn close(mut self) -> Result<(), Error> {
        self.closed = true;
        let id = self.id;
        self.client.shared().with(|st| st.close_producer(id));
        poll_fn(|cx| {
            self.client
                .shared()
                .with(|st| st.poll_producer_closed(id, cx))
        })
        .await
    }

    /// This producer's state and counters (see [`ProducerStats`] for what each counts). On a
    /// partitioned topic, the sum over its partitions under the partitioned topic's name (the
    /// client's `stats()` lists every partition on its own). `None` once closed.
    pub fn stats(&self) -> Option<ProducerStats> {
        let id = self.id;
        self.client.shared().with(|st| st.core.producer_stats(id))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let id = self.id;
        let closed = self.closed;
        let _span = self.span.enter();
        self.client.shared().with(|st| {
            if !closed {
                let unacknowledged = st.unacknowledged_messages_of(id);
                if unacknowledged == 0 {
                    tracing::debug!(producer = id.get(), "producer dropped: closing");
                } else {
                    tracing::warn!(
                        producer = id.get(),
                        unacknowledged,
                        "producer dropped without close() with {unacknowledged} messages not yet \
                         acknowledged by the broker: they are sent while the client's driver \
                         runs (see the Drop documentation of Producer)"
                    );
                }
            }
            st.producer_dropped(id);
        });
    }
}

/// The broker's answer to one send: resolves to the message id, or the send's error.
///
/// Dropping it does not cancel the send.
#[derive(Debug)]
#[must_use = "a receipt does nothing unless awaited; drop it to ignore the outcome"]
pub struct Receipt {
    client: ClientHandle,
    producer: ProducerId,
    send: SendId,
    done: bool,
}

impl Receipt {
    /// The core's handle of this send.
    pub fn send_id(&self) -> SendId {
        self.send
    }
}

impl Future for Receipt {
    type Output = Result<MessageId, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (producer, send) = (self.producer, self.send);
        let r = self
            .client
            .shared()
            .with(|st| st.poll_receipt(producer, send, cx));
        if r.is_ready() {
            self.done = true;
        }
        r
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if !self.done {
            let (producer, send) = (self.producer, self.send);
            self.client
                .shared()
                .with(|st| st.drop_receipt(producer, send));
        }
    }
}
