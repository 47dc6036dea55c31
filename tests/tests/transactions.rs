//! Transactions against a real broker with the transaction coordinator enabled
//! (`scripts/pulsar-broker start --txn`, or `PULSAR_TEST_TXN_URL`): commit, abort, the
//! transaction timeout, transactional acknowledgements (applied only on commit, conflicts
//! reported), several partitions and topics in one transaction, and a broker restart in the
//! middle of a transaction. The main bodies run once per runtime (tokio, smol, blocking).

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_async::{
    ClientOptions, ConsumerOptions, Error, InitialPosition, Message, OutgoingMessage,
    SubscriptionType, TxnError, TxnState,
};
use pulsar_tests::facade::{Env, Rt, TClient, TConsumer};
use pulsar_tests::support::{self, unique_topic, BrokerOptions, BrokerProcess};

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
        assert_eq!(txn.state(), None, "{rt:?}: an ended transaction is forgotten");

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
