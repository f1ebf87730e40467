//! [`SccNotification`]: a Security Command
//! Center finding notification, as a notification config publishes it to
//! Pub/Sub, and its parts.

use super::{project_in_path, region_in_path};
use crate::error::{Error, Result};
use crate::model::json::{RawJson, parse_raw, wire_struct};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

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
    fn a_notification_needs_a_finding() {
        let err = SccNotification::from_slice(br#"{"notificationConfigName":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("without a finding"), "{err}");
    }
}
