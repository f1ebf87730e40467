//! Typed, lenient wire models for what arrives on a queue: Prisma Cloud alert
//! notifications and CloudTrail records (alone, in EventBridge envelopes, in
//! `Records` log files, in CloudWatch Logs subscriptions, wrapped in SNS), and
//! Google Cloud audit log entries and Security Command Center notifications
//! (alone, or in a Pub/Sub push envelope).
//!
//! Models are lenient where the wire is inconsistent (timestamps as strings or
//! numbers, labels as arrays or JSON-in-a-string) and strict where it matters
//! (an alert without an id is an error). Unknown fields stay reachable.
//!
//! The types users name most live here: [`Event`], [`Target`], [`Cloud`],
//! [`decode`] and its [`Decoded`]/[`BodyFormat`], the findings
//! ([`PrismaAlert`], [`CloudTrailRecord`], [`LogEntry`], [`SccNotification`])
//! and the lenient values. [`cloudtrail`], [`prisma`] and [`gcp`] hold the
//! parts of their full typed views, and [`cloudtrail::RecordSplitter`] for
//! log files.

pub mod cloudtrail;
mod envelope;
pub mod gcp;
mod json;
pub mod prisma;
mod resource;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use cloudtrail::record::CloudTrailRecord;
pub use envelope::{BodyFormat, Decoded, MAX_DECOMPRESSED_BYTES, MAX_NESTING, decode};
pub use gcp::log_entry::LogEntry;
pub use gcp::scc::SccNotification;
pub use json::{LenientBool, RawJson, StringList, Timestamp};
pub use prisma::alert::PrismaAlert;
pub use resource::Resource;
pub(crate) use resource::split_arn;

/// One decoded finding, ready to be gated and planned.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A Prisma Cloud alert notification.
    PrismaAlert(Box<PrismaAlert>),
    /// A CloudTrail record (from any of its envelopes).
    CloudTrail(Box<CloudTrailRecord>),
    /// A Google Cloud Logging entry published by a log sink (a Cloud Audit
    /// Logs entry, or another log such as Event Threat Detection's).
    GcpLog(Box<LogEntry>),
    /// A Security Command Center finding notification.
    SccFinding(Box<SccNotification>),
}

/// The kind of an [`Event`], as written in audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A Prisma Cloud alert.
    PrismaAlert,
    /// A CloudTrail record.
    Cloudtrail,
    /// A Google Cloud log entry (audit log).
    GcpAuditLog,
    /// A Security Command Center finding.
    SccFinding,
    /// A body that could not be decoded.
    Unknown,
}

