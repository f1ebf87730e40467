//! The dry-run executor: records what would run. STUB: the executor helper replaces this file.

use super::{CommandExecutor, CommandPolicy, ContextMap, StepOutcome, StepStatus};
use crate::error::Result;
use crate::model::Target;
use crate::planner::Step;
use async_trait::async_trait;

/// Records what would run, runs nothing.
#[derive(Debug, Default)]
pub struct DryRunExecutor {
    policy: CommandPolicy,
    contexts: ContextMap,
}

impl DryRunExecutor {
    /// A dry-run executor checking `policy` and resolving `contexts` exactly as the process executor would.
    pub fn new(policy: CommandPolicy, contexts: ContextMap) -> Self {
        DryRunExecutor { policy, contexts }
    }
}

#[async_trait]
impl CommandExecutor for DryRunExecutor {
    fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.policy.check(&step.command)?;
        self.contexts.resolve(step, target).map(|_| ())
    }
    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        let mut o = StepOutcome::new(StepStatus::Planned);
        o.context = self.contexts.resolve(step, target)?;
        Ok(o)
    }
    fn is_dry_run(&self) -> bool {
        true
    }
}
