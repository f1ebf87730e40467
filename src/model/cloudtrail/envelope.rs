//! The AWS envelopes a CloudTrail record travels in besides log files:
//! EventBridge events ([`EventBridgeEvent`]) and CloudWatch Logs subscription
//! messages ([`LogsSubscription`]).

use crate::error::Result;
use crate::model::CloudTrailRecord;
use crate::model::json::RawJson;
use serde::{Deserialize, Serialize};

/// An EventBridge event (`detail` is the CloudTrail record for the
/// `... via CloudTrail` detail types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeEvent {
    /// `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `detail-type`, e.g. `AWS API Call via CloudTrail`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `source`, e.g. `aws.iam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// `detail`, raw.
    pub detail: RawJson,
}

impl EventBridgeEvent {
    /// Whether the `detail-type` says the detail is a CloudTrail record
    /// (`AWS API Call via CloudTrail`, `AWS Console Sign In via CloudTrail`,
    /// `AWS Service Event via CloudTrail`...).
    pub fn is_cloudtrail(&self) -> bool {
        is_cloudtrail_detail_type(&self.detail_type)
    }

    /// The `detail` parsed as a CloudTrail record.
    pub fn record(&self) -> Result<CloudTrailRecord> {
        CloudTrailRecord::from_slice(self.detail.get().as_bytes())
    }
}

/// Whether an EventBridge `detail-type` carries a CloudTrail record.
pub fn is_cloudtrail_detail_type(detail_type: &str) -> bool {
    detail_type.trim_end().ends_with("via CloudTrail")
}

/// A CloudWatch Logs subscription message, decoded (what `awslogs.data`
/// holds once base64-decoded and gunzipped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsSubscription {
    /// `messageType`: `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// `owner`: the account that owns the log group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `logGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// `logStream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
    /// `subscriptionFilters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_filters: Option<Vec<String>>,
    /// `logEvents`.
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

impl LogsSubscription {
    /// Whether this is a control message (sent to check the destination; no events).
    pub fn is_control(&self) -> bool {
        self.message_type.as_deref() == Some("CONTROL_MESSAGE")
    }
}

/// One event of a CloudWatch Logs subscription message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `timestamp` (epoch milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `message`: for a CloudTrail log group, one record as JSON text.
    pub message: String,
}
