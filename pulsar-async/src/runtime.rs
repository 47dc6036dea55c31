//! What an async runtime supplies: TCP connections, timers, task spawning and the clock.
//!
//! Everything else (TLS, the driver loop, waiters, futures) is shared. An implementation is a few
//! dozen lines; see `pulsar-tokio` and `pulsar-smol`.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::io::{AsyncRead, AsyncWrite};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A byte stream (TCP, possibly wrapped in TLS) the driver reads and writes.
pub trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncIo for T {}

/// A boxed [`AsyncIo`].
pub type BoxIo = Box<dyn AsyncIo>;

/// A timer the driver re-arms at the core's next deadline.
pub trait AsyncTimer: Send + fmt::Debug + 'static {
    /// Moves the deadline.
    fn reset(self: Pin<&mut Self>, deadline: Instant);
    /// Ready once the deadline has passed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// The services of an async runtime.
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// Opens a TCP connection to `host:port` (resolving the name), with `TCP_NODELAY` set.
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<BoxIo>>;
    /// A timer that fires at `deadline`.
    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>>;
    /// Runs `future` in the background until it finishes.
    ///
    /// Errors (no runtime in the current context, for example) are reported as text.
    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String>;
    /// The current time on the runtime's clock.
    ///
    /// Every time the client hands its core, and so every deadline it gives
    /// [`timer`](Self::timer), is read here: a runtime whose time can be paused or simulated
    /// (tokio's `test-util`, a simulation) returns its own time, one that has no clock of its own
    /// returns `Instant::now()`.
    fn now(&self) -> Instant;
    /// The wall clock the client's core starts from, in milliseconds since the Unix epoch
    /// (publish times and the like count from it, moving with [`now`](Self::now)). Read once,
    /// when the client starts.
    ///
    /// The default reads the system clock, which every real runtime wants; a simulation returns
    /// a fixed value so that a run replays exactly.
    fn unix_time_ms(&self) -> u64 {
        crate::options::unix_millis()
    }
}

/// Where a client reads the time: its runtime's clock for an async driver, the system clock for
/// a thread driver (whose waits are the operating system's).
#[derive(Debug, Clone)]
pub(crate) enum TimeSource {
    /// `Instant::now()`.
    System,
    /// [`Runtime::now`].
    Runtime(Arc<dyn Runtime>),
}

impl TimeSource {
    /// The current time.
    #[inline]
    pub(crate) fn now(&self) -> Instant {
        match self {
            TimeSource::System => Instant::now(),
            TimeSource::Runtime(runtime) => runtime.now(),
        }
    }

    /// The wall clock at the client's start, in Unix milliseconds: the system's for a thread
    /// driver, [`Runtime::unix_time_ms`] for an async one.
    pub(crate) fn unix_time_ms(&self) -> u64 {
        match self {
            TimeSource::System => crate::options::unix_millis(),
            TimeSource::Runtime(runtime) => runtime.unix_time_ms(),
        }
    }
}
