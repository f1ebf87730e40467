//! The runbook interface: a [`Remediation`] looks at a matched event, asks
//! read-only questions through a [`Probe`], and answers with a plan of
//! mutating steps (or a skip).

use crate::error::{Error, Result};
use crate::model::{CloudTrailRecord, Target};
use crate::plan::Command;
use crate::plan::execution::{CommandExecutor, StepStatus};
use crate::plan::{Decision, Step};
use async_trait::async_trait;
use serde_json::Value;
use std::fmt;

/// What a remediation is given for one matched event.
#[derive(Debug)]
#[non_exhaustive]
pub struct RuleContext<'a> {
    /// The name of the rule that matched.
    pub rule: &'a str,
    /// The CloudTrail record.
    pub record: &'a CloudTrailRecord,
    /// The record parsed as JSON (the EventBridge `detail`).
    pub detail: &'a Value,
    /// Where the remediation runs (the record's account and region).
    pub target: &'a Target,
    /// Read-only queries, run in the target's context.
    pub probe: Probe<'a>,
}

impl<'a> RuleContext<'a> {
    /// A context for `rule` matching `record` (parsed as `detail`), planning
    /// for `target` with `probe` (to unit-test a [`Remediation`]).
    pub fn new(
        rule: &'a str,
        record: &'a CloudTrailRecord,
        detail: &'a Value,
        target: &'a Target,
        probe: Probe<'a>,
    ) -> Self {
        RuleContext {
            rule,
            record,
            detail,
            target,
            probe,
        }
    }

    /// The string at `pointer` (a JSON pointer such as `/userIdentity/type`) in the record.
    pub fn text(&self, pointer: &str) -> Option<&str> {
        self.detail.pointer(pointer).and_then(Value::as_str)
    }
}

/// A remediation a rule runs: reads the event (and, through the [`Probe`],
/// the current state), then plans.
///
/// Planning happens before any step runs and outside the engine's lease
/// keeping: queries here should be quick. Waiting (for a resource to become
/// ready) belongs in the plan, as a read-only step with a polled
/// [`Expectation`](crate::plan::Expectation), which the engine runs while
/// extending the delivery's lease.
#[async_trait]
pub trait Remediation: Send + Sync + fmt::Debug {
    /// The remediation's name, as written in rule files.
    fn name(&self) -> &str;

    /// Plans the remediation of one matched event.
    async fn plan(&self, cx: &RuleContext<'_>) -> Result<Decision>;
}

/// Runs read-only queries (a `get`/`list` command printing JSON) through the
/// worker's [`CommandExecutor`], in the target's context.
///
/// Each query is a [read-only](Step::read_only) step: it passes the same
/// [`check`](CommandExecutor::check) (allowlist, account mapping) as any step,
/// and a dry run executes it for real — the plan a dry run shows is the one a
/// real run would make. Never a shell: the command is an argv.
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    executor: &'a dyn CommandExecutor,
    target: &'a Target,
}

impl fmt::Debug for Probe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("executor", &self.executor)
            .field("target", &self.target)
            .finish()
    }
}

impl<'a> Probe<'a> {
    /// A probe running queries through `executor` for `target`.
    pub fn new(executor: &'a dyn CommandExecutor, target: &'a Target) -> Self {
        Probe { executor, target }
    }

    /// Runs `command` and parses its standard output as JSON. A command that
    /// fails is a temporary error (the delivery is retried later).
    pub async fn query(&self, command: Command) -> Result<Value> {
        match self.query_unless(command, &[]).await? {
            Some(v) => Ok(v),
            None => Err(Error::decode("query printed nothing")),
        }
    }

    /// Like [`query`](Self::query), but a command that fails with one of
    /// `not_found` in its standard error (`NoSuchEntity`,
    /// `EntityNotFoundException`) is `Ok(None)`: the thing asked about does
    /// not exist.
    pub async fn query_unless(
        &self,
        command: Command,
        not_found: &[&str],
    ) -> Result<Option<Value>> {
        let step = Step::read_only(command);
        self.executor.check(&step, self.target)?;
        let outcome = self.executor.execute(&step, self.target).await?;
        match outcome.status {
            StepStatus::Ok => {}
            StepStatus::Failed if not_found.iter().any(|m| outcome.stderr_tail.contains(m)) => {
                return Ok(None);
            }
            status => {
                let tail = outcome
                    .stderr_tail
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                return Err(Error::Backend {
                    backend: "query",
                    message: format!("`{}` ended {status:?}: {tail}", step.command),
                    temporary: true,
                    source: None,
                });
            }
        }
        if outcome.stdout_tail.trim().is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_str(&outcome.stdout_tail)
            .map(Some)
            .map_err(|e| Error::Backend {
                backend: "query",
                message: format!("`{}` did not print JSON: {e}", step.command),
                temporary: true,
                source: None,
            })
    }
}
