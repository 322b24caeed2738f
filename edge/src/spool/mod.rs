//! The spool: a durable, bounded, crash-safe log per stream (camera × stream kind)
//! between the pipeline and the uplink. Records get their sequence number here,
//! are group-committed (written and fsynced every `fsync_interval`), and stay until
//! the cloud acknowledges them. See ARCHITECTURE.md ("Spool") for the policy.
//!
//! Layout: `{dir}/{camera}/{stream}/{incarnation:020}-{first_seq:020}.seg`, plus an
//! `acked` file per stream (best effort: losing it only means resending) holding
//! each transport's ack cursor: `INC SEQ` lines for zenoh, `mqtt INC SEQ` for MQTT.

mod record;
mod stream;

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{error, info, warn};
use venue_proto::{Id, StreamKind};

pub use stream::{Pos, Read, Record, StreamCounters, StreamId, Transport};
use stream::{Segment, StreamState};

/// How the spool behaves; validated by the config layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Hard cap on bytes on disk plus bytes waiting to be written.
    pub max_bytes: u64,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// Group commit: pending records are written and fsynced this often.
    pub fsync_interval: Duration,
    /// Recent records kept in memory per stream for live sending.
    pub cache_bytes: usize,
    /// Streams MQTT carries besides zenoh: their records are deleted only once
    /// both transports have acknowledged them (from `[mqtt] streams`).
    pub mqtt_streams: Vec<StreamKind>,
}

/// Why a record was not stored. Either way it is counted as lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("spool full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    #[error("spool stopped writing after an I/O error: {0}")]
    Failed(String),
}

/// Why the spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spool directory {} is in use by another process (is another venue-edge running with the same [spool] dir?)",
        path.display()
    )]
    Locked { path: PathBuf },
}

/// What recovery found when the spool was opened.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub streams: usize,
    pub segments: usize,
    pub records: u64,
    /// Bytes of incomplete records cut off segment tails (torn writes).
    pub torn_bytes: u64,
    /// Damaged places inside segments, and the records they cost.
    pub damaged_spots: u64,
    pub lost_records: u64,
    /// Segment files that could not be read at all (renamed to `*.corrupt`).
    pub unreadable_files: u64,
    pub elapsed: Duration,
}

#[derive(Debug)]
struct Writer {
    file: File,
    path: PathBuf,
    incarnation: u64,
    bytes: u64,
}

#[derive(Debug)]
struct StreamEntry {
    state: Mutex<StreamState>,
    /// One per transport's sender (`Notify` wakes a single waiter, or keeps a
    /// permit for the next one).
    notify: [Notify; 2],
}

impl StreamEntry {
    fn new(state: StreamState) -> Self {
        Self {
            state: Mutex::new(state),
            notify: [Notify::new(), Notify::new()],
        }
    }

    fn wake(&self) {
        for n in &self.notify {
            n.notify_one();
        }
    }
}

#[derive(Debug)]
struct Inner {
    cfg: SpoolConfig,
    incarnation: u64,
    streams: Mutex<BTreeMap<StreamId, Arc<StreamEntry>>>,
    writers: Mutex<HashMap<StreamId, Writer>>,
    total_bytes: AtomicU64,
    /// Consecutive failed stream commits (disk full), for logging.
    write_failures: AtomicU64,
    failed: AtomicBool,
    /// Held open with an exclusive lock for as long as the spool is open: two
    /// processes writing the same segments would corrupt each other.
    _lock: File,
}

/// The spool; cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

