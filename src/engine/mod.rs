//! The worker: source → decode → gate → plan → execute → settle → audit.
//!
//! The [`Engine`] owns the delivery semantics: a delivery is acked only after
//! its plan ran to the end or it was deliberately skipped; a failed step nacks
//! with backoff; poison (undecodable, unsafe, failed too often) is
//! dead-lettered with its body in the audit record. Concurrency, in-flight
//! deliveries and read-ahead are bounded; leases are extended while steps run;
//! cancelling stops receiving and releases what has not started.

pub mod audit;
pub mod dedup;
#[cfg(feature = "dynamodb")]
pub mod dedup_dynamodb;
pub mod lease;

use crate::error::{Error, ErrorKind, Result};
use crate::executor::{CommandExecutor, StepOutcome, StepStatus};
use crate::model::{Event, EventKind, decode};
use crate::plan::{Decision, Plan, Skip, SkipReason};
use crate::planner::RemediationPlanner;
use crate::redact::{redact, redact_argv};
use crate::source::{
    AlertSource, Capabilities, DeadLetterOutcome, Delivery, file::TRUNCATED_ATTRIBUTE,
};
use crate::telemetry::{Backoff, Counter, Stats, Summary};
use futures_util::FutureExt;
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
#[cfg(feature = "dynamodb")]
pub use dedup_dynamodb::{DynamoDedup, DynamoDedupBuilder};
pub use lease::LeasePolicy;

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
    /// over a queue shows them again until it is stopped.
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

/// Polls `fut` once with the current task's context: its output if it is
/// done, `None` if it waits (its wake-up is then registered with this task).
fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> impl Future<Output = Option<F::Output>> {
    std::future::poll_fn(move |cx| {
        Poll::Ready(match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
}

/// Adds to `held` the permits that are free, up to `want` in all, without waiting.
fn top_up(held: &mut OwnedSemaphorePermit, permits: &Arc<Semaphore>, want: usize) {
    let missing = want
        .saturating_sub(held.num_permits())
        .min(permits.available_permits());
    let Ok(missing) = u32::try_from(missing) else {
        return;
    };
    if missing > 0 {
        if let Ok(more) = Arc::clone(permits).try_acquire_many_owned(missing) {
            held.merge(more);
        }
    }
}

/// The error standing in for a panic in user-supplied code (planner,
/// executor, dedup store, audit sink): the delivery it hit is still settled.
fn panicked(component: &'static str, call: &str) -> Error {
    tracing::error!(component, call, "panicked; treating as a permanent failure");
    Error::Backend {
        backend: component,
        message: format!("{component} panicked in {call}"),
        temporary: false,
        source: None,
    }
}

fn log_join(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "delivery task failed");
    }
}

/// The fate of one event of a delivery.
#[derive(Debug)]
struct EventResult {
    decision: AuditDecision,
    code: &'static str,
    detail: String,
    steps: Vec<AuditStep>,
    planner: Option<String>,
    /// For a failure or an in-progress duplicate: the settle delay to use.
    retry_now: bool,
    /// The dedup key held for this event, to complete or release.
    claim: Option<String>,
    /// A service failed (the planner's API: outage or misconfiguration; the
    /// dedup store), not the message: nack, never dead-letter, however often
    /// it was delivered.
    service_outage: bool,
    /// For a refused command: the class of refusal.
    refusal: Option<crate::Refusal>,
}

impl EventResult {
    fn new(decision: AuditDecision, code: &'static str, detail: impl Into<String>) -> Self {
        EventResult {
            decision,
            code,
            detail: detail.into(),
            steps: Vec::new(),
            planner: None,
            retry_now: false,
            claim: None,
            service_outage: false,
            refusal: None,
        }
    }

    /// The same result, naming `e`'s class of refusal if it is one.
    fn refused_by(mut self, e: &Error) -> Self {
        self.refusal = e.refusal();
        self
    }

    fn skip(skip: &Skip) -> Self {
        Self::new(
            AuditDecision::Skipped,
            skip.reason.code(),
            skip.detail.clone(),
        )
    }

    /// Orders results so the delivery is settled by its worst event.
    fn severity(&self) -> u8 {
        match self.decision {
            AuditDecision::Failed => 4,
            AuditDecision::Rejected => 3,
            AuditDecision::Executed | AuditDecision::Planned => 2,
            AuditDecision::Skipped if self.code == "duplicate" && self.retry_now => 2,
            AuditDecision::Skipped => 1,
        }
    }
}

/// One delivery moving through the pipeline.
struct Work {
    delivery: Delivery,
    events: Vec<Event>,
    /// Per event: a decision already made (gate, dedup) as `Err`, or `Ok`
    /// with the dedup key claimed for it (if it has one) = needs planning.
    gated: Vec<std::result::Result<Option<String>, EventResult>>,
    undecodable: Option<String>,
}

fn reason_code(e: &Error) -> &'static str {
    match e.kind() {
        ErrorKind::UnsafeCommand => "unsafe_command",
        ErrorKind::UnmappedAccount => "unmapped_account",
        ErrorKind::Decode => "undecodable",
        ErrorKind::Cancelled => "cancelled",
        _ => "step_failed",
    }
}

