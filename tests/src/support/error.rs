//! Errors of the test-support library.

use std::path::PathBuf;

/// Why a support operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupportError {
    /// No broker could be found or started.
    #[error("no Pulsar broker available: {0}")]
    NoBroker(String),
    /// The broker script exited unsuccessfully.
    #[error("`{script} {args}` failed ({status}):\n{output}")]
    Script {
        /// Path of the script.
        script: PathBuf,
        /// Its arguments, space-separated.
        args: String,
        /// Exit status.
        status: String,
        /// Its standard output and error.
        output: String,
    },
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An admin call answered with a non-success status.
    #[error("HTTP {method} {url} answered {status}: {body}")]
    HttpStatus {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// Response status code.
        status: u16,
        /// Response body (lossy UTF-8).
        body: String,
    },
    /// An HTTP request failed (connecting, sending, or reading the response).
    #[error("HTTP {method} {url}: {source}")]
    Http {
        /// Request method.
        method: String,
        /// Request URL.
        url: String,
        /// The underlying error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// A URL this library cannot use.
    #[error("unsupported URL {0:?}")]
    BadUrl(String),
    /// The environment file written by the broker script is incomplete.
    #[error("broker environment {path}: {reason}")]
    BadEnv {
        /// Path of the file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A JSON body could not be parsed or lacked a field.
    #[error("JSON from {context}: {reason}")]
    Json {
        /// Where it came from.
        context: String,
        /// What was wrong.
        reason: String,
    },
}

impl SupportError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SupportError::Io {
            context: context.into(),
            source,
        }
    }
}
