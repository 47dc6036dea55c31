//! The client-credentials exchange: discover the token endpoint, then POST the credentials.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Endpoint, OAuth2Config};
use crate::error::OAuth2Error;
use crate::http::{Http, Response};

/// Path of the OpenID discovery document below an issuer URL.
pub const WELL_KNOWN_PATH: &str = "/.well-known/openid-configuration";

/// An access token from the token endpoint.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessToken {
    /// The token sent to the broker.
    pub token: String,
    /// Its lifetime from the moment it was issued (`expires_in`), when the server said.
    pub expires_in: Option<Duration>,
    /// The `token_type` (usually `Bearer`), when the server said.
    pub token_type: Option<String>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// Performs the client-credentials exchange, synchronously. The token endpoint found by discovery
/// is remembered after the first success.
pub struct TokenFetcher {
    config: OAuth2Config,
    http: Http,
    token_endpoint: Option<String>,
}

impl fmt::Debug for TokenFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFetcher")
            .field("config", &self.config)
            .field("token_endpoint", &self.token_endpoint)
            .finish()
    }
}

impl TokenFetcher {
    /// A fetcher for `config` (validated; the trust file is read now).
    pub fn new(config: OAuth2Config) -> Result<TokenFetcher, OAuth2Error> {
        config.validate()?;
        let http = Http::new(config.http_timeout, config.trust_certs_file.as_deref())?;
        let token_endpoint = match &config.endpoint {
            Endpoint::TokenEndpoint(url) => Some(url.clone()),
            Endpoint::Issuer(_) => None,
        };
        Ok(TokenFetcher {
            config,
            http,
            token_endpoint,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuth2Config {
        &self.config
    }

    /// The token endpoint: the configured one, or the `token_endpoint` of the issuer's discovery
    /// document (fetched once).
    pub fn token_endpoint(&mut self) -> Result<String, OAuth2Error> {
        if let Some(url) = &self.token_endpoint {
            return Ok(url.clone());
        }
        let issuer = match &self.config.endpoint {
            Endpoint::Issuer(issuer) | Endpoint::TokenEndpoint(issuer) => issuer,
        };
        let url = format!("{}{WELL_KNOWN_PATH}", issuer.trim_end_matches('/'));
        let response = self.http.get(&url)?;
        let doc = success_json(&url, response)?;
        let endpoint = doc
            .get("token_endpoint")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
            .ok_or_else(|| OAuth2Error::BadResponse {
                url: url.clone(),
                reason: "no http(s) token_endpoint in the discovery document".into(),
            })?
            .to_string();
        self.token_endpoint = Some(endpoint.clone());
        Ok(endpoint)
    }

    /// Requests a new access token.
    pub fn fetch(&mut self) -> Result<AccessToken, OAuth2Error> {
        let url = self.token_endpoint()?;
        let mut fields = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.as_str()),
            ("client_secret", self.config.client_secret.as_str()),
        ];
        if let Some(audience) = &self.config.audience {
            fields.push(("audience", audience));
        }
        if let Some(scope) = &self.config.scope {
            fields.push(("scope", scope));
        }
        let response = self.http.post_form(&url, &fields)?;
        parse_token(&url, success_json(&url, response)?)
    }
}

/// The JSON body of a 2xx response; any other status becomes [`OAuth2Error::Status`] with the
/// OAuth2 error fields when present.
fn success_json(url: &str, response: Response) -> Result<Value, OAuth2Error> {
    let parsed = serde_json::from_str::<Value>(&response.body);
    if !(200..300).contains(&response.status) {
        let detail = match &parsed {
            Ok(v) if v.get("error").is_some() => {
                let error = v.get("error").map(text).unwrap_or_default();
                match v.get("error_description").map(text) {
                    Some(d) if !d.is_empty() => format!("{error}: {d}"),
                    _ => error,
                }
            }
            _ => excerpt(&response.body),
        };
        return Err(OAuth2Error::Status {
            url: url.to_string(),
            status: response.status,
            detail,
        });
    }
    parsed.map_err(|e| OAuth2Error::BadResponse {
        url: url.to_string(),
        reason: format!("not JSON ({e}): {}", excerpt(&response.body)),
    })
}

fn parse_token(url: &str, doc: Value) -> Result<AccessToken, OAuth2Error> {
    let bad = |reason: &str| OAuth2Error::BadResponse {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let token = doc
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token in the token response"))?
        .to_string();
    // Some servers send expires_in as a string.
    let expires_in = match doc.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_f64().ok_or_else(|| bad("bad expires_in"))?),
        Some(Value::String(s)) => Some(s.trim().parse::<f64>().map_err(|_| bad("bad expires_in"))?),
        Some(_) => return Err(bad("bad expires_in")),
    };
    let expires_in = match expires_in {
        Some(secs) if secs.is_finite() && secs >= 0.0 => {
            Some(Duration::from_secs_f64(secs.min(1e9)))
        }
        Some(_) => return Err(bad("negative expires_in")),
        None => None,
    };
    Ok(AccessToken {
        token,
        expires_in,
        token_type: doc
            .get("token_type")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None if body.is_empty() => "(empty body)".to_string(),
        None => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.to_string(),
        }
    }

    #[test]
    fn token_response_forms() {
        let t = parse_token(
            "u",
            serde_json::json!({"access_token":"abc","expires_in":3600,"token_type":"Bearer"}),
        )
        .unwrap();
        assert_eq!(t.token, "abc");
        assert_eq!(t.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(t.token_type.as_deref(), Some("Bearer"));
        assert!(!format!("{t:?}").contains("abc"));
        let t = parse_token(
            "u",
            serde_json::json!({"access_token":"abc","expires_in":"60"}),
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(Duration::from_secs(60)));
        let t = parse_token("u", serde_json::json!({"access_token":"abc"})).unwrap();
        assert_eq!(t.expires_in, None);
        for bad in [
            serde_json::json!({"expires_in":1}),
            serde_json::json!({"access_token":""}),
            serde_json::json!({"access_token":"a","expires_in":-1}),
            serde_json::json!({"access_token":"a","expires_in":"soon"}),
            serde_json::json!({"access_token":"a","expires_in":[1]}),
        ] {
            assert!(matches!(
                parse_token("u", bad),
                Err(OAuth2Error::BadResponse { .. })
            ));
        }
    }

    #[test]
    fn error_responses() {
        let e = success_json(
            "u",
            response(
                401,
                r#"{"error":"invalid_client","error_description":"bad secret"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            e,
            OAuth2Error::Status {
                url: "u".into(),
                status: 401,
                detail: "invalid_client: bad secret".into()
            }
        );
        let e = success_json("u", response(500, "boom")).unwrap_err();
        assert!(
            matches!(e, OAuth2Error::Status { status: 500, ref detail, .. } if detail == "boom")
        );
        let e = success_json("u", response(200, "<html>")).unwrap_err();
        assert!(matches!(e, OAuth2Error::BadResponse { .. }));
        let long = "x".repeat(1000);
        let e = success_json("u", response(404, &long)).unwrap_err();
        assert!(e.to_string().len() < 400);
    }
}