/// The result of a plan whose step `index` (0-based) could not run: rejected
/// if the error refuses the command, failed otherwise.
fn step_error(index: usize, e: &Error) -> EventResult {
    let decision = if is_rejection(e) {
        AuditDecision::Rejected
    } else {
        AuditDecision::Failed
    };
    let detail = match e {
        Error::UnsafeCommand { code, reason } => format!("{code}: step {}: {reason}", index + 1),
        e => format!("step {}: {e}", index + 1),
    };
    EventResult::new(decision, reason_code(e), detail).refused_by(e)
}

/// An error as the detail after its reason code: an unsafe command's
/// display already starts with `unsafe_command`, which the code says.
fn detail_of(e: &Error) -> String {
    match e {
        Error::UnsafeCommand { code, reason } => format!("{code}: {reason}"),
        e => e.to_string(),
    }
}

fn is_rejection(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnsafeCommand | ErrorKind::UnmappedAccount | ErrorKind::Decode
    )
}

fn gate(event: &Event) -> Option<Skip> {
    let Event::PrismaAlert(alert) = event else {
        return None;
    };
    if alert.is_test_notification() {
        return Some(Skip::new(
            SkipReason::TestNotification,
            "Prisma Cloud test notification",
        ));
    }
    if !alert.is_open() {
        return Some(Skip::new(
            SkipReason::NotOpen,
            format!("alert status is {}", alert.status().unwrap_or("unknown")),
        ));
    }
    if alert.remediable() == Some(false) {
        return Some(Skip::new(
            SkipReason::NotRemediable,
            "metadata.remediable is false",
        ));
    }
    None
}

impl Inner {
    fn dry_run(&self) -> bool {
        self.executor.is_dry_run()
    }

    /// Where claims go. A dry run remediates nothing, so it never writes the
    /// configured (possibly shared) store: a real run must not believe a
    /// finding handled, nor wait for a dry run's claim. It keeps its own
    /// in-memory store instead, so a finding delivered twice within the dry
    /// run is reported `duplicate` just as the real run would report it.
    fn dedup_store(&self) -> &dyn DedupStore {
        if self.dry_run() {
            &self.dry_planned
        } else {
            &*self.dedup
        }
    }

    /// The audit record a delivery starts with. Nobody reads the record of a
    /// disabled sink, so it names the delivery only when one is enabled.
    fn record_for(&self, delivery: &Delivery) -> AuditRecord {
        if self.audit.enabled() {
            AuditRecord::untimed(
                self.source.name(),
                delivery.message_id(),
                delivery.delivery_count(),
            )
        } else {
            AuditRecord::untimed(String::new(), String::new(), delivery.delivery_count())
        }
    }

    /// Asks the planner, turning a panic into a permanent error per event.
    async fn plan_guarded(&self, events: &[Event]) -> Vec<Result<Decision>> {
        match AssertUnwindSafe(self.planner.plan(events))
            .catch_unwind()
            .await
        {
            Ok(answers) => answers,
            Err(_) => events
                .iter()
                .map(|_| Err(panicked("planner", "plan")))
                .collect(),
        }
    }