/// One stream of the spool.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    id: StreamId,
    entry: Arc<StreamEntry>,
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a spool lock leaves consistent-enough state (every
    // mutation is a few field updates); keep serving rather than cascade.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn kind_from_dir(name: &str) -> Option<StreamKind> {
    crate::delivery::SPOOLED
        .into_iter()
        .find(|k| k.as_str() == name)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn segment_name(incarnation: u64, first_seq: u64) -> String {
    format!("{incarnation:020}-{first_seq:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".seg")?;
    let (a, b) = stem.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Most bytes handed to one `write` at a commit (see `commit_stream`).
const WRITE_PIECE: usize = 64 * 1024;

/// Record-aligned pieces of a framed batch: `(end offset, last seq)` of each, at
/// most `max` bytes unless a single record is larger.
fn record_pieces(batch: &[u8], max: usize) -> Vec<(usize, u64)> {
    let mut pieces = Vec::new();
    let (mut off, mut start, mut last) = (0usize, 0usize, None);
    while let Some(header) = batch.get(off..off + record::RECORD_HEADER) {
        let len = header[4..8].try_into().map_or(0, u32::from_le_bytes) as usize;
        let seq = header[12..20].try_into().map_or(0, u64::from_le_bytes);
        let end = off + record::RECORD_HEADER + len;
        if let Some(prev) = last
            && end - start > max
        {
            pieces.push((off, prev));
            start = off;
        }
        last = Some(seq);
        off = end;
    }
    if let Some(prev) = last {
        pieces.push((off.min(batch.len()), prev));
    }
    pieces
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Opens (or creates) the spool, recovering every intact record. New records are
    /// written under an incarnation greater than any found on disk.
    pub fn open(cfg: SpoolConfig, incarnation: u64) -> Result<(Self, RecoveryReport), SpoolError> {
        let started = Instant::now();
        std::fs::create_dir_all(&cfg.dir).map_err(io_err(&cfg.dir))?;
        let lock_path = cfg.dir.join("LOCK");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    path: cfg.dir.clone(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(SpoolError::Io {
                    path: lock_path,
                    source: e,
                });
            }
        }
        let mut report = RecoveryReport::default();
        let mut streams = BTreeMap::new();
        let mut max_incarnation = 0u64;
        let mut total = 0u64;
        for cam_entry in std::fs::read_dir(&cfg.dir).map_err(io_err(&cfg.dir))? {
            let cam_entry = cam_entry.map_err(io_err(&cfg.dir))?;
            let name = cam_entry.file_name().to_string_lossy().to_string();
            let Ok(camera) = Id::new(&name) else { continue };
            if !cam_entry.path().is_dir() {
                continue;
            }
            for kind_entry in
                std::fs::read_dir(cam_entry.path()).map_err(io_err(&cam_entry.path()))?
            {
                let kind_entry = kind_entry.map_err(io_err(&cam_entry.path()))?;
                let Some(kind) = kind_from_dir(&kind_entry.file_name().to_string_lossy()) else {
                    continue;
                };
                let id = StreamId {
                    camera: camera.clone(),
                    kind,
                };
                let mut state = StreamState::new(kind_entry.path(), incarnation);
                state.via_mqtt = cfg.mqtt_streams.contains(&kind);
                recover_stream(&mut state, &mut report)?;
                for seg in &state.segments {
                    max_incarnation = max_incarnation.max(seg.incarnation);
                }
                let deleted = state.trim_acked();
                for path in deleted {
                    let _ = std::fs::remove_file(path);
                }
                total += state.disk_bytes();
                report.streams += 1;
                streams.insert(id, Arc::new(StreamEntry::new(state)));
            }
        }
        let incarnation = incarnation.max(max_incarnation + 1);
        for entry in streams.values() {
            let mut s = lock(&entry.state);
            s.incarnation = incarnation;
            s.next_seq = 0;
        }
        report.elapsed = started.elapsed();
        let inner = Inner {
            cfg,
            incarnation,
            streams: Mutex::new(streams),
            writers: Mutex::new(HashMap::new()),
            total_bytes: AtomicU64::new(total),
            write_failures: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            _lock: lock_file,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            report,
        ))
    }

    /// The incarnation of every stream written by this run.
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.inner.cfg
    }

    /// The stream's log, created on first use.
    pub fn stream(&self, camera: &Id, kind: StreamKind) -> StreamHandle {
        let id = StreamId {
            camera: camera.clone(),
            kind,
        };
        let mut streams = lock(&self.inner.streams);
        let entry = streams
            .entry(id.clone())
            .or_insert_with(|| {
                let dir = self.inner.cfg.dir.join(camera.as_str()).join(kind.as_str());
                let mut state = StreamState::new(dir, self.inner.incarnation);
                state.via_mqtt = self.inner.cfg.mqtt_streams.contains(&kind);
                Arc::new(StreamEntry::new(state))
            })
            .clone();
        StreamHandle {
            id,
            entry,
            inner: Arc::clone(&self.inner),
        }
    }

    /// The stream's log if the spool has it (never creates one: for input from outside).
    pub fn existing(&self, camera: &Id, kind: StreamKind) -> Option<StreamHandle> {
        let id = StreamId {
            camera: camera.clone(),
            kind,
        };
        let entry = lock(&self.inner.streams).get(&id).cloned()?;
        Some(StreamHandle {
            id,
            entry,
            inner: Arc::clone(&self.inner),
        })
    }

    /// Every stream the spool holds (recovered or created).
    pub fn streams(&self) -> Vec<StreamHandle> {
        lock(&self.inner.streams)
            .iter()
            .map(|(id, e)| StreamHandle {
                id: id.clone(),
                entry: Arc::clone(e),
                inner: Arc::clone(&self.inner),
            })
            .collect()
    }

    /// Bytes on disk plus bytes waiting to be written.
    pub fn used_bytes(&self) -> u64 {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    /// Memory of the recent records kept for sending without reading the disk,
    /// over every stream (each capped at `cache_bytes`, payloads and per-record
    /// slots counted).
    pub fn cache_bytes(&self) -> u64 {
        let entries: Vec<Arc<StreamEntry>> = lock(&self.inner.streams).values().cloned().collect();
        entries
            .iter()
            .map(|e| lock(&e.state).cache_memory() as u64)
            .sum()
    }

    /// True once an fsync has failed: the spool no longer stores anything.
    pub fn is_failed(&self) -> bool {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// Writes and fsyncs everything pending (the group commit), then applies the
    /// size policy. Called by the committer thread and at shutdown.
    pub fn commit(&self) {
        let mut failed = None;
        for handle in self.streams() {
            if let Err(e) = self.commit_stream(&handle) {
                failed = Some((handle.id.clone(), e));
            }
        }
        match failed {
            // Logged once per failing spell and then every 1000 commits (a full
            // disk fails every commit; the log must not flood).
            Some((stream, e)) => {
                let n = self.inner.write_failures.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    warn!(%stream, error = %e, failed_commits = n + 1, "spool write failed; records kept in memory and retried");
                }
            }
            None => {
                if self.inner.write_failures.swap(0, Ordering::Relaxed) > 0 {
                    info!("spool writes succeed again");
                }
            }
        }
        self.evict_video();
    }

    fn commit_stream(&self, h: &StreamHandle) -> std::io::Result<()> {
        let (batch, index, first, _last, inc, dir) = {
            let mut s = lock(&h.entry.state);
            if s.pending.is_empty() || s.failed.is_some() {
                return Ok(());
            }
            let Some(first) = s.pending_first.take() else {
                return Ok(());
            };
            let batch = std::mem::take(&mut s.pending);
            let index = std::mem::take(&mut s.pending_index);
            s.writing = true;
            (
                batch,
                index,
                first,
                s.next_seq - 1,
                s.incarnation,
                s.dir.clone(),
            )
        };
        let mut writers = lock(&self.inner.writers);
        let needs_new = writers
            .get(&h.id)
            .is_none_or(|w| w.incarnation != inc || w.bytes >= self.inner.cfg.segment_bytes);
        if needs_new {
            if let Some(old) = writers.remove(&h.id)
                && let Some(seg) = lock(&h.entry.state).segment_mut(&old.path)
            {
                seg.sealed = true;
            }
            let created = (|| {
                std::fs::create_dir_all(&dir)?;
                let path = dir.join(segment_name(inc, first));
                let mut file = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(&path)?;
                file.write_all(&record::encode_segment_header(inc, first))?;
                file.sync_all()?;
                sync_dir(&dir)?;
                Ok::<_, std::io::Error>(Writer {
                    file,
                    path,
                    incarnation: inc,
                    bytes: record::SEGMENT_HEADER as u64,
                })
            })();
            let w = match created {
                Ok(w) => w,
                Err(e) => {
                    self.restore_pending(h, batch, index, first);
                    return Err(e);
                }
            };
            self.inner.total_bytes.fetch_add(w.bytes, Ordering::Relaxed);
            lock(&h.entry.state).segments.push_back(Segment {
                path: w.path.clone(),
                incarnation: inc,
                first_seq: first,
                last_seq: None,
                bytes: w.bytes,
                index: Vec::new(),
                holes: Vec::new(),
                sealed: false,
            });
            writers.insert(h.id.clone(), w);
        }
        let Some(w) = writers.get_mut(&h.id) else {
            self.restore_pending(h, batch, index, first);
            return Ok(());
        };
        let base = w.bytes;
        // Written in record-aligned pieces, so that on a full disk what fits is
        // stored and the rest waits: all-or-nothing would need as much free space
        // as everything pending, which freed segments may never give.
        let mut written = 0usize;
        let mut last_written = None;
        let mut failure = None;
        for (end, seq) in record_pieces(&batch, WRITE_PIECE) {
            match w.file.write_all(&batch[written..end]) {
                Ok(()) => {
                    written = end;
                    last_written = Some(seq);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            // Undo a partial piece so the file ends on a record boundary.
            let _ = w.file.set_len(base + written as u64);
            let _ =
                std::io::Seek::seek(&mut w.file, std::io::SeekFrom::Start(base + written as u64));
        }
        let Some(last_written) = last_written else {
            // Nothing fitted. Seal the segment and start a new one at the next
            // commit: an active segment is not deleted while records are pending,
            // so on a full disk acknowledged records could otherwise never make room.
            let path = w.path.clone();
            writers.remove(&h.id);
            drop(writers);
            if let Some(seg) = lock(&h.entry.state).segment_mut(&path) {
                seg.sealed = true;
            }
            self.restore_pending(h, batch, index, first);
            return Err(failure.unwrap_or_else(|| std::io::Error::other("empty spool batch")));
        };
        if let Err(e) = w.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: the
            // file's content is unknown. Stop writing rather than pretend.
            let msg = format!("fsync of {} failed: {e}", w.path.display());
            error!(stream = %h.id, error = %msg, "spool stops writing; restart the daemon to recover from disk");
            self.inner.failed.store(true, Ordering::Relaxed);
            let mut s = lock(&h.entry.state);
            s.failed = Some(msg);
            s.writing = false;
            return Ok(());
        }
        w.bytes += written as u64;
        let path = w.path.clone();
        if failure.is_some() {
            // Sealed, as above; the rest goes to a new segment.
            writers.remove(&h.id);
        }
        drop(writers);
        let mut s = lock(&h.entry.state);
        if let Some(seg) = s.segment_mut(&path) {
            seg.last_seq = Some(last_written);
            seg.bytes = base + written as u64;
            seg.index.extend(
                index
                    .iter()
                    .filter(|(_, off)| *off < written)
                    .map(|(seq, off)| (*seq, base + *off as u64)),
            );
            seg.sealed |= failure.is_some();
        }
        s.durable = Some(last_written);
        s.writing = false;
        let limit = self.inner.cfg.cache_bytes;
        s.trim_cache(limit);
        drop(s);
        match failure {
            None => Ok(()),
            Some(e) => {
                let rest = batch[written..].to_vec();
                let rest_index = index
                    .into_iter()
                    .filter(|(_, off)| *off >= written)
                    .map(|(seq, off)| (seq, off - written))
                    .collect();
                self.restore_pending(h, rest, rest_index, last_written + 1);
                Err(e)
            }
        }
    }

    fn restore_pending(
        &self,
        h: &StreamHandle,
        mut batch: Vec<u8>,
        mut index: Vec<(u64, usize)>,
        first: u64,
    ) {
        let mut s = lock(&h.entry.state);
        s.writing = false;
        let shift = batch.len();
        batch.extend_from_slice(&s.pending);
        index.extend(s.pending_index.iter().map(|(seq, off)| (*seq, off + shift)));
        s.pending = batch;
        s.pending_index = index;
        s.pending_first = Some(first);
    }

    /// Keeps the spool under its cap by deleting the oldest sealed video segments:
    /// video chunks first, then event clips (a clip is the event's own video, worth
    /// more per byte than the continuous stream).
    fn evict_video(&self) {
        let cap = self.inner.cfg.max_bytes;
        let threshold = cap - cap / 10;
        while self.used_bytes() > threshold {
            let streams = self.streams();
            let oldest_of = |kind: StreamKind| {
                streams
                    .iter()
                    .filter(|h| h.id.kind == kind)
                    .filter_map(|h| {
                        let s = lock(&h.entry.state);
                        let seg = s.segments.iter().find(|seg| seg.sealed)?;
                        Some((seg.incarnation, seg.first_seq, h.clone()))
                    })
                    .min_by_key(|(inc, first, _)| (*inc, *first))
            };
            let oldest = oldest_of(StreamKind::Video).or_else(|| oldest_of(StreamKind::Clip));
            let Some((_, _, h)) = oldest else { break };
            let mut s = lock(&h.entry.state);
            let Some(pos) = s.segments.iter().position(|seg| seg.sealed) else {
                break;
            };
            let Some(seg) = s.segments.remove(pos) else {
                break;
            };
            let acked = s.acked.get(&seg.incarnation).copied();
            let lost = seg.last_seq.map_or(0, |l| {
                (seg.first_seq..=l)
                    .filter(|q| acked.is_none_or(|a| *q > a))
                    .count() as u64
            });
            s.counters.lost_evicted += lost;
            drop(s);
            let _ = std::fs::remove_file(&seg.path);
            self.inner
                .total_bytes
                .fetch_sub(seg.bytes.min(self.used_bytes()), Ordering::Relaxed);
            warn!(stream = %h.id, lost, "spool over its cap: evicted the oldest video segment");
        }
    }

    /// Runs the group commit every `fsync_interval` on its own thread until `stop`;
    /// commits once more before returning.
    pub fn spawn_committer(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let spool = self.clone();
        std::thread::Builder::new()
            .name("spool-commit".into())
            .spawn(move || {
                let interval = spool.inner.cfg.fsync_interval;
                while !stop.is_cancelled() {
                    std::thread::sleep(interval);
                    spool.commit();
                }
                spool.commit();
                info!(
                    used_bytes = spool.used_bytes(),
                    "spool committed at shutdown"
                );
            })
    }
}

impl StreamHandle {
    pub fn id(&self) -> &StreamId {
        &self.id
    }

    /// Stores a record: `build(incarnation, seq)` makes the payload for the sequence
    /// the spool assigns. Refused (and counted) when the spool is full or failed.
    pub fn append_with(&self, build: impl FnOnce(u64, u64) -> Vec<u8>) -> Result<Pos, AppendError> {
        let cfg = &self.inner.cfg;
        let mut s = lock(&self.entry.state);
        if let Some(msg) = &s.failed {
            let msg = msg.clone();
            s.counters.lost_full += 1;
            return Err(AppendError::Failed(msg));
        }
        let pos = s.end();
        let payload = build(pos.incarnation, pos.seq);
        let framed = record::framed_len(payload.len()) as u64;
        let used = self.inner.total_bytes.load(Ordering::Relaxed);
        if used + framed > cfg.max_bytes {
            s.counters.lost_full += 1;
            return Err(AppendError::Full {
                used,
                max: cfg.max_bytes,
            });
        }
        self.inner.total_bytes.fetch_add(framed, Ordering::Relaxed);
        s.push(pos.seq, payload, cfg.cache_bytes);
        s.next_seq += 1;
        drop(s);
        self.entry.wake();
        Ok(pos)
    }

    /// Reads from memory only: `None` when the records must come from disk.
    pub fn read_cached(&self, pos: Pos, max: usize) -> Option<Read> {
        match lock(&self.entry.state).plan_read(pos, max) {
            stream::ReadPlan::Done(r) => Some(r),
            stream::ReadPlan::File { .. } => None,
        }
    }

    /// Reads up to `max` records from `pos` (the cache first, then the disk).
    pub fn read(&self, pos: Pos, max: usize) -> std::io::Result<Read> {
        let plan = lock(&self.entry.state).plan_read(pos, max);
        stream::read_file(plan)
    }

    /// Records everything up to `seq` of `incarnation` as acknowledged over every
    /// transport (tests and benchmarks; the uplinks use [`Self::ack_by`]).
    pub fn ack(&self, incarnation: u64, seq: u64) {
        for t in Transport::ALL {
            self.ack_by(t, incarnation, seq);
        }
    }

    /// Records everything up to `seq` of `incarnation` as stored by the cloud,
    /// acknowledged over `transport`, and frees what every transport carrying the
    /// stream has acknowledged.
    pub fn ack_by(&self, transport: Transport, incarnation: u64, seq: u64) {
        let (deleted, dir, cursors) = {
            let mut s = lock(&self.entry.state);
            s.set_cursor(transport, incarnation, seq);
            let deleted = s.trim_acked();
            let freed: u64 = deleted
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            self.inner.total_bytes.fetch_sub(
                freed.min(self.inner.total_bytes.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            (deleted, s.dir.clone(), s.cursors.clone())
        };
        if !deleted.is_empty() {
            let mut writers = lock(&self.inner.writers);
            for path in &deleted {
                if writers.get(&self.id).is_some_and(|w| &w.path == path) {
                    writers.remove(&self.id);
                }
                let _ = std::fs::remove_file(path);
            }
        }
        // Best effort: a lost ack file only means resending what the cloud has.
        let [zenoh, mqtt] = &cursors;
        let text: String = zenoh
            .iter()
            .map(|(i, s)| format!("{i} {s}\n"))
            .chain(mqtt.iter().map(|(i, s)| format!("mqtt {i} {s}\n")))
            .collect();
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join("acked"), text);
        }
        self.entry.wake();
    }

    /// The first record `transport` has not seen acknowledged (where its sender
    /// resumes after a reconnect).
    pub fn first_unacked_by(&self, transport: Transport) -> Option<Pos> {
        lock(&self.entry.state).first_unacked_by(transport)
    }

    /// The oldest record not yet acknowledged.
    pub fn first_unacked(&self) -> Option<Pos> {
        lock(&self.entry.state).first_unacked()
    }

    /// The position the next appended record will take.
    pub fn end(&self) -> Pos {
        lock(&self.entry.state).end()
    }

    /// Highest acknowledged sequence per incarnation.
    pub fn acked(&self) -> BTreeMap<u64, u64> {
        lock(&self.entry.state).acked.clone()
    }

    pub fn counters(&self) -> StreamCounters {
        lock(&self.entry.state).counters
    }

    /// Waits until something was appended or acknowledged since the last call
    /// (for the zenoh sender).
    pub async fn changed(&self) {
        self.changed_for(Transport::Zenoh).await;
    }

    /// The same for `transport`'s sender: each has its own wake-up.
    pub async fn changed_for(&self, transport: Transport) {
        self.entry.notify[transport.index()].notified().await;
    }
}

/// Rebuilds one stream's segments from disk, repairing torn tails.
fn recover_stream(state: &mut StreamState, report: &mut RecoveryReport) -> Result<(), SpoolError> {
    let dir = state.dir.clone();
    if let Ok(text) = std::fs::read_to_string(dir.join("acked")) {
        for line in text.lines() {
            let (transport, rest) = match line.strip_prefix("mqtt ") {
                Some(rest) => (Transport::Mqtt, rest),
                None => (Transport::Zenoh, line),
            };
            if let Some((i, s)) = rest.split_once(' ')
                && let (Ok(i), Ok(s)) = (i.parse(), s.parse())
            {
                state.set_cursor(transport, i, s);
            }
        }
    }
    let mut files: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            parse_segment_name(&name).map(|(i, f)| (i, f, e.path()))
        })
        .collect();
    files.sort();
    for (name_inc, name_first, path) in files {
        let buf = std::fs::read(&path).map_err(io_err(&path))?;
        let header = record::decode_segment_header(&buf);
        let (inc, first) = header.unwrap_or((name_inc, name_first));
        if header.is_none() && buf.len() < record::SEGMENT_HEADER {
            // Not even a header survived: nothing to keep.
            warn!(file = %path.display(), "spool segment without a header; removed");
            report.unreadable_files += 1;
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let scan = record::scan(&buf, record::SEGMENT_HEADER.min(buf.len()));
        if scan.torn_bytes > 0 {
            // Cut the torn tail so appends (after a future roll) never follow garbage.
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.set_len(scan.valid_end as u64).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
            warn!(file = %path.display(), torn_bytes = scan.torn_bytes, "spool recovery dropped a torn tail");
        }
        let mut holes = Vec::new();
        let mut expected = first;
        let mut index = Vec::new();
        let mut indexed: Option<usize> = None;
        for (seq, off) in &scan.records {
            if *seq > expected {
                holes.push((expected, *seq));
            }
            if indexed.is_none_or(|i| stream::needs_index(*seq, (off - i) as u64)) {
                index.push((*seq, *off as u64));
                indexed = Some(*off);
            }
            expected = seq + 1;
        }
        let lost: u64 = holes.iter().map(|(a, b)| b - a).sum();
        if scan.damaged_spots > 0 || lost > 0 {
            warn!(file = %path.display(), damaged_spots = scan.damaged_spots, lost_records = lost,
                  "spool recovery skipped damaged records");
        }
        report.segments += 1;
        report.records += scan.records.len() as u64;
        report.torn_bytes += scan.torn_bytes as u64;
        report.damaged_spots += scan.damaged_spots as u64;
        report.lost_records += lost;
        state.counters.torn_bytes += scan.torn_bytes as u64;
        state.counters.lost_damaged += lost;
        state.segments.push_back(Segment {
            path,
            incarnation: inc,
            first_seq: first,
            last_seq: scan.records.last().map(|(s, _)| *s),
            bytes: scan.valid_end as u64,
            index,
            holes,
            sealed: true,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
