//! The async I/O driver: one task per client that owns the sockets and the timer, feeds the core
//! and writes what it produces. Runtime-agnostic: it only uses the [`Runtime`] trait and the
//! `futures` I/O traits.
//!
//! Each poll, under the state lock and for a bounded number of rounds: finish pending connects,
//! read every connection into the core (`handle_bytes`), fire the core's timeout when
//! `now >= deadline` (checked before polling the timer), drain the core's outputs, write each
//! connection's queue (keeping the partly written `Bytes` and its offset), flush, and finally arm
//! the timer at the next deadline.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::io::{AsyncRead, AsyncWrite};
use pulsar_core::{BrokerAddress, ConnectionId, IoRequest};

use crate::runtime::{BoxFuture, BoxIo, Runtime};
use crate::state::{Deferred, Shared, State};
use crate::tls::{self, TlsContext};

/// Rounds of work per poll before yielding to other tasks.
const ROUNDS_PER_POLL: usize = 16;
/// Reads per connection per round.
const READS_PER_ROUND: usize = 8;
/// Chunks written by one vectored write at most.
const MAX_SLICES: usize = 64;
/// Read buffer size.
const READ_BUFFER: usize = 64 * 1024;
/// How long a closed connection may take to write its last bytes.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// One open connection.
struct Conn {
    io: BoxIo,
    /// Bytes to write, in order; the front one is written from `offset`.
    queue: VecDeque<Bytes>,
    offset: usize,
    /// Bytes in `queue` not yet written.
    unwritten: usize,
    /// Something was written since the last successful flush.
    needs_flush: bool,
    /// When the socket last accepted bytes (or when bytes started waiting).
    last_progress: Instant,
    /// A read or a write returned `Pending` during this poll of the driver: its waker is
    /// registered, so the later rounds of the poll skip the system call that would fail again.
    read_blocked: bool,
    write_blocked: bool,
}

impl Conn {
    fn new(io: BoxIo, now: Instant) -> Conn {
        Conn {
            io,
            queue: VecDeque::new(),
            offset: 0,
            unwritten: 0,
            needs_flush: false,
            last_progress: now,
            read_blocked: false,
            write_blocked: false,
        }
    }

    fn push(&mut self, data: Bytes, now: Instant) {
        if data.is_empty() {
            return;
        }
        if self.queue.is_empty() {
            self.last_progress = now;
        }
        self.unwritten += data.len();
        self.queue.push_back(data);
    }

    /// Writes as much as the socket takes. `Err` means the connection is dead.
    fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        st: &mut State,
        now: Instant,
    ) -> Result<bool, String> {
        let mut progress = false;
        while !self.queue.is_empty() {
            // Every queued chunk (up to MAX_SLICES) in one vectored write: a large payload is a
            // chunk of its own (see `pulsar_core::Transmit`), written where it is.
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, (i, chunk)) in slices.iter_mut().zip(self.queue.iter().enumerate()) {
                let from = if i == 0 { self.offset } else { 0 };
                *slot = IoSlice::new(chunk.get(from..).unwrap_or_default());
                count += 1;
            }
            let slices = slices.get(..count).unwrap_or_default();
            let result = match slices {
                [one] => Pin::new(&mut self.io).poll_write(cx, one),
                _ => Pin::new(&mut self.io).poll_write_vectored(cx, slices),
            };
            match result {
                Poll::Ready(Ok(0)) => return Err("socket accepts no more bytes".into()),
                Poll::Ready(Ok(n)) => {
                    progress = true;
                    self.needs_flush = true;
                    self.last_progress = now;
                    self.unwritten = self.unwritten.saturating_sub(n);
                    st.wrote(n);
                    self.advance(n);
                }
                Poll::Ready(Err(e)) => return Err(format!("write failed: {e}")),
                Poll::Pending => {
                    self.write_blocked = true;
                    return Ok(progress);
                }
            }
        }
        if self.needs_flush {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(e)) => return Err(format!("flush failed: {e}")),
                Poll::Pending => self.write_blocked = true,
            }
        }
        Ok(progress)
    }

    /// Drops `n` written bytes from the front of the queue.
    fn advance(&mut self, mut n: usize) {
        while let Some(front) = self.queue.front() {
            let rest = front.len().saturating_sub(self.offset);
            if n < rest {
                self.offset += n;
                return;
            }
            n -= rest;
            self.queue.pop_front();
            self.offset = 0;
        }
    }

    fn idle(&self) -> bool {
        self.queue.is_empty() && !self.needs_flush
    }
}

