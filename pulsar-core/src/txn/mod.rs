//! Transactions (the Java client's `TransactionImpl` and `TransactionCoordinatorClient`).
//!
//! 1. [`Client::new_transaction`](crate::Client::new_transaction) finds the coordinators on
//!    first use (`coordinator.rs`) and sends NEW_TXN to one of them in turn;
//!    [`Event::TransactionOpened`] names the new transaction's [`TxnId`].
//! 2. A transactional send first adds the message's partition to the transaction
//!    (ADD_PARTITION_TO_TXN, once per partition); messages wait here meanwhile and are then
//!    handed to their producer with the transaction's id on SEND and in the metadata. A
//!    transactional acknowledgement first adds its subscription (ADD_SUBSCRIPTION_TO_TXN, once
//!    per topic and subscription) and is then written at once with the transaction's id.
//! 3. Commit and abort wait until every send of the transaction has its receipt and every
//!    acknowledgement its answer, then send END_TXN. A commit after a failed send or
//!    acknowledgement aborts instead and fails with [`TxnError::OperationFailed`].
//!    [`Event::TransactionEnded`] reports the outcome.
//!
//! Coordinator requests wait for their coordinator (discovery, lookup, registration), are sent
//! again when their connection drops or the coordinator answers "not found" (it moved or is
//! loading), and fail at the operation timeout. A transaction still open at its timeout is
//! [`TxnState::TimedOut`]: the coordinator aborts it.

mod coordinator;
mod ops;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::error::TxnError;
use crate::event::Event;
use crate::handle::{ConsumerId, ProducerId, RequestId, SendId, TxnId, TxnState};
use crate::message::MessageId;
use crate::producer::OutgoingMessage;
use crate::shared::Shared;
use coordinator::Coordinators;

/// How long a transaction that timed out while open stays known (its calls fail with
/// [`TxnError::TimedOut`]) before it is forgotten (then they fail with [`TxnError::NotFound`]).
pub(crate) const TIMED_OUT_KEPT: Duration = Duration::from_secs(600);

/// What a coordinator request asks.
#[derive(Debug)]
enum What {
    /// NEW_TXN for the application's request.
    Open { app: RequestId, timeout: Duration },
    /// ADD_PARTITION_TO_TXN.
    AddPartitions { txn: TxnId, partitions: Vec<String> },
    /// ADD_SUBSCRIPTION_TO_TXN: (topic, subscription) pairs.
    AddSubscriptions {
        txn: TxnId,
        subscriptions: Vec<(String, String)>,
    },
    /// END_TXN.
    End { txn: TxnId, commit: bool },
}

/// A request to a coordinator, waiting for it or in flight.
#[derive(Debug)]
struct TcRequest {
    /// `None`: a new transaction whose coordinator is not chosen yet.
    coordinator: Option<u64>,
    what: What,
    /// Failed when it passes (the request's own timeout once sent).
    deadline: Instant,
    sent_on: Option<crate::handle::ConnectionId>,
    /// Why the last attempt failed, when it did (reported at the deadline).
    last_error: Option<TxnError>,
}

/// A message waiting for its partition to join the transaction.
#[derive(Debug)]
struct HeldSend {
    topic: String,
    producer: ProducerId,
    part: ProducerId,
    send: SendId,
    message: OutgoingMessage,
}

/// An acknowledgement waiting for its subscription to join the transaction.
#[derive(Debug)]
struct HeldAck {
    key: (String, String),
    consumer: ConsumerId,
    sub: ConsumerId,
    id: MessageId,
    cumulative: bool,
    request: RequestId,
}

/// The end the application asked for.
#[derive(Debug, Clone, Copy)]
struct End {
    commit: bool,
    request: RequestId,
    /// END_TXN was sent (and has not failed).
    sent: bool,
    /// A commit turned into an abort after a failed operation.
    turned_abort: bool,
}

