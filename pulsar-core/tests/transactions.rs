//! Transactions against a scripted coordinator: discovery through the assign topic's partitions,
//! TC_CLIENT_CONNECT, NEW_TXN, ADD_PARTITION_TO_TXN before the first send of each partition,
//! ADD_SUBSCRIPTION_TO_TXN before transactional acks, END_TXN after every receipt, the states,
//! timeouts, retries while a coordinator is not ready, and a coordinator that moved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pulsar_core::{
    ClientConfig, ConsumerOptions, Error, Event, MessageId, OutgoingMessage, ProducerId,
    ProducerOptions, SendError, ServerErrorCode, SubscriptionType, TxnError, TxnId, TxnState,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{message, meta, partitioned_metadata, HookCtx, Reply, Sim, SERVICE};

const ASSIGN: &str = "persistent://pulsar/system/transaction_coordinator_assign";
const SEC: Duration = Duration::from_secs(1);

/// What the scripted coordinator does, shared with the test.
#[derive(Default)]
struct Tc {
    /// Partitions of the assign topic.
    coordinators: u32,
    /// Answers to TC_CLIENT_CONNECT: the error of the nth one (`None`: success).
    connect_errors: Vec<Option<i32>>,
    /// Errors of the nth NEW_TXN.
    new_txn_errors: Vec<Option<i32>>,
    /// Error of every ACK with a transaction.
    ack_error: Option<i32>,
    /// Do not answer END_TXN.
    silent_end: bool,
    /// Do not answer SEND (the test injects receipts).
    hold_receipts: bool,
    next_txn: u64,
}

fn reply(cmd: impl Into<pb::BaseCommand>) -> Option<Vec<Reply>> {
    Some(vec![Reply::Cmd(cmd.into())])
}

/// A broker that also serves `tc.coordinators` transaction coordinators.
fn tc_sim(tc: Tc) -> (Sim, Rc<RefCell<Tc>>) {
    tc_sim_with(ClientConfig::new("pulsar://svc:6650").with_seed(1), tc)
}

fn tc_sim_with(config: ClientConfig, tc: Tc) -> (Sim, Rc<RefCell<Tc>>) {
    let mut sim = Sim::with_config(config);
    let tc = Rc::new(RefCell::new(tc));
    let state = tc.clone();
    sim.hook(SERVICE, move |ctx: &HookCtx, cmd: &pb::BaseCommand| {
        let mut tc = state.borrow_mut();
        match cmd.kind()? {
            Type::PartitionedMetadata => {
                let m = cmd.partition_metadata.as_deref()?;
                (m.topic == ASSIGN)
                    .then(|| vec![partitioned_metadata(m.request_id, tc.coordinators)])
            }
            Type::TcClientConnectRequest => {
                let r = cmd.tc_client_connect_request.as_deref()?;
                let error = tc.connect_errors.get(ctx.nth).copied().flatten();
                reply(pb::CommandTcClientConnectResponse {
                    request_id: r.request_id,
                    error,
                    message: error.map(|_| "not ready".into()),
                })
            }
            Type::NewTxn => {
                let r = cmd.new_txn.as_deref()?;
                let error = tc.new_txn_errors.get(ctx.nth).copied().flatten();
                tc.next_txn += 1;
                reply(pb::CommandNewTxnResponse {
                    request_id: r.request_id,
                    txnid_most_bits: Some(r.tc_id.unwrap_or(0)),
                    txnid_least_bits: Some(tc.next_txn),
                    error,
                    message: error.map(|_| "coordinator not found".into()),
                })
            }
            Type::AddPartitionToTxn => {
                let r = cmd.add_partition_to_txn.as_deref()?;
                reply(pb::CommandAddPartitionToTxnResponse {
                    request_id: r.request_id,
                    txnid_least_bits: r.txnid_least_bits,
                    txnid_most_bits: r.txnid_most_bits,
                    ..Default::default()
                })
            }
            Type::AddSubscriptionToTxn => {
                let r = cmd.add_subscription_to_txn.as_deref()?;
                reply(pb::CommandAddSubscriptionToTxnResponse {
                    request_id: r.request_id,
                    txnid_least_bits: r.txnid_least_bits,
                    txnid_most_bits: r.txnid_most_bits,
                    ..Default::default()
                })
            }
            Type::EndTxn => {
                let r = cmd.end_txn.as_deref()?;
                if tc.silent_end {
                    return Some(vec![]);
                }
                reply(pb::CommandEndTxnResponse {
                    request_id: r.request_id,
                    txnid_least_bits: r.txnid_least_bits,
                    txnid_most_bits: r.txnid_most_bits,
                    ..Default::default()
                })
            }
            Type::Ack => {
                let a = cmd.ack.as_deref()?;
                let rid = a.request_id?;
                a.txnid_most_bits?;
                reply(pb::CommandAckResponse {
                    consumer_id: a.consumer_id,
                    txnid_least_bits: a.txnid_least_bits,
                    txnid_most_bits: a.txnid_most_bits,
                    error: tc.ack_error,
                    message: tc.ack_error.map(|_| "conflict".into()),
                    request_id: Some(rid),
                })
            }
            Type::Send if tc.hold_receipts => Some(vec![]),
            _ => None,
        }
    });
    (sim, tc)
}

