//! Errors of the OAuth2 client-credentials flow.

/// Why a token could not be obtained, or why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuth2Error {
    /// The configuration is invalid (missing client id, URL that is not http(s), ...).
    #[error("invalid OAuth2 configuration: {0}")]
    Config(String),
    /// The credentials file (or `data:` URL) could not be read or parsed.
    #[error("OAuth2 credentials {location}: {reason}")]
    Credentials {
        /// Where the credentials were looked for (a `data:` URL is not repeated).
        location: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP request failed before a response arrived (DNS, connect, TLS, timeout).
    #[error("OAuth2 request to {url} failed: {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport's reason.
        reason: String,
    },
    /// The server answered with a non-success HTTP status (for the token endpoint, typically an
    /// OAuth2 error such as `invalid_client`).
    #[error("OAuth2 server {url} answered HTTP {status}: {detail}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The OAuth2 `error` and `error_description`, or the start of the body.
        detail: String,
    },
    /// A success response that is not what the protocol says (not JSON, no `access_token`, no
    /// `token_endpoint`, ...).
    #[error("unexpected response from OAuth2 server {url}: {reason}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}
