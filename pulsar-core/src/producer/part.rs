//! One producer on the wire (a non-partitioned topic, or one partition of a partitioned topic):
//! registration (PRODUCER → PRODUCER_SUCCESS), sequence ids, batching, compression, chunking, the
//! ordered pending queue matched against SEND_RECEIPTs, send timeouts, in-order resend after any
//! loss, and close after flushing.
//!
//! Messages accepted before the first registration wait unencoded (`waiting`): their sequence ids
//! are only assigned once the broker told the last one it stored for this producer name.
//!
//! Compression and chunking of unbatched messages are in `encode.rs`; the broker's commands
//! (receipts, send errors, close, migration) in `receipts.rs`.

mod encode;
mod receipts;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pulsar_proto::pb;

use super::batch::{Batcher, Closed};
use super::message::{OutgoingMessage, Refusal};
use super::options::{PartSettings, ProducerRequest};
use super::pending::{Op, Sends};
use crate::compression::CodecContext;
use crate::error::{Error, ProtocolError, SendError, ServerErrorCode};
use crate::event::{Event, Resource};
use crate::handle::{ConnectionId, ProducerId, SendId};
use crate::latency::LatencyHistogram;
use crate::link::{Link, Phase, Step};
use crate::message::MessageId;
use crate::outputs::Outputs;
use crate::request::{OpResult, RequestKind};
use crate::service_url::BrokerAddress;
use crate::shared::Shared;
use crate::stats::ProducerStats;
use crate::time;
use encode::Unbatched;

/// A message accepted by the application but not yet admitted (no sequence id yet).
#[derive(Debug)]
pub(super) struct Queued {
    pub(super) send: SendId,
    pub(super) msg: OutgoingMessage,
    /// When the application sent it.
    pub(super) at: Instant,
    /// Payload bytes (memory accounting).
    pub(super) size: usize,
}

/// What the owner must learn after a call.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub(super) enum Outcome {
    /// Nothing to report.
    None,
    /// Registered for the first time.
    Ready,
    /// The producer is gone (everything it held was completed); forget it.
    Gone {
        /// `None`: closed as asked.
        error: Option<Error>,
        /// Whether it had ever been registered.
        ever_ready: bool,
    },
}

/// Where closing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Waiting for every pending message to complete, until the deadline.
    Flushing {
        deadline: Instant,
    },
    /// CLOSE_PRODUCER sent.
    Requested,
}

/// Sends a CLOSE_PRODUCER whose answer does not matter (the broker may hold a registration the
/// client no longer wants); its request entry expires after the operation timeout.
pub(super) fn send_cleanup_close(
    sh: &mut Shared,
    now: Instant,
    conn: ConnectionId,
    id: ProducerId,
) {
    send_close(sh, now, conn, id, ProducerRequest::Cleanup);
}

/// Sends a CLOSE_PRODUCER for `id` as a request of kind `purpose`; returns its request id.
fn send_close(
    sh: &mut Shared,
    now: Instant,
    conn: ConnectionId,
    id: ProducerId,
    purpose: ProducerRequest,
) -> u64 {
    let request_id = sh.env.next_request_id();
    let cmd = pb::BaseCommand::from(pb::CommandCloseProducer {
        producer_id: id.get(),
        request_id,
        ..Default::default()
    });
    sh.conns.send_request(
        now,
        conn,
        request_id,
        &cmd,
        RequestKind::Producer(id, purpose),
    );
    request_id
}

/// The earlier of two optional instants.
#[inline]
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A batch timer firing also sends the batches whose delay ends within this fraction of their
/// `max_delay` (see [`Part::batch_horizon`]).
pub(super) const BATCH_SLACK_DIVISOR: u32 = 8;

/// How early a batch of delay `max_delay` may leave with the batches of a timer that fired.
#[inline]
pub(super) fn batch_slack(max_delay: std::time::Duration) -> std::time::Duration {
    max_delay / BATCH_SLACK_DIVISOR
}

/// Bytes a chunk leaves free below the broker's maximum message size.
const CHUNK_HEADROOM: usize = 1024;

