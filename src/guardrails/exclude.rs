//! Exclusions and scope: the [`Exclusions`] stage skips (acks) what an
//! `exclude` entry matches, with reason `excluded` and the entry named, and,
//! when `include` entries are given, admits only what one of them matches —
//! failing closed: an event that cannot be shown to match is excluded.
//!
//! An entry selects by cloud, account, account group (Prisma Cloud's
//! `cloudAccountGroups`, the only account hierarchy the events carry; an AWS
//! Organizations OU, a GCP folder or an Azure management group are not in
//! any payload the models read), region, rule or policy, severity, resource
//! (id, ARN or name), resource tags and principal (the CloudTrail caller).
//! Every selector given must match (and); a list matches when one of its
//! values does (or). Resource, account, region, group, tag values and
//! principals are [globs](Glob) (`*`, `?`). An entry may expire; an expired
//! `exclude` no longer excludes, and an expired `include` no longer admits
//! (it never widens the scope to everything).
//!
//! What the event tells is decided before planning; what only the plan
//! tells (the resource a CloudTrail rule bound, the rule's name) before
//! execution. Tags come from the event when it carries them (Prisma alerts'
//! `resource.resourceTags`), else from a [`TagLookup`]; an entry that needs
//! tags it cannot read **defers** the delivery (`exclusion_unresolved`): it
//! never acts on a guess.

use super::glob::Glob;
use crate::error::{Error, Result};
use crate::model::{Cloud, Event, Target};
use crate::pipeline::{Stage, StageDecision, rule_matches};
use crate::plan::Plan;
use crate::source::Delivery;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Reads a resource's tags when the event does not carry them.
#[async_trait]
pub trait TagLookup: Send + Sync + fmt::Debug {
    /// The tags of `target.resource` (in `target`'s account and region);
    /// an error when they cannot be read (the delivery is then deferred).
    async fn tags(&self, target: &Target) -> Result<BTreeMap<String, String>>;
}

/// What an entry selects; every selector given must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector {
    clouds: Vec<Cloud>,
    accounts: Vec<Glob>,
    account_groups: Vec<Glob>,
    regions: Vec<Glob>,
    rules: Vec<String>,
    severities: Vec<String>,
    resources: Vec<Glob>,
    tags: BTreeMap<String, Glob>,
    principals: Vec<Glob>,
}

fn glob(text: &str) -> Result<Glob> {
    Glob::new(text).map_err(Error::Config)
}

impl Selector {
    /// Selects everything (narrow it with the other calls).
    pub fn new() -> Self {
        Self::default()
    }

    /// The event's cloud is `cloud` (or another one given).
    pub fn cloud(mut self, cloud: Cloud) -> Self {
        self.clouds.push(cloud);
        self
    }

    /// The account, subscription or project matches `pattern`.
    pub fn account(mut self, pattern: &str) -> Result<Self> {
        self.accounts.push(glob(pattern)?);
        Ok(self)
    }

    /// One of the account's groups (Prisma Cloud account groups) matches.
    pub fn account_group(mut self, pattern: &str) -> Result<Self> {
        self.account_groups.push(glob(pattern)?);
        Ok(self)
    }

    /// The region matches `pattern`.
    pub fn region(mut self, pattern: &str) -> Result<Self> {
        self.regions.push(glob(pattern)?);
        Ok(self)
    }

    /// The rule is `name`: a CloudTrail rule, a Prisma policy id or name, or
    /// a planner, exactly (see [`rule_matches`]).
    pub fn rule(mut self, name: impl Into<String>) -> Self {
        self.rules.push(name.into());
        self
    }

    /// The finding's severity is `severity` (any case).
    pub fn severity(mut self, severity: impl Into<String>) -> Self {
        self.severities.push(severity.into());
        self
    }

    /// One of the resource's names (id, ARN, name) matches `pattern`.
    pub fn resource(mut self, pattern: &str) -> Result<Self> {
        self.resources.push(glob(pattern)?);
        Ok(self)
    }

    /// The resource has tag `key` with a value matching `value`.
    pub fn tag(mut self, key: impl Into<String>, value: &str) -> Result<Self> {
        self.tags.insert(key.into(), glob(value)?);
        Ok(self)
    }

    /// The caller (CloudTrail `userIdentity.arn` or its session issuer)
    /// matches `pattern`.
    pub fn principal(mut self, pattern: &str) -> Result<Self> {
        self.principals.push(glob(pattern)?);
        Ok(self)
    }
}

