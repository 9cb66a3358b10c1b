//! First pass of event decoding: serde visitors that read one JSON object into loosely typed
//! field values.
//!
//! The visitors never fail because of a value's type, only on JSON syntax, so the second pass
//! (`event_json`) can say exactly which field is wrong. Strings borrow from the input whenever the
//! JSON string has no escapes, and fields nobody reads (unknown keys, `comment`, containers where
//! a scalar was expected) are skipped without allocating.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;

use crate::event_json::MAX_ATTRS;

/// The fields of the native event format; every other key is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Id,
    Type,
    UserId,
    Ts,
    SessionId,
    Attrs,
    Feature,
    Survey,
    Score,
    Comment,
    Amount,
    Currency,
}

impl Field {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Type => "type",
            Field::UserId => "user_id",
            Field::Ts => "ts",
            Field::SessionId => "session_id",
            Field::Attrs => "attrs",
            Field::Feature => "feature",
            Field::Survey => "survey",
            Field::Score => "score",
            Field::Comment => "comment",
            Field::Amount => "amount",
            Field::Currency => "currency",
        }
    }

    pub(crate) fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "id" => Field::Id,
            "type" => Field::Type,
            "user_id" => Field::UserId,
            "ts" => Field::Ts,
            "session_id" => Field::SessionId,
            "attrs" => Field::Attrs,
            "feature" => Field::Feature,
            "survey" => Field::Survey,
            "score" => Field::Score,
            "comment" => Field::Comment,
            "amount" => Field::Amount,
            "currency" => Field::Currency,
            _ => return None,
        })
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A JSON value read without a type expectation. Containers are skipped; only their kind is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// An integer above `i64::MAX`.
    BigUint(u64),
    Float(f64),
    Bool(bool),
    Null,
    Object,
    Array,
}

impl Value<'_> {
    /// The JSON type, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) | Value::BigUint(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
            Value::Object => "object",
            Value::Array => "array",
        }
    }
}

/// A value whose content is not kept (`comment`): a string's byte length or another type's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unkept {
    Str(usize),
    Null,
    Other(&'static str),
}

/// The `attrs` field as read, filled in place (it is the largest part of an event).
#[derive(Debug, Default)]
pub(crate) struct RawAttrs<'a> {
    /// The JSON kind of the value (`"object"`, `"null"`, ...), `None` when the field is absent.
    pub kind: Option<&'static str>,
    /// For an object: its string-valued entries in input order, stopping at the first value that
    /// is not a string and after [`MAX_ATTRS`] entries.
    pub entries: SmallVec<[(Cow<'a, str>, Cow<'a, str>); 4]>,
    /// For an object: how many entries it had in all.
    pub len: usize,
    /// For an object: the position and kind of the first value that is not a string.
    pub non_string: Option<(usize, &'static str)>,
}

/// Every known field of one event object, as read.
#[derive(Debug, Default)]
pub(crate) struct RawEvent<'a> {
    pub id: Option<Value<'a>>,
    pub event_type: Option<Value<'a>>,
    pub user_id: Option<Value<'a>>,
    pub ts: Option<Value<'a>>,
    pub session_id: Option<Value<'a>>,
    pub attrs: RawAttrs<'a>,
    pub feature: Option<Value<'a>>,
    pub survey: Option<Value<'a>>,
    pub score: Option<Value<'a>>,
    pub comment: Option<Unkept>,
    pub amount: Option<Value<'a>>,
    pub currency: Option<Value<'a>>,
    /// The first known field that appeared more than once.
    pub duplicate: Option<Field>,
}

/// Reads one JSON document into `raw`; fails only on JSON syntax (including trailing
/// characters). `Ok(Some(kind))` names the type of a document that is valid JSON but not an
/// object. Filling a caller's `RawEvent` in place avoids moving it around.
pub(crate) fn read<'a>(
    text: &'a str,
    raw: &mut RawEvent<'a>,
) -> Result<Option<&'static str>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let not_object = (&mut de).deserialize_any(TopVisitor { raw })?;
    de.end()?;
    Ok(not_object)
}

struct TopVisitor<'r, 'de> {
    raw: &'r mut RawEvent<'de>,
}

