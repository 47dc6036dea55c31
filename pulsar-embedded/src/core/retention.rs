//! Retention and backlog quotas, as Apache Pulsar's namespace policies define them.
//!
//! * **Retention** applies to acknowledged entries (on every durable subscription; every entry
//!   when the topic has none): the oldest are dropped while the acknowledged part of the log is
//!   larger than [`Retention::size_bytes`] or older than [`Retention::time`]. Unacknowledged
//!   entries are never dropped by retention. The default keeps everything.
//! * **Backlog quota** limits the backlog of the slowest durable subscription, in bytes (from its
//!   first unacknowledged entry to the end, as Apache Pulsar estimates it) or in age of its oldest
//!   unacknowledged entry. Over the limit, [`BacklogPolicy`] says what happens: producers are
//!   refused (`ProducerBlockedQuotaExceededError`, which clients retry: their sends wait) or fail
//!   (`ProducerBlockedQuotaExceededException`), and the topic's producers are disconnected; or the
//!   oldest backlog is dropped from the slow subscriptions.
//!
//! Both are checked every [`ClusterConfig::storage_check_interval`](super::ClusterConfig), and the
//! quota at each producer creation too. Dropped entries stay in the log as empty stubs (so that log
//! positions keep their meaning); the on-disk log of the server removes whole segments.

use std::time::Duration;

use bytes::Bytes;
use pulsar_proto::pb;

use super::store::TopicLog;
use super::Cluster;

/// Retention of acknowledged entries (`None`: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Keep at most this many payload bytes of acknowledged entries per topic.
    pub size_bytes: Option<u64>,
    /// Keep acknowledged entries at most this long after they were persisted.
    pub time: Option<Duration>,
}

impl Retention {
    /// Keeps every entry (the default).
    pub fn unlimited() -> Retention {
        Retention::default()
    }

    /// Limits by size and time (`None`: no limit on that axis).
    pub fn new(size_bytes: Option<u64>, time: Option<Duration>) -> Retention {
        Retention { size_bytes, time }
    }
}

/// What happens when a topic's backlog exceeds its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BacklogPolicy {
    /// New producers are refused with the retriable `ProducerBlockedQuotaExceededError` and
    /// producers are disconnected: clients keep retrying, their sends held, until the backlog
    /// drops below the quota.
    ProducerRequestHold,
    /// As above with `ProducerBlockedQuotaExceededException`: clients give up, sends fail.
    ProducerException,
    /// The slowest subscriptions lose their oldest backlog until under the quota.
    ConsumerBacklogEviction,
}

/// A backlog quota (`None` limits: no limit on that axis).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BacklogQuota {
    /// Largest backlog, in payload bytes, of the slowest durable subscription.
    pub limit_bytes: Option<u64>,
    /// Oldest unacknowledged entry's largest age.
    pub limit_time: Option<Duration>,
    /// What happens over the limit.
    pub policy: BacklogPolicy,
}

impl BacklogQuota {
    /// A quota of `limit_bytes` with `policy`.
    pub fn bytes(limit_bytes: u64, policy: BacklogPolicy) -> BacklogQuota {
        BacklogQuota {
            limit_bytes: Some(limit_bytes),
            limit_time: None,
            policy,
        }
    }

    /// A quota on the age of the oldest unacknowledged entry, with `policy`.
    pub fn time(limit: Duration, policy: BacklogPolicy) -> BacklogQuota {
        BacklogQuota {
            limit_bytes: None,
            limit_time: Some(limit),
            policy,
        }
    }
}

/// The first log index still needed by a durable subscription (the log length without any).
fn slowest(log: &TopicLog) -> usize {
    log.cursors
        .values()
        .map(|c| c.mark_delete)
        .min()
        .unwrap_or(log.entries.len())
}

fn bytes_from(log: &TopicLog, from: usize) -> u64 {
    log.entries
        .get(from..)
        .map_or(0, |es| es.iter().map(|e| e.payload.len() as u64).sum())
}

impl Cluster {
    /// Runs the retention and backlog checks when their interval elapsed.
    pub(crate) fn storage_checks(&mut self) {
        let active =
            self.config.retention != Retention::default() || self.config.backlog_quota.is_some();
        if !active || self.now < self.next_storage_check {
            return;
        }
        self.next_storage_check = self.now
            + self
                .config
                .storage_check_interval
                .max(Duration::from_millis(1));
        let topics: Vec<String> = self.store.topics.keys().cloned().collect();
        for topic in topics {
            self.enforce_quota(&topic);
            self.apply_retention(&topic);
        }
    }

    /// When [`storage_checks`](Self::storage_checks) next has something to do.
    pub(crate) fn next_storage_check(&self) -> Option<Duration> {
        let active =
            self.config.retention != Retention::default() || self.config.backlog_quota.is_some();
        active.then_some(self.next_storage_check)
    }

