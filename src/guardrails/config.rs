//! The guardrails file (`--guardrails FILE`, YAML or JSON) and
//! [`Guardrails`], which turns it (or code) into the pipeline's stages in
//! the order they must run: the worker's own identities, exclusions, shadow
//! mode, rate limits, circuit breakers. A
//! plan is counted by a later stage only once every earlier one let it
//! through, so a deferred plan never uses up a circuit's count.
//!
//! ```yaml
//! identities:                                # loop prevention (own_change)
//!   arns: ["arn:aws:iam::123456789012:role/ops/remediator"]
//!   discover_profiles: [remediator]          # sts get-caller-identity at start-up
//! exclusions:                                # skipped as `excluded`, entry named
//!   - exclude: { account: "210987654321", region: "eu-*" }
//!     reason: sandbox accounts belong to the platform team
//!     expires: 2027-01-31                    # through that day (UTC); or RFC 3339
//!   - exclude: { tags: { remediation: "off*" } }   # tags read from the alert, else looked up
//!     reason: owners opted out
//!   - exclude: { resource: "arn:aws:s3:::*-public-site", rule: "S3 bucket is public" }
//!     reason: public websites by design
//!   - include: { cloud: aws, severity: [high, critical] }   # only this is admitted
//!     reason: first month covers high findings only
//! rate_limits:
//!   default: { per_second: 1, burst: 5 }     # every account-region
//!   aws: { per_second: 2, burst: 2 }         # every AWS account-region
//!   targets:
//!     - { account: "123456789012", region: us-east-1, per_second: 0.5, burst: 1 }
//! circuits:
//!   every_rule: { max_runs: 50, max_failures: 5, window: 10m }
//!   every_target: { max_failures: 10, window: 10m }
//!   recheck: 60s                             # how often held plans ask again
//! rules:
//!   - rule: "AWS IAM user with risky permissions"   # rule, policy id or name, planner
//!     mode: shadow                                  # plan and audit, run nothing
//!     max_runs: 20
//!     window: 1m
//!     cool_down: 30m                                # closes by itself (else: an operator)
//! store: { dynamodb: { table: remediation-guardrails } }   # shared; default: memory
//! ```
//!
//! Unknown keys and bad values are refused with the path of the mistake
//! (`rules[0].window: invalid duration...`).

use super::{CircuitBreakers, GuardrailStore, Rate, RateLimits, ShadowMode, TargetMatch, Trip};
use super::{ExclusionFile, Exclusions, IdentitiesFile, OwnIdentities};
use crate::error::{Error, Result};
use crate::model::Cloud;
use crate::pipeline::Stage;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The guardrails file, as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GuardrailsFile {
    /// Rate limits per target.
    #[serde(default)]
    pub rate_limits: Option<RateLimitsFile>,
    /// Circuit breakers for every rule and every target.
    #[serde(default)]
    pub circuits: Option<CircuitsFile>,
    /// Per rule: its mode and circuit limits.
    #[serde(default)]
    pub rules: Vec<RuleFile>,
    /// The mode of every rule not listed (`enforce` unless given).
    #[serde(default)]
    pub mode: Mode,
    /// Exclusions and scope, in order (named by position in audit records).
    #[serde(default)]
    pub exclusions: Vec<ExclusionFile>,
    /// The worker's own identities (loop prevention).
    #[serde(default)]
    pub identities: Option<IdentitiesFile>,
    /// Blast-radius limits per rule and per plan.
    #[serde(default)]
    pub blast_radius: Option<super::blast_file::BlastRadiusFile>,
    /// Where the counts and circuits are kept (default: in the worker's
    /// memory; a DynamoDB table to share them between workers).
    #[serde(default)]
    pub store: StoreFile,
}

/// `store:` — absent for the worker's memory, or `{ dynamodb: { table: NAME } }`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreFile {
    /// A DynamoDB table shared by every worker and function using it.
    #[serde(default)]
    pub dynamodb: Option<DynamoStoreFile>,
}

/// `store: { dynamodb: ... }`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DynamoStoreFile {
    /// The table (partition key `pk`, a string).
    pub table: String,
}

/// Whether a rule's plans run.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// They run.
    #[default]
    Enforce,
    /// They are planned, checked and audited as `shadow`; none runs.
    Shadow,
}

