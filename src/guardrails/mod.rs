//! Guardrails: what keeps automatic remediation from running away. Each is
//! a [`Stage`](crate::pipeline::Stage) on the pipeline's seam that defers,
//! refuses or shadows a plan, never a branch in the engine:
//!
//! | stage | what it does | reason code |
//! |---|---|---|
//! | [`OwnIdentities`] | skips events the worker's own identities caused | `own_change` |
//! | [`Exclusions`] | skips what an entry excludes or no include admits; defers what it cannot decide | `excluded`, `exclusion_unresolved` |
//! | [`ShadowMode`] | plans and checks a rule's remediations, runs none | `shadow` |
//! | [`RateLimits`] | a token bucket per account-region (subscription, project) | `rate_limited` |
//! | [`CircuitBreakers`] | too many runs or failures of a rule or target → held until closed | `circuit_open` |
//! | [`BlastRadius`] | too many resources changed by a rule in a window (deferred), or named by one plan (refused) | `blast_radius` |
//!
//! [`AuditReport`] reads an audit file back and summarises it per rule
//! (`remediate report --audit FILE`): what a rule in shadow mode would have done.
//!
//! Limits that several workers must obey together live in a shared
//! [`GuardrailStore`]: [`MemoryGuardrails`] in one process, or DynamoDB
//! (`DynamoDbGuardrails`, feature `dynamodb`).
//! A store that cannot answer defers the plan (`guardrail_unavailable`):
//! a guardrail fails closed.
//!
//! [`Guardrails`] builds the stages, in the order they must run, from code
//! or from one file (`--guardrails FILE`, see [`GuardrailsFile`]).

mod blast;
mod blast_file;
mod circuit;
mod config;
#[cfg(feature = "dynamodb")]
mod dynamodb;
mod exclude;
mod glob;
mod identity;
mod rate;
mod report;
mod shadow;
mod store;

pub use crate::pipeline::{rule_matches, rule_of};
pub use blast::{BlastLimits, BlastRadius, argv_resources, plan_resources};
pub use blast_file::{BlastLimitsFile, BlastRadiusFile, PerPlanFile, RuleBlastFile};
pub use circuit::{CircuitBreakers, Trip, close as close_circuit, list as list_circuits};
pub use config::{DynamoStoreFile, Guardrails, GuardrailsFile, Mode, StoreFile};
#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoDbGuardrails, DynamoDbGuardrailsBuilder, DynamoDbGuardrailsConfigKey};
pub use exclude::{
    Exclusion, ExclusionFile, Exclusions, OneOrMany, Selector, SelectorFile, TagLookup,
    parse_expiry,
};
pub use glob::Glob;
pub use identity::{
    DiscoveryEnv, IdentitiesFile, OwnIdentities, discover as discover_identities,
    parse_caller_identity,
};
pub use rate::{Rate, RateLimits, TargetMatch};
pub use report::{AuditReport, PlanCount, Reach, RefusalCount, RuleReport};
pub use shadow::ShadowMode;
pub use store::{Circuit, GuardrailStore, MemoryGuardrails, Window};

use crate::model::Target;
use crate::pipeline::StageDecision;
use std::time::Duration;

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
