//! The client: the run-loop API (inputs, outputs, timers) and the application commands. Everything
//! is delegated: connections and lookups to `Shared`, producers and consumers to their modules.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::ClientConfig;
use crate::consumer::{ConsumerOptions, Consumers, Message, ReaderOptions, SeekTo};
use crate::error::{ConfigError, Error, SendError, UsageError};
use crate::event::{Event, TopicsMode};
use crate::handle::{ConnectionId, ConsumerId, ProducerId, RequestId, SendId, TxnId, TxnState};
use crate::io::{IoRequest, Transmit};
use crate::message::{MessageId, TopicMessageId};
use crate::outputs::Dispatch;
use crate::producer::{OutgoingMessage, ProducerOptions, Producers, Refused};
use crate::request::{OpKind, Owner};
use crate::schema::{SchemaInfo, SchemaVersion};
use crate::service_url::ServiceUrl;
use crate::shared::Shared;
use crate::stats::{ClientStats, ProducerStats};
use crate::time;
use crate::topic::{parse_namespace, TopicName};
use crate::txn::Transactions;

/// Frames decoded before what they produced is routed (see [`Shared::process_frames`]).
const DISPATCH_BATCH: usize = 16;

/// Where the client is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Open,
    /// `close` was called: producers and consumers are closing until the deadline.
    Closing {
        deadline: Instant,
    },
    Closed,
}

/// A Pulsar client as a pure state machine: connections, lookups, producers and consumers.
///
/// See the [crate documentation](crate) for the run-loop contract.
#[derive(Debug)]
pub struct Client {
    shared: Shared,
    producers: Producers,
    consumers: Consumers,
    txns: Transactions,
    life: Life,
}

impl Client {
    /// A client for `config`. Opens nothing until the first command that needs the broker.
    pub fn new(config: ClientConfig, now: Instant) -> Result<Client, ConfigError> {
        let service = config.validate()?;
        let shared = Shared::new(config, service, now);
        Ok(Client {
            txns: Transactions::new(&shared),
            shared,
            producers: Producers::default(),
            consumers: Consumers::default(),
            life: Life::Open,
        })
    }

    // ---- runtime -> core ------------------------------------------------------------------------

