//! The engine in sketch mode (`distinct = "sketch"`).
//!
//! * Against the truth computed from the generator (a naive set per period), at 100 k and 1 M
//!   distinct users with a fixed seed: active users within 3 × the merged-HLL RSE
//!   (3 × 1.04/√k = 4.87 %, k = 4096) and the retention ratio within 3 binomial standard errors
//!   of the Theta sample (`3·√(r(1 − r)/m)`, m ≈ k·|P|/max(|P|, |C|) ≈ 2.3 points at r = 0.4).
//! * Against exact mode on a realistic mixed stream (whose exact KPIs the model test checks):
//!   every KPI that does not count distinct users is identical, distinct counts stay within
//!   the same bounds, lifecycle KPIs appear on lifecycle-grain instances only.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use engauge_core::sketch::{DEFAULT_LG_K, DistinctSketch, hll_rse};
use engauge_core::time::{DAY, HOUR, MINUTE};
use engauge_core::{
    CalendarPeriod, CalendarSpec, DistinctMode, Engine, EngineConfig, Event, EventKind, Replay,
    Snapshot, Survey, WindowSpec,
};

const K: f64 = (1u32 << DEFAULT_LG_K) as f64;
const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event<'a>(id: &'a str, user: &'a str, ts: i64, kind: EventKind<'a>) -> Event<'a> {
    let event_type = match &kind {
        EventKind::FeatureUsed { .. } => "feature_used",
        EventKind::Purchase { .. } => "purchase",
        EventKind::Refund { .. } => "refund",
        EventKind::SurveyResponse { .. } => "survey_response",
        EventKind::SubscriptionCancelled => "subscription_cancelled",
        EventKind::SupportTicket => "support_ticket",
        EventKind::SelfServiceResolved => "self_service_resolved",
        _ => "page_view",
    };
    Event {
        id: Cow::Borrowed(id),
        event_type: Cow::Borrowed(event_type),
        user_id: Cow::Borrowed(user),
        ts,
        session_id: None,
        attrs: Default::default(),
        kind,
    }
}

/// Whether user `u` is active on day `d`: day 0 everyone with probability 0.6, then each day
/// with probability 0.4 (so about 40 % of one day's users come back the next).
fn active_on(seed: u64, u: u64, d: u64) -> bool {
    mix(seed ^ (u << 8) ^ d) % 100 < if d == 0 { 60 } else { 40 }
}

/// One event per active (user, day), at a pseudo-random time of the day, in time order.
fn events_for(seed: u64, users: u64, days: u64) -> Vec<(i64, u64)> {
    let mut out = Vec::new();
    for d in 0..days {
        let mut day: Vec<(i64, u64)> = (0..users)
            .filter(|&u| active_on(seed, u, d))
            .map(|u| {
                let offset = (mix(seed ^ 0xabcd ^ (u << 8) ^ d) % (DAY as u64 - 1)) as i64;
                (START + d as i64 * DAY + offset, u)
            })
            .collect();
        day.sort_unstable();
        out.extend(day);
    }
    out
}

fn sketch_config(windows: Vec<WindowSpec>) -> EngineConfig {
    EngineConfig {
        windows,
        distinct: DistinctMode::Sketch,
        segments: engauge_core::SegmentsConfig {
            dimensions: vec![],
            sets: vec![],
            max_values: 20,
        },
        ..EngineConfig::default()
    }
}

fn run(config: EngineConfig, events: &[(i64, u64)], end: i64) -> Vec<Snapshot> {
    let mut replay = Replay::new(Engine::new(config).expect("valid config"));
    let mut out = Vec::new();
    for (i, &(ts, u)) in events.iter().enumerate() {
        let id = format!("e{i}");
        let user = format!("user-{u}");
        replay.push(&event(&id, &user, ts, EventKind::Plain), &mut out);
    }
    replay.advance_to(end, &mut out);
    out
}

