//! Consumers: builder, receive (future and `Stream`), acknowledgements, close.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::poll_fn;
use futures::Stream;
use pulsar_core::{
    ConsumerId, ConsumerOptions, ConsumerStats, InitialPosition, Message, MessageId,
    SubscriptionType,
};

use crate::client::ClientHandle;
use crate::error::Error;

/// Builds a [`Consumer`]. Every option of the core's [`ConsumerOptions`] is reachable through
/// [`options`](Self::options) or [`configure`](Self::configure); the common ones have setters.
#[derive(Debug)]
#[must_use]
pub struct ConsumerBuilder {
    client: ClientHandle,
    topic: String,
    options: ConsumerOptions,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: ClientHandle, topic: String) -> Self {
        ConsumerBuilder {
            client,
            topic,
            options: ConsumerOptions::new(""),
        }
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

    /// Receiver queue size: how many messages the broker may push ahead of the application.
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

    /// Replaces all core options (including the subscription name).
    pub fn options(mut self, options: ConsumerOptions) -> Self {
        self.options = options;
        self
    }

    /// Changes any core option: `.configure(|o| o.receiver_queue_size = 10)`.
    pub fn configure(mut self, f: impl FnOnce(&mut ConsumerOptions)) -> Self {
        f(&mut self.options);
        self
    }

    /// Subscribes and waits until the broker registered the consumer.
    pub async fn subscribe(self) -> Result<Consumer, Error> {
        let ConsumerBuilder {
            client,
            topic,
            options,
        } = self;
        if options.subscription.is_empty() {
            return Err(Error::Missing("subscription"));
        }
        let subscription = options.subscription.clone();
        let id = client.shared().with(|st| st.subscribe(&topic, options))?;
        // From here on, dropping (cancelling) closes it.
        let consumer = Consumer {
            client,
            id,
            topic,
            subscription,
            finished: false,
        };
        poll_fn(|cx| {
            consumer
                .client
                .shared()
                .with(|st| st.poll_consumer_ready(id, cx))
        })
        .await?;
        tracing::debug!(consumer = id.get(), topic = %consumer.topic, "consumer ready");
        Ok(consumer)
    }
}

/// A consumer: a [`Stream`] of messages (ending when the consumer is closed), plus
/// [`receive`](Self::receive), acknowledgements and close. Dropping it closes it on the broker.
#[derive(Debug)]
pub struct Consumer {
    client: ClientHandle,
    id: ConsumerId,
    topic: String,
    subscription: String,
    /// The stream ended (closed, failed, or the driver stopped).
    finished: bool,
}

impl Consumer {
    /// The core's handle.
    pub fn id(&self) -> ConsumerId {
        self.id
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The subscription.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The next message, waiting for one. Fails once the consumer is closed or failed.
    pub async fn receive(&self) -> Result<Message, Error> {
        poll_fn(|cx| {
            self.client
                .shared()
                .with(|st| st.poll_receive(self.id, Some(cx)))
        })
        .await?
        .ok_or(Error::Client(pulsar_core::Error::Closed))
    }

    /// The next message if one is queued, without waiting.
    pub fn try_receive(&self) -> Result<Option<Message>, Error> {
        match self
            .client
            .shared()
            .with(|st| st.poll_receive(self.id, None))
        {
            Poll::Ready(Ok(Some(m))) => Ok(Some(m)),
            Poll::Ready(Ok(None)) => Err(Error::Client(pulsar_core::Error::Closed)),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }

    /// Acknowledges a message.
    pub fn ack(&self, message: &Message) -> Result<(), Error> {
        self.ack_id(&message.id)
    }

    /// Acknowledges a message by id.
    pub fn ack_id(&self, id: &MessageId) -> Result<(), Error> {
        self.client.shared().with(|st| st.ack(self.id, id))
    }

    /// Closes the consumer on the broker and waits for the answer.
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
            Poll::Ready(Ok(Some(m))) => Poll::Ready(Some(Ok(m))),
            Poll::Ready(Ok(None)) => {
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

impl Drop for Consumer {
    fn drop(&mut self) {
        let id = self.id;
        self.client.shared().with(|st| st.consumer_dropped(id));
    }
}
