//! The lease keeper: while a batch is planned and while a plan runs, extend
//! the deliveries before their leases end, so a slow planner or a slow
//! remediation (a Glue dev endpoint takes minutes) is not redelivered to
//! another worker halfway through.

use crate::source::{Capabilities, Delivery};
use crate::telemetry::{Counter, Stats};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::Instant;

/// When and by how much to extend leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeasePolicy {
    /// How much each extension asks for.
    pub extension: Duration,
    /// How long before the lease ends to extend it.
    pub margin: Duration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy {
            extension: Duration::from_secs(60),
            margin: Duration::from_secs(10),
        }
    }
}

impl LeasePolicy {
    /// The time between extensions: the extension minus the margin, at least
    /// half the extension, at least 100 ms.
    fn interval(&self) -> Duration {
        self.extension
            .saturating_sub(self.margin)
            .max(self.extension / 2)
            .max(Duration::from_millis(100))
    }

    fn first(&self, delivery: &Delivery, caps: &Capabilities) -> Instant {
        let now = Instant::now();
        let by_deadline = delivery.lease_deadline().map(|d| {
            Instant::from_std(d)
                .checked_sub(self.margin.min(caps.lease.unwrap_or(self.margin) / 2))
                .unwrap_or(now)
        });
        let regular = now + self.interval();
        by_deadline.map_or(regular, |d| d.min(regular).max(now))
    }
}

/// Runs `work` (pinned by the caller, so it is not copied into this
/// future), extending the `deliveries`' leases as needed while it runs: one
/// delivery's while its plan runs, a batch's while it is planned (so a slow
/// planner, an API answering in more than a visibility timeout, does not hand
/// its messages to another worker).
///
/// Work that is done at once (a dry run, a refusal) needs no timer; the
/// timer and extension futures live in a separate allocation made only for
/// work that waits, so they do not enlarge every step's future.
pub(crate) async fn keep_all_leased<F: Future>(
    mut work: Pin<&mut F>,
    deliveries: &[&Delivery],
    caps: &Capabilities,
    policy: &LeasePolicy,
    stats: &Stats,
) -> F::Output {
    if !caps.extend || deliveries.is_empty() {
        return work.await;
    }
    match super::poll_once(work.as_mut()).await {
        Some(out) => out,
        None => Box::pin(extend_while(work, deliveries, caps, policy, stats)).await,
    }
}

/// Polls `work` to completion, extending the leases on schedule meanwhile
/// (every delivery at the time the earliest one needs it).
async fn extend_while<F: Future>(
    mut work: Pin<&mut F>,
    deliveries: &[&Delivery],
    caps: &Capabilities,
    policy: &LeasePolicy,
    stats: &Stats,
) -> F::Output {
    let first = deliveries.iter().map(|d| policy.first(d, caps)).min();
    let mut next = first.unwrap_or_else(|| Instant::now() + policy.interval());
    loop {
        tokio::select! {
            out = work.as_mut() => return out,
            () = tokio::time::sleep_until(next) => {
                futures_util::future::join_all(deliveries.iter().map(|delivery| async move {
                    match delivery.extend(policy.extension).await {
                        Ok(()) => stats.incr(Counter::Extended),
                        Err(e) => {
                            stats.incr(Counter::SettleErrors);
                            tracing::warn!(message_id = delivery.message_id(), error = %e, "lease extension failed");
                        }
                    }
                }))
                .await;
                next = Instant::now() + policy.interval();
            }
        }
    }
}
