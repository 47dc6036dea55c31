//! Subscriptions: SUBSCRIBE for every type, FLOW permits, dispatch, acks (individual, cumulative,
//! batch index), redelivery, seek, close, unsubscribe.

use std::collections::BTreeSet;

use pulsar_proto::pb;

use super::conn::ConsumerReg;
use super::store::{Cursor, Entry, TopicLog};
use super::topic::{ConsumerKey, SubState};
use super::{normalize_topic, partition_index, Cluster, ConnId};

pub(crate) const EXCLUSIVE: i32 = 0;
pub(crate) const SHARED: i32 = 1;
pub(crate) const FAILOVER: i32 = 2;
pub(crate) const KEY_SHARED: i32 = 3;

/// Entries a Key_Shared dispatch may set aside (blocked consumer) in one pass.
const MAX_DEFERRED: usize = 64;

impl Cluster {
    pub(crate) fn handle_subscribe(&mut self, conn: ConnId, c: &pb::CommandSubscribe) {
        let topic = normalize_topic(&c.topic);
        let request_id = c.request_id;
        if !self.serves(conn, &topic) {
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::ServiceNotReady,
                "not served here",
            );
            return;
        }
        if !self.may(conn, |r| r.may_consume(&topic)) {
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::AuthorizationError,
                "not authorized to consume from this topic",
            );
            return;
        }
        if self.fault(|f| f.subscribe_error) {
            let e = self.retriable_error();
            self.note(format!("{conn} inject {e:?} on SUBSCRIBE {topic}"));
            self.reply_error(conn, request_id, e, "injected");
            return;
        }
        if let Err(reason) = self.consumer_schema(&topic, c.schema.as_ref()) {
            self.note(format!(
                "{conn} refuses the schema of SUBSCRIBE {topic}: {reason}"
            ));
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::IncompatibleSchema,
                &reason,
            );
            return;
        }
        let Some(cn) = self.conns.get(&conn) else {
            return;
        };
        if let Some(reg) = cn.consumers.get(&c.consumer_id) {
            if reg.topic == topic && reg.subscription == c.subscription {
                self.success(conn, request_id);
            } else {
                self.reply_error(conn, request_id, pb::ServerError::ConsumerBusy, "id in use");
            }
            return;
        }
        let broker = cn.broker;
        self.ensure_loaded(&topic, broker);
        // A non-persistent topic keeps no cursor: each subscription sees only what is published
        // while it exists, from its creation on.
        let non_persistent = topic.starts_with("non-persistent://");
        let durable = c.durable.unwrap_or(true) && !non_persistent;
        let sub_name = c.subscription.clone();
        let log_len = self.store.topics.get(&topic).map_or(0, |l| l.entries.len());
        // entries dropped by retention are never read again
        let trimmed = self.store.topics.get(&topic).map_or(0, |l| l.trimmed);
        if durable {
            let earliest = c.initial_position == Some(1);
            let log = self.store.topics.entry(topic.clone()).or_default();
            log.cursors
                .entry(sub_name.clone())
                .or_insert_with(|| Cursor::at(if earliest { trimmed } else { log_len }));
        }
        let start = if durable {
            self.store
                .topics
                .get(&topic)
                .and_then(|l| l.cursors.get(&sub_name))
                .map_or(0, |cur| cur.mark_delete)
        } else if non_persistent {
            log_len
        } else {
            let log = self.store.topics.get(&topic);
            let earliest = c.initial_position == Some(1);
            reader_start(log, c.start_message_id.as_ref(), earliest, log_len).max(trimmed)
        };
        let Some(lt) = self.loaded.get_mut(&topic) else {
            return;
        };
        let sub = lt
            .subs
            .entry(sub_name.clone())
            .or_insert_with(|| SubState::new(c.sub_type, durable, start));
        let holder = sub.consumers.first().copied();
        if !sub.consumers.is_empty() && sub.sub_type != c.sub_type {
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::ConsumerBusy,
                "subscription is of a different type",
            );
            return;
        }
        if sub.sub_type == EXCLUSIVE && !sub.consumers.is_empty() {
            if let Some((hc, _)) = holder {
                self.probe_consumer_holder(hc);
            }
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::ConsumerBusy,
                "exclusive subscription already has a consumer",
            );
            return;
        }
        sub.sub_type = c.sub_type;
        sub.consumers.push((conn, c.consumer_id));
        if let Some(cn) = self.conns.get_mut(&conn) {
            cn.consumers.insert(
                c.consumer_id,
                ConsumerReg {
                    topic: topic.clone(),
                    subscription: sub_name.clone(),
                    permits: 0,
                    epoch: c.consumer_epoch,
                    priority: c.priority_level.unwrap_or(0),
                    name: c.consumer_name.clone().unwrap_or_default(),
                },
            );
        }
        self.note(format!(
            "{conn} consumer c{} on {topic} sub {sub_name} type {} start {start}",
            c.consumer_id, c.sub_type
        ));
        self.success(conn, request_id);
        self.update_active(&topic, &sub_name);
        self.dispatch(&topic, &sub_name);
    }

    fn probe_consumer_holder(&mut self, holder: ConnId) {
        let deadline = self.now + std::time::Duration::from_secs(5);
        if let Some(c) = self.conns.get_mut(&holder) {
            if c.probe_deadline.is_none() {
                c.probe_deadline = Some(deadline);
                c.probe_started = c.last_input;
                self.write(holder, pb::CommandPing {}.into());
            }
        }
    }

    pub(crate) fn success(&mut self, conn: ConnId, request_id: u64) {
        self.write(
            conn,
            pb::CommandSuccess {
                request_id,
                schema: None,
            }
            .into(),
        );
    }

    fn consumer(&self, conn: ConnId, id: u64) -> Option<&ConsumerReg> {
        self.conns.get(&conn)?.consumers.get(&id)
    }

    pub(crate) fn handle_flow(&mut self, conn: ConnId, c: &pb::CommandFlow) {
        let Some(reg) = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.consumers.get_mut(&c.consumer_id))
        else {
            return;
        };
        reg.permits += i64::from(c.message_permits);
        let (topic, sub) = (reg.topic.clone(), reg.subscription.clone());
        self.dispatch(&topic, &sub);
    }

    /// Runs `f` on the cursor of a subscription with the topic's entries.
    fn with_cursor<R>(
        &mut self,
        topic: &str,
        sub: &str,
        f: impl FnOnce(&mut Cursor, &[Entry]) -> R,
    ) -> Option<R> {
        let log = self.store.topics.get_mut(topic)?;
        let s = self.loaded.get_mut(topic)?.subs.get_mut(sub)?;
        if s.durable {
            let TopicLog {
                entries, cursors, ..
            } = log;
            Some(f(cursors.get_mut(sub)?, entries))
        } else {
            Some(f(s.local_cursor.as_mut()?, &log.entries))
        }
    }

    fn is_acked(&self, topic: &str, sub: &str, s: &SubState, index: usize) -> bool {
        if self
            .store
            .topics
            .get(topic)
            .is_some_and(|l| index < l.trimmed)
        {
            return true;
        }
        if s.durable {
            self.store
                .topics
                .get(topic)
                .and_then(|l| l.cursors.get(sub))
                .is_some_and(|c| c.is_acked(index))
        } else {
            s.local_cursor.as_ref().is_some_and(|c| c.is_acked(index))
        }
    }

    fn partial_ack_set(&self, topic: &str, sub: &str, s: &SubState, index: usize) -> Vec<i64> {
        let cursor = if s.durable {
            self.store
                .topics
                .get(topic)
                .and_then(|l| l.cursors.get(sub))
        } else {
            s.local_cursor.as_ref()
        };
        cursor
            .and_then(|c| c.partial.get(&index).cloned())
            .unwrap_or_default()
    }

    /// Sends entries to consumers with permits, redeliveries first, in log order.
    pub(crate) fn dispatch(&mut self, topic: &str, sub: &str) {
        let mut deferred: BTreeSet<usize> = BTreeSet::new();
        loop {
            let Some(s) = self.loaded.get(topic).and_then(|t| t.subs.get(sub)) else {
                return;
            };
            if s.consumers.is_empty() {
                return;
            }
            // the end of the log, or the first message of a transaction still open
            let log_len = self.max_read(topic);
            // the next candidate: a redelivery not set aside, else the read position
            let from_redeliver = s.redeliver.iter().find(|i| !deferred.contains(i)).copied();
            let (index, redelivered) = match from_redeliver {
                Some(i) => (i, true),
                None if s.read_pos < log_len => (s.read_pos, false),
                None => return,
            };
            if self.is_acked(topic, sub, s, index)
                || (!redelivered && s.pending.contains_key(&index))
            {
                self.consume_candidate(topic, sub, index, redelivered);
                continue;
            }
            let (aborted, held) = self.txn_skips(topic, sub, index);
            if aborted || held {
                if aborted {
                    // as the real dispatcher: messages of aborted transactions are acknowledged
                    self.with_cursor(topic, sub, |cursor, _| cursor.ack(index));
                }
                self.consume_candidate(topic, sub, index, redelivered);
                continue;
            }
            let Some(entry) = self
                .store
                .topics
                .get(topic)
                .and_then(|l| l.entries.get(index))
            else {
                return;
            };
            if !redelivered {
                if let Some(at) = self.delivery_time(s, entry) {
                    self.consume_candidate(topic, sub, index, false);
                    if let Some(s) = self.sub_mut(topic, sub) {
                        s.delayed.insert(index, at);
                    }
                    continue;
                }
            }
            let target = self.choose_consumer(topic, s, entry);
            let Some(target) = target else {
                return;
            };
            let permits = self.consumer(target.0, target.1).map_or(0, |r| r.permits);
            if permits <= 0 {
                if s.sub_type == KEY_SHARED && deferred.len() < MAX_DEFERRED {
                    if !redelivered {
                        if let Some(s) = self.sub_mut(topic, sub) {
                            s.redeliver.insert(index);
                            s.read_pos += 1;
                        }
                    }
                    deferred.insert(index);
                    continue;
                }
                return;
            }
            self.send_message(topic, sub, index, target);
            self.consume_candidate(topic, sub, index, redelivered);
            if let Some(s) = self.sub_mut(topic, sub) {
                s.pending.insert(index, target);
            }
        }
    }

    fn sub_mut(&mut self, topic: &str, sub: &str) -> Option<&mut SubState> {
        self.loaded.get_mut(topic)?.subs.get_mut(sub)
    }

    fn consume_candidate(&mut self, topic: &str, sub: &str, index: usize, redelivered: bool) {
        if let Some(s) = self.sub_mut(topic, sub) {
            if redelivered {
                s.redeliver.remove(&index);
            } else {
                s.read_pos = s.read_pos.max(index + 1);
            }
        }
    }

    fn choose_consumer(&self, topic: &str, s: &SubState, entry: &Entry) -> Option<ConsumerKey> {
        match s.sub_type {
            SHARED => {
                let n = s.consumers.len();
                (0..n)
                    .map(|k| s.consumers[(s.rr + k) % n])
                    .find(|key| self.consumer(key.0, key.1).is_some_and(|r| r.permits > 0))
            }
            FAILOVER => self.failover_active(topic, s),
            KEY_SHARED => {
                let key = entry
                    .metadata
                    .partition_key
                    .clone()
                    .or_else(|| {
                        entry
                            .metadata
                            .ordering_key
                            .as_ref()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                    })
                    .unwrap_or_default();
                let n = s.consumers.len() as u64;
                s.consumers
                    .get((fnv1a(key.as_bytes()) % n.max(1)) as usize)
                    .copied()
            }
            _ => s.consumers.first().copied(),
        }
    }

    fn failover_active(&self, topic: &str, s: &SubState) -> Option<ConsumerKey> {
        let mut ranked: Vec<(i32, String, usize, ConsumerKey)> = s
            .consumers
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                self.consumer(k.0, k.1)
                    .map(|r| (r.priority, r.name.clone(), i, *k))
            })
            .collect();
        ranked.sort();
        if ranked.is_empty() {
            return None;
        }
        let p = partition_index(topic).max(0) as usize;
        ranked.get(p % ranked.len()).map(|r| r.3)
    }

    fn send_message(&mut self, topic: &str, sub: &str, index: usize, target: ConsumerKey) {
        let Some(s) = self.loaded.get(topic).and_then(|t| t.subs.get(sub)) else {
            return;
        };
        let ack_set = self.partial_ack_set(topic, sub, s, index);
        let count = s.redelivery_count.get(&index).copied().unwrap_or(0);
        let rr_next = if s.sub_type == SHARED {
            s.consumers
                .iter()
                .position(|k| *k == target)
                .map(|p| (p + 1) % s.consumers.len().max(1))
        } else {
            None
        };
        let Some(entry) = self
            .store
            .topics
            .get(topic)
            .and_then(|l| l.entries.get(index))
        else {
            return;
        };
        let partition = partition_index(topic);
        let Some(reg) = self
            .conns
            .get_mut(&target.0)
            .and_then(|c| c.consumers.get_mut(&target.1))
        else {
            return;
        };
        // as the real broker: a partly acknowledged batch costs only its unacknowledged messages
        let cost = if ack_set.is_empty() {
            i64::from(entry.num_messages.max(1))
        } else {
            ack_set.iter().map(|w| i64::from(w.count_ones())).sum()
        };
        reg.permits -= cost;
        let bytes = entry.payload.len() as u64;
        let cmd = pb::CommandMessage {
            consumer_id: target.1,
            message_id: pb::MessageIdData {
                ledger_id: entry.ledger_id,
                entry_id: entry.entry_id,
                partition: (partition >= 0).then_some(partition),
                ..Default::default()
            },
            redelivery_count: Some(count),
            ack_set,
            consumer_epoch: reg.epoch,
        };
        let metadata = entry.metadata.clone();
        let payload = entry.payload.clone();
        let key = (
            topic.to_owned(),
            sub.to_owned(),
            entry.ledger_id,
            entry.entry_id,
        );
        if count == 0 && self.config.history {
            self.first_dispatch.insert(key, self.now);
        }
        self.write_payload(target.0, cmd.into(), &metadata, &payload);
        if let Some(s) = self.sub_mut(topic, sub) {
            if let Some(next) = rr_next {
                s.rr = next;
            }
            s.msg_out += cost.max(0) as u64;
            s.bytes_out += bytes;
        }
    }

    /// Makes the right Failover consumer active, telling every consumer; the old active consumer's
    /// unacknowledged entries go to the new one.
    pub(crate) fn update_active(&mut self, topic: &str, sub: &str) {
        let Some(s) = self.loaded.get(topic).and_then(|t| t.subs.get(sub)) else {
            return;
        };
        if s.sub_type != FAILOVER {
            return;
        }
        let new = self.failover_active(topic, s);
        let old = s.active;
        let consumers = s.consumers.clone();
        if new == old {
            return;
        }
        if let Some(s) = self.sub_mut(topic, sub) {
            s.active = new;
            if let Some(o) = old {
                s.take_back(o);
            }
        }
        for key in consumers {
            self.write(
                key.0,
                pb::CommandActiveConsumerChange {
                    consumer_id: key.1,
                    is_active: Some(Some(key) == new),
                }
                .into(),
            );
        }
    }

    pub(crate) fn handle_ack(&mut self, conn: ConnId, c: &pb::CommandAck) {
        let Some(reg) = self.consumer(conn, c.consumer_id).cloned() else {
            return;
        };
        let (topic, sub) = (reg.topic, reg.subscription);
        let sub_type = self
            .loaded
            .get(&topic)
            .and_then(|t| t.subs.get(&sub))
            .map_or(EXCLUSIVE, |s| s.sub_type);
        let cumulative = c.ack_type == pb::command_ack::AckType::Cumulative as i32;
        if let Some(key) = super::txn::txn_of(c.txnid_most_bits, c.txnid_least_bits) {
            let result = if cumulative && (sub_type == SHARED || sub_type == KEY_SHARED) {
                Err((
                    pb::ServerError::NotAllowedError,
                    "cumulative acknowledgement on a shared subscription".to_owned(),
                ))
            } else {
                self.txn_ack(&topic, &sub, key, c, cumulative)
            };
            if let Err((_, why)) = &result {
                self.note(format!("{conn} transactional ACK refused: {why}"));
            }
            let (error, message) = match result {
                Ok(()) => (None, None),
                Err((e, m)) => (Some(e as i32), Some(m)),
            };
            self.write(
                conn,
                pb::CommandAckResponse {
                    consumer_id: c.consumer_id,
                    txnid_most_bits: Some(key.0),
                    txnid_least_bits: Some(key.1),
                    error,
                    message,
                    request_id: c.request_id,
                }
                .into(),
            );
            self.dispatch(&topic, &sub);
            return;
        }
        if !(cumulative && (sub_type == SHARED || sub_type == KEY_SHARED)) {
            for id in &c.message_id {
                self.with_cursor(&topic, &sub, |cursor, entries| {
                    let Some(index) = entries
                        .binary_search_by(|e| {
                            (e.ledger_id, e.entry_id).cmp(&(id.ledger_id, id.entry_id))
                        })
                        .ok()
                    else {
                        return;
                    };
                    let size = entries.get(index).map_or(1, |e| e.num_messages);
                    match (cumulative, id.ack_set.is_empty()) {
                        (true, true) => cursor.ack_cumulative(index),
                        (true, false) => {
                            if index > 0 {
                                cursor.ack_cumulative(index - 1);
                            }
                            cursor.ack_batch(index, size, &id.ack_set);
                        }
                        (false, true) => cursor.ack(index),
                        (false, false) => {
                            cursor.ack_batch(index, size, &id.ack_set);
                        }
                    }
                });
            }
            self.prune_acked(&topic, &sub);
        }
        if let Some(request_id) = c.request_id {
            self.write(
                conn,
                pb::CommandAckResponse {
                    consumer_id: c.consumer_id,
                    request_id: Some(request_id),
                    ..Default::default()
                }
                .into(),
            );
        }
    }

    /// Drops acknowledged entries from the dispatch state.
    pub(crate) fn prune_acked(&mut self, topic: &str, sub: &str) {
        let Some(s) = self.loaded.get(topic).and_then(|t| t.subs.get(sub)) else {
            return;
        };
        let candidates: Vec<usize> = s
            .pending
            .keys()
            .chain(s.redeliver.iter())
            .copied()
            .collect();
        let acked: Vec<usize> = candidates
            .into_iter()
            .filter(|i| self.is_acked(topic, sub, s, *i))
            .collect();
        if let Some(s) = self.sub_mut(topic, sub) {
            for i in acked {
                s.pending.remove(&i);
                s.redeliver.remove(&i);
                s.redelivery_count.remove(&i);
            }
        }
    }

    pub(crate) fn handle_redeliver(
        &mut self,
        conn: ConnId,
        c: &pb::CommandRedeliverUnacknowledgedMessages,
    ) {
        let Some(reg) = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.consumers.get_mut(&c.consumer_id))
        else {
            return;
        };
        if let Some(e) = c.consumer_epoch {
            reg.epoch = Some(reg.epoch.map_or(e, |old| old.max(e)));
        }
        let (topic, sub) = (reg.topic.clone(), reg.subscription.clone());
        let key = (conn, c.consumer_id);
        let indexes: Vec<usize> = {
            let Some(log) = self.store.topics.get(&topic) else {
                return;
            };
            c.message_ids
                .iter()
                .filter_map(|id| log.index_of(id.ledger_id, id.entry_id))
                .collect()
        };
        if let Some(s) = self.sub_mut(&topic, &sub) {
            if c.message_ids.is_empty() {
                s.take_back(key);
            } else {
                for i in indexes {
                    if s.pending.get(&i) == Some(&key) {
                        s.pending.remove(&i);
                        s.redeliver.insert(i);
                        *s.redelivery_count.entry(i).or_insert(0) += 1;
                    }
                }
            }
        }
        self.dispatch(&topic, &sub);
    }

    pub(crate) fn handle_seek(&mut self, conn: ConnId, c: &pb::CommandSeek) {
        let Some(reg) = self.consumer(conn, c.consumer_id).cloned() else {
            self.reply_error(
                conn,
                c.request_id,
                pb::ServerError::ConsumerNotFound,
                "no such consumer",
            );
            return;
        };
        let (topic, sub) = (reg.topic, reg.subscription);
        let index = {
            let log = self.store.topics.get(&topic);
            let len = log.map_or(0, |l| l.entries.len());
            match (&c.message_id, c.message_publish_time) {
                (Some(id), _) if id.ledger_id == u64::MAX => 0,
                (Some(id), _) if id.ledger_id >= i64::MAX as u64 => len,
                (Some(id), _) => log.map_or(0, |l| l.first_at_or_after(id.ledger_id, id.entry_id)),
                (None, Some(t)) => log.map_or(0, |l| {
                    l.entries.partition_point(|e| e.metadata.publish_time < t)
                }),
                (None, None) => len,
            }
            .max(log.map_or(0, |l| l.trimmed))
        };
        self.with_cursor(&topic, &sub, |cursor, _| *cursor = Cursor::at(index));
        let consumers = self
            .sub_mut(&topic, &sub)
            .map(|s| {
                s.pending.clear();
                s.redeliver.clear();
                s.redelivery_count.clear();
                s.delayed.clear();
                s.read_pos = index;
                s.active = None;
                std::mem::take(&mut s.consumers)
            })
            .unwrap_or_default();
        self.note(format!("{conn} seek {topic} sub {sub} to index {index}"));
        for (cc, cid) in consumers {
            self.write(
                cc,
                pb::CommandCloseConsumer {
                    consumer_id: cid,
                    request_id: u64::MAX,
                    assigned_broker_service_url: None,
                    assigned_broker_service_url_tls: None,
                }
                .into(),
            );
            if let Some(x) = self.conns.get_mut(&cc) {
                x.consumers.remove(&cid);
            }
        }
        self.success(conn, c.request_id);
    }

    pub(crate) fn handle_close_consumer(&mut self, conn: ConnId, c: &pb::CommandCloseConsumer) {
        let removed = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.consumers.remove(&c.consumer_id));
        if let Some(reg) = &removed {
            self.detach_consumer(&reg.topic, &reg.subscription, (conn, c.consumer_id));
        }
        self.success(conn, c.request_id);
        if let Some(reg) = removed {
            self.dispatch(&reg.topic, &reg.subscription);
        }
    }

    pub(crate) fn handle_unsubscribe(&mut self, conn: ConnId, c: &pb::CommandUnsubscribe) {
        let Some(reg) = self.consumer(conn, c.consumer_id).cloned() else {
            self.reply_error(
                conn,
                c.request_id,
                pb::ServerError::ConsumerNotFound,
                "no such consumer",
            );
            return;
        };
        let others = self
            .loaded
            .get(&reg.topic)
            .and_then(|t| t.subs.get(&reg.subscription))
            .is_some_and(|s| s.consumers.iter().any(|k| *k != (conn, c.consumer_id)));
        if others && !c.force.unwrap_or(false) {
            self.reply_error(
                conn,
                c.request_id,
                pb::ServerError::ConsumerBusy,
                "subscription has other consumers",
            );
            return;
        }
        if let Some(t) = self.loaded.get_mut(&reg.topic) {
            t.subs.remove(&reg.subscription);
        }
        if let Some(l) = self.store.topics.get_mut(&reg.topic) {
            l.cursors.remove(&reg.subscription);
        }
        if let Some(x) = self.conns.get_mut(&conn) {
            x.consumers.remove(&c.consumer_id);
        }
        self.success(conn, c.request_id);
    }

    /// Removes a consumer from its subscription; its unacknowledged entries go back. A
    /// non-durable subscription (a reader's) is deleted with its last consumer, as the real
    /// broker's `PersistentSubscription.removeConsumer` does: a new subscription starts afresh at
    /// the position its SUBSCRIBE asks for.
    pub(crate) fn detach_consumer(&mut self, topic: &str, sub: &str, key: ConsumerKey) {
        let mut gone = false;
        if let Some(s) = self.sub_mut(topic, sub) {
            s.consumers.retain(|k| *k != key);
            s.take_back(key);
            if s.active == Some(key) {
                s.active = None;
            }
            gone = !s.durable && s.consumers.is_empty();
        }
        if gone {
            if let Some(t) = self.loaded.get_mut(topic) {
                t.subs.remove(sub);
            }
            return;
        }
        self.update_active(topic, sub);
    }

    pub(crate) fn handle_get_last_message_id(
        &mut self,
        conn: ConnId,
        c: &pb::CommandGetLastMessageId,
    ) {
        let Some(reg) = self.consumer(conn, c.consumer_id).cloned() else {
            self.reply_error(
                conn,
                c.request_id,
                pb::ServerError::ConsumerNotFound,
                "no such consumer",
            );
            return;
        };
        let partition = partition_index(&reg.topic);
        let partition = (partition >= 0).then_some(partition);
        // as the real broker: the last entry, with the index of its last message when batched
        let last = self
            .store
            .topics
            .get(&reg.topic)
            .and_then(|l| l.entries.last())
            .map(|e| {
                let batch = e.metadata.num_messages_in_batch.map_or(-1, |n| n - 1);
                (e.ledger_id, e.entry_id, batch)
            });
        let ledger = self.loaded.get(&reg.topic).map_or(0, |t| t.ledger_id);
        let (ledger_id, entry_id, batch_index) = last.unwrap_or((ledger, u64::MAX, -1));
        self.write(
            conn,
            pb::CommandGetLastMessageIdResponse {
                last_message_id: pb::MessageIdData {
                    ledger_id,
                    entry_id,
                    partition,
                    batch_index: Some(batch_index),
                    ..Default::default()
                },
                request_id: c.request_id,
                consumer_mark_delete_position: None,
            }
            .into(),
        );
    }
}

/// Where a reader (non-durable subscription) starts: after `start` (at it when the id carries a
/// batch index), or at the initial position without one.
fn reader_start(
    log: Option<&TopicLog>,
    start: Option<&pb::MessageIdData>,
    earliest: bool,
    len: usize,
) -> usize {
    match start {
        None if earliest => 0,
        None => len,
        Some(id) if id.ledger_id == u64::MAX => 0,
        Some(id) if id.ledger_id >= i64::MAX as u64 => len,
        Some(id) => {
            let Some(log) = log else {
                return 0;
            };
            // As the real broker (`PersistentTopic.getNonDurableSubscription`, whose start id is
            // always a `BatchMessageIdImpl`): a valid start id steps back one entry, since a batch
            // there may be partly consumed; the client discards what comes before its start (the
            // start itself too unless inclusive).
            match log.index_of(id.ledger_id, id.entry_id) {
                Some(i) => i,
                None => log.first_at_or_after(id.ledger_id, id.entry_id),
            }
        }
    }
}

/// FNV-1a, the model's Key_Shared hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
