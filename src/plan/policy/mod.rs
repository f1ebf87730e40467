//! [`CommandPolicy`]: what a command taken from a finding may do — which
//! programs, which operations of each (a default-deny [catalog]),
//! which options and argument values, which grants, and which context.
//!
//! A check refuses with a [`Refusal`] code naming the class and a reason
//! naming the argument. The checks, in the order they run:
//!
//! 1. the program is an allowed bare name (`program_not_allowed`);
//! 2. no option picks credentials, endpoint, TLS trust, debug logging, a
//!    parameter file, a pass-through or ssh behaviour (`denied_option`);
//! 3. the operation is in the catalog and not denied (`operation_not_allowed`);
//! 4. every argument is checked as the CLI would use it: no local paths
//!    (`local_path`), no file references but to files attached to the step
//!    (`file_reference`), no URLs the CLI would fetch (`url`), each context
//!    option once and unabbreviated (`context_mismatch`);
//! 5. the grants it makes: identity policies only deny, resource policies,
//!    ACLs and rules not open to everyone or another account (`policy_document`);
//! 6. it does not use a catalog operation backwards: suspend versioning,
//!    turn logging off, set a password, a startup command or arbitrary
//!    properties (`weakens`);
//! 7. read exactly as its CLI reads it ([reader]: generated option tables,
//!    awscli shorthand, JSON): an abbreviation or unknown option
//!    (`unknown_option`), one option twice (`repeated_option`);
//! 8. a remediating operation stays within its positive [spec]: only its
//!    parameters (`parameter_not_allowed`), only values that make the
//!    resource safer (`weakening`);
//! 9. with a target ([`check_for`](CommandPolicy::check_for)): every account,
//!    subscription or project it names is the finding's (`context_mismatch`),
//!    and its target is the finding's resource (`unbound_target`).
//!
//! The checks themselves are in `check.rs`; this module holds the policy's
//! rules and how they are built.

mod arguments;
pub(crate) mod catalog;
mod check;
mod deny_doc;
mod file;
pub(crate) mod grants;
pub(crate) mod probe;
mod reader;
mod scope;
mod spec;
mod weakening;
mod words;

pub use catalog::OperationClass;
pub use file::PolicyFile;
pub use probe::{DenyProbe, ProbeVerdict};

use super::Command;
use crate::error::{Error, Refusal, Result};
use catalog::Catalog;
pub(crate) use check::ScriptTarget;
use grants::GrantRules;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
pub(crate) use words::{contains_ignore_case, ends_with_ignore_case, option_name, split_at_equals};

/// A refusal: its class and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) code: Refusal,
    pub(crate) reason: String,
}

