//! Waiting on the calling thread for a state change signalled by the driver thread.
//!
//! The shared client state signals changes through `std::task::Waker`s; here a waker unparks the
//! waiting thread. This is a condition wait, not an executor: there is no reactor, no timer
//! wheel, no task queue, nothing global, and it works on any thread, including inside an async
//! runtime (where it blocks that thread, as any blocking call does).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

struct Unpark {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn waker() -> (Arc<Unpark>, Waker) {
    let unpark = Arc::new(Unpark {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(unpark.clone());
    (unpark, waker)
}

/// Waits until `condition` is ready.
pub(crate) fn wait<F: Future>(condition: F) -> F::Output {
    let mut condition = pin!(condition);
    let (unpark, waker) = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = condition.as_mut().poll(&mut cx) {
            return out;
        }
        while !unpark.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// Waits until `condition` is ready, or until `deadline` (then `None`).
pub(crate) fn wait_until<F: Future>(condition: F, deadline: Instant) -> Option<F::Output> {
    let mut condition = pin!(condition);
    let (unpark, waker) = waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = condition.as_mut().poll(&mut cx) {
            return Some(out);
        }
        while !unpark.notified.swap(false, Ordering::Acquire) {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            thread::park_timeout(deadline - now);
        }
    }
}
