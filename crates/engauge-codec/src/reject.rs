//! Why an input event was refused: a stable reason label (metrics, dead-letter headers) and a
//! human message that names the field but never carries payload content.

use std::fmt;

/// The closed set of reasons an event can be refused for.
///
/// The labels from [`RejectReason::as_str`] are part of the public contract: they appear as the
/// `reason` label of the rejected-events counter and in the `engauge.error.reason` dead-letter
/// header, so they never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The message is larger than `max_event_bytes`.
    Oversize,
    /// The message is not UTF-8.
    InvalidUtf8,
    /// The message is not syntactically valid JSON.
    NotJson,
    /// Valid JSON, but the top level is not an object.
    NotObject,
    /// A field (or an `attrs` key) appears twice.
    DuplicateField,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A string field that must not be empty is empty.
    EmptyField,
    /// A string field is longer than its limit.
    FieldTooLong,
    /// `ts` is neither an RFC 3339 timestamp nor integer epoch milliseconds.
    BadTimestamp,
    /// `ts` is before 2000-01-01T00:00:00Z.
    TimestampOutOfRange,
    /// `ts` is more than `max_future_skew` ahead of the wall clock.
    TimestampInFuture,
    /// `survey` is a string but not one of `nps`, `csat`, `ces`.
    UnknownSurvey,
    /// `score` is outside the configured scale of its survey.
    ScoreOutOfRange,
    /// `amount` is negative.
    InvalidAmount,
    /// `currency` is not three uppercase ASCII letters.
    InvalidCurrency,
    /// `currency` is well-formed but has no rate to the base currency in the configuration.
    UnknownCurrency,
    /// `attrs` has more entries than allowed.
    TooManyAttrs,
    /// The event is valid but older than every open window instance (decided by the engine).
    TooLate,
}

impl RejectReason {
    /// Every reason, in declaration order (for pre-registering metric series).
    pub const ALL: &'static [RejectReason] = &[
        RejectReason::Oversize,
        RejectReason::InvalidUtf8,
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::DuplicateField,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::EmptyField,
        RejectReason::FieldTooLong,
        RejectReason::BadTimestamp,
        RejectReason::TimestampOutOfRange,
        RejectReason::TimestampInFuture,
        RejectReason::UnknownSurvey,
        RejectReason::ScoreOutOfRange,
        RejectReason::InvalidAmount,
        RejectReason::InvalidCurrency,
        RejectReason::UnknownCurrency,
        RejectReason::TooManyAttrs,
        RejectReason::TooLate,
    ];

    /// The stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversize => "oversize",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::DuplicateField => "duplicate_field",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::EmptyField => "empty_field",
            RejectReason::FieldTooLong => "field_too_long",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::TimestampOutOfRange => "timestamp_out_of_range",
            RejectReason::TimestampInFuture => "timestamp_in_future",
            RejectReason::UnknownSurvey => "unknown_survey",
            RejectReason::ScoreOutOfRange => "score_out_of_range",
            RejectReason::InvalidAmount => "invalid_amount",
            RejectReason::InvalidCurrency => "invalid_currency",
            RejectReason::UnknownCurrency => "unknown_currency",
            RejectReason::TooManyAttrs => "too_many_attrs",
            RejectReason::TooLate => "too_late",
        }
    }

    /// The reason whose label is `label`, if any.
    pub fn parse(label: &str) -> Option<RejectReason> {
        RejectReason::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == label)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that cannot be accepted.
///
/// `message` is lowercase, names the offending field and its constraint, and never contains user
/// ids, comments or any other payload content, so it is safe for logs and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Reject {
    pub reason: RejectReason,
    pub message: String,
}

impl Reject {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Reject {
            reason,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_and_parse_back() {
        for (i, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(RejectReason::parse(reason.as_str()), Some(*reason));
            assert!(
                RejectReason::ALL[..i]
                    .iter()
                    .all(|other| other.as_str() != reason.as_str())
            );
            assert!(
                reason
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        assert_eq!(RejectReason::ALL.len(), 19);
        assert_eq!(RejectReason::parse("nope"), None);
    }

    #[test]
    fn display_is_the_message() {
        let reject = Reject::new(RejectReason::MissingField, "missing field `user_id`");
        assert_eq!(reject.to_string(), "missing field `user_id`");
        assert_eq!(RejectReason::TooLate.to_string(), "too_late");
    }
}
