//! Engine delivery semantics, end to end on the memory and file sources: gate
//! decisions, ack only after success, retry with backoff, dead-lettering,
//! lease extension, bounded concurrency and graceful shutdown.

mod conformance;

use async_trait::async_trait;
use remediation::engine::{
    AuditDecision, AuditRecord, Engine, EngineConfig, LeasePolicy, MemoryAudit, SettleAction,
};
use remediation::executor::{CommandExecutor, ContextMap, DryRunExecutor, StepOutcome, StepStatus};
use remediation::model::Target;
use remediation::plan::CommandPolicy;
use remediation::plan::Step;
use remediation::planner::AlertCliPlanner;
use remediation::source::{FileSource, MemorySource};
use remediation::telemetry::Backoff;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A test double: records each argv it is asked to run, fails commands whose
/// argv mentions a configured word a configured number of times, and sleeps
/// for commands mentioning `slow`.
///
/// The scripts below use operations of the default catalog (anything else is
/// refused before it reaches an executor) and carry these trigger words in a
/// resource name (`--user-name slow-op`, `--bucket always-fails`).
#[derive(Debug, Default)]
struct ScriptedExecutor {
    calls: Mutex<Vec<Vec<String>>>,
    fail_times: Mutex<HashMap<String, usize>>,
    slow: Duration,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

impl ScriptedExecutor {
    fn failing(word: &str, times: usize) -> Self {
        let s = ScriptedExecutor::default();
        s.fail_times.lock().unwrap().insert(word.to_owned(), times);
        s
    }
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl CommandExecutor for ScriptedExecutor {
    fn check(&self, step: &Step, _target: &Target) -> remediation::Result<()> {
        CommandPolicy::default().check(&step.command)
    }
    async fn execute(&self, step: &Step, _target: &Target) -> remediation::Result<StepOutcome> {
        let argv = step.command.to_argv();
        self.calls.lock().unwrap().push(argv.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if argv.iter().any(|a| a.contains("slow")) {
            tokio::time::sleep(self.slow).await;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        let mut fails = self.fail_times.lock().unwrap();
        let failing = fails
            .iter_mut()
            .find(|(w, n)| **n > 0 && argv.iter().any(|a| a.contains(w.as_str())));
        let mut o = StepOutcome::new(StepStatus::Ok);
        o.exit_code = Some(0);
        if let Some((_, n)) = failing {
            *n -= 1;
            o = StepOutcome::new(StepStatus::Failed);
            o.exit_code = Some(254);
            o.stderr_tail = "An error occurred (Throttling): Rate exceeded".into();
        }
        Ok(o)
    }
}

fn alert(id: &str, script: &str) -> Vec<u8> {
    alert_on(id, "u", script)
}

/// An alert about the resource named `resource`: its commands must act on it.
fn alert_on(id: &str, resource: &str, script: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "alertId": id,
        "accountId": "123456789012",
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "resourceName": resource,
        "policyName": "test policy",
        "alertRemediationCli": script,
    }))
    .unwrap()
}

fn fast_config() -> EngineConfig {
    EngineConfig::default()
        .with_retry(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
        .with_max_deliveries(3)
}

/// An engine dry-running `alert-cli` plans over `q`, every AWS account mapped.
fn dry_run_engine(q: &MemorySource) -> remediation::engine::EngineBuilder {
    Engine::builder(
        Arc::new(q.clone()),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(DryRunExecutor::new(
            CommandPolicy::default(),
            ContextMap::new().with_default_aws_profile("p"),
        )),
    )
}

fn queue() -> MemorySource {
    MemorySource::builder()
        .with_lease(Duration::from_secs(5))
        .with_wait(Duration::from_millis(20))
        .build()
}

async fn run(
    q: &MemorySource,
    exec: Arc<dyn CommandExecutor>,
    config: EngineConfig,
) -> (remediation::telemetry::Summary, Vec<AuditRecord>) {
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(q.clone()),
        Arc::new(AlertCliPlanner::default()),
        exec,
    )
    .config(config)
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("engine finished")
    .expect("engine ran");
    (summary, audit.records())
}

#[tokio::test]
async fn success_is_acked_once() {
    let q = queue();
    q.send(alert(
        "P-1",
        "aws sts get-caller-identity && aws iam get-user --user-name u",
    ))
    .await
    .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::default());
    let (summary, records) = run(&q, exec.clone(), fast_config()).await;
    assert_eq!(exec.calls().len(), 2);
    assert_eq!(summary.executed, 1);
    assert_eq!(q.acked(), 1);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.decision, AuditDecision::Executed);
    assert_eq!(r.settle, SettleAction::Ack);
    assert_eq!(r.alert_id.as_deref(), Some("P-1"));
    assert_eq!(r.steps.len(), 2);
    assert!(r.steps.iter().all(|s| s.status == StepStatus::Ok));
}

