//! Coalescing settle calls: acks into `DeleteMessageBatch` and lease
//! extensions into `ChangeMessageVisibilityBatch`, one background task per
//! kind and queue.
//!
//! An ack batch goes out when it holds 10 entries, when its window ends
//! (sized to the lease: a tenth of the visibility timeout, at most 5 s,
//! unless set with [`with_ack_flush_after`](super::SqsSourceBuilder::with_ack_flush_after)),
//! or at once when nothing else could join it: every delivery the source
//! handed out is settled or waiting in a batch, or the source is closing.
//! Extensions wait at most [`URGENT`] (the lease keeper extends a batch's
//! deliveries together), so a lease is never extended late. Each caller
//! learns the outcome of its own entry.

use super::error::SqsError;
use super::{BACKEND, SQS_BATCH};
use crate::aws::classify;
use crate::telemetry::{ApiCall, StatsSlot};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// The longest an extension waits for others to join its batch.
pub(super) const URGENT: Duration = Duration::from_millis(20);
/// Batch calls of one kind in flight at once.
const IN_FLIGHT: usize = 4;

/// What a settle asks of SQS for one receipt handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Delete the message (ack, or a dead letter that leaves the queue).
    Delete,
    /// Set its visibility timeout (a lease extension).
    Visibility { secs: i32 },
}

/// One settle waiting for its batch.
pub(super) struct Request {
    pub(super) receipt: String,
    pub(super) change: Change,
    pub(super) done: oneshot::Sender<Result<(), SqsError>>,
}

/// What the batchers of one queue share with its source: how many handed-out
/// deliveries may still send a settle, and whether the source is closing.
#[derive(Debug, Default)]
pub(super) struct Outstanding {
    /// Deliveries handed out whose terminal settle (ack, nack, dead letter)
    /// was not asked for yet, and that were not dropped.
    open: AtomicUsize,
    closing: AtomicBool,
    wake: Notify,
}

impl Outstanding {
    pub(super) fn handed_out(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// A delivery will send no more settles (settled, or dropped).
    pub(super) fn finished(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.wake.notify_waiters();
        }
    }

    /// From now on every batch goes out at once.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Whether nothing else can join a batch now.
    fn quiet(&self) -> bool {
        self.closing.load(Ordering::Acquire) || self.open.load(Ordering::Acquire) == 0
    }
}

/// The batching task of one kind of call for one queue.
pub(super) struct Batcher {
    pub(super) client: Client,
    pub(super) queue_url: String,
    pub(super) slot: Arc<StatsSlot>,
    pub(super) window: Duration,
    pub(super) outstanding: Arc<Outstanding>,
}

impl Batcher {
    /// Collects requests into batches until every sender is gone, flushing
    /// what it holds at the end.
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Request>) {
        let this = Arc::new(self);
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let until = Instant::now() + this.window;
            let mut batch = Vec::with_capacity(SQS_BATCH);
            batch.push(first);
            while batch.len() < SQS_BATCH {
                // What is already queued joins without waiting.
                if let Ok(r) = rx.try_recv() {
                    batch.push(r);
                    continue;
                }
                // Registered before looking, so a wake-up in between is not missed.
                let woken = this.outstanding.wake.notified();
                let mut woken = std::pin::pin!(woken);
                woken.as_mut().enable();
                if this.outstanding.quiet() {
                    break;
                }
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => batch.push(r),
                        None => break,
                    },
                    () = woken => {}
                    () = tokio::time::sleep_until(until) => break,
                }
            }
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                return;
            };
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                this.flush(batch).await;
                drop(permit);
            });
        }
    }

    async fn flush(&self, batch: Vec<Request>) {
        let results = match batch.first().map(|r| r.change) {
            Some(Change::Delete) => self.delete(&batch).await,
            Some(Change::Visibility { .. }) => self.change_visibility(&batch).await,
            None => return,
        };
        match results {
            Ok(mut failed) => {
                for (i, r) in batch.into_iter().enumerate() {
                    let outcome = failed.remove(&i).map_or(Ok(()), Err);
                    let _ = r.done.send(outcome);
                }
            }
            Err(e) => {
                for r in batch {
                    let _ = r.done.send(Err(e.clone()));
                }
            }
        }
    }

    /// One `DeleteMessageBatch`: the entries that failed, by index.
    async fn delete(&self, batch: &[Request]) -> Result<HashMap<usize, SqsError>, SqsError> {
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
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::batch_failed(classify(BACKEND, "DeleteMessageBatch", e)))?;
        let ok = out.successful().iter().map(|s| s.id());
        Ok(answer_failures(batch.len(), out.failed(), ok))
    }

    /// One `ChangeMessageVisibilityBatch`: the entries that failed, by index.
    async fn change_visibility(
        &self,
        batch: &[Request],
    ) -> Result<HashMap<usize, SqsError>, SqsError> {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let Change::Visibility { secs, .. } = r.change else {
                    return None;
                };
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.receipt)
                    .visibility_timeout(secs)
                    .build()
                    .ok()
            })
            .collect();
        self.slot
            .count_api_call(ApiCall::SqsChangeMessageVisibilityBatch);
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                SqsError::batch_failed(classify(BACKEND, "ChangeMessageVisibilityBatch", e))
            })?;
        let ok = out.successful().iter().map(|s| s.id());
        Ok(answer_failures(batch.len(), out.failed(), ok))
    }
}

