//! `js-pub`: JetStream publish throughput, counted in PubAcks.
//!
//! The stream is deleted (if it exists) and created afresh. Each publisher
//! connection subscribes one wildcard inbox, `_INBOX.<token>.p<conn>.*`, and
//! publishes with a unique reply subject per message (`….<n>`), so every
//! PubAck says which message it acknowledges; an [`AckWindow`] keeps at most
//! `--in-flight` messages unacknowledged and times each one. One thread per
//! connection writes a burst of frames, then reads the acks that came back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::js::{parse_pub_reply, push_decimal, unique_token, Api, StreamArgs};
use crate::stats::{human, rate, Latency};
use crate::{CommonArgs, Report};

/// How often a blocked reader looks at the stop flag and the timeout.
const POLL: Duration = Duration::from_millis(50);

/// Options of the publishing load (also used by `js-replay` to fill its stream).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Publisher connections; the messages are split between them.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Messages published in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub msgs: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Most messages published but not yet acknowledged, per connection.
    #[arg(long, default_value_t = 256)]
    pub in_flight: usize,
    /// Give up after this many seconds without any reply.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Options of `herald bench js-pub`.
#[derive(Debug, Clone, clap::Args)]
pub struct JsPubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// Result of one `js-pub` run (also the `fill` of a `js-replay` run).
#[derive(Debug, Serialize)]
pub struct JsPubReport {
    pub workload: &'static str,
    pub server: String,
    pub stream: String,
    pub storage: crate::js::Storage,
    pub sync: crate::js::SyncMode,
    pub conns: usize,
    pub size: usize,
    pub in_flight: usize,
    /// Messages written to the server.
    pub published: u64,
    /// Messages acknowledged with a PubAck.
    pub acked: u64,
    /// Messages that should have been acknowledged.
    pub expected: u64,
    /// PubAcks flagged `"duplicate": true`.
    pub duplicates: u64,
    /// Replies that matched no message in flight (late, repeated or stray).
    pub unexpected: u64,
    /// Lowest and highest stream sequence acknowledged.
    pub first_seq: u64,
    pub last_seq: u64,
    pub elapsed_secs: f64,
    /// Acknowledged messages per second, from the first publish to the last PubAck.
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6 bytes) acknowledged per second.
    pub mb_per_sec: f64,
    /// Time from writing a message to reading its PubAck.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    pub error: Option<String>,
}

