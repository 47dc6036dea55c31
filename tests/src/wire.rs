//! A blocking client that speaks raw protocol frames over a `std::net::TcpStream`, with nothing
//! but pulsar-proto in between: the integration tests use it to prove the codec on the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulsar_proto::pb::base_command::Type;
use pulsar_proto::{
    encode_command, encode_send, pb, DecodeError, Frame, FrameDecoder, PROTOCOL_VERSION,
};

/// Default wait for a frame.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a wire exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The broker sent bytes the codec rejects.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// No complete frame arrived in time.
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    /// The broker closed the connection.
    #[error("connection closed by the broker")]
    Closed,
    /// A frame other than the one expected.
    #[error("expected {expected:?}, got {got:?}")]
    Unexpected {
        /// The command type expected.
        expected: Type,
        /// The command received.
        got: Box<pb::BaseCommand>,
    },
    /// The address could not be resolved.
    #[error("cannot resolve {0:?}")]
    BadAddress(String),
}

/// One connection to a broker, sending and receiving whole frames.
#[derive(Debug)]
pub struct WireClient {
    stream: TcpStream,
    decoder: FrameDecoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    timeout: Duration,
}

/// A `CONNECT` announcing protocol version 21, with optional authentication.
pub fn connect_command(auth: Option<(&str, &[u8])>) -> pb::CommandConnect {
    pb::CommandConnect {
        client_version: "pulsar-sansio-tests".to_owned(),
        protocol_version: Some(PROTOCOL_VERSION),
        auth_method_name: auth.map(|(method, _)| method.to_owned()),
        auth_data: auth.map(|(_, data)| Bytes::copy_from_slice(data)),
        ..Default::default()
    }
}

impl WireClient {
    /// Opens a TCP connection to `addr` (`host:port` or `pulsar://host:port`).
    pub fn connect(addr: &str) -> Result<Self, WireError> {
        let authority = addr.strip_prefix("pulsar://").unwrap_or(addr);
        let authority = authority.trim_end_matches('/');
        let socket: SocketAddr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| WireError::BadAddress(addr.to_owned()))?;
        let stream = TcpStream::connect_timeout(&socket, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        Ok(WireClient {
            stream,
            decoder: FrameDecoder::default(),
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(64 * 1024),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Changes how long [`recv`](Self::recv) waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `CONNECT` and waits for `CONNECTED`; adopts the broker's `max_message_size`.
    pub fn handshake(
        &mut self,
        auth: Option<(&str, &[u8])>,
    ) -> Result<pb::CommandConnected, WireError> {
        self.send(connect_command(auth))?;
        let frame = self.recv_kind(Type::Connected)?;
        let connected = frame.command.connected.map(|c| *c).unwrap_or_default();
        if let Some(size) = connected
            .max_message_size
            .and_then(|s| usize::try_from(s).ok())
        {
            self.decoder.set_max_message_size(size);
        }
        Ok(connected)
    }

    /// Sends a simple command.
    pub fn send(&mut self, command: impl Into<pb::BaseCommand>) -> Result<(), WireError> {
        self.write_buf.clear();
        encode_command(&command.into(), &mut self.write_buf);
        self.stream.write_all(&self.write_buf)?;
        Ok(())
    }

    /// Sends a `SEND` frame with its metadata and payload.
    pub fn send_message(
        &mut self,
        send: &pb::CommandSend,
        metadata: &pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<(), WireError> {
        self.write_buf.clear();
        encode_send(send, metadata, payload, &mut self.write_buf);
        self.stream.write_all(&self.write_buf)?;
        Ok(())
    }

    /// Waits for the next frame.
    pub fn recv(&mut self) -> Result<Frame, WireError> {
        let deadline = Instant::now() + self.timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WireError::Timeout(self.timeout));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(WireError::Closed),
                Ok(n) => self
                    .read_buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits for the next frame, which must be of type `expected`. A keep-alive `PING` from the
    /// broker in between is answered with `PONG` and skipped (unless `PING` is expected).
    pub fn recv_kind(&mut self, expected: Type) -> Result<Frame, WireError> {
        loop {
            let frame = self.recv()?;
            let kind = frame.command.kind();
            if kind == Some(expected) {
                return Ok(frame);
            }
            if kind == Some(Type::Ping) {
                self.send(pb::CommandPong {})?;
                continue;
            }
            return Err(WireError::Unexpected {
                expected,
                got: Box::new(frame.command),
            });
        }
    }

    /// Looks `topic` up (as every client does before `PRODUCER` or `SUBSCRIBE`: the lookup makes
    /// the broker take ownership of the topic's namespace bundle) and returns the response.
    pub fn lookup(
        &mut self,
        topic: &str,
        request_id: u64,
    ) -> Result<pb::CommandLookupTopicResponse, WireError> {
        self.send(pb::CommandLookupTopic {
            topic: topic.to_owned(),
            request_id,
            authoritative: Some(false),
            ..Default::default()
        })?;
        let frame = self.recv_kind(Type::LookupResponse)?;
        Ok(frame
            .command
            .lookup_topic_response
            .map(|r| *r)
            .unwrap_or_default())
    }

    /// Closes the connection.
    pub fn close(self) -> Result<(), WireError> {
        self.stream.shutdown(std::net::Shutdown::Both)?;
        Ok(())
    }
}
