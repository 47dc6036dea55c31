//! Authentication providers: the method name and data sent in CONNECT, and answers to AUTH_CHALLENGE.

use std::fmt;

use bytes::Bytes;
use pulsar_proto::pb;

/// A provider failed to produce credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authentication provider failed: {0}")]
pub struct AuthError(pub String);

/// Supplies authentication data. Called when a connection is opened (CONNECT) and whenever the broker
/// sends AUTH_CHALLENGE (for example to refresh an expiring token), without dropping the connection.
pub trait AuthProvider: Send + fmt::Debug {
    /// The method name sent as `auth_method_name` (`token`, `basic`, ...).
    fn method_name(&self) -> &str;
    /// The data sent in CONNECT.
    fn auth_data(&mut self) -> Result<Bytes, AuthError>;
    /// The answer to a broker challenge. The default answers with fresh [`auth_data`](Self::auth_data)
    /// (what token-style methods do; the broker sends `refresh` as challenge data).
    fn challenge(&mut self, challenge: &pb::AuthData) -> Result<Bytes, AuthError> {
        let _ = challenge;
        self.auth_data()
    }
}

/// Where a [`TokenAuth`] gets its token.
enum TokenSource {
    Static(String),
    Supplier(Box<dyn FnMut() -> Result<String, AuthError> + Send>),
}

/// Token (JWT) authentication: method `token`, data = the token.
pub struct TokenAuth {
    source: TokenSource,
}

impl TokenAuth {
    /// A fixed token.
    pub fn new(token: impl Into<String>) -> TokenAuth {
        TokenAuth {
            source: TokenSource::Static(token.into()),
        }
    }

    /// A token read from the file at `path` on every CONNECT and every challenge, surrounding
    /// whitespace trimmed, so a rotated file is picked up without restarting the client. The read is
    /// done by the provider when the runtime feeds the core an input (the core stays free of I/O of
    /// its own); a missing, unreadable or empty file fails that connection attempt with [`AuthError`].
    pub fn from_file(path: impl Into<std::path::PathBuf>) -> TokenAuth {
        let path = path.into();
        TokenAuth::from_supplier(move || {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| AuthError(format!("reading token file {}: {e}", path.display())))?;
            non_empty(text.trim(), || {
                format!("token file {} is empty", path.display())
            })
        })
    }

    /// A token read from the environment variable `name` on every CONNECT and every challenge
    /// (surrounding whitespace trimmed). An unset or empty variable fails that connection attempt
    /// with [`AuthError`].
    pub fn from_env(name: impl Into<String>) -> TokenAuth {
        let name = name.into();
        TokenAuth::from_supplier(move || {
            let value = std::env::var(&name).map_err(|e| {
                AuthError(format!(
                    "reading token from environment variable {name}: {e}"
                ))
            })?;
            non_empty(value.trim(), || {
                format!("environment variable {name} is empty")
            })
        })
    }

    /// A token read from `supplier` on every CONNECT and every challenge (so a refreshed token is
    /// picked up).
    pub fn from_supplier(
        supplier: impl FnMut() -> Result<String, AuthError> + Send + 'static,
    ) -> TokenAuth {
        TokenAuth {
            source: TokenSource::Supplier(Box::new(supplier)),
        }
    }
}

fn non_empty(token: &str, why: impl FnOnce() -> String) -> Result<String, AuthError> {
    if token.is_empty() {
        Err(AuthError(why()))
    } else {
        Ok(token.to_string())
    }
}

impl fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            TokenSource::Static(_) => "static",
            TokenSource::Supplier(_) => "supplier",
        };
        f.debug_struct("TokenAuth").field("source", &kind).finish()
    }
}

impl AuthProvider for TokenAuth {
    fn method_name(&self) -> &str {
        "token"
    }
    fn auth_data(&mut self) -> Result<Bytes, AuthError> {
        match &mut self.source {
            TokenSource::Static(t) => Ok(Bytes::copy_from_slice(t.as_bytes())),
            TokenSource::Supplier(f) => f().map(Bytes::from),
        }
    }
}

/// HTTP-basic-style authentication: method `basic`, data = `user:password`.
pub struct BasicAuth {
    user: String,
    password: String,
}

impl BasicAuth {
    /// Credentials for `user`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> BasicAuth {
        BasicAuth {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl AuthProvider for BasicAuth {
    fn method_name(&self) -> &str {
        "basic"
    }
    fn auth_data(&mut self) -> Result<Bytes, AuthError> {
        Ok(Bytes::from(format!("{}:{}", self.user, self.password)))
    }
}

/// TLS client-certificate authentication: method `tls`, no data. The certificate itself is
/// presented by the transport (set it in the runtime's TLS options); this provider only asks the
/// broker to take the role from it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsAuth;

impl AuthProvider for TlsAuth {
    fn method_name(&self) -> &str {
        "tls"
    }
    fn auth_data(&mut self) -> Result<Bytes, AuthError> {
        Ok(Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_static_and_supplier() {
        let mut t = TokenAuth::new("abc");
        assert_eq!(t.method_name(), "token");
        assert_eq!(t.auth_data().unwrap(), Bytes::from_static(b"abc"));
        let mut n = 0;
        let mut t = TokenAuth::from_supplier(move || {
            n += 1;
            Ok(format!("tok{n}"))
        });
        assert_eq!(t.auth_data().unwrap(), Bytes::from_static(b"tok1"));
        let ch = pb::AuthData::default();
        assert_eq!(t.challenge(&ch).unwrap(), Bytes::from_static(b"tok2"));
        assert!(!format!("{t:?}").contains("tok"));
    }

    #[test]
    fn token_file_is_read_again_on_every_call() {
        let path = std::env::temp_dir().join(format!("pulsar-core-token-{}", std::process::id()));
        std::fs::write(&path, "first\n").unwrap();
        let mut t = TokenAuth::from_file(&path);
        assert_eq!(t.auth_data().unwrap(), Bytes::from_static(b"first"));
        std::fs::write(&path, "  second  ").unwrap();
        let ch = pb::AuthData::default();
        assert_eq!(t.challenge(&ch).unwrap(), Bytes::from_static(b"second"));
        std::fs::write(&path, " \n").unwrap();
        assert!(t.auth_data().unwrap_err().0.contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        assert!(t.auth_data().unwrap_err().0.contains("reading token file"));
    }

    #[test]
    fn token_env() {
        let name = format!("PULSAR_CORE_TEST_TOKEN_{}", std::process::id());
        let mut t = TokenAuth::from_env(&name);
        assert!(t.auth_data().unwrap_err().0.contains(&name));
        std::env::set_var(&name, "from-env\n");
        assert_eq!(t.auth_data().unwrap(), Bytes::from_static(b"from-env"));
        std::env::remove_var(&name);
    }

    #[test]
    fn tls() {
        let mut t = TlsAuth;
        assert_eq!(t.method_name(), "tls");
        assert!(t.auth_data().unwrap().is_empty());
    }

    #[test]
    fn basic() {
        let mut b = BasicAuth::new("u", "p");
        assert_eq!(b.method_name(), "basic");
        assert_eq!(b.auth_data().unwrap(), Bytes::from_static(b"u:p"));
        assert!(!format!("{b:?}").contains("\"p\""));
    }
}
