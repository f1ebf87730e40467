//! Prisma Cloud alerts: the notification in both published shapes (nested,
//! as the SQS/webhook integration documents it, and flat, as alert rules
//! send it) and the alert object of the Prisma Cloud API.
//!
//! One model covers all three; the accessors look in each place a value can
//! be, so callers do not need to know which shape arrived.

use super::lenient::{LenientBool, RawJson, StringList, Timestamp, string_or_map, wire_struct};
use crate::error::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The alert id Prisma Cloud uses for its test notification.
pub const TEST_ALERT_ID: &str = "T-0";

/// The `sender` of Prisma Cloud's test notification.
pub const TEST_SENDER: &str = "Test Notification";

fn check_alert(alert: &PrismaAlert) -> std::result::Result<(), String> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if has(&alert.alert_id) || has(&alert.id) {
        Ok(())
    } else {
        Err("Prisma Cloud alert without an id (no alertId, no id)".to_owned())
    }
}

wire_struct! {
    /// A Prisma Cloud alert: a notification (nested or flat shape) or an
    /// alert object from the API (`GET /v2/alert`).
    ///
    /// Deserializing fails for an alert with no `alertId` and no `id`.
    /// Parse from bytes or text (fields such as `resource.data` are kept raw
    /// and cannot be rebuilt from a [`serde_json::Value`]).
    #[derive(Clone, Debug, PartialEq)]
    pub struct PrismaAlert {
        /// `alertId` (notifications), e.g. `P-45208`, or `T-0` for the test notification.
        "alertId" => alert_id: String,
        /// `id` (API shape).
        "id" => id: String,
        /// `alertStatus` (nested notification): `open`, `resolved`, `dismissed`, `snoozed`.
        "alertStatus" => alert_status: String,
        /// `status` (API shape).
        "status" => status: String,
        /// `reason` (nested), e.g. `SCHEDULED`, `NEW_ALERT`, `RESOURCE_DELETED`.
        "reason" => reason: String,
        /// `metadata` (nested): `remediable`.
        "metadata" => metadata: AlertMetadata,
        /// `alertRuleId`.
        "alertRuleId" => alert_rule_id: String,
        /// `alertRuleName`.
        "alertRuleName" => alert_rule_name: String,
        /// `account` (nested): `id`, `name`, `cloudType`.
        "account" => account: Account,
        /// `accountId` (flat).
        "accountId" => account_id: String,
        /// `accountName` (flat).
        "accountName" => account_name: String,
        /// `cloudType` (flat).
        "cloudType" => cloud_type: String,
        /// `policy` (nested and API shapes).
        "policy" => policy: Policy,
        /// `policyId` (flat).
        "policyId" => policy_id: String,
        /// `policyName` (flat).
        "policyName" => policy_name: String,
        /// `policyDescription` (flat).
        "policyDescription" => policy_description: String,
        /// `policyRecommendation` (flat).
        "policyRecommendation" => policy_recommendation: String,
        /// `policyLabels` (flat).
        "policyLabels" => policy_labels: StringList,
        /// `severity` (flat).
        "severity" => severity: String,
        /// `resource`: an object, or a plain string in the test notification.
        "resource" => resource: ResourceValue,
        /// `resourceId` (flat).
        "resourceId" => resource_id: String,
        /// `resourceName` (flat).
        "resourceName" => resource_name: String,
        /// `resourceType` (flat).
        "resourceType" => resource_type: String,
        /// `resourceRegion` (flat): display name, e.g. `AWS Virginia`.
        "resourceRegion" => resource_region: String,
        /// `resourceRegionId` (flat), e.g. `us-east-1`.
        "resourceRegionId" => resource_region_id: String,
        /// `resourceCloudService` (flat).
        "resourceCloudService" => resource_cloud_service: String,
        /// `resourceConfig` (flat), raw.
        "resourceConfig" => resource_config: RawJson,
        /// `region` (nested), e.g. `global`.
        "region" => region: String,
        /// `alertRemediationCli` (flat): a script, an object with `cliScript`, or `BLANK`.
        "alertRemediationCli" => alert_remediation_cli: RemediationCli,
        /// `hasFinding` (flat).
        "hasFinding" => has_finding: LenientBool,
        /// `findingSummary` (flat).
        "findingSummary" => finding_summary: Value,
        /// `complianceMetadata` (flat).
        "complianceMetadata" => compliance_metadata: Value,
        /// `alertAttribution` (flat).
        "alertAttribution" => alert_attribution: Value,
        /// `riskRating` (flat).
        "riskRating" => risk_rating: String,
        /// `riskDetail` (API shape).
        "riskDetail" => risk_detail: Value,
        /// `callbackUrl` (flat).
        "callbackUrl" => callback_url: String,
        /// `source` (flat), e.g. `Prisma Cloud`.
        "source" => source: String,
        /// `service` (nested), e.g. `Prisma Cloud`.
        "service" => service: String,
        /// `sender` (test notification): `Test Notification`.
        "sender" => sender: String,
        /// `sentTs` (test notification).
        "sentTs" => sent_ts: Timestamp,
        /// `alertTs`: when the alert was raised (number or string).
        "alertTs" => alert_ts: Timestamp,
        /// `alertTime` (API shape).
        "alertTime" => alert_time: Timestamp,
        /// `firstSeen`.
        "firstSeen" => first_seen: Timestamp,
        /// `lastSeen`.
        "lastSeen" => last_seen: Timestamp,
        /// `eventOccurred` (API shape).
        "eventOccurred" => event_occurred: Timestamp,
        /// `triggeredBy` (API shape).
        "triggeredBy" => triggered_by: String,
        /// `investigateOptions` (API shape).
        "investigateOptions" => investigate_options: Value,
    }
    check = check_alert;
}

