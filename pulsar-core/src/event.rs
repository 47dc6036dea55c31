//! Events for the application, from [`Client::poll_event`](crate::Client::poll_event).

use std::sync::Arc;

use crate::error::{Error, ReceiveError, SendError};
use crate::handle::{ConnectionId, ConsumerId, ProducerId, RequestId, SendId, TxnId};
use crate::message::{MessageId, TopicMessageId};
use crate::schema::{SchemaVersion, VersionedSchema};
use crate::service_url::BrokerAddress;

/// A producer or a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// A producer.
    Producer(ProducerId),
    /// A consumer.
    Consumer(ConsumerId),
    /// The client's connection to transaction coordinator `n` (a partition of
    /// `pulsar/system/transaction_coordinator_assign`).
    Coordinator(u64),
}

/// The answer to a topic lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LookupResult {
    /// The broker that owns the topic.
    pub broker: BrokerAddress,
    /// Where to connect to reach it: the broker itself, or the service URL host (a proxy) when the
    /// lookup said `proxy_through_service_url`.
    pub connect_to: BrokerAddress,
    /// Number of redirects followed.
    pub redirects: u32,
}

impl LookupResult {
    /// Whether the broker is reached through a proxy.
    pub fn is_proxied(&self) -> bool {
        self.broker != self.connect_to
    }
}

/// Which topics [`Client::topics_of_namespace`](crate::Client::topics_of_namespace) lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TopicsMode {
    /// Persistent topics only.
    #[default]
    Persistent,
    /// Non-persistent topics only.
    NonPersistent,
    /// Both.
    All,
}

