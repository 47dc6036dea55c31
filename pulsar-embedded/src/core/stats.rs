//! Introspection: per-topic statistics and the connected clients.

use std::time::Duration;

use super::{Cluster, ConnId};

/// A producer, as [`TopicStats`] and [`ClientInfo`] show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// The connection it is registered on.
    pub conn: ConnId,
    /// The client's producer id on that connection.
    pub producer_id: u64,
    /// The topic (full name; a partition counts as a topic).
    pub topic: String,
    /// The producer name.
    pub name: String,
}

/// A consumer, as [`TopicStats`] and [`ClientInfo`] show it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// The connection it is registered on.
    pub conn: ConnId,
    /// The client's consumer id on that connection.
    pub consumer_id: u64,
    /// The topic (full name).
    pub topic: String,
    /// The subscription.
    pub subscription: String,
    /// The consumer name.
    pub name: String,
    /// Flow permits left (messages the consumer can still take).
    pub permits: i64,
    /// Entries dispatched to it and not acknowledged yet.
    pub unacked_entries: usize,
}

/// One subscription of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// Its name.
    pub name: String,
    /// `Exclusive`, `Shared`, `Failover` or `Key_Shared` (of its current consumers).
    pub sub_type: &'static str,
    /// Whether it keeps a durable cursor (readers' subscriptions do not).
    pub durable: bool,
    /// Messages persisted and not acknowledged.
    pub backlog: u64,
    /// Messages dispatched on it since the topic was loaded.
    pub msg_out: u64,
    /// Payload bytes dispatched on it since the topic was loaded.
    pub bytes_out: u64,
    /// Entries set aside for delayed delivery.
    pub delayed: usize,
    /// Its consumers, in join order.
    pub consumers: Vec<ConsumerStats>,
}

/// One topic (a partition counts as a topic).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TopicStats {
    /// The full topic name.
    pub name: String,
    /// The broker owning it (always 0 for a single broker).
    pub broker: Option<usize>,
    /// Entries in its log (a batch is one entry).
    pub entries: usize,
    /// Payload bytes in its log.
    pub storage_bytes: u64,
    /// Messages published since it was loaded.
    pub msg_in: u64,
    /// Payload bytes published since it was loaded.
    pub bytes_in: u64,
    /// Messages per second published, averaged since the topic was loaded.
    pub msg_rate_in: f64,
    /// Messages per second dispatched (all subscriptions), averaged since the topic was loaded.
    pub msg_rate_out: f64,
    /// Its producers.
    pub producers: Vec<ProducerStats>,
    /// Its subscriptions (durable ones even without a consumer).
    pub subscriptions: Vec<SubscriptionStats>,
}

/// A client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The connection.
    pub conn: ConnId,
    /// The broker it is connected to.
    pub broker: usize,
    /// The peer address, as the driver gave it.
    pub peer: String,
    /// The authenticated role (`None` without authentication).
    pub role: Option<String>,
    /// The client's version string from CONNECT.
    pub client_version: String,
    /// Whether the handshake finished.
    pub ready: bool,
    /// How long it has been connected.
    pub connected_for: Duration,
    /// Its producers.
    pub producers: Vec<ProducerStats>,
    /// Its consumers.
    pub consumers: Vec<ConsumerStats>,
}

fn sub_type_name(t: i32) -> &'static str {
    match t {
        0 => "Exclusive",
        1 => "Shared",
        2 => "Failover",
        3 => "Key_Shared",
        _ => "Unknown",
    }
}

impl Cluster {
    fn producer_stats(&self) -> Vec<ProducerStats> {
        self.conns
            .iter()
            .flat_map(|(id, c)| {
                c.producers.iter().map(move |(pid, p)| ProducerStats {
                    conn: *id,
                    producer_id: *pid,
                    topic: p.topic.clone(),
                    name: p.name.clone(),
                })
            })
            .collect()
    }

    fn consumer_stats(&self) -> Vec<ConsumerStats> {
        self.conns
            .iter()
            .flat_map(|(id, c)| {
                c.consumers.iter().map(move |(cid, r)| {
                    let unacked = self
                        .loaded
                        .get(&r.topic)
                        .and_then(|t| t.subs.get(&r.subscription))
                        .map_or(0, |s| {
                            s.pending.values().filter(|k| **k == (*id, *cid)).count()
                        });
                    ConsumerStats {
                        conn: *id,
                        consumer_id: *cid,
                        topic: r.topic.clone(),
                        subscription: r.subscription.clone(),
                        name: r.name.clone(),
                        permits: r.permits,
                        unacked_entries: unacked,
                    }
                })
            })
            .collect()
    }

