//! The command policy as a file (`--command-policy FILE`, YAML or JSON): how
//! an operator widens or narrows the built-in catalog without code.
//!
//! ```yaml
//! catalog: default          # or `none`: start from an empty catalog
//! allow:                    # operations added, with their class
//!   aws:
//!     "iam tag-user": remediating
//!     "iam list-user-tags": read_only
//! deny:                     # operations removed
//!   aws: ["iam delete-user-policy"]
//! deny_options:             # options refused on top of the defaults
//!   az: ["--no-wait"]
//! programs: [aws, gcloud]   # replaces the allowed programs
//! max_commands: 16
//! identity_grants: false    # identity policies may only deny
//! public_grants: false      # resource policies may not grant to everyone
//! destinations:             # where commands may send logs and audit records
//!   - acme-central-logs
//! isolation_groups: [sg-0123456789abcdef0]  # where an instance may be isolated
//! allow_deny_removal: false # removals that may lift a deny (detach, leave a group)
//! probe_deny_removal: false # ... or run them after a read-only probe finds no deny
//! specs:                    # positive specs added or replacing built-in ones
//!   aws:
//!     "iam tag-user":
//!       target: [--user-name]
//!       params:
//!         --user-name: target
//!         --tags: {list: {struct: {Key: {one_of: [quarantined]}, Value: any}}}
//! ```
//!
//! A remediating operation runs only with a positive spec (see the README's
//! security model for the format): allowing an operation without one
//! refuses every command of it with `parameter_not_allowed`.

use super::{CommandPolicy, OperationClass};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Where a policy file starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogBase {
    /// The built-in catalog.
    #[default]
    Default,
    /// No operation at all.
    None,
}

/// A command policy file, as written. Unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyFile {
    /// Where the catalog starts.
    #[serde(default)]
    pub catalog: CatalogBase,
    /// Operations added, by program then path.
    #[serde(default)]
    pub allow: BTreeMap<String, BTreeMap<String, OperationClass>>,
    /// Operations removed, by program.
    #[serde(default)]
    pub deny: BTreeMap<String, Vec<String>>,
    /// Options refused, by program, on top of the defaults.
    #[serde(default)]
    pub deny_options: BTreeMap<String, Vec<String>>,
    /// The allowed programs, replacing the defaults.
    #[serde(default)]
    pub programs: Option<Vec<String>>,
    /// The most commands one script may hold.
    #[serde(default)]
    pub max_commands: Option<usize>,
    /// Whether identity policies may allow.
    #[serde(default)]
    pub identity_grants: bool,
    /// Whether resource policies may grant to everyone or another account.
    #[serde(default)]
    pub public_grants: bool,
    /// Log and audit destinations commands may name (see
    /// [`CommandPolicy::with_destinations`]).
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Security groups an instance may be isolated into (see
    /// [`CommandPolicy::with_isolation_groups`]).
    #[serde(default)]
    pub isolation_groups: Vec<String>,
    /// Whether removals that may lift a deny may run (see
    /// [`CommandPolicy::allow_deny_removal`]).
    #[serde(default)]
    pub allow_deny_removal: bool,
    /// Whether such removals run after a read-only probe found no deny in
    /// what they remove (see [`CommandPolicy::probe_deny_removal`]).
    #[serde(default)]
    pub probe_deny_removal: bool,
    /// Positive specs by program and operation, added to or replacing the
    /// built-in ones.
    #[serde(default)]
    specs: BTreeMap<String, BTreeMap<String, super::spec::types::OperationSpec>>,
}

impl PolicyFile {
    /// Parses a policy file's text (YAML, or JSON, which is YAML too).
    pub fn parse(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Config(format!("command policy: {e}")))
    }

    /// Reads and parses the policy file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading command policy {}", path.display()), e))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The policy this file describes.
    pub fn into_policy(self) -> CommandPolicy {
        let mut policy = CommandPolicy::default();
        if self.catalog == CatalogBase::None {
            policy = policy.without_operations();
        }
        if let Some(programs) = self.programs {
            policy = policy.with_programs(programs);
        }
        for (program, ops) in self.allow {
            for (path, class) in ops {
                policy = policy.allow_operation(program.clone(), path, class);
            }
        }
        for (program, paths) in self.deny {
            for path in paths {
                policy = policy.deny_operation(&program, path);
            }
        }
        for (program, options) in self.deny_options {
            for option in options {
                policy = policy.deny_option(program.clone(), option);
            }
        }
        if let Some(max) = self.max_commands {
            policy = policy.with_max_commands(max);
        }
        for (program, specs) in self.specs {
            for (path, spec) in specs {
                policy = policy.with_parsed_spec(&program, &path, spec);
            }
        }
        policy
            .allow_identity_grants(self.identity_grants)
            .allow_public_grants(self.public_grants)
            .with_destinations(self.destinations)
            .with_isolation_groups(self.isolation_groups)
            .allow_deny_removal(self.allow_deny_removal)
            .probe_deny_removal(self.probe_deny_removal)
    }
}

impl CommandPolicy {
    /// The policy described by the file at `path` (see [`PolicyFile`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        PolicyFile::load(path).map(PolicyFile::into_policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Command;

    #[test]
    fn a_file_widens_and_narrows_the_catalog() {
        let file = PolicyFile::parse(
            "allow:\n  aws:\n    \"iam tag-user\": remediating\ndeny:\n  aws: [\"iam detach-user-policy\"]\n\
             specs:\n  aws:\n    \"iam tag-user\":\n      target: [--user-name]\n      params:\n        --user-name: target\n        --tags: {list: {struct: {Key: {one_of: [quarantined]}, Value: any}}}\n",
        )
        .unwrap();
        let policy = file.into_policy();
        let tag = Command::new(
            "aws",
            [
                "iam",
                "tag-user",
                "--user-name",
                "u",
                "--tags",
                "Key=quarantined,Value=yes",
            ],
        );
        let other_tag = Command::new(
            "aws",
            [
                "iam",
                "tag-user",
                "--user-name",
                "u",
                "--tags",
                "Key=owner,Value=x",
            ],
        );
        assert_eq!(
            policy.check(&other_tag).unwrap_err().refusal(),
            Some(crate::Refusal::Weakening)
        );
        let detach = Command::new("aws", ["iam", "detach-user-policy", "--user-name", "u"]);
        assert!(policy.check(&tag).is_ok());
        assert!(policy.check(&detach).is_err());
        assert!(CommandPolicy::default().check(&tag).is_err());
    }

    #[test]
    fn an_allowed_operation_without_a_spec_does_not_run() {
        let file =
            PolicyFile::parse("allow:\n  aws:\n    \"iam tag-user\": remediating\n").unwrap();
        let tag = Command::new("aws", ["iam", "tag-user", "--user-name", "u"]);
        let err = file.into_policy().check(&tag).unwrap_err();
        assert_eq!(
            err.refusal(),
            Some(crate::Refusal::ParameterNotAllowed),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_classes_are_refused() {
        assert!(PolicyFile::parse("alow: {}").is_err());
        assert!(PolicyFile::parse("allow: {aws: {\"iam x\": maybe}}").is_err());
        let json = PolicyFile::parse("{\"catalog\": \"none\"}").unwrap();
        assert_eq!(json.catalog, CatalogBase::None);
        let none = json.into_policy();
        assert_eq!(none.operations().count(), 0);
    }
}
