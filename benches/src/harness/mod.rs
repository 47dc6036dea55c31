//! The comparison: every client as a process of its own against the real broker, interleaved
//! (A B C … then again, rotated), with the same settings, one fresh topic per run.

pub mod clients;
pub mod machine;
pub mod process;
pub mod results;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::admin::Admin;
use crate::error::BenchError;
use crate::spec::{AckMode, ClientResult, Mode, Spec};

use clients::{ClientKind, Phase};
use process::Launcher;
use results::{Config, NotApplicable, Results, RunRecord};

/// Payloads from this size on are sent at [`LARGE_PAYLOAD_BYTE_RATE`], not as fast as possible.
pub const LARGE_PAYLOAD: usize = 64 * 1024;
/// Offered payload bytes per second of the large-payload runs (32 MB/s).
pub const LARGE_PAYLOAD_BYTE_RATE: f64 = 32e6;

/// Messages per transaction of the transactional produce phase.
pub const TXN_MESSAGES: u64 = 100;

/// The key name of the encrypted produce phase.
pub const ENCRYPTION_KEY_NAME: &str = "rsa-a";

/// The RSA-2048 public key of the encrypted produce phase: the tests' fixed key
/// (tests/keys/rsa-a.public.pem), which pulsar-perf and this client read alike.
pub fn encryption_key_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/keys/rsa-a.public.pem")
}

/// `param` of the latency runs at half of each client's own maximum throughput.
pub const HALF_OF_MAX: f64 = -1.0;

/// Runs the comparison and collects the results.
#[derive(Debug)]
pub struct Harness {
    config: Config,
    launcher: Launcher,
    admin: Admin,
    results: Results,
    topics: u64,
    started: Instant,
}

