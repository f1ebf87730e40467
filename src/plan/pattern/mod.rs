//! EventBridge event patterns: compile a pattern once, match it against many
//! events without allocating.
//!
//! The syntax and semantics are EventBridge's ("Amazon EventBridge event
//! patterns" and "Content filtering in Amazon EventBridge event patterns" in
//! the EventBridge user guide):
//!
//! * A pattern is a JSON object with the event's structure. Every pattern
//!   field must match (AND). A field's value is either a nested object or an
//!   array of match conditions, any of which may match (OR).
//! * A condition is an exact value (string, number, `true`, `false`, `null`;
//!   `""` matches the empty string) or an operator object with exactly one key:
//!   `prefix`, `suffix` (each also as `{"equals-ignore-case": ".."}`),
//!   `equals-ignore-case`, `wildcard`, `anything-but` (a value, a list of
//!   strings or of numbers, or `prefix` / `suffix` / `equals-ignore-case` /
//!   `wildcard`), `numeric`, `cidr` (IPv4 and IPv6) and `exists`.
//! * Conditions match leaf values only. An array in the event matches when
//!   any of its elements does; an object in the event is not a leaf, so a
//!   condition on it never matches (except `"exists": false`).
//! * `"exists": false` matches a field that is absent (or has no leaf value);
//!   every other condition needs the field to be present.
//! * Numbers are compared as numbers (`300` matches `300.0` and `3e2`), and
//!   only with JSON numbers: `[300]` does not match the string `"300"`.
//!   `numeric` bounds must lie within ±5.0e9, as in EventBridge.
//! * `"$or": [{..}, {..}]` at any level matches when any of its alternatives
//!   (each a pattern at that level) matches.
//! * When a pattern object meets an array of objects in the event, all of its
//!   fields must match within the same element.
//!
//! ```
//! use remediation::plan::EventPattern;
//! let pattern = EventPattern::from_json(r#"{
//!     "source": ["aws.iam"],
//!     "detail": {"eventName": [{"prefix": "Create"}], "errorCode": [{"exists": false}]}
//! }"#)?;
//! let event: serde_json::Value = serde_json::from_str(
//!     r#"{"source": "aws.iam", "detail": {"eventName": "CreateUser"}}"#).unwrap();
//! assert!(pattern.matches(&event));
//! # Ok::<(), remediation::Error>(())
//! ```

mod compile;

use crate::error::Error;
use compile::{compile_node, kind};
use serde_json::{Map, Value};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The largest magnitude EventBridge accepts for a `numeric` bound.
pub const NUMERIC_LIMIT: f64 = 5.0e9;

/// Why a pattern was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatternError {
    /// Where in the pattern, e.g. `detail.eventName[1].prefix` (empty at the root).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "invalid event pattern: {}", self.message)
        } else {
            write!(
                f,
                "invalid event pattern at `{}`: {}",
                self.path, self.message
            )
        }
    }
}

impl std::error::Error for PatternError {}

impl From<PatternError> for Error {
    fn from(e: PatternError) -> Self {
        Error::Config(e.to_string())
    }
}

/// A compiled EventBridge event pattern.
///
/// Cloning is cheap (the compiled tree is shared). Two patterns are equal when
/// they were compiled from equal JSON.
#[derive(Clone)]
pub struct EventPattern {
    root: Arc<Node>,
    source: Arc<Value>,
}

impl fmt::Debug for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventPattern({})", self.source)
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.source, f)
    }
}

impl PartialEq for EventPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for EventPattern {}

impl EventPattern {
    /// Compiles a pattern from its JSON text.
    pub fn from_json(text: &str) -> std::result::Result<Self, PatternError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatternError {
            path: String::new(),
            message: format!("not JSON: {e}"),
        })?;
        Self::compile(&value)
    }

    /// Compiles a pattern from a JSON value.
    pub fn compile(pattern: &Value) -> std::result::Result<Self, PatternError> {
        let Value::Object(map) = pattern else {
            return Err(PatternError {
                path: String::new(),
                message: format!("a pattern must be a JSON object, not {}", kind(pattern)),
            });
        };
        let root = compile_node(map, &mut Path::default())?;
        Ok(EventPattern {
            root: Arc::new(root),
            source: Arc::new(pattern.clone()),
        })
    }

    /// The JSON the pattern was compiled from.
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(Some(event))
    }
}

impl serde::Serialize for EventPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.source.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for EventPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        EventPattern::compile(&value).map_err(serde::de::Error::custom)
    }
}

/// A pattern object: fields that must all match, and `$or` groups of which
/// one alternative each must match.
#[derive(Debug)]
struct Node {
    fields: Vec<(Box<str>, Field)>,
    any_of: Vec<Vec<Node>>,
}

#[derive(Debug)]
enum Field {
    Nested(Node),
    Leaf(Vec<Condition>),
}

#[derive(Debug)]
enum Literal {
    String(Box<str>),
    Number(f64),
    Bool(bool),
    Null,
}

