//! The deadline of an operation that retries (creating a producer or consumer, a lookup): it ends at
//! a fixed instant, the operation timeout after it started, whatever its attempts are doing at that
//! moment, and then reports the failure of its last attempt.
//!
//! Retries wait with backoff, but never past the deadline ([`Deadline::retry_at`]); whoever owns
//! the deadline also asks for a timer at [`Deadline::at`] while an attempt is in flight, so the
//! operation fails exactly then and not when the attempt happens to end.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::time;

/// When an operation must end, and why its last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deadline {
    at: Instant,
    /// The configured operation timeout (reported in the error).
    timeout: Duration,
    /// Boxed: rare, and every idle producer and consumer carries a deadline.
    last_error: Option<Box<Error>>,
}

impl Deadline {
    /// The deadline `timeout` after `now`.
    pub(crate) fn new(now: Instant, timeout: Duration) -> Deadline {
        Deadline {
            at: time::after(now, timeout),
            timeout,
            last_error: None,
        }
    }

    /// The deadline `timeout` after `now`, but not after `limit` (the deadline of the operation this
    /// one is part of).
    pub(crate) fn within(now: Instant, timeout: Duration, limit: Option<Instant>) -> Deadline {
        let mut d = Deadline::new(now, timeout);
        if let Some(limit) = limit {
            d.at = d.at.min(limit);
        }
        d
    }

    /// Moves the deadline to `limit` if that is earlier.
    pub(crate) fn limit(&mut self, limit: Instant) {
        self.at = self.at.min(limit);
    }

    /// The instant the operation fails.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// Whether the deadline has passed at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// Remembers the failure of an attempt. A request that got no answer ([`Error::Timeout`])
    /// leaves no cause to report: the broker was reached and stayed silent.
    pub(crate) fn record(&mut self, error: &Error) {
        self.last_error = match error {
            Error::Timeout => None,
            // An attempt that itself timed out under this deadline: keep its cause.
            Error::TimedOut { last_error, .. } => last_error.clone(),
            e => Some(Box::new(e.clone())),
        };
    }

    /// When to retry after waiting `delay` from `now`: never after the deadline (the timer then
    /// fires at the deadline and the operation fails).
    pub(crate) fn retry_at(&self, now: Instant, delay: Duration) -> Instant {
        time::after(now, delay).min(self.at)
    }

    /// The error the operation ends with at its deadline.
    pub(crate) fn error(&self) -> Error {
        Error::TimedOut {
            after: self.timeout,
            last_error: self.last_error.clone(),
        }
    }

    /// The error to give up with when `error` ended an attempt at or after the deadline: the
    /// deadline's error naming `error` as the last cause.
    pub(crate) fn expire_with(&mut self, error: &Error) -> Error {
        // A part of the operation that timed out without a cause tells nothing new.
        if !matches!(
            error,
            Error::TimedOut {
                last_error: None,
                ..
            }
        ) {
            self.record(error);
        }
        self.error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_url::BrokerAddress;

    fn refused() -> Error {
        Error::ConnectFailed {
            address: BrokerAddress::parse("pulsar://127.0.0.1:7999").unwrap(),
            proxy_for: None,
            reason: "Connection refused".into(),
        }
    }

    #[test]
    fn retries_never_wait_past_the_deadline() {
        let t0 = Instant::now();
        let d = Deadline::new(t0, Duration::from_secs(3));
        assert_eq!(d.at(), t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_millis(2_900);
        assert_eq!(
            d.retry_at(now, Duration::from_millis(50)),
            now + Duration::from_millis(50)
        );
        assert_eq!(d.retry_at(now, Duration::from_secs(60)), d.at());
        assert!(!d.expired(now));
        assert!(d.expired(d.at()));
    }

    #[test]
    fn within_a_parent_deadline() {
        let t0 = Instant::now();
        let parent = t0 + Duration::from_secs(1);
        let d = Deadline::within(t0, Duration::from_secs(3), Some(parent));
        assert_eq!(d.at(), parent);
        let d = Deadline::within(
            t0,
            Duration::from_secs(3),
            Some(t0 + Duration::from_secs(9)),
        );
        assert_eq!(d.at(), t0 + Duration::from_secs(3));
    }

    #[test]
    fn the_error_names_the_last_cause() {
        let t0 = Instant::now();
        let mut d = Deadline::new(t0, Duration::from_secs(3));
        assert_eq!(
            d.error(),
            Error::TimedOut {
                after: Duration::from_secs(3),
                last_error: None
            }
        );
        d.record(&refused());
        let e = d.error();
        assert_eq!(
            e.to_string(),
            "operation timed out after 3s; last error: cannot connect to \
             pulsar://127.0.0.1:7999: Connection refused"
        );
        let source = std::error::Error::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), refused().to_string());
        assert!(e.is_timeout() && e.is_retriable());
        // A silent broker on the last attempt: no cause to name.
        d.record(&Error::Timeout);
        assert_eq!(d.error().to_string(), "operation timed out after 3s");
        // A nested deadline's error gives its cause, not a second "timed out".
        let mut inner = Deadline::new(t0, Duration::from_secs(3));
        inner.record(&refused());
        assert_eq!(d.expire_with(&inner.error()), inner.error());
        // A nested deadline without a cause keeps the cause known here.
        let silent = Deadline::new(t0, Duration::from_secs(3)).error();
        assert_eq!(d.expire_with(&silent), inner.error());
    }
}
