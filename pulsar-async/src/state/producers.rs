//! The application side of producers: creation, sends and their receipts, close and drop.

use std::task::{Context, Poll};

use pulsar_core::{
    MessageId, OutgoingMessage, ProducerId, ProducerOptions, SendError, SendId, TxnId,
};

use super::slots::{
    add_waker, closed_error, is_backpressure, producer_quiet, ProducerSlot, Status,
};
use super::{DriverWake, State, MAX_SENDS_AHEAD};
use crate::error::Error;
use crate::interceptor::{Chain, ProducerInterceptor};
use crate::sends::{SendCallback, SendSlot, SendTable};

impl State {
    // ---- producers --------------------------------------------------------------------------------

    pub(crate) fn create_producer(
        &mut self,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<ProducerId, Error> {
        let quiet = producer_quiet(&options, self.client_quiet);
        let now = self.clock.now();
        let id = self.core.create_producer(now, topic, options)?;
        self.producers.insert(
            id,
            Box::new(ProducerSlot {
                status: Status::Creating,
                registered: None,
                waiters: Vec::new(),
                sends: SendTable::default(),
                quiet,
                close_requested: false,
                handle_alive: true,
                interceptors: None,
            }),
        );
        self.after_app();
        Ok(id)
    }

    /// Tells `chain` of every send of producer `id` that completes from now on.
    pub(crate) fn set_producer_interceptors(
        &mut self,
        id: ProducerId,
        chain: Chain<dyn ProducerInterceptor>,
        topic: &str,
    ) {
        if let Some(p) = self.producers.get_mut(&id) {
            p.interceptors = Some(Box::new((chain, topic.to_owned())));
        }
    }

    /// Ready with the producer's name and the broker's last sequence id once registered (handed
    /// over once: later polls get an empty name and `-1`).
    pub(crate) fn poll_producer_ready(
        &mut self,
        id: ProducerId,
        cx: &Context<'_>,
    ) -> Poll<Result<(String, i64), Error>> {
        let Some(p) = self.producers.get_mut(&id) else {
            return Poll::Ready(Err(pulsar_core::Error::UnknownProducer(id).into()));
        };
        match &p.status {
            Status::Ready => {
                Poll::Ready(Ok(p.registered.take().map_or((String::new(), -1), |r| *r)))
            }
            s @ (Status::Failed(_) | Status::Closed(_)) => Poll::Ready(Err(closed_error(s).into())),
            Status::Creating if self.driver_done => Poll::Ready(Err(Error::DriverStopped)),
            Status::Creating => {
                add_waker(&mut p.waiters, cx);
                Poll::Pending
            }
        }
    }

    /// Queues a message. `cx: None` never waits: a full queue fails with `QueueFull`.
    pub(crate) fn poll_enqueue(
        &mut self,
        id: ProducerId,
        message: &mut Option<OutgoingMessage>,
        callback: &mut Option<SendCallback>,
        want_receipt: bool,
        cx: Option<&Context<'_>>,
    ) -> Poll<Result<SendId, Error>> {
        self.poll_enqueue_in(id, message, callback, want_receipt, cx, None)
    }

    /// [`poll_enqueue`](Self::poll_enqueue) in transaction `txn`, when given.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll_enqueue_in(
        &mut self,
        id: ProducerId,
        message: &mut Option<OutgoingMessage>,
        callback: &mut Option<SendCallback>,
        want_receipt: bool,
        cx: Option<&Context<'_>>,
        txn: Option<TxnId>,
    ) -> Poll<Result<SendId, Error>> {
        if self.client_closing() {
            return Poll::Ready(Err(SendError::ClientClosed.into()));
        }
        let Some(p) = self.producers.get_mut(&id) else {
            return Poll::Ready(Err(SendError::UnknownProducer(id).into()));
        };
        if p.close_requested {
            return Poll::Ready(Err(SendError::ProducerClosed.into()));
        }
        if p.status.is_over() {
            return Poll::Ready(Err(match &p.status {
                Status::Failed(e) => SendError::Failed((**e).clone()).into(),
                _ => SendError::ProducerClosed.into(),
            }));
        }
        if self.driver_done {
            return Poll::Ready(Err(Error::DriverStopped));
        }
        if self.unwritten > self.max_unwritten {
            // The sockets are behind: the client's write buffer counts as a full queue.
            return self.wait_for_room(cx, SendError::QueueFull);
        }
        if self.driver_pending
            && self.sends_ahead >= MAX_SENDS_AHEAD
            && matches!(self.wake, DriverWake::Task(_))
        {
            // The driver task has not had its turn for a while: let it run first.
            if let Some(cx) = cx {
                add_waker(&mut self.room, cx);
                return Poll::Pending;
            }
        }
        let Some(msg) = message.take() else {
            return Poll::Ready(Err(Error::Missing("message")));
        };
        let now = self.clock.send_now();
        let sent = match txn {
            None => self.core.try_send(now, id, msg),
            Some(txn) => self.core.send_in_transaction(now, id, txn, msg),
        };
        match sent {
            Ok(send) => {
                if let Some(cb) = callback.take() {
                    p.sends.insert(send.get(), SendSlot::Callback(cb));
                } else if want_receipt {
                    p.sends.insert(send.get(), SendSlot::Waiting(None));
                }
                let quiet = p.quiet;
                self.sends_ahead = self.sends_ahead.saturating_add(1);
                self.after_send(now, quiet);
                Poll::Ready(Ok(send))
            }
            Err(refused) => {
                // A refused message comes back (unless its encoding failed): ours again, for a
                // retry once there is room.
                *message = refused.message;
                self.after_app();
                if is_backpressure(&refused.error) && message.is_some() {
                    self.wait_for_room(cx, refused.error)
                } else {
                    Poll::Ready(Err(refused.error.into()))
                }
            }
        }
    }

