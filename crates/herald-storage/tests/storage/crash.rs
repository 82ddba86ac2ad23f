//! Crash and corruption: torn tails at every byte, flipped bytes, zeroed
//! tails, damaged or stale `.idx` files, a corrupt sealed segment, and
//! compaction interrupted at each step. Opening must succeed (or fail with
//! an error, never a panic), keep every intact record and report what it
//! dropped.

use std::fs;
use std::path::{Path, PathBuf};

use herald_storage::*;

use super::common::{copy_dir, files_with_ext, small_segments, snapshot, Snapshot};

fn payload(i: u64) -> Vec<u8> {
    (0..(i * 5 % 40)).map(|b| (b + i) as u8).collect()
}

/// A one-segment store with `n` messages; returns the segment path, its
/// bytes, the file length after each message (index 0: none) and the
/// messages.
fn one_segment(dir: &Path, n: u64) -> (PathBuf, Vec<u8>, Vec<u64>, Vec<StoredMessage>) {
    let (mut s, _) = FileStore::open(dir, StoreConfig::default()).unwrap();
    s.write_out().unwrap();
    let seg = files_with_ext(dir, "seg").pop().unwrap();
    let mut lens = vec![fs::metadata(&seg).unwrap().len()];
    for i in 1..=n {
        let hdr: &[u8] = if i % 3 == 0 {
            b"NATS/1.0\r\nX: y\r\n\r\n"
        } else {
            b""
        };
        s.append(&format!("t.{}", i % 4), hdr, &payload(i), i as i64 * 10)
            .unwrap();
        s.write_out().unwrap();
        lens.push(fs::metadata(&seg).unwrap().len());
    }
    let msgs = (1..=n).map(|q| s.get(q).unwrap().unwrap()).collect();
    drop(s);
    (seg.clone(), fs::read(&seg).unwrap(), lens, msgs)
}

fn open_damaged(bytes: &[u8], seg_name: &std::ffi::OsStr) -> (tempfile::TempDir, FileStore, Recovery) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(seg_name), bytes).unwrap();
    let (s, rec) = FileStore::open(dir.path(), StoreConfig::default()).expect("open after damage");
    (dir, s, rec)
}

fn check_prefix(s: &mut FileStore, msgs: &[StoredMessage], intact: usize) {
    assert_eq!(s.state().msgs, intact as u64);
    assert_eq!(s.state().last_seq, intact as u64);
    for (i, m) in msgs.iter().enumerate() {
        let got = s.get(m.seq).unwrap();
        if i < intact {
            assert_eq!(got.as_ref(), Some(m));
        } else {
            assert_eq!(got, None);
        }
    }
}

#[test]
fn torn_tail_at_every_byte_offset() {
    let src = tempfile::tempdir().unwrap();
    let (seg, bytes, lens, msgs) = one_segment(src.path(), 12);
    let name = seg.file_name().unwrap();
    for cut in lens[9]..=lens[12] {
        let (dir, mut s, rec) = open_damaged(&bytes[..cut as usize], name);
        let intact = lens.iter().rposition(|&l| l <= cut).unwrap();
        assert_eq!(rec.msgs, intact as u64, "cut at {cut}");
        assert_eq!(rec.truncated_bytes, cut - lens[intact], "cut at {cut}");
        assert_eq!(rec.dropped_records, u64::from(cut > lens[intact]), "cut at {cut}");
        check_prefix(&mut s, &msgs, intact);
        assert_eq!(fs::metadata(dir.path().join(name)).unwrap().len(), lens[intact]);
        // The store goes on where the intact records end.
        assert_eq!(s.append("after", b"", b"x", 1000).unwrap().seq, intact as u64 + 1);
        s.write_out().unwrap();
        drop(s);
        let (s, rec) = FileStore::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!((rec.truncated_bytes, rec.dropped_records), (0, 0));
        assert_eq!(s.state().msgs, intact as u64 + 1);
    }
}

