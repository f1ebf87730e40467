//! The built-in specs parse strictly, cover every remediating operation of
//! the catalog, and name only options the CLIs have.

use super::types::{Constraint, Specs};
use crate::plan::policy::catalog;
use crate::plan::policy::reader::tables;

fn strict(program: &str) -> Specs {
    let text = match program {
        "aws" => include_str!("aws.yaml"),
        "az" => include_str!("az.yaml"),
        "gcloud" => include_str!("gcloud.yaml"),
        _ => include_str!("gsutil.yaml"),
    };
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("spec/{program}.yaml: {e}"))
}

#[test]
fn every_remediating_operation_has_a_spec_and_every_spec_an_operation() {
    let catalog = catalog::builtin();
    for program in ["aws", "az", "gcloud", "gsutil"] {
        let specs = strict(program);
        assert_eq!(specs.len(), super::builtin()[program].len());
        let ops = &catalog[program];
        for (path, class) in ops {
            if *class == crate::plan::policy::OperationClass::Remediating {
                assert!(specs.contains_key(path), "{program} {path}: no spec");
            }
        }
        for path in specs.keys() {
            assert!(
                ops.contains_key(path),
                "{program} {path}: spec of no catalog operation"
            );
        }
    }
}

#[test]
fn aws_and_gcloud_specs_name_only_options_the_cli_has() {
    for (path, spec) in strict("aws") {
        let (options, _) = &tables::AWS.operations[&path];
        for name in spec.params.keys() {
            assert!(options.contains_key(name), "aws {path}: no option {name}");
        }
    }
    for (path, spec) in strict("gcloud") {
        let tracks = &tables::GCLOUD.operations[&path];
        for name in spec.params.keys() {
            assert!(
                tracks.values().any(|t| t.contains_key(name)),
                "gcloud {path}: no flag {name}"
            );
        }
    }
}

#[test]
fn bad_specs_are_refused_with_the_word_named() {
    let err = serde_yaml_ng::from_str::<Specs>("\"x y\": {params: {--a: sometimes}}").unwrap_err();
    assert!(err.to_string().contains("sometimes"), "{err}");
    assert!(serde_yaml_ng::from_str::<Specs>("\"x y\": {parms: {}}").is_err());
    let ok: Specs =
        serde_yaml_ng::from_str("\"x y\": {target: account, params: {--a: {min: 1}}}").unwrap();
    assert!(matches!(ok["x y"].params["--a"], Constraint::Rule(_)));
}

/// Every top-level parameter of a spec with a scalar rule (`one_of`, `min`,
/// `max`) and the value it is given, for the property below.
fn scalar_params() -> Vec<(String, String, String, super::types::Rule)> {
    let mut out = Vec::new();
    for program in ["aws", "az", "gcloud", "gsutil"] {
        for (path, spec) in strict(program) {
            if spec
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("refused:"))
            {
                continue;
            }
            for (name, constraint) in &spec.params {
                if let Constraint::Rule(rule) = constraint {
                    let scalar = rule.fields.is_none()
                        && rule.list.is_none()
                        && rule.pairs.is_none()
                        && rule.repeat.is_none()
                        && (rule.one_of.is_some() || rule.min.is_some() || rule.max.is_some());
                    if scalar && name.starts_with("--") {
                        out.push((
                            program.to_owned(),
                            path.clone(),
                            name.clone(),
                            (**rule).clone(),
                        ));
                    }
                }
            }
        }
    }
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// For every spec'd operation, a value outside its parameter's spec is
    /// refused, and the refusal names the parameter.
    #[test]
    fn values_outside_a_spec_are_refused(
        pick in proptest::sample::select(scalar_params()),
        word in "[a-zA-Z][a-zA-Z0-9_.-]{0,11}",
        offset in 1i64..1000,
    ) {
        let (program, path, name, rule) = pick;
        let value = match (&rule.one_of, rule.min, rule.max) {
            (Some(allowed), _, _) => {
                proptest::prop_assume!(!allowed.iter().any(|a| a.0.eq_ignore_ascii_case(&word)));
                word
            }
            (None, Some(min), _) => (min - offset).to_string(),
            (None, None, Some(max)) => (max + offset).to_string(),
            (None, None, None) => unreachable!("scalar rules have one_of, min or max"),
        };
        let mut argv: Vec<String> = path.split(' ').map(str::to_owned).collect();
        argv.push(name.clone());
        argv.push(value.clone());
        let command = crate::plan::Command::new(program.clone(), argv);
        let err = crate::plan::CommandPolicy::default()
            .check(&command)
            .expect_err("a value outside the spec ran");
        let code = err.refusal();
        proptest::prop_assert!(
            matches!(
                code,
                Some(
                    crate::Refusal::Weakening
                        | crate::Refusal::Weakens
                        | crate::Refusal::PolicyDocument
                        | crate::Refusal::UnknownOption
                )
            ),
            "{program} {path} {name} {value}: {err}"
        );
        // The spec's refusal names the parameter (the older checks that may
        // refuse first name the operation).
        if code == Some(crate::Refusal::Weakening) {
            proptest::prop_assert!(err.to_string().contains(name.as_str()), "{err}");
        }
    }
}
