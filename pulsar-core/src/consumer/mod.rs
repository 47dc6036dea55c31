//! Consumers and readers.
//!
//! The application's consumer handle is a *group* (`group.rs`): one receiver queue filled by one
//! wire consumer per topic or partition (`sub.rs`). A single non-partitioned topic uses the handle
//! value as its wire consumer id; partitioned topics, topic lists and patterns get one fresh id per
//! partition. Each wire consumer keeps its own flow-control permits (FLOW on subscribe, refilled at
//! half, a batch of N costs N), acknowledgement state (`acks.rs`: batch indexes, grouping,
//! duplicates), redelivery timers (`redelivery.rs`: negative acks, ack timeout), chunk reassembly
//! (`chunks.rs`) and message intake (`intake.rs`). Dead-letter and retry-letter topics use internal
//! producers (`dlq.rs`). Pattern groups list their namespace and follow the broker's topic-list
//! watcher when it has one (`pattern.rs`). Wire consumers and groups live in `Table`s
//! (`table.rs`) that keep their deadlines in order, so the next deadline costs no scan; small
//! per-group maps are sorted vectors (`vecmap.rs`), so an idle consumer holds little.
//!
//! After any loss of a registration the wire consumer drops its queued messages (the broker
//! redelivers them), resubscribes, and sends full permits again; readers restart after the last
//! message the application saw.

mod acks;
mod chunks;
mod dlq;
mod group;
mod intake;
mod message;
mod options;
mod pattern;
mod redelivery;
mod sub;
mod table;
mod vecmap;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::Payload;

pub use message::{BrokerEntryMetadata, Message, ReceiveError, TopicMessageId};
pub(crate) use options::ConsumerRequest;
pub use options::{
    ConsumerOptions, DeadLetterPolicy, InitialPosition, KeySharedMode, KeySharedPolicy,
    ReaderOptions, RedeliveryBackoff, SeekTo, SubscriptionType,
};

use crate::backoff::Backoff;
use crate::compression::CodecContext;
use crate::deadline::Deadline;
use crate::error::{Error, ProtocolError};
use crate::event::{Event, Resource};
use crate::handle::{ConnectionId, ConsumerId, RequestId};
use crate::link::{Phase as LinkPhase, Step};
use crate::message::MessageId;
use crate::outputs::Outputs;
use crate::pool::pick_broker_url;
use crate::request::{OpKind, OpResult, Owner, RequestKind};
use crate::shared::Shared;
use crate::stats::{ConsumerStats, ResourceState};
use crate::time;
use crate::topic::TopicName;
use acks::{entry_of, Entry};
use group::{Discovery, Group, GroupOp, Phase, TopicEntry, Watch};
use pattern::TopicPattern;
use sub::{Sub, SubOutcome, SubRequest};
use table::Table;
use vecmap::{VecMap, VecSet};

/// All consumers of a client.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    groups: Table<Group>,
    subs: Table<Sub>,
    codec: CodecContext,
    dlq: dlq::DeadLetters,
}

impl Consumers {
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(crate) fn stats(&self) -> Vec<ConsumerStats> {
        self.groups
            .values()
            .map(|g| {
                let subs: Vec<&Sub> = g.subs.iter().filter_map(|s| self.subs.get(s)).collect();
                let state = if g.phase == Phase::Closing {
                    ResourceState::Closing
                } else {
                    subs.iter()
                        .map(|s| s.link.state())
                        .find(|s| *s != ResourceState::Ready)
                        .unwrap_or(if subs.is_empty() {
                            ResourceState::LookingUp
                        } else {
                            ResourceState::Ready
                        })
                };
                ConsumerStats {
                    id: g.id,
                    topic: g.label.clone(),
                    subscription: g.opts.subscription.clone(),
                    state,
                    connection: subs.iter().find_map(|s| s.link.conn()),
                    queued_messages: g.queue.len(),
                    messages_received: subs.iter().map(|s| s.messages_received).sum(),
                    bytes_received: subs.iter().map(|s| s.bytes_received).sum(),
                    acks_sent: subs.iter().map(|s| s.acks_sent).sum(),
                    reconnects: subs.iter().map(|s| s.link.reconnects).sum(),
                }
            })
            .collect()
    }

    /// The earliest deadline of every wire consumer and group (kept in order as they change: no
    /// scan).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        match (self.subs.next_timeout(), self.groups.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Brings the deadline index up to date with what changed; runs at the end of every
    /// operation (see [`service`](Self::service), which the client runs after each one).
    pub(crate) fn refresh_deadlines(&mut self) {
        self.subs.refresh();
        self.groups.refresh();
    }

    // ---- subscribing ------------------------------------------------------------------------------

    pub(crate) fn subscribe(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topic: &str,
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        self.subscribe_topics(sh, now, &[topic], options)
    }

    pub(crate) fn subscribe_topics(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topics: &[&str],
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        let mut names = Vec::with_capacity(topics.len() + 1);
        for t in topics {
            names.push(TopicName::parse(t)?);
        }
        if names.is_empty() {
            return Err(Error::InvalidState("no topic to subscribe to"));
        }
        let mut options = options;
        if options.retry_enabled {
            // As Java: with retries, both letter topics are named after the first topic (the
            // retry topic's own messages dead-letter to the same place).
            let first = names[0].base_topic();
            let sub = options.subscription.clone();
            // Java's default when retries are on without a policy: 16 reconsumptions.
            let policy = options
                .dead_letter
                .get_or_insert_with(|| DeadLetterPolicy::new(16));
            let retry = policy
                .retry_letter_topic
                .get_or_insert_with(|| format!("{first}-{sub}-RETRY"))
                .clone();
            policy
                .dead_letter_topic
                .get_or_insert_with(|| format!("{first}-{sub}-DLQ"));
            let retry = TopicName::parse(&retry)?;
            if !names.contains(&retry) {
                names.push(retry);
            }
        }
        let label = names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.start_group(sh, now, names, None, options, None, label)
    }

    pub(crate) fn subscribe_pattern(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        pattern: &str,
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        let p = TopicPattern::parse(pattern)?;
        let label = p.source.clone();
        self.start_group(sh, now, Vec::new(), Some(p), options, None, label)
    }

