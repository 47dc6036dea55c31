//! One wire consumer: the subscription of one topic or partition. It owns its link (lookup and
//! registration), its flow-control permits, acknowledgements, redelivery timers and chunk
//! reassembly; the messages it receives go to its group's queue (see `intake.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use pulsar_proto::pb;

use super::acks::{entry_of, AckTracker, Entry};
use super::chunks::ChunkAssembler;
use super::message::Message;
use super::options::{ConsumerOptions, ConsumerRequest, InitialPosition, KeySharedMode, SeekTo};
use super::redelivery::{NackTracker, UnackedTracker};
use crate::error::Error;
use crate::event::Resource;
use crate::handle::{ConnectionId, ConsumerId, RequestId};
use crate::link::Link;
use crate::message::MessageId;
use crate::request::RequestKind;
use crate::schema::SchemaInfo;
use crate::shared::Shared;
use crate::topic::TopicName;

/// Redeliveries requested in one REDELIVER_UNACKNOWLEDGED_MESSAGES command at most (as Java).
const MAX_REDELIVER_IDS: usize = 1000;

/// What a request of this consumer (other than SUBSCRIBE / CLOSE) is for.
#[derive(Debug, Clone)]
pub(super) enum SubRequest {
    /// An ACK with a request id: the application requests it covers.
    Acks(Vec<RequestId>),
    /// An ACK in a transaction (its errors are the transaction's: a conflict, mostly).
    TxnAck(RequestId, crate::handle::TxnId),
    /// GET_LAST_MESSAGE_ID for an application request.
    LastId(RequestId),
    /// SEEK for an application request.
    Seek(RequestId),
    /// UNSUBSCRIBE for an application request.
    Unsubscribe(RequestId),
    /// GET_LAST_MESSAGE_ID of a reader starting inclusively at the latest message.
    HeadLastId,
    /// SEEK of that reader to the last message.
    HeadSeek,
}

/// The end of one of those requests, for the group to aggregate.
#[derive(Debug, Clone)]
pub(super) enum SubOutcome {
    Acks(Vec<RequestId>, Result<(), Error>),
    LastId(RequestId, Result<LastId, Error>),
    Seek(RequestId, Result<(), Error>),
    Unsubscribe(RequestId, Result<(), Error>),
    HeadLastId(Result<LastId, Error>),
    HeadSeek(Result<(), Error>),
}

/// A GET_LAST_MESSAGE_ID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LastId {
    pub(super) last: MessageId,
    pub(super) mark_delete: Option<MessageId>,
}

