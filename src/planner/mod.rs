//! Planning: turning events into a [`Plan`](crate::plan::Plan) of ordered steps, or a
//! [`crate::plan::Skip`] with a reason.
//!
//! A [`RemediationPlanner`] plans a batch of events at once, so a planner backed
//! by an API can make one call for many alerts.

mod alert_cli;
mod cloudtrail;
#[cfg(feature = "prisma")]
pub mod prisma;

use crate::error::Result;
use crate::model::Event;
use crate::plan::{Decision, Skip, SkipReason};
use crate::telemetry::Stats;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

pub use alert_cli::AlertCliPlanner;
pub use cloudtrail::CloudTrailPlanner;

/// Turns events into plans.
///
/// `plan` returns exactly one result per input event, in the same order. An
/// `Err` means planning failed (temporary errors are retried by redelivery;
/// [`Error::UnsafeCommand`](crate::Error::UnsafeCommand) rejects the event).
#[async_trait]
pub trait RemediationPlanner: Send + Sync + fmt::Debug {
    /// The planner's name, as used on the command line and in audit records.
    fn name(&self) -> &str;

    /// Plans a batch of events at once.
    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>>;

    /// Counts this planner's API calls in `stats` from now on: the engine
    /// calls it with its own when it is built.
    fn attach_stats(&self, stats: &Arc<Stats>) {
        let _ = stats;
    }

    /// Whether this planner is best asked for every event waiting at once: a
    /// planner that calls a rate-limited API once per [`plan`](Self::plan)
    /// call (the Prisma Cloud planner). The pipeline then keeps events read
    /// ahead until its stock of plans waiting to run falls below the
    /// execution concurrency, and asks for all of them in one call, one
    /// call at a time. Default `false`: each received batch is planned as it
    /// arrives, several batches at once (a local planner gains nothing from
    /// waiting).
    fn wants_batches(&self) -> bool {
        false
    }
}

/// Forwards the trait through smart pointers.
macro_rules! forward_planner {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<T: RemediationPlanner + ?Sized> RemediationPlanner for $ptr<T> {
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
                (**self).plan(events).await
            }
            fn attach_stats(&self, stats: &Arc<Stats>) {
                (**self).attach_stats(stats)
            }
            fn wants_batches(&self) -> bool {
                (**self).wants_batches()
            }
        }
    )*};
}

forward_planner!(Arc, Box);

/// Asks several planners in order: for each event, the first planner that
/// returns a plan (or an error, or a skip other than
/// [`SkipReason::NoRemediation`]) decides; if every planner has nothing to run,
/// the event is skipped with `no_remediation`.
#[derive(Debug)]
pub struct PlannerChain {
    planners: Vec<Box<dyn RemediationPlanner>>,
    name: String,
}

impl PlannerChain {
    /// A chain of `planners`, asked in order.
    pub fn new(planners: Vec<Box<dyn RemediationPlanner>>) -> Self {
        let name = planners
            .iter()
            .map(|p| p.name().to_owned())
            .collect::<Vec<_>>()
            .join("+");
        PlannerChain { planners, name }
    }
}

#[async_trait]
impl RemediationPlanner for PlannerChain {
    fn name(&self) -> &str {
        &self.name
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        for planner in &self.planners {
            planner.attach_stats(stats);
        }
    }

    fn wants_batches(&self) -> bool {
        self.planners.iter().any(|p| p.wants_batches())
    }

    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
        let mut results: Vec<Option<Result<Decision>>> = (0..events.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for planner in &self.planners {
            if pending.is_empty() {
                break;
            }
            let batch: Vec<Event> = pending.iter().map(|&i| events[i].clone()).collect();
            let answers = planner.plan(&batch).await;
            let mut still = Vec::new();
            for (&i, answer) in pending.iter().zip(answers) {
                match answer {
                    Ok(Decision::Skip(s)) if s.reason == SkipReason::NoRemediation => {
                        still.push(i);
                        results[i].get_or_insert(Ok(Decision::Skip(s)));
                    }
                    other => results[i] = Some(other),
                }
            }
            pending = still;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Ok(Decision::Skip(Skip::new(
                        SkipReason::NoRemediation,
                        "no planner configured",
                    )))
                })
            })
            .collect()
    }
}
