//! Binding: a remediating command acts on its finding's own resource.
//!
//! A value bound as `target` must be one of the resource's names as the
//! finding gives them (its id, name or full name), or a qualified form of
//! one (an ARN, an Azure resource id, a GCP resource URL or `gs://` bucket
//! whose last segment is the resource's name or id), or the short name of a
//! resource the finding names by ARN or id. `account`, `region` and
//! `resource_group` values are the finding's own.

use super::types::{Constraint, Rule};
use crate::model::{Cloud, Resource, Target};
use crate::plan::Command;
use crate::plan::policy::catalog::Operation;
use crate::plan::policy::reader::Parsed;
use serde_json::Value;

fn items(value: &Value) -> Vec<String> {
    match value {
        Value::Array(list) => list.iter().flat_map(items).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The last segment of a qualified name: after the last `/`, or after the
/// last `:` of an ARN without one.
fn last_segment(name: &str) -> &str {
    let name = name.trim_end_matches('/');
    match name.rsplit_once('/') {
        Some((_, last)) => last,
        None if name.starts_with("arn:") => name.rsplit(':').next().unwrap_or(name),
        None => name,
    }
}

/// Whether `value` names `resource`.
pub(crate) fn binds(value: &str, resource: &Resource, cloud: &Cloud) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    let value = value
        .strip_prefix("gs://")
        .map_or(value, |b| b.trim_end_matches('/'));
    let same = |a: &str, b: &str| match cloud {
        // Azure resource ids and names compare without case.
        Cloud::Azure => a.eq_ignore_ascii_case(b),
        _ => a == b,
    };
    let qualified = |s: &str| s.contains('/') || s.starts_with("arn:");
    resource.names().any(|name| {
        let name = name
            .strip_prefix("gs://")
            .map_or(name, |b| b.trim_end_matches('/'));
        same(value, name)
            || (qualified(value) && same(last_segment(value), name))
            || (qualified(name) && same(last_segment(name), value))
            || (qualified(value)
                && qualified(name)
                && same(last_segment(value), last_segment(name)))
    })
}

/// Checks the finding-dependent words of `constraint` in `value`.
pub(super) fn check(constraint: &Constraint, value: &Value, target: &Target) -> Result<(), String> {
    match constraint {
        Constraint::Target => {
            let Some(resource) = &target.resource else {
                return Err("the finding names no resource for it to be bound to".to_owned());
            };
            for item in items(value) {
                if !binds(&item, resource, &target.cloud) {
                    return Err(format!(
                        "{item:?} is not the finding's resource ({})",
                        resource.names().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Ok(())
        }
        Constraint::Account => {
            let own = target.account_id.as_deref().unwrap_or_default();
            for item in items(value) {
                let bare = item
                    .strip_prefix("/subscriptions/")
                    .map_or(item.as_str(), |s| s.trim_end_matches('/'));
                let ok = match target.cloud {
                    Cloud::Azure => bare.eq_ignore_ascii_case(own),
                    _ => bare == own,
                };
                if !ok || own.is_empty() {
                    return Err(format!("{item:?} is not the finding's account {own:?}"));
                }
            }
            Ok(())
        }
        Constraint::Region => {
            let Some(own) = target
                .region
                .as_deref()
                .filter(|r| !r.is_empty() && *r != "global")
            else {
                return Ok(());
            };
            for item in items(value) {
                let within = item == own
                    || item
                        .strip_prefix(own)
                        .is_some_and(|rest| rest.starts_with('-'));
                if !within {
                    return Err(format!("{item:?} is not in the finding's region {own:?}"));
                }
            }
            Ok(())
        }
        Constraint::ResourceGroup => {
            let group = target.resource.as_ref().and_then(|r| {
                r.names().find_map(|n| {
                    let lower = n.to_ascii_lowercase();
                    let at = lower.find("/resourcegroups/")? + "/resourcegroups/".len();
                    n.get(at..)?.split('/').next().map(str::to_owned)
                })
            });
            let Some(group) = group else {
                return Ok(());
            };
            for item in items(value) {
                if !item.eq_ignore_ascii_case(&group) {
                    return Err(format!(
                        "{item:?} is not the finding's resource group {group:?}"
                    ));
                }
            }
            Ok(())
        }
        Constraint::Rule(rule) => check_rule(rule, value, target),
        _ => Ok(()),
    }
}

fn check_rule(rule: &Rule, value: &Value, target: &Target) -> Result<(), String> {
    for inner in [&rule.list, &rule.repeat].into_iter().flatten() {
        match value {
            Value::Array(list) => {
                for item in list {
                    check(inner, item, target)?;
                }
            }
            one => check(inner, one, target)?,
        }
    }
    if let (Some(fields), Value::Object(map)) = (&rule.fields, value) {
        for (key, val) in map {
            if let Some(inner) = fields.get(key) {
                check(inner, val, target).map_err(|e| format!("{key}: {e}"))?;
            }
        }
    }
    Ok(())
}

/// For a removal that may lift a deny: whether what it removes is known to
/// grant, never to deny — detaching an AWS-managed policy that is not one of
/// the deny policies.
pub(crate) fn removes_only_grants(command: &Command, op: &Operation, parsed: &Parsed<'_>) -> bool {
    if command.program() != "aws" || !op.path.starts_with("iam detach-") {
        return false;
    }
    let arns: Vec<String> = parsed
        .named("--policy-arn")
        .flat_map(|p| items(&p.value))
        .collect();
    !arns.is_empty()
        && arns.iter().all(|arn| {
            arn.split_once(":iam::aws:policy/")
                .is_some_and(|(_, name)| {
                    let name = name.rsplit('/').next().unwrap_or(name);
                    !crate::plan::policy::grants::DENY_MANAGED.contains(&name)
                })
        })
}
