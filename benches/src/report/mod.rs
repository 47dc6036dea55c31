//! The report: `BENCHMARKS.md`, PNG charts, and the raw numbers as CSV beside `results.json`.

pub mod charts;
pub mod criterion;
pub mod format;
pub mod markdown;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::BenchError;
use crate::harness::clients::{ClientKind, Phase};
use crate::harness::results::Results;
use crate::spec::ClientResult;

use charts::{Bars, Line, Lines};

/// The charts drawn (name, path for the Markdown), or why none could be.
#[derive(Debug, Default)]
pub struct Charts {
    /// (name, relative path) of every chart written.
    pub files: Vec<(String, String)>,
    /// Why charts are missing.
    pub error: Option<String>,
}

fn csv_escape(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// Every run, one line each.
pub fn runs_csv(r: &Results) -> String {
    let mut out = String::from(
        "phase,client,variant,param,round,ok,error,msg_per_s,mb_per_s,cpu_us_per_msg,\
         window_messages,window_s,window_cpu_s,peak_rss_kib,total_cpu_s,offered_rate,\
         achieved_rate,p50_us,p99_us,p999_us,max_us,e2e_p50_us,e2e_p99_us,e2e_p999_us,\
         e2e_max_us,idle_bytes_per_item,wall_s\n",
    );
    for x in &r.runs {
        let m = &x.result;
        let l = m.latency.as_ref();
        let e = m.e2e.as_ref();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            x.phase.id(),
            x.client.id(),
            csv_escape(&x.variant),
            x.param,
            x.round,
            x.error.is_none(),
            csv_escape(x.error.as_deref().unwrap_or("")),
            m.msg_per_s,
            m.mb_per_s,
            m.cpu_us_per_msg,
            m.window_messages,
            m.window_s,
            m.window_cpu_s,
            m.peak_rss_kib,
            m.total_cpu_s,
            m.offered_rate,
            m.achieved_rate,
            opt(l.map(|l| l.p50_us)),
            opt(l.map(|l| l.p99_us)),
            opt(l.map(|l| l.p999_us)),
            opt(l.map(|l| l.max_us)),
            opt(e.map(|l| l.p50_us)),
            opt(e.map(|l| l.p99_us)),
            opt(e.map(|l| l.p999_us)),
            opt(e.map(|l| l.max_us)),
            opt(m.idle.as_ref().map(|i| i.bytes_per_item)),
            x.wall_s,
        );
    }
    out
}

/// Medians per (phase, client, param).
pub fn summary_csv(r: &Results) -> String {
    let mut out = String::from(
        "phase,client,variant,param,runs_ok,msg_per_s,mb_per_s,cpu_us_per_msg,peak_rss_kib,\
         achieved_rate,p50_us,p99_us,p999_us,max_us,e2e_p50_us,e2e_p99_us,idle_bytes_per_item\n",
    );
    let mut keys: Vec<(Phase, ClientKind, u64, String)> = Vec::new();
    for x in &r.runs {
        let k = (x.phase, x.client, x.param.to_bits(), x.variant.clone());
        if !keys.iter().any(|y| y.0 == k.0 && y.1 == k.1 && y.2 == k.2) {
            keys.push(k);
        }
    }
    for (phase, client, bits, variant) in keys {
        let p = Some(f64::from_bits(bits));
        let med = |m: fn(&ClientResult) -> Option<f64>| opt(r.median_of(phase, client, p, m));
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            phase.id(),
            client.id(),
            csv_escape(&variant),
            f64::from_bits(bits),
            r.runs_of(phase, client, p).len(),
            med(|m| Some(m.msg_per_s)),
            med(|m| Some(m.mb_per_s)),
            med(|m| Some(m.cpu_us_per_msg)),
            med(|m| Some(m.peak_rss_kib as f64)),
            med(|m| Some(m.achieved_rate)),
            med(|m| m.latency.as_ref().map(|l| l.p50_us)),
            med(|m| m.latency.as_ref().map(|l| l.p99_us)),
            med(|m| m.latency.as_ref().map(|l| l.p999_us)),
            med(|m| m.latency.as_ref().map(|l| l.max_us)),
            med(|m| m.e2e.as_ref().map(|l| l.p50_us)),
            med(|m| m.e2e.as_ref().map(|l| l.p99_us)),
            med(|m| m.idle.as_ref().map(|i| i.bytes_per_item)),
        );
    }
    out
}

