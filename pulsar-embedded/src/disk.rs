//! The optional on-disk log: an append-only log per topic, in segments, with a chosen fsync policy,
//! and each topic's cursors and deduplication state beside it.
//!
//! Layout under the directory given to [`Builder::storage`](crate::Builder::storage):
//!
//! ```text
//! meta.json                       partitioned topics and schemas
//! topics/<hex of topic name>/
//!     00000000000000000001.seg    records: u32 length, u32 CRC-32 of the body, body
//!     state.json                  cursors (by position) and the highest persisted sequence ids
//! ```
//!
//! Entries are written before the broker answers their SEND (the receipt goes out after the
//! write, and after the fsync with [`FsyncPolicy::Always`]). Cursors are written at most every
//! 100 ms and at shutdown, so after a crash some acknowledged messages may be delivered again (as
//! with Apache Pulsar, whose cursor updates are also lazy). On opening, a final record cut short
//! or damaged (a write the crash interrupted) is truncated and reported in a [`Recovery`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use pulsar_proto::pb;
use serde::{Deserialize, Serialize};

use crate::core::{Cursor, Entry, Store, TopicLog};

/// When the log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// After every write, before the receipts: a receipt means the entry survives a power loss.
    Always,
    /// At most this long after a write (a receipt means the entry survives the broker's crash,
    /// and a power loss older than the interval).
    Interval(Duration),
    /// Never explicitly (the operating system writes back when it likes; a receipt means the
    /// entry survives the broker's crash, not the machine's).
    Never,
}

/// Where and how the on-disk log is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StorageConfig {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// The fsync policy.
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started past this size (retention deletes whole
    /// segments).
    pub segment_bytes: u64,
}

impl StorageConfig {
    /// A log in `dir` with `fsync`, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>, fsync: FsyncPolicy) -> StorageConfig {
        StorageConfig {
            dir: dir.into(),
            fsync,
            segment_bytes: 64 * 1024 * 1024,
        }
    }

    /// These settings with segments of `bytes`.
    pub fn segment_bytes(mut self, bytes: u64) -> StorageConfig {
        self.segment_bytes = bytes.max(1);
        self
    }
}

/// Why the on-disk log cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A state or metadata file is not what this broker writes.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A damaged tail found and cut off when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truncation {
    /// The topic.
    pub topic: String,
    /// The segment file.
    pub segment: PathBuf,
    /// Where the first bad record started (the file's new length).
    pub offset: u64,
    /// Bytes cut off.
    pub dropped_bytes: u64,
    /// What was wrong with the record at `offset`.
    pub reason: String,
}

/// What opening the on-disk log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Topics recovered.
    pub topics: usize,
    /// Entries recovered.
    pub entries: usize,
    /// Damaged tails cut off (a record the crash interrupted).
    pub truncations: Vec<Truncation>,
    /// How long the recovery took.
    pub elapsed: Duration,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    partitions: BTreeMap<String, u32>,
    /// topic → versions (protocol schema type, data in hex)
    schemas: BTreeMap<String, Vec<(i32, String)>>,
}

/// A cursor by positions, so that it survives segments being deleted.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct SavedCursor {
    /// Position of the last entry of the acknowledged prefix.
    last_acked: Option<(u64, u64)>,
    acked: Vec<(u64, u64)>,
    partial: Vec<(u64, u64, Vec<i64>)>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct SavedState {
    persisted_seq: BTreeMap<String, u64>,
    cursors: BTreeMap<String, SavedCursor>,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    number: u64,
    /// Position of its last entry.
    last: Option<(u64, u64)>,
}

#[derive(Debug)]
struct TopicFiles {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: Option<File>,
    len: u64,
    /// Entries of the store's log already written.
    written: usize,
    dirty: bool,
    saved_state: Option<String>,
}

/// The open on-disk log.
#[derive(Debug)]
pub(crate) struct Disk {
    config: StorageConfig,
    topics: BTreeMap<String, TopicFiles>,
    saved_meta: Option<String>,
    last_sync: Instant,
    last_state_save: Instant,
    /// Unix ms at the cluster's time zero (entries keep their write time across restarts).
    unix_zero_ms: u64,
}

