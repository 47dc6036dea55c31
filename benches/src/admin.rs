//! The few admin REST calls the harness needs (plain HTTP on 127.0.0.1, no TLS, no auth).

use std::time::Duration;

use serde_json::Value;

/// An admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The URL is not `http://host:port`.
    #[error("admin URL {0:?} is not http://host:port")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("admin request {what}: {source}")]
    Http {
        /// The request.
        what: String,
        /// The error.
        source: Box<ureq::Error>,
    },
    /// The broker answered with an error status.
    #[error("admin request {what}: HTTP {status}: {body}")]
    Status {
        /// The request.
        what: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The answer was not what was expected.
    #[error("admin request {0}: unexpected answer")]
    Answer(String),
}

/// How long the broker may take to send each part of an answer (topic deletion can be slow).
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The broker's admin endpoint.
#[derive(Debug, Clone)]
pub struct Admin {
    host_port: String,
    agent: ureq::Agent,
}

/// `persistent://tenant/ns/name` (or a short name in public/default) as an admin path segment.
pub fn topic_path(topic: &str) -> String {
    match topic.split_once("://") {
        Some((domain, rest)) => format!("{domain}/{rest}"),
        None => format!("persistent/public/default/{topic}"),
    }
}

impl Admin {
    /// For `http://host:port` (a trailing slash is accepted).
    pub fn new(web_url: &str) -> Result<Admin, AdminError> {
        let host_port = web_url
            .strip_prefix("http://")
            .map(|s| s.trim_end_matches('/'))
            .filter(|s| s.contains(':') && !s.contains('/'))
            .ok_or_else(|| AdminError::Url(web_url.to_owned()))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_per_read(Some(READ_TIMEOUT))
            .build()
            .into();
        Ok(Admin {
            host_port: host_port.to_owned(),
            agent,
        })
    }

    /// One request; the status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), AdminError> {
        let what = format!("{method} {path}");
        let failed = |source| AdminError::Http {
            what: what.clone(),
            source: Box::new(source),
        };
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.host_port))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body.unwrap_or(""))
            .map_err(|_| AdminError::Url(format!("http://{}{path}", self.host_port)))?;
        let mut response = self.agent.run(request).map_err(failed)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_string()
            .map_err(failed)?;
        Ok((status, text))
    }

    fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Result<String, AdminError> {
        let (status, text) = self.request(method, path, body)?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(AdminError::Status {
                what: format!("{method} {path}"),
                status,
                body: text.chars().take(300).collect(),
            })
        }
    }

    /// Creates a non-partitioned topic.
    pub fn create_topic(&self, topic: &str) -> Result<(), AdminError> {
        self.ok("PUT", &format!("/admin/v2/{}", topic_path(topic)), None)
            .map(drop)
    }

    /// Creates a durable subscription at the end of the topic (messages published afterwards
    /// form its backlog).
    pub fn create_subscription(&self, topic: &str, sub: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v2/{}/subscription/{sub}", topic_path(topic));
        self.ok("PUT", &path, None).map(drop)
    }

    /// The topic's stats.
    pub fn topic_stats(&self, topic: &str) -> Result<Value, AdminError> {
        let path = format!("/admin/v2/{}/stats", topic_path(topic));
        let text = self.ok("GET", &path, None)?;
        serde_json::from_str(&text).map_err(|_| AdminError::Answer(path))
    }

    /// Messages (entries, for batches) not yet acknowledged on a subscription.
    pub fn backlog(&self, topic: &str, sub: &str) -> Result<u64, AdminError> {
        let stats = self.topic_stats(topic)?;
        stats["subscriptions"][sub]["msgBacklog"]
            .as_u64()
            .ok_or_else(|| AdminError::Answer(format!("backlog of {topic}/{sub}")))
    }

    /// Deletes a topic with its subscriptions (forcefully: connected clients are dropped).
    pub fn delete_topic(&self, topic: &str) -> Result<(), AdminError> {
        let path = format!("/admin/v2/{}?force=true", topic_path(topic));
        self.ok("DELETE", &path, None).map(drop)
    }

    /// Whether the broker answers its health check.
    pub fn healthy(&self) -> bool {
        matches!(
            self.request("GET", "/admin/v2/brokers/health", None),
            Ok((200, _))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_paths() {
        assert_eq!(topic_path("t1"), "persistent/public/default/t1");
        assert_eq!(topic_path("persistent://a/b/c"), "persistent/a/b/c");
    }

    #[test]
    fn admin_urls() {
        assert!(Admin::new("http://127.0.0.1:8080/").is_ok());
        assert!(Admin::new("https://127.0.0.1:8443").is_err());
        assert!(Admin::new("http://127.0.0.1:8080/admin").is_err());
    }
}
