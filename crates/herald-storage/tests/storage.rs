//! Integration tests of the storage engine (one test binary; modules in
//! `tests/storage/`).
//!
//! - `conformance`: the `Store` contract against `MemoryStore` and `FileStore`.
//! - `model`: random operation sequences, `FileStore` vs `MemoryStore`.
//! - `crash`: torn tails, flipped bytes, damaged indexes, interrupted compaction.
//! - `segments`: rollover, segment removal, compaction, purge and restart.

mod storage {
    mod common;
    mod conformance;
    mod crash;
    mod model;
    mod segments;
}
