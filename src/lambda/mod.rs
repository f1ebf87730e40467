//! AWS Lambda adapter (feature `lambda`): the same engine — planners,
//! executors, dedup store, audit and stats — run inside SQS- and
//! EventBridge-triggered functions.
//!
//! * [`LambdaHandler::handle_sqs`] turns an SQS event's records into
//!   deliveries, runs the engine over them and answers with the partial-batch
//!   response: `batchItemFailures` names every record that was not acked
//!   (failed, deferred, not reached before the deadline), so only those come
//!   back. The event source mapping must have `ReportBatchItemFailures`
//!   enabled.
//! * [`LambdaHandler::handle_eventbridge`] runs one EventBridge event (a
//!   CloudTrail event, or a Prisma Cloud alert relayed by EventBridge) and
//!   fails the invocation when the event was not done with, so Lambda's own
//!   retries and failure destination apply.
//!
//! The remaining invocation time bounds the work: at the deadline margin
//! ([`DEFAULT_DEADLINE_MARGIN`], 5 s) the engine is cancelled — no new step
//! starts — and every record not done by then is reported as failed, so it
//! comes back; a step already running is cut to the time the invocation has
//! left (its deadline less [`REPORT_RESERVE`]; a step's own, shorter timeout
//! still applies), and none starts with less than [`MIN_STEP_TIME`] left. So
//! a function of any timeout, 30 s or 60 s included, runs its steps at
//! default settings, whatever the step timeout.
//!
//! Poison (undecodable, unsafe, failed `max_deliveries` times) is
//! dead-lettered as the [SQS source](crate::source) does: by default it is
//! reported as failed and left to the trigger's redrive policy (SQS:
//! `maxReceiveCount` → the queue's dead-letter queue; EventBridge: Lambda's
//! retries → the failure destination); with
//! [`with_dead_letter_queue`](LambdaHandlerBuilder::with_dead_letter_queue)
//! (features `lambda` + `sqs`) it is sent to a dead-letter queue and reported
//! done. Either way the audit record carries the body.
//!
//! [`run_sqs`] and [`run_eventbridge`] hand a handler to
//! `lambda_runtime::run`; see `examples/lambda_sqs.rs` and
//! `examples/lambda_eventbridge.rs`.
//!
//! ```no_run
//! # async fn f() -> Result<(), lambda_runtime::Error> {
//! use remediation::engine::JsonLinesAudit;
//! use remediation::plan::CommandPolicy;
//! use remediation::executor::{ContextMap, ProcessExecutor};
//! use remediation::lambda::{LambdaHandler, run_sqs};
//! use remediation::planner::AlertCliPlanner;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let contexts = ContextMap::new().with_aws_profile("123456789012", "prod");
//! let handler = LambdaHandler::builder(
//!     Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
//!     Arc::new(ProcessExecutor::new(CommandPolicy::default(), contexts)
//!         .with_timeout(Duration::from_secs(60))),
//! )
//! .audit(Arc::new(JsonLinesAudit::stdout())) // one JSON line per record in CloudWatch Logs
//! .build();
//! run_sqs(handler).await
//! # }
//! ```

mod deadline;
mod invocation;

pub use deadline::{MIN_STEP_TIME, REPORT_RESERVE};

pub use invocation::RecordOutcome;

use crate::executor::CommandExecutor;
use crate::pipeline::{
    AuditSink, DedupStore, EngineConfig, Pipeline, PipelineBuilder, Settled, Stage,
};
use crate::planner::RemediationPlanner;
use crate::source::Capabilities;
use crate::telemetry::Stats;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use invocation::{DeadLetterPlan, Record, outcome_of};
use serde::Serialize;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio_util::sync::CancellationToken;

/// The default time left before the invocation's deadline at which no new
/// step starts.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(5);

/// Runs Lambda functions through the engine. Cheap to clone; build it once
/// per function instance (outside the handler) so the dedup store, the audit
/// sink and the stats live across invocations.
#[derive(Clone)]
pub struct LambdaHandler {
    inner: Arc<HandlerInner>,
}

struct HandlerInner {
    pipeline: Pipeline,
    margin: Duration,
    dead_letter: DeadLetterPlan,
}

impl fmt::Debug for LambdaHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("LambdaHandler")
            .field("pipeline", &i.pipeline)
            .field("deadline_margin", &i.margin)
            .field("dead_letter", &i.dead_letter)
            .finish_non_exhaustive()
    }
}