fn clients_of(r: &Results, phase: Phase) -> Vec<ClientKind> {
    phase
        .clients()
        .iter()
        .copied()
        .filter(|c| r.config.clients.contains(c))
        .collect()
}

fn draw_all(r: &Results, out_dir: &Path, rel: &str) -> Result<Vec<(String, String)>, BenchError> {
    let mut files = Vec::new();
    let path = |name: &str| out_dir.join(format!("{name}.png"));
    let mut done = |name: &str| {
        let file = if rel.is_empty() {
            format!("{name}.png")
        } else {
            format!("{rel}/{name}.png")
        };
        files.push((name.to_owned(), file))
    };
    let k = |v: f64| format!("{:.0}k", v / 1000.0);
    let us = |v: f64| format!("{v:.2}");
    for (phase, name, title) in [
        (Phase::Produce, "producer", "Producer"),
        (Phase::Consume, "consumer", "Consumer drain"),
    ] {
        if !r.config.phases.contains(&phase) {
            continue;
        }
        let cs = clients_of(r, phase);
        let labels: Vec<String> = cs.iter().map(|c| c.id().to_owned()).collect();
        let rate: Vec<Option<f64>> = cs
            .iter()
            .map(|&c| r.median_of(phase, c, None, |m| Some(m.msg_per_s)))
            .collect();
        let cpu: Vec<Option<f64>> = cs
            .iter()
            .map(|&c| r.median_of(phase, c, None, |m| Some(m.cpu_us_per_msg)))
            .collect();
        let t1 = format!("{title}: msg/s ({} B)", r.config.payload_size);
        let t2 = format!("{title}: CPU µs per message");
        charts::bar_panels(
            &path(name),
            &[
                Bars {
                    title: &t1,
                    y_desc: "messages per second",
                    labels: &labels,
                    values: &rate,
                    fmt: &k,
                },
                Bars {
                    title: &t2,
                    y_desc: "µs CPU per message",
                    labels: &labels,
                    values: &cpu,
                    fmt: &us,
                },
            ],
        )?;
        done(name);
    }
    if r.config.phases.contains(&Phase::Latency) {
        let cs = clients_of(r, Phase::Latency);
        let labels: Vec<String> = cs.iter().map(|c| c.id().to_owned()).collect();
        let get = |f: fn(&ClientResult) -> Option<f64>| -> Vec<Option<f64>> {
            cs.iter()
                .map(|&c| {
                    r.median_of(Phase::Latency, c, Some(10_000.0), f)
                        .map(|v| v / 1000.0)
                })
                .collect()
        };
        let p50 = get(|m| m.latency.as_ref().map(|l| l.p50_us));
        let p99 = get(|m| m.latency.as_ref().map(|l| l.p99_us));
        let ms = |v: f64| format!("{v:.1}");
        charts::bar_panels(
            &path("latency"),
            &[
                Bars {
                    title: "Publish latency p50 at 10k msg/s",
                    y_desc: "ms",
                    labels: &labels,
                    values: &p50,
                    fmt: &ms,
                },
                Bars {
                    title: "Publish latency p99 at 10k msg/s",
                    y_desc: "ms",
                    labels: &labels,
                    values: &p99,
                    fmt: &ms,
                },
            ],
        )?;
        done("latency");
    }
    if r.config.phases.contains(&Phase::PayloadSize) {
        let mut lines = Vec::new();
        for c in clients_of(r, Phase::PayloadSize) {
            let (pts, fit) = markdown::payload_fit(r, c);
            if pts.is_empty() {
                continue;
            }
            lines.push(Line {
                name: c.id().to_owned(),
                points: pts.clone(),
                dashed: false,
            });
            if let Some(f) = fit {
                let fitted: Vec<(f64, f64)> = pts.iter().map(|&(x, _)| (x, f.at(x))).collect();
                lines.push(Line {
                    name: c.id().to_owned(),
                    points: fitted,
                    dashed: true,
                });
            }
        }
        charts::line_panels(
            &path("payload"),
            &[Lines {
                title: "CPU per message vs payload (dashed: a + b·size fit)",
                x_desc: "payload bytes",
                y_desc: "µs CPU per message",
                log_x: true,
                log_y: true,
                lines: &lines,
            }],
        )?;
        done("payload");
    }
    if r.config.phases.contains(&Phase::Producers) {
        let mut rate = Vec::new();
        let mut cpu = Vec::new();
        for c in clients_of(r, Phase::Producers) {
            let pts = |f: fn(&ClientResult) -> Option<f64>| -> Vec<(f64, f64)> {
                r.config
                    .producer_counts
                    .iter()
                    .filter_map(|&n| {
                        r.median_of(Phase::Producers, c, Some(n as f64), f)
                            .map(|v| (n as f64, v))
                    })
                    .collect()
            };
            rate.push(Line {
                name: c.id().to_owned(),
                points: pts(|m| Some(m.msg_per_s)),
                dashed: false,
            });
            cpu.push(Line {
                name: c.id().to_owned(),
                points: pts(|m| Some(m.cpu_us_per_msg)),
                dashed: false,
            });
        }
        charts::line_panels(
            &path("producers"),
            &[
                Lines {
                    title: "Producers on one connection: msg/s",
                    x_desc: "producers",
                    y_desc: "messages per second",
                    log_x: true,
                    log_y: false,
                    lines: &rate,
                },
                Lines {
                    title: "Producers on one connection: CPU",
                    x_desc: "producers",
                    y_desc: "µs CPU per message",
                    log_x: true,
                    log_y: true,
                    lines: &cpu,
                },
            ],
        )?;
        done("producers");
    }
    Ok(files)
}

