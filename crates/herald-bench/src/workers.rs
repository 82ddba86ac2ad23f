//! The threads of the `pubsub` workload: one per subscriber, one per
//! publisher (plus a reader beside each publisher), sharing counters.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::conn::Conn;

/// Bytes of `PUB` frames written per `write` call (at least one frame).
const BATCH_BYTES: usize = 64 * 1024;
/// How often blocked readers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A counter on its own cache line, so threads do not slow each other down.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded(pub(crate) AtomicU64);

/// Counters shared by the workload's threads and the coordinating thread.
pub(crate) struct Shared {
    /// Set once the run is over; every thread ends within [`POLL`].
    pub(crate) stop: AtomicBool,
    /// Messages received so far, per subscriber.
    pub(crate) received: Vec<Padded>,
    /// Messages written so far, per publisher.
    pub(crate) published: Vec<Padded>,
}

impl Shared {
    pub(crate) fn published(&self) -> u64 {
        self.published.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }

    pub(crate) fn received(&self) -> impl Iterator<Item = u64> + '_ {
        self.received.iter().map(|r| r.0.load(Ordering::Relaxed))
    }
}

/// What a subscriber thread hands back.
pub(crate) struct SubOutcome {
    pub(crate) count: u64,
    pub(crate) last: Option<Instant>,
    /// Bit `n` set: sequence number `n` was received.
    pub(crate) seen: Vec<u64>,
    pub(crate) duplicates: u64,
    pub(crate) failure: Option<String>,
}

/// Counts (and, with `words > 0`, checks the sequence numbers of) every
/// message arriving on `conn` until `stop`.
pub(crate) fn subscriber(mut conn: Conn, index: usize, shared: &Shared, words: usize) -> SubOutcome {
    let mut out = SubOutcome {
        count: 0,
        last: None,
        seen: vec![0; words],
        duplicates: 0,
        failure: None,
    };
    if let Err(e) = conn.set_read_timeout(Some(POLL)) {
        out.failure = Some(e.to_string());
        return out;
    }
    let seen = &mut out.seen;
    let mut count = 0u64;
    let mut duplicates = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        let status = conn.read_some(|msg| {
            count += 1;
            if let Some(seq) = msg.body().get(..8) {
                let seq = u64::from_le_bytes(seq.try_into().unwrap_or_default()) as usize;
                if let Some(word) = seen.get_mut(seq / 64) {
                    let bit = 1u64 << (seq % 64);
                    duplicates += u64::from(*word & bit != 0);
                    *word |= bit;
                }
            }
        });
        match status {
            Ok(status) if status.msgs > 0 => {
                shared.received[index].0.store(count, Ordering::Relaxed);
                out.last = Some(Instant::now());
            }
            Ok(_) => {}
            Err(e) => {
                out.failure = Some(format!("subscriber {}: {e:#}", index + 1));
                break;
            }
        }
    }
    if out.failure.is_none() {
        if let Some(err) = conn.errors().first() {
            out.failure = Some(format!("subscriber {}: server sent -ERR {err}", index + 1));
        }
    }
    out.count = count;
    out.duplicates = duplicates;
    out
}

/// `PUB <subject> <size>\r\n`.
pub(crate) fn pub_header(subject: &str, size: usize) -> String {
    format!("PUB {subject} {size}\r\n")
}

/// One `PUB` frame with a payload of `size` bytes of `x`.
pub(crate) fn build_frame(subject: &str, size: usize) -> Vec<u8> {
    let mut frame = pub_header(subject, size).into_bytes();
    frame.resize(frame.len() + size, b'x');
    frame.extend_from_slice(b"\r\n");
    frame
}

pub(crate) struct PubJob {
    pub(crate) index: usize,
    pub(crate) first_seq: u64,
    pub(crate) count: u64,
    pub(crate) frame: Vec<u8>,
    pub(crate) window: u64,
    pub(crate) queue: bool,
}

