//! Opening a store directory: load each sealed segment from its `.idx` (or
//! scan it), scan the last segment verifying every checksum and truncate it
//! at the first torn or corrupt record, then replay tombstones and floors.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::compact::STREAM_BUFFER_BYTES;
use super::index::{self, IdxSlot, Summary};
use super::record::{
    self, check_segment_header, Floor, Header, HeaderCheck, Record, KIND_BATCH_PART, RECORD_BYTES_MAX,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::segment::{
    corrupt, file_path, io_err, parse_file_name, remove_file, sync_dir, Active, FileKind, Segment, Slot,
    Times, NO_OFFSET, SEGMENT_FILE_BYTES_MAX, SEGMENT_SEQS_MAX,
};
use super::subjects::{Subjects, NO_SUBJECT};
use super::{FileStore, Recovery};
use crate::error::StoreError;
use crate::types::StoreConfig;

/// What scanning one segment file found.
struct Scan {
    summary: Summary,
    file_len: u64,
    /// Why the scan stopped before the end of the file.
    problem: Option<String>,
    /// Records in the part not kept (by their length fields).
    dropped_records: u64,
    /// Where an atomic batch starts that has no closing record.
    open_batch: Option<u64>,
}

/// Reads segment `base` record by record, verifying checksums, stopping at
/// the first record that is torn, corrupt or out of place. Message
/// sequences must lie in `[base, next_base)`, increase, and (in the last
/// segment, which is never compacted) be contiguous.
fn scan(path: &Path, base: u64, next_base: Option<u64>, is_last: bool) -> Result<Scan, StoreError> {
    let first = scan_until(path, base, next_base, is_last, None)?;
    let Some(start) = first.open_batch else {
        return Ok(first);
    };
    // An atomic batch without its closing record: a crash tore it. Keep
    // what came before it, none of it.
    let mut kept = scan_until(path, base, next_base, is_last, Some(start))?;
    kept.problem = Some(
        first
            .problem
            .unwrap_or_else(|| "incomplete atomic batch".to_string()),
    );
    if let Ok(file) = File::open(path) {
        kept.dropped_records = count_frames(&file, start, first.file_len);
    }
    Ok(kept)
}

/// [`scan`], stopping at `stop_at` if given.
fn scan_until(
    path: &Path,
    base: u64,
    next_base: Option<u64>,
    is_last: bool,
    stop_at: Option<u64>,
) -> Result<Scan, StoreError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file_len = file.metadata().map_err(io_err("read metadata", path))?.len();
    let mut out = Scan {
        summary: Summary {
            base,
            ..Summary::default()
        },
        file_len,
        problem: None,
        dropped_records: 0,
        open_batch: None,
    };
    if file_len == 0 {
        return Ok(out); // created, never written
    }
    let read_err = io_err("read", path);
    let mut reader = BufReader::with_capacity(STREAM_BUFFER_BYTES, &file);
    if file_len < SEGMENT_HEADER_BYTES as u64 {
        out.problem = Some("torn segment header".into());
        return Ok(out);
    }
    let mut head = [0u8; SEGMENT_HEADER_BYTES];
    reader.read_exact(&mut head).map_err(&read_err)?;
    match check_segment_header(&head) {
        HeaderCheck::Valid => {}
        HeaderCheck::UnknownVersion(v) => {
            return Err(corrupt(
                path,
                format!("segment format version {v} is not supported"),
            ));
        }
        HeaderCheck::Invalid => {
            out.problem = Some("bad segment header".into());
            return Ok(out);
        }
    }
    let s = &mut out.summary;
    let mut local: FxHashMap<String, u32> = FxHashMap::default();
    let mut pos = SEGMENT_HEADER_BYTES as u64;
    let mut buf = Vec::new();
    let mut open_batch = None;
    let problem = loop {
        if pos == file_len || Some(pos) == stop_at {
            break None;
        }
        if file_len - pos < RECORD_HEADER_BYTES as u64 {
            break Some("torn record header".to_string());
        }
        let mut h = [0u8; RECORD_HEADER_BYTES];
        reader.read_exact(&mut h).map_err(&read_err)?;
        let header = Header::parse(&h);
        if let Err(why) = header.check() {
            break Some(why.to_string());
        }
        let end = pos + header.len as u64;
        if end > file_len {
            break Some("torn record".to_string());
        }
        if end > SEGMENT_FILE_BYTES_MAX {
            break Some("record beyond the largest segment size".to_string());
        }
        buf.clear();
        buf.extend_from_slice(&h);
        buf.resize(header.len as usize, 0);
        reader
            .read_exact(&mut buf[RECORD_HEADER_BYTES..])
            .map_err(&read_err)?;
        let record = match record::decode(&buf) {
            Ok((_, record)) => record,
            Err(why) => break Some(why.to_string()),
        };
        match record {
            Record::Message {
                seq,
                time_ns,
                subject,
                ..
            } => {
                let ix = seq.wrapping_sub(base);
                let next_ix = s.slots.len() as u64;
                let in_place = seq >= base
                    && ix < SEGMENT_SEQS_MAX
                    && next_base.is_none_or(|n| seq < n)
                    && ix >= next_ix
                    && (!is_last || ix == next_ix);
                if !in_place {
                    break Some(format!("message {seq} out of place in segment {base}"));
                }
                s.slots.resize(
                    ix as usize,
                    IdxSlot {
                        offset: NO_OFFSET,
                        subject: NO_SUBJECT,
                        len: 0,
                    },
                );
                let lid = match local.get(subject) {
                    Some(&lid) => lid,
                    None => {
                        let lid = s.subjects.len() as u32;
                        s.subjects.push(subject.to_owned());
                        local.insert(subject.to_owned(), lid);
                        lid
                    }
                };
                s.slots.push(IdxSlot {
                    offset: pos as u32,
                    subject: lid,
                    len: header.len,
                });
                if header.kind == KIND_BATCH_PART {
                    open_batch.get_or_insert(pos);
                } else {
                    open_batch = None;
                }
                Times::add(&mut s.times, time_ns);
                s.note_last(seq, time_ns);
            }
            Record::Tombstone { seq } => s.tombstones.push(seq),
            Record::Floor(f) => {
                s.floor = Some(f);
                s.note_last(f.last_seq, f.last_time_ns);
            }
        }
        s.last_record = Some((pos as u32, header.crc));
        pos = end;
    };
    s.len = pos;
    if problem.is_some() {
        out.dropped_records = count_frames(&file, pos, file_len);
    }
    out.problem = problem;
    out.open_batch = open_batch;
    Ok(out)
}