/// Whether an entry is an exclusion or a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exclude,
    Include,
}

/// One entry: a selector, what it does, why, and until when.
#[derive(Clone, Debug, PartialEq)]
pub struct Exclusion {
    kind: Kind,
    selector: Selector,
    reason: String,
    expires: Option<SystemTime>,
}

impl Exclusion {
    /// What `selector` matches is skipped, for `reason`.
    pub fn exclude(selector: Selector, reason: impl Into<String>) -> Self {
        Exclusion {
            kind: Kind::Exclude,
            selector,
            reason: reason.into(),
            expires: None,
        }
    }

    /// Only what this (or another include entry) matches is admitted.
    pub fn include(selector: Selector, reason: impl Into<String>) -> Self {
        Exclusion {
            kind: Kind::Include,
            ..Self::exclude(selector, reason)
        }
    }

    /// The entry no longer applies from `when` on.
    pub fn until(mut self, when: SystemTime) -> Self {
        self.expires = Some(when);
        self
    }

    fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// Parses an expiry: an RFC 3339 timestamp (`2027-01-31T18:00:00Z`,
/// `2027-01-31T20:00:00+02:00`) or a date (`2027-01-31`: the entry applies
/// through that day, UTC).
pub fn parse_expiry(text: &str) -> Result<SystemTime> {
    let bad = |why: &str| {
        Error::Config(format!(
            "invalid expiry {text:?}: {why} (write 2027-01-31 or 2027-01-31T18:00:00Z)"
        ))
    };
    let t = text.trim();
    if t.len() == 10 {
        let start =
            humantime::parse_rfc3339(&format!("{t}T00:00:00Z")).map_err(|e| bad(&e.to_string()))?;
        return Ok(start + Duration::from_secs(86_400));
    }
    if t.ends_with(['Z', 'z']) {
        let base = &t[..t.len() - 1];
        return humantime::parse_rfc3339_weak(&format!("{base}Z")).map_err(|e| bad(&e.to_string()));
    }
    let split = t.len().checked_sub(6).filter(|&i| t.is_char_boundary(i));
    let Some((base, offset)) = split.map(|i| t.split_at(i)) else {
        return Err(bad("no time zone"));
    };
    let (sign, hm) = offset.split_at(1);
    let parts: Vec<&str> = hm.split(':').collect();
    let (Some(h), Some(m), 2) = (
        parts.first().and_then(|h| h.parse::<u64>().ok()),
        parts.get(1).and_then(|m| m.parse::<u64>().ok()),
        parts.len(),
    ) else {
        return Err(bad("no time zone"));
    };
    let local =
        humantime::parse_rfc3339_weak(&format!("{base}Z")).map_err(|e| bad(&e.to_string()))?;
    let shift = Duration::from_secs(h * 3600 + m * 60);
    match sign {
        "+" => Ok(local - shift),
        "-" => Ok(local + shift),
        _ => Err(bad("no time zone")),
    }
}

/// What one selector (or entry) says about an event.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Found {
    Yes,
    No,
    /// Only the plan can tell.
    Later,
    /// A lookup it needs failed.
    Unresolved(String),
}

fn any_glob(globs: &[Glob], values: &[&str]) -> Found {
    if globs.iter().any(|g| values.iter().any(|v| g.matches(v))) {
        Found::Yes
    } else {
        Found::No
    }
}

/// The caller's ARNs: CloudTrail `userIdentity.arn` and its session issuer,
/// also inside a Prisma audit-event alert's `resource.data`.
pub(crate) fn principals(event: &Event) -> Vec<String> {
    match event {
        Event::CloudTrail(r) => [r.principal_arn(), r.session_issuer_arn()]
            .into_iter()
            .flatten()
            .map(str::to_owned)
            .collect(),
        Event::PrismaAlert(a) => {
            let Some(data) = a.resource_data() else {
                return Vec::new();
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data.get()) else {
                return Vec::new();
            };
            [
                "/userIdentity/arn",
                "/userIdentity/sessionContext/sessionIssuer/arn",
            ]
            .iter()
            .filter_map(|p| v.pointer(p)?.as_str().map(str::to_owned))
            .collect()
        }
        _ => Vec::new(),
    }
}

/// What is known about one delivery while its entries are checked; the tags
/// are read at most once.
struct Facts<'a> {
    event: &'a Event,
    plan: Option<&'a Plan>,
    target: Target,
    /// The event's own resource, when the plan names another (both count).
    event_resource: Option<crate::model::Resource>,
    tags: Option<std::result::Result<BTreeMap<String, String>, String>>,
}

