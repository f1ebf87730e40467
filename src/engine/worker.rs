//! The receive loop: permits, receiving, the end of a source or of a dry
//! run's pass, idle back-off, and handing each batch to the pipeline.

use super::Engine;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::source::AlertSource;
use crate::telemetry::{Counter, Summary};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

impl Engine {
    /// Runs until the source is exhausted or `cancel` fires, then waits for
    /// in-flight deliveries to finish or be released, and returns the counters.
    ///
    /// A dry run (that does not settle) makes one pass and ends: at the
    /// first receive that is empty or brings only deliveries it has already
    /// reported; it then releases everything it kept, so the queue is left as
    /// it was.
    ///
    /// Returns an error for a permanent source failure (an unreadable file,
    /// a queue that does not exist), and when the audit sink has failed for
    /// longer than [`EngineConfig::audit_outage_limit`](super::EngineConfig::audit_outage_limit)
    /// or cannot be flushed at the end; everything that happens to a single
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
        let worker = Worker {
            source: Arc::clone(&self.source),
            pipeline: self.pipeline.clone(),
        };
        let mut task = AbortOnDrop(tokio::spawn(worker.run_loop(cancel)));
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
}

struct Worker {
    source: Arc<dyn AlertSource>,
    pipeline: Pipeline,
}

/// Why the loop ended early.
enum Stop {
    Cancelled,
    Fatal(Error),
}