impl Violation {
    pub(crate) fn new(code: Refusal, reason: impl Into<String>) -> Self {
        Violation {
            code,
            reason: reason.into(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        Error::refused(self.code, self.reason)
    }
}

/// `text` as the CLI will read it: a JSON value with its escapes decoded
/// (`"\u0055sers"` is `"Users"`), strings that hold JSON themselves (a
/// policy inside an attribute map) decoded too, so no check can be hidden
/// behind an escape. Anything else is returned as it is.
pub(crate) fn decoded(text: &str) -> std::borrow::Cow<'_, str> {
    let t = text.trim_start();
    let json = t.starts_with('{') || t.starts_with('[') || t.starts_with('"');
    if json && text.contains('\\') {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(t) {
            let mut out = String::with_capacity(text.len());
            raw(&value, &mut out, 0);
            return std::borrow::Cow::Owned(out);
        }
    }
    std::borrow::Cow::Borrowed(text)
}

/// Writes `value` with its strings unescaped (and decoded again when they
/// hold JSON, a few levels deep).
fn raw(value: &serde_json::Value, out: &mut String, depth: usize) {
    use serde_json::Value;
    match value {
        Value::String(s) => match serde_json::from_str::<Value>(s.trim_start()) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) if depth < 4 => {
                raw(&inner, out, depth + 1)
            }
            _ => out.push_str(s),
        },
        Value::Array(items) => {
            out.push('[');
            for item in items {
                raw(item, out, depth);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (k, v) in map {
                out.push_str(k);
                out.push(':');
                raw(v, out, depth);
                out.push(',');
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `text` in backticks, with anything unprintable escaped so a reason is
/// readable and cannot itself carry control characters into logs.
pub(crate) fn quoted(text: &str) -> String {
    format!("`{}`", text.escape_debug())
}

/// What one program may not be given, whatever the catalog says.
///
/// Options (`--profile`) would choose the program's own credentials, endpoint or
/// TLS trust instead of the executor's context; subcommands (`aws configure`,
/// `gcloud auth`) are runs of positional words that change the CLI's stored
/// credentials or configuration, and with it the context of every later step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct ProgramRules {
    /// Sorted and without duplicates, for an ordered lookup per argument.
    options: Vec<String>,
    subcommands: BTreeSet<Vec<String>>,
}

/// Programs whose option parser (Python `argparse`) accepts any unambiguous
/// abbreviation of a long option: `aws --prof x` means `aws --profile x`
/// (verified with aws-cli 1.46). For these, prefixes of a denied option are denied too.
pub(super) const ABBREVIATING_PROGRAMS: &[&str] = &["aws", "az"];

/// How many commands one script may hold unless a policy says otherwise
/// ([`CommandPolicy::with_max_commands`]).
pub const DEFAULT_MAX_COMMANDS: usize = 64;

/// Options denied by default, by program.
const DEFAULT_DENIED_OPTIONS: &[(&str, &str)] = &[
    ("aws", "--profile"),
    ("aws", "--endpoint-url"),
    ("aws", "--no-verify-ssl"),
    ("aws", "--ca-bundle"),
    // Debug output prints request headers, session tokens included.
    ("aws", "--debug"),
    // A whole parameter set from a file (or a URL) past every argument check.
    ("aws", "--cli-input-json"),
    ("aws", "--cli-input-yaml"),
    ("aws", "--generate-cli-skeleton"),
    ("aws", "--cli-auto-prompt"),
    // Code that runs on the instance.
    ("aws", "--user-data"),
    ("az", "--debug"),
    ("gcloud", "--log-http"),
    ("gcloud", "--verbosity"),
    // A flags file can carry any denied flag past this check.
    ("gcloud", "--flags-file"),
    ("gcloud", "--account"),
    ("gcloud", "--impersonate-service-account"),
    ("gcloud", "--access-token-file"),
    ("gcloud", "--configuration"),
    ("gcloud", "--credential-file-override"),
    ("gcloud", "--ssh-flag"),
    ("gcloud", "--ssh-key-file"),
    ("gcloud", "--strict-host-key-checking"),
    ("gcloud", "--command"),
    // Hidden flags that pick the credentials or the API hosts, or bill
    // another project.
    ("gcloud", "--authorization-token-file"),
    ("gcloud", "--authority-selector"),
    ("gcloud", "--universe-domain"),
    ("gcloud", "--billing-project"),
    ("gcloud", "--trace-token"),
    // gsutil's top-level options (`-o` boto overrides, `-d`/`-D` debug
    // output with credentials, `-h` headers, `-i` impersonation) can only
    // come before its subcommand, where nothing but `-m`, `-q` and `-u` is
    // accepted (see the catalog); after it, `-d` means "remove".
];

/// Subcommands denied by default (and absent from the catalog): they change
/// the CLI's credentials or configuration, or hand out tokens.
const DEFAULT_DENIED_SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("aws", &["configure"]),
    ("gcloud", &["auth"]),
    ("gcloud", &["config"]),
    ("gcloud", &["components"]),
    ("az", &["login"]),
    // `az rest --url` sends the ARM bearer token to any URL.
    ("az", &["rest"]),
    ("az", &["logout"]),
    ("az", &["account", "set"]),
    ("az", &["account", "clear"]),
    ("az", &["extension"]),
];

/// Which programs, operations, options, values and grants a command may use.
///
/// The default allows `aws`, `az`, `gcloud` and `gsutil`, the operations of
/// the built-in catalog (see the README's operation table), and denies:
///
/// * `aws`: `--profile`, `--endpoint-url`, `--no-verify-ssl`, `--ca-bundle`,
///   `--debug`, `--cli-input-json`/`--cli-input-yaml`, `--user-data`,
///   including abbreviations such as `--prof`; the subcommand `configure`.
/// * `gcloud`: `--account`, `--impersonate-service-account`,
///   `--access-token-file`, `--configuration`, `--flags-file`, `--log-http`,
///   `--verbosity`, the ssh flags; the groups `auth`, `config`, `components`.
/// * `az`: `--debug`; `login`, `logout`, `account set|clear`, `extension`, `rest`.
/// * `gsutil`: `-o` (boto configuration), `-d`/`-D`/`-DD`, `-h`, `-i`.
///
/// Denied options and subcommands win over the catalog: widening the catalog
/// never re-enables them. Identity policy documents may only deny and
/// resource policies may not grant publicly, unless
/// [`allow_identity_grants`](Self::allow_identity_grants) /
/// [`allow_public_grants`](Self::allow_public_grants).
///
/// A script parsed under a policy may hold at most
/// [`max_commands`](Self::max_commands) commands ([`DEFAULT_MAX_COMMANDS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandPolicy {
    programs: BTreeSet<String>,
    /// The most commands one script may hold.
    max_commands: usize,
    /// Denied options and subcommands by program: one lookup per check.
    denied: BTreeMap<String, ProgramRules>,
    /// The operations allowed, shared until changed.
    catalog: Arc<Catalog>,
    /// A hash of `catalog`, recomputed only when it changes (hashing it on
    /// every builder call made building a policy slow).
    catalog_hash: u64,
    grants: GrantRules,
    /// The positive specs of the remediating operations, shared until changed.
    specs: Arc<spec::SpecSet>,
    /// A hash of `specs`, recomputed only when they change.
    specs_hash: u64,
    /// Log and audit destinations a spec's `destination` values may name.
    destinations: Vec<String>,
    /// Security groups an instance may be isolated into.
    isolation: Vec<String>,
    /// Whether removals that may lift a deny (detaching a customer policy,
    /// leaving a group, deleting a deny rule) may run.
    lift_deny: bool,
    /// Whether such removals run after a read-only probe found no deny in
    /// what they remove.
    probe_deny: bool,
    /// A hash of all the rules above, recomputed whenever they change; never 0.
    /// Equal rules give equal fingerprints, so a command checked by one policy
    /// is known to pass an identical one (see [`Command`]'s `verified_by`).
    fingerprint: u64,
}

impl Default for CommandPolicy {
    fn default() -> Self {
        let policy = CommandPolicy {
            programs: BTreeSet::new(),
            max_commands: DEFAULT_MAX_COMMANDS,
            denied: BTreeMap::new(),
            catalog: catalog::builtin(),
            catalog_hash: catalog::builtin_hash(),
            grants: GrantRules::default(),
            specs: spec::builtin(),
            specs_hash: spec::builtin_hash(),
            destinations: Vec::new(),
            isolation: Vec::new(),
            lift_deny: false,
            probe_deny: false,
            fingerprint: 0,
        }
        .with_programs(["aws", "az", "gcloud", "gsutil"]);
        let policy = DEFAULT_DENIED_OPTIONS
            .iter()
            .fold(policy, |p, (program, option)| {
                p.deny_option(*program, *option)
            });
        DEFAULT_DENIED_SUBCOMMANDS
            .iter()
            .fold(policy, |p, (program, words)| {
                p.deny_subcommand(*program, words.iter().copied())
            })
    }
}

impl CommandPolicy {
    /// The default policy (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most commands one script may hold (at least 1); a longer
    /// script is refused whole by [`parse_script`](super::parse_script) and
    /// [`parse_script_steps`](super::parse_script_steps).
    pub fn with_max_commands(mut self, max: usize) -> Self {
        self.max_commands = max.max(1);
        self.refingerprint()
    }

