//! Starting one client process per run and reading what it reports.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::java::{
    aggregated_latency, consumer_stats, is_consume_done, is_consume_start, log_time,
    producer_stats, Series,
};
use crate::procfs;
use crate::spec::{
    ClientResult, Mode, Spec, BATCH_DELAY_US, BATCH_MAX_BYTES, BATCH_MAX_MESSAGES, MAX_PENDING,
    RECEIVER_QUEUE,
};

use super::clients::ClientKind;

/// Where the client programs are.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// Directory of the `bench-client` and `bench-pulsar-rs` binaries.
    pub bin_dir: PathBuf,
    /// The repository (for `scripts/pulsar-broker` and `benches/bin/bench_client.py`).
    pub repo: PathBuf,
    /// The Python interpreter.
    pub python: String,
    /// Client logs (stderr, and the Java tool's output).
    pub log_dir: PathBuf,
}

/// A started process whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(mut cmd: Command, log: PathBuf) -> Result<Running, BenchError> {
        let stderr = File::create(&log).map_err(BenchError::io(format!("{}", log.display())))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(BenchError::io(format!("starting {cmd:?}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Run("no stdout".into()))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running { child, lines })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process and its descendants (all started by this run).
    fn kill_tree(&mut self) {
        let mut pids = procfs::process_tree(self.pid());
        pids.reverse();
        for p in pids {
            // The direct child through its handle; descendants with kill(1).
            if p == self.pid() {
                let _ = self.child.kill();
            } else {
                let _ = Command::new("kill").arg("-9").arg(p.to_string()).status();
            }
        }
        let _ = self.child.wait();
    }

    /// Calls `on_line` for every line until the process exits or `timeout` passes (then kills
    /// it and fails). Returns the exit status success.
    fn follow(
        &mut self,
        timeout: Duration,
        mut on_line: impl FnMut(&str, u32),
        mut every_200ms: impl FnMut(u32),
    ) -> Result<bool, BenchError> {
        let deadline = Instant::now() + timeout;
        let pid = self.pid();
        let mut tick = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => on_line(&line, pid),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if tick.elapsed() >= Duration::from_millis(200) {
                tick = Instant::now();
                every_200ms(pid);
            }
            if Instant::now() > deadline {
                self.kill_tree();
                return Err(BenchError::Run(format!("timed out after {timeout:?}")));
            }
        }
        let status = self
            .child
            .wait()
            .map_err(BenchError::io("waiting for a client"))?;
        Ok(status.success())
    }
}

fn spec_json(spec: &Spec) -> Result<String, BenchError> {
    serde_json::to_string(spec).map_err(|e| BenchError::Run(format!("spec: {e}")))
}

/// The last lines of a log, for error messages.
fn log_tail(log: &PathBuf) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

impl Launcher {
    /// Checks that the program each of `clients` runs is there before any run starts:
    /// `bench-client` and `bench-pulsar-rs` in [`Launcher::bin_dir`] (the latter is built only
    /// with the benches crate's `pulsar-rs` feature), the Python client script, the broker
    /// script (which runs `pulsar-perf`).
    pub fn check_programs(&self, clients: &[ClientKind]) -> Result<(), BenchError> {
        for &client in clients {
            let (path, hint) = match client {
                ClientKind::PulsarRs => (
                    self.bin_dir.join("bench-pulsar-rs"),
                    "build it with `cargo build --release -p pulsar-benches --features pulsar-rs` \
                     (needs protoc; scripts/bench does both), or leave pulsar-rs out with --clients",
                ),
                ClientKind::Python => (
                    self.repo.join("benches/bin/bench_client.py"),
                    "run from the repository (--repo)",
                ),
                ClientKind::Java => (
                    self.repo.join("scripts/pulsar-broker"),
                    "run from the repository (--repo)",
                ),
                _ => (
                    self.bin_dir.join("bench-client"),
                    "build it with `cargo build --release -p pulsar-benches --bins`",
                ),
            };
            if !path.is_file() {
                return Err(BenchError::Usage(format!(
                    "client {} needs {}, which does not exist: {hint}",
                    client.id(),
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Runs `spec` on `client` in a process of its own and returns its report.
    pub fn run(
        &self,
        client: ClientKind,
        spec: &Spec,
        timeout: Duration,
        log_name: &str,
    ) -> Result<ClientResult, BenchError> {
        if client == ClientKind::Java {
            return self.run_java(spec, timeout, log_name);
        }
        let mut cmd = match client {
            ClientKind::PulsarRs => Command::new(self.bin_dir.join("bench-pulsar-rs")),
            ClientKind::Python => {
                let mut c = Command::new(&self.python);
                c.arg(self.repo.join("benches/bin/bench_client.py"));
                c
            }
            other => {
                let mut c = Command::new(self.bin_dir.join("bench-client"));
                c.arg("--runtime").arg(other.runtime().unwrap_or("tokio"));
                c
            }
        };
        cmd.arg("--spec").arg(spec_json(spec)?);
        let log = self.log_dir.join(format!("{log_name}.log"));
        let mut running = Running::start(cmd, log.clone())?;
        let mut result = None;
        let ok = running.follow(
            timeout,
            |line, _| {
                if let Some(json) = line.strip_prefix("RESULT ") {
                    result = serde_json::from_str::<ClientResult>(json).ok();
                }
            },
            |_| {},
        )?;
        match result {
            Some(r) if ok => Ok(r),
            _ => Err(BenchError::Run(format!(
                "{} exited without a result: {}",
                client.id(),
                log_tail(&log)
            ))),
        }
    }

    /// pulsar-perf produce or consume through `scripts/pulsar-broker`.
    fn run_java(
        &self,
        spec: &Spec,
        timeout: Duration,
        log_name: &str,
    ) -> Result<ClientResult, BenchError> {
        let script = self.repo.join("scripts/pulsar-broker");
        let mut cmd = Command::new(&script);
        let produce = matches!(spec.mode, Mode::Produce | Mode::Prefill);
        let secs = |s: f64| format!("{}", s.ceil().max(1.0) as u64);
        if produce {
            let rate = if spec.rate > 0.0 {
                spec.rate
            } else {
                10_000_000.0
            };
            cmd.arg("perf-produce").arg(&spec.topic);
            cmd.args(["-r", &format!("{}", rate.round() as u64)]);
            cmd.args(["-s", &spec.payload_size.to_string()]);
            // -time counts from the producers' creation; one more second for the last tick.
            cmd.args(["-time", &secs(spec.warmup_s + spec.measure_s + 1.0)]);
            cmd.args(["--warmup-time", &secs(spec.warmup_s)]);
            cmd.args([
                "-i",
                "1",
                "-o",
                &MAX_PENDING.to_string(),
                "-z",
                "NONE",
                "-ml",
                "64M",
            ]);
            cmd.args(["-n", &spec.producers.max(1).to_string()]);
            if spec.txn_messages > 0 {
                cmd.args(["--txn-enable", "-nmt", &spec.txn_messages.to_string()]);
            }
            if let (Some(name), Some(file)) = (&spec.encryption_key_name, &spec.encryption_key_file)
            {
                cmd.args(["--encryption-key-name", name]);
                cmd.args(["--encryption-key-value-file", file]);
            }
            if spec.batching {
                cmd.args(["-b", &format!("{}", BATCH_DELAY_US as f64 / 1000.0)]);
                cmd.args(["-bm", &BATCH_MAX_MESSAGES.to_string()]);
                cmd.args(["-bb", &BATCH_MAX_BYTES.to_string()]);
            } else {
                cmd.arg("-db");
            }
        } else if spec.mode == Mode::Consume {
            cmd.arg("perf-consume").arg(&spec.topic);
            cmd.args(["-ss", &spec.subscription, "-st", "Exclusive"]);
            cmd.args(["-q", &RECEIVER_QUEUE.to_string(), "-i", "1"]);
            cmd.args(["-m", &spec.messages.to_string()]);
            // -time counts from the tool's start (JVM and client setup included).
            cmd.args(["-time", &secs(spec.time_limit_s + 10.0)]);
        } else {
            return Err(BenchError::Usage(format!(
                "pulsar-perf cannot run {:?}",
                spec.mode
            )));
        }
        let log = self.log_dir.join(format!("{log_name}.log"));
        let mut running = Running::start(cmd, log.clone())?;
        let mut out = String::new();
        let mut series = Series::default();
        let mut latency = None;
        let mut peak = 0u64;
        let cpu0 = procfs::tree_cpu_s(running.pid());
        let mut cpu_last = cpu0;
        let ok = running.follow(
            timeout,
            |line, pid| {
                out.push_str(line);
                out.push('\n');
                let stats = if produce {
                    producer_stats(line)
                } else {
                    consumer_stats(line)
                };
                if let Some(s) = stats {
                    series.add(&s, || procfs::tree_cpu_s(pid));
                } else if !produce {
                    if let Some(t) = log_time(line) {
                        if is_consume_start(line) {
                            series.mark_start(t, procfs::tree_cpu_s(pid));
                        } else if is_consume_done(line) {
                            series.mark_done(t, procfs::tree_cpu_s(pid));
                        }
                    }
                }
                if let Some(l) = aggregated_latency(line) {
                    latency = Some(l);
                }
            },
            |pid| {
                peak = peak.max(procfs::tree_peak_rss_kib(pid));
                let c = procfs::tree_cpu_s(pid);
                if c > 0.0 {
                    cpu_last = c;
                }
            },
        )?;
        let _ = std::fs::write(&log, &out);
        if !ok && series.samples.is_empty() {
            return Err(BenchError::Run(format!(
                "pulsar-perf failed: {}",
                log_tail(&log)
            )));
        }
        let window = if produce {
            series.window_after(spec.warmup_s)
        } else {
            series.drain_window(spec.messages)
        };
        let mut r = ClientResult {
            total_messages: series.total().round() as u64,
            peak_rss_kib: peak,
            total_cpu_s: cpu_last - cpu0,
            ..ClientResult::default()
        };
        match window {
            Some(w) => r.set_window(w.messages, w.seconds, w.cpu_s, spec.payload_size),
            None => r
                .notes
                .push("too few per-second statistics lines for a window".into()),
        }
        if spec.rate > 0.0 {
            r.offered_rate = spec.rate;
            r.achieved_rate = r.msg_per_s;
            r.latency = latency;
            if r.latency.is_none() {
                r.notes.push("no aggregated latency line".into());
            }
        }
        r.notes.push(
            "CPU and peak RSS of the whole JVM (pulsar-perf, -Xms1g -Xmx1g) sampled from /proc"
                .into(),
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launcher(dir: &std::path::Path) -> Launcher {
        Launcher {
            bin_dir: dir.to_path_buf(),
            repo: dir.to_path_buf(),
            python: "python3".into(),
            log_dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn a_missing_pulsar_rs_binary_names_the_feature() {
        let dir = std::env::temp_dir().join(format!("bench-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bench-client"), b"").unwrap();
        let l = launcher(&dir);
        assert!(l.check_programs(&[ClientKind::SansioTokio]).is_ok());
        let e = l
            .check_programs(&[ClientKind::SansioTokio, ClientKind::PulsarRs])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bench-pulsar-rs"), "{e}");
        assert!(e.contains("--features pulsar-rs"), "{e}");
        std::fs::write(dir.join("bench-pulsar-rs"), b"").unwrap();
        assert!(l.check_programs(&[ClientKind::PulsarRs]).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
