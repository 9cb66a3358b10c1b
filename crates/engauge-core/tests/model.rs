//! Independent reference test: the engine, driven exactly like `engauge replay`, must emit the
//! snapshots a naive brute-force model (tests/model/naive.rs, written from the spec only) expects.

#[path = "model/naive.rs"]
mod naive;

use std::borrow::Cow;
use std::fmt::Write as _;

use engauge_core::time::{DAY, HOUR, MINUTE, SECOND, days_from_civil, format_rfc3339};
use engauge_core::{
    ClvConfig, DurationStats, Engine, EngineConfig, Event, EventKind, FeaturesConfig, Ingested,
    Kpis, Millis, NONE_VALUE, OTHER_VALUE, Replay, SegmentsConfig, Snapshot, Survey, WindowSpec,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

// ---------------------------------------------------------------------------------------------
// Driving the engine like `engauge replay`.
// ---------------------------------------------------------------------------------------------

/// Ingests `arrivals` in order, advancing to `max ts - allowed_lateness` after each event and to
/// `max ts` at the end.
fn replay(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> (Vec<Snapshot>, Vec<Ingested>) {
    replay_with_restores(cfg, arrivals, &[])
}

/// The same through the crate's own [`Replay`] driver, which must behave identically.
fn public_replay(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> (Vec<Snapshot>, Vec<Ingested>) {
    let mut driver = Replay::new(Engine::new(cfg.clone()).expect("test configs are valid"));
    let mut out = Vec::new();
    let ingested = arrivals
        .iter()
        .map(|ev| driver.push(ev, &mut out))
        .collect();
    driver.finish(&mut out);
    (out, ingested)
}

/// [`replay`], except that before the arrivals at each index of `cuts` the engine's state is
/// saved and the run continues on an engine restored from those bytes (a checkpoint and a
/// restart). Sketch windows are not checkpointed: there the run continues on the same engine.
fn replay_with_restores(
    cfg: &EngineConfig,
    arrivals: &[Event<'_>],
    cuts: &[usize],
) -> (Vec<Snapshot>, Vec<Ingested>) {
    let mut engine = Engine::new(cfg.clone()).expect("test configs are valid");
    let mut out = Vec::new();
    let mut ingested = Vec::with_capacity(arrivals.len());
    let mut max_ts: Option<Millis> = None;
    for (i, ev) in arrivals.iter().enumerate() {
        if cuts.contains(&i) {
            match engine.save_state() {
                Ok(bytes) => {
                    engine = Engine::restore(cfg.clone(), &bytes).expect("own state restores");
                    let again = engine.save_state().expect("restored state saves");
                    assert_eq!(
                        again.len(),
                        bytes.len(),
                        "a restored engine saves the same state"
                    );
                }
                Err(engauge_core::StateError::Sketches) => {}
                Err(e) => panic!("cannot save: {e}"),
            }
        }
        ingested.push(engine.ingest(ev));
        let max = max_ts.map_or(ev.ts, |m| m.max(ev.ts));
        max_ts = Some(max);
        engine.advance(max - cfg.allowed_lateness, &mut out);
    }
    if let Some(max) = max_ts {
        engine.advance(max, &mut out);
    }
    (out, ingested)
}

/// Scale-out in miniature: each event goes to engine `hash(user) % partitions` (input keyed by
/// user), every engine in partials mode advances with the single run's watermark, and the
/// partials of each (window instance, segment) are added up as the merger does.
fn merged_partials(cfg: &EngineConfig, arrivals: &[Event<'_>], partitions: usize) -> Vec<Snapshot> {
    let mut pcfg = cfg.clone();
    pcfg.partials = true;
    let mut engines: Vec<Engine> = (0..partitions)
        .map(|_| Engine::new(pcfg.clone()).expect("test configs are valid"))
        .collect();
    let mut out = Vec::new();
    let mut max_ts: Option<Millis> = None;
    let advance = |engines: &mut Vec<Engine>, wm: Millis, out: &mut Vec<Snapshot>| {
        for engine in engines.iter_mut() {
            engine.advance(wm, out);
        }
    };
    for ev in arrivals {
        let hash = ev.user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        engines[(hash % partitions as u64) as usize].ingest(ev);
        let max = max_ts.map_or(ev.ts, |m| m.max(ev.ts));
        max_ts = Some(max);
        advance(&mut engines, max - cfg.allowed_lateness, &mut out);
    }
    if let Some(max) = max_ts {
        advance(&mut engines, max, &mut out);
    }
    let mut groups: std::collections::BTreeMap<String, (Snapshot, engauge_core::Parts)> =
        std::collections::BTreeMap::new();
    for mut snap in out {
        let parts = *snap.parts.take().expect("partials mode carries parts");
        match groups.entry(id_of(&snap)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((snap, parts));
            }
            std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().1.merge(&parts),
        }
    }
    groups
        .into_values()
        .filter(|(_, parts)| parts.events() > 0)
        .map(|(mut snap, parts)| {
            let (kpis, features) = parts.kpis(&cfg.clv);
            snap.kpis = kpis;
            snap.features = features;
            if snap.active_users_sketch.is_some() {
                snap.active_users_sketch = parts.active_users_image();
            }
            snap
        })
        .collect()
}

/// What differs between a single engine's snapshots and merged ones: instances missing,
/// extra, and the first that differs.
fn merge_diff(
    expected: &std::collections::BTreeMap<String, Snapshot>,
    actual: &std::collections::BTreeMap<String, Snapshot>,
) -> String {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let differ: Vec<String> = expected
        .iter()
        .filter_map(|(k, e)| Some((k, e, actual.get(k)?)))
        .filter(|(_, e, a)| a != e)
        .take(1)
        .map(|(k, e, a)| format!("{k}:\n  single {e:?}\n  merged {a:?}"))
        .collect();
    format!("missing {missing:?} extra {extra:?} {differ:?}")
}

/// Snapshots by identity (window, end, segment), for comparisons that ignore emission order.
fn by_id(snaps: Vec<Snapshot>) -> std::collections::BTreeMap<String, Snapshot> {
    snaps.into_iter().map(|s| (id_of(&s), s)).collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison with a readable diff.
// ---------------------------------------------------------------------------------------------

fn close_rel(actual: f64, expected: f64, rel: f64) -> bool {
    actual == expected
        || (actual - expected).abs() <= rel * expected.abs().max(actual.abs()) + 1e-12
}

fn opt_close(actual: Option<f64>, expected: Option<f64>, rel: f64) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(a), Some(e)) => a.is_finite() && close_rel(a, e, rel),
        _ => false,
    }
}

/// Money (revenue, AOV, ARPU, ARPPU, CLV): relative 1e-9 plus absolute 1e-6.
fn money_close(actual: f64, expected: f64) -> bool {
    actual == expected
        || (actual.is_finite()
            && (actual - expected).abs() <= 1e-9 * expected.abs().max(actual.abs()) + 1e-6)
}

fn opt_money_close(actual: Option<f64>, expected: Option<f64>) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(a), Some(e)) => money_close(a, e),
        _ => false,
    }
}

/// Quantiles: within 1 % of the true nearest-rank value (exact when it is 0).
fn quantile_close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 0.01 * expected.abs() + 1e-9
}

fn kpi_diffs(a: &Kpis, e: &Kpis) -> Vec<String> {
    let mut d = Vec::new();
    let mut check = |ok: bool, name: &str, got: String, want: String| {
        if !ok {
            d.push(format!("{name}: engine {got}, model {want}"));
        }
    };
    check(
        a.active_users == e.active_users,
        "active_users",
        a.active_users.to_string(),
        e.active_users.to_string(),
    );
    check(
        a.events == e.events,
        "events",
        a.events.to_string(),
        e.events.to_string(),
    );
    check(
        opt_close(a.stickiness_ratio, e.stickiness_ratio, 1e-9),
        "stickiness_ratio",
        format!("{:?}", a.stickiness_ratio),
        format!("{:?}", e.stickiness_ratio),
    );
    check(
        a.sessions == e.sessions,
        "sessions",
        a.sessions.to_string(),
        e.sessions.to_string(),
    );
    check(
        opt_close(a.sessions_per_user, e.sessions_per_user, 1e-9),
        "sessions_per_user",
        format!("{:?}", a.sessions_per_user),
        format!("{:?}", e.sessions_per_user),
    );
    let durations_ok = match (&a.session_duration, &e.session_duration) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            quantile_close(x.p50, y.p50)
                && quantile_close(x.p90, y.p90)
                && quantile_close(x.p99, y.p99)
                && close_rel(x.mean, y.mean, 1e-9)
        }
        _ => false,
    };
    check(
        durations_ok,
        "session_duration_seconds",
        format!("{:?}", a.session_duration),
        format!("{:?}", e.session_duration),
    );
    check(
        a.survey_responses == e.survey_responses,
        "survey_responses",
        format!("{:?}", a.survey_responses),
        format!("{:?}", e.survey_responses),
    );
    for (name, x, y) in [
        ("nps", a.nps, e.nps),
        ("nps_margin", a.nps_margin, e.nps_margin),
        ("csat_ratio", a.csat_ratio, e.csat_ratio),
        ("csat_margin", a.csat_margin, e.csat_margin),
        ("ces_score", a.ces_score, e.ces_score),
    ] {
        check(
            opt_close(x, y, 1e-9),
            name,
            format!("{x:?}"),
            format!("{y:?}"),
        );
    }
    for (name, x, y) in [
        ("retained_users", a.retained_users, e.retained_users),
        ("churned_users", a.churned_users, e.churned_users),
        ("new_users", a.new_users, e.new_users),
        (
            "resurrected_users",
            a.resurrected_users,
            e.resurrected_users,
        ),
        ("orders", a.orders, e.orders),
        ("paying_users", a.paying_users, e.paying_users),
        ("cancellations", a.cancellations, e.cancellations),
        ("cancelled_users", a.cancelled_users, e.cancelled_users),
        ("support_tickets", a.support_tickets, e.support_tickets),
        (
            "self_service_resolutions",
            a.self_service_resolutions,
            e.self_service_resolutions,
        ),
    ] {
        check(x == y, name, x.to_string(), y.to_string());
    }
    check(
        a.n_day_retention == e.n_day_retention,
        "n_day_retention",
        format!("{:?}", a.n_day_retention),
        format!("{:?}", e.n_day_retention),
    );
    // Whenever the model's lifecycle counts partition the active users, the engine's must too.
    let partition = |k: &Kpis| k.new_users + k.retained_users + k.resurrected_users;
    check(
        partition(e) != e.active_users || partition(a) == a.active_users,
        "new + retained + resurrected = active_users",
        partition(a).to_string(),
        partition(e).to_string(),
    );
    for (name, x, y) in [
        ("retention_ratio", a.retention_ratio, e.retention_ratio),
        ("churn_ratio", a.churn_ratio, e.churn_ratio),
        ("conversion_ratio", a.conversion_ratio, e.conversion_ratio),
        (
            "self_service_ratio",
            a.self_service_ratio,
            e.self_service_ratio,
        ),
    ] {
        check(
            opt_close(x, y, 1e-9),
            name,
            format!("{x:?}"),
            format!("{y:?}"),
        );
    }
    check(
        money_close(a.revenue, e.revenue),
        "revenue",
        a.revenue.to_string(),
        e.revenue.to_string(),
    );
    for (name, x, y) in [
        ("aov", a.aov, e.aov),
        ("arpu", a.arpu, e.arpu),
        ("arppu", a.arppu, e.arppu),
        ("clv_estimate", a.clv_estimate, e.clv_estimate),
    ] {
        check(
            opt_money_close(x, y),
            name,
            format!("{x:?}"),
            format!("{y:?}"),
        );
    }
    d
}

