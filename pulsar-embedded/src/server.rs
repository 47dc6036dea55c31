//! The tokio adapter: listeners, one reader and one writer task per connection, one timer task,
//! all sharing the sans-IO [`Cluster`] behind a mutex (held only while it runs, never across an
//! `.await`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::{
    BacklogQuota, ClientInfo, Cluster, ClusterConfig, ConnId, Faults, Listener, Output, Retention,
    RoleRules, TopicStats,
};
use crate::disk::{Disk, Recovery, StorageConfig, StorageError};
use crate::tls::TlsConfig;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS configuration is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The on-disk log cannot be opened.
    #[error("on-disk log: {0}")]
    Storage(#[from] StorageError),
    /// No tokio runtime in the current context.
    #[error("pulsar-embedded needs a tokio runtime: {0}")]
    Runtime(String),
}

/// The embedded broker: [`EmbeddedBroker::builder`] configures and starts one.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker;

impl EmbeddedBroker {
    /// A builder with the defaults: no listener (in-process only, unless [`Builder::bind`] is
    /// called), no authentication, no deduplication, 5 MiB messages, 30 s keep-alive.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Configures and starts an embedded broker.
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    binds: Vec<String>,
    admin: Option<String>,
    tls: Option<(String, TlsConfig)>,
    advertised_host: Option<String>,
    config: ClusterConfig,
    partitioned: Vec<(String, u32)>,
    rules: Option<BTreeMap<String, RoleRules>>,
    storage: Option<StorageConfig>,
}

impl Default for Builder {
    fn default() -> Builder {
        let mut config = ClusterConfig::new(1, 0);
        config.persist_latency = (Duration::ZERO, Duration::ZERO);
        config.notes = false;
        config.history = false;
        config.empty_schema_version = true;
        Builder {
            binds: Vec::new(),
            admin: None,
            tls: None,
            advertised_host: None,
            config,
            partitioned: Vec::new(),
            rules: None,
            storage: None,
        }
    }
}

