//! The gcloud / gsutil flag tables (`src/plan/policy/tables/gcloud.json`) are
//! generated from the installed Cloud SDK by `scripts/gen-gcloud-flags`:
//! regenerating them must reproduce the committed file, and the committed
//! file must say what the argument checks rely on.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn table() -> Value {
    let path = root().join("src/plan/policy/tables/gcloud.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The operation paths listed under `section:` in the catalog.
fn catalog_ops(section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("src/plan/policy/catalog.yaml")).unwrap();
    let mut ops = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            inside = line.split(':').next() == Some(section);
            continue;
        }
        if inside && let Some(rest) = line.trim_start().strip_prefix('"') {
            let (path, _) = rest.split_once('"').expect("closing quote");
            ops.push(path.to_owned());
        }
    }
    assert!(!ops.is_empty(), "no {section} operations in the catalog");
    ops
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

fn flag<'a>(t: &'a Value, op: &str, track: &str, name: &str) -> &'a Value {
    t["operations"][op][track]
        .get(name)
        .unwrap_or_else(|| panic!("`{op}` ({track}) has no {name}"))
}

#[test]
fn regenerating_from_the_sdk_reproduces_the_committed_table() {
    assert!(
        on_path("gcloud"),
        "the Google Cloud SDK (`gcloud`) is not on PATH: this test regenerates \
         src/plan/policy/tables/gcloud.json from it with `scripts/gen-gcloud-flags --check`; \
         install the Cloud SDK"
    );
    let out = Command::new("python3")
        .arg(root().join("scripts/gen-gcloud-flags"))
        .arg("--check")
        .current_dir(root())
        .output()
        .expect("running python3 scripts/gen-gcloud-flags --check");
    assert!(
        out.status.success(),
        "scripts/gen-gcloud-flags --check failed ({}); run scripts/gen-gcloud-flags and commit \
         the table if the SDK changed\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn the_committed_table_says_what_the_checks_rely_on() {
    let t = table();
    assert_eq!(t["generator"], "scripts/gen-gcloud-flags");
    assert!(t["sdk"].as_str().is_some_and(|v| !v.is_empty()));

    // Global flags: values and switches, no abbreviations to expect.
    assert_eq!(t["global"]["--project"]["value"], true);
    assert_eq!(t["global"]["--format"]["value"], true);
    assert!(t["global"]["--quiet"].get("value").is_none());
    assert_eq!(t["global"]["-q"]["alias_of"], "--quiet");

    // Firewall rules: `--no-disabled` is the hidden inverse of --disabled.
    let fw = "compute firewall-rules update";
    assert_eq!(flag(&t, fw, "ga", "--disabled")["negatable"], true);
    assert!(flag(&t, fw, "ga", "--disabled").get("value").is_none());
    assert_eq!(flag(&t, fw, "ga", "--source-ranges")["value"], true);
    assert!(t["operations"][fw]["ga"].get("--no-disabled").is_none());

    // Subnets: --no-enable-flow-logs is the inverse of --enable-flow-logs.
    let subnets = "compute networks subnets update";
    assert_eq!(
        flag(&t, subnets, "ga", "--enable-flow-logs")["negatable"],
        true
    );

    // Buckets: --[no-]public-access-prevention is a boolean (alias --pap,
    // which has no --no- form), with a separate --clear-public-access-prevention.
    let buckets = "storage buckets update";
    let pap = flag(&t, buckets, "ga", "--public-access-prevention");
    assert_eq!(pap["negatable"], true);
    assert!(pap.get("value").is_none());
    assert_eq!(
        flag(&t, buckets, "ga", "--pap")["alias_of"],
        "--public-access-prevention"
    );
    assert!(flag(&t, buckets, "ga", "--pap").get("negatable").is_none());
    assert!(
        flag(&t, buckets, "ga", "--clear-public-access-prevention")
            .get("value")
            .is_none()
    );
    assert_eq!(
        flag(&t, buckets, "ga", "--add-acl-grant")["repeatable"],
        true
    );
    assert_eq!(flag(&t, buckets, "ga", "--predefined-acl")["value"], true);

    // GKE: --[no-]enable-master-authorized-networks; the CIDR list takes a value.
    let gke = "container clusters update";
    for track in ["ga", "beta", "alpha"] {
        assert_eq!(
            flag(&t, gke, track, "--enable-master-authorized-networks")["negatable"],
            true
        );
        assert_eq!(
            flag(&t, gke, track, "--master-authorized-networks")["value"],
            true
        );
    }

    // Every gcloud catalog operation exists in at least one track.
    assert!(
        t.get("missing").is_none(),
        "operations missing from the SDK: {}",
        t["missing"]
    );
    for op in catalog_ops("gcloud") {
        let tracks = t["operations"][&op]
            .as_object()
            .unwrap_or_else(|| panic!("gcloud operation `{op}` is not in the table"));
        assert!(!tracks.is_empty(), "`{op}` has no track");
        assert!(
            tracks
                .keys()
                .all(|k| ["ga", "beta", "alpha"].contains(&k.as_str()))
        );
    }

    // gsutil: getopt's reading (`iam ch -d` takes a value), every catalog op.
    assert_eq!(t["gsutil"]["iam ch"]["-d"]["value"], true);
    assert_eq!(t["gsutil"]["acl ch"]["-u"]["value"], true);
    assert!(t["gsutil"]["iam ch"]["-R"].get("value").is_none());
    for op in catalog_ops("gsutil") {
        assert!(
            t["gsutil"][&op].is_object(),
            "gsutil operation `{op}` is not in the table"
        );
    }
}
