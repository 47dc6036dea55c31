//! The state shared by the application handles and the I/O driver: the core behind one mutex,
//! the outputs waiting for the driver, and the tables of application-side waiters fed by the
//! core's events (quinn's arrangement).
//!
//! Every application command locks, calls the core, drains its outputs ([`State::after_app`]),
//! and wakes the driver only when it has something new to do (bytes to write, a connection to
//! open or close, an earlier deadline). The driver locks, feeds socket input and timeouts to the
//! core, and drains the same way. Events are dispatched to waiters under the lock; completion
//! callbacks run after it is released.
//!
//! This module holds the state itself and its driver side; the application side is split by
//! concern: [`producers`] and [`consumers`] (their operations and waiters), [`requests`]
//! (answers that come as events), [`events`] (client event subscribers), [`dispatch`] (the core's
//! events to the waiters), [`clock`] (one clock reading per burst of sends) and [`slots`] (what is
//! kept per producer and consumer).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pulsar_core::{ConsumerId, IoRequest, MessageId, ProducerId, RequestId, Resource, Transmit};

use crate::error::Error;
use crate::idmap::IdMap;
use crate::runtime::{AsyncTimer, TimeSource};
pub(crate) use crate::sends::SendCallback;
use crate::sends::SendSlot;

mod clock;
mod consumers;
mod dispatch;
mod events;
mod producers;
mod requests;
mod slots;
mod spans;

use clock::Clock;
pub use events::ClientEvent;
use events::Subscriber;
pub(crate) use requests::RequestResult;
use requests::RequestSlot;
use slots::*;
use spans::ConnectionSpans;

/// Sends an async application may queue while its driver task, woken, has not run yet; beyond
/// it a send waits for the driver (so that an application that never yields, on a
/// single-threaded runtime, cannot starve the driver of its turn).
const MAX_SENDS_AHEAD: u32 = 1024;

/// A send callback to run once the lock is released, with its outcome.
pub(crate) struct Deferred {
    callback: SendCallback,
    result: Result<MessageId, Error>,
}

impl Deferred {
    /// A call with no result (an interceptor's hook), to run outside the lock like a send's
    /// callback.
    pub(crate) fn task(f: impl FnOnce() + Send + 'static) -> Deferred {
        Deferred {
            callback: Box::new(move |_| f()),
            result: Ok(MessageId::EARLIEST),
        }
    }

    /// Runs the callback.
    pub(crate) fn run(self) {
        (self.callback)(self.result);
    }
}

/// How the application side wakes the I/O driver.
pub(crate) enum DriverWake {
    /// An async driver task: its waker, refreshed at each poll.
    Task(Option<Waker>),
    /// A driver thread: a function that signals it (never blocks).
    Callback(Box<dyn Fn() + Send + Sync>),
}

/// The shared state. See the [module documentation](self).
pub(crate) struct State {
    pub(crate) core: pulsar_core::Client,
    /// Connection requests taken from the core, for the driver.
    pub(crate) io: VecDeque<IoRequest>,
    /// Bytes taken from the core, for the driver (in order).
    pub(crate) transmits: VecDeque<Transmit>,
    /// The deadline the driver's timer is armed for.
    pub(crate) armed: Option<Instant>,
    /// The async driver's timer, kept here so that an application call can move it earlier
    /// without waking the driver task (see [`wake_if_deadline_earlier`](Self::wake_if_deadline_earlier)),
    /// and the deadline it is set to. `None` for a thread driver, which waits on its own.
    pub(crate) timer: Option<(std::pin::Pin<Box<dyn AsyncTimer>>, Instant)>,
    /// Bytes taken from the core and not yet written by the driver.
    pub(crate) unwritten: usize,
    max_unwritten: usize,
    wake: DriverWake,
    /// The driver is gone (finished after close, or its runtime stopped).
    pub(crate) driver_done: bool,
    /// The driver was woken and has not looked at the state since: it will (application
    /// calls need neither wake it again nor work out its next deadline).
    driver_pending: bool,
    /// Sends queued since the driver last ran (see [`MAX_SENDS_AHEAD`]).
    sends_ahead: u32,
    /// The clock of application calls (one reading per burst of sends).
    clock: Clock,
    /// The shortest client-wide delay a core timer runs for (operation, connection, backoff and
    /// keep-alive settings).
    client_quiet: Duration,
    /// The core reported `ClientClosed`.
    closed: bool,
    /// The application asked the client to close (or dropped its last handle): every operation
    /// from then on fails with `ClientClosed`.
    close_begun: bool,
    /// Boxed: the map's buckets (half of them empty after it grows) stay small.
    producers: IdMap<ProducerId, Box<ProducerSlot>>,
    consumers: IdMap<ConsumerId, ConsumerSlot>,
    requests: IdMap<RequestId, RequestSlot>,
    /// Senders waiting for room (queue full or write buffer full).
    room: Vec<Waker>,
    /// Waiters of `close()`.
    close_waiters: Vec<Waker>,
    subscribers: BTreeMap<u64, Subscriber>,
    next_subscriber: u64,
    event_buffer: usize,
    /// Callbacks to run once the lock is released.
    deferred: Vec<Deferred>,
    /// The lifecycle span of every connection, from the connect request to its close.
    connection_spans: ConnectionSpans,
    /// A thread driver's client: how long dropping the last handle waits for the close (see
    /// [`drop_wait`](Self::drop_wait)). `None` for async drivers: their drop never blocks.
    wait_on_drop: Option<Duration>,
    /// The thread driver's thread (a drop there must not wait for itself).
    driver_thread: Option<std::thread::ThreadId>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("unwritten", &self.unwritten)
            .field("producers", &self.producers.len())
            .field("consumers", &self.consumers.len())
            .field("closed", &self.closed)
            .field("driver_done", &self.driver_done)
            .finish_non_exhaustive()
    }
}

