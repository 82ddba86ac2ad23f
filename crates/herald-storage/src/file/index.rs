//! Segment summaries and the `.idx` file that stores one for a sealed
//! segment, so that recovery loads it instead of scanning the segment.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::record::{Floor, RECORD_BYTES_MAX, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEQ_MAX};
use super::segment::{io_err, Times, NO_OFFSET, SEGMENT_SEQS_MAX};
use super::subjects::NO_SUBJECT;
use crate::error::StoreError;

const IDX_MAGIC: [u8; 8] = *b"HRLDIDX\0";
const IDX_VERSION: u32 = 1;
/// Bytes of the fixed part of an `.idx` file.
const IDX_HEADER_BYTES: usize = 120;
/// Bytes per slot: offset, subject, record length.
const IDX_SLOT_BYTES: usize = 12;

const FLAG_FLOOR: u8 = 1;
const FLAG_LAST: u8 = 2;
const FLAG_TIMES: u8 = 4;
const FLAG_LAST_RECORD: u8 = 8;

/// One sequence of a summary: its message record (offset, length) and its
/// subject as an index into the summary's own subject list; `NO_SUBJECT`
/// when not stored, `NO_OFFSET` when no record is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IdxSlot {
    pub offset: u32,
    pub subject: u32,
    pub len: u32,
}

/// Everything recovery needs from one segment file: what a scan of it finds,
/// or what its `.idx` file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Summary {
    pub base: u64,
    /// Length of the segment file this describes.
    pub len: u64,
    /// Offset and CRC of the last record (staleness check of the `.idx`).
    pub last_record: Option<(u32, u32)>,
    pub subjects: Vec<String>,
    /// Slot `i` is sequence `base + i`.
    pub slots: Vec<IdxSlot>,
    /// Sequences named by tombstone records in the segment.
    pub tombstones: Vec<u64>,
    /// The last floor record in the segment.
    pub floor: Option<Floor>,
    /// Last sequence and its time after replaying the segment's records.
    pub last: Option<(u64, i64)>,
    pub times: Option<Times>,
}

impl Summary {
    /// Replays a floor or message's effect on `last`.
    pub fn note_last(&mut self, seq: u64, time_ns: i64) {
        if self.last.is_none_or(|(s, _)| seq >= s) {
            self.last = Some((seq, time_ns));
        }
    }
}

