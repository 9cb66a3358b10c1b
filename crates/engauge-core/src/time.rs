//! Event time as integer milliseconds since the Unix epoch (UTC), and the calendar maths the
//! engine and codecs share (no time-zone database: UTC only here).

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

pub const SECOND: Millis = 1_000;
pub const MINUTE: Millis = 60 * SECOND;
pub const HOUR: Millis = 60 * MINUTE;
pub const DAY: Millis = 24 * HOUR;

/// 2000-01-01T00:00:00Z: events before it are rejected, and pane indices count from it.
pub const EPOCH_2000: Millis = 946_684_800_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats an instant as RFC 3339 in UTC: `2026-11-22T12:00:00Z`, with `.mmm` only when the
/// milliseconds are not zero.
pub fn format_rfc3339(ts: Millis) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(ts, &mut out);
    out
}

/// Appends the RFC 3339 UTC form of `ts` to `out` (see [`format_rfc3339`]). Years outside
/// 0..=9999 are clamped: event times are validated to lie in 2000..now + skew.
pub fn write_rfc3339(ts: Millis, out: &mut String) {
    let mut buf = [0u8; 24];
    let n = rfc3339_bytes(ts, &mut buf);
    out.push_str(std::str::from_utf8(&buf[..n]).expect("ASCII digits"));
}

/// Writes the RFC 3339 UTC form of `ts` (see [`format_rfc3339`]) into `buf`, returning its
/// length (20 or 24 bytes): the allocation-free form for encoders.
pub fn rfc3339_bytes(ts: Millis, buf: &mut [u8; 24]) -> usize {
    let days = ts.div_euclid(DAY);
    let in_day = ts.rem_euclid(DAY);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    let parts = [
        (y / 100) as u8,
        (y % 100) as u8,
        m as u8,
        d as u8,
        (in_day / HOUR) as u8,
        ((in_day % HOUR) / MINUTE) as u8,
        ((in_day % MINUTE) / SECOND) as u8,
    ];
    buf[..19].copy_from_slice(b"0000-00-00T00:00:00");
    for (i, &at) in [0usize, 2, 5, 8, 11, 14, 17].iter().enumerate() {
        buf[at] = b'0' + parts[i] / 10;
        buf[at + 1] = b'0' + parts[i] % 10;
    }
    let ms = in_day % SECOND;
    let mut n = 19;
    if ms != 0 {
        buf[n] = b'.';
        for div in [100, 10, 1] {
            n += 1;
            buf[n] = b'0' + ((ms / div) % 10) as u8;
        }
        n += 1;
    }
    buf[n] = b'Z';
    n + 1
}

/// Parses a duration such as `500ms`, `30s`, `10m`, `1h`, `7d` or `2w` into milliseconds.
pub fn parse_duration(text: &str) -> Option<Millis> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: i64 = num.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        "d" => DAY,
        "w" => 7 * DAY,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// Formats milliseconds as the largest exact unit: `1h`, `30d`, `90s`, `250ms`.
pub fn format_duration(ms: Millis) -> String {
    for (unit, len) in [
        ("w", 7 * DAY),
        ("d", DAY),
        ("h", HOUR),
        ("m", MINUTE),
        ("s", SECOND),
    ] {
        if ms != 0 && ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 1, 1) * DAY, EPOCH_2000);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn rfc3339_format() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(EPOCH_2000 + 1), "2000-01-01T00:00:00.001Z");
        assert_eq!(format_rfc3339(1_795_348_800_000), "2026-11-22T12:00:00Z");
        assert_eq!(
            format_rfc3339(1_795_348_800_045),
            "2026-11-22T12:00:00.045Z"
        );
        assert_eq!(format_rfc3339(EPOCH_2000 - 1), "1999-12-31T23:59:59.999Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(30 * SECOND));
        assert_eq!(parse_duration("7d"), Some(7 * DAY));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(format_duration(30 * DAY), "30d");
        assert_eq!(format_duration(90 * SECOND), "90s");
        assert_eq!(format_duration(2 * 7 * DAY), "2w");
    }
}
