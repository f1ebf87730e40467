//! Prisma Cloud alert notifications, in both published shapes (nested and flat).
//!
//! STUB: the models helper replaces this file; the accessor signatures below are the
//! contract the engine relies on.

use crate::error::{Error, Result};
use serde_json::Value;

/// A Prisma Cloud alert notification.
#[derive(Clone, Debug, PartialEq)]
pub struct PrismaAlert {
    raw: Value,
    id: String,
}

impl PrismaAlert {
    /// Parses one alert from JSON bytes; an alert without an id is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| Error::decode(e.to_string()))?;
        let id = raw
            .get("alertId")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::decode("alert without alertId"))?
            .to_owned();
        Ok(PrismaAlert { raw, id })
    }
    fn s(&self, k: &str) -> Option<&str> {
        self.raw.get(k).and_then(Value::as_str)
    }
    /// The alert id (`alertId`).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The alert status (`open`, `resolved`, `dismissed`, `snoozed`), if sent.
    pub fn status(&self) -> Option<&str> {
        self.s("alertStatus")
    }
    /// Whether the alert is open; an alert that does not say is treated as open.
    pub fn is_open(&self) -> bool {
        self.status().is_none_or(|s| s.eq_ignore_ascii_case("open"))
    }
    /// `metadata.remediable`, if sent.
    pub fn remediable(&self) -> Option<bool> {
        self.raw
            .pointer("/metadata/remediable")
            .and_then(Value::as_bool)
    }
    /// Whether this is Prisma Cloud's test notification (`T-0`).
    pub fn is_test_notification(&self) -> bool {
        self.id == "T-0"
    }
    /// The cloud account id.
    pub fn account_id(&self) -> Option<&str> {
        self.s("accountId")
    }
    /// The cloud type (`aws`, `azure`, `gcp`...).
    pub fn cloud_type(&self) -> Option<&str> {
        self.s("cloudType")
    }
    /// The region id.
    pub fn region(&self) -> Option<&str> {
        self.s("resourceRegionId")
    }
    /// The CLI script carried in the alert, if any (null, empty and `BLANK` are none).
    pub fn remediation_cli(&self) -> Option<&str> {
        self.s("alertRemediationCli")
    }
    /// The policy name.
    pub fn policy_name(&self) -> Option<&str> {
        self.s("policyName")
    }
    /// The resource id.
    pub fn resource_id(&self) -> Option<&str> {
        self.s("resourceId")
    }
}
