//! One broker connection: buffers, frame decoding, handshake state, keep-alive and in-flight requests.
//!
//! A `Connection` only keeps state; [`Shared`](crate::shared::Shared) drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pulsar_proto::{
    encode_command, pb, DecodeError, Frame, FrameDecoder, DEFAULT_MAX_MESSAGE_SIZE,
};

use crate::error::{Error, ProtocolError};
use crate::handle::{ConnectionId, ConsumerId, ProducerId};
use crate::pool::PoolKey;
use crate::request::RequestKind;
use crate::service_url::BrokerAddress;
use crate::stats::{ConnectionState, ConnectionStats};
use crate::time;
use crate::write_buf::WriteBuf;

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct PendingRequest {
    pub(crate) kind: RequestKind,
    pub(crate) deadline: Option<Instant>,
}

/// One connection's state.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) id: ConnectionId,
    pub(crate) key: PoolKey,
    /// Where the socket goes: `key.physical`, or the SNI proxy every socket goes to.
    pub(crate) socket: BrokerAddress,
    /// Index of the pool slot it occupies.
    pub(crate) slot: usize,
    pub(crate) state: ConnectionState,
    read_buf: BytesMut,
    decoder: FrameDecoder,
    pub(crate) write_buf: WriteBuf,
    /// Requests in flight, by wire request id.
    pub(crate) pending: BTreeMap<u64, PendingRequest>,
    /// Producers registered (or registering, or waiting for this connection to be ready).
    pub(crate) producers: BTreeSet<ProducerId>,
    /// Consumers registered (or registering, or waiting for this connection to be ready).
    pub(crate) consumers: BTreeSet<ConsumerId>,
    /// Operations (lookups, metadata) waiting for the handshake.
    pub(crate) waiting_ops: Vec<u64>,
    /// Connect or handshake deadline, until ready.
    pub(crate) setup_deadline: Option<Instant>,
    pub(crate) last_received: Instant,
    /// When the keep-alive PING still unanswered was sent.
    pub(crate) ping_sent: Option<Instant>,
    pub(crate) server_version: Option<String>,
    /// CONNECTED said `supports_topic_watchers` (pattern consumers use WATCH_TOPIC_LIST).
    pub(crate) topic_watchers: bool,
    pub(crate) max_message_size: usize,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

impl Connection {
    pub(crate) fn new(
        id: ConnectionId,
        key: PoolKey,
        socket: BrokerAddress,
        slot: usize,
        now: Instant,
        setup: Duration,
    ) -> Self {
        Connection {
            id,
            key,
            socket,
            slot,
            state: ConnectionState::Connecting,
            read_buf: BytesMut::new(),
            decoder: FrameDecoder::new(DEFAULT_MAX_MESSAGE_SIZE),
            write_buf: WriteBuf::default(),
            pending: BTreeMap::new(),
            producers: BTreeSet::new(),
            consumers: BTreeSet::new(),
            waiting_ops: Vec::new(),
            setup_deadline: Some(time::after(now, setup)),
            last_received: now,
            ping_sent: None,
            server_version: None,
            topic_watchers: false,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            frames_in: 0,
            frames_out: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The broker this connection is for when its socket goes to a proxy (None when direct).
    pub(crate) fn proxy_for(&self) -> Option<BrokerAddress> {
        (self.socket != self.key.logical).then(|| self.key.logical.clone())
    }

    /// The error for a socket that could not be opened (or not in time).
    pub(crate) fn connect_failed(&self, reason: String) -> Error {
        Error::ConnectFailed {
            address: self.socket.clone(),
            proxy_for: self.proxy_for(),
            reason,
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.state == ConnectionState::Ready
    }

    /// Appends received bytes.
    pub(crate) fn ingest(&mut self, now: Instant, data: &[u8]) {
        self.read_buf.extend_from_slice(data);
        self.bytes_in += data.len() as u64;
        self.last_received = now;
        self.ping_sent = None;
    }

    /// Decodes the next complete frame into `frame` (reusing its allocations); `Ok(false)` when
    /// no complete frame is buffered.
    pub(crate) fn next_frame(&mut self, frame: &mut Frame) -> Result<bool, DecodeError> {
        let complete = self.decoder.decode_into(&mut self.read_buf, frame)?;
        if complete {
            self.frames_in += 1;
        }
        Ok(complete)
    }

    /// The protocol error for a frame the decoder refused: an HTTP answer when the bytes start
    /// like one (the frame decoder reads "HTTP" as a frame size of about 1.2 GB), else the decoder's
    /// error. The undecodable frame is still at the start of the read buffer.
    pub(crate) fn undecodable(&self, e: &DecodeError) -> ProtocolError {
        ProtocolError::http_answer(&self.read_buf).unwrap_or_else(|| ProtocolError::from_decode(e))
    }

    /// Applies the broker's maximum message size (from CONNECTED).
    pub(crate) fn set_max_message_size(&mut self, size: usize) {
        self.max_message_size = size;
        self.decoder.set_max_message_size(size);
    }

    /// Appends a simple command to the write buffer.
    pub(crate) fn write_command(&mut self, command: &pb::BaseCommand) {
        encode_command(command, self.write_buf.buf());
        self.frames_out += 1;
    }

    /// The keep-alive deadline: when to ping (an interval after the last input) or give up (an
    /// interval after the unanswered PING, so the broker always has a full interval to answer even
    /// when the timer fired late).
    pub(crate) fn keep_alive_deadline(&self, interval: Duration) -> Option<Instant> {
        if interval.is_zero() || !self.is_ready() {
            return None;
        }
        Some(match self.ping_sent {
            Some(at) => time::after(at, interval),
            None => time::after(self.last_received, interval),
        })
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            id: self.id,
            address: self.socket.clone(),
            logical_address: self.key.logical.clone(),
            state: self.state,
            server_version: self.server_version.clone(),
            max_message_size: self.max_message_size,
            frames_in: self.frames_in,
            frames_out: self.frames_out,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            pending_requests: self.pending.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            last_received: self.last_received,
        }
    }
}
