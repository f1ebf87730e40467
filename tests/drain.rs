//! Drain mode and dry runs of the queue workers, as binaries against a real
//! moto server (SQS) and the Service Bus REST emulator: `remediate --drain`
//! exits 0 on its own once the queue is empty, and the ported Prisma scripts
//! with `--dry-run` plan every alert through the Prisma API mock but run
//! nothing (the recording stand-in is first on `PATH` and records no call)
//! and settle nothing (the messages are still queued).
//!
//! Needs the `sqs` feature (the Prisma script cases also `prisma`, the Azure
//! one `servicebus`); `scripts/test` runs it with `--all-features`. Without
//! the venv these tests fail with instructions; they never skip.
#![cfg(feature = "sqs")]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::StandIn;
use support::moto::{MotoServer, aws_cli, venv};

const ACCOUNT: &str = "123456789012";

/// The documented Prisma Cloud IAM remediation: create a deny policy, attach it.
fn iam_script(user: &str) -> String {
    let policy = format!("deny-{user}");
    format!(
        "aws iam create-policy --policy-name {policy} --policy-document \
         '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Deny\",\"Action\":\"*\",\"Resource\":\"*\"}}]}}' \
         and aws iam attach-user-policy --user-name {user} --policy-arn arn:aws:iam::{ACCOUNT}:policy/{policy}"
    )
}

fn user_name(n: usize) -> String {
    format!("user-{n:03}")
}

/// A Prisma alert in the flat shape carrying its own CLI remediation (as
/// `tests/sqs.rs` sends them), for the `alert-cli` planner.
fn prisma_alert(n: usize) -> String {
    let script = iam_script(&user_name(n));
    serde_json::json!({
        "alertId": format!("P-{n}"),
        "alertStatus": "open",
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with risky permissions",
        "resourceName": support::resource_of(&script),
        "alertRemediationCli": script,
    })
    .to_string()
}

/// A queue in moto; returns its URL.
fn create_queue(moto: &MotoServer, name: &str) -> String {
    let out = aws_cli(
        &venv(),
        moto,
        &["sqs", "create-queue", "--queue-name", name],
    );
    let created: serde_json::Value = serde_json::from_str(&out).expect("create-queue JSON");
    created["QueueUrl"].as_str().expect("QueueUrl").to_owned()
}

fn send(moto: &MotoServer, url: &str, body: &str) {
    aws_cli(
        &venv(),
        moto,
        &[
            "sqs",
            "send-message",
            "--queue-url",
            url,
            "--message-body",
            body,
        ],
    );
}

