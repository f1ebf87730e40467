//! Prisma Cloud alerts: the notification in both published shapes (nested,
//! as the SQS/webhook integration documents it, and flat, as alert rules
//! send it) and the alert object of the Prisma Cloud API.
//!
//! [`PrismaAlert`] keeps the alert's JSON text next to a small index of the
//! fields the engine reads (id, status, account, region, script...), so
//! parsing one costs little more than validating it; [`PrismaAlert::details`]
//! gives the full typed view ([`AlertDetails`]) on demand. The accessors look
//! in each place a value can be, so callers need not know which shape arrived.

use super::json::{
    Ctx, Flag, Indexed, ListSpan, Millis, Present, Span, SpanVisitor, Texts, index_struct,
};
use super::json::{LenientBool, RawJson, StringList, Timestamp, string_or_map, wire_struct};
use super::json::{Miss, Scan, Scanned};
use crate::error::{Error, Result};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// The alert id Prisma Cloud uses for its test notification.
pub const TEST_ALERT_ID: &str = "T-0";

/// The `sender` of Prisma Cloud's test notification.
pub const TEST_SENDER: &str = "Test Notification";

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

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

index_struct! {
    /// What the accessors need from an alert; everything else is skipped.
    struct AlertIndex {
        "alertId" => alert_id: Span,
        "id" => id: Span,
        "alertStatus" => alert_status: Span,
        "status" => status: Span,
        "metadata" => metadata: MetadataIndex,
        "sender" => sender: Span,
        "account" => account: AccountIndex,
        "accountId" => account_id: Span,
        "accountName" => account_name: Span,
        "cloudType" => cloud_type: Span,
        "resourceRegionId" => resource_region_id: Span,
        "region" => region: Span,
        "policy" => policy: PolicyIndex,
        "policyId" => policy_id: Span,
        "policyName" => policy_name: Span,
        "policyLabels" => policy_labels: ListSpan,
        "severity" => severity: Span,
        "resource" => resource: ResourceSlot,
        "resourceId" => resource_id: Span,
        "resourceName" => resource_name: Span,
        "alertRemediationCli" => cli: CliSlot,
        "alertTs" => alert_ts: Millis,
        "alertTime" => alert_time: Millis,
        // Keys of the envelopes that may carry an alert inside: an object
        // holding one at its top is decoded as that envelope, not as an alert.
        "detail-type" => detail_type: Present,
        "Records" => records: Present,
        "Message" => message: Present,
        "awslogs" => awslogs: Present,
        "logEvents" => log_events: Present,
    }
}

index_struct! {
    struct MetadataIndex {
        "remediable" => remediable: Flag,
    }
}

index_struct! {
    struct AccountIndex {
        "id" => id: Span,
        "name" => name: Span,
        "cloudType" => cloud_type: Span,
    }
}

index_struct! {
    struct PolicyIndex {
        "id" => id: Span,
        "policyId" => policy_id: Span,
        "name" => name: Span,
        "severity" => severity: Span,
        "labels" => labels: ListSpan,
        "remediable" => remediable: Flag,
    }
}

index_struct! {
    struct ResourceIndex {
        "id" => id: Span,
        "resourceId" => resource_id: Span,
        "name" => name: Span,
        "resourceName" => resource_name: Span,
        "account" => account: Span,
        "accountId" => account_id: Span,
        "cloudType" => cloud_type: Span,
        "regionId" => region_id: Span,
    }
}

index_struct! {
    struct CliIndex {
        "cliScript" => cli_script: Span,
    }
}

/// `resource`: an object, or a string (ignored) in the test notification.
#[derive(Clone, Debug, Default, PartialEq)]
struct ResourceSlot(ResourceIndex);