    pub(crate) fn create_reader(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topic: &str,
        options: ReaderOptions,
    ) -> Result<ConsumerId, Error> {
        let name = TopicName::parse(topic)?;
        let subscription = options
            .subscription_name
            .clone()
            .unwrap_or_else(|| format!("reader-{:010x}", sh.env.rng.next_u64() & 0xff_ffff_ffff));
        let start = options.start_message_id;
        let opts = options.into_consumer_options(subscription);
        let label = name.to_string();
        self.start_group(sh, now, vec![name], None, opts, Some(start), label)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_group(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topics: Vec<TopicName>,
        pattern: Option<TopicPattern>,
        options: ConsumerOptions,
        reader_start: Option<MessageId>,
        label: String,
    ) -> Result<ConsumerId, Error> {
        if options.subscription.is_empty() {
            return Err(Error::InvalidState("empty subscription name"));
        }
        if let Some(d) = &options.dead_letter {
            for t in [&d.dead_letter_topic, &d.retry_letter_topic]
                .into_iter()
                .flatten()
            {
                TopicName::parse(t)?;
            }
        }
        let id = sh.env.ids.consumer();
        let backoff = || Backoff::new(sh.env.config.backoff_initial, sh.env.config.backoff_max);
        let mut g = Group {
            id,
            opts: Arc::new(options),
            label,
            topics: VecMap::new(),
            subs: VecSet::new(),
            queue: Default::default(),
            phase: Phase::Starting,
            ops: BTreeMap::new(),
            discovery: None,
            reader_start,
            create_deadline: Deadline::new(now, sh.env.config.operation_timeout),
            unsubscribing: None,
        };
        for t in &topics {
            g.topics.insert(
                t.to_string(),
                TopicEntry {
                    partitions: None,
                    op: None,
                    retry_at: None,
                    backoff: backoff(),
                    next_check: None,
                    subs: VecMap::new(),
                    discovered: false,
                },
            );
        }
        if let Some(pattern) = pattern {
            g.discovery = Some(Box::new(Discovery {
                pattern,
                op: None,
                next_poll: now,
                backoff: backoff(),
                watch: Watch::Off,
                watcher_id: id.get(),
                listed: false,
            }));
        }
        self.groups.insert(id, g);
        for t in topics {
            self.resolve_topic(sh, now, id, &t);
        }
        self.poll_topics(sh, now, id);
        self.check_ready(&mut sh.out, id);
        Ok(id)
    }

    /// Finds out whether `topic` is partitioned (PARTITIONED_METADATA), or subscribes to it directly
    /// when it names a partition.
    fn resolve_topic(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId, topic: &TopicName) {
        if topic.is_partition() {
            if let Some(t) = self
                .groups
                .get_mut(&gid)
                .and_then(|g| g.topics.get_mut(topic.as_str()))
            {
                t.partitions = Some(0);
            }
            self.ensure_subs(sh, now, gid, topic.as_str());
            return;
        }
        let limit = self.creation_limit(gid);
        let op = sh.start_op_until(
            now,
            Owner::Consumer(gid),
            OpKind::PartitionedMetadata {
                topic: topic.to_string(),
            },
            None,
            limit,
        );
        if let Some(t) = self
            .groups
            .get_mut(&gid)
            .and_then(|g| g.topics.get_mut(topic.as_str()))
        {
            t.op = Some(op);
        }
    }

    /// While the group is being created: its creation deadline, which its operations and first
    /// registrations share.
    fn creation_limit(&self, gid: ConsumerId) -> Option<Instant> {
        self.groups
            .get(&gid)
            .filter(|g| g.phase == Phase::Starting)
            .map(|g| g.create_deadline.at())
    }

    /// Creates the wire consumers a resolved topic still lacks.
    fn ensure_subs(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId, name: &str) {
        let Some(g) = self.groups.get(&gid) else {
            return;
        };
        let Some(t) = g.topics.get(name) else { return };
        let Some(n) = t.partitions else { return };
        let Ok(topic) = TopicName::parse(name) else {
            return;
        };
        let q = g.opts.receiver_queue_size;
        let wanted: Vec<(i32, TopicName, u32)> = if n == 0 {
            vec![(-1, topic.clone(), q)]
        } else {
            let per = if q == 0 {
                0
            } else {
                q.min(
                    g.opts
                        .max_total_receiver_queue_size
                        .checked_div(n)
                        .unwrap_or(q),
                )
                .max(1)
            };
            (0..n)
                .map(|p| (p as i32, topic.partition_name(p), per))
                .collect()
        };
        let reuse_id = n == 0
            && g.topics.len() == 1
            && g.discovery.is_none()
            && !self.subs.contains_key(&gid)
            && g.subs.is_empty();
        let create_topic = g.opts.create_topic_if_missing && !t.discovered;
        let opts = g.opts.clone();
        let reader_start = g.reader_start;
        let missing: Vec<(i32, TopicName, u32)> = wanted
            .into_iter()
            .filter(|(p, _, _)| !t.subs.contains_key(p))
            .collect();
        for (p, topic, queue) in missing {
            let start = match reader_start {
                Some(s) if n == 0 || s == MessageId::EARLIEST || s == MessageId::LATEST => Some(s),
                Some(s) if s.partition == p => Some(s),
                Some(_) => Some(MessageId::EARLIEST),
                None => opts.start_message_id,
            };
            let id = if reuse_id { gid } else { sh.env.ids.consumer() };
            let mut sub = Sub::new(
                id,
                gid,
                topic,
                opts.clone(),
                queue,
                start,
                create_topic,
                sh,
                now,
            );
            if let Some(limit) = self.creation_limit(gid) {
                sub.link.end_creation_by(limit);
            }
            self.subs.insert(id, sub);
            if let Some(g) = self.groups.get_mut(&gid) {
                g.subs.insert(id);
                if let Some(t) = g.topics.get_mut(name) {
                    t.subs.insert(p, id);
                }
            }
            self.step_link(sh, now, id);
        }
    }

    /// Emits `ConsumerReady` once every topic is resolved and every wire consumer subscribed.
    fn check_ready(&mut self, out: &mut Outputs, gid: ConsumerId) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.phase != Phase::Starting || !g.all_resolved() {
            return;
        }
        if g.subs.iter().all(|s| {
            self.subs
                .get(s)
                .is_some_and(|s| s.link.ever_ready && !s.head_pending)
        }) {
            g.phase = Phase::Ready;
            out.events.push_back(Event::ConsumerReady { consumer: gid });
        }
    }

    // ---- receiving ----------------------------------------------------------------------------------

    pub(crate) fn receive(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
    ) -> Option<Message> {
        // the queue is no deadline's business
        let g = self.groups.get_mut_untimed(&id)?;
        // taken and returned as is (a message is ~300 bytes: no moves in between)
        let m = g.queue.pop_front();
        match &m {
            Some(m) => {
                self.subs.modify(&m.sub, |s| s.delivered(sh, now, m));
            }
            None => {
                if g.opts.receiver_queue_size == 0 && g.phase != Phase::Closing {
                    for sid in &g.subs {
                        if let Some(s) = self.subs.get_mut(sid) {
                            s.request_one(sh);
                        }
                    }
                }
            }
        }
        m
    }

    pub(crate) fn receive_batch(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
        max_messages: usize,
        max_bytes: usize,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_messages {
            let next_len = match self.groups.get(&id).and_then(|g| g.queue.front()) {
                Some(m) => m.payload.len(),
                None => {
                    if out.is_empty() {
                        // zero-size queue: ask for a message
                        let _ = self.receive(sh, now, id);
                    }
                    break;
                }
            };
            if !out.is_empty() && bytes.saturating_add(next_len) > max_bytes {
                break;
            }
            match self.receive(sh, now, id) {
                Some(m) => {
                    bytes += m.payload.len();
                    out.push(m);
                }
                None => break,
            }
        }
        out
    }

    // ---- acknowledging ------------------------------------------------------------------------------

    /// The wire consumer a message id belongs to.
    fn resolve_sub(
        &self,
        g: &Group,
        id: &MessageId,
        via: Option<ConsumerId>,
    ) -> Result<ConsumerId, Error> {
        if let Some(s) = via {
            return if g.subs.contains(&s) {
                Ok(s)
            } else {
                Err(Error::InvalidState(
                    "the message was received by another consumer (or before a resubscription)",
                ))
            };
        }
        if g.subs.len() == 1 {
            if let Some(s) = g.subs.first() {
                return Ok(*s);
            }
        }
        let mut matching = g.subs.iter().filter(|s| {
            self.subs
                .get(s)
                .is_some_and(|s| s.partition == id.partition)
        });
        match (matching.next(), matching.next()) {
            (Some(s), None) if g.topics.len() == 1 => Ok(*s),
            _ => Err(Error::InvalidState(
                "ambiguous message id on a multi-topic consumer: acknowledge the Message itself",
            )),
        }
    }

