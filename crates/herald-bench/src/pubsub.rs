//! `pubsub`: publish-subscribe throughput, fan-out or one queue group.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::stats::{human, rate};
use crate::workers::{build_frame, pub_header, publisher, subscriber, Padded, PubJob, Shared, SubOutcome};
use crate::{CommonArgs, Report};

/// Options of `herald bench pubsub`.
#[derive(Debug, Clone, clap::Args)]
pub struct PubsubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Subscribers (members of the group with --queue).
    #[arg(long, default_value_t = 1)]
    pub subs: usize,
    /// Publishers; the messages are split between them.
    #[arg(long, default_value_t = 1)]
    pub pubs: usize,
    /// Subject published to and subscribed on.
    #[arg(long, default_value = "bench.subject")]
    pub subject: String,
    /// Make the subscribers one queue group of this name: each message goes to one member.
    #[arg(long)]
    pub queue: Option<String>,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages published in total.
    #[arg(long, default_value_t = 2_000_000)]
    pub msgs: u64,
    /// Most messages published but not yet received by the slowest subscriber
    /// (by the group as a whole with --queue).
    #[arg(long, default_value_t = 50_000)]
    pub window: u64,
    /// Also cap the window at this many bytes of frames in flight per subscriber.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub window_bytes: u64,
    /// Give up after this many seconds without any message arriving.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// Result of one `pubsub` run.
#[derive(Debug, Serialize)]
pub struct PubsubReport {
    pub workload: &'static str,
    pub server: String,
    pub pubs: usize,
    pub subs: usize,
    pub queue: Option<String>,
    pub size: usize,
    /// Messages actually published.
    pub published: u64,
    /// Messages received, summed over all subscribers.
    pub delivered: u64,
    /// Messages that should have been received in total.
    pub expected: u64,
    pub elapsed_secs: f64,
    pub msgs_per_sec: f64,
    /// Payload megabytes (10^6 bytes) delivered per second.
    pub mb_per_sec: f64,
    /// Messages received by each subscriber.
    pub per_sub: Vec<u64>,
    /// The effective window, in messages.
    pub window: u64,
    /// Whether payloads carried sequence numbers (size >= 8) and were checked.
    pub verified: bool,
    /// Sequence numbers received more than once (by the same subscriber or,
    /// with --queue, by two members).
    pub duplicates: u64,
    /// Sequence numbers a subscriber (the whole group, with --queue) never got.
    pub missing: u64,
    pub error: Option<String>,
}

