//! The connection pool: logical broker address → connection(s), and the service URL hosts tried in turn.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::handle::ConnectionId;
use crate::rng::SplitMix64;
use crate::service_url::{BrokerAddress, ServiceUrl};

/// What a connection is for: the broker it serves (`logical`) and where the socket goes (`physical`,
/// which differs when going through a proxy).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PoolKey {
    pub(crate) logical: BrokerAddress,
    pub(crate) physical: BrokerAddress,
}

impl PoolKey {
    /// A direct connection.
    pub(crate) fn direct(address: BrokerAddress) -> PoolKey {
        PoolKey {
            logical: address.clone(),
            physical: address,
        }
    }

    /// Whether this goes through a proxy (CONNECT carries `proxy_to_broker_url`).
    pub(crate) fn is_proxied(&self) -> bool {
        self.logical != self.physical
    }
}

/// Connections by key, `per_broker` slots each.
#[derive(Debug)]
pub(crate) struct Pool {
    per_broker: usize,
    slots: BTreeMap<PoolKey, Vec<Option<ConnectionId>>>,
    service: ServiceUrl,
    service_index: usize,
}

impl Pool {
    pub(crate) fn new(service: ServiceUrl, per_broker: usize) -> Pool {
        Pool {
            per_broker: per_broker.max(1),
            slots: BTreeMap::new(),
            service,
            service_index: 0,
        }
    }

    /// Uses `service` from now on (from its first host); returns whether it differs.
    pub(crate) fn set_service(&mut self, service: ServiceUrl) -> bool {
        if self.service == service {
            return false;
        }
        self.service = service;
        self.service_index = 0;
        true
    }

    /// The service URL host currently in use.
    pub(crate) fn service_host(&self) -> BrokerAddress {
        let i = self.service_index % self.service.hosts.len().max(1);
        self.service
            .hosts
            .get(i)
            .cloned()
            .unwrap_or_else(|| BrokerAddress {
                host: String::new(),
                port: 0,
                tls: self.service.tls,
            })
    }

    /// Number of service hosts.
    pub(crate) fn service_hosts(&self) -> usize {
        self.service.hosts.len().max(1)
    }

    /// Whether the service URL uses TLS.
    pub(crate) fn service_tls(&self) -> bool {
        self.service.tls
    }

    /// Moves on to the next service host after `failed` failed.
    pub(crate) fn service_host_failed(&mut self, failed: &BrokerAddress) {
        if self.service_host() == *failed {
            self.service_index = (self.service_index + 1) % self.service_hosts();
        }
    }

    /// The slot index for an owner hint (producers and consumers use their id, so they come back to
    /// the same slot); `None` picks a slot at random from `rng`, as the Java client does per request.
    /// With one connection per broker nothing is drawn.
    pub(crate) fn slot_for(&self, hint: Option<u64>, rng: &mut SplitMix64) -> usize {
        let per = self.per_broker as u64;
        if per == 1 {
            return 0;
        }
        let key = hint.unwrap_or_else(|| rng.next_u64());
        // `key % per < per`, which came from a usize
        usize::try_from(key % per).unwrap_or(0)
    }

    /// The connection in a slot, if any.
    pub(crate) fn get(&self, key: &PoolKey, slot: usize) -> Option<ConnectionId> {
        self.slots
            .get(key)
            .and_then(|v| v.get(slot).copied().flatten())
    }

    /// Records a new connection in a slot.
    pub(crate) fn insert(&mut self, key: PoolKey, slot: usize, conn: ConnectionId) {
        let per = self.per_broker;
        let v = self.slots.entry(key).or_insert_with(|| vec![None; per]);
        if let Some(s) = v.get_mut(slot) {
            *s = Some(conn);
        }
    }

    /// Forgets a connection.
    pub(crate) fn remove(&mut self, key: &PoolKey, slot: usize, conn: ConnectionId) {
        if let Some(v) = self.slots.get_mut(key) {
            if let Some(s) = v.get_mut(slot) {
                if *s == Some(conn) {
                    *s = None;
                }
            }
            if v.iter().all(Option::is_none) {
                self.slots.remove(key);
            }
        }
    }
}

/// The broker URL of a lookup answer or a close/migration command, in the service URL's TLS mode.
///
/// As in the Java client, TLS is client-wide: a TLS client takes only the TLS URL (never falling back
/// to the plaintext one) and connects with TLS whatever scheme the broker wrote; a plaintext client
/// takes the plaintext URL.
pub(crate) fn pick_broker_url(
    tls: bool,
    plain: Option<&str>,
    secure: Option<&str>,
) -> Option<Result<BrokerAddress, Error>> {
    let url = if tls { secure } else { plain }?;
    if url.is_empty() {
        return None;
    }
    Some(
        BrokerAddress::parse(url)
            .map(|address| BrokerAddress { tls, ..address })
            .map_err(Error::from),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hosts_rotate_on_failure() {
        let mut p = Pool::new(ServiceUrl::parse("pulsar://a,b,c").unwrap(), 2);
        assert_eq!(p.service_host().host, "a");
        let a = p.service_host();
        p.service_host_failed(&a);
        assert_eq!(p.service_host().host, "b");
        // a stale failure report for a host no longer in use does not skip one
        p.service_host_failed(&a);
        assert_eq!(p.service_host().host, "b");
        let b = p.service_host();
        p.service_host_failed(&b);
        let c = p.service_host();
        p.service_host_failed(&c);
        assert_eq!(p.service_host().host, "a");
    }

    #[test]
    fn slots() {
        let mut p = Pool::new(ServiceUrl::parse("pulsar://a").unwrap(), 2);
        let key = PoolKey::direct(p.service_host());
        let mut rng = SplitMix64::new(1);
        assert_eq!(p.slot_for(Some(5), &mut rng), 1);
        assert_eq!(p.slot_for(Some(4), &mut rng), 0);
        assert!(p.slot_for(None, &mut rng) < 2);
        assert_eq!(p.get(&key, 0), None);
        p.insert(key.clone(), 1, ConnectionId(9));
        assert_eq!(p.get(&key, 1), Some(ConnectionId(9)));
        p.remove(&key, 1, ConnectionId(8));
        assert_eq!(p.get(&key, 1), Some(ConnectionId(9)));
        p.remove(&key, 1, ConnectionId(9));
        assert_eq!(p.get(&key, 1), None);
    }
}
