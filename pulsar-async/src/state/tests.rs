use std::sync::atomic::{AtomicUsize, Ordering};

use pulsar_core::{ClientConfig, Event, OutgoingMessage, ProducerOptions, SendError};

use super::clock::SENDS_PER_CLOCK_READ;
use super::*;
use crate::runtime::{AsyncTimer, BoxFuture, BoxIo, Runtime};

pub(super) fn state(event_buffer: usize, wakes: Arc<AtomicUsize>) -> State {
    let core = pulsar_core::Client::new(ClientConfig::new("pulsar://127.0.0.1:1"), Instant::now())
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

/// A producer on topic `t` batching up to 50 ms (so a send opens a batch and its deadline).
fn batching_producer(st: &mut State) -> ProducerId {
    let mut options = ProducerOptions::default();
    options.batching = pulsar_core::BatchingOptions::enabled().with_limits(
        1000,
        1 << 20,
        Duration::from_millis(50),
    );
    st.create_producer("t", options).unwrap()
}

/// Queues one message on `producer`, which must have room.
fn send_one(st: &mut State, producer: ProducerId) {
    let mut message = Some(OutgoingMessage::new("x"));
    assert!(st
        .poll_enqueue(producer, &mut message, &mut None, false, None)
        .is_ready());
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
    let producer = batching_producer(&mut st);
    let send = |st: &mut State| send_one(st, producer);
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
    let core = pulsar_core::Client::new(ClientConfig::new("pulsar://127.0.0.1:1"), Instant::now())
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
                Error::Client(pulsar_core::Error::Closed) | Error::Send(SendError::ProducerClosed)
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

/// A timer that records where it is set.
#[derive(Debug)]
struct RecordingTimer(Arc<Mutex<Vec<Instant>>>);

impl AsyncTimer for RecordingTimer {
    fn reset(self: std::pin::Pin<&mut Self>, deadline: Instant) {
        self.0.lock().unwrap().push(deadline);
    }

    fn poll(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn a_send_that_starts_a_batch_moves_a_sleeping_async_drivers_timer_instead_of_waking_it() {
    let wakes = Arc::new(AtomicUsize::new(0));
    let mut st = state(8, wakes.clone());
    let producer = batching_producer(&mut st);
    let send = |st: &mut State| send_one(st, producer);
    // The driver sleeps on its timer, an hour ahead.
    let resets = Arc::new(Mutex::new(Vec::new()));
    let far = Instant::now() + Duration::from_secs(3600);
    st.timer = Some((Box::pin(RecordingTimer(resets.clone())), far));
    st.driver_running();
    st.io.clear();
    st.armed = Some(far);
    let before = wakes.load(Ordering::Relaxed);
    send(&mut st);
    assert_eq!(wakes.load(Ordering::Relaxed), before, "not woken");
    let deadline = st.core.poll_timeout().expect("the batch's deadline");
    assert!(deadline < far);
    assert_eq!(*resets.lock().unwrap(), vec![deadline], "the timer moved");
    assert_eq!(st.armed, Some(deadline));
    assert_eq!(st.timer.as_ref().map(|t| t.1), Some(deadline));
    // A second send of the same batch changes nothing.
    send(&mut st);
    assert_eq!(resets.lock().unwrap().len(), 1);
    assert_eq!(wakes.load(Ordering::Relaxed), before);
    // A driver that is not asleep on its timer (no deadline armed) is woken instead.
    st.armed = None;
    st.timer = Some((Box::pin(RecordingTimer(resets.clone())), far));
    st.core.handle_timeout(deadline + Duration::from_millis(1));
    st.drain();
    st.transmits.clear();
    send(&mut st);
    assert_eq!(wakes.load(Ordering::Relaxed), before + 1, "woken");
    assert_eq!(resets.lock().unwrap().len(), 1);
}