impl<'de> Indexed<'de> for ResourceSlot {
    fn read<D: Deserializer<'de>>(
        d: D,
        cx: &mut Ctx,
    ) -> std::result::Result<Option<Self>, D::Error> {
        struct V<'c>(&'c mut Ctx);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Option<ResourceSlot>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a resource object or a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Self::Value, E> {
                Ok(Some(ResourceSlot::default()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                ResourceIndex::read_map(map, self.0).map(|r| Some(ResourceSlot(r)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(cx))
    }

    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        if sc.null() {
            Ok(None)
        } else if sc.next_is(b'{') {
            let mut r = ResourceIndex::default();
            ResourceIndex::scan_into(sc, cx, &mut r)?;
            Ok(Some(ResourceSlot(r)))
        } else {
            // A string; one with escapes is left to serde_json.
            match sc.string()? {
                (_, false) => Ok(Some(ResourceSlot::default())),
                (_, true) => Err(Miss),
            }
        }
    }
}

/// `alertRemediationCli`: the script, from a string or an object's `cliScript`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CliSlot(Span);

impl<'de> Indexed<'de> for CliSlot {
    fn read<D: Deserializer<'de>>(
        d: D,
        cx: &mut Ctx,
    ) -> std::result::Result<Option<Self>, D::Error> {
        struct V<'c>(&'c mut Ctx);
        impl<'de> Visitor<'de> for V<'_> {
            type Value = Option<CliSlot>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CLI script string or an object with cliScript")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Self::Value, E> {
                SpanVisitor { cx: self.0 }
                    .visit_str(s)
                    .map(|s| s.map(CliSlot))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                CliIndex::read_map(map, self.0).map(|c| Some(CliSlot(c.cli_script)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V(cx))
    }

    fn scan(sc: &mut Scan<'de>, cx: &mut Ctx) -> Scanned<Option<Self>> {
        if sc.next_is(b'{') {
            let mut c = CliIndex::default();
            CliIndex::scan_into(sc, cx, &mut c)?;
            Ok(Some(CliSlot(c.cli_script)))
        } else {
            Ok(Span::scan(sc, cx)?.map(CliSlot))
        }
    }
}

/// A Prisma Cloud alert: a notification (nested or flat shape) or an alert
/// object from the API.
///
/// It holds the alert's JSON text and an index of the fields the accessors
/// read (as positions in the text, so parsing copies nothing but the text);
/// [`PrismaAlert::details`] parses the full typed view. It serializes as the
/// JSON text it was parsed from, so nothing is ever lost. Two alerts are
/// equal when their text is equal.
///
/// Parsing fails for an alert with no (non-empty) `alertId` and no `id`.
#[derive(Clone, Debug)]
pub struct PrismaAlert {
    raw: Box<str>,
    /// Strings of the index that had escapes, unescaped (usually empty).
    extra: Box<str>,
    index: AlertIndex,
}

impl PartialEq for PrismaAlert {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

fn trim_json_ws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\n' | '\r' | '\t'))
}

