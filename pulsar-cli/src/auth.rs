//! Authentication from the command line: `--token`, `--token-file`, or `--auth-plugin` with
//! `--auth-params` in the formats of the Java tool.

use std::path::PathBuf;

use pulsar_auth_oauth2::{OAuth2Auth, OAuth2Config};
use pulsar_blocking::core::auth::TlsAuth;
use pulsar_blocking::core::{AuthProvider, BasicAuth, TokenAuth};
use serde_json::Value;

use crate::args::Global;
use crate::error::CliError;

/// What the flags ask for: a provider for CONNECT, and for TLS authentication the client
/// certificate to present.
#[derive(Debug, Default)]
pub struct AuthSetup {
    /// The provider, if any.
    pub provider: Option<Box<dyn AuthProvider>>,
    /// Client certificate and key (from the `tls` plugin's parameters).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Builds the authentication from the global flags.
pub fn from_flags(global: &Global) -> Result<AuthSetup, CliError> {
    if let Some(token) = &global.token {
        return Ok(provider(TokenAuth::new(token.trim())));
    }
    if let Some(path) = &global.token_file {
        return Ok(provider(TokenAuth::from_file(path)));
    }
    match (&global.auth_plugin, &global.auth_params) {
        (Some(plugin), Some(params)) => plugin_setup(plugin, params),
        _ => Ok(AuthSetup::default()),
    }
}

fn provider(p: impl AuthProvider + 'static) -> AuthSetup {
    AuthSetup {
        provider: Some(Box::new(p)),
        client_cert: None,
    }
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// `plugin` is a short name or a Java class name (its last segment decides).
fn plugin_setup(plugin: &str, params: &str) -> Result<AuthSetup, CliError> {
    let short = plugin
        .rsplit('.')
        .next()
        .unwrap_or(plugin)
        .to_ascii_lowercase();
    match short.as_str() {
        "token" | "authenticationtoken" => token_params(params),
        "basic" | "authenticationbasic" => basic_params(params),
        "oauth2" | "authenticationoauth2" => {
            let config = OAuth2Config::from_auth_params(params)?;
            Ok(provider(OAuth2Auth::new(config)?))
        }
        "tls" | "authenticationtls" => tls_params(params),
        _ => Err(usage(format!(
            "unknown authentication plugin {plugin:?} (token, basic, oauth2, tls, or their Java class names)"
        ))),
    }
}

/// `token:XYZ`, `file:///path` (or `file:path`), `{"token":"XYZ"}`, or the token itself.
fn token_params(params: &str) -> Result<AuthSetup, CliError> {
    let params = params.trim();
    if let Some(token) = params.strip_prefix("token:") {
        return Ok(provider(TokenAuth::new(token.trim())));
    }
    if let Some(path) = params
        .strip_prefix("file://")
        .or_else(|| params.strip_prefix("file:"))
    {
        return Ok(provider(TokenAuth::from_file(path)));
    }
    if params.starts_with('{') {
        let v: Value = serde_json::from_str(params)
            .map_err(|e| usage(format!("token parameters are not valid JSON: {e}")))?;
        let token = v
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| usage("token parameters need a \"token\" field"))?;
        return token_params(token);
    }
    if params.is_empty() {
        return Err(usage("empty token parameters"));
    }
    Ok(provider(TokenAuth::new(params)))
}

/// `{"userId":"u","password":"p"}` or `u:p`.
fn basic_params(params: &str) -> Result<AuthSetup, CliError> {
    let params = params.trim();
    let (user, password) = if params.starts_with('{') {
        let v: Value = serde_json::from_str(params)
            .map_err(|e| usage(format!("basic parameters are not valid JSON: {e}")))?;
        let field = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| usage(format!("basic parameters need a \"{name}\" field")))
        };
        (field("userId")?, field("password")?)
    } else {
        let (u, p) = params.split_once(':').ok_or_else(|| {
            usage("basic parameters: {\"userId\":..,\"password\":..} or user:password")
        })?;
        (u.to_string(), p.to_string())
    };
    Ok(provider(BasicAuth::new(user, password)))
}

/// `tlsCertFile:/c.pem,tlsKeyFile:/k.pem` or `{"tlsCertFile":..,"tlsKeyFile":..}`.
fn tls_params(params: &str) -> Result<AuthSetup, CliError> {
    let params = params.trim();
    let (mut cert, mut key) = (None, None);
    if params.starts_with('{') {
        let v: Value = serde_json::from_str(params)
            .map_err(|e| usage(format!("tls parameters are not valid JSON: {e}")))?;
        cert = v
            .get("tlsCertFile")
            .and_then(Value::as_str)
            .map(str::to_string);
        key = v
            .get("tlsKeyFile")
            .and_then(Value::as_str)
            .map(str::to_string);
    } else {
        for part in params.split(',') {
            match part.split_once(':') {
                Some(("tlsCertFile", v)) => cert = Some(v.to_string()),
                Some(("tlsKeyFile", v)) => key = Some(v.to_string()),
                _ => return Err(usage(format!("tls parameters: unknown part {part:?}"))),
            }
        }
    }
    let strip = |s: String| PathBuf::from(s.strip_prefix("file://").unwrap_or(&s));
    match (cert, key) {
        (Some(c), Some(k)) => Ok(AuthSetup {
            provider: Some(Box::new(TlsAuth)),
            client_cert: Some((strip(c), strip(k))),
        }),
        _ => Err(usage("tls parameters need tlsCertFile and tlsKeyFile")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(setup: &AuthSetup) -> Option<String> {
        setup.provider.as_ref().map(|p| p.method_name().to_string())
    }

    fn data(setup: &mut AuthSetup) -> String {
        let p = setup.provider.as_mut().unwrap();
        String::from_utf8(p.auth_data().unwrap().to_vec()).unwrap()
    }

    #[test]
    fn token_forms() {
        for params in ["token:abc", "abc", r#"{"token":"abc"}"#, " token:abc "] {
            let mut s = plugin_setup(
                "org.apache.pulsar.client.impl.auth.AuthenticationToken",
                params,
            )
            .unwrap();
            assert_eq!(method(&s).as_deref(), Some("token"));
            assert_eq!(data(&mut s), "abc", "{params}");
        }
        let path = std::env::temp_dir().join(format!("cli-token-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let mut s = plugin_setup("token", &format!("file://{}", path.display())).unwrap();
        assert_eq!(data(&mut s), "from-file");
        std::fs::remove_file(&path).unwrap();
        assert!(plugin_setup("token", "").is_err());
    }

    #[test]
    fn basic_and_tls_forms() {
        let mut s = plugin_setup("basic", r#"{"userId":"u","password":"p"}"#).unwrap();
        assert_eq!(method(&s).as_deref(), Some("basic"));
        assert_eq!(data(&mut s), "u:p");
        let mut s = plugin_setup("AuthenticationBasic", "u:p:q").unwrap();
        assert_eq!(data(&mut s), "u:p:q");
        let s = plugin_setup("tls", "tlsCertFile:/c.pem,tlsKeyFile:file:///k.pem").unwrap();
        assert_eq!(method(&s).as_deref(), Some("tls"));
        assert_eq!(s.client_cert, Some(("/c.pem".into(), "/k.pem".into())));
        assert!(plugin_setup("tls", "tlsCertFile:/c.pem").is_err());
        assert!(plugin_setup("kerberos", "x").is_err());
    }
}
