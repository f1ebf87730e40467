//! Pipeline throughput: memory source → decode → gate → `alert-cli` planner →
//! dry-run executor → ack, with the same engine a worker runs.
//!
//! Throughput is reported in bytes of alert bodies; the corpus is generated
//! deterministically, so alerts/s = bytes/s ÷ mean body size.

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use remediation::engine::{Engine, EngineConfig};
use remediation::executor::{ContextMap, DryRunExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::MemorySource;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `n` flat-shape Prisma alerts with a two-command IAM remediation script each.
fn corpus(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let user = format!("user-{i:05}");
            let account = format!("1234567890{:02}", i % 7);
            let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
            serde_json::to_vec(&serde_json::json!({
                "alertId": format!("P-{}", 100_000 + i),
                "alertRuleName": "auto-remediation",
                "accountName": format!("account-{}", i % 7),
                "accountId": account,
                "cloudType": "aws",
                "resourceRegionId": (["us-east-1", "eu-west-1", "global"][i % 3]),
                "resourceId": user,
                "resourceName": user,
                "policyId": format!("0b8c{i:04}-5a19-4afb-b75e-59ee1aaa89ca"),
                "policyName": "AWS IAM user with risky permissions",
                "severity": (["high", "medium", "low"][i % 3]),
                "hasFinding": i % 2 == 0,
                "alertTs": 1_700_000_000_000u64 + i as u64,
                "policyLabels": ["IAM", "CIS"],
                "callbackUrl": format!("https://app.prismacloud.io/alerts/overview?filters#alert.id=P-{i}"),
                "resource": {
                    "data": {"userName": user, "arn": format!("arn:aws:iam::{account}:user/{user}"), "attachedPolicies": [{"policyName": "AdministratorAccess"}]},
                    "id": user, "regionId": "us-east-1", "accountId": account, "cloudType": "aws",
                    "resourceType": "IAM_USER", "rrn": format!("rrn::iamUser:global:{account}:{user}")
                },
                "policyDescription": "This policy identifies IAM users with risky permissions that can be used for privilege escalation.",
                "policyRecommendation": "Detach the risky policy from the user and grant least privilege.",
                "alertRemediationCli": format!(
                    "aws iam create-policy --policy-name deny-{user} --policy-document '{doc}' and aws iam attach-user-policy --user-name {user} --policy-arn arn:aws:iam::{account}:policy/deny-{user}"
                ),
            }))
            .expect("serializable")
        })
        .collect()
}

fn contexts() -> ContextMap {
    (0..7).fold(ContextMap::new(), |m, i| {
        m.with_aws_profile(format!("1234567890{i:02}"), format!("profile-{i}"))
    })
}

fn pipeline(c: &mut Criterion) {
    let alerts = corpus(2_000);
    let bytes: usize = alerts.iter().map(Vec::len).sum();
    let mut rt = if std::env::var_os("PIPELINE_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let rt = rt.enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.bench_with_input(
        BenchmarkId::from_parameter("dry_run"),
        &alerts,
        |b, alerts| {
            b.to_async(&rt).iter_batched(
                || {
                    // Filling the queue is setup, not pipeline.
                    let queue = MemorySource::builder()
                        .with_capacity(alerts.len())
                        .with_wait(Duration::from_millis(1))
                        .build();
                    for a in alerts {
                        queue.try_send(Bytes::copy_from_slice(a)).expect("send");
                    }
                    queue.close();
                    queue
                },
                |queue| async move {
                    let engine = Engine::builder(
                        Arc::new(queue.clone()),
                        Arc::new(AlertCliPlanner::default()),
                        Arc::new(DryRunExecutor::new(CommandPolicy::default(), contexts())),
                    )
                    .config(
                        EngineConfig::default()
                            .with_concurrency(64)
                            .with_settle_in_dry_run(true),
                    )
                    .build();
                    let summary = engine.run(CancellationToken::new()).await.expect("run");
                    assert_eq!(summary.planned as usize, alerts.len());
                    assert_eq!(queue.acked() as usize, alerts.len());
                },
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
