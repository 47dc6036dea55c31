//! The application-side waiters of one producer's sends, in send order.
//!
//! The core hands out [`SendId`](pulsar_core::SendId)s in increasing order and completes a producer's sends almost
//! always in that order (one partition's receipts come in order; failures and other partitions
//! are the exceptions), so the table is a deque sorted by id: a send is appended, and its
//! completion is found at a remembered cursor (the entry after the last one found) or at the
//! front, in constant time. Anything else (out-of-order receipts, receipts polled late) falls
//! back to a binary search. Removed entries in the middle stay as holes until they reach the
//! front, and the deque is compacted once holes are the majority, so its length stays within
//! twice the live entries.
//!
//! An idle producer's table is an empty deque: no allocation.

use std::collections::VecDeque;
use std::task::Waker;

use pulsar_core::{MessageId, SendError};

use crate::error::Error;

/// A completion callback of a send.
pub(crate) type SendCallback = Box<dyn FnOnce(Result<MessageId, Error>) + Send + 'static>;

/// Holes tolerated before a compaction is considered.
const MIN_HOLES_TO_COMPACT: usize = 64;
/// An empty table keeps at most this many entries of capacity.
const MAX_IDLE_CAPACITY: usize = 1024;

/// What waits for one send.
pub(crate) enum SendSlot {
    /// A receipt future waits.
    Waiting(Option<Waker>),
    /// The result, for a receipt future not polled since (boxed: rare, and large).
    Done(Box<Result<MessageId, SendError>>),
    /// A callback to run.
    Callback(SendCallback),
}

/// What [`SendTable::complete`] found.
pub(crate) enum Completion {
    /// Nothing waits (the receipt was dropped, or the send was completed already).
    Nobody,
    /// A receipt future, now holding its outcome: wake it.
    Wake(Option<Waker>),
    /// A callback, to run with the outcome.
    Call(SendCallback, Result<MessageId, SendError>),
}

struct Entry {
    id: u64,
    /// `None`: a hole (completed and handed over, or the receipt was dropped).
    slot: Option<SendSlot>,
}

/// One producer's send waiters. See the [module documentation](self).
#[derive(Default)]
pub(crate) struct SendTable {
    entries: VecDeque<Entry>,
    /// Holes in `entries`.
    holes: usize,
    /// Where the next lookup looks first (the entry after the last one found).
    cursor: usize,
}

impl std::fmt::Debug for SendTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendTable")
            .field("len", &self.len())
            .field("holes", &self.holes)
            .finish()
    }
}

