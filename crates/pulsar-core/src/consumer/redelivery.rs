//! Timers that give messages back to the broker: negative acknowledgements (redelivered after a
//! delay, optionally growing with the redelivery count) and the ack timeout (messages handed to the
//! application but not acknowledged in time). Both work on whole entries, as the broker redelivers
//! entries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use super::acks::Entry;
use super::options::RedeliveryBackoff;

/// Negatively acknowledged entries and when to redeliver them.
#[derive(Debug)]
pub(crate) struct NackTracker {
    delay: Duration,
    backoff: Option<RedeliveryBackoff>,
    due: BTreeSet<(Instant, Entry)>,
    by_entry: BTreeMap<Entry, Instant>,
}

impl NackTracker {
    pub(crate) fn new(delay: Duration, backoff: Option<RedeliveryBackoff>) -> Self {
        NackTracker {
            delay,
            backoff,
            due: BTreeSet::new(),
            by_entry: BTreeMap::new(),
        }
    }

    /// Schedules `entry` for redelivery; the later of two nacks of one entry wins.
    pub(crate) fn add(&mut self, now: Instant, entry: Entry, redelivery_count: u32) {
        let delay = match &self.backoff {
            Some(b) => b.delay(redelivery_count),
            None => self.delay,
        };
        let at = now + delay;
        if let Some(old) = self.by_entry.insert(entry, at) {
            self.due.remove(&(old, entry));
        }
        self.due.insert((at, entry));
    }

    pub(crate) fn remove(&mut self, entry: Entry) {
        if let Some(at) = self.by_entry.remove(&entry) {
            self.due.remove(&(at, entry));
        }
    }

    /// Forgets every entry up to `floor` (cumulatively acknowledged).
    pub(crate) fn remove_through(&mut self, floor: Entry) {
        let gone: Vec<Entry> = self.by_entry.range(..=floor).map(|(e, _)| *e).collect();
        for e in gone {
            self.remove(e);
        }
    }

    /// Entries whose delay is over.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Entry> {
        let mut out = Vec::new();
        while let Some(&(at, entry)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            self.by_entry.remove(&entry);
            out.push(entry);
        }
        out
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.due.first().map(|d| d.0)
    }

    pub(crate) fn clear(&mut self) {
        self.due.clear();
        self.by_entry.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_entry.len()
    }
}

/// Entries handed to the application and not yet acknowledged, with their ack deadline.
#[derive(Debug)]
pub(crate) struct UnackedTracker {
    timeout: Option<Duration>,
    /// In deadline order (entries are added as time goes on); stale items are skipped lazily.
    order: VecDeque<(Instant, Entry)>,
    live: BTreeMap<Entry, Instant>,
}

impl UnackedTracker {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        UnackedTracker {
            timeout: timeout.filter(|t| !t.is_zero()),
            order: VecDeque::new(),
            live: BTreeMap::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.timeout.is_some()
    }

    /// Starts the timer of `entry` (no-op if it runs already or the ack timeout is off).
    pub(crate) fn add(&mut self, now: Instant, entry: Entry) {
        let Some(t) = self.timeout else { return };
        if self.live.contains_key(&entry) {
            return;
        }
        let at = now + t;
        self.live.insert(entry, at);
        self.order.push_back((at, entry));
    }

    pub(crate) fn remove(&mut self, entry: Entry) {
        if self.live.remove(&entry).is_some() {
            self.prune();
        }
    }

    /// Forgets every entry up to `floor` (cumulatively acknowledged).
    pub(crate) fn remove_through(&mut self, floor: Entry) {
        self.live = self.live.split_off(&(floor.0, floor.1.saturating_add(1)));
        self.prune();
    }

    fn prune(&mut self) {
        while let Some(&(at, entry)) = self.order.front() {
            if self.live.get(&entry) == Some(&at) {
                break;
            }
            self.order.pop_front();
        }
    }

    /// Entries whose ack deadline passed (their timers stop).
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Entry> {
        let mut out = Vec::new();
        self.prune();
        while let Some(&(at, entry)) = self.order.front() {
            if at > now {
                break;
            }
            self.order.pop_front();
            if self.live.get(&entry) == Some(&at) {
                self.live.remove(&entry);
                out.push(entry);
            }
            self.prune();
        }
        out
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.order.front().map(|o| o.0)
    }

    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.live.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
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
        let mut t = NackTracker::new(Duration::from_secs(60), Some(b));
        t.add(now, (1, 1), 0);
        t.add(now, (1, 2), 3);
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
