//! A fast, strict RFC 3339 timestamp parser producing epoch milliseconds.
//!
//! Hand-written because it runs once per event on the hot path and the grammar is tiny:
//! `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`. The fraction has 1–9 digits and is
//! truncated (not rounded) to milliseconds, so an instant never moves into the next millisecond,
//! window or day. Leap seconds (`:60`) are refused: event time has no use for them and accepting
//! them would make two strings map to one instant.

use engauge_core::Millis;
use engauge_core::time::{DAY, HOUR, MINUTE, SECOND, days_from_civil};

/// Parses an RFC 3339 timestamp into milliseconds since the Unix epoch, or `None` when it is
/// malformed or names an impossible date or time.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    canonical(b).or_else(|| general(b))
}

/// The two forms nearly every producer writes, `YYYY-MM-DDTHH:MM:SSZ` and
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, read from fixed positions: about half the work of [`general`],
/// which runs once per event. `None` for anything else, valid or not: [`general`] decides then.
/// Where this answers, [`general`] gives the same instant (a property test compares the two).
fn canonical(b: &[u8]) -> Option<Millis> {
    let millis = match b.len() {
        20 if b[19] == b'Z' => 0,
        24 if b[19] == b'.' && b[23] == b'Z' => {
            let [h, t, u] = [b[20], b[21], b[22]].map(|c| c.wrapping_sub(b'0'));
            if h > 9 || t > 9 || u > 9 {
                return None;
            }
            i64::from(h) * 100 + i64::from(t) * 10 + i64::from(u)
        }
        _ => return None,
    };
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || head[10] != b'T'
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let d = head.map(|c| c.wrapping_sub(b'0'));
    let digits = [
        d[0], d[1], d[2], d[3], d[5], d[6], d[8], d[9], d[11], d[12], d[14], d[15], d[17], d[18],
    ];
    // A fixed-size fold: unrolled, without a branch per digit.
    if digits.iter().fold(0, |m, &x| m.max(x)) > 9 {
        return None;
    }
    let two = |i: usize| i64::from(d[i]) * 10 + i64::from(d[i + 1]);
    let year = two(0) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * DAY + hour * HOUR + minute * MINUTE + second * SECOND + millis)
}

/// Every form of the grammar in the module documentation.
fn general(b: &[u8]) -> Option<Millis> {
    if b.len() < 20 {
        return None;
    }
    let year = digit(b[0])? * 1000 + digit(b[1])? * 100 + digit(b[2])? * 10 + digit(b[3])?;
    let month = two_digits(b, 5)?;
    let day = two_digits(b, 8)?;
    let hour = two_digits(b, 11)?;
    let minute = two_digits(b, 14)?;
    let second = two_digits(b, 17)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).and_then(|&c| digit(c)) {
            if i - start < 3 {
                millis = millis * 10 + d;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }

    let offset = match b.get(i)? {
        b'Z' | b'z' if b.len() == i + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = two_digits(b, i + 1)?;
            let om = two_digits(b, i + 4)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let offset = oh * HOUR + om * MINUTE;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * DAY + hour * HOUR + minute * MINUTE + second * SECOND + millis - offset)
}

fn digit(c: u8) -> Option<i64> {
    let d = c.wrapping_sub(b'0');
    (d < 10).then_some(i64::from(d))
}

