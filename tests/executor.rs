//! ProcessExecutor and DryRunExecutor against the recording stand-in: what ran,
//! with which account context, and what did not run.

mod support;

use remediation::executor::{
    CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor, StepStatus,
};
use remediation::model::{Cloud, Target};
use remediation::plan::OperationClass;
use remediation::plan::Step;
use remediation::plan::{Command, CommandPolicy};
use remediation::{ErrorKind, Refusal};
use std::time::{Duration, Instant};
use support::StandIn;

const PROD: &str = "111111111111";
const DEV: &str = "222222222222";

fn contexts() -> ContextMap {
    ContextMap::new()
        .with_aws_profile(PROD, "prod")
        .with_aws_profile(DEV, "dev")
}

fn aws_target(account: &str, region: Option<&str>) -> Target {
    let target = Target::new(Cloud::Aws, Some(account.to_owned()));
    match region {
        Some(region) => target.with_region(region),
        None => target,
    }
}

fn step(args: &[&str]) -> Step {
    Step::new(Command::new("aws", args.iter().copied()))
}

#[tokio::test]
async fn profile_and_region_follow_the_target() {
    let standin = StandIn::new();
    let executor = standin.executor(contexts());
    let runs = [
        (
            step(&["sts", "get-caller-identity"]),
            aws_target(PROD, Some("eu-west-1")),
        ),
        (
            step(&["iam", "get-user", "--user-name", "u"]),
            aws_target(DEV, Some("global")),
        ),
        (
            step(&["ec2", "describe-instances", "--region", "ap-south-1"]),
            aws_target(PROD, Some("eu-west-1")),
        ),
        (step(&["sts", "get-caller-identity"]), aws_target(DEV, None)),
    ];
    for (step, target) in &runs {
        let outcome = executor.execute(step, target).await.unwrap();
        assert_eq!(outcome.status, StepStatus::Ok);
        assert_eq!(outcome.exit_code, Some(0));
    }
    let calls = standin.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0].argv, ["aws", "sts", "get-caller-identity"]);
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("prod"));
    assert_eq!(calls[0].var("AWS_REGION"), Some("eu-west-1"));
    assert_eq!(calls[0].var("AWS_DEFAULT_REGION"), Some("eu-west-1"));
    assert_eq!(calls[1].var("AWS_PROFILE"), Some("dev"));
    assert_eq!(calls[1].var("AWS_REGION"), Some("us-east-1"));
    assert_eq!(calls[1].var("AWS_DEFAULT_REGION"), Some("us-east-1"));
    // The command's own --region wins: the target's region is not imposed.
    assert_eq!(calls[2].argv.last().map(String::as_str), Some("ap-south-1"));
    assert_ne!(calls[2].var("AWS_REGION"), Some("eu-west-1"));
    assert_ne!(calls[2].var("AWS_DEFAULT_REGION"), Some("eu-west-1"));
    assert_eq!(calls[3].var("AWS_PROFILE"), Some("dev"));
}

#[tokio::test]
async fn ambient_credentials_set_on_the_executor_do_not_reach_the_child() {
    let standin = StandIn::new();
    let executor = standin
        .executor(contexts())
        .with_env_var("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .with_env_var(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .with_env_var("AWS_SESSION_TOKEN", "token")
        .with_env_var("AWS_PROFILE", "ambient")
        .with_env_var("AWS_DEFAULT_PROFILE", "ambient");
    executor
        .execute(
            &step(&["sts", "get-caller-identity"]),
            &aws_target(PROD, None),
        )
        .await
        .unwrap();
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_PROFILE",
    ] {
        assert_eq!(calls[0].var(var), None, "{var} reached the child");
    }
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("prod"));
}

/// Set only in the re-executed copy of this test binary (see the next test).
const CHILD_MARKER: &str = "REMEDIATION_TEST_INHERITED_ENV_CHILD";

#[tokio::test]
async fn ambient_credentials_inherited_from_the_worker_do_not_reach_the_child() {
    // The worker's own environment is the real danger. Rather than mutate this
    // process's environment (tests run in parallel), run this test binary again
    // with credentials in its environment, executing only `inherited_env_child`.
    support::rerun_with_env(
        "inherited_env_child",
        CHILD_MARKER,
        [
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_PROFILE", "ambient"),
        ],
    );
}