/// A seek in flight.
#[derive(Debug, Clone, Copy)]
pub(super) struct SeekState {
    pub(super) request_id: u64,
    /// The registration the seek was sent on: its messages are stale.
    pub(super) gen: u64,
    pub(super) start: MessageId,
    pub(super) by_time: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Sub {
    pub(super) id: ConsumerId,
    pub(super) group: ConsumerId,
    /// The topic or partition (normalized full name).
    pub(super) topic_name: Arc<str>,
    /// A persistent topic (readers filter by position only there).
    pub(super) persistent: bool,
    pub(super) partition: i32,
    pub(super) opts: Arc<ConsumerOptions>,
    pub(super) queue_size: u32,
    pub(super) link: Link,
    /// Permits consumed since the last FLOW.
    pub(super) permits: u32,
    /// What the broker believes we may still receive (for the zero-size queue).
    pub(super) broker_permits: i64,
    /// Zero-size queue: the application is waiting for a message.
    pub(super) zq_waiting: bool,
    /// Paused by the application: no FLOW goes out (the permits are kept for the resume).
    pub(super) paused: bool,
    /// Messages of this consumer in the group's queue.
    pub(super) queued: usize,
    /// Registration counter (incremented on each successful SUBSCRIBE).
    pub(super) gen: u64,
    pub(super) epoch: u64,
    /// Non-durable start position (readers) and the filter of the first entry.
    pub(super) start: Option<MessageId>,
    pub(super) start_inclusive: bool,
    pub(super) last_dequeued: Option<MessageId>,
    /// After a non-durable resubscription that started before the chunks of an incomplete
    /// chunked message: messages up to this one were delivered already and are dropped when they
    /// come again (a chunked message counts by its last chunk). Boxed: rare, and every idle
    /// consumer carries the field.
    pub(super) seen_through: Option<Box<MessageId>>,
    pub(super) acks: AckTracker,
    pub(super) nacks: NackTracker,
    pub(super) unacked: UnackedTracker,
    /// Chunk reassembly, created by the first chunk (most topics have none).
    pub(super) chunks: Option<Box<ChunkAssembler>>,
    /// Chunked messages delivered: last chunk entry → every chunk entry.
    pub(super) chunk_ids: BTreeMap<Entry, Vec<Entry>>,
    /// Messages redelivered `max_redeliver_count` times or more, by entry.
    pub(super) dlq_candidates: BTreeMap<Entry, Vec<Message>>,
    /// Boxed: rare, and every idle consumer carries the field.
    pub(super) seek: Option<Box<SeekState>>,
    pub(super) sought_by_time: bool,
    /// A reader starting inclusively at the latest message that is not positioned yet: after
    /// SUBSCRIBE it asks for the last message id and seeks to it (so that the last message is
    /// delivered, as the Go client does), and only then is it ready.
    pub(super) head_pending: bool,
    /// Requests in flight, with the connection they went on.
    pub(super) requests: BTreeMap<u64, (ConnectionId, SubRequest)>,
    pub(super) last_in_broker: Option<MessageId>,
    pub(super) reached_end: bool,
    pub(super) close_requested: bool,
    pub(super) create_topic: bool,
    pub(super) messages_received: u64,
    pub(super) bytes_received: u64,
    pub(super) acks_sent: u64,
    /// Acknowledgement calls of the application (statistics).
    pub(super) app_acks: u64,
    /// Negative acknowledgements of the application (statistics).
    pub(super) negative_acks: u64,
    /// Messages set aside for the dead-letter topic (statistics).
    pub(super) dead_lettered: u64,
    /// Messages asked again because their acknowledgement timed out (statistics).
    pub(super) ack_timeouts: u64,
}

impl Sub {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: ConsumerId,
        group: ConsumerId,
        topic: TopicName,
        opts: Arc<ConsumerOptions>,
        queue_size: u32,
        start: Option<MessageId>,
        create_topic: bool,
        sh: &Shared,
        now: Instant,
    ) -> Sub {
        let link = Link::new(Resource::Consumer(id), topic.shared(), sh, now);
        let partition = topic.partition().map_or(-1, |p| p as i32);
        Sub {
            id,
            group,
            topic_name: topic.shared(),
            persistent: topic.is_persistent(),
            partition,
            queue_size,
            link,
            permits: 0,
            broker_permits: 0,
            zq_waiting: false,
            paused: false,
            queued: 0,
            gen: 0,
            epoch: 0,
            start,
            start_inclusive: opts.start_message_id_inclusive,
            last_dequeued: None,
            seen_through: None,
            acks: AckTracker::new(
                opts.batch_index_ack,
                opts.ack_group_time,
                opts.ack_group_max,
            ),
            nacks: NackTracker::new(),
            unacked: UnackedTracker::new(opts.ack_timeout),
            chunks: None,
            chunk_ids: BTreeMap::new(),
            dlq_candidates: BTreeMap::new(),
            seek: None,
            sought_by_time: false,
            head_pending: !opts.durable
                && opts.start_message_id_inclusive
                && start == Some(MessageId::LATEST),
            requests: BTreeMap::new(),
            last_in_broker: None,
            reached_end: false,
            close_requested: false,
            create_topic,
            messages_received: 0,
            bytes_received: 0,
            acks_sent: 0,
            app_acks: 0,
            negative_acks: 0,
            dead_lettered: 0,
            ack_timeouts: 0,
            opts,
        }
    }

    /// The chunk assembler, created on first use.
    pub(super) fn chunks_mut(&mut self) -> &mut ChunkAssembler {
        let o = &self.opts;
        self.chunks.get_or_insert_with(|| {
            Box::new(ChunkAssembler::new(
                o.max_pending_chunked_messages,
                o.max_chunked_message_size,
                o.expire_incomplete_chunked_message,
                o.auto_ack_oldest_chunked_message_on_queue_full,
            ))
        })
    }

