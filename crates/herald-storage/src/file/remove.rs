//! Removing messages: delete, purge, retention limits and age. In memory a
//! removed slot gets the `NO_SUBJECT` sentinel; on disk an operation ends
//! with [`FileStore::finish_removal`], which writes one floor record when the
//! first sequence moved and a tombstone for every other removed message,
//! removes segment files that hold nothing anymore and compacts segments
//! that are mostly dead (deferred to the next removal or `sync` when the
//! operation is an append, which never `fsync`s).

use std::mem;

use super::record::{stored_size_of_record, Record};
use super::segment::{file_path, remove_file, FileKind};
use super::subjects::{literal_patterns, NO_SUBJECT};
use super::FileStore;
use crate::error::StoreError;
use crate::types::Purge;

/// Length at which the list of segments awaiting a compaction check is
/// deduplicated (appends add to it until the next removal or `sync`).
const TOUCHED_MAX: usize = 4096;

impl FileStore {
    /// Removes the message in slot `ix` of segment `si`, if stored; the
    /// caller ends the operation with [`Self::finish_removal`].
    pub(super) fn remove_at(&mut self, si: usize, ix: usize) -> Result<bool, StoreError> {
        let slot = self.segs[si].slots[ix];
        if !slot.is_live() {
            return Ok(false);
        }
        let size = stored_size_of_record(self.record_len(si, ix)?);
        let last = self.active_index();
        let seg = &mut self.segs[si];
        let seq = seg.base + ix as u64;
        seg.slots[ix].subject = NO_SUBJECT;
        seg.live -= 1;
        seg.live_bytes = seg.live_bytes.saturating_sub(size);
        if ix == seg.first_live {
            seg.advance_first_live();
        }
        if si != last && self.touched.last() != Some(&seg.base) {
            self.touched.push(seg.base);
            if self.touched.len() >= TOUCHED_MAX {
                self.touched.sort_unstable();
                self.touched.dedup();
            }
        }
        self.msgs -= 1;
        self.bytes = self.bytes.saturating_sub(size);
        self.removed.push(seq);
        self.subject_removed(slot.subject, seq);
        Ok(true)
    }

    /// Removes every stored message of segment `si`. Only for removing the
    /// oldest messages (all segments before `si` hold none): the floor
    /// record of [`Self::finish_removal`] covers them, no tombstones.
    fn remove_segment_all(&mut self, si: usize) -> u64 {
        debug_assert!(self.segs.range(..si).all(|s| s.live == 0));
        let seg = &mut self.segs[si];
        let mut gone = Vec::with_capacity(seg.live as usize);
        for (ix, slot) in seg.slots.iter_mut().enumerate().skip(seg.first_live) {
            if slot.is_live() {
                gone.push((seg.base + ix as u64, slot.subject));
                slot.subject = NO_SUBJECT;
            }
        }
        let n = seg.live;
        self.msgs -= n;
        self.bytes = self.bytes.saturating_sub(seg.live_bytes);
        seg.live = 0;
        seg.live_bytes = 0;
        seg.advance_first_live();
        for (seq, id) in gone {
            self.subject_removed(id, seq);
        }
        n
    }

    /// Updates the subject table for the removal of `seq` (already marked
    /// dead in its slot).
    fn subject_removed(&mut self, id: u32, seq: u64) {
        self.removals += 1;
        let Some(e) = self.subjects.get_mut(id) else {
            debug_assert!(false, "stored message with an unknown subject id");
            return;
        };
        e.count -= 1;
        if e.count == 0 {
            self.subjects.release(id);
            return;
        }
        if e.first == seq {
            e.first = seq + 1;
        }
        if e.last == seq {
            let lower = e.first;
            let prev = self.prev_of_subject(id, seq, lower);
            debug_assert!(prev.is_some(), "a subject with messages has a last one");
            if let Some(e) = self.subjects.get_mut(id) {
                e.last = prev.unwrap_or(lower);
            }
        }
    }

