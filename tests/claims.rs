//! Exactly once under faults (issue 32): short claims renewed while their
//! plan runs, per-step records, and deferrals for another worker's claim —
//! at the engine's default settings, against a real moto server (SQS and
//! DynamoDB) where a shared store is involved.
//!
//! - a worker killed in the middle of a plan frees its claim within a
//!   minute, and the next worker runs the plan (with a 15-minute claim it
//!   would wait 15 minutes);
//! - a plan whose second step failed does not run its first step again on
//!   the retry;
//! - a delivery that finds another worker's claim is deferred for that
//!   claim's remaining time, so it is run once the claim ends instead of
//!   using up the queue's receives and reaching the dead-letter queue.

mod support;

use async_trait::async_trait;
use remediation::engine::dedup_dynamodb::DynamoDedup;
use remediation::engine::{
    AuditDecision, Claim, DedupStore, Engine, EngineConfig, MemoryAudit, MemoryDedup, SettleAction,
};
use remediation::executor::{CommandExecutor, ContextMap, StepOutcome, StepStatus};
use remediation::model::Target;
use remediation::model::decode;
use remediation::plan::{CommandPolicy, Step};
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::StandIn;
use support::sqs_moto::Moto;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

fn alert(id: &str, script: &str) -> String {
    json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with console access and no MFA",
        "resourceName": "user-1",
        "alertRemediationCli": script,
    })
    .to_string()
}

const ONE_STEP: &str = "aws iam delete-login-profile --user-name user-1";
const TWO_STEPS: &str = "aws iam delete-login-profile --user-name user-1 && \
     aws iam update-access-key --user-name user-1 --access-key-id AKIAIOSFODNN7EXAMPLE \
     --status Inactive";

fn key_of(body: &str) -> String {
    decode(body.as_bytes()).unwrap().events[0]
        .dedup_key()
        .unwrap()
}

async fn store(endpoint: &str, table: &str) -> DynamoDedup {
    DynamoDedup::builder()
        .with_table(table)
        .with_endpoint(endpoint)
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .with_timeout(Duration::from_secs(3))
        .build()
        .await
        .expect("dedup store")
}

/// Records each step; a step whose argv holds `fail_word` fails the first
/// `fail_times` times; a step holding `hang_word` never ends.
#[derive(Debug, Default)]
struct Scripted {
    calls: Mutex<Vec<Vec<String>>>,
    fail_word: &'static str,
    fail_times: AtomicUsize,
    hang_word: &'static str,
}

impl Scripted {
    fn calls_with(&self, word: &str) -> usize {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|argv| argv.iter().any(|a| a == word))
            .count()
    }
}

#[async_trait]
impl CommandExecutor for Scripted {
    fn check(&self, step: &Step, _target: &Target) -> remediation::Result<()> {
        CommandPolicy::default().check(&step.command)
    }
    async fn execute(&self, step: &Step, _target: &Target) -> remediation::Result<StepOutcome> {
        let argv = step.command.to_argv();
        self.calls.lock().unwrap().push(argv.clone());
        if !self.hang_word.is_empty() && argv.iter().any(|a| a == self.hang_word) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let failing = !self.fail_word.is_empty()
            && argv.iter().any(|a| a == self.fail_word)
            && self
                .fail_times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let mut o = StepOutcome::new(if failing {
            StepStatus::Failed
        } else {
            StepStatus::Ok
        });
        o.exit_code = Some(if failing { 254 } else { 0 });
        Ok(o)
    }
}

#[tokio::test]
async fn a_plan_whose_second_step_failed_resumes_at_the_second_step() {
    let source = MemorySource::builder()
        .with_wait(Duration::from_millis(20))
        .build();
    source.send(alert("P-RESUME", TWO_STEPS)).await.unwrap();
    source.close();
    let exec = Arc::new(Scripted {
        fail_word: "update-access-key",
        fail_times: AtomicUsize::new(1),
        ..Scripted::default()
    });
    let audit = Arc::new(MemoryAudit::new());
    let config = EngineConfig::default().with_retry(remediation::telemetry::Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(100),
    ));
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::default()),
        exec.clone(),
    )
    .config(config)
    .dedup(Arc::new(MemoryDedup::default()))
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("finished")
    .expect("ran");
    let records = audit.records();
    assert_eq!(summary.executed, 1, "{records:#?}");
    assert_eq!(
        exec.calls_with("update-access-key"),
        2,
        "failed once, then ran"
    );
    assert_eq!(
        exec.calls_with("delete-login-profile"),
        1,
        "the first step succeeded on the first try and is not run again"
    );
    let last = records.last().unwrap();
    assert_eq!(last.decision, AuditDecision::Executed);
    assert_eq!(last.steps[0].status, StepStatus::AlreadyDone);
    assert_eq!(last.steps[1].status, StepStatus::Ok);
    assert_eq!(source.acked(), 1);
}

