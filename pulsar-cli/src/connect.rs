//! The blocking client from the global flags.

use std::time::Duration;

use pulsar_blocking::core::ProxyProtocol;
use pulsar_blocking::Client;

use crate::args::{Global, ProxyProtocolArg};
use crate::auth;
use crate::error::CliError;

/// Seconds from a flag as a positive duration.
pub fn seconds(value: f64, flag: &str) -> Result<Duration, CliError> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(CliError::Usage(format!(
            "{flag} must be a positive number of seconds"
        )))
    }
}

/// `--initial-connection-timeout`: `None` when 0 (no separate bound).
pub fn initial_connection_timeout(global: &Global) -> Result<Option<Duration>, CliError> {
    if global.initial_connection_timeout == 0.0 {
        return Ok(None);
    }
    seconds(
        global.initial_connection_timeout,
        "--initial-connection-timeout",
    )
    .map(Some)
}

/// Connects lazily: the client is configured here; sockets open on the first producer or consumer.
/// `connections_per_broker` is perf's `-c`.
pub fn client(global: &Global, connections_per_broker: Option<u32>) -> Result<Client, CliError> {
    let auth = auth::from_flags(global)?;
    let mut builder = Client::builder(global.url.trim())
        .connection_timeout(seconds(global.connection_timeout, "--connection-timeout")?)
        .operation_timeout(seconds(global.operation_timeout, "--operation-timeout")?);
    if let Some(n) = connections_per_broker {
        builder = builder.connections_per_broker(n as usize);
    }
    if let Some(limit) = global.memory_limit {
        builder = builder.configure(move |c| c.memory_limit = limit);
    }
    if let Some(provider) = auth.provider {
        builder = builder.auth_boxed(provider);
    }
    if let Some(path) = &global.tls_trust_certs_file_path {
        builder = builder.tls_trust_certs_file(path);
    }
    if global.tls_allow_insecure {
        builder = builder.danger_accept_invalid_certificates();
    }
    if !global.tls_enable_hostname_verification {
        builder = builder.danger_skip_hostname_verification();
    }
    let cert = match (&global.tls_cert_file, &global.tls_key_file) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => auth.client_cert,
    };
    if let Some((cert, key)) = cert {
        builder = builder.tls_client_certificate(cert, key);
    }
    if let (Some(url), Some(ProxyProtocolArg::Sni)) = (&global.proxy_url, global.proxy_protocol) {
        builder = builder.proxy(url.trim(), ProxyProtocol::Sni);
    }
    if let Some(name) = &global.listener_name {
        builder = builder.listener_name(name);
    }
    Ok(builder.build()?)
}
