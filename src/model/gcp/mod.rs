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
//! The two top-level models are [`model::LogEntry`](crate::model::LogEntry)
//! and [`model::SccNotification`](crate::model::SccNotification); this module
//! holds their parts. Parse from bytes or text (`serde_json::from_slice` /
//! `from_str`, or [`LogEntry::from_slice`](crate::model::LogEntry::from_slice) /
//! [`SccNotification::from_slice`](crate::model::SccNotification::from_slice));
//! raw fields cannot be rebuilt from a [`serde_json::Value`].

pub(super) mod log_entry;
pub(super) mod scc;

pub use log_entry::{AuditLog, AuthenticationInfo, MonitoredResource, RequestMetadata, RpcStatus};
pub use scc::{Finding, SccResource, SecurityMarks};

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
}
