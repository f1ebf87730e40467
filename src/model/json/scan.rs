//! A validating fast path for the indexes of [`super::index`]: walks a JSON
//! text once, reads the indexed fields and skips every other value, checking
//! the grammar as it goes.
//!
//! It answers only when it is sure. Anything it does not handle (a key with
//! escapes, nesting deeper than [`MAX_DEPTH`], and every malformed text) is a
//! [`Miss`]: the caller then reads the text again with `serde_json`, which
//! gives the authoritative result, the error message included. The scanner
//! must therefore never accept a text that `serde_json` rejects, nor index it
//! differently; a property test checks both against `serde_json` on mutated
//! inputs.

/// The scanner cannot answer; read the text with `serde_json` instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Miss;

/// Result of a scanning step.
pub(crate) type Scanned<T> = Result<T, Miss>;

/// Deepest nesting the scanner follows (one bit per level); deeper values
/// are left to `serde_json`.
const MAX_DEPTH: u32 = 64;

/// A position in a JSON text.
pub(crate) struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

/// Bytes that end a run of plain string content: `"`, `\` and controls.
#[inline]
fn is_special(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

const ONES: u64 = u64::MAX / 255;
const HIGHS: u64 = ONES << 7;

/// A mask with the high bit set in each byte of `w` that is special (an
/// exact test: no false positives, as in the classic has-zero-byte trick
/// with the borrow excluded by `!w`).
#[inline]
fn special_bytes(w: u64) -> u64 {
    let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let bs = w ^ (ONES * u64::from(b'\\'));
    let backslash = bs.wrapping_sub(ONES) & !bs;
    (ctrl | quote | backslash) & HIGHS
}

impl<'a> Scan<'a> {
    /// A scanner at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Scan { text, pos: 0 }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace.
    #[inline]
    pub(crate) fn ws(&mut self) {
        let b = self.bytes();
        while let Some(&c) = b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.pos += 1;
        }
    }

    /// Consumes `c` (after whitespace) or misses.
    #[inline]
    fn expect(&mut self, c: u8) -> Scanned<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Miss)
        }
    }

    /// Whether the next value (after whitespace) starts with `c`; does not
    /// consume it.
    #[inline]
    pub(crate) fn next_is(&mut self, c: u8) -> bool {
        self.ws();
        self.peek() == Some(c)
    }

    /// Consumes the literal `word` or misses.
    #[inline]
    fn literal(&mut self, word: &[u8]) -> Scanned<()> {
        if self.bytes()[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Miss)
        }
    }

    /// Consumes `null` if it comes next (after whitespace).
    #[inline]
    pub(crate) fn null(&mut self) -> bool {
        self.ws();
        if self.bytes()[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    /// Moves to the next special byte of a string's content (or the end).
    #[inline]
    fn skip_plain(&mut self) {
        let b = self.bytes();
        let mut i = self.pos;
        // Short strings (most keys and values): eight bytes at a time.
        for _ in 0..2 {
            let Some(word) = b.get(i..i + 8) else {
                break;
            };
            let found = special_bytes(u64::from_le_bytes(word.try_into().unwrap_or_default()));
            if found != 0 {
                self.pos = i + (found.trailing_zeros() / 8) as usize;
                return;
            }
            i += 8;
        }
        if b.len() - i >= 32 {
            // Long strings: memchr's vector search for the quote or
            // backslash, then one vectorizable pass for controls before it.
            let rest = &b[i..];
            let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            let run = &rest[..end];
            if run.iter().fold(u8::MAX, |m, &c| m.min(c)) >= 0x20 {
                self.pos = i + end;
                return;
            }
        }
        while let Some(&c) = b.get(i) {
            if is_special(c) {
                break;
            }
            i += 1;
        }
        self.pos = i;
    }

    /// Skips a string's content and closing quote (the opening quote is
    /// consumed); returns whether it had escapes. Checks what `serde_json`
    /// checks of a skipped string: no control characters, valid escape
    /// letters, four hex digits after `\u`.
    #[inline]
    fn string_rest(&mut self) -> Scanned<bool> {
        let mut escaped = false;
        loop {
            self.skip_plain();
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1;
                        }
                        Some(b'u') => {
                            let hex = self.bytes().get(self.pos + 1..self.pos + 5).ok_or(Miss)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Miss);
                            }
                            self.pos += 5;
                        }
                        _ => return Err(Miss),
                    }
                }
                // A control character, or the end of the text.
                _ => return Err(Miss),
            }
        }
    }

    /// Reads a string (after whitespace) that has no escapes: its content,
    /// a slice of the text. A string with escapes, or another value, misses.
    #[inline]
    pub(crate) fn plain_str(&mut self) -> Scanned<&'a str> {
        match self.string()? {
            (value, false) => value.get(1..value.len() - 1).ok_or(Miss),
            (_, true) => Err(Miss),
        }
    }

    /// Reads a string value (after whitespace): its text with the quotes,
    /// and whether it has escapes. Another value misses.
    #[inline]
    pub(crate) fn string(&mut self) -> Scanned<(&'a str, bool)> {
        self.expect(b'"')?;
        let start = self.pos - 1;
        let escaped = self.string_rest()?;
        Ok((self.text.get(start..self.pos).ok_or(Miss)?, escaped))
    }

    /// Skips the digits of a number whose sign, if any, is consumed.
    fn number(&mut self) -> Scanned<()> {
        let b = self.bytes();
        let digits = |mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = self.pos;
        match b.get(i) {
            Some(b'0') => {
                i += 1;
                if b.get(i).is_some_and(u8::is_ascii_digit) {
                    return Err(Miss);
                }
            }
            Some(b'1'..=b'9') => i = digits(i + 1),
            _ => return Err(Miss),
        }
        if b.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                return Err(Miss);
            }
            i = end;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                return Err(Miss);
            }
            i = end;
        }
        self.pos = i;
        Ok(())
    }

    /// Skips one value (after whitespace), checking it as `serde_json`
    /// checks a value it ignores.
    pub(crate) fn skip_value(&mut self) -> Scanned<()> {
        // One bit per open container: 1 for an object, 0 for an array.
        let mut stack: u64 = 0;
        let mut depth: u32 = 0;
        'value: loop {
            self.ws();
            let c = self.peek().ok_or(Miss)?;
            self.pos += 1;
            match c {
                b'"' => {
                    self.string_rest()?;
                }
                b'{' | b'[' => {
                    if depth == MAX_DEPTH {
                        return Err(Miss);
                    }
                    let object = c == b'{';
                    stack = (stack << 1) | u64::from(object);
                    depth += 1;
                    self.ws();
                    let close = if object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        stack >>= 1;
                        depth -= 1;
                    } else {
                        if object {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                b'-' => self.number()?,
                b'0'..=b'9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                _ => return Err(Miss),
            }
            // After a value: close containers until one continues.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let object = stack & 1 == 1;
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        if object {
                            self.key_colon()?;
                        }
                        continue 'value;
                    }
                    Some(b'}') if object => {}
                    Some(b']') if !object => {}
                    _ => return Err(Miss),
                }
                self.pos += 1;
                stack >>= 1;
                depth -= 1;
            }
        }
    }

    /// Skips an object key (after whitespace) and its colon.
    fn key_colon(&mut self) -> Scanned<()> {
        self.expect(b'"')?;
        self.string_rest()?;
        self.expect(b':')
    }

    /// The text of the next value (after whitespace), checked.
    pub(crate) fn value_str(&mut self) -> Scanned<&'a str> {
        self.ws();
        let start = self.pos;
        self.skip_value()?;
        self.text.get(start..self.pos).ok_or(Miss)
    }

    /// Walks the object that comes next (after whitespace), calling `field`
    /// with each key, which must consume the key's value.
    #[inline]
    pub(crate) fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Scanned<()>,
    ) -> Scanned<()> {
        self.expect(b'{')?;
        if self.next_is(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.plain_str()?;
            self.expect(b':')?;
            field(self, key.as_bytes())?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Miss),
            }
        }
    }

    /// Succeeds if only whitespace is left.
    pub(crate) fn end(&mut self) -> Scanned<()> {
        self.ws();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Miss)
        }
    }
}

