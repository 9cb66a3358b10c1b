//! Property tests for event decoding: no input panics the decoder, and any well-formed event
//! survives a JSON round trip with every field intact.

use std::borrow::Cow;

use engauge_codec::{DecodeContext, RejectReason, decode_event};
use engauge_core::time::{EPOCH_2000, format_rfc3339};
use engauge_core::{Event, EventKind, Millis, Survey};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use smallvec::SmallVec;

/// 2026-11-22T12:00:00Z.
const NOW: Millis = 1_795_348_800_000;

/// Integration tests have no lib.rs for proptest to store regressions beside, so it stores none.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every generated currency is known, at rate 1, so valid events round-trip unchanged
/// (conversion itself is tested beside the decoder).
fn ctx() -> DecodeContext {
    DecodeContext {
        currencies: std::sync::Arc::new(
            engauge_codec::CurrencyRates::new(
                "USD",
                &[("EUR".to_owned(), 1.0), ("JPY".to_owned(), 1.0)],
            )
            .expect("rates"),
        ),
        ..DecodeContext::new(NOW)
    }
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        (EPOCH_2000 - 5..NOW + 2 * 86_400_000).prop_map(|t| Value::from(format_rfc3339(t))),
        prop::sample::select(vec![
            "nps",
            "csat",
            "ces",
            "purchase",
            "feature_used",
            "survey_response",
            "EUR"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "id",
    "type",
    "user_id",
    "ts",
    "session_id",
    "attrs",
    "feature",
    "survey",
    "score",
    "comment",
    "amount",
    "currency",
    "other",
];

/// Objects built from the event's own field names with arbitrary values, sometimes repeated.
fn event_like_text() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..14).prop_map(|fields| {
        let members: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_event(&bytes, &ctx());
    }

    #[test]
    fn json_ish_text_never_panics(text in "[{}\\[\\]\",:0-9a-z_\\\\ .eE+\\-]{0,200}") {
        let _ = decode_event(text.as_bytes(), &ctx());
    }

    #[test]
    fn event_like_objects_decode_or_reject_cleanly(text in event_like_text()) {
        match decode_event(text.as_bytes(), &ctx()) {
            Ok(event) => {
                prop_assert!((1..=128).contains(&event.id.len()));
                prop_assert!((1..=256).contains(&event.user_id.len()));
                prop_assert!(event.ts >= EPOCH_2000 && event.ts <= NOW + 86_400_000);
                prop_assert!(event.attrs.len() <= 32);
            }
            Err(reject) => {
                prop_assert!(reject.reason != RejectReason::TooLate);
                prop_assert!(reject.reason != RejectReason::InvalidUtf8);
                prop_assert!(!reject.message.is_empty());
            }
        }
    }
}

/// A valid event, owned, plus how to write its timestamp.
#[derive(Debug, Clone)]
struct Case {
    event: Event<'static>,
    ts_as_string: bool,
    currency: Option<&'static str>,
    comment: Option<String>,
}

fn text(max: usize) -> impl Strategy<Value = String> {
    // Any printable text including quotes, backslashes and control characters, within `max` bytes.
    "(\\PC|[\"\\\\\n\t\u{1}]){1,40}"
        .prop_map(move |s| {
            let mut end = s.len().min(max);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        })
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn kind() -> impl Strategy<Value = (String, EventKind<'static>)> {
    let survey = prop::sample::select(Survey::ALL.to_vec());
    prop_oneof![
        prop::sample::select(vec!["page_view", "screen_view", "action", "x.custom"])
            .prop_map(|t| (t.to_owned(), EventKind::Plain)),
        text(128).prop_map(|f| (
            "feature_used".to_owned(),
            EventKind::FeatureUsed {
                feature: Cow::Owned(f)
            }
        )),
        (survey, 0..=10i32).prop_map(|(survey, raw)| {
            let (lo, hi) = engauge_core::SurveyScales::default().range(survey);
            let score = lo + raw % (hi - lo + 1);
            (
                "survey_response".to_owned(),
                EventKind::SurveyResponse { survey, score },
            )
        }),
        (0.0..1e9f64).prop_map(|amount| ("purchase".to_owned(), EventKind::Purchase { amount })),
        (0u32..100_000).prop_map(|cents| (
            "refund".to_owned(),
            EventKind::Refund {
                amount: f64::from(cents) / 100.0
            }
        )),
        Just((
            "subscription_cancelled".to_owned(),
            EventKind::SubscriptionCancelled
        )),
        Just(("support_ticket".to_owned(), EventKind::SupportTicket)),
        Just((
            "self_service_resolved".to_owned(),
            EventKind::SelfServiceResolved
        )),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        text(128),
        kind(),
        text(256),
        EPOCH_2000..=NOW + 86_400_000,
        any::<bool>(),
        prop::option::of(text(256)),
        prop::collection::btree_map(text(64), "(\\PC){0,20}", 0..6),
        prop::option::of(prop::sample::select(vec!["EUR", "USD", "JPY"])),
        prop::option::of("\\PC{0,100}"),
    )
        .prop_map(
            |(
                id,
                (event_type, kind),
                user_id,
                ts,
                ts_as_string,
                session_id,
                attrs,
                currency,
                comment,
            )| {
                let attrs: SmallVec<[(Cow<'static, str>, Cow<'static, str>); 4]> = attrs
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
                    .collect();
                Case {
                    event: Event {
                        id: Cow::Owned(id),
                        event_type: Cow::Owned(event_type),
                        user_id: Cow::Owned(user_id),
                        // RFC 3339 output carries milliseconds, so both forms are exact.
                        ts,
                        session_id: session_id.map(Cow::Owned),
                        attrs,
                        kind,
                    },
                    ts_as_string,
                    currency,
                    comment,
                }
            },
        )
}

fn to_json(case: &Case) -> String {
    let e = &case.event;
    let mut obj = Map::new();
    obj.insert("id".into(), json!(e.id));
    obj.insert("type".into(), json!(e.event_type));
    obj.insert("user_id".into(), json!(e.user_id));
    obj.insert(
        "ts".into(),
        if case.ts_as_string {
            json!(format_rfc3339(e.ts))
        } else {
            json!(e.ts)
        },
    );
    if let Some(s) = &e.session_id {
        obj.insert("session_id".into(), json!(s));
    }
    if !e.attrs.is_empty() {
        let attrs: Map<String, Value> = e
            .attrs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        obj.insert("attrs".into(), Value::Object(attrs));
    }
    if let Some(c) = &case.comment {
        obj.insert("comment".into(), json!(c));
    }
    match &e.kind {
        EventKind::FeatureUsed { feature } => {
            obj.insert("feature".into(), json!(feature));
        }
        EventKind::SurveyResponse { survey, score } => {
            obj.insert("survey".into(), json!(survey.as_str()));
            obj.insert("score".into(), json!(score));
        }
        EventKind::Purchase { amount } | EventKind::Refund { amount } => {
            obj.insert("amount".into(), json!(amount));
            if let Some(c) = case.currency {
                obj.insert("currency".into(), json!(c));
            }
        }
        _ => {}
    }
    Value::Object(obj).to_string()
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn valid_events_round_trip(case in case()) {
        let text = to_json(&case);
        match decode_event(text.as_bytes(), &ctx()) {
            Ok(decoded) => {
                // serde_json sorts object keys (no preserve_order), and so does the BTreeMap the
                // attrs came from: input order is preserved.
                prop_assert_eq!(decoded.into_owned(), case.event.clone());
            }
            Err(reject) => prop_assert!(false, "{}: {} in {}", reject.reason, reject.message, text),
        }
    }
}