#[test]
fn flipped_bytes_in_the_tail() {
    let src = tempfile::tempdir().unwrap();
    let (seg, bytes, lens, msgs) = one_segment(src.path(), 12);
    let name = seg.file_name().unwrap();
    for pos in lens[10]..lens[12] {
        for bit in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[pos as usize] ^= bit;
            let (_dir, mut s, rec) = open_damaged(&bad, name);
            let intact = lens.iter().rposition(|&l| l <= pos).unwrap();
            assert_eq!(rec.msgs, intact as u64, "flip at {pos}");
            assert_eq!(rec.truncated_bytes, lens[12] - lens[intact], "flip at {pos}");
            assert!(rec.dropped_records >= 1);
            check_prefix(&mut s, &msgs, intact);
        }
    }
}

#[test]
fn zeroed_tail_after_power_loss() {
    let src = tempfile::tempdir().unwrap();
    let (seg, mut bytes, lens, msgs) = one_segment(src.path(), 5);
    bytes.extend_from_slice(&[0; 300]);
    let (_dir, mut s, rec) = open_damaged(&bytes, seg.file_name().unwrap());
    assert_eq!(rec.truncated_bytes, 300);
    assert_eq!(rec.msgs, 5);
    check_prefix(&mut s, &msgs, 5);
    assert_eq!(lens.len(), 6);
}

#[test]
fn garbage_files_never_panic() {
    let name = std::ffi::OsStr::new("00000000000000000001.seg");
    // Not a segment header: the last segment is reset.
    let (_d, s, rec) = open_damaged(&[0xAB; 100], name);
    assert_eq!((s.state().msgs, rec.truncated_bytes), (0, 100));
    // A torn header.
    let (_d, s, _) = open_damaged(b"HRLD", name);
    assert_eq!(s.state().msgs, 0);
    // A newer format version is an error, not a truncation.
    let mut header = b"HRLDSEG\0".to_vec();
    header.extend_from_slice(&99u32.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(name), &header).unwrap();
    assert!(matches!(
        FileStore::open(dir.path(), StoreConfig::default()),
        Err(StoreError::Corrupt { .. })
    ));
    // Random damage anywhere in a multi-segment store: open and reads may
    // fail with errors but never panic.
    let src = tempfile::tempdir().unwrap();
    build(src.path(), 300);
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..60 {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(src.path(), dir.path());
        let mut files = files_with_ext(dir.path(), "seg");
        files.extend(files_with_ext(dir.path(), "idx"));
        for _ in 0..3 {
            let f = &files[(next() % files.len() as u64) as usize];
            let mut b = fs::read(f).unwrap();
            if b.is_empty() {
                continue;
            }
            let at = (next() % b.len() as u64) as usize;
            let n = (next() % 8 + 1) as usize;
            for x in b.iter_mut().skip(at).take(n) {
                *x = next() as u8;
            }
            fs::write(f, b).unwrap();
        }
        if let Ok((mut s, _)) = FileStore::open(dir.path(), small_segments(512)) {
            let last = s.state().last_seq;
            for q in 0..=last + 1 {
                let _ = s.get(q);
            }
            let _ = s.next_matching(0, &SubjectFilter::one("k.*"));
            let _ = s.purge(&Purge {
                filter: SubjectFilter::one("k.1"),
                ..Purge::default()
            });
            let _ = s.append("z", b"", b"after damage", 1);
        }
    }
}

/// The message [`build`] appends as `seq`.
fn message(seq: u64) -> StoredMessage {
    StoredMessage {
        seq,
        time_ns: seq as i64,
        subject: format!("k.{}", seq % 5),
        headers: Default::default(),
        payload: payload(seq).into(),
    }
}

/// A multi-segment store (512-byte segments) with deletions; returns its
/// snapshot after a clean reopen.
fn build(dir: &Path, n: u64) -> Snapshot {
    let (mut s, _) = FileStore::open(dir, small_segments(512)).unwrap();
    for i in 1..=n {
        let m = message(i);
        s.append(&m.subject, b"", &m.payload, m.time_ns).unwrap();
        if i % 4 == 0 {
            s.delete(i - 2).unwrap();
        }
    }
    s.write_out().unwrap();
    drop(s);
    let (mut s, rec) = FileStore::open(dir, small_segments(512)).unwrap();
    assert_eq!(rec.indexes_loaded + 1, rec.segments, "{rec:?}");
    snapshot(&mut s)
}

