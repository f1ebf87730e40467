//! One invocation's records as [`Delivery`]s for the pipeline, and what
//! became of each ([`RecordOutcome`], from the pipeline's [`Settled`]). A
//! record's settle verbs do nothing but dead-letter (Lambda deletes what the
//! handler reports done, and redelivers the rest); the pipeline's answer
//! says which is which.

use crate::error::Result;
use crate::model::{BodyFormat, decode};
use crate::pipeline::{SettleAction, Settled};
use crate::source::{DeadLetterMode, DeadLetterOutcome, Delivery, Settle};
use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsMessage;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

/// How one record of an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordOutcome {
    /// Done (executed or deliberately skipped): never deliver again.
    Acked,
    /// Failed or deferred: deliver again.
    Nacked,
    /// Poison, handled as the dead-letter setting says.
    DeadLettered(DeadLetterOutcome),
    /// Not settled: the deadline came first, or settling failed.
    Unsettled,
}

impl RecordOutcome {
    /// Whether the record is finished with: acked, or parked / recorded as a
    /// dead letter. Everything else must be delivered again (for an SQS
    /// trigger it goes into `batchItemFailures`; for EventBridge the
    /// invocation fails).
    pub fn is_done(self) -> bool {
        matches!(
            self,
            RecordOutcome::Acked
                | RecordOutcome::DeadLettered(DeadLetterOutcome::Parked)
                | RecordOutcome::DeadLettered(DeadLetterOutcome::AuditOnly)
        )
    }

    /// A short name: `acked`, `nacked`, `parked`, `left_to_redrive`,
    /// `audit_only`, `unsettled`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::Acked => "acked",
            RecordOutcome::Nacked => "nacked",
            RecordOutcome::DeadLettered(DeadLetterOutcome::Parked) => "parked",
            RecordOutcome::DeadLettered(DeadLetterOutcome::LeftToRedrive) => "left_to_redrive",
            RecordOutcome::DeadLettered(_) => "audit_only",
            RecordOutcome::Unsettled => "unsettled",
        }
    }
}

/// How poison is dead-lettered from inside a function.
#[async_trait]
pub(crate) trait Parker: Send + Sync + fmt::Debug {
    /// Parks `body` with `reason`; `Ok` means it is safely stored elsewhere.
    async fn park(&self, message_id: &str, body: &[u8], reason: &str) -> Result<()>;
}

/// What a dead-lettered record becomes.
#[derive(Clone, Debug)]
pub(crate) enum DeadLetterPlan {
    /// Reported as failed; the trigger's own retry and redrive park it.
    Redrive,
    /// Forwarded by a [`Parker`] (an SQS dead-letter queue; feature `sqs`).
    #[cfg_attr(not(feature = "sqs"), allow(dead_code))]
    Forward(Arc<dyn Parker>),
    /// Done; the body lives on in the audit record only.
    AuditOnly,
}

impl DeadLetterPlan {
    pub(crate) fn mode(&self) -> DeadLetterMode {
        match self {
            DeadLetterPlan::Redrive => DeadLetterMode::Redrive,
            DeadLetterPlan::Forward(_) => DeadLetterMode::Native,
            DeadLetterPlan::AuditOnly => DeadLetterMode::AuditOnly,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) message_id: String,
    pub(crate) body: bytes::Bytes,
    pub(crate) delivery_count: u32,
    pub(crate) first_seen: Option<std::time::SystemTime>,
    pub(crate) attributes: Vec<(String, String)>,
}

#[derive(Debug)]
struct RecordSettle {
    message_id: String,
    body: bytes::Bytes,
    dead_letter: DeadLetterPlan,
}

#[async_trait]
impl Settle for RecordSettle {
    async fn ack(&self) -> Result<()> {
        // Lambda deletes the records the handler does not report as failed.
        Ok(())
    }

    async fn nack(&self, _retry_after: Duration) -> Result<()> {
        // The trigger redelivers after the queue's visibility timeout (SQS)
        // or its own retry schedule (asynchronous invocation).
        Ok(())
    }

