//! The adapters' error type.

use crate::tls::TlsError;

/// Errors of the client adapters (tokio, smol, blocking).
///
/// Protocol and broker failures come from the core unchanged ([`Error::Client`],
/// [`Error::Send`]); the other variants are the adapter's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A client operation failed (lookup, registration, broker error, timeout, closed, ...).
    #[error(transparent)]
    Client(#[from] pulsar_core::Error),
    /// A send failed (queue full when failing fast, broker error, producer closed, ...).
    #[error(transparent)]
    Send(#[from] pulsar_core::SendError),
    /// A value did not encode with the producer's schema, or bytes sent with AUTO_PRODUCE_BYTES
    /// are not valid for the topic's schema.
    #[error(transparent)]
    Schema(#[from] pulsar_schema::SchemaError),
    /// The client configuration is invalid.
    #[error(transparent)]
    Config(#[from] pulsar_core::ConfigError),
    /// The TLS configuration is invalid (unreadable PEM file, no certificate, bad key, ...).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// TLS is required ([`ClientBuilder::require_tls`](crate::ClientBuilder::require_tls)) but
    /// the URL is not `pulsar+ssl://`.
    #[error("TLS is required but {0} is not a pulsar+ssl:// URL")]
    TlsRequired(String),
    /// The adapter could not start (no async runtime in the current context, thread spawn
    /// failure, ...).
    #[error("cannot start the client: {0}")]
    Runtime(String),
    /// The operation is not available here (a timed wait or a listener on a consumer whose client
    /// has no async runtime, a batch receive with a zero-size receiver queue, ...).
    #[error("not available: {0}")]
    Unsupported(&'static str),
    /// A builder was used without a setting it needs.
    #[error("missing setting: {0}")]
    Missing(&'static str),
    /// The client's I/O driver is gone (its runtime shut down): nothing can progress.
    #[error("the client's I/O driver stopped")]
    DriverStopped,
}

impl Error {
    /// Whether retrying the operation later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Client(e) => e.is_retriable(),
            Error::Send(pulsar_core::SendError::Transaction(e)) => e.is_retriable(),
            Error::Send(e) => matches!(
                e,
                pulsar_core::SendError::QueueFull | pulsar_core::SendError::Timeout
            ),
            _ => false,
        }
    }

    /// Whether this is the "closed" outcome of an operation on a producer, consumer or client that
    /// was closed (by the application, by dropping, or by closing the client).
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Error::Client(pulsar_core::Error::Closed | pulsar_core::Error::ClientClosed)
                | Error::Send(
                    pulsar_core::SendError::ProducerClosed | pulsar_core::SendError::ClientClosed
                )
                | Error::DriverStopped
        )
    }
}

/// Shorthand for results of the adapters.
pub type Result<T, E = Error> = std::result::Result<T, E>;