/// Opens a transaction and runs until its id is known.
fn open(sim: &mut Sim, timeout: Duration) -> Result<TxnId, Error> {
    let r = sim.client.new_transaction(sim.now, timeout).unwrap();
    let e = sim.run_until(
        Duration::from_secs(60),
        |e| matches!(e, Event::TransactionOpened { request, .. } if *request == r),
    );
    match e {
        Event::TransactionOpened { result, .. } => result,
        _ => unreachable!(),
    }
}

fn producer(sim: &mut Sim) -> ProducerId {
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(SEC, |e| matches!(e, Event::ProducerReady { .. }));
    p
}

fn ended(sim: &mut Sim, request: pulsar_core::RequestId) -> Result<(), Error> {
    let e = sim.run_until(
        Duration::from_secs(60),
        |e| matches!(e, Event::TransactionEnded { request: r, .. } if *r == request),
    );
    match e {
        Event::TransactionEnded { result, .. } => result,
        _ => unreachable!(),
    }
}

fn txn_error(e: &Error) -> &TxnError {
    match e {
        Error::Transaction(t) => t,
        other => panic!("not a transaction error: {other:?}"),
    }
}

/// Positions of the commands of these types, in the order the brokers received them.
fn order(sim: &Sim, types: &[Type]) -> Vec<Type> {
    sim.received
        .iter()
        .filter_map(|r| r.command.kind())
        .filter(|k| types.contains(k))
        .collect()
}

