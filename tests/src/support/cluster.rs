//! A real multi-broker Apache Pulsar cluster for the tests: ZooKeeper, a bookie, three brokers with
//! the extensible load manager and deduplication, and a Pulsar proxy, started by the project's
//! `scripts/pulsar-cluster` with TLS listeners beside the plain ones and token authentication
//! (every client and admin call presents a token).
//!
//! [`cluster`] returns the cluster named by `PULSAR_TEST_CLUSTER_DIR` (a directory holding the
//! `cluster.env` of a running cluster), or else starts one once per test process in
//! `target/pulsar-test-cluster` (ports shifted by `PULSAR_TEST_CLUSTER_PORT_OFFSET`), which the
//! script's watchdog stops when the process exits. When no cluster can be had, [`cluster`] panics:
//! the tests fail, they are never skipped.
//!
//! The admin helpers place topics on chosen brokers (a bundle transfer, the only move the load
//! manager honours; a topic-level unload never moves a topic), find owners, and kill, stop and
//! start brokers and the proxy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::admin::{topic_admin_path, Admin};
use super::error::SupportError;
use super::http::{request, Endpoint, HttpResponse};
use super::process::run_project_script;

/// One broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    /// `pulsar://127.0.0.1:port`.
    pub service_url: String,
    /// `http://127.0.0.1:port`.
    pub web_url: String,
    /// The broker id the admin API uses (`127.0.0.1:<web port>`).
    pub id: String,
    /// `pulsar+ssl://127.0.0.1:port`, when the cluster has TLS.
    pub service_url_tls: Option<String>,
}

/// What a client needs to talk to the cluster: a token and the CA of its TLS certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterCredentials {
    /// A file holding the `client` role's token, when the cluster authenticates.
    pub client_token_file: Option<PathBuf>,
    /// The `admin` role's token (the admin calls send it).
    pub admin_token: Option<String>,
    /// The CA of the brokers' and the proxy's certificates, when the cluster has TLS.
    pub tls_ca: Option<PathBuf>,
}

/// A running cluster and its admin helpers.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    brokers: Vec<ClusterBroker>,
    service_url: String,
    proxy_url: String,
    credentials: ClusterCredentials,
    session_timeout: Duration,
    started_here: bool,
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
/// Serialises the tests that use the cluster: most of them kill, move or restart something.
static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// The shared test cluster; panics (failing the test) if none can be found or started.
pub fn cluster() -> &'static Cluster {
    match try_cluster() {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

/// The shared test cluster, found or started on first use (see the module documentation).
pub fn try_cluster() -> Result<&'static Cluster, SupportError> {
    SHARED
        .get_or_init(|| find_or_start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| SupportError::NoBroker(e.clone()))
}

fn find_or_start() -> Result<Cluster, SupportError> {
    if let Some(dir) = std::env::var_os("PULSAR_TEST_CLUSTER_DIR").filter(|d| !d.is_empty()) {
        return Cluster::from_env_file(Path::new(&dir), false);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pulsar-test-cluster");
    let offset = std::env::var("PULSAR_TEST_CLUSTER_PORT_OFFSET").unwrap_or_else(|_| "0".into());
    let pid = std::process::id().to_string();
    let args = [
        "start",
        "--brokers",
        "3",
        "--dedup",
        "--tls",
        "--auth",
        "--port-offset",
        &offset,
        "--watch-pid",
        &pid,
    ];
    // A cluster left in this directory by an earlier run (its watchdog may still be stopping
    // it) is stopped first: the directory belongs to the tests.
    run_cluster_script(&dir, &["stop"])?;
    run_cluster_script(&dir, &args)?;
    Cluster::from_env_file(&dir, true)
}

/// The cluster script: `$PULSAR_CLUSTER_SCRIPT`, or `scripts/pulsar-cluster` in this workspace.
pub fn cluster_script_path() -> PathBuf {
    match std::env::var_os("PULSAR_CLUSTER_SCRIPT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pulsar-cluster"),
    }
}

fn run_cluster_script(dir: &Path, args: &[&str]) -> Result<String, SupportError> {
    run_project_script(
        &cluster_script_path(),
        ("PULSAR_CLUSTER_DIR", dir),
        "PULSAR_CLUSTER_PORT_OFFSET",
        args,
    )
}

