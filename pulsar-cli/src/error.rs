//! The CLI's errors, each printed as one line on stderr with its chain of causes
//! ([`full_message`]).

use pulsar_auth_oauth2::OAuth2Error;
use pulsar_blocking::core::{Error as CoreError, ServerErrorCode};
use pulsar_blocking::Error as ClientError;
use std::error::Error as _;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// The client failed.
    #[error("{}", describe(.0))]
    Client(#[from] ClientError),
    /// OAuth2 configuration or token endpoint failure.
    #[error("OAuth2: {0}")]
    OAuth2(#[from] OAuth2Error),
    /// A local file could not be read or stdout written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Fewer messages than asked for arrived in time.
    #[error("{0}")]
    Incomplete(String),
    /// No connection to the service URL could be established within
    /// `--initial-connection-timeout`.
    #[error("cannot reach {url}: no connection within {seconds:.1} s (--initial-connection-timeout); {}", cause.as_deref().unwrap_or("no connection attempt finished (the host does not answer?)"))]
    Unreachable {
        /// The service URL.
        url: String,
        /// The bound that passed.
        seconds: f64,
        /// The last connection error, if an attempt finished.
        cause: Option<String>,
    },
}

impl CliError {
    /// The process exit code: 2 for usage errors (like clap's), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The error and every cause behind it, on one line: each source is appended after a colon unless
/// the text already contains it (many errors print their cause themselves). A client error's text
/// already says what the client error says (in words that say what to check), so its causes
/// follow it directly.
pub fn full_message(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = match error.downcast_ref::<CliError>() {
        Some(CliError::Client(client)) => client.source(),
        _ => error.source(),
    };
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace(['\n', '\r'], " ")
}

/// A client error as a sentence that says what to check.
fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Client(core) => describe_core(core),
        ClientError::Config(e) => format!("{e}"),
        other => other.to_string(),
    }
}

fn describe_core(error: &CoreError) -> String {
    match error {
        CoreError::Server {
            code: ServerErrorCode::AuthenticationError,
            message,
        } => format!("authentication failed: the broker rejected the credentials ({message})"),
        CoreError::Server {
            code: ServerErrorCode::AuthorizationError,
            message,
        } => format!("not authorized: {message}"),
        CoreError::IncompatibleSchema { .. } => format!(
            "incompatible schema: the broker refused the producer's schema (--value-schema) for \
             the topic's: {}",
            error.broker_reason().unwrap_or_default()
        ),
        CoreError::Auth(e) => format!("authentication failed: {}", e.0),
        e if e.is_timeout() => {
            format!("{e} (see --operation-timeout and --connection-timeout)")
        }
        CoreError::HandshakeTimeout(address) => format!(
            "no answer from {}:{} within the connection timeout (is it a Pulsar broker? TLS mismatch?)",
            address.host, address.port
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompatible_schema_says_so_in_the_brokers_words() {
        let error = ClientError::Client(CoreError::IncompatibleSchema {
            message: "org.apache.pulsar.broker.service.schema.exceptions.IncompatibleSchemaException: \
                      Incompatible schema: exists schema type STRING, new schema type JSON caused by \
                      org.apache.pulsar.broker.service.schema.exceptions.IncompatibleSchemaException: \
                      Incompatible schema: exists schema type STRING, new schema type JSON"
                .into(),
        });
        assert_eq!(
            full_message(&CliError::from(error)),
            "incompatible schema: the broker refused the producer's schema (--value-schema) for \
             the topic's: Incompatible schema: exists schema type STRING, new schema type JSON"
        );
        let plain = CoreError::IncompatibleSchema {
            message: "plain words: here".into(),
        };
        assert_eq!(plain.broker_reason(), Some("plain words: here"));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct SaysItsCause(#[source] std::io::Error);

    #[test]
    fn full_message_names_every_cause_once() {
        let refused =
            || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused\nhere");
        assert_eq!(full_message(&Outer(refused())), "outer: refused here");
        assert_eq!(
            full_message(&SaysItsCause(refused())),
            "outer: refused here"
        );
        let cli = CliError::io("reading f", refused());
        assert_eq!(full_message(&cli), "reading f: refused here");
    }
}