impl Literal {
    fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (Literal::String(s), Value::String(v)) => **s == **v,
            (Literal::Number(n), Value::Number(v)) => v.as_f64() == Some(*n),
            (Literal::Bool(b), Value::Bool(v)) => b == v,
            (Literal::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// A string compared without regard to case: kept lowercased (char by char,
/// so comparing needs no allocation).
#[derive(Debug)]
struct Folded(Box<[char]>);

impl Folded {
    fn new(s: &str) -> Self {
        Folded(s.chars().flat_map(char::to_lowercase).collect())
    }

    /// Folded from the end: the reversed, lowercased characters.
    fn new_reversed(s: &str) -> Self {
        Folded(s.chars().rev().flat_map(char::to_lowercase).collect())
    }

    fn equals(&self, s: &str) -> bool {
        let mut it = s.chars().flat_map(char::to_lowercase);
        self.0.iter().all(|c| it.next() == Some(*c)) && it.next().is_none()
    }

    fn is_prefix_of(&self, s: &str) -> bool {
        let mut it = s.chars().flat_map(char::to_lowercase);
        self.0.iter().all(|c| it.next() == Some(*c))
    }

    /// For a value made by [`Folded::new_reversed`].
    fn is_suffix_of(&self, s: &str) -> bool {
        let mut it = s.chars().rev().flat_map(char::to_lowercase);
        self.0.iter().all(|c| it.next() == Some(*c))
    }
}

/// A wildcard: literal segments separated by `*`.
#[derive(Debug)]
pub(crate) struct Wildcard {
    segments: Box<[Box<str>]>,
}

impl Wildcard {
    /// Parses a wildcard outside a pattern (principal ARN patterns).
    pub(crate) fn parse(text: &str) -> std::result::Result<Self, PatternError> {
        Self::compile(text, &Path::default())
    }

    fn compile(text: &str, path: &Path) -> std::result::Result<Self, PatternError> {
        let mut segments = vec![String::new()];
        let mut chars = text.chars();
        let mut last_star = false;
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if last_star {
                        return Err(
                            path.error(format!("wildcard {text:?} has consecutive `*` characters"))
                        );
                    }
                    last_star = true;
                    segments.push(String::new());
                    continue;
                }
                '\\' => match chars.next() {
                    Some(e @ ('*' | '\\')) => push_last(&mut segments, e),
                    _ => {
                        return Err(path.error(format!(
                            "wildcard {text:?}: a backslash may only escape `*` or `\\`"
                        )));
                    }
                },
                c => push_last(&mut segments, c),
            }
            last_star = false;
        }
        Ok(Wildcard {
            segments: segments.into_iter().map(String::into_boxed_str).collect(),
        })
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        let (first, rest) = match self.segments.split_first() {
            Some(x) => x,
            None => return s.is_empty(),
        };
        let Some(mut rest_of_s) = s.strip_prefix(&**first) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No star at all: an exact match.
            return rest_of_s.is_empty();
        };
        for segment in middle {
            match rest_of_s.find(&**segment) {
                Some(at) => rest_of_s = &rest_of_s[at + segment.len()..],
                None => return false,
            }
        }
        rest_of_s.len() >= last.len() && rest_of_s.ends_with(&**last)
    }
}

fn push_last(segments: &mut [String], c: char) {
    if let Some(last) = segments.last_mut() {
        last.push(c);
    }
}

#[derive(Debug)]
struct Range {
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

impl Range {
    fn contains(&self, n: f64) -> bool {
        let above = match self.lower {
            Some((b, true)) => n >= b,
            Some((b, false)) => n > b,
            None => true,
        };
        let below = match self.upper {
            Some((b, true)) => n <= b,
            Some((b, false)) => n < b,
            None => true,
        };
        above && below
    }
}

#[derive(Debug)]
enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    fn contains(&self, s: &str) -> bool {
        match (self, s.parse::<IpAddr>()) {
            (Cidr::V4 { net, mask }, Ok(IpAddr::V4(ip))) => u32::from(ip) & mask == *net,
            (Cidr::V6 { net, mask }, Ok(IpAddr::V6(ip))) => u128::from(ip) & mask == *net,
            _ => false,
        }
    }
}

