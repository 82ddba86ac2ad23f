//! Event-sourcing appends (issue 4): what `es-append-pg` (a PostgreSQL event
//! table, [`crate::espg`]) and Herald's own `es-append` share, so that both
//! halves of the comparison run the same load and report it the same way.
//!
//! The load: `aggregates` writers run concurrently, one per aggregate, each
//! appending one event at a time with the next expected version and waiting
//! until the append is durable before sending the next. Appends run for
//! `warmup` first, unmeasured, then for `duration`; the appends *completed*
//! inside that window are counted and timed, so appends/s is their number
//! over the window's length however the writers' last appends straddle it.

use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use serde::Serialize;

use crate::stats::{human, rate, Latency};
use crate::Report;

/// The load of an event-sourcing append benchmark, whatever the store.
#[derive(Debug, Clone, PartialEq)]
pub struct EsAppendOptions {
    /// Aggregates written concurrently, one writer (and connection) each.
    pub aggregates: usize,
    /// Payload bytes of each event.
    pub payload_size: usize,
    /// Length of the measured window.
    pub duration: Duration,
    /// Appends run this long before the window, unmeasured.
    pub warmup: Duration,
}

impl Default for EsAppendOptions {
    fn default() -> Self {
        Self {
            aggregates: 64,
            payload_size: 128,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
        }
    }
}

impl EsAppendOptions {
    /// Refuses a load that measures nothing.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.aggregates == 0 {
            bail!("--aggregates must be at least 1");
        }
        if self.duration.is_zero() {
            bail!("--duration-secs must be more than 0");
        }
        Ok(())
    }
}

/// Command-line form of [`EsAppendOptions`], flattened into each store's args.
#[derive(Debug, Clone, clap::Args)]
pub struct EsAppendArgs {
    /// Aggregates written concurrently, one connection each.
    #[arg(long, default_value_t = 64)]
    pub aggregates: usize,
    /// Payload bytes of each event.
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    pub duration_secs: f64,
    /// Seconds of appends before the measurement, not counted.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_secs: f64,
}

impl EsAppendArgs {
    /// The validated options.
    pub fn options(&self) -> anyhow::Result<EsAppendOptions> {
        let secs = |name: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .map_err(|_| anyhow::anyhow!("{name} must be a number of seconds >= 0"))
        };
        let opts = EsAppendOptions {
            aggregates: self.aggregates,
            payload_size: self.payload,
            duration: secs("--duration-secs", self.duration_secs)?,
            warmup: secs("--warmup-secs", self.warmup_secs)?,
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// The measured window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// End of the warm-up.
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// The window of a run whose warm-up begins at `now`.
    pub fn after_warmup(now: Instant, opts: &EsAppendOptions) -> Self {
        let start = now + opts.warmup;
        Self {
            start,
            end: start + opts.duration,
        }
    }

    /// Whether a writer should still start an append at `now`.
    pub fn running(&self, now: Instant) -> bool {
        now < self.end
    }

    /// Whether an append completed at `done` is measured.
    pub fn counts(&self, done: Instant) -> bool {
        done >= self.start && done < self.end
    }
}

/// What the writer of one aggregate did.
#[derive(Debug, Default)]
pub struct AggregateOutcome {
    pub aggregate: String,
    /// Appends that succeeded, warm-up included: with versions counted from
    /// 1 and no conflict, the aggregate's last version.
    pub appended: u64,
    /// Latency of each append completed inside the window.
    pub samples: Vec<Duration>,
    /// Appends refused because their expected version was already taken.
    pub conflicts: u64,
    /// Why the writer stopped before the end of the window.
    pub failure: Option<String>,
}

impl AggregateOutcome {
    pub fn new(aggregate: String) -> Self {
        Self {
            aggregate,
            ..Self::default()
        }
    }
}

/// Result of one event-sourcing append run.
#[derive(Debug, Serialize)]
pub struct EsAppendReport {
    pub workload: &'static str,
    /// Where the events went (no password).
    pub target: String,
    /// The store and its version.
    pub server_version: String,
    /// What the store waits for before it answers an append, as it reported it.
    pub durability: String,
    pub aggregates: usize,
    pub payload_size: usize,
    pub warmup_secs: f64,
    /// Length of the measured window.
    pub elapsed_secs: f64,
    /// Appends completed inside the window.
    pub appends: u64,
    pub appends_per_sec: f64,
    /// Payload megabytes (10^6 bytes) appended per second.
    pub mb_per_sec: f64,
    /// Appends that succeeded, warm-up and the writers' last appends included.
    pub total_appended: u64,
    /// Appends refused for their expected version: a bug with one writer per aggregate.
    pub conflicts: u64,
    /// Time from sending an append to its durable acknowledgement.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    pub error: Option<String>,
}

/// Describes a finished run; the fields `summarize` cannot know.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub workload: &'static str,
    pub target: String,
    pub server_version: String,
    pub durability: String,
}

