//! Introspection: connections, producers and consumers with their state and counters.

use std::time::{Duration, Instant};

use crate::handle::{ConnectionId, ConsumerId, ProducerId};
use crate::latency::{LatencyHistogram, LatencyPercentiles};
use crate::service_url::BrokerAddress;

/// A snapshot of the whole client, from [`Client::stats`](crate::Client::stats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Open (or opening) connections, by id.
    pub connections: Vec<ConnectionStats>,
    /// Producers, by id.
    pub producers: Vec<ProducerStats>,
    /// Consumers, by id.
    pub consumers: Vec<ConsumerStats>,
    /// Client-wide counters.
    pub counters: ClientCounters,
    /// Lookup durations by kind and outcome.
    pub lookups: LookupStats,
    /// Payload bytes held by producers, as the client-wide memory limit counts them (Java:
    /// `pulsar.client.memory.buffer.usage`).
    pub memory_used: usize,
    /// The client-wide memory limit in bytes (0: none).
    pub memory_limit: usize,
}

/// The kind of a lookup operation (Java's `pulsar.lookup.type` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LookupKind {
    /// LOOKUP of a topic's broker (`topic`).
    Topic,
    /// PARTITIONED_METADATA (`metadata`).
    Metadata,
    /// GET_SCHEMA / GET_OR_CREATE_SCHEMA (`schema`).
    Schema,
    /// GET_TOPICS_OF_NAMESPACE (`list-topics`).
    ListTopics,
}

impl LookupKind {
    /// Every kind, in order.
    pub const ALL: [LookupKind; 4] = [
        LookupKind::Topic,
        LookupKind::Metadata,
        LookupKind::Schema,
        LookupKind::ListTopics,
    ];

    /// The Java client's name for it (`pulsar.lookup.type`).
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::Topic => "topic",
            LookupKind::Metadata => "metadata",
            LookupKind::Schema => "schema",
            LookupKind::ListTopics => "list-topics",
        }
    }
}

/// Durations of the lookup operations that ended, from their start to their answer or failure
/// (redirects and retries on other hosts included), by kind and outcome. Operations ended by the
/// client's shutdown are not counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LookupStats {
    /// Successful operations, indexed as [`LookupKind::ALL`].
    pub succeeded: [LatencyHistogram; 4],
    /// Failed operations, indexed as [`LookupKind::ALL`].
    pub failed: [LatencyHistogram; 4],
}

impl LookupStats {
    /// Counts one operation of `kind` that took `d`.
    pub(crate) fn record(&mut self, kind: LookupKind, ok: bool, d: Duration) {
        let set = if ok {
            &mut self.succeeded
        } else {
            &mut self.failed
        };
        let i = LookupKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        if let Some(h) = set.get_mut(i) {
            h.record_n(d, 1);
        }
    }

    /// The durations of `kind`'s operations with that outcome.
    pub fn of(&self, kind: LookupKind, ok: bool) -> &LatencyHistogram {
        let set = if ok { &self.succeeded } else { &self.failed };
        let i = LookupKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &set[i.min(3)]
    }
}

/// Client-wide counters since the client was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientCounters {
    /// Connections requested from the runtime.
    pub connections_opened: u64,
    /// Connections that failed to open or to finish the handshake.
    pub connect_failures: u64,
    /// Of `connect_failures`, those that failed after the socket was connected: during the
    /// handshake (refused, closed, timed out, not speaking the protocol, authentication). The
    /// rest failed to connect (Java's `pulsar.failure.type` `tcp-failed` and `handshake`).
    pub handshake_failures: u64,
    /// Connections closed for any reason.
    pub connections_closed: u64,
    /// Connections closed because of bad input from the broker.
    pub protocol_errors: u64,
    /// Requests that timed out.
    pub requests_timed_out: u64,
    /// Producer and consumer re-registrations started after losing a registration.
    pub reconnects: u64,
    /// Lookups sent (including redirects).
    pub lookups: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed to the runtime to send.
    pub bytes_out: u64,
}

/// The life stage of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Waiting for the runtime to connect.
    Connecting,
    /// CONNECT sent, waiting for CONNECTED.
    Handshaking,
    /// Usable.
    Ready,
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Its handle.
    pub id: ConnectionId,
    /// Where the socket goes.
    pub address: BrokerAddress,
    /// The broker it serves (differs from `address` through a proxy).
    pub logical_address: BrokerAddress,
    /// State.
    pub state: ConnectionState,
    /// The broker's version string, once connected.
    pub server_version: Option<String>,
    /// The broker's maximum message size.
    pub max_message_size: usize,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed to the runtime.
    pub bytes_out: u64,
    /// Requests in flight.
    pub pending_requests: usize,
    /// Producers registered (or registering) on it.
    pub producers: usize,
    /// Consumers registered (or registering) on it.
    pub consumers: usize,
    /// When something was last received.
    pub last_received: Instant,
}

