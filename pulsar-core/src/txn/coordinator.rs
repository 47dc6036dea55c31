//! The transaction coordinators: found through the partitions of
//! `persistent://pulsar/system/transaction_coordinator_assign` (coordinator `n` is served by the
//! broker that owns partition `n`), each reached by a [`Link`] (lookup, connection from the
//! pool) and registered with TC_CLIENT_CONNECT. A coordinator that fails (not found, not ready,
//! moved, connection lost) is looked up and registered again after a backoff.

use std::sync::Arc;
use std::time::Instant;

use pulsar_proto::pb;

use crate::backoff::Backoff;
use crate::error::{Error, ServerErrorCode};
use crate::event::Resource;
use crate::handle::ConnectionId;
use crate::link::{Link, Phase, Step};
use crate::request::{OpKind, OpResult, Owner, RequestKind};
use crate::shared::Shared;
use crate::time;
use crate::topic::TopicName;

/// The partitioned system topic whose partitions name the coordinators.
pub(super) const ASSIGN_TOPIC: &str = "persistent://pulsar/system/transaction_coordinator_assign";

/// Where finding the coordinators stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discovery {
    /// Not asked yet (no transaction was started).
    Idle,
    /// PARTITIONED_METADATA of the assign topic in flight.
    Resolving { op: u64 },
    /// Failed; asked again at `until`.
    Waiting { until: Instant },
    /// The coordinators are known.
    Done,
}

/// One coordinator and the client's registration with it.
#[derive(Debug)]
struct Coordinator {
    topic: String,
    /// `None` while waiting for `retry_at` after a failure.
    link: Option<Link>,
    retry_at: Instant,
    backoff: Backoff,
}

/// What happened to a coordinator request's answer: the coordinators' own
/// (TC_CLIENT_CONNECT) or another request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Not a registration answer: the request is the caller's.
    NotMine,
    /// Coordinator `.0` is registered: its waiting requests can go.
    Ready(u64),
    /// The registration failed (retried later).
    Failed,
}

/// Every coordinator of the cluster, found on the first transaction.
#[derive(Debug)]
pub(super) struct Coordinators {
    discovery: Discovery,
    backoff: Backoff,
    list: Vec<Coordinator>,
    /// Round robin over the coordinators for new transactions.
    next: u64,
    /// The broker refused TC_CLIENT_CONNECT with "not allowed": transactions are disabled.
    pub(super) disabled: bool,
    /// The last failure of the discovery or of a coordinator (reported when a request expires).
    pub(super) last_error: Option<String>,
}

impl Coordinators {
    pub(super) fn new(sh: &Shared) -> Coordinators {
        let c = &sh.env.config;
        Coordinators {
            discovery: Discovery::Idle,
            backoff: Backoff::new(c.backoff_initial, c.backoff_max),
            list: Vec::new(),
            next: 0,
            disabled: false,
            last_error: None,
        }
    }

    /// Whether the coordinators are known.
    pub(super) fn discovered(&self) -> bool {
        self.discovery == Discovery::Done
    }

    /// Starts finding the coordinators (once).
    pub(super) fn start(&mut self, sh: &mut Shared, now: Instant) {
        if self.discovery == Discovery::Idle {
            self.resolve(sh, now);
        }
    }

    fn resolve(&mut self, sh: &mut Shared, now: Instant) {
        let op = sh.start_op(
            now,
            Owner::Coordinator(None),
            OpKind::PartitionedMetadata {
                topic: ASSIGN_TOPIC.to_string(),
            },
            None,
        );
        self.discovery = Discovery::Resolving { op };
    }

    /// The coordinator for a new transaction: the next registered one in turn, else the next
    /// one in turn (the request waits for it).
    pub(super) fn pick(&mut self) -> Option<u64> {
        let n = self.list.len() as u64;
        if n == 0 {
            return None;
        }
        for i in 0..n {
            let id = (self.next + i) % n;
            if self.ready_conn(id).is_some() {
                self.next = id + 1;
                return Some(id);
            }
        }
        let id = self.next % n;
        self.next = id + 1;
        Some(id)
    }

