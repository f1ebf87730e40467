//! `DynamoDedup` against a real moto server (started per test from the venv
//! that `scripts/test` creates): the conditional claim / complete / release
//! semantics, two workers and two concurrent Lambda handlers sharing one
//! table executing each of 200 alerts exactly once, a dead worker's claim
//! taken over after its lease, and an unreachable store nacking deliveries
//! (nothing acked, nothing run) until it is back — then each alert runs once.
//!
//! moto handles one request at a time here ([`MotoServer::start_serialized`]):
//! unlike DynamoDB, moto does not apply a conditional write atomically, and
//! two concurrent claims of one key can both succeed on a plain moto server
//! (seen once in CI: an alert run by both workers).
//!
//! Commands run through the recording stand-in for `aws`. Without the venv
//! these tests fail with instructions; they never skip. moto serves about
//! 100 requests a second, so the sizes here are what the acceptance asks
//! (200 alerts) and no more.

mod support;

use aws_lambda_events::event::sqs::SqsEvent;
use remediation::engine::dedup_dynamodb::DynamoDedup;
use remediation::engine::{
    AuditDecision, Claim, DedupStore, Engine, EngineConfig, MemoryAudit, SettleAction,
};
use remediation::executor::ContextMap;
use remediation::lambda::LambdaHandler;
use remediation::model::decode;
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use remediation::telemetry::{ApiCall, Backoff, Counter, Stats};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::StandIn;
use support::moto::{MotoServer, venv};
use support::proxy::TcpProxy;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

/// The tests that drive hundreds of requests through moto take turns: moto
/// serves about 100 requests a second and the machine has two cores.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

async fn table(moto: &MotoServer, name: &str) -> DynamoDedup {
    let s = store(&moto.endpoint(), name).await;
    s.create_table().await.expect("create table");
    // Idempotent.
    s.create_table().await.expect("create table again");
    s
}

fn alert(i: usize) -> String {
    json!({
        "alertId": format!("P-{i:04}"),
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with console access and no MFA",
        "resourceName": format!("user-{i:04}"),
        "alertRemediationCli": format!("aws iam delete-login-profile --user-name user-{i:04}"),
    })
    .to_string()
}

fn key_of(body: &str) -> String {
    decode(body.as_bytes()).unwrap().events[0]
        .dedup_key()
        .unwrap()
}

/// How many times each user's command ran.
fn runs_per_user(standin: &StandIn) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for call in standin.calls() {
        assert_eq!(
            call.argv[..4],
            ["aws", "iam", "delete-login-profile", "--user-name"]
        );
        *runs.entry(call.argv[4].clone()).or_default() += 1;
    }
    runs
}

fn assert_each_ran_once(standin: &StandIn, n: usize) {
    let runs = runs_per_user(standin);
    let twice: Vec<_> = runs.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "executed more than once: {twice:?}");
    assert_eq!(runs.len(), n, "every alert executed");
}

fn quick_retry() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_millis(800))
}

