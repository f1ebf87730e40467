//! The values an index reads besides plain strings: lenient booleans and
//! timestamps (read to what their public models would say), the presence of
//! a key, and the text of lists and raw subtrees, checked now and parsed when
//! asked for.

use super::{Ctx, Indexed, Span};
use crate::model::json::lenient::{bool_from_text, millis_from_text};
use crate::model::json::scan::{Miss, Scan, Scanned};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// A boolean sent as a boolean or a string ([`crate::model::LenientBool`]), read
/// to what [`crate::model::LenientBool::as_bool`] would say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Flag {
    /// Not sent (or `null`).
    #[default]
    Absent,
    /// Sent, but a string other than `true`/`false`.
    Unknown,
    /// True.
    True,
    /// False.
    False,
}

impl Flag {
    /// The boolean, if there is one.
    pub(crate) fn as_bool(self) -> Option<bool> {
        match self {
            Flag::True => Some(true),
            Flag::False => Some(false),
            Flag::Absent | Flag::Unknown => None,
        }
    }

    fn from_bool(b: bool) -> Flag {
        if b { Flag::True } else { Flag::False }
    }
}

impl<'de> Indexed<'de> for Flag {
    fn read<D: Deserializer<'de>>(d: D, _: &mut Ctx) -> Result<Option<Self>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<Flag>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or a string")
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Option<Flag>, E> {
                Ok(Some(Flag::from_bool(b)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Flag>, E> {
                Ok(Some(
                    bool_from_text(s).map_or(Flag::Unknown, Flag::from_bool),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<Flag>, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether a key was sent at all, whatever its value (which is skipped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Present(pub(crate) bool);

impl<'de> Indexed<'de> for Present {
    fn read<D: Deserializer<'de>>(d: D, _: &mut Ctx) -> Result<Option<Self>, D::Error> {
        de::IgnoredAny::deserialize(d)?;
        Ok(Some(Present(true)))
    }

    fn scan(sc: &mut Scan<'de>, _: &mut Ctx) -> Scanned<Option<Self>> {
        sc.skip_value()?;
        Ok(Some(Present(true)))
    }
}

/// A timestamp sent as a number or a string ([`crate::model::Timestamp`]), read
/// to what [`crate::model::Timestamp::as_millis`] would say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Millis {
    /// Not sent (or `null`).
    #[default]
    Absent,
    /// Sent, but not readable as a point in time.
    Invalid,
    /// Milliseconds since the Unix epoch.
    At(i64),
}

impl Millis {
    /// The milliseconds, if there are any.
    pub(crate) fn get(self) -> Option<i64> {
        match self {
            Millis::At(ms) => Some(ms),
            Millis::Absent | Millis::Invalid => None,
        }
    }
}

impl<'de> Indexed<'de> for Millis {
    fn read<D: Deserializer<'de>>(d: D, _: &mut Ctx) -> Result<Option<Self>, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<Millis>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a timestamp as a number or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<Millis>, E> {
                // As `serde_json::Number::as_i64`, else `as_f64` (saturating).
                Ok(Some(Millis::At(
                    i64::try_from(n).unwrap_or(n as f64 as i64),
                )))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<Millis>, E> {
                Ok(Some(Millis::At(n)))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Option<Millis>, E> {
                if n.is_finite() {
                    Ok(Some(Millis::At(n as i64)))
                } else {
                    Err(E::custom("timestamp is not a finite number"))
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Millis>, E> {
                Ok(Some(
                    millis_from_text(s).map_or(Millis::Invalid, Millis::At),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<Millis>, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V)
    }
}

/// The text of a list of strings sent as an array or as JSON in a string
/// ([`crate::model::StringList`]); checked when read, decoded when asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListSpan(pub(crate) Span);

impl<'de> Indexed<'de> for ListSpan {
    fn read<D: Deserializer<'de>>(d: D, cx: &mut Ctx) -> Result<Option<Self>, D::Error> {
        let Some(raw) = Option::<&'de RawValue>::deserialize(d)? else {
            return Ok(None);
        };
        serde_json::from_str::<ListCheck>(raw.get()).map_err(de::Error::custom)?;
        cx.span(raw.get()).map(|s| Some(ListSpan(s)))
    }

    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        if sc.null() {
            return Ok(None);
        }
        let text = sc.value_str()?;
        serde_json::from_str::<ListCheck>(text).map_err(|_| Miss)?;
        cx.span::<de::value::Error>(text)
            .map(|s| Some(ListSpan(s)))
            .map_err(|_| Miss)
    }
}

/// The text of any JSON value (not `null`), parsed when asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawSpan(pub(crate) Span);

impl<'de> Indexed<'de> for RawSpan {
    fn read<D: Deserializer<'de>>(d: D, cx: &mut Ctx) -> Result<Option<Self>, D::Error> {
        match Option::<&'de RawValue>::deserialize(d)? {
            Some(raw) => cx.span(raw.get()).map(|s| Some(RawSpan(s))),
            None => Ok(None),
        }
    }

    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        if sc.null() {
            return Ok(None);
        }
        let text = sc.value_str()?;
        cx.span::<de::value::Error>(text)
            .map(|s| Some(RawSpan(s)))
            .map_err(|_| Miss)
    }
}

/// Accepts what [`crate::model::StringList`] accepts, without building it.
struct ListCheck;

impl<'de> Deserialize<'de> for ListCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings or a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ListCheck, E> {
                Ok(ListCheck)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ListCheck, A::Error> {
                while seq.next_element::<StrCheck>()?.is_some() {}
                Ok(ListCheck)
            }
        }
        d.deserialize_any(V)
    }
}

/// Accepts a string, without keeping it.
struct StrCheck;

impl<'de> Deserialize<'de> for StrCheck {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<StrCheck, E> {
                Ok(StrCheck)
            }
        }
        d.deserialize_str(V)
    }
}
