//! Asking the planner for a batch (a panic is a failure of every event it
//! held), and reading its answer for one event: a plan to run, or the result
//! that says why there is none.

use super::result::*;
use super::{AuditDecision, Core};
use crate::error::{Error, Result};
use crate::model::Event;
use crate::plan::{Decision, Plan, SkipReason};
use crate::planner::RemediationPlanner;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;

/// Asks `planner`, turning a panic into a permanent error per event.
pub(super) async fn plan_guarded(
    planner: &dyn RemediationPlanner,
    events: &[Event],
) -> Vec<Result<Decision>> {
    match AssertUnwindSafe(planner.plan(events)).catch_unwind().await {
        Ok(answers) => answers,
        Err(_) => events
            .iter()
            .map(|_| Err(panicked("planner", "plan")))
            .collect(),
    }
}

/// The error for an event its planner answered no decision for.
pub(super) fn fewer_decisions(planner: &dyn RemediationPlanner) -> Error {
    Error::Backend {
        backend: "planner",
        message: format!(
            "planner {} returned fewer decisions than events",
            planner.name()
        ),
        temporary: true,
        source: None,
    }
}

impl Core {
    /// The plan to run for one event, or the result that says why there is none.
    #[allow(
        clippy::result_large_err,
        reason = "moved once, into the delivery's settle; boxing would allocate per skip"
    )]
    pub(super) fn plan_of(
        &self,
        decision: Option<Result<Decision>>,
    ) -> std::result::Result<Plan, EventResult> {
        let decision = match decision {
            Some(d) => d,
            None => Err(Error::Backend {
                backend: "planner",
                message: "event was not planned".into(),
                temporary: true,
                source: None,
            }),
        };
        let plan = match decision {
            Ok(Decision::Skip(skip)) => return Err(EventResult::skip(&skip)),
            Ok(Decision::Plan(plan)) => plan,
            Err(e) if is_rejection(&e) => {
                return Err(EventResult::new(
                    AuditDecision::Rejected,
                    reason_code(&e),
                    detail_of(&e),
                )
                .refused_by(&e));
            }
            Err(e) => {
                let code = if e.is_temporary() {
                    "planner_unavailable"
                } else {
                    "planner_error"
                };
                let mut r = EventResult::new(AuditDecision::Failed, code, e.to_string());
                // An API outage or refused credentials say nothing about the
                // message: parking it would lose work that succeeds later.
                r.service_outage = e.is_temporary() || e.is_setup_problem();
                return Err(r);
            }
        };
        if plan.steps.is_empty() {
            return Err(EventResult::new(
                AuditDecision::Skipped,
                SkipReason::NoRemediation.code(),
                format!("{} planned no step", plan.planner),
            ));
        }
        Ok(plan)
    }
}
