//! Producer and consumer interceptors (the Java client's `ProducerInterceptor` and
//! `ConsumerInterceptor`): application code that sees, and may change, every message sent or
//! received, and learns the outcome of sends, acknowledgements and redeliveries.
//!
//! They cost nothing when none is set: a producer or consumer without interceptors checks one
//! `Option` per message and allocates nothing more (`benches/benches/interceptors.rs` counts the
//! allocations). Interceptors run on the application's task or thread, outside the client's
//! lock (a send's acknowledgement: where the receipt is handed over, usually the driver), so
//! they may call the client; keep them short.

use std::sync::Arc;

use pulsar_core::{Message, MessageId, OutgoingMessage, SendError};

use crate::error::Error;

/// Sees every message a producer sends, and the outcome of each send.
pub trait ProducerInterceptor: Send + Sync + 'static {
    /// Called with each message before it is queued; what it returns is sent. `topic` is the
    /// producer's topic.
    fn before_send(&self, topic: &str, message: OutgoingMessage) -> OutgoingMessage {
        let _ = topic;
        message
    }

    /// Called once per message that went through [`before_send`](Self::before_send), with the
    /// broker's receipt or the send's failure.
    fn on_send_acknowledgement(&self, topic: &str, result: Result<&MessageId, &SendError>) {
        let _ = (topic, result);
    }
}

/// Sees every message a consumer hands to the application, and its acknowledgements.
pub trait ConsumerInterceptor: Send + Sync + 'static {
    /// Called with each message before the application gets it; what it returns is handed over.
    fn before_consume(&self, message: Message) -> Message {
        message
    }

    /// Called after each acknowledgement by the application (cumulative ones included) with its
    /// outcome.
    fn on_acknowledge(&self, id: &MessageId, result: Result<(), &Error>) {
        let _ = (id, result);
    }

    /// Called when the application acknowledges a message negatively (the redelivery is asked
    /// after the negative acknowledgement delay).
    fn on_negative_acks_send(&self, ids: &[MessageId]) {
        let _ = ids;
    }

    /// Called when the ack timeout fired: `ids` were handed to the application and not
    /// acknowledged within `ack_timeout`, and the consumer is asking the broker to redeliver
    /// them. One id per entry (a batch once, with batch index `-1`, as Java's tracker keeps
    /// them); `topic` is the topic (partition) they came from. Runs outside the client's lock,
    /// usually on the I/O driver.
    fn on_ack_timeout_send(&self, topic: &str, ids: &[MessageId]) {
        let _ = (topic, ids);
    }
}

/// Interceptors in the order they were added (shared by a handle and the client's state).
pub(crate) struct Chain<T: ?Sized>(pub(crate) Arc<[Arc<T>]>);

impl<T: ?Sized> Clone for Chain<T> {
    fn clone(&self) -> Self {
        Chain(self.0.clone())
    }
}

impl<T: ?Sized> std::fmt::Debug for Chain<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} interceptor(s)", self.0.len())
    }
}

impl<T: ?Sized> Chain<T> {
    /// `chain` (if any) followed by `last`.
    pub(crate) fn append(chain: Option<Chain<T>>, last: Arc<T>) -> Chain<T> {
        let mut list: Vec<Arc<T>> = chain.map(|c| c.0.to_vec()).unwrap_or_default();
        list.push(last);
        Chain(list.into())
    }
}

impl Chain<dyn ProducerInterceptor> {
    /// `message` through every interceptor's `before_send`.
    pub(crate) fn before_send(&self, topic: &str, mut message: OutgoingMessage) -> OutgoingMessage {
        for i in self.0.iter() {
            message = i.before_send(topic, message);
        }
        message
    }

    /// Every interceptor's `on_send_acknowledgement`.
    pub(crate) fn on_send_acknowledgement(&self, topic: &str, result: &Result<MessageId, Error>) {
        for i in self.0.iter() {
            match result {
                Ok(id) => i.on_send_acknowledgement(topic, Ok(id)),
                Err(Error::Send(e)) => i.on_send_acknowledgement(topic, Err(e)),
                Err(_) => i.on_send_acknowledgement(topic, Err(&SendError::ProducerClosed)),
            }
        }
    }
}

impl Chain<dyn ConsumerInterceptor> {
    /// `message` through every interceptor's `before_consume`.
    pub(crate) fn before_consume(&self, mut message: Message) -> Message {
        for i in self.0.iter() {
            message = i.before_consume(message);
        }
        message
    }

    /// Every interceptor's `on_acknowledge`.
    pub(crate) fn on_acknowledge(&self, id: &MessageId, result: &Result<(), Error>) {
        for i in self.0.iter() {
            i.on_acknowledge(id, result.as_ref().map(|_| ()));
        }
    }

    /// Every interceptor's `on_negative_acks_send`.
    pub(crate) fn on_negative_acks_send(&self, ids: &[MessageId]) {
        for i in self.0.iter() {
            i.on_negative_acks_send(ids);
        }
    }

    /// Every interceptor's `on_ack_timeout_send`.
    pub(crate) fn on_ack_timeout_send(&self, topic: &str, ids: &[MessageId]) {
        for i in self.0.iter() {
            i.on_ack_timeout_send(topic, ids);
        }
    }
}
