//! The blocking I/O driver: threads and std sockets only.
//!
//! - one driver thread owns the I/O side of the core ([`Engine`]): it opens and closes
//!   connections, writes what the core produces (blocking writes bounded by a write timeout), and
//!   waits for input with `recv_timeout(deadline - now)`;
//! - one thread per connection attempt connects (TCP, then the TLS handshake);
//! - one reader thread per connection reads the socket (decrypting TLS) and feeds the bytes to the
//!   driver through a bounded channel: a busy driver stops the readers, which stops the broker
//!   (TCP flow control).

use std::collections::BTreeMap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use pulsar_async::core::{BrokerAddress, ConnectionId, IoRequest, Transmit};
use pulsar_async::engine::{Engine, Outputs};
use pulsar_async::tls::{self, TlsContext};
use rustls::ClientConnection;

/// Inputs waiting in the channel before readers block.
pub(crate) const CHANNEL_BOUND: usize = 256;
/// Inputs handled per wake-up before the outputs are drained again.
const BATCH: usize = 64;
const READ_BUFFER: usize = 64 * 1024;
/// Transmits written by one vectored write at most.
const MAX_SLICES: usize = 64;

/// What the other threads tell the driver.
pub(crate) enum Input {
    /// The application gave the core new work.
    Wake,
    /// A connection attempt succeeded.
    Connected(ConnectionId, Writer),
    /// A connection attempt failed.
    ConnectFailed(ConnectionId, String),
    /// Bytes read (decrypted) from a connection.
    Bytes(ConnectionId, Vec<u8>),
    /// The TLS session has records to send (key update, alert).
    TlsFlush(ConnectionId),
    /// A connection's reader stopped (EOF or error).
    Closed(ConnectionId, String),
}

type Session = Arc<Mutex<ClientConnection>>;

fn lock(session: &Session) -> std::sync::MutexGuard<'_, ClientConnection> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The writing half of a connection (the reader thread owns a clone of the socket).
pub(crate) enum Writer {
    Plain(TcpStream),
    Tls { socket: TcpStream, session: Session },
}

impl Writer {
    fn socket(&self) -> &TcpStream {
        match self {
            Writer::Plain(s) | Writer::Tls { socket: s, .. } => s,
        }
    }

    /// Writes the transmits in order: with one vectored write at a time on a plain socket, one
    /// after the other through TLS (whose records copy the bytes anyway).
    fn write_all_of(&mut self, transmits: &[Transmit]) -> io::Result<()> {
        let Writer::Plain(socket) = self else {
            for t in transmits {
                self.write_all(&t.data)?;
            }
            return Ok(());
        };
        for batch in transmits.chunks(MAX_SLICES) {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            for (slot, t) in slices.iter_mut().zip(batch) {
                *slot = IoSlice::new(&t.data);
            }
            let mut slices = slices.get_mut(..batch.len()).unwrap_or_default();
            IoSlice::advance_slices(&mut slices, 0); // (drops leading empty slices)
                                                     // (`Write::write_all_vectored` is not stable yet.)
            while !slices.is_empty() {
                match socket.write_vectored(slices) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "socket accepts no more bytes",
                        ))
                    }
                    Ok(n) => IoSlice::advance_slices(&mut slices, n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Writes all of `data` (encrypting it for TLS), blocking at most the socket's write timeout
    /// between progress.
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(s) => s.write_all(data),
            Writer::Tls { socket, session } => {
                let mut rest = data;
                loop {
                    // Encrypt under the session lock, write without it.
                    let (n, records) = {
                        let mut s = lock(session);
                        let n = s.writer().write(rest)?;
                        let mut records = Vec::new();
                        while s.wants_write() {
                            s.write_tls(&mut records)?;
                        }
                        (n, records)
                    };
                    socket.write_all(&records)?;
                    rest = rest.get(n..).unwrap_or_default();
                    if rest.is_empty() {
                        return Ok(());
                    }
                    if n == 0 && records.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "TLS session stuck",
                        ));
                    }
                }
            }
        }
    }

    fn shutdown(&self) {
        let _ = self.socket().shutdown(Shutdown::Both);
    }
}

