//! The Lambda adapter (feature `lambda`): the SQS handler driven with real
//! event shapes (the published Prisma Cloud test event, an `SqsEvent` with
//! good, failing, poison, duplicate and test-notification records), the
//! EventBridge handler, the invocation deadline, and both example binaries
//! end to end through a local Lambda Runtime API (`tests/support/lambda_runtime.rs`).
//!
//! Commands run through the recording stand-in for `aws`; a step whose argv
//! names `fail-me` is failed by a thin executor wrapper (exit 1), so one
//! batch holds both outcomes.

mod support;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::SqsEvent;
use remediation::engine::{AuditDecision, EngineConfig, MemoryAudit, SettleAction};
use remediation::executor::{
    CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor, StepOutcome, StepStatus,
};
use remediation::lambda::{LambdaHandler, RecordOutcome};
use remediation::model::Target;
use remediation::plan::CommandPolicy;
use remediation::plan::Step;
use remediation::planner::AlertCliPlanner;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use support::StandIn;
use support::examples::example_binary;
use support::lambda_runtime::{Posted, RuntimeApi};

const ACCOUNT: &str = "123456789012";

/// Runs steps through the stand-in; a step naming `fail-me` exits 1, one
/// naming `slow-step` takes two seconds first.
#[derive(Debug)]
struct Wrapped {
    inner: ProcessExecutor,
}

#[async_trait]
impl CommandExecutor for Wrapped {
    fn check(&self, step: &Step, target: &Target) -> remediation::Result<()> {
        self.inner.check(step, target)
    }
    async fn execute(&self, step: &Step, target: &Target) -> remediation::Result<StepOutcome> {
        let argv = step.command.argv();
        if argv.iter().any(|a| a == "slow-step") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if argv.iter().any(|a| a == "fail-me") {
            let mut o = StepOutcome::new(StepStatus::Failed);
            o.exit_code = Some(1);
            o.stderr_tail = "An error occurred (NoSuchEntity)".into();
            return Ok(o);
        }
        self.inner.execute(step, target).await
    }
}

fn alert(id: &str, script: &str) -> String {
    json!({
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

/// One record as Lambda's SQS event source mapping delivers it.
fn record(message_id: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": message_id,
        "receiptHandle": format!("AQEB{message_id}=="),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": receive_count.to_string(),
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000001"
        },
        "messageAttributes": {
            "origin": {"stringValue": "prisma", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
        },
        "md5OfBody": "0123456789abcdef0123456789abcdef",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:prisma-alerts",
        "awsRegion": "us-east-1"
    })
}

fn sqs_event(records: Vec<Value>) -> SqsEvent {
    serde_json::from_value(json!({ "Records": records })).expect("SqsEvent")
}

struct Setup {
    standin: StandIn,
    audit: Arc<MemoryAudit>,
    handler: LambdaHandler,
}

fn setup(
    configure: impl FnOnce(
        remediation::lambda::LambdaHandlerBuilder,
    ) -> remediation::lambda::LambdaHandlerBuilder,
) -> Setup {
    let standin = StandIn::new();
    let contexts = ContextMap::new().with_aws_profile(ACCOUNT, "remediator");
    let executor = Wrapped {
        inner: standin.executor(contexts),
    };
    let audit = Arc::new(MemoryAudit::new());
    let builder = LambdaHandler::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(executor),
    )
    .audit(audit.clone())
    .deadline_margin(Duration::from_secs(1));
    Setup {
        standin,
        audit,
        handler: configure(builder).build(),
    }
}

fn in_a_minute() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(60))
}

