//! The operation catalog: which operations of each CLI a remediation may
//! perform, each classed [read-only](OperationClass::ReadOnly) or
//! [remediating](OperationClass::Remediating), and how a command's operation
//! is found in its argv. Everything not in the catalog is refused.
//!
//! The built-in catalog (`src/plan/policy/catalog.yaml`) is derived from the
//! `remediation.cliScriptTemplate` of the remediable policies Prisma Cloud
//! publishes (PaloAltoNetworks/prisma-cloud-policies), the operations of the
//! crate's own CloudTrail remediations, and the IAM remediation API's shapes.

use super::Violation;
use crate::error::Refusal;
use crate::plan::Command;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationClass {
    /// A query: changes nothing and returns no secret. Dry runs execute it.
    ReadOnly,
    /// Changes something to make it safer.
    Remediating,
}

/// Operations by program, then by operation path (`"iam detach-user-policy"`,
/// `"network nsg rule update"`).
pub(crate) type Catalog = BTreeMap<String, BTreeMap<String, OperationClass>>;

/// The catalog shipped with the crate, parsed once.
static BUILTIN: LazyLock<Arc<Catalog>> = LazyLock::new(|| {
    // The file is part of the crate and covered by a unit test; an
    // unreadable file would leave the catalog empty (deny everything), never open.
    Arc::new(serde_yaml_ng::from_str(include_str!("catalog.yaml")).unwrap_or_default())
});

/// The built-in catalog.
pub(crate) fn builtin() -> Arc<Catalog> {
    Arc::clone(&BUILTIN)
}

/// The hash of the built-in catalog, computed once.
pub(crate) fn builtin_hash() -> u64 {
    static HASH: LazyLock<u64> = LazyLock::new(|| hash(&BUILTIN));
    *HASH
}

/// A hash of `catalog`, for policy fingerprints.
pub(crate) fn hash(catalog: &Catalog) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    catalog.hash(&mut hasher);
    hasher.finish()
}

/// aws global options that take a value and may come before the service.
const AWS_GLOBAL_VALUED: &[&str] = &[
    "--region",
    "--output",
    "--query",
    "--color",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
];
/// aws global flags that may come before the service.
const AWS_GLOBAL_FLAGS: &[&str] = &["--no-paginate", "--no-cli-pager", "--no-cli-auto-prompt"];
/// gcloud flags that may come before the command path.
const GCLOUD_LEADING: &[&str] = &["--quiet", "-q"];
/// gcloud flags taking a separate value that may come before the command path.
const GCLOUD_LEADING_VALUED: &[&str] = &["--project", "--format"];
/// gcloud release tracks: `gcloud beta compute ...` is `compute ...`.
const GCLOUD_TRACKS: &[&str] = &["alpha", "beta", "preview"];
/// gsutil top-level flags without a value.
const GSUTIL_FLAGS: &[&str] = &["-m", "-q"];
/// gsutil top-level flags with a value that only pick the billed project.
const GSUTIL_VALUED: &[&str] = &["-u"];
/// The catalog key that allows every operation of a program: an operator's
/// deliberate choice (tests of the script parser use it), never a default.
pub(crate) const ANY: &str = "*";
/// The longest command path looked up (az and gcloud nest up to 5 groups).
const MAX_PATH: usize = 6;

/// A command's operation as found in its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    /// The catalog key: the path words joined by spaces.
    pub(crate) path: String,
    /// How many path words it has.
    pub(crate) words: usize,
    /// Its class.
    pub(crate) class: OperationClass,
    /// Index in `args()` of the first argument after the path, and of the
    /// path words (which are not values).
    pub(crate) path_at: Vec<usize>,
    /// Allowed by the operator's `*` (every operation of the program), not
    /// by a catalog entry: no spec applies.
    pub(crate) by_any: bool,
}

