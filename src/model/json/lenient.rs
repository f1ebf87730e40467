//! Shared building blocks for lenient wire models: the `wire_struct!` macro that
//! keeps unknown fields without `#[serde(flatten)]`, raw JSON subtrees, and
//! values the wire sends in more than one representation (bool or string,
//! number or string, list or JSON-in-a-string).

use crate::error::{Error, Result};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use std::fmt;

/// Defines a wire model struct whose every named field is an `Option`, plus an
/// `other` map holding the fields it does not name.
///
/// The generated `Deserialize` is a plain map visitor (no `flatten`, no
/// buffering); a named field sent as explicit `null` is stored in `other` as
/// `null` so serialization gives back exactly what was received. The
/// generated `Serialize` writes only the fields that are present.
///
/// An optional `check = path;` names a `fn(&Self) -> Result<(), String>` run
/// after deserialization (used to reject alerts without an id).
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $wire:literal => $field:ident : $ty:ty,
            )*
        }
        $(check = $check:path;)?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: ::std::option::Option<$ty>,
            )*
            /// Fields this model does not name (and named fields sent as `null`),
            /// exactly as received.
            pub other: ::std::collections::BTreeMap<::std::string::String, ::serde_json::Value>,
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
            where
                D: ::serde::Deserializer<'de>,
            {
                #[allow(non_camel_case_types)]
                enum __Field {
                    $($field,)*
                    __Other(::std::string::String),
                }

                struct __FieldVisitor;

                impl<'de> ::serde::de::Visitor<'de> for __FieldVisitor {
                    type Value = __Field;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a field name")
                    }

                    #[inline]
                    fn visit_str<E>(self, s: &str) -> ::std::result::Result<__Field, E>
                    where
                        E: ::serde::de::Error,
                    {
                        #[allow(non_upper_case_globals)]
                        mod __len {
                            $(pub(super) const $field: usize = $wire.len();)*
                        }
                        // A switch on the length, then a fixed-size compare.
                        let b = s.as_bytes();
                        Ok(match b.len() {
                            $(__len::$field if b == $wire.as_bytes() => __Field::$field,)*
                            _ => __Field::__Other(s.to_owned()),
                        })
                    }

                    fn visit_bytes<E>(self, b: &[u8]) -> ::std::result::Result<__Field, E>
                    where
                        E: ::serde::de::Error,
                    {
                        match ::std::str::from_utf8(b) {
                            Ok(s) => self.visit_str(s),
                            Err(_) => Err(E::invalid_value(::serde::de::Unexpected::Bytes(b), &self)),
                        }
                    }
                }

                impl<'de> ::serde::Deserialize<'de> for __Field {
                    #[inline]
                    fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
                    where
                        D: ::serde::Deserializer<'de>,
                    {
                        // As a string: from text serde_json neither copies nor
                        // revalidates keys, and its short-string scan is faster
                        // than the one behind `deserialize_bytes`.
                        deserializer.deserialize_str(__FieldVisitor)
                    }
                }

                struct __Visitor;

                impl<'de> ::serde::de::Visitor<'de> for __Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($name), ")"))
                    }

                    fn visit_map<A>(self, mut __map: A) -> ::std::result::Result<$name, A::Error>
                    where
                        A: ::serde::de::MapAccess<'de>,
                    {
                        // One struct written in place: separate locals per field make
                        // the compiler shuffle all of them on every loop iteration.
                        let mut out = $name {
                            $($field: None,)*
                            other: ::std::collections::BTreeMap::new(),
                        };
                        while let Some(__key) = __map.next_key::<__Field>()? {
                            match __key {
                                $(
                                    __Field::$field => {
                                        if out.$field.is_some()
                                            || (!out.other.is_empty() && out.other.contains_key($wire))
                                        {
                                            return Err(<A::Error as ::serde::de::Error>::duplicate_field($wire));
                                        }
                                        match __map.next_value::<::std::option::Option<$ty>>()? {
                                            Some(v) => out.$field = Some(v),
                                            None => {
                                                out.other.insert(
                                                    ::std::string::String::from($wire),
                                                    ::serde_json::Value::Null,
                                                );
                                            }
                                        }
                                    }
                                )*
                                __Field::__Other(k) => {
                                    let v: ::serde_json::Value = __map.next_value()?;
                                    out.other.insert(k, v);
                                }
                            }
                        }
                        $(
                            $check(&out).map_err(<A::Error as ::serde::de::Error>::custom)?;
                        )?
                        Ok(out)
                    }
                }

                deserializer.deserialize_map(__Visitor)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error>
            where
                S: ::serde::Serializer,
            {
                use ::serde::ser::SerializeMap as _;
                let mut m = serializer.serialize_map(None)?;
                $(
                    if let Some(v) = &self.$field {
                        m.serialize_entry($wire, v)?;
                    }
                )*
                for (k, v) in &self.other {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    };
}

