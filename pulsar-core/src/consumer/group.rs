//! A consumer as the application sees it: one handle, one receiver queue, and the wire consumers
//! (one per topic or partition) that fill it. A group is a single topic, a list of topics, or a
//! regex over a namespace; partitioned topics contribute one wire consumer per partition.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::message::{Message, TopicMessageId};
use super::options::ConsumerOptions;
use super::pattern::TopicPattern;
use super::topics::Topics;
use super::vecmap::{VecMap, VecSet};
use crate::backoff::Backoff;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::handle::{ConnectionId, ConsumerId, RequestId};
use crate::message::MessageId;

/// Life stage of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Resolving topics and subscribing; `ConsumerReady` comes when everything is subscribed.
    Starting,
    /// Subscribed.
    Ready,
    /// Closing (or unsubscribing): waiting for the wire consumers to finish.
    Closing,
}

/// One topic of the group and what became of it.
#[derive(Debug)]
pub(super) struct TopicEntry {
    /// Partition count (`0`: not partitioned), once known.
    pub(super) partitions: Option<u32>,
    /// PARTITIONED_METADATA operation in flight.
    pub(super) op: Option<u64>,
    /// Retry the metadata request (or the subscription) at this time.
    pub(super) retry_at: Option<Instant>,
    pub(super) backoff: Backoff,
    /// When to check the partition count again.
    pub(super) next_check: Option<Instant>,
    /// Wire consumers by partition (`-1`: the topic itself).
    pub(super) subs: VecMap<i32, ConsumerId>,
    /// Found by pattern discovery (removed when it disappears).
    pub(super) discovered: bool,
}

/// Topic-list watcher of a pattern group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watch {
    /// Not watching (the broker does not support it, or it failed: polling only).
    Off,
    /// Waiting for the service connection to open the watcher on.
    Connecting(ConnectionId),
    /// WATCH_TOPIC_LIST sent.
    Pending(ConnectionId, u64),
    /// Updates arrive on this connection.
    Active(ConnectionId),
}

/// Pattern discovery state.
#[derive(Debug)]
pub(super) struct Discovery {
    pub(super) pattern: TopicPattern,
    /// GET_TOPICS_OF_NAMESPACE in flight.
    pub(super) op: Option<u64>,
    pub(super) next_poll: Instant,
    pub(super) backoff: Backoff,
    pub(super) watch: Watch,
    /// The watcher id on the wire (the group's handle value).
    pub(super) watcher_id: u64,
    /// The first listing is done.
    pub(super) listed: bool,
}

/// An application request spread over the wire consumers.
#[derive(Debug)]
pub(super) enum GroupOp {
    LastIds {
        waiting: usize,
        ids: Vec<TopicMessageId>,
        error: Option<Error>,
    },
    HasAvailable {
        waiting: usize,
        any: bool,
        error: Option<Error>,
    },
    Seek {
        waiting: usize,
        error: Option<Error>,
    },
    Unsubscribe {
        waiting: usize,
        error: Option<Error>,
    },
}

impl GroupOp {
    /// How many wire consumers have yet to answer.
    pub(super) fn waiting(&self) -> usize {
        match self {
            GroupOp::LastIds { waiting, .. }
            | GroupOp::HasAvailable { waiting, .. }
            | GroupOp::Seek { waiting, .. }
            | GroupOp::Unsubscribe { waiting, .. } => *waiting,
        }
    }

    /// One wire consumer answered: one fewer to wait for, and its error, if any, becomes the
    /// request's (replacing an earlier one). Returns the answer when it is not an error.
    pub(super) fn answered<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        let (GroupOp::LastIds { waiting, error, .. }
        | GroupOp::HasAvailable { waiting, error, .. }
        | GroupOp::Seek { waiting, error }
        | GroupOp::Unsubscribe { waiting, error }) = self;
        *waiting = waiting.saturating_sub(1);
        match result {
            Ok(answer) => Some(answer),
            Err(e) => {
                *error = Some(e);
                None
            }
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: ConsumerId,
    pub(super) opts: Arc<ConsumerOptions>,
    /// What the application asked for (stats).
    pub(super) label: Box<str>,
    pub(super) topics: Topics,
    pub(super) subs: VecSet<ConsumerId>,
    pub(super) queue: VecDeque<Message>,
    pub(super) phase: Phase,
    pub(super) ops: BTreeMap<RequestId, GroupOp>,
    /// Pattern groups only (boxed: most groups have none).
    pub(super) discovery: Option<Box<Discovery>>,
    /// Readers: the start position asked for.
    pub(super) reader_start: Option<MessageId>,
    /// Initial creation fails at this deadline (its operations and first registrations carry
    /// it, retries never wait past it).
    pub(super) create_deadline: Deadline,
    /// Unsubscribing: the application request.
    pub(super) unsubscribing: Option<RequestId>,
    /// Paused by the application (wire consumers created later start paused too).
    pub(super) paused: bool,
    /// The application waits for the queue to grow: the next message queued emits
    /// `MessagesAvailable` even if the queue was not empty (one-shot).
    pub(super) watch_growth: bool,
}

impl Group {
    /// Whether a queued message belongs to `sub`.
    pub(super) fn take_sub_messages(&mut self, sub: ConsumerId) -> (usize, Option<MessageId>) {
        let mut first = None;
        let before = self.queue.len();
        self.queue.retain(|m| {
            if m.sub == sub {
                if first.is_none() {
                    first = Some(m.id);
                }
                false
            } else {
                true
            }
        });
        (before - self.queue.len(), first)
    }

    pub(super) fn all_resolved(&self) -> bool {
        self.topics.all_resolved() && self.discovery.as_ref().is_none_or(|d| d.listed)
    }
}

impl crate::deadline_map::NextTimeout for Group {
    fn next_timeout(&self) -> Option<Instant> {
        let topics = self.topics.next_timeout();
        let discovery = self
            .discovery
            .as_ref()
            .filter(|d| d.op.is_none())
            .map(|d| d.next_poll);
        topics.into_iter().chain(discovery).min()
    }
}
