//! What the flow needs: where the token endpoint is, the client's credentials, audience and scope.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::OAuth2Error;

/// Default bound on each HTTP request (metadata and token).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default fraction of a token's lifetime after which it is refreshed.
pub const DEFAULT_REFRESH_FRACTION: f64 = 0.8;

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// An OpenID issuer URL: its token endpoint is read from
    /// `<issuer>/.well-known/openid-configuration`.
    Issuer(String),
    /// The token endpoint itself.
    TokenEndpoint(String),
}

impl Endpoint {
    fn url(&self) -> &str {
        match self {
            Endpoint::Issuer(u) | Endpoint::TokenEndpoint(u) => u,
        }
    }
}

/// Configuration of the client-credentials flow. Build with [`OAuth2Config::from_issuer`],
/// [`OAuth2Config::from_token_endpoint`], [`OAuth2Config::from_credentials`] or
/// [`OAuth2Config::from_auth_params`], then adjust fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct OAuth2Config {
    /// Where tokens come from.
    pub endpoint: Endpoint,
    /// The OAuth2 client id.
    pub client_id: String,
    /// The OAuth2 client secret.
    pub client_secret: String,
    /// The `audience` parameter of the token request (the Pulsar cluster's identifier), if any.
    pub audience: Option<String>,
    /// The `scope` parameter of the token request, if any.
    pub scope: Option<String>,
    /// PEM file of the CA certificates trusted for `https://` endpoints (default: the bundled
    /// Mozilla roots).
    pub trust_certs_file: Option<PathBuf>,
    /// Bound on each HTTP request.
    pub http_timeout: Duration,
    /// A token is refreshed after this fraction of its lifetime (`expires_in`) has passed; in
    /// `(0, 1]`.
    pub refresh_fraction: f64,
}

impl fmt::Debug for OAuth2Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Config")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .field("trust_certs_file", &self.trust_certs_file)
            .field("http_timeout", &self.http_timeout)
            .field("refresh_fraction", &self.refresh_fraction)
            .finish()
    }
}

impl OAuth2Config {
    fn new(endpoint: Endpoint, client_id: String, client_secret: String) -> OAuth2Config {
        OAuth2Config {
            endpoint,
            client_id,
            client_secret,
            audience: None,
            scope: None,
            trust_certs_file: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            refresh_fraction: DEFAULT_REFRESH_FRACTION,
        }
    }

