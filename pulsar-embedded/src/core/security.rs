//! Who may connect, produce and consume: roles from tokens, and per-role rules (source networks,
//! topic patterns), taken when a connection authenticates, as the seed broker does. Rules change at
//! run time with [`Cluster::set_rules`]; [`Cluster::force_disconnect`] makes a role's connections
//! take the new ones.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::Cluster;

/// The role of connections that present no credentials (when authentication is off).
pub const ANONYMOUS: &str = "anonymous";

/// What one role may do. Topic patterns are full topic names in which `*` matches any run of
/// characters (`persistent://public/default/orders-*`, `*`); a partition matches its base name's
/// patterns too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoleRules {
    /// Networks the role may connect from (`10.0.0.0/8`, `127.0.0.1/32`, `::1/128`); empty: any.
    pub networks: Vec<String>,
    /// Topics the role may produce to.
    pub produce: Vec<String>,
    /// Topics the role may consume from (subscriptions and readers).
    pub consume: Vec<String>,
}

impl RoleRules {
    /// Rules from any network, producing to `produce` and consuming from `consume`.
    pub fn new(produce: &[&str], consume: &[&str]) -> RoleRules {
        RoleRules {
            networks: Vec::new(),
            produce: produce.iter().map(|s| (*s).to_owned()).collect(),
            consume: consume.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// These rules, from `networks` only.
    pub fn from_networks(mut self, networks: &[&str]) -> RoleRules {
        self.networks = networks.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Whether a peer at `peer` (`ip:port`, or a name such as `in-process`) may connect: any
    /// peer when no network is listed; a peer that is not an IP address only then.
    pub fn allows_peer(&self, peer: &str) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        let Some(ip) = peer_ip(peer) else {
            return false;
        };
        self.networks.iter().any(|n| in_network(ip, n))
    }

    /// Whether the role may produce to `topic`.
    pub fn may_produce(&self, topic: &str) -> bool {
        matches_any(&self.produce, topic)
    }

    /// Whether the role may consume from `topic`.
    pub fn may_consume(&self, topic: &str) -> bool {
        matches_any(&self.consume, topic)
    }
}

fn peer_ip(peer: &str) -> Option<IpAddr> {
    if let Ok(sa) = peer.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    peer.parse().ok()
}

fn in_network(ip: IpAddr, network: &str) -> bool {
    let (addr, bits) = match network.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (network, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => prefix_eq(
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(n)) << 96,
            bits.unwrap_or(32).min(32),
        ),
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            prefix_eq(u128::from(a), u128::from(n), bits.unwrap_or(128).min(128))
        }
        _ => false,
    }
}

fn prefix_eq(a: u128, b: u128, bits: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - bits);
    a & mask == b & mask
}

fn matches_any(patterns: &[String], topic: &str) -> bool {
    let base = topic
        .rsplit_once("-partition-")
        .filter(|(_, i)| i.parse::<u32>().is_ok())
        .map(|(b, _)| b);
    patterns
        .iter()
        .any(|p| glob(p, topic) || base.is_some_and(|b| glob(p, b)))
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = rest.get(i + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Cluster {
    /// Replaces the authorization rules (role → rules); `None`: every role may do everything.
    /// Connections keep the rights they took when they authenticated: call
    /// [`force_disconnect`](Self::force_disconnect) for a role whose rights changed.
    pub fn set_rules(&mut self, rules: Option<BTreeMap<String, RoleRules>>) {
        self.rules = rules;
    }

    /// The rights of a role that just authenticated: `None` when no rules are set (anything goes).
    pub(crate) fn rights_of(&self, role: &str) -> Option<RoleRules> {
        let rules = self.rules.as_ref()?;
        Some(rules.get(role).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_networks_and_partitions() {
        assert!(glob("*", "anything"));
        assert!(glob(
            "persistent://public/default/a-*",
            "persistent://public/default/a-1"
        ));
        assert!(!glob(
            "persistent://public/default/a-*",
            "persistent://public/default/b-1"
        ));
        assert!(glob("*://public/*/x", "persistent://public/default/x"));
        assert!(!glob("a*b", "ac"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        let r = RoleRules::new(&["persistent://public/default/orders"], &[])
            .from_networks(&["10.0.0.0/8", "::1/128"]);
        assert!(r.may_produce("persistent://public/default/orders-partition-3"));
        assert!(!r.may_consume("persistent://public/default/orders"));
        assert!(r.allows_peer("10.1.2.3:5000"));
        assert!(!r.allows_peer("11.1.2.3:5000"));
        assert!(r.allows_peer("[::1]:6650"));
        assert!(!r.allows_peer("in-process"));
        assert!(RoleRules::default().allows_peer("in-process"));
    }
}