/// Encodes a summary as an `.idx` file.
pub(super) fn encode(s: &Summary) -> Vec<u8> {
    let subjects_bytes: usize = s.subjects.iter().map(|n| 2 + n.len()).sum();
    let mut out = Vec::with_capacity(
        IDX_HEADER_BYTES + subjects_bytes + s.slots.len() * IDX_SLOT_BYTES + s.tombstones.len() * 8,
    );
    out.extend_from_slice(&IDX_MAGIC);
    out.extend_from_slice(&IDX_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // crc, filled in below
    out.extend_from_slice(&s.base.to_le_bytes());
    out.extend_from_slice(&s.len.to_le_bytes());
    let (lr_offset, lr_crc) = s.last_record.unwrap_or((NO_OFFSET, 0));
    out.extend_from_slice(&lr_offset.to_le_bytes());
    out.extend_from_slice(&lr_crc.to_le_bytes());
    out.extend_from_slice(&(s.subjects.len() as u32).to_le_bytes());
    out.extend_from_slice(&(s.slots.len() as u32).to_le_bytes());
    out.extend_from_slice(&(s.tombstones.len() as u32).to_le_bytes());
    let mut flags = 0;
    for (set, flag) in [
        (s.floor.is_some(), FLAG_FLOOR),
        (s.last.is_some(), FLAG_LAST),
        (s.times.is_some(), FLAG_TIMES),
        (s.last_record.is_some(), FLAG_LAST_RECORD),
    ] {
        if set {
            flags |= flag;
        }
    }
    out.push(flags);
    out.extend_from_slice(&[0; 3]);
    let floor = s.floor.unwrap_or(Floor {
        first_seq: 0,
        last_seq: 0,
        last_time_ns: 0,
    });
    let (last_seq, last_time) = s.last.unwrap_or((0, 0));
    let times = s.times.unwrap_or(Times {
        first: 0,
        last: 0,
        max: 0,
    });
    for v in [
        floor.first_seq,
        floor.last_seq,
        floor.last_time_ns as u64,
        last_seq,
        last_time as u64,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [times.first, times.last, times.max] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(out.len(), IDX_HEADER_BYTES);
    for name in &s.subjects {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    for slot in &s.slots {
        out.extend_from_slice(&slot.offset.to_le_bytes());
        out.extend_from_slice(&slot.subject.to_le_bytes());
        out.extend_from_slice(&slot.len.to_le_bytes());
    }
    for seq in &s.tombstones {
        out.extend_from_slice(&seq.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A cursor over `.idx` bytes that fails instead of panicking.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }
}

/// Decodes and validates `.idx` bytes describing segment `base`; `Err` says
/// why they are unusable.
pub(super) fn decode(b: &[u8], base: u64) -> Result<Summary, &'static str> {
    if b.len() < IDX_HEADER_BYTES || b[..8] != IDX_MAGIC {
        return Err("not an index file");
    }
    let mut c = Cursor { b, at: 8 };
    let field = "truncated";
    if c.u32().ok_or(field)? != IDX_VERSION {
        return Err("unknown index version");
    }
    if c.u32().ok_or(field)? != crc32c::crc32c(&b[16..]) {
        return Err("index checksum mismatch");
    }
    let mut s = Summary {
        base: c.u64().ok_or(field)?,
        len: c.u64().ok_or(field)?,
        ..Summary::default()
    };
    if s.base != base {
        return Err("index names another segment");
    }
    let lr = (c.u32().ok_or(field)?, c.u32().ok_or(field)?);
    let subject_count = c.u32().ok_or(field)? as usize;
    let slot_count = c.u32().ok_or(field)? as usize;
    let tombstone_count = c.u32().ok_or(field)? as usize;
    let flags = c.take(4).ok_or(field)?[0];
    let mut v = [0u64; 8];
    for x in &mut v {
        *x = c.u64().ok_or(field)?;
    }
    if flags & FLAG_LAST_RECORD != 0 {
        s.last_record = Some(lr);
    }
    if flags & FLAG_FLOOR != 0 {
        s.floor = Some(Floor {
            first_seq: v[0],
            last_seq: v[1],
            last_time_ns: v[2] as i64,
        });
    }
    if flags & FLAG_LAST != 0 {
        s.last = Some((v[3], v[4] as i64));
    }
    if flags & FLAG_TIMES != 0 {
        s.times = Some(Times {
            first: v[5] as i64,
            last: v[6] as i64,
            max: v[7] as i64,
        });
    }
    if v[..2].iter().chain(&v[3..4]).any(|&seq| seq > SEQ_MAX) {
        return Err("sequence out of range");
    }
    // Bound every count by the bytes present before allocating for it.
    let rest = b.len() - IDX_HEADER_BYTES;
    if slot_count as u64 > SEGMENT_SEQS_MAX
        || subject_count > rest / 2
        || slot_count.saturating_mul(IDX_SLOT_BYTES) > rest
        || tombstone_count.saturating_mul(8) > rest
    {
        return Err("counts exceed the file");
    }
    s.subjects.reserve(subject_count);
    for _ in 0..subject_count {
        let n = c.u16().ok_or(field)? as usize;
        let name = std::str::from_utf8(c.take(n).ok_or(field)?).map_err(|_| "subject is not UTF-8")?;
        s.subjects.push(name.to_owned());
    }
    s.slots.reserve(slot_count);
    let mut next_free = SEGMENT_HEADER_BYTES as u64;
    for _ in 0..slot_count {
        let slot = IdxSlot {
            offset: c.u32().ok_or(field)?,
            subject: c.u32().ok_or(field)?,
            len: c.u32().ok_or(field)?,
        };
        if slot.offset == NO_OFFSET {
            if slot.subject != NO_SUBJECT {
                return Err("stored message without a record");
            }
        } else {
            let end = slot.offset as u64 + slot.len as u64;
            if (slot.offset as u64) < next_free
                || (slot.len as usize) < RECORD_HEADER_BYTES
                || slot.len > RECORD_BYTES_MAX
                || end > s.len
            {
                return Err("record offsets out of order or out of the file");
            }
            if slot.subject != NO_SUBJECT && slot.subject as usize >= subject_count {
                return Err("subject out of range");
            }
            next_free = end;
        }
        s.slots.push(slot);
    }
    s.tombstones.reserve(tombstone_count);
    for _ in 0..tombstone_count {
        let seq = c.u64().ok_or(field)?;
        if seq > SEQ_MAX {
            return Err("sequence out of range");
        }
        s.tombstones.push(seq);
    }
    if c.at != b.len() {
        return Err("trailing bytes");
    }
    Ok(s)
}

/// Writes the `.idx` file of a sealed segment (no `fsync`: a torn or lost
/// index is detected and ignored at recovery).
pub(super) fn write(path: &Path, s: &Summary) -> Result<(), StoreError> {
    std::fs::write(path, encode(s)).map_err(io_err("write index", path))
}

/// Loads the `.idx` at `idx_path` for the segment at `seg_path` if it is
/// intact and describes the segment file as it is now; `Err` says why not.
pub(super) fn load(idx_path: &Path, seg_path: &Path, base: u64) -> Result<Summary, String> {
    let mut bytes = Vec::new();
    File::open(idx_path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("read: {e}"))?;
    let s = decode(&bytes, base)?;
    let seg = File::open(seg_path).map_err(|e| format!("open segment: {e}"))?;
    let seg_len = seg
        .metadata()
        .map_err(|e| format!("segment metadata: {e}"))?
        .len();
    if seg_len != s.len {
        return Err(format!("stale: segment is {seg_len} bytes, index says {}", s.len));
    }
    if let Some((offset, crc)) = s.last_record {
        let mut b = [0u8; 4];
        seg.read_exact_at(&mut b, offset as u64 + 4)
            .map_err(|e| format!("read segment: {e}"))?;
        if u32::from_le_bytes(b) != crc {
            return Err("stale: last record differs".into());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            base: 5,
            len: 16 + 40 + 50,
            last_record: Some((56, 0xdead)),
            subjects: vec!["a".into(), "b.c".into()],
            slots: vec![
                IdxSlot {
                    offset: 16,
                    subject: 1,
                    len: 40,
                },
                IdxSlot {
                    offset: NO_OFFSET,
                    subject: NO_SUBJECT,
                    len: 0,
                },
                IdxSlot {
                    offset: 56,
                    subject: 0,
                    len: 50,
                },
            ],
            tombstones: vec![3, 4],
            floor: Some(Floor {
                first_seq: 2,
                last_seq: 7,
                last_time_ns: -1,
            }),
            last: Some((7, 9)),
            times: Some(Times {
                first: 1,
                last: 2,
                max: 3,
            }),
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        assert_eq!(decode(&encode(&s), 5), Ok(s));
    }

    #[test]
    fn damage_is_rejected_not_panicked_on() {
        let bytes = encode(&sample());
        assert!(decode(&bytes, 6).is_err());
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad, 5).is_err(), "flip at {i}");
            assert!(decode(&bytes[..i], 5).is_err(), "cut at {i}");
        }
    }
}
