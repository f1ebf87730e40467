//! The audit trail: one JSON line per delivery saying what was received, what
//! was decided and why, what ran, and how the delivery was settled. Dead-letter
//! records carry the body, so nothing is ever lost silently.

use crate::error::{Error, Result};
use crate::executor::StepStatus;
use crate::model::EventKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;

/// What the engine decided for a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditDecision {
    /// The plan ran to the end.
    Executed,
    /// Dry run: the plan would have run.
    Planned,
    /// Deliberately not remediated.
    Skipped,
    /// A step (or the planner) failed; retried or dead-lettered.
    Failed,
    /// Refused: undecodable, unsafe command, unmapped account.
    Rejected,
    /// Put off by a stage (a rate limit, a circuit open): nacked with the
    /// stage's delay, never acked, never dead-lettered for it.
    Deferred,
    /// Shadow mode: planned and checked as for a real run, not run, acked.
    Shadow,
}

impl AuditDecision {
    /// The audit name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Executed => "executed",
            AuditDecision::Planned => "planned",
            AuditDecision::Skipped => "skipped",
            AuditDecision::Failed => "failed",
            AuditDecision::Rejected => "rejected",
            AuditDecision::Deferred => "deferred",
            AuditDecision::Shadow => "shadow",
        }
    }
}

/// How a delivery was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SettleAction {
    /// Acked: never delivered again.
    Ack,
    /// Nacked: delivered again later.
    Nack,
    /// Dead-lettered (see `dead_letter` for how).
    DeadLetter,
    /// Left alone (dry run, or shutdown before it could be settled).
    None,
}

/// One step as recorded in the audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditStep {
    /// The argv.
    pub argv: Vec<String>,
    /// `ok`, `failed`, `not_run`, `planned` or `already_done`.
    pub status: StepStatus,
    /// The exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// When the step started (RFC 3339, UTC, milliseconds), written only
    /// for steps that started: rate limits count plans starting, so their
    /// spacing shows here rather than in the record's settle `time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Environment the executor set (profile, region).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    /// Options the executor added for the target (`--subscription <id>`,
    /// `--project <id>`), written only when there are some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// Names of the files attached to the step (its argv refers to them by
    /// name), written only when there are some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The tail of stderr, secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Whether the step was a read-only query (written only when true; a dry
    /// run executes these for real).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// The read-only probes run before a removal that may lift a deny
    /// (written only when there are some).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<crate::executor::ProbeRun>,
}

/// One audit line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When the delivery was settled (RFC 3339, UTC).
    pub time: String,
    /// The source name.
    pub source: String,
    /// The source's message id.
    pub message_id: String,
    /// How many times the message has been delivered.
    pub delivery_count: u32,
    /// `prisma_alert`, `cloudtrail` or `unknown`.
    pub kind: EventKind,
    /// The Prisma alert id.
    pub alert_id: Option<String>,
    /// The CloudTrail event id.
    pub event_id: Option<String>,
    /// The account (AWS account, Azure subscription, GCP project).
    pub account_id: Option<String>,
    /// The cloud.
    pub cloud: Option<String>,
    /// The decision.
    pub decision: AuditDecision,
    /// The reason code, followed by `: detail` where there is detail.
    pub reason: Option<String>,
    /// The reason code alone.
    pub reason_code: Option<String>,
    /// For `unsafe_command`: the class of refusal (`operation_not_allowed`,
    /// `local_path`, `context_mismatch`...; see [`Refusal`](crate::Refusal)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The planner that made the plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// The rule the plan counts against: the rule that made it (CloudTrail),
    /// else the Prisma policy's id (or name), else the planner (see
    /// [`rule_of`](crate::pipeline::rule_of)). Guardrails and
    /// `remediate report` group by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The finding's resource the plan was bound to (its id, else its
    /// name), when there was a plan with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The steps, in order.
    pub steps: Vec<AuditStep>,
    /// How the delivery was settled.
    pub settle: SettleAction,
    /// For dead letters: `parked`, `left_to_redrive` or `audit_only`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// Why settling failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle_error: Option<String>,
    /// How many events the delivery carried, when more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    /// Fields added by the pipeline's stages (see
    /// [`StageDecision::Annotate`](crate::pipeline::StageDecision::Annotate)),
    /// written only when there are some.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, serde_json::Value>,
    /// The body, for dead letters (and undecodable bodies), as UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body, base64-encoded, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl AuditRecord {
    /// A record with every optional field empty.
    pub fn new(
        source: impl Into<String>,
        message_id: impl Into<String>,
        delivery_count: u32,
    ) -> Self {
        let mut record = Self::untimed(source, message_id, delivery_count);
        record.stamp();
        record
    }

    /// Sets `time` to now.
    pub(crate) fn stamp(&mut self) {
        self.time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    }

    /// A record whose `time` is set when the delivery is settled.
    pub(crate) fn untimed(
        source: impl Into<String>,
        message_id: impl Into<String>,
        delivery_count: u32,
    ) -> Self {
        AuditRecord {
            time: String::new(),
            source: source.into(),
            message_id: message_id.into(),
            delivery_count,
            kind: EventKind::Unknown,
            alert_id: None,
            event_id: None,
            account_id: None,
            cloud: None,
            decision: AuditDecision::Skipped,
            reason: None,
            reason_code: None,
            refusal: None,
            planner: None,
            rule: None,
            resource: None,
            steps: Vec::new(),
            settle: SettleAction::None,
            dead_letter: None,
            settle_error: None,
            events: None,
            annotations: BTreeMap::new(),
            body: None,
            body_base64: None,
        }
    }

    /// Records `body` as text, or base64 if it is not UTF-8; text goes
    /// through the redaction table first (a poison message may carry secrets).
    pub fn set_body(&mut self, body: &[u8]) {
        match std::str::from_utf8(body) {
            Ok(s) => self.body = Some(crate::redact::redact(s)),
            Err(_) => {
                use base64::Engine as _;
                self.body_base64 = Some(base64::engine::general_purpose::STANDARD.encode(body));
            }
        }
    }
}