#[test]
fn commit_adds_each_partition_once_before_its_first_send_and_waits_for_every_receipt() {
    let (mut sim, tc) = tc_sim(Tc {
        coordinators: 2,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, Duration::from_secs(30)).unwrap();
    // One TC_CLIENT_CONNECT per coordinator, naming its id.
    let tcs: Vec<u64> = sim
        .received_of(Type::TcClientConnectRequest)
        .iter()
        .map(|r| r.command.tc_client_connect_request.as_ref().unwrap().tc_id)
        .collect();
    assert_eq!(tcs, vec![0, 1]);
    let new = sim.received_of(Type::NewTxn);
    assert_eq!(
        new[0].command.new_txn.as_ref().unwrap().txn_ttl_millis,
        Some(30_000)
    );
    assert_eq!(sim.client.transaction_state(txn), Some(TxnState::Open));

    tc.borrow_mut().hold_receipts = true;
    let sends: Vec<_> = (0..3)
        .map(|i| {
            let m = OutgoingMessage::new(format!("m{i}"));
            sim.client.send_in_transaction(sim.now, p, txn, m).unwrap()
        })
        .collect();
    sim.run_for(Duration::from_millis(50));
    let adds = sim.received_of(Type::AddPartitionToTxn);
    assert_eq!(adds.len(), 1, "one ADD_PARTITION_TO_TXN per partition");
    let add = adds[0].command.add_partition_to_txn.as_ref().unwrap();
    assert_eq!(
        add.partitions,
        vec!["persistent://public/default/t".to_string()]
    );
    assert_eq!(
        (add.txnid_most_bits, add.txnid_least_bits),
        (Some(txn.most_bits), Some(txn.least_bits))
    );
    assert_eq!(
        order(&sim, &[Type::AddPartitionToTxn, Type::Send])[0],
        Type::AddPartitionToTxn
    );
    let wire = sim.received_of(Type::Send);
    assert!(!wire.is_empty());
    for s in &wire {
        let send = s.command.send.as_ref().unwrap();
        assert_eq!(send.txnid_most_bits, Some(txn.most_bits));
        assert_eq!(send.txnid_least_bits, Some(txn.least_bits));
        let meta = &s.payload.as_ref().unwrap().metadata;
        assert_eq!(meta.txnid_most_bits, Some(txn.most_bits));
        assert_eq!(meta.txnid_least_bits, Some(txn.least_bits));
    }

    // The commit waits for the receipts.
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    assert_eq!(
        sim.client.transaction_state(txn),
        Some(TxnState::Committing)
    );
    sim.run_for(Duration::from_millis(50));
    assert!(
        sim.received_of(Type::EndTxn).is_empty(),
        "END_TXN before the receipts"
    );
    tc.borrow_mut().hold_receipts = false;
    for s in &wire {
        let send = s.command.send.as_ref().unwrap();
        let receipt = pb::CommandSendReceipt {
            producer_id: send.producer_id,
            sequence_id: send.sequence_id,
            highest_sequence_id: send.highest_sequence_id,
            message_id: Some(pb::MessageIdData {
                ledger_id: 7,
                entry_id: send.sequence_id,
                ..Default::default()
            }),
        };
        sim.inject(s.conn, Reply::Cmd(receipt.into()));
    }
    ended(&mut sim, commit).unwrap();
    let end = sim.received_of(Type::EndTxn);
    assert_eq!(end.len(), 1);
    assert_eq!(
        end[0].command.end_txn.as_ref().unwrap().txn_action,
        Some(pb::TxnAction::Commit as i32)
    );
    let completed = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::SendCompleted { send, result: Ok(_), .. } if sends.contains(send)))
        .count();
    assert_eq!(completed, 3);
    // Ended transactions are forgotten; committing again is refused.
    assert_eq!(sim.client.transaction_state(txn), None);
    let again = sim.client.commit_transaction(sim.now, txn).unwrap_err();
    assert!(matches!(txn_error(&again), TxnError::NotFound(t) if *t == txn));
}

#[test]
fn transactions_go_to_the_coordinators_in_turn() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 3,
        ..Tc::default()
    });
    let ids: Vec<u64> = (0..4)
        .map(|_| open(&mut sim, SEC * 10).unwrap().most_bits)
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 0]);
}

#[test]
fn a_non_partitioned_assign_topic_is_coordinator_zero() {
    let (mut sim, _tc) = tc_sim(Tc::default());
    let txn = open(&mut sim, SEC * 10).unwrap();
    assert_eq!(txn.most_bits, 0);
    let lookups: Vec<String> = sim
        .received_of(Type::Lookup)
        .iter()
        .map(|l| l.command.lookup_topic.as_ref().unwrap().topic.clone())
        .collect();
    assert!(lookups.contains(&ASSIGN.to_string()), "{lookups:?}");
}

#[test]
fn an_abort_is_sent_after_the_receipts_and_the_messages_partitions_are_named() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 10).unwrap();
    let s = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("x"))
        .unwrap();
    let abort = sim.client.abort_transaction(sim.now, txn).unwrap();
    assert_eq!(sim.client.transaction_state(txn), Some(TxnState::Aborting));
    ended(&mut sim, abort).unwrap();
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::SendCompleted { send, result: Ok(_), .. } if *send == s)));
    let end = sim.received_of(Type::EndTxn);
    assert_eq!(
        end[0].command.end_txn.as_ref().unwrap().txn_action,
        Some(pb::TxnAction::Abort as i32)
    );
    // Sends after the end are refused with the transaction's state.
    let r = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("late"))
        .unwrap_err();
    assert!(matches!(
        r.error,
        SendError::Transaction(TxnError::NotFound(_))
    ));
    assert!(r.message.is_some(), "the refused message comes back");
}

