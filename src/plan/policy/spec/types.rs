//! The positive spec of a remediating operation, as written in
//! `spec/*.yaml` (and in an operator's policy file): which parameters it may
//! take, the values of each that move its resource toward safety, and which
//! parameters name the resource it changes.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// One operation's spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperationSpec {
    /// What the operation changes: parameters that name the finding's
    /// resource, or `account` / `creates`.
    #[serde(default)]
    pub(crate) target: TargetSpec,
    /// The parameters it may take (`--name` or `-d`), with their constraint.
    #[serde(default)]
    pub(crate) params: BTreeMap<String, Constraint>,
    /// Parameters that must be given (a default would weaken: `az network
    /// nsg rule create` without `--access` creates an Allow rule).
    #[serde(default)]
    pub(crate) required: Vec<String>,
    /// Other spellings of parameters (`-n: --name`), for CLIs without a
    /// generated table (az, gsutil).
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, String>,
    /// The positional words after the operation path, in order.
    #[serde(default)]
    pub(crate) positionals: Vec<Constraint>,
    /// The parameters (or `$1`) naming what the operation creates (or makes
    /// safe): a later command of the same script may name it where its spec
    /// says `created`.
    #[serde(default)]
    pub(crate) names: Vec<String>,
    /// Why the spec is what it is (documentation only).
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// What an operation changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum TargetSpec {
    /// Nothing said: the operation cannot be bound and is refused with a
    /// target (`unbound_target`) — every remediating spec says its target.
    #[default]
    Unknown,
    /// An account, subscription or project setting: the context is the target.
    Account,
    /// It creates something new, named by the script; nothing existing changes.
    Creates,
    /// The parameters (`--bucket`) or positional words (`$1`) that name the
    /// resource: at least one must be given, and each one given must be the
    /// finding's resource.
    Params(Vec<String>),
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            List(Vec<String>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Word(w) if w == "account" => TargetSpec::Account,
            Repr::Word(w) if w == "creates" => TargetSpec::Creates,
            Repr::Word(w) => TargetSpec::Params(vec![w]),
            Repr::List(l) => TargetSpec::Params(l),
        })
    }
}

/// What the values of one parameter may be.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Constraint {
    /// Any value (names, descriptions: nothing that widens access).
    Any,
    /// The finding's resource (see the binding rules).
    Target,
    /// The finding's account id, subscription or project.
    Account,
    /// The finding's region (or a zone in it).
    Region,
    /// The resource group of the finding's resource (Azure).
    ResourceGroup,
    /// A switch that takes no value; present means on.
    Flag,
    /// An IAM identity policy that only denies: an inline or attached
    /// document, an AWS-managed deny policy ARN, or a policy the script created.
    DenyPolicy,
    /// A resource policy document whose every statement denies.
    ResourcePolicy,
    /// A log or audit destination from the operator's list.
    Destination,
    /// An isolation (quarantine) security group from the operator's list.
    Isolation,
    /// Something the same script created.
    Created,
    /// A rule with several parts (all that are given must hold).
    Rule(Box<Rule>),
}

/// A constraint with parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    /// One of these values (ASCII case-insensitive).
    #[serde(default)]
    pub(crate) one_of: Option<Vec<Scalar>>,
    /// An integer at least this.
    #[serde(default)]
    pub(crate) min: Option<i64>,
    /// An integer at most this.
    #[serde(default)]
    pub(crate) max: Option<i64>,
    /// An object (JSON or shorthand) with only these keys.
    #[serde(default, rename = "struct")]
    pub(crate) fields: Option<BTreeMap<String, Constraint>>,
    /// Keys the object must have.
    #[serde(default)]
    pub(crate) required: Vec<String>,
    /// Keys of which at least one set must all be present and true
    /// (`[[IgnorePublicAcls, RestrictPublicBuckets]]`).
    #[serde(default)]
    pub(crate) true_sets: Vec<Vec<String>>,
    /// A list (several words, a JSON list, a shorthand list): each item.
    #[serde(default)]
    pub(crate) list: Option<Constraint>,
    /// `KEY=VALUE` pairs (per word, and comma-separated within a word, or
    /// with gcloud's `^D^` delimiter): only these keys.
    #[serde(default)]
    pub(crate) pairs: Option<BTreeMap<String, Constraint>>,
    /// The parameter may be given several times; each value is checked.
    #[serde(default)]
    pub(crate) repeat: Option<Constraint>,
}

/// A scalar in a spec: YAML strings, booleans and numbers alike.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Scalar(pub(crate) String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            S(String),
            B(bool),
            I(i64),
        }
        Ok(Scalar(match Repr::deserialize(d)? {
            Repr::S(s) => s,
            Repr::B(b) => b.to_string(),
            Repr::I(i) => i.to_string(),
        }))
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Word(String),
            Rule(Box<Rule>),
        }
        match Repr::deserialize(d)? {
            Repr::Word(w) => Ok(match w.as_str() {
                "any" => Constraint::Any,
                "target" => Constraint::Target,
                "account" => Constraint::Account,
                "region" => Constraint::Region,
                "resource_group" => Constraint::ResourceGroup,
                "flag" => Constraint::Flag,
                "deny_policy" => Constraint::DenyPolicy,
                "resource_policy" => Constraint::ResourcePolicy,
                "destination" => Constraint::Destination,
                "isolation" => Constraint::Isolation,
                "created" => Constraint::Created,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown constraint `{other}` (any, target, account, region, \
                         resource_group, flag, deny_policy, resource_policy, destination, \
                         isolation, created, or a map: one_of, min, max, struct, required, true_sets, \
                         list, pairs, repeat)"
                    )));
                }
            }),
            Repr::Rule(r) => Ok(Constraint::Rule(r)),
        }
    }
}

/// The specs of one program's operations, by operation path.
pub(crate) type Specs = BTreeMap<String, OperationSpec>;