fn fixture(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn failures(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> BTreeSet<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn published_prisma_test_event_is_skipped_and_reported_done() {
    // The same file as ../shared/fixtures/prisma/ (copied with provenance).
    let text = fixture("prisma/pan-enhanced-remediation-test-T-0-sqs-envelope.json");
    let event: SqsEvent = serde_json::from_str(&text).expect("the published event parses");
    let s = setup(|b| b);
    let report = s.handler.handle_sqs(event, in_a_minute()).await;
    assert_eq!(report.records.len(), 1);
    let r = &report.records[0];
    assert_eq!(r.message_id, "19dd0b57-b21e-4ac1-bd88-01bbb068cb78");
    assert_eq!(r.outcome, RecordOutcome::Acked);
    assert_eq!(r.reason_code.as_deref(), Some("test_notification"));
    assert!(report.batch_response().batch_item_failures.is_empty());
    assert!(
        s.standin.calls().is_empty(),
        "a test notification runs nothing"
    );
    // The serialized answer is what Lambda expects.
    let answer = serde_json::to_value(report.batch_response()).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
}

#[tokio::test]
async fn batch_item_failures_are_exactly_the_records_not_done() {
    let good = alert("P-good", "aws iam delete-login-profile --user-name alice");
    let cloudtrail = fixture("cloudtrail/miztiik-eventbridge-iam-CreateUser.json");
    let event = sqs_event(vec![
        record("m-good", &good, 1),
        record(
            "m-fail",
            &alert("P-fail", "aws iam delete-login-profile --user-name fail-me"),
            1,
        ),
        record("m-poison", "this is not an alert", 1),
        record(
            "m-test",
            &fixture("prisma/pan-enhanced-remediation-test-T-0-body.json"),
            1,
        ),
        // The same alert again in the same batch: it is being remediated by
        // the first copy, so this one must come back later, not be dropped.
        record("m-dup", &good, 1),
        // Unsafe: a pipe. Poison, like undecodable bodies.
        record(
            "m-unsafe",
            &alert("P-unsafe", "aws iam get-user --user-name u | sh"),
            1,
        ),
        // A CloudTrail event in its EventBridge envelope: no alert-cli remediation.
        record("m-ct", &cloudtrail, 1),
        // Failing for the fifth time: dead-lettered (left to the redrive policy).
        record(
            "m-fail5",
            &alert(
                "P-fail5",
                "aws iam delete-login-profile --user-name fail-me",
            ),
            5,
        ),
    ]);
    let s = setup(|b| b);
    let report = s.handler.handle_sqs(event, in_a_minute()).await;
    let expected: BTreeSet<String> = ["m-fail", "m-poison", "m-dup", "m-unsafe", "m-fail5"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(failures(&report.batch_response()), expected, "{report:#?}");
    let outcome = |id: &str| {
        report
            .records
            .iter()
            .find(|r| r.message_id == id)
            .map(|r| (r.outcome, r.reason_code.clone().unwrap_or_default()))
            .unwrap()
    };
    assert_eq!(outcome("m-good"), (RecordOutcome::Acked, "executed".into()));
    assert_eq!(
        outcome("m-fail"),
        (RecordOutcome::Nacked, "step_failed".into())
    );
    assert_eq!(
        outcome("m-poison"),
        (
            RecordOutcome::DeadLettered(remediation::source::DeadLetterOutcome::LeftToRedrive),
            "undecodable".into()
        )
    );
    assert_eq!(
        outcome("m-dup"),
        (RecordOutcome::Nacked, "duplicate".into())
    );
    assert_eq!(
        outcome("m-test"),
        (RecordOutcome::Acked, "test_notification".into())
    );
    assert_eq!(
        outcome("m-ct"),
        (RecordOutcome::Acked, "no_remediation".into())
    );
    assert_eq!(outcome("m-fail5").1, "step_failed");
    assert_eq!(
        outcome("m-unsafe"),
        (
            RecordOutcome::DeadLettered(remediation::source::DeadLetterOutcome::LeftToRedrive),
            "unsafe_command".into()
        )
    );
    assert!(matches!(
        outcome("m-fail5").0,
        RecordOutcome::DeadLettered(_)
    ));

    // Only the good alert's command ran, once, with its account's profile.
    let calls = s.standin.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].argv,
        ["aws", "iam", "delete-login-profile", "--user-name", "alice"]
    );
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("remediator"));

    // Every record is audited; dead letters carry their body.
    let records = s.audit.records();
    assert_eq!(records.len(), 8);
    let poison = records.iter().find(|r| r.message_id == "m-poison").unwrap();
    assert_eq!(poison.settle, SettleAction::DeadLetter);
    assert_eq!(poison.dead_letter.as_deref(), Some("left_to_redrive"));
    assert_eq!(poison.body.as_deref(), Some("this is not an alert"));
    assert_eq!(poison.source, "lambda:sqs:prisma-alerts");
    let good = records.iter().find(|r| r.message_id == "m-good").unwrap();
    assert_eq!(good.decision, AuditDecision::Executed);
    // Refused for the pipe, not for its (catalog) operation.
    let unsafe_ = records.iter().find(|r| r.message_id == "m-unsafe").unwrap();
    let reason = unsafe_.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("unsafe_command: shell_syntax: "),
        "{reason}"
    );

    // Redelivered by SQS (the failures only), the duplicate is now known done.
    let again = sqs_event(vec![record(
        "m-dup",
        &alert("P-good", "aws iam delete-login-profile --user-name alice"),
        2,
    )]);
    let report = s.handler.handle_sqs(again, in_a_minute()).await;
    assert!(report.batch_response().batch_item_failures.is_empty());
    assert_eq!(report.records[0].reason_code.as_deref(), Some("duplicate"));
    assert_eq!(s.standin.calls().len(), 1, "executed once");
}

