//! The native JSON event format (SPEC §1): decoding and validation into [`engauge_core::Event`].
//!
//! Decoding runs in two passes. `raw_event` reads the JSON object into loosely typed values and
//! fails only on syntax; this module then checks each field in a fixed order
//! (`id`, `type`, `user_id`, `ts`, `session_id`, `attrs`, `comment`, then the fields of the event's
//! type), so an event with several problems is always refused for the same, first one.
//! A faster single-pass scanner (`event_scan`) is tried first; it decodes only events the two
//! passes would accept, to exactly the same [`Event`], and leaves everything else to them.
//!
//! Decisions the spec leaves open:
//! * `null` for an optional field means absent; for a required field it is `missing_field`.
//! * Type-specific fields (`feature`, `survey`, `score`, `amount`, `currency`) are only read for
//!   the types that use them; elsewhere they are ignored like unknown fields.
//! * `ts` as a float (e.g. `1.7e12`) is `bad_timestamp`; as a boolean, object or array it is
//!   `wrong_type`. Integer milliseconds must fit in `i64`.
//! * A non-number `amount` is `wrong_type`; a negative one is `invalid_amount`. JSON cannot carry
//!   NaN or infinity and a literal too large for `f64` is a syntax error (`not_json`).
//! * A non-string `currency` is `wrong_type`; a string that is not three uppercase ASCII letters
//!   is `invalid_currency`; a code without a configured rate is `unknown_currency`. Amounts are
//!   converted into the base currency; more than 1e12 after conversion is `invalid_amount`.
//! * An `attrs` key that appears twice is `duplicate_field`, like a top-level field.

use std::borrow::Cow;
use std::sync::Arc;

use engauge_core::time::{DAY, EPOCH_2000, format_duration};
use engauge_core::{Event, EventKind, Millis, Survey, SurveyScales};
use smallvec::SmallVec;

use crate::event_scan;
use crate::raw_event::{self, Field, RawAttrs, RawEvent, Unkept, Value};
use crate::rfc3339::parse_rfc3339;
use crate::{Reject, RejectReason};

/// The most `attrs` entries an event may carry.
pub const MAX_ATTRS: usize = 32;
/// Byte limits of the string fields.
pub(crate) const MAX_ID: usize = 128;
pub(crate) const MAX_TYPE: usize = 64;
pub(crate) const MAX_USER_ID: usize = 256;
pub(crate) const MAX_SESSION_ID: usize = 256;
pub(crate) const MAX_ATTR_KEY: usize = 64;
pub(crate) const MAX_ATTR_VALUE: usize = 256;
pub(crate) const MAX_FEATURE: usize = 128;
pub(crate) const MAX_COMMENT: usize = 8192;

/// What decoding needs from outside the message. The codec never reads a clock: `now` is passed
/// in, which keeps decoding deterministic and testable.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeContext {
    /// Wall-clock time at which the message is decoded.
    pub now: Millis,
    /// How far ahead of `now` an event's `ts` may be.
    pub max_future_skew: Millis,
    /// Larger messages are refused before being parsed.
    pub max_event_bytes: usize,
    /// Valid score range of each survey.
    pub scales: SurveyScales,
    /// The base currency and the rates that convert other currencies into it.
    pub currencies: Arc<CurrencyRates>,
}

/// Static conversion rates into the base currency (`[currencies]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrencyRates {
    base: Currency,
    /// Units of the base currency per unit of each other currency.
    rates: Vec<(Currency, f64)>,
}

impl Default for CurrencyRates {
    /// `USD`, with no other currency known.
    fn default() -> Self {
        CurrencyRates {
            base: Currency(*b"USD"),
            rates: Vec::new(),
        }
    }
}

