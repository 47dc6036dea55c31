//! `BENCHMARKS.md`: tables, goals, method, machine, charts and the criterion summary.

use std::fmt::Write as _;

use crate::harness::clients::{ClientKind, Phase};
use crate::harness::results::{Config, Results};
use crate::harness::{HALF_OF_MAX, LARGE_PAYLOAD, LARGE_PAYLOAD_BYTE_RATE};
use crate::spec::{ClientResult, BATCH_DELAY_US, BATCH_MAX_BYTES, BATCH_MAX_MESSAGES, MAX_PENDING};
use crate::stats::LinearFit;

use super::criterion::CriterionEntry;
use super::format::{bytes, cpu_us, int, latency_us, ratio};
use super::Charts;

const OURS: [ClientKind; 3] = [
    ClientKind::SansioTokio,
    ClientKind::SansioSmol,
    ClientKind::SansioBlocking,
];

type Metric = fn(&ClientResult) -> Option<f64>;

fn msg_per_s(r: &ClientResult) -> Option<f64> {
    Some(r.msg_per_s)
}
fn mb_per_s(r: &ClientResult) -> Option<f64> {
    Some(r.mb_per_s)
}
fn cpu(r: &ClientResult) -> Option<f64> {
    Some(r.cpu_us_per_msg)
}
fn rss_bytes(r: &ClientResult) -> Option<f64> {
    Some(r.peak_rss_kib as f64 * 1024.0)
}
fn p50(r: &ClientResult) -> Option<f64> {
    r.latency.as_ref().map(|l| l.p50_us)
}
fn p99(r: &ClientResult) -> Option<f64> {
    r.latency.as_ref().map(|l| l.p99_us)
}
fn p999(r: &ClientResult) -> Option<f64> {
    r.latency.as_ref().map(|l| l.p999_us)
}
fn pmax(r: &ClientResult) -> Option<f64> {
    r.latency.as_ref().map(|l| l.max_us)
}
fn e2e_p50(r: &ClientResult) -> Option<f64> {
    r.e2e.as_ref().map(|l| l.p50_us)
}
fn e2e_p99(r: &ClientResult) -> Option<f64> {
    r.e2e.as_ref().map(|l| l.p99_us)
}
fn e2e_p999(r: &ClientResult) -> Option<f64> {
    r.e2e.as_ref().map(|l| l.p999_us)
}
fn e2e_max(r: &ClientResult) -> Option<f64> {
    r.e2e.as_ref().map(|l| l.max_us)
}
fn achieved(r: &ClientResult) -> Option<f64> {
    Some(r.achieved_rate)
}
fn offered(r: &ClientResult) -> Option<f64> {
    Some(r.offered_rate)
}
fn idle_bytes(r: &ClientResult) -> Option<f64> {
    r.idle.as_ref().map(|i| i.bytes_per_item)
}

/// A cell: the median, "n/a", "failed" or "—" (not run).
fn cell(
    r: &Results,
    phase: Phase,
    client: ClientKind,
    param: Option<f64>,
    metric: Metric,
    fmt: fn(f64) -> String,
) -> String {
    if r.not_applicable(phase, client).is_some() {
        return "n/a".into();
    }
    match r.median_of(phase, client, param, metric) {
        Some(v) => fmt(v),
        None if r.failure(phase, client, param).is_some() => "failed".into(),
        // Runs succeeded but measured nothing (no receipt inside the window).
        None if !r.runs_of(phase, client, param).is_empty() => "none in window".into(),
        None => "—".into(),
    }
}

fn runs(r: &Results, phase: Phase, client: ClientKind, param: Option<f64>) -> String {
    let ok = r.runs_of(phase, client, param).len();
    let all = r
        .runs
        .iter()
        .filter(|x| x.phase == phase && x.client == client && param.is_none_or(|p| x.param == p))
        .count();
    if all == ok {
        ok.to_string()
    } else {
        format!("{ok} of {all}")
    }
}

fn configured(r: &Results, phase: Phase) -> Vec<ClientKind> {
    phase
        .clients()
        .iter()
        .copied()
        .filter(|c| r.config.clients.contains(c))
        .collect()
}

fn ran(r: &Results, phase: Phase) -> bool {
    r.config.phases.contains(&phase)
}

