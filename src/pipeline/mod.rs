//! The per-delivery path: deliveries in, what was done with each out.
//!
//! [`Pipeline::handle`] takes a batch of [`Delivery`]s and returns one
//! [`Settled`] for each: decode → stages before planning (the Prisma alert
//! gate, operator filters) → dedup claim → plan (one planner call for every
//! waiting event) → stages before execution → execute → settle → audit. The
//! [worker](crate::engine::Engine) feeds it from a source; the
//! [Lambda adapter](crate::lambda) hands it an invocation's records.
//!
//! How a delivery is settled is a pure function of its result, its delivery
//! count, the source's capabilities and the dry-run setting (`settle.rs`).
//! A delivery is acked, dead-lettered or (on a source that does not
//! redeliver) nacked only after its audit record is written and flushed; an
//! audit write that fails turns the settle into a nack.
//!
//! [`Stage`]s sit between the gate and execution and may defer a delivery,
//! refuse it, or add fields to its audit record.

mod ahead;
mod audit;
mod claim;
mod config;
mod dedup;
#[cfg(feature = "dynamodb")]
pub mod dedup_dynamodb;
mod execute;
mod gate;
mod handle;
mod health;
mod lease;
mod planning;
mod result;
mod settle;
#[cfg(test)]
mod settle_tests;
mod stage;
mod text_audit;

use crate::executor::CommandExecutor;
use crate::planner::RemediationPlanner;
use crate::source::{Capabilities, DeadLetterOutcome, Delivery};
use crate::telemetry::Stats;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use audit::{
    AuditDecision, AuditRecord, AuditSink, AuditStep, JsonLinesAudit, MemoryAudit, NoAudit,
    SettleAction, TeeAudit,
};
pub use config::EngineConfig;
pub use dedup::{Claim, ClaimDetail, DedupStore, MemoryDedup};
pub use lease::LeasePolicy;
pub use stage::{
    PolicyFilter, PrismaAlertGate, Stage, StageDecision, StageOutcome, rule_matches, rule_of,
};
pub use text_audit::TextAudit;

pub(crate) use result::poll_once;

/// What was done with one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settled {
    /// The source's message id.
    pub message_id: String,
    /// The decision.
    pub decision: AuditDecision,
    /// The reason code (`executed`, `skipped` reasons, `step_failed`...).
    pub reason_code: &'static str,
    /// The detail after the reason code (not yet redacted; see
    /// [`reason`](Self::reason)).
    pub detail: String,
    /// How the delivery was settled ([`SettleAction::None`]: left alone, as
    /// in a dry run).
    pub settle: SettleAction,
    /// For a dead letter: how it was carried out.
    pub dead_letter: Option<DeadLetterOutcome>,
    /// Why settling failed (or the audit record that had to come first
    /// could not be written), if it did.
    pub settle_error: Option<String>,
}

impl Settled {
    /// `code: detail` (or the code alone), through the redaction table, as
    /// the audit record's `reason` says it.
    pub fn reason(&self) -> String {
        if self.detail.is_empty() {
            self.reason_code.to_owned()
        } else {
            crate::redact::redact(&format!("{}: {}", self.reason_code, self.detail))
        }
    }
}

