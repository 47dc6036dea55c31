//! Typed errors: the broker's `ServerError` codes, their retriable/fatal classification, and the errors
//! of every public operation.

use std::time::Duration;

use crate::auth::AuthError;
use crate::handle::{ConnectionId, ConsumerId, ProducerId, TxnId, TxnState};
use crate::message::MessageId;
use crate::service_url::{BrokerAddress, UrlError};
use crate::topic::TopicError;

/// The broker's `ServerError` code (protocol enum `ServerError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // the variants are the protocol's names
pub enum ServerErrorCode {
    UnknownError,
    MetadataError,
    PersistenceError,
    AuthenticationError,
    AuthorizationError,
    ConsumerBusy,
    ServiceNotReady,
    ProducerBlockedQuotaExceededError,
    ProducerBlockedQuotaExceededException,
    ChecksumError,
    UnsupportedVersionError,
    TopicNotFound,
    SubscriptionNotFound,
    ConsumerNotFound,
    TooManyRequests,
    TopicTerminatedError,
    ProducerBusy,
    InvalidTopicName,
    IncompatibleSchema,
    ConsumerAssignError,
    TransactionCoordinatorNotFound,
    InvalidTxnStatus,
    NotAllowedError,
    TransactionConflict,
    TransactionNotFound,
    ProducerFenced,
    /// A code this client does not know.
    Other(i32),
}

impl ServerErrorCode {
    /// Maps the protocol's numeric code.
    pub fn from_i32(v: i32) -> ServerErrorCode {
        use ServerErrorCode::*;
        match v {
            0 => UnknownError,
            1 => MetadataError,
            2 => PersistenceError,
            3 => AuthenticationError,
            4 => AuthorizationError,
            5 => ConsumerBusy,
            6 => ServiceNotReady,
            7 => ProducerBlockedQuotaExceededError,
            8 => ProducerBlockedQuotaExceededException,
            9 => ChecksumError,
            10 => UnsupportedVersionError,
            11 => TopicNotFound,
            12 => SubscriptionNotFound,
            13 => ConsumerNotFound,
            14 => TooManyRequests,
            15 => TopicTerminatedError,
            16 => ProducerBusy,
            17 => InvalidTopicName,
            18 => IncompatibleSchema,
            19 => ConsumerAssignError,
            20 => TransactionCoordinatorNotFound,
            21 => InvalidTxnStatus,
            22 => NotAllowedError,
            23 => TransactionConflict,
            24 => TransactionNotFound,
            25 => ProducerFenced,
            other => Other(other),
        }
    }

    /// Whether the operation may succeed if retried later (with backoff and, for lookups and
    /// registrations, a fresh lookup). Everything else is fatal for the operation.
    pub fn is_retriable(self) -> bool {
        use ServerErrorCode::*;
        matches!(
            self,
            UnknownError | MetadataError | PersistenceError | ServiceNotReady | TooManyRequests
        )
    }
}

