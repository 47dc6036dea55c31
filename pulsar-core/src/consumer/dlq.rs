//! Dead-letter and retry-letter topics (as the Java client): messages are republished by internal
//! producers, created on first use, whose events never reach the application. A dead-lettered
//! entry is acknowledged once every message of it is published; a failed publish redelivers it.
//! `reconsume_later` publishes a copy to the retry-letter topic with `RECONSUMETIMES` and
//! `DELAY_TIME` (delivered after the delay), then acknowledges the original; past
//! `max_redeliver_count` reconsumptions the copy goes to the dead-letter topic instead.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::acks::Entry;
use super::message::Message;
use super::Consumers;
use crate::env::Env;
use crate::error::{Error, SendError};
use crate::event::Event;
use crate::handle::{ConsumerId, ProducerId, RequestId, SendId};
use crate::message::MessageId;
use crate::producer::{OutgoingMessage, ProducerOptions, Producers};
use crate::shared::Shared;
use crate::topic::TopicName;

/// Property naming the topic a dead-lettered or retried message came from.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Property with the id of the original message.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Property counting reconsumptions through the retry-letter topic.
pub const RECONSUMETIMES: &str = "RECONSUMETIMES";
/// Property with the reconsume delay in milliseconds.
pub const DELAY_TIME: &str = "DELAY_TIME";

/// Which internal producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Letter {
    Dead,
    Retry,
}

/// Work queued by the consumers, done where the producers are at hand.
#[derive(Debug)]
enum Work {
    Dead {
        sub: ConsumerId,
        entry: Entry,
    },
    Retry {
        sub: ConsumerId,
        message: Box<Message>,
        delay: Duration,
        properties: Vec<(String, String)>,
        request: RequestId,
        cumulative: bool,
    },
}

/// What a publish is for.
#[derive(Debug)]
enum Job {
    /// Dead-lettering an entry: `remaining` publishes to go.
    Dead {
        sub: ConsumerId,
        entry: Entry,
        remaining: usize,
        failed: bool,
    },
    /// A reconsume-later copy.
    Retry {
        sub: ConsumerId,
        group: ConsumerId,
        id: MessageId,
        request: RequestId,
        cumulative: bool,
    },
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct DeadLetters {
    producers: BTreeMap<ProducerId, (ConsumerId, Letter)>,
    by_sub: BTreeMap<(ConsumerId, Letter), ProducerId>,
    sends: BTreeMap<SendId, u64>,
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
    work: VecDeque<Work>,
    to_close: Vec<ProducerId>,
    /// Groups whose internal producers must close.
    closing_groups: Vec<ConsumerId>,
    /// Sub → group, for producers of subs that are gone.
    owners: BTreeMap<ConsumerId, ConsumerId>,
}

impl DeadLetters {
    pub(super) fn push_dead(&mut self, sub: ConsumerId, entry: Entry) {
        self.work.push_back(Work::Dead { sub, entry });
    }

    pub(super) fn forget_sub(&mut self, sub: ConsumerId) {
        for letter in [Letter::Dead, Letter::Retry] {
            if let Some(p) = self.by_sub.remove(&(sub, letter)) {
                self.to_close.push(p);
            }
        }
    }

    pub(super) fn close_group(&mut self, group: ConsumerId) {
        self.closing_groups.push(group);
    }