/// Messages in the queue, visible plus in flight.
fn depth(moto: &MotoServer, url: &str) -> u64 {
    let out = aws_cli(
        &venv(),
        moto,
        &[
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            url,
            "--attribute-names",
            "All",
        ],
    );
    let attrs: serde_json::Value = serde_json::from_str(&out).expect("attributes JSON");
    [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    .iter()
    .map(|k| {
        attrs["Attributes"][k]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{k} in {out}"))
    })
    .sum()
}

/// Runs `cmd` to its end within `limit`: a worker that does not stop on its
/// own fails the test (and is killed).
async fn run_within(mut cmd: tokio::process::Command, limit: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = tokio::time::timeout(limit, cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("the worker did not exit on its own within {limit:?}"))
        .expect("run the example");
    (out, t0.elapsed())
}

/// `remediate --source sqs:URL --drain` (dry run) against moto: the worker's
/// environment cleared but for the AWS settings, the stand-ins first on PATH.
fn remediate(
    bin: &Path,
    moto: &MotoServer,
    url: &str,
    standin: &StandIn,
    home: &Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(["--source", &format!("sqs:{url}"), "--drain"])
        .args(["--account-profile", &format!("{ACCOUNT}=remediator")])
        .args(["--summary", "json"])
        .env_clear()
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .env("HOME", home)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("SQS_WAIT_TIME_SECONDS", "1");
    cmd
}

/// The JSON summary `--summary json` prints as the last stdout line.
fn json_summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary line {last:?}: {e}\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_drain_exits_once_the_queue_is_empty() {
    let bin = support::examples::example_binary("remediate").await;
    let moto = MotoServer::start(&venv());
    let url = create_queue(&moto, "drain-alerts");
    let alerts = 2;
    for n in 0..alerts {
        send(&moto, &url, &prisma_alert(n));
    }
    let standin = StandIn::new();
    let home = tempfile::tempdir().unwrap();

    // A queue holding alerts: each reported once, then the worker stops by itself.
    let (out, took) = run_within(
        remediate(&bin, &moto, &url, &standin, home.path()),
        Duration::from_secs(60),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let summary = json_summary(&out);
    assert_eq!(summary["received"], alerts, "{stdout}\n{stderr}");
    assert_eq!(summary["planned"], alerts, "{stdout}\n{stderr}");
    for n in 0..alerts {
        let id = format!("P-{n}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("planned") && l.split_whitespace().nth(1) == Some(&id)),
            "alert {id} not reported: {stdout}"
        );
    }
    assert!(stderr.contains("dry run: nothing ran"), "{stderr}");
    // A dry run runs nothing and settles nothing: the messages are still there.
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());
    assert_eq!(depth(&moto, &url), alerts as u64, "{stderr}");
    eprintln!("drained {alerts} alerts in {took:?}");

    // The same queue emptied: the first receive comes back empty and it exits at once.
    aws_cli(&venv(), &moto, &["sqs", "purge-queue", "--queue-url", &url]);
    assert_eq!(depth(&moto, &url), 0);
    let (out, took) = run_within(
        remediate(&bin, &moto, &url, &standin, home.path()),
        Duration::from_secs(60),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let summary = json_summary(&out);
    assert_eq!(summary["received"], 0, "{stderr}");
    assert!(
        took < Duration::from_secs(15),
        "an empty queue took {took:?} to drain (1 s receive wait): {stderr}"
    );
    assert!(standin.calls().is_empty(), "{:?}", standin.calls());
}

// ------------------------------------------------ the ported Prisma scripts

#[cfg(feature = "prisma")]
mod prisma {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    pub(super) const PRISMA_TOKEN: &str = "tok-drain-dry-run-51c7";

    /// The Prisma Cloud remediation API (the documented v1 shape, as the
    /// mocks in `tests/sqs.rs` and `tests/servicebus.rs` serve it): each
    /// alert id gets `script(id)`.
    pub(super) async fn prisma_mock(script: fn(&str) -> String) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/permission/alert/remediation"))
            .and(header("x-redlock-auth", PRISMA_TOKEN))
            .respond_with(move |request: &Request| {
                let body: serde_json::Value =
                    serde_json::from_slice(&request.body).expect("JSON body");
                let mut scripts = serde_json::Map::new();
                for id in body["alerts"].as_array().expect("alerts") {
                    let id = id.as_str().expect("id");
                    scripts.insert(id.to_owned(), script(id).into());
                }
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "alertIdVsCliScript": scripts,
                    "cliDescription": "Denies everything to the risky principal.",
                }))
            })
            .mount(&server)
            .await;
        server
    }

    /// The detailed summary a ported script prints on stderr as `NAME: {...}`.
    pub(super) fn detailed_summary(name: &str, stderr: &str) -> serde_json::Value {
        let prefix = format!("{name}: {{");
        let line = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no summary line: {stderr}"));
        serde_json::from_str(&line[name.len() + 2..]).expect("summary JSON")
    }

    /// The outcome of a dry run of a ported script: it exited 0 on its own,
    /// planned `alerts` alerts, settled nothing, ran nothing (the stand-in
    /// recorded no call; `steps_run` counts the steps the dry run planned),
    /// and said so.
    pub(super) fn assert_dry_run(name: &str, out: &Output, alerts: u64, standin: &StandIn) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
        let summary = detailed_summary(name, &stderr);
        assert_eq!(summary["received"], alerts, "{stderr}");
        assert_eq!(summary["planned"], alerts, "{stderr}");
        assert_eq!(summary["executed"], 0, "{stderr}");
        assert_eq!(summary["acked"], 0, "{stderr}");
        assert!(
            stderr.contains(&format!("{name}: dry run: nothing ran")),
            "{stderr}"
        );
        assert!(!stderr.contains(PRISMA_TOKEN), "token in the output");
        assert!(standin.calls().is_empty(), "{:?}", standin.calls());
    }

    /// `sqs_prisma_iam --dry-run` drains a moto queue: every alert planned by
    /// the Prisma API mock, nothing run, every message still queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqs_prisma_iam_dry_run_plans_runs_nothing_and_leaves_the_queue() {
        let bin = support::examples::example_binary("sqs_prisma_iam").await;
        let moto = MotoServer::start(&venv());
        let url = create_queue(&moto, "dry-run-alerts");
        let alerts = 3;
        for n in 0..alerts {
            let body = serde_json::json!({
                "alertId": format!("P-{n}"),
                "alertStatus": "open",
                "accountId": ACCOUNT,
                "cloudType": "aws",
                "resourceRegionId": "global",
                "resourceName": user_name(n),
                "policyName": "AWS IAM user with risky permissions",
            });
            send(&moto, &url, &body.to_string());
        }
        let api = prisma_mock(|id| {
            let n: usize = id.trim_start_matches("P-").parse().expect("P-n id");
            iam_script(&user_name(n))
        })
        .await;
        let standin = StandIn::new();
        let home = tempfile::tempdir().unwrap();
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["--allow-http", "--dry-run"])
            .env_clear()
            .env("PATH", standin.path_env())
            .env(support::LOG_VAR, standin.log_path())
            .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
            .env("HOME", home.path())
            .env("SQS_QUEUE_NAME", "dry-run-alerts")
            .env("API_ENDPOINT", api.uri())
            .env("AUTH_KEY", PRISMA_TOKEN)
            .env("ACCOUNT_PROFILES", format!("{ACCOUNT}=remediator"))
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1");
        let (out, _) = run_within(cmd, Duration::from_secs(120)).await;
        assert_dry_run("sqs_prisma_iam", &out, alerts as u64, &standin);
        assert!(
            !api.received_requests().await.unwrap_or_default().is_empty(),
            "the Prisma API was not asked"
        );
        assert_eq!(depth(&moto, &url), alerts as u64);
    }
}

