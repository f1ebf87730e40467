//! awscli's shorthand syntax (`Key=Value,List=[a,b],Map={k=v}`), read as
//! aws CLI v1 reads it: the same grammar, the same character classes, the same
//! whitespace rules (around `=`, `,`, brackets) and the same backtracking of a
//! comma-separated list into the next key. Written from the grammar awscli
//! documents and implements (`awscli/shorthand.py`), not copied from it.
//!
//! Where awscli would be lenient in a way a check could misread, this reader
//! refuses instead: a key given twice in a `{...}` literal (awscli keeps the
//! last), and `Key@=value` (awscli reads the value from a file or URL).

use serde_json::{Map, Value};

/// Why a shorthand value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShorthandError {
    pub(crate) at: usize,
    pub(crate) message: String,
    /// The value would be read from a file or URL (`Key@=...`).
    pub(crate) paramfile: bool,
}

impl std::fmt::Display for ShorthandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at character {}", self.message, self.at)
    }
}

/// Parses `text` as awscli's shorthand: a JSON object whose leaves are strings.
pub(crate) fn parse(text: &str) -> Result<Value, ShorthandError> {
    let chars: Vec<char> = text.chars().collect();
    Parser { s: &chars, i: 0 }.parameter()
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

/// Python's `string.whitespace`, which awscli's `_consume_whitespace` skips.
fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The characters a key may hold (`[A-Za-z0-9-_.#/:]`).
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '#' | '/' | ':')
}

/// Python's `\s` in a Unicode pattern (`str.isspace`).
fn is_unicode_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\x1c'..='\x1f')
}

/// The first character of an unquoted value: anything up to U+FFFF but
/// whitespace, `"`, `'`, `,`, `=`, `[` and `{`.
fn is_start(c: char) -> bool {
    let u = c as u32;
    u <= 0xFFFF
        && matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='<' | '>'..='Z' | '\\'..='z' | '|'..)
        && !is_unicode_space(c)
}

/// The rest of a first value (or a list item): anything but `"`, `'`, `,`,
/// `]` and `}` (whitespace included; trailing whitespace is dropped).
fn is_first_follow(c: char) -> bool {
    let u = c as u32;
    is_unicode_space(c)
        || (u <= 0xFFFF
            && matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='\\' | '^'..='|' | '~'..))
}

/// The rest of a second value of a comma-separated list: anything but
/// `"`, `'`, `,` and `=`.
fn is_second_follow(c: char) -> bool {
    let u = c as u32;
    is_unicode_space(c)
        || (u <= 0xFFFF && matches!(c, '!' | '#'..='&' | '('..='+' | '-'..='<' | '>'..))
}

