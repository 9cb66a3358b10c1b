//! Walks the event fixture folders: every valid event decodes, every invalid one is refused with
//! the reason its file name gives (see `tests/data/events/README.md`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use engauge_codec::{DecodeContext, RejectReason, decode_event};
use engauge_core::time::{DAY, EPOCH_2000};
use engauge_core::{Event, EventKind, Millis, Survey};

/// 2026-11-22T12:00:00Z, the wall clock the fixtures are written against.
const NOW: Millis = 1_795_348_800_000;

/// Fixtures may pay in euros, which convert at 1.5 base units each; other currencies are unknown.
fn ctx() -> DecodeContext {
    DecodeContext {
        currencies: std::sync::Arc::new(
            engauge_codec::CurrencyRates::new("USD", &[("EUR".to_owned(), 1.5)]).expect("rates"),
        ),
        ..DecodeContext::new(NOW)
    }
}

fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/events")
        .join(folder);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "bin")))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name")
}

fn check_invariants(name: &str, event: &Event<'_>) {
    assert!((1..=128).contains(&event.id.len()), "{name}: id");
    assert!((1..=64).contains(&event.event_type.len()), "{name}: type");
    assert!((1..=256).contains(&event.user_id.len()), "{name}: user_id");
    assert!(
        event.ts >= EPOCH_2000 && event.ts <= NOW + DAY,
        "{name}: ts"
    );
    assert!(event.attrs.len() <= 32, "{name}: attrs");
    for (i, (key, _)) in event.attrs.iter().enumerate() {
        assert!(
            event.attrs[..i].iter().all(|(k, _)| k != key),
            "{name}: attr keys unique"
        );
    }
}

#[test]
fn valid_events_decode() {
    let ctx = ctx();
    let files = fixtures("valid");
    assert!(files.len() >= 10, "only {} valid fixtures", files.len());
    for path in &files {
        let bytes = fs::read(path).expect("readable fixture");
        let name = stem(path);
        match decode_event(&bytes, &ctx) {
            Ok(event) => check_invariants(name, &event),
            Err(reject) => panic!("{name}: refused as {}: {}", reject.reason, reject.message),
        }
    }
}

/// What a few fixtures must decode to, beyond being accepted.
#[test]
fn valid_events_decode_to_the_right_values() {
    let ctx = ctx();
    let read = |name: &str| {
        fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/data/events/valid/{name}.json")),
        )
        .expect("fixture exists")
    };
    let hour = 3_600_000;

    let bytes = read("screen_view_attrs_session");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(event.ts, NOW - hour + 5 * 60_000 + 30_250);
    assert_eq!(event.session_id.as_deref(), Some("s-9f2c"));
    assert_eq!(event.attr("platform"), Some("ios"));
    assert_eq!(event.kind, EventKind::Plain);

    let bytes = read("action_integer_ts");
    assert_eq!(decode_event(&bytes, &ctx).expect("valid").ts, NOW - hour);

    let bytes = read("survey_nps_with_comment");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(
        event.kind,
        EventKind::SurveyResponse {
            survey: Survey::Nps,
            score: 9
        }
    );

    let bytes = read("purchase_currency");
    assert_eq!(
        decode_event(&bytes, &ctx).expect("valid").kind,
        EventKind::Purchase {
            amount: 49.99 * 1.5
        }
    );

    let bytes = read("refund_integer_amount");
    assert_eq!(
        decode_event(&bytes, &ctx).expect("valid").kind,
        EventKind::Refund { amount: 20.0 }
    );

    // 16:45 at +05:30 and 02:00:00.123456 at -09:00 are 11:15 and 11:00:00.123 UTC.
    let bytes = read("subscription_cancelled_offset");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(
        (event.ts, &event.kind),
        (NOW - 45 * 60_000, &EventKind::SubscriptionCancelled)
    );
    let bytes = read("support_ticket_negative_offset");
    assert_eq!(
        decode_event(&bytes, &ctx).expect("valid").ts,
        NOW - hour + 123
    );

    let bytes = read("self_service_resolved_lowercase");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(
        (event.ts, &event.kind),
        (NOW - 40 * 60_000 + 500, &EventKind::SelfServiceResolved)
    );

    let bytes = read("unknown_type_and_fields");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(
        (event.event_type.as_ref(), &event.kind),
        ("newsletter_opened", &EventKind::Plain)
    );

    let bytes = read("escapes");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(event.id, "evt-é\t0014");
    assert_eq!(event.user_id, "u-\"quoted\"-\\-😀");
    assert_eq!(event.session_id.as_deref(), Some("s/1"));
    assert_eq!(event.attr("plan"), Some("pro"));
    assert_eq!(event.attr("region"), Some("日本"));

    let bytes = read("feature_used");
    let event = decode_event(&bytes, &ctx).expect("valid");
    assert_eq!(
        event.kind,
        EventKind::FeatureUsed {
            feature: "export_pdf".into()
        }
    );

    let bytes = read("max_attrs");
    assert_eq!(decode_event(&bytes, &ctx).expect("valid").attrs.len(), 32);
}