    /// The most commands one script may hold.
    pub fn max_commands(&self) -> usize {
        self.max_commands
    }

    /// Refuses a script's command number `number` if it is one too many.
    pub(crate) fn count_command(&self, number: usize, statement: usize) -> Result<()> {
        if number > self.max_commands {
            return Err(Error::refused(
                Refusal::TooManyCommands,
                format!(
                    "more than {} commands in the script, in statement {statement}",
                    self.max_commands
                ),
            ));
        }
        Ok(())
    }

    /// Replaces the allowed programs with `programs` (denied options stay).
    pub fn with_programs<I, S>(mut self, programs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.programs = programs.into_iter().map(Into::into).collect();
        self.refingerprint()
    }

    /// Allows one more program, by bare name (a name with a path separator
    /// can never pass [`check`](Self::check)). Its operations still have to
    /// be [allowed](Self::allow_operation).
    pub fn allow_program(mut self, program: impl Into<String>) -> Self {
        self.programs.insert(program.into());
        self.refingerprint()
    }

    /// Allows the operation `path` of `program` (`"iam tag-user"` for `aws`,
    /// `"network nsg rule update"` for `az`) with its `class`.
    pub fn allow_operation(
        mut self,
        program: impl Into<String>,
        path: impl Into<String>,
        class: OperationClass,
    ) -> Self {
        Arc::make_mut(&mut self.catalog)
            .entry(program.into())
            .or_default()
            .insert(normalize_path(&path.into()), class);
        self.catalog_hash = catalog::hash(&self.catalog);
        self.refingerprint()
    }

