//! Transactions under random coordinator faults, one seeded run per seed (`PULSAR_TXN_SEEDS`,
//! default 200): registrations and requests refused with "coordinator not found", requests left
//! unanswered, connections closed by the broker in the middle. Checked on every run:
//!
//! - every new transaction, commit, abort and send is answered exactly once;
//! - no transactional SEND reaches the broker before its partition was added to the transaction;
//! - no SEND of a transaction reaches the broker after its END_TXN was sent (a commit waits for
//!   every receipt);
//! - a commit reported successful ended the transaction with COMMIT at the coordinator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use pulsar_core::{ClientConfig, Event, OutgoingMessage, ProducerOptions, RequestId, SendId};
use pulsar_proto::pb::{self, base_command::Type};
use support::{partitioned_metadata, HookCtx, Reply, Sim, SERVICE};

const ASSIGN: &str = "persistent://pulsar/system/transaction_coordinator_assign";

/// xorshift64*: the run's random source.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// The coordinator's view, shared with the checks.
#[derive(Default)]
struct World {
    next_txn: u64,
    /// (txn least bits, partition) pairs added.
    added: BTreeSet<(u64, String)>,
    /// Transactions whose END_TXN arrived: commit or abort.
    ended: BTreeMap<u64, bool>,
    violations: Vec<String>,
}

fn txn_of(most: Option<u64>, least: Option<u64>) -> u64 {
    most.unwrap_or(0) * 1_000_000 + least.unwrap_or(0)
}

