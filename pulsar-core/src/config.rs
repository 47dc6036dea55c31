//! Client configuration.

use std::time::Duration;

use crate::auth::AuthProvider;
use crate::error::ConfigError;
use crate::service_url::{BrokerAddress, ServiceUrl};

/// Default operation timeout (lookups, producer/consumer registration, close).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on TCP connect plus handshake.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keep-alive interval.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Default first reconnection delay.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default longest reconnection delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Default client-wide memory limit for messages held by producers (64 MiB, as the Java client).
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;
/// Default maximum number of lookup redirects.
pub const DEFAULT_MAX_LOOKUP_REDIRECTS: u32 = 20;
/// The largest partition count accepted from a broker. Producers and consumers keep state per
/// partition, so a larger (corrupt or hostile) count is refused as a protocol error instead of
/// being allocated.
pub const MAX_PARTITIONS: u32 = 100_000;

/// How a proxy given as [`ClientConfig::proxy_service_url`] routes connections (the Java client's
/// `ProxyProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyProtocol {
    /// Every connection's socket goes to the proxy, and TLS names the broker it is for (the
    /// server name indication, also the name the certificate is checked against): the proxy
    /// routes on it. Needs a `pulsar+ssl://` service URL.
    Sni,
}

/// Everything a [`Client`](crate::Client) needs. Build with [`ClientConfig::new`] and set fields.
///
/// Every duration here, in [`ProducerOptions`](crate::ProducerOptions) and in
/// [`ConsumerOptions`](crate::ConsumerOptions) may be as large as `Duration::MAX` to mean
/// "never": a deadline that does not fit in an `Instant` is put about a century away.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// `pulsar://host[:port][,host...]` or `pulsar+ssl://...`.
    pub service_url: String,
    /// Seed of every random choice (backoff jitter). Same seed + same inputs ⇒ same outputs.
    pub seed: u64,
    /// Deadline of each operation: a lookup, creating a producer or consumer (partition count,
    /// lookup, connection, registration, with retries and backoff) fails this long after it
    /// started, whatever is in flight, with [`Error::TimedOut`](crate::Error::TimedOut) naming the
    /// last attempt's failure. Also the deadline of each request (CLOSE_*, ...) and the bound of a
    /// graceful close.
    pub operation_timeout: Duration,
    /// Bound on each connection attempt: TCP connect plus the CONNECT/CONNECTED handshake,
    /// together. A server that answers the handshake with something other than the Pulsar
    /// protocol fails the operations waiting for it at once
    /// ([`Error::NotPulsar`](crate::Error::NotPulsar)).
    pub connection_timeout: Duration,
    /// Keep-alive interval: PING after this long without input, close after twice as long.
    /// `Duration::ZERO` disables keep-alive.
    pub keep_alive_interval: Duration,
    /// First reconnection delay.
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Connections kept per logical broker address (at least 1).
    pub connections_per_broker: usize,
    /// Lookup redirects followed before failing.
    pub max_lookup_redirects: u32,
    /// Authentication provider (none: no auth data in CONNECT).
    pub auth: Option<Box<dyn AuthProvider>>,
    /// Client version string sent in CONNECT.
    pub client_version: String,
    /// Advertised listener name sent in lookups (the Java client's `listenerName`): the broker
    /// answers with the addresses of that listener. Must not be blank.
    pub listener_name: Option<String>,
    /// Wall-clock time (Unix milliseconds) at the `now` given to [`Client::new`](crate::Client::new).
    /// The core has no clock: publish times are this plus the time elapsed since. Runtimes set it from
    /// the system clock (and may resync with [`Client::sync_wall_clock`](crate::Client::sync_wall_clock)).
    pub unix_time_ms: u64,
    /// Payload bytes all producers together may hold (accepted, not yet acknowledged); beyond it
    /// sends fail with [`SendError::MemoryLimit`](crate::SendError::MemoryLimit). A single message
    /// larger than the limit is accepted when nothing else is held. 0: no limit.
    pub memory_limit: usize,
    /// Proxy every connection goes through (`pulsar+ssl://proxy:4443`, one host), routed as
    /// [`proxy_protocol`](Self::proxy_protocol) says; set both or neither. Lookups and the
    /// brokers they name are unchanged: only where sockets go differs (see
    /// [`Client::tls_server_name`](crate::Client::tls_server_name)).
    pub proxy_service_url: Option<String>,
    /// How the proxy of [`proxy_service_url`](Self::proxy_service_url) routes connections.
    pub proxy_protocol: Option<ProxyProtocol>,
}

impl ClientConfig {
    /// A configuration with default settings for `service_url` and seed 0.
    pub fn new(service_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            service_url: service_url.into(),
            seed: 0,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            keep_alive_interval: DEFAULT_KEEP_ALIVE,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            connections_per_broker: 1,
            max_lookup_redirects: DEFAULT_MAX_LOOKUP_REDIRECTS,
            auth: None,
            client_version: concat!("pulsar-sansio-rust-", env!("CARGO_PKG_VERSION")).to_string(),
            listener_name: None,
            unix_time_ms: 0,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            proxy_service_url: None,
            proxy_protocol: None,
        }
    }

    /// Sets the seed (builder style).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the authentication provider (builder style).
    pub fn with_auth(mut self, auth: impl AuthProvider + 'static) -> Self {
        self.auth = Some(Box::new(auth));
        self
    }

    pub(crate) fn validate(&self) -> Result<ServiceUrl, ConfigError> {
        let url = ServiceUrl::parse(&self.service_url)?;
        if self.operation_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                field: "operation_timeout",
                reason: "must be positive",
            });
        }
        if self.connection_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                field: "connection_timeout",
                reason: "must be positive",
            });
        }
        if self.connections_per_broker == 0 {
            return Err(ConfigError::Invalid {
                field: "connections_per_broker",
                reason: "must be at least 1",
            });
        }
        if self
            .listener_name
            .as_deref()
            .is_some_and(|l| l.trim().is_empty())
        {
            return Err(ConfigError::Invalid {
                field: "listener_name",
                reason: "must not be blank (use None for the default listener)",
            });
        }
        if self.backoff_initial.is_zero() || self.backoff_max < self.backoff_initial {
            return Err(ConfigError::Invalid {
                field: "backoff_initial",
                reason: "must be positive and at most backoff_max",
            });
        }
        self.sni_proxy(&url)?;
        Ok(url)
    }

    /// The proxy's address when connections go through an SNI proxy.
    pub(crate) fn sni_proxy(
        &self,
        service: &ServiceUrl,
    ) -> Result<Option<BrokerAddress>, ConfigError> {
        let invalid = |reason| ConfigError::Invalid {
            field: "proxy_service_url",
            reason,
        };
        match (&self.proxy_service_url, self.proxy_protocol) {
            (None, None) => Ok(None),
            (Some(url), Some(ProxyProtocol::Sni)) => {
                if !service.tls {
                    return Err(invalid(
                        "SNI routing needs TLS: use a pulsar+ssl:// service URL",
                    ));
                }
                BrokerAddress::parse(url)
                    .map(Some)
                    .map_err(|_| invalid("must be one pulsar:// or pulsar+ssl:// host[:port]"))
            }
            _ => Err(invalid("set proxy_service_url and proxy_protocol together")),
        }
    }
}
