//! The dedup claim around a plan's run: taken when the plan is about to run
//! (not when its delivery is received), kept alive while its steps run,
//! and carrying the steps an earlier, failed run already did.
//!
//! A store that renews claims ([`DedupStore::renews`]) gets short claims
//! ([`EngineConfig::claim_lease`](super::EngineConfig::claim_lease), 60 s)
//! renewed every third of their length while the steps run, so a worker
//! that dies frees its claims within a minute. Each mutating step that
//! succeeds is recorded under the claim ([`DedupStore::record_step`]); a
//! later claim of the same finding skips the steps recorded done, from the
//! first on, and goes on from the first step not done. What remains is the
//! time between a step's end and its record (one store write, milliseconds):
//! a worker that dies within it runs that step again on the retry.

use super::result::*;
use super::{AuditDecision, Claim, ClaimDetail, Core, DedupStore};
use crate::plan::{SkipReason, Step};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// A claim this run holds.
pub(super) struct Held {
    /// The dedup key.
    pub(super) key: String,
    /// How long each renewal lasts (zero: the store does not renew).
    pub(super) renew_for: Duration,
    /// The step ids recorded done by earlier runs.
    pub(super) steps_done: Vec<String>,
}

impl Core {
    /// How long claims last in the store this run writes.
    fn claim_lease(&self, store: &dyn DedupStore) -> Duration {
        if store.renews() {
            self.config.claim_lease
        } else {
            self.config.dedup_lease
        }
    }

    /// Takes the claim on `key` for a plan about to run: `Ok` with the held
    /// claim, or `Err` with the decision (a duplicate, or the store is down).
    pub(super) async fn claim_for_run(
        &self,
        key: String,
    ) -> std::result::Result<Held, EventResult> {
        let store = self.dedup_store();
        let lease = self.claim_lease(store);
        let claim = AssertUnwindSafe(store.claim_detailed(&key, lease))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(panicked("dedup store", "claim")));
        match claim {
            Ok(ClaimDetail {
                claim: Claim::Claimed,
                steps_done,
                ..
            }) => Ok(Held {
                key,
                renew_for: if store.renews() {
                    lease
                } else {
                    Duration::ZERO
                },
                steps_done,
            }),
            Ok(ClaimDetail {
                claim: Claim::AlreadyDone,
                ..
            }) => Err(EventResult::new(
                AuditDecision::Skipped,
                SkipReason::Duplicate.code(),
                "already remediated",
            )),
            Ok(ClaimDetail { held_for, .. }) => {
                // Another delivery holds it: come back when its claim ends at
                // the latest, not at once (each receive may count towards the
                // queue's redrive policy). Skipped is never dead-lettered.
                let mut r = EventResult::new(
                    AuditDecision::Skipped,
                    SkipReason::Duplicate.code(),
                    "being remediated by another delivery; retry later",
                );
                r.retry_now = true;
                r.defer = held_for.map(|d| d.max(Duration::from_secs(1)));
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

    /// Records that step `id` of the plan under `held` succeeded.
    pub(super) async fn record_step(&self, held: &Held, id: &str) {
        let recorded = AssertUnwindSafe(self.dedup_store().record_step(&held.key, id))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(panicked("dedup store", "record_step")));
        if let Err(e) = recorded {
            // The step stays unrecorded: a retry would run it again.
            tracing::warn!(key = held.key, error = %e, "recording a done step failed");
        }
    }

    /// Runs `work` while renewing `held`'s claim every third of its lease:
    /// the output, and whether the claim was found lost (taken over after it
    /// lapsed, or completed elsewhere) meanwhile.
    pub(super) async fn keep_claimed<F: Future>(
        &self,
        mut work: Pin<&mut F>,
        held: Option<&Held>,
    ) -> (F::Output, bool) {
        let Some(held) = held.filter(|h| !h.renew_for.is_zero()) else {
            return (work.await, false);
        };
        // Work done at once (a dry run, a refusal) needs no renewal timer.
        if let Some(out) = super::poll_once(work.as_mut()).await {
            return (out, false);
        }
        let every = (held.renew_for / 3).max(Duration::from_millis(100));
        let mut next = Instant::now() + every;
        let mut lost = false;
        loop {
            tokio::select! {
                out = work.as_mut() => return (out, lost),
                () = tokio::time::sleep_until(next) => {
                    let store = self.dedup_store();
                    let renewed = AssertUnwindSafe(store.renew(&held.key, held.renew_for))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err(panicked("dedup store", "renew")));
                    match renewed {
                        Ok(true) => {}
                        Ok(false) => {
                            lost = true;
                            tracing::error!(key = held.key, "dedup claim lost while its steps ran");
                        }
                        // The claim holds until its lease ends; the next
                        // renewal may get through.
                        Err(e) => tracing::warn!(key = held.key, error = %e, "renewing a dedup claim failed"),
                    }
                    next = Instant::now() + every;
                }
            }
        }
    }
}

/// A step's id for the step records: its position and a stable 64-bit
/// FNV-1a hash of its argv and files, so a retried plan skips a step only if
/// it is the same command at the same place.
pub(super) fn step_id(index: usize, step: &Step) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        // A separator no argument can hold, so ["ab","c"] ≠ ["a","bc"].
        h ^= 0xff;
        h = h.wrapping_mul(PRIME);
    };
    for arg in step.command.argv() {
        eat(arg.as_bytes());
    }
    for file in &step.files {
        eat(file.name().as_bytes());
        eat(file.contents().as_bytes());
    }
    format!("{index}:{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Command;

    fn step(argv: &[&str]) -> Step {
        Step::new(Command::new(argv[0], argv[1..].iter().copied()))
    }

    #[test]
    fn step_ids_tell_commands_and_places_apart() {
        let a = step(&["aws", "iam", "x", "--user-name", "a"]);
        assert_eq!(step_id(0, &a), step_id(0, &a.clone()));
        assert_ne!(step_id(0, &a), step_id(1, &a));
        let split = step(&["aws", "iam", "x", "--user-name", "b"]);
        assert_ne!(step_id(0, &a), step_id(0, &split));
        assert_ne!(
            step_id(0, &step(&["ab", "c"])),
            step_id(0, &step(&["a", "bc"]))
        );
    }
}