impl EsAppendReport {
    /// Sums up the writers' outcomes of a run with `opts`.
    pub fn summarize(info: RunInfo, opts: &EsAppendOptions, outcomes: &mut [AggregateOutcome]) -> Self {
        let appends: u64 = outcomes.iter().map(|o| o.samples.len() as u64).sum();
        let conflicts: u64 = outcomes.iter().map(|o| o.conflicts).sum();
        let mut samples = Vec::with_capacity(appends as usize);
        for o in outcomes.iter_mut() {
            samples.append(&mut o.samples);
        }
        let error = outcomes.iter().find_map(|o| o.failure.clone()).or_else(|| {
            (conflicts > 0).then(|| {
                format!(
                    "{conflicts} append(s) found their expected version taken, \
                     impossible with one writer per aggregate"
                )
            })
        });
        Self {
            workload: info.workload,
            target: info.target,
            server_version: info.server_version,
            durability: info.durability,
            aggregates: opts.aggregates,
            payload_size: opts.payload_size,
            warmup_secs: opts.warmup.as_secs_f64(),
            elapsed_secs: opts.duration.as_secs_f64(),
            appends,
            appends_per_sec: rate(appends as f64, opts.duration),
            mb_per_sec: rate((appends * opts.payload_size as u64) as f64, opts.duration) / 1e6,
            total_appended: outcomes.iter().map(|o| o.appended).sum(),
            conflicts,
            latency: Latency::from_samples(&mut samples),
            error,
        }
    }
}

impl Report for EsAppendReport {
    fn line(&self) -> String {
        let mut line = format!(
            "{} {} aggregate(s), {} B, {}: {} appends in {:.3} s = {} appends/s, {:.1} MB/s",
            self.workload,
            self.aggregates,
            self.payload_size,
            self.durability,
            self.appends,
            self.elapsed_secs,
            human(self.appends_per_sec),
            self.mb_per_sec
        );
        if let Some(l) = &self.latency {
            line += &format!(
                ", append latency us p50 {:.1} p99 {:.1} max {:.1}",
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

/// `t` as RFC 3339 in UTC, as event envelopes carry it.
pub fn rfc3339_utc(t: SystemTime) -> String {
    herald_client::jetstream::Timestamp::from(t).to_rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            rfc3339_utc(std::time::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn options_from_args() {
        let args = EsAppendArgs {
            aggregates: 64,
            payload: 128,
            duration_secs: 5.0,
            warmup_secs: 1.0,
        };
        assert_eq!(args.options().unwrap(), EsAppendOptions::default());
        let refused = |change: fn(&mut EsAppendArgs)| {
            let mut a = args.clone();
            change(&mut a);
            a.options().is_err()
        };
        assert!(refused(|a| a.aggregates = 0));
        assert!(refused(|a| a.duration_secs = 0.0));
        assert!(refused(|a| a.warmup_secs = -1.0));
        assert!(refused(|a| a.duration_secs = f64::NAN));
        assert!(!refused(|a| a.warmup_secs = 0.0));
    }

    #[test]
    fn window_counts_completions_inside_it() {
        let opts = EsAppendOptions::default();
        let t0 = Instant::now();
        let w = Window::after_warmup(t0, &opts);
        assert!(w.running(t0) && !w.counts(t0));
        assert!(w.counts(t0 + Duration::from_secs(1)));
        assert!(w.counts(t0 + Duration::from_millis(5999)));
        assert!(!w.counts(t0 + Duration::from_secs(6)) && !w.running(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn summary() {
        let info = RunInfo {
            workload: "es-append-test",
            target: "t".into(),
            server_version: "v".into(),
            durability: "d".into(),
        };
        let opts = EsAppendOptions {
            aggregates: 2,
            payload_size: 1000,
            duration: Duration::from_secs(2),
            warmup: Duration::ZERO,
        };
        let mut outcomes = vec![
            AggregateOutcome::new("a".into()),
            AggregateOutcome::new("b".into()),
        ];
        outcomes[0].appended = 5;
        outcomes[0].samples = vec![Duration::from_micros(100); 3];
        outcomes[1].appended = 2;
        outcomes[1].samples = vec![Duration::from_micros(300)];
        let r = EsAppendReport::summarize(info.clone(), &opts, &mut outcomes);
        assert_eq!((r.appends, r.total_appended, r.conflicts), (4, 7, 0));
        assert_eq!(r.appends_per_sec, 2.0);
        assert_eq!(r.mb_per_sec, 0.002);
        assert_eq!(r.latency.map(|l| l.p50_us), Some(100.0));
        assert!(r.error.is_none(), "{:?}", r.error);
        assert!(
            r.line().contains("4 appends in 2.000 s = 2.0 appends/s"),
            "{}",
            r.line()
        );

        outcomes[1].conflicts = 1;
        let r = EsAppendReport::summarize(info.clone(), &opts, &mut outcomes);
        assert!(r.error.as_deref().is_some_and(|e| e.contains("1 append(s)")));
        outcomes[0].failure = Some("aggregate a: gone".into());
        let r = EsAppendReport::summarize(info, &opts, &mut outcomes);
        assert_eq!(r.error.as_deref(), Some("aggregate a: gone"));
        assert!(r.line().ends_with("ERROR: aggregate a: gone"));
    }
}
