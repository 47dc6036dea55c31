//! What survives a broker crash: the per-topic logs, durable subscription cursors, topic ownership
//! and partition counts (BookKeeper and the metadata store of a real cluster).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use pulsar_proto::pb;

/// One persisted entry: a single message or a whole batch, as the producer sent it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Ledger id (a new ledger each time a broker loads the topic).
    pub ledger_id: u64,
    /// Entry id inside the ledger.
    pub entry_id: u64,
    /// The producer name from the producer's registration.
    pub producer_name: String,
    /// `CommandSend.sequence_id` (the first sequence id of a batch).
    pub sequence_id: u64,
    /// The highest sequence id the entry covers (`sequence_id` when not batched).
    pub highest_sequence_id: u64,
    /// Number of messages in the entry (`CommandSend.num_messages`).
    pub num_messages: i32,
    /// The message metadata as sent.
    pub metadata: pb::MessageMetadata,
    /// The payload as sent (for a batch: the serialized batch).
    pub payload: Bytes,
    /// Simulated time at which the entry was persisted.
    pub persisted_at: Duration,
    /// The producer registration that wrote it (unique over the whole cluster's life).
    pub registration: u64,
}

/// The acknowledgement state of a durable subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Entries `[0, mark_delete)` of the log are acknowledged.
    pub mark_delete: usize,
    /// Entries at or after `mark_delete` acknowledged individually.
    pub acked: BTreeSet<usize>,
    /// Partly acknowledged batches: log index → bit set of the batch indexes still unacknowledged.
    pub partial: BTreeMap<usize, Vec<i64>>,
}

impl Cursor {
    /// A cursor whose first unacknowledged entry is `start`.
    pub fn at(start: usize) -> Cursor {
        Cursor {
            mark_delete: start,
            ..Cursor::default()
        }
    }

    /// Whether the whole entry at `index` is acknowledged.
    pub fn is_acked(&self, index: usize) -> bool {
        index < self.mark_delete || self.acked.contains(&index)
    }

    /// Acknowledges the whole entry at `index`.
    pub fn ack(&mut self, index: usize) {
        if index >= self.mark_delete {
            self.acked.insert(index);
            self.partial.remove(&index);
        }
        self.compact();
    }

    /// Acknowledges every entry up to and including `index`.
    pub fn ack_cumulative(&mut self, index: usize) {
        if index + 1 > self.mark_delete {
            self.mark_delete = index + 1;
        }
        self.compact();
    }

    /// Acknowledges the batch indexes of `index` whose bit is clear in `remaining`; returns whether
    /// the entry became fully acknowledged.
    pub fn ack_batch(&mut self, index: usize, batch_size: i32, remaining: &[i64]) -> bool {
        if self.is_acked(index) {
            return true;
        }
        let current = self
            .partial
            .remove(&index)
            .unwrap_or_else(|| full_ack_set(batch_size));
        let merged: Vec<i64> = current
            .iter()
            .enumerate()
            .map(|(i, w)| w & remaining.get(i).copied().unwrap_or(0))
            .collect();
        if merged.iter().all(|w| *w == 0) {
            self.ack(index);
            true
        } else {
            self.partial.insert(index, merged);
            false
        }
    }

    fn compact(&mut self) {
        while self.acked.remove(&self.mark_delete) {
            self.mark_delete += 1;
        }
        let md = self.mark_delete;
        self.acked.retain(|i| *i >= md);
        self.partial.retain(|i, _| *i >= md);
    }
}

/// A bit set with the first `size` bits set (every batch index unacknowledged).
pub fn full_ack_set(size: i32) -> Vec<i64> {
    let size = size.max(0) as usize;
    let mut words = vec![0i64; size.div_ceil(64)];
    for i in 0..size {
        if let Some(w) = words.get_mut(i / 64) {
            *w |= 1i64 << (i % 64);
        }
    }
    words
}

/// The persisted state of one topic (a partition counts as a topic).
#[derive(Debug, Clone, Default)]
pub struct TopicLog {
    /// Entries in persistence order; `(ledger_id, entry_id)` increases along the log.
    pub entries: Vec<Entry>,
    /// Highest persisted sequence id per producer name (what deduplication recovers after a crash).
    pub persisted_seq: BTreeMap<String, u64>,
    /// Durable subscriptions.
    pub cursors: BTreeMap<String, Cursor>,
    /// The transaction buffer: transactions with messages in this log that have not ended, each
    /// with the log index of its first message. Nothing at or after the lowest of them is
    /// dispatched (Apache Pulsar's `maxReadPosition`).
    pub ongoing_txns: BTreeMap<TxnKey, usize>,
    /// Aborted transactions with messages in this log: their messages are never dispatched
    /// (subscriptions acknowledge them as they pass).
    pub aborted_txns: BTreeSet<TxnKey>,
    /// Transactional acknowledgements not committed yet, by subscription.
    pub pending_acks: BTreeMap<String, PendingAcks>,
    /// Entries `[0, trimmed)` were dropped by retention or backlog eviction: stubs with their
    /// positions, never dispatched again.
    pub trimmed: usize,
}

/// A transaction id: (most significant bits, least significant bits).
pub type TxnKey = (u64, u64);

/// One transactional acknowledgement of an entry, waiting for its transaction to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAck {
    /// The transaction.
    pub txn: TxnKey,
    /// The ack set as sent (bits of batch indexes still unacknowledged; empty: the whole entry).
    pub ack_set: Vec<i64>,
}

