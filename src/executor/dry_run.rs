//! The dry-run executor: checks and resolves every step exactly as the
//! process executor would, records what would run, and runs nothing that
//! changes anything: [read-only](crate::plan::Step::read_only) queries are
//! executed for real, so plans that depend on them come out as they would.

use super::{CommandExecutor, ContextMap, ExecContext, ProcessExecutor, StepOutcome, StepStatus};
use crate::error::Result;
use crate::model::Target;
use crate::plan::Step;
use crate::plan::{Command, CommandPolicy, StepFile};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Default number of recorded steps kept: none. The engine's audit trail is
/// the record of a dry run; keeping steps in memory too is opt-in
/// ([`DryRunExecutor::with_record_limit`]) for tests and embedding.
pub const DEFAULT_RECORD_LIMIT: usize = 0;

/// One step the dry-run executor was asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedStep {
    /// The argv that would have run.
    pub command: Command,
    /// The step's description, if any.
    pub description: Option<String>,
    /// Where it would have run.
    pub target: Target,
    /// The environment it would have run with (profile, region).
    pub context: super::Env,
    /// Whether it was a read-only query, which the dry run executed for real.
    pub read_only: bool,
    /// The files that would have been attached.
    pub files: Vec<StepFile>,
}

/// Records what would run, runs nothing that changes anything.
///
/// [`check`](CommandExecutor::check) is the process executor's check (same
/// policy, same context resolution), so a dry run refuses exactly what a real
/// run would. Read-only steps (queries) are handed to a query executor — by
/// default a [`ProcessExecutor`] with the same policy and contexts, replaced
/// with [`with_query_executor`](Self::with_query_executor) — and their real
/// outcome is returned; every other step is only recorded, as
/// [`StepStatus::Planned`]. Keeping the steps in memory is opt-in and bounded
/// ([`with_record_limit`](Self::with_record_limit)).
#[derive(Debug)]
pub struct DryRunExecutor {
    policy: CommandPolicy,
    contexts: ContextMap,
    queries: Arc<dyn CommandExecutor>,
    limit: usize,
    recorded: Mutex<VecDeque<RecordedStep>>,
}

impl Default for DryRunExecutor {
    fn default() -> Self {
        Self::new(CommandPolicy::default(), ContextMap::default())
    }
}

impl DryRunExecutor {
    /// A dry-run executor checking `policy` and resolving `contexts` exactly as the process executor would.
    pub fn new(policy: CommandPolicy, contexts: ContextMap) -> Self {
        DryRunExecutor {
            queries: Arc::new(ProcessExecutor::new(policy.clone(), contexts.clone())),
            policy,
            contexts,
            limit: DEFAULT_RECORD_LIMIT,
            recorded: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps at most `limit` recorded steps (default 0: none), dropping the oldest.
    pub fn with_record_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Runs read-only steps with `executor` (default: a [`ProcessExecutor`]
    /// with this executor's policy and contexts). Give it the environment a
    /// real run would have (`PATH`, `AWS_CONFIG_FILE`...).
    pub fn with_query_executor(mut self, executor: Arc<dyn CommandExecutor>) -> Self {
        self.queries = executor;
        self
    }

    /// The steps recorded so far, oldest first.
    pub fn recorded(&self) -> Vec<RecordedStep> {
        self.lock().iter().cloned().collect()
    }

    /// Returns the recorded steps and forgets them.
    pub fn take_recorded(&self) -> Vec<RecordedStep> {
        self.lock().drain(..).collect()
    }

    /// Forgets the recorded steps.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<RecordedStep>> {
        // A panic while holding the lock cannot leave the queue inconsistent.
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl CommandExecutor for DryRunExecutor {
    fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.policy.check_for(step, target)?;
        crate::plan::file::check(&step.command, &step.files)?;
        self.contexts.check(step, target)
    }

    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        self.policy.check_for(step, target)?;
        crate::plan::file::check(&step.command, &step.files)?;
        let ExecContext {
            env: context,
            extra_args,
        } = self.contexts.resolve(step, target)?;
        // Only a step marked read-only needs its class (a catalog lookup).
        let query = || {
            self.policy.operation_class(&step.command)
                == Some(crate::plan::OperationClass::ReadOnly)
        };
        if step.read_only && !query() {
            return Err(crate::Error::refused(
                crate::Refusal::OperationNotAllowed,
                format!(
                    "a read-only step must be a read-only operation of the catalog, not `{}`",
                    step.command
                ),
            ));
        }
        // The record (opt-in) shares the context; a planned step's outcome
        // takes it over.
        let recorded = (self.limit > 0).then(|| Arc::clone(&context));
        let outcome = if step.read_only {
            tracing::info!(command = %crate::redact::redact(&step.command.to_string()), "dry run: running read-only query");
            self.queries.execute(step, target).await?
        } else {
            tracing::info!(command = %crate::redact::redact(&step.command.to_string()), "dry run: would run");
            let probes = match self.policy.deny_probe(step) {
                Some(probe) => {
                    match super::probe::run_probe(&*self.queries, &probe, step, target).await? {
                        Ok(runs) => runs,
                        Err(failed) => return Ok(failed),
                    }
                }
                None => Vec::new(),
            };
            StepOutcome {
                status: StepStatus::Planned,
                exit_code: None,
                duration: Duration::ZERO,
                context,
                extra_args,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                probes,
            }
        };
        if let Some(context) = recorded {
            let mut recorded = self.lock();
            while recorded.len() >= self.limit {
                recorded.pop_front();
            }
            recorded.push_back(RecordedStep {
                command: step.command.clone(),
                description: step.description.clone(),
                target: target.clone(),
                context,
                read_only: step.read_only,
                files: step.files.clone(),
            });
        }
        Ok(outcome)
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cloud;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts what reaches the query executor.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl CommandExecutor for Counting {
        fn check(&self, _: &Step, _: &Target) -> Result<()> {
            Ok(())
        }
        async fn execute(&self, _: &Step, _: &Target) -> Result<StepOutcome> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(StepOutcome::new(StepStatus::Ok))
        }
    }

    #[tokio::test]
    async fn only_queries_marked_read_only_run_for_real() {
        let queries = Arc::new(Counting::default());
        let dry = DryRunExecutor::new(
            CommandPolicy::default(),
            ContextMap::new().with_default_aws_profile("p"),
        )
        .with_query_executor(queries.clone());
        let target = Target::new(Cloud::Aws, Some("123456789012".to_owned()))
            .with_resource(crate::model::Resource::named("u"));
        let query = Step::read_only(Command::new("aws", ["iam", "get-user", "--user-name", "u"]));
        let detach = [
            "iam",
            "detach-user-policy",
            "--user-name",
            "u",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ];
        assert_eq!(
            dry.execute(&query, &target).await.unwrap().status,
            StepStatus::Ok
        );
        let mislabelled = Step::read_only(Command::new("aws", detach));
        let err = dry.execute(&mislabelled, &target).await.unwrap_err();
        assert!(
            err.to_string().contains("must be a read-only operation"),
            "{err}"
        );
        let change = Step::new(Command::new("aws", detach));
        assert_eq!(
            dry.execute(&change, &target).await.unwrap().status,
            StepStatus::Planned
        );
        assert_eq!(queries.0.load(Ordering::SeqCst), 1, "only the query ran");
    }
}
