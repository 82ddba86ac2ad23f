//! Latency percentiles and small formatting helpers.

use std::time::Duration;

use serde::Serialize;

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

impl Latency {
    /// Summarizes `samples` (sorted in place). `None` when there are none.
    pub fn from_samples(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: Duration = samples.iter().sum();
        Some(Self {
            p50_us: us(percentile(samples, 50.0)?),
            p90_us: us(percentile(samples, 90.0)?),
            p99_us: us(percentile(samples, 99.0)?),
            p999_us: us(percentile(samples, 99.9)?),
            max_us: us(*samples.last()?),
            mean_us: us(total) / samples.len() as f64,
        })
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at
/// least `p` percent of all samples at or below it.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // Scaled to avoid 99.9 * n / 100 landing just above an integer.
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil().max(1.0) as usize;
    Some(sorted[rank.min(n) - 1])
}

/// `count` per second over `elapsed` (0 when no time passed).
pub fn rate(count: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count / secs
    } else {
        0.0
    }
}

/// `12345678.9` → `"12.35M"`, for readable output.
pub fn human(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.9), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.9), Some(999));
        assert_eq!(percentile(&[7u32], 99.9), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        // Five samples: p50 is the 3rd, p90 the 5th.
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 50.0), Some(3));
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 90.0), Some(5));
    }

    #[test]
    fn latency_summary() {
        let mut samples: Vec<Duration> = (1..=10).rev().map(Duration::from_micros).collect();
        let l = Latency::from_samples(&mut samples).unwrap();
        assert_eq!(l.p50_us, 5.0);
        assert_eq!(l.p90_us, 9.0);
        assert_eq!(l.max_us, 10.0);
        assert!((l.mean_us - 5.5).abs() < 1e-9);
        assert!(Latency::from_samples(&mut []).is_none());
    }

    #[test]
    fn formatting() {
        assert_eq!(human(2_500_000.0), "2.50M");
        assert_eq!(human(1500.0), "1.5k");
        assert_eq!(rate(10.0, Duration::from_secs(2)), 5.0);
        assert_eq!(rate(10.0, Duration::ZERO), 0.0);
    }
}