impl CurrencyRates {
    /// A table with base currency `base` and `rates` (code, base units per unit). Codes must be
    /// three uppercase letters and rates finite and positive; the error names the offender.
    pub fn new(base: &str, rates: &[(String, f64)]) -> Result<CurrencyRates, String> {
        let base = Currency::parse(base)
            .ok_or_else(|| format!("base currency {base:?} is not three uppercase letters"))?;
        let mut table = Vec::with_capacity(rates.len());
        for (code, rate) in rates {
            let c = Currency::parse(code)
                .ok_or_else(|| format!("currency {code:?} is not three uppercase letters"))?;
            if c == base {
                return Err(format!(
                    "{code} is the base currency: its rate is 1 and cannot be configured"
                ));
            }
            if !(rate.is_finite() && *rate > 0.0) {
                return Err(format!("rate of {code} must be a finite number > 0"));
            }
            table.push((c, *rate));
        }
        Ok(CurrencyRates { base, rates: table })
    }

    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// Base units per unit of `currency`, if known.
    pub fn rate(&self, currency: Currency) -> Option<f64> {
        if currency == self.base {
            return Some(1.0);
        }
        self.rates
            .iter()
            .find(|(c, _)| *c == currency)
            .map(|&(_, r)| r)
    }
}

impl DecodeContext {
    pub const DEFAULT_MAX_FUTURE_SKEW: Millis = DAY;
    pub const DEFAULT_MAX_EVENT_BYTES: usize = 65_536;

    /// The defaults of SPEC §1 (1 day skew, 64 KiB, default survey scales) at wall clock `now`.
    pub fn new(now: Millis) -> Self {
        DecodeContext {
            now,
            max_future_skew: Self::DEFAULT_MAX_FUTURE_SKEW,
            max_event_bytes: Self::DEFAULT_MAX_EVENT_BYTES,
            scales: SurveyScales::default(),
            currencies: Arc::default(),
        }
    }
}

/// An ISO 4217 currency code as sent: three uppercase ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code, if `text` is three uppercase ASCII letters.
    pub fn parse(text: &str) -> Option<Currency> {
        match *text.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Some(Currency([a, b, c])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("parse admits only ASCII letters")
    }
}

/// Decodes and validates one native JSON event. Strings in the result borrow from `bytes`
/// unless the JSON escaped them.
///
/// The common shape of an event is decoded by a hand-written single-pass scanner
/// (`event_scan`); anything it is not certain about, every invalid event included, is decoded
/// again by the serde-based path, which therefore alone decides every reject and its message.
pub fn decode_event<'a>(bytes: &'a [u8], ctx: &DecodeContext) -> Result<Event<'a>, Reject> {
    let mut event = event_scan::empty_event();
    decode_event_into(bytes, ctx, &mut event)?;
    Ok(event)
}

/// [`decode_event`] into `event`, which must be as [`crate::empty_event`] made it: the caller
/// keeps the event where it uses it, so the hot paths (the pipeline, replay) move no event
/// around (one is a few hundred bytes).
pub fn decode_event_into<'a>(
    bytes: &'a [u8],
    ctx: &DecodeContext,
    event: &mut Event<'a>,
) -> Result<(), Reject> {
    let text = check_bytes(bytes, ctx)?;
    if event_scan::decode(text, ctx, event).is_none() {
        *event = decode_with_serde(text, ctx)?;
    }
    Ok(())
}

/// The checks on the raw message that come before any parsing: size, then UTF-8.
pub(crate) fn check_bytes<'a>(bytes: &'a [u8], ctx: &DecodeContext) -> Result<&'a str, Reject> {
    if bytes.len() > ctx.max_event_bytes {
        return Err(Reject::new(
            RejectReason::Oversize,
            format!(
                "event is {} bytes, more than the limit of {}",
                bytes.len(),
                ctx.max_event_bytes
            ),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(
            RejectReason::InvalidUtf8,
            format!("invalid utf-8 at byte {}", e.valid_up_to()),
        )
    })
}

/// The general path: any JSON, every reject with its reason and message.
pub(crate) fn decode_with_serde<'a>(
    text: &'a str,
    ctx: &DecodeContext,
) -> Result<Event<'a>, Reject> {
    let mut raw = RawEvent::default();
    match raw_event::read(text, &mut raw) {
        Ok(None) => validate(&mut raw, ctx),
        Ok(Some(kind)) => Err(Reject::new(
            RejectReason::NotObject,
            format!("event must be a json object, got {kind}"),
        )),
        Err(error) => Err(not_json(&error)),
    }
}

/// serde_json's syntax messages are fixed texts plus a position (they never quote the input),
/// lowercased to match every other message ("EOF while parsing ...").
fn not_json(error: &serde_json::Error) -> Reject {
    use serde_json::error::Category;
    let message = match error.classify() {
        Category::Syntax | Category::Eof => format!("invalid json: {error}").to_lowercase(),
        Category::Io | Category::Data => format!(
            "invalid json at line {} column {}",
            error.line(),
            error.column()
        ),
    };
    Reject::new(RejectReason::NotJson, message)
}

