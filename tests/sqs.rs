//! `SqsSource` against a real moto server (started per test from the venv
//! that `scripts/test` creates): the shared source conformance suite, the
//! end-to-end IAM remediation with the real `aws` CLI, failures, poison,
//! visibility extension, shutdown, FIFO order and the API calls per alert.
//!
//! Without the venv these tests fail with instructions; they never skip.

mod conformance;
mod support;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;
use conformance::{QueueFactory, TestQueue};
use remediation::engine::{AuditDecision, Engine, EngineConfig, LeasePolicy, MemoryAudit};
use remediation::executor::{ContextMap, ProcessExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::{AlertCliPlanner, RemediationPlanner};
use remediation::source::sqs::REASON_ATTRIBUTE;
use remediation::source::sqs::SqsSource;
use remediation::source::{AlertSource, DeadLetterMode};
use remediation::telemetry::ApiCall;
use remediation::telemetry::{Backoff, Counter, Stats, Summary};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::moto::venv;
use support::recording::{RecordingExecutor, no_delay};
use support::run_until;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

use support::sqs_moto::Moto;

fn fast_retry() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(1))
}

/// A Prisma alert in the flat shape, carrying its own CLI remediation.
fn prisma_alert(id: &str, script: &str) -> String {
    serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with risky permissions",
        "resourceName": support::resource_of(script),
        "alertRemediationCli": script,
    })
    .to_string()
}

fn sqs_calls(summary: &Summary) -> u64 {
    summary
        .api_calls
        .iter()
        .filter(|(k, _)| k.starts_with("sqs."))
        .map(|(_, v)| v)
        .sum()
}

// ------------------------------------------------------------ test executors

// ----------------------------------------------------------------- conformance

const LEASE: Duration = Duration::from_secs(2);

struct SqsTestQueue {
    source: Arc<dyn AlertSource>,
    dlq: String,
    client: Client,
}

#[async_trait]
impl TestQueue for SqsTestQueue {
    fn source(&self) -> Arc<dyn AlertSource> {
        Arc::clone(&self.source)
    }
    async fn send(&self, body: &[u8]) {
        let url = self.source_url();
        self.client
            .send_message()
            .queue_url(url)
            .message_body(std::str::from_utf8(body).expect("SQS bodies are text"))
            .send()
            .await
            .expect("send");
    }
    async fn dead_letter_bodies(&self) -> Vec<Vec<u8>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .expect("receive from DLQ");
        out.messages()
            .iter()
            .map(|m| m.body().unwrap_or_default().as_bytes().to_vec())
            .collect()
    }
    fn lease(&self) -> Duration {
        LEASE
    }
}

impl SqsTestQueue {
    fn source_url(&self) -> String {
        // The source's Debug output is not an API; keep the URL from setup instead.
        QUEUE_URLS
            .lock()
            .unwrap()
            .get(self.source.name())
            .cloned()
            .expect("queue url")
    }
}

static QUEUE_URLS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

struct Factory<'a> {
    moto: &'a Moto,
    redrive: bool,
    next: AtomicU32,
}