#[tokio::test]
async fn failed_step_stops_the_plan_nacks_and_retries() {
    let q = queue();
    q.send(alert_on(
        "P-2",
        "flaky-call",
        "aws s3api put-bucket-versioning --bucket flaky-call --versioning-configuration \
         Status=Enabled; aws iam get-user --user-name u",
    ))
    .await
    .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::failing("flaky-call", 1));
    let (summary, records) = run(&q, exec.clone(), fast_config()).await;
    // First delivery: step 1 fails, step 2 never runs. Second: both run.
    let flaky = [
        "aws",
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "flaky-call",
        "--versioning-configuration",
        "Status=Enabled",
    ];
    let get_user = ["aws", "iam", "get-user", "--user-name", "u"];
    assert_eq!(exec.calls(), vec![&flaky[..], &flaky[..], &get_user[..]]);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].decision, AuditDecision::Failed);
    assert_eq!(records[0].settle, SettleAction::Nack);
    assert_eq!(records[0].reason_code.as_deref(), Some("step_failed"));
    assert!(records[0].reason.as_deref().unwrap().contains("exited 254"));
    assert_eq!(records[0].steps[1].status, StepStatus::NotRun);
    assert_eq!(records[1].decision, AuditDecision::Executed);
    assert_eq!(records[1].delivery_count, 2);
    assert_eq!(summary.failed, 1);
    assert_eq!(summary.executed, 1);
    assert_eq!(q.acked(), 1);
    assert!(q.dead_letters().is_empty());
}

#[tokio::test]
async fn repeated_failure_is_dead_lettered_with_its_body() {
    let q = queue();
    let body = alert_on(
        "P-3",
        "always-fails",
        "aws iam detach-user-policy --user-name always-fails \
         --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
    );
    q.send(body.clone()).await.unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::failing("always-fails", usize::MAX));
    let (summary, records) = run(&q, exec.clone(), fast_config()).await;
    assert_eq!(exec.calls().len(), 3, "max_deliveries = 3 attempts");
    assert_eq!(records.len(), 3);
    let last = records.last().unwrap();
    assert_eq!(last.settle, SettleAction::DeadLetter);
    assert_eq!(last.body.as_deref().map(str::as_bytes), Some(&body[..]));
    assert_eq!(summary.dead_lettered, 1);
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].body[..], &body[..]);
    assert!(dead[0].reason.contains("step_failed after 3 deliveries"));
}

#[tokio::test]
async fn poison_and_unsafe_are_dead_lettered_never_run() {
    let q = queue();
    q.send(&b"\x00\xffnot json"[..]).await.unwrap();
    // A catalog operation piped into a shell: refused for the pipe.
    q.send(alert("P-4", "aws sts get-caller-identity | sh"))
        .await
        .unwrap();
    q.send(alert("P-5", "curl http://example.com"))
        .await
        .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::default());
    let (summary, records) = run(&q, exec.clone(), fast_config()).await;
    assert!(
        exec.calls().is_empty(),
        "nothing may run: {:?}",
        exec.calls()
    );
    assert_eq!(summary.rejected, 3);
    assert_eq!(summary.dead_lettered, 3);
    assert_eq!(q.dead_letters().len(), 3);
    for r in &records {
        assert_eq!(r.decision, AuditDecision::Rejected);
        assert_eq!(r.settle, SettleAction::DeadLetter);
        assert!(
            r.body.is_some() || r.body_base64.is_some(),
            "dead letter without body: {r:?}"
        );
    }
    let mut codes: Vec<_> = records
        .iter()
        .map(|r| r.reason_code.clone().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec!["undecodable", "unsafe_command", "unsafe_command"]
    );
    // Each refusal names its class: the pipe is shell syntax, curl is no allowed program.
    let reason = |id: &str| {
        records
            .iter()
            .find(|r| r.alert_id.as_deref() == Some(id))
            .and_then(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason("P-4").contains("unsafe_command: shell_syntax: "),
        "{}",
        reason("P-4")
    );
    assert!(
        reason("P-5").contains("unsafe_command: program_not_allowed: "),
        "{}",
        reason("P-5")
    );
}

