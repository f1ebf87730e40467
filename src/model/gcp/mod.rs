//! Google Cloud findings as they arrive on Pub/Sub: Cloud Logging entries
//! routed by a log sink (Cloud Audit Logs with their `protoPayload`, and other
//! entries such as Event Threat Detection's `jsonPayload`), and Security
//! Command Center notifications (`notificationConfigName` + `finding`).
//!
//! Every model is lenient: each named field is optional, fields it does not
//! name are kept in `other`, and the free-form parts (`request`, `response`,
//! `sourceProperties`...) stay raw JSON text until an accessor parses them, so
//! serializing a parsed value gives back every field that arrived.
//!
//! Parse from bytes or text (`serde_json::from_slice` / `from_str`, or
//! [`LogEntry::from_slice`] / [`SccNotification::from_slice`]); raw fields
//! cannot be rebuilt from a [`serde_json::Value`].

use super::json::{LenientBool, RawJson, wire_struct};
use crate::error::{Error, Result};
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

fn parse_raw<T: DeserializeOwned>(raw: Option<&RawJson>) -> Result<Option<T>> {
    match raw {
        Some(r) => r.parse_opt(),
        None => Ok(None),
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

/// `projects/{id}/...` → `id` (also `//service.googleapis.com/projects/{id}/...`).
pub(crate) fn project_in_path(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        if p == "projects" {
            return parts.next().filter(|id| !id.is_empty());
        }
    }
    None
}

/// A region named in a resource path (`/regions/R/`, `/locations/L/`, or the
/// region of `/zones/Z/`).
fn region_in_path(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    while let Some(p) = parts.next() {
        match p {
            "regions" | "locations" => {
                return parts.next().filter(|r| !r.is_empty()).map(str::to_owned);
            }
            "zones" => return parts.next().and_then(zone_region),
            _ => {}
        }
    }
    None
}

/// `us-central1-a` → `us-central1`.
fn zone_region(zone: &str) -> Option<String> {
    let (region, suffix) = zone.rsplit_once('-')?;
    (suffix.len() == 1 && region.contains('-')).then(|| region.to_owned())
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

wire_struct! {
    /// A Security Command Center notification, as a notification config
    /// publishes it to Pub/Sub.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SccNotification {
        /// `notificationConfigName`:
        /// `organizations/O/notificationConfigs/N`.
        "notificationConfigName" => notification_config_name: String,
        /// `finding`.
        "finding" => finding: Finding,
        /// `resource`: the resource the finding is about.
        "resource" => resource: SccResource,
    }
    check = check_notification;
}

fn check_notification(n: &SccNotification) -> std::result::Result<(), String> {
    if n.finding.is_none() {
        return Err("SCC notification without a finding".into());
    }
    Ok(())
}

wire_struct! {
    /// An SCC `Finding`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Finding {
        /// `name`: `organizations/O/sources/S/findings/F` (unique).
        "name" => name: String,
        /// `canonicalName`.
        "canonicalName" => canonical_name: String,
        /// `parent`: the source, `organizations/O/sources/S`.
        "parent" => parent: String,
        /// `resourceName`: the full resource name,
        /// `//storage.googleapis.com/BUCKET`,
        /// `//compute.googleapis.com/projects/P/zones/Z/instances/I`...
        "resourceName" => resource_name: String,
        /// `state`: `ACTIVE` or `INACTIVE`.
        "state" => state: String,
        /// `category`: `PUBLIC_BUCKET_ACL`, `Persistence: IAM Anomalous Grant`...
        "category" => category: String,
        /// `externalUri`.
        "externalUri" => external_uri: String,
        /// `sourceProperties`, raw; see [`Finding::source_properties`].
        "sourceProperties" => source_properties: RawJson,
        /// `securityMarks`.
        "securityMarks" => security_marks: SecurityMarks,
        /// `eventTime` (RFC 3339).
        "eventTime" => event_time: String,
        /// `createTime` (RFC 3339).
        "createTime" => create_time: String,
        /// `severity`: `CRITICAL`, `HIGH`, `MEDIUM`, `LOW`.
        "severity" => severity: String,
        /// `findingClass`: `THREAT`, `VULNERABILITY`, `MISCONFIGURATION`...
        "findingClass" => finding_class: String,
        /// `mute`: `MUTED`, `UNMUTED`, `UNDEFINED`.
        "mute" => mute: String,
        /// `description`.
        "description" => description: String,
        /// `nextSteps`.
        "nextSteps" => next_steps: String,
        /// `indicator`, raw.
        "indicator" => indicator: RawJson,
        /// `vulnerability`, raw.
        "vulnerability" => vulnerability: RawJson,
        /// `access`, raw (who did what, for threats).
        "access" => access: RawJson,
        /// `iamBindings`, raw.
        "iamBindings" => iam_bindings: RawJson,
        /// `compliances`, raw.
        "compliances" => compliances: RawJson,
    }
}

wire_struct! {
    /// A finding's `securityMarks`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SecurityMarks {
        /// `name`.
        "name" => name: String,
        /// `marks`: user-set key/value pairs.
        "marks" => marks: BTreeMap<String, String>,
        /// `canonicalName`.
        "canonicalName" => canonical_name: String,
    }
}

