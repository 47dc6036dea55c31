//! Requests whose answer comes as a core event (lookups, flushes, seeks, ...).

use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pulsar_core::{
    LookupResult, RequestId, Resource, SchemaVersion, TopicMessageId, VersionedSchema,
};

use super::State;
use crate::error::Error;

/// Answers to requests (client-level, producer flushes, consumer operations).
#[derive(Debug)]
pub(crate) enum RequestResult {
    Lookup(Result<LookupResult, pulsar_core::Error>),
    Partitions(Result<u32, pulsar_core::Error>),
    Topics(Result<Vec<String>, pulsar_core::Error>),
    /// Flush, ack receipt, reconsume, seek, unsubscribe: done or why not.
    Done(Result<(), pulsar_core::Error>),
    LastIds(Result<Vec<TopicMessageId>, pulsar_core::Error>),
    HasMessage(Result<bool, pulsar_core::Error>),
    /// A new transaction.
    Txn(Result<pulsar_core::TxnId, pulsar_core::Error>),
    Schema(Result<Option<VersionedSchema>, pulsar_core::Error>),
    SchemaVersion(Result<SchemaVersion, pulsar_core::Error>),
}

#[derive(Debug, Default)]
pub(super) struct RequestSlot {
    pub(super) result: Option<RequestResult>,
    pub(super) waker: Option<Waker>,
    /// The producer or consumer the request is about: its end fails the request.
    pub(super) owner: Option<Resource>,
}

impl State {
    // ---- client-level requests --------------------------------------------------------------------

    /// Starts a request whose answer comes as an event; `owner`'s end fails it. Refused when
    /// the client or `owner` is closed (see [`refusal`](Self::refusal)).
    pub(crate) fn start_request(
        &mut self,
        owner: Option<Resource>,
        f: impl FnOnce(&mut pulsar_core::Client, Instant) -> Result<RequestId, pulsar_core::Error>,
    ) -> Result<RequestId, Error> {
        if let Some(e) = self.refusal(owner) {
            return Err(e);
        }
        let now = self.clock.now();
        let id = f(&mut self.core, now)?;
        self.requests.insert(
            id,
            RequestSlot {
                owner,
                ..RequestSlot::default()
            },
        );
        self.after_app();
        Ok(id)
    }

    pub(crate) fn poll_request(
        &mut self,
        id: RequestId,
        cx: &Context<'_>,
    ) -> Poll<Result<RequestResult, Error>> {
        let driver_done = self.driver_done;
        let Some(slot) = self.requests.get_mut(&id) else {
            return Poll::Ready(Err(Error::DriverStopped));
        };
        if slot.result.is_some() {
            return match self.requests.remove(&id).and_then(|s| s.result) {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Ready(Err(Error::DriverStopped)),
            };
        }
        if driver_done {
            self.requests.remove(&id);
            return Poll::Ready(Err(Error::DriverStopped));
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn drop_request(&mut self, id: RequestId) {
        self.requests.remove(&id);
    }
}
