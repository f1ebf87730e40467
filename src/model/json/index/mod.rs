//! Zero-copy indexes over a JSON text: the `index_struct!` macro reads the
//! few fields a model's accessors need, recording each string as a [`Span`]
//! (a range of the text) instead of copying it. Strings with escapes, which
//! do not appear verbatim in the text, are unescaped into a side buffer that
//! stays empty (and unallocated) in the common case.

mod macros;
mod values;

pub(crate) use macros::index_struct;
pub(crate) use values::{Flag, ListSpan, Millis, Present, RawSpan};

use super::scan::{Miss, Scan, Scanned};
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
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