    /// Removes the operation `path` of `program` from the catalog.
    pub fn deny_operation(mut self, program: impl AsRef<str>, path: impl AsRef<str>) -> Self {
        if let Some(ops) = Arc::make_mut(&mut self.catalog).get_mut(program.as_ref()) {
            ops.remove(&normalize_path(path.as_ref()));
        }
        self.catalog_hash = catalog::hash(&self.catalog);
        self.refingerprint()
    }

    /// Empties the catalog: nothing runs until operations are allowed.
    pub fn without_operations(mut self) -> Self {
        self.catalog = Arc::new(Catalog::new());
        self.catalog_hash = catalog::hash(&self.catalog);
        self.refingerprint()
    }

    /// Lets identity policy documents allow, and any AWS-managed policy be
    /// attached (by default they may only deny).
    pub fn allow_identity_grants(mut self, allow: bool) -> Self {
        self.grants.identity_grants = allow;
        self.refingerprint()
    }

    /// Lets resource policies, ACLs and rules grant to everyone or another
    /// account (refused by default).
    pub fn allow_public_grants(mut self, allow: bool) -> Self {
        self.grants.public_grants = allow;
        self.refingerprint()
    }

    /// Adds (or replaces) the positive spec of `program`'s operation `path`,
    /// written as in the policy file's `specs:` (see [`PolicyFile`]).
    pub fn with_spec(self, program: &str, path: &str, spec_yaml: &str) -> Result<Self> {
        let spec: spec::types::OperationSpec = serde_yaml_ng::from_str(spec_yaml)
            .map_err(|e| Error::Config(format!("spec of `{program} {path}`: {e}")))?;
        Ok(self.with_parsed_spec(program, path, spec))
    }

    /// Adds (or replaces) an already parsed spec.
    pub(crate) fn with_parsed_spec(
        mut self,
        program: &str,
        path: &str,
        spec: spec::types::OperationSpec,
    ) -> Self {
        Arc::make_mut(&mut self.specs)
            .entry(program.to_owned())
            .or_default()
            .insert(normalize_path(path), spec);
        self.specs_hash = spec::hash(&self.specs);
        self.refingerprint()
    }

    /// Sets the log and audit destinations (bucket names, ARNs, resource
    /// ids, sink destinations) a command may send logs to; none by default,
    /// so a command that redirects logs is refused until the operator names
    /// where logs belong.
    pub fn with_destinations<I, S>(mut self, destinations: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.destinations = destinations.into_iter().map(Into::into).collect();
        self.refingerprint()
    }

    /// Sets the security groups (`sg-…` ids) an instance may be isolated
    /// into (`ec2 modify-instance-attribute --groups`); none by default.
    pub fn with_isolation_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.isolation = groups.into_iter().map(Into::into).collect();
        self.refingerprint()
    }

    /// Lets removals that may lift a deny run (detaching a customer-managed
    /// policy, removing a user from a group, deleting an inline policy, a
    /// bucket policy, an NSG or firewall rule): refused by default, because
    /// the thing removed may be the deny that holds an attacker back.
    pub fn allow_deny_removal(mut self, allow: bool) -> Self {
        self.lift_deny = allow;
        self.refingerprint()
    }

