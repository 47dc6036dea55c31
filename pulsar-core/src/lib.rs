//! pulsar-core: an Apache Pulsar client as a pure, deterministic state machine (sans-IO).
//!
//! No sockets, no clock, no threads, no global randomness: every input carries `now: Instant`,
//! randomness comes from [`ClientConfig::seed`], and iteration order is deterministic. A runtime
//! (tokio, smol, blocking threads, or a test harness) moves bytes and time.
//!
//! # The run-loop contract
//!
//! Inputs (each takes `now`):
//! - [`Client::handle_connected`] / [`Client::handle_connect_failed`]: the outcome of an
//!   [`IoRequest::Connect`];
//! - [`Client::handle_bytes`]: bytes read from a connection (any split);
//! - [`Client::handle_closed`]: the peer closed the connection or it failed;
//! - [`Client::handle_timeout`]: the deadline from [`Client::poll_timeout`] was reached (spurious
//!   calls are harmless);
//! - application commands: [`Client::create_producer`], [`Client::send`], [`Client::subscribe`],
//!   [`Client::receive`], [`Client::ack`], [`Client::lookup_topic`], [`Client::close`], …
//!
//! Outputs, to drain completely after **every** input:
//! - [`Client::poll_io`]: open a connection ([`IoRequest::Connect`], TLS or not) or close one;
//! - [`Client::poll_transmit`]: bytes to write, one [`Transmit`] per connection holding everything
//!   queued for it, in order;
//! - [`Client::poll_event`]: [`Event`]s for the application (producer ready, send completed, messages
//!   available, connection closed, …);
//! - [`Client::poll_timeout`]: when to call `handle_timeout` next.
//!
//! Handles ([`ConnectionId`], [`ProducerId`], [`ConsumerId`], [`RequestId`], [`SendId`]) come from one
//! counter and are never reused. Misuse (an unknown connection, bytes on a connection that is not
//! connected) returns a [`UsageError`] and changes nothing. After [`IoRequest::Close`] the core has
//! forgotten the connection.
//!
//! # Example: a minimal blocking driver
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Duration, Instant};
//!
//! use pulsar_core::{Client, ClientConfig, Event, IoRequest};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut client = Client::new(ClientConfig::new("pulsar://127.0.0.1:6650"), Instant::now())?;
//!     let request = client.partitioned_metadata(Instant::now(), "my-topic")?;
//!     let mut sockets: BTreeMap<_, TcpStream> = BTreeMap::new();
//!     let mut buf = vec![0u8; 64 * 1024];
//!     loop {
//!         // 1. drain every output
//!         while let Some(io) = client.poll_io() {
//!             match io {
//!                 IoRequest::Connect { conn, address } => {
//!                     let now = Instant::now();
//!                     match TcpStream::connect((address.host.as_str(), address.port)) {
//!                         Ok(s) => {
//!                             s.set_read_timeout(Some(Duration::from_millis(10)))?;
//!                             sockets.insert(conn, s);
//!                             client.handle_connected(now, conn)?;
//!                         }
//!                         Err(e) => client.handle_connect_failed(now, conn, e.to_string())?,
//!                     }
//!                 }
//!                 IoRequest::Close { conn } => {
//!                     sockets.remove(&conn);
//!                 }
//!                 _ => {}
//!             }
//!         }
//!         while let Some(t) = client.poll_transmit() {
//!             if let Some(s) = sockets.get_mut(&t.conn) {
//!                 s.write_all(&t.data)?;
//!             }
//!         }
//!         while let Some(event) = client.poll_event() {
//!             match event {
//!                 Event::PartitionedMetadata { request: r, result } if r == request => {
//!                     println!("partitions: {:?}", result);
//!                     client.close(Instant::now());
//!                 }
//!                 Event::ClientClosed => return Ok(()),
//!                 _ => {}
//!             }
//!         }
//!         // 2. feed inputs: bytes from every socket, then timers
//!         let ids: Vec<_> = sockets.keys().copied().collect();
//!         for conn in ids {
//!             let Some(s) = sockets.get_mut(&conn) else { continue };
//!             match s.read(&mut buf) {
//!                 Ok(0) => {
//!                     sockets.remove(&conn);
//!                     client.handle_closed(Instant::now(), conn)?;
//!                 }
//!                 Ok(n) => client.handle_bytes(Instant::now(), conn, &buf[..n])?,
//!                 Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
//!                     || e.kind() == std::io::ErrorKind::TimedOut => {}
//!                 Err(_) => {
//!                     sockets.remove(&conn);
//!                     client.handle_closed(Instant::now(), conn)?;
//!                 }
//!             }
//!         }
//!         if client.poll_timeout().is_some_and(|t| t <= Instant::now()) {
//!             client.handle_timeout(Instant::now());
//!         }
//!     }
//! }
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(clippy::too_many_lines)]

pub mod auth;
mod backoff;
mod client;
pub mod compression;
pub mod config;
mod connection;
mod connections;
pub mod consumer;
pub mod crypto;
mod deadline;
mod deadline_map;
mod env;
pub mod error;
pub mod event;
pub mod failover;
mod handle;
pub mod io;
pub mod latency;
mod link;
mod lookup;
pub mod message;
mod outputs;
mod pool;
pub mod producer;
mod request;
pub mod rng;
pub mod routing;
pub mod schema;
pub mod service_url;
mod shared;
pub mod stats;
mod time;
pub mod topic;
mod txn;
mod write_buf;

pub use auth::{AuthError, AuthProvider, BasicAuth, TokenAuth};
pub use client::Client;
pub use config::{ClientConfig, ProxyProtocol};
pub use consumer::{
    BatchReceivePolicy, BrokerEntryMetadata, ConsumerOptions, DeadLetterPolicy, InitialPosition,
    KeySharedMode, KeySharedPolicy, Message, ReaderOptions, ReceiveError, RedeliveryBackoff,
    SeekTo, SubscriptionType, TopicMessageId,
};
pub use crypto::{
    ConsumerCrypto, CryptoError, CryptoFailureAction, EncryptionContext, EncryptionKey,
    MessageDecryptor, MessageEncryptor, ProducerCryptoFailureAction,
};
pub use error::{
    ConfigError, Error, ProtocolError, SendError, ServerErrorCode, TxnError, UsageError,
};
pub use event::{Event, LookupResult, Resource, TopicsMode};
pub use failover::{ClusterFailover, ClusterFailoverConfig};
pub use handle::{ConnectionId, ConsumerId, ProducerId, RequestId, SendId, TxnId, TxnState};
pub use io::{IoRequest, Transmit};
pub use latency::{LatencyHistogram, LatencyPercentiles};
pub use message::{MessageId, ParseMessageIdError};
pub use producer::{
    AccessMode, BatchingOptions, OutgoingMessage, ProducerOptions, Refused, RoutingMode,
};
pub use schema::{SchemaInfo, SchemaType, SchemaVersion, VersionedSchema};
pub use service_url::{BrokerAddress, ServiceUrl, UrlError};
pub use stats::{
    ClientCounters, ClientStats, ConnectionState, ConnectionStats, ConsumerRates, ConsumerStats,
    LookupKind, LookupStats, ProducerRates, ProducerStats, ResourceState, TopicConsumerStats,
};
pub use topic::{TopicDomain, TopicError, TopicName};

/// Re-export of the protocol crate (protobuf types and frame codec).
pub use pulsar_proto as proto;