/// `rate_limits:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitsFile {
    /// Every target without a more specific rate.
    #[serde(default)]
    pub default: Option<RateFile>,
    /// Every AWS account-region.
    #[serde(default)]
    pub aws: Option<RateFile>,
    /// Every Azure subscription.
    #[serde(default)]
    pub azure: Option<RateFile>,
    /// Every GCP project.
    #[serde(default)]
    pub gcp: Option<RateFile>,
    /// Targets with their own rate (the first matching entry wins).
    #[serde(default)]
    pub targets: Vec<TargetRateFile>,
}

/// A rate.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    /// Plans a second (positive; a fraction for fewer).
    pub per_second: f64,
    /// Plans at once (default 1).
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// A target's own rate.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetRateFile {
    /// `aws`, `azure` or `gcp`.
    #[serde(default)]
    pub cloud: Option<Cloud>,
    /// The account, subscription or project.
    #[serde(default)]
    pub account: Option<String>,
    /// The region (`global` for global services such as IAM).
    #[serde(default)]
    pub region: Option<String>,
    /// Plans a second.
    pub per_second: f64,
    /// Plans at once (default 1).
    #[serde(default = "one")]
    pub burst: u32,
}

/// `circuits:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CircuitsFile {
    /// Limits for every rule without its own.
    #[serde(default)]
    pub every_rule: Option<TripFile>,
    /// Limits for every target.
    #[serde(default)]
    pub every_target: Option<TripFile>,
    /// How long a held plan waits before it asks again (default 60s).
    #[serde(default, with = "duration")]
    pub recheck: Option<Duration>,
}

/// When a circuit opens.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TripFile {
    /// More plans started than this within `window` opens it.
    #[serde(default)]
    pub max_runs: Option<u32>,
    /// More plans failed than this within `window` opens it.
    #[serde(default)]
    pub max_failures: Option<u32>,
    /// The window (default 1m).
    #[serde(default, with = "duration")]
    pub window: Option<Duration>,
    /// Closes by itself this long after opening (default: only by an operator).
    #[serde(default, with = "duration")]
    pub cool_down: Option<Duration>,
}

/// One rule's settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// A rule name, a Prisma policy id or name, or a planner.
    pub rule: String,
    /// `enforce` or `shadow` (default: the file's `mode`).
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Circuit limits of this rule.
    #[serde(flatten)]
    pub trip: TripFile,
}

/// Durations as `90s`, `5m`, `1h 30m`.
pub(in crate::guardrails) mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub(in crate::guardrails) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let parsed = humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))?;
        if parsed.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration must be more than zero",
            ));
        }
        Ok(Some(parsed))
    }
}

fn invalid(path: &str, reason: impl std::fmt::Display) -> Error {
    let reason = reason.to_string();
    // The YAML reader's messages name the path already.
    let reason = reason
        .strip_prefix(path)
        .and_then(|r| r.strip_prefix(": "))
        .unwrap_or(&reason);
    Error::Config(format!("guardrails: {path}: {reason}"))
}

fn rate(path: &str, per_second: f64, burst: u32) -> Result<Rate> {
    if !(per_second.is_finite() && per_second > 0.0) {
        return Err(invalid(
            &format!("{path}.per_second"),
            format!("must be a positive number of plans a second, not {per_second}"),
        ));
    }
    if burst == 0 {
        return Err(invalid(&format!("{path}.burst"), "must be at least 1"));
    }
    Ok(Rate::new(per_second, burst))
}

impl TripFile {
    fn trip(&self, path: &str) -> Result<Trip> {
        if self.max_runs.is_none() && self.max_failures.is_none() {
            return Err(invalid(path, "give max_runs, max_failures or both"));
        }
        if self.max_runs == Some(0) {
            return Err(invalid(&format!("{path}.max_runs"), "must be at least 1"));
        }
        Ok(Trip {
            max_runs: self.max_runs,
            max_failures: self.max_failures,
            window: self.window.unwrap_or(Duration::from_secs(60)),
            cool_down: self.cool_down,
        })
    }

    fn is_empty(&self) -> bool {
        self.max_runs.is_none()
            && self.max_failures.is_none()
            && self.window.is_none()
            && self.cool_down.is_none()
    }
}

