//! CloudTrail rules end to end: CloudTrail events (EventBridge envelopes and
//! bare records, fed through the file source; with the `sqs` feature also
//! put on moto's event bus and routed by an EventBridge rule to an SQS queue
//! that `SqsSource` reads) are planned by the
//! `cloudtrail` planner from a YAML rule file and run with the real `aws` CLI
//! (v1, from the test venv) against a moto server; the effect is checked
//! through moto's IAM and Glue APIs (boto3).
//!
//! Needs the venv that `scripts/test` creates; without it this test fails
//! with instructions rather than passing silently.

mod support;

use remediation::engine::{AuditDecision, AuditRecord, Engine, MemoryAudit};
use remediation::executor::{
    CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor, StepStatus,
};
use remediation::plan::CommandPolicy;
use remediation::planner::CloudTrailPlanner;
use remediation::rules::RuleSet;
use remediation::source::FileSource;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::moto::{MotoServer, venv};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "123456789012";

const RULES: &str = r#"
ignore-principals:
  - "arn:aws:iam::*:user/remediator"
  - "arn:aws:iam::*:role/remediator"
rules:
  - name: quarantine-iam-writers
    pattern:
      source: [aws.iam]
      detail-type: [AWS API Call via CloudTrail]
      detail:
        eventName: [{prefix: Create}, {prefix: Attach}, {prefix: Put}]
        errorCode: [{exists: false}]
    remediation: quarantine-iam-user
    parameters:
      admin-group: Admins
  - name: insecure-glue-dev-endpoints
    pattern:
      source: [aws.glue]
      detail:
        eventName: [CreateDevEndpoint]
    remediation: glue-dev-endpoint-guard
    parameters:
      poll-interval-secs: 1
      ready-timeout-secs: 30
"#;

/// Runs a boto3 script in the venv against moto; returns its stdout as JSON.
fn boto(venv: &Path, moto: &MotoServer, script: &str) -> Value {
    let out = std::process::Command::new(venv.join("bin").join("python"))
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn iam_call(id: &str, user: &str, event_name: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": format!("AIDA{user}"),
            "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            "accountId": ACCOUNT,
            "userName": user
        },
        "eventTime": "2026-11-23T10:00:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "requestParameters": {"userName": format!("new-{id}")},
        "eventID": id,
        "eventType": "AwsApiCall",
        "recipientAccountId": ACCOUNT
    })
}

/// The record as EventBridge delivers it.
fn enveloped(record: Value) -> Value {
    let source = format!(
        "aws.{}",
        record["eventSource"]
            .as_str()
            .unwrap()
            .trim_end_matches(".amazonaws.com")
    );
    json!({
        "version": "0", "id": format!("eb-{}", record["eventID"].as_str().unwrap()),
        "detail-type": "AWS API Call via CloudTrail", "source": source,
        "account": ACCOUNT, "time": "2026-11-23T10:00:00Z", "region": "us-east-1",
        "resources": [], "detail": record
    })
}

fn glue_call(id: &str, request: Value) -> Value {
    let mut record = iam_call(id, "glue-dev", "CreateDevEndpoint");
    record["eventSource"] = json!("glue.amazonaws.com");
    record["requestParameters"] = request;
    record
}

struct Aws {
    dir: tempfile::TempDir,
    path: String,
    endpoint: String,
}

impl Aws {
    fn new(venv: &Path, moto: &MotoServer) -> Aws {
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
            venv.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Aws {
            dir,
            path,
            endpoint: moto.endpoint(),
        }
    }

    fn contexts(&self) -> ContextMap {
        ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=remediator")).unwrap()
    }

