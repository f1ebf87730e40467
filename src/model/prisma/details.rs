//! The full typed view of a Prisma Cloud alert ([`AlertDetails`], from
//! [`PrismaAlert::details`](crate::model::PrismaAlert::details)) and its
//! parts: metadata, account, policy, resource and remediation CLI, each in
//! every shape Prisma Cloud sends.

use crate::model::json::{LenientBool, RawJson, StringList, Timestamp, string_or_map, wire_struct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

fn check_alert(alert: &AlertDetails) -> std::result::Result<(), String> {
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    if has(&alert.alert_id) || has(&alert.id) {
        Ok(())
    } else {
        Err("Prisma Cloud alert without an id (no alertId, no id)".to_owned())
    }
}

wire_struct! {
    /// The full typed view of a Prisma Cloud alert: a notification (nested or
    /// flat shape) or an alert object from the API (`GET /v2/alert`).
    ///
    /// Deserializing fails for an alert with no `alertId` and no `id`.
    /// Parse from bytes or text (fields such as `resource.data` are kept raw
    /// and cannot be rebuilt from a [`serde_json::Value`]).
    #[derive(Clone, Debug, PartialEq)]
    pub struct AlertDetails {
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