/// The path words of `command`: positional words before the first option
/// (aws: the service and the operation), with the indexes they have in
/// `args()`, or why the operation cannot be told.
fn path_words(command: &Command) -> Result<Vec<(usize, &str)>, Violation> {
    let program = command.program();
    let args = command.args();
    let mut words = Vec::with_capacity(4);
    let mut i = 0;
    let before = |arg: &CompactString| {
        Violation::new(
            Refusal::OperationNotAllowed,
            format!(
                "option {} before the operation of `{program}`: the operation cannot be told",
                super::quoted(arg)
            ),
        )
    };
    while let Some(arg) = args.get(i) {
        // Only an option's name is compared (a value is never searched for `=`).
        let name = super::option_name(arg).unwrap_or(arg.as_str());
        let is_option = arg.starts_with('-') && arg.len() > 1;
        match program {
            "aws" => {
                if is_option {
                    if AWS_GLOBAL_VALUED.contains(&name) {
                        i += if super::split_at_equals(arg).is_some() {
                            1
                        } else {
                            2
                        };
                        continue;
                    }
                    if AWS_GLOBAL_FLAGS.contains(&name) {
                        i += 1;
                        continue;
                    }
                    if words.len() < 2 {
                        return Err(before(arg));
                    }
                    i += 1;
                    continue;
                }
                if words.len() < 2 {
                    words.push((i, arg.as_str()));
                }
            }
            "gsutil" if words.is_empty() => {
                if is_option {
                    if GSUTIL_FLAGS.contains(&name) {
                        i += 1;
                        continue;
                    }
                    if GSUTIL_VALUED.contains(&name) {
                        i += 2;
                        continue;
                    }
                    // Every other top-level option configures gsutil itself:
                    // `-o` boto settings, `-d`/`-D` debug output with
                    // credentials, `-h` headers, `-i` impersonation.
                    return Err(Violation::new(
                        Refusal::DeniedOption,
                        format!(
                            "gsutil option {} is not allowed: it would change the configuration, credentials, headers or logging the executor controls",
                            super::quoted(arg)
                        ),
                    ));
                }
                words.push((i, arg.as_str()));
            }
            _ => {
                if is_option {
                    // gcloud takes flags between the command words too: Prisma's
                    // most common template is `gcloud compute --project=P
                    // firewall-rules update NAME --disabled`.
                    if program == "gcloud" {
                        if GCLOUD_LEADING.contains(&name) || super::split_at_equals(arg).is_some() {
                            i += 1;
                            continue;
                        }
                        if GCLOUD_LEADING_VALUED.contains(&name) {
                            i += 2;
                            continue;
                        }
                    }
                    if !words.is_empty() {
                        break;
                    }
                    return Err(before(arg));
                }
                if !(program == "gcloud"
                    && words.is_empty()
                    && GCLOUD_TRACKS.contains(&arg.as_str()))
                {
                    words.push((i, arg.as_str()));
                }
                if words.len() >= MAX_PATH + 4 {
                    break;
                }
            }
        }
        i += 1;
    }
    Ok(words)
}

/// An aws command's service and operation words, found as [`lookup`] finds them.
pub(crate) fn aws_path(command: &Command) -> Option<(&str, &str)> {
    if command.program() != "aws" {
        return None;
    }
    match path_words(command).ok()?.as_slice() {
        [(_, service), (_, operation), ..] => Some((service, operation)),
        _ => None,
    }
}

/// An operation allowed by [`ANY`] whose words cannot be told.
fn anything(class: OperationClass) -> Operation {
    Operation {
        path: ANY.to_owned(),
        words: 0,
        class,
        path_at: Vec::new(),
        by_any: true,
    }
}