    /// Statistics of every topic with a log or loaded, by name.
    pub fn stats(&self) -> Vec<TopicStats> {
        let producers = self.producer_stats();
        let consumers = self.consumer_stats();
        let mut names: Vec<&String> = self.store.topics.keys().chain(self.loaded.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| self.topic_stats(name, &producers, &consumers))
            .collect()
    }

    fn topic_stats(
        &self,
        name: &str,
        producers: &[ProducerStats],
        consumers: &[ConsumerStats],
    ) -> TopicStats {
        let log = self.store.topics.get(name);
        let loaded = self.loaded.get(name);
        let mut subs: Vec<SubscriptionStats> = Vec::new();
        let mut sub_names: Vec<&String> =
            log.map(|l| l.cursors.keys().collect()).unwrap_or_default();
        if let Some(t) = loaded {
            sub_names.extend(t.subs.keys());
        }
        sub_names.sort();
        sub_names.dedup();
        let mut msg_out = 0;
        for s in sub_names {
            let state = loaded.and_then(|t| t.subs.get(s));
            let backlog = match state {
                Some(st) if !st.durable => st
                    .local_cursor
                    .as_ref()
                    .map_or(0, |c| log.map_or(0, |l| super::cursor_backlog(l, c))),
                _ => self.backlog(name, s).unwrap_or(0),
            };
            msg_out += state.map_or(0, |st| st.msg_out);
            subs.push(SubscriptionStats {
                name: s.clone(),
                sub_type: sub_type_name(state.map_or(0, |st| st.sub_type)),
                durable: state.is_none_or(|st| st.durable),
                backlog,
                msg_out: state.map_or(0, |st| st.msg_out),
                bytes_out: state.map_or(0, |st| st.bytes_out),
                delayed: state.map_or(0, |st| st.delayed.len()),
                consumers: consumers
                    .iter()
                    .filter(|c| c.topic == name && c.subscription == *s)
                    .cloned()
                    .collect(),
            });
        }
        let elapsed = loaded
            .map(|t| self.now.saturating_sub(t.loaded_at).as_secs_f64())
            .unwrap_or(0.0);
        let rate = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        TopicStats {
            name: name.to_owned(),
            broker: self.store.owners.get(name).copied(),
            entries: log.map_or(0, |l| l.entries.len()),
            storage_bytes: log.map_or(0, |l| {
                l.entries.iter().map(|e| e.payload.len() as u64).sum()
            }),
            msg_in: loaded.map_or(0, |t| t.msg_in),
            bytes_in: loaded.map_or(0, |t| t.bytes_in),
            msg_rate_in: rate(loaded.map_or(0, |t| t.msg_in)),
            msg_rate_out: rate(msg_out),
            producers: producers
                .iter()
                .filter(|p| p.topic == name)
                .cloned()
                .collect(),
            subscriptions: subs,
        }
    }

    /// Every connection with its producers and consumers.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let producers = self.producer_stats();
        let consumers = self.consumer_stats();
        self.conns
            .iter()
            .map(|(id, c)| ClientInfo {
                conn: *id,
                broker: c.broker,
                peer: c.listener.peer.clone(),
                role: c.role.clone(),
                client_version: c.client_version.clone(),
                ready: c.state == super::conn::ConnState::Ready,
                connected_for: self.now.saturating_sub(c.connected_at),
                producers: producers
                    .iter()
                    .filter(|p| p.conn == *id)
                    .cloned()
                    .collect(),
                consumers: consumers
                    .iter()
                    .filter(|x| x.conn == *id)
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// Closes every connection of `role` (after what was written to them; connections without
    /// credentials are [`ANONYMOUS`](super::ANONYMOUS)): for when its rights change. Returns how
    /// many were closed.
    pub fn force_disconnect(&mut self, now: Duration, role: &str) -> usize {
        self.now = now;
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.role.as_deref().unwrap_or(super::ANONYMOUS) == role)
            .map(|(id, _)| *id)
            .collect();
        for c in &conns {
            self.close_conn(*c, "forced disconnect");
        }
        conns.len()
    }

    /// Closes one connection from the broker side (a fault for tests, or an administrator's
    /// kick). Returns whether it existed.
    pub fn disconnect(&mut self, now: Duration, conn: ConnId) -> bool {
        self.now = now;
        let exists = self.conns.contains_key(&conn);
        self.close_conn(conn, "disconnected");
        exists
    }

    /// Unloads `topic` from its broker: producers and consumers are told to look it up again (as
    /// Apache Pulsar's topic unload). Nothing persisted is lost.
    pub fn unload(&mut self, now: Duration, topic: &str) {
        self.now = now;
        let topic = super::normalize_topic(topic);
        self.unload_topic(&topic, None);
    }
}
