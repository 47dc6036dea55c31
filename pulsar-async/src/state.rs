//! The state shared by the application handles and the I/O driver: the core behind one mutex,
//! the outputs waiting for the driver, and the tables of application-side waiters fed by the
//! core's events (quinn's arrangement).
//!
//! Every application command locks, calls the core, drains its outputs ([`State::after_app`]),
//! and wakes the driver only when it has something new to do (bytes to write, a connection to
//! open or close, an earlier deadline). The driver locks, feeds socket input and timeouts to the
//! core, and drains the same way. Events are dispatched to waiters under the lock; completion
//! callbacks run after it is released.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pulsar_core::{
    ConsumerId, Event, IoRequest, LookupResult, Message, MessageId, OutgoingMessage, ProducerId,
    ProducerOptions, RequestId, Resource, SendError, SendId, TopicMessageId, Transmit,
};

use crate::error::Error;
use crate::idmap::IdMap;
use crate::runtime::TimeSource;
pub(crate) use crate::sends::SendCallback;
use crate::sends::{Completion, SendSlot, SendTable};

/// Sends an async application may queue while its driver task, woken, has not run yet; beyond
/// it a send waits for the driver (so that an application that never yields, on a
/// single-threaded runtime, cannot starve the driver of its turn).
const MAX_SENDS_AHEAD: u32 = 1024;

/// Sends that may reuse one clock reading while the driver has not run (see [`State::send_now`]).
const SENDS_PER_CLOCK_READ: u32 = 64;

/// The clock of application calls: where the time is read, the last reading since the driver
/// last ran, and how many sends have used it.
#[derive(Debug)]
struct Clock {
    source: TimeSource,
    burst: Option<(Instant, u32)>,
}

impl Clock {
    fn new(source: TimeSource) -> Clock {
        Clock {
            source,
            burst: None,
        }
    }

    /// The time for any core call other than a send (application calls and the driver's
    /// inputs alike): a fresh reading, kept for the sends that follow. As every reading handed to
    /// the core passes through here, a send never gives the core an earlier time than the call
    /// before it.
    fn now(&mut self) -> Instant {
        let now = self.source.now();
        self.burst = Some((now, 0));
        now
    }

    /// The time for a send: the last reading since the driver last ran, for at most
    /// [`SENDS_PER_CLOCK_READ`] sends, else a fresh one (one clock read per burst of sends
    /// instead of one per send).
    ///
    /// A reused reading is older than the send by at most the burst's duration: a timer the
    /// send starts in the core (its batch's delay, its send timeout) can only run out that much
    /// earlier, never later. The burst ends when the driver runs ([`reset`](Self::reset)),
    /// which it does by the earliest timer such a send starts unless the application keeps it
    /// from running (and then no timer fires anyway); the bound on the sends covers
    /// applications that send for long while the driver has nothing to do.
    fn send_now(&mut self) -> Instant {
        match &mut self.burst {
            Some((at, uses)) if *uses < SENDS_PER_CLOCK_READ => {
                *uses += 1;
                *at
            }
            _ => {
                let now = self.source.now();
                self.burst = Some((now, 1));
                now
            }
        }
    }

    /// The driver runs: the next call reads the clock again.
    fn reset(&mut self) {
        self.burst = None;
    }
}

/// A send callback to run once the lock is released, with its outcome.
pub(crate) struct Deferred {
    callback: SendCallback,
    result: Result<MessageId, Error>,
}

impl Deferred {
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

/// The life of a producer or consumer, as the application sees it (errors boxed: rare, and
/// every idle producer and consumer carries a status).
#[derive(Debug, Clone)]
enum Status {
    Creating,
    Ready,
    Failed(Box<pulsar_core::Error>),
    Closed(Option<Box<pulsar_core::Error>>),
}

impl Status {
    fn is_over(&self) -> bool {
        matches!(self, Status::Failed(_) | Status::Closed(_))
    }

