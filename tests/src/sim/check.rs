//! End-of-run invariants over the broker's log and the application's records.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use pulsar_core::compression::{decompress, CompressionType};
use pulsar_proto::{batch, pb};

use crate::sim::app::{parse_payload, short, ProducerModel, SubRecord};
use crate::sim::broker::{ModelCluster, Store, TopicLog};

/// One message of a topic's log (a batch entry yields several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Log index of its entry.
    pub entry: usize,
    /// `ledger:entry` of its entry.
    pub position: (u64, u64),
    /// Index inside the batch (`None` when not batched).
    pub batch_index: Option<u32>,
    /// The payload as text.
    pub payload: String,
    /// Producer name of the registration that wrote it.
    pub producer_name: String,
    /// Its sequence id.
    pub sequence_id: u64,
    /// The registration that wrote it.
    pub registration: u64,
    /// The uuid of a chunked message.
    pub uuid: Option<String>,
}

/// Decompresses an entry's (or a reassembled chunked message's) payload.
fn decode_payload(
    i: usize,
    metadata: &pb::MessageMetadata,
    payload: Bytes,
) -> Result<Bytes, String> {
    let codec = metadata.compression.unwrap_or(0);
    if codec == 0 {
        return Ok(payload);
    }
    let kind = CompressionType::from_protocol(codec)
        .map_err(|err| format!("entry {i}: codec {codec}: {err}"))?;
    let size = metadata.uncompressed_size.unwrap_or(0) as usize;
    decompress(kind, &payload, size, 64 * 1024 * 1024)
        .map_err(|err| format!("entry {i}: cannot decompress: {err}"))
}

/// A chunked message being put together from the log.
struct Partial {
    next: i32,
    data: BytesMut,
}

/// Every message of a log, in order; `Err` when an entry cannot be decoded.
///
/// A chunked message is one message at the position of its last chunk, once chunks `0..n` of its
/// uuid appear in order (a chunk 0 starts it again: a resend after a reconnection); chunks of a
/// message never completed are not messages.
pub fn log_messages(log: &TopicLog) -> Result<Vec<LogMessage>, String> {
    let mut out = Vec::new();
    let mut partial: BTreeMap<String, Partial> = BTreeMap::new();
    for (i, e) in log.entries.iter().enumerate() {
        let position = (e.ledger_id, e.entry_id);
        let chunks = e.metadata.num_chunks_from_msg.unwrap_or(0);
        if chunks > 1 && e.metadata.num_messages_in_batch.is_none() {
            let uuid = e.metadata.uuid.clone().unwrap_or_default();
            let id = e.metadata.chunk_id.unwrap_or(-1);
            if id == 0 {
                partial.insert(
                    uuid.clone(),
                    Partial {
                        next: 0,
                        data: BytesMut::new(),
                    },
                );
            }
            let Some(p) = partial.get_mut(&uuid) else {
                continue;
            };
            if id < p.next {
                // a copy of a chunk already seen (a resend of a chunk whose receipt was lost)
                continue;
            }
            if id > p.next {
                // a chunk missing: the message cannot be put together from this start
                partial.remove(&uuid);
                continue;
            }
            p.data.extend_from_slice(&e.payload);
            p.next += 1;
            if p.next < chunks {
                continue;
            }
            let data = partial
                .remove(&uuid)
                .map(|p| p.data.freeze())
                .unwrap_or_default();
            let payload = decode_payload(i, &e.metadata, data)?;
            out.push(LogMessage {
                entry: i,
                position,
                batch_index: None,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                producer_name: e.producer_name.clone(),
                sequence_id: e.sequence_id,
                registration: e.registration,
                uuid: Some(uuid),
            });
            continue;
        }
        let payload = decode_payload(i, &e.metadata, e.payload.clone())?;
        match e.metadata.num_messages_in_batch {
            Some(n) => {
                for (k, m) in batch::split(payload, n.max(0) as u32).enumerate() {
                    let m = m.map_err(|err| format!("entry {i}: bad batch: {err}"))?;
                    out.push(LogMessage {
                        entry: i,
                        position,
                        batch_index: Some(k as u32),
                        payload: String::from_utf8_lossy(&m.payload).into_owned(),
                        producer_name: e.producer_name.clone(),
                        sequence_id: m.metadata.sequence_id.unwrap_or(e.sequence_id + k as u64),
                        registration: e.registration,
                        uuid: None,
                    });
                }
            }
            None => out.push(LogMessage {
                entry: i,
                position,
                batch_index: None,
                payload: String::from_utf8_lossy(&payload).into_owned(),
                producer_name: e.producer_name.clone(),
                sequence_id: e.sequence_id,
                registration: e.registration,
                uuid: None,
            }),
        }
    }
    Ok(out)
}