    /// Lets a removal that may lift a deny run once a read-only probe has
    /// fetched what it removes and found no deny there: the policy a detach
    /// removes (at its default version), an inline, bucket or repository
    /// policy, an NSG rule (`access`), a firewall rule (`denied`). The probe
    /// runs in the [`ProcessExecutor`](crate::executor::ProcessExecutor)
    /// right before the removal, with the removal's own checked values, and
    /// is recorded with the step in the audit (`probes`); an answer it
    /// cannot read counts as a deny. Removals without a probe (leaving a
    /// group, replacing a policy version or a bucket policy) stay refused
    /// unless [`allow_deny_removal`](Self::allow_deny_removal) is set.
    ///
    /// An executor of your own that runs steps this policy passed must run
    /// [`deny_probe`](Self::deny_probe)'s queries the same way.
    pub fn probe_deny_removal(mut self, probe: bool) -> Self {
        self.probe_deny = probe;
        self.refingerprint()
    }

    /// Denies `option` (`--name`, also matched as `--name=value`) for `program`.
    pub fn deny_option(mut self, program: impl Into<String>, option: impl Into<String>) -> Self {
        let options = &mut self.denied.entry(program.into()).or_default().options;
        let option = option.into();
        if let Err(at) = options.binary_search(&option) {
            options.insert(at, option);
        }
        self.refingerprint()
    }

    /// Denies the run of positional `words` (`["account", "set"]`) for `program`.
    pub fn deny_subcommand<I, S>(mut self, program: impl Into<String>, words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let words: Vec<String> = words.into_iter().map(Into::into).collect();
        if !words.is_empty() {
            self.denied
                .entry(program.into())
                .or_default()
                .subcommands
                .insert(words);
        }
        self.refingerprint()
    }

    /// Recomputes the fingerprint after a rule changed.
    fn refingerprint(mut self) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.programs.hash(&mut hasher);
        self.max_commands.hash(&mut hasher);
        self.denied.hash(&mut hasher);
        self.catalog_hash.hash(&mut hasher);
        self.grants.hash(&mut hasher);
        self.specs_hash.hash(&mut hasher);
        self.destinations.hash(&mut hasher);
        self.isolation.hash(&mut hasher);
        self.lift_deny.hash(&mut hasher);
        self.probe_deny.hash(&mut hasher);
        self.fingerprint = hasher.finish() | 1;
        self
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The allowed programs.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.programs.iter().map(String::as_str)
    }

    /// Whether `program` is an allowed bare program name.
    pub fn allows_program(&self, program: &str) -> bool {
        self.programs.contains(program)
    }

    /// The allowed operations of every program, with their classes.
    pub fn operations(&self) -> impl Iterator<Item = (&str, &str, OperationClass)> {
        self.catalog.iter().flat_map(|(program, ops)| {
            ops.iter()
                .map(move |(path, class)| (program.as_str(), path.as_str(), *class))
        })
    }

    /// The class of `command`'s operation, if the catalog holds it.
    pub fn operation_class(&self, command: &Command) -> Option<OperationClass> {
        catalog::lookup(&self.catalog, command)
            .ok()
            .map(|op| op.class)
    }
}

/// The service and operation of an aws command (`iam`, `attach-user-policy`),
/// found as the catalog finds them (global options skipped), if it has them.
pub(crate) fn aws_operation(command: &Command) -> Option<(&str, &str)> {
    catalog::aws_path(command)
}

pub(crate) use grants::option_values;

/// An operation path as the catalog keys it: words separated by one space.
fn normalize_path(path: &str) -> String {
    path.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `command` reads like a query that changes nothing: its operation
/// is in the built-in catalog as [read-only](OperationClass::ReadOnly).
/// A dry run runs [read-only](crate::plan::Step::read_only) steps for real
/// only when its policy classes the operation read-only, so a step wrongly
/// marked read-only (by a buggy planner) is refused instead of changing anything.
pub fn is_query(command: &Command) -> bool {
    catalog::lookup(&catalog::builtin(), command)
        .is_ok_and(|op| op.class == OperationClass::ReadOnly)
}
