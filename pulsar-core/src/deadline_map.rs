//! A map of timed values (producers, consumers, groups) indexed by their next deadline, so that
//! the client's next timeout is the first entry of an ordered set, not a scan of every value.
//!
//! `Client::poll_timeout` runs after every input, so it must stay cheap with thousands of idle
//! producers and consumers. Each value is boxed with the deadline it is filed under (the map's
//! nodes stay small: a key and a pointer per entry, whatever the value's size).
//!
//! Mutable access goes through a [`Tracked`] guard, which asks the value for its deadline when it
//! is dropped and refiles it only when it changed: every mutation is covered, so the index is
//! always exact, and a change that leaves the deadline where it was costs one comparison.
//! [`DeadlineMap::get_mut_untracked`] is the one way around the guard, for changes no deadline
//! depends on. Iteration is in key order and ties between equal deadlines are broken by key, so
//! everything the map hands out is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

/// A value with a deadline of its own.
pub(crate) trait NextTimeout {
    /// When the value next needs `handle_timeout`, if ever. Must depend on the value only.
    fn next_timeout(&self) -> Option<Instant>;
}

/// Values by key, with the ordered set of their deadlines. See the module documentation.
#[derive(Debug)]
pub(crate) struct DeadlineMap<K, V> {
    map: BTreeMap<K, Box<Slot<V>>>,
    /// Every filed deadline, in order (ties by key).
    timers: BTreeSet<(Instant, K)>,
}

/// A value and the deadline it is filed under.
#[derive(Debug)]
struct Slot<V> {
    value: V,
    filed: Option<Instant>,
}

impl<K, V> Default for DeadlineMap<K, V> {
    fn default() -> Self {
        DeadlineMap {
            map: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
    }
}

/// Mutable access to one value; its deadline is refiled when the guard is dropped.
pub(crate) struct Tracked<'a, K: Ord + Copy, V: NextTimeout> {
    key: K,
    slot: &'a mut Slot<V>,
    timers: &'a mut BTreeSet<(Instant, K)>,
}

impl<K: Ord + Copy, V: NextTimeout> Deref for Tracked<'_, K, V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.slot.value
    }
}

impl<K: Ord + Copy, V: NextTimeout> DerefMut for Tracked<'_, K, V> {
    fn deref_mut(&mut self) -> &mut V {
        &mut self.slot.value
    }
}

impl<K: Ord + Copy, V: NextTimeout> Drop for Tracked<'_, K, V> {
    #[inline]
    fn drop(&mut self) {
        refile(self.timers, self.key, self.slot);
    }
}

/// Files `slot` under its value's current deadline (a comparison when it did not move).
#[inline]
fn refile<K: Ord + Copy, V: NextTimeout>(
    timers: &mut BTreeSet<(Instant, K)>,
    key: K,
    slot: &mut Slot<V>,
) {
    let next = slot.value.next_timeout();
    if next == slot.filed {
        return;
    }
    if let Some(at) = slot.filed {
        timers.remove(&(at, key));
    }
    if let Some(at) = next {
        timers.insert((at, key));
    }
    slot.filed = next;
}

