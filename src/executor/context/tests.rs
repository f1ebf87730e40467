//! The context map's tests: which profile, region, subscription and project each target's steps get.

use super::*;
use crate::plan::Command;
use std::path::Path;

const SUB: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";

fn step(args: &[&str]) -> Step {
    Step::new(Command::new("aws", args.iter().copied()))
}

fn az(args: &[&str]) -> Step {
    Step::new(Command::new("az", args.iter().copied()))
}

fn gcloud(args: &[&str]) -> Step {
    Step::new(Command::new("gcloud", args.iter().copied()))
}

fn argv(ctx: &ExecContext, step: &Step) -> String {
    ctx.argv(&step.command).join(" ")
}

fn aws(account: Option<&str>, region: Option<&str>) -> Target {
    let t = Target::new(Cloud::Aws, account.map(str::to_owned));
    match region {
        Some(r) => t.with_region(r),
        None => t,
    }
}

#[test]
fn maps_account_to_profile_and_region() {
    let map = ContextMap::new().with_aws_profile("123456789012", "prod");
    let env = map
        .resolve(
            &step(&["s3", "ls"]),
            &aws(Some("123456789012"), Some("eu-west-1")),
        )
        .unwrap()
        .env;
    assert_eq!(env["AWS_PROFILE"], "prod");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");
    let env = map
        .resolve(&step(&["iam"]), &aws(Some("123456789012"), Some("global")))
        .unwrap()
        .env;
    assert_eq!(env["AWS_REGION"], "us-east-1");
    let env = map
        .resolve(
            &step(&["ec2", "--region", "ap-south-1"]),
            &aws(Some("123456789012"), Some("eu-west-1")),
        )
        .unwrap()
        .env;
    assert!(!env.contains_key("AWS_REGION"));
    assert!(!env.contains_key("AWS_DEFAULT_REGION"));
}

#[test]
fn unmapped_accounts_are_refused_unless_default() {
    let map = ContextMap::new().with_aws_profile("123456789012", "prod");
    for target in [aws(Some("210987654321"), None), aws(None, None)] {
        let err = map.resolve(&step(&["s3"]), &target).unwrap_err();
        assert!(matches!(err, Error::UnmappedAccount { .. }), "{err}");
    }
    let map = map.with_default_aws_profile("fallback");
    let env = map.resolve(&step(&["s3"]), &aws(None, None)).unwrap().env;
    assert_eq!(env["AWS_PROFILE"], "fallback");
    let azure = Target::new(Cloud::Azure, Some(SUB.to_owned()));
    assert!(matches!(
        map.resolve(&az(&["vm", "list"]), &azure),
        Err(Error::UnmappedAccount { .. })
    ));
}

#[test]
fn parses_profile_lists() {
    let map = ContextMap::parse_aws_profiles(" 123456789012=default, 210987654321=prod ,").unwrap();
    assert_eq!(map.aws_profile(Some("210987654321")), Some("prod"));
    assert_eq!(map.aws_profile(Some("000000000000")), None);
    let map = ContextMap::parse_aws_profiles("*=ops").unwrap();
    assert_eq!(map.aws_profile(Some("000000000000")), Some("ops"));
    for bad in [
        "123=prod",
        "123456789012",
        "123456789012=",
        "123456789012=a b",
    ] {
        assert!(ContextMap::parse_aws_profiles(bad).is_err(), "{bad}");
    }
}

#[test]
fn azure_subscriptions_add_the_flag_and_config_dir() {
    let map = ContextMap::new()
        .with_azure_subscription(
            SUB.to_ascii_uppercase(),
            AzureContext::new().with_config_dir("/etc/az/prod"),
        )
        .with_azure_mapping("11111111-2222-3333-4444-555555555555".parse().unwrap());
    let target = Target::new(Cloud::Azure, Some(SUB.to_owned()));
    let s = az(&["storage", "account", "update", "-n", "x"]);
    let ctx = map.resolve(&s, &target).unwrap();
    assert_eq!(
        argv(&ctx, &s),
        format!("az storage account update -n x --subscription {SUB}")
    );
    assert_eq!(ctx.env[AZURE_CONFIG_DIR], "/etc/az/prod");
    // Tenant-level groups take no --subscription.
    let s = az(&["ad", "user", "update", "--id", "u"]);
    assert!(map.resolve(&s, &target).unwrap().extra_args.is_empty());
    // Naming the finding's own subscription is fine; another one is refused.
    let s = az(&["vm", "stop", "--subscription", &SUB.to_ascii_uppercase()]);
    assert!(map.resolve(&s, &target).unwrap().extra_args.is_empty());
    let s = az(&[
        "vm",
        "stop",
        "--subscription=11111111-2222-3333-4444-555555555555",
    ]);
    let err = map.resolve(&s, &target).unwrap_err();
    assert!(matches!(err, Error::UnsafeCommand { .. }), "{err}");
    assert!(map.check(&s, &target).is_err());
    // Unmapped subscription, and no subscription at all.
    for t in [
        Target::new(
            Cloud::Azure,
            Some("22222222-2222-3333-4444-555555555555".to_owned()),
        ),
        Target::new(Cloud::Azure, None),
    ] {
        let err = map.resolve(&az(&["vm", "list"]), &t).unwrap_err();
        assert!(matches!(err, Error::UnmappedAccount { .. }), "{err}");
    }
    // Without the flag, the config dir alone selects the subscription.
    let map = ContextMap::new().with_azure_subscription(
        SUB,
        AzureContext::new()
            .with_config_dir("/d")
            .without_subscription_flag(),
    );
    let s = az(&["vm", "list", "--", "x"]);
    let ctx = map.resolve(&s, &target).unwrap();
    assert_eq!(argv(&ctx, &s), "az vm list -- x");
}