#[test]
fn a_partitioned_producer_adds_each_partition_it_sends_to() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    // Topic "pt" has 3 partitions.
    let prev = sim.broker(SERVICE).hook.take().unwrap();
    let prev = RefCell::new(prev);
    sim.hook(SERVICE, move |ctx, cmd| {
        if let Some(m) = cmd.partition_metadata.as_deref() {
            if m.topic.ends_with("/pt") {
                return Some(vec![partitioned_metadata(m.request_id, 3)]);
            }
        }
        (prev.borrow_mut())(ctx, cmd)
    });
    let p = sim
        .client
        .create_producer(sim.now, "pt", ProducerOptions::default())
        .unwrap();
    sim.run_until(SEC, |e| matches!(e, Event::ProducerReady { .. }));
    let txn = open(&mut sim, SEC * 10).unwrap();
    for k in ["a", "b", "c", "d", "e", "f"] {
        let m = OutgoingMessage::new(k).with_key(k);
        sim.client.send_in_transaction(sim.now, p, txn, m).unwrap();
    }
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    ended(&mut sim, commit).unwrap();
    let mut added: Vec<String> = sim
        .received_of(Type::AddPartitionToTxn)
        .iter()
        .flat_map(|a| {
            a.command
                .add_partition_to_txn
                .as_ref()
                .unwrap()
                .partitions
                .clone()
        })
        .collect();
    let n = added.len();
    added.sort();
    added.dedup();
    assert_eq!(n, added.len(), "a partition added twice: {added:?}");
    // Every partition a SEND went to was added before.
    let sent_to: std::collections::BTreeSet<u64> = sim
        .received_of(Type::Send)
        .iter()
        .map(|s| s.command.send.as_ref().unwrap().producer_id)
        .collect();
    assert_eq!(sent_to.len(), added.len());
    assert!(added.iter().all(|t| t.contains("/pt-partition-")));
}

