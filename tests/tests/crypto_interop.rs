//! End-to-end encryption on the real broker: this client with `pulsar-crypto` against itself,
//! the official Python client (C++ core) and the Java client (tests/java/CryptoInterop.java),
//! both ways, batched and unbatched, compressed and not, chunked (Java: each chunk encrypted on
//! its own), EC keys (Java); the consumer's crypto failure actions; the data key's rotation; one
//! wrap and one unwrap per data key.
//!
//! Keys: tests/keys/rsa-a (PKCS#1 private key, as Pulsar's own test keys), rsa-b (PKCS#8),
//! ec-p256 (SEC 1) and ec-p384 (PKCS#8), made with openssl for these tests only.

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pulsar_blocking::{Client, ClientEvent, CompressionType, Consumer, InitialPosition};
use pulsar_core::{
    BatchingOptions, CryptoError, CryptoFailureAction, Event, MessageDecryptor,
    ProducerCryptoFailureAction, ReceiveError,
};
use pulsar_crypto::{
    CryptoKeyReader, Decryptor, EncryptionKeyInfo, Encryptor, KeyReadError, PemKeyReader,
};
use pulsar_tests::support::{admin, broker, python_command, unique_topic, JavaProgram};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(30);
const COUNT: usize = 10;

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("keys")
        .join(name)
}

fn reader(k: &str) -> Arc<PemKeyReader> {
    Arc::new(PemKeyReader::files(
        Some(key(&format!("{k}.public.pem"))),
        Some(key(&format!("{k}.private.pem"))),
    ))
}

fn client() -> R<Client> {
    Ok(Client::builder(broker().service_url.as_str()).build()?)
}

fn payloads(prefix: &str) -> Vec<String> {
    (0..COUNT).map(|i| format!("{prefix}-{i}")).collect()
}

/// Sends `COUNT` messages `rust-<i>` encrypted for `rsa-a`.
fn rust_produce(c: &Client, topic: &str, batch: bool, compression: CompressionType) -> R {
    let enc = Arc::new(Encryptor::new(["rsa-a"], reader("rsa-a")));
    let p = c
        .producer(topic)
        .compression(compression)
        .configure(|o| {
            o.encryption = Some(enc);
            o.batching = if batch {
                BatchingOptions::enabled().with_limits(COUNT, 1 << 20, Duration::from_millis(200))
            } else {
                BatchingOptions::default()
            };
        })
        .create()?;
    let receipts: Vec<_> = payloads("rust")
        .into_iter()
        .map(|m| p.send_async(m.into_bytes()))
        .collect::<Result<_, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    p.close()?;
    Ok(())
}

fn subscribe(
    c: &Client,
    topic: &str,
    sub: &str,
    crypto: pulsar_core::ConsumerCrypto,
) -> R<Consumer> {
    Ok(c.consumer(topic)
        .subscription(sub)
        .initial_position(InitialPosition::Earliest)
        .configure(|o| o.crypto = crypto)
        .subscribe()?)
}

fn decrypting(k: &str) -> pulsar_core::ConsumerCrypto {
    pulsar_core::ConsumerCrypto {
        decryptor: Some(Arc::new(Decryptor::new(reader(k)))),
        ..Default::default()
    }
}

/// Receives `n` payloads (acknowledged) as text.
fn rust_consume(consumer: &Consumer, n: usize) -> R<Vec<String>> {
    (0..n)
        .map(|_| {
            let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
            consumer.ack(&m)?;
            assert!(!m.is_encrypted());
            assert!(
                m.encryption.is_some(),
                "a decrypted message keeps its context"
            );
            Ok(String::from_utf8(m.payload.to_vec())?)
        })
        .collect()
}

#[test]
fn rust_encrypts_and_decrypts_batched_compressed_and_plain() -> R {
    let c = client()?;
    for (batch, compression) in [(true, CompressionType::Lz4), (false, CompressionType::None)] {
        let topic = unique_topic("crypto-rr");
        let consumer = subscribe(&c, &topic, "s", decrypting("rsa-a"))?;
        rust_produce(&c, &topic, batch, compression)?;
        assert_eq!(rust_consume(&consumer, COUNT)?, payloads("rust"));
    }
    Ok(())
}

