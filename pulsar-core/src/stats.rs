//! Introspection: connections, producers and consumers with their state and counters.

use std::time::Instant;

use crate::handle::{ConnectionId, ConsumerId, ProducerId};
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
}

/// Client-wide counters since the client was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientCounters {
    /// Connections requested from the runtime.
    pub connections_opened: u64,
    /// Connections that failed to open or to finish the handshake.
    pub connect_failures: u64,
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
    /// Messages waiting for a receipt.
    pub pending_messages: usize,
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
    /// Messages in the receiver queue.
    pub queued_messages: usize,
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
    /// Re-subscriptions.
    pub reconnects: u64,
}
