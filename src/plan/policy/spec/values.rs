//! Checking a parameter's value, as the CLI read it, against its
//! constraint: the target-independent half (the finding-dependent words —
//! target, account, region, resource group — are left to binding).

use super::types::{Constraint, Rule};
use crate::plan::StepFile;
use serde_json::Value;

/// What a value check needs besides the value.
pub(super) struct Cx<'a> {
    pub(super) program: &'a str,
    pub(super) files: &'a [StepFile],
    pub(super) destinations: &'a [String],
    pub(super) isolation: &'a [String],
    /// What earlier commands of the same script created, when the command
    /// is checked as part of a script.
    pub(super) created: Option<&'a [String]>,
}

/// A value's text, for comparisons and reasons.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The items of a value: a list's elements, or the value itself.
fn items(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(list) => list.iter().collect(),
        one => vec![one],
    }
}

/// Checks `value` (of parameter `name`) against `constraint`; the error
/// says why it is outside.
pub(super) fn check(
    cx: &Cx<'_>,
    name: &str,
    constraint: &Constraint,
    value: &Value,
) -> Result<(), String> {
    match constraint {
        Constraint::Any => Ok(()),
        Constraint::Created => {
            let Some(created) = cx.created else {
                // A step built by code, not parsed from a script: trusted.
                return Ok(());
            };
            for item in items(value) {
                let t = text(item);
                let last = t.rsplit(['/', ':']).next().unwrap_or(&t);
                if !created.iter().any(|c| *c == t || c == last) {
                    return Err(format!(
                        "{t:?} was not created by this script: an existing one may be weaker"
                    ));
                }
            }
            Ok(())
        }
        Constraint::Target
        | Constraint::Account
        | Constraint::Region
        | Constraint::ResourceGroup => {
            // Bound later; here only that they are plain words.
            for item in items(value) {
                if !matches!(item, Value::String(_)) {
                    return Err(format!("{} is not a plain name", text(item)));
                }
            }
            Ok(())
        }
        // The spelling was matched against the spec's key: `--no-x: flag`
        // allows `--no-x`, and `--x` was refused as its opposite.
        Constraint::Flag => match value {
            Value::Bool(_) => Ok(()),
            other => Err(format!("a switch given the value {}", text(other))),
        },
        Constraint::DenyPolicy => deny_policy(cx, value),
        Constraint::ResourcePolicy => {
            for item in items(value) {
                document_denies(cx, &text(item))?;
            }
            Ok(())
        }
        Constraint::Destination => {
            for item in items(value) {
                let t = text(item);
                if !cx.destinations.contains(&t) {
                    return Err(format!(
                        "sends logs or audit records to {t:?}, which is not one of the \
                         operator's destinations ({})",
                        if cx.destinations.is_empty() {
                            "none configured".to_owned()
                        } else {
                            cx.destinations.join(", ")
                        }
                    ));
                }
            }
            Ok(())
        }
        Constraint::Isolation => {
            for item in items(value) {
                let t = text(item);
                if !cx.isolation.contains(&t) {
                    return Err(format!(
                        "{t:?} is not one of the operator's isolation groups ({})",
                        if cx.isolation.is_empty() {
                            "none configured".to_owned()
                        } else {
                            cx.isolation.join(", ")
                        }
                    ));
                }
            }
            Ok(())
        }
        Constraint::Rule(rule) => check_rule(cx, name, rule, value),
    }
}

