//! Consumers and readers.
//!
//! The application's consumer handle is a *group* (`group.rs`): one receiver queue filled by one
//! wire consumer per topic or partition (`sub.rs`). A single non-partitioned topic uses the handle
//! value as its wire consumer id; partitioned topics, topic lists and patterns get one fresh id per
//! partition. Each wire consumer keeps its own flow-control permits (FLOW on subscribe, refilled at
//! half, a batch of N costs N), acknowledgement state (`acks.rs`: batch indexes, grouping,
//! duplicates), redelivery timers (`redelivery.rs`: negative acks, ack timeout), chunk reassembly
//! (`chunks.rs`) and message intake (`intake.rs`). Dead-letter and retry-letter topics use internal
//! producers (`dlq.rs`). Pattern groups list their namespace and follow the broker's topic-list
//! watcher when it has one (`pattern.rs`). Wire consumers and groups live in `Table`s
//! (`table.rs`) that keep their deadlines in order, so the next deadline costs no scan; small
//! per-group maps are sorted vectors (`vecmap.rs`), so an idle consumer holds little.
//!
//! `Consumers` itself is split by concern, one `impl` block per module: subscribing and topic
//! resolution (`subscribe.rs`), receiving (`receive.rs`), acknowledgements and redelivery
//! (`acknowledge.rs`), seeks (`seek.rs`), requests answered by every wire consumer of a group
//! (`requests.rs`), closing (`closing.rs`), timers (`timers.rs`), registration with the brokers
//! (`registration.rs`), inputs from the connections (`inputs.rs`) and pattern discovery
//! (`discovery.rs`).
//!
//! After any loss of a registration the wire consumer drops its queued messages (the broker
//! redelivers them), resubscribes, and sends full permits again; readers restart after the last
//! message the application saw.

mod acknowledge;
mod acks;
mod chunks;
mod closing;
mod discovery;
mod dlq;
mod group;
mod inputs;
mod intake;
mod message;
mod options;
mod pattern;
mod receive;
mod redelivery;
mod registration;
mod requests;
mod seek;
mod sub;
mod subscribe;
mod table;
mod timers;
mod topics;
mod txn;
mod vecmap;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use pulsar_proto::pb;

pub use message::{BrokerEntryMetadata, Message, ReceiveError, TopicMessageId};
pub(crate) use options::ConsumerRequest;
pub use options::{
    BatchReceivePolicy, ConsumerOptions, DeadLetterPolicy, InitialPosition, KeySharedMode,
    KeySharedPolicy, ReaderOptions, RedeliveryBackoff, SeekTo, SubscriptionType,
};

use crate::compression::CodecContext;
use crate::deadline::Deadline;
use crate::error::Error;
use crate::event::{Event, Resource};
use crate::handle::{ConnectionId, ConsumerId};
use crate::outputs::Outputs;
use crate::request::RequestKind;
use crate::shared::Shared;
use crate::stats::{ConsumerStats, ResourceState, TopicConsumerStats};
use crate::time;
use group::{Group, Phase};
use seek::seek_target;
use sub::Sub;
use table::Table;

/// All consumers of a client.
#[derive(Debug, Default)]
pub(crate) struct Consumers {
    groups: Table<Group>,
    subs: Table<Sub>,
    codec: CodecContext,
    dlq: dlq::DeadLetters,
    /// The options of the last group created: the next one created with equal options shares them.
    last_options: Option<Arc<ConsumerOptions>>,
}

impl Consumers {
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(crate) fn stats(&self) -> Vec<ConsumerStats> {
        self.groups
            .values()
            .map(|g| {
                let subs: Vec<&Sub> = g.subs.iter().filter_map(|s| self.subs.get(s)).collect();
                let state = if g.phase == Phase::Closing {
                    ResourceState::Closing
                } else {
                    subs.iter()
                        .map(|s| s.link.state())
                        .find(|s| *s != ResourceState::Ready)
                        .unwrap_or(if subs.is_empty() {
                            ResourceState::LookingUp
                        } else {
                            ResourceState::Ready
                        })
                };
                ConsumerStats {
                    id: g.id,
                    topic: g.label.to_string(),
                    subscription: g.opts.subscription.clone(),
                    state,
                    connection: subs.iter().find_map(|s| s.link.conn()),
                    queued_messages: g.queue.len(),
                    messages_received: subs.iter().map(|s| s.messages_received).sum(),
                    bytes_received: subs.iter().map(|s| s.bytes_received).sum(),
                    queued_bytes: g.queue.iter().map(|m| m.payload.len()).sum(),
                    acks_sent: subs.iter().map(|s| s.acks_sent).sum(),
                    acks: subs.iter().map(|s| s.app_acks).sum(),
                    negative_acks: subs.iter().map(|s| s.negative_acks).sum(),
                    dead_lettered: subs.iter().map(|s| s.dead_lettered).sum(),
                    ack_timeouts: subs.iter().map(|s| s.ack_timeouts).sum(),
                    reconnects: subs.iter().map(|s| s.link.reconnects).sum(),
                    topics: topic_stats(&subs, &g.queue),
                }
            })
            .collect()
    }