impl Report for JsPubReport {
    fn line(&self) -> String {
        let mut line = format!(
            "js-pub {} conn(s), {} B, {} in flight, {} storage, sync {}: acked {} of {} in {:.3} s = {} msgs/s, {:.1} MB/s",
            self.conns,
            self.size,
            self.in_flight,
            self.storage.as_str(),
            self.sync.as_str(),
            self.acked,
            self.expected,
            self.elapsed_secs,
            human(self.msgs_per_sec),
            self.mb_per_sec
        );
        if let Some(l) = &self.latency {
            line += &format!(
                ", ack latency us p50 {:.1} p99 {:.1} max {:.1}",
                l.p50_us, l.p99_us, l.max_us
            );
        }
        if let Some(err) = &self.error {
            line += &format!(" ERROR: {err}");
        }
        line
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Runs the workload: recreates the stream, then publishes.
pub fn run(args: &JsPubArgs) -> anyhow::Result<JsPubReport> {
    let addr = server_addr(&args.common.server)?;
    let token = unique_token();
    let mut conn = Conn::connect(&addr)?;
    let mut api = Api::subscribe(&mut conn, &format!("_INBOX.{token}.api"), 1, &args.common.server)?;
    api.recreate_stream(&mut conn, &args.stream)?;
    drop(conn);
    publish(&addr, &token, &args.common, &args.stream, &args.load)
}

/// Publishes `load` into the (existing) stream and reports the PubAcks.
pub fn publish(
    addr: &str,
    token: &str,
    common: &CommonArgs,
    stream: &StreamArgs,
    load: &LoadArgs,
) -> anyhow::Result<JsPubReport> {
    if load.conns == 0 || load.msgs == 0 || load.in_flight == 0 {
        bail!("--conns, --msgs and --in-flight must be at least 1");
    }
    let mut conns = Vec::with_capacity(load.conns);
    for c in 1..=load.conns {
        let mut conn = Conn::connect(addr)?;
        conn.write_all(format!("SUB _INBOX.{token}.p{c}.* 1\r\n").as_bytes())?;
        conns.push(conn);
    }
    for conn in &mut conns {
        conn.flush_roundtrip()?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let go = Arc::new(Barrier::new(load.conns + 1));
    let share = load.msgs / load.conns as u64;
    let mut threads = Vec::with_capacity(load.conns);
    for (i, conn) in conns.into_iter().enumerate() {
        let c = i + 1;
        let job = PubJob {
            index: c,
            count: if c == load.conns {
                load.msgs - share * (load.conns as u64 - 1)
            } else {
                share
            },
            stream: stream.stream.clone(),
            frame: PubFrame::new(
                &format!("bench.js.{c}"),
                &format!("_INBOX.{token}.p{c}."),
                load.size,
            ),
            in_flight: load.in_flight,
            timeout: Duration::from_secs_f64(load.timeout),
        };
        let (stop, go) = (Arc::clone(&stop), Arc::clone(&go));
        threads.push(thread::spawn(move || pub_loop(conn, &job, &stop, &go)));
    }
    go.wait();
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(load.conns);
    for handle in threads {
        outcomes.push(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?,
        );
    }
    let end = outcomes.iter().filter_map(|o| o.last).max().unwrap_or(start);
    let elapsed = end.saturating_duration_since(start);
    let acked: u64 = outcomes.iter().map(|o| o.acked).sum();
    let mut samples: Vec<Duration> = Vec::with_capacity(acked as usize);
    for o in &mut outcomes {
        samples.append(&mut o.samples);
    }
    // A connection stopped because another failed says less than the one that failed.
    let error = outcomes
        .iter()
        .filter_map(|o| o.failure.clone())
        .min_by_key(|f| f.contains(STOPPED));
    let error = error
        .or_else(|| (acked != load.msgs).then(|| format!("acknowledged {acked} of {} messages", load.msgs)));
    Ok(JsPubReport {
        workload: "js-pub",
        server: common.server.clone(),
        stream: stream.stream.clone(),
        storage: stream.storage,
        sync: stream.sync,
        conns: load.conns,
        size: load.size,
        in_flight: load.in_flight,
        published: outcomes.iter().map(|o| o.published).sum(),
        acked,
        expected: load.msgs,
        duplicates: outcomes.iter().map(|o| o.duplicates).sum(),
        unexpected: outcomes.iter().map(|o| o.unexpected).sum(),
        first_seq: outcomes
            .iter()
            .filter(|o| o.acked > 0)
            .map(|o| o.first_seq)
            .min()
            .unwrap_or(0),
        last_seq: outcomes.iter().map(|o| o.last_seq).max().unwrap_or(0),
        elapsed_secs: elapsed.as_secs_f64(),
        msgs_per_sec: rate(acked as f64, elapsed),
        mb_per_sec: rate((acked * load.size as u64) as f64, elapsed) / 1e6,
        latency: Latency::from_samples(&mut samples),
        error,
    })
}

/// The messages of one connection are acknowledged in any order, each at
/// most once; at most `limit` are outstanding. Messages are numbered from 0
/// and slot `n % limit` remembers when message `n` was sent: a slot is
/// reused only once its message is acknowledged, so with acks out of order
/// the window may hold back a little more than `limit` requires.
pub struct AckWindow {
    slots: Vec<Slot>,
    sent: u64,
    acked: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    /// When it was sent; `None` once acknowledged.
    sent_at: Option<Instant>,
}

/// What [`AckWindow::ack`] made of an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMatch {
    /// First ack of a message in flight, with the time since it was sent.
    Acked(Duration),
    /// The message had already been acknowledged.
    Repeated,
    /// No such message was sent.
    Unknown,
}

impl AckWindow {
    /// A window of at most `limit` messages (at least 1).
    pub fn new(limit: usize) -> Self {
        let free = Slot {
            seq: u64::MAX,
            sent_at: None,
        };
        Self {
            slots: vec![free; limit.max(1)],
            sent: 0,
            acked: 0,
        }
    }

    /// Messages sent so far (the next one gets this number).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Messages sent and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.sent - self.acked
    }

    /// Takes the number of the next message if the window has room for it.
    pub fn try_send(&mut self, now: Instant) -> Option<u64> {
        let len = self.slots.len() as u64;
        if self.outstanding() >= len {
            return None;
        }
        let seq = self.sent;
        let slot = &mut self.slots[(seq % len) as usize];
        if slot.sent_at.is_some() {
            return None;
        }
        *slot = Slot {
            seq,
            sent_at: Some(now),
        };
        self.sent += 1;
        Some(seq)
    }

    /// Records the acknowledgement of message `seq`.
    pub fn ack(&mut self, seq: u64, now: Instant) -> AckMatch {
        if seq >= self.sent {
            return AckMatch::Unknown;
        }
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(seq % len) as usize];
        match slot.sent_at {
            Some(at) if slot.seq == seq => {
                slot.sent_at = None;
                self.acked += 1;
                AckMatch::Acked(now.saturating_duration_since(at))
            }
            // Sent, and its slot was freed (and maybe reused): acked before.
            _ => AckMatch::Repeated,
        }
    }
}

/// A `PUB` frame template: `PUB <subject> <reply prefix><n> <size>\r\n<payload>\r\n`.
pub struct PubFrame {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl PubFrame {
    pub fn new(subject: &str, reply_prefix: &str, size: usize) -> Self {
        let head = format!("PUB {subject} {reply_prefix}").into_bytes();
        let mut tail = format!(" {size}\r\n").into_bytes();
        tail.resize(tail.len() + size, b'x');
        tail.extend_from_slice(b"\r\n");
        Self { head, tail }
    }