/// Checks the daily instances of a `1d`/`1d` window and a calendar day window against the
/// truth: per day, the set of active users.
fn accuracy_at(users: u64, seed: u64) {
    let days = 4;
    let events = events_for(seed, users, days);
    let snaps = run(
        sketch_config(vec![
            WindowSpec::new("1d", DAY, DAY),
            WindowSpec::calendar("day", CalendarSpec::new(CalendarPeriod::Day, "UTC")),
        ]),
        &events,
        START + (days as i64 + 1) * DAY,
    );
    let truth: Vec<HashSet<u64>> = (0..days)
        .map(|d| (0..users).filter(|&u| active_on(seed, u, d)).collect())
        .collect();
    let active_bound = 3.0 * hll_rse(DEFAULT_LG_K);
    let mut checked = 0;
    for window in ["1d", "day"] {
        for d in 0..days as usize {
            let end = START + (d as i64 + 1) * DAY;
            let s = snaps
                .iter()
                .find(|s| s.window == window && s.end == end)
                .unwrap_or_else(|| panic!("no {window} snapshot ending on day {d}"));
            assert!(s.approximate);
            let c = truth[d].len() as f64;
            let err = s.kpis.active_users as f64 / c - 1.0;
            assert!(
                err.abs() <= active_bound,
                "{window} day {d}: active {} vs {c}: error {err:.4} over {active_bound:.4}",
                s.kpis.active_users
            );
            if d == 0 {
                continue;
            }
            let p = &truth[d - 1];
            let retained = p.intersection(&truth[d]).count() as f64;
            let r = retained / p.len() as f64;
            let m = K * p.len() as f64 / (p.len() as f64).max(c);
            let bound = 3.0 * (r * (1.0 - r) / m).sqrt();
            let got = s
                .kpis
                .retention_ratio
                .expect("retention on a grain instance");
            assert!(
                (got - r).abs() <= bound,
                "{window} day {d}: retention {got:.4} vs {r:.4}, bound {bound:.4}"
            );
            let churn = s.kpis.churn_ratio.expect("churn with retention");
            assert!((got + churn - 1.0).abs() < 1e-9);
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (days as usize - 1));
}

#[test]
fn active_users_and_retention_within_the_bound_at_100k_users() {
    accuracy_at(100_000, 1);
}

#[test]
fn active_users_and_retention_within_the_bound_at_1m_users() {
    accuracy_at(1_000_000, 2);
}

/// A mixed stream: several event kinds, segments, features, sessions, over 9 days.
fn mixed_stream(users: u64, events: usize) -> Vec<(String, String, i64, u8, u64)> {
    let mut rng = Rng(42);
    let span = 9 * DAY;
    (0..events)
        .map(|i| {
            let u = rng.below(users);
            let ts = START + (i as i64) * span / events as i64 + rng.below(90_000) as i64;
            let kind = rng.below(100) as u8;
            (format!("e{i}"), format!("user-{u}"), ts, kind, u)
        })
        .collect()
}

const PLANS: [&str; 3] = ["free", "pro", "team"];
const FEATURES: [&str; 3] = ["export", "search", "share"];

fn replay_mixed(
    distinct: DistinctMode,
    stream: &[(String, String, i64, u8, u64)],
) -> BTreeMap<(String, String, i64), Snapshot> {
    run_mixed(distinct, stream, None)
}

fn mixed_config(distinct: DistinctMode) -> EngineConfig {
    let mut windows = WindowSpec::defaults();
    windows.push(WindowSpec::calendar(
        "day",
        CalendarSpec::new(CalendarPeriod::Day, "Europe/Berlin"),
    ));
    EngineConfig {
        windows,
        distinct,
        ..EngineConfig::default()
    }
}

/// The mixed stream through one engine (`partitions: None`), or split by user over engines in
/// partials mode (scale-out), all advanced to the same watermark, their parts merged per
/// (instance, segment) as the merger does. Images are replaced by their estimates (a union in
/// list mode keeps the same coupons in another order).
fn run_mixed(
    distinct: DistinctMode,
    stream: &[(String, String, i64, u8, u64)],
    partitions: Option<u64>,
) -> BTreeMap<(String, String, i64), Snapshot> {
    let mut config = mixed_config(distinct);
    config.sketch.include_in_snapshots = true;
    let lateness = config.allowed_lateness;
    let mut engines: Vec<Engine> = (0..partitions.unwrap_or(1))
        .map(|_| {
            Engine::new(EngineConfig {
                partials: partitions.is_some(),
                ..config.clone()
            })
            .expect("valid config")
        })
        .collect();
    let mut out = Vec::new();
    let mut max_ts = i64::MIN;
    for (id, user, ts, kind, u) in stream {
        let kind = match kind {
            0..=4 => EventKind::FeatureUsed {
                feature: Cow::Borrowed(FEATURES[(*u % 3) as usize]),
            },
            5 => EventKind::Purchase { amount: 12.5 },
            6 => EventKind::Refund { amount: 2.0 },
            7 => EventKind::SurveyResponse {
                survey: Survey::Nps,
                score: (*u % 11) as i32,
            },
            8 => EventKind::SubscriptionCancelled,
            9 => EventKind::SupportTicket,
            10 => EventKind::SelfServiceResolved,
            _ => EventKind::Plain,
        };
        let mut e = event(id, user, *ts, kind);
        e.attrs = [(
            Cow::Borrowed("plan"),
            Cow::Borrowed(PLANS[(*u % 3) as usize]),
        )]
        .into_iter()
        .collect();
        let n = engines.len() as u64;
        engines[(mix(*u) % n) as usize].ingest(&e);
        max_ts = max_ts.max(*ts);
        for engine in &mut engines {
            engine.advance(max_ts - lateness, &mut out);
        }
    }
    for engine in &mut engines {
        engine.advance(START + 40 * DAY, &mut out);
    }
    let mut merged: BTreeMap<(String, String, i64), (Snapshot, Option<engauge_core::Parts>)> =
        BTreeMap::new();
    for mut s in out {
        let parts = s.parts.take().map(|p| *p);
        match merged.entry((s.window.clone(), s.key(), s.end)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((s, parts));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let mine = o.get_mut().1.as_mut().expect("partials carry parts");
                mine.merge(&parts.expect("partials carry parts"));
            }
        }
    }
    merged
        .into_iter()
        .filter(|(_, (_, parts))| parts.as_ref().is_none_or(|p| p.events() > 0))
        .map(|(k, (mut s, parts))| {
            if let Some(parts) = parts {
                let (kpis, features) = parts.kpis(&config.clv);
                s.kpis = kpis;
                s.features = features;
                if s.active_users_sketch.is_some() {
                    s.active_users_sketch = parts.active_users_image();
                }
            }
            s.active_users_sketch = s.active_users_sketch.map(|image| {
                let sketch = DistinctSketch::deserialize(&image).expect("an HLL image");
                sketch.composite_estimate().to_le_bytes().to_vec()
            });
            (k, s)
        })
        .collect()
}