fn two_digits(b: &[u8], at: usize) -> Option<i64> {
    Some(digit(*b.get(at)?)? * 10 + digit(*b.get(at + 1)?)?)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engauge_core::time::{EPOCH_2000, format_rfc3339};
    use proptest::prelude::*;

    const NOV_22_NOON: Millis = 1_795_348_800_000;

    #[test]
    fn utc_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Some(EPOCH_2000));
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00Z"), Some(NOV_22_NOON));
        assert_eq!(parse_rfc3339("2026-11-22t12:00:00z"), Some(NOV_22_NOON));
        assert_eq!(parse_rfc3339("2026-11-22 12:00:00Z"), Some(NOV_22_NOON));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000));
    }

    #[test]
    fn offsets() {
        assert_eq!(
            parse_rfc3339("2026-11-22T13:00:00+01:00"),
            Some(NOV_22_NOON)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T17:30:00+05:30"),
            Some(NOV_22_NOON)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T02:15:00-09:45"),
            Some(NOV_22_NOON)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00-00:00"),
            Some(NOV_22_NOON)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00+00:00"),
            Some(NOV_22_NOON)
        );
        // An offset moves the instant across midnight and the year boundary.
        assert_eq!(
            parse_rfc3339("2000-01-01T00:30:00+01:00"),
            Some(EPOCH_2000 - 30 * MINUTE)
        );
        assert_eq!(parse_rfc3339("1999-12-31T23:00:00-01:00"), Some(EPOCH_2000));
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00+23:59"),
            Some(NOV_22_NOON - 23 * HOUR - 59 * MINUTE)
        );
    }

    #[test]
    fn fractions_truncate_to_millis() {
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.1Z"),
            Some(NOV_22_NOON + 100)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.12Z"),
            Some(NOV_22_NOON + 120)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.123Z"),
            Some(NOV_22_NOON + 123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.1239Z"),
            Some(NOV_22_NOON + 123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T12:00:00.999999999Z"),
            Some(NOV_22_NOON + 999)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T13:00:00.5+01:00"),
            Some(NOV_22_NOON + 500)
        );
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00.Z"), None);
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00.1234567890Z"), None);
        assert_eq!(parse_rfc3339("2026-11-22T12:00:00,5Z"), None);
    }

    #[test]
    fn leap_years() {
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("1900-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2100-02-29T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2024-03-01T00:00:00Z"),
            parse_rfc3339("2024-02-29T00:00:00Z").map(|t| t + DAY)
        );
    }

    #[test]
    fn invalid_dates_and_times() {
        for text in [
            "2026-02-30T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:60:00Z",
            "2026-12-31T23:59:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+01:60",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }

    #[test]
    fn malformed() {
        for text in [
            "",
            "2026",
            "2026-11-22",
            "2026-11-22T12:00:00",
            "2026-11-22T12:00Z",
            "2026-11-22T12:00:00ZZ",
            "2026-11-22T12:00:00 Z",
            "2026-11-22X12:00:00Z",
            "2026/11/22T12:00:00Z",
            "2026-11-22T12-00-00Z",
            "26-11-22T12:00:00Z",
            "+2026-11-22T12:00:00Z",
            "2026-1-22T12:00:00Z",
            "2026-11-22T12:00:00+0100",
            "2026-11-22T12:00:00+01",
            "2026-11-22T12:00:00+01:00 ",
            " 2026-11-22T12:00:00Z",
            "2026-11-22T12:00:00UTC",
            "2026-１1-22T12:00:00Z",
            "1795348800000",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }

    /// Up to 9999-12-31T23:59:59.999Z, the largest four-digit year.
    const MAX_TS: Millis = 253_402_300_799_999;
    /// 0000-01-01T00:00:00Z, the smallest four-digit year.
    const MIN_TS: Millis = -62_167_219_200_000;

    proptest! {
        #[test]
        fn round_trips_format_rfc3339(ts in 0..=MAX_TS) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339(ts)), Some(ts));
        }

        #[test]
        fn offset_names_the_same_instant(
            ts in DAY..=MAX_TS - DAY,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59_i64),
        ) {
            // Local wall time = UTC + offset; the string carries the local time and the offset.
            let local = format_rfc3339(ts + offset_minutes * MINUTE);
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let abs = offset_minutes.abs();
            let text = format!(
                "{}{sign}{:02}:{:02}",
                local.trim_end_matches('Z'),
                abs / 60,
                abs % 60
            );
            prop_assert_eq!(parse_rfc3339(&text), Some(ts));
        }

        #[test]
        fn extra_fraction_digits_truncate(ts in 0..=MAX_TS, extra in 0u32..1_000_000) {
            let base = format_rfc3339(ts - ts % 1000);
            let text = format!(
                "{}.{:03}{:06}Z",
                base.trim_end_matches('Z'),
                ts % 1000,
                extra
            );
            prop_assert_eq!(parse_rfc3339(&text), Some(ts));
        }

        /// Where the fixed-position reader answers, it agrees with the general parser; and it
        /// answers for every instant written in either canonical form.
        #[test]
        fn canonical_agrees_with_general(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,4})?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
            ts in 0..=MAX_TS,
        ) {
            if let Some(fast) = canonical(text.as_bytes()) {
                prop_assert_eq!(Some(fast), general(text.as_bytes()));
            }
            let written = format_rfc3339(ts);
            prop_assert_eq!(canonical(written.as_bytes()), Some(ts));
            let with_millis = format!("{}.{:03}Z", &written[..19], ts.rem_euclid(1_000));
            prop_assert_eq!(canonical(with_millis.as_bytes()), Some(ts));
        }

        #[test]
        fn never_panics(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }

        #[test]
        fn never_panics_near_valid(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,11})?([Zz]|[+-][0-9]{2}:[0-9]{2})?") {
            if let Some(ts) = parse_rfc3339(&text) {
                prop_assert!((MIN_TS - DAY..=MAX_TS + DAY).contains(&ts));
            }
        }
    }
}