fn snapshot_diffs(a: &Snapshot, e: &Snapshot) -> Vec<String> {
    let mut d = Vec::new();
    if a.start != e.start {
        d.push(format!(
            "start: engine {}, model {}",
            format_rfc3339(a.start),
            format_rfc3339(e.start)
        ));
    }
    if a.segment != e.segment {
        d.push(format!(
            "segment: engine {:?}, model {:?}",
            a.segment, e.segment
        ));
    }
    if a.watermark != e.watermark {
        d.push(format!(
            "watermark: engine {}, model {}",
            format_rfc3339(a.watermark),
            format_rfc3339(e.watermark)
        ));
    }
    if a.utc_offsets != e.utc_offsets {
        d.push(format!(
            "utc_offsets: engine {:?}, model {:?}",
            a.utc_offsets, e.utc_offsets
        ));
    }
    d.extend(kpi_diffs(&a.kpis, &e.kpis));
    let names = |s: &Snapshot| {
        s.features
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    if names(a) != names(e) {
        d.push(format!(
            "features: engine {:?}, model {:?}",
            a.features, e.features
        ));
    } else {
        for ((name, x), (_, y)) in a.features.iter().zip(&e.features) {
            if x.users != y.users || !opt_close(x.adoption_ratio, y.adoption_ratio, 1e-9) {
                d.push(format!("features[{name}]: engine {x:?}, model {y:?}"));
            }
        }
    }
    d
}

fn id_of(s: &Snapshot) -> String {
    format!("{} {}", format_rfc3339(s.end), s.key())
}

/// `None` when the engine's output equals the model's; otherwise a readable account of the first
/// difference.
fn compare(
    expected: &naive::Expected,
    actual: &[Snapshot],
    ingested: &[Ingested],
) -> Option<String> {
    if ingested != expected.ingested.as_slice() {
        let i = ingested
            .iter()
            .zip(&expected.ingested)
            .position(|(a, e)| a != e)
            .unwrap_or(0);
        return Some(format!(
            "ingest result of arrival #{i}: engine {:?}, model {:?}",
            ingested.get(i),
            expected.ingested.get(i)
        ));
    }
    let exp = &expected.snapshots;
    for i in 0..exp.len().max(actual.len()) {
        match (actual.get(i), exp.get(i)) {
            (Some(a), Some(e)) if a.window == e.window && a.end == e.end && a.key() == e.key() => {
                let d = snapshot_diffs(a, e);
                if !d.is_empty() {
                    return Some(format!(
                        "snapshot #{i} ({}) differs:\n  {}\n engine: {a:?}\n model:  {e:?}",
                        id_of(e),
                        d.join("\n  ")
                    ));
                }
            }
            (a, e) => {
                let mut msg = format!(
                    "snapshot list differs at #{i} (engine emitted {}, model expects {}):\n  \
                     engine: {}\n  model:  {}\n",
                    actual.len(),
                    exp.len(),
                    a.map_or("<none>".into(), id_of),
                    e.map_or("<none>".into(), id_of),
                );
                let from = i.saturating_sub(2);
                let _ = writeln!(msg, " engine list from #{from}:");
                for s in actual.iter().skip(from).take(6) {
                    let _ = writeln!(msg, "    {}", id_of(s));
                }
                let _ = writeln!(msg, " model list from #{from}:");
                for s in exp.iter().skip(from).take(6) {
                    let _ = writeln!(msg, "    {}", id_of(s));
                }
                if let Some(e) = e
                    && let Some(a) = actual.iter().find(|a| a.end == e.end && a.key() == e.key())
                {
                    let _ = writeln!(
                        msg,
                        " (the engine emits {} elsewhere; field diffs: {:?})",
                        id_of(e),
                        snapshot_diffs(a, e)
                    );
                }
                return Some(msg);
            }
        }
    }
    None
}

fn describe(cfg: &EngineConfig, arrivals: &[Event<'_>]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "config: windows {:?}\n  lateness {}ms, gap {}ms, max {}ms, horizon {}ms\n  \
         sets {:?} max_values {} features max {} allowlist {:?}\n  \
         lifecycle {} clv period {}ms gross margin {}",
        cfg.windows
            .iter()
            .map(|w| format!("{}={}ms/{}ms", w.name, w.length, w.slide))
            .collect::<Vec<_>>(),
        cfg.allowed_lateness,
        cfg.session_gap,
        cfg.session_max,
        cfg.dedup_horizon,
        cfg.segments.sets,
        cfg.segments.max_values,
        cfg.features.max_values,
        cfg.features.allowlist,
        cfg.lifecycle,
        cfg.clv.period,
        cfg.clv.gross_margin,
    );
    let _ = writeln!(s, "events in arrival order:");
    for (i, ev) in arrivals.iter().enumerate() {
        let kind = match &ev.kind {
            EventKind::FeatureUsed { feature } => format!(" feature={feature}"),
            EventKind::SurveyResponse { survey, score } => {
                format!(" {}={score}", survey.as_str())
            }
            EventKind::Purchase { amount } | EventKind::Refund { amount } => {
                format!(" amount={amount}")
            }
            _ => String::new(),
        };
        let attrs: Vec<String> = ev.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "  #{i:<3} {:<5} {:<4} {} {}{kind} [{}] sid={:?}",
            ev.id,
            ev.user_id,
            format_rfc3339(ev.ts),
            ev.event_type,
            attrs.join(","),
            ev.session_id,
        );
    }
    s
}

/// Runs engine and model on the same input; panics with a readable diff on any difference.
fn check_engine(cfg: &EngineConfig, arrivals: &[Event<'_>]) {
    let expected = naive::run(cfg, arrivals);
    let (actual, ingested) = replay(cfg, arrivals);
    if let Some(diff) = compare(&expected, &actual, &ingested) {
        panic!("{diff}\n{}", describe(cfg, arrivals));
    }
    assert_eq!(public_replay(cfg, arrivals), (actual, ingested));
}

// ---------------------------------------------------------------------------------------------
// Event construction.
// ---------------------------------------------------------------------------------------------

/// 2026-03-01T00:00:00Z.
fn base() -> Millis {
    days_from_civil(2026, 3, 1) * DAY
}

fn event(
    id: &str,
    user: &str,
    ts: Millis,
    event_type: &str,
    kind: EventKind<'static>,
    attrs: &[(&str, &str)],
    session: Option<&str>,
) -> Event<'static> {
    Event {
        id: Cow::Owned(id.into()),
        event_type: Cow::Owned(event_type.into()),
        user_id: Cow::Owned(user.into()),
        ts,
        session_id: session.map(|s| Cow::Owned(s.into())),
        attrs: attrs
            .iter()
            .map(|(k, v)| (Cow::Owned((*k).into()), Cow::Owned((*v).into())))
            .collect(),
        kind,
    }
}

fn view(id: &str, user: &str, ts: Millis, attrs: &[(&str, &str)]) -> Event<'static> {
    event(id, user, ts, "page_view", EventKind::Plain, attrs, None)
}

fn survey(
    id: &str,
    user: &str,
    ts: Millis,
    which: Survey,
    score: i32,
    attrs: &[(&str, &str)],
) -> Event<'static> {
    event(
        id,
        user,
        ts,
        "survey_response",
        EventKind::SurveyResponse {
            survey: which,
            score,
        },
        attrs,
        None,
    )
}

fn feature(id: &str, user: &str, ts: Millis, name: &str, attrs: &[(&str, &str)]) -> Event<'static> {
    event(
        id,
        user,
        ts,
        "feature_used",
        EventKind::FeatureUsed {
            feature: Cow::Owned(name.into()),
        },
        attrs,
        None,
    )
}

