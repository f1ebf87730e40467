//! The interface of execution: the [`CommandExecutor`] trait and what a step
//! did ([`StepOutcome`]). It lives in the vocabulary so that planners which
//! query the current state (CloudTrail rules' probes) can name it without
//! depending on the executors; its public home is [`crate::executor`].

use super::Step;
use crate::error::Result;
use crate::model::Target;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The environment variables an executor sets for a step (profile, region,
/// project...), secrets excluded; shared, because one context serves many
/// steps.
pub type Env = Arc<BTreeMap<String, String>>;

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
    /// Not run again: an earlier run of the same plan for the same finding
    /// did it and recorded it under its dedup claim.
    AlreadyDone,
}

impl StepStatus {
    /// The status as the audit trail spells it (`ok`, `failed`, `not_run`, `planned`, `already_done`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "failed",
            StepStatus::NotRun => "not_run",
            StepStatus::Planned => "planned",
            StepStatus::AlreadyDone => "already_done",
        }
    }
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
    pub context: Env,
    /// Options the executor added to the command for its target
    /// (`--subscription <id>`, `--project <id>`).
    pub extra_args: Vec<String>,
    /// The tail of standard output.
    pub stdout_tail: String,
    /// The tail of standard error, with secrets redacted.
    pub stderr_tail: String,
    /// The read-only probes run before the step (see
    /// [`CommandPolicy::probe_deny_removal`](crate::plan::CommandPolicy::probe_deny_removal)).
    pub probes: Vec<ProbeRun>,
}

/// One read-only probe query run before a removal, as the audit records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProbeRun {
    /// The query's argv (redacted).
    pub argv: Vec<String>,
    /// Its exit code, if it exited.
    pub exit_code: Option<i32>,
    /// What its answer said: `no_deny`, `next` (another query follows),
    /// `deny: why`, or `failed`.
    pub verdict: String,
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
            probes: Vec::new(),
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
