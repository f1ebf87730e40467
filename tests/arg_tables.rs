//! The aws argument tables (`src/plan/policy/tables/aws.json`) are generated
//! from the pinned awscli by `scripts/gen-aws-args`; these tests keep the
//! committed file equal to what that awscli builds, and pin a few facts the
//! argv reader relies on.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `$REMEDIATION_VENV`, or `<repo>/.venv` (what `scripts/test` installs).
fn venv() -> PathBuf {
    std::env::var_os("REMEDIATION_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"))
}

fn table() -> Value {
    let path = repo().join("src/plan/policy/tables/aws.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The keys of the catalog's top-level `aws:` mapping (`  "SERVICE OP": ...`).
fn catalog_aws_operations() -> BTreeSet<String> {
    let path = repo().join("src/plan/policy/catalog.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut in_aws = false;
    let mut ops = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && line.trim_end().ends_with(':') {
            in_aws = line.trim_end() == "aws:";
            continue;
        }
        let Some(rest) = line.strip_prefix("  \"").filter(|_| in_aws) else {
            continue;
        };
        if let Some((key, after)) = rest.split_once('"') {
            if after.trim_start().starts_with(':') {
                ops.insert(key.to_string());
            }
        }
    }
    ops
}

fn option<'a>(table: &'a Value, operation: &str, name: &str) -> &'a Value {
    let op = &table["operations"][operation];
    assert!(op.is_object(), "{operation} is not in the table");
    let entry = &op[name];
    assert!(entry.is_object(), "{operation} has no {name}: {op}");
    entry
}

#[test]
fn committed_table_is_what_the_pinned_awscli_builds() {
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test (it installs the venv with the pinned awscli), \
         or point REMEDIATION_VENV at such a venv",
        python.display()
    );
    let output = Command::new(&python)
        .arg(repo().join("scripts/gen-aws-args"))
        .arg("--check")
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("running {} scripts/gen-aws-args: {e}", python.display()));
    assert!(
        output.status.success(),
        "src/plan/policy/tables/aws.json differs from what scripts/gen-aws-args builds \
         ({}); regenerate it with `.venv/bin/python scripts/gen-aws-args`\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn table_holds_what_the_reader_relies_on() {
    let table = table();
    assert_eq!(table["generator"], "scripts/gen-aws-args");
    assert_eq!(table["awscli"], "1.46.3");
    assert_eq!(table["botocore"], "1.43.62");

    // Global options, read from the whole argv before the operation's parser.
    for flag in [
        "--debug",
        "--no-paginate",
        "--no-verify-ssl",
        "--no-sign-request",
    ] {
        assert_eq!(table["global"][flag]["flag"], true, "{flag}");
    }
    for valued in [
        "--region",
        "--output",
        "--query",
        "--profile",
        "--endpoint-url",
    ] {
        let entry = &table["global"][valued];
        assert_eq!(entry["type"], "string", "{valued}");
        assert!(entry.get("flag").is_none(), "{valued} takes a value");
    }

    // A boolean pair: both forms take no value; the negative one names the positive.
    let multi_az = option(&table, "rds modify-db-instance", "--multi-az");
    assert_eq!(multi_az["type"], "boolean");
    assert_eq!(multi_az["flag"], true);
    assert!(multi_az.get("negates").is_none());
    let no_multi_az = option(&table, "rds modify-db-instance", "--no-multi-az");
    assert_eq!(no_multi_az["flag"], true);
    assert_eq!(no_multi_az["negates"], "--multi-az");

    let pab = option(
        &table,
        "s3api put-public-access-block",
        "--public-access-block-configuration",
    );
    assert_eq!(pab["type"], "structure");
    assert_eq!(pab["required"], true);
    assert!(pab.get("flag").is_none() && pab.get("nargs").is_none());

    let perms = option(
        &table,
        "ec2 revoke-security-group-ingress",
        "--ip-permissions",
    );
    assert_eq!(perms["type"], "list");
    assert_eq!(perms["items"], "structure");
    assert_eq!(
        perms["nargs"], "*",
        "a service list takes any number of words"
    );

    // Only the operation's two parameters, plus the two options awscli adds
    // to every API operation.
    let attach = table["operations"]["iam attach-user-policy"]
        .as_object()
        .expect("iam attach-user-policy is in the table");
    let names: BTreeSet<&str> = attach.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = [
        "--user-name",
        "--policy-arn",
        "--cli-input-json",
        "--generate-cli-skeleton",
    ]
    .into_iter()
    .collect();
    assert_eq!(names, expected);
    for name in ["--user-name", "--policy-arn"] {
        assert_eq!(attach[name]["type"], "string", "{name}");
        assert_eq!(attach[name]["required"], true, "{name}");
    }
    assert_eq!(attach["--generate-cli-skeleton"]["nargs"], "?");

    // Every option that takes a value has no `flag`, and `negates` points at a flag.
    for (op, entries) in table["operations"].as_object().unwrap() {
        for (name, entry) in entries.as_object().unwrap() {
            if entry.get("nargs").is_some() {
                assert!(entry.get("flag").is_none(), "{op} {name}");
            }
            if let Some(positive) = entry.get("negates").and_then(Value::as_str) {
                assert_eq!(entry["flag"], true, "{op} {name}");
                assert!(entries.get(positive).is_some(), "{op} {name} -> {positive}");
            }
        }
    }

    // Every aws operation of the catalog is in the table (none missing).
    let catalog = catalog_aws_operations();
    assert!(
        catalog.len() > 100,
        "catalog parsed to {} aws operations",
        catalog.len()
    );
    let operations = table["operations"].as_object().unwrap();
    let absent: Vec<&String> = catalog
        .iter()
        .filter(|op| !operations.contains_key(*op))
        .collect();
    assert!(
        absent.is_empty(),
        "catalog aws operations not in aws.json: {absent:?}"
    );
    assert!(
        table.get("missing").is_none(),
        "operations awscli does not have: {}",
        table["missing"]
    );
}