impl PrismaAlert {
    /// Parses one alert from JSON bytes; an alert without an id is an error.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::decode(format!("invalid Prisma Cloud alert: not UTF-8: {e}")))?;
        Self::from_text(text)
    }

    /// Parses one alert from JSON text; an alert without an id is an error.
    pub fn from_text(text: &str) -> Result<Self> {
        let invalid =
            |e: &dyn fmt::Display| Error::decode(format!("invalid Prisma Cloud alert: {e}"));
        let trimmed = trim_json_ws(text);
        let mut cx = Ctx::new(trimmed).map_err(|e| invalid(&e))?;
        // The spans are offsets into `trimmed`, which becomes `raw`.
        let mut alert = PrismaAlert {
            raw: trimmed.into(),
            extra: Box::default(),
            index: AlertIndex::default(),
        };
        AlertIndex::read_text(text, &mut cx, &mut alert.index).map_err(|e| invalid(&e))?;
        alert.extra = cx.into_extra();
        if alert.id().is_empty() {
            return Err(Error::decode(
                "invalid Prisma Cloud alert: Prisma Cloud alert without an id (no alertId, no id)",
            ));
        }
        Ok(alert)
    }

    /// Parses a JSON array of alerts (the API's alert list).
    pub fn list_from_slice(bytes: &[u8]) -> Result<Vec<Self>> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::decode(format!("invalid Prisma Cloud alert list: {e}")))
    }

    /// The alert's JSON text, as received (without surrounding whitespace).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The full typed view of the alert, every field included.
    pub fn details(&self) -> Result<AlertDetails> {
        serde_json::from_str(&self.raw)
            .map_err(|e| Error::decode(format!("invalid Prisma Cloud alert: {e}")))
    }

    /// The string an index span points at.
    fn s(&self, span: Span) -> Option<&str> {
        Texts {
            text: &self.raw,
            extra: &self.extra,
        }
        .get(span)
    }

    /// The first non-empty string among `spans`.
    fn first_non_empty(&self, spans: &[Span]) -> Option<&str> {
        spans.iter().find_map(|&sp| non_empty(self.s(sp)))
    }

    /// The first string present among `spans`.
    fn first(&self, spans: &[Span]) -> Option<&str> {
        spans.iter().find_map(|&sp| self.s(sp))
    }

    /// The alert id: `alertId`, or `id` in the API shape. Never empty.
    pub fn id(&self) -> &str {
        self.first_non_empty(&[self.index.alert_id, self.index.id])
            .unwrap_or("")
    }

    /// The alert status (`open`, `resolved`, `dismissed`, `snoozed`), if sent
    /// (`alertStatus`, or `status` in the API shape).
    pub fn status(&self) -> Option<&str> {
        self.first(&[self.index.alert_status, self.index.status])
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
        let i = &self.index;
        match i.metadata.remediable {
            Flag::Absent => i.policy.remediable,
            sent => sent,
        }
        .as_bool()
    }

    /// Whether the object also holds, at its top, a key of an envelope that
    /// can carry an alert (`detail-type`, `Records`, `Message`, `awslogs`,
    /// `logEvents`): envelope detection must look at it as a whole.
    pub(crate) fn has_envelope_keys(&self) -> bool {
        let i = &self.index;
        [i.detail_type, i.records, i.message, i.awslogs, i.log_events]
            .iter()
            .any(|p| p.0)
    }

    /// Whether this is Prisma Cloud's test notification (`alertId` `T-0`, or
    /// `sender` `Test Notification`).
    pub fn is_test_notification(&self) -> bool {
        self.id() == TEST_ALERT_ID || self.s(self.index.sender) == Some(TEST_SENDER)
    }

    /// The cloud account id: `accountId`, `account.id` or `resource.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        let i = &self.index;
        self.first_non_empty(&[i.account_id, i.account.id, i.resource.0.account_id])
    }

    /// The account name: `accountName`, `account.name` or `resource.account`.
    pub fn account_name(&self) -> Option<&str> {
        let i = &self.index;
        self.first(&[i.account_name, i.account.name, i.resource.0.account])
    }

    /// The cloud type (`aws`, `azure`, `gcp`...): `cloudType`,
    /// `account.cloudType` or `resource.cloudType`.
    pub fn cloud_type(&self) -> Option<&str> {
        let i = &self.index;
        self.first_non_empty(&[i.cloud_type, i.account.cloud_type, i.resource.0.cloud_type])
    }

    /// The region id: `resourceRegionId`, `region` or `resource.regionId`.
    pub fn region(&self) -> Option<&str> {
        let i = &self.index;
        self.first_non_empty(&[i.resource_region_id, i.region, i.resource.0.region_id])
    }

    /// The CLI script carried in the alert (`alertRemediationCli`, as a string
    /// or its `cliScript`); `None` when null, empty, `BLANK` or missing.
    pub fn remediation_cli(&self) -> Option<&str> {
        let s = self.s(self.index.cli.0)?;
        let t = s.trim();
        if t.is_empty() || t == "BLANK" {
            None
        } else {
            Some(s)
        }
    }

    /// The policy name: `policyName` or `policy.name`.
    pub fn policy_name(&self) -> Option<&str> {
        self.first(&[self.index.policy_name, self.index.policy.name])
    }

    /// The policy id: `policyId`, `policy.id` or `policy.policyId`.
    pub fn policy_id(&self) -> Option<&str> {
        let i = &self.index;
        self.first(&[i.policy_id, i.policy.id, i.policy.policy_id])
    }

    /// The severity: `severity` or `policy.severity`.
    pub fn severity(&self) -> Option<&str> {
        self.first(&[self.index.severity, self.index.policy.severity])
    }

    /// The policy labels: `policyLabels` or `policy.labels` (decoded when sent
    /// as JSON in a string); empty when absent.
    pub fn labels(&self) -> Vec<String> {
        let i = &self.index;
        self.first(&[i.policy_labels.0, i.policy.labels.0])
            .and_then(|text| serde_json::from_str::<StringList>(text).ok())
            .map(|l| l.to_vec())
            .unwrap_or_default()
    }

    /// The resource id: `resourceId`, `resource.resourceId` or `resource.id`.
    pub fn resource_id(&self) -> Option<&str> {
        let i = &self.index;
        self.first_non_empty(&[i.resource_id, i.resource.0.resource_id, i.resource.0.id])
    }

    /// The resource name: `resourceName`, `resource.resourceName` or `resource.name`.
    pub fn resource_name(&self) -> Option<&str> {
        let i = &self.index;
        self.first(&[
            i.resource_name,
            i.resource.0.resource_name,
            i.resource.0.name,
        ])
    }

    /// `resource.data` (the resource configuration, or the CloudTrail record
    /// of an audit-event alert), raw; `None` when absent or unreadable.
    pub fn resource_data(&self) -> Option<RawJson> {
        #[derive(Deserialize)]
        struct R {
            resource: Option<Res>,
        }
        #[derive(Deserialize)]
        struct Res {
            data: Option<RawJson>,
        }
        let r: R = serde_json::from_str(&self.raw).ok()?;
        r.resource?.data
    }

    /// When the alert was raised, in epoch milliseconds (`alertTs` or `alertTime`).
    pub fn alert_time_millis(&self) -> Option<i64> {
        match self.index.alert_ts {
            Millis::Absent => self.index.alert_time,
            sent => sent,
        }
        .get()
    }
}

