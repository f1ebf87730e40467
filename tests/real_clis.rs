//! Sealed execution with the real CLIs: the aws CLI v1 (test venv) against
//! moto, and the real gcloud, which runs some commands without credentials.
//!
//! * The hostile scripts marked `real_cli` (file, URL, alias and config
//!   classes) go through a worker whose HOME holds a credentials file and
//!   whose environment holds secrets: each is refused, and none of those
//!   secrets ends up anywhere in moto (its whole state is dumped and searched).
//!   The benign scripts marked `moto` run in the same worker and their effect
//!   is in the dump, so the search is over real state.
//! * With `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` in the worker's
//!   environment, `aws sts get-caller-identity` reports the mapped profile's
//!   identity; the same environment given to the CLI directly assumes the role.
//! * `gcloud meta test --exec-file` runs a file with bash (shown directly);
//!   through the worker it is refused and nothing runs.

mod support;

use remediation::executor::{CommandExecutor, ContextMap, GcpContext, ProcessExecutor, StepStatus};
use remediation::model::{Cloud, Resource, Target};
use remediation::plan::{CommandPolicy, parse_script_steps};
use remediation::{Error, Refusal};
use serde::Deserialize;
use std::path::Path;
use support::moto::{MotoServer, aws_cli, dump, venv};

const ACCOUNT: &str = "123456789012";
/// The worker's own secrets: in its credentials file and its environment.
const HOME_SECRET: &str = "home-credentials-canary-61f0";
const ENV_SECRET: &str = "env-secret-canary-7a7a";
const CHILD_MARKER: &str = "REMEDIATION_TEST_REAL_CLI_CHILD";

#[derive(Debug, Deserialize)]
struct Entry {
    id: String,
    cloud: String,
    #[serde(default)]
    real_cli: bool,
    #[serde(default)]
    moto: bool,
    /// The finding's resource the commands are bound to.
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default)]
    destinations: Vec<String>,
    #[serde(default)]
    allow_deny_removal: bool,
    #[serde(default)]
    isolation_groups: Vec<String>,
    #[serde(default)]
    setup: Vec<Vec<String>>,
    script: String,
}

fn load(name: &str) -> Vec<Entry> {
    let path = format!(
        "{}/tests/fixtures/scripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn aws_target() -> Target {
    Target::new(Cloud::Aws, Some(ACCOUNT.to_owned())).with_region("us-east-1")
}

impl Entry {
    /// The entry's finding: the account, and its resource if it names one.
    fn target(&self) -> Target {
        match &self.resource {
            Some(resource) => aws_target().with_resource(resource.clone()),
            None => aws_target(),
        }
    }

    /// The policy an operator running this remediation would configure.
    fn policy(&self) -> CommandPolicy {
        support::operator_policy(
            &self.destinations,
            &self.isolation_groups,
            self.allow_deny_removal,
        )
    }
}

/// The operator's files: a profile `remediator` with moto's dummy keys.
fn operator_files(dir: &Path) -> (String, String) {
    let config = dir.join("operator-config");
    let credentials = dir.join("operator-credentials");
    std::fs::write(&config, "[profile remediator]\nregion = us-east-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[remediator]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    (
        config.display().to_string(),
        credentials.display().to_string(),
    )
}

fn executor(venv: &Path, moto: &MotoServer, dir: &Path) -> ProcessExecutor {
    executor_with(venv, moto, dir, CommandPolicy::default())
}

fn executor_with(
    venv: &Path,
    moto: &MotoServer,
    dir: &Path,
    policy: CommandPolicy,
) -> ProcessExecutor {
    let (config, credentials) = operator_files(dir);
    ProcessExecutor::new(
        policy,
        ContextMap::new().with_aws_profile(ACCOUNT, "remediator"),
    )
    .with_output_limit(64 * 1024)
    .with_env_var("PATH", venv.join("bin").display().to_string())
    .with_env_var("AWS_CONFIG_FILE", config)
    .with_env_var("AWS_SHARED_CREDENTIALS_FILE", credentials)
    .with_env_var("AWS_ENDPOINT_URL", moto.endpoint())
}

async fn run_like_engine(
    script: &str,
    target: &Target,
    executor: &ProcessExecutor,
) -> Result<Vec<String>, Error> {
    run_under(script, target, executor, &CommandPolicy::default()).await
}

async fn run_under(
    script: &str,
    target: &Target,
    executor: &ProcessExecutor,
    policy: &CommandPolicy,
) -> Result<Vec<String>, Error> {
    let steps = parse_script_steps(script, policy)?;
    for step in &steps {
        executor.check(step, target)?;
    }
    let mut failures = Vec::new();
    for step in &steps {
        let outcome = executor.execute(step, target).await?;
        if outcome.status != StepStatus::Ok {
            failures.push(format!("{}: {}", step.command, outcome.stderr_tail));
        }
    }
    Ok(failures)
}

/// Runs this test binary again with `env`, executing only `test`.
fn rerun(test: &str, env: &[(&str, String)]) {
    support::rerun_with_env(
        test,
        CHILD_MARKER,
        env.iter().map(|(k, v)| (*k, v.as_str())),
    );
}

#[tokio::test]
async fn hostile_file_url_and_alias_scripts_leak_nothing_into_moto() {
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!("[default]\naws_access_key_id = AKIAHOMECANARY000000\naws_secret_access_key = {HOME_SECRET}\n"),
    )
    .unwrap();
    std::fs::write(aws.join("config"), "[default]\nregion = us-east-1\n").unwrap();
    rerun(
        "hostile_child",
        &[
            ("HOME", home.path().display().to_string()),
            ("PRISMA_SECRET_KEY", ENV_SECRET.to_owned()),
            ("REMEDIATION_VENV", venv().display().to_string()),
        ],
    );
}

