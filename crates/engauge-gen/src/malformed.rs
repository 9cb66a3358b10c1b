//! Malformed lines, so the consumer's rejection paths (reject counters, dead-letter topic) see
//! traffic. Each line is built from an ordinary generated event and breaks it in exactly one way,
//! named by its [`BadKind`].

use engauge_core::Survey;

use crate::event::{EventBody, GenEvent, Patch, write_decimal, write_event, write_i64};
use crate::population::user_number;
use crate::rng::Rng;

/// The ways a generated line can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// Not parseable as JSON: truncated, free text, trailing garbage or single quotes.
    NotJson,
    /// A JSON object without `user_id`.
    MissingUserId,
    /// A `survey_response` with a score outside its scale (NPS 0–10, CSAT 1–5, CES 1–7).
    ScoreOutOfRange,
    /// `ts` unparseable, empty, before 2000-01-01, far in the future, or epoch *seconds*.
    BadTimestamp,
    /// Bytes that are not UTF-8 inside a string value.
    InvalidUtf8,
    /// A well-formed `survey_response` whose comment makes the line at least `oversize_bytes`.
    Oversize,
    /// A `survey_response` naming a survey other than `nps`, `csat` or `ces`.
    UnknownSurvey,
    /// A field of the wrong JSON type: string score, numeric user_id, string amount or a
    /// non-string attribute value.
    WrongType,
}

impl BadKind {
    pub const ALL: [BadKind; 8] = [
        BadKind::NotJson,
        BadKind::MissingUserId,
        BadKind::ScoreOutOfRange,
        BadKind::BadTimestamp,
        BadKind::InvalidUtf8,
        BadKind::Oversize,
        BadKind::UnknownSurvey,
        BadKind::WrongType,
    ];
    pub const COUNT: usize = BadKind::ALL.len();

    /// Position in [`BadKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::MissingUserId => "missing_user_id",
            BadKind::ScoreOutOfRange => "score_out_of_range",
            BadKind::BadTimestamp => "bad_timestamp",
            BadKind::InvalidUtf8 => "invalid_utf8",
            BadKind::Oversize => "oversize",
            BadKind::UnknownSurvey => "unknown_survey",
            BadKind::WrongType => "wrong_type",
        }
    }
}

/// A decided malformation: the kind, which of its variants, and the oversize target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadLine {
    pub(crate) kind: BadKind,
    variant: u8,
    oversize_bytes: u32,
}

impl BadLine {
    pub(crate) fn pick(rng: &mut Rng, oversize_bytes: u32) -> BadLine {
        BadLine {
            kind: BadKind::ALL[rng.below(BadKind::COUNT as u64) as usize],
            variant: rng.below(256) as u8,
            oversize_bytes,
        }
    }
}

const OUT_OF_RANGE: [(Survey, i32); 7] = [
    (Survey::Nps, 11),
    (Survey::Nps, -1),
    (Survey::Nps, 100),
    (Survey::Csat, 0),
    (Survey::Csat, 6),
    (Survey::Ces, 0),
    (Survey::Ces, 8),
];

const BAD_TIMESTAMPS: [&[u8]; 5] = [
    b"\"2026-13-45T25:61:00Z\"",
    b"\"yesterday\"",
    b"\"\"",
    b"\"1999-12-31T23:59:59.999Z\"",
    b"\"2999-01-01T00:00:00.000Z\"",
];

const UNKNOWN_SURVEYS: [&[u8]; 3] = [b"\"nss\"", b"\"star_rating\"", b"\"ces2\""];

fn with_body(ev: &GenEvent, body: EventBody) -> GenEvent {
    GenEvent {
        body,
        bad: None,
        ..*ev
    }
}

fn survey(ev: &GenEvent, survey: Survey, score: i32) -> GenEvent {
    with_body(
        ev,
        EventBody::SurveyResponse {
            survey,
            score,
            comment: None,
        },
    )
}

