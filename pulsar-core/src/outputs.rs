//! The outputs of the client's connections and lookups: events for the application, work for the
//! producer and consumer modules ([`Dispatch`]), and connection requests for the runtime.

use std::collections::VecDeque;

use pulsar_proto::pb;
use pulsar_proto::Payload;

use crate::error::Error;
use crate::event::Event;
use crate::handle::{ConnectionId, ConsumerId, ProducerId};
use crate::io::IoRequest;
use crate::request::{ConsumerRequest, OpResult, Owner, ProducerRequest};
use crate::service_url::BrokerAddress;

/// The queues the client's connections and lookups fill and the client drains.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// Events for the application, drained by [`Client::poll_event`](crate::Client::poll_event).
    pub(crate) events: VecDeque<Event>,
    /// Work for the producer and consumer modules, routed by the client after every input.
    pub(crate) dispatch: VecDeque<Dispatch>,
    /// Connection requests for the runtime, drained by [`Client::poll_io`](crate::Client::poll_io).
    io: VecDeque<IoRequest>,
}

impl Outputs {
    /// Asks the runtime to open or close a connection.
    pub(crate) fn push_io(&mut self, request: IoRequest) {
        self.io.push_back(request);
    }

    /// The next connection request for the runtime.
    pub(crate) fn poll_io(&mut self) -> Option<IoRequest> {
        self.io.pop_front()
    }
}

/// Work the connections produced for the producer and consumer modules.
// MESSAGE payloads travel inline: boxing them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// The handshake finished; these producers/consumers were waiting for it.
    ConnectionReady {
        conn: ConnectionId,
        producers: Vec<ProducerId>,
        consumers: Vec<ConsumerId>,
    },
    /// A connection reached `address` again after it could not be reached: producers and
    /// consumers waiting because of that retry now.
    AddressUp { address: BrokerAddress },
    /// The connection is gone; these producers/consumers were attached to it.
    ConnectionLost {
        conn: ConnectionId,
        reason: Error,
        producers: Vec<ProducerId>,
        consumers: Vec<ConsumerId>,
    },
    /// The answer (or timeout) of a producer request.
    ProducerResponse {
        conn: ConnectionId,
        producer: ProducerId,
        request_id: u64,
        request: ProducerRequest,
        result: Result<pb::BaseCommand, Error>,
    },
    /// The answer (or timeout) of a consumer request.
    ConsumerResponse {
        conn: ConnectionId,
        consumer: ConsumerId,
        request_id: u64,
        request: ConsumerRequest,
        result: Result<pb::BaseCommand, Error>,
    },
    /// A SEND_RECEIPT for a producer attached to `conn`.
    Receipt {
        conn: ConnectionId,
        producer: ProducerId,
        receipt: pb::CommandSendReceipt,
    },
    /// A broker command naming a producer attached to `conn` (SEND_ERROR, CLOSE_PRODUCER,
    /// TOPIC_MIGRATED).
    ProducerCommand {
        conn: ConnectionId,
        producer: ProducerId,
        command: pb::BaseCommand,
    },
    /// A MESSAGE for a consumer attached to `conn`. `checksum_ok` is false when its checksum did
    /// not match (then `payload` is `None`).
    Message {
        conn: ConnectionId,
        consumer: ConsumerId,
        message: pb::CommandMessage,
        payload: Option<Payload>,
        checksum_ok: bool,
    },
    /// A broker command naming a consumer attached to `conn` (CLOSE_CONSUMER,
    /// REACHED_END_OF_TOPIC, ACTIVE_CONSUMER_CHANGE, ACK_RESPONSE without request id, TOPIC_MIGRATED).
    ConsumerCommand {
        conn: ConnectionId,
        consumer: ConsumerId,
        command: pb::BaseCommand,
    },
    /// The answer (or timeout) of a request to transaction coordinator `coordinator`.
    CoordinatorResponse {
        conn: ConnectionId,
        coordinator: u64,
        request_id: u64,
        result: Result<pb::BaseCommand, Error>,
    },
    /// An operation started by a producer or consumer finished.
    OpDone {
        owner: Owner,
        op: u64,
        result: OpResult,
    },
}
