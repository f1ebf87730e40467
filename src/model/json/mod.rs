//! The JSON readers the models are built on: the lenient value types and the
//! `wire_struct!` macro of the full typed views ([`lenient`]), and the
//! zero-copy indexes of the fields the accessors read (`index_struct!`,
//! [`index`]) with their validating fast path ([`scan`]).
//!
//! Only the lenient value types are public (as `remediation::model::…`);
//! the rest is the models' machinery.

mod index;
mod lenient;
mod scan;
#[cfg(test)]
mod testing;

pub use lenient::{LenientBool, RawJson, StringList, Timestamp};

pub(crate) use index::{
    Ctx, Flag, Indexed, ListSpan, Millis, Present, RawSpan, Seed, Span, SpanVisitor, Texts,
    index_struct,
};
pub(crate) use lenient::{parse_raw, string_or_map, wire_struct};
pub(crate) use scan::{Miss, Scan, Scanned};
#[cfg(test)]
pub(crate) use testing::{fixture_objects, mutants};

/// Tags as clouds and Prisma Cloud write them: an object of key to value, or
/// a list of `{key, value}` (`Key`/`Value` too). Scalars become their text;
/// `None` for any other shape (so "not carried" is never mistaken for "no
/// tags").
pub(crate) fn tag_map(
    value: &serde_json::Value,
) -> Option<std::collections::BTreeMap<String, String>> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    };
    match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Some((k.clone(), text(v)?)))
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let key = item.get("key").or_else(|| item.get("Key"))?.as_str()?;
                let value = item.get("value").or_else(|| item.get("Value"));
                Some((key.to_owned(), value.map_or(Some(String::new()), text)?))
            })
            .collect(),
        _ => None,
    }
}
