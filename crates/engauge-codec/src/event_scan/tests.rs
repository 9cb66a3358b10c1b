//! The fast path against the serde path. On generated event-shaped JSON — valid events of every
//! type written in many ways, invalid ones, and byte-level mutations of both — `decode_event`
//! (fast path, then serde) must give exactly what the serde path alone gives: the same event
//! with the same strings borrowed, or the same reject. And events of the common shape must
//! actually take the fast path, or the comparison would prove nothing.

use std::fs;
use std::path::Path;

use engauge_core::SurveyScales;
use engauge_core::time::{DAY, HOUR, MINUTE, format_rfc3339};
use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::Reject;
use crate::event_json::{check_bytes, decode_event, decode_with_serde};
use crate::raw_event::Field;

/// 2026-11-22T12:00:00Z.
const NOW: Millis = 1_795_348_800_000;

fn ctx() -> DecodeContext {
    DecodeContext {
        currencies: std::sync::Arc::new(
            crate::CurrencyRates::new("USD", &[("EUR".to_owned(), 2.0)]).expect("rates"),
        ),
        ..DecodeContext::new(NOW)
    }
}

/// The serde path alone, behind the same size and UTF-8 checks.
fn serde_only(bytes: &[u8]) -> Result<Event<'_>, Reject> {
    let ctx = ctx();
    decode_with_serde(check_bytes(bytes, &ctx)?, &ctx)
}

fn fast_only(bytes: &[u8]) -> Option<Event<'_>> {
    let mut event = empty_event();
    decode(std::str::from_utf8(bytes).ok()?, &ctx(), &mut event)?;
    Some(event)
}

/// What `PartialEq` on events does not see: which strings are borrowed, and the amount's bits
/// (`-0.0 == 0.0`).
fn representation(event: &Event<'_>) -> (Vec<bool>, Option<u64>) {
    let borrowed = |s: &Cow<'_, str>| matches!(s, Cow::Borrowed(_));
    let mut strings = vec![
        borrowed(&event.id),
        borrowed(&event.event_type),
        borrowed(&event.user_id),
    ];
    strings.extend(event.session_id.iter().map(borrowed));
    for (key, value) in &event.attrs {
        strings.push(borrowed(key));
        strings.push(borrowed(value));
    }
    let amount = match &event.kind {
        EventKind::FeatureUsed { feature } => {
            strings.push(borrowed(feature));
            None
        }
        EventKind::Purchase { amount } | EventKind::Refund { amount } => Some(amount.to_bits()),
        _ => None,
    };
    (strings, amount)
}

/// Asserts that `decode_event` agrees exactly with the serde path on `bytes`; returns whether
/// the fast path decoded it.
fn check_same(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let expected = serde_only(bytes);
    let got = decode_event(bytes, &ctx());
    let input = String::from_utf8_lossy(bytes);
    prop_assert_eq!(&got, &expected, "input: {}", input);
    if let (Ok(got), Ok(expected)) = (&got, &expected) {
        prop_assert_eq!(
            representation(got),
            representation(expected),
            "input: {}",
            input
        );
    }
    Ok(match fast_only(bytes) {
        Some(fast) => {
            prop_assert_eq!(Ok(&fast), expected.as_ref(), "input: {}", input);
            let (strings, _) = representation(&fast);
            prop_assert!(strings.iter().all(|&b| b), "input: {}", input);
            true
        }
        None => false,
    })
}

// ---- generators ----------------------------------------------------------------------------

