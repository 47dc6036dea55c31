//! Runs the built `pulsar-cli` binary against the real broker (the shared one on 6650, found or
//! started by the test-support library) and, for authentication and TLS, a broker of this test's
//! own with token authentication and mutual TLS (separate home and ports, stopped by PID at the
//! end).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pulsar_tests::support::{broker, unique_topic, BrokerOptions, BrokerProcess};
use serde_json::Value;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BIN: &str = env!("CARGO_BIN_EXE_pulsar-cli");

/// The outcome of one run.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn ok(&self) -> Result<&Self, String> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            Err(format!("pulsar-cli failed: {self:?}"))
        }
    }

    fn json_lines(&self) -> Result<Vec<Value>, String> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l:?}")))
            .collect()
    }

    /// A failure printed as exactly one line on stderr.
    fn one_error_line(&self) -> Result<&str, String> {
        if self.code == Some(0) || self.code.is_none() {
            return Err(format!("expected a non-zero exit: {self:?}"));
        }
        let lines: Vec<&str> = self.stderr.lines().collect();
        match lines.as_slice() {
            [line] if line.starts_with("pulsar-cli: error: ") => Ok(line),
            _ => Err(format!("expected one error line on stderr: {self:?}")),
        }
    }
}

/// Runs the binary, killing it after `limit`.
fn cli(args: &[&str], limit: Duration) -> Result<Run, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("PULSAR_SERVICE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().map_err(|_| "stdout reader panicked")?,
        stderr: err.join().map_err(|_| "stderr reader panicked")?,
        elapsed: started.elapsed(),
    };
    if status.is_none() {
        return Err(format!("pulsar-cli {args:?} still running after {limit:?}: {run:?}").into());
    }
    Ok(run)
}

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn produce_consume_and_read_round_trip_in_json() -> TestResult {
    let url = broker().service_url.clone();
    let topic = unique_topic("cli-roundtrip");
    let produced = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "produce",
            &topic,
            "-m",
            "first,second",
            "-m",
            "third",
            "-n",
            "2",
            "-k",
            "the-key",
            "-p",
            "a=1",
            "-p",
            "b=two",
        ],
        LIMIT,
    )?;
    let receipts = produced.ok()?.json_lines()?;
    assert_eq!(receipts.len(), 6, "{produced:?}");
    assert!(
        produced.stderr.contains("6 messages successfully produced"),
        "{produced:?}"
    );
    let ids: Vec<String> = receipts
        .iter()
        .map(|r| {
            r["message_id"]
                .as_str()
                .map(str::to_string)
                .ok_or("no message_id")
        })
        .collect::<Result<_, _>>()?;

    // a binary payload comes back as base64
    let file = std::env::temp_dir().join(format!("cli-binary-{}", std::process::id()));
    std::fs::write(&file, [0xffu8, 0x00, 0xfe, b'x'])?;
    let binary = cli(
        &[
            "--url",
            &url,
            "produce",
            &topic,
            "-f",
            &file.to_string_lossy(),
        ],
        LIMIT,
    );
    let _ = std::fs::remove_file(&file);
    binary?.ok()?;

    let consumed = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "consume",
            &topic,
            "-s",
            "cli-sub",
            "-p",
            "Earliest",
            "-n",
            "7",
            "--timeout",
            "30",
        ],
        LIMIT,
    )?;
    let messages = consumed.ok()?.json_lines()?;
    assert_eq!(messages.len(), 7, "{consumed:?}");
    let payloads: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["payload"].as_str())
        .collect();
    assert_eq!(
        payloads,
        ["first", "second", "third", "first", "second", "third", "/wD+eA=="]
    );
    for (m, id) in messages.iter().zip(&ids) {
        assert_eq!(m["message_id"].as_str(), Some(id.as_str()));
        assert_eq!(m["key"].as_str(), Some("the-key"));
        assert_eq!(m["properties"], serde_json::json!({"a": "1", "b": "two"}));
        assert_eq!(m["payload_encoding"].as_str(), Some("utf8"));
        assert_eq!(m["redelivery_count"].as_u64(), Some(0));
        assert!(
            m["topic"].as_str().is_some_and(|t| t.ends_with(&topic)),
            "{m}"
        );
        assert!(
            m["publish_time"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000),
            "{m}"
        );
        assert!(m["event_time"].is_null());
    }
    assert_eq!(messages[6]["payload_encoding"].as_str(), Some("base64"));
    assert!(messages[6]["key"].is_null());

    // the subscription acknowledged everything: nothing more within the timeout
    let again = cli(
        &[
            "--url",
            &url,
            "consume",
            &topic,
            "-s",
            "cli-sub",
            "-n",
            "1",
            "--timeout",
            "2",
        ],
        LIMIT,
    )?;
    let line = again.one_error_line()?;
    assert!(line.contains("received 0 of 1"), "{line}");

    // read from the earliest message, then after / at a given id
    let read = |extra: &[&str], n: &str| -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let mut args = vec![
            "--url",
            url.as_str(),
            "--format",
            "json",
            "read",
            topic.as_str(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-n", n, "--timeout", "30"]);
        Ok(cli(&args, LIMIT)?.ok()?.json_lines()?)
    };
    let all = read(&["-m", "earliest"], "7")?;
    assert_eq!(all, messages, "read from earliest sees the same messages");
    let after = read(&["-m", &ids[1]], "2")?;
    assert_eq!(after[0]["message_id"].as_str(), Some(ids[2].as_str()));
    let at = read(&["-m", &ids[1], "-i"], "1")?;
    assert_eq!(at[0]["message_id"].as_str(), Some(ids[1].as_str()));
    Ok(())
}

