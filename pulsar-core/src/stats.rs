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

/// One producer.
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
    /// Messages written to a connection (resends included).
    pub messages_sent: u64,
    /// Receipts received.
    pub messages_acked: u64,
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
    /// Messages received from the broker.
    pub messages_received: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Re-subscriptions.
    pub reconnects: u64,
}