/// The pending acknowledgements of one subscription (Apache Pulsar's pending ack handle).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingAcks {
    /// Individual acknowledgements by log index.
    pub individual: BTreeMap<usize, Vec<PendingAck>>,
    /// The cumulative acknowledgement of one transaction: (transaction, log index).
    pub cumulative: Option<(TxnKey, usize)>,
}

impl PendingAcks {
    /// Whether the entry at `index` is held by a pending acknowledgement (as a whole, or up to a
    /// pending cumulative one).
    pub fn holds(&self, index: usize) -> bool {
        self.cumulative.is_some_and(|(_, i)| index <= i)
            || self
                .individual
                .get(&index)
                .is_some_and(|v| v.iter().any(|a| a.ack_set.is_empty()))
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.individual.is_empty() && self.cumulative.is_none()
    }
}

/// Where a transaction stands at its coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Open: it takes messages and acknowledgements.
    Open,
    /// Committed.
    Committed,
    /// Aborted (by the client, or at its timeout).
    Aborted,
}

/// A transaction as its coordinator keeps it (the coordinator's log survives crashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    /// Its state.
    pub status: TxnStatus,
    /// When the coordinator aborts it if still open.
    pub timeout_at: Duration,
    /// Topic partitions added (ADD_PARTITION_TO_TXN).
    pub partitions: BTreeSet<String>,
    /// (topic, subscription) pairs added (ADD_SUBSCRIPTION_TO_TXN).
    pub subscriptions: BTreeSet<(String, String)>,
}

impl TopicLog {
    /// The log index of the entry `(ledger_id, entry_id)`, if present.
    pub fn index_of(&self, ledger_id: u64, entry_id: u64) -> Option<usize> {
        self.entries
            .binary_search_by(|e| (e.ledger_id, e.entry_id).cmp(&(ledger_id, entry_id)))
            .ok()
    }

    /// The index of the first entry at or after `(ledger_id, entry_id)` (the log length if none).
    /// Ids compare as the signed numbers they are on the wire: `(l, -1)` is before entry 0 of
    /// ledger `l`.
    pub fn first_at_or_after(&self, ledger_id: u64, entry_id: u64) -> usize {
        let key = (ledger_id as i64, entry_id as i64);
        self.entries
            .partition_point(|e| (e.ledger_id as i64, e.entry_id as i64) < key)
    }
}

/// Everything a crash does not lose.
#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Topic logs by full topic name.
    pub topics: BTreeMap<String, TopicLog>,
    /// Which broker owns each topic (it may be down).
    pub owners: BTreeMap<String, usize>,
    /// Partition counts of partitioned topics, by full base name.
    pub partitions: BTreeMap<String, u32>,
    /// Broker-side deduplication enabled for every topic.
    pub dedup: bool,
    /// The schema registry: each topic's versions (protocol type, data), version `n` at `n`.
    pub schemas: BTreeMap<String, Vec<(i32, Vec<u8>)>>,
    /// Transactions of every coordinator, by id (ended ones are kept: a repeated END_TXN is
    /// answered from them).
    pub txns: BTreeMap<TxnKey, TxnRecord>,
    pub(crate) next_txn: BTreeMap<u64, u64>,
    pub(crate) next_ledger: u64,
    pub(crate) next_name: u64,
}

impl Store {
    /// The log of `topic` (empty when nothing was ever persisted).
    pub fn log(&self, topic: &str) -> Option<&TopicLog> {
        self.topics.get(topic)
    }

    pub(crate) fn new_ledger(&mut self) -> u64 {
        self.next_ledger += 1;
        self.next_ledger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_compare_signed() {
        let mut log = TopicLog::default();
        for (l, e) in [(1, 0), (1, 1), (2, 0)] {
            log.entries.push(Entry {
                ledger_id: l,
                entry_id: e,
                producer_name: String::new(),
                sequence_id: 0,
                highest_sequence_id: 0,
                num_messages: 1,
                metadata: pb::MessageMetadata::default(),
                payload: Bytes::new(),
                persisted_at: Duration::ZERO,
                registration: 0,
            });
        }
        assert_eq!(
            log.first_at_or_after(1, u64::MAX),
            0,
            "(1,-1) is before (1,0)"
        );
        assert_eq!(log.first_at_or_after(2, u64::MAX), 2);
        assert_eq!(log.first_at_or_after(1, 1), 1);
        assert_eq!(log.index_of(2, 0), Some(2));
    }

    #[test]
    fn cursor_compacts_and_tracks_partial_batches() {
        let mut c = Cursor::at(0);
        c.ack(1);
        assert_eq!(c.mark_delete, 0);
        assert!(c.is_acked(1) && !c.is_acked(0));
        c.ack(0);
        assert_eq!(c.mark_delete, 2);
        assert!(c.acked.is_empty());
        // batch of 3 at index 2: ack index 1 (bits set = still unacked)
        assert!(!c.ack_batch(2, 3, &[0b101]));
        assert_eq!(c.partial.get(&2), Some(&vec![0b101]));
        assert!(!c.ack_batch(2, 3, &[0b100 | 0b010]));
        assert_eq!(c.partial.get(&2), Some(&vec![0b100]));
        assert!(c.ack_batch(2, 3, &[0b011]));
        assert_eq!(c.mark_delete, 3);
        c.ack_cumulative(5);
        assert_eq!(c.mark_delete, 6);
        assert_eq!(full_ack_set(65), vec![-1, 1]);
    }
}
