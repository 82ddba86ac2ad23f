//! Measures how long `FileStore::open` (recovery) takes on a large store.
//!
//! ```text
//! cargo run --release -p herald-storage --example open_time -- [DIR] [MESSAGES] [PAYLOAD_BYTES]
//! ```
//!
//! Fills `DIR` (default: `$TMPDIR/herald-open-time`) up to `MESSAGES`
//! messages (default 10 000 000) of `PAYLOAD_BYTES` (default 64) on 1 000
//! subjects, deleting one in 100, unless it already holds them; then opens
//! it three times and prints what recovery did and how long it took. With
//! the defaults the segment files total about 1.1 GB.

use std::path::PathBuf;
use std::time::Instant;

use herald_storage::{FileStore, Store, StoreConfig, StoreError};

fn main() -> Result<(), StoreError> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("herald-open-time"));
    let messages: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let payload_bytes: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);

    let (mut store, _) = FileStore::open(&dir, StoreConfig::default())?;
    let have = store.state().last_seq;
    if have < messages {
        let started = Instant::now();
        let payload = vec![b'x'; payload_bytes];
        for seq in have + 1..=messages {
            store.append(&format!("orders.{}", seq % 1000), b"", &payload, seq as i64)?;
            if seq % 100 == 0 {
                store.delete(seq - 50)?;
            }
        }
        store.sync()?;
        println!(
            "filled {} messages in {:.1} s",
            messages - have,
            started.elapsed().as_secs_f64()
        );
    }
    drop(store);

    let disk: u64 = std::fs::read_dir(&dir)
        .map_err(|source| StoreError::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    for round in 1..=3 {
        let started = Instant::now();
        let (store, recovery) = FileStore::open(&dir, StoreConfig::default())?;
        let elapsed = started.elapsed();
        let state = store.state();
        println!(
            "open #{round}: {:.3} s  msgs={} deleted={} subjects={} segments={} idx_loaded={} scanned={} disk={:.2} GiB",
            elapsed.as_secs_f64(),
            state.msgs,
            state.num_deleted,
            state.num_subjects,
            recovery.segments,
            recovery.indexes_loaded,
            recovery.segments_scanned,
            disk as f64 / (1u64 << 30) as f64,
        );
    }
    Ok(())
}