    async fn extend(&self, _by: Duration) -> Result<()> {
        Ok(())
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        let outcome = match &self.dead_letter {
            DeadLetterPlan::Redrive => DeadLetterOutcome::LeftToRedrive,
            DeadLetterPlan::AuditOnly => DeadLetterOutcome::AuditOnly,
            DeadLetterPlan::Forward(parker) => {
                // Not parked = not done: reported as failed, so nothing is lost.
                parker.park(&self.message_id, &self.body, reason).await?;
                DeadLetterOutcome::Parked
            }
        };
        Ok(outcome)
    }
}

/// What the engine decided about one record, as its audit record says.
impl Record {
    /// The record as a delivery whose dead letters go as `dead_letter` says.
    pub(crate) fn into_delivery(self, dead_letter: &DeadLetterPlan) -> Delivery {
        let settle = RecordSettle {
            message_id: self.message_id.clone(),
            body: self.body.clone(),
            dead_letter: dead_letter.clone(),
        };
        let mut d = Delivery::new(self.message_id, self.body, Arc::new(settle))
            .with_delivery_count(self.delivery_count);
        if let Some(at) = self.first_seen {
            d = d.with_first_seen(at);
        }
        for (k, v) in self.attributes {
            d = d.with_attribute(k, v);
        }
        d
    }
}

/// How `settled` ended for Lambda. A record the deadline stopped before its
/// first step (`cancelled`) is not done, like one never reached.
pub(crate) fn outcome_of(settled: &Settled) -> RecordOutcome {
    if settled.reason_code == "cancelled" || settled.settle_error.is_some() {
        return RecordOutcome::Unsettled;
    }
    match settled.settle {
        SettleAction::Ack => RecordOutcome::Acked,
        SettleAction::Nack => RecordOutcome::Nacked,
        SettleAction::DeadLetter => {
            RecordOutcome::DeadLettered(settled.dead_letter.unwrap_or(DeadLetterOutcome::AuditOnly))
        }
        _ => RecordOutcome::Unsettled,
    }
}

impl Record {
    /// An SQS record: receive count, first receive time, system and message
    /// attributes as the SQS source reports them.
    pub(crate) fn from_sqs(m: SqsMessage) -> Record {
        let count = m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1);
        let first_seen = m
            .attributes
            .get("ApproximateFirstReceiveTimestamp")
            .or_else(|| m.attributes.get("SentTimestamp"))
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .filter(|t| *t <= SystemTime::now() + Duration::from_secs(3600));
        let mut attributes: Vec<(String, String)> = m
            .attributes
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "ApproximateReceiveCount" | "ApproximateFirstReceiveTimestamp"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in &m.message_attributes {
            if let Some(s) = &value.string_value {
                attributes.push((format!("attribute.{name}"), s.clone()));
            }
        }
        Record {
            message_id: m.message_id.unwrap_or_default(),
            body: Bytes::from(m.body.unwrap_or_default()),
            delivery_count: count,
            first_seen,
            attributes,
        }
    }
}

/// The envelope fields the EventBridge handler reads.
#[derive(Deserialize)]
struct EventBridgeEnvelope<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow, default)]
    detail: Option<&'a RawValue>,
}

/// The event id and the body to decode: the `detail` when it is a Prisma
/// Cloud alert (relayed by EventBridge), otherwise the whole event (the
/// pipeline decodes CloudTrail events in their EventBridge envelope, and
/// reports anything else as undecodable, with its body).
pub(crate) fn eventbridge_body(event: &[u8]) -> (String, Bytes) {
    let Ok(envelope) = serde_json::from_slice::<EventBridgeEnvelope<'_>>(event) else {
        return ("eventbridge".to_owned(), Bytes::copy_from_slice(event));
    };
    let id = envelope.id.unwrap_or_else(|| "eventbridge".to_owned());
    if let Some(detail) = envelope.detail {
        let is_alert = decode(detail.get().as_bytes()).is_ok_and(|d| {
            matches!(
                d.format,
                BodyFormat::PrismaAlert | BodyFormat::PrismaAlertList
            )
        });
        if is_alert {
            return (id, Bytes::copy_from_slice(detail.get().as_bytes()));
        }
    }
    (id, Bytes::copy_from_slice(event))
}
