//! One generated event in structured form, and its native JSON encoding (SPEC §1).
//!
//! Encoding is a pure function of a [`GenEvent`], which is how a duplicate re-emitted later is
//! byte-identical to its original without the generator keeping the bytes.

use std::borrow::Cow;

use engauge_core::time::{DAY, HOUR, MINUTE, Millis, SECOND, civil_from_days, write_rfc3339};
use engauge_core::{Event, EventKind, Survey};

use crate::malformed::{self, BadKind, BadLine};
use crate::population::{user_number, user_profile};

/// Feature names in order of popularity (Zipf rank 1 first); further features are `feature_<n>`.
pub const FEATURE_NAMES: [&str; 30] = [
    "search",
    "export_pdf",
    "dark_mode",
    "share_link",
    "comments",
    "notifications",
    "templates",
    "import_csv",
    "dashboards",
    "calendar_sync",
    "bulk_edit",
    "slack_integration",
    "custom_fields",
    "reports",
    "api_keys",
    "two_factor_auth",
    "offline_mode",
    "time_tracking",
    "audit_log",
    "sso_login",
    "webhooks",
    "guest_access",
    "version_history",
    "ai_summary",
    "kanban_view",
    "gantt_chart",
    "automation_rules",
    "data_retention",
    "custom_domain",
    "white_label",
];

/// The name of the feature of popularity rank `index + 1`.
pub fn feature_name(index: u32) -> Cow<'static, str> {
    match FEATURE_NAMES.get(index as usize) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("feature_{}", u64::from(index) + 1)),
    }
}

/// Currencies of purchases and refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Currency {
    Usd,
    Eur,
    Gbp,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
        }
    }
}

/// What an event is, with its type-specific fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventBody {
    PageView,
    ScreenView,
    Action,
    /// `feature` is the 0-based popularity rank; see [`feature_name`].
    FeatureUsed {
        feature: u32,
    },
    SurveyResponse {
        survey: Survey,
        score: i32,
        comment: Option<&'static str>,
    },
    /// `currency` absent means the consumer's configured default.
    Purchase {
        cents: u64,
        currency: Option<Currency>,
    },
    Refund {
        cents: u64,
        currency: Option<Currency>,
    },
    SubscriptionCancelled,
    SupportTicket,
    SelfServiceResolved,
}

impl EventBody {
    /// The event's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::PageView => "page_view",
            EventBody::ScreenView => "screen_view",
            EventBody::Action => "action",
            EventBody::FeatureUsed { .. } => "feature_used",
            EventBody::SurveyResponse { .. } => "survey_response",
            EventBody::Purchase { .. } => "purchase",
            EventBody::Refund { .. } => "refund",
            EventBody::SubscriptionCancelled => "subscription_cancelled",
            EventBody::SupportTicket => "support_ticket",
            EventBody::SelfServiceResolved => "self_service_resolved",
        }
    }
}

/// One line of the stream in structured form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenEvent {
    pub(crate) id: u64,
    pub(crate) ts: Millis,
    pub(crate) emit: Millis,
    pub(crate) user: u64,
    pub(crate) session: Option<u64>,
    pub(crate) body: EventBody,
    pub(crate) duplicate: bool,
    pub(crate) bad: Option<BadLine>,
}

impl GenEvent {
    /// Event time (`ts`); for a malformed line, the time it would have had.
    pub fn event_time(&self) -> Millis {
        self.ts
    }

    /// When the line is emitted: `event_time` for most lines, later for delayed lines and
    /// duplicates. Non-decreasing along the stream, so it is what a real-time producer paces to.
    pub fn emit_time(&self) -> Millis {
        self.emit
    }

    /// Index of the user (Zipf rank − 1); see [`crate::user_profile`] and [`crate::user_id`].
    pub fn user_index(&self) -> u64 {
        self.user
    }

    pub fn body(&self) -> &EventBody {
        &self.body
    }

    /// True for the re-emitted copy of an event (same id, identical bytes).
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// True when emitted later than its event time (it may arrive out of order).
    pub fn is_delayed(&self) -> bool {
        !self.duplicate && self.emit > self.ts
    }

    /// Which kind of malformed line this is, if it is one.
    pub fn bad_kind(&self) -> Option<BadKind> {
        self.bad.map(|b| b.kind)
    }

