//! Transactions, blocking: [`Client::new_transaction`](crate::Client::new_transaction) builds
//! one; [`Producer::send_with_txn`](crate::Producer::send_with_txn) and
//! [`Consumer::ack_with_txn`](crate::Consumer::ack_with_txn) work in it; `commit` or `abort`
//! ends it.

use std::time::Duration;

use pulsar_async::{Error, TxnId, TxnState};

use crate::wait::wait;

/// Builds a [`Transaction`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct TransactionBuilder {
    inner: pulsar_async::TransactionBuilder,
}

impl TransactionBuilder {
    pub(crate) fn new(inner: pulsar_async::TransactionBuilder) -> Self {
        TransactionBuilder { inner }
    }

    /// How long the transaction may stay open before the coordinator aborts it (default one
    /// minute).
    pub fn timeout(self, timeout: Duration) -> Self {
        TransactionBuilder {
            inner: self.inner.timeout(timeout),
        }
    }

    /// Opens the transaction, blocking until a coordinator gave it an id.
    pub fn build(self) -> Result<Transaction, Error> {
        wait(self.inner.build()).map(|inner| Transaction { inner })
    }
}

/// An open transaction (see [`pulsar_async::Transaction`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transaction {
    inner: pulsar_async::Transaction,
}

impl Transaction {
    /// The transaction's id.
    pub fn id(&self) -> TxnId {
        self.inner.id()
    }

    /// Where the transaction stands; `None` once it ended.
    pub fn state(&self) -> Option<TxnState> {
        self.inner.state()
    }

    /// Commits, blocking until the coordinator answered (after every send and acknowledgement
    /// of the transaction completed).
    pub fn commit(&self) -> Result<(), Error> {
        wait(self.inner.commit())
    }

    /// Aborts, blocking until the coordinator answered.
    pub fn abort(&self) -> Result<(), Error> {
        wait(self.inner.abort())
    }

    /// The async transaction this one wraps.
    pub fn inner(&self) -> &pulsar_async::Transaction {
        &self.inner
    }
}
