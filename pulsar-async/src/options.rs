//! Client settings and the client builder shared by every adapter.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_core::{AuthProvider, ClientConfig, ServiceUrl};

use crate::error::Error;
use crate::tls::{ClientCertificate, TlsOptions, TrustRoots};

/// Default bound on the bytes handed to sockets and not yet written, across all connections.
pub const DEFAULT_MAX_WRITE_BUFFER: usize = 16 * 1024 * 1024;
/// Default bound on a write that makes no progress before its connection is given up.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of events kept for a slow [`events`](crate::ClientHandle::events) subscriber.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;

/// Everything an adapter needs to start a client.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The core's configuration (service URL, timeouts, authentication, ...), passed through.
    pub core: ClientConfig,
    /// TLS settings.
    pub tls: TlsOptions,
    /// Bound on bytes handed to sockets and not yet written: above it, sends wait (or fail with
    /// `QueueFull` when the producer fails fast) until the sockets catch up.
    pub max_write_buffer: usize,
    /// Events kept per [`events`](crate::ClientHandle::events) subscriber before the oldest are
    /// dropped (and counted in a [`ClientEvent::Lagged`](crate::ClientEvent::Lagged)).
    pub event_buffer: usize,
    /// A connection whose socket accepts no byte for this long while bytes wait is closed (and
    /// its producers and consumers reconnect).
    pub write_timeout: Duration,
    /// Cluster-level failover (the Java client's `AutoClusterFailover`): when set, the client
    /// starts on its primary (in place of `core.service_url`), probes every cluster and switches
    /// between them as [`ClusterFailover`](pulsar_core::ClusterFailover) describes. `None` (the
    /// default): one service URL for the client's life, unless
    /// [`ClientHandle::set_service_url`](crate::ClientHandle::set_service_url) changes it.
    pub cluster_failover: Option<pulsar_core::ClusterFailoverConfig>,
}

impl ClientOptions {
    /// Defaults for `service_url`, with a random seed and the wall clock set from the system.
    pub fn new(service_url: impl Into<String>) -> ClientOptions {
        let mut core = ClientConfig::new(service_url);
        core.seed = random_seed();
        ClientOptions {
            core,
            tls: TlsOptions::default(),
            max_write_buffer: DEFAULT_MAX_WRITE_BUFFER,
            event_buffer: DEFAULT_EVENT_BUFFER,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            cluster_failover: None,
        }
    }

    /// Checks what the core does not: TLS requirements.
    pub fn validate(&self) -> Result<ServiceUrl, Error> {
        let url = ServiceUrl::parse(&self.core.service_url)
            .map_err(|e| Error::Config(pulsar_core::ConfigError::ServiceUrl(e)))?;
        if self.tls.require_tls && !url.tls {
            return Err(Error::TlsRequired(self.core.service_url.clone()));
        }
        Ok(url)
    }

    /// Whether a TLS configuration must be built at start (TLS URL or TLS settings given, or a
    /// TLS cluster to fail over to).
    pub fn wants_tls(&self, url: &ServiceUrl) -> bool {
        let failover_tls = self.cluster_failover.as_ref().is_some_and(|f| {
            f.secondaries
                .iter()
                .any(|s| ServiceUrl::parse(s).is_ok_and(|s| s.tls))
        });
        url.tls || self.tls.is_customized() || failover_tls
    }
}

/// The Unix time now, in milliseconds (the core's wall clock reference).
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A seed for backoff jitter: clients started together must not retry in lockstep. The standard
/// library's per-process random hasher keys are the entropy source.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Starts a client from [`ClientOptions`]: implemented by each adapter's runtime marker.
pub trait Launch {
    /// The client type the adapter returns.
    type Client;
    /// Starts the client (its driver task or thread). Connects lazily: nothing is opened until
    /// the first operation needs the broker.
    fn launch(options: ClientOptions) -> Result<Self::Client, Error>;
}

/// Builds a client: the service URL, the core's options, TLS and authentication.
///
/// `L` is the adapter (`pulsar_tokio::Tokio`, `pulsar_smol::Smol`, `pulsar_blocking::Blocking`);
/// each adapter offers `Client::builder(url)` returning this builder.
#[must_use]
pub struct ClientBuilder<L> {
    options: ClientOptions,
    _launch: PhantomData<fn() -> L>,
}

impl<L> std::fmt::Debug for ClientBuilder<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("options", &self.options)
            .finish()
    }
}

impl<L: Launch> ClientBuilder<L> {
    /// A builder for `service_url`: `pulsar://host[:port][,host...]` or `pulsar+ssl://...`.
    pub fn new(service_url: impl Into<String>) -> Self {
        ClientBuilder {
            options: ClientOptions::new(service_url),
            _launch: PhantomData,
        }
    }