    fn usable_group(&self, gid: ConsumerId) -> Result<&Group, Error> {
        let g = self.groups.get(&gid).ok_or(Error::UnknownConsumer(gid))?;
        if g.phase == Phase::Closing {
            return Err(Error::Closed);
        }
        Ok(g)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ack(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        id: &MessageId,
        cumulative: bool,
        via: Option<ConsumerId>,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        if cumulative && g.opts.subscription_type.is_shared() {
            return Err(Error::InvalidState(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions",
            ));
        }
        let sid = self.resolve_sub(g, id, via)?;
        let receipts = g.opts.ack_receipts;
        let request = sh.env.ids.request();
        let receipt = receipts.then_some(request);
        let Some(outcomes) = self
            .subs
            .modify(&sid, |s| s.ack(sh, now, id, cumulative, receipt))
        else {
            return Err(Error::UnknownConsumer(gid));
        };
        if !outcomes.is_empty() {
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    pub(crate) fn negative_ack(
        &mut self,
        now: Instant,
        gid: ConsumerId,
        id: &MessageId,
        via: Option<ConsumerId>,
        redelivery_count: u32,
    ) -> Result<(), Error> {
        let g = self.usable_group(gid)?;
        let sid = self.resolve_sub(g, id, via)?;
        if let Some(s) = self.subs.get_mut(&sid) {
            s.nack(now, id, redelivery_count);
        }
        Ok(())
    }

    pub(crate) fn redeliver_unacknowledged(
        &mut self,
        sh: &mut Shared,
        gid: ConsumerId,
    ) -> Result<(), Error> {
        let g = self.usable_group(gid)?;
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        for sid in subs {
            self.redeliver_all(sh, sid);
        }
        Ok(())
    }

    /// Redelivers entries of a wire consumer: single entries on Shared / Key_Shared (dead-lettering
    /// those that were redelivered too often), everything unacknowledged otherwise.
    fn redeliver(&mut self, sh: &mut Shared, sid: ConsumerId, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if !s.opts.subscription_type.is_shared() {
            self.redeliver_all(sh, sid);
            return;
        }
        let (dead, rest): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|e| s.dlq_candidates.contains_key(e));
        for e in dead {
            self.dlq.push_dead(sid, e);
        }
        if rest.is_empty() {
            return;
        }
        let set: BTreeSet<Entry> = rest.iter().copied().collect();
        let removed = match self.groups.get_mut(&s.group) {
            Some(g) => {
                let before = g.queue.len();
                g.queue
                    .retain(|m| !(m.sub == sid && set.contains(&entry_of(&m.id))));
                before - g.queue.len()
            }
            None => 0,
        };
        s.queued = s.queued.saturating_sub(removed);
        s.send_redeliver(sh, &rest);
        s.return_permits(sh, removed as u32);
    }

    fn redeliver_all(&mut self, sh: &mut Shared, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let removed = match self.groups.get_mut(&s.group) {
            Some(g) => g.take_sub_messages(sid).0,
            None => 0,
        };
        s.queued = s.queued.saturating_sub(removed);
        s.dlq_candidates.clear();
        s.send_redeliver_all(sh);
        s.return_permits(sh, removed as u32);
    }

    // ---- seek, last message id, unsubscribe ------------------------------------------------------

    pub(crate) fn seek(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        to: SeekTo,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        let targets: Vec<ConsumerId> = match to {
            SeekTo::Id(id)
                if id != MessageId::EARLIEST && id != MessageId::LATEST && g.subs.len() > 1 =>
            {
                vec![self.resolve_sub(g, &id, None)?]
            }
            _ => g.subs.iter().copied().collect(),
        };
        if targets.is_empty() {
            return Err(Error::InvalidState("the consumer has no topic to seek"));
        }
        if targets
            .iter()
            .any(|s| self.subs.get(s).is_some_and(|s| s.seek.is_some()))
        {
            return Err(Error::InvalidState("a seek is already in progress"));
        }
        let request = sh.env.ids.request();
        if let Some(g) = self.groups.get_mut(&gid) {
            g.ops.insert(
                request,
                GroupOp::Seek {
                    waiting: targets.len(),
                    error: None,
                },
            );
        }
        for sid in targets {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            let mut outcomes = s.flush_acks(sh, now);
            if !s.send_seek(sh, now, to, SubRequest::Seek(request)) {
                outcomes.push(SubOutcome::Seek(request, Err(Error::ConnectionClosed)));
            }
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    /// Asks for the last message of a reader starting inclusively at the latest message
    /// ([`Sub::head_pending`]); [`seek_head`](Self::seek_head) follows.
    fn ask_head(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if !s.head_pending || s.seek.is_some() {
            return;
        }
        // Not sent: the registration is gone, and the next one asks again.
        s.send_get_last_id(sh, now, SubRequest::HeadLastId);
    }

    /// Seeks a reader starting inclusively at the latest message to `last`, the topic's last
    /// message (an empty topic has none: the reader is positioned already).
    fn seek_head(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId, last: MessageId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        if (last.entry_id as i64) < 0 {
            s.head_pending = false;
            self.check_ready(&mut sh.out, gid);
            return;
        }
        // Not sent: the registration is gone, and the next one starts over.
        s.send_seek(sh, now, SeekTo::Id(last), SubRequest::HeadSeek);
    }

    /// Positioning a reader at the last message failed: a retriable error starts over (now if
    /// the registration is still there, else at the next one); any other fails the reader.
    fn head_failed(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId, error: Error) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        s.seek = None;
        if error.is_retriable() {
            self.resume_link(sh, now, sid);
            self.ask_head(sh, now, sid);
        } else {
            self.sub_failed(sh, now, sid, error);
        }
    }

    /// GET_LAST_MESSAGE_ID on every wire consumer: [`Event::LastMessageIds`], or (when
    /// `for_available`) [`Event::HasMessageAvailable`].
    pub(crate) fn last_message_ids(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        for_available: bool,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        let request = sh.env.ids.request();
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        if for_available {
            let local = !g.queue.is_empty()
                || subs.iter().any(|s| {
                    self.subs
                        .get(s)
                        .and_then(Sub::has_message_available_locally)
                        .unwrap_or(false)
                });
            if local || subs.is_empty() {
                sh.out.events.push_back(Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: Ok(local),
                });
                return Ok(request);
            }
        }
        let op = if for_available {
            GroupOp::HasAvailable {
                waiting: subs.len(),
                any: false,
                error: None,
            }
        } else {
            GroupOp::LastIds {
                waiting: subs.len(),
                ids: Vec::new(),
                error: None,
            }
        };
        if let Some(g) = self.groups.get_mut(&gid) {
            g.ops.insert(request, op);
        }
        for sid in subs {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            if !s.send_get_last_id(sh, now, SubRequest::LastId(request)) {
                let o = SubOutcome::LastId(request, Err(Error::ConnectionClosed));
                self.outcomes(sh, now, sid, gid, vec![o]);
            }
        }
        Ok(request)
    }

    pub(crate) fn unsubscribe(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
    ) -> Result<RequestId, Error> {
        let g = self.usable_group(gid)?;
        if g.unsubscribing.is_some() {
            return Err(Error::InvalidState("already unsubscribing"));
        }
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        let request = sh.env.ids.request();
        if let Some(g) = self.groups.get_mut(&gid) {
            g.unsubscribing = Some(request);
            g.ops.insert(
                request,
                GroupOp::Unsubscribe {
                    waiting: subs.len(),
                    error: None,
                },
            );
        }
        if subs.is_empty() {
            self.finish_op(sh, now, gid, request);
        }
        for sid in subs {
            let Some(s) = self.subs.get_mut(&sid) else {
                continue;
            };
            let mut outcomes = s.flush_acks(sh, now);
            let sent = s.send_tracked(
                sh,
                now,
                |request_id| {
                    pb::BaseCommand::from(pb::CommandUnsubscribe {
                        consumer_id: sid.get(),
                        request_id,
                        force: None,
                    })
                },
                ConsumerRequest::Unsubscribe,
                SubRequest::Unsubscribe(request),
            );
            if !sent {
                outcomes.push(SubOutcome::Unsubscribe(
                    request,
                    Err(Error::ConnectionClosed),
                ));
            }
            self.outcomes(sh, now, sid, gid, outcomes);
        }
        Ok(request)
    }

    /// Routes the ends of wire-consumer requests to their application requests.
    fn outcomes(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        gid: ConsumerId,
        outcomes: Vec<SubOutcome>,
    ) {
        for o in outcomes {
            match o {
                SubOutcome::Acks(rs, result) => {
                    for request in rs {
                        sh.out.events.push_back(Event::AckCompleted {
                            consumer: gid,
                            request,
                            result: result.clone(),
                        });
                    }
                }
                SubOutcome::LastId(request, result) => {
                    let available = match (&result, self.subs.get(&sid)) {
                        (Ok(answer), Some(s)) => Some(s.has_message_available_with(answer)),
                        _ => None,
                    };
                    let topic = self.subs.get(&sid).map(|s| s.topic_name.clone());
                    let Some(op) = self
                        .groups
                        .get_mut(&gid)
                        .and_then(|g| g.ops.get_mut(&request))
                    else {
                        continue;
                    };
                    match op {
                        GroupOp::LastIds {
                            waiting,
                            ids,
                            error,
                        } => {
                            *waiting = waiting.saturating_sub(1);
                            match result {
                                Ok(answer) => ids.push(TopicMessageId {
                                    topic: topic.unwrap_or_else(|| Arc::from("")),
                                    id: answer.last,
                                }),
                                Err(e) => *error = Some(e),
                            }
                        }
                        GroupOp::HasAvailable {
                            waiting,
                            any,
                            error,
                        } => {
                            *waiting = waiting.saturating_sub(1);
                            match result {
                                Ok(_) => *any |= available.unwrap_or(false),
                                Err(e) => *error = Some(e),
                            }
                        }
                        _ => {}
                    }
                    self.finish_op(sh, now, gid, request);
                }
                SubOutcome::HeadLastId(Ok(answer)) => self.seek_head(sh, now, sid, answer.last),
                SubOutcome::HeadSeek(Ok(())) => {
                    self.seek_done(sh, now, sid);
                    if let Some(s) = self.subs.get_mut(&sid) {
                        s.head_pending = false;
                    }
                    self.resume_link(sh, now, sid);
                    self.check_ready(&mut sh.out, gid);
                }
                SubOutcome::HeadLastId(Err(e)) | SubOutcome::HeadSeek(Err(e)) => {
                    self.head_failed(sh, now, sid, e)
                }
                SubOutcome::Seek(request, result) => {
                    if result.is_ok() {
                        self.seek_done(sh, now, sid);
                    } else if let Some(s) = self.subs.get_mut(&sid) {
                        s.seek = None;
                    }
                    self.resume_link(sh, now, sid);
                    if let Some(GroupOp::Seek { waiting, error }) = self
                        .groups
                        .get_mut(&gid)
                        .and_then(|g| g.ops.get_mut(&request))
                    {
                        *waiting = waiting.saturating_sub(1);
                        if let Err(e) = result {
                            *error = Some(e);
                        }
                    }
                    self.finish_op(sh, now, gid, request);
                }
                SubOutcome::Unsubscribe(request, result) => {
                    if result.is_ok() {
                        self.finish_sub(sh, now, sid);
                    }
                    if let Some(GroupOp::Unsubscribe { waiting, error }) = self
                        .groups
                        .get_mut(&gid)
                        .and_then(|g| g.ops.get_mut(&request))
                    {
                        *waiting = waiting.saturating_sub(1);
                        if let Err(e) = result {
                            *error = Some(e);
                        }
                    }
                    self.finish_op(sh, now, gid, request);
                }
            }
        }
    }

    /// Completes an application request once every wire consumer answered.
    fn finish_op(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId, request: RequestId) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        let done = match g.ops.get(&request) {
            Some(
                GroupOp::LastIds { waiting, .. }
                | GroupOp::HasAvailable { waiting, .. }
                | GroupOp::Seek { waiting, .. }
                | GroupOp::Unsubscribe { waiting, .. },
            ) => *waiting == 0,
            None => false,
        };
        if !done {
            return;
        }
        let Some(op) = g.ops.remove(&request) else {
            return;
        };
        match op {
            GroupOp::LastIds { ids, error, .. } => sh.out.events.push_back(Event::LastMessageIds {
                consumer: gid,
                request,
                result: error.map_or(Ok(ids), Err),
            }),
            GroupOp::HasAvailable { any, error, .. } => {
                sh.out.events.push_back(Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: if any {
                        Ok(true)
                    } else {
                        error.map_or(Ok(false), Err)
                    },
                })
            }
            GroupOp::Seek { error, .. } => sh.out.events.push_back(Event::SeekCompleted {
                consumer: gid,
                request,
                result: error.map_or(Ok(()), Err),
            }),
            GroupOp::Unsubscribe { error, .. } => {
                g.unsubscribing = None;
                match error {
                    None => {
                        sh.out.events.push_back(Event::Unsubscribed {
                            consumer: gid,
                            request,
                            result: Ok(()),
                        });
                        self.end_group(sh, Some(now), gid, None, false);
                    }
                    Some(e) => sh.out.events.push_back(Event::Unsubscribed {
                        consumer: gid,
                        request,
                        result: Err(e),
                    }),
                }
            }
        }
    }

