//! A recording TCP proxy on 127.0.0.1: forwards connections to an upstream broker and keeps
//! every byte of both directions, so that traffic of another client (the official one) can be
//! decoded with pulsar-proto afterwards.
//!
//! A standalone broker answers `LOOKUP` with its own address and clients then connect to it
//! directly, past the proxy. With [`ProxyOptions::route_lookups_through_proxy`] the proxy sets
//! `proxy_through_service_url` in `LOOKUP_RESPONSE` frames on their way to the client, which then
//! opens its topic connections through the proxy too. The capture keeps the broker's bytes as
//! the broker sent them, before that change.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pulsar_proto::pb::base_command::Type;
use pulsar_proto::{encode_command, FrameDecoder};

/// Frames larger than this are passed through without being looked at.
const MAX_INSPECTED_FRAME: usize = 64 * 1024 * 1024;

/// How the proxy behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyOptions {
    /// Rewrite `LOOKUP_RESPONSE` so the client keeps using the proxy (see the module docs).
    pub route_lookups_through_proxy: bool,
}

/// Everything that crossed one proxied connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedConnection {
    /// Bytes from the client to the broker.
    pub client_to_broker: Vec<u8>,
    /// Bytes from the broker to the client, as the broker sent them.
    pub broker_to_client: Vec<u8>,
    /// How many `LOOKUP_RESPONSE` frames the proxy changed on their way to the client.
    pub lookups_rewritten: u32,
}

type Record = Arc<Mutex<CapturedConnection>>;

#[derive(Default)]
struct Accepted {
    records: Vec<Record>,
    pumps: Vec<JoinHandle<()>>,
    sockets: Vec<TcpStream>,
}

/// A running proxy. [`finish`](Self::finish) stops it and hands back the capture.
#[derive(Debug)]
pub struct RecordingProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<Accepted>>,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("connections", &self.records.len())
            .finish()
    }
}

impl RecordingProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to `upstream`.
    pub fn start(upstream: SocketAddr, options: ProxyOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let acceptor = std::thread::Builder::new()
            .name("recording-proxy-accept".into())
            .spawn(move || accept_loop(&listener, upstream, options, &stop_flag))?;
        Ok(RecordingProxy {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `pulsar://127.0.0.1:PORT` of the proxy.
    pub fn service_url(&self) -> String {
        format!("pulsar://{}", self.addr)
    }

    /// Stops accepting, waits up to `grace` for open connections to end (then cuts them), and
    /// returns the captures in the order the connections were accepted.
    pub fn finish(mut self, grace: Duration) -> Vec<CapturedConnection> {
        self.stop.store(true, Ordering::SeqCst);
        let accepted = self
            .acceptor
            .take()
            .and_then(|handle| handle.join().ok())
            .unwrap_or_default();
        let deadline = Instant::now() + grace;
        while accepted.pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for socket in &accepted.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        for pump in accepted.pumps {
            let _ = pump.join();
        }
        accepted
            .records
            .iter()
            .map(|r| r.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: &TcpListener,
    upstream: SocketAddr,
    options: ProxyOptions,
    stop: &AtomicBool,
) -> Accepted {
    let mut accepted = Accepted::default();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if let Err(e) = proxy_one(client, upstream, options, &mut accepted) {
                    eprintln!("recording proxy: connection to {upstream} failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                eprintln!("recording proxy: accept failed: {e}");
                break;
            }
        }
    }
    accepted
}

fn proxy_one(
    client: TcpStream,
    upstream: SocketAddr,
    options: ProxyOptions,
    accepted: &mut Accepted,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_nodelay(true)?;
    let broker = TcpStream::connect_timeout(&upstream, Duration::from_secs(10))?;
    broker.set_nodelay(true)?;
    let record = Record::default();
    accepted.records.push(Arc::clone(&record));
    accepted.sockets.push(client.try_clone()?);
    accepted.sockets.push(broker.try_clone()?);

    let (c_read, b_write) = (client.try_clone()?, broker.try_clone()?);
    let up_record = Arc::clone(&record);
    accepted.pumps.push(
        std::thread::Builder::new()
            .name("recording-proxy-c2b".into())
            .spawn(move || pump_client_to_broker(c_read, b_write, &up_record))?,
    );
    accepted.pumps.push(
        std::thread::Builder::new()
            .name("recording-proxy-b2c".into())
            .spawn(move || pump_broker_to_client(broker, client, &record, options))?,
    );
    Ok(())
}

fn lock(record: &Record) -> std::sync::MutexGuard<'_, CapturedConnection> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pump_client_to_broker(mut from: TcpStream, mut to: TcpStream, record: &Record) {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let data = chunk.get(..n).unwrap_or_default();
                lock(record).client_to_broker.extend_from_slice(data);
                if to.write_all(data).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn pump_broker_to_client(
    mut from: TcpStream,
    mut to: TcpStream,
    record: &Record,
    options: ProxyOptions,
) {
    let mut chunk = [0u8; 64 * 1024];
    let mut pending = BytesMut::new();
    let mut framing = options.route_lookups_through_proxy;
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = chunk.get(..n).unwrap_or_default();
        lock(record).broker_to_client.extend_from_slice(data);
        if !framing {
            if to.write_all(data).is_err() {
                break;
            }
            continue;
        }
        pending.extend_from_slice(data);
        let mut out = BytesMut::new();
        while let Some(frame_len) = complete_frame_len(&pending) {
            if frame_len > MAX_INSPECTED_FRAME {
                framing = false;
                break;
            }
            let frame = pending.split_to(frame_len);
            match rewrite_lookup(&frame) {
                Some(rewritten) => {
                    lock(record).lookups_rewritten += 1;
                    out.extend_from_slice(&rewritten);
                }
                None => out.extend_from_slice(&frame),
            }
        }
        if !framing {
            out.extend_from_slice(&pending.split());
        }
        if to.write_all(&out).is_err() {
            break;
        }
    }
    if !pending.is_empty() {
        let _ = to.write_all(&pending);
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The length (prefix included) of the frame at the front of `buf`, once all of it is there.
fn complete_frame_len(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = 4 + u32::from_be_bytes(prefix) as usize;
    (buf.len() >= len).then_some(len)
}

/// `Some(new frame)` when `frame` is a `LOOKUP_RESPONSE`, re-encoded with
/// `proxy_through_service_url = true`.
fn rewrite_lookup(frame: &[u8]) -> Option<BytesMut> {
    let mut buf = BytesMut::from(frame);
    let decoded = FrameDecoder::new(MAX_INSPECTED_FRAME)
        .decode(&mut buf)
        .ok()??;
    if decoded.command.kind() != Some(Type::LookupResponse) || decoded.payload.is_some() {
        return None;
    }
    let mut command = decoded.command;
    command
        .lookup_topic_response
        .as_mut()?
        .proxy_through_service_url = Some(true);
    let mut out = BytesMut::new();
    encode_command(&command, &mut out);
    Some(out)
}