#[async_trait]
impl QueueFactory for Factory<'_> {
    async fn make(&self) -> Box<dyn TestQueue> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "conformance-{}-{n}",
            if self.redrive { "redrive" } else { "dlq" }
        );
        let builder = self
            .moto
            .source()
            .with_wait(Duration::ZERO)
            .with_visibility_timeout(LEASE);
        let (url, dlq, builder) = if self.redrive {
            let (url, dlq) = self.moto.create_redrive_pair(&name, 2).await;
            (url, dlq, builder)
        } else {
            let dlq = self.moto.create_queue(&format!("{name}-dlq"), &[]).await;
            let url = self.moto.create_queue(&name, &[]).await;
            let b = builder.with_dead_letter_queue_url(&dlq);
            (url, dlq, b)
        };
        let source = builder.with_queue_url(&url).build().await.expect("source");
        assert_eq!(
            source.capabilities().dead_letter,
            if self.redrive {
                DeadLetterMode::Redrive
            } else {
                DeadLetterMode::Native
            }
        );
        QUEUE_URLS
            .lock()
            .unwrap()
            .insert(source.name().to_owned(), url);
        Box::new(SqsTestQueue {
            source: Arc::new(source),
            dlq,
            client: self.moto.client.clone(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_with_a_dead_letter_queue() {
    let moto = Moto::start().await;
    conformance::run_all(&Factory {
        moto: &moto,
        redrive: false,
        next: AtomicU32::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_dead_letter_by_redrive_policy() {
    let moto = Moto::start().await;
    let factory = Factory {
        moto: &moto,
        redrive: true,
        next: AtomicU32::new(0),
    };
    conformance::dead_letter_parks_the_body(&*factory.make().await).await;
    conformance::ack_is_final(&*factory.make().await).await;
}

// ------------------------------------------------------------------ end to end

/// What the end-to-end test needs from a planner variant: the planner, and
/// the body of the alert for `user` whose remediation is `script`.
struct PlannerCase {
    planner: Arc<dyn RemediationPlanner>,
    body: AlertBody,
    /// Whatever must live as long as the test (a mock server).
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// Makes the message body for (alert id, user, remediation script).
type AlertBody = Box<dyn Fn(&str, &str, &str) -> String + Send + Sync>;

/// The alert carries its own script (`alertRemediationCli`).
fn alert_cli_case() -> PlannerCase {
    PlannerCase {
        planner: Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        body: Box::new(|id, _user, script| prisma_alert(id, script)),
        _keep: None,
    }
}

/// The Prisma Cloud remediation API (a wiremock mock serving the documented
/// shape) plans each alert: alert `P-n` gets the IAM script of `user-nnn`.
#[cfg(feature = "prisma")]
async fn prisma_api_case() -> PlannerCase {
    use remediation::planner::prisma::PrismaPlanner;
    use remediation::redact::Secret;

    let server = prisma_mock().await;
    let planner = PrismaPlanner::builder()
        .with_endpoint(server.uri())
        .with_allow_http(true)
        .with_token(Secret::new(PRISMA_TOKEN))
        .build()
        .expect("prisma planner");
    PlannerCase {
        planner: Arc::new(planner),
        body: Box::new(|id, user, _script| prisma_alert_without_script(id, user)),
        _keep: Some(Box::new(server)),
    }
}

#[cfg(feature = "prisma")]
const PRISMA_TOKEN: &str = "tok-sqs-e2e-3f9a";

/// A Prisma alert for the Prisma planner about IAM user `user`: no
/// `alertRemediationCli`.
#[cfg(feature = "prisma")]
fn prisma_alert_without_script(id: &str, user: &str) -> String {
    serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "resourceName": user,
        "policyName": "AWS IAM user with risky permissions",
    })
    .to_string()
}

/// A mock of the Prisma Cloud remediation API (the documented v1 shape):
/// alert `P-n` gets the IAM script of `user-nnn`.
#[cfg(feature = "prisma")]
async fn prisma_mock() -> wiremock::MockServer {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    const TOKEN: &str = PRISMA_TOKEN;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/permission/alert/remediation"))
        .and(header("x-redlock-auth", TOKEN))
        .respond_with(|request: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON body");
            let mut scripts = serde_json::Map::new();
            for id in body["alerts"].as_array().expect("alerts").iter() {
                let id = id.as_str().expect("id");
                let n: usize = id.trim_start_matches("P-").parse().expect("P-n id");
                scripts.insert(id.to_owned(), iam_script(&user_name(n)).into());
            }
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "alertIdVsCliScript": scripts,
                "cliDescription": "Denies everything to the risky user.",
            }))
        })
        .mount(&server)
        .await;
    server
}

fn user_name(n: usize) -> String {
    format!("user-{n:03}")
}

/// The documented Prisma Cloud IAM remediation: create a deny policy, attach it.
fn iam_script(user: &str) -> String {
    let policy = format!("deny-{user}");
    format!(
        "aws iam create-policy --policy-name {policy} --policy-document \
         '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"*\"}}]}}' \
         and aws iam attach-user-policy --user-name {user} --policy-arn arn:aws:iam::{ACCOUNT}:policy/{policy}"
    )
}

/// Runs Python with boto3 from the venv against moto's IAM.
fn iam_python(endpoint: &str, code: &str, arg: &str) -> String {
    let out = std::process::Command::new(venv().join("bin").join("python"))
        .args(["-c", code, arg])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("MOTO_ENDPOINT", endpoint)
        .output()
        .expect("run venv python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const CREATE_USERS: &str = "import boto3, os, sys
iam = boto3.client('iam', endpoint_url=os.environ['MOTO_ENDPOINT'])
for u in sys.argv[1].split(','):
    iam.create_user(UserName=u)
";

const ATTACHED: &str = "import boto3, json, os, sys
iam = boto3.client('iam', endpoint_url=os.environ['MOTO_ENDPOINT'])
out = {}
for u in sys.argv[1].split(','):
    out[u] = [p['PolicyArn'] for p in iam.list_attached_user_policies(UserName=u)['AttachedPolicies']]
print(json.dumps(out))
";

/// A ProcessExecutor running the venv's real `aws` CLI against moto, with
/// account 123456789012 mapped to a profile holding the dummy credentials.
fn real_aws_executor(dir: &Path, endpoint: &str) -> ProcessExecutor {
    let venv = venv();
    let config = dir.join("config");
    let credentials = dir.join("credentials");
    std::fs::write(&config, "[profile remediator]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[remediator]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    ProcessExecutor::new(
        CommandPolicy::default(),
        ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=remediator")).unwrap(),
    )
    .with_timeout(Duration::from_secs(60))
    .with_env_var("PATH", path)
    .with_env_var("AWS_CONFIG_FILE", config.display().to_string())
    .with_env_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        credentials.display().to_string(),
    )
    .with_env_var("AWS_ENDPOINT_URL", endpoint)
}

/// `alerts` IAM alerts on a moto queue → `case.planner` → the real aws CLI →
/// every user has its deny policy, every message is deleted.
async fn iam_alerts_are_remediated_end_to_end(case: PlannerCase, alerts: usize) {
    let moto = Moto::start().await;
    let users: Vec<String> = (0..alerts).map(user_name).collect();
    iam_python(&moto.endpoint(), CREATE_USERS, &users.join(","));
    let url = moto.create_queue("prisma-alerts", &[]).await;
    let bodies: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (case.body)(&format!("P-{i}"), u, &iam_script(u)))
        .collect();
    moto.send_all(&url, &bodies, None).await;

    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_name("prisma-alerts")
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(Duration::from_secs(60))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .expect("source");
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        case.planner,
        Arc::new(real_aws_executor(dir.path(), &moto.endpoint())),
    )
    .config(
        EngineConfig::default()
            .with_concurrency(8)
            .with_retry(fast_retry()),
    )
    .stats(stats)
    .audit(audit.clone())
    .build();
    let expected = alerts as u64;
    // Generous: two CLI runs per alert on a shared two-core machine.
    let limit = Duration::from_secs(30 + 4 * expected);
    let (summary, reached) = run_until(&engine, limit, |s| {
        s.executed >= expected && s.acked >= expected
    })
    .await;
    let failures: Vec<_> = audit
        .records()
        .into_iter()
        .filter(|r| r.decision != AuditDecision::Executed)
        .map(|r| format!("{:?}: {:?}", r.alert_id, r.reason))
        .take(5)
        .collect();
    assert!(
        reached,
        "not every alert was remediated: {summary:?}; first failures: {failures:?}"
    );
    assert_eq!(summary.executed, expected, "{failures:?}");
    // At least once: a message that became visible again before its delete
    // landed (a loaded machine, moto's slow calls) is delivered once more and
    // acked as a duplicate; it is never executed twice.
    assert!(summary.acked >= expected, "{summary:?}");
    assert!(
        summary.acked - expected <= summary.skipped,
        "every extra ack is a duplicate skipped: {summary:?}"
    );
    assert_eq!(summary.settle_errors, 0);

    let attached: HashMap<String, Vec<String>> =
        serde_json::from_str(&iam_python(&moto.endpoint(), ATTACHED, &users.join(","))).unwrap();
    for u in &users {
        assert_eq!(
            attached[u],
            [format!("arn:aws:iam::{ACCOUNT}:policy/deny-{u}")],
            "user {u}"
        );
    }
    assert_eq!(moto.depth(&url).await, (0, 0, 0), "queue not empty");
    assert_eq!(
        summary.api_calls.get(ApiCall::SqsGetQueueUrl.as_str()),
        Some(&1)
    );
    eprintln!(
        "end to end: {alerts} alerts, {} SQS calls ({:.3} per alert): {:?}",
        sqs_calls(&summary),
        sqs_calls(&summary) as f64 / alerts as f64,
        summary.api_calls
    );
}