fn reopen_snapshot(dir: &Path) -> (Snapshot, Recovery) {
    let (mut s, rec) = FileStore::open(dir, small_segments(512)).unwrap();
    (snapshot(&mut s), rec)
}

#[test]
fn damaged_or_stale_index_falls_back_to_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path(), 300);
    let idxs = files_with_ext(dir.path(), "idx");
    assert!(idxs.len() >= 5);
    type Damage = (&'static str, fn(&mut Vec<u8>));
    let damage: [Damage; 4] = [
        ("flipped", |b| {
            let mid = b.len() / 2;
            b[mid] ^= 0x10
        }),
        ("truncated", |b| b.truncate(b.len() - 3)),
        ("emptied", |b| b.clear()),
        ("header flipped", |b| b[30] ^= 1),
    ];
    for (what, f) in damage {
        let victim = &idxs[2];
        let mut b = fs::read(victim).unwrap();
        f(&mut b);
        fs::write(victim, b).unwrap();
        let (got, rec) = reopen_snapshot(dir.path());
        assert_eq!(got, expected, "{what}");
        assert_eq!(rec.indexes_loaded + 2, rec.segments, "{what}: {rec:?}");
        assert_eq!(rec.segments_scanned, 2, "{what}");
        // The scan rebuilt the index.
        let (_, rec) = reopen_snapshot(dir.path());
        assert_eq!(rec.indexes_loaded + 1, rec.segments, "{what}: rebuilt");
    }
    // A missing index.
    fs::remove_file(&idxs[1]).unwrap();
    let (got, rec) = reopen_snapshot(dir.path());
    assert_eq!(got, expected);
    assert_eq!(rec.segments_scanned, 2);
    // An index of another segment under this name.
    fs::copy(&idxs[3], &idxs[1]).unwrap();
    let (got, rec) = reopen_snapshot(dir.path());
    assert_eq!(got, expected);
    assert_eq!(rec.segments_scanned, 2);
    // A stale index: the segment grew (junk after its last record).
    let segs = files_with_ext(dir.path(), "seg");
    let mut b = fs::read(&segs[2]).unwrap();
    b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7]);
    fs::write(&segs[2], b).unwrap();
    let (got, rec) = reopen_snapshot(dir.path());
    assert_eq!(got, expected);
    assert_eq!((rec.skipped_bytes, rec.dropped_records), (7, 1));
}

#[test]
fn corrupt_sealed_segment_keeps_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let expected = build(dir.path(), 300);
    let segs = files_with_ext(dir.path(), "seg");
    let idxs = files_with_ext(dir.path(), "idx");
    let victim = &segs[3];
    let mut b = fs::read(victim).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x55;
    fs::write(victim, b).unwrap();
    fs::remove_file(&idxs[3]).unwrap();
    let (got, rec) = reopen_snapshot(dir.path());
    assert!(rec.skipped_bytes > 0 && rec.dropped_records >= 1, "{rec:?}");
    assert_eq!(rec.truncated_bytes, 0);
    // Every message left is the one appended with that sequence; only
    // messages of the damaged segment are missing, and not all of them.
    // (Messages whose tombstone was in the lost part come back.)
    for m in &got.msgs {
        assert_eq!(*m, message(m.seq));
    }
    let lost: Vec<u64> = expected
        .msgs
        .iter()
        .filter(|m| !got.msgs.contains(m))
        .map(|m| m.seq)
        .collect();
    assert!(!lost.is_empty());
    let base: u64 = victim.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let next: u64 = segs[4].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(
        lost.iter().all(|&q| q > base && q < next),
        "lost {lost:?} outside ({base}, {next})"
    );
    assert!(got.msgs.iter().any(|m| m.seq >= base && m.seq < next));
    assert_eq!(got.state.last_seq, expected.state.last_seq);
}