#[test]
fn text_output_matches_the_java_tool() -> TestResult {
    let url = broker().service_url.clone();
    let topic = unique_topic("cli-text");
    cli(
        &[
            "--url", &url, "produce", &topic, "-m", "hello", "-k", "k", "-p", "x=y",
        ],
        LIMIT,
    )?
    .ok()?;
    let consumed = cli(
        &[
            "--url",
            &url,
            "consume",
            &topic,
            "-s",
            "s",
            "-p",
            "Earliest",
            "--timeout",
            "30",
        ],
        LIMIT,
    )?;
    assert_eq!(
        consumed.ok()?.stdout,
        "----- got message -----\nkey:[k], properties:[x=y], content:hello\n"
    );
    Ok(())
}

#[test]
fn bad_url_is_one_clear_error() -> TestResult {
    for url in [
        "http://127.0.0.1:6650",
        "pulsar://",
        "pulsar://host:notaport",
    ] {
        let run = cli(&["--url", url, "produce", "t", "-m", "x"], LIMIT)?;
        let line = run.one_error_line()?;
        assert!(line.contains("invalid service URL"), "{url}: {line}");
        assert!(run.elapsed < Duration::from_secs(5), "{run:?}");
        assert!(run.stdout.is_empty());
    }
    // usage errors exit with 2
    let run = cli(&["consume", "t"], LIMIT)?;
    assert_eq!(run.code, Some(2), "{run:?}");
    Ok(())
}

#[test]
fn unreachable_broker_fails_within_the_timeouts() -> TestResult {
    let run = cli(
        &[
            "--url",
            "pulsar://127.0.0.1:1",
            "--connection-timeout",
            "2",
            "--operation-timeout",
            "4",
            "produce",
            "t",
            "-m",
            "x",
        ],
        LIMIT,
    )?;
    let line = run.one_error_line()?;
    assert!(
        line.contains("cannot connect") && line.contains("127.0.0.1:1"),
        "{line}"
    );
    assert!(
        run.elapsed < Duration::from_secs(12),
        "took {:?}",
        run.elapsed
    );
    Ok(())
}

#[test]
fn perf_stats_interval_seconds_and_max_outstanding_across_partitions() -> TestResult {
    let info = broker();
    let url = info.service_url.clone();
    // -i 1: an interim report on stderr about every second; -i 0: only the final one on stdout
    let interim = |seconds: &str| -> Result<usize, Box<dyn std::error::Error>> {
        let topic = unique_topic("cli-perf-i");
        let run = cli(
            &[
                "--url", &url, "perf", "produce", &topic, "-r", "100", "-time", "3", "-i", seconds,
            ],
            LIMIT,
        )?;
        run.ok()?;
        assert!(run.stdout.starts_with("produce: "), "{run:?}");
        Ok(run
            .stderr
            .lines()
            .filter(|l| l.starts_with("produce: "))
            .count())
    };
    let reports = interim("1")?;
    assert!((2..=4).contains(&reports), "{reports} interim reports");
    assert_eq!(interim("0")?, 0);

    // -p 1: one message outstanding at a time, so every message is an entry of its own; the
    // default bound lets them share batches
    let entries = |bound: &[&str]| -> Result<u64, Box<dyn std::error::Error>> {
        let topic = unique_topic("cli-perf-p");
        let mut args = vec![
            "--url", &url, "perf", "produce", &topic, "-r", "0", "-s", "10", "-m", "100",
        ];
        args.extend_from_slice(bound);
        cli(&args, LIMIT)?.ok()?;
        let local = topic.rsplit('/').next().ok_or("topic name")?;
        let stats = info.admin()?.get_json(&format!(
            "/admin/v2/persistent/public/default/{local}/internalStats"
        ))?;
        Ok(stats["numberOfEntries"]
            .as_u64()
            .ok_or(format!("no numberOfEntries in {stats}"))?)
    };
    assert_eq!(entries(&["-p", "1"])?, 100);
    let batched = entries(&[])?;
    assert!(batched < 100, "{batched} entries without -p");
    Ok(())
}