impl Report for PubsubReport {
    fn line(&self) -> String {
        let shape = match &self.queue {
            Some(q) => format!("{} pub -> queue {q:?} of {}", self.pubs, self.subs),
            None => format!("{} pub -> {} sub", self.pubs, self.subs),
        };
        let mut line = format!(
            "pubsub {shape}, {} B: published {}, delivered {} in {:.3} s = {} msgs/s, {:.1} MB/s",
            self.size,
            self.published,
            self.delivered,
            self.elapsed_secs,
            human(self.msgs_per_sec),
            self.mb_per_sec
        );
        if self.subs > 1 {
            line += &format!(" (per sub: {:?})", self.per_sub);
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

/// Runs the workload.
pub fn run(args: &PubsubArgs) -> anyhow::Result<PubsubReport> {
    if args.subs == 0 || args.pubs == 0 || args.msgs == 0 {
        bail!("--subs, --pubs and --msgs must be at least 1");
    }
    let addr = server_addr(&args.common.server)?;
    let queue = args.queue.as_deref().map(|q| format!(" {q}")).unwrap_or_default();
    let verify = args.size >= 8;
    let frame_len = pub_header(&args.subject, args.size).len() + args.size + 2;
    let window = args.window.min(args.window_bytes / frame_len as u64).max(1);

    let mut sub_conns = Vec::with_capacity(args.subs);
    for sid in 1..=args.subs {
        let mut conn = Conn::connect(&addr)?;
        conn.write_all(format!("SUB {}{queue} {sid}\r\n", args.subject).as_bytes())?;
        sub_conns.push(conn);
    }
    // Every SUB is registered once its connection has answered a PING.
    for conn in &mut sub_conns {
        conn.flush_roundtrip().context("subscribing")?;
    }
    let pub_conns = (0..args.pubs)
        .map(|_| Conn::connect(&addr))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        received: (0..args.subs).map(|_| Padded::default()).collect(),
        published: (0..args.pubs).map(|_| Padded::default()).collect(),
    });
    let words = if verify {
        args.msgs.div_ceil(64) as usize
    } else {
        0
    };
    let subs: Vec<JoinHandle<SubOutcome>> = sub_conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let shared = Arc::clone(&shared);
            thread::spawn(move || subscriber(conn, i, &shared, words))
        })
        .collect();

    let go = Arc::new(Barrier::new(args.pubs + 1));
    let share = args.msgs / args.pubs as u64;
    let mut first = 0;
    let mut pubs = Vec::with_capacity(args.pubs);
    for (p, conn) in pub_conns.into_iter().enumerate() {
        let count = if p + 1 == args.pubs {
            args.msgs - first
        } else {
            share
        };
        let job = PubJob {
            index: p,
            first_seq: first,
            count,
            frame: build_frame(&args.subject, args.size),
            window,
            queue: args.queue.is_some(),
        };
        first += count;
        let (shared, go) = (Arc::clone(&shared), Arc::clone(&go));
        pubs.push(thread::spawn(move || publisher(conn, job, shared, &go)));
    }
    go.wait();
    let start = Instant::now();

    let expected = if args.queue.is_some() {
        args.msgs
    } else {
        args.msgs * args.subs as u64
    };
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut error = wait_for_delivery(&shared, args, &subs, &pubs, timeout);
    shared.stop.store(true, Ordering::Relaxed);

    let mut published = 0;
    for handle in pubs {
        let (count, failure) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
        published += count;
        if error.is_none() {
            error = failure;
        }
    }
    let mut outcomes = Vec::with_capacity(args.subs);
    for handle in subs {
        outcomes.push(
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("subscriber thread panicked"))?,
        );
    }
    let end = outcomes.iter().filter_map(|o| o.last).max().unwrap_or(start);
    let elapsed = end.saturating_duration_since(start);
    let per_sub: Vec<u64> = outcomes.iter().map(|o| o.count).collect();
    let delivered: u64 = per_sub.iter().sum();
    let (duplicates, missing) = if verify {
        check_sequences(&outcomes, args)
    } else {
        (0, 0)
    };
    if error.is_none() {
        error = outcomes.iter().find_map(|o| o.failure.clone());
    }
    if error.is_none() && (delivered != expected || duplicates > 0 || missing > 0) {
        error = Some(format!(
            "delivered {delivered} of {expected} expected ({duplicates} duplicates, {missing} missing)"
        ));
    }
    Ok(PubsubReport {
        workload: "pubsub",
        server: args.common.server.clone(),
        pubs: args.pubs,
        subs: args.subs,
        queue: args.queue.clone(),
        size: args.size,
        published,
        delivered,
        expected,
        elapsed_secs: elapsed.as_secs_f64(),
        msgs_per_sec: rate(delivered as f64, elapsed),
        mb_per_sec: rate((delivered * args.size as u64) as f64, elapsed) / 1e6,
        per_sub,
        window,
        verified: verify,
        duplicates,
        missing,
        error,
    })
}

/// Polls until everything arrived, a thread failed, or nothing arrived for
/// `timeout`. Returns the failure, if any.
fn wait_for_delivery(
    shared: &Shared,
    args: &PubsubArgs,
    subs: &[JoinHandle<SubOutcome>],
    pubs: &[JoinHandle<(u64, Option<String>)>],
    timeout: Duration,
) -> Option<String> {
    let mut last_total = 0;
    let mut last_progress = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(1));
        let total: u64 = shared.received().sum();
        let done = match args.queue {
            Some(_) => total >= args.msgs,
            None => shared.received().all(|n| n >= args.msgs),
        };
        if done {
            return None;
        }
        // Threads only end before `stop` on failure; their results say why.
        if subs.iter().any(JoinHandle::is_finished) || pubs.iter().any(JoinHandle::is_finished) {
            return None;
        }
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > timeout {
            return Some(format!(
                "no message for {timeout:?}: published {}, received {:?}",
                shared.published(),
                shared.received().collect::<Vec<_>>()
            ));
        }
    }
}

/// Counts duplicates and missing sequence numbers across subscribers.
fn check_sequences(outcomes: &[SubOutcome], args: &PubsubArgs) -> (u64, u64) {
    let mut duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    let full_words = args.msgs / 64;
    let tail_bits = args.msgs % 64;
    let ones = |w: usize| {
        if (w as u64) < full_words {
            u64::MAX
        } else {
            (1u64 << tail_bits) - 1
        }
    };
    let mut missing = 0u64;
    if args.queue.is_some() {
        let words = outcomes.first().map_or(0, |o| o.seen.len());
        for w in 0..words {
            let mut union = 0u64;
            for o in outcomes {
                duplicates += u64::from((union & o.seen[w]).count_ones());
                union |= o.seen[w];
            }
            missing += u64::from((ones(w) & !union).count_ones());
        }
    } else {
        for o in outcomes {
            for (w, bits) in o.seen.iter().enumerate() {
                missing += u64::from((ones(w) & !bits).count_ones());
            }
        }
    }
    (duplicates, missing)
}