    fn has_work(&self) -> bool {
        !self.work.is_empty() || !self.to_close.is_empty() || !self.closing_groups.is_empty()
    }
}

impl Consumers {
    /// Publishes a copy of `message` to the retry-letter topic, delivered after `delay`, then
    /// acknowledges it; [`Event::ReconsumeCompleted`] reports the outcome.
    pub(crate) fn reconsume_later(
        &mut self,
        env: &mut Env,
        message: &Message,
        delay: Duration,
        properties: Vec<(String, String)>,
        cumulative: bool,
    ) -> Result<RequestId, Error> {
        let g = self
            .groups
            .get(&message.consumer)
            .ok_or(Error::UnknownConsumer(message.consumer))?;
        if !g.opts.retry_enabled {
            return Err(Error::InvalidState("reconsume_later needs retry_enabled"));
        }
        if cumulative && g.opts.subscription_type.is_shared() {
            return Err(Error::InvalidState(
                "cumulative acknowledgement is not allowed on Shared and Key_Shared subscriptions",
            ));
        }
        if !g.subs.contains(&message.sub) {
            return Err(Error::InvalidState(
                "the message was received by another consumer (or before a resubscription)",
            ));
        }
        let request = env.ids.request();
        self.dlq.work.push_back(Work::Retry {
            sub: message.sub,
            message: Box::new(message.clone()),
            delay,
            properties,
            request,
            cumulative,
        });
        Ok(request)
    }

    /// Does queued dead-letter work and consumes the events of the internal producers. Returns
    /// whether anything happened (more dispatch may be pending).
    pub(crate) fn service(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
    ) -> bool {
        let did = self.service_letters(sh, producers, now);
        // the last step of every client operation: the deadline index catches up
        self.refresh_deadlines();
        did
    }

    fn service_letters(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
    ) -> bool {
        let mut did = false;
        if !self.dlq.producers.is_empty() {
            did |= self.producer_events(sh, now);
        }
        if !self.dlq.has_work() {
            return did;
        }
        for gid in std::mem::take(&mut self.dlq.closing_groups) {
            let subs: Vec<ConsumerId> = self
                .dlq
                .owners
                .iter()
                .filter(|(_, g)| **g == gid)
                .map(|(s, _)| *s)
                .collect();
            for s in subs {
                self.dlq.owners.remove(&s);
                self.dlq.forget_sub(s);
            }
        }
        for p in std::mem::take(&mut self.dlq.to_close) {
            let _ = producers.close(sh, now, p);
        }
        while let Some(w) = self.dlq.work.pop_front() {
            did = true;
            match w {
                Work::Dead { sub, entry } => self.dead_letter(sh, producers, now, sub, entry),
                Work::Retry {
                    sub,
                    message,
                    delay,
                    properties,
                    request,
                    cumulative,
                } => self.retry_letter(
                    sh, producers, now, sub, *message, delay, properties, request, cumulative,
                ),
            }
        }
        did
    }

    /// The internal producer of `sub` for `letter`, created if needed.
    fn letter_producer(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
        sub: ConsumerId,
        letter: Letter,
    ) -> Result<ProducerId, Error> {
        if let Some(p) = self.dlq.by_sub.get(&(sub, letter)) {
            return Ok(*p);
        }
        let s = self.subs.get(&sub).ok_or(Error::UnknownConsumer(sub))?;
        let policy = s.opts.dead_letter.clone().unwrap_or_default();
        let base = TopicName::parse(&s.topic_name)?.base_topic();
        let topic = match letter {
            Letter::Dead => policy
                .dead_letter_topic
                .unwrap_or_else(|| format!("{base}-{}-DLQ", s.opts.subscription)),
            Letter::Retry => policy
                .retry_letter_topic
                .unwrap_or_else(|| format!("{base}-{}-RETRY", s.opts.subscription)),
        };
        let gid = s.group;
        let mut options = ProducerOptions::default();
        if letter == Letter::Dead {
            options.initial_subscription = policy.initial_subscription_name;
        }
        let p = producers.create(sh, now, &topic, options)?;
        self.dlq.producers.insert(p, (sub, letter));
        self.dlq.by_sub.insert((sub, letter), p);
        self.dlq.owners.insert(sub, gid);
        Ok(p)
    }

