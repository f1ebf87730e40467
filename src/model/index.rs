//! Zero-copy indexes over a JSON text: the `index_struct!` macro reads the
//! few fields a model's accessors need, recording each string as a [`Span`]
//! (a range of the text) instead of copying it. Strings with escapes, which
//! do not appear verbatim in the text, are unescaped into a side buffer that
//! stays empty (and unallocated) in the common case.

use super::lenient::{bool_from_text, millis_from_text};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;

/// Marks a span that points into the side buffer rather than the text.
const IN_EXTRA: u32 = 1 << 31;

/// Where a string lives: a byte range of the indexed text, a byte range of
/// the side buffer of unescaped strings, or nowhere (absent or `null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    len: u32,
}

impl Span {
    /// No value.
    pub(crate) const NONE: Span = Span {
        start: u32::MAX,
        len: 0,
    };

    /// Whether there is no value.
    pub(crate) fn is_none(self) -> bool {
        self.start == u32::MAX
    }
}

impl Default for Span {
    fn default() -> Self {
        Span::NONE
    }
}

/// The state of an index being read: where the text starts and ends, and the
/// side buffer for strings that had escapes.
#[derive(Debug)]
pub(crate) struct Ctx {
    base: usize,
    len: usize,
    extra: String,
}

impl Ctx {
    /// A context for indexing `text`; spans are offsets into it. Fails for a
    /// text that offsets cannot address (2 GiB or more).
    pub(crate) fn new(text: &str) -> Result<Self, String> {
        if u32::try_from(text.len()).is_ok_and(|n| n < IN_EXTRA) {
            Ok(Ctx {
                base: text.as_ptr().addr(),
                len: text.len(),
                extra: String::new(),
            })
        } else {
            Err("JSON text too large to index (2 GiB or more)".to_owned())
        }
    }

    /// The side buffer, once reading is done.
    pub(crate) fn into_extra(self) -> Box<str> {
        self.extra.into_boxed_str()
    }

    /// The span of `s`: where it sits in the text if it is a slice of it,
    /// else a copy in the side buffer.
    fn span<E: de::Error>(&mut self, s: &str) -> Result<Span, E> {
        let off = s.as_ptr().addr().wrapping_sub(self.base);
        let (off, flag) = if off <= self.len && s.len() <= self.len - off {
            (off, 0)
        } else {
            let off = self.extra.len();
            self.extra.push_str(s);
            (off, IN_EXTRA)
        };
        // Both buffers are shorter than `IN_EXTRA` (checked in `new`; the side
        // buffer only holds unescaped strings, shorter than their source).
        match (u32::try_from(off), u32::try_from(s.len())) {
            (Ok(start), Ok(len)) if start < IN_EXTRA => Ok(Span {
                start: start | flag,
                len,
            }),
            _ => Err(E::custom("JSON text too large to index")),
        }
    }
}

/// The text an index was read from and its side buffer, to resolve spans.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Texts<'a> {
    /// The indexed text.
    pub(crate) text: &'a str,
    /// The side buffer ([`Ctx::into_extra`]).
    pub(crate) extra: &'a str,
}

impl<'a> Texts<'a> {
    /// The string at `span`; `None` for [`Span::NONE`].
    pub(crate) fn get(self, span: Span) -> Option<&'a str> {
        if span.is_none() {
            return None;
        }
        let (buf, start) = if span.start & IN_EXTRA != 0 {
            (self.extra, span.start & !IN_EXTRA)
        } else {
            (self.text, span.start)
        };
        let start = start as usize;
        buf.get(start..start.checked_add(span.len as usize)?)
    }
}

/// A value an index reads with the help of a [`Ctx`].
pub(crate) trait Indexed<'de>: Sized + Default {
    /// Reads one value; `None` for JSON `null` (the field keeps its default).
    fn read<D: Deserializer<'de>>(d: D, cx: &mut Ctx) -> Result<Option<Self>, D::Error>;
}

/// A [`DeserializeSeed`] reading a `T` through [`Indexed::read`].
pub(crate) struct Seed<'c, T> {
    cx: &'c mut Ctx,
    _t: PhantomData<fn() -> T>,
}

impl<'c, T> Seed<'c, T> {
    /// A seed reading with `cx`.
    pub(crate) fn new(cx: &'c mut Ctx) -> Self {
        Seed {
            cx,
            _t: PhantomData,
        }
    }
}

impl<'de, T: Indexed<'de>> DeserializeSeed<'de> for Seed<'_, T> {
    type Value = Option<T>;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        T::read(d, self.cx)
    }
}

/// A visitor for a string that records its [`Span`].
pub(crate) struct SpanVisitor<'c> {
    pub(crate) cx: &'c mut Ctx,
}

impl<'de> Visitor<'de> for SpanVisitor<'_> {
    type Value = Option<Span>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Span>, E> {
        self.cx.span(s).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }
}

impl<'de> Indexed<'de> for Span {
    #[inline]
    fn read<D: Deserializer<'de>>(d: D, cx: &mut Ctx) -> Result<Option<Self>, D::Error> {
        d.deserialize_any(SpanVisitor { cx })
    }
}

/// A boolean sent as a boolean or a string ([`super::LenientBool`]), read
/// to what [`super::LenientBool::as_bool`] would say.
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
}

/// A timestamp sent as a number or a string ([`super::Timestamp`]), read
/// to what [`super::Timestamp::as_millis`] would say.
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
/// ([`super::StringList`]); checked when read, decoded when asked for.
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
}