/// How many records `[pos, end)` held, following length fields while they
/// are plausible (at least one if the range is not empty).
fn count_frames(file: &File, mut pos: u64, end: u64) -> u64 {
    let mut n = 0;
    while pos < end {
        n += 1;
        let mut b = [0u8; 4];
        if end - pos < 4 || file.read_exact_at(&mut b, pos).is_err() {
            break;
        }
        let len = u32::from_le_bytes(b);
        if (len as usize) < RECORD_HEADER_BYTES || len > RECORD_BYTES_MAX {
            break;
        }
        pos += len as u64;
    }
    n
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    file.set_len(len).map_err(io_err("truncate", path))?;
    file.sync_all().map_err(io_err("sync", path))
}

/// One segment as recovery assembles it.
struct Loaded {
    seg: Segment,
    lens: Vec<u32>,
    tombstones: Vec<u64>,
    floor: Option<Floor>,
    last: Option<(u64, i64)>,
}

impl Loaded {
    fn new(s: Summary, path: PathBuf, subjects: &mut Subjects) -> Result<Loaded, StoreError> {
        let ids = s
            .subjects
            .iter()
            .map(|name| subjects.intern(name).ok_or(StoreError::TooLarge))
            .collect::<Result<Vec<u32>, _>>()?;
        let mut seg = Segment::new(s.base, path);
        seg.slots = s
            .slots
            .iter()
            .map(|x| Slot {
                offset: x.offset,
                subject: ids.get(x.subject as usize).copied().unwrap_or(NO_SUBJECT),
            })
            .collect();
        seg.len = s.len;
        seg.last_record = s.last_record;
        seg.times = s.times;
        Ok(Loaded {
            seg,
            lens: s.slots.iter().map(|x| x.len).collect(),
            tombstones: s.tombstones,
            floor: s.floor,
            last: s.last,
        })
    }
}

