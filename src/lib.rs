//! # remediation
//!
//! Turn cloud security findings — Prisma Cloud alerts, CloudTrail API calls,
//! Google Cloud audit logs and Security Command Center findings — into safe,
//! automatic fixes.
//!
//! A worker is three parts wired into one [`Engine`](engine::Engine):
//!
//! * an [`AlertSource`](source::AlertSource) hands out
//!   [`Delivery`](source::Delivery)s with one-shot settle verbs (`ack`,
//!   `nack(delay)`, `extend`, `dead_letter`);
//! * a [`RemediationPlanner`](planner::RemediationPlanner) turns decoded
//!   [`Event`](model::Event)s into a [`Plan`](plan::Plan) of ordered steps, or a
//!   [`Skip`](plan::Skip) with a reason;
//! * a [`CommandExecutor`](executor::CommandExecutor) runs each step — an argv,
//!   never a shell string — in the account's context.
//!
//! The engine owns the delivery semantics: a delivery is acked only after its
//! plan ran to the end or it was deliberately skipped; a failed step nacks with
//! backoff; poison is dead-lettered with its body in the audit record; leases are
//! extended while steps run; concurrency and memory are bounded; every decision
//! is one JSON audit line.
//!
//! # Quick start
//!
//! ```no_run
//! use remediation::engine::{Engine, EngineConfig, JsonLinesAudit};
//! use remediation::plan::CommandPolicy;
//! use remediation::executor::{ContextMap, DryRunExecutor};
//! use remediation::planner::AlertCliPlanner;
//! use remediation::source::FileSource;
//! use std::sync::Arc;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn run() -> remediation::Result<()> {
//! let contexts = ContextMap::new().with_aws_profile("123456789012", "prod-remediator");
//! let engine = Engine::builder(
//!     Arc::new(FileSource::open("alerts.jsonl")?),
//!     Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
//!     // Swap in `ProcessExecutor::new(..)` to run the commands for real.
//!     Arc::new(DryRunExecutor::new(CommandPolicy::default(), contexts)),
//! )
//! .config(EngineConfig::default().with_concurrency(8))
//! .audit(Arc::new(JsonLinesAudit::append("audit.jsonl")?))
//! .build();
//! let summary = engine.run(CancellationToken::new()).await?;
//! println!("planned {} skipped {} rejected {}", summary.planned, summary.skipped, summary.rejected);
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature      | adds |
//! |--------------|------|
//! | *(default)*  | models, traits, engine, memory and file sources, process and dry-run executors, `alert-cli` planner, CloudTrail [`rules`] (EventBridge event patterns, the [`CloudTrailPlanner`](planner::CloudTrailPlanner), built-in remediations) |
//! | `prisma`     | [`PrismaPlanner`](planner::prisma::PrismaPlanner): the Prisma Cloud remediation API (reqwest, rustls; batching, token refresh, retries) |
//! | `sqs`        | the Amazon SQS source, `source::sqs::SqsSource` (`aws-sdk-sqs`) |
//! | `servicebus` | the Azure Service Bus source, `source::ServiceBusSource` (peek-lock over REST, `azure_core` client) |
//! | `pubsub`     | the Google Cloud Pub/Sub source, `source::pubsub::PubSubSource` (`google-cloud-pubsub`: streaming pull, flow control, the client's lease management) |
//! | `lambda`     | `lambda`: the AWS Lambda adapter — SQS-triggered functions answering with the partial-batch response, EventBridge-triggered functions failing the invocation when the plan failed (`lambda_runtime`, `aws_lambda_events`) |
//! | `dynamodb`   | `engine::DynamoDedup`: a dedup store shared by every worker and function in a DynamoDB table (`aws-sdk-dynamodb`) |
//! | `full`       | all of the above |
//!
//! # Settling per backend
//!
//! | verb        | memory                    | file / stdin                 | SQS (feature `sqs`) | Service Bus (feature `servicebus`) | Pub/Sub (feature `pubsub`) |
//! |-------------|---------------------------|------------------------------|---------------------|------------------------------------|----------------------------|
//! | ack         | removed for good          | recorded only                | `DeleteMessageBatch`, 10 per call | `DELETE` lock URI (complete) | the handler's ack |
//! | nack(delay) | redelivered after `delay` | recorded (body kept in the audit) | `ChangeMessageVisibility(delay)` | `PUT` lock URI (unlock) after `delay`, or the lock kept until `delay` ends | held (lease kept) for `delay`, then nacked |
//! | extend      | lease renewed             | no-op                        | `ChangeMessageVisibilityBatch(by)` | `POST` lock URI (renew), repeated while `by` lasts | the client extends leases itself |
//! | dead-letter | parked with its body      | recorded with its body       | `SendMessage` to the DLQ + delete, or left to the redrive policy | sent to a configured queue + complete, or left to `MaxDeliveryCount` → `$DeadLetterQueue` | published to a dead-letter topic + ack, or left to the subscription's dead-letter policy |

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    rustdoc::broken_intra_doc_links
)]

#[cfg(any(feature = "sqs", feature = "dynamodb"))]
pub mod aws;
mod config;
pub mod engine;
mod error;
pub mod executor;
pub mod guardrails;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod planner;
pub mod preflight;
pub mod redact;
pub mod rules;
pub mod source;
pub mod telemetry;

pub use error::{Error, ErrorKind, Refusal, Result};

/// The attribute the crate's async traits ([`planner::RemediationPlanner`],
/// [`executor::CommandExecutor`], [`source::AlertSource`],
/// [`pipeline::Stage`], ...) are written with: put `#[async_trait]` on your
/// `impl` of one of them.
pub use async_trait::async_trait;

/// The README's examples, compiled as doc tests (they use every backend).
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
