//! Properties of whole generated streams: determinism, exact size, time span, disorder bounds,
//! ratios, validity of every line against SPEC §1, malformed-line kinds, diurnal shape.

use std::collections::{HashMap, HashSet};

use engauge_core::time::{DAY, EPOCH_2000, HOUR, MINUTE, Millis, days_from_civil};
use engauge_gen::{BadKind, DEFAULT_START, GenConfig, Generator, write_ndjson};
use serde_json::Value;

fn ndjson(cfg: GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    write_ndjson(cfg, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Parses the exact `YYYY-MM-DDTHH:MM:SS.mmmZ` form the generator writes.
fn parse_rfc3339_millis(text: &str) -> Option<Millis> {
    let b = text.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * DAY + h * HOUR + mi * MINUTE + s * 1000 + ms)
}

/// Why a line breaks SPEC §1, checked the way a consumer would.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fault {
    Oversize,
    InvalidUtf8,
    NotJson,
    MissingField(&'static str),
    WrongType(&'static str),
    BadTimestamp,
    UnknownSurvey,
    ScoreOutOfRange,
}

const MAX_LINE: usize = 1 << 20;

/// Validates one line; on success returns the event time.
fn validate(line: &[u8]) -> Result<Millis, Fault> {
    if line.len() > MAX_LINE {
        return Err(Fault::Oversize);
    }
    let text = std::str::from_utf8(line).map_err(|_| Fault::InvalidUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|_| Fault::NotJson)?;
    let obj = value.as_object().ok_or(Fault::NotJson)?;
    let string = |key: &'static str, max: usize| -> Result<&str, Fault> {
        match obj.get(key) {
            None => Err(Fault::MissingField(key)),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= max => Ok(s.as_str()),
            Some(_) => Err(Fault::WrongType(key)),
        }
    };
    string("id", 128)?;
    let event_type = string("type", 64)?;
    string("user_id", 256)?;
    let ts = match obj.get("ts") {
        None => return Err(Fault::MissingField("ts")),
        Some(Value::String(s)) => parse_rfc3339_millis(s).ok_or(Fault::BadTimestamp)?,
        Some(Value::Number(n)) => n.as_i64().ok_or(Fault::BadTimestamp)?,
        Some(_) => return Err(Fault::WrongType("ts")),
    };
    if !(EPOCH_2000..=DEFAULT_START + 3650 * DAY).contains(&ts) {
        return Err(Fault::BadTimestamp);
    }
    if obj.get("session_id").is_some_and(|s| !s.is_string()) {
        return Err(Fault::WrongType("session_id"));
    }
    if let Some(attrs) = obj.get("attrs") {
        let attrs = attrs.as_object().ok_or(Fault::WrongType("attrs"))?;
        if !attrs.values().all(Value::is_string) {
            return Err(Fault::WrongType("attrs"));
        }
    }
    match event_type {
        "feature_used" => {
            string("feature", 256)?;
        }
        "survey_response" => {
            let max = match string("survey", 64)? {
                "nps" => 10,
                "csat" => 5,
                "ces" => 7,
                _ => return Err(Fault::UnknownSurvey),
            };
            let min = if max == 10 { 0 } else { 1 };
            let score = match obj.get("score") {
                None => return Err(Fault::MissingField("score")),
                Some(v) => v.as_i64().ok_or(Fault::WrongType("score"))?,
            };
            if !(min..=max).contains(&score) {
                return Err(Fault::ScoreOutOfRange);
            }
            if obj.get("comment").is_some_and(|c| !c.is_string()) {
                return Err(Fault::WrongType("comment"));
            }
        }
        "purchase" | "refund" => {
            match obj.get("amount") {
                None => return Err(Fault::MissingField("amount")),
                Some(v) if v.as_f64().is_some_and(|a| a > 0.0) => {}
                Some(_) => return Err(Fault::WrongType("amount")),
            }
            let known = |c: &Value| {
                c.as_str()
                    .is_some_and(|c| ["USD", "EUR", "GBP"].contains(&c))
            };
            if obj.get("currency").is_some_and(|c| !known(c)) {
                return Err(Fault::WrongType("currency"));
            }
        }
        "page_view"
        | "screen_view"
        | "action"
        | "subscription_cancelled"
        | "support_ticket"
        | "self_service_resolved" => {}
        other => panic!("unexpected type {other}"),
    }
    Ok(ts)
}

fn promised(kind: BadKind, fault: Fault) -> bool {
    match kind {
        BadKind::NotJson => fault == Fault::NotJson,
        BadKind::MissingUserId => fault == Fault::MissingField("user_id"),
        BadKind::ScoreOutOfRange => fault == Fault::ScoreOutOfRange,
        BadKind::BadTimestamp => fault == Fault::BadTimestamp,
        BadKind::InvalidUtf8 => fault == Fault::InvalidUtf8,
        BadKind::Oversize => fault == Fault::Oversize,
        BadKind::UnknownSurvey => fault == Fault::UnknownSurvey,
        BadKind::WrongType => matches!(fault, Fault::WrongType(_)),
    }
}

fn cfg(events: u64, users: u64, days: u32, seed: u64) -> GenConfig {
    GenConfig {
        events,
        users,
        days,
        seed,
        ..GenConfig::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let base = GenConfig {
        bad_ratio: 0.01,
        oversize_bytes: 4096,
        ..cfg(30_000, 5_000, 3, 7)
    };
    let a = ndjson(base.clone());
    let b = ndjson(base.clone());
    let c = ndjson(GenConfig { seed: 8, ..base });
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a[..200], c[..200]);
}

#[test]
fn exact_line_count() {
    for events in [0, 1, 2, 17, 10_000] {
        let out = ndjson(cfg(events, 1_000, 2, 3));
        let lines = out.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(lines, events);
        let mut generator = Generator::new(cfg(events, 1_000, 2, 3));
        assert_eq!(generator.by_ref().count() as u64, events);
        assert_eq!(generator.stats().lines, events);
        assert_eq!(generator.peek_time(), None);
    }
}

#[test]
fn stream_spans_the_requested_days_and_users() {
    let days = 14;
    let config = cfg(400_000, 50_000, days, 5);
    let mut first = Millis::MAX;
    let mut last = Millis::MIN;
    let mut users = HashSet::new();
    let mut per_user: HashMap<u64, u64> = HashMap::new();
    for event in Generator::new(config) {
        first = first.min(event.event_time());
        last = last.max(event.event_time());
        users.insert(event.user_index());
        *per_user.entry(event.user_index()).or_default() += 1;
    }
    assert!(
        (DEFAULT_START..DEFAULT_START + HOUR).contains(&first),
        "first {first}"
    );
    let span = (last - DEFAULT_START) as f64 / DAY as f64;
    assert!(
        (span - f64::from(days)).abs() < 0.05 * f64::from(days),
        "span {span} days"
    );
    // Zipf–Mandelbrot: many users, not all; the heaviest is busy but far from dominant.
    let distinct = users.len() as f64 / 50_000.0;
    assert!(
        (0.25..0.95).contains(&distinct),
        "distinct share {distinct}"
    );
    let top = per_user.values().max().copied().unwrap_or(0) as f64 / 400_000.0;
    assert!(top > 0.001 && top < 0.02, "top user share {top}");
}

#[test]
fn duplicates_and_disorder_within_ratio_and_bound() {
    let config = cfg(300_000, 20_000, 3, 11);
    let max_disorder = config.max_disorder;
    let mut generator = Generator::new(config);
    let mut newest = DEFAULT_START;
    let mut last_emit = Millis::MIN;
    let mut originals: HashMap<String, Vec<u8>> = HashMap::new();
    let (mut out_of_order, mut worst) = (0u64, 0);
    let mut line = Vec::new();
    loop {
        let peeked = generator.peek_time();
        let Some(event) = generator.next_event() else {
            break;
        };
        assert_eq!(peeked, Some(event.emit_time()));
        assert!(event.emit_time() >= last_emit, "emission order");
        assert!(event.emit_time() >= event.event_time());
        last_emit = event.emit_time();
        line.clear();
        event.encode_into(&mut line);
        if event.is_duplicate() {
            let original = originals
                .get(&event.id())
                .expect("duplicate after its original");
            assert_eq!(original, &line, "duplicate bytes identical");
        } else {
            assert!(
                originals.insert(event.id(), line.clone()).is_none(),
                "unique ids"
            );
            out_of_order += u64::from(event.event_time() < newest);
        }
        worst = worst.max(newest - event.event_time());
        newest = newest.max(event.event_time());
    }
    let stats = generator.stats().clone();
    assert_eq!(stats.lines, 300_000);
    assert!(worst <= max_disorder, "disorder {worst} > {max_disorder}");
    let dup = stats.duplicates as f64 / stats.events as f64;
    assert!((dup - 0.02).abs() < 0.002, "duplicate ratio {dup}");
    let late = out_of_order as f64 / stats.events as f64;
    assert!((late - 0.03).abs() < 0.003, "out-of-order ratio {late}");
    assert!(stats.peak_active_sessions < 2_000, "{stats:?}");
}

#[test]
fn every_line_is_a_valid_event() {
    let config = GenConfig {
        session_id_ratio: 0.3,
        ..cfg(200_000, 20_000, 7, 21)
    };
    let mut generator = Generator::new(config);
    let mut line = Vec::new();
    let mut types: HashMap<String, u64> = HashMap::new();
    let (mut integer_ts, mut with_session, mut comments) = (0u64, 0u64, 0u64);
    while let Some(event) = generator.next_event() {
        line.clear();
        event.encode_into(&mut line);
        let ts = validate(&line).unwrap_or_else(|fault| {
            panic!("{fault:?}: {}", String::from_utf8_lossy(&line));
        });
        assert_eq!(ts, event.event_time());
        let value: Value = serde_json::from_slice(&line).expect("validated");
        *types
            .entry(value["type"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
        integer_ts += u64::from(value["ts"].is_i64());
        with_session += u64::from(value.get("session_id").is_some());
        comments += u64::from(value.get("comment").is_some());
        assert_eq!(value["id"].as_str(), Some(event.id().as_str()));
        let core = event.to_core_event().expect("well-formed");
        assert_eq!(value["user_id"].as_str(), Some(&*core.user_id));
        assert_eq!(core.ts, ts);
        assert_eq!(core.event_type, value["type"].as_str().unwrap_or(""));
        assert_eq!(core.attrs.len(), 3);
    }
    let n = 200_000.0;
    let share = |t: &str| types.get(t).copied().unwrap_or(0) as f64 / n;
    assert!(share("page_view") + share("screen_view") + share("action") > 0.8);
    assert!((share("feature_used") - 0.10).abs() < 0.01, "{types:?}");
    assert!((share("survey_response") - 0.01).abs() < 0.002, "{types:?}");
    for t in [
        "purchase",
        "refund",
        "subscription_cancelled",
        "support_ticket",
    ] {
        assert!(share(t) > 0.0, "{t} missing: {types:?}");
    }
    assert!(share("self_service_resolved") > 0.0);
    assert!(
        (integer_ts as f64 / n - 0.10).abs() < 0.05,
        "integer ts share"
    );
    assert!(with_session as f64 / n > 0.15 && (with_session as f64 / n) < 0.45);
    assert!(comments > 0);
}

#[test]
fn malformed_lines_are_of_their_promised_kinds() {
    let config = GenConfig {
        bad_ratio: 0.1,
        oversize_bytes: 4096,
        ..cfg(40_000, 5_000, 2, 31)
    };
    let limit = 4096;
    let mut generator = Generator::new(config);
    let mut line = Vec::new();
    let mut seen: HashMap<BadKind, u64> = HashMap::new();
    let mut bad = 0u64;
    while let Some(event) = generator.next_event() {
        line.clear();
        event.encode_into(&mut line);
        match event.bad_kind() {
            None => {
                assert!(line.len() < limit);
                validate(&line).expect("well-formed line");
            }
            Some(kind) => {
                bad += 1;
                *seen.entry(kind).or_default() += 1;
                let fault = if kind == BadKind::Oversize {
                    assert!(line.len() >= limit, "oversize line of {} bytes", line.len());
                    assert!(std::str::from_utf8(&line).is_ok());
                    Fault::Oversize
                } else {
                    validate(&line).expect_err("malformed line validated")
                };
                assert!(
                    promised(kind, fault),
                    "{kind:?} gave {fault:?}: {}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }
    let share = bad as f64 / 40_000.0;
    assert!((share - 0.1).abs() < 0.01, "bad share {share}");
    assert_eq!(seen.len(), BadKind::COUNT, "{seen:?}");
    assert_eq!(generator.stats().bad_total(), bad);
}

#[test]
fn nights_are_quieter_than_afternoons() {
    let mut by_hour = [0u64; 24];
    for event in Generator::new(cfg(200_000, 20_000, 14, 41)) {
        by_hour[(event.event_time().rem_euclid(DAY) / HOUR) as usize] += 1;
    }
    let night: u64 = by_hour[1..6].iter().sum();
    let afternoon: u64 = by_hour[13..18].iter().sum();
    assert!(afternoon > 2 * night, "{by_hour:?}");
}

#[test]
fn endless_live_stream_paces_by_emission_time() {
    let start = DEFAULT_START + 123_456;
    let per_day = 86_400.0 * 500.0; // 500 lines a second on average
    let mut generator = Generator::new(GenConfig::live(start, per_day));
    assert_eq!(generator.size_hint().1, None);
    let mut last = start;
    let mut line = Vec::new();
    for _ in 0..200_000 {
        let due = generator.peek_time().expect("endless");
        assert!(due >= last);
        last = due;
        line.clear();
        let ts = generator.next_into(&mut line).expect("endless");
        assert!(ts <= due);
        assert!(!line.ends_with(b"\n"));
    }
    // Midnight to 6:40 on a Thursday: a quiet stretch, so fewer than 500 a second.
    let elapsed = (last - start) as f64 / 1000.0;
    let rate = 200_000.0 / elapsed;
    assert!(rate > 150.0 && rate < 500.0, "rate {rate}/s");
}

#[test]
fn extreme_settings_are_clamped_and_keep_the_bounds() {
    let config = GenConfig {
        out_of_order_ratio: 1.0,
        duplicate_ratio: 1.0,
        max_disorder: MINUTE,
        ..cfg(20_000, 100, 1, 51)
    };
    assert!(config.validate().is_err());
    let mut newest = DEFAULT_START;
    let mut generator = Generator::new(config);
    for event in generator.by_ref() {
        assert!(newest - event.event_time() <= MINUTE);
        newest = newest.max(event.event_time());
    }
    let stats = generator.stats();
    assert_eq!(stats.lines, 20_000);
    assert!(stats.duplicates > 9_000, "{stats:?}");

    // Without a disorder budget nothing is late, and duplicates follow at once.
    let config = GenConfig {
        max_disorder: 0,
        ..cfg(20_000, 100, 1, 52)
    };
    let mut last = DEFAULT_START;
    for event in Generator::new(config) {
        assert!(event.event_time() >= last);
        last = event.event_time();
    }
}