    /// The broker reset the subscription: forget what was received before (Java's behaviour:
    /// delivery resumes after the target, or at it with `start_message_id_inclusive`).
    fn seek_done(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let Some(st) = s.seek.take() else { return };
        let flushed = s.flush_acks(sh, now);
        s.acks.reset();
        s.last_dequeued = None;
        s.seen_through = None;
        s.start = Some(st.start);
        s.start_inclusive = s.opts.start_message_id_inclusive;
        s.sought_by_time = st.by_time;
        if let Some(c) = s.chunks.as_mut() {
            c.clear();
        }
        s.chunk_ids.clear();
        s.nacks.clear();
        s.unacked.clear();
        s.dlq_candidates.clear();
        s.last_in_broker = None;
        let gid = s.group;
        if s.gen == st.gen {
            // Still on the registration the seek was sent on: what it queued is stale.
            let removed = match self.groups.get_mut(&gid) {
                Some(g) => g.take_sub_messages(sid).0,
                None => 0,
            };
            s.queued = s.queued.saturating_sub(removed);
            s.return_permits(sh, removed as u32);
        }
        self.outcomes(sh, now, sid, gid, flushed);
    }

    // ---- closing --------------------------------------------------------------------------------------

    pub(crate) fn close(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
    ) -> Result<(), Error> {
        let g = self
            .groups
            .get_mut(&gid)
            .ok_or(Error::UnknownConsumer(gid))?;
        if g.phase == Phase::Closing {
            return Ok(());
        }
        g.phase = Phase::Closing;
        for t in g.topics.values_mut() {
            if let Some(op) = t.op.take() {
                sh.lookups.cancel(op);
            }
            t.retry_at = None;
            t.next_check = None;
        }
        self.stop_discovery(sh, now, gid);
        let subs: Vec<ConsumerId> = self
            .groups
            .get(&gid)
            .map(|g| g.subs.iter().copied().collect())
            .unwrap_or_default();
        for sid in subs {
            self.close_sub(sh, now, sid);
        }
        self.check_closed(sh, now, gid);
        Ok(())
    }

    fn close_sub(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        if s.close_requested {
            return;
        }
        s.close_requested = true;
        let gid = s.group;
        let flushed = s.flush_acks(sh, now);
        self.outcomes(sh, now, sid, gid, flushed);
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        match s.link.ready_conn() {
            Some(conn) => {
                let request_id = send_close(sh, now, conn, sid, ConsumerRequest::Close);
                s.link.closing(conn, request_id);
            }
            None => self.finish_sub(sh, now, sid),
        }
    }

    /// Removes a wire consumer (closed, unsubscribed or given up) and its queued messages.
    fn finish_sub(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(mut s) = self.subs.remove(&sid) else {
            return;
        };
        s.link.abandon(sh);
        let gid = s.group;
        let outcomes = s.fail_requests(Error::Closed);
        if let Some(g) = self.groups.get_mut(&gid) {
            g.subs.remove(&sid);
            g.take_sub_messages(sid);
            for t in g.topics.values_mut() {
                t.subs.retain(|_, id| *id != sid);
            }
        }
        self.dlq.forget_sub(sid);
        // outcomes of a removed sub only concern group requests
        for o in outcomes {
            self.group_outcome_without_sub(sh, now, gid, o);
        }
    }

