//! Shadow mode per rule or policy (`mode: shadow`): the plan is made and
//! passes every check a real run makes (the executor's command policy and
//! context checks run before any stage is asked), then is audited as
//! `shadow` — the steps that would have run — and its delivery acked.
//! Nothing runs. `remediate report --audit FILE` summarises what a rule in
//! shadow mode would have done, before it is switched to `enforce`.

use super::rule_matches;
use crate::model::Event;
use crate::pipeline::{Stage, StageDecision};
use crate::plan::Plan;
use async_trait::async_trait;

/// The shadow-mode stage: the rules named run in shadow mode, the others
/// (or, with [`ShadowMode::everything`], none) are enforced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShadowMode {
    rules: Vec<String>,
    enforced: Vec<String>,
    everything: bool,
}

impl ShadowMode {
    /// Nothing in shadow mode until rules are named.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts the rule `name` (a rule name, a Prisma policy id or name, or a
    /// planner) in shadow mode.
    pub fn rule(mut self, name: impl Into<String>) -> Self {
        self.rules.push(name.into());
        self
    }

    /// Every rule in shadow mode except those [`enforce`](Self::enforce)d.
    pub fn everything(mut self) -> Self {
        self.everything = true;
        self
    }

    /// Enforces the rule `name` even when [`everything`](Self::everything)
    /// is in shadow mode.
    pub fn enforce(mut self, name: impl Into<String>) -> Self {
        self.enforced.push(name.into());
        self
    }

    /// Whether nothing is in shadow mode.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.everything
    }

    /// The entry that puts `plan` in shadow mode, if one does.
    fn shadowed_by(&self, event: &Event, plan: &Plan) -> Option<String> {
        if let Some(rule) = self.rules.iter().find(|r| rule_matches(r, event, plan)) {
            return Some(format!("rule {rule} is in shadow mode"));
        }
        let enforced = self.enforced.iter().any(|r| rule_matches(r, event, plan));
        (self.everything && !enforced).then(|| "every rule is in shadow mode".to_owned())
    }
}

#[async_trait]
impl Stage for ShadowMode {
    fn name(&self) -> &str {
        "shadow-mode"
    }

    async fn before_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        match self.shadowed_by(event, plan) {
            Some(why) => StageDecision::Shadow {
                detail: format!("{why}: {} step(s) would have run", plan.steps.len()),
            },
            None => StageDecision::Proceed,
        }
    }
}