/// Errors of client operations, also carried by [`Event`](crate::Event)s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topic or namespace name is invalid.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// A URL (service URL or one sent by the broker) is invalid.
    #[error(transparent)]
    InvalidUrl(#[from] UrlError),
    /// The broker answered with an error.
    #[error("broker error {code:?}: {message}")]
    Server {
        /// The broker's code.
        code: ServerErrorCode,
        /// The broker's message.
        message: String,
    },
    /// The broker refused the schema of a producer or consumer being created (its `ServerError`
    /// `IncompatibleSchema`): the topic's schema, under its compatibility strategy, does not accept
    /// it. Not retriable.
    #[error("incompatible schema: {}", broker_reason(.message))]
    IncompatibleSchema {
        /// The broker's message, as sent (the display form drops the Java exception class in
        /// front of it and the repetition after " caused by ": [`Error::broker_reason`]).
        message: String,
    },
    /// A request got no answer within the operation timeout (the broker is connected but silent).
    /// Operations that retry (creating a producer or consumer, lookups) end with
    /// [`Error::TimedOut`] instead, which also names the last failure.
    #[error("operation timed out")]
    Timeout,
    /// The operation did not complete by its deadline (the operation timeout after it started,
    /// retries included). `last_error` is the failure of the last attempt, when there was one
    /// other than a silent broker (for example the connection being refused).
    #[error("{}", timed_out_message(*.after, .last_error.as_deref()))]
    TimedOut {
        /// The operation timeout that ran out.
        after: Duration,
        /// Why the last attempt failed, if it did.
        #[source]
        last_error: Option<Box<Error>>,
    },
    /// The TCP/TLS connection could not be established.
    #[error("cannot connect to {address}{}: {reason}", proxy_note(.proxy_for.as_ref()))]
    ConnectFailed {
        /// Where the socket was going: the broker, or the proxy when connections go through one.
        address: BrokerAddress,
        /// The broker the connection was for when `address` is a proxy.
        proxy_for: Option<BrokerAddress>,
        /// The runtime's reason.
        reason: String,
    },
    /// The broker (or the proxy the socket went to) did not answer CONNECT in time.
    #[error("handshake with {0} timed out")]
    HandshakeTimeout(BrokerAddress),
    /// Nothing was received for two keep-alive intervals.
    #[error("connection to {0} is silent (keep-alive timeout)")]
    KeepAliveTimeout(BrokerAddress),
    /// The connection closed while the operation was in flight.
    #[error("connection closed")]
    ConnectionClosed,
    /// The broker closed the producer or consumer (CLOSE_PRODUCER / CLOSE_CONSUMER / TOPIC_MIGRATED);
    /// it is re-registered.
    #[error("closed by the broker")]
    ClosedByBroker,
    /// The broker sent something this client cannot accept; the connection was closed.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server at `address` answered the connection handshake with something that is not the
    /// Pulsar binary protocol (an HTTP answer, a frame over the size limit, undecodable bytes): the
    /// URL names something other than a Pulsar broker or proxy. Not retriable: every attempt would
    /// meet the same server.
    #[error("{address} is not a Pulsar broker: {cause}")]
    NotPulsar {
        /// Where the connection went.
        address: BrokerAddress,
        /// What it sent.
        #[source]
        cause: ProtocolError,
    },
    /// A lookup was redirected more times than allowed.
    #[error("lookup redirected more than {0} times")]
    TooManyRedirects(u32),
    /// The authentication provider failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The client is closing or closed.
    #[error("client closed")]
    ClientClosed,
    /// The producer or consumer is closed.
    #[error("closed")]
    Closed,
    /// No such producer.
    #[error("unknown producer {0}")]
    UnknownProducer(ProducerId),
    /// No such consumer.
    #[error("unknown consumer {0}")]
    UnknownConsumer(ConsumerId),
    /// The operation is not valid in the current state.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// The client switched to another service URL (another cluster): connections to the old one
    /// were closed, and producers and consumers look their topics up again in the new one.
    #[error("the client switched to service URL {0}")]
    ServiceUrlChanged(String),
    /// A transaction operation failed (see [`TxnError::is_retriable`]).
    #[error(transparent)]
    Transaction(#[from] TxnError),
}

impl Error {
    /// Whether retrying later (reconnecting, looking up again) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Server { code, .. } => code.is_retriable(),
            Error::Timeout
            | Error::TimedOut { .. }
            | Error::ConnectFailed { .. }
            | Error::HandshakeTimeout(_)
            | Error::KeepAliveTimeout(_)
            | Error::ConnectionClosed
            | Error::ClosedByBroker
            | Error::ServiceUrlChanged(_)
            | Error::Protocol(_) => true,
            Error::InvalidTopic(_)
            | Error::IncompatibleSchema { .. }
            | Error::InvalidUrl(_)
            | Error::NotPulsar { .. }
            | Error::TooManyRedirects(_)
            | Error::Auth(_)
            | Error::ClientClosed
            | Error::Closed
            | Error::UnknownProducer(_)
            | Error::UnknownConsumer(_)
            | Error::InvalidState(_) => false,
            Error::Transaction(e) => e.is_retriable(),
        }
    }

    /// The address this failure says could not be reached (a refused or failed connection, a
    /// handshake or keep-alive timeout), if it names one: the socket's, the proxy's behind one.
    pub(crate) fn unreachable_address(&self) -> Option<&BrokerAddress> {
        match self {
            Error::ConnectFailed { address, .. }
            | Error::HandshakeTimeout(address)
            | Error::KeepAliveTimeout(address) => Some(address),
            _ => None,
        }
    }

    /// Whether the operation ran out of time ([`Error::Timeout`] or [`Error::TimedOut`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout | Error::TimedOut { .. })
    }

    /// The server error code, if the broker sent one.
    pub fn server_code(&self) -> Option<ServerErrorCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            Error::IncompatibleSchema { .. } => Some(ServerErrorCode::IncompatibleSchema),
            _ => None,
        }
    }

    /// The broker's reason, for an error the broker sent ([`Error::Server`],
    /// [`Error::IncompatibleSchema`]): its message without the Java exception class in front and
    /// the repetition after " caused by ".
    pub fn broker_reason(&self) -> Option<&str> {
        match self {
            Error::Server { message, .. } | Error::IncompatibleSchema { message } => {
                Some(broker_reason(message))
            }
            _ => None,
        }
    }

    /// The error for the broker's `ServerError` `code` and `message`: [`Error::IncompatibleSchema`]
    /// for that code, [`Error::Server`] for the others.
    pub(crate) fn server(code: i32, message: impl Into<String>) -> Error {
        match ServerErrorCode::from_i32(code) {
            ServerErrorCode::IncompatibleSchema => Error::IncompatibleSchema {
                message: message.into(),
            },
            code => Error::Server {
                code,
                message: message.into(),
            },
        }
    }
}

