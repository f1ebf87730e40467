//! Runs commands as child processes (no shell). STUB: the executor helper replaces this file.

use super::{CommandExecutor, CommandPolicy, ContextMap, StepOutcome, StepStatus};
use crate::error::{Error, Result};
use crate::model::Target;
use crate::planner::Step;
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// Runs each step as a child process with the target's context.
#[derive(Debug)]
pub struct ProcessExecutor {
    policy: CommandPolicy,
    contexts: ContextMap,
    timeout: Duration,
}

impl ProcessExecutor {
    /// An executor enforcing `policy` and resolving accounts through `contexts`.
    pub fn new(policy: CommandPolicy, contexts: ContextMap) -> Self {
        ProcessExecutor {
            policy,
            contexts,
            timeout: Duration::from_secs(300),
        }
    }
    /// Sets the per-step timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl CommandExecutor for ProcessExecutor {
    fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.policy.check(&step.command)?;
        self.contexts.resolve(step, target).map(|_| ())
    }
    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        self.check(step, target)?;
        let env = self.contexts.resolve(step, target)?;
        let start = Instant::now();
        let out = tokio::process::Command::new(step.command.program())
            .args(step.command.args())
            .envs(&env)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(self.timeout, out)
            .await
            .map_err(|_| Error::Timeout {
                what: "step".into(),
                after: self.timeout,
            })?
            .map_err(|e| Error::io(format!("spawning {}", step.command.program()), e))?;
        let mut o = StepOutcome::new(if out.status.success() {
            StepStatus::Ok
        } else {
            StepStatus::Failed
        });
        o.exit_code = out.status.code();
        o.duration = start.elapsed();
        o.context = env;
        o.stderr_tail = String::from_utf8_lossy(&out.stderr).into_owned();
        Ok(o)
    }
}
