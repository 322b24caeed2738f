//! One stream's log in the spool: its segments, the records not yet on disk, a cache
//! of recent records for live sending, and what the cloud has acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use bytes::Bytes;

use venue_proto::{Id, StreamKind};

use super::record;

/// Every how many records a segment keeps an index entry (seq → file offset).
pub(super) const INDEX_EVERY: u64 = 128;

/// A segment also keeps an entry at least every this many bytes, so that a read
/// (`READ_WINDOW` from the entry before the wanted record) reaches the record
/// whatever the records' size.
pub(super) const INDEX_BYTES: u64 = 256 * 1024;

/// Most bytes one read takes from a segment file.
pub(super) const READ_WINDOW: u64 = 4 * 1024 * 1024;

/// Whether record `seq`, `since` bytes after the start of the last indexed record,
/// gets an index entry. The index stays sparse whatever the commit rhythm: one
/// entry per batch made it one per record at a camera's rate (16 bytes each,
/// kept until the segment is deleted).
pub(super) fn needs_index(seq: u64, since: u64) -> bool {
    seq.is_multiple_of(INDEX_EVERY) || since >= INDEX_BYTES
}

/// Which stream a log holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub camera: Id,
    pub kind: StreamKind,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.camera, self.kind)
    }
}

/// A transport that carries spooled records and brings the cloud's acks back.
/// Each keeps its own ack cursor per stream; a record is deleted only once every
/// transport carrying its stream has acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Zenoh,
    Mqtt,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Zenoh, Transport::Mqtt];

    pub(super) fn index(self) -> usize {
        match self {
            Self::Zenoh => 0,
            Self::Mqtt => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zenoh => "zenoh",
            Self::Mqtt => "mqtt",
        }
    }
}

/// A position in a stream: records are ordered by incarnation, then sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub incarnation: u64,
    pub seq: u64,
}

/// A record read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pos: Pos,
    /// Shared, zero-copy: the cache, readers and zenoh all hold the same bytes.
    pub payload: Bytes,
}

/// Memory a cached record takes besides its payload: its slot in the cache's
/// deque (position and the `Bytes` handle). Counted against the cache's limit,
/// since metadata records are small enough for it to be a quarter of them.
pub const RECORD_OVERHEAD: usize = size_of::<Record>();

impl Record {
    /// What the record costs the cache.
    fn cached_size(&self) -> usize {
        self.payload.len() + RECORD_OVERHEAD
    }
}

/// What a reader finds at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Records from the requested position on (possibly fewer than asked).
    Records(Vec<Record>),
    /// Records `[from, to)` of `incarnation` are gone (damaged or evicted); carry on
    /// at `to`. Receivers are told so they do not wait for them.
    Gap {
        incarnation: u64,
        from: u64,
        to: u64,
    },
    /// Nothing at or after the position yet.
    Empty,
}

/// A segment file on disk.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub path: PathBuf,
    pub incarnation: u64,
    pub first_seq: u64,
    /// Last record written to the file (None: header only).
    pub last_seq: Option<u64>,
    pub bytes: u64,
    /// Sparse `(seq, offset)` index, ascending.
    pub index: Vec<(u64, u64)>,
    /// Sequences known to be missing inside the segment (damaged records), as
    /// half-open ranges.
    pub holes: Vec<(u64, u64)>,
    /// The writer has moved on to a newer segment.
    pub sealed: bool,
}

impl Segment {
    #[cfg(test)]
    fn contains(&self, pos: Pos) -> bool {
        pos.incarnation == self.incarnation
            && pos.seq >= self.first_seq
            && self.last_seq.is_some_and(|l| pos.seq <= l)
    }
}

/// Counters of one stream, reported in health and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounters {
    pub appended: u64,
    /// Records refused because the spool was full or failed (never got a sequence).
    pub lost_full: u64,
    /// Records lost after they were stored: damaged on disk or evicted (video).
    pub lost_damaged: u64,
    pub lost_evicted: u64,
    /// Torn bytes dropped at recovery.
    pub torn_bytes: u64,
}

