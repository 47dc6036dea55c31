//! Transactions, as Apache Pulsar runs them: coordinators (coordinator `n` is served by the
//! owner of partition `n` of `pulsar/system/transaction_coordinator_assign`) answering
//! TC_CLIENT_CONNECT, NEW_TXN, ADD_PARTITION_TO_TXN, ADD_SUBSCRIPTION_TO_TXN and END_TXN; a
//! transaction buffer per topic (messages of a transaction are persisted at once, and nothing
//! from the first message of a transaction still open on is dispatched; messages of an aborted
//! transaction are never dispatched); pending acknowledgements per subscription (applied to the
//! cursor on commit, dropped and redelivered on abort; an acknowledgement of a message already
//! acknowledged, or pending in another transaction, is a TransactionConflict); and the
//! coordinator's timeout, which aborts a transaction still open.
//!
//! The coordinators' log, the buffers and the pending acknowledgements live in the [`Store`]
//! (BookKeeper in a real cluster): a crash or a move loses none of them. An END_TXN is applied to
//! every partition and subscription of the transaction at once, before it is answered (the real
//! coordinator's END_TXN_ON_PARTITION / END_TXN_ON_SUBSCRIPTION round trips, without their
//! failures). A repeated END_TXN with the same action is answered with success, one with the
//! other action with InvalidTxnStatus.
//!
//! [`Store`]: super::Store

use std::time::Duration;

use pulsar_proto::pb;

use super::store::{full_ack_set, PendingAck, TxnKey, TxnRecord, TxnStatus};
use super::{normalize_topic, Cluster, ConnId};

/// The partitioned system topic whose partitions name the coordinators.
pub const TC_ASSIGN_TOPIC: &str = "persistent://pulsar/system/transaction_coordinator_assign";

/// A coordinator's error answer: (error, message).
type TcError = (pb::ServerError, String);

/// The transaction id of a command's optional fields, when set.
pub(crate) fn txn_of(most: Option<u64>, least: Option<u64>) -> Option<TxnKey> {
    match (most, least) {
        (Some(m), Some(l)) => Some((m, l)),
        (Some(m), None) => Some((m, 0)),
        (None, Some(l)) => Some((0, l)),
        (None, None) => None,
    }
}

/// Bits of the batch indexes an ack set acknowledges (an empty set: every index).
fn acked_bits(ack_set: &[i64], size: i32) -> Vec<i64> {
    let full = full_ack_set(size.max(1));
    full.iter()
        .enumerate()
        .map(|(i, w)| {
            if ack_set.is_empty() {
                *w
            } else {
                w & !ack_set.get(i).copied().unwrap_or(0)
            }
        })
        .collect()
}