/// The driver thread's loop. Returns when the client finished closing.
pub(crate) fn run(engine: Engine, rx: Receiver<Input>, tx: SyncSender<Input>) {
    let mut conns: BTreeMap<ConnectionId, Writer> = BTreeMap::new();
    let mut out = Outputs::default();
    let connect_timeout = engine.connect_timeout();
    loop {
        engine.take_outputs(&mut out);
        let mut more = false;
        // Bytes first: they were queued before any close request of the same drain. The
        // consecutive transmits of a connection go out together (one vectored write on a plain
        // socket: a large payload is a transmit of its own, written where it is).
        let mut rest = out.transmits.as_slice();
        while let Some(first) = rest.first() {
            let conn = first.conn;
            let run = rest.iter().take_while(|t| t.conn == conn).count();
            let (group, later) = rest.split_at(run);
            rest = later;
            let len: usize = group.iter().map(|t| t.data.len()).sum();
            if let Some(w) = conns.get_mut(&conn) {
                if let Err(e) = w.write_all_of(group) {
                    tracing::info!(conn = conn.get(), error = %e, "write failed");
                    w.shutdown();
                    conns.remove(&conn);
                    engine.handle_closed(conn);
                    more = true;
                }
            }
            engine.wrote(len);
        }
        out.transmits.clear();
        for io in out.io.drain(..) {
            match io {
                IoRequest::Connect { conn, address } => {
                    start_connect(&engine, conn, address, connect_timeout, &tx);
                }
                IoRequest::Close { conn } => {
                    if let Some(w) = conns.remove(&conn) {
                        tracing::debug!(conn = conn.get(), "closing");
                        w.shutdown();
                    }
                }
                other => tracing::warn!(?other, "unknown I/O request"),
            }
        }
        if out.closed && conns.is_empty() {
            break;
        }
        if more {
            continue;
        }
        let now = engine.now();
        let input = match out.deadline {
            Some(d) if d <= now => {
                engine.handle_timeout();
                continue;
            }
            Some(d) => rx.recv_timeout(d - now),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match input {
            Ok(input) => {
                handle(&engine, &mut conns, input);
                for _ in 0..BATCH {
                    match rx.try_recv() {
                        Ok(input) => handle(&engine, &mut conns, input),
                        Err(_) => break,
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => engine.handle_timeout(),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for (_, w) in conns {
        w.shutdown();
    }
    tracing::debug!("client driver thread finished");
    engine.finished();
}

fn handle(engine: &Engine, conns: &mut BTreeMap<ConnectionId, Writer>, input: Input) {
    match input {
        Input::Wake => {}
        Input::Connected(conn, writer) => {
            if engine.handle_connected(conn) {
                tracing::debug!(conn = conn.get(), "connected");
                conns.insert(conn, writer);
            } else {
                writer.shutdown();
            }
        }
        Input::ConnectFailed(conn, reason) => {
            tracing::warn!(conn = conn.get(), %reason, "connect failed");
            engine.handle_connect_failed(conn, reason);
        }
        Input::Bytes(conn, data) => {
            if !engine.handle_bytes(conn, &data) {
                if let Some(w) = conns.remove(&conn) {
                    w.shutdown();
                }
            }
        }
        Input::TlsFlush(conn) => {
            if let Some(w) = conns.get_mut(&conn) {
                if let Err(e) = w.write_all(&[]) {
                    tracing::info!(conn = conn.get(), error = %e, "TLS flush failed");
                    w.shutdown();
                    conns.remove(&conn);
                    engine.handle_closed(conn);
                }
            }
        }
        Input::Closed(conn, reason) => {
            if let Some(w) = conns.remove(&conn) {
                tracing::info!(conn = conn.get(), %reason, "connection lost");
                w.shutdown();
                engine.handle_closed(conn);
            }
        }
    }
}

fn start_connect(
    engine: &Engine,
    conn: ConnectionId,
    address: BrokerAddress,
    timeout: Duration,
    tx: &SyncSender<Input>,
) {
    if engine.tls().require_tls() && !address.tls {
        let reason = format!("TLS is required but the broker address {address} is plain text");
        engine.handle_connect_failed(conn, reason);
        return;
    }
    let tls = engine.tls().clone();
    // Through an SNI proxy TLS names the broker, not the proxy connected to.
    let server_name = engine.tls_server_name(conn);
    let write_timeout = engine.write_timeout();
    let tx2 = tx.clone();
    let spawned = thread::Builder::new()
        .name(format!("pulsar-connect-{}", conn.get()))
        .spawn(move || {
            tracing::debug!(conn = conn.get(), %address, "connecting");
            let input = match open(
                &address,
                server_name.as_deref(),
                &tls,
                timeout,
                write_timeout,
            ) {
                Ok((writer, reader)) => {
                    // Connected goes first: the reader's bytes must follow it in the channel.
                    if tx2.send(Input::Connected(conn, writer)).is_err() {
                        return;
                    }
                    spawn_reader(conn, reader, tx2);
                    return;
                }
                Err(reason) => Input::ConnectFailed(conn, reason),
            };
            let _ = tx2.send(input);
        });
    if let Err(e) = spawned {
        engine.handle_connect_failed(conn, format!("cannot spawn a connect thread: {e}"));
    }
}

/// The reading half: the socket and, for TLS, the session shared with the writer.
struct ReadHalf {
    socket: TcpStream,
    session: Option<Session>,
}

/// Connects (each resolved address in turn) and performs the TLS handshake, naming
/// `server_name` (by default the address's host).
fn open(
    address: &BrokerAddress,
    server_name: Option<&str>,
    tls: &TlsContext,
    timeout: Duration,
    write_timeout: Duration,
) -> Result<(Writer, ReadHalf), String> {
    let host = address.host.as_str();
    let port = address.port;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?;
    let mut last = format!("no address for {host}:{port}");
    let mut socket = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                socket = Some(s);
                break;
            }
            Err(e) => last = format!("TCP connect to {host}:{port} ({a}) failed: {e}"),
        }
    }
    let mut socket = socket.ok_or(last)?;
    let io_err = |e: io::Error| format!("socket setup for {host}:{port}: {e}");
    socket.set_nodelay(true).map_err(io_err)?;
    socket
        .set_write_timeout(Some(write_timeout))
        .map_err(io_err)?;
    let session = if address.tls {
        let config = tls
            .config()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let name = tls::server_name(server_name.unwrap_or(host)).map_err(|e| e.to_string())?;
        let mut session = ClientConnection::new(config, name)
            .map_err(|e| format!("TLS session for {host}:{port}: {e}"))?;
        socket.set_read_timeout(Some(timeout)).map_err(io_err)?;
        while session.is_handshaking() {
            session
                .complete_io(&mut socket)
                .map_err(|e| tls::describe_handshake_error(host, port, &e))?;
        }
        socket.set_read_timeout(None).map_err(io_err)?;
        session.set_buffer_limit(None);
        Some(Arc::new(Mutex::new(session)))
    } else {
        None
    };
    let reader = socket.try_clone().map_err(io_err)?;
    let writer = match &session {
        None => Writer::Plain(socket),
        Some(s) => Writer::Tls {
            socket,
            session: s.clone(),
        },
    };
    Ok((
        writer,
        ReadHalf {
            socket: reader,
            session,
        },
    ))
}

fn spawn_reader(conn: ConnectionId, half: ReadHalf, tx: SyncSender<Input>) {
    let tx2 = tx.clone();
    let spawned = thread::Builder::new()
        .name(format!("pulsar-conn-{}-reader", conn.get()))
        .spawn(move || {
            let reason = read_loop(conn, half, &tx2);
            let _ = tx2.send(Input::Closed(conn, reason));
        });
    if let Err(e) = spawned {
        let _ = tx.send(Input::Closed(
            conn,
            format!("cannot spawn a reader thread: {e}"),
        ));
    }
}

/// Reads until EOF or an error; returns why it stopped.
fn read_loop(conn: ConnectionId, mut half: ReadHalf, tx: &SyncSender<Input>) -> String {
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match half.socket.read(&mut buf) {
            Ok(0) => return "closed by the broker".into(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return format!("read failed: {e}"),
        };
        let received = buf.get(..n).unwrap_or_default();
        let data = match &half.session {
            None => received.to_vec(),
            Some(session) => match decrypt(session, received) {
                Ok((plain, flush, eof)) => {
                    if flush {
                        match tx.try_send(Input::TlsFlush(conn)) {
                            Ok(()) | Err(TrySendError::Full(_)) => {}
                            Err(TrySendError::Disconnected(_)) => return "client gone".into(),
                        }
                    }
                    if eof {
                        if !plain.is_empty() {
                            let _ = tx.send(Input::Bytes(conn, plain));
                        }
                        return "TLS session closed by the broker".into();
                    }
                    plain
                }
                Err(e) => return format!("TLS error: {e}"),
            },
        };
        if data.is_empty() {
            continue;
        }
        if tx.send(Input::Bytes(conn, data)).is_err() {
            return "client gone".into();
        }
    }
}

/// Feeds TLS records to the session; returns the plaintext, whether records wait to be sent,
/// and whether the peer closed the session.
fn decrypt(session: &Session, mut records: &[u8]) -> Result<(Vec<u8>, bool, bool), String> {
    let mut s = lock(session);
    let mut plain = Vec::new();
    let mut eof = false;
    while !records.is_empty() {
        s.read_tls(&mut records).map_err(|e| e.to_string())?;
        s.process_new_packets().map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match s.reader().read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => plain.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok((plain, s.wants_write(), eof))
}
