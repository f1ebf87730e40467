//! Settling a delivery and writing its audit record.
//!
//! [`decide`] is the settle table: a pure function of the result, the
//! delivery count, the source's capabilities and the dry-run setting.
//! [`Core::settle`] carries it out, and is the one place the audit record is
//! finished. An action that destroys the delivery (an ack, an audit-only dead
//! letter, a nack on a source that does not redeliver) runs only after the
//! record is written and flushed; if it cannot be written the delivery is nacked
//! instead (it comes back), and a sink that stays broken stops the worker
//! (see [`EngineConfig::audit_outage_limit`](super::EngineConfig::audit_outage_limit)).
//! A destructive settle that fails after its record was written is recorded
//! once more, with `settle_error`.

use super::result::{EventResult, panicked};
use super::{AuditDecision, AuditRecord, Core, EngineConfig, SettleAction, Settled};
use crate::error::Result;
use crate::redact::redact;
use crate::source::{Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery};
use crate::telemetry::Counter;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// What to do with a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// Done with: never deliver again.
    Ack,
    /// Deliver again after the delay: an attempt failed.
    Nack(Duration),
    /// Deliver again after the delay, not counted as an attempt (deferred,
    /// in progress elsewhere, stopped before it started).
    Defer(Duration),
    /// Poison: park it (or leave it to the redrive policy), with the reason.
    DeadLetter(String),
    /// Dry run over a source that redelivers: keep it until the pass ends.
    Hold,
    /// Dry run over a source that does not redeliver: leave it alone.
    Leave,
}

/// The settle table (see the [module docs](self)).
pub(super) fn decide(
    result: &EventResult,
    count: u32,
    attempt: u32,
    caps: &Capabilities,
    config: &EngineConfig,
    dry_run: bool,
    message_id: &str,
) -> Action {
    if dry_run && !config.settle_in_dry_run {
        return if caps.redelivery {
            Action::Hold
        } else {
            Action::Leave
        };
    }
    // The backoff doubles per attempt, not per receive: receives nobody
    // worked on (deferrals, a dead worker's poll) do not lengthen it.
    let backoff = || config.retry.delay(attempt, message_id);
    match result.decision {
        AuditDecision::Executed | AuditDecision::Planned | AuditDecision::Shadow => Action::Ack,
        AuditDecision::Skipped if result.retry_now => {
            Action::Defer(result.defer.unwrap_or_else(backoff))
        }
        AuditDecision::Skipped => Action::Ack,
        AuditDecision::Deferred => Action::Defer(result.defer.unwrap_or_else(backoff)),
        AuditDecision::Rejected => {
            Action::DeadLetter(format!("{}: {}", result.code, result.detail))
        }
        AuditDecision::Failed if result.retry_now => Action::Defer(Duration::ZERO),
        AuditDecision::Failed if !result.service_outage && used_up(count, attempt, config) => {
            Action::DeadLetter(format!(
                "{} after {count} deliveries: {}",
                result.code, result.detail
            ))
        }
        AuditDecision::Failed => Action::Nack(backoff()),
    }
}

/// Whether a failed delivery has used up its budget: its `attempt`-th
/// failed attempt reached `max_deliveries`, or its delivery count reached
/// twice that.
///
/// Where the source counts failed attempts apart from receives (the SQS
/// source when it re-queues retries), receives nobody settled — a worker
/// SIGKILLed mid-step, a dead worker's long poll that took the message —
/// do not use up a finding's attempts: a finding whose step failed four
/// times and whose copy went once to a dead poll gets its fifth attempt.
/// Those receives still count, twice as slowly, so a delivery whose
/// attempts cannot be carried forward (a failed re-send) still ends; and a
/// message that kills every worker that takes it is the redrive policy's
/// (`maxReceiveCount`), which counts every receive. Elsewhere `attempt`
/// is the delivery count, and this is `count >= max_deliveries`.
fn used_up(count: u32, attempt: u32, config: &EngineConfig) -> bool {
    attempt >= config.max_deliveries || count >= config.max_deliveries.saturating_mul(2)
}

/// Whether `action` leaves nothing to redeliver and no dead-letter queue
/// holding the body: its record must be written first.
fn destroys(action: &Action, caps: &Capabilities) -> bool {
    match action {
        Action::Ack => true,
        // Parked or left to the redrive policy, the body is in a queue.
        Action::DeadLetter(_) => !matches!(
            caps.dead_letter,
            DeadLetterMode::Native | DeadLetterMode::Redrive
        ),
        Action::Nack(_) | Action::Defer(_) => !caps.redelivery,
        Action::Hold | Action::Leave => false,
    }
}

/// How the source will carry out a dead letter.
fn expected_dead_letter(caps: &Capabilities) -> DeadLetterOutcome {
    match caps.dead_letter {
        DeadLetterMode::Native => DeadLetterOutcome::Parked,
        DeadLetterMode::Redrive => DeadLetterOutcome::LeftToRedrive,
        _ => DeadLetterOutcome::AuditOnly,
    }
}

fn dead_letter_name(how: DeadLetterOutcome) -> &'static str {
    match how {
        DeadLetterOutcome::Parked => "parked",
        DeadLetterOutcome::LeftToRedrive => "left_to_redrive",
        _ => "audit_only",
    }
}

