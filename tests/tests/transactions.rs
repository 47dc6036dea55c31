//! Transactions against a real broker with the transaction coordinator enabled
//! (`scripts/pulsar-broker start --txn`, or `PULSAR_TEST_TXN_URL`): commit, abort, the
//! transaction timeout, transactional acknowledgements (applied only on commit, conflicts
//! reported), several partitions and topics in one transaction, and a broker restart in the
//! middle of a transaction. The main bodies run once per runtime (tokio, smol, blocking).

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use pulsar_async::{
    ClientOptions, ConsumerOptions, Error, InitialPosition, Message, OutgoingMessage,
    SubscriptionType, TxnError, TxnState,
};
use pulsar_tests::facade::{Env, Rt, TClient, TConsumer};
use pulsar_tests::support::{self, unique_topic, BrokerOptions, BrokerProcess, JavaProgram};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const RUNTIMES: [Rt; 3] = [Rt::Tokio, Rt::Smol, Rt::Blocking];

fn options_for(url: &str) -> ClientOptions {
    let mut o = ClientOptions::new(url);
    o.core.operation_timeout = Duration::from_secs(30);
    o
}

fn client(env: &Env) -> Result<TClient, Box<dyn std::error::Error>> {
    let broker = support::txn_broker()?;
    Ok(env.client(options_for(&broker.service_url))?)
}

fn msg(payload: impl Into<String>) -> OutgoingMessage {
    OutgoingMessage::new(payload.into().into_bytes())
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

fn sub(name: &str) -> ConsumerOptions {
    ConsumerOptions::new(name).with_initial_position(InitialPosition::Earliest)
}

/// Every message received until `quiet` passes without one (acknowledged).
fn drain(c: &mut TConsumer, quiet: Duration) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    while let Some(m) = c.receive_timeout(quiet)? {
        c.ack(&m)?;
        out.push(text(&m));
    }
    Ok(out)
}

fn txn_error(e: &Error) -> Option<&TxnError> {
    match e {
        Error::Client(pulsar_async::core::Error::Transaction(t)) => Some(t),
        Error::Send(pulsar_async::SendError::Transaction(t)) => Some(t),
        _ => None,
    }
}

#[test]
fn committed_messages_are_delivered_exactly_once_and_aborted_ones_never() -> TestResult {
    for rt in RUNTIMES {
        let env = Env::new(rt);
        let client = client(&env)?;
        let topic = unique_topic(&format!("txn-commit-{rt:?}"));
        let mut consumer = client.consumer(&topic, sub("s"))?;
        let producer = client.producer(&topic)?;

        let txn = client.new_transaction(Duration::from_secs(60))?;
        assert_eq!(txn.state(), Some(TxnState::Open));
        for i in 0..5 {
            producer.send_with_txn(&txn, msg(format!("c{i}")))?;
        }
        // Not visible before the commit.
        assert!(consumer.receive_timeout(Duration::from_secs(2))?.is_none());
        txn.commit()?;
        assert_eq!(
            txn.state(),
            None,
            "{rt:?}: an ended transaction is forgotten"
        );

        let aborted = client.new_transaction(Duration::from_secs(60))?;
        for i in 0..3 {
            producer.send_with_txn(&aborted, msg(format!("a{i}")))?;
        }
        aborted.abort()?;
        producer.send(msg("after"))?;

        let got = drain(&mut consumer, Duration::from_secs(3))?;
        assert_eq!(got, vec!["c0", "c1", "c2", "c3", "c4", "after"], "{rt:?}");
        // Ending twice is refused.
        let again = txn.commit().expect_err("second commit");
        assert!(txn_error(&again).is_some(), "{rt:?}: {again:?}");
        client.close()?;
    }
    Ok(())
}

