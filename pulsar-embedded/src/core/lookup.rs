//! Topic ownership, lookups (with redirects), partitioned metadata, namespace listing, and
//! loading / unloading topics on their owner.

use std::collections::{BTreeMap, VecDeque};

use pulsar_proto::pb;

use super::topic::LoadedTopic;
use super::{normalize_topic, Cluster, ConnId, MoveKind};

impl Cluster {
    /// The owner of `topic`, assigning a live broker when it has none or its owner is down.
    pub(crate) fn owner_of(&mut self, topic: &str) -> Option<usize> {
        if let Some(&b) = self.store.owners.get(topic) {
            if self.is_up(b) {
                return Some(b);
            }
        }
        let live: Vec<usize> = (0..self.up.len()).filter(|b| self.up[*b]).collect();
        let b = *self.rng.pick(&live)?;
        if let Some(old) = self.store.owners.insert(topic.to_owned(), b) {
            self.note(format!("{topic}: owner b{old} is down, b{b} takes over"));
        }
        Some(b)
    }

    pub(crate) fn broker_of(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.broker)
    }

    /// Whether `conn`'s broker owns `topic` (assigning ownership if needed).
    pub(crate) fn serves(&mut self, conn: ConnId, topic: &str) -> bool {
        let here = self.broker_of(conn);
        here.is_some() && self.owner_of(topic) == here
    }

    pub(crate) fn handle_lookup(&mut self, conn: ConnId, c: &pb::CommandLookupTopic) {
        let topic = normalize_topic(&c.topic);
        let fail = |error: pb::ServerError, message: &str| pb::CommandLookupTopicResponse {
            request_id: c.request_id,
            response: Some(pb::command_lookup_topic_response::LookupType::Failed as i32),
            error: Some(error as i32),
            message: Some(message.into()),
            ..Default::default()
        };
        if self.fault(|f| f.lookup_error) {
            let e = if self.rng.chance(0.5) {
                pb::ServerError::ServiceNotReady
            } else {
                pb::ServerError::TooManyRequests
            };
            self.note(format!("{conn} inject {e:?} on LOOKUP {topic}"));
            self.write(conn, fail(e, "injected").into());
            return;
        }
        let Some(here) = self.broker_of(conn) else {
            return;
        };
        let Some(owner) = self.owner_of(&topic) else {
            self.write(
                conn,
                fail(pb::ServerError::ServiceNotReady, "no broker available").into(),
            );
            return;
        };
        use pb::command_lookup_topic_response::LookupType;
        let (kind, target) = if owner == here {
            (LookupType::Connect, here)
        } else if self.fault(|f| f.redirect) {
            let others: Vec<usize> = (0..self.up.len())
                .filter(|b| *b != here && *b != owner)
                .collect();
            if !others.is_empty() && self.fault(|f| f.stale_redirect) {
                let b = *self.rng.pick(&others).unwrap_or(&owner);
                (LookupType::Redirect, b)
            } else {
                (LookupType::Redirect, owner)
            }
        } else {
            (LookupType::Connect, owner)
        };
        let (url, url_tls) = self.urls_for(conn, target);
        self.write(
            conn,
            pb::CommandLookupTopicResponse {
                broker_service_url: Some(url),
                broker_service_url_tls: url_tls,
                response: Some(kind as i32),
                request_id: c.request_id,
                authoritative: Some(true),
                error: None,
                message: None,
                proxy_through_service_url: Some(false),
            }
            .into(),
        );
    }

    pub(crate) fn handle_partitioned_metadata(
        &mut self,
        conn: ConnId,
        c: &pb::CommandPartitionedTopicMetadata,
    ) {
        let topic = normalize_topic(&c.topic);
        let partitions = self.store.partitions.get(&topic).copied().unwrap_or(0);
        self.write(
            conn,
            pb::CommandPartitionedTopicMetadataResponse {
                partitions: Some(partitions),
                request_id: c.request_id,
                response: Some(
                    pb::command_partitioned_topic_metadata_response::LookupType::Success as i32,
                ),
                error: None,
                message: None,
            }
            .into(),
        );
    }

    pub(crate) fn handle_topics_of_namespace(
        &mut self,
        conn: ConnId,
        c: &pb::CommandGetTopicsOfNamespace,
    ) {
        let prefix = format!("persistent://{}/", c.namespace);
        let mut topics: Vec<String> = self
            .store
            .topics
            .keys()
            .filter(|t| t.starts_with(&prefix))
            .cloned()
            .collect();
        for (base, n) in &self.store.partitions {
            if base.starts_with(&prefix) {
                for i in 0..*n {
                    let name = format!("{base}-partition-{i}");
                    if !topics.contains(&name) {
                        topics.push(name);
                    }
                }
            }
        }
        topics.sort();
        self.write(
            conn,
            pb::CommandGetTopicsOfNamespaceResponse {
                request_id: c.request_id,
                topics,
                filtered: Some(false),
                topics_hash: None,
                changed: Some(true),
            }
            .into(),
        );
    }

    /// Loads `topic` on `broker` (its owner) if not loaded: a new ledger, dedup state recovered
    /// from the log.
    pub(crate) fn ensure_loaded(&mut self, topic: &str, broker: usize) {
        if self.loaded.contains_key(topic) {
            return;
        }
        let ledger_id = self.store.new_ledger();
        let log = self.store.topics.entry(topic.to_owned()).or_default();
        let pushed = if self.store.dedup {
            log.persisted_seq.clone()
        } else {
            BTreeMap::new()
        };
        self.loaded.insert(
            topic.to_owned(),
            LoadedTopic {
                broker,
                ledger_id,
                next_entry_id: 0,
                pending: VecDeque::new(),
                pushed,
                names: BTreeMap::new(),
                subs: BTreeMap::new(),
                exclusive: None,
                waiting: VecDeque::new(),
                loaded_at: self.now,
                msg_in: 0,
                bytes_in: 0,
            },
        );
        self.note(format!("b{broker} loads {topic} (ledger {ledger_id})"));
    }

    /// Unloads `topic` from its broker: pending writes are flushed, producers and consumers told
    /// (with a destination when moving), registrations dropped.
    pub(crate) fn unload_topic(&mut self, topic: &str, to: Option<(usize, MoveKind)>) {
        if !self.loaded.contains_key(topic) {
            return;
        }
        self.flush_pending(topic);
        let url = to.map(|(b, _)| Self::broker_url(b));
        let how = to.map(|(_, h)| h);
        let regs: Vec<(ConnId, Vec<u64>, Vec<u64>)> = self
            .conns
            .iter()
            .map(|(id, c)| {
                let ps = c
                    .producers
                    .iter()
                    .filter(|(_, p)| p.topic == topic)
                    .map(|(pid, _)| *pid)
                    .collect();
                let cs = c
                    .consumers
                    .iter()
                    .filter(|(_, r)| r.topic == topic)
                    .map(|(cid, _)| *cid)
                    .collect();
                (*id, ps, cs)
            })
            .collect();
        for (conn, producers, consumers) in regs {
            for pid in producers {
                if how == Some(MoveKind::Migrated) {
                    self.write(
                        conn,
                        pb::CommandTopicMigrated {
                            resource_id: pid,
                            resource_type: pb::command_topic_migrated::ResourceType::Producer
                                as i32,
                            broker_service_url: url.clone(),
                            broker_service_url_tls: None,
                        }
                        .into(),
                    );
                }
                let assigned = if how == Some(MoveKind::CloseWithUrl) {
                    url.clone()
                } else {
                    None
                };
                self.write(
                    conn,
                    pb::CommandCloseProducer {
                        producer_id: pid,
                        request_id: u64::MAX,
                        assigned_broker_service_url: assigned,
                        assigned_broker_service_url_tls: None,
                    }
                    .into(),
                );
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.producers.remove(&pid);
                    c.closed_producers.insert(pid);
                }
            }
            for cid in consumers {
                if how == Some(MoveKind::Migrated) {
                    self.write(
                        conn,
                        pb::CommandTopicMigrated {
                            resource_id: cid,
                            resource_type: pb::command_topic_migrated::ResourceType::Consumer
                                as i32,
                            broker_service_url: url.clone(),
                            broker_service_url_tls: None,
                        }
                        .into(),
                    );
                }
                let assigned = if how == Some(MoveKind::CloseWithUrl) {
                    url.clone()
                } else {
                    None
                };
                self.write(
                    conn,
                    pb::CommandCloseConsumer {
                        consumer_id: cid,
                        request_id: u64::MAX,
                        assigned_broker_service_url: assigned,
                        assigned_broker_service_url_tls: None,
                    }
                    .into(),
                );
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.consumers.remove(&cid);
                }
            }
        }
        self.loaded.remove(topic);
    }
}
