//! Delayed delivery: on Shared and Key_Shared subscriptions, a message whose metadata carries
//! `deliver_at_time` is set aside until then (as Apache Pulsar does; Exclusive and Failover
//! subscriptions deliver it at once). Active only with [`ClusterConfig::unix_time_at_zero_ms`].
//!
//! [`ClusterConfig::unix_time_at_zero_ms`]: super::ClusterConfig::unix_time_at_zero_ms

use std::time::Duration;

use super::consumer::{KEY_SHARED, SHARED};
use super::store::Entry;
use super::topic::SubState;
use super::Cluster;

impl Cluster {
    /// The wall clock now, in Unix milliseconds (`None` when delayed delivery is off).
    pub(crate) fn unix_now_ms(&self) -> Option<u64> {
        let base = self.config.unix_time_at_zero_ms?;
        Some(base.saturating_add(u64::try_from(self.now.as_millis()).unwrap_or(u64::MAX)))
    }

    /// When `entry` must wait on `sub`: its delivery time, if still in the future.
    pub(crate) fn delivery_time(&self, s: &SubState, entry: &Entry) -> Option<u64> {
        if s.sub_type != SHARED && s.sub_type != KEY_SHARED {
            return None;
        }
        let at = u64::try_from(entry.metadata.deliver_at_time?).ok()?;
        (at > self.unix_now_ms()?).then_some(at)
    }

    /// Moves the set-aside entries whose time came to redelivery, and dispatches them.
    pub(crate) fn release_delayed(&mut self) {
        let Some(now_ms) = self.unix_now_ms() else {
            return;
        };
        let mut touched = Vec::new();
        for (topic, t) in &mut self.loaded {
            for (name, s) in &mut t.subs {
                let due: Vec<usize> = s
                    .delayed
                    .iter()
                    .filter(|(_, at)| **at <= now_ms)
                    .map(|(i, _)| *i)
                    .collect();
                if due.is_empty() {
                    continue;
                }
                for i in due {
                    s.delayed.remove(&i);
                    s.redeliver.insert(i);
                }
                touched.push((topic.clone(), name.clone()));
            }
        }
        for (topic, sub) in touched {
            self.dispatch(&topic, &sub);
        }
    }

    /// The driver time at which the earliest set-aside entry is due.
    pub(crate) fn next_delayed(&self) -> Option<Duration> {
        let base = self.config.unix_time_at_zero_ms?;
        let at = self
            .loaded
            .values()
            .flat_map(|t| t.subs.values())
            .flat_map(|s| s.delayed.values())
            .min()?;
        Some(Duration::from_millis(at.saturating_sub(base)))
    }
}
