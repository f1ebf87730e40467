//! Envelope detection: tells what a message body is (a Prisma Cloud alert, a
//! CloudTrail record, or one of the wrappers they travel in) and unwraps it
//! into [`Event`]s, or fails with a [`Error::Decode`] that says what was seen.
//!
//! Recognised, outermost first: SNS notifications (`Type: Notification`),
//! Lambda SQS and SNS events, gzip bytes, CloudWatch Logs subscriptions
//! (`awslogs.data` or decoded), EventBridge events, CloudTrail log files,
//! alert lists, single alerts and bare records; Google Cloud Pub/Sub push
//! envelopes (`message.data`, base64), Security Command Center notifications
//! and Cloud Logging entries (audit logs). GCP shapes are probed only after
//! every AWS and Prisma shape, so those paths cost nothing more. Wrappers nest at most
//! [`MAX_NESTING`] levels; decompressed data is capped at
//! [`MAX_DECOMPRESSED_BYTES`].

mod aws;
mod probe;
mod pubsub;

use super::cloudtrail::{is_gzip, read_limited};
use super::{CloudTrailRecord, Event, LogEntry, PrismaAlert, SccNotification};
use crate::error::{Error, Result};
use aws::{
    decode_awslogs, decode_eventbridge, decode_logs_subscription, decode_records, decode_sns,
};
use memchr::memmem;
use probe::Probe;
use pubsub::decode_pubsub_push;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::LazyLock;

/// How many wrappers (SNS, SQS, gzip, CloudWatch Logs) may nest around a payload.
pub const MAX_NESTING: usize = 3;

/// The most bytes a compressed body may expand to.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// What shape a message body had (the innermost payload when wrappers nest,
/// except for Lambda SQS events, which are reported as [`BodyFormat::SqsEvent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyFormat {
    /// A single Prisma Cloud alert (notification in either shape, or an API alert).
    PrismaAlert,
    /// A JSON array of Prisma Cloud alerts (the API's alert list).
    PrismaAlertList,
    /// A bare CloudTrail record.
    CloudTrailRecord,
    /// An EventBridge event whose `detail` is a CloudTrail record.
    EventBridge,
    /// A CloudTrail log file (`{"Records":[...]}`), plain or gzip-compressed.
    CloudTrailLog,
    /// A CloudWatch Logs subscription message whose log events are CloudTrail
    /// records (decoded, or as `{"awslogs":{"data":...}}`).
    CloudWatchLogs,
    /// A Lambda SQS event (`Records[].body`, each decoded in turn).
    SqsEvent,
    /// A Google Cloud Logging entry (a Cloud Audit Logs entry, or another
    /// log a sink routes), alone or in a Pub/Sub push envelope.
    GcpLogEntry,
    /// A Security Command Center notification, alone or in a Pub/Sub push
    /// envelope.
    SccNotification,
}

impl BodyFormat {
    /// A short name for logs and audit records, e.g. `prisma_alert`.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::PrismaAlert => "prisma_alert",
            BodyFormat::PrismaAlertList => "prisma_alert_list",
            BodyFormat::CloudTrailRecord => "cloudtrail_record",
            BodyFormat::EventBridge => "eventbridge",
            BodyFormat::CloudTrailLog => "cloudtrail_log",
            BodyFormat::CloudWatchLogs => "cloudwatch_logs",
            BodyFormat::SqsEvent => "sqs_event",
            BodyFormat::GcpLogEntry => "gcp_log_entry",
            BodyFormat::SccNotification => "scc_notification",
        }
    }
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded message body.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Decoded {
    /// The shape of the payload.
    pub format: BodyFormat,
    /// Whether the payload was wrapped in an SNS notification (for a Lambda
    /// SQS event: whether any of its bodies was).
    pub sns: bool,
    /// The events the body carried (one for most shapes, any number for log
    /// files, alert lists and batches).
    pub events: Vec<Event>,
}

impl Decoded {
    /// A decoded body (for sources and tests that build one directly).
    pub fn new(format: BodyFormat, sns: bool, events: Vec<Event>) -> Self {
        Decoded {
            format,
            sns,
            events,
        }
    }