wire_struct! {
    /// The `resource` of an SCC notification.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SccResource {
        /// `name`: the full resource name.
        "name" => name: String,
        /// `displayName`.
        "displayName" => display_name: String,
        /// `type`, e.g. `google.cloud.storage.Bucket`.
        "type" => r#type: String,
        /// `project`: `//cloudresourcemanager.googleapis.com/projects/NUMBER`.
        "project" => project: String,
        /// `projectDisplayName`: the project **id**.
        "projectDisplayName" => project_display_name: String,
        /// `parent`.
        "parent" => parent: String,
        /// `parentName`.
        "parentName" => parent_name: String,
        /// `parentDisplayName`.
        "parentDisplayName" => parent_display_name: String,
        /// `folders`, raw.
        "folders" => folders: RawJson,
        /// `location`.
        "location" => location: String,
        /// `service`.
        "service" => service: String,
    }
}

/// Project ids some finding sources put in `sourceProperties` (borrowed
/// from the raw text: no allocation).
#[derive(serde::Deserialize)]
struct ProjectProps<'a> {
    #[serde(rename = "ProjectId", borrow, default)]
    project_id: Option<&'a str>,
    #[serde(borrow, default)]
    properties: Option<InnerProjectProps<'a>>,
}

#[derive(serde::Deserialize)]
struct InnerProjectProps<'a> {
    #[serde(borrow, default)]
    project_id: Option<&'a str>,
}

impl Finding {
    /// Parses `sourceProperties` into `T`.
    pub fn source_properties<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.source_properties.as_ref())
    }

    /// Whether the finding is active (`state: ACTIVE`).
    pub fn is_active(&self) -> bool {
        self.state
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("ACTIVE"))
    }
}

impl SccNotification {
    /// Parses a notification from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("invalid SCC notification: {e}")))
    }

    /// The finding (always present: a notification without one is rejected).
    pub fn finding(&self) -> Option<&Finding> {
        self.finding.as_ref()
    }

    /// The finding's `name`.
    pub fn finding_name(&self) -> Option<&str> {
        self.finding()?.name.as_deref()
    }

    /// The project the finding is about, the first of:
    /// `resource.projectDisplayName` (SCC puts the project id there); a
    /// project id in the finding's `resourceName` (or `resource.name`);
    /// `sourceProperties.ProjectId` (Security Health Analytics) or
    /// `sourceProperties.properties.project_id` (Event Threat Detection); a
    /// project number in the resource name (which a context map keyed by
    /// project id then refuses as unmapped).
    pub fn project_id(&self) -> Option<&str> {
        let resource = self.resource.as_ref();
        if let Some(id) = resource
            .and_then(|r| r.project_display_name.as_deref())
            .filter(|s| !s.is_empty())
        {
            return Some(id);
        }
        let finding = self.finding()?;
        let in_path = finding
            .resource_name
            .as_deref()
            .and_then(project_in_path)
            .or_else(|| resource?.name.as_deref().and_then(project_in_path));
        let is_number = |id: &str| id.bytes().all(|b| b.is_ascii_digit());
        if let Some(id) = in_path.filter(|id| !is_number(id)) {
            return Some(id);
        }
        finding
            .source_properties
            .as_ref()
            .and_then(|raw| serde_json::from_str::<ProjectProps<'_>>(raw.get()).ok())
            .and_then(|p| {
                p.project_id
                    .or_else(|| p.properties?.project_id)
                    .filter(|s| !s.is_empty())
            })
            .or(in_path)
    }

    /// The region the finding's resource lives in, where its name says.
    pub fn region(&self) -> Option<String> {
        let finding = self.finding()?;
        finding
            .resource_name
            .as_deref()
            .and_then(region_in_path)
            .or_else(|| {
                self.resource
                    .as_ref()?
                    .location
                    .as_deref()
                    .filter(|l| l.contains('-'))
                    .map(str::to_owned)
            })
    }

    /// The deduplication key: the finding's name, event time and state (a
    /// finding is notified again when it changes).
    pub fn dedup_key(&self) -> Option<String> {
        let f = self.finding()?;
        let name = f.name.as_deref()?;
        Some(
            [
                "scc:",
                name,
                ":",
                f.event_time.as_deref().unwrap_or(""),
                ":",
                f.state.as_deref().unwrap_or(""),
            ]
            .concat(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_and_regions_from_paths() {
        assert_eq!(
            project_in_path("projects/my-proj/logs/cloudaudit.googleapis.com%2Factivity"),
            Some("my-proj")
        );
        assert_eq!(
            project_in_path("//compute.googleapis.com/projects/p1/zones/us-central1-a/instances/i"),
            Some("p1")
        );
        assert_eq!(project_in_path("organizations/1/logs/x"), None);
        assert_eq!(
            region_in_path("//compute.googleapis.com/projects/p1/zones/us-central1-a/instances/i"),
            Some("us-central1".into())
        );
        assert_eq!(
            region_in_path(
                "//compute.googleapis.com/projects/p/regions/asia-northeast1/subnetworks/s"
            ),
            Some("asia-northeast1".into())
        );
        assert_eq!(region_in_path("//storage.googleapis.com/bucket"), None);
    }

    #[test]
    fn a_notification_needs_a_finding() {
        let err = SccNotification::from_slice(br#"{"notificationConfigName":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("without a finding"), "{err}");
    }
}