impl Core {
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
    ) -> impl Future<Output = Settled> + Send + '_ {
        async move {
            let count = delivery.delivery_count();
            let attempt = delivery.attempt();
            let mut action = decide(
                &result,
                count,
                attempt,
                &self.caps,
                &self.config,
                self.dry_run(),
                delivery.message_id(),
            );
            let audited = self.audit.enabled();
            // The body goes with what could lose it, and with a dry run's
            // would-be dead letter.
            let keep_body = audited
                && match &action {
                    Action::DeadLetter(_) => true,
                    Action::Nack(_) | Action::Defer(_) => !self.caps.redelivery,
                    Action::Hold | Action::Leave => matches!(
                        decide(&result, count, attempt, &self.caps, &self.config, false, ""),
                        Action::DeadLetter(_)
                    ),
                    Action::Ack => false,
                };
            self.stats.incr(match result.decision {
                AuditDecision::Executed => Counter::Executed,
                AuditDecision::Planned => Counter::Planned,
                AuditDecision::Skipped => Counter::Skipped,
                AuditDecision::Failed => Counter::Failed,
                AuditDecision::Rejected => Counter::Rejected,
                AuditDecision::Deferred => Counter::Deferred,
                AuditDecision::Shadow => Counter::Shadow,
            });
            if !matches!(
                result.decision,
                AuditDecision::Executed | AuditDecision::Planned
            ) {
                self.stats.count_reason(result.code);
            }
            let mut settled = Settled {
                message_id: if audited {
                    record.message_id.clone()
                } else {
                    delivery.message_id().to_owned()
                },
                decision: result.decision,
                reason_code: result.code,
                detail: String::new(),
                settle: SettleAction::None,
                dead_letter: None,
                settle_error: None,
            };
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
                record.rule = result.rule;
                record.resource = result.resource;
                if record.steps.is_empty() {
                    record.steps = result.steps;
                }
                if keep_body {
                    record.set_body(delivery.body());
                }
            }
            settled.detail = result.detail;

            // Destroying comes after the record.
            let written_first = destroys(&action, &self.caps);
            if written_first && audited {
                record.settle = match &action {
                    Action::Ack => SettleAction::Ack,
                    Action::Nack(_) | Action::Defer(_) => SettleAction::Nack,
                    _ => SettleAction::DeadLetter,
                };
                if matches!(action, Action::DeadLetter(_)) {
                    let how = expected_dead_letter(&self.caps);
                    record.dead_letter = Some(dead_letter_name(how).to_owned());
                }
                if let Err(e) = self.write(&record, true) {
                    let why = format!("the audit record could not be written: {e}");
                    tracing::error!(error = %e, "audit record not written: the delivery is not settled destructively");
                    settled.settle_error = Some(why);
                    action = if self.caps.redelivery {
                        Action::Defer(self.config.retry.delay(attempt, delivery.message_id()))
                    } else {
                        Action::Leave
                    };
                    self.perform(delivery, action, &mut settled).await;
                    return settled;
                }
            }
            let expected = record.dead_letter.clone();
            self.perform(delivery, action, &mut settled).await;
            if !audited {
                return settled;
            }
            if written_first {
                // Written already; once more only if the settle went otherwise.
                let actual = settled.dead_letter.map(|h| dead_letter_name(h).to_owned());
                if settled.settle_error.is_some() || actual != expected {
                    record.settle_error = settled.settle_error.clone();
                    record.dead_letter = actual;
                    let _ = self.write(&record, false);
                }
                return settled;
            }
            record.settle = settled.settle;
            record.dead_letter = settled.dead_letter.map(|h| dead_letter_name(h).to_owned());
            record.settle_error = settled.settle_error.clone();
            let _ = self.write(&record, false);
            settled
        }
    }

    /// Carries out `action`, noting the result in `settled` and the stats.
    async fn perform(&self, delivery: Delivery, action: Action, settled: &mut Settled) {
        let outcome = match action {
            Action::Leave => Ok(None),
            Action::Hold => {
                self.held.put(delivery);
                Ok(None)
            }
            Action::Ack => {
                settled.settle = SettleAction::Ack;
                delivery.ack().await.map(|()| Some(Counter::Acked))
            }
            Action::Nack(d) => {
                settled.settle = SettleAction::Nack;
                delivery.nack(d).await.map(|()| Some(Counter::Nacked))
            }
            Action::Defer(d) => {
                settled.settle = SettleAction::Nack;
                delivery.defer(d).await.map(|()| Some(Counter::Nacked))
            }
            Action::DeadLetter(reason) => {
                settled.settle = SettleAction::DeadLetter;
                delivery.dead_letter(&reason).await.map(|how| {
                    settled.dead_letter = Some(how);
                    Some(Counter::DeadLettered)
                })
            }
        };
        match outcome {
            Ok(Some(c)) => self.stats.incr(c),
            Ok(None) => {}
            Err(e) => {
                self.stats.incr(Counter::SettleErrors);
                tracing::warn!(error = %e, "settling the delivery failed");
                let e = e.to_string();
                settled.settle_error = Some(match settled.settle_error.take() {
                    Some(first) => format!("{first}; {e}"),
                    None => e,
                });
            }
        }
        tracing::debug!(
            decision = settled.decision.as_str(),
            reason = settled.reason_code,
            detail = %crate::redact::redact_cow(&settled.detail),
            "delivery settled"
        );
    }

    /// Writes `record` (and, when something is destroyed after it, flushes
    /// the sink), a few times before giving up; tracks the sink's health.
    fn write(&self, record: &AuditRecord, flush: bool) -> Result<()> {
        let mut last = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
            }
            let written = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.audit.record(record)?;
                if flush { self.audit.flush() } else { Ok(()) }
            }))
            .unwrap_or_else(|_| Err(panicked("audit sink", "record")));
            match written {
                Ok(()) => {
                    self.health.ok();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        self.stats.incr(Counter::AuditErrors);
        self.health.failed();
        let e = last.unwrap_or_else(|| panicked("audit sink", "record"));
        tracing::error!(error = %e, "writing the audit record failed");
        Err(e)
    }
}