    /// The SUBSCRIBE command.
    pub(super) fn subscribe_command(&self, request_id: u64) -> pb::BaseCommand {
        let o = &*self.opts;
        let kv = |v: &[(String, String)]| -> Vec<pb::KeyValue> {
            v.iter()
                .map(|(key, value)| pb::KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect()
        };
        let start_message_id = match (o.durable, self.start) {
            (false, Some(s)) => Some(pb::MessageIdData {
                ledger_id: s.ledger_id,
                entry_id: s.entry_id,
                batch_index: (s.batch_index >= 0).then_some(s.batch_index),
                ..Default::default()
            }),
            _ => None,
        };
        let key_shared_meta =
            (o.subscription_type == super::SubscriptionType::KeyShared).then(|| {
                let (mode, ranges) = match &o.key_shared.mode {
                    KeySharedMode::AutoSplit => (0, Vec::new()),
                    KeySharedMode::Sticky(r) => (
                        1,
                        r.iter()
                            .map(|(start, end)| pb::IntRange {
                                start: *start,
                                end: *end,
                            })
                            .collect(),
                    ),
                };
                pb::KeySharedMeta {
                    key_shared_mode: mode,
                    hash_ranges: ranges,
                    allow_out_of_order_delivery: Some(o.key_shared.allow_out_of_order_delivery),
                }
            });
        pb::BaseCommand::from(pb::CommandSubscribe {
            topic: self.topic_name.to_string(),
            subscription: o.subscription.clone(),
            sub_type: o.subscription_type.to_pb(),
            consumer_id: self.id.get(),
            request_id,
            consumer_name: o.consumer_name.clone(),
            priority_level: o.priority_level,
            durable: Some(o.durable),
            start_message_id,
            metadata: kv(&o.properties),
            read_compacted: Some(o.read_compacted),
            initial_position: Some(match o.initial_position {
                InitialPosition::Latest => 0,
                InitialPosition::Earliest => 1,
            }),
            replicate_subscription_state: Some(o.replicate_subscription_state),
            force_topic_creation: Some(self.create_topic),
            key_shared_meta,
            subscription_properties: kv(&o.subscription_properties),
            consumer_epoch: Some(self.epoch),
            schema: o.schema.as_ref().and_then(SchemaInfo::to_pb),
            ..Default::default()
        })
    }

    /// SUBSCRIBE succeeded on `conn`. Returns true the first time, and the receipts of acks
    /// flushed now.
    pub(super) fn registered(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
    ) -> (bool, Vec<SubOutcome>) {
        let first = self.link.registered(conn);
        self.gen += 1;
        self.permits = 0;
        self.broker_permits = 0;
        // acks queued while disconnected go out now, before the permits (the broker then does not
        // redeliver what they cover)
        let outcomes = if self.acks.has_pending() {
            self.flush_acks(sh, now)
        } else {
            Vec::new()
        };
        if self.paused {
            // what the registration would have granted waits for the resume
            self.permits = self.queue_size;
        } else if self.queue_size > 0 {
            send_flow(sh, conn, self.id, self.queue_size);
            self.broker_permits = i64::from(self.queue_size);
        } else if self.zq_waiting {
            self.zq_waiting = false;
            self.request_one(sh);
        }
        (first, outcomes)
    }

    /// The registration is gone (connection lost, closed by the broker, migration). The caller has
    /// removed this consumer's messages from the group queue; `first_queued` is the first of them.
    /// Requests in flight stay (their connection may still answer them).
    pub(super) fn reset_for_reconnect(&mut self, first_queued: Option<MessageId>) {
        if !self.opts.durable && self.seek.is_none() {
            // A non-durable subscription restarts after what the application has seen (during a
            // seek, at the seek's target, set when the broker answers)...
            // (a queued chunked message comes again from its first chunk)...
            let mut start = match (first_queued, self.last_dequeued) {
                (Some(next), _) => Some(previous_id(&self.first_entry_queued_from(&next))),
                (None, last) => last,
            };
            // ...or before the chunks of a message not yet whole (they are dropped below), so
            // that they come again, if that is earlier (with nothing received since, than where
            // this registration started).
            if let Some(entry) = self.chunks.as_ref().and_then(|c| c.first_entry()) {
                let before_chunks = previous_id(&self.entry_id(entry));
                if start
                    .or(self.start)
                    .is_none_or(|s| compare_ids(&before_chunks, &s).is_lt())
                {
                    start = Some(before_chunks);
                }
            }
            if let Some(start) = start {
                // Going back for chunks may go back past messages the application has seen
                // (other producers' messages between the chunks): they are dropped on arrival.
                if let Some(seen) = self.last_dequeued {
                    if compare_ids(&start, &seen).is_lt() {
                        self.seen_through = Some(Box::new(seen));
                    }
                }
                self.start = Some(start);
                self.start_inclusive = false;
            }
        }
        self.queued = 0;
        self.permits = 0;
        self.broker_permits = 0;
        self.acks.forget_sent(self.cumulative_limit());
        if let Some(c) = self.chunks.as_mut() {
            c.clear();
        }
        self.dlq_candidates.clear();
        self.unacked.clear();
        self.nacks.clear();
    }

    /// Fails every request in flight.
    pub(super) fn fail_requests(&mut self, error: Error) -> Vec<SubOutcome> {
        self.fail_requests_where(error, |_| true)
    }

    /// Fails the requests sent on `conn` (it is gone).
    pub(super) fn fail_requests_on(&mut self, conn: ConnectionId) -> Vec<SubOutcome> {
        self.fail_requests_where(Error::ConnectionClosed, |c| c == conn)
    }

    fn fail_requests_where(
        &mut self,
        error: Error,
        which: impl Fn(ConnectionId) -> bool,
    ) -> Vec<SubOutcome> {
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, (c, _))| which(*c))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.requests.remove(&id))
            .map(|(_, r)| match r {
                SubRequest::Acks(rs) => SubOutcome::Acks(rs, Err(error.clone())),
                SubRequest::TxnAck(r, _) => SubOutcome::Acks(vec![r], Err(error.clone())),
                SubRequest::LastId(r) => SubOutcome::LastId(r, Err(error.clone())),
                SubRequest::Seek(r) => SubOutcome::Seek(r, Err(error.clone())),
                SubRequest::Unsubscribe(r) => SubOutcome::Unsubscribe(r, Err(error.clone())),
                SubRequest::HeadLastId => SubOutcome::HeadLastId(Err(error.clone())),
                SubRequest::HeadSeek => SubOutcome::HeadSeek(Err(error.clone())),
            })
            .collect()
    }

    /// The application took `m` from the queue.
    pub(super) fn delivered(&mut self, sh: &mut Shared, now: Instant, m: &Message) {
        self.queued = self.queued.saturating_sub(1);
        self.last_dequeued = Some(m.id);
        self.start_inclusive = false;
        if self.unacked.enabled() {
            self.unacked.add(now, entry_of(&m.id));
        }
        self.return_permits(sh, 1);
    }

    /// `n` messages are consumed or discarded: their permits go back to the broker once half the
    /// queue is free.
    pub(super) fn return_permits(&mut self, sh: &mut Shared, n: u32) {
        if self.queue_size == 0 || n == 0 {
            return;
        }
        self.permits += n;
        if !self.paused && self.permits >= (self.queue_size / 2).max(1) {
            if let Some(conn) = self.link.ready_conn() {
                send_flow(sh, conn, self.id, self.permits);
                self.broker_permits += i64::from(self.permits);
                self.permits = 0;
            }
        }
    }

    /// Zero-size queue: ask the broker for one more message (covering any deficit left by a batch).
    pub(super) fn request_one(&mut self, sh: &mut Shared) {
        if self.queue_size > 0 || self.zq_waiting {
            return;
        }
        self.zq_waiting = true;
        if self.paused {
            return;
        }
        let Some(conn) = self.link.ready_conn() else {
            return;
        };
        if self.broker_permits < 1 {
            let n = (1 - self.broker_permits).min(i64::from(u32::MAX)) as u32;
            send_flow(sh, conn, self.id, n);
            self.broker_permits = 1;
        }
    }

    /// Stops granting permits (`pause`) or grants those held back (`resume`): what the
    /// registration or the application's receives earned while paused goes out in one FLOW.
    pub(super) fn set_paused(&mut self, sh: &mut Shared, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        if paused {
            return;
        }
        if self.queue_size == 0 {
            if self.zq_waiting {
                self.zq_waiting = false;
                self.request_one(sh);
            }
            return;
        }
        if self.permits > 0 {
            if let Some(conn) = self.link.ready_conn() {
                send_flow(sh, conn, self.id, self.permits);
                self.broker_permits += i64::from(self.permits);
                self.permits = 0;
            }
        }
    }

    // ---- acknowledgements ------------------------------------------------------------------------

    /// Acknowledges `id` (individually or cumulatively).
    pub(super) fn ack(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: &MessageId,
        cumulative: bool,
        receipt: Option<RequestId>,
    ) -> Vec<SubOutcome> {
        let entry = entry_of(id);
        if cumulative {
            if let Some(floor) = self.acks.cumulative(now, id, receipt) {
                self.forget_through(floor);
            }
        } else if let Some(chunks) = self.chunk_ids.remove(&entry) {
            let last = chunks.len().saturating_sub(1);
            for (i, (ledger_id, entry_id)) in chunks.into_iter().enumerate() {
                let r = if i == last { receipt } else { None };
                self.acks
                    .individual(now, &MessageId::new(ledger_id, entry_id, self.partition), r);
                self.forget((ledger_id, entry_id));
            }
        } else if self.acks.individual(now, id, receipt).entry_done {
            self.forget(entry);
        }
        self.release_held_cumulative(now);
        if self.acks.should_flush() {
            return self.flush_acks(sh, now);
        }
        Vec::new()
    }

    /// The first entry a cumulative ack may not reach: the first chunk of the earliest chunked
    /// message not yet acknowledged, whole (queued or delivered) or not (see
    /// [`ChunkAssembler::first_entry`]). A chunked message is delivered at its last chunk, and
    /// other producers' entries may lie between its chunks: acknowledging one of those
    /// cumulatively would acknowledge its first chunks on the broker, and any rewind
    /// (reconnection, redelivery) would then bring its later chunks alone, and the message would
    /// be lost (bug K, simulation seeds 109508, 160023). The Java client acknowledges
    /// cumulatively at the position given, whatever it passes.
    fn cumulative_limit(&self) -> Option<Entry> {
        let assembling = self.chunks.as_ref().and_then(|c| c.first_entry());
        let whole = self.chunk_ids.values().filter_map(|ids| ids.first()).min();
        match (assembling, whole) {
            (Some(a), Some(&w)) => Some(a.min(w)),
            (a, w) => a.or(w.copied()),
        }
    }

    /// Lets a cumulative ack held back at the first chunk of a chunked message go once that
    /// message is acknowledged or given up on (see [`AckTracker::take`]).
    pub(super) fn release_held_cumulative(&mut self, now: Instant) {
        if self.acks.holds_cumulative() {
            let limit = self.cumulative_limit();
            self.acks.release_held(now, limit);
        }
    }

    /// An entry is fully acknowledged: stop its timers.
    pub(super) fn forget(&mut self, entry: Entry) {
        self.unacked.remove(entry);
        self.nacks.remove(entry);
        self.dlq_candidates.remove(&entry);
    }

    fn forget_through(&mut self, floor: Entry) {
        self.dlq_candidates = self
            .dlq_candidates
            .split_off(&(floor.0, floor.1.saturating_add(1)));
        self.nacks.remove_through(floor);
        self.unacked.remove_through(floor);
        self.chunk_ids = self
            .chunk_ids
            .split_off(&(floor.0, floor.1.saturating_add(1)));
    }

    /// Writes pending acknowledgements (if connected). Returns receipts completed locally.
    pub(super) fn flush_acks(&mut self, sh: &mut Shared, now: Instant) -> Vec<SubOutcome> {
        let Some(conn) = self.link.ready_conn() else {
            self.acks.disarm();
            return Vec::new();
        };
        let f = self.acks.take(self.cumulative_limit());
        let mut out = Vec::new();
        let receipts = self.opts.ack_receipts;
        for (ids, kind, rs) in [
            (
                f.individual,
                pb::command_ack::AckType::Individual,
                f.individual_receipts,
            ),
            (
                f.cumulative.into_iter().collect(),
                pb::command_ack::AckType::Cumulative,
                f.cumulative_receipts,
            ),
        ] {
            if ids.is_empty() {
                if !rs.is_empty() {
                    out.push(SubOutcome::Acks(rs, Ok(())));
                }
                continue;
            }
            self.acks_sent += ids.len() as u64;
            let request_id = receipts.then(|| sh.env.next_request_id());
            let cmd = pb::BaseCommand::from(pb::CommandAck {
                consumer_id: self.id.get(),
                ack_type: kind as i32,
                message_id: ids,
                request_id,
                ..Default::default()
            });
            match request_id {
                Some(rid) => {
                    sh.conns.send_request(
                        now,
                        conn,
                        rid,
                        &cmd,
                        RequestKind::Consumer(self.id, ConsumerRequest::Ack),
                    );
                    self.requests.insert(rid, (conn, SubRequest::Acks(rs)));
                }
                None => {
                    sh.conns.send_command(conn, &cmd);
                    if !rs.is_empty() {
                        out.push(SubOutcome::Acks(rs, Ok(())));
                    }
                }
            }
        }
        out
    }

    /// Negatively acknowledges `id`: its entry is redelivered after the delay.
    pub(super) fn nack(&mut self, now: Instant, id: &MessageId, redelivery_count: u32) {
        let entry = entry_of(id);
        self.negative_acks += 1;
        self.unacked.remove(entry);
        self.nacks.add(
            now,
            entry,
            redelivery_count,
            self.opts.negative_ack_delay,
            self.opts.negative_ack_backoff.as_ref(),
        );
    }

    /// The entries to name in a redelivery request for `entries` (chunked messages: every chunk).
    pub(super) fn expand_chunks(&self, entries: &[Entry]) -> Vec<Entry> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            match self.chunk_ids.get(e) {
                Some(ids) => out.extend_from_slice(ids),
                None => out.push(*e),
            }
        }
        out
    }

    /// Asks the broker to redeliver these entries (Shared / Key_Shared).
    pub(super) fn send_redeliver(&mut self, sh: &mut Shared, entries: &[Entry]) {
        let Some(conn) = self.link.ready_conn() else {
            return; // the broker redelivers everything after the reconnection anyway
        };
        let entries = self.expand_chunks(entries);
        for part in entries.chunks(MAX_REDELIVER_IDS) {
            let cmd = pb::BaseCommand::from(pb::CommandRedeliverUnacknowledgedMessages {
                consumer_id: self.id.get(),
                message_ids: part
                    .iter()
                    .map(|(ledger_id, entry_id)| pb::MessageIdData {
                        ledger_id: *ledger_id,
                        entry_id: *entry_id,
                        partition: (self.partition >= 0).then_some(self.partition),
                        ..Default::default()
                    })
                    .collect(),
                consumer_epoch: None,
            });
            sh.conns.send_command(conn, &cmd);
        }
    }

    /// Asks the broker to redeliver everything unacknowledged (a new consumer epoch for Exclusive
    /// and Failover, so messages already in flight are recognised as stale).
    ///
    /// Without a ready registration nothing is sent and the epoch stays: the (re)subscription
    /// redelivers everything unacknowledged anyway, and its SUBSCRIBE, possibly already in flight,
    /// carries the current epoch, which the broker stamps on every message it then dispatches. A
    /// bump here would make all of them look stale and drop them for good (bug G: a negative ack
    /// that came due while a Failover consumer resubscribed after a seek left the subscription
    /// stuck, simulation seeds 40452, 52794). Java's `redeliverUnacknowledgedMessages` also
    /// increments the epoch only when it writes the command.
    pub(super) fn send_redeliver_all(&mut self, sh: &mut Shared) {
        self.unacked.clear();
        self.nacks.clear();
        let Some(conn) = self.link.ready_conn() else {
            return;
        };
        if !self.opts.subscription_type.is_shared() {
            self.epoch += 1;
        }
        let cmd = pb::BaseCommand::from(pb::CommandRedeliverUnacknowledgedMessages {
            consumer_id: self.id.get(),
            message_ids: Vec::new(),
            consumer_epoch: Some(self.epoch),
        });
        sh.conns.send_command(conn, &cmd);
    }

    // ---- timers ------------------------------------------------------------------------------------
}

