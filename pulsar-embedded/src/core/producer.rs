//! Producers: registration with `last_sequence_id`, SEND with optional deduplication and injected
//! persistence failures, delayed persistence and receipts.

use bytes::BytesMut;
use pulsar_proto::{encode_command, encode_send, pb, Payload};

use super::conn::ProducerReg;
use super::store::Entry;
use super::topic::{NameHolder, PendingWrite};
use super::{normalize_topic, Cluster, ConnId, ReceivedSend, SendOutcome};

/// Slack the broker's frame decoder allows above `maxMessageSize` (the real broker's
/// `Commands.MESSAGE_SIZE_FRAME_PADDING`): a larger frame closes the connection.
pub(crate) const MESSAGE_SIZE_FRAME_PADDING: usize = 10 * 1024;

/// Whether a message is a chunk other than the last of its message: deduplication only looks at
/// the last chunk (all chunks carry the message's sequence id).
pub(crate) fn non_last_chunk(md: &pb::MessageMetadata) -> bool {
    match (md.chunk_id, md.num_chunks_from_msg) {
        (Some(id), Some(n)) => n > 1 && id != n - 1,
        _ => false,
    }
}

/// How long a broker waits for an old producer's connection to prove alive before dropping it.
const LIVENESS_PROBE: std::time::Duration = std::time::Duration::from_secs(5);

