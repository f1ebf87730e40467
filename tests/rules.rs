//! Rules, the cloudtrail planner, read-only steps and expectations, with a
//! scripted stand-in executor (no cloud, no processes).

use async_trait::async_trait;
use remediation::engine::{AuditDecision, Engine, EngineConfig, MemoryAudit};
use remediation::executor::{CommandExecutor, ContextMap, DryRunExecutor, StepOutcome, StepStatus};
use remediation::model::{CloudTrailRecord, Event, Target};
use remediation::plan::EventPattern;
use remediation::plan::{Command, CommandPolicy};
use remediation::plan::{Decision, Expectation, Plan, SkipReason, Step};
use remediation::planner::{CloudTrailPlanner, RemediationPlanner};
use remediation::rules::{
    GlueDevEndpointGuard, PrincipalPattern, QuarantineIamUser, QuarantineParameters, Rule, RuleSet,
};
use remediation::source::MemorySource;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

/// Answers `aws <service> <operation>` with canned JSON (a list per operation,
/// consumed in order, the last one repeated) and records every argv.
#[derive(Debug, Default)]
struct ScriptedAws {
    answers: Mutex<HashMap<String, Vec<Result<String, String>>>>,
    calls: Mutex<Vec<Vec<String>>>,
}

impl ScriptedAws {
    fn answer(self, operation: &str, stdout: Value) -> Self {
        self.push(operation, Ok(stdout.to_string()))
    }

    fn fail(self, operation: &str, stderr: &str) -> Self {
        self.push(operation, Err(stderr.to_owned()))
    }

    fn push(self, operation: &str, answer: Result<String, String>) -> Self {
        self.answers
            .lock()
            .unwrap()
            .entry(operation.to_owned())
            .or_default()
            .push(answer);
        self
    }

    fn operations(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|a| a[2].clone())
            .collect()
    }
}

#[async_trait]
impl CommandExecutor for ScriptedAws {
    fn check(&self, _: &Step, _: &Target) -> remediation::Result<()> {
        Ok(())
    }

    async fn execute(&self, step: &Step, _: &Target) -> remediation::Result<StepOutcome> {
        let argv = step.command.to_argv();
        self.calls.lock().unwrap().push(argv.clone());
        let mut answers = self.answers.lock().unwrap();
        let list = answers.get_mut(&argv[2]);
        let answer = match list {
            Some(l) if l.len() > 1 => l.remove(0),
            Some(l) if l.len() == 1 => l[0].clone(),
            _ => Ok(String::new()),
        };
        let mut outcome;
        match answer {
            Ok(stdout) => {
                outcome = StepOutcome::new(StepStatus::Ok);
                outcome.exit_code = Some(0);
                outcome.stdout_tail = stdout;
            }
            Err(stderr) => {
                outcome = StepOutcome::new(StepStatus::Failed);
                outcome.exit_code = Some(254);
                outcome.stderr_tail = stderr;
            }
        }
        Ok(outcome)
    }
}

fn record(user_type: &str, user: &str, event_name: &str, source: &str, request: Value) -> Event {
    let text = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": user_type, "userName": user, "accountId": ACCOUNT,
                         "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}")},
        "eventSource": source, "eventName": event_name, "awsRegion": "us-east-1",
        "eventID": format!("{user}-{event_name}"), "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT, "requestParameters": request
    })
    .to_string();
    Event::CloudTrail(Box::new(CloudTrailRecord::from_text(&text).unwrap()))
}

fn iam_event(user_type: &str, user: &str) -> Event {
    record(
        user_type,
        user,
        "CreateUser",
        "iam.amazonaws.com",
        json!({"userName": "x"}),
    )
}

fn quarantine_rules(params: QuarantineParameters) -> RuleSet {
    RuleSet::new().with_rule(Rule::new(
        "q",
        EventPattern::from_json(
            r#"{"source":["aws.iam"],"detail":{"eventName":[{"prefix":"Create"}]}}"#,
        )
        .unwrap(),
        Arc::new(QuarantineIamUser::new(params)),
    ))
}