/// Writes the malformed line for `ev`.
pub(crate) fn write_bad(ev: &GenEvent, bad: BadLine, buf: &mut Vec<u8>) {
    let variant = usize::from(bad.variant);
    let plain = with_body(ev, ev.body);
    match bad.kind {
        BadKind::NotJson => match variant % 4 {
            0 => {
                // Cut mid-object, at an ASCII byte so the fault is syntax, not encoding.
                let start = buf.len();
                write_event(&plain, buf, &Patch::default());
                let mut cut = start + (buf.len() - start) / 2;
                while cut > start && buf[cut] >= 0x80 {
                    cut -= 1;
                }
                buf.truncate(cut);
            }
            1 => {
                buf.extend_from_slice(b"GET /collect?uid=u");
                write_decimal(user_number(ev.user), buf);
                buf.extend_from_slice(b"&ev=");
                buf.extend_from_slice(ev.body.type_name().as_bytes());
                buf.extend_from_slice(b" HTTP/1.1");
            }
            2 => {
                write_event(&plain, buf, &Patch::default());
                buf.extend_from_slice(b"}");
            }
            _ => {
                buf.extend_from_slice(b"{'type': '");
                buf.extend_from_slice(ev.body.type_name().as_bytes());
                buf.extend_from_slice(b"', 'user_id': 'u");
                write_decimal(user_number(ev.user), buf);
                buf.extend_from_slice(b"'}");
            }
        },
        BadKind::MissingUserId => write_event(
            &plain,
            buf,
            &Patch {
                omit_user_id: true,
                ..Patch::default()
            },
        ),
        BadKind::ScoreOutOfRange => {
            let (which, score) = OUT_OF_RANGE[variant % OUT_OF_RANGE.len()];
            write_event(&survey(ev, which, score), buf, &Patch::default());
        }
        BadKind::BadTimestamp => {
            let mut raw = Vec::new();
            match variant % (BAD_TIMESTAMPS.len() + 1) {
                // Epoch seconds where milliseconds are expected: 1970, so before 2000.
                0 => write_i64(ev.ts / 1000, &mut raw),
                i => raw.extend_from_slice(BAD_TIMESTAMPS[i - 1]),
            }
            let patch = Patch {
                ts: Some(&raw),
                ..Patch::default()
            };
            write_event(&plain, buf, &patch);
        }
        BadKind::InvalidUtf8 => match variant % 3 {
            0 => {
                let mut raw = b"\"u".to_vec();
                write_decimal(user_number(ev.user), &mut raw);
                raw.extend_from_slice(b"\xff\xfe\"");
                let patch = Patch {
                    user_id: Some(&raw),
                    ..Patch::default()
                };
                write_event(&plain, buf, &patch);
            }
            1 => {
                let patch = Patch {
                    region: Some(b"\"e\xc3\x28u\""),
                    ..Patch::default()
                };
                write_event(&plain, buf, &patch);
            }
            _ => {
                // A Latin-1 encoded comment ("café très bien").
                let patch = Patch {
                    comment: Some(b"\"caf\xe9 tr\xe8s bien\""),
                    ..Patch::default()
                };
                write_event(&survey(ev, Survey::Csat, 5), buf, &patch);
            }
        },
        BadKind::Oversize => {
            const FILLER: &[u8] = b"lorem ipsum dolor sit amet ";
            let target = bad.oversize_bytes as usize;
            let mut raw = Vec::with_capacity(target + FILLER.len() + 2);
            raw.push(b'"');
            while raw.len() <= target {
                raw.extend_from_slice(FILLER);
            }
            raw.push(b'"');
            let patch = Patch {
                comment: Some(&raw),
                ..Patch::default()
            };
            write_event(&survey(ev, Survey::Nps, 3), buf, &patch);
        }
        BadKind::UnknownSurvey => {
            let patch = Patch {
                survey: Some(UNKNOWN_SURVEYS[variant % UNKNOWN_SURVEYS.len()]),
                ..Patch::default()
            };
            write_event(&survey(ev, Survey::Nps, 7), buf, &patch);
        }
        BadKind::WrongType => match variant % 4 {
            0 => {
                let patch = Patch {
                    score: Some(b"\"9\""),
                    ..Patch::default()
                };
                write_event(&survey(ev, Survey::Nps, 9), buf, &patch);
            }
            1 => {
                let mut raw = Vec::new();
                write_decimal(user_number(ev.user), &mut raw);
                let patch = Patch {
                    user_id: Some(&raw),
                    ..Patch::default()
                };
                write_event(&plain, buf, &patch);
            }
            2 => {
                let purchase = with_body(
                    ev,
                    EventBody::Purchase {
                        cents: 4900,
                        currency: None,
                    },
                );
                let patch = Patch {
                    amount: Some(b"\"49.00\""),
                    ..Patch::default()
                };
                write_event(&purchase, buf, &patch);
            }
            _ => {
                let patch = Patch {
                    region: Some(b"3"),
                    ..Patch::default()
                };
                write_event(&plain, buf, &patch);
            }
        },
    }
}
