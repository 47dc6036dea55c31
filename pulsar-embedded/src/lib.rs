//! pulsar-embedded: an Apache Pulsar-protocol broker that runs inside an application or a test.
//!
//! * [`core`] — the broker itself, sans-IO: it speaks the Pulsar binary protocol (through
//!   `pulsar-proto`) on connections its driver hands it, keeps topics in memory and reads no clock.
//!   The project's deterministic simulation drives the same code.
//! * `server` (feature `server`, on by default) — the tokio adapter: [`EmbeddedBroker`] listens on
//!   TCP (optionally TLS), starts in well under a millisecond, and answers [`stats`](BrokerHandle::stats),
//!   [`clients`](BrokerHandle::clients) and [`info`](BrokerHandle::info).
//! * `admin` (feature `admin`, on by default) — a small subset of the admin REST API
//!   ([`Builder::bind_admin`]): tenants, namespaces, topic lists, partitioned topics, topic stats,
//!   unload.
//! * `in-process` (feature `in-process`, on by default) — [`InProcess`], a `pulsar-async` client
//!   runtime whose connections to an embedded broker go through memory, no socket.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use pulsar_embedded::EmbeddedBroker;
//!
//! let broker = EmbeddedBroker::builder().bind("127.0.0.1:0").start().await?;
//! // any Pulsar client over TCP; this one is pulsar-async on tokio, which would reach the broker
//! // through memory with `broker.in_process_url()`
//! let client = pulsar_embedded::InProcessClient::builder(broker.service_url()).build()?;
//! let producer = client.producer("my-topic").create().await?;
//! producer.send("hello").await?;
//! println!("{:?}", broker.stats());
//! broker.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it implements
//!
//! Persistent and non-persistent topics (in memory, or in an append-only log on disk with
//! [`Builder::storage`]; retention and backlog quotas with [`Builder::retention`] and
//! [`Builder::backlog_quota`]), JWT authentication ([`Builder::jwt`]), partitioned topics (created through
//! [`BrokerHandle::create_partitioned_topic`]), producers with sequence ids, deduplication and
//! access modes, every subscription type with flow permits, individual, cumulative and batch-index
//! acknowledgements, redelivery (negative acks, ack timeouts), seek, last message id, readers,
//! delayed delivery and chunked messages passed through. See the crate's README for what it does
//! not implement.
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

#[cfg(feature = "admin")]
mod admin;
pub mod core;
#[cfg(feature = "server")]
mod disk;
#[cfg(feature = "in-process")]
mod in_process;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod tls;

#[cfg(feature = "server")]
pub use disk::{FsyncPolicy, Recovery, StorageConfig, StorageError, Truncation};
#[cfg(feature = "in-process")]
pub use in_process::{InProcess, InProcessClient};
#[cfg(feature = "server")]
pub use server::{BrokerHandle, BrokerInfo, Builder, EmbeddedBroker, Error};
#[cfg(feature = "server")]
pub use tls::TlsConfig;
