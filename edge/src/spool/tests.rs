//! Spool behaviour: recovery, acks, damage, caps.

use super::*;

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 64 * 1024 * 1024,
        segment_bytes: 4096,
        fsync_interval: Duration::from_millis(5),
        cache_bytes: 1024,
        mqtt_streams: Vec::new(),
    }
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("venue-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cam() -> Id {
    Id::new("cam-1").unwrap_or_else(|e| panic!("{e}"))
}

/// Same length for every record, so tests can compute file offsets.
fn payload(inc: u64, seq: u64) -> Vec<u8> {
    format!("record {inc:020}/{seq:010} ")
        .repeat(2)
        .into_bytes()
}

/// Appends `n` records, committing every 10 like the committer thread would.
fn append_commit(spool: &Spool, h: &StreamHandle, n: u64) -> Vec<Pos> {
    (0..n)
        .map(|i| {
            let p = h.append_with(payload).unwrap_or_else(|e| panic!("{e}"));
            if i % 10 == 9 {
                spool.commit();
            }
            p
        })
        .collect()
}

fn append(h: &StreamHandle, n: u64) -> Vec<Pos> {
    (0..n)
        .map(|_| h.append_with(payload).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// Reads every record from `from` to the end, collecting gaps.
fn read_all(h: &StreamHandle, mut from: Pos) -> (Vec<Record>, Vec<(u64, u64, u64)>) {
    let (mut recs, mut gaps) = (Vec::new(), Vec::new());
    for _ in 0..100_000 {
        match h.read(from, 64).unwrap_or_else(|e| panic!("{e}")) {
            Read::Records(r) => {
                let last = r.last().map(|r| r.pos).unwrap_or(from);
                from = Pos {
                    incarnation: last.incarnation,
                    seq: last.seq + 1,
                };
                recs.extend(r);
            }
            Read::Gap {
                incarnation,
                from: a,
                to,
            } => {
                gaps.push((incarnation, a, to));
                from = Pos {
                    incarnation,
                    seq: to,
                };
            }
            Read::Empty => break,
        }
    }
    (recs, gaps)
}

#[test]
fn records_survive_reopen_in_order_under_the_old_incarnation() {
    let dir = temp("reopen");
    let (spool, report) = Spool::open(cfg(&dir), 100).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, 0);
    let h = spool.stream(&cam(), StreamKind::Meta);
    let written = append_commit(&spool, &h, 300);
    assert_eq!(
        written[0],
        Pos {
            incarnation: 100,
            seq: 0
        }
    );
    assert_eq!(written[299].seq, 299);
    spool.commit();
    drop((h, spool));

    let (spool, report) = Spool::open(cfg(&dir), 50).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.records, 300);
    assert_eq!((report.torn_bytes, report.lost_records), (0, 0));
    assert!(report.segments > 1, "small segments roll");
    // A new incarnation above every one on disk, even with a clock that went back.
    assert_eq!(spool.incarnation(), 101);
    let h = spool.stream(&cam(), StreamKind::Meta);
    let new = append(&h, 10);
    assert_eq!(
        new[0],
        Pos {
            incarnation: 101,
            seq: 0
        }
    );
    let first = h.first_unacked().unwrap_or_else(|| panic!("records"));
    assert_eq!(
        first,
        Pos {
            incarnation: 100,
            seq: 0
        }
    );
    let (recs, gaps) = read_all(&h, first);
    assert!(gaps.is_empty(), "{gaps:?}");
    assert_eq!(recs.len(), 310);
    for (i, r) in recs.iter().take(300).enumerate() {
        assert_eq!(
            r.pos,
            Pos {
                incarnation: 100,
                seq: i as u64
            }
        );
        assert_eq!(&*r.payload, payload(100, i as u64).as_slice());
    }
    assert_eq!(
        recs[300].pos,
        Pos {
            incarnation: 101,
            seq: 0
        }
    );
}