#[tokio::test]
async fn duplicates_are_remediated_once() {
    let q = queue();
    q.send(alert("P-6", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.send(alert("P-6", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.send(alert("P-6", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::default());
    let (summary, records) = run(&q, exec.clone(), fast_config()).await;
    assert_eq!(
        exec.calls().len(),
        1,
        "one remediation for three deliveries"
    );
    assert_eq!(summary.executed, 1);
    assert!(
        records
            .iter()
            .filter(|r| r.decision == AuditDecision::Skipped)
            .count()
            >= 2
    );
    assert!(
        records
            .iter()
            .filter(|r| r.decision == AuditDecision::Skipped)
            .all(|r| r.reason_code.as_deref() == Some("duplicate"))
    );
    assert_eq!(q.pending(), 0);
}

#[tokio::test]
async fn lease_is_extended_while_a_slow_step_runs() {
    let q = MemorySource::builder()
        .with_lease(Duration::from_millis(300))
        .with_wait(Duration::from_millis(20))
        .build();
    q.send(alert(
        "P-7",
        "aws glue delete-dev-endpoint --endpoint-name slow-endpoint",
    ))
    .await
    .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor {
        slow: Duration::from_millis(1200),
        ..Default::default()
    });
    let mut lease = LeasePolicy::default();
    lease.extension = Duration::from_millis(300);
    lease.margin = Duration::from_millis(150);
    let (summary, records) = run(&q, exec.clone(), fast_config().with_lease(lease)).await;
    assert_eq!(
        exec.calls().len(),
        1,
        "redelivered while running: {:?}",
        exec.calls()
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].settle, SettleAction::Ack);
    assert!(summary.extended >= 3, "extended {} times", summary.extended);
    assert_eq!(q.acked(), 1);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let q = queue();
    for i in 0..40 {
        q.send(alert(
            &format!("P-C{i}"),
            "aws iam get-user --user-name slow-op",
        ))
        .await
        .unwrap();
    }
    q.close();
    let exec = Arc::new(ScriptedExecutor {
        slow: Duration::from_millis(30),
        ..Default::default()
    });
    let (summary, _) = run(&q, exec.clone(), fast_config().with_concurrency(4)).await;
    assert_eq!(summary.executed, 40);
    let max = exec.max_running.load(Ordering::SeqCst);
    assert!(max <= 4, "ran {max} at once with concurrency 4");
    assert!(max >= 2, "concurrency never used: {max}");
}

#[tokio::test]
async fn shutdown_releases_what_has_not_finished() {
    let q = queue();
    for i in 0..6 {
        q.send(alert(
            &format!("P-S{i}"),
            "aws iam get-user --user-name slow-one && aws s3api put-bucket-versioning \
             --bucket slow-two --versioning-configuration Status=Enabled",
        ))
        .await
        .unwrap();
    }
    let exec = Arc::new(ScriptedExecutor {
        slow: Duration::from_millis(300),
        ..Default::default()
    });
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(q.clone()),
        Arc::new(AlertCliPlanner::default()),
        exec.clone(),
    )
    // Two in flight at once, none read ahead.
    .config(fast_config().with_concurrency(2).with_read_ahead(2))
    .audit(audit.clone())
    .build();
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stopper.cancel();
    });
    let summary = tokio::time::timeout(Duration::from_secs(10), engine.run(cancel))
        .await
        .expect("shutdown is prompt")
        .unwrap();
    // Two were in flight: their first step finished, the second never started.
    assert_eq!(exec.calls().len(), 2);
    let records = audit.records();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.reason_code.as_deref(), Some("cancelled"));
        assert_eq!(r.settle, SettleAction::Nack);
    }
    assert_eq!(summary.received, 2);
    // Nothing lost: all six are still on the queue, none acked.
    assert_eq!(q.acked(), 0);
    assert_eq!(q.pending(), 6);
    assert!(q.dead_letters().is_empty());
}

