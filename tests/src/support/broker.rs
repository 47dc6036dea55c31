//! The broker shared by all tests of a process.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::error::SupportError;
use super::info::BrokerInfo;
use super::process::{BrokerOptions, BrokerProcess};

const DEFAULT_SERVICE_URL: &str = "pulsar://127.0.0.1:6650";
const DEFAULT_WEB_URL: &str = "http://127.0.0.1:8080";

struct Shared {
    info: BrokerInfo,
    /// A broker this process started; never dropped (statics are not): the script's watchdog
    /// stops it when the process exits.
    _process: Option<BrokerProcess>,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// The shared test broker; panics (failing the test) if none can be found or started.
pub fn broker() -> &'static BrokerInfo {
    match try_broker() {
        Ok(info) => info,
        Err(e) => panic!("{e}"),
    }
}

/// The shared test broker, found or started on first use:
///
/// 1. `PULSAR_TEST_URL` (and `PULSAR_TEST_ADMIN_URL`, default `http://127.0.0.1:8080`) when set —
///    it must answer, there is no fallback;
/// 2. otherwise a broker answering on 127.0.0.1:6650 and 127.0.0.1:8080 (unless
///    `PULSAR_TEST_START_BROKER=1`);
/// 3. otherwise one started with the broker script (once per process).
pub fn try_broker() -> Result<&'static BrokerInfo, SupportError> {
    SHARED
        .get_or_init(|| {
            find_or_start(&Discovery::from_env()).map_err(|e| match e {
                SupportError::NoBroker(message) => message,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map(|shared| &shared.info)
        .map_err(|e| SupportError::NoBroker(e.clone()))
}

/// Variant brokers shared by the tests of this process, by options; failures are kept too, so
/// that a broker that cannot start is not tried again by every test.
static VARIANTS: Mutex<Vec<(BrokerOptions, Result<BrokerProcess, String>)>> =
    Mutex::new(Vec::new());

/// A broker with `options` (TLS, authentication, deduplication) shared by all tests of this
/// process that ask for the same options: started on first use, stopped by the script's watchdog
/// when the process exits. Tests that restart or stop a broker should own one instead
/// ([`BrokerProcess::start`]).
pub fn shared_broker(options: BrokerOptions) -> Result<BrokerInfo, SupportError> {
    let mut variants = VARIANTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, started)) = variants.iter().find(|(o, _)| *o == options) {
        return started
            .as_ref()
            .map(|process| process.info().clone())
            .map_err(|e| SupportError::NoBroker(e.clone()));
    }
    let started = BrokerProcess::start(options.clone()).map_err(|e| e.to_string());
    let result = started
        .as_ref()
        .map(|process| process.info().clone())
        .map_err(|e| SupportError::NoBroker(e.clone()));
    variants.push((options, started));
    result
}

/// Where to look for a broker.
#[derive(Debug, Default)]
struct Discovery {
    service_url: Option<String>,
    web_url: Option<String>,
    skip_probe: bool,
}

impl Discovery {
    fn from_env() -> Self {
        Discovery {
            service_url: std::env::var("PULSAR_TEST_URL").ok(),
            web_url: std::env::var("PULSAR_TEST_ADMIN_URL").ok(),
            skip_probe: std::env::var("PULSAR_TEST_START_BROKER").is_ok_and(|v| v == "1"),
        }
    }
}

fn find_or_start(discovery: &Discovery) -> Result<Shared, SupportError> {
    if let Some(service_url) = &discovery.service_url {
        let web_url = discovery.web_url.as_deref().unwrap_or(DEFAULT_WEB_URL);
        let info = BrokerInfo::plain(service_url, web_url);
        return if is_ready(&info) {
            Ok(Shared {
                info,
                _process: None,
            })
        } else {
            Err(SupportError::NoBroker(format!(
                "PULSAR_TEST_URL={service_url} / PULSAR_TEST_ADMIN_URL={web_url} do not answer"
            )))
        };
    }
    let local = BrokerInfo::plain(DEFAULT_SERVICE_URL, DEFAULT_WEB_URL);
    if !discovery.skip_probe && is_ready(&local) {
        return Ok(Shared {
            info: local,
            _process: None,
        });
    }
    eprintln!("pulsar-tests: starting a broker with the broker script");
    let process = BrokerProcess::start(BrokerOptions::new())?;
    Ok(Shared {
        info: process.info().clone(),
        _process: Some(process),
    })
}

/// Whether the binary port accepts connections and the admin API shows `public/default`.
fn is_ready(info: &BrokerInfo) -> bool {
    let binary_up = info
        .binary_addr()
        .ok()
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    binary_up && info.admin().is_ok_and(|admin| admin.is_ready())
}

/// The broker for transaction tests: `PULSAR_TEST_TXN_URL` (and `PULSAR_TEST_TXN_ADMIN_URL`,
/// default `http://127.0.0.1:8080`) when set, a broker started with transactions enabled
/// otherwise (`scripts/pulsar-broker start --txn`), shared by the tests of this process.
pub fn txn_broker() -> Result<BrokerInfo, SupportError> {
    match std::env::var("PULSAR_TEST_TXN_URL") {
        Ok(url) if !url.is_empty() => {
            let web = std::env::var("PULSAR_TEST_TXN_ADMIN_URL")
                .unwrap_or_else(|_| DEFAULT_WEB_URL.to_owned());
            Ok(BrokerInfo::plain(&url, &web))
        }
        _ => shared_broker(BrokerOptions::new().txn()),
    }
}

/// The broker for batch-index acknowledgement tests: `PULSAR_TEST_BATCH_ACK_URL` (and
/// `PULSAR_TEST_BATCH_ACK_ADMIN_URL`, default `http://127.0.0.1:8080`) when set, a broker started
/// with `scripts/pulsar-broker start --batch-index-ack` otherwise, shared by the tests of this
/// process.
pub fn batch_ack_broker() -> Result<BrokerInfo, SupportError> {
    match std::env::var("PULSAR_TEST_BATCH_ACK_URL") {
        Ok(url) if !url.is_empty() => {
            let web = std::env::var("PULSAR_TEST_BATCH_ACK_ADMIN_URL")
                .unwrap_or_else(|_| DEFAULT_WEB_URL.to_owned());
            Ok(BrokerInfo::plain(&url, &web))
        }
        _ => shared_broker(BrokerOptions::new().batch_index_ack()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_broker_that_does_not_answer_is_an_error_not_a_fallback() {
        let discovery = Discovery {
            service_url: Some("pulsar://127.0.0.1:1".into()),
            web_url: Some("http://127.0.0.1:1".into()),
            skip_probe: false,
        };
        match find_or_start(&discovery) {
            Err(SupportError::NoBroker(message)) => assert!(message.contains("127.0.0.1:1")),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("found a broker on port 1"),
        }
    }
}
