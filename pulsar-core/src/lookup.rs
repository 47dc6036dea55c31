//! Service discovery operations: LOOKUP (redirects, authoritative flag, proxying), PARTITIONED_METADATA,
//! GET_TOPICS_OF_NAMESPACE and the schema registry's GET_SCHEMA / GET_OR_CREATE_SCHEMA, each tracked as an `Op` owned by the application or by a producer or
//! consumer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use pulsar_proto::pb;

use crate::config::MAX_PARTITIONS;
use crate::connections::Connections;
use crate::deadline::Deadline;
use crate::env::Env;
use crate::error::{Error, ProtocolError, ServerErrorCode};
use crate::event::{Event, LookupResult, TopicsMode};
use crate::handle::ConnectionId;
use crate::outputs::{Dispatch, Outputs};
use crate::pool::pick_broker_url;
use crate::pool::PoolKey;
use crate::request::{OpKind, OpResult, Owner, RequestKind};
use crate::schema::{SchemaInfo, SchemaVersion, VersionedSchema};
use crate::stats::{LookupKind, LookupStats};

/// The operations in progress.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// By id.
    ops: BTreeMap<u64, Op>,
    /// (deadline, operation id), in order.
    deadlines: BTreeSet<(Instant, u64)>,
    /// Durations of the operations that ended.
    pub(crate) stats: LookupStats,
}

/// An operation in progress.
#[derive(Debug)]
struct Op {
    owner: Owner,
    kind: OpKind,
    /// Where the request goes.
    target: PoolKey,
    /// Whether `target` is the service URL (another host may be tried after a connection failure).
    on_service: bool,
    /// Service hosts tried so far.
    hosts_tried: usize,
    /// The operation fails at this deadline, whatever it is waiting for (a connection, an answer).
    deadline: Deadline,
    /// When it started (its duration in [`LookupStats`]).
    started: Instant,
}