impl Builder {
    /// Listens for plain connections on `addr` (`127.0.0.1:6650`; port 0 picks a free port).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.binds.push(addr.into());
        self
    }

    /// Serves the admin REST subset (`/admin/v2/...`: tenants, namespaces, topic lists,
    /// partitioned topics, topic stats, unload) over HTTP on `addr` (feature `admin`).
    #[cfg(feature = "admin")]
    pub fn bind_admin(mut self, addr: impl Into<String>) -> Self {
        self.admin = Some(addr.into());
        self
    }

    /// Listens for TLS connections on `addr` with the certificate and key of `tls`.
    pub fn bind_tls(mut self, addr: impl Into<String>, tls: TlsConfig) -> Self {
        self.tls = Some((addr.into(), tls));
        self
    }

    /// The host name lookups answer (default: the listener's IP address).
    pub fn advertised_host(mut self, host: impl Into<String>) -> Self {
        self.advertised_host = Some(host.into());
        self
    }

    /// Broker-side message deduplication on every topic.
    pub fn deduplication(mut self, on: bool) -> Self {
        self.config.dedup = on;
        self
    }

    /// Requires clients to present this token (`token` authentication); their role is `token`.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.config.auth_token = Some(token.into());
        self
    }

    /// Accepts `token` (`token` authentication) as role `role`; authentication is on once a token
    /// is given.
    pub fn token(mut self, token: impl Into<String>, role: impl Into<String>) -> Self {
        self.config.tokens.insert(token.into(), role.into());
        self
    }

    /// Validates JSON Web Tokens (`token` authentication; HS256 with a secret, RS256 with a
    /// public key): the role is the token's `sub` claim, an expired token is refused, and a
    /// connection whose token expires is asked for a fresh one (or closed). Tokens given with
    /// [`token`](Self::token) are still accepted as they are.
    pub fn jwt(mut self, jwt: crate::core::JwtConfig) -> Self {
        self.config.jwt = Some(jwt);
        self
    }

    /// Authorization rules by role: where each may connect from, what it may produce to and
    /// consume from (the role of connections without credentials is
    /// [`ANONYMOUS`](crate::core::ANONYMOUS)). Without rules everything is allowed.
    pub fn rules(mut self, rules: BTreeMap<String, RoleRules>) -> Self {
        self.rules = Some(rules);
        self
    }

    /// `maxMessageSize` announced to clients and enforced (default 5 MiB).
    pub fn max_message_size(mut self, bytes: i32) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// How long each write takes before its receipt (default zero; Apache Pulsar's BookKeeper
    /// journal takes a millisecond or more). Tests whose timing assumes a broker that is not
    /// instantaneous can ask for it.
    pub fn persist_latency(mut self, latency: Duration) -> Self {
        self.config.persist_latency = (latency, latency);
        self
    }

    /// Keep-alive interval (zero disables).
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.config.keep_alive = interval;
        self
    }

    /// Transactions with `coordinators` transaction coordinators (0: off, the default):
    /// NEW_TXN, ADD_PARTITION_TO_TXN, ADD_SUBSCRIPTION_TO_TXN, END_TXN, transactional sends
    /// (delivered once committed) and acknowledgements (applied once committed), timeouts.
    pub fn transactions(mut self, coordinators: u32) -> Self {
        self.config.transaction_coordinators = coordinators;
        self
    }

    /// Keeps the topics in an append-only log on disk (default: in memory only): topics,
    /// cursors, deduplication state, partitioned topics and schemas survive a restart over the
    /// same directory. A receipt is sent once its entry is written (and fsynced with
    /// [`FsyncPolicy::Always`](crate::FsyncPolicy::Always)). See [`StorageConfig`].
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.storage = Some(storage);
        self
    }

    /// Retention of acknowledged messages (default: everything is kept).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// A backlog quota on every topic (default: none).
    pub fn backlog_quota(mut self, quota: BacklogQuota) -> Self {
        self.config.backlog_quota = Some(quota);
        self
    }

    /// Declares `topic` partitioned with `partitions` partitions at start.
    pub fn partitioned_topic(mut self, topic: impl Into<String>, partitions: u32) -> Self {
        self.partitioned.push((topic.into(), partitions));
        self
    }

    /// The whole sans-IO configuration (faults included, for users' own fault tests). Its
    /// `history` is turned off here (it grows with the traffic); `notes` are kept as given (read
    /// them with [`BrokerHandle::with_cluster`] and [`Cluster::poll_note`], or they pile up).
    pub fn cluster_config(mut self, config: ClusterConfig) -> Self {
        self.config = config;
        self.config.history = false;
        self
    }

    /// Binds the listeners and starts the broker's tasks on the current tokio runtime.
    pub async fn start(self) -> Result<BrokerHandle, Error> {
        tokio::runtime::Handle::try_current().map_err(|e| Error::Runtime(e.to_string()))?;
        let mut config = self.config;
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let zero = *config.unix_time_at_zero_ms.get_or_insert(unix_ms);
        let (mut cluster, disk, recovery) = match self.storage.clone() {
            Some(s) => {
                let (disk, store, recovery) = Disk::open(s, zero)?;
                (
                    Cluster::with_store(config, store),
                    Some(disk),
                    Some(recovery),
                )
            }
            None => (Cluster::new(config), None, None),
        };
        cluster.set_rules(self.rules.clone());
        for (topic, n) in &self.partitioned {
            cluster.create_partitioned_topic(topic, *n);
        }
        let mut listeners = Vec::new();
        for addr in &self.binds {
            let l = TcpListener::bind(addr.as_str())
                .await
                .map_err(|source| Error::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            listeners.push((l, None));
        }
        if let Some((addr, tls)) = &self.tls {
            let acceptor = tls.acceptor()?;
            let l = TcpListener::bind(addr.as_str())
                .await
                .map_err(|source| Error::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            listeners.push((l, Some(acceptor)));
        }
        let admin = match &self.admin {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr.as_str())
                        .await
                        .map_err(|source| Error::Bind {
                            addr: addr.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let admin_url = admin
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| format!("http://{a}"));
        let url = |l: &TcpListener, scheme: &str| {
            l.local_addr().ok().map(|a| {
                let host = self
                    .advertised_host
                    .clone()
                    .unwrap_or_else(|| a.ip().to_string());
                format!("{scheme}://{host}:{}", a.port())
            })
        };
        let service_url = listeners
            .iter()
            .find(|(_, t)| t.is_none())
            .and_then(|(l, _)| url(l, "pulsar"));
        let service_url_tls = listeners
            .iter()
            .find(|(_, t)| t.is_some())
            .and_then(|(l, _)| url(l, "pulsar+ssl"));
        let local_addr = listeners
            .iter()
            .find(|(_, t)| t.is_none())
            .and_then(|(l, _)| l.local_addr().ok());
        let inner = Arc::new(Inner {
            local_addr,
            admin_url,
            state: Mutex::new(State {
                cluster,
                writers: HashMap::new(),
                next_conn: 0,
                disk,
                storage_error: None,
            }),
            recovery,
            wake: Notify::new(),
            base: Instant::now(),
            stop: CancellationToken::new(),
            service_url,
            service_url_tls,
            in_process_name: crate_in_process_name(),
        });
        for (l, tls) in listeners {
            tokio::spawn(accept_loop(inner.clone(), l, tls));
        }
        tokio::spawn(timer_loop(inner.clone()));
        if self.storage.is_some() {
            tokio::spawn(disk_loop(inner.clone()));
        }
        #[cfg(feature = "admin")]
        if let Some(l) = admin {
            tokio::spawn(crate::admin::admin_loop(inner.clone(), l));
        }
        #[cfg(not(feature = "admin"))]
        drop(admin);
        let handle = BrokerHandle { inner };
        #[cfg(feature = "in-process")]
        crate::in_process::register(&handle);
        Ok(handle)
    }
}

fn crate_in_process_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("embedded-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What a connection's writer task is asked to do.
#[derive(Debug)]
enum Out {
    Data(Bytes),
    Close,
}

#[derive(Debug)]
struct State {
    cluster: Cluster,
    writers: HashMap<ConnId, mpsc::UnboundedSender<Out>>,
    next_conn: u64,
    disk: Option<Disk>,
    /// The last failure of the on-disk log.
    storage_error: Option<String>,
}

impl State {
    /// Writes what the last step persisted to the on-disk log, before its receipts go out. On
    /// failure the broker restarts (its connections dropped, their receipts with them): clients
    /// reconnect and resend, and the next write catches up.
    fn write_disk(&mut self, now: Duration, maintain: bool) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        let store = self.cluster.store();
        let mut r = disk.write_entries(store);
        if r.is_ok() && maintain {
            r = disk.maintain(store, false);
        }
        if let Err(e) = r {
            self.storage_error = Some(e.to_string());
            self.restart(now);
        }
    }

    /// Crashes and restarts the broker: connections and unpersisted writes are lost.
    fn restart(&mut self, now: Duration) {
        for conn in self.cluster.crash(now, 0) {
            if let Some(w) = self.writers.remove(&conn) {
                let _ = w.send(Out::Close);
            }
        }
        self.cluster.restart(now, 0);
    }

    /// Hands the cluster's output to the connections' writer tasks.
    fn pump(&mut self) {
        while let Some(o) = self.cluster.poll_transmit() {
            match o {
                Output::Data { conn, data } => {
                    if let Some(w) = self.writers.get(&conn) {
                        let _ = w.send(Out::Data(data));
                    }
                }
                Output::Close { conn } => {
                    if let Some(w) = self.writers.remove(&conn) {
                        let _ = w.send(Out::Close);
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    local_addr: Option<SocketAddr>,
    admin_url: Option<String>,
    state: Mutex<State>,
    /// Wakes the timer task when the cluster's next deadline may have moved.
    wake: Notify,
    /// Time zero of the cluster's clock.
    base: Instant,
    pub(crate) stop: CancellationToken,
    service_url: Option<String>,
    service_url_tls: Option<String>,
    in_process_name: String,
    recovery: Option<Recovery>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic while holding the lock leaves a cluster no worse than its last consistent step
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.base)
    }

    /// Statistics of every topic.
    pub(crate) fn stats(&self) -> Vec<TopicStats> {
        self.lock().cluster.stats()
    }

    /// The partition count of a partitioned topic.
    #[cfg(feature = "admin")]
    pub(crate) fn partitions(&self, topic: &str) -> Option<u32> {
        self.lock().cluster.store().partitions.get(topic).copied()
    }

    /// Runs `f` on the cluster, then delivers its output and re-arms the timer.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Cluster, Duration) -> R) -> R {
        let now = self.now();
        let r = {
            let mut st = self.lock();
            let r = f(&mut st.cluster, now);
            st.cluster.tick(now);
            st.write_disk(now, false);
            st.pump();
            r
        };
        self.wake.notify_one();
        r
    }
}

async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            () = inner.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and the like: wait a little rather than spin
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inner = inner.clone();
        match &tls {
            None => {
                let l = Listener::new(inner.service_url.clone(), None, peer.to_string());
                tokio::spawn(serve(inner, stream, l));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(s) = acceptor.accept(stream).await {
                        let l = Listener::new(
                            inner.service_url.clone(),
                            inner.service_url_tls.clone(),
                            peer.to_string(),
                        );
                        serve(inner, s, l).await;
                    }
                });
            }
        }
    }
}

