//! Wire models against real published samples (tests/fixtures, and
//! ../shared/fixtures when present), plus the lenient, hostile and streaming
//! cases the fixtures do not cover.

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use proptest::prelude::*;
use remediation::ErrorKind;
use remediation::model::cloudtrail::RecordSplitter;
use remediation::model::prisma::AlertDetails;
use remediation::model::{
    BodyFormat, Cloud, CloudTrailRecord, Decoded, Event, LogEntry, PrismaAlert, SccNotification,
    Target, decode,
};
use serde_json::{Value, json};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn sns(message: &str) -> String {
    json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:findings",
        "Message": message,
        "Timestamp": "2024-01-01T00:00:00.000Z",
        "SignatureVersion": "1"
    })
    .to_string()
}

fn sqs(bodies: &[&str]) -> String {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": "h",
                "body": b,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records }).to_string()
}

fn logs_subscription(records: &[&str]) -> String {
    let events: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"id": format!("{i}"), "timestamp": 1_700_000_000_000i64 + i as i64, "message": m}))
        .collect();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "aws-cloudtrail-logs",
        "logStream": "123456789012_CloudTrail_us-east-1",
        "subscriptionFilters": ["all"],
        "logEvents": events
    })
    .to_string()
}

fn awslogs(decoded: &str) -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(gzip(decoded.as_bytes()));
    json!({ "awslogs": { "data": data } }).to_string()
}

fn decode_err(body: &[u8]) -> String {
    match decode(body) {
        Ok(d) => panic!("expected an error, decoded {:?}", d.format),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
            e.to_string()
        }
    }
}

const RECORD: &str = r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"111122223333","userName":"alice","sessionContext":{"attributes":{"mfaAuthenticated":"true","creationDate":"2024-01-01T00:00:00Z"}}},"eventTime":"2024-01-01T00:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.1","requestParameters":{"userName":"bob"},"responseElements":null,"eventID":"e-1","eventType":"AwsApiCall","recipientAccountId":"111122223333"}"#;

const ALERT: &str = r#"{"alertId":"P-1","alertStatus":"open","accountId":"123456789012","cloudType":"aws","resourceRegionId":"us-east-1","policyName":"p"}"#;

// ------------------------------------------------------- fixtures round-trip

/// What decoding each fixture must give.
fn expected(dir: &str, name: &str) -> Option<(BodyFormat, usize)> {
    use BodyFormat::*;
    Some(match (dir, name) {
        ("prisma", "pan-enhanced-remediation-test-T-0-sqs-envelope.json") => (SqsEvent, 1),
        ("prisma", "schrius-api-alert-list.json") => (PrismaAlertList, 4),
        ("prisma", _) => (PrismaAlert, 1),
        ("cloudtrail", "awsdocs-log-insights-start-end-pair.json") => (CloudTrailLog, 2),
        ("cloudtrail", "awsdocs-s3-log-ListBuckets-PutBucketAcl-GetBucketVersioning.json") => {
            (CloudTrailLog, 3)
        }
        ("cloudtrail", "awsdocs-record-ConsoleLogin-iamuser-success.json") => (CloudTrailLog, 1),
        ("cloudtrail", n) if n.starts_with("awsdocs-log-") => (CloudTrailLog, 1),
        ("cloudtrail", n)
            if n.starts_with("custodian-event-cloud-trail-create-bucket")
                || n.starts_with("custodian-event-cloud-trail-s3")
                || n.starts_with("miztiik-eventbridge") =>
        {
            (EventBridge, 1)
        }
        ("cloudtrail", _) => (CloudTrailRecord, 1),
        _ => return None,
    })
}

enum Element {
    Alert(Value),
    Record(Value),
}

/// The alerts and records a fixture holds, found by walking its JSON the
/// way a reader would (independently of `decode`).
fn elements(v: &Value, out: &mut Vec<Element>) {
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| out.push(Element::Alert(i.clone()))),
        Value::Object(m) => {
            if let Some(Value::Array(records)) = m.get("Records") {
                for r in records {
                    if r.get("eventSource") == Some(&json!("aws:sqs")) {
                        let body: Value =
                            serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
                        elements(&body, out);
                    } else {
                        out.push(Element::Record(r.clone()));
                    }
                }
            } else if let Some(detail) = m.get("detail") {
                out.push(Element::Record(detail.clone()));
            } else if m.contains_key("alertId") || m.contains_key("id") {
                out.push(Element::Alert(v.clone()));
            } else {
                out.push(Element::Record(v.clone()));
            }
        }
        other => panic!("unexpected fixture shape {other}"),
    }
}