impl Lookups {
    /// Registers operation `id` (not sent yet: see [`issue`](Self::issue)). It goes to `target`
    /// first, which is the service URL when `on_service`, and fails at `deadline`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        id: u64,
        owner: Owner,
        kind: OpKind,
        target: PoolKey,
        on_service: bool,
        deadline: Deadline,
    ) {
        self.deadlines.insert((deadline.at(), id));
        self.ops.insert(
            id,
            Op {
                owner,
                kind,
                target,
                on_service,
                hosts_tried: 1,
                deadline,
                started: now,
            },
        );
    }

    /// Sends the operation's request, or queues it until its connection is ready.
    pub(crate) fn issue(
        &mut self,
        now: Instant,
        env: &mut Env,
        conns: &mut Connections,
        out: &mut Outputs,
        id: u64,
    ) {
        if env.shut {
            self.finish(now, out, id, Err(Error::ClientClosed));
            return;
        }
        let Some(op) = self.ops.get(&id) else { return };
        let target = op.target.clone();
        let conn = conns.connection_for(now, env, out, &target, None);
        if !conns.is_ready(conn) {
            if let Some(c) = conns.connection_mut(conn) {
                c.waiting_ops.push(id);
            }
            return;
        }
        self.send_request(env, conns, conn, id);
    }

    pub(crate) fn send_request(
        &mut self,
        env: &mut Env,
        conns: &mut Connections,
        conn: ConnectionId,
        id: u64,
    ) {
        let Some(op) = self.ops.get(&id) else { return };
        let request_id = env.ids.next();
        let command = match &op.kind {
            OpKind::Lookup {
                topic,
                authoritative,
                ..
            } => {
                env.counters.lookups += 1;
                pb::BaseCommand::from(pb::CommandLookupTopic {
                    topic: topic.clone(),
                    request_id,
                    authoritative: Some(*authoritative),
                    advertised_listener_name: env.config.listener_name.clone(),
                    ..Default::default()
                })
            }
            OpKind::PartitionedMetadata { topic } => {
                pb::BaseCommand::from(pb::CommandPartitionedTopicMetadata {
                    topic: topic.clone(),
                    request_id,
                    ..Default::default()
                })
            }
            OpKind::TopicsOfNamespace { namespace, mode } => {
                let mode = match mode {
                    TopicsMode::Persistent => pb::command_get_topics_of_namespace::Mode::Persistent,
                    TopicsMode::NonPersistent => {
                        pb::command_get_topics_of_namespace::Mode::NonPersistent
                    }
                    TopicsMode::All => pb::command_get_topics_of_namespace::Mode::All,
                };
                pb::BaseCommand::from(pb::CommandGetTopicsOfNamespace {
                    request_id,
                    namespace: namespace.clone(),
                    mode: Some(mode as i32),
                    ..Default::default()
                })
            }
            OpKind::GetSchema { topic, version } => pb::BaseCommand::from(pb::CommandGetSchema {
                request_id,
                topic: topic.clone(),
                schema_version: version.as_ref().map(|v| v.0.clone()),
            }),
            OpKind::GetOrCreateSchema { topic, schema } => {
                pb::BaseCommand::from(pb::CommandGetOrCreateSchema {
                    request_id,
                    topic: topic.clone(),
                    schema: (**schema).clone(),
                    producer_name: None,
                })
            }
        };
        let deadline = Some(op.deadline.at());
        conns.send_request_until(conn, request_id, &command, RequestKind::Op(id), deadline);
    }

    /// The connection carrying (or about to carry) the operation failed.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        env: &mut Env,
        conns: &mut Connections,
        out: &mut Outputs,
        id: u64,
        error: Error,
    ) {
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        op.deadline.record(&error);
        // Another service host may be a broker even when this one is something else.
        let retry = op.on_service
            && (error.is_retriable() || matches!(error, Error::NotPulsar { .. }))
            && !error.is_timeout()
            && op.hosts_tried < conns.pool.service_hosts();
        if retry {
            op.hosts_tried += 1;
            op.target = PoolKey::direct(conns.pool.service_host());
            self.issue(now, env, conns, out, id);
        } else {
            self.finish(now, out, id, Err(error));
        }
    }

    /// The answer (or timeout) of the operation's request.
    pub(crate) fn response(
        &mut self,
        now: Instant,
        env: &mut Env,
        conns: &mut Connections,
        out: &mut Outputs,
        id: u64,
        result: Result<pb::BaseCommand, Error>,
    ) {
        let command = match result {
            Ok(c) => c,
            Err(Error::Timeout) => {
                // The request's deadline is the operation's.
                let error = match self.ops.get(&id) {
                    Some(op) => op.deadline.error(),
                    None => Error::Timeout,
                };
                self.finish(now, out, id, Err(error));
                return;
            }
            Err(e) => {
                self.finish(now, out, id, Err(e));
                return;
            }
        };
        let Some(op) = self.ops.get(&id) else { return };
        match &op.kind {
            OpKind::Lookup { .. } => self.lookup_answer(now, env, conns, out, id, command),
            OpKind::PartitionedMetadata { .. } => {
                let result = match command.partition_metadata_response.as_deref() {
                    None => Err(Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                        "{:?} for PARTITIONED_METADATA",
                        command.kind()
                    )))),
                    Some(r) if r.response == Some(1) || r.error.is_some() => Err(Error::server(
                        r.error.unwrap_or(0),
                        r.message.clone().unwrap_or_default(),
                    )),
                    Some(r) => match r.partitions.unwrap_or(0) {
                        n if n > MAX_PARTITIONS => {
                            Err(Error::Protocol(ProtocolError::OutOfRange {
                                field: "partitions",
                                value: u64::from(n),
                            }))
                        }
                        n => Ok(n),
                    },
                };
                self.finish(now, out, id, result.map(OpResultValue::Partitions));
            }
            OpKind::TopicsOfNamespace { .. } => {
                let result = match command.get_topics_of_namespace_response {
                    None => Err(Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                        "{:?} for GET_TOPICS_OF_NAMESPACE",
                        command.kind()
                    )))),
                    Some(r) => Ok(r.topics),
                };
                self.finish(now, out, id, result.map(OpResultValue::Topics));
            }
            OpKind::GetSchema { .. } => {
                let result = schema_answer(&command).map(OpResultValue::Schema);
                self.finish(now, out, id, result);
            }
            OpKind::GetOrCreateSchema { .. } => {
                let result = schema_created_answer(&command).map(OpResultValue::SchemaVersion);
                self.finish(now, out, id, result);
            }
        }
    }

    fn lookup_answer(
        &mut self,
        now: Instant,
        env: &mut Env,
        conns: &mut Connections,
        out: &mut Outputs,
        id: u64,
        command: pb::BaseCommand,
    ) {
        use pb::command_lookup_topic_response::LookupType;
        let Some(r) = command.lookup_topic_response.as_deref() else {
            self.finish(
                now,
                out,
                id,
                Err(Error::Protocol(ProtocolError::UnexpectedCommand(format!(
                    "{:?} for LOOKUP",
                    command.kind()
                )))),
            );
            return;
        };
        let response = r.response.and_then(|v| LookupType::try_from(v).ok());
        if response == Some(LookupType::Failed) || response.is_none() {
            let error = Error::server(r.error.unwrap_or(0), r.message.clone().unwrap_or_default());
            self.finish(now, out, id, Err(error));
            return;
        }
        let broker = match pick_broker_url(
            conns.pool.service_tls(),
            r.broker_service_url.as_deref(),
            r.broker_service_url_tls.as_deref(),
        ) {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                self.finish(now, out, id, Err(e));
                return;
            }
            None => {
                self.finish(
                    now,
                    out,
                    id,
                    Err(Error::Protocol(ProtocolError::MissingField(
                        if conns.pool.service_tls() {
                            "brokerServiceUrlTls"
                        } else {
                            "brokerServiceUrl"
                        },
                    ))),
                );
                return;
            }
        };
        // Through a proxy, the socket goes where this lookup went (the Java client's rule): after a
        // redirect or a migration that is not the first service host.
        let physical = match self.ops.get(&id) {
            Some(op) if r.proxy_through_service_url.unwrap_or(false) => op.target.physical.clone(),
            _ => broker.clone(),
        };
        let authoritative = r.authoritative.unwrap_or(false);
        let max = env.config.max_lookup_redirects;
        let Some(op) = self.ops.get_mut(&id) else {
            return;
        };
        let OpKind::Lookup {
            redirects,
            authoritative: auth,
            ..
        } = &mut op.kind
        else {
            return;
        };
        if response == Some(LookupType::Redirect) {
            *redirects += 1;
            if *redirects > max {
                self.finish(now, out, id, Err(Error::TooManyRedirects(max)));
                return;
            }
            *auth = authoritative;
            op.target = PoolKey {
                logical: broker,
                physical,
            };
            op.on_service = false;
            self.issue(now, env, conns, out, id);
        } else {
            let result = LookupResult {
                broker,
                connect_to: physical,
                redirects: *redirects,
            };
            self.finish(now, out, id, Ok(OpResultValue::Lookup(result)));
        }
    }

    /// Ends an operation and delivers its result.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        out: &mut Outputs,
        id: u64,
        result: Result<OpResultValue, Error>,
    ) {
        let Some(op) = self.ops.remove(&id) else {
            return;
        };
        self.deadlines.remove(&(op.deadline.at(), id));
        if !matches!(result, Err(Error::ClientClosed)) {
            let kind = match op.kind {
                OpKind::Lookup { .. } => LookupKind::Topic,
                OpKind::PartitionedMetadata { .. } => LookupKind::Metadata,
                OpKind::TopicsOfNamespace { .. } => LookupKind::ListTopics,
                OpKind::GetSchema { .. } | OpKind::GetOrCreateSchema { .. } => LookupKind::Schema,
            };
            let took = now.saturating_duration_since(op.started);
            self.stats.record(kind, result.is_ok(), took);
        }
        let result = match op.kind {
            OpKind::Lookup { .. } => OpResult::Lookup(result.and_then(|v| match v {
                OpResultValue::Lookup(l) => Ok(l),
                _ => Err(Error::InvalidState("lookup result")),
            })),
            OpKind::PartitionedMetadata { .. } => {
                OpResult::PartitionedMetadata(result.and_then(|v| match v {
                    OpResultValue::Partitions(n) => Ok(n),
                    _ => Err(Error::InvalidState("metadata result")),
                }))
            }
            OpKind::TopicsOfNamespace { .. } => {
                OpResult::TopicsOfNamespace(result.and_then(|v| match v {
                    OpResultValue::Topics(t) => Ok(t),
                    _ => Err(Error::InvalidState("topics result")),
                }))
            }
            OpKind::GetSchema { .. } => OpResult::GetSchema(result.and_then(|v| match v {
                OpResultValue::Schema(s) => Ok(s),
                _ => Err(Error::InvalidState("schema result")),
            })),
            OpKind::GetOrCreateSchema { .. } => {
                OpResult::GetOrCreateSchema(result.and_then(|v| match v {
                    OpResultValue::SchemaVersion(v) => Ok(v),
                    _ => Err(Error::InvalidState("schema version result")),
                }))
            }
        };
        match op.owner {
            Owner::App(request) => out.events.push_back(match result {
                OpResult::Lookup(result) => Event::LookupCompleted { request, result },
                OpResult::PartitionedMetadata(result) => {
                    Event::PartitionedMetadata { request, result }
                }
                OpResult::TopicsOfNamespace(result) => Event::TopicsOfNamespace { request, result },
                OpResult::GetSchema(result) => Event::SchemaFetched { request, result },
                OpResult::GetOrCreateSchema(result) => Event::SchemaCreated { request, result },
            }),
            owner => out.dispatch.push_back(Dispatch::OpDone {
                owner,
                op: id,
                result,
            }),
        }
    }

    /// Abandons an operation whose owner went away (its answer, if any, is ignored).
    pub(crate) fn cancel(&mut self, id: u64) {
        if let Some(op) = self.ops.remove(&id) {
            self.deadlines.remove(&(op.deadline.at(), id));
        }
    }

    /// Fails the operations whose deadline has passed (waiting for a connection or an answer).
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Outputs) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let error = match self.ops.get(&id) {
                Some(op) => op.deadline.error(),
                None => continue,
            };
            self.finish(now, out, id, Err(error));
        }
    }

    /// Whether operation `id` is still running.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ops.contains_key(&id)
    }

    /// Ends every operation with `error` (client shutdown).
    pub(crate) fn finish_all(&mut self, now: Instant, out: &mut Outputs, error: &Error) {
        let ops: Vec<u64> = self.ops.keys().copied().collect();
        for op in ops {
            self.finish(now, out, op, Err(error.clone()));
        }
    }

    /// The earliest operation deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|d| d.0)
    }
}