    /// The last stored sequence below `before` on subject `id`, looking no
    /// lower than `lower`.
    fn prev_of_subject(&self, id: u32, before: u64, lower: u64) -> Option<u64> {
        let (start_si, start_ix) = self.scan_start(before);
        for si in (0..=start_si).rev() {
            let seg = &self.segs[si];
            let top = if si == start_si {
                start_ix.min(seg.slots.len())
            } else {
                seg.slots.len()
            };
            for ix in (seg.first_live..top).rev() {
                if seg.slots[ix].subject == id {
                    return Some(seg.base + ix as u64);
                }
            }
            if seg.base <= lower {
                break;
            }
        }
        None
    }

    /// Position of the first stored message on subject `id` (moves the
    /// subject's lower bound up to it).
    fn first_of_subject(&mut self, id: u32) -> Option<(usize, usize)> {
        let from = self.subjects.get(id)?.first.max(self.first_seq());
        let (mut si, mut ix) = self.scan_start(from);
        while si < self.segs.len() {
            let seg = &self.segs[si];
            let start = ix.max(seg.first_live);
            if let Some(j) = seg.slots.iter().skip(start).position(|s| s.subject == id) {
                let found = start + j;
                if let Some(e) = self.subjects.get_mut(id) {
                    e.first = seg.base + found as u64;
                }
                return Some((si, found));
            }
            si += 1;
            ix = 0;
        }
        None
    }

    /// Removes the oldest messages of subject `id` until it has `max`.
    pub(super) fn trim_subject(&mut self, id: u32, max: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        while self.subjects.get(id).is_some_and(|e| e.count > max) {
            let Some((si, ix)) = self.first_of_subject(id) else {
                debug_assert!(false, "subject count says more messages than found");
                break;
            };
            self.remove_at(si, ix)?;
            removed += 1;
        }
        Ok(removed)
    }

    fn over_limits(&self, msgs: u64, bytes: u64) -> bool {
        self.config.max_msgs.is_some_and(|max| msgs > max)
            || self.config.max_bytes.is_some_and(|max| bytes > max)
    }