    fn one(format: BodyFormat, event: Event) -> Self {
        Decoded::new(format, false, vec![event])
    }
}

/// Decodes a message body into events, or fails with a clear [`Error::Decode`].
///
/// Never panics, whatever the input.
///
/// ```
/// use remediation::model::{BodyFormat, decode};
/// let d = decode(br#"{"alertId":"P-1","accountId":"123456789012"}"#)?;
/// assert_eq!(d.format, BodyFormat::PrismaAlert);
/// assert_eq!(d.events[0].alert_id(), Some("P-1"));
/// # Ok::<(), remediation::Error>(())
/// ```
pub fn decode(body: &[u8]) -> Result<Decoded> {
    decode_at(body, 0)
}

fn in_context(e: Error, ctx: &str) -> Error {
    match e {
        Error::Decode { message } => Error::decode(format!("{ctx}: {message}")),
        other => other,
    }
}

fn first_non_ws(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
}

fn nest(depth: usize, what: &str) -> Result<usize> {
    let next = depth + 1;
    if next > MAX_NESTING {
        Err(Error::decode(format!(
            "{what} nested more than {MAX_NESTING} wrappers deep"
        )))
    } else {
        Ok(next)
    }
}

fn decode_at(body: &[u8], depth: usize) -> Result<Decoded> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if is_gzip(body) {
        let next = nest(depth, "gzip data")?;
        let bytes = read_limited(
            flate2::read::MultiGzDecoder::new(body),
            MAX_DECOMPRESSED_BYTES,
            "gzip body",
        )?;
        return decode_at(&bytes, next).map_err(|e| in_context(e, "gzip body"));
    }
    match first_non_ws(body) {
        None => Err(Error::decode("empty body")),
        Some(b'{') => decode_object(body, depth),
        Some(b'[') => decode_alert_list(body),
        Some(_) => Err(describe_non_object(body)),
    }
}

fn describe_non_object(body: &[u8]) -> Error {
    match serde_json::from_slice::<IgnoredAny>(body) {
        Err(e) => Error::decode(format!("not JSON: {e}")),
        Ok(_) => {
            let kind = match first_non_ws(body) {
                Some(b'"') => "string",
                Some(b'n') => "null",
                Some(b't' | b'f') => "boolean",
                _ => "number",
            };
            Error::decode(format!(
                "a JSON {kind} is not a message body (expected an object, or an array of alerts)"
            ))
        }
    }
}