fn config(windows: Vec<WindowSpec>, gap: Millis, max: Millis, lateness: Millis) -> EngineConfig {
    EngineConfig {
        windows,
        allowed_lateness: lateness,
        dedup_horizon: HOUR,
        session_gap: gap,
        session_max: max,
        segments: SegmentsConfig {
            dimensions: vec!["plan".into(), "region".into()],
            sets: vec![vec![], vec!["plan".into()]],
            max_values: 3,
        },
        features: FeaturesConfig {
            max_values: 3,
            allowlist: None,
        },
        ..EngineConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Random scenarios.
// ---------------------------------------------------------------------------------------------

const PLANS: [&str; 5] = ["free", "pro", "team", "biz", "ent"];
const REGIONS: [&str; 4] = ["eu", "us", "apac", "latam"];
const FEATURES: [&str; 4] = ["export", "search", "share", "invite"];

/// One generated event, as raw choices interpreted by [`build`] (0 is always the simplest).
#[derive(Debug, Clone)]
struct EvSpec {
    user: u8,
    delta: u8,
    delta_rand: u32,
    kind: u8,
    detail: u8,
    attrs: u8,
    pick: u8,
    session: u8,
    jitter: u8,
    jitter_rand: u32,
    dup: u8,
    /// The amount of a purchase or refund.
    amount: u32,
}

#[derive(Debug, Clone)]
struct Scenario {
    windows: u8,
    timing: u8,
    max_values: usize,
    feature_max: usize,
    allowlist: bool,
    sets: u8,
    /// Lifecycle and CLV settings (see [`build`]).
    lifecycle: u8,
    n_plans: usize,
    n_regions: usize,
    /// Per user: (home plan choice, home region choice, start offset choice).
    users: Vec<(u8, u8, u32)>,
    base: u8,
    base_rand: u32,
    events: Vec<EvSpec>,
}

fn ev_spec() -> impl Strategy<Value = EvSpec> {
    (
        (
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
        ),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (user, delta, delta_rand, kind, detail),
                (attrs, pick, session, jitter, jr, dup, amount),
            )| {
                EvSpec {
                    user,
                    delta,
                    delta_rand,
                    kind,
                    detail,
                    attrs,
                    pick,
                    session,
                    jitter,
                    jitter_rand: jr,
                    dup,
                    amount,
                }
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    scenario_with(1..=60)
}

/// Scenarios with `events` generated events (before duplicates).
fn scenario_with(events: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Scenario> {
    (
        (
            0u8..4,
            0u8..3,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
            0u8..5,
            0u8..6,
        ),
        (3usize..=5, 2usize..=4),
        prop::collection::vec((any::<u8>(), any::<u8>(), any::<u32>()), 1..=12),
        (0u8..3, any::<u32>()),
        prop::collection::vec(ev_spec(), events),
    )
        .prop_map(
            |(
                (windows, timing, max_values, feature_max, allowlist, sets, lifecycle),
                (n_plans, n_regions),
                users,
                (base, base_rand),
                events,
            )| Scenario {
                windows,
                timing,
                max_values,
                feature_max,
                allowlist,
                sets,
                lifecycle,
                n_plans,
                n_regions,
                users,
                base,
                base_rand,
                events,
            },
        )
}

/// Window presets: minutes; days with a 30-day window; minutes with a 30-day window and names
/// whose order differs from their keys' order (`w` < `w2` but `w2|` < `w|`); one tumbling window.
fn preset_windows(choice: u8) -> (Vec<WindowSpec>, bool) {
    match choice {
        0 => (
            vec![
                WindowSpec::new("10m", 10 * MINUTE, MINUTE),
                WindowSpec::new("1h", HOUR, 5 * MINUTE),
            ],
            false,
        ),
        1 => (
            vec![
                WindowSpec::new("1d", DAY, HOUR),
                WindowSpec::new("30d", 30 * DAY, DAY),
            ],
            true,
        ),
        2 => (
            vec![
                WindowSpec::new("w", 5 * MINUTE, MINUTE),
                WindowSpec::new("w2", 15 * MINUTE, 5 * MINUTE),
                WindowSpec::new("30d", 30 * DAY, DAY),
            ],
            false,
        ),
        _ => (
            vec![WindowSpec::new("tumble", 5 * MINUTE, 5 * MINUTE)],
            false,
        ),
    }
}

fn build(sc: &Scenario) -> (EngineConfig, Vec<Event<'static>>) {
    let (windows, days) = preset_windows(sc.windows);
    // (gap, max, lateness)
    let (gap, max, lateness) = match (days, sc.timing) {
        (true, 0) => (30 * MINUTE, 2 * HOUR, 10 * MINUTE),
        (true, _) => (20 * MINUTE, 20 * MINUTE, 0),
        (false, 0) => (3 * MINUTE, 10 * MINUTE, 2 * MINUTE),
        (false, 1) => (2 * MINUTE, 2 * MINUTE, 0),
        (false, _) => (3 * MINUTE, 7 * MINUTE, MINUTE),
    };
    let set = |dims: &[&str]| dims.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
    let sets = match sc.sets {
        0 => vec![
            set(&[]),
            set(&["plan"]),
            set(&["region"]),
            set(&["plan", "region"]),
        ],
        1 => vec![set(&["plan"])],
        2 => vec![set(&[]), set(&["region", "plan"])],
        3 => vec![set(&[])],
        _ => vec![set(&["region"]), set(&["plan"])],
    };
    let allowlist = sc.allowlist.then(|| {
        ["search", "share"][..sc.feature_max.min(2)]
            .iter()
            .map(|f| (*f).to_owned())
            .collect()
    });
    // The default (CLV on 30-day windows, margin 1), CLV on the shortest or the longest window
    // with another margin, or lifecycle KPIs off.
    let (shortest, longest) = (windows[0].length, windows[windows.len() - 1].length);
    let clv = |period: Millis, gross_margin: f64| ClvConfig {
        period,
        gross_margin,
    };
    let (lifecycle, clv) = match sc.lifecycle {
        0 | 1 => (true, ClvConfig::default()),
        2 => (true, clv(shortest, 0.35)),
        3 => (true, clv(longest, 2.5)),
        4 => (true, clv(shortest, 0.0)),
        _ => (false, clv(shortest, 0.8)),
    };
    let cfg = EngineConfig {
        windows,
        allowed_lateness: lateness,
        dedup_horizon: HOUR,
        session_gap: gap,
        session_max: max,
        segments: SegmentsConfig {
            dimensions: vec!["plan".into(), "region".into()],
            sets,
            max_values: sc.max_values,
        },
        features: FeaturesConfig {
            max_values: sc.feature_max,
            allowlist,
        },
        lifecycle,
        clv,
        ..EngineConfig::default()
    };

    let origin = match sc.base {
        0 => base(),
        1 => base() + Millis::from(sc.base_rand % 86_400) * SECOND,
        _ => base() + Millis::from(sc.base_rand) % DAY,
    };
    // Minute-scale data under a 30-day window must cross midnight to close an instance.
    let origin = if sc.windows == 2 {
        base() - Millis::from(sc.base_rand % 7_200) * SECOND
    } else {
        origin
    };
    let spread = if days { 2 * DAY } else { 20 * MINUTE };
    let plan_of = |c: u8| -> Option<&'static str> {
        let i = usize::from(c) % (sc.n_plans + 1);
        (i < sc.n_plans).then(|| PLANS[i])
    };
    let region_of = |c: u8| -> Option<&'static str> {
        let i = usize::from(c) % (sc.n_regions + 1);
        (i < sc.n_regions).then(|| REGIONS[i])
    };

    let mut clocks: Vec<Option<Millis>> = vec![None; sc.users.len()];
    let mut timeline: Vec<(Millis, Event<'static>)> = Vec::new();
    for (i, e) in sc.events.iter().enumerate() {
        let u = usize::from(e.user) % sc.users.len();
        let (home_plan, home_region, start) = sc.users[u];
        let r = Millis::from(e.delta_rand);
        // A window's length: coming back after it moves a user from C into P.
        let period = cfg.windows[e.delta_rand as usize % cfg.windows.len()].length;
        let delta = match e.delta % 32 {
            0..=7 => (r % ((gap - 1) / SECOND).max(1) + 1) * SECOND,
            8 => 0,
            9 => 1,
            10 => gap - 1,
            11 => gap,
            12 => gap + 1,
            13 => max / 5,
            14 => max / 4,
            15 => 2 * MINUTE,
            16..=18 => gap + r % (3 * max),
            19 => MINUTE,
            20 => 5 * MINUTE,
            21 | 22 => 30 * MINUTE + r % (6 * HOUR),
            23 | 24 if days => 20 * HOUR + r % (3 * DAY),
            25 if days => DAY,
            26 if days => 29 * DAY + r % (2 * DAY),
            23..=26 => gap + r % (4 * gap),
            27 => period,
            28 => period + r % period,
            _ => r % gap,
        };
        let ts = match clocks[u] {
            None => {
                origin
                    + match start % 4 {
                        0 => 0,
                        _ => Millis::from(start) % spread,
                    }
            }
            Some(prev) => prev + delta,
        };
        clocks[u] = Some(ts);

        let mut plan = plan_of(home_plan);
        let mut region = region_of(home_region);
        match e.attrs % 10 {
            7 => plan = plan_of(e.pick),
            8 => plan = None,
            9 => region = region_of(e.pick),
            _ => {}
        }
        let mut attrs: Vec<(&str, &str)> = Vec::new();
        if let Some(p) = plan {
            attrs.push(("plan", p));
        }
        if e.attrs & 0x80 != 0 {
            attrs.push(("platform", if e.pick % 2 == 0 { "ios" } else { "web" }));
        }
        if let Some(r) = region {
            attrs.push(("region", r));
        }
        if e.attrs & 0x40 != 0 {
            attrs.reverse();
        }
        let session = match e.session % 5 {
            3 => Some("a"),
            4 => Some("b"),
            _ => None,
        };
        let id = format!("e{i}");
        let user = format!("u{u}");
        let d = usize::from(e.detail);
        let plain = |event_type: &str, kind: EventKind<'static>| {
            event(&id, &user, ts, event_type, kind, &attrs, session)
        };
        let amount = match e.amount % 8 {
            0 => 0.0,
            1 => 0.01,
            2 => 9.99,
            3 => 1234.5,
            _ => f64::from(e.amount / 8 % 1_000_001) / 100.0,
        };
        let ev = match e.kind % 32 {
            0..=9 | 30 | 31 => plain("page_view", EventKind::Plain),
            10 | 11 => plain("action", EventKind::Plain),
            12 => plain("screen_view", EventKind::Plain),
            13 => plain("custom_click", EventKind::Plain),
            14..=17 => plain(
                "feature_used",
                EventKind::FeatureUsed {
                    feature: Cow::Borrowed(FEATURES[d % FEATURES.len()]),
                },
            ),
            18..=20 => {
                let which = Survey::ALL[d % 3];
                let (lo, hi) = cfg.surveys.range(which);
                let score = lo + (d / 3) as i32 % (hi - lo + 1);
                plain(
                    "survey_response",
                    EventKind::SurveyResponse {
                        survey: which,
                        score,
                    },
                )
            }
            21..=24 => plain("purchase", EventKind::Purchase { amount }),
            25 | 26 => plain("refund", EventKind::Refund { amount }),
            27 => plain("subscription_cancelled", EventKind::SubscriptionCancelled),
            28 => plain("support_ticket", EventKind::SupportTicket),
            _ => plain("self_service_resolved", EventKind::SelfServiceResolved),
        };
        let jitter = match e.jitter % 4 {
            0 => 0,
            1 => lateness,
            _ => Millis::from(e.jitter_rand) % (lateness + 1),
        };
        timeline.push((ts + jitter, ev));
    }
    // Arrival order: by ts + jitter with jitter in [0, lateness], so no event is ever late.
    let order: Vec<usize> = {
        let mut idx: Vec<usize> = (0..timeline.len()).collect();
        idx.sort_by_key(|&i| (timeline[i].0, timeline[i].1.ts, i));
        idx
    };
    let mut arrivals: Vec<Event<'static>> = order.iter().map(|&i| timeline[i].1.clone()).collect();

    // Exact duplicates shortly after their originals, never late and well within the horizon.
    let mut dups: Vec<(usize, usize)> = Vec::new(); // (original position, offset)
    for (pos, &i) in order.iter().enumerate() {
        let dup = sc.events[i].dup;
        if dup % 8 == 7 {
            dups.push((pos, 1 + usize::from(dup / 8) % 4));
        }
    }
    for &(orig_pos, offset) in dups.iter().rev() {
        let copy = arrivals[orig_pos].clone();
        let mut at = (orig_pos + offset).min(arrivals.len());
        let max_before = arrivals[..at].iter().map(|e| e.ts).max().unwrap_or(copy.ts);
        if copy.ts < max_before - lateness || max_before - copy.ts > HOUR / 2 {
            at = orig_pos + 1;
        }
        arrivals.insert(at, copy);
    }
    (cfg, arrivals)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// The property: engine output == naive model, snapshot for snapshot, field for field.
    #[test]
    fn engine_matches_naive_model(sc in scenario()) {
        let (cfg, arrivals) = build(&sc);
        let expected = naive::run(&cfg, &arrivals);
        let (actual, ingested) = replay(&cfg, &arrivals);
        let diff = compare(&expected, &actual, &ingested);
        prop_assert!(diff.is_none(), "{}\n{}", diff.unwrap_or_default(), describe(&cfg, &arrivals));
        prop_assert_eq!(public_replay(&cfg, &arrivals), (actual, ingested), "Replay differs");
    }

    /// Checkpoints: saving the state at any points and continuing on restored engines gives the
    /// uninterrupted run's output exactly.
    #[test]
    fn restored_engine_continues_exactly(
        sc in scenario(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 1..4),
    ) {
        let (cfg, arrivals) = build(&sc);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(arrivals.len().max(1))).collect();
        let expected = replay(&cfg, &arrivals);
        let actual = replay_with_restores(&cfg, &arrivals, &cuts);
        prop_assert!(actual == expected, "restored run differs (cuts {:?})\n{}", cuts, describe(&cfg, &arrivals));
    }

    /// Scale-out: the events split by user over 1–4 engines in partials mode, their partials
    /// merged per (instance, segment), give exactly the single engine's snapshots — sketch
    /// windows too (unions of the partitions' sketches are the single engine's unions).
    #[test]
    fn partials_merge_to_the_single_engine(sc in scenario(), partitions in 1usize..=4) {
        let (cfg, arrivals) = build(&sc);
        // Value caps name the first values each engine sees; with overflow, which values get
        // named depends on the split (documented for scale-out). Caps high enough never bind.
        let mut cfg = cfg;
        cfg.segments.max_values = 1000;
        cfg.features.max_values = 1000;
        let expected = by_id(replay(&cfg, &arrivals).0);
        let actual = by_id(merged_partials(&cfg, &arrivals, partitions));
        prop_assert!(actual == expected, "merged partials differ ({} partitions): {}\n{}", partitions, merge_diff(&expected, &actual), describe(&cfg, &arrivals));
    }


    /// The same in sketch mode (every window a sketch window, plus calendar day and week
    /// windows with n-day retention): the merged unions give the single engine's estimates,
    /// and the active-users image when snapshots carry it.
    #[test]
    fn sketch_partials_merge_to_the_single_engine(
        sc in scenario(),
        partitions in 1usize..=4,
        images in any::<bool>(),
    ) {
        let (mut cfg, arrivals) = build(&sc);
        cfg.distinct = engauge_core::DistinctMode::Sketch;
        cfg.sketch.include_in_snapshots = images;
        cfg.segments.max_values = 1000;
        cfg.features.max_values = 1000;
        cfg.windows.push(WindowSpec::calendar(
            "day",
            engauge_core::CalendarSpec::new(engauge_core::CalendarPeriod::Day, "Europe/Berlin"),
        ));
        cfg.windows.push(WindowSpec::calendar(
            "week",
            engauge_core::CalendarSpec::new(engauge_core::CalendarPeriod::Week, "UTC"),
        ));
        cfg.n_day_retention = vec![1, 3];
        prop_assume!(cfg.validate().is_ok());
        // An image in list mode holds the same coupons in another order after a union: compare
        // what it says (its estimate), not its bytes.
        let canonical = |snaps: Vec<Snapshot>| {
            by_id(snaps.into_iter().map(|mut s| {
                s.active_users_sketch = s.active_users_sketch.map(|image| {
                    let sketch = engauge_core::sketch::DistinctSketch::deserialize(&image)
                        .expect("a valid HLL image");
                    sketch.composite_estimate().to_le_bytes().to_vec()
                });
                s
            }).collect())
        };
        let expected = canonical(replay(&cfg, &arrivals).0);
        let actual = canonical(merged_partials(&cfg, &arrivals, partitions));
        prop_assert!(actual == expected, "merged sketch partials differ ({} partitions): {}\n{}", partitions, merge_diff(&expected, &actual), describe(&cfg, &arrivals));
    }

    #[test]
    fn naive_model_is_self_consistent(sc in scenario()) {
        let (cfg, arrivals) = build(&sc);
        let expected = naive::run(&cfg, &arrivals);
        let snaps = &expected.snapshots;
        for all in snaps.iter().filter(|s| s.segment.is_empty()) {
            let same = |s: &&Snapshot| s.window == all.window && s.end == all.end;
            for dims in naive::normalised_sets(&cfg).iter().filter(|d| !d.is_empty()) {
                let parts: Vec<&Snapshot> = snaps
                    .iter()
                    .filter(same)
                    .filter(|s| s.segment.iter().map(|(d, _)| d).eq(dims.iter()))
                    .collect();
                let events: u64 = parts.iter().map(|s| s.kpis.events).sum();
                prop_assert_eq!(events, all.kpis.events);
                let users: u64 = parts.iter().map(|s| s.kpis.active_users).sum();
                prop_assert!(users >= all.kpis.active_users);
                let responses: u64 = parts.iter().map(|s| s.kpis.survey_responses.nps).sum();
                prop_assert_eq!(responses, all.kpis.survey_responses.nps);
                let counts = |k: &Kpis| {
                    [k.orders, k.cancellations, k.support_tickets, k.self_service_resolutions]
                };
                let sums = parts.iter().fold([0; 4], |acc, s| {
                    let c = counts(&s.kpis);
                    [acc[0] + c[0], acc[1] + c[1], acc[2] + c[2], acc[3] + c[3]]
                });
                prop_assert_eq!(sums, counts(&all.kpis));
                let revenue: f64 = parts.iter().map(|s| s.kpis.revenue).sum();
                prop_assert!(money_close(revenue, all.kpis.revenue), "{} != {}", revenue, all.kpis.revenue);
            }
            // churned + retained = |active(P)|, counted here straight from the arrivals.
            let length = all.end - all.start;
            let mut ids = std::collections::HashSet::new();
            let previous: std::collections::BTreeSet<&str> = arrivals
                .iter()
                .filter(|ev| ids.insert(ev.id.as_ref()))
                .filter(|ev| !cfg.non_activity_types.iter().any(|t| t == &ev.event_type))
                .filter(|ev| ev.ts >= all.start - length && ev.ts < all.start)
                .map(|ev| ev.user_id.as_ref())
                .collect();
            if cfg.lifecycle {
                prop_assert_eq!(all.kpis.churned_users + all.kpis.retained_users, previous.len() as u64);
            }
            if let Some(st) = all.kpis.stickiness_ratio {
                prop_assert!((0.0..=1.0).contains(&st));
            }
            if let Some(d) = all.kpis.session_duration {
                prop_assert!(d.p50 <= d.p90 && d.p90 <= d.p99);
                prop_assert!(d.p99 <= cfg.session_max as f64 / 1000.0);
            }
            prop_assert!(all.watermark >= all.end);
            prop_assert_eq!(all.start, all.end - cfg.windows.iter().find(|w| w.name == all.window).map_or(0, |w| w.length));
        }
        for s in snaps {
            let k = &s.kpis;
            let in_previous = k.retained_users + k.churned_users;
            if cfg.lifecycle {
                prop_assert_eq!(k.new_users + k.retained_users + k.resurrected_users, k.active_users);
                prop_assert_eq!(k.retention_ratio.is_some(), in_previous > 0);
                if let (Some(r), Some(c)) = (k.retention_ratio, k.churn_ratio) {
                    prop_assert!(close_rel(r + c, 1.0, 1e-12));
                    prop_assert!(close_rel(r, k.retained_users as f64 / in_previous as f64, 1e-12));
                }
            } else {
                prop_assert_eq!(
                    [k.retained_users, k.churned_users, k.new_users, k.resurrected_users],
                    [0; 4]
                );
                prop_assert_eq!((k.retention_ratio, k.churn_ratio, k.clv_estimate), (None, None, None));
            }
            // Purchases are activity here, so every paying user is active.
            prop_assert!(k.paying_users <= k.active_users && k.paying_users <= k.orders);
            prop_assert_eq!(k.aov.is_some(), k.orders > 0);
            prop_assert!(k.aov.is_none_or(|aov| aov >= 0.0));
            prop_assert!(k.conversion_ratio.is_none_or(|c| (0.0..=1.0).contains(&c)));
            prop_assert!(k.cancelled_users <= k.cancellations);
            prop_assert!(k.self_service_ratio.is_none_or(|r| (0.0..=1.0).contains(&r)));
            let length = s.end - s.start;
            prop_assert!(length == cfg.clv.period || k.clv_estimate.is_none());
        }
        prop_assert!(expected.watermarks.windows(2).all(|w| w[0] <= w[1]));
        for pair in snaps.windows(2) {
            let key = |s: &Snapshot| (s.end, s.window.clone(), s.key());
            prop_assert!(key(&pair[0]) < key(&pair[1]));
        }
    }
}

fn proptest_config_large() -> ProptestConfig {
    ProptestConfig {
        cases: (cases() / 16).max(1),
        ..proptest_config()
    }
}

proptest! {
    #![proptest_config(proptest_config_large())]

    /// Fewer, larger cases: hundreds of sessions per instance, so p99 is not simply the longest
    /// session and the quantile sketch's relative error is exercised.
    #[test]
    fn engine_matches_naive_model_many_events(sc in scenario_with(150..=400)) {
        let (cfg, arrivals) = build(&sc);
        let expected = naive::run(&cfg, &arrivals);
        let (actual, ingested) = replay(&cfg, &arrivals);
        let diff = compare(&expected, &actual, &ingested);
        prop_assert!(diff.is_none(), "{}\n{}", diff.unwrap_or_default(), describe(&cfg, &arrivals));
    }
}

/// The generator reaches the cases the property is meant to exercise.
#[test]
fn generator_covers_the_interesting_cases() {
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let (mut other, mut none, mut sticky_below_one, mut dup, mut feature_other) = (0, 0, 0, 0, 0);
    let (mut split_at_gap, mut max_length_session, mut survey_only, mut snapshots) = (0, 0, 0, 0);
    let (mut retained, mut churned, mut new, mut resurrected) = (0, 0, 0, 0);
    let (mut all_four, mut lifecycle_off, mut paying, mut orders, mut refunds) = (0, 0, 0, 0, 0);
    let (mut negative_revenue, mut no_orders, mut clv, mut clv_margin) = (0, 0, 0, 0);
    let (mut cancelled, mut support_mix) = (0, 0);
    for _ in 0..150 {
        let sc = strategy.new_tree(&mut runner).expect("strategy").current();
        let (cfg, arrivals) = build(&sc);
        let expected = naive::run(&cfg, &arrivals);
        dup += expected
            .ingested
            .iter()
            .filter(|i| **i == Ingested::Duplicate)
            .count();
        snapshots += expected.snapshots.len();
        refunds += arrivals
            .iter()
            .filter(|ev| matches!(ev.kind, EventKind::Refund { amount } if amount > 0.0))
            .count();
        for s in &expected.snapshots {
            let k = &s.kpis;
            retained += usize::from(k.retained_users > 0);
            churned += usize::from(k.churned_users > 0);
            new += usize::from(k.new_users > 0);
            resurrected += usize::from(k.resurrected_users > 0);
            all_four += usize::from(
                k.retained_users > 0
                    && k.churned_users > 0
                    && k.new_users > 0
                    && k.resurrected_users > 0,
            );
            lifecycle_off += usize::from(!cfg.lifecycle && k.active_users > 0);
            paying += usize::from(k.paying_users > 0);
            orders += usize::from(k.orders > 1);
            negative_revenue += usize::from(k.revenue < 0.0);
            no_orders += usize::from(k.orders == 0 && k.active_users > 0);
            clv += usize::from(k.clv_estimate.is_some_and(|c| c != 0.0));
            clv_margin += usize::from(
                k.clv_estimate.is_some() && cfg.clv.gross_margin != 1.0 && cfg.clv.period < DAY,
            );
            cancelled += usize::from(k.cancelled_users > 0);
            support_mix += usize::from(k.self_service_ratio.is_some_and(|r| r > 0.0 && r < 1.0));
            other += usize::from(s.segment.iter().any(|(_, v)| v == OTHER_VALUE));
            none += usize::from(s.segment.iter().any(|(_, v)| v == NONE_VALUE));
            sticky_below_one += usize::from(s.kpis.stickiness_ratio.is_some_and(|r| r < 1.0));
            feature_other += usize::from(s.features.iter().any(|(n, _)| &**n == OTHER_VALUE));
            survey_only += usize::from(s.kpis.active_users == 0);
            max_length_session += usize::from(
                s.kpis
                    .session_duration
                    .is_some_and(|d| d.p99 * 1000.0 == cfg.session_max as f64),
            );
        }
        // Per user, consecutive events exactly `session_gap` apart.
        let mut by_user: std::collections::BTreeMap<&str, Vec<Millis>> = Default::default();
        for ev in &arrivals {
            by_user.entry(ev.user_id.as_ref()).or_default().push(ev.ts);
        }
        for times in by_user.values_mut() {
            times.sort_unstable();
            split_at_gap += times
                .windows(2)
                .filter(|w| w[1] - w[0] == cfg.session_gap)
                .count();
        }
    }
    let counts = [
        ("snapshots", snapshots),
        ("__other__ segments", other),
        ("__none__ segments", none),
        ("stickiness < 1", sticky_below_one),
        ("duplicates", dup),
        ("__other__ features", feature_other),
        ("gaps of exactly session_gap", split_at_gap),
        ("sessions of exactly session_max", max_length_session),
        ("segments without active users", survey_only),
        ("retained users", retained),
        ("churned users", churned),
        ("new users", new),
        ("resurrected users", resurrected),
        (
            "retained, churned, new and resurrected users at once",
            all_four,
        ),
        ("active users with lifecycle KPIs off", lifecycle_off),
        ("paying users", paying),
        ("several orders", orders),
        ("refunds", refunds),
        ("negative revenue", negative_revenue),
        ("active users without orders", no_orders),
        ("CLV estimates", clv),
        (
            "CLV estimates with a margin != 1 on a short window",
            clv_margin,
        ),
        ("cancelled users", cancelled),
        ("tickets and self-service resolutions together", support_mix),
    ];
    for (what, n) in counts {
        assert!(n > 0, "generator never produced {what}: {counts:?}");
    }

    // The large scenarios put 100+ sessions in some instances, where p99 is a true rank.
    let strategy = scenario_with(150..=400);
    let mut busiest = 0;
    for _ in 0..8 {
        let sc = strategy.new_tree(&mut runner).expect("strategy").current();
        let (cfg, arrivals) = build(&sc);
        let expected = naive::run(&cfg, &arrivals);
        let most = expected.snapshots.iter().map(|s| s.kpis.sessions).max();
        busiest = busiest.max(most.unwrap_or(0));
    }
    assert!(busiest >= 100, "at most {busiest} sessions in an instance");
}

// ---------------------------------------------------------------------------------------------
// Deterministic scenarios: hand-computed expectations checked against the model, then the
// engine checked against the model.
// ---------------------------------------------------------------------------------------------

/// Hour-aligned start used by the deterministic scenarios.
fn h0() -> Millis {
    base() + 10 * HOUR
}

/// One window `1h` (tumbling, 1h/1h); the final event at `h0 + 1h + 1m` closes `E = h0 + 1h`.
fn hourly(gap: Millis, max: Millis) -> EngineConfig {
    config(
        vec![WindowSpec::new("1h", HOUR, HOUR)],
        gap,
        max,
        2 * MINUTE,
    )
}

fn closer(id: &str) -> Event<'static> {
    view(id, "zz", h0() + HOUR + MINUTE, &[("plan", "pro")])
}

