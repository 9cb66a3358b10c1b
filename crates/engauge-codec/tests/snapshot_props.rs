//! Property tests for snapshot JSON: any snapshot encodes to valid JSON without null, NaN or
//! infinity, and one with finite values reads back as itself through `SnapshotRecord`.

use engauge_codec::{SnapshotRecord, encode_snapshot};
use engauge_core::time::{DAY, EPOCH_2000};
use engauge_core::{DurationStats, FeatureKpis, Kpis, Millis, Snapshot, SurveyCounts};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn float(finite_only: bool) -> BoxedStrategy<Option<f64>> {
    if finite_only {
        prop::option::of(prop_oneof![
            0.0..1.0f64,
            -100.0..100.0f64,
            any::<f64>().prop_filter("finite", |x| x.is_finite())
        ])
        .boxed()
    } else {
        prop::option::of(any::<f64>()).boxed()
    }
}

fn snapshot(finite_only: bool) -> impl Strategy<Value = Snapshot> {
    let f = || float(finite_only);
    let counts = (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    );
    let duration = prop::option::of((f(), f(), f(), f()).prop_map(|(a, b, c, d)| DurationStats {
        p50: a.unwrap_or(0.0),
        p90: b.unwrap_or(1.0),
        p99: c.unwrap_or(2.0),
        mean: d.unwrap_or(0.5),
    }));
    (
        "\\PC{1,8}",
        EPOCH_2000..EPOCH_2000 + 10_000 * DAY,
        prop::collection::btree_map("[a-z]{1,6}", "\\PC{0,8}", 0..3),
        counts,
        (f(), f(), f(), f(), f(), f(), f()),
        duration,
        prop::collection::btree_map("\\PC{1,10}", (any::<u64>(), f()), 0..4),
        0..DAY as u32,
    )
        .prop_map(
            |(window, end, segment, c, r, session_duration, features, lag)| Snapshot {
                window,
                start: end - DAY,
                end,
                segment: segment.into_iter().collect(),
                kpis: Kpis {
                    active_users: c.0,
                    events: c.1,
                    stickiness_ratio: r.0,
                    sessions: c.2,
                    sessions_per_user: r.1,
                    session_duration,
                    survey_responses: SurveyCounts {
                        nps: c.3,
                        csat: c.4,
                        ces: c.5,
                    },
                    nps: r.2,
                    nps_margin: r.3,
                    csat_ratio: r.4,
                    csat_margin: r.5,
                    ces_score: r.6,
                    ..Kpis::default()
                },
                features: features
                    .into_iter()
                    .map(|(name, (users, adoption_ratio))| {
                        (
                            name.into(),
                            FeatureKpis {
                                users,
                                adoption_ratio,
                            },
                        )
                    })
                    .collect(),
                watermark: end + Millis::from(lag),
                utc_offsets: None,
                approximate: false,
                active_users_sketch: None,
                parts: None,
                complete: None,
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn finite_snapshots_round_trip(snap in snapshot(true), emitted_lag in 0..60_000i64) {
        let mut out = Vec::new();
        encode_snapshot(&snap, snap.watermark + emitted_lag, &mut out);
        let record = SnapshotRecord::from_json(&out);
        prop_assert!(record.is_ok(), "{:?}", record);
        let record = record.expect("checked");
        prop_assert_eq!(record.to_snapshot(), snap.clone());
        prop_assert_eq!(record.emitted_at, snap.watermark + emitted_lag);
    }

    #[test]
    fn any_snapshot_is_clean_json(snap in snapshot(false)) {
        let mut out = Vec::new();
        encode_snapshot(&snap, snap.watermark, &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        fn no_null(v: &serde_json::Value) -> bool {
            match v {
                serde_json::Value::Null => false,
                serde_json::Value::Array(a) => a.iter().all(no_null),
                serde_json::Value::Object(o) => o.values().all(no_null),
                _ => true,
            }
        }
        prop_assert!(no_null(&value));
        prop_assert!(SnapshotRecord::from_json(&out).is_ok());
        // Every sample names a KPI that is present.
        let kpis = &value["kpis"];
        for (name, _) in value["samples"].as_object().expect("samples object") {
            prop_assert!(kpis.get(name).is_some(), "sample for absent {}", name);
        }
    }
}