/// The per-delivery path (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    core: Arc<Core>,
    source_name: Arc<str>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("source", &self.source_name)
            .field("planner", &self.core.planner.name())
            .field("executor", &self.core.executor)
            .field("stages", &self.core.stages)
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Pipeline`].
#[derive(Debug)]
pub struct PipelineBuilder {
    core: Core,
    source_name: String,
}

impl PipelineBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.core.config = config;
        self
    }
    /// Sets the dedup store (default: in-memory). A dry run never writes it:
    /// it deduplicates within itself in a private in-memory store.
    pub fn dedup(mut self, dedup: Arc<dyn DedupStore>) -> Self {
        self.core.dedup = dedup;
        self
    }
    /// Sets the audit sink (default: none).
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.core.audit = audit;
        self
    }
    /// Shares a stats handle (e.g. with backends counting API calls).
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.core.stats = stats;
        self
    }
    /// What the deliveries' source can do (lease extension, redelivery,
    /// dead-lettering); the worker sets its source's.
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.core.caps = caps;
        self
    }
    /// The source name audit records carry.
    pub fn source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = name.into();
        self
    }
    /// Adds a stage after those already added (the first is the
    /// [`PrismaAlertGate`]).
    pub fn stage(mut self, stage: Arc<dyn Stage>) -> Self {
        self.core.stages.push(stage);
        self
    }
    /// Builds the pipeline.
    pub fn build(mut self) -> Pipeline {
        let stats = &self.core.stats;
        self.core.planner.attach_stats(stats);
        self.core.dedup.attach_stats(stats);
        self.core.exec = Arc::new(Semaphore::new(self.core.config.concurrency.max(1)));
        self.core.ahead = self.core.planner.wants_batches().then(|| {
            ahead::PlanAhead::new(Arc::clone(&self.core.planner), self.core.config.concurrency)
        });
        Pipeline {
            core: Arc::new(self.core),
            source_name: self.source_name.into(),
        }
    }
}

impl Pipeline {
    /// A builder wiring `planner` and `executor`.
    pub fn builder(
        planner: Arc<dyn RemediationPlanner>,
        executor: Arc<dyn CommandExecutor>,
    ) -> PipelineBuilder {
        PipelineBuilder {
            core: Core {
                planner,
                executor,
                dedup: Arc::new(MemoryDedup::default()),
                audit: Arc::new(NoAudit),
                stats: Arc::new(Stats::new()),
                config: EngineConfig::default(),
                caps: Capabilities::default(),
                dry_planned: MemoryDedup::default(),
                stages: vec![Arc::new(PrismaAlertGate)],
                exec: Arc::new(Semaphore::new(1)),
                ahead: None,
                health: health::AuditHealth::default(),
                held: health::Held::default(),
            },
            source_name: String::new(),
        }
    }

    /// The same pipeline writing `name` as the source of its audit records.
    pub fn named(&self, name: &str) -> Pipeline {
        Pipeline {
            core: Arc::clone(&self.core),
            source_name: name.into(),
        }
    }

    /// The live counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.core.stats
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.core.config
    }

    /// What the deliveries' source can do, as the pipeline was built with.
    pub fn capabilities(&self) -> &Capabilities {
        &self.core.caps
    }

    /// Whether the planner plans in batches, so the pipeline plans ahead
    /// everything waiting ([`RemediationPlanner::wants_batches`]).
    pub fn plans_ahead(&self) -> bool {
        self.core.ahead.is_some()
    }

    /// Whether the executor only records (a dry run).
    pub fn is_dry_run(&self) -> bool {
        self.core.dry_run()
    }

    /// Handles `batch` to the end and says what was done with each delivery,
    /// in order. Deliveries not started when `cancel` fires are released
    /// (`cancelled`); a step already running finishes.
    pub async fn handle(&self, batch: Vec<Delivery>, cancel: &CancellationToken) -> Vec<Settled> {
        self.core
            .handle_batch(&self.source_name, batch, None, cancel)
            .await
    }

    /// [`handle`](Self::handle) for the worker: `permits` (one per
    /// delivery) are given back as deliveries are settled.
    pub(crate) async fn handle_holding(
        &self,
        batch: Vec<Delivery>,
        permits: OwnedSemaphorePermit,
        cancel: &CancellationToken,
    ) -> Vec<Settled> {
        self.core
            .handle_batch(&self.source_name, batch, Some(permits), cancel)
            .await
    }

    /// Releases deliveries the worker cannot take (beyond its limits) for
    /// redelivery, audited.
    pub(crate) async fn release_surplus(&self, surplus: Vec<Delivery>) {
        self.core.release_surplus(&self.source_name, surplus).await;
    }

    /// Dry run: keeps `delivery` (seen before) until the pass ends, without
    /// reporting it again.
    pub(crate) fn hold(&self, delivery: Delivery) {
        self.core.held.put(delivery);
    }

    /// Dry run: how many deliveries are held.
    pub(crate) fn held(&self) -> usize {
        self.core.held.len()
    }

    /// Dry run: releases everything held (visibility 0, unlock), at once.
    pub async fn release_held(&self) {
        self.core.held.release_all(&self.core.stats).await;
    }

    /// How long the audit sink has been failing, if it is.
    pub fn audit_outage(&self) -> Option<Duration> {
        self.core.health.outage()
    }

    /// Flushes the audit sink.
    pub fn flush_audit(&self) -> crate::error::Result<()> {
        self.core.audit.flush()
    }
}

/// What the pipeline holds.
#[derive(Debug)]
struct Core {
    planner: Arc<dyn RemediationPlanner>,
    executor: Arc<dyn CommandExecutor>,
    dedup: Arc<dyn DedupStore>,
    audit: Arc<dyn AuditSink>,
    stats: Arc<Stats>,
    config: EngineConfig,
    caps: Capabilities,
    /// The dry run's own dedup store (see `Core::dedup_store`).
    dry_planned: MemoryDedup,
    stages: Vec<Arc<dyn Stage>>,
    /// Plans running at once (`config.concurrency`).
    exec: Arc<Semaphore>,
    /// Gathers waiting events into one planner call, for a planner that
    /// wants batches.
    ahead: Option<Arc<ahead::PlanAhead>>,
    health: health::AuditHealth,
    /// Dry run: deliveries kept until the pass ends.
    held: health::Held,
}
