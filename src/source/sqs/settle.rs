//! Settling a delivery: acks and extensions sent through the queue's
//! batchers (`batcher.rs`), nacks and releases as single
//! `ChangeMessageVisibility` calls, and the choice of how a dead letter
//! leaves the queue.

use super::batcher::{Batcher, Change, Request, URGENT};
use super::error::{SqsError, is_invalid_receipt};
use super::{BACKEND, MAX_VISIBILITY_SECS, Shared};
use crate::aws::classify;
use crate::error::{Error, Result};
use crate::source::{DeadLetterMode, DeadLetterOutcome, Settle};
use crate::telemetry::ApiCall;
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Settles one received message by its receipt handle.
pub(super) struct SqsSettle {
    pub(super) shared: Arc<Shared>,
    pub(super) receipt: String,
    pub(super) message_id: String,
    pub(super) group: Option<String>,
    /// The body, kept (shared, not copied) when dead letters are sent to a
    /// queue or retries are re-queued.
    pub(super) body: Option<Bytes>,
    /// What a re-queued copy carries (`requeue.rs`); `None` when retries
    /// change the visibility instead (FIFO queues, re-queueing off).
    pub(super) carried: Option<super::requeue::Carried>,
    /// Set once ack, nack or dead-letter ran (FIFO bookkeeping on drop).
    pub(super) settled: AtomicBool,
    /// Set while this delivery may still send a terminal settle (counted in
    /// the batchers' `Outstanding`).
    pub(super) open: AtomicBool,
}

impl Drop for SqsSettle {
    fn drop(&mut self) {
        self.leave();
        // A FIFO delivery dropped unsettled comes back when its visibility
        // timeout ends; its held-back successors must not overtake it, so they
        // are forgotten too (SQS redelivers them after it, in order).
        if self.shared.fifo && !self.settled.load(Ordering::Relaxed) {
            if let Some(group) = &self.group {
                let mut g = self.shared.groups();
                g.busy.remove(group);
                g.held.remove(group);
                g.order.retain(|o| o != group);
            }
        }
    }
}

impl fmt::Debug for SqsSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The receipt handle is a bearer token for this message: not printed.
        f.debug_struct("SqsSettle")
            .field("message_id", &self.message_id)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl SqsSettle {
    /// Delivers the message again after `retry_after`: re-queued with
    /// `attempts` (see `requeue.rs`), or, for a release at once or when
    /// that cannot be done, by a visibility change.
    async fn retry(&self, retry_after: Duration, attempts: u32) -> Result<()> {
        // A release for now (a shutdown, the end of a dry run's pass) is a
        // visibility change: one-off, and it leaves the message as it was.
        let requeued = if retry_after.is_zero() {
            Ok(false)
        } else {
            self.requeue(retry_after, attempts).await
        };
        match requeued {
            Ok(true) => {
                self.done(true).await;
                return Ok(());
            }
            Ok(false) => {}
            Err(e) => {
                self.done(true).await;
                return Err(e);
            }
        }
        self.leave();
        let outcome = self
            .shared
            .change_visibility(&self.receipt, ceil_secs(retry_after))
            .await;
        self.done(true).await;
        outcome
    }

    /// This delivery sends no further terminal settle: a batch waiting for
    /// it need not wait any longer.
    fn leave(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            self.shared.outstanding.finished();
        }
    }

    /// Deletes the message through the batcher; the delivery leaves the
    /// open count once its entry is queued (so a batch waiting for "every
    /// open delivery" does not go out just before it arrives).
    pub(super) async fn delete(&self) -> Result<()> {
        self.shared
            .batched(&self.receipt, Change::Delete, || self.leave())
            .await
    }

    async fn done(&self, returned: bool) {
        self.leave();
        self.settled.store(true, Ordering::Relaxed);
        if self.shared.fifo {
            if let Some(group) = &self.group {
                self.shared.group_done(group, returned).await;
            }
        }
    }
}

#[async_trait]
impl Settle for SqsSettle {
    async fn ack(&self) -> Result<()> {
        let outcome = self.delete().await;
        // Deleted or not, this delivery is over: a failed delete means SQS
        // redelivers the message, after any held-back successor was handed
        // out — the same as SQS does when a visibility timeout lapses.
        self.done(outcome.is_err()).await;
        outcome
    }

    async fn nack(&self, retry_after: Duration) -> Result<()> {
        // A failed attempt: the copy counts one more.
        let attempts = self
            .carried
            .as_ref()
            .map_or(0, |c| c.attempts.saturating_add(1));
        self.retry(retry_after, attempts).await
    }

    async fn defer(&self, retry_after: Duration) -> Result<()> {
        // Not an attempt: the copy counts as many as this one did.
        let attempts = self.carried.as_ref().map_or(0, |c| c.attempts);
        self.retry(retry_after, attempts).await
    }

