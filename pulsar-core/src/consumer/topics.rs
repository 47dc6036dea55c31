//! A group's topics, with what the group asks about them after every event kept up to date
//! incrementally: how many are still unresolved, the earliest deadline (retry or partition
//! check) among them, and which topic a metadata operation belongs to.
//!
//! A pattern subscription can hold 10,000 topics, and the group's deadline is recomputed after
//! every input that touches the group; scanning every topic there made creation O(n²). Mutable
//! access goes through [`TopicMut`], which refiles the entry's deadline, resolution and operation
//! when it is dropped (as the client's `DeadlineMap` does for whole groups), so the index is
//! exact whatever the caller changed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::time::Instant;

use super::group::TopicEntry;
use super::vecmap::VecMap;
use crate::handle::ConsumerId;

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Topics {
    map: VecMap<String, TopicEntry>,
    /// Boxed, and only while it holds something: a group with one resolved topic and no timer
    /// (the common case) pays a pointer for it.
    index: Option<Box<Index>>,
}

#[cfg(test)]
thread_local! {
    /// Entries handed out by whole-map passes (`iter`, `values`, `for_each_mut`) on this thread;
    /// tests use
    /// it to check that per-event work does not grow with the topic count.
    pub(super) static VISITED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The index over a [`Topics`] map.
#[derive(Debug, Default)]
struct Index {
    /// Entries whose partition count is not known yet.
    unresolved: usize,
    /// Every entry's earliest deadline (`retry_at` or `next_check`), ordered.
    timers: BTreeSet<(Instant, String)>,
    /// Metadata operations in flight, to the topic they resolve.
    ops: BTreeMap<u64, String>,
}

/// What an entry is filed under in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Filed {
    unresolved: bool,
    deadline: Option<Instant>,
    op: Option<u64>,
}

fn filed(t: &TopicEntry) -> Filed {
    let deadline = match (t.retry_at, t.next_check) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Filed {
        unresolved: t.partitions.is_none(),
        deadline,
        op: t.op,
    }
}

impl Index {
    fn is_empty(&self) -> bool {
        self.unresolved == 0 && self.timers.is_empty() && self.ops.is_empty()
    }

    fn unfile(&mut self, name: &str, f: Filed) {
        if f.unresolved {
            self.unresolved -= 1;
        }
        if let Some(at) = f.deadline {
            self.timers.remove(&(at, name.to_string()));
        }
        if let Some(op) = f.op {
            self.ops.remove(&op);
        }
    }

    fn file(&mut self, name: &str, f: Filed) {
        if f.unresolved {
            self.unresolved += 1;
        }
        if let Some(at) = f.deadline {
            self.timers.insert((at, name.to_string()));
        }
        if let Some(op) = f.op {
            self.ops.insert(op, name.to_string());
        }
    }
}

/// Files what changed, allocating the index when first needed and freeing it when empty.
fn refile(index: &mut Option<Box<Index>>, name: &str, before: Option<Filed>, now: Option<Filed>) {
    if before == now {
        return;
    }
    let ix = index.get_or_insert_with(Box::default);
    if let Some(f) = before {
        ix.unfile(name, f);
    }
    if let Some(f) = now {
        ix.file(name, f);
    }
    if ix.is_empty() {
        *index = None;
    }
}

impl Topics {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces an entry.
    pub(super) fn insert(&mut self, name: String, entry: TopicEntry) {
        let new = filed(&entry);
        let key = name.clone();
        let old = self.map.insert(name, entry).map(|old| filed(&old));
        refile(&mut self.index, &key, old, Some(new));
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<TopicEntry> {
        let t = self.map.remove(name)?;
        refile(&mut self.index, name, Some(filed(&t)), None);
        Some(t)
    }

    pub(super) fn get(&self, name: &str) -> Option<&TopicEntry> {
        self.map.get(name)
    }

    /// Mutable access; the index is updated when the guard is dropped.
    pub(super) fn get_mut<'a>(&'a mut self, name: &'a str) -> Option<TopicMut<'a>> {
        let entry = self.map.get_mut(name)?;
        let before = filed(entry);
        Some(TopicMut {
            entry,
            index: &mut self.index,
            name,
            before,
        })
    }

    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &TopicEntry)> {
        #[cfg(test)]
        VISITED.with(|v| v.set(v.get() + self.map.len()));
        self.map.iter()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &TopicEntry> {
        #[cfg(test)]
        VISITED.with(|v| v.set(v.get() + self.map.len()));
        self.map.values()
    }

    /// Changes every entry (closing, rare failures), then rebuilds the index: O(n).
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(&str, &mut TopicEntry)) {
        for (name, t) in self.map.iter_mut() {
            f(name, t);
        }
        #[cfg(test)]
        VISITED.with(|v| v.set(v.get() + self.map.len()));
        self.index = None;
        for (name, t) in self.map.iter() {
            refile(&mut self.index, name, None, Some(filed(t)));
        }
    }

    /// Changes every entry's wire consumers (which nothing in the index depends on): O(n), no
    /// rebuild.
    pub(super) fn for_each_subs(&mut self, mut f: impl FnMut(&mut VecMap<i32, ConsumerId>)) {
        for t in self.map.values_mut() {
            f(&mut t.subs);
        }
    }

