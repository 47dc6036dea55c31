//! Acknowledgements of one wire consumer: which messages of each batch are still unacknowledged,
//! which acknowledgements wait for the next flush (grouping), and which incoming messages were
//! already acknowledged (duplicates after a redelivery).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_proto::pb;

use crate::handle::RequestId;
use crate::message::MessageId;
use crate::time;

/// A ledger entry: `(ledger_id, entry_id)`, ordered like positions in the topic.
pub(crate) type Entry = (u64, u64);

/// The entry of a message id.
pub(crate) fn entry_of(id: &MessageId) -> Entry {
    (id.ledger_id, id.entry_id)
}

/// The most messages one batch may hold as far as acknowledgements go. Batches the client
/// decoded are far smaller (a batch of this many messages would exceed any broker's message size
/// limits); a larger `batch_size` in an application-supplied id is clamped to it, so no id can
/// make the tracker allocate more than `MAX_BATCH_SIZE / 8` bytes for one entry.
pub(crate) const MAX_BATCH_SIZE: u32 = 1 << 20;

/// The batch size an id claims, clamped to `1..=MAX_BATCH_SIZE`.
pub(crate) fn clamped_batch_size(size: i32) -> u32 {
    (size.max(1) as u32).min(MAX_BATCH_SIZE)
}

/// `words` words with the low `bits` bits set.
fn low_bits(bits: u32) -> Vec<u64> {
    let full = (bits / 64) as usize;
    let mut words = vec![u64::MAX; full];
    let rest = bits % 64;
    if rest > 0 {
        words.push((1u64 << rest) - 1);
    }
    words
}

/// Unacknowledged indexes of one batch (set bit = not acknowledged yet).
#[derive(Debug, Clone)]
struct BatchState {
    remaining: Vec<u64>,
    size: u32,
    left: u32,
}

impl BatchState {
    /// Every index of a batch of `size` (clamped to [`MAX_BATCH_SIZE`]) still unacknowledged.
    fn new(size: u32) -> BatchState {
        let size = size.clamp(1, MAX_BATCH_SIZE);
        BatchState {
            remaining: low_bits(size),
            size,
            left: size,
        }
    }

    /// Clears every index up to and including `index` (clamped to the batch).
    fn clear_through(&mut self, index: u32) {
        let last = index.min(self.size - 1);
        let mask = low_bits(last + 1);
        for (w, m) in self.remaining.iter_mut().zip(mask) {
            *w &= !m;
        }
        self.recount();
    }

    fn recount(&mut self) {
        self.left = self.remaining.iter().map(|w| w.count_ones()).sum();
    }

    /// Clears one index; returns whether it was set.
    fn clear(&mut self, index: u32) -> bool {
        let (w, b) = (index as usize / 64, index % 64);
        match self.remaining.get_mut(w) {
            Some(word) if *word & (1 << b) != 0 => {
                *word &= !(1 << b);
                self.left -= 1;
                true
            }
            _ => false,
        }
    }