/// Where audit records go.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Writes one record.
    fn record(&self, record: &AuditRecord) -> Result<()>;
    /// Whether records are kept at all; when `false` the engine does not
    /// build (or pass here) records nobody reads.
    fn enabled(&self) -> bool {
        true
    }
    /// Flushes buffered records.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Discards records.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _record: &AuditRecord) -> Result<()> {
        Ok(())
    }
    fn enabled(&self) -> bool {
        false
    }
}

/// Writes one JSON line per record to any writer, flushing each line.
pub struct JsonLinesAudit {
    out: Mutex<Box<dyn Write + Send>>,
    label: String,
}

impl fmt::Debug for JsonLinesAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesAudit")
            .field("to", &self.label)
            .finish()
    }
}

impl JsonLinesAudit {
    /// Writes to `writer`.
    pub fn new(label: impl Into<String>, writer: impl Write + Send + 'static) -> Self {
        JsonLinesAudit {
            out: Mutex::new(Box::new(LineWriter::new(writer))),
            label: label.into(),
        }
    }

    /// Appends to the file at `path`, creating it.
    pub fn append(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(format!("opening audit file {}", path.display()), e))?;
        Ok(Self::new(path.display().to_string(), file))
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::new("stdout", std::io::stdout())
    }
}

impl AuditSink for JsonLinesAudit {
    fn record(&self, record: &AuditRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record).map_err(|e| Error::Backend {
            backend: "audit",
            message: format!("serializing audit record: {e}"),
            temporary: false,
            source: None,
        })?;
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.write_all(&line)
            .map_err(|e| Error::io(format!("writing audit record to {}", self.label), e))
    }

    fn flush(&self) -> Result<()> {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.flush()
            .map_err(|e| Error::io(format!("flushing audit to {}", self.label), e))
    }
}

/// Keeps records in memory (tests, embedding).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemoryAudit {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, record: &AuditRecord) -> Result<()> {
        if let Ok(mut r) = self.records.lock() {
            r.push(record.clone());
        }
        Ok(())
    }
}

/// Fans records out to several sinks.
#[derive(Debug, Default)]
pub struct TeeAudit {
    sinks: Vec<std::sync::Arc<dyn AuditSink>>,
}

impl TeeAudit {
    /// Writes every record to each of `sinks`.
    pub fn new(sinks: Vec<std::sync::Arc<dyn AuditSink>>) -> Self {
        TeeAudit { sinks }
    }
}

impl AuditSink for TeeAudit {
    fn enabled(&self) -> bool {
        self.sinks.iter().any(|s| s.enabled())
    }

    fn record(&self, record: &AuditRecord) -> Result<()> {
        let mut first_err = None;
        for s in &self.sinks {
            if let Err(e) = s.record(record) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn flush(&self) -> Result<()> {
        for s in &self.sinks {
            s.flush()?;
        }
        Ok(())
    }
}