fn check_fixture(path: &Path, dir: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match expected(dir, name) {
        Some((format, count)) => {
            assert_eq!(decoded.format, format, "{name}");
            assert_eq!(decoded.events.len(), count, "{name}");
        }
        None => assert!(!decoded.events.is_empty(), "{name}: no events"),
    }

    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let mut els = Vec::new();
    elements(&original, &mut els);
    assert_eq!(els.len(), decoded.events.len(), "{name}: element count");
    for (i, (el, event)) in els.iter().zip(&decoded.events).enumerate() {
        match el {
            Element::Alert(v) => {
                let text = v.to_string();
                let typed: AlertDetails =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
                assert_eq!(
                    &serde_json::to_value(&typed).unwrap(),
                    v,
                    "{name}[{i}] round trip"
                );
                let alert = PrismaAlert::from_slice(text.as_bytes()).unwrap();
                assert_eq!(&serde_json::to_value(&alert).unwrap(), v, "{name}[{i}] raw");
                let Event::PrismaAlert(got) = event else {
                    panic!("{name}[{i}]: not an alert")
                };
                assert_eq!(
                    &serde_json::to_value(got).unwrap(),
                    v,
                    "{name}[{i}] decoded"
                );
                assert_eq!(
                    &serde_json::to_value(got.details().unwrap()).unwrap(),
                    v,
                    "{name}[{i}] details"
                );
                assert_eq!(got.id(), alert.id());
            }
            Element::Record(v) => {
                let typed = CloudTrailRecord::from_slice(v.to_string().as_bytes())
                    .unwrap_or_else(|e| panic!("{name}[{i}]: {e}"));
                assert_eq!(
                    &serde_json::to_value(&typed).unwrap(),
                    v,
                    "{name}[{i}] round trip"
                );
                assert_eq!(
                    &serde_json::to_value(typed.details().unwrap()).unwrap(),
                    v,
                    "{name}[{i}] details"
                );
                let Event::CloudTrail(got) = event else {
                    panic!("{name}[{i}]: not a record")
                };
                assert_eq!(
                    &serde_json::to_value(got).unwrap(),
                    v,
                    "{name}[{i}] decoded"
                );
            }
        }
    }
}

fn fixture_files(root: &Path, dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("{}/{dir}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn check_fixture_root(root: &Path) -> usize {
    let mut n = 0;
    for dir in ["prisma", "cloudtrail"] {
        for path in fixture_files(root, dir) {
            check_fixture(&path, dir);
            n += 1;
        }
    }
    for path in fixture_files(root, "gcp") {
        check_gcp_fixture(&path);
        n += 1;
    }
    for path in fixture_files(root, "azure") {
        let msg = decode_err(&std::fs::read(&path).unwrap());
        assert!(
            msg.contains("Azure") && msg.contains("not supported yet"),
            "{}: {msg}",
            path.display()
        );
        n += 1;
    }
    n
}

/// A GCP fixture decodes to one event whose serialization gives back every
/// field of the payload (the push envelope's `message.data`, decoded, for a
/// Pub/Sub push body), through `decode` and through the model alone.
fn check_gcp_fixture(path: &Path) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let decoded = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decoded.events.len(), 1, "{name}");
    let original: Value = serde_json::from_slice(&bytes).unwrap();
    let payload: Vec<u8> = match original.get("message") {
        Some(m) if original.get("subscription").is_some() => {
            base64::engine::general_purpose::STANDARD
                .decode(m["data"].as_str().unwrap())
                .unwrap()
        }
        _ => bytes.clone(),
    };
    let expected: Value = serde_json::from_slice(&payload).unwrap();
    let scc = expected.get("finding").is_some();
    assert_eq!(
        decoded.format,
        if scc {
            BodyFormat::SccNotification
        } else {
            BodyFormat::GcpLogEntry
        },
        "{name}"
    );
    let event = &decoded.events[0];
    assert_eq!(event.cloud(), Cloud::Gcp, "{name}");
    assert_eq!(
        &serde_json::to_value(event_json(event)).unwrap(),
        &expected,
        "{name} decoded"
    );
    if scc {
        assert_eq!(event.kind().as_str(), "scc_finding");
        let n = SccNotification::from_slice(&payload).unwrap();
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            expected,
            "{name} round trip"
        );
        let reparsed = SccNotification::from_slice(&serde_json::to_vec(&n).unwrap()).unwrap();
        assert_eq!(reparsed, n, "{name} reparse");
    } else {
        assert_eq!(event.kind().as_str(), "gcp_audit_log");
        let e = LogEntry::from_slice(&payload).unwrap();
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            expected,
            "{name} round trip"
        );
        let reparsed = LogEntry::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(reparsed, e, "{name} reparse");
    }
}

fn event_json(event: &Event) -> Value {
    match event {
        Event::GcpLog(e) => serde_json::to_value(e).unwrap(),
        Event::SccFinding(n) => serde_json::to_value(n).unwrap(),
        other => panic!("not a GCP event: {:?}", other.kind()),
    }
}

#[test]
fn repo_fixtures_decode_and_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    assert!(
        root.join("README.md").exists(),
        "fixture provenance missing"
    );
    let n = check_fixture_root(&root);
    assert!(n >= 40, "only {n} fixtures checked");
}

#[test]
fn shared_fixtures_decode_and_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    let root = if root.exists() {
        root
    } else {
        PathBuf::from("/work/shared/fixtures")
    };
    if !root.exists() {
        eprintln!("no shared fixtures directory; skipped");
        return;
    }
    check_fixture_root(&root);
}