/// Serves one connection (TCP, TLS or in-memory) until either side closes it.
pub(crate) async fn serve<S>(inner: Arc<Inner>, stream: S, listener: Listener)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = inner.lock();
        st.next_conn += 1;
        let id = ConnId(st.next_conn);
        let now = inner.now();
        if st.cluster.accept_from(now, id, 0, listener).is_err() {
            return;
        }
        st.writers.insert(id, tx);
        id
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let closed = Arc::new(Notify::new());
    let closed_w = closed.clone();
    tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Out::Data(d) => {
                    if wr.write_all(&d).await.is_err() {
                        break;
                    }
                }
                Out::Close => break,
            }
        }
        let _ = wr.shutdown().await;
        closed_w.notify_one();
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            () = closed.notified() => break,
            () = inner.stop.cancelled() => break,
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let data = buf.get(..n).unwrap_or_default();
        inner.with(|c, now| c.on_bytes(now, id, data));
    }
    inner.with(|c, now| c.on_closed(now, id));
    inner.lock().writers.remove(&id);
}

async fn timer_loop(inner: Arc<Inner>) {
    loop {
        let next = inner.lock().cluster.poll_timeout();
        let deadline = next.map_or_else(
            || Instant::now() + Duration::from_secs(3600),
            |d| inner.base + d,
        );
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = inner.wake.notified() => continue,
            () = tokio::time::sleep_until(deadline) => {}
        }
        inner.with(|_, _| ());
    }
}