#[derive(Debug)]
enum AnythingBut {
    Values(Vec<Literal>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    IgnoreCase(Vec<Folded>),
    Wildcard(Vec<Wildcard>),
}

impl AnythingBut {
    /// Whether the leaf `v` is "anything but" the listed values. Values of
    /// another type than the operator's are never among them, so they match.
    fn matches(&self, v: &Value) -> bool {
        match self {
            AnythingBut::Values(values) => !values.iter().any(|l| l.equals(v)),
            AnythingBut::Prefix(p) => v.as_str().is_none_or(|s| !s.starts_with(&**p)),
            AnythingBut::Suffix(p) => v.as_str().is_none_or(|s| !s.ends_with(&**p)),
            AnythingBut::IgnoreCase(fs) => {
                v.as_str().is_none_or(|s| !fs.iter().any(|f| f.equals(s)))
            }
            AnythingBut::Wildcard(ws) => {
                v.as_str().is_none_or(|s| !ws.iter().any(|w| w.matches(s)))
            }
        }
    }
}

#[derive(Debug)]
enum Condition {
    Exact(Literal),
    Prefix(Box<str>),
    PrefixIgnoreCase(Folded),
    Suffix(Box<str>),
    SuffixIgnoreCase(Folded),
    EqualsIgnoreCase(Folded),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Cidr(Cidr),
    Exists(bool),
}

impl Condition {
    /// Whether the leaf value `v` (never an array or an object) matches.
    fn matches_leaf(&self, v: &Value) -> bool {
        let s = v.as_str();
        match self {
            Condition::Exact(l) => l.equals(v),
            Condition::Prefix(p) => s.is_some_and(|s| s.starts_with(&**p)),
            Condition::PrefixIgnoreCase(f) => s.is_some_and(|s| f.is_prefix_of(s)),
            Condition::Suffix(p) => s.is_some_and(|s| s.ends_with(&**p)),
            Condition::SuffixIgnoreCase(f) => s.is_some_and(|s| f.is_suffix_of(s)),
            Condition::EqualsIgnoreCase(f) => s.is_some_and(|s| f.equals(s)),
            Condition::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
            Condition::AnythingBut(a) => a.matches(v),
            Condition::Numeric(r) => v.as_f64().is_some_and(|n| r.contains(n)),
            Condition::Cidr(c) => s.is_some_and(|s| c.contains(s)),
            Condition::Exists(exists) => *exists,
        }
    }
}

/// Calls `f` on each leaf of `v` (arrays are flattened, objects are not
/// leaves) until it returns true.
fn any_leaf(v: &Value, f: &mut impl FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| any_leaf(i, f)),
        Value::Object(_) => false,
        leaf => f(leaf),
    }
}

fn has_leaf(v: &Value) -> bool {
    any_leaf(v, &mut |_| true)
}

impl Field {
    fn matches(&self, v: Option<&Value>) -> bool {
        match self {
            Field::Nested(node) => node.matches(v),
            Field::Leaf(conditions) => match v {
                Some(v) if has_leaf(v) => conditions
                    .iter()
                    .any(|c| any_leaf(v, &mut |leaf| c.matches_leaf(leaf))),
                // Absent, or nothing but objects / empty arrays: no leaf here.
                _ => conditions
                    .iter()
                    .any(|c| matches!(c, Condition::Exists(false))),
            },
        }
    }
}

impl Node {
    fn matches(&self, v: Option<&Value>) -> bool {
        match v {
            // All fields of the pattern object must match within one element.
            Some(Value::Array(items)) if !items.is_empty() => {
                items.iter().any(|item| self.matches(Some(item)))
            }
            Some(Value::Object(map)) => self.matches_object(Some(map)),
            _ => self.matches_object(None),
        }
    }

    fn matches_object(&self, map: Option<&Map<String, Value>>) -> bool {
        self.fields
            .iter()
            .all(|(key, field)| field.matches(map.and_then(|m| m.get(&**key))))
            && self
                .any_of
                .iter()
                .all(|alternatives| alternatives.iter().any(|alt| alt.matches_object(map)))
    }
}

/// Where the compiler is in the pattern, for error messages.
#[derive(Default)]
struct Path(String);

impl Path {
    fn error(&self, message: impl Into<String>) -> PatternError {
        PatternError {
            path: self.0.clone(),
            message: message.into(),
        }
    }

    /// Runs `f` with `segment` appended (`.key` or `[i]`).
    fn with<T>(&mut self, segment: fmt::Arguments<'_>, f: impl FnOnce(&mut Path) -> T) -> T {
        let len = self.0.len();
        let s = segment.to_string();
        if !self.0.is_empty() && !s.starts_with('[') {
            self.0.push('.');
        }
        self.0.push_str(&s);
        let out = f(self);
        self.0.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcard_segments() {
        let p = Path::default();
        let w = Wildcard::compile("a*b*c", &p).unwrap();
        assert!(w.matches("abc"));
        assert!(w.matches("axxbyyc"));
        assert!(!w.matches("axxbyy"));
        let w = Wildcard::compile("*ab*ab", &p).unwrap();
        assert!(w.matches("abab"));
        assert!(!w.matches("ab"));
        let w = Wildcard::compile(r"a\*b", &p).unwrap();
        assert!(w.matches("a*b"));
        assert!(!w.matches("axb"));
    }

    #[test]
    fn errors_name_the_path() {
        let e = EventPattern::compile(&json!({"detail": {"x": [{"prefix": 1}]}})).unwrap_err();
        assert_eq!(e.path, "detail.x[0].prefix");
        let e = EventPattern::compile(&json!({"a": [{"numeric": ["<", 1, ">", 0]}]})).unwrap_err();
        assert_eq!(e.path, "a[0].numeric");
    }

    #[test]
    fn folded_suffix_with_multichar_lowercase() {
        let f = Folded::new_reversed("İX");
        assert!(f.is_suffix_of("aİx"));
        assert!(!f.is_suffix_of("ax"));
    }
}
