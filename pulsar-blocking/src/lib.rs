//! pulsar-blocking: the Apache Pulsar client on std sockets and threads.
//!
//! Truly blocking, with no async runtime anywhere: one driver thread per client owns the I/O side
//! of the sans-IO core and waits with `recv_timeout(deadline - now)`; each connection has a
//! reader thread feeding it through a bounded channel; writes are blocking writes with a write
//! timeout. Application calls block the calling thread until the driver signals the outcome, so
//! the client works from any thread — including from inside an async runtime, where wrapping an
//! async client in `block_on` would panic.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use pulsar_blocking::{Client, InitialPosition};
//!
//! fn main() -> Result<(), pulsar_blocking::Error> {
//!     let client = Client::builder("pulsar://127.0.0.1:6650").build()?;
//!
//!     let producer = client.producer("my-topic").create()?;
//!     let id = producer.send("hello")?; // blocks until the broker's receipt
//!     println!("stored as {id}");
//!     // Without waiting for each receipt:
//!     producer.send_with_callback("world", |result| {
//!         if let Err(e) = result {
//!             eprintln!("send failed: {e}");
//!         }
//!     })?;
//!     producer.flush()?;
//!
//!     let consumer = client
//!         .consumer("my-topic")
//!         .subscription("my-subscription")
//!         .initial_position(InitialPosition::Earliest)
//!         .subscribe()?;
//!     while let Some(message) = consumer.receive_timeout(Duration::from_secs(1))? {
//!         println!("{:?}", message.payload);
//!         consumer.ack(&message)?;
//!     }
//!     // close() waits until every message sent is stored (or failed) and reports the outcome.
//!     // Dropping the last handle also closes the client and waits for that (bounded by the
//!     // operation and write timeouts), but reports nothing.
//!     client.close()
//! }
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

/// The examples of the crate's README.md, compiled (and run unless `no_run`) by `cargo test --doc`
/// so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

mod consumer;
mod crypto_setters;
mod driver;
mod failover;
mod listener;
mod producer;
mod setters;
mod table_view;
mod transaction;
mod typed;
mod wait;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use futures::StreamExt;
use pulsar_async::core::{ClientStats, LookupResult, SchemaVersion, VersionedSchema};
use pulsar_async::engine::Engine;
use pulsar_async::{ClientHandle, ClientOptions, EventStream, Launch};

pub use consumer::{Consumer, ConsumerBuilder, Reader, ReaderBuilder};
pub use listener::Listener;
pub use producer::{Producer, ProducerBuilder, Receipt};
pub use pulsar_async::crypto;
#[cfg(feature = "metrics")]
pub use pulsar_async::metrics;
pub use pulsar_async::{
    core, schema, tls, AccessMode, BatchReceivePolicy, BatchingOptions, ClientBuilder, ClientEvent,
    CompressionType, ConsumerInterceptor, ConsumerOptions, DeadLetterPolicy, Error, Event,
    InitialPosition, IntoMessage, Message, MessageId, OutgoingMessage, ParseMessageIdError,
    ProducerInterceptor, ProducerOptions, ReaderOptions, Result, SeekTo, SendError,
    SubscriptionType, TlsOptions, TopicMessageId, TxnError, TxnId, TxnState, TypedMessage,
};
pub use pulsar_async::{
    BrokerEntryMetadata, ClientConfig, ConsumerId, ConsumerStats, HashingScheme, KeySharedMode,
    KeySharedPolicy, ProducerId, ProducerStats, ProxyProtocol, RedeliveryBackoff, RoutingMode,
    SchemaInfo, SchemaType, TopicsMode,
};
pub use table_view::{TableView, TableViewBuilder, TypedTableViewBuilder};
pub use transaction::{Transaction, TransactionBuilder};
pub use typed::{
    AutoProducer, TypedConsumer, TypedConsumerBuilder, TypedProducer, TypedProducerBuilder,
    TypedReader, TypedReaderBuilder,
};

use crate::driver::Input;
use crate::wait::{wait, wait_for};

/// The blocking adapter, for [`ClientBuilder`]: `Client::builder(url)` returns a
/// `ClientBuilder<Blocking>` whose `build()` starts the driver thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Blocking;

impl Launch for Blocking {
    type Client = Client;

    fn launch(options: ClientOptions) -> Result<Client, Error> {
        let (tx, rx) = mpsc::sync_channel::<Input>(driver::CHANNEL_BOUND);
        let wake_tx = tx.clone();
        let (mut engine, handle) = Engine::new(options, move || {
            // Never blocks: a full channel means the driver has work queued already.
            let _ = wake_tx.try_send(Input::Wake);
        })?;
        let failover = engine.take_failover();
        std::thread::Builder::new()
            .name("pulsar-driver".into())
            .spawn(move || driver::run(engine, rx, tx))
            .map_err(|e| Error::Runtime(format!("cannot spawn the driver thread: {e}")))?;
        if let Some(control) = failover {
            failover::spawn(control)?;
        }
        Ok(Client { handle })
    }
}

