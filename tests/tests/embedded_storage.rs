//! The embedded broker's on-disk log, retention and backlog quotas (`pulsar-embedded`): restarts
//! over the same directory keep every acknowledged (receipted) message and the cursors, for each
//! fsync policy; a torn final record is truncated and reported; retention drops acknowledged
//! messages; backlog quotas refuse producers or evict backlog.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use pulsar_async::core::ServerErrorCode;
use pulsar_async::{
    ClientOptions, ConsumerOptions, Error, InitialPosition, Launch, OutgoingMessage,
    SubscriptionType,
};
use pulsar_embedded::core::{BacklogPolicy, BacklogQuota, ClusterConfig, Retention};
use pulsar_embedded::{BrokerHandle, Builder, EmbeddedBroker, FsyncPolicy, StorageConfig};
use pulsar_tests::facade::{Env, Rt, TClient};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn broker_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn start(b: Builder) -> BrokerHandle {
    broker_runtime()
        .block_on(b.bind("127.0.0.1:0").start())
        .expect("embedded broker starts")
}

fn scratch(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pulsar-embedded-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn client(env: &Env, broker: &BrokerHandle, timeout: Duration) -> Result<TClient, Error> {
    let mut o = ClientOptions::new(broker.service_url());
    o.core.operation_timeout = timeout;
    env.client(o)
}

fn sub(name: &str) -> ConsumerOptions {
    let mut o = ConsumerOptions::new(name);
    o.subscription_type = SubscriptionType::Shared;
    o.initial_position = InitialPosition::Earliest;
    o
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(dir.join("topics"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(t.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "seg") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Produces `n` messages `m0..` (every one receipted), consumes and acknowledges the first
/// `acked` on subscription `s`, then stops the broker.
fn first_run(storage: StorageConfig, n: usize, acked: usize) -> TestResult {
    let broker = start(EmbeddedBroker::builder().storage(storage));
    let env = Env::new(Rt::Blocking);
    let c = client(&env, &broker, Duration::from_secs(10))?;
    let mut consumer = c.consumer("durable", sub("s"))?;
    let p = c.producer("durable")?;
    for i in 0..n {
        p.send(OutgoingMessage::new(format!("m{i}").into_bytes()))?;
    }
    for i in 0..acked {
        let m = consumer.receive()?;
        assert_eq!(m.payload.as_ref(), format!("m{i}").as_bytes());
        consumer.ack(&m)?;
    }
    // acknowledgements travel asynchronously: wait until the broker has them
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while broker
        .stats()
        .iter()
        .flat_map(|t| t.subscriptions.iter().map(|s| s.backlog))
        .sum::<u64>()
        != (n - acked) as u64
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    c.close()?;
    broker_runtime().block_on(broker.shutdown());
    Ok(())
}

/// After the restart, subscription `s` gets exactly `m{acked}..m{n-1}`.
fn second_run(
    storage: StorageConfig,
    n: usize,
    acked: usize,
) -> Result<BrokerHandle, Box<dyn std::error::Error>> {
    let broker = start(EmbeddedBroker::builder().storage(storage));
    let env = Env::new(Rt::Blocking);
    let c = client(&env, &broker, Duration::from_secs(10))?;
    let mut consumer = c.consumer("durable", sub("s"))?;
    for i in acked..n {
        let m = consumer.receive()?;
        assert_eq!(
            String::from_utf8_lossy(&m.payload),
            format!("m{i}"),
            "after the restart"
        );
        consumer.ack(&m)?;
    }
    // a new subscription from the earliest sees the whole log
    let mut all = c.consumer("durable", sub("new"))?;
    for i in 0..n {
        assert_eq!(all.receive()?.payload.as_ref(), format!("m{i}").as_bytes());
    }
    c.close()?;
    Ok(broker)
}

/// For each fsync policy: everything receipted survives a restart over the same directory, and
/// so does the cursor of the subscription.
#[test]
fn restart_keeps_receipted_messages_and_cursors() -> TestResult {
    for (name, policy) in [
        ("always", FsyncPolicy::Always),
        ("interval", FsyncPolicy::Interval(Duration::from_millis(50))),
        ("never", FsyncPolicy::Never),
    ] {
        let dir = scratch(&format!("restart-{name}"))?;
        first_run(StorageConfig::new(&dir, policy), 100, 40)?;
        let broker = second_run(StorageConfig::new(&dir, policy), 100, 40)?;
        let r = broker.recovery().ok_or("a recovery report")?;
        assert_eq!((r.topics, r.entries), (1, 100), "{name}: {r:?}");
        assert!(r.truncations.is_empty(), "{name}: {r:?}");
        broker_runtime().block_on(broker.shutdown());
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// A final record cut short (a write the crash interrupted), or garbage after the last record:
/// the tail is truncated, reported, and everything before it is served.
#[test]
fn torn_final_record_is_truncated_and_reported() -> TestResult {
    let dir = scratch("torn")?;
    let storage = || StorageConfig::new(&dir, FsyncPolicy::Always);
    first_run(storage(), 20, 0)?;
    let seg = segments(&dir).pop().ok_or("a segment")?;
    // garbage after the last whole record
    let mut data = std::fs::read(&seg)?;
    let whole = data.len() as u64;
    data.extend_from_slice(&[0x55; 13]);
    std::fs::write(&seg, &data)?;
    let broker = second_run(storage(), 20, 0)?;
    let r = broker.recovery().ok_or("a recovery report")?;
    assert_eq!(r.entries, 20);
    assert_eq!(r.truncations.len(), 1, "{r:?}");
    assert_eq!(r.truncations[0].offset, whole);
    assert_eq!(r.truncations[0].dropped_bytes, 13);
    broker_runtime().block_on(broker.shutdown());
    // the last record cut in the middle: the 20th message is gone, the others are served
    let data = std::fs::read(&seg)?;
    std::fs::write(&seg, &data[..data.len() - 5])?;
    let broker = start(EmbeddedBroker::builder().storage(storage()));
    let r = broker.recovery().ok_or("a recovery report")?;
    assert_eq!(r.entries, 19, "{r:?}");
    assert_eq!(r.truncations.len(), 1, "{r:?}");
    assert!(r.truncations[0].reason.contains("cut short"), "{r:?}");
    broker_runtime().block_on(broker.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn quick_config() -> ClusterConfig {
    let mut cfg = ClusterConfig::new(1, 0);
    cfg.persist_latency = (Duration::ZERO, Duration::ZERO);
    cfg.notes = false;
    cfg.storage_check_interval = Duration::from_millis(20);
    cfg
}

/// Retention of acknowledged messages: beyond the size limit they are dropped (a new
/// subscription from the earliest no longer sees them) and whole segments are deleted.
#[test]
fn retention_drops_acknowledged_messages() -> TestResult {
    let dir = scratch("retention")?;
    let mut cfg = quick_config();
    cfg.retention = Retention::new(Some(0), None);
    let broker = start(
        EmbeddedBroker::builder()
            .cluster_config(cfg)
            .storage(StorageConfig::new(&dir, FsyncPolicy::Never).segment_bytes(200)),
    );
    let env = Env::new(Rt::Blocking);
    let c = client(&env, &broker, Duration::from_secs(10))?;
    let mut consumer = c.consumer("kept", sub("s"))?;
    let p = c.producer("kept")?;
    for i in 0..10 {
        p.send(OutgoingMessage::new(format!("old-{i:040}").into_bytes()))?;
    }
    assert!(segments(&dir).len() > 2);
    for _ in 0..10 {
        let m = consumer.receive()?;
        consumer.ack(&m)?;
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(segments(&dir).len() <= 1, "{:?}", segments(&dir));
    p.send(OutgoingMessage::new(b"new".to_vec()))?;
    let mut late = c.consumer("kept", sub("late"))?;
    assert_eq!(late.receive()?.payload.as_ref(), b"new");
    c.close()?;
    broker_runtime().block_on(broker.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn code(e: &Error) -> Option<ServerErrorCode> {
    match e {
        Error::Client(c) => c.server_code(),
        _ => None,
    }
}

/// Backlog quotas: over the limit, producer_exception refuses new producers with
/// ProducerBlockedQuotaExceededException; producer_request_hold refuses them with the retriable
/// ProducerBlockedQuotaExceededError until the backlog is consumed; consumer_backlog_eviction
/// drops the oldest backlog.
#[test]
fn backlog_quota_policies() -> TestResult {
    let env = Env::new(Rt::Blocking);
    for policy in [
        BacklogPolicy::ProducerException,
        BacklogPolicy::ProducerRequestHold,
        BacklogPolicy::ConsumerBacklogEviction,
    ] {
        let mut cfg = quick_config();
        cfg.backlog_quota = Some(BacklogQuota::bytes(1000, policy));
        let broker = start(EmbeddedBroker::builder().cluster_config(cfg));
        let c = client(&env, &broker, Duration::from_secs(2))?;
        let mut consumer = c.consumer("quota", sub("s"))?;
        let p = c.producer("quota")?;
        // past the quota the producer is disconnected and its later sends fail
        let sent = (0..20)
            .filter(|_| p.send(OutgoingMessage::new(vec![b'x'; 100])).is_ok())
            .count();
        assert!(sent > 10, "{policy:?}: {sent} sent");
        std::thread::sleep(Duration::from_millis(200));
        let backlog = || -> u64 {
            broker
                .stats()
                .iter()
                .flat_map(|t| t.subscriptions.iter().map(|s| s.backlog))
                .sum()
        };
        match policy {
            BacklogPolicy::ConsumerBacklogEviction => {
                assert!(backlog() <= 10, "evicted to the quota: {}", backlog());
            }
            _ => {
                let want = if policy == BacklogPolicy::ProducerException {
                    ServerErrorCode::ProducerBlockedQuotaExceededException
                } else {
                    ServerErrorCode::ProducerBlockedQuotaExceededError
                };
                match c.producer("quota") {
                    Err(e) => assert!(
                        code(&e) == Some(want)
                            || matches!(&e, Error::Client(c) if *c == pulsar_async::core::Error::Timeout),
                        "{policy:?}: {e:?}"
                    ),
                    Ok(_) => panic!("{policy:?}: a producer over the quota"),
                }
                for _ in 0..sent {
                    let m = consumer.receive()?;
                    consumer.ack(&m)?;
                }
                std::thread::sleep(Duration::from_millis(200));
                let again = c.producer("quota")?;
                again.send(OutgoingMessage::new(b"after".to_vec()))?;
            }
        }
        c.close()?;
        broker_runtime().block_on(broker.shutdown());
    }
    Ok(())
}

/// With deduplication, a producer's last sequence id survives a restart over the same directory
/// (a producer coming back under its name continues after it), and a producer with a generated
/// name after the restart does not inherit a recovered producer's sequence.
#[test]
fn deduplication_state_survives_a_restart() -> TestResult {
    let dir = scratch("dedup")?;
    let storage = || StorageConfig::new(&dir, FsyncPolicy::Always);
    let launch = |broker: &BrokerHandle| {
        let mut o = ClientOptions::new(broker.service_url());
        o.core.operation_timeout = Duration::from_secs(10);
        pulsar_blocking::Blocking::launch(o)
    };
    let broker = start(
        EmbeddedBroker::builder()
            .deduplication(true)
            .storage(storage()),
    );
    let c = launch(&broker)?;
    let named = c.producer("dedup").name("dp").create()?;
    let anonymous = c.producer("dedup").create()?;
    for i in 0..5 {
        named.send(format!("n{i}"))?;
        anonymous.send(format!("a{i}"))?;
    }
    c.close()?;
    broker_runtime().block_on(broker.shutdown());

    let broker = start(
        EmbeddedBroker::builder()
            .deduplication(true)
            .storage(storage()),
    );
    let c = launch(&broker)?;
    let named = c.producer("dedup").name("dp").create()?;
    assert_eq!(named.last_sequence_id(), 4);
    let fresh = c.producer("dedup").create()?;
    assert_eq!(
        fresh.last_sequence_id(),
        -1,
        "generated name {}",
        fresh.name()
    );
    fresh.send("f0")?;
    c.close()?;
    broker_runtime().block_on(broker.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
