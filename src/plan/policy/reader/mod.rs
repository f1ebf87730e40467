//! The argv reader: a command's arguments read exactly as its CLI reads
//! them, so every later check looks at the values the CLI will use.
//!
//! * Every option must be one the operation has (the generated tables for
//!   `aws` and `gcloud`, the operation's spec for `az` and `gsutil`): an
//!   abbreviation, a misspelling or a value given to a switch is
//!   `unknown_option` (awscli would expand `--polic` to `--policy-arn`;
//!   refusing it makes the check and the CLI agree).
//! * `--opt=value` is `--opt value`; an option given twice under any
//!   spelling (`--x`/`--no-x`, `--x a`/`--x=b`) is `repeated_option`, but
//!   where the spec lets it repeat (gsutil `-d`), or where the same words
//!   are given twice (a Prisma template names `--region` twice).
//! * aws structure and list values are parsed as awscli parses them: JSON
//!   when they start with `{`/`[` (after whitespace), its shorthand otherwise
//!   ([`shorthand`]).

pub(crate) mod shorthand;
pub(crate) mod tables;
mod values;

use super::Violation;
use super::catalog::Operation;
use super::spec::types::{Constraint, OperationSpec};
use crate::error::Refusal;
use crate::plan::{Command, StepFile};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::LazyLock;
use tables::{Arity, OptionInfo, Options, Shape};

/// One option as given, with its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param<'c> {
    /// The option as spelled (`--no-multi-az`, `-n`), without `=value`.
    pub(crate) spelling: &'c str,
    /// The option it is a form of (`--multi-az` for `--no-multi-az`; the
    /// long name for an alias): the spelling itself, borrowed, unless it is
    /// another form.
    pub(crate) canonical: Cow<'c, str>,
    /// Its words (none for a switch).
    pub(crate) words: Vec<&'c str>,
    /// Its value as the CLI reads it: a string, a list of words, an object.
    pub(crate) value: Value,
    /// A global option of the CLI (`--region`, `--project`).
    pub(crate) global: bool,
    /// How the option takes values.
    pub(crate) info: OptionInfo,
}

/// A command read as its CLI reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Parsed<'c> {
    pub(crate) params: Vec<Param<'c>>,
    /// Positional words after the operation path.
    pub(crate) positionals: Vec<&'c str>,
}

impl<'c> Parsed<'c> {
    /// The params given as `name` (or any of its forms).
    pub(crate) fn named<'p>(&'p self, name: &'p str) -> impl Iterator<Item = &'p Param<'c>> {
        self.params
            .iter()
            .filter(move |p| p.spelling == name || p.canonical == name)
    }
}

/// The aws global options a remediation may use; the others (credentials,
/// endpoint, TLS, debug) are refused before the reader runs.
const AWS_GLOBALS_ALLOWED: &[&str] = &[
    "--region",
    "--output",
    "--query",
    "--color",
    "--no-paginate",
    "--no-cli-pager",
    "--cli-read-timeout",
    "--cli-connect-timeout",
    "--cli-binary-format",
];

/// gcloud global flags a remediation may use.
const GCLOUD_GLOBALS_ALLOWED: &[&str] = &[
    "--project",
    "--quiet",
    "-q",
    "--format",
    "--no-user-output-enabled",
];

/// Whether an argument is an option word (argparse: starts with `-` and is
/// not a negative number).
fn is_option(arg: &str) -> bool {
    arg.starts_with('-') && arg.len() > 1 && !arg[1..].starts_with(|c: char| c.is_ascii_digit())
}

/// The options of `command`'s operation, where a table or spec knows them;
/// `None` when nothing does (an operator's operation, or a read-only az
/// query): the reader then does not run.
fn options_of(
    command: &Command,
    op: &Operation,
    spec: Option<&OperationSpec>,
) -> Option<(Cow<'static, Options>, Cow<'static, Options>)> {
    match command.program() {
        "aws" if !tables::AWS.operations.contains_key(op.path.as_str()) => from_spec(command, spec),
        "gcloud" if !tables::GCLOUD.operations.contains_key(op.path.as_str()) => {
            from_spec(command, spec)
        }
        "aws" => {
            let (ops, _) = tables::AWS.operations.get(op.path.as_str())?;
            Some((Cow::Borrowed(ops), Cow::Borrowed(&*AWS_GLOBALS)))
        }
        "gcloud" => {
            let tracks = tables::GCLOUD.operations.get(op.path.as_str())?;
            let track = gcloud_track(command).unwrap_or("ga");
            let flags = tracks.get(track).or_else(|| tracks.get("ga"))?;
            Some((Cow::Borrowed(flags), Cow::Borrowed(&*GCLOUD_GLOBALS)))
        }
        "az" | "gsutil" => from_spec(command, spec),
        _ => None,
    }
}