    /// One topic's wire consumers (which nothing in the index depends on).
    pub(super) fn subs_mut(&mut self, name: &str) -> Option<&mut VecMap<i32, ConsumerId>> {
        self.map.get_mut(name).map(|t| &mut t.subs)
    }

    /// Whether every topic's partition count is known.
    pub(super) fn all_resolved(&self) -> bool {
        self.index.as_ref().is_none_or(|ix| ix.unresolved == 0)
    }

    /// The earliest retry or partition check of any topic.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.index.as_ref()?.timers.first().map(|(at, _)| *at)
    }

    /// Topics with a deadline at or before `now`, earliest first.
    pub(super) fn due(&self, now: Instant) -> Vec<String> {
        self.index.as_ref().map_or_else(Vec::new, |ix| {
            ix.timers
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, n)| n.clone())
                .collect()
        })
    }

    /// The topic a metadata operation resolves.
    pub(super) fn by_op(&self, op: u64) -> Option<&String> {
        self.index.as_ref()?.ops.get(&op)
    }
}

/// Mutable access to one topic; see the module documentation.
pub(super) struct TopicMut<'a> {
    entry: &'a mut TopicEntry,
    index: &'a mut Option<Box<Index>>,
    name: &'a str,
    before: Filed,
}

impl Deref for TopicMut<'_> {
    type Target = TopicEntry;

    fn deref(&self) -> &TopicEntry {
        self.entry
    }
}

impl DerefMut for TopicMut<'_> {
    fn deref_mut(&mut self) -> &mut TopicEntry {
        self.entry
    }
}

impl Drop for TopicMut<'_> {
    fn drop(&mut self) {
        let now = filed(self.entry);
        refile(self.index, self.name, Some(self.before), Some(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use std::time::Duration;

    fn entry() -> TopicEntry {
        TopicEntry {
            partitions: None,
            op: None,
            retry_at: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
            next_check: None,
            subs: VecMap::new(),
            discovered: false,
        }
    }

    fn brute(t: &Topics) -> (bool, Option<Instant>, Vec<(u64, String)>) {
        let all = t.map.iter();
        let resolved = t.map.values().all(|e| e.partitions.is_some());
        let next = t
            .map
            .values()
            .flat_map(|e| [e.retry_at, e.next_check])
            .flatten()
            .min();
        let mut ops: Vec<(u64, String)> = all
            .filter_map(|(n, e)| e.op.map(|o| (o, n.clone())))
            .collect();
        ops.sort();
        (resolved, next, ops)
    }

    fn indexed(t: &Topics) -> (bool, Option<Instant>, Vec<(u64, String)>) {
        let ops = t
            .map
            .iter()
            .filter_map(|(_, e)| e.op)
            .map(|o| (o, t.by_op(o).cloned().unwrap_or_default()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        (t.all_resolved(), t.next_timeout(), ops)
    }

    /// The index matches a scan after every kind of change, and answering from it visits no
    /// entry (the pattern group's per-event work must not grow with its topic count).
    #[test]
    fn index_is_exact_and_needs_no_scan() {
        let t0 = Instant::now();
        let mut t = Topics::new();
        let n = 2_000u64;
        for i in 0..n {
            t.insert(format!("persistent://public/default/t-{i:05}"), entry());
        }
        assert!(!t.all_resolved());
        let mut seed = 7u64;
        let mut step = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for round in 0..20_000u64 {
            let name = format!("persistent://public/default/t-{:05}", step() % n);
            let what = step() % 7;
            let at = t0 + Duration::from_millis(step() % 10_000);
            match what {
                0 => t.remove(&name).map_or((), |_| ()),
                1 => t.insert(name, entry()),
                _ => {
                    let Some(mut e) = t.get_mut(&name) else {
                        continue;
                    };
                    match what {
                        2 => e.partitions = Some((round % 3) as u32),
                        3 => e.retry_at = Some(at),
                        4 => e.next_check = Some(at).filter(|_| round % 2 == 0),
                        5 => e.op = Some(round).filter(|_| round % 3 != 0),
                        _ => {
                            e.retry_at = None;
                            e.op = None;
                        }
                    }
                }
            }
            if round % 97 == 0 {
                assert_eq!(indexed(&t), brute(&t), "round {round}");
            }
        }
        assert_eq!(indexed(&t), brute(&t));
        let due = t.due(t0 + Duration::from_millis(5_000));
        let want = t
            .map
            .iter()
            .filter(|(_, e)| {
                [e.retry_at, e.next_check]
                    .into_iter()
                    .flatten()
                    .any(|a| a <= t0 + Duration::from_millis(5_000))
            })
            .count();
        assert_eq!(due.len(), want);

        t.for_each_mut(|_, e| {
            e.retry_at = None;
            e.next_check = None;
            e.op = None;
            e.partitions = Some(0);
        });
        assert_eq!(indexed(&t), (true, None, Vec::new()));
        assert!(t.index.is_none(), "an empty index is freed");

        // per-event questions touch no entry
        VISITED.with(|v| v.set(0));
        for i in 0..n {
            let name = format!("persistent://public/default/t-{i:05}");
            if let Some(mut e) = t.get_mut(&name) {
                e.retry_at = Some(t0 + Duration::from_millis(i));
            }
            let _ = (t.all_resolved(), t.next_timeout(), t.by_op(i));
        }
        assert_eq!(VISITED.with(|v| v.get()), 0);
        assert_eq!(t.next_timeout(), Some(t0));
    }
}
