//! Request tags: what a request in flight is for, which decides where its answer goes.
//!
//! The floor under connections, lookups, producers and consumers: this module names the requests of
//! all of them and imports none of them.

use crate::error::Error;
use crate::event::{LookupResult, TopicsMode};
use crate::handle::{ConsumerId, ProducerId, RequestId};
use crate::schema::{SchemaVersion, VersionedSchema};
use pulsar_proto::pb;

/// What a request in flight is for; decides where its answer goes.
///
/// Requests of producers and consumers are not failed one by one when their connection drops: the
/// owner gets [`Dispatch::ConnectionLost`](crate::outputs::Dispatch::ConnectionLost) and handles all of them at once.
#[derive(Debug, Clone)]
pub(crate) enum RequestKind {
    /// A lookup / metadata / topic list operation.
    Op(u64),
    /// A producer's request.
    Producer(ProducerId, ProducerRequest),
    /// A consumer's request.
    Consumer(ConsumerId, ConsumerRequest),
    /// A request to transaction coordinator `.0` (TC_CLIENT_CONNECT, NEW_TXN, ADD_*_TO_TXN,
    /// END_TXN); the answer goes to the transactions module, which fails them itself when the
    /// connection drops.
    Coordinator(u64),
}

/// Requests a producer sends; the answer comes back with this tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ProducerRequest {
    /// PRODUCER.
    Create,
    /// CLOSE_PRODUCER requested by the application.
    Close,
    /// CLOSE_PRODUCER sent to clean up after a timed-out PRODUCER (answer ignored).
    Cleanup,
}

/// Requests a consumer sends; the answer comes back with this tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum ConsumerRequest {
    /// SUBSCRIBE.
    Subscribe,
    /// CLOSE_CONSUMER requested by the application.
    Close,
    /// CLOSE_CONSUMER sent to clean up after a timed-out SUBSCRIBE (answer ignored).
    Cleanup,
    /// ACK with a request id (ack receipts).
    Ack,
    /// SEEK.
    Seek,
    /// GET_LAST_MESSAGE_ID.
    LastMessageId,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// WATCH_TOPIC_LIST (pattern consumers).
    WatchTopics,
}

/// Who waits for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The application: the answer becomes an [`Event`](crate::event::Event).
    App(RequestId),
    /// A producer: the answer is dispatched to it.
    Producer(ProducerId),
    /// A consumer: the answer is dispatched to it.
    Consumer(ConsumerId),
    /// The transactions module: the coordinators' discovery (`.0 == None`) or coordinator
    /// `.0`'s lookup.
    Coordinator(Option<u64>),
}

/// What an operation asks.
#[derive(Debug, Clone)]
pub(crate) enum OpKind {
    Lookup {
        topic: String,
        authoritative: bool,
        redirects: u32,
    },
    PartitionedMetadata {
        topic: String,
    },
    TopicsOfNamespace {
        namespace: String,
        mode: TopicsMode,
    },
    /// GET_SCHEMA: the topic's schema at `version`, or its latest.
    GetSchema {
        topic: String,
        version: Option<SchemaVersion>,
    },
    /// GET_OR_CREATE_SCHEMA: the version of `schema` on the topic, registered if new.
    GetOrCreateSchema {
        topic: String,
        schema: Box<pb::Schema>,
    },
}

/// The outcome of an operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OpResult {
    Lookup(Result<LookupResult, Error>),
    PartitionedMetadata(Result<u32, Error>),
    TopicsOfNamespace(Result<Vec<String>, Error>),
    GetSchema(Result<Option<VersionedSchema>, Error>),
    GetOrCreateSchema(Result<SchemaVersion, Error>),
}
