//! Tests of loop prevention: which callers are the worker's own, and the
//! parsing of `sts get-caller-identity`.

use super::*;
use crate::model::{CloudTrailRecord, PrismaAlert};

fn by(arn: &str, issuer: Option<&str>) -> Event {
    let mut identity = serde_json::json!({"type": "AssumedRole", "arn": arn});
    if let Some(issuer) = issuer {
        identity["sessionContext"] =
            serde_json::json!({"sessionIssuer": {"type": "Role", "arn": issuer}});
    }
    let record = serde_json::json!({"eventID": "e", "recipientAccountId": "111122223333", "userIdentity": identity});
    Event::CloudTrail(Box::new(
        CloudTrailRecord::from_text(&record.to_string()).unwrap(),
    ))
}

fn own(arns: &[&str]) -> OwnIdentities {
    arns.iter()
        .fold(OwnIdentities::new(), |o, a| o.identity(a).unwrap())
}

#[test]
fn a_role_matches_its_sessions_and_its_path() {
    let o = own(&["arn:aws:iam::111122223333:role/ops/team/remediator"]);
    for (caller, issuer) in [
        (
            "arn:aws:sts::111122223333:assumed-role/remediator/botocore-session-1",
            None,
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/remediator/i-0abc",
            None,
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/x/y",
            Some("arn:aws:iam::111122223333:role/ops/team/remediator"),
        ),
        ("arn:aws:iam::111122223333:role/remediator", None),
    ] {
        let (given, _) = o
            .caused_by(&by(caller, issuer))
            .unwrap_or_else(|| panic!("{caller}"));
        assert_eq!(given, "arn:aws:iam::111122223333:role/ops/team/remediator");
    }
    for caller in [
        "arn:aws:sts::444455556666:assumed-role/remediator/s", // another account
        "arn:aws-us-gov:sts::111122223333:assumed-role/remediator/s", // another partition
        "arn:aws:sts::111122223333:assumed-role/remediator-dev/s", // a longer name
        "arn:aws:sts::111122223333:assumed-role/dev/remediator", // the session, not the role
        "arn:aws:iam::111122223333:user/remediator",           // a user of that name
        "arn:aws:sts::111122223333:federated-user/remediator",
    ] {
        assert_eq!(o.caused_by(&by(caller, None)), None, "{caller}");
    }
}

#[test]
fn an_assumed_role_arn_stands_for_its_role_whatever_the_session() {
    let o = own(&["arn:aws:sts::111122223333:assumed-role/remediator/botocore-session-17"]);
    assert!(
        o.caused_by(&by(
            "arn:aws:sts::111122223333:assumed-role/remediator/botocore-session-99",
            None
        ))
        .is_some()
    );
    assert!(
        o.caused_by(&by(
            "arn:aws:sts::1:assumed-role/x/y",
            Some("arn:aws:iam::111122223333:role/a/b/remediator")
        ))
        .is_some()
    );
    assert!(
        o.caused_by(&by(
            "arn:aws:sts::444455556666:assumed-role/remediator/botocore-session-17",
            None
        ))
        .is_none()
    );
}

#[test]
fn users_and_the_root_match_exactly() {
    let o = own(&[
        "arn:aws:iam::111122223333:user/automation/remediator",
        "arn:aws:iam::210987654321:root",
    ]);
    assert!(
        o.caused_by(&by(
            "arn:aws:iam::111122223333:user/automation/remediator",
            None
        ))
        .is_some()
    );
    assert!(
        o.caused_by(&by("arn:aws:iam::210987654321:root", None))
            .is_some()
    );
    assert!(
        o.caused_by(&by("arn:aws:iam::111122223333:user/remediator", None))
            .is_none()
    );
    assert!(
        o.caused_by(&by("arn:aws:iam::111122223333:root", None))
            .is_none()
    );
}

#[test]
fn identities_that_are_not_principals_are_refused() {
    for bad in [
        "remediator",
        "arn:aws:iam::*:role/remediator",
        "arn:aws:s3:::bucket",
        "arn:aws:iam:::role/x",
    ] {
        assert!(OwnIdentities::new().identity(bad).is_err(), "{bad}");
    }
    let twice = own(&["arn:aws:iam::1:role/a/r", "arn:aws:sts::1:assumed-role/r/s"]);
    assert_eq!(twice.identities.len(), 1, "one role, given twice");
}

#[tokio::test]
async fn the_stage_skips_own_changes_with_the_identity_named() {
    let o = own(&["arn:aws:iam::111122223333:role/remediator"]);
    let delivery = Delivery::detached("m", "{}");
    match o
        .before_plan(
            &by("arn:aws:sts::111122223333:assumed-role/remediator/s", None),
            &delivery,
        )
        .await
    {
        StageDecision::Refuse {
            reject: false,
            code: "own_change",
            detail,
        } => {
            assert!(
                detail.contains("arn:aws:iam::111122223333:role/remediator"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    let other = by("arn:aws:sts::111122223333:assumed-role/dev/s", None);
    assert_eq!(
        o.before_plan(&other, &delivery).await,
        StageDecision::Proceed
    );
    // A Prisma audit-event alert carries the CloudTrail record it is about.
    let alert = PrismaAlert::from_text(
        r#"{"alertId":"P-9","resource":{"data":{"userIdentity":
            {"arn":"arn:aws:sts::111122223333:assumed-role/remediator/s"}}}}"#,
    )
    .unwrap();
    let event = Event::PrismaAlert(Box::new(alert));
    assert!(o.caused_by(&event).is_some());
}

#[test]
fn caller_identity_output_parses() {
    let out = br#"{"UserId": "AROAEXAMPLE:botocore-session-1", "Account": "111122223333",
        "Arn": "arn:aws:sts::111122223333:assumed-role/remediator/botocore-session-1"}"#;
    assert_eq!(
        parse_caller_identity(out).unwrap(),
        "arn:aws:sts::111122223333:assumed-role/remediator/botocore-session-1"
    );
    assert!(parse_caller_identity(b"not json").is_err());
    assert!(parse_caller_identity(br#"{"Arn": "nope"}"#).is_err());
}

#[test]
fn the_file_section_names_its_mistakes() {
    let file = IdentitiesFile {
        arns: vec!["arn:aws:iam::1:role/r".to_owned(), "role/x".to_owned()],
        discover_profiles: Vec::new(),
    };
    let e = file.compile().unwrap_err().to_string();
    assert!(e.contains("identities.arns[1]"), "{e}");
}

#[tokio::test]
async fn discovery_without_an_aws_cli_says_so() {
    let env = DiscoveryEnv::default().with_path("/nonexistent-dir");
    let e = discover(&["p".to_owned()], &env)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("`aws` not found"), "{e}");
}
