//! pulsar-tokio: the Apache Pulsar client on the tokio runtime.
//!
//! The client is the shared async client of `pulsar-async`; this crate supplies tokio's TCP
//! connections, timers and task spawning. One driver task per client owns the sockets; the
//! application talks to it through cheap handles.
//!
//! # Example
//!
//! ```no_run
//! use pulsar_tokio::{Client, InitialPosition, SubscriptionType};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), pulsar_tokio::Error> {
//!     // Must be called inside a tokio runtime (the driver task is spawned on it).
//!     let client = Client::builder("pulsar://127.0.0.1:6650").build()?;
//!
//!     let producer = client.producer("my-topic").name("my-producer").create().await?;
//!     // Wait for the broker's receipt...
//!     let id = producer.send("hello").await?;
//!     println!("stored as {id}");
//!     // ...or keep many messages in flight and collect the receipts later.
//!     let mut receipts = Vec::new();
//!     for i in 0..100 {
//!         receipts.push(producer.send_async(format!("message {i}")).await?);
//!     }
//!     for receipt in receipts {
//!         receipt.await?;
//!     }
//!
//!     // A new subscription starts at the end of the topic unless told otherwise: Earliest makes
//!     // it see the messages sent above.
//!     let consumer = client
//!         .consumer("my-topic")
//!         .subscription("my-subscription")
//!         .subscription_type(SubscriptionType::Shared)
//!         .initial_position(InitialPosition::Earliest)
//!         .subscribe()
//!         .await?;
//!     for _ in 0..101 {
//!         let message = consumer.receive().await?;
//!         consumer.ack(&message)?;
//!     }
//!
//!     // close() waits until every message sent is stored (or failed). A client dropped without
//!     // it closes in the background, and messages still batched or unsent are lost if the
//!     // runtime stops first (as a current-thread runtime does when `main` returns).
//!     client.close().await
//! }
//! ```
//!
//! A [`Consumer`] is also a `futures::Stream` of messages.
//!
//! TLS: `Client::builder("pulsar+ssl://broker:6651").tls_trust_certs_file("ca.pem")`, optionally
//! `.tls_client_certificate("client.pem", "client.key")` for mutual TLS and `.require_tls()`.
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

use pulsar_async::{AsyncTimer, BoxFuture, BoxIo, ClientOptions, Launch, Runtime};
use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};

pub use pulsar_async::api::*;

/// A Pulsar client driven by tokio. Build with [`Client::builder`](pulsar_async::Client::builder)
/// inside a tokio runtime.
pub type Client = pulsar_async::Client<Tokio>;

/// The tokio runtime for [`pulsar_async`]: TCP, timers and spawning on the current runtime.
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: tokio::runtime::Handle,
}

impl Tokio {
    /// The runtime of the current context.
    pub fn current() -> Result<Tokio, Error> {
        tokio::runtime::Handle::try_current()
            .map(|handle| Tokio { handle })
            .map_err(|e| Error::Runtime(format!("pulsar-tokio needs a tokio runtime: {e}")))
    }

    /// A specific runtime.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Tokio {
        Tokio { handle }
    }
}

impl Launch for Tokio {
    type Client = Client;

    fn launch(options: ClientOptions) -> Result<Client, Error> {
        let runtime = Tokio::current()?;
        pulsar_async::start(runtime, options).map(Client::from_handle)
    }
}

impl Runtime for Tokio {
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(Tcp(stream)) as BoxIo)
        })
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String> {
        drop(self.handle.spawn(future));
        Ok(())
    }

    /// tokio's clock, which a test can pause and advance (`tokio::time::pause`, `advance`,
    /// `#[tokio::test(start_paused = true)]`): the client's deadlines then follow it.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// tokio's `Sleep` as an [`AsyncTimer`].
#[derive(Debug)]
struct Timer(Pin<Box<tokio::time::Sleep>>);

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self.0.as_mut(), cx)
    }
}

/// tokio's `TcpStream` as a `futures` byte stream. Unlike `tokio_util::compat`, it passes
/// vectored writes through (`writev`): the driver writes a large payload and the frame head
/// before it in one system call, without copying the payload.
#[derive(Debug)]
struct Tcp(tokio::net::TcpStream);

impl futures::io::AsyncRead for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::io::AsyncWrite for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