pub(crate) use wire_struct;

/// A JSON subtree kept as its original text until someone asks for it.
///
/// Parsing is deferred (and skipped entirely when nobody looks), which keeps
/// large free-form payloads such as CloudTrail `requestParameters` or Prisma
/// `resource.data` cheap. Two values are equal when their text is equal.
///
/// Deserialize it from bytes or text (`serde_json::from_slice` / `from_str`);
/// a `serde_json::Value` cannot be turned back into raw text.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Wraps JSON text, checking that it is valid JSON.
    pub fn from_string(json: String) -> Result<Self> {
        RawValue::from_string(json)
            .map(RawJson)
            .map_err(|e| Error::decode(format!("invalid JSON: {e}")))
    }

    /// The JSON text, as received.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Whether the value is the JSON literal `null`.
    pub fn is_null(&self) -> bool {
        self.0.get().trim() == "null"
    }

    /// Parses the text into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(self.0.get())
            .map_err(|e| Error::decode(format!("invalid embedded JSON: {e}")))
    }

    /// Parses the text into `T`, treating `null` as `None`.
    pub fn parse_opt<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        if self.is_null() {
            Ok(None)
        } else {
            self.parse().map(Some)
        }
    }

    /// Parses the text into a [`serde_json::Value`].
    pub fn to_value(&self) -> Result<serde_json::Value> {
        self.parse()
    }
}

/// An optional raw field parsed into `T`; `None` when absent or `null` (the
/// accessors of the lenient models' raw subtrees).
pub(crate) fn parse_raw<T: DeserializeOwned>(raw: Option<&RawJson>) -> Result<Option<T>> {
    match raw {
        Some(r) => r.parse_opt(),
        None => Ok(None),
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        RawJson(raw)
    }
}

/// A boolean the wire sends either as `true`/`false` or as the strings
/// `"true"`/`"false"` (CloudTrail `mfaAuthenticated`). The representation is
/// kept so the value serializes back as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LenientBool {
    /// A JSON boolean.
    Bool(bool),
    /// A JSON string (normally `"true"` or `"false"`).
    Text(String),
}

impl LenientBool {
    /// The boolean, if the value is a boolean or the string `true`/`false`
    /// (any case); `None` for any other string.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            LenientBool::Bool(b) => Some(*b),
            LenientBool::Text(s) => bool_from_text(s),
        }
    }
}