/// The bundled sample holds every gate case; each input line yields exactly
/// one audit line with the expected decision and reason code.
#[tokio::test]
async fn sample_file_gate_cases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/sample-alerts.jsonl"
    );
    let lines = std::fs::read_to_string(path).unwrap().lines().count();
    let source = FileSource::open(path).unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let exec = DryRunExecutor::new(
        CommandPolicy::default(),
        ContextMap::new().with_aws_profile("123456789012", "prod"),
    );
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(exec),
    )
    .audit(audit.clone())
    .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    let mut records = audit.records();
    assert_eq!(records.len(), lines, "one audit line per input line");
    records.sort_by_key(|r| {
        r.message_id
            .rsplit(':')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap()
    });
    let got: Vec<(String, &str, String)> = records
        .iter()
        .map(|r| {
            (
                r.alert_id
                    .clone()
                    .or(r.event_id.clone())
                    .unwrap_or_default(),
                r.decision.as_str(),
                r.reason_code.clone().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, &str, String)> = [
        ("P-1001", "planned", "planned"),
        ("I-2002", "skipped", "not_open"),
        ("I-2003", "skipped", "not_remediable"),
        ("T-0", "skipped", "test_notification"),
        ("P-1001", "skipped", "duplicate"),
        ("P-1006", "skipped", "no_remediation"),
        ("P-1007", "rejected", "unsafe_command"),
        ("P-1008", "rejected", "unmapped_account"),
        ("", "rejected", "undecodable"),
        (
            "3b2f1a0e-0000-4000-8000-000000000010",
            "skipped",
            "no_remediation",
        ),
        ("P-1011", "planned", "planned"),
    ]
    .into_iter()
    .map(|(a, d, c)| (a.to_owned(), d, c.to_owned()))
    .collect();
    assert_eq!(got, want);
    // Dry run settles nothing, but the poison line's body is in its record.
    assert!(records.iter().all(|r| r.settle == SettleAction::None));
    assert_eq!(records[8].body.as_deref(), Some("this line is not JSON {"));
    // The hostile sample is refused for its pipe; its first command is a catalog operation.
    let hostile = records[6].reason.as_deref().unwrap_or_default();
    assert!(
        hostile.contains("unsafe_command: shell_syntax: "),
        "{hostile}"
    );
    // The plan names the profile it would run with.
    assert_eq!(records[0].steps.len(), 2);
    assert_eq!(
        records[0].steps[0]
            .context
            .get("AWS_PROFILE")
            .map(String::as_str),
        Some("prod")
    );
    assert_eq!(summary.received as usize, lines);
    assert_eq!(summary.planned, 2);
    assert_eq!(summary.rejected, 3);
    assert_eq!(summary.skipped, 6);
}

/// Many deliveries on a multi-threaded runtime, some failing a few times:
/// every message ends acked or dead-lettered, none twice, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_under_concurrency() {
    let q = queue();
    let total = 300;
    for i in 0..total {
        // Every 7th alert fails twice before succeeding, every 50th always fails.
        let script = if i % 50 == 0 {
            format!("aws s3api delete-bucket-policy --bucket always-fails-{i}")
        } else if i % 7 == 0 {
            format!(
                "aws s3api put-bucket-versioning --bucket flaky-{i}-x \
                 --versioning-configuration Status=Enabled"
            )
        } else {
            format!("aws iam get-user --user-name user-{i}")
        };
        q.send(alert(&format!("P-N{i}"), &script)).await.unwrap();
    }
    q.close();
    let exec = ScriptedExecutor::failing("always-fails", usize::MAX);
    for i in (0..total).filter(|i| i % 7 == 0 && i % 50 != 0) {
        exec.fail_times
            .lock()
            .unwrap()
            .insert(format!("flaky-{i}-x"), 2);
    }
    let exec = Arc::new(exec);
    let (summary, records) = run(&q, exec.clone(), fast_config().with_concurrency(16)).await;
    let always = (0..total).filter(|i| i % 50 == 0).count() as u64;
    assert_eq!(q.pending(), 0, "every message settled");
    assert_eq!(q.acked() + q.dead_letters().len() as u64, total as u64);
    assert_eq!(q.dead_letters().len() as u64, always);
    assert_eq!(summary.executed, total as u64 - always);
    // Each successful alert's command ran exactly once successfully: the
    // executed records name distinct alerts.
    let mut executed: Vec<_> = records
        .iter()
        .filter(|r| r.decision == AuditDecision::Executed)
        .map(|r| r.alert_id.clone().unwrap())
        .collect();
    executed.sort();
    executed.dedup();
    assert_eq!(executed.len() as u64, total as u64 - always);
}

