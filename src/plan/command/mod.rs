//! Commands as argv vectors, the [`CommandPolicy`] allowlist, and [`parse_script`],
//! which turns CLI-script text (from an API or an alert) into commands without ever
//! giving it to a shell (the rules it reads a script by are on [`parse_script`]).

mod scan;
mod script;
#[cfg(test)]
mod tests;

pub(crate) use script::parse_script_steps_for;
pub use script::{parse_script, parse_script_steps};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A command: a program and its arguments. Never a shell string.
///
/// Serializes as a JSON array of strings (the argv). Deserializing refuses an
/// empty array, so a command always has a program.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "Vec<String>", try_from = "Vec<String>")]
pub struct Command {
    /// Never empty: element 0 is the program.
    ///
    /// Shared, so cloning a command (into a plan, a dry-run record, an audit
    /// line) never copies its arguments. Words of up to 24 bytes (most words
    /// of a CLI command) are stored inline, without an allocation of their own.
    argv: std::sync::Arc<[CompactString]>,
    /// The fingerprint of the [`CommandPolicy`] this argv passed when
    /// [`parse_script`] built it, so executors checking the same command
    /// against an identical policy need not walk it again; 0 when unchecked.
    /// The argv is immutable, so the verdict cannot go stale.
    verified_by: u64,
    /// The target this argv (with no files attached) also passed the
    /// target-dependent checks for, under the policy whose fingerprint is
    /// kept with it; set only by [`CommandPolicy::check_for`] on a command
    /// [`verified_by`](Self::verified_by) that policy, so the pipeline's
    /// check and the executor's re-check before running do not walk it again.
    /// Private and set once: nothing outside the crate can forge it.
    ///
    /// [`CommandPolicy::check_for`]: crate::plan::CommandPolicy::check_for
    checked_for: std::sync::OnceLock<std::sync::Arc<CheckedFor>>,
}

/// A target-dependent verdict remembered on a [`Command`]: it passed
/// [`check_for`](crate::plan::CommandPolicy::check_for) for `target` under
/// the policy with this `fingerprint`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CheckedFor {
    pub(crate) fingerprint: u64,
    pub(crate) target: crate::model::Target,
}

impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        self.argv == other.argv
    }
}

impl Eq for Command {}

impl std::hash::Hash for Command {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.argv.hash(state);
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("argv", &self.argv).finish()
    }
}

impl Command {
    /// The fingerprint of the policy that verified this argv (0: unchecked).
    pub(crate) fn verified_by(&self) -> u64 {
        self.verified_by
    }

    /// Whether this argv passed the target-dependent checks of the policy
    /// `fingerprint` for `target` (see [`remember_checked_for`](Self::remember_checked_for)).
    pub(crate) fn checked_for(&self, fingerprint: u64, target: &crate::model::Target) -> bool {
        self.checked_for
            .get()
            .is_some_and(|c| c.fingerprint == fingerprint && c.target == *target)
    }

    /// Remembers that this argv passed the target-dependent checks of the
    /// policy `fingerprint` for `target`. The first verdict stays: a command
    /// checked for another target later is walked again each time.
    pub(crate) fn remember_checked_for(&self, fingerprint: u64, target: &crate::model::Target) {
        let _ = self.checked_for.get_or_init(|| {
            std::sync::Arc::new(CheckedFor {
                fingerprint,
                target: target.clone(),
            })
        });
    }

    /// Remembers the verdict `checked` (shared by the commands of one
    /// script, checked for the same target: one copy of the target per
    /// script, not per command). The first verdict stays.
    pub(crate) fn remember_checked(&self, checked: &std::sync::Arc<CheckedFor>) {
        let _ = self
            .checked_for
            .get_or_init(|| std::sync::Arc::clone(checked));
    }

    /// A command running `program` with `args`.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = vec![CompactString::from(program.into())];
        argv.extend(args.into_iter().map(|a| CompactString::from(a.into())));
        Command {
            argv: argv.into(),
            verified_by: 0,
            checked_for: std::sync::OnceLock::new(),
        }
    }

    /// A command from a whole argv, or `None` if `argv` is empty.
    pub fn from_argv<S: Into<CompactString>>(argv: Vec<S>) -> Option<Self> {
        if argv.is_empty() {
            None
        } else {
            Some(Command {
                argv: argv.into_iter().map(Into::into).collect(),
                verified_by: 0,
                checked_for: std::sync::OnceLock::new(),
            })
        }
    }

    /// The program (first argv element).
    pub fn program(&self) -> &str {
        self.argv
            .first()
            .map(CompactString::as_str)
            .unwrap_or_default()
    }

    /// The arguments after the program.
    pub fn args(&self) -> &[CompactString] {
        self.argv.get(1..).unwrap_or_default()
    }

    /// The whole argv, program first. Each word dereferences to `&str`.
    pub fn argv(&self) -> &[CompactString] {
        &self.argv
    }

    /// The argv as owned strings (e.g. to record or compare it).
    pub fn to_argv(&self) -> Vec<String> {
        self.argv.iter().map(|a| a.as_str().to_owned()).collect()
    }

    /// The value of option `name` (`--region x` or `--region=x`), if the command
    /// names it. Used to honour a command's own `--region`.
    pub fn option_value(&self, name: &str) -> Option<&str> {
        let args = self.args();
        for (i, arg) in args.iter().enumerate() {
            if arg == name {
                return Some(
                    args.get(i + 1)
                        .map(CompactString::as_str)
                        .unwrap_or_default(),
                );
            }
            if let Some(value) = arg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                return Some(value);
            }
        }
        None
    }
}

impl From<Command> for Vec<String> {
    fn from(command: Command) -> Self {
        command.to_argv()
    }
}

impl TryFrom<Vec<String>> for Command {
    type Error = &'static str;

    fn try_from(argv: Vec<String>) -> std::result::Result<Self, Self::Error> {
        Command::from_argv(argv).ok_or("a command needs at least a program")
    }
}

/// Shell-quoted, for humans only: this text is never executed.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters (a `\r` inside a quoted argument) would let the
        // displayed command differ from the one that runs: show those argvs
        // escaped. Only a NUL byte makes quoting fail; escaped too.
        if self.argv.iter().any(|a| a.chars().any(char::is_control)) {
            return write!(f, "{:?}", self.argv);
        }
        match shlex::try_join(self.argv.iter().map(CompactString::as_str)) {
            Ok(joined) => f.write_str(&joined),
            Err(_) => write!(f, "{:?}", self.argv),
        }
    }
}

/// `text` in backticks, with anything unprintable escaped so a reason is
/// readable and cannot itself carry control characters into logs.
fn quoted(text: &str) -> String {
    format!("`{}`", text.escape_debug())
}