    /// The event's `id`.
    pub fn id(&self) -> String {
        let mut buf = Vec::with_capacity(ID_LEN);
        write_base36(self.id, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The event's `session_id`, when it carries one.
    pub fn session_id(&self) -> Option<String> {
        self.session.map(|s| {
            let mut buf = Vec::with_capacity(ID_LEN + 1);
            buf.push(b's');
            write_base36(s, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    }

    /// Appends the line's bytes to `buf`, without a trailing newline. Well-formed lines are one
    /// JSON object; malformed lines are whatever their [`BadKind`] promises (possibly not UTF-8).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        match self.bad {
            None => write_event(self, buf, &Patch::default()),
            Some(bad) => malformed::write_bad(self, bad, buf),
        }
    }

    /// The engine's view of a well-formed line, for benchmarks and tests that bypass the codec;
    /// `None` for malformed lines. Amounts are converted to units but **not** between currencies
    /// (the codec converts to the base currency with its configured rates).
    pub fn to_core_event(&self) -> Option<Event<'static>> {
        if self.bad.is_some() {
            return None;
        }
        let profile = user_profile(self.user);
        let kind = match self.body {
            EventBody::PageView | EventBody::ScreenView | EventBody::Action => EventKind::Plain,
            EventBody::FeatureUsed { feature } => EventKind::FeatureUsed {
                feature: feature_name(feature),
            },
            EventBody::SurveyResponse { survey, score, .. } => {
                EventKind::SurveyResponse { survey, score }
            }
            EventBody::Purchase { cents, .. } => EventKind::Purchase {
                amount: cents as f64 / 100.0,
            },
            EventBody::Refund { cents, .. } => EventKind::Refund {
                amount: cents as f64 / 100.0,
            },
            EventBody::SubscriptionCancelled => EventKind::SubscriptionCancelled,
            EventBody::SupportTicket => EventKind::SupportTicket,
            EventBody::SelfServiceResolved => EventKind::SelfServiceResolved,
        };
        Some(Event {
            id: Cow::Owned(self.id()),
            event_type: Cow::Borrowed(self.body.type_name()),
            user_id: Cow::Owned(format!("u{}", user_number(self.user))),
            ts: self.ts,
            session_id: self.session_id().map(Cow::Owned),
            attrs: [
                (Cow::Borrowed("plan"), Cow::Borrowed(profile.plan)),
                (Cow::Borrowed("region"), Cow::Borrowed(profile.region)),
                (Cow::Borrowed("platform"), Cow::Borrowed(profile.platform)),
            ]
            .into_iter()
            .collect(),
            kind,
        })
    }
}

/// Raw JSON values that replace or remove fields: how malformed lines are built from an event.
#[derive(Debug, Default)]
pub(crate) struct Patch<'a> {
    pub(crate) omit_user_id: bool,
    pub(crate) user_id: Option<&'a [u8]>,
    pub(crate) ts: Option<&'a [u8]>,
    pub(crate) region: Option<&'a [u8]>,
    pub(crate) survey: Option<&'a [u8]>,
    pub(crate) score: Option<&'a [u8]>,
    pub(crate) comment: Option<&'a [u8]>,
    pub(crate) amount: Option<&'a [u8]>,
}

/// Width of an event id: 36^13 > 2^64, so every `u64` fits.
const ID_LEN: usize = 13;

/// Writes the JSON object for `ev`, with `patch` applied.
pub(crate) fn write_event(ev: &GenEvent, buf: &mut Vec<u8>, patch: &Patch<'_>) {
    let profile = user_profile(ev.user);
    buf.extend_from_slice(b"{\"id\":\"");
    write_base36(ev.id, buf);
    buf.extend_from_slice(b"\",\"type\":\"");
    buf.extend_from_slice(ev.body.type_name().as_bytes());
    buf.push(b'"');
    if !patch.omit_user_id {
        buf.extend_from_slice(b",\"user_id\":");
        match patch.user_id {
            Some(raw) => buf.extend_from_slice(raw),
            None => {
                buf.extend_from_slice(b"\"u");
                write_decimal(user_number(ev.user), buf);
                buf.push(b'"');
            }
        }
    }
    buf.extend_from_slice(b",\"ts\":");
    match patch.ts {
        Some(raw) => buf.extend_from_slice(raw),
        None if profile.integer_ts => write_i64(ev.ts, buf),
        None => {
            buf.push(b'"');
            write_rfc3339_millis(ev.ts, buf);
            buf.push(b'"');
        }
    }
    if let Some(session) = ev.session {
        buf.extend_from_slice(b",\"session_id\":\"s");
        write_base36(session, buf);
        buf.push(b'"');
    }
    buf.extend_from_slice(b",\"attrs\":{\"plan\":\"");
    buf.extend_from_slice(profile.plan.as_bytes());
    buf.extend_from_slice(b"\",\"region\":");
    match patch.region {
        Some(raw) => buf.extend_from_slice(raw),
        None => {
            buf.push(b'"');
            buf.extend_from_slice(profile.region.as_bytes());
            buf.push(b'"');
        }
    }
    buf.extend_from_slice(b",\"platform\":\"");
    buf.extend_from_slice(profile.platform.as_bytes());
    buf.extend_from_slice(b"\"}");
    match ev.body {
        EventBody::FeatureUsed { feature } => {
            buf.extend_from_slice(b",\"feature\":\"");
            buf.extend_from_slice(feature_name(feature).as_bytes());
            buf.push(b'"');
        }
        EventBody::SurveyResponse {
            survey,
            score,
            comment,
        } => {
            buf.extend_from_slice(b",\"survey\":");
            match patch.survey {
                Some(raw) => buf.extend_from_slice(raw),
                None => {
                    buf.push(b'"');
                    buf.extend_from_slice(survey.as_str().as_bytes());
                    buf.push(b'"');
                }
            }
            buf.extend_from_slice(b",\"score\":");
            match patch.score {
                Some(raw) => buf.extend_from_slice(raw),
                None => write_i64(i64::from(score), buf),
            }
            match (patch.comment, comment) {
                (Some(raw), _) => {
                    buf.extend_from_slice(b",\"comment\":");
                    buf.extend_from_slice(raw);
                }
                (None, Some(text)) => {
                    buf.extend_from_slice(b",\"comment\":");
                    write_json_string(text, buf);
                }
                (None, None) => {}
            }
        }
        EventBody::Purchase { cents, currency } | EventBody::Refund { cents, currency } => {
            buf.extend_from_slice(b",\"amount\":");
            match patch.amount {
                Some(raw) => buf.extend_from_slice(raw),
                None => write_cents(cents, buf),
            }
            if let Some(currency) = currency {
                buf.extend_from_slice(b",\"currency\":\"");
                buf.extend_from_slice(currency.as_str().as_bytes());
                buf.push(b'"');
            }
        }
        EventBody::PageView
        | EventBody::ScreenView
        | EventBody::Action
        | EventBody::SubscriptionCancelled
        | EventBody::SupportTicket
        | EventBody::SelfServiceResolved => {}
    }
    buf.push(b'}');
}

/// Fixed-width lowercase base 36.
pub(crate) fn write_base36(mut n: u64, buf: &mut Vec<u8>) {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    buf.extend_from_slice(&out);
}

pub(crate) fn write_decimal(mut n: u64, buf: &mut Vec<u8>) {
    let mut out = [0u8; 20];
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&out[i..]);
}