    fn process(&self) -> ProcessExecutor {
        ProcessExecutor::new(CommandPolicy::default(), self.contexts())
            .with_env_var("PATH", &self.path)
            .with_env_var("AWS_CONFIG_FILE", self.file("config"))
            .with_env_var("AWS_SHARED_CREDENTIALS_FILE", self.file("credentials"))
            .with_env_var("AWS_ENDPOINT_URL", &self.endpoint)
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

async fn run(
    events: &[Value],
    rules: &Path,
    executor: Arc<dyn CommandExecutor>,
    dir: &Path,
    name: &str,
) -> Vec<AuditRecord> {
    let path: PathBuf = dir.join(name);
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let planner = CloudTrailPlanner::new(RuleSet::from_path(rules).unwrap(), Arc::clone(&executor));
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(FileSource::open(&path).unwrap()),
        Arc::new(planner),
        executor,
    )
    .audit(audit.clone())
    .build();
    engine.run(CancellationToken::new()).await.unwrap();
    audit.records()
}

fn by_event<'a>(records: &'a [AuditRecord], id: &str) -> &'a AuditRecord {
    records
        .iter()
        .find(|r| r.event_id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("no audit record for {id}: {records:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_rules_quarantine_users_and_delete_insecure_dev_endpoints() {
    let venv = venv();
    let moto = MotoServer::start(&venv);
    let aws = Aws::new(&venv, &moto);
    boto(
        &venv,
        &moto,
        r#"
import boto3, json
iam = boto3.client("iam")
glue = boto3.client("glue")
for u in ["alice", "bob", "carol", "dave", "remediator", "rolf"]:
    iam.create_user(UserName=u)
iam.create_group(GroupName="Admins")
iam.add_user_to_group(GroupName="Admins", UserName="bob")
doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})
for i in range(10):
    arn = iam.create_policy(PolicyName="p%d" % i, PolicyDocument=doc)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="carol", PolicyArn=arn)
glue.create_dev_endpoint(EndpointName="insecure-ep", RoleArn="arn:aws:iam::123456789012:role/glue")
glue.create_dev_endpoint(EndpointName="secure-ep", RoleArn="arn:aws:iam::123456789012:role/glue",
    SecurityConfiguration="sc", SecurityGroupIds=["sg-1"], SubnetId="subnet-1", PublicKeys=["ssh-rsa AAAA"])
print("{}")
"#,
    );
    let rules = aws.dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();

    let mut assumed = iam_call("e-role", "rolf", "CreateUser");
    assumed["userIdentity"] = json!({"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/dev/rolf"),
        "accountId": ACCOUNT, "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/dev"), "userName": "dev"}}});
    let mut failed = iam_call("e-failed", "rolf", "CreateUser");
    failed["errorCode"] = json!("AccessDenied");
    let events = vec![
        enveloped(iam_call("e-alice", "alice", "CreateUser")),
        iam_call("e-bob", "bob", "CreateUser"),
        enveloped(iam_call("e-carol", "carol", "AttachUserPolicy")),
        enveloped(iam_call("e-self", "remediator", "CreateUser")),
        enveloped(assumed),
        enveloped(failed),
        enveloped(iam_call("e-read", "rolf", "GetUser")),
        enveloped(glue_call(
            "e-insecure",
            json!({"endpointName": "insecure-ep", "roleArn": "arn:aws:iam::123456789012:role/glue"}),
        )),
        glue_call(
            "e-secure",
            json!({"endpointName": "secure-ep", "securityConfiguration": "sc",
            "securityGroupIds": ["sg-1"], "subnetId": "subnet-1", "publicKeys": ["ssh-rsa AAAA"]}),
        ),
    ];
    let process: Arc<dyn CommandExecutor> = Arc::new(aws.process());
    let records = run(&events, &rules, process, aws.dir.path(), "events.jsonl").await;

    let alice = by_event(&records, "e-alice");
    assert_eq!(alice.decision, AuditDecision::Executed, "{alice:#?}");
    let argv: Vec<&str> = alice.steps.iter().map(|s| s.argv[2].as_str()).collect();
    assert_eq!(
        argv,
        [
            "create-policy",
            "attach-user-policy",
            "list-attached-user-policies"
        ]
    );
    for (id, why) in [
        ("e-bob", "admin group"),
        ("e-self", "remediator's own identity"),
        ("e-role", "AssumedRole"),
        ("e-failed", "no rule matches"),
        ("e-read", "no rule matches"),
        ("e-secure", "compliant"),
    ] {
        let r = by_event(&records, id);
        assert_eq!(r.decision, AuditDecision::Skipped, "{id}: {r:#?}");
        assert!(
            r.reason.as_deref().unwrap_or("").contains(why),
            "{id}: {r:#?}"
        );
    }
    let carol = by_event(&records, "e-carol");
    assert_eq!(carol.decision, AuditDecision::Executed, "{carol:#?}");
    assert_eq!(carol.steps[0].argv[2], "put-user-policy");
    let glue = by_event(&records, "e-insecure");
    assert_eq!(glue.decision, AuditDecision::Executed, "{glue:#?}");
    assert_eq!(glue.steps[1].argv[2], "delete-dev-endpoint");

    // What moto says now.
    let state = boto(
        &venv,
        &moto,
        r#"
import boto3, json
iam = boto3.client("iam")
glue = boto3.client("glue")
out = {}
for u in ["alice", "bob", "carol", "dave", "remediator", "rolf"]:
    out[u] = {
        "attached": [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=u)["AttachedPolicies"]],
        "inline": iam.list_user_policies(UserName=u)["PolicyNames"],
    }