/// n/a reasons and failures of a phase, under its table.
fn footnotes(out: &mut String, r: &Results, phase: Phase, param: Option<f64>) {
    for c in configured(r, phase) {
        if let Some(reason) = r.not_applicable(phase, c) {
            let _ = writeln!(out, "- {}: n/a — {reason}.", c.id());
        } else if let Some(e) = r.failure(phase, c, param) {
            let e: String = e.chars().take(240).collect();
            let _ = writeln!(out, "- {}: failed — `{}`", c.id(), e.replace('`', "'"));
        }
    }
    let _ = writeln!(out);
}

fn ratio_cell(num: Option<f64>, den: Option<f64>) -> String {
    match (num, den) {
        (Some(a), Some(b)) if b > 0.0 => ratio(a / b),
        _ => "—".into(),
    }
}

/// How a goal's measured value is computed for one of this project's runtimes.
type GoalValue = Box<dyn Fn(&Results, ClientKind) -> Result<f64, String>>;

/// A goal: `measured ≤ target` (upper) or `measured ≥ target` (lower).
struct Goal {
    text: &'static str,
    target: f64,
    upper: bool,
    fmt: fn(f64) -> String,
    value: GoalValue,
}

fn median_or(
    r: &Results,
    phase: Phase,
    c: ClientKind,
    param: Option<f64>,
    m: Metric,
) -> Result<f64, String> {
    if let Some(reason) = r.not_applicable(phase, c) {
        return Err(format!("n/a: {} — {reason}", c.id()));
    }
    r.median_of(phase, c, param, m)
        .ok_or_else(|| format!("no {} figure for {}", phase.id(), c.id()))
}

fn goals() -> Vec<Goal> {
    let vs = |phase: Phase, peer: ClientKind, param: Option<f64>, m: Metric| {
        move |r: &Results, c: ClientKind| -> Result<f64, String> {
            let ours = median_or(r, phase, c, param, m)?;
            let theirs = median_or(r, phase, peer, param, m)?;
            Ok(ours / theirs)
        }
    };
    vec![
        Goal {
            text: "Producer CPU per message ≤ 1/3 of the Java client's",
            target: 1.0 / 3.0,
            upper: true,
            fmt: ratio,
            value: Box::new(vs(Phase::Produce, ClientKind::Java, None, cpu)),
        },
        Goal {
            text: "Producer CPU per message ≤ 1/8 of pulsar-rs's",
            target: 1.0 / 8.0,
            upper: true,
            fmt: ratio,
            value: Box::new(vs(Phase::Produce, ClientKind::PulsarRs, None, cpu)),
        },
        Goal {
            text: "Producer throughput ≥ the Java client's",
            target: 1.0,
            upper: false,
            fmt: ratio,
            value: Box::new(vs(Phase::Produce, ClientKind::Java, None, msg_per_s)),
        },
        Goal {
            text: "Consumer CPU per message ≤ 1/3 of the Java client's (individual acks)",
            target: 1.0 / 3.0,
            upper: true,
            fmt: ratio,
            value: Box::new(vs(Phase::Consume, ClientKind::Java, None, cpu)),
        },
        Goal {
            text: "p99 publish latency at 10k msg/s ≤ the Java client's",
            target: 1.0,
            upper: true,
            fmt: ratio,
            value: Box::new(vs(Phase::Latency, ClientKind::Java, Some(10_000.0), p99)),
        },
        Goal {
            text: "Transactional producer throughput ≥ the Java client's (100 msg/txn)",
            target: 1.0,
            upper: false,
            fmt: ratio,
            value: Box::new(vs(Phase::TxnProduce, ClientKind::Java, None, msg_per_s)),
        },
        Goal {
            text: "Transactional producer CPU per message ≤ 1/3 of the Java client's",
            target: 1.0 / 3.0,
            upper: true,
            fmt: ratio,
            value: Box::new(vs(Phase::TxnProduce, ClientKind::Java, None, cpu)),
        },
        Goal {
            text: "Idle producer ≤ 2 KiB (worse of batching on / off)",
            target: 2048.0,
            upper: true,
            fmt: bytes,
            value: Box::new(|r: &Results, c: ClientKind| {
                let on = median_or(r, Phase::IdleProducers, c, None, idle_bytes);
                let off = median_or(r, Phase::IdleProducersUnbatched, c, None, idle_bytes);
                match (on, off) {
                    (Ok(a), Ok(b)) => Ok(a.max(b)),
                    (Ok(a), Err(_)) | (Err(_), Ok(a)) => Ok(a),
                    (Err(e), Err(_)) => Err(e),
                }
            }),
        },
        Goal {
            text: "Idle consumer ≤ 4 KiB",
            target: 4096.0,
            upper: true,
            fmt: bytes,
            value: Box::new(|r: &Results, c: ClientKind| {
                median_or(r, Phase::IdleConsumers, c, None, idle_bytes)
            }),
        },
    ]
}