/// How many alerts the end-to-end test sends: `REMEDIATION_SQS_E2E_ALERTS`, or
/// 12. Each alert runs the real `aws` CLI twice (about 0.7 s of CPU per run),
/// so the acceptance size of 200 takes several minutes on two cores; run it
/// with `REMEDIATION_SQS_E2E_ALERTS=200 cargo test --features sqs --test sqs prisma_iam`.
fn e2e_alerts() -> usize {
    match std::env::var("REMEDIATION_SQS_E2E_ALERTS") {
        Ok(v) => v.parse().expect("REMEDIATION_SQS_E2E_ALERTS is a number"),
        Err(_) => 12,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prisma_iam_alerts_remediated_with_the_real_aws_cli() {
    iam_alerts_are_remediated_end_to_end(alert_cli_case(), e2e_alerts()).await;
}

#[cfg(feature = "prisma")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prisma_iam_alerts_planned_by_the_prisma_api_remediated_with_the_real_aws_cli() {
    iam_alerts_are_remediated_end_to_end(prisma_api_case().await, e2e_alerts()).await;
}

// -------------------------------------------------------------------- failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_reappears_and_succeeds_later() {
    let moto = Moto::start().await;
    let url = moto.create_queue("flaky", &[]).await;
    let bodies: Vec<String> = (0..5)
        .map(|i| {
            prisma_alert(
                &format!("F-{i}"),
                &format!("aws iam get-user --user-name f{i}"),
            )
        })
        .collect();
    moto.send_all(&url, &bodies, None).await;
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(Duration::from_secs(30))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    let mut executor = RecordingExecutor::new(no_delay);
    executor.fail_first = true;
    let executor = Arc::new(executor);
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_retry(fast_retry()))
    .stats(stats)
    .audit(audit.clone())
    .build();
    let (summary, reached) = run_until(&engine, Duration::from_secs(30), |s| s.executed >= 5).await;
    assert!(reached, "{summary:?}");
    assert_eq!(summary.failed, 5, "each alert failed once first");
    assert_eq!(summary.nacked, 5);
    assert_eq!(summary.executed, 5);
    let mut done = executor.done();
    done.sort();
    assert_eq!(done, ["f0", "f1", "f2", "f3", "f4"]);
    // The successful attempt was the second delivery of each message.
    for r in audit.records() {
        if r.decision == AuditDecision::Executed {
            assert_eq!(r.delivery_count, 2, "{r:?}");
        }
    }
    assert!(summary.api_calls[ApiCall::SqsChangeMessageVisibility.as_str()] >= 5);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