/// `servicebus_prisma_iam --dry-run` drains an emulated queue: every Azure
/// alert planned by the Prisma API mock, no `az` run, every message still
/// in the queue.
#[cfg(all(feature = "servicebus", feature = "prisma"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicebus_prisma_iam_dry_run_plans_runs_nothing_and_leaves_the_queue() {
    use prisma::{PRISMA_TOKEN, assert_dry_run, prisma_mock};
    use support::servicebus::{EntityConfig, ROOT_RULE, ServiceBusEmulator};

    const NS: &str = "contoso-alerts";
    const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-111122223333";
    let bin = support::examples::example_binary("servicebus_prisma_iam").await;
    let emu = ServiceBusEmulator::start(NS).await;
    // Locked longer than the run: a dry run settles nothing, and the drain
    // ends at the first empty receive.
    emu.create_queue(
        "prisma",
        EntityConfig {
            lock_duration: Duration::from_secs(30),
            max_delivery_count: 5,
        },
    );
    let alerts = 3;
    for n in 0..alerts {
        let body = serde_json::json!({
            "alertId": format!("AZ-{n}"),
            "alertStatus": "open",
            "accountId": SUBSCRIPTION,
            "accountName": "sub-0",
            "cloudType": "azure",
            "resourceRegionId": "westeurope",
            "policyId": "pol-azure-nsg",
            "policyName": "Azure Network Security Group allows SSH from the internet",
            "severity": "high",
            "resourceId": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{n}/providers/Microsoft.Network/networkSecurityGroups/nsg-{n}"),
        });
        emu.send("prisma", body.to_string().as_bytes());
    }
    let api = prisma_mock(|id| {
        let n: usize = id.trim_start_matches("AZ-").parse().expect("AZ-n id");
        format!(
            "az network nsg rule update --resource-group rg-{n} --nsg-name nsg-{n} \
             --name allow-ssh --access Deny"
        )
    })
    .await;
    let standin = StandIn::new();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(["--allow-http", "--dry-run"])
        .env_clear()
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .env("HOME", home.path())
        .env("SB_QUEUE_NAME_SPACE", NS)
        .env("SB_QUEUE_NAME", "prisma")
        .env("SB_QUEUE_KEY_NAME", ROOT_RULE)
        .env("SB_QUEUE_KEY", emu.root_key())
        .env("SERVICEBUS_ENDPOINT", emu.endpoint())
        .env("API_ENDPOINT", api.uri())
        .env("AUTH_KEY", PRISMA_TOKEN)
        .env("AZURE_SUBSCRIPTIONS", SUBSCRIPTION);
    let (out, _) = run_within(cmd, Duration::from_secs(90)).await;
    assert_dry_run("servicebus_prisma_iam", &out, alerts as u64, &standin);
    assert!(
        !api.received_requests().await.unwrap_or_default().is_empty(),
        "the Prisma API was not asked"
    );
    let left = emu.messages("prisma");
    assert_eq!(left.len(), alerts, "{left:?}");
    assert!(emu.dead_letter_bodies("prisma").is_empty());
}