fn validate<'a>(raw: &mut RawEvent<'a>, ctx: &DecodeContext) -> Result<Event<'a>, Reject> {
    if let Some(field) = raw.duplicate {
        return Err(Reject::new(
            RejectReason::DuplicateField,
            format!("duplicate field `{}`", field.name()),
        ));
    }
    let id = required_str(Field::Id, raw.id.take(), MAX_ID)?;
    let event_type = required_str(Field::Type, raw.event_type.take(), MAX_TYPE)?;
    let user_id = required_str(Field::UserId, raw.user_id.take(), MAX_USER_ID)?;
    let ts = timestamp(raw.ts.take(), ctx)?;
    let session_id = optional_str(Field::SessionId, raw.session_id.take(), 1, MAX_SESSION_ID)?;
    let attrs = attrs(&mut raw.attrs)?;
    comment(raw.comment)?;
    let kind = kind(&event_type, raw, ctx)?;
    Ok(Event {
        id,
        event_type,
        user_id,
        ts,
        session_id,
        attrs,
        kind,
    })
}

fn kind<'a>(
    event_type: &str,
    raw: &mut RawEvent<'a>,
    ctx: &DecodeContext,
) -> Result<EventKind<'a>, Reject> {
    Ok(match event_type {
        "feature_used" => EventKind::FeatureUsed {
            feature: required_str(Field::Feature, raw.feature.take(), MAX_FEATURE)?,
        },
        "survey_response" => {
            let survey = survey(raw.survey.take())?;
            let score = score(raw.score.take(), survey, &ctx.scales)?;
            EventKind::SurveyResponse { survey, score }
        }
        "purchase" => EventKind::Purchase {
            amount: money(raw, ctx)?,
        },
        "refund" => EventKind::Refund {
            amount: money(raw, ctx)?,
        },
        "subscription_cancelled" => EventKind::SubscriptionCancelled,
        "support_ticket" => EventKind::SupportTicket,
        "self_service_resolved" => EventKind::SelfServiceResolved,
        _ => EventKind::Plain,
    })
}

fn missing(field: Field) -> Reject {
    Reject::new(
        RejectReason::MissingField,
        format!("missing field `{}`", field.name()),
    )
}

fn wrong_type(field: Field, expected: &str, got: &Value<'_>) -> Reject {
    Reject::new(
        RejectReason::WrongType,
        format!(
            "field `{}` must be {expected}, got {}",
            field.name(),
            got.kind()
        ),
    )
}

/// A required string field; `null` counts as missing.
fn required_str<'a>(
    field: Field,
    value: Option<Value<'a>>,
    max: usize,
) -> Result<Cow<'a, str>, Reject> {
    optional_str(field, value, 1, max)?.ok_or_else(|| missing(field))
}

/// An optional string field of `min..=max` bytes (`min` is 0 or 1); `null` counts as absent.
fn optional_str<'a>(
    field: Field,
    value: Option<Value<'a>>,
    min: usize,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Reject> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => {
            check_len(field.name(), s.len(), min, max)?;
            Ok(Some(s))
        }
        Some(other) => Err(wrong_type(field, "a string", &other)),
    }
}

fn check_len(what: &str, len: usize, min: usize, max: usize) -> Result<(), Reject> {
    if len < min {
        return Err(Reject::new(
            RejectReason::EmptyField,
            format!("field `{what}` is empty"),
        ));
    }
    if len > max {
        return Err(Reject::new(
            RejectReason::FieldTooLong,
            format!("field `{what}` is longer than {max} bytes"),
        ));
    }
    Ok(())
}