impl crate::deadline_map::NextTimeout for Sub {
    fn next_timeout(&self) -> Option<Instant> {
        // (runs after every operation on the consumer: no iterator machinery)
        fn min(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        // while a seek is answered, the resubscription waits (see `Consumers::seek`)
        let link = if self.seek.is_none() {
            self.link.next_timeout()
        } else {
            None
        };
        let mut t = min(link, self.acks.next_timeout());
        t = min(t, self.nacks.next_timeout());
        t = min(t, self.unacked.next_timeout());
        min(t, self.chunks.as_ref().and_then(|c| c.next_timeout()))
    }
}

impl Sub {
    // ---- requests ------------------------------------------------------------------------------------

    /// Sends a request tied to an application request; false if not connected.
    /// Sends GET_LAST_MESSAGE_ID for `what`; false when the registration is gone.
    pub(super) fn send_get_last_id(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        what: SubRequest,
    ) -> bool {
        let consumer_id = self.id.get();
        self.send_tracked(
            sh,
            now,
            |request_id| {
                pb::BaseCommand::from(pb::CommandGetLastMessageId {
                    consumer_id,
                    request_id,
                })
            },
            ConsumerRequest::LastMessageId,
            what,
        )
    }

    /// Sends SEEK to `to` for `what` and records the seek in progress; false (and no seek in
    /// progress) when the registration is gone.
    pub(super) fn send_seek(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        to: SeekTo,
        what: SubRequest,
    ) -> bool {
        let (start, by_time, message_id, time) = match to {
            SeekTo::Id(id) => (id, false, Some(super::seek_target(&id)), None),
            SeekTo::PublishTime(t) => (MessageId::EARLIEST, true, None, Some(t)),
        };
        self.seek = Some(Box::new(SeekState {
            request_id: 0,
            gen: self.gen,
            start,
            by_time,
        }));
        let consumer_id = self.id.get();
        let sent = self.send_tracked(
            sh,
            now,
            |request_id| {
                pb::BaseCommand::from(pb::CommandSeek {
                    consumer_id,
                    request_id,
                    message_id,
                    message_publish_time: time,
                })
            },
            ConsumerRequest::Seek,
            what,
        );
        if !sent {
            self.seek = None;
        }
        sent
    }

