//! Micro-benchmarks of the codec's hot paths: decoding realistic native JSON events (by the fast
//! path, by the serde path, and falling back late) and encoding snapshots. Run with
//! `cargo bench -p engauge-codec --bench decode`.

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use engauge_codec::{CurrencyRates, DecodeContext, decode_event, encode_snapshot, parse_rfc3339};
use engauge_core::time::format_rfc3339;
use engauge_core::{DurationStats, FeatureKpis, Kpis, Snapshot, SurveyCounts};

fn main() {
    divan::main();
}

/// 2026-11-22T12:00:00Z.
const NOW: i64 = 1_795_348_800_000;
const EVENTS: usize = 4096;

/// A small deterministic generator (SplitMix64), so every run decodes the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A stream shaped like production telemetry: mostly page and screen views, some features,
/// surveys and purchases; three segment attributes plus an app version; RFC 3339 timestamps with
/// milliseconds (one in ten as integer epoch milliseconds).
fn realistic_events() -> Vec<Vec<u8>> {
    let mut rng = Rng(42);
    let plans = ["free", "pro", "team", "enterprise"];
    let regions = ["eu-west", "us-east", "us-west", "ap-south"];
    let platforms = ["ios", "android", "web", "desktop"];
    let features = [
        "export_pdf",
        "dark_mode",
        "share_link",
        "bulk_edit",
        "ai_summary",
    ];
    (0..EVENTS)
        .map(|i| {
            let ts = NOW - rng.below(86_400_000) as i64;
            let ts = if i % 10 == 0 {
                ts.to_string()
            } else {
                format!("\"{}\"", format_rfc3339(ts))
            };
            let id = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                rng.next() as u32,
                rng.below(1 << 16),
                rng.below(1 << 12),
                rng.below(1 << 16),
                rng.below(1 << 48)
            );
            let user = rng.below(100_000);
            let roll = rng.below(100);
            let (event_type, extra) = match roll {
                0..=39 => ("page_view", format!(r#","url_path":"/app/projects/{}""#, rng.below(500))),
                40..=59 => ("screen_view", format!(r#","screen":"dashboard_{}""#, rng.below(20))),
                60..=69 => ("action", String::new()),
                70..=84 => ("feature_used", format!(r#","feature":"{}""#, rng.pick(&features))),
                85..=89 => {
                    let (survey, score) = match rng.below(3) {
                        0 => ("nps", rng.below(11)),
                        1 => ("csat", 1 + rng.below(5)),
                        _ => ("ces", 1 + rng.below(7)),
                    };
                    ("survey_response", format!(r#","survey":"{survey}","score":{score},"comment":"works well"#) + "\"")
                }
                90..=94 => (
                    "purchase",
                    format!(r#","amount":{}.{:02},"currency":"EUR""#, 5 + rng.below(200), rng.below(100)),
                ),
                _ => ("support_ticket", String::new()),
            };
            format!(
                r#"{{"id":"{id}","type":"{event_type}","user_id":"user-{user:06}","ts":{ts},"session_id":"sess-{user:06}-{}","attrs":{{"plan":"{}","region":"{}","platform":"{}","app_version":"5.{}.{}"}}{extra}}}"#,
                rng.below(50),
                rng.pick(&plans),
                rng.pick(&regions),
                rng.pick(&platforms),
                rng.below(30),
                rng.below(10),
            )
            .into_bytes()
        })
        .collect()
}

/// The realistic stream, each event with an unknown member holding a `\u` escape, which the fast
/// path leaves to serde: inserted first, the fast path gives up at once and this measures the
/// serde path; inserted last, it gives up only at the end (the worst case of a fallback).
fn with_escape(events: Vec<Vec<u8>>, first: bool) -> Vec<Vec<u8>> {
    const MEMBER: &[u8] = br#""trace":"\u0041""#;
    events
        .into_iter()
        .map(|e| {
            let (head, tail) = if first {
                e.split_at(1)
            } else {
                e.split_at(e.len() - 1)
            };
            let (before, after): (&[u8], &[u8]) = if first { (b"", b",") } else { (b",", b"") };
            [head, before, MEMBER, after, tail].concat()
        })
        .collect()
}

fn bench_stream(bencher: Bencher, events: &[Vec<u8>]) {
    let bytes: usize = events.iter().map(Vec::len).sum();
    // Purchases are in EUR: convert them, as a deployment with `[currencies]` does.
    let rates = CurrencyRates::new("USD", &[("EUR".to_owned(), 1.08)]).expect("valid rates");
    let ctx = DecodeContext {
        currencies: std::sync::Arc::new(rates),
        ..DecodeContext::new(NOW)
    };
    for e in events {
        assert!(
            decode_event(e, &ctx).is_ok(),
            "{}",
            String::from_utf8_lossy(e)
        );
    }
    bencher
        .counter(ItemsCount::new(events.len()))
        .counter(BytesCount::new(bytes))
        .bench(|| {
            for e in events {
                let _ = black_box(decode_event(black_box(e), &ctx));
            }
        });
}

/// Every event takes the fast path (`event_scan`).
#[divan::bench]
fn decode_stream(bencher: Bencher) {
    bench_stream(bencher, &realistic_events());
}

/// Every event is decoded by the serde path after the fast path gives up on its first member.
#[divan::bench]
fn decode_stream_serde_path(bencher: Bencher) {
    bench_stream(bencher, &with_escape(realistic_events(), true));
}

/// Every event is decoded by the serde path after the fast path gives up on its last member.
#[divan::bench]
fn decode_stream_late_fallback(bencher: Bencher) {
    bench_stream(bencher, &with_escape(realistic_events(), false));
}

/// The floor for any serde_json-based decoder: syntax checking alone, values discarded.
#[divan::bench]
fn serde_json_skip_only(bencher: Bencher) {
    let events = realistic_events();
    bencher.counter(ItemsCount::new(events.len())).bench(|| {
        for e in &events {
            let text = std::str::from_utf8(black_box(e)).ok();
            let _ = black_box(text.map(serde_json::from_str::<serde::de::IgnoredAny>));
        }
    });
}

#[divan::bench]
fn parse_timestamp(bencher: Bencher) {
    bencher.bench(|| parse_rfc3339(black_box("2026-11-22T11:59:59.123+01:00")));
}

#[divan::bench]
fn encode_one_snapshot(bencher: Bencher) {
    let snap = Snapshot {
        window: "30d".into(),
        start: NOW - 30 * 86_400_000,
        end: NOW,
        segment: vec![
            ("plan".into(), "pro".into()),
            ("region".into(), "eu-west".into()),
        ],
        kpis: Kpis {
            active_users: 1520,
            events: 98211,
            stickiness_ratio: Some(0.21),
            sessions: 8800,
            sessions_per_user: Some(5.79),
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
        features: (0..10)
            .map(|i| {
                (
                    format!("feature_{i}").into(),
                    FeatureKpis {
                        users: 100 + i,
                        adoption_ratio: Some(0.1),
                    },
                )
            })
            .collect(),
        watermark: NOW + 3_000,
        utc_offsets: None,
        approximate: false,
        active_users_sketch: None,
        parts: None,
        complete: None,
    };
    let mut out = Vec::with_capacity(2048);
    bencher.bench_local(|| {
        out.clear();
        encode_snapshot(black_box(&snap), NOW + 3_120, &mut out);
        black_box(out.len())
    });
}