/// Publishes `job.count` messages in pre-built batches, keeping at most
/// `job.window` messages in flight, then waits for the stop signal. Returns
/// how many were published and what went wrong, if anything did.
pub(crate) fn publisher(conn: Conn, job: PubJob, shared: Arc<Shared>, go: &Barrier) -> (u64, Option<String>) {
    // A reader thread notices PINGs and -ERRs; only this thread writes.
    let pings = Arc::new(AtomicUsize::new(0));
    let reader = conn.reader_clone().map(|reader| {
        let (pings, shared) = (Arc::clone(&pings), Arc::clone(&shared));
        thread::spawn(move || pub_reader(reader, &pings, &shared))
    });
    go.wait();
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => return (0, Some(format!("publisher {}: {e:#}", job.index + 1))),
    };
    let (sent, mut failure) = publish_loop(conn, &job, &shared, &pings);
    if failure.is_none() {
        while !shared.stop.load(Ordering::Relaxed) {
            thread::sleep(POLL);
        }
    }
    let server_errors = reader
        .join()
        .unwrap_or_else(|_| vec!["reader thread panicked".into()]);
    if !server_errors.is_empty() {
        let errs = server_errors.join("; ");
        failure = Some(match failure {
            Some(f) => format!("{f} (server sent -ERR {errs})"),
            None => format!("publisher {}: server sent -ERR {errs}", job.index + 1),
        });
    }
    (sent, failure)
}

/// Reads the publisher's connection until `stop`: counts PINGs for the
/// writer to answer and returns the `-ERR`s (plus a read failure, if any).
fn pub_reader(mut conn: Conn, pings: &AtomicUsize, shared: &Shared) -> Vec<String> {
    if let Err(e) = conn.set_read_timeout(Some(POLL)) {
        return vec![e.to_string()];
    }
    let mut failure = None;
    while !shared.stop.load(Ordering::Relaxed) {
        match conn.read_some(|_| {}) {
            Ok(status) => {
                if status.pings > 0 {
                    pings.fetch_add(status.pings, Ordering::Relaxed);
                }
            }
            Err(e) => {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
    }
    let mut errors = conn.errors().to_vec();
    // Closing after an -ERR is expected; only report the close otherwise.
    if errors.is_empty() {
        errors.extend(failure);
    }
    errors
}

fn publish_loop(mut conn: Conn, job: &PubJob, shared: &Shared, pings: &AtomicUsize) -> (u64, Option<String>) {
    let frame_len = job.frame.len();
    let per_batch = (BATCH_BYTES / frame_len).max(1);
    let mut batch = job.frame.repeat(per_batch);
    let payload_offset = job.frame.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let size = frame_len - payload_offset - 2;
    let mut sent = 0u64;
    while sent < job.count {
        let n = (job.count - sent).min(per_batch as u64);
        // Wait until the slowest subscriber (the group) is close enough.
        let mut spins = 0u32;
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return (sent, Some(format!("publisher {} stopped early", job.index + 1)));
            }
            let floor = if job.queue {
                shared.received().sum()
            } else {
                shared.received().min().unwrap_or(0)
            };
            if (shared.published() + n).saturating_sub(floor) <= job.window {
                break;
            }
            spins += 1;
            if spins < 16 {
                thread::yield_now();
            } else {
                thread::sleep(Duration::from_micros(50));
            }
        }
        if size >= 8 {
            for i in 0..n as usize {
                let at = i * frame_len + payload_offset;
                batch[at..at + 8].copy_from_slice(&(job.first_seq + sent + i as u64).to_le_bytes());
            }
        }
        let owed = pings.swap(0, Ordering::Relaxed);
        if owed > 0 {
            if let Err(e) = conn.write_all(&b"PONG\r\n".repeat(owed)) {
                return (sent, Some(format!("publisher {}: {e:#}", job.index + 1)));
            }
        }
        if let Err(e) = conn.write_all(&batch[..n as usize * frame_len]) {
            return (sent, Some(format!("publisher {}: {e:#}", job.index + 1)));
        }
        sent += n;
        shared.published[job.index].0.store(sent, Ordering::Relaxed);
    }
    (sent, None)
}
