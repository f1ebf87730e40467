//! The checks of a [`CommandPolicy`], in the order they run: program,
//! denied options and subcommands, catalog, arguments (paths, files, URLs),
//! the argv reader, grants, the older weakening rules, the positive spec,
//! then with a target its scope and binding.

use super::{
    ABBREVIATING_PROGRAMS, CommandPolicy, DenyProbe, OperationClass, ProgramRules, Violation,
    arguments, catalog, grants, probe, quoted, reader, scope, spec, weakening,
};
use crate::error::{Refusal, Result};
use crate::model::Target;
use crate::plan::command::CheckedFor;
use crate::plan::{Command, Step, StepFile};

impl CommandPolicy {
    /// Checks one command on its own (no files attached, no target): see the
    /// [type docs](CommandPolicy) for what is refused.
    pub fn check(&self, command: &Command) -> Result<()> {
        if command.verified_by() == self.fingerprint {
            return Ok(());
        }
        self.violation(command, &[], None, true)
            .map_err(Violation::into_error)
    }

    /// Checks a step: its command with the files attached to it (a
    /// `file://NAME` must name one of them, and the documents they hold are
    /// checked like inline ones).
    pub fn check_step(&self, step: &Step) -> Result<()> {
        if step.files.is_empty() && step.command.verified_by() == self.fingerprint {
            return Ok(());
        }
        self.violation(&step.command, &step.files, None, true)
            .map_err(Violation::into_error)
    }

    /// Checks a step for `target`: [`check_step`](Self::check_step), and
    /// that every account, subscription or project it names is the
    /// target's own, and that no resource policy grants to another account.
    pub fn check_for(&self, step: &Step, target: &Target) -> Result<()> {
        let command = &step.command;
        if step.files.is_empty() && command.verified_by() == self.fingerprint {
            // The target-independent checks passed when the script was
            // parsed under this policy: only what depends on the target is
            // left, and it is walked once per target (the pipeline checks a
            // plan before it runs, and the executor checks each step again).
            if command.checked_for(self.fingerprint, target) {
                return Ok(());
            }
            self.scoped(command, &step.files, target)
                .map_err(Violation::into_error)?;
            command.remember_checked_for(self.fingerprint, target);
            return Ok(());
        }
        self.violation(&step.command, &step.files, Some(target), true)
            .map_err(Violation::into_error)
    }

    /// The checks that depend on the target: principals of other accounts
    /// in resource policies, and every account, subscription or project named.
    fn scoped(
        &self,
        command: &Command,
        files: &[StepFile],
        target: &Target,
    ) -> std::result::Result<(), Violation> {
        let op = catalog::lookup(&self.catalog, command)?;
        grants::check_principals(command, &op, files, self.grants, aws_account(Some(target)))?;
        scope::check(command, &op, files, target)?;
        if op.class != OperationClass::Remediating || op.by_any {
            return Ok(());
        }
        let spec = spec::spec_for(&self.specs, command.program(), &op);
        let parsed = reader::read(command, &op, spec, files).transpose()?;
        self.bound(command, &op, spec, parsed.as_ref(), target)
    }

    /// Binding: a remediating command acts on the finding's resource.
    fn bound(
        &self,
        command: &Command,
        op: &catalog::Operation,
        spec: Option<&spec::types::OperationSpec>,
        parsed: Option<&reader::Parsed<'_>>,
        target: &Target,
    ) -> std::result::Result<(), Violation> {
        if op.class != OperationClass::Remediating || op.by_any {
            return Ok(());
        }
        let empty = reader::Parsed::default();
        spec::check_bound(command, op, spec, parsed.unwrap_or(&empty), target)
    }

    /// Why `command` may not run, if it may not. `scan_nul` is false only for
    /// commands the script parser built, whose scanner already refused NUL bytes.
    pub(crate) fn violation(
        &self,
        command: &Command,
        files: &[StepFile],
        target: Option<&Target>,
        scan_nul: bool,
    ) -> std::result::Result<(), Violation> {
        self.violation_with(command, files, target, scan_nul, None, None)
            .map(drop)
    }