/// What [`LenientBool::as_bool`] says of a string.
pub(crate) fn bool_from_text(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

impl From<bool> for LenientBool {
    fn from(b: bool) -> Self {
        LenientBool::Bool(b)
    }
}

impl Serialize for LenientBool {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            LenientBool::Bool(b) => s.serialize_bool(*b),
            LenientBool::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for LenientBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or a string")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<LenientBool, E> {
                Ok(LenientBool::Bool(b))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<LenientBool, E> {
                Ok(LenientBool::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<LenientBool, E> {
                Ok(LenientBool::Text(s))
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time the wire sends either as a number (epoch milliseconds, as
/// Prisma Cloud does) or as a string (digits, or RFC 3339). The
/// representation is kept so the value serializes back as it came.
#[derive(Clone, Debug, PartialEq)]
pub enum Timestamp {
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    Text(String),
}

impl Timestamp {
    /// Milliseconds since the Unix epoch: numbers and digit strings are taken
    /// as milliseconds, other strings are parsed as RFC 3339.
    pub fn as_millis(&self) -> Option<i64> {
        match self {
            Timestamp::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            Timestamp::Text(s) => millis_from_text(s),
        }
    }
}

/// What [`Timestamp::as_millis`] says of a string: digits are milliseconds,
/// anything else is parsed as RFC 3339.
pub(crate) fn millis_from_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

impl From<i64> for Timestamp {
    fn from(ms: i64) -> Self {
        Timestamp::Number(ms.into())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Timestamp::Number(n) => n.serialize(s),
            Timestamp::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp as a number or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Number(n.into()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Timestamp, E> {
                serde_json::Number::from_f64(n)
                    .map(Timestamp::Number)
                    .ok_or_else(|| E::custom("timestamp is not a finite number"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Text(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<Timestamp, E> {
                Ok(Timestamp::Text(s))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of strings the wire sends either as a JSON array or as a string
/// holding a JSON array (Prisma Cloud `policy.labels`: `"[]"`). The
/// representation is kept so the value serializes back as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringList {
    /// A JSON array of strings.
    List(Vec<String>),
    /// A string, normally holding a JSON array of strings.
    Encoded(String),
}

impl StringList {
    /// The strings: the array itself, or the array decoded from the string.
    /// A string that is not a JSON array is taken as one item (none if blank).
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringList::List(v) => v.clone(),
            StringList::Encoded(s) => {
                let t = s.trim();
                if t.is_empty() {
                    return Vec::new();
                }
                match serde_json::from_str::<Vec<String>>(t) {
                    Ok(v) => v,
                    Err(_) => vec![t.to_owned()],
                }
            }
        }
    }
}

impl Serialize for StringList {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            StringList::List(v) => v.serialize(s),
            StringList::Encoded(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<StringList, E> {
                Ok(StringList::Encoded(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<StringList, E> {
                Ok(StringList::Encoded(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<StringList, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(StringList::List)
            }
        }
        d.deserialize_any(V)
    }
}

/// Deserializes either a string (`Left`) or a map into `T` (`Right`) without
/// buffering, for fields the wire sends as text in one shape and as an
/// object in another.
pub(crate) fn string_or_map<'de, D, T, F, G, R>(
    d: D,
    expecting: &'static str,
    from_str: F,
    from_map: G,
) -> std::result::Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    F: FnOnce(String) -> R,
    G: FnOnce(T) -> R,
{
    struct V<T, F, G> {
        expecting: &'static str,
        from_str: F,
        from_map: G,
        _t: std::marker::PhantomData<T>,
    }
    impl<'de, T, F, G, R> Visitor<'de> for V<T, F, G>
    where
        T: Deserialize<'de>,
        F: FnOnce(String) -> R,
        G: FnOnce(T) -> R,
    {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<R, E> {
            Ok((self.from_str)(s.to_owned()))
        }
        fn visit_string<E: de::Error>(self, s: String) -> std::result::Result<R, E> {
            Ok((self.from_str)(s))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<R, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.from_map)
        }
    }
    d.deserialize_any(V {
        expecting,
        from_str,
        from_map,
        _t: std::marker::PhantomData,
    })
}

#[cfg(test)]
#[allow(unreachable_pub)]
mod tests {
    use super::*;

    wire_struct! {
        /// A test model.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct Sample {
            /// a
            "aName" => a_name: String,
            /// type
            "type" => r#type: LenientBool,
        }
    }

    #[test]
    fn wire_struct_keeps_unknown_and_null_fields() {
        let json = r#"{"aName":"x","type":"true","extra":[1,2],"z":null}"#;
        let s: Sample = serde_json::from_str(json).unwrap();
        assert_eq!(s.a_name.as_deref(), Some("x"));
        assert_eq!(s.r#type.as_ref().and_then(LenientBool::as_bool), Some(true));
        assert_eq!(s.other.len(), 2);
        let back = serde_json::to_value(&s).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig);

        let s: Sample = serde_json::from_str(r#"{"aName":null}"#).unwrap();
        assert_eq!(s.a_name, None);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"aName":null}"#.to_owned()
        );
    }

    #[test]
    fn wire_struct_rejects_duplicates() {
        let err = serde_json::from_str::<Sample>(r#"{"aName":"x","aName":"y"}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `aName`"), "{err}");
    }

    #[test]
    fn timestamps_and_lists() {
        let t: Timestamp = serde_json::from_str("1617799423260").unwrap();
        assert_eq!(t.as_millis(), Some(1_617_799_423_260));
        let t: Timestamp = serde_json::from_str(r#""1617799423260""#).unwrap();
        assert_eq!(t.as_millis(), Some(1_617_799_423_260));
        let t: Timestamp = serde_json::from_str(r#""1970-01-01T00:00:01Z""#).unwrap();
        assert_eq!(t.as_millis(), Some(1000));
        let l: StringList = serde_json::from_str(r#""[\"a\",\"b\"]""#).unwrap();
        assert_eq!(l.to_vec(), vec!["a".to_owned(), "b".to_owned()]);
        let l: StringList = serde_json::from_str(r#"["c"]"#).unwrap();
        assert_eq!(l.to_vec(), vec!["c".to_owned()]);
        assert_eq!(serde_json::to_string(&l).unwrap(), r#"["c"]"#);
    }

    #[test]
    fn raw_json_defers_parsing() {
        let r: RawJson = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        assert_eq!(r.get(), r#"{"a": 1}"#);
        let v: serde_json::Value = r.parse().unwrap();
        assert_eq!(v["a"], 1);
        let n: RawJson = serde_json::from_str("null").unwrap();
        assert_eq!(n.parse_opt::<serde_json::Value>().unwrap(), None);
    }
}