#[test]
fn unresolvable_host_is_named_within_the_initial_connection_timeout() -> TestResult {
    let run = cli(
        &[
            "--url",
            "pulsar://nonexistent.invalid:6650",
            "produce",
            "t",
            "-m",
            "x",
        ],
        LIMIT,
    )?;
    let line = run.one_error_line()?;
    assert!(
        line.contains("cannot resolve nonexistent.invalid:6650"),
        "{line}"
    );
    assert!(line.contains("--initial-connection-timeout"), "{line}");
    // within the default --initial-connection-timeout (5 s), with margin for a slow resolver
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    Ok(())
}

#[test]
fn value_schema_string_is_registered_and_a_json_producer_is_then_refused() -> TestResult {
    let info = broker();
    let url = info.service_url.clone();
    let topic = unique_topic("cli-schema");
    cli(
        &[
            "--url", &url, "produce", &topic, "-vs", "string", "-m", "hello",
        ],
        LIMIT,
    )?
    .ok()?;
    let local = topic.rsplit('/').next().ok_or("topic name")?;
    let schema = info
        .admin()?
        .get_json(&format!("/admin/v2/schemas/public/default/{local}/schema"))?;
    assert_eq!(schema["type"].as_str(), Some("STRING"), "{schema}");

    // the broker's default compatibility (FULL, no automatic type change) refuses a JSON schema
    // on a topic whose schema is STRING
    let definition =
        r#"json:{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
    let run = cli(
        &[
            "--url",
            &url,
            "produce",
            &topic,
            "--value-schema",
            definition,
            "-m",
            r#"{"id":1}"#,
        ],
        LIMIT,
    )?;
    let line = run.one_error_line()?;
    assert!(line.contains("incompatible schema"), "{line}");
    assert!(line.contains("--value-schema"), "{line}");
    assert!(
        line.contains("exists schema type STRING, new schema type JSON"),
        "{line}"
    );
    assert_eq!(run.code, Some(1), "{run:?}");

    // a new topic takes the JSON schema with its definition
    let json_topic = unique_topic("cli-schema-json");
    cli(
        &[
            "--url",
            &url,
            "produce",
            &json_topic,
            "-vs",
            definition,
            "-m",
            r#"{"id":7}"#,
        ],
        LIMIT,
    )?
    .ok()?;
    let local = json_topic.rsplit('/').next().ok_or("topic name")?;
    let schema = info
        .admin()?
        .get_json(&format!("/admin/v2/schemas/public/default/{local}/schema"))?;
    assert_eq!(schema["type"].as_str(), Some("JSON"), "{schema}");
    let stored: Value = serde_json::from_str(schema["data"].as_str().ok_or("no data")?)?;
    assert_eq!(stored["name"].as_str(), Some("User"), "{schema}");

    // kinds not supported, and payloads that do not fit, are usage errors before connecting
    for (args, expected) in [
        (vec!["-vs", "avro:{}"], "avro:<definition>"),
        (vec!["-vs", "protobuf"], "not supported"),
        (vec!["-kvet", "separated"], "needs a key-value schema"),
        (vec!["-ks", "string"], "-kvk"),
        (vec!["-vs", "json"], "needs the record definition"),
        (vec!["-vs", definition, "-m", "not json"], "is not JSON"),
    ] {
        let mut all = vec!["--url", "pulsar://127.0.0.1:1", "produce", "t", "-m", "{}"];
        all.extend_from_slice(&args);
        let run = cli(&all, LIMIT)?;
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(
            run.one_error_line()?.contains(expected),
            "{args:?}: {run:?}"
        );
        assert!(run.elapsed < Duration::from_secs(4), "{run:?}");
    }
    Ok(())
}

