//! The client state for drivers that are not async tasks (the blocking adapter's driver thread).
//!
//! An [`Engine`] wraps the same shared state as the async driver. Each input method locks, feeds
//! the core, and drains its outputs; [`Engine::take_outputs`] hands the driver what it must do
//! and the deadline to wake up at.

use std::time::{Duration, Instant};

use pulsar_core::{ConnectionId, IoRequest, Transmit};

use crate::client::{new_state, ClientHandle, NewState};
use crate::error::Error;
use crate::failover::FailoverControl;
use crate::options::ClientOptions;
use crate::runtime::TimeSource;
use crate::state::{DriverWake, Shared};
use crate::tls::TlsContext;

/// Added to the bound of the wait of a dropped client (see [`Engine::new`]).
const DROP_GRACE: Duration = Duration::from_secs(1);

/// The I/O side of a client driven by threads. See the [module documentation](self).
#[derive(Debug)]
pub struct Engine {
    shared: Shared,
    /// The client's clock (the state reads the same).
    time: TimeSource,
    tls: TlsContext,
    write_timeout: Duration,
    connection_timeout: Duration,
    failover: Option<FailoverControl>,
}

/// What the driver must do next, from [`Engine::take_outputs`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Outputs {
    /// Connections to open or close, in order.
    pub io: Vec<IoRequest>,
    /// Bytes to write, in order.
    pub transmits: Vec<Transmit>,
    /// When to call [`Engine::handle_timeout`] next.
    pub deadline: Option<Instant>,
    /// The client finished closing: the driver may stop once it has done the above.
    pub closed: bool,
}

impl Engine {
    /// Validates `options`, builds the core, and returns the engine (for the driver) and the
    /// application handle. `wake` is called (never blocking) whenever the application gave the
    /// driver new work.
    ///
    /// Dropping the last handle of such a client (without `close`) closes it and waits for the
    /// close to end, at most the operation timeout plus the write timeout plus a second, unless
    /// the drop happens on the driver's thread: messages batched or in flight are then stored
    /// before the program can go on and exit.
    pub fn new(
        options: ClientOptions,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<(Engine, ClientHandle), Error> {
        // Dropping the last handle waits for the close: the core's own bound (the operation
        // timeout), then the time the driver may take to write the last bytes.
        let drop_bound = options
            .core
            .operation_timeout
            .saturating_add(options.write_timeout)
            .saturating_add(DROP_GRACE);
        let time = TimeSource::System;
        let NewState {
            shared,
            tls,
            write_timeout,
            connection_timeout,
            failover,
        } = new_state(options, time.clone(), DriverWake::Callback(Box::new(wake)))?;
        shared.with(|st| st.set_wait_on_drop(drop_bound));
        let handle = ClientHandle::from_shared(shared.clone());
        Ok((
            Engine {
                shared,
                time,
                tls,
                write_timeout,
                connection_timeout,
                failover,
            },
            handle,
        ))
    }

    /// The cluster failover prober, when the options asked for one: the driver runs it (probing
    /// with blocking connects) until [`FailoverControl::is_closing`]. `None` once taken.
    pub fn take_failover(&mut self) -> Option<FailoverControl> {
        self.failover.take()
    }

    /// The TLS settings.
    pub fn tls(&self) -> &TlsContext {
        &self.tls
    }

    /// The current time on the client's clock, the time to compare [`Outputs::deadline`] with:
    /// the system clock (`Instant::now()`), as a thread driver waits with the operating system's
    /// timeouts.
    pub fn now(&self) -> Instant {
        self.time.now()
    }

    /// How long a write may make no progress.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// The bound on connect plus handshake (also used for each TCP connect attempt and the TLS
    /// handshake).
    pub fn connect_timeout(&self) -> Duration {
        self.connection_timeout
    }

    /// The TLS server name for a connection being opened when it is not the host of its
    /// address (through an SNI proxy: the broker's host). See
    /// [`Client::tls_server_name`](pulsar_core::Client::tls_server_name).
    pub fn tls_server_name(&self, conn: ConnectionId) -> Option<String> {
        self.shared
            .with(|st| st.core.tls_server_name(conn).map(str::to_string))
    }

    /// The connection is established. Returns false when the core no longer wants it (close the
    /// socket).
    pub fn handle_connected(&self, conn: ConnectionId) -> bool {
        self.shared.with(|st| {
            let now = st.now();
            let ok = st.core.handle_connected(now, conn).is_ok();
            st.drain();
            ok
        })
    }

    /// The connection could not be established.
    pub fn handle_connect_failed(&self, conn: ConnectionId, reason: String) {
        self.shared.with(|st| {
            let now = st.now();
            if let Err(e) = st.core.handle_connect_failed(now, conn, reason) {
                tracing::debug!(conn = conn.get(), error = %e, "late connect failure");
            }
            st.drain();
        });
    }

    /// Bytes were read. Returns false when the core no longer knows the connection.
    pub fn handle_bytes(&self, conn: ConnectionId, data: &[u8]) -> bool {
        self.shared.with(|st| {
            let now = st.now();
            let ok = st.core.handle_bytes(now, conn, data).is_ok();
            st.drain();
            ok
        })
    }

    /// The connection failed or the peer closed it.
    pub fn handle_closed(&self, conn: ConnectionId) {
        self.shared.with(|st| {
            let now = st.now();
            if st.core.handle_closed(now, conn).is_ok() {
                tracing::info!(conn = conn.get(), "connection lost");
            }
            st.drain();
        });
    }

    /// Time passed: fires the core's timeout if its deadline was reached.
    pub fn handle_timeout(&self) {
        self.shared.with(|st| {
            let now = st.now();
            if st.core.poll_timeout().is_some_and(|d| now >= d) {
                st.core.handle_timeout(now);
                st.drain();
            }
        });
    }

    /// `n` bytes taken from [`Outputs::transmits`] were written (or dropped with their
    /// connection).
    pub fn wrote(&self, n: usize) {
        self.shared.with(|st| st.wrote(n));
    }

    /// Moves everything the driver must do into `out` (cleared first).
    pub fn take_outputs(&self, out: &mut Outputs) {
        out.io.clear();
        out.transmits.clear();
        self.shared.with(|st| {
            st.note_driver_thread();
            st.driver_running();
            st.drain();
            out.io.extend(st.io.drain(..));
            out.transmits.extend(st.transmits.drain(..));
            out.deadline = st.core.poll_timeout();
            st.armed = out.deadline;
            out.closed = st.is_closed();
        });
    }

    /// The driver stopped: application calls waiting on it fail from now on.
    pub fn finished(&self) {
        self.shared.with(|st| st.driver_stopped());
    }
}