/// The messages of every topic in the store.
pub fn all_messages(store: &Store) -> Result<BTreeMap<String, Vec<LogMessage>>, String> {
    store
        .topics
        .iter()
        .map(|(t, log)| log_messages(log).map(|m| (t.clone(), m)))
        .collect()
}

/// The topic a physical topic belongs to (the partitioned topic of a partition).
pub fn base_topic(physical: &str) -> &str {
    match physical.rsplit_once("-partition-") {
        Some((base, index)) if index.parse::<u32>().is_ok() => base,
        _ => physical,
    }
}

/// Whether the entry at `position` of a topic of `base` (a partition of it, or itself) is a chunk
/// of the chunked message `uuid`.
fn chunk_at(store: &Store, base: &str, uuid: &str, position: (u64, u64)) -> bool {
    store
        .topics
        .iter()
        .filter(|(t, _)| base_topic(t) == base)
        .filter_map(|(_, log)| {
            log.index_of(position.0, position.1)
                .and_then(|i| log.entries.get(i))
        })
        .any(|e| e.metadata.uuid.as_deref() == Some(uuid))
}

/// Checks the log against what the application was told. Returns the violations.
pub fn check_log(store: &Store, dedup: bool, producers: &[ProducerModel]) -> Vec<String> {
    let mut v = Vec::new();
    let logs = match all_messages(store) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    for p in producers {
        let mut by_payload: BTreeMap<&str, Vec<&LogMessage>> = BTreeMap::new();
        for (topic, msgs) in &logs {
            if base_topic(topic) != p.topic {
                continue;
            }
            for m in msgs {
                by_payload.entry(m.payload.as_str()).or_default().push(m);
            }
        }
        for s in &p.sends {
            let Some(Ok(id)) = &s.result else {
                continue;
            };
            let copies = by_payload.get(s.payload.as_str());
            if copies.is_none() {
                v.push(format!(
                    "acknowledged message lost: {} (send {} acked with {id}) is not in the log of {}",
                    short(&s.payload), s.send, p.topic
                ));
                continue;
            }
            if id.ledger_id != u64::MAX {
                let at_id = copies.is_some_and(|c| {
                    c.iter().any(|m| {
                        m.position == (id.ledger_id, id.entry_id)
                            && (id.batch_index < 0 || m.batch_index == Some(id.batch_index as u32))
                    })
                });
                // A chunked message's id is its last receipt, which may name a chunk of an
                // incomplete copy of the message: when a resend's last chunk is answered as a
                // duplicate (`-1:-1`, at once) before the receipts of its earlier chunks (which
                // deduplication does not look at), the receipts cannot be told apart (one sequence
                // id). The id must still name a chunk of this message.
                let at_id = at_id
                    || copies.is_some_and(|c| {
                        c.iter().any(|m| {
                            m.uuid.as_ref().is_some_and(|u| {
                                chunk_at(store, &p.topic, u, (id.ledger_id, id.entry_id))
                            })
                        })
                    });
                if !at_id {
                    v.push(format!(
                        "receipt mismatch: {} acked with id {id}, but that position holds another message",
                        short(&s.payload)
                    ));
                }
            }
        }
    }
    for (topic, msgs) in &logs {
        // duplicates
        let mut seen: BTreeMap<&str, Vec<&LogMessage>> = BTreeMap::new();
        for m in msgs {
            seen.entry(m.payload.as_str()).or_default().push(m);
        }
        for (payload, copies) in &seen {
            if copies.len() < 2 {
                continue;
            }
            if dedup {
                v.push(format!(
                    "duplicate with deduplication on: {} appears {} times in {topic} at {:?}",
                    short(payload),
                    copies.len(),
                    copies.iter().map(|m| m.position).collect::<Vec<_>>()
                ));
            } else {
                let regs: BTreeSet<u64> = copies.iter().map(|m| m.registration).collect();
                if regs.len() < copies.len() {
                    v.push(format!(
                        "duplicate {} in {topic} written twice by one registration (a resend \
                         without re-registering)",
                        short(payload)
                    ));
                }
            }
        }
        if dedup {
            let mut ids: BTreeMap<(&str, u64), usize> = BTreeMap::new();
            for m in msgs {
                *ids.entry((m.producer_name.as_str(), m.sequence_id))
                    .or_default() += 1;
            }
            for ((name, seq), n) in ids {
                if n > 1 {
                    v.push(format!(
                        "duplicate (producer, sequence id) ({name}, {seq}) x{n} in {topic} with \
                         deduplication on"
                    ));
                }
            }
        }
        // per-producer order by first occurrence (per key with key-based batching, where Pulsar
        // only orders messages of the same key)
        let mut first: BTreeSet<&str> = BTreeSet::new();
        let mut last_index: BTreeMap<String, (u32, &str)> = BTreeMap::new();
        let mut last_seq: BTreeMap<u64, u64> = BTreeMap::new();
        for m in msgs {
            if !first.insert(m.payload.as_str()) {
                continue;
            }
            if let Some((label, index)) = parse_payload(m.payload.as_bytes()) {
                let per_key = producers.iter().any(|p| {
                    p.spec.label == label
                        && p.spec.keyed
                        && p.spec.batching.is_some_and(|b| b.key_based)
                });
                let label = if per_key {
                    format!("{label} key k{}", index % 5)
                } else {
                    label
                };
                if let Some((prev, prev_payload)) = last_index.get(&label) {
                    if index <= *prev {
                        v.push(format!(
                            "order: {} persisted after {} in {topic}",
                            short(&m.payload),
                            short(prev_payload)
                        ));
                    }
                }
                last_index.insert(label, (index, m.payload.as_str()));
            }
            // sequence ids must grow along the log for deduplication to work
            if let Some(prev) = last_seq.get(&m.registration).filter(|_| dedup) {
                if m.sequence_id <= *prev {
                    v.push(format!(
                        "order: sequence id {} after {prev} on registration {} in {topic} ({})",
                        m.sequence_id,
                        m.registration,
                        short(&m.payload)
                    ));
                }
            }
            last_seq.insert(m.registration, m.sequence_id);
        }
    }
    v
}

