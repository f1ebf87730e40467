//! Parsing differentials proven with the real CLIs: for each argv, what the
//! real aws CLI v1 (against moto) or the real gcloud (against a loopback
//! HTTP server standing in for the Google APIs) actually did with it, and
//! that the command policy refuses it with the expected code.
//!
//! * aws: the command is run directly (no executor) and its effect read
//!   back from moto with the aws CLI.
//! * gcloud: a private `CLOUDSDK_CONFIG` points `api_endpoint_overrides` at
//!   a loopback server started here (it records each request body and
//!   answers minimal JSON) and `auth/access_token_file` at a file holding
//!   any token: the real gcloud runs without a login, and the body it sends
//!   shows what it made of the flags.

mod support;

use remediation::Refusal;
use remediation::model::{Cloud, Resource, Target};
use remediation::plan::{Command, CommandPolicy, Step};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use support::moto::{MotoServer, aws_cli, venv};

const ACCOUNT: &str = "123456789012";
const PROJECT: &str = "acme-prod-1";
const BUCKET: &str = "acme-logs";

/// The refusal the default policy gives `argv` for a finding about `resource`.
fn refusal(cloud: Cloud, resource: &str, argv: &[&str]) -> Refusal {
    let account = match cloud {
        Cloud::Gcp => PROJECT,
        _ => ACCOUNT,
    };
    let target = Target::new(cloud, Some(account.to_owned()))
        .with_region("us-east-1")
        .with_resource(Resource::named(resource));
    let step = Step::new(Command::new(argv[0], argv[1..].iter().copied()));
    match CommandPolicy::default().check_for(&step, &target) {
        Ok(()) => panic!("{argv:?} passed the check"),
        Err(e) => e
            .refusal()
            .unwrap_or_else(|| panic!("{argv:?}: not a refusal: {e}")),
    }
}

fn assert_refused(cloud: Cloud, resource: &str, argv: &[&str], expected: &[Refusal]) {
    let code = refusal(cloud, resource, argv);
    assert!(
        expected.contains(&code),
        "{argv:?} refused as {code:?}, expected one of {expected:?}"
    );
    println!("checker: {argv:?} -> {}", code.as_str());
}

