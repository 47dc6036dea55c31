//! Message identifiers shared by producers and consumers.

use std::fmt;
use std::sync::Arc;

use pulsar_proto::pb;

/// Identifies a message on a topic: ledger, entry, partition and position inside a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct MessageId {
    /// Ledger id.
    pub ledger_id: u64,
    /// Entry id inside the ledger.
    pub entry_id: u64,
    /// Partition index, `-1` for a non-partitioned topic.
    pub partition: i32,
    /// Index inside a batch, `-1` when not batched.
    pub batch_index: i32,
    /// Number of messages in the batch, `0` when unknown or not batched.
    pub batch_size: i32,
}

impl MessageId {
    /// A message id from its parts (not batched).
    pub fn new(ledger_id: u64, entry_id: u64, partition: i32) -> MessageId {
        MessageId {
            ledger_id,
            entry_id,
            partition,
            batch_index: -1,
            batch_size: 0,
        }
    }

    /// The earliest position (`-1:-1`).
    pub const EARLIEST: MessageId = MessageId {
        ledger_id: u64::MAX,
        entry_id: u64::MAX,
        partition: -1,
        batch_index: -1,
        batch_size: 0,
    };

    /// The latest position.
    pub const LATEST: MessageId = MessageId {
        ledger_id: i64::MAX as u64,
        entry_id: i64::MAX as u64,
        partition: -1,
        batch_index: -1,
        batch_size: 0,
    };

    /// From the wire form.
    pub fn from_pb(id: &pb::MessageIdData) -> MessageId {
        MessageId {
            ledger_id: id.ledger_id,
            entry_id: id.entry_id,
            partition: id.partition.unwrap_or(-1),
            batch_index: id.batch_index.unwrap_or(-1),
            batch_size: id.batch_size.unwrap_or(0),
        }
    }

    /// To the wire form.
    pub fn to_pb(&self) -> pb::MessageIdData {
        pb::MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            partition: (self.partition >= 0).then_some(self.partition),
            batch_index: (self.batch_index >= 0).then_some(self.batch_index),
            batch_size: (self.batch_size > 0).then_some(self.batch_size),
            ..Default::default()
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.ledger_id as i64, self.entry_id as i64, self.partition, self.batch_index
        )
    }
}

/// A message id and the topic (partition) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicMessageId {
    /// The topic or partition.
    pub topic: Arc<str>,
    /// The id.
    pub id: MessageId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = MessageId {
            ledger_id: 5,
            entry_id: 9,
            partition: 2,
            batch_index: 3,
            batch_size: 10,
        };
        assert_eq!(MessageId::from_pb(&id.to_pb()), id);
        let plain = MessageId::new(1, 2, -1);
        let wire = plain.to_pb();
        assert_eq!(wire.partition, None);
        assert_eq!(MessageId::from_pb(&wire), plain);
        assert_eq!(plain.to_string(), "1:2:-1:-1");
    }
}
