//! The front of a batch: decoding each delivery, the stages' look before
//! planning (the Prisma alert gate first), and the dedup claim that lets an
//! event be planned.

use super::result::*;
use super::stage::{StageDecision, prisma_gate};
use super::{AuditDecision, Claim, Core, PrismaAlertGate};
use crate::model::{Event, decode};
use crate::plan::SkipReason;
use crate::source::Delivery;
use futures_util::FutureExt;
use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

impl Core {
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub(super) fn decode_and_gate(
        &self,
        delivery: Delivery,
    ) -> impl Future<Output = Work> + Send + '_ {
        // Decoding needs no await: only the dedup claims do.
        let mut work = Work {
            delivery,
            events: Vec::new(),
            gated: Vec::new(),
            annotations: Vec::new(),
            undecodable: None,
        };
        let mut decoded_events = Vec::new();
        if let Some(limit) = work.delivery.truncated_at() {
            work.undecodable = Some(format!("message longer than {limit} bytes (truncated)"));
        } else {
            match decode(work.delivery.body()) {
                Err(e) => work.undecodable = Some(e.to_string()),
                Ok(decoded) if decoded.events.is_empty() => {
                    work.undecodable = Some(format!("{:?} body carries no event", decoded.format));
                }
                Ok(decoded) => decoded_events = decoded.events,
            }
        }
        async move {
            work.events.reserve_exact(decoded_events.len());
            work.gated.reserve_exact(decoded_events.len());
            for event in decoded_events {
                let mut annotations = BTreeMap::new();
                let gated = match self
                    .before_plan(&event, &work.delivery, &mut annotations)
                    .await
                {
                    Some(decided) => Err(decided),
                    None => self.claim(&event).await,
                };
                work.events.push(event);
                work.gated.push(gated);
                work.annotations.push(annotations);
            }
            work
        }
    }

    /// Takes the event's dedup claim: `Ok` with the claimed key (`None` for
    /// an event without one) if it may be planned, `Err` with the decision if not.
    pub(super) async fn claim(
        &self,
        event: &Event,
    ) -> std::result::Result<Option<String>, EventResult> {
        let Some(key) = event.dedup_key() else {
            return Ok(None);
        };
        let claim = AssertUnwindSafe(self.dedup_store().claim(&key, self.config.dedup_lease))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(panicked("dedup store", "claim")));
        match claim {
            Ok(Claim::Claimed) => Ok(Some(key)),
            Ok(Claim::AlreadyDone) => Err(EventResult::new(
                AuditDecision::Skipped,
                SkipReason::Duplicate.code(),
                "already remediated",
            )),
            Ok(Claim::InProgress) => {
                let mut r = EventResult::new(
                    AuditDecision::Skipped,
                    SkipReason::Duplicate.code(),
                    "being remediated by another delivery; retry later",
                );
                r.retry_now = true;
                Err(r)
            }
            // Without the dedup store "once" cannot be promised: retry later.
            // The outage says nothing about the message, so it is never
            // dead-lettered for it, whatever its delivery count.
            Err(e) => {
                let mut r =
                    EventResult::new(AuditDecision::Failed, "dedup_unavailable", e.to_string());
                r.service_outage = true;
                Err(r)
            }
        }
    }
}

/// Runs the stages' `before_plan` in order: the first decision that is not
/// to go on, or `None` (annotations gathered into `annotations`).
impl Core {
    async fn before_plan(
        &self,
        event: &Event,
        delivery: &Delivery,
        annotations: &mut BTreeMap<String, serde_json::Value>,
    ) -> Option<EventResult> {
        for stage in &self.stages {
            // The built-in gate is asked directly: no boxed future per event.
            let decision = if is_gate(&**stage) {
                prisma_gate(event)
            } else {
                AssertUnwindSafe(stage.before_plan(event, delivery))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| stage_panicked(stage.name()))
            };
            if let Some(r) = apply(decision, annotations) {
                return Some(r);
            }
        }
        None
    }
}

/// Whether `stage` is the built-in [`PrismaAlertGate`] (asked directly,
/// without a boxed future per event).
pub(super) fn is_gate(stage: &dyn super::Stage) -> bool {
    let any: &dyn Any = stage;
    any.is::<PrismaAlertGate>()
}

/// What a stage's decision means for the event: `None` to go on.
pub(super) fn apply(
    decision: StageDecision,
    annotations: &mut BTreeMap<String, serde_json::Value>,
) -> Option<EventResult> {
    match decision {
        StageDecision::Proceed => None,
        StageDecision::Annotate(fields) => {
            annotations.extend(fields);
            None
        }
        StageDecision::Defer {
            after,
            code,
            detail,
        } => {
            let mut r = EventResult::new(AuditDecision::Deferred, code, detail);
            r.defer = Some(after);
            Some(r)
        }
        StageDecision::Refuse {
            reject,
            code,
            detail,
        } => {
            let decision = if reject {
                AuditDecision::Rejected
            } else {
                AuditDecision::Skipped
            };
            Some(EventResult::new(decision, code, detail))
        }
    }
}

/// A stage that panicked: the event fails (and is retried).
pub(super) fn stage_panicked(name: &str) -> StageDecision {
    tracing::error!(stage = name, "stage panicked; the event is failed");
    StageDecision::Defer {
        after: std::time::Duration::from_secs(30),
        code: "stage_failed",
        detail: format!("stage {name} panicked"),
    }
}