async fn decide(rules: RuleSet, aws: Arc<ScriptedAws>, event: Event) -> Decision {
    let planner = CloudTrailPlanner::new(rules, aws);
    planner.plan(&[event]).await.remove(0).unwrap()
}

fn plan_ops(decision: &Decision) -> Vec<(String, bool)> {
    match decision {
        Decision::Plan(p) => p
            .steps
            .iter()
            .map(|s| (s.command.argv()[2].to_string(), s.read_only))
            .collect(),
        Decision::Skip(s) => panic!("skipped: {s:?}"),
    }
}

fn skip_of(decision: &Decision) -> (SkipReason, String) {
    match decision {
        Decision::Skip(s) => (s.reason, s.detail.clone()),
        Decision::Plan(p) => panic!("planned: {p:?}"),
    }
}

fn policies(n: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"PolicyName": format!("p{i}"), "PolicyArn": format!("arn:aws:iam::{ACCOUNT}:policy/p{i}")}))
        .collect();
    json!({"AttachedPolicies": list})
}

#[tokio::test]
async fn quarantine_attaches_an_existing_configured_policy_and_verifies() {
    let aws = Arc::new(
        ScriptedAws::default()
            .answer(
                "list-groups-for-user",
                json!({"Groups": [{"GroupName": "Dev"}]}),
            )
            .answer("list-attached-user-policies", policies(3)),
    );
    let params = QuarantineParameters::default()
        .with_admin_group("Admins")
        .with_deny_policy_arn("arn:aws:iam::aws:policy/Deny");
    let d = decide(
        quarantine_rules(params),
        aws.clone(),
        iam_event("IAMUser", "alice"),
    )
    .await;
    assert_eq!(
        plan_ops(&d),
        [
            ("attach-user-policy".into(), false),
            ("list-attached-user-policies".into(), true)
        ]
    );
    let Decision::Plan(plan) = &d else {
        unreachable!()
    };
    assert!(plan.steps[0].command.argv().iter().any(|a| a == "alice"));
    assert!(plan.steps[1].expect.is_some());
    assert_eq!(plan.target.account_id.as_deref(), Some(ACCOUNT));
    // A configured ARN is never looked up or created.
    assert_eq!(
        aws.operations(),
        ["list-groups-for-user", "list-attached-user-policies"]
    );
}

#[tokio::test]
async fn quarantine_creates_a_missing_policy_first() {
    let aws = Arc::new(
        ScriptedAws::default()
            .answer("list-attached-user-policies", policies(0))
            .fail(
                "get-policy",
                "An error occurred (NoSuchEntity) when calling the GetPolicy operation",
            ),
    );
    let d = decide(
        quarantine_rules(QuarantineParameters::default()),
        aws.clone(),
        iam_event("IAMUser", "alice"),
    )
    .await;
    assert_eq!(
        plan_ops(&d),
        [
            ("create-policy".into(), false),
            ("attach-user-policy".into(), false),
            ("list-attached-user-policies".into(), true)
        ]
    );
    // No admin group configured: membership is not asked.
    assert_eq!(
        aws.operations(),
        ["list-attached-user-policies", "get-policy"]
    );
    // An existing policy is not created again.
    let aws = Arc::new(
        ScriptedAws::default()
            .answer("list-attached-user-policies", policies(0))
            .answer(
                "get-policy",
                json!({"Policy": {"PolicyName": "RemediationQuarantineDeny"}}),
            ),
    );
    let d = decide(
        quarantine_rules(QuarantineParameters::default()),
        aws,
        iam_event("IAMUser", "alice"),
    )
    .await;
    assert_eq!(plan_ops(&d)[0].0, "attach-user-policy");
}

#[tokio::test]
async fn quarantine_goes_inline_at_the_managed_policy_limit() {
    for (count, first) in [
        (9, "attach-user-policy"),
        (10, "put-user-policy"),
        (12, "put-user-policy"),
    ] {
        let aws = Arc::new(
            ScriptedAws::default()
                .answer("list-groups-for-user", json!({"Groups": []}))
                .answer("list-attached-user-policies", policies(count)),
        );
        let params = QuarantineParameters::default()
            .with_admin_group("Admins")
            .with_deny_policy_arn("arn:aws:iam::aws:policy/Deny");
        let d = decide(quarantine_rules(params), aws, iam_event("IAMUser", "carol")).await;
        assert_eq!(plan_ops(&d)[0].0, first, "{count} policies");
    }
}

