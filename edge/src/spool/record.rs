//! On-disk framing of spool records and segment headers, and the scanner that
//! recovers every intact record from a damaged file.
//!
//! Record: `magic u32 | len u32 | crc32 u32 | seq u64 | payload[len]` (little endian).
//! The CRC covers `seq` and the payload. The magic lets the scanner find the next
//! record after a damaged one, so one flipped bit costs one record, not a segment.

/// Marks the start of every record ("VER1").
pub const RECORD_MAGIC: u32 = 0x5652_4531;
pub const RECORD_HEADER: usize = 20;
/// Largest payload a record may carry (a video chunk of a few seconds fits).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;

/// Marks the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"VESPOOL1";
pub const SEGMENT_HEADER: usize = 32;

/// Appends one framed record to `out`.
pub fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Size on disk of a record with `len` payload bytes.
pub fn framed_len(len: usize) -> usize {
    RECORD_HEADER + len
}

/// The segment header: magic, incarnation, first sequence, CRC of those 24 bytes.
pub fn encode_segment_header(incarnation: u64, first_seq: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..16].copy_from_slice(&incarnation.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a segment header; `None` if it is not an intact header.
pub fn decode_segment_header(h: &[u8]) -> Option<(u64, u64)> {
    let h = h.get(..SEGMENT_HEADER)?;
    if &h[..8] != SEGMENT_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(h[24..28].try_into().ok()?);
    if crc32fast::hash(&h[..24]) != crc {
        return None;
    }
    let inc = u64::from_le_bytes(h[8..16].try_into().ok()?);
    let first = u64::from_le_bytes(h[16..24].try_into().ok()?);
    Some((inc, first))
}

/// What the scanner found at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An intact record; `end` is where the next one starts.
    Record {
        seq: u64,
        payload: std::ops::Range<usize>,
        end: usize,
    },
    /// The buffer ends inside a record (a torn write at the tail).
    Incomplete,
    /// Not an intact record here.
    Corrupt,
}

fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().ok()?))
}

/// Parses the record starting at `pos`.
pub fn parse_at(buf: &[u8], pos: usize) -> Parsed {
    if buf.len() < pos + RECORD_HEADER {
        return Parsed::Incomplete;
    }
    let (Some(magic), Some(len), Some(crc)) =
        (u32_at(buf, pos), u32_at(buf, pos + 4), u32_at(buf, pos + 8))
    else {
        return Parsed::Incomplete;
    };
    if magic != RECORD_MAGIC || len as usize > MAX_RECORD {
        return Parsed::Corrupt;
    }
    let start = pos + RECORD_HEADER;
    let end = start + len as usize;
    if buf.len() < end {
        return Parsed::Incomplete;
    }
    let seq_bytes = &buf[pos + 12..pos + 20];
    let mut h = crc32fast::Hasher::new();
    h.update(seq_bytes);
    h.update(&buf[start..end]);
    if h.finalize() != crc {
        return Parsed::Corrupt;
    }
    let seq = u64::from_le_bytes(seq_bytes.try_into().unwrap_or_default());
    Parsed::Record {
        seq,
        payload: start..end,
        end,
    }
}

/// The next intact record at or after `pos`, skipping damaged bytes: `(start, seq,
/// payload, end)`. `None` when nothing intact follows.
pub fn next_intact(buf: &[u8], pos: usize) -> Option<(usize, u64, std::ops::Range<usize>, usize)> {
    if let Parsed::Record { seq, payload, end } = parse_at(buf, pos) {
        return Some((pos, seq, payload, end));
    }
    let magic = RECORD_MAGIC.to_le_bytes();
    (pos + 1..buf.len().saturating_sub(3))
        .filter(|&p| buf[p..p + 4] == magic)
        .find_map(|p| match parse_at(buf, p) {
            Parsed::Record { seq, payload, end } => Some((p, seq, payload, end)),
            _ => None,
        })
}