#[test]
fn invalid_events_are_refused_for_the_named_reason() {
    let ctx = ctx();
    let files = fixtures("invalid");
    let mut seen = BTreeSet::new();
    for path in &files {
        let bytes = fs::read(path).expect("readable fixture");
        let name = stem(path);
        let (label, _case) = name
            .split_once("--")
            .unwrap_or_else(|| panic!("{name}: expected <reason>--<case>"));
        let expected = RejectReason::parse(label)
            .unwrap_or_else(|| panic!("{name}: {label} is not a reject reason"));
        match decode_event(&bytes, &ctx) {
            Ok(event) => panic!("{name}: accepted as {event:?}"),
            Err(reject) => {
                assert_eq!(reject.reason, expected, "{name}: {}", reject.message);
                assert!(!reject.message.is_empty(), "{name}: empty message");
                for payload in ["evt-", "u-1", "u-2", "Ren"] {
                    assert!(
                        !reject.message.contains(payload),
                        "{name}: {}",
                        reject.message
                    );
                }
            }
        }
        seen.insert(expected);
    }

    // Oversize is generated: a valid event padded with an unknown field past 64 KiB.
    let padding = "x".repeat(DecodeContext::DEFAULT_MAX_EVENT_BYTES);
    let big = format!(
        r#"{{"id":"evt-1","type":"page_view","user_id":"u-1","ts":"2026-11-22T11:00:00Z","pad":"{padding}"}}"#
    );
    let reject = decode_event(big.as_bytes(), &ctx).expect_err("oversize");
    assert_eq!(reject.reason, RejectReason::Oversize);
    seen.insert(RejectReason::Oversize);

    // Every reason the decoder can give has at least one case (too_late belongs to the engine).
    let missing: Vec<&str> = RejectReason::ALL
        .iter()
        .filter(|r| **r != RejectReason::TooLate && !seen.contains(r))
        .map(|r| r.as_str())
        .collect();
    assert!(missing.is_empty(), "no fixture for {missing:?}");
    assert!(files.len() >= 25);
}

#[test]
fn exactly_the_limit_is_not_oversize() {
    let ctx = ctx();
    let head =
        r#"{"id":"evt-1","type":"page_view","user_id":"u-1","ts":"2026-11-22T11:00:00Z","pad":""#;
    let fill = DecodeContext::DEFAULT_MAX_EVENT_BYTES - head.len() - 2;
    let text = format!("{head}{}\"}}", "x".repeat(fill));
    assert_eq!(text.len(), DecodeContext::DEFAULT_MAX_EVENT_BYTES);
    assert!(decode_event(text.as_bytes(), &ctx).is_ok());
}
