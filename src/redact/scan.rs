//! The one-pass byte scanner for free text: values of secret-named
//! variables, fields and options in every usual syntax (environment dumps,
//! INI, JSON, YAML, XML, Python repr, command lines), values named by a
//! sibling field, bearer tokens, JWTs and access key ids.

use super::REDACTED;
use super::names::{
    Class, DOCKER_LIKE, SIBLING_KEYS, SIBLING_VALUES, classify, contains_ci, inert, masks, norm_eq,
    norm_in, sibling_names_secret,
};
use memchr::memmem;

/// Authorization schemes kept in front of the masked credential.
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "token",
    "digest",
    "negotiate",
    "ntlm",
    "aws4-hmac-sha256",
    "sharedaccesssignature",
    "sharedkey",
    "sharedkeylite",
];

/// A byte that can be part of a variable, field or option name (and of a
/// JWT or access key id).
fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The first position at or after `i` that is not a space or tab.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The first position at or after `i` that is not whitespace.
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// How a value follows its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `name=value`, `name = value`, `name => value`.
    Eq,
    /// `name: value` (a blank or a quote after the colon: ARNs stay whole).
    Colon,
    /// `--option value`.
    Space,
    /// `"--option", "value"` (an argv printed with `{:?}`).
    List,
    /// `<Name>value</Name>`.
    Xml,
}

/// Where a bare (unquoted) value ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bare {
    /// At whitespace or punctuation.
    Word,
    /// At the end of the line or a structural delimiter (`name: value`).
    Line,
    /// At the end of the line (an environment dump).
    EnvLine,
    /// At the next `<`.
    Xml,
}

/// A parsed value: the masked content `start..end`, and where scanning
/// resumes (after a closing quote).
#[derive(Debug, Clone, Copy)]
struct Val {
    start: usize,
    end: usize,
    next: usize,
    quoted: bool,
}

/// The one-pass scanner for named values, JWTs, access key ids and bearer
/// tokens.
pub(super) struct Scanner<'t, 'r> {
    text: &'t str,
    b: &'t [u8],
    ranges: &'r mut Vec<(usize, usize)>,
    /// Where the value of a [`SIBLING_KEYS`] field naming a secret ended.
    sibling: Option<usize>,
    docker_login: Option<bool>,
    secure_string: Option<bool>,
}

impl<'t, 'r> Scanner<'t, 'r> {
    pub(super) fn new(text: &'t str, ranges: &'r mut Vec<(usize, usize)>) -> Self {
        Scanner {
            text,
            b: text.as_bytes(),
            ranges,
            sibling: None,
            docker_login: None,
            secure_string: None,
        }
    }

    /// Whether the text is a `docker login` (or the like) command.
    fn docker_login(&mut self) -> bool {
        let b = self.b;
        *self.docker_login.get_or_insert_with(|| {
            contains_ci(b, b"login") && DOCKER_LIKE.iter().any(|p| contains_ci(b, p.as_bytes()))
        })
    }

    /// Whether the text mentions an SSM `SecureString` (its `--value` is secret).
    fn secure_string(&mut self) -> bool {
        let b = self.b;
        *self
            .secure_string
            .get_or_insert_with(|| memmem::find(b, b"SecureString").is_some())
    }

    pub(super) fn run(&mut self) {
        let n = self.b.len();
        let mut i = 0;
        while i < n {
            if !self.b.get(i).copied().is_some_and(is_name_byte) {
                i += 1;
                continue;
            }
            let start = i;
            while self.b.get(i).copied().is_some_and(is_name_byte) {
                i += 1;
            }
            if let Some(next) = self.token(start, i) {
                i = next.max(i);
            }
        }
    }

    fn push(&mut self, start: usize, end: usize) {
        if start < end {
            self.ranges.push((start, end));
        }
    }

