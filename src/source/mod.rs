//! Where deliveries come from: the [`AlertSource`] trait, the [`Delivery`] it
//! hands out, and the one-shot settle verbs (ack, nack, extend, dead-letter).
//!
//! Core sources are always built: [`MemorySource`] (an in-process queue with
//! real lease, redelivery and dead-letter semantics) and [`FileSource`] (JSON
//! lines, CloudTrail `Records` files, gzip, stdin). Cloud queues live behind
//! features, each backend in a module of its own that holds all its items:
//! [`sqs`] (feature `sqs`), [`servicebus`] (feature `servicebus`),
//! [`pubsub`] (feature `pubsub`). [`from_spec`] opens any of them from a
//! `--source` style spec.

mod budget;
mod file;
mod memory;
#[cfg(feature = "pubsub")]
pub mod pubsub;
#[cfg(feature = "servicebus")]
pub mod servicebus;
mod spec;
#[cfg(feature = "sqs")]
pub mod sqs;

use crate::error::Result;
use crate::telemetry::Stats;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use file::{DEFAULT_READ_AHEAD_BYTES, FileFormat, FileSource, FileSourceBuilder};
pub use memory::{DeadLetter, MemorySource, MemorySourceBuilder};
pub use spec::from_spec;

/// What a source can do natively; the engine falls back where it cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Whether [`Delivery::extend`] does anything (the lease can be renewed).
    pub extend: bool,
    /// Whether a nacked delivery comes back (a file source does not redeliver).
    pub redelivery: bool,
    /// How dead-lettering works on this source.
    pub dead_letter: DeadLetterMode,
    /// How long a delivery stays leased before the source redelivers it, if it does.
    pub lease: Option<Duration>,
    /// The most deliveries one `receive` call can return.
    pub max_batch: usize,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            extend: false,
            redelivery: false,
            dead_letter: DeadLetterMode::AuditOnly,
            lease: None,
            max_batch: 10,
        }
    }
}

/// How a source parks poison messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterMode {
    /// The source moves the message to a dead-letter queue itself.
    Native,
    /// The source's redrive policy parks the message after its maximum delivery count.
    Redrive,
    /// The source cannot park messages: dead-lettering acks, and the body lives on
    /// only in the audit record.
    AuditOnly,
}

/// How a dead-letter request was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterOutcome {
    /// The message is in a dead-letter queue.
    Parked,
    /// The message was released for redelivery; the queue's redrive policy parks it.
    LeftToRedrive,
    /// The message was acked; its body is only in the audit record.
    AuditOnly,
}

/// The settle verbs a source implements for one delivery. Called at most once
/// per delivery for `ack`/`nack`/`dead_letter` (the [`Delivery`] API consumes
/// itself), any number of times for `extend`.
#[async_trait]
pub trait Settle: Send + Sync + fmt::Debug {
    /// Done: never deliver again.
    async fn ack(&self) -> Result<()>;
    /// Deliver again, no sooner than `retry_after`.
    async fn nack(&self, retry_after: Duration) -> Result<()>;
    /// Still working: keep the lease for another `by`.
    async fn extend(&self, by: Duration) -> Result<()>;
    /// Poison: park it with `reason`.
    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome>;
    /// Deliver again, no sooner than `retry_after`, for a reason that is
    /// not a failed attempt: a guardrail's deferral, another worker's claim,
    /// a shutdown before the work started. A source that can should not
    /// count this delivery toward dead-lettering (the SQS source re-queues
    /// the message so that its receive count starts again). The default is
    /// [`nack`](Self::nack).
    async fn defer(&self, retry_after: Duration) -> Result<()> {
        self.nack(retry_after).await
    }
}

/// A settle handle that does nothing, for sources without acknowledgements
/// (files, stdin) and for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopSettle;

#[async_trait]
impl Settle for NoopSettle {
    async fn ack(&self) -> Result<()> {
        Ok(())
    }
    async fn nack(&self, _retry_after: Duration) -> Result<()> {
        Ok(())
    }
    async fn extend(&self, _by: Duration) -> Result<()> {
        Ok(())
    }
    async fn dead_letter(&self, _reason: &str) -> Result<DeadLetterOutcome> {
        Ok(DeadLetterOutcome::AuditOnly)
    }
}

