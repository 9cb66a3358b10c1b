//! Cost of one `/metrics` scrape at a realistic size: 4 windows × 11 segments × 20 features,
//! plus the pipeline metrics. Run with `cargo bench -p engauge-metrics --bench render`.

use std::sync::Arc;

use divan::{Bencher, black_box};
use engauge_core::{DurationStats, FeatureKpis, Kpis, Snapshot, SurveyCounts};
use engauge_metrics::{Health, KpiGauges, PipelineMetrics, Registry, render};

fn main() {
    divan::main();
}

const WINDOWS: [&str; 4] = ["1h", "1d", "7d", "30d"];
const FEATURES: usize = 20;

/// The all-users segment, 3 plans, 3 regions, 4 plan×platform pairs: 11 segments.
fn segments() -> Vec<Vec<(String, String)>> {
    let mut segments = vec![vec![]];
    for plan in ["free", "pro", "team"] {
        segments.push(vec![("plan".into(), plan.into())]);
    }
    for region in ["eu", "us", "apac"] {
        segments.push(vec![("region".into(), region.into())]);
    }
    for (plan, platform) in [
        ("free", "ios"),
        ("free", "web"),
        ("pro", "ios"),
        ("pro", "web"),
    ] {
        segments.push(vec![
            ("plan".into(), plan.into()),
            ("platform".into(), platform.into()),
        ]);
    }
    segments
}

fn snapshot(window: &str, segment: Vec<(String, String)>, seed: u64) -> Snapshot {
    let active = 1000 + seed * 37;
    Snapshot {
        window: window.to_owned(),
        start: 1_795_348_800_000 - 86_400_000,
        end: 1_795_348_800_000,
        segment,
        kpis: Kpis {
            active_users: active,
            events: active * 61,
            stickiness_ratio: (window == "30d").then_some(0.21),
            sessions: active * 5,
            sessions_per_user: Some(5.0),
            session_duration: Some(DurationStats {
                p50: 312.0,
                p90: 1500.5,
                p99: 5400.0,
                mean: 601.2,
            }),
            survey_responses: SurveyCounts {
                nps: 210,
                csat: 95,
                ces: 40,
            },
            nps: Some(41.5),
            nps_margin: Some(6.2),
            csat_ratio: Some(0.84),
            csat_margin: Some(0.07),
            ces_score: Some(5.6),
            ..Kpis::default()
        },
        features: (0..FEATURES)
            .map(|f| {
                let users = (f as u64 * 13 + seed) % active;
                (
                    format!("feature_{f:02}").into(),
                    FeatureKpis {
                        users,
                        adoption_ratio: Some(users as f64 / active as f64),
                    },
                )
            })
            .collect(),
        watermark: 1_795_348_803_000,
        utc_offsets: None,
        approximate: false,
        active_users_sketch: None,
        parts: None,
        complete: None,
    }
}

fn populated_registry() -> Registry {
    let registry = Registry::new();
    let gauges = KpiGauges::register(&registry).expect("fresh registry");
    let pipeline = PipelineMetrics::register(
        &registry,
        &["not_json", "missing_field", "too_late"],
        "0.1.0",
        Arc::new(Health::new()),
    )
    .expect("fresh registry");
    pipeline.add_consumed(1_000_000);
    for partition in 0..12 {
        pipeline.set_consumer_lag("events", partition, 100);
    }
    for (w, window) in WINDOWS.iter().enumerate() {
        let snapshots: Vec<Snapshot> = segments()
            .into_iter()
            .enumerate()
            .map(|(s, segment)| snapshot(window, segment, (w * 100 + s) as u64))
            .collect();
        gauges.replace_window(window, &snapshots);
    }
    registry
}

/// One full scrape: gather every collector and encode the text exposition.
#[divan::bench]
fn render_scrape(bencher: Bencher) {
    let registry = populated_registry();
    let bytes = render(&registry).expect("renders").len();
    bencher
        .counter(divan::counter::BytesCount::new(bytes))
        .bench(|| render(black_box(&registry)).expect("renders"));
}

/// What the pipeline pays when a window instance closes: replacing one window's 11 segments.
#[divan::bench]
fn replace_window(bencher: Bencher) {
    let gauges = KpiGauges::new().expect("descriptors are valid");
    let snapshots: Vec<Snapshot> = segments()
        .into_iter()
        .enumerate()
        .map(|(s, segment)| snapshot("1d", segment, s as u64))
        .collect();
    bencher.bench(|| gauges.replace_window("1d", black_box(&snapshots)));
}
