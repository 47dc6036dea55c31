//! The application's commands: creating a producer, sending (with the pending-message and
//! memory limits checked at once), flushing and closing.

use super::message::OutgoingMessage;
use super::message::Refusal;
use super::message::Refused;
use super::options::PartSettings;
use super::options::ProducerOptions;
use super::part::Queued;
use super::precheck;
use super::App;
use super::Producers;
use super::Resolving;
use super::Topology;
use crate::backoff::Backoff;
use crate::deadline::Deadline as CreateDeadline;
use crate::error::Error;
use crate::error::SendError;
use crate::event::Event;
use crate::handle::ProducerId;
use crate::handle::RequestId;
use crate::handle::SendId;
use crate::request::OpKind;
use crate::request::Owner;
use crate::shared::Shared;
use crate::time;
use crate::topic::TopicName;
use std::collections::VecDeque;
use std::time::Instant;

impl Producers {
    pub(crate) fn create(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        topic: &str,
        mut options: ProducerOptions,
    ) -> Result<ProducerId, Error> {
        let topic = sh.env.topics.intern_name(TopicName::parse(topic)?);
        if !options.compression.is_available() {
            return Err(Error::InvalidState(
                "the compression codec is not compiled into this build",
            ));
        }
        let id = sh.env.ids.producer();
        let routing = std::mem::take(&mut options.routing);
        let lazy = options.lazy_partitions && !options.access_mode.is_exclusive();
        let mut app = App {
            id,
            settings: self.shared_settings(PartSettings::from_options(&options)),
            max_pending: options.max_pending(),
            hashing: options.hashing_scheme,
            routing: Some(routing),
            topology: Topology::Single,
            unrouted: VecDeque::new(),
            pending: 0,
            ready: false,
            create_by: time::after(now, sh.env.config.operation_timeout),
            flushes: Vec::new(),
            closing: false,
            close_error: None,
            topic,
        };
        if app.topic.is_partition() {
            // A partition named explicitly is a non-partitioned topic for the producer.
            let (settings, topic) = (app.settings.clone(), app.topic.shared());
            let partition = app.topic.partition().map_or(-1, |n| n as i32);
            self.apps.insert(id, app);
            self.add_part(sh, now, id, settings, id, partition, topic);
            return Ok(id);
        } else {
            let deadline =
                CreateDeadline::within(now, sh.env.config.operation_timeout, Some(app.create_by));
            let op = sh.start_op_until(
                now,
                Owner::Producer(id),
                OpKind::PartitionedMetadata {
                    topic: app.topic.to_string(),
                },
                None,
                Some(deadline.at()),
            );
            app.topology = Topology::Unknown(Box::new(Resolving {
                op: Some(op),
                retry_at: None,
                backoff: Backoff::new(sh.env.config.backoff_initial, sh.env.config.backoff_max),
                deadline,
                lazy,
                check_interval: options.partitions_check_interval,
            }));
        }
        self.apps.insert(id, app);
        Ok(id)
    }

    /// Accepts a message; a refused one is dropped.
    pub(crate) fn send(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        message: OutgoingMessage,
    ) -> Result<SendId, SendError> {
        self.try_send(sh, now, id, message).map_err(|r| r.error)
    }

    /// Accepts a message (see [`Refused`] for what comes back when it is not).
    // The refused message comes back by value (boxing it would allocate on every refusal);
    // an accepted one costs only the id.
    #[allow(clippy::result_large_err)]
    #[inline]
    pub(crate) fn try_send(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        mut message: OutgoingMessage,
    ) -> Result<SendId, Refused> {
        // The message stays here and is lent down: a batched one is encoded straight from it
        // (no move of the whole struct per layer), a refused one is still here to hand back.
        match self.accept(sh, now, id, &mut message) {
            Ok(send) => Ok(send),
            Err(Refusal::Intact(e)) => Err(Refused::with(e, message)),
            Err(Refusal::Consumed(e)) => Err(Refused::consumed(e)),
        }
    }

