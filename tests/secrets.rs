//! No secret reaches a log line (at TRACE), an error or an audit record: the
//! worker runs with secrets in its environment, in a command's argv, in a
//! command's stderr (an env dump, a PEM key), in a URL's userinfo and in a
//! poison message's body, and none of them appears in what it writes.

mod support;

use support::StandIn;

const ACCOUNT: &str = "123456789012";

fn alert(id: &str, script: &str) -> String {
    serde_json::json!({
        "alertId": id, "status": "open", "accountId": ACCOUNT, "policyName": "test",
        "resource": {"region": "us-east-1", "name": support::resource_of(script)},
        "alertRemediationCli": script,
    })
    .to_string()
}

#[tokio::test]
async fn no_secret_in_trace_logs_errors_or_audit_records() {
    let bin = support::examples::example_binary("remediate").await;
    let standin = StandIn::new();
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        "S3CRET-ARGV-PASSWORD",
        "S3CRET-STDERR-ENV",
        "S3CRET-PEM-BODY",
        "S3CRET-BODY-FIELD",
        "S3CRET-URL-USERINFO",
        "S3CRET-ENV-PRISMA",
        "S3CRET-ENV-SERVICEBUS",
        "S3CRET-ENV-AZURE",
        "S3CRET-QUOTED-ARGV",
    ];
    let lines = [
        alert(
            "P-argv",
            "aws rds modify-db-instance --db-instance-identifier d --master-user-password S3CRET-ARGV-PASSWORD",
        ),
        alert("P-runs", "aws sts get-caller-identity"),
        alert(
            "P-url",
            "aws s3api get-bucket-policy --bucket https://admin:S3CRET-URL-USERINFO@evil.example/x",
        ),
        alert(
            "P-quoted",
            "aws iam create-policy --policy-name p --policy-document '{\"password\": \"S3CRET-QUOTED-ARGV\"}'",
        ),
        r#"{"not an alert": true, "password": "S3CRET-BODY-FIELD"#.to_owned(),
    ];
    let source = dir.path().join("alerts.jsonl");
    std::fs::write(&source, lines.join("\n") + "\n").unwrap();
    let audit = dir.path().join("audit.jsonl");
    let stderr_text = "An error occurred\nAWS_SECRET_ACCESS_KEY=S3CRET-STDERR-ENV\n\
         -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAS3CRET-PEM-BODY\n-----END RSA PRIVATE KEY-----\n";
    let output = tokio::process::Command::new(&bin)
        .args(["--source", &format!("file:{}", source.display())])
        .args(["--execute", "--summary", "json"])
        .args(["--account-profile", &format!("{ACCOUNT}=remediator")])
        .arg("--audit")
        .arg(&audit)
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env(
            "REMEDIATION_CHILD_ENV",
            format!("{},STANDIN_STDERR,STANDIN_EXIT_CODE", support::LOG_VAR),
        )
        .env("STANDIN_STDERR", stderr_text)
        .env("STANDIN_EXIT_CODE", "1")
        .env("RUST_LOG", "trace")
        .env("PRISMA_SECRET_KEY", "S3CRET-ENV-PRISMA")
        .env("SB_QUEUE_KEY", "S3CRET-ENV-SERVICEBUS")
        .env("AZURE_CLIENT_SECRET", "S3CRET-ENV-AZURE")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let records = std::fs::read_to_string(&audit).unwrap();
    // The run did what the test needs: logged at TRACE, ran one command
    // that failed with the secret-laden stderr, refused the others, kept the body.
    // (RUST_LOG=trace enables every level; the crate's most detailed lines are DEBUG.)
    for line in ["delivery settled", "step finished"] {
        assert!(stderr.contains(line), "no {line:?} in the log:\n{stderr}");
    }
    assert_eq!(standin.calls().len(), 1, "{stdout}\n{stderr}");
    assert_eq!(records.lines().count(), lines.len(), "{records}");
    assert!(records.contains("An error occurred"), "{records}");
    assert!(
        records.contains("not an alert"),
        "the poison body is not recorded: {records}"
    );
    assert!(records.contains("\"refusal\":\"weakens\""), "{records}");
    for secret in secrets {
        for (name, text) in [
            ("stdout", &*stdout),
            ("stderr", &*stderr),
            ("audit", &*records),
        ] {
            assert!(
                !text.contains(secret),
                "{secret} in the worker's {name}:\n{text}"
            );
        }
    }
}
