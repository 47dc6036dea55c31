//! Topic and namespace names: parsing, normalization and validation.
//!
//! `my-topic` → `persistent://public/default/my-topic`; `tenant/ns/topic` → `persistent://tenant/ns/topic`;
//! full names keep their domain (`persistent` or `non-persistent`); a local name ending in
//! `-partition-N` names partition `N` of a partitioned topic.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Suffix that names one partition of a partitioned topic.
pub const PARTITION_SUFFIX: &str = "-partition-";

/// Why a topic or namespace name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name was empty.
    #[error("empty topic name")]
    Empty,
    /// The domain before `://` is neither `persistent` nor `non-persistent`.
    #[error("invalid topic domain {0:?} (expected persistent or non-persistent)")]
    InvalidDomain(String),
    /// The name does not have one of the accepted shapes.
    #[error("invalid topic name {0:?}: expected `topic`, `tenant/namespace/topic` or `domain://tenant/namespace/topic`")]
    InvalidFormat(String),
    /// The tenant is empty or holds characters other than letters, digits, `-`, `_`, `=`, `:` and `.`.
    #[error("invalid tenant {0:?}")]
    InvalidTenant(String),
    /// The namespace is empty or holds characters other than letters, digits, `-`, `_`, `=`, `:` and `.`.
    #[error("invalid namespace {0:?}")]
    InvalidNamespace(String),
    /// The local topic name is empty.
    #[error("empty local topic name in {0:?}")]
    EmptyLocalName(String),
}

/// Persistent or non-persistent storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum TopicDomain {
    /// `persistent://`
    Persistent,
    /// `non-persistent://`
    NonPersistent,
}

impl TopicDomain {
    /// The scheme text (`persistent` or `non-persistent`).
    pub fn as_str(self) -> &'static str {
        match self {
            TopicDomain::Persistent => "persistent",
            TopicDomain::NonPersistent => "non-persistent",
        }
    }
}

/// A validated, fully qualified topic name.
///
/// One shared allocation: the full name, with the offsets of its parts (a clone is a reference
/// count; every producer and consumer on a topic shares the client's one copy of the name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName {
    domain: TopicDomain,
    /// `domain://tenant/namespace/local`.
    full: Arc<str>,
    /// Where the namespace starts in `full`.
    namespace_at: u32,
    /// Where the local name starts in `full`.
    local_at: u32,
    partition: Option<u32>,
}

impl Ord for TopicName {
    /// By domain, tenant, namespace, local name and partition, in that order.
    fn cmp(&self, other: &Self) -> Ordering {
        self.domain
            .cmp(&other.domain)
            .then_with(|| self.tenant().cmp(other.tenant()))
            .then_with(|| self.namespace().cmp(other.namespace()))
            .then_with(|| self.local_name().cmp(other.local_name()))
            .then_with(|| self.partition.cmp(&other.partition))
            .then_with(|| self.full.cmp(&other.full))
    }
}

impl PartialOrd for TopicName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=' | ':' | '.'))
}