    /// Handles the name-like token `start..end`; returns where to resume when
    /// it consumed a masked value.
    fn token(&mut self, start: usize, end: usize) -> Option<usize> {
        let b = self.b;
        let mut s = start;
        // A name right after a `\n` escape: an env dump inside a JSON string.
        if s > 0
            && b.get(s - 1) == Some(&b'\\')
            && matches!(b.get(s), Some(b'n' | b'r' | b't'))
            && end > s + 1
        {
            s += 1;
        }
        self.jwts(s, end);
        self.access_key_id(s, end);
        let tok = b.get(s..end)?;
        let dashes = tok.iter().take_while(|&&c| c == b'-').count();
        let after_blank = s == 0
            || matches!(
                b.get(s - 1),
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'(' | b'[' | b'\0')
            );
        let docker_p = dashes == 1 && tok == b"-p" && after_blank && self.docker_login();
        let option = after_blank && (dashes == 2 || docker_p);
        let name_start = s + dashes;
        let name_b = b.get(name_start..end)?;
        if !name_b.first().is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name = self.text.get(name_start..end)?;
        if name.eq_ignore_ascii_case("bearer") {
            return self.bearer(end);
        }
        // Most tokens are not followed by a separator: check that first.
        let (sep, q) = self.separator(s, end, option)?;
        let sibling_key = norm_in(name_b, SIBLING_KEYS);
        let sibling_value = norm_in(name_b, SIBLING_VALUES);
        // A value field answers the name field before it, or none; a new
        // name field replaces the last.
        let named_by_sibling = sibling_value && self.sibling_applies(start);
        if sibling_key {
            self.sibling = None;
        }
        let class = classify(name);
        if class == Class::Plain && !sibling_key && !sibling_value && !docker_p {
            return None;
        }
        if class == Class::Secret && b.get(q) == Some(&b'{') {
            return self.arm_value(q);
        }
        let env_name = name_b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
        let bare = match sep {
            Sep::Eq if env_name && self.at_line_start(s) => Bare::EnvLine,
            Sep::Colon => Bare::Line,
            Sep::Xml => Bare::Xml,
            _ => Bare::Word,
        };
        let mut v = self.value(q, sep, bare)?;
        let header = name_b.len() >= 13
            && name_b
                .get(name_b.len() - 13..)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"authorization"));
        if !v.quoted && (header || norm_eq(name_b, "sharedaccesssignature")) {
            let first_word_end = (v.start..v.end)
                .find(|&i| b.get(i).is_some_and(u8::is_ascii_whitespace))
                .unwrap_or(v.end);
            let scheme = self.text.get(v.start..first_word_end).unwrap_or_default();
            if AUTH_SCHEMES.iter().any(|w| scheme.eq_ignore_ascii_case(w)) {
                let q2 = skip_blanks(b, first_word_end);
                v = self.value(q2, Sep::Space, bare)?;
            }
        }
        let value = self.text.get(v.start..v.end)?;
        let sibling_hit = named_by_sibling && !inert(value);
        let secret = masks(name, class, value)
            || sibling_hit
            || (docker_p && !inert(value))
            || (option && norm_eq(name_b, "value") && !inert(value) && self.secure_string());
        if sibling_key && !secret && sibling_names_secret(name_b, value) {
            self.sibling = Some(v.next);
        }
        if secret {
            self.push(v.start, v.end);
            return Some(v.next);
        }
        None
    }

    /// Whether a [`SIBLING_KEYS`] field naming a secret ended shortly before
    /// `at`, in the same object (no brace between). Consumes it.
    fn sibling_applies(&mut self, at: usize) -> bool {
        let Some(end) = self.sibling.take() else {
            return false;
        };
        at >= end
            && at - end <= 300
            && self
                .b
                .get(end..at)
                .is_some_and(|gap| !gap.iter().any(|c| matches!(c, b'{' | b'}')))
    }

    /// Whether the token at `s` starts a line (or follows `export `,
    /// `declare -x ` or `set `): an environment dump line.
    fn at_line_start(&self, s: usize) -> bool {
        let b = self.b;
        let mut ls = s;
        let mut at_start = false;
        while s - ls <= 12 {
            if ls == 0 {
                at_start = true;
                break;
            }
            match b.get(ls - 1) {
                Some(b'\n' | b'\r' | b'\0') => {
                    at_start = true;
                    break;
                }
                // A `\n` escape: `ls - 1` is the `n` after a backslash.
                Some(b'n' | b'r') if ls >= 2 && b.get(ls - 2) == Some(&b'\\') => {
                    at_start = true;
                    break;
                }
                _ => ls -= 1,
            }
        }
        let prefix = b.get(ls..s).unwrap_or_default();
        at_start && matches!(prefix, b"" | b"export " | b"declare -x " | b"set ")
    }

    /// The separator after the name `s..end`, and where the value starts.
    fn separator(&self, s: usize, end: usize, option: bool) -> Option<(Sep, usize)> {
        let b = self.b;
        let mut p = end;
        let mut closed = false;
        match (b.get(p), b.get(p + 1)) {
            (Some(b'\\'), Some(b'"' | b'\'')) => {
                p += 2;
                closed = true;
            }
            (Some(b'"' | b'\''), _) => {
                p += 1;
                closed = true;
            }
            (Some(b'>'), _) if s > 0 && b.get(s - 1) == Some(&b'<') => {
                return Some((Sep::Xml, p + 1));
            }
            _ => {}
        }
        let q = skip_blanks(b, p);
        match b.get(q) {
            Some(b'=') if b.get(q + 1) != Some(&b'=') => {
                let after = if b.get(q + 1) == Some(&b'>') {
                    q + 2
                } else {
                    q + 1
                };
                Some((Sep::Eq, skip_blanks(b, after)))
            }
            Some(b':') if b.get(q + 1) != Some(&b':') => {
                let v = skip_blanks(b, q + 1);
                let quote = matches!(b.get(v), Some(b'"' | b'\''))
                    || (b.get(v) == Some(&b'\\') && matches!(b.get(v + 1), Some(b'"' | b'\'')));
                (v > q + 1 || quote).then_some((Sep::Colon, v))
            }
            Some(b',') if option && closed => {
                let v = skip_blanks(b, q + 1);
                matches!(b.get(v), Some(b'"' | b'\'')).then_some((Sep::List, v))
            }
            Some(_) if option && !closed && q > p => Some((Sep::Space, q)),
            _ => None,
        }
    }

    /// The value starting at `q`.
    fn value(&self, q: usize, sep: Sep, bare: Bare) -> Option<Val> {
        let b = self.b;
        if b.get(q..)
            .is_some_and(|r| r.starts_with(REDACTED.as_bytes()))
        {
            return None;
        }
        let first = *b.get(q)?;
        let v = match (first, b.get(q + 1).copied()) {
            (b'"' | b'\'', _) if sep != Sep::Xml => self.quoted(q + 1, first, false),
            (b'\\', Some(quote @ (b'"' | b'\''))) if sep != Sep::Xml => {
                self.quoted(q + 2, quote, true)
            }
            (b'b', Some(quote @ (b'"' | b'\''))) if sep != Sep::Xml => {
                self.quoted(q + 2, quote, false)
            }
            (b'{' | b'[' | b'(', _) if sep != Sep::Xml => return None,
            _ if sep == Sep::List => return None,
            (b'-', Some(c)) if sep == Sep::Space && (c == b'-' || c.is_ascii_alphabetic()) => {
                return None;
            }
            _ => self.bare(q, bare),
        };
        (v.start < v.end).then_some(v)
    }

    /// A quoted value whose content starts at `start`; `escaped`: the quotes
    /// are themselves escaped (`\"x\"`, JSON inside a JSON string). An
    /// unterminated quote runs to the end of the line.
    fn quoted(&self, start: usize, quote: u8, escaped: bool) -> Val {
        let b = self.b;
        let mut j = start;
        while let Some(&c) = b.get(j) {
            match c {
                b'\\' if escaped && b.get(j + 1) == Some(&quote) => {
                    return Val {
                        start,
                        end: j,
                        next: j + 2,
                        quoted: true,
                    };
                }
                b'\\' => j += 2,
                b'\n' | b'\r' => break,
                c if c == quote && !escaped => {
                    return Val {
                        start,
                        end: j,
                        next: j + 1,
                        quoted: true,
                    };
                }
                _ => j += 1,
            }
        }
        let end = j.min(b.len());
        Val {
            start,
            end,
            next: end,
            quoted: true,
        }
    }

    /// An unquoted value starting at `start`.
    fn bare(&self, start: usize, mode: Bare) -> Val {
        let b = self.b;
        let mut j = start;
        while let Some(&c) = b.get(j) {
            let stop = match c {
                b'\n' | b'\r' | b'\0' => true,
                b'\\' => matches!(b.get(j + 1), Some(b'n' | b'r' | b't' | b'"' | b'\'')),
                b'<' => true,
                b'"' => mode != Bare::Xml,
                b' ' | b'\t' => mode == Bare::Word,
                b'\'' | b',' | b';' | b'&' | b'>' | b'}' | b']' | b')' | b'`' => {
                    matches!(mode, Bare::Word | Bare::Line)
                }
                _ => false,
            };
            if stop {
                break;
            }
            j += 1;
        }
        let mut end = j;
        while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t')) {
            end -= 1;
        }
        Val {
            start,
            end,
            next: j,
            quoted: false,
        }
    }

    /// `"adminPassword": {"value": "x"}` (an ARM parameter): masks `x`.
    fn arm_value(&mut self, brace: usize) -> Option<usize> {
        let b = self.b;
        let p = skip_space(b, brace + 1);
        if !b
            .get(p..p + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"\"value\""))
        {
            return None;
        }
        let p = skip_space(b, p + 7);
        if b.get(p) != Some(&b':') {
            return None;
        }
        let p = skip_space(b, p + 1);
        if b.get(p) != Some(&b'"') {
            return None;
        }
        let v = self.quoted(p + 1, b'"', false);
        if inert(self.text.get(v.start..v.end)?) {
            return None;
        }
        self.push(v.start, v.end);
        Some(v.next)
    }

    /// `Bearer <token68>` anywhere: masks the token.
    fn bearer(&mut self, end: usize) -> Option<usize> {
        let b = self.b;
        let p = skip_blanks(b, end);
        if p == end {
            return None;
        }
        let mut j = p;
        while b
            .get(j)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"._~+/=-".contains(&c))
        {
            j += 1;
        }
        if j - p < 8 {
            return None;
        }
        self.push(p, j);
        Some(j)
    }

    /// JWTs (`eyJ….eyJ….sig`) inside the token `s..end`.
    fn jwts(&mut self, s: usize, end: usize) {
        let Some(tok) = self.b.get(s..end) else {
            return;
        };
        let mut from = 0;
        while let Some(off) = tok.get(from..).and_then(|t| memmem::find(t, b"eyJ")) {
            let p = from + off;
            let dot = |i: usize| {
                tok.get(i..)
                    .and_then(|t| memchr::memchr(b'.', t))
                    .map(|d| i + d)
            };
            let Some(d1) = dot(p) else { return };
            if !tok.get(d1 + 1..).is_some_and(|t| t.starts_with(b"eyJ")) {
                from = p + 3;
                continue;
            }
            let Some(d2) = dot(d1 + 1) else { return };
            let e3 = dot(d2 + 1).unwrap_or(tok.len());
            self.push(s + p, s + e3);
            from = e3;
        }
    }

    /// `AKIA…`/`ASIA…` access key ids: the prefix (long-term or temporary)
    /// is kept, the 16 characters after it masked.
    fn access_key_id(&mut self, s: usize, end: usize) {
        let Some(tok) = self.b.get(s..end) else {
            return;
        };
        let shaped = (tok.starts_with(b"AKIA") || tok.starts_with(b"ASIA"))
            && tok.get(4..20).is_some_and(|k| {
                k.iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            })
            && !tok
                .get(20)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if shaped {
            self.push(s + 4, s + 20);
        }
    }
}
