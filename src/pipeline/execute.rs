//! Running a plan: the command checks, an execution permit, the dedup
//! claim (`claim.rs`), then its steps while the lease and the claim are kept.

use super::ahead::Stock;
use super::claim::{Held, step_id};
use super::result::*;
use super::{AuditDecision, AuditStep, Core, lease};
use crate::executor::{StepOutcome, StepStatus};
use crate::plan::{Plan, SkipReason};
use crate::redact::{redact, redact_argv};
use crate::source::Delivery;
use crate::telemetry::Counter;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use tokio_util::sync::CancellationToken;

impl Core {
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn execute_plan<'a>(
        &'a self,
        plan: Plan,
        key: Option<String>,
        delivery: &'a Delivery,
        stock: Option<&'a Stock>,
        staged: super::handle::Staged<'a>,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = EventResult> + Send + 'a {
        async move {
            // This plan leaves the planned stock once it runs, or whenever it
            // ends without running.
            let waiting = Waiting(stock);
            // Step detail is only built when someone records it.
            let detailed = self.audit.enabled();
            let mut steps: Vec<AuditStep> = plan
                .steps
                .iter()
                .map(|s| AuditStep {
                    argv: if detailed {
                        redact_argv(s.command.argv())
                    } else {
                        Vec::new()
                    },
                    status: StepStatus::NotRun,
                    exit_code: None,
                    duration_ms: 0,
                    started_at: None,
                    context: Default::default(),
                    extra_args: Vec::new(),
                    files: if detailed {
                        s.files.iter().map(|f| f.name().to_owned()).collect()
                    } else {
                        Vec::new()
                    },
                    stderr: None,
                    read_only: s.read_only,
                    probes: Vec::new(),
                })
                .collect();
            let rule = super::rule_of(staged.event, &plan);
            let resource = plan
                .target
                .resource
                .as_ref()
                .and_then(|r| r.id.as_deref().or(r.name.as_deref()).map(str::to_owned));
            let with = |mut r: EventResult, steps: Vec<AuditStep>| {
                r.steps = steps;
                r.planner = Some(plan.planner.clone());
                r.rule = Some(rule.clone());
                r.resource = resource.clone();
                r
            };
            // Refuse the whole plan before anything runs.
            for (i, step) in plan.steps.iter().enumerate() {
                let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.executor.check(step, &plan.target)
                }))
                .unwrap_or_else(|_| Err(panicked("executor", "check")));
                if let Err(e) = checked {
                    return with(step_error(i, &e), steps);
                }
            }
            // At most `concurrency` plans run at once (free at once, unless
            // more deliveries are read ahead than that). The delivery's lease
            // is kept while it waits.
            let _running = match std::sync::Arc::clone(&self.exec).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    let wait = std::pin::pin!(async {
                        tokio::select! {
                            p = std::sync::Arc::clone(&self.exec).acquire_owned() => p.ok(),
                            () = cancel.cancelled() => None,
                        }
                    });
                    let (caps, policy) = (&self.caps, &self.config.lease);
                    match lease::keep_all_leased(wait, &[delivery], caps, policy, &self.stats).await
                    {
                        Some(p) => p,
                        None => return with(cancelled("before step 1"), steps),
                    }
                }
            };
            drop(waiting);
            // The stages' last look (rate limits, circuits, shadow mode): right
            // before the plan starts, so what they count is plans starting.
            if let Some(r) = self
                .before_execute(staged.event, &plan, staged.annotations)
                .await
            {
                return with(r, steps);
            }
            // The finding is claimed now that its plan runs, not while it waited.
            let held = match key {
                Some(key) => match self.claim_for_run(key).await {
                    Ok(held) => Some(held),
                    Err(r) => return with(r, steps),
                },
                None => None,
            };
            let (mut r, lost) = self
                .run_steps(&plan, delivery, held.as_ref(), &mut steps, cancel)
                .await;
            self.after_execute(staged.event, &plan, &r, &steps).await;
            // The plan is done with: its name and description move into the result.
            let Plan {
                planner,
                description,
                ..
            } = plan;
            r.steps = steps;
            r.planner = Some(planner);
            r.rule = Some(rule);
            r.resource = resource;
            if lost {
                // Another delivery took the lapsed claim over: it is theirs to
                // finish (or release), and this one comes back later.
                let mut dup = EventResult::new(
                    AuditDecision::Skipped,
                    SkipReason::Duplicate.code(),
                    format!(
                        "dedup claim lost while running ({}); another delivery finishes it",
                        r.detail
                    ),
                );
                dup.retry_now = true;
                dup.steps = std::mem::take(&mut r.steps);
                dup.planner = r.planner.take();
                dup.rule = r.rule.take();
                dup.resource = r.resource.take();
                return dup;
            }
            r.claim = held.map(|h| h.key);
            if matches!(r.decision, AuditDecision::Executed | AuditDecision::Planned) {
                r.detail = description.unwrap_or_default();
            }
            r
        }
    }

    /// Runs the plan's steps in order, each while the delivery's lease and
    /// the claim are kept: the result (steps recorded into `steps`), and
    /// whether the claim was lost meanwhile (then nothing more is run).
    async fn run_steps(
        &self,
        plan: &Plan,
        delivery: &Delivery,
        held: Option<&Held>,
        steps: &mut [AuditStep],
        cancel: &CancellationToken,
    ) -> (EventResult, bool) {
        let dry = self.dry_run();
        let detailed = self.audit.enabled();
        // In a dry run, a read-only step after a mutating one would read state
        // the planned mutation never made: it is only planned too.
        let mut mutated = false;
        // Mutating steps an earlier run recorded done are skipped from the
        // first on, until the first one not done.
        let mut resuming = held.is_some_and(|h| !h.steps_done.is_empty());
        for (i, step) in plan.steps.iter().enumerate() {
            let demoted;
            let step = if dry && mutated && step.read_only {
                let mut planned = step.clone();
                planned.read_only = false;
                planned.expect = None;
                demoted = planned;
                &demoted
            } else {
                step
            };
            mutated |= !step.read_only;
            let id = (!dry && !step.read_only).then(|| step_id(i, step));
            if resuming && !step.read_only {
                match (held, &id) {
                    (Some(h), Some(id)) if h.steps_done.contains(id) => {
                        steps[i].status = StepStatus::AlreadyDone;
                        continue;
                    }
                    _ => resuming = false,
                }
            }
            if cancel.is_cancelled() {
                return (cancelled(&format!("before step {}", i + 1)), false);
            }
            self.stats.incr(Counter::StepsRun);
            if detailed {
                steps[i].started_at = Some(
                    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                );
            }
            let run = std::pin::pin!(async {
                AssertUnwindSafe(crate::executor::run_step(
                    &*self.executor,
                    step,
                    &plan.target,
                ))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(panicked("executor", "execute")))
            });
            let (caps, policy) = (&self.caps, &self.config.lease);
            let one = [delivery];
            let leased =
                std::pin::pin!(lease::keep_all_leased(run, &one, caps, policy, &self.stats));
            let claimed = self.keep_claimed(leased, held);
            // A read-only step (a query, or a long wait for a resource to be
            // ready) changes nothing, so shutdown may abandon it: the delivery
            // is released and the plan starts over elsewhere.
            let (outcome, lost) = if step.read_only {
                tokio::select! {
                    o = claimed => o,
                    () = cancel.cancelled() => {
                        let mut r = EventResult::new(
                            AuditDecision::Failed,
                            "cancelled",
                            format!("worker stopping during read-only step {}", i + 1),
                        );
                        r.retry_now = true;
                        return (r, false);
                    }
                }
            } else {
                claimed.await
            };
            match outcome {
                Ok(o) if o.status == StepStatus::Failed => {
                    self.stats.incr(Counter::StepsFailed);
                    let tail = o.stderr_tail.lines().last().unwrap_or("").trim().to_owned();
                    let exit = o
                        .exit_code
                        .map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
                    let detail = if tail.is_empty() {
                        format!("step {} {exit}", i + 1)
                    } else {
                        format!("step {} {exit}: {}", i + 1, redact(&tail))
                    };
                    record_outcome(&mut steps[i], step.read_only, o);
                    return (
                        EventResult::new(AuditDecision::Failed, "step_failed", detail),
                        lost,
                    );
                }
                Ok(o) => {
                    if detailed {
                        record_outcome(&mut steps[i], step.read_only, o);
                    } else {
                        steps[i].status = o.status;
                    }
                    if let (Some(h), Some(id)) = (held, &id) {
                        self.record_step(h, id).await;
                    }
                }
                Err(e) => {
                    self.stats.incr(Counter::StepsFailed);
                    steps[i].status = StepStatus::Failed;
                    return (step_error(i, &e), lost);
                }
            }
            if lost {
                return (
                    EventResult::new(
                        AuditDecision::Failed,
                        "claim_lost",
                        format!("stopped after step {}", i + 1),
                    ),
                    true,
                );
            }
        }
        let (decision, code) = if dry {
            (AuditDecision::Planned, "planned")
        } else {
            (AuditDecision::Executed, "executed")
        };
        (EventResult::new(decision, code, String::new()), false)
    }
}

/// Takes a plan out of the planned stock when dropped.
struct Waiting<'a>(Option<&'a Stock>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(stock) = self.0 {
            stock.started();
        }
    }
}

/// A plan stopped because the worker is stopping: released for redelivery.
pub(super) fn cancelled(when: &str) -> EventResult {
    let mut r = EventResult::new(
        AuditDecision::Failed,
        "cancelled",
        format!("worker stopping {when}"),
    );
    r.retry_now = true;
    r
}

/// Records an executor outcome in the step's audit form.
pub(super) fn record_outcome(step: &mut AuditStep, read_only: bool, o: StepOutcome) {
    step.read_only = read_only;
    step.status = o.status;
    step.exit_code = o.exit_code;
    step.duration_ms = u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX);
    step.context = (*o.context).clone();
    step.extra_args = o.extra_args;
    step.stderr = (!o.stderr_tail.is_empty()).then(|| redact(&o.stderr_tail));
    step.probes = o.probes;
}