impl Worker {
    async fn run_loop(self, cancel: CancellationToken) -> Result<Summary> {
        let cfg = self.pipeline.config().clone();
        let stats = Arc::clone(self.pipeline.stats());
        let caps = self.pipeline.capabilities().clone();
        let batch_max = cfg.receive_batch.min(caps.max_batch.max(1)).max(1);
        // One permit per delivery received and not settled: the read-ahead,
        // independent of how many plans run at once (the pipeline's limit).
        // Deliveries waiting beyond one receive batch only serve a planner
        // that plans ahead; to any other they bring nothing, and each one a
        // worker holds when it dies has used up one of the queue's receives.
        let in_flight = if self.pipeline.plans_ahead() {
            cfg.in_flight_limit()
        } else {
            cfg.in_flight_limit()
                .min(cfg.concurrency.max(1).saturating_add(batch_max))
        };
        let permits = Arc::new(Semaphore::new(in_flight));
        // Receive full batches: wait until a whole batch fits.
        let refill = u32::try_from(batch_max.min(in_flight)).unwrap_or(1);
        let bytes = Arc::new(BodyBytes::new(cfg.read_ahead_bytes));
        // A dry run that settles nothing over a source that redelivers makes
        // one pass: what it has reported, by a hash of the message id (8
        // bytes each; a source that never redelivers needs no memory of it).
        let mut pass = (self.pipeline.is_dry_run() && !cfg.settle_in_dry_run && caps.redelivery)
            .then(HashSet::<u64>::new);
        let mut tasks = JoinSet::new();
        let mut receive_failures = 0u32;
        let mut idle_polls = 0u32;
        let stop = loop {
            while let Some(done) = tasks.try_join_next() {
                log_join(done);
            }
            if let Some(outage) = self.pipeline.audit_outage() {
                if outage > cfg.audit_outage_limit {
                    break Some(Stop::Fatal(audit_broken(outage)));
                }
            }
            if cancel.is_cancelled() {
                break Some(Stop::Cancelled);
            }
            // Wait until a few permits are free rather than one: each wake-up
            // of this loop costs a cross-thread hand-off, and receiving in
            // small batches costs API calls.
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => break Some(Stop::Cancelled),
                p = Arc::clone(&permits).acquire_many_owned(refill) => match p {
                    Ok(p) => p,
                    Err(_) => break Some(Stop::Cancelled),
                },
            };
            // Bodies held in memory: receive only below the byte bound.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break Some(Stop::Cancelled),
                () = bytes.room() => {}
            }
            // One permit object for the whole batch: a delivery settled in
            // place returns its share with the batch's, in one release.
            let mut held = first;
            top_up(&mut held, &permits, batch_max);
            let asked = std::time::Instant::now();
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => break Some(Stop::Cancelled),
                r = self.source.receive(held.num_permits()) => r,
            };
            let mut batch = match received {
                Err(e) => {
                    stats.incr(Counter::ReceiveErrors);
                    if !e.is_temporary() {
                        tracing::error!(source = self.source.name(), error = %e, "source failed permanently");
                        break Some(Stop::Fatal(e));
                    }
                    receive_failures += 1;
                    let delay = cfg.receive_retry.delay(receive_failures, "receive");
                    tracing::warn!(source = self.source.name(), error = %e, ?delay, "receive failed; retrying");
                    drop(held);
                    tokio::select! {
                        () = cancel.cancelled() => break Some(Stop::Cancelled),
                        () = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
                Ok(batch) => batch,
            };
            if let Some(seen) = &mut pass {
                // Deliveries reported already are kept, not reported again.
                let before = batch.len();
                let mut fresh = Vec::with_capacity(before);
                for delivery in batch {
                    if seen.insert(id_hash(delivery.message_id())) {
                        fresh.push(delivery);
                    } else {
                        self.pipeline.hold(delivery);
                    }
                }
                batch = fresh;
                if self.pipeline.held() >= MAX_HELD {
                    drop(held);
                    for delivery in batch {
                        self.pipeline.hold(delivery);
                    }
                    tracing::warn!(
                        reported = seen.len(),
                        "dry run: the pass stops at {MAX_HELD} held deliveries (all released now)"
                    );
                    break None;
                }
                if batch.is_empty() {
                    drop(held);
                    tracing::info!(
                        reported = seen.len(),
                        "dry run: one pass done (the source {})",
                        if before > 0 {
                            "brought back only deliveries already reported"
                        } else {
                            "is empty"
                        }
                    );
                    break None;
                }
            }
            if batch.is_empty() {
                drop(held);
                if self.source.is_exhausted() {
                    if tasks.is_empty() {
                        break None;
                    }
                    // In-flight deliveries may still be released and come
                    // back (poison on its way to the redrive policy): once
                    // they are settled, receive again. The source is done
                    // only when a receive finds it empty with nothing in flight.
                    while let Some(done) = tasks.join_next().await {
                        log_join(done);
                    }
                } else if asked.elapsed() < Duration::from_millis(5) {
                    // A source that answers "nothing" without waiting must
                    // not turn this loop into a busy spin.
                    idle_polls = idle_polls.saturating_add(1);
                    let pause = Duration::from_millis(10)
                        .saturating_mul(idle_polls)
                        .min(Duration::from_millis(500));
                    tokio::select! {
                        () = cancel.cancelled() => break Some(Stop::Cancelled),
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                continue;
            }
            receive_failures = 0;
            idle_polls = 0;
            stats.add(Counter::Received, batch.len() as u64);
            // A source that returned more than asked gets what permits are
            // free; the rest is released for redelivery at once (waiting here
            // for permits this loop holds would deadlock).
            top_up(&mut held, &permits, batch.len());
            if batch.len() > held.num_permits() {
                let surplus = batch.split_off(held.num_permits());
                let pipeline = self.pipeline.clone();
                tasks.spawn(async move { pipeline.release_surplus(surplus).await });
            }
            let unused = held.num_permits() - batch.len();
            if unused > 0 {
                drop(held.split(unused));
            }
            let pipeline = self.pipeline.clone();
            let cancel = cancel.clone();
            let body_bytes = bytes.take(batch.iter().map(|d| d.body().len()).sum());
            tasks.spawn(async move {
                drop(pipeline.handle_holding(batch, held, &cancel).await);
                drop(body_bytes);
            });
        };
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
        self.pipeline.release_held().await;
        let flushed = self.pipeline.flush_audit();
        match stop {
            Some(Stop::Fatal(e)) => Err(e),
            // Ending with the sink still failing: its last records were not written.
            _ => match (self.pipeline.audit_outage(), flushed) {
                (Some(_), _) => Err(audit_error(
                    "the audit sink was failing when the run ended: records were not written; \
                     no delivery was acked or dead-lettered without its record",
                )),
                (None, Err(e)) => {
                    tracing::error!(error = %e, "flushing the audit trail failed");
                    Err(e)
                }
                (None, Ok(())) => Ok(stats.snapshot()),
            },
        }
    }
}

/// The bytes of bodies received and not settled, against the read-ahead's
/// byte bound.
struct BodyBytes {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
    freed: tokio::sync::Notify,
}

/// A batch's bodies, given back when dropped.
struct Taken {
    gate: Arc<BodyBytes>,
    n: usize,
}

impl Drop for Taken {
    fn drop(&mut self) {
        self.gate.used.fetch_sub(self.n, Ordering::AcqRel);
        self.gate.freed.notify_waiters();
    }
}

impl BodyBytes {
    fn new(limit: usize) -> Self {
        BodyBytes {
            limit: limit.max(1),
            used: Default::default(),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Waits until the bodies held are below the bound.
    async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if self.used.load(Ordering::Acquire) < self.limit {
                return;
            }
            freed.await;
        }
    }

    fn take(self: &Arc<Self>, n: usize) -> Taken {
        self.used.fetch_add(n, Ordering::AcqRel);
        Taken {
            gate: Arc::clone(self),
            n,
        }
    }
}

/// A dry run's pass ends once it holds this many deliveries (their bodies
/// are in memory until the pass ends).
const MAX_HELD: usize = 10_000;

/// A message id's hash, for the dry run's memory of what it reported.
fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

/// The error that stops a worker whose audit sink keeps failing.
fn audit_broken(outage: Duration) -> Error {
    audit_error(&format!(
        "the audit sink has failed for {:.1} s: stopping; no delivery was acked or \
         dead-lettered without its record",
        outage.as_secs_f64()
    ))
}

fn audit_error(message: &str) -> Error {
    tracing::error!("{message}");
    Error::Backend {
        backend: "audit",
        message: message.to_owned(),
        temporary: false,
        source: None,
    }
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

fn log_join(done: std::result::Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "delivery task failed");
    }
}