/// Options every aws operation has that a remediation never gives: a
/// whole parameter set from a file, or a skeleton instead of a call.
const AWS_NEVER: &[&str] = &[
    "--cli-input-json",
    "--cli-input-yaml",
    "--generate-cli-skeleton",
];

/// The aws global options a remediation may use, read once.
static AWS_GLOBALS: LazyLock<Options> = LazyLock::new(|| {
    tables::AWS
        .global
        .iter()
        .filter(|(name, _)| AWS_GLOBALS_ALLOWED.contains(&name.as_str()))
        .map(|(n, i)| (n.clone(), i.clone()))
        .chain(
            // awscli 1.x adds these after the table is built.
            ["--no-cli-pager", "--no-cli-auto-prompt"]
                .iter()
                .filter(|n| AWS_GLOBALS_ALLOWED.contains(n))
                .map(|n| ((*n).to_owned(), OptionInfo::SWITCH)),
        )
        .collect()
});

/// The gcloud global flags a remediation may use, read once.
static GCLOUD_GLOBALS: LazyLock<Options> = LazyLock::new(|| {
    GCLOUD_GLOBALS_ALLOWED
        .iter()
        .map(|n| {
            let info = match tables::GCLOUD.global.get(*n) {
                Some(i) => i.clone(),
                None if matches!(*n, "--project" | "--format") => OptionInfo::ONE,
                None => OptionInfo::SWITCH,
            };
            ((*n).to_owned(), info)
        })
        .collect()
});

/// The options an operation's spec lists (for CLIs without a generated
/// table, and operations an operator added): exactly those spellings.
fn from_spec(
    command: &Command,
    spec: Option<&OperationSpec>,
) -> Option<(Cow<'static, Options>, Cow<'static, Options>)> {
    let spec = spec?;
    let mut ops = Options::default();
    for (name, constraint) in &spec.params {
        ops.insert(name.clone(), spec_option(constraint));
    }
    for (alias, name) in &spec.aliases {
        if let Some(info) = ops.get(name).cloned() {
            ops.insert(alias.clone(), info);
        }
    }
    let mut global = Options::default();
    let (valued, switches): (&[&str], &[&str]) = match command.program() {
        "az" => (
            &["--subscription", "--output", "-o", "--query"],
            &["--only-show-errors", "--no-wait", "--yes", "-y"],
        ),
        "aws" => (
            &["--region", "--output", "--query", "--color"],
            &["--no-paginate", "--no-cli-pager"],
        ),
        "gcloud" => (&["--project", "--format"], &["--quiet", "-q"]),
        // gsutil's top-level options before its command: the billed project
        // (the scope check holds it to the finding's), parallel, quiet.
        "gsutil" => (&["-u"], &["-m", "-q"]),
        _ => (&[], &[]),
    };
    for name in valued {
        global.insert((*name).to_owned(), OptionInfo::ONE);
    }
    for name in switches {
        global.insert((*name).to_owned(), OptionInfo::SWITCH);
    }
    Some((Cow::Owned(ops), Cow::Owned(global)))
}

/// How an az or gsutil option takes values, from its constraint.
fn spec_option(constraint: &Constraint) -> OptionInfo {
    match constraint {
        Constraint::Flag => OptionInfo::SWITCH,
        Constraint::Rule(rule) if rule.list.is_some() || rule.pairs.is_some() => {
            let objects =
                matches!(&rule.list, Some(Constraint::Rule(inner)) if inner.fields.is_some());
            OptionInfo {
                arity: Arity::Many,
                shape: if objects {
                    Shape::ObjectList
                } else {
                    Shape::List
                },
                negates: None,
            }
        }
        Constraint::Rule(rule) if rule.fields.is_some() => OptionInfo {
            shape: Shape::Object,
            ..OptionInfo::ONE
        },
        _ => OptionInfo::ONE,
    }
}