#[test]
fn avro_and_key_value_messages_are_printed_as_json_with_auto_consume() -> TestResult {
    let url = broker().service_url.clone();
    let user = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}]}"#;
    let avro = format!("avro:{user}");
    let avro_topic = unique_topic("cli-avro");
    cli(
        &[
            "--url",
            &url,
            "produce",
            &avro_topic,
            "-vs",
            &avro,
            "-s",
            ";",
            "-m",
            r#"{"id":1,"name":"ada"};{"id":2}"#,
        ],
        LIMIT,
    )?
    .ok()?;
    let kv_topic = unique_topic("cli-kv");
    cli(
        &[
            "--url",
            &url,
            "produce",
            &kv_topic,
            "-ks",
            "string",
            "-vs",
            &avro,
            "-kvet",
            "separated",
            "-kvk",
            "the-key",
            "-s",
            ";",
            "-m",
            r#"{"id":3,"name":"kv"}"#,
        ],
        LIMIT,
    )?
    .ok()?;
    let avro_values = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "consume",
            &avro_topic,
            "-s",
            "s",
            "-p",
            "Earliest",
            "-st",
            "auto_consume",
            "-n",
            "2",
        ],
        LIMIT,
    )?
    .ok()?
    .json_lines()?;
    let values: Vec<&Value> = avro_values.iter().map(|m| &m["value"]).collect();
    assert_eq!(
        values,
        [
            &serde_json::json!({"id": 1, "name": "ada"}),
            &serde_json::json!({"id": 2, "name": null})
        ],
        "{avro_values:?}"
    );
    let kv = cli(
        &[
            "--url",
            &url,
            "read",
            &kv_topic,
            "-m",
            "earliest",
            "-st",
            "auto_consume",
            "-n",
            "1",
        ],
        LIMIT,
    )?;
    let stdout = &kv.ok()?.stdout;
    assert!(
        stdout.contains(r#"content:{"key":"the-key","value":{"id":3,"name":"kv"}}"#),
        "{stdout}"
    );
    // without a schema type the payload is printed as it is (Avro binary, here not UTF-8 text)
    let raw = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "read",
            &avro_topic,
            "-m",
            "earliest",
            "-n",
            "1",
        ],
        LIMIT,
    )?
    .ok()?
    .json_lines()?;
    assert!(raw[0].get("value").is_none(), "{raw:?}");
    Ok(())
}

#[test]
fn perf_produce_then_consume_reports_throughput_and_latency() -> TestResult {
    let url = broker().service_url.clone();
    let topic = unique_topic("cli-perf");
    let produced = cli(
        &[
            "--url", &url, "--format", "json", "perf", "produce", &topic, "-r", "0", "-s", "100",
            "-m", "2000",
        ],
        LIMIT,
    )?;
    let report = produced.ok()?.json_lines()?;
    let [p] = report.as_slice() else {
        return Err(format!("one report expected: {produced:?}").into());
    };
    assert_eq!(p["messages"].as_u64(), Some(2000), "{p}");
    assert_eq!(p["bytes"].as_u64(), Some(200_000), "{p}");
    assert_eq!(p["failed"].as_u64(), Some(0), "{p}");
    assert!(p["msg_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{p}");
    let lat = &p["latency_ms"];
    assert_eq!(lat["samples"].as_u64(), Some(2000), "{p}");
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap_or(-1.0),
        lat["p99"].as_f64().unwrap_or(-1.0),
        lat["max"].as_f64().unwrap_or(-1.0),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p}");

    let consumed = cli(
        &[
            "--url", &url, "perf", "consume", &topic, "-sp", "Earliest", "-m", "2000",
        ],
        LIMIT,
    )?;
    let text = consumed.ok()?.stdout.clone();
    assert!(
        text.starts_with("consume: 2000 msgs in ")
            && text.contains("msg/s")
            && text.contains("MB/s")
            && text.contains("p99.9"),
        "{consumed:?}"
    );
    Ok(())
}