#[test]
fn transactional_acks_add_the_subscription_and_a_conflict_turns_the_commit_into_an_abort() {
    let (mut sim, tc) = tc_sim(Tc {
        coordinators: 1,
        ack_error: Some(23), // TransactionConflict
        ..Tc::default()
    });
    let c = sim.subscribed(ConsumerOptions::new("sub"));
    let conn = sim.received_of(Type::Subscribe)[0].conn;
    let cid = sim.received_of(Type::Subscribe)[0]
        .command
        .subscribe
        .as_ref()
        .unwrap()
        .consumer_id;
    sim.inject(conn, message(cid, 1, b"a", meta(1)));
    sim.inject(conn, message(cid, 2, b"b", meta(2)));
    sim.run_until_seen(SEC, |e| matches!(e, Event::MessagesAvailable { .. }));
    let m1 = sim.client.receive(sim.now, c).unwrap();
    let m2 = sim.client.receive(sim.now, c).unwrap();
    let txn = open(&mut sim, SEC * 10).unwrap();
    tc.borrow_mut().ack_error = None;
    let a1 = sim
        .client
        .ack_message_in_transaction(sim.now, &m1, false, txn)
        .unwrap();
    sim.run_until_seen(
        SEC,
        |e| matches!(e, Event::AckCompleted { request, result: Ok(()), .. } if *request == a1),
    );
    let subs = sim.received_of(Type::AddSubscriptionToTxn);
    assert_eq!(subs.len(), 1);
    let s = &subs[0]
        .command
        .add_subscription_to_txn
        .as_ref()
        .unwrap()
        .subscription[0];
    assert_eq!(
        (s.topic.as_str(), s.subscription.as_str()),
        ("persistent://public/default/t", "sub")
    );
    let acks: Vec<pb::CommandAck> = sim
        .received_of(Type::Ack)
        .iter()
        .map(|a| a.command.ack.as_deref().unwrap().clone())
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].txnid_most_bits, Some(txn.most_bits));
    assert_eq!(acks[0].txnid_least_bits, Some(txn.least_bits));
    assert!(acks[0].request_id.is_some());
    // The second ack conflicts: the commit aborts instead.
    tc.borrow_mut().ack_error = Some(23);
    let a2 = sim
        .client
        .ack_in_transaction(sim.now, c, &m2.id, false, txn)
        .unwrap();
    let e = sim.run_until(
        SEC,
        |e| matches!(e, Event::AckCompleted { request, .. } if *request == a2),
    );
    let Event::AckCompleted {
        result: Err(err), ..
    } = e
    else {
        panic!("conflict not reported: {e:?}");
    };
    assert!(matches!(txn_error(&err), TxnError::Conflict(_)), "{err:?}");
    assert!(!err.is_retriable());
    assert_eq!(
        sim.received_of(Type::AddSubscriptionToTxn).len(),
        1,
        "added once"
    );
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    let err = ended(&mut sim, commit).unwrap_err();
    assert!(matches!(txn_error(&err), TxnError::OperationFailed(t) if *t == txn));
    let end = sim.received_of(Type::EndTxn);
    assert_eq!(
        end[0].command.end_txn.as_ref().unwrap().txn_action,
        Some(pb::TxnAction::Abort as i32)
    );
    // After the abort the consumer's unacknowledged messages are asked for again.
    sim.run_until_idle();
    assert!(!sim
        .received_of(Type::RedeliverUnacknowledgedMessages)
        .is_empty());
}

#[test]
fn cumulative_transactional_acks_of_a_batch_index_carry_the_ack_set() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let c = sim.subscribed(ConsumerOptions::new("sub").with_type(SubscriptionType::Failover));
    let txn = open(&mut sim, SEC * 10).unwrap();
    let mut id = MessageId::new(9, 4, -1);
    id.batch_index = 2;
    id.batch_size = 5;
    let r = sim
        .client
        .ack_in_transaction(sim.now, c, &id, true, txn)
        .unwrap();
    sim.run_until_seen(
        SEC,
        |e| matches!(e, Event::AckCompleted { request, .. } if *request == r),
    );
    let ack = sim.received_of(Type::Ack)[0]
        .command
        .ack
        .as_deref()
        .unwrap()
        .clone();
    assert_eq!(ack.ack_type, pb::command_ack::AckType::Cumulative as i32);
    assert_eq!(ack.message_id[0].ack_set, vec![0b11000]);
    assert_eq!(ack.message_id[0].batch_size, Some(5));
    // Cumulative acks are refused on Shared subscriptions.
    let shared = sim
        .client
        .subscribe(
            sim.now,
            "t2",
            ConsumerOptions::new("s2").with_type(SubscriptionType::Shared),
        )
        .unwrap();
    sim.run_until(
        SEC,
        |e| matches!(e, Event::ConsumerReady { consumer } if *consumer == shared),
    );
    let e = sim
        .client
        .ack_in_transaction(sim.now, shared, &id, true, txn)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidState(_)));
}

#[test]
fn a_coordinator_that_is_not_ready_is_retried_until_it_is() {
    // TransactionCoordinatorNotFound twice, then registered.
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        connect_errors: vec![Some(20), Some(20)],
        ..Tc::default()
    });
    let txn = open(&mut sim, SEC * 10).unwrap();
    assert_eq!(sim.received_of(Type::TcClientConnectRequest).len(), 3);
    assert_eq!(txn.most_bits, 0);
}

