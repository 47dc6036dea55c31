//! Pattern discovery: listing the namespace's topics (GET_TOPICS_OF_NAMESPACE), following the
//! broker's topic-list watcher, and joining or leaving the topics that match.

use super::group::Phase;
use super::group::TopicEntry;
use super::group::Watch;
use super::retry_or_fail;
use super::vecmap::VecMap;
use super::ConsumerRequest;
use super::Consumers;
use crate::backoff::Backoff;
use crate::error::Error;
use crate::event::Event;
use crate::handle::ConnectionId;
use crate::handle::ConsumerId;
use crate::request::OpKind;
use crate::request::OpResult;
use crate::request::Owner;
use crate::request::RequestKind;
use crate::shared::Shared;
use crate::time;
use crate::topic::TopicName;
use pulsar_proto::pb;
use std::collections::BTreeSet;
use std::time::Instant;

impl Consumers {
    pub(super) fn poll_topics(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
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

    pub(super) fn topics_listed(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        result: OpResult,
    ) {
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
    pub(super) fn apply_topic_set(
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

    pub(super) fn change_topics(
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

    pub(super) fn start_watch(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
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

    pub(super) fn send_watch(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        gid: ConsumerId,
        conn: ConnectionId,
    ) {
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

    pub(super) fn watch_response(
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

    pub(super) fn watch_update(
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

    pub(super) fn stop_discovery(&mut self, sh: &mut Shared, now: Instant, gid: ConsumerId) {
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