    /// Credentials for an OpenID issuer (the token endpoint is discovered).
    pub fn from_issuer(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OAuth2Config {
        Self::new(
            Endpoint::Issuer(issuer_url.into()),
            client_id.into(),
            client_secret.into(),
        )
    }

    /// Credentials for a token endpoint given directly (no discovery).
    pub fn from_token_endpoint(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OAuth2Config {
        Self::new(
            Endpoint::TokenEndpoint(token_endpoint.into()),
            client_id.into(),
            client_secret.into(),
        )
    }

    /// Credentials from a key file; `issuer_url`, when given, wins over the file's `issuer_url`.
    pub fn from_credentials(
        credentials: CredentialsFile,
        issuer_url: Option<&str>,
    ) -> Result<OAuth2Config, OAuth2Error> {
        let issuer = issuer_url
            .map(str::to_string)
            .or(credentials.issuer_url)
            .ok_or_else(|| {
                OAuth2Error::Config(
                    "no issuer URL (neither given nor in the credentials file)".into(),
                )
            })?;
        Ok(Self::from_issuer(
            issuer,
            credentials.client_id,
            credentials.client_secret,
        ))
    }

    /// The JSON parameters of the Java client's `AuthenticationOAuth2` plugin:
    /// `{"type":"client_credentials","issuerUrl":"...","privateKey":"file:///path/key.json",
    /// "audience":"...","scope":"..."}` (`privateKey` as in [`CredentialsFile::load`]).
    pub fn from_auth_params(json: &str) -> Result<OAuth2Config, OAuth2Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Params {
            #[serde(rename = "type")]
            kind: Option<String>,
            issuer_url: Option<String>,
            private_key: Option<String>,
            audience: Option<String>,
            scope: Option<String>,
        }
        let params: Params = serde_json::from_str(json).map_err(|e| {
            OAuth2Error::Config(format!("OAuth2 parameters are not valid JSON: {e}"))
        })?;
        check_type(params.kind.as_deref(), "OAuth2 parameters")?;
        let key = params
            .private_key
            .ok_or_else(|| OAuth2Error::Config("OAuth2 parameters need privateKey".into()))?;
        let mut config =
            Self::from_credentials(CredentialsFile::load(&key)?, params.issuer_url.as_deref())?;
        config.audience = params.audience.filter(|a| !a.is_empty());
        config.scope = params.scope.filter(|s| !s.is_empty());
        Ok(config)
    }

    /// Sets the audience (builder style).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Sets the scope (builder style).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Sets the trusted CA file for `https://` endpoints (builder style).
    pub fn with_trust_certs_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust_certs_file = Some(path.into());
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), OAuth2Error> {
        let url = self.endpoint.url();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            return Err(OAuth2Error::Config(format!(
                "endpoint {url:?} is not an http:// or https:// URL"
            )));
        }
        if self.client_id.is_empty() {
            return Err(OAuth2Error::Config("client id is empty".into()));
        }
        if self.client_secret.is_empty() {
            return Err(OAuth2Error::Config("client secret is empty".into()));
        }
        if self.http_timeout.is_zero() {
            return Err(OAuth2Error::Config("HTTP timeout must be positive".into()));
        }
        if !(self.refresh_fraction > 0.0 && self.refresh_fraction <= 1.0) {
            return Err(OAuth2Error::Config(
                "refresh fraction must be in (0, 1]".into(),
            ));
        }
        Ok(())
    }
}

/// The client-credentials key file of the Java client (its `privateKey`):
/// `{"type":"client_credentials","client_id":"...","client_secret":"...","issuer_url":"..."}`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialsFile {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The issuer URL, if the file has one.
    pub issuer_url: Option<String>,
}

impl fmt::Debug for CredentialsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsFile")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("issuer_url", &self.issuer_url)
            .finish()
    }
}

impl CredentialsFile {
    /// Reads credentials from `location`: a path, a `file://` URL, or a
    /// `data:application/json;base64,<...>` URL.
    pub fn load(location: &str) -> Result<CredentialsFile, OAuth2Error> {
        if let Some(rest) = location.strip_prefix("data:") {
            let shown = "data: URL".to_string();
            let bad = |reason: String| OAuth2Error::Credentials {
                location: shown.clone(),
                reason,
            };
            let (kind, data) = rest
                .split_once(',')
                .ok_or_else(|| bad("no ',' before the data".into()))?;
            let bytes = if kind.ends_with(";base64") {
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| bad(format!("bad base64: {e}")))?
            } else {
                data.as_bytes().to_vec()
            };
            return Self::parse(&bytes).map_err(bad);
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        let bad = |reason: String| OAuth2Error::Credentials {
            location: path.to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Self::parse(&bytes).map_err(bad)
    }

    fn parse(json: &[u8]) -> Result<CredentialsFile, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(rename = "type")]
            kind: Option<String>,
            client_id: Option<String>,
            client_secret: Option<String>,
            issuer_url: Option<String>,
        }
        let file: File =
            serde_json::from_slice(json).map_err(|e| format!("not valid JSON: {e}"))?;
        check_type(file.kind.as_deref(), "credentials").map_err(|e| e.to_string())?;
        let need = |v: Option<String>, name: &str| {
            v.filter(|s| !s.is_empty())
                .ok_or_else(|| format!("{name} missing or empty"))
        };
        Ok(CredentialsFile {
            client_id: need(file.client_id, "client_id")?,
            client_secret: need(file.client_secret, "client_secret")?,
            issuer_url: file.issuer_url.filter(|s| !s.is_empty()),
        })
    }
}