/// What keeps a run from being settled: producers that have not handed over every message or
/// whose sends lack an outcome, subscriptions that never received a persisted message, durable
/// subscriptions with a backlog. Empty once everything settled.
pub fn unsettled(
    producers: &[ProducerModel],
    subs: &BTreeMap<(String, String), SubRecord>,
    cluster: &ModelCluster,
) -> Vec<String> {
    let mut out = Vec::new();
    for p in producers {
        if p.next_index < p.spec.messages {
            out.push(format!(
                "{} handed over only {}/{} messages",
                p.spec.label, p.next_index, p.spec.messages
            ));
        }
        let u = p.unfinished();
        if !u.is_empty() {
            let names: Vec<String> = u.iter().map(|s| short(&s.payload)).collect();
            out.push(format!("{} sends without outcome: {names:?}", p.spec.label));
        }
    }
    let logs = match all_messages(cluster.store()) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    for ((topic, sub), r) in subs {
        let missing: Vec<String> = r
            .physical
            .iter()
            .filter_map(|t| logs.get(t))
            .flatten()
            .map(|x| x.payload.as_str())
            .filter(|p| !r.received.contains(*p))
            .map(short)
            .collect();
        if !missing.is_empty() {
            out.push(format!(
                "subscription {sub} on {topic} never received {} persisted messages, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        if r.durable {
            for t in &r.physical {
                match cluster.backlog(t, sub) {
                    Some(0) => {}
                    Some(n) => {
                        let left = cluster.unacked(t, sub);
                        out.push(format!(
                            "subscription {sub} on {t} has {n} unacknowledged messages in \
                             entries {:?}",
                            &left[..left.len().min(5)]
                        ));
                    }
                    None => {
                        if logs.get(t).is_some_and(|m| !m.is_empty()) {
                            out.push(format!("subscription {sub} on {t} was never created"));
                        }
                    }
                }
            }
        }
    }
    out
}