    fn group_outcome_without_sub(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        o: SubOutcome,
    ) {
        match o {
            SubOutcome::Acks(rs, result) => {
                for request in rs {
                    sh.out.events.push_back(Event::AckCompleted {
                        consumer: gid,
                        request,
                        result: result.clone(),
                    });
                }
            }
            SubOutcome::LastId(r, res) => {
                if let Some(
                    GroupOp::LastIds { waiting, error, .. }
                    | GroupOp::HasAvailable { waiting, error, .. },
                ) = self.groups.get_mut(&gid).and_then(|g| g.ops.get_mut(&r))
                {
                    *waiting = waiting.saturating_sub(1);
                    if let Err(e) = res {
                        *error = Some(e);
                    }
                }
                self.finish_op(sh, now, gid, r);
            }
            SubOutcome::Seek(r, res) | SubOutcome::Unsubscribe(r, res) => {
                if let Some(
                    GroupOp::Seek { waiting, error } | GroupOp::Unsubscribe { waiting, error },
                ) = self.groups.get_mut(&gid).and_then(|g| g.ops.get_mut(&r))
                {
                    *waiting = waiting.saturating_sub(1);
                    if let Err(e) = res {
                        if !matches!(e, Error::Closed) {
                            *error = Some(e);
                        }
                    }
                }
                self.finish_op(sh, now, gid, r);
            }
            // the reader's own positioning: nothing waits for it once the wire consumer is gone
            SubOutcome::HeadLastId(_) | SubOutcome::HeadSeek(_) => {}
        }
    }

    fn check_closed(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let done = self
            .groups
            .get(&gid)
            .is_some_and(|g| g.phase == Phase::Closing && g.subs.is_empty());
        if done {
            self.end_group(sh, Some(now), gid, None, false);
        }
    }

    /// Removes a group and everything it has; `failed`: it never became ready. `now` is `None`
    /// when the client is shutting every connection down (no CLOSE_CONSUMER for its wire consumers).
    fn end_group(
        &mut self,
        sh: &mut Shared,
        now: Option<Instant>,
        gid: ConsumerId,
        error: Option<Error>,
        failed: bool,
    ) {
        let Some(g) = self.groups.remove(&gid) else {
            return;
        };
        for t in g.topics.values() {
            if let Some(op) = t.op {
                sh.lookups.cancel(op);
            }
        }
        if let Some(d) = &g.discovery {
            if let Some(op) = d.op {
                sh.lookups.cancel(op);
            }
            if let Watch::Active(conn) | Watch::Pending(conn, _) | Watch::Connecting(conn) = d.watch
            {
                sh.conns.detach_consumer(conn, gid);
            }
        }
        for sid in g.subs {
            if let Some(mut s) = self.subs.remove(&sid) {
                if let (Some(conn), Some(now)) = (s.link.ready_conn(), now) {
                    // The broker may still hold it: close it, ignoring the answer.
                    send_cleanup_close(sh, now, conn, sid);
                }
                s.link.abandon(sh);
                self.dlq.forget_sub(sid);
            }
        }
        self.dlq.close_group(gid);
        for (request, op) in g.ops {
            let e = Error::Closed;
            sh.out.events.push_back(match op {
                GroupOp::LastIds { .. } => Event::LastMessageIds {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::HasAvailable { .. } => Event::HasMessageAvailable {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::Seek { .. } => Event::SeekCompleted {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
                GroupOp::Unsubscribe { .. } => Event::Unsubscribed {
                    consumer: gid,
                    request,
                    result: Err(e),
                },
            });
        }
        sh.out.events.push_back(if failed {
            Event::ConsumerFailed {
                consumer: gid,
                error: error.unwrap_or(Error::Closed),
            }
        } else {
            Event::ConsumerClosed {
                consumer: gid,
                error,
            }
        });
    }

    pub(crate) fn close_all(&mut self, sh: &mut Shared, now: Instant) {
        let ids: Vec<ConsumerId> = self.groups.keys().copied().collect();
        for id in ids {
            let _ = self.close(sh, now, id);
        }
    }

    pub(crate) fn force_close_all(&mut self, sh: &mut Shared, error: Error) {
        let ids: Vec<ConsumerId> = self.groups.keys().copied().collect();
        for id in ids {
            // the client shuts every connection down next: nothing to clean up on the broker
            self.end_group(sh, None, id, Some(error.clone()), false);
        }
    }

    // ---- timers ---------------------------------------------------------------------------------------

    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        self.refresh_deadlines();
        for sid in self.subs.due(now) {
            self.sub_timeout(sh, now, sid);
        }
        self.refresh_deadlines();
        for gid in self.groups.due(now) {
            self.group_timeout(sh, now, gid);
        }
        self.refresh_deadlines();
    }

    fn step_link(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let mark = sh.out.events.len();
        let step = s.link.handle_timeout(sh, now);
        remap_events(&mut sh.out, mark, sid, gid);
        self.apply(sh, now, sid, step);
    }

    fn sub_timeout(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        self.resume_link(sh, now, sid);
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let mut outcomes = Vec::new();
        if s.acks.next_timeout().is_some_and(|t| t <= now) {
            outcomes = s.flush_acks(sh, now);
        }
        let mut redeliver = s.nacks.take_due(now);
        redeliver.extend(s.unacked.take_expired(now));
        let mut out = intake::IntakeOut::default();
        let expired = s.chunks.as_mut().map(|c| c.expire(now)).unwrap_or_default();
        for d in expired {
            // (expired messages have no orphaned chunks left to hold)
            s.handle_dropped(sh, now, d, now, &mut out);
        }
        redeliver.extend(out.redeliver);
        self.outcomes(sh, now, sid, gid, outcomes);
        self.redeliver(sh, sid, redeliver);
    }

    /// Runs the link's timer if it is due and no seek holds it: the broker closes a consumer when
    /// it seeks, and resubscribing before the answer could restart a reader at the old position.
    fn resume_link(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId) {
        if self
            .subs
            .get(&sid)
            .is_some_and(|s| s.seek.is_none() && s.link.next_timeout().is_some_and(|t| t <= now))
        {
            self.step_link(sh, now, sid);
        }
    }

    fn group_timeout(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.phase == Phase::Starting && g.create_deadline.expired(now) {
            let error = g.create_deadline.error();
            self.end_group(sh, Some(now), gid, Some(error), true);
            return;
        }
        let mut resolve = Vec::new();
        let mut ensure = Vec::new();
        for (name, t) in g.topics.iter_mut() {
            if t.retry_at.is_some_and(|r| r <= now) {
                t.retry_at = None;
                if t.partitions.is_none() || (t.partitions == Some(0) && !t.discovered) {
                    resolve.push(name.clone());
                } else {
                    ensure.push(name.clone());
                }
            }
            if t.next_check.is_some_and(|r| r <= now) && t.op.is_none() {
                t.next_check = None;
                resolve.push(name.clone());
            }
        }
        let poll = g
            .discovery
            .as_ref()
            .is_some_and(|d| d.op.is_none() && d.next_poll <= now);
        for name in resolve {
            if let Ok(topic) = TopicName::parse(&name) {
                self.resolve_topic(sh, now, gid, &topic);
            }
        }
        for name in ensure {
            self.ensure_subs(sh, now, gid, &name);
        }
        if poll {
            self.poll_topics(sh, now, gid);
        }
    }

    // ---- inputs from the connections --------------------------------------------------------------

    pub(crate) fn connection_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        ids: &[ConsumerId],
    ) {
        for &id in ids {
            if let Some(s) = self.subs.get_mut(&id) {
                let step = s.link.connection_ready(conn);
                self.apply(sh, now, id, step);
            } else if self.groups.contains_key(&id) {
                self.send_watch(sh, now, id, conn);
            }
        }
    }

    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
        ids: &[ConsumerId],
    ) {
        // Requests sent on the connection fail, whoever sent them (a consumer closed by the
        // broker may have left requests behind on it).
        let waiting: Vec<ConsumerId> = self
            .subs
            .values()
            .filter(|s| s.requests.values().any(|(c, _)| *c == conn))
            .map(|s| s.id)
            .collect();
        for sid in waiting {
            if let Some(s) = self.subs.get_mut(&sid) {
                let gid = s.group;
                let outcomes = s.fail_requests_on(conn);
                self.outcomes(sh, now, sid, gid, outcomes);
            }
        }
        for &id in ids {
            if let Some(s) = self.subs.get(&id) {
                if s.link.conn() != Some(conn) {
                    continue;
                }
                if s.close_requested {
                    let gid = s.group;
                    self.finish_sub(sh, now, id);
                    self.check_closed(sh, now, gid);
                    continue;
                }
                self.lose_registration(sh, now, id, |s, sh, now| {
                    s.link.connection_lost(sh, now, conn, reason)
                });
            } else if let Some(d) = self.groups.get_mut(&id).and_then(|g| g.discovery.as_mut()) {
                if matches!(d.watch, Watch::Active(c) | Watch::Pending(c, _) | Watch::Connecting(c) if c == conn)
                {
                    // Resynchronise with a listing, which opens a new watcher.
                    d.watch = Watch::Off;
                    d.next_poll = time::after(now, d.backoff.next_delay(&mut sh.env.rng));
                }
            }
        }
    }

