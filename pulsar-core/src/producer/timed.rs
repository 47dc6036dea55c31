//! A map of producers (wire or application) indexed by their next deadline, so that the client's
//! next timeout is the first entry of an ordered set instead of a scan of every producer.
//!
//! Each value is boxed with the deadline it is filed under (the map's nodes stay small: an id and
//! a pointer per entry). Mutable access goes through [`Tracked`],
//! which recomputes the value's deadline when it is dropped and refiles it only when it changed:
//! every mutation is covered, so the index is always exact, and a send that leaves the deadline
//! where it was costs a comparison. Iteration is in id order (deterministic).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use crate::handle::ProducerId;

/// A value with a deadline of its own.
pub(super) trait Deadline {
    /// When the value wants `handle_timeout`, if ever. Must depend on the value only.
    fn next_timeout(&self) -> Option<Instant>;
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    /// The deadline the value is filed under in `timers`.
    timer: Option<Instant>,
}

/// Values by id, with the set of their deadlines.
#[derive(Debug)]
pub(super) struct Timed<T> {
    map: BTreeMap<ProducerId, Box<Slot<T>>>,
    timers: BTreeSet<(Instant, ProducerId)>,
}

impl<T> Default for Timed<T> {
    fn default() -> Self {
        Timed {
            map: BTreeMap::new(),
            timers: BTreeSet::new(),
        }
    }
}

/// Mutable access to one value; its deadline is refiled when this is dropped.
pub(super) struct Tracked<'a, T: Deadline> {
    id: ProducerId,
    slot: &'a mut Slot<T>,
    timers: &'a mut BTreeSet<(Instant, ProducerId)>,
}

impl<T: Deadline> Deref for Tracked<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.slot.value
    }
}

impl<T: Deadline> DerefMut for Tracked<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.slot.value
    }
}

impl<T: Deadline> Drop for Tracked<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let now = self.slot.value.next_timeout();
        if now != self.slot.timer {
            refile(self.timers, self.id, self.slot.timer, now);
            self.slot.timer = now;
        }
    }
}

fn refile(
    timers: &mut BTreeSet<(Instant, ProducerId)>,
    id: ProducerId,
    old: Option<Instant>,
    new: Option<Instant>,
) {
    if let Some(t) = old {
        timers.remove(&(t, id));
    }
    if let Some(t) = new {
        timers.insert((t, id));
    }
}

impl<T: Deadline> Timed<T> {
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn contains_key(&self, id: &ProducerId) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn get(&self, id: &ProducerId) -> Option<&T> {
        self.map.get(id).map(|s| &s.value)
    }

    /// Mutable access; the deadline is refiled when the returned guard is dropped.
    #[inline]
    pub(super) fn get_mut(&mut self, id: &ProducerId) -> Option<Tracked<'_, T>> {
        let slot = self.map.get_mut(id)?;
        Some(Tracked {
            id: *id,
            slot,
            timers: &mut self.timers,
        })
    }

    /// Adds (or replaces) a value.
    pub(super) fn insert(&mut self, id: ProducerId, value: T) {
        let timer = value.next_timeout();
        let slot = Box::new(Slot { value, timer });
        let old = self.map.insert(id, slot).and_then(|s| s.timer);
        refile(&mut self.timers, id, old, timer);
    }

    pub(super) fn remove(&mut self, id: &ProducerId) -> Option<T> {
        let slot = self.map.remove(id)?;
        if let Some(t) = slot.timer {
            self.timers.remove(&(t, *id));
        }
        Some(slot.value)
    }

    /// Ids in increasing order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &ProducerId> {
        self.map.keys()
    }

    /// Values in id order.
    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.map.values().map(|s| &s.value)
    }

    /// The earliest deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The ids whose deadline is `now` or earlier, in increasing id order.
    pub(super) fn due(&self, now: Instant) -> Vec<ProducerId> {
        let mut due: Vec<ProducerId> = self
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect();
        due.sort_unstable();
        due
    }

    /// The earliest deadline found by asking every value (what the index must agree with).
    pub(super) fn scan(&self) -> Option<Instant> {
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

    impl Deadline for At {
        fn next_timeout(&self) -> Option<Instant> {
            self.0
        }
    }

    #[test]
    fn the_index_follows_every_change_and_agrees_with_a_scan() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let mut m: Timed<At> = Timed::default();
        m.insert(ProducerId(3), At(at(30)));
        m.insert(ProducerId(1), At(None));
        m.insert(ProducerId(2), At(at(20)));
        assert_eq!(m.next_timeout(), at(20));
        assert_eq!(m.next_timeout(), m.scan());
        if let Some(mut v) = m.get_mut(&ProducerId(1)) {
            v.0 = at(10);
        }
        assert_eq!(m.next_timeout(), at(10));
        assert_eq!(
            m.due(t0 + Duration::from_millis(25)),
            [1, 2].map(ProducerId)
        );
        if let Some(mut v) = m.get_mut(&ProducerId(1)) {
            v.0 = None;
        }
        assert_eq!(m.next_timeout(), at(20));
        m.remove(&ProducerId(2));
        assert_eq!(m.next_timeout(), at(30));
        m.insert(ProducerId(3), At(at(40)));
        assert_eq!(m.next_timeout(), at(40));
        assert_eq!(m.next_timeout(), m.scan());
        m.remove(&ProducerId(3));
        assert_eq!(m.next_timeout(), None);
        assert_eq!(m.scan(), None);
        assert!(m.timers.is_empty());
    }
}
