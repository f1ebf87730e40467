//! Tests of the exclusions stage: each selector, expiry, include failing
//! closed, tags carried and looked up, and lookups that fail deferring.

use super::*;
use crate::model::{CloudTrailRecord, PrismaAlert, Resource};
use std::sync::atomic::{AtomicUsize, Ordering};

fn prisma(extra: serde_json::Value) -> Event {
    let mut alert = serde_json::json!({
        "alertId": "P-1",
        "alertStatus": "open",
        "accountId": "111122223333",
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "policyId": "pol-1",
        "policyName": "S3 bucket is public",
        "severity": "High",
        "resourceId": "arn:aws:s3:::acme-public-site",
        "resourceName": "acme-public-site",
        "resource": {"cloudAccountGroups": ["prod", "payments"]},
    });
    if let (Some(a), Some(e)) = (alert.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            a.insert(k.clone(), v.clone());
        }
    }
    Event::PrismaAlert(Box::new(
        PrismaAlert::from_text(&alert.to_string()).unwrap(),
    ))
}

fn cloudtrail(caller: &str) -> Event {
    let record = serde_json::json!({
        "eventID": "e-1",
        "eventName": "CreateUser",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "userIdentity": {"type": "AssumedRole", "arn": caller},
    });
    Event::CloudTrail(Box::new(
        CloudTrailRecord::from_text(&record.to_string()).unwrap(),
    ))
}

fn plan_for(event: &Event, rule: &str, resource: &str) -> Plan {
    let target = event.target().with_resource(Resource::named(resource));
    Plan::new("cloudtrail-rules", target, Vec::new()).with_rule(rule)
}

fn excluding(selector: Selector) -> Exclusions {
    Exclusions::new().entry(Exclusion::exclude(selector, "because"))
}