/// A connection the core closed, writing its last bytes before shutting down.
struct Closing {
    conn: Conn,
    deadline: Instant,
}

/// The driver future. Dropping it (runtime shutdown) marks the client's driver as stopped.
pub(crate) struct Driver {
    shared: Shared,
    runtime: Arc<dyn Runtime>,
    tls: TlsContext,
    write_timeout: Duration,
    connecting: BTreeMap<ConnectionId, BoxFuture<Result<BoxIo, String>>>,
    conns: BTreeMap<ConnectionId, Conn>,
    closing: BTreeMap<ConnectionId, Closing>,
    buf: Box<[u8]>,
    /// Send callbacks to run after the lock is released (kept for its capacity).
    callbacks: Vec<Deferred>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("connecting", &self.connecting.len())
            .field("conns", &self.conns.len())
            .field("closing", &self.closing.len())
            .finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(
        shared: Shared,
        runtime: Arc<dyn Runtime>,
        tls: TlsContext,
        write_timeout: Duration,
    ) -> Driver {
        Driver {
            shared,
            runtime,
            tls,
            write_timeout,
            connecting: BTreeMap::new(),
            conns: BTreeMap::new(),
            closing: BTreeMap::new(),
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            callbacks: Vec::new(),
        }
    }

    /// One round: returns whether anything happened.
    fn round(&mut self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let mut progress = self.poll_connects(st, cx);
        progress |= self.poll_reads(st, cx);
        progress |= self.check_deadline(st);
        st.drain();
        progress |= self.take_outputs(st);
        progress |= self.poll_writes(st, cx);
        progress |= self.poll_closing(st, cx);
        st.drain();
        progress
    }

    fn poll_connects(&mut self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let mut done = Vec::new();
        for (id, fut) in self.connecting.iter_mut() {
            if let Poll::Ready(result) = fut.as_mut().poll(cx) {
                done.push((*id, result));
            }
        }
        let progress = !done.is_empty();
        for (id, result) in done {
            self.connecting.remove(&id);
            let now = st.now();
            match result {
                Ok(io) => match st.core.handle_connected(now, id) {
                    Ok(()) => {
                        tracing::debug!(conn = id.get(), "connected");
                        self.conns.insert(id, Conn::new(io, now));
                    }
                    Err(e) => tracing::debug!(conn = id.get(), error = %e, "late connect"),
                },
                Err(reason) => {
                    tracing::warn!(conn = id.get(), %reason, "connect failed");
                    if let Err(e) = st.core.handle_connect_failed(now, id, reason) {
                        tracing::debug!(conn = id.get(), error = %e, "late connect failure");
                    }
                }
            }
        }
        progress
    }

