//! A latency histogram with a fixed memory size: log-linear buckets of microseconds (eight per
//! power of two, so a bucket is at most 12.5 % wide), cumulative since it was created.
//!
//! The core records durations it measures with the `now` it is given (send latency, lookup
//! duration); percentiles come from the buckets, and the difference of two snapshots gives the
//! distribution of an interval (Java's `ProducerStats` percentiles are per stats interval).

use std::time::Duration;

/// Sub-buckets per power of two (2^3 = 8: a bucket is at most 1/8 of its value wide).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two kept: up to 2^40 µs (about 12.7 days); longer durations land in the last
/// bucket.
const OCTAVES: usize = 40;
/// Bucket count: the first `SUB` buckets hold 0..SUB µs one value each, then `SUB` per octave.
const BUCKETS: usize = (OCTAVES - SUB_BITS as usize + 1) * SUB;

/// Durations counted in log-linear buckets of microseconds (at most 12.5 % wide), with their
/// count, exact sum and maximum.
///
/// 2.4 KiB once built; the owners build it on the first recorded value.
#[derive(Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    sum_micros: u64,
    max_micros: u64,
}

/// Percentiles of a histogram's durations, in microseconds (each a bucket's upper bound, never
/// above the maximum recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LatencyPercentiles {
    /// Durations counted.
    pub count: u64,
    /// Median.
    pub p50_micros: u64,
    /// 75th percentile.
    pub p75_micros: u64,
    /// 95th percentile.
    pub p95_micros: u64,
    /// 99th percentile.
    pub p99_micros: u64,
    /// 99.9th percentile.
    pub p999_micros: u64,
    /// The longest (exact for a whole histogram; an interval's is its bucket's bound).
    pub max_micros: u64,
    /// The mean (exact).
    pub mean_micros: u64,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            sum_micros: 0,
            max_micros: 0,
        }
    }

    /// Counts `n` durations of `d` each (a batch's messages share their entry's latency).
    pub fn record_n(&mut self, d: Duration, n: u64) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = bucket_of(us);
        if let Some(b) = self.buckets.get_mut(i) {
            *b = b.saturating_add(n);
        }
        self.count = self.count.saturating_add(n);
        self.sum_micros = self.sum_micros.saturating_add(us.saturating_mul(n));
        self.max_micros = self.max_micros.max(us);
    }

    /// Adds `other`'s durations to these (a partitioned producer's partitions).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (b, o) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *b = b.saturating_add(*o);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact sum of the durations, in microseconds.
    pub fn sum_micros(&self) -> u64 {
        self.sum_micros
    }

    /// The non-empty buckets in order, as (upper bound in µs, count). A duration `d` counted
    /// in a bucket is at most its upper bound and above the previous bucket's.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (upper_bound(i), n))
    }

    /// The durations recorded since `earlier`, a previous snapshot of this histogram (saturating
    /// at zero if `earlier` is not one). The maximum is the highest non-empty bucket's bound.
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut d = LatencyHistogram::new();
        for (i, b) in d.buckets.iter_mut().enumerate() {
            let now = self.buckets.get(i).copied().unwrap_or(0);
            let then = earlier.buckets.get(i).copied().unwrap_or(0);
            *b = now.saturating_sub(then);
        }
        d.count = self.count.saturating_sub(earlier.count);
        d.sum_micros = self.sum_micros.saturating_sub(earlier.sum_micros);
        d.max_micros = d
            .buckets
            .iter()
            .rposition(|&n| n > 0)
            .map_or(0, |i| upper_bound(i).min(self.max_micros));
        d
    }

    /// The duration below which a fraction `q` (0.0 to 1.0) of the counted durations lie, in
    /// microseconds: the upper bound of the bucket holding that rank (0 when empty).
    pub fn quantile_micros(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // Ranks are 1-based; `q` is clamped, so the product fits a u64.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(n);
            if seen >= rank {
                return upper_bound(i).min(self.max_micros);
            }
        }
        self.max_micros
    }

    /// The usual percentiles (Java's `ProducerStats`: 50, 75, 95, 99, 99.9 and the maximum).
    pub fn percentiles(&self) -> LatencyPercentiles {
        LatencyPercentiles {
            count: self.count,
            p50_micros: self.quantile_micros(0.50),
            p75_micros: self.quantile_micros(0.75),
            p95_micros: self.quantile_micros(0.95),
            p99_micros: self.quantile_micros(0.99),
            p999_micros: self.quantile_micros(0.999),
            max_micros: self.max_micros,
            mean_micros: self.sum_micros.checked_div(self.count).unwrap_or(0),
        }
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count)
            .field("sum_micros", &self.sum_micros)
            .field("max_micros", &self.max_micros)
            .finish_non_exhaustive()
    }
}

/// The bucket of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros(); // >= SUB_BITS
    let octave = (msb - SUB_BITS + 1) as usize;
    if octave > OCTAVES - SUB_BITS as usize {
        return BUCKETS - 1;
    }
    let sub = ((us >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    octave * SUB + sub
}

/// The highest value of bucket `i`, in microseconds.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = (i / SUB) as u32; // >= 1
    let sub = (i % SUB) as u64;
    let shift = octave - 1;
    // Values with their top bit at `shift + SUB_BITS` and the next bits equal to `sub`.
    (((SUB as u64) | sub) << shift) + (1u64 << shift) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_whose_bounds_hold_it() {
        let mut prev_bound = None;
        for i in 0..BUCKETS {
            let hi = upper_bound(i);
            if let Some(p) = prev_bound {
                assert!(hi > p, "bounds increase at {i}");
                assert_eq!(bucket_of(p + 1), i);
            }
            assert_eq!(bucket_of(hi), i, "bound {hi} of bucket {i}");
            prev_bound = Some(hi);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_at_most_an_eighth_wide() {
        for i in SUB..BUCKETS {
            let lo = upper_bound(i - 1) + 1;
            let hi = upper_bound(i);
            assert!((hi - lo + 1) * 8 <= lo, "bucket {i}: {lo}..={hi}");
        }
    }

    #[test]
    fn percentiles_and_intervals() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=100u64 {
            h.record_n(Duration::from_millis(ms), 1);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        assert_eq!(p.max_micros, 100_000);
        assert_eq!(p.mean_micros, 50_500);
        // Within the bucket width (12.5 %) above the exact value.
        for (got, exact) in [(p.p50_micros, 50_000), (p.p99_micros, 99_000)] {
            assert!(got >= exact && got <= exact + exact / 8, "{got} vs {exact}");
        }
        let before = h.clone();
        h.record_n(Duration::from_secs(2), 3);
        let d = h.since(&before);
        assert_eq!(d.count(), 3);
        assert_eq!(d.sum_micros(), 6_000_000);
        assert_eq!(d.quantile_micros(0.5), 2_000_000);
    }
}
