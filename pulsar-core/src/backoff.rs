//! Exponential backoff with seeded jitter, used for every reconnection.

use std::time::Duration;

use crate::rng::SplitMix64;

/// Fraction of the nominal delay that jitter may remove (the delay is drawn from
/// `[nominal * (1 - JITTER), nominal]`, and is never below the initial delay).
const JITTER: f64 = 0.2;

/// Exponential backoff: the nominal delay starts at `initial`, doubles after every use up to `max`,
/// and goes back to `initial` on [`reset`](Backoff::reset). It never gives up.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    nominal: Duration,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            nominal: initial,
            attempts: 0,
        }
    }

    /// The delay before the next attempt; grows the nominal delay for the one after.
    pub(crate) fn next_delay(&mut self, rng: &mut SplitMix64) -> Duration {
        let nominal = self.nominal;
        self.nominal = nominal.saturating_mul(2).min(self.max);
        self.attempts = self.attempts.saturating_add(1);
        let factor = 1.0 - JITTER * rng.next_f64();
        // Never below the initial delay (as the Java client), hence never zero. A nominal delay
        // near `Duration::MAX` (a huge configured maximum) may not survive the trip through f64:
        // it then stays as it is.
        Duration::try_from_secs_f64(nominal.as_secs_f64() * factor)
            .unwrap_or(nominal)
            .max(self.initial)
    }

    /// Back to the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.nominal = self.initial;
        self.attempts = 0;
    }

    /// How many delays were handed out since the last reset.
    #[cfg(test)]
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_bounded_jitter_caps_and_resets() {
        let mut rng = SplitMix64::new(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
        let mut nominal = Duration::from_millis(100);
        let mut prev = Duration::ZERO;
        for _ in 0..20 {
            let d = b.next_delay(&mut rng);
            assert!(d <= nominal, "{d:?} > {nominal:?}");
            assert!(
                d >= nominal.mul_f64(1.0 - JITTER),
                "{d:?} too small for {nominal:?}"
            );
            if nominal < Duration::from_secs(60) {
                assert!(
                    d > prev,
                    "delays must grow until the cap: {d:?} <= {prev:?}"
                );
            }
            prev = d;
            nominal = (nominal * 2).min(Duration::from_secs(60));
        }
        assert!(prev >= Duration::from_secs(48));
        assert_eq!(b.attempts(), 20);
        b.reset();
        assert_eq!(b.attempts(), 0);
        let d = b.next_delay(&mut rng);
        assert_eq!(d, Duration::from_millis(100));
    }

    #[test]
    fn jitter_never_goes_below_the_initial_delay() {
        // The Java client's rule (Backoff.next: max(initial, jittered)). It also keeps a tiny
        // initial delay from being jittered down to zero, which would put the retry deadline at
        // the very instant of the failure instead of after it.
        for seed in 0..200 {
            let mut rng = SplitMix64::new(seed);
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
            assert!(b.next_delay(&mut rng) >= Duration::from_millis(100));
            let mut b = Backoff::new(Duration::from_nanos(1), Duration::from_nanos(1));
            for _ in 0..3 {
                assert!(b.next_delay(&mut rng) >= Duration::from_nanos(1));
            }
        }
    }

    #[test]
    fn a_huge_maximum_keeps_growing_without_overflow() {
        // `backoff_max: Duration::MAX` means "no maximum": the nominal delay saturates there.
        let mut rng = SplitMix64::new(3);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::MAX);
        let delays: Vec<Duration> = (0..100).map(|_| b.next_delay(&mut rng)).collect();
        // doubling from 1 s reaches the maximum after 64 delays; jitter then keeps 80% at least
        assert!(delays[..64].windows(2).all(|w| w[1] > w[0]), "{delays:?}");
        assert!(
            delays[70..]
                .iter()
                .all(|d| *d > Duration::from_secs(u64::MAX / 2)),
            "{delays:?}"
        );
    }

    #[test]
    fn jitter_is_seeded() {
        let run = |seed| {
            let mut rng = SplitMix64::new(seed);
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(60));
            (0..5).map(|_| b.next_delay(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