#[tokio::test]
async fn audit_only_dead_letters_are_reported_done_with_their_body() {
    let s = setup(|b| b.with_dead_letter_audit_only());
    let event = sqs_event(vec![
        record("m-poison", "{\"neither\":1}", 1),
        record("m-ok", &alert("P-1", "aws iam get-user --user-name u"), 1),
    ]);
    let report = s.handler.handle_sqs(event, in_a_minute()).await;
    assert!(
        report.batch_response().batch_item_failures.is_empty(),
        "{report:#?}"
    );
    let poison = s
        .audit
        .records()
        .into_iter()
        .find(|r| r.message_id == "m-poison")
        .unwrap();
    assert_eq!(poison.dead_letter.as_deref(), Some("audit_only"));
    assert_eq!(poison.body.as_deref(), Some("{\"neither\":1}"));
    let ok = s
        .audit
        .records()
        .into_iter()
        .find(|r| r.message_id == "m-ok")
        .unwrap();
    assert_eq!(ok.decision, AuditDecision::Executed);
}

#[tokio::test]
async fn dry_run_reports_everything_failed_so_the_queue_keeps_it() {
    let standin = StandIn::new();
    let contexts = ContextMap::new().with_aws_profile(ACCOUNT, "remediator");
    let dry = DryRunExecutor::new(CommandPolicy::default(), contexts.clone())
        .with_query_executor(Arc::new(standin.executor(contexts)));
    let handler = LambdaHandler::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(dry),
    )
    .build();
    let event = sqs_event(vec![record(
        "m-1",
        &alert("P-1", "aws iam delete-login-profile --user-name alice"),
        1,
    )]);
    let report = handler.handle_sqs(event.clone(), in_a_minute()).await;
    assert_eq!(report.failed_message_ids(), ["m-1"]);
    assert_eq!(report.records[0].decision.as_deref(), Some("planned"));
    assert!(standin.calls().is_empty());
    // Settling in dry run is opt-in.
    let handler = LambdaHandler::builder(
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(DryRunExecutor::new(
            CommandPolicy::default(),
            ContextMap::new().with_aws_profile(ACCOUNT, "remediator"),
        )),
    )
    .config(EngineConfig::default().with_settle_in_dry_run(true))
    .build();
    let report = handler.handle_sqs(event, in_a_minute()).await;
    assert!(report.failed_message_ids().is_empty());
}

#[tokio::test]
async fn the_deadline_stops_new_steps_and_reports_the_rest() {
    // One record at a time; the first record's step takes two seconds.
    let s = setup(|b| {
        b.config(EngineConfig::default().with_concurrency(1))
            .deadline_margin(Duration::from_secs(2))
    });
    let event = sqs_event(vec![
        record(
            "m-1",
            &alert(
                "P-1",
                "aws iam detach-user-policy --user-name slow-step \
                 --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
            ),
            1,
        ),
        record("m-2", &alert("P-2", "aws iam get-user --user-name u"), 1),
        record("m-3", &alert("P-3", "aws iam get-user --user-name u"), 1),
    ]);
    // 3 s left, 2 s margin: no step starts after 1 s.
    let t0 = Instant::now();
    let deadline = SystemTime::now() + Duration::from_secs(3);
    let report = s.handler.handle_sqs(event, Some(deadline)).await;
    let took = t0.elapsed();
    // The step that had started runs to its end (it changes something).
    assert_eq!(
        report.records[0].outcome,
        RecordOutcome::Acked,
        "{report:#?}"
    );
    assert_eq!(report.failed_message_ids(), ["m-2", "m-3"]);
    assert_eq!(report.records[1].reason_code.as_deref(), Some("deadline"));
    assert_eq!(s.standin.calls().len(), 1);
    assert!(
        took < Duration::from_secs(3),
        "returned before the deadline: {took:?}"
    );

    // Already inside the margin: nothing starts, everything comes back.
    let event = sqs_event(vec![record(
        "m-4",
        &alert("P-4", "aws iam get-user --user-name u"),
        1,
    )]);
    let report = s
        .handler
        .handle_sqs(event, Some(SystemTime::now() + Duration::from_millis(500)))
        .await;
    assert_eq!(report.failed_message_ids(), ["m-4"]);
    assert_eq!(s.standin.calls().len(), 1);
}