impl Cluster {
    pub(crate) fn handle_producer(&mut self, conn: ConnId, c: &pb::CommandProducer) {
        let topic = normalize_topic(&c.topic);
        let request_id = c.request_id;
        if !self.serves(conn, &topic) {
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::ServiceNotReady,
                "not served here",
            );
            return;
        }
        if !self.may(conn, |r| r.may_produce(&topic)) {
            self.reply_error(
                conn,
                request_id,
                pb::ServerError::AuthorizationError,
                "not authorized to produce to this topic",
            );
            return;
        }
        if let Some(e) = self.quota_refusal(&topic) {
            self.note(format!(
                "{conn} refuses PRODUCER {topic}: backlog quota exceeded"
            ));
            self.reply_error(
                conn,
                request_id,
                e,
                "Cannot create producer on topic with backlog quota exceeded",
            );
            return;
        }
        if self.fault(|f| f.producer_error) {
            let e = self.retriable_error();
            self.note(format!("{conn} inject {e:?} on PRODUCER {topic}"));
            self.reply_error(conn, request_id, e, "injected");
            return;
        }
        if !self.conns.contains_key(&conn) {
            return;
        }
        let schema_version = match self.producer_schema(&topic, c.schema.as_ref()) {
            Ok(v) => v,
            Err(reason) => {
                self.note(format!(
                    "{conn} refuses the schema of PRODUCER {topic}: {reason}"
                ));
                self.reply_error(
                    conn,
                    request_id,
                    pb::ServerError::IncompatibleSchema,
                    &reason,
                );
                return;
            }
        };
        let Some(cn) = self.conns.get(&conn) else {
            return;
        };
        if let Some(reg) = cn.producers.get(&c.producer_id) {
            if reg.topic == topic {
                let name = reg.name.clone();
                self.producer_success(conn, request_id, &topic, name, schema_version);
            } else {
                self.reply_error(
                    conn,
                    request_id,
                    pb::ServerError::ProducerBusy,
                    "producer id in use",
                );
            }
            return;
        }
        let broker = cn.broker;
        self.ensure_loaded(&topic, broker);
        let name = match c.producer_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => {
                self.store.next_name += 1;
                format!("sim-{}", self.store.next_name)
            }
        };
        let epoch = c.epoch.unwrap_or(0);
        let holder = self
            .loaded
            .get(&topic)
            .and_then(|t| t.names.get(&name).copied());
        if let Some(h) = holder {
            let alive = self
                .conns
                .get(&h.conn)
                .is_some_and(|x| x.producers.contains_key(&h.producer_id));
            if alive {
                if h.conn == conn && epoch > h.epoch {
                    // a successor on the same connection replaces the old registration silently
                    if let Some(cn) = self.conns.get_mut(&conn) {
                        cn.producers.remove(&h.producer_id);
                        cn.closed_producers.insert(h.producer_id);
                    }
                } else {
                    self.probe_liveness(h.conn);
                    self.reply_error(
                        conn,
                        request_id,
                        pb::ServerError::ProducerBusy,
                        "producer with this name is already connected",
                    );
                    return;
                }
            }
        }
        if !self.check_access_mode(conn, c, &topic, &name) {
            return;
        }
        let registration = self.next_registration();
        if let Some(t) = self.loaded.get_mut(&topic) {
            t.names.insert(
                name.clone(),
                NameHolder {
                    conn,
                    producer_id: c.producer_id,
                    epoch,
                },
            );
        }
        if let Some(cn) = self.conns.get_mut(&conn) {
            cn.closed_producers.remove(&c.producer_id);
            cn.producers.insert(
                c.producer_id,
                ProducerReg {
                    topic: topic.clone(),
                    name: name.clone(),
                    registration,
                    failed_from: None,
                },
            );
        }
        self.note(format!(
            "{conn} producer p{} {name} on {topic} registration {registration}",
            c.producer_id
        ));
        self.producer_success(conn, request_id, &topic, name, schema_version);
    }

    fn producer_success(
        &mut self,
        conn: ConnId,
        request_id: u64,
        topic: &str,
        name: String,
        schema_version: Option<bytes::Bytes>,
    ) {
        let last = if self.store.dedup {
            self.loaded
                .get(topic)
                .and_then(|t| t.pushed.get(&name))
                .map_or(-1, |s| *s as i64)
        } else {
            -1
        };
        self.write(
            conn,
            pb::CommandProducerSuccess {
                request_id,
                producer_name: name,
                last_sequence_id: Some(last),
                // with `empty_schema_version`, empty without a schema, as Apache Pulsar does: the
                // Java client reads it unconditionally (IllegalStateException otherwise)
                schema_version: schema_version
                    .or_else(|| self.config.empty_schema_version.then(bytes::Bytes::new)),
                topic_epoch: None,
                producer_ready: Some(true),
            }
            .into(),
        );
    }

    /// Applies the producer's access mode (`CommandProducer.producer_access_mode`), as Apache
    /// Pulsar does: a Shared producer is refused while an exclusive one holds the topic or one
    /// waits (ProducerBusy); an Exclusive producer is refused while any other producer is there or
    /// waits (ProducerFenced); a WaitForExclusive producer is answered "not ready" and queued
    /// until the topic is free; ExclusiveWithFencing closes the others. Returns whether the
    /// registration goes on (the exclusive hold is taken then).
    fn check_access_mode(
        &mut self,
        conn: ConnId,
        c: &pb::CommandProducer,
        topic: &str,
        name: &str,
    ) -> bool {
        const SHARED: i32 = 0;
        const WAIT_FOR_EXCLUSIVE: i32 = 2;
        const WITH_FENCING: i32 = 3;
        let mode = c.producer_access_mode.unwrap_or(SHARED);
        let me = (conn, c.producer_id);
        let others: Vec<(ConnId, u64)> = self
            .conns
            .iter()
            .flat_map(|(id, x)| {
                x.producers
                    .iter()
                    .filter(|(_, p)| p.topic == topic)
                    .map(move |(pid, _)| (*id, *pid))
            })
            .filter(|k| *k != me)
            .collect();
        let exclusive = self
            .loaded
            .get(topic)
            .and_then(|t| t.exclusive)
            .filter(|k| others.contains(k));
        let waiting = self
            .loaded
            .get(topic)
            .is_some_and(|t| t.waiting.iter().any(|(wc, w)| (*wc, w.producer_id) != me));
        if mode == WAIT_FOR_EXCLUSIVE && (!others.is_empty() || waiting) {
            // as Apache Pulsar: answered "not ready" now, "ready" once the topic is free
            if let Some(t) = self.loaded.get_mut(topic) {
                t.waiting.push_back((conn, c.clone()));
            }
            self.write(
                conn,
                pb::CommandProducerSuccess {
                    request_id: c.request_id,
                    producer_name: name.to_owned(),
                    last_sequence_id: Some(-1),
                    schema_version: self.config.empty_schema_version.then(bytes::Bytes::new),
                    topic_epoch: None,
                    producer_ready: Some(false),
                }
                .into(),
            );
            return false;
        }
        let refused = match mode {
            SHARED => (exclusive.is_some() || waiting).then_some((
                pb::ServerError::ProducerBusy,
                "topic has an existing exclusive producer",
            )),
            WITH_FENCING => {
                for (oc, pid) in others {
                    self.close_producer_from_broker(oc, pid);
                }
                None
            }
            _ => (!others.is_empty() || waiting).then_some((
                pb::ServerError::ProducerFenced,
                "topic has existing producers",
            )),
        };
        if let Some((error, message)) = refused {
            self.reply_error(conn, c.request_id, error, message);
            return false;
        }
        if mode != SHARED {
            if let Some(t) = self.loaded.get_mut(topic) {
                t.exclusive = Some(me);
            }
        }
        true
    }

    /// CLOSE_PRODUCER from the broker: the client reconnects (or gives up when fenced).
    pub(crate) fn close_producer_from_broker(&mut self, conn: ConnId, pid: u64) {
        let removed = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.producers.remove(&pid));
        let Some(reg) = removed else {
            return;
        };
        if let Some(x) = self.conns.get_mut(&conn) {
            x.closed_producers.insert(pid);
        }
        self.release_name(&reg.topic, &reg.name, conn, pid);
        self.write(
            conn,
            pb::CommandCloseProducer {
                producer_id: pid,
                request_id: u64::MAX,
                assigned_broker_service_url: None,
                assigned_broker_service_url_tls: None,
            }
            .into(),
        );
    }

    /// Whether `conn`'s rights pass `check` (no rules: yes).
    pub(crate) fn may(&self, conn: ConnId, check: impl Fn(&super::RoleRules) -> bool) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.rights.as_ref().is_none_or(check))
    }

    /// Pings `conn` and closes it unless it shows life within [`LIVENESS_PROBE`].
    fn probe_liveness(&mut self, conn: ConnId) {
        let deadline = self.now + LIVENESS_PROBE;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.probe_deadline.is_none() {
            c.probe_deadline = Some(deadline);
            c.probe_started = c.last_input;
            self.write(conn, pb::CommandPing {}.into());
        }
    }

    pub(crate) fn reply_error(
        &mut self,
        conn: ConnId,
        request_id: u64,
        error: pb::ServerError,
        message: &str,
    ) {
        self.write(
            conn,
            pb::CommandError {
                request_id,
                error: error as i32,
                message: message.into(),
            }
            .into(),
        );
    }

    pub(crate) fn retriable_error(&mut self) -> pb::ServerError {
        if self.rng.chance(0.5) {
            pb::ServerError::ServiceNotReady
        } else {
            pb::ServerError::TooManyRequests
        }
    }

    fn send_error(&mut self, conn: ConnId, producer_id: u64, sequence_id: u64, message: &str) {
        self.write(
            conn,
            pb::CommandSendError {
                producer_id,
                sequence_id,
                error: pb::ServerError::PersistenceError as i32,
                message: message.into(),
            }
            .into(),
        );
    }

    pub(crate) fn handle_send(&mut self, conn: ConnId, c: &pb::CommandSend, payload: Payload) {
        let Some(cn) = self.conns.get(&conn) else {
            return;
        };
        let Some(reg) = cn.producers.get(&c.producer_id).cloned() else {
            if cn.closed_producers.contains(&c.producer_id) {
                return;
            }
            self.close_conn(conn, "SEND for a producer that is not ready");
            return;
        };
        let seq = c.sequence_id;
        let highest = c.highest_sequence_id.unwrap_or(0).max(seq);
        let num_messages = c.num_messages.unwrap_or(1);
        let mut record = ReceivedSend {
            topic: reg.topic.clone(),
            producer_name: reg.name.clone(),
            sequence_id: seq,
            registration: reg.registration,
            at: self.now,
            outcome: SendOutcome::Accepted,
        };
        if let Some(from) = reg.failed_from {
            if (seq, payload.metadata.chunk_id) != from {
                self.send_error(
                    conn,
                    c.producer_id,
                    seq,
                    "earlier message failed to persist",
                );
                record.outcome = SendOutcome::Failed;
                self.record_send(record);
                return;
            }
            if let Some(r) = self
                .conns
                .get_mut(&conn)
                .and_then(|x| x.producers.get_mut(&c.producer_id))
            {
                r.failed_from = None;
            }
        }
        let topic = reg.topic.clone();
        if !self.loaded.contains_key(&topic) {
            return;
        }
        let mut payload = payload;
        if !self.txn_send_check(conn, c, &mut payload) {
            record.outcome = SendOutcome::Failed;
            self.record_send(record);
            return;
        }
        let max = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        if c.is_chunk != Some(true) && payload.data.len().saturating_add(4096) > max {
            // headers and payload: the frame without the command
            let mut frame = BytesMut::new();
            encode_send(c, &payload.metadata, &payload.data, &mut frame);
            let mut command = BytesMut::new();
            encode_command(&pb::BaseCommand::from(c.clone()), &mut command);
            let size = frame.len().saturating_sub(command.len());
            if size > max {
                self.refuse_too_big(conn, c, size, max);
                record.outcome = SendOutcome::Failed;
                self.record_send(record);
                return;
            }
        }
        let chunk = non_last_chunk(&payload.metadata);
        if self.store.dedup && !chunk {
            let pushed = self
                .loaded
                .get(&topic)
                .and_then(|t| t.pushed.get(&reg.name).copied());
            if pushed.is_some_and(|p| seq <= p) {
                let persisted = self
                    .store
                    .topics
                    .get(&topic)
                    .and_then(|l| l.persisted_seq.get(&reg.name).copied());
                if persisted.is_some_and(|p| seq <= p) {
                    self.write(
                        conn,
                        pb::CommandSendReceipt {
                            producer_id: c.producer_id,
                            sequence_id: seq,
                            message_id: Some(pb::MessageIdData {
                                ledger_id: u64::MAX,
                                entry_id: u64::MAX,
                                ..Default::default()
                            }),
                            highest_sequence_id: Some(highest),
                        }
                        .into(),
                    );
                    record.outcome = SendOutcome::Duplicate;
                } else {
                    self.send_error(
                        conn,
                        c.producer_id,
                        seq,
                        "cannot determine whether the message is a duplicate at this time",
                    );
                    record.outcome = SendOutcome::DupUnknown;
                }
                self.record_send(record);
                return;
            }
        }
        if self.fault(|f| f.persist_error) {
            self.fail_registration(conn, c.producer_id, &reg, seq, payload.metadata.chunk_id);
            record.outcome = SendOutcome::Failed;
            self.record_send(record);
            return;
        }
        let latency = {
            let (lo, hi) = self.config.persist_latency;
            self.rng.duration(lo, hi)
        };
        let now = self.now;
        let Some(t) = self.loaded.get_mut(&topic) else {
            return;
        };
        if self.store.dedup && !chunk {
            let e = t.pushed.entry(reg.name.clone()).or_insert(highest);
            *e = (*e).max(highest);
        }
        let ready_at = t
            .pending
            .back()
            .map_or(now + latency, |w| w.ready_at.max(now + latency));
        t.msg_in += u64::try_from(num_messages.max(1)).unwrap_or(1);
        t.bytes_in += payload.data.len() as u64;
        t.pending.push_back(PendingWrite {
            ready_at,
            conn,
            producer_id: c.producer_id,
            registration: reg.registration,
            producer_name: reg.name.clone(),
            sequence_id: seq,
            highest_sequence_id: highest,
            num_messages,
            metadata: payload.metadata,
            payload: payload.data,
        });
        self.record_send(record);
    }

    /// Keeps a SEND for [`received_sends`](Cluster::received_sends) when history is on.
    fn record_send(&mut self, record: ReceivedSend) {
        if self.config.history {
            self.sends.push(record);
        }
    }

    /// The broker's size check on publish (skipped for chunks): NotAllowedError.
    fn refuse_too_big(&mut self, conn: ConnId, c: &pb::CommandSend, size: usize, max: usize) {
        self.note(format!(
            "{conn} refuse SEND p{} seq {}: {size} bytes > {max}",
            c.producer_id, c.sequence_id
        ));
        self.write(
            conn,
            pb::CommandSendError {
                producer_id: c.producer_id,
                sequence_id: c.sequence_id,
                error: pb::ServerError::NotAllowedError as i32,
                message: "Exceed maximum message size".into(),
            }
            .into(),
        );
    }

    /// A storage failure: this SEND and every unpersisted one of the registration fail, and so
    /// will later ones until the client resends from the first failed entry (sequence id, and
    /// chunk id for a chunk).
    fn fail_registration(
        &mut self,
        conn: ConnId,
        producer_id: u64,
        reg: &ProducerReg,
        seq: u64,
        chunk: Option<i32>,
    ) {
        let topic = reg.topic.clone();
        let mut failed: Vec<(u64, Option<i32>)> = Vec::new();
        if let Some(t) = self.loaded.get_mut(&topic) {
            t.pending.retain(|w| {
                if w.registration == reg.registration {
                    failed.push((w.sequence_id, w.metadata.chunk_id));
                    false
                } else {
                    true
                }
            });
        }
        let first = failed
            .first()
            .copied()
            .unwrap_or((seq, chunk))
            .min((seq, chunk));
        self.note(format!(
            "{conn} inject PersistenceError on p{producer_id} seq {seq} ({} pending fail too)",
            failed.len()
        ));
        for (s, _) in failed {
            self.send_error(conn, producer_id, s, "injected persistence failure");
        }
        self.send_error(conn, producer_id, seq, "injected persistence failure");
        if let Some(r) = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.producers.get_mut(&producer_id))
        {
            r.failed_from = Some(first);
        }
        self.recompute_pushed(&topic, &reg.name);
    }

    fn recompute_pushed(&mut self, topic: &str, name: &str) {
        if !self.store.dedup {
            return;
        }
        let persisted = self
            .store
            .topics
            .get(topic)
            .and_then(|l| l.persisted_seq.get(name).copied());
        let Some(t) = self.loaded.get_mut(topic) else {
            return;
        };
        let pending = t
            .pending
            .iter()
            .filter(|w| w.producer_name == name && !non_last_chunk(&w.metadata))
            .map(|w| w.highest_sequence_id)
            .max();
        match persisted.max(pending) {
            Some(v) => {
                t.pushed.insert(name.to_owned(), v);
            }
            None => {
                t.pushed.remove(name);
            }
        }
    }

    pub(crate) fn handle_close_producer(&mut self, conn: ConnId, c: &pb::CommandCloseProducer) {
        let removed = self
            .conns
            .get_mut(&conn)
            .and_then(|x| x.producers.remove(&c.producer_id));
        if let Some(reg) = removed {
            if let Some(x) = self.conns.get_mut(&conn) {
                x.closed_producers.insert(c.producer_id);
            }
            self.release_name(&reg.topic, &reg.name, conn, c.producer_id);
            self.wake_waiting(&reg.topic);
        }
        for t in self.loaded.values_mut() {
            t.waiting
                .retain(|(wc, w)| (*wc, w.producer_id) != (conn, c.producer_id));
        }
        self.write(
            conn,
            pb::CommandSuccess {
                request_id: c.request_id,
                schema: None,
            }
            .into(),
        );
    }

    /// Registers the first WaitForExclusive producer still connected once `topic` has no
    /// producer left.
    pub(crate) fn wake_waiting(&mut self, topic: &str) {
        let busy = self
            .conns
            .values()
            .any(|x| x.producers.values().any(|p| p.topic == topic));
        if busy {
            return;
        }
        loop {
            let Some((conn, cmd)) = self
                .loaded
                .get_mut(topic)
                .and_then(|t| t.waiting.pop_front())
            else {
                return;
            };
            if self.conns.contains_key(&conn) {
                // the others keep waiting, behind it
                let rest = self
                    .loaded
                    .get_mut(topic)
                    .map(|t| std::mem::take(&mut t.waiting))
                    .unwrap_or_default();
                self.handle_producer(conn, &cmd);
                if let Some(t) = self.loaded.get_mut(topic) {
                    let newer = std::mem::replace(&mut t.waiting, rest);
                    t.waiting.extend(newer);
                }
                return;
            }
        }
    }

    pub(crate) fn release_name(&mut self, topic: &str, name: &str, conn: ConnId, pid: u64) {
        if let Some(t) = self.loaded.get_mut(topic) {
            if t.exclusive == Some((conn, pid)) {
                t.exclusive = None;
            }
            if t.names
                .get(name)
                .is_some_and(|h| h.conn == conn && h.producer_id == pid)
            {
                t.names.remove(name);
            }
        }
    }

    /// Persists every write whose latency elapsed, in order, answering receipts.
    pub(crate) fn persist_ready(&mut self) {
        let topics: Vec<String> = self
            .loaded
            .iter()
            .filter(|(_, t)| t.pending.front().is_some_and(|w| w.ready_at <= self.now))
            .map(|(n, _)| n.clone())
            .collect();
        for topic in topics {
            self.persist(&topic, false);
        }
    }

    /// Persists every pending write of `topic` now (before an unload).
    pub(crate) fn flush_pending(&mut self, topic: &str) {
        self.persist(topic, true);
    }

    fn persist(&mut self, topic: &str, all: bool) {
        let now = self.now;
        let mut receipts = Vec::new();
        let mut txn_entries = Vec::new();
        {
            let Some(t) = self.loaded.get_mut(topic) else {
                return;
            };
            let log = self.store.topics.entry(topic.to_owned()).or_default();
            while t.pending.front().is_some_and(|w| all || w.ready_at <= now) {
                let Some(w) = t.pending.pop_front() else {
                    break;
                };
                let entry_id = t.next_entry_id;
                t.next_entry_id += 1;
                if !non_last_chunk(&w.metadata) {
                    let e = log
                        .persisted_seq
                        .entry(w.producer_name.clone())
                        .or_insert(w.highest_sequence_id);
                    *e = (*e).max(w.highest_sequence_id);
                }
                receipts.push((
                    w.conn,
                    w.producer_id,
                    w.registration,
                    w.sequence_id,
                    w.highest_sequence_id,
                    t.ledger_id,
                    entry_id,
                ));
                if let Some(key) =
                    super::txn::txn_of(w.metadata.txnid_most_bits, w.metadata.txnid_least_bits)
                {
                    txn_entries.push((key, log.entries.len()));
                }
                log.entries.push(Entry {
                    ledger_id: t.ledger_id,
                    entry_id,
                    producer_name: w.producer_name,
                    sequence_id: w.sequence_id,
                    highest_sequence_id: w.highest_sequence_id,
                    num_messages: w.num_messages,
                    metadata: w.metadata,
                    payload: w.payload,
                    persisted_at: now,
                    registration: w.registration,
                });
            }
        }
        for (key, index) in txn_entries {
            self.txn_persisted(topic, key, index);
        }
        for (conn, pid, registration, seq, highest, ledger_id, entry_id) in receipts {
            let live = self
                .conns
                .get(&conn)
                .and_then(|c| c.producers.get(&pid))
                .is_some_and(|r| r.registration == registration);
            if live {
                self.write(
                    conn,
                    pb::CommandSendReceipt {
                        producer_id: pid,
                        sequence_id: seq,
                        message_id: Some(pb::MessageIdData {
                            ledger_id,
                            entry_id,
                            ..Default::default()
                        }),
                        highest_sequence_id: Some(highest),
                    }
                    .into(),
                );
            }
        }
        let subs: Vec<String> = self
            .loaded
            .get(topic)
            .map(|t| t.subs.keys().cloned().collect())
            .unwrap_or_default();
        for s in subs {
            self.dispatch(topic, &s);
        }
    }
}