fn find<'s>(snaps: &'s [Snapshot], key: &str) -> &'s Snapshot {
    snaps
        .iter()
        .find(|s| s.key() == key)
        .unwrap_or_else(|| panic!("no snapshot {key} in {snaps:#?}"))
}

/// u1: two events exactly `session_gap` apart (two sessions); u2: `session_gap - 1ms` (one).
fn scenario_gap() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = hourly(3 * MINUTE, 10 * MINUTE);
    let t = h0() + 5 * MINUTE;
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u1", t, &pro),
        view("b", "u2", t, &pro),
        view("c", "u1", t + 3 * MINUTE, &pro),
        view("d", "u2", t + 3 * MINUTE - 1, &pro),
        closer("z"),
    ];
    (cfg, events)
}

/// One user, an event every 2 min from 0 to 12 min: the event at 10 min (= session_max after the
/// start) still continues, the one at 12 min starts a new session.
fn scenario_max() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = hourly(3 * MINUTE, 10 * MINUTE);
    let t = h0() + 5 * MINUTE;
    let mut events: Vec<Event<'static>> = (0..=6)
        .map(|i| {
            view(
                &format!("m{i}"),
                "u1",
                t + i * 2 * MINUTE,
                &[("plan", "pro")],
            )
        })
        .collect();
    events.push(closer("z"));
    (cfg, events)
}

