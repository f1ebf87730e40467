//! Handling a batch of deliveries: decode, pass the stages and claim them
//! (`gate.rs`), plan them in one call, then finish each one (the stages'
//! look at the plan, execute, settle, audit).

use super::ahead::Stock;
use super::execute::cancelled;
use super::gate::{apply, stage_panicked};
use super::planning::{fewer_decisions, plan_guarded};
use super::result::*;
use super::{AuditDecision, AuditRecord, Core, DedupStore, Settled, lease};
use crate::error::Result;
use crate::model::{Event, EventKind};
use crate::plan::{Decision, Plan};
use crate::redact::redact;
use crate::source::Delivery;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

impl Core {
    pub(super) fn dry_run(&self) -> bool {
        self.executor.is_dry_run()
    }

    /// Where claims go. A dry run remediates nothing, so it never writes the
    /// configured (possibly shared) store: a real run must not believe a
    /// finding handled, nor wait for a dry run's claim. It keeps its own
    /// in-memory store instead, so a finding delivered twice within the dry
    /// run is reported `duplicate` just as the real run would report it.
    pub(super) fn dedup_store(&self) -> &dyn DedupStore {
        if self.dry_run() {
            &self.dry_planned
        } else {
            &*self.dedup
        }
    }

    /// The audit record a delivery starts with. Nobody reads the record of a
    /// disabled sink, so it names the delivery only when one is enabled.
    pub(super) fn record_for(&self, source: &str, delivery: &Delivery) -> AuditRecord {
        if self.audit.enabled() {
            AuditRecord::untimed(source, delivery.message_id(), delivery.delivery_count())
        } else {
            AuditRecord::untimed(String::new(), String::new(), delivery.delivery_count())
        }
    }

    /// Releases deliveries beyond the concurrency limit for redelivery, audited.
    pub(super) async fn release_surplus(&self, source: &str, surplus: Vec<Delivery>) {
        tracing::warn!(
            count = surplus.len(),
            "source returned more deliveries than asked; releasing the surplus"
        );
        for delivery in surplus {
            let record = self.record_for(source, &delivery);
            let mut result = EventResult::new(
                AuditDecision::Failed,
                "over_capacity",
                "the source returned more deliveries than asked; released for redelivery",
            );
            result.retry_now = true;
            self.settle(delivery, record, result).await;
        }
    }

    pub(super) async fn handle_batch(
        &self,
        source: &str,
        batch: Vec<Delivery>,
        permits: Option<OwnedSemaphorePermit>,
        cancel: &CancellationToken,
    ) -> Vec<Settled> {
        if cancel.is_cancelled() {
            // Stopping before anything started: release all, unplanned.
            let mut settled = Vec::with_capacity(batch.len());
            for delivery in batch {
                let record = self.record_for(source, &delivery);
                settled.push(
                    self.settle(delivery, record, cancelled("before planning"))
                        .await,
                );
            }
            return settled;
        }
        // Decode and pass the stages. The batch holds one permit per
        // delivery until it is settled.
        let mut works = Vec::with_capacity(batch.len());
        for delivery in batch {
            works.push(self.decode_and_gate(delivery).await);
        }
        // Plan everything that passed the gate in one call. Events are moved
        // out for the call and back afterwards, never copied.
        let mut held: Vec<Vec<Option<Event>>> = works
            .iter_mut()
            .map(|w| {
                std::mem::take(&mut w.events)
                    .into_iter()
                    .map(Some)
                    .collect()
            })
            .collect();
        let mut slots = Vec::with_capacity(works.len());
        let mut to_plan = Vec::with_capacity(works.len());
        for (wi, w) in works.iter().enumerate() {
            for (ei, g) in w.gated.iter().enumerate() {
                if g.is_err() {
                    continue;
                }
                if let Some(event) = held[wi][ei].take() {
                    slots.push((wi, ei));
                    to_plan.push(event);
                }
            }
        }
        let mut plans: Vec<Vec<Option<Result<Decision>>>> = works
            .iter()
            .map(|w| (0..w.gated.len()).map(|_| None).collect())
            .collect();
        let mut stock = None;
        if !to_plan.is_empty() {
            // The batch's leases are kept while it is planned (and while it
            // waits for a planner call shared with other batches).
            let leased: Vec<&Delivery> = works.iter().map(|w| &w.delivery).collect();
            let (caps, policy) = (&self.caps, &self.config.lease);
            let (events, answers) = match &self.ahead {
                None => {
                    let answers = {
                        let planning = std::pin::pin!(plan_guarded(&*self.planner, &to_plan));
                        lease::keep_all_leased(planning, &leased, caps, policy, &self.stats).await
                    };
                    (to_plan, answers)
                }
                Some(ahead) => {
                    let planning = std::pin::pin!(ahead.plan(to_plan));
                    match lease::keep_all_leased(planning, &leased, caps, policy, &self.stats).await
                    {
                        Some(answer) => {
                            stock = Some(answer.stock);
                            (answer.events, answer.decisions)
                        }
                        None => {
                            drop(leased);
                            return self.release_unplanned(source, works).await;
                        }
                    }
                }
            };
            let mut answers = answers.into_iter();
            for (&(wi, ei), event) in slots.iter().zip(events) {
                held[wi][ei] = Some(event);
                plans[wi][ei] = Some(
                    answers
                        .next()
                        .unwrap_or_else(|| Err(fewer_decisions(&*self.planner))),
                );
            }
        }
        for (w, events) in works.iter_mut().zip(held) {
            w.events = events.into_iter().flatten().collect();
        }
        // One allocation per batch keeps the per-delivery futures out of
        // this task's, which is copied as a whole when it is spawned.
        Box::pin(self.finish_all(source, works, plans, stock, permits, cancel)).await
    }