/// A Java broker's error message without the exception class in front (`org.apache...Exception: `)
/// and the repetition after " caused by ".
fn broker_reason(message: &str) -> &str {
    let first = message.split(" caused by ").next().unwrap_or(message);
    match first.split_once(": ") {
        Some((class, rest)) if class.ends_with("Exception") && !class.contains(' ') => rest,
        _ => first,
    }
}

/// The text of [`Error::TimedOut`].
fn timed_out_message(after: Duration, last: Option<&Error>) -> String {
    match last {
        Some(e) => format!("operation timed out after {after:?}; last error: {e}"),
        None => format!("operation timed out after {after:?}"),
    }
}

/// What [`Error::ConnectFailed`] adds after a proxy's address: the broker it was for.
fn proxy_note(broker: Option<&BrokerAddress>) -> String {
    broker.map_or_else(String::new, |b| format!(" (proxy for {b})"))
}

/// Bad input from the broker. The connection it arrived on is closed and the client reconnects
/// (unless it arrived before the handshake finished: then it is reported as [`Error::NotPulsar`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes do not form a valid frame (garbage, bad magic, bad protobuf, unknown command).
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A frame header claims more bytes than the client accepts. Found from the first four bytes:
    /// nothing of that size is buffered or allocated.
    #[error("frame of {size} bytes claimed, over the limit of {limit} bytes")]
    FrameTooLarge {
        /// The size the frame header claims.
        size: u64,
        /// The largest frame accepted (the broker's maximum message size plus header room).
        limit: u64,
    },
    /// The server answered in HTTP: an HTTP port (such as the admin port 8080) was given instead of
    /// the binary protocol port (6650, or 6651 with TLS).
    #[error("it answered in HTTP ({status_line:?}): is this an HTTP port (such as the admin port 8080) instead of the binary protocol port (6650)?")]
    HttpResponse {
        /// The first line of the answer (as received, at most 128 bytes, non-printable bytes
        /// replaced).
        status_line: String,
    },
    /// A command type this client does not know or does not accept from a broker.
    #[error("unexpected command {0}")]
    UnexpectedCommand(String),
    /// A response naming a request id this client never issued (late answers to requests that
    /// timed out are ignored, not errors).
    #[error("response to unknown request id {0}")]
    UnknownRequestId(u64),
    /// A command before the handshake finished, or a second CONNECTED.
    #[error("command {0} out of order")]
    OutOfOrder(String),
    /// A required field is missing.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field's value is beyond what this client accepts.
    #[error("field {field} out of range: {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value received.
        value: u64,
    },
}