/// Runs the real aws CLI against moto, whatever its exit status.
fn aws_direct(venv: &Path, moto: &MotoServer, args: &[&str]) -> Output {
    std::process::Command::new(venv.join("bin").join("aws"))
        .args(["--endpoint-url", &moto.endpoint(), "--region", "us-east-1"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("running the aws CLI")
}

/// Runs `args` with the real aws CLI; it must succeed.
fn aws_ok(venv: &Path, moto: &MotoServer, args: &[&str]) {
    let out = aws_direct(venv, moto, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn public_access_block(venv: &Path, moto: &MotoServer) -> Value {
    let out = aws_cli(
        venv,
        moto,
        &["s3api", "get-public-access-block", "--bucket", BUCKET],
    );
    json_of(&out)["PublicAccessBlockConfiguration"].clone()
}

const ALL_TRUE: &str =
    "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true";

fn block_all(venv: &Path, moto: &MotoServer) {
    aws_ok(
        venv,
        moto,
        &[
            "s3api",
            "put-public-access-block",
            "--bucket",
            BUCKET,
            "--public-access-block-configuration",
            ALL_TRUE,
        ],
    );
    let all = json!({"BlockPublicAcls": true, "IgnorePublicAcls": true,
                     "BlockPublicPolicy": true, "RestrictPublicBuckets": true});
    assert_eq!(public_access_block(venv, moto), all);
}

/// One aws case: run `args` for real, then the check.
fn aws_case(
    venv: &Path,
    moto: &MotoServer,
    args: &[&str],
    resource: &str,
    expected: &[Refusal],
) -> Output {
    let out = aws_direct(venv, moto, args);
    println!(
        "aws {args:?}: exit {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let mut argv = vec!["aws"];
    argv.extend_from_slice(args);
    assert_refused(Cloud::Aws, resource, &argv, expected);
    out
}

#[test]
fn aws_parsing_differentials_are_real_and_refused() {
    let venv = venv();
    let moto = MotoServer::start(&venv);
    aws_ok(
        &venv,
        &moto,
        &["s3api", "create-bucket", "--bucket", BUCKET],
    );

    // 1. The full option and an abbreviation of it: awscli applies the last.
    block_all(&venv, &moto);
    let args = [
        "s3api",
        "put-public-access-block",
        "--bucket",
        BUCKET,
        "--public-access-block-configuration",
        ALL_TRUE,
        "--public-access-block-conf",
        "BlockPublicAcls=false,IgnorePublicAcls=false,BlockPublicPolicy=false,RestrictPublicBuckets=false",
    ];
    let out = aws_case(
        &venv,
        &moto,
        &args,
        BUCKET,
        &[Refusal::RepeatedOption, Refusal::UnknownOption],
    );
    assert!(out.status.success());
    let none = json!({"BlockPublicAcls": false, "IgnorePublicAcls": false,
                      "BlockPublicPolicy": false, "RestrictPublicBuckets": false});
    assert_eq!(public_access_block(&venv, &moto), none, "the last one wins");

    // 2. `--abbrev=value`: awscli expands it and suspends versioning.
    aws_ok(
        &venv,
        &moto,
        &[
            "s3api",
            "put-bucket-versioning",
            "--bucket",
            BUCKET,
            "--versioning-configuration",
            "Status=Enabled",
        ],
    );
    let args = [
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        BUCKET,
        "--versioning-conf=Status=Suspended",
    ];
    let out = aws_case(&venv, &moto, &args, BUCKET, &[Refusal::UnknownOption]);
    assert!(out.status.success());
    let versioning = aws_cli(
        &venv,
        &moto,
        &["s3api", "get-bucket-versioning", "--bucket", BUCKET],
    );
    assert_eq!(json_of(&versioning)["Status"], "Suspended");

    // 3. Shorthand with whitespace around `=`: still `false` to awscli.
    block_all(&venv, &moto);
    let args = [
        "s3api",
        "put-public-access-block",
        "--bucket",
        BUCKET,
        "--public-access-block-configuration",
        "BlockPublicAcls = false,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
    ];
    let out = aws_case(&venv, &moto, &args, BUCKET, &[Refusal::Weakening]);
    assert!(out.status.success());
    assert_eq!(public_access_block(&venv, &moto)["BlockPublicAcls"], false);

    // 4. JSON with odd spacing: `false` is `false`.
    block_all(&venv, &moto);
    let args = [
        "s3api",
        "put-public-access-block",
        "--bucket",
        BUCKET,
        "--public-access-block-configuration",
        "{\"BlockPublicAcls\":  true, \"IgnorePublicAcls\":true,\n \"BlockPublicPolicy\" :\tfalse , \"RestrictPublicBuckets\":true}",
    ];
    let out = aws_case(&venv, &moto, &args, BUCKET, &[Refusal::Weakening]);
    assert!(out.status.success());
    assert_eq!(
        public_access_block(&venv, &moto)["BlockPublicPolicy"],
        false
    );

    // 5. A JSON escape: `"\u0066alse"` is the string "false", not a boolean.
    // awscli refuses it (parameter validation) and nothing changes; the
    // check reads the decoded string and refuses it too.
    let args = [
        "s3api",
        "put-public-access-block",
        "--bucket",
        BUCKET,
        "--public-access-block-configuration",
        r#"{"BlockPublicAcls": "\u0066alse", "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true}"#,
    ];
    let before = public_access_block(&venv, &moto);
    let out = aws_case(
        &venv,
        &moto,
        &args,
        BUCKET,
        &[Refusal::Weakening, Refusal::Weakens],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BlockPublicAcls") && stderr.contains("str"),
        "{stderr}"
    );
    assert_eq!(public_access_block(&venv, &moto), before);

    // 6. `--x --no-x`: the last wins (rds deletion protection).
    aws_ok(
        &venv,
        &moto,
        &[
            "rds",
            "create-db-instance",
            "--db-instance-identifier",
            "acme-db",
            "--db-instance-class",
            "db.t3.micro",
            "--engine",
            "postgres",
            "--master-username",
            "acme",
            "--master-user-password",
            "not-a-secret-1",
            "--deletion-protection",
        ],
    );
    let args = [
        "rds",
        "modify-db-instance",
        "--db-instance-identifier",
        "acme-db",
        "--deletion-protection",
        "--no-deletion-protection",
    ];
    let out = aws_case(&venv, &moto, &args, "acme-db", &[Refusal::RepeatedOption]);
    assert!(out.status.success());
    let db = aws_cli(
        &venv,
        &moto,
        &[
            "rds",
            "describe-db-instances",
            "--db-instance-identifier",
            "acme-db",
        ],
    );
    assert_eq!(json_of(&db)["DBInstances"][0]["DeletionProtection"], false);

    // 7. The same with iam's password policy.
    let args = [
        "iam",
        "update-account-password-policy",
        "--minimum-password-length",
        "14",
        "--require-symbols",
        "--no-require-symbols",
    ];
    let out = aws_case(&venv, &moto, &args, ACCOUNT, &[Refusal::RepeatedOption]);
    assert!(out.status.success());
    let policy = aws_cli(&venv, &moto, &["iam", "get-account-password-policy"]);
    assert_eq!(json_of(&policy)["PasswordPolicy"]["RequireSymbols"], false);
}

/// One request the loopback server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    body: Value,
}

/// A loopback HTTP server standing in for the storage and compute APIs:
/// records every request and answers the minimal JSON gcloud accepts.
fn google_apis() -> (u16, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let _ = serve(stream, port, &log);
            });
        }
    });
    (port, seen)
}

