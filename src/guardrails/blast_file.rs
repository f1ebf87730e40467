//! The guardrails file's `blast_radius:` section and the [`BlastRadius`]
//! stage it builds.
//!
//! ```yaml
//! blast_radius:
//!   every_rule: { max_resources: 100, window: 1h }   # distinct resources per rule
//!   rules:
//!     - { rule: "AWS IAM user with risky permissions", max_resources: 10, window: 1h }
//!   per_plan: { max_steps: 20, max_resources: 5 }    # refused beyond
//! ```

use super::{BlastLimits, BlastRadius, GuardrailStore};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `blast_radius:`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BlastRadiusFile {
    /// Every rule without its own limit.
    #[serde(default)]
    pub every_rule: Option<BlastLimitsFile>,
    /// Rules with their own limit (the first naming a plan's rule wins).
    #[serde(default)]
    pub rules: Vec<RuleBlastFile>,
    /// Limits on one plan.
    #[serde(default)]
    pub per_plan: Option<PerPlanFile>,
}

/// At most `max_resources` distinct resources changed within `window`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlastLimitsFile {
    /// Distinct resources (at least 1).
    pub max_resources: u32,
    /// The sliding window (default 1h).
    #[serde(default, with = "super::config::duration")]
    pub window: Option<Duration>,
}

/// One rule's limit.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleBlastFile {
    /// A rule name, a Prisma policy id or name, or a planner.
    pub rule: String,
    /// Distinct resources (at least 1).
    pub max_resources: u32,
    /// The sliding window (default 1h).
    #[serde(default, with = "super::config::duration")]
    pub window: Option<Duration>,
}

/// Limits on one plan.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PerPlanFile {
    /// Steps.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Distinct resources the plan names.
    #[serde(default)]
    pub max_resources: Option<usize>,
}

const HOUR: Duration = Duration::from_secs(3600);

fn limits(path: &str, max: u32, window: Option<Duration>) -> Result<BlastLimits> {
    if max == 0 {
        return Err(Error::Config(format!(
            "guardrails: {path}.max_resources: must be at least 1"
        )));
    }
    Ok(BlastLimits::new(max, window.unwrap_or(HOUR)))
}

impl BlastRadiusFile {
    /// Checks the values serde cannot.
    pub(super) fn validate(&self) -> Result<()> {
        self.stage(Arc::new(super::MemoryGuardrails::new()))
            .map(drop)
    }

    /// The stage, sharing `store`.
    pub(super) fn stage(&self, store: Arc<dyn GuardrailStore>) -> Result<BlastRadius> {
        let mut stage = BlastRadius::new(store);
        if let Some(e) = &self.every_rule {
            stage = stage.with_every_rule(limits(
                "blast_radius.every_rule",
                e.max_resources,
                e.window,
            )?);
        }
        for (i, r) in self.rules.iter().enumerate() {
            let path = format!("blast_radius.rules[{i}]");
            if r.rule.trim().is_empty() {
                return Err(Error::Config(format!(
                    "guardrails: {path}.rule: must name a rule"
                )));
            }
            stage = stage.with_rule(&r.rule, limits(&path, r.max_resources, r.window)?);
        }
        if let Some(p) = &self.per_plan {
            if p.max_steps == Some(0) || p.max_resources == Some(0) {
                return Err(Error::Config(
                    "guardrails: blast_radius.per_plan: limits must be at least 1".into(),
                ));
            }
            stage = stage.with_plan_limits(p.max_steps, p.max_resources);
        }
        Ok(stage)
    }
}