/// Builds a [`LambdaHandler`].
#[derive(Debug)]
pub struct LambdaHandlerBuilder {
    pipeline: PipelineBuilder,
    stats: Arc<Stats>,
    margin: Duration,
    dead_letter: DeadLetterPlan,
}

impl LambdaHandlerBuilder {
    /// Engine settings (concurrency, `max_deliveries`, dedup lease and TTL,
    /// dry-run settling). Receive and retry delays do not apply: the records
    /// are in the event, and a failed record comes back after the queue's
    /// visibility timeout (SQS) or Lambda's retry delay (EventBridge).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.pipeline = self.pipeline.config(config);
        self
    }

    /// The dedup store (default: in-memory, shared by the invocations of
    /// this function instance only; a DynamoDB table shares it between all
    /// instances and workers).
    pub fn dedup(mut self, dedup: Arc<dyn DedupStore>) -> Self {
        self.pipeline = self.pipeline.dedup(dedup);
        self
    }

    /// The audit sink (default: none). `JsonLinesAudit::stdout()` writes one
    /// JSON line per record to the function's CloudWatch log stream.
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.pipeline = self.pipeline.audit(audit);
        self
    }

    /// Shares a stats handle (counters accumulate across invocations).
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }

    /// Adds a [`Stage`] to the pipeline (see [`crate::pipeline`]).
    pub fn stage(mut self, stage: Arc<dyn Stage>) -> Self {
        self.pipeline = self.pipeline.stage(stage);
        self
    }

    /// How long before the invocation's deadline no new step starts (default
    /// [`DEFAULT_DEADLINE_MARGIN`]). It need not cover the step timeout: a
    /// running step is cut to the time the invocation has left.
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Poison is reported as failed and left to the trigger's redrive
    /// policy or failure destination (the default).
    pub fn with_dead_letter_redrive(mut self) -> Self {
        self.dead_letter = DeadLetterPlan::Redrive;
        self
    }

    /// Poison is reported done; its body lives on in the audit record only.
    /// For queues without a redrive policy, where a poison record would
    /// otherwise come back forever.
    pub fn with_dead_letter_audit_only(mut self) -> Self {
        self.dead_letter = DeadLetterPlan::AuditOnly;
        self
    }

    /// Poison is sent to the SQS queue at `queue_url` (with the
    /// `remediation-dead-letter-reason` and `remediation-source-message-id`
    /// attributes) and then reported done; if sending fails it is reported
    /// as failed. Features `lambda` + `sqs`.
    #[cfg(feature = "sqs")]
    pub fn with_dead_letter_queue(
        mut self,
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
    ) -> Self {
        self.dead_letter = DeadLetterPlan::Forward(Arc::new(dlq::SqsParker {
            client,
            queue_url: queue_url.into(),
            stats: Arc::clone(&self.stats),
        }));
        self
    }

    /// Builds the handler.
    pub fn build(self) -> LambdaHandler {
        let caps = Capabilities {
            // The invocation's deadline bounds the work; the trigger keeps the
            // batch invisible until the function returns.
            extend: false,
            // A record reported as failed is delivered again by the trigger.
            redelivery: true,
            dead_letter: self.dead_letter.mode(),
            lease: None,
            max_batch: 10,
        };
        let pipeline = self.pipeline.capabilities(caps).stats(self.stats).build();
        LambdaHandler {
            inner: Arc::new(HandlerInner {
                pipeline,
                margin: self.margin,
                dead_letter: self.dead_letter,
            }),
        }
    }
}

/// One record of an SQS invocation and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RecordReport {
    /// The SQS message id (empty if the record had none).
    pub message_id: String,
    /// How it was settled.
    pub outcome: RecordOutcome,
    /// The engine's decision (`executed`, `skipped`, `failed`...), if it got that far.
    pub decision: Option<String>,
    /// The reason code (`step_failed`, `test_notification`, `cancelled`...).
    pub reason_code: Option<String>,
    /// The reason code and detail.
    pub reason: Option<String>,
}

impl Serialize for RecordOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The result of one SQS invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SqsInvocationReport {
    /// Every record, in the event's order.
    pub records: Vec<RecordReport>,
}

impl SqsInvocationReport {
    /// The message ids of the records to deliver again.
    pub fn failed_message_ids(&self) -> Vec<&str> {
        self.records
            .iter()
            .filter(|r| !r.outcome.is_done())
            .map(|r| r.message_id.as_str())
            .collect()
    }

