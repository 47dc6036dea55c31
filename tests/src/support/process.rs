//! Brokers started by the tests themselves through the project's broker script.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::error::SupportError;
use super::info::BrokerInfo;

/// Port offsets tried for brokers started here: binary 6650+N, HTTP 8080+N, binary TLS 6651+N,
/// HTTPS 8443+N with N = FIRST_OFFSET + 10·k. With k < 43 no two offsets give overlapping ports.
const FIRST_OFFSET: u32 = 1000;
const OFFSET_SLOTS: u32 = 43;

/// One broker start at a time in this process: two JVMs booting at once on a small machine only
/// slow each other down.
static START_LOCK: Mutex<()> = Mutex::new(());
static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// The broker script: `$PULSAR_BROKER_SCRIPT`, or `scripts/pulsar-broker` in this workspace.
pub fn script_path() -> PathBuf {
    match std::env::var_os("PULSAR_BROKER_SCRIPT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pulsar-broker"),
    }
}

/// Which variant of broker to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerOptions {
    /// Token (HS256), basic and (with TLS) client-certificate authentication.
    pub auth: bool,
    /// TLS listeners beside the plain ones.
    pub tls: bool,
    /// TLS, and the broker requires a trusted client certificate.
    pub mtls: bool,
    /// Broker-side deduplication.
    pub dedup: bool,
    /// The broker's `authenticationRefreshCheckSeconds` (default 60).
    pub auth_refresh_seconds: Option<u32>,
    /// Transactions: the coordinator enabled (`--txn`).
    pub txn: bool,
    /// Batch-index acknowledgement (`--batch-index-ack`:
    /// `acknowledgmentAtBatchIndexLevelEnabled=true`).
    pub batch_index_ack: bool,
}

impl BrokerOptions {
    /// A plain broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// With authentication.
    pub fn auth(mut self) -> Self {
        self.auth = true;
        self
    }

    /// With TLS.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// With TLS requiring client certificates.
    pub fn mtls(mut self) -> Self {
        self.tls = true;
        self.mtls = true;
        self
    }

    /// With deduplication.
    pub fn dedup(mut self) -> Self {
        self.dedup = true;
        self
    }

    /// With transactions (`transactionCoordinatorEnabled=true`, the coordinator topic created).
    pub fn txn(mut self) -> Self {
        self.txn = true;
        self
    }

    /// With batch-index acknowledgement on the broker.
    pub fn batch_index_ack(mut self) -> Self {
        self.batch_index_ack = true;
        self
    }

    /// With the given `authenticationRefreshCheckSeconds`.
    pub fn auth_refresh_seconds(mut self, seconds: u32) -> Self {
        self.auth_refresh_seconds = Some(seconds);
        self
    }

    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.auth {
            args.push("--auth".to_owned());
        }
        if self.mtls {
            args.push("--mtls".to_owned());
        } else if self.tls {
            args.push("--tls".to_owned());
        }
        if self.dedup {
            args.push("--dedup".to_owned());
        }
        if self.txn {
            args.push("--txn".to_owned());
        }
        if self.batch_index_ack {
            args.push("--batch-index-ack".to_owned());
        }
        if let Some(seconds) = self.auth_refresh_seconds {
            args.push("--auth-refresh-seconds".to_owned());
            args.push(seconds.to_string());
        }
        args
    }
}

/// A broker owned by a test: a home directory of its own, free ports, stopped (by PID) and its
/// directory removed on drop. Should the test process die without dropping it, the script's
/// watchdog stops it and removes the directory.
#[derive(Debug)]
pub struct BrokerProcess {
    options: BrokerOptions,
    home: PathBuf,
    offset: u32,
    info: BrokerInfo,
    running: bool,
}

