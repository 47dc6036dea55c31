//! The clock of application calls: one reading per burst of sends.

use std::time::Instant;

use crate::runtime::TimeSource;

/// Sends that may reuse one clock reading while the driver has not run (see [`Clock::send_now`]).
pub(super) const SENDS_PER_CLOCK_READ: u32 = 64;

/// The clock of application calls: where the time is read, the last reading since the driver
/// last ran, and how many sends have used it.
#[derive(Debug)]
pub(super) struct Clock {
    pub(super) source: TimeSource,
    pub(super) burst: Option<(Instant, u32)>,
}

impl Clock {
    pub(super) fn new(source: TimeSource) -> Clock {
        Clock {
            source,
            burst: None,
        }
    }

    /// The time for any core call other than a send (application calls and the driver's
    /// inputs alike): a fresh reading, kept for the sends that follow. As every reading handed to
    /// the core passes through here, a send never gives the core an earlier time than the call
    /// before it.
    pub(super) fn now(&mut self) -> Instant {
        let now = self.source.now();
        self.burst = Some((now, 0));
        now
    }

    /// The time for a send: the last reading since the driver last ran, for at most
    /// [`SENDS_PER_CLOCK_READ`] sends, else a fresh one (one clock read per burst of sends
    /// instead of one per send).
    ///
    /// A reused reading is older than the send by at most the burst's duration: a timer the
    /// send starts in the core (its batch's delay, its send timeout) can only run out that much
    /// earlier, never later. The burst ends when the driver runs ([`reset`](Self::reset)),
    /// which it does by the earliest timer such a send starts unless the application keeps it
    /// from running (and then no timer fires anyway); the bound on the sends covers
    /// applications that send for long while the driver has nothing to do.
    pub(super) fn send_now(&mut self) -> Instant {
        match &mut self.burst {
            Some((at, uses)) if *uses < SENDS_PER_CLOCK_READ => {
                *uses += 1;
                *at
            }
            _ => {
                let now = self.source.now();
                self.burst = Some((now, 1));
                now
            }
        }
    }

    /// The driver runs: the next call reads the clock again.
    pub(super) fn reset(&mut self) {
        self.burst = None;
    }
}