#[tokio::test]
async fn eventbridge_handler_fails_the_invocation_when_the_plan_failed() {
    let s = setup(|b| b);
    let relayed = |id: &str, alert_body: &str| {
        json!({
            "version": "0",
            "id": id,
            "detail-type": "Prisma Cloud Alert",
            "source": "prismacloud.io",
            "account": ACCOUNT,
            "time": "2024-05-01T12:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": serde_json::from_str::<Value>(alert_body).unwrap(),
        })
        .to_string()
    };
    // A Prisma alert relayed by EventBridge: executed.
    let ok = relayed(
        "ev-1",
        &alert("P-1", "aws iam delete-login-profile --user-name bob"),
    );
    let r = s
        .handler
        .handle_eventbridge(ok.as_bytes(), in_a_minute())
        .await
        .expect("executed");
    assert_eq!(r.event_id, "ev-1");
    assert_eq!(r.decision.as_deref(), Some("executed"));
    assert_eq!(s.standin.calls().len(), 1);

    // Its step fails: the invocation fails, Lambda retries.
    let failing = relayed(
        "ev-2",
        &alert("P-2", "aws iam delete-login-profile --user-name fail-me"),
    );
    let e = s
        .handler
        .handle_eventbridge(failing.as_bytes(), in_a_minute())
        .await
        .expect_err("failed");
    assert_eq!(e.reason_code.as_deref(), Some("step_failed"));
    assert_eq!(e.outcome, RecordOutcome::Nacked);
    let diagnostic: lambda_runtime::Diagnostic = e.into();
    assert_eq!(diagnostic.error_type, "Remediation.step_failed");

    // A CloudTrail event: nothing for alert-cli to do, skipped = success.
    let ct = fixture("cloudtrail/miztiik-eventbridge-iam-CreateUser.json");
    let r = s
        .handler
        .handle_eventbridge(ct.as_bytes(), in_a_minute())
        .await
        .expect("skipped is success");
    assert_eq!(r.decision.as_deref(), Some("skipped"));

    // An event nobody can decode: poison, left to the retries and the
    // failure destination; the audit keeps the whole event.
    let odd = r#"{"id":"ev-3","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{"x":1}}"#;
    let e = s
        .handler
        .handle_eventbridge(odd.as_bytes(), in_a_minute())
        .await
        .expect_err("poison");
    assert_eq!(e.reason_code.as_deref(), Some("undecodable"));
    let audited = s
        .audit
        .records()
        .into_iter()
        .find(|r| r.message_id == "ev-3")
        .unwrap();
    assert_eq!(audited.body.as_deref(), Some(odd));

    // Out of time before it started.
    let late = relayed("ev-4", &alert("P-4", "aws iam get-user --user-name u"));
    let e = s
        .handler
        .handle_eventbridge(late.as_bytes(), Some(SystemTime::now()))
        .await
        .expect_err("no time left");
    assert_eq!(e.outcome, RecordOutcome::Unsettled);
    assert_eq!(e.reason_code.as_deref(), Some("deadline"));
    assert_eq!(s.standin.calls().len(), 1);
}

// ------------------------------------------------- end to end: Runtime API

/// Starts a function binary against `api` with the variables Lambda sets.
fn start_function(
    bin: &Path,
    api: &RuntimeApi,
    standin: &StandIn,
    extra: &[(&str, &str)],
) -> tokio::process::Child {
    let tuned = [
        ("REMEDIATION_STEP_TIMEOUT_SECS", "10"),
        ("REMEDIATION_DEADLINE_MARGIN_SECS", "2"),
    ];
    let extra: Vec<(&str, &str)> = tuned.iter().chain(extra).copied().collect();
    start_function_at_defaults(bin, api, standin, &extra)
}

