//! Positive specs: for each remediating operation, the parameters it may
//! take and the values of each that move its resource toward safety, and
//! which parameters name that resource. A command is checked against its
//! operation's spec after the [argv reader](super::reader) has read it as the
//! CLI does: a parameter not in the spec is `parameter_not_allowed`, a value
//! outside it `weakening`, and (with the finding's [`Target`]) a target that
//! is not the finding's resource `unbound_target`.
//!
//! The built-in specs (`spec/aws.yaml`, `az.yaml`, `gcloud.yaml`,
//! `gsutil.yaml`) cover every remediating operation of the built-in catalog;
//! an operator replaces or adds specs in the policy file (`specs:`).

mod bind;
pub(crate) use bind::removes_only_grants;
#[cfg(test)]
mod tests;
pub(crate) mod types;
mod values;

use super::Violation;
use super::catalog::Operation;
use super::reader::Parsed;
use crate::error::Refusal;
use crate::model::Target;
use crate::plan::{Command, StepFile};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use types::{OperationSpec, Specs, TargetSpec};

/// Specs by program.
pub(crate) type SpecSet = BTreeMap<String, Specs>;

/// A note that marks a removal that may lift a deny.
pub(crate) const LIFTS_DENY: &str = "may lift a deny";

static BUILTIN: LazyLock<Arc<SpecSet>> = LazyLock::new(|| {
    let mut set = SpecSet::new();
    for (program, text) in [
        ("aws", include_str!("aws.yaml")),
        ("az", include_str!("az.yaml")),
        ("gcloud", include_str!("gcloud.yaml")),
        ("gsutil", include_str!("gsutil.yaml")),
    ] {
        // Checked by a unit test; an unreadable file leaves its program
        // without specs, and its remediating commands refused.
        let specs: Specs = serde_yaml_ng::from_str(text).unwrap_or_default();
        set.insert(program.to_owned(), specs);
    }
    Arc::new(set)
});

/// The built-in specs.
pub(crate) fn builtin() -> Arc<SpecSet> {
    Arc::clone(&BUILTIN)
}

/// The hash of the built-in specs, computed once.
pub(crate) fn builtin_hash() -> u64 {
    static HASH: LazyLock<u64> = LazyLock::new(|| hash(&BUILTIN));
    *HASH
}

/// A hash of `specs`, for policy fingerprints.
pub(crate) fn hash(specs: &SpecSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    specs.hash(&mut hasher);
    hasher.finish()
}

/// What the target-independent checks need besides the command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options<'a> {
    /// Log and audit destinations the operator allows.
    pub(crate) destinations: &'a [String],
    /// Isolation security groups the operator names.
    pub(crate) isolation: &'a [String],
    /// What earlier commands of the same script created (`None`: not
    /// checked as part of a script).
    pub(crate) created: Option<&'a [String]>,
    /// Whether removals that may lift a deny run.
    pub(crate) lift_deny: bool,
    /// Whether they run after a probe (where one exists).
    pub(crate) probe_deny: bool,
}

/// The spec of `op`, if there is one.
pub(crate) fn spec_for<'s>(
    specs: &'s SpecSet,
    program: &str,
    op: &Operation,
) -> Option<&'s OperationSpec> {
    specs.get(program)?.get(op.path.as_str())
}

/// The target-independent checks of a read command against its spec.
pub(crate) fn check(
    command: &Command,
    op: &Operation,
    spec: &OperationSpec,
    parsed: &Parsed<'_>,
    files: &[StepFile],
    options: Options<'_>,
) -> Result<(), Violation> {
    let program = command.program();
    let shown = |what: &str| format!("`{program} {}` {what}", op.path);
    if let Some(refusal) = spec
        .note
        .as_deref()
        .and_then(|n| n.strip_prefix("refused:"))
    {
        return Err(Violation::new(
            Refusal::ParameterNotAllowed,
            shown(&format!("is refused by its spec:{refusal}")),
        ));
    }
    let cx = values::Cx {
        program,
        files,
        destinations: options.destinations,
        isolation: options.isolation,
        created: options.created,
    };
    for param in parsed.params.iter().filter(|p| !p.global) {
        // The spelling given, or its long name (an alias); a spec key that
        // is the other form of the same switch is its opposite.
        let constraint = spec.params.get(param.spelling).or_else(|| {
            spec.aliases
                .get(param.spelling)
                .and_then(|long| spec.params.get(long))
        });
        let Some(constraint) = constraint else {
            let opposite = spec
                .params
                .keys()
                .any(|k| parsed_forms(k, &param.canonical) && k != param.spelling);
            let code = if opposite {
                Refusal::Weakening
            } else {
                Refusal::ParameterNotAllowed
            };
            let why = if opposite {
                "is the opposite of the setting its spec allows"
            } else {
                "is not among the parameters its spec allows"
            };
            return Err(Violation::new(
                code,
                shown(&format!("{} {why}", super::quoted(param.spelling))),
            ));
        };
        values::check(&cx, param.spelling, constraint, &param.value).map_err(|why| {
            Violation::new(
                Refusal::Weakening,
                shown(&format!("{}: {why}", super::quoted(param.spelling))),
            )
        })?;
    }
    for required in &spec.required {
        if parsed.named(required).next().is_none() {
            return Err(Violation::new(
                Refusal::Weakening,
                shown(&format!(
                    "without {required}: its default is not the safe setting"
                )),
            ));
        }
    }
    for (n, word) in parsed.positionals.iter().enumerate() {
        let Some(constraint) = spec.positionals.get(n) else {
            return Err(Violation::new(
                Refusal::ParameterNotAllowed,
                shown(&format!(
                    "takes {} positional word(s); {} is one more",
                    spec.positionals.len(),
                    super::quoted(word)
                )),
            ));
        };
        let value = serde_json::Value::String((*word).to_owned());
        values::check(&cx, &format!("${}", n + 1), constraint, &value).map_err(|why| {
            Violation::new(Refusal::Weakening, shown(&format!("word {}: {why}", n + 1)))
        })?;
    }
    let lifts_deny = spec
        .note
        .as_deref()
        .is_some_and(|n| n.starts_with(LIFTS_DENY));
    let probed = || {
        options.probe_deny
            && super::probe::supported(command.program(), &op.path)
            && super::probe::build(command, op, parsed).is_some()
    };
    if lifts_deny
        && !options.lift_deny
        && !bind::removes_only_grants(command, op, parsed)
        && !probed()
    {
        return Err(Violation::new(
            Refusal::Weakening,
            shown(
                "removes something that may be a deny (a policy, a group membership, a \
                 deny rule): removing a deny is a grant; the operator may have such removals \
                 probed first (probe_deny_removal, where a probe exists) or allow them \
                 (allow_deny_removal)",
            ),
        ));
    }
    Ok(())
}