/// Periodic work of the on-disk log: fsync per the interval policy, cursors, retention.
async fn disk_loop(inner: Arc<Inner>) {
    loop {
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        let now = inner.now();
        let mut st = inner.lock();
        st.write_disk(now, true);
        st.pump();
    }
}

/// General facts about a running broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerInfo {
    /// The version announced to clients.
    pub version: String,
    /// `pulsar://host:port` of the plain listener.
    pub service_url: Option<String>,
    /// `pulsar+ssl://host:port` of the TLS listener.
    pub service_url_tls: Option<String>,
    /// The URL in-process clients use.
    pub in_process_url: String,
    /// Time since start.
    pub uptime: Duration,
    /// Open connections.
    pub connections: usize,
    /// Topics with a log.
    pub topics: usize,
}

/// A running embedded broker: cheap to clone; the broker runs until [`shutdown`](Self::shutdown)
/// (or until the tokio runtime stops).
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    pub(crate) inner: Arc<Inner>,
}

impl BrokerHandle {
    /// `pulsar://host:port` of the plain listener (or the in-process URL without one).
    pub fn service_url(&self) -> String {
        self.inner
            .service_url
            .clone()
            .unwrap_or_else(|| self.in_process_url())
    }

    /// `pulsar+ssl://host:port` of the TLS listener, if any.
    pub fn service_url_tls(&self) -> Option<String> {
        self.inner.service_url_tls.clone()
    }

    /// The URL an [`InProcess`](crate::InProcess) client connects to through memory.
    pub fn in_process_url(&self) -> String {
        format!("pulsar://{}:6650", self.inner.in_process_name)
    }

    #[cfg(feature = "in-process")]
    pub(crate) fn in_process_name(&self) -> &str {
        &self.inner.in_process_name
    }

    /// `http://host:port` of the admin REST listener, if any.
    pub fn admin_url(&self) -> Option<String> {
        self.inner.admin_url.clone()
    }

    /// The address of the plain listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Statistics of every topic.
    pub fn stats(&self) -> Vec<TopicStats> {
        self.inner.stats()
    }

    /// Every connected client with its producers and consumers.
    pub fn clients(&self) -> Vec<ClientInfo> {
        self.inner.lock().cluster.clients()
    }