    /// Releases deliveries beyond the concurrency limit for redelivery, audited.
    async fn release_surplus(&self, surplus: Vec<Delivery>) {
        tracing::warn!(
            count = surplus.len(),
            "source returned more deliveries than asked; releasing the surplus"
        );
        for delivery in surplus {
            let record = self.record_for(&delivery);
            let mut result = EventResult::new(
                AuditDecision::Failed,
                "over_capacity",
                "the source returned more deliveries than asked; released for redelivery",
            );
            result.retry_now = true;
            self.settle(delivery, record, result).await;
        }
    }

    async fn handle_batch(
        self: Arc<Self>,
        batch: Vec<Delivery>,
        permits: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) {
        // Decode and gate every delivery. The batch holds one permit per
        // delivery until it is settled.
        let mut works = Vec::with_capacity(batch.len());
        for delivery in batch {
            works.push(self.decode_and_gate(delivery).await);
        }
        // Plan everything that passed the gate in one call. Events are moved
        // out for the call and back afterwards, never copied.
        let mut held: Vec<Vec<Option<Event>>> = works
            .iter_mut()
            .map(|w| {
                std::mem::take(&mut w.events)
                    .into_iter()
                    .map(Some)
                    .collect()
            })
            .collect();
        let mut slots = Vec::with_capacity(works.len());
        let mut to_plan = Vec::with_capacity(works.len());
        for (wi, w) in works.iter().enumerate() {
            for (ei, g) in w.gated.iter().enumerate() {
                if g.is_err() {
                    continue;
                }
                if let Some(event) = held[wi][ei].take() {
                    slots.push((wi, ei));
                    to_plan.push(event);
                }
            }
        }
        let mut plans: Vec<Vec<Option<Result<Decision>>>> = works
            .iter()
            .map(|w| (0..w.gated.len()).map(|_| None).collect())
            .collect();
        if !to_plan.is_empty() {
            let mut answers = self.plan_guarded(&to_plan).await.into_iter();
            for (&(wi, ei), event) in slots.iter().zip(to_plan) {
                held[wi][ei] = Some(event);
                plans[wi][ei] = Some(answers.next().unwrap_or_else(|| {
                    Err(Error::Backend {
                        backend: "planner",
                        message: format!(
                            "planner {} returned fewer decisions than events",
                            self.planner.name()
                        ),
                        temporary: true,
                        source: None,
                    })
                }));
            }
        }
        for (w, events) in works.iter_mut().zip(held) {
            w.events = events.into_iter().flatten().collect();
        }
        // One allocation per batch keeps the per-delivery futures out of
        // this task's, which is copied as a whole when it is spawned.
        Box::pin(self.finish_all(works, plans, permits, cancel)).await;
    }