fn check_rule(cx: &Cx<'_>, name: &str, rule: &Rule, value: &Value) -> Result<(), String> {
    if let Some(inner) = &rule.repeat {
        // Each occurrence was read as its own parameter: one value here.
        return check(cx, name, inner, value);
    }
    if let Some(inner) = &rule.list {
        let list = match value {
            Value::Array(list) => list.clone(),
            Value::String(s) if cx.program != "aws" && cx.program != "az" && s.contains(',') => {
                s.split(',').map(|p| Value::String(p.to_owned())).collect()
            }
            one => vec![one.clone()],
        };
        if list.is_empty() {
            return Err("an empty list".to_owned());
        }
        for item in &list {
            check(cx, name, inner, item)?;
        }
    }
    if let Some(keys) = &rule.pairs {
        for word in items(value) {
            for (key, val) in pairs(cx.program, &text(word))? {
                let found = keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key));
                let Some((_, inner)) = found else {
                    return Err(format!(
                        "sets {key:?}, which its spec does not allow (allowed: {})",
                        keys.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                };
                check(cx, &key, inner, &Value::String(val)).map_err(|e| format!("{key}: {e}"))?;
            }
        }
    }
    if let Some(fields) = &rule.fields {
        for item in items(value) {
            let Value::Object(map) = item else {
                return Err(format!("{} is not an object", text(item)));
            };
            for (key, val) in map {
                let Some(inner) = fields.get(key) else {
                    return Err(format!(
                        "key {key:?} is not allowed (allowed: {})",
                        fields.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                };
                check(cx, key, inner, val).map_err(|e| format!("{key}: {e}"))?;
            }
            if let Some(missing) = rule.required.iter().find(|k| !map.contains_key(*k)) {
                return Err(format!("without {missing:?}"));
            }
            if !rule.true_sets.is_empty() {
                let is_true = |k: &String| {
                    map.get(k)
                        .is_some_and(|v| text(v).eq_ignore_ascii_case("true"))
                };
                if !rule.true_sets.iter().any(|set| set.iter().all(is_true)) {
                    return Err(format!(
                        "does not set {} to true",
                        rule.true_sets
                            .iter()
                            .map(|s| s.join(" and "))
                            .collect::<Vec<_>>()
                            .join(", or ")
                    ));
                }
            }
        }
    }
    let scalar_rule = rule.one_of.is_some() || rule.min.is_some() || rule.max.is_some();
    if scalar_rule && rule.list.is_none() && rule.pairs.is_none() && rule.fields.is_none() {
        for item in items(value) {
            scalar(rule, item)?;
        }
    }
    Ok(())
}

fn scalar(rule: &Rule, value: &Value) -> Result<(), String> {
    let t = text(value);
    if let Some(allowed) = &rule.one_of {
        if !allowed.iter().any(|a| a.0.eq_ignore_ascii_case(t.trim())) || t.trim() != t {
            return Err(format!(
                "{t:?} is not one of the safe values ({})",
                allowed
                    .iter()
                    .map(|a| a.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if rule.min.is_some() || rule.max.is_some() {
        let n: i64 = t
            .parse()
            .map_err(|_| format!("{t:?} is not a whole number"))?;
        if let Some(min) = rule.min.filter(|m| n < *m) {
            return Err(format!("{n} is below the safe minimum {min}"));
        }
        if let Some(max) = rule.max.filter(|m| n > *m) {
            return Err(format!("{n} is above the safe maximum {max}"));
        }
    }
    Ok(())
}

/// `KEY=VALUE` items of one word: gcloud splits on `,` (or the `^D^`
/// delimiter it names); az reads one pair per word.
fn pairs(program: &str, word: &str) -> Result<Vec<(String, String)>, String> {
    let (delimiter, body) = match word.strip_prefix('^').and_then(|r| r.split_once('^')) {
        Some((d, rest)) if program == "gcloud" && !d.is_empty() => (Some(d.to_owned()), rest),
        _ if program == "gcloud" || program == "gsutil" => (Some(",".to_owned()), word),
        _ => (None, word),
    };
    let parts: Vec<&str> = match &delimiter {
        Some(d) => body.split(d.as_str()).collect(),
        None => vec![body],
    };
    parts
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.to_owned())),
            None => Err(format!("{p:?} is not KEY=VALUE")),
        })
        .collect()
}

/// The document a value stands for: an attached file's contents for
/// `file://NAME`, the value itself otherwise.
fn document<'a>(cx: &'a Cx<'_>, value: &'a str) -> &'a str {
    let name = value
        .strip_prefix("file://")
        .or_else(|| value.strip_prefix("fileb://"))
        .unwrap_or(value);
    cx.files
        .iter()
        .find(|f| f.name() == name)
        .map_or(value, StepFile::contents)
}

/// A policy document whose every statement denies.
fn document_denies(cx: &Cx<'_>, value: &str) -> Result<(), String> {
    let text = document(cx, value);
    if super::super::deny_doc::only_denies(text) == Some(true) {
        return Ok(());
    }
    let doc: Value = match serde_json::from_str(text.trim()) {
        Ok(doc) => doc,
        // A gcloud deny policy file is YAML or JSON.
        Err(_) => {
            serde_yaml_ng::from_str(text).map_err(|e| format!("not a policy document ({e})"))?
        }
    };
    // A GCP deny policy (`gcloud iam policies create --kind=denypolicies`)
    // holds only deny rules: its kind says so, and the spec pins the kind.
    if doc.get("Statement").is_none() && doc.get("rules").is_some_and(Value::is_array) {
        return Ok(());
    }
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.as_slice(),
        Some(one @ Value::Object(_)) => std::slice::from_ref(one),
        _ => return Err("a policy document without statements".to_owned()),
    };
    for statement in statements {
        if statement.get("Effect").and_then(Value::as_str) != Some("Deny") {
            return Err(
                "a policy statement that does not deny: only deny statements may be written"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// An identity policy that only denies: an inline or attached document, an
/// AWS-managed deny policy, or a customer-managed policy (which the script
/// parser admits only when the same script created it as a deny policy).
fn deny_policy(cx: &Cx<'_>, value: &Value) -> Result<(), String> {
    for item in items(value) {
        let t = text(item);
        if let Some((_, name)) = t.split_once(":iam::aws:policy/") {
            let name = name.rsplit('/').next().unwrap_or(name);
            if !crate::plan::policy::grants::DENY_MANAGED.contains(&name) {
                return Err(format!(
                    "the AWS-managed policy {name} grants: only deny policies may be attached"
                ));
            }
            continue;
        }
        if t.starts_with("arn:") {
            if !t.contains(":policy/") {
                return Err(format!("{t:?} is not a policy ARN"));
            }
            continue;
        }
        document_denies(cx, &t)?;
    }
    Ok(())
}
