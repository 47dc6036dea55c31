//! Waiting on the calling thread for a state change signalled by the driver thread.
//!
//! The shared client state signals changes through `std::task::Waker`s; here a waker unparks the
//! waiting thread. This is a condition wait, not an executor: there is no reactor, no timer
//! wheel, no task queue, nothing global, and it works on any thread, including inside an async
//! runtime (where it blocks that thread, as any blocking call does).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

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

/// The waker of the calling thread, with its flag.
struct ThreadWaker {
    unpark: Arc<Unpark>,
    waker: Waker,
}

thread_local! {
    /// The thread's waker between two waits (a wait borrows it; a nested wait, which only a
    /// future calling back into this module could start, makes its own).
    static SPARE: Cell<Option<ThreadWaker>> = const { Cell::new(None) };
}

impl ThreadWaker {
    fn new() -> ThreadWaker {
        let unpark = Arc::new(Unpark {
            thread: thread::current(),
            notified: AtomicBool::new(false),
        });
        let waker = Waker::from(unpark.clone());
        ThreadWaker { unpark, waker }
    }
}

/// Runs `f` with the thread's waker, borrowed for one wait and handed back after it: made once
/// per thread, so that a send that waits for room costs no allocation, and lent by reference, so
/// that a wait that is ready at once costs no reference count either. (A wait that panics drops
/// it: the next one makes another.) A notification that comes after the condition was ready
/// stays set: the next wait polls once more, which is harmless.
fn with_thread_waker<T>(f: impl FnOnce(&ThreadWaker) -> T) -> T {
    let borrowed = SPARE
        .try_with(Cell::take)
        .ok()
        .flatten()
        .unwrap_or_else(ThreadWaker::new);
    let out = f(&borrowed);
    // Ignored after the thread's locals are gone.
    let _ = SPARE.try_with(|s| s.set(Some(borrowed)));
    out
}

/// Waits until `condition` is ready.
pub(crate) fn wait<F: Future>(condition: F) -> F::Output {
    let mut condition = pin!(condition);
    with_thread_waker(|tw| {
        let mut cx = Context::from_waker(&tw.waker);
        loop {
            if let Poll::Ready(out) = condition.as_mut().poll(&mut cx) {
                return out;
            }
            while !tw.unpark.notified.swap(false, Ordering::Acquire) {
                thread::park();
            }
        }
    })
}

/// Waits until `condition` is ready, or at most `timeout` (then `None`). A timeout too large to
/// be added to the clock (such as `Duration::MAX`) waits without a deadline.
pub(crate) fn wait_for<F: Future>(condition: F, timeout: Duration) -> Option<F::Output> {
    match Instant::now().checked_add(timeout) {
        Some(deadline) => wait_until(condition, deadline),
        None => Some(wait(condition)),
    }
}

/// Waits until `condition` is ready, or until `deadline` (then `None`).
fn wait_until<F: Future>(condition: F, deadline: Instant) -> Option<F::Output> {
    let mut condition = pin!(condition);
    with_thread_waker(|tw| {
        let mut cx = Context::from_waker(&tw.waker);
        loop {
            if let Poll::Ready(out) = condition.as_mut().poll(&mut cx) {
                return Some(out);
            }
            while !tw.unpark.notified.swap(false, Ordering::Acquire) {
                let now = Instant::now();
                if now >= deadline {
                    return None;
                }
                thread::park_timeout(deadline - now);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};

    use super::*;

    #[test]
    fn a_timeout_past_the_end_of_time_waits_without_a_deadline() {
        // Instant::now() + Duration::MAX would panic; the wait ends when the condition is ready
        assert_eq!(wait_for(ready(7), Duration::MAX), Some(7));
    }

    #[test]
    fn a_condition_not_ready_by_the_timeout_gives_none() {
        let started = Instant::now();
        assert_eq!(wait_for(pending::<()>(), Duration::from_millis(20)), None);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
