//! Amazon SQS as an [`AlertSource`]: long-polled batched receives, acks
//! batched into `DeleteMessageBatch`, visibility changes for nack and extend,
//! and dead letters parked in a configured queue or left to the queue's
//! redrive policy. Feature `sqs`.
//!
//! | verb        | SQS call |
//! |-------------|----------|
//! | receive     | `ReceiveMessage` (up to 10, long poll, `ApproximateReceiveCount` = delivery count) |
//! | ack         | `DeleteMessageBatch`, up to 10 acks per call |
//! | nack(delay), defer(delay) | standard queue with a redrive policy: `SendMessage` of a copy due after the delay + delete, so the receive count starts again (see below); otherwise, or no delay, or a delay over 15 min: `ChangeMessageVisibility(delay)` (at most 12 h), at once |
//! | extend(by)  | `ChangeMessageVisibilityBatch(by)`, the extensions asked for within 20 ms |
//!
//! Acks are coalesced per queue over a window sized to the lease (a tenth
//! of the visibility timeout, at most 5 s); a batch goes out at once when
//! it is full, when every delivery handed out is settled or waiting in a
//! batch, or when the source is [closed](AlertSource::close).
//! | dead-letter | `SendMessage` to the configured dead-letter queue, else to the redrive policy's, + delete; or, when that queue cannot be found, release for the queue's redrive policy; or, without either, delete (the body lives on in the audit record) |
//!
//! # Retries keep their redrive budget
//!
//! SQS counts every receive toward the redrive policy's `maxReceiveCount`,
//! including deferrals and receives that went to a worker that died while
//! its long poll waited. A retried or deferred delivery (with a delay) on a
//! standard queue with a redrive policy is therefore re-queued as a new message carrying its failed attempts
//! ([`ATTEMPTS_ATTRIBUTE`]) and first-seen time ([`FIRST_SEEN_ATTRIBUTE`]);
//! the delivery count is attempts + receives. Deferrals add no attempt.
//! [`SqsSourceBuilder::requeue_retries`] turns this off.
//!
//! # FIFO queues
//!
//! SQS itself hands out no further message of a message group while one of
//! that group is in flight, but a single `ReceiveMessage` may return several
//! messages of the same group, and the engine works on the deliveries of one
//! receive concurrently. So for a FIFO queue (URL ending in `.fifo`) the source
//! hands out one message per group at a time: later messages of a group that
//! arrive in the same receive are held back and handed out, in order, by a
//! later `receive` once the earlier one was acked. If the earlier one is
//! nacked or left to the redrive policy, the held-back ones are released
//! (`ChangeMessageVisibilityBatch` to 0) so they queue up behind it again; if a
//! held-back message's visibility timeout is close to running out it is
//! dropped and SQS redelivers it, still in order. Held-back messages that
//! were never handed out return when their visibility timeout ends. While
//! messages are held back, receives poll for at most 1 s, so a held message is
//! handed out soon after its predecessor was settled.
//!
//! # Cancellation
//!
//! Dropping a `receive` future mid-call (the engine does so when it is
//! cancelled) loses nothing: messages SQS handed to the abandoned call stay
//! invisible until their visibility timeout ends, then are redelivered.

mod batcher;
mod builder;
mod dead_letter;
mod error;
mod fifo;
mod receive;
mod requeue;
mod settle;

pub use builder::{SqsConfigKey, SqsSourceBuilder};
#[cfg(feature = "lambda")]
pub(crate) use dead_letter::{DeadLetter, send_dead_letter};

use super::{AlertSource, Capabilities, DeadLetterMode, Delivery};
use crate::error::Result;
use crate::telemetry::{Stats, StatsSlot};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use batcher::{Outstanding, Request};
use fifo::Groups;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

const BACKEND: &str = "sqs";
/// The most messages one SQS batch call takes.
const SQS_BATCH: usize = 10;
/// The longest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// The longest long-poll wait SQS accepts.
const MAX_WAIT_SECS: u64 = 20;
/// The default long-poll wait: long enough that an idle worker makes six
/// receives a minute, short enough that a worker killed while its receive
/// waited (the receive lives on in SQS and hides what it takes for a
/// visibility timeout, with nobody working on it) leaves a window half as
/// long as the 20 s maximum would (`docs/chaos.md`).
const DEFAULT_WAIT_SECS: u64 = 10;

