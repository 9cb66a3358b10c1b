//! The fast path of event decoding: one pass over the bytes of an event in its common shape,
//! straight into an [`Event`] that borrows every string from the message.
//!
//! The serde-based path (`raw_event`, then `event_json`'s checks) handles any JSON and says why
//! an event is refused; most of its time goes into serde_json's general string scanning and the
//! visitor plumbing. Nearly every real event has a simple shape, which this scanner reads on its
//! own: an object whose keys and kept strings carry no backslash escapes, whose known numbers are
//! plain non-negative integers or decimals of at most 18 digits, with `attrs` a flat object of
//! strings and JSON's four whitespace bytes anywhere between tokens. Strings that are only
//! measured or skipped (`comment`, unknown fields) may also hold the one-byte escapes such as
//! `\"` and `\n`. Unknown fields may hold any JSON value, nested up to [`MAX_SKIP_DEPTH`] levels.
//!
//! [`decode`] answers `None` — "not sure, ask serde" — for everything else: any other escape, a
//! control character in a string, a negative number or an exponent in a known field, deeper
//! nesting, any syntax error and any event that fails a check. So the fast path never produces
//! a reject; it only has to be right about the events it accepts.
//!
//! Architecture Invariant: `decode(text)` is `None` or exactly the event the serde path decodes
//! from `text` (same values, every string borrowed). The property tests in `event_scan/tests.rs`
//! compare the two on generated valid, invalid and mutated events.

use std::borrow::Cow;

use engauge_core::time::EPOCH_2000;
use engauge_core::{Event, EventKind, Millis, Survey};

use crate::event_json::{
    Attrs, Currency, DecodeContext, MAX_ATTR_KEY, MAX_ATTR_VALUE, MAX_ATTRS, MAX_COMMENT,
    MAX_FEATURE, MAX_ID, MAX_SESSION_ID, MAX_TYPE, MAX_USER_ID, to_base_currency,
};
use crate::rfc3339::parse_rfc3339;

/// How deeply an unknown field's value may nest before the scanner gives up on it (serde's own
/// skipping has no limit).
const MAX_SKIP_DEPTH: u32 = 64;

/// Most significant digits of a number the scanner reads itself: enough for any `i64` below
/// 10^18 and for a decimal whose digits fit one `u64`, the form serde_json and the standard
/// library both parse to the correctly rounded `f64`.
const MAX_NUMBER_DIGITS: usize = 18;

/// An event with every field empty, for [`decode`] and [`crate::decode_event_into`] to fill.
pub fn empty_event<'a>() -> Event<'a> {
    Event {
        id: Cow::Borrowed(""),
        event_type: Cow::Borrowed(""),
        user_id: Cow::Borrowed(""),
        ts: 0,
        session_id: None,
        attrs: Attrs::new(),
        kind: EventKind::Plain,
    }
}

/// Decodes `text` into `event` (as made by [`empty_event`]) if it is an event of the common
/// shape that passes every check; `None` when the serde path must decide, leaving `event` in
/// an unspecified state. Filling the caller's event in place saves copying it around: with its
/// inline attrs an event is a few hundred bytes.
pub(crate) fn decode<'a>(text: &'a str, ctx: &DecodeContext, event: &mut Event<'a>) -> Option<()> {
    let mut scan = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut fields = Fields::default();
    scan.skip_ws();
    scan.expect(b'{')?;
    loop {
        scan.skip_ws();
        // `{}` lacks the required fields, and `,}` is a syntax error: a key must come next.
        scan.expect(b'"')?;
        let key = scan.string()?;
        scan.skip_ws();
        scan.expect(b':')?;
        scan.skip_ws();
        fields.member(key, &mut scan, event, ctx)?;
        scan.skip_ws();
        match scan.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    scan.skip_ws();
    if scan.pos != scan.bytes.len() || fields.seen & REQUIRED != REQUIRED {
        return None;
    }
    event.kind = fields.kind(&event.event_type, ctx)?;
    Some(())
}

/// A value kept for a field whose meaning depends on the event type, which may come later.
#[derive(Debug, Clone, Copy, Default)]
enum Scalar<'a> {
    /// Absent or `null`: the same to every check.
    #[default]
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    /// A boolean, object or array: valid JSON, wrong for every field that reads it.
    Other,
}