impl<'de> Visitor<'de> for TopVisitor<'_, 'de> {
    /// `None` for an object, else the document's JSON type.
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let raw = self.raw;
        let mut seen = 0u16;
        while let Some(key) = map.next_key_seed(FieldSeed)? {
            let Some(field) = key else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if seen & field.bit() != 0 {
                raw.duplicate.get_or_insert(field);
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen |= field.bit();
            let slot = match field {
                Field::Id => &mut raw.id,
                Field::Type => &mut raw.event_type,
                Field::UserId => &mut raw.user_id,
                Field::Ts => &mut raw.ts,
                Field::SessionId => &mut raw.session_id,
                Field::Feature => &mut raw.feature,
                Field::Survey => &mut raw.survey,
                Field::Score => &mut raw.score,
                Field::Amount => &mut raw.amount,
                Field::Currency => &mut raw.currency,
                Field::Attrs => {
                    let kind = map.next_value_seed(AttrsSeed {
                        out: &mut raw.attrs,
                    })?;
                    raw.attrs.kind = Some(kind);
                    continue;
                }
                Field::Comment => {
                    raw.comment = Some(map.next_value_seed(UnkeptSeed)?);
                    continue;
                }
            };
            *slot = Some(map.next_value_seed(ValueSeed)?);
        }
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Some("array"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some("string"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some("integer"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some("integer"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some("float"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some("boolean"))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some("null"))
    }
}

/// Reads a top-level key: `Some(field)` for a known field, `None` for anything else.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Option<Field>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<Field>, D::Error> {
        de.deserialize_str(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Option<Field>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, key: &str) -> Result<Option<Field>, E> {
        Ok(Field::from_key(key))
    }
}

/// Reads any value as a [`Value`], borrowing unescaped strings.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value<'de>, D::Error> {
        de.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(i64::try_from(v).map_or(Value::BigUint(v), Value::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value<'de>, A::Error> {
        skip_map(map)?;
        Ok(Value::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value<'de>, A::Error> {
        skip_seq(seq)?;
        Ok(Value::Array)
    }
}

/// Reads any value keeping only a string's length, so a long comment is never copied.
struct UnkeptSeed;

impl<'de> DeserializeSeed<'de> for UnkeptSeed {
    type Value = Unkept;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Unkept, D::Error> {
        de.deserialize_any(UnkeptVisitor)
    }
}

struct UnkeptVisitor;

impl<'de> Visitor<'de> for UnkeptVisitor {
    type Value = Unkept;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Unkept, E> {
        Ok(Unkept::Str(v.len()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Unkept, E> {
        Ok(Unkept::Other("integer"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Unkept, E> {
        Ok(Unkept::Other("integer"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Unkept, E> {
        Ok(Unkept::Other("float"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unkept, E> {
        Ok(Unkept::Other("boolean"))
    }

    fn visit_unit<E>(self) -> Result<Unkept, E> {
        Ok(Unkept::Null)
    }

    fn visit_none<E>(self) -> Result<Unkept, E> {
        Ok(Unkept::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Unkept, A::Error> {
        skip_map(map)?;
        Ok(Unkept::Other("object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Unkept, A::Error> {
        skip_seq(seq)?;
        Ok(Unkept::Other("array"))
    }
}

/// Reads the `attrs` value into a [`RawAttrs`], returning the value's JSON kind.
struct AttrsSeed<'r, 'de> {
    out: &'r mut RawAttrs<'de>,
}

impl<'de> DeserializeSeed<'de> for AttrsSeed<'_, 'de> {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<&'static str, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AttrsSeed<'_, 'de> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<&'static str, A::Error> {
        let out = self.out;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let position = out.len;
            out.len += 1;
            if out.non_string.is_some() || out.entries.len() >= MAX_ATTRS {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match map.next_value_seed(ValueSeed)? {
                Value::Str(value) => out.entries.push((key, value)),
                other => out.non_string = Some((position, other.kind())),
            }
        }
        Ok("object")
    }

    fn visit_str<E>(self, _: &str) -> Result<&'static str, E> {
        Ok("string")
    }

    fn visit_i64<E>(self, _: i64) -> Result<&'static str, E> {
        Ok("integer")
    }

    fn visit_u64<E>(self, _: u64) -> Result<&'static str, E> {
        Ok("integer")
    }

    fn visit_f64<E>(self, _: f64) -> Result<&'static str, E> {
        Ok("float")
    }

    fn visit_bool<E>(self, _: bool) -> Result<&'static str, E> {
        Ok("boolean")
    }

    fn visit_unit<E>(self) -> Result<&'static str, E> {
        Ok("null")
    }

    fn visit_none<E>(self) -> Result<&'static str, E> {
        Ok("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<&'static str, A::Error> {
        skip_seq(seq)?;
        Ok("array")
    }
}

/// Reads an object key as a string, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Cow<'de, str>, D::Error> {
        de.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> RawEvent<'_> {
        let mut raw = RawEvent::default();
        match read(text, &mut raw).expect("valid json") {
            None => raw,
            Some(kind) => panic!("not an object: {kind}"),
        }
    }

    fn not_object(text: &str) -> Result<Option<&'static str>, serde_json::Error> {
        read(text, &mut RawEvent::default())
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let raw = object(r#"{"id":"abc","user_id":"a\"b"}"#);
        assert!(matches!(raw.id, Some(Value::Str(Cow::Borrowed("abc")))));
        assert!(matches!(&raw.user_id, Some(Value::Str(Cow::Owned(s))) if s == "a\"b"));
    }

    #[test]
    fn values_keep_their_kind() {
        let raw = object(
            r#"{"id":1,"type":-2,"user_id":1.5,"ts":18446744073709551615,
                "session_id":true,"feature":null,"survey":{"a":[1,{"b":2}]},"score":[1,2]}"#,
        );
        assert_eq!(raw.id, Some(Value::Int(1)));
        assert_eq!(raw.event_type, Some(Value::Int(-2)));
        assert_eq!(raw.user_id, Some(Value::Float(1.5)));
        assert_eq!(raw.ts, Some(Value::BigUint(u64::MAX)));
        assert_eq!(raw.session_id, Some(Value::Bool(true)));
        assert_eq!(raw.feature, Some(Value::Null));
        assert_eq!(raw.survey, Some(Value::Object));
        assert_eq!(raw.score, Some(Value::Array));
    }

    #[test]
    fn unknown_fields_are_skipped_and_duplicates_noted() {
        let raw = object(r#"{"x":{"id":"nested"},"id":"a","ts":1,"id":"b","ts":2}"#);
        assert_eq!(raw.id, Some(Value::Str(Cow::Borrowed("a"))));
        assert_eq!(raw.duplicate, Some(Field::Id));
    }

    #[test]
    fn escaped_key_names_match() {
        let raw = object(r#"{"\u0069d":"a"}"#);
        assert_eq!(raw.id, Some(Value::Str(Cow::Borrowed("a"))));
    }

    #[test]
    fn attrs_keep_at_most_the_limit() {
        let body: Vec<String> = (0..40).map(|i| format!("\"k{i}\":\"v\"")).collect();
        let text = format!("{{\"attrs\":{{{}}}}}", body.join(","));
        let raw = object(&text);
        assert_eq!(raw.attrs.kind, Some("object"));
        assert_eq!(raw.attrs.len, 40);
        assert_eq!(raw.attrs.entries.len(), MAX_ATTRS);
        assert_eq!(raw.attrs.non_string, None);
    }

    #[test]
    fn attrs_stop_at_the_first_non_string() {
        let raw = object(r#"{"attrs":{"a":"1","b":2,"c":"3","d":null}}"#);
        assert_eq!(raw.attrs.len, 4);
        assert_eq!(raw.attrs.entries.len(), 1);
        assert_eq!(raw.attrs.non_string, Some((1, "integer")));
        assert_eq!(object(r#"{"attrs":[1]}"#).attrs.kind, Some("array"));
        assert_eq!(object(r#"{}"#).attrs.kind, None);
    }

    #[test]
    fn comment_is_measured_not_kept() {
        let raw = object(r#"{"comment":"h\u00e9"}"#);
        assert_eq!(raw.comment, Some(Unkept::Str(3)));
    }

    #[test]
    fn top_level_kinds() {
        for (text, kind) in [
            ("[1,{}]", "array"),
            ("\"x\"", "string"),
            ("1", "integer"),
            ("-1", "integer"),
            ("1.5", "float"),
            ("true", "boolean"),
            ("null", "null"),
        ] {
            assert!(
                matches!(not_object(text), Ok(Some(k)) if k == kind),
                "{text}"
            );
        }
        assert!(matches!(not_object(" {} "), Ok(None)));
        assert!(not_object("{} x").is_err());
        assert!(not_object("{").is_err());
        assert!(not_object("").is_err());
    }
}
