//! Consumers and readers: builders, receive (future and `Stream`), acknowledgements, negative
//! acknowledgements, seek, close.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::poll_fn;
use futures::stream::FusedStream;
use futures::Stream;
use pulsar_core::{
    BatchReceivePolicy, ConsumerId, ConsumerOptions, ConsumerStats, InitialPosition, Message,
    MessageId, ReaderOptions, Resource, SeekTo, SubscriptionType, TopicMessageId,
};

use crate::client::ClientHandle;
use crate::error::Error;
use crate::interceptor::{Chain, ConsumerInterceptor};
use crate::runtime::{AsyncTimer, Runtime, TimeSource};
use crate::state::RequestResult;
use crate::transaction::Transaction;
use std::sync::Arc;

/// What a consumer subscribes to.
#[derive(Debug, Clone)]
enum Target {
    Topic(String),
    Topics(Vec<String>),
    Pattern(String),
}

/// Builds a [`Consumer`]. Every option of the core's [`ConsumerOptions`] is reachable through
/// [`options`](Self::options) or [`configure`](Self::configure); the common ones have setters.
#[derive(Debug)]
#[must_use]
pub struct ConsumerBuilder {
    client: ClientHandle,
    target: Target,
    options: ConsumerOptions,
    interceptors: Option<Chain<dyn ConsumerInterceptor>>,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: ClientHandle, topic: String) -> Self {
        Self::with_target(client, Target::Topic(topic))
    }

    pub(crate) fn topics(client: ClientHandle, topics: Vec<String>) -> Self {
        Self::with_target(client, Target::Topics(topics))
    }

    pub(crate) fn pattern(client: ClientHandle, pattern: String) -> Self {
        Self::with_target(client, Target::Pattern(pattern))
    }

    fn with_target(client: ClientHandle, target: Target) -> Self {
        ConsumerBuilder {
            client,
            target,
            options: ConsumerOptions::new(""),
            interceptors: None,
        }
    }

    /// Adds an interceptor: it sees every message before the application gets it (and may
    /// change it), every acknowledgement and negative acknowledgement. Interceptors run in the
    /// order they were added.
    pub fn interceptor(mut self, interceptor: Arc<dyn ConsumerInterceptor>) -> Self {
        self.interceptors = Some(Chain::append(self.interceptors.take(), interceptor));
        self
    }

    /// Subscription name (required).
    pub fn subscription(mut self, name: impl Into<String>) -> Self {
        self.options.subscription = name.into();
        self
    }

    /// Subscription type (Exclusive by default).
    pub fn subscription_type(mut self, t: SubscriptionType) -> Self {
        self.options.subscription_type = t;
        self
    }

    /// Where a new subscription starts (latest by default).
    pub fn initial_position(mut self, p: InitialPosition) -> Self {
        self.options.initial_position = p;
        self
    }

    /// Receiver queue size: how many messages the broker may push ahead of the application
    /// (`0`: one at a time, on demand).
    pub fn receiver_queue_size(mut self, n: u32) -> Self {
        self.options.receiver_queue_size = n;
        self
    }

    /// Consumer name.
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.options.consumer_name = Some(name.into());
        self
    }

    /// Durable subscription (default) or not.
    pub fn durable(mut self, durable: bool) -> Self {
        self.options.durable = durable;
        self
    }

    /// Redeliver messages not acknowledged within `timeout`.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.options.ack_timeout = Some(timeout);
        self
    }

    /// Delay before negatively acknowledged messages are redelivered.
    pub fn negative_ack_delay(mut self, delay: Duration) -> Self {
        self.options.negative_ack_delay = delay;
        self
    }

    /// Subscribe paused: no message comes until [`Consumer::resume`] (Java's `startPaused`).
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.options.start_paused = paused;
        self
    }

    /// The limits of [`Consumer::batch_receive`] (Java's `batchReceivePolicy`).
    pub fn batch_receive_policy(mut self, policy: BatchReceivePolicy) -> Self {
        self.options.batch_receive = policy;
        self
    }

    /// Replaces all core options (including the subscription name).
    pub fn options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes any core option: `.configure(|o| o.ack_receipts = true)`.
    pub fn configure(mut self, f: impl FnOnce(&mut ConsumerOptions)) -> Self {
        f(&mut self.options);
        self
    }

    pub(crate) fn options_ref(&self) -> &ConsumerOptions {
        &self.options
    }

    /// Subscribes and waits until the broker registered the consumer (on every topic or
    /// partition).
    pub async fn subscribe(self) -> Result<Consumer, Error> {
        let ConsumerBuilder {
            client,
            target,
            mut options,
            interceptors,
        } = self;
        // The core reports ack-timeout redeliveries only to consumers that have someone to tell.
        options.report_ack_timeouts = interceptors.is_some() && options.ack_timeout.is_some();
        if options.subscription.is_empty() {
            return Err(Error::Missing("subscription"));
        }
        let subscription = options.subscription.clone();
        let settings = Settings {
            ack_receipts: options.ack_receipts,
            queue_size: options.receiver_queue_size,
            batch_receive: options.batch_receive,
        };
        let name = match &target {
            Target::Topic(t) | Target::Pattern(t) => t.clone(),
            Target::Topics(ts) => ts.join(","),
        };
        let id = client.shared().with(|st| {
            st.subscribe(|core, now| match &target {
                Target::Topic(t) => core.subscribe(now, t, options),
                Target::Topics(ts) => {
                    let refs: Vec<&str> = ts.iter().map(String::as_str).collect();
                    core.subscribe_topics(now, &refs, options)
                }
                Target::Pattern(p) => core.subscribe_pattern(now, p, options),
            })
            .inspect(|&id| {
                if let Some(chain) = &interceptors {
                    st.set_consumer_interceptors(id, chain.clone());
                }
            })
        })?;
        let mut consumer = Consumer::start(client, id, name, subscription, settings).await?;
        consumer.interceptors = interceptors;
        Ok(consumer)
    }
}

