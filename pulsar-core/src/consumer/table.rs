//! The consumers' tables (wire consumers, groups) with their deadlines kept in order.
//!
//! `Client::poll_timeout` runs after every application call, so the next deadline must not cost a
//! scan of every consumer. Each table keeps an ordered index of `(deadline, id)`; whatever is
//! borrowed mutably ([`Table::get_mut`], [`Table::insert`]) is marked, and [`Table::refresh`]
//! recomputes the deadlines of the marked entries (the consumer set refreshes after every
//! operation). Entries are boxed: an idle consumer then costs a pointer in the map's nodes rather
//! than its whole state times the nodes' spare room.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::handle::ConsumerId;

/// Something with an optional next deadline.
pub(super) trait Timed {
    /// When it next needs the clock, if ever.
    fn next_timeout(&self) -> Option<Instant>;
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Table<T> {
    map: BTreeMap<ConsumerId, Box<Slot<T>>>,
    /// Every indexed deadline, in order (ties by id: deterministic).
    order: BTreeSet<(Instant, ConsumerId)>,
    /// Entries borrowed mutably since the last refresh (may repeat).
    dirty: Vec<ConsumerId>,
}

/// An entry and the deadline it is indexed under.
#[derive(Debug)]
struct Slot<T> {
    value: T,
    indexed: Option<Instant>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            map: BTreeMap::new(),
            order: BTreeSet::new(),
            dirty: Vec::new(),
        }
    }
}

impl<T: Timed> Table<T> {
    pub(super) fn get(&self, id: &ConsumerId) -> Option<&T> {
        self.map.get(id).map(|b| &b.value)
    }

    /// The entry, marked for a deadline refresh.
    pub(super) fn get_mut(&mut self, id: &ConsumerId) -> Option<&mut T> {
        let e = self.map.get_mut(id)?;
        if self.dirty.last() != Some(id) {
            self.dirty.push(*id);
        }
        Some(&mut e.value)
    }

    /// The entry, *not* marked: only for changes no deadline depends on (the receiver queue).
    pub(super) fn get_mut_untimed(&mut self, id: &ConsumerId) -> Option<&mut T> {
        self.map.get_mut(id).map(|b| &mut b.value)
    }

    pub(super) fn insert(&mut self, id: ConsumerId, value: T) {
        let slot = Box::new(Slot {
            value,
            indexed: None,
        });
        if let Some(old) = self.map.insert(id, slot) {
            if let Some(at) = old.indexed {
                self.order.remove(&(at, id));
            }
        }
        self.dirty.push(id);
    }

    pub(super) fn remove(&mut self, id: &ConsumerId) -> Option<T> {
        let slot = self.map.remove(id)?;
        if let Some(at) = slot.indexed {
            self.order.remove(&(at, *id));
        }
        Some(slot.value)
    }

    pub(super) fn contains_key(&self, id: &ConsumerId) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.map.values().map(|b| &b.value)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &ConsumerId> {
        self.map.keys()
    }

    /// Runs `f` on the entry and updates its deadline at once (one lookup; for the per-message
    /// paths).
    pub(super) fn modify<R>(&mut self, id: &ConsumerId, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let slot = self.map.get_mut(id)?;
        let r = f(&mut slot.value);
        Self::reindex(&mut self.order, *id, slot);
        Some(r)
    }

    #[inline]
    fn reindex(order: &mut BTreeSet<(Instant, ConsumerId)>, id: ConsumerId, slot: &mut Slot<T>) {
        let new = slot.value.next_timeout();
        if new == slot.indexed {
            return;
        }
        if let Some(at) = slot.indexed {
            order.remove(&(at, id));
        }
        if let Some(at) = new {
            order.insert((at, id));
        }
        slot.indexed = new;
    }

    /// Recomputes the deadlines of the entries borrowed mutably since the last refresh.
    pub(super) fn refresh(&mut self) {
        while let Some(id) = self.dirty.pop() {
            if let Some(slot) = self.map.get_mut(&id) {
                Self::reindex(&mut self.order, id, slot);
            } // else: removed since (and unindexed then)
        }
        // keep the buffer (no allocation per operation), but not a burst's worth of it
        if self.dirty.capacity() > 64 {
            self.dirty = Vec::new();
        }
    }

    /// The earliest deadline. Exact once refreshed; debug builds compare it with a full scan.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let next = self.order.first().map(|(at, _)| *at);
        debug_assert!(self.dirty.is_empty(), "deadlines read before a refresh");
        debug_assert_eq!(
            next,
            self.map
                .values()
                .filter_map(|v| v.value.next_timeout())
                .min(),
            "the deadline index disagrees with a full scan"
        );
        next
    }

    /// The entries whose deadline is at or before `now`, in id order (refresh first).
    pub(super) fn due(&self, now: Instant) -> Vec<ConsumerId> {
        let mut ids: Vec<ConsumerId> = self
            .order
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        debug_assert_eq!(
            ids,
            self.map
                .iter()
                .filter(|(_, v)| v.value.next_timeout().is_some_and(|t| t <= now))
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            "the due entries disagree with a full scan"
        );
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug)]
    struct T(Option<Instant>);

    impl Timed for T {
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
        assert!(t.order.is_empty());
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