#[tokio::test]
async fn hostile_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return; // Only meaningful when re-executed by the test above.
    }
    let venv = venv();
    let moto = MotoServer::start(&venv);
    let dir = tempfile::tempdir().unwrap();
    let executor = executor(&venv, &moto, dir.path());
    // Something for the hostile scripts to write into, if they could.
    aws_cli(
        &venv,
        &moto,
        &["s3api", "create-bucket", "--bucket", "attacker-drop"],
    );
    aws_cli(
        &venv,
        &moto,
        &["iam", "create-user", "--user-name", "alice"],
    );

    let mut wrong = Vec::new();
    let hostile: Vec<Entry> = load("hostile.yaml")
        .into_iter()
        .filter(|e| e.real_cli)
        .collect();
    assert!(
        hostile.len() >= 20,
        "{} real-CLI hostile scripts",
        hostile.len()
    );
    for case in &hostile {
        assert_eq!(case.cloud, "aws", "{}", case.id);
        match run_like_engine(&case.script, &case.target(), &executor).await {
            Ok(failures) => wrong.push(format!("{}: ran ({failures:?})", case.id)),
            Err(e) if e.refusal().is_some() => {}
            Err(e) => wrong.push(format!("{}: {e}", case.id)),
        }
    }
    let benign: Vec<Entry> = load("benign.yaml").into_iter().filter(|e| e.moto).collect();
    assert!(benign.len() >= 10, "{} moto benign scripts", benign.len());
    for case in &benign {
        for argv in &case.setup {
            let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
            aws_cli(&venv, &moto, &args);
        }
        let policy = case.policy();
        let executor = executor_with(&venv, &moto, dir.path(), policy.clone());
        match run_under(&case.script, &case.target(), &executor, &policy).await {
            Ok(failures) if failures.is_empty() => {}
            Ok(failures) => wrong.push(format!("benign {}: {failures:?}", case.id)),
            Err(e) => wrong.push(format!("benign {}: refused: {e}", case.id)),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let state = dump(&moto);
    for secret in [HOME_SECRET, ENV_SECRET, "AKIAHOMECANARY000000"] {
        assert!(!state.contains(secret), "{secret} ended up in moto");
    }
    // The search is over real state: the benign scripts' effects are there.
    for bucket in ["acme-logs", "attacker-drop"] {
        assert!(
            state.contains(bucket),
            "moto's dump lacks {bucket}: is it the state?"
        );
    }
}

#[tokio::test]
async fn web_identity_in_the_worker_environment_does_not_replace_the_mapped_profile() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3b3JrZXIifQ.").unwrap();
    rerun(
        "web_identity_child",
        &[
            (
                "AWS_ROLE_ARN",
                format!("arn:aws:iam::{ACCOUNT}:role/worker-role"),
            ),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            ("AWS_ROLE_SESSION_NAME", "worker".to_owned()),
            ("REMEDIATION_VENV", venv().display().to_string()),
        ],
    );
}

