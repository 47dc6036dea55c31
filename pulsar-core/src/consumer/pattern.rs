//! Topic patterns: a regex over the topics of one namespace.

use regex::Regex;

use crate::error::Error;
use crate::topic::{TopicError, PARTITION_SUFFIX};

/// A compiled pattern: `persistent://tenant/ns/<regex>` (or `tenant/ns/<regex>`, or a bare regex
/// in `public/default`), matched against whole topic names with their partition suffix removed.
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    /// The pattern as given (sent to the broker's topic-list watcher).
    pub(crate) source: String,
    /// `tenant/namespace`.
    pub(crate) namespace: String,
    regex: Regex,
}

impl TopicPattern {
    pub(crate) fn parse(pattern: &str) -> Result<TopicPattern, Error> {
        // Every rejection names the pattern; the reason is in the doc of `parse`.
        let invalid =
            |_reason: &str| Error::InvalidTopic(TopicError::InvalidFormat(pattern.into()));
        let (domain, rest) = match pattern.split_once("://") {
            Some((d, r)) => (d, r),
            None => ("persistent", pattern),
        };
        if domain != "persistent" && domain != "non-persistent" {
            return Err(invalid("the domain must be persistent or non-persistent"));
        }
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        let (tenant, ns, local) = match parts.as_slice() {
            [t, n, l] => (*t, *n, *l),
            [l] => ("public", "default", *l),
            _ => return Err(invalid("expected tenant/namespace/regex")),
        };
        if tenant.is_empty() || ns.is_empty() || local.is_empty() {
            return Err(invalid("empty tenant, namespace or regex"));
        }
        let full = format!("^{domain}://{tenant}/{ns}/(?:{local})$");
        let regex = Regex::new(&full).map_err(|_| invalid("invalid regular expression"))?;
        Ok(TopicPattern {
            source: format!("{domain}://{tenant}/{ns}/{local}"),
            namespace: format!("{tenant}/{ns}"),
            regex,
        })
    }

    /// Whether `topic` (fully qualified, possibly a partition) matches. System topics (local name
    /// starting with `__`) never match.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        let base = match topic.rfind(PARTITION_SUFFIX) {
            Some(i)
                if topic[i + PARTITION_SUFFIX.len()..]
                    .chars()
                    .all(|c| c.is_ascii_digit())
                    && i + PARTITION_SUFFIX.len() < topic.len() =>
            {
                &topic[..i]
            }
            _ => topic,
        };
        let local = base.rsplit('/').next().unwrap_or(base);
        !local.starts_with("__") && self.regex.is_match(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_names_in_the_namespace() {
        let p = TopicPattern::parse("persistent://public/default/orders-.*").unwrap();
        assert_eq!(p.namespace, "public/default");
        assert!(p.matches("persistent://public/default/orders-eu"));
        assert!(p.matches("persistent://public/default/orders-eu-partition-3"));
        assert!(!p.matches("persistent://public/default/x-orders-eu"));
        assert!(!p.matches("persistent://public/other/orders-eu"));
        assert!(!p.matches("non-persistent://public/default/orders-eu"));
        assert!(!p.matches("persistent://public/default/__change_events"));
        let bare = TopicPattern::parse("t[0-9]").unwrap();
        assert!(bare.matches("persistent://public/default/t7"));
        assert!(!bare.matches("persistent://public/default/t77"));
        assert!(TopicPattern::parse("persistent://public/default/(").is_err());
    }
}