/// Bits of [`Fields::seen`], one per known field.
const ID: u16 = 1 << 0;
const TYPE: u16 = 1 << 1;
const USER_ID: u16 = 1 << 2;
const TS: u16 = 1 << 3;
const SESSION_ID: u16 = 1 << 4;
const ATTRS: u16 = 1 << 5;
const COMMENT: u16 = 1 << 6;
const FEATURE: u16 = 1 << 7;
const SURVEY: u16 = 1 << 8;
const SCORE: u16 = 1 << 9;
const AMOUNT: u16 = 1 << 10;
const CURRENCY: u16 = 1 << 11;
const REQUIRED: u16 = ID | TYPE | USER_ID | TS;

/// What the scanner knows beyond the event being filled: which known fields it has seen, and
/// the values of those whose meaning depends on the event type, which may come later.
#[derive(Debug, Default)]
struct Fields<'a> {
    seen: u16,
    feature: Scalar<'a>,
    survey: Scalar<'a>,
    score: Scalar<'a>,
    amount: Scalar<'a>,
    currency: Scalar<'a>,
}

impl<'a> Fields<'a> {
    /// Reads the value of member `key`, which the scanner is positioned at, into `event` or
    /// `self`. The type-independent fields are checked right away.
    fn member(
        &mut self,
        key: &'a str,
        scan: &mut Scanner<'a>,
        event: &mut Event<'a>,
        ctx: &DecodeContext,
    ) -> Option<()> {
        match key {
            "id" => {
                self.first(ID)?;
                event.id = Cow::Borrowed(scan.string_value(1, MAX_ID)?);
            }
            "type" => {
                self.first(TYPE)?;
                event.event_type = Cow::Borrowed(scan.string_value(1, MAX_TYPE)?);
            }
            "user_id" => {
                self.first(USER_ID)?;
                event.user_id = Cow::Borrowed(scan.string_value(1, MAX_USER_ID)?);
            }
            "ts" => {
                self.first(TS)?;
                event.ts = scan.timestamp(ctx)?;
            }
            "session_id" => {
                self.first(SESSION_ID)?;
                event.session_id = scan
                    .optional_string_value(1, MAX_SESSION_ID)?
                    .map(Cow::Borrowed);
            }
            "attrs" => {
                self.first(ATTRS)?;
                scan.attrs(&mut event.attrs)?;
            }
            "comment" => {
                // Only measured, as the serde path does: free text never enters the engine.
                self.first(COMMENT)?;
                if scan.peek()? == b'n' {
                    scan.literal(b"null")?;
                } else {
                    scan.expect(b'"')?;
                    if scan.skip_string()? > MAX_COMMENT {
                        return None;
                    }
                }
            }
            "feature" => {
                self.first(FEATURE)?;
                self.feature = scan.scalar()?;
            }
            "survey" => {
                self.first(SURVEY)?;
                self.survey = scan.scalar()?;
            }
            "score" => {
                self.first(SCORE)?;
                self.score = scan.scalar()?;
            }
            "amount" => {
                self.first(AMOUNT)?;
                self.amount = scan.scalar()?;
            }
            "currency" => {
                self.first(CURRENCY)?;
                self.currency = scan.scalar()?;
            }
            _ => scan.skip_value()?,
        }
        Some(())
    }

    /// `None` when the known field `bit` was seen before (a `duplicate_field`).
    fn first(&mut self, bit: u16) -> Option<()> {
        if self.seen & bit != 0 {
            return None;
        }
        self.seen |= bit;
        Some(())
    }

    /// The kind of an event of type `event_type`, if the fields of that type are valid.
    fn kind(&self, event_type: &str, ctx: &DecodeContext) -> Option<EventKind<'a>> {
        Some(match event_type {
            "feature_used" => EventKind::FeatureUsed {
                feature: Cow::Borrowed(string_within(self.feature, 1, MAX_FEATURE)?),
            },
            "survey_response" => {
                let Scalar::Str(name) = self.survey else {
                    return None;
                };
                let survey = Survey::parse(name)?;
                let Scalar::Int(score) = self.score else {
                    return None;
                };
                let (min, max) = ctx.scales.range(survey);
                let score = i32::try_from(score)
                    .ok()
                    .filter(|s| (min..=max).contains(s))?;
                EventKind::SurveyResponse { survey, score }
            }
            "purchase" => EventKind::Purchase {
                amount: money(self.amount, self.currency, ctx)?,
            },
            "refund" => EventKind::Refund {
                amount: money(self.amount, self.currency, ctx)?,
            },
            "subscription_cancelled" => EventKind::SubscriptionCancelled,
            "support_ticket" => EventKind::SupportTicket,
            "self_service_resolved" => EventKind::SelfServiceResolved,
            _ => EventKind::Plain,
        })
    }
}