/// Result of scanning a whole segment body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// `(seq, offset of the record)` for every intact record, in file order.
    pub records: Vec<(u64, usize)>,
    /// Where the intact data ends (the file is truncated here when repairing).
    pub valid_end: usize,
    /// Bytes skipped inside the file because they did not form intact records.
    pub corrupt_bytes: usize,
    /// Damaged places found (each may have cost one or more records).
    pub damaged_spots: usize,
    /// Bytes of an incomplete record at the end (a torn write).
    pub torn_bytes: usize,
}

/// Scans `buf` from `start`, keeping every intact record. After a damaged record it
/// resynchronises on the next magic whose record checks out.
pub fn scan(buf: &[u8], start: usize) -> ScanReport {
    let mut r = ScanReport {
        valid_end: start,
        ..Default::default()
    };
    let mut pos = start;
    let magic = RECORD_MAGIC.to_le_bytes();
    while pos < buf.len() {
        match parse_at(buf, pos) {
            Parsed::Record { seq, end, .. } => {
                r.records.push((seq, pos));
                pos = end;
                r.valid_end = end;
            }
            Parsed::Incomplete | Parsed::Corrupt => {
                // Look for the next intact record after this position.
                let next = (pos + 1..buf.len().saturating_sub(3))
                    .filter(|&p| buf[p..p + 4] == magic)
                    .find(|&p| matches!(parse_at(buf, p), Parsed::Record { .. }));
                match next {
                    Some(p) => {
                        r.corrupt_bytes += p - pos;
                        r.damaged_spots += 1;
                        pos = p;
                    }
                    None => {
                        // Nothing intact follows: a torn tail (or trailing garbage).
                        r.torn_bytes = buf.len() - pos;
                        break;
                    }
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for seq in 0..n {
            offsets.push(buf.len());
            encode_record(seq, format!("payload-{seq}").as_bytes(), &mut buf);
        }
        (buf, offsets)
    }

    #[test]
    fn round_trip() {
        let (buf, offs) = records(3);
        let r = scan(&buf, 0);
        assert_eq!(r.records, vec![(0, offs[0]), (1, offs[1]), (2, offs[2])]);
        assert_eq!(
            (r.valid_end, r.corrupt_bytes, r.torn_bytes),
            (buf.len(), 0, 0)
        );
        match parse_at(&buf, offs[1]) {
            Parsed::Record { seq, payload, .. } => {
                assert_eq!(seq, 1);
                assert_eq!(&buf[payload], b"payload-1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn torn_tail_is_dropped_at_every_cut() {
        let (buf, offs) = records(5);
        for cut in offs[4] + 1..buf.len() {
            let r = scan(&buf[..cut], 0);
            assert_eq!(r.records.len(), 4, "cut at {cut}");
            assert_eq!(r.valid_end, offs[4]);
            assert_eq!(r.torn_bytes, cut - offs[4]);
        }
    }

    #[test]
    fn flipped_bit_costs_one_record() {
        let (buf, offs) = records(10);
        for byte in offs[3]..offs[4] {
            for bit in [0, 3, 7] {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                let r = scan(&b, 0);
                let seqs: Vec<u64> = r.records.iter().map(|(s, _)| *s).collect();
                assert_eq!(
                    seqs,
                    vec![0, 1, 2, 4, 5, 6, 7, 8, 9],
                    "flip at {byte}.{bit}"
                );
                assert_eq!(r.damaged_spots, 1);
                assert_eq!(r.valid_end, buf.len());
            }
        }
    }

    #[test]
    fn segment_header() {
        let h = encode_segment_header(7, 42);
        assert_eq!(decode_segment_header(&h), Some((7, 42)));
        let mut bad = h;
        bad[10] ^= 1;
        assert_eq!(decode_segment_header(&bad), None);
        assert_eq!(decode_segment_header(&h[..10]), None);
    }
}