#[tokio::test]
async fn conditional_claims_complete_release_and_ttl() {
    let moto = MotoServer::start_serialized(&venv());
    let a = table(&moto, "dedup-semantics").await;
    let b = store(&moto.endpoint(), "dedup-semantics").await;
    assert_ne!(a.owner(), b.owner());
    let lease = Duration::from_secs(60);

    assert_eq!(a.claim("k1", lease).await.unwrap(), Claim::Claimed);
    assert_eq!(b.claim("k1", lease).await.unwrap(), Claim::InProgress);
    // Only the owner releases a claim.
    b.release("k1").await.unwrap();
    assert_eq!(b.claim("k1", lease).await.unwrap(), Claim::InProgress);
    a.release("k1").await.unwrap();
    assert_eq!(b.claim("k1", lease).await.unwrap(), Claim::Claimed);
    b.complete("k1", Duration::from_secs(3600)).await.unwrap();
    assert_eq!(a.claim("k1", lease).await.unwrap(), Claim::AlreadyDone);
    // A release does not undo a completion; nor does another's completion.
    b.release("k1").await.unwrap();
    a.complete("k1", Duration::from_secs(1)).await.unwrap();
    assert_eq!(a.claim("k1", lease).await.unwrap(), Claim::AlreadyDone);

    // An expired completion is claimable again (DynamoDB's TTL deletes late).
    a.claim("k2", lease).await.unwrap();
    a.complete("k2", Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.claim("k2", lease).await.unwrap(), Claim::Claimed);

    // The TTL attribute is epoch seconds, on the table's TTL setting.
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    let ttl = client
        .describe_time_to_live()
        .table_name("dedup-semantics")
        .send()
        .await
        .unwrap();
    let d = ttl.time_to_live_description().unwrap();
    assert_eq!(d.attribute_name(), Some("expires_at"));
    let item = client
        .get_item()
        .table_name("dedup-semantics")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("k1".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires > now && expires < now + 3700, "{expires} vs {now}");
    assert_eq!(item["state"].as_s().unwrap(), "done");
}

#[tokio::test]
async fn a_dead_workers_claim_is_taken_over_after_its_lease() {
    let moto = MotoServer::start_serialized(&venv());
    let shared = table(&moto, "dedup-takeover").await;
    let body = alert(1);
    // A worker claimed the alert for 2 s and died: it never completes.
    let dead = store(&moto.endpoint(), "dedup-takeover").await;
    assert_eq!(
        dead.claim(&key_of(&body), Duration::from_secs(2))
            .await
            .unwrap(),
        Claim::Claimed
    );

    let standin = StandIn::new();
    let source = MemorySource::builder()
        .with_wait(Duration::from_millis(100))
        .build();
    source.send(body).await.unwrap();
    source.close();
    let audit = Arc::new(MemoryAudit::new());
    let mut config = EngineConfig::default()
        .with_retry(quick_retry())
        .with_max_deliveries(100);
    config.dedup_lease = Duration::from_secs(30);
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
    )
    .config(config)
    .dedup(Arc::new(shared))
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("finishes")
    .expect("runs");
    assert_eq!(summary.executed, 1);
    assert_eq!(source.acked(), 1);
    assert_each_ran_once(&standin, 1);
    let records = audit.records();
    // While the dead worker's lease lasted the alert was deferred, not run.
    assert!(records.len() >= 2, "{records:?}");
    for r in &records[..records.len() - 1] {
        assert_eq!(r.reason_code.as_deref(), Some("duplicate"));
        assert_eq!(r.settle, SettleAction::Nack);
    }
    assert_eq!(records.last().unwrap().decision, AuditDecision::Executed);
}

#[tokio::test]
async fn two_workers_sharing_one_table_execute_each_alert_once() {
    let _turn = HEAVY.lock().await;
    let n: usize = 200;
    let moto = MotoServer::start_serialized(&venv());
    table(&moto, "dedup-workers").await;
    let standin = StandIn::new();
    let bodies: Vec<String> = (0..n).map(alert).collect();
    let mut workers = Vec::new();
    for w in 0..2 {
        // Each worker receives all 200 alerts (at-least-once delivery), in
        // its own order, and has its own store instance on the shared table.
        let source = MemorySource::builder()
            .with_wait(Duration::from_millis(100))
            .build();
        let order: Vec<&String> = if w == 0 {
            bodies.iter().collect()
        } else {
            bodies.iter().rev().collect()
        };
        for b in order {
            source.send(b.clone()).await.unwrap();
        }
        source.close();
        let engine = Engine::builder(
            Arc::new(source.clone()),
            Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
            Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
        )
        .config(
            EngineConfig::default()
                .with_concurrency(8)
                .with_retry(quick_retry())
                .with_max_deliveries(100),
        )
        .dedup(Arc::new(store(&moto.endpoint(), "dedup-workers").await))
        .build();
        workers.push((source, engine));
    }
    let runs: Vec<_> = workers
        .iter()
        .map(|(_, e)| {
            let e = e.clone();
            tokio::spawn(async move { e.run(CancellationToken::new()).await })
        })
        .collect();
    let mut executed = 0;
    for r in runs {
        let summary = tokio::time::timeout(Duration::from_secs(240), r)
            .await
            .expect("workers finish")
            .unwrap()
            .unwrap();
        assert_eq!(summary.dead_lettered, 0);
        executed += summary.executed;
    }
    assert_eq!(executed, n as u64);
    for (source, engine) in &workers {
        assert_eq!(source.acked(), n as u64, "every delivery acked");
        assert!(source.dead_letters().is_empty());
        assert_eq!(engine.stats().get(Counter::Acked), n as u64);
        assert_eq!(engine.stats().get(Counter::SettleErrors), 0);
    }
    assert_each_ran_once(&standin, n);
}