#[test]
fn transactional_acks_apply_only_on_commit_and_conflicts_are_reported() -> TestResult {
    for rt in RUNTIMES {
        let env = Env::new(rt);
        let client = client(&env)?;
        let topic = unique_topic(&format!("txn-ack-{rt:?}"));
        let shared = sub("s").with_type(SubscriptionType::Shared);
        let mut consumer = client.consumer(&topic, shared.clone())?;
        let producer = client.producer(&topic)?;
        for i in 0..4 {
            producer.send(msg(format!("m{i}")))?;
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(consumer.receive()?);
        }
        consumer.ack(&got[2])?;
        consumer.ack(&got[3])?;

        // Acknowledged in a transaction that aborts: the messages come back.
        let aborted = client.new_transaction(Duration::from_secs(60))?;
        consumer.ack_with_txn(&aborted, &got[0], false)?;
        consumer.ack_with_txn(&aborted, &got[1], false)?;
        aborted.abort()?;
        let mut again: Vec<Message> = Vec::new();
        for _ in 0..2 {
            again.push(consumer.receive()?);
        }
        let mut names: Vec<String> = again.iter().map(text).collect();
        names.sort();
        assert_eq!(names, vec!["m0", "m1"], "{rt:?}");

        // A second transaction acknowledging a message pending in the first one conflicts; its
        // commit then aborts it.
        let txn = client.new_transaction(Duration::from_secs(60))?;
        let rival = client.new_transaction(Duration::from_secs(60))?;
        consumer.ack_with_txn(&txn, &again[0], false)?;
        consumer.ack_with_txn(&txn, &again[1], false)?;
        let conflict = consumer
            .ack_with_txn(&rival, &again[0], false)
            .expect_err("conflicting acknowledgement");
        let t = txn_error(&conflict).ok_or("not a transaction error")?;
        assert!(matches!(t, TxnError::Conflict(_)), "{rt:?}: {t:?}");
        assert!(!conflict.is_retriable());
        let failed = rival.commit().expect_err("commit after a conflict");
        assert!(
            matches!(txn_error(&failed), Some(TxnError::OperationFailed(_))),
            "{rt:?}: {failed:?}"
        );
        txn.commit()?;
        consumer.close()?;

        // Everything is acknowledged now: a new consumer of the subscription gets nothing.
        let mut after = client.consumer(&topic, shared)?;
        assert!(
            after.receive_timeout(Duration::from_secs(3))?.is_none(),
            "{rt:?}"
        );
        client.close()?;
    }
    Ok(())
}

#[test]
fn an_open_transaction_times_out_its_messages_are_never_delivered() -> TestResult {
    let env = Env::new(Rt::Tokio);
    let client = client(&env)?;
    let topic = unique_topic("txn-timeout");
    let mut consumer = client.consumer(&topic, sub("s"))?;
    let producer = client.producer(&topic)?;
    let txn = client.new_transaction(Duration::from_secs(3))?;
    producer.send_with_txn(&txn, msg("late"))?;
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(txn.state(), Some(TxnState::TimedOut));
    let e = producer
        .send_with_txn(&txn, msg("later"))
        .expect_err("send after the timeout");
    assert!(
        matches!(txn_error(&e), Some(TxnError::TimedOut(_))),
        "{e:?}"
    );
    let e = txn.commit().expect_err("commit after the timeout");
    assert!(
        matches!(txn_error(&e), Some(TxnError::TimedOut(_))),
        "{e:?}"
    );
    assert!(!e.is_retriable());
    // The coordinator aborted it: a message sent after it is delivered, the transaction's never.
    producer.send(msg("plain"))?;
    let got = drain(&mut consumer, Duration::from_secs(5))?;
    assert_eq!(got, vec!["plain"]);
    client.close()?;
    Ok(())
}

#[test]
fn one_transaction_spans_partitions_and_topics() -> TestResult {
    for rt in [Rt::Tokio, Rt::Blocking] {
        let env = Env::new(rt);
        let client = client(&env)?;
        let admin = support::txn_broker()?.admin()?;
        let partitioned = unique_topic(&format!("txn-parts-{rt:?}"));
        admin.create_partitioned(&partitioned, 3)?;
        let other = unique_topic(&format!("txn-other-{rt:?}"));
        let mut c1 = client.consumer(&partitioned, sub("s"))?;
        let mut c2 = client.consumer(&other, sub("s"))?;
        let p1 = client.producer(&partitioned)?;
        let p2 = client.producer(&other)?;

        let txn = client.new_transaction(Duration::from_secs(60))?;
        // Queued without waiting for receipts: the commit waits for them.
        for i in 0..30 {
            p1.send_async_with_txn(&txn, msg(format!("p{i}")).with_key(format!("k{i}")))?;
        }
        for i in 0..10 {
            p2.send_async_with_txn(&txn, msg(format!("o{i}")))?;
        }
        let rolled_back = client.new_transaction(Duration::from_secs(60))?;
        for i in 0..6 {
            p1.send_with_txn(&rolled_back, msg(format!("x{i}")).with_key(format!("x{i}")))?;
            p2.send_with_txn(&rolled_back, msg(format!("y{i}")))?;
        }
        rolled_back.abort()?;
        txn.commit()?;

        let got1: BTreeSet<String> = drain(&mut c1, Duration::from_secs(3))?
            .into_iter()
            .collect();
        let want1: BTreeSet<String> = (0..30).map(|i| format!("p{i}")).collect();
        assert_eq!(got1, want1, "{rt:?}");
        let got2 = drain(&mut c2, Duration::from_secs(3))?;
        let want2: Vec<String> = (0..10).map(|i| format!("o{i}")).collect();
        assert_eq!(got2, want2, "{rt:?}");
        client.close()?;
    }
    Ok(())
}