#[test]
fn acks_free_segments_and_survive_restart() {
    let dir = temp("ack");
    let (spool, _) = Spool::open(cfg(&dir), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    append_commit(&spool, &h, 400);
    spool.commit();
    let before = spool.used_bytes();
    h.ack(1, 299);
    assert!(spool.used_bytes() < before, "acked segments deleted");
    assert_eq!(
        h.first_unacked(),
        Some(Pos {
            incarnation: 1,
            seq: 300
        })
    );
    let (recs, gaps) = read_all(
        &h,
        Pos {
            incarnation: 1,
            seq: 300,
        },
    );
    assert_eq!((recs.len(), gaps.len()), (100, 0));
    drop((h, spool));
    let (spool, report) = Spool::open(cfg(&dir), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    assert!(report.records < 400, "acked segments were not recovered");
    assert_eq!(
        h.first_unacked(),
        Some(Pos {
            incarnation: 1,
            seq: 300
        })
    );
    h.ack(1, 399);
    assert_eq!(h.first_unacked(), None);
}

#[test]
fn torn_tail_at_any_byte_keeps_every_complete_record() {
    let dir = temp("torn");
    let (spool, _) = Spool::open(
        SpoolConfig {
            segment_bytes: 1 << 20,
            ..cfg(&dir)
        },
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    append(&h, 50);
    spool.commit();
    drop((h, spool));
    let seg_dir = dir.join("cam-1").join("meta");
    let seg = std::fs::read_dir(&seg_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap_or_else(|| panic!("segment"));
    let original = std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}"));
    let record_len = record::framed_len(payload(1, 0).len());
    for cut in [
        original.len() - 1,
        original.len() - record_len + 3,
        original.len() - 7 * record_len - 11,
    ] {
        std::fs::write(&seg, &original[..cut]).unwrap_or_else(|e| panic!("{e}"));
        let (spool, report) = Spool::open(
            SpoolConfig {
                segment_bytes: 1 << 20,
                ..cfg(&dir)
            },
            1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let complete = ((cut - record::SEGMENT_HEADER) / record_len) as u64;
        assert_eq!(report.records, complete, "cut at {cut}");
        assert!(report.torn_bytes > 0);
        let h = spool.stream(&cam(), StreamKind::Meta);
        let (recs, gaps) = read_all(
            &h,
            Pos {
                incarnation: 1,
                seq: 0,
            },
        );
        assert_eq!(recs.len() as u64, complete);
        assert!(gaps.is_empty());
        // The file was cut back to its last complete record.
        let len = std::fs::metadata(&seg).map(|m| m.len()).unwrap_or(0) as usize;
        assert_eq!(len, record::SEGMENT_HEADER + complete as usize * record_len);
    }
}

#[test]
fn flipped_bit_costs_one_record_and_is_reported_as_a_gap() {
    let dir = temp("flip");
    let big = SpoolConfig {
        segment_bytes: 1 << 20,
        ..cfg(&dir)
    };
    let (spool, _) = Spool::open(big.clone(), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    append(&h, 40);
    spool.commit();
    drop((h, spool));
    let seg = dir.join("cam-1").join("meta").join(segment_name(1, 0));
    let mut bytes = std::fs::read(&seg).unwrap_or_else(|e| panic!("{e}"));
    let record_len = record::framed_len(payload(1, 0).len());
    bytes[record::SEGMENT_HEADER + 17 * record_len + 25] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap_or_else(|e| panic!("{e}"));

    let (spool, report) = Spool::open(big, 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (report.records, report.lost_records, report.damaged_spots),
        (39, 1, 1)
    );
    let h = spool.stream(&cam(), StreamKind::Meta);
    assert_eq!(h.counters().lost_damaged, 1);
    let (recs, gaps) = read_all(
        &h,
        Pos {
            incarnation: 1,
            seq: 0,
        },
    );
    assert_eq!(recs.len(), 39);
    assert_eq!(gaps, vec![(1, 17, 18)]);
    assert!(recs.iter().all(|r| r.pos.seq != 17));
}

#[test]
fn full_spool_refuses_and_counts() {
    let dir = temp("full");
    let (spool, _) = Spool::open(
        SpoolConfig {
            max_bytes: 2000,
            ..cfg(&dir)
        },
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    let mut ok = 0;
    let mut refused = 0;
    for _ in 0..100 {
        match h.append_with(payload) {
            Ok(_) => ok += 1,
            Err(AppendError::Full { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok > 0 && refused > 0);
    assert_eq!(h.counters().lost_full, refused);
    // Refused records take no sequence: what is stored stays gap-free.
    assert_eq!(h.end().seq, ok);
    // Acknowledging frees space again.
    spool.commit();
    h.ack(1, ok - 1);
    assert!(spool.used_bytes() <= 2000);
}

/// A spool capped at 20 kB in 2 kB segments, with `n` records of 400 bytes
/// appended to `first` (one commit each).
fn small_spool_with(dir: &Path, first: StreamKind, n: usize) -> (Spool, StreamHandle) {
    let (spool, _) = Spool::open(
        SpoolConfig {
            max_bytes: 20_000,
            segment_bytes: 2048,
            ..cfg(dir)
        },
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), first);
    for _ in 0..n {
        let _ = h.append_with(|_, _| vec![7u8; 400]);
        spool.commit();
    }
    (spool, h)
}

#[test]
fn video_is_evicted_first_and_counted() {
    let dir = temp("evict");
    let (spool, video) = small_spool_with(&dir, StreamKind::Video, 40);
    let meta = spool.stream(&cam(), StreamKind::Meta);
    for _ in 0..20 {
        meta.append_with(payload)
            .unwrap_or_else(|e| panic!("metadata refused: {e}"));
        spool.commit();
    }
    assert!(video.counters().lost_evicted > 0);
    assert_eq!(meta.counters().lost_full, 0);
    let (_, gaps) = read_all(
        &video,
        Pos {
            incarnation: 1,
            seq: 0,
        },
    );
    assert_eq!(
        gaps.first().map(|g| (g.0, g.1)),
        Some((1, 0)),
        "evicted video reads as a gap from 0"
    );
    let (recs, gaps) = read_all(
        &meta,
        Pos {
            incarnation: 1,
            seq: 0,
        },
    );
    assert_eq!((recs.len(), gaps.len()), (20, 0));
}

/// Event clips are evictable video too, but only once no chunk segment is left to
/// evict: the continuous stream goes before the events' own clips.
#[test]
fn clips_are_evicted_after_video_chunks() {
    let dir = temp("evict-clips");
    let (spool, clips) = small_spool_with(&dir, StreamKind::Clip, 10);
    let video = spool.stream(&cam(), StreamKind::Video);
    for _ in 0..40 {
        let _ = video.append_with(|_, _| vec![7u8; 400]);
        spool.commit();
    }
    assert!(video.counters().lost_evicted > 0);
    assert_eq!(
        clips.counters().lost_evicted,
        0,
        "clips kept while chunks remain"
    );
    // Only clips left to evict: they go, oldest first, and are counted.
    for _ in 0..40 {
        let _ = clips.append_with(|_, _| vec![1u8; 400]);
        spool.commit();
    }
    assert!(clips.counters().lost_evicted > 0);
    assert!(spool.used_bytes() <= 20_000);
}

/// The cache's limit and its gauge count each record's slot as well as its
/// payload: small metadata records would otherwise hold a quarter more memory
/// than the limit says.
#[test]
fn the_cache_counts_each_records_slot_against_its_limit() {
    let dir = temp("cache-slots");
    let (spool, _) = Spool::open(cfg(&dir), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    append(&h, 200);
    spool.commit();
    append(&h, 1);
    let size = payload(1, 0).len() + stream::RECORD_OVERHEAD;
    let state = lock(&h.entry.state);
    assert!(state.cache_bytes <= 1024 + size, "{}", state.cache_bytes);
    assert_eq!(state.cache_bytes, state.cache.len() * size);
    // Counting payloads alone it would keep 1024 / 78 = 13 of them.
    assert!(
        state.cache.len() < 1024 / payload(1, 0).len(),
        "{}",
        state.cache.len()
    );
    let held = state.cache_memory() as u64;
    assert!(held >= (state.cache.capacity() * stream::RECORD_OVERHEAD) as u64);
    drop(state);
    assert_eq!(spool.cache_bytes(), held, "the gauge reads the same");
}

#[test]
fn cache_serves_unwritten_records_and_disk_serves_old_ones() {
    let dir = temp("cache");
    let (spool, _) = Spool::open(cfg(&dir), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    append(&h, 5);
    // Not committed yet: served from memory.
    let (recs, _) = read_all(
        &h,
        Pos {
            incarnation: 1,
            seq: 0,
        },
    );
    assert_eq!(recs.len(), 5);
    append(&h, 200);
    spool.commit();
    // The small cache dropped early records after they became durable.
    let (recs, gaps) = read_all(
        &h,
        Pos {
            incarnation: 1,
            seq: 0,
        },
    );
    assert_eq!((recs.len(), gaps.len()), (205, 0));
    let (recs, _) = read_all(
        &h,
        Pos {
            incarnation: 1,
            seq: 150,
        },
    );
    assert_eq!(recs.first().map(|r| r.pos.seq), Some(150));
    assert!(h.first_unacked().is_some_and(|p| p.seq == 0));
    assert!(!lock(&h.entry.state).on_disk(Pos {
        incarnation: 1,
        seq: 999
    }));
}

#[test]
fn a_spool_in_use_cannot_be_opened_twice() {
    let dir = temp("lock");
    let (spool, _) = Spool::open(cfg(&dir), 1).unwrap_or_else(|e| panic!("{e}"));
    match Spool::open(cfg(&dir), 1) {
        Err(SpoolError::Locked { path }) => assert_eq!(path, dir),
        other => panic!("second open: {other:?}"),
    }
    drop(spool);
    assert!(
        Spool::open(cfg(&dir), 1).is_ok(),
        "the lock goes with the spool"
    );
}

#[test]
fn a_stream_on_both_transports_is_deleted_only_when_both_acked() {
    let dir = temp("two-transports");
    let both = SpoolConfig {
        mqtt_streams: vec![StreamKind::Event],
        ..cfg(&dir)
    };
    let (spool, _) = Spool::open(both.clone(), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Event);
    append_commit(&spool, &h, 400);
    spool.commit();
    let full = spool.used_bytes();
    let at = |seq| {
        Some(Pos {
            incarnation: 1,
            seq,
        })
    };

    // Zenoh far ahead: nothing is deleted while MQTT has acknowledged nothing, and
    // each sender resumes from its own cursor.
    h.ack_by(Transport::Zenoh, 1, 349);
    assert_eq!(spool.used_bytes(), full, "deleted before MQTT acknowledged");
    assert_eq!(h.first_unacked(), at(0));
    assert_eq!(h.first_unacked_by(Transport::Zenoh), at(350));
    assert_eq!(h.first_unacked_by(Transport::Mqtt), at(0));

    // The minimum of the two cursors decides.
    h.ack_by(Transport::Mqtt, 1, 199);
    assert!(spool.used_bytes() < full, "acked by both, still kept");
    assert_eq!(h.first_unacked(), at(200));
    assert_eq!(h.first_unacked_by(Transport::Mqtt), at(200));
    // A cursor never goes back.
    h.ack_by(Transport::Mqtt, 1, 100);
    assert_eq!(h.first_unacked_by(Transport::Mqtt), at(200));

    // Both cursors survive a restart, in the same files.
    drop((h, spool));
    let (spool, _) = Spool::open(both, 2).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Event);
    assert_eq!(h.first_unacked_by(Transport::Zenoh), at(350));
    assert_eq!(h.first_unacked_by(Transport::Mqtt), at(200));
    assert_eq!(h.first_unacked(), at(200));

    // A spool whose stream is on zenoh only (MQTT switched off) trims at zenoh's.
    drop((h, spool));
    let (spool, _) = Spool::open(cfg(&dir), 3).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Event);
    assert_eq!(h.first_unacked(), at(350));
    h.ack_by(Transport::Zenoh, 1, 399);
    assert_eq!(h.first_unacked(), None);
}

#[test]
fn batches_are_cut_into_record_aligned_pieces() {
    let mut batch = Vec::new();
    for seq in 10..20u64 {
        record::encode_record(seq, &[7u8; 100], &mut batch);
    }
    let one = record::framed_len(100);
    let pieces = record_pieces(&batch, 3 * one + 1);
    assert_eq!(
        pieces,
        vec![(3 * one, 12), (6 * one, 15), (9 * one, 18), (10 * one, 19)]
    );
    // A record larger than a piece is a piece of its own.
    assert_eq!(record_pieces(&batch[..one], 10), vec![(one, 10)]);
    assert!(record_pieces(&[], 10).is_empty());
}

/// Index entries kept over every segment of a stream.
fn index_entries(h: &StreamHandle) -> usize {
    lock(&h.entry.state)
        .segments
        .iter()
        .map(|s| s.index.len())
        .sum()
}

#[test]
fn the_index_stays_sparse_when_every_record_is_its_own_commit() {
    // A camera's metadata: small records, each committed on its own (the committer
    // runs every few ms), never acknowledged. Was one entry per record.
    let dir = temp("sparse-index");
    let big = SpoolConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..cfg(&dir)
    };
    let (spool, _) = Spool::open(big.clone(), 1).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    let n = 2000u64;
    for _ in 0..n {
        h.append_with(payload).unwrap_or_else(|e| panic!("{e}"));
        spool.commit();
    }
    let bound = (n / stream::INDEX_EVERY) as usize + 1;
    assert!(
        index_entries(&h) <= bound,
        "{} index entries for {n} records (at most {bound})",
        index_entries(&h)
    );
    // Every record is still found on disk (the cache is 1 KiB).
    for from in [0, 1, 127, 128, 1000, n - 1] {
        let (recs, gaps) = read_all(
            &h,
            Pos {
                incarnation: 1,
                seq: from,
            },
        );
        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(recs.first().map(|r| r.pos.seq), Some(from));
        assert_eq!(recs.len() as u64, n - from);
    }
    drop((h, spool));
    let (spool, _) = Spool::open(big, 2).unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Meta);
    assert!(index_entries(&h) <= bound, "{}", index_entries(&h));
}

/// Record `seq` of incarnation 1 reads back as `size` bytes of `seq`.
fn assert_filled(h: &StreamHandle, seq: u64, size: usize) {
    match h.read(
        Pos {
            incarnation: 1,
            seq,
        },
        1,
    ) {
        Ok(Read::Records(r)) => {
            assert_eq!(r[0].pos.seq, seq);
            assert_eq!(r[0].payload.len(), size, "record {seq}");
            assert!(r[0].payload.iter().all(|b| *b == seq as u8));
        }
        other => panic!("record {seq}: {other:?}"),
    }
}

#[test]
fn large_records_written_together_are_read_back_from_disk() {
    // Video chunks or clips after a stall: many large records in one commit, more
    // than one read window from the batch's first record.
    let dir = temp("large-records");
    let (spool, _) = Spool::open(
        SpoolConfig {
            segment_bytes: 64 * 1024 * 1024,
            ..cfg(&dir)
        },
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let h = spool.stream(&cam(), StreamKind::Video);
    let size = 600 * 1024;
    let n = (2 * stream::READ_WINDOW as usize / size + 2) as u64;
    for seq in 0..n {
        h.append_with(|_, _| vec![seq as u8; size])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    spool.commit();
    let check = |h: &StreamHandle| {
        for seq in [0, n / 2, n - 1] {
            assert_filled(h, seq, size);
        }
    };
    check(&h);
    drop((h, spool));
    // And after a restart, with the index rebuilt from the file.
    let (spool, _) = Spool::open(
        SpoolConfig {
            segment_bytes: 64 * 1024 * 1024,
            ..cfg(&dir)
        },
        2,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    check(&spool.stream(&cam(), StreamKind::Video));
}

#[test]
fn records_larger_than_the_read_window_are_read_back_from_disk() {
    // A long event clip is bigger than one read window: read whole when it is
    // the record wanted, stepped over when a later one is.
    let dir = temp("huge-records");
    let open = |incarnation| {
        Spool::open(
            SpoolConfig {
                segment_bytes: 64 * 1024 * 1024,
                ..cfg(&dir)
            },
            incarnation,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .0
    };
    let spool = open(1);
    let h = spool.stream(&cam(), StreamKind::Clip);
    let huge = stream::READ_WINDOW as usize + 1024 * 1024;
    let size = |seq: u64| if seq % 2 == 1 { huge } else { 1000 };
    for seq in 0..5u64 {
        h.append_with(|_, _| vec![seq as u8; size(seq)])
            .unwrap_or_else(|e| panic!("{e}"));
        // Each on its own commit, so the index holds some and not others.
        spool.commit();
    }
    let check = |h: &StreamHandle| {
        for seq in 0..5u64 {
            assert_filled(h, seq, size(seq));
        }
    };
    check(&h);
    drop((h, spool));
    let spool = open(2);
    check(&spool.stream(&cam(), StreamKind::Clip));
}
