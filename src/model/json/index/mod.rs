//! Zero-copy indexes over a JSON text: the `index_struct!` macro reads the
//! few fields a model's accessors need, recording each string as a [`Span`]
//! (a range of the text) instead of copying it. Strings with escapes, which
//! do not appear verbatim in the text, are unescaped into a side buffer that
//! stays empty (and unallocated) in the common case.

use super::lenient::{bool_from_text, millis_from_text};
use super::scan::{Miss, Scan, Scanned};
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

    /// Forgets what was read (the side buffer), to read the text again.
    pub(crate) fn clear(&mut self) {
        self.extra.clear();
    }

    /// The span of a string's content with escapes (checked by the
    /// scanner: valid escape letters, four hex digits after `\u`),
    /// unescaped into the side buffer as serde_json would. `None`, with
    /// nothing written, for a `\u` surrogate: the pairing rules are left to
    /// serde_json.
    fn span_unescaped(&mut self, content: &str) -> Option<Span> {
        let start = self.extra.len();
        // Unescaped text is never longer than its escaped form: one
        // allocation at most.
        self.extra.reserve(content.len());
        let mut rest = content;
        while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
            self.extra.push_str(&rest[..i]);
            let (c, used) = match rest.as_bytes().get(i + 1) {
                Some(b'"') => ('"', 2),
                Some(b'\\') => ('\\', 2),
                Some(b'/') => ('/', 2),
                Some(b'b') => ('\u{8}', 2),
                Some(b'f') => ('\u{c}', 2),
                Some(b'n') => ('\n', 2),
                Some(b'r') => ('\r', 2),
                Some(b't') => ('\t', 2),
                Some(b'u') => {
                    let c = rest
                        .get(i + 2..i + 6)
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32);
                    match c {
                        Some(c) => (c, 6),
                        None => {
                            self.extra.truncate(start);
                            return None;
                        }
                    }
                }
                _ => {
                    self.extra.truncate(start);
                    return None;
                }
            };
            self.extra.push(c);
            rest = &rest[i + used..];
        }
        self.extra.push_str(rest);
        match (
            u32::try_from(start),
            u32::try_from(self.extra.len() - start),
        ) {
            (Ok(start), Ok(len)) if start < IN_EXTRA => Some(Span {
                start: start | IN_EXTRA,
                len,
            }),
            _ => {
                self.extra.truncate(start);
                None
            }
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

    /// Reads one value on the scanner's fast path, as [`Indexed::read`]
    /// would; a [`Miss`] where `read` would fail (or might). The default
    /// finds the value's text and hands it to `read`.
    #[inline]
    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        read_value(sc.value_str()?, cx)
    }
}

