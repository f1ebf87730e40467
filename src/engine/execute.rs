//! Running a plan's steps while the lease is kept, and settling the
//! delivery with what came of it.

use super::result::*;
use super::*;

impl Inner {
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn execute_plan<'a>(
        &'a self,
        plan: Plan,
        delivery: &'a Delivery,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = EventResult> + Send + 'a {
        async move {
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
            let with = |mut r: EventResult, steps: Vec<AuditStep>| {
                r.steps = steps;
                r.planner = Some(plan.planner.clone());
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
            let dry = self.dry_run();
            // In a dry run, a read-only step after a mutating one would read state
            // the planned mutation never made: it is only planned too.
            let mut mutated = false;
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
                if cancel.is_cancelled() {
                    let mut r = EventResult::new(
                        AuditDecision::Failed,
                        "cancelled",
                        format!("worker stopping before step {}", i + 1),
                    );
                    r.retry_now = true;
                    return with(r, steps);
                }
                self.stats.incr(Counter::StepsRun);
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
                let leased = lease::keep_all_leased(run, &one, caps, policy, &self.stats);
                // A read-only step (a query, or a long wait for a resource to be
                // ready) changes nothing, so shutdown may abandon it: the delivery
                // is released and the plan starts over elsewhere.
                let outcome = if step.read_only {
                    tokio::select! {
                        o = leased => o,
                        () = cancel.cancelled() => {
                            let mut r = EventResult::new(
                                AuditDecision::Failed,
                                "cancelled",
                                format!("worker stopping during read-only step {}", i + 1),
                            );
                            r.retry_now = true;
                            return with(r, steps);
                        }
                    }
                } else {
                    leased.await
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
                        return with(
                            EventResult::new(AuditDecision::Failed, "step_failed", detail),
                            steps,
                        );
                    }
                    Ok(o) => {
                        if detailed {
                            record_outcome(&mut steps[i], step.read_only, o);
                        } else {
                            steps[i].status = o.status;
                        }
                    }
                    Err(e) => {
                        self.stats.incr(Counter::StepsFailed);
                        steps[i].status = StepStatus::Failed;
                        return with(step_error(i, &e), steps);
                    }
                }
            }
            let (decision, code) = if dry {
                (AuditDecision::Planned, "planned")
            } else {
                (AuditDecision::Executed, "executed")
            };
            // The plan is done with: its name and description move into the result.
            let Plan {
                planner,
                description,
                ..
            } = plan;
            let mut r = EventResult::new(decision, code, description.unwrap_or_default());
            r.steps = steps;
            r.planner = Some(planner);
            r
        }
    }

    /// Settles the delivery according to `result` and writes the audit record.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn settle(
        &self,
        delivery: Delivery,
        mut record: AuditRecord,
        result: EventResult,
    ) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let count = delivery.delivery_count();
            let cfg = &self.config;
            enum Action {
                Ack,
                Nack(Duration),
                DeadLetter(String),
            }
            let action = match result.decision {
                AuditDecision::Executed | AuditDecision::Planned => Action::Ack,
                AuditDecision::Skipped if result.retry_now => {
                    Action::Nack(cfg.retry.delay(count, delivery.message_id()))
                }
                AuditDecision::Skipped => Action::Ack,
                AuditDecision::Rejected => {
                    Action::DeadLetter(format!("{}: {}", result.code, result.detail))
                }
                AuditDecision::Failed if result.retry_now => Action::Nack(Duration::ZERO),
                AuditDecision::Failed if count >= cfg.max_deliveries && !result.service_outage => {
                    Action::DeadLetter(format!(
                        "{} after {count} deliveries: {}",
                        result.code, result.detail
                    ))
                }
                AuditDecision::Failed => {
                    Action::Nack(cfg.retry.delay(count, delivery.message_id()))
                }
            };
            // Nobody reads the record of a disabled sink: don't build it.
            let audited = self.audit.enabled();
            record.decision = result.decision;
            if audited {
                record.stamp();
                record.reason_code = Some(result.code.to_owned());
                record.refusal = result.refusal.map(|r| r.as_str().to_owned());
                // Details quote commands and their errors: through the one redaction table.
                record.reason = Some(if result.detail.is_empty() {
                    result.code.to_owned()
                } else {
                    redact(&format!("{}: {}", result.code, result.detail))
                });
                record.planner = result.planner;
                record.steps = if record.steps.is_empty() {
                    result.steps
                } else {
                    record.steps
                };
            }
            let counter = match result.decision {
                AuditDecision::Executed => Counter::Executed,
                AuditDecision::Planned => Counter::Planned,
                AuditDecision::Skipped => Counter::Skipped,
                AuditDecision::Failed => Counter::Failed,
                AuditDecision::Rejected => Counter::Rejected,
            };
            self.stats.incr(counter);

            let settle_for_real = !self.dry_run() || cfg.settle_in_dry_run;
            let mut keep_body = matches!(action, Action::DeadLetter(_))
                || (matches!(action, Action::Nack(_)) && !self.caps.redelivery);
            let body = delivery.body().clone();
            if !settle_for_real {
                record.settle = SettleAction::None;
                // Nothing was settled; a would-be dead letter still shows its body.
                keep_body = matches!(action, Action::DeadLetter(_));
            } else {
                let outcome = match action {
                    Action::Ack => {
                        record.settle = SettleAction::Ack;
                        delivery.ack().await.map(|()| Counter::Acked)
                    }
                    Action::Nack(d) => {
                        record.settle = SettleAction::Nack;
                        delivery.nack(d).await.map(|()| Counter::Nacked)
                    }
                    Action::DeadLetter(reason) => {
                        record.settle = SettleAction::DeadLetter;
                        match delivery.dead_letter(&reason).await {
                            Ok(how) => {
                                record.dead_letter = Some(
                                    match how {
                                        DeadLetterOutcome::Parked => "parked",
                                        DeadLetterOutcome::LeftToRedrive => "left_to_redrive",
                                        DeadLetterOutcome::AuditOnly => "audit_only",
                                    }
                                    .to_owned(),
                                );
                                Ok(Counter::DeadLettered)
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                match outcome {
                    Ok(c) => self.stats.incr(c),
                    Err(e) => {
                        self.stats.incr(Counter::SettleErrors);
                        tracing::warn!(error = %e, "settling the delivery failed");
                        record.settle_error = Some(e.to_string());
                        keep_body = true;
                    }
                }
            }
            tracing::debug!(
                decision = result.decision.as_str(),
                reason = result.code,
                detail = %crate::redact::redact_cow(&result.detail),
                "delivery settled"
            );
            if !audited {
                return;
            }
            if keep_body {
                record.set_body(&body);
            }
            let written = std::panic::catch_unwind(AssertUnwindSafe(|| self.audit.record(&record)))
                .unwrap_or_else(|_| Err(panicked("audit sink", "record")));
            if let Err(e) = written {
                tracing::error!(error = %e, "writing the audit record failed");
            }
        }
    }
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