/// Replies that misbehave now and then.
fn faulty(
    world: Rc<RefCell<World>>,
    seed: u64,
) -> impl FnMut(&HookCtx, &pb::BaseCommand) -> Option<Vec<Reply>> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    move |_ctx, cmd| {
        let mut w = world.borrow_mut();
        let kind = cmd.kind()?;
        let coordinator_command = matches!(
            kind,
            Type::TcClientConnectRequest | Type::NewTxn | Type::AddPartitionToTxn | Type::EndTxn
        );
        if coordinator_command && rng.chance(0.04) {
            return Some(vec![Reply::Close]);
        }
        if coordinator_command && rng.chance(0.04) {
            return Some(vec![]); // no answer: the request times out
        }
        let not_found = coordinator_command && rng.chance(0.15);
        let error = not_found.then_some(20); // TransactionCoordinatorNotFound
        let reply = |c: pb::BaseCommand| Some(vec![Reply::Cmd(c)]);
        match kind {
            Type::PartitionedMetadata => {
                let m = cmd.partition_metadata.as_deref()?;
                (m.topic == ASSIGN).then(|| vec![partitioned_metadata(m.request_id, 2)])
            }
            Type::TcClientConnectRequest => {
                let r = cmd.tc_client_connect_request.as_deref()?;
                reply(
                    pb::CommandTcClientConnectResponse {
                        request_id: r.request_id,
                        error,
                        message: None,
                    }
                    .into(),
                )
            }
            Type::NewTxn => {
                let r = cmd.new_txn.as_deref()?;
                w.next_txn += 1;
                reply(
                    pb::CommandNewTxnResponse {
                        request_id: r.request_id,
                        txnid_most_bits: Some(r.tc_id.unwrap_or(0)),
                        txnid_least_bits: Some(w.next_txn),
                        error,
                        message: None,
                    }
                    .into(),
                )
            }
            Type::AddPartitionToTxn => {
                let r = cmd.add_partition_to_txn.as_deref()?;
                let t = txn_of(r.txnid_most_bits, r.txnid_least_bits);
                if error.is_none() {
                    for p in &r.partitions {
                        w.added.insert((t, p.clone()));
                    }
                }
                reply(
                    pb::CommandAddPartitionToTxnResponse {
                        request_id: r.request_id,
                        txnid_least_bits: r.txnid_least_bits,
                        txnid_most_bits: r.txnid_most_bits,
                        error,
                        message: None,
                    }
                    .into(),
                )
            }
            Type::EndTxn => {
                let r = cmd.end_txn.as_deref()?;
                let t = txn_of(r.txnid_most_bits, r.txnid_least_bits);
                if error.is_none() {
                    let commit = r.txn_action == Some(pb::TxnAction::Commit as i32);
                    w.ended.insert(t, commit);
                }
                reply(
                    pb::CommandEndTxnResponse {
                        request_id: r.request_id,
                        txnid_least_bits: r.txnid_least_bits,
                        txnid_most_bits: r.txnid_most_bits,
                        error,
                        message: None,
                    }
                    .into(),
                )
            }
            Type::Send => {
                let s = cmd.send.as_deref()?;
                if s.txnid_most_bits.is_some() {
                    let t = txn_of(s.txnid_most_bits, s.txnid_least_bits);
                    let topic = "persistent://public/default/t".to_string();
                    if !w.added.contains(&(t, topic)) {
                        w.violations
                            .push(format!("SEND of txn {t} before its partition was added"));
                    }
                    if w.ended.contains_key(&t) {
                        w.violations
                            .push(format!("SEND of txn {t} after its END_TXN"));
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// Counts the events naming each request and send.
fn answers(events: &[(Duration, Event)]) -> (BTreeMap<RequestId, usize>, BTreeMap<SendId, usize>) {
    let mut requests = BTreeMap::new();
    let mut sends = BTreeMap::new();
    for (_, e) in events {
        match e {
            Event::TransactionOpened { request, .. } | Event::TransactionEnded { request, .. } => {
                *requests.entry(*request).or_insert(0) += 1
            }
            Event::SendCompleted { send, .. } => *sends.entry(*send).or_insert(0) += 1,
            _ => {}
        }
    }
    (requests, sends)
}

fn run(seed: u64) -> Result<(), String> {
    let mut config = ClientConfig::new("pulsar://svc:6650").with_seed(seed);
    config.operation_timeout = Duration::from_secs(5);
    let mut sim = Sim::with_config(config);
    let world = Rc::new(RefCell::new(World::default()));
    sim.hook(SERVICE, faulty(world.clone(), seed));
    let mut rng = Rng(seed ^ 0xDEAD_BEEF | 1);
    let p = sim
        .client
        .create_producer(sim.now, "t", ProducerOptions::default())
        .unwrap();
    sim.run_until(Duration::from_secs(30), |e| {
        matches!(e, Event::ProducerReady { .. })
    });
    let mut asked: Vec<RequestId> = Vec::new();
    let mut sent: Vec<SendId> = Vec::new();
    let mut commits: BTreeMap<RequestId, u64> = BTreeMap::new();
    for _ in 0..4 {
        let open = sim
            .client
            .new_transaction(sim.now, Duration::from_secs(60))
            .unwrap();
        asked.push(open);
        let e = sim.run_until(
            Duration::from_secs(30),
            |e| matches!(e, Event::TransactionOpened { request, .. } if *request == open),
        );
        let Event::TransactionOpened {
            result: Ok(txn), ..
        } = e
        else {
            continue;
        };
        for i in 0..(1 + rng.next() % 4) {
            let m = OutgoingMessage::new(format!("m{i}"));
            match sim.client.send_in_transaction(sim.now, p, txn, m) {
                Ok(s) => sent.push(s),
                Err(r) => return Err(format!("send refused: {:?}", r.error)),
            }
        }
        let commit = rng.chance(0.7);
        let end = if commit {
            sim.client.commit_transaction(sim.now, txn)
        } else {
            sim.client.abort_transaction(sim.now, txn)
        }
        .map_err(|e| format!("end refused: {e}"))?;
        asked.push(end);
        let e = sim.run_until(
            Duration::from_secs(60),
            |e| matches!(e, Event::TransactionEnded { request, .. } if *request == end),
        );
        if commit && matches!(e, Event::TransactionEnded { result: Ok(()), .. }) {
            commits.insert(end, txn.most_bits * 1_000_000 + txn.least_bits);
        }
    }
    sim.run_for(Duration::from_secs(60));
    let (requests, sends) = answers(&sim.events.clone());
    for r in &asked {
        if requests.get(r) != Some(&1) {
            return Err(format!(
                "request {r:?} answered {:?} times",
                requests.get(r)
            ));
        }
    }
    for s in &sent {
        if sends.get(s) != Some(&1) {
            return Err(format!("send {s:?} completed {:?} times", sends.get(s)));
        }
    }
    let w = world.borrow();
    if let Some(v) = w.violations.first() {
        return Err(v.clone());
    }
    for (request, txn) in commits {
        if w.ended.get(&txn) != Some(&true) {
            return Err(format!(
                "commit {request:?} reported, but txn {txn} not committed"
            ));
        }
    }
    Ok(())
}

#[test]
fn transactions_keep_their_promises_under_coordinator_faults() {
    let seeds: u64 = std::env::var("PULSAR_TXN_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let failed: Vec<String> = (0..seeds)
        .filter_map(|seed| run(seed).err().map(|e| format!("seed {seed}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failing seeds:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