/// A store with one sealed segment that is mostly deleted (and so gets
/// compacted); returns the snapshot and that segment's path.
fn compacted_store(dir: &Path) -> (Snapshot, PathBuf, Vec<u8>, Vec<u8>) {
    let (mut s, _) = FileStore::open(dir, small_segments(1024)).unwrap();
    for i in 1..=200u64 {
        s.append(&format!("k.{}", i % 3), b"", &payload(i), i as i64)
            .unwrap();
    }
    s.write_out().unwrap();
    let segs = files_with_ext(dir, "seg");
    let victim = segs[2].clone();
    let before_seg = fs::read(&victim).unwrap();
    let before_idx = fs::read(victim.with_extension("idx")).unwrap();
    let base: u64 = victim.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let next: u64 = segs[3].file_stem().unwrap().to_str().unwrap().parse().unwrap();
    for q in base..next - 1 {
        s.delete(q).unwrap();
    }
    s.write_out().unwrap();
    let after = fs::metadata(&victim).unwrap().len();
    assert!(
        after < before_seg.len() as u64 / 2,
        "compaction shrank {} to {after}",
        before_seg.len()
    );
    let snap = snapshot(&mut s);
    drop(s);
    (snap, victim, before_seg, before_idx)
}

#[test]
fn compaction_interrupted_at_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (expected, victim, old_seg, old_idx) = compacted_store(dir.path());
    let (got, _) = reopen_snapshot(dir.path());
    assert_eq!(got, expected, "after compaction");
    let idx = victim.with_extension("idx");
    let cmp = victim.with_extension("cmp");
    let state = |name: &str, setup: &dyn Fn(&Path)| {
        let d = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), d.path());
        setup(d.path());
        let (got, rec) = reopen_snapshot(d.path());
        assert_eq!(got, expected, "{name}");
        assert!(
            !d.path().join(cmp.file_name().unwrap()).exists(),
            "{name}: .cmp left"
        );
        rec
    };
    let file = |p: &Path, d: &Path| d.join(p.file_name().unwrap());
    // 1. Crash while writing the new file: old segment and index intact
    // (the tombstones in the active segment still delete the messages),
    // a partial .cmp file.
    state("partial cmp", &|d| {
        fs::write(file(&victim, d), &old_seg).unwrap();
        fs::write(file(&idx, d), &old_idx).unwrap();
        fs::write(file(&cmp, d), &old_seg[..old_seg.len() / 3]).unwrap();
    });
    // 2. New file complete and synced, old index already removed, not renamed.
    state("cmp complete, index removed", &|d| {
        fs::copy(&victim, file(&cmp, d)).unwrap();
        fs::write(file(&victim, d), &old_seg).unwrap();
        fs::remove_file(file(&idx, d)).unwrap();
    });
    // 3. Renamed, new index not written yet.
    let rec = state("renamed, no index", &|d| fs::remove_file(file(&idx, d)).unwrap());
    assert_eq!(rec.segments_scanned, 2);
    // 4. Renamed, but the old index survived (removal not durable): stale.
    let rec = state("renamed, old index", &|d| {
        fs::write(file(&idx, d), &old_idx).unwrap()
    });
    assert_eq!(rec.segments_scanned, 2);
}

