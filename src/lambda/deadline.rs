//! The invocation's deadline as an executor stage: every step an invocation
//! runs is cut to the time the invocation has left (its deadline less
//! [`REPORT_RESERVE`], kept to settle, audit and answer), and a step that
//! would have less than [`MIN_STEP_TIME`] is not started. (No step starts at
//! all past the deadline margin: the adapter cancels the pipeline then.)
//!
//! Lambda freezes or kills a function at its deadline, whatever runs; cutting
//! the step a little before lets the adapter report the record as failed (so
//! SQS or EventBridge retries it) and write its audit line, instead of the
//! invocation timing out with nothing said. A step's own timeout (the
//! executor's) still applies when it is shorter.

use crate::error::Result;
use crate::executor::{CommandExecutor, StepOutcome, StepStatus};
use crate::model::Target;
use crate::plan::Step;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A step is not started with less time than this left: it could not do
/// anything useful, and would only be cut.
pub const MIN_STEP_TIME: Duration = Duration::from_secs(1);

/// What a running step leaves of the invocation: the time to settle its
/// record, write the audit line and answer Lambda.
pub const REPORT_RESERVE: Duration = Duration::from_millis(500);

tokio::task_local! {
    /// When the running invocation's steps must be done by (set by the
    /// handler around the pipeline's work for one invocation).
    pub(super) static STOP: Instant;
}

/// Runs the inner executor's steps no later than the invocation's [`STOP`]
/// (unbounded outside an invocation).
#[derive(Debug)]
pub(super) struct DeadlineExecutor {
    pub(super) inner: Arc<dyn CommandExecutor>,
}

impl DeadlineExecutor {
    fn failed(reason: String) -> StepOutcome {
        let mut outcome = StepOutcome::new(StepStatus::Failed);
        outcome.stderr_tail = format!("[remediation: {reason}]");
        outcome
    }
}

#[async_trait]
impl CommandExecutor for DeadlineExecutor {
    fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.inner.check(step, target)
    }

    fn is_dry_run(&self) -> bool {
        self.inner.is_dry_run()
    }

    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        let Ok(stop) = STOP.try_with(|stop| *stop) else {
            return self.inner.execute(step, target).await;
        };
        let left = stop.saturating_duration_since(Instant::now());
        if left < MIN_STEP_TIME {
            return Ok(Self::failed(format!(
                "not started: {} ms left before the invocation's deadline",
                left.as_millis()
            )));
        }
        // Dropping the inner future kills the command (`kill_on_drop`).
        match tokio::time::timeout(left, self.inner.execute(step, target)).await {
            Ok(outcome) => outcome,
            Err(_) => Ok(Self::failed(format!(
                "cut after {} s: the invocation's deadline was reached",
                left.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cloud;
    use crate::plan::Command;

    #[test]
    fn a_dry_run_stays_a_dry_run() {
        use crate::executor::{ContextMap, DryRunExecutor};
        use crate::plan::CommandPolicy;
        let dry = DryRunExecutor::new(CommandPolicy::default(), ContextMap::new());
        let executor = DeadlineExecutor {
            inner: Arc::new(dry),
        };
        assert!(executor.is_dry_run());
    }

    /// Takes `took` to answer Ok.
    #[derive(Debug)]
    struct Slow(Duration);

    #[async_trait]
    impl CommandExecutor for Slow {
        fn check(&self, _: &Step, _: &Target) -> Result<()> {
            Ok(())
        }
        async fn execute(&self, _: &Step, _: &Target) -> Result<StepOutcome> {
            tokio::time::sleep(self.0).await;
            Ok(StepOutcome::new(StepStatus::Ok))
        }
    }

    fn run(took: Duration, left: Duration) -> StepOutcome {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let executor = DeadlineExecutor {
                inner: Arc::new(Slow(took)),
            };
            let step = Step::new(Command::new("aws", ["iam", "get-user"]));
            let target = Target::new(Cloud::Aws, Some("123456789012".into()));
            STOP.scope(Instant::now() + left, executor.execute(&step, &target))
                .await
                .unwrap()
        })
    }

    #[test]
    fn steps_are_cut_to_the_time_left_and_not_started_without_it() {
        assert_eq!(
            run(Duration::from_secs(2), Duration::from_secs(30)).status,
            StepStatus::Ok
        );
        let cut = run(Duration::from_secs(120), Duration::from_secs(30));
        assert_eq!(cut.status, StepStatus::Failed);
        assert!(
            cut.stderr_tail.contains("deadline was reached"),
            "{}",
            cut.stderr_tail
        );
        let late = run(Duration::from_millis(10), Duration::from_millis(500));
        assert_eq!(late.status, StepStatus::Failed);
        assert!(
            late.stderr_tail.contains("not started"),
            "{}",
            late.stderr_tail
        );
    }
}