/// The mutable state of one stream's log (behind the spool's per-stream lock).
#[derive(Debug)]
pub(super) struct StreamState {
    pub dir: PathBuf,
    pub segments: VecDeque<Segment>,
    /// Incarnation and next sequence for appends.
    pub incarnation: u64,
    pub next_seq: u64,
    /// Framed records not yet written, all of `incarnation`.
    pub pending: Vec<u8>,
    /// `(seq, offset in pending)` for records in `pending` that need an index entry.
    pub pending_index: Vec<(u64, usize)>,
    /// Framed bytes appended since the start of the last record given an index entry.
    pub since_index: u64,
    pub pending_first: Option<u64>,
    /// Recent records, for sending without reading the disk.
    pub cache: VecDeque<Record>,
    pub cache_bytes: usize,
    /// Highest sequence written and fsynced in the current incarnation.
    pub durable: Option<u64>,
    /// Highest sequence per incarnation acknowledged over every transport that
    /// carries the stream: what may be deleted.
    pub acked: BTreeMap<u64, u64>,
    /// Each transport's own cursor (highest sequence it acknowledged, per
    /// incarnation), indexed by `Transport::index`.
    pub cursors: [BTreeMap<u64, u64>; 2],
    /// MQTT carries this stream too: its acks are needed before deleting.
    pub via_mqtt: bool,
    pub counters: StreamCounters,
    /// A commit is writing this stream's pending records (its segment must stay).
    pub writing: bool,
    /// Set when an fsync failed: nothing more is written (see `Spool`).
    pub failed: Option<String>,
}

impl StreamState {
    pub fn new(dir: PathBuf, incarnation: u64) -> Self {
        Self {
            dir,
            segments: VecDeque::new(),
            incarnation,
            next_seq: 0,
            pending: Vec::new(),
            pending_index: Vec::new(),
            since_index: 0,
            pending_first: None,
            cache: VecDeque::new(),
            cache_bytes: 0,
            durable: None,
            acked: BTreeMap::new(),
            cursors: [BTreeMap::new(), BTreeMap::new()],
            via_mqtt: false,
            counters: StreamCounters::default(),
            writing: false,
            failed: None,
        }
    }

    /// Frames a record for `seq` into the pending buffer and the cache.
    pub fn push(&mut self, seq: u64, payload: Vec<u8>, cache_limit: usize) {
        let offset = self.pending.len();
        record::encode_record(seq, &payload, &mut self.pending);
        if self.pending_first.is_none() {
            self.pending_first = Some(seq);
        }
        if needs_index(seq, self.since_index) {
            self.pending_index.push((seq, offset));
            self.since_index = 0;
        }
        self.since_index += (self.pending.len() - offset) as u64;
        let record = Record {
            pos: Pos {
                incarnation: self.incarnation,
                seq,
            },
            payload: Bytes::from(payload),
        };
        self.cache_bytes += record.cached_size();
        self.cache.push_back(record);
        self.counters.appended += 1;
        self.trim_cache(cache_limit);
    }

    /// Drops cached records that are safe on disk or acknowledged, oldest first,
    /// while the cache is over its limit.
    pub fn trim_cache(&mut self, limit: usize) {
        while self.cache_bytes > limit {
            let Some(front) = self.cache.front() else {
                break;
            };
            let on_disk = front.pos.incarnation != self.incarnation
                || self.durable.is_some_and(|d| front.pos.seq <= d);
            if !on_disk && !self.is_acked(front.pos) {
                break;
            }
            self.cache_bytes -= front.cached_size();
            self.cache.pop_front();
        }
    }

    pub fn is_acked(&self, pos: Pos) -> bool {
        self.acked
            .get(&pos.incarnation)
            .is_some_and(|a| pos.seq <= *a)
    }