    /// Starts the client. Fails on an invalid configuration (URL, TLS files, TLS requirement) or
    /// when the adapter cannot start (for async adapters: no runtime in the current context).
    pub fn build(self) -> Result<L::Client, Error> {
        L::launch(self.options)
    }

    /// Authentication provider (token, basic, OAuth2, ... anything implementing
    /// [`AuthProvider`]).
    pub fn auth(mut self, provider: impl AuthProvider + 'static) -> Self {
        self.options.core.auth = Some(Box::new(provider));
        self
    }

    /// Authentication provider, already boxed.
    pub fn auth_boxed(mut self, provider: Box<dyn AuthProvider>) -> Self {
        self.options.core.auth = Some(provider);
        self
    }

    /// Deadline of lookups, producer and consumer creation and closes (and the bound of a
    /// graceful close): an operation fails this long after it started, retries included, with
    /// [`core::Error::TimedOut`](crate::core::Error::TimedOut) naming the last attempt's failure.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.options.core.operation_timeout = timeout;
        self
    }

    /// Bound on each connection attempt: TCP connect plus TLS plus the protocol handshake,
    /// together. A failed attempt is retried with backoff while the operation timeout allows.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.options.core.connection_timeout = timeout;
        self
    }

    /// Keep-alive interval (`Duration::ZERO` disables keep-alive).
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.options.core.keep_alive_interval = interval;
        self
    }

    /// Reconnection backoff: first and longest delay.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.options.core.backoff_initial = initial;
        self.options.core.backoff_max = max;
        self
    }

    /// Connections per broker.
    pub fn connections_per_broker(mut self, n: usize) -> Self {
        self.options.core.connections_per_broker = n;
        self
    }

    /// Connects through a proxy (the Java client's `proxyServiceUrl` and `proxyProtocol`): with
    /// [`ProxyProtocol::Sni`](pulsar_core::ProxyProtocol::Sni) every socket goes to `url` and TLS
    /// names the broker it is for. Needs a `pulsar+ssl://` service URL.
    pub fn proxy(mut self, url: impl Into<String>, protocol: pulsar_core::ProxyProtocol) -> Self {
        self.options.core.proxy_service_url = Some(url.into());
        self.options.core.proxy_protocol = Some(protocol);
        self
    }

    /// Advertised listener name used in lookups.
    pub fn listener_name(mut self, name: impl Into<String>) -> Self {
        self.options.core.listener_name = Some(name.into());
        self
    }

    /// Any other core setting: `builder.configure(|c| c.max_lookup_redirects = 5)`. Every option
    /// the core has is reachable this way.
    pub fn configure(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        f(&mut self.options.core);
        self
    }

    /// Trust the certificates of a PEM file (Pulsar's `tlsTrustCertsFilePath`).
    pub fn tls_trust_certs_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.tls.trust = TrustRoots::PemFile(path.into());
        self
    }

    /// Trust the certificates of PEM text.
    pub fn tls_trust_certs_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.options.tls.trust = TrustRoots::Pem(pem.into());
        self
    }

    /// Trust the operating system's store (the default).
    pub fn tls_trust_system_roots(mut self) -> Self {
        self.options.tls.trust = TrustRoots::System;
        self
    }

    /// Present a client certificate (mutual TLS): certificate chain and private key PEM files.
    pub fn tls_client_certificate(
        mut self,
        cert_chain: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Self {
        self.options.tls.client_certificate = Some(ClientCertificate::new(cert_chain, private_key));
        self
    }

    /// Accept broker certificates whose names do not match the host (the chain is still
    /// verified). For testing only.
    pub fn danger_skip_hostname_verification(mut self) -> Self {
        self.options.tls.skip_hostname_verification = true;
        self
    }

    /// Accept any broker certificate. For testing only.
    pub fn danger_accept_invalid_certificates(mut self) -> Self {
        self.options.tls.accept_invalid_certificates = true;
        self
    }

    /// Refuse `pulsar://` URLs: every connection must use TLS.
    pub fn require_tls(mut self) -> Self {
        self.options.tls.require_tls = true;
        self
    }

    /// All TLS settings at once.
    pub fn tls_options(mut self, tls: TlsOptions) -> Self {
        self.options.tls = tls;
        self
    }

    /// Bound on bytes handed to sockets and not yet written (default 16 MiB).
    pub fn max_write_buffer(mut self, bytes: usize) -> Self {
        self.options.max_write_buffer = bytes.max(1);
        self
    }

    /// Events kept per slow `events()` subscriber (default 1024).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.options.event_buffer = events.max(1);
        self
    }

    /// Bound on a write that makes no progress (default 30 s).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// The options gathered so far.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }
}