#[test]
fn a_transaction_survives_a_broker_restart() -> TestResult {
    let mut broker = BrokerProcess::start(BrokerOptions::new().txn())?;
    let env = Env::new(Rt::Tokio);
    let client = env.client(options_for(&broker.info().service_url))?;
    let topic = unique_topic("txn-restart");
    let mut consumer = client.consumer(&topic, sub("s"))?;
    // The test is about surviving the restart, not its speed: after it, the topic reloads and
    // replays its transaction buffer before the producer is back, which took more than the
    // default 30 s send timeout once on a CI machine with a load average of 21.
    let options =
        pulsar_async::ProducerOptions::default().with_send_timeout(Duration::from_secs(120));
    let producer = client.producer_with(&topic, options, true)?;
    let txn = client.new_transaction(Duration::from_secs(300))?;
    for i in 0..3 {
        producer.send_with_txn(&txn, msg(format!("before{i}")))?;
    }
    broker.restart()?;
    // The producer, the consumer and the coordinator connection come back.
    for i in 0..2 {
        producer.send_with_txn(&txn, msg(format!("after{i}")))?;
    }
    txn.commit()?;
    let got = drain(&mut consumer, Duration::from_secs(5))?;
    assert_eq!(
        got,
        vec!["before0", "before1", "before2", "after0", "after1"]
    );
    // And new transactions work.
    let next = client.new_transaction(Duration::from_secs(60))?;
    producer.send_with_txn(&next, msg("next"))?;
    next.commit()?;
    assert_eq!(drain(&mut consumer, Duration::from_secs(3))?, vec!["next"]);
    client.close()?;
    Ok(())
}

// ------------------------------------------------------------------ the official Java client

/// Runs `tests/java/TxnInterop.java` with `args`; its `msg` lines.
fn java(args: &[&str]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let program = JavaProgram::compile("TxnInterop")?;
    let output = program.command(args).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        return Err(format!("TxnInterop {args:?} failed: {stdout}\n{}", tail.join("\n")).into());
    }
    Ok(stdout
        .lines()
        .filter_map(|l| l.strip_prefix("msg ").map(str::to_owned))
        .collect())
}

#[test]
fn java_commits_and_aborts_and_this_client_reads_committed_only() -> TestResult {
    let broker = support::txn_broker()?;
    let env = Env::new(Rt::Tokio);
    let client = env.client(options_for(&broker.service_url))?;
    let topic = unique_topic("txn-java-produce");
    let mut consumer = client.consumer(&topic, sub("s"))?;
    java(&["produce", &broker.service_url, &topic, "j"])?;
    let got = drain(&mut consumer, Duration::from_secs(3))?;
    let mut want: Vec<String> = (0..5).map(|i| format!("j-commit-{i}")).collect();
    want.push("j-end".into());
    assert_eq!(got, want);
    client.close()?;
    Ok(())
}

#[test]
fn this_client_commits_and_aborts_and_java_reads_committed_only() -> TestResult {
    let broker = support::txn_broker()?;
    let env = Env::new(Rt::Blocking);
    let client = env.client(options_for(&broker.service_url))?;
    let topic = unique_topic("txn-java-consume");
    let producer = client.producer(&topic)?;
    let commit = client.new_transaction(Duration::from_secs(60))?;
    let abort = client.new_transaction(Duration::from_secs(60))?;
    for i in 0..5 {
        producer.send_with_txn(&commit, msg(format!("r-commit-{i}")))?;
        if i < 3 {
            producer.send_with_txn(&abort, msg(format!("r-abort-{i}")))?;
        }
    }
    // Open: the Java consumer sees nothing (not even later plain messages: they wait behind
    // the open transactions).
    producer.send(msg("r-plain"))?;
    assert_eq!(
        java(&["consume", &broker.service_url, &topic, "java", "3000"])?,
        Vec::<String>::new()
    );
    abort.abort()?;
    commit.commit()?;
    producer.send(msg("r-end"))?;
    let got = java(&["consume", &broker.service_url, &topic, "java", "3000"])?;
    let mut want: Vec<String> = (0..5).map(|i| format!("r-commit-{i}")).collect();
    want.extend(["r-plain".to_string(), "r-end".to_string()]);
    assert_eq!(got, want);
    client.close()?;
    Ok(())
}

