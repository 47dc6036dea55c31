//! Hash maps keyed by the core's handles.
//!
//! Handles are small integers from one counter, never chosen by a peer, so they need no
//! collision-resistant hash: FxHash (`rustc-hash`, the compiler's own) costs one multiplication
//! per integer, where the standard library's SipHash costs several times more on every lookup of
//! the per-message paths.

/// A `HashMap` keyed by a core handle (`ProducerId`, `ConsumerId`, `RequestId`, ...).
pub(crate) type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_handles_spread_over_buckets_and_control_bytes() {
        let build = rustc_hash::FxBuildHasher;
        let hashes: Vec<u64> = (1..=1024u64).map(|n| build.hash_one(n)).collect();
        // Low bits pick the bucket, the top 7 bits the control byte: both must vary. A uniformly
        // random hash would fill about 1 - 1/e (647) of 1024 buckets with 1024 keys; FxHash fills
        // 930 with consecutive handles, so they do not pile up; of the 128 control byte values
        // they take 97.
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(buckets.len() >= 900, "{} buckets of 1024", buckets.len());
        assert!(tags.len() >= 90, "{} control byte values", tags.len());
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