    /// The transports whose acks a record needs before it is deleted.
    fn carriers(&self) -> &'static [Transport] {
        if self.via_mqtt {
            &Transport::ALL
        } else {
            &Transport::ALL[..1]
        }
    }

    /// Moves `transport`'s cursor to `seq` of `incarnation` (never back), and the
    /// deletable point to the minimum over the transports carrying the stream.
    pub fn set_cursor(&mut self, transport: Transport, incarnation: u64, seq: u64) {
        let slot = self.cursors[transport.index()]
            .entry(incarnation)
            .or_insert(seq);
        *slot = (*slot).max(seq);
        self.update_acked(incarnation);
    }

    /// Recomputes the deletable point of `incarnation` from the cursors.
    pub fn update_acked(&mut self, incarnation: u64) {
        let all = self
            .carriers()
            .iter()
            .map(|t| self.cursors[t.index()].get(&incarnation).copied())
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().min());
        if let Some(min) = all {
            let slot = self.acked.entry(incarnation).or_insert(min);
            *slot = (*slot).max(min);
        }
    }

    /// The first position `transport` has not acknowledged, if any record it still
    /// has to send is stored. Records kept only because another transport has not
    /// acknowledged them yet are skipped.
    pub fn first_unacked_by(&self, transport: Transport) -> Option<Pos> {
        let cursor = &self.cursors[transport.index()];
        // (incarnation, first stored seq, last stored seq or None when unknown).
        let mut spans: BTreeMap<u64, (u64, Option<u64>)> = BTreeMap::new();
        let stored = self
            .segments
            .iter()
            .map(|s| (s.incarnation, s.first_seq, s.last_seq))
            .chain(self.cache_spans());
        for (inc, first, last) in stored {
            let span = spans.entry(inc).or_insert((first, last));
            span.0 = span.0.min(first);
            span.1 = match (span.1, last) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        spans.into_iter().find_map(|(inc, (first, last))| {
            let from = cursor.get(&inc).map_or(first, |a| (*a + 1).max(first));
            let open = inc == self.incarnation || last.is_none_or(|l| from <= l);
            open.then_some(Pos {
                incarnation: inc,
                seq: from,
            })
        })
    }

    /// (incarnation, first seq, last seq) of each incarnation in the cache. The
    /// cache is in position order, so each incarnation's run is found by binary
    /// search: this runs for every batch a sender sends, and the cache can hold
    /// tens of thousands of records.
    fn cache_spans(&self) -> impl Iterator<Item = (u64, u64, Option<u64>)> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let first = self.cache.get(start)?;
            let inc = first.pos.incarnation;
            let end = self.cache.partition_point(|r| r.pos.incarnation <= inc);
            let last = self.cache.get(end.checked_sub(1)?)?;
            start = end.max(start + 1);
            Some((inc, first.pos.seq, Some(last.pos.seq)))
        })
    }

    /// The first position not yet acknowledged, if any record is stored.
    pub fn first_unacked(&self) -> Option<Pos> {
        let mut candidates = self
            .segments
            .iter()
            .map(|s| (s.incarnation, s.first_seq))
            .chain(self.cache.front().map(|r| (r.pos.incarnation, r.pos.seq)));
        let (inc, first) = candidates
            .next()
            .map(|first| candidates.fold(first, std::cmp::min))?;
        let seq = match self.acked.get(&inc) {
            Some(a) if *a + 1 > first => *a + 1,
            _ => first,
        };
        Some(Pos {
            incarnation: inc,
            seq,
        })
    }

    /// The position after the newest record appended.
    pub fn end(&self) -> Pos {
        Pos {
            incarnation: self.incarnation,
            seq: self.next_seq,
        }
    }

    /// Where to read `pos` from: the cache, a segment, a gap, or nothing yet.
    /// File reads happen outside the lock, from the returned plan.
    pub fn plan_read(&self, pos: Pos, max: usize) -> ReadPlan {
        if let Some(front) = self.cache.front()
            && pos >= front.pos
        {
            let start = self.cache.partition_point(|r| r.pos < pos);
            let recs: Vec<Record> = self.cache.iter().skip(start).take(max).cloned().collect();
            return ReadPlan::Done(if recs.is_empty() {
                Read::Empty
            } else {
                Read::Records(recs)
            });
        }
        for seg in &self.segments {
            if seg.incarnation < pos.incarnation
                || (seg.incarnation == pos.incarnation && seg.last_seq.is_none_or(|l| l < pos.seq))
            {
                continue;
            }
            // The first segment holding records at or after `pos`.
            let start = match self.entry_point(pos, seg.incarnation, seg.first_seq) {
                Ok(start) => start,
                Err(gap) => return ReadPlan::Done(gap),
            };
            if let Some(&(_, to)) = seg.holes.iter().find(|(f, t)| start >= *f && start < *t) {
                return ReadPlan::Done(Read::Gap {
                    incarnation: seg.incarnation,
                    from: start,
                    to,
                });
            }
            let idx = seg.index.partition_point(|(s, _)| *s <= start);
            let offset = if idx == 0 {
                record::SEGMENT_HEADER as u64
            } else {
                seg.index[idx - 1].1
            };
            let stop_before = seg
                .holes
                .iter()
                .map(|(f, _)| *f)
                .filter(|f| *f > start)
                .min();
            return ReadPlan::File {
                path: seg.path.clone(),
                incarnation: seg.incarnation,
                from_seq: start,
                offset,
                end: seg.bytes,
                last_seq: seg.last_seq.unwrap_or(start),
                stop_before,
                max,
            };
        }
        // Not on disk: only the cache can still hold it (records not yet written).
        match self.cache.front() {
            Some(front) => match self.entry_point(pos, front.pos.incarnation, front.pos.seq) {
                Ok(start) => self.plan_read(
                    Pos {
                        incarnation: front.pos.incarnation,
                        seq: start,
                    },
                    max,
                ),
                Err(gap) => ReadPlan::Done(gap),
            },
            None => ReadPlan::Done(Read::Empty),
        }
    }

    /// Where a reader at `pos` continues in the first place that holds records of
    /// incarnation `inc` from `first` on: that sequence, or a gap for what is missing
    /// in between (records neither stored nor acknowledged).
    fn entry_point(&self, pos: Pos, inc: u64, first: u64) -> Result<u64, Read> {
        let wanted = if inc == pos.incarnation {
            pos.seq
        } else {
            // A newer incarnation starts at 0, or after what was acknowledged.
            self.acked.get(&inc).map_or(0, |a| a + 1)
        };
        if first > wanted {
            Err(Read::Gap {
                incarnation: inc,
                from: wanted,
                to: first,
            })
        } else {
            Ok(wanted)
        }
    }

    /// Removes segments and cache entries that are acknowledged; returns the files
    /// that can be deleted.
    pub fn trim_acked(&mut self) -> Vec<PathBuf> {
        let mut delete = Vec::new();
        while let Some(seg) = self.segments.front() {
            // The active segment may go too once everything in it is acknowledged and
            // no commit is writing to it: the next commit starts a new one.
            let idle = seg.sealed || (!self.writing && self.pending.is_empty());
            let done = idle
                && seg.last_seq.is_some_and(|l| {
                    self.is_acked(Pos {
                        incarnation: seg.incarnation,
                        seq: l,
                    })
                });
            let old_and_done = seg.incarnation < self.incarnation
                && seg.last_seq.is_none_or(|l| {
                    self.is_acked(Pos {
                        incarnation: seg.incarnation,
                        seq: l,
                    })
                });
            // Sealed with no record (a write failed right after its header).
            let empty = seg.sealed && seg.last_seq.is_none();
            if !(done || old_and_done || empty) {
                break;
            }
            if let Some(seg) = self.segments.pop_front() {
                delete.push(seg.path);
            }
        }
        while self.cache.front().is_some_and(|r| self.is_acked(r.pos)) {
            if let Some(r) = self.cache.pop_front() {
                self.cache_bytes -= r.cached_size();
            }
        }
        delete
    }

    /// Memory the cache holds: its records and the deque's free slots (it
    /// keeps its largest size).
    pub fn cache_memory(&self) -> usize {
        self.cache_bytes + (self.cache.capacity() - self.cache.len()) * RECORD_OVERHEAD
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Marks a segment as present (used by the writer) and returns its index.
    pub fn segment_mut(&mut self, path: &std::path::Path) -> Option<&mut Segment> {
        self.segments.iter_mut().rev().find(|s| s.path == path)
    }

    /// Whether `pos` is stored in some segment (for tests and diagnostics).
    #[cfg(test)]
    pub fn on_disk(&self, pos: Pos) -> bool {
        self.segments.iter().any(|s| s.contains(pos))
    }
}