/// The function with only what Lambda sets and the account mapping: every
/// timeout and margin at the function's defaults.
fn start_function_at_defaults(
    bin: &Path,
    api: &RuntimeApi,
    standin: &StandIn,
    extra: &[(&str, &str)],
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .env("AWS_LAMBDA_RUNTIME_API", api.host_port())
        .env("AWS_LAMBDA_FUNCTION_NAME", "remediation-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2024/05/01/[$LATEST]0123456789abcdef",
        )
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/remediation-test")
        .env("AWS_REGION", "us-east-1")
        .env("ACCOUNT_PROFILES", format!("{ACCOUNT}=remediator"))
        .env("REMEDIATION_EXECUTE", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start function")
}

async fn stop(mut child: tokio::process::Child) -> (String, String) {
    let _ = child.start_kill();
    let out = child.wait_with_output().await.expect("function output");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn sqs_function_end_to_end_through_the_runtime_api() {
    let bin = example_binary("lambda_sqs").await;
    let api = RuntimeApi::start().await;
    let standin = StandIn::new();
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().display().to_string();
    let function = start_function(
        &bin,
        &api,
        &standin,
        &[
            // The function role's credentials, as Lambda sets them.
            ("AWS_ACCESS_KEY_ID", "ASIAFUNCTIONROLE0001"),
            ("AWS_SECRET_ACCESS_KEY", "function-secret-value"),
            ("AWS_SESSION_TOKEN", "function-session-token"),
            ("REMEDIATION_FUNCTION_PROFILE", "function-role"),
            ("TMPDIR", &tmp_path),
        ],
    );

    let good = alert("P-e2e-1", "aws iam delete-login-profile --user-name carol");
    let event = json!({"Records": [
        record("m-good", &good, 1),
        record("m-poison", "garbage", 1),
        record("m-test", &fixture("prisma/pan-enhanced-remediation-test-T-0-body.json"), 1),
        record("m-unmapped", &alert("P-e2e-2", "aws iam get-user --user-name u").replace(ACCOUNT, "999999999999"), 1),
    ]});
    let id = api.invoke("req-sqs-1", &event.to_string(), Duration::from_secs(60));
    let posted = api.wait_for(&id, Duration::from_secs(60)).await;
    // A second invocation on the same (warm) function: the deadline is
    // already inside the margin, so nothing runs and the record comes back.
    let late = json!({"Records": [record("m-late", &alert("P-e2e-3", "aws iam get-user --user-name u"), 1)]});
    let id2 = api.invoke("req-sqs-2", &late.to_string(), Duration::from_millis(500));
    let posted2 = api.wait_for(&id2, Duration::from_secs(30)).await;
    let (stdout, stderr) = stop(function).await;

    let Some(Posted::Response { body }) = posted else {
        panic!("no response for {id}: {posted:?}\nstderr: {stderr}");
    };
    let answer: Value = serde_json::from_str(&body).expect("JSON response");
    let mut failed: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    failed.sort();
    assert_eq!(failed, ["m-poison", "m-unmapped"], "{body}");
    let Some(Posted::Response { body }) = posted2 else {
        panic!("no response for {id2}: {posted2:?}\nstderr: {stderr}");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "m-late"}]})
    );

    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].argv[1..],
        ["iam", "delete-login-profile", "--user-name", "carol"]
    );
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("remediator"));
    // The role's credentials reach the CLI only as a source profile in a
    // file in the command's private home, never as environment variables
    // overriding the profile, and never in a shared place.
    assert_eq!(calls[0].var("AWS_ACCESS_KEY_ID"), None);
    assert_eq!(calls[0].var("AWS_SESSION_TOKEN"), None);
    let credentials = calls[0]
        .var("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap()
        .to_owned();
    let home = &calls[0].environ["HOME"];
    assert!(
        credentials.starts_with(home.as_str()),
        "{credentials} is not in {home}"
    );
    let (mode, text) = &calls[0].files[&credentials];
    assert!(
        text.starts_with("[function-role]\naws_access_key_id = ASIAFUNCTIONROLE0001\n"),
        "{text}"
    );
    assert!(text.contains("aws_session_token = function-session-token"));
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !std::path::Path::new(&credentials).exists(),
        "left behind: {credentials}"
    );
    assert!(!tmp.path().join("remediation-aws").exists());
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains("function-secret-value") && !output.contains("function-session-token")
        );
    }
    // The audit went to stdout (CloudWatch Logs), one JSON line per record.
    let audit: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let decisions: BTreeSet<(String, String)> = audit
        .iter()
        .map(|r| {
            (
                r["message_id"].as_str().unwrap().to_owned(),
                r["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        decisions.contains(&("m-good".into(), "executed".into())),
        "{stdout}"
    );
    assert!(
        decisions.contains(&("m-poison".into(), "rejected".into())),
        "{stdout}"
    );
    assert!(
        decisions.contains(&("m-unmapped".into(), "rejected".into())),
        "{stdout}"
    );
    assert!(
        decisions.contains(&("m-test".into(), "skipped".into())),
        "{stdout}"
    );
    assert!(api.init_errors().is_empty());
}

/// At default settings (a 60 s step timeout, the default margin) a function
/// whose invocations have 60 s runs its alerts: steps are cut to the time
/// left, not refused because the step timeout exceeds it.
#[tokio::test]
async fn an_sqs_function_with_a_60_s_timeout_runs_its_alerts_at_default_settings() {
    let bin = example_binary("lambda_sqs").await;
    let api = RuntimeApi::start().await;
    let standin = StandIn::new();
    let function = start_function_at_defaults(&bin, &api, &standin, &[]);
    let event = json!({"Records": [
        record("m-1", &alert("P-d-1", "aws iam delete-login-profile --user-name dave"), 1),
        record("m-2", &alert("P-d-2", "aws iam delete-login-profile --user-name erin"), 1),
    ]});
    let id = api.invoke("req-defaults", &event.to_string(), Duration::from_secs(60));
    let posted = api.wait_for(&id, Duration::from_secs(60)).await;
    let (_stdout, stderr) = stop(function).await;
    let Some(Posted::Response { body }) = posted else {
        panic!("no response for {id}: {posted:?}\nstderr: {stderr}");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"batchItemFailures": []}),
        "{stderr}"
    );
    let mut users: Vec<String> = standin.calls().iter().map(|c| c.argv[4].clone()).collect();
    users.sort();
    assert_eq!(users, ["dave", "erin"]);
    assert!(api.init_errors().is_empty());
}

