//! Time values as the JetStream API writes them.
//!
//! nats-server marshals `time.Time` with Go's `RFC3339Nano` layout in UTC:
//! `2024-05-06T07:08:09.123456789Z`, trailing zeros of the fraction trimmed
//! and the fraction left out on a whole second. An unset time is Go's zero
//! time, `0001-01-01T00:00:00Z` (e.g. `first_ts` of an empty stream), which
//! lies outside the `i64` nanosecond range, so [`Timestamp`] keeps seconds and
//! nanoseconds apart.
//!
//! The civil-date conversion is written here rather than taken from a crate:
//! it is two short, well-known formulas, and `humantime` (the obvious small
//! candidate) rejects dates before 1970, which Go's zero time needs.
//!
//! Durations are plain `i64` nanoseconds on the wire; [`parse_go_duration`]
//! and [`format_go_duration`] handle the Go `time.Duration` text form used by
//! `-NAK 5s`, `Nats-TTL: 1h` and some status descriptions.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// Seconds from 0001-01-01T00:00:00Z to the Unix epoch.
const GO_ZERO_UNIX_SECS: i64 = -62_135_596_800;

/// A UTC instant with nanosecond precision, years 0000 to 9999.
///
/// `Default` is Go's zero time (`0001-01-01T00:00:00Z`), which is what
/// nats-server writes for a time that was never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// Why a text is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid RFC 3339 time: {0:?}")]
pub struct TimeError(pub String);

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::GO_ZERO
    }
}

impl Timestamp {
    /// Go's zero `time.Time`: `0001-01-01T00:00:00Z`.
    pub const GO_ZERO: Timestamp = Timestamp {
        secs: GO_ZERO_UNIX_SECS,
        nanos: 0,
    };
    /// The Unix epoch, `1970-01-01T00:00:00Z`.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// The instant `nanos` nanoseconds after the Unix epoch (negative: before).
    pub fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp {
            secs: nanos.div_euclid(NANOS_PER_SEC),
            nanos: nanos.rem_euclid(NANOS_PER_SEC) as u32,
        }
    }

    /// The instant `secs` seconds plus `nanos` (below 10⁹) after the epoch.
    pub fn from_unix(secs: i64, nanos: u32) -> Timestamp {
        let carry = i64::from(nanos / 1_000_000_000);
        Timestamp {
            secs: secs + carry,
            nanos: nanos % 1_000_000_000,
        }
    }

    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// Whole seconds since the Unix epoch (floor).
    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second, below 10⁹.
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// Nanoseconds since the Unix epoch; exact for every representable time.
    pub fn unix_nanos_i128(&self) -> i128 {
        i128::from(self.secs) * i128::from(NANOS_PER_SEC) + i128::from(self.nanos)
    }

    /// Nanoseconds since the Unix epoch, or `None` outside about 1677–2262
    /// (Go's zero time is outside).
    pub fn unix_nanos(&self) -> Option<i64> {
        i64::try_from(self.unix_nanos_i128()).ok()
    }

    /// Whether this is Go's zero time, i.e. "not set".
    pub fn is_go_zero(&self) -> bool {
        *self == Timestamp::GO_ZERO
    }

    /// The `RFC3339Nano` text nats-server writes for this instant.
    pub fn to_rfc3339(&self) -> String {
        let mut out = String::with_capacity(30);
        self.write_rfc3339(&mut out);
        out
    }

    fn write_rfc3339(&self, out: &mut String) {
        use fmt::Write;
        let days = self.secs.div_euclid(SECS_PER_DAY);
        let rem = self.secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        );
        if self.nanos != 0 {
            let mut frac = format!("{:09}", self.nanos);
            while frac.ends_with('0') {
                frac.pop();
            }
            out.push('.');
            out.push_str(&frac);
        }
        out.push('Z');
    }

    /// Parses an RFC 3339 time (`T`/`Z` in either case, any fraction length up
    /// to nanoseconds, `Z` or a `±hh:mm` offset), normalising it to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimeError> {
        parse_rfc3339(text).ok_or_else(|| TimeError(text.to_string()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(30);
        self.write_rfc3339(&mut s);
        f.write_str(&s)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::from_unix(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let whole = Timestamp::from_unix(-(d.as_secs() as i64), 0);
                let n = d.subsec_nanos();
                if n == 0 {
                    whole
                } else {
                    Timestamp::from_unix(whole.secs - 1, 1_000_000_000 - n)
                }
            }
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method:
/// count from 0000-03-01 in 400-year eras so February comes last).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
}

fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10u32.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset_secs = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits(&[*h1, *h2])?;
            let m = digits(&[*m1, *m2])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = i64::from(h * 3600 + m * 60);
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    // A leap second (:60) is folded into the next second, as Go does.
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY + i64::from(hour * 3600 + min * 60 + sec)
        - offset_secs;
    Some(Timestamp { secs, nanos })
}