/// One message handed out by a source, with its body, metadata and a one-shot
/// settle handle. `ack`, `nack` and `dead_letter` consume the delivery, so a
/// delivery cannot be settled twice.
pub struct Delivery {
    body: Bytes,
    message_id: String,
    delivery_count: u32,
    attempt: Option<u32>,
    first_seen: Option<SystemTime>,
    attributes: BTreeMap<String, String>,
    truncated_at: Option<usize>,
    /// The read-ahead bytes this body holds, given back when it is dropped.
    budget: Option<budget::BudgetGuard>,
    lease_deadline: Mutex<Option<Instant>>,
    settle: Arc<dyn Settle>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message_id", &self.message_id)
            .field("delivery_count", &self.delivery_count)
            .field("body_len", &self.body.len())
            .field("attributes", &self.attributes)
            .field("truncated_at", &self.truncated_at)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A delivery of `body` under `message_id`, settled through `settle`.
    pub fn new(
        message_id: impl Into<String>,
        body: impl Into<Bytes>,
        settle: Arc<dyn Settle>,
    ) -> Self {
        Delivery {
            body: body.into(),
            message_id: message_id.into(),
            delivery_count: 1,
            attempt: None,
            first_seen: None,
            attributes: BTreeMap::new(),
            truncated_at: None,
            budget: None,
            lease_deadline: Mutex::new(None),
            settle,
        }
    }

    /// A delivery whose settle verbs do nothing (files, tests).
    pub fn detached(message_id: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self::new(message_id, body, Arc::new(NoopSettle))
    }

    /// Sets how many times this message has been delivered (1 = first time).
    pub fn with_delivery_count(mut self, count: u32) -> Self {
        self.delivery_count = count.max(1);
        self
    }

    /// Sets which attempt this delivery is (1 for the first): what the
    /// retry backoff doubles by. Sources that know failed attempts apart
    /// from receives set it (the SQS source when it re-queues retries);
    /// otherwise it is the delivery count.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt.max(1));
        self
    }

    /// Sets when the source first saw the message.
    pub fn with_first_seen(mut self, at: SystemTime) -> Self {
        self.first_seen = Some(at);
        self
    }

    /// Adds a source attribute (message attributes, broker properties).
    pub fn with_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// Marks the body as the first `limit` bytes of a longer message that a
    /// source cut to bound its memory (a line of a file over the line limit).
    /// The engine dead-letters such a delivery as undecodable, naming the
    /// limit, instead of trying to read half a finding.
    pub fn with_truncated_at(mut self, limit: usize) -> Self {
        self.truncated_at = Some(limit);
        self
    }

    /// Sets when the lease on this delivery ends.
    pub fn with_lease_deadline(self, deadline: Instant) -> Self {
        if let Ok(mut d) = self.lease_deadline.lock() {
            *d = Some(deadline);
        }
        self
    }

    /// The raw body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The source's message id.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// How many times this message has been delivered, 1 the first time.
    pub fn delivery_count(&self) -> u32 {
        self.delivery_count
    }

    /// Which attempt this delivery is (see [`with_attempt`](Self::with_attempt));
    /// the delivery count unless the source said otherwise.
    pub fn attempt(&self) -> u32 {
        self.attempt.unwrap_or(self.delivery_count)
    }

    /// When the source first saw the message, if it knows.
    pub fn first_seen(&self) -> Option<SystemTime> {
        self.first_seen
    }

    /// Source attributes.
    pub fn attributes(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// Holds `guard` (its read-ahead bytes) until the delivery is dropped.
    pub(crate) fn with_budget(mut self, guard: budget::BudgetGuard) -> Self {
        self.budget = Some(guard);
        self
    }

    /// The limit the body was cut at, if the source had to cut it
    /// ([`with_truncated_at`](Self::with_truncated_at)).
    pub fn truncated_at(&self) -> Option<usize> {
        self.truncated_at
    }

    /// When the current lease ends, if the source leases deliveries.
    pub fn lease_deadline(&self) -> Option<Instant> {
        self.lease_deadline.lock().ok().and_then(|d| *d)
    }

    // The settle verbs return `async move` blocks rather than being `async
    // fn`s: an `async fn` keeps its by-value `self` twice in its future (as
    // argument and as local), and these futures are part of every delivery's.

    /// Done: the message is never delivered again.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub fn ack(self) -> impl Future<Output = Result<()>> + Send {
        async move { self.settle.ack().await }
    }

    /// Deliver again, no sooner than `retry_after`.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub fn nack(self, retry_after: Duration) -> impl Future<Output = Result<()>> + Send {
        async move { self.settle.nack(retry_after).await }
    }

    /// Deliver again, no sooner than `retry_after`, without counting this
    /// delivery as an attempt (see [`Settle::defer`]).
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub fn defer(self, retry_after: Duration) -> impl Future<Output = Result<()>> + Send {
        async move { self.settle.defer(retry_after).await }
    }

    /// Still working: keep the lease for another `by` from now.
    pub async fn extend(&self, by: Duration) -> Result<()> {
        self.settle.extend(by).await?;
        if let Ok(mut d) = self.lease_deadline.lock() {
            if d.is_some() {
                *d = Some(Instant::now() + by);
            }
        }
        Ok(())
    }

    /// Poison: park the message with `reason`.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    pub fn dead_letter(
        self,
        reason: &str,
    ) -> impl Future<Output = Result<DeadLetterOutcome>> + Send {
        async move { self.settle.dead_letter(reason).await }
    }
}