impl BrokerProcess {
    /// Starts a fresh broker and waits until it is ready.
    pub fn start(options: BrokerOptions) -> Result<Self, SupportError> {
        let _one_at_a_time = START_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let instance = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let home = std::env::temp_dir()
            .join("pulsar-sansio-tests")
            .join(format!("{}-{instance}", std::process::id()));
        let first_slot = (std::process::id() + instance * 7) % OFFSET_SLOTS;
        let mut last_error = None;
        for attempt in 0..OFFSET_SLOTS {
            let offset = FIRST_OFFSET + 10 * ((first_slot + attempt) % OFFSET_SLOTS);
            if !ports_free(offset, options.tls) {
                continue;
            }
            let mut process = BrokerProcess {
                options: options.clone(),
                home: home.clone(),
                offset,
                info: BrokerInfo::plain("pulsar://unstarted:0", "http://unstarted:0"),
                running: false,
            };
            match process.launch(false) {
                Ok(()) => return Ok(process),
                // another process may have taken a port between the check and the start
                Err(e) if attempt < 3 => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            SupportError::NoBroker("no free port offset for a test broker".to_owned())
        }))
    }

    /// The broker's addresses and credentials.
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// Its home directory (configuration, data, logs, certificates).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Stops the broker (by PID), keeping its data.
    pub fn stop(&mut self) -> Result<(), SupportError> {
        if self.running {
            self.running = false;
            run_script(&self.home, &["stop".to_owned()])?;
        }
        Ok(())
    }

    /// Starts it again after [`stop`](Self::stop), same ports and options, data kept.
    pub fn start_again(&mut self) -> Result<(), SupportError> {
        let _one_at_a_time = START_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.launch(true)
    }

    /// Stops and starts the broker, keeping its data (topics, messages, subscriptions).
    pub fn restart(&mut self) -> Result<(), SupportError> {
        self.stop()?;
        self.start_again()
    }

    /// A token for `role` signed with this broker's secret key, expiring after `expiry_seconds`
    /// if given (needs a broker started with authentication).
    pub fn mint_token(
        &self,
        role: &str,
        expiry_seconds: Option<u64>,
    ) -> Result<String, SupportError> {
        let mut args = vec!["mint-token".to_owned(), role.to_owned()];
        if let Some(seconds) = expiry_seconds {
            args.push(seconds.to_string());
        }
        Ok(run_script(&self.home, &args)?.trim().to_owned())
    }

    fn launch(&mut self, keep_data: bool) -> Result<(), SupportError> {
        if self.running {
            return Ok(());
        }
        let mut args = vec!["start".to_owned()];
        args.extend(self.options.args());
        args.extend([
            "--port-offset".to_owned(),
            self.offset.to_string(),
            "--watch-pid".to_owned(),
            std::process::id().to_string(),
            "--ephemeral".to_owned(),
        ]);
        if keep_data {
            args.push("--keep-data".to_owned());
        }
        run_script(&self.home, &args)?;
        self.running = true;
        self.info = BrokerInfo::from_env_file(&self.home.join("broker.env"))?;
        Ok(())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "pulsar-tests: stopping the broker in {}: {e}",
                self.home.display()
            );
        }
        // the directory holds only what this broker wrote
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Whether the ports of `offset` can be bound on 127.0.0.1 right now.
fn ports_free(offset: u32, tls: bool) -> bool {
    let mut ports = vec![6650 + offset, 8080 + offset];
    if tls {
        ports.extend([6651 + offset, 8443 + offset]);
    }
    ports.into_iter().all(|port| {
        u16::try_from(port)
            .ok()
            .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
    })
}

/// Runs the broker script with `PULSAR_HOME_DIR=home`; returns its standard output.
pub(crate) fn run_script(home: &Path, args: &[String]) -> Result<String, SupportError> {
    run_project_script(
        &script_path(),
        ("PULSAR_HOME_DIR", home),
        "PULSAR_PORT_OFFSET",
        args,
    )
}

/// Runs one of the project's scripts with `dir_var` set (the directory it works in) and
/// `offset_var` unset (a port offset from the caller's environment would move its ports); returns
/// its standard output, or the script's error with everything it printed.
pub(crate) fn run_project_script<S: AsRef<str>>(
    script: &Path,
    (dir_var, dir): (&str, &Path),
    offset_var: &str,
    args: &[S],
) -> Result<String, SupportError> {
    let output = Command::new(script)
        .args(args.iter().map(AsRef::as_ref))
        .env(dir_var, dir)
        .env_remove(offset_var)
        .output()
        .map_err(|e| SupportError::io(format!("running {}", script.display()), e))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(SupportError::Script {
            script: script.to_owned(),
            args: args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }
}