impl ProtocolError {
    /// The error for a frame the decoder refused.
    pub(crate) fn from_decode(e: &pulsar_proto::DecodeError) -> ProtocolError {
        match e {
            pulsar_proto::DecodeError::FrameTooLarge { size, limit } => {
                ProtocolError::FrameTooLarge {
                    size: *size as u64,
                    limit: *limit as u64,
                }
            }
            e => ProtocolError::Decode(e.to_string()),
        }
    }

    /// The error for bytes that start like an HTTP response (`HTTP/`), if `received` does.
    /// `received` is what is buffered from the peer, from the start of the undecodable frame.
    pub(crate) fn http_answer(received: &[u8]) -> Option<ProtocolError> {
        const PREFIX: &[u8] = b"HTTP/";
        // The decoder needs 4 bytes to refuse a frame: "HTTP" alone is enough to tell.
        let n = received.len().min(PREFIX.len());
        if n < 4 || received[..n] != PREFIX[..n] {
            return None;
        }
        let line = received
            .iter()
            .take(128)
            .take_while(|b| **b != b'\r' && **b != b'\n')
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '\u{fffd}'
                }
            })
            .collect();
        Some(ProtocolError::HttpResponse { status_line: line })
    }
}

/// Why a send failed. Delivered in [`Event::SendCompleted`](crate::Event::SendCompleted) or returned
/// by [`Client::send`](crate::Client::send).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The broker rejected the message.
    #[error("broker error {code:?}: {message}")]
    Server {
        /// The broker's code.
        code: ServerErrorCode,
        /// The broker's message.
        message: String,
    },
    /// No receipt within the send timeout.
    #[error("send timed out")]
    Timeout,
    /// The producer is closed (or failed permanently).
    #[error("producer closed")]
    ProducerClosed,
    /// No such producer.
    #[error("unknown producer {0}")]
    UnknownProducer(ProducerId),
    /// The producer's pending queue is full (`max_pending_messages`); wait for
    /// [`Event::ProducerHasRoom`](crate::Event::ProducerHasRoom) or a completion.
    #[error("producer queue is full")]
    QueueFull,
    /// The client-wide memory limit for messages held by producers is reached
    /// ([`ClientConfig::memory_limit`](crate::ClientConfig::memory_limit)); wait for
    /// [`Event::ProducerHasRoom`](crate::Event::ProducerHasRoom) or a completion.
    #[error("client memory limit of {limit} bytes reached")]
    MemoryLimit {
        /// The limit.
        limit: usize,
    },
    /// The payload could not be encrypted (the producer's encryptor failed).
    #[error("cannot encrypt: {0}")]
    Encryption(crate::crypto::CryptoError),
    /// The payload could not be compressed.
    #[error(transparent)]
    Compression(#[from] crate::compression::CompressionError),
    /// The message exceeds the broker's maximum message size.
    #[error("message of {size} bytes exceeds the maximum of {max}")]
    MessageTooBig {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The client is closed.
    #[error("client closed")]
    ClientClosed,
    /// The producer failed with a non-retriable error.
    #[error("producer failed: {0}")]
    Failed(Error),
    /// The message was sent in a transaction that refused it (not open, timed out) or could not
    /// add the message's partition to the transaction.
    #[error(transparent)]
    Transaction(TxnError),
}

impl SendError {
    /// The broker's error code, if the broker refused the message or the producer.
    pub fn server_code(&self) -> Option<ServerErrorCode> {
        match self {
            SendError::Server { code, .. } => Some(*code),
            SendError::Failed(e) => e.server_code(),
            _ => None,
        }
    }
}

/// Why a transaction operation failed. [`is_retriable`](TxnError::is_retriable) says whether the
/// same operation may succeed when tried again (a new transaction for the errors that end one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// The broker has no transaction coordinator: transactions are disabled
    /// (`transactionCoordinatorEnabled=false`) or the coordinator topic
    /// `pulsar/system/transaction_coordinator_assign` does not exist. Not retriable.
    #[error("transactions are not enabled on the broker (no transaction coordinator)")]
    NotEnabled,
    /// The coordinator is not found or not ready (loading, moving to another broker); the client
    /// retried until the operation timeout. Retriable.
    #[error("transaction coordinator {coordinator} not available: {message}")]
    CoordinatorNotAvailable {
        /// The coordinator's id.
        coordinator: u64,
        /// The last reason.
        message: String,
    },
    /// The coordinator (or the broker) gave no answer within the operation timeout; the
    /// outcome is unknown. Retriable.
    #[error("transaction request timed out")]
    RequestTimeout,
    /// The transaction timed out: the coordinator aborts it. Not retriable (start a new one).
    #[error("transaction {0} timed out")]
    TimedOut(TxnId),
    /// The transaction conflicts with another one (an acknowledgement of a message that another
    /// transaction acknowledged, or acknowledged already). Not retriable: abort, then redo the
    /// work in a new transaction.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// The transaction is not in a state that allows the operation (for example committed, or
    /// already ending). Not retriable.
    #[error("transaction {txn} is {state:?}: cannot {operation}")]
    InvalidStatus {
        /// The transaction.
        txn: TxnId,
        /// Its state.
        state: TxnState,
        /// What was asked.
        operation: &'static str,
    },
    /// The coordinator does not know the transaction (ended, timed out, or never created). Not
    /// retriable.
    #[error("transaction {0} not found")]
    NotFound(TxnId),
    /// A send or acknowledgement of the transaction failed, so the commit was refused and the
    /// transaction aborted. Not retriable (redo the work in a new transaction).
    #[error("transaction {0} had a failed operation: aborted instead of committed")]
    OperationFailed(TxnId),
    /// The coordinator refused the request with another error.
    #[error("transaction coordinator error {code:?}: {message}")]
    Server {
        /// The broker's code.
        code: ServerErrorCode,
        /// The broker's message.
        message: String,
    },
    /// The request was lost with its connection (or the client closed) before its coordinator
    /// could answer; the outcome of an end request is unknown. Retriable when the cause is.
    #[error("transaction request failed: {0}")]
    Connection(Box<Error>),
}

