//! When to try a failed delivery again: exponential backoff with jitter.
//!
//! A pure function of the attempt number and a random draw, so the schedule
//! is testable and survives restarts: the attempt number comes from the
//! consumer's delivery count, which JetStream persists.

/// Wait before the attempt after failed attempt `attempt` (1-based), in
/// milliseconds: about `initial_ms · 2^(attempt-1)`, capped at `max_ms`, then
/// drawn uniformly from its upper half ("equal jitter": never less than half
/// the nominal wait, so retries stay spread out yet bounded). `unit` is a
/// random number in `[0, 1)`; values outside are clamped.
pub(crate) fn delay_ms(initial_ms: u64, max_ms: u64, attempt: u64, unit: f64) -> u64 {
    let nominal = nominal_ms(initial_ms, max_ms, attempt);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = nominal / 2;
    let spread = nominal - half;
    half + ((spread as f64) * unit).round() as u64
}

/// The wait before jitter: `initial_ms · 2^(attempt-1)`, capped at `max_ms`
/// (and at least 1 ms).
pub(crate) fn nominal_ms(initial_ms: u64, max_ms: u64, attempt: u64) -> u64 {
    let doublings = attempt.saturating_sub(1).min(63) as u32;
    let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
    initial_ms.saturating_mul(factor).min(max_ms).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nominal_wait_doubles_per_attempt_up_to_the_cap() {
        assert_eq!(nominal_ms(1000, 3_600_000, 1), 1000);
        assert_eq!(nominal_ms(1000, 3_600_000, 2), 2000);
        assert_eq!(nominal_ms(1000, 3_600_000, 3), 4000);
        assert_eq!(nominal_ms(1000, 3_600_000, 12), 2_048_000);
        assert_eq!(nominal_ms(1000, 3_600_000, 13), 3_600_000);
        assert_eq!(nominal_ms(1000, 3_600_000, 100), 3_600_000);
        assert_eq!(nominal_ms(1000, 3_600_000, u64::MAX), 3_600_000);
        // Attempt 0 (never delivered) is treated as the first.
        assert_eq!(nominal_ms(50, 1000, 0), 50);
    }

    #[test]
    fn jitter_stays_within_the_upper_half_of_the_nominal_wait() {
        for attempt in 1..=20 {
            let nominal = nominal_ms(100, 10_000, attempt);
            assert_eq!(delay_ms(100, 10_000, attempt, 0.0), nominal / 2);
            assert_eq!(delay_ms(100, 10_000, attempt, 1.0), nominal);
            for i in 0..100 {
                let d = delay_ms(100, 10_000, attempt, i as f64 / 100.0);
                assert!(
                    d >= nominal / 2 && d <= nominal,
                    "attempt {attempt}: {d} of {nominal}"
                );
            }
        }
    }

    #[test]
    fn draws_outside_the_unit_interval_are_clamped() {
        assert_eq!(delay_ms(1000, 60_000, 1, -3.0), 500);
        assert_eq!(delay_ms(1000, 60_000, 1, 7.0), 1000);
        assert_eq!(delay_ms(1000, 60_000, 1, f64::NAN), 500);
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        assert_eq!(nominal_ms(u64::MAX, u64::MAX, 64), u64::MAX);
        assert!(delay_ms(u64::MAX, u64::MAX, 64, 0.5) > 0);
        assert_eq!(nominal_ms(0, 0, 1), 1);
    }
}
