//! Independent reference test for calendar windows: the engine, driven like `engauge replay`,
//! must emit exactly the calendar snapshots a naive oracle (tests/calendar_model/oracle.rs, from
//! docs/semantics.md only, with its own period boundaries) expects, on event streams that cross
//! daylight-saving changes in both hemispheres, a midnight swallowed by a DST gap, half-hour
//! zones, month ends and a leap day. Plus hand-computed cases with exact numbers.

#[path = "calendar_model/oracle.rs"]
mod oracle;

use std::borrow::Cow;
use std::fmt::Write as _;

use engauge_core::{
    CalendarPeriod, CalendarSpec, Engine, EngineConfig, Event, EventKind, Ingested, Millis, Replay,
    SegmentsConfig, Snapshot, Survey, WindowSpec,
};
use jiff::Timestamp;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use oracle::{Cal, MINUTE, Row};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestRng, TestRunner};

const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;
const LATENESS: Millis = 5 * MINUTE;

// ---------------------------------------------------------------------------------------------
// Configuration, events, driving the engine.
// ---------------------------------------------------------------------------------------------

fn config(windows: Vec<WindowSpec>) -> EngineConfig {
    EngineConfig {
        windows,
        allowed_lateness: LATENESS,
        lifecycle: true,
        segments: SegmentsConfig {
            dimensions: vec!["plan".into()],
            sets: vec![vec![], vec!["plan".into()]],
            max_values: 20,
        },
        n_day_retention: vec![1, 2],
        ..EngineConfig::default()
    }
}

fn calendar(name: &str, zone: &str, period: CalendarPeriod, week_start: u8) -> WindowSpec {
    WindowSpec::calendar(
        name,
        CalendarSpec {
            period,
            timezone: zone.into(),
            week_start,
        },
    )
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    View,
    Feature(&'static str),
    Nps(i32),
    Purchase(f64),
    Refund(f64),
}

fn event(id: usize, user: &str, ts: Millis, kind: Kind, plan: Option<&str>) -> Event<'static> {
    let (event_type, kind) = match kind {
        Kind::View => ("page_view", EventKind::Plain),
        Kind::Feature(name) => (
            "feature_used",
            EventKind::FeatureUsed {
                feature: Cow::Borrowed(name),
            },
        ),
        Kind::Nps(score) => (
            "survey_response",
            EventKind::SurveyResponse {
                survey: Survey::Nps,
                score,
            },
        ),
        Kind::Purchase(amount) => ("purchase", EventKind::Purchase { amount }),
        Kind::Refund(amount) => ("refund", EventKind::Refund { amount }),
    };
    Event {
        id: Cow::Owned(format!("e{id}")),
        event_type: Cow::Borrowed(event_type),
        user_id: Cow::Owned(user.to_owned()),
        ts,
        session_id: None,
        attrs: plan
            .map(|p| (Cow::Borrowed("plan"), Cow::Owned(p.to_owned())))
            .into_iter()
            .collect(),
        kind,
    }
}