/// plan=pro: activity and one NPS response; plan=free: survey responses only.
fn scenario_surveys() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = hourly(3 * MINUTE, 10 * MINUTE);
    let t = h0() + 5 * MINUTE;
    let events = vec![
        view("a", "u1", t, &[("plan", "pro")]),
        survey("s1", "u1", t + MINUTE, Survey::Nps, 9, &[("plan", "pro")]),
        survey("s2", "u2", t + MINUTE, Survey::Csat, 4, &[("plan", "free")]),
        survey(
            "s3",
            "u3",
            t + 2 * MINUTE,
            Survey::Csat,
            2,
            &[("plan", "free")],
        ),
        survey(
            "s4",
            "u3",
            t + 2 * MINUTE,
            Survey::Ces,
            6,
            &[("plan", "free")],
        ),
        survey(
            "s5",
            "u2",
            t + 3 * MINUTE,
            Survey::Ces,
            3,
            &[("plan", "free")],
        ),
        survey(
            "s6",
            "u2",
            t + 4 * MINUTE,
            Survey::Nps,
            3,
            &[("plan", "free")],
        ),
        survey(
            "s7",
            "u3",
            t + 4 * MINUTE,
            Survey::Nps,
            7,
            &[("plan", "free")],
        ),
        closer("z"),
    ];
    (cfg, events)
}

/// Cap of 2 plan values and 1 feature: arrival order decides, not event time.
fn scenario_cap() -> (EngineConfig, Vec<Event<'static>>) {
    let mut cfg = hourly(3 * MINUTE, 10 * MINUTE);
    cfg.segments.max_values = 2;
    cfg.features.max_values = 1;
    let t = h0() + 30 * MINUTE;
    let events = vec![
        view("a", "u1", t, &[("plan", "pro")]),
        view("b", "u2", t + 10 * SECOND, &[("region", "eu")]), // no plan: __none__, no place
        view("c", "u3", t + 20 * SECOND, &[("plan", "free")]),
        // Earliest event time, but arrives third (within lateness): `team` is __other__.
        view("d", "u4", t - MINUTE, &[("plan", "team")]),
        feature("f1", "u1", t + 30 * SECOND, "export", &[("plan", "pro")]),
        feature("f2", "u3", t + 40 * SECOND, "search", &[("plan", "free")]), // __other__
        feature("f3", "u4", t + 50 * SECOND, "export", &[("plan", "biz")]),  // __other__ plan
        view("e", "u5", t + MINUTE, &[("plan", "pro")]),
        closer("z"),
    ];
    (cfg, events)
}