const PY: &str = r#"
import sys, pulsar
url, topic, mode, pub, priv, count = sys.argv[1:7]
count = int(count)
client = pulsar.Client(url)
reader = pulsar.CryptoKeyReader(pub, priv)
codecs = {"NONE": pulsar.CompressionType.NONE, "LZ4": pulsar.CompressionType.LZ4,
          "ZLIB": pulsar.CompressionType.ZLib, "ZSTD": pulsar.CompressionType.ZSTD}
if mode.startswith("produce"):
    _, batch, codec = mode.split(":")
    p = client.create_producer(topic, encryption_key="rsa-a", crypto_key_reader=reader,
                               batching_enabled=(batch == "batch"), batching_max_messages=count,
                               batching_max_publish_delay_ms=200, compression_type=codecs[codec])
    for i in range(count):
        p.send_async(("python-%d" % i).encode(), None)
    p.flush()
    p.close()
else:
    c = client.subscribe(topic, "python", crypto_key_reader=reader,
                         initial_position=pulsar.InitialPosition.Earliest)
    for i in range(count):
        m = c.receive(30000)
        print("OUT " + m.data().decode())
        c.acknowledge(m)
    c.close()
client.close()
"#;

fn python(topic: &str, mode: &str) -> R<Vec<String>> {
    let out = python_command()
        .args(["-c", PY, &broker().service_url, topic, mode])
        .arg(key("rsa-a.public.pem"))
        .arg(key("rsa-a.private.pem"))
        .arg(COUNT.to_string())
        .output()?;
    lines(out, "python")
}

