//! Message listeners: a thread that hands each message of a consumer (or a reader) to a callback
//! (Java's `MessageListener` and `ReaderListener`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};

use futures::channel::oneshot;
use futures::future::poll_fn;
use futures::{Future, Stream};
use pulsar_async::{Error, Message};

use crate::consumer::{Consumer, Reader};
use crate::wait::wait;

impl Consumer {
    /// Hands every message to `listener`, in order, on a thread of its own, until
    /// [`Listener::stop`] (which gives the consumer back) or the consumer ends. The callback gets
    /// the consumer to acknowledge with, and may block.
    pub fn listen<F>(self, listener: F) -> Result<Listener, Error>
    where
        F: FnMut(&Consumer, Message) + Send + 'static,
    {
        spawn(self, listener)
    }
}

impl Reader {
    /// Hands every message to `listener`, in order, on a thread of its own, until
    /// [`Listener::stop`] (which gives the reader back) or the reader ends (Java's
    /// `ReaderListener`). The callback may block.
    pub fn listen<F>(self, listener: F) -> Result<Listener<Reader>, Error>
    where
        F: FnMut(&Reader, Message) + Send + 'static,
    {
        spawn(self, listener)
    }
}

/// What a listener thread reads from: a consumer or a reader.
trait Listened: Send + 'static {
    /// The next message (`None`: ended).
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>>;
}

impl Listened for Consumer {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl Listened for Reader {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Starts the listener thread of `handle`.
fn spawn<T, F>(handle: T, listener: F) -> Result<Listener<T>, Error>
where
    T: Listened,
    F: FnMut(&T, Message) + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    let thread = thread::Builder::new()
        .name("pulsar-listener".into())
        .spawn(move || run(handle, stopped, listener))
        .map_err(|e| Error::Runtime(format!("cannot start the listener thread: {e}")))?;
    Ok(Listener {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The listener thread: the next message or the stop signal, whichever comes first.
fn run<T, F>(
    mut handle: T,
    mut stopped: oneshot::Receiver<()>,
    mut listener: F,
) -> (T, Result<(), Error>)
where
    T: Listened,
    F: FnMut(&T, Message),
{
    loop {
        let next = wait(poll_fn(|cx| {
            // a stop, or the Listener dropped, ends the loop before the next message
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            handle.poll_message(cx)
        }));
        match next {
            Some(Ok(message)) => listener(&handle, message),
            Some(Err(e)) => return (handle, Err(e)),
            None => return (handle, Ok(())),
        }
    }
}

/// A consumer (or, as `Listener<Reader>`, a reader) handing its messages to a callback on a
/// thread (see [`Consumer::listen`], [`Reader::listen`]). Dropping it stops the listener
/// (without waiting for the callback in progress) and closes the consumer or reader.
#[derive(Debug)]
pub struct Listener<T = Consumer> {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<(T, Result<(), Error>)>>,
}

impl<T> Listener<T> {
    /// Stops the listener after the callback in progress, if any, and gives the consumer (or
    /// reader) back.
    /// Fails with the error that ended the listener, if the consumer failed.
    pub fn stop(mut self) -> Result<T, Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join_thread()
    }

    /// Blocks until the listener ends by itself (the consumer closed, or failed: its error), and
    /// gives the consumer back.
    pub fn join(mut self) -> Result<T, Error> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<T, Error> {
        let thread = self.thread.take().ok_or(Error::DriverStopped)?;
        match thread.join() {
            Ok((consumer, Ok(()))) => Ok(consumer),
            Ok((_, Err(e))) => Err(e),
            Err(_) => Err(Error::Runtime("the listener callback panicked".into())),
        }
    }
}
