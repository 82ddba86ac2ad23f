//! Stream and consumer metadata on disk: JSON files written atomically
//! (temporary file, fsync, rename), read back at start.
//!
//! ```text
//! <data_dir>/jetstream/streams/<stream>/meta.json        config + created
//! <data_dir>/jetstream/streams/<stream>/msgs/            the file store
//! <data_dir>/jetstream/streams/<stream>/consumers/<c>/meta.json
//! <data_dir>/jetstream/streams/<stream>/consumers/<c>/state.json
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use herald_core::consumer::{SavedState, SeqPair};
use serde::{Deserialize, Serialize};

/// What `meta.json` holds for a stream or consumer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Meta<C> {
    pub config: C,
    /// Unix nanoseconds of creation.
    pub created_ns: i64,
}

/// The directory of all streams.
pub(crate) fn streams_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("jetstream").join("streams")
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new
/// content, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_data()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// Saves metadata (durably: losing it loses the stream or consumer).
pub(crate) fn save_meta<C: Serialize>(dir: &Path, meta: &Meta<C>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    write_atomic(&dir.join("meta.json"), &json, true)
}

/// Reads metadata written by [`save_meta`].
pub(crate) fn load_meta<C: for<'de> Deserialize<'de>>(dir: &Path) -> io::Result<Meta<C>> {
    let bytes = std::fs::read(dir.join("meta.json"))?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    delivered: (u64, u64),
    ack_floor: (u64, u64),
    next_stream_seq: u64,
    pending: Vec<(u64, u64, u64)>,
}

/// Saves a consumer's delivery state (handed to the OS; a crash of the
/// process keeps it, a power loss may roll it back to an earlier save, which
/// only causes redeliveries).
pub(crate) fn save_consumer_state(dir: &Path, saved: &SavedState) -> io::Result<()> {
    let file = StateFile {
        delivered: (saved.delivered.consumer_seq, saved.delivered.stream_seq),
        ack_floor: (saved.ack_floor.consumer_seq, saved.ack_floor.stream_seq),
        next_stream_seq: saved.next_stream_seq,
        pending: saved.pending.clone(),
    };
    let json = serde_json::to_vec(&file).map_err(io::Error::other)?;
    write_atomic(&dir.join("state.json"), &json, false)
}

/// Reads a consumer's state, `None` if it was never saved.
pub(crate) fn load_consumer_state(dir: &Path) -> io::Result<Option<SavedState>> {
    let bytes = match std::fs::read(dir.join("state.json")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file: StateFile =
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let pair = |(consumer_seq, stream_seq)| SeqPair {
        consumer_seq,
        stream_seq,
    };
    Ok(Some(SavedState {
        delivered: pair(file.delivered),
        ack_floor: pair(file.ack_floor),
        next_stream_seq: file.next_stream_seq,
        pending: file.pending,
    }))
}
