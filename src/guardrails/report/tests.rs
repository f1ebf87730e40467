//! The audit report over a handwritten audit file: every decision, unknown
//! fields, lines that are not records, and both renderings.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// Each record is its own delivery.
static NEXT: AtomicU32 = AtomicU32::new(0);

const USER: &str = "arn:aws:iam::123456789012:user/alice";

fn step(argv: &str, status: &str) -> Value {
    serde_json::json!({
        "argv": argv.split_whitespace().collect::<Vec<_>>(),
        "status": status,
        "duration_ms": 3,
    })
}

/// A record as the pipeline writes it, plus a field it does not know.
fn record(
    rule: Option<&str>,
    decision: &str,
    code: &str,
    account: &str,
    steps: &[Value],
) -> String {
    let mut r = serde_json::json!({
        "time": "2026-12-07T18:00:00.000Z",
        "source": "memory",
        "message_id": format!("m-{}", NEXT.fetch_add(1, Ordering::Relaxed)),
        "delivery_count": 1,
        "kind": "prisma_alert",
        "account_id": account,
        "cloud": "aws",
        "decision": decision,
        "reason": format!("{code}: detail of {decision}"),
        "reason_code": code,
        "planner": "alert-cli",
        "steps": steps,
        "settle": "ack",
        "from_a_later_version": {"nested": [1, 2]},
    });
    if let Some(rule) = rule {
        r["rule"] = rule.into();
    }
    r.to_string()
}

fn file() -> String {
    let attach = format!("aws iam attach-user-policy --user-arn {USER}");
    let stop = "aws ec2 stop-instances --instance-ids i-0123456789abcdef0";
    let mut executed: Value = serde_json::from_str(&record(
        Some("p-1"),
        "executed",
        "executed",
        "111111111111",
        &[step(stop, "ok")],
    ))
    .unwrap();
    executed["annotations"] =
        serde_json::json!({"resource": "aws:111111111111/i-0123456789abcdef0"});
    let mut rejected: Value = serde_json::from_str(&record(
        Some("p-1"),
        "rejected",
        "unsafe_command",
        "111111111111",
        &[step("aws s3 cp x y", "not_run")],
    ))
    .unwrap();
    rejected["refusal"] = "operation_not_allowed".into();
    let mut rejected_too = rejected.clone();
    rejected_too["message_id"] = "m-other".into();
    // Written again when settling went otherwise: the same delivery attempt.
    let mut again = executed.clone();
    again["settle_error"] = "the dead-letter queue refused it".into();
    let lines = [
        executed.to_string(),
        record(
            Some("p-1"),
            "failed",
            "step_failed",
            "222222222222",
            &[
                step(stop, "ok"),
                step("aws ec2 x --group-id sg-0abc1234", "failed"),
                step("aws ec2 y --group-id sg-0fff1234", "not_run"),
            ],
        ),
        rejected.to_string(),
        rejected_too.to_string(),
        record(Some("p-1"), "deferred", "blast_radius", "111111111111", &[]),
        String::new(),
        "not json at all".to_owned(),
        record(
            Some("shadowed"),
            "shadow",
            "shadow",
            "333333333333",
            &[step(&attach, "not_run")],
        ),
        record(
            Some("shadowed"),
            "shadow",
            "shadow",
            "333333333333",
            &[step(&attach, "not_run")],
        ),
        record(
            Some("shadowed"),
            "shadow",
            "shadow",
            "444444444444",
            &[step(stop, "not_run"), step(&attach, "not_run")],
        ),
        r#"{"decision": 5}"#.to_owned(),
        record(
            None,
            "planned",
            "planned",
            "555555555555",
            &[step(stop, "planned")],
        ),
        record(Some(""), "skipped", "not_open", "", &[]),
        r#"{"no_decision": true}"#.to_owned(),
        record(Some("p-2"), "retired_decision", "old", "111111111111", &[]),
        again.to_string(),
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn report() -> AuditReport {
    let mut bytes = file().into_bytes();
    // A line that is not UTF-8 is skipped like any other unreadable line.
    bytes.extend_from_slice(b"{\"decision\": \"exec\xff\"}\n");
    AuditReport::from_reader(&bytes[..]).unwrap()
}

#[test]
fn records_are_counted_per_rule_and_decision() {
    let report = report();
    assert_eq!(report.records, 11);
    assert_eq!(report.unreadable, 4);
    assert_eq!(report.unreadable_lines, [7, 11, 14, 17]);
    assert_eq!(report.rewritten, 1);
    let rules: Vec<&str> = report.rules.keys().map(String::as_str).collect();
    // No rule: the planner; a blank rule too.
    assert_eq!(rules, ["alert-cli", "p-1", "p-2", "shadowed"]);
    let p1 = &report.rules["p-1"];
    assert_eq!(p1.records, 5);
    let decisions: Vec<(&str, u64)> = p1.decisions.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    assert_eq!(
        decisions,
        [
            ("deferred", 1),
            ("executed", 1),
            ("failed", 1),
            ("rejected", 2)
        ]
    );
    assert_eq!(p1.reasons["blast_radius"], 1);
    assert_eq!(p1.reasons["unsafe_command"], 2);
    assert_eq!(report.rules["alert-cli"].decisions["planned"], 1);
    assert_eq!(report.rules["alert-cli"].decisions["skipped"], 1);
    assert_eq!(report.rules["p-2"].decisions["retired_decision"], 1);
    for decision in DECISIONS {
        assert!(report.decisions.contains_key(decision), "{decision}");
    }
}

#[test]
fn reach_counts_steps_that_ran_and_plans_that_would_have() {
    let report = report();
    let p1 = &report.rules["p-1"];
    let accounts: Vec<&str> = p1.touched.accounts.iter().map(String::as_str).collect();
    // Deferred and rejected records ran nothing.
    assert_eq!(accounts, ["111111111111", "222222222222"]);
    let resources: Vec<&str> = p1.touched.resources.iter().map(String::as_str).collect();
    // The annotated resource is not listed again from the argv; a step
    // that did not run (sg-0fff…) touched nothing.
    assert_eq!(
        resources,
        [
            "aws:111111111111/i-0123456789abcdef0",
            "i-0123456789abcdef0",
            "sg-0abc1234"
        ]
    );
    assert!(p1.would_touch.accounts.is_empty());
    let shadowed = &report.rules["shadowed"];
    assert!(shadowed.touched.resources.is_empty());
    let would: Vec<&str> = shadowed
        .would_touch
        .resources
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(would, [USER, "i-0123456789abcdef0"]);
    assert_eq!(shadowed.would_touch.accounts.len(), 2);
    assert_eq!(
        report.rules["alert-cli"].would_touch.accounts,
        BTreeSet::from(["555555555555".to_owned()])
    );
}

#[test]
fn refusals_and_shadow_plans_are_grouped() {
    let report = report();
    assert_eq!(
        report.rules["p-1"].refusals,
        [RefusalCount {
            code: "unsafe_command".into(),
            refusal: Some("operation_not_allowed".into()),
            count: 2,
            example: Some("unsafe_command: detail of rejected".into()),
        }]
    );
    let plans = &report.rules["shadowed"].shadow_plans;
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0].count, 2);
    assert_eq!(plans[0].argv.len(), 1);
    assert_eq!(plans[0].argv[0][2], "attach-user-policy");
    assert_eq!((plans[1].count, plans[1].argv.len()), (1, 2));
}