    /// Releases a batch whose planner call was lost (the runtime is
    /// shutting down): each delivery is released for redelivery, as at a
    /// cancel (nothing is claimed before a plan runs).
    async fn release_unplanned(&self, source: &str, works: Vec<Work>) -> Vec<Settled> {
        let mut settled = Vec::with_capacity(works.len());
        for work in works {
            let record = self.record_for(source, &work.delivery);
            settled.push(
                self.settle(work.delivery, record, cancelled("while planning"))
                    .await,
            );
        }
        settled
    }

    /// Executes and settles a batch's deliveries within one task (no spawn
    /// per delivery). Most are done at their first poll (skips, refusals, dry
    /// runs) and run one after the other, each in place; at the first that
    /// has to wait, it and the rest of the batch run concurrently.
    ///
    /// `permits` holds one permit per delivery. Deliveries settled in place
    /// return theirs together (one release instead of one each); once
    /// deliveries run concurrently, each holds its own until it is settled.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn finish_all<'a>(
        &'a self,
        source: &'a str,
        works: Vec<Work>,
        plans: Vec<Vec<Option<Result<Decision>>>>,
        stock: Option<Stock>,
        mut permits: Option<OwnedSemaphorePermit>,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = Vec<Settled>> + Send + 'a {
        async move {
            let stock = stock.as_ref();
            let mut settled = Vec::with_capacity(works.len());
            let mut batch = works.into_iter().zip(plans);
            while let Some((work, decisions)) = batch.next() {
                let mut next = std::pin::pin!(self.finish(source, work, decisions, stock, cancel));
                if let Some(done) = poll_once(next.as_mut()).await {
                    settled.push(done);
                    continue;
                }
                let own = permits.as_mut().and_then(|p| p.split(1));
                let waiting = async move {
                    let done = next.await;
                    drop(own);
                    done
                };
                let rest = futures_util::future::join_all(batch.map(|(work, decisions)| {
                    let own = permits.as_mut().and_then(|p| p.split(1));
                    let delivery = self.finish(source, work, decisions, stock, cancel);
                    async move {
                        let done = delivery.await;
                        drop(own);
                        done
                    }
                }));
                // What is left are the permits of the deliveries already settled.
                drop(permits);
                let (first, rest) = futures_util::future::join(waiting, rest).await;
                settled.push(first);
                settled.extend(rest);
                break;
            }
            settled
        }
    }

    // `finish`, `execute_plan` and `settle` return `async move` blocks
    // rather than being `async fn`s: an `async fn` keeps each by-value
    // argument twice in its future (as argument and as local), and these
    // futures nest into every delivery's, which a batch holds side by side.
    // For the same reason `work` is used in place, not destructured.

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn finish<'a>(
        &'a self,
        source: &'a str,
        mut work: Work,
        decisions: Vec<Option<Result<Decision>>>,
        stock: Option<&'a Stock>,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = Settled> + Send + 'a {
        let first = work.events.first();
        let span = tracing::info_span!(
            "delivery",
            message_id = work.delivery.message_id(),
            alert_id = first.and_then(Event::alert_id),
            event_id = first.and_then(Event::event_id),
            account = first.and_then(Event::account_id),
        );
        async move {
            if let Some(why) = work.undecodable.take() {
                tracing::warn!(reason = %redact(&why), "undecodable delivery");
                let result = EventResult::new(AuditDecision::Rejected, "undecodable", why);
                let record = self.record_for(source, &work.delivery);
                return self.settle(work.delivery, record, result).await;
            }
            let events = std::mem::take(&mut work.events);
            let mut results = Vec::with_capacity(events.len());
            let mut annotations_of_all = std::collections::BTreeMap::new();
            let gated = std::mem::take(&mut work.gated);
            let annotated = std::mem::take(&mut work.annotations);
            for (((gated, decision), event), mut annotations) in
                gated.into_iter().zip(decisions).zip(&events).zip(annotated)
            {
                let result = match gated {
                    Err(r) => r,
                    Ok(key) => match self.plan_of(decision) {
                        Ok(plan) => {
                            let staged = Staged {
                                event,
                                annotations: &mut annotations,
                            };
                            self.execute_plan(plan, key, &work.delivery, stock, staged, cancel)
                                .await
                        }
                        // Refused or failed while planning: still the rule's.
                        Err(mut r) => {
                            r.rule = r.rule.or_else(|| super::stage::event_rule(event));
                            r
                        }
                    },
                };
                annotations_of_all.append(&mut annotations);
                results.push(result);
            }
            // Complete or release dedup claims.
            for r in &results {
                if let Some(key) = &r.claim {
                    // Done means remediated, or planned in a dry run (whose
                    // store is its own, see `dedup_store`).
                    let store = self.dedup_store();
                    let update = match r.decision {
                        AuditDecision::Executed | AuditDecision::Planned => {
                            AssertUnwindSafe(store.complete(key, self.config.dedup_ttl))
                                .catch_unwind()
                                .await
                        }
                        _ => AssertUnwindSafe(store.release(key)).catch_unwind().await,
                    };
                    let outcome = update.unwrap_or_else(|_| Err(panicked("dedup store", "update")));
                    if let Err(e) = outcome {
                        tracing::warn!(key, error = %e, "dedup store update failed");
                    }
                }
            }
            let mut record = self.record_for(source, &work.delivery);
            record.kind = events.first().map_or(EventKind::Unknown, Event::kind);
            if events.len() > 1 {
                record.events = Some(events.len());
            }
            // The delivery is settled by its worst event; the record describes that event.
            let worst = results
                .iter()
                .enumerate()
                .max_by_key(|(i, r)| (r.severity(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
                .unwrap_or(0);
            if let Some(event) = events.get(worst).filter(|_| self.audit.enabled()) {
                record.alert_id = event.alert_id().map(str::to_owned);
                record.event_id = event.event_id().map(str::to_owned);
                record.account_id = event.account_id().map(str::to_owned);
                record.cloud = Some(event.cloud().as_str().to_owned());
            }
            let mut steps = Vec::new();
            for r in &mut results {
                steps.append(&mut r.steps);
            }
            record.annotations = annotations_of_all;
            record.steps = steps;
            let result = if worst < results.len() {
                results.swap_remove(worst)
            } else {
                // Unreachable by construction (decode never yields zero events
                // here), but a delivery must be settled whatever happens.
                EventResult::new(
                    AuditDecision::Rejected,
                    "undecodable",
                    "body carries no event",
                )
            };
            self.settle(work.delivery, record, result).await
        }
        .instrument(span)
    }

    /// Runs the stages' `before_execute` in order: the first decision that
    /// is not to go on, or `None`.
    pub(super) async fn before_execute(
        &self,
        event: &Event,
        plan: &Plan,
        annotations: &mut std::collections::BTreeMap<String, serde_json::Value>,
    ) -> Option<EventResult> {
        let dry = self.dry_run();
        for stage in self.stages.iter().filter(|s| !super::gate::is_gate(&***s)) {
            // A dry run holds nothing: stages preview, taking no shared count.
            let asked = if dry {
                stage.preview_execute(event, plan)
            } else {
                stage.before_execute(event, plan)
            };
            let decision = AssertUnwindSafe(asked)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| stage_panicked(stage.name()));
            if let Some(mut r) = apply(decision, annotations) {
                r.planner = Some(plan.planner.clone());
                return Some(r);
            }
        }
        None
    }

    /// Tells every stage what became of a plan they all let through.
    pub(super) async fn after_execute(
        &self,
        event: &Event,
        plan: &Plan,
        result: &EventResult,
        steps: &[super::AuditStep],
    ) {
        // Only the gate: nobody to tell; a dry run: nothing ran to tell of.
        if self.dry_run() || self.stages.iter().all(|s| super::gate::is_gate(&**s)) {
            return;
        }
        let ran = steps
            .iter()
            .filter(|s| !matches!(s.status, crate::executor::StepStatus::NotRun))
            .count();
        let outcome = super::StageOutcome::new(result.decision, result.code, ran);
        for stage in self.stages.iter().filter(|s| !super::gate::is_gate(&***s)) {
            let told = AssertUnwindSafe(stage.after_execute(event, plan, &outcome))
                .catch_unwind()
                .await;
            if told.is_err() {
                tracing::error!(stage = stage.name(), "stage panicked after a plan ran");
            }
        }
    }
}

/// The event a plan was made for and its audit fields, for the stages that
/// look at the plan before it runs and after.
pub(super) struct Staged<'a> {
    pub(super) event: &'a Event,
    pub(super) annotations: &'a mut std::collections::BTreeMap<String, serde_json::Value>,
}