/// One open (or ending) transaction.
#[derive(Debug)]
struct Txn {
    state: TxnState,
    expires: Instant,
    /// Partitions added (`true`) or being added (`false`).
    partitions: BTreeMap<String, bool>,
    /// Subscriptions (topic, subscription) added (`true`) or being added (`false`).
    subscriptions: BTreeMap<(String, String), bool>,
    held_sends: Vec<HeldSend>,
    held_acks: Vec<HeldAck>,
    /// Sends and acknowledgements not completed yet (held ones included).
    outstanding: usize,
    /// A send or acknowledgement failed.
    failed: bool,
    end: Option<End>,
    /// Consumers that acknowledged in the transaction: after an abort their unacknowledged
    /// messages are redelivered.
    ack_consumers: BTreeSet<ConsumerId>,
}

/// Every transaction of the client and its coordinators.
#[derive(Debug)]
pub(crate) struct Transactions {
    coords: Coordinators,
    requests: BTreeMap<u64, TcRequest>,
    txns: BTreeMap<TxnId, Txn>,
    /// Transactional sends not completed yet.
    sends: BTreeMap<SendId, TxnId>,
    /// Transactional acknowledgements not answered yet.
    acks: BTreeMap<RequestId, TxnId>,
    /// Events at the front of the application's queue already looked at.
    seen: usize,
}

impl Transactions {
    pub(crate) fn new(sh: &Shared) -> Transactions {
        Transactions {
            coords: Coordinators::new(sh),
            requests: BTreeMap::new(),
            txns: BTreeMap::new(),
            sends: BTreeMap::new(),
            acks: BTreeMap::new(),
            seen: 0,
        }
    }

    /// The state of a transaction this client knows (ended ones are forgotten, timed-out ones
    /// kept until committed or aborted, at most [`TIMED_OUT_KEPT`]).
    pub(crate) fn state(&self, txn: TxnId) -> Option<TxnState> {
        self.txns.get(&txn).map(|t| t.state)
    }

    /// The application took the front event of the queue.
    pub(crate) fn event_taken(&mut self) {
        self.seen = self.seen.saturating_sub(1);
    }

    /// Looks at the events queued since the last call for completions of transactional sends
    /// and acknowledgements; a transaction waiting to end ends once all of its completed.
    pub(crate) fn observe(&mut self, sh: &mut Shared, now: Instant) {
        let len = sh.out.events.len();
        if self.sends.is_empty() && self.acks.is_empty() {
            self.seen = len;
            return;
        }
        let mut done: Vec<(TxnId, bool)> = Vec::new();
        for e in sh.out.events.iter().skip(self.seen) {
            match e {
                Event::SendCompleted { send, result, .. } => {
                    if let Some(txn) = self.sends.remove(send) {
                        done.push((txn, result.is_ok()));
                    }
                }
                Event::SendsCompleted { sends, .. } => {
                    for send in sends {
                        if let Some(txn) = self.sends.remove(send) {
                            done.push((txn, true));
                        }
                    }
                }
                Event::AckCompleted {
                    request, result, ..
                } => {
                    if let Some(txn) = self.acks.remove(request) {
                        done.push((txn, result.is_ok()));
                    }
                }
                _ => {}
            }
        }
        self.seen = len;
        for (txn, ok) in done {
            self.txn_op_done(sh, now, txn, ok);
        }
    }

    /// A send or acknowledgement of `txn` completed.
    fn txn_op_done(&mut self, sh: &mut Shared, now: Instant, txn: TxnId, ok: bool) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        t.outstanding = t.outstanding.saturating_sub(1);
        t.failed |= !ok;
        if t.outstanding == 0 && t.end.is_some_and(|e| !e.sent) {
            self.send_end(sh, now, txn);
        }
    }

    /// The earliest deadline: a waiting request's, an open transaction's timeout, the
    /// coordinators' retries.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let mut next = self.coords.next_timeout();
        for r in self.requests.values() {
            if r.sent_on.is_none() {
                next = crate::time::earliest(next, Some(r.deadline));
            }
        }
        for t in self.txns.values() {
            if matches!(t.state, TxnState::Open | TxnState::TimedOut) {
                next = crate::time::earliest(next, Some(t.expires));
            }
        }
        next
    }
}