#[test]
fn a_coordinator_that_never_gets_ready_fails_new_transactions_at_the_operation_timeout() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        connect_errors: vec![Some(20); 1000],
        ..Tc::default()
    });
    let started = sim.now;
    let err = open(&mut sim, SEC * 10).unwrap_err();
    let t = txn_error(&err);
    assert!(
        matches!(t, TxnError::CoordinatorNotAvailable { .. }),
        "{t:?}"
    );
    assert!(err.is_retriable());
    assert!(sim.now - started <= Duration::from_secs(31));
}

#[test]
fn a_broker_without_transactions_fails_at_once_and_not_retriably() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        connect_errors: vec![Some(22); 10], // NotAllowedError
        ..Tc::default()
    });
    let started = sim.now;
    let err = open(&mut sim, SEC * 10).unwrap_err();
    assert_eq!(txn_error(&err), &TxnError::NotEnabled);
    assert!(!err.is_retriable());
    assert!(sim.now - started < SEC);
}

#[test]
fn a_coordinator_that_moved_is_looked_up_again_and_the_request_resent() {
    // The first NEW_TXN meets "coordinator not found": the client looks the coordinator up
    // again, registers, and sends NEW_TXN again.
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        new_txn_errors: vec![Some(20)],
        ..Tc::default()
    });
    let txn = open(&mut sim, SEC * 10).unwrap();
    assert_eq!(sim.received_of(Type::NewTxn).len(), 2);
    assert_eq!(sim.received_of(Type::TcClientConnectRequest).len(), 2);
    let assign_lookups = sim
        .received_of(Type::Lookup)
        .iter()
        .filter(|l| {
            l.command
                .lookup_topic
                .as_ref()
                .unwrap()
                .topic
                .contains("coordinator_assign")
        })
        .count();
    assert_eq!(assign_lookups, 2);
    assert_eq!(sim.client.transaction_state(txn), Some(TxnState::Open));
}

#[test]
fn requests_lost_with_the_coordinators_connection_are_sent_again_after_it_reconnects() {
    let (mut sim, tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 30).unwrap();
    sim.client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("x"))
        .unwrap();
    sim.run_until_seen(SEC, |e| matches!(e, Event::SendCompleted { .. }));
    tc.borrow_mut().silent_end = true;
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    sim.run_until_idle();
    assert_eq!(sim.received_of(Type::EndTxn).len(), 1);
    let conn = sim.received_of(Type::EndTxn)[0].conn;
    tc.borrow_mut().silent_end = false;
    sim.broker_close(conn);
    ended(&mut sim, commit).unwrap();
    assert_eq!(sim.received_of(Type::EndTxn).len(), 2);
    assert_eq!(sim.received_of(Type::TcClientConnectRequest).len(), 2);
}

#[test]
fn an_unanswered_end_times_out_retriably_and_can_be_asked_again() {
    let (mut sim, tc) = tc_sim(Tc {
        coordinators: 1,
        silent_end: true,
        ..Tc::default()
    });
    let txn = open(&mut sim, SEC * 60).unwrap();
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    let err = ended(&mut sim, commit).unwrap_err();
    assert_eq!(txn_error(&err), &TxnError::RequestTimeout);
    assert!(err.is_retriable());
    assert_eq!(
        sim.client.transaction_state(txn),
        Some(TxnState::Committing)
    );
    // An abort now is refused (it is committing); the commit may be asked again.
    let e = sim.client.abort_transaction(sim.now, txn).unwrap_err();
    assert!(matches!(
        txn_error(&e),
        TxnError::InvalidStatus {
            state: TxnState::Committing,
            ..
        }
    ));
    tc.borrow_mut().silent_end = false;
    let again = sim.client.commit_transaction(sim.now, txn).unwrap();
    ended(&mut sim, again).unwrap();
}