/// Replays `arrivals` through the crate's [`Replay`] driver.
fn replay(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> Vec<Snapshot> {
    let mut driver = Replay::new(Engine::new(cfg.clone()).expect("test configs are valid"));
    let mut out = Vec::new();
    for ev in arrivals {
        let r = driver.push(ev, &mut out);
        assert_eq!(r, Ingested::Accepted, "event {} must be accepted", ev.id);
    }
    driver.finish(&mut out);
    out
}

/// The engine's calendar snapshots, in emitted order.
fn engine_rows(cfg: &EngineConfig, snaps: &[Snapshot]) -> Vec<Row> {
    let calendar_names: Vec<&str> = cfg
        .windows
        .iter()
        .filter(|w| w.calendar.is_some())
        .map(|w| w.name.as_str())
        .collect();
    snaps
        .iter()
        .filter(|s| calendar_names.contains(&s.window.as_str()))
        .map(Row::of)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Readable output.
// ---------------------------------------------------------------------------------------------

fn utc(t: Millis) -> String {
    Timestamp::from_millisecond(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

fn local(zone: &str, t: Millis) -> String {
    let tz = TimeZone::get(zone).expect("zone");
    let ts = Timestamp::from_millisecond(t).expect("instant");
    let z = ts.to_zoned(tz);
    format!("{}{}", z.datetime(), z.offset())
}

fn zones(cfg: &EngineConfig) -> Vec<String> {
    let mut zones: Vec<String> = cfg
        .windows
        .iter()
        .filter_map(|w| w.calendar.as_ref().map(|c| c.timezone.clone()))
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

fn describe(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> String {
    let mut s = String::from("windows:\n");
    for w in &cfg.windows {
        match &w.calendar {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "  {} = {:?} {} week_start {}",
                    w.name, c.period, c.timezone, c.week_start
                );
            }
            None => {
                let _ = writeln!(s, "  {} = sliding {}ms / {}ms", w.name, w.length, w.slide);
            }
        }
    }
    let _ = writeln!(
        s,
        "allowed_lateness {}ms, n_day_retention {:?}\nevents in arrival order:",
        cfg.allowed_lateness, cfg.n_day_retention
    );
    let zones = zones(cfg);
    for ev in arrivals {
        let plan = ev.attr("plan").unwrap_or("-");
        let amount = match ev.kind {
            EventKind::Purchase { amount } | EventKind::Refund { amount } => format!(" {amount}"),
            _ => String::new(),
        };
        let locals: Vec<String> = zones.iter().map(|z| local(z, ev.ts)).collect();
        let _ = writeln!(
            s,
            "  {:<4} {:<3} {} ({}) {}{amount} plan={plan}",
            ev.id,
            ev.user_id,
            utc(ev.ts),
            locals.join(", "),
            ev.event_type,
        );
    }
    s
}

/// The fields in which `a` and `e` differ.
fn field_diffs(a: &Row, e: &Row) -> Vec<String> {
    let mut d = Vec::new();
    macro_rules! fields {
        ($($f:ident),*) => {$(
            if a.$f != e.$f {
                d.push(format!("{}: engine {:?}, oracle {:?}", stringify!($f), a.$f, e.$f));
            }
        )*};
    }
    fields!(
        window,
        key,
        start,
        end,
        utc_offsets,
        watermark,
        events,
        active_users,
        retained_users,
        churned_users,
        new_users,
        resurrected_users,
        retention_ratio,
        churn_ratio,
        revenue,
        orders,
        paying_users,
        aov,
        arpu,
        arppu,
        conversion_ratio,
        nps_responses,
        sessions,
        session_mean,
        features,
        n_day_retention
    );
    d
}

fn row_line(r: &Row) -> String {
    format!("{} [{} .. {})", r.key, utc(r.start), utc(r.end))
}

/// `None` when the engine's calendar snapshots equal the oracle's; otherwise the first
/// difference.
fn compare(expected: &[Row], actual: &[Row]) -> Option<String> {
    for i in 0..expected.len().max(actual.len()) {
        match (actual.get(i), expected.get(i)) {
            (Some(a), Some(e)) if a == e => {}
            (Some(a), Some(e)) if a.key == e.key && a.end == e.end => {
                return Some(format!(
                    "snapshot #{i} {} differs:\n  {}\n engine: {a:?}\n oracle: {e:?}",
                    row_line(e),
                    field_diffs(a, e).join("\n  ")
                ));
            }
            (a, e) => {
                let mut msg = format!(
                    "snapshot list differs at #{i} (engine {} rows, oracle {}):\n  engine: {}\n  \
                     oracle: {}\n",
                    actual.len(),
                    expected.len(),
                    a.map_or("<none>".into(), row_line),
                    e.map_or("<none>".into(), row_line),
                );
                let from = i.saturating_sub(2);
                let _ = writeln!(msg, " engine from #{from}:");
                for r in actual.iter().skip(from).take(6) {
                    let _ = writeln!(msg, "    {}", row_line(r));
                }
                let _ = writeln!(msg, " oracle from #{from}:");
                for r in expected.iter().skip(from).take(6) {
                    let _ = writeln!(msg, "    {}", row_line(r));
                }
                return Some(msg);
            }
        }
    }
    None
}

/// Runs engine and oracle on the same input; the difference, if any, with the scenario.
fn check(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> Result<Vec<Row>, String> {
    let expected = oracle::expected(cfg, arrivals);
    let actual = engine_rows(cfg, &replay(cfg, arrivals));
    match compare(&expected, &actual) {
        None => Ok(actual),
        Some(diff) => Err(format!("{diff}\n{}", describe(cfg, arrivals))),
    }
}

fn check_ok(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> Vec<Row> {
    check(cfg, arrivals).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// Random scenarios.
// ---------------------------------------------------------------------------------------------

/// A stretch of local dates around daylight-saving changes (or a month end / leap day) and the
/// zones whose changes it holds.
struct Era {
    start: (i16, i8, i8),
    days: u8,
    zones: &'static [&'static str],
}

const ERAS: [Era; 5] = [
    // Berlin spring forward 03-29; Sydney and Adelaide fall back 04-05; Santiago's 25-hour
    // 04-04; March -> April.
    Era {
        start: (2026, 3, 25),
        days: 14,
        zones: &[
            "Europe/Berlin",
            "Australia/Sydney",
            "Australia/Adelaide",
            "America/Santiago",
        ],
    },
    // Santiago 09-06: 00:00 does not exist, the day starts at 01:00; August -> September.
    Era {
        start: (2026, 8, 29),
        days: 11,
        zones: &["America/Santiago"],
    },
    // Sydney and Adelaide spring forward 10-04; September -> October.
    Era {
        start: (2026, 9, 28),
        days: 10,
        zones: &["Australia/Sydney", "Australia/Adelaide"],
    },
    // Berlin falls back 10-25 (a 25-hour day, a 31-day month with an extra hour); Oct -> Nov.
    Era {
        start: (2026, 10, 21),
        days: 13,
        zones: &["Europe/Berlin"],
    },
    // Leap day 2028-02-29 and February -> March, in UTC and a half-hour zone.
    Era {
        start: (2028, 2, 25),
        days: 7,
        zones: &["UTC", "Asia/Kolkata"],
    },
];

const ALL_ZONES: [&str; 6] = [
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Santiago",
    "Australia/Adelaide",
    "Asia/Kolkata",
    "UTC",
];

const USERS: [&str; 5] = ["ann", "bob", "cat", "dan", "eve"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

/// One generated event, as raw choices interpreted by [`build`].
#[derive(Debug, Clone)]
struct EvSpec {
    user: u8,
    /// Which window's zone places the event.
    anchor: u8,
    day: u8,
    /// Near local midnight (most) or anywhere in the day.
    near: u8,
    offset: u32,
    kind: u8,
    amount: u16,
    plan: u8,
    delay: u8,
    delay_rand: u32,
}

#[derive(Debug, Clone)]
struct Scenario {
    era: u8,
    /// Per calendar window: (zone choice, period choice, week_start).
    windows: Vec<(u8, u8, u8)>,
    /// 0: calendar windows only; 1: also a sliding 1h/5m window; 2: also 2h/10m.
    sliding: u8,
    first_day: u8,
    span: u8,
    /// Per user: home plan choice.
    homes: Vec<u8>,
    events: Vec<EvSpec>,
}

fn ev_spec() -> impl Strategy<Value = EvSpec> {
    (
        (0u8..5, any::<u8>(), any::<u8>(), any::<u8>(), any::<u32>()),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((user, anchor, day, near, offset), (kind, amount, plan, delay, delay_rand))| EvSpec {
                user,
                anchor,
                day,
                near,
                offset,
                kind,
                amount,
                plan,
                delay,
                delay_rand,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        0u8..ERAS.len() as u8,
        prop::collection::vec((any::<u8>(), 0u8..4, 0u8..7), 1..=4),
        0u8..3,
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(0u8..4, USERS.len()),
        prop::collection::vec(ev_spec(), 1..=40),
    )
        .prop_map(
            |(era, windows, sliding, first_day, span, homes, events)| Scenario {
                era,
                windows,
                sliding,
                first_day,
                span,
                homes,
                events,
            },
        )
}

/// The configuration and the events in arrival order.
fn build(sc: &Scenario) -> (EngineConfig, Vec<Event<'static>>) {
    let era = &ERAS[sc.era as usize];
    let mut windows = Vec::new();
    let mut window_zones = Vec::new();
    for (i, &(zone, period, week_start)) in sc.windows.iter().enumerate() {
        let zone = if zone < 180 {
            era.zones[zone as usize % era.zones.len()]
        } else {
            ALL_ZONES[zone as usize % ALL_ZONES.len()]
        };
        let period = match period {
            0 | 1 => CalendarPeriod::Day,
            2 => CalendarPeriod::Week,
            _ => CalendarPeriod::Month,
        };
        windows.push(calendar(&format!("w{i}"), zone, period, week_start));
        window_zones.push(zone);
    }
    match sc.sliding {
        1 => windows.push(WindowSpec::new("1h", HOUR, 5 * MINUTE)),
        2 => windows.push(WindowSpec::new("2h", 2 * HOUR, 10 * MINUTE)),
        _ => {}
    }
    let cfg = config(windows);

    let days = i64::from(era.days);
    let span = 1 + i64::from(sc.span) % days;
    let first = i64::from(sc.first_day) % (days - span + 1);
    let (y, m, d) = era.start;
    let era_start = date(y, m, d);
    let cals: Vec<Cal> = window_zones
        .iter()
        .map(|z| Cal::new(z, CalendarPeriod::Day, 0))
        .collect();

    // (ts, arrival key) in generation order.
    let mut timed: Vec<(Millis, Millis, &EvSpec)> = Vec::new();
    for ev in &sc.events {
        let cal = &cals[ev.anchor as usize % cals.len()];
        let day = first + i64::from(ev.day) % span;
        let local_day: Date = era_start
            .checked_add(jiff::Span::new().days(day))
            .expect("in range");
        let midnight = cal.first_instant(local_day);
        let offset = match ev.near % 8 {
            // Exactly at the boundary, and the last millisecond before it.
            0 => 0,
            1 => -1,
            // Within ten minutes either side of local midnight.
            2..=5 => i64::from(ev.offset % (20 * 60 + 1)) * 1000 - 10 * MINUTE,
            // Anywhere in the local day (or the first hour of the next, on a 25-hour day).
            _ => i64::from(ev.offset) % DAY,
        };
        let ts = midnight + offset;
        let delay = if ev.delay % 2 == 0 {
            0
        } else {
            i64::from(ev.delay_rand) % (LATENESS + 1)
        };
        timed.push((ts, ts + delay, ev));
    }
    // Arrival order: by ts + delay with delay in [0, lateness], so no event ever falls behind
    // the watermark (ts_j + d_j <= ts_i + d_i implies ts_i >= ts_j - lateness).
    timed.sort_by_key(|&(ts, _, _)| ts);
    let mut order: Vec<usize> = (0..timed.len()).collect();
    order.sort_by_key(|&i| (timed[i].1, i));
    let events = order
        .into_iter()
        .map(|i| {
            let (ts, _, ev) = timed[i];
            let user = ev.user as usize % USERS.len();
            let home = sc.homes[user];
            // Mostly the user's home plan (none for some users); sometimes another.
            let plan = if ev.plan % 6 == 0 {
                (ev.plan % 4 != 0).then(|| PLANS[(ev.plan / 6) as usize % PLANS.len()])
            } else {
                (home != 0).then(|| PLANS[(home - 1) as usize % PLANS.len()])
            };
            let cents = f64::from(ev.amount % 5000 + 1) / 100.0;
            let kind = match ev.kind % 16 {
                0..=9 => Kind::View,
                10 | 11 => Kind::Feature(if ev.amount % 2 == 0 {
                    "export"
                } else {
                    "search"
                }),
                12 => Kind::Nps(i32::from(ev.amount % 11)),
                13 | 14 => Kind::Purchase(cents),
                _ => Kind::Refund(cents),
            };
            event(i, USERS[user], ts, kind, plan)
        })
        .collect();
    (cfg, events)
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        max_shrink_iters: 4_000,
        ..ProptestConfig::default()
    }
}

fn runner() -> TestRunner {
    TestRunner::new_with_rng(
        proptest_config(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

/// The property: the engine's calendar snapshots equal the oracle's, field for field.
#[test]
fn calendar_windows_match_the_naive_oracle() {
    let result = runner().run(&scenario(), |sc| {
        let (cfg, arrivals) = build(&sc);
        check(&cfg, &arrivals).map_err(TestCaseError::fail)?;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The generator reaches what the property is meant to exercise (checked on the oracle alone).
#[test]
fn generator_covers_the_interesting_cases() {
    let mut runner = runner();
    let strategy = scenario();
    let mut seen = std::collections::BTreeMap::<&str, u32>::new();
    for _ in 0..proptest_config().cases {
        let sc = strategy.new_tree(&mut runner).expect("strategy").current();
        let (cfg, arrivals) = build(&sc);
        let rows = oracle::expected(&cfg, &arrivals);
        let mut hit = |name: &'static str, yes: bool| {
            if yes {
                *seen.entry(name).or_default() += 1;
            }
        };
        hit(
            "out of order",
            arrivals.windows(2).any(|p| p[1].ts < p[0].ts),
        );
        for r in &rows {
            let spec = cfg
                .windows
                .iter()
                .find(|w| w.name == r.window)
                .and_then(|w| w.calendar.clone())
                .expect("calendar window");
            let len = r.end - r.start;
            hit(
                "23-hour day",
                spec.period == CalendarPeriod::Day && len == 23 * HOUR,
            );
            hit(
                "25-hour day",
                spec.period == CalendarPeriod::Day && len == 25 * HOUR,
            );
            hit(
                "day starting 01:00 local",
                spec.period == CalendarPeriod::Day
                    && local(&spec.timezone, r.start).contains("T01:00"),
            );
            hit(
                "week across DST",
                spec.period == CalendarPeriod::Week && len != 7 * DAY,
            );
            hit(
                "week not starting Monday",
                spec.period == CalendarPeriod::Week && spec.week_start != 0,
            );
            hit("month", spec.period == CalendarPeriod::Month);
            hit(
                "half-hour offset",
                r.utc_offsets.is_some_and(|(a, _)| a % 3600 != 0),
            );
            hit("retained", r.retained_users > 0);
            hit("churned", r.churned_users > 0);
            hit("new", r.new_users > 0);
            hit("resurrected", r.resurrected_users > 0);
            hit("paying", r.paying_users > 0);
            hit("negative revenue", r.revenue < 0.0);
            hit("survey only", r.events > 0 && r.active_users == 0);
            hit("plan segment", r.key.contains("plan="));
            hit(
                "1-day retention below 1",
                r.n_day_retention
                    .first()
                    .is_some_and(|&(_, v)| v.is_some_and(|v| v < 1.0)),
            );
            hit(
                "2-day retention known",
                r.n_day_retention.get(1).is_some_and(|&(_, v)| v.is_some()),
            );
        }
    }
    for name in [
        "out of order",
        "23-hour day",
        "25-hour day",
        "day starting 01:00 local",
        "week across DST",
        "week not starting Monday",
        "month",
        "half-hour offset",
        "retained",
        "churned",
        "new",
        "resurrected",
        "paying",
        "negative revenue",
        "survey only",
        "plan segment",
        "1-day retention below 1",
        "2-day retention known",
    ] {
        assert!(
            seen.get(name).copied().unwrap_or(0) > 0,
            "the generator never produced: {name} (seen: {seen:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases: boundaries written out with their offsets, counts by hand.
// ---------------------------------------------------------------------------------------------

/// Milliseconds of an RFC 3339 instant.
fn at(text: &str) -> Millis {
    text.parse::<Timestamp>().expect("instant").as_millisecond()
}

fn find<'a>(rows: &'a [Row], key: &str, end: Millis) -> &'a Row {
    rows.iter()
        .find(|r| r.key == key && r.end == end)
        .unwrap_or_else(|| panic!("no snapshot {key} ending {}: {rows:#?}", utc(end)))
}

/// (active, events, retained, churned, new, resurrected).
fn counts(r: &Row) -> (u64, u64, u64, u64, u64, u64) {
    (
        r.active_users,
        r.events,
        r.retained_users,
        r.churned_users,
        r.new_users,
        r.resurrected_users,
    )
}

/// Sydney, 2026-04-05: AEDT (+11) -> AEST (+10) at 03:00 local, a 25-hour day that ends where
/// the Monday week ends.
#[test]
fn sydney_25_hour_day() {
    let cfg = config(vec![
        calendar("day", "Australia/Sydney", CalendarPeriod::Day, 0),
        calendar("week", "Australia/Sydney", CalendarPeriod::Week, 0),
    ]);
    let events = vec![
        // Sat 04-04 23:59:59.999 +11.
        event(
            1,
            "ann",
            at("2026-04-04T12:59:59.999Z"),
            Kind::View,
            Some("free"),
        ),
        // Sun 04-05 00:00 +11.
        event(
            2,
            "ann",
            at("2026-04-04T13:00:00Z"),
            Kind::View,
            Some("free"),
        ),
        // Sun 04-05 13:30 +11.
        event(
            3,
            "bob",
            at("2026-04-05T02:30:00Z"),
            Kind::Purchase(12.5),
            Some("pro"),
        ),
        // Sun 04-05 23:59:59 +10: a survey only, not activity.
        event(4, "cat", at("2026-04-05T13:59:59Z"), Kind::Nps(9), None),
        // Mon 04-06 00:00 +10.
        event(5, "cat", at("2026-04-05T14:00:00Z"), Kind::View, None),
        event(
            6,
            "bob",
            at("2026-04-06T13:00:00Z"),
            Kind::View,
            Some("pro"),
        ),
    ];
    let rows = check_ok(&cfg, &events);

    let d4 = find(&rows, "day|", at("2026-04-04T13:00:00Z"));
    assert_eq!(d4.start, at("2026-04-03T13:00:00Z"));
    assert_eq!(d4.utc_offsets, Some((39_600, 39_600)));
    assert_eq!(counts(d4), (1, 1, 0, 0, 1, 0));
    assert_eq!(d4.n_day_retention, vec![(1, None), (2, None)]);

    let d5 = find(&rows, "day|", at("2026-04-05T14:00:00Z"));
    assert_eq!(d5.start, at("2026-04-04T13:00:00Z"));
    assert_eq!(d5.end - d5.start, 25 * HOUR);
    assert_eq!(d5.utc_offsets, Some((39_600, 36_000)));
    assert_eq!(counts(d5), (2, 3, 1, 0, 1, 0), "ann retained, bob new");
    assert_eq!((d5.revenue, d5.orders, d5.paying_users), (12.5, 1, 1));
    assert_eq!(d5.nps_responses, 1);
    assert_eq!(d5.n_day_retention, vec![(1, Some(1.0)), (2, None)]);
    let none = find(&rows, "day|plan=__none__", at("2026-04-05T14:00:00Z"));
    assert_eq!(counts(none), (0, 1, 0, 0, 0, 0), "cat's survey alone");
    assert!(none.n_day_retention.is_empty(), "all-users segment only");
    let pro = find(&rows, "day|plan=pro", at("2026-04-05T14:00:00Z"));
    assert_eq!((pro.new_users, pro.revenue), (1, 12.5));

    // Monday 03-30 00:00 +11 to Monday 04-06 00:00 +10: seven days and an hour.
    let week = find(&rows, "week|", at("2026-04-05T14:00:00Z"));
    assert_eq!(week.start, at("2026-03-29T13:00:00Z"));
    assert_eq!(week.end - week.start, 7 * DAY + HOUR);
    assert_eq!(week.utc_offsets, Some((39_600, 36_000)));
    assert_eq!(counts(week), (2, 4, 0, 0, 2, 0));
    assert!(week.n_day_retention.is_empty(), "day windows only");
    // Monday 04-06 is not over at the last event: not emitted.
    assert!(rows.iter().all(|r| r.end <= at("2026-04-06T13:00:00Z")));
}

/// America/Santiago, 2026-09-06: clocks jump from 00:00 -04 to 01:00 -03, so the day (and a
/// Sunday week) starts at 01:00 local and lasts 23 hours (a week: 7 days less an hour).
#[test]
fn santiago_day_starting_at_one() {
    let cfg = config(vec![
        calendar("day", "America/Santiago", CalendarPeriod::Day, 0),
        calendar("week", "America/Santiago", CalendarPeriod::Week, 6),
    ]);
    let events = vec![
        // Fri 09-04 23:30 -04.
        event(1, "ann", at("2026-09-05T03:30:00Z"), Kind::View, None),
        // Sat 09-05 23:59:59.999 -04.
        event(2, "ann", at("2026-09-06T03:59:59.999Z"), Kind::View, None),
        // Sun 09-06 01:00 -03, the first instant of the day.
        event(
            3,
            "bob",
            at("2026-09-06T04:00:00Z"),
            Kind::View,
            Some("pro"),
        ),
        event(4, "ann", at("2026-09-06T05:00:00Z"), Kind::View, None),
        // Sun 09-06 23:59 -03.
        event(5, "cat", at("2026-09-07T02:59:00Z"), Kind::View, None),
        // Mon 09-07 00:00 -03.
        event(
            6,
            "bob",
            at("2026-09-07T03:00:00Z"),
            Kind::View,
            Some("pro"),
        ),
        // Sun 09-13 00:00 -03: closes the week of the 6th.
        event(7, "dan", at("2026-09-13T03:00:00Z"), Kind::View, None),
    ];
    let rows = check_ok(&cfg, &events);

    let d4 = find(&rows, "day|", at("2026-09-05T04:00:00Z"));
    assert_eq!(
        (d4.start, d4.utc_offsets),
        (at("2026-09-04T04:00:00Z"), Some((-14_400, -14_400)))
    );
    assert_eq!(counts(d4), (1, 1, 0, 0, 1, 0));
    let d5 = find(&rows, "day|", at("2026-09-06T04:00:00Z"));
    assert_eq!(d5.start, at("2026-09-05T04:00:00Z"));
    assert_eq!(d5.utc_offsets, Some((-14_400, -10_800)));
    assert_eq!(counts(d5), (1, 1, 1, 0, 0, 0));
    assert_eq!(d5.n_day_retention, vec![(1, Some(1.0)), (2, None)]);
    let d6 = find(&rows, "day|", at("2026-09-07T03:00:00Z"));
    assert_eq!(d6.start, at("2026-09-06T04:00:00Z"), "01:00 -03");
    assert_eq!(d6.end - d6.start, 23 * HOUR);
    assert_eq!(d6.utc_offsets, Some((-10_800, -10_800)));
    assert_eq!(counts(d6), (3, 3, 1, 0, 2, 0), "ann retained; bob, cat new");
    assert_eq!(d6.n_day_retention, vec![(1, None), (2, Some(1.0))]);
    let d7 = find(&rows, "day|", at("2026-09-08T03:00:00Z"));
    assert_eq!(counts(d7), (1, 1, 1, 2, 0, 0), "bob stays; ann, cat leave");
    assert_eq!(d7.n_day_retention, vec![(1, Some(0.5)), (2, None)]);

    let w1 = find(&rows, "week|", at("2026-09-06T04:00:00Z"));
    assert_eq!(w1.start, at("2026-08-30T04:00:00Z"));
    assert_eq!(w1.utc_offsets, Some((-14_400, -10_800)));
    assert_eq!(counts(w1), (1, 2, 0, 0, 1, 0));
    let w2 = find(&rows, "week|", at("2026-09-13T03:00:00Z"));
    assert_eq!(w2.start, at("2026-09-06T04:00:00Z"));
    assert_eq!(w2.end - w2.start, 7 * DAY - HOUR);
    assert_eq!(w2.utc_offsets, Some((-10_800, -10_800)));
    assert_eq!(counts(w2), (3, 4, 1, 0, 2, 0));
    assert_eq!(
        w2.watermark,
        at("2026-09-13T03:00:00Z"),
        "closed at end of input"
    );
}

/// Europe/Berlin weeks starting on Sunday: the week of Sunday 2026-03-29 (clocks 02:00 -> 03:00
/// that night) runs from +01:00 to +02:00, 7 days less an hour.
#[test]
fn berlin_sunday_week_across_dst() {
    let cfg = config(vec![
        calendar("day", "Europe/Berlin", CalendarPeriod::Day, 0),
        calendar("week", "Europe/Berlin", CalendarPeriod::Week, 6),
    ]);
    let events = vec![
        // Sat 03-28 23:59:59.999 +01.
        event(
            1,
            "ann",
            at("2026-03-28T22:59:59.999Z"),
            Kind::Purchase(10.0),
            Some("pro"),
        ),
        // Sun 03-29 00:00 +01.
        event(2, "bob", at("2026-03-28T23:00:00Z"), Kind::View, None),
        // Sun 03-29 03:30 +02.
        event(
            3,
            "ann",
            at("2026-03-29T01:30:00Z"),
            Kind::Feature("export"),
            None,
        ),
        // Sat 04-04 23:59 +02.
        event(
            4,
            "ann",
            at("2026-04-04T21:59:00Z"),
            Kind::Refund(4.0),
            None,
        ),
        // Sun 04-05 00:00 +02.
        event(5, "cat", at("2026-04-04T22:00:00Z"), Kind::View, None),
    ];
    let rows = check_ok(&cfg, &events);

    let w1 = find(&rows, "week|", at("2026-03-28T23:00:00Z"));
    assert_eq!(w1.start, at("2026-03-21T23:00:00Z"));
    assert_eq!(w1.utc_offsets, Some((3_600, 3_600)));
    assert_eq!(counts(w1), (1, 1, 0, 0, 1, 0));
    assert_eq!((w1.revenue, w1.orders, w1.paying_users), (10.0, 1, 1));
    let w2 = find(&rows, "week|", at("2026-04-04T22:00:00Z"));
    assert_eq!(w2.start, at("2026-03-28T23:00:00Z"));
    assert_eq!(w2.end - w2.start, 7 * DAY - HOUR);
    assert_eq!(w2.utc_offsets, Some((3_600, 7_200)));
    assert_eq!(counts(w2), (2, 3, 1, 0, 1, 0), "ann retained, bob new");
    assert_eq!((w2.revenue, w2.orders, w2.paying_users), (-4.0, 0, 0));
    assert_eq!(w2.retention_ratio, Some(1.0));
    // In the no-plan segment ann was not active the week before (she was "pro"), but she was
    // first seen before this week: resurrected there.
    let none = find(&rows, "week|plan=__none__", at("2026-04-04T22:00:00Z"));
    assert_eq!(counts(none), (2, 3, 0, 0, 1, 1));
    assert!(
        rows.iter()
            .all(|r| !(r.key == "week|plan=pro" && r.end == w2.end)),
        "no pro events that week"
    );

    let d29 = find(&rows, "day|", at("2026-03-29T22:00:00Z"));
    assert_eq!(d29.start, at("2026-03-28T23:00:00Z"));
    assert_eq!(d29.end - d29.start, 23 * HOUR);
    assert_eq!(d29.utc_offsets, Some((3_600, 7_200)));
    assert_eq!(counts(d29), (2, 2, 1, 0, 1, 0));
    assert_eq!(d29.n_day_retention, vec![(1, Some(1.0)), (2, None)]);
}

/// February 2028 (a leap year) in UTC and in Asia/Kolkata (+05:30, no DST).
#[test]
fn february_2028_months() {
    let cfg = config(vec![
        calendar("kolkata", "Asia/Kolkata", CalendarPeriod::Month, 0),
        calendar("utc", "UTC", CalendarPeriod::Month, 0),
    ]);
    let events = vec![
        // Kolkata 01-31 23:59:59.999.
        event(1, "ann", at("2028-01-31T18:29:59.999Z"), Kind::View, None),
        // Kolkata 02-01 00:00.
        event(2, "bob", at("2028-01-31T18:30:00Z"), Kind::View, None),
        // UTC 02-01 00:00.
        event(3, "ann", at("2028-02-01T00:00:00Z"), Kind::View, None),
        // Kolkata 02-29 23:59.
        event(
            4,
            "cat",
            at("2028-02-29T18:29:00Z"),
            Kind::Purchase(3.0),
            None,
        ),
        // Kolkata 03-01 00:00.
        event(5, "dan", at("2028-02-29T18:30:00Z"), Kind::View, None),
        // UTC 03-01 00:00: end of input closes UTC February.
        event(6, "ann", at("2028-03-01T00:00:00Z"), Kind::View, None),
    ];
    let rows = check_ok(&cfg, &events);

    let jan = find(&rows, "utc|", at("2028-02-01T00:00:00Z"));
    assert_eq!(jan.start, at("2028-01-01T00:00:00Z"));
    assert_eq!(counts(jan), (2, 2, 0, 0, 2, 0));
    let feb = find(&rows, "utc|", at("2028-03-01T00:00:00Z"));
    assert_eq!(feb.start, at("2028-02-01T00:00:00Z"));
    assert_eq!(feb.end - feb.start, 29 * DAY);
    assert_eq!(feb.utc_offsets, Some((0, 0)));
    assert_eq!(counts(feb), (3, 3, 1, 1, 2, 0), "ann stays, bob leaves");
    assert_eq!((feb.revenue, feb.arpu), (3.0, Some(1.0)));
    assert_eq!(feb.churn_ratio, Some(0.5));

    let kjan = find(&rows, "kolkata|", at("2028-01-31T18:30:00Z"));
    assert_eq!(kjan.start, at("2027-12-31T18:30:00Z"));
    assert_eq!(kjan.utc_offsets, Some((19_800, 19_800)));
    assert_eq!(counts(kjan), (1, 1, 0, 0, 1, 0));
    let kfeb = find(&rows, "kolkata|", at("2028-02-29T18:30:00Z"));
    assert_eq!(kfeb.start, at("2028-01-31T18:30:00Z"));
    assert_eq!(kfeb.end - kfeb.start, 29 * DAY);
    assert_eq!(counts(kfeb), (3, 3, 1, 0, 2, 0), "ann stays; bob, cat new");
    let all_users = rows.iter().filter(|r| r.key.ends_with('|')).count();
    assert_eq!(all_users, 4, "March is open in both zones");
}

// ---------------------------------------------------------------------------------------------
// Engine bugs found by this test (docs/semantics.md, "Calendar windows"): these fail until fixed.
// ---------------------------------------------------------------------------------------------

/// "n_day_retention_ratio{n} = of the users first seen on local day D − n, the share active on
/// day D". ann is first seen on Monday 2026-03-02 and back on Thursday 03-05, three local days
/// later, so the 3-day retention of the 5th is 1/1. Nothing happens in between (72 hours), which
/// is longer than the engine's horizon with only a day window (2 × 25 h): the engine jumps the
/// quiet stretch, `restart_ranges` clears the calendar's day history, and the cohort of the 2nd
/// reads as empty (None).
#[test]
fn n_day_retention_survives_a_quiet_stretch() {
    let mut cfg = config(vec![calendar(
        "day",
        "Europe/Berlin",
        CalendarPeriod::Day,
        0,
    )]);
    cfg.n_day_retention = vec![3];
    let events = vec![
        event(1, "ann", at("2026-03-02T09:00:00Z"), Kind::View, None),
        event(2, "ann", at("2026-03-05T09:00:00Z"), Kind::View, None),
        // Closes the 5th.
        event(3, "bob", at("2026-03-06T09:00:00Z"), Kind::View, None),
    ];
    let rows = engine_rows(&cfg, &replay(&cfg, &events));
    let d5 = find(&rows, "day|", at("2026-03-05T23:00:00Z"));
    assert_eq!(
        d5.n_day_retention,
        vec![(3, Some(1.0))],
        "ann first seen 3 days before"
    );
    check_ok(&cfg, &events);
}

/// N-day retention is documented for every `day` window, independent of `lifecycle.enabled`;
/// with lifecycle KPIs off the engine still publishes the entries but always as `None`: the
/// cohort size is read from the all-users `new_users` count, which is only kept with lifecycle
/// KPIs on.
#[test]
fn n_day_retention_without_lifecycle_kpis() {
    let mut cfg = config(vec![calendar(
        "day",
        "Europe/Berlin",
        CalendarPeriod::Day,
        0,
    )]);
    cfg.lifecycle = false;
    cfg.n_day_retention = vec![1];
    let events = vec![
        event(1, "ann", at("2026-03-02T09:00:00Z"), Kind::View, None),
        event(2, "ann", at("2026-03-03T09:00:00Z"), Kind::View, None),
        // Closes the 3rd.
        event(3, "bob", at("2026-03-04T09:00:00Z"), Kind::View, None),
    ];
    let rows = engine_rows(&cfg, &replay(&cfg, &events));
    let d3 = find(&rows, "day|", at("2026-03-03T23:00:00Z"));
    assert_eq!(
        d3.n_day_retention,
        vec![(1, Some(1.0))],
        "ann first seen the day before"
    );
}