/// Scale-out in sketch mode: 30 000 users (HLL registers dense, Theta sets sampling) split by
/// user over 3 and 4 engines; the merged sketches give the single engine's estimates exactly,
/// for every window, segment and KPI, n-day retention included.
#[test]
fn sketch_partials_of_partitions_merge_to_the_single_engine() {
    let stream = mixed_stream(USERS, 120_000);
    let single = run_mixed(DistinctMode::Sketch, &stream, None);
    assert!(
        single
            .values()
            .any(|s| s.kpis.active_users > 4096 && s.kpis.retained_users > 0),
        "large enough for dense HLLs and sampling Theta sets"
    );
    assert!(
        single.values().any(|s| s
            .kpis
            .n_day_retention
            .iter()
            .any(|(n, r)| *n == 7 && r.is_some())),
        "n-day retention is exercised"
    );
    for partitions in [3, 4] {
        let merged = run_mixed(DistinctMode::Sketch, &stream, Some(partitions));
        assert_eq!(
            single.keys().collect::<Vec<_>>(),
            merged.keys().collect::<Vec<_>>(),
            "{partitions} partitions: the same instances and segments"
        );
        for (key, s) in &single {
            assert_eq!(&merged[key], s, "{partitions} partitions: {key:?}");
        }
    }
}

const USERS: u64 = 30_000;

/// Within 3 merged-HLL standard errors, plus one user of rounding.
fn close_enough(sketch: u64, exact: u64) -> bool {
    let bound = 3.0 * hll_rse(DEFAULT_LG_K) * exact as f64 + 1.0;
    (sketch as f64 - exact as f64).abs() <= bound
}