#[tokio::test]
async fn web_identity_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let venv = venv();
    let moto = MotoServer::start(&venv);
    let dir = tempfile::tempdir().unwrap();
    let (config, credentials) = operator_files(dir.path());
    // Control: the CLI given the worker's environment and AWS_PROFILE runs as
    // the worker's role — the attack this guards against is real.
    // Its own HOME: the CLI caches assumed-role credentials in ~/.aws/cli/cache.
    let direct_home = tempfile::tempdir().unwrap();
    let direct = std::process::Command::new(venv.join("bin").join("aws"))
        .args(["sts", "get-caller-identity", "--output", "json"])
        .env("HOME", direct_home.path())
        .env("AWS_PROFILE", "remediator")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .output()
        .unwrap();
    let direct = String::from_utf8_lossy(&direct.stdout);
    assert!(
        direct.contains("assumed-role/worker-role"),
        "control: {direct}"
    );

    let executor = executor(&venv, &moto, dir.path());
    let steps = parse_script_steps(
        "aws sts get-caller-identity --output json",
        &CommandPolicy::default(),
    )
    .unwrap();
    let outcome = executor.execute(&steps[0], &aws_target()).await.unwrap();
    assert_eq!(outcome.status, StepStatus::Ok, "{}", outcome.stderr_tail);
    let identity: serde_json::Value = serde_json::from_str(&outcome.stdout_tail).unwrap();
    let arn = identity["Arn"].as_str().unwrap_or_default();
    assert!(
        !arn.contains("assumed-role"),
        "ran as the worker's role: {arn}"
    );
    assert_eq!(identity["Account"], ACCOUNT);
}

#[tokio::test]
async fn gcloud_exec_file_runs_bash_directly_and_is_refused_through_the_worker() {
    let Some(gcloud) = which("gcloud") else {
        panic!("gcloud is not on PATH: scripts/test requires the Google Cloud SDK");
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script_file = dir.path().join("x.sh");
    std::fs::write(&script_file, format!("touch {}\n", marker.display())).unwrap();
    // Control: the real gcloud runs the file, without any credentials.
    let config = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(&gcloud)
        .args([
            "meta",
            "test",
            &format!("--exec-file={}", script_file.display()),
        ])
        .env("CLOUDSDK_CONFIG", config.path())
        .env("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(
        status.success() && marker.exists(),
        "control: gcloud did not run the file"
    );
    std::fs::remove_file(&marker).unwrap();

    let project = "acme-prod-1";
    let executor = ProcessExecutor::new(
        CommandPolicy::default(),
        ContextMap::new()
            .with_gcp_project(project, GcpContext::new().with_config_dir(config.path())),
    );
    let target = Target::new(Cloud::Gcp, Some(project.to_owned()));
    let script = format!(
        "cat > x.sh <<'EOF'\ntouch {}\nEOF\ngcloud meta test --exec-file=x.sh",
        marker.display()
    );
    let err = match parse_script_steps(&script, &CommandPolicy::default()) {
        Err(e) => e,
        Ok(steps) => executor.check(&steps[0], &target).unwrap_err(),
    };
    assert_eq!(err.refusal(), Some(Refusal::OperationNotAllowed), "{err}");
    // A read-only command of the catalog does run with the real gcloud.
    let steps = parse_script_steps(
        "gcloud compute firewall-rules list",
        &CommandPolicy::default(),
    )
    .unwrap();
    let outcome = executor.execute(&steps[0], &target).await.unwrap();
    // No credentials here: gcloud runs and fails on auth, not on the sandbox.
    assert_eq!(outcome.status, StepStatus::Failed);
    assert!(
        outcome.stderr_tail.to_lowercase().contains("credential")
            || outcome.stderr_tail.to_lowercase().contains("auth"),
        "{}",
        outcome.stderr_tail
    );
    assert!(!marker.exists());
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
