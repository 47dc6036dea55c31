//! The comparison harness: `scripts/bench` runs it.
//!
//! ```text
//! pulsar-bench run [--quick] [--clients sansio-tokio,java,...] [--phases produce,latency,...]
//!                  [--out benches/report] [--md BENCHMARKS.md] [--url pulsar://127.0.0.1:6650]
//!                  [--web-url http://127.0.0.1:8080] [--repo .] [--bin-dir target/release]
//!                  [--python PYTHON] [--broker-home .pulsar] [--criterion target/criterion]
//! pulsar-bench report [--out benches/report] [--md BENCHMARKS.md] [--criterion target/criterion]
//! ```
//!
//! `run` starts every client as a process of its own against a running broker, writes
//! `<out>/results.json` and then the report; `report` regenerates the report (Markdown, charts,
//! CSV) from `<out>/results.json`.
//!
//! `--python` defaults to the tests' interpreter (`PULSAR_TEST_PYTHON`, else the project's
//! `.venv`, else `python3`: `pulsar_tests::support::python_interpreter`).

use std::path::PathBuf;

use pulsar_benches::harness::clients::{ClientKind, Phase};
use pulsar_benches::harness::machine::Machine;
use pulsar_benches::harness::process::Launcher;
use pulsar_benches::harness::results::{Config, Results};
use pulsar_benches::harness::Harness;
use pulsar_benches::report;
use pulsar_benches::BenchError;

struct Args {
    command: String,
    quick: bool,
    clients: Option<Vec<ClientKind>>,
    phases: Option<Vec<Phase>>,
    out: PathBuf,
    md: PathBuf,
    url: String,
    web_url: String,
    repo: PathBuf,
    bin_dir: PathBuf,
    python: String,
    broker_home: PathBuf,
    criterion: PathBuf,
}

fn parse() -> Result<Args, BenchError> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_default();
    let mut a = Args {
        command,
        quick: false,
        clients: None,
        phases: None,
        out: PathBuf::from("benches/report"),
        md: PathBuf::from("BENCHMARKS.md"),
        url: "pulsar://127.0.0.1:6650".into(),
        web_url: "http://127.0.0.1:8080".into(),
        repo: PathBuf::from("."),
        bin_dir: PathBuf::from("target/release"),
        python: pulsar_tests::support::python_interpreter()
            .to_string_lossy()
            .into_owned(),
        broker_home: PathBuf::from(".pulsar"),
        criterion: PathBuf::from("target/criterion"),
    };
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            a.quick = true;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--clients" => {
                let list = value
                    .split(',')
                    .map(|s| {
                        ClientKind::from_id(s)
                            .ok_or_else(|| BenchError::Usage(format!("unknown client {s}")))
                    })
                    .collect::<Result<_, _>>()?;
                a.clients = Some(list);
            }
            "--phases" => {
                let list = value
                    .split(',')
                    .map(|s| {
                        Phase::from_id(s)
                            .ok_or_else(|| BenchError::Usage(format!("unknown phase {s}")))
                    })
                    .collect::<Result<_, _>>()?;
                a.phases = Some(list);
            }
            "--out" => a.out = value.into(),
            "--md" => a.md = value.into(),
            "--url" => a.url = value,
            "--web-url" => a.web_url = value,
            "--repo" => a.repo = value.into(),
            "--bin-dir" => a.bin_dir = value.into(),
            "--python" => a.python = value,
            "--broker-home" => a.broker_home = value.into(),
            "--criterion" => a.criterion = value.into(),
            other => return Err(BenchError::Usage(format!("unknown option {other}"))),
        }
    }
    Ok(a)
}

fn load(path: &std::path::Path) -> Result<Results, BenchError> {
    let text =
        std::fs::read_to_string(path).map_err(BenchError::io(format!("{}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| BenchError::Run(format!("{}: {e}", path.display())))
}

fn main_() -> Result<(), BenchError> {
    let a = parse()?;
    let results_path = a.out.join("results.json");
    match a.command.as_str() {
        "run" => {
            let mut config = if a.quick {
                Config::quick(&a.url, &a.web_url)
            } else {
                Config::full(&a.url, &a.web_url)
            };
            if let Some(c) = a.clients.clone() {
                config.clients = c;
            }
            if let Some(p) = a.phases.clone() {
                config.phases = p;
            }
            let log_dir = a.repo.join("target/bench-logs");
            std::fs::create_dir_all(&log_dir)
                .map_err(BenchError::io("creating target/bench-logs"))?;
            std::fs::create_dir_all(&a.out)
                .map_err(BenchError::io("creating the report directory"))?;
            let launcher = Launcher {
                bin_dir: a.bin_dir.clone(),
                repo: a.repo.clone(),
                python: a.python.clone(),
                log_dir,
            };
            let machine = Machine::describe(&a.repo, &a.broker_home, &a.python);
            let harness = Harness::new(config, launcher, machine)?;
            let (results, failure) = harness.run();
            let json = serde_json::to_string_pretty(&results)
                .map_err(|e| BenchError::Run(format!("results: {e}")))?;
            std::fs::write(&results_path, json).map_err(BenchError::io("writing results.json"))?;
            eprintln!(
                "results: {} ({:.0} s)",
                results_path.display(),
                results.duration_s
            );
            report::write(&results, &a.out, &a.md, &a.criterion)?;
            eprintln!("report: {}", a.md.display());
            match failure {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        "report" => {
            let results = load(&results_path)?;
            report::write(&results, &a.out, &a.md, &a.criterion)?;
            eprintln!("report: {}", a.md.display());
            Ok(())
        }
        _ => Err(BenchError::Usage(
            "pulsar-bench run|report [options] (see the source's header)".into(),
        )),
    }
}

fn main() {
    if let Err(e) = main_() {
        eprintln!("pulsar-bench: {e}");
        std::process::exit(1);
    }
}