fn lines(out: Output, who: &str) -> R<Vec<String>> {
    if !out.status.success() {
        return Err(format!("{who} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| l.strip_prefix("OUT "))
        .map(str::to_owned)
        .collect())
}

#[test]
fn python_and_rust_read_each_others_encrypted_messages() -> R {
    let c = client()?;
    for (batch, codec, compression) in [
        ("batch", "LZ4", CompressionType::Lz4),
        ("single", "NONE", CompressionType::None),
        ("batch", "NONE", CompressionType::None),
        ("single", "ZLIB", CompressionType::Zlib),
    ] {
        // Python → Rust
        let topic = unique_topic("crypto-py");
        let consumer = subscribe(&c, &topic, "rust", decrypting("rsa-a"))?;
        python(&topic, &format!("produce:{batch}:{codec}"))?;
        assert_eq!(
            rust_consume(&consumer, COUNT)?,
            payloads("python"),
            "{batch} {codec}"
        );
        // Rust → Python
        let topic = unique_topic("crypto-rp");
        rust_produce(&c, &topic, batch == "batch", compression)?;
        assert_eq!(
            python(&topic, "consume")?,
            payloads("rust"),
            "{batch} {codec}"
        );
    }
    Ok(())
}

fn java() -> R<&'static JavaProgram> {
    static PROGRAM: OnceLock<Result<JavaProgram, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| JavaProgram::compile("CryptoInterop").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

fn run_java(args: &[String]) -> R<Vec<String>> {
    lines(java()?.command(args).output()?, "java")
}

#[test]
fn java_and_rust_read_each_others_encrypted_messages() -> R {
    let c = client()?;
    let url = broker().service_url.clone();
    let public = key("rsa-a.public.pem").display().to_string();
    let private = key("rsa-a.private.pem").display().to_string();
    for (batch, codec, compression) in [
        ("batch", "LZ4", CompressionType::Lz4),
        ("single", "NONE", CompressionType::None),
        ("single", "ZSTD", CompressionType::Zstd),
    ] {
        let topic = unique_topic("crypto-jr");
        let consumer = subscribe(&c, &topic, "rust", decrypting("rsa-a"))?;
        let args = [
            "produce",
            &url,
            &topic,
            "rsa-a",
            &public,
            &COUNT.to_string(),
            batch,
            codec,
        ];
        run_java(&args.map(String::from))?;
        assert_eq!(
            rust_consume(&consumer, COUNT)?,
            payloads("java"),
            "{batch} {codec}"
        );

        let topic = unique_topic("crypto-rj");
        rust_produce(&c, &topic, batch == "batch", compression)?;
        let args = ["consume", &url, &topic, &private, &COUNT.to_string()];
        assert_eq!(
            run_java(&args.map(String::from))?,
            payloads("rust"),
            "{batch} {codec}"
        );
    }
    Ok(())
}

#[test]
fn chunked_encrypted_messages_cross_with_java() -> R {
    let c = client()?;
    let url = broker().service_url.clone();
    let public = key("rsa-a.public.pem").display().to_string();
    let private = key("rsa-a.private.pem").display().to_string();
    let n = 2;
    // Java → Rust: 2 MiB messages in 1 MiB chunks, each chunk encrypted on its own
    let topic = unique_topic("crypto-jc");
    let consumer = subscribe(&c, &topic, "rust", decrypting("rsa-a"))?;
    let args = [
        "produce",
        &url,
        &topic,
        "rsa-a",
        &public,
        &n.to_string(),
        "single",
        "NONE",
        "chunk",
    ];
    run_java(&args.map(String::from))?;
    for (i, got) in rust_consume(&consumer, n)?.into_iter().enumerate() {
        assert!(got.starts_with(&format!("java-{i}-xxx")), "{}", &got[..20]);
        assert_eq!(got.len(), format!("java-{i}-").len() + 2 * 1024 * 1024);
    }
    // Rust → Java
    let topic = unique_topic("crypto-rc");
    let enc = Arc::new(Encryptor::new(["rsa-a"], reader("rsa-a")));
    let p = c
        .producer(&topic)
        .chunking(true)
        .configure(|o| {
            o.encryption = Some(enc);
            o.chunk_max_size = Some(512 * 1024);
        })
        .create()?;
    for i in 0..n {
        let body = format!("rust-{i}-{}", "y".repeat(2 * 1024 * 1024));
        p.send(body.into_bytes())?;
    }
    p.close()?;
    let args = ["consume", &url, &topic, &private, &n.to_string()];
    let got = run_java(&args.map(String::from))?;
    for (i, line) in got.iter().enumerate() {
        assert!(line.starts_with(&format!("rust-{i}-yyy")), "{line}");
        assert!(line.ends_with(&format!(
            "...({})",
            format!("rust-{i}-").len() + 2 * 1024 * 1024
        )));
    }
    assert_eq!(got.len(), n);
    Ok(())
}

/// The crypto errors the client's events reported for `topic`, waiting up to `wait` for `n`.
fn crypto_errors(
    events: &mut pulsar_blocking::Events,
    n: usize,
    wait: Duration,
) -> Vec<CryptoError> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < n {
        let left = end.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(ClientEvent::Core(Event::ReceiveFailed {
                error: ReceiveError::Crypto { error, .. },
                ..
            })) => out.push(error),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

#[test]
fn failure_actions_fail_discard_and_consume() -> R {
    let c = client()?;
    let admin = admin()?;
    let topic = unique_topic("crypto-fail");
    // subscriptions first, so that each has the whole backlog
    for sub in ["fail", "discard", "consume", "wrong-key"] {
        drop(subscribe(&c, &topic, sub, Default::default())?);
    }
    rust_produce(&c, &topic, true, CompressionType::Lz4)?;
    rust_produce(&c, &topic, false, CompressionType::None)?;
    // one batch, then COUNT single entries (the broker's backlog counts entries)
    let entries = 1 + COUNT as u64;

    // FAIL (the default, no key reader): nothing delivered, nothing acknowledged, typed errors
    let mut events = c.events();
    let consumer = subscribe(&c, &topic, "fail", Default::default())?;
    assert!(consumer.receive_timeout(Duration::from_secs(2))?.is_none());
    let errors = crypto_errors(&mut events, entries as usize, TIMEOUT);
    assert_eq!(errors.len() as u64, entries);
    assert!(
        errors.iter().all(|e| *e == CryptoError::NoDecryptor),
        "{errors:?}"
    );
    drop(consumer);
    assert_eq!(admin.subscription_backlog(&topic, "fail")?, entries);

    // a wrong private key: the same, with the key named
    let consumer = subscribe(&c, &topic, "wrong-key", decrypting("rsa-b"))?;
    assert!(consumer.receive_timeout(Duration::from_secs(2))?.is_none());
    let errors = crypto_errors(&mut events, entries as usize, TIMEOUT);
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, CryptoError::NoDataKey { keys } if keys == "rsa-a")),
        "{errors:?}"
    );
    drop(consumer);

    // DISCARD: acknowledged and dropped
    let crypto = pulsar_core::ConsumerCrypto {
        failure_action: CryptoFailureAction::Discard,
        ..Default::default()
    };
    let consumer = subscribe(&c, &topic, "discard", crypto)?;
    assert!(consumer.receive_timeout(Duration::from_secs(2))?.is_none());
    let emptied = admin.wait_until(TIMEOUT, |a| {
        Ok(a.subscription_backlog(&topic, "discard")? == 0)
    });
    assert!(emptied, "DISCARD acknowledges what it drops");
    drop(consumer);

    // CONSUME: delivered still encrypted, a batch as one message, with the context
    let crypto = pulsar_core::ConsumerCrypto {
        failure_action: CryptoFailureAction::Consume,
        ..Default::default()
    };
    let consumer = subscribe(&c, &topic, "consume", crypto)?;
    let decryptor = Decryptor::new(reader("rsa-a"));
    for i in 0..entries {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        assert!(m.is_encrypted());
        let ctx = m.encryption.clone().ok_or("no context")?;
        assert_eq!(ctx.keys.len(), 1);
        assert_eq!(ctx.keys[0].name, "rsa-a");
        assert_eq!(ctx.param.len(), 12);
        if i == 0 {
            assert_eq!(ctx.batch_size, Some(COUNT as i32));
            assert_eq!(ctx.compression, CompressionType::Lz4.to_protocol());
        } else {
            assert_eq!(ctx.batch_size, None);
            // the application can decrypt it with the context
            let mut metadata = pulsar_core::proto::pb::MessageMetadata::default();
            metadata.encryption_keys = ctx
                .keys
                .iter()
                .map(|k| pulsar_core::proto::pb::EncryptionKeys {
                    key: k.name.clone(),
                    value: k.value.clone(),
                    metadata: Vec::new(),
                })
                .collect();
            metadata.encryption_param = Some(ctx.param.clone());
            let plain = decryptor.decrypt(Instant::now(), &metadata, &m.payload)?;
            assert_eq!(plain, format!("rust-{}", i - 1).into_bytes());
        }
        consumer.ack(&m)?;
    }
    Ok(())
}