    /// The connection of coordinator `id`, when registered.
    pub(super) fn ready_conn(&self, id: u64) -> Option<ConnectionId> {
        self.get(id)?.link.as_ref()?.ready_conn()
    }

    /// Whether coordinator `id` exists (once discovered).
    pub(super) fn exists(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    fn get(&self, id: u64) -> Option<&Coordinator> {
        self.list.get(usize::try_from(id).ok()?)
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Coordinator> {
        self.list.get_mut(usize::try_from(id).ok()?)
    }

    /// The discovery's answer (`which == None`) or a coordinator's lookup.
    pub(super) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        which: Option<u64>,
        op: u64,
        result: OpResult,
    ) {
        let Some(id) = which else {
            self.discovered_with(sh, now, op, result);
            return;
        };
        let Some(c) = self.get_mut(id) else {
            return;
        };
        let Some(link) = c.link.as_mut() else {
            return;
        };
        let step = link.op_done(sh, now, op, result);
        self.step(sh, now, id, step);
    }

    fn discovered_with(&mut self, sh: &mut Shared, now: Instant, op: u64, result: OpResult) {
        if self.discovery != (Discovery::Resolving { op }) {
            return;
        }
        match result {
            OpResult::PartitionedMetadata(Ok(n)) => {
                let base = TopicName::parse(ASSIGN_TOPIC).ok();
                let topics: Vec<String> = match (n, base) {
                    (0, _) | (_, None) => vec![ASSIGN_TOPIC.to_string()],
                    (n, Some(t)) => (0..n).map(|i| t.partition_name(i).to_string()).collect(),
                };
                let c = &sh.env.config;
                self.list = topics
                    .into_iter()
                    .map(|topic| Coordinator {
                        topic,
                        link: None,
                        retry_at: now,
                        backoff: Backoff::new(c.backoff_initial, c.backoff_max),
                    })
                    .collect();
                self.discovery = Discovery::Done;
                self.backoff.reset();
                for id in 0..self.list.len() as u64 {
                    self.connect(sh, now, id);
                }
            }
            OpResult::PartitionedMetadata(Err(e)) => {
                self.last_error = Some(e.to_string());
                let delay = self.backoff.next_delay(&mut sh.env.rng);
                self.discovery = Discovery::Waiting {
                    until: time::after(now, delay),
                };
            }
            _ => {}
        }
    }

    /// Starts (again) the lookup and registration of coordinator `id`.
    fn connect(&mut self, sh: &mut Shared, now: Instant, id: u64) {
        let Some(c) = self.get_mut(id) else {
            return;
        };
        let mut link = Link::new(
            Resource::Coordinator(id),
            Arc::from(c.topic.as_str()),
            sh,
            now,
        );
        let step = link.handle_timeout(sh, now);
        c.link = Some(link);
        self.step(sh, now, id, step);
    }

    fn step(&mut self, sh: &mut Shared, now: Instant, id: u64, step: Step) {
        match step {
            Step::Idle => {}
            Step::Register(conn) => self.register(sh, now, id, conn),
            Step::Failed(e) => self.reset(sh, now, id, &e),
        }
    }

    /// Sends TC_CLIENT_CONNECT for coordinator `id` on `conn`.
    fn register(&mut self, sh: &mut Shared, now: Instant, id: u64, conn: ConnectionId) {
        let Some(link) = self.get_mut(id).and_then(|c| c.link.as_mut()) else {
            return;
        };
        let rid = sh.env.next_request_id();
        let deadline = link.request_deadline(&sh.env, now);
        let cmd = pb::BaseCommand::from(pb::CommandTcClientConnectRequest {
            request_id: rid,
            tc_id: id,
        });
        sh.conns.send_request_until(
            conn,
            rid,
            &cmd,
            RequestKind::Coordinator(id),
            Some(deadline),
        );
        link.registering(conn, rid);
    }

    /// Forgets coordinator `id`'s registration after `error`; it is looked up again after a
    /// backoff (it may have moved to another broker, or still be loading).
    pub(super) fn reset(&mut self, sh: &mut Shared, now: Instant, id: u64, error: &Error) {
        self.last_error = Some(error.to_string());
        let Some(c) = self.get_mut(id) else {
            return;
        };
        if let Some(mut link) = c.link.take() {
            link.abandon(sh);
        }
        let delay = c.backoff.next_delay(&mut sh.env.rng);
        c.retry_at = time::after(now, delay);
    }

    /// A coordinator request's answer: the registration's is handled here.
    pub(super) fn answer(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        id: u64,
        request_id: u64,
        result: Result<pb::BaseCommand, Error>,
    ) -> Answer {
        let registering = self.get(id).and_then(|c| c.link.as_ref()).is_some_and(|l| {
            l.phase
                == Phase::Registering {
                    conn,
                    request: request_id,
                }
        });
        if !registering {
            return Answer::NotMine;
        }
        let error = match result {
            Ok(cmd) => match cmd.tc_client_connect_response {
                Some(r) if r.error.is_some() => Some(Error::server(
                    r.error.unwrap_or(0),
                    r.message.unwrap_or_default(),
                )),
                _ => None,
            },
            Err(e) => Some(e),
        };
        match error {
            None => {
                if let Some(c) = self.get_mut(id) {
                    c.backoff.reset();
                    if let Some(link) = c.link.as_mut() {
                        let _first = link.registered(conn);
                    }
                }
                Answer::Ready(id)
            }
            Some(e) => {
                if e.server_code() == Some(ServerErrorCode::NotAllowedError) {
                    self.disabled = true;
                }
                self.reset(sh, now, id, &e);
                Answer::Failed
            }
        }
    }

    /// A connection finished its handshake: the coordinators waiting for it register.
    pub(super) fn connection_ready(&mut self, sh: &mut Shared, now: Instant, conn: ConnectionId) {
        for id in 0..self.list.len() as u64 {
            let step = match self.get_mut(id).and_then(|c| c.link.as_mut()) {
                Some(link) => link.connection_ready(conn),
                None => continue,
            };
            self.step(sh, now, id, step);
        }
    }

    /// A connection dropped: the coordinators on it reconnect. Returns whether any was on it.
    pub(super) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
    ) -> bool {
        let mut any = false;
        for id in 0..self.list.len() as u64 {
            let step = match self.get_mut(id).and_then(|c| c.link.as_mut()) {
                Some(link) if link.conn() == Some(conn) => {
                    any = true;
                    link.connection_lost(sh, now, conn, reason)
                }
                _ => continue,
            };
            self.step(sh, now, id, step);
        }
        any
    }

