//! The application's records of a workload, kept alike by both simulations so that `check.rs`
//! judges them the same way, and the checks both make on them while the run goes.

use std::collections::BTreeMap;

use pulsar_core::{ClientStats, Message};

use crate::sim::app::{parse_payload, short, ConsumerModel, ProducerModel, SubRecord};
use crate::sim::broker::ModelCluster;
use crate::sim::check::base_topic;
use crate::sim::params::Params;

/// What the application records of its producers, consumers and subscriptions.
#[derive(Debug)]
pub struct Records {
    /// One per producer of the workload.
    pub producers: Vec<ProducerModel>,
    /// One per consumer of the workload.
    pub consumers: Vec<ConsumerModel>,
    /// What each subscription (topic, name) received.
    pub subs: BTreeMap<(String, String), SubRecord>,
}

impl Records {
    /// The records of `p`'s workload, nothing sent or received yet.
    pub fn new(p: &Params) -> Records {
        let producers = p
            .producers
            .iter()
            .map(|s| {
                ProducerModel::new(
                    s.clone(),
                    p.topics[s.topic].name.clone(),
                    p.max_message_size as usize,
                )
            })
            .collect();
        let consumers: Vec<ConsumerModel> = p
            .consumers
            .iter()
            .map(|s| ConsumerModel::new(s.clone(), p.topics[s.topic].name.clone()))
            .collect();
        let mut subs: BTreeMap<(String, String), SubRecord> = BTreeMap::new();
        for c in &consumers {
            let r = subs
                .entry((c.topic.clone(), c.spec.subscription.clone()))
                .or_default();
            r.durable = c.spec.durable;
            r.members += 1;
            r.physical = p.topics[c.spec.topic].physical();
        }
        Records {
            producers,
            consumers,
            subs,
        }
    }
}

/// Client `ci`'s queues against their configured limits, from its `stats`: a producer's pending
/// messages within `max_pending_messages`, a consumer's receiver queue within its size plus one
/// batch. Returns a violation for each queue above its limit.
pub fn queue_limit_violations(
    p: &Params,
    ci: usize,
    stats: &ClientStats,
    producers: &[ProducerModel],
    consumers: &[ConsumerModel],
) -> Vec<String> {
    let mut found = Vec::new();
    for ps in &stats.producers {
        let Some(m) = producers
            .iter()
            .find(|m| m.spec.client == ci && m.handle == Some(ps.id))
        else {
            continue;
        };
        let limit = match m.spec.max_pending {
            0 => 1000,
            n => n,
        };
        if ps.pending_messages > limit {
            found.push(format!(
                "{} holds {} pending messages, above max_pending_messages {limit}",
                m.spec.label, ps.pending_messages
            ));
        }
    }
    for cs in &stats.consumers {
        let Some(m) = consumers
            .iter()
            .find(|m| m.spec.client == ci && m.handle == Some(cs.id))
        else {
            continue;
        };
        if p.topics[m.spec.topic].partitions > 0 {
            continue;
        }
        // a batch may overshoot the permits by its size minus one (10 messages at most)
        let limit = m.spec.queue_size.max(1) as usize + 9;
        if cs.queued_messages > limit {
            found.push(format!(
                "{} queues {} messages, above its receiver queue of {} (+ one batch)",
                m.spec.label, cs.queued_messages, m.spec.queue_size
            ));
        }
    }
    found
}

/// The checks of one message `consumer` received (`text`: its payload as text), in this order:
/// the payload is one the workload sent, byte for byte (a chunked message comes back whole); a
/// first delivery (`check_stale`) was not dispatched on a connection the consumer had already
/// lost; the consumer's own checks (`ordered`: order is checked); the topic is the one it
/// subscribed to. Returns the violations.
pub fn received_violations(
    cluster: &ModelCluster,
    producers: &[ProducerModel],
    consumer: &mut ConsumerModel,
    msg: &Message,
    text: &str,
    check_stale: bool,
    ordered: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    let sent = parse_payload(&msg.payload).and_then(|(label, index)| {
        producers
            .iter()
            .find(|p| p.spec.label == label)
            .map(|p| p.payload_of(index))
    });
    if sent.as_deref() != Some(text) {
        found.push(format!(
            "received a payload the workload never sent: {:?} ({} bytes)",
            short(text),
            text.len()
        ));
    }
    let label = &consumer.spec.label;
    if check_stale {
        let dispatched = cluster.first_dispatch(
            &msg.topic,
            &consumer.spec.subscription,
            msg.id.ledger_id,
            msg.id.entry_id,
        );
        if let (Some(d), Some(lost)) = (dispatched, consumer.last_loss) {
            if d < lost {
                found.push(format!(
                    "{label} received {text} ({}) dispatched at {d:?} on a connection it lost at \
                     {lost:?}: a stale message survived the resubscription",
                    msg.id
                ));
            }
        }
    }
    let subscribed = base_topic(&msg.topic) == consumer.topic;
    let foreign = format!(
        "{label} received {text} from {} which it did not subscribe to",
        msg.topic
    );
    let pos = (msg.id.ledger_id, msg.id.entry_id, msg.id.batch_index);
    if let Err(v) = consumer.on_message(&short(text), pos, ordered) {
        found.push(v);
    }
    if !subscribed {
        found.push(foreign);
    }
    found
}
