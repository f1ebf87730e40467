//! The front of a batch: decoding each delivery, the Prisma alert gate
//! (status, age), and the dedup claim that lets an event be planned.

use super::result::*;
use super::*;

impl Inner {
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
                let gated = match gate(&event) {
                    Some(skip) => Err(EventResult::skip(&skip)),
                    None => self.claim(&event).await,
                };
                work.events.push(event);
                work.gated.push(gated);
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

/// The Prisma alert gate: test notifications, alerts no longer open and
/// alerts marked not remediable are skipped before anything is claimed or
/// planned.
fn gate(event: &Event) -> Option<Skip> {
    let Event::PrismaAlert(alert) = event else {
        return None;
    };
    if alert.is_test_notification() {
        return Some(Skip::new(
            SkipReason::TestNotification,
            "Prisma Cloud test notification",
        ));
    }
    if !alert.is_open() {
        return Some(Skip::new(
            SkipReason::NotOpen,
            format!("alert status is {}", alert.status().unwrap_or("unknown")),
        ));
    }
    if alert.remediable() == Some(false) {
        return Some(Skip::new(
            SkipReason::NotRemediable,
            "metadata.remediable is false",
        ));
    }
    None
}