    pub(super) fn send_tracked(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        command_for: impl FnOnce(u64) -> pb::BaseCommand,
        kind: ConsumerRequest,
        what: SubRequest,
    ) -> bool {
        let Some(conn) = self.link.ready_conn() else {
            return false;
        };
        let request_id = sh.env.next_request_id();
        let cmd = command_for(request_id);
        if sh.conns.send_request(
            now,
            conn,
            request_id,
            &cmd,
            RequestKind::Consumer(self.id, kind),
        ) {
            if let SubRequest::Seek(_) | SubRequest::HeadSeek = what {
                if let Some(s) = self.seek.as_mut() {
                    s.request_id = request_id;
                }
            }
            self.requests.insert(request_id, (conn, what));
            true
        } else {
            false
        }
    }

    /// The answer to a tracked request.
    pub(super) fn tracked_response(
        &mut self,
        request_id: u64,
        result: Result<pb::BaseCommand, Error>,
    ) -> Option<SubOutcome> {
        let (_, what) = self.requests.remove(&request_id)?;
        Some(match what {
            SubRequest::Acks(rs) => {
                let r = result.and_then(|cmd| match cmd.ack_response {
                    Some(a) if a.error.is_some() => Err(Error::server(
                        a.error.unwrap_or(0),
                        a.message.unwrap_or_default(),
                    )),
                    _ => Ok(()),
                });
                SubOutcome::Acks(rs, r)
            }
            SubRequest::TxnAck(r, txn) => {
                let result = result.and_then(|cmd| match cmd.ack_response {
                    Some(a) if a.error.is_some() => {
                        let code = crate::error::ServerErrorCode::from_i32(a.error.unwrap_or(0));
                        let message = a.message.unwrap_or_default();
                        Err(crate::error::TxnError::from_server(Some(txn), code, message).into())
                    }
                    _ => Ok(()),
                });
                SubOutcome::Acks(vec![r], result)
            }
            SubRequest::LastId(r) => SubOutcome::LastId(r, self.last_id_answer(result)),
            SubRequest::Seek(r) => SubOutcome::Seek(r, result.map(|_| ())),
            SubRequest::Unsubscribe(r) => SubOutcome::Unsubscribe(r, result.map(|_| ())),
            SubRequest::HeadLastId => SubOutcome::HeadLastId(self.last_id_answer(result)),
            SubRequest::HeadSeek => SubOutcome::HeadSeek(result.map(|_| ())),
        })
    }