/// [`entry_failures`] over the SDK's failed entries.
fn answer_failures<'a>(
    len: usize,
    failed: &'a [BatchResultErrorEntry],
    ok: impl Iterator<Item = &'a str>,
) -> HashMap<usize, SqsError> {
    let failed = failed.iter().map(|f| {
        (
            f.id(),
            f.code(),
            f.message().unwrap_or(""),
            f.sender_fault(),
        )
    });
    entry_failures(len, failed, ok)
}

/// Reads a batch answer: each entry is successful, failed (with SQS's code),
/// or missing from the answer (an error too: nothing says it happened).
fn entry_failures<'a>(
    len: usize,
    failed: impl Iterator<Item = (&'a str, &'a str, &'a str, bool)>,
    ok: impl Iterator<Item = &'a str>,
) -> HashMap<usize, SqsError> {
    let mut out: HashMap<usize, SqsError> = (0..len).map(|i| (i, SqsError::EntryMissing)).collect();
    for id in ok {
        if let Ok(i) = id.parse::<usize>() {
            out.remove(&i);
        }
    }
    for (id, code, message, sender_fault) in failed {
        if let Ok(i) = id.parse::<usize>() {
            if i < len {
                out.insert(
                    i,
                    SqsError::EntryRefused {
                        code: code.to_owned(),
                        message: message.to_owned(),
                        sender_fault,
                    },
                );
            }
        }
    }
    out
}

/// The window a queue's settles are coalesced over: a tenth of its lease,
/// between 5 ms and 5 s.
pub(super) fn window_for(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(5), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_a_tenth_of_the_lease_within_bounds() {
        assert_eq!(window_for(Duration::from_secs(30)), Duration::from_secs(3));
        assert_eq!(
            window_for(Duration::from_secs(12 * 3600)),
            Duration::from_secs(5)
        );
        assert_eq!(
            window_for(Duration::from_millis(10)),
            Duration::from_millis(5)
        );
    }

    #[test]
    fn entries_not_answered_are_failures() {
        let failed = [("1", "ReceiptHandleIsInvalid", "gone", true)];
        let got = entry_failures(3, failed.into_iter(), ["0"].into_iter());
        assert_eq!(got.len(), 2);
        assert!(got[&1].is_invalid_receipt());
        assert!(matches!(got[&2], SqsError::EntryMissing));
    }

    #[tokio::test]
    async fn outstanding_counts_open_deliveries_and_closing_quiets_it() {
        let o = Outstanding::default();
        assert!(o.quiet());
        o.handed_out();
        o.handed_out();
        assert!(!o.quiet());
        o.finished();
        assert!(!o.quiet());
        o.finished();
        assert!(o.quiet());
        o.handed_out();
        o.close();
        assert!(o.quiet());
    }
}
