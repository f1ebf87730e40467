//! The real AWS CLI (v1, from the test venv) against a moto server: a Prisma
//! Cloud API style script is parsed and run through the ProcessExecutor, with
//! the profile chosen by the account map, and its effect is verified in IAM.
//!
//! Needs the venv that `scripts/test` creates (`moto[server]` and `awscli`);
//! without it this test fails with instructions rather than passing silently.

mod support;

use remediation::executor::{CommandExecutor, ContextMap, ProcessExecutor, StepStatus};
use remediation::model::{Cloud, Resource, Target};
use remediation::plan::Step;
use remediation::plan::{Command, CommandPolicy, parse_script};
use support::moto::{MotoServer, venv};

const ACCOUNT: &str = "123456789012";

#[tokio::test]
async fn prisma_script_attaches_the_policy_in_moto() {
    let venv = venv();
    let moto = MotoServer::start(&venv);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let credentials = dir.path().join("credentials");
    // No [default] profile: if the executor failed to set AWS_PROFILE, the CLI
    // would find no credentials and every step would fail.
    std::fs::write(
        &config,
        "[profile remediator]\nregion = us-east-1\n[profile auditor]\nregion = us-east-1\n",
    )
    .unwrap();
    std::fs::write(
        &credentials,
        "[remediator]\naws_access_key_id = testing\naws_secret_access_key = testing\n\
         [auditor]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let executor = ProcessExecutor::new(
        CommandPolicy::default(),
        ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=remediator")).unwrap(),
    )
    .with_output_limit(64 * 1024)
    .with_env_var("PATH", path)
    .with_env_var("AWS_CONFIG_FILE", config.display().to_string())
    .with_env_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        credentials.display().to_string(),
    )
    .with_env_var("AWS_ENDPOINT_URL", moto.endpoint());
    // The finding is about user U: the commands must act on it.
    let target = Target::new(Cloud::Aws, Some(ACCOUNT.to_owned()))
        .with_region("global")
        .with_resource(Resource::named("U"));

    let run = |command: Command| {
        let executor = &executor;
        let target = &target;
        async move {
            let step = Step::new(command);
            executor.check(&step, target).unwrap();
            let outcome = executor.execute(&step, target).await.unwrap();
            assert_eq!(
                outcome.status,
                StepStatus::Ok,
                "{} failed: {}",
                step.command,
                outcome.stderr_tail
            );
            assert_eq!(outcome.context["AWS_PROFILE"], "remediator");
            outcome
        }
    };

    // Set-up outside the worker: creating users is not a remediation.
    support::moto::aws_cli(&venv, &moto, &["iam", "create-user", "--user-name", "U"]);

    // The documented Prisma Cloud API output form: two commands joined by `and`.
    let script = format!(
        "aws iam create-policy --policy-name X --policy-document \
         '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Deny\",\"Action\":\"s3:*\",\"Resource\":\"*\"}}]}}' \
         and aws iam attach-user-policy --user-name U --policy-arn arn:aws:iam::{ACCOUNT}:policy/X"
    );
    let commands = parse_script(&script, &CommandPolicy::default()).unwrap();
    assert_eq!(commands.len(), 2);
    let steps: Vec<Step> = commands.into_iter().map(Step::new).collect();
    for step in &steps {
        executor.check(step, &target).unwrap();
    }
    for step in steps {
        run(step.command).await;
    }

    let listed = run(Command::new(
        "aws",
        [
            "iam",
            "list-attached-user-policies",
            "--user-name",
            "U",
            "--output",
            "json",
        ],
    ))
    .await;
    let json: serde_json::Value = serde_json::from_str(&listed.stdout_tail)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", listed.stdout_tail));
    let attached: Vec<&str> = json["AttachedPolicies"]
        .as_array()
        .expect("AttachedPolicies")
        .iter()
        .filter_map(|p| p["PolicyArn"].as_str())
        .collect();
    assert_eq!(attached, [format!("arn:aws:iam::{ACCOUNT}:policy/X")]);
}