/// Duplicates (same id, same content) are counted once.
fn scenario_dups() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = hourly(3 * MINUTE, 10 * MINUTE);
    let t = h0() + 30 * MINUTE;
    let a = view("a", "u1", t, &[("plan", "pro")]);
    let b = view("b", "u2", t + MINUTE, &[("plan", "pro")]);
    let events = vec![a.clone(), a.clone(), b.clone(), a, b, closer("z")];
    (cfg, events)
}

/// A 1d and a 30d window over several days: stickiness = DAU / MAU at each day boundary.
fn scenario_stickiness() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = config(
        vec![
            WindowSpec::new("1d", DAY, DAY),
            WindowSpec::new("30d", 30 * DAY, DAY),
        ],
        30 * MINUTE,
        2 * HOUR,
        10 * MINUTE,
    );
    let d0 = base() + 12 * HOUR;
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u1", d0, &pro),
        view("b", "u2", d0 + HOUR, &pro),
        view("c", "u3", d0 + 2 * HOUR, &pro),
        view("d", "u1", d0 + DAY, &pro),
        survey("s", "u4", d0 + DAY + HOUR, Survey::Nps, 10, &pro),
        view("e", "u2", d0 + 3 * DAY, &pro),
    ];
    (cfg, events)
}

/// A session split by `session_max` (by 1 ms) after an earlier session of the segment closed:
/// gap = max = 2 min, no lateness; u1 at 0:08 (closes 0:10), then 0:13, 0:14 and 0:15.001 (the
/// last is 2 min 1 ms after the start, so it starts a new session although the gap is 1 min).
fn scenario_max_after_closed_session() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = config(
        vec![WindowSpec::new("w", 5 * MINUTE, MINUTE)],
        2 * MINUTE,
        2 * MINUTE,
        0,
    );
    let t = h0();
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u1", t + 8 * MINUTE, &pro),
        view("b", "u1", t + 13 * MINUTE, &pro),
        view("c", "u1", t + 14 * MINUTE, &pro),
        view("d", "u1", t + 15 * MINUTE + 1, &pro),
        view("e", "u2", t + 30 * MINUTE, &pro),
    ];
    (cfg, events)
}

fn duration(s: &Snapshot) -> DurationStats {
    s.kpis.session_duration.expect("sessions in range")
}

#[test]
fn model_session_exactly_at_gap_splits() {
    let (cfg, events) = scenario_gap();
    let snaps = naive::run(&cfg, &events).snapshots;
    assert_eq!(snaps.len(), 2, "{snaps:#?}"); // all users and plan=pro, E = h0 + 1h
    let all = find(&snaps, "1h|");
    assert_eq!(all.end, h0() + HOUR);
    assert_eq!(all.start, h0());
    assert_eq!(all.watermark, h0() + HOUR + MINUTE); // only the final advance reaches E
    assert_eq!(all.kpis.events, 4);
    assert_eq!(all.kpis.active_users, 2);
    assert_eq!(all.kpis.sessions, 3);
    assert_eq!(all.kpis.sessions_per_user, Some(1.5));
    let d = duration(all);
    assert_eq!((d.p50, d.p90, d.p99), (0.0, 179.999, 179.999));
    assert!((d.mean - 179.999 / 3.0).abs() < 1e-12);
    assert_eq!(find(&snaps, "1h|plan=pro").kpis, all.kpis);
    assert_eq!(
        naive::split_sessions(&[0, 180_000], 180_000, 600_000).len(),
        2
    );
    assert_eq!(
        naive::split_sessions(&[0, 179_999], 180_000, 600_000).len(),
        1
    );
}

#[test]
fn model_session_reaching_session_max_splits() {
    let (cfg, events) = scenario_max();
    let snaps = naive::run(&cfg, &events).snapshots;
    let all = find(&snaps, "1h|");
    assert_eq!(all.kpis.events, 7);
    assert_eq!(all.kpis.sessions, 2); // [0, 10 min] and [12 min]
    let d = duration(all);
    assert_eq!((d.p50, d.p90, d.p99, d.mean), (0.0, 600.0, 600.0, 300.0));
    let minutes: Vec<Millis> = (0..=6).map(|i| i * 2 * MINUTE).collect();
    assert_eq!(
        naive::split_sessions(&minutes, 3 * MINUTE, 10 * MINUTE),
        vec![(0, 10 * MINUTE), (12 * MINUTE, 12 * MINUTE)]
    );
}

#[test]
fn model_surveys_and_zero_denominators() {
    let (cfg, events) = scenario_surveys();
    let snaps = naive::run(&cfg, &events).snapshots;
    let pro = find(&snaps, "1h|plan=pro");
    assert_eq!(pro.kpis.events, 2);
    assert_eq!(pro.kpis.active_users, 1);
    assert_eq!(pro.kpis.survey_responses.nps, 1);
    assert_eq!(
        (pro.kpis.nps, pro.kpis.nps_margin),
        (Some(100.0), Some(0.0))
    );
    assert_eq!((pro.kpis.csat_ratio, pro.kpis.ces_score), (None, None));

    let free = find(&snaps, "1h|plan=free");
    let k = &free.kpis;
    assert_eq!((k.active_users, k.events, k.sessions), (0, 6, 0));
    assert_eq!(k.sessions_per_user, None);
    assert_eq!(k.session_duration, None);
    assert_eq!(k.stickiness_ratio, None);
    assert!(free.features.is_empty());
    assert_eq!(
        (
            k.survey_responses.nps,
            k.survey_responses.csat,
            k.survey_responses.ces
        ),
        (2, 2, 2)
    );
    // NPS: scores 3 (detractor) and 7 (passive): p = 0, d = 0.5.
    assert_eq!(k.nps, Some(-50.0));
    let margin = 196.0 * ((0.5f64 - 0.25) / 2.0).sqrt();
    assert!((k.nps_margin.expect("nps responses") - margin).abs() < 1e-9);
    assert_eq!(k.csat_ratio, Some(0.5));
    let margin = 1.96 * (0.25f64 / 2.0).sqrt();
    assert!((k.csat_margin.expect("csat responses") - margin).abs() < 1e-12);
    assert_eq!(k.ces_score, Some(4.5));

    let all = find(&snaps, "1h|");
    assert_eq!((all.kpis.active_users, all.kpis.events), (1, 8));
    assert_eq!(all.kpis.survey_responses.nps, 3);
    assert_eq!(all.kpis.nps, Some(0.0));
}

#[test]
fn model_cardinality_cap() {
    let (cfg, events) = scenario_cap();
    let snaps = naive::run(&cfg, &events).snapshots;
    let keys: Vec<String> = snaps.iter().map(Snapshot::key).collect();
    assert_eq!(
        keys,
        [
            "1h|",
            "1h|plan=__none__",
            "1h|plan=__other__",
            "1h|plan=free",
            "1h|plan=pro"
        ]
    );
    let other = find(&snaps, "1h|plan=__other__");
    assert_eq!((other.kpis.events, other.kpis.active_users), (2, 1)); // u4: team and biz
    let names: Vec<&str> = other.features.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["export"]);
    let free = find(&snaps, "1h|plan=free");
    assert_eq!(&*free.features[0].0, OTHER_VALUE);
    assert_eq!(free.features[0].1.users, 1);
    assert_eq!(free.features[0].1.adoption_ratio, Some(1.0));
    let pro = find(&snaps, "1h|plan=pro");
    assert_eq!((pro.kpis.events, pro.kpis.active_users), (3, 2)); // the closer is after E
    let all = find(&snaps, "1h|");
    let features: Vec<(&str, u64)> = all.features.iter().map(|(n, f)| (&**n, f.users)).collect();
    assert_eq!(features, [(OTHER_VALUE, 1), ("export", 2)]);
    assert_eq!(all.features[1].1.adoption_ratio, Some(2.0 / 5.0));
}

#[test]
fn model_duplicates_count_once() {
    let (cfg, events) = scenario_dups();
    let expected = naive::run(&cfg, &events);
    use Ingested::{Accepted as A, Duplicate as D};
    assert_eq!(expected.ingested, [A, D, A, D, D, A]);
    let all = find(&expected.snapshots, "1h|");
    assert_eq!((all.kpis.events, all.kpis.active_users), (2, 2));
}

#[test]
fn model_stickiness() {
    let (cfg, events) = scenario_stickiness();
    let snaps = naive::run(&cfg, &events).snapshots;
    let day = |n: i64| base() + n * DAY;
    // 30d at E = day 1: u1, u2, u3 active, all within the last day.
    let s = |end: Millis| {
        snaps
            .iter()
            .find(|s| s.window == "30d" && s.end == end && s.segment.is_empty())
            .unwrap_or_else(|| panic!("no 30d snapshot at {}", format_rfc3339(end)))
    };
    assert_eq!(s(day(1)).kpis.stickiness_ratio, Some(1.0));
    // E = day 2: u1 in the last day, of u1..u3 (u4 only answered a survey).
    assert_eq!(s(day(2)).kpis.active_users, 3);
    assert_eq!(s(day(2)).kpis.stickiness_ratio, Some(1.0 / 3.0));
    // E = day 3: nobody in the last day.
    assert_eq!(s(day(3)).kpis.stickiness_ratio, Some(0.0));
    // The 1d window never carries it; nothing ends after the last event time (day 3 12:00).
    assert!(
        snaps
            .iter()
            .all(|s| s.window == "30d" || s.kpis.stickiness_ratio.is_none())
    );
    assert!(snaps.iter().all(|s| s.end <= day(3) + 12 * HOUR));
    let ones: Vec<Millis> = snaps
        .iter()
        .filter(|s| s.window == "1d" && s.segment.is_empty())
        .map(|s| s.end)
        .collect();
    assert_eq!(ones, [day(1), day(2)]);
}

