//! Key hashing and partition routers of `pulsar_core::routing`, against the Java client's values.

use proptest::prelude::*;
use pulsar_core::routing::{
    boost_hash, java_string_hash, murmur3_32, partition_for_key, sign_safe_mod, HashingScheme,
    MessageRouter, RoundRobinRouter, SinglePartitionRouter,
};

const SCHEMES: [HashingScheme; 3] = [
    HashingScheme::JavaStringHash,
    HashingScheme::Murmur3_32,
    HashingScheme::BoostHash,
];

/// (key, Java `String.hashCode()`, raw MurmurHash3 x86_32 seed 0 of the UTF-8 bytes).
///
/// The masked values of "keykeykeykeykey1", "keykeykey2", "k1", "k2", "key1", "key2", "key01" and
/// "key02" are the ones the C++ client's HashTest asserts as "same as Java client"; "hello" and
/// the fox sentence are the published MurmurHash3 x86_32 test values; the rest were computed with
/// an independent Python reimplementation of both functions.
const VECTORS: &[(&str, i32, i32)] = &[
    ("", 0, 0),
    ("a", 97, 1_009_084_850),
    ("hello", 99_162_322, 613_153_351),
    ("keykeykeykeykey1", 434_058_482, -2_128_133_266),
    ("keykeykey2", -2_104_505_005, 304_171_170),
    ("k1", 3366, -37_330_902),
    ("k2", 3367, -667_516_984),
    ("key1", 3_288_498, -1_684_602_587),
    ("key2", 3_288_499, 1_936_800_180),
    ("key01", 101_943_456, -2_107_786_716),
    ("key02", 101_943_457, 751_761_803),
    ("é", 233, 269_551_495),
    ("日本語", 25_921_943, -1_515_949_417),
    ("😀", 1_772_899, -1_095_487_750),
    (
        "The quick brown fox jumps over the lazy dog",
        -609_428_141,
        776_992_547,
    ),
];

#[test]
fn known_vectors() {
    for &(key, java, murmur) in VECTORS {
        assert_eq!(java_string_hash(key), java, "String.hashCode({key:?})");
        assert_eq!(murmur3_32(key.as_bytes()), murmur, "murmur3_32({key:?})");
        assert_eq!(
            HashingScheme::JavaStringHash.make_hash(key),
            (java & i32::MAX) as u32
        );
        assert_eq!(
            HashingScheme::Murmur3_32.make_hash(key),
            (murmur & i32::MAX) as u32
        );
    }
}

#[test]
fn cpp_client_masked_values() {
    // Exactly the numbers in the C++ client's HashTest.
    let java = HashingScheme::JavaStringHash;
    assert_eq!(java.make_hash("keykeykeykeykey1"), 434_058_482);
    assert_eq!(java.make_hash("keykeykey2"), 42_978_643);
    let m = HashingScheme::Murmur3_32;
    assert_eq!(m.make_hash("k1"), 2_110_152_746);
    assert_eq!(m.make_hash("k2"), 1_479_966_664);
    assert_eq!(m.make_hash("key1"), 462_881_061);
    assert_eq!(m.make_hash("key2"), 1_936_800_180);
    assert_eq!(m.make_hash("key01"), 39_696_932);
    assert_eq!(m.make_hash("key02"), 751_761_803);
}

/// `boost_hash` values from an independent Python reimplementation of Boost's 64-bit
/// `hash_range` (covering every tail length class: 0, 1-3, 4-7 bytes, and whole 8-byte words).
#[test]
fn boost_hash_vectors() {
    let vectors: &[(&str, u64)] = &[
        ("", 0x1c97_da6f_7f24_eba6),
        ("a", 0x5dc9_4fb3_ff4e_cd1c),
        ("abcd", 0x6e7b_505f_8eb3_9b62),
        ("abcdefgh", 0xd750_6556_db73_884e),
        ("key-0", 0x027d_143e_667f_69f2),
        ("日本語", 0x3c72_77bb_8120_4709),
        ("😀", 0x70b5_4b5d_28b8_42db),
    ];
    for &(key, expected) in vectors {
        assert_eq!(boost_hash(key.as_bytes()), expected, "boost_hash({key:?})");
    }
    assert_eq!(boost_hash("x".repeat(100).as_bytes()) >> 32, 0x2469_a214);
}

