//! Every generated line through the real decoder: well-formed lines decode to the event the
//! generator meant, malformed lines are rejected for the reason their kind promises.

use engauge_codec::{DecodeContext, RejectReason, decode_event};
use engauge_core::EventKind;
use engauge_core::time::DAY;
use engauge_gen::{BadKind, DEFAULT_START, GenConfig, Generator};

fn allowed(kind: BadKind) -> &'static [RejectReason] {
    match kind {
        BadKind::NotJson => &[RejectReason::NotJson],
        BadKind::MissingUserId => &[RejectReason::MissingField],
        BadKind::ScoreOutOfRange => &[RejectReason::ScoreOutOfRange],
        BadKind::BadTimestamp => &[
            RejectReason::BadTimestamp,
            RejectReason::TimestampOutOfRange,
            RejectReason::TimestampInFuture,
        ],
        BadKind::InvalidUtf8 => &[RejectReason::InvalidUtf8],
        BadKind::Oversize => &[RejectReason::Oversize],
        BadKind::UnknownSurvey => &[RejectReason::UnknownSurvey],
        BadKind::WrongType => &[RejectReason::WrongType],
    }
}

#[test]
fn generated_lines_decode_or_reject_as_promised() {
    let config = GenConfig {
        events: 60_000,
        users: 5_000,
        days: 3,
        seed: 99,
        bad_ratio: 0.05,
        ..GenConfig::default()
    };
    // Decoded long after the stream, so only the deliberately future timestamps are future.
    // The generator pays in USD, EUR and GBP.
    let ctx = DecodeContext {
        currencies: std::sync::Arc::new(
            engauge_codec::CurrencyRates::new(
                "USD",
                &[("EUR".to_owned(), 1.08), ("GBP".to_owned(), 1.27)],
            )
            .expect("rates"),
        ),
        ..DecodeContext::new(DEFAULT_START + 400 * DAY)
    };
    let mut generator = Generator::new(config);
    let mut line = Vec::new();
    let mut reasons = std::collections::BTreeSet::new();
    while let Some(event) = generator.next_event() {
        line.clear();
        event.encode_into(&mut line);
        let decoded = decode_event(&line, &ctx);
        match (event.bad_kind(), decoded) {
            (None, Ok(decoded)) => {
                let decoded = decoded.into_owned();
                let expected = event.to_core_event().expect("well-formed");
                assert_eq!(decoded.id, expected.id);
                assert_eq!(decoded.user_id, expected.user_id);
                assert_eq!(decoded.ts, expected.ts);
                assert_eq!(decoded.event_type, expected.event_type);
                assert_eq!(decoded.session_id, expected.session_id);
                assert_eq!(decoded.attrs, expected.attrs);
                match (&decoded.kind, &expected.kind) {
                    (EventKind::Purchase { .. }, EventKind::Purchase { .. })
                    | (EventKind::Refund { .. }, EventKind::Refund { .. }) => {}
                    (got, want) => assert_eq!(got, want),
                }
            }
            (None, Err(reject)) => panic!(
                "well-formed line rejected ({reject}): {}",
                String::from_utf8_lossy(&line)
            ),
            (Some(kind), Ok(_)) => {
                panic!("{kind:?} line accepted: {}", String::from_utf8_lossy(&line))
            }
            (Some(kind), Err(reject)) => {
                assert!(
                    allowed(kind).contains(&reject.reason),
                    "{kind:?} rejected as {}: {}",
                    reject.reason,
                    String::from_utf8_lossy(&line[..line.len().min(300)])
                );
                reasons.insert(reject.reason);
            }
        }
    }
    assert!(reasons.len() >= BadKind::COUNT, "{reasons:?}");
}
