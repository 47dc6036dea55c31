//! The application side of consumers: creation, receiving, commands, close and drop.

use std::task::{Context, Poll};
use std::time::Instant;

use pulsar_core::{ConsumerId, Message};

use super::slots::{add_waker, closed_error, wake_all, ConsumerSlot, Status};
use super::State;
use crate::error::Error;
use crate::interceptor::{Chain, ConsumerInterceptor};

impl State {
    // ---- consumers --------------------------------------------------------------------------------

    /// Registers a consumer created by `f` (subscribe, subscribe_topics, subscribe_pattern,
    /// create_reader).
    pub(crate) fn subscribe(
        &mut self,
        f: impl FnOnce(&mut pulsar_core::Client, Instant) -> Result<ConsumerId, pulsar_core::Error>,
    ) -> Result<ConsumerId, Error> {
        let now = self.clock.now();
        let id = f(&mut self.core, now)?;
        self.consumers.insert(
            id,
            ConsumerSlot {
                status: Status::Creating,
                waiters: Vec::new(),
                close_requested: false,
                handle_alive: true,
                interceptors: None,
            },
        );
        self.after_app();
        Ok(id)
    }

    /// Tells `chain` of the ack-timeout redeliveries of consumer `id` (reported by the core
    /// when the consumer was created with `report_ack_timeouts`).
    pub(crate) fn set_consumer_interceptors(
        &mut self,
        id: ConsumerId,
        chain: Chain<dyn ConsumerInterceptor>,
    ) {
        if let Some(c) = self.consumers.get_mut(&id) {
            c.interceptors = Some(Box::new(chain));
        }
    }

    pub(crate) fn poll_consumer_ready(
        &mut self,
        id: ConsumerId,
        cx: &Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let driver_done = self.driver_done;
        let Some(c) = self.consumers.get_mut(&id) else {
            return Poll::Ready(Err(pulsar_core::Error::UnknownConsumer(id).into()));
        };
        match &c.status {
            Status::Ready => Poll::Ready(Ok(())),
            s @ (Status::Failed(_) | Status::Closed(_)) => Poll::Ready(Err(closed_error(s).into())),
            Status::Creating if driver_done => Poll::Ready(Err(Error::DriverStopped)),
            Status::Creating => {
                add_waker(&mut c.waiters, cx);
                Poll::Pending
            }
        }
    }