/// The JSON text of string `s`. Characters JSON requires escaping are escaped (so the fast path
/// must hand the event over); the characters picked by `escape_mask` are escaped as well, as
/// `\uXXXX`, `\/` or a surrogate pair.
fn json_string(s: &str, escape_mask: u64) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for (i, c) in s.chars().enumerate() {
        let chosen = escape_mask >> (i % 64) & 1 == 1;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if !chosen => out.push_str("\\n"),
            '\t' if !chosen => out.push_str("\\t"),
            '\r' if !chosen => out.push_str("\\r"),
            '\u{8}' if !chosen => out.push_str("\\b"),
            '\u{c}' if !chosen => out.push_str("\\f"),
            '/' if chosen => out.push_str("\\/"),
            c if chosen || u32::from(c) < 0x20 => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A mask of characters to escape: usually none.
fn escape_mask() -> BoxedStrategy<u64> {
    prop_oneof![
        6 => Just(0u64),
        1 => (0..64u32).prop_map(|bit| 1 << bit),
        1 => any::<u64>(),
    ]
    .boxed()
}

/// `n` ASCII bytes, for lengths right at a limit.
fn ascii_of_len(n: usize) -> BoxedStrategy<String> {
    "[a-z0-9]".prop_map(move |c| c.repeat(n)).boxed()
}

/// String content for a field of `min..=max` bytes. In plain mode it never needs an escape and
/// stays within the limits (the limits themselves included); otherwise it may hold any
/// character, or miss the limits.
fn string_content(min: usize, max: usize, plain: bool) -> BoxedStrategy<String> {
    let short = format!("[a-zA-Z0-9_.:/ -]{{{min},{}}}", (min + 24).min(max));
    let wide = format!("[a-z0-9é€😀 ]{{{min},{}}}", (min + 10).min(max / 4));
    let regex = |pattern: &str| {
        proptest::string::string_regex(pattern)
            .expect("valid pattern")
            .boxed()
    };
    let in_limits = prop_oneof![
        8 => regex(&short),
        2 => regex(&wide),
        1 => ascii_of_len(max),
        1 => ascii_of_len(min),
    ];
    if plain {
        return in_limits.boxed();
    }
    prop_oneof![
        24 => in_limits,
        2 => "\\PC{0,24}",
        2 => "[a-z\"\\\\\n\t\u{1}\u{1f}\u{7f}/é😀]{0,12}",
        1 => ascii_of_len(max + 1),
        1 => "[é]{1,3}".prop_map(move |e| format!("{}{e}", "x".repeat(max.saturating_sub(1)))),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// The JSON text of a string field of `min..=max` bytes.
fn string_text(min: usize, max: usize, plain: bool) -> BoxedStrategy<String> {
    let mask = if plain {
        Just(0).boxed()
    } else {
        escape_mask()
    };
    (string_content(min, max, plain), mask)
        .prop_map(|(s, mask)| json_string(&s, mask))
        .boxed()
}

/// A string only measured or skipped, so the fast path reads it even with the one-byte escapes
/// (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`).
fn skipped_string_text(max: usize, plain: bool) -> BoxedStrategy<String> {
    let escaped = ("[a-z \"\\\\/\n\t\r\u{8}\u{c}é]{0,16}", any::<bool>()).prop_map(|(s, slash)| {
        let text = json_string(&s, 0);
        if slash {
            text.replace('/', "\\/")
        } else {
            text
        }
    });
    // Right at the limit once unescaped, in either direction (only up to it in plain mode).
    let over = if plain { 0 } else { 1 };
    let long = (
        prop::sample::select(vec![("\\n", 1), ("\\\"", 1), ("a", 1), ("é", 2)]),
        max - 1..=max + over,
    )
        .prop_map(|((unit, bytes), len)| format!("\"{}\"", unit.repeat(len / bytes)));
    prop_oneof![
        4 => string_text(0, max, plain),
        4 => escaped,
        2 => long,
    ]
    .boxed()
}

/// `value`, or `null` once in a while.
fn or_null(value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![6 => value, 1 => Just("null".to_owned())].boxed()
}

/// `ts`: integer milliseconds or an RFC 3339 string with or without fraction and offset, around
/// the accepted range; outside plain mode also the near misses.
fn ts_text(plain: bool) -> BoxedStrategy<String> {
    let (lo, hi) = if plain {
        (EPOCH_2000, NOW + DAY)
    } else {
        (EPOCH_2000 - HOUR, NOW + DAY + HOUR)
    };
    let integer = prop_oneof![
        8 => (lo..=hi).prop_map(|ms| ms.to_string()),
        1 => prop::sample::select(if plain {
            vec![EPOCH_2000, NOW + DAY]
        } else {
            vec![EPOCH_2000, EPOCH_2000 - 1, NOW + DAY, NOW + DAY + 1]
        })
        .prop_map(|ms| ms.to_string()),
    ];
    let rfc3339 = (
        lo..=hi,
        -(23 * 60 + 59)..=(23 * 60 + 59_i64),
        prop::sample::select(vec!["T", "t", " "]),
        0..=if plain { 9usize } else { 10 },
        prop::sample::select(vec!["Z", "z", "offset"]),
        any::<u32>(),
    )
        .prop_map(|(ms, offset_minutes, sep, fraction_digits, zone, extra)| {
            let offset = if zone == "offset" { offset_minutes } else { 0 };
            let local = format_rfc3339(ms + offset * MINUTE);
            let mut text = format!("{}{sep}{}", &local[..10], &local[11..19]);
            if fraction_digits > 0 {
                let digits = format!("{:03}{:09}", ms.rem_euclid(1000), extra % 1_000_000_000);
                text.push('.');
                text.push_str(&digits[..fraction_digits]);
            }
            if zone == "offset" {
                let sign = if offset < 0 { '-' } else { '+' };
                let abs = offset.abs();
                text.push_str(&format!("{sign}{:02}:{:02}", abs / 60, abs % 60));
            } else {
                text.push_str(zone);
            }
            format!("\"{text}\"")
        });
    if plain {
        return prop_oneof![integer, rfc3339].boxed();
    }
    prop_oneof![
        4 => integer,
        4 => rfc3339,
        1 => prop::sample::select(vec![
            "\"2026-11-22T12:00:00\"",
            "\"2026-02-30T00:00:00Z\"",
            "\"2026-11-22\"",
            "\"1795345200000\"",
            "\"2026-11-22T11:00:00\\u005a\"",
            "1795345200000.0",
            "1.7953452e12",
            "-1795345200000",
            "-0",
            "0",
            "01795345200000",
            "18446744073709551615",
            "99999999999999999999999",
            "true",
            "null",
            "[]",
            "{\"ts\":1795345200000}",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A number as JSON text; outside plain mode any number JSON allows, and then some it does not.
fn number_text(plain: bool) -> BoxedStrategy<String> {
    let simple = prop_oneof![
        "(0|[1-9][0-9]{0,6})(\\.[0-9]{1,4})?",
        "[1-9][0-9]{0,9}\\.[0-9]{1,8}",
    ];
    if plain {
        return simple.boxed();
    }
    prop_oneof![
        4 => simple,
        2 => "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?",
        1 => prop::sample::select(vec![
            "-0", "-0.0", "1e400", "1E-400", "0e0", "0.0E+0", "9223372036854775807",
            "9223372036854775808", "18446744073709551616", "123456789012345678",
            "1234567890123456789", "0.1234567890123456789",
        ])
        .prop_map(str::to_owned),
        // Not JSON numbers.
        1 => prop::sample::select(vec![
            "00", "01", "-01", "1.", "1.e5", ".5", "+1", "1e", "1e+", "1E-", "-", "--1", "-a",
            "0x10", "NaN", "Infinity", "1.5.2", "1e5e5", "1_000",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Any JSON value a few levels deep, with whitespace inside containers.
fn json_value_text(plain: bool) -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        number_text(plain),
        string_text(0, 16, plain),
        skipped_string_text(16, plain),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone()), 0..4).prop_map(|items| {
                let items: Vec<String> = items.into_iter().map(|(w, v)| w + &v).collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((skipped_string_text(8, plain), ws(), inner), 0..4).prop_map(
                |members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(k, w, v)| format!("{k}:{w}{v}"))
                        .collect();
                    format!("{{{}}}", members.join(", "))
                }
            ),
        ]
    })
    .boxed()
}

/// Whitespace between two tokens: usually none.
fn ws() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just(""),
        3 => Just(" "),
        1 => Just("\n"),
        1 => Just("\t"),
        1 => Just("\r\n  "),
    ]
    .prop_map(str::to_owned)
    .boxed()
}

/// `attrs`: a flat object of strings, mostly a handful of segment dimensions; outside plain mode
/// also empty or long keys, repeated keys, non-string values and too many entries.
fn attrs_text(plain: bool) -> BoxedStrategy<String> {
    let key = prop_oneof![
        3 => prop::sample::select(vec!["plan", "region", "platform", "app_version", "os"])
            .prop_map(|k| format!("\"{k}\"")),
        1 => string_text(1, 64, plain),
    ];
    let value = if plain {
        string_text(0, 256, true)
    } else {
        prop_oneof![8 => string_text(0, 256, false), 1 => json_value_text(false)].boxed()
    };
    // A handful of entries whose keys may repeat (a duplicate in plain mode keeps the first).
    let few = prop::collection::vec((key, ws(), value), 0..=6).prop_map(move |entries| {
        let mut keys: Vec<String> = Vec::new();
        let mut members: Vec<String> = Vec::new();
        for (key, w, value) in entries {
            if plain && keys.contains(&key) {
                continue;
            }
            members.push(format!("{key}:{w}{value}"));
            keys.push(key);
        }
        format!("{{{}}}", members.join(","))
    });
    // Distinct keys and plain values around the limit on the number of entries.
    let many = (MAX_ATTRS - 2..=MAX_ATTRS + if plain { 0 } else { 2 })
        .prop_flat_map(|n| prop::collection::vec(string_text(0, 16, true), n))
        .prop_map(|values| {
            let members: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, value)| format!("\"k{i}\":{value}"))
                .collect();
            format!("{{{}}}", members.join(","))
        });
    or_null(prop_oneof![8 => few, 1 => many].boxed())
}

/// The type-specific members of an event of type `event_type`.
fn type_members(event_type: &'static str, plain: bool) -> BoxedStrategy<Vec<(String, String)>> {
    let member = |name: &'static str, value: BoxedStrategy<String>| {
        value.prop_map(move |v| (name.to_owned(), v)).boxed()
    };
    match event_type {
        "feature_used" => member("feature", string_text(1, 128, plain))
            .prop_map(|m| vec![m])
            .boxed(),
        "survey_response" => (
            prop::sample::select(Survey::ALL.to_vec()),
            -1..=12i32,
            any::<bool>(),
            prop::sample::select(vec!["\"NPS\"", "\"sus\"", "\"\"", "\"n\\u0070s\""]),
        )
            .prop_map(move |(survey, raw, in_range, other_survey)| {
                let (lo, hi) = SurveyScales::default().range(survey);
                let score = if plain || in_range {
                    lo + raw.rem_euclid(hi - lo + 1)
                } else {
                    raw
                };
                // Out of range scores come with an unknown survey name now and then.
                let survey = if plain || in_range || raw % 3 != 0 {
                    format!("\"{}\"", survey.as_str())
                } else {
                    other_survey.to_owned()
                };
                vec![
                    ("survey".to_owned(), survey),
                    ("score".to_owned(), score.to_string()),
                ]
            })
            .boxed(),
        "purchase" | "refund" => (
            number_text(plain),
            prop::option::of(prop::sample::select(if plain {
                vec!["\"EUR\"", "\"USD\"", "null"]
            } else {
                vec![
                    "\"EUR\"",
                    "\"USD\"",
                    "null",
                    "\"eur\"",
                    "\"EURO\"",
                    "\"JPY\"",
                    "7",
                    "\"\\u0045UR\"",
                ]
            })),
        )
            .prop_map(|(amount, currency)| {
                let mut members = vec![("amount".to_owned(), amount)];
                members.extend(currency.map(|c| ("currency".to_owned(), c.to_owned())));
                members
            })
            .boxed(),
        _ => Just(Vec::new()).boxed(),
    }
}