fn goal_cell(g: &Goal, r: &Results, c: ClientKind) -> String {
    match (g.value)(r, c) {
        Err(e) => format!("— ({e})"),
        Ok(v) => {
            let met = if g.upper {
                v <= g.target
            } else {
                v >= g.target
            };
            let by = if g.upper {
                v / g.target
            } else {
                g.target / v.max(1e-12)
            };
            let shown = if g.upper || (v - g.target).abs() > 0.05 * g.target {
                (g.fmt)(v)
            } else {
                format!("{v:.3}×")
            };
            if met {
                format!("{shown} — **met**")
            } else {
                format!(
                    "{shown} — **missed** ({})",
                    if g.upper {
                        format!("{:.2}× the limit", by)
                    } else {
                        format!("{:.1} % of the target", 100.0 / by)
                    }
                )
            }
        }
    }
}

fn section_goals(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Goals\n");
    let _ = writeln!(
        out,
        "Ratios are this project's median divided by the peer's median from the same run \
         (lower is better for CPU and latency, higher for throughput).\n"
    );
    let _ = writeln!(out, "| goal | target | tokio | smol | blocking |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for g in goals() {
        let target = if g.upper {
            format!("≤ {}", (g.fmt)(g.target))
        } else {
            format!("≥ {}", (g.fmt)(g.target))
        };
        let cells: Vec<String> = OURS.iter().map(|&c| goal_cell(&g, r, c)).collect();
        let _ = writeln!(out, "| {} | {target} | {} |", g.text, cells.join(" | "));
    }
    let _ = writeln!(
        out,
        "\nNot measured by this suite: \"no payload copy on the uncompressed consumer path\" \
         (a property of the code: received payloads are slices of the connection's read \
         buffer; the criterion consumer benchmark and the core's tests cover it).\n"
    );
}

fn section_machine(out: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| CPUs | {} × {} ({}) |",
        m.nproc,
        m.cpu_model,
        m.cpu_flags.join(", ")
    );
    let _ = writeln!(out, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(out, "| kernel | {} |", m.kernel);
    let _ = writeln!(
        out,
        "| load average (1/5/15 min) | start {} · end {} |",
        m.load_at_start, m.load_at_end
    );
    let _ = writeln!(out, "| Rust | {} |", m.rustc);
    let _ = writeln!(out, "| Java | {} |", m.java);
    let _ = writeln!(out, "| Python client | pulsar-client {} |", m.python_client);
    let _ = writeln!(out, "| pulsar-rs | {} |", m.pulsar_rs);
    let _ = writeln!(
        out,
        "| broker | Apache Pulsar {} standalone |",
        m.broker_version
    );
    let _ = writeln!(
        out,
        "| broker settings | {} |",
        m.broker_config.join("<br>")
    );
    let _ = writeln!(
        out,
        "\nThe broker, its bookie and every client share these {} CPUs; the machine was shared \
         with other work during the run (see the load averages). Compare ratios measured side \
         by side, not absolute figures across machines. `journalSyncData=false`: the bookie \
         does not fsync its journal, so publish latency is not bounded by the disk.\n",
        m.nproc
    );
}

