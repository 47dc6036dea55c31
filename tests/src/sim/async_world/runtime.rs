//! The simulated [`Runtime`]: the clock is the scheduler's, timers are scheduler entries that
//! wake their task, connections are links of the simulated network to the model brokers, and
//! tasks run on the run's deterministic [`Executor`](super::executor::Executor).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};
use pulsar_async::{AsyncTimer, BoxFuture, BoxIo, Runtime};

use crate::sim::async_world::env::Env;
use crate::sim::async_world::executor::Spawner;
use crate::sim::async_world::lock;
use crate::sim::broker::ConnId;

/// The wall clock every simulated client starts from (Unix milliseconds), as in the core
/// simulation.
pub const UNIX_TIME_MS: u64 = 1_700_000_000_000;

/// The runtime of one client of the run.
#[derive(Clone)]
pub struct SimRuntime {
    env: Arc<Mutex<Env>>,
    client: usize,
    spawner: Spawner,
}

impl std::fmt::Debug for SimRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimRuntime(client {})", self.client)
    }
}

impl SimRuntime {
    /// The runtime of client `client`, spawning onto `spawner`.
    pub fn new(env: Arc<Mutex<Env>>, client: usize, spawner: Spawner) -> SimRuntime {
        SimRuntime {
            env,
            client,
            spawner,
        }
    }

    /// Waits `d` of simulated time.
    pub fn sleep(&self, d: Duration) -> Sleep {
        let deadline = self.now() + d;
        self.sleep_until(deadline)
    }

    /// Waits until `deadline` on the simulated clock.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep(SimTimer::new(self.env.clone(), deadline))
    }
}

impl Runtime for SimRuntime {
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<BoxIo>> {
        let id = lock(&self.env).connect(self.client, &host, port);
        Box::pin(Connecting {
            env: self.env.clone(),
            id: Some(id),
        })
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(SimTimer::new(self.env.clone(), deadline))
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String> {
        self.spawner.spawn_boxed(future);
        Ok(())
    }

    fn now(&self) -> Instant {
        lock(&self.env).now_instant()
    }

    fn unix_time_ms(&self) -> u64 {
        UNIX_TIME_MS
    }
}

/// A timer: an entry in the scheduler that wakes the task polling it.
#[derive(Debug)]
pub struct SimTimer {
    env: Arc<Mutex<Env>>,
    id: u64,
}

impl SimTimer {
    fn new(env: Arc<Mutex<Env>>, deadline: Instant) -> SimTimer {
        let id = lock(&env).timer_new(deadline);
        SimTimer { env, id }
    }
}

impl AsyncTimer for SimTimer {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        lock(&self.env).timer_reset(self.id, deadline);
    }

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        lock(&self.env).timer_poll(self.id, cx)
    }
}

impl Drop for SimTimer {
    fn drop(&mut self) {
        lock(&self.env).timer_drop(self.id);
    }
}

/// A future ready at a simulated instant.
#[derive(Debug)]
pub struct Sleep(SimTimer);

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        lock(&self.0.env).timer_poll(self.0.id, cx)
    }
}

/// A connection being established; dropping it abandons the connection.
struct Connecting {
    env: Arc<Mutex<Env>>,
    id: Option<ConnId>,
}

impl Future for Connecting {
    type Output = io::Result<BoxIo>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(id) = self.id else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let polled = lock(&self.env).poll_connect(id, cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                self.id = None;
                Poll::Ready(Ok(Box::new(SimIo {
                    env: self.env.clone(),
                    id,
                    closed: false,
                })))
            }
            Poll::Ready(Err(e)) => {
                self.id = None;
                lock(&self.env).close(id);
                Poll::Ready(Err(e))
            }
        }
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            lock(&self.env).close(id);
        }
    }
}

/// The client end of an established connection.
struct SimIo {
    env: Arc<Mutex<Env>>,
    id: ConnId,
    closed: bool,
}

impl AsyncRead for SimIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.env).poll_read(self.id, cx, buf)
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.env).poll_write(self.id, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closed {
            self.closed = true;
            lock(&self.env).close(self.id);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimIo {
    fn drop(&mut self) {
        if !self.closed {
            lock(&self.env).close(self.id);
        }
    }
}