fn serve(stream: std::net::TcpStream, port: u16, log: &Mutex<Vec<Request>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    log.lock().unwrap().push(Request {
        method: method.clone(),
        path: path.clone(),
        body,
    });
    let base = format!("http://127.0.0.1:{port}");
    let resource = path.split('?').next().unwrap_or_default();
    let answer = if path.starts_with("/compute/") && method != "GET" {
        json!({"kind": "compute#operation", "name": "op-1", "status": "DONE",
               "selfLink": format!("{base}/compute/v1/projects/{PROJECT}/global/operations/op-1"),
               "targetLink": format!("{base}{resource}")})
    } else if path.contains("/firewalls/") {
        json!({"kind": "compute#firewall", "name": "acme-fw", "disabled": true,
               "network": "default", "selfLink": format!("{base}{resource}")})
    } else if path.contains("/sslPolicies/") {
        json!({"kind": "compute#sslPolicy", "name": "acme-tls", "minTlsVersion": "TLS_1_2",
               "profile": "RESTRICTED", "fingerprint": "YWJj",
               "selfLink": format!("{base}{resource}")})
    } else {
        json!({"kind": "storage#bucket", "name": "acme-data", "id": "acme-data"})
    };
    let text = answer.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

fn gcloud_path() -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join("gcloud"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("gcloud is not on PATH: scripts/test requires the Google Cloud SDK")
        })
}

/// Runs the real gcloud with `args` against a fresh loopback server; returns
/// the bodies of the requests that change something (PATCH/POST/PUT).
fn gcloud_writes(gcloud: &Path, args: &[&str]) -> Vec<Request> {
    let (port, seen) = google_apis();
    let config = tempfile::tempdir().expect("config dir");
    let token = config.path().join("token");
    std::fs::write(&token, "ya29.loopback-test-token\n").expect("token");
    std::fs::write(
        config.path().join("properties"),
        format!(
            "[core]\nproject = {PROJECT}\ndisable_usage_reporting = true\n\
             [auth]\naccess_token_file = {}\n\
             [api_endpoint_overrides]\nstorage = http://127.0.0.1:{port}/storage/v1/\n\
             compute = http://127.0.0.1:{port}/compute/v1/\n",
            token.display()
        ),
    )
    .expect("properties");
    let out = std::process::Command::new(gcloud)
        .args(args)
        .env("CLOUDSDK_CONFIG", config.path())
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .env_remove("CLOUDSDK_CORE_PROJECT")
        .env_remove("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE")
        .output()
        .expect("running gcloud");
    let writes: Vec<Request> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method != "GET" && !r.path.contains("/operations/"))
        .cloned()
        .collect();
    println!(
        "gcloud {args:?}: exit {:?}, sent {:?}",
        out.status.code(),
        writes
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.body))
            .collect::<Vec<_>>()
    );
    assert!(
        !writes.is_empty(),
        "gcloud {args:?} sent no change: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    writes
}