#[test]
fn gcp_projects_set_project_and_config() {
    let map = ContextMap::new().with_gcp_project(
        "prod-project-1",
        GcpContext::new().with_config_dir("/etc/gcloud/prod"),
    );
    let target = Target::new(Cloud::Gcp, Some("prod-project-1".to_owned()));
    let s = gcloud(&["storage", "buckets", "update", "gs://b", "--", "x"]);
    let ctx = map.resolve(&s, &target).unwrap();
    assert_eq!(
        argv(&ctx, &s),
        "gcloud storage buckets update gs://b --project prod-project-1 -- x"
    );
    assert_eq!(ctx.env[CLOUDSDK_CORE_PROJECT], "prod-project-1");
    assert_eq!(ctx.env[CLOUDSDK_CONFIG], "/etc/gcloud/prod");
    let own = gcloud(&[
        "compute",
        "instances",
        "stop",
        "vm",
        "--project=prod-project-1",
    ]);
    assert!(map.resolve(&own, &target).unwrap().extra_args.is_empty());
    let other = gcloud(&[
        "compute",
        "instances",
        "stop",
        "vm",
        "--project",
        "other-proj",
    ]);
    let err = map.resolve(&other, &target).unwrap_err();
    assert!(matches!(err, Error::UnsafeCommand { .. }), "{err}");
    let unmapped = Target::new(Cloud::Gcp, Some("other-proj".to_owned()));
    let err = map.resolve(&s, &unmapped).unwrap_err();
    assert!(matches!(err, Error::UnmappedAccount { .. }), "{err}");
}

#[test]
fn a_cli_must_act_on_its_targets_cloud() {
    let map = ContextMap::new()
        .with_default_aws_profile("p")
        .with_azure_subscription(SUB, AzureContext::new())
        .with_gcp_project("prod-project-1", GcpContext::new());
    let aws_target = aws(Some("123456789012"), None);
    assert!(
        map.check(&gcloud(&["projects", "list"]), &aws_target)
            .is_err()
    );
    assert!(map.check(&az(&["vm", "list"]), &aws_target).is_err());
    let gcp = Target::new(Cloud::Gcp, Some("prod-project-1".to_owned()));
    let err = map.resolve(&step(&["s3", "ls"]), &gcp).unwrap_err();
    assert!(err.to_string().contains("acts on aws"), "{err}");
    assert!(map.check(&gcloud(&["projects", "list"]), &gcp).is_ok());
}

#[test]
fn parses_azure_and_gcp_mappings() {
    let m: AzureSubscriptionMapping = format!("{}=/etc/az", SUB.to_ascii_uppercase())
        .parse()
        .unwrap();
    assert_eq!(m.subscription, SUB);
    assert_eq!(m.context.config_dir.as_deref(), Some(Path::new("/etc/az")));
    for bad in [
        "sub",
        "0b1f6471-1bf0-4dda-aec3-cb9272f0959",
        &format!("{SUB}=rel/dir"),
    ] {
        assert!(bad.parse::<AzureSubscriptionMapping>().is_err(), "{bad}");
    }
    let m: GcpProjectMapping = "prod-project-1".parse().unwrap();
    assert_eq!(m.project, "prod-project-1");
    assert_eq!(m.context, GcpContext::new());
    assert!(
        "example.com:my-project"
            .parse::<GcpProjectMapping>()
            .is_ok()
    );
    for bad in [
        "Prod-Project",
        "short",
        "proj-",
        "1project-x",
        "a b c d e f",
    ] {
        assert!(bad.parse::<GcpProjectMapping>().is_err(), "{bad}");
    }
}

#[test]
fn clis_name_the_mapped_clouds() {
    assert!(ContextMap::new().clis().is_empty());
    let map = ContextMap::new().with_default_aws_profile("p");
    assert_eq!(map.clis(), ["aws"]);
    let map = ContextMap::new()
        .with_gcp_project("proj", GcpContext::new())
        .with_azure_subscription("00000000-0000-0000-0000-000000000000", AzureContext::new());
    assert_eq!(map.clis(), ["az", "gcloud"]);
}