    /// Drops acknowledged entries beyond the retention limits (a prefix of the log).
    fn apply_retention(&mut self, topic: &str) {
        let Retention { size_bytes, time } = self.config.retention.clone();
        if size_bytes.is_none() && time.is_none() {
            return;
        }
        let now = self.now;
        let Some(log) = self.store.topics.get_mut(topic) else {
            return;
        };
        let end = slowest(log);
        let mut acked_bytes: u64 = log
            .entries
            .get(log.trimmed..end)
            .map_or(0, |es| es.iter().map(|e| e.payload.len() as u64).sum());
        let mut cut = log.trimmed;
        while cut < end {
            let Some(e) = log.entries.get(cut) else {
                break;
            };
            let too_big = size_bytes.is_some_and(|s| acked_bytes > s);
            let too_old = time.is_some_and(|t| e.persisted_at + t <= now);
            if !too_big && !too_old {
                break;
            }
            acked_bytes = acked_bytes.saturating_sub(e.payload.len() as u64);
            cut += 1;
        }
        if cut > log.trimmed {
            trim_to(log, cut);
            let n = cut;
            self.note(format!("retention trims {topic} to index {n}"));
        }
    }

    /// Whether `topic`'s backlog is over the quota, and the slowest subscription's first
    /// unacknowledged index.
    fn over_quota(&self, topic: &str) -> Option<usize> {
        let quota = self.config.backlog_quota.as_ref()?;
        let log = self.store.topics.get(topic)?;
        if log.cursors.is_empty() {
            return None;
        }
        let first = slowest(log);
        let by_bytes = quota
            .limit_bytes
            .is_some_and(|l| bytes_from(log, first) > l);
        let by_time = quota.limit_time.is_some_and(|t| {
            log.entries
                .get(first)
                .is_some_and(|e| e.persisted_at + t <= self.now)
        });
        (by_bytes || by_time).then_some(first)
    }

    /// The refusal of a new producer on `topic` when its backlog is over the quota.
    pub(crate) fn quota_refusal(&self, topic: &str) -> Option<pb::ServerError> {
        let quota = self.config.backlog_quota.as_ref()?;
        self.over_quota(topic)?;
        match quota.policy {
            BacklogPolicy::ProducerRequestHold => {
                Some(pb::ServerError::ProducerBlockedQuotaExceededError)
            }
            BacklogPolicy::ProducerException => {
                Some(pb::ServerError::ProducerBlockedQuotaExceededException)
            }
            BacklogPolicy::ConsumerBacklogEviction => None,
        }
    }

    fn enforce_quota(&mut self, topic: &str) {
        let Some(quota) = self.config.backlog_quota.clone() else {
            return;
        };
        if self.over_quota(topic).is_none() {
            return;
        }
        if quota.policy != BacklogPolicy::ConsumerBacklogEviction {
            let producers: Vec<(super::ConnId, u64)> = self
                .conns
                .iter()
                .flat_map(|(id, c)| {
                    c.producers
                        .iter()
                        .filter(|(_, p)| p.topic == topic)
                        .map(move |(pid, _)| (*id, *pid))
                })
                .collect();
            self.note(format!(
                "backlog quota exceeded on {topic}: {} producers disconnected",
                producers.len()
            ));
            for (conn, pid) in producers {
                self.close_producer_from_broker(conn, pid);
            }
            return;
        }
        // eviction: move each slow cursor forward until its backlog fits
        let now = self.now;
        let Some(log) = self.store.topics.get_mut(topic) else {
            return;
        };
        let len = log.entries.len();
        let mut moved = Vec::new();
        let names: Vec<String> = log.cursors.keys().cloned().collect();
        for name in names {
            let Some(start) = log.cursors.get(&name).map(|c| c.mark_delete) else {
                continue;
            };
            let mut bytes = bytes_from(log, start);
            let mut md = start;
            while md < len {
                let Some(e) = log.entries.get(md) else {
                    break;
                };
                let over_b = quota.limit_bytes.is_some_and(|l| bytes > l);
                let over_t = quota.limit_time.is_some_and(|t| e.persisted_at + t <= now);
                if !over_b && !over_t {
                    break;
                }
                bytes = bytes.saturating_sub(e.payload.len() as u64);
                md += 1;
            }
            if md > start {
                if let Some(c) = log.cursors.get_mut(&name) {
                    c.ack_cumulative(md - 1);
                }
                moved.push((name, md));
            }
        }
        for (sub, md) in moved {
            self.note(format!("backlog eviction on {topic} {sub} to index {md}"));
            if let Some(s) = self
                .loaded
                .get_mut(topic)
                .and_then(|t| t.subs.get_mut(&sub))
            {
                s.read_pos = s.read_pos.max(md);
                s.pending.retain(|i, _| *i >= md);
                s.redeliver.retain(|i| *i >= md);
            }
        }
    }
}

/// Drops the payloads of entries `[trimmed, to)`: they stay as stubs with their positions and
/// publish times.
pub(crate) fn trim_to(log: &mut TopicLog, to: usize) {
    let from = log.trimmed;
    for e in log.entries.get_mut(from..to).into_iter().flatten() {
        e.payload = Bytes::new();
        let publish_time = e.metadata.publish_time;
        e.metadata = pb::MessageMetadata {
            publish_time,
            ..Default::default()
        };
    }
    log.trimmed = log.trimmed.max(to);
}