#[test]
fn a_transaction_times_out_and_refuses_sends_acks_and_commit() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let c = sim.subscribed(ConsumerOptions::new("sub"));
    let txn = open(&mut sim, SEC * 2).unwrap();
    sim.run_for(SEC * 3);
    assert_eq!(sim.client.transaction_state(txn), Some(TxnState::TimedOut));
    let r = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("x"))
        .unwrap_err();
    assert_eq!(r.error, SendError::Transaction(TxnError::TimedOut(txn)));
    let e = sim
        .client
        .ack_in_transaction(sim.now, c, &MessageId::new(9, 1, -1), false, txn)
        .unwrap_err();
    assert_eq!(txn_error(&e), &TxnError::TimedOut(txn));
    let e = sim.client.commit_transaction(sim.now, txn).unwrap_err();
    assert_eq!(txn_error(&e), &TxnError::TimedOut(txn));
    assert!(!e.is_retriable());
    assert!(sim.received_of(Type::EndTxn).is_empty());
    // The commit forgot it; another timed-out one is forgotten after ten minutes.
    assert_eq!(sim.client.transaction_state(txn), None);
    let other = open(&mut sim, SEC).unwrap();
    sim.run_for(SEC * 2);
    assert_eq!(
        sim.client.transaction_state(other),
        Some(TxnState::TimedOut)
    );
    sim.run_for(SEC * 601);
    assert_eq!(sim.client.transaction_state(other), None);
}

#[test]
fn committing_twice_or_sending_while_committing_is_an_invalid_status() {
    let (mut sim, tc) = tc_sim(Tc {
        coordinators: 1,
        silent_end: true,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 60).unwrap();
    sim.client.commit_transaction(sim.now, txn).unwrap();
    let e = sim.client.commit_transaction(sim.now, txn).unwrap_err();
    assert!(matches!(
        txn_error(&e),
        TxnError::InvalidStatus {
            state: TxnState::Committing,
            operation: "commit",
            ..
        }
    ));
    let r = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("x"))
        .unwrap_err();
    assert!(matches!(
        r.error,
        SendError::Transaction(TxnError::InvalidStatus { .. })
    ));
    drop(tc);
}

#[test]
fn a_send_failure_in_the_transaction_aborts_the_commit() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 60).unwrap();
    let prev = RefCell::new(sim.broker(SERVICE).hook.take().unwrap());
    sim.hook(SERVICE, move |ctx, cmd| {
        if let Some(s) = cmd.send.as_deref() {
            return Some(vec![Reply::Cmd(
                pb::CommandSendError {
                    producer_id: s.producer_id,
                    sequence_id: s.sequence_id,
                    error: 16, // NotAllowedError... any non-retriable refusal
                    message: "refused".into(),
                }
                .into(),
            )]);
        }
        (prev.borrow_mut())(ctx, cmd)
    });
    sim.client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("x"))
        .unwrap();
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    let err = ended(&mut sim, commit).unwrap_err();
    assert_eq!(txn_error(&err), &TxnError::OperationFailed(txn));
    let end = sim.received_of(Type::EndTxn);
    assert_eq!(
        end[0].command.end_txn.as_ref().unwrap().txn_action,
        Some(pb::TxnAction::Abort as i32)
    );
    let _ = ServerErrorCode::TransactionConflict;
}

#[test]
fn a_batch_never_mixes_transactions() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = sim
        .client
        .create_producer(
            sim.now,
            "t",
            ProducerOptions::default().with_batching(
                pulsar_core::BatchingOptions::enabled().with_limits(100, 1 << 20, SEC),
            ),
        )
        .unwrap();
    sim.run_until(SEC, |e| matches!(e, Event::ProducerReady { .. }));
    let t1 = open(&mut sim, SEC * 60).unwrap();
    let t2 = open(&mut sim, SEC * 60).unwrap();
    // Both partitions added first, so that the sends below are batched together in time.
    sim.client
        .send_in_transaction(sim.now, p, t1, OutgoingMessage::new("a"))
        .unwrap();
    sim.client
        .send_in_transaction(sim.now, p, t2, OutgoingMessage::new("b"))
        .unwrap();
    sim.run_until_idle();
    for (t, v) in [(t1, "c"), (t1, "d"), (t2, "e"), (t1, "f")] {
        sim.client
            .send_in_transaction(sim.now, p, t, OutgoingMessage::new(v))
            .unwrap();
    }
    sim.client
        .send(sim.now, p, OutgoingMessage::new("plain"))
        .unwrap();
    sim.client.flush(sim.now, p).unwrap();
    sim.run_for(Duration::from_millis(100));
    let batches: Vec<(Option<u64>, i32)> = sim
        .received_of(Type::Send)
        .iter()
        .map(|s| {
            let m = &s.payload.as_ref().unwrap().metadata;
            (m.txnid_least_bits, m.num_messages_in_batch.unwrap_or(1))
        })
        .collect();
    let tail: Vec<_> = batches[batches.len() - 4..].to_vec();
    assert_eq!(
        tail,
        vec![
            (Some(t1.least_bits), 2),
            (Some(t2.least_bits), 1),
            (Some(t1.least_bits), 1),
            (None, 1)
        ]
    );
}