impl GuardrailsFile {
    /// Reads a guardrails file: JSON when its name ends in `.json`, YAML otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("guardrails file {}: {e}", path.display())))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let file = if json {
            Self::from_json(&text)
        } else {
            Self::from_yaml(&text)
        };
        file.map_err(|e| match e {
            Error::Config(reason) => Error::Config(format!("{reason} ({})", path.display())),
            other => other,
        })
    }

    /// Parses YAML (JSON is YAML too), refusing unknown keys and bad values
    /// with the path of the mistake.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let file: Self = serde_path_to_error::deserialize(de)
            .map_err(|e| invalid(&shown_path(e.path()), e.inner()))?;
        file.validate()?;
        Ok(file)
    }

    /// Parses JSON, refusing unknown keys and bad values with the path of
    /// the mistake.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let file: Self = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| invalid(&shown_path(e.path()), e.inner()))?;
        file.validate()?;
        Ok(file)
    }

    /// Checks the values serde cannot (positive rates, limits given).
    fn validate(&self) -> Result<()> {
        if let Some(b) = &self.blast_radius {
            b.validate()?;
        }
        if let Some(r) = &self.rate_limits {
            for (name, v) in [
                ("default", &r.default),
                ("aws", &r.aws),
                ("azure", &r.azure),
                ("gcp", &r.gcp),
            ] {
                if let Some(v) = v {
                    rate(&format!("rate_limits.{name}"), v.per_second, v.burst)?;
                }
            }
            for (i, t) in r.targets.iter().enumerate() {
                let path = format!("rate_limits.targets[{i}]");
                rate(&path, t.per_second, t.burst)?;
                if t.cloud.is_none() && t.account.is_none() && t.region.is_none() {
                    return Err(invalid(&path, "name a cloud, an account or a region"));
                }
            }
        }
        if let Some(c) = &self.circuits {
            if let Some(t) = &c.every_rule {
                t.trip("circuits.every_rule")?;
            }
            if let Some(t) = &c.every_target {
                t.trip("circuits.every_target")?;
            }
        }
        for (i, e) in self.exclusions.iter().enumerate() {
            e.compile(&format!("exclusions[{i}]"))?;
        }
        if let Some(ids) = &self.identities {
            ids.compile()?;
        }
        for (i, r) in self.rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            if r.rule.trim().is_empty() {
                return Err(invalid(&format!("{path}.rule"), "must name a rule"));
            }
            if !r.trip.is_empty() {
                r.trip.trip(&path)?;
            }
        }
        Ok(())
    }
}

/// serde_path_to_error's path, or `(top level)`.
fn shown_path(path: &serde_path_to_error::Path) -> String {
    let shown = path.to_string();
    if shown == "." {
        "(top level)".to_owned()
    } else {
        shown
    }
}

/// The guardrail stages, built from code or a [`GuardrailsFile`].
#[derive(Debug)]
pub struct Guardrails {
    identities: Option<OwnIdentities>,
    exclusions: Option<Exclusions>,
    shadow: ShadowMode,
    rate: Option<RateLimits>,
    blast: Option<super::BlastRadius>,
    circuits: Option<CircuitBreakers>,
}

impl Guardrails {
    /// No guardrails yet (add them with the `with_` calls).
    pub fn new() -> Self {
        Guardrails {
            identities: None,
            exclusions: None,
            shadow: ShadowMode::new(),
            rate: None,
            blast: None,
            circuits: None,
        }
    }

