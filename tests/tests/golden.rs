//! Golden frames: traffic between the official Python client (`pulsar-client`, C++ core) and the
//! real broker, captured by a recording proxy, decoded by pulsar-proto, and re-encoded byte for
//! byte. A small capture is kept under `tests/golden/` and checked without a broker.
//!
//! `PULSAR_GOLDEN_RECORD=1 cargo test -p pulsar-tests --test golden` refreshes the stored capture.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pulsar_proto::batch;
use pulsar_proto::pb::base_command::Type;
use pulsar_proto::pb::KeyValue;
use pulsar_tests::golden::{read_corpus, reencode, split_frames, write_corpus, RawFrame};
use pulsar_tests::proxy::{CapturedConnection, ProxyOptions, RecordingProxy};
use pulsar_tests::support::{broker, python_command, unique_topic};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/official-python-client")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

/// One message as the scenario sends it: payload, key, properties.
type Expected = (&'static str, &'static str, Vec<KeyValue>);

fn expected_messages() -> Vec<Expected> {
    vec![
        (
            "golden payload",
            "key-1",
            vec![kv("colour", "blue"), kv("n", "42")],
        ),
        ("batch-0", "bk-0", vec![kv("i", "0")]),
        ("batch-1", "bk-1", vec![kv("i", "1")]),
        ("batch-2", "bk-2", vec![kv("i", "2")]),
    ]
}

/// The messages a payload frame carries, batched or not: (payload, key, properties).
fn messages_of(frame: &RawFrame) -> Result<Vec<(String, String, Vec<KeyValue>)>, String> {
    let payload = frame
        .frame
        .payload
        .as_ref()
        .ok_or("payload command without payload")?;
    let metadata = &payload.metadata;
    assert_eq!(metadata.compression, None, "the scenario does not compress");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match metadata.num_messages_in_batch {
        None => Ok(vec![(
            text(&payload.data),
            metadata.partition_key.clone().unwrap_or_default(),
            metadata.properties.clone(),
        )]),
        Some(count) => batch::split(payload.data.clone(), u32::try_from(count).unwrap_or(0))
            .map(|entry| {
                entry
                    .map(|e| {
                        (
                            text(&e.payload),
                            e.metadata.partition_key.clone().unwrap_or_default(),
                            e.metadata.properties.clone(),
                        )
                    })
                    .map_err(|e| e.to_string())
            })
            .collect(),
    }
}

/// Decodes every frame of every connection, checks the command sequence and the messages, and
/// checks that each frame re-encodes to the very bytes captured.
fn check_capture(connections: &[CapturedConnection]) -> TestResult {
    assert!(!connections.is_empty(), "nothing captured");
    let mut client_kinds = BTreeSet::new();
    let mut broker_kinds = BTreeSet::new();
    let mut sent = Vec::new();
    let mut delivered = Vec::new();
    let mut frames_checked = 0;

    for (i, connection) in connections.iter().enumerate() {
        let from_client = split_frames(&connection.client_to_broker)
            .map_err(|e| format!("connection {i}, client side: {e}"))?;
        let from_broker = split_frames(&connection.broker_to_client)
            .map_err(|e| format!("connection {i}, broker side: {e}"))?;
        assert_eq!(
            from_client.first().and_then(RawFrame::kind),
            Some(Type::Connect),
            "connection {i} does not open with CONNECT"
        );
        assert_eq!(
            from_broker.first().and_then(RawFrame::kind),
            Some(Type::Connected),
            "broker does not answer connection {i} with CONNECTED"
        );
        if let Some(connect) = from_client
            .first()
            .and_then(|f| f.frame.command.connect.as_ref())
        {
            assert!(connect.client_version.contains("Pulsar"), "{connect:?}");
        }

        for (side, frames) in [("client", &from_client), ("broker", &from_broker)] {
            for frame in frames {
                let kind = frame.kind().ok_or_else(|| {
                    format!("unknown command type at {side} offset {}", frame.offset)
                })?;
                if side == "client" {
                    client_kinds.insert(kind as i32);
                } else {
                    broker_kinds.insert(kind as i32);
                }
                match kind {
                    Type::Send => sent.extend(messages_of(frame)?),
                    Type::Message => delivered.extend(messages_of(frame)?),
                    _ => {}
                }
                let again = reencode(&frame.frame);
                assert!(
                    again[..] == frame.raw[..],
                    "{side} frame {kind:?} at offset {} of connection {i} re-encodes differently:\n\
                     captured  {:02x?}\nre-encoded {:02x?}",
                    frame.offset,
                    &frame.raw[..],
                    &again[..]
                );
                frames_checked += 1;
            }
        }
    }

    for kind in [
        Type::Connect,
        Type::Lookup,
        Type::Producer,
        Type::Send,
        Type::CloseProducer,
        Type::Subscribe,
        Type::Flow,
        Type::Ack,
        Type::CloseConsumer,
    ] {
        assert!(
            client_kinds.contains(&(kind as i32)),
            "client never sent {kind:?}"
        );
    }
    for kind in [
        Type::Connected,
        Type::LookupResponse,
        Type::ProducerSuccess,
        Type::SendReceipt,
        Type::Success,
        Type::Message,
    ] {
        assert!(
            broker_kinds.contains(&(kind as i32)),
            "broker never sent {kind:?}"
        );
    }

    let expected: Vec<(String, String, Vec<KeyValue>)> = expected_messages()
        .into_iter()
        .map(|(data, key, props)| (data.to_owned(), key.to_owned(), props))
        .collect();
    assert_eq!(sent, expected, "messages the client sent");
    assert_eq!(delivered, expected, "messages the broker delivered");
    assert!(frames_checked >= 20, "only {frames_checked} frames");
    Ok(())
}

