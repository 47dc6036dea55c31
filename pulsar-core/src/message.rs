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

    /// The id of message `index` of a batch of `size` messages stored under this id (see
    /// [`Event::SendsCompleted`](crate::Event::SendsCompleted)).
    #[inline]
    pub fn in_batch(self, index: usize, size: usize) -> MessageId {
        MessageId {
            batch_index: i32::try_from(index).unwrap_or(i32::MAX),
            batch_size: i32::try_from(size).unwrap_or(i32::MAX),
            ..self
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

/// The text form: `ledger:entry:partition:batch_index`, the fields as signed decimal numbers
/// (`-1` for no partition, no batch index, and the ledger and entry of
/// [`EARLIEST`](MessageId::EARLIEST)), as the Java client prints a message id; for a message of a
/// batch whose size is known, `:batch_size` follows, so that the id parsed back (with
/// [`FromStr`](std::str::FromStr)) acknowledges that message only, not its whole batch.
///
/// ```
/// use pulsar_core::MessageId;
///
/// let id: MessageId = "12:34:-1:-1".parse().unwrap();
/// assert_eq!(id, MessageId::new(12, 34, -1));
/// assert_eq!(id.to_string(), "12:34:-1:-1");
/// let batched: MessageId = "12:34:2:3:10".parse().unwrap();
/// assert_eq!((batched.partition, batched.batch_index, batched.batch_size), (2, 3, 10));
/// assert_eq!(batched.to_string().parse::<MessageId>().unwrap(), batched);
/// assert_eq!(MessageId::EARLIEST.to_string(), "-1:-1:-1:-1");
/// ```
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.ledger_id as i64, self.entry_id as i64, self.partition, self.batch_index
        )?;
        if self.batch_index >= 0 && self.batch_size > 0 {
            write!(f, ":{}", self.batch_size)?;
        }
        Ok(())
    }
}

/// A message id's text form was not `ledger:entry:partition[:batch_index[:batch_size]]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message id {text:?}: expected ledger:entry:partition[:batch_index[:batch_size]]")]
pub struct ParseMessageIdError {
    /// The text that did not parse.
    pub text: String,
}

/// Parses the [text form](MessageId#impl-Display-for-MessageId): three to five `:`-separated
/// signed decimal numbers (a missing batch index is `-1`, a missing batch size `0`).
impl std::str::FromStr for MessageId {
    type Err = ParseMessageIdError;

    fn from_str(s: &str) -> Result<MessageId, ParseMessageIdError> {
        let bad = || ParseMessageIdError {
            text: s.to_string(),
        };
        let mut fields = s.trim().split(':');
        let mut next_i64 = |required: bool| -> Result<Option<i64>, ParseMessageIdError> {
            match fields.next() {
                Some(f) => f.parse::<i64>().map(Some).map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(None),
            }
        };
        let ledger = next_i64(true)?.ok_or_else(bad)?;
        let entry = next_i64(true)?.ok_or_else(bad)?;
        let narrow = |v: i64| i32::try_from(v).map_err(|_| bad());
        let partition = narrow(next_i64(true)?.ok_or_else(bad)?)?;
        let batch_index = narrow(next_i64(false)?.unwrap_or(-1))?;
        let batch_size = narrow(next_i64(false)?.unwrap_or(0))?;
        if next_i64(false)?.is_some() || partition < -1 || batch_index < -1 || batch_size < 0 {
            return Err(bad());
        }
        Ok(MessageId {
            ledger_id: ledger as u64,
            entry_id: entry as u64,
            partition,
            batch_index,
            batch_size,
        })
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

impl TopicMessageId {
    /// The id `id` of topic (partition) `topic`.
    pub fn new(topic: impl Into<Arc<str>>, id: MessageId) -> TopicMessageId {
        TopicMessageId {
            topic: topic.into(),
            id,
        }
    }
}

/// `topic@ledger:entry:partition:batch_index` (the id's [text form](MessageId#impl-Display-for-MessageId)).
impl fmt::Display for TopicMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.topic, self.id)
    }
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

    #[test]
    fn text_round_trip() {
        let ids = [
            MessageId::new(1, 2, -1),
            MessageId::new(7, 0, 3),
            MessageId::EARLIEST,
            MessageId::LATEST,
            MessageId {
                ledger_id: 5,
                entry_id: 9,
                partition: 2,
                batch_index: 3,
                batch_size: 10,
            },
            MessageId {
                ledger_id: 5,
                entry_id: 9,
                partition: -1,
                batch_index: 0,
                batch_size: 0,
            },
        ];
        for id in ids {
            assert_eq!(id.to_string().parse::<MessageId>(), Ok(id), "{id}");
        }
        assert_eq!("3:4:5".parse::<MessageId>(), Ok(MessageId::new(3, 4, 5)));
        for bad in [
            "",
            "1",
            "1:2",
            "a:2:3",
            "1:2:3:4:5:6",
            "1:2:-2",
            "1:2:-1:-1:-1",
            "1:2:3:99999999999",
        ] {
            assert!(bad.parse::<MessageId>().is_err(), "{bad}");
        }
    }
}