#[tokio::test]
async fn eventbridge_function_end_to_end_through_the_runtime_api() {
    let bin = example_binary("lambda_eventbridge").await;
    let api = RuntimeApi::start().await;
    let standin = StandIn::new();
    let function = start_function(&bin, &api, &standin, &[("REMEDIATION_AUDIT", "none")]);

    let relayed = json!({
        "version": "0", "id": "ev-e2e-1", "detail-type": "Prisma Cloud Alert",
        "source": "prismacloud.io", "account": ACCOUNT, "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1", "resources": [],
        "detail": serde_json::from_str::<Value>(&alert("P-eb-1", "aws iam delete-login-profile --user-name dave")).unwrap(),
    });
    let ok = api.invoke("req-eb-1", &relayed.to_string(), Duration::from_secs(60));
    let ct = api.invoke(
        "req-eb-2",
        &fixture("cloudtrail/miztiik-eventbridge-iam-CreateUser.json"),
        Duration::from_secs(60),
    );
    let bad = api.invoke(
        "req-eb-3",
        r#"{"id":"ev-e2e-3","detail-type":"GuardDuty Finding","source":"aws.guardduty","detail":{}}"#,
        Duration::from_secs(60),
    );
    let posted_ok = api.wait_for(&ok, Duration::from_secs(60)).await;
    let posted_ct = api.wait_for(&ct, Duration::from_secs(30)).await;
    let posted_bad = api.wait_for(&bad, Duration::from_secs(30)).await;
    let (_stdout, stderr) = stop(function).await;

    match &posted_ok {
        Some(Posted::Response { body }) => {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["event_id"], "ev-e2e-1");
            assert_eq!(v["decision"], "executed");
        }
        other => panic!("expected a response, got {other:?}\nstderr: {stderr}"),
    }
    match &posted_ct {
        Some(Posted::Response { body }) => {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["decision"], "skipped", "{body}");
        }
        other => panic!("expected a response, got {other:?}\nstderr: {stderr}"),
    }
    match &posted_bad {
        Some(Posted::Error { error_type, body }) => {
            let v: Value = serde_json::from_str(body).expect("error body is JSON");
            assert_eq!(v["errorType"], "Remediation.undecodable", "{body}");
            assert!(
                v["errorMessage"].as_str().unwrap().contains("ev-e2e-3"),
                "{body}"
            );
            // lambda_runtime sends `Lambda-Runtime-Function-Error-Type: unhandled`
            // and the type in the body.
            assert!(error_type.is_some(), "{error_type:?}");
        }
        other => panic!("expected an error, got {other:?}\nstderr: {stderr}"),
    }
    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].argv[1..],
        ["iam", "delete-login-profile", "--user-name", "dave"]
    );
}

