//! `quarantine-iam-user`: an IAM user who made a matched call (typically an
//! IAM change) without being an admin gets a deny policy attached.

use super::runbook::{Remediation, RuleContext};
use crate::error::{Error, Result};
use crate::model::Resource;
use crate::plan::Command;
use crate::plan::EventPattern;
use crate::plan::{Decision, Expectation, Plan, Skip, SkipReason, Step};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

/// The name of the built-in remediation in rule files.
pub const QUARANTINE_IAM_USER: &str = "quarantine-iam-user";

/// Parameters of [`QuarantineIamUser`] (kebab-case in rule files).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
#[non_exhaustive]
pub struct QuarantineParameters {
    /// Members of this IAM group are admins and never quarantined.
    pub admin_group: Option<String>,
    /// The managed deny policy to attach. When unset, the policy named
    /// [`deny_policy_name`](Self::deny_policy_name) in the event's account is
    /// used, created from [`deny_policy_document`](Self::deny_policy_document)
    /// if it does not exist yet.
    pub deny_policy_arn: Option<String>,
    /// The name of the created deny policy (default `RemediationQuarantineDeny`).
    pub deny_policy_name: String,
    /// The deny policy document (default: deny every action on every resource).
    pub deny_policy_document: Value,
    /// The name of the inline deny policy put on users who already have
    /// [`managed_policy_limit`](Self::managed_policy_limit) managed policies
    /// (default `RemediationQuarantineDenyInline`).
    pub inline_policy_name: String,
    /// How many managed policies IAM lets a user have (default 10): at this
    /// count the deny is put inline instead.
    pub managed_policy_limit: usize,
}

impl Default for QuarantineParameters {
    fn default() -> Self {
        QuarantineParameters {
            admin_group: None,
            deny_policy_arn: None,
            deny_policy_name: "RemediationQuarantineDeny".into(),
            deny_policy_document: json!({
                "Version": "2012-10-17",
                "Statement": [{"Sid": "RemediationQuarantine", "Effect": "Deny", "Action": "*", "Resource": "*"}]
            }),
            inline_policy_name: "RemediationQuarantineDenyInline".into(),
            managed_policy_limit: 10,
        }
    }
}

impl QuarantineParameters {
    /// Sets the admin group.
    pub fn with_admin_group(mut self, group: impl Into<String>) -> Self {
        self.admin_group = Some(group.into());
        self
    }

    /// Sets the deny policy ARN (no policy is created).
    pub fn with_deny_policy_arn(mut self, arn: impl Into<String>) -> Self {
        self.deny_policy_arn = Some(arn.into());
        self
    }
}

/// Quarantines the IAM user who made the call:
///
/// 1. skips unless `userIdentity.type` is `IAMUser` (roles, root and services
///    are out of scope), and skips members of the admin group;
/// 2. attaches the deny policy (creating it first if it is not configured and
///    does not exist), or puts it inline when the user already has the
///    maximum number of managed policies;
/// 3. verifies the attachment with a read-only query.
///
/// A user who already carries the deny is skipped.
#[derive(Clone, Debug)]
pub struct QuarantineIamUser {
    params: QuarantineParameters,
}

impl QuarantineIamUser {
    /// The remediation with `params`.
    pub fn new(params: QuarantineParameters) -> Self {
        QuarantineIamUser { params }
    }
}

fn aws(args: &[&str]) -> Command {
    Command::new("aws", args.iter().copied())
}

fn ignored(detail: String) -> Result<Decision> {
    Ok(Decision::Skip(Skip::new(SkipReason::Ignored, detail)))
}

fn expectation(pattern: Value) -> Result<Expectation> {
    Ok(Expectation::new(EventPattern::compile(&pattern)?))
}

#[async_trait]
impl Remediation for QuarantineIamUser {
    fn name(&self) -> &str {
        QUARANTINE_IAM_USER
    }

