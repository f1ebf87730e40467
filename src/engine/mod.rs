//! The worker: source → decode → gate → plan → execute → settle → audit.
//!
//! The [`Engine`] owns the delivery semantics: a delivery is acked only after
//! its plan ran to the end or it was deliberately skipped; a failed step nacks
//! with backoff; poison (undecodable, unsafe, failed too often) is
//! dead-lettered with its body in the audit record. Concurrency, in-flight
//! deliveries and read-ahead are bounded; leases are extended while steps run;
//! cancelling stops receiving and releases what has not started.

mod audit;
mod dedup;
#[cfg(feature = "dynamodb")]
pub mod dedup_dynamodb;
mod execute;
mod gate;
mod handle;
mod lease;
mod result;
mod signal;
mod text_audit;

use crate::error::{Error, ErrorKind, Result};
use crate::executor::{CommandExecutor, StepOutcome, StepStatus};
use crate::model::{Event, EventKind, decode};
use crate::plan::{Decision, Plan, Skip, SkipReason};
use crate::planner::RemediationPlanner;
use crate::redact::{redact, redact_argv};
use crate::source::{AlertSource, Capabilities, DeadLetterOutcome, Delivery};
use crate::telemetry::{Backoff, Counter, Stats, Summary};
use futures_util::FutureExt;
use result::*;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use audit::{
    AuditDecision, AuditRecord, AuditSink, AuditStep, JsonLinesAudit, MemoryAudit, NoAudit,
    SettleAction, TeeAudit,
};
pub use dedup::{Claim, DedupStore, MemoryDedup};
pub use lease::LeasePolicy;
pub use signal::shutdown_on_signal;
pub use text_audit::TextAudit;

/// Engine settings. `Default` is a sensible production setup.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Deliveries in flight at once (received and not yet settled). Default 8.
    pub concurrency: usize,
    /// The most deliveries asked for per receive call. Default 10.
    pub receive_batch: usize,
    /// A delivery that fails on its `max_deliveries`-th delivery is
    /// dead-lettered instead of nacked. Default 5.
    pub max_deliveries: u32,
    /// Retry delay after a failure, by delivery count.
    pub retry: Backoff,
    /// Delay between failed receive calls.
    pub receive_retry: Backoff,
    /// How leases are extended while steps run.
    pub lease: LeasePolicy,
    /// How long a dedup claim lasts before another worker may take over.
    pub dedup_lease: Duration,
    /// How long a completed finding is remembered. Default 24 h.
    pub dedup_ttl: Duration,
    /// In dry run, settle deliveries as a real run would (default: settle
    /// nothing, so a dry run leaves the queue as it found it). On a queue,
    /// unsettled deliveries come back when their lease ends, so a dry run
    /// over a live queue shows them again until it is stopped; over a closed
    /// source ([`AlertSource::is_closed`]: a file, a closed memory source, a
    /// drained queue) it ends at the first empty receive, each delivery
    /// reported once.
    pub settle_in_dry_run: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 8,
            receive_batch: 10,
            max_deliveries: 5,
            retry: Backoff::default(),
            receive_retry: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            lease: LeasePolicy::default(),
            dedup_lease: Duration::from_secs(15 * 60),
            dedup_ttl: Duration::from_secs(24 * 3600),
            settle_in_dry_run: false,
        }
    }
}

impl EngineConfig {
    /// Sets the concurrency (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the receive batch size (at least 1).
    pub fn with_receive_batch(mut self, n: usize) -> Self {
        self.receive_batch = n.max(1);
        self
    }
    /// Sets the delivery count at which a failing delivery is dead-lettered.
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }
    /// Sets the retry schedule.
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the lease policy.
    pub fn with_lease(mut self, lease: LeasePolicy) -> Self {
        self.lease = lease;
        self
    }
    /// Settle deliveries in dry run too.
    pub fn with_settle_in_dry_run(mut self, yes: bool) -> Self {
        self.settle_in_dry_run = yes;
        self
    }
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    inner: Inner,
}

impl EngineBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.inner.config = config;
        self
    }
    /// Sets the dedup store (default: in-memory). A dry run never writes it:
    /// it deduplicates within itself in a private in-memory store.
    pub fn dedup(mut self, dedup: Arc<dyn DedupStore>) -> Self {
        self.inner.dedup = dedup;
        self
    }
    /// Sets the audit sink (default: none).
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.inner.audit = audit;
        self
    }
    /// Shares a stats handle (e.g. with backends counting API calls).
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.inner.stats = stats;
        self
    }
    /// Builds the engine.
    pub fn build(mut self) -> Engine {
        self.inner.caps = self.inner.source.capabilities();
        let stats = &self.inner.stats;
        self.inner.source.attach_stats(stats);
        self.inner.planner.attach_stats(stats);
        self.inner.dedup.attach_stats(stats);
        Engine {
            inner: Arc::new(self.inner),
        }
    }
}

/// The remediation worker. Cheap to clone; `run` may be called once at a time.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.inner.source)
            .field("planner", &self.inner.planner.name())
            .field("executor", &self.inner.executor)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Inner {
    source: Arc<dyn AlertSource>,
    planner: Arc<dyn RemediationPlanner>,
    executor: Arc<dyn CommandExecutor>,
    dedup: Arc<dyn DedupStore>,
    audit: Arc<dyn AuditSink>,
    stats: Arc<Stats>,
    config: EngineConfig,
    caps: Capabilities,
    /// The dry run's own dedup store (see [`Inner::dedup_store`]).
    dry_planned: MemoryDedup,
}

