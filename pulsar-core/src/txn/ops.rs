//! The transactions' operations: the application's calls, the coordinator requests they make,
//! their answers, and the timers.

use std::time::{Duration, Instant};

use pulsar_proto::pb;

use super::{End, HeldAck, HeldSend, TcRequest, Transactions, Txn, What};
use crate::consumer::Consumers;
use crate::error::{Error, SendError, ServerErrorCode, TxnError};
use crate::event::Event;
use crate::handle::{ConnectionId, ConsumerId, ProducerId, RequestId, SendId, TxnId, TxnState};
use crate::message::MessageId;
use crate::producer::{OutgoingMessage, Producers, Refused};
use crate::request::{OpResult, RequestKind};
use crate::shared::Shared;
use crate::time;

impl Transactions {
    // ---- the application's calls ------------------------------------------------------------

    /// Starts a transaction; [`Event::TransactionOpened`] with `app` follows.
    pub(crate) fn open(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        app: RequestId,
        timeout: Duration,
    ) {
        self.coords.start(sh, now);
        self.request(sh, now, None, What::Open { app, timeout });
    }

    /// The open transaction `txn`, or why it cannot take `operation`.
    fn open_txn(&mut self, txn: TxnId, operation: &'static str) -> Result<&mut Txn, TxnError> {
        let t = self.txns.get_mut(&txn).ok_or(TxnError::NotFound(txn))?;
        match t.state {
            TxnState::Open => Ok(t),
            TxnState::TimedOut => Err(TxnError::TimedOut(txn)),
            state => Err(TxnError::InvalidStatus {
                txn,
                state,
                operation,
            }),
        }
    }

