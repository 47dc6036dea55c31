//! The smallest useful runtime for `pulsar-core`: non-blocking std sockets polled in one loop.
//!
//! The integration tests that drive the core directly (without an async adapter) keep their own
//! client and event list and hand both to [`StdSockets::turn`], which does the I/O of one round:
//! it opens and closes the connections the core asks for, queues the frames it produces and writes
//! what each socket takes without blocking, reads each socket once, and fires the core's timer when
//! it is due.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pulsar_core::{BrokerAddress, Client, ConnectionId, Event, IoRequest, UsageError};

/// How long one connection attempt (per resolved address) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read from a socket at most per turn.
const READ_BUFFER: usize = 256 * 1024;

/// The wall clock in milliseconds since the Unix epoch (for `ClientConfig::unix_time_ms`); 0 if
/// the clock is before the epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// One open connection and the frames not yet written to it.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    out: VecDeque<Bytes>,
    /// Bytes of `out.front()` already written.
    offset: usize,
}

/// The sockets of one core client (see the module documentation).
#[derive(Debug)]
pub struct StdSockets {
    sockets: BTreeMap<ConnectionId, Socket>,
    buf: Vec<u8>,
}

impl Default for StdSockets {
    fn default() -> Self {
        StdSockets::new()
    }
}

impl StdSockets {
    /// No connection yet.
    pub fn new() -> StdSockets {
        StdSockets {
            sockets: BTreeMap::new(),
            buf: vec![0; READ_BUFFER],
        }
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// One round of I/O for `client`: its connection requests, frames and events (each handed to
    /// `on_event`, in order), then the writes and one read per socket, then its timer if due.
    /// Returns whether anything happened (the caller sleeps a little when nothing did). A socket
    /// that fails or reaches its end is reported to the core as closed.
    pub fn turn(
        &mut self,
        client: &mut Client,
        mut on_event: impl FnMut(Event),
    ) -> Result<bool, UsageError> {
        let mut busy = false;
        while let Some(io) = client.poll_io() {
            busy = true;
            match io {
                IoRequest::Connect { conn, address } => {
                    let now = Instant::now();
                    match connect(&address) {
                        Ok(stream) => {
                            self.sockets.insert(
                                conn,
                                Socket {
                                    stream,
                                    out: VecDeque::new(),
                                    offset: 0,
                                },
                            );
                            client.handle_connected(now, conn)?;
                        }
                        Err(e) => client.handle_connect_failed(now, conn, e.to_string())?,
                    }
                }
                IoRequest::Close { conn } => {
                    self.sockets.remove(&conn);
                }
                _ => {}
            }
        }
        while let Some(t) = client.poll_transmit() {
            busy = true;
            if let Some(s) = self.sockets.get_mut(&t.conn) {
                s.out.push_back(t.data);
            }
        }
        while let Some(e) = client.poll_event() {
            busy = true;
            on_event(e);
        }
        let mut failed = Vec::new();
        for (conn, s) in &mut self.sockets {
            match s.write_queued() {
                Ok(wrote) => busy |= wrote,
                Err(_) => failed.push(*conn),
            }
        }
        for (conn, s) in &mut self.sockets {
            match s.stream.read(&mut self.buf) {
                Ok(0) => failed.push(*conn),
                Ok(n) => {
                    busy = true;
                    client.handle_bytes(Instant::now(), *conn, &self.buf[..n])?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => failed.push(*conn),
            }
        }
        for conn in failed {
            if self.sockets.remove(&conn).is_some() {
                busy = true;
                client.handle_closed(Instant::now(), conn)?;
            }
        }
        if client.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            busy = true;
            client.handle_timeout(Instant::now());
        }
        Ok(busy)
    }
}

impl Socket {
    /// Writes queued frames until the socket would block. Returns whether anything was written.
    fn write_queued(&mut self) -> std::io::Result<bool> {
        let mut wrote = false;
        while let Some(front) = self.out.front() {
            if self.offset >= front.len() {
                self.out.pop_front();
                self.offset = 0;
                continue;
            }
            match self.stream.write(&front[self.offset..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    wrote = true;
                    self.offset += n;
                    if self.offset == front.len() {
                        self.out.pop_front();
                        self.offset = 0;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(wrote)
    }
}

/// A non-blocking, no-delay connection to `address` (each resolved address tried in turn).
fn connect(address: &BrokerAddress) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::from(ErrorKind::NotFound);
    for addr in (address.host.as_str(), address.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