fn hex(s: &[u8]) -> String {
    s.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn encode_entry(e: &Entry, unix_zero_ms: u64, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64 + e.payload.len());
    body.extend_from_slice(&e.ledger_id.to_le_bytes());
    body.extend_from_slice(&e.entry_id.to_le_bytes());
    body.extend_from_slice(&e.sequence_id.to_le_bytes());
    body.extend_from_slice(&e.highest_sequence_id.to_le_bytes());
    body.extend_from_slice(&e.num_messages.to_le_bytes());
    body.extend_from_slice(&e.registration.to_le_bytes());
    let at = unix_zero_ms.saturating_add(u64::try_from(e.persisted_at.as_millis()).unwrap_or(0));
    body.extend_from_slice(&at.to_le_bytes());
    let name = e.producer_name.as_bytes();
    body.extend_from_slice(&u32::try_from(name.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(name);
    let md = e.metadata.encode_to_vec();
    body.extend_from_slice(&u32::try_from(md.len()).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&md);
    body.extend_from_slice(&e.payload);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

fn decode_entry(body: &[u8], unix_zero_ms: u64) -> Option<Entry> {
    let mut r = Reader(body);
    let ledger_id = r.u64()?;
    let entry_id = r.u64()?;
    let sequence_id = r.u64()?;
    let highest_sequence_id = r.u64()?;
    let num_messages = i32::from_le_bytes(r.take(4)?.try_into().ok()?);
    let registration = r.u64()?;
    let at = r.u64()?;
    let n = usize::try_from(r.u32()?).ok()?;
    let producer_name = String::from_utf8(r.take(n)?.to_vec()).ok()?;
    let n = usize::try_from(r.u32()?).ok()?;
    let metadata = pb::MessageMetadata::decode(r.take(n)?).ok()?;
    Some(Entry {
        ledger_id,
        entry_id,
        producer_name,
        sequence_id,
        highest_sequence_id,
        num_messages,
        metadata,
        payload: Bytes::copy_from_slice(r.0),
        persisted_at: Duration::from_millis(at.saturating_sub(unix_zero_ms)),
        registration,
    })
}

/// Reads one segment's entries; a damaged tail is cut off and described.
fn read_segment(
    path: &Path,
    unix_zero_ms: u64,
    entries: &mut Vec<Entry>,
) -> Result<Option<(u64, u64, String)>, StorageError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    let mut off = 0usize;
    let bad = loop {
        let rest = data.get(off..).unwrap_or_default();
        if rest.is_empty() {
            break None;
        }
        let Some(head) = rest.get(..8) else {
            break Some("record header cut short");
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let Some(body) = rest.get(8..8 + len) else {
            break Some("record body cut short");
        };
        if crc32fast::hash(body) != crc {
            break Some("record checksum mismatch");
        }
        let Some(e) = decode_entry(body, unix_zero_ms) else {
            break Some("record body undecodable");
        };
        entries.push(e);
        off += 8 + len;
    };
    let Some(reason) = bad else {
        return Ok(None);
    };
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_len(off as u64).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(Some((
        off as u64,
        (data.len() - off) as u64,
        reason.to_owned(),
    )))
}

fn restore_cursor(log: &TopicLog, saved: &SavedCursor) -> Cursor {
    // entries at or before `last_acked` form the acknowledged prefix
    let mark_delete = saved.last_acked.map_or(0, |(l, e)| {
        log.entries
            .partition_point(|x| (x.ledger_id, x.entry_id) <= (l, e))
    });
    let mut c = Cursor::at(mark_delete);
    for (l, e) in &saved.acked {
        if let Some(i) = log.index_of(*l, *e) {
            c.ack(i);
        }
    }
    for (l, e, words) in &saved.partial {
        if let Some(i) = log.index_of(*l, *e) {
            if i >= c.mark_delete && !c.is_acked(i) {
                c.partial.insert(i, words.clone());
            }
        }
    }
    c
}

fn save_cursor(log: &TopicLog, c: &Cursor) -> SavedCursor {
    let pos = |i: usize| log.entries.get(i).map(|e| (e.ledger_id, e.entry_id));
    SavedCursor {
        last_acked: c.mark_delete.checked_sub(1).and_then(pos),
        acked: c.acked.iter().filter_map(|i| pos(*i)).collect(),
        partial: c
            .partial
            .iter()
            .filter_map(|(i, w)| pos(*i).map(|(l, e)| (l, e, w.clone())))
            .collect(),
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, text: &str, sync: bool) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    if sync {
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))
}

impl Disk {
    /// Opens (or creates) the log and recovers its store.
    pub(crate) fn open(
        config: StorageConfig,
        unix_zero_ms: u64,
    ) -> Result<(Disk, Store, Recovery), StorageError> {
        let started = Instant::now();
        let topics_dir = config.dir.join("topics");
        fs::create_dir_all(&topics_dir).map_err(io_err(&topics_dir))?;
        let mut store = Store::default();
        let mut recovery = Recovery::default();
        let meta_path = config.dir.join("meta.json");
        let mut saved_meta = None;
        if meta_path.exists() {
            let text = fs::read_to_string(&meta_path).map_err(io_err(&meta_path))?;
            let meta: Meta = serde_json::from_str(&text).map_err(|e| StorageError::Format {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?;
            store.partitions = meta.partitions;
            for (t, versions) in meta.schemas {
                let v = versions
                    .into_iter()
                    .map(|(k, d)| (k, unhex(&d).unwrap_or_default()))
                    .collect();
                store.schemas.insert(t, v);
            }
            saved_meta = Some(text);
        }
        let mut topics = BTreeMap::new();
        let mut dirs: Vec<PathBuf> = fs::read_dir(&topics_dir)
            .map_err(io_err(&topics_dir))?
            .filter_map(|d| d.ok().map(|d| d.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let Some(name) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(unhex)
                .and_then(|b| String::from_utf8(b).ok())
            else {
                continue;
            };
            let (files, log) = Self::open_topic(&name, &dir, unix_zero_ms, &mut recovery)?;
            recovery.entries += log.entries.len();
            recovery.topics += 1;
            store.topics.insert(name.clone(), log);
            topics.insert(name, files);
        }
        recovery.elapsed = started.elapsed();
        let disk = Disk {
            config,
            topics,
            saved_meta,
            last_sync: Instant::now(),
            last_state_save: Instant::now(),
            unix_zero_ms,
        };
        Ok((disk, store, recovery))
    }

    fn open_topic(
        name: &str,
        dir: &Path,
        unix_zero_ms: u64,
        recovery: &mut Recovery,
    ) -> Result<(TopicFiles, TopicLog), StorageError> {
        let mut segs: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|d| d.ok().map(|d| d.path()))
            .filter_map(|p| {
                let n = p
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse()
                    .ok()?;
                Some((n, p))
            })
            .collect();
        segs.sort();
        let mut log = TopicLog::default();
        let mut segments = Vec::new();
        let mut damaged: Option<usize> = None;
        for (number, path) in segs {
            if let Some(k) = damaged {
                // after a damaged segment, later ones would leave a gap in the log: they go too
                let size = fs::metadata(&path).map_or(0, |m| m.len());
                fs::remove_file(&path).map_err(io_err(&path))?;
                if let Some(t) = recovery.truncations.get_mut(k) {
                    t.dropped_bytes += size;
                    t.reason
                        .push_str(&format!("; later segment {} removed", path.display()));
                }
                continue;
            }
            let before = log.entries.len();
            if let Some((offset, dropped, reason)) =
                read_segment(&path, unix_zero_ms, &mut log.entries)?
            {
                damaged = Some(recovery.truncations.len());
                recovery.truncations.push(Truncation {
                    topic: name.to_owned(),
                    segment: path.clone(),
                    offset,
                    dropped_bytes: dropped,
                    reason,
                });
            }
            let last = (log.entries.len() > before)
                .then(|| log.entries.last().map(|e| (e.ledger_id, e.entry_id)))
                .flatten();
            segments.push(Segment { path, number, last });
        }
        let state_path = dir.join("state.json");
        let mut saved_state = None;
        if state_path.exists() {
            let text = fs::read_to_string(&state_path).map_err(io_err(&state_path))?;
            let state: SavedState =
                serde_json::from_str(&text).map_err(|e| StorageError::Format {
                    path: state_path.clone(),
                    reason: e.to_string(),
                })?;
            log.persisted_seq = state.persisted_seq;
            for (sub, c) in &state.cursors {
                let cursor = restore_cursor(&log, c);
                log.cursors.insert(sub.clone(), cursor);
            }
            saved_state = Some(text);
        }
        for e in &log.entries {
            if !crate::core::is_non_last_chunk(&e.metadata) {
                let s = log
                    .persisted_seq
                    .entry(e.producer_name.clone())
                    .or_insert(e.highest_sequence_id);
                *s = (*s).max(e.highest_sequence_id);
            }
        }
        let files = TopicFiles {
            dir: dir.to_owned(),
            segments,
            file: None,
            len: 0,
            written: log.entries.len(),
            dirty: false,
            saved_state,
        };
        Ok((files, log))
    }

    /// Writes the store's new entries (and fsyncs per the policy). Called after every step of
    /// the broker, before its output goes out.
    pub(crate) fn write_entries(&mut self, store: &Store) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let topics_dir = self.config.dir.join("topics");
        for (name, log) in &store.topics {
            let written = self.topics.get(name).map_or(0, |f| f.written);
            if log.entries.len() <= written {
                continue;
            }
            let files = match self.topics.entry(name.clone()) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let dir = topics_dir.join(hex(name.as_bytes()));
                    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    v.insert(TopicFiles {
                        dir,
                        segments: Vec::new(),
                        file: None,
                        len: 0,
                        written: 0,
                        dirty: false,
                        saved_state: None,
                    })
                }
            };
            buf.clear();
            for e in log.entries.get(written..).into_iter().flatten() {
                encode_entry(e, self.unix_zero_ms, &mut buf);
            }
            if files.file.is_none() || files.len >= self.config.segment_bytes {
                let number = files.segments.last().map_or(1, |s| s.number + 1);
                let path = files.dir.join(format!("{number:020}.seg"));
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                if let Some(old) = files.file.take() {
                    old.sync_data().map_err(io_err(&files.dir))?;
                }
                files.file = Some(f);
                files.len = 0;
                files.segments.push(Segment {
                    path,
                    number,
                    last: None,
                });
            }
            let (Some(f), Some(seg)) = (files.file.as_mut(), files.segments.last_mut()) else {
                continue;
            };
            if let Err(source) = f.write_all(&buf) {
                // cut the partial write off, so that the next attempt appends whole records
                let _ = f.set_len(files.len);
                return Err(StorageError::Io {
                    path: seg.path.clone(),
                    source,
                });
            }
            if self.config.fsync == FsyncPolicy::Always {
                f.sync_data().map_err(io_err(&seg.path))?;
            } else {
                files.dirty = true;
            }
            files.len += buf.len() as u64;
            files.written = log.entries.len();
            seg.last = log.entries.last().map(|e| (e.ledger_id, e.entry_id));
        }
        Ok(())
    }

    /// Periodic work: fsync per the interval policy, cursors and metadata (at most every
    /// 100 ms, or now with `force`), segments retention emptied.
    pub(crate) fn maintain(&mut self, store: &Store, force: bool) -> Result<(), StorageError> {
        if let FsyncPolicy::Interval(d) = self.config.fsync {
            if force || self.last_sync.elapsed() >= d {
                self.sync_all()?;
            }
        }
        if !force && self.last_state_save.elapsed() < Duration::from_millis(100) {
            return Ok(());
        }
        self.last_state_save = Instant::now();
        let sync = self.config.fsync == FsyncPolicy::Always;
        let meta = Meta {
            partitions: store.partitions.clone(),
            schemas: store
                .schemas
                .iter()
                .map(|(t, v)| (t.clone(), v.iter().map(|(k, d)| (*k, hex(d))).collect()))
                .collect(),
        };
        let text = serde_json::to_string(&meta).unwrap_or_default();
        if self.saved_meta.as_deref() != Some(text.as_str()) {
            write_atomic(&self.config.dir.join("meta.json"), &text, sync)?;
            self.saved_meta = Some(text);
        }
        for (name, log) in &store.topics {
            let Some(files) = self.topics.get_mut(name) else {
                continue;
            };
            let state = SavedState {
                persisted_seq: log.persisted_seq.clone(),
                cursors: log
                    .cursors
                    .iter()
                    .map(|(s, c)| (s.clone(), save_cursor(log, c)))
                    .collect(),
            };
            let text = serde_json::to_string(&state).unwrap_or_default();
            if files.saved_state.as_deref() != Some(text.as_str()) {
                write_atomic(&files.dir.join("state.json"), &text, sync)?;
                files.saved_state = Some(text);
            }
            // whole segments before the first retained entry go
            let first_kept = log
                .entries
                .get(log.trimmed)
                .map(|e| (e.ledger_id, e.entry_id));
            while files.segments.len() > 1 {
                let Some(seg) = files.segments.first() else {
                    break;
                };
                let gone = match (seg.last, first_kept) {
                    (Some(last), Some(first)) => last < first,
                    (Some(_), None) => log.trimmed >= log.entries.len() && log.trimmed > 0,
                    (None, _) => false,
                };
                if !gone {
                    break;
                }
                fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                files.segments.remove(0);
            }
        }
        Ok(())
    }

    /// Fsyncs every file written since the last sync.
    pub(crate) fn sync_all(&mut self) -> Result<(), StorageError> {
        self.last_sync = Instant::now();
        for files in self.topics.values_mut() {
            if files.dirty {
                if let Some(f) = &files.file {
                    f.sync_data().map_err(io_err(&files.dir))?;
                }
                files.dirty = false;
            }
        }
        Ok(())
    }
}
