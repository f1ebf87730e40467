//! An option's words turned into the value its CLI uses: aws numbers as
//! plain digits only, structures as JSON or awscli shorthand, lists of
//! words or JSON, `file://` contents of attached files; az JSON values
//! parsed where a structure is expected.

use super::shorthand;
use super::tables::{Arity, OptionInfo, Shape};
use crate::error::Refusal;
use crate::plan::StepFile;
use crate::plan::policy::Violation;
use serde_json::Value;
use std::borrow::Cow;

fn refused(code: Refusal, reason: String) -> Violation {
    Violation::new(code, reason)
}

/// The value of an option as the CLI reads its words.
pub(super) fn typed(
    program: &str,
    name: &str,
    info: &OptionInfo,
    words: &[&str],
    files: &[StepFile],
) -> Result<Value, Violation> {
    // awscli reads a `file://` value's file first and parses its contents;
    // only files attached to the step can be named (checked before).
    let attached = |w: &str| -> Option<String> {
        let name = w.strip_prefix("file://")?;
        files
            .iter()
            .find(|f| f.name() == name)
            .map(|f| f.contents().to_owned())
    };
    // Copied only when a file is read (most values are the words themselves).
    let loads = program == "aws" && words.iter().any(|w| w.starts_with("file://"));
    let loaded: Vec<Cow<'_, str>> = if loads {
        words
            .iter()
            .map(|w| match w.strip_prefix("file://") {
                Some(_) => attached(w).map_or(Cow::Borrowed(*w), Cow::Owned),
                None => Cow::Borrowed(*w),
            })
            .collect()
    } else {
        Vec::new()
    };
    let read: Vec<&str>;
    let words = if loads {
        read = loaded.iter().map(|w| &**w).collect();
        read.as_slice()
    } else {
        words
    };
    let bad = |e: String| {
        refused(
            Refusal::UnknownOption,
            format!(
                "{} cannot be read as the CLI reads it: {e}",
                crate::plan::policy::quoted(name)
            ),
        )
    };
    if info.arity == Arity::Switch || (info.arity == Arity::Optional && words.is_empty()) {
        return Ok(Value::Bool(info.negates.is_none()));
    }
    let looks_json = |w: &str| w.trim_start().starts_with(['{', '[']);
    let json = |w: &str| {
        serde_json::from_str::<Value>(w.trim_matches([' ', '\t', '\n', '\r']))
            .map_err(|e| bad(format!("invalid JSON ({e})")))
    };
    if program == "az" {
        // az parses a JSON value where a structure is expected; `struct`
        // and `list` constraints read it as az does.
        if let [one] = words {
            if looks_json(one) {
                if let Ok(value) = serde_json::from_str::<Value>(one.trim()) {
                    return Ok(value);
                }
            }
        }
    }
    if program != "aws" {
        return Ok(match words {
            [one] => Value::String((*one).to_owned()),
            many => Value::Array(
                many.iter()
                    .map(|w| Value::String((*w).to_owned()))
                    .collect(),
            ),
        });
    }
    let object = |w: &str| -> Result<Value, Violation> {
        if looks_json(w) {
            json(w)
        } else {
            shorthand::parse(w).map_err(|e| {
                if e.paramfile {
                    refused(
                        Refusal::FileReference,
                        format!(
                            "{}: shorthand `@=` reads a value from a file or URL",
                            crate::plan::policy::quoted(name)
                        ),
                    )
                } else {
                    bad(format!("shorthand: {e}"))
                }
            })
        }
    };
    match (info.shape, words) {
        (Shape::Scalar, [one]) => Ok(Value::String((*one).to_owned())),
        // Only plain decimal digits: Python's `int()` also reads `7_0` as 70
        // and ` 90` as 90, which a check of the text would read otherwise.
        (Shape::Number, [one]) => {
            let digits = one.strip_prefix('-').unwrap_or(one);
            let plain = !digits.is_empty()
                && digits.split_once('.').map_or(
                    digits.bytes().all(|b| b.is_ascii_digit()),
                    |(i, f)| {
                        !i.is_empty()
                            && i.bytes().all(|b| b.is_ascii_digit())
                            && f.bytes().all(|b| b.is_ascii_digit())
                    },
                );
            if !plain {
                return Err(bad(format!(
                    "{} is not a plain number (awscli would read it as a number anyway)",
                    crate::plan::policy::quoted(one)
                )));
            }
            Ok(Value::String((*one).to_owned()))
        }
        (Shape::Object, [one]) => object(one),
        (Shape::List | Shape::ObjectList, [one]) if one.trim_start().starts_with('[') => json(one),
        (Shape::List, many) => Ok(Value::Array(
            many.iter()
                .map(|w| Value::String((*w).to_owned()))
                .collect(),
        )),
        (Shape::ObjectList, many) => {
            // awscli decides by the first word whether all are JSON.
            let first_json = many.first().is_some_and(|w| looks_json(w));
            if many.iter().any(|w| looks_json(w) != first_json) {
                return Err(bad("a mix of JSON and shorthand words".to_owned()));
            }
            many.iter()
                .map(|w| object(w))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        (_, many) => Ok(Value::Array(
            many.iter()
                .map(|w| Value::String((*w).to_owned()))
                .collect(),
        )),
    }
}