#[tokio::test]
async fn bad_configuration_exits_before_polling() {
    let stderr = exits_at_start_up(&[("REMEDIATION_PLANNERS", "nonsense")]).await;
    assert!(stderr.contains("REMEDIATION_PLANNERS"));
}

/// Starts the SQS function with `extra`, which must make it exit with 2
/// before it asks the runtime API for an event; its stderr.
async fn exits_at_start_up(extra: &[(&str, &str)]) -> String {
    let bin = example_binary("lambda_sqs").await;
    let api = RuntimeApi::start().await;
    let standin = StandIn::new();
    let function = start_function(&bin, &api, &standin, extra);
    let out = tokio::time::timeout(Duration::from_secs(30), function.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(api.polls(), 0);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A margin no function can outlive (Lambda's longest timeout is 15
/// minutes) would never run anything: refused at start-up, not warned about
/// per invocation.
#[tokio::test]
async fn a_margin_no_invocation_can_outlive_is_refused_at_start_up() {
    let stderr = exits_at_start_up(&[("REMEDIATION_DEADLINE_MARGIN_SECS", "900")]).await;
    assert!(
        stderr.contains("REMEDIATION_DEADLINE_MARGIN_SECS=900"),
        "{stderr}"
    );
}

/// Features `lambda` + `sqs`: poison forwarded to a dead-letter queue in a
/// real moto server is reported done; if the forward fails it comes back.
#[cfg(feature = "sqs")]
#[tokio::test]
async fn poison_forwarded_to_a_dead_letter_queue_is_reported_done() {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    use support::moto::{MotoServer, venv};

    let moto = MotoServer::start(&venv());
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let client = aws_sdk_sqs::Client::new(&config);
    let dlq = client
        .create_queue()
        .queue_name("lambda-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let s = setup(|b| b.with_dead_letter_queue(client.clone(), dlq.clone()));
    let event = sqs_event(vec![
        record("m-poison", "{\"garbage\":true}", 1),
        record(
            "m-fail",
            &alert("P-f", "aws iam delete-login-profile --user-name fail-me"),
            1,
        ),
    ]);
    let report = s.handler.handle_sqs(event, in_a_minute()).await;
    assert_eq!(report.failed_message_ids(), ["m-fail"]);
    let parked = client
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let messages = parked.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].body(), Some("{\"garbage\":true}"));
    let attrs = messages[0].message_attributes().unwrap();
    assert_eq!(
        attrs["remediation-source-message-id"].string_value(),
        Some("m-poison")
    );
    assert!(
        attrs["remediation-dead-letter-reason"]
            .string_value()
            .unwrap()
            .starts_with("undecodable")
    );
    let audited = s
        .audit
        .records()
        .into_iter()
        .find(|r| r.message_id == "m-poison")
        .unwrap();
    assert_eq!(audited.dead_letter.as_deref(), Some("parked"));

    // A dead-letter queue that does not exist: the poison is not done.
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let s = setup(|b| b.with_dead_letter_queue(client.clone(), missing));
    let event = sqs_event(vec![record("m-poison-2", "garbage", 1)]);
    let report = s.handler.handle_sqs(event, in_a_minute()).await;
    assert_eq!(report.failed_message_ids(), ["m-poison-2"]);
    let audited = s.audit.records().into_iter().next().unwrap();
    assert!(audited.settle_error.is_some(), "{audited:?}");
    assert_eq!(audited.body.as_deref(), Some("garbage"));
}