    /// Reads a GET_LAST_MESSAGE_ID answer (and remembers the broker's last message).
    fn last_id_answer(&mut self, result: Result<pb::BaseCommand, Error>) -> Result<LastId, Error> {
        result.and_then(|cmd| match cmd.get_last_message_id_response {
            Some(resp) => {
                let mut last = MessageId::from_pb(&resp.last_message_id);
                last.partition = self.partition;
                let mark_delete = resp
                    .consumer_mark_delete_position
                    .as_ref()
                    .map(MessageId::from_pb);
                self.last_in_broker = Some(last);
                Ok(LastId { last, mark_delete })
            }
            None => Err(Error::Protocol(
                crate::error::ProtocolError::UnexpectedCommand(format!(
                    "{:?} for GET_LAST_MESSAGE_ID",
                    cmd.kind()
                )),
            )),
        })
    }

    /// Where the messages queued from `first` on begin: the first chunk of the earliest chunked
    /// message among them when it comes before `first`, else `first`. A chunked message is
    /// queued when its last chunk comes, so one queued behind `first` may have begun before it
    /// (seed 63908: a reader held P1#4 at 1:38, then the message whose chunks were at 1:36,
    /// 1:37, 1:39-1:41; restarting after 1:37 lost its first two chunks for good).
    fn first_entry_queued_from(&self, first: &MessageId) -> MessageId {
        let from = (first.ledger_id, first.entry_id);
        let earliest = self
            .chunk_ids
            .range(from..)
            .filter_map(|(_, ids)| ids.first())
            .min();
        match earliest {
            Some(&e) if e < from => self.entry_id(e),
            _ => *first,
        }
    }

