//! Transactions: [`ClientHandle::new_transaction`] builds one; producers send in it
//! ([`Producer::send_with_txn`](crate::Producer::send_with_txn)), consumers acknowledge in it
//! ([`Consumer::ack_with_txn`](crate::Consumer::ack_with_txn)), and
//! [`commit`](Transaction::commit) or [`abort`](Transaction::abort) ends it.

use std::time::Duration;

use pulsar_core::{TxnId, TxnState};

use crate::client::ClientHandle;
use crate::error::Error;
use crate::state::RequestResult;

/// The Java client's default transaction timeout.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds a [`Transaction`] (from [`ClientHandle::new_transaction`]).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct TransactionBuilder {
    client: ClientHandle,
    timeout: Duration,
}

impl TransactionBuilder {
    pub(crate) fn new(client: ClientHandle) -> Self {
        TransactionBuilder {
            client,
            timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }

    /// How long the transaction may stay open: the coordinator aborts it afterwards (default
    /// [`DEFAULT_TRANSACTION_TIMEOUT`], one minute).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the transaction at one of the broker's coordinators (found and connected on the
    /// first use). Fails with [`pulsar_core::TxnError::NotEnabled`] when the broker has no
    /// transaction coordinator, and with a retriable
    /// [`pulsar_core::TxnError::CoordinatorNotAvailable`] when none answered in time.
    pub async fn build(self) -> Result<Transaction, Error> {
        let timeout = self.timeout;
        let answer = self
            .client
            .request_for(None, |core, now| core.new_transaction(now, timeout))
            .await?;
        match answer {
            RequestResult::Txn(r) => Ok(Transaction {
                client: self.client,
                id: r?,
            }),
            _ => Err(Error::DriverStopped),
        }
    }
}

/// An open transaction: messages sent in it are delivered only if it commits, and
/// acknowledgements made in it apply only then. Cheap to clone (all clones name the same
/// transaction).
///
/// A commit waits until every send and acknowledgement made in the transaction completed; if
/// one of them failed, the transaction is aborted instead and the commit fails with
/// [`pulsar_core::TxnError::OperationFailed`]. A transaction neither committed nor aborted
/// within its timeout is aborted by the coordinator (then [`TxnState::TimedOut`] here).
#[derive(Debug, Clone)]
pub struct Transaction {
    client: ClientHandle,
    id: TxnId,
}

impl Transaction {
    /// The transaction's id (coordinator, sequence number).
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// Where the transaction stands; `None` once it ended (committed, aborted or failed), and
    /// ten minutes after it timed out.
    pub fn state(&self) -> Option<TxnState> {
        self.client
            .shared()
            .with(|st| st.core.transaction_state(self.id))
    }

    /// Commits: waits for the transaction's sends and acknowledgements, then ends it at its
    /// coordinator. Errors say whether they are retriable ([`Error::is_retriable`]): a
    /// retriable one (a request timeout, a lost connection) leaves the outcome unknown and the
    /// commit may be called again.
    pub async fn commit(&self) -> Result<(), Error> {
        let id = self.id;
        self.end(move |core, now| core.commit_transaction(now, id))
            .await
    }

    /// Aborts: waits for the transaction's sends and acknowledgements, then ends it at its
    /// coordinator. Its messages are never delivered, and consumers that acknowledged in it
    /// get their unacknowledged messages again.
    pub async fn abort(&self) -> Result<(), Error> {
        let id = self.id;
        self.end(move |core, now| core.abort_transaction(now, id))
            .await
    }

    async fn end(
        &self,
        start: impl FnOnce(
            &mut pulsar_core::Client,
            std::time::Instant,
        ) -> Result<pulsar_core::RequestId, pulsar_core::Error>,
    ) -> Result<(), Error> {
        match self.client.request_for(None, start).await? {
            RequestResult::Done(r) => r.map_err(Error::from),
            _ => Err(Error::DriverStopped),
        }
    }
}
