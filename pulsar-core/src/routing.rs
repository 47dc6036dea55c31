//! Partition routing for partitioned topics, compatible with the Java client.
//!
//! A message with a key goes to the partition its key hashes to, computed exactly as the Java
//! client's `MessageRouterBase` subclasses do, so the same key lands on the same partition whichever
//! client produced it:
//!
//! * [`HashingScheme::JavaStringHash`] (the Java default): `String.hashCode()` over the key's UTF-16
//!   code units, masked with `Integer.MAX_VALUE`.
//! * [`HashingScheme::Murmur3_32`]: MurmurHash3 x86 32-bit, seed 0, over the key's UTF-8 bytes,
//!   masked with `Integer.MAX_VALUE`.
//! * [`HashingScheme::BoostHash`]: the C++ client's default (and so the Python client's, which
//!   does not let its caller choose): `boost::hash<std::string>` of the UTF-8 bytes, masked with
//!   `INT32_MAX`, in the 64-bit form of current Boost releases.
//!
//! The partition is then `signSafeMod(hash, numPartitions)`; since the masked hash is never
//! negative that is a plain remainder.
//!
//! The key hashed is the message's *partition key* as carried in `MessageMetadata.partition_key`
//! (for a byte key that is its base64 text, which is what the Java client hashes too); the ordering
//! key plays no part in routing.
//!
//! Note: the C++ client (and the Python client built on it) computes its "JavaStringHash" over
//! UTF-8 bytes read as signed `char`, so for keys outside ASCII it differs from the Java client.
//! This module follows the Java client. Murmur3_32 agrees between the two for every key.
//! Note too that the Java and C++ clients' *defaults* differ (JavaStringHash versus BoostHash), so
//! the same key does not land on the same partition from a Java and a C++/Python producer left at
//! their defaults.
//!
//! Messages without a key are spread by [`RoundRobinRouter`] (the default routing mode) or pinned by
//! [`SinglePartitionRouter`]. Both are plain state machines: randomness comes in as a seed and time as
//! an argument, never from the environment.

use crate::rng::SplitMix64;

/// How a message key is hashed to choose a partition.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashingScheme {
    /// Java's `String.hashCode()` (the Java client's default).
    #[default]
    JavaStringHash,
    /// MurmurHash3 x86 32-bit with seed 0 over the UTF-8 bytes.
    Murmur3_32,
    /// `boost::hash<std::string>` over the UTF-8 bytes (the C++ and Python clients' default),
    /// see [`boost_hash`].
    BoostHash,
}

impl HashingScheme {
    /// The non-negative hash of `key` under this scheme, as the Java client's `Hash.makeHash`
    /// returns it (the raw hash with its sign bit cleared).
    pub fn make_hash(self, key: &str) -> u32 {
        let raw = match self {
            HashingScheme::JavaStringHash => java_string_hash(key) as u32,
            HashingScheme::Murmur3_32 => murmur3_32(key.as_bytes()) as u32,
            // `size_t & INT32_MAX` keeps the low 31 bits.
            HashingScheme::BoostHash => boost_hash(key.as_bytes()) as u32,
        };
        // `hash & Integer.MAX_VALUE`
        raw & 0x7fff_ffff
    }
}

