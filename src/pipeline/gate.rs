//! The front of a batch: decoding each delivery and the stages' look before
//! planning (the Prisma alert gate first). The dedup claim is taken later,
//! when a plan is about to run (`claim.rs`).

use super::result::*;
use super::stage::{StageDecision, prisma_gate};
use super::{AuditDecision, Core, PrismaAlertGate};
use crate::model::{Event, decode};
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
        // Decoding needs no await: only the stages may.
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
                    // Claimed when its plan runs (`claim.rs`), not now.
                    None => Ok(event.dedup_key()),
                };
                work.events.push(event);
                work.gated.push(gated);
                work.annotations.push(annotations);
            }
            work
        }
    }

    /// Runs the stages' `before_plan` in order: the first decision that is
    /// not to go on, or `None` (annotations gathered into `annotations`).
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
        StageDecision::Shadow { detail } => {
            Some(EventResult::new(AuditDecision::Shadow, "shadow", detail))
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
