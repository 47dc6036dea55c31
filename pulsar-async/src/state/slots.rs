//! What the state keeps per producer and consumer, and the small helpers of its waiter lists.

use std::task::{Context, Waker};
use std::time::Duration;

use pulsar_core::{ProducerOptions, SendError};

use crate::error::Error;
use crate::interceptor::{Chain, ConsumerInterceptor, ProducerInterceptor};
use crate::sends::SendTable;

/// The life of a producer or consumer, as the application sees it (errors boxed: rare, and
/// every idle producer and consumer carries a status).
#[derive(Debug, Clone)]
pub(super) enum Status {
    Creating,
    Ready,
    Failed(Box<pulsar_core::Error>),
    Closed(Option<Box<pulsar_core::Error>>),
}

impl Status {
    pub(super) fn is_over(&self) -> bool {
        matches!(self, Status::Failed(_) | Status::Closed(_))
    }

    /// Why an operation on a producer or consumer in this state cannot run: it failed (its
    /// error), or it is closed or closing (`Closed`).
    pub(super) fn refusal(&self, close_requested: bool) -> Option<Error> {
        match self {
            Status::Failed(e) => Some((**e).clone().into()),
            Status::Closed(_) => Some(pulsar_core::Error::Closed.into()),
            _ if close_requested => Some(pulsar_core::Error::Closed.into()),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(super) struct ProducerSlot {
    pub(super) status: Status,
    /// The producer name and the broker's last sequence id, from its registration until
    /// `create` takes them.
    pub(super) registered: Option<Box<(String, i64)>>,
    /// Creation, flush and close waiters.
    pub(super) waiters: Vec<Waker>,
    /// The waiters of its sends (receipts and callbacks), in send order.
    pub(super) sends: SendTable,
    /// No timer a send of this producer starts in the core fires sooner than this after the
    /// send (see [`State::after_send`](super::State::after_send)).
    pub(super) quiet: Duration,
    pub(super) close_requested: bool,
    pub(super) handle_alive: bool,
    /// The producer's interceptors and topic (told of every completed send), if any.
    pub(super) interceptors: Option<Box<(Chain<dyn ProducerInterceptor>, String)>>,
}

impl ProducerSlot {
    /// Whether the slot can go: the handle is gone, the producer is over and no receipt waits.
    pub(super) fn is_finished(&self) -> bool {
        !self.handle_alive && self.status.is_over() && self.sends.is_empty()
    }
}

#[derive(Debug)]
pub(super) struct ConsumerSlot {
    pub(super) status: Status,
    /// Creation, receive and close waiters.
    pub(super) waiters: Vec<Waker>,
    pub(super) close_requested: bool,
    pub(super) handle_alive: bool,
    /// The consumer's interceptors (told of its ack-timeout redeliveries), if any; boxed, as
    /// most consumers have none.
    pub(super) interceptors: Option<Box<Chain<dyn ConsumerInterceptor>>>,
}

pub(super) fn add_waker(list: &mut Vec<Waker>, cx: &Context<'_>) {
    if !list.iter().any(|w| w.will_wake(cx.waker())) {
        list.push(cx.waker().clone());
    }
}

pub(super) fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

pub(super) fn closed_error(status: &Status) -> pulsar_core::Error {
    match status {
        Status::Failed(e) | Status::Closed(Some(e)) => (**e).clone(),
        _ => pulsar_core::Error::Closed,
    }
}

/// The shortest delay of a core timer that a send of a producer with `options` can start: its
/// batch delay, its send timeout, and the client's own timers (`client_quiet`). Zero durations
/// (a batch sent at once, no send timeout) do not count, except a zero batch delay with
/// batching on, which starts no timer but is kept as zero to stay on the safe side.
pub(super) fn producer_quiet(options: &ProducerOptions, client_quiet: Duration) -> Duration {
    let mut quiet = client_quiet;
    if options.batching.enabled {
        quiet = quiet.min(options.batching.max_delay);
    }
    if !options.send_timeout.is_zero() {
        quiet = quiet.min(options.send_timeout);
    }
    quiet
}

/// Whether a send refusal means "no room now, retry after a completion".
pub(super) fn is_backpressure(e: &SendError) -> bool {
    matches!(e, SendError::QueueFull | SendError::MemoryLimit { .. })
}