    /// Removes the oldest messages until `max_msgs` and `max_bytes` hold
    /// (whole segments at once where that certainly follows).
    pub(super) fn enforce_limits(&mut self) -> Result<u64, StoreError> {
        let mut removed = 0;
        while self.over_limits(self.msgs, self.bytes) {
            let Some(si) = self.segs.iter().position(|s| s.live > 0) else {
                break;
            };
            let seg = &self.segs[si];
            if self.over_limits(self.msgs - seg.live, self.bytes.saturating_sub(seg.live_bytes)) {
                removed += self.remove_segment_all(si);
            } else {
                let ix = seg.first_live;
                self.remove_at(si, ix)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Enforces every limit of the config (after `set_config`).
    pub(super) fn enforce_all_limits(&mut self) -> Result<(), StoreError> {
        let mut removed = 0;
        if let Some(max) = self.config.max_msgs_per_subject {
            let mut excess = vec![0u64; self.subjects.id_bound()];
            let mut total: u64 = 0;
            for (id, e) in self.subjects.iter() {
                excess[id as usize] = e.count.saturating_sub(max);
                total += excess[id as usize];
            }
            let mut si = 0;
            while total > 0 && si < self.segs.len() {
                let mut ix = self.segs[si].first_live;
                while total > 0 && ix < self.segs[si].slots.len() {
                    let id = self.segs[si].slots[ix].subject;
                    if id != NO_SUBJECT && excess[id as usize] > 0 {
                        self.remove_at(si, ix)?;
                        excess[id as usize] -= 1;
                        total -= 1;
                        removed += 1;
                    }
                    ix += 1;
                }
                si += 1;
            }
        }
        removed += self.enforce_limits()?;
        if removed > 0 {
            self.finish_removal()?;
        }
        Ok(())
    }

    /// Removes every stored message below `up_to`.
    fn remove_prefix(&mut self, up_to: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for si in 0..self.segs.len() {
            let seg = &self.segs[si];
            if seg.base >= up_to {
                break;
            }
            if seg.live == 0 {
                continue;
            }
            if seg.end_seq() <= up_to {
                removed += self.remove_segment_all(si);
                continue;
            }
            let end = (up_to - seg.base) as usize;
            for ix in seg.first_live..end {
                if self.remove_at(si, ix)? {
                    removed += 1;
                }
            }
            break;
        }
        Ok(removed)
    }

    /// Sequence of the `n`-th newest stored message (`1 <= n <= msgs`).
    fn nth_newest(&self, n: u64) -> Option<u64> {
        let mut remaining = n;
        for seg in self.segs.iter().rev() {
            if seg.live < remaining {
                remaining -= seg.live;
                continue;
            }
            for ix in (seg.first_live..seg.slots.len()).rev() {
                if seg.slots[ix].is_live() {
                    remaining -= 1;
                    if remaining == 0 {
                        return Some(seg.base + ix as u64);
                    }
                }
            }
        }
        None
    }

    pub(super) fn purge_messages(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let removed = if purge.filter.is_all() {
            match (purge.up_to_seq, purge.keep) {
                (Some(up_to), _) => self.remove_prefix(up_to)?,
                (None, Some(keep)) if keep > 0 => match self.nth_newest(keep) {
                    Some(seq) => self.remove_prefix(seq)?,
                    None => 0,
                },
                _ => {
                    let n = self.msgs;
                    if n > 0 {
                        self.reset()?;
                    }
                    return Ok(n);
                }
            }
        } else {
            self.purge_filtered(purge)?
        };
        if removed > 0 {
            if self.msgs == 0 {
                self.reset()?;
            } else {
                self.finish_removal()?;
            }
        }
        Ok(removed)
    }

    fn purge_filtered(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        let filter = &purge.filter;
        let up_to = purge.up_to_seq.unwrap_or(u64::MAX);
        let mut hits: Vec<(usize, usize)> = Vec::new();
        if let Some(patterns) = literal_patterns(filter) {
            let known = patterns.iter().filter_map(|p| self.subjects.id(p));
            if known
                .filter(|&id| self.subjects.name(id).is_some_and(|n| filter.matches(n)))
                .count()
                == 0
            {
                return Ok(0);
            }
        }
        self.match_cache.prepare(filter, &self.subjects);
        'segs: for (si, seg) in self.segs.iter().enumerate() {
            for ix in seg.first_live..seg.slots.len() {
                if seg.base + ix as u64 >= up_to {
                    break 'segs;
                }
                let id = seg.slots[ix].subject;
                if id != NO_SUBJECT && self.match_cache.matches(&self.subjects, id) {
                    hits.push((si, ix));
                }
            }
        }
        if purge.up_to_seq.is_none() {
            if let Some(keep) = purge.keep {
                let keep = keep.min(hits.len() as u64) as usize;
                hits.truncate(hits.len() - keep);
            }
        }
        for &(si, ix) in &hits {
            self.remove_at(si, ix)?;
        }
        Ok(hits.len() as u64)
    }

    pub(super) fn expire_old(&mut self, now_ns: i64) -> Result<u64, StoreError> {
        let Some(max_age) = self.config.max_age else {
            return Ok(0);
        };
        let cutoff = now_ns.saturating_sub(max_age.as_nanos().min(i64::MAX as u128) as i64);
        let mut removed = 0;
        'segs: for si in 0..self.segs.len() {
            if self.segs[si].live == 0 {
                continue;
            }
            if self.segs[si].times.is_some_and(|t| t.max <= cutoff) {
                removed += self.remove_segment_all(si);
                continue;
            }
            for ix in self.segs[si].first_live..self.segs[si].slots.len() {
                if !self.segs[si].slots[ix].is_live() {
                    continue;
                }
                if self.record_time(si, ix)? > cutoff {
                    break 'segs;
                }
                self.remove_at(si, ix)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.finish_removal()?;
        }
        Ok(removed)
    }

    /// Records the current operation's removals on disk and cleans up:
    /// tombstones for removed messages above the first sequence, a floor
    /// record (at the next write-out) if the first sequence moved past the
    /// last floor, removal of segment files with nothing stored, compaction
    /// of mostly dead sealed segments.
    pub(super) fn finish_removal(&mut self) -> Result<(), StoreError> {
        self.record_removals()?;
        self.compact_due_segments();
        Ok(())
    }

    /// [`Self::finish_removal`] for an append: compaction `fsync`s, which an
    /// append never does, so it waits for the next removal or `sync`.
    pub(super) fn finish_removal_in_append(&mut self) -> Result<(), StoreError> {
        self.record_removals()
    }

    fn record_removals(&mut self) -> Result<(), StoreError> {
        let first = self.first_seq();
        for seq in mem::take(&mut self.removed) {
            if seq >= first {
                self.push_record(&Record::Tombstone { seq });
            }
        }
        // The floor record is written lazily, once per write-out: only the
        // newest floor matters and nothing in the buffer is durable before.
        self.floor_pending |= first > self.floor_written;
        self.drop_front_dead()?;
        if self.active.wbuf.len() >= super::write::WRITE_BUFFER_BYTES_MAX {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// Compacts the sealed segments removals touched, where dead records
    /// are more than half. A failure only leaves the segment as it was.
    pub(super) fn compact_due_segments(&mut self) {
        let mut touched = mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for base in touched {
            let Some(si) = self.segs.iter().position(|s| s.base == base) else {
                continue;
            };
            let is_front = self.segs.range(..si).all(|s| s.live == 0);
            if si < self.active_index() && self.segs[si].wants_compaction(is_front) {
                if let Err(e) = self.compact(si) {
                    tracing::warn!(error = %e, segment = base, "segment compaction failed; keeping the segment as it is");
                }
            }
        }
    }

    /// Removes the files of the oldest segments that hold no stored message
    /// (never the active one), after writing out the records that made them
    /// empty.
    fn drop_front_dead(&mut self) -> Result<(), StoreError> {
        let last = self.active_index();
        let n = self.segs.range(..last).take_while(|s| s.live == 0).count();
        if n == 0 {
            return Ok(());
        }
        self.write_buffer()?;
        for _ in 0..n {
            let Some(seg) = self.segs.pop_front() else { break };
            if seg.file.is_some() {
                self.open_sealed = self.open_sealed.saturating_sub(1);
            }
            self.forget_reads();
            remove_file(&file_path(&self.dir, seg.base, FileKind::Index))?;
            remove_file(&seg.path)?;
            self.dir_unsynced = true;
        }
        Ok(())
    }

    /// Removes everything: O(segments). A new segment at `last_seq + 1`
    /// starts with a floor record and is synced before the old files are
    /// removed, so the last sequence survives a crash at any point.
    pub(super) fn reset(&mut self) -> Result<(), StoreError> {
        self.removals += self.msgs;
        self.msgs = 0;
        self.bytes = 0;
        self.subjects.clear();
        self.removed.clear();
        self.touched.clear();
        self.floor_pending = false;
        for seg in self.segs.iter_mut() {
            for slot in seg.slots.iter_mut().skip(seg.first_live) {
                slot.subject = NO_SUBJECT;
            }
            seg.live = 0;
            seg.live_bytes = 0;
            seg.advance_first_live();
        }
        let new_base = self.last_seq + 1;
        if self.segs[self.active_index()].base == new_base {
            // The active segment holds no message record: keep it.
            let floor = self.current_floor();
            self.push_record(&Record::Floor(floor));
            self.drop_front_dead()?;
        } else {
            let seg = self.new_segment(new_base)?;
            let old = mem::replace(&mut self.segs, [seg].into());
            self.active = Default::default();
            self.open_sealed = 0;
            self.start_segment();
            self.sync_all()?;
            for seg in old {
                self.forget_reads();
                remove_file(&file_path(&self.dir, seg.base, FileKind::Index))?;
                remove_file(&seg.path)?;
            }
            self.dir_unsynced = true;
        }
        Ok(())
    }
}