/// How to serve a read: already answered, or from a file region.
#[derive(Debug)]
pub(super) enum ReadPlan {
    Done(Read),
    File {
        path: PathBuf,
        incarnation: u64,
        from_seq: u64,
        offset: u64,
        end: u64,
        last_seq: u64,
        stop_before: Option<u64>,
        max: usize,
    },
}

/// Reads records from a segment file region, validating each one. A damaged record
/// found at read time ends the read; the next read resumes after it.
/// When the read window ends inside the record starting at `pos` (its header is
/// whole and sound, its body is not all there): its seq and framed length.
fn cut_by_window(buf: &[u8], pos: usize) -> Option<(u64, u64)> {
    if record::parse_at(buf, pos) != record::Parsed::Incomplete {
        return None;
    }
    let header = buf.get(pos..pos + record::RECORD_HEADER)?;
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(0) != record::RECORD_MAGIC || word(4) as usize > record::MAX_RECORD {
        return None;
    }
    let seq = u64::from_le_bytes(header[12..20].try_into().ok()?);
    Some((seq, record::framed_len(word(4) as usize) as u64))
}

pub(super) fn read_file(plan: ReadPlan) -> std::io::Result<Read> {
    let ReadPlan::File {
        path,
        incarnation,
        from_seq,
        offset,
        end,
        last_seq,
        stop_before,
        max,
    } = plan
    else {
        return match plan {
            ReadPlan::Done(r) => Ok(r),
            ReadPlan::File { .. } => Ok(Read::Empty),
        };
    };
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(&path)?;
    // `len` bytes of the file from `at` (fewer at its end).
    let mut read_at = |at: u64, len: u64| -> std::io::Result<Vec<u8>> {
        f.seek(SeekFrom::Start(at))?;
        let mut buf = Vec::new();
        (&mut f).take(len).read_to_end(&mut buf)?;
        Ok(buf)
    };
    // Read a bounded window: enough for `max` small records. A record larger than
    // the window (a long clip) is read whole when it is the one wanted, and
    // stepped over by its header when it comes before.
    let mut base = offset;
    let mut buf = read_at(base, end.saturating_sub(base).min(READ_WINDOW))?;
    let mut found: Vec<(u64, std::ops::Range<usize>)> = Vec::new();
    let mut pos = 0;
    let mut expected = from_seq;
    // Where a record was read whole: once (a file shorter than its header says,
    // torn, must not be read again and again).
    let mut widened: Option<u64> = None;
    // Damaged bytes are skipped (holes were found at recovery); a record missing
    // since then ends the read so that the caller sees it as a gap.
    while found.len() < max {
        if found.is_empty()
            && base + (buf.len() as u64) < end
            && let Some((seq, framed)) = cut_by_window(&buf, pos)
        {
            let at = base + pos as u64;
            if seq < from_seq {
                base = at + framed;
                buf = read_at(base, end.saturating_sub(base).min(READ_WINDOW))?;
                pos = 0;
                continue;
            }
            if widened != Some(at) {
                widened = Some(at);
                base = at;
                buf = read_at(base, framed.max(READ_WINDOW).min(end - base))?;
                pos = 0;
            }
        }
        let Some((_, seq, payload, next)) = record::next_intact(&buf, pos) else {
            break;
        };
        pos = next;
        if stop_before.is_some_and(|h| seq >= h) || seq > last_seq {
            break;
        }
        if seq < from_seq {
            continue;
        }
        if seq != expected {
            if found.is_empty() {
                return Ok(Read::Gap {
                    incarnation,
                    from: expected,
                    to: seq,
                });
            }
            break;
        }
        expected = seq + 1;
        found.push((seq, payload));
    }
    if found.is_empty() {
        // Nothing readable where the index says records are: damaged after recovery.
        return Ok(Read::Gap {
            incarnation,
            from: from_seq,
            to: (last_seq + 1).max(from_seq + 1),
        });
    }
    let buf = Bytes::from(buf);
    let out = found
        .into_iter()
        .map(|(seq, payload)| Record {
            pos: Pos { incarnation, seq },
            payload: buf.slice(payload),
        })
        .collect();
    Ok(Read::Records(out))
}
