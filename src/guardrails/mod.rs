//! Guardrails: what keeps automatic remediation from running away. Each is
//! a [`Stage`](crate::pipeline::Stage) on the pipeline's seam that defers,
//! refuses or shadows a plan, never a branch in the engine:
//!
//! | stage | what it does | reason code |
//! |---|---|---|
//! | [`ShadowMode`] | plans and checks a rule's remediations, runs none | `shadow` |
//! | [`RateLimits`] | a token bucket per account-region (subscription, project) | `rate_limited` |
//! | [`CircuitBreakers`] | too many runs or failures of a rule or target → held until closed | `circuit_open` |
//!
//! Limits that several workers must obey together live in a shared
//! [`GuardrailStore`]: [`MemoryGuardrails`] in one process, or DynamoDB.
//! A store that cannot answer defers the plan (`guardrail_unavailable`):
//! a guardrail fails closed.
//!
//! [`Guardrails`] builds the stages, in the order they must run, from code
//! or from one file (`--guardrails FILE`, see [`GuardrailsFile`]).

mod circuit;
mod config;
mod rate;
mod shadow;
mod store;

pub use circuit::{CircuitBreakers, Trip, close as close_circuit, list as list_circuits};
pub use config::{Guardrails, GuardrailsFile};
pub use rate::{Rate, RateLimits, TargetMatch};
pub use shadow::ShadowMode;
pub use store::{Circuit, GuardrailStore, MemoryGuardrails, Window};

use crate::model::{Event, Target};
use crate::pipeline::StageDecision;
use crate::plan::Plan;
use std::time::Duration;

/// The rule a plan counts against: the rule that made it (CloudTrail), else
/// the Prisma policy's id (or name), else the planner.
pub fn rule_of(event: &Event, plan: &Plan) -> String {
    if let Some(rule) = &plan.rule {
        return rule.clone();
    }
    if let Event::PrismaAlert(alert) = event {
        if let Some(id) = alert.policy_id().or(alert.policy_name()) {
            return id.to_owned();
        }
    }
    plan.planner.clone()
}

/// Whether the configured rule `name` names `plan`'s rule: its rule name, its
/// Prisma policy's id or name, or its planner, exactly.
pub fn rule_matches(name: &str, event: &Event, plan: &Plan) -> bool {
    if plan.rule.as_deref() == Some(name) || plan.planner == name {
        return true;
    }
    match event {
        Event::PrismaAlert(alert) => {
            alert.policy_id() == Some(name) || alert.policy_name() == Some(name)
        }
        _ => false,
    }
}

/// A target's bucket: `CLOUD:ACCOUNT:REGION` (`-` for an unknown account,
/// `global` for no region).
pub fn target_key(target: &Target) -> String {
    format!(
        "{}:{}:{}",
        target.cloud.as_str(),
        target.account_id.as_deref().unwrap_or("-"),
        target.region.as_deref().unwrap_or("global")
    )
}

/// A guardrail whose store failed: the plan waits (fails closed).
fn unavailable(what: &str, error: &crate::Error) -> StageDecision {
    tracing::warn!(guardrail = what, error = %error, "guardrail store failed; deferring");
    StageDecision::defer(
        Duration::from_secs(30),
        "guardrail_unavailable",
        format!("{what} could not be read ({error}); the plan waits rather than run unchecked"),
    )
}