/// A key reader that counts the public keys it was asked for (one per data key wrapped).
#[derive(Debug)]
struct Counting {
    inner: Arc<PemKeyReader>,
    public_reads: AtomicUsize,
}

impl CryptoKeyReader for Counting {
    fn public_key(
        &self,
        name: &str,
        metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError> {
        self.public_reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .inner
            .public_key(name, metadata)?
            .with_metadata(vec![("version".into(), "1".into())]))
    }

    fn private_key(
        &self,
        name: &str,
        metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError> {
        assert_eq!(metadata, [("version".to_string(), "1".to_string())]);
        self.inner.private_key(name, metadata)
    }
}

#[test]
fn data_keys_rotate_and_a_batch_costs_one_wrap_and_one_unwrap() -> R {
    let c = client()?;
    let topic = unique_topic("crypto-rotate");
    let counting = Arc::new(Counting {
        inner: reader("rsa-b"),
        public_reads: AtomicUsize::new(0),
    });
    let decryptor = Arc::new(Decryptor::new(counting.clone()));
    let crypto = pulsar_core::ConsumerCrypto {
        decryptor: Some(decryptor.clone()),
        ..Default::default()
    };
    let consumer = subscribe(&c, &topic, "s", crypto)?;
    let rotation = Duration::from_millis(1500);
    let enc = Arc::new(Encryptor::new(["rsa-b"], counting.clone()).with_rotation(rotation));
    let p = c
        .producer(&topic)
        .configure(|o| {
            o.encryption = Some(enc);
            o.batching =
                BatchingOptions::enabled().with_limits(1000, 1 << 22, Duration::from_millis(500));
        })
        .create()?;
    // one batch of 1,000 messages: one wrap, one unwrap
    let receipts: Vec<_> = (0..1000)
        .map(|i| p.send_async(format!("m-{i}").into_bytes()))
        .collect::<Result<_, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    let got = rust_consume(&consumer, 1000)?;
    assert_eq!(got[999], "m-999");
    assert_eq!(counting.public_reads.load(Ordering::SeqCst), 1);
    assert_eq!(decryptor.cached_keys(), 1);
    // after the rotation interval: a new data key, wrapped once more
    std::thread::sleep(rotation + Duration::from_millis(100));
    p.send(b"after".to_vec())?;
    assert_eq!(rust_consume(&consumer, 1)?, ["after"]);
    assert_eq!(counting.public_reads.load(Ordering::SeqCst), 2);
    assert_eq!(decryptor.cached_keys(), 2);
    p.close()?;
    Ok(())
}

/// EC keys (P-256), the data key wrapped with BouncyCastle's ECIES, both ways with Java.
#[test]
fn ec_keys_cross_with_java() -> R {
    let c = client()?;
    let url = broker().service_url.clone();
    let public = key("ec-p256.public.pem").display().to_string();
    let private = key("ec-p256.private.pem").display().to_string();
    // Java → Rust
    let topic = unique_topic("crypto-jec");
    let consumer = subscribe(&c, &topic, "rust", decrypting("ec-p256"))?;
    let args = [
        "produce",
        &url,
        &topic,
        "ec",
        &public,
        &COUNT.to_string(),
        "batch",
        "LZ4",
    ];
    run_java(&args.map(String::from))?;
    assert_eq!(rust_consume(&consumer, COUNT)?, payloads("java"));
    // Rust → Java
    let topic = unique_topic("crypto-rec");
    let enc = Arc::new(Encryptor::new(["ec"], reader("ec-p256")));
    let p = c
        .producer(&topic)
        .configure(|o| o.encryption = Some(enc))
        .create()?;
    for m in payloads("rust") {
        p.send(m.into_bytes())?;
    }
    p.close()?;
    let args = ["consume", &url, &topic, &private, &COUNT.to_string()];
    assert_eq!(run_java(&args.map(String::from))?, payloads("rust"));
    Ok(())
}

/// A key reader with no keys at all: every encryption fails for want of a public key.
fn no_keys() -> Arc<PemKeyReader> {
    Arc::new(PemKeyReader::files(None, None))
}

#[test]
fn producer_crypto_failure_action_fail_and_send() -> R {
    let c = client()?;
    let topic = unique_topic("crypto-send");
    let consumer = c
        .consumer(&topic)
        .subscription("plain")
        .initial_position(InitialPosition::Earliest)
        .subscribe()?;
    // FAIL, the default: the send fails with the typed error, nothing is published
    let p = c
        .producer(&topic)
        .encryption_keys(["rsa-a"], no_keys())
        .create()?;
    match p.send("never".as_bytes().to_vec()) {
        Err(pulsar_blocking::Error::Send(pulsar_core::SendError::Encryption(
            CryptoError::KeyUnavailable { name, .. },
        ))) => assert_eq!(name, "rsa-a"),
        other => panic!("expected a key error, got {other:?}"),
    }
    p.close()?;
    // SEND: the messages go unencrypted, batched or not
    for batch in [false, true] {
        let p = c
            .producer(&topic)
            .encryption_keys(["rsa-a"], no_keys())
            .crypto_failure_action(ProducerCryptoFailureAction::Send)
            .configure(|o| {
                if batch {
                    o.batching = BatchingOptions::enabled().with_limits(
                        2,
                        1 << 20,
                        Duration::from_millis(200),
                    );
                }
            })
            .create()?;
        let receipts = [p.send_async(b"a".to_vec())?, p.send_async(b"b".to_vec())?];
        for r in receipts {
            r.wait()?;
        }
        p.close()?;
    }
    // a consumer without any key reader gets them in clear, not marked encrypted
    for _ in 0..4 {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        assert!(!m.is_encrypted());
        assert!(m.encryption.is_none(), "sent without encryption");
        assert!(m.payload == b"a"[..] || m.payload == b"b"[..]);
        consumer.ack(&m)?;
    }
    assert!(consumer.receive_timeout(Duration::from_secs(1))?.is_none());
    Ok(())
}

/// The builders' encryption setters on tokio and smol (pulsar-async's builders) and blocking:
/// a producer with `encryption_keys`, a consumer and a reader with `crypto_key_reader`, and a
/// consumer without a key under `crypto_failure_action(Consume)` that sees the ciphertext.
#[test]
fn builder_setters_encrypt_and_decrypt_on_every_runtime() -> R {
    use pulsar_tests::facade::{Env, Rt, TClient};
    for rt in [Rt::Tokio, Rt::Smol] {
        let env = Env::new(rt);
        let TClient::Async(env, c) =
            env.client(pulsar_async::ClientOptions::new(&broker().service_url))?
        else {
            unreachable!("an async runtime")
        };
        let topic = unique_topic("crypto-setters");
        let text = format!("{rt:?}");
        env.block_on(async {
            let consumer = c
                .consumer(&topic)
                .subscription("dec")
                .crypto_key_reader(reader("rsa-a"))
                .subscribe()
                .await?;
            let raw = c
                .consumer(&topic)
                .subscription("raw")
                .crypto_failure_action(CryptoFailureAction::Consume)
                .subscribe()
                .await?;
            let p = c
                .producer(&topic)
                .encryption_keys(["rsa-a"], reader("rsa-a"))
                .crypto_failure_action(ProducerCryptoFailureAction::Fail)
                .create()
                .await?;
            p.send(text.clone().into_bytes()).await?;
            let m = consumer
                .receive_timeout(TIMEOUT)
                .await?
                .ok_or("no message")?;
            assert_eq!(m.payload, text.as_bytes());
            assert!(m.encryption.is_some() && !m.is_encrypted());
            let m = raw.receive_timeout(TIMEOUT).await?.ok_or("no message")?;
            assert!(m.is_encrypted(), "{rt:?}: the broker holds ciphertext");
            assert_ne!(m.payload, text.as_bytes());
            let r = c
                .reader(&topic)
                .start_message_id(pulsar_core::MessageId::EARLIEST)
                .crypto_key_reader(reader("rsa-a"))
                .crypto_failure_action(CryptoFailureAction::Fail)
                .create()
                .await?;
            let m = r.receive_timeout(TIMEOUT).await?.ok_or("no message")?;
            assert_eq!(m.payload, text.as_bytes());
            p.close().await?;
            Ok::<(), Box<dyn std::error::Error>>(())
        })?;
    }
    // blocking
    let c = client()?;
    let topic = unique_topic("crypto-setters");
    let consumer = c
        .consumer(&topic)
        .subscription("dec")
        .crypto_key_reader(reader("rsa-a"))
        .subscribe()?;
    let raw = c
        .consumer(&topic)
        .subscription("raw")
        .crypto_failure_action(CryptoFailureAction::Consume)
        .subscribe()?;
    let p = c
        .producer(&topic)
        .encryption_keys(["rsa-a"], reader("rsa-a"))
        .crypto_failure_action(ProducerCryptoFailureAction::Fail)
        .create()?;
    p.send(b"blocking".to_vec())?;
    let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert_eq!(m.payload, &b"blocking"[..]);
    let m = raw.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert!(m.is_encrypted());
    let r = c
        .reader(&topic)
        .start_message_id(pulsar_core::MessageId::EARLIEST)
        .crypto_key_reader(reader("rsa-a"))
        .crypto_failure_action(CryptoFailureAction::Fail)
        .create()?;
    let m = r.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert_eq!(m.payload, &b"blocking"[..]);
    p.close()?;
    Ok(())
}
