//! The client keeps time on its runtime's clock ([`Runtime::now`]): under a runtime whose clock
//! only moves when the test moves it, and whose one task is polled by hand, every deadline the
//! driver arms is exact on that clock, and an operation times out when that clock (not the
//! system's) passes its timeout.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pulsar_async::{AsyncTimer, BoxFuture, BoxIo, ClientOptions, Error, Runtime};

/// What the test sees of the runtime: its clock, the spawned task, the armed timer.
#[derive(Default)]
struct Inner {
    now: Option<Instant>,
    task: Option<BoxFuture<()>>,
    /// The deadline of the (single) timer the driver armed last.
    armed: Option<Instant>,
    connects: usize,
    /// Timer polls found ready since the clock last moved.
    ready_polls: usize,
}

/// A runtime whose clock moves only by [`Manual::set_now`], whose connections never complete
/// (a broker that never answers), and whose spawned task runs only by [`Manual::run`].
#[derive(Clone)]
struct Manual(Arc<Mutex<Inner>>);

impl std::fmt::Debug for Manual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Manual")
    }
}

impl Manual {
    fn new(start: Instant) -> Manual {
        Manual(Arc::new(Mutex::new(Inner {
            now: Some(start),
            ..Inner::default()
        })))
    }

    fn set_now(&self, now: Instant) {
        let mut inner = self.0.lock().unwrap();
        inner.now = Some(now);
        inner.ready_polls = 0;
    }

    fn armed(&self) -> Option<Instant> {
        self.0.lock().unwrap().armed
    }

    fn connects(&self) -> usize {
        self.0.lock().unwrap().connects
    }

    /// Polls the spawned task once; true when it finished.
    fn run(&self) -> bool {
        let Some(mut task) = self.0.lock().unwrap().task.take() else {
            return true;
        };
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        if task
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            return true;
        }
        self.0.lock().unwrap().task = Some(task);
        false
    }
}

/// A timer of [`Manual`]: ready once its clock reached the deadline.
#[derive(Debug)]
struct ManualTimer {
    runtime: Arc<Mutex<Inner>>,
    deadline: Instant,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("now", &self.now).finish()
    }
}

impl AsyncTimer for ManualTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
        self.runtime.lock().unwrap().armed = Some(deadline);
    }

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.runtime.lock().unwrap();
        if inner.now.unwrap() < self.deadline {
            return Poll::Pending;
        }
        // A driver whose deadlines were on another clock would find its timer ready again and
        // again without its own deadline having come: fail instead of spinning.
        inner.ready_polls += 1;
        assert!(
            inner.ready_polls < 1000,
            "the driver spins on a ready timer: its deadlines are not on the runtime's clock"
        );
        Poll::Ready(())
    }
}

impl Runtime for Manual {
    fn connect(&self, _host: String, _port: u16) -> BoxFuture<io::Result<BoxIo>> {
        self.0.lock().unwrap().connects += 1;
        Box::pin(std::future::pending())
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        self.0.lock().unwrap().armed = Some(deadline);
        Box::pin(ManualTimer {
            runtime: self.0.clone(),
            deadline,
        })
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String> {
        self.0.lock().unwrap().task = Some(future);
        Ok(())
    }

    fn now(&self) -> Instant {
        self.0.lock().unwrap().now.unwrap()
    }
}

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A week ahead of the system clock: a deadline computed from `Instant::now()` anywhere in the
/// client could not land on this clock's exact instants.
fn start_of_manual_clock() -> Instant {
    Instant::now() + Duration::from_secs(7 * 24 * 3600)
}

#[test]
fn deadlines_are_on_the_runtime_clock_and_an_operation_times_out_when_it_passes() {
    let start = start_of_manual_clock();
    let runtime = Manual::new(start);
    let operation_timeout = Duration::from_secs(60);
    let connection_timeout = Duration::from_secs(7);
    let mut options = ClientOptions::new("pulsar://broker.invalid:6650");
    options.core.operation_timeout = operation_timeout;
    options.core.connection_timeout = connection_timeout;
    let client = pulsar_async::start(runtime.clone(), options).unwrap();

    let mut create = Box::pin(client.producer("t").create());
    let app = Waker::from(Arc::new(CountingWaker::default()));
    let mut cx = Context::from_waker(&app);
    assert!(create.as_mut().poll(&mut cx).is_pending());
    assert!(!runtime.run());
    assert_eq!(
        runtime.connects(),
        1,
        "the driver opened the first connection"
    );
    // The first deadline is the connection's: connect plus handshake, on the runtime's clock.
    assert_eq!(runtime.armed(), Some(start + connection_timeout));

    // Move the clock from deadline to deadline: connection attempts time out and are retried
    // (after a backoff), until the creation's operation timeout.
    let mut outcome = None;
    for _ in 0..100 {
        let deadline = runtime.armed().unwrap();
        assert!(deadline > start, "a deadline on the runtime's clock");
        runtime.set_now(deadline);
        assert!(!runtime.run(), "the driver runs until the client is closed");
        if let Poll::Ready(result) = create.as_mut().poll(&mut cx) {
            outcome = Some((deadline, result));
            break;
        }
    }
    let (at, result) = outcome.expect("the creation ended within 100 deadlines");
    assert!(
        matches!(&result, Err(Error::Client(e)) if e.is_timeout()),
        "{result:?}"
    );
    assert_eq!(
        at,
        start + operation_timeout,
        "timed out exactly at the operation timeout on the runtime's clock"
    );
    assert!(runtime.connects() > 1, "connections were retried");
}