impl EventKind {
    /// The audit name: `prisma_alert`, `cloudtrail`, `gcp_audit_log`,
    /// `scc_finding` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PrismaAlert => "prisma_alert",
            EventKind::Cloudtrail => "cloudtrail",
            EventKind::GcpAuditLog => "gcp_audit_log",
            EventKind::SccFinding => "scc_finding",
            EventKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::PrismaAlert(_) => EventKind::PrismaAlert,
            Event::CloudTrail(_) => EventKind::Cloudtrail,
            Event::GcpLog(_) => EventKind::GcpAuditLog,
            Event::SccFinding(_) => EventKind::SccFinding,
        }
    }

    /// The Prisma alert id, for alerts.
    pub fn alert_id(&self) -> Option<&str> {
        match self {
            Event::PrismaAlert(a) => Some(a.id()),
            Event::CloudTrail(_) | Event::GcpLog(_) | Event::SccFinding(_) => None,
        }
    }

    /// The CloudTrail `eventID`, for CloudTrail records; the `insertId` of a
    /// GCP log entry; the finding's `name` for an SCC notification.
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Event::PrismaAlert(_) => None,
            Event::CloudTrail(r) => r.event_id(),
            Event::GcpLog(e) => e.insert_id.as_deref(),
            Event::SccFinding(n) => n.finding_name(),
        }
    }

    /// The account the event belongs to (without building a whole
    /// [`Target`]); for GCP events, the project id.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Event::PrismaAlert(a) => a.account_id(),
            Event::CloudTrail(r) => r.account_id(),
            Event::GcpLog(e) => e.project_id(),
            Event::SccFinding(n) => n.project_id(),
        }
    }

    /// The key under which a completed remediation is remembered, so the same
    /// finding delivered twice is not remediated twice: alert id + status for
    /// alerts, `eventID` for CloudTrail records, `logName` + `insertId` for
    /// GCP log entries, finding name + event time + state for SCC findings.
    pub fn dedup_key(&self) -> Option<String> {
        match self {
            Event::PrismaAlert(a) => {
                let (id, status) = (a.id(), a.status().unwrap_or("open"));
                let mut key = String::with_capacity(8 + id.len() + status.len());
                for part in ["prisma:", id, ":", status] {
                    key.push_str(part);
                }
                Some(key)
            }
            Event::CloudTrail(r) => r.event_id().map(|id| ["cloudtrail:", id].concat()),
            Event::GcpLog(e) => e.dedup_key(),
            Event::SccFinding(n) => n.dedup_key(),
        }
    }

    /// The cloud the event's account lives in (AWS when an alert names none).
    pub fn cloud(&self) -> Cloud {
        match self {
            Event::PrismaAlert(a) => a.cloud_type().map(Cloud::parse).unwrap_or(Cloud::Aws),
            Event::CloudTrail(_) => Cloud::Aws,
            Event::GcpLog(_) | Event::SccFinding(_) => Cloud::Gcp,
        }
    }

    /// Where a remediation for this event must run.
    pub fn target(&self) -> Target {
        match self {
            Event::PrismaAlert(a) => Target {
                cloud: self.cloud(),
                account_id: a.account_id().map(str::to_owned),
                region: a.region().map(str::to_owned),
                resource: Resource::from_names(
                    a.resource_id(),
                    a.resource_name(),
                    a.resource_rrn(),
                ),
            },
            // A CloudTrail record names no one resource: each rule binds
            // its plan to the resource its event acted on.
            Event::CloudTrail(r) => Target {
                cloud: Cloud::Aws,
                account_id: r.account_id().map(str::to_owned),
                region: r.aws_region().map(str::to_owned),
                resource: None,
            },
            Event::GcpLog(e) => Target {
                cloud: Cloud::Gcp,
                account_id: e.project_id().map(str::to_owned),
                region: e.region(),
                resource: None,
            },
            Event::SccFinding(n) => Target {
                cloud: Cloud::Gcp,
                account_id: n.project_id().map(str::to_owned),
                region: n.region(),
                resource: None,
            },
        }
    }
}

/// The cloud an account lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Cloud {
    /// Amazon Web Services.
    Aws,
    /// Microsoft Azure.
    Azure,
    /// Google Cloud.
    Gcp,
    /// Any other cloud, by the name the finding used (lowercased).
    #[serde(untagged)]
    Other(String),
}

impl Cloud {
    /// Parses a `cloudType` as Prisma Cloud writes it (`aws`, `azure`, `gcp`, `AWS`...).
    pub fn parse(s: &str) -> Cloud {
        let s = s.trim();
        let is = |names: &[&str]| names.iter().any(|n| s.eq_ignore_ascii_case(n));
        if is(&["aws", "amazon"]) {
            Cloud::Aws
        } else if is(&["azure", "microsoft"]) {
            Cloud::Azure
        } else if is(&["gcp", "gcloud", "google"]) {
            Cloud::Gcp
        } else {
            Cloud::Other(s.to_ascii_lowercase())
        }
    }

    /// The lowercase name used in audit records.
    pub fn as_str(&self) -> &str {
        match self {
            Cloud::Aws => "aws",
            Cloud::Azure => "azure",
            Cloud::Gcp => "gcp",
            Cloud::Other(s) => s,
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a plan runs: cloud, account (AWS account, Azure subscription, GCP
/// project) and region. Executors map it to credentials.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Target {
    /// The cloud.
    pub cloud: Cloud,
    /// The account id, if the finding named one.
    pub account_id: Option<String>,
    /// The region, if the finding named one (`global` is kept as written).
    pub region: Option<String>,
    /// The resource the finding is about, if it names one: a remediating
    /// command must act on it (or on the account itself, for an account
    /// setting), or it is refused as `unbound_target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
}

impl Target {
    /// A target in `cloud` for `account_id`, without a region.
    pub fn new(cloud: Cloud, account_id: impl Into<Option<String>>) -> Self {
        Target {
            cloud,
            account_id: account_id.into(),
            region: None,
            resource: None,
        }
    }

    /// Sets the resource the finding is about.
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
}
