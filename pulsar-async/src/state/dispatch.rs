//! Dispatching the core's events to the application's waiters.

use std::sync::Arc;

use pulsar_core::{
    ConsumerId, Event, MessageId, ProducerId, RequestId, Resource, SendError, SendId,
};

use super::requests::RequestResult;
use super::slots::{wake_all, ProducerSlot, Status};
use super::{Deferred, State};
use crate::error::Error;
use crate::interceptor::{Chain, ProducerInterceptor};
use crate::sends::Completion;

impl State {
    // ---- event dispatch ---------------------------------------------------------------------------

    pub(super) fn dispatch(&mut self, event: Event) {
        match event {
            Event::SendCompleted {
                producer,
                send,
                result,
                ..
            } => {
                self.send_completed(producer, send, result);
                return;
            }
            e @ Event::SendsCompleted { .. } => return self.sends_completed(e),
            Event::MessagesAvailable { consumer, .. } => {
                if let Some(c) = self.consumers.get_mut(&consumer) {
                    wake_all(&mut c.waiters);
                }
                return;
            }
            _ => {}
        }
        match &event {
            Event::ProducerReady {
                producer,
                name,
                last_sequence_id,
                ..
            } => {
                if let Some(p) = self.producers.get_mut(producer) {
                    p.status = Status::Ready;
                    p.registered = Some(Box::new((name.clone(), *last_sequence_id)));
                    wake_all(&mut p.waiters);
                }
            }
            Event::ProducerFailed {
                producer, error, ..
            } => {
                self.producer_over(*producer, Status::Failed(Box::new(error.clone())));
            }
            Event::ProducerClosed {
                producer, error, ..
            } => {
                self.producer_over(*producer, Status::Closed(error.clone().map(Box::new)));
            }
            Event::ConsumerReady { consumer, .. } => {
                if let Some(c) = self.consumers.get_mut(consumer) {
                    c.status = Status::Ready;
                    wake_all(&mut c.waiters);
                }
            }
            Event::ConsumerFailed {
                consumer, error, ..
            } => {
                self.consumer_over(*consumer, Status::Failed(Box::new(error.clone())));
            }
            Event::ConsumerClosed {
                consumer, error, ..
            } => {
                self.consumer_over(*consumer, Status::Closed(error.clone().map(Box::new)));
            }
            Event::LookupCompleted {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Lookup(result.clone()));
            }
            Event::PartitionedMetadata {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Partitions(result.clone()));
            }
            Event::TopicsOfNamespace {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Topics(result.clone()));
            }
            Event::SchemaFetched {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Schema(result.clone()));
            }
            Event::SchemaCreated {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::SchemaVersion(result.clone()));
            }
            Event::FlushCompleted { request, .. } => {
                self.request_done(*request, RequestResult::Done(Ok(())));
                return;
            }
            Event::ProducerHasRoom { .. } => {
                wake_all(&mut self.room);
                return;
            }
            Event::AckCompleted {
                request, result, ..
            }
            | Event::ReconsumeCompleted {
                request, result, ..
            }
            | Event::SeekCompleted {
                request, result, ..
            }
            | Event::Unsubscribed {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Done(result.clone()));
            }
            Event::TransactionOpened { request, result } => {
                self.request_done(*request, RequestResult::Txn(result.clone()));
            }
            Event::TransactionEnded {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::Done(result.clone()));
            }
            Event::LastMessageIds {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::LastIds(result.clone()));
            }
            Event::HasMessageAvailable {
                request, result, ..
            } => {
                self.request_done(*request, RequestResult::HasMessage(result.clone()));
            }
            Event::AckTimeoutRedelivery {
                consumer,
                topic,
                ids,
            } => self.ack_timeout_redelivery(*consumer, topic, ids),
            Event::ClientClosed => {
                self.closed = true;
                wake_all(&mut self.close_waiters);
                wake_all(&mut self.room);
            }
            Event::ConnectionOpened { conn, .. } => self.connection_spans.opened(*conn),
            Event::ConnectionClosed { conn, reason, .. } => {
                self.connection_spans.closed(*conn, reason);
            }
            Event::ProducerReconnecting {
                producer, reason, ..
            } => {
                tracing::info!(producer = producer.get(), %reason, "producer reconnecting");
            }
            Event::ConsumerReconnecting {
                consumer, reason, ..
            } => {
                tracing::info!(consumer = consumer.get(), %reason, "consumer reconnecting");
            }
            _ => {}
        }
        self.broadcast(event);
    }

    /// Tells the consumer's interceptors (if any) of an ack-timeout redelivery, outside the lock.
    fn ack_timeout_redelivery(
        &mut self,
        consumer: ConsumerId,
        topic: &Arc<str>,
        ids: &[MessageId],
    ) {
        let Some(c) = self.consumers.get(&consumer) else {
            return;
        };
        if let Some(chain) = c.interceptors.as_deref() {
            let (chain, topic, ids) = (chain.clone(), topic.clone(), ids.to_vec());
            self.deferred.push(Deferred::task(move || {
                chain.on_ack_timeout_send(&topic, &ids)
            }));
        }
    }

    pub(super) fn send_completed(
        &mut self,
        producer: ProducerId,
        send: SendId,
        result: Result<MessageId, SendError>,
    ) {
        if let Some(p) = self.producers.get_mut(&producer) {
            complete_send(p, &mut self.deferred, send, result);
            if p.is_finished() {
                self.producers.remove(&producer);
            }
        }
        if !self.room.is_empty() {
            wake_all(&mut self.room);
        }
    }

    /// Every send of a batch stored as `batch` completed (the core's range receipt): each
    /// send's waiter completes as for [`send_completed`](Self::send_completed), with its own id
    /// in the batch, after one look-up of the producer.
    pub(super) fn sends_completed(&mut self, event: Event) {
        let Event::SendsCompleted {
            producer,
            batch,
            sends,
            ..
        } = event
        else {
            return;
        };
        if let Some(p) = self.producers.get_mut(&producer) {
            let n = sends.len();
            for (i, send) in sends.iter().enumerate() {
                complete_send(p, &mut self.deferred, *send, Ok(batch.in_batch(i, n)));
            }
            if p.is_finished() {
                self.producers.remove(&producer);
            }
        }
        if !self.room.is_empty() {
            wake_all(&mut self.room);
        }
    }

    pub(super) fn producer_over(&mut self, id: ProducerId, status: Status) {
        let Some(p) = self.producers.get_mut(&id) else {
            return;
        };
        p.status = status;
        wake_all(&mut p.waiters);
        // The core completes pending sends when a producer goes away; fail any it did not.
        for send in p.sends.uncompleted() {
            if let Some(p) = self.producers.get_mut(&id) {
                if let Some(chain) = &p.interceptors {
                    self.deferred
                        .push(intercepted(chain, &Err(SendError::ProducerClosed)));
                }
                match p.sends.complete(send, Err(SendError::ProducerClosed)) {
                    Completion::Wake(Some(w)) => w.wake(),
                    Completion::Call(callback, result) => self.deferred.push(Deferred {
                        callback,
                        result: result.map_err(Error::Send),
                    }),
                    Completion::Wake(None) | Completion::Nobody => {}
                }
            }
        }
        wake_all(&mut self.room);
        self.fail_requests_of(Resource::Producer(id));
        self.forget_producer_if_finished(id);
    }

    /// Drops the slot of a producer whose handle is gone, that is over, and whose receipts were
    /// all taken.
    pub(super) fn forget_producer_if_finished(&mut self, id: ProducerId) {
        if self.producers.get(&id).is_some_and(|p| p.is_finished()) {
            self.producers.remove(&id);
        }
    }

    pub(super) fn consumer_over(&mut self, id: ConsumerId, status: Status) {
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        c.status = status;
        wake_all(&mut c.waiters);
        let alive = c.handle_alive;
        self.fail_requests_of(Resource::Consumer(id));
        if !alive {
            self.consumers.remove(&id);
        }
    }

    /// A producer or consumer ended: its requests without an answer fail.
    pub(super) fn fail_requests_of(&mut self, owner: Resource) {
        for slot in self.requests.values_mut() {
            if slot.owner == Some(owner) && slot.result.is_none() {
                slot.result = Some(RequestResult::Done(Err(pulsar_core::Error::Closed)));
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
    }

    pub(super) fn request_done(&mut self, id: RequestId, result: RequestResult) {
        if let Some(slot) = self.requests.get_mut(&id) {
            slot.result = Some(result);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }
}

/// Completes the waiter of `send` of producer `p` with `result`: wakes its receipt future, or
/// queues its callback (and the interceptors') in `deferred`.
#[inline]
fn complete_send(
    p: &mut ProducerSlot,
    deferred: &mut Vec<Deferred>,
    send: SendId,
    result: Result<MessageId, SendError>,
) {
    if let Some(chain) = &p.interceptors {
        deferred.push(intercepted(chain, &result));
    }
    match p.sends.complete(send.get(), result) {
        Completion::Wake(waker) => {
            if let Some(w) = waker {
                w.wake();
            }
        }
        Completion::Call(callback, result) => deferred.push(Deferred {
            callback,
            result: result.map_err(Error::Send),
        }),
        Completion::Nobody => {}
    }
}

/// The interceptors' `on_send_acknowledgement` for one completed send, to run outside the lock.
fn intercepted(
    chain: &(Chain<dyn ProducerInterceptor>, String),
    result: &Result<MessageId, SendError>,
) -> Deferred {
    let (chain, topic) = (chain.0.clone(), chain.1.clone());
    Deferred {
        callback: Box::new(move |r| chain.on_send_acknowledgement(&topic, &r)),
        result: result.clone().map_err(Error::Send),
    }
}
