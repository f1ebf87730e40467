//! Blast-radius limits through the real pipeline (a memory source, the
//! alert-CLI planner, a recording executor), and the audit report over the
//! audit file such a run writes.

mod support;

use remediation::engine::{AuditDecision, JsonLinesAudit, MemoryAudit, SettleAction};
use remediation::guardrails::{
    AuditReport, BlastLimits, BlastRadius, MemoryGuardrails, ShadowMode,
};
use remediation::pipeline::{AuditSink, Pipeline, Settled, Stage};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::{AlertSource, MemorySource};
use std::sync::Arc;
use std::time::Duration;
use support::recording::{RecordingExecutor, no_delay};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

/// An alert of `policy` about the IAM user `user`; its plan attaches a
/// deny-all policy to that user (and names no other resource).
fn alert(id: &str, policy: &str, user: &str) -> String {
    serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "policyId": policy,
        "resourceName": user,
        "alertRemediationCli": format!(
            "aws iam attach-user-policy --user-name {user} \
             --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
        ),
    })
    .to_string()
}

fn pipeline(
    stages: Vec<Arc<dyn Stage>>,
    audit: Arc<dyn AuditSink>,
) -> (Pipeline, Arc<RecordingExecutor>) {
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let mut builder = Pipeline::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit)
    .source_name("test");
    for stage in stages {
        builder = builder.stage(stage);
    }
    (builder.build(), executor)
}

/// Sends `bodies` and hands every delivery to the pipeline, batch by batch.
async fn handle(pipeline: &Pipeline, bodies: &[String]) -> Vec<Settled> {
    let source = MemorySource::new();
    for body in bodies {
        source.send(body.clone()).await.unwrap();
    }
    let mut settled = Vec::new();
    loop {
        let batch = source.receive(10).await.unwrap();
        if batch.is_empty() {
            break;
        }
        settled.extend(pipeline.handle(batch, &CancellationToken::new()).await);
    }
    settled
}

fn count(settled: &[Settled], decision: AuditDecision, code: &str) -> usize {
    settled
        .iter()
        .filter(|s| s.decision == decision && s.reason_code == code)
        .count()
}