const TYPES: &[&str] = &[
    "page_view",
    "screen_view",
    "action",
    "feature_used",
    "survey_response",
    "purchase",
    "refund",
    "subscription_cancelled",
    "support_ticket",
    "self_service_resolved",
    "x.custom",
];

/// The members of an event, as (field name, value JSON text), in a random order: the required
/// fields, some optional ones, the type's own, and unknown fields holding any JSON (or, outside
/// plain mode, known fields the type does not read, holding anything).
fn event_members(plain: bool) -> BoxedStrategy<Vec<(String, String)>> {
    let unknown_key = prop_oneof![
        prop::sample::select(vec![
            "url_path", "screen", "x", "Id", "ID", "id ", "ts2", "", "é", "attrs_", "nested",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{1,10}",
    ];
    // A random name may be a known field's, which in plain mode must not be repeated.
    let unknown_key = unknown_key.prop_filter("not a known field", move |key| {
        !plain || Field::from_key(key).is_none()
    });
    let unknown = prop::collection::vec((unknown_key, json_value_text(plain)), 0..3);
    let unused_known = if plain {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(
            (
                prop::sample::select(vec!["feature", "survey", "score", "amount", "currency"])
                    .prop_map(str::to_owned),
                json_value_text(false),
            ),
            0..2,
        )
        .boxed()
    };
    (
        prop::sample::select(TYPES.to_vec()),
        string_text(1, 128, plain),
        string_text(1, 256, plain),
        ts_text(plain),
        prop::option::of(or_null(string_text(1, 256, plain))),
        prop::option::of(attrs_text(plain)),
        // Any event may carry a comment, and it is checked whatever the type.
        prop::option::of(or_null(skipped_string_text(MAX_COMMENT, plain))),
        unknown,
        unused_known,
    )
        .prop_flat_map(
            move |(
                event_type,
                id,
                user_id,
                ts,
                session_id,
                attrs,
                comment,
                unknown,
                unused_known,
            )| {
                let mut members = vec![
                    ("id".to_owned(), id),
                    ("type".to_owned(), format!("\"{event_type}\"")),
                    ("user_id".to_owned(), user_id),
                    ("ts".to_owned(), ts),
                ];
                members.extend(session_id.map(|v| ("session_id".to_owned(), v)));
                members.extend(attrs.map(|v| ("attrs".to_owned(), v)));
                members.extend(comment.map(|v| ("comment".to_owned(), v)));
                members.extend(unknown);
                members.extend(unused_known);
                type_members(event_type, plain).prop_flat_map(move |own| {
                    let mut members = members.clone();
                    members.extend(own);
                    Just(members).prop_shuffle()
                })
            },
        )
        .boxed()
}

/// A change to a generated event that usually makes it invalid.
#[derive(Debug, Clone)]
enum Mutation {
    Drop(Index),
    Duplicate(Index, Index),
    /// Replaces a member's value by any JSON text.
    Replace(Index, String),
    /// Escapes a letter of a member's key (`"i\u0064"` still names `id`).
    EscapeKey(Index),
    Truncate(Index),
    InsertByte(Index, u8),
    DeleteByte(Index),
    SetByte(Index, u8),
}

fn mutation() -> BoxedStrategy<Mutation> {
    let byte = prop_oneof![
        prop::sample::select(b"\"\\,:{}[] \n\t0-.eE+nt\x01\x7f".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        any::<Index>().prop_map(Mutation::Drop),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (any::<Index>(), json_value_text(false)).prop_map(|(a, v)| Mutation::Replace(a, v)),
        any::<Index>().prop_map(Mutation::EscapeKey),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), byte.clone()).prop_map(|(a, b)| Mutation::InsertByte(a, b)),
        any::<Index>().prop_map(Mutation::DeleteByte),
        (any::<Index>(), byte).prop_map(|(a, b)| Mutation::SetByte(a, b)),
    ]
    .boxed()
}

/// Writes members as a JSON object, taking the whitespace around every token from `spaces`.
fn assemble(members: &[(String, String)], spaces: &[String]) -> String {
    let mut spaces = spaces.iter().cycle();
    let mut ws = || spaces.next().map_or("", String::as_str);
    let mut out = String::new();
    out.push_str(ws());
    out.push('{');
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(ws());
        if key.starts_with('"') {
            out.push_str(key);
        } else {
            out.push_str(&json_string(key, 0));
        }
        out.push_str(ws());
        out.push(':');
        out.push_str(ws());
        out.push_str(value);
        out.push_str(ws());
    }
    out.push('}');
    out.push_str(ws());
    out
}

