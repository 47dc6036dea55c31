//! pulsar-smol: the Apache Pulsar client on smol (async-io reactor, async-executor tasks).
//!
//! The client is the shared async client of `pulsar-async`; this crate supplies smol's TCP
//! connections, `async-io` timers and task spawning on smol's global executor. One driver task per
//! client owns the sockets; the application talks to it through cheap handles.
//!
//! # Example
//!
//! ```no_run
//! use futures::StreamExt;
//! use pulsar_smol::{Client, InitialPosition};
//!
//! fn main() -> Result<(), pulsar_smol::Error> {
//!     smol::block_on(async {
//!         let client = Client::builder("pulsar://127.0.0.1:6650").build()?;
//!         let producer = client.producer("my-topic").create().await?;
//!         producer.send("hello").await?;
//!
//!         // A new subscription starts at the end of the topic unless told otherwise:
//!         // Earliest makes it see the message sent above.
//!         let mut consumer = client
//!             .consumer("my-topic")
//!             .subscription("my-subscription")
//!             .initial_position(InitialPosition::Earliest)
//!             .subscribe()
//!             .await?;
//!         if let Some(message) = consumer.next().await {
//!             let message = message?;
//!             consumer.ack(&message)?;
//!         }
//!         // close() waits until every message sent is stored (or failed); a client dropped
//!         // without it closes in the background, and messages still batched or unsent are lost
//!         // if the process exits first.
//!         client.close().await
//!     })
//! }
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]

/// The examples of the crate's README.md, compiled (and run unless `no_run`) by `cargo test --doc`
/// so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::FutureExt;
use pulsar_async::{AsyncTimer, BoxFuture, BoxIo, ClientOptions, Launch, Runtime};

pub use pulsar_async::api::*;

/// A Pulsar client driven by smol. Build with [`Client::builder`](pulsar_async::Client::builder);
/// its driver runs on smol's global executor, so any thread may build and use it.
pub type Client = pulsar_async::Client<Smol>;

/// The smol runtime for [`pulsar_async`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Launch for Smol {
    type Client = Client;

    fn launch(options: ClientOptions) -> Result<Client, Error> {
        pulsar_async::start(Smol, options).map(Client::from_handle)
    }
}

impl Runtime for Smol {
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(smol::Timer::at(deadline)))
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String> {
        smol::spawn(future).detach();
        Ok(())
    }

    /// The system clock (smol's timers run on it).
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// `async-io`'s timer as an [`AsyncTimer`].
#[derive(Debug)]
struct Timer(smol::Timer);

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.set_at(deadline);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_unpin(cx).map(|_| ())
    }
}
