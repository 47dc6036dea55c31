//! The application side of a run: what every producer sent and learnt, what every consumer received,
//! and the checks that can be made as events arrive (completion order, delivery order).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use std::fmt;

use pulsar_core::{ConsumerId, MessageId, ProducerId, SendId};

use crate::sim::params::{ConsumerSpec, ProducerSpec, SubKind};

/// Payload of message `index` of the producer labelled `label`: `label#index`, followed for a
/// chunking producer by `~` and a filler of letters (hard to compress) that makes three messages in
/// four between 1.5 and 3.5 times `max_size` (the broker's maximum message size).
pub fn payload(label: &str, index: u32, chunking: bool, max_size: usize) -> String {
    let head = format!("{label}#{index}");
    if !chunking {
        return head;
    }
    let len = max_size / 2 + (index % 4) as usize * max_size + (index as usize * 37) % 500;
    let mut s = String::with_capacity(head.len() + 1 + len);
    s.push_str(&head);
    s.push('~');
    let mut x = u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ label.len() as u64 ^ 0xA5A5;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(char::from(b'a' + (x % 26) as u8));
    }
    s
}

/// The label and index encoded in a payload.
pub fn parse_payload(bytes: &[u8]) -> Option<(String, u32)> {
    let s = std::str::from_utf8(bytes).ok()?;
    let (label, rest) = s.split_once('#')?;
    let index = rest.split_once('~').map_or(rest, |(i, _)| i);
    Some((label.to_owned(), index.parse().ok()?))
}

/// A short form of a payload for traces and reports (`label#index` and the filler's length).
pub fn short(text: &str) -> String {
    match text.split_once('~') {
        Some((head, filler)) => format!("{head}~{}", filler.len()),
        None => text.to_owned(),
    }
}

/// What names one send: the core's handle, or (for the async client, whose callbacks never
/// learn it) the application's index of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SendRef {
    /// The core's send handle.
    Core(SendId),
    /// The application's index of the message (per producer).
    App(u32),
}

impl From<SendId> for SendRef {
    fn from(send: SendId) -> SendRef {
        SendRef::Core(send)
    }
}

impl fmt::Display for SendRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendRef::Core(send) => send.fmt(f),
            SendRef::App(index) => write!(f, "app-send#{index}"),
        }
    }
}

/// One message handed to `Client::send`.
#[derive(Debug, Clone)]
pub struct SendRecord {
    /// Application index.
    pub index: u32,
    /// The payload.
    pub payload: String,
    /// The producer handle used.
    pub handle: ProducerId,
    /// The send's name.
    pub send: SendRef,
    /// When it was handed over.
    pub sent_at: Duration,
    /// The outcome, once the core reported it (`Err` holds the error text).
    pub result: Option<Result<MessageId, String>>,
}

/// One application producer (possibly several core producers over time, same name).
#[derive(Debug, Clone)]
pub struct ProducerModel {
    /// Its specification.
    pub spec: ProducerSpec,
    /// Full topic name.
    pub topic: String,
    /// The current core handle.
    pub handle: Option<ProducerId>,
    /// A create is in flight or a handle is alive.
    pub creating: bool,
    /// The application asked to close the current handle.
    pub closing: bool,
    /// The planned close/re-create happened.
    pub recreated: bool,
    /// Next application index.
    pub next_index: u32,
    /// Every send, in order.
    pub sends: Vec<SendRecord>,
    /// The brokers' maximum message size (sizes the payloads of a chunking producer).
    pub max_size: usize,
    by_send: BTreeMap<SendRef, usize>,
    outstanding: BTreeMap<ProducerId, VecDeque<SendRef>>,
    last_in_domain: BTreeMap<(ProducerId, String), u32>,
}

impl ProducerModel {
    /// A producer that has sent nothing.
    pub fn new(spec: ProducerSpec, topic: String, max_size: usize) -> ProducerModel {
        ProducerModel {
            max_size,
            spec,
            topic,
            handle: None,
            creating: false,
            closing: false,
            recreated: false,
            next_index: 0,
            sends: Vec::new(),
            by_send: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            last_in_domain: BTreeMap::new(),
        }
    }

    /// Records an accepted send.
    pub fn record_send(&mut self, handle: ProducerId, send: impl Into<SendRef>, now: Duration) {
        let send = send.into();
        let index = self.next_index;
        self.next_index += 1;
        self.by_send.insert(send, self.sends.len());
        self.outstanding.entry(handle).or_default().push_back(send);
        self.sends.push(SendRecord {
            index,
            payload: self.payload_of(index),
            handle,
            send,
            sent_at: now,
            result: None,
        });
    }

    /// The payload of message `index`.
    pub fn payload_of(&self, index: u32) -> String {
        payload(&self.spec.label, index, self.spec.chunking, self.max_size)
    }

    /// The application index of `send`.
    pub fn index_of(&self, send: impl Into<SendRef>) -> Option<u32> {
        self.by_send
            .get(&send.into())
            .and_then(|i| self.sends.get(*i))
            .map(|r| r.index)
    }

    /// Whether `send` belongs to this producer.
    pub fn owns(&self, send: impl Into<SendRef>) -> bool {
        self.by_send.contains_key(&send.into())
    }

    /// The ordering domain of a completion of message `index` (see [`complete`](Self::complete)):
    /// completions are ordered per partition on a partitioned topic (`partition` of the receipt),
    /// per key with key-based batching, and failures there are not ordered at all.
    pub fn domain_of(
        &self,
        index: Option<u32>,
        partition: Option<i32>,
        partitioned: bool,
    ) -> Option<String> {
        let key_based = self.spec.keyed && self.spec.batching.is_some_and(|b| b.key_based);
        let key = if key_based {
            index
                .map(|k| format!(" key k{}", k % 5))
                .unwrap_or_default()
        } else {
            String::new()
        };
        match (partition, partitioned, key_based) {
            (None, true, _) | (None, _, true) => Some(String::new()),
            (Some(p), true, _) => Some(format!("partition {p}{key}")),
            (_, false, true) => Some(key.trim_start().to_owned()),
            _ => None,
        }
    }

