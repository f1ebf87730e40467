//! The deny probe with the real aws CLI (v1) against moto: with
//! `probe_deny_removal`, a removal that may lift a deny (detach a managed
//! policy, delete an inline or bucket policy) runs only after a read-only
//! query of what it removes found no Deny; one that would remove a deny is
//! refused and nothing changes. Without the option both are refused.

mod support;

use remediation::Error;
use remediation::executor::{
    CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor, StepStatus,
};
use remediation::model::{Cloud, Resource, Target};
use remediation::plan::{Command, CommandPolicy, Step};
use std::sync::Arc;
use support::moto::{MotoServer, aws_cli, remediator_env, venv};

const ACCOUNT: &str = "123456789012";

fn document(effect: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"s3:*","Resource":"*"}}]}}"#
    )
}

fn bucket_policy(effect: &str, bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
    )
}

struct World {
    _dir: tempfile::TempDir,
    moto: MotoServer,
    venv: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl World {
    fn start() -> World {
        let venv = venv();
        let moto = MotoServer::start(&venv);
        let dir = tempfile::tempdir().unwrap();
        let env = remediator_env(&venv, dir.path(), &moto.endpoint());
        World {
            _dir: dir,
            moto,
            venv,
            env,
        }
    }

    fn aws(&self, args: &[&str]) -> String {
        aws_cli(&self.venv, &self.moto, args)
    }

    fn executor(&self, policy: CommandPolicy) -> ProcessExecutor {
        let contexts = ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=remediator")).unwrap();
        self.env
            .iter()
            .fold(ProcessExecutor::new(policy, contexts), |e, (k, v)| {
                e.with_env_var(k, v)
            })
            .with_query_output_limit(256 * 1024)
    }

    fn names(&self, list: &str, field: &str, pick: fn(&serde_json::Value) -> &str) -> Vec<String> {
        let out = self.aws(&["iam", list, "--user-name", "U"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        json[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| pick(p).to_owned())
            .collect()
    }

    fn attached(&self) -> Vec<String> {
        self.names("list-attached-user-policies", "AttachedPolicies", |p| {
            p["PolicyName"].as_str().unwrap()
        })
    }

    fn inline(&self) -> Vec<String> {
        self.names("list-user-policies", "PolicyNames", |p| p.as_str().unwrap())
    }
}

fn user_target() -> Target {
    Target::new(Cloud::Aws, Some(ACCOUNT.to_owned()))
        .with_region("us-east-1")
        .with_resource(Resource::named("U"))
}

fn bucket_target(bucket: &str) -> Target {
    Target::new(Cloud::Aws, Some(ACCOUNT.to_owned()))
        .with_region("us-east-1")
        .with_resource(Resource::named(bucket))
}

fn aws(args: &[&str]) -> Step {
    Step::new(Command::new("aws", args.iter().copied()))
}

fn is_weakening(result: &remediation::Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(e @ Error::UnsafeCommand { .. }) if e.to_string().contains("deny"))
}

fn set_up(world: &World) {
    world.aws(&["iam", "create-user", "--user-name", "U"]);
    for (name, effect) in [("Quarantine", "Deny"), ("Broad", "Allow")] {
        world.aws(&[
            "iam",
            "create-policy",
            "--policy-name",
            name,
            "--policy-document",
            &document(effect),
        ]);
        world.aws(&[
            "iam",
            "attach-user-policy",
            "--user-name",
            "U",
            "--policy-arn",
            &format!("arn:aws:iam::{ACCOUNT}:policy/{name}"),
        ]);
    }
    for (name, effect) in [("inline-deny", "Deny"), ("inline-allow", "Allow")] {
        world.aws(&[
            "iam",
            "put-user-policy",
            "--user-name",
            "U",
            "--policy-name",
            name,
            "--policy-document",
            &document(effect),
        ]);
    }
    for (bucket, effect) in [("held", "Deny"), ("open", "Allow")] {
        world.aws(&["s3api", "create-bucket", "--bucket", bucket]);
        world.aws(&[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            bucket,
            "--policy",
            &bucket_policy(effect, bucket),
        ]);
    }
}

#[tokio::test]
async fn removals_run_only_when_the_probe_finds_no_deny() {
    let world = World::start();
    set_up(&world);
    let probing = world.executor(CommandPolicy::default().probe_deny_removal(true));
    let user = user_target();
    let detach = |name: &str| {
        aws(&[
            "iam",
            "detach-user-policy",
            "--user-name",
            "U",
            "--policy-arn",
            &format!("arn:aws:iam::{ACCOUNT}:policy/{name}"),
        ])
    };

    // Without the option, both detaches are refused before anything runs.
    let plain = world.executor(CommandPolicy::default());
    for name in ["Quarantine", "Broad"] {
        let refused = plain.check(&detach(name), &user);
        assert!(is_weakening(&refused), "{name}: {refused:?}");
    }

    // With it: the deny is refused and stays attached ...
    let step = detach("Quarantine");
    probing.check(&step, &user).unwrap();
    let refused = probing.execute(&step, &user).await;
    assert!(is_weakening(&refused), "{refused:?}");
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("get-policy-version"), "{message}");
    assert!(world.attached().contains(&"Quarantine".to_owned()));

    // ... and the allow is detached, its two probe queries recorded.
    let outcome = probing.execute(&detach("Broad"), &user).await.unwrap();
    assert_eq!(outcome.status, StepStatus::Ok, "{}", outcome.stderr_tail);
    let verdicts: Vec<&str> = outcome.probes.iter().map(|p| p.verdict.as_str()).collect();
    assert_eq!(verdicts, ["next", "no_deny"]);
    assert_eq!(outcome.probes[0].argv[..2], ["aws", "iam"]);
    assert_eq!(world.attached(), ["Quarantine"]);

    // Inline policies: read with get-user-policy.
    let delete = |name: &str| {
        aws(&[
            "iam",
            "delete-user-policy",
            "--user-name",
            "U",
            "--policy-name",
            name,
        ])
    };
    let refused = probing.execute(&delete("inline-deny"), &user).await;
    assert!(is_weakening(&refused), "{refused:?}");
    let outcome = probing
        .execute(&delete("inline-allow"), &user)
        .await
        .unwrap();
    assert_eq!(outcome.status, StepStatus::Ok, "{}", outcome.stderr_tail);
    assert_eq!(world.inline(), ["inline-deny"]);

    // A probe that cannot read what it removes fails the step (retried),
    // and the removal does not run.
    let outcome = probing
        .execute(&delete("no-such-policy"), &user)
        .await
        .unwrap();
    assert_eq!(outcome.status, StepStatus::Failed);
    assert_eq!(outcome.probes.len(), 1);
    assert_eq!(outcome.probes[0].verdict, "failed");
}

#[tokio::test]
async fn bucket_policies_and_the_dry_run() {
    let world = World::start();
    set_up(&world);
    let policy = CommandPolicy::default().probe_deny_removal(true);
    let probing = world.executor(policy.clone());
    let delete = |bucket: &str| aws(&["s3api", "delete-bucket-policy", "--bucket", bucket]);

    // A dry run runs the probe's queries for real and plans (or refuses)
    // the removal as the real run would, changing nothing.
    let contexts = ContextMap::parse_aws_profiles(&format!("{ACCOUNT}=remediator")).unwrap();
    let dry = DryRunExecutor::new(policy, contexts)
        .with_query_executor(Arc::new(world.executor(CommandPolicy::default())));
    let refused = dry.execute(&delete("held"), &bucket_target("held")).await;
    assert!(is_weakening(&refused), "{refused:?}");
    let planned = dry
        .execute(&delete("open"), &bucket_target("open"))
        .await
        .unwrap();
    assert_eq!(planned.status, StepStatus::Planned);
    assert_eq!(planned.probes.len(), 1);
    world.aws(&["s3api", "get-bucket-policy", "--bucket", "open"]);

    let refused = probing
        .execute(&delete("held"), &bucket_target("held"))
        .await;
    assert!(is_weakening(&refused), "{refused:?}");
    world.aws(&["s3api", "get-bucket-policy", "--bucket", "held"]);
    let outcome = probing
        .execute(&delete("open"), &bucket_target("open"))
        .await
        .unwrap();
    assert_eq!(outcome.status, StepStatus::Ok, "{}", outcome.stderr_tail);
    assert_eq!(outcome.probes[0].verdict, "no_deny");
    let listed = world.aws(&["s3api", "list-buckets"]);
    assert!(listed.contains("open"));
    let gone = std::process::Command::new(world.venv.join("bin/aws"))
        .args([
            "--endpoint-url",
            &world.moto.endpoint(),
            "--region",
            "us-east-1",
        ])
        .args(["s3api", "get-bucket-policy", "--bucket", "open"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the open bucket's policy was deleted"
    );
}

/// az and gcloud, with the recording stand-in answering the probe's query:
/// the query runs first, in the finding's context, and its answer decides.
#[tokio::test]
async fn az_and_gcloud_rules_are_probed() {
    use remediation::executor::{AzureContext, GcpContext};
    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    const PROJECT: &str = "acme-prod";
    let contexts = ContextMap::new()
        .with_azure_subscription(SUB, AzureContext::new())
        .with_gcp_project(PROJECT, GcpContext::new());
    let policy = CommandPolicy::default().probe_deny_removal(true);
    let nsg =
        Target::new(Cloud::Azure, Some(SUB.to_owned())).with_resource(Resource::named("nsg1"));
    let rule =
        Target::new(Cloud::Gcp, Some(PROJECT.to_owned())).with_resource(Resource::named("fw1"));
    let delete_rule = Step::new(Command::new(
        "az",
        [
            "network",
            "nsg",
            "rule",
            "delete",
            "-g",
            "rg",
            "--nsg-name",
            "nsg1",
            "-n",
            "r1",
        ],
    ));
    let disable = Step::new(Command::new(
        "gcloud",
        ["compute", "firewall-rules", "update", "fw1", "--disabled"],
    ));
    let cases: [(&Step, &Target, &str, bool); 4] = [
        (&delete_rule, &nsg, r#"{"access": "Deny"}"#, false),
        (&delete_rule, &nsg, r#"{"access": "Allow"}"#, true),
        (
            &disable,
            &rule,
            r#"{"denied": [{"IPProtocol": "all"}]}"#,
            false,
        ),
        (
            &disable,
            &rule,
            r#"{"allowed": [{"IPProtocol": "tcp"}]}"#,
            true,
        ),
    ];
    for (step, target, answer, runs) in cases {
        let standin = support::StandIn::new();
        let executor = standin
            .wire(ProcessExecutor::new(policy.clone(), contexts.clone()))
            .with_env_var("STANDIN_STDOUT", answer);
        let result = executor.execute(step, target).await;
        let argvs: Vec<String> = standin.calls().iter().map(|c| c.argv.join(" ")).collect();
        let query = if step.command.program() == "az" {
            "az network nsg rule show --resource-group rg --nsg-name nsg1 --name r1"
        } else {
            "gcloud compute firewall-rules describe fw1 --format=json"
        };
        assert!(argvs[0].starts_with(query), "{argvs:?}");
        if runs {
            let outcome = result.unwrap();
            assert_eq!(outcome.status, StepStatus::Ok);
            assert_eq!(outcome.probes[0].verdict, "no_deny");
            assert_eq!(argvs.len(), 2, "{argvs:?}");
        } else {
            assert!(is_weakening(&result), "{result:?}");
            assert_eq!(argvs.len(), 1, "only the probe ran: {argvs:?}");
        }
    }
    // Without probes, deleting the rule is refused and disabling one is
    // not (the known gap the probe closes).
    let plain = CommandPolicy::default();
    assert!(plain.check_for(&delete_rule, &nsg).is_err());
    assert!(plain.check_for(&disable, &rule).is_ok());
}