    async fn plan(&self, cx: &RuleContext<'_>) -> Result<Decision> {
        let p = &self.params;
        match cx.text("/userIdentity/type") {
            Some("IAMUser") => {}
            other => {
                return ignored(format!(
                    "userIdentity.type is {}, not IAMUser",
                    other.unwrap_or("absent")
                ));
            }
        }
        let Some(user) = cx.text("/userIdentity/userName") else {
            return ignored("the IAM user's userIdentity carries no userName".into());
        };
        if let Some(group) = &p.admin_group {
            let groups = cx
                .probe
                .query(aws(&[
                    "iam",
                    "list-groups-for-user",
                    "--user-name",
                    user,
                    "--output",
                    "json",
                ]))
                .await?;
            let is_admin = groups["Groups"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g["GroupName"].as_str() == Some(group.as_str()));
            if is_admin {
                return ignored(format!("{user} is a member of the admin group {group}"));
            }
        }
        let attached = cx
            .probe
            .query(aws(&[
                "iam",
                "list-attached-user-policies",
                "--user-name",
                user,
                "--output",
                "json",
            ]))
            .await?;
        let attached: Vec<&str> = attached["AttachedPolicies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["PolicyArn"].as_str())
            .collect();
        let account = cx.target.account_id.as_deref();
        let arn = match (&p.deny_policy_arn, account) {
            (Some(arn), _) => arn.clone(),
            (None, Some(account)) => {
                format!("arn:aws:iam::{account}:policy/{}", p.deny_policy_name)
            }
            (None, None) => {
                return Err(Error::decode(
                    "the event names no account to create the deny policy in",
                ));
            }
        };
        if attached.contains(&arn.as_str()) {
            return ignored(format!("{user} already has {arn} attached"));
        }
        let document = serde_json::to_string(&p.deny_policy_document)
            .map_err(|e| Error::Config(format!("deny-policy-document: {e}")))?;
        let mut steps = Vec::new();
        if attached.len() >= p.managed_policy_limit {
            let inline = p.inline_policy_name.as_str();
            steps.push(
                Step::new(aws(&[
                    "iam",
                    "put-user-policy",
                    "--user-name",
                    user,
                    "--policy-name",
                    inline,
                    "--policy-document",
                    &document,
                ]))
                .with_description(format!(
                    "{user} has {} managed policies: put the deny inline",
                    attached.len()
                )),
            );
            steps.push(
                Step::read_only(aws(&[
                    "iam",
                    "get-user-policy",
                    "--user-name",
                    user,
                    "--policy-name",
                    inline,
                    "--output",
                    "json",
                ]))
                .with_expectation(expectation(json!({"PolicyName": [inline]}))?)
                .with_description("verify the inline deny"),
            );
        } else {
            if p.deny_policy_arn.is_none() {
                let existing = cx
                    .probe
                    .query_unless(
                        aws(&[
                            "iam",
                            "get-policy",
                            "--policy-arn",
                            &arn,
                            "--output",
                            "json",
                        ]),
                        &["NoSuchEntity"],
                    )
                    .await?;
                if existing.is_none() {
                    steps.push(
                        Step::new(aws(&[
                            "iam",
                            "create-policy",
                            "--policy-name",
                            &p.deny_policy_name,
                            "--policy-document",
                            &document,
                        ]))
                        .with_description("create the quarantine deny policy"),
                    );
                }
            }
            steps.push(
                Step::new(aws(&[
                    "iam",
                    "attach-user-policy",
                    "--user-name",
                    user,
                    "--policy-arn",
                    &arn,
                ]))
                .with_description(format!("attach the deny policy to {user}")),
            );
            steps.push(
                Step::read_only(aws(&[
                    "iam",
                    "list-attached-user-policies",
                    "--user-name",
                    user,
                    "--output",
                    "json",
                ]))
                .with_expectation(expectation(
                    json!({"AttachedPolicies": {"PolicyArn": [arn]}}),
                )?)
                .with_description("verify the attachment"),
            );
        }
        Ok(Decision::Plan(
            // Bound to the user the event acted on: every change names it.
            Plan::new(
                super::PLANNER_NAME,
                cx.target.clone().with_resource(Resource::named(user)),
                steps,
            )
            .with_description(format!("{}: quarantine IAM user {user}", cx.rule)),
        ))
    }
}