/// `out_dir` as seen from the directory of `md`.
fn relative(out_dir: &Path, md: &Path) -> String {
    let base = md.parent().filter(|p| !p.as_os_str().is_empty());
    let rel: PathBuf = match base {
        Some(b) => out_dir
            .strip_prefix(b)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| out_dir.to_path_buf()),
        None => out_dir.to_path_buf(),
    };
    rel.to_string_lossy().trim_start_matches("./").to_owned()
}

/// Writes the CSV files and charts into `out_dir` and the Markdown report to `md`.
pub fn write(
    r: &Results,
    out_dir: &Path,
    md: &Path,
    criterion_dir: &Path,
) -> Result<(), BenchError> {
    std::fs::create_dir_all(out_dir).map_err(BenchError::io("creating the report directory"))?;
    std::fs::write(out_dir.join("runs.csv"), runs_csv(r))
        .map_err(BenchError::io("writing runs.csv"))?;
    std::fs::write(out_dir.join("summary.csv"), summary_csv(r))
        .map_err(BenchError::io("writing summary.csv"))?;
    let rel = relative(out_dir, md);
    let charts = match draw_all(r, out_dir, &rel) {
        Ok(files) => Charts { files, error: None },
        Err(e) => Charts {
            files: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    let criterion = criterion::collect(criterion_dir);
    let notes = std::fs::read_to_string(out_dir.join("notes.md")).ok();
    let text = markdown::render(r, &charts, &criterion, notes.as_deref());
    std::fs::write(md, text).map_err(BenchError::io(format!("writing {}", md.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_escaped() {
        assert_eq!(csv_escape("plain"), "plain");
        assert_eq!(csv_escape("a,b"), "\"a,b\"");
        assert_eq!(csv_escape("say \"x\""), "\"say \"\"x\"\"\"");
    }

    #[test]
    fn chart_paths_are_relative_to_the_markdown() {
        assert_eq!(
            relative(Path::new("benches/report"), Path::new("BENCHMARKS.md")),
            "benches/report"
        );
        assert_eq!(
            relative(
                Path::new("/r/benches/report"),
                Path::new("/r/BENCHMARKS.md")
            ),
            "benches/report"
        );
    }
}
