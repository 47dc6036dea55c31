//! Calls to the broker's admin REST API (`/admin/v2`).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::SupportError;
pub use super::http::HttpResponse;
use super::http::{request, Endpoint};

/// A client of one broker's admin REST API, over plain HTTP.
#[derive(Debug, Clone)]
pub struct Admin {
    web_url: String,
    endpoint: Endpoint,
    token: Option<String>,
}

/// The admin path of a topic: `persistent://t/n/x` gives `persistent/t/n/x`; a bare local name `x`
/// means `persistent/public/default/x`.
pub fn topic_admin_path(topic: &str) -> Result<String, SupportError> {
    let bad = || SupportError::BadUrl(topic.to_owned());
    for scheme in ["persistent", "non-persistent"] {
        if let Some(rest) = topic
            .strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
        {
            return if rest.split('/').count() == 3 && !rest.split('/').any(str::is_empty) {
                Ok(format!("{scheme}/{rest}"))
            } else {
                Err(bad())
            };
        }
    }
    if topic.is_empty() || topic.contains('/') || topic.contains(':') {
        return Err(bad());
    }
    Ok(format!("persistent/public/default/{topic}"))
}

impl Admin {
    /// An admin client for `web_url` (`http://host:port`), sending `token` as a bearer token.
    pub fn new(web_url: &str, token: Option<String>) -> Result<Self, SupportError> {
        Ok(Admin {
            web_url: web_url.trim_end_matches('/').to_owned(),
            endpoint: Endpoint::parse(web_url)?,
            token,
        })
    }

    /// The web service URL.
    pub fn web_url(&self) -> &str {
        &self.web_url
    }

    /// Sends a request and returns the response whatever its status.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<HttpResponse, SupportError> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("Authorization", bearer.as_str()));
        }
        if json_body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        request(
            &self.endpoint,
            method,
            path,
            &headers,
            json_body.map(str::as_bytes),
        )
    }

    /// Sends a request and fails unless the status is 2xx; returns the body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<String, SupportError> {
        let response = self.request(method, path, json_body)?;
        if response.is_success() {
            Ok(response.text())
        } else {
            Err(SupportError::HttpStatus {
                method: method.to_owned(),
                url: format!("{}{}", self.web_url, path),
                status: response.status,
                body: response.text(),
            })
        }
    }

    /// `GET path`, parsed as JSON.
    pub fn get_json(&self, path: &str) -> Result<Value, SupportError> {
        let body = self.call("GET", path, None)?;
        serde_json::from_str(&body).map_err(|e| SupportError::Json {
            context: format!("GET {path}"),
            reason: e.to_string(),
        })
    }

    /// Whether the broker answers and the namespace `public/default` exists.
    pub fn is_ready(&self) -> bool {
        self.call("GET", "/admin/v2/namespaces/public", None)
            .map(|body| body.contains("public/default"))
            .unwrap_or(false)
    }

    /// Creates a partitioned topic (`PUT .../partitions` with body `N`).
    pub fn create_partitioned(&self, topic: &str, partitions: u32) -> Result<(), SupportError> {
        let path = format!("/admin/v2/{}/partitions", topic_admin_path(topic)?);
        self.call("PUT", &path, Some(&partitions.to_string()))
            .map(drop)
    }

    /// The partition count of a topic (0 for a non-partitioned topic).
    pub fn partitions(&self, topic: &str) -> Result<u32, SupportError> {
        let path = format!("/admin/v2/{}/partitions", topic_admin_path(topic)?);
        let json = self.get_json(&path)?;
        json.get("partitions")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| SupportError::Json {
                context: path,
                reason: format!("no partition count in {json}"),
            })
    }

    /// Topic statistics (`GET .../stats`).
    pub fn topic_stats(&self, topic: &str) -> Result<Value, SupportError> {
        self.get_json(&format!("/admin/v2/{}/stats", topic_admin_path(topic)?))
    }

    /// The backlog (`msgBacklog`) of `subscription` on a non-partitioned topic.
    pub fn subscription_backlog(
        &self,
        topic: &str,
        subscription: &str,
    ) -> Result<u64, SupportError> {
        let stats = self.topic_stats(topic)?;
        stats
            .get("subscriptions")
            .and_then(|s| s.get(subscription))
            .and_then(|s| s.get("msgBacklog"))
            .and_then(Value::as_u64)
            .ok_or_else(|| SupportError::Json {
                context: format!("stats of {topic}"),
                reason: format!("no msgBacklog for subscription {subscription:?}"),
            })
    }

    /// Deletes a (non-partitioned) topic, forcibly.
    pub fn delete_topic(&self, topic: &str) -> Result<(), SupportError> {
        let path = format!("/admin/v2/{}?force=true", topic_admin_path(topic)?);
        self.call("DELETE", &path, None).map(drop)
    }

    /// Compacts a non-partitioned topic (or one partition) and waits until the compaction
    /// finished (`PUT .../compaction`, then `GET .../compaction` until `SUCCESS`); a failed
    /// compaction is an error.
    pub fn compact(&self, topic: &str, timeout: Duration) -> Result<(), SupportError> {
        let path = format!("/admin/v2/{}/compaction", topic_admin_path(topic)?);
        self.call("PUT", &path, None)?;
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.get_json(&path)?;
            match status.get("status").and_then(Value::as_str) {
                Some("SUCCESS") => return Ok(()),
                Some("ERROR") => {
                    return Err(SupportError::Json {
                        context: format!("compaction of {topic}"),
                        reason: format!("failed: {status}"),
                    })
                }
                _ if Instant::now() >= deadline => {
                    return Err(SupportError::Json {
                        context: format!("compaction of {topic}"),
                        reason: format!("not finished after {timeout:?}: {status}"),
                    })
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Polls `check` every 100 ms until it returns `Ok(true)` or `timeout` passes; returns whether
    /// it did. Errors count as "not yet".
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Admin) -> Result<bool, SupportError>,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(check(self), Ok(true)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_paths() {
        assert_eq!(
            topic_admin_path("persistent://public/default/a")
                .ok()
                .as_deref(),
            Some("persistent/public/default/a")
        );
        assert_eq!(
            topic_admin_path("non-persistent://t/ns/b").ok().as_deref(),
            Some("non-persistent/t/ns/b")
        );
        assert_eq!(
            topic_admin_path("c").ok().as_deref(),
            Some("persistent/public/default/c")
        );
        assert!(topic_admin_path("persistent://public/default").is_err());
        assert!(topic_admin_path("a/b").is_err());
        assert!(topic_admin_path("").is_err());
    }
}