/// The names of what `parsed` created or made safe (its spec's `names`),
/// once it has passed its spec.
pub(crate) fn created_names(spec: &OperationSpec, parsed: &Parsed<'_>) -> Vec<String> {
    let mut names = Vec::new();
    for name in &spec.names {
        if let Some(n) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            if let Some(word) = n.checked_sub(1).and_then(|i| parsed.positionals.get(i)) {
                names.push((*word).to_owned());
            }
            continue;
        }
        for param in parsed.named(name) {
            if let serde_json::Value::String(s) = &param.value {
                names.push(s.clone());
            }
        }
    }
    names
}

/// Whether spec key `key` is a form of the option `canonical` (`--no-x`
/// of `--x`, or the reverse).
fn parsed_forms(key: &str, canonical: &str) -> bool {
    let bare = |s: &str| s.strip_prefix("--no-").map(|r| format!("--{r}"));
    key == canonical
        || bare(key).as_deref() == Some(canonical)
        || bare(canonical).as_deref() == Some(key)
}

/// The checks that depend on the finding: every target parameter names its
/// resource; accounts, regions and resource groups are its own.
pub(crate) fn check_bound(
    command: &Command,
    op: &Operation,
    spec: Option<&OperationSpec>,
    parsed: &Parsed<'_>,
    target: &Target,
) -> Result<(), Violation> {
    let program = command.program();
    let shown = |what: String| {
        Violation::new(
            Refusal::UnboundTarget,
            format!("`{program} {}` {what}", op.path),
        )
    };
    let Some(spec) = spec else {
        return Err(shown(
            "has no positive spec saying what it changes".to_owned(),
        ));
    };
    let mut named = 0;
    for param in parsed.params.iter().filter(|p| !p.global) {
        let constraint = spec
            .params
            .get(param.spelling)
            .or_else(|| spec.params.get(param.canonical.as_ref()));
        if let Some(constraint) = constraint {
            bind::check(constraint, &param.value, target)
                .map_err(|why| shown(format!("{}: {why}", super::quoted(param.spelling))))?;
        }
        if let TargetSpec::Params(names) = &spec.target {
            if names
                .iter()
                .any(|n| *n == param.canonical || *n == param.spelling)
            {
                named += 1;
            }
        }
    }
    for (n, word) in parsed.positionals.iter().enumerate() {
        if let Some(constraint) = spec.positionals.get(n) {
            let value = serde_json::Value::String((*word).to_owned());
            bind::check(constraint, &value, target)
                .map_err(|why| shown(format!("word {}: {why}", n + 1)))?;
        }
        if let TargetSpec::Params(names) = &spec.target {
            if names.iter().any(|p| *p == format!("${}", n + 1)) {
                named += 1;
            }
        }
    }
    match &spec.target {
        TargetSpec::Unknown => Err(shown("has no spec of what it changes".to_owned())),
        TargetSpec::Account | TargetSpec::Creates => Ok(()),
        TargetSpec::Params(names) if named == 0 => Err(shown(format!(
            "names no target ({}): a remediating command must name the finding's resource",
            names.join(", ")
        ))),
        TargetSpec::Params(_) if target.resource.is_none() => Err(shown(
            "changes a resource, but the finding names none".to_owned(),
        )),
        TargetSpec::Params(_) => Ok(()),
    }
}
