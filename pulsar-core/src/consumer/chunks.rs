//! Reassembly of chunked messages (a message too large for one entry, split by the producer into
//! `num_chunks_from_msg` chunks sharing one `uuid`). Chunks of one message arrive in order but may
//! interleave with other messages; the number of messages being reassembled, their size and their
//! age are bounded.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pulsar_proto::pb;

use super::acks::Entry;
use super::message::ReceiveError;
use crate::time;

/// How many rejected (too large) uuids are remembered so their later chunks are dropped quietly.
const REJECTED_MEMORY: usize = 64;

/// How many orphaned chunks are held until they expire; beyond it, the one that expires first is
/// acknowledged at once (a hostile broker cannot grow the consumer's memory without bound).
const HELD_LIMIT: usize = 4096;

#[derive(Debug)]
struct Partial {
    total_chunks: i32,
    declared: usize,
    buf: BytesMut,
    last_chunk: i32,
    ids: Vec<Entry>,
    started: Instant,
}

/// A chunked message given up on: the error for the application and what to do with its chunks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) error: Option<ReceiveError>,
    /// Chunks to acknowledge (they will never make a message).
    pub(crate) ack: Vec<Entry>,
    /// Chunks to have redelivered.
    pub(crate) redeliver: Vec<Entry>,
    /// Chunks whose earlier chunks never came to this consumer (not expired yet). On an in-order
    /// subscription (Exclusive, Failover) a redelivery cannot bring those earlier chunks: see
    /// [`ChunkAssembler::hold`].
    pub(crate) orphaned: Vec<Entry>,
}

/// The outcome of one chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkStep {
    /// Stored; more chunks to come.
    Stored,
    /// The message is whole: its (possibly compressed) payload and the entries of its chunks.
    Complete { data: Bytes, ids: Vec<Entry> },
    /// A chunk seen before; `ack` when it is a second copy in the topic (not a redelivery).
    Duplicate { ack: bool },
    /// The chunk (and maybe its message) is dropped.
    Dropped(Dropped),
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ChunkAssembler {
    max_pending: usize,
    max_size: usize,
    expire: Duration,
    auto_ack_oldest: bool,
    pending: BTreeMap<String, Partial>,
    /// First-chunk arrival order (stale items skipped lazily).
    order: VecDeque<(Instant, String)>,
    rejected: VecDeque<String>,
    /// Orphaned chunks waiting for their expiry time to be acknowledged (see [`Self::hold`]).
    held: BTreeMap<Entry, Instant>,
    /// After [`Self::clear`]: the first entry holding a chunk of a message incomplete then,
    /// whose chunks come again; forgotten once a message at or past it comes (see
    /// [`Self::passed`]).
    refetch: Option<Entry>,
}

impl ChunkAssembler {
    pub(crate) fn new(
        max_pending: usize,
        max_size: usize,
        expire: Duration,
        auto_ack_oldest: bool,
    ) -> Self {
        ChunkAssembler {
            max_pending,
            max_size,
            expire,
            auto_ack_oldest,
            pending: BTreeMap::new(),
            order: VecDeque::new(),
            rejected: VecDeque::new(),
            held: BTreeMap::new(),
            refetch: None,
        }
    }