const POISON: &str = "{\"this is\": not JSON at all";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_parked_in_the_configured_dead_letter_queue() {
    let moto = Moto::start().await;
    let url = moto.create_queue("work", &[]).await;
    let dlq = moto.create_queue("work-dlq", &[]).await;
    moto.send_all(&url, &[POISON.to_owned()], None).await;
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_dead_letter_queue_url(&dlq)
        .with_wait(Duration::from_secs(1))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(RecordingExecutor::new(no_delay)),
    )
    .stats(stats)
    .audit(audit.clone())
    .build();
    let (summary, reached) =
        run_until(&engine, Duration::from_secs(20), |s| s.dead_lettered >= 1).await;
    assert!(reached, "{summary:?}");
    let records = audit.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].dead_letter.as_deref(), Some("parked"));
    assert_eq!(records[0].body.as_deref(), Some(POISON));
    let parked = moto.peek(&dlq).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, POISON);
    assert!(
        parked[0].1[REASON_ATTRIBUTE].contains("undecodable"),
        "{:?}",
        parked[0].1
    );
    assert_eq!(
        moto.depth(&url).await,
        (0, 0, 0),
        "poison left in the queue"
    );
    assert_eq!(summary.api_calls[ApiCall::SqsSendMessage.as_str()], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_reaches_the_dead_letter_queue_by_redrive_policy() {
    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("redriven", 3).await;
    moto.send_all(&url, &[POISON.to_owned()], None).await;
    // Releasing for the policy is what a source does when it does not
    // re-queue retries (with re-queueing it parks poison in the policy's
    // queue itself: tests/sqs_requeue.rs).
    let source = moto
        .source()
        .requeue_retries(false)
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    assert_eq!(source.capabilities().dead_letter, DeadLetterMode::Redrive);
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(RecordingExecutor::new(no_delay)),
    )
    .audit(audit.clone())
    .build();
    let t0 = Instant::now();
    loop {
        let (summary, _) = run_until(&engine, Duration::from_secs(2), |_| false).await;
        if !moto.peek(&dlq).await.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never redriven: {summary:?}"
        );
    }
    let records = audit.records();
    // maxReceiveCount 3: three deliveries, each left to the redrive policy.
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records {
        assert_eq!(r.dead_letter.as_deref(), Some("left_to_redrive"));
        assert_eq!(r.body.as_deref(), Some(POISON));
    }
    assert_eq!(moto.peek(&dlq).await[0].0, POISON);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_a_queue_without_any_dead_letter_queue_is_audited_not_looped() {
    let moto = Moto::start().await;
    let url = moto.create_queue("no-dlq", &[]).await;
    moto.send_all(&url, &[POISON.to_owned()], None).await;
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    // No DLQ configured and no redrive policy: releasing poison would loop forever.
    assert_eq!(source.capabilities().dead_letter, DeadLetterMode::AuditOnly);
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(RecordingExecutor::new(no_delay)),
    )
    .stats(stats)
    .audit(audit.clone())
    .build();
    let (summary, reached) =
        run_until(&engine, Duration::from_secs(20), |s| s.dead_lettered >= 1).await;
    assert!(reached, "{summary:?}");
    let records = audit.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].dead_letter.as_deref(), Some("audit_only"));
    assert_eq!(records[0].body.as_deref(), Some(POISON));
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
    assert_eq!(
        summary.api_calls[ApiCall::SqsGetQueueAttributes.as_str()],
        1
    );
}