#[test]
fn authentication_and_tls_flags_against_a_token_and_mtls_broker() -> TestResult {
    let broker = BrokerProcess::start(BrokerOptions::new().auth().mtls())?;
    let info = broker.info().clone();
    let url = info.service_url.clone();
    let auth = info.auth.clone().ok_or("no credentials")?;
    let topic = unique_topic("cli-auth");

    // a valid token, three ways
    cli(
        &[
            "--url",
            &url,
            "--token",
            &auth.client_token,
            "produce",
            &topic,
            "-m",
            "a",
        ],
        LIMIT,
    )?
    .ok()?;
    let token_file = broker.home().join("cli-test.token");
    std::fs::write(&token_file, &auth.client_token)?;
    cli(
        &[
            "--url",
            &url,
            "--token-file",
            &token_file.to_string_lossy(),
            "produce",
            &topic,
            "-m",
            "b",
        ],
        LIMIT,
    )?
    .ok()?;
    let params = format!("token:{}", auth.client_token);
    cli(
        &[
            "--url",
            &url,
            "--auth-plugin",
            "org.apache.pulsar.client.impl.auth.AuthenticationToken",
            "--auth-params",
            &params,
            "produce",
            &topic,
            "-m",
            "c",
        ],
        LIMIT,
    )?
    .ok()?;
    let basic = format!(
        r#"{{"userId":"{}","password":"{}"}}"#,
        auth.basic_user, auth.basic_password
    );
    cli(
        &[
            "--url",
            &url,
            "--auth-plugin",
            "basic",
            "--auth-params",
            &basic,
            "produce",
            &topic,
            "-m",
            "d",
        ],
        LIMIT,
    )?
    .ok()?;

    // a wrong token: one clear authentication error, promptly
    let forged = auth.client_token.replace('.', ".x");
    let run = cli(
        &[
            "--url", &url, "--token", &forged, "produce", &topic, "-m", "x",
        ],
        LIMIT,
    )?;
    let line = run.one_error_line()?;
    assert!(line.contains("authentication failed"), "{line}");
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}",
        run.elapsed
    );
    // no credentials at all
    let run = cli(&["--url", &url, "produce", &topic, "-m", "x"], LIMIT)?;
    assert!(
        run.one_error_line()?.contains("authentication failed"),
        "{run:?}"
    );

    // TLS: the broker's CA, a client certificate (the broker requires one) and a token
    let tls = info.tls.clone().ok_or("no TLS files")?;
    let tls_url = info.service_url_tls.clone().ok_or("no TLS URL")?;
    let (ca, other_ca) = (tls.ca.to_string_lossy(), tls.other_ca.to_string_lossy());
    let (cert, key) = (
        tls.client_cert.to_string_lossy(),
        tls.client_key.to_string_lossy(),
    );
    let tls_topic = unique_topic("cli-tls");
    let over_tls = |trust: &str, extra: &[&str]| -> Result<Run, Box<dyn std::error::Error>> {
        let mut args = vec![
            "--url",
            &tls_url,
            "--token",
            &auth.client_token,
            "--tls-trust-certs-file-path",
            trust,
            "--operation-timeout",
            "8",
        ];
        args.extend_from_slice(extra);
        cli(&args, LIMIT)
    };
    let client_cert = ["--tls-cert-file", &*cert, "--tls-key-file", &*key];
    let mut produce = client_cert.to_vec();
    produce.extend(["produce", &tls_topic, "-m", "t1,t2"]);
    over_tls(&ca, &produce)?.ok()?;
    let mut consume = client_cert.to_vec();
    consume.extend([
        "--format",
        "json",
        "consume",
        &tls_topic,
        "-s",
        "tls-sub",
        "-p",
        "Earliest",
        "-n",
        "2",
        "--timeout",
        "30",
    ]);
    let consumed = over_tls(&ca, &consume)?;
    let payloads: Vec<String> = consumed
        .ok()?
        .json_lines()?
        .iter()
        .map(|m| m["payload"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(payloads, vec!["t1", "t2"], "{consumed:?}");

    // a CA that did not sign the broker's certificate: one clear error naming the cause
    let run = over_tls(&other_ca, &produce)?;
    let line = run.one_error_line()?;
    assert!(line.contains("certificate"), "{line}");
    // no client certificate: the broker refuses the TLS handshake
    let run = over_tls(&ca, &["produce", &tls_topic, "-m", "x"])?;
    run.one_error_line()?;

    // Through an SNI proxy: a relay in front of the broker's TLS port records the server name
    // of every TLS ClientHello. The service URL names localhost (in the broker's certificate,
    // verified); every socket goes to the relay at 127.0.0.1.
    let tls_port: u16 = tls_url.rsplit(':').next().ok_or("no port")?.parse()?;
    let relay = SniRelay::start(tls_port)?;
    let service = format!("pulsar+ssl://localhost:{tls_port}");
    let proxy = format!("pulsar+ssl://127.0.0.1:{}", relay.port);
    let mut args = vec![
        "--url",
        &service,
        "--proxy-url",
        &proxy,
        "--proxy-protocol",
        "SNI",
        "--token",
        &auth.client_token,
        "--tls-trust-certs-file-path",
        &ca,
    ];
    args.extend(client_cert);
    args.extend(["produce", &tls_topic, "-m", "via-proxy"]);
    cli(&args, LIMIT)?.ok()?;
    let names = relay.names();
    // the lookup's connection names the service host; the topic's broker advertises 127.0.0.1,
    // and TLS sends no server name for an IP address
    assert_eq!(
        names.first(),
        Some(&Some("localhost".to_string())),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| n.as_deref() != Some("127.0.0.1")),
        "{names:?}"
    );
    let consumed = over_tls(
        &ca,
        &[
            &client_cert[..],
            &[
                "--format",
                "json",
                "consume",
                &tls_topic,
                "-s",
                "tls-sub",
                "-n",
                "1",
                "--timeout",
                "30",
            ],
        ]
        .concat(),
    )?;
    let payload = consumed.ok()?.json_lines()?[0]["payload"].clone();
    assert_eq!(payload, "via-proxy", "{consumed:?}");
    drop(broker);
    Ok(())
}