fn string_within(value: Scalar<'_>, min: usize, max: usize) -> Option<&str> {
    match value {
        Scalar::Str(s) if (min..=max).contains(&s.len()) => Some(s),
        _ => None,
    }
}

/// `amount` and `currency` of a purchase or refund, in the base currency.
fn money(amount: Scalar<'_>, currency: Scalar<'_>, ctx: &DecodeContext) -> Option<f64> {
    // The scanner reads no negative numbers, and its decimals are finite.
    let amount = match amount {
        Scalar::Int(n) => n as f64,
        Scalar::Float(x) => x,
        _ => return None,
    };
    let currency = match currency {
        Scalar::Null => None,
        Scalar::Str(s) => Some(Currency::parse(s)?),
        _ => return None,
    };
    to_base_currency(amount, currency, ctx).ok()
}

/// Bytes that end the scan of a string's content: the closing quote, the backslash that starts
/// an escape, and the control characters that JSON forbids in strings (left to serde to refuse).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The position of the first [`STRING_STOP`] byte at or after `start`, looking at eight bytes at
/// a time (the strings of an event average a dozen bytes; the id alone is often 36).
fn string_stop(bytes: &[u8], start: usize) -> Option<usize> {
    let mut chunks = bytes.get(start..)?.chunks_exact(8);
    let mut at = start;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
        let found = stop_bytes(word);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| STRING_STOP[usize::from(b)])
        .map(|i| at + i)
}

/// Sets the high bit of the bytes of `word` (little-endian) that are a quote, a backslash or
/// below 0x20. The classic zero-byte tricks can also mark a byte above a true match (a borrow
/// runs upwards), never below one, so the lowest marked byte is always exact.
fn stop_bytes(word: u64) -> u64 {
    let below = |word: u64, n: u8| word.wrapping_sub(LOW_BITS * u64::from(n)) & !word & HIGH_BITS;
    let quote = word ^ (LOW_BITS * u64::from(b'"'));
    let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
    below(quote, 1) | below(backslash, 1) | below(word, 0x20)
}

