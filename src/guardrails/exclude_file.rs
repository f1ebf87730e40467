//! The file form of exclusions (`exclusions:` in the guardrails file):
//! entries as written, compiled into [`Exclusion`]s with each mistake
//! reported by its path (`exclusions[3].exclude.resource`).

use super::{Exclusion, Kind, Selector, glob, parse_expiry};
use crate::error::{Error, Result};
use crate::guardrails::Glob;
use crate::model::Cloud;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One value or a list of them, in the file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several (any of them).
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A selector as written in the guardrails file (see [`Selector`]).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SelectorFile {
    /// `aws`, `azure`, `gcp`...
    #[serde(default)]
    pub cloud: Option<OneOrMany>,
    /// Account, subscription or project globs.
    #[serde(default)]
    pub account: Option<OneOrMany>,
    /// Prisma Cloud account group globs.
    #[serde(default)]
    pub account_group: Option<OneOrMany>,
    /// Region globs.
    #[serde(default)]
    pub region: Option<OneOrMany>,
    /// Rule names, Prisma policy ids or names, planners (exact).
    #[serde(default)]
    pub rule: Option<OneOrMany>,
    /// Severities (any case).
    #[serde(default)]
    pub severity: Option<OneOrMany>,
    /// Resource id, ARN or name globs.
    #[serde(default)]
    pub resource: Option<OneOrMany>,
    /// Tags: key to value glob; all must match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Principal ARN globs.
    #[serde(default)]
    pub principal: Option<OneOrMany>,
}

/// An `exclusions:` entry as written in the guardrails file.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ExclusionFile {
    /// What to skip.
    #[serde(default)]
    pub exclude: Option<SelectorFile>,
    /// What to admit (once any include entry is given, only that).
    #[serde(default)]
    pub include: Option<SelectorFile>,
    /// Why (named in the audit record).
    pub reason: String,
    /// When the entry stops applying (RFC 3339 or a date).
    #[serde(default)]
    pub expires: Option<String>,
}

impl ExclusionFile {
    /// The entry, or the mistake with `path` (`exclusions[3].exclude.resource`).
    pub fn compile(&self, path: &str) -> Result<Exclusion> {
        let at = |field: &str, e: Error| {
            let why = match e {
                Error::Config(m) => m,
                other => other.to_string(),
            };
            Error::Config(format!("guardrails: {path}.{field}: {why}"))
        };
        if self.reason.trim().is_empty() {
            return Err(at("reason", Error::Config("say why".to_owned())));
        }
        let (kind, file, name) = match (&self.exclude, &self.include) {
            (Some(s), None) => (Kind::Exclude, s, "exclude"),
            (None, Some(s)) => (Kind::Include, s, "include"),
            _ => {
                return Err(Error::Config(format!(
                    "guardrails: {path}: give exactly one of exclude or include"
                )));
            }
        };
        let mut s = Selector::new();
        let list = |v: &Option<OneOrMany>| v.as_ref().map_or(&[][..], |v| v.values()).to_vec();
        let globs = |field: &str, v: &Option<OneOrMany>| -> Result<Vec<Glob>> {
            list(v)
                .iter()
                .map(|t| glob(t).map_err(|e| at(&format!("{name}.{field}"), e)))
                .collect()
        };
        s.clouds = list(&file.cloud).iter().map(|c| Cloud::parse(c)).collect();
        s.accounts = globs("account", &file.account)?;
        s.account_groups = globs("account_group", &file.account_group)?;
        s.regions = globs("region", &file.region)?;
        s.rules = list(&file.rule);
        s.severities = list(&file.severity);
        s.resources = globs("resource", &file.resource)?;
        s.principals = globs("principal", &file.principal)?;
        for (k, v) in &file.tags {
            let g = glob(v).map_err(|e| at(&format!("{name}.tags.{k}"), e))?;
            s.tags.insert(k.clone(), g);
        }
        if s == Selector::default() {
            return Err(at(
                name,
                Error::Config("select something (an empty selector matches everything)".to_owned()),
            ));
        }
        let mut entry = Exclusion {
            kind,
            selector: s,
            reason: self.reason.clone(),
            expires: None,
        };
        if let Some(text) = &self.expires {
            entry.expires = Some(parse_expiry(text).map_err(|e| at("expires", e))?);
        }
        Ok(entry)
    }
}