/// A source of deliveries.
#[async_trait]
pub trait AlertSource: Send + Sync + fmt::Debug {
    /// A short name for audit records (`file:alerts.jsonl`, `memory`, `sqs:queue`).
    fn name(&self) -> &str;

    /// Up to `max` deliveries. Waits (long-polls) up to the source's wait time;
    /// an empty result means idle, not finished (see [`is_exhausted`](Self::is_exhausted)).
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>>;

    /// What the source can do natively.
    fn capabilities(&self) -> Capabilities;

    /// Counts this source's API calls in `stats` from now on: the engine
    /// calls it with its own when it is built. Sources that count nothing
    /// ignore it.
    fn attach_stats(&self, stats: &Arc<Stats>) {
        let _ = stats;
    }

    /// Finishes the source's background work after a run: acks and
    /// extensions it still batches are sent, its streams closed. Call it once
    /// the engine's [`run`](crate::engine::Engine::run) has returned; a source
    /// with nothing in the background does nothing.
    async fn close(&self) {}

    /// Whether the source is finished: it will never return another delivery.
    /// Queues are never exhausted; files are, at their end.
    fn is_exhausted(&self) -> bool {
        false
    }

    /// Whether no *new* message will ever arrive: what was handed out and not
    /// settled may still come back (a lease ending), nothing else. A closed
    /// [`MemorySource`] is; a live queue is not (default: [`is_exhausted`]).
    /// A dry run, which settles nothing, ends at the first empty receive from
    /// a closed source instead of seeing its own deliveries come back forever.
    ///
    /// [`is_exhausted`]: Self::is_exhausted
    fn is_closed(&self) -> bool {
        self.is_exhausted()
    }
}

/// Forwards the trait through smart pointers, so `Arc<dyn AlertSource>` and
/// `Box<dyn AlertSource>` are sources too.
macro_rules! forward_alert_source {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<T: AlertSource + ?Sized> AlertSource for $ptr<T> {
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
                (**self).receive(max).await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            fn attach_stats(&self, stats: &Arc<Stats>) {
                (**self).attach_stats(stats)
            }
            async fn close(&self) {
                (**self).close().await
            }
            fn is_exhausted(&self) -> bool {
                (**self).is_exhausted()
            }
            fn is_closed(&self) -> bool {
                (**self).is_closed()
            }
        }
    )*};
}

forward_alert_source!(Arc, Box);

/// Drain mode: wraps a queue source so that it counts as exhausted once a
/// receive comes back empty. The engine then finishes what is in flight and
/// returns, so a worker empties the queue and exits instead of waiting for
/// more (as the published scripts do, run from cron or CI).
///
/// A delivery nacked for a later retry is not waited for: it stays on the
/// queue for the next run.
#[derive(Debug)]
pub struct Drain<S> {
    inner: S,
    empty: std::sync::atomic::AtomicBool,
}

impl<S> Drain<S> {
    /// Drains `inner`.
    pub fn new(inner: S) -> Self {
        Drain {
            inner,
            empty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The wrapped source.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: AlertSource> AlertSource for Drain<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let got = self.inner.receive(max).await?;
        self.empty
            .store(got.is_empty(), std::sync::atomic::Ordering::Relaxed);
        Ok(got)
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.inner.attach_stats(stats);
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn is_exhausted(&self) -> bool {
        self.inner.is_exhausted() || self.empty.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed() || self.is_exhausted()
    }
}