    /// Executes and settles a batch's deliveries within one task (no spawn
    /// per delivery). Most are done at their first poll (skips, refusals, dry
    /// runs) and run one after the other, each in place; at the first that
    /// has to wait, it and the rest of the batch run concurrently.
    ///
    /// `permits` holds one permit per delivery. Deliveries settled in place
    /// return theirs together (one release instead of one each); once
    /// deliveries run concurrently, each holds its own until it is settled.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    fn finish_all(
        &self,
        works: Vec<Work>,
        plans: Vec<Vec<Option<Result<Decision>>>>,
        mut permits: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let mut batch = works.into_iter().zip(plans);
            while let Some((work, decisions)) = batch.next() {
                let mut next = std::pin::pin!(self.finish(work, decisions, &cancel));
                if poll_once(next.as_mut()).await.is_some() {
                    continue;
                }
                let own = permits.split(1);
                let waiting = async move {
                    next.await;
                    drop(own);
                };
                let rest = futures_util::future::join_all(batch.map(|(work, decisions)| {
                    let own = permits.split(1);
                    let delivery = self.finish(work, decisions, &cancel);
                    async move {
                        delivery.await;
                        drop(own);
                    }
                }));
                // What is left are the permits of the deliveries already settled.
                drop(permits);
                futures_util::future::join(waiting, rest).await;
                break;
            }
        }
    }

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    fn decode_and_gate(&self, delivery: Delivery) -> impl Future<Output = Work> + Send + '_ {
        // Decoding needs no await: only the dedup claims do.
        let mut work = Work {
            delivery,
            events: Vec::new(),
            gated: Vec::new(),
            undecodable: None,
        };
        let mut decoded_events = Vec::new();
        if let Some(limit) = work.delivery.attributes().get(TRUNCATED_ATTRIBUTE) {
            work.undecodable = Some(format!("message longer than {limit} bytes (truncated)"));
        } else {
            match decode(work.delivery.body()) {
                Err(e) => work.undecodable = Some(e.to_string()),
                Ok(decoded) if decoded.events.is_empty() => {
                    work.undecodable = Some(format!("{:?} body carries no event", decoded.format));
                }
                Ok(decoded) => decoded_events = decoded.events,
            }
        }
        async move {
            work.events.reserve_exact(decoded_events.len());
            work.gated.reserve_exact(decoded_events.len());
            for event in decoded_events {
                let gated = match gate(&event) {
                    Some(skip) => Err(EventResult::skip(&skip)),
                    None => self.claim(&event).await,
                };
                work.events.push(event);
                work.gated.push(gated);
            }
            work
        }
    }

    /// Takes the event's dedup claim: `Ok` with the claimed key (`None` for
    /// an event without one) if it may be planned, `Err` with the decision if not.
    async fn claim(&self, event: &Event) -> std::result::Result<Option<String>, EventResult> {
        let Some(key) = event.dedup_key() else {
            return Ok(None);
        };
        let claim = AssertUnwindSafe(self.dedup_store().claim(&key, self.config.dedup_lease))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(panicked("dedup store", "claim")));
        match claim {
            Ok(Claim::Claimed) => Ok(Some(key)),
            Ok(Claim::AlreadyDone) => Err(EventResult::new(
                AuditDecision::Skipped,
                SkipReason::Duplicate.code(),
                "already remediated",
            )),
            Ok(Claim::InProgress) => {
                let mut r = EventResult::new(
                    AuditDecision::Skipped,
                    SkipReason::Duplicate.code(),
                    "being remediated by another delivery; retry later",
                );
                r.retry_now = true;
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

    // `finish`, `execute_plan` and `settle` return `async move` blocks
    // rather than being `async fn`s: an `async fn` keeps each by-value
    // argument twice in its future (as argument and as local), and these
    // futures nest into every delivery's, which a batch holds side by side.
    // For the same reason `work` is used in place, not destructured.

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    fn finish<'a>(
        &'a self,
        mut work: Work,
        decisions: Vec<Option<Result<Decision>>>,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'a {
        let first = work.events.first();
        let span = tracing::info_span!(
            "delivery",
            message_id = work.delivery.message_id(),
            alert_id = first.and_then(Event::alert_id),
            event_id = first.and_then(Event::event_id),
            account = first.and_then(Event::account_id),
        );
        async move {
            if let Some(why) = work.undecodable.take() {
                tracing::warn!(reason = %redact(&why), "undecodable delivery");
                let result = EventResult::new(AuditDecision::Rejected, "undecodable", why);
                let record = self.record_for(&work.delivery);
                self.settle(work.delivery, record, result).await;
                return;
            }
            let events = std::mem::take(&mut work.events);
            let mut results = Vec::with_capacity(events.len());
            for (gated, decision) in std::mem::take(&mut work.gated).into_iter().zip(decisions) {
                let result = match gated {
                    Err(r) => r,
                    Ok(claim) => {
                        let mut r = match self.plan_of(decision) {
                            Ok(plan) => self.execute_plan(plan, &work.delivery, cancel).await,
                            Err(r) => r,
                        };
                        r.claim = claim;
                        r
                    }
                };
                results.push(result);
            }
            // Complete or release dedup claims.
            for r in &results {
                if let Some(key) = &r.claim {
                    // Done means remediated, or planned in a dry run (whose
                    // store is its own, see `dedup_store`).
                    let store = self.dedup_store();
                    let update = match r.decision {
                        AuditDecision::Executed | AuditDecision::Planned => {
                            AssertUnwindSafe(store.complete(key, self.config.dedup_ttl))
                                .catch_unwind()
                                .await
                        }
                        _ => AssertUnwindSafe(store.release(key)).catch_unwind().await,
                    };
                    let outcome = update.unwrap_or_else(|_| Err(panicked("dedup store", "update")));
                    if let Err(e) = outcome {
                        tracing::warn!(key, error = %e, "dedup store update failed");
                    }
                }
            }
            let mut record = self.record_for(&work.delivery);
            record.kind = events.first().map_or(EventKind::Unknown, Event::kind);
            if events.len() > 1 {
                record.events = Some(events.len());
            }
            // The delivery is settled by its worst event; the record describes that event.
            let worst = results
                .iter()
                .enumerate()
                .max_by_key(|(i, r)| (r.severity(), std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
                .unwrap_or(0);
            if let Some(event) = events.get(worst).filter(|_| self.audit.enabled()) {
                record.alert_id = event.alert_id().map(str::to_owned);
                record.event_id = event.event_id().map(str::to_owned);
                record.account_id = event.account_id().map(str::to_owned);
                record.cloud = Some(event.cloud().as_str().to_owned());
            }
            let mut steps = Vec::new();
            for r in &mut results {
                steps.append(&mut r.steps);
            }
            record.steps = steps;
            let result = if worst < results.len() {
                results.swap_remove(worst)
            } else {
                // Unreachable by construction (decode never yields zero events
                // here), but a delivery must be settled whatever happens.
                EventResult::new(
                    AuditDecision::Rejected,
                    "undecodable",
                    "body carries no event",
                )
            };
            self.settle(work.delivery, record, result).await;
        }
        .instrument(span)
    }

    /// The plan to run for one event, or the result that says why there is none.
    fn plan_of(
        &self,
        decision: Option<Result<Decision>>,
    ) -> std::result::Result<Plan, EventResult> {
        let decision = match decision {
            Some(d) => d,
            None => Err(Error::Backend {
                backend: "planner",
                message: "event was not planned".into(),
                temporary: true,
                source: None,
            }),
        };
        let plan = match decision {
            Ok(Decision::Skip(skip)) => return Err(EventResult::skip(&skip)),
            Ok(Decision::Plan(plan)) => plan,
            Err(e) if is_rejection(&e) => {
                return Err(EventResult::new(
                    AuditDecision::Rejected,
                    reason_code(&e),
                    detail_of(&e),
                )
                .refused_by(&e));
            }
            Err(e) => {
                let code = if e.is_temporary() {
                    "planner_unavailable"
                } else {
                    "planner_error"
                };
                let mut r = EventResult::new(AuditDecision::Failed, code, e.to_string());
                // An API outage or refused credentials say nothing about the
                // message: parking it would lose work that succeeds later.
                r.service_outage = e.is_temporary() || e.is_setup_problem();
                return Err(r);
            }
        };
        if plan.steps.is_empty() {
            return Err(EventResult::new(
                AuditDecision::Skipped,
                SkipReason::NoRemediation.code(),
                format!("{} planned no step", plan.planner),
            ));
        }
        Ok(plan)
    }

    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    fn execute_plan<'a>(
        &'a self,
        plan: Plan,
        delivery: &'a Delivery,
        cancel: &'a CancellationToken,
    ) -> impl Future<Output = EventResult> + Send + 'a {
        async move {
            // Step detail is only built when someone records it.
            let detailed = self.audit.enabled();
            let mut steps: Vec<AuditStep> = plan
                .steps
                .iter()
                .map(|s| AuditStep {
                    argv: if detailed {
                        redact_argv(s.command.argv())
                    } else {
                        Vec::new()
                    },
                    status: StepStatus::NotRun,
                    exit_code: None,
                    duration_ms: 0,
                    context: Default::default(),
                    extra_args: Vec::new(),
                    files: if detailed {
                        s.files.iter().map(|f| f.name().to_owned()).collect()
                    } else {
                        Vec::new()
                    },
                    stderr: None,
                    read_only: s.read_only,
                })
                .collect();
            let with = |mut r: EventResult, steps: Vec<AuditStep>| {
                r.steps = steps;
                r.planner = Some(plan.planner.clone());
                r
            };
            // Refuse the whole plan before anything runs.
            for (i, step) in plan.steps.iter().enumerate() {
                let checked = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    self.executor.check(step, &plan.target)
                }))
                .unwrap_or_else(|_| Err(panicked("executor", "check")));
                if let Err(e) = checked {
                    return with(step_error(i, &e), steps);
                }
            }
            let dry = self.dry_run();
            // In a dry run, a read-only step after a mutating one would read state
            // the planned mutation never made: it is only planned too.
            let mut mutated = false;
            for (i, step) in plan.steps.iter().enumerate() {
                let demoted;
                let step = if dry && mutated && step.read_only {
                    let mut planned = step.clone();
                    planned.read_only = false;
                    planned.expect = None;
                    demoted = planned;
                    &demoted
                } else {
                    step
                };
                mutated |= !step.read_only;
                if cancel.is_cancelled() {
                    let mut r = EventResult::new(
                        AuditDecision::Failed,
                        "cancelled",
                        format!("worker stopping before step {}", i + 1),
                    );
                    r.retry_now = true;
                    return with(r, steps);
                }
                self.stats.incr(Counter::StepsRun);
                let run = std::pin::pin!(async {
                    AssertUnwindSafe(crate::executor::run_step(
                        &*self.executor,
                        step,
                        &plan.target,
                    ))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|_| Err(panicked("executor", "execute")))
                });
                let leased =
                    lease::keep_leased(run, delivery, &self.caps, &self.config.lease, &self.stats);
                // A read-only step (a query, or a long wait for a resource to be
                // ready) changes nothing, so shutdown may abandon it: the delivery
                // is released and the plan starts over elsewhere.
                let outcome = if step.read_only {
                    tokio::select! {
                        o = leased => o,
                        () = cancel.cancelled() => {
                            let mut r = EventResult::new(
                                AuditDecision::Failed,
                                "cancelled",
                                format!("worker stopping during read-only step {}", i + 1),
                            );
                            r.retry_now = true;
                            return with(r, steps);
                        }
                    }
                } else {
                    leased.await
                };
                match outcome {
                    Ok(o) if o.status == StepStatus::Failed => {
                        self.stats.incr(Counter::StepsFailed);
                        let tail = o.stderr_tail.lines().last().unwrap_or("").trim().to_owned();
                        let exit = o
                            .exit_code
                            .map_or_else(|| "was killed".to_owned(), |c| format!("exited {c}"));
                        let detail = if tail.is_empty() {
                            format!("step {} {exit}", i + 1)
                        } else {
                            format!("step {} {exit}: {}", i + 1, redact(&tail))
                        };
                        record_outcome(&mut steps[i], step.read_only, o);
                        return with(
                            EventResult::new(AuditDecision::Failed, "step_failed", detail),
                            steps,
                        );
                    }
                    Ok(o) => {
                        if detailed {
                            record_outcome(&mut steps[i], step.read_only, o);
                        } else {
                            steps[i].status = o.status;
                        }
                    }
                    Err(e) => {
                        self.stats.incr(Counter::StepsFailed);
                        steps[i].status = StepStatus::Failed;
                        return with(step_error(i, &e), steps);
                    }
                }
            }
            let (decision, code) = if dry {
                (AuditDecision::Planned, "planned")
            } else {
                (AuditDecision::Executed, "executed")
            };
            // The plan is done with: its name and description move into the result.
            let Plan {
                planner,
                description,
                ..
            } = plan;
            let mut r = EventResult::new(decision, code, description.unwrap_or_default());
            r.steps = steps;
            r.planner = Some(planner);
            r
        }
    }

    /// Settles the delivery according to `result` and writes the audit record.
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice"
    )]
    fn settle(
        &self,
        delivery: Delivery,
        mut record: AuditRecord,
        result: EventResult,
    ) -> impl Future<Output = ()> + Send + '_ {
        async move {
            let count = delivery.delivery_count();
            let cfg = &self.config;
            enum Action {
                Ack,
                Nack(Duration),
                DeadLetter(String),
            }
            let action = match result.decision {
                AuditDecision::Executed | AuditDecision::Planned => Action::Ack,
                AuditDecision::Skipped if result.retry_now => {
                    Action::Nack(cfg.retry.delay(count, delivery.message_id()))
                }
                AuditDecision::Skipped => Action::Ack,
                AuditDecision::Rejected => {
                    Action::DeadLetter(format!("{}: {}", result.code, result.detail))
                }
                AuditDecision::Failed if result.retry_now => Action::Nack(Duration::ZERO),
                AuditDecision::Failed if count >= cfg.max_deliveries && !result.service_outage => {
                    Action::DeadLetter(format!(
                        "{} after {count} deliveries: {}",
                        result.code, result.detail
                    ))
                }
                AuditDecision::Failed => {
                    Action::Nack(cfg.retry.delay(count, delivery.message_id()))
                }
            };
            // Nobody reads the record of a disabled sink: don't build it.
            let audited = self.audit.enabled();
            record.decision = result.decision;
            if audited {
                record.stamp();
                record.reason_code = Some(result.code.to_owned());
                record.refusal = result.refusal.map(|r| r.as_str().to_owned());
                // Details quote commands and their errors: through the one redaction table.
                record.reason = Some(if result.detail.is_empty() {
                    result.code.to_owned()
                } else {
                    redact(&format!("{}: {}", result.code, result.detail))
                });
                record.planner = result.planner;
                record.steps = if record.steps.is_empty() {
                    result.steps
                } else {
                    record.steps
                };
            }
            let counter = match result.decision {
                AuditDecision::Executed => Counter::Executed,
                AuditDecision::Planned => Counter::Planned,
                AuditDecision::Skipped => Counter::Skipped,
                AuditDecision::Failed => Counter::Failed,
                AuditDecision::Rejected => Counter::Rejected,
            };
            self.stats.incr(counter);

            let settle_for_real = !self.dry_run() || cfg.settle_in_dry_run;
            let mut keep_body = matches!(action, Action::DeadLetter(_))
                || (matches!(action, Action::Nack(_)) && !self.caps.redelivery);
            let body = delivery.body().clone();
            if !settle_for_real {
                record.settle = SettleAction::None;
                // Nothing was settled; a would-be dead letter still shows its body.
                keep_body = matches!(action, Action::DeadLetter(_));
            } else {
                let outcome = match action {
                    Action::Ack => {
                        record.settle = SettleAction::Ack;
                        delivery.ack().await.map(|()| Counter::Acked)
                    }
                    Action::Nack(d) => {
                        record.settle = SettleAction::Nack;
                        delivery.nack(d).await.map(|()| Counter::Nacked)
                    }
                    Action::DeadLetter(reason) => {
                        record.settle = SettleAction::DeadLetter;
                        match delivery.dead_letter(&reason).await {
                            Ok(how) => {
                                record.dead_letter = Some(
                                    match how {
                                        DeadLetterOutcome::Parked => "parked",
                                        DeadLetterOutcome::LeftToRedrive => "left_to_redrive",
                                        DeadLetterOutcome::AuditOnly => "audit_only",
                                    }
                                    .to_owned(),
                                );
                                Ok(Counter::DeadLettered)
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                match outcome {
                    Ok(c) => self.stats.incr(c),
                    Err(e) => {
                        self.stats.incr(Counter::SettleErrors);
                        tracing::warn!(error = %e, "settling the delivery failed");
                        record.settle_error = Some(e.to_string());
                        keep_body = true;
                    }
                }
            }
            tracing::debug!(
                decision = result.decision.as_str(),
                reason = result.code,
                detail = %crate::redact::redact_cow(&result.detail),
                "delivery settled"
            );
            if !audited {
                return;
            }
            if keep_body {
                record.set_body(&body);
            }
            let written = std::panic::catch_unwind(AssertUnwindSafe(|| self.audit.record(&record)))
                .unwrap_or_else(|_| Err(panicked("audit sink", "record")));
            if let Err(e) = written {
                tracing::error!(error = %e, "writing the audit record failed");
            }
        }
    }
}

/// Records an executor outcome in the step's audit form.
fn record_outcome(step: &mut AuditStep, read_only: bool, o: StepOutcome) {
    step.read_only = read_only;
    step.status = o.status;
    step.exit_code = o.exit_code;
    step.duration_ms = u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX);
    step.context = (*o.context).clone();
    step.extra_args = o.extra_args;
    step.stderr = (!o.stderr_tail.is_empty()).then(|| redact(&o.stderr_tail));
}