fn section_method(out: &mut String, r: &Results) {
    let c = &r.config;
    let _ = writeln!(out, "## Method\n");
    let _ = writeln!(
        out,
        "- Every run is one client process started by the harness (`pulsar-bench`), so CPU time \
         and peak RSS are that client's alone. Runs are interleaved (all clients once, then again \
         in rotated order); tables show the median of the successful runs ({} per client for \
         producer throughput, backlog drain and latency at 10k msg/s; one for the others).\n\
         - Same settings everywhere: batches ≤ {BATCH_MAX_MESSAGES} messages / {} KiB / {} ms, \
         {MAX_PENDING} pending messages per producer, 64 MiB client memory limit, no \
         compression, receiver queue 1000, one fresh non-partitioned topic per run (deleted \
         afterwards), {} B payloads unless stated.\n\
         - Throughput: acknowledged messages counted by the client over a {} s window after a \
         {} s warm-up ({} s after {} s for the latency at other rates than the first, the \
         payload sizes and the producer counts); CPU per message = process CPU time (all threads, \
         `CLOCK_PROCESS_CPUTIME_ID`) in the window ÷ messages in the window (the Java client \
         gets a {} s warm-up for its JIT compiler). Peak RSS = `VmHWM`.\n\
         - Backlog drain: one topic per round pre-filled with {} messages by this project's \
         producer, one subscription per consumer run; rate and CPU over the middle 80 % of the \
         backlog (or until a {} s limit). Cumulative runs acknowledge every 1000th message.\n\
         - Latency at a fixed rate: message *i* is scheduled at start + *i*/rate and sent from a \
         thread of its own, which sleeps until the whole millisecond of the schedule at or after \
         the next message's time (on every runtime: tokio's timer granularity) and then sends \
         every message due; latency is receipt time − scheduled time (no coordinated omission), \
         recorded in an HdrHistogram after the warm-up. End to end: the scheduled time travels \
         in the payload to a consumer in the same process.\n\
         - Java: `pulsar-perf` (through `scripts/pulsar-broker perf-produce/perf-consume`, \
         -Xms1g -Xmx1g) with `-i 1`; the harness integrates the Java client's per-second \
         statistics lines (acks received / messages received) and samples the JVM's CPU time \
         from `/proc` as each line arrives. Its fixed-rate latency is pulsar-perf's own \
         aggregated histogram (milliseconds, measured from the actual send call after its rate \
         limiter, so coordinated omission is not corrected).\n\
         - pulsar-rs: tokio current-thread runtime; it has no pending-message limit, so the \
         sending loop keeps at most 10,000 receipts outstanding per producer (fewer when the \
         payloads would exceed 64 MiB); its connection's outbound channel is sized 10,000.\n\
         - Python: the official client (C++ core) driven from Python: a Python call per send \
         and a Python callback per receipt; its percentiles are computed from the sorted samples (the \
         same definition as HdrHistogram's). Its figures are **bound by its Python binding**.\n\
         - This project: tokio on a current-thread runtime (driver and application on one \
         thread), smol with the driver on its global executor, blocking with its driver \
         thread; sends use `send_with_callback`.\n",
        c.runs,
        BATCH_MAX_BYTES / 1024,
        BATCH_DELAY_US as f64 / 1000.0,
        c.payload_size,
        c.measure_s,
        c.warmup_s,
        c.scaling_measure_s,
        c.scaling_warmup_s,
        c.java_warmup_s,
        int(c.drain_messages as f64),
        c.drain_time_limit_s,
    );
}

fn chart(out: &mut String, charts: &Charts, name: &str, alt: &str) {
    match charts.files.iter().find(|(n, _)| n == name) {
        Some((_, path)) => {
            let _ = writeln!(out, "![{alt}]({path})\n");
        }
        None => {
            if let Some(e) = &charts.error {
                let _ = writeln!(out, "_(chart not drawn: {e})_\n");
            }
        }
    }
}

fn section_produce(out: &mut String, r: &Results, charts: &Charts) {
    let phase = Phase::Produce;
    let _ = writeln!(
        out,
        "## Producer throughput ({} B, batching, as fast as possible)\n",
        r.config.payload_size
    );
    let _ = writeln!(
        out,
        "| client | msg/s | MB/s | CPU per msg | peak RSS | msg/s ÷ tokio | CPU ÷ tokio | runs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let tokio_rate = r.median_of(phase, ClientKind::SansioTokio, None, msg_per_s);
    let tokio_cpu = r.median_of(phase, ClientKind::SansioTokio, None, cpu);
    for c in configured(r, phase) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.id(),
            cell(r, phase, c, None, msg_per_s, int),
            cell(r, phase, c, None, mb_per_s, |v| format!("{v:.1}")),
            cell(r, phase, c, None, cpu, cpu_us),
            cell(r, phase, c, None, rss_bytes, bytes),
            ratio_cell(r.median_of(phase, c, None, msg_per_s), tokio_rate),
            ratio_cell(r.median_of(phase, c, None, cpu), tokio_cpu),
            runs(r, phase, c, None),
        );
    }
    let _ = writeln!(out);
    footnotes(out, r, phase, None);
    chart(
        out,
        charts,
        "producer",
        "producer throughput and CPU per message",
    );
}

