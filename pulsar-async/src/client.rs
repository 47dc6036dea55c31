//! The client handle: producers, consumers, events, introspection, close.

use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::poll_fn;
use futures::Stream;
use pulsar_core::{
    ClientStats, ClusterFailover, LookupResult, RequestId, Resource, SchemaInfo, SchemaVersion,
    TopicsMode, VersionedSchema,
};

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::driver::Driver;
use crate::error::Error;
use crate::failover::{self, FailoverControl};
use crate::options::{ClientBuilder, ClientOptions, Launch};
use crate::producer::ProducerBuilder;
use crate::runtime::{Runtime, TimeSource};
use crate::state::{ClientEvent, DriverWake, RequestResult, Shared, State};
use crate::tls::TlsContext;
use crate::transaction::TransactionBuilder;

/// Owns the client's state for the application side; closing the client when the last handle
/// (client, producer, consumer, receipt or event stream) goes away.
#[derive(Debug)]
struct ClientRef {
    shared: Shared,
}

impl Drop for ClientRef {
    fn drop(&mut self) {
        let wait = self.shared.with(|st| {
            if st.is_closed() {
                return None;
            }
            let wait = st.drop_wait();
            let unacknowledged = st.unacknowledged_messages();
            if unacknowledged == 0 {
                tracing::debug!("last client handle dropped: closing");
            } else if let Some(bound) = wait {
                tracing::warn!(
                    unacknowledged,
                    "client dropped without close() with {unacknowledged} messages not yet \
                     acknowledged by the broker: waiting for them (at most {bound:?}); call \
                     close() to know their outcome"
                );
            } else {
                tracing::warn!(
                    unacknowledged,
                    "client dropped without close() with {unacknowledged} messages not yet \
                     acknowledged by the broker: they are sent in the background only while \
                     the async runtime keeps running (a runtime that stops now loses them); \
                     await close() before leaving the runtime"
                );
            }
            st.begin_close();
            // A huge operation timeout (`Duration::MAX`: never) does not fit in an Instant: wait
            // about a century instead of panicking.
            wait.map(|bound| {
                let now = st.time_source().now();
                now.checked_add(bound)
                    .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 60 * 60))
            })
        });
        if let Some(deadline) = wait {
            if !wait_until_closed(&self.shared, deadline) {
                tracing::warn!("dropped client: the close did not end in time");
            }
        }
    }
}

/// Blocks the calling thread until the driver finished (true) or `deadline` passed (false).
/// For thread drivers only: an async driver may need the very thread that would block here.
fn wait_until_closed(shared: &Shared, deadline: Instant) -> bool {
    /// Unparks the waiting thread.
    struct Unpark(std::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let cx = Context::from_waker(&waker);
    let time = shared.with(|st| st.time_source().clone());
    loop {
        if shared.with(|st| st.poll_closed(&cx)).is_ready() {
            return true;
        }
        let Some(left) = deadline.checked_duration_since(time.now()) else {
            return false;
        };
        std::thread::park_timeout(left);
    }
}

/// A running client, independent of the runtime that drives it.
///
/// Cheap to clone. Producers, consumers, receipts and event streams keep the client alive.
///
/// # Dropping without `close`
///
/// When the last handle is dropped without [`close`](Self::close), the client starts the same
/// graceful close (batched messages sent, receipts awaited, producers and consumers closed on
/// the broker, connections shut), and a warning is logged (`tracing`) if messages were still
/// unacknowledged. Whether that close can finish depends on the runtime:
///
/// - **tokio**: the close runs in the driver task, on the runtime the client was built in, and
///   only while that runtime runs. Leaving a current-thread runtime (`#[tokio::main(flavor =
///   "current_thread")]`, `#[tokio::test]`) right after the drop runs nothing more: every
///   message not yet written is lost (measured: 0 of 1,000 batched messages stored). A
///   multi-thread runtime runs the driver on its workers only until it shuts down: shutting it
///   down right after the drop is a race (measured: 1,000, 0 and 0 of 1,000 in three runs).
///   A runtime that keeps running lets the close end.
/// - **smol**: the driver runs on smol's global executor threads, which outlive the
///   `block_on` that built the client: the close ends in the background unless the process
///   exits first.
/// - **blocking** (`pulsar-blocking`): dropping the last handle waits for the close to end (at
///   most the operation timeout plus the write timeout and a second), except on the driver's
///   own thread.
///
/// Await [`close`](Self::close) (or at least [`Producer::flush`](crate::Producer::flush))
/// before leaving the runtime: it is the only way to know the outcome of every message.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    inner: Arc<ClientRef>,
}