#[test]
fn sketch_mode_agrees_with_exact_mode() {
    let stream = mixed_stream(USERS, 200_000);
    let exact = replay_mixed(DistinctMode::Exact, &stream);
    let sketch = replay_mixed(DistinctMode::Sketch, &stream);
    assert_eq!(
        exact.keys().collect::<Vec<_>>(),
        sketch.keys().collect::<Vec<_>>(),
        "the same instances and segments close"
    );
    let mut lifecycle_instances = 0;
    let mut checked_n_day = 0;
    for (key, e) in &exact {
        let s = &sketch[key];
        let (ek, sk) = (&e.kpis, &s.kpis);
        assert!(s.approximate && !e.approximate);
        // Everything that is not a distinct count is identical.
        assert_eq!(ek.events, sk.events, "{key:?}");
        assert_eq!(ek.sessions, sk.sessions, "{key:?}");
        assert_eq!(ek.session_duration, sk.session_duration, "{key:?}");
        assert_eq!(ek.survey_responses, sk.survey_responses, "{key:?}");
        assert_eq!((ek.nps, ek.csat_ratio), (sk.nps, sk.csat_ratio), "{key:?}");
        assert_eq!(
            (ek.revenue, ek.orders, ek.aov),
            (sk.revenue, sk.orders, sk.aov)
        );
        assert_eq!(ek.cancellations, sk.cancellations, "{key:?}");
        assert_eq!(
            (ek.support_tickets, ek.self_service_resolutions),
            (sk.support_tickets, sk.self_service_resolutions)
        );
        // Distinct counts within the bound.
        for (what, a, b) in [
            ("active", ek.active_users, sk.active_users),
            ("paying", ek.paying_users, sk.paying_users),
            ("cancelled", ek.cancelled_users, sk.cancelled_users),
        ] {
            assert!(close_enough(b, a), "{key:?} {what}: sketch {b}, exact {a}");
        }
        assert_eq!(
            e.features.iter().map(|f| &f.0).collect::<Vec<_>>(),
            s.features.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{key:?}"
        );
        for ((_, ef), (_, sf)) in e.features.iter().zip(&s.features) {
            assert!(
                close_enough(sf.users, ef.users),
                "{key:?}: {sf:?} vs {ef:?}"
            );
        }
        if let (Some(a), Some(b)) = (ek.stickiness_ratio, sk.stickiness_ratio) {
            assert!(
                (a - b).abs() <= 0.1 * a + 0.01,
                "{key:?}: stickiness {b} vs {a}"
            );
        }
        assert_eq!(ek.stickiness_ratio.is_some(), sk.stickiness_ratio.is_some());
        // Lifecycle: on grain instances (a day for windows of a day or more, the length below).
        let grain = match key.0.as_str() {
            "1h" => HOUR,
            _ => DAY,
        };
        let on_grain = key.0 == "day" || key.2 % grain == 0;
        assert_eq!(sk.lifecycle_skipped, !on_grain, "{key:?}");
        if on_grain {
            lifecycle_instances += 1;
            let previous = ek.retained_users + ek.churned_users;
            if let (Some(a), Some(b)) = (ek.retention_ratio, sk.retention_ratio) {
                let m = (K.min(previous as f64)).max(1.0);
                let bound = 3.0 * (a * (1.0 - a) / m).sqrt() + 1.0 / m;
                assert!(
                    (a - b).abs() <= bound,
                    "{key:?}: retention {b} vs {a} ± {bound}"
                );
            }
            assert_eq!(
                ek.retention_ratio.is_some(),
                sk.retention_ratio.is_some(),
                "{key:?}"
            );
            // New users: the current period minus everyone seen before it, estimated from the
            // users of C among a sample at θ ≈ k/|seen before| (at most all USERS): standard
            // error √(new·|seen|/k); small counts are Poisson-like in the sample, so the bound
            // adds three sampled users (3/θ).
            let inv_theta = USERS as f64 / K;
            let bound = 3.0 * (ek.new_users as f64 * inv_theta).sqrt() + 3.0 * inv_theta + 1.0;
            assert!(
                (sk.new_users as f64 - ek.new_users as f64).abs() <= bound,
                "{key:?}: new {} vs {}",
                sk.new_users,
                ek.new_users
            );
        } else {
            assert_eq!(sk.retention_ratio, None);
        }
        if key.0 == "day" && s.segment.is_empty() {
            assert_eq!(
                ek.n_day_retention.iter().map(|r| r.0).collect::<Vec<_>>(),
                sk.n_day_retention.iter().map(|r| r.0).collect::<Vec<_>>()
            );
            for (a, b) in ek.n_day_retention.iter().zip(&sk.n_day_retention) {
                assert_eq!(a.1.is_some(), b.1.is_some(), "{key:?}: {a:?} vs {b:?}");
                // The cohort of the first day is everyone seen then (a sample of about k); later
                // cohorts are small samples of first-seen users, with errors to match.
                if let (Some(x), Some(y)) = (a.1, b.1)
                    && key.2 - i64::from(a.0) * DAY <= START + DAY
                {
                    checked_n_day += 1;
                    assert!((x - y).abs() <= 0.05, "{key:?}: {a:?} vs {b:?}");
                }
            }
        }
    }
    assert!(lifecycle_instances > 50, "{lifecycle_instances}");
    assert!(checked_n_day >= 1, "{checked_n_day}");
    assert!(sketch.len() > 1000);
}

