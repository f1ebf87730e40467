//! Azure and GCP alerts end to end through the engine and the process
//! executor, against the recording stand-ins for `az` and `gcloud`: the
//! subscription or project each command ran with, files attached to steps,
//! and what is refused (unmapped targets, a CLI acting on another cloud).

mod support;

use remediation::engine::{AuditDecision, AuditRecord, Engine, EngineConfig, MemoryAudit};
use remediation::executor::{AzureContext, ContextMap, GcpContext};
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use std::sync::Arc;
use std::time::Duration;
use support::StandIn;
use tokio_util::sync::CancellationToken;

const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
const OTHER_SUB: &str = "7d3c2a10-0000-4000-8000-000000000001";
const PROJECT: &str = "prod-project-1";

/// An alert about the resource named `resource`.
fn alert(id: &str, cloud: &str, account: &str, resource: &str, script: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "alertId": id,
        "accountId": account,
        "cloudType": cloud,
        "policyName": "test policy",
        "resource": {"name": resource},
        "alertRemediationCli": script,
    }))
    .unwrap()
}

async fn run(standin: &StandIn, contexts: ContextMap, bodies: &[Vec<u8>]) -> Vec<AuditRecord> {
    let q = MemorySource::builder()
        .with_wait(Duration::from_millis(20))
        .build();
    for body in bodies {
        q.send(body.clone()).await.unwrap();
    }
    q.close();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(q),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(standin.executor(contexts)),
    )
    .config(EngineConfig::default())
    .audit(audit.clone())
    .build();
    tokio::time::timeout(
        Duration::from_secs(60),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("engine finished")
    .expect("engine ran");
    let mut records = audit.records();
    records.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    records
}

#[tokio::test]
async fn az_runs_with_the_mapped_subscription_only() {
    let standin = StandIn::new();
    let config = tempfile::tempdir().unwrap();
    let contexts = ContextMap::new()
        .with_azure_subscription(SUB, AzureContext::new().with_config_dir(config.path()));
    let records = run(
        &standin,
        contexts,
        &[
            alert(
                "A-1",
                "azure",
                SUB,
                "acct1",
                "az storage account update --name acct1 --resource-group rg --https-only true",
            ),
            alert(
                "A-2",
                "azure",
                OTHER_SUB,
                "acct2",
                "az storage account update --name acct2",
            ),
            alert(
                "A-3",
                "azure",
                SUB,
                "b",
                "aws s3api put-public-access-block --bucket b --public-access-block-configuration \
                 IgnorePublicAcls=true,RestrictPublicBuckets=true",
            ),
            alert(
                "A-4",
                "azure",
                SUB,
                "v",
                &format!("az vm stop --name v --subscription {OTHER_SUB}"),
            ),
        ],
    )
    .await;
    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "only A-1 ran: {calls:?}");
    assert_eq!(
        calls[0].argv,
        [
            "az",
            "storage",
            "account",
            "update",
            "--name",
            "acct1",
            "--resource-group",
            "rg",
            "--https-only",
            "true",
            "--subscription",
            SUB
        ]
    );
    assert_eq!(
        calls[0].var("AZURE_CONFIG_DIR"),
        Some(config.path().to_str().unwrap())
    );
    assert_eq!(calls[0].var("AWS_PROFILE"), None);

    let decisions: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.alert_id.as_deref().unwrap(),
                r.decision,
                r.reason_code.clone(),
            )
        })
        .collect();
    assert_eq!(decisions[0].1, AuditDecision::Executed);
    assert_eq!(records[0].steps[0].extra_args, ["--subscription", SUB]);
    assert_eq!(records[0].cloud.as_deref(), Some("azure"));
    for (id, decision, code) in &decisions[1..] {
        assert_eq!(*decision, AuditDecision::Rejected, "{id}");
        let expected = if *id == "A-2" {
            "unmapped_account"
        } else {
            "unsafe_command"
        };
        assert_eq!(code.as_deref(), Some(expected), "{id}: {records:?}");
    }
    // An aws command for an Azure finding, another subscription named: both
    // act outside the finding's context.
    for r in &records[2..] {
        let reason = r.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("unsafe_command: context_mismatch: "),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn gcloud_gets_the_project_and_a_private_policy_file() {
    let standin = StandIn::new();
    let contexts = ContextMap::new().with_gcp_project(PROJECT, GcpContext::new());
    let policy = r#"{"displayName":"deny public","rules":[{"denyRule":{"deniedPrincipals":["principalSet://goog/public:all"],"deniedPermissions":["storage.googleapis.com/objects.get"]}}]}"#;
    let script = format!(
        "cat > deny.json <<'EOF'\n{policy}\nEOF\n\
         gcloud iam policies create deny-public \
         --attachment-point=cloudresourcemanager.googleapis.com/projects/{PROJECT} \
         --kind=denypolicies --policy-file=deny.json"
    );
    let records = run(
        &standin,
        contexts,
        &[
            alert("G-1", "gcp", PROJECT, "deny-public", &script),
            alert(
                "G-2",
                "gcp",
                "unmapped-project",
                "vm1",
                "gcloud compute instances stop vm1",
            ),
            alert(
                "G-3",
                "gcp",
                PROJECT,
                "x",
                "echo x > stray.json\ngcloud compute instances list",
            ),
        ],
    )
    .await;
    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "only G-1 ran: {calls:?}");
    let call = &calls[0];
    let file_arg = call
        .argv
        .iter()
        .find_map(|a| a.strip_prefix("--policy-file="))
        .expect("policy file argument");
    assert!(
        file_arg.starts_with('/') && file_arg.ends_with("/deny.json"),
        "{file_arg}"
    );
    let (mode, contents) = &call.files[file_arg];
    assert_eq!(*mode, 0o600);
    assert_eq!(contents, &format!("{policy}\n"));
    assert!(
        !std::path::Path::new(file_arg).exists(),
        "the step file is removed after the command"
    );
    assert_eq!(call.argv[call.argv.len() - 2..], ["--project", PROJECT]);
    assert_eq!(call.var("CLOUDSDK_CORE_PROJECT"), Some(PROJECT));

    assert_eq!(records[0].decision, AuditDecision::Executed);
    assert_eq!(records[0].steps[0].files, ["deny.json"]);
    assert!(
        records[0].steps[0]
            .argv
            .iter()
            .any(|a| a == "--policy-file=deny.json"),
        "the audit shows the planned argv"
    );
    assert_eq!(records[1].reason_code.as_deref(), Some("unmapped_account"));
    assert_eq!(records[2].decision, AuditDecision::Rejected);
    assert_eq!(records[2].reason_code.as_deref(), Some("unsafe_command"));
    // Refused for the file no command reads, not for its (catalog) operation.
    let reason = records[2].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("unsafe_command: step_file: "), "{reason}");
}

