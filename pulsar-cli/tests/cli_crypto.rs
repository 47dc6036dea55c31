//! The encryption flags on the real broker: `produce -ekn -ekv` (a file:// URI), `read` and
//! `consume` with `-ekv` (a path, a data: URI), and a read without the key that gets nothing.

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine as _;
use pulsar_tests::support::{broker, unique_topic};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BIN: &str = env!("CARGO_BIN_EXE_pulsar-cli");

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/keys")
        .join(name)
}

/// Runs the CLI (every receive below has a --timeout, so it ends).
fn cli(args: &[&str]) -> Result<Output, std::io::Error> {
    Command::new(BIN)
        .args(["--url", &broker().service_url])
        .args(args)
        .env_remove("PULSAR_SERVICE_URL")
        .output()
}

fn contents(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("key:[null], content:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn encrypted_produce_then_read_and_consume_with_the_private_key() -> TestResult {
    let topic = unique_topic("cli-crypto");
    let public = format!("file://{}", key("rsa-a.public.pem").display());
    let out = cli(&[
        "produce", &topic, "-m", "one,two", "-ekn", "rsa-a", "-ekv", &public,
    ])?;
    assert!(out.status.success(), "{out:?}");

    let private = key("rsa-a.private.pem");
    let out = cli(&[
        "read",
        &topic,
        "-m",
        "earliest",
        "-n",
        "2",
        "--timeout",
        "20",
        "-ekv",
        &private.display().to_string(),
    ])?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(contents(&out), ["one", "two"]);

    let pem = std::fs::read(&private)?;
    let data = format!(
        "data:application/x-pem-file;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(pem)
    );
    let out = cli(&[
        "consume",
        &topic,
        "-s",
        "sub",
        "-p",
        "Earliest",
        "-n",
        "2",
        "--timeout",
        "20",
        "--encryption-key-value-file",
        &data,
    ])?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(contents(&out), ["one", "two"]);

    // without the key: nothing is delivered (the consumer's FAIL action)
    let out = cli(&[
        "read",
        &topic,
        "-m",
        "earliest",
        "-n",
        "1",
        "--timeout",
        "3",
    ])?;
    assert!(!out.status.success(), "{out:?}");
    assert!(contents(&out).is_empty());

    // -ekn without -ekv is a usage error
    let out = cli(&["produce", &topic, "-m", "x", "-ekn", "rsa-a"])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-ekv"));
    Ok(())
}