fn record(message_id: &str, body: &str, receive_count: u32) -> serde_json::Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{message_id}"),
        "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(), "SentTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:alerts",
        "awsRegion": "us-east-1"
    })
}

#[tokio::test]
async fn two_concurrent_lambda_invocations_execute_each_alert_once() {
    let _turn = HEAVY.lock().await;
    let n: usize = 200;
    let moto = MotoServer::start_serialized(&venv());
    table(&moto, "dedup-lambda").await;
    let standin = StandIn::new();
    let bodies: Vec<String> = (0..n).map(alert).collect();
    let mut instances = Vec::new();
    for f in 0..2 {
        let handler = LambdaHandler::builder(
            Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
            Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
        )
        .dedup(Arc::new(store(&moto.endpoint(), "dedup-lambda").await))
        .build();
        instances.push((f, handler));
    }
    // Two function instances, each invoked with batches of 10 covering all
    // 200 alerts (the same alert reached both), one batch at a time, in
    // opposite orders. Failed records are redelivered, as SQS does, until
    // none is left.
    let runs: Vec<_> = instances
        .into_iter()
        .map(|(f, handler)| {
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut pending: Vec<(String, String, u32)> = bodies
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (format!("f{f}-m{i}"), b.clone(), 1))
                    .collect();
                if f == 1 {
                    pending.reverse();
                }
                let mut executed = 0;
                let mut rounds = 0;
                while !pending.is_empty() {
                    rounds += 1;
                    assert!(rounds <= 30, "records still failing after 30 rounds: {}", pending.len());
                    let mut failed = Vec::new();
                    for chunk in pending.chunks(10) {
                        let event: SqsEvent = serde_json::from_value(json!({
                            "Records": chunk.iter().map(|(id, b, c)| record(id, b, *c)).collect::<Vec<_>>()
                        }))
                        .unwrap();
                        let deadline = SystemTime::now() + Duration::from_secs(60);
                        let report = handler.handle_sqs(event, Some(deadline)).await;
                        executed += report
                            .records
                            .iter()
                            .filter(|r| r.decision.as_deref() == Some("executed"))
                            .count();
                        let again: Vec<&str> = report.failed_message_ids();
                        for (id, b, c) in chunk {
                            if again.contains(&id.as_str()) {
                                failed.push((id.clone(), b.clone(), c + 1));
                            }
                        }
                    }
                    pending = failed;
                    if !pending.is_empty() {
                        // The visibility timeout before SQS redelivers.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
                executed
            })
        })
        .collect();
    let mut executed = 0;
    for r in runs {
        executed += tokio::time::timeout(Duration::from_secs(240), r)
            .await
            .expect("invocations finish")
            .unwrap();
    }
    assert_eq!(executed, n);
    assert_each_ran_once(&standin, n);
}