fn section_txn_produce(out: &mut String, r: &Results) {
    let phase = Phase::TxnProduce;
    let _ = writeln!(
        out,
        "## Transactional producer throughput ({} B, batching, {} messages per transaction)\n",
        r.config.payload_size,
        crate::harness::TXN_MESSAGES
    );
    let _ = writeln!(
        out,
        "Each transaction is committed as soon as its messages are sent, without waiting for the \
         commit (at most {} commits in flight here; `pulsar-perf produce --txn-enable -nmt {}` \
         does the same). This project counts a message when its transaction committed, \
         pulsar-perf when its send was acknowledged. Goal (issue 17): throughput at least \
         Java's, CPU per message at most 1/3 of Java's.\n",
        crate::spec::TXN_IN_FLIGHT,
        crate::harness::TXN_MESSAGES
    );
    throughput_against_java(out, r, phase);
}

fn section_encrypt_produce(out: &mut String, r: &Results) {
    let phase = Phase::EncryptProduce;
    let _ = writeln!(
        out,
        "## Producer throughput with end-to-end encryption ({} B, batching, RSA-2048)\n",
        r.config.payload_size
    );
    let _ = writeln!(
        out,
        "Every batch encrypted with AES-256-GCM under a data key wrapped for the key `{}` \
         (tests/keys/rsa-a.public.pem): this project with `pulsar-crypto`, Java with \
         `pulsar-perf produce --encryption-key-name {} --encryption-key-value-file ...`. Goal \
         (issue 18): throughput at least Java's.\n",
        crate::harness::ENCRYPTION_KEY_NAME,
        crate::harness::ENCRYPTION_KEY_NAME
    );
    throughput_against_java(out, r, phase);
}

/// A phase's throughput table with every client's ratios to Java's (rate and CPU per message),
/// and the phase's footnotes.
fn throughput_against_java(out: &mut String, r: &Results, phase: Phase) {
    let _ = writeln!(
        out,
        "| client | msg/s | MB/s | CPU per msg | peak RSS | msg/s ÷ java | CPU ÷ java | runs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let java_rate = r.median_of(phase, ClientKind::Java, None, msg_per_s);
    let java_cpu = r.median_of(phase, ClientKind::Java, None, cpu);
    for c in configured(r, phase) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.id(),
            cell(r, phase, c, None, msg_per_s, int),
            cell(r, phase, c, None, mb_per_s, |v| format!("{v:.1}")),
            cell(r, phase, c, None, cpu, cpu_us),
            cell(r, phase, c, None, rss_bytes, bytes),
            ratio_cell(r.median_of(phase, c, None, msg_per_s), java_rate),
            ratio_cell(r.median_of(phase, c, None, cpu), java_cpu),
            runs(r, phase, c, None),
        );
    }
    let _ = writeln!(out);
    footnotes(out, r, phase, None);
}

fn section_consume(out: &mut String, r: &Results, charts: &Charts) {
    for (phase, title) in [
        (Phase::Consume, "individual acknowledgements"),
        (
            Phase::ConsumeCumulative,
            "cumulative acknowledgements every 1000 messages",
        ),
    ] {
        if !ran(r, phase) {
            continue;
        }
        let _ = writeln!(
            out,
            "## Consumer: draining a backlog of {} messages ({title})\n",
            int(r.config.drain_messages as f64)
        );
        let _ = writeln!(
            out,
            "| client | msg/s | MB/s | CPU per msg | peak RSS | CPU ÷ tokio | runs |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let tokio_cpu = r.median_of(phase, ClientKind::SansioTokio, None, cpu);
        for c in configured(r, phase) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.id(),
                cell(r, phase, c, None, msg_per_s, int),
                cell(r, phase, c, None, mb_per_s, |v| format!("{v:.1}")),
                cell(r, phase, c, None, cpu, cpu_us),
                cell(r, phase, c, None, rss_bytes, bytes),
                ratio_cell(r.median_of(phase, c, None, cpu), tokio_cpu),
                runs(r, phase, c, None),
            );
        }
        let _ = writeln!(out);
        footnotes(out, r, phase, None);
        let partial: Vec<String> = r
            .runs
            .iter()
            .filter(|x| {
                x.phase == phase && x.result.notes.iter().any(|n| n.starts_with("time limit"))
            })
            .map(|x| format!("{} r{}", x.client.id(), x.round))
            .collect();
        if !partial.is_empty() {
            let _ = writeln!(
                out,
                "Stopped at the time limit before draining everything (window ends there): {}.\n",
                partial.join(", ")
            );
        }
        if phase == Phase::Consume {
            chart(
                out,
                charts,
                "consumer",
                "consumer drain rate and CPU per message",
            );
        }
    }
}