fn timestamp(value: Option<Value<'_>>, ctx: &DecodeContext) -> Result<Millis, Reject> {
    let bad = |what: &str| Reject::new(RejectReason::BadTimestamp, format!("field `ts` {what}"));
    let ts = match value {
        None | Some(Value::Null) => return Err(missing(Field::Ts)),
        Some(Value::Str(s)) => {
            parse_rfc3339(&s).ok_or_else(|| bad("is not an rfc 3339 timestamp"))?
        }
        Some(Value::Int(ms)) => ms,
        // Larger than i64::MAX milliseconds: certainly in the future.
        Some(Value::BigUint(_)) => Millis::MAX,
        Some(Value::Float(_)) => return Err(bad("must be integer epoch milliseconds, got float")),
        Some(other) => {
            return Err(wrong_type(
                Field::Ts,
                "an rfc 3339 string or integer epoch milliseconds",
                &other,
            ));
        }
    };
    if ts < EPOCH_2000 {
        return Err(Reject::new(
            RejectReason::TimestampOutOfRange,
            "field `ts` is before the year 2000",
        ));
    }
    if ts > ctx.now.saturating_add(ctx.max_future_skew) {
        return Err(Reject::new(
            RejectReason::TimestampInFuture,
            format!(
                "field `ts` is more than {} ahead of the wall clock",
                format_duration(ctx.max_future_skew)
            ),
        ));
    }
    Ok(ts)
}

pub(crate) type Attrs<'a> = SmallVec<[(Cow<'a, str>, Cow<'a, str>); 4]>;

fn attrs<'a>(raw: &mut RawAttrs<'a>) -> Result<Attrs<'a>, Reject> {
    match raw.kind {
        None | Some("null") => return Ok(Attrs::new()),
        Some("object") => {}
        Some(kind) => {
            return Err(Reject::new(
                RejectReason::WrongType,
                format!("field `attrs` must be an object, got {kind}"),
            ));
        }
    }
    let len = raw.len;
    if len > MAX_ATTRS {
        return Err(Reject::new(
            RejectReason::TooManyAttrs,
            format!("field `attrs` has {len} entries, more than the limit of {MAX_ATTRS}"),
        ));
    }
    // Keys and values are payload: messages name an entry by its position only. Entries are
    // checked in input order; `entries` stops just before the first non-string value.
    for (i, (key, value)) in raw.entries.iter().enumerate() {
        let entry = i + 1;
        if key.is_empty() {
            return Err(Reject::new(
                RejectReason::EmptyField,
                format!("field `attrs` entry {entry} has an empty key"),
            ));
        }
        if key.len() > MAX_ATTR_KEY {
            return Err(Reject::new(
                RejectReason::FieldTooLong,
                format!("field `attrs` entry {entry} key is longer than {MAX_ATTR_KEY} bytes"),
            ));
        }
        if value.len() > MAX_ATTR_VALUE {
            return Err(Reject::new(
                RejectReason::FieldTooLong,
                format!("field `attrs` entry {entry} value is longer than {MAX_ATTR_VALUE} bytes"),
            ));
        }
        if raw.entries[..i].iter().any(|(k, _)| k == key) {
            return Err(Reject::new(
                RejectReason::DuplicateField,
                format!("field `attrs` entry {entry} repeats an earlier key"),
            ));
        }
    }
    if let Some((position, kind)) = raw.non_string {
        return Err(Reject::new(
            RejectReason::WrongType,
            format!(
                "field `attrs` entry {} must be a string, got {kind}",
                position + 1
            ),
        ));
    }
    Ok(std::mem::take(&mut raw.entries))
}

/// `comment` is checked and dropped: free text never enters the engine.
fn comment(value: Option<Unkept>) -> Result<(), Reject> {
    match value {
        None | Some(Unkept::Null) => Ok(()),
        Some(Unkept::Str(len)) => check_len(Field::Comment.name(), len, 0, MAX_COMMENT),
        Some(Unkept::Other(kind)) => Err(Reject::new(
            RejectReason::WrongType,
            format!("field `comment` must be a string, got {kind}"),
        )),
    }
}

fn survey(value: Option<Value<'_>>) -> Result<Survey, Reject> {
    match value {
        None | Some(Value::Null) => Err(missing(Field::Survey)),
        Some(Value::Str(s)) => Survey::parse(&s).ok_or_else(|| {
            Reject::new(
                RejectReason::UnknownSurvey,
                "field `survey` must be one of nps, csat, ces",
            )
        }),
        Some(other) => Err(wrong_type(Field::Survey, "a string", &other)),
    }
}

