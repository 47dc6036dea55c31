//! Receiving: handing queued messages to the application (and, with a zero-size receiver queue,
//! asking the broker for one).

use super::group::Phase;
use super::Consumers;
use super::Message;
use crate::error::Error;
use crate::handle::ConsumerId;
use crate::shared::Shared;
use std::time::Instant;

impl Consumers {
    pub(crate) fn receive(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
    ) -> Option<Message> {
        // the queue is no deadline's business
        let g = self.groups.get_mut_untimed(&id)?;
        // taken and returned as is (a message is ~300 bytes: no moves in between)
        let m = g.queue.pop_front();
        match &m {
            Some(m) => {
                self.subs.modify(&m.sub, |s| s.delivered(sh, now, m));
            }
            None => {
                if g.opts.receiver_queue_size == 0 && g.phase != Phase::Closing {
                    for sid in &g.subs {
                        if let Some(s) = self.subs.get_mut(sid) {
                            s.request_one(sh);
                        }
                    }
                }
            }
        }
        m
    }

    pub(crate) fn receive_batch(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        id: ConsumerId,
        max_messages: usize,
        max_bytes: usize,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while out.len() < max_messages {
            let next_len = match self.groups.get(&id).and_then(|g| g.queue.front()) {
                Some(m) => m.payload.len(),
                None => {
                    if out.is_empty() {
                        // zero-size queue: ask for a message
                        let _ = self.receive(sh, now, id);
                    }
                    break;
                }
            };
            if !out.is_empty() && bytes.saturating_add(next_len) > max_bytes {
                break;
            }
            match self.receive(sh, now, id) {
                Some(m) => {
                    bytes += m.payload.len();
                    out.push(m);
                }
                None => break,
            }
        }
        out
    }

    /// The number of messages in a consumer's receiver queue and their payload bytes.
    pub(crate) fn queued(&self, id: ConsumerId) -> Option<(usize, usize)> {
        let g = self.groups.get(&id)?;
        let bytes = g.queue.iter().map(|m| m.payload.len()).sum();
        Some((g.queue.len(), bytes))
    }

    /// The next message queued for `id` emits `MessagesAvailable` even if the queue is not empty.
    pub(crate) fn watch_growth(&mut self, id: ConsumerId) {
        if let Some(g) = self.groups.get_mut_untimed(&id) {
            g.watch_growth = true;
        }
    }

    /// Pauses (no more FLOW permits) or resumes a consumer on all its topics and partitions.
    pub(crate) fn set_paused(
        &mut self,
        sh: &mut Shared,
        id: ConsumerId,
        paused: bool,
    ) -> Result<(), Error> {
        let g = self
            .groups
            .get_mut_untimed(&id)
            .ok_or(Error::UnknownConsumer(id))?;
        if g.phase == Phase::Closing {
            return Err(Error::Closed);
        }
        g.paused = paused;
        let subs: Vec<ConsumerId> = g.subs.iter().copied().collect();
        for sid in subs {
            if let Some(s) = self.subs.get_mut(&sid) {
                s.set_paused(sh, paused);
            }
        }
        Ok(())
    }

    /// Whether the application paused a consumer.
    pub(crate) fn is_paused(&self, id: ConsumerId) -> Option<bool> {
        self.groups.get(&id).map(|g| g.paused)
    }
}