#[tokio::test]
async fn inherited_env_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return; // Only meaningful when re-executed by the test above.
    }
    assert!(std::env::var_os("AWS_ACCESS_KEY_ID").is_some());
    let standin = StandIn::new();
    standin
        .executor(contexts())
        .execute(
            &step(&["sts", "get-caller-identity"]),
            &aws_target(DEV, None),
        )
        .await
        .unwrap();
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].var("AWS_ACCESS_KEY_ID"), None);
    assert_eq!(calls[0].var("AWS_SECRET_ACCESS_KEY"), None);
    assert_eq!(calls[0].var("AWS_SESSION_TOKEN"), None);
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("dev"));
}

#[tokio::test]
async fn unmapped_accounts_are_refused_and_nothing_runs() {
    let standin = StandIn::new();
    let executor = standin.executor(contexts());
    let aws = step(&["sts", "get-caller-identity"]);
    let az = Step::new(Command::new("az", ["acr", "show", "--name", "r"]));
    for (step, target) in [
        (&aws, aws_target("333333333333", Some("us-east-1"))),
        (&aws, Target::new(Cloud::Aws, None)),
        (
            &az,
            Target::new(
                Cloud::Azure,
                Some("00000000-0000-4000-8000-000000000000".to_owned()),
            ),
        ),
    ] {
        let err = executor.check(step, &target).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnmappedAccount, "{err}");
        let err = executor.execute(step, &target).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnmappedAccount, "{err}");
    }
    // A CLI acting on another cloud than its finding's is refused as unsafe.
    let azure = Target::new(
        Cloud::Azure,
        Some("00000000-0000-4000-8000-000000000000".to_owned()),
    );
    let err = executor.check(&aws, &azure).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsafeCommand, "{err}");
    assert_eq!(standin.calls(), vec![]);
}

#[tokio::test]
async fn default_profile_only_when_configured() {
    let standin = StandIn::new();
    let target = aws_target("333333333333", None);
    let without = standin.executor(contexts());
    assert!(
        without
            .execute(&step(&["sts", "get-caller-identity"]), &target)
            .await
            .is_err()
    );
    assert_eq!(standin.calls(), vec![]);

    let with = standin.executor(contexts().with_default_aws_profile("fallback"));
    with.execute(&step(&["sts", "get-caller-identity"]), &target)
        .await
        .unwrap();
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].var("AWS_PROFILE"), Some("fallback"));
}

#[tokio::test]
async fn disallowed_commands_are_refused_even_without_check() {
    let standin = StandIn::new();
    let executor = standin.executor(contexts());
    let target = aws_target(PROD, None);
    for command in [
        Command::new("sh", ["-c", "aws s3 ls"]),
        Command::new("aws", ["sts", "get-caller-identity", "--profile", "other"]),
        Command::new(standin.bin_dir().join("aws").display().to_string(), ["sts"]),
    ] {
        let err = executor
            .execute(&Step::new(command.clone()), &target)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsafeCommand, "{command}: {err}");
    }
    assert_eq!(standin.calls(), vec![]);
}

#[tokio::test]
async fn non_zero_exit_is_a_failed_outcome_with_its_code() {
    let standin = StandIn::new();
    let executor = standin
        .executor(contexts())
        .with_env_var("STANDIN_EXIT_CODE", "3")
        .with_env_var("STANDIN_STDERR", "An error occurred (NoSuchEntity)\n")
        .with_env_var("STANDIN_STDOUT", "partial output\n");
    let outcome = executor
        .execute(&step(&["iam", "get-user"]), &aws_target(PROD, None))
        .await
        .unwrap();
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.stderr_tail, "An error occurred (NoSuchEntity)\n");
    assert_eq!(outcome.stdout_tail, "partial output\n");
    assert_eq!(outcome.context["AWS_PROFILE"], "prod");
    assert_eq!(standin.calls().len(), 1);
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_and_reported() {
    let standin = StandIn::new();
    let executor = standin
        .executor(contexts())
        .with_env_var("STANDIN_SLEEP", "60")
        .with_timeout(Duration::from_millis(1500));
    let start = Instant::now();
    let outcome = executor
        .execute(
            &step(&["glue", "get-dev-endpoint", "--endpoint-name", "e"]),
            &aws_target(PROD, None),
        )
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.exit_code, None);
    assert!(
        outcome
            .stderr_tail
            .contains("killed after the step timeout"),
        "{:?}",
        outcome.stderr_tail
    );
    let calls = standin.calls();
    assert_eq!(calls.len(), 1, "the stand-in should have started");
    let proc_dir = format!("/proc/{}", calls[0].pid);
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "the timed-out child {} is still alive",
        calls[0].pid
    );
}