#[tokio::test]
async fn quarantine_skips_admins_non_users_and_the_already_quarantined() {
    let aws = Arc::new(ScriptedAws::default().answer(
        "list-groups-for-user",
        json!({"Groups": [{"GroupName": "Dev"}, {"GroupName": "Admins"}]}),
    ));
    let rules = || quarantine_rules(QuarantineParameters::default().with_admin_group("Admins"));
    let (reason, detail) = skip_of(&decide(rules(), aws, iam_event("IAMUser", "bob")).await);
    assert_eq!(reason, SkipReason::Ignored);
    assert!(detail.contains("admin group Admins"), "{detail}");

    let aws = Arc::new(ScriptedAws::default());
    for kind in ["AssumedRole", "Root", "AWSService"] {
        let (reason, detail) = skip_of(&decide(rules(), aws.clone(), iam_event(kind, "x")).await);
        assert_eq!(reason, SkipReason::Ignored);
        assert!(detail.contains(kind), "{detail}");
    }
    assert!(aws.operations().is_empty(), "no query for non-IAM users");

    let aws = Arc::new(
        ScriptedAws::default()
            .answer("list-groups-for-user", json!({"Groups": []}))
            .answer(
                "list-attached-user-policies",
                json!({"AttachedPolicies": [{"PolicyArn": "arn:aws:iam::aws:policy/Deny"}]}),
            ),
    );
    let params = QuarantineParameters::default()
        .with_admin_group("Admins")
        .with_deny_policy_arn("arn:aws:iam::aws:policy/Deny");
    let (_, detail) =
        skip_of(&decide(quarantine_rules(params), aws, iam_event("IAMUser", "alice")).await);
    assert!(detail.contains("already"), "{detail}");
}

#[tokio::test]
async fn a_failing_query_is_a_temporary_planning_error() {
    let aws = Arc::new(ScriptedAws::default().fail("list-attached-user-policies", "Throttling"));
    let planner = CloudTrailPlanner::new(quarantine_rules(QuarantineParameters::default()), aws);
    let err = planner
        .plan(&[iam_event("IAMUser", "alice")])
        .await
        .remove(0)
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("Throttling"), "{err}");
}

#[tokio::test]
async fn loop_prevention_and_unmatched_events_are_ignored_without_queries() {
    let aws = Arc::new(ScriptedAws::default());
    let rules = quarantine_rules(QuarantineParameters::default())
        .with_ignored_principal(PrincipalPattern::new("arn:aws:iam::*:user/remediator*").unwrap());
    let planner = CloudTrailPlanner::new(rules, aws.clone());
    let events = [
        iam_event("IAMUser", "remediator"),
        iam_event("IAMUser", "remediator-2"),
        record(
            "IAMUser",
            "alice",
            "GetUser",
            "iam.amazonaws.com",
            json!({}),
        ),
        record(
            "IAMUser",
            "alice",
            "CreateBucket",
            "s3.amazonaws.com",
            json!({}),
        ),
    ];
    let decisions = planner.plan(&events).await;
    let details: Vec<(SkipReason, String)> = decisions
        .iter()
        .map(|d| skip_of(d.as_ref().unwrap()))
        .collect();
    assert!(
        details[0].1.contains("remediator's own identity"),
        "{details:?}"
    );
    assert!(
        details[1].1.contains("remediator's own identity"),
        "{details:?}"
    );
    assert!(details[2].1.contains("no rule matches"), "{details:?}");
    assert!(details[3].1.contains("no rule matches"), "{details:?}");
    assert!(details.iter().all(|d| d.0 == SkipReason::Ignored));
    assert!(aws.operations().is_empty());
}

