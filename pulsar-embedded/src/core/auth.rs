//! `token` authentication with JSON Web Tokens, as Apache Pulsar's `AuthenticationProviderToken`
//! does it: HS256/384/512 tokens signed with a secret key, or RS256/384/512 (and PS256/384/512)
//! tokens signed with an RSA private key and checked with its public key; the role is the `sub`
//! claim (or the claim [`JwtConfig::role_claim`] names); `exp` and `nbf` are honoured against the
//! broker's wall clock ([`ClusterConfig::unix_time_at_zero_ms`](super::ClusterConfig)), and the
//! audience when [`JwtConfig::audience`] is set.
//!
//! The validation reads no clock: the caller passes the time, so the sans-IO core stays pure.

use std::collections::BTreeMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// The key tokens are checked with.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtKey {
    /// A shared secret (HS256, HS384, HS512), the raw bytes of Apache Pulsar's `tokenSecretKey`
    /// (`pulsar tokens create-secret-key` writes them; so does `head -c 32 /dev/urandom`).
    Secret(Vec<u8>),
    /// An RSA public key (RS256, RS384, RS512, PS256, PS384, PS512): PEM (`PUBLIC KEY` or
    /// `RSA PUBLIC KEY`) or the DER `SubjectPublicKeyInfo` that Apache Pulsar's
    /// `pulsar tokens create-key-pair` writes as the `tokenPublicKey` file.
    RsaPublic(Vec<u8>),
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never print key material
        match self {
            JwtKey::Secret(k) => write!(f, "Secret({} bytes)", k.len()),
            JwtKey::RsaPublic(k) => write!(f, "RsaPublic({} bytes)", k.len()),
        }
    }
}

/// How JWTs are validated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtConfig {
    /// The verification key.
    pub key: JwtKey,
    /// The claim holding the role (Apache Pulsar's `tokenAuthClaim`, default `sub`).
    pub role_claim: String,
    /// When set, the token's `aud` claim (a string or a list) must contain it (Apache Pulsar's
    /// `tokenAudience`, with `tokenAudienceClaim` = `aud`).
    pub audience: Option<String>,
    /// Tolerated clock skew, in seconds, on `exp` and `nbf` (Apache Pulsar's
    /// `tokenAllowedClockSkewSeconds`, default 0).
    pub clock_skew_secs: u64,
}

impl JwtConfig {
    /// HS256/384/512 tokens signed with `secret`, the role in `sub`.
    pub fn secret(secret: impl Into<Vec<u8>>) -> JwtConfig {
        JwtConfig::with_key(JwtKey::Secret(secret.into()))
    }

    /// RS256/384/512 and PS256/384/512 tokens checked with an RSA public key (PEM or DER), the
    /// role in `sub`. The key is parsed here, so a bad key is refused before the broker starts.
    pub fn rsa_public_key(key: impl Into<Vec<u8>>) -> Result<JwtConfig, TokenError> {
        let config = JwtConfig::with_key(JwtKey::RsaPublic(key.into()));
        config.decoding_key()?;
        Ok(config)
    }

    fn with_key(key: JwtKey) -> JwtConfig {
        JwtConfig {
            key,
            role_claim: "sub".to_owned(),
            audience: None,
            clock_skew_secs: 0,
        }
    }

    /// This configuration with the role taken from `claim`.
    pub fn role_claim(mut self, claim: impl Into<String>) -> JwtConfig {
        self.role_claim = claim.into();
        self
    }

    /// This configuration requiring `audience` in the `aud` claim.
    pub fn audience(mut self, audience: impl Into<String>) -> JwtConfig {
        self.audience = Some(audience.into());
        self
    }

    fn decoding_key(&self) -> Result<(DecodingKey, &'static [Algorithm]), TokenError> {
        match &self.key {
            JwtKey::Secret(s) => Ok((
                DecodingKey::from_secret(s),
                &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            )),
            JwtKey::RsaPublic(k) => {
                let pem = if k.starts_with(b"-----BEGIN") {
                    k.clone()
                } else {
                    der_to_pem(k).into_bytes()
                };
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| TokenError::BadKey(e.to_string()))?;
                Ok((
                    key,
                    &[
                        Algorithm::RS256,
                        Algorithm::RS384,
                        Algorithm::RS512,
                        Algorithm::PS256,
                        Algorithm::PS384,
                        Algorithm::PS512,
                    ],
                ))
            }
        }
    }

    /// The role `token` proves at `now_unix_ms` (`None`: no wall clock, expiry not checked).
    pub fn validate(&self, token: &str, now_unix_ms: Option<u64>) -> Result<String, TokenError> {
        self.check(token, now_unix_ms).map(|(role, _)| role)
    }

    /// The role `token` proves, and its expiry (`exp`, seconds since the Unix epoch).
    pub(crate) fn check(
        &self,
        token: &str,
        now_unix_ms: Option<u64>,
    ) -> Result<(String, Option<u64>), TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let (key, algorithms) = self.decoding_key()?;
        if !algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let mut validation = Validation::new(header.alg);
        // expiry is checked below against the broker's clock, not the process's
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<BTreeMap<String, serde_json::Value>>(token, &key, &validation)
                .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            })?;
        let claims = data.claims;
        let expiry = numeric_claim(&claims, "exp")?;
        if let Some(now) = now_unix_ms {
            let skew = self.clock_skew_secs.saturating_mul(1000);
            if let Some(exp) = expiry {
                if now > exp.saturating_mul(1000).saturating_add(skew) {
                    return Err(TokenError::Expired { exp });
                }
            }
            if let Some(nbf) = numeric_claim(&claims, "nbf")? {
                if now.saturating_add(skew) < nbf.saturating_mul(1000) {
                    return Err(TokenError::NotYetValid { nbf });
                }
            }
        }
        if let Some(want) = &self.audience {
            let ok = match claims.get("aud") {
                Some(serde_json::Value::String(a)) => a == want,
                Some(serde_json::Value::Array(list)) => {
                    list.iter().any(|a| a.as_str() == Some(want))
                }
                _ => false,
            };
            if !ok {
                return Err(TokenError::Audience(want.clone()));
            }
        }
        match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(role)) if !role.is_empty() => Ok((role.clone(), expiry)),
            _ => Err(TokenError::NoRole(self.role_claim.clone())),
        }
    }
}