    /// A wire consumer lost its registration: drop its queued messages, reset, and let the link
    /// decide what comes next.
    fn lose_registration(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        sid: ConsumerId,
        link_step: impl FnOnce(&mut Sub, &mut Shared, Instant) -> Step,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let gid = s.group;
        let (_, first) = match self.groups.get_mut(&gid) {
            Some(g) => g.take_sub_messages(sid),
            None => (0, None),
        };
        s.reset_for_reconnect(first);
        let mark = sh.out.events.len();
        let step = link_step(s, sh, now);
        remap_events(&mut sh.out, mark, sid, gid);
        self.apply(sh, now, sid, step);
    }

    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
        op: u64,
        result: OpResult,
    ) {
        if let Some(g) = self.groups.get(&id) {
            let name = g
                .topics
                .iter()
                .find(|(_, t)| t.op == Some(op))
                .map(|(n, _)| n.clone());
            if let Some(name) = name {
                self.metadata_done(sh, now, id, &name, result);
                return;
            }
            if g.discovery.as_ref().is_some_and(|d| d.op == Some(op)) {
                self.topics_listed(sh, now, id, result);
                return;
            }
        }
        if let Some(s) = self.subs.get_mut(&id) {
            let gid = s.group;
            let mark = sh.out.events.len();
            let step = s.link.op_done(sh, now, op, result);
            remap_events(&mut sh.out, mark, id, gid);
            self.apply(sh, now, id, step);
        }
    }

    fn metadata_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        name: &str,
        result: OpResult,
    ) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        let starting = g.phase == Phase::Starting;
        let interval = g.opts.partitions_update_interval;
        let Some(t) = g.topics.get_mut(name) else {
            return;
        };
        t.op = None;
        match result {
            OpResult::PartitionedMetadata(Ok(n)) => {
                t.backoff.reset();
                // partitions only grow; a smaller answer is ignored
                let n = t.partitions.map_or(n, |old| old.max(n));
                t.partitions = Some(n);
                if n > 0 {
                    t.next_check = interval.map(|i| time::after(now, i));
                }
                self.ensure_subs(sh, now, gid, name);
                self.check_ready(&mut sh.out, gid);
            }
            OpResult::PartitionedMetadata(Err(e)) => {
                let delay = t.backoff.next_delay(&mut sh.env.rng);
                match retry_or_fail(starting, &mut g.create_deadline, now, delay, e) {
                    Ok(at) => {
                        if let Some(t) = g.topics.get_mut(name) {
                            t.retry_at = Some(at);
                        }
                    }
                    Err(e) => self.end_group(sh, Some(now), gid, Some(e), true),
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        request_id: u64,
        request: ConsumerRequest,
        result: Result<pb::BaseCommand, Error>,
    ) {
        match request {
            ConsumerRequest::Cleanup => {}
            ConsumerRequest::WatchTopics => self.watch_response(sh, now, id, conn, result),
            ConsumerRequest::Close => {
                let gid = self.subs.get(&id).map(|s| s.group);
                self.finish_sub(sh, now, id);
                if let Some(gid) = gid {
                    self.check_closed(sh, now, gid);
                }
            }
            ConsumerRequest::Subscribe => self.subscribed(sh, now, conn, id, request_id, result),
            ConsumerRequest::Ack
            | ConsumerRequest::Seek
            | ConsumerRequest::LastMessageId
            | ConsumerRequest::Unsubscribe => {
                let Some(s) = self.subs.get_mut(&id) else {
                    return;
                };
                let gid = s.group;
                if let Some(o) = s.tracked_response(request_id, result) {
                    self.outcomes(sh, now, id, gid, vec![o]);
                }
            }
        }
    }

    fn subscribed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        sid: ConsumerId,
        request_id: u64,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let Some(s) = self.subs.get_mut(&sid) else {
            // Closed (or given up) while the SUBSCRIBE was in flight: the broker may hold the
            // registration, so close it there (as Java does), also when the request timed out.
            if matches!(&result, Ok(cmd) if cmd.kind() == Some(Type::Success))
                || matches!(result, Err(Error::Timeout))
            {
                send_cleanup_close(sh, now, conn, sid);
            }
            return;
        };
        if s.link.phase
            != (LinkPhase::Registering {
                conn,
                request: request_id,
            })
        {
            return;
        }
        let gid = s.group;
        match result {
            Ok(cmd) if cmd.kind() == Some(Type::Success) => {
                let (first, outcomes) = s.registered(sh, now, conn);
                self.outcomes(sh, now, sid, gid, outcomes);
                self.ask_head(sh, now, sid);
                if first {
                    self.check_ready(&mut sh.out, gid);
                } else {
                    sh.out
                        .events
                        .push_back(Event::ConsumerReconnected { consumer: gid });
                }
            }
            Ok(cmd) => {
                let e = Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                    "{:?} for SUBSCRIBE",
                    cmd.kind()
                )));
                let step = s.link.failure(sh, now, e);
                self.apply(sh, now, sid, step);
            }
            Err(e) => {
                if e == Error::Timeout {
                    // The broker may still create it: close it before trying again.
                    send_cleanup_close(sh, now, conn, sid);
                }
                let step = s.link.failure(sh, now, e);
                self.apply(sh, now, sid, step);
            }
        }
    }

    /// A MESSAGE for wire consumer `id` on `conn` (`payload` is `None` when `checksum_ok` is false).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn message(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        message: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if s.link.ready_conn() != Some(conn) {
            return;
        }
        let gid = s.group;
        let Some(g) = self.groups.get_mut_untimed(&gid) else {
            return;
        };
        let was_empty = g.queue.is_empty();
        let out = s.intake(
            sh,
            now,
            conn,
            &mut self.codec,
            &mut g.queue,
            message,
            payload,
            checksum_ok,
        );
        if was_empty && !g.queue.is_empty() {
            sh.out
                .events
                .push_back(Event::MessagesAvailable { consumer: gid });
        }
        for e in out.dead_letter {
            self.dlq.push_dead(id, e);
        }
        self.redeliver(sh, id, out.redeliver);
    }

    /// A broker command other than MESSAGE for wire consumer (or pattern watcher) `id` on `conn`.
    pub(crate) fn command(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: ConsumerId,
        command: pb::BaseCommand,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            if command.kind() == Some(Type::WatchTopicUpdate) {
                if let Some(u) = command.watch_topic_update {
                    self.watch_update(sh, now, id, conn, *u);
                }
            }
            return;
        };
        let gid = s.group;
        match command.kind() {
            Some(Type::CloseConsumer) => {
                let Some(cc) = command.close_consumer else {
                    return;
                };
                if s.close_requested {
                    self.finish_sub(sh, now, id);
                    self.check_closed(sh, now, gid);
                    return;
                }
                let assigned = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    cc.assigned_broker_service_url.as_deref(),
                    cc.assigned_broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => Some(a),
                    _ => None,
                };
                self.lose_registration(sh, now, id, |s, sh, now| {
                    s.link.closed_by_broker(sh, now, assigned)
                });
            }
            Some(Type::TopicMigrated) => {
                let Some(m) = command.topic_migrated else {
                    return;
                };
                let to = match pick_broker_url(
                    sh.conns.pool.service_tls(),
                    m.broker_service_url.as_deref(),
                    m.broker_service_url_tls.as_deref(),
                ) {
                    Some(Ok(a)) => a,
                    _ => return,
                };
                if s.close_requested {
                    return;
                }
                self.lose_registration(sh, now, id, |s, sh, now| s.link.migrated(sh, now, to));
            }
            Some(Type::ActiveConsumerChange) => {
                let active = command
                    .active_consumer_change
                    .and_then(|a| a.is_active)
                    .unwrap_or(false);
                sh.out.events.push_back(Event::ActiveConsumerChanged {
                    consumer: gid,
                    topic: s.topic_name.clone(),
                    active,
                });
            }
            Some(Type::ReachedEndOfTopic) => {
                s.reached_end = true;
                sh.out.events.push_back(Event::ReachedEndOfTopic {
                    consumer: gid,
                    topic: s.topic_name.clone(),
                });
            }
            _ => {}
        }
    }

    // ---- internals ------------------------------------------------------------------------------------

    fn apply(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId, step: Step) {
        match step {
            Step::Idle => {}
            Step::Register(conn) => self.register(sh, now, conn, sid),
            Step::Failed(error) => self.sub_failed(sh, now, sid, error),
        }
    }

    fn register(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId, sid: ConsumerId) {
        let Some(s) = self.subs.get_mut(&sid) else {
            return;
        };
        let request_id = sh.env.next_request_id();
        let cmd = s.subscribe_command(request_id);
        let deadline = s.link.request_deadline(&sh.env, now);
        if sh.conns.send_request_until(
            conn,
            request_id,
            &cmd,
            RequestKind::Consumer(sid, ConsumerRequest::Subscribe),
            Some(deadline),
        ) {
            s.link.registering(conn, request_id);
        } else {
            let step = s.link.failure(sh, now, Error::ConnectionClosed);
            self.apply(sh, now, sid, step);
        }
    }

    /// A wire consumer gave up (creation failed, or a fatal error after it was ready).
    fn sub_failed(&mut self, sh: &mut Shared, now: Instant, sid: ConsumerId, error: Error) {
        let Some(gid) = self.subs.get(&sid).map(|s| s.group) else {
            return;
        };
        let topic = self.subs.get(&sid).map(|s| s.topic_name.to_string());
        self.finish_sub(sh, now, sid);
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        match g.phase {
            Phase::Starting => self.end_group(sh, Some(now), gid, Some(error), true),
            Phase::Closing => self.check_closed(sh, now, gid),
            Phase::Ready => {
                // A topic found by a pattern is retried as long as it matches; anything else
                // ends the consumer (as Java's consumer fails).
                let entry = topic.as_deref().and_then(|t| {
                    g.topics
                        .iter_mut()
                        .find(|(name, e)| {
                            e.discovered && (t == name.as_str() || t.starts_with(name.as_str()))
                        })
                        .map(|(_, e)| e)
                });
                match entry {
                    Some(e) => {
                        e.retry_at = Some(time::after(now, e.backoff.next_delay(&mut sh.env.rng)));
                        sh.out.events.push_back(Event::ConsumerReconnecting {
                            consumer: gid,
                            reason: error,
                        });
                    }
                    None => self.end_group(sh, Some(now), gid, Some(error), false),
                }
            }
        }
    }

    // ---- pattern discovery ----------------------------------------------------------------------------

    fn poll_topics(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) else {
            return;
        };
        if d.op.is_some() {
            return;
        }
        let kind = OpKind::TopicsOfNamespace {
            namespace: d.pattern.namespace.clone(),
            mode: self
                .groups
                .get(&gid)
                .map(|g| g.opts.pattern_topics_mode)
                .unwrap_or_default(),
        };
        let limit = self.creation_limit(gid);
        let op = sh.start_op_until(now, Owner::Consumer(gid), kind, None, limit);
        if let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) {
            // the op may have finished synchronously (client shut)
            if sh.lookups.contains(op) {
                d.op = Some(op);
            }
        }
    }

    fn topics_listed(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId, result: OpResult) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        let interval = g.opts.pattern_discovery_interval;
        let starting = g.phase == Phase::Starting;
        let Some(d) = g.discovery.as_mut() else {
            return;
        };
        d.op = None;
        match result {
            OpResult::TopicsOfNamespace(Ok(list)) => {
                d.backoff.reset();
                d.next_poll = time::after(now, interval);
                let matched: BTreeSet<String> =
                    list.into_iter().filter(|t| d.pattern.matches(t)).collect();
                let watch_off = d.watch == Watch::Off;
                self.apply_topic_set(sh, now, gid, matched);
                if let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) {
                    d.listed = true;
                }
                if watch_off {
                    self.start_watch(sh, now, gid);
                }
                self.check_ready(&mut sh.out, gid);
            }
            OpResult::TopicsOfNamespace(Err(e)) => {
                let delay = d.backoff.next_delay(&mut sh.env.rng);
                match retry_or_fail(starting, &mut g.create_deadline, now, delay, e) {
                    Ok(at) => {
                        if let Some(d) = g.discovery.as_mut() {
                            d.next_poll = at;
                        }
                    }
                    Err(e) => self.end_group(sh, Some(now), gid, Some(e), true),
                }
            }
            _ => {}
        }
    }

    /// Joins topics that newly match and leaves those that are gone.
    fn apply_topic_set(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        matched: BTreeSet<String>,
    ) {
        let Some(g) = self.groups.get(&gid) else {
            return;
        };
        let current: BTreeSet<String> = g
            .topics
            .iter()
            .filter(|(_, t)| t.discovered)
            .map(|(n, _)| n.clone())
            .collect();
        let added: Vec<String> = matched.difference(&current).cloned().collect();
        let removed: Vec<String> = current.difference(&matched).cloned().collect();
        self.change_topics(sh, now, gid, added, removed);
    }

    fn change_topics(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        added: Vec<String>,
        removed: Vec<String>,
    ) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.phase == Phase::Closing {
            return;
        }
        let announce = g.discovery.as_ref().is_some_and(|d| d.listed);
        let mut added_ok = Vec::new();
        for name in added {
            let Ok(topic) = TopicName::parse(&name) else {
                continue;
            };
            let name = topic.to_string();
            if g.topics.contains_key(&name) {
                continue;
            }
            g.topics.insert(
                name.clone(),
                TopicEntry {
                    partitions: Some(0),
                    op: None,
                    retry_at: None,
                    backoff: Backoff::new(sh.env.config.backoff_initial, sh.env.config.backoff_max),
                    next_check: None,
                    subs: VecMap::new(),
                    discovered: true,
                },
            );
            added_ok.push(name);
        }
        let mut removed_ok = Vec::new();
        let mut to_close = Vec::new();
        for name in removed {
            if let Some(t) = g.topics.remove(&name) {
                to_close.extend(t.subs.values().copied());
                removed_ok.push(name);
            }
        }
        for name in &added_ok {
            self.ensure_subs(sh, now, gid, name);
        }
        for sid in to_close {
            self.close_sub(sh, now, sid);
        }
        if announce && (!added_ok.is_empty() || !removed_ok.is_empty()) {
            sh.out.events.push_back(Event::TopicsChanged {
                consumer: gid,
                added: added_ok,
                removed: removed_ok,
            });
        }
    }

    fn start_watch(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let key = sh.conns.service_key();
        let conn = sh
            .conns
            .connection_for(now, &mut sh.env, &mut sh.out, &key, None);
        let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) else {
            return;
        };
        if !sh.conns.is_ready(conn) {
            sh.conns.attach_consumer(conn, gid);
            d.watch = Watch::Connecting(conn);
            return;
        }
        self.send_watch(sh, now, gid, conn);
    }

    fn send_watch(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId, conn: ConnectionId) {
        let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) else {
            return;
        };
        if !matches!(d.watch, Watch::Off | Watch::Connecting(_)) {
            return;
        }
        if !sh.conns.supports_topic_watchers(conn) {
            sh.conns.detach_consumer(conn, gid);
            d.watch = Watch::Off;
            return;
        }
        sh.conns.attach_consumer(conn, gid);
        let request_id = sh.env.next_request_id();
        let cmd = pb::BaseCommand::from(pb::CommandWatchTopicList {
            request_id,
            watcher_id: d.watcher_id,
            namespace: d.pattern.namespace.clone(),
            topics_pattern: d.pattern.source.clone(),
            topics_hash: None,
        });
        if sh.conns.send_request(
            now,
            conn,
            request_id,
            &cmd,
            RequestKind::Consumer(gid, ConsumerRequest::WatchTopics),
        ) {
            d.watch = Watch::Pending(conn, request_id);
        } else {
            d.watch = Watch::Off;
        }
    }

    fn watch_response(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        conn: ConnectionId,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) else {
            return;
        };
        if !matches!(d.watch, Watch::Pending(c, _) if c == conn) {
            return;
        }
        match result.map(|c| c.watch_topic_list_success) {
            Ok(Some(ok)) => {
                d.watch = Watch::Active(conn);
                let matched: BTreeSet<String> = ok
                    .topic
                    .into_iter()
                    .filter(|t| d.pattern.matches(t))
                    .collect();
                self.apply_topic_set(sh, now, gid, matched);
            }
            _ => {
                // No watcher: polling alone keeps the topic set current.
                d.watch = Watch::Off;
                sh.conns.detach_consumer(conn, gid);
            }
        }
    }

    fn watch_update(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        conn: ConnectionId,
        update: pb::CommandWatchTopicUpdate,
    ) {
        let Some(d) = self.groups.get(&gid).and_then(|g| g.discovery.as_ref()) else {
            return;
        };
        if d.watch != Watch::Active(conn) {
            return;
        }
        let added: Vec<String> = update
            .new_topics
            .into_iter()
            .filter(|t| d.pattern.matches(t))
            .collect();
        let removed = update.deleted_topics;
        self.change_topics(sh, now, gid, added, removed);
    }

    fn stop_discovery(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
        let Some(d) = self.groups.get_mut(&gid).and_then(|g| g.discovery.as_mut()) else {
            return;
        };
        if let Some(op) = d.op.take() {
            sh.lookups.cancel(op);
        }
        d.next_poll = time::after(now, std::time::Duration::MAX);
        match d.watch {
            Watch::Active(conn) | Watch::Pending(conn, _) => {
                let request_id = sh.env.next_request_id();
                let cmd = pb::BaseCommand::from(pb::CommandWatchTopicListClose {
                    request_id,
                    watcher_id: d.watcher_id,
                });
                sh.conns.send_request(
                    now,
                    conn,
                    request_id,
                    &cmd,
                    RequestKind::Consumer(gid, ConsumerRequest::Cleanup),
                );
                sh.conns.detach_consumer(conn, gid);
            }
            Watch::Connecting(conn) => sh.conns.detach_consumer(conn, gid),
            Watch::Off => {}
        }
        d.watch = Watch::Off;
    }
}