/// Server errors that end a producer that was registered before (the others are retried).
fn fatal_after_ready(code: Option<ServerErrorCode>) -> bool {
    use ServerErrorCode::*;
    matches!(
        code,
        Some(
            TopicTerminatedError
                | ProducerFenced
                | TopicNotFound
                | AuthenticationError
                | AuthorizationError
                | IncompatibleSchema
                | InvalidTopicName
        )
    )
}

/// One wire producer.
#[derive(Debug)]
pub(super) struct Part {
    pub(super) id: ProducerId,
    /// The application's handle (events are reported under it).
    pub(super) app: ProducerId,
    /// Partition index, `-1` for a non-partitioned topic.
    pub(super) partition: i32,
    cfg: Arc<PartSettings>,
    pub(super) link: Link,
    /// The name in use (the broker's choice once registered, if none was given).
    pub(super) name: Option<String>,
    /// Producer epoch, incremented on each registration attempt.
    epoch: u64,
    /// Topic epoch from the broker (exclusive access modes), sent back on re-registration.
    topic_epoch: Option<u64>,
    /// The schema version the broker gave (boxed: most producers have none, and every idle
    /// producer carries the field).
    pub(super) schema_version: Option<Box<Bytes>>,
    /// The broker's `last_sequence_id` at the first registration.
    pub(super) last_sequence_id: i64,
    /// First registration done: messages get sequence ids and go to the pending queue.
    admitted: bool,
    waiting: VecDeque<Queued>,
    pending: VecDeque<Op>,
    /// The open batches; built on the first batchable message (an idle producer holds none).
    batcher: Option<Box<Batcher>>,
    next_seq: u64,
    /// Compression state; built on the first compressed payload.
    codec: Option<Box<CodecContext>>,
    closing: Closing,
    /// Messages and payload bytes completed since the owner last asked.
    freed_messages: usize,
    freed_bytes: usize,
    /// What the statistics report (see [`ProducerStats`]); built on the first write (an idle
    /// producer holds none).
    counters: Option<Box<SendCounters>>,
    /// The broker's maximum message size on the connection of the last registration.
    max_size: usize,
}

/// A partition producer's statistics counters (see [`ProducerStats`] for their meaning).
#[derive(Debug, Default)]
struct SendCounters {
    messages_sent: u64,
    batches_sent: u64,
    bytes_sent: u64,
    messages_acked: u64,
    receipts_received: u64,
    messages_failed: u64,
    /// Send latency of the confirmed messages; built on the first receipt.
    latency: Option<LatencyHistogram>,
}

impl SendCounters {
    /// `op` was just written: counted the first time only (resends are not new sends).
    fn written(&mut self, op: &mut Op) {
        if op.written {
            return;
        }
        op.written = true;
        self.messages_sent += op.sends.len() as u64;
        self.batches_sent += 1;
        self.bytes_sent += op.payload.len() as u64;
    }
}

impl Part {
    pub(super) fn new(
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        app: ProducerId,
        partition: i32,
        topic: Arc<str>,
        cfg: Arc<PartSettings>,
    ) -> Part {
        let link = Link::new(Resource::Producer(id), topic, sh, now);
        Part {
            id,
            app,
            partition,
            name: cfg.name.clone(),
            link,
            epoch: 0,
            topic_epoch: None,
            schema_version: None,
            last_sequence_id: -1,
            admitted: false,
            waiting: VecDeque::new(),
            pending: VecDeque::new(),
            batcher: None,
            next_seq: 0,
            codec: None,
            closing: Closing::Open,
            freed_messages: 0,
            freed_bytes: 0,
            counters: None,
            max_size: pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE,
            cfg,
        }
    }

    pub(super) fn stats(&self) -> ProducerStats {
        let none = SendCounters::default();
        let counters = self.counters.as_deref().unwrap_or(&none);
        ProducerStats {
            id: self.app,
            topic: self.link.topic.to_string(),
            name: self.name.clone(),
            state: self.link.state(),
            connection: self.link.conn(),
            pending_messages: self.queued_messages(),
            pending_bytes: self.queued_bytes(),
            messages_sent: counters.messages_sent,
            batches_sent: counters.batches_sent,
            bytes_sent: counters.bytes_sent,
            messages_acked: counters.messages_acked,
            receipts_received: counters.receipts_received,
            messages_failed: counters.messages_failed,
            reconnects: self.link.reconnects,
            send_latency: counters.latency.clone().unwrap_or_default(),
        }
    }