    /// Takes one chunk (an entry whose metadata has `num_chunks_from_msg > 1`). `expired` says
    /// whether the message was published longer ago than the expiry time. Messages evicted to make
    /// room are appended to `dropped`.
    pub(crate) fn accept(
        &mut self,
        now: Instant,
        entry: Entry,
        meta: &pb::MessageMetadata,
        data: &Bytes,
        expired: bool,
        dropped: &mut Vec<Dropped>,
    ) -> ChunkStep {
        let uuid = meta
            .uuid
            .clone()
            .unwrap_or_else(|| format!("{}-{}", meta.producer_name, meta.sequence_id));
        let chunk_id = meta.chunk_id.unwrap_or(0);
        let total_chunks = meta.num_chunks_from_msg.unwrap_or(1);
        if self.rejected.contains(&uuid) {
            return ChunkStep::Duplicate { ack: true };
        }
        if chunk_id == 0 {
            if let Some(old) = self.pending.remove(&uuid) {
                if !old.ids.contains(&entry) {
                    // The earlier copy was a broken message whose other chunks never came: its
                    // chunks will never be delivered, acknowledge them.
                    dropped.push(Dropped {
                        error: None,
                        ack: old.ids,
                        redeliver: Vec::new(),
                        orphaned: Vec::new(),
                    });
                }
            }
            let declared = meta.total_chunk_msg_size.unwrap_or(0).max(0) as usize;
            if declared > self.max_size {
                self.rejected.push_back(uuid.clone());
                if self.rejected.len() > REJECTED_MEMORY {
                    self.rejected.pop_front();
                }
                return ChunkStep::Dropped(Dropped {
                    error: Some(ReceiveError::ChunkTooLarge {
                        uuid,
                        size: declared,
                        limit: self.max_size,
                    }),
                    ack: vec![entry],
                    redeliver: Vec::new(),
                    orphaned: Vec::new(),
                });
            }
            if self.max_pending > 0 && self.pending.len() >= self.max_pending {
                if let Some(d) = self.evict_oldest() {
                    dropped.push(d);
                }
            }
            self.pending.insert(
                uuid.clone(),
                Partial {
                    total_chunks,
                    declared,
                    buf: BytesMut::with_capacity(declared),
                    last_chunk: -1,
                    ids: Vec::with_capacity(total_chunks.clamp(0, 1024) as usize),
                    started: now,
                },
            );
            self.order.push_back((now, uuid.clone()));
        }
        let Some(p) = self.pending.get_mut(&uuid) else {
            // A chunk without its first chunk: the message cannot be rebuilt from here.
            return ChunkStep::Dropped(lost(uuid, chunk_id, vec![entry], expired));
        };
        if chunk_id != p.last_chunk + 1 {
            if chunk_id <= p.last_chunk {
                return ChunkStep::Duplicate {
                    ack: !p.ids.contains(&entry),
                };
            }
            let mut ids = self
                .pending
                .remove(&uuid)
                .map(|p| p.ids)
                .unwrap_or_default();
            ids.push(entry);
            return ChunkStep::Dropped(lost(uuid, chunk_id, ids, expired));
        }
        if p.buf.len() + data.len() > p.declared || total_chunks != p.total_chunks {
            let mut ids = self
                .pending
                .remove(&uuid)
                .map(|p| p.ids)
                .unwrap_or_default();
            ids.push(entry);
            return ChunkStep::Dropped(Dropped {
                error: Some(ReceiveError::ChunkCorrupt {
                    uuid,
                    reason: "chunks exceed the declared size or disagree on the chunk count",
                }),
                ack: ids,
                redeliver: Vec::new(),
                orphaned: Vec::new(),
            });
        }
        p.buf.extend_from_slice(data);
        p.ids.push(entry);
        p.last_chunk = chunk_id;
        if chunk_id < p.total_chunks - 1 {
            return ChunkStep::Stored;
        }
        let Some(p) = self.pending.remove(&uuid) else {
            return ChunkStep::Stored;
        };
        if p.buf.len() != p.declared {
            return ChunkStep::Dropped(Dropped {
                error: Some(ReceiveError::ChunkCorrupt {
                    uuid,
                    reason: "chunks do not add up to the declared size",
                }),
                ack: p.ids,
                redeliver: Vec::new(),
                orphaned: Vec::new(),
            });
        }
        ChunkStep::Complete {
            data: p.buf.freeze(),
            ids: p.ids,
        }
    }

    /// Makes room: the oldest incomplete message goes, acknowledged with `auto_ack_oldest`,
    /// otherwise its chunks are left to the consumer as orphaned chunks (see [`Self::hold`]):
    /// redelivered one by one on Shared / Key_Shared, and on Exclusive / Failover held until
    /// their message expires, then acknowledged, as they would have been had they stayed
    /// pending. Asking an in-order subscription for a redelivery, as this did before, rewinds it
    /// to the same entries in the same order: the same message is evicted at the same point,
    /// again and again, and the subscription never passes it (bug J, simulation seeds 45130,
    /// 40714, 62597: more than 10 incomplete copies left by a producer's resends to a
    /// deduplicating broker, thousands of redeliveries until the end). Handing them to the ack
    /// timeout does the same one timeout later (seed 101180), so it is not done on in-order
    /// subscriptions either. The Java client leaves them to its ack timeout (`trackMessage`),
    /// or unacknowledged until a reconnection.
    fn evict_oldest(&mut self) -> Option<Dropped> {
        while let Some((_, uuid)) = self.order.pop_front() {
            if let Some(p) = self.pending.remove(&uuid) {
                let acked = self.auto_ack_oldest;
                let (ack, orphaned) = if acked {
                    (p.ids, Vec::new())
                } else {
                    (Vec::new(), p.ids)
                };
                return Some(Dropped {
                    error: Some(ReceiveError::ChunkQueueFull { uuid, acked }),
                    ack,
                    redeliver: Vec::new(),
                    orphaned,
                });
            }
        }
        None
    }