/// The life stage of a producer or consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceState {
    /// Waiting before a (re)connection attempt.
    Waiting,
    /// Looking up the topic's broker.
    LookingUp,
    /// Waiting for the connection.
    Connecting,
    /// PRODUCER / SUBSCRIBE sent.
    Registering,
    /// Registered and usable.
    Ready,
    /// CLOSE_* sent.
    Closing,
}

/// One producer (one partition of a partitioned producer: each has its own entry, under the
/// application producer's id).
///
/// The counters are totals since the producer was created, as the Java client's
/// `getTotalMsgsSent`, `getTotalBytesSent`, `getTotalAcksReceived` and `getTotalSendFailed`
/// report them; messages and batches are counted apart: a batch of 100 messages is 100
/// [`messages_sent`](Self::messages_sent) and 1 [`batches_sent`](Self::batches_sent). An entry
/// written again after a reconnection is not counted again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Its handle.
    pub id: ProducerId,
    /// Topic.
    pub topic: String,
    /// Name, once known.
    pub name: Option<String>,
    /// State.
    pub state: ResourceState,
    /// Its connection, if any.
    pub connection: Option<ConnectionId>,
    /// Messages held by the producer: waiting for room, batched, or waiting for a receipt
    /// (Java: `pulsar.client.producer.message.pending.count`).
    pub pending_messages: usize,
    /// Payload bytes of those messages, uncompressed, as the memory limit counts them (Java:
    /// `pulsar.client.producer.message.pending.size`).
    pub pending_bytes: usize,
    /// Messages written to a connection (every message of a batch counts; a chunked message
    /// counts once, with its last chunk). Java: `numMsgsSent`.
    pub messages_sent: u64,
    /// SEND frames written: one per batch, per message sent alone, per chunk.
    pub batches_sent: u64,
    /// Payload bytes of those frames as written (after compression; a batch's whole
    /// container), without frame headers and message metadata. Java: `numBytesSent`.
    pub bytes_sent: u64,
    /// Messages the broker confirmed as stored (every message of a batch counts).
    pub messages_acked: u64,
    /// Receipts received (SEND_RECEIPT frames: one per batch, per message sent alone, per chunk).
    /// Java: `numAcksReceived`.
    pub receipts_received: u64,
    /// Messages whose send failed (send timeout, broker error, producer closed before a receipt,
    /// ...). Java: `numSendFailed`.
    pub messages_failed: u64,
    /// Re-registrations.
    pub reconnects: u64,
    /// Send latency of the confirmed messages: from the application's send call (its message
    /// accepted by the core) to the broker's receipt. The messages of a batch all count with the
    /// latency of its oldest one (Java's `pulsar.client.producer.message.send.duration`, which
    /// includes batching time).
    pub send_latency: LatencyHistogram,
}

impl ProducerStats {
    /// Rates and latency percentiles over the interval since `earlier`, a snapshot of the same
    /// producer taken `elapsed` before this one (Java's `ProducerStats` per stats interval:
    /// `getSendMsgsRate`, `getSendBytesRate`, `getSendLatencyMillis50pct`, ...).
    pub fn rates_since(&self, earlier: &ProducerStats, elapsed: Duration) -> ProducerRates {
        let secs = elapsed.as_secs_f64();
        let rate = |now: u64, then: u64| per_second(now.saturating_sub(then), secs);
        ProducerRates {
            send_msgs_rate: rate(self.messages_sent, earlier.messages_sent),
            send_bytes_rate: rate(self.bytes_sent, earlier.bytes_sent),
            acked_msgs_rate: rate(self.messages_acked, earlier.messages_acked),
            failed_msgs_rate: rate(self.messages_failed, earlier.messages_failed),
            send_latency: self.send_latency.since(&earlier.send_latency).percentiles(),
        }
    }
}

/// A producer's rates over an interval, from [`ProducerStats::rates_since`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct ProducerRates {
    /// Messages written per second (Java: `getSendMsgsRate`).
    pub send_msgs_rate: f64,
    /// Payload bytes written per second (Java: `getSendBytesRate`).
    pub send_bytes_rate: f64,
    /// Messages confirmed per second.
    pub acked_msgs_rate: f64,
    /// Messages failed per second.
    pub failed_msgs_rate: f64,
    /// The send latency of the messages confirmed in the interval (Java:
    /// `getSendLatencyMillis50pct` ... `getSendLatencyMillisMax`).
    pub send_latency: LatencyPercentiles,
}

