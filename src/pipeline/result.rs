//! What the pipeline concluded about one event ([`EventResult`]), the
//! reason codes it writes, and small task helpers.

use super::{AuditDecision, AuditStep};
use crate::error::{Error, ErrorKind};
use crate::model::Event;
use crate::plan::Skip;
use crate::source::Delivery;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// Polls `fut` once with the current task's context: its output if it is
/// done, `None` if it waits (its wake-up is then registered with this task).
pub(crate) fn poll_once<F: Future>(
    mut fut: Pin<&mut F>,
) -> impl Future<Output = Option<F::Output>> {
    std::future::poll_fn(move |cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
}

/// The error standing in for a panic in user-supplied code (planner,
/// executor, dedup store, audit sink): the delivery it hit is still settled.
pub(super) fn panicked(component: &'static str, call: &str) -> Error {
    tracing::error!(component, call, "panicked; treating as a permanent failure");
    Error::Backend {
        backend: component,
        message: format!("{component} panicked in {call}"),
        temporary: false,
        source: None,
    }
}

/// The fate of one event of a delivery.
#[derive(Debug)]
pub(super) struct EventResult {
    pub(super) decision: AuditDecision,
    pub(super) code: &'static str,
    pub(super) detail: String,
    pub(super) steps: Vec<AuditStep>,
    pub(super) planner: Option<String>,
    /// The rule the plan counts against (see [`rule_of`](super::rule_of)).
    pub(super) rule: Option<String>,
    /// The finding's resource the plan is bound to (its id, else its name).
    pub(super) resource: Option<String>,
    /// For a failure or an in-progress duplicate: the settle delay to use.
    pub(super) retry_now: bool,
    /// The dedup key held for this event, to complete or release.
    pub(super) claim: Option<String>,
    /// A service failed (the planner's API: outage or misconfiguration; the
    /// dedup store), not the message: nack, never dead-letter, however often
    /// it was delivered.
    pub(super) service_outage: bool,
    /// For a refused command: the class of refusal.
    pub(super) refusal: Option<crate::Refusal>,
    /// For a deferral, or a duplicate whose claim is held elsewhere: when
    /// to try again.
    pub(super) defer: Option<Duration>,
}

impl EventResult {
    pub(super) fn new(
        decision: AuditDecision,
        code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        EventResult {
            decision,
            code,
            detail: detail.into(),
            steps: Vec::new(),
            planner: None,
            rule: None,
            resource: None,
            retry_now: false,
            claim: None,
            service_outage: false,
            refusal: None,
            defer: None,
        }
    }

    /// The same result, naming `e`'s class of refusal if it is one.
    pub(super) fn refused_by(mut self, e: &Error) -> Self {
        self.refusal = e.refusal();
        self
    }

    pub(super) fn skip(skip: &Skip) -> Self {
        Self::new(
            AuditDecision::Skipped,
            skip.reason.code(),
            skip.detail.clone(),
        )
    }

    /// Orders results so the delivery is settled by its worst event.
    pub(super) fn severity(&self) -> u8 {
        match self.decision {
            AuditDecision::Failed => 4,
            AuditDecision::Deferred => 5,
            AuditDecision::Rejected => 3,
            AuditDecision::Executed | AuditDecision::Planned | AuditDecision::Shadow => 2,
            AuditDecision::Skipped if self.code == "duplicate" && self.retry_now => 2,
            AuditDecision::Skipped => 1,
        }
    }
}

/// One delivery moving through the pipeline.
pub(super) struct Work {
    pub(super) delivery: Delivery,
    pub(super) events: Vec<Event>,
    /// Per event: a decision already made (the stages) as `Err`, or `Ok`
    /// with its dedup key (if it has one, claimed when its plan runs) =
    /// needs planning.
    pub(super) gated: Vec<std::result::Result<Option<String>, EventResult>>,
    /// Per event: the fields stages added so far.
    pub(super) annotations: Vec<BTreeMap<String, serde_json::Value>>,
    pub(super) undecodable: Option<String>,
}

pub(super) fn reason_code(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::UnsafeCommand => "unsafe_command",
        ErrorKind::UnmappedAccount => "unmapped_account",
        ErrorKind::Decode => "undecodable",
        ErrorKind::Cancelled => "cancelled",
        _ => "step_failed",
    }
}

/// The result of a plan whose step `index` (0-based) could not run: rejected
/// if the error refuses the command, failed otherwise.
pub(super) fn step_error(index: usize, e: &Error) -> EventResult {
    let decision = if is_rejection(e) {
        AuditDecision::Rejected
    } else {
        AuditDecision::Failed
    };
    let detail = match e {
        Error::UnsafeCommand { code, reason } => format!("{code}: step {}: {reason}", index + 1),
        e => format!("step {}: {e}", index + 1),
    };
    EventResult::new(decision, reason_code(e), detail).refused_by(e)
}

/// An error as the detail after its reason code: an unsafe command's
/// display already starts with `unsafe_command`, which the code says.
pub(super) fn detail_of(e: &Error) -> String {
    match e {
        Error::UnsafeCommand { code, reason } => format!("{code}: {reason}"),
        e => e.to_string(),
    }
}

pub(super) fn is_rejection(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnsafeCommand | ErrorKind::UnmappedAccount | ErrorKind::Decode
    )
}
