//! `machine-stalls`: how steadily this machine runs plain CPU work, with no
//! server and no network involved.
//!
//! Each thread repeats a fixed unit of arithmetic and counts how many units
//! complete in every window of `--window-ms`. On a steady machine every
//! window holds about the median count. A window far below it means the
//! whole machine was slowed: the host took the CPU away, or ran it slower.
//! Latency measured on such a machine inherits those slow windows whatever
//! the server does, so an open-loop latency run is only as good as this
//! figure taken beside it (the idea of jHiccup, measured as lost work rather
//! than lost time because a slowed vCPU keeps running, only less).

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::Report;

/// Arithmetic steps in one unit of work: a few microseconds, short enough
/// that a window holds hundreds of units.
const UNIT_STEPS: u32 = 2_000;
/// A window with less than this share of the median count is slow.
const SLOW_SHARE: f64 = 0.5;
/// Longest run accepted, so the per-window counts stay small.
const SECS_MAX: u64 = 600;

/// Options of `herald bench machine-stalls`.
#[derive(Debug, Clone, clap::Args)]
pub struct StallsArgs {
    /// How long to measure.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Width of one window in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub window_ms: u64,
    /// Busy threads; 0 for one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print one JSON object instead of a readable line.
    #[arg(long)]
    pub json: bool,
}

/// Result of one `machine-stalls` run.
#[derive(Debug, Serialize)]
pub struct StallsReport {
    pub workload: &'static str,
    pub threads: usize,
    pub secs: u64,
    pub window_ms: u64,
    /// Median units of work done per window, over all threads and windows.
    pub median_units_per_window: u64,
    /// Share of windows (all threads) below half the median, in percent.
    pub slow_window_pct: f64,
    /// Runs of consecutive slow windows on thread 0, each one episode.
    pub episodes: usize,
    /// Longest episode in milliseconds.
    pub longest_episode_ms: u64,
    /// Episodes per second.
    pub episodes_per_sec: f64,
    /// The slowest window's count as a percentage of the median.
    pub slowest_window_pct: f64,
    pub error: Option<String>,
}

impl Report for StallsReport {
    fn line(&self) -> String {
        format!(
            "machine-stalls {} threads {} s: {:.2} % of {} ms windows below half speed, \
             {} episodes ({:.2}/s), longest {} ms, slowest window at {:.0} % speed",
            self.threads,
            self.secs,
            self.slow_window_pct,
            self.window_ms,
            self.episodes,
            self.episodes_per_sec,
            self.longest_episode_ms,
            self.slowest_window_pct,
        )
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Runs the probe.
pub fn run(args: &StallsArgs) -> anyhow::Result<StallsReport> {
    if args.secs == 0 || args.secs > SECS_MAX {
        bail!("--secs must be between 1 and {SECS_MAX}");
    }
    if args.window_ms == 0 || args.window_ms > 1000 {
        bail!("--window-ms must be between 1 and 1000");
    }
    let threads = if args.threads == 0 {
        thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let windows = (args.secs * 1000 / args.window_ms) as usize;
    let window = Duration::from_millis(args.window_ms);
    let start = Arc::new(Instant::now() + Duration::from_millis(20));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let start = start.clone();
            thread::spawn(move || count_units(*start, window, windows))
        })
        .collect();
    let mut per_thread = Vec::with_capacity(threads);
    for worker in workers {
        match worker.join() {
            Ok(counts) => per_thread.push(counts),
            Err(_) => bail!("a probe thread panicked"),
        }
    }
    Ok(summarize(&per_thread, args, threads))
}

/// Units of work completed in each window, on the calling thread.
fn count_units(start: Instant, window: Duration, windows: usize) -> Vec<u64> {
    let mut counts = vec![0u64; windows];
    let mut state = 1u64;
    while Instant::now() < start {
        std::hint::spin_loop();
    }
    loop {
        let at = start.elapsed();
        let index = (at.as_nanos() / window.as_nanos()) as usize;
        let Some(count) = counts.get_mut(index) else {
            break;
        };
        for _ in 0..UNIT_STEPS {
            state = black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
        *count += 1;
    }
    counts
}

fn summarize(per_thread: &[Vec<u64>], args: &StallsArgs, threads: usize) -> StallsReport {
    let mut all: Vec<u64> = per_thread.iter().flatten().copied().collect();
    all.sort_unstable();
    let median = all.get(all.len() / 2).copied().unwrap_or(0);
    let slow_below = median as f64 * SLOW_SHARE;
    let slow = all.iter().filter(|&&c| (c as f64) < slow_below).count();
    let slowest = all.first().copied().unwrap_or(0);
    let (episodes, longest_windows) = per_thread
        .first()
        .map_or((0, 0), |counts| episodes(counts, slow_below));
    let pct = |part: f64, whole: f64| if whole > 0.0 { 100.0 * part / whole } else { 0.0 };
    StallsReport {
        workload: "machine-stalls",
        threads,
        secs: args.secs,
        window_ms: args.window_ms,
        median_units_per_window: median,
        slow_window_pct: pct(slow as f64, all.len() as f64),
        episodes,
        longest_episode_ms: longest_windows as u64 * args.window_ms,
        episodes_per_sec: episodes as f64 / args.secs as f64,
        slowest_window_pct: pct(slowest as f64, median as f64),
        error: (median == 0).then(|| "no unit of work completed in most windows".to_string()),
    }
}

/// Number of runs of consecutive windows below `slow_below`, and the longest run's length.
fn episodes(counts: &[u64], slow_below: f64) -> (usize, usize) {
    let (mut episodes, mut longest, mut current) = (0, 0, 0);
    for &count in counts {
        if (count as f64) < slow_below {
            if current == 0 {
                episodes += 1;
            }
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    (episodes, longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_runs_of_slow_windows() {
        let counts = [100, 100, 10, 12, 100, 100, 40, 100, 5, 5, 5];
        assert_eq!(episodes(&counts, 50.0), (3, 3));
        assert_eq!(episodes(&[100, 100], 50.0), (0, 0));
    }

    #[test]
    fn summary_reports_slow_share_and_longest_episode() {
        let args = StallsArgs {
            secs: 1,
            window_ms: 5,
            threads: 1,
            json: false,
        };
        let mut counts = vec![100u64; 200];
        counts[10..14].fill(8);
        let report = summarize(&[counts], &args, 1);
        assert_eq!(report.median_units_per_window, 100);
        assert_eq!(report.episodes, 1);
        assert_eq!(report.longest_episode_ms, 20);
        assert!((report.slow_window_pct - 2.0).abs() < 1e-9);
        assert!((report.slowest_window_pct - 8.0).abs() < 1e-9);
    }
}
