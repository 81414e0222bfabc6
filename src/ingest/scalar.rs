//! A JSON value as far as a feed field cares: both the fast scanner of flat records
//! ([`super::scan`]) and the general decoder ([`super::decode`]) produce these.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON value as far as a feed field cares.
#[derive(Debug, PartialEq)]
pub enum Scalar<'de> {
    /// The field is not in the record.
    Absent,
    /// `null`.
    Null,
    /// A string, borrowed from the line when it has no escapes.
    Str(Cow<'de, str>),
    /// A negative integer (or any integer that fits `i64`).
    Int(i64),
    /// A non-negative integer beyond `i64`.
    UInt(u64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// An object (its content skipped).
    Object,
    /// An array (its content skipped).
    Array,
}

impl Scalar<'_> {
    /// The value as a message names it (`string "abc"`, `number 3`, `an object`).
    pub fn describe(&self) -> String {
        match self {
            Scalar::Absent | Scalar::Null => "null".into(),
            Scalar::Str(s) => {
                let shown: String = s.chars().take(40).collect();
                let more = if s.chars().count() > 40 { "…" } else { "" };
                format!("string \"{shown}{more}\"")
            }
            Scalar::Int(i) => format!("number {i}"),
            Scalar::UInt(u) => format!("number {u}"),
            Scalar::Float(f) => format!("number {f}"),
            Scalar::Bool(b) => format!("{b}"),
            Scalar::Object => "an object".into(),
            Scalar::Array => "an array".into(),
        }
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}
