//! Transactions through the runtime facade: [`TTxn`] and the transactional calls of
//! [`TClient`], [`TProducer`] and [`TConsumer`] on each adapter.

use std::time::Duration;

use pulsar_async::{Error, Message, MessageId, OutgoingMessage, TxnId, TxnState};

use crate::facade::{Env, TClient, TConsumer, TProducer};

/// A transaction of any runtime.
#[derive(Debug, Clone)]
pub enum TTxn {
    /// tokio or smol, with the environment its futures run in.
    Async(Env, pulsar_async::Transaction),
    /// The blocking adapter.
    Blocking(pulsar_blocking::Transaction),
}

impl TClient {
    /// Opens a transaction with `timeout`.
    pub fn new_transaction(&self, timeout: Duration) -> Result<TTxn, Error> {
        match self {
            TClient::Async(env, c) => env
                .block_on(c.new_transaction().timeout(timeout).build())
                .map(|t| TTxn::Async(env.clone(), t)),
            TClient::Blocking(c) => c
                .new_transaction()
                .timeout(timeout)
                .build()
                .map(TTxn::Blocking),
        }
    }
}

impl TTxn {
    /// The transaction's id.
    pub fn id(&self) -> TxnId {
        match self {
            TTxn::Async(_, t) => t.id(),
            TTxn::Blocking(t) => t.id(),
        }
    }

    /// Its state (`None` once ended).
    pub fn state(&self) -> Option<TxnState> {
        match self {
            TTxn::Async(_, t) => t.state(),
            TTxn::Blocking(t) => t.state(),
        }
    }

    /// Commits it.
    pub fn commit(&self) -> Result<(), Error> {
        match self {
            TTxn::Async(env, t) => env.block_on(t.commit()),
            TTxn::Blocking(t) => t.commit(),
        }
    }

    /// Aborts it.
    pub fn abort(&self) -> Result<(), Error> {
        match self {
            TTxn::Async(env, t) => env.block_on(t.abort()),
            TTxn::Blocking(t) => t.abort(),
        }
    }
}

impl TProducer {
    /// Sends `m` in `txn` and waits for its receipt.
    pub fn send_with_txn(&self, txn: &TTxn, m: OutgoingMessage) -> Result<MessageId, Error> {
        match (self, txn) {
            (TProducer::Async(env, p), TTxn::Async(_, t)) => env.block_on(p.send_with_txn(t, m)),
            (TProducer::Blocking(p), TTxn::Blocking(t)) => p.send_with_txn(t, m),
            _ => panic!("a producer and a transaction of different runtimes"),
        }
    }

    /// Queues `m` in `txn` and returns once it is queued (the receipt is not awaited).
    pub fn send_async_with_txn(&self, txn: &TTxn, m: OutgoingMessage) -> Result<(), Error> {
        match (self, txn) {
            (TProducer::Async(env, p), TTxn::Async(_, t)) => {
                env.block_on(p.send_async_with_txn(t, m)).map(drop)
            }
            (TProducer::Blocking(p), TTxn::Blocking(t)) => p.send_async_with_txn(t, m).map(drop),
            _ => panic!("a producer and a transaction of different runtimes"),
        }
    }
}

impl TConsumer {
    /// Acknowledges `m` in `txn` (cumulatively when `cumulative`), waiting for the broker.
    pub fn ack_with_txn(&self, txn: &TTxn, m: &Message, cumulative: bool) -> Result<(), Error> {
        match (self, txn) {
            (TConsumer::Async(env, c), TTxn::Async(_, t)) => env.block_on(async {
                if cumulative {
                    c.ack_cumulative_with_txn(t, m).await
                } else {
                    c.ack_with_txn(t, m).await
                }
            }),
            (TConsumer::Blocking(c), TTxn::Blocking(t)) => {
                if cumulative {
                    c.ack_cumulative_with_txn(t, m)
                } else {
                    c.ack_with_txn(t, m)
                }
            }
            _ => panic!("a consumer and a transaction of different runtimes"),
        }
    }
}
