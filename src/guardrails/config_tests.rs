//! Tests of the guardrails file: the documented example, mistakes named by path.
use super::*;

#[test]
fn the_documented_example_parses() {
    let text = include_str!("config.rs")
        .split("//! ```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("//! ```\n").next())
        .expect("example in the module docs")
        .lines()
        .map(|l| {
            l.strip_prefix("//! ")
                .or(l.strip_prefix("//!"))
                .unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = GuardrailsFile::from_yaml(&text).expect("example parses");
    assert_eq!(file.rules.len(), 1);
    assert_eq!(file.rules[0].mode, Some(Mode::Shadow));
    assert_eq!(file.rules[0].trip.max_runs, Some(20));
    let store: Arc<dyn GuardrailStore> = Arc::new(crate::guardrails::MemoryGuardrails::new());
    let stages = Guardrails::from_file(&file, store)
        .expect("builds")
        .stages();
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "own-identities",
            "exclusions",
            "shadow-mode",
            "rate-limits",
            "circuit-breakers"
        ]
    );
    assert_eq!(file.exclusions.len(), 4);
    let ids = file.identities.as_ref().expect("identities");
    assert_eq!(ids.discover_profiles, ["remediator"]);
}

#[test]
fn mistakes_name_their_path() {
    let cases = [
        ("rules:\n  - rule: x\n    window: soon\n", "rules[0]"),
        (
            "rules:\n  - rule: x\n    mode: sometimes\n",
            "rules[0].mode",
        ),
        (
            "rate_limits:\n  default: {per_second: 1, brust: 2}\n",
            "rate_limits.default",
        ),
        (
            "rate_limits:\n  aws: {per_second: 0}\n",
            "rate_limits.aws.per_second",
        ),
        (
            "rate_limits:\n  targets:\n    - {per_second: 1}\n",
            "rate_limits.targets[0]",
        ),
        (
            "circuits:\n  every_rule: {window: 1m}\n",
            "circuits.every_rule",
        ),
        ("circuit: {}\n", "circuit: unknown field"),
        (
            "exclusions:\n  - exclude: {acount: \"1\"}\n    reason: x\n",
            "exclusions[0].exclude: unknown field `acount`",
        ),
        (
            "exclusions:\n  - exclude: {resource: \"a\\\\b\"}\n    reason: x\n",
            "exclusions[0].exclude.resource",
        ),
        (
            "exclusions:\n  - exclude: {account: \"1\"}\n    reason: x\n    expires: soon\n",
            "exclusions[0].expires",
        ),
        (
            "exclusions:\n  - exclude: {account: \"1\"}\n",
            "exclusions[0]: missing field `reason`",
        ),
        (
            "exclusions:\n  - exclude: {}\n    reason: x\n",
            "exclusions[0].exclude",
        ),
        (
            "exclusions:\n  - {exclude: {account: \"1\"}, include: {account: \"2\"}, reason: x}\n",
            "exclusions[0]: give exactly one",
        ),
        ("identities: {arns: [\"role/x\"]}\n", "identities.arns[0]"),
        ("identities: {arn: []}\n", "identities: unknown field `arn`"),
    ];
    for (text, path) in cases {
        let e = GuardrailsFile::from_yaml(text).expect_err(text).to_string();
        assert!(e.contains(path), "{text:?}: {e}");
    }
    let e = GuardrailsFile::from_json(r#"{"rules": [{"rule": "x", "max_runs": -1}]}"#)
        .expect_err("negative")
        .to_string();
    assert!(e.contains("rules[0]"), "{e}");
}