    /// Why an operation on a producer or consumer in this state cannot run: it failed (its
    /// error), or it is closed or closing (`Closed`).
    fn refusal(&self, close_requested: bool) -> Option<Error> {
        match self {
            Status::Failed(e) => Some((**e).clone().into()),
            Status::Closed(_) => Some(pulsar_core::Error::Closed.into()),
            _ if close_requested => Some(pulsar_core::Error::Closed.into()),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct ProducerSlot {
    status: Status,
    /// The producer name and the broker's last sequence id, from its registration until
    /// `create` takes them.
    registered: Option<Box<(String, i64)>>,
    /// Creation, flush and close waiters.
    waiters: Vec<Waker>,
    /// The waiters of its sends (receipts and callbacks), in send order.
    sends: SendTable,
    /// No timer a send of this producer starts in the core fires sooner than this after the
    /// send (see [`State::after_send`]).
    quiet: Duration,
    close_requested: bool,
    handle_alive: bool,
}

impl ProducerSlot {
    /// Whether the slot can go: the handle is gone, the producer is over and no receipt waits.
    fn is_finished(&self) -> bool {
        !self.handle_alive && self.status.is_over() && self.sends.is_empty()
    }
}

#[derive(Debug)]
struct ConsumerSlot {
    status: Status,
    /// Creation, receive and close waiters.
    waiters: Vec<Waker>,
    close_requested: bool,
    handle_alive: bool,
}

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
}

#[derive(Debug, Default)]
struct RequestSlot {
    result: Option<RequestResult>,
    waker: Option<Waker>,
    /// The producer or consumer the request is about: its end fails the request.
    owner: Option<Resource>,
}

/// What an [`events`](crate::ClientHandle::events) subscriber receives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// An event of the core: connections opened and closed, producers and consumers
    /// reconnecting, reconnected, failed or closed, topics moved, the client closed, ...
    /// (everything except the per-message `SendCompleted` and `MessagesAvailable`).
    Core(Event),
    /// The subscriber was too slow: this many events were dropped before the next one.
    Lagged {
        /// How many.
        missed: u64,
    },
}

#[derive(Debug)]
struct Subscriber {
    queue: VecDeque<ClientEvent>,
    missed: u64,
    waker: Option<Waker>,
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

fn add_waker(list: &mut Vec<Waker>, cx: &Context<'_>) {
    if !list.iter().any(|w| w.will_wake(cx.waker())) {
        list.push(cx.waker().clone());
    }
}

fn wake_all(list: &mut Vec<Waker>) {
    for w in list.drain(..) {
        w.wake();
    }
}

fn closed_error(status: &Status) -> pulsar_core::Error {
    match status {
        Status::Failed(e) | Status::Closed(Some(e)) => (**e).clone(),
        _ => pulsar_core::Error::Closed,
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
        State {
            core,
            io: VecDeque::new(),
            transmits: VecDeque::new(),
            armed: None,
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
    fn wake_if_deadline_earlier(&mut self) {
        let earlier = match (self.core.poll_timeout(), self.armed) {
            (Some(d), Some(a)) => d < a,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.wake_driver();
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
    fn client_closing(&self) -> bool {
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

    // ---- event dispatch ---------------------------------------------------------------------------

    fn dispatch(&mut self, event: Event) {
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
            Event::ClientClosed => {
                self.closed = true;
                wake_all(&mut self.close_waiters);
                wake_all(&mut self.room);
            }
            Event::ConnectionClosed {
                address, reason, ..
            } => {
                tracing::debug!(%address, %reason, "connection closed");
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

    fn broadcast(&mut self, event: Event) {
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

    fn send_completed(
        &mut self,
        producer: ProducerId,
        send: SendId,
        result: Result<MessageId, SendError>,
    ) {
        if let Some(p) = self.producers.get_mut(&producer) {
            match p.sends.complete(send.get(), result) {
                Completion::Wake(waker) => {
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                Completion::Call(callback, result) => self.deferred.push(Deferred {
                    callback,
                    result: result.map_err(Error::Send),
                }),
                Completion::Nobody => {}
            }
            if p.is_finished() {
                self.producers.remove(&producer);
            }
        }
        if !self.room.is_empty() {
            wake_all(&mut self.room);
        }
    }

    fn producer_over(&mut self, id: ProducerId, status: Status) {
        let Some(p) = self.producers.get_mut(&id) else {
            return;
        };
        p.status = status;
        wake_all(&mut p.waiters);
        // The core completes pending sends when a producer goes away; fail any it did not.
        for send in p.sends.uncompleted() {
            if let Some(p) = self.producers.get_mut(&id) {
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
    fn forget_producer_if_finished(&mut self, id: ProducerId) {
        if self.producers.get(&id).is_some_and(|p| p.is_finished()) {
            self.producers.remove(&id);
        }
    }

    fn consumer_over(&mut self, id: ConsumerId, status: Status) {
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
    fn fail_requests_of(&mut self, owner: Resource) {
        for slot in self.requests.values_mut() {
            if slot.owner == Some(owner) && slot.result.is_none() {
                slot.result = Some(RequestResult::Done(Err(pulsar_core::Error::Closed)));
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
    }

    fn request_done(&mut self, id: RequestId, result: RequestResult) {
        if let Some(slot) = self.requests.get_mut(&id) {
            slot.result = Some(result);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

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
            }),
        );
        self.after_app();
        Ok(id)
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
        match self.core.try_send(now, id, msg) {
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
    fn wait_for_room(
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

    fn request_producer_close(&mut self, id: ProducerId) {
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
            },
        );
        self.after_app();
        Ok(id)
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
    fn poll_receive_status(
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

/// The shortest delay of a core timer that a send of a producer with `options` can start: its
/// batch delay, its send timeout, and the client's own timers (`client_quiet`). Zero durations
/// (a batch sent at once, no send timeout) do not count, except a zero batch delay with
/// batching on, which starts no timer but is kept as zero to stay on the safe side.
fn producer_quiet(options: &ProducerOptions, client_quiet: Duration) -> Duration {
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
fn is_backpressure(e: &SendError) -> bool {
    matches!(e, SendError::QueueFull | SendError::MemoryLimit { .. })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pulsar_core::ClientConfig;

    use super::*;
    use crate::runtime::{AsyncTimer, BoxFuture, BoxIo, Runtime};

    fn state(event_buffer: usize, wakes: Arc<AtomicUsize>) -> State {
        let core =
            pulsar_core::Client::new(ClientConfig::new("pulsar://127.0.0.1:1"), Instant::now())
                .unwrap();
        State::new(
            core,
            TimeSource::System,
            1024,
            event_buffer,
            DriverWake::Callback(Box::new(move || {
                wakes.fetch_add(1, Ordering::Relaxed);
            })),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn a_slow_subscriber_sees_how_many_events_it_missed() {
        let mut st = state(2, Arc::default());
        let id = st.subscribe_events();
        for _ in 0..5 {
            st.dispatch(Event::ClientClosed);
        }
        assert_eq!(
            st.poll_event(id, None),
            Poll::Ready(Some(ClientEvent::Lagged { missed: 3 }))
        );
        for _ in 0..2 {
            assert_eq!(
                st.poll_event(id, None),
                Poll::Ready(Some(ClientEvent::Core(Event::ClientClosed)))
            );
        }
        // Closed and drained: the stream ends.
        assert_eq!(st.poll_event(id, None), Poll::Ready(None));
    }

    #[test]
    fn the_driver_is_woken_only_for_new_work() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let mut st = state(8, wakes.clone());
        st.after_app();
        assert_eq!(wakes.load(Ordering::Relaxed), 0, "nothing to do");
        let request = st
            .start_request(None, |core, now| core.lookup_topic(now, "t"))
            .unwrap();
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "a connection to open");
        assert!(matches!(st.io.front(), Some(IoRequest::Connect { .. })));
        st.after_app();
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "woken already");
        // The driver runs: takes the request, arms its timer.
        st.driver_running();
        st.io.clear();
        st.armed = st.core.poll_timeout();
        assert!(st.armed.is_some());
        st.after_app();
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "timer already armed");
        // A deadline earlier than the armed one wakes it.
        st.armed = st.armed.map(|a| a + std::time::Duration::from_secs(3600));
        st.after_app();
        assert_eq!(wakes.load(Ordering::Relaxed), 2, "earlier deadline");
        st.drop_request(request);
    }

    #[test]
    fn a_send_that_starts_a_batch_wakes_a_driver_armed_later() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let mut st = state(8, wakes.clone());
        let mut options = ProducerOptions::default();
        options.batching = pulsar_core::BatchingOptions::enabled().with_limits(
            1000,
            1 << 20,
            Duration::from_millis(50),
        );
        let producer = st.create_producer("t", options).unwrap();
        let send = |st: &mut State| {
            let mut message = Some(OutgoingMessage::new("x"));
            assert!(st
                .poll_enqueue(producer, &mut message, &mut None, false, None)
                .is_ready());
        };
        // The driver ran and armed its timer an hour ahead.
        st.driver_running();
        st.io.clear();
        st.armed = Some(Instant::now() + Duration::from_secs(3600));
        let before = wakes.load(Ordering::Relaxed);
        send(&mut st);
        assert_eq!(
            wakes.load(Ordering::Relaxed),
            before + 1,
            "the batch's deadline is earlier"
        );
        // Armed before any timer a send can start: the driver is left alone.
        st.driver_running();
        st.armed = Some(Instant::now() + Duration::from_millis(1));
        send(&mut st);
        assert_eq!(wakes.load(Ordering::Relaxed), before + 1);
        assert_eq!(
            producer_quiet(&ProducerOptions::default(), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }

    /// Counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn an_async_sender_lets_a_driver_that_has_not_run_catch_up() {
        let core =
            pulsar_core::Client::new(ClientConfig::new("pulsar://127.0.0.1:1"), Instant::now())
                .unwrap();
        let mut st = State::new(
            core,
            TimeSource::System,
            usize::MAX,
            8,
            DriverWake::Task(None),
            Duration::from_secs(1),
        );
        let mut options = ProducerOptions::default();
        options.max_pending_messages = 4 * MAX_SENDS_AHEAD as usize;
        let producer = st.create_producer("t", options).unwrap();
        let driver = Arc::new(CountingWaker::default());
        st.set_driver_waker(&Waker::from(driver.clone()));
        let sender = Arc::new(CountingWaker::default());
        let sender_waker = Waker::from(sender.clone());
        let cx = Context::from_waker(&sender_waker);
        let send = |st: &mut State, cx: Option<&Context<'_>>| {
            let mut message = Some(OutgoingMessage::new("x"));
            st.poll_enqueue(producer, &mut message, &mut None, false, cx)
        };
        let mut sent = 0;
        while send(&mut st, Some(&cx)).is_ready() {
            sent += 1;
            assert!(sent <= MAX_SENDS_AHEAD, "never held back");
        }
        assert_eq!(sent, MAX_SENDS_AHEAD);
        assert_eq!(
            driver.0.load(Ordering::Relaxed),
            1,
            "the driver was woken once"
        );
        // A send that never waits is not held back.
        assert!(matches!(send(&mut st, None), Poll::Ready(Ok(_))));
        // The driver runs: the held-back sender is woken and goes on.
        st.set_driver_waker(&Waker::from(driver.clone()));
        assert_eq!(sender.0.load(Ordering::Relaxed), 1);
        assert!(matches!(send(&mut st, Some(&cx)), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_send_refused_for_room_keeps_its_message_for_the_retry() {
        let mut st = state(8, Arc::new(AtomicUsize::new(0)));
        let mut options = ProducerOptions::default();
        options.max_pending_messages = 1;
        let producer = st.create_producer("t", options).unwrap();
        let sender = Arc::new(CountingWaker::default());
        let sender_waker = Waker::from(sender.clone());
        let cx = Context::from_waker(&sender_waker);
        let mut first = Some(OutgoingMessage::new("first"));
        assert!(matches!(
            st.poll_enqueue(producer, &mut first, &mut None, false, Some(&cx)),
            Poll::Ready(Ok(_))
        ));
        assert!(first.is_none(), "a queued message is the core's");
        let mut second = Some(OutgoingMessage::new("second").with_key("k"));
        // Waiting: the message is still ours, intact.
        assert!(st
            .poll_enqueue(producer, &mut second, &mut None, false, Some(&cx))
            .is_pending());
        let kept = second.as_ref().unwrap();
        assert_eq!(kept.payload.as_ref(), b"second");
        assert_eq!(kept.key.as_deref(), Some("k"));
        // Not waiting: QueueFull, and still ours.
        assert!(matches!(
            st.poll_enqueue(producer, &mut second, &mut None, false, None),
            Poll::Ready(Err(Error::Send(SendError::QueueFull)))
        ));
        assert!(second.is_some());
    }

    #[test]
    fn deferred_callbacks_are_handed_over_in_order() {
        let ran = Arc::new(Mutex::new(Vec::new()));
        let deferred = |n: u32| {
            let ran = ran.clone();
            Deferred {
                callback: Box::new(move |_| ran.lock().unwrap().push(n)),
                result: Err(Error::DriverStopped),
            }
        };
        let mut st = state(8, Arc::new(AtomicUsize::new(0)));
        let mut out = Vec::new();
        st.deferred.extend([deferred(1), deferred(2)]);
        st.take_deferred(&mut out);
        assert!(st.deferred.is_empty());
        // Into a list that still holds some: after them.
        st.deferred.extend([deferred(3), deferred(4)]);
        st.take_deferred(&mut out);
        assert!(st.deferred.is_empty());
        for d in out.drain(..) {
            d.run();
        }
        assert_eq!(*ran.lock().unwrap(), [1, 2, 3, 4]);
    }

    /// A runtime that only tells the time, which the test sets.
    #[derive(Debug)]
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        /// A clock a week ahead of the system's, so that a reading taken from the system clock
        /// instead cannot pass for one of its own.
        fn new() -> Arc<ManualClock> {
            Arc::new(ManualClock(Mutex::new(
                Instant::now() + Duration::from_secs(7 * 24 * 3600),
            )))
        }

        fn advance(&self, by: Duration) -> Instant {
            let mut now = self.0.lock().unwrap();
            *now += by;
            *now
        }
    }

    /// The timer of [`ManualClock`], which never fires (the tests run no driver).
    #[derive(Debug)]
    struct NeverTimer;

    impl AsyncTimer for NeverTimer {
        fn reset(self: std::pin::Pin<&mut Self>, _deadline: Instant) {}

        fn poll(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Runtime for ManualClock {
        fn connect(&self, _host: String, _port: u16) -> BoxFuture<std::io::Result<BoxIo>> {
            Box::pin(std::future::pending())
        }

        fn timer(&self, _deadline: Instant) -> std::pin::Pin<Box<dyn AsyncTimer>> {
            Box::pin(NeverTimer)
        }

        fn spawn(&self, _future: BoxFuture<()>) -> Result<(), String> {
            Err("a clock runs no tasks".into())
        }

        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn sends_share_one_clock_reading_until_the_driver_runs_or_the_bound() {
        let time = ManualClock::new();
        let tick = || time.advance(Duration::from_millis(2));
        let mut clock = Clock::new(TimeSource::Runtime(time.clone()));
        let first = clock.send_now();
        assert_eq!(first, time.now());
        tick();
        for _ in 1..SENDS_PER_CLOCK_READ {
            assert_eq!(clock.send_now(), first);
        }
        // The bound: a fresh reading.
        let second = clock.send_now();
        assert_eq!(second, first + Duration::from_millis(2));
        tick();
        assert_eq!(clock.send_now(), second);
        // The driver ran: a fresh reading.
        clock.reset();
        let third = clock.send_now();
        assert_eq!(third, second + Duration::from_millis(2));
        let later = tick();
        // Another application call reads the clock, and the sends after it use its reading.
        let call = clock.now();
        assert_eq!(call, later);
        tick();
        assert_eq!(clock.send_now(), call);
    }

    #[test]
    fn the_core_and_the_sends_get_the_runtime_clock() {
        let time = ManualClock::new();
        let start = time.now();
        let config = ClientConfig::new("pulsar://127.0.0.1:1");
        let operation_timeout = config.operation_timeout;
        let core = pulsar_core::Client::new(config, start).unwrap();
        let mut st = State::new(
            core,
            TimeSource::Runtime(time.clone()),
            1024,
            8,
            DriverWake::Callback(Box::new(|| {})),
            Duration::from_secs(1),
        );
        // An application call starts a timer in the core on the runtime's clock.
        let later = time.advance(Duration::from_secs(5));
        let request = st
            .start_request(None, |core, now| core.lookup_topic(now, "t"))
            .unwrap();
        let deadline = st.core.poll_timeout().unwrap();
        assert!(
            deadline > later && deadline <= later + operation_timeout,
            "{:?} after the runtime's time",
            deadline.checked_duration_since(later)
        );
        st.drop_request(request);
        // The driver's readings, and a send's (the burst's reading, taken from the runtime).
        let driver = time.advance(Duration::from_secs(1));
        assert_eq!(st.now(), driver);
        st.driver_running();
        let burst = time.advance(Duration::from_secs(1));
        assert_eq!(st.clock.send_now(), burst);
        time.advance(Duration::from_secs(1));
        assert_eq!(st.clock.send_now(), burst);
        // Waits that hand nothing to the core read the same clock.
        assert_eq!(st.time_source().now(), burst + Duration::from_secs(1));
    }

    #[test]
    fn the_driver_running_ends_the_burst_of_a_state() {
        let mut st = state(16, Arc::new(AtomicUsize::new(0)));
        let first = st.clock.send_now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(st.clock.send_now(), first);
        st.driver_running();
        assert!(st.clock.send_now() > first);
    }

    #[test]
    fn a_send_never_gives_the_core_an_earlier_time_than_the_drivers_last_input() {
        let mut st = state(16, Arc::new(AtomicUsize::new(0)));
        let burst = st.clock.send_now();
        std::thread::sleep(Duration::from_millis(2));
        // the driver hands the core bytes (or a timeout) without having been polled anew
        let input = st.now();
        assert!(input > burst);
        assert_eq!(
            st.clock.send_now(),
            input,
            "the send reuses the latest reading"
        );
    }

    #[test]
    fn receipts_outlive_their_dropped_producer() {
        let mut st = state(8, Arc::default());
        let producer = st.create_producer("t", ProducerOptions::default()).unwrap();
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let mut sends = Vec::new();
        for _ in 0..3 {
            let mut message = Some(OutgoingMessage::new("x"));
            match st.poll_enqueue(producer, &mut message, &mut None, true, Some(&cx)) {
                Poll::Ready(Ok(send)) => sends.push(send),
                other => panic!("send: {other:?}"),
            }
        }
        assert!(st.poll_receipt(producer, sends[0], &cx).is_pending());
        // The handle goes, the producer ends: the receipts keep their outcomes.
        st.producer_dropped(producer);
        st.producer_over(producer, Status::Closed(None));
        st.drop_receipt(producer, sends[1]);
        for send in [sends[0], sends[2]] {
            assert!(matches!(
                st.poll_receipt(producer, send, &cx),
                Poll::Ready(Err(Error::Send(SendError::ProducerClosed)))
            ));
        }
        assert!(
            st.producers.is_empty(),
            "the slot went with the last receipt"
        );
    }

    /// Every consumer and producer operation the state runs, each checked with `closed`.
    fn check_every_operation(
        st: &mut State,
        consumer: ConsumerId,
        producer: ProducerId,
        closed: impl Fn(&str, &Error),
    ) {
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        let id = MessageId::new(1, 2, -1);
        let err = |what: &str, r: Result<(), Error>| match r {
            Err(e) => closed(what, &e),
            Ok(()) => panic!("{what} succeeded"),
        };
        err(
            "ack",
            st.consumer_command(consumer, |core, now| core.ack(now, consumer, &id).map(drop)),
        );
        err(
            "ack_cumulative",
            st.consumer_command(consumer, |core, now| {
                core.ack_cumulative(now, consumer, &id).map(drop)
            }),
        );
        err(
            "nack",
            st.consumer_command(consumer, |core, now| core.negative_ack(now, consumer, &id)),
        );
        err(
            "redeliver_unacknowledged",
            st.consumer_command(consumer, |core, now| {
                core.redeliver_unacknowledged(now, consumer)
            }),
        );
        for (what, request) in [
            (
                "seek",
                st.start_request(Some(Resource::Consumer(consumer)), |core, now| {
                    core.seek(now, consumer, pulsar_core::SeekTo::Id(id))
                }),
            ),
            (
                "last_message_ids",
                st.start_request(Some(Resource::Consumer(consumer)), |core, now| {
                    core.get_last_message_ids(now, consumer)
                }),
            ),
            (
                "unsubscribe",
                st.start_request(Some(Resource::Consumer(consumer)), |core, now| {
                    core.unsubscribe(now, consumer)
                }),
            ),
            (
                "flush",
                st.start_request(Some(Resource::Producer(producer)), |core, now| {
                    core.flush(now, producer)
                }),
            ),
        ] {
            err(what, request.map(drop));
        }
        match st.poll_receive(consumer, Some(&cx)) {
            Poll::Ready(Err(e)) => closed("try_receive", &e),
            // the stream's end: a consumer closed normally
            Poll::Ready(Ok(None)) => {}
            other => panic!("poll_receive: {other:?}"),
        }
        match st.poll_next_message(consumer, &cx) {
            Poll::Ready(Err(e)) => closed("receive", &e),
            other => panic!("receive: {other:?}"),
        }
        match st.poll_receive_batch(consumer, 10, 1 << 20, Some(&cx)) {
            Poll::Ready(Err(e)) => closed("receive_batch", &e),
            Poll::Ready(Ok(batch)) if batch.is_empty() => {}
            other => panic!("receive_batch: {other:?}"),
        }
        let mut message = Some(OutgoingMessage::new("x"));
        match st.poll_enqueue(producer, &mut message, &mut None, true, Some(&cx)) {
            Poll::Ready(Err(e)) => closed("send", &e),
            other => panic!("send: {other:?}"),
        }
    }

    #[test]
    fn every_operation_on_a_closing_client_says_client_closed() {
        let mut st = state(8, Arc::default());
        let producer = st.create_producer("t", ProducerOptions::default()).unwrap();
        let consumer = st
            .subscribe(|core, now| core.subscribe(now, "t", pulsar_core::ConsumerOptions::new("s")))
            .unwrap();
        st.begin_close();
        check_every_operation(&mut st, consumer, producer, |what, e| {
            assert!(e.is_closed(), "{what}: {e}");
            assert!(
                matches!(
                    e,
                    Error::Client(pulsar_core::Error::ClientClosed)
                        | Error::Send(SendError::ClientClosed)
                ),
                "{what}: {e:?}"
            );
        });
        match st.start_request(None, |core, now| core.lookup_topic(now, "t")) {
            Err(Error::Client(pulsar_core::Error::ClientClosed)) => {}
            other => panic!("lookup: {other:?}"),
        }
    }

    #[test]
    fn every_operation_on_a_closed_consumer_or_producer_says_closed() {
        let mut st = state(8, Arc::default());
        let producer = st.create_producer("t", ProducerOptions::default()).unwrap();
        let consumer = st
            .subscribe(|core, now| core.subscribe(now, "t", pulsar_core::ConsumerOptions::new("s")))
            .unwrap();
        // Closed with their handles still held (as when closed by the broker for good).
        st.close_consumer(consumer);
        st.close_producer(producer);
        check_every_operation(&mut st, consumer, producer, |what, e| {
            assert!(e.is_closed(), "{what}: {e}");
            assert!(
                matches!(
                    e,
                    Error::Client(pulsar_core::Error::Closed)
                        | Error::Send(SendError::ProducerClosed)
                ),
                "{what}: {e:?}"
            );
        });
        // The client itself is still open.
        assert!(st
            .start_request(None, |core, now| core.lookup_topic(now, "t"))
            .is_ok());
    }

    #[test]
    fn only_a_thread_driven_client_waits_when_dropped_and_never_on_its_driver_thread() {
        let shared = Shared::new(state(8, Arc::default()));
        let elsewhere = || std::thread::scope(|s| s.spawn(|| shared.lock().drop_wait()).join());
        let mut st = shared.lock();
        assert_eq!(st.drop_wait(), None, "async drivers: a drop never blocks");
        st.set_wait_on_drop(Duration::from_secs(3));
        assert_eq!(st.drop_wait(), Some(Duration::from_secs(3)));
        st.note_driver_thread();
        assert_eq!(st.drop_wait(), None, "on the driver's thread");
        drop(st);
        assert_eq!(elsewhere().unwrap(), Some(Duration::from_secs(3)));
        shared.lock().driver_stopped();
        assert_eq!(elsewhere().unwrap(), None, "nothing to wait for");
    }

    #[test]
    fn a_stopped_driver_fails_waiters_instead_of_hanging() {
        let mut st = state(8, Arc::default());
        let producer = st.create_producer("t", ProducerOptions::default()).unwrap();
        st.driver_stopped();
        let waker = futures::task::noop_waker();
        let cx = Context::from_waker(&waker);
        assert!(matches!(
            st.poll_producer_ready(producer, &cx),
            Poll::Ready(Err(Error::DriverStopped))
        ));
        let mut message = Some(OutgoingMessage::new("x"));
        assert!(matches!(
            st.poll_enqueue(producer, &mut message, &mut None, true, Some(&cx)),
            Poll::Ready(Err(Error::DriverStopped))
        ));
        assert!(st.poll_closed(&cx).is_ready());
    }
}
