//! [`LogEntry`]: a Cloud Logging entry as a log sink
//! publishes it (a Cloud Audit Logs entry with its `protoPayload`, or another
//! log such as Event Threat Detection's `jsonPayload`), and its parts.

use super::{project_in_path, zone_region};
use crate::error::{Error, Result};
use crate::model::json::{LenientBool, RawJson, parse_raw, wire_struct};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

wire_struct! {
    /// A Cloud Logging `LogEntry`, as a log sink publishes it to Pub/Sub.
    ///
    /// Audit log entries carry an [`AuditLog`] in `protoPayload`; other
    /// entries carry `jsonPayload` or `textPayload`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct LogEntry {
        /// `logName`: `projects/P/logs/cloudaudit.googleapis.com%2Factivity`...
        "logName" => log_name: String,
        /// `resource`: the monitored resource the entry is about.
        "resource" => resource: MonitoredResource,
        /// `protoPayload`: for audit logs, the [`AuditLog`].
        "protoPayload" => proto_payload: AuditLog,
        /// `jsonPayload`, raw (Event Threat Detection and application logs).
        "jsonPayload" => json_payload: RawJson,
        /// `textPayload`.
        "textPayload" => text_payload: String,
        /// `timestamp` (RFC 3339): when the event happened.
        "timestamp" => timestamp: String,
        /// `receiveTimestamp` (RFC 3339): when Cloud Logging received it.
        "receiveTimestamp" => receive_timestamp: String,
        /// `severity`: `NOTICE`, `INFO`, `ERROR`...
        "severity" => severity: String,
        /// `insertId`: unique within the log, with `timestamp`.
        "insertId" => insert_id: String,
        /// `httpRequest`, raw.
        "httpRequest" => http_request: RawJson,
        /// `labels`.
        "labels" => labels: BTreeMap<String, String>,
        /// `operation`, raw (`id`, `producer`, `first`, `last`).
        "operation" => operation: RawJson,
        /// `trace`.
        "trace" => trace: String,
        /// `spanId`.
        "spanId" => span_id: String,
        /// `traceSampled`.
        "traceSampled" => trace_sampled: LenientBool,
        /// `sourceLocation`, raw.
        "sourceLocation" => source_location: RawJson,
        /// `split`, raw (entries split into several).
        "split" => split: RawJson,
    }
}

wire_struct! {
    /// A `MonitoredResource`: `type` and `labels` (`project_id`, `location`,
    /// `zone`...).
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct MonitoredResource {
        /// `type`, e.g. `gcs_bucket`, `project`, `iam_role`.
        "type" => r#type: String,
        /// `labels`.
        "labels" => labels: BTreeMap<String, String>,
    }
}

wire_struct! {
    /// A Cloud Audit Logs `AuditLog` (`protoPayload` of an audit log entry).
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct AuditLog {
        /// `@type`: `type.googleapis.com/google.cloud.audit.AuditLog`.
        "@type" => type_url: String,
        /// `serviceName`, e.g. `storage.googleapis.com`.
        "serviceName" => service_name: String,
        /// `methodName`, e.g. `storage.setIamPermissions`,
        /// `SetIamPolicy`, `google.iam.admin.v1.CreateRole`.
        "methodName" => method_name: String,
        /// `resourceName`: what the call acted on.
        "resourceName" => resource_name: String,
        /// `resourceLocation`, raw (`currentLocations`...).
        "resourceLocation" => resource_location: RawJson,
        /// `resourceOriginalState`, raw.
        "resourceOriginalState" => resource_original_state: RawJson,
        /// `numResponseItems`, raw (an int64: a string on the wire).
        "numResponseItems" => num_response_items: RawJson,
        /// `status`: the call's outcome (empty or code 0 when it succeeded).
        "status" => status: RpcStatus,
        /// `authenticationInfo`: who called.
        "authenticationInfo" => authentication_info: AuthenticationInfo,
        /// `authorizationInfo`, raw (permission checks).
        "authorizationInfo" => authorization_info: RawJson,
        /// `policyViolationInfo`, raw.
        "policyViolationInfo" => policy_violation_info: RawJson,
        /// `requestMetadata`: from where.
        "requestMetadata" => request_metadata: RequestMetadata,
        /// `request`, raw; see [`AuditLog::request`].
        "request" => request: RawJson,
        /// `response`, raw; see [`AuditLog::response`].
        "response" => response: RawJson,
        /// `metadata`, raw.
        "metadata" => metadata: RawJson,
        /// `serviceData`, raw (deprecated by Google, still sent by some services).
        "serviceData" => service_data: RawJson,
    }
}