/// Sends a CLOSE_CONSUMER whose answer does not matter (the broker may hold a registration the
/// client no longer wants); its request entry expires after the operation timeout.
/// After a failed lookup of a group: when to retry (after `delay`, and while the group is being
/// created not after its deadline), or the error the group's creation fails with.
fn retry_or_fail(
    starting: bool,
    deadline: &mut Deadline,
    now: Instant,
    delay: std::time::Duration,
    error: Error,
) -> Result<Instant, Error> {
    if !starting {
        return Ok(time::after(now, delay));
    }
    if !error.is_retriable() {
        return Err(error);
    }
    if deadline.expired(now) {
        return Err(deadline.expire_with(&error));
    }
    deadline.record(&error);
    Ok(deadline.retry_at(now, delay))
}

fn send_cleanup_close(sh: &mut Shared, now: Instant, conn: ConnectionId, sid: ConsumerId) {
    send_close(sh, now, conn, sid, ConsumerRequest::Cleanup);
}

/// Sends a CLOSE_CONSUMER for wire consumer `sid` as a request of kind `purpose`; returns its
/// request id.
fn send_close(
    sh: &mut Shared,
    now: Instant,
    conn: ConnectionId,
    sid: ConsumerId,
    purpose: ConsumerRequest,
) -> u64 {
    let request_id = sh.env.next_request_id();
    let cmd = pb::BaseCommand::from(pb::CommandCloseConsumer {
        consumer_id: sid.get(),
        request_id,
        ..Default::default()
    });
    sh.conns.send_request(
        now,
        conn,
        request_id,
        &cmd,
        RequestKind::Consumer(sid, purpose),
    );
    request_id
}