fn numeric_claim(
    claims: &BTreeMap<String, serde_json::Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(TokenError::Malformed(format!(
                "claim {name} is not a number"
            ))),
    }
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The client used another authentication method, or none.
    #[error("authentication method {0:?} is not supported (token only)")]
    Method(Option<String>),
    /// The token is not UTF-8 text.
    #[error("the token is not UTF-8")]
    NotUtf8,
    /// An opaque token that no configured token matches (no JWT key configured).
    #[error("unknown token")]
    Unknown,
    /// The token is not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's algorithm does not go with the configured key.
    #[error("token algorithm {0} does not match the configured key")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token expired (`exp`, seconds since the Unix epoch).
    #[error("token expired at {exp}")]
    Expired {
        /// The `exp` claim.
        exp: u64,
    },
    /// The token is not valid yet (`nbf`, seconds since the Unix epoch).
    #[error("token not valid before {nbf}")]
    NotYetValid {
        /// The `nbf` claim.
        nbf: u64,
    },
    /// The token lacks the configured audience.
    #[error("token audience does not include {0}")]
    Audience(String),
    /// The role claim is missing or not a non-empty string.
    #[error("token has no {0} claim naming a role")]
    NoRole(String),
    /// The configured key is unusable.
    #[error("unusable token key: {0}")]
    BadKey(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn hs(secret: &[u8], claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap_or_default()
    }

    #[test]
    fn hs256_roles_expiry_and_refusals() {
        let cfg = JwtConfig::secret(b"0123456789abcdef0123456789abcdef".to_vec());
        let now = 1_800_000_000_000u64;
        let t = hs(
            b"0123456789abcdef0123456789abcdef",
            &serde_json::json!({"sub": "alice"}),
        );
        assert_eq!(cfg.validate(&t, Some(now)), Ok("alice".to_owned()));
        let t = hs(
            b"0123456789abcdef0123456789abcdef",
            &serde_json::json!({"sub": "bob", "exp": now / 1000 + 10}),
        );
        assert_eq!(cfg.validate(&t, Some(now)), Ok("bob".to_owned()));
        assert_eq!(
            cfg.validate(&t, Some(now + 11_000)),
            Err(TokenError::Expired {
                exp: now / 1000 + 10
            })
        );
        let t = hs(b"another secret", &serde_json::json!({"sub": "eve"}));
        assert_eq!(cfg.validate(&t, Some(now)), Err(TokenError::BadSignature));
        let t = hs(
            b"0123456789abcdef0123456789abcdef",
            &serde_json::json!({"role": "x"}),
        );
        assert_eq!(
            cfg.validate(&t, Some(now)),
            Err(TokenError::NoRole("sub".into()))
        );
        let by_role = cfg.clone().role_claim("role");
        assert_eq!(by_role.validate(&t, Some(now)), Ok("x".to_owned()));
        assert!(matches!(
            cfg.validate("not a jwt", Some(now)),
            Err(TokenError::Malformed(_))
        ));
        let aud = cfg.audience("pulsar");
        let t = hs(
            b"0123456789abcdef0123456789abcdef",
            &serde_json::json!({"sub": "a", "aud": ["x", "pulsar"]}),
        );
        assert_eq!(aud.validate(&t, Some(now)), Ok("a".to_owned()));
        let t = hs(
            b"0123456789abcdef0123456789abcdef",
            &serde_json::json!({"sub": "a", "aud": "x"}),
        );
        assert_eq!(
            aud.validate(&t, Some(now)),
            Err(TokenError::Audience("pulsar".into()))
        );
    }

    #[test]
    fn bad_rsa_key_is_refused_up_front() {
        assert!(matches!(
            JwtConfig::rsa_public_key(b"not a key".to_vec()),
            Err(TokenError::BadKey(_))
        ));
    }
}