#[tokio::test]
async fn output_tails_are_bounded_and_redacted() {
    let standin = StandIn::new();
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let executor = standin
        .executor(contexts())
        .with_output_limit(256)
        .with_env_var("STANDIN_REPEAT", "20000")
        .with_env_var(
            "STANDIN_STDERR",
            format!("noise line\nSecretAccessKey: {secret} from AKIAIOSFODNN7EXAMPLE\n"),
        )
        .with_env_var("STANDIN_STDOUT", "0123456789abcdef");
    let outcome = executor
        .execute(
            &step(&["iam", "get-user", "--user-name", "u"]),
            &aws_target(PROD, None),
        )
        .await
        .unwrap();
    assert_eq!(outcome.status, StepStatus::Ok);
    let marker = "[…truncated…]";
    for tail in [&outcome.stderr_tail, &outcome.stdout_tail] {
        assert!(tail.starts_with(marker), "{tail:?}");
        assert!(tail.len() <= 256 + marker.len(), "{} bytes", tail.len());
    }
    assert!(
        !outcome.stderr_tail.contains(secret),
        "{}",
        outcome.stderr_tail
    );
    assert!(!outcome.stderr_tail.contains("AKIAIOSFODNN7EXAMPLE"));
    assert!(outcome.stderr_tail.contains("SecretAccessKey: [REDACTED]"));
    assert!(
        outcome.stderr_tail.ends_with("\n"),
        "{}",
        outcome.stderr_tail
    );
    assert!(outcome.stdout_tail.ends_with("0123456789abcdef"));
}

#[tokio::test]
async fn a_missing_program_is_refused_as_cannot_start_naming_it() {
    let standin = StandIn::new();
    let policy = CommandPolicy::default()
        .allow_program("remediation-no-such-cli")
        .allow_operation("remediation-no-such-cli", "*", OperationClass::Remediating);
    let executor = standin.wire(ProcessExecutor::new(policy, contexts()));
    let target = aws_target(PROD, None);
    let step = Step::new(Command::new("remediation-no-such-cli", ["x"]));
    let err = executor.execute(&step, &target).await.unwrap_err();
    assert_eq!(err.refusal(), Some(Refusal::CannotStart), "{err}");
    assert!(err.to_string().contains("remediation-no-such-cli"), "{err}");
    assert!(!err.is_temporary());
    let missing = executor.require_programs(["aws", "remediation-no-such-cli"]);
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .contains("remediation-no-such-cli")
    );
    assert!(executor.require_programs(["aws", "az", "gcloud"]).is_ok());
}

#[tokio::test]
async fn dry_run_records_and_runs_nothing() {
    let standin = StandIn::new();
    let dry = DryRunExecutor::new(CommandPolicy::default(), contexts()).with_record_limit(2);
    assert!(dry.is_dry_run());
    let target = aws_target(PROD, Some("global"));
    for args in [
        &["sts", "get-caller-identity"][..],
        &["iam", "get-user", "--user-name", "u"],
        &["iam", "list-attached-user-policies", "--user-name", "u"],
    ] {
        let outcome = dry.execute(&step(args), &target).await.unwrap();
        assert_eq!(outcome.status, StepStatus::Planned);
        assert_eq!(outcome.context["AWS_PROFILE"], "prod");
        assert_eq!(outcome.context["AWS_REGION"], "us-east-1");
    }
    let recorded = dry.recorded();
    assert_eq!(recorded.len(), 2, "bounded to the last two");
    assert_eq!(
        recorded[0].command.argv(),
        ["aws", "iam", "get-user", "--user-name", "u"]
    );
    assert_eq!(
        recorded[1].command.argv(),
        [
            "aws",
            "iam",
            "list-attached-user-policies",
            "--user-name",
            "u"
        ]
    );
    assert_eq!(recorded[1].context["AWS_PROFILE"], "prod");
    assert_eq!(recorded[1].target, target);
    assert_eq!(dry.take_recorded().len(), 2);
    assert!(dry.recorded().is_empty());

    // Refuses exactly what the process executor refuses.
    let real = standin.executor(contexts());
    let unmapped = aws_target("333333333333", None);
    let shell = Step::new(Command::new("sh", ["-c", "id"]));
    for (step, target) in [
        (&step(&["sts", "get-caller-identity"]), &unmapped),
        (&shell, &target),
    ] {
        let dry_err = dry.check(step, target).unwrap_err();
        let real_err = real.check(step, target).unwrap_err();
        assert_eq!(dry_err.to_string(), real_err.to_string());
        assert!(dry.execute(step, target).await.is_err());
    }
    assert!(dry.recorded().is_empty());
    assert_eq!(standin.calls(), vec![]);
}