#[tokio::test]
async fn assumed_role_sessions_are_matched_by_their_issuer() {
    let text = json!({
        "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/remediator/i-123"),
            "sessionContext": {"sessionIssuer": {"arn": format!("arn:aws:iam::{ACCOUNT}:role/remediator")}}},
        "eventSource": "iam.amazonaws.com", "eventName": "CreateUser", "eventID": "x", "recipientAccountId": ACCOUNT
    });
    let event = Event::CloudTrail(Box::new(
        CloudTrailRecord::from_text(&text.to_string()).unwrap(),
    ));
    let rules = quarantine_rules(QuarantineParameters::default())
        .with_ignored_principal(PrincipalPattern::new("arn:aws:iam::*:role/remediator").unwrap());
    let (_, detail) = skip_of(&decide(rules, Arc::new(ScriptedAws::default()), event).await);
    assert!(detail.contains("own identity"), "{detail}");
}

#[tokio::test]
async fn glue_guard_waits_for_ready_then_deletes_insecure_endpoints_only() {
    let rules = RuleSet::from_json(
        r#"{"rules": [{"name": "glue", "pattern": {"source": ["aws.glue"]},
            "remediation": "glue-dev-endpoint-guard",
            "parameters": {"poll-interval-secs": 2, "ready-timeout-secs": 60}}]}"#,
    )
    .unwrap();
    let aws = Arc::new(ScriptedAws::default());
    let insecure = record(
        "IAMUser",
        "dev",
        "CreateDevEndpoint",
        "glue.amazonaws.com",
        json!({"endpointName": "ep1", "securityGroupIds": ["sg-1"], "subnetId": "subnet-1"}),
    );
    let d = decide(rules.clone(), aws.clone(), insecure).await;
    assert_eq!(
        plan_ops(&d),
        [
            ("get-dev-endpoint".into(), true),
            ("delete-dev-endpoint".into(), false)
        ]
    );
    let Decision::Plan(plan) = &d else {
        unreachable!()
    };
    let poll = plan.steps[0].expect.as_ref().unwrap().poll.unwrap();
    assert_eq!(
        (poll.interval, poll.timeout),
        (Duration::from_secs(2), Duration::from_secs(60))
    );
    let description = plan.description.as_deref().unwrap();
    assert!(
        description.contains("securityConfiguration") && description.contains("publicKeys"),
        "{description}"
    );

    let compliant = record(
        "IAMUser",
        "dev",
        "CreateDevEndpoint",
        "glue.amazonaws.com",
        json!({"endpointName": "ep2", "securityConfiguration": "sc", "securityGroupIds": ["sg-1"],
               "subnetId": "subnet-1", "publicKeys": ["ssh-rsa A"]}),
    );
    let (reason, detail) = skip_of(&decide(rules.clone(), aws.clone(), compliant).await);
    assert_eq!(reason, SkipReason::NoRemediation);
    assert!(detail.contains("compliant"), "{detail}");
    // Only the insecure endpoint is looked up (does it still exist?).
    assert_eq!(aws.operations(), ["get-dev-endpoint"]);
    let gone = Arc::new(ScriptedAws::default().fail(
        "get-dev-endpoint",
        "An error occurred (EntityNotFoundException) when calling the GetDevEndpoint operation",
    ));
    let insecure = record(
        "IAMUser",
        "dev",
        "CreateDevEndpoint",
        "glue.amazonaws.com",
        json!({"endpointName": "ep1"}),
    );
    let (reason, detail) = skip_of(&decide(rules, gone, insecure).await);
    assert_eq!(reason, SkipReason::NoRemediation);
    assert!(detail.contains("no longer exists"), "{detail}");
}