#[test]
fn a_refused_partition_fails_its_waiting_messages_and_the_commit_aborts() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 60).unwrap();
    let prev = RefCell::new(sim.broker(SERVICE).hook.take().unwrap());
    sim.hook(SERVICE, move |ctx, cmd| {
        if let Some(r) = cmd.add_partition_to_txn.as_deref() {
            return reply(pb::CommandAddPartitionToTxnResponse {
                request_id: r.request_id,
                txnid_least_bits: r.txnid_least_bits,
                txnid_most_bits: r.txnid_most_bits,
                error: Some(21), // InvalidTxnStatus
                message: Some("refused".into()),
            });
        }
        (prev.borrow_mut())(ctx, cmd)
    });
    let s1 = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("a"))
        .unwrap();
    let s2 = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("b"))
        .unwrap();
    sim.run_until_idle();
    for s in [s1, s2] {
        let failed = sim.events.iter().any(|(_, e)| {
            matches!(e, Event::SendCompleted { send, result: Err(SendError::Transaction(TxnError::Server { code: ServerErrorCode::InvalidTxnStatus, .. })), .. } if *send == s)
        });
        assert!(failed, "{s:?} did not fail: {:#?}", sim.events);
    }
    assert!(
        sim.received_of(Type::Send).is_empty(),
        "sent without its partition"
    );
    let commit = sim.client.commit_transaction(sim.now, txn).unwrap();
    let err = ended(&mut sim, commit).unwrap_err();
    assert_eq!(txn_error(&err), &TxnError::OperationFailed(txn));
}

#[test]
fn a_producer_closed_while_its_messages_wait_fails_them() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        ..Tc::default()
    });
    let p = producer(&mut sim);
    let txn = open(&mut sim, SEC * 60).unwrap();
    let s = sim
        .client
        .send_in_transaction(sim.now, p, txn, OutgoingMessage::new("a"))
        .unwrap();
    // Closed before ADD_PARTITION_TO_TXN is answered.
    sim.client.close_producer(sim.now, p).unwrap();
    sim.run_until_idle();
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        Event::SendCompleted { send, result: Err(_), .. } if *send == s
    )));
    let abort = sim.client.abort_transaction(sim.now, txn).unwrap();
    ended(&mut sim, abort).unwrap();
}

#[test]
fn closing_the_client_fails_a_transaction_waiting_for_its_coordinator() {
    let (mut sim, _tc) = tc_sim(Tc {
        coordinators: 1,
        connect_errors: vec![Some(20); 1000],
        ..Tc::default()
    });
    let r = sim.client.new_transaction(sim.now, SEC * 10).unwrap();
    sim.run_for(Duration::from_millis(500));
    sim.client.close(sim.now);
    let e = sim.run_until(
        SEC * 5,
        |e| matches!(e, Event::TransactionOpened { request, .. } if *request == r),
    );
    let Event::TransactionOpened {
        result: Err(err), ..
    } = e
    else {
        panic!("{e:?}");
    };
    assert_eq!(
        txn_error(&err),
        &TxnError::Connection(Box::new(Error::ClientClosed))
    );
    assert!(!err.is_retriable());
    let after = sim.client.new_transaction(sim.now, SEC).unwrap_err();
    assert_eq!(after, Error::ClientClosed);
}
