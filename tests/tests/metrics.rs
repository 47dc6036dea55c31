//! The Prometheus example of pulsar-tokio (`examples/prometheus.rs`, built here as the
//! `prometheus-example` binary) against the real broker: it sends, receives, negatively
//! acknowledges and acknowledges a known traffic, then serves its metrics; the test scrapes them
//! over HTTP and checks the values against that traffic: per topic and partition (a partitioned
//! topic read by one consumer), and the failed connections of two more clients by failure type.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pulsar_tests::support::{self, unique_topic};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Kills the example when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_prometheus_example_serves_the_traffic_it_made() -> TestResult {
    let broker = support::broker();
    let topic = unique_topic("metrics-example");
    let partitioned = unique_topic("metrics-example-partitioned");
    let admin = support::admin()?;
    admin.create_partitioned(&partitioned, 2)?;
    // the web port does not speak the binary protocol: the handshake fails; port 1 is closed
    let web = admin.web_url().trim_start_matches("http://").to_owned();
    let (handshake_url, tcp_url) = (format!("pulsar://{web}"), "pulsar://127.0.0.1:1");
    let (messages, size, nacks) = (50u64, 100u64, 5u64);
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_prometheus-example"))
            .args([&broker.service_url, &topic])
            .args(["--messages", &messages.to_string()])
            .args(["--size", &size.to_string()])
            .args(["--nacks", &nacks.to_string()])
            .args(["--port", "0"])
            .args(["--partitioned", &partitioned, "--topic-attributes"])
            .args(["--failing-url", &handshake_url, "--failing-url", tcp_url])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("serving http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    let text = scrape(&address)?;

    let ns = [
        ("pulsar_tenant", "public"),
        ("pulsar_namespace", "public/default"),
        ("pulsar_topic", topic.as_str()),
    ];
    let sub = [
        ("pulsar_tenant", "public"),
        ("pulsar_namespace", "public/default"),
        ("pulsar_topic", topic.as_str()),
        ("pulsar_subscription", "metrics-example"),
    ];
    let ok = [("pulsar_response_status", "success")];
    let expect = |name: &str, labels: &[(&str, &str)], want: f64| -> Result<(), String> {
        let got = value(&text, name, labels).ok_or_else(|| format!("{name} missing:\n{text}"))?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{name}{labels:?} = {got}, expected {want}"))
        }
    };
    let n = messages as f64;
    let k = nacks as f64;
    // producer: no batching, no compression, so the bytes written are the payloads
    expect("pulsar_client_producer_opened", &ns, 1.0)?;
    expect(
        "pulsar_client_producer_message_send_size",
        &ns,
        n * size as f64,
    )?;
    expect("pulsar_client_producer_message_send_failed", &ns, 0.0)?;
    expect(
        "pulsar_client_producer_message_send_duration_count",
        &[ns[0], ns[1], ns[2], ok[0]],
        n,
    )?;
    expect("pulsar_client_producer_message_pending_count", &ns, 0.0)?;
    expect("pulsar_client_producer_message_pending_size", &ns, 0.0)?;
    // consumer: the negatively acknowledged messages are received twice
    expect("pulsar_client_consumer_opened", &sub, 1.0)?;
    expect("pulsar_client_consumer_message_received_count", &sub, n + k)?;
    expect(
        "pulsar_client_consumer_message_received_size",
        &sub,
        (n + k) * size as f64,
    )?;
    expect("pulsar_client_consumer_message_ack", &sub, n)?;
    expect("pulsar_client_consumer_message_nack", &sub, k)?;
    expect("pulsar_client_consumer_message_dlq", &sub, 0.0)?;
    expect("pulsar_client_consumer_message_ack_timeout", &sub, 0.0)?;
    expect("pulsar_client_consumer_receive_queue_count", &sub, 0.0)?;
    expect("pulsar_client_consumer_receive_queue_size", &sub, 0.0)?;
    // the partitioned topic: one series per partition, with the partition's tenant and namespace
    let mut per_partition = Vec::new();
    for p in ["0", "1"] {
        let labels = [
            ("pulsar_tenant", "public"),
            ("pulsar_namespace", "public/default"),
            ("pulsar_topic", partitioned.as_str()),
            ("pulsar_partition", p),
            ("pulsar_subscription", "metrics-example"),
        ];
        let count = "pulsar_client_consumer_message_received_count";
        let got =
            value(&text, count, &labels).ok_or_else(|| format!("{count}{labels:?}:\n{text}"))?;
        expect("pulsar_client_consumer_message_ack", &labels, got)?;
        expect("pulsar_client_consumer_opened", &labels, 1.0)?;
        per_partition.push(got);
    }
    assert!(per_partition.iter().all(|&n| n > 0.0), "{per_partition:?}");
    assert_eq!(per_partition.iter().sum::<f64>(), n, "{per_partition:?}");
    // client: every connection attempt is counted as opened; the failing clients' attempts fail
    // by type (at least once each: they retry until their operation timeout)
    let failed = |kind: &'static str| {
        let labels = [("pulsar_failure_type", kind)];
        value(&text, "pulsar_client_connection_failed", &labels)
            .ok_or_else(|| format!("connection failed {kind}:\n{text}"))
    };
    let (tcp, handshake) = (failed("tcp-failed")?, failed("handshake")?);
    assert!(
        tcp >= 1.0 && handshake >= 1.0,
        "tcp {tcp}, handshake {handshake}"
    );
    expect(
        "pulsar_client_connection_opened",
        &[],
        1.0 + tcp + handshake,
    )?;
    expect("pulsar_client_memory_buffer_usage", &[], 0.0)?;
    expect(
        "pulsar_client_memory_buffer_limit",
        &[],
        64.0 * 1024.0 * 1024.0,
    )?;
    // the producers' and the consumers' topic lookups (each partition of the partitioned topic
    // once for each), and the partition count of each topic
    let lookup = |kind: &'static str| {
        [
            ("pulsar_lookup_transport_type", "binary"),
            ("pulsar_lookup_type", kind),
            ("pulsar_response_status", "success"),
        ]
    };
    expect("pulsar_client_lookup_duration_count", &lookup("topic"), 6.0)?;
    expect(
        "pulsar_client_lookup_duration_count",
        &lookup("metadata"),
        4.0,
    )?;
    // every send took more than 0 s and less than the 30 s operation timeout
    let le = |bound: &'static str| [ns[0], ns[1], ns[2], ok[0], ("le", bound)];
    expect(
        "pulsar_client_producer_message_send_duration_bucket",
        &le("30"),
        n,
    )?;
    expect(
        "pulsar_client_producer_message_send_duration_bucket",
        &le("+Inf"),
        n,
    )?;
    let sum = value(
        &text,
        "pulsar_client_producer_message_send_duration_sum",
        &ns,
    )
    .ok_or("no send duration sum")?;
    assert!(sum > 0.0 && sum < n * 30.0, "send duration sum {sum}");

    // a second scrape publishes nothing new: the counters stay
    let again = scrape(&address)?;
    assert_eq!(
        value(&again, "pulsar_client_consumer_message_ack", &sub),
        Some(n),
        "{again}"
    );
    Ok(())
}

/// GET /metrics over HTTP/1.1 (the example closes the connection after its answer).
fn scrape(address: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(address)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {address}\r\n\r\n")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answer {head}").into());
    }
    Ok(body.to_owned())
}

/// The value of the series `name` whose labels include `labels` (the first such line).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, v) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| v.parse().ok()).flatten()
    })
}