    /// Messages held (waiting, batched or pending).
    fn queued_messages(&self) -> usize {
        self.waiting.len()
            + self.batcher.as_deref().map_or(0, Batcher::len)
            + self.pending.iter().map(|o| o.sends.len()).sum::<usize>()
    }

    /// Payload bytes held (waiting, batched or pending), as the memory limit counts them.
    fn queued_bytes(&self) -> usize {
        self.waiting.iter().map(|q| q.size).sum::<usize>()
            + self.batcher.as_deref().map_or(0, Batcher::bytes)
            + self.pending.iter().map(|o| o.bytes).sum::<usize>()
    }

    /// Messages and bytes completed since the last call.
    pub(super) fn take_freed(&mut self) -> (usize, usize) {
        let freed = (self.freed_messages, self.freed_bytes);
        self.freed_messages = 0;
        self.freed_bytes = 0;
        freed
    }

    pub(super) fn is_registered_once(&self) -> bool {
        self.link.ever_ready
    }

    /// The oldest message not completed yet.
    pub(super) fn oldest_send(&self) -> Option<SendId> {
        let pending = self.pending.iter().find_map(|o| o.sends.first());
        let batched = self.batcher.as_ref().and_then(|b| b.oldest()).map(|x| x.1);
        let waiting = self.waiting.front().map(|q| q.send);
        [pending, batched, waiting].into_iter().flatten().min()
    }

    fn oldest_at(&self) -> Option<Instant> {
        if let Some(o) = self.pending.front() {
            return Some(o.created);
        }
        if let Some(at) = self.batcher.as_deref().and_then(Batcher::oldest_at) {
            return Some(at);
        }
        self.waiting.front().map(|q| q.at)
    }