    /// The discovery's retry, and each coordinator's backoff or creation deadline.
    pub(super) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) {
        if let Discovery::Waiting { until } = self.discovery {
            if until <= now {
                self.resolve(sh, now);
            }
        }
        for id in 0..self.list.len() as u64 {
            let (retry, step) = match self.get_mut(id) {
                Some(c) => match c.link.as_mut() {
                    None => (c.retry_at <= now, Step::Idle),
                    Some(link) => (false, link.handle_timeout(sh, now)),
                },
                None => continue,
            };
            if retry {
                self.connect(sh, now, id);
            } else {
                self.step(sh, now, id, step);
            }
        }
    }

    /// The earliest retry or link deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let mut next = match self.discovery {
            Discovery::Waiting { until } => Some(until),
            _ => None,
        };
        for c in &self.list {
            let t = match &c.link {
                None => Some(c.retry_at),
                Some(link) => link.next_timeout(),
            };
            next = time::earliest(next, t);
        }
        next
    }

    /// Stops everything in flight (client shutdown).
    pub(super) fn shutdown(&mut self, sh: &mut Shared) {
        if let Discovery::Resolving { op } = self.discovery {
            sh.lookups.cancel(op);
        }
        self.discovery = Discovery::Idle;
        for c in &mut self.list {
            if let Some(mut link) = c.link.take() {
                link.abandon(sh);
            }
        }
        self.list.clear();
    }
}