#[test]
fn refused_service_url_is_reported_within_the_initial_connection_timeout() -> TestResult {
    // The defaults: nothing listens on port 1, the client would retry until the operation
    // timeout (30 s); the CLI gives up after --initial-connection-timeout (5 s) and names the
    // refusal. The bound is generous: it is a user-facing deadline, not a benchmark.
    let run = cli(
        &["--url", "pulsar://127.0.0.1:1", "produce", "t", "-m", "x"],
        LIMIT,
    )?;
    let line = run.one_error_line()?;
    assert!(
        line.contains("127.0.0.1:1") && line.to_lowercase().contains("refused"),
        "{line}"
    );
    assert!(line.contains("--initial-connection-timeout"), "{line}");
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.elapsed >= Duration::from_secs(4),
        "gave up early: {:?}",
        run.elapsed
    );
    // a shorter bound is honoured
    let run = cli(
        &[
            "--url",
            "pulsar://127.0.0.1:1",
            "--initial-connection-timeout",
            "1",
            "consume",
            "t",
            "-s",
            "s",
        ],
        LIMIT,
    )?;
    assert!(run.one_error_line()?.contains("refused"), "{run:?}");
    assert!(
        run.elapsed < Duration::from_secs(4),
        "took {:?}",
        run.elapsed
    );
    Ok(())
}

#[test]
fn perf_with_several_topics_producers_subscriptions_and_consumers() -> TestResult {
    let url = broker().service_url.clone();
    let topic = unique_topic("cli-perf-multi");
    // 2 topics × 2 producers, zstd, keyed, 600 messages in total
    let produced = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "perf",
            "produce",
            &topic,
            "-t",
            "2",
            "-n",
            "2",
            "-r",
            "0",
            "-s",
            "64",
            "-m",
            "600",
            "-z",
            "ZSTD",
            "-mk",
            "autoIncrement",
            "-bm",
            "10",
            "-c",
            "2",
            "-ml",
            "16M",
        ],
        LIMIT,
    )?;
    let report = produced.ok()?.json_lines()?;
    let [p] = report.as_slice() else {
        return Err(format!("one report expected: {produced:?}").into());
    };
    assert_eq!(p["messages"].as_u64(), Some(600), "{p}");
    assert_eq!(p["producers"].as_u64(), Some(4), "{p}");
    assert_eq!(p["topics"].as_u64(), Some(2), "{p}");
    assert_eq!(p["failed"].as_u64(), Some(0), "{p}");

    // each topic got half: two subscriptions × 2 Shared consumers on each topic see 300 per
    // subscription, 1200 in total
    let consumed = cli(
        &[
            "--url", &url, "--format", "json", "perf", "consume", &topic, "-t", "2", "-ns", "2",
            "-ss", "multi", "-n", "2", "-st", "Shared", "-sp", "Earliest", "-m", "1200", "-time",
            "50",
        ],
        LIMIT,
    )?;
    let report = consumed.ok()?.json_lines()?;
    let [c] = report.as_slice() else {
        return Err(format!("one report expected: {consumed:?}").into());
    };
    assert_eq!(c["messages"].as_u64(), Some(1200), "{c}");
    assert_eq!(c["bytes"].as_u64(), Some(1200 * 64), "{c}");
    assert_eq!(c["consumers"].as_u64(), Some(8), "{c}");
    assert_eq!(c["latency_ms"]["samples"].as_u64(), Some(1200), "{c}");

    // the subscriptions acknowledged everything: nothing more within 2 s
    let again = cli(
        &[
            "--url", &url, "--format", "json", "perf", "consume", &topic, "-t", "2", "-ns", "2",
            "-ss", "multi", "-st", "Shared", "-time", "2",
        ],
        LIMIT,
    )?;
    let report = again.ok()?.json_lines()?;
    assert_eq!(report[0]["messages"].as_u64(), Some(0), "{again:?}");

    // readers from the earliest message of each topic
    let read = cli(
        &[
            "--url", &url, "--format", "json", "perf", "read", &topic, "-t", "2", "-n", "600",
            "-time", "50",
        ],
        LIMIT,
    )?;
    let report = read.ok()?.json_lines()?;
    assert_eq!(report[0]["messages"].as_u64(), Some(600), "{read:?}");
    assert_eq!(report[0]["readers"].as_u64(), Some(2), "{read:?}");

    // pulsar-perf refuses several consumers on an Exclusive subscription; so does the CLI
    let run = cli(
        &["--url", &url, "perf", "consume", &topic, "-n", "2"],
        LIMIT,
    )?;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("Exclusive"), "{run:?}");
    Ok(())
}

