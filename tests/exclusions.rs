//! Exclusions and loop prevention through the real pipeline, built from a
//! guardrails file: excluded deliveries are skipped (acked) with `excluded`
//! and the entry named in the audit record, an exclusion that cannot be
//! decided defers and is never acked, and the worker's own changes are
//! skipped with `own_change`. Identity discovery runs the real aws CLI
//! against moto.

mod support;

use remediation::engine::{AuditDecision, MemoryAudit, SettleAction};
use remediation::guardrails::{
    DiscoveryEnv, Guardrails, GuardrailsFile, MemoryGuardrails, discover_identities,
};
use remediation::pipeline::Pipeline;
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::{AlertSource, MemorySource};
use std::sync::Arc;
use support::recording::{RecordingExecutor, no_delay};
use tokio_util::sync::CancellationToken;

const FILE: &str = r#"
identities:
  arns: ["arn:aws:iam::123456789012:role/ops/remediator"]
exclusions:
  - exclude: { account: "2109876543*" }
    reason: sandbox accounts
    expires: 2999-01-01
  - exclude: { tags: { remediation: "off*" } }
    reason: owners opted out
  - exclude: { account: "123456789012" }
    reason: an old freeze
    expires: 2020-06-30
"#;

fn alert(id: &str, account: &str, tags: Option<serde_json::Value>) -> String {
    let user = format!("user-{id}");
    let mut body = serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": account,
        "cloudType": "aws",
        "policyName": "AWS IAM user with risky permissions",
        "resourceName": user,
        "alertRemediationCli": format!(
            "aws iam attach-user-policy --user-name {user} \
             --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
        ),
    });
    if let Some(tags) = tags {
        body["resource"] = serde_json::json!({ "resourceTags": tags });
    }
    body.to_string()
}

fn cloudtrail(caller: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.08",
        "eventID": "ct-1",
        "eventName": "AttachUserPolicy",
        "eventSource": "iam.amazonaws.com",
        "awsRegion": "us-east-1",
        "recipientAccountId": "123456789012",
        "userIdentity": {"type": "AssumedRole", "arn": caller, "accountId": "123456789012"},
    })
    .to_string()
}

#[tokio::test]
async fn excluded_deliveries_are_skipped_with_the_entry_named_and_unresolved_ones_wait() {
    let file = GuardrailsFile::from_yaml(FILE).expect("file");
    let stages = Guardrails::from_file(&file, Arc::new(MemoryGuardrails::new()))
        .expect("guardrails")
        .stages();
    let audit = Arc::new(MemoryAudit::new());
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let mut builder = Pipeline::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit.clone())
    .source_name("test");
    for stage in stages {
        builder = builder.stage(stage);
    }
    let pipeline = builder.build();
    let source = MemorySource::new();
    let bodies = [
        alert("sandbox", "210987654321", Some(serde_json::json!({}))),
        alert(
            "opted-out",
            "123456789012",
            Some(serde_json::json!({"remediation": "off-2027"})),
        ),
        // No tags carried and no lookup configured: cannot be decided.
        alert("untagged", "123456789012", None),
        alert(
            "ok",
            "123456789012",
            Some(serde_json::json!({"remediation": "on"})),
        ),
        cloudtrail("arn:aws:sts::123456789012:assumed-role/remediator/botocore-session-1"),
    ];
    for body in bodies {
        source.send(body).await.unwrap();
    }
    let batch = source.receive(10).await.unwrap();
    let settled = pipeline.handle(batch, &CancellationToken::new()).await;
    let outcome: Vec<(&str, SettleAction)> =
        settled.iter().map(|s| (s.reason_code, s.settle)).collect();
    assert_eq!(
        outcome,
        [
            ("excluded", SettleAction::Ack),
            ("excluded", SettleAction::Ack),
            ("exclusion_unresolved", SettleAction::Nack),
            ("executed", SettleAction::Ack),
            ("own_change", SettleAction::Ack),
        ]
    );
    assert_eq!(
        executor.done().len(),
        1,
        "only `ok` ran (the expired freeze no longer applies)"
    );
    let records = audit.records();
    let record = |id: &str| {
        records
            .iter()
            .find(|r| r.alert_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no record for {id}"))
    };
    let reason = |id: &str| record(id).reason.clone().unwrap_or_default();
    assert_eq!(record("sandbox").decision, AuditDecision::Skipped);
    assert_eq!(
        reason("sandbox"),
        "excluded: exclusions[0] (sandbox accounts)"
    );
    assert_eq!(
        reason("opted-out"),
        "excluded: exclusions[1] (owners opted out)"
    );
    assert_eq!(record("untagged").decision, AuditDecision::Deferred);
    assert!(
        reason("untagged").contains("exclusions[1]"),
        "{}",
        reason("untagged")
    );
    let own = records
        .iter()
        .find(|r| r.event_id.as_deref() == Some("ct-1"))
        .unwrap();
    assert!(
        own.reason
            .as_deref()
            .unwrap()
            .contains("arn:aws:iam::123456789012:role/ops/remediator")
    );
    // The deferred delivery was nacked with a delay, not acked: it is still
    // in the queue, and not delivered again before its delay.
    assert!(source.receive(10).await.unwrap().is_empty());
    assert_eq!(pipeline.stats().snapshot().deferred, 1);
}

#[tokio::test]
async fn identities_are_discovered_with_the_real_aws_cli_on_moto() {
    let venv = support::moto::venv();
    let moto = support::moto::MotoServer::start(&venv);
    let dir = tempfile::tempdir().unwrap();
    let env = support::moto::remediator_env(&venv, dir.path(), &moto.endpoint());
    let get = |k: &str| {
        env.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let discovery = DiscoveryEnv::default()
        .with_path(get("PATH"))
        .with_files(get("AWS_CONFIG_FILE"), get("AWS_SHARED_CREDENTIALS_FILE"))
        .with_endpoint_url(get("AWS_ENDPOINT_URL"));
    let arns = discover_identities(&["remediator".to_owned()], &discovery)
        .await
        .expect("discovered");
    assert_eq!(arns.len(), 1);
    assert!(arns[0].starts_with("arn:aws:"), "{arns:?}");
    assert!(arns[0].contains(":123456789012:"), "{arns:?}");
    let own = remediation::guardrails::OwnIdentities::new()
        .identity(&arns[0])
        .expect("discovered ARN is a principal");
    assert!(!own.is_empty());
    // A profile that does not exist fails with the profile named.
    let e = discover_identities(&["nobody".to_owned()], &discovery)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nobody\""), "{e}");
}