/// Runs `engine` until it has executed one alert while `other`, a second
/// consumer of the same queue, keeps receiving; the summary, and how many
/// messages `other` got meanwhile.
async fn run_while_another_consumer_polls(engine: &Engine, other: &SqsSource) -> (Summary, usize) {
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let engine = engine.clone();
        let cancel = cancel.clone();
        async move { engine.run(cancel).await }
    });
    let t0 = Instant::now();
    while engine.stats().get(Counter::Received) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never received");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stolen = 0;
    while engine.stats().get(Counter::Executed) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never executed");
        stolen += other.receive(10).await.expect("receive").len();
    }
    cancel.cancel();
    (run.await.unwrap().unwrap(), stolen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_visibility_timeout_is_not_delivered_twice() {
    let moto = Moto::start().await;
    let url = moto.create_queue("slow", &[]).await;
    moto.send_all(
        &url,
        &[prisma_alert("S-1", "aws iam get-user --user-name slow")],
        None,
    )
    .await;
    let visibility = Duration::from_secs(3);
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(visibility)
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    // A second consumer of the same queue.
    let other = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(visibility)
        .build()
        .await
        .unwrap();
    let executor = Arc::new(RecordingExecutor::new(|_| 8_000));
    let mut lease = LeasePolicy::default();
    lease.extension = Duration::from_secs(3);
    lease.margin = Duration::from_millis(1500);
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_lease(lease))
    .stats(stats)
    .build();
    // While the step runs (8 s, almost three visibility timeouts), the other consumer sees nothing.
    let (summary, stolen) = run_while_another_consumer_polls(&engine, &other).await;
    assert_eq!(
        stolen, 0,
        "delivered to a second consumer while being worked on"
    );
    assert_eq!(summary.executed, 1);
    assert_eq!(summary.received, 1);
    assert!(summary.extended >= 2, "{summary:?}");
    assert_eq!(executor.done(), ["slow"]);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

/// A planner that answers after `delay` (a slow remediation API).
#[derive(Debug)]
struct SlowPlanner {
    inner: AlertCliPlanner,
    delay: Duration,
}

#[async_trait]
impl RemediationPlanner for SlowPlanner {
    fn name(&self) -> &str {
        "slow"
    }
    async fn plan(
        &self,
        events: &[remediation::model::Event],
    ) -> Vec<remediation::Result<remediation::plan::Decision>> {
        tokio::time::sleep(self.delay).await;
        self.inner.plan(events).await
    }
}

/// A planner slower than the visibility timeout (6 s against 3 s) keeps the
/// lease: a second worker on the queue never receives the message, and the
/// alert runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_slower_than_the_visibility_timeout_keeps_the_lease() {
    let moto = Moto::start().await;
    let url = moto.create_queue("slow-planner", &[]).await;
    moto.send_all(
        &url,
        &[prisma_alert(
            "S-2",
            "aws iam get-user --user-name planned-slowly",
        )],
        None,
    )
    .await;
    let visibility = Duration::from_secs(3);
    let consumer = || {
        moto.source()
            .with_queue_url(&url)
            .with_wait(Duration::from_secs(1))
            .with_visibility_timeout(visibility)
            .build()
    };
    let source = consumer().await.unwrap();
    let other = consumer().await.unwrap();
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let mut lease = LeasePolicy::default();
    lease.extension = Duration::from_secs(3);
    lease.margin = Duration::from_millis(1500);
    let planner = SlowPlanner {
        inner: AlertCliPlanner::new(CommandPolicy::default()),
        delay: Duration::from_secs(6),
    };
    let engine = Engine::builder(Arc::new(source), Arc::new(planner), executor.clone())
        .config(EngineConfig::default().with_lease(lease))
        .build();
    let (summary, stolen) = run_while_another_consumer_polls(&engine, &other).await;
    assert_eq!(
        stolen, 0,
        "delivered to a second consumer while being planned"
    );
    assert_eq!(summary.executed, 1);
    assert!(summary.extended >= 2, "{summary:?}");
    assert_eq!(executor.done(), ["planned-slowly"]);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_worker_releases_its_in_flight_messages() {
    let moto = Moto::start().await;
    let url = moto.create_queue("shutdown", &[]).await;
    let bodies: Vec<String> = (0..6)
        .map(|i| {
            prisma_alert(
                &format!("C-{i}"),
                &format!("aws iam get-user --user-name a{i} and aws iam get-user --user-name b{i}"),
            )
        })
        .collect();
    moto.send_all(&url, &bodies, None).await;
    let visibility = Duration::from_secs(60);
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(visibility)
        .build()
        .await
        .unwrap();
    let executor = Arc::new(RecordingExecutor::new(|_| 1_500));
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_concurrency(6))
    .build();
    // Cancel while the first steps run: nobody gets to a second step.
    let (summary, reached) = run_until(&engine, Duration::from_secs(10), |s| {
        s.steps_run >= 1 && s.received >= 6
    })
    .await;
    assert!(reached, "{summary:?}");
    assert_eq!(summary.executed, 0, "{summary:?}");
    assert_eq!(
        summary.nacked, 6,
        "every in-flight delivery released: {summary:?}"
    );
    // Released, not waiting out a 60 s visibility timeout: visible again at once.
    let (visible, in_flight, _) = moto.depth(&url).await;
    assert_eq!((visible, in_flight), (6, 0));
}