impl Cluster {
    fn from_env_file(dir: &Path, started_here: bool) -> Result<Cluster, SupportError> {
        let path = dir.join("cluster.env");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SupportError::io(format!("reading {}", path.display()), e))?;
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let bad = |reason: &str| SupportError::BadEnv {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let get = |key: &str| {
            vars.get(key)
                .map(|v| (*v).to_owned())
                .ok_or_else(|| bad(&format!("no {key}")))
        };
        let count: usize = get("PULSAR_CLUSTER_BROKERS")?
            .parse()
            .map_err(|_| bad("PULSAR_CLUSTER_BROKERS is not a number"))?;
        let mut brokers = Vec::with_capacity(count);
        for i in 0..count {
            let web_url = get(&format!("PULSAR_CLUSTER_BROKER_{i}_WEB_URL"))?;
            let id = web_url.trim_start_matches("http://").to_owned();
            let service_url_tls = vars
                .get("PULSAR_CLUSTER_SERVICE_URL_TLS")
                .and_then(|all| all.trim_start_matches("pulsar+ssl://").split(',').nth(i))
                .map(|host| format!("pulsar+ssl://{host}"));
            brokers.push(ClusterBroker {
                service_url: get(&format!("PULSAR_CLUSTER_BROKER_{i}_URL"))?,
                web_url,
                id,
                service_url_tls,
            });
        }
        let admin_token = match vars.get("PULSAR_CLUSTER_ADMIN_TOKEN_FILE") {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| SupportError::io(format!("reading {file}"), e))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let credentials = ClusterCredentials {
            client_token_file: vars
                .get("PULSAR_CLUSTER_CLIENT_TOKEN_FILE")
                .map(PathBuf::from),
            admin_token,
            tls_ca: vars.get("PULSAR_CLUSTER_TLS_CA").map(PathBuf::from),
        };
        // With TLS, the proxy reaches the brokers over TLS: clients use its TLS port.
        let proxy_url = match vars.get("PULSAR_CLUSTER_PROXY_URL_TLS") {
            Some(url) => (*url).to_owned(),
            None => get("PULSAR_CLUSTER_PROXY_URL")?,
        };
        let session_ms: u64 = get("PULSAR_CLUSTER_SESSION_TIMEOUT_MS")?
            .parse()
            .map_err(|_| bad("PULSAR_CLUSTER_SESSION_TIMEOUT_MS is not a number"))?;
        Ok(Cluster {
            dir: dir.to_owned(),
            brokers,
            service_url: get("PULSAR_CLUSTER_SERVICE_URL")?,
            proxy_url,
            credentials,
            session_timeout: Duration::from_millis(session_ms),
            started_here,
        })
    }

    /// Holds the cluster for one test: the tests of a process take turns.
    pub fn exclusive(&self) -> MutexGuard<'static, ()> {
        EXCLUSIVE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The brokers, by index.
    pub fn brokers(&self) -> &[ClusterBroker] {
        &self.brokers
    }

    /// A service URL naming every broker (`pulsar://h:p1,h:p2,...`).
    pub fn service_url(&self) -> &str {
        &self.service_url
    }

    /// The proxy's service URL: `pulsar+ssl://` when the cluster has TLS (the proxy then
    /// reaches the brokers over TLS, which a client on its plain port cannot use).
    pub fn proxy_url(&self) -> &str {
        &self.proxy_url
    }

    /// The token and CA a client needs.
    pub fn credentials(&self) -> &ClusterCredentials {
        &self.credentials
    }

    /// The brokers' metadata session timeout: how long a killed broker keeps its topics.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Whether this process started the cluster (rather than finding it running).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// The admin client of broker `i`.
    pub fn admin(&self, i: usize) -> Result<Admin, SupportError> {
        let broker = self.broker(i)?;
        Admin::new(&broker.web_url, self.credentials.admin_token.clone())
    }

    fn broker(&self, i: usize) -> Result<&ClusterBroker, SupportError> {
        self.brokers
            .get(i)
            .ok_or_else(|| SupportError::BadUrl(format!("no broker {i} in the cluster")))
    }