/// Reads one value's text (found and checked by the scanner) with
/// [`Indexed::read`]; a [`Miss`] where that fails.
fn read_value<'de, T: Indexed<'de>>(text: &'de str, cx: &mut Ctx) -> Scanned<Option<T>> {
    T::read(&mut serde_json::Deserializer::from_str(text), cx).map_err(|_| Miss)
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

    #[inline]
    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        if sc.null() {
            return Ok(None);
        }
        let (value, escaped) = sc.string()?;
        let content = value.get(1..value.len() - 1).ok_or(Miss)?;
        if escaped {
            return match cx.span_unescaped(content) {
                Some(span) => Ok(Some(span)),
                // A surrogate escape: serde_json pairs (or refuses) it.
                None => read_value(value, cx),
            };
        }
        cx.span::<de::value::Error>(content)
            .map(Some)
            .map_err(|_| Miss)
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

    fn scan(sc: &mut Scan<'de>, _: &mut Ctx) -> Scanned<Option<Self>> {
        sc.skip_value()?;
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
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum __Field {
            $($field,)*
            __Skip,
        }
        const _: () = assert!((__Field::__Skip as u32) <= 64, "too many fields");

        #[allow(non_upper_case_globals)]
        mod __len {
            $(pub(super) const $field: usize = $wire.len();)*
        }

        impl __Field {
            /// The field a key names, by its length first, then its bytes.
            #[inline]
            fn of(b: &[u8]) -> __Field {
                match b.len() {
                    $(__len::$field if b == $wire.as_bytes() => __Field::$field,)*
                    _ => __Field::__Skip,
                }
            }
        }

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
                                Ok(__Key(__Field::of(b)))
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

            /// Reads the object that comes next on the scanner into `out`
            /// (a default value), as [`Self::read_map_into`] would.
            fn scan_into<'de>(
                sc: &mut $crate::model::scan::Scan<'de>,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> $crate::model::scan::Scanned<()> {
                let mut seen: u64 = 0;
                sc.object(|sc, key| {
                    match __Field::of(key) {
                        $(
                            __Field::$field => {
                                let bit = 1u64 << (__Field::$field as u32);
                                if seen & bit != 0 {
                                    return Err($crate::model::scan::Miss);
                                }
                                if let Some(v) =
                                    <$ty as $crate::model::index::Indexed<'de>>::scan(sc, cx)?
                                {
                                    out.$field = v;
                                    seen |= bit;
                                }
                                Ok(())
                            }
                        )*
                        __Field::__Skip => sc.skip_value(),
                    }
                })
            }

            /// Reads the JSON text `text` (an object, with nothing after
            /// it but whitespace) into `out` (a default value): on the
            /// scanner's fast path if it can answer, else with serde_json.
            #[allow(dead_code)]
            fn read_text(
                text: &str,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), ::serde_json::Error> {
                if Self::read_scanned(text, cx, out).is_ok() {
                    return Ok(());
                }
                cx.clear();
                *out = Self::default();
                Self::read_parsed(text, cx, out)
            }

            /// Reads `text` on the scanner's path only.
            fn read_scanned(
                text: &str,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> $crate::model::scan::Scanned<()> {
                let mut sc = $crate::model::scan::Scan::new(text);
                Self::scan_into(&mut sc, cx, out)?;
                sc.end()
            }

            /// Reads `text` with serde_json only.
            fn read_parsed(
                text: &str,
                cx: &mut $crate::model::index::Ctx,
                out: &mut Self,
            ) -> ::std::result::Result<(), ::serde_json::Error> {
                let mut de = ::serde_json::Deserializer::from_str(text);
                Self::read_top(&mut de, cx, out)?;
                de.end()
            }

            /// Both readings of `text`, for tests: the scanner's (`None` for a
            /// miss) and serde_json's, each with its side buffer.
            #[cfg(test)]
            #[allow(dead_code, clippy::type_complexity)]
            fn both_readings(
                text: &str,
            ) -> (
                Option<(Self, Box<str>)>,
                ::std::result::Result<(Self, Box<str>), String>,
            ) {
                let mut cx = $crate::model::index::Ctx::new(text).expect("indexable");
                let mut out = Self::default();
                let fast = Self::read_scanned(text, &mut cx, &mut out)
                    .ok()
                    .map(|()| (out, cx.into_extra()));
                let mut cx = $crate::model::index::Ctx::new(text).expect("indexable");
                let mut out = Self::default();
                let slow = Self::read_parsed(text, &mut cx, &mut out)
                    .map(|()| (out, cx.into_extra()))
                    .map_err(|e| e.to_string());
                (fast, slow)
            }

            /// Test support: `Err` if the scanner accepts `text` where
            /// serde_json does not, or reads it differently; with `fast`,
            /// also if the scanner misses a text serde_json accepts.
            #[cfg(test)]
            #[allow(dead_code)]
            fn scan_agrees(text: &str, fast: bool) -> ::std::result::Result<(), String> {
                match Self::both_readings(text) {
                    (Some(scanned), Ok(parsed)) if scanned == parsed => Ok(()),
                    (None, Err(_)) => Ok(()),
                    (None, Ok(_)) if !fast => Ok(()),
                    (scanned, parsed) => Err(format!(
                        "scanner: {scanned:?}\nserde_json: {parsed:?}\ntext: {text}"
                    )),
                }
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

            #[inline]
            fn scan(
                sc: &mut $crate::model::scan::Scan<'de>,
                cx: &mut $crate::model::index::Ctx,
            ) -> $crate::model::scan::Scanned<Option<Self>> {
                if sc.null() {
                    return Ok(None);
                }
                let mut out = Self::default();
                Self::scan_into(sc, cx, &mut out)?;
                Ok(Some(out))
            }
        }
        };
    };
}

pub(crate) use index_struct;

/// Test support: texts derived from `text` by small edits (a byte range
/// removed, or a JSON-significant piece inserted), for checking the
/// scanner against serde_json on hostile variants of real payloads.
#[cfg(test)]
pub(crate) fn mutants(text: &str) -> impl proptest::strategy::Strategy<Value = String> + use<> {
    use proptest::prelude::*;
    let text = text.to_owned();
    let len = text.len();
    (
        0..=len,
        0..8usize,
        prop::sample::select(super::scan::JSON_PIECES),
        any::<bool>(),
    )
        .prop_map(move |(at, cut, piece, insert)| {
            let mut at = at;
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            if insert {
                format!("{}{piece}{}", &text[..at], &text[at..])
            } else {
                format!("{}{}", &text[..at], &text[end..])
            }
        })
}

/// Test support: every JSON object in the fixtures of `tests/fixtures/{dir}`:
/// each file's text as it is, and each object nested in it, compact and
/// pretty-printed.
#[cfg(test)]
pub(crate) fn fixture_objects(dir: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                out.push(v.to_string());
                out.push(serde_json::to_string_pretty(v).expect("serializable"));
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).expect("fixtures") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("fixture");
        walk(
            &serde_json::from_str(&text).expect("fixture JSON"),
            &mut out,
        );
        out.push(text);
    }
    assert!(out.len() > 10, "fixtures in {}", root.display());
    out
}