/// Accepts what [`super::StringList`] accepts, without building it.
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

/// Defines a private, partial view of a JSON object read through
/// [`Indexed`]: only the named fields are read (each field type implements
/// `Indexed`), every other value is skipped without being built. Keys are
/// dispatched on their length first, then compared as bytes. A field sent
/// twice is an error (unless the first was `null`), as with derived structs.
macro_rules! index_struct {
    (
        $(#[$meta:meta])*
        struct $name:ident {
            $($wire:literal => $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        struct $name {
            $($field: $ty,)*
        }

        const _: () = {
        impl $name {
            /// Reads the fields from a map.
            fn read_map<'de, A>(
                map: A,
                cx: &mut $crate::model::index::Ctx,
            ) -> ::std::result::Result<Self, A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                let mut out = Self::default();
                Self::read_map_into(map, cx, &mut out)?;
                Ok(out)
            }

            /// Reads the fields from a map into `out` (a default value), in
            /// place: the index is not moved around on its way back.
            fn read_map_into<'de, A>(
                mut map: A,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy)]
                enum __Field {
                    $($field,)*
                    __Skip,
                }
                const _: () = assert!((__Field::__Skip as u32) <= 64, "too many fields");

                struct __Key(__Field);

                impl<'de> ::serde::Deserialize<'de> for __Key {
                    #[inline]
                    fn deserialize<D>(d: D) -> ::std::result::Result<Self, D::Error>
                    where
                        D: ::serde::Deserializer<'de>,
                    {
                        struct __KeyVisitor;

                        impl ::serde::de::Visitor<'_> for __KeyVisitor {
                            type Value = __Key;

                            fn expecting(
                                &self,
                                f: &mut ::std::fmt::Formatter<'_>,
                            ) -> ::std::fmt::Result {
                                f.write_str("a field name")
                            }

                            #[inline]
                            fn visit_str<E>(self, s: &str) -> ::std::result::Result<__Key, E>
                            where
                                E: ::serde::de::Error,
                            {
                                self.visit_bytes(s.as_bytes())
                            }

                            #[inline]
                            fn visit_bytes<E>(self, b: &[u8]) -> ::std::result::Result<__Key, E>
                            where
                                E: ::serde::de::Error,
                            {
                                #[allow(non_upper_case_globals)]
                                mod __len {
                                    $(pub(super) const $field: usize = $wire.len();)*
                                }
                                // A switch on the length, then a fixed-size compare.
                                Ok(__Key(match b.len() {
                                    $(__len::$field if b == $wire.as_bytes() => __Field::$field,)*
                                    _ => __Field::__Skip,
                                }))
                            }
                        }

                        // As a string: for text input serde_json neither copies
                        // nor revalidates it, and its short-string scan is
                        // faster than the one behind `deserialize_bytes`.
                        d.deserialize_str(__KeyVisitor)
                    }
                }

                let mut seen: u64 = 0;
                while let Some(__Key(key)) = map.next_key()? {
                    match key {
                        $(
                            __Field::$field => {
                                let bit = 1u64 << (__Field::$field as u32);
                                if seen & bit != 0 {
                                    return Err(<A::Error as ::serde::de::Error>::duplicate_field($wire));
                                }
                                if let Some(v) = map.next_value_seed(
                                    $crate::model::index::Seed::<$ty>::new(cx),
                                )? {
                                    out.$field = v;
                                    seen |= bit;
                                }
                            }
                        )*
                        __Field::__Skip => {
                            map.next_value::<::serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }

            /// Reads the object at the top of `d` (not `null`) into `out`
            /// (a default value), in place.
            #[allow(dead_code)]
            fn read_top<'de, D>(
                d: D,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), D::Error>
            where
                D: ::serde::Deserializer<'de>,
            {
                struct __TopVisitor<'c> {
                    cx: &'c mut $crate::model::index::Ctx,
                    out: &'c mut $name,
                }

                impl<'de> ::serde::de::Visitor<'de> for __TopVisitor<'_> {
                    type Value = ();

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str("a JSON object")
                    }

                    fn visit_map<A>(self, map: A) -> ::std::result::Result<(), A::Error>
                    where
                        A: ::serde::de::MapAccess<'de>,
                    {
                        $name::read_map_into(map, self.cx, self.out)
                    }
                }

                d.deserialize_map(__TopVisitor { cx, out })
            }
        }

        /// Reads a `$name` from an object; `null` is none.
        struct __ObjectVisitor<'c> {
            cx: &'c mut $crate::model::index::Ctx,
        }

        impl<'de> ::serde::de::Visitor<'de> for __ObjectVisitor<'_> {
            type Value = ::std::option::Option<$name>;

            fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A>(self, map: A) -> ::std::result::Result<Self::Value, A::Error>
            where
                A: ::serde::de::MapAccess<'de>,
            {
                $name::read_map(map, self.cx).map(Some)
            }

            fn visit_unit<E>(self) -> ::std::result::Result<Self::Value, E>
            where
                E: ::serde::de::Error,
            {
                Ok(None)
            }
        }

        impl<'de> $crate::model::index::Indexed<'de> for $name {
            fn read<D>(
                d: D,
                cx: &mut $crate::model::index::Ctx,
            ) -> ::std::result::Result<Option<Self>, D::Error>
            where
                D: ::serde::Deserializer<'de>,
            {
                d.deserialize_any(__ObjectVisitor { cx })
            }
        }
        };
    };
}

pub(crate) use index_struct;
