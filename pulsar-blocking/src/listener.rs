//! Message listeners: a thread that hands each message of a consumer to a callback (Java's
//! `MessageListener`).

use std::pin::Pin;
use std::task::Poll;
use std::thread::{self, JoinHandle};

use futures::channel::oneshot;
use futures::future::poll_fn;
use futures::{Future, Stream};
use pulsar_async::{Error, Message};

use crate::consumer::Consumer;
use crate::wait::wait;

impl Consumer {
    /// Hands every message to `listener`, in order, on a thread of its own, until
    /// [`Listener::stop`] (which gives the consumer back) or the consumer ends. The callback gets
    /// the consumer to acknowledge with, and may block.
    pub fn listen<F>(self, listener: F) -> Result<Listener, Error>
    where
        F: FnMut(&Consumer, Message) + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        let thread = thread::Builder::new()
            .name("pulsar-listener".into())
            .spawn(move || run(self, stopped, listener))
            .map_err(|e| Error::Runtime(format!("cannot start the listener thread: {e}")))?;
        Ok(Listener {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The listener thread: the next message or the stop signal, whichever comes first.
fn run<F>(
    mut consumer: Consumer,
    mut stopped: oneshot::Receiver<()>,
    mut listener: F,
) -> (Consumer, Result<(), Error>)
where
    F: FnMut(&Consumer, Message),
{
    loop {
        let next = wait(poll_fn(|cx| {
            // a stop, or the Listener dropped, ends the loop before the next message
            if Pin::new(&mut stopped).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Pin::new(&mut consumer.inner).poll_next(cx)
        }));
        match next {
            Some(Ok(message)) => listener(&consumer, message),
            Some(Err(e)) => return (consumer, Err(e)),
            None => return (consumer, Ok(())),
        }
    }
}

/// A consumer handing its messages to a callback on a thread (see [`Consumer::listen`]).
/// Dropping it stops the listener (without waiting for the callback in progress) and closes the
/// consumer.
#[derive(Debug)]
pub struct Listener {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<(Consumer, Result<(), Error>)>>,
}

impl Listener {
    /// Stops the listener after the callback in progress, if any, and gives the consumer back.
    /// Fails with the error that ended the listener, if the consumer failed.
    pub fn stop(mut self) -> Result<Consumer, Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join_thread()
    }

    /// Blocks until the listener ends by itself (the consumer closed, or failed: its error), and
    /// gives the consumer back.
    pub fn join(mut self) -> Result<Consumer, Error> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<Consumer, Error> {
        let thread = self.thread.take().ok_or(Error::DriverStopped)?;
        match thread.join() {
            Ok((consumer, Ok(()))) => Ok(consumer),
            Ok((_, Err(e))) => Err(e),
            Err(_) => Err(Error::Runtime("the listener callback panicked".into())),
        }
    }
}
