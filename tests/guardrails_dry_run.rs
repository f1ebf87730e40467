//! A dry run holds nothing, guardrails included: it takes no rate token,
//! counts nothing in a blast-radius window and records no run against a
//! circuit, so the real workers sharing the store find their limits as they
//! were. It still reports what it can read without counting: an open
//! circuit, and a plan over the per-plan limits.

use async_trait::async_trait;
use remediation::engine::{AuditDecision, Engine, MemoryAudit};
use remediation::executor::{ContextMap, DryRunExecutor};
use remediation::guardrails::{
    BlastLimits, BlastRadius, Circuit, CircuitBreakers, GuardrailStore, Guardrails,
    MemoryGuardrails, Rate, RateLimits, Trip, Window,
};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// A memory store that counts the calls that change shared state.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryGuardrails,
    writes: AtomicUsize,
}

#[async_trait]
impl GuardrailStore for Counting {
    async fn take(
        &self,
        key: &str,
        every: Duration,
        burst: u32,
        now: SystemTime,
    ) -> remediation::Result<Option<Duration>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.take(key, every, burst, now).await
    }

    async fn admit(
        &self,
        key: &str,
        window: Duration,
        limit: u32,
        member: Option<&str>,
        now: SystemTime,
    ) -> remediation::Result<Window> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.admit(key, window, limit, member, now).await
    }

    async fn circuit(&self, key: &str) -> remediation::Result<Option<Circuit>> {
        self.inner.circuit(key).await
    }

    async fn open(&self, key: &str, circuit: &Circuit) -> remediation::Result<bool> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.open(key, circuit).await
    }

    async fn close(&self, key: &str) -> remediation::Result<bool> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.close(key).await
    }

    async fn circuits(&self) -> remediation::Result<Vec<(String, Circuit)>> {
        self.inner.circuits().await
    }
}

fn alert(i: usize, policy: &str) -> String {
    let user = format!("user-{i:04}");
    serde_json::json!({
        "alertId": format!("P-{i}"),
        "alertStatus": "open",
        "accountId": "111111111111",
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "policyId": policy,
        "resourceName": user,
        "alertRemediationCli": format!(
            "aws iam attach-user-policy --policy-arn arn:aws:iam::aws:policy/AWSDenyAll \
             --user-name {user}"
        ),
    })
    .to_string()
}

/// Every guardrail that counts, tight enough that a real run of 30 alerts
/// would trip each of them.
fn guardrails(store: Arc<dyn GuardrailStore>) -> Guardrails {
    Guardrails::new()
        .with_rate_limits(RateLimits::new(Arc::clone(&store)).with_default(Rate::new(1.0, 1)))
        .with_circuits(CircuitBreakers::new(Arc::clone(&store)).with_rule(
            "p-dry",
            Trip {
                max_runs: Some(3),
                window: Duration::from_secs(600),
                ..Trip::default()
            },
        ))
        .with_blast_radius(
            BlastRadius::new(store)
                .with_rule("p-dry", BlastLimits::new(3, Duration::from_secs(600))),
        )
}

/// A dry run over `bodies` with the guardrails on `store`: its audit.
async fn dry_run(
    bodies: &[String],
    store: Arc<dyn GuardrailStore>,
) -> Vec<remediation::engine::AuditRecord> {
    let source = Arc::new(MemorySource::new());
    for b in bodies {
        source.send(b.clone()).await.unwrap();
    }
    let audit = Arc::new(MemoryAudit::new());
    let contexts = ContextMap::parse_aws_profiles("111111111111=prod").unwrap();
    let mut builder = Engine::builder(
        source.clone(),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(DryRunExecutor::new(CommandPolicy::default(), contexts)),
    )
    .audit(audit.clone());
    for stage in guardrails(store).stages() {
        builder = builder.stage(stage);
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        builder.build().run(CancellationToken::new()),
    )
    .await
    .expect("the dry run ended on its own")
    .expect("the dry run ran");
    assert_eq!(source.acked(), 0, "a dry run settles nothing");
    audit.records()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_takes_no_token_and_counts_nothing() {
    let store = Arc::new(Counting::default());
    let bodies: Vec<String> = (0..30).map(|i| alert(i, "p-dry")).collect();
    let records = dry_run(&bodies, store.clone()).await;
    assert_eq!(records.len(), 30);
    let planned = records
        .iter()
        .filter(|r| r.decision == AuditDecision::Planned)
        .count();
    assert_eq!(
        planned, 30,
        "the guardrails held part of a dry run: {records:#?}"
    );
    assert_eq!(
        store.writes.load(Ordering::SeqCst),
        0,
        "the dry run changed the shared guardrail state"
    );
    assert!(store.inner.circuits().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_an_open_circuit_and_the_per_plan_limits() {
    let store = Arc::new(Counting::default());
    store
        .inner
        .open(
            "rule:p-dry",
            &Circuit::new(SystemTime::now(), "opened by hand", None),
        )
        .await
        .unwrap();
    let mut bodies: Vec<String> = (0..3).map(|i| alert(i, "p-dry")).collect();
    // Another rule, whose plan has more steps than the plan limit.
    let wide = serde_json::json!({
        "alertId": "P-wide",
        "alertStatus": "open",
        "accountId": "111111111111",
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "policyId": "p-wide",
        "resourceName": "a",
        "alertRemediationCli": "aws iam attach-user-policy --policy-arn \
            arn:aws:iam::aws:policy/AWSDenyAll --user-name a and aws iam attach-user-policy \
            --policy-arn arn:aws:iam::aws:policy/AWSDenyAll --user-name a",
    });
    bodies.push(wide.to_string());
    let source = Arc::new(MemorySource::new());
    for b in &bodies {
        source.send(b.clone()).await.unwrap();
    }
    let audit = Arc::new(MemoryAudit::new());
    let contexts = ContextMap::parse_aws_profiles("111111111111=prod").unwrap();
    let shared: Arc<dyn GuardrailStore> = store.clone();
    let stages = guardrails(Arc::clone(&shared))
        .with_blast_radius(
            BlastRadius::new(shared)
                .with_rule("p-dry", BlastLimits::new(3, Duration::from_secs(600)))
                .with_plan_limits(Some(1), None),
        )
        .stages();
    let mut builder = Engine::builder(
        source.clone(),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(DryRunExecutor::new(CommandPolicy::default(), contexts)),
    )
    .audit(audit.clone());
    for stage in stages {
        builder = builder.stage(stage);
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        builder.build().run(CancellationToken::new()),
    )
    .await
    .expect("the dry run ended on its own")
    .expect("the dry run ran");
    let records = audit.records();
    let code = |id: &str| {
        records
            .iter()
            .find(|r| r.alert_id.as_deref() == Some(id))
            .and_then(|r| r.reason_code.clone())
    };
    for i in 0..3 {
        assert_eq!(code(&format!("P-{i}")).as_deref(), Some("circuit_open"));
    }
    assert_eq!(code("P-wide").as_deref(), Some("blast_radius"));
    assert_eq!(store.writes.load(Ordering::SeqCst), 0);
    // The circuit is as the operator left it: open, nothing held in it.
    assert_eq!(store.inner.circuits().await.unwrap().len(), 1);
}