fn score(value: Option<Value<'_>>, survey: Survey, scales: &SurveyScales) -> Result<i32, Reject> {
    let (min, max) = scales.range(survey);
    let out_of_range = || {
        Reject::new(
            RejectReason::ScoreOutOfRange,
            format!(
                "field `score` must be within {min}..={max} for {}",
                survey.as_str()
            ),
        )
    };
    match value {
        None | Some(Value::Null) => Err(missing(Field::Score)),
        Some(Value::Int(n)) => i32::try_from(n)
            .ok()
            .filter(|s| (min..=max).contains(s))
            .ok_or_else(out_of_range),
        Some(Value::BigUint(_)) => Err(out_of_range()),
        Some(other) => Err(wrong_type(Field::Score, "an integer", &other)),
    }
}

/// `amount` (and `currency`) of a purchase or refund, in the base currency.
fn money(raw: &mut RawEvent<'_>, ctx: &DecodeContext) -> Result<f64, Reject> {
    let amount = match raw.amount.take() {
        None | Some(Value::Null) => return Err(missing(Field::Amount)),
        Some(Value::Int(n)) => n as f64,
        Some(Value::BigUint(n)) => n as f64,
        Some(Value::Float(x)) => x,
        Some(other) => return Err(wrong_type(Field::Amount, "a number", &other)),
    };
    if !(amount.is_finite() && amount >= 0.0) {
        return Err(Reject::new(
            RejectReason::InvalidAmount,
            "field `amount` must be a finite number >= 0",
        ));
    }
    let currency = match raw.currency.take() {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(Currency::parse(&s).ok_or_else(|| {
            Reject::new(
                RejectReason::InvalidCurrency,
                "field `currency` must be three uppercase ascii letters",
            )
        })?),
        Some(other) => return Err(wrong_type(Field::Currency, "a string", &other)),
    };
    to_base_currency(amount, currency, ctx)
}

/// The largest amount accepted, in the base currency: money sums stay exact far beyond any
/// real total.
pub const MAX_AMOUNT: f64 = 1e12;

