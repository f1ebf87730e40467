//! Execution: running a [`Step`] in a target's context.
//!
//! Commands are argv vectors, never shell strings ([`Command`]); scripts from an
//! API or an alert go through [`parse_script`] and a [`CommandPolicy`] first.
//! A [`ContextMap`] says which AWS profile and region each account's steps run
//! with; [`ProcessExecutor`] runs them as child processes and
//! [`DryRunExecutor`] records what would run.

pub mod command;
pub mod context;
pub mod dry_run;
pub mod files;
pub mod policy;
pub mod process;
mod sandbox;
pub use sandbox::CHILD_ENV;

use crate::error::Result;
use crate::model::Target;
use crate::planner::Step;
use async_trait::async_trait;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use command::{Command, parse_script, parse_script_steps};
pub use context::{
    AwsProfileMapping, AzureContext, AzureSubscriptionMapping, ContextMap, Env, ExecContext,
    GcpContext, GcpProjectMapping,
};
pub use dry_run::{DryRunExecutor, RecordedStep};
pub use files::StepFile;
pub use policy::{CommandPolicy, DEFAULT_MAX_COMMANDS, OperationClass, PolicyFile, is_query};
pub use process::{AwsSourceCredentials, ProcessExecutor};

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepStatus {
    /// The command ran and exited 0.
    Ok,
    /// The command ran and failed (non-zero exit, killed, timed out).
    Failed,
    /// The command was not run because an earlier step failed or the worker stopped.
    NotRun,
    /// Dry run: the command would have run.
    Planned,
}

/// What happened when a step was executed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepOutcome {
    /// How it ended.
    pub status: StepStatus,
    /// The exit code, if the process exited normally.
    pub exit_code: Option<i32>,
    /// Wall time.
    pub duration: Duration,
    /// The environment the executor set for the step (profile, region,
    /// project...), secrets excluded.
    pub context: context::Env,
    /// Options the executor added to the command for its target
    /// (`--subscription <id>`, `--project <id>`).
    pub extra_args: Vec<String>,
    /// The tail of standard output.
    pub stdout_tail: String,
    /// The tail of standard error, with secrets redacted.
    pub stderr_tail: String,
}

impl StepOutcome {
    /// An outcome with `status` and nothing else recorded.
    pub fn new(status: StepStatus) -> Self {
        StepOutcome {
            status,
            exit_code: None,
            duration: Duration::ZERO,
            context: Default::default(),
            extra_args: Vec::new(),
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        }
    }
}

/// Runs steps.
///
/// Before any step of a plan runs, the engine calls [`check`](Self::check) on
/// every step, so a plan is refused whole (unmapped account, disallowed
/// program) rather than half-run.
#[async_trait]
pub trait CommandExecutor: Send + Sync + fmt::Debug {
    /// Checks that `step` may run for `target` (allowlist, mapped account), without running it.
    fn check(&self, step: &Step, target: &Target) -> Result<()>;

    /// Runs `step` for `target`. A command that ran and failed is `Ok` with
    /// [`StepStatus::Failed`]; `Err` means it could not be run at all.
    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome>;

    /// Whether this executor only records what would run.
    fn is_dry_run(&self) -> bool {
        false
    }
}

/// Forwards the trait through smart pointers.
macro_rules! forward_executor {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<T: CommandExecutor + ?Sized> CommandExecutor for $ptr<T> {
            fn check(&self, step: &Step, target: &Target) -> Result<()> {
                (**self).check(step, target)
            }
            async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
                (**self).execute(step, target).await
            }
            fn is_dry_run(&self) -> bool {
                (**self).is_dry_run()
            }
        }
    )*};
}

forward_executor!(Arc, Box);

/// Runs `step` through `executor`, then checks its [`Expectation`] if it has
/// one: the step's standard output must be JSON matching the expectation's
/// pattern, or the outcome becomes [`StepStatus::Failed`] with the reason at the
/// end of its stderr tail. A polled expectation repeats the query until it
/// holds or its timeout passes.
///
/// This is how the engine runs every step. An outcome other than
/// [`StepStatus::Ok`] (a failed command, or a dry run's
/// [`Planned`](StepStatus::Planned)) is returned as it is, unchecked.
///
/// A step without an expectation is the executor's own future, unwrapped:
/// the common case costs no allocation and no extra state.
///
/// [`Expectation`]: crate::planner::Expectation
pub fn run_step<'a>(
    executor: &'a dyn CommandExecutor,
    step: &'a Step,
    target: &'a Target,
) -> Pin<Box<dyn Future<Output = Result<StepOutcome>> + Send + 'a>> {
    match &step.expect {
        None => executor.execute(step, target),
        Some(expect) => Box::pin(run_checked(executor, step, target, expect)),
    }
}

/// [`run_step`] for a step with an expectation.
async fn run_checked(
    executor: &dyn CommandExecutor,
    step: &Step,
    target: &Target,
    expect: &crate::planner::Expectation,
) -> Result<StepOutcome> {
    if !step.read_only {
        return Err(crate::Error::refused(
            crate::Refusal::OperationNotAllowed,
            format!(
                "`{}` carries an expectation but is not read-only",
                step.command
            ),
        ));
    }
    let started = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        let mut outcome = executor.execute(step, target).await?;
        attempts += 1;
        if outcome.status != StepStatus::Ok {
            return Ok(outcome);
        }
        let verdict = match serde_json::from_str::<serde_json::Value>(&outcome.stdout_tail) {
            Ok(json) if expect.pattern.matches(&json) => return Ok(outcome),
            Ok(_) => format!("output does not match {}", expect.pattern),
            Err(e) => format!("output is not JSON ({e})"),
        };
        if let Some(poll) = expect.poll {
            if started.elapsed() + poll.interval <= poll.timeout {
                tracing::debug!(attempts, %verdict, "expectation not met yet; polling");
                tokio::time::sleep(poll.interval).await;
                continue;
            }
        }
        outcome.status = StepStatus::Failed;
        if !outcome.stderr_tail.is_empty() && !outcome.stderr_tail.ends_with('\n') {
            outcome.stderr_tail.push('\n');
        }
        outcome.stderr_tail.push_str(&format!(
            "[remediation: expectation not met after {attempts} attempt(s): {verdict}]"
        ));
        return Ok(outcome);
    }
}