#[test]
fn consume_with_a_regex_subscribes_to_matching_topics() -> TestResult {
    let url = broker().service_url.clone();
    let base = unique_topic("cli-regex");
    for (suffix, payload) in [("a", "one"), ("b", "two")] {
        let topic = format!("{base}-{suffix}");
        cli(
            &["--url", &url, "produce", &topic, "-m", payload, "-db"],
            LIMIT,
        )?
        .ok()?;
    }
    cli(
        &[
            "--url",
            &url,
            "produce",
            &format!("{base}-other"),
            "-m",
            "x",
        ],
        LIMIT,
    )?
    .ok()?;
    // unique_topic gives persistent://public/default/<name>: the pattern's namespace
    let pattern = format!("{base}-[ab]");
    let consumed = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "consume",
            "--regex",
            &pattern,
            "-s",
            "re",
            "-p",
            "Earliest",
            "-n",
            "2",
            "--timeout",
            "30",
        ],
        LIMIT,
    )?;
    let mut payloads: Vec<String> = consumed
        .ok()?
        .json_lines()?
        .iter()
        .map(|m| m["payload"].as_str().unwrap_or_default().to_string())
        .collect();
    payloads.sort();
    assert_eq!(payloads, ["one", "two"], "{consumed:?}");
    Ok(())
}

/// The distinct entries (ledger:entry) of the receipts `produce --format json` printed.
fn entries_of_receipts(run: &Run) -> Result<std::collections::BTreeSet<String>, String> {
    run.json_lines()?
        .iter()
        .map(|r| {
            let id = r["message_id"]
                .as_str()
                .ok_or(format!("no message_id in {r}"))?;
            let mut parts = id.split(':');
            match (parts.next(), parts.next()) {
                (Some(ledger), Some(entry)) => Ok(format!("{ledger}:{entry}")),
                _ => Err(format!("bad message id {id}")),
            }
        })
        .collect()
}

#[test]
fn memory_limit_flag() -> TestResult {
    // The limit bounds the payload bytes the client holds until the broker acknowledges them: with
    // -ml 1K and 600-byte messages, a message waits until the one before it is acknowledged, so no
    // two share a batch and each is an entry of its own. Without the limit the same sends batch.
    let url = broker().service_url.clone();
    let payload = "x".repeat(600);
    let produce = |topic: &str, limit: &[&str]| -> Result<Run, Box<dyn std::error::Error>> {
        let mut args = vec!["--url", url.as_str(), "--format", "json"];
        args.extend_from_slice(limit);
        args.extend_from_slice(&["produce", topic, "-m", &payload, "-n", "200"]);
        let run = cli(&args, LIMIT)?;
        run.ok()?;
        Ok(run)
    };
    let limited = produce(&unique_topic("cli-ml"), &["-ml", "1K"])?;
    let entries = entries_of_receipts(&limited)?;
    assert_eq!(entries.len(), 200, "one entry per message: {entries:?}");
    let unlimited = produce(&unique_topic("cli-ml-none"), &[])?;
    let entries = entries_of_receipts(&unlimited)?;
    assert!(
        entries.len() < 200,
        "without the limit messages share batches: {} entries",
        entries.len()
    );
    // a message value spelled like the flag is a message, not the flag
    let topic = unique_topic("cli-ml-value");
    let run = cli(&["--url", &url, "produce", &topic, "-m", "-ml"], LIMIT)?;
    run.ok()?;
    let read = cli(
        &[
            "--url",
            &url,
            "--format",
            "json",
            "read",
            &topic,
            "-m",
            "earliest",
            "-n",
            "1",
            "--timeout",
            "30",
        ],
        LIMIT,
    )?;
    let messages = read.ok()?.json_lines()?;
    assert_eq!(messages[0]["payload"].as_str(), Some("-ml"), "{read:?}");
    let run = cli(
        &[
            "--url",
            &url,
            "--memory-limit",
            "12X",
            "produce",
            &topic,
            "-m",
            "a",
        ],
        LIMIT,
    )?;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("unknown unit"), "{run:?}");
    Ok(())
}

#[test]
fn subcommand_help_lists_its_own_options_before_the_global_ones() -> TestResult {
    for args in [
        &["produce", "--help"][..],
        &["perf", "consume", "--help"][..],
    ] {
        let run = cli(args, LIMIT)?;
        let help = &run.ok()?.stdout;
        let global = help
            .find("Global options:")
            .ok_or("no Global options heading")?;
        let url = help.find("--url").ok_or("no --url")?;
        let own = help.find("--num-").ok_or("no own option")?;
        assert!(own < global && global < url, "{help}");
    }
    Ok(())
}