    fn dead_letter(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
        sub: ConsumerId,
        entry: Entry,
    ) {
        let Some(messages) = self
            .subs
            .get_mut(&sub)
            .and_then(|s| s.dlq_candidates.remove(&entry))
        else {
            return;
        };
        let producer = match self.letter_producer(sh, producers, now, sub, Letter::Dead) {
            Ok(p) => p,
            Err(_) => {
                self.redeliver(sh, sub, vec![entry]);
                return;
            }
        };
        let job = self.dlq.next_job;
        self.dlq.next_job += 1;
        let mut remaining = 0;
        let mut failed = false;
        for m in &messages {
            let out = letter_message(m, Vec::new());
            match producers.send(sh, now, producer, out) {
                Ok(send) => {
                    self.dlq.sends.insert(send, job);
                    remaining += 1;
                }
                Err(_) => failed = true,
            }
        }
        self.dlq.jobs.insert(
            job,
            Job::Dead {
                sub,
                entry,
                remaining,
                failed,
            },
        );
        if remaining == 0 {
            self.job_done(sh, now, job);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retry_letter(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
        sub: ConsumerId,
        message: Message,
        delay: Duration,
        extra: Vec<(String, String)>,
        request: RequestId,
        cumulative: bool,
    ) {
        let gid = message.consumer;
        let max = self
            .subs
            .get(&sub)
            .and_then(|s| s.opts.dead_letter.as_ref())
            .map_or(u32::MAX, |d| d.max_redeliver_count);
        let times = message
            .property(RECONSUMETIMES)
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(1, |t| t.saturating_add(1));
        let mut props = extra;
        props.push((RECONSUMETIMES.to_string(), times.to_string()));
        props.push((DELAY_TIME.to_string(), delay.as_millis().to_string()));
        let letter = if times > max {
            Letter::Dead
        } else {
            Letter::Retry
        };
        let result = self
            .letter_producer(sh, producers, now, sub, letter)
            .and_then(|p| {
                let mut out = letter_message(&message, props);
                if letter == Letter::Retry && !delay.is_zero() {
                    out.deliver_after = Some(delay);
                }
                producers.send(sh, now, p, out).map_err(|e| match e {
                    SendError::Failed(e) => e,
                    _ => Error::Closed,
                })
            });
        match result {
            Ok(send) => {
                let job = self.dlq.next_job;
                self.dlq.next_job += 1;
                self.dlq.sends.insert(send, job);
                self.dlq.jobs.insert(
                    job,
                    Job::Retry {
                        sub,
                        group: gid,
                        id: message.id,
                        request,
                        cumulative,
                    },
                );
            }
            Err(error) => {
                sh.out.events.push_back(Event::ReconsumeCompleted {
                    consumer: gid,
                    request,
                    result: Err(error),
                });
                self.redeliver(sh, sub, vec![super::acks::entry_of(&message.id)]);
            }
        }
    }

    /// Takes the events of the internal producers out of the application's queue.
    fn producer_events(&mut self, sh: &mut Shared, now: Instant) -> bool {
        let mine: Vec<Event> = {
            let producers = &self.dlq.producers;
            let mut mine = Vec::new();
            sh.out.events.retain(|e| {
                let p = match e {
                    Event::ProducerReady { producer, .. }
                    | Event::ProducerReconnecting { producer, .. }
                    | Event::ProducerReconnected { producer }
                    | Event::ProducerFailed { producer, .. }
                    | Event::ProducerClosed { producer, .. }
                    | Event::SendCompleted { producer, .. }
                    | Event::SendsCompleted { producer, .. } => Some(*producer),
                    Event::TopicMoved {
                        resource: crate::event::Resource::Producer(p),
                        ..
                    } => Some(*p),
                    _ => None,
                };
                match p {
                    Some(p) if producers.contains_key(&p) => {
                        mine.push(e.clone());
                        false
                    }
                    _ => true,
                }
            });
            mine
        };
        let did = !mine.is_empty();
        for e in mine {
            match e {
                Event::SendCompleted { send, result, .. } => {
                    let Some(job) = self.dlq.sends.remove(&send) else {
                        continue;
                    };
                    self.send_done(sh, now, job, result.is_ok());
                }
                Event::SendsCompleted { sends, .. } => {
                    for send in sends {
                        if let Some(job) = self.dlq.sends.remove(&send) {
                            self.send_done(sh, now, job, true);
                        }
                    }
                }
                Event::ProducerFailed { producer, .. } | Event::ProducerClosed { producer, .. } => {
                    if let Some(key) = self.dlq.producers.remove(&producer) {
                        if self.dlq.by_sub.get(&key) == Some(&producer) {
                            self.dlq.by_sub.remove(&key);
                        }
                    }
                }
                _ => {}
            }
        }
        did
    }

    fn send_done(&mut self, sh: &mut Shared, now: Instant, job: u64, ok: bool) {
        match self.dlq.jobs.get_mut(&job) {
            Some(Job::Dead {
                remaining, failed, ..
            }) => {
                *remaining = remaining.saturating_sub(1);
                *failed |= !ok;
                if *remaining == 0 {
                    self.job_done(sh, now, job);
                }
            }
            Some(Job::Retry { .. }) => {
                if let Some(Job::Retry {
                    sub,
                    group,
                    id,
                    request,
                    cumulative,
                }) = self.dlq.jobs.remove(&job)
                {
                    if ok {
                        let result = self.ack(sh, now, group, &id, cumulative, Some(sub));
                        sh.out.events.push_back(Event::ReconsumeCompleted {
                            consumer: group,
                            request,
                            result: result.map(|_| ()),
                        });
                    } else {
                        sh.out.events.push_back(Event::ReconsumeCompleted {
                            consumer: group,
                            request,
                            result: Err(Error::Closed),
                        });
                        self.redeliver(sh, sub, vec![super::acks::entry_of(&id)]);
                    }
                }
            }
            None => {}
        }
    }

    fn job_done(&mut self, sh: &mut Shared, now: Instant, job: u64) {
        let Some(Job::Dead {
            sub, entry, failed, ..
        }) = self.dlq.jobs.remove(&job)
        else {
            return;
        };
        if failed {
            self.redeliver(sh, sub, vec![entry]);
            return;
        }
        let Some(s) = self.subs.get_mut(&sub) else {
            return;
        };
        let gid = s.group;
        let id = MessageId::new(entry.0, entry.1, s.partition);
        let outcomes = s.ack(sh, now, &id, false, None);
        self.outcomes(sh, now, sub, gid, outcomes);
    }
}

/// The copy published to a dead-letter or retry-letter topic (Java's properties: the original's,
/// plus `REAL_TOPIC` and `ORIGIN_MESSAGE_ID` unless already there, plus `extra`; sorted by key).
fn letter_message(m: &Message, extra: Vec<(String, String)>) -> OutgoingMessage {
    let mut props: BTreeMap<String, String> = m.properties.iter().cloned().collect();
    let real = TopicName::parse(&m.topic)
        .map(|t| t.base_topic().to_string())
        .unwrap_or_else(|_| m.topic.to_string());
    props.entry(REAL_TOPIC.to_string()).or_insert(real);
    props
        .entry(ORIGIN_MESSAGE_ID.to_string())
        .or_insert_with(|| java_message_id(&m.id));
    for (k, v) in extra {
        props.insert(k, v);
    }
    let mut out = OutgoingMessage::new(m.payload.clone());
    out.key = m.key.clone();
    out.properties = props.into_iter().collect();
    out.event_time = m.event_time;
    out.null_value = m.null_value;
    out
}

/// `MessageId.toString()` of the Java client: `ledger:entry:partition[:batchIndex]`.
pub(super) fn java_message_id(id: &MessageId) -> String {
    if id.batch_index >= 0 {
        format!(
            "{}:{}:{}:{}",
            id.ledger_id as i64, id.entry_id as i64, id.partition, id.batch_index
        )
    } else {
        format!(
            "{}:{}:{}",
            id.ledger_id as i64, id.entry_id as i64, id.partition
        )
    }
}