impl Engine {
    /// A builder wiring `source`, `planner` and `executor`.
    pub fn builder(
        source: Arc<dyn AlertSource>,
        planner: Arc<dyn RemediationPlanner>,
        executor: Arc<dyn CommandExecutor>,
    ) -> EngineBuilder {
        EngineBuilder {
            inner: Inner {
                source,
                planner,
                executor,
                dedup: Arc::new(MemoryDedup::default()),
                audit: Arc::new(NoAudit),
                stats: Arc::new(Stats::new()),
                config: EngineConfig::default(),
                caps: Capabilities::default(),
                dry_planned: MemoryDedup::default(),
            },
        }
    }

    /// The live counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// Runs until the source is exhausted or `cancel` fires, then waits for
    /// in-flight deliveries to finish or be released, and returns the counters.
    ///
    /// Returns an error only for a permanent source failure (an unreadable
    /// file, a queue that does not exist); everything that happens to a single
    /// delivery is settled and audited instead.
    ///
    /// The receive loop runs as a task of its own (on a multi-thread runtime,
    /// on a worker thread rather than on the thread awaiting `run`, which with
    /// `#[tokio::main]` would be one more thread competing for the cores); it
    /// is aborted, with everything it spawned, if this future is dropped.
    pub async fn run(&self, cancel: CancellationToken) -> Result<Summary> {
        /// Aborts the loop task when `run` is dropped before it finished.
        struct AbortOnDrop(tokio::task::JoinHandle<Result<Summary>>);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut task = AbortOnDrop(tokio::spawn(Self::run_loop(
            Arc::clone(&self.inner),
            cancel,
        )));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::Backend {
                backend: "engine",
                message: format!("the engine's receive loop was cancelled: {e}"),
                temporary: true,
                source: None,
            }),
        }
    }

    async fn run_loop(inner: Arc<Inner>, cancel: CancellationToken) -> Result<Summary> {
        let inner = &inner;
        let cfg = &inner.config;
        let batch_max = cfg.receive_batch.min(inner.caps.max_batch.max(1)).max(1);
        let concurrency = cfg.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        let refill = u32::try_from(batch_max.min(concurrency.div_ceil(4)).max(1)).unwrap_or(1);
        let mut tasks = JoinSet::new();
        let mut receive_failures = 0u32;
        let mut idle_polls = 0u32;
        let mut fatal = None;
        loop {
            while let Some(done) = tasks.try_join_next() {
                log_join(done);
            }
            if cancel.is_cancelled() {
                break;
            }
            // Wait until a few permits are free rather than one: each wake-up
            // of this loop costs a cross-thread hand-off, and receiving in
            // small batches costs API calls.
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                p = Arc::clone(&permits).acquire_many_owned(refill) => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            // One permit object for the whole batch: a delivery settled in
            // place returns its share with the batch's, in one release.
            let mut held = first;
            top_up(&mut held, &permits, batch_max);
            let asked = std::time::Instant::now();
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = inner.source.receive(held.num_permits()) => r,
            };
            match received {
                Err(e) => {
                    inner.stats.incr(Counter::ReceiveErrors);
                    if !e.is_temporary() {
                        tracing::error!(source = inner.source.name(), error = %e, "source failed permanently");
                        fatal = Some(e);
                        break;
                    }
                    receive_failures += 1;
                    let delay = cfg.receive_retry.delay(receive_failures, "receive");
                    tracing::warn!(source = inner.source.name(), error = %e, ?delay, "receive failed; retrying");
                    drop(held);
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Ok(batch) if batch.is_empty() => {
                    drop(held);
                    if inner.source.is_exhausted() {
                        // In-flight deliveries may still be nacked and come back.
                        while let Some(done) = tasks.join_next().await {
                            log_join(done);
                        }
                        if inner.source.is_exhausted() {
                            break;
                        }
                    } else if inner.source.is_closed() && inner.dry_run() && !cfg.settle_in_dry_run
                    {
                        // A dry run settles nothing: over a closed source, all
                        // that could still come is its own deliveries again.
                        while let Some(done) = tasks.join_next().await {
                            log_join(done);
                        }
                        break;
                    } else if asked.elapsed() < Duration::from_millis(5) {
                        // A source that answers "nothing" without waiting must
                        // not turn this loop into a busy spin.
                        idle_polls = idle_polls.saturating_add(1);
                        let pause = Duration::from_millis(10)
                            .saturating_mul(idle_polls)
                            .min(Duration::from_millis(500));
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                }
                Ok(mut batch) => {
                    receive_failures = 0;
                    idle_polls = 0;
                    inner.stats.add(Counter::Received, batch.len() as u64);
                    // A source that returned more than asked gets what permits
                    // are free; the rest is released for redelivery at once
                    // (waiting here for permits this loop holds would deadlock).
                    top_up(&mut held, &permits, batch.len());
                    if batch.len() > held.num_permits() {
                        let surplus = batch.split_off(held.num_permits());
                        let inner = Arc::clone(inner);
                        tasks.spawn(async move { inner.release_surplus(surplus).await });
                    }
                    let unused = held.num_permits() - batch.len();
                    if unused > 0 {
                        drop(held.split(unused));
                    }
                    let inner = Arc::clone(inner);
                    let cancel = cancel.clone();
                    tasks.spawn(async move { inner.handle_batch(batch, held, cancel).await });
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
        if let Err(e) = inner.audit.flush() {
            tracing::error!(error = %e, "flushing the audit trail failed");
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(inner.stats.snapshot()),
        }
    }
}