/// Converts an amount into the base currency: no `currency` means the base currency; a currency
/// without a rate is refused (`unknown_currency`), as is a converted amount over [`MAX_AMOUNT`].
pub(crate) fn to_base_currency(
    amount: f64,
    currency: Option<Currency>,
    ctx: &DecodeContext,
) -> Result<f64, Reject> {
    let rate = match currency {
        None => 1.0,
        Some(c) => ctx.currencies.rate(c).ok_or_else(|| {
            Reject::new(
                RejectReason::UnknownCurrency,
                format!(
                    "currency {} has no rate to the base currency {}",
                    c.as_str(),
                    ctx.currencies.base()
                ),
            )
        })?,
    };
    let converted = amount * rate;
    if converted > MAX_AMOUNT {
        return Err(Reject::new(
            RejectReason::InvalidAmount,
            "field `amount` is larger than 1e12 in the base currency",
        ));
    }
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_348_800_000; // 2026-11-22T12:00:00Z

    /// Euros convert at 2 base units each.
    fn ctx() -> DecodeContext {
        DecodeContext {
            currencies: Arc::new(
                CurrencyRates::new("USD", &[("EUR".to_owned(), 2.0)]).expect("rates"),
            ),
            ..DecodeContext::new(NOW)
        }
    }

    fn decode(text: &str) -> Result<Event<'_>, Reject> {
        decode_event(text.as_bytes(), &ctx())
    }

    fn reason(text: &str) -> RejectReason {
        match decode(text) {
            Ok(event) => panic!("accepted: {event:?}"),
            Err(reject) => reject.reason,
        }
    }

    #[test]
    fn minimal_page_view_borrows_everything() {
        let event =
            decode(r#"{"id":"e1","type":"page_view","user_id":"u1","ts":"2026-11-22T11:00:00Z"}"#)
                .expect("valid");
        assert!(matches!(event.id, Cow::Borrowed("e1")));
        assert!(matches!(event.user_id, Cow::Borrowed("u1")));
        assert_eq!(event.ts, NOW - engauge_core::time::HOUR);
        assert_eq!(event.kind, EventKind::Plain);
        assert!(event.attrs.is_empty());
        assert_eq!(event.session_id, None);
    }

    #[test]
    fn each_type_maps_to_its_kind() {
        let base = r#""id":"e","user_id":"u","ts":1795345200000"#;
        let cases = [
            (
                r#""type":"feature_used","feature":"export_pdf""#,
                EventKind::FeatureUsed {
                    feature: "export_pdf".into(),
                },
            ),
            (
                r#""type":"survey_response","survey":"csat","score":4"#,
                EventKind::SurveyResponse {
                    survey: Survey::Csat,
                    score: 4,
                },
            ),
            (
                r#""type":"purchase","amount":12.5,"currency":"EUR""#,
                EventKind::Purchase { amount: 25.0 },
            ),
            (
                r#""type":"refund","amount":3"#,
                EventKind::Refund { amount: 3.0 },
            ),
            (
                r#""type":"subscription_cancelled""#,
                EventKind::SubscriptionCancelled,
            ),
            (r#""type":"support_ticket""#, EventKind::SupportTicket),
            (
                r#""type":"self_service_resolved""#,
                EventKind::SelfServiceResolved,
            ),
            (r#""type":"screen_view""#, EventKind::Plain),
            (r#""type":"something_new","feature":7"#, EventKind::Plain),
        ];
        for (fields, kind) in cases {
            let text = format!("{{{base},{fields}}}");
            assert_eq!(decode(&text).expect("valid").kind, kind, "{text}");
        }
    }

    #[test]
    fn first_problem_wins() {
        // Missing id and wrong user_id type: id is checked first.
        assert_eq!(
            reason(r#"{"type":"x","user_id":1,"ts":1}"#),
            RejectReason::MissingField
        );
        // Duplicates are reported before anything else.
        assert_eq!(
            reason(r#"{"type":"x","type":"y"}"#),
            RejectReason::DuplicateField
        );
    }

    #[test]
    fn messages_never_carry_payload() {
        let secret = "s3cr3t-user";
        let cases = [
            format!(r#"{{"id":"e","type":"x","user_id":"{secret}","ts":"{secret}"}}"#),
            format!(
                r#"{{"id":"e","type":"x","user_id":"{secret}","ts":1,"attrs":{{"{secret}":1}}}}"#
            ),
            format!(
                r#"{{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"{secret}","score":1}}"#
            ),
            format!(
                r#"{{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"nps","score":"{secret}","comment":"{secret}"}}"#
            ),
            format!(r#"["{secret}"]"#),
            format!(r#"{{"id":"{secret}"#),
            format!(r#"{{"id":"{secret}" x"#),
        ];
        for text in cases {
            let reject = decode(&text).expect_err("invalid");
            assert!(!reject.message.contains(secret), "{}", reject.message);
            assert_eq!(
                reject.message,
                reject.message.to_lowercase(),
                "{}",
                reject.message
            );
        }
    }

    #[test]
    fn integer_timestamp_limits() {
        let at = |ts: &str| format!(r#"{{"id":"e","type":"x","user_id":"u","ts":{ts}}}"#);
        assert!(decode(&at(&EPOCH_2000.to_string())).is_ok());
        assert_eq!(
            reason(&at(&(EPOCH_2000 - 1).to_string())),
            RejectReason::TimestampOutOfRange
        );
        assert_eq!(reason(&at("-1")), RejectReason::TimestampOutOfRange);
        assert!(decode(&at(&(NOW + DAY).to_string())).is_ok());
        assert_eq!(
            reason(&at(&(NOW + DAY + 1).to_string())),
            RejectReason::TimestampInFuture
        );
        assert_eq!(
            reason(&at("18446744073709551615")),
            RejectReason::TimestampInFuture
        );
        assert_eq!(reason(&at("1.7e12")), RejectReason::BadTimestamp);
        assert_eq!(reason(&at("true")), RejectReason::WrongType);
    }

    #[test]
    fn skew_is_configurable() {
        let text = format!(r#"{{"id":"e","type":"x","user_id":"u","ts":{}}}"#, NOW + 10);
        let mut ctx = DecodeContext::new(NOW);
        ctx.max_future_skew = 0;
        let reject = decode_event(text.as_bytes(), &ctx).expect_err("future");
        assert_eq!(reject.reason, RejectReason::TimestampInFuture);
        assert_eq!(
            reject.message,
            "field `ts` is more than 0ms ahead of the wall clock"
        );
    }

    #[test]
    fn scales_are_configurable() {
        let text = r#"{"id":"e","type":"survey_response","user_id":"u","ts":1795345200000,"survey":"csat","score":7}"#;
        assert_eq!(reason(text), RejectReason::ScoreOutOfRange);
        let mut ctx = DecodeContext::new(NOW);
        ctx.scales.csat_max = 7;
        assert!(decode_event(text.as_bytes(), &ctx).is_ok());
    }

    #[test]
    fn oversize_is_checked_before_anything_else() {
        let mut ctx = DecodeContext::new(NOW);
        ctx.max_event_bytes = 4;
        let reject = decode_event(b"\xff\xff\xff\xff\xff", &ctx).expect_err("oversize");
        assert_eq!(reject.reason, RejectReason::Oversize);
        assert_eq!(reject.message, "event is 5 bytes, more than the limit of 4");
        assert_eq!(
            decode_event(b"\xff\xff\xff\xff", &ctx)
                .expect_err("utf8")
                .reason,
            RejectReason::InvalidUtf8
        );
    }

    #[test]
    fn attrs_keep_order_and_borrow() {
        let event = decode(
            r#"{"id":"e","type":"x","user_id":"u","ts":1795345200000,"attrs":{"plan":"pro","region":"e\u0075","empty":""}}"#,
        )
        .expect("valid");
        let attrs: Vec<(&str, &str)> = event
            .attrs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(attrs, [("plan", "pro"), ("region", "eu"), ("empty", "")]);
        assert!(matches!(event.attrs[0].1, Cow::Borrowed(_)));
        assert!(matches!(event.attrs[1].1, Cow::Owned(_)));
        assert!(!event.attrs.spilled());
    }

    #[test]
    fn currencies_convert_or_are_refused() {
        let base = r#""id":"e","user_id":"u","ts":1795345200000"#;
        let kind = |fields: &str| {
            decode(&format!("{{{base},{fields}}}")).map(|e| match e.kind {
                EventKind::Purchase { amount } => EventKind::Purchase { amount },
                EventKind::Refund { amount } => EventKind::Refund { amount },
                _ => EventKind::Plain,
            })
        };
        assert_eq!(
            kind(r#""type":"refund","amount":3,"currency":"USD""#),
            Ok(EventKind::Refund { amount: 3.0 })
        );
        assert_eq!(
            kind(r#""type":"refund","amount":3"#),
            Ok(EventKind::Refund { amount: 3.0 }),
            "no currency is the base currency"
        );
        let reject = kind(r#""type":"purchase","amount":3,"currency":"JPY""#).expect_err("no rate");
        assert_eq!(reject.reason, RejectReason::UnknownCurrency);
        assert!(reject.message.contains("JPY"), "{}", reject.message);
        let reject = kind(r#""type":"purchase","amount":6e11,"currency":"EUR""#).expect_err("big");
        assert_eq!(reject.reason, RejectReason::InvalidAmount);
        assert_eq!(
            kind(r#""type":"purchase","amount":5e11,"currency":"EUR""#),
            Ok(EventKind::Purchase { amount: 1e12 }),
            "exactly the limit is accepted"
        );
        assert!(CurrencyRates::new("usd", &[]).is_err());
        assert!(CurrencyRates::new("USD", &[("USD".to_owned(), 1.0)]).is_err());
        assert!(CurrencyRates::new("USD", &[("EUR".to_owned(), 0.0)]).is_err());
        assert!(CurrencyRates::new("USD", &[("EUR".to_owned(), f64::NAN)]).is_err());
    }

    #[test]
    fn currency_codes() {
        assert_eq!(
            Currency::parse("EUR").map(|c| c.as_str().to_owned()),
            Some("EUR".into())
        );
        for bad in ["eur", "EURO", "EU", "", "E1R", "ÉUR"] {
            assert_eq!(Currency::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn nulls_mean_absent_for_optional_fields() {
        let event = decode(
            r#"{"id":"e","type":"purchase","user_id":"u","ts":1795345200000,"session_id":null,"attrs":null,"comment":null,"currency":null,"amount":0}"#,
        )
        .expect("valid");
        assert_eq!(event.kind, EventKind::Purchase { amount: 0.0 });
        assert_eq!(
            reason(r#"{"id":null,"type":"x","user_id":"u","ts":1795345200000}"#),
            RejectReason::MissingField
        );
    }
}
