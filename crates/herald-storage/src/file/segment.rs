//! One segment file in memory: its dense per-sequence slot vector and
//! counters, file naming, and small I/O helpers.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::record::Floor;
use super::subjects::NO_SUBJECT;
use crate::error::StoreError;

/// Offset of a slot whose message record is not in the file (compacted away).
pub(super) const NO_OFFSET: u32 = u32::MAX;

/// Largest segment file: offsets are `u32` and [`NO_OFFSET`] is reserved.
pub(super) const SEGMENT_FILE_BYTES_MAX: u64 = u32::MAX as u64 - 1;

/// Most sequences one segment covers (bounds the slot vector a damaged or
/// foreign file can make recovery allocate).
pub(super) const SEGMENT_SEQS_MAX: u64 = 1 << 26;

/// One sequence of a segment: where its message record is and its subject.
/// `subject == NO_SUBJECT`: not stored (deleted, purged, expired or absent);
/// the offset then still names the dead record if it is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    pub offset: u32,
    pub subject: u32,
}

impl Slot {
    pub fn is_live(self) -> bool {
        self.subject != NO_SUBJECT
    }

    pub fn has_record(self) -> bool {
        self.offset != NO_OFFSET
    }
}

/// Times of the message records of a segment (dead ones included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Times {
    pub first: i64,
    pub last: i64,
    pub max: i64,
}

impl Times {
    pub fn add(times: &mut Option<Times>, t: i64) {
        match times {
            None => {
                *times = Some(Times {
                    first: t,
                    last: t,
                    max: t,
                })
            }
            Some(x) => {
                x.last = t;
                x.max = x.max.max(t);
            }
        }
    }
}

/// A segment file and its part of the index.
#[derive(Debug)]
pub(super) struct Segment {
    /// First sequence the segment covers (its file name).
    pub base: u64,
    pub path: PathBuf,
    /// Open handle (always for the active segment; opened on demand for
    /// sealed ones).
    pub file: Option<File>,
    /// Slot `i` is sequence `base + i`.
    pub slots: Vec<Slot>,
    /// Stored messages.
    pub live: u64,
    /// Their size as charged against `max_bytes`.
    pub live_bytes: u64,
    /// Message records in the file (stored or not).
    pub records: u64,
    /// Index of the first live slot (`slots.len()` when none).
    pub first_live: usize,
    /// Message records before `first_live` (all dead).
    pub skipped_records: u64,
    pub times: Option<Times>,
    /// File length, including what is still in the write buffer.
    pub len: u64,
    /// Offset and CRC of the last record in the file.
    pub last_record: Option<(u32, u32)>,
    /// Written since the last `sync` (sealed segments only; the active one
    /// is always synced).
    pub unsynced: bool,
}

impl Segment {
    pub fn new(base: u64, path: PathBuf) -> Segment {
        Segment {
            base,
            path,
            file: None,
            slots: Vec::new(),
            live: 0,
            live_bytes: 0,
            records: 0,
            first_live: 0,
            skipped_records: 0,
            times: None,
            len: 0,
            last_record: None,
            unsynced: false,
        }
    }

    /// One past the last sequence with a slot.
    pub fn end_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Moves `first_live` forward past dead slots.
    pub fn advance_first_live(&mut self) {
        while let Some(slot) = self.slots.get(self.first_live) {
            if slot.is_live() {
                break;
            }
            if slot.has_record() {
                self.skipped_records += 1;
            }
            self.first_live += 1;
        }
    }

    /// Recomputes the counters that follow from the slots (after recovery
    /// or compaction). `live_bytes` is the caller's.
    pub fn recount(&mut self) {
        self.live = self.slots.iter().filter(|s| s.is_live()).count() as u64;
        self.records = self.slots.iter().filter(|s| s.has_record()).count() as u64;
        self.first_live = 0;
        self.skipped_records = 0;
        self.advance_first_live();
    }

    /// Whether dead records make up more than half of what compaction could
    /// reclaim. In the first live segment the dead prefix is left out: it
    /// goes away with the whole file as the oldest messages are removed.
    pub fn wants_compaction(&self, is_front: bool) -> bool {
        let considered = if is_front {
            self.records - self.skipped_records
        } else {
            self.records
        };
        let dead = considered.saturating_sub(self.live);
        considered > 0 && dead * 2 > considered
    }
}

/// State of the active (last) segment that sealed segments do not keep.
#[derive(Debug, Default)]
pub(super) struct Active {
    /// Records appended but not yet written to the file.
    pub wbuf: Vec<u8>,
    /// Bytes of the file already written (the write buffer goes after).
    pub written: u64,
    /// Record length per slot (for the `.idx` file written at sealing).
    pub lens: Vec<u32>,
    /// Sequences of the tombstones in this segment.
    pub tombstones: Vec<u64>,
    /// The last floor record in this segment.
    pub floor: Option<Floor>,
}

/// What a file in the store directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileKind {
    Segment,
    Index,
    /// A compaction's unfinished output.
    CompactTemp,
}

const NAME_DIGITS: usize = 20;

pub(super) fn file_path(dir: &Path, base: u64, kind: FileKind) -> PathBuf {
    let ext = match kind {
        FileKind::Segment => "seg",
        FileKind::Index => "idx",
        FileKind::CompactTemp => "cmp",
    };
    dir.join(format!("{base:0NAME_DIGITS$}.{ext}"))
}

/// The base sequence and kind of a store file name, `None` for other files.
pub(super) fn parse_file_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != NAME_DIGITS || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let kind = match ext {
        "seg" => FileKind::Segment,
        "idx" => FileKind::Index,
        "cmp" => FileKind::CompactTemp,
        _ => return None,
    };
    let base: u64 = stem.parse().ok()?;
    (base <= super::record::SEQ_MAX).then_some((base, kind))
}

/// Maps an I/O error on `path` to a [`StoreError`].
pub(super) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl Fn(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, why: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_owned(),
        why: why.into(),
    }
}

/// Removes a file; a file already gone is fine.
pub(super) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// `fsync` of a directory, so that created, renamed and removed names last.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = file_path(Path::new("/x"), 42, FileKind::Segment);
        assert_eq!(p.file_name().unwrap(), "00000000000000000042.seg");
        assert_eq!(
            parse_file_name("00000000000000000042.idx"),
            Some((42, FileKind::Index))
        );
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("00000000000000000042.seg.bak"), None);
        assert_eq!(parse_file_name("99999999999999999999.seg"), None);
    }
}