    /// The earliest deadline of every wire consumer and group (kept in order as they change: no
    /// scan).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        match (self.subs.next_timeout(), self.groups.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Brings the deadline index up to date with what changed; runs at the end of every
    /// operation (see [`service`](Self::service), which the client runs after each one).
    pub(crate) fn refresh_deadlines(&mut self) {
        self.subs.refresh();
        self.groups.refresh();
    }
}

/// After a failed lookup of a group: when to retry (after `delay`, and while the group is being
/// created not after its deadline), or the error the group's creation fails with.
fn retry_or_fail(
    starting: bool,
    deadline: &mut Deadline,
    now: Instant,
    delay: std::time::Duration,
    error: Error,
) -> Result<Instant, Error> {
    if !starting {
        return Ok(time::after(now, delay));
    }
    if !error.is_retriable() {
        return Err(error);
    }
    if deadline.expired(now) {
        return Err(deadline.expire_with(&error));
    }
    deadline.record(&error);
    Ok(deadline.retry_at(now, delay))
}

/// Sends a CLOSE_CONSUMER whose answer does not matter (the broker may hold a registration the
/// client no longer wants); its request entry expires after the operation timeout.
fn send_cleanup_close(sh: &mut Shared, now: Instant, conn: ConnectionId, sid: ConsumerId) {
    send_close(sh, now, conn, sid, ConsumerRequest::Cleanup);
}

/// Sends a CLOSE_CONSUMER for wire consumer `sid` as a request of kind `purpose`; returns its
/// request id.
fn send_close(
    sh: &mut Shared,
    now: Instant,
    conn: ConnectionId,
    sid: ConsumerId,
    purpose: ConsumerRequest,
) -> u64 {
    let request_id = sh.env.next_request_id();
    let cmd = pb::BaseCommand::from(pb::CommandCloseConsumer {
        consumer_id: sid.get(),
        request_id,
        ..Default::default()
    });
    sh.conns.send_request(
        now,
        conn,
        request_id,
        &cmd,
        RequestKind::Consumer(sid, purpose),
    );
    request_id
}

/// Per-topic statistics of a group's wire consumers, with their share of the receiver queue.
fn topic_stats(subs: &[&Sub], queue: &VecDeque<Message>) -> Vec<TopicConsumerStats> {
    let mut bytes: BTreeMap<ConsumerId, usize> = BTreeMap::new();
    for m in queue {
        *bytes.entry(m.sub).or_default() += m.payload.len();
    }
    subs.iter()
        .map(|s| TopicConsumerStats {
            topic: s.topic_name.to_string(),
            queued_messages: s.queued,
            queued_bytes: bytes.get(&s.id).copied().unwrap_or(0),
            messages_received: s.messages_received,
            bytes_received: s.bytes_received,
            acks: s.app_acks,
            negative_acks: s.negative_acks,
            dead_lettered: s.dead_lettered,
            ack_timeouts: s.ack_timeouts,
        })
        .collect()
}

fn remap_events(out: &mut Outputs, from: usize, sid: ConsumerId, gid: ConsumerId) {
    if sid == gid {
        return;
    }
    for e in out.events.iter_mut().skip(from) {
        match e {
            Event::ConsumerReconnecting { consumer, .. }
            | Event::ConsumerReconnected { consumer }
                if *consumer == sid =>
            {
                *consumer = gid
            }
            Event::TopicMoved {
                resource: Resource::Consumer(c),
                ..
            } if *c == sid => *c = gid,
            _ => {}
        }
    }
}

/// Sizes of what every idle consumer holds (issue 21: at most 2 KiB of client memory per idle
/// consumer). A field added to these structs should be boxed if rarely used.
#[cfg(test)]
mod layout {
    use std::mem::size_of;

    #[test]
    fn idle_consumer_structs_stay_small() {
        assert!(size_of::<super::sub::Sub>() <= 800);
        assert!(size_of::<super::group::Group>() <= 256);
    }
}
