//! Settling a delivery: acks batched into `DeleteMessageBatch` by a
//! flusher task, nack and extend as `ChangeMessageVisibility`, and the
//! choice of how a dead letter leaves the queue.

use super::error::{SqsError, is_invalid_receipt};
use super::{BACKEND, DELETES_IN_FLIGHT, MAX_VISIBILITY_SECS, SQS_BATCH, Shared};
use crate::aws::classify;
use crate::error::{Error, Result};
use crate::source::{DeadLetterMode, DeadLetterOutcome, Settle};
use crate::telemetry::{ApiCall, StatsSlot};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Settles one received message by its receipt handle.
pub(super) struct SqsSettle {
    pub(super) shared: Arc<Shared>,
    pub(super) receipt: String,
    pub(super) message_id: String,
    pub(super) group: Option<String>,
    /// The body, kept (shared, not copied) when dead letters are sent to a queue.
    pub(super) body: Option<Bytes>,
    /// Set once ack, nack or dead-letter ran (FIFO bookkeeping on drop).
    pub(super) settled: AtomicBool,
}

impl Drop for SqsSettle {
    fn drop(&mut self) {
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
    async fn done(&self, returned: bool) {
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
        let outcome = self.shared.delete(&self.receipt).await;
        // Deleted or not, this delivery is over: a failed delete means SQS
        // redelivers the message, after any held-back successor was handed
        // out — the same as SQS does when a visibility timeout lapses.
        self.done(outcome.is_err()).await;
        outcome
    }

    async fn nack(&self, retry_after: Duration) -> Result<()> {
        let outcome = self
            .shared
            .change_visibility(&self.receipt, ceil_secs(retry_after))
            .await;
        self.done(true).await;
        outcome
    }

    async fn extend(&self, by: Duration) -> Result<()> {
        self.shared
            .change_visibility(&self.receipt, ceil_secs(by).max(1))
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
            (None, DeadLetterMode::Redrive) => {
                // Release it now: each receive counts towards the redrive
                // policy's maxReceiveCount, which moves it to the DLQ.
                let outcome = self.shared.change_visibility(&self.receipt, 0).await;
                self.done(true).await;
                outcome.map(|()| DeadLetterOutcome::LeftToRedrive)
            }
            (None, _) => {
                // Nowhere to park it: released, it would come back forever.
                // Delete it; the engine keeps the body in the audit record.
                let outcome = self.shared.delete(&self.receipt).await;
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

    fn deleter(self: &Arc<Self>) -> mpsc::Sender<AckRequest> {
        self.deleter
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(1024);
                let flusher = Flusher {
                    client: self.client.clone(),
                    queue_url: self.queue_url.clone(),
                    slot: Arc::clone(&self.slot),
                    flush_after: self.flush_after,
                    in_flight: Arc::new(Semaphore::new(DELETES_IN_FLIGHT)),
                };
                // The task ends when every sender (this source and its
                // deliveries) is gone, after flushing what it holds.
                tokio::spawn(flusher.run(rx));
                tx
            })
            .clone()
    }

    pub(super) async fn delete(self: &Arc<Self>, receipt: &str) -> Result<()> {
        let (done, result) = oneshot::channel();
        let request = AckRequest {
            receipt: receipt.to_owned(),
            done,
        };
        self.deleter()
            .send(request)
            .await
            .map_err(|_| SqsError::BatcherStopped)?;
        let outcome = result.await.map_err(|_| SqsError::BatcherStopped)?;
        outcome.map_err(|e| {
            let invalid = e.is_invalid_receipt();
            self.settle_error(e, invalid)
        })
    }

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

/// One ack waiting for its batch.
pub(super) struct AckRequest {
    receipt: String,
    done: oneshot::Sender<Result<(), SqsError>>,
}

/// Collects acks into `DeleteMessageBatch` calls: a batch goes out when it
/// holds 10 entries or `flush_after` after its first entry arrived.
struct Flusher {
    client: Client,
    queue_url: String,
    slot: Arc<StatsSlot>,
    flush_after: Duration,
    in_flight: Arc<Semaphore>,
}

impl Flusher {
    async fn run(self, mut rx: mpsc::Receiver<AckRequest>) {
        let this = Arc::new(self);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + this.flush_after;
            while batch.len() < SQS_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(request)) => batch.push(request),
                    Ok(None) | Err(_) => break,
                }
            }
            let permit = Arc::clone(&this.in_flight).acquire_owned().await;
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                this.flush(batch).await;
                drop(permit);
            });
        }
    }

    async fn flush(&self, batch: Vec<AckRequest>) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.receipt)
                    .build()
                    .ok()
            })
            .collect();
        self.slot.count_api_call(ApiCall::SqsDeleteMessageBatch);
        let sent = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let e = SqsError::batch_failed(classify(BACKEND, "DeleteMessageBatch", e));
                for r in batch {
                    let _ = r.done.send(Err(e.clone()));
                }
                return;
            }
        };
        let mut failed: HashMap<&str, _> = out.failed().iter().map(|f| (f.id(), f)).collect();
        let ok: HashSet<&str> = out.successful().iter().map(|s| s.id()).collect();
        for (i, r) in batch.into_iter().enumerate() {
            let id = i.to_string();
            let result = if ok.contains(id.as_str()) {
                Ok(())
            } else if let Some(f) = failed.remove(id.as_str()) {
                Err(SqsError::EntryRefused {
                    code: f.code().to_owned(),
                    message: f.message().unwrap_or("").to_owned(),
                    sender_fault: f.sender_fault(),
                })
            } else {
                Err(SqsError::EntryMissing)
            };
            let _ = r.done.send(result);
        }
    }
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
