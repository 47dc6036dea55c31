//! OAuth2 client-credentials authentication for the Pulsar client.
//!
//! [`OAuth2Auth`] implements the core's [`AuthProvider`](pulsar_core::AuthProvider) with method
//! name `token`: it exchanges a client id and secret for an access token at the identity
//! provider's token endpoint (found through the issuer's
//! `/.well-known/openid-configuration` document, or given directly) and sends that token to the
//! broker. A background thread refreshes the token before it expires, so answering a CONNECT or an
//! AUTH_CHALLENGE returns a cached token at once; only the very first token is waited for.
//!
//! This lives outside `pulsar-core` because it performs HTTP (and TLS) I/O of its own.
//!
//! ```no_run
//! use pulsar_auth_oauth2::{OAuth2Auth, OAuth2Config};
//! use pulsar_core::ClientConfig;
//!
//! # fn main() -> Result<(), pulsar_auth_oauth2::OAuth2Error> {
//! let oauth = OAuth2Config::from_issuer("https://auth.example.com/", "my-id", "my-secret")
//!     .with_audience("urn:pulsar:my-cluster");
//! let config = ClientConfig::new("pulsar+ssl://broker.example.com:6651")
//!     .with_auth(OAuth2Auth::new(oauth)?);
//! # let _ = config;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

/// The examples of the crate's README.md, compiled (and run unless `no_run`) by `cargo test --doc`
/// so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

mod config;
mod error;
mod fetcher;
mod http;
mod provider;

pub use config::{CredentialsFile, Endpoint, OAuth2Config};
pub use error::OAuth2Error;
pub use fetcher::{AccessToken, TokenFetcher};
pub use provider::OAuth2Auth;
