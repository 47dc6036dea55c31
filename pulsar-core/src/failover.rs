//! Cluster-level failover (the Java client's `AutoClusterFailover`), as a pure policy: the runtime
//! probes the clusters' service URLs every [`check_interval`](ClusterFailoverConfig::check_interval)
//! and reports which answered; the policy says when to switch the client to another cluster
//! ([`Client::set_service_url`](crate::Client::set_service_url)) and when to come back.
//!
//! - On the primary: once it has been unreachable for
//!   [`failover_delay`](ClusterFailoverConfig::failover_delay), switch to the first reachable
//!   secondary.
//! - On a secondary: once the primary has been reachable again for
//!   [`switch_back_delay`](ClusterFailoverConfig::switch_back_delay), switch back to it; once the
//!   secondary in use has been unreachable for the failover delay, switch to another reachable
//!   secondary.

use std::time::{Duration, Instant};

use crate::error::ConfigError;
use crate::service_url::ServiceUrl;

/// Default [`ClusterFailoverConfig::failover_delay`].
pub const DEFAULT_FAILOVER_DELAY: Duration = Duration::from_secs(30);
/// Default [`ClusterFailoverConfig::switch_back_delay`].
pub const DEFAULT_SWITCH_BACK_DELAY: Duration = Duration::from_secs(60);
/// Default [`ClusterFailoverConfig::check_interval`].
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The clusters to fail over between, and how fast.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterFailoverConfig {
    /// The service URL of the preferred cluster (the client starts on it).
    pub primary: String,
    /// Service URLs of the other clusters, in order of preference.
    pub secondaries: Vec<String>,
    /// How long the cluster in use must be unreachable before switching away from it.
    pub failover_delay: Duration,
    /// How long the primary must be reachable again before switching back to it.
    pub switch_back_delay: Duration,
    /// How often the runtime probes the clusters.
    pub check_interval: Duration,
    /// How long one probe (a TCP connection to one host) may take.
    pub probe_timeout: Duration,
}

impl ClusterFailoverConfig {
    /// Fails over from `primary` to `secondaries` with the default delays (30 s to fail over,
    /// 60 s to switch back, probes every second with a 5 s timeout).
    pub fn new(
        primary: impl Into<String>,
        secondaries: impl IntoIterator<Item = impl Into<String>>,
    ) -> ClusterFailoverConfig {
        ClusterFailoverConfig {
            primary: primary.into(),
            secondaries: secondaries.into_iter().map(Into::into).collect(),
            failover_delay: DEFAULT_FAILOVER_DELAY,
            switch_back_delay: DEFAULT_SWITCH_BACK_DELAY,
            check_interval: DEFAULT_CHECK_INTERVAL,
            probe_timeout: Duration::from_secs(5),
        }
    }

    /// With another failover delay.
    pub fn failover_delay(mut self, delay: Duration) -> Self {
        self.failover_delay = delay;
        self
    }

    /// With another switch-back delay.
    pub fn switch_back_delay(mut self, delay: Duration) -> Self {
        self.switch_back_delay = delay;
        self
    }

    /// With another check interval.
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// With another probe timeout.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = timeout;
        self
    }
}

/// The policy's state: which cluster is in use and since when each side has been up or down.
#[derive(Debug, Clone)]
pub struct ClusterFailover {
    config: ClusterFailoverConfig,
    /// Parsed service URLs: the primary first, then the secondaries.
    urls: Vec<ServiceUrl>,
    /// Index into `urls` of the cluster in use.
    current: usize,
    /// Since when the cluster in use has been unreachable, without a success since.
    current_down_since: Option<Instant>,
    /// Since when the primary has been reachable, while on a secondary.
    primary_up_since: Option<Instant>,
}