out["endpoints"] = sorted(e["EndpointName"] for e in glue.get_dev_endpoints()["DevEndpoints"])
print(json.dumps(out))
"#,
    );
    assert_eq!(
        state["alice"]["attached"],
        json!(["RemediationQuarantineDeny"])
    );
    assert_eq!(state["alice"]["inline"], json!([]));
    for untouched in ["bob", "remediator", "rolf", "dave"] {
        assert_eq!(
            state[untouched]["attached"],
            json!([]),
            "{untouched}: {state}"
        );
        assert_eq!(
            state[untouched]["inline"],
            json!([]),
            "{untouched}: {state}"
        );
    }
    assert_eq!(state["carol"]["attached"].as_array().unwrap().len(), 10);
    assert_eq!(
        state["carol"]["inline"],
        json!(["RemediationQuarantineDenyInline"])
    );
    assert_eq!(state["endpoints"], json!(["secure-ep"]));

    // Dry run: the read-only queries run for real (the plan depends on them:
    // the policy exists now, so it is not created again), the mutating steps
    // and the verification after them are only planned, and nothing changes.
    let dry: Arc<dyn CommandExecutor> = Arc::new(
        DryRunExecutor::new(CommandPolicy::default(), aws.contexts())
            .with_query_executor(Arc::new(aws.process())),
    );
    let records = run(
        &[enveloped(iam_call("e-dave", "dave", "CreateUser"))],
        &rules,
        dry,
        aws.dir.path(),
        "dry.jsonl",
    )
    .await;
    let dave = by_event(&records, "e-dave");
    assert_eq!(dave.decision, AuditDecision::Planned, "{dave:#?}");
    let steps: Vec<(&str, StepStatus)> = dave
        .steps
        .iter()
        .map(|s| (s.argv[2].as_str(), s.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("attach-user-policy", StepStatus::Planned),
            ("list-attached-user-policies", StepStatus::Planned)
        ]
    );
    let dave_state = boto(
        &venv,
        &moto,
        r#"
import boto3, json
print(json.dumps(boto3.client("iam").list_attached_user_policies(UserName="dave")["AttachedPolicies"]))
"#,
    );
    assert_eq!(dave_state, json!([]));
}

