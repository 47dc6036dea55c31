//! Unique topic names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A topic name no other test (in this process, or in an earlier run against the same broker)
/// uses: `persistent://public/default/{prefix}-{pid}-{time}-{n}`.
pub fn unique_topic(prefix: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "persistent://public/default/{prefix}-{}-{millis}-{n}",
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_keep_the_prefix() {
        let a = unique_topic("t");
        let b = unique_topic("t");
        assert_ne!(a, b);
        assert!(a.starts_with("persistent://public/default/t-"));
    }
}