    /// Holds an orphaned chunk — one whose earlier chunks never reached this consumer — until
    /// `deadline` (its message's expiry time), when [`Self::expire`] acknowledges it.
    ///
    /// On an in-order subscription (Exclusive, Failover) asking for a redelivery cannot help:
    /// everything unacknowledged comes again in log order, so the chunk comes again without its
    /// predecessors. That happens when the chunk is a leftover of a producer's resend: a
    /// deduplicating broker that already stored the whole message answers the resent last chunk
    /// as a duplicate but stores the resent chunks before it again (the message itself was
    /// delivered from its first copy). Redelivering anyway rewound the subscription each time the
    /// leftover came back, until it expired: messages the application had received and not yet
    /// acknowledged came again, without any reconnection (simulation seed 52702).
    ///
    /// Returns an entry to acknowledge now when the memory is full (the one due first).
    pub(crate) fn hold(&mut self, entry: Entry, deadline: Instant) -> Option<Entry> {
        let at = self.held.entry(entry).or_insert(deadline);
        *at = (*at).min(deadline);
        if self.held.len() <= HELD_LIMIT {
            return None;
        }
        let first = self
            .held
            .iter()
            .min_by_key(|(e, at)| (**at, **e))
            .map(|(e, _)| *e)?;
        self.held.remove(&first);
        Some(first)
    }

