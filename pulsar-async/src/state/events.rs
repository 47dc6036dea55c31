//! The subscribers of client events (`ClientHandle::events`).

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use pulsar_core::Event;

use super::State;

/// What an [`events`](crate::ClientHandle::events) subscriber receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// An event of the core: connections opened and closed, producers and consumers
    /// reconnecting, reconnected, failed or closed, topics moved, the client closed, ...
    /// (everything except the per-message `SendCompleted`, the per-batch `SendsCompleted` and
    /// `MessagesAvailable`).
    Core(Event),
    /// The subscriber was too slow: this many events were dropped before the next one.
    Lagged {
        /// How many.
        missed: u64,
    },
}

#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) queue: VecDeque<ClientEvent>,
    pub(super) missed: u64,
    pub(super) waker: Option<Waker>,
}

impl State {
    pub(super) fn broadcast(&mut self, event: Event) {
        let cap = self.event_buffer;
        for s in self.subscribers.values_mut() {
            if s.queue.len() >= cap {
                s.queue.pop_front();
                s.missed += 1;
            }
            s.queue.push_back(ClientEvent::Core(event.clone()));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    // ---- events -----------------------------------------------------------------------------------

    pub(crate) fn subscribe_events(&mut self) -> u64 {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        let mut queue = VecDeque::new();
        if self.closed {
            queue.push_back(ClientEvent::Core(Event::ClientClosed));
        }
        self.subscribers.insert(
            id,
            Subscriber {
                queue,
                missed: 0,
                waker: None,
            },
        );
        id
    }

    /// The next event; `Ready(None)` after `ClientClosed` was delivered (or the driver stopped).
    pub(crate) fn poll_event(
        &mut self,
        id: u64,
        cx: Option<&Context<'_>>,
    ) -> Poll<Option<ClientEvent>> {
        let closed = self.closed || self.driver_done;
        let Some(s) = self.subscribers.get_mut(&id) else {
            return Poll::Ready(None);
        };
        if s.missed > 0 {
            let missed = std::mem::take(&mut s.missed);
            return Poll::Ready(Some(ClientEvent::Lagged { missed }));
        }
        if let Some(e) = s.queue.pop_front() {
            return Poll::Ready(Some(e));
        }
        if closed {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    pub(crate) fn unsubscribe_events(&mut self, id: u64) {
        self.subscribers.remove(&id);
    }
}