/// A cursor over the message. Every method answers `None` as soon as the input leaves the
/// shape the fast path handles; the position is then meaningless.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// Skips JSON whitespace: exactly the four bytes serde_json skips.
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The content of a string whose opening quote was just consumed; consumes the closing one.
    /// An escape or a control character makes it `None`: the string could not be borrowed.
    // Inlined into its half-dozen callers: about 20 calls per event, and ~4% of decoding time
    // went to the call itself.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let end = string_stop(self.bytes, start)?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.pos = end + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    /// Skips a string whose opening quote was just consumed, up to and including the closing
    /// one, and returns the byte length of its content once unescaped. The string may hold the
    /// escapes that stand for one byte (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`), so
    /// free text like a survey comment keeps the fast path; `\u` escapes, whose validity serde
    /// checks differently for known and unknown fields, are left to serde.
    fn skip_string(&mut self) -> Option<usize> {
        let start = self.pos;
        let mut escapes = 0;
        loop {
            let stop = string_stop(self.bytes, self.pos)?;
            match self.bytes[stop] {
                b'"' => {
                    self.pos = stop + 1;
                    return Some(stop - start - escapes);
                }
                b'\\' => match self.bytes.get(stop + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        escapes += 1;
                        self.pos = stop + 2;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A string value of `min..=max` bytes.
    fn string_value(&mut self, min: usize, max: usize) -> Option<&'a str> {
        self.expect(b'"')?;
        let s = self.string()?;
        (min..=max).contains(&s.len()).then_some(s)
    }

    /// A string value of `min..=max` bytes, or `null` (`Some(None)`).
    fn optional_string_value(&mut self, min: usize, max: usize) -> Option<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.string_value(min, max).map(Some)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// Any value of a field whose type is checked later.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => {
                self.pos += 1;
                Some(Scalar::Str(self.string()?))
            }
            b'0'..=b'9' => self.number(),
            b'n' => {
                self.literal(b"null")?;
                Some(Scalar::Null)
            }
            b't' | b'f' | b'{' | b'[' => {
                self.skip_value()?;
                Some(Scalar::Other)
            }
            _ => None,
        }
    }

    /// A non-negative number without exponent and with at most [`MAX_NUMBER_DIGITS`] digits:
    /// an integer (`Int`, as serde_json reads one that fits `i64`) or a decimal (`Float`, with the
    /// value serde_json's correctly rounded parser gives).
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.pos;
        let mut value: i64 = 0;
        while let Some(digit) = self.peek().and_then(digit) {
            if self.pos - start == MAX_NUMBER_DIGITS {
                return None;
            }
            value = value * 10 + digit;
            self.pos += 1;
        }
        let int_digits = self.pos - start;
        // JSON allows no leading zero, and a number starts with a digit.
        if int_digits == 0 || (int_digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        match self.peek() {
            Some(b'.') => {
                self.pos += 1;
                let fraction_start = self.pos;
                while self.peek().and_then(digit).is_some() {
                    self.pos += 1;
                }
                let fraction_digits = self.pos - fraction_start;
                if fraction_digits == 0 || int_digits + fraction_digits > MAX_NUMBER_DIGITS {
                    return None;
                }
                if let Some(b'e' | b'E') = self.peek() {
                    return None;
                }
                let x: f64 = self.text.get(start..self.pos)?.parse().ok()?;
                Some(Scalar::Float(x))
            }
            Some(b'e' | b'E') => None,
            _ => Some(Scalar::Int(value)),
        }
    }

    /// `ts`: an RFC 3339 string or integer epoch milliseconds, within the accepted range.
    fn timestamp(&mut self, ctx: &DecodeContext) -> Option<Millis> {
        let ts = match self.peek()? {
            b'"' => {
                self.pos += 1;
                parse_rfc3339(self.string()?)?
            }
            b'0'..=b'9' => match self.number()? {
                Scalar::Int(ms) => ms,
                _ => return None,
            },
            _ => return None,
        };
        (ts >= EPOCH_2000 && ts <= ctx.now.saturating_add(ctx.max_future_skew)).then_some(ts)
    }

    /// `attrs`: `null` or a flat object of at most [`MAX_ATTRS`] string entries with distinct,
    /// non-empty keys, appended to `out` in input order.
    fn attrs(&mut self, out: &mut Attrs<'a>) -> Option<()> {
        match self.next()? {
            b'{' => {}
            b'n' => return self.literal(b"ull"),
            _ => return None,
        }
        self.skip_ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            if out.len() == MAX_ATTRS {
                return None;
            }
            self.expect(b'"')?;
            let key = self.string()?;
            if key.is_empty() || key.len() > MAX_ATTR_KEY || out.iter().any(|(k, _)| k == key) {
                return None;
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.string_value(0, MAX_ATTR_VALUE)?;
            out.push((Cow::Borrowed(key), Cow::Borrowed(value)));
            self.skip_ws();
            match self.next()? {
                b',' => self.skip_ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Skips one JSON value of any kind, checking its syntax exactly as serde_json's skipping
    /// does (which never computes a number, so any exponent is fine here).
    fn skip_value(&mut self) -> Option<()> {
        // One bit per open container, set for an object; the innermost is the lowest bit.
        let mut objects: u64 = 0;
        let mut depth = 0;
        loop {
            // At the start of a value.
            match self.next()? {
                b'"' => {
                    self.skip_string()?;
                }
                b'-' => self.skip_number()?,
                b'0'..=b'9' => {
                    self.pos -= 1;
                    self.skip_number()?;
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                open @ (b'{' | b'[') => {
                    self.skip_ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.pos += 1;
                    } else {
                        if depth == MAX_SKIP_DEPTH {
                            return None;
                        }
                        depth += 1;
                        objects = objects << 1 | u64::from(open == b'{');
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return None,
            }
            // After a value: close containers until one continues with another member.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = objects & 1 == 1;
                self.skip_ws();
                match self.next()? {
                    b',' => {
                        self.skip_ws();
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                depth -= 1;
                objects >>= 1;
            }
        }
    }

    /// Skips `"key" :` and the whitespace after it, inside a skipped object.
    fn skip_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.skip_string()?;
        self.skip_ws();
        self.expect(b':')?;
        self.skip_ws();
        Some(())
    }

    /// Skips the rest of a number whose optional minus sign was consumed, with JSON's grammar:
    /// `(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn skip_number(&mut self) -> Option<()> {
        match self.next()? {
            b'0' => {
                if self.peek().and_then(digit).is_some() {
                    return None;
                }
            }
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.peek().and_then(digit)?;
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.peek().and_then(digit)?;
            self.skip_digits();
        }
        Some(())
    }

    fn skip_digits(&mut self) {
        while self.peek().and_then(digit).is_some() {
            self.pos += 1;
        }
    }
}

fn digit(byte: u8) -> Option<i64> {
    let d = byte.wrapping_sub(b'0');
    (d < 10).then_some(i64::from(d))
}

#[cfg(test)]
mod tests;
