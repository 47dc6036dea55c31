//! The consumers' tables (wire consumers, groups): a [`DeadlineMap`] whose entries are marked
//! when borrowed mutably and refiled together by [`Table::refresh`].
//!
//! The consumer code borrows entries through `Option` combinators (`get_mut(..).and_then(..)`),
//! where the map's refile-on-drop guard cannot go; so a mutable borrow here marks the entry, and
//! the consumer set refreshes the marked entries after every operation. The index itself (and its
//! check against a full scan in debug builds) is the shared [`DeadlineMap`]'s.

use std::time::Instant;

use crate::deadline_map::{DeadlineMap, NextTimeout};
use crate::handle::ConsumerId;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Table<T> {
    map: DeadlineMap<ConsumerId, T>,
    /// Entries borrowed mutably since the last refresh (may repeat).
    dirty: Vec<ConsumerId>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            map: DeadlineMap::default(),
            dirty: Vec::new(),
        }
    }
}

impl<T: NextTimeout> Table<T> {
    pub(super) fn get(&self, id: &ConsumerId) -> Option<&T> {
        self.map.get(id)
    }

    /// The entry, marked for a deadline refresh.
    pub(super) fn get_mut(&mut self, id: &ConsumerId) -> Option<&mut T> {
        let e = self.map.get_mut_untracked(id)?;
        if self.dirty.last() != Some(id) {
            self.dirty.push(*id);
        }
        Some(e)
    }

    /// The entry, *not* marked: only for changes no deadline depends on (the receiver queue).
    pub(super) fn get_mut_untimed(&mut self, id: &ConsumerId) -> Option<&mut T> {
        self.map.get_mut_untracked(id)
    }

    pub(super) fn insert(&mut self, id: ConsumerId, value: T) {
        self.map.insert(id, value);
    }

    pub(super) fn remove(&mut self, id: &ConsumerId) -> Option<T> {
        self.map.remove(id)
    }

    pub(super) fn contains_key(&self, id: &ConsumerId) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.map.values()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ConsumerId> {
        self.map.keys()
    }

    /// Runs `f` on the entry and refiles its deadline at once (one lookup; for the per-message
    /// paths).
    pub(super) fn modify<R>(&mut self, id: &ConsumerId, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.map.modify(id, f)
    }

    /// Refiles the deadlines of the entries borrowed mutably since the last refresh.
    pub(super) fn refresh(&mut self) {
        while let Some(id) = self.dirty.pop() {
            // (An entry removed since was unfiled then.)
            self.map.modify(&id, |_| ());
        }
        // Keep the buffer (no allocation per operation), but not a burst's worth of it.
        if self.dirty.capacity() > 64 {
            self.dirty = Vec::new();
        }
    }

    /// The earliest deadline (refresh first).
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        debug_assert!(self.dirty.is_empty(), "deadlines read before a refresh");
        self.map.next_timeout()
    }

    /// The entries whose deadline is at or before `now`, in id order (refresh first).
    pub(super) fn due(&self, now: Instant) -> Vec<ConsumerId> {
        debug_assert!(self.dirty.is_empty(), "due entries read before a refresh");
        self.map.due(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct T(Option<Instant>);

    impl NextTimeout for T {
        fn next_timeout(&self) -> Option<Instant> {
            self.0
        }
    }

    fn id(n: u64) -> ConsumerId {
        ConsumerId(n)
    }

    #[test]
    fn index_follows_changes_and_removals() {
        let now = Instant::now();
        let s = Duration::from_secs(1);
        let mut t: Table<T> = Table::default();
        t.insert(id(1), T(Some(now + 3 * s)));
        t.insert(id(2), T(None));
        t.insert(id(3), T(Some(now + 3 * s)));
        t.refresh();
        assert_eq!(t.next_timeout(), Some(now + 3 * s));
        assert_eq!(t.due(now + 3 * s), vec![id(1), id(3)]);
        t.get_mut(&id(2)).unwrap().0 = Some(now + s);
        t.refresh();
        assert_eq!(t.next_timeout(), Some(now + s));
        assert_eq!(t.due(now + 2 * s), vec![id(2)]);
        t.remove(&id(2));
        t.get_mut(&id(1)).unwrap().0 = None;
        t.refresh();
        assert_eq!(t.next_timeout(), Some(now + 3 * s));
        assert_eq!(t.due(now + 9 * s), vec![id(3)]);
        t.remove(&id(3));
        assert_eq!(t.next_timeout(), None);
        assert_eq!(t.keys().copied().collect::<Vec<_>>(), vec![id(1)]);
    }

    #[test]
    fn many_changes_match_a_full_scan() {
        // a deterministic walk of inserts, changes and removals; every read is checked against a
        // full scan by the debug assertions
        let now = Instant::now();
        let mut t: Table<T> = Table::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = id(x % 50 + 1);
            let at = (x % 3 != 0).then(|| now + Duration::from_millis((x >> 8) % 100));
            match (x >> 20) % 4 {
                0 => t.insert(k, T(at)),
                1 => {
                    t.remove(&k);
                }
                _ => {
                    if let Some(v) = t.get_mut(&k) {
                        v.0 = at;
                    }
                }
            }
            t.refresh();
            let _ = t.next_timeout();
            let _ = t.due(now + Duration::from_millis(50));
        }
    }
}
