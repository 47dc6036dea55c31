//! A map kept as a sorted vector: the small per-consumer maps (a group's topics and wire
//! consumers, a topic's partitions) usually hold one entry, and a B-tree allocates a whole node
//! (room for eleven) for it. Iteration is in key order, as a B-tree's. Keys arrive mostly in
//! ascending order (fresh ids, partitions, sorted topic lists), which appends.

use std::borrow::Borrow;

/// See the module documentation.
#[derive(Debug, Clone)]
pub(super) struct VecMap<K, V> {
    items: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap { items: Vec::new() }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub(super) fn new() -> Self {
        Self::default()
    }

    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        // appends are the common case: check the end first
        match self.items.last() {
            Some((k, _)) if k.borrow() < key => Err(self.items.len()),
            _ => self.items.binary_search_by(|(k, _)| k.borrow().cmp(key)),
        }
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        self.items.get(i).map(|(_, v)| v)
    }

    pub(super) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        self.items.get_mut(i).map(|(_, v)| v)
    }

    pub(super) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }

    /// Inserts or replaces; returns the previous value.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => self
                .items
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.1, value)),
            Err(i) => {
                if self.items.capacity() == self.items.len() {
                    // grow by one at first (most maps stay at one entry), then geometrically
                    let extra = if self.items.is_empty() {
                        1
                    } else {
                        self.items.len()
                    };
                    self.items.reserve_exact(extra);
                }
                self.items.insert(i, (key, value));
                None
            }
        }
    }

    pub(super) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let i = self.find(key).ok()?;
        Some(self.items.remove(i).1)
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.items.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(super) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.items.iter().map(|(k, _)| k)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }

    pub(super) fn first_key(&self) -> Option<&K> {
        self.items.first().map(|(k, _)| k)
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// A set kept as a sorted vector (see [`VecMap`]).
#[derive(Debug, Clone, Default)]
pub(super) struct VecSet<K> {
    map: VecMap<K, ()>,
}

impl<K: Ord> VecSet<K> {
    pub(super) fn new() -> Self {
        VecSet { map: VecMap::new() }
    }

    /// Returns whether it was new.
    pub(super) fn insert(&mut self, key: K) -> bool {
        self.map.insert(key, ()).is_none()
    }

    pub(super) fn remove(&mut self, key: &K) -> bool {
        self.map.remove(key).is_some()
    }

    pub(super) fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub(super) fn first(&self) -> Option<&K> {
        self.map.first_key()
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.map.keys()
    }
}

impl<K> IntoIterator for VecSet<K> {
    type Item = K;
    type IntoIter = std::iter::Map<std::vec::IntoIter<(K, ())>, fn((K, ())) -> K>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.into_iter().map(|(k, ())| k)
    }
}

impl<'a, K: Ord> IntoIterator for &'a VecSet<K> {
    type Item = &'a K;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, ())>, fn(&'a (K, ())) -> &'a K>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.items.iter().map(|(k, ())| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_a_btree_map() {
        let mut m: VecMap<u32, u32> = VecMap::new();
        let mut b: BTreeMap<u32, u32> = BTreeMap::new();
        let mut x: u32 = 12345;
        for i in 0..3000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let k = (x >> 16) % 64;
            match i % 5 {
                0..=2 => assert_eq!(m.insert(k, i), b.insert(k, i)),
                3 => assert_eq!(m.remove(&k), b.remove(&k)),
                _ => {
                    m.retain(|k, _| k % 7 != 0);
                    b.retain(|k, _| k % 7 != 0);
                }
            }
            assert_eq!(m.get(&k), b.get(&k));
            assert_eq!(m.len(), b.len());
            assert!(m.iter().eq(b.iter()));
        }
    }

    #[test]
    fn one_entry_allocates_one_slot() {
        let mut m: VecMap<u64, u64> = VecMap::new();
        m.insert(1, 1);
        assert_eq!(m.items.capacity(), 1);
        let mut s: VecSet<u64> = VecSet::new();
        assert!(s.insert(3) && s.insert(1) && !s.insert(3));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(s.first(), Some(&1));
    }
}