    /// Version, URLs, uptime, counts.
    pub fn info(&self) -> BrokerInfo {
        let st = self.inner.lock();
        BrokerInfo {
            version: st.cluster.config().server_version.clone(),
            service_url: self.inner.service_url.clone(),
            service_url_tls: self.inner.service_url_tls.clone(),
            in_process_url: self.in_process_url(),
            uptime: self.inner.now(),
            connections: st.writers.len(),
            topics: st.cluster.store().topics.len(),
        }
    }

    /// Declares `topic` partitioned with `partitions` partitions.
    pub fn create_partitioned_topic(&self, topic: &str, partitions: u32) {
        self.inner
            .with(|c, _| c.create_partitioned_topic(topic, partitions));
    }

    /// Unloads `topic`: its producers and consumers reconnect (a fault for tests).
    pub fn unload(&self, topic: &str) {
        self.inner.with(|c, now| c.unload(now, topic));
    }

    /// Replaces the authorization rules (see [`Builder::rules`]); connections keep the rights they
    /// had when they connected until [`force_disconnect`](Self::force_disconnect).
    pub fn set_rules(&self, rules: Option<BTreeMap<String, RoleRules>>) {
        self.inner.with(|c, _| c.set_rules(rules));
    }

    /// Closes every connection authenticated as `role`; returns how many.
    pub fn force_disconnect(&self, role: &str) -> usize {
        self.inner.with(|c, now| c.force_disconnect(now, role))
    }

    /// Closes every client connection (a fault for tests); returns how many.
    pub fn disconnect_all(&self) -> usize {
        self.inner.with(|c, now| {
            let ids: Vec<ConnId> = c.clients().iter().map(|x| x.conn).collect();
            ids.iter().filter(|id| c.disconnect(now, **id)).count()
        })
    }

    /// Turns the configured injected faults on or off.
    pub fn set_faults_enabled(&self, on: bool) {
        self.inner.with(|c, _| c.set_faults_enabled(on));
    }

    /// What opening the on-disk log found (`None` without one): entries recovered, damaged
    /// tails truncated.
    pub fn recovery(&self) -> Option<Recovery> {
        self.inner.recovery.clone()
    }

    /// The last failure of the on-disk log (the broker restarted after it), if any.
    pub fn storage_error(&self) -> Option<String> {
        self.inner.lock().storage_error.clone()
    }

    /// Crashes and restarts the broker in place (a fault for tests): every connection is dropped
    /// and writes not yet persisted are lost (their SENDs unanswered); clients reconnect.
    pub fn restart(&self) {
        let now = self.inner.now();
        let mut st = self.inner.lock();
        st.restart(now);
        st.pump();
    }

    /// Replaces the injected faults (see [`Faults`]): e.g. `persist_error: 1.0` fails every
    /// write with PersistenceError until set back. They apply while enabled
    /// ([`set_faults_enabled`](Self::set_faults_enabled), on by default).
    pub fn set_faults(&self, faults: Faults) {
        self.inner.with(|c, _| c.set_faults(faults));
    }

    /// Makes every write fail (`true`) with PersistenceError, or succeed again (`false`).
    pub fn fail_persistence(&self, fail: bool) {
        self.inner.with(|c, _| {
            let mut f = c.config().faults.clone();
            f.persist_error = if fail { 1.0 } else { 0.0 };
            c.set_faults(f);
            c.set_faults_enabled(true);
        });
    }

    /// Delays every write (and so its receipt) by `delay` (zero: back to immediate).
    pub fn delay_persistence(&self, delay: Duration) {
        self.inner.with(|c, _| c.set_persist_latency(delay, delay));
    }

    /// Runs `f` on the sans-IO broker (for inspection, or knobs this handle does not wrap).
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster, Duration) -> R) -> R {
        self.inner.with(f)
    }

    /// Stops the listeners and closes every connection.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        {
            let mut st = self.inner.lock();
            let State { disk, cluster, .. } = &mut *st;
            if let Some(d) = disk.as_mut() {
                let r = d
                    .write_entries(cluster.store())
                    .and_then(|()| d.maintain(cluster.store(), true))
                    .and_then(|()| d.sync_all());
                if let Err(e) = r {
                    st.storage_error = Some(e.to_string());
                }
            }
        }
        #[cfg(feature = "in-process")]
        crate::in_process::unregister(self);
        let writers: Vec<_> = self.inner.lock().writers.drain().collect();
        for (_, w) in writers {
            let _ = w.send(Out::Close);
        }
        tokio::task::yield_now().await;
    }
}