    async fn extend(&self, by: Duration) -> Result<()> {
        self.shared
            .extend_visibility(&self.receipt, ceil_secs(by).max(1))
            .await
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        match (
            &self.shared.dead_letter_queue_url,
            self.shared.dead_letter_mode,
        ) {
            (Some(dlq), _) => {
                let outcome = self.park(dlq, reason).await;
                self.done(outcome.is_err()).await;
                outcome.map(|()| DeadLetterOutcome::Parked)
            }
            // Retries are re-queued, so receive counts start again and the
            // policy would be slow to move it: park it in the policy's
            // queue now.
            (None, DeadLetterMode::Redrive) if self.shared.redrive_target_url.is_some() => {
                let dlq = self
                    .shared
                    .redrive_target_url
                    .as_deref()
                    .unwrap_or_default();
                let outcome = self.park(dlq, reason).await;
                self.done(outcome.is_err()).await;
                outcome.map(|()| DeadLetterOutcome::Parked)
            }
            (None, DeadLetterMode::Redrive) => {
                // Release it now: each receive counts towards the redrive
                // policy's maxReceiveCount, which moves it to the DLQ.
                self.leave();
                let outcome = self.shared.change_visibility(&self.receipt, 0).await;
                self.done(true).await;
                outcome.map(|()| DeadLetterOutcome::LeftToRedrive)
            }
            (None, _) => {
                // Nowhere to park it: released, it would come back forever.
                // Delete it; the engine keeps the body in the audit record.
                let outcome = self.delete().await;
                self.done(outcome.is_err()).await;
                outcome.map(|()| DeadLetterOutcome::AuditOnly)
            }
        }
    }
}

impl Shared {
    /// The error of a settle call; one refused for its receipt handle
    /// (`invalid_receipt`, decided on the service's error code) is counted
    /// and logged.
    fn settle_error(&self, e: impl Into<Error>, invalid_receipt: bool) -> Error {
        let e = e.into();
        if invalid_receipt {
            self.invalid_receipts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = %self.queue_url, error = %e, "receipt handle no longer valid");
        }
        e
    }

    /// The batcher of `kind` (deletes or visibility changes), started on
    /// first use. Its task ends when every sender (this source and its
    /// deliveries) is gone, after flushing what it holds.
    fn batcher(&self, deletes: bool) -> mpsc::Sender<Request> {
        let cell = if deletes {
            &self.deleter
        } else {
            &self.visibility_changer
        };
        cell.get_or_init(|| {
            let (tx, rx) = mpsc::channel(1024);
            let batcher = Batcher {
                client: self.client.clone(),
                queue_url: self.queue_url.clone(),
                slot: Arc::clone(&self.slot),
                window: if deletes { self.flush_after } else { URGENT },
                outstanding: Arc::clone(&self.outstanding),
            };
            tokio::spawn(batcher.run(rx));
            tx
        })
        .clone()
    }

    /// Sends `change` for `receipt` through its batcher and waits for the
    /// outcome of this entry.
    async fn batched(&self, receipt: &str, change: Change, queued: impl FnOnce()) -> Result<()> {
        let (done, result) = oneshot::channel();
        let request = Request {
            receipt: receipt.to_owned(),
            change,
            done,
        };
        let sent = self.batcher(change == Change::Delete).send(request).await;
        queued();
        sent.map_err(|_| SqsError::BatcherStopped)?;
        let outcome = result.await.map_err(|_| SqsError::BatcherStopped)?;
        outcome.map_err(|e| {
            let invalid = e.is_invalid_receipt();
            self.settle_error(e, invalid)
        })
    }

    /// Extends the message's lease: batched into
    /// `ChangeMessageVisibilityBatch` with the extensions asked for within
    /// 20 ms (the lease keeper extends a batch's deliveries together).
    pub(super) async fn extend_visibility(&self, receipt: &str, secs: u64) -> Result<()> {
        let change = Change::Visibility {
            secs: visibility_secs(secs),
        };
        self.batched(receipt, change, || {}).await
    }

    /// Sets the message's visibility timeout now, alone
    /// (`ChangeMessageVisibility`): a nack or a release decides when this
    /// one message comes back, and does not wait for others.
    pub(super) async fn change_visibility(&self, receipt: &str, secs: u64) -> Result<()> {
        self.slot
            .count_api_call(ApiCall::SqsChangeMessageVisibility);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(secs))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let e = classify(BACKEND, "ChangeMessageVisibility", e);
                let invalid = is_invalid_receipt(e.code());
                self.settle_error(e, invalid)
            })
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

pub(super) fn visibility_secs(secs: u64) -> i32 {
    i32::try_from(secs.min(MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_and_cap() {
        assert_eq!(ceil_secs(Duration::from_millis(1100)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(100_000), 43_200);
    }
}
