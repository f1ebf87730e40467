//! The glob patterns of exclusions (resource ids and ARNs, tag values,
//! principals): `*` matches any run of characters (`/` and `:` included),
//! `?` exactly one, `\` escapes `*`, `?` or `\`; everything else matches
//! itself, case-sensitively. Linear-time matching, no backtracking blow-up.

use std::fmt;

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    One,
    Any,
}

/// A compiled glob: `*` matches any run of characters (`/` and `:`
/// included), `?` exactly one, `\` escapes `*`, `?` or `\`; the rest
/// matches itself, case-sensitively.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Glob {
    /// Compiles `text`; a backslash that escapes nothing it may escape is an
    /// error, and so is an empty pattern.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("an empty pattern matches nothing; write `*` for anything".to_owned());
        }
        let mut tokens = Vec::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if tokens.last() == Some(&Token::Any) => continue,
                '*' => Token::Any,
                '?' => Token::One,
                '\\' => match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => Token::Char(e),
                    _ => {
                        return Err(format!(
                            "pattern {text:?}: a backslash may only escape `*`, `?` or `\\`"
                        ));
                    }
                },
                c => Token::Char(c),
            });
        }
        Ok(Glob {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        let (mut p, mut i) = (0, 0);
        // Where the last `*` was, and the input position it was tried at:
        // on a mismatch the star takes one more character (greedy with one
        // restart point is enough: an earlier star never needs to retry).
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            match self.tokens.get(p) {
                Some(Token::Any) => {
                    star = Some((p, i));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    i += 1;
                }
                Some(Token::Char(c)) if *c == s[i] => {
                    p += 1;
                    i += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        p = sp + 1;
                        i = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(pattern: &str, s: &str) -> bool {
        Glob::new(pattern).expect(pattern).matches(s)
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*", ""));
        assert!(m("*", "anything/at:all"));
        assert!(m("arn:aws:s3:::logs-*", "arn:aws:s3:::logs-2024"));
        assert!(!m("arn:aws:s3:::logs-*", "arn:aws:s3:::prod-logs-2024"));
        assert!(m("*-logs", "prod-logs"));
        assert!(!m("*-logs", "prod-logs-x"));
        assert!(m("i-0??c", "i-0abc"));
        assert!(!m("i-0??c", "i-0abbc"));
        assert!(!m("i-0??c", "i-0ac"));
        assert!(m("a*b*c", "a-b-b-c"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("*ab*ab", "xabyabab"));
        assert!(m("a**b", "ab"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "Exact"), "case-sensitive");
        assert!(!m("exact", "exactly"));
        assert!(m("é?", "éü"), "characters, not bytes");
    }

    #[test]
    fn escapes_and_mistakes() {
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\?", "a?"));
        assert!(!m(r"a\?", "ab"));
        assert!(m(r"a\\", r"a\"));
        assert!(Glob::new(r"a\b").is_err());
        assert!(Glob::new("a\\").is_err());
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn long_inputs_stay_fast() {
        let s = "a".repeat(10_000);
        assert!(!m("*a*a*a*a*a*b", &s));
        assert!(m("*a*a*a*a*a*", &s));
    }
}