// ------------------------------------------------------------------------ FIFO

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_are_worked_in_order() {
    let moto = Moto::start().await;
    let url = moto
        .create_queue(
            "ordered.fifo",
            &[(QueueAttributeName::FifoQueue, "true".to_owned())],
        )
        .await;
    // Three groups of five; sent interleaved so one receive holds several of a group.
    let per_group = 5;
    let names: Vec<(usize, usize)> = (0..per_group)
        .flat_map(|seq| (0..3).map(move |g| (g, seq)))
        .collect();
    let bodies: Vec<String> = names
        .iter()
        .map(|(g, seq)| {
            prisma_alert(
                &format!("G{g}-{seq}"),
                &format!("aws iam get-user --user-name g{g}-{seq}"),
            )
        })
        .collect();
    let groups: Vec<usize> = names.iter().map(|(g, _)| *g).collect();
    let group_of = move |n: usize| format!("group-{}", groups[n]);
    moto.send_all(&url, &bodies, Some(&group_of)).await;
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    assert!(source.is_fifo());
    // Earlier messages take longer: worked concurrently, they would finish out of order.
    let executor = Arc::new(RecordingExecutor::new(|name| {
        let seq: u64 = name.rsplit('-').next().unwrap().parse().unwrap();
        (5 - seq) * 60
    }));
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_concurrency(10))
    .build();
    let total = bodies.len() as u64;
    let (summary, reached) =
        run_until(&engine, Duration::from_secs(40), |s| s.executed >= total).await;
    assert!(reached, "{summary:?}");
    let done = executor.done();
    for g in 0..3 {
        let order: Vec<&String> = done
            .iter()
            .filter(|n| n.starts_with(&format!("g{g}-")))
            .collect();
        let expected: Vec<String> = (0..per_group).map(|s| format!("g{g}-{s}")).collect();
        assert_eq!(order, expected.iter().collect::<Vec<_>>(), "group {g}");
    }
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_order_survives_failed_steps() {
    let moto = Moto::start().await;
    let url = moto
        .create_queue(
            "retried.fifo",
            &[(QueueAttributeName::FifoQueue, "true".to_owned())],
        )
        .await;
    let bodies: Vec<String> = (0..4)
        .map(|seq| {
            prisma_alert(
                &format!("R-{seq}"),
                &format!("aws iam get-user --user-name r-{seq}"),
            )
        })
        .collect();
    let one_group = |_: usize| "only-group".to_owned();
    moto.send_all(&url, &bodies, Some(&one_group)).await;
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    // Every message fails once: each is nacked while its successors are held
    // back, and must still be worked before them.
    let mut executor = RecordingExecutor::new(no_delay);
    executor.fail_first = true;
    let executor = Arc::new(executor);
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(
        EngineConfig::default()
            .with_concurrency(10)
            .with_retry(fast_retry()),
    )
    .build();
    let (summary, reached) = run_until(&engine, Duration::from_secs(40), |s| s.executed >= 4).await;
    assert!(reached, "{summary:?}");
    assert_eq!(summary.nacked, 4, "{summary:?}");
    assert_eq!(executor.done(), ["r-0", "r-1", "r-2", "r-3"]);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

// -------------------------------------------------------------- calls per alert

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_needs_at_most_a_quarter_sqs_call_per_alert() {
    let moto = Moto::start().await;
    let url = moto.create_queue("steady", &[]).await;
    let alerts = 1000;
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_concurrency(40))
    .stats(Arc::clone(&stats))
    .build();
    // moto slows down sharply with queue depth (1000 queued messages make each
    // call take most of a second), so the producer keeps about 60 queued and
    // tops the queue up as the worker drains it: a steady stream of 1000 alerts.
    let producer = tokio::spawn({
        let client = moto.client.clone();
        let url = url.clone();
        let stats = Arc::clone(&stats);
        async move {
            let sender = Moto::sender(client);
            for chunk in 0..alerts / 10 {
                while (chunk * 10) as u64 > stats.get(Counter::Executed) + 60 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let bodies: Vec<String> = (chunk * 10..chunk * 10 + 10)
                    .map(|i| {
                        prisma_alert(
                            &format!("B-{i}"),
                            &format!("aws iam get-user --user-name b{i}"),
                        )
                    })
                    .collect();
                sender.send_all(&url, &bodies, None).await;
            }
        }
    });
    let expected = alerts as u64;
    let t0 = Instant::now();
    let (summary, reached) = run_until(&engine, Duration::from_secs(90), |s| {
        s.executed >= expected && s.acked >= expected
    })
    .await;
    producer.await.expect("producer");
    assert!(reached, "{summary:?}");
    let calls = sqs_calls(&summary);
    let per_alert = calls as f64 / alerts as f64;
    eprintln!(
        "steady state: {alerts} alerts in {:.1?}, {calls} SQS calls = {per_alert:.3} per alert: {:?}",
        t0.elapsed(),
        summary.api_calls
    );
    assert_eq!(summary.settle_errors, 0);
    assert_eq!(executor.done().len(), alerts);
    assert!(
        per_alert <= 0.25,
        "{per_alert:.3} SQS calls per alert: {:?}",
        summary.api_calls
    );
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

// ------------------------------------------------------------ receipt handles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_receipt_handle_is_reported_and_counted() {
    let moto = Moto::start().await;
    let url = moto.create_queue("receipts", &[]).await;
    moto.send_all(&url, &["{\"a\":1}".to_owned()], None).await;
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .with_visibility_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let d = conformance::receive_one(&source, Duration::from_secs(5))
        .await
        .expect("delivery");
    // Someone else deletes it (here: purges the queue); our receipt is now invalid.
    moto.client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    let e = d
        .extend(Duration::from_secs(30))
        .await
        .expect_err("extend with a stale receipt");
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("ReceiptHandleIsInvalid"), "{e}");
    assert_eq!(source.invalid_receipts(), 1);
    // The batched delete reports the entry's failure to this ack, not a panic, not a success.
    let e = d.ack().await.expect_err("ack with a stale receipt");
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("ReceiptHandleIsInvalid"), "{e}");
    assert_eq!(source.invalid_receipts(), 2);
    assert_eq!(
        source.stats().snapshot().api_calls[ApiCall::SqsDeleteMessageBatch.as_str()],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_delete_batch_fails_only_its_entry() {
    let moto = Moto::start().await;
    // maxReceiveCount 1: a message received once and let go moves to the DLQ
    // on its next receive, which invalidates the first receipt handle.
    let (url, dlq) = moto.create_redrive_pair("partial", 1).await;
    let stats = Arc::new(Stats::new());
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::ZERO)
        .with_visibility_timeout(Duration::from_secs(2))
        .with_stats(Arc::clone(&stats))
        .build()
        .await
        .unwrap();
    moto.send_all(&url, &["a".to_owned()], None).await;
    let a = conformance::receive_one(&source, Duration::from_secs(5))
        .await
        .expect("a");
    moto.send_all(&url, &["b".to_owned(), "c".to_owned()], None)
        .await;
    let mut rest = Vec::new();
    let t0 = Instant::now();
    while rest.len() < 2 && t0.elapsed() < Duration::from_secs(5) {
        rest.extend(source.receive(10).await.expect("receive"));
    }
    assert_eq!(rest.len(), 2);
    for d in &rest {
        d.extend(Duration::from_secs(60)).await.expect("extend");
    }
    // Let a's visibility lapse, then have someone else receive it: redriven.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let t0 = Instant::now();
    while moto.peek(&dlq).await.is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(10), "a never redriven");
        let _ = moto
            .client
            .receive_message()
            .queue_url(&url)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let deletes_before = stats
        .snapshot()
        .api_calls
        .get(ApiCall::SqsDeleteMessageBatch.as_str())
        .copied();
    let (b, c) = (rest.remove(0), rest.remove(0));
    let (ra, rb, rc) = tokio::join!(a.ack(), b.ack(), c.ack());
    let e = ra.expect_err("a's receipt is no longer valid");
    assert!(e.to_string().contains("ReceiptHandleIsInvalid"), "{e}");
    rb.expect("b deleted");
    rc.expect("c deleted");
    assert_eq!(source.invalid_receipts(), 1);
    let deletes = stats.snapshot().api_calls[ApiCall::SqsDeleteMessageBatch.as_str()];
    assert_eq!(
        deletes - deletes_before.unwrap_or(0),
        1,
        "three acks within the flush window share one DeleteMessageBatch"
    );
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prisma_eventbridge_and_sns_wrapped_bodies_are_decoded() {
    let moto = Moto::start().await;
    let url = moto.create_queue("mixed", &[]).await;
    let fixture = |path: &str| {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .expect("fixture");
        // One line, as a producer would send it.
        serde_json::from_str::<serde_json::Value>(&text)
            .expect("fixture JSON")
            .to_string()
    };
    let sns = |message: &str| {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "0b5f6b26-8f1c-5a5a-9a4f-0f0e0d0c0b0a",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:prisma",
            "Message": message,
            "Timestamp": "2024-01-01T00:00:00.000Z",
        })
        .to_string()
    };
    let alert = prisma_alert("SNS-1", "aws iam get-user --user-name sns-user");
    let eventbridge = fixture("tests/fixtures/cloudtrail/miztiik-eventbridge-iam-CreateUser.json");
    let test_notification =
        fixture("tests/fixtures/prisma/pan-enhanced-remediation-test-T-0-body.json");
    let event_id =
        serde_json::from_str::<serde_json::Value>(&eventbridge).unwrap()["detail"]["eventID"]
            .as_str()
            .expect("eventID")
            .to_owned();
    let bodies = vec![
        alert,
        sns(&prisma_alert(
            "SNS-2",
            "aws iam get-user --user-name sns-wrapped",
        )),
        eventbridge.clone(),
        // Another event (the engine deduplicates by CloudTrail eventID).
        sns(&eventbridge.replace(&event_id, "sns-wrapped-event-id")),
        test_notification,
    ];
    moto.send_all(&url, &bodies, None).await;
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let executor = Arc::new(RecordingExecutor::new(no_delay));
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .audit(audit.clone())
    .build();
    let (summary, reached) = run_until(&engine, Duration::from_secs(20), |s| {
        s.acked >= bodies.len() as u64
    })
    .await;
    let records: Vec<_> = audit
        .records()
        .into_iter()
        .map(|r| (r.alert_id.or(r.event_id), r.decision, r.reason))
        .collect();
    assert!(reached, "{summary:?} {records:?}");
    assert_eq!(summary.rejected, 0, "{records:?}");
    assert_eq!(summary.executed, 2, "{records:?}");
    assert_eq!(summary.skipped, 3, "{records:?}");
    let mut done = executor.done();
    done.sort();
    assert_eq!(done, ["sns-user", "sns-wrapped"]);
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