/// `clients` rotated left by `round` (A B C, B C A, C A B, ...).
pub fn rotated(clients: &[ClientKind], round: usize) -> Vec<ClientKind> {
    let mut v = clients.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

fn fmt_rate(r: &ClientResult) -> String {
    if let Some(i) = &r.idle {
        return format!("{:.0} B/item", i.bytes_per_item);
    }
    if let Some(l) = &r.latency {
        let e2e = r
            .e2e
            .as_ref()
            .map(|e| format!(", e2e p50 {:.0} µs p99 {:.0} µs", e.p50_us, e.p99_us))
            .unwrap_or_default();
        return format!(
            "{:.0}/{:.0} msg/s, p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs{e2e}",
            r.achieved_rate, r.offered_rate, l.p50_us, l.p99_us, l.p999_us
        );
    }
    format!(
        "{:.0} msg/s, {:.2} MB/s, {:.3} µs CPU/msg, peak RSS {} KiB",
        r.msg_per_s, r.mb_per_s, r.cpu_us_per_msg, r.peak_rss_kib
    )
}

impl Harness {
    /// A harness for `config`.
    pub fn new(
        config: Config,
        launcher: Launcher,
        machine: machine::Machine,
    ) -> Result<Harness, BenchError> {
        launcher.check_programs(&config.clients)?;
        let admin = Admin::new(&config.web_url)?;
        let started_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let results = Results {
            config: config.clone(),
            machine,
            primitives: Default::default(),
            runs: Vec::new(),
            not_applicable: Vec::new(),
            started_unix,
            duration_s: 0.0,
        };
        Ok(Harness {
            config,
            launcher,
            admin,
            results,
            topics: 0,
            started: Instant::now(),
        })
    }

    /// Runs every configured phase; the results so far are returned even if the broker fails
    /// midway (with the error).
    pub fn run(mut self) -> (Results, Option<BenchError>) {
        self.results.primitives = crate::primitives::measure();
        let phases = self.config.phases.clone();
        let mut failure = None;
        for phase in phases {
            if !self.admin.healthy() {
                failure = Some(BenchError::Run(format!(
                    "the broker at {} is not healthy; stopped before {}",
                    self.config.web_url,
                    phase.id()
                )));
                break;
            }
            let t = Instant::now();
            eprintln!("== {} ==", phase.id());
            if let Err(e) = self.phase(phase) {
                eprintln!("phase {} failed: {e}", phase.id());
                failure = Some(e);
                break;
            }
            eprintln!(
                "== {} done in {:.0} s ==",
                phase.id(),
                t.elapsed().as_secs_f64()
            );
        }
        self.results.duration_s = self.started.elapsed().as_secs_f64();
        self.results.machine.load_at_end = machine::loadavg();
        (self.results, failure)
    }

    /// The clients of `phase` that take part (configured), recording the n/a ones.
    fn participants(&mut self, phase: Phase) -> Vec<ClientKind> {
        let mut out = Vec::new();
        for &c in phase.clients() {
            if !self.config.clients.contains(&c) {
                continue;
            }
            match c.not_applicable(phase) {
                Some(reason) => self.results.not_applicable.push(NotApplicable {
                    phase,
                    client: c,
                    reason: reason.to_owned(),
                }),
                None => out.push(c),
            }
        }
        out
    }

    fn fresh_topic(&mut self, phase: Phase, client: &str) -> Result<String, BenchError> {
        self.topics += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let topic = format!(
            "persistent://public/default/bench-{}-{client}-{}-{nanos}",
            phase.id(),
            self.topics
        );
        self.admin.create_topic(&topic)?;
        Ok(topic)
    }

    fn spec(&self, mode: Mode, topic: &str) -> Spec {
        let mut s = Spec::new(mode, &self.config.url, topic);
        s.payload_size = self.config.payload_size;
        s.warmup_s = self.config.warmup_s;
        s.measure_s = self.config.measure_s;
        s.time_limit_s = self.config.drain_time_limit_s;
        s
    }

    /// Runs one client process and records it.
    #[allow(clippy::too_many_arguments)]
    fn run_one(
        &mut self,
        phase: Phase,
        client: ClientKind,
        variant: &str,
        param: f64,
        round: usize,
        spec: &Spec,
        timeout: Duration,
    ) -> &RunRecord {
        let mut spec = spec.clone();
        if client == ClientKind::Java && spec.mode == Mode::Produce {
            spec.warmup_s = spec.warmup_s.max(self.config.java_warmup_s);
        }
        let spec = &spec;
        let t = Instant::now();
        let log = format!(
            "{}-{}-{}-r{round}",
            phase.id(),
            client.id(),
            variant.replace([' ', '/'], "_")
        );
        let outcome = self.launcher.run(client, spec, timeout, &log);
        let wall_s = t.elapsed().as_secs_f64();
        let (result, error) = match outcome {
            Ok(r) => (r, None),
            Err(e) => (ClientResult::default(), Some(e.to_string())),
        };
        match &error {
            None => eprintln!(
                "  {:<16} {:<22} r{round}: {} ({wall_s:.1} s)",
                client.id(),
                variant,
                fmt_rate(&result)
            ),
            Some(e) => eprintln!("  {:<16} {:<22} r{round}: FAILED {e}", client.id(), variant),
        }
        self.results.runs.push(RunRecord {
            phase,
            client,
            variant: variant.to_owned(),
            param,
            round,
            error,
            result,
            wall_s,
        });
        let last = self.results.runs.len() - 1;
        &self.results.runs[last]
    }

    /// A spec with the shorter windows of the secondary runs.
    fn scaling_spec(&self, mode: Mode, topic: &str) -> Spec {
        let mut s = self.spec(mode, topic);
        s.warmup_s = self.config.scaling_warmup_s;
        s.measure_s = self.config.scaling_measure_s;
        s
    }

    fn timeout(&self, extra_s: f64) -> Duration {
        Duration::from_secs_f64(self.config.warmup_s + self.config.measure_s + extra_s)
    }

    fn phase(&mut self, phase: Phase) -> Result<(), BenchError> {
        let clients = self.participants(phase);
        match phase {
            Phase::Produce => {
                for round in 0..self.config.runs {
                    for c in rotated(&clients, round) {
                        let topic = self.fresh_topic(phase, c.id())?;
                        let spec = self.spec(Mode::Produce, &topic);
                        self.run_one(phase, c, "", 0.0, round, &spec, self.timeout(120.0));
                        let _ = self.admin.delete_topic(&topic);
                    }
                }
            }
            Phase::TxnProduce => {
                for round in 0..self.config.runs {
                    for c in rotated(&clients, round) {
                        let topic = self.fresh_topic(phase, c.id())?;
                        let mut spec = self.spec(Mode::Produce, &topic);
                        spec.txn_messages = TXN_MESSAGES;
                        let variant = format!("{TXN_MESSAGES} msg/txn");
                        let timeout = self.timeout(120.0);
                        self.run_one(phase, c, &variant, 0.0, round, &spec, timeout);
                        let _ = self.admin.delete_topic(&topic);
                    }
                }
            }
            Phase::EncryptProduce => {
                let file = encryption_key_file();
                if !file.is_file() {
                    return Err(BenchError::Run(format!("no key file {}", file.display())));
                }
                for round in 0..self.config.runs {
                    for c in rotated(&clients, round) {
                        let topic = self.fresh_topic(phase, c.id())?;
                        let mut spec = self.spec(Mode::Produce, &topic);
                        spec.encryption_key_name = Some(ENCRYPTION_KEY_NAME.into());
                        spec.encryption_key_file = Some(file.display().to_string());
                        let timeout = self.timeout(120.0);
                        self.run_one(phase, c, "RSA-2048", 0.0, round, &spec, timeout);
                        let _ = self.admin.delete_topic(&topic);
                    }
                }
            }
            Phase::Latency => {
                let rates = self.config.latency_rates.clone();
                for (i, rate) in rates.into_iter().enumerate() {
                    let runs = if i == 0 { self.config.runs } else { 1 };
                    for round in 0..runs {
                        for c in rotated(&clients, round) {
                            let topic = self.fresh_topic(phase, c.id())?;
                            let mut spec = if i == 0 {
                                self.spec(Mode::Produce, &topic)
                            } else {
                                self.scaling_spec(Mode::Produce, &topic)
                            };
                            spec.rate = rate;
                            let variant = format!("{rate:.0} msg/s");
                            self.run_one(
                                phase,
                                c,
                                &variant,
                                rate,
                                round,
                                &spec,
                                self.timeout(120.0),
                            );
                            let _ = self.admin.delete_topic(&topic);
                        }
                    }
                }
                for c in clients {
                    let max = self
                        .results
                        .median_of(Phase::Produce, c, None, |r| Some(r.msg_per_s));
                    let Some(max) = max else {
                        self.results.not_applicable.push(NotApplicable {
                            phase,
                            client: c,
                            reason: "half of max: no maximum-throughput figure".into(),
                        });
                        continue;
                    };
                    let rate = (max / 2.0).round();
                    let topic = self.fresh_topic(phase, c.id())?;
                    let mut spec = self.scaling_spec(Mode::Produce, &topic);
                    spec.rate = rate;
                    let variant = format!("half of max ({rate:.0} msg/s)");
                    self.run_one(
                        phase,
                        c,
                        &variant,
                        HALF_OF_MAX,
                        0,
                        &spec,
                        self.timeout(120.0),
                    );
                    let _ = self.admin.delete_topic(&topic);
                }
            }
            Phase::E2e => {
                for c in clients {
                    let topic = self.fresh_topic(phase, c.id())?;
                    let mut spec = self.spec(Mode::E2e, &topic);
                    spec.rate = 10_000.0;
                    spec.subscription = "e2e".into();
                    self.run_one(
                        phase,
                        c,
                        "10000 msg/s",
                        10_000.0,
                        0,
                        &spec,
                        self.timeout(120.0),
                    );
                    let _ = self.admin.delete_topic(&topic);
                }
            }
            Phase::Consume => self.consume_rounds(clients)?,
            // Run together with Consume (same backlogs); only listed when Consume is not run.
            Phase::ConsumeCumulative => {
                if !self.config.phases.contains(&Phase::Consume) {
                    self.consume_rounds(Vec::new())?;
                }
            }
            Phase::PayloadSize => {
                for size in self.config.payload_sizes.clone() {
                    for c in &clients {
                        let topic = self.fresh_topic(phase, c.id())?;
                        let mut spec = self.scaling_spec(Mode::Produce, &topic);
                        spec.payload_size = size;
                        let mut variant = format!("{size} B");
                        if size >= LARGE_PAYLOAD {
                            // A fixed byte rate: at full speed, large entries overrun the
                            // standalone bookie's 32 MB write cache and the broker fails.
                            spec.rate = (LARGE_PAYLOAD_BYTE_RATE / size as f64).max(1.0);
                            variant = format!("{size} B at {:.0} msg/s", spec.rate);
                        }
                        self.run_one(
                            phase,
                            *c,
                            &variant,
                            size as f64,
                            0,
                            &spec,
                            self.timeout(120.0),
                        );
                        let _ = self.admin.delete_topic(&topic);
                    }
                }
            }
            Phase::Producers => {
                for n in self.config.producer_counts.clone() {
                    for c in &clients {
                        let topic = self.fresh_topic(phase, c.id())?;
                        let mut spec = self.scaling_spec(Mode::Produce, &topic);
                        spec.producers = n;
                        let variant = format!("{n} producers");
                        self.run_one(phase, *c, &variant, n as f64, 0, &spec, self.timeout(240.0));
                        let _ = self.admin.delete_topic(&topic);
                    }
                }
            }
            Phase::IdleProducers | Phase::IdleProducersUnbatched | Phase::IdleConsumers => {
                for c in clients {
                    let topic = self.fresh_topic(phase, c.id())?;
                    let mode = if phase == Phase::IdleConsumers {
                        Mode::IdleConsumers
                    } else {
                        Mode::IdleProducers
                    };
                    let mut spec = self.spec(mode, &topic);
                    spec.count = self.config.idle_count;
                    spec.batching = phase != Phase::IdleProducersUnbatched;
                    spec.subscription = "idle".into();
                    let variant = format!("{} idle", self.config.idle_count);
                    let n = self.config.idle_count as f64;
                    self.run_one(phase, c, &variant, n, 0, &spec, Duration::from_secs(300));
                    let _ = self.admin.delete_topic(&topic);
                }
            }
        }
        Ok(())
    }

    /// Backlog drains: per round one topic, one subscription per consumer run, filled once by
    /// this project's tokio producer; individual acknowledgements (`clients`), then cumulative
    /// ones (the cumulative phase's clients, when that phase is configured).
    fn consume_rounds(&mut self, clients: Vec<ClientKind>) -> Result<(), BenchError> {
        let cumulative = if self.config.phases.contains(&Phase::ConsumeCumulative) {
            self.participants(Phase::ConsumeCumulative)
        } else {
            Vec::new()
        };
        let n = self.config.drain_messages;
        for round in 0..self.config.runs {
            let topic = self.fresh_topic(Phase::Consume, "all")?;
            for c in &clients {
                self.admin
                    .create_subscription(&topic, &format!("ind-{}", c.id()))?;
            }
            for c in &cumulative {
                self.admin
                    .create_subscription(&topic, &format!("cum-{}", c.id()))?;
            }
            let mut fill = self.spec(Mode::Prefill, &topic);
            fill.messages = n;
            let t = Instant::now();
            let prefill = self.launcher.run(
                ClientKind::SansioTokio,
                &fill,
                Duration::from_secs(300),
                &format!("prefill-r{round}"),
            )?;
            eprintln!(
                "  prefilled {} messages in {:.1} s",
                prefill.total_messages,
                t.elapsed().as_secs_f64()
            );
            let runs: Vec<(Phase, ClientKind, AckMode)> = rotated(&clients, round)
                .into_iter()
                .map(|c| (Phase::Consume, c, AckMode::Individual))
                .chain(
                    rotated(&cumulative, round)
                        .into_iter()
                        .map(|c| (Phase::ConsumeCumulative, c, AckMode::Cumulative)),
                )
                .collect();
            for (phase, c, ack) in runs {
                let mut spec = self.spec(Mode::Consume, &topic);
                spec.messages = n;
                spec.ack = ack;
                spec.subscription = match ack {
                    AckMode::Cumulative => format!("cum-{}", c.id()),
                    _ => format!("ind-{}", c.id()),
                };
                let timeout = Duration::from_secs_f64(self.config.drain_time_limit_s + 60.0);
                let sub = spec.subscription.clone();
                let variant = match ack {
                    AckMode::Cumulative => format!("{n} backlog, cumulative"),
                    _ => format!("{n} backlog"),
                };
                self.run_one(phase, c, &variant, n as f64, round, &spec, timeout);
                std::thread::sleep(Duration::from_millis(300));
                if let Ok(left) = self.admin.backlog(&topic, &sub) {
                    if let Some(last) = self.results.runs.last_mut() {
                        last.result
                            .notes
                            .push(format!("subscription backlog after the run: {left}"));
                    }
                }
            }
            let _ = self.admin.delete_topic(&topic);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_interleaves() {
        use ClientKind::*;
        let c = [SansioTokio, PulsarRs, Java];
        assert_eq!(rotated(&c, 0), vec![SansioTokio, PulsarRs, Java]);
        assert_eq!(rotated(&c, 1), vec![PulsarRs, Java, SansioTokio]);
        assert_eq!(rotated(&c, 3), vec![SansioTokio, PulsarRs, Java]);
        assert!(rotated(&[], 2).is_empty());
    }
}
