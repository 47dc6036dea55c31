//! A small blocking driver for pulsar-core (non-blocking std sockets polled in one loop, buffered
//! writes) and helpers for the producer integration tests: producing with back-pressure, reading a
//! topic back with the official Python client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulsar_core::{
    Client, ClientConfig, Event, MessageId, OutgoingMessage, ProducerId, ProducerOptions,
    SendError, SendId,
};

use pulsar_tests::support::{python_command, unix_ms, StdSockets};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type BoxError = Box<dyn std::error::Error>;

/// Drives one core client.
pub struct Driver {
    pub client: Client,
    io: StdSockets,
    /// Events not yet taken.
    pub events: VecDeque<Event>,
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
            io: StdSockets::new(),
            events: VecDeque::new(),
        })
    }

    /// Drains every output and feeds every input once. Returns whether anything happened.
    pub fn turn(&mut self) -> Result<bool, BoxError> {
        let events = &mut self.events;
        Ok(self.io.turn(&mut self.client, |e| events.push_back(e))?)
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