#[test]
fn model_session_max_after_closed_session() {
    let (cfg, events) = scenario_max_after_closed_session();
    let snaps = naive::run(&cfg, &events).snapshots;
    let sessions = |minute: i64| {
        let s = snaps
            .iter()
            .find(|s| s.end == h0() + minute * MINUTE && s.segment.is_empty())
            .unwrap_or_else(|| panic!("no snapshot ending at minute {minute}"));
        (s.kpis.sessions, s.kpis.session_duration.map(|d| d.mean))
    };
    // Sessions: [0:08] closes 0:10, [0:13, 0:14] closes 0:16, [0:15.001] closes 0:17.001.
    assert_eq!(sessions(15), (1, Some(0.0))); // [0:10, 0:15)
    assert_eq!(sessions(16), (0, None)); // [0:11, 0:16): nothing closes
    assert_eq!(sessions(17), (1, Some(60.0))); // [0:12, 0:17)
    assert_eq!(sessions(18), (2, Some(30.0))); // [0:13, 0:18)
}

#[test]
fn engine_session_max_after_closed_session() {
    let (cfg, events) = scenario_max_after_closed_session();
    check_engine(&cfg, &events);
}

#[test]
fn engine_session_exactly_at_gap_splits() {
    let (cfg, events) = scenario_gap();
    check_engine(&cfg, &events);
}

#[test]
fn engine_session_reaching_session_max_splits() {
    let (cfg, events) = scenario_max();
    check_engine(&cfg, &events);
}

#[test]
fn engine_surveys_and_zero_denominators() {
    let (cfg, events) = scenario_surveys();
    check_engine(&cfg, &events);
}

#[test]
fn engine_cardinality_cap() {
    let (cfg, events) = scenario_cap();
    check_engine(&cfg, &events);
}

#[test]
fn engine_duplicates_count_once() {
    let (cfg, events) = scenario_dups();
    check_engine(&cfg, &events);
}

#[test]
fn engine_stickiness() {
    let (cfg, events) = scenario_stickiness();
    check_engine(&cfg, &events);
}

/// Late and too-late events (outside the model's scope, so checked by hand): window 5m/1m, no
/// lateness. After `a` at 0:10 the watermark is 0:10 and every instance ending by 0:10 is closed.
/// `late` at 0:08 still reaches the open instances ending 0:11–0:13 and makes no session;
/// `too_late` at 0:04 reaches none (they would end by 0:09) and is not counted at all.
#[test]
fn engine_late_and_too_late() {
    let cfg = config(
        vec![WindowSpec::new("w", 5 * MINUTE, MINUTE)],
        3 * MINUTE,
        10 * MINUTE,
        0,
    );
    let t = h0();
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u1", t + 10 * MINUTE, &pro),
        view("late", "u2", t + 8 * MINUTE, &pro),
        view("too_late", "u3", t + 4 * MINUTE, &[("plan", "team")]),
        view("z", "u1", t + 20 * MINUTE, &pro),
    ];
    let (snaps, ingested) = replay(&cfg, &events);
    let all: Vec<(Millis, u64, u64, u64)> = snaps
        .iter()
        .filter(|s| s.segment.is_empty())
        .map(|s| {
            let k = &s.kpis;
            ((s.end - t) / MINUTE, k.events, k.active_users, k.sessions)
        })
        .collect();
    // a's session closes 0:13, counted from the instance ending 0:14.
    assert_eq!(
        all,
        [
            (11, 2, 2, 0),
            (12, 2, 2, 0),
            (13, 2, 2, 0),
            (14, 1, 1, 1),
            (15, 1, 1, 1)
        ]
    );
    // The too-late event registered no plan value and made no segment.
    assert!(
        snaps
            .iter()
            .all(|s| s.segment.iter().all(|(_, v)| v == "pro")),
        "{snaps:#?}"
    );
    use Ingested::{Accepted as A, Late as L, TooLate as T};
    assert_eq!(
        ingested,
        [A, L, T, A],
        "semantics.md: no open instance can contain 0:04"
    );
}

// ---------------------------------------------------------------------------------------------
// Lifecycle, revenue and support: hand-computed expectations, checked against the model and
// against the engine, then the engine checked against the model.
// ---------------------------------------------------------------------------------------------

/// A purchase, refund, cancellation, ticket or self-service event (the type follows the kind).
fn business(
    id: &str,
    user: &str,
    ts: Millis,
    kind: EventKind<'static>,
    attrs: &[(&str, &str)],
) -> Event<'static> {
    let event_type = match kind {
        EventKind::Purchase { .. } => "purchase",
        EventKind::Refund { .. } => "refund",
        EventKind::SubscriptionCancelled => "subscription_cancelled",
        EventKind::SupportTicket => "support_ticket",
        EventKind::SelfServiceResolved => "self_service_resolved",
        _ => "page_view",
    };
    event(id, user, ts, event_type, kind, attrs, None)
}

fn buy(id: &str, user: &str, ts: Millis, amount: f64, attrs: &[(&str, &str)]) -> Event<'static> {
    business(id, user, ts, EventKind::Purchase { amount }, attrs)
}

fn refund(id: &str, user: &str, ts: Millis, amount: f64, attrs: &[(&str, &str)]) -> Event<'static> {
    business(id, user, ts, EventKind::Refund { amount }, attrs)
}

/// The snapshot of `key` ending at `end`.
fn at<'s>(snaps: &'s [Snapshot], key: &str, end: Millis) -> &'s Snapshot {
    snaps
        .iter()
        .find(|s| s.key() == key && s.end == end)
        .unwrap_or_else(|| panic!("no snapshot {key} ending {}", format_rfc3339(end)))
}

#[track_caller]
fn assert_money(actual: Option<f64>, expected: Option<f64>, what: &str) {
    assert!(
        opt_money_close(actual, expected),
        "{what}: got {actual:?}, want {expected:?}"
    );
}

/// (retained, churned, new, resurrected, retention_ratio, churn_ratio).
type Lifecycle = (u64, u64, u64, u64, Option<f64>, Option<f64>);

fn lifecycle(k: &Kpis) -> Lifecycle {
    (
        k.retained_users,
        k.churned_users,
        k.new_users,
        k.resurrected_users,
        k.retention_ratio,
        k.churn_ratio,
    )
}

/// (a) and (b): one hour, plans pro, free, team and biz.
/// * pro: u1 buys 10.00 and 5.25, u2 buys 0.01 and gets 3.00 back, u3 only views and cancels
///   twice; u1 opens a ticket, u2 resolves two issues by self-service.
/// * free: u4 buys 5.00 and gets 20.00 and 0.00 back (refunds exceed purchases).
/// * team: u5 only gets 7.50 back, u6 views and opens a ticket (no orders).
/// * biz: u7 only views (no money at all).
fn scenario_revenue() -> (EngineConfig, Vec<Event<'static>>) {
    let mut cfg = hourly(3 * MINUTE, 10 * MINUTE);
    cfg.segments.max_values = 5;
    let t = h0() + 5 * MINUTE;
    let m = |n: i64| t + n * MINUTE;
    let (pro, free) = ([("plan", "pro")], [("plan", "free")]);
    let (team, biz) = ([("plan", "team")], [("plan", "biz")]);
    use EventKind::{SelfServiceResolved, SubscriptionCancelled, SupportTicket};
    let events = vec![
        buy("p1", "u1", m(0), 10.0, &pro),
        buy("p2", "u1", m(1), 5.25, &pro),
        buy("p3", "u2", m(2), 0.01, &pro),
        refund("r1", "u2", m(3), 3.0, &pro),
        view("v1", "u3", m(4), &pro),
        business("c1", "u3", m(5), SubscriptionCancelled, &pro),
        business("c2", "u3", m(6), SubscriptionCancelled, &pro),
        business("t1", "u1", m(7), SupportTicket, &pro),
        business("s1", "u2", m(8), SelfServiceResolved, &pro),
        business("s2", "u2", m(9), SelfServiceResolved, &pro),
        buy("p4", "u4", m(10), 5.0, &free),
        refund("r2", "u4", m(11), 20.0, &free),
        refund("r3", "u4", m(12), 0.0, &free),
        refund("r4", "u5", m(13), 7.5, &team),
        view("v2", "u6", m(14), &team),
        business("t2", "u6", m(15), SupportTicket, &team),
        view("v3", "u7", m(16), &biz),
        closer("z"),
    ];
    (cfg, events)
}

fn assert_revenue(snaps: &[Snapshot]) {
    let pro = &find(snaps, "1h|plan=pro").kpis;
    assert_eq!((pro.events, pro.active_users), (10, 3));
    assert_money(Some(pro.revenue), Some(12.26), "pro revenue");
    assert_eq!((pro.orders, pro.paying_users), (3, 2));
    assert_money(pro.aov, Some(15.26 / 3.0), "pro aov");
    assert_money(pro.arpu, Some(12.26 / 3.0), "pro arpu");
    assert_money(pro.arppu, Some(6.13), "pro arppu");
    assert_eq!(pro.conversion_ratio, Some(2.0 / 3.0));
    assert_eq!((pro.cancellations, pro.cancelled_users), (2, 1));
    assert_eq!((pro.support_tickets, pro.self_service_resolutions), (1, 2));
    assert_eq!(pro.self_service_ratio, Some(2.0 / 3.0));
    // Nothing before this hour: everybody is new, nothing to retain or churn, no CLV.
    assert_eq!(lifecycle(pro), (0, 0, 3, 0, None, None));
    assert_eq!(pro.clv_estimate, None);

    // (a) Refunds exceeding purchases: negative revenue, ARPU and ARPPU; AOV from gross.
    let free = &find(snaps, "1h|plan=free").kpis;
    assert_money(Some(free.revenue), Some(-15.0), "free revenue");
    assert_eq!(
        (free.orders, free.paying_users, free.active_users),
        (1, 1, 1)
    );
    assert_money(free.aov, Some(5.0), "free aov");
    assert_money(free.arpu, Some(-15.0), "free arpu");
    assert_money(free.arppu, Some(-15.0), "free arppu");
    assert_eq!(free.conversion_ratio, Some(1.0));
    assert_eq!((free.cancellations, free.cancelled_users), (0, 0));
    assert_eq!(free.self_service_ratio, None);

    // (b) No orders: no AOV nor ARPPU, nobody paying; a refund alone still makes revenue.
    let team = &find(snaps, "1h|plan=team").kpis;
    assert_eq!(
        (team.orders, team.paying_users, team.active_users),
        (0, 0, 2)
    );
    assert_money(Some(team.revenue), Some(-7.5), "team revenue");
    assert_eq!((team.aov, team.arppu), (None, None));
    assert_money(team.arpu, Some(-3.75), "team arpu");
    assert_eq!(team.conversion_ratio, Some(0.0));
    assert_eq!(
        (team.support_tickets, team.self_service_ratio),
        (1, Some(0.0))
    );
    let biz = &find(snaps, "1h|plan=biz").kpis;
    assert_eq!((biz.orders, biz.paying_users, biz.active_users), (0, 0, 1));
    assert_eq!(biz.revenue, 0.0);
    assert_eq!((biz.aov, biz.arppu, biz.arpu), (None, None, Some(0.0)));
    assert_eq!(biz.conversion_ratio, Some(0.0));

    let all = &find(snaps, "1h|").kpis;
    assert_eq!((all.active_users, all.orders, all.paying_users), (7, 4, 3));
    assert_money(Some(all.revenue), Some(-10.24), "revenue");
    assert_money(all.aov, Some(20.26 / 4.0), "aov");
    assert_money(all.arpu, Some(-10.24 / 7.0), "arpu");
    assert_money(all.arppu, Some(-10.24 / 3.0), "arppu");
    assert_eq!(all.conversion_ratio, Some(3.0 / 7.0));
    assert_eq!((all.cancellations, all.cancelled_users), (2, 1));
    assert_eq!((all.support_tickets, all.self_service_resolutions), (2, 2));
    assert_eq!(all.self_service_ratio, Some(0.5));
    assert_eq!(lifecycle(all), (0, 0, 7, 0, None, None));
}