pub(crate) fn write_i64(n: i64, buf: &mut Vec<u8>) {
    if n < 0 {
        buf.push(b'-');
    }
    write_decimal(n.unsigned_abs(), buf);
}

/// `cents` as a JSON number with two decimals, e.g. `49.90`.
fn write_cents(cents: u64, buf: &mut Vec<u8>) {
    write_decimal(cents / 100, buf);
    let rest = cents % 100;
    buf.extend_from_slice(&[b'.', b'0' + (rest / 10) as u8, b'0' + (rest % 10) as u8]);
}

fn two_digits(n: i64, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// RFC 3339 in UTC, always with milliseconds: `2026-01-01T15:04:05.123Z`.
pub(crate) fn write_rfc3339_millis(ts: Millis, buf: &mut Vec<u8>) {
    let (year, month, day) = civil_from_days(ts.div_euclid(DAY));
    if !(0..=9999).contains(&year) {
        // Outside four-digit years; never generated, but stay correct.
        let mut text = String::new();
        write_rfc3339(ts, &mut text);
        buf.extend_from_slice(text.as_bytes());
        return;
    }
    let in_day = ts.rem_euclid(DAY);
    two_digits(year / 100, buf);
    two_digits(year % 100, buf);
    buf.push(b'-');
    two_digits(i64::from(month), buf);
    buf.push(b'-');
    two_digits(i64::from(day), buf);
    buf.push(b'T');
    two_digits(in_day / HOUR, buf);
    buf.push(b':');
    two_digits(in_day % HOUR / MINUTE, buf);
    buf.push(b':');
    two_digits(in_day % MINUTE / SECOND, buf);
    let ms = in_day % SECOND;
    buf.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// A JSON string literal of `text`, escaping quotes, backslashes and control characters.
pub(crate) fn write_json_string(text: &str, buf: &mut Vec<u8>) {
    buf.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[usize::from(b >> 4)]);
                buf.push(HEX[usize::from(b & 0xf)]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).expect("ascii")
    }

    #[test]
    fn number_and_time_formats() {
        assert_eq!(text(|b| write_decimal(0, b)), "0");
        assert_eq!(text(|b| write_decimal(u64::MAX, b)), u64::MAX.to_string());
        assert_eq!(text(|b| write_i64(-42, b)), "-42");
        assert_eq!(text(|b| write_cents(4990, b)), "49.90");
        assert_eq!(text(|b| write_cents(5, b)), "0.05");
        assert_eq!(text(|b| write_base36(0, b)), "0000000000000");
        assert_eq!(text(|b| write_base36(u64::MAX, b)), "3w5e11264sgsf");
        assert_eq!(
            text(|b| write_rfc3339_millis(1_767_225_600_000, b)),
            "2026-01-01T00:00:00.000Z"
        );
        assert_eq!(
            text(|b| write_rfc3339_millis(1_795_348_800_000 + 3_723_004, b)),
            "2026-11-22T13:02:03.004Z"
        );
        assert_eq!(
            text(|b| write_json_string("a \"b\" \\ \n\u{1} é", b)),
            "\"a \\\"b\\\" \\\\ \\n\\u0001 é\""
        );
    }

    #[test]
    fn feature_names_extend_past_the_table() {
        assert_eq!(feature_name(0), "search");
        assert_eq!(feature_name(1), "export_pdf");
        assert_eq!(feature_name(30), "feature_31");
    }
}
