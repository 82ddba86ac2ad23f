//! Segment life cycle: rollover, many segments, removal of whole segments
//! by retention, expiry and purge, compaction, the write buffer, and the
//! last sequence surviving a purge of everything and a restart.

use std::fs;
use std::path::Path;
use std::time::Duration;

use herald_storage::*;

use super::common::{files_with_ext, small_segments, snapshot, TestFileStore};

fn dir_bytes(dir: &Path) -> u64 {
    // Bytes of all segment files.
    files_with_ext(dir, "seg")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn fill(s: &mut dyn Store, from: u64, to: u64) {
    for i in from..=to {
        let payload = vec![(i % 251) as u8; (i % 40) as usize];
        s.append(&format!("m.{}", i % 6), b"", &payload, i as i64 * 2)
            .unwrap();
    }
}

#[test]
fn rollover_into_many_segments() {
    let mut s = TestFileStore::new(small_segments(300));
    fill(&mut s, 1, 2000);
    s.write_out().unwrap();
    let segs = files_with_ext(s.path(), "seg");
    assert!(segs.len() > 100, "{} segments", segs.len());
    assert_eq!(s.inner().segment_count(), segs.len());
    // Sealed segments stop at the first record past the limit.
    for p in &segs {
        assert!(fs::metadata(p).unwrap().len() <= 300 + 120, "{p:?}");
    }
    assert_eq!(files_with_ext(s.path(), "idx").len(), segs.len() - 1);
    // Names are the first sequence of each segment.
    let first: u64 = segs[1].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(s.get(first).unwrap().is_some() && first > 1);
    let before = snapshot(&mut s);
    let rec = s.reopen();
    assert_eq!(
        (rec.segments, rec.indexes_loaded, rec.segments_scanned),
        (segs.len() as u64, segs.len() as u64 - 1, 1)
    );
    assert_eq!(rec.msgs, 2000);
    assert_eq!(snapshot(&mut s), before);
    for t in [0, 1, 2, 3, 1999, 2000, 2001, 3999, 4000, 4001] {
        assert_eq!(
            s.seq_at_time(t).unwrap(),
            (t as u64).div_ceil(2).max(1),
            "time {t}"
        );
    }
}

#[test]
fn retention_removes_whole_segment_files() {
    let mut s = TestFileStore::new(StoreConfig {
        max_msgs: Some(100),
        ..small_segments(512)
    });
    fill(&mut s, 1, 5000);
    s.write_out().unwrap();
    let segs = files_with_ext(s.path(), "seg").len();
    assert!(segs < 20, "{segs} segment files kept for 100 messages");
    assert_eq!(s.state().msgs, 100);
    assert_eq!(s.state().first_seq, 4901);
    let before = snapshot(&mut s);
    s.reopen();
    assert_eq!(snapshot(&mut s), before);
}

#[test]
fn expire_removes_whole_segment_files() {
    let mut s = TestFileStore::new(StoreConfig {
        max_age: Some(Duration::from_nanos(100)),
        ..small_segments(400)
    });
    fill(&mut s, 1, 1000);
    let many = files_with_ext(s.path(), "seg").len();
    assert_eq!(s.expire(2000).unwrap(), 950);
    assert_eq!(s.state().first_seq, 951);
    assert!(files_with_ext(s.path(), "seg").len() < many / 5);
    let before = snapshot(&mut s);
    s.reopen();
    assert_eq!(snapshot(&mut s), before);
}

#[test]
fn purge_all_is_cheap_and_last_seq_survives_restart() {
    let mut s = TestFileStore::new(small_segments(512));
    fill(&mut s, 1, 3000);
    s.delete(2999).unwrap();
    assert!(files_with_ext(s.path(), "seg").len() > 50);
    assert_eq!(s.purge(&Purge::default()).unwrap(), 2999);
    assert_eq!(files_with_ext(s.path(), "seg").len(), 1);
    assert_eq!(files_with_ext(s.path(), "idx").len(), 0);
    let expected = StoreState {
        first_seq: 3001,
        last_seq: 3000,
        last_time_ns: 6000,
        ..StoreState::default()
    };
    assert_eq!(s.state(), expected);
    // Even without write_out: purge-all syncs its new segment.
    let dir = s.path().to_owned();
    let kept = s.dir.path().to_owned();
    drop(s.store.take());
    let (mut store, rec) = FileStore::open(&dir, small_segments(512)).unwrap();
    assert_eq!((rec.msgs, rec.truncated_bytes), (0, 0));
    assert_eq!(store.state(), expected);
    assert_eq!(store.append("m.1", b"", b"next", 7000).unwrap().seq, 3001);
    assert_eq!(kept, dir);
}

#[test]
fn retention_emptying_the_store_keeps_last_seq_and_time() {
    let mut s = TestFileStore::new(StoreConfig {
        max_bytes: Some(10),
        ..small_segments(256)
    });
    for i in 1..=50 {
        assert_eq!(
            s.append("x", b"", b"too big for the limit", i).unwrap().removed,
            1
        );
    }
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.last_time_ns),
        (0, 51, 50, 50)
    );
    s.reopen();
    assert_eq!(s.state(), st);
}