#[test]
fn rule_files_in_json_and_yaml_agree_and_reject_mistakes() {
    let yaml = RuleSet::from_yaml(
        "ignore-principals: ['arn:aws:iam::*:role/r']\nrules:\n  - name: a\n    pattern: {source: [aws.iam], detail: {n: [{numeric: ['>', 1]}]}}\n    remediation: quarantine-iam-user\n    parameters: {admin-group: Admins, managed-policy-limit: 5}\n",
    )
    .unwrap();
    let json = RuleSet::from_json(
        r#"{"ignore-principals": ["arn:aws:iam::*:role/r"], "rules": [{"name": "a",
            "pattern": {"source": ["aws.iam"], "detail": {"n": [{"numeric": [">", 1]}]}},
            "remediation": "quarantine-iam-user", "parameters": {"admin-group": "Admins", "managed-policy-limit": 5}}]}"#,
    )
    .unwrap();
    assert_eq!(yaml.rules()[0].pattern, json.rules()[0].pattern);
    assert_eq!(yaml.rules()[0].remediation.name(), "quarantine-iam-user");
    assert_eq!(
        yaml.ignored_principals()[0].as_str(),
        "arn:aws:iam::*:role/r"
    );
    // A bare list of rules is accepted too.
    assert_eq!(
        RuleSet::from_yaml(
            "- {name: g, pattern: {source: [aws.glue]}, remediation: glue-dev-endpoint-guard}"
        )
        .unwrap()
        .rules()
        .len(),
        1
    );
    for (text, needle) in [
        (
            "rules:\n  - {name: a, pattern: {source: [aws.iam]}, remediation: quarantine-iam-user, parameters: {admin-grup: x}}",
            "admin-grup",
        ),
        (
            "rules:\n  - {name: a, pattern: {source: [{prefix: 1}]}, remediation: quarantine-iam-user}",
            "source[0].prefix",
        ),
        (
            "rules:\n  - {name: a, pattern: {source: [aws.iam]}, remediation: delete-everything}",
            "unknown remediation",
        ),
        (
            "rules:\n  - {name: a, pattern: {source: [aws.iam]}}",
            "remediation",
        ),
        ("ignore-principals: ['a**']\nrules: []", "consecutive"),
    ] {
        let e = RuleSet::from_yaml(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[tokio::test]
async fn rules_from_code_and_from_a_file_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(&path, r#"[{"name": "g", "pattern": {"source": ["aws.glue"]}, "remediation": "glue-dev-endpoint-guard"}]"#).unwrap();
    let from_file = RuleSet::from_path(&path).unwrap();
    let from_code = RuleSet::new().with_rule(Rule::new(
        "g",
        EventPattern::from_json(r#"{"source": ["aws.glue"]}"#).unwrap(),
        Arc::new(GlueDevEndpointGuard::default()),
    ));
    let event = record(
        "IAMUser",
        "dev",
        "CreateDevEndpoint",
        "glue.amazonaws.com",
        json!({"endpointName": "e"}),
    );
    let a = decide(from_file, Arc::new(ScriptedAws::default()), event.clone()).await;
    let b = decide(from_code, Arc::new(ScriptedAws::default()), event).await;
    assert_eq!(a, b);
    let e = RuleSet::from_path(dir.path().join("missing.yaml")).unwrap_err();
    assert!(e.to_string().contains("missing.yaml"), "{e}");
}

fn ready_when(status: &str) -> Value {
    json!({"DevEndpoint": {"EndpointName": "ep", "Status": status}})
}

fn wait_step(interval_ms: u64, timeout_ms: u64) -> Step {
    let pattern = EventPattern::from_json(r#"{"DevEndpoint":{"Status":["READY"]}}"#).unwrap();
    Step::read_only(Command::new(
        "aws",
        ["glue", "get-dev-endpoint", "--endpoint-name", "ep"],
    ))
    .with_expectation(Expectation::new(pattern).polled(
        Duration::from_millis(interval_ms),
        Duration::from_millis(timeout_ms),
    ))
}

/// Plans one fixed plan for every event.
#[derive(Debug)]
struct FixedPlanner(Vec<Step>);

#[async_trait]
impl RemediationPlanner for FixedPlanner {
    fn name(&self) -> &str {
        "fixed"
    }
    async fn plan(&self, events: &[Event]) -> Vec<remediation::Result<Decision>> {
        events
            .iter()
            .map(|e| {
                // Bound to the dev endpoint the fixed steps act on.
                Ok(Decision::Plan(Plan::new(
                    "fixed",
                    e.target()
                        .with_resource(remediation::model::Resource::named("ep")),
                    self.0.clone(),
                )))
            })
            .collect()
    }
}

#[tokio::test]
async fn dry_run_executes_read_only_steps_until_the_first_mutating_one() {
    let queries = Arc::new(
        ScriptedAws::default()
            .answer("get-dev-endpoint", ready_when("READY"))
            .answer("list-attached-user-policies", policies(1)),
    );
    let dry = DryRunExecutor::new(
        CommandPolicy::default(),
        ContextMap::new().with_aws_profile(ACCOUNT, "p"),
    )
    .with_record_limit(10)
    .with_query_executor(queries.clone());
    let dry = Arc::new(dry);
    let verify = Step::read_only(Command::new("aws", ["iam", "list-attached-user-policies"]))
        .with_expectation(Expectation::new(
            EventPattern::from_json(r#"{"AttachedPolicies":{"PolicyName":["never-there"]}}"#)
                .unwrap(),
        ));
    let planner = FixedPlanner(vec![
        wait_step(10, 1000),
        Step::new(Command::new(
            "aws",
            ["glue", "delete-dev-endpoint", "--endpoint-name", "ep"],
        )),
        verify,
    ]);
    let source = MemorySource::new();
    source
        .send(bytes::Bytes::from(
            json!({"eventID": "e1", "eventSource": "glue.amazonaws.com", "eventName": "CreateDevEndpoint",
                   "recipientAccountId": ACCOUNT, "awsRegion": "us-east-1"})
            .to_string(),
        ))
        .await
        .unwrap();
    source.close();
    let audit = Arc::new(MemoryAudit::new());
    Engine::builder(Arc::new(source), Arc::new(planner), dry.clone())
        .config(EngineConfig::default().with_settle_in_dry_run(true))
        .audit(audit.clone())
        .build()
        .run(CancellationToken::new())
        .await
        .unwrap();
    let records = audit.records();
    assert_eq!(records[0].decision, AuditDecision::Planned, "{records:#?}");
    let statuses: Vec<StepStatus> = records[0].steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Ok, StepStatus::Planned, StepStatus::Planned]
    );
    let read_only: Vec<bool> = records[0].steps.iter().map(|s| s.read_only).collect();
    assert_eq!(read_only, [true, false, false]);
    // The wait ran for real; the verification after the (unrun) delete did not.
    assert_eq!(queries.operations(), ["get-dev-endpoint"]);
    let recorded: Vec<(String, bool)> = dry
        .recorded()
        .iter()
        .map(|r| (r.command.argv()[2].to_string(), r.read_only))
        .collect();
    assert_eq!(
        recorded,
        [
            ("get-dev-endpoint".into(), true),
            ("delete-dev-endpoint".into(), false),
            ("list-attached-user-policies".into(), false)
        ]
    );
}

#[tokio::test]
async fn shutdown_abandons_a_long_read_only_wait() {
    let aws =
        Arc::new(ScriptedAws::default().answer("get-dev-endpoint", ready_when("PROVISIONING")));
    let planner = FixedPlanner(vec![
        wait_step(50, 600_000),
        Step::new(Command::new(
            "aws",
            ["glue", "delete-dev-endpoint", "--endpoint-name", "ep"],
        )),
    ]);
    let source = MemorySource::new();
    source
        .send(bytes::Bytes::from(
            json!({"eventID": "e1", "eventSource": "glue.amazonaws.com", "recipientAccountId": ACCOUNT})
                .to_string(),
        ))
        .await
        .unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(Arc::new(source), Arc::new(planner), aws.clone())
        .audit(audit.clone())
        .build();
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stop.cancel();
    });
    tokio::time::timeout(Duration::from_secs(10), engine.run(cancel))
        .await
        .expect("shutdown waited for the 10-minute wait")
        .unwrap();
    let records = audit.records();
    assert_eq!(records[0].decision, AuditDecision::Failed, "{records:#?}");
    assert_eq!(records[0].reason_code.as_deref(), Some("cancelled"));
    let ops = aws.operations();
    assert!(ops.len() >= 2, "the wait polled: {ops:?}");
    assert!(!ops.contains(&"delete-dev-endpoint".to_owned()), "{ops:?}");
}