/// Parses a Go `time.Duration` string (`"1.5s"`, `"2m30s"`, `"100ms"`,
/// `"-1h"`, `"0"`) into nanoseconds. Units: `ns`, `us`, `µs`, `μs`, `ms`,
/// `s`, `m`, `h`. `None` on malformed input or overflow.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let (neg, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..n];
            s = &rest[n..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(s.len(), |(i, _)| i);
        let unit: i128 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = whole.checked_mul(unit)?;
        // Fractional digits beyond nanosecond resolution are dropped, as Go does.
        let mut scale = unit;
        for c in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += i128::from(c - b'0') * scale;
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let total = if neg { -total } else { total };
    i64::try_from(total).ok()
}

/// Formats nanoseconds the way Go's `time.Duration.String` does
/// (`"1m30s"`, `"1.5s"`, `"250ms"`, `"0s"`), as nats-server prints them in
/// descriptions such as `Exceeded MaxRequestExpires of 1m0s`.
pub fn format_go_duration(nanos: i64) -> String {
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = match u {
            0 => return "0s".to_string(),
            1..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let secs_part = fraction(u % 60_000_000_000, 1_000_000_000);
        u /= 60_000_000_000;
        if u > 0 {
            let mins = u % 60;
            let hours = u / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{mins}m"));
        }
        out.push_str(&secs_part);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `value / div` with the remainder as a trimmed decimal fraction.
fn fraction(value: u64, div: u64) -> String {
    let whole = value / div;
    let rem = value % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let mut frac = format!("{rem:0width$}");
    while frac.ends_with('0') {
        frac.pop();
    }
    format!("{whole}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(Timestamp::GO_ZERO.to_rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(Timestamp::UNIX_EPOCH.to_rfc3339(), "1970-01-01T00:00:00Z");
        let t = Timestamp::from_unix_nanos(1_672_628_645_123_456_789);
        assert_eq!(t.to_rfc3339(), "2023-01-02T03:04:05.123456789Z");
        let t = Timestamp::from_unix_nanos(1_672_628_645_120_000_000);
        assert_eq!(t.to_rfc3339(), "2023-01-02T03:04:05.12Z");
        assert_eq!(
            Timestamp::from_unix_nanos(951_782_400_000_000_000).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(-1).to_rfc3339(),
            "1969-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn parses_and_round_trips() {
        for text in [
            "0001-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2023-01-02T03:04:05.123456789Z",
            "2023-01-02T03:04:05.1Z",
            "2024-02-29T23:59:59.000000001Z",
            "9999-12-31T23:59:59.999999999Z",
            "1600-03-01T00:00:00Z",
        ] {
            let t = Timestamp::parse_rfc3339(text).unwrap();
            assert_eq!(t.to_rfc3339(), text);
        }
        assert!(Timestamp::parse_rfc3339("0001-01-01T00:00:00Z")
            .unwrap()
            .is_go_zero());
        let t = Timestamp::parse_rfc3339("2023-01-02T05:04:05.5+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2023-01-02T03:04:05.5Z");
        let t = Timestamp::parse_rfc3339("2023-01-02t03:04:05.123z").unwrap();
        assert_eq!(t.unix_nanos(), Some(1_672_628_645_123_000_000));
    }

    #[test]
    fn rejects_bad_times() {
        for text in [
            "",
            "2023-01-02",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00.1234567890Z",
            "2023-01-01T00:00:00+2:00",
        ] {
            assert!(Timestamp::parse_rfc3339(text).is_err(), "{text}");
        }
    }

    #[test]
    fn civil_conversion_is_consistent() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn serde_and_system_time() {
        let t = Timestamp::from_unix_nanos(1_500_000_000_000_000_001);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2017-07-14T02:40:00.000000001Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        let before = UNIX_EPOCH - std::time::Duration::from_millis(1500);
        assert_eq!(Timestamp::from(before).unix_nanos(), Some(-1_500_000_000));
        assert_eq!(Timestamp::GO_ZERO.unix_nanos(), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(parse_go_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_go_duration("-2us"), Some(-2_000));
        assert_eq!(parse_go_duration("3µs"), Some(3_000));
        assert_eq!(parse_go_duration(".5m"), Some(30_000_000_000));
        for bad in ["", "5", "s", "1x", "1..5s", "-", "99999999999999h"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(1), "1ns");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(60_000_000_000), "1m0s");
        assert_eq!(format_go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(format_go_duration(-90_000_000_000), "-1m30s");
        for n in [1, 999, 1_500, 250_000_000, 3_723_000_000_001, -5] {
            assert_eq!(parse_go_duration(&format_go_duration(n)), Some(n));
        }
    }
}