/// Test support: pieces of JSON text, valid and broken, that the scanner
/// must judge as serde_json does (structure, escapes, numbers, literals,
/// keys, controls, non-ASCII).
#[cfg(test)]
pub(crate) const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\t",
    "\"",
    "\\",
    "\\u00e9",
    "\\ud800",
    "\\u12",
    "\\x",
    "a",
    "é",
    "0",
    "1",
    "-",
    ".",
    "e",
    "+",
    "true",
    "null",
    "fals",
    "tru",
    "\"k\"",
    "\"k\":",
    "\"id\":",
    "\"alertId\":\"X\",",
    "\"eventID\":\"x\",",
    "\"\"",
    "\u{1}",
    "12.5e-3",
    "\"s\\\"q\"",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn skips(text: &str) -> bool {
        let mut s = Scan::new(text);
        s.skip_value().and_then(|()| s.end()).is_ok()
    }

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        for text in [
            r#"{}"#,
            r#"[]"#,
            r#" { "a" : [ 1 , -2.5e+3 , true , false , null , "x\"\\\/\b\f\n\r\t\u00e9" ] } "#,
            r#"{"a":{"b":{"c":[[],{}]}}}"#,
            r#""\ud800""#,
            "0",
            "-0.0e0",
            "\"caf\u{e9} \u{1f600}\"",
        ] {
            assert!(serde_accepts(text), "{text}");
            assert!(skips(text), "{text}");
        }
    }

    #[test]
    fn rejects_what_serde_json_rejects() {
        for text in [
            "",
            "{",
            "}",
            "[1,]",
            r#"{"a":1,}"#,
            "{,}",
            "[,1]",
            "01",
            "-",
            "1.",
            "1e",
            "1e+",
            ".5",
            "+1",
            "tru",
            "nul",
            "truex",
            r#""a"#,
            "\"a\u{1}\"",
            r#""\x""#,
            r#""\u12g4""#,
            r#"{"a" 1}"#,
            r#"{1:2}"#,
            "[1 2]",
            "[1}",
            r#"{"a":1]"#,
            "1 2",
            "[]]",
            "NaN",
        ] {
            assert!(!serde_accepts(text), "serde_json accepts {text:?}");
            assert!(!skips(text), "scanner accepts {text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_left_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(serde_accepts(&deep));
        assert!(!skips(&deep), "deeper than MAX_DEPTH misses");
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(skips(&ok));
    }

    #[test]
    fn plain_strings_are_slices_and_escapes_miss() {
        let mut s = Scan::new(r#" "abc" "#);
        assert_eq!(s.plain_str(), Ok("abc"));
        let mut s = Scan::new(r#""a\nb""#);
        assert_eq!(s.plain_str(), Err(Miss));
    }

    #[test]
    fn long_strings_find_their_end_in_every_position() {
        for n in 0..120 {
            for special in ["\"", "\\n\"", "\u{1}\""] {
                let text = format!("\"{}{special}", "a".repeat(n));
                assert_eq!(skips(&text), serde_accepts(&text), "{text:?}");
                // A control character before a later quote or backslash.
                let text = format!("\"{}\u{1f}{}{special}", "é".repeat(n / 2), "b".repeat(n));
                assert_eq!(skips(&text), serde_accepts(&text), "{text:?}");
            }
        }
    }

    /// JSON-ish text: valid JSON pieces glued with stray characters, so both
    /// valid and broken texts come up often.
    fn jsonish() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(JSON_PIECES), 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn never_accepts_what_serde_json_rejects(text in jsonish()) {
            if skips(&text) {
                prop_assert!(serde_accepts(&text), "scanner accepts {:?}", text);
            }
        }

        #[test]
        fn agrees_with_serde_json_on_values(v in any_json()) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert!(skips(&text), "scanner rejects {:?}", text);
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert!(skips(&pretty), "scanner rejects {:?}", pretty);
        }
    }

    fn any_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