async fn code(stage: &Exclusions, event: &Event, plan: Option<&Plan>) -> &'static str {
    match stage.decide(event, plan).await {
        StageDecision::Proceed => "proceed",
        StageDecision::Refuse { code, .. } | StageDecision::Defer { code, .. } => code,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn every_selector_excludes_what_it_names_and_only_that() {
    let alert = prisma(serde_json::json!({}));
    let s = Selector::new;
    let cases: Vec<(Selector, Selector)> = vec![
        (s().cloud(Cloud::Aws), s().cloud(Cloud::Azure)),
        (s().account("1111*").unwrap(), s().account("2222*").unwrap()),
        (
            s().account_group("pay*").unwrap(),
            s().account_group("dev").unwrap(),
        ),
        (s().region("us-*-1").unwrap(), s().region("eu-*").unwrap()),
        (s().rule("S3 bucket is public"), s().rule("pol-2")),
        (s().rule("pol-1"), s().rule("S3 bucket")),
        (s().severity("high"), s().severity("low")),
        (
            s().resource("*-public-site").unwrap(),
            s().resource("*-private").unwrap(),
        ),
        (
            s().resource("arn:aws:s3:::acme-*").unwrap(),
            s().resource("acme").unwrap(),
        ),
    ];
    for (i, (hit, miss)) in cases.into_iter().enumerate() {
        let planned = plan_for(&alert, "x", "acme-public-site");
        assert_eq!(
            code(&excluding(hit.clone()), &alert, None).await,
            "excluded",
            "case {i}: {hit:?}"
        );
        assert_eq!(
            code(&excluding(hit), &alert, Some(&planned)).await,
            "excluded",
            "case {i}"
        );
        // A rule the event cannot show waits for the plan, then proceeds.
        assert_eq!(
            code(&excluding(miss.clone()), &alert, None).await,
            "proceed",
            "case {i}: {miss:?}"
        );
        assert_eq!(
            code(&excluding(miss), &alert, Some(&planned)).await,
            "proceed",
            "case {i}"
        );
    }
    // Every selector must match: one miss is enough to proceed.
    let both = s().account("1111*").unwrap().region("eu-*").unwrap();
    assert_eq!(code(&excluding(both), &alert, None).await, "proceed");
}

#[tokio::test]
async fn principal_and_plan_only_selectors_on_cloudtrail_events() {
    let event = cloudtrail("arn:aws:sts::111122223333:assumed-role/breakglass/alice");
    let by_principal = excluding(
        Selector::new()
            .principal("arn:aws:sts::*:assumed-role/breakglass/*")
            .unwrap(),
    );
    assert_eq!(code(&by_principal, &event, None).await, "excluded");
    let other = cloudtrail("arn:aws:sts::111122223333:assumed-role/dev/bob");
    assert_eq!(code(&by_principal, &other, None).await, "proceed");

    // The rule and the resource of a CloudTrail event are in its plan only.
    let by_rule = excluding(Selector::new().rule("quarantine-new-users"));
    let by_resource = excluding(Selector::new().resource("svc-*").unwrap());
    let plan = plan_for(&event, "quarantine-new-users", "svc-deploy");
    for stage in [&by_rule, &by_resource] {
        assert_eq!(
            code(stage, &event, None).await,
            "proceed",
            "undecided before the plan"
        );
        assert_eq!(code(stage, &event, Some(&plan)).await, "excluded");
    }
    let other_plan = plan_for(&event, "glue-guard", "alice");
    assert_eq!(code(&by_rule, &event, Some(&other_plan)).await, "proceed");
    assert_eq!(
        code(&by_resource, &event, Some(&other_plan)).await,
        "proceed"
    );
}

#[tokio::test]
async fn the_detail_names_the_entry_and_its_reason() {
    let stage = Exclusions::new()
        .entry(Exclusion::exclude(
            Selector::new().account("9*").unwrap(),
            "not this one",
        ))
        .entry(Exclusion::exclude(
            Selector::new().region("us-east-1").unwrap(),
            "frozen region",
        ));
    match stage.decide(&prisma(serde_json::json!({})), None).await {
        StageDecision::Refuse {
            reject: false,
            code: "excluded",
            detail,
        } => {
            assert_eq!(detail, "exclusions[1] (frozen region)");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_entry_no_longer_excludes() {
    let alert = prisma(serde_json::json!({}));
    let selector = Selector::new().account("111122223333").unwrap();
    let past = Exclusions::new().entry(
        Exclusion::exclude(selector.clone(), "old").until(parse_expiry("2020-01-31").unwrap()),
    );
    assert_eq!(code(&past, &alert, None).await, "proceed");
    let future = Exclusions::new().entry(
        Exclusion::exclude(selector, "new").until(parse_expiry("2999-01-31T00:00:00Z").unwrap()),
    );
    assert_eq!(code(&future, &alert, None).await, "excluded");
}

#[test]
fn expiries_parse_as_written() {
    let at = |t: &str| parse_expiry(t).unwrap();
    // A date applies through that day.
    assert_eq!(at("2027-01-31"), at("2027-02-01T00:00:00Z"));
    assert_eq!(at("2027-01-31T20:00:00+02:00"), at("2027-01-31T18:00:00Z"));
    assert_eq!(at("2027-01-31T16:30:00-01:30"), at("2027-01-31T18:00:00Z"));
    assert_eq!(
        at("2027-01-31T18:00:00.5Z"),
        at("2027-01-31T18:00:00Z") + Duration::from_millis(500)
    );
    for bad in [
        "soon",
        "2027-13-01",
        "2027-01-31T18:00:00",
        "2027-01-31T18:00:00+0x:00",
        "",
    ] {
        assert!(parse_expiry(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn include_fails_closed() {
    let aws_high = Exclusions::new().entry(Exclusion::include(
        Selector::new()
            .cloud(Cloud::Aws)
            .severity("high")
            .severity("critical"),
        "high findings first",
    ));
    assert_eq!(
        code(&aws_high, &prisma(serde_json::json!({})), None).await,
        "proceed"
    );
    let low = prisma(serde_json::json!({"severity": "low"}));
    assert_eq!(code(&aws_high, &low, None).await, "excluded");
    // No severity at all: cannot be shown to match.
    let event = cloudtrail("arn:aws:sts::1:assumed-role/x/y");
    assert_eq!(code(&aws_high, &event, None).await, "excluded");
    match aws_high.decide(&low, None).await {
        StageDecision::Refuse { detail, .. } => {
            assert!(detail.contains("exclusions[0]"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    // An include on what only the plan tells waits for it, then decides.
    let by_rule = Exclusions::new().entry(Exclusion::include(
        Selector::new().rule("quarantine"),
        "one rule",
    ));
    assert_eq!(code(&by_rule, &event, None).await, "proceed");
    assert_eq!(
        code(&by_rule, &event, Some(&plan_for(&event, "quarantine", "u"))).await,
        "proceed"
    );
    assert_eq!(
        code(&by_rule, &event, Some(&plan_for(&event, "other", "u"))).await,
        "excluded"
    );
    // An expired include admits nothing (it never widens the scope).
    let expired = Exclusions::new().entry(
        Exclusion::include(Selector::new().cloud(Cloud::Aws), "trial")
            .until(parse_expiry("2020-01-01").unwrap()),
    );
    assert_eq!(
        code(&expired, &prisma(serde_json::json!({})), None).await,
        "excluded"
    );
    // An exclude wins over an include.
    let both = aws_high.entry(Exclusion::exclude(
        Selector::new().resource("acme-*").unwrap(),
        "site",
    ));
    assert_eq!(
        code(&both, &prisma(serde_json::json!({})), None).await,
        "excluded"
    );
}

/// Answers from a fixed map, or fails; counts its calls.
#[derive(Debug, Default)]
struct Tags {
    tags: Option<BTreeMap<String, String>>,
    calls: AtomicUsize,
}

#[async_trait]
impl TagLookup for Tags {
    async fn tags(&self, target: &Target) -> Result<BTreeMap<String, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(target.resource.is_some(), "asked with the resource");
        self.tags
            .clone()
            .ok_or_else(|| Error::Config("AccessDenied on tag:GetResources".to_owned()))
    }
}

#[tokio::test]
async fn tags_carried_by_the_alert_are_used_first() {
    let lookup = Arc::new(Tags::default());
    let stage = excluding(Selector::new().tag("remediation", "off*").unwrap())
        .with_tag_lookup(lookup.clone());
    let carried =
        prisma(serde_json::json!({"resource": {"resourceTags": {"remediation": "off-until-q3"}}}));
    assert_eq!(code(&stage, &carried, None).await, "excluded");
    let other = prisma(serde_json::json!({"resource": {"resourceTags": {"remediation": "on"}}}));
    assert_eq!(code(&stage, &other, None).await, "proceed");
    let none = prisma(serde_json::json!({"resource": {"resourceTags": {}}}));
    assert_eq!(code(&stage, &none, None).await, "proceed");
    assert_eq!(
        lookup.calls.load(Ordering::SeqCst),
        0,
        "the lookup was not needed"
    );
}

#[tokio::test]
async fn tags_are_looked_up_when_not_carried() {
    let lookup = Arc::new(Tags {
        tags: Some(BTreeMap::from([(
            "owner".to_owned(),
            "platform".to_owned(),
        )])),
        ..Tags::default()
    });
    let stage =
        excluding(Selector::new().tag("owner", "plat*").unwrap()).with_tag_lookup(lookup.clone());
    assert_eq!(
        code(&stage, &prisma(serde_json::json!({})), None).await,
        "excluded"
    );
    // A CloudTrail event's resource is bound by its plan: looked up then.
    let event = cloudtrail("arn:aws:sts::1:assumed-role/x/y");
    assert_eq!(code(&stage, &event, None).await, "proceed");
    assert_eq!(lookup.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        code(&stage, &event, Some(&plan_for(&event, "r", "bob"))).await,
        "excluded"
    );
    assert_eq!(lookup.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_tag_lookup_that_fails_defers_and_never_acts() {
    let failing = Arc::new(Tags::default());
    let stage = excluding(Selector::new().tag("remediation", "off").unwrap())
        .with_tag_lookup(failing.clone())
        .with_retry_after(Duration::from_secs(90));
    match stage.decide(&prisma(serde_json::json!({})), None).await {
        StageDecision::Defer {
            after,
            code,
            detail,
        } => {
            assert_eq!(
                (after, code),
                (Duration::from_secs(90), "exclusion_unresolved")
            );
            assert!(
                detail.contains("exclusions[0]") && detail.contains("AccessDenied"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    // No lookup configured and no tags carried: the same.
    let blind = excluding(Selector::new().tag("remediation", "off").unwrap());
    assert_eq!(
        code(&blind, &prisma(serde_json::json!({})), None).await,
        "exclusion_unresolved"
    );
    // An include on tags that cannot be read defers too.
    let scoped = Exclusions::new()
        .entry(Exclusion::include(
            Selector::new().tag("env", "prod").unwrap(),
            "prod only",
        ))
        .with_tag_lookup(failing);
    assert_eq!(
        code(&scoped, &prisma(serde_json::json!({})), None).await,
        "exclusion_unresolved"
    );
    // An entry that a cheaper selector already rules out needs no tags.
    let elsewhere = excluding(
        Selector::new()
            .account("999*")
            .unwrap()
            .tag("x", "y")
            .unwrap(),
    );
    assert_eq!(
        code(&elsewhere, &prisma(serde_json::json!({})), None).await,
        "proceed"
    );
}

#[test]
fn file_entries_compile_or_name_their_mistake() {
    let file: ExclusionFile = serde_json::from_str(
        r#"{"exclude": {"cloud": "aws", "account": ["1*", "2*"], "tags": {"a": "b*"}},
            "reason": "r", "expires": "2027-01-01"}"#,
    )
    .unwrap();
    let entry = file.compile("exclusions[0]").unwrap();
    assert_eq!(entry.selector.accounts.len(), 2);
    assert_eq!(entry.selector.clouds, [Cloud::Aws]);
    assert!(entry.expires.is_some());
    let bad: ExclusionFile =
        serde_json::from_str(r#"{"include": {"principal": "a\\b"}, "reason": "r"}"#).unwrap();
    let e = bad.compile("exclusions[2]").unwrap_err().to_string();
    assert!(e.contains("exclusions[2].include.principal"), "{e}");
}