#[tokio::test]
async fn a_rule_changes_at_most_k_resources_per_window() {
    let store = Arc::new(MemoryGuardrails::new());
    let blast =
        BlastRadius::new(store).with_every_rule(BlastLimits::new(10, Duration::from_secs(600)));
    let audit = Arc::new(MemoryAudit::new());
    let (pipeline, executor) = pipeline(vec![Arc::new(blast)], audit.clone());

    let first: Vec<String> = (0..30)
        .map(|i| alert(&format!("A{i}"), "p-1", &format!("user-{i}")))
        .collect();
    let settled = handle(&pipeline, &first).await;
    assert_eq!(settled.len(), 30);
    assert_eq!(count(&settled, AuditDecision::Executed, "executed"), 10);
    assert_eq!(count(&settled, AuditDecision::Deferred, "blast_radius"), 20);
    assert!(
        settled
            .iter()
            .filter(|s| s.decision == AuditDecision::Deferred)
            .all(|s| s.settle == SettleAction::Nack),
        "deferred deliveries come back later: nacked, not acked or dead-lettered"
    );
    let ran = executor.done();
    assert_eq!(ran.len(), 10, "one step per admitted plan");

    // The users changed, each named by a new alert, count once more each
    // (already in the window); a new user is still beyond the limit.
    let records = audit.records();
    let admitted: Vec<String> = records
        .iter()
        .filter(|r| r.decision == AuditDecision::Executed)
        .map(|r| {
            let resource = r.annotations["resource"].as_str().unwrap();
            resource.rsplit('/').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(admitted.len(), 10);
    let mut again: Vec<String> = admitted
        .iter()
        .enumerate()
        .map(|(i, user)| alert(&format!("B{i}"), "p-1", user))
        .collect();
    again.push(alert("B-new", "p-1", "user-new"));
    let settled = handle(&pipeline, &again).await;
    assert_eq!(count(&settled, AuditDecision::Executed, "executed"), 10);
    assert_eq!(count(&settled, AuditDecision::Deferred, "blast_radius"), 1);
    let deferred = settled
        .iter()
        .find(|s| s.decision == AuditDecision::Deferred)
        .unwrap();
    assert!(deferred.detail.contains("user-new"), "{}", deferred.detail);
    assert!(deferred.detail.contains("limit 10"), "{}", deferred.detail);

    // Another rule has its own window.
    let other = handle(&pipeline, &[alert("C", "p-2", "user-29")]).await;
    assert_eq!(count(&other, AuditDecision::Executed, "executed"), 1);
    assert_eq!(executor.done().len(), 21);
}

#[tokio::test]
async fn a_plan_with_too_many_steps_is_refused_and_runs_nothing() {
    let two_steps = serde_json::json!({
        "alertId": "big",
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "policyId": "p-1",
        "resourceName": "u",
        "alertRemediationCli": "aws iam attach-user-policy --user-name u \
            --policy-arn arn:aws:iam::aws:policy/AWSDenyAll and \
            aws iam attach-user-policy --user-name u \
            --policy-arn arn:aws:iam::aws:policy/AWSDenyAll",
    })
    .to_string();
    let blast =
        BlastRadius::new(Arc::new(MemoryGuardrails::new())).with_plan_limits(Some(1), Some(1));
    let (pipeline, executor) = pipeline(vec![Arc::new(blast)], Arc::new(MemoryAudit::new()));
    let settled = handle(&pipeline, &[two_steps, alert("small", "p-1", "v")]).await;
    let big = settled
        .iter()
        .find(|s| s.reason_code == "blast_radius")
        .unwrap();
    assert_eq!(big.decision, AuditDecision::Skipped);
    assert_eq!(big.settle, SettleAction::Ack, "refused, not retried");
    assert!(big.detail.contains("max_steps 1"), "{}", big.detail);
    // One step and one resource (the managed policy does not count): runs.
    assert_eq!(count(&settled, AuditDecision::Executed, "executed"), 1);
    assert_eq!(executor.done().len(), 1);
}

#[tokio::test]
async fn the_report_reads_the_audit_file_a_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let blast = BlastRadius::new(Arc::new(MemoryGuardrails::new()))
        .with_rule("p-live", BlastLimits::new(2, Duration::from_secs(600)));
    let shadow = ShadowMode::new().rule("p-new");
    let audit = Arc::new(JsonLinesAudit::append(&path).unwrap());
    let (pipeline, executor) = pipeline(vec![Arc::new(shadow), Arc::new(blast)], audit.clone());
    let mut bodies: Vec<String> = (0..3)
        .map(|i| alert(&format!("L{i}"), "p-live", &format!("live-{i}")))
        .collect();
    bodies.extend((0..3).map(|i| alert(&format!("N{i}"), "p-new", "shadowed-user")));
    bodies.push(alert("N3", "p-new", "other-user"));
    // A command outside the allowlist: rejected before any stage is asked.
    bodies.push(
        serde_json::json!({
            "alertId": "bad",
            "alertStatus": "open",
            "accountId": ACCOUNT,
            "cloudType": "aws",
            "policyId": "p-live",
            "resourceName": "b",
            "alertRemediationCli": "aws s3 cp s3://b/x /tmp/x",
        })
        .to_string(),
    );
    handle(&pipeline, &bodies).await;
    audit.flush().unwrap();
    assert_eq!(
        executor.done().len(),
        2,
        "two live plans ran; shadow ran nothing"
    );

    let report = AuditReport::from_path(&path).unwrap();
    // The dead letter is recorded before it is parked, and again once parked.
    assert_eq!(
        (report.records, report.rewritten, report.unreadable),
        (8, 1, 0)
    );
    let live = &report.rules["p-live"];
    assert_eq!(live.decisions["executed"], 2);
    assert_eq!(live.decisions["deferred"], 1);
    assert_eq!(live.reasons["blast_radius"], 1);
    // A plan refused while planning: its record names no rule or planner
    // yet, so it is reported wherever its record puts it.
    let refusals: Vec<_> = report.rules.values().flat_map(|r| &r.refusals).collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].code, "unsafe_command");
    assert_eq!(
        refusals[0].refusal.as_deref(),
        Some("operation_not_allowed")
    );
    assert_eq!(refusals[0].count, 1, "the record written again counts once");
    assert_eq!(live.touched.accounts.iter().collect::<Vec<_>>(), [ACCOUNT]);
    assert_eq!(live.touched.resources.len(), 2, "{:?}", live.touched);
    assert!(live.shadow_plans.is_empty());

    let new = &report.rules["p-new"];
    assert_eq!(new.decisions["shadow"], 4);
    assert!(new.touched.resources.is_empty() && new.touched.accounts.is_empty());
    assert_eq!(new.would_touch.accounts.len(), 1);
    let plans: Vec<(u64, String)> = new
        .shadow_plans
        .iter()
        .map(|p| (p.count, p.argv.concat().join(" ")))
        .collect();
    assert_eq!(
        plans,
        [
            (
                3,
                "aws iam attach-user-policy --user-name shadowed-user \
                 --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
                    .to_owned()
            ),
            (
                1,
                "aws iam attach-user-policy --user-name other-user \
                 --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
                    .to_owned()
            ),
        ]
    );
    let text = report.render_text();
    assert!(
        text.contains("would have run in shadow mode (2 distinct plans)"),
        "{text}"
    );
    assert!(
        text.contains("3 × aws iam attach-user-policy --user-name shadowed-user"),
        "{text}"
    );
}