#[test]
fn purge_all_with_an_empty_active_segment() {
    // A crash right after a new segment file was created: the last
    // segment holds no record at all.
    let mut s = TestFileStore::new(small_segments(512));
    fill(&mut s, 1, 100);
    s.write_out().unwrap();
    drop(s.store.take());
    fs::write(s.path().join("00000000000000000101.seg"), b"").unwrap();
    s.store = Some(FileStore::open(s.path(), small_segments(512)).unwrap().0);
    assert_eq!(s.state().msgs, 100);
    assert_eq!(s.purge(&Purge::default()).unwrap(), 100);
    assert_eq!(files_with_ext(s.path(), "seg").len(), 1);
    s.reopen();
    assert_eq!(s.state().last_seq, 100);
    assert_eq!(s.state().last_time_ns, 200);
    assert_eq!(s.append("a", b"", b"", 1).unwrap().seq, 101);
}

#[test]
fn compaction_reclaims_space_and_keeps_everything_else() {
    let mut s = TestFileStore::new(small_segments(1024));
    fill(&mut s, 1, 3000);
    s.write_out().unwrap();
    let sizes = |dir: &Path| {
        files_with_ext(dir, "seg")
            .into_iter()
            .map(|p| (p.clone(), fs::metadata(&p).unwrap().len()))
            .collect::<Vec<_>>()
    };
    let full = sizes(s.path());
    // Keep one message in three: more than half of every segment is dead.
    for q in 1..=3000 {
        if q % 3 != 0 {
            s.delete(q).unwrap();
        }
    }
    s.write_out().unwrap();
    // Every sealed segment of the original messages was rewritten smaller
    // (the tombstones the deletes wrote are in newer segments).
    let (_, sealed) = full.split_last().unwrap();
    for (path, before) in sealed {
        let after = fs::metadata(path).unwrap().len();
        assert!(after * 10 < before * 6, "{path:?}: {before} -> {after}");
    }
    let before = snapshot(&mut s);
    assert_eq!(before.state.msgs, 1000);
    s.reopen();
    assert_eq!(snapshot(&mut s), before);
    assert_eq!(s.count_matching(0, &SubjectFilter::one("m.3")), 500);
    assert_eq!(
        s.next_matching(1, &SubjectFilter::one("m.3"))
            .unwrap()
            .unwrap()
            .seq,
        3
    );
}

#[test]
fn write_buffer_reads_and_crash_before_write_out() {
    let mut s = TestFileStore::new(StoreConfig::default());
    s.append("a", b"", b"written", 1).unwrap();
    s.write_out().unwrap();
    let on_disk = dir_bytes(s.path());
    s.append("a", b"h", b"buffered", 2).unwrap();
    assert_eq!(dir_bytes(s.path()), on_disk, "append must not write");
    assert_eq!(s.get(2).unwrap().unwrap().payload.as_ref(), b"buffered");
    assert_eq!(s.last_matching(&SubjectFilter::one("a")).unwrap().unwrap().seq, 2);
    assert_eq!(s.seq_at_time(2).unwrap(), 2);
    s.delete(1).unwrap();
    assert_eq!(s.state().first_time_ns, 2);
    // A crash now loses what was not written out, and nothing else.
    drop(s.store.take());
    let (mut store, rec) = FileStore::open(s.path(), StoreConfig::default()).unwrap();
    assert_eq!((rec.msgs, rec.truncated_bytes), (1, 0));
    assert_eq!(store.get(1).unwrap().unwrap().payload.as_ref(), b"written");
    assert_eq!(store.state().last_seq, 1);
    store.sync().unwrap();
}

#[test]
fn sync_survives_reopen() {
    let mut s = TestFileStore::new(small_segments(256));
    fill(&mut s, 1, 200);
    s.inner().sync().unwrap();
    let before = snapshot(&mut s);
    drop(s.store.take());
    let (mut store, _) = FileStore::open(s.path(), small_segments(256)).unwrap();
    assert_eq!(snapshot(&mut store), before);
}

#[test]
fn too_large_messages_are_refused() {
    let mut s = TestFileStore::new(StoreConfig::default());
    let long_subject = "s".repeat(70_000);
    assert!(matches!(
        s.append(&long_subject, b"", b"", 1),
        Err(StoreError::TooLarge)
    ));
    assert_eq!(s.state().last_seq, 0);
    assert_eq!(s.state().num_subjects, 0);
    assert_eq!(s.append("ok", b"", b"", 1).unwrap().seq, 1);
}

#[test]
fn per_subject_limit_across_segments() {
    let mut s = TestFileStore::new(StoreConfig {
        max_msgs_per_subject: Some(1),
        ..small_segments(300)
    });
    // A "last value" stream: one message per key survives, old segments
    // are compacted or removed.
    for i in 1..=3000u64 {
        s.append(&format!("key.{}", i % 10), b"", &[1; 20], i as i64)
            .unwrap();
    }
    s.write_out().unwrap();
    assert_eq!(s.state().msgs, 10);
    assert_eq!(s.state().first_seq, 2991);
    assert!(files_with_ext(s.path(), "seg").len() < 10);
    let before = snapshot(&mut s);
    s.reopen();
    assert_eq!(snapshot(&mut s), before);
    assert_eq!(s.last_seq_of_subject("key.3"), Some(2993));
}
