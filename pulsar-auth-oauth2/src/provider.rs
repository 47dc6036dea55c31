//! [`OAuth2Auth`]: the core's authentication provider, fed by a background refresh thread.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulsar_core::{AuthError, AuthProvider};

use crate::config::{Endpoint, OAuth2Config};
use crate::error::OAuth2Error;
use crate::fetcher::TokenFetcher;

/// Shortest delay between two scheduled refreshes (tokens with a tiny lifetime).
const MIN_REFRESH_DELAY: Duration = Duration::from_secs(1);
/// First retry delay after a failed fetch; doubled on each further failure.
const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// OAuth2 client-credentials authentication (method name `token`).
///
/// [`OAuth2Auth::new`] starts a thread that fetches a token at once and refreshes it after
/// [`OAuth2Config::refresh_fraction`] of its lifetime, retrying failures with backoff. The
/// [`AuthProvider`] calls (CONNECT and AUTH_CHALLENGE) return the cached token immediately. Only
/// when no valid token exists (the first one is not there yet, or refreshing has failed until the
/// token expired) do they ask for a fetch and wait for it, at most twice the HTTP timeout, and then
/// fail that connection attempt with the fetch's error. The thread ends when the provider is
/// dropped.
pub struct OAuth2Auth {
    shared: Arc<Shared>,
    endpoint: Endpoint,
    wait: Duration,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    token: Option<Cached>,
    last_error: Option<OAuth2Error>,
    /// When the refresher fetches next (`None`: only when asked).
    refresh_at: Option<Instant>,
    /// A caller needs a token now.
    wanted: bool,
    /// Completed fetch attempts (successful or not).
    attempts: u64,
    stopped: bool,
}

struct Cached {
    token: String,
    expires_at: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn valid_token(&self, now: Instant) -> Option<&str> {
        self.token
            .as_ref()
            .filter(|t| t.expires_at.is_none_or(|at| at > now))
            .map(|t| t.token.as_str())
    }
}

impl OAuth2Auth {
    /// Validates `config` and starts the refresh thread, which fetches the first token right away.
    pub fn new(config: OAuth2Config) -> Result<OAuth2Auth, OAuth2Error> {
        let wait = config.http_timeout.saturating_mul(2);
        let endpoint = config.endpoint.clone();
        let fraction = config.refresh_fraction;
        let fetcher = TokenFetcher::new(config)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                refresh_at: Some(Instant::now()),
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("pulsar-oauth2-refresh".into())
            .spawn(move || refresh_loop(&worker, fetcher, fraction))
            .map_err(|e| OAuth2Error::Config(format!("cannot start the refresh thread: {e}")))?;
        Ok(OAuth2Auth {
            shared,
            endpoint,
            wait,
        })
    }

    /// Waits up to `timeout` for a valid token (for example to fail fast before connecting) and
    /// returns it, or the last fetch error.
    pub fn wait_for_token(&self, timeout: Duration) -> Result<String, OAuth2Error> {
        self.token_within(timeout).map_err(|last| {
            last.unwrap_or_else(|| OAuth2Error::Http {
                url: endpoint_url(&self.endpoint),
                reason: format!("no token within {timeout:?}"),
            })
        })
    }

    /// A valid token, asking the refresher for one and waiting up to `timeout` if needed; on
    /// failure the last fetch error, if any.
    fn token_within(&self, timeout: Duration) -> Result<String, Option<OAuth2Error>> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        if let Some(token) = state.valid_token(now) {
            return Ok(token.to_string());
        }
        let seen = state.attempts;
        state.wanted = true;
        self.shared.changed.notify_all();
        let deadline = now + timeout;
        while state.attempts == seen && !state.stopped {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        match state.valid_token(Instant::now()) {
            Some(token) => Ok(token.to_string()),
            None => Err(state.last_error.clone()),
        }
    }
}

fn endpoint_url(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Issuer(u) | Endpoint::TokenEndpoint(u) => u.clone(),
    }
}

impl Drop for OAuth2Auth {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.changed.notify_all();
    }
}

impl fmt::Debug for OAuth2Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_token = self.shared.lock().valid_token(Instant::now()).is_some();
        f.debug_struct("OAuth2Auth")
            .field("endpoint", &self.endpoint)
            .field("has_valid_token", &has_token)
            .finish()
    }
}

impl AuthProvider for OAuth2Auth {
    fn method_name(&self) -> &str {
        "token"
    }

    fn auth_data(&mut self) -> Result<Bytes, AuthError> {
        match self.token_within(self.wait) {
            Ok(token) => Ok(Bytes::from(token)),
            Err(Some(e)) => Err(AuthError(e.to_string())),
            Err(None) => Err(AuthError(format!(
                "no OAuth2 token from {} within {:?}",
                endpoint_url(&self.endpoint),
                self.wait
            ))),
        }
    }
}

/// The refresh thread: fetch when due or asked, publish the result, sleep until the next refresh.
fn refresh_loop(shared: &Shared, mut fetcher: TokenFetcher, fraction: f64) {
    let mut failures: u32 = 0;
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.stopped {
                    return;
                }
                if state.wanted {
                    break;
                }
                let now = Instant::now();
                state = match state.refresh_at {
                    Some(at) if at <= now => break,
                    Some(at) => {
                        shared
                            .changed
                            .wait_timeout(state, at - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => shared
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                };
            }
            state.wanted = false;
        }
        let started = Instant::now();
        let result = fetcher.fetch();
        let mut state = shared.lock();
        match result {
            Ok(token) => {
                failures = 0;
                tracing::debug!(expires_in = ?token.expires_in, "OAuth2 token fetched");
                state.refresh_at = token
                    .expires_in
                    .map(|life| started + life.mul_f64(fraction).max(MIN_REFRESH_DELAY));
                state.token = Some(Cached {
                    token: token.token,
                    expires_at: token.expires_in.map(|life| started + life),
                });
                state.last_error = None;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let retry = RETRY_INITIAL
                    .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
                    .min(RETRY_MAX);
                tracing::warn!(error = %e, retry_in = ?retry, "OAuth2 token fetch failed");
                state.refresh_at = Some(Instant::now() + retry);
                state.last_error = Some(e);
            }
        }
        state.attempts += 1;
        shared.changed.notify_all();
    }
}