    /// The partial-batch response for Lambda: every record not done with.
    /// A record without a message id is reported with an empty identifier,
    /// which makes Lambda retry the whole batch (nothing is lost; the dedup
    /// store keeps what was done from running twice).
    pub fn batch_response(&self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        response.set_failures(self.failed_message_ids());
        response
    }
}

/// A successful EventBridge invocation's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EventBridgeReport {
    /// The EventBridge event id.
    pub event_id: String,
    /// `acked` (executed, planned or skipped) or how poison was dead-lettered.
    pub outcome: RecordOutcome,
    /// The engine's decision.
    pub decision: Option<String>,
    /// The reason code and detail.
    pub reason: Option<String>,
}

/// An EventBridge event that was not done with: the invocation fails, so
/// Lambda retries it and then sends it to the failure destination.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} was not remediated ({}): {}", outcome.as_str(), reason.as_deref().unwrap_or("no decision"))]
#[non_exhaustive]
pub struct InvocationFailed {
    /// The EventBridge event id.
    pub event_id: String,
    /// How it was settled.
    pub outcome: RecordOutcome,
    /// The reason code (`step_failed`, `cancelled`, `undecodable`...).
    pub reason_code: Option<String>,
    /// The reason code and detail.
    pub reason: Option<String>,
}

impl From<InvocationFailed> for lambda_runtime::Diagnostic {
    fn from(e: InvocationFailed) -> Self {
        lambda_runtime::Diagnostic {
            error_type: format!(
                "Remediation.{}",
                e.reason_code.as_deref().unwrap_or(e.outcome.as_str())
            ),
            error_message: e.to_string(),
        }
    }
}

impl LambdaHandler {
    /// A builder running `planner` and `executor` (dry run if the executor is one).
    pub fn builder(
        planner: Arc<dyn RemediationPlanner>,
        executor: Arc<dyn CommandExecutor>,
    ) -> LambdaHandlerBuilder {
        let executor: Arc<dyn CommandExecutor> =
            Arc::new(deadline::DeadlineExecutor { inner: executor });
        LambdaHandlerBuilder {
            pipeline: Pipeline::builder(planner, executor),
            stats: Arc::new(Stats::new()),
            margin: DEFAULT_DEADLINE_MARGIN,
            dead_letter: DeadLetterPlan::Redrive,
        }
    }

    /// The counters, accumulated over every invocation.
    pub fn stats(&self) -> &Arc<Stats> {
        self.inner.pipeline.stats()
    }

    /// Handles an SQS-triggered invocation. `deadline` is the invocation's
    /// deadline (`Context::deadline()`); `None` = no limit.
    ///
    /// Never fails as a whole: every record's fate is in the report, and
    /// [`SqsInvocationReport::batch_response`] is the function's answer.
    pub async fn handle_sqs(
        &self,
        event: SqsEvent,
        deadline: Option<SystemTime>,
    ) -> SqsInvocationReport {
        let ids: Vec<String> = event
            .records
            .iter()
            .map(|m| m.message_id.clone().unwrap_or_default())
            .collect();
        let source_name = event
            .records
            .first()
            .and_then(|m| m.event_source_arn.as_deref())
            .and_then(|arn| arn.rsplit(':').next())
            .map_or_else(|| "lambda:sqs".to_owned(), |q| format!("lambda:sqs:{q}"));
        let records = event.records.into_iter().map(Record::from_sqs).collect();
        let settled = self.run(&source_name, records, deadline).await;
        let records = ids
            .into_iter()
            .zip(settled)
            .map(|(message_id, settled)| report(message_id, &settled))
            .collect();
        SqsInvocationReport { records }
    }

    /// Handles an EventBridge-triggered invocation; `event` is the event as
    /// delivered (JSON). A CloudTrail event is decoded as it is; an event
    /// whose `detail` is a Prisma Cloud alert is handled as that alert.
    ///
    /// `Ok` when the event was executed, planned or skipped (or parked as
    /// poison in a dead-letter queue); `Err` when it failed, was deferred, was
    /// not reached before the deadline, or is poison left to Lambda's retries
    /// and failure destination.
    pub async fn handle_eventbridge(
        &self,
        event: &[u8],
        deadline: Option<SystemTime>,
    ) -> std::result::Result<EventBridgeReport, InvocationFailed> {
        let (event_id, body) = invocation::eventbridge_body(event);
        let record = Record {
            message_id: event_id.clone(),
            body,
            delivery_count: 1,
            first_seen: None,
            attributes: Vec::new(),
        };
        let settled = self.run("lambda:eventbridge", vec![record], deadline).await;
        let r = match settled.first() {
            Some(s) => report(event_id, s),
            None => not_reached(event_id),
        };
        let outcome = r.outcome;
        if outcome.is_done() {
            Ok(EventBridgeReport {
                event_id: r.message_id,
                outcome,
                decision: r.decision,
                reason: r.reason,
            })
        } else {
            Err(InvocationFailed {
                event_id: r.message_id,
                outcome,
                reason_code: r.reason_code.or_else(|| {
                    (outcome == RecordOutcome::Unsettled).then(|| "deadline".to_owned())
                }),
                reason: r.reason.or_else(|| {
                    (outcome == RecordOutcome::Unsettled).then(|| {
                        "deadline: the invocation's time ran out before the event was handled"
                            .to_owned()
                    })
                }),
            })
        }
    }

