//! pulsar-async: the machinery shared by the runtime adapters of the sans-IO Pulsar client.
//!
//! Applications use `pulsar-tokio`, `pulsar-smol` or `pulsar-blocking`; this crate holds what they
//! share, so that an async runtime adapter is only its [`Runtime`] implementation (connect,
//! timer, spawn, clock):
//!
//! - the shared state: the [`pulsar_core::Client`] behind one mutex with the tables of
//!   application-side waiters (per-send receipts, per-request answers, per-consumer wakers, room
//!   for senders, the client-wide [event stream](ClientHandle::events));
//! - the async I/O driver: one task per client that connects (with TLS when the address asks for
//!   it), reads into the core, writes what it produces (keeping the partly written buffer), and
//!   sleeps until the core's deadline;
//! - the application API: [`ClientBuilder`], [`ClientHandle`], [`ProducerBuilder`] /
//!   [`Producer`] / [`Receipt`], [`ConsumerBuilder`] / [`Consumer`] (a `futures::Stream`);
//! - the [`tls`] configuration (rustls; no runtime dependency, also used by the blocking
//!   adapter), and the [`engine`] for drivers that are threads.
//!
//! # Backpressure
//!
//! A send waits while the producer's pending queue is full (the core says `QueueFull`), while the
//! client-wide memory limit is reached (`MemoryLimit`), or while more than
//! [`ClientOptions::max_write_buffer`] bytes wait for the sockets, and resumes when a receipt, the
//! core's `ProducerHasRoom` or a write frees room; with
//! [`block_if_queue_full(false)`](ProducerBuilder::block_if_queue_full) it fails at once with the
//! typed error instead (`QueueFull` for a full write buffer).
//! A consumer's receiver queue is bounded by the core's permits: the broker stops pushing when
//! the application stops receiving.
//!
//! # Example
//!
//! Code written against [`ClientHandle`] runs on every async adapter: `pulsar_tokio::Client` and
//! `pulsar_smol::Client` dereference to it (build them with their own `Client::builder`).
//!
//! ```
//! use pulsar_async::{ClientHandle, Error, InitialPosition};
//!
//! async fn round_trip(client: &ClientHandle) -> Result<(), Error> {
//!     let producer = client.producer("my-topic").create().await?;
//!     let id = producer.send("hello").await?;
//!     println!("stored as {id}");
//!
//!     // A new subscription starts at the end of the topic unless told otherwise: Earliest makes
//!     // it see the message sent above.
//!     let consumer = client
//!         .consumer("my-topic")
//!         .subscription("sub")
//!         .initial_position(InitialPosition::Earliest)
//!         .subscribe()
//!         .await?;
//!     let message = consumer.receive().await?;
//!     consumer.ack(&message)?;
//!
//!     // close() waits until every message sent is stored (or failed). Dropping the client
//!     // instead closes it in the background without waiting: messages still batched or
//!     // unsent can be lost, for instance when the runtime stops first.
//!     client.close().await
//! }
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

/// The examples of the crate's README.md, compiled (and run unless `no_run`) by `cargo test --doc`
/// so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

mod client;
mod consumer;
mod crypto_setters;
mod driver;
pub mod engine;
mod error;
pub mod failover;
mod idmap;
pub mod interceptor;
mod listener;
#[cfg(feature = "metrics")]
pub mod metrics;
mod options;
mod producer;
mod runtime;
mod sends;
mod setter_macros;
mod setters;
mod state;
pub mod table_view;
pub mod tls;
mod transaction;
mod typed;

pub use client::{start, Client, ClientHandle, EventStream};
pub use consumer::{Consumer, ConsumerBuilder, Reader, ReaderBuilder};
pub use error::{Error, Result};
pub use interceptor::{ConsumerInterceptor, ProducerInterceptor};
pub use listener::Listener;
pub use options::{
    ClientBuilder, ClientOptions, Launch, DEFAULT_EVENT_BUFFER, DEFAULT_MAX_WRITE_BUFFER,
    DEFAULT_WRITE_TIMEOUT,
};
pub use producer::{IntoMessage, Producer, ProducerBuilder, Receipt};
pub use runtime::{AsyncIo, AsyncTimer, BoxFuture, BoxIo, Runtime};
pub use state::ClientEvent;
pub use table_view::{Follower, TableView, TableViewBuilder, TypedTableViewBuilder};
pub use tls::{ClientCertificate, TlsError, TlsOptions, TrustRoots};
pub use transaction::{Transaction, TransactionBuilder, DEFAULT_TRANSACTION_TIMEOUT};
#[cfg(feature = "json")]
pub use typed::AutoProducer;
pub use typed::{
    TypedConsumer, TypedConsumerBuilder, TypedMessage, TypedProducer, TypedProducerBuilder,
    TypedReader, TypedReaderBuilder,
};