impl<'a> Facts<'a> {
    fn new(event: &'a Event, plan: Option<&'a Plan>) -> Self {
        let mut target = event.target();
        let mut event_resource = None;
        if let Some(plan) = plan {
            event_resource = target.resource.take();
            target = plan.target.clone();
            if target.resource.is_none() {
                target.resource = event_resource.take();
            }
        }
        Facts {
            event,
            plan,
            target,
            event_resource,
            tags: None,
        }
    }

    fn prisma(&self) -> Option<&crate::model::PrismaAlert> {
        match self.event {
            Event::PrismaAlert(a) => Some(a),
            _ => None,
        }
    }

    /// Every selector but the tags, cheapest first.
    fn plain(&self, s: &Selector) -> Vec<Found> {
        let mut found = Vec::new();
        if !s.clouds.is_empty() {
            let cloud = self.event.cloud();
            found.push(if s.clouds.contains(&cloud) {
                Found::Yes
            } else {
                Found::No
            });
        }
        if !s.accounts.is_empty() {
            let account: Vec<&str> = self.target.account_id.as_deref().into_iter().collect();
            found.push(any_glob(&s.accounts, &account));
        }
        if !s.regions.is_empty() {
            let region: Vec<&str> = self.target.region.as_deref().into_iter().collect();
            found.push(any_glob(&s.regions, &region));
        }
        if !s.account_groups.is_empty() {
            let groups = self
                .prisma()
                .map(|a| a.account_groups())
                .unwrap_or_default();
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            found.push(any_glob(&s.account_groups, &groups));
        }
        if !s.severities.is_empty() {
            let severity = self.prisma().and_then(|a| a.severity());
            let hit =
                severity.is_some_and(|v| s.severities.iter().any(|w| w.eq_ignore_ascii_case(v)));
            found.push(if hit { Found::Yes } else { Found::No });
        }
        if !s.principals.is_empty() {
            let arns = principals(self.event);
            let arns: Vec<&str> = arns.iter().map(String::as_str).collect();
            found.push(any_glob(&s.principals, &arns));
        }
        if !s.rules.is_empty() {
            found.push(self.rule(&s.rules));
        }
        if !s.resources.is_empty() {
            found.push(self.resource(&s.resources));
        }
        found
    }

    fn rule(&self, names: &[String]) -> Found {
        if let Some(plan) = self.plan {
            let hit = names.iter().any(|n| rule_matches(n, self.event, plan));
            return if hit { Found::Yes } else { Found::No };
        }
        let policy = self.prisma().map(|a| [a.policy_id(), a.policy_name()]);
        let hit = policy.is_some_and(|p| names.iter().any(|n| p.contains(&Some(n.as_str()))));
        // A planner's name or a CloudTrail rule's only show in the plan.
        if hit { Found::Yes } else { Found::Later }
    }

    fn resource(&self, globs: &[Glob]) -> Found {
        let names: Vec<&str> = (self.target.resource.iter())
            .chain(&self.event_resource)
            .flat_map(|r| r.names())
            .collect();
        if names.is_empty() && self.plan.is_none() {
            return Found::Later;
        }
        any_glob(globs, &names)
    }

    async fn tags(
        &mut self,
        wanted: &BTreeMap<String, Glob>,
        lookup: Option<&dyn TagLookup>,
    ) -> Found {
        if self.tags.is_none() {
            if let Some(carried) = self.prisma().and_then(|a| a.resource_tags()) {
                self.tags = Some(Ok(carried));
            } else if self.target.resource.is_none() {
                if self.plan.is_none() {
                    return Found::Later;
                }
                self.tags = Some(Err("the plan names no resource to read tags of".to_owned()));
            } else {
                self.tags = Some(match lookup {
                    Some(l) => l.tags(&self.target).await.map_err(|e| e.to_string()),
                    None => {
                        Err("the event carries no tags and no tag lookup is configured".to_owned())
                    }
                });
            }
        }
        match &self.tags {
            Some(Ok(tags)) => {
                let all = wanted
                    .iter()
                    .all(|(k, g)| tags.get(k).is_some_and(|v| g.matches(v)));
                if all { Found::Yes } else { Found::No }
            }
            Some(Err(why)) => Found::Unresolved(why.clone()),
            None => Found::Later,
        }
    }