// ------------------------------------------------- the exactly-once pipeline, crashed midway

/// Runs the pipeline example (`pulsar-tokio/examples/exactly_once.rs`) to its end.
fn pipeline(url: &str, input: &str, output: &str, extra: &[&str]) -> std::io::Result<Output> {
    let mut args = vec![
        url,
        input,
        output,
        "--batch",
        "10",
        "--txn-timeout-secs",
        "5",
    ];
    args.extend_from_slice(&["--idle-secs", "8"]);
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_txn-pipeline"))
        .args(&args)
        .output()
}

#[test]
fn the_exactly_once_pipeline_survives_a_crash_mid_transaction() -> TestResult {
    let broker = support::txn_broker()?;
    let env = Env::new(Rt::Blocking);
    let client = env.client(options_for(&broker.service_url))?;
    let input = unique_topic("txn-pipeline-in");
    let output = unique_topic("txn-pipeline-out");
    let mut results = client.consumer(&output, sub("check"))?;
    let producer = client.producer(&input)?;
    for i in 0..25 {
        producer.send(msg(format!("in-{i}")))?;
    }
    // First run: one transaction of 10 committed, then a crash after 5 messages of the second
    // (their outputs sent and their inputs acknowledged, in the open transaction).
    let crashed = pipeline(
        &broker.service_url,
        &input,
        &output,
        &["--crash-after", "15"],
    )?;
    let log = String::from_utf8_lossy(&crashed.stdout).into_owned();
    assert_eq!(crashed.status.code(), Some(3), "{log}");
    assert!(log.contains("crashing in transaction"), "{log}");
    // Nothing of the crashed transaction is visible, the first one is.
    let seen_early = drain(&mut results, Duration::from_secs(2))?;
    assert_eq!(seen_early.len(), 10, "{seen_early:?}");

    // The restarted pipeline redoes the crashed transaction's work once the coordinator
    // aborted it (its timeout), and the rest.
    let rerun = pipeline(&broker.service_url, &input, &output, &[])?;
    let log = String::from_utf8_lossy(&rerun.stdout).into_owned();
    assert!(
        rerun.status.success(),
        "{log}\n{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
    let mut got = seen_early;
    got.extend(drain(&mut results, Duration::from_secs(3))?);
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "duplicates downstream: {got:?}");
    let want: BTreeSet<String> = (0..25).map(|i| format!("out-{i}")).collect();
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want, "{log}");
    client.close()?;
    Ok(())
}

#[test]
fn batched_messages_are_acknowledged_in_transactions_one_by_one_and_cumulatively() -> TestResult {
    let env = Env::new(Rt::Tokio);
    let client = client(&env)?;
    let topic = unique_topic("txn-batch-ack");
    let exclusive = sub("s").with_type(SubscriptionType::Exclusive);
    let mut consumer = client.consumer(&topic, exclusive.clone())?;
    let batching = pulsar_async::BatchingOptions::enabled().with_limits(
        10,
        1 << 20,
        Duration::from_millis(200),
    );
    let producer = client.producer_with(
        &topic,
        pulsar_async::ProducerOptions::default().with_batching(batching),
        true,
    )?;
    let receipts: Vec<_> = (0..10)
        .map(|i| producer.send_async(msg(format!("b{i}"))))
        .collect::<Result<_, _>>()?;
    for r in receipts {
        r.wait()?;
    }
    let got: Vec<Message> = (0..10)
        .map(|_| consumer.receive())
        .collect::<Result<_, _>>()?;
    assert!(got[9].id.batch_size > 1, "not batched: {:?}", got[9].id);

    // Cumulatively up to the 5th in a transaction that aborts: everything comes back.
    let aborted = client.new_transaction(Duration::from_secs(60))?;
    consumer.ack_with_txn(&aborted, &got[4], true)?;
    aborted.abort()?;
    let again: Vec<Message> = (0..10)
        .map(|_| consumer.receive())
        .collect::<Result<_, _>>()?;
    assert_eq!(again.iter().map(text).collect::<Vec<_>>()[0], "b0");

    // The first five one by one, the rest cumulatively, committed: nothing is left.
    let txn = client.new_transaction(Duration::from_secs(60))?;
    for m in &again[..5] {
        consumer.ack_with_txn(&txn, m, false)?;
    }
    consumer.ack_with_txn(&txn, &again[9], true)?;
    txn.commit()?;
    consumer.close()?;
    let mut after = client.consumer(&topic, exclusive)?;
    let left = drain(&mut after, Duration::from_secs(3))?;
    assert!(left.is_empty(), "{left:?}");
    client.close()?;
    Ok(())
}