/// The schema crate, re-exported: [`schema::Schema`], the codecs ([`schema::JsonSchema`],
/// [`schema::primitive`], ...), [`schema::SchemaError`].
pub use pulsar_schema as schema;

/// The end-to-end encryption crate, re-exported: [`crypto::PemKeyReader`],
/// [`crypto::CryptoKeyReader`], [`crypto::Encryptor`], [`crypto::Decryptor`] (for the builders'
/// `encryption_keys`, `crypto_key_reader`, `encryptor` and `decryptor`).
pub use pulsar_crypto as crypto;

/// The core crate, re-exported: options, messages, events, errors and stats types. (Inlined, so
/// that its pages are part of this crate's documentation and of the adapters'.)
#[doc(inline)]
pub use pulsar_core as core;
pub use pulsar_core::compression::CompressionType;
/// Partitioned topics: how keys are hashed to partitions.
pub use pulsar_core::routing::HashingScheme;
pub use pulsar_core::{
    AccessMode, BatchReceivePolicy, BatchingOptions, ClientStats, ConsumerOptions,
    DeadLetterPolicy, Event, InitialPosition, Message, MessageId, OutgoingMessage,
    ParseMessageIdError, ProducerOptions, ReaderOptions, SeekTo, SendError, SubscriptionType,
    TopicMessageId, TxnError, TxnId, TxnState,
};
pub use pulsar_core::{
    BrokerEntryMetadata, ClientConfig, ConsumerId, ConsumerStats, KeySharedMode, KeySharedPolicy,
    ProducerId, ProducerStats, ProxyProtocol, RedeliveryBackoff, RoutingMode, SchemaInfo,
    SchemaType, TopicsMode,
};

/// The application-facing API that every async runtime adapter re-exports, in one list:
/// `pulsar-tokio` and `pulsar-smol` each say `pub use pulsar_async::api::*;` and add their own
/// `Client` type (the shared [`Client`] on their runtime), so the adapters cannot
/// drift apart, and their documentation shows each item inline.
pub mod api {
    pub use crate::crypto;
    #[cfg(feature = "metrics")]
    pub use crate::metrics;
    pub use crate::schema;
    #[cfg(feature = "json")]
    pub use crate::AutoProducer;
    pub use crate::{
        core, tls, AccessMode, BatchReceivePolicy, BatchingOptions, ClientBuilder, ClientEvent,
        ClientHandle, ClientStats, CompressionType, Consumer, ConsumerBuilder, ConsumerInterceptor,
        ConsumerOptions, DeadLetterPolicy, Error, Event, EventStream, InitialPosition, IntoMessage,
        Listener, Message, MessageId, OutgoingMessage, ParseMessageIdError, Producer,
        ProducerBuilder, ProducerInterceptor, ProducerOptions, Reader, ReaderBuilder,
        ReaderOptions, Receipt, Result, SeekTo, SendError, SubscriptionType, TableView,
        TableViewBuilder, TlsOptions, TopicMessageId, Transaction, TransactionBuilder, TxnError,
        TxnId, TxnState, TypedConsumer, TypedConsumerBuilder, TypedMessage, TypedProducer,
        TypedProducerBuilder, TypedReader, TypedReaderBuilder, DEFAULT_TRANSACTION_TIMEOUT,
    };
    pub use crate::{
        BrokerEntryMetadata, ClientConfig, ConsumerId, ConsumerStats, Follower, HashingScheme,
        KeySharedMode, KeySharedPolicy, ProducerId, ProducerStats, ProxyProtocol,
        RedeliveryBackoff, RoutingMode, SchemaInfo, SchemaType, TopicsMode,
    };
}
