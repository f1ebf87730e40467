//! The `cloudtrail` planner: evaluates [rules](crate::rules) — EventBridge
//! event patterns routing CloudTrail events to remediations — against each
//! CloudTrail record.

use super::{Decision, RemediationPlanner, Skip, SkipReason};
use crate::error::Result;
use crate::model::Event;
use crate::plan::execution::CommandExecutor;
use crate::rules::{Probe, RuleContext, RuleSet, eventbridge_view};
use async_trait::async_trait;
use std::sync::Arc;

/// Plans CloudTrail events with a [`RuleSet`].
///
/// For each event, in order:
///
/// 1. events caused by an [ignored principal](RuleSet::with_ignored_principal)
///    (the remediator's own identity) are skipped as `ignored`, so a
///    remediation never triggers itself;
/// 2. each rule whose pattern matches the event's EventBridge form
///    ([`eventbridge_view`]) is asked to plan, in file order; the first plan
///    wins, and if every matching rule skips, the first skip is the decision;
/// 3. an event no rule matches is skipped as `ignored`.
///
/// Remediations query the current state through `executor` (the one the
/// engine runs the plan with, so a dry run answers from the real state).
/// Events that are not CloudTrail records are left to other planners
/// (`no_remediation`).
#[derive(Debug, Clone)]
pub struct CloudTrailPlanner {
    rules: Arc<RuleSet>,
    executor: Arc<dyn CommandExecutor>,
}

impl CloudTrailPlanner {
    /// The planner name: `cloudtrail`.
    pub const NAME: &'static str = crate::rules::PLANNER_NAME;

    /// A planner evaluating `rules`, running read-only queries with `executor`.
    pub fn new(rules: RuleSet, executor: Arc<dyn CommandExecutor>) -> Self {
        CloudTrailPlanner {
            rules: Arc::new(rules),
            executor,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    async fn plan_one(&self, event: &Event) -> Result<Decision> {
        let Event::CloudTrail(record) = event else {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                "the cloudtrail planner only plans CloudTrail records",
            )));
        };
        let view = eventbridge_view(record)?;
        let detail = &view["detail"];
        if let Some(p) = self.rules.ignored_by(detail) {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::Ignored,
                format!(
                    "caused by the remediator's own identity (matches {})",
                    p.as_str()
                ),
            )));
        }
        let target = event.target();
        let mut first_skip: Option<Skip> = None;
        for rule in self.rules.rules() {
            if !rule.pattern.matches(&view) {
                continue;
            }
            let cx = RuleContext {
                rule: &rule.name,
                record,
                detail,
                target: &target,
                probe: Probe::new(&*self.executor, &target),
            };
            tracing::debug!(rule = %rule.name, "rule matched");
            match rule.remediation.plan(&cx).await? {
                Decision::Plan(mut plan) => {
                    plan.rule.get_or_insert_with(|| rule.name.clone());
                    return Ok(Decision::Plan(plan));
                }
                Decision::Skip(skip) => {
                    first_skip.get_or_insert(Skip::new(
                        skip.reason,
                        format!("rule {}: {}", rule.name, skip.detail),
                    ));
                }
            }
        }
        Ok(Decision::Skip(first_skip.unwrap_or_else(|| {
            Skip::new(SkipReason::Ignored, "no rule matches the event")
        })))
    }
}

#[async_trait]
impl RemediationPlanner for CloudTrailPlanner {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
        // Remediations may query (each query is a CLI process): plan the
        // batch's events concurrently.
        futures_util::future::join_all(events.iter().map(|e| self.plan_one(e))).await
    }
}