#[tokio::test]
async fn an_unreachable_store_nacks_and_nothing_is_lost_or_run_twice() {
    let n: usize = 10;
    let moto = MotoServer::start_serialized(&venv());
    table(&moto, "dedup-outage").await;
    // A closed port: a clear, temporary error, not a verdict.
    let closed = store(
        &format!("http://127.0.0.1:{}", support::moto::free_port()),
        "dedup-outage",
    )
    .await;
    let err = closed
        .claim("k", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("dynamodb"), "{err}");

    let proxy = TcpProxy::start(([127, 0, 0, 1], moto.port()).into()).await;
    let dedup = Arc::new(store(&proxy.endpoint(), "dedup-outage").await);
    proxy.down();
    let standin = StandIn::new();
    let source = MemorySource::builder()
        .with_wait(Duration::from_millis(100))
        .build();
    let bodies: Vec<String> = (0..n).map(alert).collect();
    for b in &bodies {
        source.send(b.clone()).await.unwrap();
    }
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"))),
    )
    .config(
        EngineConfig::default()
            .with_retry(quick_retry())
            .with_max_deliveries(1000),
    )
    .dedup(dedup)
    .audit(audit.clone())
    .build();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let engine = engine.clone();
        let cancel = cancel.clone();
        async move { engine.run(cancel).await }
    });

    // While the store is down every delivery fails and is nacked: nothing
    // runs, nothing is acked, nothing is parked.
    let t0 = std::time::Instant::now();
    while engine.stats().get(Counter::Failed) < 2 * n as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "deliveries not failing: {:?}",
            engine.stats().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(standin.calls().is_empty(), "ran without the store's answer");
    assert_eq!(source.acked(), 0);
    assert!(source.dead_letters().is_empty());
    let records = audit.records();
    assert!(!records.is_empty());
    for r in &records {
        assert_eq!(r.reason_code.as_deref(), Some("dedup_unavailable"), "{r:?}");
        assert_eq!(r.settle, SettleAction::Nack);
    }

    // Back: each alert runs once and is acked.
    proxy.up().await;
    let t0 = std::time::Instant::now();
    while source.acked() < n as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "not recovering: {:?}",
            engine.stats().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Delivered again (at least once), the same alerts are known done.
    for b in &bodies {
        source.send(b.clone()).await.unwrap();
    }
    source.close();
    let summary = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("finishes")
        .unwrap()
        .unwrap();
    cancel.cancel();
    assert_eq!(summary.executed, n as u64);
    assert_eq!(source.acked(), 2 * n as u64);
    assert!(source.dead_letters().is_empty());
    assert_each_ran_once(&standin, n);
    let duplicates = audit
        .records()
        .iter()
        .filter(|r| r.reason_code.as_deref() == Some("duplicate"))
        .count();
    assert_eq!(duplicates, n);
}

