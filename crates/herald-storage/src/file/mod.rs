//! The file store: segment files of checksummed records plus an in-memory
//! index bounded by message count. Disk format, recovery and compaction:
//! `docs/internals/storage.md`.
//!
//! Module map:
//! - `record`: record and segment-header encoding.
//! - `segment`: one segment's slots and counters, file names, I/O helpers.
//! - `subjects`: the interned subject table and the match cache.
//! - `index`: segment summaries and the `.idx` file.
//! - `recover`: opening a directory (load `.idx` or scan, truncate a torn tail).
//! - `write`: append, write buffer, segment rollover, sync.
//! - `remove`: delete, purge, retention, floor and tombstone records.
//! - `query`: reads by subject filter and by time.
//! - `compact`: rewriting a sealed segment without its dead records.

mod compact;
mod index;
mod query;
mod record;
mod recover;
mod remove;
mod scan;
mod segment;
mod subjects;
mod write;

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use bytes::Bytes;

use self::record::{Header, Record, RECORD_BYTES_MAX, RECORD_HEADER_BYTES};
use self::segment::{corrupt, io_err, Active, Segment};
use self::subjects::{MatchCache, Subjects};
use crate::error::StoreError;
use crate::types::*;
use crate::Store;

/// Most sealed segment files kept open at once (more are reopened on
/// demand).
const OPEN_SEALED_FILES_MAX: usize = 64;

/// What recovery found and did when a file store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Messages found intact (stored after recovery).
    pub msgs: u64,
    /// Bytes cut off the tail of the last segment (torn or corrupt records).
    pub truncated_bytes: u64,
    /// Records dropped because their checksum or framing was wrong (the
    /// damaged record and those found after it, counted by their length
    /// fields as far as those are plausible).
    pub dropped_records: u64,
    /// Bytes of sealed segments after a corrupt record, left in the file
    /// but ignored (a sealed segment is never truncated).
    pub skipped_bytes: u64,
    /// Segment files found.
    pub segments: u64,
    /// Sealed segments loaded from their `.idx` file.
    pub indexes_loaded: u64,
    /// Segments read record by record (the last one, and sealed ones whose
    /// `.idx` was missing, stale or damaged).
    pub segments_scanned: u64,
}

/// A message store in segment files in one directory.
///
/// Records are appended to an in-memory write buffer; [`Store::write_out`]
/// hands it to the OS with one `write`, [`Store::sync`] also `fdatasync`s.
/// Nothing is ever synced implicitly by an append.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    config: StoreConfig,
    /// Oldest first; the last one is the active segment.
    segs: VecDeque<Segment>,
    active: Active,
    subjects: Subjects,
    msgs: u64,
    bytes: u64,
    last_seq: u64,
    last_time_ns: i64,
    /// Time of the first stored message, as last looked up (by `state`).
    first_time: FirstTime,
    /// `first_seq` of the newest floor record appended.
    floor_written: u64,
    /// The first sequence moved: append a floor record before the next
    /// write-out.
    floor_pending: bool,
    /// Sequences removed by the current operation, not yet recorded on disk.
    removed: Vec<u64>,
    /// Bases of sealed segments messages were removed from since the last
    /// compaction check.
    touched: Vec<u64>,
    /// Files were created, renamed or removed since the last `sync`.
    dir_unsynced: bool,
    match_cache: MatchCache,
    /// Messages removed since open ([`Store::removals`]).
    removals: u64,
    open_sealed: usize,
    /// The last block read from disk, so that sequential reads (consumers
    /// replaying a stream) cost one `pread` per block, not per message.
    read_cache: Option<ReadBlock>,
    /// Messages appended now are parts of an unfinished atomic batch.
    batch_part: bool,
    /// An atomic batch is being appended: no segment roll before its end.
    in_batch: bool,
}

/// A block of a segment file as read from disk.
#[derive(Debug)]
struct ReadBlock {
    /// Base sequence of the segment (stable while the file exists).
    base: u64,
    /// File offset of `data[0]`.
    start: u64,
    data: Bytes,
}

/// Size of the blocks sequential reads fetch at once.
const READ_BLOCK_BYTES: usize = 64 * 1024;