    fn poll_reads(&mut self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut dead = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            if conn.read_blocked {
                continue;
            }
            for _ in 0..READS_PER_ROUND {
                match Pin::new(&mut conn.io).poll_read(cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => {
                        dead.push((*id, "closed by the broker".to_string()));
                        break;
                    }
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        let data = self.buf.get(..n).unwrap_or_default();
                        let now = st.now();
                        if let Err(e) = st.core.handle_bytes(now, *id, data) {
                            tracing::debug!(conn = id.get(), error = %e, "bytes for a closed connection");
                            break;
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        dead.push((*id, format!("read failed: {e}")));
                        break;
                    }
                    Poll::Pending => {
                        conn.read_blocked = true;
                        break;
                    }
                }
            }
        }
        for (id, reason) in dead {
            progress = true;
            self.conn_failed(st, id, &reason);
        }
        progress
    }

    fn conn_failed(&mut self, st: &mut State, id: ConnectionId, reason: &str) {
        if let Some(conn) = self.conns.remove(&id) {
            tracing::info!(conn = id.get(), reason, "connection lost");
            st.wrote(conn.unwritten);
            let now = st.now();
            if let Err(e) = st.core.handle_closed(now, id) {
                tracing::debug!(conn = id.get(), error = %e, "handle_closed");
            }
        }
    }

    /// Fires the core's timeout when its deadline has passed (before any timer is polled).
    fn check_deadline(&mut self, st: &mut State) -> bool {
        let now = st.now();
        let mut progress = false;
        if st.core.poll_timeout().is_some_and(|d| now >= d) {
            st.core.handle_timeout(now);
            progress = true;
        }
        let stuck: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.queue.is_empty() && now >= c.last_progress + self.write_timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in stuck {
            progress = true;
            self.conn_failed(st, id, "write timed out");
        }
        progress
    }

    fn take_outputs(&mut self, st: &mut State) -> bool {
        let mut progress = false;
        let now = st.now();
        while let Some(io) = st.io.pop_front() {
            progress = true;
            match io {
                IoRequest::Connect { conn, address } => self.start_connect(st, conn, address),
                IoRequest::Close { conn } => {
                    self.connecting.remove(&conn);
                    if let Some(c) = self.conns.remove(&conn) {
                        tracing::debug!(conn = conn.get(), "closing");
                        self.closing.insert(
                            conn,
                            Closing {
                                conn: c,
                                deadline: now + CLOSE_GRACE,
                            },
                        );
                    }
                }
                other => tracing::warn!(?other, "unknown I/O request"),
            }
        }
        while let Some(t) = st.transmits.pop_front() {
            progress = true;
            if let Some(c) = self.conns.get_mut(&t.conn) {
                c.push(t.data, now);
            } else if let Some(c) = self.closing.get_mut(&t.conn) {
                c.conn.push(t.data, now);
            } else {
                st.wrote(t.data.len());
            }
        }
        progress
    }

    fn start_connect(&mut self, st: &mut State, conn: ConnectionId, address: BrokerAddress) {
        let now = st.now();
        if self.tls.require_tls() && !address.tls {
            let reason = format!("TLS is required but the broker address {address} is plain text");
            tracing::warn!(conn = conn.get(), %reason);
            if let Err(e) = st.core.handle_connect_failed(now, conn, reason) {
                tracing::debug!(conn = conn.get(), error = %e, "connect refused");
            }
            return;
        }
        let tls_config = if address.tls {
            match self.tls.config() {
                Ok(c) => Some(c),
                Err(e) => {
                    let reason = format!("TLS configuration: {e}");
                    if let Err(e) = st.core.handle_connect_failed(now, conn, reason) {
                        tracing::debug!(conn = conn.get(), error = %e, "connect refused");
                    }
                    return;
                }
            }
        } else {
            None
        };
        // Through an SNI proxy TLS names the broker, not the proxy connected to.
        let name = st.core.tls_server_name(conn).map(str::to_string);
        tracing::debug!(conn = conn.get(), %address, ?name, "connecting");
        let runtime = self.runtime.clone();
        let fut = open(runtime, tls_config, address.host, address.port, name);
        self.connecting.insert(conn, Box::pin(fut));
    }

    fn poll_writes(&mut self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut dead = Vec::new();
        let now = st.now();
        for (id, conn) in self.conns.iter_mut() {
            if conn.idle() || conn.write_blocked {
                continue;
            }
            match conn.poll_write_all(cx, st, now) {
                Ok(p) => progress |= p,
                Err(reason) => dead.push((*id, reason)),
            }
        }
        for (id, reason) in dead {
            progress = true;
            self.conn_failed(st, id, &reason);
        }
        progress
    }

    fn poll_closing(&mut self, st: &mut State, cx: &mut Context<'_>) -> bool {
        let now = st.now();
        let mut finished = Vec::new();
        for (id, c) in self.closing.iter_mut() {
            let flushed = match c.conn.poll_write_all(cx, st, now) {
                Ok(_) => c.conn.idle(),
                Err(_) => true,
            };
            let shut = flushed && !matches!(Pin::new(&mut c.conn.io).poll_close(cx), Poll::Pending);
            if shut || now >= c.deadline {
                finished.push(*id);
            }
        }
        let progress = !finished.is_empty();
        for id in finished {
            if let Some(c) = self.closing.remove(&id) {
                st.wrote(c.conn.unwritten);
                tracing::debug!(conn = id.get(), "closed");
            }
        }
        progress
    }

    /// The next time something must happen without I/O: the core's deadline, a write timeout, or
    /// the end of a close grace period.
    fn next_deadline(&self, st: &State) -> Option<Instant> {
        let writes = self
            .conns
            .values()
            .filter(|c| !c.queue.is_empty())
            .map(|c| c.last_progress + self.write_timeout);
        let closes = self.closing.values().map(|c| c.deadline);
        st.core
            .poll_timeout()
            .into_iter()
            .chain(writes)
            .chain(closes)
            .min()
    }

    fn finished(&self, st: &State) -> bool {
        st.is_closed()
            && st.io.is_empty()
            && st.transmits.is_empty()
            && self.conns.is_empty()
            && self.connecting.is_empty()
            && self.closing.is_empty()
    }
}