    /// Accepts a message; whatever is kept of it is taken out of `message`.
    #[inline]
    pub(super) fn accept(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        message: &mut OutgoingMessage,
    ) -> Result<SendId, Refusal> {
        let Some(mut app) = self.apps.get_mut(&id) else {
            return Err(Refusal::Intact(SendError::UnknownProducer(id)));
        };
        if app.closing {
            return Err(Refusal::Intact(SendError::ProducerClosed));
        }
        let size = message.payload.len();
        let single = match app.topology {
            Topology::Single => match self.parts.get_mut(&id) {
                Some(part) => Some(part),
                None => return Err(Refusal::Intact(SendError::UnknownProducer(id))),
            },
            _ => None,
        };
        let checked = match &single {
            Some(part) => part.precheck(message),
            None => precheck(
                &app.settings,
                message,
                pulsar_proto::DEFAULT_MAX_MESSAGE_SIZE,
            ),
        };
        if let Err(e) = checked {
            return Err(Refusal::Intact(e));
        }
        if app.pending >= app.max_pending {
            self.memory.waiters.insert(id);
            return Err(Refusal::Intact(SendError::QueueFull));
        }
        let limit = sh.env.config.memory_limit;
        if limit > 0 && self.memory.used > 0 && self.memory.used + size > limit {
            self.memory.waiters.insert(id);
            return Err(Refusal::Intact(SendError::MemoryLimit { limit }));
        }
        let send = sh.env.ids.send();
        // The hot path: one partition, no map lookups beyond the two above.
        if let Some(mut part) = single {
            part.add(sh, now, send, message, now)?;
            app.pending += 1;
            self.memory.used += size;
            return Ok(send);
        }
        drop(single);
        if let Topology::Unknown(_) = app.topology {
            app.unrouted.push_back(Queued {
                send,
                msg: std::mem::take(message),
                at: now,
                size,
            });
            app.pending += 1;
        } else {
            drop(app);
            let part = self.route(sh, now, id, message);
            let Some(mut part) = part.and_then(|p| self.parts.get_mut(&p)) else {
                return Err(Refusal::Intact(SendError::ProducerClosed));
            };
            part.add(sh, now, send, message, now)?;
            drop(part);
            if let Some(mut app) = self.apps.get_mut(&id) {
                app.pending += 1;
            }
        }
        self.memory.used += size;
        Ok(send)
    }

    /// Sends everything batched now; [`Event::FlushCompleted`] follows once every message sent
    /// before is completed.
    pub(crate) fn flush(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
    ) -> Result<RequestId, Error> {
        let (request, parts) = {
            let mut app = self.apps.get_mut(&id).ok_or(Error::UnknownProducer(id))?;
            let request = sh.env.ids.request();
            // Every send id handed out so far is below the request's value.
            app.flushes.push((request, SendId(request.get())));
            (request, app.parts())
        };
        for p in parts {
            if let Some(mut part) = self.parts.get_mut(&p) {
                part.close_batches(sh, now);
            }
        }
        self.settle(sh, now, id);
        Ok(request)
    }

    pub(crate) fn close(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
    ) -> Result<(), Error> {
        let mut app = self.apps.get_mut(&id).ok_or(Error::UnknownProducer(id))?;
        if app.closing {
            return Ok(());
        }
        app.closing = true;
        if let Topology::Unknown(r) = &app.topology {
            if let Some(op) = r.op {
                sh.lookups.cancel(op);
            }
        }
        if let Topology::Partitioned(p) = &app.topology {
            if let Some(op) = p.check_op {
                sh.lookups.cancel(op);
            }
        }
        let unrouted = std::mem::take(&mut app.unrouted);
        let mut freed = 0;
        for q in unrouted {
            freed += q.size;
            app.pending = app.pending.saturating_sub(1);
            sh.out.events.push_back(Event::SendCompleted {
                producer: id,
                send: q.send,
                result: Err(SendError::ProducerClosed),
            });
        }
        let parts = app.parts();
        drop(app);
        self.memory.used = self.memory.used.saturating_sub(freed);
        let deadline = time::after(now, sh.env.config.operation_timeout);
        for p in parts {
            let outcome = match self.parts.get_mut(&p) {
                Some(mut part) => part.close(sh, now, deadline),
                None => continue,
            };
            self.after_part(sh, now, p, outcome);
        }
        self.settle(sh, now, id);
        Ok(())
    }

    /// Closes every producer (client shutdown).
    pub(crate) fn close_all(&mut self, sh: &mut Shared, now: Instant) {
        let ids: Vec<ProducerId> = self.apps.keys().copied().collect();
        for id in ids {
            let _ = self.close(sh, now, id);
        }
    }

    /// Drops every producer still there (close timed out).
    pub(crate) fn force_close_all(&mut self, sh: &mut Shared, now: Instant, error: Error) {
        let parts: Vec<ProducerId> = self.parts.keys().copied().collect();
        for p in parts {
            let outcome = self.parts.get_mut(&p).map(|mut part| {
                let e = SendError::Failed(error.clone());
                part.finish(sh, e, Some(error.clone()))
            });
            if let Some(outcome) = outcome {
                self.after_part(sh, now, p, outcome);
            }
        }
        let apps: Vec<ProducerId> = self.apps.keys().copied().collect();
        for id in apps {
            self.end_app(&mut sh.out, id, Some(error.clone()));
        }
    }
}