fn remap_events(out: &mut Outputs, from: usize, sid: ConsumerId, gid: ConsumerId) {
    if sid == gid {
        return;
    }
    for e in out.events.iter_mut().skip(from) {
        match e {
            Event::ConsumerReconnecting { consumer, .. }
            | Event::ConsumerReconnected { consumer }
                if *consumer == sid =>
            {
                *consumer = gid
            }
            Event::TopicMoved {
                resource: Resource::Consumer(c),
                ..
            } if *c == sid => *c = gid,
            _ => {}
        }
    }
}

/// The wire position of a seek to message `id` (within its batch when it has one).
fn seek_target(id: &MessageId) -> pb::MessageIdData {
    let mut wire = pb::MessageIdData {
        ledger_id: id.ledger_id,
        entry_id: id.entry_id,
        ..Default::default()
    };
    if id.batch_index >= 0 && id.batch_size > 1 {
        wire.ack_set = ack_set_from(id.batch_index, id.batch_size);
    }
    wire
}

/// The ack set of a batch seek: every index from `index` on still to be delivered (the size
/// clamped to [`acks::MAX_BATCH_SIZE`], the index to the batch).
fn ack_set_from(index: i32, size: i32) -> Vec<i64> {
    let size = acks::clamped_batch_size(size);
    let from = (index.max(0) as u32).min(size);
    let mut set = vec![u64::MAX; size.div_ceil(64) as usize];
    if let Some(last) = set.last_mut() {
        if size % 64 != 0 {
            *last = (1u64 << (size % 64)) - 1;
        }
    }
    let (full, rest) = ((from / 64) as usize, from % 64);
    for w in set.iter_mut().take(full) {
        *w = 0;
    }
    if let Some(w) = set.get_mut(full) {
        *w &= !((1u64 << rest) - 1);
    }
    set.into_iter().map(|w| w as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_ack_set_keeps_indexes_from_the_target() {
        assert_eq!(ack_set_from(0, 3), vec![0b111]);
        assert_eq!(ack_set_from(2, 3), vec![0b100]);
        let s = ack_set_from(64, 70);
        assert_eq!(s, vec![0, 0b111111]);
        assert_eq!(ack_set_from(5, 3), vec![0]);
        assert_eq!(ack_set_from(-1, 64), vec![-1]);
        assert_eq!(
            ack_set_from(0, i32::MAX).len(),
            (acks::MAX_BATCH_SIZE / 64) as usize,
            "a hostile size is clamped"
        );
    }
}