/// Partitions the official Python client (pulsar-client 3.13.0, C++ `BoostHash` by default)
/// chose for these keys on a 13-partition topic of a live Pulsar 4.0.7 broker.
#[test]
fn boost_hash_matches_observed_python_client_partitions() {
    let observed: &[(&str, u32)] = &[
        ("key-0", 6),
        ("key-1", 9),
        ("key-2", 6),
        ("key-3", 3),
        ("key-42", 8),
        ("a", 11),
        ("ab", 5),
        ("abc", 11),
        ("abcd", 3),
        ("abcde", 9),
        ("日本語", 4),
        ("é", 8),
        ("😀", 1),
    ];
    for &(key, partition) in observed {
        assert_eq!(
            partition_for_key(key, 13, HashingScheme::BoostHash),
            partition,
            "{key:?}"
        );
    }
    assert_eq!(
        partition_for_key(&"x".repeat(100), 13, HashingScheme::BoostHash),
        11
    );
}

#[test]
fn partitions_for_known_keys() {
    // keykeykey2: hashCode is negative (-2104505005). Java masks the sign bit first:
    // 42978643 % 7 = 1; a sign-safe mod of the unmasked value would give 6 instead.
    assert_eq!(
        partition_for_key("keykeykey2", 7, HashingScheme::JavaStringHash),
        1
    );
    assert_eq!(sign_safe_mod(-2_104_505_005, 7), 6);
    assert_eq!(
        partition_for_key("key1", 10, HashingScheme::Murmur3_32),
        1 // 462881061 % 10
    );
    assert_eq!(
        partition_for_key("anything", 1, HashingScheme::Murmur3_32),
        0
    );
    assert_eq!(
        partition_for_key("anything", 0, HashingScheme::Murmur3_32),
        0
    );
    assert_eq!(HashingScheme::default(), HashingScheme::JavaStringHash);
}

#[test]
fn sign_safe_mod_matches_java() {
    assert_eq!(sign_safe_mod(7, 3), 1);
    assert_eq!(sign_safe_mod(-7, 3), 2);
    assert_eq!(sign_safe_mod(-3, 3), 0);
    assert_eq!(sign_safe_mod(i64::from(i32::MIN), 10), 2); // -2147483648 % 10 = -8 -> 2
    assert_eq!(sign_safe_mod(5, 0), 0);
}

// ---- routers ------------------------------------------------------------------------------

#[test]
fn round_robin_without_batching_cycles_from_start() {
    let mut r = RoundRobinRouter::new(HashingScheme::JavaStringHash, 5, false, 10);
    let got: Vec<u32> = (0..8).map(|_| r.choose(None, 3, 0)).collect();
    assert_eq!(got, vec![2, 0, 1, 2, 0, 1, 2, 0]); // 5, 6, 7, ... mod 3
}

#[test]
fn round_robin_with_batching_switches_per_time_slot() {
    let mut r = RoundRobinRouter::new(HashingScheme::JavaStringHash, 2, true, 10);
    // (now / 10 + 2) % 5
    assert_eq!(r.choose(None, 5, 0), 2);
    assert_eq!(r.choose(None, 5, 9), 2);
    assert_eq!(r.choose(None, 5, 10), 3);
    assert_eq!(r.choose(None, 5, 19), 3);
    assert_eq!(r.choose(None, 5, 30), 0);
    assert_eq!(r.choose(None, 5, 1_000_000_007), (100_000_000 + 2) % 5);
    // A zero interval is raised to 1 ms, as in Java.
    let mut r = RoundRobinRouter::new(HashingScheme::JavaStringHash, 0, true, 0);
    assert_eq!(r.choose(None, 4, 6), 2);
}

#[test]
fn keyed_messages_are_hashed_by_every_router() {
    let keys = ["key1", "keykeykey2", "日本語", "order-42"];
    for scheme in SCHEMES {
        let mut rr = RoundRobinRouter::new(scheme, 3, true, 10);
        let mut rr_plain = RoundRobinRouter::new(scheme, 3, false, 10);
        let mut single = SinglePartitionRouter::new(scheme, 4);
        for key in keys {
            let expected = partition_for_key(key, 11, scheme);
            for now in [0, 55, 10_000] {
                assert_eq!(rr.choose(Some(key), 11, now), expected);
                assert_eq!(rr_plain.choose(Some(key), 11, now), expected);
                assert_eq!(single.choose(Some(key), 11), expected);
                assert_eq!(single.choose_partition(Some(key), 11, now), expected);
            }
        }
        // Keyed messages do not advance the round robin.
        assert_eq!(rr_plain.choose(None, 11, 0), 3);
    }
}