    /// Records a completion; `Err` describes an order or bookkeeping violation.
    ///
    /// `domain` is the ordering domain of the completion: `None` when every completion of the
    /// producer must arrive in send order; `Some(d)` when only completions of the same domain are
    /// ordered (one partition of a partitioned topic, one key with key-based batching); `Some("")`
    /// when this completion is not ordered against anything.
    pub fn complete(
        &mut self,
        handle: ProducerId,
        send: impl Into<SendRef>,
        result: Result<MessageId, String>,
        domain: Option<&str>,
    ) -> Result<(), String> {
        let send = send.into();
        let Some(&i) = self.by_send.get(&send) else {
            return Err(format!("{send} completed but was never sent"));
        };
        let Some(rec) = self.sends.get_mut(i) else {
            return Err(format!("{send} has no record"));
        };
        if rec.result.is_some() {
            return Err(format!("{send} ({}) completed twice", rec.payload));
        }
        if rec.handle != handle {
            return Err(format!(
                "{send} ({}) sent on {} completed on {handle}",
                rec.payload, rec.handle
            ));
        }
        let payload = rec.payload.clone();
        let index = rec.index;
        rec.result = Some(result);
        let queue = self.outstanding.entry(handle).or_default();
        let head = queue.front().copied();
        queue.retain(|s| *s != send);
        match domain {
            None => match head {
                Some(h) if h == send => Ok(()),
                Some(h) => Err(format!(
                    "{} completion out of send order: {send} ({payload}) completed before {h}",
                    self.spec.label
                )),
                None => Err(format!("{send} completed with nothing outstanding")),
            },
            Some("") => Ok(()),
            Some(d) => {
                let key = (handle, d.to_owned());
                let last = self.last_in_domain.insert(key, index);
                match last {
                    Some(prev) if prev >= index => Err(format!(
                        "{} completion out of send order in {d}: {payload} completed after \
                         index {prev}",
                        self.spec.label
                    )),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Sends without an outcome yet.
    pub fn unfinished(&self) -> Vec<&SendRecord> {
        self.sends.iter().filter(|s| s.result.is_none()).collect()
    }

    /// Whether every planned message was handed over and has an outcome.
    pub fn finished(&self) -> bool {
        self.next_index >= self.spec.messages && self.sends.iter().all(|s| s.result.is_some())
    }
}

/// One application consumer (possibly several core consumers over time, same subscription).
#[derive(Debug, Clone)]
pub struct ConsumerModel {
    /// Its specification.
    pub spec: ConsumerSpec,
    /// Full topic name.
    pub topic: String,
    /// The current core handle.
    pub handle: Option<ConsumerId>,
    /// A subscribe is in flight or a handle is alive.
    pub subscribing: bool,
    /// The application asked to close the current handle.
    pub closing: bool,
    /// The planned close/re-subscribe happened.
    pub recreated: bool,
    /// A poll of the receiver queue is scheduled.
    pub poll_scheduled: bool,
    /// Messages received.
    pub received: u64,
    epoch: u64,
    last: Option<((u64, u64, i32), String)>,
    rewound_in: u64,
    /// When the current handle last lost its registration (the core dropped its queue then).
    pub last_loss: Option<Duration>,
}

impl ConsumerModel {
    /// A consumer that has received nothing.
    pub fn new(spec: ConsumerSpec, topic: String) -> ConsumerModel {
        ConsumerModel {
            spec,
            topic,
            handle: None,
            subscribing: false,
            closing: false,
            recreated: false,
            poll_scheduled: false,
            received: 0,
            epoch: 0,
            last: None,
            rewound_in: 0,
            last_loss: None,
        }
    }

    /// Whether delivery order is checked (one consumer on an ordered subscription).
    pub fn checks_order(&self, members: usize) -> bool {
        self.spec.kind == SubKind::Exclusive
            || (self.spec.kind == SubKind::Failover && members == 1)
    }

    /// The consumer lost its registration: its next message may go back (once).
    pub fn allow_rewind(&mut self) {
        self.epoch += 1;
    }

    /// Records a message at log position `pos` (ledger, entry, batch index); with `ordered`, `Err`
    /// describes an order violation: a position not after the previous one, other than the single
    /// rewind a reconnection allows (the broker redelivers from the first unacknowledged message).
    pub fn on_message(
        &mut self,
        text: &str,
        pos: (u64, u64, i32),
        ordered: bool,
    ) -> Result<(), String> {
        self.received += 1;
        let last = self.last.replace((pos, text.to_owned()));
        if !ordered {
            return Ok(());
        }
        match last {
            Some((prev, prev_text)) if pos <= prev => {
                if self.epoch == 0 || self.rewound_in >= self.epoch {
                    return Err(format!(
                        "{} received {text} at {pos:?} after {prev_text} at {prev:?} without a \
                         reconnection in between (stale or reordered delivery)",
                        self.spec.label
                    ));
                }
                self.rewound_in = self.epoch;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// What a subscription (all its consumers together) received.
#[derive(Debug, Clone, Default)]
pub struct SubRecord {
    /// Payloads received at least once.
    pub received: BTreeSet<String>,
    /// Durable (acks persisted).
    pub durable: bool,
    /// Consumers sharing it.
    pub members: usize,
    /// The topics holding its messages (the partitions of a partitioned topic).
    pub physical: Vec<String>,
}
