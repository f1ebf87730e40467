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