/// Opens a connection: TCP through the runtime, then TLS when asked, naming `server_name` (by
/// default `host`).
async fn open(
    runtime: Arc<dyn Runtime>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    host: String,
    port: u16,
    server_name: Option<String>,
) -> Result<BoxIo, String> {
    let tcp = runtime
        .connect(host.clone(), port)
        .await
        .map_err(|e| format!("TCP connect to {host}:{port} failed: {e}"))?;
    let Some(config) = tls_config else {
        return Ok(tcp);
    };
    let name =
        tls::server_name(server_name.as_deref().unwrap_or(&host)).map_err(|e| e.to_string())?;
    let stream = futures_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls::describe_handshake_error(&host, port, &e))?;
    Ok(Box::new(stream))
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        st.set_driver_waker(cx.waker());
        for conn in this.conns.values_mut() {
            conn.read_blocked = false;
            conn.write_blocked = false;
        }
        let mut result = Poll::Pending;
        let mut rounds = 0;
        loop {
            let progress = this.round(&mut st, cx);
            if this.finished(&st) {
                result = Poll::Ready(());
                break;
            }
            if progress {
                rounds += 1;
                if rounds >= ROUNDS_PER_POLL {
                    // Still busy: let other tasks run, come back soon.
                    cx.waker().wake_by_ref();
                    break;
                }
                continue;
            }
            // Idle: arm the timer. If the deadline passed meanwhile, go round again.
            let deadline = this.next_deadline(&st);
            st.armed = deadline;
            match deadline {
                None => break,
                Some(d) => {
                    // Moved only when the deadline changed: resetting a timer is not free
                    // (async-io re-registers it with its reactor and notifies the reactor's
                    // thread).
                    let (timer, at) = match st.timer.as_mut() {
                        Some(t) => t,
                        None => st.timer.insert((this.runtime.timer(d), d)),
                    };
                    if *at != d {
                        timer.as_mut().reset(d);
                        *at = d;
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        break;
                    }
                }
            }
        }
        st.take_deferred(&mut this.callbacks);
        drop(st);
        for callback in this.callbacks.drain(..) {
            callback.run();
        }
        if result.is_ready() {
            tracing::debug!("client driver finished");
        }
        result
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shared.with(|st| {
            for (_, conn) in std::mem::take(&mut self.conns) {
                st.wrote(conn.unwritten);
            }
            st.driver_stopped();
        });
    }
}
