//! Instants a configured duration after now. Any configured duration may be as large as
//! `Duration::MAX` (meaning "never"), which `Instant + Duration` cannot hold: it panics on
//! overflow, and `checked_add` gives nothing to wait for. [`after`] gives a far-future instant
//! instead, so a huge timeout behaves as "not in this process's lifetime".

use std::time::{Duration, Instant};

/// The farthest a deadline is put when the configured duration does not fit in an `Instant`:
/// about a century.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `now + duration`, or when that overflows an `Instant`, the latest instant up to about a century
/// after `now` that the platform can represent (never earlier than `now`).
pub(crate) fn after(now: Instant, duration: Duration) -> Instant {
    if let Some(at) = now.checked_add(duration) {
        return at;
    }
    let mut far = FAR.min(duration);
    loop {
        if let Some(at) = now.checked_add(far) {
            return at;
        }
        if far.is_zero() {
            return now;
        }
        far /= 2;
    }
}

/// Whether the instant `duration` after `start` has come at `now`.
pub(crate) fn passed(start: Instant, duration: Duration, now: Instant) -> bool {
    after(start, duration) <= now
}

/// The earlier of two optional deadlines.
#[inline]
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_that_fits_is_added() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(30)),
            now + Duration::from_secs(30)
        );
        assert_eq!(after(now, Duration::ZERO), now);
        assert!(passed(
            now,
            Duration::from_secs(1),
            now + Duration::from_secs(1)
        ));
        assert!(!passed(now, Duration::from_secs(1), now));
    }

    #[test]
    fn a_huge_duration_is_far_in_the_future() {
        let now = Instant::now();
        for huge in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
            let at = after(now, huge);
            assert!(at - now >= FAR / 2, "{:?}", at - now);
            assert!(!passed(now, huge, now + FAR / 4));
        }
    }
}
