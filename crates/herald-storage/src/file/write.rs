//! The write path: append into the write buffer, write it out, roll over to
//! a new segment, sync.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use super::index::{self, IdxSlot, Summary};
use super::record::{self, Floor, Record};
use super::segment::{
    file_path, io_err, sync_dir, FileKind, Segment, Slot, Times, SEGMENT_FILE_BYTES_MAX, SEGMENT_SEQS_MAX,
};
use super::subjects::NO_SUBJECT;
use super::FileStore;
use crate::error::{Limit, StoreError};
use crate::types::{stored_size, Appended, Discard};

/// Write buffer size at which an append writes it out by itself (a `write`,
/// never an `fsync`), so memory stays bounded if the caller rarely calls
/// `write_out`.
pub(super) const WRITE_BUFFER_BYTES_MAX: usize = 4 << 20;

impl FileStore {
    /// [`Store::append_batch`](crate::Store::append_batch): the batch goes
    /// into one segment, its messages but the last written as batch parts.
    pub(super) fn append_batch_messages(
        &mut self,
        batch: &[crate::types::BatchMessage<'_>],
        time_ns: i64,
    ) -> Result<Appended, StoreError> {
        if batch.is_empty() {
            return Ok(Appended {
                seq: self.last_seq,
                removed: 0,
            });
        }
        let mut len = 0u64;
        for m in batch {
            len += record::message_record_len(m.subject.len(), m.headers.len(), m.payload.len())
                .ok_or(StoreError::TooLarge)? as u64;
        }
        let subjects = &self.subjects;
        crate::types::check_batch_limits(&self.config, self.msgs, self.bytes, batch, |subject| {
            subjects
                .id(subject)
                .and_then(|id| subjects.get(id))
                .map_or(0, |e| e.count)
        })?;
        let active = &self.segs[self.active_index()];
        let segment_max = self.config.segment_bytes_max.min(SEGMENT_FILE_BYTES_MAX);
        if !active.slots.is_empty()
            && (active.len + len > segment_max
                || active.slots.len() as u64 + batch.len() as u64 > SEGMENT_SEQS_MAX)
        {
            self.roll()?;
        }
        self.in_batch = true;
        let first_seq = self.last_seq + 1;
        let mut appended = Appended {
            seq: self.last_seq,
            removed: 0,
        };
        let mut failed = None;
        for (i, m) in batch.iter().enumerate() {
            self.batch_part = i + 1 < batch.len();
            match self.append_message(m.subject, m.headers, m.payload, time_ns) {
                Ok(one) => {
                    appended = Appended {
                        seq: one.seq,
                        removed: appended.removed + one.removed,
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.batch_part = false;
        self.in_batch = false;
        if let Some(e) = failed {
            // Not reached after the checks above but for I/O errors: take
            // back what was appended (its records stay an unclosed batch).
            for seq in first_seq..=appended.seq {
                let _ = crate::Store::delete(self, seq);
            }
            return Err(e);
        }
        Ok(appended)
    }

    pub(super) fn append_message(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
        time_ns: i64,
    ) -> Result<Appended, StoreError> {
        let len = record::message_record_len(subject.len(), headers.len(), payload.len())
            .ok_or(StoreError::TooLarge)?;
        let size = stored_size(subject.len(), headers.len(), payload.len());
        if self.config.discard == Discard::New {
            if self.config.max_msgs.is_some_and(|max| self.msgs + 1 > max) {
                return Err(StoreError::LimitReached(Limit::Msgs));
            }
            if self.config.max_bytes.is_some_and(|max| self.bytes + size > max) {
                return Err(StoreError::LimitReached(Limit::Bytes));
            }
            if self.config.discard_new_per_subject {
                if let Some(max) = self.config.max_msgs_per_subject {
                    let count = self
                        .subjects
                        .id(subject)
                        .and_then(|id| self.subjects.get(id))
                        .map_or(0, |e| e.count);
                    if count + 1 > max {
                        return Err(StoreError::LimitReached(Limit::MsgsPerSubject));
                    }
                }
            }
        }
        let active = &self.segs[self.active_index()];
        let segment_max = self.config.segment_bytes_max.min(SEGMENT_FILE_BYTES_MAX);
        if !active.slots.is_empty()
            && !self.in_batch
            && (active.len >= segment_max
                || active.len + len as u64 > SEGMENT_FILE_BYTES_MAX
                || active.slots.len() as u64 >= SEGMENT_SEQS_MAX)
        {
            self.roll()?;
        }
        let id = self.subjects.intern(subject).ok_or(StoreError::TooLarge)?;
        let was_empty = self.msgs == 0;
        let seq = self.last_seq + 1;
        let offset = self.push_record(&Record::Message {
            seq,
            time_ns,
            subject,
            headers,
            payload,
        });
        self.last_seq = seq;
        self.last_time_ns = time_ns;
        let ai = self.active_index();
        let seg = &mut self.segs[ai];
        debug_assert_eq!(seg.end_seq(), seq, "the active segment's slots are contiguous");
        seg.slots.push(Slot { offset, subject: id });
        seg.live += 1;
        seg.live_bytes += size;
        seg.records += 1;
        Times::add(&mut seg.times, time_ns);
        self.active.lens.push(len);
        self.subjects.add(id, seq);
        self.msgs += 1;
        self.bytes += size;
        if was_empty {
            self.first_time.set(seq, time_ns);
        }
        let mut removed = 0;
        if let Some(max) = self.config.max_msgs_per_subject {
            removed += self.trim_subject(id, max)?;
        }
        removed += self.enforce_limits()?;
        if removed > 0 {
            self.finish_removal_in_append()?;
        }
        if self.active.wbuf.len() >= WRITE_BUFFER_BYTES_MAX {
            self.write_buffer()?;
        }
        Ok(Appended { seq, removed })
    }

    /// Encodes a record into the write buffer of the active segment; returns
    /// its offset in the segment file.
    pub(super) fn push_record(&mut self, record: &Record<'_>) -> u32 {
        let ai = self.active_index();
        let offset = self.segs[ai].len;
        debug_assert!(offset < SEGMENT_FILE_BYTES_MAX);
        let before = self.active.wbuf.len();
        let crc = record::encode(&mut self.active.wbuf, record, self.batch_part);
        let seg = &mut self.segs[ai];
        seg.len += (self.active.wbuf.len() - before) as u64;
        seg.last_record = Some((offset as u32, crc));
        match record {
            Record::Tombstone { seq } => self.active.tombstones.push(*seq),
            Record::Floor(f) => {
                self.active.floor = Some(*f);
                self.floor_written = self.floor_written.max(f.first_seq);
            }
            Record::Message { .. } => {}
        }
        offset as u32
    }

    /// The floor record describing the store now.
    pub(super) fn current_floor(&self) -> Floor {
        Floor {
            first_seq: self.first_seq(),
            last_seq: self.last_seq,
            last_time_ns: self.last_time_ns,
        }
    }

    /// Writes the write buffer (plus a pending floor record) to the active
    /// segment file: one `pwrite`.
    pub(super) fn write_buffer(&mut self) -> Result<(), StoreError> {
        if self.floor_pending {
            self.floor_pending = false;
            if self.first_seq() > self.floor_written {
                let floor = self.current_floor();
                self.push_record(&Record::Floor(floor));
            }
        }
        if self.active.wbuf.is_empty() {
            return Ok(());
        }
        let seg = &self.segs[self.active_index()];
        let file = seg.file.as_ref().expect("the active segment is open");
        // On failure the buffer is kept and the next write_out rewrites it
        // at the same offset.
        file.write_all_at(&self.active.wbuf, self.active.written)
            .map_err(io_err("write", &seg.path))?;
        self.active.written += self.active.wbuf.len() as u64;
        self.active.wbuf.clear();
        if self.active.wbuf.capacity() > 2 * WRITE_BUFFER_BYTES_MAX {
            self.active.wbuf.shrink_to(WRITE_BUFFER_BYTES_MAX);
        }
        Ok(())
    }

    pub(super) fn sync_all(&mut self) -> Result<(), StoreError> {
        self.write_buffer()?;
        let last = self.active_index();
        for si in 0..last {
            if !self.segs[si].unsynced {
                continue;
            }
            let path = self.segs[si].path.clone();
            let file = match self.segs[si].file.as_ref() {
                Some(f) => f.try_clone().map_err(io_err("open", &path))?,
                None => File::open(&path).map_err(io_err("open", &path))?,
            };
            file.sync_data().map_err(io_err("sync", &path))?;
            self.segs[si].unsynced = false;
        }
        let seg = &self.segs[last];
        let file = seg.file.as_ref().expect("the active segment is open");
        file.sync_data().map_err(io_err("sync", &seg.path))?;
        if self.dir_unsynced {
            sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        // Compactions that appends left for later.
        self.compact_due_segments();
        Ok(())
    }

    /// The summary of the active segment, for its `.idx` file.
    pub(super) fn active_summary(&self) -> Summary {
        let seg = &self.segs[self.active_index()];
        let mut local = rustc_hash::FxHashMap::default();
        let mut subjects = Vec::new();
        let slots = seg
            .slots
            .iter()
            .zip(&self.active.lens)
            .map(|(slot, &len)| {
                let subject = if slot.is_live() {
                    *local.entry(slot.subject).or_insert_with(|| {
                        subjects.push(self.subjects.name(slot.subject).unwrap_or_default().to_owned());
                        (subjects.len() - 1) as u32
                    })
                } else {
                    NO_SUBJECT
                };
                IdxSlot {
                    offset: slot.offset,
                    subject,
                    len: if slot.has_record() { len } else { 0 },
                }
            })
            .collect();
        Summary {
            base: seg.base,
            len: seg.len,
            last_record: seg.last_record,
            subjects,
            slots,
            tombstones: self.active.tombstones.clone(),
            floor: self.active.floor,
            last: Some((self.last_seq, self.last_time_ns)),
            times: seg.times,
        }
    }

    /// Seals the active segment (writes it out and its `.idx`) and starts a
    /// new one at `last_seq + 1`.
    pub(super) fn roll(&mut self) -> Result<(), StoreError> {
        self.write_buffer()?;
        let summary = self.active_summary();
        let ai = self.active_index();
        let idx_path = file_path(&self.dir, self.segs[ai].base, FileKind::Index);
        if let Err(e) = index::write(&idx_path, &summary) {
            tracing::warn!(error = %e, "could not write segment index; recovery will scan the segment");
        }
        let seg = self.new_segment(self.last_seq + 1)?;
        let sealed = &mut self.segs[ai];
        sealed.unsynced = true;
        self.open_sealed += 1;
        self.segs.push_back(seg);
        self.active = Default::default();
        self.start_segment();
        Ok(())
    }

    /// Creates the file of a new segment (empty; see [`Self::start_segment`]).
    pub(super) fn new_segment(&mut self, base: u64) -> Result<Segment, StoreError> {
        let path = file_path(&self.dir, base, FileKind::Segment);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        self.dir_unsynced = true;
        let mut seg = Segment::new(base, path);
        seg.file = Some(file);
        Ok(seg)
    }

    /// Puts the segment header and a floor record describing the store into
    /// the write buffer of a new, empty active segment, so that every
    /// segment file records the last sequence and time on its own.
    pub(super) fn start_segment(&mut self) {
        let ai = self.active_index();
        debug_assert_eq!(self.segs[ai].len, 0);
        debug_assert!(self.active.wbuf.is_empty() && self.active.written == 0);
        self.active.wbuf.extend_from_slice(&record::segment_header());
        self.segs[ai].len = self.active.wbuf.len() as u64;
        let floor = self.current_floor();
        self.push_record(&Record::Floor(floor));
    }
}