#[test]
fn snapshots_carry_the_active_users_sketch_on_request() {
    let stream = events_for(5, 5_000, 2);
    let mut config = sketch_config(vec![WindowSpec::new("1d", DAY, HOUR)]);
    config.sketch.include_in_snapshots = true;
    let snaps = run(config, &stream, START + 3 * DAY);
    assert!(!snaps.is_empty());
    for s in &snaps {
        let image = s.active_users_sketch.as_ref().expect("an image");
        let sketch = DistinctSketch::deserialize(image).expect("a valid HLL image");
        assert_eq!(
            sketch.composite_estimate().round() as u64,
            s.kpis.active_users
        );
    }
    // Exact windows in the same engine carry none.
    let mut config = sketch_config(vec![WindowSpec::new("1d", DAY, HOUR), {
        let mut w = WindowSpec::new("1h", HOUR, MINUTE);
        w.distinct = Some(DistinctMode::Exact);
        w
    }]);
    config.sketch.include_in_snapshots = true;
    let snaps = run(config, &stream, START + 3 * DAY);
    assert!(snaps.iter().any(|s| s.window == "1h"));
    for s in &snaps {
        assert_eq!(s.approximate, s.window == "1d");
        assert_eq!(s.active_users_sketch.is_some(), s.window == "1d");
    }
}

