//! Subscribing: creating a group, resolving its topics into partitions (PARTITIONED_METADATA),
//! creating the wire consumers they lack, and announcing the group ready.

use super::group::Discovery;
use super::group::Group;
use super::group::Phase;
use super::group::TopicEntry;
use super::group::Watch;
use super::pattern::TopicPattern;
use super::retry_or_fail;
use super::sub::Sub;
use super::topics::Topics;
use super::vecmap::VecMap;
use super::vecmap::VecSet;
use super::ConsumerOptions;
use super::Consumers;
use super::DeadLetterPolicy;
use super::ReaderOptions;
use crate::backoff::Backoff;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::event::Event;
use crate::handle::ConsumerId;
use crate::message::MessageId;
use crate::outputs::Outputs;
use crate::request::OpKind;
use crate::request::OpResult;
use crate::request::Owner;
use crate::shared::Shared;
use crate::time;
use crate::topic::TopicName;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

impl Consumers {
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
    pub(super) fn start_group(
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
        let paused = options.start_paused;
        // Consumers created with the same options share one copy of them.
        let opts = match &self.last_options {
            Some(o) if **o == options => o.clone(),
            _ => {
                let o = Arc::new(options);
                self.last_options = Some(o.clone());
                o
            }
        };
        let mut g = Group {
            id,
            opts,
            label: label.into_boxed_str(),
            topics: Topics::new(),
            subs: VecSet::new(),
            queue: Default::default(),
            phase: Phase::Starting,
            ops: BTreeMap::new(),
            discovery: None,
            reader_start,
            create_deadline: Deadline::new(now, sh.env.config.operation_timeout),
            unsubscribing: None,
            paused,
            watch_growth: false,
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
    pub(super) fn resolve_topic(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        topic: &TopicName,
    ) {
        if topic.is_partition() {
            if let Some(g) = self.groups.get_mut(&gid) {
                if let Some(mut t) = g.topics.get_mut(topic.as_str()) {
                    t.partitions = Some(0);
                }
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
        if let Some(g) = self.groups.get_mut(&gid) {
            if let Some(mut t) = g.topics.get_mut(topic.as_str()) {
                t.op = Some(op);
            }
        }
    }

    pub(super) fn metadata_done(
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
        let Some(mut t) = g.topics.get_mut(name) else {
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
                drop(t);
                self.ensure_subs(sh, now, gid, name);
                self.check_ready(&mut sh.out, gid);
            }
            OpResult::PartitionedMetadata(Err(e)) => {
                let delay = t.backoff.next_delay(&mut sh.env.rng);
                drop(t);
                match retry_or_fail(starting, &mut g.create_deadline, now, delay, e) {
                    Ok(at) => {
                        if let Some(mut t) = g.topics.get_mut(name) {
                            t.retry_at = Some(at);
                        }
                    }
                    Err(e) => self.end_group(sh, Some(now), gid, Some(e), true),
                }
            }
            _ => {}
        }
    }

    /// While the group is being created: its creation deadline, which its operations and first
    /// registrations share.
    pub(super) fn creation_limit(&self, gid: ConsumerId) -> Option<Instant> {
        self.groups
            .get(&gid)
            .filter(|g| g.phase == Phase::Starting)
            .map(|g| g.create_deadline.at())
    }

    /// Creates the wire consumers a resolved topic still lacks.
    pub(super) fn ensure_subs(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        name: &str,
    ) {
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
        let paused = g.paused;
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
            let topic = sh.env.topics.intern_name(topic);
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
            sub.paused = paused;
            if let Some(limit) = self.creation_limit(gid) {
                sub.link.end_creation_by(limit);
            }
            self.subs.insert(id, sub);
            if let Some(g) = self.groups.get_mut(&gid) {
                g.subs.insert(id);
                if let Some(mut t) = g.topics.get_mut(name) {
                    t.subs.insert(p, id);
                }
            }
            self.step_link(sh, now, id);
        }
    }

    /// Emits `ConsumerReady` once every topic is resolved and every wire consumer subscribed.
    pub(super) fn check_ready(&mut self, out: &mut Outputs, gid: ConsumerId) {
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.phase != Phase::Starting || !g.all_resolved() {
            return;
        }
        // newest first: wire consumers become ready roughly in creation order, so a group still
        // starting usually stops at the first one looked at (not a scan of thousands per event)
        if g.subs.iter().rev().all(|s| {
            self.subs
                .get(s)
                .is_some_and(|s| s.link.ever_ready && !s.head_pending)
        }) {
            g.phase = Phase::Ready;
            out.events.push_back(Event::ConsumerReady { consumer: gid });
        }
    }
}
