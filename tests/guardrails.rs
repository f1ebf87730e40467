//! Guardrails through the worker over a memory source, with steps that take
//! real time (50–300 ms): rate limits per account-region read back from the
//! audit's step start times, a circuit breaker that holds a rule's plans
//! until it is closed, and shadow mode that runs nothing and then, enforced,
//! runs the same plans.

mod support;

use remediation::engine::{AuditDecision, AuditRecord, Engine, MemoryAudit};
use remediation::guardrails::{
    CircuitBreakers, GuardrailStore, Guardrails, MemoryGuardrails, Rate, RateLimits, ShadowMode,
    Trip,
};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::recording::RecordingExecutor;
use tokio_util::sync::CancellationToken;

/// 50–300 ms, fixed per user.
fn step_time(user: &str) -> u64 {
    let h = user
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    50 + h % 251
}

/// A Prisma alert for `user` in `account`/`region` under `policy`; its one
/// step names the user last (the recording executor's name for it).
fn alert(i: usize, account: &str, region: &str, policy: &str) -> String {
    let user = format!("user-{i:04}");
    serde_json::json!({
        "alertId": format!("P-{i}"),
        "alertStatus": "open",
        "accountId": account,
        "cloudType": "aws",
        "resourceRegionId": region,
        "policyName": format!("{policy} name"),
        "policyId": policy,
        "resourceName": user,
        "alertRemediationCli": format!(
            "aws iam attach-user-policy --policy-arn arn:aws:iam::aws:policy/AWSDenyAll \
             --user-name {user}"
        ),
    })
    .to_string()
}

struct Worker {
    stats: Arc<remediation::telemetry::Stats>,
    source: Arc<MemorySource>,
    audit: Arc<MemoryAudit>,
    executor: Arc<RecordingExecutor>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A worker in follow mode over `source` with `stages`.
fn start(source: Arc<MemorySource>, stages: Vec<Arc<dyn remediation::pipeline::Stage>>) -> Worker {
    let audit = Arc::new(MemoryAudit::new());
    let stats = Arc::new(remediation::telemetry::Stats::new());
    let executor = Arc::new(RecordingExecutor::new(step_time));
    let mut builder = Engine::builder(
        source.clone(),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit.clone())
    .stats(stats.clone());
    for stage in stages {
        builder = builder.stage(stage);
    }
    let engine = builder.build();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move {
        engine.run(token).await.expect("worker ran");
    });
    Worker {
        stats,
        source,
        audit,
        executor,
        cancel,
        task,
    }
}

impl Worker {
    async fn stop(self) -> (Vec<AuditRecord>, Vec<String>) {
        self.cancel.cancel();
        self.task.await.expect("worker task");
        (self.audit.records(), self.executor.done())
    }
}

/// Waits until `done` holds or `limit` passes.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

fn executed(records: &[AuditRecord]) -> Vec<&AuditRecord> {
    records
        .iter()
        .filter(|r| r.decision == AuditDecision::Executed)
        .collect()
}

/// No account-region above 2 plans started in any second (the audit's step
/// start times), and 200 plans over 4 buckets at 2/s spread over ~25 s.
fn assert_two_per_second(ran: &[&AuditRecord], targets: &[(&str, &str)]) {
    let region_of: BTreeMap<String, &str> = (0..200)
        .map(|i| (format!("P-{i}"), targets[i % 4].1))
        .collect();
    let mut per: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for r in ran {
        let started = r.steps[0].started_at.as_deref().expect("start time");
        let t = humantime::parse_rfc3339(started).expect("rfc3339");
        let second = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let alert = r.alert_id.as_deref().unwrap();
        let key = format!("{}:{}", r.account_id.as_deref().unwrap(), region_of[alert]);
        *per.entry((key, second)).or_default() += 1;
    }
    let worst = per.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(
        *worst.1 <= 2,
        "{} started {} plans in one second",
        worst.0.0,
        worst.1
    );
    let seconds: BTreeSet<u64> = per.keys().map(|(_, s)| *s).collect();
    assert!(
        seconds.len() >= 24,
        "starts spread over {} seconds",
        seconds.len()
    );
}

