//! Hash maps keyed by the core's handles.
//!
//! Handles are small integers from one counter, never chosen by a peer, so they need no
//! collision-resistant hash: one multiplication spreads them over the table (the standard
//! library's SipHash costs several times more on every lookup of the per-message paths).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by a core handle (`ProducerId`, `ConsumerId`, `RequestId`, ...).
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing: the golden ratio's odd 64-bit multiplier.
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hasher of [`IdMap`]: one multiplication per integer written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(MULTIPLIER);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn consecutive_handles_spread_over_buckets_and_control_bytes() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (1..=1024u64).map(|n| build.hash_one(n)).collect();
        // Low bits pick the bucket, the top 7 bits the control byte: both must vary.
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(buckets.len(), 1024);
        assert!(tags.len() > 100, "{} control byte values", tags.len());
    }

    #[test]
    fn maps_keyed_by_handles_work() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for n in 0..10_000 {
            m.insert(n, n * 2);
        }
        for n in 0..10_000 {
            assert_eq!(m.get(&n), Some(&(n * 2)));
        }
        assert_eq!(m.remove(&5000), Some(10_000));
        assert!(!m.contains_key(&5000));
    }
}