    fn is_set(&self, index: u32) -> bool {
        self.remaining
            .get(index as usize / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    fn words(&self) -> Vec<i64> {
        self.remaining.iter().map(|w| *w as i64).collect()
    }
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acked {
    /// The whole entry is now acknowledged (every message of its batch).
    pub(crate) entry_done: bool,
}

/// Acknowledgements ready to be written.
#[derive(Debug, Default)]
pub(crate) struct Flush {
    pub(crate) individual: Vec<pb::MessageIdData>,
    pub(crate) individual_receipts: Vec<RequestId>,
    pub(crate) cumulative: Option<pb::MessageIdData>,
    pub(crate) cumulative_receipts: Vec<RequestId>,
}

/// A cumulative ack held back before the chunks of a chunked message (see [`AckTracker::take`]).
#[derive(Debug)]
struct HeldCumulative {
    /// The position the application acknowledged up to.
    position: Entry,
    /// Its ack set (a batch acknowledged in part).
    ack_set: Option<Vec<i64>>,
    /// The first chunk it stopped before.
    limit: Entry,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct AckTracker {
    batch_index_ack: bool,
    group_time: Duration,
    group_max: usize,
    batches: BTreeMap<Entry, BatchState>,
    /// Individual acks waiting for a flush: entry → ack set (`None`: the whole entry).
    pending: BTreeMap<Entry, Option<Vec<i64>>>,
    pending_receipts: Vec<RequestId>,
    /// Cumulative ack waiting for a flush: position and ack set.
    pending_cumulative: Option<(Entry, Option<Vec<i64>>)>,
    pending_cumulative_receipts: Vec<RequestId>,
    /// Every entry up to here is acknowledged (sent or pending).
    cumulative_floor: Option<Entry>,
    /// A cumulative ack [`take`](Self::take) held back at a limit (see there): position, ack
    /// set, and the limit it met. Boxed: rare, and every idle consumer carries the field.
    held_cumulative: Option<Box<HeldCumulative>>,
    flush_at: Option<Instant>,
}

impl AckTracker {
    pub(crate) fn new(batch_index_ack: bool, group_time: Duration, group_max: usize) -> Self {
        AckTracker {
            batch_index_ack,
            group_time,
            group_max: group_max.max(1),
            batches: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_receipts: Vec::new(),
            pending_cumulative: None,
            pending_cumulative_receipts: Vec::new(),
            cumulative_floor: None,
            held_cumulative: None,
            flush_at: None,
        }
    }

    /// Acknowledges one message. Returns what happened; [`should_flush`](Self::should_flush) tells
    /// whether to flush now.
    pub(crate) fn individual(
        &mut self,
        now: Instant,
        id: &MessageId,
        receipt: Option<RequestId>,
    ) -> Acked {
        let entry = entry_of(id);
        if let Some(r) = receipt {
            self.pending_receipts.push(r);
        }
        if self.cumulative_floor.is_some_and(|f| entry <= f) {
            self.arm(now);
            return Acked { entry_done: true };
        }
        let batched = id.batch_index >= 0 && id.batch_size > 1;
        if !batched {
            self.batches.remove(&entry);
            self.pending.insert(entry, None);
            self.arm(now);
            return Acked { entry_done: true };
        }
        let state = self
            .batches
            .entry(entry)
            .or_insert_with(|| BatchState::new(clamped_batch_size(id.batch_size)));
        state.clear(id.batch_index as u32);
        if state.left == 0 {
            self.batches.remove(&entry);
            self.pending.insert(entry, None);
            self.arm(now);
            Acked { entry_done: true }
        } else {
            if self.batch_index_ack {
                let words = state.words();
                match self.pending.get_mut(&entry) {
                    Some(None) => {}
                    Some(slot) => *slot = Some(words),
                    None => {
                        self.pending.insert(entry, Some(words));
                    }
                }
                self.arm(now);
            } else if !self.pending_receipts.is_empty() {
                // Nothing goes to the broker yet; the receipt is complete locally at the next flush.
                self.arm(now);
            }
            Acked { entry_done: false }
        }
    }

    /// Acknowledges everything up to and including `id`. Returns the last entry now fully
    /// acknowledged (`None` if the position did not move).
    pub(crate) fn cumulative(
        &mut self,
        now: Instant,
        id: &MessageId,
        receipt: Option<RequestId>,
    ) -> Option<Entry> {
        let entry = entry_of(id);
        if let Some(r) = receipt {
            self.pending_cumulative_receipts.push(r);
        }
        let batched = id.batch_index >= 0 && id.batch_size > 1;
        // The position to send and the ack set (remaining indexes of a partially acked batch).
        let (position, ack_set, floor) = if batched {
            let state = self
                .batches
                .entry(entry)
                .or_insert_with(|| BatchState::new(clamped_batch_size(id.batch_size)));
            state.clear_through(id.batch_index.max(0) as u32);
            if state.left == 0 {
                self.batches.remove(&entry);
                (entry, None, Some(entry))
            } else if self.batch_index_ack {
                (entry, Some(state.words()), prev_entry(entry))
            } else {
                let prev = prev_entry(entry);
                match prev {
                    Some(p) => (p, None, Some(p)),
                    None => {
                        self.arm(now);
                        return None;
                    }
                }
            }
        } else {
            (entry, None, Some(entry))
        };
        if let Some(f) = floor {
            if self.cumulative_floor.is_none_or(|old| f > old) {
                self.cumulative_floor = Some(f);
            }
            self.pending.retain(|e, _| *e > f);
            self.batches.retain(|e, _| *e > f);
        }
        let newer = match &self.pending_cumulative {
            None => true,
            Some((p, s)) => position > *p || (position == *p && s.is_some()),
        };
        if newer {
            self.pending_cumulative = Some((position, ack_set));
        }
        self.arm(now);
        floor
    }

    fn arm(&mut self, now: Instant) {
        if self.flush_at.is_none() {
            self.flush_at = Some(time::after(now, self.group_time));
        }
    }

    /// Whether the pending acks must go out now (grouping disabled, or the count limit reached).
    pub(crate) fn should_flush(&self) -> bool {
        self.flush_at.is_some()
            && (self.group_time.is_zero()
                || self.pending.len() + usize::from(self.pending_cumulative.is_some())
                    >= self.group_max)
    }

    /// When the grouped acks are due.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.flush_at
    }

    /// Whether anything waits for a flush.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
            || self.pending_cumulative.is_some()
            || !self.pending_receipts.is_empty()
            || !self.pending_cumulative_receipts.is_empty()
    }

    /// Stops the flush timer (not connected: everything stays pending until the next flush).
    pub(crate) fn disarm(&mut self) {
        self.flush_at = None;
    }

    /// Takes everything pending. A cumulative ack at `limit` or past it goes to the broker as
    /// one up to the entry before `limit`, and the rest is held until
    /// [`release_held`](Self::release_held) lets it go: `limit` is the first chunk of a chunked
    /// message not yet acknowledged (see `Sub::cumulative_limit`).
    pub(crate) fn take(&mut self, limit: Option<Entry>) -> Flush {
        self.flush_at = None;
        let pending_cumulative = match (self.pending_cumulative.take(), limit) {
            (Some((position, set)), Some(limit)) if position >= limit => {
                if self
                    .held_cumulative
                    .as_ref()
                    .is_none_or(|held| position >= held.position)
                {
                    self.held_cumulative = Some(Box::new(HeldCumulative {
                        position,
                        ack_set: set,
                        limit,
                    }));
                }
                prev_entry(limit).map(|p| (p, None))
            }
            (pending, _) => pending,
        };
        let individual = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((ledger_id, entry_id), set)| pb::MessageIdData {
                ledger_id,
                entry_id,
                ack_set: set.unwrap_or_default(),
                ..Default::default()
            })
            .collect();
        let cumulative = pending_cumulative.map(|((ledger_id, entry_id), set)| pb::MessageIdData {
            ledger_id,
            entry_id,
            ack_set: set.unwrap_or_default(),
            ..Default::default()
        });
        Flush {
            individual,
            individual_receipts: std::mem::take(&mut self.pending_receipts),
            cumulative,
            cumulative_receipts: std::mem::take(&mut self.pending_cumulative_receipts),
        }
    }

    /// Whether a cumulative ack is held back (see [`take`](Self::take)).
    pub(crate) fn holds_cumulative(&self) -> bool {
        self.held_cumulative.is_some()
    }

    /// Lets the held cumulative ack go (pending again, the flush armed) once `limit`, the first
    /// chunk of a chunked message not yet acknowledged now, is past the limit it met, or gone.
    pub(crate) fn release_held(&mut self, now: Instant, limit: Option<Entry>) {
        let Some(held) = &self.held_cumulative else {
            return;
        };
        if limit.is_some_and(|l| l <= held.limit) {
            return;
        }
        let Some(held) = self.held_cumulative.take() else {
            return;
        };
        let HeldCumulative {
            position,
            ack_set: set,
            ..
        } = *held;
        if self
            .pending_cumulative
            .as_ref()
            .is_none_or(|(p, _)| position > *p)
        {
            self.pending_cumulative = Some((position, set));
        }
        self.arm(now);
    }

    /// Whether a (non-batched) message of `entry` was already acknowledged.
    pub(crate) fn is_duplicate(&self, entry: Entry) -> bool {
        self.cumulative_floor.is_some_and(|f| entry <= f)
            || matches!(self.pending.get(&entry), Some(None))
    }

    /// Whether message `index` of the batch at `entry` was already acknowledged locally.
    pub(crate) fn is_index_acked(&self, entry: Entry, index: u32) -> bool {
        if self.cumulative_floor.is_some_and(|f| entry <= f) {
            return true;
        }
        self.batches.get(&entry).is_some_and(|s| !s.is_set(index))
    }

    /// A (re)delivered batch of `size` messages carries the broker's ack set (set bit = still to
    /// deliver): the indexes it leaves out are acknowledged on the broker, so the entry is done
    /// once the application acknowledges the delivered ones. Returns whether nothing is left (the
    /// whole entry is then acknowledged).
    pub(crate) fn broker_acked(
        &mut self,
        now: Instant,
        entry: Entry,
        size: u32,
        ack_set: &[i64],
    ) -> bool {
        if self.cumulative_floor.is_some_and(|f| entry <= f) {
            return true;
        }
        let state = self
            .batches
            .entry(entry)
            .or_insert_with(|| BatchState::new(size));
        for (i, w) in state.remaining.iter_mut().enumerate() {
            *w &= ack_set.get(i).map_or(0, |s| *s as u64);
        }
        state.recount();
        if state.left == 0 {
            self.batches.remove(&entry);
            self.pending.insert(entry, None);
            self.arm(now);
            return true;
        }
        false
    }

    /// The registration is gone: acknowledgements written on the old connection may be lost with
    /// it, and the broker then redelivers those messages, which must reach the application again
    /// (Java's behaviour) rather than be dropped as already acknowledged. Forgets every batch's
    /// acknowledged indexes and keeps as cumulative floor only what still waits for a flush (it
    /// goes out on the new connection before any permits), held to the entry before `limit`
    /// (see [`take`](Self::take)); a cumulative ack held back is forgotten, as if it was lost:
    /// the broker redelivers what it covers after the first chunks of `limit`'s message, which
    /// must come again.
    pub(crate) fn forget_sent(&mut self, limit: Option<Entry>) {
        self.batches.clear();
        self.held_cumulative = None;
        if let (Some(limit), Some((position, _))) = (limit, &self.pending_cumulative) {
            if *position >= limit {
                self.pending_cumulative = prev_entry(limit).map(|p| (p, None));
            }
        }
        self.cumulative_floor = self.pending_cumulative.as_ref().and_then(|(p, set)| {
            if set.is_some() {
                prev_entry(*p)
            } else {
                Some(*p)
            }
        });
    }

    /// Forgets the local acknowledgement state (after a seek), keeping nothing pending.
    pub(crate) fn reset(&mut self) {
        self.batches.clear();
        self.cumulative_floor = None;
        self.held_cumulative = None;
    }
}

/// The entry before `entry` in the same ledger (`None` for the first entry).
fn prev_entry(entry: Entry) -> Option<Entry> {
    entry.1.checked_sub(1).map(|e| (entry.0, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(entry: u64, index: i32, size: i32) -> MessageId {
        MessageId {
            batch_index: index,
            batch_size: size,
            ..MessageId::new(1, entry, -1)
        }
    }

    #[test]
    fn batch_acked_locally_until_complete() {
        let now = Instant::now();
        let mut t = AckTracker::new(false, Duration::from_millis(100), 1000);
        assert!(!t.individual(now, &batch(5, 1, 3), None).entry_done);
        assert!(!t.has_pending(), "nothing to send yet");
        assert!(t.is_index_acked((1, 5), 1));
        assert!(!t.is_index_acked((1, 5), 0));
        assert!(!t.individual(now, &batch(5, 0, 3), None).entry_done);
        assert!(t.individual(now, &batch(5, 2, 3), None).entry_done);
        let f = t.take(None);
        assert_eq!(f.individual.len(), 1);
        assert!(f.individual[0].ack_set.is_empty());
    }

    #[test]
    fn batch_index_ack_sends_remaining_set() {
        let now = Instant::now();
        let mut t = AckTracker::new(true, Duration::ZERO, 1000);
        t.individual(now, &batch(5, 1, 3), None);
        assert!(t.should_flush());
        let f = t.take(None);
        assert_eq!(f.individual[0].ack_set, vec![0b101]);
        t.individual(now, &batch(5, 0, 3), None);
        assert_eq!(t.take(None).individual[0].ack_set, vec![0b100]);
        t.individual(now, &batch(5, 2, 3), None);
        assert!(t.take(None).individual[0].ack_set.is_empty());
    }

    #[test]
    fn cumulative_in_batch_without_index_ack_acks_previous_entry() {
        let now = Instant::now();
        let mut t = AckTracker::new(false, Duration::ZERO, 1000);
        t.cumulative(now, &batch(5, 1, 3), None);
        let f = t.take(None);
        let c = f.cumulative.unwrap();
        assert_eq!((c.ledger_id, c.entry_id), (1, 4));
        assert!(t.is_index_acked((1, 5), 0) && t.is_index_acked((1, 5), 1));
        assert!(!t.is_index_acked((1, 5), 2));
        t.cumulative(now, &batch(5, 2, 3), None);
        let c = t.take(None).cumulative.unwrap();
        assert_eq!((c.ledger_id, c.entry_id), (1, 5));
        assert!(t.is_duplicate((1, 3)));
    }

    #[test]
    fn cumulative_held_back_at_a_limit_until_released_and_forgotten_with_the_connection() {
        let now = Instant::now();
        let mut t = AckTracker::new(false, Duration::ZERO, 1000);
        t.cumulative(now, &MessageId::new(1, 7, -1), None);
        let c = t.take(Some((1, 5))).cumulative.unwrap();
        assert_eq!((c.entry_id, t.holds_cumulative()), (4, true));
        assert!(t.is_duplicate((1, 6)), "acknowledged locally all the same");
        t.release_held(now, Some((1, 5)));
        assert!(!t.has_pending(), "same limit: still held");
        t.release_held(now, Some((1, 9)));
        assert!(t.should_flush());
        assert_eq!(t.take(Some((1, 9))).cumulative.unwrap().entry_id, 7);
        t.cumulative(now, &MessageId::new(1, 8, -1), None);
        t.take(Some((1, 8)));
        t.forget_sent(None);
        assert!(!t.holds_cumulative() && !t.is_duplicate((1, 8)));
        t.cumulative(now, &MessageId::new(1, 9, -1), None);
        t.forget_sent(Some((1, 9)));
        assert_eq!(t.take(None).cumulative.unwrap().entry_id, 8);
    }

    #[test]
    fn grouping_limits() {
        let now = Instant::now();
        let mut t = AckTracker::new(false, Duration::from_millis(100), 2);
        t.individual(now, &MessageId::new(1, 1, -1), None);
        assert!(!t.should_flush());
        assert_eq!(t.next_timeout(), Some(now + Duration::from_millis(100)));
        t.individual(now, &MessageId::new(1, 2, -1), None);
        assert!(t.should_flush());
        assert_eq!(t.take(None).individual.len(), 2);
        assert_eq!(t.next_timeout(), None);
    }
}