impl<K: Ord + Copy, V: NextTimeout> DeadlineMap<K, V> {
    /// Whether the map is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `key` has a value.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// Mutable access to the value of `key`; its deadline is refiled when the guard is dropped.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<Tracked<'_, K, V>> {
        let slot = self.map.get_mut(key)?;
        Some(Tracked {
            key: *key,
            slot,
            timers: &mut self.timers,
        })
    }

    /// Mutable access that does *not* refile the deadline: only for changes that no deadline
    /// depends on (a consumer's receiver queue on the per-message path).
    pub(crate) fn get_mut_untracked(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key).map(|s| &mut s.value)
    }

    /// Runs `f` on the value of `key` and refiles its deadline (one lookup, for the
    /// per-message paths).
    #[inline]
    pub(crate) fn modify<R>(&mut self, key: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let slot = self.map.get_mut(key)?;
        let r = f(&mut slot.value);
        refile(&mut self.timers, *key, slot);
        Some(r)
    }

    /// Adds (or replaces) the value of `key`.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if let Some(old) = self.map.remove(&key) {
            if let Some(at) = old.filed {
                self.timers.remove(&(at, key));
            }
        }
        let mut slot = Box::new(Slot { value, filed: None });
        refile(&mut self.timers, key, &mut slot);
        self.map.insert(key, slot);
    }

    /// Removes the value of `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        if let Some(at) = slot.filed {
            self.timers.remove(&(at, *key));
        }
        Some(slot.value)
    }

    /// The keys, in increasing order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    /// The values, in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values().map(|s| &s.value)
    }

    /// The earliest deadline. Debug builds check it against a scan of every value.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let next = self.timers.first().map(|(at, _)| *at);
        debug_assert_eq!(
            next,
            self.scan(),
            "the deadline index disagrees with a scan of the values"
        );
        next
    }

    /// The keys whose deadline is `now` or earlier, in increasing key order. Debug builds check
    /// them against a scan of every value.
    pub(crate) fn due(&self, now: Instant) -> Vec<K> {
        let mut due: Vec<K> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| *key)
            .collect();
        due.sort_unstable();
        debug_assert!(
            due.iter().copied().eq(self
                .map
                .iter()
                .filter(|(_, s)| s.value.next_timeout().is_some_and(|at| at <= now))
                .map(|(key, _)| *key)),
            "the due keys disagree with a scan of the values"
        );
        due
    }

    /// The earliest deadline found by asking every value (what the index must agree with).
    fn scan(&self) -> Option<Instant> {
        self.map
            .values()
            .filter_map(|s| s.value.next_timeout())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct At(Option<Instant>);

    impl NextTimeout for At {
        fn next_timeout(&self) -> Option<Instant> {
            self.0
        }
    }

    #[test]
    fn the_index_follows_every_change_and_agrees_with_a_scan() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let mut m: DeadlineMap<u64, At> = DeadlineMap::default();
        m.insert(3, At(at(30)));
        m.insert(1, At(None));
        m.insert(2, At(at(20)));
        assert_eq!(m.next_timeout(), at(20));
        if let Some(mut v) = m.get_mut(&1) {
            v.0 = at(10);
        }
        assert_eq!(m.next_timeout(), at(10));
        assert_eq!(m.due(t0 + Duration::from_millis(25)), [1, 2]);
        m.modify(&1, |v| v.0 = None);
        assert_eq!(m.next_timeout(), at(20));
        m.remove(&2);
        assert_eq!(m.next_timeout(), at(30));
        m.insert(3, At(at(40)));
        assert_eq!(m.next_timeout(), at(40));
        m.remove(&3);
        assert_eq!(m.next_timeout(), None);
        assert!(m.timers.is_empty());
    }

    #[test]
    fn equal_deadlines_are_due_in_key_order() {
        let t0 = Instant::now();
        let mut m: DeadlineMap<u64, At> = DeadlineMap::default();
        for key in [5, 1, 3] {
            m.insert(key, At(Some(t0)));
        }
        assert_eq!(m.due(t0), [1, 3, 5]);
        assert!(m.due(t0 - Duration::from_millis(1)).is_empty());
    }

    #[test]
    fn a_long_walk_of_changes_matches_a_scan() {
        // A deterministic walk of inserts, changes and removals; every read is checked against a
        // full scan by the debug assertion in `next_timeout`, and `due` here.
        let t0 = Instant::now();
        let mut m: DeadlineMap<u64, At> = DeadlineMap::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = x % 50 + 1;
            let at = (x % 3 != 0).then(|| t0 + Duration::from_millis((x >> 8) % 100));
            match (x >> 20) % 4 {
                0 => m.insert(key, At(at)),
                1 => {
                    m.remove(&key);
                }
                2 => {
                    m.modify(&key, |v| v.0 = at);
                }
                _ => {
                    if let Some(mut v) = m.get_mut(&key) {
                        v.0 = at;
                    }
                }
            }
            let _ = m.next_timeout();
            let horizon = t0 + Duration::from_millis(50);
            let scanned: Vec<u64> = m
                .map
                .iter()
                .filter(|(_, s)| s.value.next_timeout().is_some_and(|t| t <= horizon))
                .map(|(k, _)| *k)
                .collect();
            assert_eq!(m.due(horizon), scanned);
        }
    }
}