impl Serialize for PrismaAlert {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.raw.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PrismaAlert {
    /// Reads the alert as raw JSON (so it needs a JSON deserializer reading
    /// bytes or text, not a [`serde_json::Value`]) and indexes it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        PrismaAlert::from_text(raw.get()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanner's fast path reads every fixture, and reads it exactly as
    /// serde_json does.
    #[test]
    fn scanner_reads_fixtures_as_serde_json_does() {
        for text in crate::model::json::fixture_objects("prisma") {
            AlertIndex::scan_agrees(&text, true).unwrap();
        }
    }

    #[test]
    fn scanner_and_serde_json_agree_on_edge_cases() {
        for (text, ok) in [
            (r#"{"alertId":"x",}"#, false),
            (r#"{"alertId":"x""#, false),
            (r#"{"alertId" "x"}"#, false),
            (r#"{"alertId":"x"}x"#, false),
            (r#"{"alertId":"x"} {}"#, false),
            (r#"{,"alertId":"x"}"#, false),
            (r#"{"alertId":"x",,"id":"y"}"#, false),
            (r#"{"alertId":"x","alertId":"y"}"#, false),
            (r#"{"alertId":1}"#, false),
            (r#"{"alertId":"\ud800"}"#, false),
            (r#"{"resource":"\ud800"}"#, false),
            (
                r#"{"alertRemediationCli":{"cliScript":"a","cliScript":"b"}}"#,
                false,
            ),
            (r#"{"metadata":[]}"#, false),
            (r#"{"policyLabels":[1]}"#, false),
            (r#"{"alertTs":"soon","alertTs":1}"#, false),
            (r#"{"alertId":null,"alertId":"y"}"#, true),
            (r#"{"x":"\ud800","alertId":"\u00e9\n"}"#, true),
            (
                r#"{"alertId":"\ud83d\ude00 \/\b\f\r\t\\\" \u0000\uFFFF"}"#,
                true,
            ),
            (r#"{"alertId":"\/\b\f\r\t\\\" \u0000\uFFFF\u00e9\n"}"#, true),
            (r#"{"alertId":"a\ude00"}"#, false),
            (r#" {"alertId":"x","resource":"r","metadata":null} "#, true),
            (
                r#"{"policyLabels":"[\"a\"]","alertTs":"2020-01-01T00:00:00Z"}"#,
                true,
            ),
            ("{}", true),
        ] {
            let (_, parsed) = AlertIndex::both_readings(text);
            assert_eq!(parsed.is_ok(), ok, "serde_json on {text}: {parsed:?}");
            // Every valid text here takes the fast path (no key has escapes).
            AlertIndex::scan_agrees(text, ok).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// On hostile edits of real alerts, the scanner never accepts what
        /// serde_json rejects, and never indexes differently.
        #[test]
        fn scanner_agrees_with_serde_json_on_mutants(
            text in proptest::prelude::prop_oneof![
                crate::model::json::mutants(include_str!("../../../tests/fixtures/prisma/schrius-high-alert.json")),
                crate::model::json::mutants(include_str!("../../../tests/fixtures/prisma/pc-docs-iam-remediation-sqs-alert.json")),
                crate::model::json::mutants(r#"{"alertId":"P-1","alertRemediationCli":{"cliScript":"aws s3 \"x\" \u00e9"},"resource":{"id":"r\n","data":{"a":[1,2,{"b":null}]}},"policyLabels":"[\"a\"]","metadata":{"remediable":"true"},"alertTs":"2020-01-01T00:00:00Z"}"#),
            ]
        ) {
            if let Err(e) = AlertIndex::scan_agrees(&text, false) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn id_is_required() {
        let err = PrismaAlert::from_slice(br#"{"alertStatus":"open"}"#).unwrap_err();
        assert!(serde_json::from_str::<AlertDetails>(r#"{"alertStatus":"open"}"#).is_err());
        assert!(err.to_string().contains("without an id"), "{err}");
        assert!(PrismaAlert::from_slice(br#"{"alertId":""}"#).is_err());
    }

    #[test]
    fn index_spans_escapes_and_duplicates() {
        // Escaped strings are unescaped into the side buffer, others are spans.
        let a = PrismaAlert::from_slice(
            b" \n{\"alertId\":\"P-\\u0031\",\"accountName\":\"a\\\"b\",\"region\":\"\\u00e9u\",\
              \"resource\":{\"resourceName\":\"r\\n\"},\"policyLabels\":[\"x\\\"y\"]} \t",
        )
        .unwrap();
        assert_eq!(a.id(), "P-1");
        assert_eq!(a.account_name(), Some("a\"b"));
        assert_eq!(a.region(), Some("\u{e9}u"));
        assert_eq!(a.resource_name(), Some("r\n"));
        assert_eq!(a.labels(), vec!["x\"y".to_owned()]);
        assert!(a.raw().starts_with('{') && a.raw().ends_with('}'));
        assert_eq!(a, PrismaAlert::from_text(a.raw()).unwrap());

        // A field sent twice is an error, unless the first was null.
        let dup = PrismaAlert::from_slice(br#"{"alertId":"P-1","alertId":"P-2"}"#).unwrap_err();
        assert!(
            dup.to_string().contains("duplicate field `alertId`"),
            "{dup}"
        );
        let nulled = PrismaAlert::from_slice(br#"{"alertId":null,"alertId":"P-2"}"#).unwrap();
        assert_eq!(nulled.id(), "P-2");
        assert!(
            PrismaAlert::from_slice(br#"{"alertId":"P","resource":"t","resource":{}}"#).is_err()
        );

        // Wrong types are still errors, as in the typed view.
        for bad in [
            r#"{"alertId":1}"#,
            r#"{"alertId":"P","policyLabels":[1]}"#,
            r#"{"alertId":"P","policy":{"labels":7}}"#,
            r#"{"alertId":"P","metadata":{"remediable":1}}"#,
            r#"{"alertId":"P","alertTs":true}"#,
            r#"{"alertId":"P","account":"x"}"#,
            r#"{"alertId":"P","alertRemediationCli":3}"#,
            r#"{"alertId":"P"} x"#,
            "null",
        ] {
            assert!(PrismaAlert::from_slice(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_and_times_keep_their_fallbacks() {
        // A remediable that is sent but unreadable does not fall back.
        let a = PrismaAlert::from_slice(
            br#"{"alertId":"P","metadata":{"remediable":"maybe"},"policy":{"remediable":true}}"#,
        )
        .unwrap();
        assert_eq!(a.remediable(), None);
        let a = PrismaAlert::from_slice(
            br#"{"alertId":"P","metadata":{},"policy":{"remediable":" TRUE "}}"#,
        )
        .unwrap();
        assert_eq!(a.remediable(), Some(true));
        let t = |ts: &str| {
            PrismaAlert::from_slice(format!(r#"{{"alertId":"P",{ts}}}"#).as_bytes())
                .unwrap()
                .alert_time_millis()
        };
        assert_eq!(t(r#""alertTs":"1970-01-01T00:00:01Z""#), Some(1000));
        assert_eq!(t(r#""alertTs":12.9"#), Some(12));
        assert_eq!(t(r#""alertTs":-5"#), Some(-5));
        assert_eq!(t(r#""alertTs":"soon","alertTime":5"#), None);
        assert_eq!(t(r#""alertTs":null,"alertTime":5"#), Some(5));
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