wire_struct! {
    /// `metadata` of a nested notification.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct AlertMetadata {
        /// `remediable`: whether Prisma Cloud can remediate the alert.
        "remediable" => remediable: LenientBool,
    }
}

wire_struct! {
    /// `account` of a nested notification.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Account {
        /// `id`: the cloud account id.
        "id" => id: String,
        /// `name`.
        "name" => name: String,
        /// `cloudType`: `aws`, `azure`, `gcp`, `alibaba_cloud`, `oci`.
        "cloudType" => cloud_type: String,
    }
}

wire_struct! {
    /// `policy` of a nested notification or an API alert.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Policy {
        /// `id` (nested).
        "id" => id: String,
        /// `policyId` (API shape).
        "policyId" => policy_id: String,
        /// `name`.
        "name" => name: String,
        /// `policyType`: `config`, `network`, `audit_event`, `iam`, `anomaly`...
        "policyType" => policy_type: String,
        /// `severity`.
        "severity" => severity: String,
        /// `description`.
        "description" => description: String,
        /// `recommendation`.
        "recommendation" => recommendation: String,
        /// `labels`: an array, or a JSON array in a string (`"[]"`).
        "labels" => labels: StringList,
        /// `policyTs`.
        "policyTs" => policy_ts: Timestamp,
        /// `systemDefault` (API shape).
        "systemDefault" => system_default: LenientBool,
        /// `remediable` (API shape).
        "remediable" => remediable: LenientBool,
    }
}

wire_struct! {
    /// `resource`: the cloud resource an alert is about.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Resource {
        /// `id` (flat and API shapes).
        "id" => id: String,
        /// `resourceId` (nested).
        "resourceId" => resource_id: String,
        /// `name` (flat and API shapes).
        "name" => name: String,
        /// `resourceName` (nested).
        "resourceName" => resource_name: String,
        /// `resourceTs` (nested).
        "resourceTs" => resource_ts: Timestamp,
        /// `resourceType`, e.g. `INSTANCE`.
        "resourceType" => resource_type: String,
        /// `resourceApiName`, e.g. `aws-ec2-describe-vpcs`.
        "resourceApiName" => resource_api_name: String,
        /// `rrn`.
        "rrn" => rrn: String,
        /// `url`.
        "url" => url: String,
        /// `account`: the account name.
        "account" => account: String,
        /// `accountId`.
        "accountId" => account_id: String,
        /// `cloudType`.
        "cloudType" => cloud_type: String,
        /// `region`: display name, e.g. `AWS Ohio`.
        "region" => region: String,
        /// `regionId`, e.g. `us-east-2`.
        "regionId" => region_id: String,
        /// `cloudAccountGroups`.
        "cloudAccountGroups" => cloud_account_groups: Value,
        /// `resourceTags`.
        "resourceTags" => resource_tags: Value,
        /// `additionalInfo`.
        "additionalInfo" => additional_info: Value,
        /// `data`: the resource configuration (or the audit event), raw.
        "data" => data: RawJson,
    }
}

/// `resource` as sent: an object, or (in the test notification) a message string.
#[derive(Clone, Debug, PartialEq)]
pub enum ResourceValue {
    /// The resource object.
    Details(Box<Resource>),
    /// A plain string (`"This is a test message."`).
    Text(String),
}

impl ResourceValue {
    /// The resource object, if it is one.
    pub fn details(&self) -> Option<&Resource> {
        match self {
            ResourceValue::Details(r) => Some(r),
            ResourceValue::Text(_) => None,
        }
    }
}

impl Serialize for ResourceValue {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ResourceValue::Details(r) => r.serialize(s),
            ResourceValue::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for ResourceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        string_or_map(
            d,
            "a resource object or a string",
            ResourceValue::Text,
            |r: Resource| ResourceValue::Details(Box::new(r)),
        )
    }
}

