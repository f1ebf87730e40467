//! The worker: a source feeding the [pipeline](crate::pipeline).
//!
//! The [`Engine`] owns receiving, permits (deliveries in flight) and
//! read-ahead, exhaustion, the dry-run pass and idle back-off; each batch it
//! receives goes to [`Pipeline`], which decides,
//! executes, settles and audits every delivery. A delivery is acked only
//! after its plan ran to the end or it was deliberately skipped, and only
//! after its audit record is written; a failed step nacks with backoff;
//! poison (undecodable, unsafe, failed too often) is dead-lettered with its
//! body in the audit record. Leases are extended while steps run; cancelling
//! stops receiving and releases what has not started.
//!
//! The pipeline's types are re-exported here, where they have always been.

mod signal;
mod worker;

use crate::executor::CommandExecutor;
use crate::pipeline::{Pipeline, PipelineBuilder, Stage};
use crate::planner::RemediationPlanner;
use crate::source::AlertSource;
use crate::telemetry::Stats;
use std::fmt;
use std::sync::Arc;

#[cfg(feature = "dynamodb")]
pub use crate::pipeline::dedup_dynamodb;
pub use crate::pipeline::{
    AuditDecision, AuditRecord, AuditSink, AuditStep, Claim, ClaimDetail, DedupStore, EngineConfig,
    JsonLinesAudit, LeasePolicy, MemoryAudit, MemoryDedup, NoAudit, SettleAction, TeeAudit,
    TextAudit,
};
pub use signal::shutdown_on_signal;

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    source: Arc<dyn AlertSource>,
    pipeline: PipelineBuilder,
}

impl EngineBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.pipeline = self.pipeline.config(config);
        self
    }
    /// Sets the dedup store (default: in-memory). A dry run never writes it:
    /// it deduplicates within itself in a private in-memory store.
    pub fn dedup(mut self, dedup: Arc<dyn DedupStore>) -> Self {
        self.pipeline = self.pipeline.dedup(dedup);
        self
    }
    /// Sets the audit sink (default: none).
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.pipeline = self.pipeline.audit(audit);
        self
    }
    /// Shares a stats handle (e.g. with backends counting API calls).
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.pipeline = self.pipeline.stats(stats);
        self
    }
    /// Adds a [`Stage`] to the pipeline, after those already added.
    pub fn stage(mut self, stage: Arc<dyn Stage>) -> Self {
        self.pipeline = self.pipeline.stage(stage);
        self
    }
    /// Builds the engine.
    pub fn build(self) -> Engine {
        let pipeline = self
            .pipeline
            .capabilities(self.source.capabilities())
            .source_name(self.source.name())
            .build();
        self.source.attach_stats(pipeline.stats());
        Engine {
            source: self.source,
            pipeline,
        }
    }
}

/// The remediation worker. Cheap to clone; `run` may be called once at a time.
#[derive(Clone)]
pub struct Engine {
    source: Arc<dyn AlertSource>,
    pipeline: Pipeline,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("source", &self.source)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder wiring `source`, `planner` and `executor`.
    pub fn builder(
        source: Arc<dyn AlertSource>,
        planner: Arc<dyn RemediationPlanner>,
        executor: Arc<dyn CommandExecutor>,
    ) -> EngineBuilder {
        EngineBuilder {
            source,
            pipeline: Pipeline::builder(planner, executor),
        }
    }

    /// The live counters.
    pub fn stats(&self) -> &Arc<Stats> {
        self.pipeline.stats()
    }

    /// The pipeline each batch goes through.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}