/// Two accounts in two regions each.
const TARGETS: [(&str, &str); 4] = [
    ("111111111111", "us-east-1"),
    ("111111111111", "eu-west-1"),
    ("222222222222", "us-east-1"),
    ("222222222222", "eu-west-1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_each_account_region_to_its_rate_and_lose_nothing() {
    let targets = TARGETS;
    let source = Arc::new(MemorySource::new());
    for i in 0..200 {
        let (account, region) = targets[i % 4];
        source
            .send(alert(i, account, region, "p-rate"))
            .await
            .unwrap();
    }
    let store: Arc<dyn GuardrailStore> = Arc::new(MemoryGuardrails::new());
    let stages = Guardrails::new()
        .with_rate_limits(RateLimits::new(store).with_default(Rate::new(2.0, 1)))
        .stages();
    let worker = start(source.clone(), stages);
    let all = until(Duration::from_secs(90), || {
        worker.executor.done().len() >= 200
    })
    .await;
    let source = worker.source.clone();
    let stats = worker.stats.clone();
    let (records, done) = worker.stop().await;
    assert!(all, "only {} of 200 ran", done.len());
    // Every alert ran once; none lost, none dead-lettered, all acked.
    let distinct: BTreeSet<&String> = done.iter().collect();
    assert_eq!((done.len(), distinct.len()), (200, 200));
    assert_eq!(source.acked(), 200);
    assert!(source.dead_letters().is_empty());
    assert_eq!(source.pending(), 0);
    let ran = executed(&records);
    assert_eq!(ran.len(), 200);
    let deferred = records
        .iter()
        .filter(|r| r.reason_code.as_deref() == Some("rate_limited"))
        .count();
    assert!(deferred > 0, "the limit never deferred anything");
    assert_eq!(stats.reason("rate_limited"), deferred as u64);
    assert_two_per_second(&ran, &targets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_holds_a_rule_after_its_limit_until_an_operator_closes_it() {
    let source = Arc::new(MemorySource::new());
    for i in 0..60 {
        source
            .send(alert(i, "111111111111", "us-east-1", "p-burst"))
            .await
            .unwrap();
    }
    let store: Arc<dyn GuardrailStore> = Arc::new(MemoryGuardrails::new());
    let trip = Trip {
        max_runs: Some(20),
        window: Duration::from_secs(60),
        ..Trip::default()
    };
    let circuits = CircuitBreakers::new(Arc::clone(&store))
        .with_rule("p-burst name", trip)
        .with_recheck(Duration::from_secs(1));
    let worker = start(
        source.clone(),
        Guardrails::new().with_circuits(circuits).stages(),
    );
    // 20 run; the other 40 are held (deferred `circuit_open`), none runs.
    assert!(
        until(Duration::from_secs(30), || worker.executor.done().len()
            >= 20)
        .await
    );
    let held = until(Duration::from_secs(30), || {
        let records = worker.audit.records();
        let open: BTreeSet<_> = records
            .iter()
            .filter(|r| r.reason_code.as_deref() == Some("circuit_open"))
            .filter_map(|r| r.alert_id.clone())
            .collect();
        open.len() >= 40
    })
    .await;
    assert!(held, "not every held alert was deferred");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        worker.executor.done().len(),
        20,
        "a plan ran past the open circuit"
    );
    let circuits = remediation::guardrails::list_circuits(&*store)
        .await
        .unwrap();
    assert_eq!(circuits.len(), 1);
    assert_eq!(circuits[0].0, "rule:p-burst");
    assert!(
        circuits[0].1.reason.contains("more than 20"),
        "{:?}",
        circuits[0].1
    );
    assert_eq!(source.acked(), 20);
    assert!(worker.stats.reason("circuit_open") >= 40);
    // The operator closes it: the 40 run, each once.
    assert!(
        remediation::guardrails::close_circuit(&*store, "p-burst")
            .await
            .unwrap()
    );
    let rest = until(Duration::from_secs(30), || {
        worker.executor.done().len() >= 60
    })
    .await;
    let (_records, done) = worker.stop().await;
    assert!(rest, "only {} of 60 ran after the close", done.len());
    let distinct: BTreeSet<&String> = done.iter().collect();
    assert_eq!((done.len(), distinct.len()), (60, 60));
    assert_eq!(source.acked(), 60);
    assert!(source.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_runs_nothing_and_enforced_runs_the_same_plans() {
    let bodies: Vec<String> = (0..12)
        .map(|i| alert(i, "111111111111", "us-east-1", "p-new"))
        .collect();
    // Shadow: planned, audited as `shadow`, acked; nothing runs.
    let source = Arc::new(MemorySource::new());
    for b in &bodies {
        source.send(b.clone()).await.unwrap();
    }
    let stages = Guardrails::new()
        .with_shadow(ShadowMode::new().rule("p-new"))
        .stages();
    let worker = start(source.clone(), stages);
    assert!(until(Duration::from_secs(20), || source.acked() >= 12).await);
    let (records, done) = worker.stop().await;
    assert!(done.is_empty(), "shadow mode ran {done:?}");
    let shadow: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.decision == AuditDecision::Shadow)
        .collect();
    assert_eq!(shadow.len(), 12);
    assert!(
        shadow
            .iter()
            .all(|r| r.reason_code.as_deref() == Some("shadow"))
    );
    assert!(shadow.iter().all(|r| r.rule.as_deref() == Some("p-new")));
    let would: BTreeSet<Vec<String>> = shadow.iter().map(|r| r.steps[0].argv.clone()).collect();
    // Enforced: the same plans run.
    let source = Arc::new(MemorySource::new());
    for b in &bodies {
        source.send(b.clone()).await.unwrap();
    }
    let worker = start(source.clone(), Guardrails::new().stages());
    assert!(until(Duration::from_secs(20), || source.acked() >= 12).await);
    let (records, done) = worker.stop().await;
    assert_eq!(done.len(), 12);
    let ran: BTreeSet<Vec<String>> = executed(&records)
        .iter()
        .map(|r| r.steps[0].argv.clone())
        .collect();
    assert_eq!(would, ran);
}

/// The same 200 alerts through two workers, each with its own DynamoDB
/// client on one guardrails table (moto, serialized as DynamoDB applies
/// conditional writes atomically): one limit for both.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_sharing_a_dynamodb_store_obey_one_rate() {
    use remediation::guardrails::DynamoDbGuardrails;
    use support::moto::{MotoServer, venv};
    let moto = MotoServer::start_serialized(&venv());
    let endpoint = moto.endpoint();
    let store = || {
        DynamoDbGuardrails::builder()
            .with_table("guardrails-shared")
            .with_endpoint(endpoint.clone())
            .with_region("us-east-1")
            .with_static_credentials("testing", "testing")
            .with_timeout(Duration::from_secs(5))
            .build()
    };
    let first = store().await.expect("guardrail store");
    first.create_table().await.expect("table");
    let second = store().await.expect("guardrail store");
    let source = Arc::new(MemorySource::new());
    for i in 0..200 {
        let (account, region) = TARGETS[i % 4];
        source
            .send(alert(i, account, region, "p-rate"))
            .await
            .unwrap();
    }
    let stages = |store: DynamoDbGuardrails| {
        let store: Arc<dyn GuardrailStore> = Arc::new(store);
        Guardrails::new()
            .with_rate_limits(RateLimits::new(store).with_default(Rate::new(2.0, 1)))
            .stages()
    };
    let a = start(source.clone(), stages(first));
    let b = start(source.clone(), stages(second));
    let all = until(Duration::from_secs(120), || {
        a.executor.done().len() + b.executor.done().len() >= 200
    })
    .await;
    let (records_a, done_a) = a.stop().await;
    let (records_b, done_b) = b.stop().await;
    assert!(all, "only {} of 200 ran", done_a.len() + done_b.len());
    assert!(
        !done_a.is_empty() && !done_b.is_empty(),
        "one worker did everything"
    );
    let done: Vec<&String> = done_a.iter().chain(&done_b).collect();
    let distinct: BTreeSet<&&String> = done.iter().collect();
    assert_eq!((done.len(), distinct.len()), (200, 200));
    assert_eq!(source.acked(), 200);
    assert!(source.dead_letters().is_empty());
    let records: Vec<AuditRecord> = records_a.into_iter().chain(records_b).collect();
    let ran = executed(&records);
    assert_eq!(ran.len(), 200);
    assert_two_per_second(&ran, &TARGETS);
}
