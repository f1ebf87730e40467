//! The message-body models, over any bytes: `model::decode` (shape detection,
//! SNS / EventBridge / CloudWatch Logs / Pub/Sub envelopes, gzip, alert lists)
//! and each model's own parser, with every accessor a planner or the engine
//! reads. Nothing may panic.
//!
//! The indexed parsers (Prisma alert, CloudTrail record) scan the JSON
//! themselves instead of handing it to serde_json; what they accept must be
//! JSON to serde_json too, and must survive its own serialization unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remediation::plan::{CommandPolicy, parse_script_steps};
use remediation::model::cloudtrail::{EventBridgeEvent, LogsSubscription, RecordSplitter};
use remediation::model::{self, CloudTrailRecord, Event, LogEntry, PrismaAlert, SccNotification};
use serde::de::IgnoredAny;
use std::sync::LazyLock;

/// Built once (it fingerprints the whole operation catalog).
static POLICY: LazyLock<CommandPolicy> = LazyLock::new(CommandPolicy::default);

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = model::decode(data) {
        let _ = decoded.format.as_str();
        for event in &decoded.events {
            event_accessors(event);
        }
    }

    if let Ok(alert) = PrismaAlert::from_slice(data) {
        alert_accessors(&alert);
    }
    if let Ok(alerts) = PrismaAlert::list_from_slice(data) {
        alerts.iter().for_each(alert_accessors);
    }
    if let Ok(record) = CloudTrailRecord::from_slice(data) {
        record_accessors(&record);
    }
    if let Ok(entry) = LogEntry::from_slice(data) {
        log_entry_accessors(&entry);
    }
    if let Ok(notification) = SccNotification::from_slice(data) {
        scc_accessors(&notification);
    }
    if let Ok(envelope) = serde_json::from_slice::<EventBridgeEvent>(data) {
        let _ = envelope.is_cloudtrail();
        if let Ok(record) = envelope.record() {
            record_accessors(&record);
        }
    }
    if let Ok(subscription) = serde_json::from_slice::<LogsSubscription>(data) {
        let _ = subscription.is_control();
        for event in &subscription.log_events {
            if let Ok(record) = CloudTrailRecord::from_text(&event.message) {
                record_accessors(&record);
            }
        }
    }
    // A CloudTrail log file, streamed.
    for record in RecordSplitter::new(data).take(64) {
        match record {
            Ok(bytes) => {
                if let Ok(record) = CloudTrailRecord::from_slice(&bytes) {
                    record_accessors(&record);
                }
            }
            Err(_) => break,
        }
    }
});

fn event_accessors(event: &Event) {
    let _ = event.kind().as_str();
    let _ = event.alert_id();
    let _ = event.event_id();
    let _ = event.account_id();
    let _ = event.dedup_key();
    let _ = event.cloud().as_str().len();
    let _ = event.target();
    match event {
        Event::PrismaAlert(a) => alert_accessors(a),
        Event::CloudTrail(r) => record_accessors(r),
        Event::GcpLog(e) => log_entry_accessors(e),
        Event::SccFinding(n) => scc_accessors(n),
        _ => {}
    }
}

/// What the scanner accepted, serde_json accepts, and a round trip keeps.
fn raw_is_json(raw: &str, what: &str) {
    if let Err(e) = serde_json::from_str::<IgnoredAny>(raw) {
        panic!("{what} accepted text serde_json refuses ({e}): {raw:?}");
    }
}

fn alert_accessors(alert: &PrismaAlert) {
    assert!(
        !alert.id().is_empty(),
        "an alert without an id was accepted"
    );
    raw_is_json(alert.raw(), "PrismaAlert");
    let json = serde_json::to_string(alert).expect("an alert serializes");
    let again = PrismaAlert::from_text(&json).expect("a serialized alert parses again");
    assert_eq!(&again, alert);
    assert_eq!(again.id(), alert.id());
    let _ = alert.details();
    let _ = alert.status();
    let _ = alert.is_open();
    let _ = alert.remediable();
    let _ = alert.is_test_notification();
    let _ = alert.account_id();
    let _ = alert.account_name();
    let _ = alert.cloud_type();
    let _ = alert.region();
    let _ = alert.policy_name();
    let _ = alert.policy_id();
    let _ = alert.severity();
    let _ = alert.labels();
    let _ = alert.resource_id();
    let _ = alert.resource_name();
    let _ = alert.resource_data().map(|r| r.to_value());
    let _ = alert.alert_time_millis();
    // The alert CLI planner's path: the alert's script, parsed.
    if let Some(script) = alert.remediation_cli() {
        let _ = parse_script_steps(script, &POLICY);
    }
}

fn record_accessors(record: &CloudTrailRecord) {
    raw_is_json(record.raw(), "CloudTrailRecord");
    let json = serde_json::to_string(record).expect("a record serializes");
    let again = CloudTrailRecord::from_text(&json).expect("a serialized record parses again");
    assert_eq!(&again, record);
    assert_eq!(again.event_id(), record.event_id());
    let _ = record.event_id();
    let _ = record.event_name();
    let _ = record.event_source();
    let _ = record.aws_region();
    let _ = record.account_id();
    let _ = record.identity_type();
    let _ = record.mfa_authenticated();
    let _ = record.request_parameters::<serde_json::Value>();
    let _ = record.response_elements::<serde_json::Value>();
    let _ = record.additional_event_data::<serde_json::Value>();
    let _ = record.service_event_details::<serde_json::Value>();
    let _ = remediation::rules::eventbridge_view(record);
    if let Ok(details) = record.details() {
        let _ = details.event_id();
        let _ = details.account_id();
        let _ = details.identity_type();
        let _ = details.mfa_authenticated();
        let _ = details.resources();
        let _ = details.tls_details();
        let _ = details.request_parameters::<serde_json::Value>();
        if let Some(identity) = &details.user_identity {
            let _ = identity.session_context();
            let _ = identity.on_behalf_of();
            let _ = identity.in_scope_of::<serde_json::Value>();
        }
    }
}

fn log_entry_accessors(entry: &LogEntry) {
    let _ = entry.is_audit_log();
    let _ = entry.project_id();
    let _ = entry.region();
    let _ = entry.dedup_key();
    let _ = entry.json_payload::<serde_json::Value>();
    if let Some(audit) = entry.audit_log() {
        let _ = audit.principal_email();
        let _ = audit.caller_ip();
        let _ = audit.succeeded();
        let _ = audit.request::<serde_json::Value>();
        let _ = audit.response::<serde_json::Value>();
    }
}

fn scc_accessors(notification: &SccNotification) {
    let _ = notification.finding_name();
    let _ = notification.project_id();
    let _ = notification.region();
    let _ = notification.dedup_key();
    if let Some(finding) = notification.finding() {
        let _ = finding.is_active();
        let _ = finding.source_properties::<serde_json::Value>();
    }
}
