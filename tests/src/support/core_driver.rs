//! A minimal blocking driver for the sans-IO core against a real broker: the core, its sockets
//! ([`StdSockets`]) and every event it reported, with the waits that the core-level integration
//! tests share (ready consumers and producers, sends with their receipts, receiving `n` messages).

use std::time::{Duration, Instant};

use pulsar_core::{
    Client, ClientConfig, ConsumerId, ConsumerOptions, Event, Message, MessageId, OutgoingMessage,
    ProducerId, ProducerOptions,
};

use super::sockets::{unix_ms, StdSockets};

/// What the driver's calls return: a test's error of any kind.
pub type DriverResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// How long a consumer, producer, receipt or the close may take.
const STEP: Duration = Duration::from_secs(30);

/// The core, its sockets and the events it reported so far (oldest first).
#[derive(Debug)]
pub struct CoreDriver {
    /// The core; tests call it directly for what the driver has no helper for.
    pub client: Client,
    io: StdSockets,
    /// Every event the core reported, oldest first.
    pub events: Vec<Event>,
}

impl CoreDriver {
    /// A core for the broker at `service_url`, with a fixed random seed (`seed`) so that a
    /// failure's names and backoffs can be read again.
    pub fn new(service_url: &str, seed: u64) -> DriverResult<CoreDriver> {
        let mut config = ClientConfig::new(service_url);
        config.unix_time_ms = unix_ms();
        config.seed = seed;
        Ok(CoreDriver {
            client: Client::new(config, Instant::now())?,
            io: StdSockets::new(),
            events: Vec::new(),
        })
    }

    /// One round of I/O and timers; whether anything happened.
    pub fn turn(&mut self) -> DriverResult<bool> {
        let events = &mut self.events;
        Ok(self.io.turn(&mut self.client, |e| events.push(e))?)
    }

    /// One round, or a millisecond's sleep when nothing happened.
    pub fn idle(&mut self) -> DriverResult {
        if !self.turn()? {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Runs until an event matching `pred` arrives or has arrived, for at most `limit`.
    pub fn wait(&mut self, limit: Duration, pred: impl Fn(&Event) -> bool) -> DriverResult<Event> {
        let end = Instant::now() + limit;
        loop {
            if let Some(e) = self.events.iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            if Instant::now() > end {
                return Err(
                    format!("no matching event within {limit:?}: {:#?}", self.events).into(),
                );
            }
            self.idle()?;
        }
    }

    /// Subscribes, and waits until the consumer is ready.
    pub fn subscribe(&mut self, topic: &str, opts: ConsumerOptions) -> DriverResult<ConsumerId> {
        let c = self.client.subscribe(Instant::now(), topic, opts)?;
        self.ready(c)
    }

    /// Waits until consumer (or reader) `c` is ready; its failure as an error.
    pub fn ready(&mut self, c: ConsumerId) -> DriverResult<ConsumerId> {
        let e = self.wait(STEP, |e| {
            matches!(e, Event::ConsumerReady { consumer } | Event::ConsumerFailed { consumer, .. } if *consumer == c)
        })?;
        match e {
            Event::ConsumerReady { .. } => Ok(c),
            other => Err(format!("{other:?}").into()),
        }
    }

    /// Creates a producer, and waits until it is ready.
    pub fn producer(&mut self, topic: &str, opts: ProducerOptions) -> DriverResult<ProducerId> {
        let p = self.client.create_producer(Instant::now(), topic, opts)?;
        let e = self.wait(STEP, |e| {
            matches!(e, Event::ProducerReady { producer, .. } | Event::ProducerFailed { producer, .. } if *producer == p)
        })?;
        match e {
            Event::ProducerReady { .. } => Ok(p),
            other => Err(format!("{other:?}").into()),
        }
    }

    /// Sends and waits for every receipt; returns the message ids.
    pub fn send_all(
        &mut self,
        p: ProducerId,
        msgs: Vec<OutgoingMessage>,
    ) -> DriverResult<Vec<MessageId>> {
        let sends: Vec<_> = msgs
            .into_iter()
            .map(|m| self.client.send(Instant::now(), p, m))
            .collect::<Result<_, _>>()?;
        self.client.flush(Instant::now(), p)?;
        let mut ids = Vec::new();
        for s in sends {
            let e = self.wait(
                STEP,
                |e| matches!(e, Event::SendCompleted { send, .. } if *send == s),
            )?;
            match e {
                Event::SendCompleted { result: Ok(id), .. } => ids.push(id),
                other => return Err(format!("{other:?}").into()),
            }
        }
        Ok(ids)
    }

    /// Sends one message per text and waits for every receipt.
    pub fn send_payloads(
        &mut self,
        p: ProducerId,
        payloads: &[&str],
    ) -> DriverResult<Vec<MessageId>> {
        let msgs = payloads
            .iter()
            .map(|s| OutgoingMessage::new(s.as_bytes().to_vec()))
            .collect();
        self.send_all(p, msgs)
    }

    /// Receives `n` messages from `c`; an error (with the newest events) after `limit`.
    pub fn take(&mut self, c: ConsumerId, n: usize, limit: Duration) -> DriverResult<Vec<Message>> {
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        while got.len() < n {
            while got.len() < n {
                match self.client.receive(Instant::now(), c) {
                    Some(m) => got.push(m),
                    None => break,
                }
            }
            if got.len() >= n {
                break;
            }
            if Instant::now() > end {
                let tail: Vec<&Event> = self.events.iter().rev().take(12).collect();
                return Err(format!(
                    "received {} of {n} messages: {:?}; last events (newest first): {tail:?}",
                    got.len(),
                    texts(&got)
                )
                .into());
            }
            self.idle()?;
        }
        Ok(got)
    }

    /// Whatever `c` receives during `d`.
    pub fn during(&mut self, c: ConsumerId, d: Duration) -> DriverResult<Vec<Message>> {
        let end = Instant::now() + d;
        let mut got = Vec::new();
        while Instant::now() < end {
            while let Some(m) = self.client.receive(Instant::now(), c) {
                got.push(m);
            }
            self.idle()?;
        }
        Ok(got)
    }

    /// Closes the client and waits until it is closed.
    pub fn close(mut self) -> DriverResult {
        self.client.close(Instant::now());
        self.wait(STEP, |e| *e == Event::ClientClosed)?;
        Ok(())
    }
}

/// The payloads of `ms` as text (lossy), for assertions and messages.
pub fn texts(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}
