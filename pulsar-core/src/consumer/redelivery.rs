//! Timers that give messages back to the broker: negative acknowledgements (redelivered after a
//! delay, optionally growing with the redelivery count) and the ack timeout (messages handed to the
//! application but not acknowledged in time). Both work on whole entries, as the broker redelivers
//! entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::acks::Entry;
use super::options::RedeliveryBackoff;
use crate::time;

/// Negatively acknowledged entries and when to redeliver them. Holds nothing until the first
/// negative acknowledgement (most consumers never send one), and frees its state when empty.
#[derive(Debug, Default)]
pub(crate) struct NackTracker {
    state: Option<Box<NackState>>,
}

#[derive(Debug, Default)]
struct NackState {
    due: BTreeSet<(Instant, Entry)>,
    by_entry: BTreeMap<Entry, Instant>,
}

impl NackTracker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Schedules `entry` for redelivery after `delay` (or `backoff`'s delay for the redelivery
    /// count); the later of two nacks of one entry wins.
    pub(crate) fn add(
        &mut self,
        now: Instant,
        entry: Entry,
        redelivery_count: u32,
        delay: Duration,
        backoff: Option<&RedeliveryBackoff>,
    ) {
        let delay = match backoff {
            Some(b) => b.delay(redelivery_count),
            None => delay,
        };
        let at = time::after(now, delay);
        let st = self.state.get_or_insert_with(Default::default);
        if let Some(old) = st.by_entry.insert(entry, at) {
            st.due.remove(&(old, entry));
        }
        st.due.insert((at, entry));
    }

    pub(crate) fn remove(&mut self, entry: Entry) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        if let Some(at) = st.by_entry.remove(&entry) {
            st.due.remove(&(at, entry));
        }
        self.free_if_empty();
    }

    /// Forgets every entry up to `floor` (cumulatively acknowledged).
    pub(crate) fn remove_through(&mut self, floor: Entry) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        let gone: Vec<Entry> = st.by_entry.range(..=floor).map(|(e, _)| *e).collect();
        for e in gone {
            if let Some(at) = st.by_entry.remove(&e) {
                st.due.remove(&(at, e));
            }
        }
        self.free_if_empty();
    }

    /// Entries whose delay is over.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Entry> {
        let mut out = Vec::new();
        let Some(st) = self.state.as_mut() else {
            return out;
        };
        while let Some(&(at, entry)) = st.due.first() {
            if at > now {
                break;
            }
            st.due.pop_first();
            st.by_entry.remove(&entry);
            out.push(entry);
        }
        self.free_if_empty();
        out
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.state.as_ref()?.due.first().map(|d| d.0)
    }

    pub(crate) fn clear(&mut self) {
        self.state = None;
    }

    fn free_if_empty(&mut self) {
        if self.state.as_ref().is_some_and(|st| st.by_entry.is_empty()) {
            self.state = None;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.as_ref().map_or(0, |st| st.by_entry.len())
    }
}

/// Entries handed to the application and not yet acknowledged, with their ack deadline. Holds
/// nothing but the timeout until the first entry.
#[derive(Debug)]
pub(crate) struct UnackedTracker {
    timeout: Option<Duration>,
    state: Option<Box<UnackedState>>,
}

#[derive(Debug, Default)]
struct UnackedState {
    /// In deadline order (entries are added as time goes on); stale items are skipped lazily.
    order: VecDeque<(Instant, Entry)>,
    live: BTreeMap<Entry, Instant>,
}

impl UnackedState {
    fn prune(&mut self) {
        while let Some(&(at, entry)) = self.order.front() {
            if self.live.get(&entry) == Some(&at) {
                break;
            }
            self.order.pop_front();
        }
    }
}

impl UnackedTracker {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        UnackedTracker {
            timeout: timeout.filter(|t| !t.is_zero()),
            state: None,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.timeout.is_some()
    }

    /// Starts the timer of `entry` (no-op if it runs already or the ack timeout is off).
    pub(crate) fn add(&mut self, now: Instant, entry: Entry) {
        let Some(t) = self.timeout else { return };
        let st = self.state.get_or_insert_with(Default::default);
        if st.live.contains_key(&entry) {
            return;
        }
        let at = time::after(now, t);
        st.live.insert(entry, at);
        st.order.push_back((at, entry));
    }

    pub(crate) fn remove(&mut self, entry: Entry) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        if st.live.remove(&entry).is_some() {
            st.prune();
            self.free_if_empty();
        }
    }

    /// Forgets every entry up to `floor` (cumulatively acknowledged).
    pub(crate) fn remove_through(&mut self, floor: Entry) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        st.live = st.live.split_off(&(floor.0, floor.1.saturating_add(1)));
        st.prune();
        self.free_if_empty();
    }

    /// Entries whose ack deadline passed (their timers stop).
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Entry> {
        let mut out = Vec::new();
        let Some(st) = self.state.as_mut() else {
            return out;
        };
        st.prune();
        while let Some(&(at, entry)) = st.order.front() {
            if at > now {
                break;
            }
            st.order.pop_front();
            if st.live.get(&entry) == Some(&at) {
                st.live.remove(&entry);
                out.push(entry);
            }
            st.prune();
        }
        self.free_if_empty();
        out
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.state.as_ref()?.order.front().map(|o| o.0)
    }

    pub(crate) fn clear(&mut self) {
        self.state = None;
    }

    /// Frees the state once nothing is tracked (`prune` has emptied the order queue then).
    fn free_if_empty(&mut self) {
        if self
            .state
            .as_ref()
            .is_some_and(|st| st.live.is_empty() && st.order.is_empty())
        {
            self.state = None;
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.as_ref().map_or(0, |st| st.live.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_backoff_grows_with_redelivery_count() {
        let now = Instant::now();
        let b = RedeliveryBackoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(2), Duration::from_secs(4));
        assert_eq!(b.delay(9), Duration::from_secs(10));
        let mut t = NackTracker::new();
        let (delay, b) = (Duration::from_secs(60), Some(&b));
        t.add(now, (1, 1), 0, delay, b);
        t.add(now, (1, 2), 3, delay, b);
        assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(1)));
        assert_eq!(t.take_due(now + Duration::from_secs(2)), vec![(1, 1)]);
        assert!(t.take_due(now + Duration::from_secs(7)).is_empty());
        assert_eq!(t.take_due(now + Duration::from_secs(8)), vec![(1, 2)]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn unacked_expire_in_order_and_skip_removed() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = UnackedTracker::new(Some(Duration::from_secs(10)));
        t.add(now, (1, 1));
        t.add(now + s, (1, 2));
        t.add(now + 2 * s, (1, 3));
        t.add(now + 3 * s, (1, 2)); // already tracked: keeps its deadline
        t.remove((1, 1));
        assert_eq!(t.next_timeout(), Some(now + 11 * s));
        assert!(t.take_expired(now + 10 * s).is_empty());
        assert_eq!(t.take_expired(now + 11 * s), vec![(1, 2)]);
        assert_eq!(t.take_expired(now + 12 * s), vec![(1, 3)]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_timeout(), None);
    }
}