#[tokio::test]
async fn two_worker_processes_with_dedup_table_run_each_alert_once() {
    let _turn = HEAVY.lock().await;
    let n: usize = 20;
    let bin = support::examples::example_binary("remediate").await;
    let moto = MotoServer::start_serialized(&venv());
    table(&moto, "dedup-worker-flag").await;
    let standin = StandIn::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let lines: Vec<String> = (0..n).map(alert).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let worker = || {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["--source", &format!("file:{}", file.display())])
            .args(["--dedup-table", "dedup-worker-flag", "--execute", "--quiet"])
            .args(["--account-profile", &format!("{ACCOUNT}=remediator")])
            .args(["--summary", "json", "--concurrency", "2"])
            .env("PATH", standin.path_env())
            .env(support::LOG_VAR, standin.log_path())
            .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
            .env("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint())
            .env("REMEDIATION_DEDUP_TIMEOUT_SECS", "30")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .kill_on_drop(true);
        cmd.output()
    };
    // Two workers side by side on the same alerts. A file cannot redeliver,
    // so a store error (a claim timing out on a loaded machine) would leave
    // an alert unexecuted in this run: the workers keep the load light.
    let (a, b) = tokio::join!(worker(), worker());
    let mut executed = 0;
    let mut seen = Vec::new();
    for out in [a.unwrap(), b.unwrap()] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(summary["received"], n);
        executed += summary["executed"].as_u64().unwrap();
        seen.push((summary, String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    assert_eq!(executed, n as u64, "{seen:#?}");
    // A third run later: everything is already done.
    let out = worker().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["executed"], 0);
    assert_eq!(summary["skipped"], n);
    assert_each_ran_once(&standin, n);
}

#[tokio::test]
async fn calls_count_in_the_attached_stats() {
    let moto = MotoServer::start_serialized(&venv());
    let dedup = table(&moto, "dedup-attached-stats").await;
    let stats = Arc::new(Stats::new());
    dedup.attach_stats(&stats);
    assert_eq!(
        dedup.claim("k", Duration::from_secs(60)).await.unwrap(),
        Claim::Claimed
    );
    dedup.complete("k", Duration::from_secs(60)).await.unwrap();
    let calls = stats.snapshot().api_calls;
    // The claim and the completion: one conditional UpdateItem each.
    assert_eq!(calls[ApiCall::DynamoDbUpdateItem.as_str()], 2, "{calls:?}");
    assert_eq!(
        calls.get(ApiCall::DynamoDbPutItem.as_str()),
        None,
        "{calls:?}"
    );
}

/// Lets the next `allow` requests through and fails every later one before
/// it is sent: a worker that dies (or loses the network) right after a call
/// lands.
#[derive(Debug)]
struct CutOff(Arc<std::sync::atomic::AtomicI64>);

impl aws_sdk_dynamodb::config::Intercept for CutOff {
    fn name(&self) -> &'static str {
        "CutOff"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) > 0 {
            Ok(())
        } else {
            Err("cut off after its last allowed request".into())
        }
    }
}

fn sdk_client(endpoint: &str, cut_off: Option<CutOff>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ));
    if let Some(c) = cut_off {
        config = config.interceptor(c);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

fn sorted(mut steps: Vec<String>) -> Vec<String> {
    steps.sort();
    steps
}

#[tokio::test]
async fn a_takeover_keeps_the_recorded_steps_whatever_happens_after_it() {
    let moto = MotoServer::start_serialized(&venv());
    let name = "dedup-steps-takeover";
    table(&moto, name).await;
    let recorded = vec![
        "0:00000000000000aa".to_owned(),
        "1:00000000000000bb".to_owned(),
    ];

    // A worker claims the finding for 1 s, records two steps done and dies.
    let dead = store(&moto.endpoint(), name).await;
    let first = dead
        .claim_detailed("k", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((first.claim, first.steps_done.len()), (Claim::Claimed, 0));
    for step in &recorded {
        dead.record_step("k", step).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;

    // Another worker takes the lapsed claim over, and its store can make
    // exactly one request: after that it is dead too.
    let allow = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let taker = DynamoDedup::builder()
        .with_table(name)
        .with_client(sdk_client(
            &moto.endpoint(),
            Some(CutOff(Arc::clone(&allow))),
        ))
        .build()
        .await
        .expect("dedup store");
    let taken = taker.claim_detailed("k", Duration::from_secs(1)).await;

    // The item is the taker's claim, and it still has the steps.
    let client = sdk_client(&moto.endpoint(), None);
    let item = client
        .get_item()
        .table_name(name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["state"].as_s().unwrap(), "claimed");
    assert_eq!(item["owner"].as_s().unwrap(), taker.owner());
    assert_eq!(
        item.get("steps_done")
            .map(|s| sorted(s.as_ss().unwrap().clone())),
        Some(recorded.clone()),
        "the takeover dropped the recorded steps: {item:?}"
    );
    // And the taker was told them.
    let taken = taken.expect("the takeover is one request");
    assert_eq!(taken.claim, Claim::Claimed);
    assert_eq!(sorted(taken.steps_done), recorded);

    // Its claim lapses in turn: the next claim still gets the steps.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let third = store(&moto.endpoint(), name).await;
    let again = third
        .claim_detailed("k", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.claim, Claim::Claimed);
    assert_eq!(sorted(again.steps_done), recorded);
}