/// With few users the sketches hold every user (HLL keeps exact coupons below k/8 users, Theta
/// is exact below k), so sketch mode must give exactly the distinct counts of exact mode —
/// through late events, a quiet stretch of 74 days (longer than the 60-day horizon, so the
/// engine jumps it) and the spring DST change of a calendar day
/// that takes its users from hourly blocks (Europe/Berlin) and one that keeps its own (UTC week).
#[test]
fn with_few_users_sketch_mode_equals_exact_mode_through_late_events_gaps_and_dst() {
    let mut rng = Rng(9);
    let start = 1_774_483_200_000; // 2026-03-26T00:00:00Z; Berlin springs forward on 03-29
    let mut stream: Vec<(i64, u64, u8)> = Vec::new();
    for day in (0..6).chain(80..83) {
        let day_start = start + day * DAY;
        // Users 0..150 arrive in order (small jitter within the lateness).
        for _ in 0..600 {
            let ts = day_start + rng.below(DAY as u64) as i64;
            stream.push((ts, rng.below(150), rng.below(20) as u8));
        }
        // Users 150..200 have at most one event a day, which arrives 20–60 minutes late.
        for u in 150..200 {
            if rng.below(2) == 0 {
                let ts = day_start + rng.below(DAY as u64 - 2 * HOUR as u64) as i64;
                let delay = (20 + rng.below(40) as i64) * MINUTE;
                stream.push((ts + delay, u, 100)); // arrival time sorts it; 100 marks "late"
            }
        }
    }
    stream.sort_unstable_by_key(|&(arrival, _, _)| arrival);
    // `sketched`: windows that count with sketches whatever `distinct` says.
    let run_mode = |distinct: DistinctMode, sketched: &[&str]| {
        let mut windows = WindowSpec::defaults();
        windows.push(WindowSpec::calendar(
            "day",
            CalendarSpec::new(CalendarPeriod::Day, "Europe/Berlin"),
        ));
        windows.push(WindowSpec::calendar(
            "week",
            CalendarSpec::new(CalendarPeriod::Week, "UTC"),
        ));
        for w in &mut windows {
            if sketched.contains(&w.name.as_str()) {
                w.distinct = Some(DistinctMode::Sketch);
            }
        }
        let config = EngineConfig {
            windows,
            distinct,
            n_day_retention: vec![1, 2],
            ..EngineConfig::default()
        };
        let mut replay = Replay::new(Engine::new(config).expect("valid config"));
        let mut out = Vec::new();
        let mut late = 0;
        for (i, &(arrival, u, kind)) in stream.iter().enumerate() {
            let (id, user) = (format!("e{i}"), format!("user-{u}"));
            let ts = if kind == 100 {
                // Event time before its arrival.
                arrival - (20 + (u % 40) as i64) * MINUTE
            } else {
                arrival
            };
            let kind = match kind {
                0 => EventKind::Purchase { amount: 3.0 },
                1 => EventKind::FeatureUsed {
                    feature: Cow::Borrowed(FEATURES[(u % 3) as usize]),
                },
                2 => EventKind::SubscriptionCancelled,
                _ => EventKind::Plain,
            };
            let mut e = event(&id, &user, ts, kind);
            e.attrs = [(
                Cow::Borrowed("plan"),
                Cow::Borrowed(PLANS[(u % 3) as usize]),
            )]
            .into_iter()
            .collect();
            if replay.push(&e, &mut out) == engauge_core::Ingested::Late {
                late += 1;
            }
        }
        replay.advance_to(start + 120 * DAY, &mut out);
        (out, late)
    };
    let (exact, late_exact) = run_mode(DistinctMode::Exact, &[]);
    let (sketch, late_sketch) = run_mode(DistinctMode::Sketch, &[]);
    assert_eq!(late_exact, late_sketch);
    assert!(late_exact > 50, "{late_exact} late events");
    assert_eq!(exact.len(), sketch.len());
    let mut lifecycle_checked = 0;
    for (e, s) in exact.iter().zip(&sketch) {
        let key = (&e.window, e.key(), e.end);
        assert_eq!(key, (&s.window, s.key(), s.end));
        let (ek, sk) = (&e.kpis, &s.kpis);
        assert_eq!(
            (
                ek.active_users,
                ek.paying_users,
                ek.cancelled_users,
                ek.sessions
            ),
            (
                sk.active_users,
                sk.paying_users,
                sk.cancelled_users,
                sk.sessions
            ),
            "{key:?}"
        );
        assert_eq!(e.features, s.features, "{key:?}");
        assert_eq!(ek.stickiness_ratio, sk.stickiness_ratio, "{key:?}");
        if !sk.lifecycle_skipped {
            lifecycle_checked += 1;
            assert_eq!(
                (ek.retained_users, ek.churned_users, ek.new_users),
                (sk.retained_users, sk.churned_users, sk.new_users),
                "{key:?}"
            );
            assert_eq!(ek.retention_ratio, sk.retention_ratio, "{key:?}");
            assert_eq!(ek.n_day_retention, sk.n_day_retention, "{key:?}");
        }
    }
    assert!(lifecycle_checked > 100, "{lifecycle_checked}");
    // The DST day is 23 hours long in both modes.
    let dst = sketch
        .iter()
        .find(|s| s.window == "day" && s.utc_offsets == Some((3600, 7200)))
        .expect("the DST day closes");
    assert_eq!(dst.end - dst.start, 23 * HOUR);

    // Mixed: the 30-day and the calendar day windows count with sketches, the rest exactly.
    // Exact windows are unaffected by their sketch neighbours, and sketch windows give what
    // they give when every window is a sketch window.
    let (mixed, _) = run_mode(DistinctMode::Exact, &["30d", "day"]);
    assert_eq!(mixed.len(), exact.len());
    for ((m, e), s) in mixed.iter().zip(&exact).zip(&sketch) {
        let want = if m.window == "30d" || m.window == "day" {
            s
        } else {
            e
        };
        assert_eq!(m, want, "{} {}", m.window, m.key());
    }
}
