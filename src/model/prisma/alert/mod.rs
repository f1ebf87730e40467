//! [`PrismaAlert`]: one alert as its JSON text plus a zero-copy index of the
//! fields the engine reads (id, status, account, region, script...), looked
//! up in each place a value can be, whatever the shape that arrived.

use super::{AlertDetails, TEST_ALERT_ID, TEST_SENDER};
use crate::error::{Error, Result};
use crate::model::json::{
    Ctx, Flag, Indexed, ListSpan, Millis, Miss, Present, RawJson, Scan, Scanned, Span, SpanVisitor,
    StringList, Texts, index_struct,
};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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
        "rrn" => rrn: Span,
        "resourceApiName" => api_name: Span,
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

    /// The resource's Prisma Cloud resource name: `resource.rrn`.
    pub fn resource_rrn(&self) -> Option<&str> {
        self.first_non_empty(&[self.index.resource.0.rrn])
    }

    /// The resource's Prisma Cloud API name (`resource.resourceApiName`,
    /// `aws-iam-get-account-summary`...): the kind of the resource.
    pub fn resource_api_name(&self) -> Option<&str> {
        self.first_non_empty(&[self.index.resource.0.api_name])
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

    /// The account groups of the alert's account (`resource.cloudAccountGroups`);
    /// empty when not sent.
    pub fn account_groups(&self) -> Vec<String> {
        #[derive(Deserialize)]
        struct R {
            resource: Option<Res>,
        }
        #[derive(Deserialize)]
        struct Res {
            #[serde(rename = "cloudAccountGroups")]
            groups: Option<StringList>,
        }
        serde_json::from_str::<R>(&self.raw)
            .ok()
            .and_then(|r| r.resource?.groups)
            .map(|l| l.to_vec())
            .unwrap_or_default()
    }

    /// The resource's tags as the alert carries them (`resource.resourceTags`,
    /// an object of key to value or a list of `{key, value}`); `None` when the
    /// alert does not carry them (absent, `null` or another shape), which is
    /// not the same as a resource without tags (`{}`).
    pub fn resource_tags(&self) -> Option<std::collections::BTreeMap<String, String>> {
        #[derive(Deserialize)]
        struct R {
            resource: Option<Res>,
        }
        #[derive(Deserialize)]
        struct Res {
            #[serde(rename = "resourceTags")]
            tags: Option<serde_json::Value>,
        }
        let r: R = serde_json::from_str(&self.raw).ok()?;
        super::super::json::tag_map(&r.resource?.tags?)
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
mod tests;