impl TopicName {
    /// Parses and normalizes a topic name.
    pub fn parse(name: &str) -> Result<TopicName, TopicError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(TopicError::Empty);
        }
        let (domain, rest) = match name.split_once("://") {
            Some((d, rest)) => {
                let domain = match d {
                    "persistent" => TopicDomain::Persistent,
                    "non-persistent" => TopicDomain::NonPersistent,
                    other => return Err(TopicError::InvalidDomain(other.to_string())),
                };
                (domain, rest)
            }
            None => {
                let parts: Vec<&str> = name.split('/').collect();
                let rest = match parts.len() {
                    1 => format!("public/default/{name}"),
                    3 => name.to_string(),
                    _ => return Err(TopicError::InvalidFormat(name.to_string())),
                };
                return Self::from_parts(TopicDomain::Persistent, &rest, name);
            }
        };
        Self::from_parts(domain, rest, name)
    }

    fn from_parts(
        domain: TopicDomain,
        rest: &str,
        original: &str,
    ) -> Result<TopicName, TopicError> {
        // tenant/namespace/local, or the legacy tenant/cluster/namespace/local; the local name may hold
        // further slashes only in the legacy form's last part.
        let mut it = rest.splitn(3, '/');
        let tenant = it.next().unwrap_or_default();
        let second = it.next();
        let third = it.next();
        let (Some(second), Some(third)) = (second, third) else {
            return Err(TopicError::InvalidFormat(original.to_string()));
        };
        if !valid_segment(tenant) {
            return Err(TopicError::InvalidTenant(tenant.to_string()));
        }
        // Legacy (v1) names carry a cluster: tenant/cluster/namespace/local.
        let (namespace, local) = match third.split_once('/') {
            Some((ns, local)) if valid_segment(ns) && valid_segment(second) => {
                (format!("{second}/{ns}"), local)
            }
            _ => {
                if !valid_segment(second) {
                    return Err(TopicError::InvalidNamespace(second.to_string()));
                }
                (second.to_string(), third)
            }
        };
        if local.is_empty() {
            return Err(TopicError::EmptyLocalName(original.to_string()));
        }
        let partition = local
            .rfind(PARTITION_SUFFIX)
            .and_then(|i| local.get(i + PARTITION_SUFFIX.len()..))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok());
        Ok(TopicName::build(
            domain, tenant, &namespace, local, partition,
        ))
    }

    /// The name of these parts (already validated).
    fn build(
        domain: TopicDomain,
        tenant: &str,
        namespace: &str,
        local: &str,
        partition: Option<u32>,
    ) -> TopicName {
        let full = format!("{}://{}/{}/{}", domain.as_str(), tenant, namespace, local);
        let offset = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let namespace_at = domain.as_str().len() + 3 + tenant.len() + 1;
        let local_at = namespace_at + namespace.len() + 1;
        TopicName {
            domain,
            full: Arc::from(full),
            namespace_at: offset(namespace_at),
            local_at: offset(local_at),
            partition,
        }
    }

    /// The full name, shared (a reference count, no copy).
    pub(crate) fn shared(&self) -> Arc<str> {
        self.full.clone()
    }

    /// A part of the full name (empty if the offsets were out of range, which `build` rules out).
    fn slice(&self, from: usize, to: usize) -> &str {
        self.full.get(from..to).unwrap_or_default()
    }

    /// The fully qualified name, e.g. `persistent://public/default/my-topic`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
    /// Persistent or non-persistent.
    pub fn domain(&self) -> TopicDomain {
        self.domain
    }
    /// The tenant (`public` by default).
    pub fn tenant(&self) -> &str {
        let from = self.domain.as_str().len() + 3;
        self.slice(from, (self.namespace_at as usize).saturating_sub(1))
    }
    /// The namespace inside the tenant (`default` by default).
    pub fn namespace(&self) -> &str {
        self.slice(
            self.namespace_at as usize,
            (self.local_at as usize).saturating_sub(1),
        )
    }
    /// `tenant/namespace`.
    pub fn namespace_name(&self) -> String {
        format!("{}/{}", self.tenant(), self.namespace())
    }
    /// The local name, e.g. `my-topic-partition-2`.
    pub fn local_name(&self) -> &str {
        self.slice(self.local_at as usize, self.full.len())
    }
    /// The partition index when the name is `...-partition-N`.
    pub fn partition(&self) -> Option<u32> {
        self.partition
    }
    /// Whether the name designates one partition of a partitioned topic.
    pub fn is_partition(&self) -> bool {
        self.partition.is_some()
    }
    /// Whether the topic is persistent.
    pub fn is_persistent(&self) -> bool {
        self.domain == TopicDomain::Persistent
    }

    /// The name of partition `index` of this (partitioned) topic.
    pub fn partition_name(&self, index: u32) -> TopicName {
        let base = self.base_topic();
        let local = format!("{}{}{}", base.local_name(), PARTITION_SUFFIX, index);
        TopicName::build(
            base.domain,
            base.tenant(),
            base.namespace(),
            &local,
            Some(index),
        )
    }

    /// The partitioned topic this partition belongs to (itself when it is not a partition).
    pub fn base_topic(&self) -> TopicName {
        match self.partition {
            None => self.clone(),
            Some(_) => {
                let local = self.local_name();
                let cut = local.rfind(PARTITION_SUFFIX).unwrap_or(local.len());
                let local = local.get(..cut).unwrap_or(local);
                TopicName::build(self.domain, self.tenant(), self.namespace(), local, None)
            }
        }
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for TopicName {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicName::parse(s)
    }
}

/// Validates a namespace name (`tenant/namespace`), returning it trimmed.
pub fn parse_namespace(namespace: &str) -> Result<String, TopicError> {
    let ns = namespace.trim();
    if ns.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut parts = ns.split('/');
    let tenant = parts.next().unwrap_or_default();
    let Some(name) = parts.next() else {
        return Err(TopicError::InvalidFormat(ns.to_string()));
    };
    if !valid_segment(tenant) {
        return Err(TopicError::InvalidTenant(tenant.to_string()));
    }
    if !valid_segment(name) {
        return Err(TopicError::InvalidNamespace(name.to_string()));
    }
    if let Some(extra) = parts.next() {
        // legacy tenant/cluster/namespace
        if !valid_segment(extra) || parts.next().is_some() {
            return Err(TopicError::InvalidFormat(ns.to_string()));
        }
    }
    Ok(ns.to_string())
}

/// The topic names a client holds, one shared copy each: every producer, partition and consumer
/// on a topic refers to the same allocation. Names nobody else holds any more are dropped when the
/// set has doubled since the last sweep (amortized constant time per name).
#[derive(Debug, Default)]
pub(crate) struct TopicNames {
    names: BTreeSet<Arc<str>>,
    /// The set's size that triggers the next sweep.
    sweep_at: usize,
}