impl FileStore {
    /// Opens the store in `dir`, creating the directory if needed and
    /// recovering what an earlier store left there (see [`Recovery`]).
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(FileStore, Recovery), StoreError> {
        recover::open(dir, config)
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    fn active_index(&self) -> usize {
        self.segs.len() - 1
    }

    /// Segment index and slot index of `seq`, if a slot covers it.
    fn locate(&self, seq: u64) -> Option<(usize, usize)> {
        let si = self.segs.partition_point(|s| s.base <= seq).checked_sub(1)?;
        let ix = (seq - self.segs[si].base) as usize;
        (ix < self.segs[si].slots.len()).then_some((si, ix))
    }

    /// Where a forward scan from `seq` starts: the segment covering it (or
    /// the first one) and the slot index within it (may be past its end).
    fn scan_start(&self, seq: u64) -> (usize, usize) {
        match self.segs.partition_point(|s| s.base <= seq).checked_sub(1) {
            Some(si) => (si, (seq - self.segs[si].base).min(usize::MAX as u64) as usize),
            None => (0, 0),
        }
    }

    fn first_seq(&self) -> u64 {
        self.segs
            .iter()
            .find(|s| s.live > 0)
            .map_or(self.last_seq + 1, |s| s.base + s.first_live as u64)
    }

    /// Reads `buf.len()` bytes at `offset` of segment `si`, from the write
    /// buffer if they are not written yet.
    fn read_at(&mut self, si: usize, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        if si == self.active_index() && offset >= self.active.written {
            let start = (offset - self.active.written) as usize;
            let src = self
                .active
                .wbuf
                .get(start..start + buf.len())
                .ok_or_else(|| corrupt(&self.segs[si].path, "read past the end of the write buffer"))?;
            buf.copy_from_slice(src);
            return Ok(());
        }
        if self.segs[si].file.is_none() {
            if self.open_sealed >= OPEN_SEALED_FILES_MAX {
                let last = self.active_index();
                for s in self.segs.range_mut(..last) {
                    s.file = None;
                }
                self.open_sealed = 0;
            }
            let path = &self.segs[si].path;
            let file = std::fs::File::open(path).map_err(io_err("open", path))?;
            self.segs[si].file = Some(file);
            self.open_sealed += 1;
        }
        let seg = &self.segs[si];
        let file = seg.file.as_ref().expect("opened above");
        file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(
                    &seg.path,
                    format!("record at {offset} runs past the end of the file"),
                )
            } else {
                io_err("read", &seg.path)(e)
            }
        })
    }

    /// The fixed header of the record at `offset` (framing checked, not the
    /// checksum).
    fn read_header(&mut self, si: usize, offset: u32) -> Result<Header, StoreError> {
        let mut b = [0u8; RECORD_HEADER_BYTES];
        self.read_at(si, offset as u64, &mut b)?;
        let h = Header::parse(&b);
        h.check().map_err(|why| corrupt(&self.segs[si].path, why))?;
        Ok(h)
    }

    /// Record length of the message in slot `ix` of segment `si`.
    fn record_len(&mut self, si: usize, ix: usize) -> Result<u32, StoreError> {
        if si == self.active_index() {
            if let Some(&len) = self.active.lens.get(ix) {
                return Ok(len);
            }
        }
        let offset = self.segs[si].slots[ix].offset;
        let mut b = [0u8; 4];
        self.read_at(si, offset as u64, &mut b)?;
        let len = u32::from_le_bytes(b);
        if (len as usize) < RECORD_HEADER_BYTES || len > RECORD_BYTES_MAX {
            return Err(corrupt(&self.segs[si].path, "bad record length"));
        }
        Ok(len)
    }

    /// Time of the message in slot `ix` of segment `si`.
    fn record_time(&mut self, si: usize, ix: usize) -> Result<i64, StoreError> {
        let offset = self.segs[si].slots[ix].offset;
        Ok(self.read_header(si, offset)?.time_ns)
    }

    /// The bytes of the record at `offset` of segment `si` (framing
    /// checked; the caller decodes and so verifies the CRC). One read when
    /// the record fits in the block read ahead ([`READ_BLOCK_BYTES`]).
    fn read_record(&mut self, si: usize, offset: u32) -> Result<Bytes, StoreError> {
        let at = offset as u64;
        let base = self.segs[si].base;
        if let Some(found) = self.cached_record(base, at) {
            return Ok(found);
        }
        let on_disk = if si == self.active_index() {
            self.active.written
        } else {
            self.segs[si].len
        };
        if at < on_disk {
            // Read a whole block from here (no further than what is on disk)
            // and keep it for the records that follow.
            let len = (on_disk - at).min(READ_BLOCK_BYTES as u64) as usize;
            let len = len.max(RECORD_HEADER_BYTES.min((on_disk - at) as usize));
            let mut block = vec![0u8; len];
            self.read_at(si, at, &mut block)?;
            self.read_cache = Some(ReadBlock {
                base,
                start: at,
                data: Bytes::from(block),
            });
            if let Some(found) = self.cached_record(base, at) {
                return Ok(found);
            }
            // Larger than a block: fall through to an exact read.
        }
        let mut head = [0u8; RECORD_HEADER_BYTES];
        self.read_at(si, at, &mut head)?;
        let h = Header::parse(&head);
        h.check().map_err(|why| corrupt(&self.segs[si].path, why))?;
        let mut buf = vec![0u8; h.len as usize];
        self.read_at(si, at, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    /// The record at `at` of segment `base` if the read cache holds all of it.
    fn cached_record(&self, base: u64, at: u64) -> Option<Bytes> {
        let block = self.read_cache.as_ref().filter(|b| b.base == base)?;
        let from = at.checked_sub(block.start)? as usize;
        let head = block.data.get(from..from + RECORD_HEADER_BYTES)?;
        let h = Header::parse(head.first_chunk::<RECORD_HEADER_BYTES>()?);
        let end = from.checked_add(h.len as usize)?;
        (h.check().is_ok() && end <= block.data.len()).then(|| block.data.slice(from..end))
    }

    /// Forgets cached file contents (a segment file was rewritten or removed).
    pub(super) fn forget_reads(&mut self) {
        self.read_cache = None;
    }

    /// Reads and verifies the message in slot `ix` of segment `si`.
    fn read_message(&mut self, si: usize, ix: usize) -> Result<StoredMessage, StoreError> {
        let offset = self.segs[si].slots[ix].offset;
        let seq = self.segs[si].base + ix as u64;
        let buf = self.read_record(si, offset)?;
        let path = &self.segs[si].path;
        let (_, record) = record::decode(&buf).map_err(|why| corrupt(path, why))?;
        let Record::Message {
            seq: got,
            time_ns,
            subject,
            headers,
            ..
        } = record
        else {
            return Err(corrupt(path, format!("record at {offset} is not a message")));
        };
        if got != seq {
            return Err(corrupt(
                path,
                format!("record at {offset} holds {got}, expected {seq}"),
            ));
        }
        let subject = subject.to_owned();
        let headers_start = RECORD_HEADER_BYTES + subject.len();
        let payload_start = headers_start + headers.len();
        Ok(StoredMessage {
            seq,
            time_ns,
            subject,
            headers: buf.slice(headers_start..payload_start),
            payload: buf.slice(payload_start..),
        })
    }

    /// Time of the first stored message, looked up (and cached) when the
    /// first sequence moved since the last call.
    fn first_time_ns(&self) -> i64 {
        let first = self.first_seq();
        if self.msgs == 0 {
            return 0;
        }
        if let Some(t) = self.first_time.get(first) {
            return t;
        }
        match self.peek_time(first) {
            Ok(t) => {
                self.first_time.set(first, t);
                t
            }
            Err(e) => {
                tracing::warn!(error = %e, seq = first, "cannot read the time of the first message");
                0
            }
        }
    }

    /// Time of stored message `seq`, read without `&mut self` (no handle
    /// is cached).
    fn peek_time(&self, seq: u64) -> Result<i64, StoreError> {
        let (si, ix) = self
            .locate(seq)
            .ok_or_else(|| corrupt(&self.dir, "first sequence has no slot"))?;
        let seg = &self.segs[si];
        let offset = seg.slots[ix].offset as u64;
        let mut b = [0u8; RECORD_HEADER_BYTES];
        if si == self.active_index() && offset >= self.active.written {
            let start = (offset - self.active.written) as usize;
            let src = self.active.wbuf.get(start..start + b.len());
            b.copy_from_slice(src.ok_or_else(|| corrupt(&seg.path, "read past the write buffer"))?);
        } else {
            let opened;
            let file = match &seg.file {
                Some(f) => f,
                None => {
                    opened = std::fs::File::open(&seg.path).map_err(io_err("open", &seg.path))?;
                    &opened
                }
            };
            file.read_exact_at(&mut b, offset)
                .map_err(io_err("read", &seg.path))?;
        }
        let h = Header::parse(&b);
        h.check().map_err(|why| corrupt(&seg.path, why))?;
        Ok(h.time_ns)
    }
}

/// A cached `(sequence, time)` pair, settable through `&self`.
#[derive(Debug, Default)]
struct FirstTime {
    seq: AtomicU64,
    time_ns: AtomicI64,
}

impl FirstTime {
    fn get(&self, seq: u64) -> Option<i64> {
        (seq != 0 && self.seq.load(Ordering::Relaxed) == seq).then(|| self.time_ns.load(Ordering::Relaxed))
    }

    fn set(&self, seq: u64, time_ns: i64) {
        self.time_ns.store(time_ns, Ordering::Relaxed);
        self.seq.store(seq, Ordering::Relaxed);
    }
}

impl Store for FileStore {
    fn append(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        time_ns: i64,
    ) -> Result<Appended, StoreError> {
        self.append_message(subject, headers, payload, time_ns)
    }

    fn append_batch(&mut self, batch: &[BatchMessage<'_>], time_ns: i64) -> Result<Appended, StoreError> {
        self.append_batch_messages(batch, time_ns)
    }

    fn write_out(&mut self) -> Result<(), StoreError> {
        self.write_buffer()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.sync_all()
    }

    fn get(&mut self, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        match self.locate(seq) {
            Some((si, ix)) if self.segs[si].slots[ix].is_live() => self.read_message(si, ix).map(Some),
            _ => Ok(None),
        }
    }

    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: &SubjectFilter,
    ) -> Result<Option<StoredMessage>, StoreError> {
        match self.find_next(from_seq, filter) {
            Some((si, ix)) => self.read_message(si, ix).map(Some),
            None => Ok(None),
        }
    }

    fn last_matching(&mut self, filter: &SubjectFilter) -> Result<Option<StoredMessage>, StoreError> {
        let Some(seq) = self.last_seq_matching(filter) else {
            return Ok(None);
        };
        let (si, ix) = self.locate(seq).expect("a subject's last sequence is stored");
        self.read_message(si, ix).map(Some)
    }

    fn last_seq_of_subject(&self, subject: &str) -> Option<u64> {
        let id = self.subjects.id(subject)?;
        self.subjects.get(id).map(|e| e.last)
    }

    fn seq_at_time(&mut self, time_ns: i64) -> Result<u64, StoreError> {
        self.find_seq_at_time(time_ns)
    }

    fn count_matching(&self, from_seq: u64, filter: &SubjectFilter) -> u64 {
        self.count(from_seq, filter)
    }

    fn count_matching_range(&mut self, from_seq: u64, to_seq: u64, filter: &SubjectFilter) -> u64 {
        self.count_in(from_seq, to_seq, filter)
    }

    fn removals(&self) -> u64 {
        self.removals
    }

    fn scan_headers(
        &mut self,
        from_seq: u64,
        visit: &mut dyn FnMut(u64, i64, &[u8]),
    ) -> Result<(), StoreError> {
        self.scan_header_blocks(from_seq, visit)
    }

    fn subject_counts(&self, filter: &SubjectFilter) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = self
            .subjects
            .iter()
            .filter(|(_, e)| filter.matches(&e.name))
            .map(|(_, e)| (e.name.to_string(), e.count))
            .collect();
        counts.sort();
        counts
    }

    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        let Some((si, ix)) = self.locate(seq) else {
            return Ok(false);
        };
        let removed = self.remove_at(si, ix)?;
        self.finish_removal()?;
        Ok(removed)
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        self.purge_messages(purge)
    }

    fn expire(&mut self, now_ns: i64) -> Result<u64, StoreError> {
        self.expire_old(now_ns)
    }

    fn state(&self) -> StoreState {
        let first_seq = self.first_seq();
        StoreState {
            msgs: self.msgs,
            bytes: self.bytes,
            first_seq,
            first_time_ns: self.first_time_ns(),
            last_seq: self.last_seq,
            last_time_ns: self.last_time_ns,
            num_subjects: self.subjects.len() as u64,
            num_deleted: if self.msgs == 0 {
                0
            } else {
                self.last_seq + 1 - first_seq - self.msgs
            },
        }
    }

    fn set_config(&mut self, config: StoreConfig) -> Result<(), StoreError> {
        self.config = config;
        self.enforce_all_limits()
    }

    fn config(&self) -> &StoreConfig {
        &self.config
    }
}
