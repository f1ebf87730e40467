//! Execution: running a [`Step`] in a target's context.
//!
//! Commands are argv vectors, never shell strings ([`Command`](crate::plan::Command)); scripts from an
//! API or an alert go through [`parse_script`](crate::plan::parse_script) and a [`CommandPolicy`](crate::plan::CommandPolicy) first.
//! A [`ContextMap`] says which AWS profile and region each account's steps run
//! with; [`ProcessExecutor`] runs them as child processes and
//! [`DryRunExecutor`] records what would run.

mod context;
mod dry_run;
mod files;
mod process;
mod sandbox;
pub use sandbox::CHILD_ENV;

use crate::error::Result;
use crate::model::Target;
use crate::plan::Step;
use std::future::Future;
use std::pin::Pin;

pub use crate::plan::execution::{CommandExecutor, Env, StepOutcome, StepStatus};
pub use context::{
    AWS_DEFAULT_REGION, AWS_PROFILE, AWS_REGION, AZURE_CONFIG_DIR, AwsProfileMapping, AzureContext,
    AzureSubscriptionMapping, CLOUDSDK_CONFIG, CLOUDSDK_CORE_PROJECT, ContextMap, ExecContext,
    GcpContext, GcpProjectMapping,
};
pub use dry_run::{DEFAULT_RECORD_LIMIT, DryRunExecutor, RecordedStep};
pub use process::{
    AwsSourceCredentials, DEFAULT_OUTPUT_LIMIT, DEFAULT_QUERY_OUTPUT_LIMIT, DEFAULT_TIMEOUT,
    ProcessExecutor, SCRUBBED_ENV,
};

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
/// [`Expectation`]: crate::plan::Expectation
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
    expect: &crate::plan::Expectation,
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
