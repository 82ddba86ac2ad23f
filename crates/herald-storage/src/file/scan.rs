//! Sequential scan of the header blocks of stored messages: how a stream
//! refills its deduplication window at start without materialising every
//! message (a 10 M-message stream is read in large blocks, and messages
//! without headers cost one record-header parse each).

use super::record::{Header, KIND_BATCH_PART, KIND_MESSAGE, RECORD_HEADER_BYTES};
use super::segment::corrupt;
use super::FileStore;
use crate::error::StoreError;

/// Size of the blocks the scan reads.
const SCAN_BLOCK_BYTES: usize = 1 << 20;

impl FileStore {
    /// Calls `visit(seq, time_ns, headers)` for every stored message with
    /// sequence `>= from_seq` that has headers, in order.
    pub(super) fn scan_header_blocks(
        &mut self,
        from_seq: u64,
        visit: &mut dyn FnMut(u64, i64, &[u8]),
    ) -> Result<(), StoreError> {
        crate::Store::write_out(self)?;
        let (first_si, first_ix) = self.scan_start(from_seq);
        let mut buf = Vec::new();
        for si in first_si..self.segs.len() {
            let seg = &self.segs[si];
            let skip = if si == first_si { first_ix } else { 0 };
            let Some(start) = seg
                .slots
                .iter()
                .skip(skip)
                .find(|s| s.is_live())
                .map(|s| s.offset as u64)
            else {
                continue;
            };
            let end = seg.len;
            let base = seg.base;
            let mut at = start;
            while at < end {
                let want = ((end - at) as usize).min(SCAN_BLOCK_BYTES);
                buf.resize(want, 0);
                self.read_at(si, at, &mut buf)?;
                let mut pos = 0;
                while pos + RECORD_HEADER_BYTES <= buf.len() {
                    let head = buf[pos..]
                        .first_chunk::<RECORD_HEADER_BYTES>()
                        .expect("length checked");
                    let h = Header::parse(head);
                    h.check().map_err(|why| corrupt(&self.segs[si].path, why))?;
                    let len = h.len as usize;
                    if pos + len > buf.len() {
                        if pos == 0 {
                            // One record larger than the block: read it whole.
                            buf.resize(len, 0);
                            self.read_at(si, at, &mut buf)?;
                            continue;
                        }
                        break;
                    }
                    if matches!(h.kind, KIND_MESSAGE | KIND_BATCH_PART)
                        && h.headers_len > 0
                        && h.seq >= from_seq
                    {
                        let live = h
                            .seq
                            .checked_sub(base)
                            .and_then(|ix| self.segs[si].slots.get(ix as usize))
                            .is_some_and(|slot| slot.is_live() && slot.offset as u64 == at + pos as u64);
                        if live {
                            let from = pos + RECORD_HEADER_BYTES + h.subject_len as usize;
                            visit(h.seq, h.time_ns, &buf[from..from + h.headers_len as usize]);
                        }
                    }
                    pos += len;
                }
                if pos == 0 {
                    break;
                }
                at += pos as u64;
            }
        }
        Ok(())
    }
}