    /// Checks a command of a script (no target yet), given what the
    /// script's earlier commands `created`, and adds what this one creates.
    ///
    /// With the plan's `target` known (a planner for one finding), the
    /// target-dependent checks run too, on the same reading of the argv; a
    /// command with no files that passes them is remembered as checked for
    /// that target, so the pipeline's and the executor's
    /// [`check_for`](Self::check_for) need not read it again. A command that
    /// fails them is not refused here: it is refused where a plan for the
    /// target is checked, with the same reason, as before.
    pub(crate) fn check_in_script(
        &self,
        command: &Command,
        files: &[StepFile],
        created: &mut Vec<String>,
        target: Option<&mut ScriptTarget<'_>>,
    ) -> std::result::Result<(), Violation> {
        let ahead = target.as_ref().map(|t| t.target);
        let scoped = self.violation_with(command, files, None, false, Some(created), ahead)?;
        if scoped && files.is_empty() {
            if let Some(target) = target {
                let fingerprint = self.fingerprint;
                let checked = target.checked.get_or_insert_with(|| {
                    std::sync::Arc::new(CheckedFor {
                        fingerprint,
                        target: target.target.clone(),
                    })
                });
                command.remember_checked(checked);
            }
        }
        Ok(())
    }

    /// The checks in order; with `target`, refuses what the target-dependent
    /// checks refuse. With `ahead` instead (and no `target`), runs those
    /// checks for `ahead` without refusing and tells whether they passed.
    fn violation_with(
        &self,
        command: &Command,
        files: &[StepFile],
        target: Option<&Target>,
        scan_nul: bool,
        mut created: Option<&mut Vec<String>>,
        ahead: Option<&Target>,
    ) -> std::result::Result<bool, Violation> {
        let program = command.program();
        if program.is_empty() {
            return Err(Violation::new(
                Refusal::ProgramNotAllowed,
                "empty program name",
            ));
        }
        if program.contains(['/', '\\']) {
            return Err(Violation::new(
                Refusal::ProgramNotAllowed,
                format!(
                    "program given as a path ({}); only bare names are allowed",
                    quoted(program)
                ),
            ));
        }
        if !self.allows_program(program) {
            return Err(Violation::new(
                Refusal::ProgramNotAllowed,
                format!(
                    "program {} is not allowed (allowed: {})",
                    quoted(program),
                    self.programs().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if scan_nul && command.argv().iter().any(|a| a.contains('\0')) {
            return Err(Violation::new(
                Refusal::ShellSyntax,
                "NUL byte in an argument",
            ));
        }
        if let Some(rules) = self.denied.get(program) {
            denied(program, rules, command)?;
        }
        let op = catalog::lookup(&self.catalog, command)?;
        let spec = spec::spec_for(&self.specs, program, &op);
        // Files, paths and URLs first: the most specific reason for what
        // the CLI would read or fetch.
        let names: Vec<&str> = files.iter().map(StepFile::name).collect();
        arguments::check(command, &op.path_at, &names)?;
        // The argv as the CLI reads it: every later check agrees with the CLI.
        let parsed = reader::read(command, &op, spec, files).transpose()?;
        grants::check(command, &op, files, self.grants, aws_account(target))?;
        weakening::check(command, &op)?;
        if op.class == OperationClass::Remediating && !op.by_any {
            self.positive(
                command,
                &op,
                spec,
                parsed.as_ref(),
                files,
                created.as_deref().map(Vec::as_slice),
            )?;
        }
        // In a script: what this command creates (or makes safe), by name,
        // for the later commands whose spec says `created`.
        if let (Some(created), Some(spec), Some(parsed)) = (created.as_mut(), spec, parsed.as_ref())
        {
            created.extend(spec::created_names(spec, parsed));
        }
        match (target, ahead) {
            (Some(target), _) => {
                scope::check(command, &op, files, target)?;
                self.bound(command, &op, spec, parsed.as_ref(), target)?;
                Ok(true)
            }
            (None, Some(ahead)) => Ok(grants::check_principals(
                command,
                &op,
                files,
                self.grants,
                aws_account(Some(ahead)),
            )
            .and_then(|()| scope::check(command, &op, files, ahead))
            .and_then(|()| self.bound(command, &op, spec, parsed.as_ref(), ahead))
            .is_ok()),
            (None, None) => Ok(false),
        }
    }

    /// The positive spec: only its parameters, only its values.
    fn positive(
        &self,
        command: &Command,
        op: &catalog::Operation,
        spec: Option<&spec::types::OperationSpec>,
        parsed: Option<&reader::Parsed<'_>>,
        files: &[StepFile],
        created: Option<&[String]>,
    ) -> std::result::Result<(), Violation> {
        // Only a refusal names the operation.
        let shown = || format!("`{} {}`", command.program(), op.path);
        let Some(spec) = spec else {
            return Err(Violation::new(
                Refusal::ParameterNotAllowed,
                format!(
                    "{} has no positive spec: add one (the policy file's `specs:`) naming its \
                     target and the values that make it safer",
                    shown()
                ),
            ));
        };
        let Some(parsed) = parsed else {
            return Err(Violation::new(
                Refusal::UnknownOption,
                format!("{}: no option table to read it by", shown()),
            ));
        };
        let options = spec::Options {
            destinations: &self.destinations,
            isolation: &self.isolation,
            created,
            lift_deny: self.lift_deny,
            probe_deny: self.probe_deny,
        };
        spec::check(command, op, spec, parsed, files, options)
    }
}

/// The target a script is checked for, with the verdict its commands share
/// once one passed.
pub(crate) struct ScriptTarget<'t> {
    target: &'t Target,
    checked: Option<std::sync::Arc<CheckedFor>>,
}

impl<'t> ScriptTarget<'t> {
    pub(crate) fn new(target: &'t Target) -> Self {
        ScriptTarget {
            target,
            checked: None,
        }
    }
}

/// The finding's AWS account, when the target is one.
fn aws_account(target: Option<&Target>) -> Option<&str> {
    target
        .filter(|t| t.cloud == crate::model::Cloud::Aws)
        .and_then(|t| t.account_id.as_deref())
}

/// Refuses the options and subcommands `rules` deny.
fn denied(
    program: &str,
    rules: &ProgramRules,
    command: &Command,
) -> std::result::Result<(), Violation> {
    let abbreviates = ABBREVIATING_PROGRAMS.contains(&program);
    for arg in command.args() {
        let Some(name) = super::option_name(arg) else {
            continue;
        };
        // The denied options that start with `name` sort together, from
        // the first one not less than `name`: one lookup finds the exact
        // match or, for abbreviating programs, any option `name` abbreviates.
        let first = rules
            .options
            .get(rules.options.partition_point(|d| d.as_str() < name));
        let denied = first.filter(|denied| {
            *denied == name
                || (abbreviates
                    && name.starts_with("--")
                    && name.len() > 2
                    && denied.starts_with(name))
        });
        if let Some(denied) = denied {
            return Err(Violation::new(
                Refusal::DeniedOption,
                format!(
                    "option {} ({denied} for {program}) is not allowed: it would change the \
                     credentials, endpoint, TLS trust, logging or input the executor controls",
                    quoted(name),
                ),
            ));
        }
    }
    // Subcommands are the leading positional words: a resource that happens
    // to be named `config` further on is not the subcommand.
    let leading = command
        .args()
        .iter()
        .position(|a| a.starts_with('-'))
        .unwrap_or(command.args().len());
    let leading = command.args().get(..leading).unwrap_or_default();
    for words in &rules.subcommands {
        if leading.windows(words.len()).any(|w| w == words.as_slice()) {
            return Err(Violation::new(
                Refusal::OperationNotAllowed,
                format!(
                    "`{program} {}` is not allowed: it changes the CLI's stored credentials or \
                     configuration",
                    words.join(" ")
                ),
            ));
        }
    }
    Ok(())
}

impl CommandPolicy {
    /// The read-only probe `step` needs before it runs, if this policy
    /// [probes deny removals](Self::probe_deny_removal) and the step is a
    /// removal that may lift one (and is not allowed outright).
    pub fn deny_probe(&self, step: &Step) -> Option<DenyProbe> {
        if !self.probe_deny || self.lift_deny {
            return None;
        }
        let command = &step.command;
        let op = catalog::lookup(&self.catalog, command).ok()?;
        if op.class != OperationClass::Remediating
            || op.by_any
            || !probe::supported(command.program(), &op.path)
        {
            return None;
        }
        let spec = spec::spec_for(&self.specs, command.program(), &op)?;
        let parsed = reader::read(command, &op, Some(spec), &step.files)?.ok()?;
        let lifts = spec
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with(spec::LIFTS_DENY));
        if !(lifts || probe::disables(&op, &parsed))
            || spec::removes_only_grants(command, &op, &parsed)
        {
            return None;
        }
        probe::build(command, &op, &parsed)
    }
}
