//! What the core asks of the runtime: open/close connections, write bytes.

use bytes::Bytes;

use crate::handle::ConnectionId;
use crate::service_url::BrokerAddress;

/// A connection-level request to the runtime, from [`Client::poll_io`](crate::Client::poll_io).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoRequest {
    /// Open a TCP connection (with TLS when `address.tls`) and report the outcome with
    /// [`Client::handle_connected`](crate::Client::handle_connected) or
    /// [`Client::handle_connect_failed`](crate::Client::handle_connect_failed).
    Connect {
        /// The handle to report with.
        conn: ConnectionId,
        /// Where to connect.
        address: BrokerAddress,
    },
    /// Close the connection. The core has already forgotten it: do not report anything more about it
    /// (calls naming it return [`UsageError::UnknownConnection`](crate::UsageError::UnknownConnection)).
    /// Bytes already handed out with [`Transmit`] may be written before closing, or dropped.
    Close {
        /// The connection to close.
        conn: ConnectionId,
    },
}

/// Bytes to write on a connection, from [`Client::poll_transmit`](crate::Client::poll_transmit).
///
/// The transmits of a connection are to be written in the order they come. Small frames are
/// gathered into one `Transmit`; the payload of a `SEND` frame of 8 KiB or more comes as a
/// `Transmit` of its own, right after the one that ends with the frame's head, holding the
/// producer's `Bytes` rather than a copy: write consecutive transmits with one vectored write
/// (`writev`) to send it without copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection to write on.
    pub conn: ConnectionId,
    /// The bytes, to be written in full and in order.
    pub data: Bytes,
}