    /// Sends `message` in `txn` through `producer`: at once when its partition is in the
    /// transaction already, else after ADD_PARTITION_TO_TXN.
    // The refused message comes back by value, as from `Client::try_send`.
    #[allow(clippy::result_large_err, clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
        producer: ProducerId,
        txn: TxnId,
        mut message: OutgoingMessage,
    ) -> Result<SendId, Refused> {
        if let Err(e) = self.open_txn(txn, "send") {
            return Err(Refused::with(SendError::Transaction(e), message));
        }
        let (part, topic) = match producers.txn_target(sh, now, producer, &message) {
            Ok(t) => t,
            Err(e) => return Err(Refused::with(e, message)),
        };
        message.txn = Some(txn);
        let added = self
            .txns
            .get(&txn)
            .and_then(|t| t.partitions.get(&topic).copied());
        let send = if added == Some(true) {
            producers
                .accept_on(sh, now, producer, part, None, &mut message, false)
                .map_err(|r| r.into_refused(message))?
        } else {
            let send = sh.env.ids.send();
            if added.is_none() {
                self.request(
                    sh,
                    now,
                    Some(txn.most_bits),
                    What::AddPartitions {
                        txn,
                        partitions: vec![topic.clone()],
                    },
                );
            }
            if let Some(t) = self.txns.get_mut(&txn) {
                t.partitions.entry(topic.clone()).or_insert(false);
                t.held_sends.push(HeldSend {
                    topic,
                    producer,
                    part,
                    send,
                    message,
                });
            }
            send
        };
        if let Some(t) = self.txns.get_mut(&txn) {
            t.outstanding += 1;
        }
        self.sends.insert(send, txn);
        Ok(send)
    }

    /// Acknowledges `id` in `txn`: at once when the subscription is in the transaction
    /// already, else after ADD_SUBSCRIPTION_TO_TXN. [`Event::AckCompleted`] with the returned
    /// request follows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ack(
        &mut self,
        sh: &mut Shared,
        consumers: &mut Consumers,
        now: Instant,
        consumer: ConsumerId,
        id: &MessageId,
        cumulative: bool,
        via: Option<ConsumerId>,
        txn: TxnId,
    ) -> Result<RequestId, Error> {
        self.open_txn(txn, "acknowledge")?;
        let target = consumers.txn_ack_target(consumer, id, cumulative, via)?;
        let key = (target.topic.clone(), target.subscription.clone());
        let added = self
            .txns
            .get(&txn)
            .and_then(|t| t.subscriptions.get(&key).copied());
        let request = sh.env.ids.request();
        if added == Some(true) {
            consumers.txn_ack(sh, now, consumer, target.sub, id, cumulative, txn, request)?;
        } else {
            if added.is_none() {
                self.request(
                    sh,
                    now,
                    Some(txn.most_bits),
                    What::AddSubscriptions {
                        txn,
                        subscriptions: vec![key.clone()],
                    },
                );
            }
            if let Some(t) = self.txns.get_mut(&txn) {
                t.subscriptions.entry(key.clone()).or_insert(false);
                t.held_acks.push(HeldAck {
                    key,
                    consumer,
                    sub: target.sub,
                    id: *id,
                    cumulative,
                    request,
                });
            }
        }
        if let Some(t) = self.txns.get_mut(&txn) {
            t.outstanding += 1;
            t.ack_consumers.insert(consumer);
        }
        self.acks.insert(request, txn);
        Ok(request)
    }

    /// Commits or aborts `txn` once its operations completed; [`Event::TransactionEnded`] with
    /// `request` follows. A transaction whose END_TXN failed with a retriable error (its outcome
    /// unknown) may be ended again.
    pub(crate) fn end(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        txn: TxnId,
        commit: bool,
        request: RequestId,
    ) -> Result<(), Error> {
        let operation = if commit { "commit" } else { "abort" };
        let t = self.txns.get_mut(&txn).ok_or(TxnError::NotFound(txn))?;
        let ending = if commit {
            TxnState::Committing
        } else {
            TxnState::Aborting
        };
        let retry = t.state == ending && t.end.is_some_and(|e| !e.sent) && t.outstanding == 0;
        match t.state {
            TxnState::Open => {}
            _ if retry => {}
            TxnState::TimedOut => {
                self.txns.remove(&txn);
                return Err(TxnError::TimedOut(txn).into());
            }
            state => {
                return Err(TxnError::InvalidStatus {
                    txn,
                    state,
                    operation,
                }
                .into())
            }
        }
        t.state = ending;
        t.end = Some(End {
            commit,
            request,
            sent: false,
            turned_abort: false,
        });
        if t.outstanding == 0 {
            self.send_end(sh, now, txn);
        }
        Ok(())
    }

    /// Sends END_TXN (an abort instead of a commit after a failed operation).
    pub(super) fn send_end(&mut self, sh: &mut Shared, now: Instant, txn: TxnId) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let Some(end) = t.end.as_mut() else {
            return;
        };
        if end.commit && t.failed {
            end.commit = false;
            end.turned_abort = true;
            t.state = TxnState::Aborting;
        }
        end.sent = true;
        let commit = end.commit;
        self.request(sh, now, Some(txn.most_bits), What::End { txn, commit });
    }

    // ---- coordinator requests ---------------------------------------------------------------

    fn request(&mut self, sh: &mut Shared, now: Instant, coordinator: Option<u64>, what: What) {
        let rid = sh.env.next_request_id();
        let deadline = time::after(now, sh.env.config.operation_timeout);
        self.requests.insert(
            rid,
            TcRequest {
                coordinator,
                what,
                deadline,
                sent_on: None,
                last_error: None,
            },
        );
        self.issue(sh, rid);
    }

    /// Sends a waiting request if its coordinator is registered.
    fn issue(&mut self, sh: &mut Shared, rid: u64) {
        let Some(r) = self.requests.get_mut(&rid) else {
            return;
        };
        if r.sent_on.is_some() {
            return;
        }
        if r.coordinator.is_none() {
            r.coordinator = self.coords.pick();
        }
        let Some(tc) = r.coordinator else {
            return;
        };
        let Some(conn) = self.coords.ready_conn(tc) else {
            return;
        };
        let cmd = command(rid, tc, &r.what);
        let kind = RequestKind::Coordinator(tc);
        if sh
            .conns
            .send_request_until(conn, rid, &cmd, kind, Some(r.deadline))
        {
            r.sent_on = Some(conn);
        }
    }

    /// Sends every waiting request that can go.
    fn issue_all(&mut self, sh: &mut Shared) {
        let waiting: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.sent_on.is_none())
            .map(|(id, _)| *id)
            .collect();
        for rid in waiting {
            self.issue(sh, rid);
        }
    }

    /// An answer (or timeout) from coordinator `tc`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn response(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        consumers: &mut Consumers,
        now: Instant,
        conn: ConnectionId,
        tc: u64,
        rid: u64,
        result: Result<pb::BaseCommand, Error>,
    ) {
        match self.coords.answer(sh, now, conn, tc, rid, result.clone()) {
            super::coordinator::Answer::Ready(_) => return self.issue_all(sh),
            super::coordinator::Answer::Failed => {
                if self.coords.disabled {
                    self.fail_waiting(sh, producers, consumers, now, true);
                }
                return;
            }
            super::coordinator::Answer::NotMine => {}
        }
        let Some(r) = self.requests.get_mut(&rid) else {
            return;
        };
        if r.sent_on != Some(conn) {
            return;
        }
        let txn = match &r.what {
            What::Open { .. } => None,
            What::AddPartitions { txn, .. }
            | What::AddSubscriptions { txn, .. }
            | What::End { txn, .. } => Some(*txn),
        };
        let outcome = answer_of(txn, result);
        if let Err(e) = &outcome {
            if retry_at_coordinator(e) && now < r.deadline {
                // The coordinator moved or is loading: look it up again and resend.
                r.sent_on = None;
                r.last_error = Some(e.clone());
                let reason = Error::Transaction(e.clone());
                self.coords.reset(sh, now, tc, &reason);
                return;
            }
        }
        let Some(r) = self.requests.remove(&rid) else {
            return;
        };
        self.finish(sh, producers, consumers, now, r.what, outcome);
    }

    /// A request ended with `outcome`.
    fn finish(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        consumers: &mut Consumers,
        now: Instant,
        what: What,
        outcome: Result<TxnId, TxnError>,
    ) {
        match what {
            What::Open { app, timeout } => {
                let result = outcome.inspect(|txn| {
                    self.txns.insert(*txn, Txn::new(time::after(now, timeout)));
                });
                sh.out.events.push_back(Event::TransactionOpened {
                    request: app,
                    result: result.map_err(Error::Transaction),
                });
            }
            What::AddPartitions { txn, partitions } => {
                self.partitions_added(sh, producers, now, txn, &partitions, outcome.err());
            }
            What::AddSubscriptions { txn, subscriptions } => {
                let error = outcome.err();
                self.subscriptions_added(sh, consumers, now, txn, &subscriptions, error);
            }
            What::End { txn, commit } => self.ended(sh, consumers, txn, commit, outcome),
        }
    }

    /// ADD_PARTITION_TO_TXN answered: the held messages go to their producers, or fail.
    fn partitions_added(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        now: Instant,
        txn: TxnId,
        partitions: &[String],
        error: Option<TxnError>,
    ) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let (mine, rest): (Vec<HeldSend>, Vec<HeldSend>) = std::mem::take(&mut t.held_sends)
            .into_iter()
            .partition(|h| partitions.contains(&h.topic));
        t.held_sends = rest;
        for p in partitions {
            if error.is_some() {
                t.partitions.remove(p);
            } else {
                t.partitions.insert(p.clone(), true);
            }
        }
        for mut h in mine {
            let result = match &error {
                Some(e) => Err(SendError::Transaction(e.clone())),
                None => producers
                    .accept_on(
                        sh,
                        now,
                        h.producer,
                        h.part,
                        Some(h.send),
                        &mut h.message,
                        true,
                    )
                    .map(|_| ())
                    .map_err(|r| r.into_error()),
            };
            if let Err(error) = result {
                sh.out.events.push_back(Event::SendCompleted {
                    producer: h.producer,
                    send: h.send,
                    result: Err(error),
                });
            }
        }
    }

    /// ADD_SUBSCRIPTION_TO_TXN answered: the held acknowledgements are written, or fail.
    fn subscriptions_added(
        &mut self,
        sh: &mut Shared,
        consumers: &mut Consumers,
        now: Instant,
        txn: TxnId,
        subscriptions: &[(String, String)],
        error: Option<TxnError>,
    ) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let (mine, rest): (Vec<HeldAck>, Vec<HeldAck>) = std::mem::take(&mut t.held_acks)
            .into_iter()
            .partition(|h| subscriptions.contains(&h.key));
        t.held_acks = rest;
        for s in subscriptions {
            if error.is_some() {
                t.subscriptions.remove(s);
            } else {
                t.subscriptions.insert(s.clone(), true);
            }
        }
        for h in mine {
            let result = match &error {
                Some(e) => Err(Error::Transaction(e.clone())),
                None => consumers.txn_ack(
                    sh,
                    now,
                    h.consumer,
                    h.sub,
                    &h.id,
                    h.cumulative,
                    txn,
                    h.request,
                ),
            };
            if let Err(error) = result {
                sh.out.events.push_back(Event::AckCompleted {
                    consumer: h.consumer,
                    request: h.request,
                    result: Err(error),
                });
            }
        }
    }

    /// END_TXN answered.
    fn ended(
        &mut self,
        sh: &mut Shared,
        consumers: &mut Consumers,
        txn: TxnId,
        commit: bool,
        outcome: Result<TxnId, TxnError>,
    ) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let Some(end) = t.end else {
            return;
        };
        let result = match outcome {
            Ok(_) => {
                t.state = if commit {
                    TxnState::Committed
                } else {
                    TxnState::Aborted
                };
                if end.turned_abort {
                    Err(TxnError::OperationFailed(txn))
                } else {
                    Ok(())
                }
            }
            Err(e) if e.is_retriable() => {
                // Unknown outcome: the application may end it again.
                if let Some(end) = t.end.as_mut() {
                    end.sent = false;
                }
                Err(e)
            }
            Err(e) => {
                t.state = TxnState::Error;
                Err(e)
            }
        };
        let state = t.state;
        if matches!(
            state,
            TxnState::Committed | TxnState::Aborted | TxnState::Error
        ) {
            if let Some(t) = self.txns.remove(&txn) {
                if state == TxnState::Aborted {
                    // Acknowledged messages are the subscription's again: have them redelivered.
                    for c in t.ack_consumers {
                        let _ = consumers.redeliver_unacknowledged(sh, c);
                    }
                }
            }
        }
        sh.out.events.push_back(Event::TransactionEnded {
            request: end.request,
            txn,
            result: result.map_err(Error::Transaction),
        });
    }

    // ---- connections, lookups, timers -------------------------------------------------------

    /// A lookup of the coordinators (`which == None`: the discovery) finished.
    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        which: Option<u64>,
        op: u64,
        result: OpResult,
    ) {
        self.coords.op_done(sh, now, which, op, result);
        if which.is_none() && self.coords.discovered() {
            // Requests for a coordinator that does not exist cannot be served.
            let bad: Vec<u64> = self
                .requests
                .iter()
                .filter(|(_, r)| r.coordinator.is_some_and(|c| !self.coords.exists(c)))
                .map(|(id, _)| *id)
                .collect();
            for rid in bad {
                if let Some(r) = self.requests.get_mut(&rid) {
                    r.deadline = now;
                }
            }
            self.issue_all(sh);
        }
    }

    /// A connection finished its handshake.
    pub(crate) fn connection_ready(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId) {
        self.coords.connection_ready(sh, now, conn);
    }

    /// A connection dropped: the coordinators on it reconnect and their requests are sent
    /// again once they are back.
    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
    ) {
        if !self.coords.connection_lost(sh, now, conn, reason) {
            return;
        }
        for r in self.requests.values_mut() {
            if r.sent_on == Some(conn) {
                r.sent_on = None;
                r.last_error = Some(TxnError::Connection(Box::new(reason.clone())));
            }
        }
    }

    /// Timers: coordinator retries, waiting requests past their deadline, transaction timeouts.
    pub(crate) fn handle_timeout(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        consumers: &mut Consumers,
        now: Instant,
    ) {
        self.coords.handle_timeout(sh, now);
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| r.sent_on.is_none() && r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for rid in expired {
            if let Some(r) = self.requests.remove(&rid) {
                let error = self.unavailable(&r);
                self.finish(sh, producers, consumers, now, r.what, Err(error));
            }
        }
        let timed_out: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, t)| t.state == TxnState::Open && t.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for txn in timed_out {
            self.time_out(sh, now, txn);
        }
        // Timed-out transactions nobody ended are forgotten after a while.
        self.txns
            .retain(|_, t| !(t.state == TxnState::TimedOut && t.expires <= now));
    }

    /// Why a request that waited for its coordinator until its deadline failed.
    fn unavailable(&self, r: &TcRequest) -> TxnError {
        if self.coords.disabled {
            return TxnError::NotEnabled;
        }
        if let Some(e) = &r.last_error {
            return e.clone();
        }
        TxnError::CoordinatorNotAvailable {
            coordinator: r.coordinator.unwrap_or(0),
            message: self
                .coords
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected".to_string()),
        }
    }

    /// Fails every request still waiting for a coordinator (transactions are disabled).
    fn fail_waiting(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        consumers: &mut Consumers,
        now: Instant,
        only_unsent: bool,
    ) {
        let ids: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| !only_unsent || r.sent_on.is_none())
            .map(|(id, _)| *id)
            .collect();
        for rid in ids {
            if let Some(r) = self.requests.remove(&rid) {
                let e = if self.coords.disabled {
                    TxnError::NotEnabled
                } else {
                    TxnError::Connection(Box::new(Error::ClientClosed))
                };
                self.finish(sh, producers, consumers, now, r.what, Err(e));
            }
        }
    }

    /// `txn` reached its timeout while open: what waits for it fails. It is kept (calls on it
    /// fail with [`TxnError::TimedOut`]) for [`TIMED_OUT_KEPT`], then forgotten.
    fn time_out(&mut self, sh: &mut Shared, now: Instant, txn: TxnId) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        t.state = TxnState::TimedOut;
        t.expires = time::after(now, super::TIMED_OUT_KEPT);
        for h in std::mem::take(&mut t.held_sends) {
            self.sends.remove(&h.send);
            sh.out.events.push_back(Event::SendCompleted {
                producer: h.producer,
                send: h.send,
                result: Err(SendError::Transaction(TxnError::TimedOut(txn))),
            });
        }
        for h in std::mem::take(&mut t.held_acks) {
            self.acks.remove(&h.request);
            sh.out.events.push_back(Event::AckCompleted {
                consumer: h.consumer,
                request: h.request,
                result: Err(Error::Transaction(TxnError::TimedOut(txn))),
            });
        }
    }

    /// Fails everything (client shutdown).
    pub(crate) fn shutdown(
        &mut self,
        sh: &mut Shared,
        producers: &mut Producers,
        consumers: &mut Consumers,
        now: Instant,
    ) {
        self.fail_waiting(sh, producers, consumers, now, false);
        self.coords.shutdown(sh);
    }
}