/// A store with 2 single messages, an atomic batch of 5 and one more
/// single message; returns the segment, its bytes, the file length after
/// the two singles and after the batch, and every message.
fn with_batch(dir: &Path) -> (PathBuf, Vec<u8>, u64, u64, Vec<StoredMessage>) {
    let (mut s, _) = FileStore::open(dir, StoreConfig::default()).unwrap();
    for i in 1..=2 {
        s.append("single", b"", &payload(i), i as i64).unwrap();
    }
    s.write_out().unwrap();
    let seg = files_with_ext(dir, "seg").pop().unwrap();
    let before = fs::metadata(&seg).unwrap().len();
    let payloads: Vec<Vec<u8>> = (3..=7).map(payload).collect();
    let batch: Vec<BatchMessage<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| BatchMessage {
            subject: if i % 2 == 0 { "order.1" } else { "order.2" },
            headers: b"NATS/1.0\r\nE: v\r\n\r\n",
            payload: p,
        })
        .collect();
    assert_eq!(s.append_batch(&batch, 50).unwrap().seq, 7);
    s.write_out().unwrap();
    let after = fs::metadata(&seg).unwrap().len();
    s.append("single", b"", &payload(8), 80).unwrap();
    s.write_out().unwrap();
    let msgs = (1..=8).map(|q| s.get(q).unwrap().unwrap()).collect();
    drop(s);
    (seg.clone(), fs::read(&seg).unwrap(), before, after, msgs)
}

#[test]
fn batch_torn_anywhere_is_dropped_whole() {
    let src = tempfile::tempdir().unwrap();
    let (seg, bytes, before, after, msgs) = with_batch(src.path());
    let name = seg.file_name().unwrap();
    for cut in before..after {
        let (_dir, mut s, rec) = open_damaged(&bytes[..cut as usize], name);
        assert_eq!(rec.msgs, 2, "cut at {cut}: nothing of the batch survives");
        check_prefix(&mut s, &msgs, 2);
        assert_eq!(s.append("after", b"", b"x", 1000).unwrap().seq, 3, "cut at {cut}");
    }
    // Cut right after the batch, or inside the message after it: the batch
    // is whole.
    for cut in [after, after + 5] {
        let (_dir, mut s, _) = open_damaged(&bytes[..cut as usize], name);
        check_prefix(&mut s, &msgs, 7);
    }
}

#[test]
fn batch_survives_compaction_of_its_closing_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_segments(1000);
    let (mut s, _) = FileStore::open(dir.path(), config.clone()).unwrap();
    // A full segment first: the front segment is dropped, not compacted.
    for i in 0..10 {
        s.append("filler", b"", &[7; 200], 1 + i).unwrap();
    }
    let payloads: Vec<Vec<u8>> = (0..6).map(|i| vec![i as u8; 200]).collect();
    let batch: Vec<BatchMessage<'_>> = payloads
        .iter()
        .map(|p| BatchMessage {
            subject: "b",
            headers: b"",
            payload: p,
        })
        .collect();
    let last = s.append_batch(&batch, 20).unwrap().seq;
    let first_of_batch = last - 5;
    // The batch is larger than a segment: it starts a segment of its own,
    // and the next message starts another, so nothing follows the batch in
    // its segment. Then most of the batch (its closing message included) is
    // removed, so its segment is compacted.
    for i in 0..40 {
        s.append("filler", b"", &[7; 200], 30 + i).unwrap();
    }
    s.write_out().unwrap();
    let segment = files_with_ext(dir.path(), "seg")
        .into_iter()
        .filter(|p| {
            let base: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            base <= first_of_batch
        })
        .max()
        .unwrap();
    let full = fs::metadata(&segment).unwrap().len();
    // The closing message first: the compaction that the fourth removal
    // starts would otherwise keep it.
    for seq in [5, 1, 2, 3, 4].map(|i| first_of_batch + i) {
        assert!(s.delete(seq).unwrap());
    }
    s.sync().unwrap();
    drop(s);
    assert!(
        fs::metadata(&segment).unwrap().len() < full,
        "the batch's segment was compacted"
    );
    for idx in files_with_ext(dir.path(), "idx") {
        fs::remove_file(idx).unwrap(); // force scanning
    }
    let (mut s, rec) = FileStore::open(dir.path(), config).unwrap();
    assert_eq!(rec.truncated_bytes + rec.dropped_records, 0, "{rec:?}");
    let payload_of = |s: &mut FileStore, seq| s.get(seq).unwrap().map(|m| m.payload.to_vec());
    assert_eq!(payload_of(&mut s, first_of_batch), Some(payloads[0].clone()));
    assert_eq!(s.state().msgs, 10 + 1 + 40);
}