/// The release track of a gcloud command (`beta`), if it names one.
fn gcloud_track(command: &Command) -> Option<&str> {
    command
        .args()
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(|a| a.as_str())
        .filter(|a| matches!(*a, "alpha" | "beta" | "preview"))
        .map(|a| if a == "preview" { "alpha" } else { a })
}

fn refused(code: Refusal, reason: String) -> Violation {
    Violation::new(code, reason)
}

/// Reads `command` as its CLI would, or says why the CLI and a check could
/// read it differently. `None`: no table knows the operation.
pub(crate) fn read<'c>(
    command: &'c Command,
    op: &Operation,
    spec: Option<&OperationSpec>,
    files: &[StepFile],
) -> Option<Result<Parsed<'c>, Violation>> {
    let (options, global) = options_of(command, op, spec)?;
    let generated = match command.program() {
        "aws" => tables::AWS.operations.contains_key(op.path.as_str()),
        "gcloud" => tables::GCLOUD.operations.contains_key(op.path.as_str()),
        _ => false,
    };
    Some(read_with(
        command, op, &options, &global, spec, generated, files,
    ))
}

fn read_with<'c>(
    command: &'c Command,
    op: &Operation,
    options: &Options,
    global: &Options,
    spec: Option<&OperationSpec>,
    generated: bool,
    files: &[StepFile],
) -> Result<Parsed<'c>, Violation> {
    let program = command.program();
    let args = command.args();
    let path_end = op.path_at.last().map_or(0, |i| i + 1);
    // The release track word of gcloud (`gcloud beta compute ...`): the
    // first positional word, when it is one.
    let track_at = (program == "gcloud" && gcloud_track(command).is_some())
        .then(|| args.iter().position(|a| !a.starts_with('-')))
        .flatten();
    let mut parsed = Parsed::default();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let at = i;
        i += 1;
        if op.path_at.contains(&at) {
            continue;
        }
        if track_at == Some(at) {
            continue;
        }
        if !is_option(arg) {
            if at < path_end && program != "gcloud" {
                // Words before the operation that are not path words were
                // values of global options, consumed below.
                return Err(refused(
                    Refusal::UnknownOption,
                    format!(
                        "{} before the operation is not an option value",
                        super::quoted(arg)
                    ),
                ));
            }
            parsed.positionals.push(arg.as_str());
            continue;
        }
        let (name, inline) = match super::split_at_equals(arg) {
            Some((n, v)) if n.starts_with("--") || program == "gcloud" => (n, Some(v)),
            _ => (arg.as_str(), None),
        };
        let known = options
            .get(name)
            .filter(|_| !(program == "aws" && AWS_NEVER.contains(&name)));
        let (info, is_global) = match known {
            Some(info) => (info.clone(), false),
            // gsutil's top-level options come before its command only: after
            // it, `-u` is the command's own (`acl ch -u` grants).
            None => match global
                .get(name)
                .filter(|_| program != "gsutil" || at < path_end)
            {
                Some(info) => (info.clone(), true),
                None => return Err(unknown(program, op, name, options, generated)),
            },
        };
        let mut words: Vec<&'c str> = Vec::new();
        match info.arity {
            Arity::Switch => {
                if inline.is_some() {
                    return Err(refused(
                        Refusal::UnknownOption,
                        format!(
                            "{} is a switch: `{arg}` gives it a value the CLI would refuse or read otherwise",
                            super::quoted(name)
                        ),
                    ));
                }
            }
            Arity::One => match inline {
                Some(v) => words.push(v),
                None => match args.get(i) {
                    Some(v) if !is_option(v) => {
                        words.push(v.as_str());
                        i += 1;
                    }
                    _ => {
                        return Err(refused(
                            Refusal::UnknownOption,
                            format!("{} takes a value and is given none", super::quoted(name)),
                        ));
                    }
                },
            },
            Arity::Optional => match inline {
                Some(v) => words.push(v),
                None => {
                    if let Some(v) = args.get(i).filter(|v| !is_option(v) && at >= path_end) {
                        words.push(v.as_str());
                        i += 1;
                    }
                }
            },
            Arity::Many => {
                if let Some(v) = inline {
                    words.push(v);
                } else {
                    while let Some(v) = args.get(i).filter(|v| !is_option(v)) {
                        words.push(v.as_str());
                        i += 1;
                    }
                    if words.is_empty() {
                        return Err(refused(
                            Refusal::UnknownOption,
                            format!("{} takes values and is given none", super::quoted(name)),
                        ));
                    }
                }
            }
        }
        let canonical = canonical_name(name, &info, spec);
        let value = values::typed(program, name, &info, &words, files)?;
        let param = Param {
            spelling: name,
            canonical,
            words,
            value,
            global: is_global,
            info,
        };
        if let Some(first) = parsed
            .params
            .iter()
            .find(|p| p.canonical == param.canonical)
        {
            let same = first.spelling == param.spelling && first.words == param.words;
            if !same && !repeats(spec, &param) {
                return Err(refused(
                    Refusal::RepeatedOption,
                    format!(
                        "{} and {} are the same option given twice: the CLI keeps one, a check could read the other",
                        super::quoted(first.spelling),
                        super::quoted(param.spelling)
                    ),
                ));
            }
            if same && !repeats(spec, &param) {
                continue;
            }
        }
        parsed.params.push(param);
    }
    if program == "aws" {
        // aws operations take no positional words but for customizations.
        let positionals = tables::AWS
            .operations
            .get(op.path.as_str())
            .map_or(0, |(_, p)| p.len());
        if parsed.positionals.len() > positionals {
            let extra = parsed
                .positionals
                .get(positionals)
                .copied()
                .unwrap_or_default();
            return Err(refused(
                Refusal::UnknownOption,
                format!(
                    "`aws {}` takes no argument {}: awscli would refuse it or read it as something else",
                    op.path,
                    super::quoted(extra)
                ),
            ));
        }
    }
    Ok(parsed)
}

