//! Transactional sends: the partition a message of a transaction goes to is chosen first (the
//! transaction must add that partition at its coordinator before the message is written), and the
//! message is accepted on that partition, at once or once the partition is added.

use super::message::{OutgoingMessage, Refusal};
use super::{Producers, Topology};
use crate::error::SendError;
use crate::handle::{ProducerId, SendId};
use crate::shared::Shared;
use std::time::Instant;

impl Producers {
    /// The wire producer and partition topic that `msg` goes to (the router's choice is made
    /// now and kept: the message is then accepted with [`accept_on`](Self::accept_on)). A
    /// producer whose partition count is not known yet cannot take transactional messages.
    pub(crate) fn txn_target(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        msg: &OutgoingMessage,
    ) -> Result<(ProducerId, String), SendError> {
        let partitioned = {
            let app = self.apps.get(&id).ok_or(SendError::UnknownProducer(id))?;
            if app.closing {
                return Err(SendError::ProducerClosed);
            }
            match app.topology {
                Topology::Single => false,
                Topology::Partitioned(_) => true,
                Topology::Unknown(_) => {
                    return Err(SendError::Failed(crate::error::Error::InvalidState(
                        "the producer is not ready: wait for it before sending in a transaction",
                    )))
                }
            }
        };
        let part = if partitioned {
            self.route(sh, now, id, msg)
                .ok_or(SendError::ProducerClosed)?
        } else {
            id
        };
        let topic = self
            .parts
            .get(&part)
            .map(|p| p.link.topic.to_string())
            .ok_or(SendError::ProducerClosed)?;
        Ok((part, topic))
    }

    /// Accepts `msg` on wire producer `part` of application producer `id` (chosen by
    /// [`txn_target`](Self::txn_target)), under `send` when the id was handed out already (a
    /// message held until its partition joined the transaction). `forced` skips the pending and
    /// memory limits: a held message was accepted by the application call long ago.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn accept_on(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ProducerId,
        part: ProducerId,
        send: Option<SendId>,
        msg: &mut OutgoingMessage,
        forced: bool,
    ) -> Result<SendId, Refusal> {
        let size = msg.payload.len();
        {
            let Some(app) = self.apps.get(&id) else {
                return Err(Refusal::Intact(SendError::UnknownProducer(id)));
            };
            if app.closing {
                return Err(Refusal::Intact(SendError::ProducerClosed));
            }
            let Some(p) = self.parts.get(&part) else {
                return Err(Refusal::Intact(SendError::ProducerClosed));
            };
            p.precheck(msg).map_err(Refusal::Intact)?;
            if !forced {
                if app.pending >= app.max_pending {
                    self.memory.waiters.insert(id);
                    return Err(Refusal::Intact(SendError::QueueFull));
                }
                let limit = sh.env.config.memory_limit;
                if limit > 0 && self.memory.used > 0 && self.memory.used + size > limit {
                    self.memory.waiters.insert(id);
                    return Err(Refusal::Intact(SendError::MemoryLimit { limit }));
                }
            }
        }
        let send = send.unwrap_or_else(|| sh.env.ids.send());
        let Some(mut p) = self.parts.get_mut(&part) else {
            return Err(Refusal::Intact(SendError::ProducerClosed));
        };
        p.add(sh, now, send, msg, now)?;
        drop(p);
        if let Some(mut app) = self.apps.get_mut(&id) {
            app.pending += 1;
        }
        self.memory.used += size;
        Ok(send)
    }
}