/// Something the application may want to know. Drain with
/// [`Client::poll_event`](crate::Client::poll_event) after every input.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A connection finished its handshake.
    ConnectionOpened {
        /// The connection.
        conn: ConnectionId,
        /// Where the socket goes: the broker, or the proxy when connections go through one.
        address: BrokerAddress,
    },
    /// A connection went away (failed to connect, closed by the peer, timed out, closed because of bad
    /// input, or closed by the client).
    ConnectionClosed {
        /// The connection.
        conn: ConnectionId,
        /// Where the socket went: the broker, or the proxy when connections go through one.
        address: BrokerAddress,
        /// Why.
        reason: Error,
    },
    /// Answer to [`Client::lookup_topic`](crate::Client::lookup_topic).
    LookupCompleted {
        /// The request.
        request: RequestId,
        /// The owning broker, or why not.
        result: Result<LookupResult, Error>,
    },
    /// Answer to [`Client::partitioned_metadata`](crate::Client::partitioned_metadata): the number of
    /// partitions, `0` for a non-partitioned topic.
    PartitionedMetadata {
        /// The request.
        request: RequestId,
        /// The partition count, or why not.
        result: Result<u32, Error>,
    },
    /// Answer to [`Client::topics_of_namespace`](crate::Client::topics_of_namespace).
    TopicsOfNamespace {
        /// The request.
        request: RequestId,
        /// The fully qualified topic names, or why not.
        result: Result<Vec<String>, Error>,
    },
    /// Answer to [`Client::get_schema`](crate::Client::get_schema): the schema, `None` when the
    /// topic has none (or not that version).
    SchemaFetched {
        /// The request.
        request: RequestId,
        /// The schema and its version, or why not.
        result: Result<Option<VersionedSchema>, Error>,
    },
    /// Answer to [`Client::get_or_create_schema`](crate::Client::get_or_create_schema): the
    /// schema's version on the topic.
    SchemaCreated {
        /// The request.
        request: RequestId,
        /// The version (new or existing), or why not ([`Error::IncompatibleSchema`] when the
        /// topic's compatibility strategy refuses it).
        result: Result<SchemaVersion, Error>,
    },
    /// The producer is registered on the broker for the first time and accepts sends.
    ProducerReady {
        /// The producer.
        producer: ProducerId,
        /// Its name (the broker's choice when none was given).
        name: String,
        /// The last sequence id the broker stored for this producer name (`-1`: none; the
        /// highest over the partitions of a partitioned topic).
        last_sequence_id: i64,
        /// The schema version the broker assigned to the producer's schema, if any.
        schema_version: Option<bytes::Bytes>,
    },
    /// The producer lost its registration (connection loss, broker close, migration) and is being
    /// re-created; pending messages will be resent in order.
    ProducerReconnecting {
        /// The producer.
        producer: ProducerId,
        /// Why.
        reason: Error,
    },
    /// The producer is registered again after a reconnection.
    ProducerReconnected {
        /// The producer.
        producer: ProducerId,
    },
    /// Creating the producer failed; the handle is dead.
    ProducerFailed {
        /// The producer.
        producer: ProducerId,
        /// Why.
        error: Error,
    },
    /// The producer is closed (by the application, or permanently failed after being ready); the
    /// handle is dead.
    ProducerClosed {
        /// The producer.
        producer: ProducerId,
        /// `None` for a requested close.
        error: Option<Error>,
    },
    /// A send finished.
    SendCompleted {
        /// The producer.
        producer: ProducerId,
        /// The send.
        send: SendId,
        /// The message id the broker assigned, or why the send failed.
        result: Result<MessageId, SendError>,
    },
    /// Every message of a batch was stored: one event for the batch's receipt instead of one
    /// [`Event::SendCompleted`] per message. Reported only by a client that asked for it with
    /// [`Client::set_batch_receipts`](crate::Client::set_batch_receipts), for batches without a
    /// transaction; failures are always reported per message.
    SendsCompleted {
        /// The producer.
        producer: ProducerId,
        /// The id of the batch's entry; message `i` of `sends` has the id
        /// [`batch.in_batch(i, sends.len())`](MessageId::in_batch).
        batch: MessageId,
        /// The sends of the batch, in batch order.
        sends: Vec<SendId>,
    },
    /// Answer to [`Client::flush`](crate::Client::flush): every message sent before it is
    /// completed (acknowledged or failed).
    FlushCompleted {
        /// The producer.
        producer: ProducerId,
        /// The flush request.
        request: RequestId,
    },
    /// A send of this producer was refused with [`SendError::QueueFull`] or
    /// [`SendError::MemoryLimit`] and there is room again (reported once per refusal streak;
    /// any [`Event::SendCompleted`] may free room too).
    ProducerHasRoom {
        /// The producer.
        producer: ProducerId,
    },
    /// The consumer is subscribed for the first time.
    ConsumerReady {
        /// The consumer.
        consumer: ConsumerId,
    },
    /// The consumer lost its subscription registration and is resubscribing; locally queued messages
    /// were dropped (the broker redelivers them).
    ConsumerReconnecting {
        /// The consumer.
        consumer: ConsumerId,
        /// Why.
        reason: Error,
    },
    /// The consumer is subscribed again after a reconnection.
    ConsumerReconnected {
        /// The consumer.
        consumer: ConsumerId,
    },
    /// Subscribing failed; the handle is dead.
    ConsumerFailed {
        /// The consumer.
        consumer: ConsumerId,
        /// Why.
        error: Error,
    },
    /// The consumer is closed; the handle is dead.
    ConsumerClosed {
        /// The consumer.
        consumer: ConsumerId,
        /// `None` for a requested close.
        error: Option<Error>,
    },
    /// The consumer's receiver queue went from empty to non-empty: call
    /// [`Client::receive`](crate::Client::receive).
    MessagesAvailable {
        /// The consumer.
        consumer: ConsumerId,
    },
    /// A message (or chunk) from the broker was unusable: it was reported to the broker and never
    /// reaches the application.
    ReceiveFailed {
        /// The consumer.
        consumer: ConsumerId,
        /// The topic (partition).
        topic: Arc<str>,
        /// Why.
        error: ReceiveError,
    },
    /// With `ack_receipts`: the broker confirmed (or refused) an acknowledgement.
    AckCompleted {
        /// The consumer.
        consumer: ConsumerId,
        /// The request returned by the ack call.
        request: RequestId,
        /// The broker's answer.
        result: Result<(), Error>,
    },
    /// With [`ConsumerOptions::report_ack_timeouts`](crate::ConsumerOptions::report_ack_timeouts):
    /// messages of one topic (partition) were handed to the application and not acknowledged
    /// within `ack_timeout`, and the consumer is asking the broker to redeliver them (Java's
    /// `onAckTimeoutSend`). Reported once per expiry, before the redelivery request goes out.
    AckTimeoutRedelivery {
        /// The consumer.
        consumer: ConsumerId,
        /// The topic (partition).
        topic: Arc<str>,
        /// The ids, one per entry (batch index `-1`, as Java's tracker keeps them), in the order
        /// their timers expired.
        ids: Vec<MessageId>,
    },
    /// Answer to [`Client::new_transaction`](crate::Client::new_transaction): the new
    /// transaction's id, or why none was opened.
    TransactionOpened {
        /// The request returned by `new_transaction`.
        request: RequestId,
        /// The transaction, or the error ([`Error::Transaction`] for the coordinator's refusals).
        result: Result<TxnId, Error>,
    },
    /// Answer to [`Client::commit_transaction`](crate::Client::commit_transaction) or
    /// [`Client::abort_transaction`](crate::Client::abort_transaction).
    TransactionEnded {
        /// The request returned by the commit or abort call.
        request: RequestId,
        /// The transaction.
        txn: TxnId,
        /// `Ok`: committed (or aborted, for an abort). A commit after a failed operation of the
        /// transaction aborts it and fails with
        /// [`TxnError::OperationFailed`](crate::TxnError::OperationFailed).
        result: Result<(), Error>,
    },
    /// Answer to [`Client::reconsume_later`](crate::Client::reconsume_later).
    ReconsumeCompleted {
        /// The consumer.
        consumer: ConsumerId,
        /// The request.
        request: RequestId,
        /// Whether the copy was published and the original acknowledged.
        result: Result<(), Error>,
    },
    /// Answer to [`Client::seek`](crate::Client::seek).
    SeekCompleted {
        /// The consumer.
        consumer: ConsumerId,
        /// The request.
        request: RequestId,
        /// The broker's answer.
        result: Result<(), Error>,
    },
    /// Answer to [`Client::get_last_message_ids`](crate::Client::get_last_message_ids): the last
    /// message id of every topic (partition) of the consumer.
    LastMessageIds {
        /// The consumer.
        consumer: ConsumerId,
        /// The request.
        request: RequestId,
        /// The ids, or why not.
        result: Result<Vec<TopicMessageId>, Error>,
    },
    /// Answer to [`Client::has_message_available`](crate::Client::has_message_available).
    HasMessageAvailable {
        /// The consumer.
        consumer: ConsumerId,
        /// The request.
        request: RequestId,
        /// Whether a message can be received, or why not known.
        result: Result<bool, Error>,
    },
    /// Answer to [`Client::unsubscribe`](crate::Client::unsubscribe); on success
    /// [`Event::ConsumerClosed`] follows.
    Unsubscribed {
        /// The consumer.
        consumer: ConsumerId,
        /// The request.
        request: RequestId,
        /// The broker's answer.
        result: Result<(), Error>,
    },
    /// Failover subscriptions: this consumer became the active one for a topic, or stopped being.
    ActiveConsumerChanged {
        /// The consumer.
        consumer: ConsumerId,
        /// The topic (partition).
        topic: Arc<str>,
        /// Whether it is now active.
        active: bool,
    },
    /// The topic was terminated and every message of it was delivered.
    ReachedEndOfTopic {
        /// The consumer.
        consumer: ConsumerId,
        /// The topic (partition).
        topic: Arc<str>,
    },
    /// A pattern consumer joined topics that now match and left topics that are gone.
    TopicsChanged {
        /// The consumer.
        consumer: ConsumerId,
        /// Topics joined.
        added: Vec<String>,
        /// Topics left.
        removed: Vec<String>,
    },
    /// The broker moved a producer's or consumer's topic (TOPIC_MIGRATED, or CLOSE_* with an assigned
    /// broker); it is being re-registered there.
    TopicMoved {
        /// Who moves.
        resource: Resource,
        /// Where to.
        to: BrokerAddress,
    },
    /// [`Client::set_service_url`](crate::Client::set_service_url) switched to another service
    /// URL: the old connections are closing, and producers and consumers look up again there.
    ServiceUrlChanged {
        /// The service URL now in use.
        url: String,
    },
    /// [`Client::close`](crate::Client::close) finished: every connection is closed.
    ClientClosed,
}