#[test]
fn fixture_specific_messages_and_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");

    let t0 = decode(
        &std::fs::read(root.join("prisma/pan-enhanced-remediation-test-T-0-sqs-envelope.json"))
            .unwrap(),
    )
    .unwrap();
    let Event::PrismaAlert(a) = &t0.events[0] else {
        panic!("not an alert")
    };
    assert!(a.is_test_notification());
    assert_eq!(a.account_id(), Some("123456789012"));
    assert_eq!(a.region(), Some("us-west-2"));
    assert!(a.resource_data().is_none());

    let nested = PrismaAlert::from_slice(
        &std::fs::read(root.join("prisma/pc-docs-iam-remediation-sqs-alert.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(nested.id(), "I-1234567");
    assert_eq!(nested.remediable(), Some(true));
    assert_eq!(nested.account_id(), Some("1234567890"));
    assert_eq!(nested.cloud_type(), Some("aws"));
    assert_eq!(nested.region(), Some("global"));
    assert_eq!(nested.resource_id(), Some("ABCDEFGHIJKLMN"));
    assert_eq!(nested.alert_time_millis(), Some(1_234_567_890_123));
    assert!(nested.labels().is_empty());

    let list =
        decode(&std::fs::read(root.join("prisma/schrius-api-alert-list.json")).unwrap()).unwrap();
    let Event::PrismaAlert(a) = &list.events[0] else {
        panic!("not an alert")
    };
    assert_eq!(
        (a.id(), a.status(), a.remediable()),
        ("P-48311", Some("open"), Some(false))
    );
    assert_eq!(a.account_id(), Some("958465719869"));
    assert_eq!(a.region(), Some("us-east-2"));
    let data: CloudTrailRecord = a.resource_data().unwrap().parse().unwrap();
    assert_eq!(data.event_name(), Some("RenewRole"));

    let flat =
        decode(&std::fs::read(root.join("prisma/schrius-prisma-event.json")).unwrap()).unwrap();
    let Event::PrismaAlert(a) = &flat.events[0] else {
        panic!("not an alert")
    };
    assert_eq!(
        a.labels(),
        vec!["Network".to_owned(), "Reconnaissance".to_owned()]
    );
    assert_eq!(a.remediation_cli(), None);
    assert_eq!(a.severity(), Some("high"));
    assert!(a.is_open());
    assert!(!a.is_test_notification());

    let eb = decode(
        &std::fs::read(root.join("cloudtrail/miztiik-eventbridge-iam-CreateUser.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(eb.events[0].kind().as_str(), "cloudtrail");
    let Event::CloudTrail(r) = &eb.events[0] else {
        panic!("not a record")
    };
    assert_eq!(r.event_name(), Some("CreateUser"));
}

// ------------------------------------------------------------ Prisma cases

#[test]
fn alert_without_id_is_an_error_naming_it() {
    let msg = decode_err(br#"{"alertStatus":"open","policyName":"x","accountId":"1"}"#);
    assert!(msg.contains("alertId"), "{msg}");
    let err = PrismaAlert::from_slice(br#"{"policyName":"x"}"#).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("alertId"), "{err}");
}

#[test]
fn labels_as_json_in_a_string() {
    let a =
        PrismaAlert::from_slice(br#"{"alertId":"P-2","policy":{"labels":"[\"PCI\",\"CIS\"]"}}"#)
            .unwrap();
    assert_eq!(a.labels(), vec!["PCI".to_owned(), "CIS".to_owned()]);
    // and it serializes back as the string it was
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["policy"]["labels"], json!("[\"PCI\",\"CIS\"]"));
}

#[test]
fn remediation_cli_in_all_forms() {
    let cli = |v: Value| {
        let a = PrismaAlert::from_slice(
            json!({"alertId": "P-3", "alertRemediationCli": v})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let round = serde_json::to_value(&a).unwrap();
        assert_eq!(round["alertRemediationCli"], v, "round trip");
        a.remediation_cli().map(str::to_owned)
    };
    let script = "aws s3api put-public-access-block --bucket b --region us-east-1";
    assert_eq!(cli(json!(script)).as_deref(), Some(script));
    assert_eq!(
        cli(json!({"cliScript": script, "description": "block public access"})).as_deref(),
        Some(script)
    );
    assert_eq!(cli(Value::Null), None);
    assert_eq!(cli(json!("BLANK")), None);
    assert_eq!(cli(json!("")), None);
    assert_eq!(cli(json!({"description": "no script"})), None);
    let missing = PrismaAlert::from_slice(br#"{"alertId":"P-3"}"#).unwrap();
    assert_eq!(missing.remediation_cli(), None);
    let obj = PrismaAlert::from_slice(
        json!({"alertId":"P-3","alertRemediationCli":{"cliScript":"aws x","description":"d"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(obj.remediation_cli(), Some("aws x"));
    assert_eq!(
        obj.details()
            .unwrap()
            .alert_remediation_cli
            .as_ref()
            .and_then(|c| c.description()),
        Some("d")
    );
}

#[test]
fn test_notification_by_sender_and_status_case() {
    let a = PrismaAlert::from_slice(
        br#"{"alertId":"P-9","sender":"Test Notification","resource":"This is a test message."}"#,
    )
    .unwrap();
    assert!(a.is_test_notification());
    let a = PrismaAlert::from_slice(br#"{"alertId":"P-9","alertStatus":"OPEN"}"#).unwrap();
    assert!(a.is_open());
    let a = PrismaAlert::from_slice(br#"{"alertId":"P-9","alertStatus":"dismissed"}"#).unwrap();
    assert!(!a.is_open());
}

#[test]
fn unknown_alert_fields_stay_reachable() {
    let a = PrismaAlert::from_slice(
        br#"{"alertId":"P-4","brandNew":{"x":[1,2]},"policy":{"name":"n","future":true}}"#,
    )
    .unwrap();
    let d = a.details().unwrap();
    assert_eq!(d.other["brandNew"], json!({"x": [1, 2]}));
    assert_eq!(d.policy.as_ref().unwrap().other["future"], json!(true));
    // serializing the alert gives back exactly what came in
    assert_eq!(
        serde_json::to_value(&a).unwrap()["brandNew"],
        json!({"x": [1, 2]})
    );
}

// --------------------------------------------------------- CloudTrail cases

#[test]
fn mfa_authenticated_strings_become_bools() {
    let r = CloudTrailRecord::from_slice(RECORD.as_bytes()).unwrap();
    assert_eq!(r.mfa_authenticated(), Some(true));
    let r =
        CloudTrailRecord::from_slice(RECORD.replace("\"true\"", "\"false\"").as_bytes()).unwrap();
    assert_eq!(r.mfa_authenticated(), Some(false));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"],
        json!("false")
    );
    let r = CloudTrailRecord::from_slice(br#"{"eventID":"x"}"#).unwrap();
    assert_eq!(r.mfa_authenticated(), None);
}

#[test]
fn record_payloads_parse_on_demand() {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct CreateAccessKey {
        user_name: String,
    }
    let r = CloudTrailRecord::from_slice(RECORD.as_bytes()).unwrap();
    let p: CreateAccessKey = r.request_parameters().unwrap().unwrap();
    assert_eq!(p.user_name, "bob");
    assert!(r.response_elements::<Value>().unwrap().is_none());
    assert!(r.additional_event_data::<Value>().unwrap().is_none());
    assert!(r.request_parameters::<Vec<u8>>().is_err());
    assert_eq!(r.account_id(), Some("111122223333"));
    assert_eq!(r.identity_type(), Some("IAMUser"));
    // account falls back to userIdentity.accountId
    let r = CloudTrailRecord::from_slice(br#"{"eventID":"x","userIdentity":{"accountId":"9"}}"#)
        .unwrap();
    assert_eq!(r.account_id(), Some("9"));
}

// ----------------------------------------------------------- envelopes

#[test]
fn eventbridge_detail_types() {
    for dt in [
        "AWS API Call via CloudTrail",
        "AWS Console Sign In via CloudTrail",
        "AWS Service Event via CloudTrail",
    ] {
        let body = format!(
            r#"{{"version":"0","id":"x","detail-type":"{dt}","source":"aws.iam","account":"1","region":"us-east-1","resources":[],"detail":{RECORD}}}"#
        );
        let d = decode(body.as_bytes()).unwrap();
        assert_eq!(d.format, BodyFormat::EventBridge);
        assert_eq!(d.events[0].event_id(), Some("e-1"));
        assert!(!d.sns);
    }
    let msg = decode_err(br#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"state":"running"}}"#);
    assert!(msg.contains("EventBridge event with detail-type \"EC2 Instance State-change Notification\" is not a CloudTrail event"), "{msg}");
}

/// Every kind of body, with its format and event count.
fn kinds() -> Vec<(String, BodyFormat, usize)> {
    let log = format!(r#"{{"Records":[{RECORD},{RECORD}]}}"#);
    vec![
        (ALERT.to_owned(), BodyFormat::PrismaAlert, 1),
        (format!("[{ALERT},{ALERT}]"), BodyFormat::PrismaAlertList, 2),
        (RECORD.to_owned(), BodyFormat::CloudTrailRecord, 1),
        (
            format!(r#"{{"detail-type":"AWS API Call via CloudTrail","detail":{RECORD}}}"#),
            BodyFormat::EventBridge,
            1,
        ),
        (log, BodyFormat::CloudTrailLog, 2),
        (
            logs_subscription(&[RECORD, RECORD, RECORD]),
            BodyFormat::CloudWatchLogs,
            3,
        ),
        (
            awslogs(&logs_subscription(&[RECORD])),
            BodyFormat::CloudWatchLogs,
            1,
        ),
        (sqs(&[ALERT, RECORD]), BodyFormat::SqsEvent, 2),
    ]
}

#[test]
fn every_kind_decodes_bare_and_inside_sns() {
    for (body, format, count) in kinds() {
        let bare = decode(body.as_bytes()).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(
            (bare.format, bare.events.len(), bare.sns),
            (format, count, false)
        );
        let wrapped = decode(sns(&body).as_bytes()).unwrap_or_else(|e| panic!("sns {format}: {e}"));
        assert_eq!(wrapped.format, format);
        assert!(wrapped.sns, "{format} inside SNS");
        assert_eq!(wrapped.events, bare.events);
    }
}

#[test]
fn gzip_records_bytes() {
    let log = format!(r#"{{"Records":[{RECORD},{RECORD}]}}"#);
    let d = decode(&gzip(log.as_bytes())).unwrap();
    assert_eq!(d.format, BodyFormat::CloudTrailLog);
    assert_eq!(d.events.len(), 2);
    let d = decode(&gzip(br#"{"Records":[]}"#)).unwrap();
    assert_eq!((d.format, d.events.len()), (BodyFormat::CloudTrailLog, 0));
}

#[test]
fn cloudwatch_logs_forms() {
    let decoded = logs_subscription(&[RECORD]);
    let a = decode(decoded.as_bytes()).unwrap();
    let b = decode(awslogs(&decoded).as_bytes()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.format, BodyFormat::CloudWatchLogs);
    let Event::CloudTrail(r) = &a.events[0] else {
        panic!()
    };
    assert_eq!(r.event_name(), Some("CreateAccessKey"));
    // a control message carries nothing
    let control = json!({"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]});
    let msg = decode_err(control.to_string().as_bytes());
    assert!(msg.contains("not a CloudTrail record"), "{msg}");
    let msg = decode_err(br#"{"awslogs":{"data":"not base64!!"}}"#);
    assert!(msg.contains("base64"), "{msg}");
}

#[test]
fn sqs_lambda_event() {
    let d = decode(sqs(&[ALERT, &sns(RECORD)]).as_bytes()).unwrap();
    assert_eq!(d.format, BodyFormat::SqsEvent);
    assert!(d.sns, "one body was SNS-wrapped");
    assert_eq!(d.events[0].alert_id(), Some("P-1"));
    assert_eq!(d.events[1].event_id(), Some("e-1"));
    let msg = decode_err(sqs(&[ALERT, "{\"nope\":1}"]).as_bytes());
    assert!(msg.contains("SQS record 1"), "{msg}");
    let msg = decode_err(br#"{"Records":[{"eventSource":"aws:s3","s3":{}}]}"#);
    assert!(msg.contains("S3 event notification"), "{msg}");
}

#[test]
fn event_target_and_dedup_come_from_the_models() {
    let d = decode(ALERT.as_bytes()).unwrap();
    let t = d.events[0].target();
    assert_eq!(t.account_id.as_deref(), Some("123456789012"));
    assert_eq!(t.region.as_deref(), Some("us-east-1"));
    assert_eq!(d.events[0].dedup_key().as_deref(), Some("prisma:P-1:open"));
    let d: Decoded = decode(RECORD.as_bytes()).unwrap();
    assert_eq!(d.events[0].dedup_key().as_deref(), Some("cloudtrail:e-1"));
}

// ------------------------------------------------------------ hostile input

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let deep_arrays = "[".repeat(100_000);
    let deep_objects = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);
    let deep_alert = format!(
        "{{\"alertId\":\"P-1\",\"x\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let mut nested_sns = ALERT.to_owned();
    for _ in 0..10 {
        nested_sns = sns(&nested_sns);
    }
    let mut nested_gzip = ALERT.as_bytes().to_vec();
    for _ in 0..6 {
        nested_gzip = gzip(&nested_gzip);
    }
    let bomb = gzip(&vec![b' '; 80 * 1024 * 1024]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("whitespace", b"  \n ".to_vec()),
        ("null", b"null".to_vec()),
        ("empty array", b"[]".to_vec()),
        ("string", b"\"string\"".to_vec()),
        ("number", b"12345".to_vec()),
        ("huge number", b"1e999999".to_vec()),
        (
            "huge number in alert",
            br#"{"alertId":"P-1","alertTs":1e400}"#.to_vec(),
        ),
        (
            "huge int id",
            br#"{"alertId":123456789012345678901234567890}"#.to_vec(),
        ),
        ("invalid utf-8", b"{\"alertId\":\"P-\xff\xfe\"}".to_vec()),
        ("invalid utf-8 bare", b"\xff\xfe\xfd".to_vec()),
        ("truncated", ALERT.as_bytes()[..20].to_vec()),
        (
            "truncated record",
            RECORD.as_bytes()[..RECORD.len() - 3].to_vec(),
        ),
        ("deep arrays", deep_arrays.into_bytes()),
        ("deep objects", deep_objects.into_bytes()),
        ("nested sns", nested_sns.into_bytes()),
        ("nested gzip", nested_gzip),
        ("gzip bomb", bomb),
        ("gzip garbage", b"\x1f\x8b\x08\x00garbage".to_vec()),
        ("records not array", br#"{"Records":{}}"#.to_vec()),
        ("records of numbers", br#"{"Records":[1,2]}"#.to_vec()),
        (
            "sns message not string",
            br#"{"Type":"Notification","Message":5}"#.to_vec(),
        ),
        (
            "sns confirmation",
            br#"{"Type":"SubscriptionConfirmation","Message":"x"}"#.to_vec(),
        ),
        (
            "sqs body not string",
            br#"{"Records":[{"eventSource":"aws:sqs","body":{}}]}"#.to_vec(),
        ),
        (
            "eventbridge no detail",
            br#"{"detail-type":"AWS API Call via CloudTrail"}"#.to_vec(),
        ),
        (
            "awslogs not gzip",
            br#"{"awslogs":{"data":"aGVsbG8="}}"#.to_vec(),
        ),
        ("trailing garbage", format!("{ALERT} x").into_bytes()),
        (
            "duplicate alertId",
            br#"{"alertId":"P-1","alertId":"P-2"}"#.to_vec(),
        ),
        ("alert id wrong type", br#"{"alertId":{"a":1}}"#.to_vec()),
        ("list with non-alert", br#"[{"alertId":"P-1"},3]"#.to_vec()),
        ("empty object", b"{}".to_vec()),
    ];
    // Legal JSON nested deeper than serde_json's recursion limit inside an
    // unread field: the alert is usable, its full typed view fails cleanly.
    let d = decode(deep_alert.as_bytes()).unwrap();
    let Event::PrismaAlert(a) = &d.events[0] else {
        panic!("not an alert")
    };
    assert_eq!(a.id(), "P-1");
    assert_eq!(a.details().unwrap_err().kind(), ErrorKind::Decode);

    for (name, body) in cases {
        let r = std::panic::catch_unwind(|| decode(&body));
        match r {
            Err(_) => panic!("{name}: panicked"),
            Ok(Ok(d)) => panic!("{name}: decoded as {:?}", d.format),
            Ok(Err(e)) => assert_eq!(e.kind(), ErrorKind::Decode, "{name}: {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&body);
    }

    #[test]
    fn decode_never_panics_on_mutated_bodies(idx in 0usize..8, cut in 0usize..4096, byte in any::<u8>()) {
        let kinds = kinds();
        let (body, _, _) = &kinds[idx % kinds.len()];
        let mut b = body.clone().into_bytes();
        let at = cut % b.len();
        b[at] = byte;
        let _ = decode(&b);
        let _ = decode(&b[..at]);
    }
}

// ---------------------------------------------------------- RecordSplitter

fn split_all(input: &[u8], cap: usize) -> Vec<remediation::Result<Vec<u8>>> {
    RecordSplitter::new(BufReader::with_capacity(cap, input)).collect()
}

fn split_ok(input: &[u8], cap: usize) -> Vec<String> {
    split_all(input, cap)
        .into_iter()
        .map(|r| String::from_utf8(r.unwrap()).unwrap())
        .collect()
}

#[test]
fn splitter_tricky_inputs() {
    let input = concat!(
        "\u{feff}{\"before\": {\"Records\": [\"not these\"], \"s\": \"]}\\\"\"},\n",
        " \"n\": [1, {\"x\": \"}\"}], \"t\": true, \"z\": null, \"num\": -1.5e3,\n",
        " \"Records\": [\n",
        "  {\"a\": \"]\", \"b\": \"}\", \"c\": \"\\\"\", \"d\": \"\\\\\", \"e\": [\"{\", {\"f\": []}]},\n",
        "  {\"u\": \"\\u005d \\\\\\\" ]\"}\n",
        " ],\n",
        " \"after\": \"{[\\\"\"\n",
        "}\n"
    );
    let expected = vec![
        r#"{"a": "]", "b": "}", "c": "\"", "d": "\\", "e": ["{", {"f": []}]}"#.to_owned(),
        r#"{"u": "\u005d \\\" ]"}"#.to_owned(),
    ];
    for cap in [1, 2, 3, 5, 8, 64, 8192] {
        assert_eq!(split_ok(input.as_bytes(), cap), expected, "capacity {cap}");
    }
    for rec in &expected {
        serde_json::from_str::<Value>(rec).unwrap();
    }
}

#[test]
fn splitter_empty_and_malformed() {
    assert!(split_ok(br#"{"Records":[]}"#, 1).is_empty());
    assert!(split_ok(b" { \"Records\" : [ ] , \"x\" : 1 } ", 3).is_empty());

    let bad: &[(&str, &[u8])] = &[
        ("empty", b""),
        ("not an object", b"[1,2]"),
        ("no Records", br#"{"x":[{"a":1}]}"#),
        ("Records not array", br#"{"Records":{"a":1}}"#),
        ("record not object", br#"{"Records":[1]}"#),
        ("truncated in record", br#"{"Records":[{"a":"b"#),
        ("truncated after record", br#"{"Records":[{"a":1}"#),
        ("truncated in key", br#"{"Reco"#),
        ("truncated after Records", br#"{"Records":[{"a":1}]"#),
        ("mismatched", br#"{"Records":[{"a":[1}]}"#),
        ("missing comma", br#"{"Records":[{"a":1} {"b":2}]}"#),
        ("trailing data", br#"{"Records":[]} {}"#),
        ("duplicate Records", br#"{"Records":[],"Records":[]}"#),
        ("garbage value", br#"{"x":@,"Records":[]}"#),
        ("missing colon", br#"{"Records" []}"#),
    ];
    for (name, input) in bad {
        for cap in [1, 4, 4096] {
            let results = split_all(input, cap);
            assert!(
                results.last().is_some_and(|r| r.is_err()),
                "{name} (cap {cap}): expected an error, got {:?}",
                results
                    .iter()
                    .map(|r| r.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))
                    .collect::<Vec<_>>()
            );
            let err = results.last().unwrap().as_ref().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Decode, "{name}: {err}");
        }
    }
    // records before a truncation are still delivered, then the error, then nothing
    let mut it = RecordSplitter::new(&br#"{"Records":[{"a":1},{"b":"#[..]);
    assert_eq!(it.next().unwrap().unwrap(), br#"{"a":1}"#.to_vec());
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn splitter_reads_gzip_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = format!(r#"{{"Records":[{RECORD},{RECORD}]}}"#);
    let plain = dir.path().join("plain.json");
    let gz = dir.path().join("log.json.gz");
    std::fs::write(&plain, &log).unwrap();
    // two gzip members, as concatenated uploads produce
    let mut two = gzip(&log.as_bytes()[..10]);
    two.extend(gzip(&log.as_bytes()[10..]));
    std::fs::write(&gz, two).unwrap();
    for path in [&plain, &gz] {
        let records: Vec<CloudTrailRecord> = RecordSplitter::open(path)
            .unwrap()
            .map(|r| CloudTrailRecord::from_slice(&r.unwrap()).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{}", path.display());
        assert_eq!(records[1].event_id(), Some("e-1"));
    }
    let err = RecordSplitter::open(dir.path().join("missing"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Io);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~\\\\\"\\]\\[{}\u{e9}\u{1F600}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z\\]\"{]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record_value() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map("[a-zA-Z\\]\"{}]{0,8}", json_value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn splitter_matches_serde_json(
        before in json_value(),
        after in json_value(),
        records in proptest::collection::vec(record_value(), 0..8),
        pretty in any::<bool>(),
        cap in 1usize..64,
    ) {
        let doc = json!({"Abefore": before, "Records": records, "zAfter": after});
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { doc.to_string() };
        let got: Vec<Value> = RecordSplitter::new(BufReader::with_capacity(cap, text.as_bytes()))
            .map(|r| serde_json::from_slice(&r.unwrap()).unwrap())
            .collect();
        prop_assert_eq!(&got, &records);
    }

    #[test]
    fn splitter_never_panics_or_loops(body in proptest::collection::vec(any::<u8>(), 0..200), cap in 1usize..16) {
        let n = RecordSplitter::new(BufReader::with_capacity(cap, &body[..])).take(1000).count();
        prop_assert!(n < 1000);
    }
}

// ------------------------------------------------------------- GCP cases

fn gcp_fixture(name: &str) -> Event {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcp");
    let mut d = decode(&std::fs::read(root.join(name)).unwrap()).unwrap();
    d.events.remove(0)
}

#[test]
fn gcp_audit_log_fields_and_target() {
    let Event::GcpLog(e) = gcp_fixture("custodian-auditlog-iam-CreateRole.json") else {
        panic!("not a log entry")
    };
    assert!(e.is_audit_log());
    let a = e.audit_log().unwrap();
    assert_eq!(a.service_name.as_deref(), Some("iam.googleapis.com"));
    assert_eq!(
        a.method_name.as_deref(),
        Some("google.iam.admin.v1.CreateRole")
    );
    assert_eq!(
        a.resource_name.as_deref(),
        Some("projects/mythic-tribute-232915/roles/CustomRole1")
    );
    assert_eq!(a.principal_email(), Some("custodian.gcp.test@gmail.com"));
    assert_eq!(a.caller_ip(), Some("188.163.232.130"));
    assert!(a.succeeded());
    let request: Value = a.request().unwrap().unwrap();
    assert_eq!(request["role_id"], "CustomRole1");
    let response: Value = a.response().unwrap().unwrap();
    assert_eq!(response["group_name"], "custom");
    assert_eq!(e.project_id(), Some("mythic-tribute-232915"));

    let event = gcp_fixture("constructed-auditlog-storage-SetIamPolicy-allUsers.json");
    assert_eq!(event.kind().as_str(), "gcp_audit_log");
    assert_eq!(
        event.target(),
        Target::new(Cloud::Gcp, Some("example-project".to_owned())).with_region("us-east1")
    );
    assert_eq!(event.account_id(), Some("example-project"));
    assert_eq!(event.event_id(), Some("1x2y3z4a5b6c"));
    assert_eq!(
        event.dedup_key().as_deref(),
        Some(
            "gcp_log:projects/example-project/logs/cloudaudit.googleapis.com%2Factivity:1x2y3z4a5b6c"
        )
    );
    let Event::GcpLog(e) = event else { panic!() };
    let a = e.audit_log().unwrap();
    assert_eq!(a.method_name.as_deref(), Some("storage.setIamPermissions"));
    let policy: Value = a.request().unwrap().unwrap();
    assert_eq!(policy["policy"]["bindings"][1]["members"][0], "allUsers");

    // The push envelope's data: a data_access entry without protoPayload;
    // the project comes from resource.labels, the region from `location`.
    let event = gcp_fixture("alloy-pubsub-push-auditlog-data_access.json");
    assert_eq!(event.account_id(), Some("test-project"));
    assert_eq!(event.target().region.as_deref(), Some("us-central1"));

    // An Event Threat Detection entry: jsonPayload, project from logName.
    let Event::GcpLog(e) = gcp_fixture("sra-etd-logentry-bad_ip.json") else {
        panic!()
    };
    assert!(e.audit_log().is_none());
    assert_eq!(e.project_id(), Some("test-project"));
    let payload: Value = e.json_payload().unwrap().unwrap();
    assert_eq!(payload["detectionCategory"]["ruleName"], "bad_ip");
}

#[test]
fn scc_finding_fields_and_target() {
    let event = gcp_fixture("custodian-scc-notification-network-finding.json");
    assert_eq!(event.kind().as_str(), "scc_finding");
    // projectDisplayName is the project id.
    assert_eq!(
        event.target(),
        Target::new(Cloud::Gcp, Some("cloud-custodian".to_owned())).with_region("asia-northeast1")
    );
    let Event::SccFinding(n) = &event else {
        panic!()
    };
    let f = n.finding().unwrap();
    assert_eq!(f.category.as_deref(), Some("FLOW_LOGS_DISABLED"));
    assert!(f.is_active());
    assert_eq!(
        event.event_id(),
        Some("organizations/111111111111/sources/123456789/findings/333333333333")
    );
    assert_eq!(
        event.dedup_key().as_deref(),
        Some(
            "scc:organizations/111111111111/sources/123456789/findings/333333333333:2021-03-16T20:21:34.229Z:ACTIVE"
        )
    );

    // A public bucket: the resource name has no project; Security Health
    // Analytics names it in sourceProperties.ProjectId.
    let event = gcp_fixture("sra-scc-notification-public_bucket_acl.json");
    assert_eq!(event.account_id(), Some("test-project"));
    assert_eq!(event.target().region, None);
    let Event::SccFinding(n) = &event else {
        panic!()
    };
    let f = n.finding().unwrap();
    assert_eq!(f.category.as_deref(), Some("PUBLIC_BUCKET_ACL"));
    assert_eq!(
        f.security_marks.as_ref().unwrap().marks.as_ref().unwrap()["babab"],
        "3"
    );
    let props: Value = f.source_properties().unwrap().unwrap();
    assert_eq!(props["ScannerName"], "STORAGE_SCANNER");

    // Event Threat Detection: the project id is in sourceProperties.properties.
    let event = gcp_fixture("sra-scc-notification-iam_anomalous_grant-remediated.json");
    assert_eq!(event.account_id(), Some("test-project"));
    // Only a project number is known: kept (a context map keyed by id refuses it).
    let event = gcp_fixture("sra-scc-notification-bad_ip_scc.json");
    assert_eq!(event.account_id(), Some("000000000000"));
}

#[test]
fn gcp_shapes_inside_a_pubsub_push_envelope_and_sns() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcp");
    for (name, format) in [
        (
            "sra-scc-notification-public_bucket_acl.json",
            BodyFormat::SccNotification,
        ),
        (
            "custodian-auditlog-iam-CreateRole.json",
            BodyFormat::GcpLogEntry,
        ),
    ] {
        let body = std::fs::read_to_string(root.join(name)).unwrap();
        let push = json!({
            "message": {
                "attributes": {"k": "v"},
                "data": base64::engine::general_purpose::STANDARD.encode(&body),
                "messageId": "1",
                "publishTime": "2024-01-01T00:00:00Z"
            },
            "subscription": "projects/p/subscriptions/s"
        })
        .to_string();
        let d = decode(push.as_bytes()).unwrap();
        assert_eq!(d.format, format, "{name}");
        let bare = decode(body.as_bytes()).unwrap();
        assert_eq!(d.events, bare.events, "{name}");
        let wrapped = decode(sns(&push).as_bytes()).unwrap();
        assert!(wrapped.sns);
        assert_eq!(wrapped.events, bare.events, "{name}");
    }
    let msg =
        decode_err(br#"{"message":{"messageId":"1"},"subscription":"projects/p/subscriptions/s"}"#);
    assert!(msg.contains("Pub/Sub push message without data"), "{msg}");
    let msg =
        decode_err(br#"{"message":{"data":"%%%"},"subscription":"projects/p/subscriptions/s"}"#);
    assert!(msg.contains("not base64"), "{msg}");
    let msg = decode_err(br#"{"notificationConfigName":"organizations/1/notificationConfigs/n"}"#);
    assert!(msg.contains("without a finding"), "{msg}");
    let msg = decode_err(br#"{"logName":"projects/p/logs/x","protoPayload":[1]}"#);
    assert!(msg.contains("invalid GCP log entry"), "{msg}");
}
