//! The AWS wrappers a finding travels in: SNS notifications, Lambda SQS and
//! SNS events (`Records`, besides CloudTrail log files), CloudWatch Logs
//! subscriptions (`awslogs.data` or decoded) and EventBridge events.

use super::{BodyFormat, Decoded, KEY_CHARS, MAX_DECOMPRESSED_BYTES, decode_at, in_context, nest};
use crate::error::{Error, Result};
use crate::model::cloudtrail::{EventBridgeEvent, LogsSubscription, is_gzip, read_limited};
use crate::model::{CloudTrailRecord, Event};
use serde::Deserialize;
use serde_json::value::RawValue;

fn raw_str(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

pub(super) fn decode_sns(t: &RawValue, m: &RawValue, depth: usize) -> Result<Decoded> {
    let kind = raw_str(t).unwrap_or_default();
    if kind != "Notification" {
        return Err(Error::decode(format!(
            "SNS message of Type {:?} carries no finding (only Notification does)",
            kind.chars().take(KEY_CHARS).collect::<String>()
        )));
    }
    let message = raw_str(m)
        .ok_or_else(|| Error::decode("SNS notification whose Message is not a string"))?;
    let next = nest(depth, "SNS notification")?;
    let mut inner =
        decode_at(message.as_bytes(), next).map_err(|e| in_context(e, "SNS Message"))?;
    inner.sns = true;
    Ok(inner)
}

#[derive(Deserialize)]
struct LambdaRecordProbe {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
    #[serde(rename = "EventSource", default)]
    event_source_sns: Option<String>,
}

#[derive(Deserialize)]
struct SqsRecord {
    body: String,
}

#[derive(Deserialize)]
struct SnsRecord {
    #[serde(rename = "Sns")]
    sns: SnsMessage,
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "Message")]
    message: String,
}

pub(super) fn decode_records(records: &RawValue, depth: usize) -> Result<Decoded> {
    let items: Vec<&RawValue> = serde_json::from_str(records.get())
        .map_err(|e| Error::decode(format!("\"Records\" is not an array of objects: {e}")))?;
    let Some(first) = items.first() else {
        return Ok(Decoded::new(BodyFormat::CloudTrailLog, false, Vec::new()));
    };
    let probe: LambdaRecordProbe = serde_json::from_str(first.get())
        .map_err(|e| Error::decode(format!("Records[0] is not an object: {e}")))?;
    let source = probe
        .event_source
        .as_deref()
        .or(probe.event_source_sns.as_deref())
        .unwrap_or("");
    match source {
        "aws:sqs" => {
            let next = nest(depth, "SQS event")?;
            let mut events = Vec::new();
            let mut sns = false;
            for (i, item) in items.iter().enumerate() {
                let ctx = format!("SQS record {i}");
                let rec: SqsRecord = serde_json::from_str(item.get())
                    .map_err(|e| Error::decode(format!("{ctx}: no string body: {e}")))?;
                let inner =
                    decode_at(rec.body.as_bytes(), next).map_err(|e| in_context(e, &ctx))?;
                sns |= inner.sns;
                events.extend(inner.events);
            }
            Ok(Decoded::new(BodyFormat::SqsEvent, sns, events))
        }
        "aws:sns" => {
            let next = nest(depth, "SNS event")?;
            let mut events = Vec::new();
            let mut format = None;
            for (i, item) in items.iter().enumerate() {
                let ctx = format!("SNS record {i}");
                let rec: SnsRecord = serde_json::from_str(item.get())
                    .map_err(|e| Error::decode(format!("{ctx}: no Sns.Message string: {e}")))?;
                let inner =
                    decode_at(rec.sns.message.as_bytes(), next).map_err(|e| in_context(e, &ctx))?;
                format.get_or_insert(inner.format);
                events.extend(inner.events);
            }
            let format = format.unwrap_or(BodyFormat::CloudTrailLog);
            Ok(Decoded::new(format, true, events))
        }
        "aws:s3" => Err(Error::decode(
            "S3 event notification: it names a CloudTrail log object but carries no finding; \
             fetch the object and read it with RecordSplitter",
        )),
        other if other.starts_with("aws:") => Err(Error::decode(format!(
            "Lambda event from {} is not supported",
            other.chars().take(KEY_CHARS).collect::<String>()
        ))),
        _ => {
            let events = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    CloudTrailRecord::from_slice(item.get().as_bytes())
                        .map(|r| Event::CloudTrail(Box::new(r)))
                        .map_err(|e| in_context(e, &format!("Records[{i}]")))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Decoded::new(BodyFormat::CloudTrailLog, false, events))
        }
    }
}

#[derive(Deserialize)]
struct AwsLogs {
    data: String,
}

pub(super) fn decode_awslogs(raw: &RawValue, depth: usize) -> Result<Decoded> {
    use base64::Engine as _;
    let logs: AwsLogs = serde_json::from_str(raw.get())
        .map_err(|e| Error::decode(format!("awslogs without a data string: {e}")))?;
    nest(depth, "CloudWatch Logs data")?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(logs.data.trim())
        .map_err(|e| Error::decode(format!("awslogs.data is not base64: {e}")))?;
    if !is_gzip(&compressed) {
        return Err(Error::decode("awslogs.data is not gzip-compressed"));
    }
    let bytes = read_limited(
        flate2::read::MultiGzDecoder::new(&compressed[..]),
        MAX_DECOMPRESSED_BYTES,
        "awslogs.data",
    )?;
    decode_logs_subscription(&bytes).map_err(|e| in_context(e, "awslogs.data"))
}

pub(super) fn decode_logs_subscription(body: &[u8]) -> Result<Decoded> {
    let sub: LogsSubscription = serde_json::from_slice(body)
        .map_err(|e| Error::decode(format!("invalid CloudWatch Logs subscription message: {e}")))?;
    let events = sub
        .log_events
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            CloudTrailRecord::from_slice(ev.message.as_bytes())
                .map(|r| Event::CloudTrail(Box::new(r)))
                .map_err(|e| {
                    in_context(
                        e,
                        &format!("CloudWatch Logs event {i} is not a CloudTrail record"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Decoded::new(BodyFormat::CloudWatchLogs, false, events))
}

pub(super) fn decode_eventbridge(body: &[u8]) -> Result<Decoded> {
    let ev: EventBridgeEvent = serde_json::from_slice(body)
        .map_err(|e| Error::decode(format!("invalid EventBridge event: {e}")))?;
    if !ev.is_cloudtrail() {
        return Err(Error::decode(format!(
            "EventBridge event with detail-type {:?} is not a CloudTrail event",
            ev.detail_type.chars().take(80).collect::<String>()
        )));
    }
    let record = ev
        .record()
        .map_err(|e| in_context(e, "EventBridge detail"))?;
    Ok(Decoded::one(
        BodyFormat::EventBridge,
        Event::CloudTrail(Box::new(record)),
    ))
}