fn latency_rows(out: &mut String, r: &Results, param: f64) {
    let phase = Phase::Latency;
    let _ = writeln!(
        out,
        "| client | offered msg/s | achieved msg/s | p50 | p99 | p99.9 | max | CPU per msg | runs |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for c in configured(r, phase) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.id(),
            cell(r, phase, c, Some(param), offered, int),
            cell(r, phase, c, Some(param), achieved, int),
            cell(r, phase, c, Some(param), p50, latency_us),
            cell(r, phase, c, Some(param), p99, latency_us),
            cell(r, phase, c, Some(param), p999, latency_us),
            cell(r, phase, c, Some(param), pmax, latency_us),
            cell(r, phase, c, Some(param), cpu, cpu_us),
            runs(r, phase, c, Some(param)),
        );
    }
    let _ = writeln!(out);
    footnotes(out, r, phase, Some(param));
}

fn section_latency(out: &mut String, r: &Results, charts: &Charts) {
    let _ = writeln!(out, "## Publish latency at fixed offered rates\n");
    let _ = writeln!(
        out,
        "From the scheduled send time to the broker's receipt. A client that cannot keep up \
         shows it in \"achieved\" and in its latency (the backlog of unsent messages counts).\n"
    );
    for &rate in &r.config.latency_rates {
        let _ = writeln!(out, "### {} msg/s\n", int(rate));
        latency_rows(out, r, rate);
    }
    let _ = writeln!(out, "### Half of each client's own maximum throughput\n");
    latency_rows(out, r, HALF_OF_MAX);
    for n in &r.not_applicable {
        if n.phase == Phase::Latency {
            let _ = writeln!(out, "- {}: {}.", n.client.id(), n.reason);
        }
    }
    chart(
        out,
        charts,
        "latency",
        "publish latency percentiles at 10k msg/s",
    );
}

fn section_e2e(out: &mut String, r: &Results) {
    let phase = Phase::E2e;
    let _ = writeln!(out, "## End-to-end latency at 10,000 msg/s\n");
    let _ = writeln!(
        out,
        "Producer and consumer in one client process; latency from the scheduled send time \
         (carried in the payload) to reception.\n"
    );
    let _ = writeln!(
        out,
        "| client | p50 | p99 | p99.9 | max | publish p50 | publish p99 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for c in configured(r, phase) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.id(),
            cell(r, phase, c, None, e2e_p50, latency_us),
            cell(r, phase, c, None, e2e_p99, latency_us),
            cell(r, phase, c, None, e2e_p999, latency_us),
            cell(r, phase, c, None, e2e_max, latency_us),
            cell(r, phase, c, None, p50, latency_us),
            cell(r, phase, c, None, p99, latency_us),
        );
    }
    let _ = writeln!(out);
    footnotes(out, r, phase, None);
}

/// The per-size CPU points of a client, and their fit.
pub fn payload_fit(r: &Results, c: ClientKind) -> (Vec<(f64, f64)>, Option<LinearFit>) {
    let pts: Vec<(f64, f64)> = r
        .config
        .payload_sizes
        .iter()
        .filter_map(|&s| {
            r.median_of(Phase::PayloadSize, c, Some(s as f64), cpu)
                .map(|v| (s as f64, v))
        })
        .collect();
    let fit = LinearFit::relative(&pts);
    (pts, fit)
}

