//! Compaction: rewriting a sealed segment without its dead records.
//!
//! Steps, each crash-safe (see `docs/internals/storage.md`):
//! 1. write the live records to `NNN.cmp` and `fsync` it (a crash leaves a
//!    `.cmp` file that recovery deletes; the segment is untouched);
//! 2. remove the segment's `.idx` (a crash: the segment is scanned);
//! 3. rename `NNN.cmp` over `NNN.seg` and `fsync` the directory (atomic:
//!    recovery sees the old or the new file, both complete);
//! 4. write the new `.idx` (a crash before: the new segment is scanned).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};

use rustc_hash::FxHashMap;

use super::index::{self, IdxSlot, Summary};
use super::record::{self, Header, Record, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use super::segment::{corrupt, file_path, io_err, remove_file, sync_dir, FileKind, Slot, Times, NO_OFFSET};
use super::subjects::NO_SUBJECT;
use super::FileStore;
use crate::error::StoreError;

/// Buffer size for reading and writing segment files sequentially.
pub(super) const STREAM_BUFFER_BYTES: usize = 1 << 20;

impl FileStore {
    /// Rewrites sealed segment `si` keeping its stored messages, the
    /// tombstones that may still name a record in an older segment, and its
    /// last floor record.
    pub(super) fn compact(&mut self, si: usize) -> Result<(), StoreError> {
        debug_assert!(si < self.active_index(), "only sealed segments are compacted");
        let base = self.segs[si].base;
        let src_path = self.segs[si].path.clone();
        let tmp_path = file_path(&self.dir, base, FileKind::CompactTemp);
        if self.segs[si].len < SEGMENT_HEADER_BYTES as u64 {
            return Ok(());
        }
        let result = self.write_compacted(si, &tmp_path);
        let (summary, new_slots) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        remove_file(&file_path(&self.dir, base, FileKind::Index))?;
        self.forget_reads();
        std::fs::rename(&tmp_path, &src_path).map_err(io_err("rename", &tmp_path))?;
        sync_dir(&self.dir)?;
        self.dir_unsynced = false;

        let seg = &mut self.segs[si];
        for (slot, &offset) in seg.slots.iter_mut().zip(&new_slots) {
            slot.offset = offset;
            debug_assert!(offset != NO_OFFSET || !slot.is_live());
        }
        seg.records = seg.live;
        seg.skipped_records = 0;
        seg.times = summary.times;
        seg.len = summary.len;
        seg.last_record = summary.last_record;
        seg.unsynced = false;
        if seg.file.take().is_some() {
            self.open_sealed = self.open_sealed.saturating_sub(1);
        }
        let idx_path = file_path(&self.dir, base, FileKind::Index);
        if let Err(e) = index::write(&idx_path, &summary) {
            tracing::warn!(error = %e, "could not write segment index after compaction");
        }
        tracing::debug!(segment = base, bytes = summary.len, "compacted segment");
        Ok(())
    }

    /// Writes the compacted copy of segment `si` to `tmp_path` and syncs it.
    /// Returns its summary and the new offset of every slot.
    fn write_compacted(
        &self,
        si: usize,
        tmp_path: &std::path::Path,
    ) -> Result<(Summary, Vec<u32>), StoreError> {
        let seg = &self.segs[si];
        let keep_tombstones_from = self.segs[0].base;
        let src = File::open(&seg.path).map_err(io_err("open", &seg.path))?;
        let mut reader = BufReader::with_capacity(STREAM_BUFFER_BYTES, src.take(seg.len));
        let out_file = File::create(tmp_path).map_err(io_err("create", tmp_path))?;
        let mut out = BufWriter::with_capacity(STREAM_BUFFER_BYTES, &out_file);
        let write_err = io_err("write", tmp_path);
        let read_err = |e| io_err("read", &seg.path)(e);

        let mut head = [0u8; SEGMENT_HEADER_BYTES];
        reader.read_exact(&mut head).map_err(read_err)?;
        let header = record::segment_header();
        out.write_all(&header).map_err(|e| io_err("write", tmp_path)(e))?;
        let mut summary = Summary {
            base: seg.base,
            slots: vec![
                IdxSlot {
                    offset: NO_OFFSET,
                    subject: NO_SUBJECT,
                    len: 0,
                };
                seg.slots.len()
            ],
            ..Summary::default()
        };
        let mut new_offsets = vec![NO_OFFSET; seg.slots.len()];
        let mut local: FxHashMap<u32, u32> = FxHashMap::default();
        let mut floor = None;
        let mut copied = 0u64;
        let mut pos_in = SEGMENT_HEADER_BYTES as u64;
        let mut pos_out = SEGMENT_HEADER_BYTES as u64;
        let mut buf = Vec::new();
        let mut emit = |bytes: &[u8], crc: u32, pos_out: &mut u64, summary: &mut Summary| {
            summary.last_record = Some((*pos_out as u32, crc));
            *pos_out += bytes.len() as u64;
            out.write_all(bytes)
        };
        while pos_in < seg.len {
            let mut h = [0u8; RECORD_HEADER_BYTES];
            reader.read_exact(&mut h).map_err(read_err)?;
            let len = Header::parse(&h).len as usize;
            if len < RECORD_HEADER_BYTES || len > record::RECORD_BYTES_MAX as usize {
                return Err(corrupt(&seg.path, format!("bad record length at {pos_in}")));
            }
            buf.clear();
            buf.extend_from_slice(&h);
            buf.resize(len, 0);
            reader
                .read_exact(&mut buf[RECORD_HEADER_BYTES..])
                .map_err(read_err)?;
            let (h, rec) =
                record::decode(&buf).map_err(|why| corrupt(&seg.path, format!("{why} at {pos_in}")))?;
            match rec {
                Record::Message { seq, time_ns, .. } => {
                    let ix = seq.wrapping_sub(seg.base) as usize;
                    let keep = seg
                        .slots
                        .get(ix)
                        .is_some_and(|s: &Slot| s.is_live() && s.offset as u64 == pos_in);
                    if keep {
                        let id = seg.slots[ix].subject;
                        let next = local.len() as u32;
                        let lid = *local.entry(id).or_insert(next);
                        if lid == next {
                            summary
                                .subjects
                                .push(self.subjects.name(id).unwrap_or_default().to_owned());
                        }
                        summary.slots[ix] = IdxSlot {
                            offset: pos_out as u32,
                            subject: lid,
                            len: len as u32,
                        };
                        new_offsets[ix] = pos_out as u32;
                        Times::add(&mut summary.times, time_ns);
                        summary.note_last(seq, time_ns);
                        copied += 1;
                        // Batches in a sealed segment are complete: their
                        // parts become plain messages, so dropping a closing
                        // message here cannot make a batch look torn.
                        let crc = record::close_batch_part(&mut buf).unwrap_or(h.crc);
                        emit(&buf, crc, &mut pos_out, &mut summary).map_err(&write_err)?;
                    }
                }
                Record::Tombstone { seq } => {
                    if seq < seg.base && seq >= keep_tombstones_from {
                        summary.tombstones.push(seq);
                        emit(&buf, h.crc, &mut pos_out, &mut summary).map_err(&write_err)?;
                    }
                }
                Record::Floor(f) => floor = Some(f),
            }
            pos_in += len as u64;
        }
        if copied != seg.live {
            return Err(corrupt(
                &seg.path,
                format!("found {copied} of {} stored messages while compacting", seg.live),
            ));
        }
        if let Some(f) = floor {
            buf.clear();
            let crc = record::encode(&mut buf, &Record::Floor(f), false);
            summary.floor = Some(f);
            summary.note_last(f.last_seq, f.last_time_ns);
            emit(&buf, crc, &mut pos_out, &mut summary).map_err(&write_err)?;
        }
        out.flush().map_err(&write_err)?;
        drop(out);
        out_file.sync_all().map_err(io_err("sync", tmp_path))?;
        summary.len = pos_out;
        Ok((summary, new_offsets))
    }
}
