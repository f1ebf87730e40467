//! Settling a peek-locked message through its lock URI ([`Settle`] for
//! [`ServiceBusSettle`]): complete, unlock (now or after a delay), renew —
//! in the background while an extension or a nack delay outlasts one lock —
//! and dead letters forwarded or left to the entity's `MaxDeliveryCount`.

use super::client::Shared;
use super::error::ServiceBusError;
use crate::error::Result;
use crate::source::{DeadLetterOutcome, Settle};
use async_trait::async_trait;
use azure_core::Method;
use bytes::Bytes;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A nack delay beyond this is not stretched by renewing the lock; the lock
/// lapses and the message comes back after the entity's lock duration.
const MAX_NACK_STRETCH: Duration = Duration::from_secs(15 * 60);

/// Settles one peek-locked message through its lock URI.
pub(super) struct ServiceBusSettle {
    pub(super) shared: Arc<Shared>,
    pub(super) lock_url: Option<String>,
    pub(super) message_id: String,
    /// The body, kept (shared, not copied) when dead letters are forwarded.
    pub(super) body: Option<Bytes>,
    /// The entity's lock duration as seen on this message.
    pub(super) lock_for: Duration,
    /// When the current lock ends (local clock).
    pub(super) deadline: Mutex<Instant>,
    /// Stops the background renewals of an `extend` longer than one lock.
    pub(super) keeper: Mutex<Option<CancellationToken>>,
}

impl fmt::Debug for ServiceBusSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lock URI holds the lock token: not printed.
        f.debug_struct("ServiceBusSettle")
            .field("entity", &self.shared.entity)
            .field("message_id", &self.message_id)
            .field("lock_for", &self.lock_for)
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceBusSettle {
    fn drop(&mut self) {
        self.stop_keeper();
    }
}

impl ServiceBusSettle {
    fn url(&self) -> Result<&str> {
        self.lock_url.as_deref().ok_or_else(|| {
            ServiceBusError::NoLock {
                message_id: self.message_id.clone(),
                namespace: self.shared.namespace.clone(),
                entity: self.shared.entity.clone(),
            }
            .into()
        })
    }

    fn stop_keeper(&self) {
        if let Some(token) = self.keeper.lock().ok().and_then(|mut k| k.take()) {
            token.cancel();
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline
            .lock()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    fn renewed_now(&self) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Instant::now() + self.lock_for;
        }
    }
}

/// Renews the lock at `url` so that it lasts until `until`: one renewal
/// every half lock while more than a lock is left, then one last renewal a
/// lock before `until` (the lock then lapses at about `until`). Stops early
/// when `stop` fires or a renewal fails (the lock then lapses on its own).
async fn renew_until(
    shared: Arc<Shared>,
    url: String,
    lock_for: Duration,
    mut lock_ends: Instant,
    until: Instant,
    stop: Option<CancellationToken>,
) {
    let step = (lock_for / 2).max(Duration::from_millis(200));
    loop {
        let now = Instant::now();
        if lock_ends >= until {
            return;
        }
        // Renew when `until` is within one lock of now, or half a lock before
        // the current lock ends, whichever comes first.
        let last = until.checked_sub(lock_for).unwrap_or(now);
        let next = last
            .min(lock_ends.checked_sub(step).unwrap_or(now))
            .max(now);
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
        match &stop {
            Some(stop) => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = sleep => {}
                }
            }
            None => sleep.await,
        }
        if let Err(e) = shared.on_lock("renew", Method::Post, &url).await {
            tracing::warn!(entity = %shared.entity, error = %e, "background lock renewal failed; the lock lapses");
            return;
        }
        lock_ends = Instant::now() + lock_for;
    }
}

#[async_trait]
impl Settle for ServiceBusSettle {
    async fn ack(&self) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?;
        self.shared.on_lock("complete", Method::Delete, url).await
    }

    /// `retry_after` zero: unlock now. Within the remaining lock: unlock
    /// when it has passed. Longer: keep the lock (renewing it) and let it
    /// lapse when `retry_after` is over, so the message is not redelivered
    /// early; beyond 15 minutes the lock just lapses. Waiting happens in a
    /// background task; `nack` returns at once.
    async fn nack(&self, retry_after: Duration) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        if retry_after.is_zero() {
            return self.shared.on_lock("unlock", Method::Put, &url).await;
        }
        let remaining = self.remaining();
        let shared = Arc::clone(&self.shared);
        if retry_after < remaining {
            tokio::spawn(async move {
                tokio::time::sleep(retry_after).await;
                if let Err(e) = shared.on_lock("unlock", Method::Put, &url).await {
                    tracing::debug!(error = %e, "delayed unlock failed; the lock lapses instead");
                }
            });
        } else if retry_after <= MAX_NACK_STRETCH {
            let now = Instant::now();
            let (lock_for, lock_ends) = (self.lock_for, now + remaining);
            tokio::spawn(renew_until(
                shared,
                url,
                lock_for,
                lock_ends,
                now + retry_after,
                None,
            ));
        }
        Ok(())
    }

    /// Renews the lock now (Service Bus renews for the entity's lock
    /// duration); when `by` is longer, keeps renewing in the background until
    /// `by` is covered or the delivery is settled or dropped.
    async fn extend(&self, by: Duration) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        self.shared.on_lock("renew", Method::Post, &url).await?;
        self.renewed_now();
        if by > self.lock_for {
            let stop = CancellationToken::new();
            if let Ok(mut k) = self.keeper.lock() {
                *k = Some(stop.clone());
            }
            let now = Instant::now();
            tokio::spawn(renew_until(
                Arc::clone(&self.shared),
                url,
                self.lock_for,
                now + self.lock_for,
                now + by,
                Some(stop),
            ));
        }
        Ok(())
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        match (&self.shared.dead_letter_queue, &self.body) {
            (Some(queue), Some(body)) => {
                self.shared
                    .forward(queue, &self.message_id, body, reason)
                    .await?;
                self.shared
                    .on_lock("complete", Method::Delete, &url)
                    .await?;
                Ok(DeadLetterOutcome::Parked)
            }
            _ => {
                // Abandon: each delivery counts towards MaxDeliveryCount,
                // after which Service Bus moves it to $DeadLetterQueue.
                self.shared.on_lock("unlock", Method::Put, &url).await?;
                Ok(DeadLetterOutcome::LeftToRedrive)
            }
        }
    }
}