/// The state behind its mutex.
#[derive(Clone, Debug)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn new(state: State) -> Shared {
        Shared(Arc::new(Mutex::new(state)))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` under the lock, then the callbacks it queued, outside the lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let (out, deferred) = {
            let mut st = self.lock();
            let out = f(&mut st);
            let deferred = if st.deferred.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut st.deferred)
            };
            (out, deferred)
        };
        for callback in deferred {
            callback.run();
        }
        out
    }
}

impl State {
    /// The state of `core`, reading the time from `time`. `client_quiet` is the shortest of the
    /// client configuration's durations (operation and connection timeouts, initial backoff,
    /// keep-alive interval).
    pub(crate) fn new(
        core: pulsar_core::Client,
        time: TimeSource,
        max_unwritten: usize,
        event_buffer: usize,
        wake: DriverWake,
        client_quiet: Duration,
    ) -> State {
        let mut core = core;
        // One event per batch receipt (dispatched per send in `sends_completed`).
        core.set_batch_receipts(true);
        State {
            core,
            io: VecDeque::new(),
            transmits: VecDeque::new(),
            armed: None,
            timer: None,
            unwritten: 0,
            max_unwritten,
            wake,
            driver_done: false,
            driver_pending: false,
            sends_ahead: 0,
            clock: Clock::new(time),
            client_quiet,
            closed: false,
            close_begun: false,
            producers: IdMap::default(),
            consumers: IdMap::default(),
            requests: IdMap::default(),
            room: Vec::new(),
            close_waiters: Vec::new(),
            subscribers: BTreeMap::new(),
            next_subscriber: 0,
            event_buffer,
            deferred: Vec::new(),
            connection_spans: ConnectionSpans::default(),
            wait_on_drop: None,
            driver_thread: None,
        }
    }

    // ---- driver side ------------------------------------------------------------------------------

    /// Moves every output of the core: connection requests and bytes to the driver's queues,
    /// events to the waiters. Loops because dispatching may call the core again.
    pub(crate) fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(io) = self.core.poll_io() {
                if let IoRequest::Connect { conn, address } = &io {
                    self.connection_spans.connecting(*conn, address);
                }
                self.io.push_back(io);
                any = true;
            }
            while let Some(t) = self.core.poll_transmit() {
                self.unwritten += t.data.len();
                self.transmits.push_back(t);
                any = true;
            }
            while let Some(event) = self.core.poll_event() {
                self.dispatch(event);
                any = true;
            }
            if !any {
                break;
            }
        }
    }

    /// After an application command: drain, and wake the driver if it has new work.
    ///
    /// A driver already woken looks at everything (and works out its next deadline) when it
    /// runs, so the core's deadline is only asked for while the driver sleeps.
    pub(crate) fn after_app(&mut self) {
        if !self.drain_and_wake_for_work() {
            self.wake_if_deadline_earlier();
        }
    }

    /// Drains the core's outputs (even for a woken driver: the bytes taken count against the
    /// write buffer bound) and wakes the driver if it has new work (bytes, a connection, the
    /// client closing). True when nothing is left to decide: the driver is woken or will run.
    fn drain_and_wake_for_work(&mut self) -> bool {
        self.drain();
        if self.driver_pending {
            return true;
        }
        if !self.io.is_empty() || !self.transmits.is_empty() || self.core.is_closed() {
            self.wake_driver();
            return true;
        }
        false
    }

    /// After a send at `now` on a producer whose core timers start at least `quiet` after the
    /// send that starts them (a batch's delay, a send timeout, operation and connection timers):
    /// while the driver's timer is armed no later than `now + quiet`, the send cannot have made
    /// the core's deadline earlier than it, and the core is not asked.
    fn after_send(&mut self, now: Instant, quiet: Duration) {
        if self.drain_and_wake_for_work() {
            return;
        }
        let armed_soon = match (self.armed, now.checked_add(quiet)) {
            (Some(armed), Some(earliest)) => armed <= earliest,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !armed_soon {
            self.wake_if_deadline_earlier();
        }
    }

    /// Wakes the sleeping driver when the core's deadline is earlier than its timer.
    ///
    /// An async driver asleep on its timer is not woken: its timer is moved to the earlier
    /// deadline instead (the timer keeps the driver's waker and wakes it then). A send that
    /// opens a batch thus costs a timer update, not a run of the driver on its thread.
    fn wake_if_deadline_earlier(&mut self) {
        let earlier = match (self.core.poll_timeout(), self.armed) {
            (Some(d), Some(a)) if d < a => Some(d),
            (Some(d), None) => Some(d),
            _ => None,
        };
        let Some(deadline) = earlier else {
            return;
        };
        match (&mut self.timer, self.armed) {
            // `armed` is set only while the driver sleeps with its timer polled (registered) at
            // that deadline, or when it woke itself to run again.
            (Some((timer, at)), Some(_)) => {
                timer.as_mut().reset(deadline);
                *at = deadline;
                self.armed = Some(deadline);
            }
            _ => self.wake_driver(),
        }
    }

    /// A fresh clock reading for a core call made by the driver (the sends that follow reuse
    /// it, see [`Clock`]).
    pub(crate) fn now(&mut self) -> Instant {
        self.clock.now()
    }

    /// Where the client reads the time (for waits that hand nothing to the core).
    pub(crate) fn time_source(&self) -> &TimeSource {
        &self.clock.source
    }

    /// The driver is looking at the state now (under the lock): later application calls must
    /// wake it again, and senders held back for it may go on.
    pub(crate) fn driver_running(&mut self) {
        self.driver_pending = false;
        self.clock.reset();
        if self.sends_ahead >= MAX_SENDS_AHEAD {
            wake_all(&mut self.room);
        }
        self.sends_ahead = 0;
    }

    pub(crate) fn wake_driver(&mut self) {
        self.driver_pending = true;
        match &mut self.wake {
            DriverWake::Task(waker) => {
                if let Some(w) = waker.take() {
                    w.wake();
                }
            }
            DriverWake::Callback(f) => f(),
        }
    }

    /// The async driver's waker for [`wake_driver`](Self::wake_driver) (the driver is running:
    /// see [`driver_running`](Self::driver_running)).
    pub(crate) fn set_driver_waker(&mut self, waker: &Waker) {
        self.driver_running();
        if let DriverWake::Task(slot) = &mut self.wake {
            match slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    /// The driver wrote `n` bytes (or dropped them with their connection).
    pub(crate) fn wrote(&mut self, n: usize) {
        let was_full = self.unwritten > self.max_unwritten;
        self.unwritten = self.unwritten.saturating_sub(n);
        if was_full && self.unwritten <= self.max_unwritten {
            wake_all(&mut self.room);
        }
    }

    /// Moves the callbacks queued by dispatch into `out`, to run once the lock is released
    /// (both vectors keep their capacity).
    pub(crate) fn take_deferred(&mut self, out: &mut Vec<Deferred>) {
        if out.is_empty() {
            // Swapped, not copied: a round of receipts defers a callback per message, and both
            // vectors keep their capacity.
            std::mem::swap(out, &mut self.deferred);
        } else {
            out.append(&mut self.deferred);
        }
    }

    /// The driver is gone: everything waiting fails with [`Error::DriverStopped`].
    pub(crate) fn driver_stopped(&mut self) {
        self.driver_done = true;
        wake_all(&mut self.close_waiters);
        wake_all(&mut self.room);
        for p in self.producers.values_mut() {
            wake_all(&mut p.waiters);
            for (_, slot) in p.sends.iter_mut() {
                if let SendSlot::Waiting(Some(w)) = slot {
                    w.wake_by_ref();
                }
            }
            for callback in p.sends.take_callbacks() {
                self.deferred.push(Deferred {
                    callback,
                    result: Err(Error::DriverStopped),
                });
            }
        }
        for c in self.consumers.values_mut() {
            wake_all(&mut c.waiters);
        }
        for r in self.requests.values_mut() {
            if let Some(w) = r.waker.take() {
                w.wake();
            }
        }
        for s in self.subscribers.values_mut() {
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    /// Whether the core finished closing.
    pub(crate) fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    // ---- refusals -------------------------------------------------------------------------------

    /// Whether the client is closing or closed.
    pub(crate) fn client_closing(&self) -> bool {
        self.close_begun || self.closed
    }

    /// Why no operation can run on the client any more: it is closing or closed
    /// (`ClientClosed`), or its driver is gone (`DriverStopped`).
    fn client_refusal(&self) -> Option<Error> {
        if self.client_closing() {
            Some(pulsar_core::Error::ClientClosed.into())
        } else if self.driver_done {
            Some(Error::DriverStopped)
        } else {
            None
        }
    }

    /// Why an operation on consumer `id` cannot run: the client's refusal, else the consumer
    /// closed (`Closed`) or failed (its error).
    fn consumer_refusal(&self, id: ConsumerId) -> Option<Error> {
        if let Some(e) = self.client_refusal() {
            return Some(e);
        }
        match self.consumers.get(&id) {
            Some(c) => c.status.refusal(c.close_requested),
            None => Some(pulsar_core::Error::Closed.into()),
        }
    }

    /// Why an operation other than a send on producer `id` cannot run: the client's refusal,
    /// else the producer closed (`Closed`) or failed (its error).
    fn producer_refusal(&self, id: ProducerId) -> Option<Error> {
        if let Some(e) = self.client_refusal() {
            return Some(e);
        }
        match self.producers.get(&id) {
            Some(p) => p.status.refusal(p.close_requested),
            None => Some(pulsar_core::Error::Closed.into()),
        }
    }

    /// The refusal of an operation on `owner` (or on the client).
    fn refusal(&self, owner: Option<Resource>) -> Option<Error> {
        match owner {
            None => self.client_refusal(),
            Some(Resource::Consumer(id)) => self.consumer_refusal(id),
            Some(Resource::Producer(id)) => self.producer_refusal(id),
            // (`Resource` may grow: an operation on something else answers as the client does)
            Some(_) => self.client_refusal(),
        }
    }

    // ---- client -----------------------------------------------------------------------------------

    /// Messages held by the core's producers and not yet acknowledged by the broker, over every
    /// producer (what a client dropped now may lose). Counted per partition producer: a message
    /// sent before the producer knew its partitions (never the case through the application
    /// API, which waits for the producer to be ready) is not counted.
    pub(crate) fn unacknowledged_messages(&self) -> usize {
        self.core
            .stats()
            .producers
            .iter()
            .map(|p| p.pending_messages)
            .sum()
    }

    /// The same for one producer (every partition, and messages waiting for its partition count).
    pub(crate) fn unacknowledged_messages_of(&self, id: ProducerId) -> usize {
        self.core
            .producer_stats(id)
            .map_or(0, |s| s.pending_messages)
    }

    /// A thread driver's client waits, when its last handle is dropped, for the close to end
    /// (at most `bound`).
    pub(crate) fn set_wait_on_drop(&mut self, bound: Duration) {
        self.wait_on_drop = Some(bound);
    }

    /// The calling thread is the thread driver's (recorded once).
    pub(crate) fn note_driver_thread(&mut self) {
        if self.driver_thread.is_none() {
            self.driver_thread = Some(std::thread::current().id());
        }
    }

    /// How long dropping the last handle on this thread waits for the close: `None` for async
    /// drivers, on the driver's own thread, and once the driver is gone.
    pub(crate) fn drop_wait(&self) -> Option<Duration> {
        let bound = self.wait_on_drop?;
        let on_driver = self.driver_thread == Some(std::thread::current().id());
        (!on_driver && !self.driver_done).then_some(bound)
    }

    /// Switches the core to another service URL (see
    /// [`ClientHandle::set_service_url`](crate::ClientHandle::set_service_url)).
    pub(crate) fn set_service_url(&mut self, url: &str) -> Result<bool, pulsar_core::Error> {
        let now = self.clock.now();
        let changed = self.core.set_service_url(now, url)?;
        if changed {
            self.after_app();
            self.wake_driver();
        }
        Ok(changed)
    }

    pub(crate) fn begin_close(&mut self) {
        self.close_begun = true;
        let now = self.clock.now();
        self.core.close(now);
        self.after_app();
        self.wake_driver();
    }

    /// Ready once the driver finished (the close completed and the sockets are shut).
    pub(crate) fn poll_closed(&mut self, cx: &Context<'_>) -> Poll<()> {
        if self.driver_done {
            return Poll::Ready(());
        }
        add_waker(&mut self.close_waiters, cx);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