/// The message attribute carrying the dead-letter reason on messages this
/// source parks in its dead-letter queue.
pub const REASON_ATTRIBUTE: &str = "remediation-dead-letter-reason";
/// The message attribute carrying the original message id on parked messages.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "remediation-source-message-id";

/// The message attribute carrying a re-queued message's failed attempts
/// (see [`SqsSourceBuilder::requeue_retries`]).
pub const ATTEMPTS_ATTRIBUTE: &str = "remediation-attempts";
/// The message attribute carrying when a re-queued message's finding was
/// first received (ms since the epoch).
pub const FIRST_SEEN_ATTRIBUTE: &str = "remediation-first-seen";

/// An Amazon SQS queue as a source of deliveries. Cheap to clone.
///
/// Acks are batched: [`Delivery::ack`] completes once the `DeleteMessageBatch`
/// call carrying it succeeded, and fails (per entry) if SQS refused that
/// entry, so the engine learns of every delete that did not happen. A receipt
/// handle SQS no longer accepts (the message was redelivered, or deleted) is
/// reported as an error, counted in [`invalid_receipts`](Self::invalid_receipts)
/// and logged; it never panics.
#[derive(Clone)]
pub struct SqsSource {
    name: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for SqsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsSource")
            .field("queue_url", &self.shared.queue_url)
            .field("fifo", &self.shared.fifo)
            .field("dead_letter_queue_url", &self.shared.dead_letter_queue_url)
            .field("wait", &self.shared.wait)
            .field("visibility", &self.shared.visibility)
            .finish_non_exhaustive()
    }
}

impl SqsSource {
    /// A builder.
    pub fn builder() -> SqsSourceBuilder {
        SqsSourceBuilder::new()
    }

    /// A source configured from the environment (see
    /// [`SqsSourceBuilder::from_env`]), connected.
    pub async fn from_env() -> Result<SqsSource> {
        SqsSourceBuilder::from_env().build().await
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.shared.queue_url
    }

    /// Whether the queue is a FIFO queue.
    pub fn is_fifo(&self) -> bool {
        self.shared.fifo
    }

    /// The stats the source counts its API calls in: its own, those of
    /// [`with_stats`](SqsSourceBuilder::with_stats), or the engine's once it
    /// was [attached](AlertSource::attach_stats).
    pub fn stats(&self) -> &Arc<Stats> {
        self.shared.slot.get()
    }

    /// How many settle calls SQS refused because the receipt handle was no
    /// longer valid (`ReceiptHandleIsInvalid`, `MessageNotInflight`).
    pub fn invalid_receipts(&self) -> u64 {
        self.shared.invalid_receipts.load(Ordering::Relaxed)
    }
}

struct Shared {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: Option<String>,
    dead_letter_mode: DeadLetterMode,
    wait: Duration,
    visibility: Duration,
    flush_after: Duration,
    fifo: bool,
    /// Retries re-queued rather than made visible again (standard queues).
    requeue: bool,
    /// The redrive policy's dead-letter queue, where this source parks
    /// poison itself when it re-queues retries (a re-queued message's
    /// receive count no longer reaches the policy's limit).
    redrive_target_url: Option<String>,
    /// Where API calls are counted (shared with the ack batcher).
    slot: Arc<StatsSlot>,
    /// The ack batcher, started on first use (it needs a runtime).
    deleter: OnceLock<mpsc::Sender<Request>>,
    /// The batcher of visibility changes (nack, extend, release).
    visibility_changer: OnceLock<mpsc::Sender<Request>>,
    /// Deliveries that may still send a settle; closing.
    outstanding: Arc<Outstanding>,
    groups: Mutex<Groups>,
    invalid_receipts: AtomicU64,
}

#[async_trait]
impl AlertSource for SqsSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        self.shared.receive(max).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extend: true,
            redelivery: true,
            dead_letter: self.shared.dead_letter_mode,
            lease: Some(self.shared.visibility),
            max_batch: SQS_BATCH,
        }
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.shared.slot.attach(stats);
    }

    /// Sends what the batchers hold at once; from now on every settle goes
    /// out without waiting for others.
    async fn close(&self) {
        self.shared.outstanding.close();
    }
}