impl TxnError {
    /// Whether the same operation may succeed when tried again later.
    pub fn is_retriable(&self) -> bool {
        match self {
            TxnError::CoordinatorNotAvailable { .. } | TxnError::RequestTimeout => true,
            TxnError::Connection(e) => e.is_retriable(),
            TxnError::Server { code, .. } => code.is_retriable(),
            TxnError::NotEnabled
            | TxnError::TimedOut(_)
            | TxnError::Conflict(_)
            | TxnError::InvalidStatus { .. }
            | TxnError::NotFound(_)
            | TxnError::OperationFailed(_) => false,
        }
    }

    /// The typed error for a coordinator's or broker's error code in a transaction answer.
    pub(crate) fn from_server(txn: Option<TxnId>, code: ServerErrorCode, message: String) -> Self {
        match (code, txn) {
            (ServerErrorCode::TransactionConflict, _) => TxnError::Conflict(message),
            (ServerErrorCode::TransactionNotFound, Some(t)) => TxnError::NotFound(t),
            (ServerErrorCode::TransactionCoordinatorNotFound, _) => {
                TxnError::CoordinatorNotAvailable {
                    coordinator: txn.map_or(0, |t| t.most_bits),
                    message,
                }
            }
            (code, _) => TxnError::Server { code, message },
        }
    }
}

/// Misuse of the run-loop API by the runtime (or the application): nothing happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The connection id was never handed out by [`IoRequest::Connect`](crate::IoRequest::Connect), or
    /// the connection is already gone (the core asked to close it, or the runtime reported it closed or
    /// failed). Runtimes may ignore this for connections they were told to close.
    #[error("unknown or closed connection {0}")]
    UnknownConnection(ConnectionId),
    /// Bytes or a close were reported for a connection that is not connected yet.
    #[error("connection {0} is not connected yet")]
    NotConnected(ConnectionId),
    /// `handle_connected`/`handle_connect_failed` for a connection that is already connected.
    #[error("connection {0} is already connected")]
    AlreadyConnected(ConnectionId),
}

