//! What a test needs to know about a broker: URLs, certificates, credentials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::admin::Admin;
use super::error::SupportError;

/// A running broker's addresses and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerInfo {
    /// Binary protocol URL, `pulsar://127.0.0.1:PORT`.
    pub service_url: String,
    /// Admin REST URL, `http://127.0.0.1:PORT`.
    pub web_url: String,
    /// TLS binary protocol URL, `pulsar+ssl://127.0.0.1:PORT`, when TLS is on.
    pub service_url_tls: Option<String>,
    /// TLS admin URL, `https://127.0.0.1:PORT`, when TLS is on.
    pub web_url_tls: Option<String>,
    /// Certificates, when TLS is on.
    pub tls: Option<TlsFiles>,
    /// Credentials, when authentication is on.
    pub auth: Option<AuthInfo>,
    /// Whether broker-side deduplication is on.
    pub dedup: bool,
}

/// PEM files generated for a TLS broker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// An unrelated CA (for "wrong CA" tests).
    pub other_ca: PathBuf,
    /// Client certificate (CN=client) signed by `ca`.
    pub client_cert: PathBuf,
    /// Its private key (PKCS#8).
    pub client_key: PathBuf,
    /// Whether the broker requires a trusted client certificate (mTLS).
    pub require_client_cert: bool,
}

/// Credentials of a broker with authentication on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthInfo {
    /// The HS256 secret key (raw bytes) tokens are signed with.
    pub secret_key: PathBuf,
    /// Token of the super-user role `admin`.
    pub admin_token: String,
    /// Token of the role `client`.
    pub client_token: String,
    /// Basic-authentication user.
    pub basic_user: String,
    /// Basic-authentication password.
    pub basic_password: String,
    /// The broker's `authenticationRefreshCheckSeconds`.
    pub refresh_seconds: u32,
}

impl BrokerInfo {
    /// A broker known only by its two URLs (no TLS, no authentication).
    pub fn plain(service_url: &str, web_url: &str) -> Self {
        BrokerInfo {
            service_url: service_url.trim_end_matches('/').to_owned(),
            web_url: web_url.trim_end_matches('/').to_owned(),
            service_url_tls: None,
            web_url_tls: None,
            tls: None,
            auth: None,
            dedup: false,
        }
    }

    /// `host:port` of the plain binary protocol listener.
    pub fn binary_addr(&self) -> Result<String, SupportError> {
        url_authority(&self.service_url, "pulsar://")
    }

    /// `host:port` of the TLS binary protocol listener.
    pub fn binary_tls_addr(&self) -> Result<String, SupportError> {
        let url = self
            .service_url_tls
            .as_deref()
            .ok_or_else(|| SupportError::BadUrl("this broker has no TLS listener".into()))?;
        url_authority(url, "pulsar+ssl://")
    }

    /// An admin client, authenticated as `admin` when authentication is on.
    pub fn admin(&self) -> Result<Admin, SupportError> {
        Admin::new(
            &self.web_url,
            self.auth.as_ref().map(|a| a.admin_token.clone()),
        )
    }

    /// Reads the `KEY=VALUE` file the broker script writes (`$PULSAR_HOME_DIR/broker.env`).
    pub fn from_env_file(path: &Path) -> Result<Self, SupportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SupportError::io(format!("reading {}", path.display()), e))?;
        let vars: HashMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let missing = |key: &str| SupportError::BadEnv {
            path: path.to_owned(),
            reason: format!("{key} missing"),
        };
        let get = |key: &str| vars.get(key).map(|v| (*v).to_owned());
        let need = |key: &str| get(key).ok_or_else(|| missing(key));
        let read = |key: &str| -> Result<String, SupportError> {
            let file = need(key)?;
            std::fs::read_to_string(&file)
                .map(|s| s.trim().to_owned())
                .map_err(|e| SupportError::io(format!("reading {file}"), e))
        };

        let tls = match get("PULSAR_TLS_CA") {
            None => None,
            Some(ca) => Some(TlsFiles {
                ca: ca.into(),
                other_ca: need("PULSAR_TLS_OTHER_CA")?.into(),
                client_cert: need("PULSAR_TLS_CLIENT_CERT")?.into(),
                client_key: need("PULSAR_TLS_CLIENT_KEY")?.into(),
                require_client_cert: get("PULSAR_TLS_REQUIRE_CLIENT_CERT").as_deref()
                    == Some("true"),
            }),
        };
        let auth = match get("PULSAR_AUTH_SECRET_KEY") {
            None => None,
            Some(secret_key) => Some(AuthInfo {
                secret_key: secret_key.into(),
                admin_token: read("PULSAR_ADMIN_TOKEN_FILE")?,
                client_token: read("PULSAR_CLIENT_TOKEN_FILE")?,
                basic_user: need("PULSAR_BASIC_USER")?,
                basic_password: need("PULSAR_BASIC_PASSWORD")?,
                refresh_seconds: need("PULSAR_AUTH_REFRESH_SECONDS")?
                    .parse()
                    .map_err(|_| missing("a numeric PULSAR_AUTH_REFRESH_SECONDS"))?,
            }),
        };
        Ok(BrokerInfo {
            service_url: need("PULSAR_SERVICE_URL")?,
            web_url: need("PULSAR_WEB_URL")?,
            service_url_tls: get("PULSAR_SERVICE_URL_TLS"),
            web_url_tls: get("PULSAR_WEB_URL_TLS"),
            tls,
            auth,
            dedup: get("PULSAR_DEDUP").as_deref() == Some("true"),
        })
    }
}

fn url_authority(url: &str, scheme: &str) -> Result<String, SupportError> {
    url.strip_prefix(scheme)
        .map(|rest| rest.trim_end_matches('/').to_owned())
        .filter(|rest| rest.contains(':') && !rest.contains('/'))
        .ok_or_else(|| SupportError::BadUrl(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_addresses() {
        let info = BrokerInfo::plain("pulsar://127.0.0.1:6650/", "http://127.0.0.1:8080");
        assert_eq!(info.binary_addr().ok().as_deref(), Some("127.0.0.1:6650"));
        assert!(info.binary_tls_addr().is_err());
        assert!(BrokerInfo::plain("http://x:1", "http://x:2")
            .binary_addr()
            .is_err());
    }
}
