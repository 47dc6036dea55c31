//! The part of a producer or consumer that finds its broker and keeps a registration there:
//! lookup → connection → register, and after any loss, backoff → (lookup | assigned broker) → register.
//!
//! The producer and consumer modules own a `Link` each and act on the [`Step`]s it returns
//! (`Register`: send PRODUCER / SUBSCRIBE on that connection; `Failed`: give up).

use std::sync::Arc;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::deadline::Deadline;
use crate::env::Env;
use crate::error::Error;
use crate::event::{Event, LookupResult, Resource};
use crate::handle::ConnectionId;
use crate::pool::PoolKey;
use crate::request::{OpKind, OpResult, Owner};
use crate::service_url::BrokerAddress;
use crate::shared::Shared;
use crate::stats::ResourceState;
use crate::time;

/// Where a link stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting until `until`, then connecting to `direct` (an assigned broker) or looking up.
    Waiting {
        until: Instant,
        direct: Option<Box<PoolKey>>,
    },
    /// Lookup operation `op` in flight.
    LookingUp { op: u64 },
    /// Waiting for `conn`'s handshake.
    Connecting { conn: ConnectionId },
    /// Registration request `request` in flight on `conn`.
    Registering { conn: ConnectionId, request: u64 },
    /// Registered on `conn`.
    Ready { conn: ConnectionId },
    /// Close request `request` in flight on `conn`.
    Closing { conn: ConnectionId, request: u64 },
}

/// What the owner must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub(crate) enum Step {
    /// Nothing now.
    Idle,
    /// Send the registration command on `conn` (then call [`Link::registering`]).
    Register(ConnectionId),
    /// Give up: creation failed or a fatal error occurred.
    Failed(Error),
}

/// Lookup, connection and re-registration state of one producer or consumer.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) resource: Resource,
    /// The full topic name (the client's shared copy).
    pub(crate) topic: Arc<str>,
    pub(crate) phase: Phase,
    backoff: Backoff,
    /// Set once the first registration succeeded.
    pub(crate) ever_ready: bool,
    /// Initial creation fails at this deadline, whatever is in flight (retriable errors are retried
    /// until then, never waiting past it).
    deadline: Deadline,
    /// Lookups go here instead of the service URL (after a topic migration).
    lookup_via: Option<Box<PoolKey>>,
    /// While waiting after failing to reach this address (a broker or the proxy): a connection
    /// that reaches it again ends the wait at once (see [`address_up`](Self::address_up)).
    retry_when_up: Option<Box<BrokerAddress>>,
    /// Re-registrations after a loss.
    pub(crate) reconnects: u64,
}

impl Link {
    pub(crate) fn new(resource: Resource, topic: Arc<str>, sh: &Shared, now: Instant) -> Link {
        Link {
            resource,
            topic,
            phase: Phase::Waiting {
                until: now,
                direct: None,
            },
            backoff: Backoff::new(sh.env.config.backoff_initial, sh.env.config.backoff_max),
            ever_ready: false,
            deadline: Deadline::new(now, sh.env.config.operation_timeout),
            lookup_via: None,
            retry_when_up: None,
            reconnects: 0,
        }
    }

    fn owner(&self) -> Owner {
        match self.resource {
            Resource::Producer(p) => Owner::Producer(p),
            Resource::Consumer(c) => Owner::Consumer(c),
            Resource::Coordinator(n) => Owner::Coordinator(Some(n)),
        }
    }

    /// The connection the link is on (or waiting for).
    pub(crate) fn conn(&self) -> Option<ConnectionId> {
        match self.phase {
            Phase::Connecting { conn }
            | Phase::Registering { conn, .. }
            | Phase::Ready { conn }
            | Phase::Closing { conn, .. } => Some(conn),
            _ => None,
        }
    }

