//! The `alert-cli` planner: runs the commands carried in the alert itself
//! (`alertRemediationCli`).
//!
//! Opt-in, because it trusts message content: anyone who can write to the queue
//! chooses the commands. Every script still goes through [`parse_script_steps`](crate::plan::parse_script_steps) and
//! the [`CommandPolicy`], so it can never become a shell.

use super::RemediationPlanner;
use crate::error::Result;
use crate::model::Event;
use crate::plan::{CommandPolicy, parse_script_steps_for};
use crate::plan::{Decision, Plan, Skip, SkipReason, Step};
use async_trait::async_trait;

/// Plans from the CLI script an alert carries.
#[derive(Clone, Debug, Default)]
pub struct AlertCliPlanner {
    policy: CommandPolicy,
}

impl AlertCliPlanner {
    /// The planner name: `alert-cli`.
    pub const NAME: &'static str = "alert-cli";

    /// A planner parsing scripts with `policy`.
    pub fn new(policy: CommandPolicy) -> Self {
        AlertCliPlanner { policy }
    }

    fn plan_one(&self, event: &Event) -> Result<Decision> {
        let Event::PrismaAlert(alert) = event else {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                "alert-cli only plans Prisma Cloud alerts",
            )));
        };
        let Some(script) = alert.remediation_cli() else {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                "alert carries no alertRemediationCli",
            )));
        };
        let target = event.target();
        let steps: Vec<Step> = parse_script_steps_for(script, &self.policy, Some(&target))?;
        if steps.is_empty() {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                "alertRemediationCli holds no command",
            )));
        }
        let mut plan = Plan::new(Self::NAME, target, steps);
        if let Some(name) = alert.policy_name() {
            plan = plan.with_description(name);
        }
        Ok(Decision::Plan(plan))
    }
}

#[async_trait]
impl RemediationPlanner for AlertCliPlanner {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
        events.iter().map(|e| self.plan_one(e)).collect()
    }
}