fn section_payload(out: &mut String, r: &Results, charts: &Charts) {
    let phase = Phase::PayloadSize;
    let clients = configured(r, phase);
    let _ = writeln!(out, "## CPU per message against payload size\n");
    let _ = writeln!(
        out,
        "Producer, batching on; CPU per message (msg/s). Payloads below {} are sent as fast as \
         possible; from {} on at a fixed {} MB/s of payload (at full speed such entries overrun \
         the standalone bookie's 32 MB write cache and the broker fails).\n",
        bytes(LARGE_PAYLOAD as f64),
        bytes(LARGE_PAYLOAD as f64),
        LARGE_PAYLOAD_BYTE_RATE / 1e6
    );
    let _ = writeln!(
        out,
        "| payload | {} |",
        clients
            .iter()
            .map(|c| c.id())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(clients.len()));
    for &s in &r.config.payload_sizes {
        let cells: Vec<String> = clients
            .iter()
            .map(|&c| {
                let p = Some(s as f64);
                let v = cell(r, phase, c, p, cpu, cpu_us);
                match r.median_of(phase, c, p, msg_per_s) {
                    Some(m) => format!("{v} ({})", int(m)),
                    None => v,
                }
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", bytes(s as f64), cells.join(" | "));
    }
    let p = &r.primitives;
    let floor = p.copy_and_crc_ns_per_byte();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Fit CPU µs/msg ≈ a + b·size (least squares on relative errors):\n"
    );
    let _ = writeln!(
        out,
        "| client | a (per message) | b (per payload byte) | b ÷ (memcpy + CRC32C) | b ÷ (memcpy + CRC32C + socket write) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let full_floor = p.floor_ns_per_byte();
    for &c in &clients {
        let (_, fit) = payload_fit(r, c);
        match fit {
            Some(f) => {
                let b_ns = f.b * 1000.0;
                let vs = |d: f64| {
                    if d > 0.0 {
                        ratio(b_ns / d)
                    } else {
                        "—".into()
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.4} ns | {} | {} |",
                    c.id(),
                    cpu_us(f.a.max(0.0)),
                    b_ns,
                    vs(floor),
                    vs(if p.tcp_send_ns_per_byte > 0.0 {
                        full_floor
                    } else {
                        0.0
                    })
                );
            }
            None => {
                let _ = writeln!(out, "| {} | — | — | — | — |", c.id());
            }
        }
    }
    let _ = writeln!(
        out,
        "\nMeasured in the same run, in the harness process: memcpy {:.4} ns/B (1 MiB, cached), \
         {:.4} ns/B (64 MiB, from memory); CRC32C (`crc32c` crate) {:.4} ns/B; one copy plus \
         one checksum = **{:.4} ns/B**. Writing to a loopback TCP socket in 64 KiB writes costs \
         the sending thread {:.4} ns/B more (the kernel's copy, counted in the process's CPU \
         time like every client's): **{:.4} ns/B** is the least a client that copies each \
         payload once, checksums it and writes it can spend per byte.\n",
        p.memcpy_ns_per_byte_cached,
        p.memcpy_ns_per_byte_dram,
        p.crc32c_ns_per_byte,
        floor,
        p.tcp_send_ns_per_byte,
        full_floor
    );
    footnotes(out, r, phase, None);
    chart(
        out,
        charts,
        "payload",
        "CPU per message against payload size",
    );
}

fn section_producers(out: &mut String, r: &Results, charts: &Charts) {
    let phase = Phase::Producers;
    let clients = configured(r, phase);
    let _ = writeln!(out, "## Producers over one connection\n");
    let _ = writeln!(
        out,
        "N producers on one topic and one connection, messages sent round robin as fast as \
         possible ({} B, batching): msg/s and CPU per message.\n",
        r.config.payload_size
    );
    let _ = writeln!(
        out,
        "| producers | {} |",
        clients
            .iter()
            .map(|c| c.id())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(clients.len()));
    for &n in &r.config.producer_counts {
        let cells: Vec<String> = clients
            .iter()
            .map(|&c| {
                let p = Some(n as f64);
                format!(
                    "{} / {}",
                    cell(r, phase, c, p, msg_per_s, int),
                    cell(r, phase, c, p, cpu, cpu_us)
                )
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", int(n as f64), cells.join(" | "));
    }
    let _ = writeln!(out);
    for &n in &r.config.producer_counts {
        for c in &clients {
            if let Some(e) = r.failure(phase, *c, Some(n as f64)) {
                let e: String = e.chars().take(200).collect();
                let _ = writeln!(
                    out,
                    "- {} with {n} producers: failed — `{}`",
                    c.id(),
                    e.replace('`', "'")
                );
            }
        }
    }
    let _ = writeln!(out);
    chart(out, charts, "producers", "producers over one connection");
}

fn section_idle(out: &mut String, r: &Results) {
    let _ = writeln!(out, "## Memory per idle producer and consumer\n");
    let _ = writeln!(
        out,
        "Resident set added by {} more producers (or consumers) on one topic after the first \
         one is open, divided by their number (one connection).\n",
        int(r.config.idle_count as f64)
    );
    let _ = writeln!(
        out,
        "| client | per producer (batching) | per producer (no batching) | per consumer |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let mut clients = configured(r, Phase::IdleProducers);
    clients.push(ClientKind::Java);
    for c in clients {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            c.id(),
            cell(r, Phase::IdleProducers, c, None, idle_bytes, bytes),
            cell(r, Phase::IdleProducersUnbatched, c, None, idle_bytes, bytes),
            cell(r, Phase::IdleConsumers, c, None, idle_bytes, bytes),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "- java: n/a — pulsar-perf cannot hold idle producers or consumers."
    );
    for phase in [
        Phase::IdleProducers,
        Phase::IdleProducersUnbatched,
        Phase::IdleConsumers,
    ] {
        for c in configured(r, phase) {
            if let Some(e) = r.failure(phase, c, None) {
                let e: String = e.chars().take(200).collect();
                let _ = writeln!(
                    out,
                    "- {} ({}): failed — `{}`",
                    c.id(),
                    phase.id(),
                    e.replace('`', "'")
                );
            }
        }
    }
    let _ = writeln!(out);
}

fn section_criterion(out: &mut String, entries: &[CriterionEntry]) {
    let _ = writeln!(out, "## Criterion microbenchmarks (no sockets)\n");
    if entries.is_empty() {
        let _ = writeln!(
            out,
            "No criterion results in `target/criterion` when the report was written \
             (`cargo bench -p pulsar-benches` produces them; `scripts/bench --criterion` runs \
             them first).\n"
        );
        return;
    }
    let _ = writeln!(
        out,
        "Latest `cargo bench -p pulsar-benches` estimates found in `target/criterion` (mean per \
         iteration; per element when the benchmark declares an element count).\n"
    );
    let _ = writeln!(
        out,
        "| benchmark | mean per iteration | per element | elements/s |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for e in entries {
        let per_iter = if e.mean_ns >= 1e6 {
            format!("{:.2} ms", e.mean_ns / 1e6)
        } else if e.mean_ns >= 1e3 {
            format!("{:.2} µs", e.mean_ns / 1e3)
        } else {
            format!("{:.1} ns", e.mean_ns)
        };
        let (per_el, rate) = match e.elements {
            Some(n) if n > 0 => (
                format!("{:.1} ns", e.ns_per_element()),
                int(1e9 / e.ns_per_element()),
            ),
            _ => ("—".into(), "—".into()),
        };
        let _ = writeln!(out, "| `{}` | {per_iter} | {per_el} | {rate} |", e.id);
    }
    let _ = writeln!(out);
}

/// The whole document.
pub fn render(
    r: &Results,
    charts: &Charts,
    criterion: &[CriterionEntry],
    notes: Option<&str>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Generated by `scripts/bench`{} from `benches/report/results.json` (raw numbers; \
         `runs.csv` and `summary.csv` beside it). The run took {:.0} s.\n",
        if r.config.quick { " --quick" } else { "" },
        r.duration_s
    );
    if r.config.quick {
        let _ = writeln!(
            out,
            "> **Quick mode**: one run per client and short windows ({} s warm-up, {} s \
             measured) on a shared machine. These figures check that the harness works; they are \
             not the comparison. Run `scripts/bench` (full) for medians of {} interleaved runs.\n",
            r.config.warmup_s,
            r.config.measure_s,
            Config::full("", "").runs
        );
    }
    let _ = writeln!(
        out,
        "Clients: this project on tokio (`sansio-tokio`), smol (`sansio-smol`) and blocking \
         (`sansio-blocking`); pulsar-rs {} (`pulsar-rs`); the Java client through pulsar-perf \
         (`java`); the official Python client {} (`python`, C++ core, bound by its Python \
         binding).\n",
        r.machine.pulsar_rs, r.machine.python_client
    );
    if ran(r, Phase::Produce) {
        section_goals(&mut out, r);
    }
    if let Some(n) = notes {
        let _ = writeln!(out, "## Analysis\n\n{}\n", n.trim());
    }
    if ran(r, Phase::Produce) {
        section_produce(&mut out, r, charts);
    }
    if ran(r, Phase::Consume) || ran(r, Phase::ConsumeCumulative) {
        section_consume(&mut out, r, charts);
    }
    if ran(r, Phase::Latency) {
        section_latency(&mut out, r, charts);
    }
    if ran(r, Phase::E2e) {
        section_e2e(&mut out, r);
    }
    if ran(r, Phase::PayloadSize) {
        section_payload(&mut out, r, charts);
    }
    if ran(r, Phase::Producers) {
        section_producers(&mut out, r, charts);
    }
    if ran(r, Phase::IdleProducers) || ran(r, Phase::IdleConsumers) {
        section_idle(&mut out, r);
    }
    if ran(r, Phase::TxnProduce) {
        section_txn_produce(&mut out, r);
    }
    if ran(r, Phase::EncryptProduce) {
        section_encrypt_produce(&mut out, r);
    }
    section_criterion(&mut out, criterion);
    section_method(&mut out, r);
    section_machine(&mut out, r);
    out
}