    /// The connection asked for with [`IoRequest::Connect`] is established.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnectionId) -> Result<(), UsageError> {
        self.shared.handle_connected(now, conn)?;
        self.pump(now);
        Ok(())
    }

    /// The TLS server name for a connection being opened, when it is not the host of its
    /// [`IoRequest::Connect`] address: with an SNI proxy
    /// ([`ClientConfig::proxy_protocol`](crate::ClientConfig::proxy_protocol)) the socket goes to
    /// the proxy and TLS names the broker (server name indication and certificate check).
    /// `None`: use the address's host.
    pub fn tls_server_name(&self, conn: ConnectionId) -> Option<&str> {
        self.shared.conns.tls_server_name(conn)
    }

    /// The connection asked for with [`IoRequest::Connect`] could not be established.
    pub fn handle_connect_failed(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        reason: String,
    ) -> Result<(), UsageError> {
        self.shared.handle_connect_failed(now, conn, reason)?;
        self.pump(now);
        Ok(())
    }

    /// Bytes were read from a connection (any amount: partial frames are buffered).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        data: &[u8],
    ) -> Result<(), UsageError> {
        self.shared.ingest(now, conn, data)?;
        // Frames are routed in small groups: the dispatch queue's items are large.
        while self.shared.process_frames(now, conn, DISPATCH_BATCH) {
            self.pump(now);
        }
        self.pump(now);
        Ok(())
    }

    /// A connection was closed by the peer or failed (read/write error, EOF).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId) -> Result<(), UsageError> {
        self.shared.handle_closed(now, conn)?;
        self.pump(now);
        Ok(())
    }

    /// Time passed. Call when [`poll_timeout`](Self::poll_timeout)'s deadline is reached; calling it
    /// early or more often is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.shared.handle_timeout(now);
        self.pump(now);
        self.producers.handle_timeout(&mut self.shared, now);
        self.pump(now);
        self.consumers.handle_timeout(&mut self.shared, now);
        self.pump(now);
        let (sh, p, c) = (&mut self.shared, &mut self.producers, &mut self.consumers);
        self.txns.handle_timeout(sh, p, c, now);
        self.pump(now);
        self.check_closing(now);
    }

    /// With `true`, the receipt of a batch without a transaction completes all of its messages
    /// with one [`Event::SendsCompleted`] instead of one [`Event::SendCompleted`] each (one event
    /// to read per batch instead of per message). Off by default; failures are always reported
    /// per message.
    pub fn set_batch_receipts(&mut self, on: bool) {
        self.shared.env.batch_receipts = on;
    }

    /// Resynchronizes the wall clock used for publish times (Unix milliseconds at `now`).
    pub fn sync_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.shared.env.set_unix_millis(now, unix_ms);
    }

    // ---- core -> runtime ------------------------------------------------------------------------

    /// The next connection request (connect / close). Drain after every call that takes `now`.
    #[must_use]
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.shared.out.poll_io()
    }

    /// The next bytes to write on one connection (see [`Transmit`] for how a connection's bytes
    /// are split). Drain after every call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.shared.poll_transmit()
    }

    /// The next event for the application. Drain after every call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.shared.out.events.pop_front();
        if e.is_some() {
            self.txns.event_taken();
        }
        e
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let closing = match self.life {
            Life::Closing { deadline } => Some(deadline),
            _ => None,
        };
        let next = time::earliest(self.shared.next_timeout(), self.producers.next_timeout());
        let next = time::earliest(next, self.txns.next_timeout());
        time::earliest(time::earliest(next, self.consumers.next_timeout()), closing)
    }

    // ---- application commands ---------------------------------------------------------------------

    /// Looks up the broker serving `topic`; the answer is [`Event::LookupCompleted`].
    pub fn lookup_topic(&mut self, now: Instant, topic: &str) -> Result<RequestId, Error> {
        let topic = TopicName::parse(topic)?;
        self.app_op(now, |_| OpKind::Lookup {
            topic: topic.to_string(),
            authoritative: false,
            redirects: 0,
        })
    }

    /// Asks for the partition count of `topic`; the answer is [`Event::PartitionedMetadata`].
    pub fn partitioned_metadata(&mut self, now: Instant, topic: &str) -> Result<RequestId, Error> {
        let topic = TopicName::parse(topic)?;
        self.app_op(now, |_| OpKind::PartitionedMetadata {
            topic: topic.to_string(),
        })
    }

    /// Lists the topics of `namespace` (`tenant/ns`); the answer is [`Event::TopicsOfNamespace`].
    pub fn topics_of_namespace(
        &mut self,
        now: Instant,
        namespace: &str,
        mode: TopicsMode,
    ) -> Result<RequestId, Error> {
        let namespace = parse_namespace(namespace)?;
        self.app_op(now, |_| OpKind::TopicsOfNamespace { namespace, mode })
    }

    /// Asks the schema registry for `topic`'s schema at `version` (`None`: the latest); the answer
    /// is [`Event::SchemaFetched`]. Goes to the service URL, as the Java client's `getSchema` does
    /// (the registry is cluster-wide).
    pub fn get_schema(
        &mut self,
        now: Instant,
        topic: &str,
        version: Option<SchemaVersion>,
    ) -> Result<RequestId, Error> {
        let topic = TopicName::parse(topic)?;
        self.app_op(now, |_| OpKind::GetSchema {
            topic: topic.to_string(),
            version,
        })
    }

    /// Registers `schema` on `topic` if it is new there (the topic's compatibility strategy
    /// decides) and asks for its version; the answer is [`Event::SchemaCreated`]. The topic must
    /// exist and be served by the broker the request reaches (the service URL).
    pub fn get_or_create_schema(
        &mut self,
        now: Instant,
        topic: &str,
        schema: &SchemaInfo,
    ) -> Result<RequestId, Error> {
        let topic = TopicName::parse(topic)?;
        let Some(schema) = schema.to_pb() else {
            return Err(Error::InvalidState("a bytes schema is not registered"));
        };
        self.app_op(now, |_| OpKind::GetOrCreateSchema {
            topic: topic.to_string(),
            schema: Box::new(schema),
        })
    }

    fn app_op(
        &mut self,
        now: Instant,
        kind: impl FnOnce(()) -> OpKind,
    ) -> Result<RequestId, Error> {
        self.ensure_open()?;
        let request = self.shared.env.ids.request();
        self.shared
            .start_op(now, Owner::App(request), kind(()), None);
        self.pump(now);
        Ok(request)
    }

    /// Creates a producer on `topic`: lookup, connection, PRODUCER. [`Event::ProducerReady`] (or
    /// [`Event::ProducerFailed`]) follows. Sends are accepted at once and queued until it is ready.
    pub fn create_producer(
        &mut self,
        now: Instant,
        topic: &str,
        options: ProducerOptions,
    ) -> Result<ProducerId, Error> {
        self.ensure_open()?;
        let id = self
            .producers
            .create(&mut self.shared, now, topic, options)?;
        self.pump(now);
        Ok(id)
    }

    /// Queues a message; [`Event::SendCompleted`] names the returned [`SendId`]. A refused message
    /// is dropped: see [`try_send`](Self::try_send) to get it back.
    pub fn send(
        &mut self,
        now: Instant,
        producer: ProducerId,
        message: OutgoingMessage,
    ) -> Result<SendId, SendError> {
        self.try_send(now, producer, message).map_err(|r| r.error)
    }

    /// As [`send`](Self::send), but a message that is refused comes back in the error whenever it
    /// was refused before being taken apart (see [`Refused::message`]), so that a caller waiting for
    /// room after [`SendError::QueueFull`] or [`SendError::MemoryLimit`] can try it again without
    /// keeping a copy. A refused message was not queued: no [`Event::SendCompleted`] names it.
    // The refused message comes back by value (boxing it would allocate on every refusal);
    // an accepted one costs only the id.
    #[allow(clippy::result_large_err)]
    pub fn try_send(
        &mut self,
        now: Instant,
        producer: ProducerId,
        message: OutgoingMessage,
    ) -> Result<SendId, Refused> {
        if self.life != Life::Open {
            return Err(Refused::with(SendError::ClientClosed, message));
        }
        let mark = self.shared.out.events.len();
        let id = self
            .producers
            .try_send(&mut self.shared, now, producer, message)?;
        // A send touches the producers and the connections only. Unless it queued something to
        // route or reported something (an internal producer's event is the consumers' to take),
        // the rest of the pump has nothing to do: the previous call left no routing, dead-letter
        // work or stale consumer deadline behind, and this one added none.
        if self.shared.out.events.len() != mark || !self.shared.out.dispatch.is_empty() {
            self.pump(now);
        }
        Ok(id)
    }

    /// Shorthand for [`send`](Self::send) with only a payload.
    pub fn send_payload(
        &mut self,
        now: Instant,
        producer: ProducerId,
        payload: impl Into<Bytes>,
    ) -> Result<SendId, SendError> {
        self.send(now, producer, OutgoingMessage::new(payload))
    }

    /// Sends whatever the producer has batched now; [`Event::FlushCompleted`] with the returned
    /// request follows once every message sent before this call is completed.
    pub fn flush(&mut self, now: Instant, producer: ProducerId) -> Result<RequestId, Error> {
        let request = self.producers.flush(&mut self.shared, now, producer)?;
        self.pump(now);
        Ok(request)
    }

    /// Closes a producer after flushing it: whatever is batched is sent, then the receipts of every
    /// pending message are awaited (at most the operation timeout; send timeouts still apply), then
    /// CLOSE_PRODUCER. [`Event::ProducerClosed`] follows. Messages still without a receipt at the
    /// deadline fail with [`SendError::ProducerClosed`].
    pub fn close_producer(&mut self, now: Instant, producer: ProducerId) -> Result<(), Error> {
        self.producers.close(&mut self.shared, now, producer)?;
        self.pump(now);
        Ok(())
    }

    /// Subscribes to `topic`: lookup, connection, SUBSCRIBE, FLOW. [`Event::ConsumerReady`] (or
    /// [`Event::ConsumerFailed`]) follows; then [`Event::MessagesAvailable`] whenever the receiver
    /// queue becomes non-empty.
    pub fn subscribe(
        &mut self,
        now: Instant,
        topic: &str,
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        self.ensure_open()?;
        let id = self
            .consumers
            .subscribe(&mut self.shared, now, topic, options)?;
        self.pump(now);
        Ok(id)
    }

    /// Subscribes to several topics at once (each may be partitioned) with one receiver queue.
    pub fn subscribe_topics(
        &mut self,
        now: Instant,
        topics: &[&str],
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        self.ensure_open()?;
        let id = self
            .consumers
            .subscribe_topics(&mut self.shared, now, topics, options)?;
        self.pump(now);
        Ok(id)
    }

    /// Subscribes to every topic of a namespace matching `pattern`
    /// (`persistent://tenant/ns/<regex>`): topics created later are joined and deleted ones left,
    /// following the broker's topic-list watcher when it has one and listing the namespace every
    /// `pattern_discovery_interval` in any case ([`Event::TopicsChanged`]).
    pub fn subscribe_pattern(
        &mut self,
        now: Instant,
        pattern: &str,
        options: ConsumerOptions,
    ) -> Result<ConsumerId, Error> {
        self.ensure_open()?;
        let id = self
            .consumers
            .subscribe_pattern(&mut self.shared, now, pattern, options)?;
        self.pump(now);
        Ok(id)
    }

    /// Creates a reader: a non-durable exclusive subscription starting at a message id (on every
    /// partition of a partitioned topic). Receive, seek and query it with the consumer calls.
    pub fn create_reader(
        &mut self,
        now: Instant,
        topic: &str,
        options: ReaderOptions,
    ) -> Result<ConsumerId, Error> {
        self.ensure_open()?;
        let id = self
            .consumers
            .create_reader(&mut self.shared, now, topic, options)?;
        self.pump(now);
        Ok(id)
    }

    /// Takes the next message from a consumer's receiver queue (refilling broker permits at half;
    /// with a zero-size queue, asking the broker for one message when the queue is empty).
    pub fn receive(&mut self, now: Instant, consumer: ConsumerId) -> Option<Message> {
        let m = self.consumers.receive(&mut self.shared, now, consumer);
        self.pump(now);
        m
    }

    /// Takes up to `max_messages` messages, stopping before `max_bytes` of payload would be
    /// exceeded (at least one message is returned when one is queued). Waiting for a batch to fill
    /// (the batch timeout) is the runtime's job.
    pub fn receive_batch(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        max_messages: usize,
        max_bytes: usize,
    ) -> Vec<Message> {
        let m =
            self.consumers
                .receive_batch(&mut self.shared, now, consumer, max_messages, max_bytes);
        self.pump(now);
        m
    }

    /// Acknowledges one message by id. On a consumer of several topics, acknowledge the
    /// [`Message`] itself ([`ack_message`](Self::ack_message)). With `ack_receipts`,
    /// [`Event::AckCompleted`] names the returned request.
    pub fn ack(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        message: &MessageId,
    ) -> Result<RequestId, Error> {
        let r = self
            .consumers
            .ack(&mut self.shared, now, consumer, message, false, None);
        self.pump(now);
        r
    }

    /// Acknowledges one message by topic and id: on a consumer of several topics or partitions,
    /// the topic says which one (a [`Message`]'s [`topic_message_id`](Message::topic_message_id),
    /// or one of [`get_last_message_ids`](Self::get_last_message_ids)'s answers).
    pub fn ack_topic_id(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        id: &TopicMessageId,
        cumulative: bool,
    ) -> Result<RequestId, Error> {
        let r = self
            .consumers
            .sub_of_topic(consumer, &id.topic)
            .and_then(|sub| {
                self.consumers.ack(
                    &mut self.shared,
                    now,
                    consumer,
                    &id.id,
                    cumulative,
                    Some(sub),
                )
            });
        self.pump(now);
        r
    }

    /// Negatively acknowledges one message by topic and id (see [`ack_topic_id`](Self::ack_topic_id)).
    pub fn negative_ack_topic_id(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        id: &TopicMessageId,
    ) -> Result<(), Error> {
        let r = self
            .consumers
            .sub_of_topic(consumer, &id.topic)
            .and_then(|sub| {
                self.consumers
                    .negative_ack(now, consumer, &id.id, Some(sub), 0)
            });
        self.pump(now);
        r
    }

    /// The number of messages in a consumer's receiver queue and their payload bytes (`None` for
    /// an unknown consumer).
    pub fn receiver_queue(&self, consumer: ConsumerId) -> Option<(usize, usize)> {
        self.consumers.queued(consumer)
    }

    /// The next message queued for `consumer` emits [`Event::MessagesAvailable`] even if the
    /// queue was not empty (once): for an application waiting for a batch to fill.
    pub fn watch_receiver_queue(&mut self, consumer: ConsumerId) {
        self.consumers.watch_growth(consumer);
    }

    /// Pauses a consumer: no FLOW permits go to the broker (on any of its topics or partitions,
    /// also those added later) until [`resume_consumer`](Self::resume_consumer). Messages already
    /// queued or on their way can still be received; nothing is dropped.
    pub fn pause_consumer(&mut self, now: Instant, consumer: ConsumerId) -> Result<(), Error> {
        let r = self.consumers.set_paused(&mut self.shared, consumer, true);
        self.pump(now);
        r
    }

    /// Resumes a paused consumer: the permits held back go to the broker.
    pub fn resume_consumer(&mut self, now: Instant, consumer: ConsumerId) -> Result<(), Error> {
        let r = self.consumers.set_paused(&mut self.shared, consumer, false);
        self.pump(now);
        r
    }

    /// Whether the consumer is paused (`None` for an unknown consumer).
    pub fn is_consumer_paused(&self, consumer: ConsumerId) -> Option<bool> {
        self.consumers.is_paused(consumer)
    }

    /// Acknowledges a received message.
    pub fn ack_message(&mut self, now: Instant, message: &Message) -> Result<RequestId, Error> {
        let r = self.consumers.ack(
            &mut self.shared,
            now,
            message.consumer,
            &message.id,
            false,
            Some(message.sub),
        );
        self.pump(now);
        r
    }

    /// Acknowledges every message up to and including this one (Exclusive and Failover only).
    pub fn ack_cumulative(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        message: &MessageId,
    ) -> Result<RequestId, Error> {
        let r = self
            .consumers
            .ack(&mut self.shared, now, consumer, message, true, None);
        self.pump(now);
        r
    }

    /// Cumulative acknowledgement of a received message.
    pub fn ack_cumulative_message(
        &mut self,
        now: Instant,
        message: &Message,
    ) -> Result<RequestId, Error> {
        let r = self.consumers.ack(
            &mut self.shared,
            now,
            message.consumer,
            &message.id,
            true,
            Some(message.sub),
        );
        self.pump(now);
        r
    }

    /// Negatively acknowledges a message by id: it is redelivered after `negative_ack_delay`.
    pub fn negative_ack(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        message: &MessageId,
    ) -> Result<(), Error> {
        let r = self.consumers.negative_ack(now, consumer, message, None, 0);
        self.pump(now);
        r
    }

    /// Negatively acknowledges a received message (its redelivery count drives
    /// `negative_ack_backoff`).
    pub fn negative_ack_message(&mut self, now: Instant, message: &Message) -> Result<(), Error> {
        let r = self.consumers.negative_ack(
            now,
            message.consumer,
            &message.id,
            Some(message.sub),
            message.redelivery_count,
        );
        self.pump(now);
        r
    }

    /// Asks the broker to redeliver every message received and not acknowledged.
    pub fn redeliver_unacknowledged(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
    ) -> Result<(), Error> {
        let r = self
            .consumers
            .redeliver_unacknowledged(&mut self.shared, consumer);
        self.pump(now);
        r
    }

    /// Publishes a copy of `message` to the retry-letter topic (delivered after `delay`, with
    /// `properties` added) and acknowledges the original; past `max_redeliver_count` the copy goes
    /// to the dead-letter topic. Needs `retry_enabled` (the policy defaults to 16 reconsumptions).
    /// [`Event::ReconsumeCompleted`] follows.
    pub fn reconsume_later(
        &mut self,
        now: Instant,
        message: &Message,
        delay: Duration,
        properties: Vec<(String, String)>,
    ) -> Result<RequestId, Error> {
        let r =
            self.consumers
                .reconsume_later(&mut self.shared.env, message, delay, properties, false);
        self.pump(now);
        r
    }

    /// Moves the subscription to a message id or a publish time; [`Event::SeekCompleted`] follows.
    /// Messages queued locally are dropped; the broker restarts delivery (it closes and the client
    /// resubscribes the consumer).
    pub fn seek(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        to: SeekTo,
    ) -> Result<RequestId, Error> {
        let r = self.consumers.seek(&mut self.shared, now, consumer, to);
        self.pump(now);
        r
    }

    /// Asks for the last message id of every topic of the consumer; [`Event::LastMessageIds`]
    /// follows.
    pub fn get_last_message_ids(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
    ) -> Result<RequestId, Error> {
        let r = self
            .consumers
            .last_message_ids(&mut self.shared, now, consumer, false);
        self.pump(now);
        r
    }

    /// Whether a message can be received (queued, or after the last one received per the broker);
    /// [`Event::HasMessageAvailable`] follows.
    pub fn has_message_available(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
    ) -> Result<RequestId, Error> {
        let r = self
            .consumers
            .last_message_ids(&mut self.shared, now, consumer, true);
        self.pump(now);
        r
    }

    /// Deletes the subscription (pending acks are flushed first); [`Event::Unsubscribed`] and then
    /// [`Event::ConsumerClosed`] follow.
    pub fn unsubscribe(&mut self, now: Instant, consumer: ConsumerId) -> Result<RequestId, Error> {
        let r = self.consumers.unsubscribe(&mut self.shared, now, consumer);
        self.pump(now);
        r
    }

    /// Closes a consumer (pending acknowledgements are flushed first); [`Event::ConsumerClosed`]
    /// follows.
    pub fn close_consumer(&mut self, now: Instant, consumer: ConsumerId) -> Result<(), Error> {
        self.consumers.close(&mut self.shared, now, consumer)?;
        self.pump(now);
        Ok(())
    }

    /// Closes the client gracefully: producers and consumers first (waiting for the broker, at most the
    /// operation timeout), then the connections. [`Event::ClientClosed`] comes last.
    pub fn close(&mut self, now: Instant) {
        if self.life != Life::Open {
            return;
        }
        self.life = Life::Closing {
            deadline: time::after(now, self.shared.env.config.operation_timeout),
        };
        self.producers.close_all(&mut self.shared, now);
        self.consumers.close_all(&mut self.shared, now);
        self.pump(now);
        self.check_closing(now);
    }

    /// Switches to another service URL, typically another cluster (the Java client's
    /// `updateServiceUrl`): lookups go to its hosts from now on, and every open connection is
    /// closed, so that producers and consumers look their topics up again there (after the usual
    /// short backoff) and resend what is pending. Returns whether the URL changed; the URL in use
    /// changes nothing. Emits [`Event::ServiceUrlChanged`].
    ///
    /// Fails with [`Error::InvalidUrl`] for a URL that does not parse, [`Error::InvalidState`]
    /// when the client's SNI proxy cannot serve it, and [`Error::ClientClosed`] after
    /// [`close`](Self::close).
    pub fn set_service_url(&mut self, now: Instant, url: &str) -> Result<bool, Error> {
        if self.life != Life::Open {
            return Err(Error::ClientClosed);
        }
        let service = ServiceUrl::parse(url)?;
        let changed = self.shared.set_service(service).map_err(|e| match e {
            ConfigError::ServiceUrl(e) => Error::InvalidUrl(e),
            ConfigError::Invalid { reason, .. } => Error::InvalidState(reason),
        })?;
        if !changed {
            return Ok(false);
        }
        self.shared.env.config.service_url = url.to_owned();
        self.shared.out.events.push_back(Event::ServiceUrlChanged {
            url: url.to_owned(),
        });
        for conn in self.shared.conns.ids() {
            self.shared
                .close_connection(now, conn, Error::ServiceUrlChanged(url.to_owned()));
        }
        self.pump(now);
        Ok(true)
    }

    // ---- transactions ---------------------------------------------------------------------------

    /// Starts a transaction that the coordinator aborts if it is not committed or aborted within
    /// `timeout`. The first call finds the transaction coordinators (the partitions of
    /// `persistent://pulsar/system/transaction_coordinator_assign`) and registers with each
    /// (TC_CLIENT_CONNECT); new transactions go to them in turn. [`Event::TransactionOpened`]
    /// with the returned request follows, naming the transaction or failing with
    /// [`Error::Transaction`] (for example [`TxnError::NotEnabled`](crate::TxnError::NotEnabled)
    /// when the broker has no coordinator, or
    /// [`TxnError::CoordinatorNotAvailable`](crate::TxnError::CoordinatorNotAvailable) when
    /// none answered within the operation timeout).
    pub fn new_transaction(&mut self, now: Instant, timeout: Duration) -> Result<RequestId, Error> {
        self.ensure_open()?;
        let request = self.shared.env.ids.request();
        self.txns.open(&mut self.shared, now, request, timeout);
        self.pump(now);
        Ok(request)
    }

    /// Sends `message` in transaction `txn`: it is delivered to consumers only once the
    /// transaction is committed, and never if it is aborted. The message's partition joins the
    /// transaction first (ADD_PARTITION_TO_TXN, once per partition; the message waits for it).
    /// [`Event::SendCompleted`] names the returned [`SendId`]; a commit waits for every one of
    /// them. The producer must be ready (its partition count known).
    #[allow(clippy::result_large_err)]
    pub fn send_in_transaction(
        &mut self,
        now: Instant,
        producer: ProducerId,
        txn: TxnId,
        message: OutgoingMessage,
    ) -> Result<SendId, Refused> {
        if self.life != Life::Open {
            return Err(Refused::with(SendError::ClientClosed, message));
        }
        let (sh, p) = (&mut self.shared, &mut self.producers);
        let id = self.txns.send(sh, p, now, producer, txn, message)?;
        self.pump(now);
        Ok(id)
    }

    /// Acknowledges a message by id in transaction `txn` (cumulatively on Exclusive and Failover
    /// subscriptions when `cumulative`): applied only if the transaction commits. The
    /// subscription joins the transaction first (ADD_SUBSCRIPTION_TO_TXN, once per topic and
    /// subscription). [`Event::AckCompleted`] with the returned request reports the broker's
    /// answer: an acknowledgement that conflicts with another transaction's fails with
    /// [`TxnError::Conflict`](crate::TxnError::Conflict), and the commit then aborts.
    pub fn ack_in_transaction(
        &mut self,
        now: Instant,
        consumer: ConsumerId,
        message: &MessageId,
        cumulative: bool,
        txn: TxnId,
    ) -> Result<RequestId, Error> {
        let (sh, c) = (&mut self.shared, &mut self.consumers);
        let r = self
            .txns
            .ack(sh, c, now, consumer, message, cumulative, None, txn);
        self.pump(now);
        r
    }

    /// [`ack_in_transaction`](Self::ack_in_transaction) for a received message (needed on a
    /// consumer of several topics).
    pub fn ack_message_in_transaction(
        &mut self,
        now: Instant,
        message: &Message,
        cumulative: bool,
        txn: TxnId,
    ) -> Result<RequestId, Error> {
        let (sh, c) = (&mut self.shared, &mut self.consumers);
        let (consumer, id, via) = (message.consumer, &message.id, Some(message.sub));
        let r = self
            .txns
            .ack(sh, c, now, consumer, id, cumulative, via, txn);
        self.pump(now);
        r
    }

    /// Commits `txn` once every send and acknowledgement made in it completed (END_TXN).
    /// [`Event::TransactionEnded`] with the returned request follows. Fails at once with
    /// [`TxnError::InvalidStatus`](crate::TxnError::InvalidStatus) unless the transaction is
    /// open, and with [`TxnError::TimedOut`](crate::TxnError::TimedOut) after its timeout.
    pub fn commit_transaction(&mut self, now: Instant, txn: TxnId) -> Result<RequestId, Error> {
        self.end_transaction(now, txn, true)
    }

    /// Aborts `txn` once every send and acknowledgement made in it completed: its messages are
    /// never delivered, its acknowledgements dropped (the consumers that made them get their
    /// unacknowledged messages again). [`Event::TransactionEnded`] follows.
    pub fn abort_transaction(&mut self, now: Instant, txn: TxnId) -> Result<RequestId, Error> {
        self.end_transaction(now, txn, false)
    }

    fn end_transaction(
        &mut self,
        now: Instant,
        txn: TxnId,
        commit: bool,
    ) -> Result<RequestId, Error> {
        self.ensure_open()?;
        let request = self.shared.env.ids.request();
        self.txns.end(&mut self.shared, now, txn, commit, request)?;
        self.pump(now);
        Ok(request)
    }

    /// Where transaction `txn` stands; `None` once it ended (committed, aborted, failed) or for
    /// a transaction this client does not know. A transaction that timed out is reported
    /// [`TxnState::TimedOut`] until it is committed or aborted (both fail), for ten minutes at
    /// most.
    pub fn transaction_state(&self, txn: TxnId) -> Option<TxnState> {
        self.txns.state(txn)
    }

    /// A snapshot of connections, producers, consumers and counters.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            connections: self.shared.conns.all().map(|c| c.stats()).collect(),
            producers: self.producers.stats(),
            consumers: self.consumers.stats(),
            counters: self.shared.env.counters,
            lookups: self.shared.lookups.stats.clone(),
            memory_used: self.producers.memory_used(),
            memory_limit: self.shared.env.config.memory_limit,
        }
    }

    /// One application producer's state and counters as one entry: on a partitioned topic the
    /// sum over its partitions (which [`stats`](Self::stats) lists one by one), named after the
    /// partitioned topic, as the Java client's partitioned producer reports its `ProducerStats`.
    /// `None` for a producer this client does not know (never created, or closed).
    pub fn producer_stats(&self, producer: ProducerId) -> Option<ProducerStats> {
        self.producers.app_stats(producer)
    }

    /// Whether [`close`](Self::close) has finished.
    pub fn is_closed(&self) -> bool {
        self.life == Life::Closed
    }

    // ---- internals ----------------------------------------------------------------------------------

    fn ensure_open(&self) -> Result<(), Error> {
        match self.life {
            Life::Open => Ok(()),
            _ => Err(Error::ClientClosed),
        }
    }

    fn check_closing(&mut self, now: Instant) {
        let Life::Closing { deadline } = self.life else {
            return;
        };
        let done = self.producers.is_empty() && self.consumers.is_empty();
        if !done && now < deadline {
            return;
        }
        // Closed first: the pump below must not come back here.
        self.life = Life::Closed;
        self.producers
            .force_close_all(&mut self.shared, now, Error::Timeout);
        self.consumers
            .force_close_all(&mut self.shared, Error::Timeout);
        let (sh, p, c) = (&mut self.shared, &mut self.producers, &mut self.consumers);
        self.txns.shutdown(sh, p, c, now);
        self.shared.shutdown(now);
        self.pump(now);
        self.shared.out.events.push_back(Event::ClientClosed);
    }

    /// Routes everything the connections queued for producers and consumers.
    fn pump(&mut self, now: Instant) {
        loop {
            self.route(now);
            // dead-letter work and the events of the consumers' internal producers
            if !self
                .consumers
                .service(&mut self.shared, &mut self.producers, now)
            {
                break;
            }
        }
        self.txns.observe(&mut self.shared, now);
        if matches!(self.life, Life::Closing { .. }) {
            self.check_closing_soft(now);
        }
    }

    fn route(&mut self, now: Instant) {
        while let Some(d) = self.shared.out.dispatch.pop_front() {
            let sh = &mut self.shared;
            match d {
                Dispatch::ConnectionReady {
                    conn,
                    producers,
                    consumers,
                } => {
                    self.producers.connection_ready(sh, now, conn, &producers);
                    self.consumers.connection_ready(sh, now, conn, &consumers);
                    self.txns.connection_ready(sh, now, conn);
                }
                Dispatch::AddressUp { address } => {
                    self.producers.address_up(sh, now, &address);
                    self.consumers.address_up(sh, now, &address);
                }
                Dispatch::ConnectionLost {
                    conn,
                    reason,
                    producers,
                    consumers,
                } => {
                    self.producers
                        .connection_lost(sh, now, conn, &reason, &producers);
                    self.consumers
                        .connection_lost(sh, now, conn, &reason, &consumers);
                    self.txns.connection_lost(sh, now, conn, &reason);
                }
                Dispatch::ProducerResponse {
                    conn,
                    producer,
                    request_id,
                    request,
                    result,
                } => self
                    .producers
                    .response(sh, now, conn, producer, request_id, request, result),
                Dispatch::ConsumerResponse {
                    conn,
                    consumer,
                    request_id,
                    request,
                    result,
                } => self
                    .consumers
                    .response(sh, now, conn, consumer, request_id, request, result),
                Dispatch::Receipt {
                    conn,
                    producer,
                    receipt,
                } => self.producers.receipt(sh, now, conn, producer, &receipt),
                Dispatch::ProducerCommand {
                    conn,
                    producer,
                    command,
                } => self.producers.command(sh, now, conn, producer, command),
                Dispatch::Message {
                    conn,
                    consumer,
                    message,
                    payload,
                    checksum_ok,
                } => self
                    .consumers
                    .message(sh, now, conn, consumer, message, payload, checksum_ok),
                Dispatch::ConsumerCommand {
                    conn,
                    consumer,
                    command,
                } => self.consumers.command(sh, now, conn, consumer, command),
                Dispatch::OpDone { owner, op, result } => match owner {
                    Owner::Producer(p) => self.producers.op_done(sh, now, p, op, result),
                    Owner::Consumer(c) => self.consumers.op_done(sh, now, c, op, result),
                    Owner::Coordinator(which) => self.txns.op_done(sh, now, which, op, result),
                    Owner::App(_) => {}
                },
                Dispatch::CoordinatorResponse {
                    conn,
                    coordinator,
                    request_id,
                    result,
                } => {
                    let (p, c) = (&mut self.producers, &mut self.consumers);
                    self.txns
                        .response(sh, p, c, now, conn, coordinator, request_id, result)
                }
            }
        }
    }

    /// Finishes closing as soon as every producer and consumer is gone (without waiting for a timer).
    fn check_closing_soft(&mut self, now: Instant) {
        if self.producers.is_empty() && self.consumers.is_empty() {
            self.check_closing(now);
        }
    }
}