fn check_type(kind: Option<&str>, what: &str) -> Result<(), OAuth2Error> {
    match kind {
        None | Some("client_credentials") => Ok(()),
        Some(other) => Err(OAuth2Error::Config(format!(
            "{what}: unsupported type {other:?} (only client_credentials)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_forms() {
        let json = r#"{"type":"client_credentials","client_id":"id","client_secret":"s3cret","issuer_url":"http://127.0.0.1:1/"}"#;
        let path = std::env::temp_dir().join(format!("oauth2-creds-{}.json", std::process::id()));
        std::fs::write(&path, json).unwrap();
        let from_path = CredentialsFile::load(path.to_str().unwrap()).unwrap();
        let from_url = CredentialsFile::load(&format!("file://{}", path.display())).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        let from_data =
            CredentialsFile::load(&format!("data:application/json;base64,{encoded}")).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_path, from_url);
        assert_eq!(from_path, from_data);
        assert_eq!(from_path.client_id, "id");
        assert_eq!(from_path.client_secret, "s3cret");
        assert_eq!(from_path.issuer_url.as_deref(), Some("http://127.0.0.1:1/"));
        assert!(!format!("{from_path:?}").contains("s3cret"));

        let config = OAuth2Config::from_credentials(from_path.clone(), None).unwrap();
        assert_eq!(
            config.endpoint,
            Endpoint::Issuer("http://127.0.0.1:1/".into())
        );
        let config = OAuth2Config::from_credentials(from_path, Some("https://other/")).unwrap();
        assert_eq!(config.endpoint, Endpoint::Issuer("https://other/".into()));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn bad_credentials() {
        let missing = CredentialsFile::load("/nonexistent/creds.json").unwrap_err();
        assert!(
            matches!(missing, OAuth2Error::Credentials { ref location, .. } if location == "/nonexistent/creds.json")
        );
        let e = CredentialsFile::parse(br#"{"client_id":"x"}"#).unwrap_err();
        assert!(e.contains("client_secret"), "{e}");
        let e =
            CredentialsFile::parse(br#"{"type":"jwt_bearer","client_id":"x","client_secret":"y"}"#)
                .unwrap_err();
        assert!(e.contains("unsupported type"), "{e}");
        let no_issuer =
            CredentialsFile::parse(br#"{"client_id":"x","client_secret":"y"}"#).unwrap();
        assert!(matches!(
            OAuth2Config::from_credentials(no_issuer, None),
            Err(OAuth2Error::Config(_))
        ));
    }

    #[test]
    fn java_auth_params() {
        let json = r#"{"client_id":"id","client_secret":"sec"}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(json);
        let params = format!(
            r#"{{"type":"client_credentials","issuerUrl":"http://127.0.0.1:9/","privateKey":"data:application/json;base64,{encoded}","audience":"aud","scope":"s1 s2"}}"#
        );
        let config = OAuth2Config::from_auth_params(&params).unwrap();
        assert_eq!(
            config.endpoint,
            Endpoint::Issuer("http://127.0.0.1:9/".into())
        );
        assert_eq!(config.client_id, "id");
        assert_eq!(config.client_secret, "sec");
        assert_eq!(config.audience.as_deref(), Some("aud"));
        assert_eq!(config.scope.as_deref(), Some("s1 s2"));
        config.validate().unwrap();
        assert!(matches!(
            OAuth2Config::from_auth_params("{"),
            Err(OAuth2Error::Config(_))
        ));
        assert!(matches!(
            OAuth2Config::from_auth_params(r#"{"issuerUrl":"http://x/"}"#),
            Err(OAuth2Error::Config(m)) if m.contains("privateKey")
        ));
    }

    #[test]
    fn validation() {
        assert!(OAuth2Config::from_issuer("ftp://x", "a", "b")
            .validate()
            .is_err());
        assert!(OAuth2Config::from_issuer("http://x", "", "b")
            .validate()
            .is_err());
        assert!(OAuth2Config::from_issuer("http://x", "a", "")
            .validate()
            .is_err());
        let mut c = OAuth2Config::from_token_endpoint("https://x/token", "a", "b");
        c.validate().unwrap();
        c.refresh_fraction = 0.0;
        assert!(c.validate().is_err());
    }
}
