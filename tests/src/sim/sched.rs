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

/// The one pending timer of a simulated client core, as a runtime adapter keeps it: the deadline
/// it is armed for and the arming's number. A re-armed timer leaves its earlier event in the
/// scheduler; that event fires with an old number and is ignored.
#[derive(Debug, Default)]
pub struct CoreTimer {
    at: Option<Duration>,
    generation: u64,
}

impl CoreTimer {
    /// Follows the core's `poll_timeout` (`deadline`, as time since the run's start): the new
    /// arming's time and number when an event must be scheduled (the deadline changed), else
    /// nothing. No deadline disarms the timer.
    pub fn arm(&mut self, deadline: Option<Duration>) -> Option<(Duration, u64)> {
        match deadline {
            Some(t) if self.at != Some(t) => {
                self.generation += 1;
                self.at = Some(t);
                Some((t, self.generation))
            }
            Some(_) => None,
            None => {
                self.at = None;
                None
            }
        }
    }

    /// Whether a timer event of arming `generation` is the current one; if so the timer is
    /// disarmed (the caller hands the time to the core).
    pub fn fire(&mut self, generation: u64) -> bool {
        if self.generation != generation {
            return false;
        }
        self.at = None;
        true
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

    #[test]
    fn core_timer_schedules_only_changed_deadlines_and_ignores_stale_events() {
        let mut t = CoreTimer::default();
        let (ms1, ms2) = (Duration::from_millis(1), Duration::from_millis(2));
        assert_eq!(t.arm(Some(ms1)), Some((ms1, 1)));
        assert_eq!(t.arm(Some(ms1)), None);
        assert_eq!(t.arm(Some(ms2)), Some((ms2, 2)));
        assert!(!t.fire(1));
        assert!(t.fire(2));
        assert_eq!(
            t.arm(Some(ms2)),
            Some((ms2, 3)),
            "a fired timer is armed anew"
        );
        assert_eq!(t.arm(None), None);
        assert_eq!(
            t.arm(Some(ms2)),
            Some((ms2, 4)),
            "a disarmed timer is armed anew"
        );
    }
}