fn apply(
    mutations: &[Mutation],
    members: &mut Vec<(String, String)>,
    spaces: &[String],
) -> Vec<u8> {
    for m in mutations {
        if members.is_empty() {
            break;
        }
        match m {
            Mutation::Drop(i) => {
                members.remove(i.index(members.len()));
            }
            Mutation::Duplicate(from, to) => {
                let member = members[from.index(members.len())].clone();
                let at = to.index(members.len() + 1);
                members.insert(at, member);
            }
            Mutation::Replace(i, value) => {
                let at = i.index(members.len());
                members[at].1.clone_from(value);
            }
            Mutation::EscapeKey(i) => {
                let at = i.index(members.len());
                let key = &members[at].0;
                if !key.starts_with('"') {
                    members[at].0 = json_string(key, 1);
                }
            }
            _ => {}
        }
    }
    let mut bytes = assemble(members, spaces).into_bytes();
    for m in mutations {
        match *m {
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
            Mutation::InsertByte(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
            Mutation::DeleteByte(i) if !bytes.is_empty() => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::SetByte(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            _ => {}
        }
    }
    bytes
}

/// Any event-shaped message: a generated event of the common shape or written in any way, then
/// zero to three mutations.
fn event_message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![event_members(true), event_members(false)],
        prop::collection::vec(ws(), 1..48),
        prop_oneof![
            3 => Just(Vec::new()),
            2 => prop::collection::vec(mutation(), 1..=3),
        ],
    )
        .prop_map(|(mut members, spaces, mutations)| apply(&mutations, &mut members, &spaces))
}