/// What a [`Consumer`] keeps of its options.
#[derive(Debug, Clone, Copy)]
struct Settings {
    ack_receipts: bool,
    queue_size: u32,
    batch_receive: BatchReceivePolicy,
}

/// A consumer: a [`Stream`] of messages (ending when the consumer or its client is closed), plus
/// [`receive`](Self::receive), acknowledgements, negative acknowledgements, seek and close.
/// Dropping it closes it on the broker (pending acknowledgements are flushed first).
///
/// Once the client is closing or closed, every operation fails with
/// `Error::Client(pulsar_core::Error::ClientClosed)`; once the consumer itself is closed (by the
/// broker for good, or with the client), with `Error::Client(pulsar_core::Error::Closed)` (or
/// the error it failed with). [`Error::is_closed`] is true for both; [`close`](Self::close) of a
/// consumer that is already closed succeeds.
#[derive(Debug)]
pub struct Consumer {
    client: ClientHandle,
    id: ConsumerId,
    topic: String,
    subscription: String,
    settings: Settings,
    /// The stream ended (closed, failed, or the driver stopped).
    finished: bool,
    interceptors: Option<Chain<dyn ConsumerInterceptor>>,
    /// The consumer's lifecycle span (`pulsar_consumer`, with its id, topic and subscription):
    /// its subscription, close and drop are logged inside it; nothing per message.
    span: tracing::Span,
}

impl Consumer {
    /// Waits until the core's consumer `id` is registered.
    async fn start(
        client: ClientHandle,
        id: ConsumerId,
        topic: String,
        subscription: String,
        settings: Settings,
    ) -> Result<Consumer, Error> {
        let span = tracing::info_span!(
            "pulsar_consumer",
            consumer = id.get(),
            %topic,
            %subscription
        );
        // From here on, dropping (cancelling) closes it.
        let consumer = Consumer {
            client,
            id,
            topic,
            subscription,
            settings,
            finished: false,
            interceptors: None,
            span,
        };
        poll_fn(|cx| {
            consumer
                .client
                .shared()
                .with(|st| st.poll_consumer_ready(id, cx))
        })
        .await?;
        consumer.span.in_scope(|| tracing::debug!("consumer ready"));
        Ok(consumer)
    }

    /// The client this consumer belongs to.
    pub(crate) fn client_handle(&self) -> ClientHandle {
        self.client.clone()
    }