/// A local TCP server that answers every connection with `reply` (after reading what the client
/// sends first, its CONNECT), then closes it. Returns its port.
fn fake_server(reply: &'static [u8]) -> Result<u16, Box<dyn std::error::Error>> {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(reply);
                std::thread::sleep(Duration::from_millis(500));
            });
        }
    });
    Ok(port)
}

/// Runs `produce` against a fake server and returns its one error line.
fn against_fake_server(reply: &'static [u8]) -> Result<(String, u16), Box<dyn std::error::Error>> {
    let port = fake_server(reply)?;
    let url = format!("pulsar://127.0.0.1:{port}");
    let run = cli(&["--url", &url, "produce", "t", "-m", "x"], LIMIT)?;
    let line = run.one_error_line()?.to_string();
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}: {line}",
        run.elapsed
    );
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    Ok((line, port))
}

#[test]
fn a_server_sending_garbage_is_not_a_pulsar_broker() -> TestResult {
    // a small frame whose command is not protobuf
    let (line, _) =
        against_fake_server(b"\x00\x00\x00\x0c\x00\x00\x00\x08\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8")?;
    assert!(line.contains("not a Pulsar broker"), "{line}");
    assert!(line.contains("undecodable"), "{line}");
    Ok(())
}

#[test]
fn a_frame_claiming_2_gib_is_refused_by_its_size() -> TestResult {
    let (line, _) = against_fake_server(b"\x80\x00\x00\x00\x00\x00\x00\x01\x08")?;
    assert!(line.contains("not a Pulsar broker"), "{line}");
    assert!(
        line.contains("2147483648") && line.contains("limit"),
        "{line}"
    );
    Ok(())
}

#[test]
fn an_http_server_is_named_as_such() -> TestResult {
    let (line, _) = against_fake_server(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )?;
    assert!(line.contains("not a Pulsar broker"), "{line}");
    assert!(line.contains("HTTP/1.1 400"), "{line}");
    Ok(())
}

/// A TCP relay to the broker's TLS port that records the server name (SNI) of each connection's
/// TLS ClientHello: an SNI proxy's view.
struct SniRelay {
    port: u16,
    names: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl SniRelay {
    fn start(upstream: u16) -> Result<SniRelay, Box<dyn std::error::Error>> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let names = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = names.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(client) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = relay_one(client, upstream, &seen);
                });
            }
        });
        Ok(SniRelay { port, names })
    }

    fn names(&self) -> Vec<Option<String>> {
        self.names.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

/// Reads the first TLS record (the ClientHello), records its server name, then copies both ways.
fn relay_one(
    mut client: std::net::TcpStream,
    upstream: u16,
    seen: &std::sync::Mutex<Vec<Option<String>>>,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut head = [0u8; 5];
    client.read_exact(&mut head)?;
    let mut record = head.to_vec();
    record.resize(5 + usize::from(u16::from_be_bytes([head[3], head[4]])), 0);
    client.read_exact(&mut record[5..])?;
    if let Ok(mut names) = seen.lock() {
        names.push(server_name(&record));
    }
    let mut broker = std::net::TcpStream::connect(("127.0.0.1", upstream))?;
    broker.write_all(&record)?;
    let (mut c2, mut b2) = (client.try_clone()?, broker.try_clone()?);
    std::thread::spawn(move || std::io::copy(&mut b2, &mut c2));
    std::io::copy(&mut client, &mut broker)?;
    Ok(())
}

/// The host name of the server_name extension of a TLS record holding a ClientHello.
fn server_name(record: &[u8]) -> Option<String> {
    let u16_at = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *record.get(i)?,
            *record.get(i + 1)?,
        ])))
    };
    // record header (5), handshake header (4), version (2), random (32)
    let mut p = 5 + 4 + 2 + 32;
    p += 1 + usize::from(*record.get(p)?); // session id
    p += 2 + u16_at(p)?; // cipher suites
    p += 1 + usize::from(*record.get(p)?); // compression methods
    let end = p + 2 + u16_at(p)?;
    p += 2;
    while p + 4 <= end {
        let (kind, len) = (u16_at(p)?, u16_at(p + 2)?);
        p += 4;
        if kind == 0 {
            // server name list (2), name type (1), name length (2), name
            let n = u16_at(p + 3)?;
            return String::from_utf8(record.get(p + 5..p + 5 + n)?.to_vec()).ok();
        }
        p += len;
    }
    None
}