fn overlap(a: &[i64], b: &[i64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

impl Cluster {
    /// Whether the cluster runs transaction coordinators.
    fn transactions_on(&self) -> bool {
        self.config.transaction_coordinators > 0
    }

    /// The topic whose owner serves coordinator `tc`.
    fn coordinator_topic(tc: u64) -> String {
        format!("{TC_ASSIGN_TOPIC}-partition-{tc}")
    }

    /// Whether `conn`'s broker serves coordinator `tc`, or the error to answer.
    fn coordinator_here(&mut self, conn: ConnId, tc: u64) -> Result<(), TcError> {
        if !self.transactions_on() {
            return Err((
                pb::ServerError::NotAllowedError,
                "transactions are not enabled".into(),
            ));
        }
        if tc >= u64::from(self.config.transaction_coordinators) {
            return Err((
                pb::ServerError::TransactionCoordinatorNotFound,
                format!("no transaction coordinator {tc}"),
            ));
        }
        if self.serves(conn, &Self::coordinator_topic(tc)) {
            Ok(())
        } else {
            Err((
                pb::ServerError::TransactionCoordinatorNotFound,
                format!("transaction coordinator {tc} is not served by this broker"),
            ))
        }
    }

    pub(crate) fn handle_tc_connect(
        &mut self,
        conn: ConnId,
        c: &pb::CommandTcClientConnectRequest,
    ) {
        let (error, message) = match self.coordinator_here(conn, c.tc_id) {
            Ok(()) => (None, None),
            Err((e, m)) => (Some(e as i32), Some(m)),
        };
        self.write(
            conn,
            pb::CommandTcClientConnectResponse {
                request_id: c.request_id,
                error,
                message,
            }
            .into(),
        );
    }

    pub(crate) fn handle_new_txn(&mut self, conn: ConnId, c: &pb::CommandNewTxn) {
        let tc = c.tc_id.unwrap_or(0);
        let answer = self.coordinator_here(conn, tc).map(|()| {
            let n = self.store.next_txn.entry(tc).or_insert(0);
            let key = (tc, *n);
            *n += 1;
            let ttl = Duration::from_millis(c.txn_ttl_millis.unwrap_or(0));
            let record = TxnRecord {
                status: TxnStatus::Open,
                timeout_at: self.now + ttl,
                partitions: Default::default(),
                subscriptions: Default::default(),
            };
            self.store.txns.insert(key, record);
            self.note(format!(
                "{conn} NEW_TXN ({}, {}) timeout {ttl:?}",
                key.0, key.1
            ));
            key
        });
        let cmd = match answer {
            Ok((most, least)) => pb::CommandNewTxnResponse {
                request_id: c.request_id,
                txnid_most_bits: Some(most),
                txnid_least_bits: Some(least),
                error: None,
                message: None,
            },
            Err((e, m)) => pb::CommandNewTxnResponse {
                request_id: c.request_id,
                txnid_most_bits: None,
                txnid_least_bits: None,
                error: Some(e as i32),
                message: Some(m),
            },
        };
        self.write(conn, cmd.into());
    }

    /// The open transaction `key`, checked at its coordinator on `conn`.
    fn open_txn_here(&mut self, conn: ConnId, key: TxnKey) -> Result<&mut TxnRecord, TcError> {
        self.coordinator_here(conn, key.0)?;
        let Some(t) = self.store.txns.get_mut(&key) else {
            return Err((
                pb::ServerError::TransactionNotFound,
                format!("transaction ({}, {}) not found", key.0, key.1),
            ));
        };
        if t.status != TxnStatus::Open {
            return Err((
                pb::ServerError::InvalidTxnStatus,
                format!("transaction ({}, {}) is {:?}", key.0, key.1, t.status),
            ));
        }
        Ok(t)
    }

    pub(crate) fn handle_add_partition(&mut self, conn: ConnId, c: &pb::CommandAddPartitionToTxn) {
        let key = txn_of(c.txnid_most_bits, c.txnid_least_bits).unwrap_or((0, 0));
        let result = self.open_txn_here(conn, key).map(|t| {
            for p in &c.partitions {
                t.partitions.insert(normalize_topic(p));
            }
        });
        let (error, message) = split(result);
        self.write(
            conn,
            pb::CommandAddPartitionToTxnResponse {
                request_id: c.request_id,
                txnid_most_bits: Some(key.0),
                txnid_least_bits: Some(key.1),
                error,
                message,
            }
            .into(),
        );
    }

    pub(crate) fn handle_add_subscription(
        &mut self,
        conn: ConnId,
        c: &pb::CommandAddSubscriptionToTxn,
    ) {
        let key = txn_of(c.txnid_most_bits, c.txnid_least_bits).unwrap_or((0, 0));
        let result = self.open_txn_here(conn, key).map(|t| {
            for s in &c.subscription {
                t.subscriptions
                    .insert((normalize_topic(&s.topic), s.subscription.clone()));
            }
        });
        let (error, message) = split(result);
        self.write(
            conn,
            pb::CommandAddSubscriptionToTxnResponse {
                request_id: c.request_id,
                txnid_most_bits: Some(key.0),
                txnid_least_bits: Some(key.1),
                error,
                message,
            }
            .into(),
        );
    }

    pub(crate) fn handle_end_txn(&mut self, conn: ConnId, c: &pb::CommandEndTxn) {
        let key = txn_of(c.txnid_most_bits, c.txnid_least_bits).unwrap_or((0, 0));
        let commit = c.txn_action == Some(pb::TxnAction::Commit as i32);
        let result = self.coordinator_here(conn, key.0).and_then(|()| {
            let status = self.store.txns.get(&key).map(|t| t.status);
            match (status, commit) {
                (None, _) => Err((
                    pb::ServerError::TransactionNotFound,
                    format!("transaction ({}, {}) not found", key.0, key.1),
                )),
                (Some(TxnStatus::Open), _) => {
                    self.end_txn(key, commit, "END_TXN");
                    Ok(())
                }
                (Some(TxnStatus::Committed), true) | (Some(TxnStatus::Aborted), false) => Ok(()),
                (Some(s), _) => Err((
                    pb::ServerError::InvalidTxnStatus,
                    format!("transaction ({}, {}) is already {s:?}", key.0, key.1),
                )),
            }
        });
        let (error, message) = split(result);
        self.write(
            conn,
            pb::CommandEndTxnResponse {
                request_id: c.request_id,
                txnid_most_bits: Some(key.0),
                txnid_least_bits: Some(key.1),
                error,
                message,
            }
            .into(),
        );
    }

    /// Ends an open transaction everywhere: its messages become dispatchable (commit) or are
    /// dropped (abort), its pending acknowledgements are applied (commit) or released and
    /// redelivered (abort).
    fn end_txn(&mut self, key: TxnKey, commit: bool, why: &str) {
        let Some(t) = self.store.txns.get_mut(&key) else {
            return;
        };
        t.status = if commit {
            TxnStatus::Committed
        } else {
            TxnStatus::Aborted
        };
        let subscriptions = t.subscriptions.clone();
        self.note(format!(
            "{why}: transaction ({}, {}) {}",
            key.0,
            key.1,
            if commit { "committed" } else { "aborted" }
        ));
        // every log that holds messages of the transaction (the added partitions, and any other
        // a client wrote to without adding it)
        let mut touched: Vec<(String, String)> = Vec::new();
        for (topic, log) in &mut self.store.topics {
            if log.ongoing_txns.remove(&key).is_some() && !commit {
                log.aborted_txns.insert(key);
            }
            for sub in log.cursors.keys() {
                touched.push((topic.clone(), sub.clone()));
            }
        }
        for (topic, sub) in &subscriptions {
            if !touched.contains(&(topic.clone(), sub.clone())) {
                touched.push((topic.clone(), sub.clone()));
            }
        }
        for (topic, sub) in &touched {
            self.end_pending_acks(topic, sub, key, commit);
        }
        let loaded: Vec<(String, Vec<String>)> = self
            .loaded
            .iter()
            .map(|(t, l)| (t.clone(), l.subs.keys().cloned().collect()))
            .collect();
        for (topic, subs) in loaded {
            for sub in subs {
                self.dispatch(&topic, &sub);
            }
        }
    }

    /// Applies (commit) or releases (abort) the pending acknowledgements of `key` on a
    /// subscription.
    fn end_pending_acks(&mut self, topic: &str, sub: &str, key: TxnKey, commit: bool) {
        let Some(log) = self.store.topics.get_mut(topic) else {
            return;
        };
        let Some(pending) = log.pending_acks.get_mut(sub) else {
            return;
        };
        let mut mine: Vec<(usize, Vec<i64>)> = Vec::new();
        pending.individual.retain(|index, acks| {
            acks.retain(|a| {
                if a.txn == key {
                    mine.push((*index, a.ack_set.clone()));
                    false
                } else {
                    true
                }
            });
            !acks.is_empty()
        });
        let cumulative = match pending.cumulative {
            Some((t, index)) if t == key => {
                pending.cumulative = None;
                Some(index)
            }
            _ => None,
        };
        if pending.is_empty() {
            log.pending_acks.remove(sub);
        }
        if commit {
            if let Some(cursor) = log.cursors.get_mut(sub) {
                if let Some(index) = cumulative {
                    cursor.ack_cumulative(index);
                }
                for (index, ack_set) in &mine {
                    if ack_set.is_empty() {
                        cursor.ack(*index);
                    } else {
                        let size = log.entries.get(*index).map_or(1, |e| e.num_messages);
                        cursor.ack_batch(*index, size, ack_set);
                    }
                }
            }
            self.prune_acked(topic, sub);
        } else if let Some(s) = self.loaded.get_mut(topic).and_then(|t| t.subs.get_mut(sub)) {
            // released: an entry still out with its consumer comes back when the client asks
            // (it does after an abort) or the consumer leaves; one dropped from the dispatch
            // state while held (its consumer left meanwhile) is dispatched again
            for (index, _) in mine {
                if index < s.read_pos && !s.pending.contains_key(&index) {
                    s.redeliver.insert(index);
                }
            }
        }
    }

    /// Checks a SEND's transaction: refused (SEND_ERROR NotAllowed, `false`) unless it is open;
    /// the message's metadata carries the transaction id.
    pub(crate) fn txn_send_check(
        &mut self,
        conn: ConnId,
        c: &pb::CommandSend,
        payload: &mut pulsar_proto::Payload,
    ) -> bool {
        let Some(key) = txn_of(c.txnid_most_bits, c.txnid_least_bits) else {
            return true;
        };
        if let Some(why) = self.txn_send_refusal(key) {
            self.note(format!(
                "{conn} refuse SEND p{} seq {}: {why}",
                c.producer_id, c.sequence_id
            ));
            self.write(
                conn,
                pb::CommandSendError {
                    producer_id: c.producer_id,
                    sequence_id: c.sequence_id,
                    error: pb::ServerError::NotAllowedError as i32,
                    message: why,
                }
                .into(),
            );
            return false;
        }
        payload.metadata.txnid_most_bits = Some(key.0);
        payload.metadata.txnid_least_bits = Some(key.1);
        true
    }

    /// Why a SEND of transaction `key` is refused: unless it is open.
    fn txn_send_refusal(&self, key: TxnKey) -> Option<String> {
        match self.store.txns.get(&key).map(|t| t.status) {
            Some(TxnStatus::Open) => None,
            Some(s) => Some(format!("transaction ({}, {}) is {s:?}", key.0, key.1)),
            None => Some(format!("transaction ({}, {}) not found", key.0, key.1)),
        }
    }

    /// A message of transaction `key` was persisted at `index` of `topic`.
    pub(crate) fn txn_persisted(&mut self, topic: &str, key: TxnKey, index: usize) {
        let status = self.store.txns.get(&key).map(|t| t.status);
        let Some(log) = self.store.topics.get_mut(topic) else {
            return;
        };
        match status {
            Some(TxnStatus::Open) => {
                log.ongoing_txns.entry(key).or_insert(index);
            }
            Some(TxnStatus::Aborted) | None => {
                log.aborted_txns.insert(key);
            }
            Some(TxnStatus::Committed) => {}
        }
    }

    /// A transactional ACK on `(topic, sub)`: held until the transaction ends. The error to
    /// answer when it conflicts (already acknowledged, or pending in another transaction).
    pub(crate) fn txn_ack(
        &mut self,
        topic: &str,
        sub: &str,
        key: TxnKey,
        c: &pb::CommandAck,
        cumulative: bool,
    ) -> Result<(), TcError> {
        match self.store.txns.get(&key).map(|t| t.status) {
            Some(TxnStatus::Open) => {}
            _ => {
                return Err((
                    pb::ServerError::TransactionNotFound,
                    format!("transaction ({}, {}) is not open", key.0, key.1),
                ))
            }
        }
        let durable = self
            .loaded
            .get(topic)
            .and_then(|t| t.subs.get(sub))
            .is_some_and(|s| s.durable);
        let Some(log) = self.store.topics.get_mut(topic) else {
            return Err((pb::ServerError::UnknownError, "no such topic".into()));
        };
        let (Some(cursor), true) = (log.cursors.get(sub), durable) else {
            return Err((
                pb::ServerError::NotAllowedError,
                "transactional acknowledgement on a non-durable subscription".into(),
            ));
        };
        let mut positions = Vec::new();
        for id in &c.message_id {
            let Some(index) = log.index_of(id.ledger_id, id.entry_id) else {
                continue;
            };
            let size = log.entries.get(index).map_or(1, |e| e.num_messages);
            if cursor.is_acked(index) {
                return Err(conflict(key, id, "is already acknowledged"));
            }
            if let Some(remaining) = cursor.partial.get(&index) {
                // bits set in the cursor are still unacknowledged
                let already: Vec<i64> = full_ack_set(size.max(1))
                    .iter()
                    .enumerate()
                    .map(|(i, w)| w & !remaining.get(i).copied().unwrap_or(0))
                    .collect();
                if overlap(&already, &acked_bits(&id.ack_set, size)) {
                    return Err(conflict(key, id, "is already acknowledged"));
                }
            }
            positions.push((index, size, id.ack_set.clone(), id));
        }
        let pending = log.pending_acks.entry(sub.to_owned()).or_default();
        if cumulative {
            let Some(&(index, _, _, id)) = positions.last() else {
                return Ok(());
            };
            if let Some((other, _)) = pending.cumulative {
                if other != key {
                    return Err(conflict(
                        key,
                        id,
                        "is in another transaction's cumulative ack",
                    ));
                }
            }
            let held = pending
                .individual
                .range(..=index)
                .any(|(_, acks)| acks.iter().any(|a| a.txn != key));
            if held {
                return Err(conflict(
                    key,
                    id,
                    "covers messages pending in another transaction",
                ));
            }
            let to = pending.cumulative.map_or(index, |(_, i)| i.max(index));
            pending.cumulative = Some((key, to));
            return Ok(());
        }
        for (index, size, ack_set, id) in &positions {
            let bits = acked_bits(ack_set, *size);
            let taken = pending
                .cumulative
                .is_some_and(|(t, i)| t != key && *index <= i)
                || pending.individual.get(index).is_some_and(|acks| {
                    acks.iter()
                        .any(|a| a.txn != key && overlap(&acked_bits(&a.ack_set, *size), &bits))
                });
            if taken {
                return Err(conflict(key, id, "is pending in another transaction"));
            }
        }
        for (index, _, ack_set, _) in positions {
            pending
                .individual
                .entry(index)
                .or_default()
                .push(PendingAck { txn: key, ack_set });
        }
        Ok(())
    }

    /// Aborts every open transaction past its timeout.
    pub(crate) fn expire_txns(&mut self) {
        let now = self.now;
        let expired: Vec<TxnKey> = self
            .store
            .txns
            .iter()
            .filter(|(_, t)| t.status == TxnStatus::Open && t.timeout_at <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.end_txn(key, false, "timeout");
        }
    }

    /// The next transaction timeout.
    pub(crate) fn next_txn_timeout(&self) -> Option<Duration> {
        self.store
            .txns
            .values()
            .filter(|t| t.status == TxnStatus::Open)
            .map(|t| t.timeout_at)
            .min()
    }

    /// Where dispatch of `topic` must stop: the first message of the earliest transaction still
    /// open (the log length when none).
    pub(crate) fn max_read(&self, topic: &str) -> usize {
        self.store.topics.get(topic).map_or(0, |l| {
            l.ongoing_txns
                .values()
                .copied()
                .min()
                .unwrap_or(l.entries.len())
                .min(l.entries.len())
        })
    }

    /// Whether the entry at `index` of `topic` is a message of an aborted transaction, or one
    /// held by a pending acknowledgement on `sub` (both skipped by dispatch).
    pub(crate) fn txn_skips(&self, topic: &str, sub: &str, index: usize) -> (bool, bool) {
        let Some(log) = self.store.topics.get(topic) else {
            return (false, false);
        };
        let aborted = !log.aborted_txns.is_empty()
            && log.entries.get(index).is_some_and(|e| {
                txn_of(e.metadata.txnid_most_bits, e.metadata.txnid_least_bits)
                    .is_some_and(|k| log.aborted_txns.contains(&k))
            });
        let held = log.pending_acks.get(sub).is_some_and(|p| p.holds(index));
        (aborted, held)
    }
}

fn conflict(key: TxnKey, id: &pb::MessageIdData, what: &str) -> TcError {
    (
        pb::ServerError::TransactionConflict,
        format!(
            "transaction ({}, {}): message {}:{} {what}",
            key.0, key.1, id.ledger_id, id.entry_id
        ),
    )
}

fn split(result: Result<(), TcError>) -> (Option<i32>, Option<String>) {
    match result {
        Ok(()) => (None, None),
        Err((e, m)) => (Some(e as i32), Some(m)),
    }
}