impl SendTable {
    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - self.holes
    }

    /// Whether no send waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the waiter of send `id` (a `SendId`'s value; normally larger than every id in the
    /// table).
    pub(crate) fn insert(&mut self, id: u64, slot: SendSlot) {
        let entry = Entry {
            id,
            slot: Some(slot),
        };
        match self.entries.back() {
            Some(last) if last.id >= id => {
                // Out of order (not produced by the core): keep the deque sorted.
                match self.entries.binary_search_by_key(&id, |e| e.id) {
                    Ok(i) => {
                        if let Some(e) = self.entries.get_mut(i) {
                            if e.slot.is_none() {
                                self.holes -= 1;
                            }
                            e.slot = entry.slot;
                        }
                    }
                    Err(i) => {
                        self.entries.insert(i, entry);
                        if i < self.cursor {
                            self.cursor += 1;
                        }
                    }
                }
            }
            _ => self.entries.push_back(entry),
        }
    }

    /// The index of `id`'s entry (live or hole).
    fn find(&mut self, id: u64) -> Option<usize> {
        let at = |entries: &VecDeque<Entry>, i: usize| entries.get(i).is_some_and(|e| e.id == id);
        let i = if at(&self.entries, self.cursor) {
            self.cursor
        } else if at(&self.entries, 0) {
            0
        } else {
            self.entries.binary_search_by_key(&id, |e| e.id).ok()?
        };
        self.cursor = i + 1;
        Some(i)
    }

    /// The waiter of `id`, left in place.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut SendSlot> {
        let i = self.find(id)?;
        self.entries.get_mut(i)?.slot.as_mut()
    }

    /// Takes the waiter of `id` out.
    pub(crate) fn remove(&mut self, id: u64) -> Option<SendSlot> {
        let i = self.find(id)?;
        let slot = self.entries.get_mut(i)?.slot.take()?;
        self.holes += 1;
        self.trim();
        Some(slot)
    }

    /// Records the outcome of send `id`: a waiting receipt keeps it (its waker is returned), a
    /// callback is taken out with it.
    pub(crate) fn complete(&mut self, id: u64, result: Result<MessageId, SendError>) -> Completion {
        let Some(i) = self.find(id) else {
            return Completion::Nobody;
        };
        let Some(entry) = self.entries.get_mut(i) else {
            return Completion::Nobody;
        };
        match entry.slot.take() {
            Some(SendSlot::Waiting(waker)) => {
                entry.slot = Some(SendSlot::Done(Box::new(result)));
                Completion::Wake(waker)
            }
            Some(SendSlot::Callback(callback)) => {
                self.holes += 1;
                self.trim();
                Completion::Call(callback, result)
            }
            other => {
                // Already completed (the first outcome stands), or a hole.
                entry.slot = other;
                Completion::Nobody
            }
        }
    }

    /// Drops the holes at the front; compacts when holes are the majority.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|e| e.slot.is_none()) {
            self.entries.pop_front();
            self.holes -= 1;
            self.cursor = self.cursor.saturating_sub(1);
        }
        if self.entries.is_empty() {
            self.cursor = 0;
            if self.entries.capacity() > MAX_IDLE_CAPACITY {
                self.entries = VecDeque::new();
            }
        } else if self.holes >= MIN_HOLES_TO_COMPACT && self.holes * 2 > self.entries.len() {
            self.entries.retain(|e| e.slot.is_some());
            self.holes = 0;
            self.cursor = 0;
        }
    }

    /// Every live entry, in send order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut SendSlot)> {
        self.entries
            .iter_mut()
            .filter_map(|e| e.slot.as_mut().map(|s| (e.id, s)))
    }

    /// Takes out every callback, in send order (receipts stay).
    pub(crate) fn take_callbacks(&mut self) -> Vec<SendCallback> {
        let mut out = Vec::new();
        for e in self.entries.iter_mut() {
            if matches!(e.slot, Some(SendSlot::Callback(_))) {
                if let Some(SendSlot::Callback(cb)) = e.slot.take() {
                    out.push(cb);
                    self.holes += 1;
                }
            }
        }
        self.trim();
        out
    }

    /// The ids of the sends still waiting for their outcome (receipts not yet completed and
    /// callbacks), in send order.
    pub(crate) fn uncompleted(&self) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|e| matches!(e.slot, Some(SendSlot::Waiting(_) | SendSlot::Callback(_))))
            .map(|e| e.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(table: &mut SendTable, n: u64) -> bool {
        table.remove(n).is_some()
    }

    #[test]
    fn in_order_completions_empty_the_table() {
        let mut t = SendTable::default();
        for n in 0..100 {
            t.insert(n, SendSlot::Waiting(None));
        }
        assert_eq!(t.len(), 100);
        for n in 0..100 {
            assert!(done(&mut t, n), "send {n}");
        }
        assert!(t.is_empty());
        assert_eq!(t.entries.len(), 0);
    }

    #[test]
    fn out_of_order_completions_are_found_and_holes_are_reclaimed() {
        let mut t = SendTable::default();
        for n in 0..200 {
            t.insert(n, SendSlot::Waiting(None));
        }
        // Odd sends complete first (another partition), then the even ones backwards.
        for n in (1..200).step_by(2) {
            assert!(done(&mut t, n), "send {n}");
        }
        assert_eq!(t.len(), 100);
        assert!(t.entries.len() <= 2 * t.len(), "compacted");
        for n in (0..100u64).rev().map(|k| 2 * k) {
            assert!(done(&mut t, n), "send {n}");
        }
        assert!(t.is_empty());
        assert_eq!(t.entries.len(), 0);
        // Completing again finds nothing.
        assert!(!done(&mut t, 4));
    }

    #[test]
    fn a_stuck_first_send_keeps_the_table_bounded() {
        let mut t = SendTable::default();
        t.insert(0, SendSlot::Waiting(None));
        for n in 1..5000 {
            t.insert(n, SendSlot::Waiting(None));
            assert!(done(&mut t, n));
            assert!(t.entries.len() <= 2 * MIN_HOLES_TO_COMPACT + 2);
        }
        assert_eq!(t.len(), 1);
        assert!(done(&mut t, 0));
        assert!(t.is_empty());
    }

    #[test]
    fn a_late_insert_keeps_the_order() {
        let mut t = SendTable::default();
        t.insert(1, SendSlot::Waiting(None));
        t.insert(3, SendSlot::Waiting(None));
        t.insert(2, SendSlot::Waiting(None));
        let order: Vec<u64> = t.entries.iter().map(|e| e.id).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert!(done(&mut t, 2));
        assert!(done(&mut t, 1));
        assert!(done(&mut t, 3));
        assert!(t.is_empty());
    }

    #[test]
    fn a_completion_after_a_dropped_receipt_finds_nothing() {
        let mut t = SendTable::default();
        for n in 10..20 {
            t.insert(n, SendSlot::Waiting(None));
        }
        assert!(done(&mut t, 15), "receipt dropped");
        assert!(!done(&mut t, 15), "its completion");
        for n in (10..20).filter(|n| *n != 15) {
            assert!(done(&mut t, n));
        }
        assert!(t.is_empty());
    }

    #[test]
    fn callbacks_are_taken_and_receipts_stay() {
        let mut t = SendTable::default();
        t.insert(0, SendSlot::Callback(Box::new(|_| {})));
        t.insert(1, SendSlot::Waiting(None));
        t.insert(2, SendSlot::Done(Box::new(Err(SendError::ProducerClosed))));
        t.insert(3, SendSlot::Callback(Box::new(|_| {})));
        assert_eq!(t.uncompleted(), vec![0, 1, 3]);
        assert_eq!(t.take_callbacks().len(), 2);
        assert_eq!(t.len(), 2);
        assert!(matches!(t.get_mut(2), Some(SendSlot::Done(_))));
        assert!(matches!(t.get_mut(1), Some(SendSlot::Waiting(None))));
        assert!(t.get_mut(0).is_none());
    }
}