/// A Pulsar client whose calls block the calling thread.
///
/// Cheap to clone. Producers, consumers, receipts and event iterators keep it alive.
///
/// # Dropping without `close`
///
/// Dropping the last handle closes the client as [`close`](Self::close) does and waits for the
/// close to end (batched messages sent, receipts awaited, producers and consumers closed on the
/// broker), at most the operation timeout plus the write timeout and a second, so that a
/// program that returns from `main` without closing still stores what it sent (1,000 of 1,000
/// batched messages in the tests). A warning is logged (`tracing`) when messages were still
/// unacknowledged. Only a drop on the driver's own thread (in a send callback) does not wait.
/// Call `close()` to learn the outcome.
#[derive(Debug, Clone)]
pub struct Client {
    handle: ClientHandle,
}

impl Client {
    /// A builder for a client of `service_url` (`pulsar://host:6650`, `pulsar+ssl://host:6651`,
    /// several hosts separated by commas).
    pub fn builder(service_url: impl Into<String>) -> ClientBuilder<Blocking> {
        ClientBuilder::new(service_url)
    }

    /// A producer on `topic`.
    pub fn producer(&self, topic: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder::new(self.handle.producer(topic))
    }

    /// A consumer of `topic`; set at least the subscription name.
    pub fn consumer(&self, topic: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.handle.consumer(topic))
    }

    /// A consumer of several topics (each may be partitioned).
    pub fn consumer_topics<I, T>(&self, topics: I) -> ConsumerBuilder
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ConsumerBuilder::new(self.handle.consumer_topics(topics))
    }

    /// A consumer of every topic of a namespace matching `pattern`
    /// (`persistent://tenant/ns/<regex>`).
    pub fn consumer_pattern(&self, pattern: impl Into<String>) -> ConsumerBuilder {
        ConsumerBuilder::new(self.handle.consumer_pattern(pattern))
    }

    /// Starts building a transaction (needs a broker with `transactionCoordinatorEnabled=true`).
    pub fn new_transaction(&self) -> TransactionBuilder {
        TransactionBuilder::new(self.handle.new_transaction())
    }

    /// A reader of `topic`, from the earliest message unless told otherwise.
    pub fn reader(&self, topic: impl Into<String>) -> ReaderBuilder {
        ReaderBuilder::new(self.handle.reader(topic))
    }

    /// A [`TableView`] of `topic`: the latest value of every key, read from the compacted topic
    /// and kept current by a thread.
    pub fn table_view(&self, topic: impl Into<String>) -> TableViewBuilder {
        TableViewBuilder::new(self.handle.table_view(topic))
    }

    /// The client-wide events (connections, reconnections, topic moves, close) from now on.
    pub fn events(&self) -> Events {
        Events {
            inner: self.handle.events(),
        }
    }

    /// A snapshot of connections, producers, consumers and counters.
    pub fn stats(&self) -> ClientStats {
        self.handle.stats()
    }

    /// Switches to another service URL, typically another cluster: see
    /// [`ClientHandle::set_service_url`]. `ClientOptions::cluster_failover` does this by itself.
    pub fn set_service_url(&self, url: &str) -> Result<bool, Error> {
        self.handle.set_service_url(url)
    }

    /// Looks up the broker serving `topic`.
    pub fn lookup_topic(&self, topic: &str) -> Result<LookupResult, Error> {
        wait(self.handle.lookup_topic(topic))
    }

    /// The number of partitions of `topic` (`0`: not partitioned).
    pub fn partitions(&self, topic: &str) -> Result<u32, Error> {
        wait(self.handle.partitions(topic))
    }

    /// The topics of `namespace` (`tenant/ns`).
    pub fn topics_of_namespace(&self, namespace: &str, mode: TopicsMode) -> Result<Vec<String>> {
        wait(self.handle.topics_of_namespace(namespace, mode))
    }

    /// The schema of `topic` at `version` (`None`: the latest) from the schema registry, `None`
    /// when the topic has none.
    pub fn get_schema(
        &self,
        topic: &str,
        version: Option<SchemaVersion>,
    ) -> Result<Option<VersionedSchema>> {
        wait(self.handle.get_schema(topic, version))
    }

    /// The version of `schema` on `topic`, registered first if new (a refusal is
    /// [`pulsar_async::core::Error::IncompatibleSchema`]).
    pub fn get_or_create_schema(&self, topic: &str, schema: &SchemaInfo) -> Result<SchemaVersion> {
        wait(self.handle.get_or_create_schema(topic, schema))
    }

    /// Closes gracefully (producers and consumers on the broker, then the connections) and waits
    /// for the driver thread to finish.
    pub fn close(&self) -> Result<(), Error> {
        wait(self.handle.close())
    }

    /// Whether the client finished closing.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// The runtime-independent handle (shared with the async adapters' API).
    pub fn handle(&self) -> &ClientHandle {
        &self.handle
    }
}

/// The client-wide event stream as an iterator (ends after `Event::ClientClosed`).
#[derive(Debug)]
pub struct Events {
    inner: EventStream,
}

impl Events {
    /// The next event, waiting for it; `None` once the client is closed.
    pub fn recv(&mut self) -> Option<ClientEvent> {
        wait(self.inner.next())
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ClientEvent, RecvTimeoutError> {
        match wait_for(self.inner.next(), timeout) {
            Some(Some(e)) => Ok(e),
            Some(None) => Err(RecvTimeoutError::Disconnected),
            None => Err(RecvTimeoutError::Timeout),
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.inner.try_next()
    }
}

impl Iterator for Events {
    type Item = ClientEvent;

    fn next(&mut self) -> Option<ClientEvent> {
        self.recv()
    }
}
