//! Errors of the benchmark binaries.

/// Something a benchmark client or the harness could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Bad command line or spec.
    #[error("usage: {0}")]
    Usage(String),
    /// The Pulsar client under test failed.
    #[error("client: {0}")]
    Client(String),
    /// An admin REST call failed.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// Files, processes, pipes.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A client process did not do its job.
    #[error("run {0}")]
    Run(String),
    /// Drawing a chart failed.
    #[error("chart {0}")]
    Chart(String),
}

impl BenchError {
    /// A client error from anything printable.
    pub fn client(e: impl std::fmt::Display) -> BenchError {
        BenchError::Client(e.to_string())
    }

    /// An I/O error with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let what = what.into();
        move |source| BenchError::Io { what, source }
    }
}