/// A successful operation's value, before it is typed by the operation kind.
#[derive(Debug)]
pub(crate) enum OpResultValue {
    Lookup(LookupResult),
    Partitions(u32),
    Topics(Vec<String>),
    Schema(Option<VersionedSchema>),
    SchemaVersion(SchemaVersion),
}

/// The value of a GET_SCHEMA answer: the schema and its version; `None` when the broker says the
/// topic has no schema (`TopicNotFound`, as the Java client reads it).
fn schema_answer(command: &pb::BaseCommand) -> Result<Option<VersionedSchema>, Error> {
    let Some(r) = command.get_schema_response.as_deref() else {
        return Err(unexpected(command, "GET_SCHEMA"));
    };
    if let Some(code) = r.error_code {
        return match ServerErrorCode::from_i32(code) {
            ServerErrorCode::TopicNotFound => Ok(None),
            _ => Err(Error::server(
                code,
                r.error_message.clone().unwrap_or_default(),
            )),
        };
    }
    let Some(schema) = r.schema.as_ref() else {
        return Ok(None);
    };
    let info = SchemaInfo::from_pb(schema).ok_or(Error::Protocol(ProtocolError::OutOfRange {
        field: "Schema.type",
        value: u64::from(schema.r#type.unsigned_abs()),
    }))?;
    let version = SchemaVersion(r.schema_version.clone().unwrap_or_default());
    Ok(Some(VersionedSchema::new(info, version)))
}

/// The value of a GET_OR_CREATE_SCHEMA answer: the schema's version.
fn schema_created_answer(command: &pb::BaseCommand) -> Result<SchemaVersion, Error> {
    let Some(r) = command.get_or_create_schema_response.as_deref() else {
        return Err(unexpected(command, "GET_OR_CREATE_SCHEMA"));
    };
    if let Some(code) = r.error_code {
        return Err(Error::server(
            code,
            r.error_message.clone().unwrap_or_default(),
        ));
    }
    match &r.schema_version {
        Some(v) => Ok(SchemaVersion(v.clone())),
        None => Err(Error::Protocol(ProtocolError::MissingField(
            "schema_version",
        ))),
    }
}

/// The error for an answer of the wrong kind to `request`.
fn unexpected(command: &pb::BaseCommand, request: &str) -> Error {
    Error::Protocol(ProtocolError::UnexpectedCommand(format!(
        "{:?} for {request}",
        command.kind()
    )))
}
