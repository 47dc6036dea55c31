//! A description of the machine, the tools and the broker, for the report.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine the figures come from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// CPU flags of interest (sse4_2, avx2, avx512f).
    pub cpu_flags: Vec<String>,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Load averages (1, 5, 15 min) when the run started.
    pub load_at_start: String,
    /// Load averages when the run ended.
    pub load_at_end: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `java -version` (first line).
    pub java: String,
    /// The Python client's version.
    pub python_client: String,
    /// pulsar-rs version (from Cargo.lock).
    pub pulsar_rs: String,
    /// Broker version.
    pub broker_version: String,
    /// Broker settings that matter for the figures.
    pub broker_config: Vec<String>,
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The load averages now.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The version of a package in a Cargo.lock text.
pub fn lock_version(lock: &str, name: &str) -> Option<String> {
    let needle = format!("name = \"{name}\"\n");
    let at = lock.find(&needle)? + needle.len();
    let rest = lock.get(at..)?.strip_prefix("version = \"")?;
    Some(rest.split('"').next()?.to_owned())
}

impl Machine {
    /// Describes this machine; `repo` for Cargo.lock, `broker_home` for the broker's
    /// configuration, `python` for the Python client.
    pub fn describe(repo: &Path, broker_home: &Path, python: &str) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|s| s.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            .unwrap_or_default();
        let flags_line = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("flags"))
            .unwrap_or("");
        let cpu_flags = ["sse4_2", "avx2", "avx512f"]
            .into_iter()
            .filter(|f| flags_line.split_whitespace().any(|x| x == *f))
            .map(String::from)
            .collect();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = crate::procfs::status_field_kib(&meminfo, "MemTotal").unwrap_or(0) as f64
            / (1024.0 * 1024.0);
        let lock = std::fs::read_to_string(repo.join("Cargo.lock")).unwrap_or_default();
        let conf =
            std::fs::read_to_string(broker_home.join("conf/standalone.conf")).unwrap_or_default();
        let keys = [
            "journalSyncData",
            "managedLedgerDefaultEnsembleSize",
            "managedLedgerDefaultWriteQuorum",
            "managedLedgerDefaultAckQuorum",
            "managedLedgerCacheSizeMB",
            "dbStorage_writeCacheMaxSizeMb",
            "dbStorage_readAheadCacheMaxSizeMb",
            "brokerDeduplicationEnabled",
        ];
        let mut broker_config: Vec<String> = conf
            .lines()
            .filter(|l| keys.iter().any(|k| l.starts_with(&format!("{k}="))))
            .map(String::from)
            .collect();
        broker_config.push(format!(
            "broker JVM: {}",
            std::env::var("PULSAR_MEM")
                .unwrap_or_else(|_| "-Xms256m -Xmx1g -XX:MaxDirectMemorySize=1g".into())
        ));
        broker_config.push(
            "standalone: broker and one bookie in one JVM, same machine as the clients".into(),
        );
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model,
            cpu_flags,
            memory_gib,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load_at_start: loadavg(),
            load_at_end: String::new(),
            rustc: first_line("rustc", &["--version"]),
            java: first_line("java", &["-version"]),
            python_client: first_line(python, &["-c", "import pulsar; print(pulsar.__version__)"]),
            pulsar_rs: lock_version(&lock, "pulsar").unwrap_or_else(|| "unknown".into()),
            broker_version: std::env::var("PULSAR_VERSION").unwrap_or_else(|_| "4.0.7".into()),
            broker_config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_a_lock_file() {
        let lock = "[[package]]\nname = \"pulsar\"\nversion = \"6.9.1\"\nsource = \"x\"\n";
        assert_eq!(lock_version(lock, "pulsar").as_deref(), Some("6.9.1"));
        assert_eq!(lock_version(lock, "tokio"), None);
    }
}