/// Java's `String.hashCode()` of `key`: `s[0]*31^(n-1) + ... + s[n-1]` in wrapping 32-bit
/// arithmetic over the UTF-16 code units (a character outside the BMP counts as its two
/// surrogates). The raw value, which may be negative.
pub fn java_string_hash(key: &str) -> i32 {
    key.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

const MURMUR_C1: u32 = 0xcc9e_2d51;
const MURMUR_C2: u32 = 0x1b87_3593;

/// MurmurHash3 x86 32-bit of `key` with seed 0, as the Java client's `Murmur3_32Hash` and the
/// C++ client's `Murmur3_32Hash` compute it (blocks read little-endian). The raw value, before the
/// clients clear its sign bit.
pub fn murmur3_32(key: &[u8]) -> i32 {
    let mut h1: u32 = 0;
    let mut blocks = key.chunks_exact(4);
    for block in &mut blocks {
        let k1 = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h1 ^= murmur_mix_k1(k1);
        h1 = h1.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let k1 = blocks
        .remainder()
        .iter()
        .enumerate()
        .fold(0u32, |k, (i, &b)| k ^ (u32::from(b) << (8 * i)));
    h1 ^= murmur_mix_k1(k1);
    // The length is an `int` in Java; only its low 32 bits take part.
    h1 ^= key.len() as u32;
    h1 ^= h1 >> 16;
    h1 = h1.wrapping_mul(0x85eb_ca6b);
    h1 ^= h1 >> 13;
    h1 = h1.wrapping_mul(0xc2b2_ae35);
    h1 ^= h1 >> 16;
    h1 as i32
}

fn murmur_mix_k1(k1: u32) -> u32 {
    k1.wrapping_mul(MURMUR_C1)
        .rotate_left(15)
        .wrapping_mul(MURMUR_C2)
}

const BOOST_Q: u64 = 0x9e37_79b9_7f4a_7c15;
const BOOST_K: u64 = 0xdf44_2d22_ce48_59b9; // BOOST_Q * BOOST_Q

/// The high and low halves of the 128-bit product, xor-ed.
fn mulx(x: u64, y: u64) -> u64 {
    let r = u128::from(x) * u128::from(y);
    (r as u64) ^ ((r >> 64) as u64)
}

fn read_u32_le(b: &[u8]) -> u64 {
    b.iter()
        .take(4)
        .enumerate()
        .fold(0u64, |w, (i, &x)| w | (u64::from(x) << (8 * i)))
}

/// `boost::hash<std::string>` on a 64-bit platform with the byte-range hash of current Boost
/// releases (`boost::hash_range` over `char`, seed 0): the hash the C++ client's `BoostHash`
/// scheme uses before masking. Verified against the partitions the official Python client
/// (pulsar-client 3.13) picks on a live broker.
pub fn boost_hash(key: &[u8]) -> u64 {
    let n = key.len() as u64;
    let mut w = mulx(BOOST_Q, BOOST_K);
    let mut h = w ^ n;
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let v = word
            .iter()
            .enumerate()
            .fold(0u64, |v, (i, &x)| v | (u64::from(x) << (8 * i)));
        w = w.wrapping_add(BOOST_Q);
        h ^= mulx(v.wrapping_add(w), BOOST_K);
    }
    let tail = words.remainder();
    let len = tail.len();
    let v = if len >= 4 {
        // Two overlapping little-endian 32-bit reads: the first four and the last four bytes.
        let last = tail.get(len - 4..).unwrap_or_default();
        (read_u32_le(last) << ((len - 4) * 8)) | read_u32_le(tail)
    } else if len >= 1 {
        // Bytes 0, len/2 and len-1, placed at their own byte positions.
        let at = |i: usize| u64::from(tail.get(i).copied().unwrap_or(0)) << (8 * i);
        at((len - 1) & 2) | at(len >> 1) | at(0)
    } else {
        0
    };
    w = w.wrapping_add(BOOST_Q);
    h ^= mulx(v.wrapping_add(w), BOOST_K);
    mulx(h.wrapping_add(w), BOOST_K)
}

/// Java's `MathUtils.signSafeMod`: the remainder of `dividend / divisor`, moved into
/// `0..divisor`. A `divisor` of 0 is treated as 1 (a non-partitioned topic).
pub fn sign_safe_mod(dividend: i64, divisor: u32) -> u32 {
    let divisor = i64::from(divisor.max(1));
    // `rem_euclid` with a positive divisor is always in `0..divisor`, which fits a `u32`.
    dividend.rem_euclid(divisor) as u32
}

/// The partition the Java client sends a message with partition key `key` to, on a topic with
/// `num_partitions` partitions. A `num_partitions` of 0 (or 1) yields partition 0.
pub fn partition_for_key(key: &str, num_partitions: u32, scheme: HashingScheme) -> u32 {
    sign_safe_mod(i64::from(scheme.make_hash(key)), num_partitions)
}

/// Chooses the partition for each message of a partitioned producer.
///
/// `key` is the message's partition key, `num_partitions` the topic's current partition count
/// (at least 1), and `now_ms` the caller's clock in milliseconds (only differences and
/// multiples of it matter; any monotonic or wall clock will do).
pub trait MessageRouter {
    /// The partition, in `0..num_partitions`, for a message with `key`.
    fn choose_partition(&mut self, key: Option<&str>, num_partitions: u32, now_ms: u64) -> u32;
}

/// Spreads a seed into an index in `0..n`: the first value of a [`SplitMix64`] seeded with it,
/// then a remainder.
fn index_from_seed(seed: u64, n: u32) -> u32 {
    (SplitMix64::new(seed).next_u64() % u64::from(n.max(1))) as u32
}

/// The Java client's default router (`RoundRobinPartitionMessageRouterImpl`).
///
/// Keyed messages are hashed. Without a key: when batching is on, every message in the same
/// `partition_switch_ms` time slot goes to the same partition (`now_ms / partition_switch_ms +
/// start`), so batches fill up; when batching is off, each message goes to the next partition in
/// turn, starting at `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRobinRouter {
    scheme: HashingScheme,
    start: u32,
    batching: bool,
    partition_switch_ms: u64,
    next: u64,
}