#[test]
fn the_text_rendering_is_a_table_then_each_rule() {
    let text = report().render_text();
    assert!(
        text.starts_with(
            "audit: 11 records in 4 rules; 1 record written again on settling, counted once; \
             4 unreadable lines skipped (line 7, 11, 14, 17)"
        ),
        "{text}"
    );
    let header = text.lines().nth(2).unwrap();
    assert!(
        header.starts_with("rule       records  executed  planned  skipped  failed  rejected  deferred  shadow  retired_decision  accounts  resources"),
        "{header}"
    );
    let p1 = text.lines().find(|l| l.starts_with("p-1 ")).unwrap();
    let cells: Vec<&str> = p1.split_whitespace().collect();
    assert_eq!(
        cells,
        ["p-1", "5", "1", "-", "-", "1", "2", "1", "-", "-", "2", "3"]
    );
    assert!(text.contains("== shadowed (3 records)"), "{text}");
    assert!(
        text.contains(&format!(
            "        2 × aws iam attach-user-policy --user-arn {USER}\n"
        )),
        "{text}"
    );
    assert!(text.contains("then aws iam attach-user-policy"), "{text}");
    assert!(
        text.contains(
            "2 × unsafe_command (operation_not_allowed): e.g. unsafe_command: detail of rejected"
        ),
        "{text}"
    );
    assert!(
        text.contains("touched: 2 accounts: 111111111111, 222222222222"),
        "{text}"
    );
}

#[test]
fn the_json_rendering_is_for_a_pipeline() {
    let json: Value = serde_json::from_str(&report().to_json()).unwrap();
    assert_eq!(json["records"], 11);
    assert_eq!(json["rules"]["p-1"]["decisions"]["rejected"], 2);
    assert_eq!(json["rules"]["shadowed"]["shadow_plans"][0]["count"], 2);
    assert_eq!(
        json["rules"]["p-1"]["refusals"][0]["refusal"],
        "operation_not_allowed"
    );
    assert_eq!(
        json["rules"]["shadowed"]["would_touch"]["accounts"],
        serde_json::json!(["333333333333", "444444444444"])
    );
}

#[test]
fn an_empty_file_is_an_empty_report() {
    let report = AuditReport::from_reader(&b""[..]).unwrap();
    assert_eq!(report, AuditReport::default());
    assert!(
        report
            .render_text()
            .starts_with("audit: 0 records in 0 rules\n")
    );
}

#[test]
fn arguments_with_spaces_are_quoted() {
    assert_eq!(
        shown_argv(&["a".into(), "b c".into(), String::new(), "it's".into()]),
        r"a 'b c' '' 'it'\''s'"
    );
}