impl Parser<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ShorthandError> {
        Err(ShorthandError {
            at: self.i,
            message: message.into(),
            paramfile: false,
        })
    }

    fn current(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn at_eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn whitespace(&mut self) {
        while self.current().is_some_and(is_ascii_space) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: char, whitespace: bool) -> Result<(), ShorthandError> {
        if whitespace {
            self.whitespace();
        }
        match self.current() {
            Some(a) if a == c => {
                self.i += 1;
                if whitespace {
                    self.whitespace();
                }
                Ok(())
            }
            Some(a) => self.err(format!("expected `{c}`, found `{}`", a.escape_debug())),
            None => self.err(format!("expected `{c}`, found the end")),
        }
    }

    /// `parameter = keyval *("," keyval)`; a key given twice is an error.
    fn parameter(&mut self) -> Result<Value, ShorthandError> {
        let mut params = Map::new();
        let (key, value) = self.keyval()?;
        params.insert(key, value);
        while !self.at_eof() {
            self.expect(',', true)?;
            let (key, value) = self.keyval()?;
            if params.contains_key(&key) {
                return self.err(format!("key `{}` given twice", key.escape_debug()));
            }
            params.insert(key, value);
        }
        Ok(Value::Object(params))
    }

    fn key(&mut self) -> String {
        let start = self.i;
        while self.current().is_some_and(is_key_char) {
            self.i += 1;
        }
        self.s[start..self.i].iter().collect()
    }

    /// `Key@=` makes awscli read the value from a file or a URL: refused.
    fn no_paramfile(&mut self) -> Result<(), ShorthandError> {
        let save = self.i;
        self.whitespace();
        if self.current() == Some('@') {
            return Err(ShorthandError {
                at: self.i,
                message: "`@=` reads the value from a file or URL".to_owned(),
                paramfile: true,
            });
        }
        self.i = save;
        Ok(())
    }

    fn keyval(&mut self) -> Result<(String, Value), ShorthandError> {
        let key = self.key();
        self.no_paramfile()?;
        self.expect('=', true)?;
        let value = self.values()?;
        Ok((key, value))
    }

    fn values(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            None => Ok(Value::String(String::new())),
            Some('[') => self.explicit_list(),
            Some('{') => self.hash_literal(),
            Some(_) => self.csv_value(),
        }
    }

    fn csv_value(&mut self) -> Result<Value, ShorthandError> {
        let first = self.first_value()?;
        self.whitespace();
        if self.at_eof() || self.current() != Some(',') {
            return Ok(Value::String(first));
        }
        self.expect(',', true)?;
        let mut list = vec![first.clone()];
        loop {
            let attempt = (|| {
                let current = self.second_value()?;
                self.whitespace();
                if self.at_eof() {
                    return Ok((current, true));
                }
                self.expect(',', true)?;
                Ok((current, false))
            })();
            match attempt {
                Ok((current, end)) => {
                    list.push(current);
                    if end {
                        break;
                    }
                }
                Err(e) => {
                    if self.at_eof() {
                        return Err(e);
                    }
                    // The word belongs to the next `key=`: back to its comma.
                    while self.i > 0 && self.s.get(self.i) != Some(&',') {
                        self.i -= 1;
                    }
                    break;
                }
            }
        }
        if list.len() == 1 {
            return Ok(Value::String(first));
        }
        Ok(Value::Array(list.into_iter().map(Value::String).collect()))
    }

    /// An unquoted value: a start character, then follow characters or
    /// `\,`; `\,` becomes `,` and trailing whitespace is dropped.
    fn unquoted(
        &mut self,
        follow: fn(char) -> bool,
        required: bool,
    ) -> Result<String, ShorthandError> {
        let start = self.i;
        let mut first = true;
        loop {
            match (self.current(), self.s.get(self.i + 1)) {
                (Some('\\'), Some(',')) => self.i += 2,
                (Some(c), _) if (first && is_start(c)) || (!first && follow(c)) => self.i += 1,
                _ => break,
            }
            first = false;
        }
        if self.i == start {
            if required {
                return self.err("expected a value");
            }
            return Ok(String::new());
        }
        let raw: String = self.s[start..self.i].iter().collect();
        Ok(raw
            .replace("\\,", ",")
            .trim_end_matches(is_unicode_space)
            .to_owned())
    }

    fn quoted(&mut self, quote: char) -> Result<String, ShorthandError> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.current() {
                None => {
                    self.i = start;
                    return self.err("unterminated quoted value");
                }
                Some('\\') if self.s.get(self.i + 1) == Some(&quote) => self.i += 2,
                Some(c) if c == quote => {
                    self.i += 1;
                    break;
                }
                Some(_) => self.i += 1,
            }
        }
        let inner: String = self.s[start + 1..self.i - 1].iter().collect();
        let escaped = format!("\\{quote}");
        Ok(inner
            .replace(&escaped, &quote.to_string())
            .replace("\\\\", "\\"))
    }

    fn first_value(&mut self) -> Result<String, ShorthandError> {
        match self.current() {
            Some(q @ ('\'' | '"')) => self.quoted(q),
            _ => self.unquoted(is_first_follow, false),
        }
    }

    fn second_value(&mut self) -> Result<String, ShorthandError> {
        match self.current() {
            Some(q @ ('\'' | '"')) => self.quoted(q),
            _ => self.unquoted(is_second_follow, true),
        }
    }

    fn explicit_list(&mut self) -> Result<Value, ShorthandError> {
        self.expect('[', true)?;
        let mut values = Vec::new();
        while self.current() != Some(']') {
            values.push(self.explicit_value()?);
            self.whitespace();
            if self.current() != Some(']') {
                self.expect(',', false)?;
                self.whitespace();
            }
        }
        self.expect(']', false)?;
        Ok(Value::Array(values))
    }

    fn explicit_value(&mut self) -> Result<Value, ShorthandError> {
        match self.current() {
            Some('[') => self.explicit_list(),
            Some('{') => self.hash_literal(),
            _ => self.first_value().map(Value::String),
        }
    }

    fn hash_literal(&mut self) -> Result<Value, ShorthandError> {
        self.expect('{', true)?;
        let mut map = Map::new();
        while self.current() != Some('}') {
            if self.at_eof() {
                return self.err("expected `}`, found the end");
            }
            let key = self.key();
            self.no_paramfile()?;
            self.expect('=', true)?;
            let value = self.explicit_value()?;
            self.whitespace();
            if self.current() != Some('}') {
                self.expect(',', false)?;
                self.whitespace();
            }
            if map.contains_key(&key) {
                return self.err(format!("key `{}` given twice", key.escape_debug()));
            }
            map.insert(key, value);
        }
        self.expect('}', false)?;
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::json;

    #[test]
    fn reads_the_documented_forms() {
        assert_eq!(parse("a=b").unwrap(), json!({"a": "b"}));
        assert_eq!(parse("a=b,c").unwrap(), json!({"a": ["b", "c"]}));
        assert_eq!(
            parse("a=b,c,d=e").unwrap(),
            json!({"a": ["b", "c"], "d": "e"})
        );
        assert_eq!(
            parse("a=[b,c],d={e=f,g=[h]}").unwrap(),
            json!({"a": ["b", "c"], "d": {"e": "f", "g": ["h"]}})
        );
        assert_eq!(
            parse("a='x,y',b=\"z\"").unwrap(),
            json!({"a": "x,y", "b": "z"})
        );
        assert_eq!(parse("a=x\\,y").unwrap(), json!({"a": "x,y"}));
        assert_eq!(parse("a=").unwrap(), json!({"a": ""}));
        assert_eq!(
            parse("a=hello world ").unwrap(),
            json!({"a": "hello world"})
        );
    }

    #[test]
    fn whitespace_around_equals_and_commas_is_allowed_as_awscli_allows_it() {
        assert_eq!(parse("Key =[a, b]").unwrap(), json!({"Key": ["a", "b"]}));
        assert_eq!(
            parse("A = true , B= false").unwrap(),
            json!({"A": "true", "B": "false"})
        );
        assert_eq!(parse("k={ a = b }").unwrap(), json!({"k": {"a": "b"}}));
    }

    proptest::proptest! {
        /// Any text is parsed or refused, never a panic (the grammar's
        /// characters, quotes and escapes, and some beyond U+FFFF).
        #[test]
        fn any_text_is_parsed_or_refused(text in "[a-zA-Z0-9=,\\[\\]{}'\" \\\\@:._/\t\u{a0}\u{1F600}-]{0,40}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn refuses_what_a_check_could_misread() {
        assert!(parse("a=b,a=c").is_err());
        assert!(parse("k={a=b,a=c}").is_err());
        assert!(parse("a@=file://x").is_err());
        assert!(parse("a =[b").is_err());
        assert!(parse("a").is_err());
        assert!(parse("a='b").is_err());
    }
}