    /// The index of the broker whose service URL is `url`.
    pub fn index_of(&self, url: &str) -> Option<usize> {
        let url = url.trim_end_matches('/');
        self.brokers.iter().position(|b| b.service_url == url)
    }

    /// Sends `method path` to the first broker that answers, following redirects to the owner.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> Result<String, SupportError> {
        let mut last = None;
        for broker in &self.brokers {
            let token = self.credentials.admin_token.as_deref();
            match call_following(&broker.web_url, token, method, path, json_body) {
                Ok(response) if response.is_success() => return Ok(response.text()),
                Ok(response) => {
                    return Err(SupportError::HttpStatus {
                        method: method.to_owned(),
                        url: format!("{}{path}", broker.web_url),
                        status: response.status,
                        body: response.text(),
                    })
                }
                // This broker is down: try the next.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| SupportError::NoBroker("the cluster has no broker".into())))
    }

    fn get_json(&self, path: &str) -> Result<Value, SupportError> {
        let body = self.call("GET", path, None)?;
        serde_json::from_str(&body).map_err(|e| SupportError::Json {
            context: format!("GET {path}"),
            reason: e.to_string(),
        })
    }

    /// Creates namespace `public/<name>` with `bundles` bundles and unlimited retention (so that
    /// stored messages can be counted after ledger rollovers); returns `public/<name>`.
    pub fn create_namespace(&self, name: &str, bundles: u32) -> Result<String, SupportError> {
        let namespace = format!("public/{name}");
        let policies = format!(r#"{{"bundles":{{"numBundles":{bundles}}}}}"#);
        self.call(
            "PUT",
            &format!("/admin/v2/namespaces/{namespace}"),
            Some(&policies),
        )?;
        self.call(
            "POST",
            &format!("/admin/v2/namespaces/{namespace}/retention"),
            Some(r#"{"retentionTimeInMinutes":-1,"retentionSizeInMB":-1}"#),
        )?;
        Ok(namespace)
    }

    /// Creates a partitioned topic.
    pub fn create_partitioned(&self, topic: &str, partitions: u32) -> Result<(), SupportError> {
        let path = format!("/admin/v2/{}/partitions", topic_admin_path(topic)?);
        self.call("PUT", &path, Some(&partitions.to_string()))
            .map(drop)
    }

    /// The index of the broker that owns `topic` now (a lookup through the admin API, which
    /// assigns an owner if there is none).
    pub fn owner(&self, topic: &str) -> Result<usize, SupportError> {
        let answer = self.get_json(&format!("/lookup/v2/topic/{}", topic_admin_path(topic)?))?;
        let url = answer
            .get("brokerUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| SupportError::Json {
                context: format!("lookup of {topic}"),
                reason: format!("no brokerUrl in {answer}"),
            })?;
        self.index_of(url)
            .ok_or_else(|| SupportError::NoBroker(format!("{topic} is owned by {url}, not ours")))
    }

    /// The bundle range holding `topic` (`0x..._0x...`).
    pub fn bundle_of(&self, topic: &str) -> Result<String, SupportError> {
        let path = format!("/lookup/v2/topic/{}/bundle", topic_admin_path(topic)?);
        Ok(self.call("GET", &path, None)?.trim().to_owned())
    }

    /// Moves `topic`'s bundle to broker `to` (the load manager's transfer: connected clients are
    /// told where it went) and waits until lookups name `to`. Does nothing if `to` owns it.
    pub fn transfer(&self, topic: &str, to: usize) -> Result<(), SupportError> {
        if self.owner(topic)? == to {
            return Ok(());
        }
        let destination = self.broker(to)?.id.clone();
        self.unload_bundle(topic, Some(&destination))?;
        self.wait_owner(topic, Duration::from_secs(60), |owner| owner == to)
    }

    /// Unloads `topic`'s bundle, to `destination` (a broker id) when given.
    pub fn unload_bundle(
        &self,
        topic: &str,
        destination: Option<&str>,
    ) -> Result<(), SupportError> {
        let namespace = namespace_of(topic)?;
        let bundle = self.bundle_of(topic)?;
        let query = destination.map_or(String::new(), |d| format!("?destinationBroker={d}"));
        self.call(
            "PUT",
            &format!("/admin/v2/namespaces/{namespace}/{bundle}/unload{query}"),
            None,
        )
        .map(drop)
    }

    /// Waits until the owner of `topic` satisfies `accept` (lookups retried every 200 ms).
    pub fn wait_owner(
        &self,
        topic: &str,
        within: Duration,
        accept: impl Fn(usize) -> bool,
    ) -> Result<(), SupportError> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.owner(topic);
            match &seen {
                Ok(owner) if accept(*owner) => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(SupportError::NoBroker(format!(
                        "{topic}: owner not as expected within {within:?} (last: {seen:?})"
                    )))
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// `kill -9` of broker `i`; [`Cluster::start_broker`] brings it back.
    pub fn kill_broker(&self, i: usize) -> Result<(), SupportError> {
        self.broker(i)?;
        self.script(&["kill-broker", &i.to_string()])
    }

    /// Graceful stop of broker `i` (its topics are released at once).
    pub fn stop_broker(&self, i: usize) -> Result<(), SupportError> {
        self.broker(i)?;
        self.script(&["stop-broker", &i.to_string()])
    }

    /// Starts broker `i` again and waits until it is healthy.
    pub fn start_broker(&self, i: usize) -> Result<(), SupportError> {
        self.broker(i)?;
        self.script(&["start-broker", &i.to_string()])
    }

    /// Whether broker `i` answers its health check.
    pub fn broker_healthy(&self, i: usize) -> bool {
        let token = self.credentials.admin_token.as_deref();
        self.brokers.get(i).is_some_and(|b| {
            call_following(&b.web_url, token, "GET", "/admin/v2/brokers/health", None)
                .is_ok_and(|r| r.is_success())
        })
    }

    /// `kill -9` of the proxy.
    pub fn kill_proxy(&self) -> Result<(), SupportError> {
        self.script(&["kill-proxy"])
    }

    /// Starts the proxy again and waits until it listens.
    pub fn start_proxy(&self) -> Result<(), SupportError> {
        self.script(&["start-proxy"])
    }

    /// The current process status lines of the script (`status`).
    pub fn status(&self) -> Result<String, SupportError> {
        run_cluster_script(&self.dir, &["status"])
    }

    fn script(&self, args: &[&str]) -> Result<(), SupportError> {
        run_cluster_script(&self.dir, args).map(drop)
    }
}

/// `public/ns` of `persistent://public/ns/topic` (or of `public/ns/topic`).
fn namespace_of(topic: &str) -> Result<String, SupportError> {
    let rest = topic
        .strip_prefix("persistent://")
        .or_else(|| topic.strip_prefix("non-persistent://"))
        .unwrap_or(topic);
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(tenant), Some(ns), Some(_)) if !tenant.is_empty() && !ns.is_empty() => {
            Ok(format!("{tenant}/{ns}"))
        }
        _ => Err(SupportError::BadUrl(format!(
            "{topic:?} is not a full topic name"
        ))),
    }
}

/// One admin call to `web_url`, following up to five redirects (brokers redirect calls about
/// bundles they do not own with 307 to the owner).
fn call_following(
    web_url: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> Result<HttpResponse, SupportError> {
    let mut endpoint = Endpoint::parse(web_url)?;
    let mut path = path.to_owned();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    if json_body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    for _ in 0..5 {
        let response = request(
            &endpoint,
            method,
            &path,
            &headers,
            json_body.map(str::as_bytes),
        )?;
        match (&response.status, &response.location) {
            (301 | 302 | 307 | 308, Some(location)) => {
                let rest = location
                    .strip_prefix("http://")
                    .ok_or_else(|| SupportError::BadUrl(location.clone()))?;
                let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                endpoint = Endpoint::parse(&format!("http://{authority}"))?;
                path = if tail.is_empty() {
                    "/".into()
                } else {
                    tail.into()
                };
            }
            _ => return Ok(response),
        }
    }
    Err(SupportError::BadUrl(format!(
        "{method} {web_url}{path}: too many redirects"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_of_topics() {
        assert_eq!(
            namespace_of("persistent://public/ns/t").unwrap(),
            "public/ns"
        );
        assert_eq!(namespace_of("public/ns/t/x").unwrap(), "public/ns");
        assert!(namespace_of("t").is_err());
        assert!(namespace_of("persistent:///ns/t").is_err());
    }
}