#[tokio::test]
async fn a_killed_workers_claim_frees_within_a_minute() {
    let moto = Moto::start().await;
    let table = "claims-killed";
    let a_store = store(&moto.endpoint(), table).await;
    a_store.create_table().await.expect("create table");
    let body = alert("P-KILLED", ONE_STEP);

    // Worker A claims the finding, starts its step, and is killed there.
    let a_source = MemorySource::builder()
        .with_wait(Duration::from_millis(20))
        .build();
    a_source.send(body.clone()).await.unwrap();
    let hung = Arc::new(Scripted {
        hang_word: "delete-login-profile",
        ..Scripted::default()
    });
    let a = Engine::builder(
        Arc::new(a_source.clone()),
        Arc::new(AlertCliPlanner::default()),
        hung.clone(),
    )
    .dedup(Arc::new(a_store))
    .build();
    let a_run = tokio::spawn(async move { a.run(CancellationToken::new()).await });
    let t0 = Instant::now();
    while hung.calls_with("delete-login-profile") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "worker A never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a_run.abort();
    let _ = a_run.await;
    let killed_at = Instant::now();

    // Worker B, defaults, gets the same finding (the queue redelivers it).
    let probe = store(&moto.endpoint(), table).await;
    assert_eq!(
        probe
            .claim(&key_of(&body), Duration::from_secs(1))
            .await
            .unwrap(),
        Claim::InProgress,
        "A's claim outlives A for a while"
    );
    let standin = StandIn::new();
    let b_source = MemorySource::builder()
        .with_wait(Duration::from_millis(100))
        .build();
    b_source.send(body.clone()).await.unwrap();
    b_source.close();
    let audit = Arc::new(MemoryAudit::new());
    let b = Engine::builder(
        Arc::new(b_source.clone()),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
    )
    .dedup(Arc::new(store(&moto.endpoint(), table).await))
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(Duration::from_secs(75), b.run(CancellationToken::new()))
        .await
        .expect("B ran the finding within a minute of A's death (claims last 60 s)")
        .expect("ran");
    let records = audit.records();
    assert_eq!(summary.executed, 1, "{records:#?}");
    assert!(killed_at.elapsed() < Duration::from_secs(75));
    assert_eq!(standin.calls().len(), 1);
    // Until then B deferred it for A's remaining claim, not over and over.
    let deferrals = &records[..records.len() - 1];
    assert!(
        !deferrals.is_empty() && deferrals.len() <= 3,
        "{records:#?}"
    );
    for r in deferrals {
        assert_eq!(r.reason_code.as_deref(), Some("duplicate"));
        assert_eq!(r.settle, SettleAction::Nack);
    }
}

#[tokio::test]
async fn a_delivery_deferred_for_another_workers_claim_runs_instead_of_dead_lettering() {
    let moto = Moto::start().await;
    let table = "claims-deferred";
    let holder = store(&moto.endpoint(), table).await;
    holder.create_table().await.expect("create table");
    // A queue that dead-letters on the third receive.
    let (queue, dlq) = moto.create_redrive_pair("claims-deferred", 2).await;
    let body = alert("P-HELD", ONE_STEP);
    moto.send_all(&queue, std::slice::from_ref(&body), None)
        .await;
    // Another worker holds the finding's claim for 25 s, then is gone.
    assert_eq!(
        holder
            .claim(&key_of(&body), Duration::from_secs(25))
            .await
            .unwrap(),
        Claim::Claimed
    );

    let standin = StandIn::new();
    let source = moto
        .source()
        .with_queue_url(&queue)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .expect("sqs source");
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
    )
    .dedup(Arc::new(store(&moto.endpoint(), table).await))
    .audit(audit.clone())
    .build();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let engine = engine.clone();
        let cancel = cancel.clone();
        async move { engine.run(cancel).await }
    });
    let t0 = Instant::now();
    while standin.calls().is_empty() && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let its delete go out, then stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let records = audit.records();
    assert_eq!(standin.calls().len(), 1, "{records:#?}");
    assert_eq!(moto.depth(&dlq).await.0, 0, "dead-lettered: {records:#?}");
    assert_eq!(moto.depth(&queue).await, (0, 0, 0), "{records:#?}");
    assert_eq!(records.last().unwrap().decision, AuditDecision::Executed);
}
