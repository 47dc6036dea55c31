//! A blocking HTTP(S) client for the two requests of the flow: the metadata GET and the token POST.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

use crate::error::OAuth2Error;

/// A response: status code and body text.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: String,
}

/// One agent (connection pool) per fetcher.
pub(crate) struct Http {
    agent: Agent,
}

impl Http {
    /// An agent whose every request is bounded by `timeout`, trusting the PEM certificates in
    /// `trust_certs_file` when given (otherwise the bundled Mozilla roots).
    pub(crate) fn new(
        timeout: Duration,
        trust_certs_file: Option<&Path>,
    ) -> Result<Http, OAuth2Error> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = trust_certs_file {
            tls = tls.root_certs(read_roots(path)?);
        }
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("pulsar-auth-oauth2/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        Ok(Http {
            agent: config.new_agent(),
        })
    }

    /// `GET url` accepting JSON.
    pub(crate) fn get(&self, url: &str) -> Result<Response, OAuth2Error> {
        let result = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call();
        read(url, result)
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body.
    pub(crate) fn post_form(
        &self,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Result<Response, OAuth2Error> {
        let result = self
            .agent
            .post(url)
            .header("Accept", "application/json")
            .send_form(fields.iter().copied());
        read(url, result)
    }
}

fn read(
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Response, OAuth2Error> {
    let failed = |e: ureq::Error| OAuth2Error::Http {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let response = result.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.into_body().read_to_string().map_err(failed)?;
    Ok(Response { status, body })
}

fn read_roots(path: &Path) -> Result<RootCerts, OAuth2Error> {
    let bad = |reason: String| {
        OAuth2Error::Config(format!("trust certificates {}: {reason}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(cert) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}