    /// The guardrails a file asks for, sharing `store`.
    pub fn from_file(file: &GuardrailsFile, store: Arc<dyn GuardrailStore>) -> Result<Self> {
        file.validate()?;
        let mut shadow = ShadowMode::new();
        if file.mode == Mode::Shadow {
            shadow = shadow.everything();
        }
        let mut circuits = CircuitBreakers::new(Arc::clone(&store));
        let mut any_circuit = false;
        if let Some(c) = &file.circuits {
            if let Some(t) = &c.every_rule {
                circuits = circuits.with_every_rule(t.trip("circuits.every_rule")?);
                any_circuit = true;
            }
            if let Some(t) = &c.every_target {
                circuits = circuits.with_every_target(t.trip("circuits.every_target")?);
                any_circuit = true;
            }
            if let Some(recheck) = c.recheck {
                circuits = circuits.with_recheck(recheck);
            }
        }
        for (i, r) in file.rules.iter().enumerate() {
            match r.mode {
                Some(Mode::Shadow) => shadow = shadow.rule(&r.rule),
                Some(Mode::Enforce) => shadow = shadow.enforce(&r.rule),
                None => {}
            }
            if !r.trip.is_empty() {
                circuits = circuits.with_rule(&r.rule, r.trip.trip(&format!("rules[{i}]"))?);
                any_circuit = true;
            }
        }
        let rate = file.rate_limits.as_ref().map(|r| {
            let mut limits = RateLimits::new(Arc::clone(&store));
            let mk = |v: &RateFile| Rate::new(v.per_second, v.burst);
            if let Some(v) = &r.default {
                limits = limits.with_default(mk(v));
            }
            for (cloud, v) in [
                (Cloud::Aws, &r.aws),
                (Cloud::Azure, &r.azure),
                (Cloud::Gcp, &r.gcp),
            ] {
                if let Some(v) = v {
                    limits = limits.with_cloud(cloud, mk(v));
                }
            }
            for t in &r.targets {
                let matching = TargetMatch {
                    cloud: t.cloud.clone(),
                    account: t.account.clone(),
                    region: t.region.clone(),
                };
                limits = limits.with_target(matching, Rate::new(t.per_second, t.burst));
            }
            limits
        });
        let mut exclusions = Exclusions::new();
        for (i, e) in file.exclusions.iter().enumerate() {
            exclusions = exclusions.entry(e.compile(&format!("exclusions[{i}]"))?);
        }
        let identities = match &file.identities {
            Some(ids) => Some(ids.compile()?),
            None => None,
        };
        Ok(Guardrails {
            identities: identities.filter(|i| !i.is_empty()),
            exclusions: (!exclusions.is_empty()).then_some(exclusions),
            shadow,
            rate,
            blast: match &file.blast_radius {
                Some(b) => Some(b.stage(Arc::clone(&store))?),
                None => None,
            },
            circuits: any_circuit.then_some(circuits),
        })
    }

    /// Loop prevention: events caused by these identities are skipped
    /// (replacing any given before; add discovered ARNs with
    /// [`OwnIdentities::identity`]).
    pub fn with_identities(mut self, identities: OwnIdentities) -> Self {
        self.identities = Some(identities);
        self
    }

    /// The identities configured so far (to add discovered ones to).
    pub fn identities(&self) -> OwnIdentities {
        self.identities.clone().unwrap_or_default()
    }

    /// Exclusions and scope (replacing any given before).
    pub fn with_exclusions(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = Some(exclusions);
        self
    }

    /// Shadow mode (replacing any given before).
    pub fn with_shadow(mut self, shadow: ShadowMode) -> Self {
        self.shadow = shadow;
        self
    }

    /// Rate limits.
    pub fn with_rate_limits(mut self, rate: RateLimits) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Blast-radius limits.
    pub fn with_blast_radius(mut self, blast: super::BlastRadius) -> Self {
        self.blast = Some(blast);
        self
    }

    /// Circuit breakers.
    pub fn with_circuits(mut self, circuits: CircuitBreakers) -> Self {
        self.circuits = Some(circuits);
        self
    }

    /// The stages, in the order they must run (add each to the engine or
    /// pipeline builder with `.stage(...)`).
    pub fn stages(self) -> Vec<Arc<dyn Stage>> {
        let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
        if let Some(identities) = self.identities.filter(|i| !i.is_empty()) {
            stages.push(Arc::new(identities));
        }
        if let Some(exclusions) = self.exclusions.filter(|e| !e.is_empty()) {
            stages.push(Arc::new(exclusions));
        }
        if !self.shadow.is_empty() {
            stages.push(Arc::new(self.shadow));
        }
        if let Some(rate) = self.rate {
            stages.push(Arc::new(rate));
        }
        if let Some(blast) = self.blast {
            stages.push(Arc::new(blast));
        }
        if let Some(circuits) = self.circuits {
            stages.push(Arc::new(circuits));
        }
        stages
    }
}

impl Default for Guardrails {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