    /// The core's handle.
    pub fn id(&self) -> ConsumerId {
        self.id
    }

    /// The topic (several topics joined by commas, or the pattern).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The subscription.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The next message, waiting for one. Fails once the consumer is closed or failed, or its
    /// client is closing.
    ///
    /// (A plain future over the shared state rather than an `async fn`: a message is a few
    /// hundred bytes, and every layer of futures moves it once more.)
    pub fn receive(&self) -> impl Future<Output = Result<Message, Error>> + Send + '_ {
        let id = self.id;
        poll_fn(move |cx| {
            let polled = self.client.shared().with(|st| st.poll_next_message(id, cx));
            match (&self.interceptors, polled) {
                (Some(chain), Poll::Ready(Ok(m))) => Poll::Ready(Ok(chain.before_consume(m))),
                (_, polled) => polled,
            }
        })
    }

    /// The next message if one is queued, without waiting.
    pub fn try_receive(&self) -> Result<Option<Message>, Error> {
        match self
            .client
            .shared()
            .with(|st| st.poll_receive(self.id, None))
        {
            Poll::Ready(Ok(Some(m))) => Ok(Some(self.intercept(m))),
            Poll::Ready(Ok(None)) => Err(Error::Client(pulsar_core::Error::Closed)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }

    /// Waits for at least one message, then takes up to `max_messages` queued messages (stopping
    /// before `max_bytes` of payload). Combine with your runtime's timeout for a batch deadline.
    pub async fn receive_batch(
        &self,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, Error> {
        let batch = poll_fn(|cx| {
            self.client
                .shared()
                .with(|st| st.poll_receive_batch(self.id, max_messages, max_bytes, Some(cx)))
        })
        .await?;
        if batch.is_empty() {
            return Err(Error::Client(pulsar_core::Error::Closed));
        }
        Ok(match &self.interceptors {
            None => batch,
            Some(chain) => batch.into_iter().map(|m| chain.before_consume(m)).collect(),
        })
    }

    /// The next message, waiting at most `timeout`: `Ok(None)` if none came by then. A message
    /// that is queued when the time is up is still returned.
    pub async fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        let id = self.id;
        let mut timer = self.timer_after(timeout)?;
        poll_fn(move |cx| {
            if let Poll::Ready(r) = self.client.shared().with(|st| st.poll_next_message(id, cx)) {
                return Poll::Ready(r.map(|m| Some(self.intercept(m))));
            }
            timer.as_mut().poll(cx).map(|()| Ok(None))
        })
        .await
    }

    /// The policy of [`batch_receive`](Self::batch_receive).
    pub fn batch_receive_policy(&self) -> BatchReceivePolicy {
        self.settings.batch_receive
    }

    /// A batch of messages by the consumer's [`BatchReceivePolicy`] (set with
    /// [`ConsumerBuilder::batch_receive_policy`]; Java's `batchReceive`).
    pub async fn batch_receive(&self) -> Result<Vec<Message>, Error> {
        self.batch_receive_with(self.settings.batch_receive).await
    }

    /// A batch of messages by `policy`: as soon as the receiver queue holds `max_messages`
    /// messages or `max_bytes` bytes, or when `timeout` has passed (then what is queued, possibly
    /// nothing). Nothing is taken from the queue before the batch is complete, so cancelling the
    /// future loses nothing. Fails once the consumer is closed and its queue empty, and on a
    /// consumer with a zero-size receiver queue (as in Java).
    pub async fn batch_receive_with(
        &self,
        policy: BatchReceivePolicy,
    ) -> Result<Vec<Message>, Error> {
        let mut timer = self.timer_after(policy.timeout)?;
        let ready = self.batch_ready(policy);
        let mut ready = std::pin::pin!(ready);
        poll_fn(|cx| match ready.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => timer.as_mut().poll(cx).map(Ok),
        })
        .await?;
        self.try_receive_batch(policy.message_limit(), policy.byte_limit())
    }

    /// Waits until the receiver queue holds a full batch by `policy` (its limits; the timeout is
    /// the caller's), or the consumer ended (closed with messages still queued: `Ok`; with
    /// none: the error a receive gives). Takes nothing: follow with
    /// [`try_receive_batch`](Self::try_receive_batch).
    pub fn batch_ready(
        &self,
        policy: BatchReceivePolicy,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let id = self.id;
        let zero_queue = self.settings.queue_size == 0;
        poll_fn(move |cx| {
            if zero_queue {
                return Poll::Ready(Err(Error::Unsupported(
                    "batch receive with a zero-size receiver queue",
                )));
            }
            self.client
                .shared()
                .with(|st| st.poll_batch_ready(id, &policy, cx))
        })
    }

    /// Takes up to `max_messages` queued messages, stopping before `max_bytes` of payload (the
    /// first message is taken whatever its size), without waiting: empty when none is queued.
    /// Fails once the consumer is closed and its queue empty.
    pub fn try_receive_batch(
        &self,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<Vec<Message>, Error> {
        match self
            .client
            .shared()
            .with(|st| st.poll_receive_batch(self.id, max_messages, max_bytes, None))
        {
            Poll::Ready(Ok(batch)) if batch.is_empty() => {
                Err(Error::Client(pulsar_core::Error::Closed))
            }
            Poll::Ready(Ok(batch)) => Ok(match &self.interceptors {
                None => batch,
                Some(chain) => batch.into_iter().map(|m| chain.before_consume(m)).collect(),
            }),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(Vec::new()),
        }
    }

    /// Stops asking the broker for messages (no FLOW permits go out) until
    /// [`resume`](Self::resume), on every topic and partition of the consumer. The messages
    /// already queued, or on their way, can still be received; nothing is lost (Java's
    /// `pause`).
    pub fn pause(&self) -> Result<(), Error> {
        let id = self.id;
        self.command(|core, now| core.pause_consumer(now, id))
    }

    /// Resumes a paused consumer: the permits held back go to the broker at once.
    pub fn resume(&self) -> Result<(), Error> {
        let id = self.id;
        self.command(|core, now| core.resume_consumer(now, id))
    }

    /// Whether the consumer is paused.
    pub fn is_paused(&self) -> bool {
        let id = self.id;
        self.client
            .shared()
            .with(|st| st.core.is_consumer_paused(id).unwrap_or(false))
    }

    /// Acknowledges a message by topic and id (its
    /// [`Message::topic_message_id`], or one of [`last_message_ids`](Self::last_message_ids)):
    /// what a consumer of several topics or partitions needs when the message is not at hand.
    pub fn ack_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        let consumer = self.id;
        let r = self.command(|core, now| core.ack_topic_id(now, consumer, id, false).map(drop));
        self.acknowledged(&id.id, r)
    }

    /// Acknowledges every message of `id`'s topic (partition) up to and including it
    /// (Exclusive and Failover).
    pub fn ack_cumulative_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        let consumer = self.id;
        let r = self.command(|core, now| core.ack_topic_id(now, consumer, id, true).map(drop));
        self.acknowledged(&id.id, r)
    }

    /// Negatively acknowledges a message by topic and id.
    pub fn nack_topic_id(&self, id: &TopicMessageId) -> Result<(), Error> {
        let consumer = self.id;
        let r = self.command(|core, now| core.negative_ack_topic_id(now, consumer, id));
        self.negatively_acknowledged(&id.id, r)
    }

    /// The runtime of the client, for timers and listeners (none on a thread-driven client).
    pub(crate) fn runtime(&self) -> Result<std::sync::Arc<dyn Runtime>, Error> {
        match self.client.shared().with(|st| st.time_source().clone()) {
            TimeSource::Runtime(rt) => Ok(rt),
            TimeSource::System => Err(Error::Unsupported(
                "timed waits and listeners of an async consumer on a thread-driven client \
                 (pulsar-blocking has its own)",
            )),
        }
    }

    /// A timer that fires `timeout` from now on the client's runtime.
    fn timer_after(&self, timeout: Duration) -> Result<Pin<Box<dyn AsyncTimer>>, Error> {
        let rt = self.runtime()?;
        let now = rt.now();
        // (a timeout too long to represent never fires)
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        Ok(rt.timer(deadline))
    }

    /// Acknowledges a message (only that message, also inside a batch).
    pub fn ack(&self, message: &Message) -> Result<(), Error> {
        let r = self.command(|core, now| core.ack_message(now, message).map(drop));
        self.acknowledged(&message.id, r)
    }

    /// Acknowledges a message by id (single-topic consumers; prefer [`ack`](Self::ack)).
    pub fn ack_id(&self, id: &MessageId) -> Result<(), Error> {
        let consumer = self.id;
        let r = self.command(|core, now| core.ack(now, consumer, id).map(drop));
        self.acknowledged(id, r)
    }

    /// Acknowledges a message and waits for the broker's confirmation. Needs the `ack_receipts`
    /// consumer option.
    pub async fn ack_with_receipt(&self, message: &Message) -> Result<(), Error> {
        if !self.settings.ack_receipts {
            return Err(Error::Missing("ack_receipts consumer option"));
        }
        let r = self.done(|core, now| core.ack_message(now, message)).await;
        self.acknowledged(&message.id, r)
    }

    /// Acknowledges every message up to and including this one (Exclusive and Failover).
    pub fn ack_cumulative(&self, message: &Message) -> Result<(), Error> {
        let r = self.command(|core, now| core.ack_cumulative_message(now, message).map(drop));
        self.acknowledged(&message.id, r)
    }

    /// Acknowledges a message in transaction `txn` and waits for the broker's answer: the
    /// acknowledgement applies only if the transaction commits. A message acknowledged in
    /// another transaction already fails with [`pulsar_core::TxnError::Conflict`] (and the
    /// commit then aborts).
    pub async fn ack_with_txn(&self, txn: &Transaction, message: &Message) -> Result<(), Error> {
        let id = txn.id();
        self.done(|core, now| core.ack_message_in_transaction(now, message, false, id))
            .await
    }

    /// Acknowledges every message up to and including this one in transaction `txn`
    /// (Exclusive and Failover subscriptions), waiting for the broker's answer.
    pub async fn ack_cumulative_with_txn(
        &self,
        txn: &Transaction,
        message: &Message,
    ) -> Result<(), Error> {
        let id = txn.id();
        self.done(|core, now| core.ack_message_in_transaction(now, message, true, id))
            .await
    }

    /// Negatively acknowledges a message: it is redelivered after the negative-ack delay.
    pub fn nack(&self, message: &Message) -> Result<(), Error> {
        let r = self.command(|core, now| core.negative_ack_message(now, message));
        self.negatively_acknowledged(&message.id, r)
    }

    /// Negatively acknowledges a message by id.
    pub fn nack_id(&self, id: &MessageId) -> Result<(), Error> {
        let consumer = self.id;
        let r = self.command(|core, now| core.negative_ack(now, consumer, id));
        self.negatively_acknowledged(id, r)
    }

    /// `message` through the interceptors, if any.
    #[inline]
    fn intercept(&self, message: Message) -> Message {
        match &self.interceptors {
            None => message,
            Some(chain) => chain.before_consume(message),
        }
    }

    /// Tells the interceptors (if any) of an acknowledgement's outcome.
    #[inline]
    fn acknowledged(&self, id: &MessageId, r: Result<(), Error>) -> Result<(), Error> {
        if let Some(chain) = &self.interceptors {
            chain.on_acknowledge(id, &r);
        }
        r
    }

    /// Tells the interceptors (if any) of a negative acknowledgement that was accepted.
    #[inline]
    fn negatively_acknowledged(&self, id: &MessageId, r: Result<(), Error>) -> Result<(), Error> {
        if let (Some(chain), Ok(())) = (&self.interceptors, &r) {
            chain.on_negative_acks_send(std::slice::from_ref(id));
        }
        r
    }

    /// Asks the broker to redeliver every message received and not acknowledged.
    pub fn redeliver_unacknowledged(&self) -> Result<(), Error> {
        let consumer = self.id;
        self.command(|core, now| core.redeliver_unacknowledged(now, consumer))
    }

    /// Publishes a copy to the retry-letter topic (delivered after `delay`, with `properties`
    /// added) and acknowledges the original. Needs the `retry_enabled` option and a dead-letter
    /// policy.
    pub async fn reconsume_later(
        &self,
        message: &Message,
        delay: Duration,
        properties: Vec<(String, String)>,
    ) -> Result<(), Error> {
        self.done(|core, now| core.reconsume_later(now, message, delay, properties))
            .await
    }

    /// Moves the subscription to a message id or a publish time. Locally queued messages are
    /// dropped; delivery restarts from there.
    pub async fn seek(&self, to: SeekTo) -> Result<(), Error> {
        let consumer = self.id;
        self.done(|core, now| core.seek(now, consumer, to)).await
    }

    /// The last message id of every topic (partition) of the consumer.
    pub async fn last_message_ids(&self) -> Result<Vec<TopicMessageId>, Error> {
        let consumer = self.id;
        match self
            .request(|core, now| core.get_last_message_ids(now, consumer))
            .await?
        {
            RequestResult::LastIds(r) => r.map_err(Error::from),
            RequestResult::Done(Err(e)) => Err(e.into()),
            _ => Err(Error::DriverStopped),
        }
    }

    /// Whether a message can be received now or later without new publishes (queued, or after
    /// the last one received according to the broker).
    pub async fn has_message_available(&self) -> Result<bool, Error> {
        let consumer = self.id;
        match self
            .request(|core, now| core.has_message_available(now, consumer))
            .await?
        {
            RequestResult::HasMessage(r) => r.map_err(Error::from),
            RequestResult::Done(Err(e)) => Err(e.into()),
            _ => Err(Error::DriverStopped),
        }
    }

    /// Deletes the subscription on the broker (the consumer is closed).
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        self.finished = true;
        let consumer = self.id;
        self.done(|core, now| core.unsubscribe(now, consumer)).await
    }

    /// Closes the consumer on the broker (flushing pending acknowledgements) and waits for the
    /// answer.
    pub async fn close(mut self) -> Result<(), Error> {
        self.finished = true;
        let id = self.id;
        self.client.shared().with(|st| st.close_consumer(id));
        poll_fn(|cx| {
            self.client
                .shared()
                .with(|st| st.poll_consumer_closed(id, cx))
        })
        .await
    }

    /// This consumer's state and counters.
    pub fn stats(&self) -> Option<ConsumerStats> {
        self.client
            .stats()
            .consumers
            .into_iter()
            .find(|c| c.id == self.id)
    }

    fn command<T>(
        &self,
        f: impl FnOnce(&mut pulsar_core::Client, std::time::Instant) -> Result<T, pulsar_core::Error>,
    ) -> Result<T, Error> {
        let id = self.id;
        self.client.shared().with(|st| st.consumer_command(id, f))
    }

    async fn request(
        &self,
        f: impl FnOnce(
            &mut pulsar_core::Client,
            std::time::Instant,
        ) -> Result<pulsar_core::RequestId, pulsar_core::Error>,
    ) -> Result<RequestResult, Error> {
        self.client
            .request_for(Some(Resource::Consumer(self.id)), f)
            .await
    }

    async fn done(
        &self,
        f: impl FnOnce(
            &mut pulsar_core::Client,
            std::time::Instant,
        ) -> Result<pulsar_core::RequestId, pulsar_core::Error>,
    ) -> Result<(), Error> {
        match self.request(f).await? {
            RequestResult::Done(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let id = self.id;
        match self
            .client
            .shared()
            .with(|st| st.poll_receive(id, Some(cx)))
        {
            Poll::Ready(Ok(Some(m))) => Poll::Ready(Some(Ok(self.intercept(m)))),
            // Closed with its client: the stream ends, as when the consumer is closed.
            Poll::Ready(Ok(None))
            | Poll::Ready(Err(Error::Client(pulsar_core::Error::ClientClosed))) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.finished = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ends (`is_terminated`) once the stream gave `None` or its last error: polling it again is
/// harmless, so it can be used in `select!`.
impl FusedStream for Consumer {
    fn is_terminated(&self) -> bool {
        self.finished
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let id = self.id;
        let _span = self.span.enter();
        tracing::debug!(closed = self.finished, "consumer dropped");
        self.client.shared().with(|st| st.consumer_dropped(id));
    }
}

/// Builds a [`Reader`]: a non-durable exclusive subscription that starts at a message id.
#[derive(Debug)]
#[must_use]
pub struct ReaderBuilder {
    client: ClientHandle,
    topic: String,
    options: ReaderOptions,
}

impl ReaderBuilder {
    pub(crate) fn new(client: ClientHandle, topic: String) -> Self {
        ReaderBuilder {
            client,
            topic,
            options: ReaderOptions::new(MessageId::EARLIEST),
        }
    }

    /// Where to start: [`MessageId::EARLIEST`] (the default), [`MessageId::LATEST`] or a message
    /// id.
    pub fn start_message_id(mut self, id: MessageId) -> Self {
        self.options.start_message_id = id;
        self
    }

    /// Deliver the start message too.
    pub fn start_inclusive(mut self) -> Self {
        self.options.start_message_id_inclusive = true;
        self
    }

    /// Receiver queue size.
    pub fn receiver_queue_size(mut self, n: u32) -> Self {
        self.options.receiver_queue_size = n;
        self
    }

    /// Reader (consumer) name.
    pub fn reader_name(mut self, name: impl Into<String>) -> Self {
        self.options.reader_name = Some(name.into());
        self
    }

    /// Replaces all core options.
    pub fn options(mut self, options: ReaderOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes any core option.
    pub fn configure(mut self, f: impl FnOnce(&mut ReaderOptions)) -> Self {
        f(&mut self.options);
        self
    }

    pub(crate) fn options_ref(&self) -> &ReaderOptions {
        &self.options
    }

    /// Creates the reader and waits until the broker registered it.
    pub async fn create(self) -> Result<Reader, Error> {
        let ReaderBuilder {
            client,
            topic,
            options,
        } = self;
        let subscription = options.subscription_name.clone().unwrap_or_default();
        let settings = Settings {
            ack_receipts: false,
            queue_size: options.receiver_queue_size,
            batch_receive: BatchReceivePolicy::default(),
        };
        let id = client
            .shared()
            .with(|st| st.subscribe(|core, now| core.create_reader(now, &topic, options)))?;
        Consumer::start(client, id, topic, subscription, settings)
            .await
            .map(|inner| Reader { inner })
    }
}

/// A reader: reads a topic from a position without acknowledging (a [`Stream`] of messages).
/// Dropping it closes it. Closed readers and readers of a closed client fail as
/// [`Consumer`]s do.
#[derive(Debug)]
pub struct Reader {
    inner: Consumer,
}

impl Reader {
    /// The client this reader belongs to.
    pub(crate) fn client_handle(&self) -> ClientHandle {
        self.inner.client_handle()
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        self.inner.topic()
    }

    /// The client's runtime (see [`Consumer::runtime`]).
    pub(crate) fn runtime(&self) -> Result<std::sync::Arc<dyn Runtime>, Error> {
        self.inner.runtime()
    }

    /// The next message, waiting for one.
    pub async fn receive(&self) -> Result<Message, Error> {
        self.inner.receive().await
    }

    /// The next message, waiting at most `timeout` (`Ok(None)` if none came).
    pub async fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.inner.receive_timeout(timeout).await
    }

    /// The next message if one is queued.
    pub fn try_receive(&self) -> Result<Option<Message>, Error> {
        self.inner.try_receive()
    }

    /// Whether a message can be read without new publishes.
    pub async fn has_message_available(&self) -> Result<bool, Error> {
        self.inner.has_message_available().await
    }

    /// Moves the reader to a message id or a publish time.
    pub async fn seek(&self, to: SeekTo) -> Result<(), Error> {
        self.inner.seek(to).await
    }

    /// The last message id of every topic (partition).
    pub async fn last_message_ids(&self) -> Result<Vec<TopicMessageId>, Error> {
        self.inner.last_message_ids().await
    }

    /// Closes the reader.
    pub async fn close(self) -> Result<(), Error> {
        self.inner.close().await
    }

    /// The underlying consumer's state and counters.
    pub fn stats(&self) -> Option<ConsumerStats> {
        self.inner.stats()
    }
}

impl Stream for Reader {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl FusedStream for Reader {
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