/// Lists the store files in `dir`: segment bases and index bases; removes
/// unfinished compaction output.
fn list(dir: &Path) -> Result<(Vec<u64>, BTreeSet<u64>), StoreError> {
    let mut segs = BTreeSet::new();
    let mut idxs = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_file_name) {
            Some((base, FileKind::Segment)) => {
                segs.insert(base);
            }
            Some((base, FileKind::Index)) => {
                idxs.insert(base);
            }
            Some((_, FileKind::CompactTemp)) => {
                tracing::info!(path = %entry.path().display(), "removing unfinished compaction output");
                remove_file(&entry.path())?;
            }
            None => {}
        }
    }
    for &base in idxs.iter().filter(|b| !segs.contains(b)) {
        remove_file(&file_path(dir, base, FileKind::Index))?;
    }
    Ok((segs.into_iter().collect(), idxs))
}

/// Loads segment `bases[i]`: from its `.idx` if sealed and the index is
/// usable, else by scanning (truncating the last segment at damage).
fn load_summary(
    dir: &Path,
    bases: &[u64],
    i: usize,
    has_idx: bool,
    rec: &mut Recovery,
) -> Result<Summary, StoreError> {
    let base = bases[i];
    let is_last = i + 1 == bases.len();
    let seg_path = file_path(dir, base, FileKind::Segment);
    let idx_path = file_path(dir, base, FileKind::Index);
    if !is_last && has_idx {
        match index::load(&idx_path, &seg_path, base) {
            Ok(s) => {
                rec.indexes_loaded += 1;
                return Ok(s);
            }
            Err(why) => {
                tracing::warn!(path = %idx_path.display(), %why, "ignoring segment index, scanning the segment")
            }
        }
    }
    rec.segments_scanned += 1;
    let scan = scan(&seg_path, base, bases.get(i + 1).copied(), is_last)?;
    let kept = scan.summary.len;
    let cut = scan.file_len - kept;
    if let Some(why) = &scan.problem {
        rec.dropped_records += scan.dropped_records;
        let path = seg_path.display();
        if is_last {
            truncate(&seg_path, kept)?;
            rec.truncated_bytes += cut;
            tracing::warn!(%path, %why, offset = kept, bytes = cut, records = scan.dropped_records,
                "truncated a torn or corrupt tail of the last segment");
        } else {
            rec.skipped_bytes += cut;
            tracing::warn!(%path, %why, offset = kept, bytes = cut, records = scan.dropped_records,
                "corrupt record in a sealed segment: keeping the records before it, ignoring the rest");
        }
    } else if !is_last {
        if let Err(e) = index::write(&idx_path, &scan.summary) {
            tracing::warn!(error = %e, "could not rebuild segment index");
        }
    }
    if is_last && has_idx {
        // The last segment is appended to again: its index would be stale.
        remove_file(&idx_path)?;
    }
    Ok(scan.summary)
}