    async fn entry(&mut self, s: &Selector, lookup: Option<&dyn TagLookup>) -> Found {
        let plain = self.plain(s);
        if plain.contains(&Found::No) {
            return Found::No;
        }
        if plain.contains(&Found::Later) {
            return Found::Later;
        }
        if s.tags.is_empty() {
            Found::Yes
        } else {
            self.tags(&s.tags, lookup).await
        }
    }
}

/// The exclusions stage: an `exclude` entry that matches skips the delivery
/// (`excluded`, the entry named by position and reason); once any `include`
/// entry is given, only what one matches is admitted (an event that cannot be
/// shown to match is excluded); an entry that needs tags it cannot read
/// defers the delivery (`exclusion_unresolved`). Decided before planning for
/// what the event tells, before execution for what only the plan tells.
#[derive(Clone, Debug)]
pub struct Exclusions {
    entries: Vec<Exclusion>,
    lookup: Option<Arc<dyn TagLookup>>,
    retry_after: Duration,
}

impl Default for Exclusions {
    fn default() -> Self {
        Self::new()
    }
}

impl Exclusions {
    /// No entries yet: admits everything.
    pub fn new() -> Self {
        Exclusions {
            entries: Vec::new(),
            lookup: None,
            retry_after: Duration::from_secs(60),
        }
    }

    /// Adds an entry (named in audit records by its position, from 0).
    pub fn entry(mut self, entry: Exclusion) -> Self {
        self.entries.push(entry);
        self
    }

    /// Reads tags the events do not carry with `lookup`.
    pub fn with_tag_lookup(mut self, lookup: Arc<dyn TagLookup>) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// How long a delivery waits when an entry could not be decided
    /// (default 60 s).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn named(&self, i: usize) -> String {
        format!("exclusions[{i}] ({})", self.entries[i].reason)
    }

    async fn decide(&self, event: &Event, plan: Option<&Plan>) -> StageDecision {
        let now = SystemTime::now();
        let lookup = self.lookup.as_deref();
        let mut facts = Facts::new(event, plan);
        let mut unresolved: Option<(usize, String)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.kind != Kind::Exclude || e.expired(now) {
                continue;
            }
            match facts.entry(&e.selector, lookup).await {
                Found::Yes => return StageDecision::skip("excluded", self.named(i)),
                Found::Unresolved(why) => {
                    unresolved.get_or_insert((i, why));
                }
                Found::No | Found::Later => {}
            }
        }
        if let Some((i, why)) = unresolved {
            return self.defer(i, &why);
        }
        let includes: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].kind == Kind::Include)
            .collect();
        if includes.is_empty() {
            return StageDecision::Proceed;
        }
        let mut later = false;
        for &i in &includes {
            let e = &self.entries[i];
            if e.expired(now) {
                continue;
            }
            match facts.entry(&e.selector, lookup).await {
                Found::Yes => return StageDecision::Proceed,
                Found::Later => later = true,
                Found::Unresolved(why) => {
                    unresolved.get_or_insert((i, why));
                }
                Found::No => {}
            }
        }
        if let Some((i, why)) = unresolved {
            return self.defer(i, &why);
        }
        if later && plan.is_none() {
            return StageDecision::Proceed;
        }
        let named: Vec<String> = includes
            .iter()
            .map(|&i| format!("exclusions[{i}]"))
            .collect();
        StageDecision::skip(
            "excluded",
            format!(
                "outside the scope: no include entry matches ({}; expired ones match nothing)",
                named.join(", ")
            ),
        )
    }

    fn defer(&self, i: usize, why: &str) -> StageDecision {
        tracing::warn!(
            entry = i,
            error = why,
            "exclusion could not be decided; deferring"
        );
        StageDecision::defer(
            self.retry_after,
            "exclusion_unresolved",
            format!(
                "{} could not be decided: {why}; nothing runs until it can",
                self.named(i)
            ),
        )
    }
}

#[async_trait]
impl Stage for Exclusions {
    fn name(&self) -> &str {
        "exclusions"
    }

    async fn before_plan(&self, event: &Event, _delivery: &Delivery) -> StageDecision {
        self.decide(event, None).await
    }

    async fn before_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        self.decide(event, Some(plan)).await
    }
}

#[path = "exclude_file.rs"]
mod file;
pub use file::{ExclusionFile, OneOrMany, SelectorFile};

#[cfg(test)]
#[path = "exclude_tests.rs"]
mod tests;