/// An executor that panics on commands mentioning `boom`.
#[derive(Debug, Default)]
struct PanickyExecutor;

#[async_trait]
impl CommandExecutor for PanickyExecutor {
    fn check(&self, step: &Step, _target: &Target) -> remediation::Result<()> {
        CommandPolicy::default().check(&step.command)
    }
    async fn execute(&self, step: &Step, _target: &Target) -> remediation::Result<StepOutcome> {
        if step.command.argv().iter().any(|a| a.contains("boom")) {
            panic!("executor bug");
        }
        Ok(StepOutcome::new(StepStatus::Ok))
    }
}

#[tokio::test]
async fn a_panicking_executor_fails_only_its_delivery_and_everything_is_settled() {
    let q = queue();
    q.send(alert("P-P1", "aws iam get-user --user-name boom"))
        .await
        .unwrap();
    q.send(alert("P-P2", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.close();
    let (summary, records) = run(&q, Arc::new(PanickyExecutor), fast_config()).await;
    assert_eq!(summary.executed, 1);
    assert_eq!(q.pending(), 0);
    assert_eq!(q.acked(), 1);
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1, "the panicking one is retried, then parked");
    assert!(dead[0].reason.contains("panicked"), "{}", dead[0].reason);
    assert_eq!(
        records
            .iter()
            .filter(|r| r.alert_id.as_deref() == Some("P-P1"))
            .count(),
        3
    );
}

/// A source that ignores `max` and hands out everything it has.
#[derive(Debug)]
struct GreedySource(MemorySource);

#[async_trait]
impl remediation::source::AlertSource for GreedySource {
    fn name(&self) -> &str {
        "greedy"
    }
    async fn receive(
        &self,
        _max: usize,
    ) -> remediation::Result<Vec<remediation::source::Delivery>> {
        self.0.receive(100).await
    }
    fn capabilities(&self) -> remediation::source::Capabilities {
        self.0.capabilities()
    }
    fn is_exhausted(&self) -> bool {
        self.0.is_exhausted()
    }
}

#[tokio::test]
async fn a_source_returning_more_than_asked_cannot_deadlock_the_engine() {
    let q = MemorySource::builder()
        .with_wait(Duration::from_millis(20))
        .build();
    for i in 0..10 {
        q.send(alert(&format!("P-G{i}"), "aws iam get-user --user-name u"))
            .await
            .unwrap();
    }
    q.close();
    // MemorySource hands out at most 10 per call; a read-ahead of 2 leaves 8 over.
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(GreedySource(q.clone())),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(ScriptedExecutor::default()),
    )
    .config(fast_config().with_concurrency(2).with_read_ahead(2))
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(20),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("no deadlock")
    .unwrap();
    assert_eq!(summary.executed, 10);
    assert_eq!(q.acked(), 10);
    assert!(
        audit
            .records()
            .iter()
            .any(|r| r.reason_code.as_deref() == Some("over_capacity"))
    );
}