pub(super) fn open(dir: &Path, config: StoreConfig) -> Result<(FileStore, Recovery), StoreError> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let (bases, idxs) = list(dir)?;
    let mut rec = Recovery {
        segments: bases.len() as u64,
        ..Recovery::default()
    };
    let mut subjects = Subjects::default();
    let mut loaded = Vec::with_capacity(bases.len());
    for i in 0..bases.len() {
        let summary = load_summary(dir, &bases, i, idxs.contains(&bases[i]), &mut rec)?;
        let path = file_path(dir, bases[i], FileKind::Segment);
        loaded.push(Loaded::new(summary, path, &mut subjects)?);
    }

    // Last sequence and time: replay each segment's last in order.
    let (mut last_seq, mut last_time_ns) = (0u64, 0i64);
    let mut floor_max = 0;
    for l in &loaded {
        if let Some((seq, t)) = l.last {
            if seq >= last_seq {
                (last_seq, last_time_ns) = (seq, t);
            }
        }
        floor_max = floor_max.max(l.floor.map_or(0, |f| f.first_seq));
    }
    if let Some(l) = loaded.last() {
        last_seq = last_seq.max(l.seg.base.saturating_sub(1));
    }
    for l in &loaded {
        last_seq = last_seq.max(l.seg.end_seq().saturating_sub(1));
    }

    // Tombstones and floors. Applying them all after loading is the same as
    // replaying in order: a tombstone or floor only names messages written
    // before it.
    let starts: Vec<u64> = loaded.iter().map(|l| l.seg.base).collect();
    let tombstones: Vec<u64> = loaded.iter().flat_map(|l| l.tombstones.iter().copied()).collect();
    for seq in tombstones {
        let Some(li) = starts.partition_point(|&b| b <= seq).checked_sub(1) else {
            continue;
        };
        let seg = &mut loaded[li].seg;
        if let Some(slot) = seg.slots.get_mut((seq - seg.base) as usize) {
            slot.subject = NO_SUBJECT;
        }
    }
    for l in loaded.iter_mut().take_while(|l| l.seg.base < floor_max) {
        let n = ((floor_max - l.seg.base) as usize).min(l.seg.slots.len());
        for slot in &mut l.seg.slots[..n] {
            slot.subject = NO_SUBJECT;
        }
    }

    // Counters and the subject table.
    let (mut msgs, mut bytes) = (0, 0);
    for l in loaded.iter_mut() {
        let seg = &mut l.seg;
        seg.live_bytes = 0;
        for (ix, slot) in seg.slots.iter().enumerate() {
            if slot.is_live() {
                seg.live_bytes += record::stored_size_of_record(l.lens[ix]);
                subjects.add(slot.subject, seg.base + ix as u64);
            }
        }
        seg.recount();
        msgs += seg.live;
        bytes += seg.live_bytes;
    }
    let unused: Vec<u32> = subjects
        .iter()
        .filter(|(_, e)| e.count == 0)
        .map(|(id, _)| id)
        .collect();
    for id in unused {
        subjects.release(id);
    }

    // Segments that hold nothing anymore (a crash between the record that
    // emptied them and the removal of their files).
    let dead = loaded
        .iter()
        .take(loaded.len().saturating_sub(1))
        .take_while(|l| l.seg.live == 0)
        .count();
    for l in loaded.drain(..dead) {
        remove_file(&file_path(dir, l.seg.base, FileKind::Index))?;
        remove_file(&l.seg.path)?;
    }
    if dead > 0 {
        sync_dir(dir)?;
    }

    let last = loaded.pop();
    let mut store = FileStore {
        dir: dir.to_owned(),
        config,
        segs: loaded.into_iter().map(|l| l.seg).collect::<VecDeque<_>>(),
        active: Active::default(),
        subjects,
        msgs,
        bytes,
        last_seq,
        last_time_ns,
        first_time: Default::default(),
        floor_written: floor_max,
        floor_pending: false,
        removed: Vec::new(),
        touched: Vec::new(),
        dir_unsynced: false,
        match_cache: Default::default(),
        removals: 0,
        open_sealed: 0,
        read_cache: None,
        batch_part: false,
        in_batch: false,
    };
    match last {
        None => {
            let seg = store.new_segment(last_seq + 1)?;
            store.segs.push_back(seg);
            store.start_segment();
        }
        Some(l) => {
            let mut seg = l.seg;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&seg.path)
                .map_err(io_err("open", &seg.path))?;
            let fresh = seg.len < SEGMENT_HEADER_BYTES as u64;
            if fresh {
                file.set_len(0).map_err(io_err("truncate", &seg.path))?;
                seg.len = 0;
            }
            seg.file = Some(file);
            store.active = Active {
                wbuf: Vec::new(),
                written: seg.len,
                lens: l.lens,
                tombstones: l.tombstones,
                floor: l.floor,
            };
            store.segs.push_back(seg);
            if fresh {
                store.start_segment();
            }
            if store.segs[store.active_index()].end_seq() != last_seq + 1 {
                // Only with foreign or damaged files: appends must continue
                // the active segment's slots contiguously.
                tracing::warn!("last segment does not end at the last sequence; starting a new segment");
                store.roll()?;
            }
        }
    }
    store.write_buffer()?;
    rec.msgs = store.msgs;
    Ok((store, rec))
}