/// One consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Its handle.
    pub id: ConsumerId,
    /// Topic.
    pub topic: String,
    /// Subscription.
    pub subscription: String,
    /// State.
    pub state: ResourceState,
    /// Its connection, if any.
    pub connection: Option<ConnectionId>,
    /// Messages in the receiver queue (Java: `pulsar.client.consumer.receive_queue.count`).
    pub queued_messages: usize,
    /// Payload bytes of those messages (Java: `pulsar.client.consumer.receive_queue.size`).
    pub queued_bytes: usize,
    /// Messages put in the receiver queue (every message of a batch counts; a chunked message
    /// once complete; messages filtered out, such as duplicates, do not). Java:
    /// `numMsgsReceived`.
    pub messages_received: u64,
    /// Payload bytes of those messages (as the application gets them: decompressed). Java:
    /// `numBytesReceived`.
    pub bytes_received: u64,
    /// Message ids sent in ACK commands: an entry acknowledged whole counts once however many
    /// messages its batch held, and a cumulative acknowledgement counts once (not the messages
    /// it covers).
    pub acks_sent: u64,
    /// Acknowledgements by the application: one per call, a cumulative one included (Java:
    /// `pulsar.client.consumer.message.ack`). Transactional acknowledgements are not counted.
    pub acks: u64,
    /// Negative acknowledgements by the application (Java: `pulsar.client.consumer.message.nack`).
    pub negative_acks: u64,
    /// Messages set aside for the dead-letter topic after too many redeliveries (Java:
    /// `pulsar.client.consumer.message.dlq`).
    pub dead_lettered: u64,
    /// Messages asked again because the acknowledgement timeout passed (Java:
    /// `pulsar.client.consumer.message.ack.timeout`).
    pub ack_timeouts: u64,
    /// Re-subscriptions.
    pub reconnects: u64,
    /// The same figures for each topic (partition) the consumer reads, one entry per wire
    /// consumer (one for a single non-partitioned topic): what Java's metrics label with
    /// `pulsar.topic` and `pulsar.partition`, and how a multi-topic consumer gets its tenant
    /// and namespace.
    pub topics: Vec<TopicConsumerStats>,
}

/// The statistics of one topic (partition) of a consumer (see [`ConsumerStats::topics`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TopicConsumerStats {
    /// The topic or partition (full name).
    pub topic: String,
    /// Messages of this topic in the consumer's receiver queue.
    pub queued_messages: usize,
    /// Payload bytes of those messages.
    pub queued_bytes: usize,
    /// As [`ConsumerStats::messages_received`], for this topic.
    pub messages_received: u64,
    /// As [`ConsumerStats::bytes_received`], for this topic.
    pub bytes_received: u64,
    /// As [`ConsumerStats::acks`], for this topic.
    pub acks: u64,
    /// As [`ConsumerStats::negative_acks`], for this topic.
    pub negative_acks: u64,
    /// As [`ConsumerStats::dead_lettered`], for this topic.
    pub dead_lettered: u64,
    /// As [`ConsumerStats::ack_timeouts`], for this topic.
    pub ack_timeouts: u64,
}

impl ConsumerStats {
    /// Rates over the interval since `earlier`, a snapshot of the same consumer taken `elapsed`
    /// before this one (Java's `ConsumerStats` per stats interval: `getRateMsgsReceived`,
    /// `getRateBytesReceived`, ...).
    pub fn rates_since(&self, earlier: &ConsumerStats, elapsed: Duration) -> ConsumerRates {
        let secs = elapsed.as_secs_f64();
        let rate = |now: u64, then: u64| per_second(now.saturating_sub(then), secs);
        ConsumerRates {
            received_msgs_rate: rate(self.messages_received, earlier.messages_received),
            received_bytes_rate: rate(self.bytes_received, earlier.bytes_received),
            acks_rate: rate(self.acks, earlier.acks),
            negative_acks_rate: rate(self.negative_acks, earlier.negative_acks),
        }
    }
}

/// A consumer's rates over an interval, from [`ConsumerStats::rates_since`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct ConsumerRates {
    /// Messages received per second (Java: `getRateMsgsReceived`).
    pub received_msgs_rate: f64,
    /// Payload bytes received per second (Java: `getRateBytesReceived`).
    pub received_bytes_rate: f64,
    /// Acknowledgements by the application per second.
    pub acks_rate: f64,
    /// Negative acknowledgements per second.
    pub negative_acks_rate: f64,
}

/// `n` per second over `secs` (0 for an empty interval).
fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}