impl ClusterFailover {
    /// The policy for `config`, starting on the primary. Every URL must parse, and there must be
    /// at least one secondary and a positive check interval.
    pub fn new(config: ClusterFailoverConfig) -> Result<ClusterFailover, ConfigError> {
        if config.secondaries.is_empty() {
            return Err(ConfigError::Invalid {
                field: "secondaries",
                reason: "name at least one secondary cluster",
            });
        }
        if config.check_interval.is_zero() || config.probe_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                field: "check_interval",
                reason: "the check interval and the probe timeout must be positive",
            });
        }
        let urls = std::iter::once(&config.primary)
            .chain(&config.secondaries)
            .map(|url| ServiceUrl::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClusterFailover {
            config,
            urls,
            current: 0,
            current_down_since: None,
            primary_up_since: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterFailoverConfig {
        &self.config
    }

    /// Every cluster's service URL, parsed, in the order [`on_probes`](Self::on_probes) wants
    /// the results: the primary, then the secondaries. A cluster is reachable when any of its
    /// hosts accepts a TCP connection.
    pub fn clusters(&self) -> &[ServiceUrl] {
        &self.urls
    }

    /// The service URL in use.
    pub fn current(&self) -> &str {
        self.url(self.current)
    }

    /// Whether the primary is in use.
    pub fn on_primary(&self) -> bool {
        self.current == 0
    }

    fn url(&self, index: usize) -> &str {
        match index {
            0 => &self.config.primary,
            i => self
                .config
                .secondaries
                .get(i - 1)
                .map_or(self.config.primary.as_str(), String::as_str),
        }
    }

    /// Takes one round of probes (`reachable[i]` for [`clusters`](Self::clusters)`[i]`; missing
    /// entries count as unreachable) made at `now`; returns the service URL to switch to, if the
    /// client should switch.
    pub fn on_probes(&mut self, now: Instant, reachable: &[bool]) -> Option<String> {
        let up = |i: usize| reachable.get(i).copied().unwrap_or(false);
        if up(self.current) {
            self.current_down_since = None;
        } else {
            self.current_down_since.get_or_insert(now);
        }
        if self.current != 0 {
            if up(0) {
                let since = *self.primary_up_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.config.switch_back_delay {
                    return Some(self.switch_to(0));
                }
            } else {
                self.primary_up_since = None;
            }
        }
        let down_for = self
            .current_down_since
            .map(|since| now.saturating_duration_since(since))?;
        if down_for < self.config.failover_delay {
            return None;
        }
        // The first reachable secondary other than the one in use (the primary is handled above).
        let next = (1..self.urls.len()).find(|&i| i != self.current && up(i))?;
        Some(self.switch_to(next))
    }

    fn switch_to(&mut self, index: usize) -> String {
        self.current = index;
        self.current_down_since = None;
        self.primary_up_since = None;
        self.url(index).to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> ClusterFailover {
        ClusterFailover::new(
            ClusterFailoverConfig::new("pulsar://a:6650", ["pulsar://b:6650", "pulsar://c:6650"])
                .failover_delay(Duration::from_secs(3))
                .switch_back_delay(Duration::from_secs(5)),
        )
        .unwrap()
    }

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn stays_while_the_primary_answers_and_fails_over_after_the_delay() {
        let t0 = Instant::now();
        let mut p = policy();
        assert_eq!(p.current(), "pulsar://a:6650");
        assert_eq!(p.on_probes(at(t0, 0), &[true, true, true]), None);
        // Down for less than the delay, then up again: the clock starts over.
        assert_eq!(p.on_probes(at(t0, 1), &[false, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 3), &[false, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 4), &[true, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 5), &[false, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 7), &[false, true, true]), None);
        // Three seconds down: the first reachable secondary (b is down, so c).
        assert_eq!(
            p.on_probes(at(t0, 8), &[false, false, true]).as_deref(),
            Some("pulsar://c:6650")
        );
        assert!(!p.on_primary());
        assert_eq!(p.current(), "pulsar://c:6650");
    }

    #[test]
    fn switches_back_once_the_primary_was_up_long_enough() {
        let t0 = Instant::now();
        let mut p = policy();
        p.on_probes(at(t0, 0), &[false, true, true]);
        assert_eq!(
            p.on_probes(at(t0, 3), &[false, true, true]).as_deref(),
            Some("pulsar://b:6650")
        );
        assert_eq!(p.on_probes(at(t0, 4), &[true, true, true]), None);
        // The primary flaps: its clock starts over.
        assert_eq!(p.on_probes(at(t0, 8), &[false, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 9), &[true, true, true]), None);
        assert_eq!(p.on_probes(at(t0, 13), &[true, true, true]), None);
        assert_eq!(
            p.on_probes(at(t0, 14), &[true, true, true]).as_deref(),
            Some("pulsar://a:6650")
        );
        assert!(p.on_primary());
    }

    #[test]
    fn moves_between_secondaries_and_waits_when_nothing_answers() {
        let t0 = Instant::now();
        let mut p = policy();
        p.on_probes(at(t0, 0), &[false, true, false]);
        assert_eq!(
            p.on_probes(at(t0, 3), &[false, true, false]).as_deref(),
            Some("pulsar://b:6650")
        );
        // b goes down too, and nothing else answers: stay, however long.
        assert_eq!(p.on_probes(at(t0, 4), &[false, false, false]), None);
        assert_eq!(p.on_probes(at(t0, 30), &[false, false, false]), None);
        // c comes up: b has been down past the delay, so switch at once.
        assert_eq!(
            p.on_probes(at(t0, 31), &[false, false, true]).as_deref(),
            Some("pulsar://c:6650")
        );
        // Short probe lists count the missing clusters as down.
        assert_eq!(p.on_probes(at(t0, 32), &[]), None);
    }

    #[test]
    fn refuses_bad_configurations() {
        let none: [&str; 0] = [];
        assert!(ClusterFailover::new(ClusterFailoverConfig::new("pulsar://a", none)).is_err());
        assert!(
            ClusterFailover::new(ClusterFailoverConfig::new("http://a", ["pulsar://b"])).is_err()
        );
        assert!(ClusterFailover::new(
            ClusterFailoverConfig::new("pulsar://a", ["pulsar://b"]).check_interval(Duration::ZERO)
        )
        .is_err());
        let p = ClusterFailover::new(ClusterFailoverConfig::new("pulsar://a", ["pulsar://b,c"]))
            .unwrap();
        assert_eq!(p.clusters().len(), 2);
        assert_eq!(p.clusters()[1].hosts.len(), 2);
    }
}