    /// The connection, when registered.
    pub(crate) fn ready_conn(&self) -> Option<ConnectionId> {
        match self.phase {
            Phase::Ready { conn } => Some(conn),
            _ => None,
        }
    }

    pub(crate) fn state(&self) -> ResourceState {
        match self.phase {
            Phase::Waiting { .. } => ResourceState::Waiting,
            Phase::LookingUp { .. } => ResourceState::LookingUp,
            Phase::Connecting { .. } => ResourceState::Connecting,
            Phase::Registering { .. } => ResourceState::Registering,
            Phase::Ready { .. } => ResourceState::Ready,
            Phase::Closing { .. } => ResourceState::Closing,
        }
    }

    /// Ends initial creation by `limit` at the latest: the deadline of the application's operation
    /// this link is part of (a partition of a producer or consumer being created).
    pub(crate) fn end_creation_by(&mut self, limit: Instant) {
        self.deadline.limit(limit);
    }

    /// When the link wants [`handle_timeout`](Self::handle_timeout): the end of a backoff wait
    /// (never after the creation deadline), and during creation the deadline itself while a
    /// connection is awaited (a lookup and a registration request carry that deadline themselves).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting { until, .. } => Some(until),
            Phase::Connecting { .. } if !self.ever_ready => Some(self.deadline.at()),
            _ => None,
        }
    }

    /// Starts the next attempt once the wait is over; during creation, fails at the deadline.
    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant) -> Step {
        let expired = !self.ever_ready && self.deadline.expired(now);
        match &self.phase {
            Phase::Waiting { .. } | Phase::Connecting { .. } if expired => {
                self.detach(sh);
                Step::Failed(self.deadline.error())
            }
            Phase::Waiting { until, direct } if *until <= now => {
                let direct = direct.as_deref().cloned();
                self.start(sh, now, direct)
            }
            _ => Step::Idle,
        }
    }

    /// The deadline of a registration request: the operation timeout, and during creation not
    /// after the creation deadline.
    pub(crate) fn request_deadline(&self, env: &Env, now: Instant) -> Instant {
        let d = time::after(now, env.config.operation_timeout);
        if self.ever_ready {
            d
        } else {
            d.min(self.deadline.at())
        }
    }

    /// A connection to `address` finished its handshake: a link waiting because it could not
    /// reach that address tries again now rather than at the end of its backoff (which keeps
    /// growing if this attempt fails too). After an outage the link resumes as soon as the
    /// broker or proxy is back, however long its backoff had grown.
    pub(crate) fn address_up(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        address: &BrokerAddress,
    ) -> Step {
        if self.retry_when_up.as_deref() != Some(address) {
            return Step::Idle;
        }
        match &self.phase {
            Phase::Waiting { until, direct } if *until > now => {
                let direct = direct.as_deref().cloned();
                self.start(sh, now, direct)
            }
            _ => Step::Idle,
        }
    }

    fn start(&mut self, sh: &mut Shared, now: Instant, direct: Option<PoolKey>) -> Step {
        self.retry_when_up = None;
        if let Some(key) = direct {
            return self.connect(sh, now, key);
        }
        let limit = (!self.ever_ready).then(|| self.deadline.at());
        let op = sh.start_op_until(
            now,
            self.owner(),
            OpKind::Lookup {
                topic: self.topic.to_string(),
                authoritative: false,
                redirects: 0,
            },
            self.lookup_via.as_deref().cloned(),
            limit,
        );
        // The op may have finished synchronously (client shut): its result is already queued.
        self.phase = Phase::LookingUp { op };
        Step::Idle
    }

    fn connect(&mut self, sh: &mut Shared, now: Instant, key: PoolKey) -> Step {
        let hint = match self.resource {
            Resource::Producer(p) => p.get(),
            Resource::Consumer(c) => c.get(),
            Resource::Coordinator(n) => n,
        };
        let conn = sh
            .conns
            .connection_for(now, &mut sh.env, &mut sh.out, &key, Some(hint));
        self.attach(sh, conn);
        if sh.conns.is_ready(conn) {
            Step::Register(conn)
        } else {
            self.phase = Phase::Connecting { conn };
            Step::Idle
        }
    }

    fn attach(&self, sh: &mut Shared, conn: ConnectionId) {
        match self.resource {
            Resource::Producer(p) => sh.conns.attach_producer(conn, p),
            Resource::Consumer(c) => sh.conns.attach_consumer(conn, c),
            // The transactions module follows its coordinators' connections itself.
            Resource::Coordinator(_) => {}
        }
    }

    /// Leaves the current connection (it no longer routes broker commands to us).
    pub(crate) fn detach(&self, sh: &mut Shared) {
        if let Some(conn) = self.conn() {
            match self.resource {
                Resource::Producer(p) => sh.conns.detach_producer(conn, p),
                Resource::Consumer(c) => sh.conns.detach_consumer(conn, c),
                Resource::Coordinator(_) => {}
            }
        }
    }

    /// A lookup finished.
    pub(crate) fn op_done(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        op: u64,
        result: OpResult,
    ) -> Step {
        if self.phase != (Phase::LookingUp { op }) {
            return Step::Idle;
        }
        match result {
            OpResult::Lookup(Ok(LookupResult {
                broker, connect_to, ..
            })) => self.connect(
                sh,
                now,
                PoolKey {
                    logical: broker,
                    physical: connect_to,
                },
            ),
            OpResult::Lookup(Err(e)) => self.failure(sh, now, e),
            _ => Step::Idle,
        }
    }

    /// A connection finished its handshake.
    pub(crate) fn connection_ready(&mut self, conn: ConnectionId) -> Step {
        if self.phase == (Phase::Connecting { conn }) {
            Step::Register(conn)
        } else {
            Step::Idle
        }
    }

    /// The registration request was sent.
    pub(crate) fn registering(&mut self, conn: ConnectionId, request: u64) {
        self.phase = Phase::Registering { conn, request };
    }

    /// The registration succeeded. Returns true the first time.
    pub(crate) fn registered(&mut self, conn: ConnectionId) -> bool {
        self.phase = Phase::Ready { conn };
        self.backoff.reset();
        let first = !self.ever_ready;
        self.ever_ready = true;
        first
    }

    /// The close request was sent.
    pub(crate) fn closing(&mut self, conn: ConnectionId, request: u64) {
        self.phase = Phase::Closing { conn, request };
    }

    /// A failure (lookup error, registration error or timeout): retry after a backoff, or give up
    /// when the error is fatal or initial creation ran out of time.
    pub(crate) fn failure(&mut self, sh: &mut Shared, now: Instant, error: Error) -> Step {
        self.detach(sh);
        if self.is_fatal(&error) {
            return Step::Failed(error);
        }
        if !self.ever_ready {
            if self.deadline.expired(now) {
                return Step::Failed(self.deadline.expire_with(&error));
            }
            self.deadline.record(&error);
        }
        self.wait(&mut sh.env, now, None);
        self.retry_when_up = error.unreachable_address().cloned().map(Box::new);
        Step::Idle
    }

    /// Whether `error` ends the link at once. A server that is not a Pulsar broker fails creation
    /// (every retry would meet it again), but a link registered before keeps trying: the broker it
    /// had may come back behind the same address (a proxy or load balancer answering HTTP meanwhile).
    fn is_fatal(&self, error: &Error) -> bool {
        let keep_trying =
            error.is_retriable() || (self.ever_ready && matches!(error, Error::NotPulsar { .. }));
        !keep_trying
    }

    fn wait(&mut self, env: &mut Env, now: Instant, direct: Option<PoolKey>) {
        let until = if direct.is_some() {
            now
        } else {
            let delay = self.backoff.next_delay(&mut env.rng);
            if self.ever_ready {
                time::after(now, delay)
            } else {
                self.deadline.retry_at(now, delay)
            }
        };
        self.phase = Phase::Waiting {
            until,
            direct: direct.map(Box::new),
        };
    }

    /// The connection dropped. Returns whether the link was on it (and is now waiting to reconnect).
    pub(crate) fn connection_lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        conn: ConnectionId,
        reason: &Error,
    ) -> Step {
        if self.conn() != Some(conn) {
            return Step::Idle;
        }
        if self.is_fatal(reason) {
            // e.g. the broker rejected the credentials during the handshake
            self.detach(sh);
            return Step::Failed(reason.clone());
        }
        self.lost(sh, now, reason.clone(), None)
    }

    /// The broker closed the registration (CLOSE_PRODUCER / CLOSE_CONSUMER), possibly naming the broker
    /// that now owns the topic.
    pub(crate) fn closed_by_broker(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        assigned: Option<BrokerAddress>,
    ) -> Step {
        self.detach(sh);
        let direct = assigned.map(|broker| self.key_for(sh, broker));
        if let Some(key) = &direct {
            sh.out.events.push_back(Event::TopicMoved {
                resource: self.resource,
                to: key.logical.clone(),
            });
        }
        self.lost(sh, now, Error::ClosedByBroker, direct)
    }

    /// The topic moved to another cluster (TOPIC_MIGRATED): look it up there from now on.
    pub(crate) fn migrated(&mut self, sh: &mut Shared, now: Instant, to: BrokerAddress) -> Step {
        self.detach(sh);
        sh.out.events.push_back(Event::TopicMoved {
            resource: self.resource,
            to: to.clone(),
        });
        self.lookup_via = Some(Box::new(PoolKey::direct(to)));
        let step = self.lost(sh, now, Error::ClosedByBroker, None);
        if matches!(step, Step::Failed(_)) {
            return step;
        }
        // No backoff before the first lookup in the new cluster.
        self.start(sh, now, None)
    }

    fn lost(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        reason: Error,
        direct: Option<PoolKey>,
    ) -> Step {
        if !self.ever_ready {
            if self.deadline.expired(now) {
                return Step::Failed(self.deadline.expire_with(&reason));
            }
            self.deadline.record(&reason);
        }
        if self.ever_ready {
            self.reconnects += 1;
            sh.env.counters.reconnects += 1;
            match self.resource {
                Resource::Producer(producer) => {
                    sh.out.events.push_back(Event::ProducerReconnecting {
                        producer,
                        reason: reason.clone(),
                    })
                }
                Resource::Consumer(consumer) => {
                    sh.out.events.push_back(Event::ConsumerReconnecting {
                        consumer,
                        reason: reason.clone(),
                    })
                }
                Resource::Coordinator(_) => {}
            }
        }
        match direct {
            // The broker named the new owner: go there at once.
            Some(key) => self.start(sh, now, Some(key)),
            None => {
                self.wait(&mut sh.env, now, None);
                self.retry_when_up = reason.unreachable_address().cloned().map(Box::new);
                Step::Idle
            }
        }
    }

    /// The address to reach `broker`: through the same proxy if the current connection is proxied
    /// (which, after a migration, is not the service URL's).
    fn key_for(&self, sh: &Shared, broker: BrokerAddress) -> PoolKey {
        let proxy = self
            .conn()
            .and_then(|c| sh.conns.connection(c))
            .filter(|c| c.key.is_proxied())
            .map(|c| c.key.physical.clone());
        match proxy {
            Some(physical) => PoolKey {
                logical: broker,
                physical,
            },
            None => PoolKey::direct(broker),
        }
    }

    /// Cancels whatever is in flight (the owner is going away).
    pub(crate) fn abandon(&mut self, sh: &mut Shared) {
        if let Phase::LookingUp { op } = self.phase {
            sh.lookups.cancel(op);
        }
        self.detach(sh);
    }
}
