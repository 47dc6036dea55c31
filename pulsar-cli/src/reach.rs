//! The first connection to the service URL, within `--initial-connection-timeout`.
//!
//! The client retries a refused, unresolvable or silent service URL until the operation timeout
//! (30 s by default). For a command-line tool that is too long to learn that the URL is wrong, so
//! a watcher follows the client's events: when no connection has completed its handshake within
//! the bound, it records the last connection error and closes the client, which ends the
//! command's pending operation; the command then reports [`CliError::Unreachable`].

use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pulsar_blocking::{Client, ClientEvent, Event};

use crate::error::{full_message, CliError};

/// What the watcher found.
type Outcome = Arc<Mutex<Option<Option<String>>>>;

/// A running watcher.
#[derive(Debug)]
pub struct FirstConnection {
    url: String,
    limit: Duration,
    thread: Option<JoinHandle<()>>,
    /// `Some(cause)` once the bound passed without a connection.
    outcome: Outcome,
}

impl FirstConnection {
    /// Starts watching `client` (created, not yet connected); `None` as `limit` watches nothing.
    pub fn watch(client: &Client, url: &str, limit: Option<Duration>) -> FirstConnection {
        let outcome: Outcome = Arc::default();
        let thread = limit.and_then(|limit| {
            let events = client.events();
            let (client, found) = (client.clone(), outcome.clone());
            std::thread::Builder::new()
                .name("pulsar-cli-reach".into())
                .spawn(move || watch(events, &client, limit, &found))
                .ok()
        });
        FirstConnection {
            url: url.to_string(),
            limit: limit.unwrap_or_default(),
            thread,
            outcome,
        }
    }

    /// Waits for the watcher (the client must be closed or connected by now) and returns the
    /// error to report instead of the command's own when the bound passed.
    pub fn finish(mut self) -> Option<CliError> {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let cause = self
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(CliError::Unreachable {
            url: self.url.clone(),
            seconds: self.limit.as_secs_f64(),
            cause,
        })
    }
}

fn watch(mut events: pulsar_blocking::Events, client: &Client, limit: Duration, found: &Outcome) {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            *found.lock().unwrap_or_else(PoisonError::into_inner) = Some(last);
            let _ = client.close();
            return;
        }
        match events.recv_timeout(left) {
            Ok(ClientEvent::Core(Event::ConnectionOpened { .. })) => return,
            Ok(ClientEvent::Core(Event::ClientClosed)) => return,
            Ok(ClientEvent::Core(Event::ConnectionClosed { reason, .. })) => {
                last = Some(full_message(&reason));
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