wire_struct! {
    /// `alertRemediationCli` in its object form.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct CliScript {
        /// `cliScript`: the commands.
        "cliScript" => cli_script: String,
        /// `description`.
        "description" => description: String,
    }
}

/// `alertRemediationCli` as sent: a script string (possibly `BLANK`) or an
/// object with `cliScript`. (`null` is an absent field.)
#[derive(Clone, Debug, PartialEq)]
pub enum RemediationCli {
    /// The script as a string.
    Script(String),
    /// The object form.
    Detailed(CliScript),
}

impl RemediationCli {
    /// The script text; `None` when empty, blank or Prisma's placeholder `BLANK`.
    pub fn script(&self) -> Option<&str> {
        let s = match self {
            RemediationCli::Script(s) => s.as_str(),
            RemediationCli::Detailed(d) => d.cli_script.as_deref()?,
        };
        let t = s.trim();
        if t.is_empty() || t == "BLANK" {
            None
        } else {
            Some(s)
        }
    }

    /// The description of the object form.
    pub fn description(&self) -> Option<&str> {
        match self {
            RemediationCli::Script(_) => None,
            RemediationCli::Detailed(d) => d.description.as_deref(),
        }
    }
}

impl Serialize for RemediationCli {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RemediationCli::Script(t) => s.serialize_str(t),
            RemediationCli::Detailed(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RemediationCli {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        string_or_map(
            d,
            "a CLI script string or an object with cliScript",
            RemediationCli::Script,
            RemediationCli::Detailed,
        )
    }
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

impl PrismaAlert {
    /// Parses one alert from JSON bytes; an alert without an id is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("invalid Prisma Cloud alert: {e}")))
    }

    /// Parses a JSON array of alerts (the API's alert list).
    pub fn list_from_slice(bytes: &[u8]) -> Result<Vec<Self>> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("invalid Prisma Cloud alert list: {e}")))
    }

    fn resource_details(&self) -> Option<&Resource> {
        self.resource.as_ref().and_then(ResourceValue::details)
    }

    /// The alert id: `alertId`, or `id` in the API shape.
    ///
    /// Always non-empty for a deserialized alert (an alert without an id is
    /// rejected); empty only for one built by hand without either field.
    pub fn id(&self) -> &str {
        non_empty(self.alert_id.as_ref())
            .or(non_empty(self.id.as_ref()))
            .unwrap_or("")
    }

    /// The alert status (`open`, `resolved`, `dismissed`, `snoozed`), if sent
    /// (`alertStatus`, or `status` in the API shape).
    pub fn status(&self) -> Option<&str> {
        self.alert_status.as_deref().or(self.status.as_deref())
    }

    /// Whether the alert is open; an alert that does not say is treated as
    /// open (flat notifications are only sent for open alerts).
    pub fn is_open(&self) -> bool {
        self.status()
            .is_none_or(|s| s.trim().eq_ignore_ascii_case("open"))
    }

    /// Whether Prisma Cloud says the alert is remediable
    /// (`metadata.remediable`, or `policy.remediable` in the API shape).
    pub fn remediable(&self) -> Option<bool> {
        self.metadata
            .as_ref()
            .and_then(|m| m.remediable.as_ref())
            .or_else(|| self.policy.as_ref().and_then(|p| p.remediable.as_ref()))
            .and_then(LenientBool::as_bool)
    }

    /// Whether this is Prisma Cloud's test notification (`alertId` `T-0`, or
    /// `sender` `Test Notification`).
    pub fn is_test_notification(&self) -> bool {
        self.id() == TEST_ALERT_ID || self.sender.as_deref() == Some(TEST_SENDER)
    }

    /// The cloud account id: `accountId`, `account.id` or `resource.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        non_empty(self.account_id.as_ref())
            .or_else(|| self.account.as_ref().and_then(|a| non_empty(a.id.as_ref())))
            .or_else(|| {
                self.resource_details()
                    .and_then(|r| non_empty(r.account_id.as_ref()))
            })
    }

    /// The account name: `accountName`, `account.name` or `resource.account`.
    pub fn account_name(&self) -> Option<&str> {
        self.account_name
            .as_deref()
            .or_else(|| self.account.as_ref().and_then(|a| a.name.as_deref()))
            .or_else(|| self.resource_details().and_then(|r| r.account.as_deref()))
    }

    /// The cloud type (`aws`, `azure`, `gcp`...): `cloudType`,
    /// `account.cloudType` or `resource.cloudType`.
    pub fn cloud_type(&self) -> Option<&str> {
        non_empty(self.cloud_type.as_ref())
            .or_else(|| {
                self.account
                    .as_ref()
                    .and_then(|a| non_empty(a.cloud_type.as_ref()))
            })
            .or_else(|| {
                self.resource_details()
                    .and_then(|r| non_empty(r.cloud_type.as_ref()))
            })
    }

    /// The region id: `resourceRegionId`, `region` or `resource.regionId`.
    pub fn region(&self) -> Option<&str> {
        non_empty(self.resource_region_id.as_ref())
            .or(non_empty(self.region.as_ref()))
            .or_else(|| {
                self.resource_details()
                    .and_then(|r| non_empty(r.region_id.as_ref()))
            })
    }

    /// The CLI script carried in the alert (`alertRemediationCli`, as a string
    /// or its `cliScript`); `None` when null, empty, `BLANK` or missing.
    pub fn remediation_cli(&self) -> Option<&str> {
        self.alert_remediation_cli
            .as_ref()
            .and_then(RemediationCli::script)
    }

    /// The policy name: `policyName` or `policy.name`.
    pub fn policy_name(&self) -> Option<&str> {
        self.policy_name
            .as_deref()
            .or_else(|| self.policy.as_ref().and_then(|p| p.name.as_deref()))
    }

    /// The policy id: `policyId`, `policy.id` or `policy.policyId`.
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_id.as_deref().or_else(|| {
            self.policy
                .as_ref()
                .and_then(|p| p.id.as_deref().or(p.policy_id.as_deref()))
        })
    }

    /// The severity: `severity` or `policy.severity`.
    pub fn severity(&self) -> Option<&str> {
        self.severity
            .as_deref()
            .or_else(|| self.policy.as_ref().and_then(|p| p.severity.as_deref()))
    }

    /// The policy labels: `policyLabels` or `policy.labels` (decoded when sent
    /// as JSON in a string); empty when absent.
    pub fn labels(&self) -> Vec<String> {
        self.policy_labels
            .as_ref()
            .or_else(|| self.policy.as_ref().and_then(|p| p.labels.as_ref()))
            .map(StringList::to_vec)
            .unwrap_or_default()
    }

    /// The resource id: `resourceId`, `resource.resourceId` or `resource.id`.
    pub fn resource_id(&self) -> Option<&str> {
        non_empty(self.resource_id.as_ref()).or_else(|| {
            self.resource_details()
                .and_then(|r| non_empty(r.resource_id.as_ref()).or(non_empty(r.id.as_ref())))
        })
    }

    /// The resource name: `resourceName`, `resource.resourceName` or `resource.name`.
    pub fn resource_name(&self) -> Option<&str> {
        self.resource_name.as_deref().or_else(|| {
            self.resource_details()
                .and_then(|r| r.resource_name.as_deref().or(r.name.as_deref()))
        })
    }

    /// `resource.data` (the resource configuration, or the CloudTrail record
    /// of an audit-event alert), raw.
    pub fn resource_data(&self) -> Option<&RawJson> {
        self.resource_details().and_then(|r| r.data.as_ref())
    }

    /// When the alert was raised, in epoch milliseconds (`alertTs` or `alertTime`).
    pub fn alert_time_millis(&self) -> Option<i64> {
        self.alert_ts
            .as_ref()
            .or(self.alert_time.as_ref())
            .and_then(Timestamp::as_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_required() {
        let err = PrismaAlert::from_slice(br#"{"alertStatus":"open"}"#).unwrap_err();
        assert!(err.to_string().contains("without an id"), "{err}");
        assert!(PrismaAlert::from_slice(br#"{"alertId":""}"#).is_err());
    }

    #[test]
    fn accessors_cover_the_shapes() {
        let nested = PrismaAlert::from_slice(
            br#"{"alertId":"I-1","alertStatus":"Resolved","metadata":{"remediable":true},
                "account":{"id":"42","cloudType":"aws"},"region":"global",
                "policy":{"name":"p","labels":"[\"a\"]"}}"#,
        )
        .unwrap();
        assert_eq!(nested.id(), "I-1");
        assert!(!nested.is_open());
        assert_eq!(nested.remediable(), Some(true));
        assert_eq!(nested.account_id(), Some("42"));
        assert_eq!(nested.region(), Some("global"));
        assert_eq!(nested.labels(), vec!["a".to_owned()]);
        assert_eq!(nested.policy_name(), Some("p"));

        let api = PrismaAlert::from_slice(
            br#"{"id":"P-1","status":"open","policy":{"remediable":false},
                "resource":{"id":"r","accountId":"7","regionId":"us-east-2","cloudType":"aws"}}"#,
        )
        .unwrap();
        assert_eq!(api.id(), "P-1");
        assert!(api.is_open());
        assert_eq!(api.remediable(), Some(false));
        assert_eq!(api.account_id(), Some("7"));
        assert_eq!(api.region(), Some("us-east-2"));
        assert_eq!(api.cloud_type(), Some("aws"));
        assert_eq!(api.resource_id(), Some("r"));
    }
}