/// An invalid [`ClientConfig`](crate::ClientConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The service URL does not parse.
    #[error("invalid service URL: {0}")]
    ServiceUrl(#[from] UrlError),
    /// A setting is out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// A connection-level failure reported with [`Event::ConnectionClosed`](crate::Event::ConnectionClosed).
pub type ConnectionError = Error;

/// Why a message (or chunk) from the broker was not handed to the application. The broker was told
/// (with the matching validation error where one exists) and the permits were returned; the
/// application never sees the damaged data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The frame's CRC32C did not match.
    #[error("checksum mismatch for message {0}")]
    ChecksumMismatch(MessageId),
    /// The payload could not be decompressed.
    #[error("cannot decompress message {id}: {error}")]
    Decompression {
        /// The message (entry).
        id: MessageId,
        /// Why.
        error: crate::compression::CompressionError,
    },
    /// The batch container is malformed.
    #[error("malformed batch {id}: {reason}")]
    BadBatch {
        /// The entry.
        id: MessageId,
        /// Why.
        reason: String,
    },
    /// An incomplete chunked message was dropped after the expiry time (its chunks were
    /// acknowledged).
    #[error("chunked message {uuid} incomplete after the expiry time")]
    ChunkExpired {
        /// The chunked message's uuid.
        uuid: String,
    },
    /// The oldest incomplete chunked message was dropped to stay within
    /// `max_pending_chunked_messages`.
    #[error("chunked message {uuid} dropped: too many chunked messages pending")]
    ChunkQueueFull {
        /// The chunked message's uuid.
        uuid: String,
        /// Whether its chunks were acknowledged (else they are redelivered).
        acked: bool,
    },
    /// A chunked message declares more bytes than `max_chunked_message_size`.
    #[error("chunked message {uuid} of {size} bytes exceeds the limit of {limit}")]
    ChunkTooLarge {
        /// The chunked message's uuid.
        uuid: String,
        /// Declared total size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A chunk arrived without its predecessors (its chunked message is dropped).
    #[error("chunk {chunk_id} of {uuid} arrived out of order")]
    ChunkOutOfOrder {
        /// The chunked message's uuid.
        uuid: String,
        /// The chunk.
        chunk_id: i32,
    },
    /// The chunks do not add up to the declared size.
    #[error("chunked message {uuid} is corrupt: {reason}")]
    ChunkCorrupt {
        /// The chunked message's uuid.
        uuid: String,
        /// Why.
        reason: &'static str,
    },
    /// An encrypted message could not be decrypted (what happened to it is the consumer's
    /// [`CryptoFailureAction`](crate::CryptoFailureAction)).
    #[error("cannot decrypt message {id}: {error}")]
    Crypto {
        /// The message (entry).
        id: MessageId,
        /// Why.
        error: crate::crypto::CryptoError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        use ServerErrorCode::*;
        for c in [
            ServiceNotReady,
            TooManyRequests,
            PersistenceError,
            MetadataError,
        ] {
            assert!(c.is_retriable(), "{c:?}");
        }
        for c in [
            AuthenticationError,
            AuthorizationError,
            TopicNotFound,
            ProducerFenced,
            TopicTerminatedError,
            IncompatibleSchema,
            ProducerBusy,
            ConsumerBusy,
            NotAllowedError,
        ] {
            assert!(!c.is_retriable(), "{c:?}");
        }
        assert_eq!(ServerErrorCode::from_i32(6), ServiceNotReady);
        assert_eq!(ServerErrorCode::from_i32(25), ProducerFenced);
        assert_eq!(ServerErrorCode::from_i32(99), Other(99));
        assert!(Error::server(14, "slow down").is_retriable());
        assert!(!Error::server(3, "bad token").is_retriable());
        assert!(Error::Timeout.is_retriable());
        assert!(!Error::TooManyRedirects(3).is_retriable());
    }
}
