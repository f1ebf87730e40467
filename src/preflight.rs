//! Preflight: whether a worker's setup works, checked before it runs — the
//! CLIs it runs (found, runnable in the sealed child, their versions), each
//! mapped AWS account (its context's `sts get-caller-identity`, run as a
//! remediation runs, names that account), the source and the shared tables
//! (there, with the right key). Each check is a [`Check`] with a status and
//! what was found; a [`Report`] prints as a table for a person or JSON for a
//! pipeline, and says whether everything passed. `remediate check` runs
//! them for the worker's flags.
//!
//! A check never changes anything: the CLIs run `--version`, the accounts a
//! read-only query, the tables are described.

use crate::executor::{CommandExecutor, ProcessExecutor, StepStatus};
use crate::model::{Cloud, Target};
use crate::plan::{Command, Step};
use serde::Serialize;
use std::fmt;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// It works.
    Ok,
    /// It works, with something to know (an old CLI).
    Warning,
    /// It does not work: the worker would fail on it.
    Failed,
}

impl CheckStatus {
    fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warning",
            CheckStatus::Failed => "FAILED",
        }
    }
}

/// One check: what was checked, how it came out, what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`cli aws`, `aws account 123456789012`).
    pub name: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found, or why it failed.
    pub detail: String,
}

impl Check {
    /// A check that passed.
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Ok, detail)
    }

    /// A check that passed with a warning.
    pub fn warning(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Warning, detail)
    }

    /// A check that failed.
    pub fn failed(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Failed, detail)
    }

    fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }

    /// `Ok` as a passed check, an error as a failed one.
    pub fn from_result(name: impl Into<String>, result: crate::Result<String>) -> Self {
        match result {
            Ok(detail) => Self::ok(name, detail),
            Err(e) => Self::failed(name, e.to_string()),
        }
    }
}

/// The checks of one preflight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Whether no check failed (warnings pass).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Failed)
    }
}

impl fmt::Display for Report {
    /// One line per check: status, name, detail; then a verdict line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            writeln!(
                f,
                "{:<7}  {:<width$}  {}",
                c.status.as_str(),
                c.name,
                c.detail.replace('\n', " ")
            )?;
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == CheckStatus::Failed)
            .count();
        match failed {
            0 => write!(f, "all {} checks passed", self.checks.len()),
            n => write!(f, "{n} of {} checks failed", self.checks.len()),
        }
    }
}

/// `program` on the executor's `PATH`, runnable in the sealed child: its
/// version. The aws CLI v1 passes with a warning: it ignores
/// `AWS_ENDPOINT_URL` for some services and is in maintenance; v2 is
/// recommended.
pub async fn cli(executor: &ProcessExecutor, program: &str) -> Check {
    let name = format!("cli {program}");
    if let Err(e) = executor.require_programs([program]) {
        return Check::failed(name, e.to_string());
    }
    match executor.program_version(program).await {
        Ok(version) if program == "aws" && version.starts_with("aws-cli/1.") => Check::warning(
            name,
            format!(
                "{version}: aws CLI v1 ignores AWS_ENDPOINT_URL for some services and is in \
                 maintenance; v2 is recommended"
            ),
        ),
        Ok(version) => Check::ok(name, version),
        Err(e) => Check::failed(name, e.to_string()),
    }
}

/// AWS account `account` through `executor`, as a remediation for it runs:
/// `aws sts get-caller-identity` (read-only) with the account's context
/// (its profile or role); passes when the answer names `account`, and says
/// which principal answered.
pub async fn aws_account(executor: &dyn CommandExecutor, account: &str) -> Check {
    let name = format!("aws account {account}");
    let target = Target::new(Cloud::Aws, Some(account.to_owned()));
    let step = Step::read_only(Command::new(
        "aws",
        ["sts", "get-caller-identity", "--output", "json"],
    ));
    if let Err(e) = executor.check(&step, &target) {
        return Check::failed(name, e.to_string());
    }
    let outcome = match executor.execute(&step, &target).await {
        Ok(outcome) => outcome,
        Err(e) => return Check::failed(name, e.to_string()),
    };
    let context = outcome
        .context
        .get("AWS_PROFILE")
        .map(|p| format!(" (profile {p})"))
        .unwrap_or_default();
    if outcome.status != StepStatus::Ok {
        let why = outcome.stderr_tail.lines().last().unwrap_or_default();
        return Check::failed(
            name,
            format!("sts get-caller-identity failed{context}: {why}"),
        );
    }
    #[derive(serde::Deserialize)]
    struct Identity {
        #[serde(rename = "Account")]
        account: String,
        #[serde(rename = "Arn")]
        arn: String,
    }
    match serde_json::from_str::<Identity>(outcome.stdout_tail.trim()) {
        Ok(id) if id.account == account => Check::ok(name, format!("{}{context}", id.arn)),
        Ok(id) => Check::failed(
            name,
            format!(
                "its context{context} is account {}, not {account} ({})",
                id.account, id.arn
            ),
        ),
        Err(e) => Check::failed(
            name,
            format!("sts get-caller-identity answered no identity{context}: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_passes_unless_a_check_failed() {
        let mut report = Report::new();
        report.push(Check::ok("cli aws", "aws-cli/2.17.0"));
        report.push(Check::warning("cli gcloud", "old"));
        assert!(report.passed());
        assert!(report.to_string().ends_with("all 2 checks passed"));
        report.push(Check::failed("aws account 1", "no\nway"));
        assert!(!report.passed());
        let text = report.to_string();
        assert!(text.contains("FAILED   aws account 1  no way"), "{text}");
        assert!(text.ends_with("1 of 3 checks failed"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][2]["status"], "failed");
    }
}