#[test]
fn single_partition_router_sticks() {
    let r = SinglePartitionRouter::new(HashingScheme::Murmur3_32, 6);
    for _ in 0..5 {
        assert_eq!(r.choose(None, 8), 6);
    }
    assert_eq!(r.partition(), 6);
    // Misuse (fewer partitions than the pinned index) still yields a valid partition.
    assert_eq!(r.choose(None, 4), 2);
}

#[test]
fn seeds_choose_start_within_range_and_deterministically() {
    let mut seen = [false; 7];
    for seed in 0..200u64 {
        let a = RoundRobinRouter::from_seed(HashingScheme::JavaStringHash, seed, 7, true, 10);
        let b = RoundRobinRouter::from_seed(HashingScheme::JavaStringHash, seed, 7, true, 10);
        assert_eq!(a, b);
        assert!(a.start_index() < 7);
        seen[a.start_index() as usize] = true;
        let s = SinglePartitionRouter::from_seed(HashingScheme::JavaStringHash, seed, 7);
        assert!(s.partition() < 7);
    }
    assert!(
        seen.iter().all(|&s| s),
        "200 seeds cover all 7 start indexes"
    );
    let r = RoundRobinRouter::from_seed(HashingScheme::JavaStringHash, 9, 0, false, 10);
    assert_eq!(r.start_index(), 0);
}

#[test]
fn routers_are_usable_as_trait_objects() {
    let mut routers: Vec<Box<dyn MessageRouter>> = vec![
        Box::new(RoundRobinRouter::new(
            HashingScheme::JavaStringHash,
            0,
            false,
            1,
        )),
        Box::new(SinglePartitionRouter::new(HashingScheme::JavaStringHash, 1)),
    ];
    let picks: Vec<u32> = routers
        .iter_mut()
        .map(|r| r.choose_partition(None, 3, 0))
        .collect();
    assert_eq!(picks, vec![0, 1]);
}

// ---- properties against independent reference implementations ----------------------------

/// `String.hashCode()` as the sum s[i] * 31^(n-1-i) mod 2^32, computed over `char`s split into
/// UTF-16 by hand.
fn reference_java_hash(key: &str) -> i32 {
    let mut units = Vec::new();
    for c in key.chars() {
        let v = c as u32;
        if v >= 0x1_0000 {
            let v = v - 0x1_0000;
            units.push(0xd800 + (v >> 10));
            units.push(0xdc00 + (v & 0x3ff));
        } else {
            units.push(v);
        }
    }
    let n = units.len();
    let mut sum: u64 = 0;
    for (i, u) in units.iter().enumerate() {
        let mut p: u64 = 1;
        for _ in 0..(n - 1 - i) {
            p = (p * 31) % (1 << 32);
        }
        sum = (sum + u64::from(*u) * p) % (1 << 32);
    }
    sum as u32 as i32
}

/// MurmurHash3 x86_32 (seed 0) written byte by byte, straight from the algorithm description.
fn reference_murmur(data: &[u8]) -> i32 {
    let mix = |k: u32| {
        k.wrapping_mul(0xcc9e_2d51)
            .rotate_left(15)
            .wrapping_mul(0x1b87_3593)
    };
    let mut h: u32 = 0;
    let full = data.len() / 4 * 4;
    let mut i = 0;
    while i < full {
        let k = u32::from(data[i])
            | u32::from(data[i + 1]) << 8
            | u32::from(data[i + 2]) << 16
            | u32::from(data[i + 3]) << 24;
        h ^= mix(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
        i += 4;
    }
    let mut k: u32 = 0;
    let tail = &data[full..];
    if tail.len() >= 3 {
        k ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        k ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        k ^= u32::from(tail[0]);
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

proptest! {
    #[test]
    fn java_hash_matches_reference(key in "\\PC{0,40}") {
        prop_assert_eq!(java_string_hash(&key), reference_java_hash(&key));
    }

    #[test]
    fn murmur_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        prop_assert_eq!(murmur3_32(&data), reference_murmur(&data));
    }

    #[test]
    fn partition_in_range(key in "\\PC{0,40}", n in 1u32..1000) {
        for scheme in SCHEMES {
            let p = partition_for_key(&key, n, scheme);
            prop_assert!(p < n);
            prop_assert_eq!(p, scheme.make_hash(&key) % n);
        }
    }

    #[test]
    fn round_robin_visits_every_partition(start in 0u32..1000, n in 1u32..50) {
        let mut r = RoundRobinRouter::new(HashingScheme::JavaStringHash, start, false, 10);
        let mut seen = vec![false; n as usize];
        for _ in 0..n {
            seen[r.choose(None, n, 0) as usize] = true;
        }
        prop_assert!(seen.iter().all(|&s| s));
    }
}
