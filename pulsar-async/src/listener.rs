//! Message listeners: a consumer (or a reader) driven by a task that hands each message to a
//! callback (Java's `MessageListener` and `ReaderListener`).

use std::pin::Pin;
use std::task::Poll;

use futures::channel::oneshot;
use futures::future::poll_fn;
use futures::{Future, Stream};
use pulsar_core::Message;

use crate::consumer::{Consumer, Reader};
use crate::error::Error;

impl Consumer {
    /// Hands every message to `listener`, in order, from a task on the client's runtime, until
    /// [`Listener::stop`] (which gives the consumer back) or the consumer ends. The callback gets
    /// the consumer to acknowledge with; it runs on the runtime, so it should not block for long
    /// (a callback that blocks belongs on `pulsar-blocking`'s listener, which has a thread).
    ///
    /// Fails with [`Error::Unsupported`] on a client without an async runtime.
    pub fn listen<F>(self, listener: F) -> Result<Listener, Error>
    where
        F: FnMut(&Consumer, Message) + Send + 'static,
    {
        let runtime = self.runtime()?;
        spawn(runtime.as_ref(), self, listener)
    }
}

impl Reader {
    /// Hands every message to `listener`, in order, from a task on the client's runtime, until
    /// [`Listener::stop`] (which gives the reader back) or the reader ends (Java's
    /// `ReaderListener`). The callback runs on the runtime, so it should not block for long.
    ///
    /// Fails with [`Error::Unsupported`] on a client without an async runtime.
    pub fn listen<F>(self, listener: F) -> Result<Listener<Reader>, Error>
    where
        F: FnMut(&Reader, Message) + Send + 'static,
    {
        let runtime = self.runtime()?;
        spawn(runtime.as_ref(), self, listener)
    }
}

/// Starts the listener task of `handle` on `runtime`.
fn spawn<T, F>(
    runtime: &dyn crate::runtime::Runtime,
    handle: T,
    listener: F,
) -> Result<Listener<T>, Error>
where
    T: Stream<Item = Result<Message, Error>> + Unpin + Send + 'static,
    F: FnMut(&T, Message) + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    runtime
        .spawn(Box::pin(async move {
            let end = run(handle, stopped, listener).await;
            // (nobody waits when the Listener was dropped: the handle is dropped, closing)
            let _ = done_tx.send(end);
        }))
        .map_err(Error::Runtime)?;
    Ok(Listener {
        stop: Some(stop),
        done,
    })
}

/// The listener task's loop: the next message or the stop signal, whichever comes first.
async fn run<T, F>(
    mut handle: T,
    mut stopped: oneshot::Receiver<()>,
    mut listener: F,
) -> (T, Result<(), Error>)
where
    T: Stream<Item = Result<Message, Error>> + Unpin,
    F: FnMut(&T, Message),
{
    loop {
        let next = poll_fn(|cx| {
            // a stop, or the Listener dropped, ends the loop before the next message
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut handle).poll_next(cx)
        })
        .await;
        match next {
            Some(Ok(message)) => listener(&handle, message),
            Some(Err(e)) => return (handle, Err(e)),
            None => return (handle, Ok(())),
        }
    }
}

/// A consumer (or, as `Listener<Reader>`, a reader) handing its messages to a callback (see
/// [`Consumer::listen`], [`Reader::listen`]). Dropping it stops the listener and closes the
/// consumer or reader.
#[derive(Debug)]
pub struct Listener<T = Consumer> {
    stop: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<(T, Result<(), Error>)>,
}

impl<T> Listener<T> {
    /// Stops the listener after the callback in progress, if any, and gives the consumer (or
    /// reader) back (to close or unsubscribe it, or to receive from it). Fails with the error that ended the
    /// listener, if the consumer failed (it is then closed).
    pub async fn stop(mut self) -> Result<T, Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.done).await {
            Ok((consumer, Ok(()))) => Ok(consumer),
            Ok((_, Err(e))) => Err(e),
            // the task was dropped: its runtime shut down
            Err(oneshot::Canceled) => Err(Error::DriverStopped),
        }
    }

    /// Waits until the listener ends by itself (the consumer closed, or failed: its error), and
    /// gives the consumer back.
    pub async fn join(mut self) -> Result<T, Error> {
        match (&mut self.done).await {
            Ok((consumer, Ok(()))) => Ok(consumer),
            Ok((_, Err(e))) => Err(e),
            Err(oneshot::Canceled) => Err(Error::DriverStopped),
        }
    }
}