/// An event of the common shape: valid, no escapes, simple numbers, any whitespace.
fn plain_event() -> impl Strategy<Value = Vec<u8>> {
    (event_members(true), prop::collection::vec(ws(), 1..48))
        .prop_map(|(members, spaces)| assemble(&members, &spaces).into_bytes())
}

/// `cases` cases, unless `PROPTEST_CASES` asks for another number (for a long soak run).
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

// ---- properties ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(8192))]

    #[test]
    fn same_result_on_event_shaped_messages(bytes in event_message()) {
        check_same(&bytes)?;
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn common_shape_takes_the_fast_path(bytes in plain_event()) {
        prop_assert!(
            check_same(&bytes)?,
            "fast path refused {}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn same_result_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_same(&bytes)?;
    }

    #[test]
    fn same_result_on_json_ish_text(text in "[{}\\[\\]\",:0-9a-z_\\\\ .eE+\\-]{0,200}") {
        check_same(text.as_bytes())?;
    }

    #[test]
    fn same_result_on_any_json(text in json_value_text(false)) {
        check_same(text.as_bytes())?;
    }
}

proptest! {
    #[test]
    fn string_stop_finds_the_first_stop_byte(
        bytes in prop::collection::vec(
            prop_oneof![
                1 => prop::sample::select(b"\"\\\x00\x1f\x20\x21\x5b\x5d\x7f\x80\xa2\xdc\xff".to_vec()),
                4 => any::<u8>(),
                8 => Just(b'a'),
            ],
            0..40,
        ),
        start in any::<Index>(),
    ) {
        let start = start.index(bytes.len() + 1);
        let expected = bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .map(|i| start + i);
        prop_assert_eq!(string_stop(&bytes, start), expected);
    }
}

// ---- examples ------------------------------------------------------------------------------

fn assert_same(text: &str) -> bool {
    match check_same(text.as_bytes()) {
        Ok(fast) => fast,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn fixtures_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/events");
    let mut fast = 0;
    for folder in ["valid", "invalid"] {
        for entry in fs::read_dir(dir.join(folder)).expect("fixture folder") {
            let bytes = fs::read(entry.expect("entry").path()).expect("fixture");
            fast += usize::from(check_same(&bytes).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    // Most valid fixtures are of the common shape; no invalid one may take the fast path.
    assert!(fast >= 10, "only {fast} fixtures took the fast path");
}

#[test]
fn common_forms_take_the_fast_path() {
    for text in [
        r#"{"id":"e1","type":"page_view","user_id":"u1","ts":"2026-11-22T11:00:00Z"}"#,
        r#" { "id" : "e1" , "type" : "x" , "user_id" : "u1" , "ts" : 1795345200000 } "#,
        "{\n\t\"id\": \"é\",\r\n \"type\": \"action\", \"user_id\": \"ü\", \"ts\": \"2026-11-22 11:00:00.123456+05:30\"}",
        r#"{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"nps","score":0,"comment":""}"#,
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":0.1,"currency":"EUR"}"#,
        r#"{"id":"e","type":"refund","user_id":"u","ts":1795345200000,"amount":123456789012}"#,
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":123456789012.5678}"#,
        r#"{"id":"e","type":"feature_used","user_id":"u","ts":1795345200000,"feature":"f","score":[1,{"a":-1e999}]}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"session_id":null,"attrs":null,"comment":null}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{},"x":{"id":[],"y":[[[]]],"z":{}}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"n":[-0,0.5e-3,1E+9,true,false,null,"s"]}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"id2":"a","id2":"b"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"comment":"a \"quote\"\n\\\/\b\f\r\t"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":{"k\"":["\\"]}}"#,
    ] {
        assert!(assert_same(text), "fast path refused {text}");
    }
}

#[test]
fn uncertain_forms_fall_back() {
    for text in [
        // Escapes, in a value or a key.
        r#"{"id":"e\u0031","type":"x","user_id":"u","ts":1795345200000}"#,
        r#"{"\u0069d":"e","type":"x","user_id":"u","ts":1795345200000}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":"a\u0022b"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"comment":"\u00e9"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"session_id":"a\/b"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{"a":"\n"}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"a\/b":1}"#,
        // Number forms of known fields the scanner does not read itself.
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":1e2}"#,
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":1234567890123456789}"#,
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":-0.0}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"score":-1}"#,
        // Deeper nesting than the skipper follows.
        &format!(
            r#"{{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":{}{}}}"#,
            "[".repeat(66),
            "]".repeat(66)
        ),
        // Anything invalid.
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"id":"e"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000} x"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":01}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":[1,]}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":{"a":1,}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":{"a" 1}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":[}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":[1},"y":1}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":{"a":1],"y":1}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":1.}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":1.e5}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":1e+}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":-}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":tru}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"x":"a	b"}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{"a":"1","a":"2"}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{"a":1}}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{"":"1"}}"#,
        r#"{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"csat","score":0}"#,
        r#"{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"nps","score":5.0}"#,
        r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"amount":1,"currency":"eur"}"#,
        r#"{"id":"e","type":"feature_used","user_id":"u","ts":1795345200000,"feature":""}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000.0}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":946684799999}"#,
        r#"{"id":"e","type":"x","user_id":"u","ts":"2026-11-24T12:00:00Z"}"#,
        r#"{"id":"","type":"x","user_id":"u","ts":1795345200000}"#,
        r#"{"id":"e","type":"x","user_id":"u"}"#,
        r#"{}"#,
        r#"[]"#,
        "",
    ] {
        assert!(!assert_same(text), "fast path took {text}");
    }
}