impl TopicNames {
    /// The shared copy of `name`.
    pub(crate) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.names.get(name) {
            return n.clone();
        }
        if self.names.len() >= self.sweep_at {
            self.names.retain(|n| Arc::strong_count(n) > 1);
            self.sweep_at = (2 * self.names.len()).max(64);
        }
        let n: Arc<str> = Arc::from(name);
        self.names.insert(n.clone());
        n
    }

    /// `name` with its full name replaced by the shared copy.
    pub(crate) fn intern_name(&mut self, mut name: TopicName) -> TopicName {
        name.full = self.intern(&name.full);
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_share_one_copy_and_unused_ones_go() {
        let mut names = TopicNames::default();
        let a = names.intern_name(TopicName::parse("my-topic").unwrap());
        let b =
            names.intern_name(TopicName::parse("persistent://public/default/my-topic").unwrap());
        assert!(Arc::ptr_eq(&a.shared(), &b.shared()));
        assert_eq!(a, b);
        assert_eq!(b.local_name(), "my-topic");
        drop((a, b));
        // Enough other names to trigger sweeps: the unused one is dropped, the held ones stay.
        let held: Vec<Arc<str>> = (0..200).map(|i| names.intern(&format!("t{i}"))).collect();
        assert!(!names.names.contains("persistent://public/default/my-topic"));
        assert!(held.iter().all(|h| names.names.contains(&**h)));
        assert!(names.names.len() <= 200);
    }

    #[test]
    fn order_is_by_parts() {
        // Tenant "a" before "a-x", although '-' sorts before '/' in the full names.
        let a = TopicName::parse("a/ns/t").unwrap();
        let b = TopicName::parse("a-x/ns/t").unwrap();
        assert!(a < b);
        assert!(a.as_str() > b.as_str());
    }

    #[test]
    fn short_names_are_normalized() {
        let t = TopicName::parse("my-topic").unwrap();
        assert_eq!(t.as_str(), "persistent://public/default/my-topic");
        assert_eq!(t.tenant(), "public");
        assert_eq!(t.namespace(), "default");
        assert_eq!(t.local_name(), "my-topic");
        assert_eq!(t.partition(), None);
        let t = TopicName::parse("acme/ns1/orders").unwrap();
        assert_eq!(t.as_str(), "persistent://acme/ns1/orders");
        assert_eq!(t.namespace_name(), "acme/ns1");
    }

    #[test]
    fn full_names_and_domains() {
        let t = TopicName::parse("non-persistent://acme/ns1/x").unwrap();
        assert_eq!(t.domain(), TopicDomain::NonPersistent);
        assert!(!t.is_persistent());
        assert_eq!(t.to_string(), "non-persistent://acme/ns1/x");
        let t = TopicName::parse("persistent://acme/cluster/ns1/x").unwrap();
        assert_eq!(t.namespace(), "cluster/ns1");
        assert_eq!(t.local_name(), "x");
    }

    #[test]
    fn partitions() {
        let t = TopicName::parse("persistent://a/b/t-partition-12").unwrap();
        assert_eq!(t.partition(), Some(12));
        assert_eq!(t.base_topic().as_str(), "persistent://a/b/t");
        let base = TopicName::parse("t").unwrap();
        let p = base.partition_name(3);
        assert_eq!(p.as_str(), "persistent://public/default/t-partition-3");
        assert_eq!(p.partition(), Some(3));
        assert_eq!(TopicName::parse("t-partition-x").unwrap().partition(), None);
        assert_eq!(TopicName::parse("t-partition-").unwrap().partition(), None);
    }

    #[test]
    fn invalid_names_give_typed_errors() {
        assert_eq!(TopicName::parse(""), Err(TopicError::Empty));
        assert_eq!(TopicName::parse("   "), Err(TopicError::Empty));
        assert!(matches!(
            TopicName::parse("kafka://a/b/c"),
            Err(TopicError::InvalidDomain(d)) if d == "kafka"
        ));
        assert!(matches!(
            TopicName::parse("ns/topic"),
            Err(TopicError::InvalidFormat(_))
        ));
        assert!(matches!(
            TopicName::parse("a/b/c/d"),
            Err(TopicError::InvalidFormat(_))
        ));
        assert!(matches!(
            TopicName::parse("persistent://a/b"),
            Err(TopicError::InvalidFormat(_))
        ));
        assert!(matches!(
            TopicName::parse("persistent://a b/ns/t"),
            Err(TopicError::InvalidTenant(_))
        ));
        assert!(matches!(
            TopicName::parse("persistent://a/n$s/t"),
            Err(TopicError::InvalidNamespace(_))
        ));
        assert!(matches!(
            TopicName::parse("persistent://a/ns/"),
            Err(TopicError::EmptyLocalName(_))
        ));
    }

    #[test]
    fn namespaces() {
        assert_eq!(parse_namespace("public/default").unwrap(), "public/default");
        assert!(matches!(
            parse_namespace("public"),
            Err(TopicError::InvalidFormat(_))
        ));
        assert!(matches!(
            parse_namespace("pu blic/x"),
            Err(TopicError::InvalidTenant(_))
        ));
        assert_eq!(parse_namespace(""), Err(TopicError::Empty));
    }
}
