//! One invocation's records as an [`AlertSource`]: a finite in-memory batch
//! whose settle verbs are written down in a ledger, so the handler can tell
//! Lambda afterwards which records are done and which must come back.

use crate::engine::{AuditRecord, AuditSink};
use crate::error::Result;
use crate::source::{
    AlertSource, Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery, Settle,
};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

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
    fn mode(&self) -> DeadLetterMode {
        match self {
            DeadLetterPlan::Redrive => DeadLetterMode::Redrive,
            DeadLetterPlan::Forward(_) => DeadLetterMode::Native,
            DeadLetterPlan::AuditOnly => DeadLetterMode::AuditOnly,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ledger {
    outcomes: Mutex<Vec<RecordOutcome>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Vec<RecordOutcome>> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, index: usize, outcome: RecordOutcome) {
        if let Some(slot) = self.lock().get_mut(index) {
            *slot = outcome;
        }
    }

    pub(crate) fn outcomes(&self) -> Vec<RecordOutcome> {
        self.lock().clone()
    }
}

/// The records of one invocation, handed out once each.
pub(crate) struct InvocationSource {
    name: String,
    pending: Mutex<VecDeque<Delivery>>,
    dead_letter: DeadLetterMode,
}

impl fmt::Debug for InvocationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationSource")
            .field("name", &self.name)
            .field("pending", &self.lock().len())
            .finish()
    }
}

/// One record going into an invocation.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) message_id: String,
    pub(crate) body: bytes::Bytes,
    pub(crate) delivery_count: u32,
    pub(crate) first_seen: Option<std::time::SystemTime>,
    pub(crate) attributes: Vec<(String, String)>,
}

impl InvocationSource {
    /// The source of `records` and the ledger their settlements go to.
    pub(crate) fn new(
        name: impl Into<String>,
        records: Vec<Record>,
        dead_letter: &DeadLetterPlan,
    ) -> (InvocationSource, Arc<Ledger>) {
        let ledger = Arc::new(Ledger {
            outcomes: Mutex::new(vec![RecordOutcome::Unsettled; records.len()]),
        });
        let pending = records
            .into_iter()
            .enumerate()
            .map(|(index, r)| {
                let settle = RecordSettle {
                    ledger: Arc::clone(&ledger),
                    index,
                    message_id: r.message_id.clone(),
                    body: r.body.clone(),
                    dead_letter: dead_letter.clone(),
                };
                let mut d = Delivery::new(r.message_id, r.body, Arc::new(settle))
                    .with_delivery_count(r.delivery_count);
                if let Some(at) = r.first_seen {
                    d = d.with_first_seen(at);
                }
                for (k, v) in r.attributes {
                    d = d.with_attribute(k, v);
                }
                d
            })
            .collect();
        let source = InvocationSource {
            name: name.into(),
            pending: Mutex::new(pending),
            dead_letter: dead_letter.mode(),
        };
        (source, ledger)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Delivery>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl AlertSource for InvocationSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let mut pending = self.lock();
        let n = max.max(1).min(pending.len());
        Ok(pending.drain(..n).collect())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The invocation's deadline bounds the work; the trigger keeps the
            // batch invisible until the function returns.
            extend: false,
            // A record reported as failed is delivered again by the trigger.
            redelivery: true,
            dead_letter: self.dead_letter,
            lease: None,
            max_batch: 10,
        }
    }

    fn is_exhausted(&self) -> bool {
        self.lock().is_empty()
    }
}

#[derive(Debug)]
struct RecordSettle {
    ledger: Arc<Ledger>,
    index: usize,
    message_id: String,
    body: bytes::Bytes,
    dead_letter: DeadLetterPlan,
}

#[async_trait]
impl Settle for RecordSettle {
    async fn ack(&self) -> Result<()> {
        self.ledger.set(self.index, RecordOutcome::Acked);
        Ok(())
    }

    async fn nack(&self, _retry_after: Duration) -> Result<()> {
        // The trigger redelivers after the queue's visibility timeout (SQS)
        // or its own retry schedule (asynchronous invocation).
        self.ledger.set(self.index, RecordOutcome::Nacked);
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
        self.ledger
            .set(self.index, RecordOutcome::DeadLettered(outcome));
        Ok(outcome)
    }
}

/// What the engine decided about one record, as its audit record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) decision: &'static str,
    pub(crate) reason_code: Option<String>,
    pub(crate) reason: Option<String>,
}

/// Keeps each record's verdict for the invocation's answer, and forwards
/// every record to the configured sink.
#[derive(Debug)]
pub(crate) struct Capture {
    inner: Arc<dyn AuditSink>,
    verdicts: Mutex<HashMap<String, Verdict>>,
}

impl Capture {
    pub(crate) fn new(inner: Arc<dyn AuditSink>) -> Capture {
        Capture {
            inner,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn take(&self, message_id: &str) -> Option<Verdict> {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(message_id)
    }
}

impl AuditSink for Capture {
    fn record(&self, record: &AuditRecord) -> Result<()> {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                record.message_id.clone(),
                Verdict {
                    decision: record.decision.as_str(),
                    reason_code: record.reason_code.clone(),
                    reason: record.reason.clone(),
                },
            );
        if self.inner.enabled() {
            self.inner.record(record)
        } else {
            Ok(())
        }
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}