wire_struct! {
    /// A `google.rpc.Status`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct RpcStatus {
        /// `code`: 0 for OK, 7 for PERMISSION_DENIED...
        "code" => code: i64,
        /// `message`.
        "message" => message: String,
        /// `details`, raw.
        "details" => details: RawJson,
    }
}

wire_struct! {
    /// `authenticationInfo` of an audit log.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct AuthenticationInfo {
        /// `principalEmail`: the caller (user or service account).
        "principalEmail" => principal_email: String,
        /// `authoritySelector`.
        "authoritySelector" => authority_selector: String,
        /// `principalSubject`.
        "principalSubject" => principal_subject: String,
        /// `serviceAccountKeyName`.
        "serviceAccountKeyName" => service_account_key_name: String,
        /// `serviceAccountDelegationInfo`, raw.
        "serviceAccountDelegationInfo" => service_account_delegation_info: RawJson,
        /// `thirdPartyPrincipal`, raw.
        "thirdPartyPrincipal" => third_party_principal: RawJson,
    }
}

wire_struct! {
    /// `requestMetadata` of an audit log.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct RequestMetadata {
        /// `callerIp`: an IP address, `private`, `gce-internal-ip`...
        "callerIp" => caller_ip: String,
        /// `callerSuppliedUserAgent`.
        "callerSuppliedUserAgent" => caller_supplied_user_agent: String,
        /// `callerNetwork`.
        "callerNetwork" => caller_network: String,
        /// `requestAttributes`, raw.
        "requestAttributes" => request_attributes: RawJson,
        /// `destinationAttributes`, raw.
        "destinationAttributes" => destination_attributes: RawJson,
    }
}

impl AuditLog {
    /// Parses `request` into `T` (`None` when absent or `null`).
    pub fn request<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.request.as_ref())
    }

    /// Parses `response` into `T`.
    pub fn response<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.response.as_ref())
    }

    /// The caller's `principalEmail`.
    pub fn principal_email(&self) -> Option<&str> {
        self.authentication_info
            .as_ref()?
            .principal_email
            .as_deref()
    }

    /// The caller's IP (`requestMetadata.callerIp`).
    pub fn caller_ip(&self) -> Option<&str> {
        self.request_metadata.as_ref()?.caller_ip.as_deref()
    }

    /// Whether the call succeeded: no status, or status code 0.
    pub fn succeeded(&self) -> bool {
        self.status.as_ref().and_then(|s| s.code).unwrap_or(0) == 0
    }
}

impl LogEntry {
    /// Parses an entry from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("invalid GCP log entry: {e}")))
    }

    /// The audit log in `protoPayload`, if this is an audit log entry.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.proto_payload.as_ref()
    }

    /// Parses `jsonPayload` into `T`.
    pub fn json_payload<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.json_payload.as_ref())
    }

    /// Whether this is a Cloud Audit Logs entry (its log is
    /// `cloudaudit.googleapis.com%2F...`, or its payload an `AuditLog`).
    pub fn is_audit_log(&self) -> bool {
        self.log_name
            .as_deref()
            .is_some_and(|n| n.contains("/logs/cloudaudit.googleapis.com"))
            || self
                .audit_log()
                .and_then(|a| a.type_url.as_deref())
                .is_some_and(|t| t.ends_with("google.cloud.audit.AuditLog"))
    }

    fn resource_label(&self, key: &str) -> Option<&str> {
        self.resource
            .as_ref()?
            .labels
            .as_ref()?
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The project the entry belongs to: `resource.labels.project_id`, or
    /// the project in `logName` (`projects/P/logs/...`).
    pub fn project_id(&self) -> Option<&str> {
        self.resource_label("project_id")
            .or_else(|| project_in_path(self.log_name.as_deref()?))
    }

    /// The region, where the entry names one: `resource.labels.region`,
    /// `location` (when it is not a multi-region such as `global` or `us`),
    /// or the region of `zone`.
    pub fn region(&self) -> Option<String> {
        if let Some(r) = self.resource_label("region") {
            return Some(r.to_owned());
        }
        if let Some(l) = self
            .resource_label("location")
            .filter(|l| l.contains('-') && !l.eq_ignore_ascii_case("global"))
        {
            return Some(zone_region(l).unwrap_or_else(|| l.to_owned()));
        }
        self.resource_label("zone").and_then(zone_region)
    }

    /// The deduplication key: `logName` + `insertId` (unique per log).
    pub fn dedup_key(&self) -> Option<String> {
        let id = self.insert_id.as_deref()?;
        let log = self.log_name.as_deref().unwrap_or("");
        Some(["gcp_log:", log, ":", id].concat())
    }
}