    /// The message id of a whole (unbatched) entry of this topic.
    fn entry_id(&self, (ledger_id, entry_id): Entry) -> MessageId {
        MessageId {
            ledger_id,
            entry_id,
            partition: self.partition,
            batch_index: -1,
            batch_size: 0,
        }
    }

    /// Whether message `id` was delivered before a resubscription went back for the chunks of an
    /// incomplete message (see [`seen_through`](Self::seen_through)).
    pub(super) fn seen_before(&self, id: &MessageId) -> bool {
        self.seen_through
            .as_deref()
            .is_some_and(|seen| compare_ids(id, seen).is_le())
    }

    /// Whether a message may be available without asking the broker (`None`: ask).
    pub(super) fn has_message_available_locally(&self) -> Option<bool> {
        if self.queued > 0 {
            return Some(true);
        }
        let last = self.last_in_broker?;
        let (reference, inclusive) = match (self.last_dequeued, self.start) {
            (Some(d), _) => (d, false),
            (None, Some(s)) if s != MessageId::LATEST && !self.sought_by_time => {
                (s, self.start_inclusive)
            }
            _ => return None,
        };
        if has_more(&last, &reference, inclusive) {
            Some(true)
        } else {
            None // maybe stale: ask again
        }
    }

    /// Whether a message is available given the broker's answer (Java's rules).
    pub(super) fn has_message_available_with(&self, answer: &LastId) -> bool {
        if self.queued > 0 {
            return true;
        }
        let last = answer.last;
        if last.entry_id as i64 == -1 || (last.entry_id as i64) < 0 {
            return false;
        }
        match (self.last_dequeued, self.start) {
            (Some(d), _) => has_more(&last, &d, false),
            (None, Some(s)) if s != MessageId::LATEST && !self.sought_by_time => {
                has_more(&last, &s, self.start_inclusive)
            }
            _ => match answer.mark_delete {
                Some(md) => {
                    let c = (md.ledger_id as i64, md.entry_id as i64)
                        .cmp(&(last.ledger_id as i64, last.entry_id as i64));
                    if self.start_inclusive && !self.sought_by_time {
                        c.is_le()
                    } else {
                        c.is_lt()
                    }
                }
                None => self.start_inclusive,
            },
        }
    }
}

/// Java's `hasMoreMessages`: whether `last` (the broker's last message) is after `reference`.
fn has_more(last: &MessageId, reference: &MessageId, inclusive: bool) -> bool {
    if (last.entry_id as i64) < 0 {
        return false;
    }
    let c = compare_ids(last, reference);
    if inclusive {
        c.is_ge()
    } else {
        c.is_gt()
    }
}

/// Orders message ids by position (ledger and entry as signed values, then batch index).
pub(super) fn compare_ids(a: &MessageId, b: &MessageId) -> std::cmp::Ordering {
    (a.ledger_id as i64, a.entry_id as i64, a.batch_index).cmp(&(
        b.ledger_id as i64,
        b.entry_id as i64,
        b.batch_index,
    ))
}

/// The message just before `id` (Java's rule when restarting a reader before a queued message).
pub(super) fn previous_id(id: &MessageId) -> MessageId {
    if id.batch_index > 0 {
        MessageId {
            batch_index: id.batch_index - 1,
            ..*id
        }
    } else {
        // Before the first message of an entry (batched or not) is the previous entry, as in Java:
        // an id of this entry without a batch index would mean "after this entry" to the broker.
        MessageId {
            entry_id: id.entry_id.wrapping_sub(1),
            batch_index: -1,
            batch_size: 0,
            ..*id
        }
    }
}

pub(super) fn send_flow(sh: &mut Shared, conn: ConnectionId, id: ConsumerId, permits: u32) {
    let cmd = pb::BaseCommand::from(pb::CommandFlow {
        consumer_id: id.get(),
        message_permits: permits,
    });
    sh.conns.send_command(conn, &cmd);
}
