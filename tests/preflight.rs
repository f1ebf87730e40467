//! `remediate check` (issue 34: the preflight) against moto with the real
//! aws CLI (v1, from the test venv): an account whose profile reaches
//! another account, a missing dedup table and the aws CLI v1 are each
//! reported, and the exit status is 1; the same worker with a good setup
//! passes (the v1 CLI as a warning) with exit 0.
//!
//! Needs the venv that `scripts/test` creates (`moto[server]`, `awscli`).

mod support;

use remediation::engine::dedup_dynamodb::DynamoDedup;
use remediation::guardrails::DynamoDbGuardrails;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::moto::{MotoServer, remediator_env, venv};

/// moto's account: every caller is in it.
const ACCOUNT: &str = "123456789012";

/// Runs `remediate FLAGS check [--json]` against `moto`: its exit code and
/// stdout (the worker's flags go before the subcommand).
async fn check(bin: &Path, moto: &MotoServer, dir: &Path, flags: &[&str]) -> (i32, String) {
    let json = flags.contains(&"--json");
    let flags: Vec<&str> = flags.iter().copied().filter(|f| *f != "--json").collect();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(&flags)
        .arg("check")
        .args(json.then_some("--json"))
        .env_clear();
    for (k, v) in remediator_env(&venv(), dir, &moto.endpoint()) {
        cmd.env(k, v);
    }
    let out = cmd
        .env("HOME", dir)
        .env("REMEDIATION_CHILD_ENV", "AWS_ENDPOINT_URL")
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .kill_on_drop(true)
        .output()
        .await
        .expect("remediate check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("testing"),
        "a credential in stderr: {stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The checks of a `--json` report, by name: (status, detail).
fn by_name(stdout: &str) -> BTreeMap<String, (String, String)> {
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["status"].as_str().unwrap().to_owned(),
                    c["detail"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_broken_part_and_passes_a_good_setup() {
    let bin = support::examples::example_binary("remediate").await;
    let moto = MotoServer::start(&venv());
    let dir = tempfile::tempdir().unwrap();
    let wrong = "111111111111";
    let guardrails = dir.path().join("guardrails.yaml");
    std::fs::write(
        &guardrails,
        "store: { dynamodb: { table: remediation-guardrails } }\n\
         rate_limits: { default: { per_second: 2, burst: 2 } }\n",
    )
    .unwrap();
    let guardrails = guardrails.display().to_string();

    // Broken: one account's profile reaches another account, the dedup
    // table is missing, and the aws CLI is v1.
    let (code, stdout) = check(
        &bin,
        &moto,
        dir.path(),
        &[
            "--json",
            "--account-profile",
            &format!("{ACCOUNT}=remediator"),
            "--account-profile",
            &format!("{wrong}=remediator"),
            "--dedup-table",
            "remediation-dedup",
            "--guardrails",
            &guardrails,
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    let checks = by_name(&stdout);
    let (status, detail) = &checks["cli aws"];
    assert_eq!(status, "warning", "{detail}");
    assert!(detail.starts_with("aws-cli/1."), "{detail}");
    let (status, detail) = &checks[&format!("aws account {ACCOUNT}")];
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.contains(&format!(":{ACCOUNT}:")), "{detail}");
    assert!(detail.contains("profile remediator"), "{detail}");
    let (status, detail) = &checks[&format!("aws account {wrong}")];
    assert_eq!(status, "failed", "{detail}");
    assert!(
        detail.contains(&format!("is account {ACCOUNT}, not {wrong}")),
        "{detail}"
    );
    let (status, detail) = &checks["dedup table remediation-dedup"];
    assert_eq!(status, "failed", "{detail}");
    assert!(detail.contains("does not exist"), "{detail}");
    assert_eq!(checks[&format!("guardrails {guardrails}")].0, "ok");
    let (status, detail) = &checks["guardrail table remediation-guardrails"];
    assert_eq!(status, "failed", "{detail}");
    assert!(detail.contains("does not exist"), "{detail}");
    assert_eq!(checks.len(), 6, "{checks:?}");

    // The table for a person says the same.
    let (code, table) = check(
        &bin,
        &moto,
        dir.path(),
        &["--account-profile", &format!("{wrong}=remediator")],
    )
    .await;
    assert_eq!(code, 1, "{table}");
    assert!(
        table.contains(&format!("FAILED   aws account {wrong}")),
        "{table}"
    );
    assert!(
        table.trim_end().ends_with("1 of 2 checks failed"),
        "{table}"
    );

    // Fixed: the table exists, only the right account is mapped.
    DynamoDedup::builder()
        .with_table("remediation-dedup")
        .with_endpoint(moto.endpoint())
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .build()
        .await
        .unwrap()
        .create_table()
        .await
        .unwrap();
    DynamoDbGuardrails::builder()
        .with_table("remediation-guardrails")
        .with_endpoint(moto.endpoint())
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .build()
        .await
        .unwrap()
        .create_table()
        .await
        .unwrap();
    let (code, stdout) = check(
        &bin,
        &moto,
        dir.path(),
        &[
            "--json",
            "--account-profile",
            &format!("{ACCOUNT}=remediator"),
            "--dedup-table",
            "remediation-dedup",
            "--guardrails",
            &guardrails,
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    let checks = by_name(&stdout);
    assert_eq!(checks["dedup table remediation-dedup"].0, "ok");
    assert_eq!(checks["guardrail table remediation-guardrails"].0, "ok");
    assert_eq!(checks[&format!("aws account {ACCOUNT}")].0, "ok");
    assert_eq!(checks.len(), 5, "{checks:?}");
}

/// `--planner prisma`: the login is checked (`POST /login` with the access
/// key pair), and a refused key is a failed check naming what to fix —
/// without the key in any output.
#[cfg(feature = "prisma")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_logs_in_to_prisma() {
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const KEY_ID: &str = "preflight-key-id";
    const SECRET: &str = "preflight-secret-value";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .and(body_json(
            serde_json::json!({"username": KEY_ID, "password": SECRET}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"token": "preflight-token"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let bin = support::examples::example_binary("remediate").await;
    let path = format!(
        "{}:{}",
        venv().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |secret: &'static str| {
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args(["--planner", "prisma", "--allow-http", "check", "--json"])
            .env_clear()
            .env("PATH", &path)
            .env("API_ENDPOINT", server.uri())
            .env("PRISMA_ACCESS_KEY_ID", KEY_ID)
            .env("PRISMA_SECRET_KEY", secret)
            .kill_on_drop(true);
        cmd.output()
    };
    let name = format!("prisma api {}/", server.uri());
    let good = run(SECRET).await.unwrap();
    let stdout = String::from_utf8_lossy(&good.stdout).into_owned();
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    let checks = by_name(&stdout);
    assert_eq!(
        checks[&name],
        ("ok".to_owned(), "logged in with the access key".to_owned()),
        "{checks:?}"
    );
    let bad = run("not-the-secret").await.unwrap();
    let stdout = String::from_utf8_lossy(&bad.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    let (status, detail) = &by_name(&stdout)[&name];
    assert_eq!(status, "failed");
    assert!(detail.contains("login refused (HTTP 401"), "{detail}");
    for out in [&stdout, &stderr] {
        assert!(
            !out.contains("not-the-secret") && !out.contains(SECRET),
            "{out}"
        );
    }
}