impl Txn {
    fn new(expires: Instant) -> Txn {
        Txn {
            state: TxnState::Open,
            expires,
            partitions: Default::default(),
            subscriptions: Default::default(),
            held_sends: Vec::new(),
            held_acks: Vec::new(),
            outstanding: 0,
            failed: false,
            end: None,
            ack_consumers: Default::default(),
        }
    }
}

/// Whether a coordinator's error means "ask again once it is found again".
fn retry_at_coordinator(e: &TxnError) -> bool {
    match e {
        TxnError::CoordinatorNotAvailable { .. } => true,
        TxnError::Server { code, .. } => code.is_retriable(),
        _ => false,
    }
}

/// The command of a coordinator request.
fn command(rid: u64, tc: u64, what: &What) -> pb::BaseCommand {
    match what {
        What::Open { timeout, .. } => pb::BaseCommand::from(pb::CommandNewTxn {
            request_id: rid,
            txn_ttl_millis: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            tc_id: Some(tc),
        }),
        What::AddPartitions { txn, partitions } => {
            pb::BaseCommand::from(pb::CommandAddPartitionToTxn {
                request_id: rid,
                txnid_least_bits: Some(txn.least_bits),
                txnid_most_bits: Some(txn.most_bits),
                partitions: partitions.clone(),
            })
        }
        What::AddSubscriptions { txn, subscriptions } => {
            pb::BaseCommand::from(pb::CommandAddSubscriptionToTxn {
                request_id: rid,
                txnid_least_bits: Some(txn.least_bits),
                txnid_most_bits: Some(txn.most_bits),
                subscription: subscriptions
                    .iter()
                    .map(|(topic, subscription)| pb::Subscription {
                        topic: topic.clone(),
                        subscription: subscription.clone(),
                    })
                    .collect(),
            })
        }
        What::End { txn, commit } => pb::BaseCommand::from(pb::CommandEndTxn {
            request_id: rid,
            txnid_least_bits: Some(txn.least_bits),
            txnid_most_bits: Some(txn.most_bits),
            txn_action: Some(if *commit {
                pb::TxnAction::Commit as i32
            } else {
                pb::TxnAction::Abort as i32
            }),
        }),
    }
}