    /// Appends the frame of message `seq`.
    pub fn push(&self, out: &mut Vec<u8>, seq: u64) {
        out.extend_from_slice(&self.head);
        push_decimal(out, seq);
        out.extend_from_slice(&self.tail);
    }

    /// The reply prefix's message number in `subject`, if it is one of ours.
    pub fn seq_of(&self, subject: &[u8]) -> Option<u64> {
        let prefix_at = self.head.iter().rposition(|&b| b == b' ')? + 1;
        let digits = subject.strip_prefix(&self.head[prefix_at..])?;
        if digits.is_empty() || digits.len() > 19 {
            return None;
        }
        digits.iter().try_fold(0u64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
        })
    }
}

/// Marks failures of connections that only stopped because another failed.
const STOPPED: &str = "stopped after another connection failed";

struct PubJob {
    index: usize,
    count: u64,
    stream: String,
    frame: PubFrame,
    in_flight: usize,
    timeout: Duration,
}

#[derive(Default)]
struct PubOutcome {
    published: u64,
    acked: u64,
    duplicates: u64,
    unexpected: u64,
    first_seq: u64,
    last_seq: u64,
    /// When the last PubAck arrived.
    last: Option<Instant>,
    samples: Vec<Duration>,
    failure: Option<String>,
}

/// Publishes `job.count` messages on `conn` within the window and collects their acks.
fn pub_loop(mut conn: Conn, job: &PubJob, stop: &AtomicBool, go: &Barrier) -> PubOutcome {
    let mut out = PubOutcome {
        first_seq: u64::MAX,
        samples: Vec::with_capacity(job.count as usize),
        ..PubOutcome::default()
    };
    let failed = |text: String| format!("connection {}: {text}", job.index);
    if let Err(e) = conn.set_read_timeout(Some(POLL)) {
        go.wait();
        out.failure = Some(failed(e.to_string()));
        stop.store(true, Ordering::Relaxed);
        return out;
    }
    let mut window = AckWindow::new(job.in_flight);
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut last_progress = Instant::now();
    go.wait();
    while window.acked() < job.count && out.failure.is_none() {
        if stop.load(Ordering::Relaxed) {
            out.failure = Some(failed(STOPPED.into()));
            break;
        }
        batch.clear();
        let now = Instant::now();
        while window.sent() < job.count {
            match window.try_send(now) {
                Some(seq) => job.frame.push(&mut batch, seq),
                None => break,
            }
        }
        if !batch.is_empty() {
            if let Err(e) = conn.write_all(&batch) {
                out.failure = Some(failed(format!("{e:#}")));
                break;
            }
        }
        let mut failure = None;
        let mut arrived = None;
        let acked_before = window.acked();
        let read = conn.read_some(|msg| {
            let now = *arrived.get_or_insert_with(Instant::now);
            let Some(seq) = job.frame.seq_of(msg.subject) else {
                out.unexpected += 1;
                return;
            };
            match parse_pub_reply(msg) {
                Ok(ack) if ack.stream != job.stream => {
                    failure.get_or_insert_with(|| {
                        format!("message {seq} acknowledged by stream {:?}", ack.stream)
                    });
                }
                Ok(ack) => match window.ack(seq, now) {
                    AckMatch::Acked(latency) => {
                        out.samples.push(latency);
                        out.duplicates += u64::from(ack.duplicate);
                        out.first_seq = out.first_seq.min(ack.seq);
                        out.last_seq = out.last_seq.max(ack.seq);
                    }
                    AckMatch::Repeated | AckMatch::Unknown => out.unexpected += 1,
                },
                Err(text) => {
                    failure.get_or_insert_with(|| format!("message {seq}: {text}"));
                }
            }
        });
        match read {
            Err(e) => failure = Some(format!("{e:#}")),
            Ok(_) if window.acked() > acked_before => {
                last_progress = Instant::now();
                out.last = arrived;
            }
            Ok(_) if last_progress.elapsed() > job.timeout => {
                failure = Some(format!(
                    "no PubAck for {:?}: published {}, acknowledged {}",
                    job.timeout,
                    window.sent(),
                    window.acked()
                ));
            }
            Ok(_) => {}
        }
        if let Some(text) = failure {
            out.failure = Some(failed(text));
        }
    }
    if out.failure.is_none() {
        if let Some(err) = conn.errors().first() {
            out.failure = Some(failed(format!("server sent -ERR {err}")));
        }
    }
    if out.failure.is_some() {
        stop.store(true, Ordering::Relaxed);
    }
    out.published = window.sent();
    out.acked = window.acked();
    if out.acked == 0 {
        out.first_seq = 0;
    }
    out
}
