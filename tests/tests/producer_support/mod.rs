//! A small blocking driver for pulsar-core (non-blocking std sockets polled in one loop, buffered
//! writes) and helpers for the producer integration tests: producing with back-pressure, reading a
//! topic back with the official Python client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pulsar_core::{
    Client, ClientConfig, ConnectionId, Event, IoRequest, MessageId, OutgoingMessage, ProducerId,
    ProducerOptions, SendError, SendId,
};
use pulsar_tests::support::python_command;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type BoxError = Box<dyn std::error::Error>;

struct Sock {
    stream: TcpStream,
    out: VecDeque<Bytes>,
    /// Bytes of `out.front()` already written.
    offset: usize,
}

/// Drives one core client.
pub struct Driver {
    pub client: Client,
    socks: BTreeMap<ConnectionId, Sock>,
    /// Events not yet taken.
    pub events: VecDeque<Event>,
    buf: Vec<u8>,
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Driver {
    pub fn new(service_url: &str) -> Result<Driver, BoxError> {
        let mut config = ClientConfig::new(service_url);
        config.seed = 11;
        Self::with_config(config)
    }

    pub fn with_config(mut config: ClientConfig) -> Result<Driver, BoxError> {
        config.unix_time_ms = unix_ms();
        Ok(Driver {
            client: Client::new(config, Instant::now())?,
            socks: BTreeMap::new(),
            events: VecDeque::new(),
            buf: vec![0; 256 * 1024],
        })
    }

    /// Drains every output and feeds every input once. Returns whether anything happened.
    pub fn turn(&mut self) -> Result<bool, BoxError> {
        let mut busy = false;
        while let Some(io) = self.client.poll_io() {
            busy = true;
            match io {
                IoRequest::Connect { conn, address } => {
                    let now = Instant::now();
                    match TcpStream::connect((address.host.as_str(), address.port)) {
                        Ok(s) => {
                            s.set_nonblocking(true)?;
                            s.set_nodelay(true)?;
                            self.socks.insert(
                                conn,
                                Sock {
                                    stream: s,
                                    out: VecDeque::new(),
                                    offset: 0,
                                },
                            );
                            self.client.handle_connected(now, conn)?;
                        }
                        Err(e) => self
                            .client
                            .handle_connect_failed(now, conn, e.to_string())?,
                    }
                }
                IoRequest::Close { conn } => {
                    self.socks.remove(&conn);
                }
                _ => {}
            }
        }
        while let Some(t) = self.client.poll_transmit() {
            busy = true;
            if let Some(s) = self.socks.get_mut(&t.conn) {
                s.out.push_back(t.data);
            }
        }
        while let Some(e) = self.client.poll_event() {
            busy = true;
            self.events.push_back(e);
        }
        // writes
        let mut failed = Vec::new();
        for (conn, s) in &mut self.socks {
            while let Some(front) = s.out.front() {
                match s.stream.write(&front[s.offset..]) {
                    Ok(n) => {
                        busy = true;
                        s.offset += n;
                        if s.offset == front.len() {
                            s.out.pop_front();
                            s.offset = 0;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        failed.push(*conn);
                        break;
                    }
                }
            }
        }
        // reads
        let ids: Vec<ConnectionId> = self.socks.keys().copied().collect();
        for conn in ids {
            let Some(s) = self.socks.get_mut(&conn) else {
                continue;
            };
            match s.stream.read(&mut self.buf) {
                Ok(0) => failed.push(conn),
                Ok(n) => {
                    busy = true;
                    let _ = self
                        .client
                        .handle_bytes(Instant::now(), conn, &self.buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => failed.push(conn),
            }
        }
        for conn in failed {
            if self.socks.remove(&conn).is_some() {
                busy = true;
                let _ = self.client.handle_closed(Instant::now(), conn);
            }
        }
        if self
            .client
            .poll_timeout()
            .is_some_and(|t| t <= Instant::now())
        {
            busy = true;
            self.client.handle_timeout(Instant::now());
        }
        Ok(busy)
    }

    /// Turns once, sleeping a little when idle.
    pub fn step(&mut self) -> Result<(), BoxError> {
        if !self.turn()? {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Runs until `f` returns a value for an event (events before it are kept unless `f` took them).
    pub fn wait_for<T>(
        &mut self,
        max: Duration,
        mut f: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, BoxError> {
        let end = Instant::now() + max;
        let mut checked = 0;
        loop {
            while checked < self.events.len() {
                if let Some(t) = f(&self.events[checked]) {
                    self.events.remove(checked);
                    return Ok(t);
                }
                checked += 1;
            }
            if Instant::now() > end {
                return Err(format!(
                    "condition not reached within {max:?}; last events: {:?}",
                    self.events.iter().rev().take(10).collect::<Vec<_>>()
                )
                .into());
            }
            self.step()?;
        }
    }

    /// Creates a producer and waits until it is ready.
    pub fn producer(
        &mut self,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<ProducerId, BoxError> {
        let p = self
            .client
            .create_producer(Instant::now(), topic, options)?;
        self.wait_for(Duration::from_secs(30), |e| match e {
            Event::ProducerReady { producer, .. } if *producer == p => Some(Ok(())),
            Event::ProducerFailed { producer, error } if *producer == p => {
                Some(Err(error.to_string()))
            }
            _ => None,
        })??;
        Ok(p)
    }

    /// Sends every message (waiting for room when the queue is full) and waits for every receipt.
    /// Results are in send order.
    pub fn produce(
        &mut self,
        producer: ProducerId,
        messages: impl IntoIterator<Item = OutgoingMessage>,
        max: Duration,
    ) -> Result<Vec<Result<MessageId, SendError>>, BoxError> {
        let end = Instant::now() + max;
        let mut order: Vec<SendId> = Vec::new();
        let mut done: BTreeMap<SendId, Result<MessageId, SendError>> = BTreeMap::new();
        let mut messages = messages.into_iter().peekable();
        while messages.peek().is_some() || done.len() < order.len() {
            if Instant::now() > end {
                return Err(format!(
                    "produce timed out: {} sent, {} completed",
                    order.len(),
                    done.len()
                )
                .into());
            }
            while let Some(m) = messages.peek() {
                match self.client.send(Instant::now(), producer, m.clone()) {
                    Ok(id) => {
                        order.push(id);
                        messages.next();
                    }
                    Err(SendError::QueueFull | SendError::MemoryLimit { .. }) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            self.step()?;
            // only this call's completions: others stay for the caller
            let first = order.first().copied();
            self.events.retain(|e| match e {
                Event::SendCompleted {
                    producer: p,
                    send,
                    result,
                } if *p == producer && first.is_some_and(|f| *send >= f) => {
                    done.insert(*send, result.clone());
                    false
                }
                _ => true,
            });
        }
        Ok(order
            .iter()
            .map(|s| done.remove(s).unwrap_or(Err(SendError::ProducerClosed)))
            .collect())
    }

    /// Closes the client and waits for it.
    pub fn close(&mut self) -> TestResult {
        self.client.close(Instant::now());
        self.wait_for(Duration::from_secs(30), |e| {
            (*e == Event::ClientClosed).then_some(())
        })
    }
}

/// The payload of message `i` in the bulk tests (the Python checker rebuilds it).
pub fn bulk_payload(i: usize) -> Bytes {
    let mut s = format!("{i:08}|");
    for j in 0..(i % 64) {
        s.push(char::from(b'a' + (j % 26) as u8));
    }
    Bytes::from(s)
}

/// Python reading `count` messages of `topic` from the earliest position with the official client;
/// `body` runs for every message `msg` (index `n`) and may append to the list `out`, which is
/// printed as JSON at the end.
pub fn python_read(
    service_url: &str,
    topic: &str,
    count: usize,
    setup: &str,
    body: &str,
) -> Result<serde_json::Value, BoxError> {
    let script = format!(
        r#"
import json, sys, pulsar, logging
from pulsar.schema import *
{setup}
client = pulsar.Client({service_url:?}, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
consumer = client.subscribe({topic:?}, 'py-check', initial_position=pulsar.InitialPosition.Earliest, **SUBSCRIBE)
out = []
for n in range({count}):
    try:
        msg = consumer.receive(timeout_millis=30000)
    except Exception as e:
        out.append({{"error": "receive %d: %s" % (n, e)}})
        break
{body}
    consumer.acknowledge(msg)
try:
    extra = consumer.receive(timeout_millis=1000)
    out.append({{"error": "unexpected extra message %r" % (extra.data()[:40],)}})
except Exception:
    pass
client.close()
print(json.dumps(out))
"#,
        setup = if setup.contains("SUBSCRIBE") {
            setup.to_string()
        } else {
            format!("{setup}\nSUBSCRIBE = {{}}")
        },
    );
    let out = python_command().arg("-c").arg(&script).output()?;
    if !out.status.success() {
        return Err(format!(
            "python failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    let stdout = String::from_utf8(out.stdout)?;
    let last = stdout.lines().last().unwrap_or("[]");
    Ok(serde_json::from_str(last)?)
}

/// Runs a Python snippet with the official client available as `client` and prints its last line.
pub fn python(service_url: &str, code: &str) -> Result<String, BoxError> {
    let script = format!(
        "import json, pulsar\nclient = pulsar.Client({service_url:?}, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))\n{code}\nclient.close()\n"
    );
    let out = python_command().arg("-c").arg(&script).output()?;
    if !out.status.success() {
        return Err(format!("python failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .last()
        .unwrap_or("")
        .to_string())
}