    /// Runs the engine over `records` until they are settled or the deadline
    /// margin is reached; returns each record's outcome, in order.
    /// Hands the records to the pipeline, no step starting after the
    /// deadline margin and none running past the deadline.
    async fn run(
        &self,
        source_name: &str,
        records: Vec<Record>,
        deadline: Option<SystemTime>,
    ) -> Vec<Settled> {
        let inner = &self.inner;
        let deliveries = records
            .into_iter()
            .map(|r| r.into_delivery(&inner.dead_letter))
            .collect();
        let pipeline = inner.pipeline.named(source_name);
        let cancel = CancellationToken::new();
        let timer = deadline.map(|d| {
            let stop = stop_at(d, inner.margin);
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(stop.into()).await;
                tracing::warn!("invocation deadline near: no new step starts");
                cancel.cancel();
            })
        });
        if let Some(d) = deadline {
            if stop_at(d, inner.margin) <= Instant::now() {
                tracing::error!(
                    margin = ?inner.margin,
                    "the invocation has less time left than the deadline margin: nothing runs \
                     (the function's timeout must exceed the margin)"
                );
                cancel.cancel();
            }
        }
        let stop = deadline.map_or_else(
            || Instant::now() + Duration::from_secs(365 * 24 * 3600),
            |d| stop_at(d, deadline::REPORT_RESERVE),
        );
        let settled = deadline::STOP
            .scope(stop, pipeline.handle(deliveries, &cancel))
            .await;
        if let Some(t) = timer {
            t.abort();
        }
        // A dry run keeps what it saw; the trigger redelivers it anyway.
        pipeline.release_held().await;
        settled
    }
}

/// What became of one record, as the handler reports it.
fn report(message_id: String, settled: &Settled) -> RecordReport {
    let outcome = outcome_of(settled);
    if settled.reason_code == "cancelled" {
        return not_reached(message_id);
    }
    RecordReport {
        message_id,
        outcome,
        decision: Some(settled.decision.as_str().to_owned()),
        reason_code: Some(settled.reason_code.to_owned()),
        reason: Some(settled.reason()),
    }
}

/// A record the deadline came before.
fn not_reached(message_id: String) -> RecordReport {
    RecordReport {
        message_id,
        outcome: RecordOutcome::Unsettled,
        decision: None,
        reason_code: Some("deadline".to_owned()),
        reason: Some("deadline: not handled before the invocation's deadline margin".to_owned()),
    }
}

fn stop_at(deadline: SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left.saturating_sub(margin)
}

/// Runs an SQS-triggered function: `lambda_runtime::run` with
/// [`LambdaHandler::handle_sqs`], answering with the partial-batch response.
///
/// Needs the Lambda environment (`AWS_LAMBDA_RUNTIME_API` and the function
/// variables); returns when the runtime API goes away.
pub async fn run_sqs(handler: LambdaHandler) -> std::result::Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let handler = handler.clone();
            async move {
                let deadline = event.context.deadline();
                let report = handler.handle_sqs(event.payload, Some(deadline)).await;
                Ok::<_, std::convert::Infallible>(report.batch_response())
            }
        },
    ))
    .await
}

/// Runs an EventBridge-triggered function: `lambda_runtime::run` with
/// [`LambdaHandler::handle_eventbridge`]; a failed event fails the invocation
/// with error type `Remediation.<reason_code>`.
pub async fn run_eventbridge(
    handler: LambdaHandler,
) -> std::result::Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Box<RawValue>>| {
            let handler = handler.clone();
            async move {
                let deadline = event.context.deadline();
                handler
                    .handle_eventbridge(event.payload.get().as_bytes(), Some(deadline))
                    .await
            }
        },
    ))
    .await
}

#[cfg(feature = "sqs")]
mod dlq;

#[cfg(test)]
mod tests;