    /// Drops incomplete messages older than the expiry time (their chunks are acknowledged), and
    /// acknowledges the held orphaned chunks whose time has come.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Dropped> {
        let mut out = Vec::new();
        let due: Vec<Entry> = self
            .held
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(e, _)| *e)
            .collect();
        if !due.is_empty() {
            for e in &due {
                self.held.remove(e);
            }
            out.push(Dropped {
                error: None,
                ack: due,
                redeliver: Vec::new(),
                orphaned: Vec::new(),
            });
        }
        while let Some((at, uuid)) = self.order.front() {
            let live = self.pending.get(uuid).is_some_and(|p| p.started == *at);
            if live && !time::passed(*at, self.expire, now) {
                break;
            }
            let uuid = uuid.clone();
            self.order.pop_front();
            if live {
                if let Some(p) = self.pending.remove(&uuid) {
                    out.push(Dropped {
                        error: Some(ReceiveError::ChunkExpired { uuid }),
                        ack: p.ids,
                        redeliver: Vec::new(),
                        orphaned: Vec::new(),
                    });
                }
            }
        }
        out
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        let partial = self
            .order
            .iter()
            .find(|(at, uuid)| self.pending.get(uuid).is_some_and(|p| p.started == *at))
            .map(|(at, _)| time::after(*at, self.expire));
        let held = self.held.values().min().copied();
        match (partial, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets everything (the registration is gone; what was unacknowledged comes again, and
    /// orphaned chunks are held again then, until the same expiry time) but where the chunks of
    /// the incomplete messages begin, until they come again (see [`Self::first_entry`]).
    pub(crate) fn clear(&mut self) {
        self.refetch = self.first_entry();
        self.pending.clear();
        self.order.clear();
        self.held.clear();
    }

    /// The earliest entry holding a chunk of a message still incomplete, or of one that was
    /// when the registration was lost and has not come again yet.
    pub(crate) fn first_entry(&self) -> Option<Entry> {
        let pending = self
            .pending
            .values()
            .filter_map(|p| p.ids.first().copied())
            .min();
        match (pending, self.refetch) {
            (Some(p), Some(r)) => Some(p.min(r)),
            (p, r) => p.or(r),
        }
    }

    /// A message at `entry` came: on an in-order subscription, the chunks expected again before
    /// it (see [`Self::clear`]) came first, or will not come. Returns whether that was still
    /// expected.
    pub(crate) fn passed(&mut self, entry: Entry) -> bool {
        let expected = self.refetch.is_some_and(|r| entry >= r);
        if expected {
            self.refetch = None;
        }
        expected
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

/// A chunk whose predecessors are missing: acknowledged at once when its message has expired,
/// otherwise left to the consumer (held until it expires, or redelivered on Shared).
fn lost(uuid: String, chunk_id: i32, ids: Vec<Entry>, expired: bool) -> Dropped {
    let (ack, orphaned) = if expired {
        (ids, Vec::new())
    } else {
        (Vec::new(), ids)
    };
    Dropped {
        error: Some(ReceiveError::ChunkOutOfOrder { uuid, chunk_id }),
        ack,
        redeliver: Vec::new(),
        orphaned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uuid: &str, chunk: i32, chunks: i32, total: i32) -> pb::MessageMetadata {
        pb::MessageMetadata {
            uuid: Some(uuid.into()),
            chunk_id: Some(chunk),
            num_chunks_from_msg: Some(chunks),
            total_chunk_msg_size: Some(total),
            ..Default::default()
        }
    }

    #[test]
    fn interleaved_messages_reassemble() {
        let now = Instant::now();
        let mut a = ChunkAssembler::new(10, 1 << 20, Duration::from_secs(60), false);
        let mut d = Vec::new();
        let ab = Bytes::from_static(b"ab");
        let cd = Bytes::from_static(b"cd");
        assert_eq!(
            a.accept(now, (1, 1), &meta("x", 0, 2, 4), &ab, false, &mut d),
            ChunkStep::Stored
        );
        assert_eq!(
            a.accept(now, (1, 2), &meta("y", 0, 2, 4), &cd, false, &mut d),
            ChunkStep::Stored
        );
        assert_eq!(
            a.accept(now, (1, 3), &meta("x", 1, 2, 4), &cd, false, &mut d),
            ChunkStep::Complete {
                data: Bytes::from_static(b"abcd"),
                ids: vec![(1, 1), (1, 3)]
            }
        );
        assert_eq!(
            a.accept(now, (1, 2), &meta("y", 0, 2, 4), &cd, false, &mut d),
            ChunkStep::Stored,
            "a redelivered first chunk restarts the message"
        );
        assert!(d.is_empty());
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn limits_expiry_and_order() {
        let now = Instant::now();
        let mut a = ChunkAssembler::new(1, 10, Duration::from_secs(60), true);
        let mut d = Vec::new();
        let b = Bytes::from_static(b"12345");
        a.accept(now, (1, 1), &meta("x", 0, 2, 10), &b, false, &mut d);
        a.accept(now, (1, 2), &meta("y", 0, 2, 10), &b, false, &mut d);
        assert_eq!(d.len(), 1, "x evicted");
        assert_eq!(d[0].ack, vec![(1, 1)]);
        assert!(matches!(
            d[0].error,
            Some(ReceiveError::ChunkQueueFull { acked: true, .. })
        ));
        let step = a.accept(now, (1, 3), &meta("z", 0, 2, 11), &b, false, &mut d);
        assert!(matches!(
            step,
            ChunkStep::Dropped(Dropped {
                error: Some(ReceiveError::ChunkTooLarge { .. }),
                ..
            })
        ));
        let step = a.accept(now, (1, 4), &meta("z", 1, 2, 11), &b, false, &mut d);
        assert_eq!(step, ChunkStep::Duplicate { ack: true });
        let step = a.accept(now, (1, 5), &meta("w", 1, 2, 10), &b, false, &mut d);
        assert!(
            matches!(step, ChunkStep::Dropped(Dropped { error: Some(ReceiveError::ChunkOutOfOrder { .. }), ref orphaned, .. }) if orphaned == &vec![(1, 5)])
        );
        assert_eq!(a.next_timeout(), Some(now + Duration::from_secs(60)));
        assert!(a.expire(now + Duration::from_secs(59)).is_empty());
        let e = a.expire(now + Duration::from_secs(60));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].ack, vec![(1, 2)]);
        assert_eq!(a.next_timeout(), None);
    }
    #[test]
    fn held_orphans_are_acknowledged_when_due_and_forgotten_on_clear() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut a = ChunkAssembler::new(10, 1 << 20, s(60), false);
        assert_eq!(a.hold((1, 5), now + s(20)), None);
        assert_eq!(a.hold((1, 4), now + s(30)), None);
        assert_eq!(
            a.hold((1, 5), now + s(25)),
            None,
            "held once, at its first deadline"
        );
        assert_eq!(a.next_timeout(), Some(now + s(20)));
        assert!(a.expire(now + s(19)).is_empty());
        let due = a.expire(now + s(20));
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].error.clone(), due[0].ack.clone()),
            (None, vec![(1, 5)])
        );
        assert_eq!(a.next_timeout(), Some(now + s(30)));
        a.clear();
        assert_eq!(a.next_timeout(), None);
        for e in 0..HELD_LIMIT as u64 {
            assert_eq!(a.hold((2, e), now + s(100 - e % 7)), None);
        }
        assert_eq!(
            a.hold((3, 0), now + s(200)),
            Some((2, 6)),
            "full: the first due goes"
        );
    }
}