    /// The next message; `Ready(Ok(None))` when the consumer is closed (normally),
    /// `Ready(Err(ClientClosed))` once the client is closing. `cx: None`
    /// never waits (`Ready(Err(..))` never comes from an empty queue then: `Pending` does).
    pub(crate) fn poll_receive(
        &mut self,
        id: ConsumerId,
        cx: Option<&Context<'_>>,
    ) -> Poll<Result<Option<Message>, Error>> {
        if self.client_closing() {
            return Poll::Ready(Err(pulsar_core::Error::ClientClosed.into()));
        }
        let now = self.clock.now();
        let message = self.core.receive(now, id);
        // (A zero-size queue asks the broker for a message on an empty receive.)
        self.after_app();
        if let Some(m) = message {
            return Poll::Ready(Ok(Some(m)));
        }
        match self.poll_receive_status(id, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(None)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next message, as [`Consumer::receive`](crate::Consumer::receive) answers: a closed
    /// consumer is an error.
    pub(crate) fn poll_next_message(
        &mut self,
        id: ConsumerId,
        cx: &Context<'_>,
    ) -> Poll<Result<Message, Error>> {
        if self.client_closing() {
            return Poll::Ready(Err(pulsar_core::Error::ClientClosed.into()));
        }
        let now = self.clock.now();
        if let Some(m) = self.core.receive(now, id) {
            self.after_app();
            return Poll::Ready(Ok(m));
        }
        // (A zero-size queue asks the broker for a message on an empty receive.)
        self.after_app();
        match self.poll_receive_status(id, Some(cx)) {
            Poll::Ready(Ok(())) => Poll::Ready(Err(Error::Client(pulsar_core::Error::Closed))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// With an empty queue: `Ready(Ok(()))` when the consumer ended normally (closed), an error
    /// when it failed, `Pending` (waker registered) while messages may still come.
    pub(super) fn poll_receive_status(
        &mut self,
        id: ConsumerId,
        cx: Option<&Context<'_>>,
    ) -> Poll<Result<(), Error>> {
        let driver_done = self.driver_done;
        let Some(c) = self.consumers.get_mut(&id) else {
            return Poll::Ready(Ok(()));
        };
        match &c.status {
            Status::Closed(None) => Poll::Ready(Ok(())),
            Status::Closed(Some(e)) | Status::Failed(e) => Poll::Ready(Err((**e).clone().into())),
            _ if c.close_requested => Poll::Ready(Ok(())),
            _ if driver_done => Poll::Ready(Err(Error::DriverStopped)),
            _ => {
                if let Some(cx) = cx {
                    add_waker(&mut c.waiters, cx);
                }
                Poll::Pending
            }
        }
    }

    /// Runs a command of the core on consumer `id` that answers at once (refused when the
    /// client or the consumer is closed: see [`consumer_refusal`](Self::consumer_refusal)).
    pub(crate) fn consumer_command<T>(
        &mut self,
        id: ConsumerId,
        f: impl FnOnce(&mut pulsar_core::Client, Instant) -> Result<T, pulsar_core::Error>,
    ) -> Result<T, Error> {
        if let Some(e) = self.consumer_refusal(id) {
            return Err(e);
        }
        let now = self.clock.now();
        let r = f(&mut self.core, now);
        self.after_app();
        r.map_err(Error::from)
    }

    /// Takes up to `max_messages` queued messages (at most `max_bytes` of payload, at least one);
    /// waits (`Pending`) while none is queued. `Ready(Ok(empty))` once the consumer is closed.
    pub(crate) fn poll_receive_batch(
        &mut self,
        id: ConsumerId,
        max_messages: usize,
        max_bytes: usize,
        cx: Option<&Context<'_>>,
    ) -> Poll<Result<Vec<Message>, Error>> {
        if self.client_closing() {
            return Poll::Ready(Err(pulsar_core::Error::ClientClosed.into()));
        }
        let now = self.clock.now();
        let batch = self
            .core
            .receive_batch(now, id, max_messages.max(1), max_bytes);
        self.after_app();
        if !batch.is_empty() {
            return Poll::Ready(Ok(batch));
        }
        match self.poll_receive_status(id, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Vec::new())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// `Ready` once the receiver queue holds a full batch by `policy`, or the consumer ended
    /// (`Ok` while messages are still queued); otherwise waits for the queue to grow.
    pub(crate) fn poll_batch_ready(
        &mut self,
        id: ConsumerId,
        policy: &pulsar_core::BatchReceivePolicy,
        cx: &Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if self.client_closing() {
            return Poll::Ready(Err(pulsar_core::Error::ClientClosed.into()));
        }
        let (messages, bytes) = self.core.receiver_queue(id).unwrap_or((0, 0));
        if policy.is_full(messages, bytes) {
            return Poll::Ready(Ok(()));
        }
        match self.poll_receive_status(id, Some(cx)) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) if messages > 0 => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                // the next message queued wakes the waiters even though the queue is not empty
                self.core.watch_receiver_queue(id);
                Poll::Pending
            }
        }
    }

    pub(crate) fn close_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        if c.close_requested || c.status.is_over() {
            return;
        }
        c.close_requested = true;
        wake_all(&mut c.waiters);
        let now = self.clock.now();
        if let Err(e) = self.core.close_consumer(now, id) {
            tracing::debug!(consumer = id.get(), error = %e, "close_consumer");
        }
        self.after_app();
    }

    pub(crate) fn poll_consumer_closed(
        &mut self,
        id: ConsumerId,
        cx: &Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let driver_done = self.driver_done;
        let Some(c) = self.consumers.get_mut(&id) else {
            return Poll::Ready(Ok(()));
        };
        match &c.status {
            Status::Closed(None) => Poll::Ready(Ok(())),
            Status::Closed(Some(e)) | Status::Failed(e) => Poll::Ready(Err((**e).clone().into())),
            _ if driver_done => Poll::Ready(Err(Error::DriverStopped)),
            _ => {
                add_waker(&mut c.waiters, cx);
                Poll::Pending
            }
        }
    }

    pub(crate) fn consumer_dropped(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        c.handle_alive = false;
        if c.status.is_over() {
            self.consumers.remove(&id);
        } else {
            self.close_consumer(id);
        }
    }
}
