//! The pipeline seam against a real moto SQS queue: a dry run makes one pass
//! and leaves the queue as it was (nothing dead-lettered by its receives, a
//! consumer right after gets every message), and an audit sink that fails
//! loses nothing (no delivery acked or deleted without its record) and stops
//! the worker with an error.

mod support;

use remediation::engine::{AuditRecord, AuditSink, Engine, EngineConfig, MemoryAudit};
use remediation::executor::{ContextMap, DryRunExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::telemetry::{Backoff, Counter, Stats};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::recording::{RecordingExecutor, no_delay};
use support::sqs_moto::Moto;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

fn alert(n: usize) -> String {
    let user = format!("user-{n:03}");
    let script = format!(
        "aws iam attach-user-policy --user-name {user} \
         --policy-arn arn:aws:iam::aws:policy/AWSDenyAll"
    );
    serde_json::json!({
        "alertId": format!("P-{n}"),
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with risky permissions",
        "resourceName": user,
        "alertRemediationCli": script,
    })
    .to_string()
}

/// The queue as a source, with a short receive wait.
async fn queue(moto: &Moto, url: &str) -> remediation::source::sqs::SqsSource {
    moto.source()
        .with_queue_url(url)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

/// Receives until the queue is empty, deleting nothing (visibility 60 s);
/// returns the bodies seen.
async fn consume_all(moto: &Moto, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = moto
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let messages = out.messages();
        if messages.is_empty() {
            return bodies;
        }
        bodies.extend(messages.iter().filter_map(|m| m.body().map(str::to_owned)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_makes_one_pass_and_leaves_the_queue_as_it_was() {
    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("dry", 3).await;
    let bodies: Vec<String> = (0..50).map(alert).collect();
    moto.send_all(&url, &bodies, None).await;
    let source = queue(&moto, &url).await;
    let contexts = ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=prod")).unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(DryRunExecutor::new(CommandPolicy::default(), contexts)),
    )
    .audit(audit.clone())
    .build();
    // It ends on its own.
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("the dry run ended on its own")
    .expect("the dry run ran");
    let records = audit.records();
    let ids: BTreeSet<_> = records.iter().filter_map(|r| r.alert_id.clone()).collect();
    assert_eq!(records.len(), 50, "each alert reported once: {summary:?}");
    assert_eq!(ids.len(), 50);
    assert_eq!(summary.planned, 50);
    assert_eq!(summary.dead_lettered, 0);
    assert!(moto.peek(&dlq).await.is_empty(), "nothing dead-lettered");
    // Released at once: a consumer started right after gets every message.
    let mut seen = consume_all(&moto, &url).await;
    seen.sort();
    let mut sent = bodies.clone();
    sent.sort();
    assert_eq!(seen, sent);
    assert!(moto.peek(&dlq).await.is_empty(), "nothing dead-lettered");
}

/// An audit sink whose every write fails (a full disk).
#[derive(Debug)]
struct FullDisk;

impl AuditSink for FullDisk {
    fn record(&self, _record: &AuditRecord) -> remediation::Result<()> {
        Err(remediation::Error::io(
            "writing the audit record",
            std::io::Error::from_raw_os_error(28),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_audit_sink_loses_nothing_and_stops_the_worker() {
    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("audited", 3).await;
    let mut bodies: Vec<String> = (0..8).map(alert).collect();
    bodies.push("{\"garbage\":true}".to_owned());
    moto.send_all(&url, &bodies, None).await;
    let source = queue(&moto, &url).await;
    let stats = Arc::new(Stats::new());
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(Arc::new(FullDisk))
    .stats(stats.clone())
    .config(
        EngineConfig::default()
            .with_retry(Backoff::new(
                Duration::from_millis(200),
                Duration::from_millis(400),
            ))
            .with_audit_outage_limit(Duration::from_secs(3)),
    )
    .build();
    let ended = tokio::time::timeout(
        Duration::from_secs(60),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("the worker stopped on its own");
    let e = ended.expect_err("a worker whose audit sink stays broken fails");
    assert!(e.to_string().contains("audit sink"), "{e}");
    // The plans ran, but nothing was acked or deleted without its record.
    assert!(!executor.done().is_empty());
    assert_eq!(stats.get(Counter::Acked), 0);
    assert!(stats.get(Counter::AuditErrors) > 0);
    let (visible, in_flight, delayed) = moto.depth(&url).await;
    let parked = moto.depth(&dlq).await;
    assert_eq!(
        visible + in_flight + delayed + parked.0 + parked.1,
        bodies.len() as u64,
        "every message is still in the queue or its dead-letter queue"
    );
}