/// The finding's fields reach the child's environment (`AWS_REGION`) and
/// arguments (`--project`): one that is not of its format is refused at
/// once and dead-lettered with its body — not nacked and retried as a spawn
/// failure, which a NUL in an environment value was before.
#[tokio::test]
async fn a_malformed_region_is_refused_never_retried() {
    let standin = StandIn::new();
    let contexts = ContextMap::new()
        .with_aws_profile("123456789012", "remediator")
        .with_gcp_project(PROJECT, GcpContext::new());
    let bodies = [
        serde_json::to_vec(&serde_json::json!({
            "alertId": "R-1",
            "accountId": "123456789012",
            "cloudType": "aws",
            "resourceRegionId": "us-east-1\u{0}",
            "resourceName": "acme-logs",
            "alertRemediationCli":
                "aws s3api put-bucket-versioning --bucket acme-logs --versioning-configuration Status=Enabled",
        }))
        .unwrap(),
        serde_json::to_vec(&serde_json::json!({
            "alertId": "R-2",
            "accountId": "123456789012",
            "cloudType": "aws",
            "resourceRegionId": "us-east-1 --endpoint-url=http://evil.example",
            "resourceName": "acme-logs",
            "alertRemediationCli":
                "aws s3api put-bucket-versioning --bucket acme-logs --versioning-configuration Status=Enabled",
        }))
        .unwrap(),
    ];
    let records = run(&standin, contexts, &bodies).await;
    assert_eq!(standin.calls(), vec![], "nothing ran");
    assert_eq!(records.len(), 2, "each delivered once: {records:?}");
    for r in &records {
        assert_eq!(r.decision, AuditDecision::Rejected, "{r:?}");
        assert_eq!(r.refusal.as_deref(), Some("invalid_context"), "{r:?}");
        assert_eq!(r.delivery_count, 1, "{r:?}");
        assert!(r.body.is_some(), "dead-lettered with its body: {r:?}");
    }
}