#[test]
fn official_client_frames_decode_and_reencode_byte_identically() -> TestResult {
    let upstream: SocketAddr = broker().binary_addr()?.parse()?;
    let proxy = RecordingProxy::start(
        upstream,
        ProxyOptions {
            route_lookups_through_proxy: true,
        },
    )?;
    let topic = unique_topic("golden");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/golden_client.py");
    let output = python_command()
        .arg(&script)
        .args([&proxy.service_url(), &topic, "golden-sub"])
        .output()?;
    let connections = proxy.finish(Duration::from_secs(10));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // what the official client itself received
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let received = summary
        .get("received")
        .and_then(|r| r.as_array())
        .ok_or("no received list")?;
    let got: Vec<(String, String)> = received
        .iter()
        .map(|m| {
            (
                m.get("data")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                m.get("key")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = expected_messages()
        .into_iter()
        .map(|(d, k, _)| (d.to_owned(), k.to_owned()))
        .collect();
    assert_eq!(got, want);

    assert!(
        connections.iter().any(|c| c.lookups_rewritten > 0),
        "no LOOKUP_RESPONSE went through the proxy"
    );
    assert!(
        connections.len() >= 2,
        "the topic connection did not go through the proxy ({} connections)",
        connections.len()
    );
    check_capture(&connections)?;

    if std::env::var_os("PULSAR_GOLDEN_RECORD").is_some() {
        let dir = corpus_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        write_corpus(&dir, &connections)?;
        eprintln!("golden capture written to {}", dir.display());
    }
    Ok(())
}

#[test]
fn stored_golden_corpus_decodes_and_reencodes_byte_identically() -> TestResult {
    let connections = read_corpus(&corpus_dir())?;
    assert!(
        connections.len() >= 2,
        "expected a stored capture in {}",
        corpus_dir().display()
    );
    check_capture(&connections)
}

#[test]
fn a_corrupted_capture_is_rejected() -> TestResult {
    let connections = read_corpus(&corpus_dir())?;
    let mut bad = connections.first().ok_or("empty corpus")?.clone();
    // cut the last frame short: the stream must not split cleanly any more
    let len = bad.client_to_broker.len();
    bad.client_to_broker.truncate(len.saturating_sub(1));
    assert!(split_frames(&bad.client_to_broker).is_err());
    // a wrong command size inside the first frame
    let mut wrong = connections.first().ok_or("empty corpus")?.clone();
    if let Some(byte) = wrong.client_to_broker.get_mut(7) {
        *byte = byte.wrapping_add(1);
    }
    assert!(split_frames(&wrong.client_to_broker).is_err());
    Ok(())
}