impl RoundRobinRouter {
    /// The Java client's default partition switch interval with batching: 10 × the default
    /// maximum batching delay of 1 ms.
    pub const DEFAULT_PARTITION_SWITCH_MS: u64 = 10;

    /// A router starting at partition `start_index` (the Java client draws it at random in
    /// `0..num_partitions` when the producer is created). `partition_switch_ms` is raised to at
    /// least 1, as in Java; the Java client sets it to
    /// `batchingPartitionSwitchFrequencyByPublishDelay` (default 10) × the maximum batching delay.
    pub fn new(
        scheme: HashingScheme,
        start_index: u32,
        batching_enabled: bool,
        partition_switch_ms: u64,
    ) -> Self {
        RoundRobinRouter {
            scheme,
            start: start_index,
            batching: batching_enabled,
            partition_switch_ms: partition_switch_ms.max(1),
            next: u64::from(start_index),
        }
    }

    /// Like [`RoundRobinRouter::new`], with the start index drawn from `seed` in
    /// `0..num_partitions`.
    pub fn from_seed(
        scheme: HashingScheme,
        seed: u64,
        num_partitions: u32,
        batching_enabled: bool,
        partition_switch_ms: u64,
    ) -> Self {
        Self::new(
            scheme,
            index_from_seed(seed, num_partitions),
            batching_enabled,
            partition_switch_ms,
        )
    }

    /// The start index.
    pub fn start_index(&self) -> u32 {
        self.start
    }

    /// The partition for a message with `key` at time `now_ms` (see [`MessageRouter`]).
    pub fn choose(&mut self, key: Option<&str>, num_partitions: u32, now_ms: u64) -> u32 {
        if let Some(key) = key {
            return partition_for_key(key, num_partitions, self.scheme);
        }
        let n = u64::from(num_partitions.max(1));
        let slot = if self.batching {
            (now_ms / self.partition_switch_ms).wrapping_add(u64::from(self.start))
        } else {
            let current = self.next;
            self.next = self.next.wrapping_add(1);
            current
        };
        (slot % n) as u32
    }
}

impl MessageRouter for RoundRobinRouter {
    fn choose_partition(&mut self, key: Option<&str>, num_partitions: u32, now_ms: u64) -> u32 {
        self.choose(key, num_partitions, now_ms)
    }
}

/// The Java client's `SinglePartitionMessageRouterImpl`: every message without a key goes to
/// one partition chosen when the producer is created; keyed messages are still hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinglePartitionRouter {
    scheme: HashingScheme,
    partition: u32,
}

impl SinglePartitionRouter {
    /// A router pinned to `partition` for messages without a key.
    pub fn new(scheme: HashingScheme, partition: u32) -> Self {
        SinglePartitionRouter { scheme, partition }
    }

    /// A router pinned to a partition drawn from `seed` in `0..num_partitions`.
    pub fn from_seed(scheme: HashingScheme, seed: u64, num_partitions: u32) -> Self {
        Self::new(scheme, index_from_seed(seed, num_partitions))
    }

    /// The partition messages without a key go to.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The partition for a message with `key`. A pinned partition beyond `num_partitions` (the
    /// count cannot shrink on a live topic, so only on misuse) is wrapped into range.
    pub fn choose(&self, key: Option<&str>, num_partitions: u32) -> u32 {
        match key {
            Some(key) => partition_for_key(key, num_partitions, self.scheme),
            None => self.partition % num_partitions.max(1),
        }
    }
}

impl MessageRouter for SinglePartitionRouter {
    fn choose_partition(&mut self, key: Option<&str>, num_partitions: u32, _now_ms: u64) -> u32 {
        self.choose(key, num_partitions)
    }
}
