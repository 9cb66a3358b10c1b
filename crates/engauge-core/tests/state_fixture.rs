//! A newer engauge restores an older engine state: `tests/data/engine-state-v1.bin` was saved by
//! version 1 of the state encoding after the first half of a fixed event stream. Restoring it and
//! feeding the second half must give exactly what an uninterrupted run gives after the cut.
//!
//! Regenerate (only when the state version changes, keeping the old file for the old version):
//! `ENGAUGE_WRITE_FIXTURES=1 cargo test -p engauge-core --test state_fixture`.

use std::borrow::Cow;

use engauge_core::time::{DAY, MINUTE};
use engauge_core::{
    Engine, EngineConfig, Event, EventKind, Ingested, Millis, SegmentsConfig, Snapshot, StateError,
    Survey,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/engine-state-v1.bin"
);
/// 2026-01-01T00:00:00Z.
const T0: Millis = 1_767_225_600_000;
const EVENTS: usize = 6_000;
const CUT: usize = 3_500;

fn config() -> EngineConfig {
    EngineConfig {
        segments: SegmentsConfig {
            dimensions: vec!["plan".into()],
            sets: vec![vec![], vec!["plan".into()]],
            max_values: 3,
        },
        ..EngineConfig::default()
    }
}

/// A fixed stream over 45 days: 300 users, views, features, surveys, purchases, sessions.
fn events() -> Vec<(String, String, Millis, &'static str, EventKind<'static>)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let plans = ["free", "pro", "team", "enterprise"];
    (0..EVENTS)
        .map(|n| {
            let r = next();
            let ts =
                T0 + (n as Millis) * (45 * DAY / EVENTS as Millis) + (r % 7) as Millis * MINUTE;
            let user = format!("user-{}", r % 300);
            let plan = plans[(r >> 20) as usize % plans.len()];
            let kind = match (r >> 32) % 10 {
                0 => EventKind::FeatureUsed {
                    feature: Cow::Owned(format!("feature-{}", (r >> 40) % 5)),
                },
                1 => EventKind::SurveyResponse {
                    survey: Survey::Nps,
                    score: ((r >> 40) % 11) as i32,
                },
                _ => EventKind::Plain,
            };
            (format!("e{n}"), user, ts, plan, kind)
        })
        .collect()
}

fn event<'a>(e: &'a (String, String, Millis, &'static str, EventKind<'static>)) -> Event<'a> {
    let event_type = match e.4 {
        EventKind::FeatureUsed { .. } => "feature_used",
        EventKind::SurveyResponse { .. } => "survey_response",
        _ => "page_view",
    };
    Event {
        id: Cow::Borrowed(&e.0),
        event_type: Cow::Borrowed(event_type),
        user_id: Cow::Borrowed(&e.1),
        ts: e.2,
        session_id: None,
        attrs: vec![(Cow::Borrowed("plan"), Cow::Borrowed(e.3))].into(),
        kind: e.4.clone(),
    }
}

/// Feeds `events` with the replay watermark rule, starting from `max_ts`.
fn feed(
    engine: &mut Engine,
    events: &[(String, String, Millis, &'static str, EventKind<'static>)],
    max_ts: &mut Millis,
    out: &mut Vec<Snapshot>,
) {
    for e in events {
        let ingested = engine.ingest(&event(e));
        if matches!(ingested, Ingested::Accepted | Ingested::Late) {
            *max_ts = (*max_ts).max(e.2);
            engine.advance(*max_ts - engine.config().allowed_lateness, out);
        }
    }
}

#[test]
fn version_1_state_restores_and_continues_exactly() {
    let all = events();
    let (first, second) = all.split_at(CUT);

    let mut engine = Engine::new(config()).expect("valid config");
    let mut max_ts = Millis::MIN;
    let mut before = Vec::new();
    feed(&mut engine, first, &mut max_ts, &mut before);
    let cut_max = max_ts;
    let mut expected = Vec::new();
    feed(&mut engine, second, &mut max_ts, &mut expected);
    engine.advance(max_ts, &mut expected);
    assert!(expected.len() > 1_000, "the second half closes instances");

    if std::env::var_os("ENGAUGE_WRITE_FIXTURES").is_some() {
        let mut engine = Engine::new(config()).expect("valid config");
        let mut out = Vec::new();
        let mut m = Millis::MIN;
        feed(&mut engine, first, &mut m, &mut out);
        std::fs::write(FIXTURE, engine.save_state().expect("exact mode saves"))
            .expect("fixture written");
    }
    let bytes = std::fs::read(FIXTURE).expect("fixture checked in");
    let mut restored = Engine::restore(config(), &bytes).expect("version 1 restores");
    let mut max_ts = cut_max;
    let mut actual = Vec::new();
    feed(&mut restored, second, &mut max_ts, &mut actual);
    restored.advance(max_ts, &mut actual);
    assert_eq!(actual.len(), expected.len());
    assert!(
        actual == expected,
        "the restored engine continues differently"
    );
}

#[test]
fn states_that_cannot_be_used_are_refused_with_a_reason() {
    let bytes = std::fs::read(FIXTURE).expect("fixture checked in");
    let changed = EngineConfig {
        session_gap: 10 * MINUTE,
        ..config()
    };
    assert_eq!(
        Engine::restore(changed, &bytes).err(),
        Some(StateError::Config)
    );
    let mut newer = bytes.clone();
    newer[4..6].copy_from_slice(&99u16.to_be_bytes());
    assert_eq!(
        Engine::restore(config(), &newer).err(),
        Some(StateError::Version(99))
    );
    assert_eq!(
        Engine::restore(config(), b"nope").err(),
        Some(StateError::Magic)
    );
    for len in [14, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                Engine::restore(config(), &bytes[..len]),
                Err(StateError::Corrupt(_))
            ),
            "a truncated state ({len} bytes) is refused"
        );
    }
    let sketch = EngineConfig {
        distinct: engauge_core::DistinctMode::Sketch,
        ..config()
    };
    let engine = Engine::new(sketch).expect("valid config");
    assert_eq!(engine.save_state().err(), Some(StateError::Sketches));
}
