//! Runtime state of a topic loaded on its owning broker: lost on crash or unload.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use pulsar_proto::pb;

use super::store::Cursor;
use super::ConnId;

/// A SEND accepted by the broker and waiting for the (simulated) storage write.
#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    pub(crate) ready_at: Duration,
    pub(crate) conn: ConnId,
    pub(crate) producer_id: u64,
    pub(crate) registration: u64,
    pub(crate) producer_name: String,
    pub(crate) sequence_id: u64,
    pub(crate) highest_sequence_id: u64,
    pub(crate) num_messages: i32,
    pub(crate) metadata: pb::MessageMetadata,
    pub(crate) payload: Bytes,
}

/// Who holds a producer name on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameHolder {
    pub(crate) conn: ConnId,
    pub(crate) producer_id: u64,
    pub(crate) epoch: u64,
}

/// A consumer as seen by a subscription: its connection and id.
pub(crate) type ConsumerKey = (ConnId, u64);

/// Runtime dispatch state of one subscription.
#[derive(Debug, Clone)]
pub(crate) struct SubState {
    /// `CommandSubscribe.subType` of the current consumers.
    pub(crate) sub_type: i32,
    pub(crate) durable: bool,
    /// Cursor of a non-durable subscription (readers); durable ones live in the store.
    pub(crate) local_cursor: Option<Cursor>,
    /// Consumers in join order.
    pub(crate) consumers: Vec<ConsumerKey>,
    /// Next log index never dispatched in this load.
    pub(crate) read_pos: usize,
    /// Entries to dispatch again before `read_pos`.
    pub(crate) redeliver: BTreeSet<usize>,
    /// Dispatched, unacknowledged entries and who has them.
    pub(crate) pending: BTreeMap<usize, ConsumerKey>,
    pub(crate) redelivery_count: BTreeMap<usize, u32>,
    /// Round-robin position (Shared).
    pub(crate) rr: usize,
    /// The consumer last told it is active (Failover).
    pub(crate) active: Option<ConsumerKey>,
    /// Entries set aside until their delivery time (Unix ms): delayed delivery.
    pub(crate) delayed: BTreeMap<usize, u64>,
    /// Messages dispatched on this subscription while loaded (for stats).
    pub(crate) msg_out: u64,
    /// Bytes dispatched on this subscription while loaded (for stats).
    pub(crate) bytes_out: u64,
}

impl SubState {
    pub(crate) fn new(sub_type: i32, durable: bool, start: usize) -> SubState {
        SubState {
            sub_type,
            durable,
            local_cursor: (!durable).then(|| Cursor::at(start)),
            consumers: Vec::new(),
            read_pos: start,
            redeliver: BTreeSet::new(),
            pending: BTreeMap::new(),
            redelivery_count: BTreeMap::new(),
            rr: 0,
            active: None,
            delayed: BTreeMap::new(),
            msg_out: 0,
            bytes_out: 0,
        }
    }

    /// Puts every entry dispatched to `key` back for redelivery.
    pub(crate) fn take_back(&mut self, key: ConsumerKey) {
        let mine: Vec<usize> = self
            .pending
            .iter()
            .filter(|(_, k)| **k == key)
            .map(|(i, _)| *i)
            .collect();
        for i in mine {
            self.pending.remove(&i);
            self.redeliver.insert(i);
            *self.redelivery_count.entry(i).or_insert(0) += 1;
        }
    }
}

/// A topic loaded on its owner.
#[derive(Debug, Clone)]
pub(crate) struct LoadedTopic {
    pub(crate) broker: usize,
    pub(crate) ledger_id: u64,
    pub(crate) next_entry_id: u64,
    pub(crate) pending: VecDeque<PendingWrite>,
    /// Highest sequence id accepted (persisted or pending) per producer name.
    pub(crate) pushed: BTreeMap<String, u64>,
    pub(crate) names: BTreeMap<String, NameHolder>,
    pub(crate) subs: BTreeMap<String, SubState>,
    /// The producer holding the topic exclusively (access mode Exclusive or
    /// ExclusiveWithFencing).
    pub(crate) exclusive: Option<ConsumerKey>,
    /// WaitForExclusive producers answered "not ready", in arrival order.
    pub(crate) waiting: VecDeque<(ConnId, pb::CommandProducer)>,
    /// When it was loaded (for stats rates).
    pub(crate) loaded_at: Duration,
    /// Messages published while loaded (for stats).
    pub(crate) msg_in: u64,
    /// Bytes published while loaded (for stats).
    pub(crate) bytes_in: u64,
}
