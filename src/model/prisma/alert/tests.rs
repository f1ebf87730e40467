//! Tests of [`PrismaAlert`](super::PrismaAlert): the index against serde_json
//! (fixtures, edge cases, mutants) and the accessors over every shape.

use super::*;

/// The scanner's fast path reads every fixture, and reads it exactly as
/// serde_json does.
#[test]
fn scanner_reads_fixtures_as_serde_json_does() {
    for text in crate::model::json::fixture_objects("prisma") {
        AlertIndex::scan_agrees(&text, true).unwrap();
    }
}

#[test]
fn scanner_and_serde_json_agree_on_edge_cases() {
    for (text, ok) in [
        (r#"{"alertId":"x",}"#, false),
        (r#"{"alertId":"x""#, false),
        (r#"{"alertId" "x"}"#, false),
        (r#"{"alertId":"x"}x"#, false),
        (r#"{"alertId":"x"} {}"#, false),
        (r#"{,"alertId":"x"}"#, false),
        (r#"{"alertId":"x",,"id":"y"}"#, false),
        (r#"{"alertId":"x","alertId":"y"}"#, false),
        (r#"{"alertId":1}"#, false),
        (r#"{"alertId":"\ud800"}"#, false),
        (r#"{"resource":"\ud800"}"#, false),
        (
            r#"{"alertRemediationCli":{"cliScript":"a","cliScript":"b"}}"#,
            false,
        ),
        (r#"{"metadata":[]}"#, false),
        (r#"{"policyLabels":[1]}"#, false),
        (r#"{"alertTs":"soon","alertTs":1}"#, false),
        (r#"{"alertId":null,"alertId":"y"}"#, true),
        (r#"{"x":"\ud800","alertId":"\u00e9\n"}"#, true),
        (
            r#"{"alertId":"\ud83d\ude00 \/\b\f\r\t\\\" \u0000\uFFFF"}"#,
            true,
        ),
        (r#"{"alertId":"\/\b\f\r\t\\\" \u0000\uFFFF\u00e9\n"}"#, true),
        (r#"{"alertId":"a\ude00"}"#, false),
        (r#" {"alertId":"x","resource":"r","metadata":null} "#, true),
        (
            r#"{"policyLabels":"[\"a\"]","alertTs":"2020-01-01T00:00:00Z"}"#,
            true,
        ),
        ("{}", true),
    ] {
        let (_, parsed) = AlertIndex::both_readings(text);
        assert_eq!(parsed.is_ok(), ok, "serde_json on {text}: {parsed:?}");
        // Every valid text here takes the fast path (no key has escapes).
        AlertIndex::scan_agrees(text, ok).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    /// On hostile edits of real alerts, the scanner never accepts what
    /// serde_json rejects, and never indexes differently.
    #[test]
    fn scanner_agrees_with_serde_json_on_mutants(
        text in proptest::prelude::prop_oneof![
            crate::model::json::mutants(include_str!("../../../../tests/fixtures/prisma/schrius-high-alert.json")),
            crate::model::json::mutants(include_str!("../../../../tests/fixtures/prisma/pc-docs-iam-remediation-sqs-alert.json")),
            crate::model::json::mutants(r#"{"alertId":"P-1","alertRemediationCli":{"cliScript":"aws s3 \"x\" \u00e9"},"resource":{"id":"r\n","data":{"a":[1,2,{"b":null}]}},"policyLabels":"[\"a\"]","metadata":{"remediable":"true"},"alertTs":"2020-01-01T00:00:00Z"}"#),
        ]
    ) {
        if let Err(e) = AlertIndex::scan_agrees(&text, false) {
            return Err(proptest::test_runner::TestCaseError::fail(e));
        }
    }
}

#[test]
fn id_is_required() {
    let err = PrismaAlert::from_slice(br#"{"alertStatus":"open"}"#).unwrap_err();
    assert!(serde_json::from_str::<AlertDetails>(r#"{"alertStatus":"open"}"#).is_err());
    assert!(err.to_string().contains("without an id"), "{err}");
    assert!(PrismaAlert::from_slice(br#"{"alertId":""}"#).is_err());
}

#[test]
fn index_spans_escapes_and_duplicates() {
    // Escaped strings are unescaped into the side buffer, others are spans.
    let a = PrismaAlert::from_slice(
        b" \n{\"alertId\":\"P-\\u0031\",\"accountName\":\"a\\\"b\",\"region\":\"\\u00e9u\",\
              \"resource\":{\"resourceName\":\"r\\n\"},\"policyLabels\":[\"x\\\"y\"]} \t",
    )
    .unwrap();
    assert_eq!(a.id(), "P-1");
    assert_eq!(a.account_name(), Some("a\"b"));
    assert_eq!(a.region(), Some("\u{e9}u"));
    assert_eq!(a.resource_name(), Some("r\n"));
    assert_eq!(a.labels(), vec!["x\"y".to_owned()]);
    assert!(a.raw().starts_with('{') && a.raw().ends_with('}'));
    assert_eq!(a, PrismaAlert::from_text(a.raw()).unwrap());

    // A field sent twice is an error, unless the first was null.
    let dup = PrismaAlert::from_slice(br#"{"alertId":"P-1","alertId":"P-2"}"#).unwrap_err();
    assert!(
        dup.to_string().contains("duplicate field `alertId`"),
        "{dup}"
    );
    let nulled = PrismaAlert::from_slice(br#"{"alertId":null,"alertId":"P-2"}"#).unwrap();
    assert_eq!(nulled.id(), "P-2");
    assert!(PrismaAlert::from_slice(br#"{"alertId":"P","resource":"t","resource":{}}"#).is_err());

    // Wrong types are still errors, as in the typed view.
    for bad in [
        r#"{"alertId":1}"#,
        r#"{"alertId":"P","policyLabels":[1]}"#,
        r#"{"alertId":"P","policy":{"labels":7}}"#,
        r#"{"alertId":"P","metadata":{"remediable":1}}"#,
        r#"{"alertId":"P","alertTs":true}"#,
        r#"{"alertId":"P","account":"x"}"#,
        r#"{"alertId":"P","alertRemediationCli":3}"#,
        r#"{"alertId":"P"} x"#,
        "null",
    ] {
        assert!(PrismaAlert::from_slice(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn flags_and_times_keep_their_fallbacks() {
    // A remediable that is sent but unreadable does not fall back.
    let a = PrismaAlert::from_slice(
        br#"{"alertId":"P","metadata":{"remediable":"maybe"},"policy":{"remediable":true}}"#,
    )
    .unwrap();
    assert_eq!(a.remediable(), None);
    let a = PrismaAlert::from_slice(
        br#"{"alertId":"P","metadata":{},"policy":{"remediable":" TRUE "}}"#,
    )
    .unwrap();
    assert_eq!(a.remediable(), Some(true));
    let t = |ts: &str| {
        PrismaAlert::from_slice(format!(r#"{{"alertId":"P",{ts}}}"#).as_bytes())
            .unwrap()
            .alert_time_millis()
    };
    assert_eq!(t(r#""alertTs":"1970-01-01T00:00:01Z""#), Some(1000));
    assert_eq!(t(r#""alertTs":12.9"#), Some(12));
    assert_eq!(t(r#""alertTs":-5"#), Some(-5));
    assert_eq!(t(r#""alertTs":"soon","alertTime":5"#), None);
    assert_eq!(t(r#""alertTs":null,"alertTime":5"#), Some(5));
}

#[test]
fn accessors_cover_the_shapes() {
    let nested = PrismaAlert::from_slice(
        br#"{"alertId":"I-1","alertStatus":"Resolved","metadata":{"remediable":true},
                "account":{"id":"42","cloudType":"aws"},"region":"global",
                "policy":{"name":"p","labels":"[\"a\"]"}}"#,
    )
    .unwrap();
    assert_eq!(nested.id(), "I-1");
    assert!(!nested.is_open());
    assert_eq!(nested.remediable(), Some(true));
    assert_eq!(nested.account_id(), Some("42"));
    assert_eq!(nested.region(), Some("global"));
    assert_eq!(nested.labels(), vec!["a".to_owned()]);
    assert_eq!(nested.policy_name(), Some("p"));

    let api = PrismaAlert::from_slice(
        br#"{"id":"P-1","status":"open","policy":{"remediable":false},
                "resource":{"id":"r","accountId":"7","regionId":"us-east-2","cloudType":"aws"}}"#,
    )
    .unwrap();
    assert_eq!(api.id(), "P-1");
    assert!(api.is_open());
    assert_eq!(api.remediable(), Some(false));
    assert_eq!(api.account_id(), Some("7"));
    assert_eq!(api.region(), Some("us-east-2"));
    assert_eq!(api.cloud_type(), Some("aws"));
    assert_eq!(api.resource_id(), Some("r"));
}

#[test]
fn account_groups_and_resource_tags() {
    let alert = PrismaAlert::from_text(
        r#"{"alertId":"P-1","resource":{"cloudAccountGroups":["prod","payments"],
            "resourceTags":{"env":"prod","owner":"alice","n":3}}}"#,
    )
    .unwrap();
    assert_eq!(alert.account_groups(), ["prod", "payments"]);
    let tags = alert.resource_tags().unwrap();
    assert_eq!(tags["env"], "prod");
    assert_eq!(tags["n"], "3");
    let listed = PrismaAlert::from_text(
        r#"{"alertId":"P-2","resource":{"resourceTags":[{"key":"env","value":"dev"}]}}"#,
    )
    .unwrap();
    assert_eq!(listed.resource_tags().unwrap()["env"], "dev");
    // Not carried (null, as in the published audit-event alert) is not "no tags".
    let fixture =
        include_str!("../../../../tests/fixtures/prisma/schrius-delete-subnet-event.json");
    let alert = PrismaAlert::from_text(fixture).unwrap();
    assert_eq!(alert.resource_tags(), None);
    assert!(alert.account_groups().is_empty());
    let empty =
        PrismaAlert::from_text(r#"{"alertId":"P-3","resource":{"resourceTags":{}}}"#).unwrap();
    assert_eq!(empty.resource_tags(), Some(Default::default()));
}