/// (c) Windows 1h/1h and 2h/1h, CLV on the 1h window with margin 0.5; all plan=pro.
/// Hour 0: u1, u2 view. Hour 1: u1 buys 30.00, u2 views. Hour 2: u1 buys 12.00. Then u1 views
/// at 4:01 (closes the 2h instance ending 4:00).
fn scenario_clv() -> (EngineConfig, Vec<Event<'static>>) {
    let mut cfg = config(
        vec![
            WindowSpec::new("1h", HOUR, HOUR),
            WindowSpec::new("2h", 2 * HOUR, HOUR),
        ],
        3 * MINUTE,
        10 * MINUTE,
        2 * MINUTE,
    );
    cfg.clv = ClvConfig {
        period: HOUR,
        gross_margin: 0.5,
    };
    let h = |n: i64, minutes: i64| h0() + n * HOUR + minutes * MINUTE;
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u1", h(0, 10), &pro),
        view("b", "u2", h(0, 20), &pro),
        buy("c", "u1", h(1, 10), 30.0, &pro),
        view("d", "u2", h(1, 20), &pro),
        buy("e", "u1", h(2, 10), 12.0, &pro),
        view("z", "u1", h(4, 1), &pro),
    ];
    (cfg, events)
}

fn assert_clv(snaps: &[Snapshot]) {
    let h = |n: i64| h0() + n * HOUR;
    for key in ["|", "|plan=pro"] {
        let one = |end| &at(snaps, &format!("1h{key}"), end).kpis;
        let two = |end| &at(snaps, &format!("2h{key}"), end).kpis;
        // Hour 0: nobody before, so churn (and CLV) unknown.
        assert_eq!(lifecycle(one(h(1))), (0, 0, 2, 0, None, None));
        assert_eq!((one(h(1)).arpu, one(h(1)).clv_estimate), (Some(0.0), None));
        // Hour 1: both stay, churn 0: no CLV although ARPU is 15.
        let k = one(h(2));
        assert_eq!(lifecycle(k), (2, 0, 0, 0, Some(1.0), Some(0.0)));
        assert_money(k.arpu, Some(15.0), "arpu");
        assert_eq!(k.clv_estimate, None);
        // Hour 2: u2 churned: CLV = 12 × 0.5 / 0.5.
        let k = one(h(3));
        assert_eq!(lifecycle(k), (1, 1, 0, 0, Some(0.5), Some(0.5)));
        assert_money(k.arpu, Some(12.0), "arpu");
        assert_money(k.clv_estimate, Some(12.0), "clv");
        // The 2h window ending 4:00 has the same ARPU and churn, but is not the CLV period.
        let k = two(h(4));
        assert_eq!(lifecycle(k), (1, 1, 0, 0, Some(0.5), Some(0.5)));
        assert_money(k.arpu, Some(12.0), "2h arpu");
        assert_eq!(k.clv_estimate, None);
        assert!(
            snaps
                .iter()
                .all(|s| s.window == "1h" || s.kpis.clv_estimate.is_none())
        );
    }
}

/// (d) Tumbling 1h; everything plan=pro except u4's first view (plan=free) at -0:30.
/// Hour 0: u1, u2 view, u5 only answers a survey. Hour 1: u1, u3, u4, u5 view, u2 only answers a
/// survey. Hour 2: u4 views. u1 views at 3:01 to close hour 2.
fn scenario_lifecycle() -> (EngineConfig, Vec<Event<'static>>) {
    let cfg = hourly(3 * MINUTE, 10 * MINUTE);
    let h = |n: i64, minutes: i64| h0() + n * HOUR + minutes * MINUTE;
    let pro = [("plan", "pro")];
    let events = vec![
        view("a", "u4", h(-1, 30), &[("plan", "free")]),
        view("b", "u1", h(0, 10), &pro),
        view("c", "u2", h(0, 20), &pro),
        survey("d", "u5", h(0, 30), Survey::Nps, 9, &pro),
        view("e", "u1", h(1, 10), &pro),
        view("f", "u3", h(1, 15), &pro),
        view("g", "u4", h(1, 20), &pro),
        survey("h", "u2", h(1, 25), Survey::Csat, 5, &pro),
        view("i", "u5", h(1, 30), &pro),
        view("j", "u4", h(2, 10), &pro),
        view("z", "u1", h(3, 1), &pro),
    ];
    (cfg, events)
}

fn assert_lifecycle(snaps: &[Snapshot]) {
    let h = |n: i64| h0() + n * HOUR;
    let all = |end| &at(snaps, "1h|", end).kpis;
    let pro = |end| &at(snaps, "1h|plan=pro", end).kpis;
    // Hour -1: u4 new (all users and plan=free); no plan=pro event, so no plan=pro snapshot.
    assert_eq!(lifecycle(all(h(0))), (0, 0, 1, 0, None, None));
    assert_eq!(lifecycle(&at(snaps, "1h|plan=free", h(0)).kpis).2, 1);
    assert!(
        !snaps
            .iter()
            .any(|s| s.end == h(0) && s.key() == "1h|plan=pro")
    );
    // Hour 0: u1, u2 new; u4 (all users) churned. u5's survey is not activity.
    assert_eq!(all(h(1)).active_users, 2);
    assert_eq!(lifecycle(all(h(1))), (0, 1, 2, 0, Some(0.0), Some(1.0)));
    assert_eq!(lifecycle(pro(h(1))), (0, 0, 2, 0, None, None));
    assert!(
        !snaps
            .iter()
            .any(|s| s.end == h(1) && s.key() == "1h|plan=free")
    );
    // Hour 1: u1 retained; u2 churned (a survey is not activity); u3 and u5 new (u5's earlier
    // survey was no activity); u4 resurrected (first seen at -0:30, in plan=free: first activity
    // is global, not per segment).
    for k in [all(h(2)), pro(h(2))] {
        assert_eq!((k.active_users, k.events), (4, 5));
        assert_eq!(lifecycle(k), (1, 1, 2, 1, Some(0.5), Some(0.5)));
        assert_eq!(
            k.new_users + k.retained_users + k.resurrected_users,
            k.active_users
        );
        assert_eq!(k.clv_estimate, None); // 1h is not the 30-day CLV period
    }
    // Hour 2: u4 retained, u1, u3, u5 churned.
    for k in [all(h(3)), pro(h(3))] {
        assert_eq!(k.active_users, 1);
        assert_eq!(lifecycle(k), (1, 3, 0, 0, Some(0.25), Some(0.75)));
    }
}

/// The lifecycle scenario with lifecycle KPIs off: the same snapshots, no lifecycle numbers.
fn assert_lifecycle_off(snaps: &[Snapshot], with_lifecycle: &[Snapshot]) {
    let keys = |s: &[Snapshot]| s.iter().map(|s| (s.end, s.key())).collect::<Vec<_>>();
    assert_eq!(keys(snaps), keys(with_lifecycle));
    for (s, on) in snaps.iter().zip(with_lifecycle) {
        assert_eq!(lifecycle(&s.kpis), (0, 0, 0, 0, None, None), "{}", id_of(s));
        assert_eq!(s.kpis.clv_estimate, None);
        assert_eq!(
            (s.kpis.active_users, s.kpis.events),
            (on.kpis.active_users, on.kpis.events)
        );
    }
}

fn lifecycle_off(cfg: &EngineConfig) -> EngineConfig {
    EngineConfig {
        lifecycle: false,
        ..cfg.clone()
    }
}

#[test]
fn model_revenue_refunds_and_no_orders() {
    let (cfg, events) = scenario_revenue();
    assert_revenue(&naive::run(&cfg, &events).snapshots);
}

#[test]
fn engine_revenue_refunds_and_no_orders() {
    let (cfg, events) = scenario_revenue();
    assert_revenue(&replay(&cfg, &events).0);
    check_engine(&cfg, &events);
}

#[test]
fn model_clv_absent_without_churn() {
    let (cfg, events) = scenario_clv();
    assert_clv(&naive::run(&cfg, &events).snapshots);
}

#[test]
fn engine_clv_absent_without_churn() {
    let (cfg, events) = scenario_clv();
    assert_clv(&replay(&cfg, &events).0);
    check_engine(&cfg, &events);
}

#[test]
fn model_lifecycle_classes() {
    let (cfg, events) = scenario_lifecycle();
    let on = naive::run(&cfg, &events).snapshots;
    assert_lifecycle(&on);
    let off = naive::run(&lifecycle_off(&cfg), &events).snapshots;
    assert_lifecycle_off(&off, &on);
}

#[test]
fn engine_lifecycle_classes() {
    let (cfg, events) = scenario_lifecycle();
    let on = replay(&cfg, &events).0;
    assert_lifecycle(&on);
    check_engine(&cfg, &events);
    let off_cfg = lifecycle_off(&cfg);
    assert_lifecycle_off(&replay(&off_cfg, &events).0, &on);
    check_engine(&off_cfg, &events);
}
