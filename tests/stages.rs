//! The stage seam: the policy filter (`--only-policy` / `--skip-policy`),
//! and stages of a user's own that defer, refuse or annotate, through the
//! worker over a memory source and through `Pipeline::handle` directly.

mod support;

use async_trait::async_trait;
use remediation::engine::{AuditDecision, Engine, MemoryAudit, SettleAction};
use remediation::model::Event;
use remediation::pipeline::{Pipeline, PolicyFilter, Stage, StageDecision};
use remediation::plan::{CommandPolicy, Plan};
use remediation::planner::AlertCliPlanner;
use remediation::source::{Delivery, MemorySource};
use std::sync::Arc;
use std::time::Duration;
use support::recording::{RecordingExecutor, no_delay};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

fn alert(id: &str, policy_name: &str, policy_id: &str) -> String {
    let user = format!("user-{id}");
    serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "policyName": policy_name,
        "policyId": policy_id,
        "resourceName": user,
        "alertRemediationCli": format!(
            "aws iam attach-user-policy --user-name {user} \
             --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
        ),
    })
    .to_string()
}

async fn run_closed(
    bodies: &[String],
    stage: Arc<dyn Stage>,
) -> (
    Vec<remediation::engine::AuditRecord>,
    Arc<RecordingExecutor>,
) {
    let source = Arc::new(MemorySource::new());
    for b in bodies {
        source.send(b.clone()).await.unwrap();
    }
    source.close();
    let audit = Arc::new(MemoryAudit::new());
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let engine = Engine::builder(
        source,
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit.clone())
    .stage(stage)
    .build();
    tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("ended")
    .expect("ran");
    let mut records = audit.records();
    records.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    (records, executor)
}

#[tokio::test]
async fn the_policy_filter_admits_only_and_skips_by_name_or_id() {
    let bodies = [
        alert("A", "AWS IAM user with risky permissions", "p-1"),
        alert("B", "S3 bucket is public", "p-2"),
        alert("C", "EC2 has IMDSv1", "p-3"),
    ];
    let filter = PolicyFilter::new()
        .only("AWS IAM user with risky permissions")
        .only("p-2")
        .skip("S3 bucket is public");
    let (records, executor) = run_closed(&bodies, Arc::new(filter)).await;
    let by = |id: &str| {
        records
            .iter()
            .find(|r| r.alert_id.as_deref() == Some(id))
            .unwrap()
    };
    assert_eq!(by("A").decision, AuditDecision::Executed);
    assert_eq!(by("B").decision, AuditDecision::Skipped);
    assert_eq!(by("B").reason_code.as_deref(), Some("excluded"));
    assert!(
        by("B")
            .reason
            .as_deref()
            .unwrap()
            .contains("skip-policy 'S3 bucket is public'")
    );
    assert_eq!(by("C").reason_code.as_deref(), Some("excluded"));
    assert!(
        by("C").reason.as_deref().unwrap().contains("only-policy"),
        "{:?}",
        by("C")
    );
    assert_eq!(by("C").settle, SettleAction::Ack);
    assert_eq!(executor.done().len(), 1, "only A ran");
}

/// Defers every event of one account; annotates the rest; refuses plans
/// with more than one step.
#[derive(Debug)]
struct Guard;

#[async_trait]
impl Stage for Guard {
    fn name(&self) -> &str {
        "guard"
    }
    async fn before_plan(&self, event: &Event, _delivery: &Delivery) -> StageDecision {
        if event.alert_id() == Some("slow") {
            return StageDecision::defer(Duration::from_secs(42), "rate_limited", "over the limit");
        }
        StageDecision::annotate("guard", "passed")
    }
    async fn before_execute(&self, _event: &Event, plan: &Plan) -> StageDecision {
        if plan.steps.len() > 1 {
            return StageDecision::reject("blast_radius", "more than one step");
        }
        StageDecision::Proceed
    }
}

#[tokio::test]
async fn a_stage_defers_refuses_and_annotates_through_the_pipeline() {
    let two_steps = serde_json::json!({
        "alertId": "big",
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceName": "u",
        "alertRemediationCli": "aws iam attach-user-policy --user-name u \
            --policy-arn arn:aws:iam::aws:policy/AWSDenyAll and \
            aws iam attach-user-policy --user-name u \
            --policy-arn arn:aws:iam::aws:policy/AWSDenyAll",
    })
    .to_string();
    let audit = Arc::new(MemoryAudit::new());
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let pipeline = Pipeline::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit.clone())
    .source_name("test")
    .stage(Arc::new(Guard))
    .build();
    let source = MemorySource::new();
    for body in [alert("slow", "x", "p"), alert("ok", "x", "p"), two_steps] {
        source.send(body).await.unwrap();
    }
    use remediation::source::AlertSource;
    let batch = source.receive(10).await.unwrap();
    let settled = pipeline.handle(batch, &CancellationToken::new()).await;
    let codes: Vec<(&str, SettleAction)> =
        settled.iter().map(|s| (s.reason_code, s.settle)).collect();
    assert_eq!(
        codes,
        [
            ("rate_limited", SettleAction::Nack),
            ("executed", SettleAction::Ack),
            ("blast_radius", SettleAction::DeadLetter),
        ]
    );
    assert_eq!(settled[0].decision, AuditDecision::Deferred);
    assert_eq!(executor.done().len(), 1, "only `ok` ran");
    let records = audit.records();
    let ok = records
        .iter()
        .find(|r| r.alert_id.as_deref() == Some("ok"))
        .unwrap();
    assert_eq!(ok.annotations["guard"], "passed");
    assert_eq!(pipeline.stats().snapshot().deferred, 1);
    // Deferred: nacked with the stage's delay, not delivered again before it.
    assert!(source.receive(10).await.unwrap().is_empty());
}