    /// Waits for room, or (not waiting) fails with `refusal` (`QueueFull` or `MemoryLimit`).
    pub(super) fn wait_for_room(
        &mut self,
        cx: Option<&Context<'_>>,
        refusal: SendError,
    ) -> Poll<Result<SendId, Error>> {
        match cx {
            Some(cx) => {
                add_waker(&mut self.room, cx);
                Poll::Pending
            }
            None => Poll::Ready(Err(refusal.into())),
        }
    }

    pub(crate) fn poll_receipt(
        &mut self,
        producer: ProducerId,
        send: SendId,
        cx: &Context<'_>,
    ) -> Poll<Result<MessageId, Error>> {
        let driver_done = self.driver_done;
        let Some(p) = self.producers.get_mut(&producer) else {
            // Polled after completion, or never registered.
            return Poll::Ready(Err(SendError::ProducerClosed.into()));
        };
        let ready = match p.sends.get_mut(send.get()) {
            Some(SendSlot::Done(_)) => match p.sends.remove(send.get()) {
                Some(SendSlot::Done(result)) => (*result).map_err(Error::Send),
                _ => Err(Error::DriverStopped),
            },
            Some(SendSlot::Waiting(waker)) => {
                if !driver_done {
                    match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                p.sends.remove(send.get());
                Err(Error::DriverStopped)
            }
            // Polled after completion, or never registered.
            Some(SendSlot::Callback(_)) | None => Err(SendError::ProducerClosed.into()),
        };
        self.forget_producer_if_finished(producer);
        Poll::Ready(ready)
    }

    pub(crate) fn drop_receipt(&mut self, producer: ProducerId, send: SendId) {
        if let Some(p) = self.producers.get_mut(&producer) {
            p.sends.remove(send.get());
        }
        self.forget_producer_if_finished(producer);
    }

    pub(crate) fn close_producer(&mut self, id: ProducerId) {
        let Some(p) = self.producers.get_mut(&id) else {
            return;
        };
        if p.close_requested || p.status.is_over() {
            return;
        }
        self.request_producer_close(id);
    }

    pub(super) fn request_producer_close(&mut self, id: ProducerId) {
        if let Some(p) = self.producers.get_mut(&id) {
            p.close_requested = true;
        }
        let now = self.clock.now();
        if let Err(e) = self.core.close_producer(now, id) {
            tracing::debug!(producer = id.get(), error = %e, "close_producer");
        }
        self.after_app();
    }

    pub(crate) fn poll_producer_closed(
        &mut self,
        id: ProducerId,
        cx: &Context<'_>,
    ) -> Poll<Result<(), Error>> {
        let driver_done = self.driver_done;
        let Some(p) = self.producers.get_mut(&id) else {
            return Poll::Ready(Ok(()));
        };
        match &p.status {
            Status::Closed(None) => Poll::Ready(Ok(())),
            Status::Closed(Some(e)) | Status::Failed(e) => Poll::Ready(Err((**e).clone().into())),
            _ if driver_done => Poll::Ready(Err(Error::DriverStopped)),
            _ => {
                add_waker(&mut p.waiters, cx);
                Poll::Pending
            }
        }
    }

    /// The application dropped its producer: close it on the broker (after its pending sends).
    pub(crate) fn producer_dropped(&mut self, id: ProducerId) {
        let Some(p) = self.producers.get_mut(&id) else {
            return;
        };
        p.handle_alive = false;
        if p.status.is_over() {
            self.forget_producer_if_finished(id);
            return;
        }
        if !p.close_requested {
            // The core flushes (sends what is batched, waits for the receipts) before closing.
            self.request_producer_close(id);
        }
    }
}