#[tokio::test]
async fn a_dry_run_does_not_mark_findings_done() {
    let dedup = Arc::new(remediation::engine::MemoryDedup::default());
    let q = queue();
    // The same alert twice, one after the other: the second comes after the
    // first was settled, as a real run's "already remediated" would.
    q.send(alert("P-D1", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.send(alert("P-D1", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.close();
    let audit = Arc::new(MemoryAudit::new());
    let engine = dry_run_engine(&q)
        .config(
            fast_config()
                .with_settle_in_dry_run(true)
                .with_concurrency(1)
                .with_receive_batch(1),
        )
        .dedup(dedup.clone())
        .audit(audit.clone())
        .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!((summary.planned, summary.skipped), (1, 1), "{summary:?}");
    let codes: Vec<_> = audit
        .records()
        .iter()
        .map(|r| r.reason_code.clone().unwrap_or_default())
        .collect();
    assert_eq!(codes, ["planned", "duplicate"]);
    use remediation::engine::{Claim, DedupStore};
    assert_eq!(
        dedup
            .claim("prisma:P-D1:open", Duration::from_secs(1))
            .await
            .unwrap(),
        Claim::Claimed,
        "a dry run must leave the finding to the real run"
    );
}

/// A dedup store that is down for its first `failures` claims, then works.
#[derive(Debug)]
struct FlakyDedup {
    failures: AtomicUsize,
    inner: remediation::engine::MemoryDedup,
}

#[async_trait]
impl remediation::engine::DedupStore for FlakyDedup {
    async fn claim(
        &self,
        key: &str,
        lease: Duration,
    ) -> remediation::Result<remediation::engine::Claim> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(remediation::Error::io(
                "dedup store",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ));
        }
        self.inner.claim(key, lease).await
    }
    async fn complete(&self, key: &str, ttl: Duration) -> remediation::Result<()> {
        self.inner.complete(key, ttl).await
    }
    async fn release(&self, key: &str) -> remediation::Result<()> {
        self.inner.release(key).await
    }
}

#[tokio::test]
async fn a_dedup_store_outage_is_retried_never_dead_lettered() {
    let q = queue();
    q.send(alert("P-O1", "aws iam get-user --user-name u"))
        .await
        .unwrap();
    q.close();
    let exec = Arc::new(ScriptedExecutor::default());
    let audit = Arc::new(MemoryAudit::new());
    // Down for more deliveries than max_deliveries (3) allows.
    let dedup = Arc::new(FlakyDedup {
        failures: AtomicUsize::new(5),
        inner: remediation::engine::MemoryDedup::default(),
    });
    let engine = Engine::builder(
        Arc::new(q.clone()),
        Arc::new(AlertCliPlanner::default()),
        exec.clone(),
    )
    .config(fast_config())
    .dedup(dedup)
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("engine finished")
    .expect("engine ran");
    let codes: Vec<_> = audit
        .records()
        .iter()
        .map(|r| (r.reason_code.clone().unwrap_or_default(), r.settle))
        .collect();
    assert_eq!(summary.dead_lettered, 0, "{codes:?}");
    assert_eq!(summary.executed, 1, "{codes:?}");
    assert_eq!(exec.calls().len(), 1, "ran once, after the store came back");
    assert_eq!(codes.len(), 6, "{codes:?}");
    assert!(
        codes[..5]
            .iter()
            .all(|(c, s)| c == "dedup_unavailable" && *s == SettleAction::Nack),
        "{codes:?}"
    );
    assert!(q.dead_letters().is_empty());
}

/// A newcomer's first program: a dry run over a closed memory source. It
/// settles nothing, so the source would hand its deliveries back when their
/// leases end; the run ends instead, each delivery reported once, and the
/// queue keeps every message for a real run.
#[tokio::test]
async fn a_dry_run_over_a_closed_memory_source_ends() {
    let q = MemorySource::builder()
        .with_lease(Duration::from_millis(300))
        .with_wait(Duration::from_millis(20))
        .build();
    for n in 0..3 {
        q.send(alert(
            &format!("P-DRY-{n}"),
            "aws iam get-user --user-name u",
        ))
        .await
        .unwrap();
    }
    q.close();
    let audit = Arc::new(MemoryAudit::new());
    let engine = dry_run_engine(&q)
        .config(fast_config())
        .audit(audit.clone())
        .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("a dry run over a closed source ends")
    .unwrap();
    assert_eq!((summary.received, summary.planned), (3, 3), "{summary:?}");
    assert_eq!(audit.records().len(), 3);
    // Nothing was settled: every message is still there.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(q.pending(), 3);
}