fn decode_alert_list(body: &[u8]) -> Result<Decoded> {
    let raw: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|e| Error::decode(format!("not a JSON array of alerts: {e}")))?;
    if raw.is_empty() {
        return Err(Error::decode(
            "empty JSON array: expected a list of Prisma Cloud alerts",
        ));
    }
    let events = raw
        .iter()
        .enumerate()
        .map(|(i, r)| {
            PrismaAlert::from_slice(r.get().as_bytes())
                .map(|a| Event::PrismaAlert(Box::new(a)))
                .map_err(|e| in_context(e, &format!("alert list element {i}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Decoded::new(BodyFormat::PrismaAlertList, false, events))
}

/// How many unknown key names an error message lists, and how long each may be.
const KEYS_SHOWN: usize = 8;
const KEY_CHARS: usize = 40;

static ALERT_ID_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"alertId\""));

fn decode_object(body: &[u8], depth: usize) -> Result<Decoded> {
    // Fast path for the common case, a bare alert: one parse instead of two.
    // Anything it does not accept goes through the probe below, so the
    // answer (and the error message) is the same either way.
    // An object naming `alertId` is read as an alert at once; if its top also
    // holds an envelope's key (an EventBridge event or SNS notification whose
    // detail names an alert id), it goes through the probe instead.
    if ALERT_ID_KEY.find(body).is_some() {
        if let Ok(alert) = PrismaAlert::from_slice(body) {
            if !alert.has_envelope_keys() {
                return Ok(Decoded::one(
                    BodyFormat::PrismaAlert,
                    Event::PrismaAlert(Box::new(alert)),
                ));
            }
        }
    }
    let p: Probe<'_> =
        serde_json::from_slice(body).map_err(|e| Error::decode(format!("not JSON: {e}")))?;

    if let (Some(t), Some(m)) = (p.sns_type, p.sns_message) {
        return decode_sns(t, m, depth);
    }
    if let Some(records) = p.records {
        return decode_records(records, depth);
    }
    if let Some(awslogs) = p.awslogs {
        return decode_awslogs(awslogs, depth);
    }
    if p.logs_hint {
        return decode_logs_subscription(body);
    }
    if p.detail_type {
        return decode_eventbridge(body);
    }
    if p.alert_id {
        return alert(body);
    }
    if let (Some(message), true) = (p.pubsub_message, p.pubsub_subscription) {
        return decode_pubsub_push(message, depth);
    }
    if p.gcp_scc {
        let n = SccNotification::from_slice(body)?;
        return Ok(Decoded::one(
            BodyFormat::SccNotification,
            Event::SccFinding(Box::new(n)),
        ));
    }
    if p.gcp_log {
        let entry = LogEntry::from_slice(body)?;
        return Ok(Decoded::one(
            BodyFormat::GcpLogEntry,
            Event::GcpLog(Box::new(entry)),
        ));
    }
    if p.azure || (p.azure_authorization && p.azure_caller) {
        return Err(Error::decode(
            "Azure Activity Log events are not supported yet",
        ));
    }
    if p.event_id || p.event_version {
        let record = CloudTrailRecord::from_slice(body)?;
        return Ok(Decoded::one(
            BodyFormat::CloudTrailRecord,
            Event::CloudTrail(Box::new(record)),
        ));
    }
    if p.id || p.prisma_hint {
        // The API alert shape, or a notification that lost its id (which
        // `PrismaAlert` rejects with a message naming the missing id).
        return alert(body);
    }
    let mut message = "JSON object with neither alertId nor eventID: not a Prisma Cloud alert \
                       or a CloudTrail record"
        .to_owned();
    if p.keys.is_empty() {
        message.push_str(" (no recognised keys)");
    } else {
        message.push_str(&format!(" (keys: {})", p.keys.join(", ")));
    }
    Err(Error::decode(message))
}

fn alert(body: &[u8]) -> Result<Decoded> {
    let alert = PrismaAlert::from_slice(body)?;
    Ok(Decoded::one(
        BodyFormat::PrismaAlert,
        Event::PrismaAlert(Box::new(alert)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_key_at_the_top_wins_over_an_alert_id_beside_it() {
        let records =
            br#"{"alertId":"P-1","Records":[{"eventID":"e-1","eventName":"CreateUser"}]}"#;
        assert_eq!(decode(records).unwrap().format, BodyFormat::CloudTrailLog);
        let sns = br#"{"alertId":"P-1","Type":"Notification","Message":"{\"alertId\":\"P-2\"}"}"#;
        let decoded = decode(sns).unwrap();
        assert!(decoded.sns);
        assert_eq!(decoded.events[0].alert_id(), Some("P-2"));
        // The same key deeper down does not matter.
        let nested = br#"{"alertId":"P-3","resource":{"data":{"Records":[],"Message":"x"}}}"#;
        assert_eq!(decode(nested).unwrap().format, BodyFormat::PrismaAlert);
    }

    #[test]
    fn nesting_is_bounded() {
        let mut body = r#"{"alertId":"P-1"}"#.to_owned();
        for _ in 0..MAX_NESTING {
            body = serde_json::json!({"Type":"Notification","Message": body}).to_string();
        }
        assert!(decode(body.as_bytes()).is_ok());
        body = serde_json::json!({"Type":"Notification","Message": body}).to_string();
        let err = decode(body.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("wrappers deep"), "{err}");
    }

    #[test]
    fn unknown_object_names_its_keys() {
        let err = decode(br#"{"foo":1,"bar":2}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("neither alertId nor eventID"), "{msg}");
        assert!(msg.contains("foo, bar"), "{msg}");
    }
}