/// The operation of `command` in `catalog`, or why it is refused.
///
/// aws operations are `SERVICE OPERATION` (the first two positional words,
/// skipping the global options `--region`, `--output`, `--query`...);
/// az, gcloud and gsutil operations are the longest catalog path that the
/// leading positional words start with (gcloud release tracks dropped), and
/// the words after it are the command's positional arguments.
pub(crate) fn lookup(catalog: &Catalog, command: &Command) -> Result<Operation, Violation> {
    let program = command.program();
    let any = catalog.get(program).and_then(|ops| ops.get(ANY));
    let words = match (path_words(command), any) {
        (Ok(words), _) => words,
        (Err(_), Some(class)) => return Ok(anything(*class)),
        (Err(e), None) => return Err(e),
    };
    let refused = |shown: String| {
        Violation::new(
            Refusal::OperationNotAllowed,
            format!("`{program} {shown}` is not in the operation catalog"),
        )
    };
    let Some(operations) = catalog.get(program) else {
        let shown: Vec<&str> = words.iter().map(|(_, w)| *w).take(3).collect();
        return Err(refused(shown.join(" ")));
    };
    let longest = if program == "aws" {
        if words.len() < 2 {
            if let Some(class) = any {
                return Ok(anything(*class));
            }
            return Err(Violation::new(
                Refusal::OperationNotAllowed,
                format!("`{program}` without a service and an operation"),
            ));
        }
        2..=2
    } else {
        1..=words.len().min(MAX_PATH)
    };
    let mut key = String::with_capacity(48);
    for len in longest.rev() {
        key.clear();
        for (n, (_, word)) in words.iter().take(len).enumerate() {
            if n > 0 {
                key.push(' ');
            }
            key.push_str(word);
        }
        if let Some(class) = operations.get(key.as_str()) {
            let by_any = key == ANY;
            return Ok(Operation {
                path: key,
                words: len,
                class: *class,
                path_at: words.iter().take(len).map(|(i, _)| *i).collect(),
                by_any,
            });
        }
    }
    let shown: Vec<&str> = words
        .iter()
        .map(|(_, w)| *w)
        .take(if program == "aws" { 2 } else { 4 })
        .collect();
    if let Some(class) = operations.get(ANY) {
        // The operator allowed every operation of this program; for aws the
        // service and operation words are still told apart from values.
        let path_at = if program == "aws" {
            words.iter().take(2).map(|(i, _)| *i).collect()
        } else {
            Vec::new()
        };
        return Ok(Operation {
            path: shown.join(" "),
            words: path_at.len(),
            class: *class,
            path_at,
            by_any: true,
        });
    }
    Err(refused(shown.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(program: &str, args: &[&str]) -> Result<Operation, Violation> {
        lookup(&builtin(), &Command::new(program, args.iter().copied()))
    }

    #[test]
    fn the_builtin_catalog_parses_and_covers_all_four_clis() {
        let catalog = builtin();
        for program in ["aws", "az", "gcloud", "gsutil"] {
            let n = catalog.get(program).map_or(0, BTreeMap::len);
            assert!(n >= 5, "{program}: {n} operations");
        }
        let total: usize = catalog.values().map(BTreeMap::len).sum();
        assert!(total >= 150, "{total} operations");
    }

    #[test]
    fn aws_operations_skip_global_options() {
        let found = op(
            "aws",
            &[
                "--region",
                "us-east-1",
                "iam",
                "detach-user-policy",
                "--user-name",
                "u",
            ],
        )
        .unwrap();
        assert_eq!(found.path, "iam detach-user-policy");
        assert_eq!(found.class, OperationClass::Remediating);
        assert_eq!(found.path_at, vec![2, 3]);
        let err = op("aws", &["--reg", "x", "iam", "detach-user-policy"]).unwrap_err();
        assert_eq!(err.code, Refusal::OperationNotAllowed);
        let err = op("aws", &["iam", "create-access-key"]).unwrap_err();
        assert_eq!(err.code, Refusal::OperationNotAllowed, "{}", err.reason);
    }

    #[test]
    fn gcloud_paths_drop_the_track_and_keep_positionals() {
        let found = op(
            "gcloud",
            &[
                "beta",
                "compute",
                "firewall-rules",
                "update",
                "allow-ssh",
                "--disabled",
            ],
        )
        .unwrap();
        assert_eq!(found.path, "compute firewall-rules update");
        assert_eq!(found.words, 3);
        assert!(op("gcloud", &["meta", "test", "--exec-file=x.sh"]).is_err());
        let prisma = op(
            "gcloud",
            &[
                "compute",
                "--project=p",
                "firewall-rules",
                "update",
                "r",
                "--disabled",
            ],
        )
        .unwrap();
        assert_eq!(prisma.path, "compute firewall-rules update");
        assert!(op("gcloud", &["--verbosity=debug", "compute", "ssh", "vm"]).is_err());
    }
}