/// One gcloud case: the field gcloud sends at `pointer` in its (first)
/// change, and the check's refusal.
fn gcloud_case(
    gcloud: &Path,
    args: &[&str],
    resource: &str,
    pointer: &str,
    sent: Value,
    expected: &[Refusal],
) {
    let writes = gcloud_writes(gcloud, args);
    assert_eq!(
        writes[0].body.pointer(pointer),
        Some(&sent),
        "gcloud {args:?} sent {}",
        writes[0].body
    );
    let mut argv = vec!["gcloud"];
    argv.extend_from_slice(args);
    assert_refused(Cloud::Gcp, resource, &argv, expected);
}

#[test]
fn gcloud_parsing_differentials_are_real_and_refused() {
    let gcloud = gcloud_path();
    // `weakens` is the older check of operations used backwards; it runs
    // before the positive spec's `weakening` / `parameter_not_allowed`.
    const OFF: &[Refusal] = &[
        Refusal::Weakens,
        Refusal::Weakening,
        Refusal::ParameterNotAllowed,
    ];
    type Case = (
        &'static [&'static str],
        &'static str,
        &'static str,
        Value,
        &'static [Refusal],
    );
    let cases: Vec<Case> = vec![
        (
            &[
                "storage",
                "buckets",
                "update",
                "gs://acme-data",
                "--no-uniform-bucket-level-access",
            ],
            "acme-data",
            "/iamConfiguration/uniformBucketLevelAccess/enabled",
            json!(false),
            OFF,
        ),
        (
            &[
                "storage",
                "buckets",
                "update",
                "gs://acme-data",
                "--clear-public-access-prevention",
            ],
            "acme-data",
            "/iamConfiguration/publicAccessPrevention",
            Value::Null,
            OFF,
        ),
        (
            &[
                "storage",
                "buckets",
                "update",
                "gs://acme-data",
                "--no-public-access-prevention",
            ],
            "acme-data",
            "/iamConfiguration/publicAccessPrevention",
            json!("inherited"),
            OFF,
        ),
        (
            &[
                "compute",
                "firewall-rules",
                "update",
                "acme-fw",
                "--project",
                PROJECT,
                "--no-disabled",
            ],
            "acme-fw",
            "/disabled",
            json!(false),
            OFF,
        ),
        (
            &[
                "compute",
                "firewall-rules",
                "update",
                "acme-fw",
                "--disabled",
                "--no-disabled",
            ],
            "acme-fw",
            "/disabled",
            json!(false),
            &[Refusal::RepeatedOption],
        ),
        (
            &[
                "compute",
                "ssl-policies",
                "update",
                "acme-tls",
                "--min-tls-version=1.0",
            ],
            "acme-tls",
            "/minTlsVersion",
            json!("TLS_1_0"),
            &[Refusal::Weakening],
        ),
    ];
    // gcloud takes seconds to start: the cases run side by side, each with
    // its own server and configuration.
    std::thread::scope(|scope| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(args, resource, pointer, sent, expected)| {
                let gcloud = &gcloud;
                scope.spawn(move || {
                    gcloud_case(gcloud, args, resource, pointer, sent.clone(), expected)
                })
            })
            .collect();
        let failed: Vec<String> = runs
            .into_iter()
            .zip(&cases)
            .filter_map(|(run, case)| run.join().err().map(|_| format!("{:?}", case.0)))
            .collect();
        assert!(failed.is_empty(), "failed cases: {failed:?}");
    });
}
