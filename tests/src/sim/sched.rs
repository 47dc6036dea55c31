//! The discrete-event scheduler: a min-heap of events keyed by (time, insertion number), so time only
//! moves from event to event and ties resolve in insertion order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

#[derive(Debug)]
struct Scheduled<E> {
    at: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    /// Reversed: the earliest (then first inserted) event is the heap's maximum.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events of type `E` ordered by time, then by the order they were scheduled.
#[derive(Debug)]
pub struct Scheduler<E> {
    heap: BinaryHeap<Scheduled<E>>,
    seq: u64,
    now: Duration,
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Scheduler {
            heap: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
        }
    }
}

impl<E> Scheduler<E> {
    /// The current simulated time (the time of the last event popped).
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Schedules `event` at `at` (clamped to now: the past cannot be scheduled).
    pub fn at(&mut self, at: Duration, event: E) {
        let at = at.max(self.now);
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    /// Schedules `event` after `delay`.
    pub fn after(&mut self, delay: Duration, event: E) {
        self.at(self.now + delay, event);
    }

    /// Takes the next event and advances time to it.
    pub fn pop(&mut self) -> Option<(Duration, E)> {
        let s = self.heap.pop()?;
        self.now = s.at;
        Some((s.at, s.event))
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_insertion_order() {
        let mut s = Scheduler::default();
        s.at(Duration::from_millis(5), "c");
        s.at(Duration::from_millis(1), "a");
        s.at(Duration::from_millis(5), "d");
        s.at(Duration::from_millis(1), "b");
        let order: Vec<&str> = std::iter::from_fn(|| s.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
        assert_eq!(s.now(), Duration::from_millis(5));
        s.at(Duration::ZERO, "past");
        assert_eq!(s.pop(), Some((Duration::from_millis(5), "past")));
    }
}
