//! `glue-dev-endpoint-guard`: a Glue dev endpoint created without a security
//! configuration, security groups, public keys or a subnet is deleted once it
//! is READY (it cannot be deleted while it is still provisioning).

use super::runbook::{Remediation, RuleContext};
use crate::error::Result;
use crate::model::Resource;
use crate::plan::Command;
use crate::plan::EventPattern;
use crate::plan::{Decision, Expectation, Plan, Skip, SkipReason, Step};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The name of the built-in remediation in rule files.
pub const GLUE_DEV_ENDPOINT_GUARD: &str = "glue-dev-endpoint-guard";

/// Parameters of [`GlueDevEndpointGuard`] (kebab-case in rule files).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct GlueGuardParameters {
    /// Seconds between status checks while waiting for READY (default 15).
    pub poll_interval_secs: u64,
    /// How long to wait for READY before failing the plan (default 900; the
    /// delivery is retried later). The engine extends the lease meanwhile.
    pub ready_timeout_secs: u64,
}

impl Default for GlueGuardParameters {
    fn default() -> Self {
        GlueGuardParameters {
            poll_interval_secs: 15,
            ready_timeout_secs: 900,
        }
    }
}

/// Deletes insecure Glue dev endpoints. For a successful `CreateDevEndpoint`
/// call, `requestParameters` must name a `securityConfiguration`, non-empty
/// `securityGroupIds`, non-empty `publicKeys` (or a `publicKey`) and a
/// `subnetId`; otherwise, unless the endpoint no longer exists, the plan waits
/// (read-only, polled) until its status is `READY` (or `FAILED`) and deletes it.
#[derive(Clone, Debug, Default)]
pub struct GlueDevEndpointGuard {
    params: GlueGuardParameters,
}

impl GlueDevEndpointGuard {
    /// The guard with `params`.
    pub fn new(params: GlueGuardParameters) -> Self {
        GlueDevEndpointGuard { params }
    }
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => a.iter().any(|x| non_empty(Some(x))),
        _ => false,
    }
}

/// The insecure settings of a `CreateDevEndpoint` request, by parameter name.
pub(crate) fn missing_controls(request: &Value) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !non_empty(request.get("securityConfiguration")) {
        missing.push("securityConfiguration");
    }
    if !non_empty(request.get("securityGroupIds")) {
        missing.push("securityGroupIds");
    }
    if !non_empty(request.get("publicKeys")) && !non_empty(request.get("publicKey")) {
        missing.push("publicKeys");
    }
    if !non_empty(request.get("subnetId")) {
        missing.push("subnetId");
    }
    missing
}

#[async_trait]
impl Remediation for GlueDevEndpointGuard {
    fn name(&self) -> &str {
        GLUE_DEV_ENDPOINT_GUARD
    }

    async fn plan(&self, cx: &RuleContext<'_>) -> Result<Decision> {
        let skip = |reason, detail: String| Ok(Decision::Skip(Skip::new(reason, detail)));
        if cx.text("/eventName") != Some("CreateDevEndpoint") {
            return skip(SkipReason::Ignored, "not a CreateDevEndpoint call".into());
        }
        if let Some(code) = cx.text("/errorCode") {
            return skip(SkipReason::Ignored, format!("the call failed ({code})"));
        }
        let request = cx.detail.get("requestParameters").unwrap_or(&Value::Null);
        let Some(name) = request.get("endpointName").and_then(Value::as_str) else {
            return skip(
                SkipReason::NoRemediation,
                "requestParameters carry no endpointName".into(),
            );
        };
        let missing = missing_controls(request);
        if missing.is_empty() {
            return skip(
                SkipReason::NoRemediation,
                format!("dev endpoint {name} is compliant"),
            );
        }
        // Gone already (deleted by hand, or by an earlier delivery of this
        // event whose ack was lost): nothing to wait for or delete.
        let current = cx
            .probe
            .query_unless(
                Command::new(
                    "aws",
                    [
                        "glue",
                        "get-dev-endpoint",
                        "--endpoint-name",
                        name,
                        "--output",
                        "json",
                    ],
                ),
                &["EntityNotFoundException"],
            )
            .await?;
        if current.is_none() {
            return skip(
                SkipReason::NoRemediation,
                format!("dev endpoint {name} no longer exists"),
            );
        }
        let ready =
            EventPattern::compile(&json!({"DevEndpoint": {"Status": ["READY", "FAILED"]}}))?;
        let wait = Expectation::new(ready).polled(
            Duration::from_secs(self.params.poll_interval_secs),
            Duration::from_secs(self.params.ready_timeout_secs),
        );
        let steps = vec![
            Step::read_only(Command::new(
                "aws",
                [
                    "glue",
                    "get-dev-endpoint",
                    "--endpoint-name",
                    name,
                    "--output",
                    "json",
                ],
            ))
            .with_expectation(wait)
            .with_description(format!("wait until dev endpoint {name} is READY")),
            Step::new(Command::new(
                "aws",
                ["glue", "delete-dev-endpoint", "--endpoint-name", name],
            ))
            .with_description(format!("delete dev endpoint {name}")),
        ];
        Ok(Decision::Plan(
            // Bound to the endpoint the event created.
            Plan::new(
                super::PLANNER_NAME,
                cx.target.clone().with_resource(Resource::named(name)),
                steps,
            )
            .with_description(format!(
                "{}: dev endpoint {name} lacks {}",
                cx.rule,
                missing.join(", ")
            )),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_is_required() {
        let full = json!({"securityConfiguration": "sc", "securityGroupIds": ["sg-1"],
                          "publicKeys": ["ssh-rsa AAA"], "subnetId": "subnet-1"});
        assert!(missing_controls(&full).is_empty());
        for key in [
            "securityConfiguration",
            "securityGroupIds",
            "publicKeys",
            "subnetId",
        ] {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(key);
            assert_eq!(missing_controls(&partial), [key]);
        }
        let empty = json!({"securityConfiguration": "sc", "securityGroupIds": [],
                           "publicKeys": [""], "subnetId": "subnet-1"});
        assert_eq!(missing_controls(&empty), ["securityGroupIds", "publicKeys"]);
    }
}
