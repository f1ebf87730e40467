//! The lease keeper: while a plan runs, extend the delivery before its lease
//! ends, so a slow remediation (a Glue dev endpoint takes minutes) is not
//! redelivered to another worker halfway through.

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
/// future), extending `delivery`'s lease as needed while it runs.
///
/// Work that is done at once (a dry run, a refusal) needs no timer; the
/// timer and extension futures live in a separate allocation made only for
/// work that waits, so they do not enlarge every step's future.
pub(crate) async fn keep_leased<F: Future>(
    mut work: Pin<&mut F>,
    delivery: &Delivery,
    caps: &Capabilities,
    policy: &LeasePolicy,
    stats: &Stats,
) -> F::Output {
    if !caps.extend {
        return work.await;
    }
    match super::poll_once(work.as_mut()).await {
        Some(out) => out,
        None => Box::pin(extend_while(work, delivery, caps, policy, stats)).await,
    }
}

/// Polls `work` to completion, extending the lease on schedule meanwhile.
async fn extend_while<F: Future>(
    mut work: Pin<&mut F>,
    delivery: &Delivery,
    caps: &Capabilities,
    policy: &LeasePolicy,
    stats: &Stats,
) -> F::Output {
    let mut next = policy.first(delivery, caps);
    loop {
        tokio::select! {
            out = work.as_mut() => return out,
            () = tokio::time::sleep_until(next) => {
                match delivery.extend(policy.extension).await {
                    Ok(()) => stats.incr(Counter::Extended),
                    Err(e) => {
                        stats.incr(Counter::SettleErrors);
                        tracing::warn!(message_id = delivery.message_id(), error = %e, "lease extension failed");
                    }
                }
                next = Instant::now() + policy.interval();
            }
        }
    }
}