/// The ported script (`examples/sqs_prisma_iam.rs`, built here with the
/// features this test was built with) drains a queue and exits: alerts
/// remediated through the Prisma API mock and the real aws CLI, poison
/// redriven to the DLQ before the exit, the queue empty.
#[cfg(feature = "prisma")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ported_script_drains_the_queue_and_exits() {
    let bin = support::examples::example_binary("sqs_prisma_iam").await;

    let moto = Moto::start().await;
    let users: Vec<String> = (0..3).map(user_name).collect();
    iam_python(&moto.endpoint(), CREATE_USERS, &users.join(","));
    let (url, dlq) = moto.create_redrive_pair("port-alerts", 2).await;
    let mut bodies: Vec<String> = (0..3)
        .map(|i| prisma_alert_without_script(&format!("P-{i}"), &user_name(i)))
        .collect();
    bodies.push(POISON.to_owned());
    moto.send_all(&url, &bodies, None).await;
    let prisma = prisma_mock().await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config"),
        "[profile remediator]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("credentials"),
        "[remediator]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = tokio::process::Command::new(&bin)
        .arg("--allow-http")
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("SQS_QUEUE_NAME", "port-alerts")
        .env("API_ENDPOINT", prisma.uri())
        .env("AUTH_KEY", PRISMA_TOKEN)
        .env("ACCOUNT_PROFILES", format!("{ACCOUNT}=remediator"))
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("REMEDIATION_CHILD_ENV", "AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials"),
        )
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the script did not exit: it must drain and stop")
        .expect("run the example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains(PRISMA_TOKEN),
        "token in the output: {stderr}"
    );
    let attached: HashMap<String, Vec<String>> =
        serde_json::from_str(&iam_python(&moto.endpoint(), ATTACHED, &users.join(","))).unwrap();
    for u in &users {
        assert_eq!(
            attached[u],
            [format!("arn:aws:iam::{ACCOUNT}:policy/deny-{u}")],
            "user {u}: {stderr}"
        );
    }
    assert_eq!(moto.depth(&url).await, (0, 0, 0), "{stderr}");
    let parked = moto.peek(&dlq).await;
    assert_eq!(parked.len(), 1, "{stderr}");
    assert_eq!(parked[0].0, POISON);
}

// ------------------------------------------------------------ telemetry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_count_in_the_attached_stats_with_those_made_before() {
    let moto = Moto::start().await;
    let url = moto.create_queue("attached-stats", &[]).await;
    // No with_stats: the source counts in its own until stats are attached.
    let source = moto
        .source()
        .with_queue_url(&url)
        .with_wait(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let engine_stats = Arc::new(Stats::new());
    source.attach_stats(&engine_stats);
    source.receive(10).await.expect("receive");
    let calls = engine_stats.snapshot().api_calls;
    // Read while building (no dead-letter queue: the redrive policy), then moved over.
    assert_eq!(
        calls[ApiCall::SqsGetQueueAttributes.as_str()],
        1,
        "{calls:?}"
    );
    assert_eq!(calls[ApiCall::SqsReceiveMessage.as_str()], 1, "{calls:?}");
    assert!(Arc::ptr_eq(source.stats(), &engine_stats));
}
