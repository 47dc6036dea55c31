//! The in-process transport: a `pulsar-async` client runtime ([`InProcess`]) on tokio whose
//! connections to an embedded broker's [in-process URL](crate::BrokerHandle::in_process_url) are
//! pairs of in-memory pipes served by the broker directly; any other host is reached over TCP.
//!
//! Brokers register their in-process name in a process-wide table when they start, so a client
//! finds them by URL alone, as it would find a broker on the network.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use pulsar_async::{AsyncTimer, BoxFuture, BoxIo, ClientOptions, Error, Launch, Runtime};
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::core::Listener;
use crate::server::{serve, BrokerHandle, Inner};

/// Capacity of each direction of an in-memory connection.
const PIPE_CAPACITY: usize = 256 * 1024;

fn registry() -> &'static Mutex<HashMap<String, Weak<Inner>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<Inner>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn table() -> std::sync::MutexGuard<'static, HashMap<String, Weak<Inner>>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn register(broker: &BrokerHandle) {
    let mut t = table();
    t.retain(|_, w| w.strong_count() > 0);
    t.insert(
        broker.in_process_name().to_owned(),
        std::sync::Arc::downgrade(&broker.inner),
    );
}

pub(crate) fn unregister(broker: &BrokerHandle) {
    table().remove(broker.in_process_name());
}

/// A client of the in-process transport: `InProcessClient::builder(broker.in_process_url())`,
/// then the usual `pulsar-async` API. Build it inside a tokio runtime.
pub type InProcessClient = pulsar_async::Client<InProcess>;

/// The tokio runtime for `pulsar-async`, with connections to embedded brokers in memory.
#[derive(Debug, Clone)]
pub struct InProcess {
    handle: tokio::runtime::Handle,
}

impl InProcess {
    /// The runtime of the current tokio context.
    pub fn current() -> Result<InProcess, Error> {
        tokio::runtime::Handle::try_current()
            .map(|handle| InProcess { handle })
            .map_err(|e| Error::Runtime(format!("pulsar-embedded needs a tokio runtime: {e}")))
    }
}

impl Launch for InProcess {
    type Client = InProcessClient;

    fn launch(options: ClientOptions) -> Result<InProcessClient, Error> {
        let runtime = InProcess::current()?;
        pulsar_async::start(runtime, options).map(InProcessClient::from_handle)
    }
}

impl Runtime for InProcess {
    fn connect(&self, host: String, port: u16) -> BoxFuture<io::Result<BoxIo>> {
        let broker = table().get(&host).and_then(Weak::upgrade);
        let handle = self.handle.clone();
        Box::pin(async move {
            if let Some(inner) = broker {
                let (client, server) = tokio::io::duplex(PIPE_CAPACITY);
                let url = format!("pulsar://{host}:{port}");
                let listener = Listener::new(Some(url), None, "in-process");
                handle.spawn(serve(inner, server, listener));
                return Ok(Box::new(client.compat()) as BoxIo);
            }
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream.compat()) as BoxIo)
        })
    }

    fn timer(&self, deadline: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn spawn(&self, future: BoxFuture<()>) -> Result<(), String> {
        drop(self.handle.spawn(future));
        Ok(())
    }

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