/// Whether the spec lets the option repeat.
fn repeats(spec: Option<&OperationSpec>, param: &Param<'_>) -> bool {
    let constraint = spec.and_then(|s| {
        s.params
            .get(param.canonical.as_ref())
            .or_else(|| s.params.get(param.spelling))
    });
    matches!(constraint, Some(Constraint::Rule(r)) if r.repeat.is_some())
}

/// The option a spelling stands for: the positive form of a `--no-x`, the
/// long name of an alias.
fn canonical_name<'c>(
    name: &'c str,
    info: &OptionInfo,
    spec: Option<&OperationSpec>,
) -> Cow<'c, str> {
    if let Some(positive) = &info.negates {
        return Cow::Owned(positive.clone());
    }
    if let Some(long) = spec.and_then(|s| s.aliases.get(name)) {
        return Cow::Owned(long.clone());
    }
    Cow::Borrowed(name)
}

/// An option the table does not know. With a generated table it is one the
/// CLI does not have (or an abbreviation): `unknown_option`; with a spec as
/// the table (az, gsutil, operator operations) it is one the spec does not
/// allow, unless it abbreviates one that it does.
fn unknown(
    program: &str,
    op: &Operation,
    name: &str,
    options: &Options,
    generated: bool,
) -> Violation {
    let abbreviates: Vec<&str> = options
        .keys()
        .filter(|o| name.starts_with("--") && name.len() > 2 && o.starts_with(name))
        .map(String::as_str)
        .collect();
    let hint = match abbreviates.as_slice() {
        [] => String::new(),
        [one] => format!(" (an abbreviation of {one}: spell options out in full)"),
        _ => " (an abbreviation: spell options out in full)".to_owned(),
    };
    if !generated && abbreviates.is_empty() {
        return refused(
            Refusal::ParameterNotAllowed,
            format!(
                "`{program} {}`: {} is not among the parameters its spec allows",
                op.path,
                super::quoted(name)
            ),
        );
    }
    refused(
        Refusal::UnknownOption,
        format!(
            "`{program} {}` has no option {}{hint}",
            op.path,
            super::quoted(name)
        ),
    )
}

#[cfg(test)]
mod agreement_tests;