/// The transaction id of a coordinator's answer (the request's `txn`, or the new one), or its
/// error.
fn answer_of(
    txn: Option<TxnId>,
    result: Result<pb::BaseCommand, Error>,
) -> Result<TxnId, TxnError> {
    let cmd = match result {
        Ok(cmd) => cmd,
        Err(Error::Timeout) => return Err(TxnError::RequestTimeout),
        Err(Error::Server { code, message }) => {
            return Err(TxnError::from_server(txn, code, message))
        }
        Err(e) => return Err(TxnError::Connection(Box::new(e))),
    };
    let (error, message, id) = if let Some(r) = cmd.new_txn_response {
        let id = TxnId::new(
            r.txnid_most_bits.unwrap_or(0),
            r.txnid_least_bits.unwrap_or(0),
        );
        (r.error, r.message, Some(id))
    } else if let Some(r) = cmd.add_partition_to_txn_response {
        (r.error, r.message, txn)
    } else if let Some(r) = cmd.add_subscription_to_txn_response {
        (r.error, r.message, txn)
    } else if let Some(r) = cmd.end_txn_response {
        (r.error, r.message, txn)
    } else {
        (None, None, txn)
    };
    match (error, id) {
        (Some(code), _) => Err(TxnError::from_server(
            txn,
            ServerErrorCode::from_i32(code),
            message.unwrap_or_default(),
        )),
        (None, Some(id)) => Ok(id),
        (None, None) => Err(TxnError::Server {
            code: ServerErrorCode::UnknownError,
            message: "answer without a transaction id".into(),
        }),
    }
}