impl ClientHandle {
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// A producer on `topic` (`persistent://tenant/ns/name`, or a short name in
    /// `public/default`).
    pub fn producer(&self, topic: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder::new(self.clone(), topic.into())
    }

    /// A consumer of `topic`; set at least the subscription name.
    pub fn consumer(&self, topic: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), topic.into())
    }

    /// A consumer of several topics (each may be partitioned) with one receiver queue.
    pub fn consumer_topics<I, T>(&self, topics: I) -> ConsumerBuilder
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ConsumerBuilder::topics(self.clone(), topics.into_iter().map(Into::into).collect())
    }

    /// A consumer of every topic of a namespace matching `pattern`
    /// (`persistent://tenant/ns/<regex>`), joining topics created later.
    pub fn consumer_pattern(&self, pattern: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::pattern(self.clone(), pattern.into())
    }

    /// Starts building a transaction (the Java client's `newTransaction()`): set its
    /// [`timeout`](TransactionBuilder::timeout), then [`build`](TransactionBuilder::build) it.
    /// The broker needs `transactionCoordinatorEnabled=true`.
    pub fn new_transaction(&self) -> TransactionBuilder {
        TransactionBuilder::new(self.clone())
    }

    /// A reader of `topic`, from the earliest message unless told otherwise.
    pub fn reader(&self, topic: impl Into<String>) -> ReaderBuilder {
        ReaderBuilder::new(self.clone(), topic.into())
    }

    /// A [`TableView`](crate::TableView) of `topic`: the latest value of every key, read from
    /// the compacted topic and kept current.
    pub fn table_view(&self, topic: impl Into<String>) -> crate::TableViewBuilder {
        crate::TableViewBuilder::new(self.clone(), topic.into())
    }

    /// The client-wide event stream: connections opened and closed (with the reason), producers
    /// and consumers reconnecting and reconnected, topics moved, the client closed. Each call
    /// returns an independent subscriber that sees events from now on.
    pub fn events(&self) -> EventStream {
        let id = self.shared().with(|st| st.subscribe_events());
        EventStream {
            client: self.clone(),
            id,
        }
    }

    /// A snapshot of connections, producers, consumers and counters.
    pub fn stats(&self) -> ClientStats {
        self.shared().with(|st| st.core.stats())
    }

    /// Bytes handed to the sockets and not yet written (bounded by
    /// [`ClientOptions::max_write_buffer`] plus one message: sends wait above it).
    pub fn buffered_bytes(&self) -> usize {
        self.shared().with(|st| st.unwritten)
    }

    /// Looks up the broker serving `topic`.
    pub async fn lookup_topic(&self, topic: &str) -> Result<LookupResult, Error> {
        match self
            .request(|core, now| core.lookup_topic(now, topic))
            .await?
        {
            RequestResult::Lookup(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    /// The number of partitions of `topic` (`0`: not partitioned).
    pub async fn partitions(&self, topic: &str) -> Result<u32, Error> {
        match self
            .request(|core, now| core.partitioned_metadata(now, topic))
            .await?
        {
            RequestResult::Partitions(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    /// The topics of `namespace` (`tenant/ns`).
    pub async fn topics_of_namespace(
        &self,
        namespace: &str,
        mode: TopicsMode,
    ) -> Result<Vec<String>, Error> {
        match self
            .request(|core, now| core.topics_of_namespace(now, namespace, mode))
            .await?
        {
            RequestResult::Topics(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    /// The schema of `topic` at `version` (`None`: the latest) from the schema registry, `None`
    /// when the topic has no schema.
    pub async fn get_schema(
        &self,
        topic: &str,
        version: Option<SchemaVersion>,
    ) -> Result<Option<VersionedSchema>, Error> {
        match self
            .request(|core, now| core.get_schema(now, topic, version))
            .await?
        {
            RequestResult::Schema(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    /// The version of `schema` on `topic`, registered first if the topic does not have it yet
    /// (the topic's compatibility strategy decides: a refusal is
    /// [`pulsar_core::Error::IncompatibleSchema`]).
    pub async fn get_or_create_schema(
        &self,
        topic: &str,
        schema: &SchemaInfo,
    ) -> Result<SchemaVersion, Error> {
        match self
            .request(|core, now| core.get_or_create_schema(now, topic, schema))
            .await?
        {
            RequestResult::SchemaVersion(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }

    async fn request(
        &self,
        start: impl FnOnce(&mut pulsar_core::Client, Instant) -> Result<RequestId, pulsar_core::Error>,
    ) -> Result<RequestResult, Error> {
        self.request_for(None, start).await
    }

    /// Starts a request of the core and waits for its answer (an event naming the request).
    pub(crate) async fn request_for(
        &self,
        owner: Option<Resource>,
        start: impl FnOnce(&mut pulsar_core::Client, Instant) -> Result<RequestId, pulsar_core::Error>,
    ) -> Result<RequestResult, Error> {
        let id = self.shared().with(|st| st.start_request(owner, start))?;
        // Forgets the request if this future is dropped before the answer.
        let _guard = RequestGuard { client: self, id };
        poll_fn(|cx| self.shared().with(|st| st.poll_request(id, cx))).await
    }

    /// Switches to another service URL, typically another cluster (the Java client's
    /// `updateServiceUrl`): lookups go there from now on, every connection to the old one is
    /// closed, and producers and consumers look their topics up again and resend what is pending
    /// (messages in flight at the switch may be stored in both clusters). Returns whether the URL
    /// changed. [`ClientOptions::cluster_failover`] does this by itself when clusters become
    /// unreachable. A `pulsar+ssl://` URL needs a client started with TLS (a TLS service URL or
    /// TLS settings), whose trust settings it uses.
    pub fn set_service_url(&self, url: &str) -> Result<bool, Error> {
        Ok(self.shared().with(|st| st.set_service_url(url))?)
    }

    /// Closes the client gracefully: producers and consumers are closed on the broker (waiting at
    /// most the operation timeout), then the connections; returns once the driver has finished.
    /// Producers and consumers still held fail with a "closed" error afterwards.
    pub async fn close(&self) -> Result<(), Error> {
        self.shared().with(|st| st.begin_close());
        poll_fn(|cx| self.shared().with(|st| st.poll_closed(cx))).await;
        Ok(())
    }

    /// Whether the client finished closing.
    pub fn is_closed(&self) -> bool {
        self.shared().with(|st| st.is_closed())
    }
}

/// Forgets a request whose future was dropped.
struct RequestGuard<'a> {
    client: &'a ClientHandle,
    id: RequestId,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.client.shared().with(|st| st.drop_request(self.id));
    }
}

/// The client-wide event stream from [`ClientHandle::events`]. Ends after
/// `Event::ClientClosed`.
#[derive(Debug)]
pub struct EventStream {
    client: ClientHandle,
    id: u64,
}

impl EventStream {
    /// The next event, without waiting: `None` when none is queued.
    pub fn try_next(&mut self) -> Option<ClientEvent> {
        match self.client.shared().with(|st| st.poll_event(self.id, None)) {
            Poll::Ready(e) => e,
            Poll::Pending => None,
        }
    }
}

impl Stream for EventStream {
    type Item = ClientEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        let id = self.id;
        self.client.shared().with(|st| st.poll_event(id, Some(cx)))
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.client
            .shared()
            .with(|st| st.unsubscribe_events(self.id));
    }
}

/// Starts a client driven by an async `runtime`: builds the TLS configuration, the core and the
/// driver task. Adapters call this from their [`Launch`] implementation.
pub fn start<R: Runtime>(runtime: R, options: ClientOptions) -> Result<ClientHandle, Error> {
    let runtime: Arc<dyn Runtime> = Arc::new(runtime);
    let NewState {
        shared,
        tls,
        write_timeout,
        failover,
        ..
    } = new_state(
        options,
        TimeSource::Runtime(runtime.clone()),
        DriverWake::Task(None),
    )?;
    let driver = Driver::new(shared.clone(), runtime.clone(), tls, write_timeout);
    runtime.spawn(Box::pin(driver)).map_err(Error::Runtime)?;
    if let Some(control) = failover {
        failover::spawn(runtime, control)?;
    }
    Ok(ClientHandle::from_shared(shared))
}

impl ClientHandle {
    pub(crate) fn from_shared(shared: Shared) -> ClientHandle {
        ClientHandle {
            inner: Arc::new(ClientRef { shared }),
        }
    }
}

/// A validated client: its shared state and what its driver needs.
pub(crate) struct NewState {
    pub(crate) shared: Shared,
    pub(crate) tls: TlsContext,
    pub(crate) write_timeout: Duration,
    pub(crate) connection_timeout: Duration,
    /// The cluster failover prober, when the options ask for one.
    pub(crate) failover: Option<FailoverControl>,
}

/// Validates `options` and builds the core and the shared state, reading the time from `time`.
pub(crate) fn new_state(
    mut options: ClientOptions,
    time: TimeSource,
    wake: DriverWake,
) -> Result<NewState, Error> {
    let policy = options
        .cluster_failover
        .take()
        .map(ClusterFailover::new)
        .transpose()?;
    if let Some(policy) = &policy {
        options.core.service_url = policy.config().primary.clone();
        options.cluster_failover = Some(policy.config().clone());
    }
    let url = options.validate()?;
    let tls = TlsContext::new(options.tls.clone(), options.wants_tls(&url))?;
    let mut config = options.core;
    config.unix_time_ms = time.unix_time_ms();
    let connection_timeout = config.connection_timeout;
    let client_quiet = [
        config.operation_timeout,
        config.connection_timeout,
        config.backoff_initial,
        config.keep_alive_interval,
    ]
    .into_iter()
    .min()
    .unwrap_or_default();
    let core = pulsar_core::Client::new(config, time.now())?;
    let state = State::new(
        core,
        time,
        options.max_write_buffer,
        options.event_buffer,
        wake,
        client_quiet,
    );
    let shared = Shared::new(state);
    Ok(NewState {
        failover: policy.map(|p| FailoverControl::new(shared.clone(), p)),
        shared,
        tls,
        write_timeout: options.write_timeout,
        connection_timeout,
    })
}

/// A client on the async runtime `R` (`pulsar_tokio::Tokio`, `pulsar_smol::Smol`).
///
/// Everything is on [`ClientHandle`], which this dereferences to; `R` only selects the runtime
/// in [`Client::builder`].
pub struct Client<R> {
    handle: ClientHandle,
    _runtime: PhantomData<fn() -> R>,
}

impl<R> Clone for Client<R> {
    fn clone(&self) -> Self {
        Client {
            handle: self.handle.clone(),
            _runtime: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("runtime", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

impl<R: Launch<Client = Client<R>>> Client<R> {
    /// A builder for a client of `service_url` (`pulsar://host:6650`, `pulsar+ssl://host:6651`,
    /// several hosts separated by commas).
    pub fn builder(service_url: impl Into<String>) -> ClientBuilder<R> {
        ClientBuilder::new(service_url)
    }
}

impl<R> Client<R> {
    /// Wraps a started client (adapters call this from [`Launch::launch`]).
    pub fn from_handle(handle: ClientHandle) -> Self {
        Client {
            handle,
            _runtime: PhantomData,
        }
    }

    /// The runtime-independent handle.
    pub fn handle(&self) -> &ClientHandle {
        &self.handle
    }
}

impl<R> Deref for Client<R> {
    type Target = ClientHandle;

    fn deref(&self) -> &ClientHandle {
        &self.handle
    }
}