    /// Recomputed after every mutable access (the deadline index): kept to a few comparisons.
    #[inline]
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let mut next = self.link.next_timeout();
        if let Some(t) = self.cfg.send_timeout {
            if let Some(at) = self.oldest_at() {
                next = earliest(next, Some(time::after(at, t)));
            }
        }
        if let Some(b) = self.batcher.as_deref() {
            next = earliest(next, b.deadline);
        }
        if let Closing::Flushing { deadline } = self.closing {
            next = earliest(next, Some(deadline));
        }
        next
    }

    /// The largest frame the broker accepts (the default before CONNECTED).
    fn max_message_size(&self, sh: &Shared) -> usize {
        self.link
            .conn()
            .map_or(pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE, |c| {
                sh.conns.max_message_size(c)
            })
    }

    /// Quick size check before acceptance (the exact one happens on admission).
    #[inline]
    pub(super) fn precheck(&self, msg: &OutgoingMessage) -> Result<(), SendError> {
        super::precheck(&self.cfg, msg, self.max_size)
    }

    // ---- sends ----------------------------------------------------------------------------------

    /// Takes a message sent at `at` (what is kept of it is taken out): queued until the first
    /// registration, then admitted. A closing producer leaves it untouched.
    #[inline(always)]
    pub(super) fn add(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        send: SendId,
        msg: &mut OutgoingMessage,
        at: Instant,
    ) -> Result<(), Refusal> {
        if self.closing != Closing::Open {
            return Err(Refusal::Intact(SendError::ProducerClosed));
        }
        if !self.admitted {
            let size = msg.payload.len();
            self.waiting.push_back(Queued {
                send,
                msg: std::mem::take(msg),
                at,
                size,
            });
            return Ok(());
        }
        self.admit(sh, now, send, msg, at)
            .map_err(Refusal::Consumed)
    }

    /// Assigns the sequence id and batches or queues the message.
    #[inline]
    fn admit(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        send: SendId,
        msg: &mut OutgoingMessage,
        at: Instant,
    ) -> Result<(), SendError> {
        let size = msg.payload.len();
        let batch_max = self.cfg.batching.as_ref().map(|b| b.max_bytes);
        match batch_max {
            Some(max) if msg.batchable() && size <= max => {
                let b = match &mut self.batcher {
                    Some(b) => b,
                    none => none.insert(Box::new(Batcher::new(
                        self.cfg.batching.clone().unwrap_or_default(),
                    ))),
                };
                // Key-based batches are numbered when they close; a message with its own id
                // first closes the batches of other keys, so that the ids it was given stay in
                // wire order (assuming they increase).
                let key_based = b.key_based();
                let overflow = b.would_overflow(size)
                    || b.holds_other_txn(msg)
                    || (key_based && msg.sequence_id.is_some() && b.holds_other_keys(msg));
                if overflow {
                    self.close_batches(sh, now);
                }
                let seq = msg.sequence_id.unwrap_or(self.next_seq);
                if !key_based {
                    self.next_seq = self.next_seq.max(seq.wrapping_add(1));
                }
                let full = match self.batcher.as_deref_mut() {
                    Some(b) => {
                        // A batch's publish time is its first message's: only needed to open one.
                        let publish_time = if b.opens_batch_for(msg) {
                            sh.env.unix_millis(at)
                        } else {
                            0
                        };
                        b.add(at, send, seq, publish_time, msg)
                    }
                    None => false,
                };
                if full {
                    self.close_batches(sh, now);
                }
                Ok(())
            }
            _ => {
                // Whatever is batched goes first (and takes its sequence ids first).
                self.close_batches(sh, now);
                let seq = msg.sequence_id.unwrap_or(self.next_seq);
                let publish_time = sh.env.unix_millis(at);
                let deliver_at = match (msg.deliver_at, msg.deliver_after) {
                    (Some(t), _) => Some(t),
                    (None, Some(d)) => Some(
                        sh.env
                            .unix_millis(at)
                            .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    ),
                    (None, None) => None,
                };
                let mut metadata = Box::new(pb::MessageMetadata {
                    producer_name: String::new(),
                    sequence_id: seq,
                    publish_time,
                    replicate_to: msg.replicate_to(),
                    properties: std::mem::take(&mut msg.properties)
                        .into_iter()
                        .map(|(key, value)| pb::KeyValue { key, value })
                        .collect(),
                    partition_key: msg.key.take(),
                    partition_key_b64_encoded: msg.key_is_base64.then_some(true),
                    ordering_key: msg.ordering_key.take(),
                    event_time: msg.event_time,
                    null_value: msg.null_value.then_some(true),
                    deliver_at_time: deliver_at.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
                    schema_version: self.schema_version.as_deref().cloned(),
                    txnid_most_bits: msg.txn.map(|t| t.most_bits),
                    txnid_least_bits: msg.txn.map(|t| t.least_bits),
                    ..Default::default()
                });
                let payload = if msg.null_value {
                    Bytes::new()
                } else {
                    std::mem::take(&mut msg.payload)
                };
                // The broker's compaction sizes a message by `uncompressed_size` when it is set,
                // and deletes the key of an empty one: the Java client always sets it, and an
                // empty value (a tombstone) needs it to delete its key.
                if payload.is_empty() {
                    metadata.uncompressed_size = Some(0);
                }
                let unbatched = Unbatched {
                    send,
                    seq,
                    metadata,
                    payload,
                    size,
                    at,
                };
                self.single_ops(sh, unbatched)?;
                self.next_seq = self.next_seq.max(seq.wrapping_add(1));
                Ok(())
            }
        }
    }

    /// Sends whatever is batched now (batch full, delay over, flush, or an unbatched message).
    pub(super) fn close_batches(&mut self, sh: &mut Shared, now: Instant) {
        let Some(b) = self.batcher.as_mut() else {
            return;
        };
        if b.is_empty() {
            return;
        }
        let mut closed = b.close(&mut self.next_seq);
        for c in closed.drain(..) {
            self.batch_op(sh, now, c);
        }
        self.give_back(closed);
    }

    /// Returns the (drained) list of closed batches to the batcher for reuse.
    fn give_back(&mut self, closed: Vec<Closed>) {
        if let Some(b) = self.batcher.as_mut() {
            b.reuse(closed);
        }
    }

    fn batch_op(&mut self, sh: &mut Shared, now: Instant, c: Closed) {
        let count = c.sends.len();
        let (key, key_b64, ordering_key) = match c.key {
            Some(k) => (k.key, k.key_is_base64, k.ordering_key),
            None => (None, false, None),
        };
        let mut metadata = Box::new(pb::MessageMetadata {
            producer_name: String::new(),
            sequence_id: c.first_seq,
            publish_time: c.publish_time,
            num_messages_in_batch: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            highest_sequence_id: (c.highest_seq > c.first_seq).then_some(c.highest_seq),
            schema_version: self.schema_version.as_deref().cloned(),
            partition_key: key,
            partition_key_b64_encoded: key_b64.then_some(true),
            ordering_key,
            txnid_most_bits: c.txn.map(|t| t.most_bits),
            txnid_least_bits: c.txn.map(|t| t.least_bits),
            ..Default::default()
        });
        let sealed = self
            .compress(&mut metadata, c.payload)
            .and_then(|p| self.encrypt(now, &mut metadata, p));
        let payload = match sealed {
            Ok(p) => p,
            Err(e) => {
                for send in c.sends {
                    self.complete(&mut sh.out, send, Err(e.clone()));
                }
                self.freed_bytes += c.bytes;
                return;
            }
        };
        self.push_op(
            sh,
            Op {
                seq: c.first_seq,
                highest: c.highest_seq,
                batch_size: Some(i32::try_from(count).unwrap_or(i32::MAX)),
                is_chunk: false,
                metadata,
                payload,
                sends: Sends::Many(c.sends),
                bytes: c.bytes,
                created: c.created,
                written: false,
            },
        );
    }

    /// Appends an entry to the pending queue and writes it if registered.
    fn push_op(&mut self, sh: &mut Shared, op: Op) {
        self.pending.push_back(op);
        if let Some(conn) = self.link.ready_conn() {
            if let (Some(op), Some(buf)) = (self.pending.back_mut(), sh.conns.write_buffer(conn, 1))
            {
                let name = self.name.get_or_insert_with(String::new);
                op.encode(self.id.get(), name, buf);
                self.counters.get_or_insert_with(Box::default).written(op);
            }
        }
    }

    /// Writes every pending entry, in order (after a (re-)registration).
    fn write_all(&mut self, sh: &mut Shared, conn: ConnectionId) {
        let n = self.pending.len() as u64;
        if n == 0 {
            return;
        }
        if let Some(buf) = sh.conns.write_buffer(conn, n) {
            let name = self.name.get_or_insert_with(String::new);
            for op in &mut self.pending {
                op.encode(self.id.get(), name, buf);
                self.counters.get_or_insert_with(Box::default).written(op);
            }
        }
    }

    fn complete(&mut self, out: &mut Outputs, send: SendId, result: Result<MessageId, SendError>) {
        self.freed_messages += 1;
        if result.is_err() {
            self.counters
                .get_or_insert_with(Box::default)
                .messages_failed += 1;
        }
        out.events.push_back(Event::SendCompleted {
            producer: self.app,
            send,
            result,
        });
    }

    /// Fails every message held, oldest first.
    fn fail_all(&mut self, sh: &mut Shared, error: &SendError) {
        while let Some(op) = self.pending.pop_front() {
            self.fail_op(sh, op, error);
        }
        if let Some(b) = self.batcher.as_mut() {
            let mut closed = b.close(&mut self.next_seq);
            for c in closed.drain(..) {
                self.freed_bytes += c.bytes;
                for send in c.sends {
                    self.complete(&mut sh.out, send, Err(error.clone()));
                }
            }
            self.give_back(closed);
        }
        while let Some(q) = self.waiting.pop_front() {
            self.freed_bytes += q.size;
            self.complete(&mut sh.out, q.send, Err(error.clone()));
        }
    }

    fn fail_op(&mut self, sh: &mut Shared, op: Op, error: &SendError) {
        self.freed_bytes += op.bytes;
        match op.sends {
            Sends::None => {}
            Sends::One(s) => self.complete(&mut sh.out, s, Err(error.clone())),
            Sends::Many(v) => {
                for s in v {
                    self.complete(&mut sh.out, s, Err(error.clone()));
                }
            }
        }
    }

    // ---- timers ---------------------------------------------------------------------------------

    /// Handles what is due at `now`; with `fired` (a timer of some producer has come), also
    /// the batches ending within their slack (see [`Part::batch_horizon`]).
    pub(super) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant, fired: bool) -> Outcome {
        let mark = sh.out.events.len();
        let step = self.link.handle_timeout(sh, now);
        self.relabel(sh, mark);
        let outcome = self.apply(sh, now, step);
        if outcome != Outcome::None {
            return outcome;
        }
        if self
            .batcher
            .as_ref()
            .and_then(|b| b.deadline)
            .is_some_and(|d| d <= now || (fired && d <= self.batch_horizon(now)))
        {
            self.close_batches(sh, now);
        }
        if let Some(t) = self.cfg.send_timeout {
            if self.oldest_at().is_some_and(|at| time::passed(at, t, now)) {
                // The oldest message timed out: it and everything behind it fail, in order.
                self.fail_all(sh, &SendError::Timeout);
            }
        }
        if let Closing::Flushing { deadline } = self.closing {
            if deadline <= now {
                self.fail_all(sh, &SendError::ProducerClosed);
            }
        }
        self.try_finish_close(sh, now)
    }

    /// Batches whose delay ends by this instant are sent by a timer firing at `now`: the batch
    /// timers of many producers, a few microseconds apart, are handled in one pass (one call,
    /// one write) instead of one each. A batch leaves at most [`BATCH_SLACK_DIVISOR`]th of its
    /// delay early.
    #[inline]
    fn batch_horizon(&self, now: Instant) -> Instant {
        match &self.cfg.batching {
            Some(b) => time::after(now, batch_slack(b.max_delay)),
            None => now,
        }
    }

    // ---- close ----------------------------------------------------------------------------------

    /// The application asked to close: flush, wait for the receipts (at most `deadline`), then
    /// CLOSE_PRODUCER.
    pub(super) fn close(&mut self, sh: &mut Shared, now: Instant, deadline: Instant) -> Outcome {
        if self.closing != Closing::Open {
            return Outcome::None;
        }
        if !self.link.ever_ready {
            return self.finish(sh, SendError::ProducerClosed, None);
        }
        self.close_batches(sh, now);
        self.closing = Closing::Flushing { deadline };
        self.try_finish_close(sh, now)
    }

    fn try_finish_close(&mut self, sh: &mut Shared, now: Instant) -> Outcome {
        if !matches!(self.closing, Closing::Flushing { .. }) || !self.pending.is_empty() {
            return Outcome::None;
        }
        if self.batcher.as_ref().is_some_and(|b| !b.is_empty()) {
            self.close_batches(sh, now);
            return Outcome::None;
        }
        let Some(conn) = self.link.ready_conn() else {
            // Not registered anywhere right now: nothing to close on a broker.
            return self.finish(sh, SendError::ProducerClosed, None);
        };
        let request_id = send_close(sh, now, conn, self.id, ProducerRequest::Close);
        self.link.closing(conn, request_id);
        self.closing = Closing::Requested;
        Outcome::None
    }

    /// Completes everything held with `error` and forgets the registration.
    pub(super) fn finish(
        &mut self,
        sh: &mut Shared,
        send_error: SendError,
        error: Option<Error>,
    ) -> Outcome {
        self.fail_all(sh, &send_error);
        self.link.abandon(sh);
        Outcome::Gone {
            error,
            ever_ready: self.link.ever_ready,
        }
    }

    /// Given up by its application producer (its creation failed, or another partition ended
    /// it): completes everything held and, if registered, closes it on the broker (the answer does
    /// not matter), so that its name is free for the next producer. A PRODUCER still in flight is
    /// closed when its answer comes (`Producers::response`).
    pub(super) fn discard(&mut self, sh: &mut Shared, now: Instant, send_error: SendError) {
        if let Some(conn) = self.link.ready_conn() {
            send_cleanup_close(sh, now, conn, self.id);
        }
        let _gone = self.finish(sh, send_error, None);
    }

    /// Ends with a fatal error.
    fn fail(&mut self, sh: &mut Shared, error: Error) -> Outcome {
        let send_error = match &error {
            Error::Server { code, message } => SendError::Server {
                code: *code,
                message: message.clone(),
            },
            Error::IncompatibleSchema { message } => SendError::Server {
                code: ServerErrorCode::IncompatibleSchema,
                message: message.clone(),
            },
            e => SendError::Failed(e.clone()),
        };
        self.finish(sh, send_error, Some(error))
    }

    // ---- link -----------------------------------------------------------------------------------

    /// Reports the link's events under the application's handle.
    fn relabel(&self, sh: &mut Shared, mark: usize) {
        if self.id == self.app {
            return;
        }
        for e in sh.out.events.range_mut(mark.min(sh.out.events.len())..) {
            match e {
                Event::ProducerReconnecting { producer, .. } if *producer == self.id => {
                    *producer = self.app;
                }
                Event::TopicMoved {
                    resource: Resource::Producer(p),
                    ..
                } if *p == self.id => *p = self.app,
                _ => {}
            }
        }
    }

    fn apply(&mut self, sh: &mut Shared, now: Instant, step: Step) -> Outcome {
        match step {
            Step::Idle => Outcome::None,
            Step::Register(conn) => self.register(sh, now, conn),
            Step::Failed(error) => {
                if self.link.ever_ready {
                    self.fail(sh, error)
                } else {
                    let e = SendError::Failed(error.clone());
                    self.finish(sh, e, Some(error))
                }
            }
        }
    }

    fn register(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId) -> Outcome {
        let request_id = sh.env.next_request_id();
        let cmd = pb::BaseCommand::from(pb::CommandProducer {
            topic: self.link.topic.to_string(),
            producer_id: self.id.get(),
            request_id,
            producer_name: self.name.clone(),
            epoch: Some(self.epoch),
            user_provided_producer_name: Some(self.cfg.name.is_some()),
            metadata: self
                .cfg
                .properties
                .iter()
                .map(|(k, v)| pb::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            schema: self.cfg.schema.as_ref().and_then(|s| s.to_pb()),
            producer_access_mode: self
                .cfg
                .access_mode
                .is_exclusive()
                .then(|| self.cfg.access_mode.to_protocol()),
            topic_epoch: self.topic_epoch,
            initial_subscription_name: self.cfg.initial_subscription.clone(),
            ..Default::default()
        });
        self.epoch += 1;
        let deadline = self.link.request_deadline(&sh.env, now);
        if sh.conns.send_request_until(
            conn,
            request_id,
            &cmd,
            RequestKind::Producer(self.id, ProducerRequest::Create),
            Some(deadline),
        ) {
            self.link.registering(conn, request_id);
            Outcome::None
        } else {
            let step = self.link.failure(sh, now, Error::ConnectionClosed);
            self.apply(sh, now, step)
        }
    }

    fn registered(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        success: pb::CommandProducerSuccess,
    ) -> Outcome {
        let first = self.link.registered(conn);
        self.max_size = sh.conns.max_message_size(conn);
        self.name = Some(success.producer_name);
        if success.topic_epoch.is_some() {
            self.topic_epoch = success.topic_epoch;
        }
        self.schema_version = success.schema_version.map(Box::new);
        if first {
            let last = success.last_sequence_id.unwrap_or(-1);
            self.last_sequence_id = last;
            self.next_seq = match self.cfg.initial_sequence_id {
                Some(i) => i.wrapping_add(1),
                None if last >= 0 => (last as u64).wrapping_add(1),
                None => 0,
            };
            self.admitted = true;
            // Everything accepted so far, in order (written as it is queued: we are registered).
            while let Some(mut q) = self.waiting.pop_front() {
                let (send, size) = (q.send, q.size);
                if let Err(e) = self.admit(sh, now, q.send, &mut q.msg, q.at) {
                    self.freed_bytes += size;
                    self.complete(&mut sh.out, send, Err(e));
                }
            }
            Outcome::Ready
        } else {
            // Everything pending, in order, with the original sequence ids, before anything new.
            self.write_all(sh, conn);
            sh.out
                .events
                .push_back(Event::ProducerReconnected { producer: self.app });
            self.try_finish_close(sh, now)
        }
    }

    pub(super) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
    ) -> Outcome {
        let step = self.link.connection_ready(conn);
        self.apply(sh, now, step)
    }

    pub(super) fn address_up(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        address: &BrokerAddress,
    ) -> Outcome {
        let mark = sh.out.events.len();
        let step = self.link.address_up(sh, now, address);
        self.relabel(sh, mark);
        self.apply(sh, now, step)
    }

    pub(super) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
    ) -> Outcome {
        if self.link.conn() != Some(conn) {
            return Outcome::None;
        }
        if self.closing == Closing::Requested {
            // The broker forgets the producer with the connection.
            return self.finish(sh, SendError::ProducerClosed, None);
        }
        let mark = sh.out.events.len();
        let step = self.link.connection_lost(sh, now, conn, reason);
        self.relabel(sh, mark);
        self.apply(sh, now, step)
    }

    pub(super) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        op: u64,
        result: OpResult,
    ) -> Outcome {
        let step = self.link.op_done(sh, now, op, result);
        self.apply(sh, now, step)
    }

    pub(super) fn response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        request_id: u64,
        request: ProducerRequest,
        result: Result<pb::BaseCommand, Error>,
    ) -> Outcome {
        match request {
            ProducerRequest::Cleanup => Outcome::None,
            ProducerRequest::Close => {
                let error = result.err();
                self.finish(sh, SendError::ProducerClosed, error)
            }
            ProducerRequest::Create => {
                if self.link.phase
                    != (Phase::Registering {
                        conn,
                        request: request_id,
                    })
                {
                    return Outcome::None;
                }
                match result {
                    Ok(cmd) => {
                        let Some(success) = cmd.producer_success else {
                            let e = Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                                "{:?} for PRODUCER",
                                cmd.kind()
                            )));
                            let step = self.link.failure(sh, now, e);
                            return self.apply(sh, now, step);
                        };
                        if success.producer_ready == Some(false) {
                            // WaitForExclusive: a second PRODUCER_SUCCESS follows, no deadline.
                            sh.conns.expect_response(
                                conn,
                                request_id,
                                RequestKind::Producer(self.id, ProducerRequest::Create),
                                None,
                            );
                            return Outcome::None;
                        }
                        self.registered(sh, now, conn, *success)
                    }
                    Err(e) => self.registration_failed(sh, now, conn, e),
                }
            }
        }
    }

    fn registration_failed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        e: Error,
    ) -> Outcome {
        if e == Error::Timeout {
            // The broker may still create it: clean up before trying again.
            send_cleanup_close(sh, now, conn, self.id);
        }
        if !self.link.ever_ready {
            let step = self.link.failure(sh, now, e);
            return self.apply(sh, now, step);
        }
        let code = e.server_code();
        if fatal_after_ready(code) {
            self.link.detach(sh);
            return self.fail(sh, e);
        }
        if matches!(
            code,
            Some(
                ServerErrorCode::ProducerBlockedQuotaExceededError
                    | ServerErrorCode::ProducerBlockedQuotaExceededException
            )
        ) {
            // The backlog quota refuses new messages: fail those held, keep trying.
            let send_error = SendError::Server {
                code: code.unwrap_or(ServerErrorCode::UnknownError),
                message: e.to_string(),
            };
            self.fail_all(sh, &send_error);
        }
        // A producer that was registered before keeps trying (e.g. ProducerBusy while the broker
        // has not noticed that the previous connection is gone).
        let step = self.link.failure(sh, now, Error::ConnectionClosed);
        self.apply(sh, now, step)
    }
}
