//! `pulsar-embedded`: the embedded broker as a standalone process.
//!
//! ```text
//! pulsar-embedded [--config FILE] [--bind ADDR] [--stats SECONDS]
//! ```
//!
//! The config file is JSON; every field is optional:
//!
//! ```json
//! {
//!   "bind": "127.0.0.1:6650",
//!   "admin_bind": "127.0.0.1:8080",
//!   "tls": { "bind": "127.0.0.1:6651", "cert_chain_file": "cert.pem", "key_file": "key.pem" },
//!   "advertised_host": "localhost",
//!   "deduplication": false,
//!   "auth_token": null,
//!   "tokens": { "secret-of-alice": "alice" },
//!   "jwt": { "secret_key_file": "secret.key", "role_claim": "sub", "audience": null },
//!   "rules": { "alice": { "networks": ["127.0.0.0/8"], "produce": ["*"], "consume": ["*"] } },
//!   "max_message_size": 5242880,
//!   "persist_latency_ms": 0,
//!   "keep_alive_secs": 30,
//!   "partitioned_topics": { "persistent://public/default/orders": 4 },
//!   "stats_interval_secs": 0,
//!   "storage": { "dir": "data", "fsync": "always", "segment_bytes": 67108864 },
//!   "retention": { "size_bytes": 1073741824, "time_secs": 3600 },
//!   "backlog_quota": { "limit_bytes": 104857600, "policy": "producer_request_hold" }
//! }
//! ```
//!
//! `jwt` validates JSON Web Tokens as Apache Pulsar's token provider: `secret_key_file` holds the
//! raw HS256 secret (Apache's `tokenSecretKey`), or `secret_key_base64` the same in base64;
//! `public_key_file` an RSA public key, PEM or DER (Apache's `tokenPublicKey`), for RS256 tokens.
//!
//! `storage` keeps the topics in an append-only log on disk (`fsync`: `always`, `never`, or
//! `{ "interval_ms": 100 }`); without it everything is in memory. `retention` drops acknowledged
//! messages beyond a size or an age; `backlog_quota` (`limit_bytes`, `limit_time_secs`) limits the
//! slowest subscription's backlog with `policy` `producer_request_hold`, `producer_exception` or
//! `consumer_backlog_eviction`.
//!
//! It prints `ready <service URL>` once listening (in a few milliseconds), the topic statistics
//! every `stats_interval_secs` when non-zero, and stops on Ctrl-C.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pulsar_embedded::core::{BacklogPolicy, BacklogQuota, JwtConfig, Retention, RoleRules};
use pulsar_embedded::{EmbeddedBroker, FsyncPolicy, StorageConfig, TlsConfig};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    bind: Option<String>,
    admin_bind: Option<String>,
    tls: Option<Tls>,
    advertised_host: Option<String>,
    #[serde(default)]
    deduplication: bool,
    auth_token: Option<String>,
    #[serde(default)]
    tokens: BTreeMap<String, String>,
    rules: Option<BTreeMap<String, Rules>>,
    jwt: Option<Jwt>,
    max_message_size: Option<i32>,
    persist_latency_ms: Option<u64>,
    keep_alive_secs: Option<u64>,
    #[serde(default)]
    partitioned_topics: BTreeMap<String, u32>,
    #[serde(default)]
    stats_interval_secs: u64,
    storage: Option<Storage>,
    retention: Option<RetentionConfig>,
    backlog_quota: Option<Quota>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Storage {
    dir: String,
    #[serde(default)]
    fsync: Fsync,
    segment_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Fsync {
    #[default]
    Always,
    Never,
    #[serde(untagged)]
    Interval {
        interval_ms: u64,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionConfig {
    size_bytes: Option<u64>,
    time_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Quota {
    limit_bytes: Option<u64>,
    limit_time_secs: Option<u64>,
    policy: QuotaPolicy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum QuotaPolicy {
    ProducerRequestHold,
    ProducerException,
    ConsumerBacklogEviction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    bind: String,
    cert_chain_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Jwt {
    secret_key_file: Option<String>,
    secret_key_base64: Option<String>,
    public_key_file: Option<String>,
    role_claim: Option<String>,
    audience: Option<String>,
}

impl Jwt {
    fn config(self) -> Result<JwtConfig, String> {
        use base64::Engine as _;
        let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
        let mut config = match (
            self.secret_key_file,
            self.secret_key_base64,
            self.public_key_file,
        ) {
            (Some(f), None, None) => JwtConfig::secret(read(&f)?),
            (None, Some(b), None) => JwtConfig::secret(
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| format!("jwt.secret_key_base64: {e}"))?,
            ),
            (None, None, Some(f)) => {
                JwtConfig::rsa_public_key(read(&f)?).map_err(|e| format!("{f}: {e}"))?
            }
            _ => {
                return Err(
                    "jwt: give exactly one of secret_key_file, secret_key_base64, \
                            public_key_file"
                        .to_owned(),
                )
            }
        };
        if let Some(c) = self.role_claim {
            config = config.role_claim(c);
        }
        if let Some(a) = self.audience {
            config = config.audience(a);
        }
        Ok(config)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rules {
    #[serde(default)]
    networks: Vec<String>,
    #[serde(default)]
    produce: Vec<String>,
    #[serde(default)]
    consume: Vec<String>,
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

const USAGE: &str = "usage: pulsar-embedded [--config FILE] [--bind ADDR] [--stats SECONDS]";

fn parse_args() -> Result<Config, String> {
    let mut config = Config::default();
    let mut bind = None;
    let mut stats = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--config" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                config = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            "--bind" => bind = Some(value()?),
            "--stats" => {
                let v = value()?;
                stats = Some(v.parse().map_err(|e| format!("--stats {v}: {e}"))?);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if bind.is_some() {
        config.bind = bind;
    }
    if let Some(s) = stats {
        config.stats_interval_secs = s;
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    let config = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pulsar-embedded: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut b = EmbeddedBroker::builder()
        .bind(config.bind.unwrap_or_else(|| "127.0.0.1:6650".into()))
        .deduplication(config.deduplication);
    if let Some(t) = config.tls {
        b = b.bind_tls(t.bind, TlsConfig::new(t.cert_chain_file, t.key_file));
    }
    if let Some(h) = config.advertised_host {
        b = b.advertised_host(h);
    }
    if let Some(t) = config.auth_token {
        b = b.auth_token(t);
    }
    if let Some(a) = config.admin_bind {
        b = b.bind_admin(a);
    }
    if let Some(j) = config.jwt {
        b = b.jwt(j.config()?);
    }
    for (token, role) in config.tokens {
        b = b.token(token, role);
    }
    if let Some(rules) = config.rules {
        let rules = rules
            .into_iter()
            .map(|(role, r)| {
                let rr = RoleRules::new(&as_refs(&r.produce), &as_refs(&r.consume))
                    .from_networks(&as_refs(&r.networks));
                (role, rr)
            })
            .collect();
        b = b.rules(rules);
    }
    if let Some(m) = config.max_message_size {
        b = b.max_message_size(m);
    }
    if let Some(l) = config.persist_latency_ms {
        b = b.persist_latency(Duration::from_millis(l));
    }
    if let Some(k) = config.keep_alive_secs {
        b = b.keep_alive(Duration::from_secs(k));
    }
    if let Some(s) = config.storage {
        let fsync = match s.fsync {
            Fsync::Always => FsyncPolicy::Always,
            Fsync::Never => FsyncPolicy::Never,
            Fsync::Interval { interval_ms } => {
                FsyncPolicy::Interval(Duration::from_millis(interval_ms))
            }
        };
        let mut sc = StorageConfig::new(s.dir, fsync);
        if let Some(n) = s.segment_bytes {
            sc = sc.segment_bytes(n);
        }
        b = b.storage(sc);
    }
    if let Some(r) = config.retention {
        b = b.retention(Retention::new(
            r.size_bytes,
            r.time_secs.map(Duration::from_secs),
        ));
    }
    if let Some(q) = config.backlog_quota {
        let policy = match q.policy {
            QuotaPolicy::ProducerRequestHold => BacklogPolicy::ProducerRequestHold,
            QuotaPolicy::ProducerException => BacklogPolicy::ProducerException,
            QuotaPolicy::ConsumerBacklogEviction => BacklogPolicy::ConsumerBacklogEviction,
        };
        let mut quota = match q.limit_bytes {
            Some(l) => BacklogQuota::bytes(l, policy),
            None => BacklogQuota::time(Duration::from_secs(u64::MAX / 4), policy),
        };
        quota.limit_time = q.limit_time_secs.map(Duration::from_secs);
        b = b.backlog_quota(quota);
    }
    for (topic, n) in config.partitioned_topics {
        b = b.partitioned_topic(topic, n);
    }
    let broker = b.start().await?;
    if let Some(r) = broker.recovery() {
        println!(
            "recovered {} topics, {} entries in {:?}",
            r.topics, r.entries, r.elapsed
        );
        for t in r.truncations {
            println!(
                "truncated {} at {} ({} bytes): {}",
                t.segment.display(),
                t.offset,
                t.dropped_bytes,
                t.reason
            );
        }
    }
    println!(
        "ready {} {} {} ({:?})",
        broker.service_url(),
        broker.service_url_tls().unwrap_or_default(),
        broker.admin_url().unwrap_or_default(),
        started.elapsed()
    );
    let interval = config.stats_interval_secs;
    let stats = broker.clone();
    tokio::spawn(async move {
        if interval == 0 {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            for t in stats.stats() {
                let backlog: u64 = t.subscriptions.iter().map(|s| s.backlog).sum();
                println!(
                    "{} in {} ({:.1}/s) entries {} producers {} subscriptions {} backlog {}",
                    t.name,
                    t.msg_in,
                    t.msg_rate_in,
                    t.entries,
                    t.producers.len(),
                    t.subscriptions.len(),
                    backlog
                );
            }
        }
    });
    tokio::signal::ctrl_c().await?;
    broker.shutdown().await;
    Ok(())
}