/// The worker example next to this test binary (`cargo test` builds examples).
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join("remediate");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` (which builds the examples) or \
         `cargo build --example remediate` first",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_runs_cloudtrail_rules_from_a_file() {
    let venv = venv();
    let moto = MotoServer::start(&venv);
    let aws = Aws::new(&venv, &moto);
    boto(
        &venv,
        &moto,
        r#"
import boto3
iam = boto3.client("iam")
for u in ["erin", "remediator"]:
    iam.create_user(UserName=u)
iam.create_group(GroupName="Admins")
print("{}")
"#,
    );
    let rules = aws.dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let events = aws.dir.path().join("events.jsonl");
    let lines = [
        enveloped(iam_call("w-erin", "erin", "CreateUser")).to_string(),
        enveloped(iam_call("w-self", "remediator", "CreateUser")).to_string(),
    ];
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let output = tokio::process::Command::new(worker_binary())
        .arg("--source")
        .arg(format!("file:{}", events.display()))
        .args(["--planner", "cloudtrail", "--rules"])
        .arg(&rules)
        .args(["--execute", "--summary", "json", "--quiet"])
        .args(["--account-profile", &format!("{ACCOUNT}=remediator")])
        .env("PATH", &aws.path)
        .env("AWS_CONFIG_FILE", aws.file("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", aws.file("credentials"))
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("REMEDIATION_CHILD_ENV", "AWS_ENDPOINT_URL")
        .output()
        .await
        .expect("run the worker");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["executed"], 1, "{summary}");
    assert_eq!(summary["skipped"], 1, "{summary}");
    let state = boto(
        &venv,
        &moto,
        r#"
import boto3, json
iam = boto3.client("iam")
print(json.dumps({u: [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=u)["AttachedPolicies"]]
                  for u in ["erin", "remediator"]}))
"#,
    );
    assert_eq!(
        state,
        json!({"erin": ["RemediationQuarantineDeny"], "remediator": []})
    );
}

/// The same rules, but the events reach the engine the way they do in AWS:
/// CloudTrail-shaped events put on moto's default event bus, routed by an
/// EventBridge rule to an SQS queue, received by `SqsSource`.
#[cfg(feature = "sqs")]
mod eventbridge_sqs {
    use super::*;
    use remediation::engine::SettleAction;
    use remediation::model::EventKind;
    use remediation::source::AlertSource;
    use remediation::source::sqs::SqsSource;
    use std::time::Duration;

    use super::support::run_until;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_eventbridge_rule_routes_cloudtrail_events_through_sqs_to_the_quarantine() {
        let venv = venv();
        let moto = MotoServer::start(&venv);
        let aws = Aws::new(&venv, &moto);
        let rules = aws.dir.path().join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap();

        // IAM users, then the EventBridge → SQS wiring, then the events:
        // two IAM calls the rule routes, one Glue call it does not.
        let entries: Vec<Value> = [
            iam_call("eb-ivy", "ivy", "CreateUser"),
            iam_call("eb-bob", "bob", "CreateUser"),
            glue_call("eb-glue", json!({"endpointName": "ep"})),
        ]
        .into_iter()
        .map(|record| {
            let e = enveloped(record);
            json!({"Source": e["source"], "DetailType": e["detail-type"],
                   "Detail": e["detail"].to_string()})
        })
        .collect();
        let setup = boto(
            &venv,
            &moto,
            &format!(
                r#"
import boto3, json
iam = boto3.client("iam")
for u in ["ivy", "bob", "remediator"]:
    iam.create_user(UserName=u)
iam.create_group(GroupName="Admins")
iam.add_user_to_group(GroupName="Admins", UserName="bob")
sqs = boto3.client("sqs")
events = boto3.client("events")
url = sqs.create_queue(QueueName="cloudtrail-events")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
events.put_rule(Name="iam-api-calls", EventBusName="default", EventPattern=json.dumps(
    {{"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"]}}))
targets = events.put_targets(Rule="iam-api-calls", EventBusName="default", Targets=[{{"Id": "queue", "Arn": arn}}])
assert targets["FailedEntryCount"] == 0, targets
put = events.put_events(Entries=json.loads({entries:?}))
assert put["FailedEntryCount"] == 0, put
# What moto delivered, without taking it (visibility 0).
bodies = [json.loads(m["Body"]) for m in sqs.receive_message(
    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1).get("Messages", [])]
print(json.dumps({{"url": url, "event_ids": [e["EventId"] for e in put["Entries"]], "bodies": bodies}}))
"#,
                entries = Value::from(entries).to_string(),
            ),
        );
        let url = setup["url"].as_str().expect("queue url").to_owned();

        // moto routed the two IAM calls (not the Glue one) as EventBridge
        // envelopes whose `detail` is the CloudTrail record.
        let bodies = setup["bodies"].as_array().expect("bodies");
        let mut routed: Vec<&str> = bodies
            .iter()
            .map(|b| b["detail"]["eventID"].as_str().expect("detail.eventID"))
            .collect();
        routed.sort_unstable();
        assert_eq!(routed, ["eb-bob", "eb-ivy"], "{setup}");
        for b in bodies {
            assert_eq!(b["source"], "aws.iam", "{b}");
            assert_eq!(b["detail-type"], "AWS API Call via CloudTrail", "{b}");
            assert!(
                setup["event_ids"].as_array().unwrap().contains(&b["id"]),
                "the envelope id is the put_events EventId: {setup}"
            );
        }

        let source = SqsSource::builder()
            .with_endpoint(moto.endpoint())
            .with_region("us-east-1")
            .with_static_credentials("testing", "testing")
            .with_queue_url(&url)
            .with_wait(Duration::from_secs(1))
            .build()
            .await
            .expect("sqs source");
        let source_name = source.name().to_owned();
        let process: Arc<dyn CommandExecutor> = Arc::new(aws.process());
        let planner =
            CloudTrailPlanner::new(RuleSet::from_path(&rules).unwrap(), Arc::clone(&process));
        let audit = Arc::new(MemoryAudit::new());
        let engine = Engine::builder(Arc::new(source), Arc::new(planner), process)
            .audit(audit.clone())
            .build();
        let (summary, reached) =
            run_until(&engine, Duration::from_secs(30), |s| s.acked >= 2).await;
        let records = audit.records();
        assert!(reached, "{summary:?} {records:#?}");
        assert_eq!(summary.received, 2, "{summary:?}");
        assert_eq!(summary.executed, 1, "{summary:?}");
        assert_eq!(summary.skipped, 1, "{summary:?}");
        assert_eq!(summary.failed + summary.rejected, 0, "{summary:?}");
        assert_eq!(records.len(), 2, "{records:#?}");
        for r in &records {
            assert_eq!(r.source, source_name, "{r:#?}");
            assert_eq!(r.kind, EventKind::Cloudtrail, "{r:#?}");
            assert_eq!(r.account_id.as_deref(), Some(ACCOUNT), "{r:#?}");
            assert_eq!(r.settle, SettleAction::Ack, "{r:#?}");
        }

        let ivy = by_event(&records, "eb-ivy");
        assert_eq!(ivy.decision, AuditDecision::Executed, "{ivy:#?}");
        assert_eq!(ivy.reason_code.as_deref(), Some("executed"), "{ivy:#?}");
        let argv: Vec<&str> = ivy.steps.iter().map(|s| s.argv[2].as_str()).collect();
        assert_eq!(
            argv,
            [
                "create-policy",
                "attach-user-policy",
                "list-attached-user-policies"
            ]
        );
        let bob = by_event(&records, "eb-bob");
        assert_eq!(bob.decision, AuditDecision::Skipped, "{bob:#?}");
        assert_eq!(bob.reason_code.as_deref(), Some("ignored"), "{bob:#?}");
        assert!(
            bob.reason.as_deref().unwrap_or("").contains("admin group"),
            "{bob:#?}"
        );
        assert!(bob.steps.iter().all(|s| s.argv[2] != "attach-user-policy"));

        // What moto says now: ivy quarantined, bob and the remediator not,
        // and the queue drained.
        let state = boto(
            &venv,
            &moto,
            &format!(
                r#"
import boto3, json
iam = boto3.client("iam")
out = {{u: [p["PolicyName"] for p in iam.list_attached_user_policies(UserName=u)["AttachedPolicies"]]
        + iam.list_user_policies(UserName=u)["PolicyNames"] for u in ["ivy", "bob", "remediator"]}}
attrs = boto3.client("sqs").get_queue_attributes(QueueUrl={url:?}, AttributeNames=["All"])["Attributes"]
out["queue"] = [int(attrs[k]) for k in ["ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]]
print(json.dumps(out))
"#
            ),
        );
        assert_eq!(
            state,
            json!({"ivy": ["RemediationQuarantineDeny"], "bob": [], "remediator": [], "queue": [0, 0, 0]})
        );
    }
}
