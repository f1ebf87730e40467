//! Reading a CLI script: statements into [`Command`]s checked by the
//! [`CommandPolicy`], and the two file-writing forms into [`StepFile`]s.

use super::scan::{RawWord, Scanner};
use super::{Command, quoted};
use crate::error::{Error, Refusal, Result};
use crate::plan::CommandPolicy;
use compact_str::CompactString;

/// Parses a CLI script into commands, rejecting the whole script on anything
/// unsafe, by the rules below.
///
/// An empty script, or one holding only blank lines and comments, yields no commands.
///
///  # How a script is read
///
///  A quote-aware scan splits the text into statements and rejects every shell
///  construct that would make the text mean more than "run these programs with
///  these words"; each statement's words are then unquoted by the [`shlex`] crate.
///  The rules, in the order a reader needs them:
///
///  * Statements are separated by `;`, `&&`, newlines, and the bare (unquoted)
///    word `and` when the next word is an allowed program (the Prisma Cloud API
///    writes `aws iam create-policy ... and aws iam attach-user-policy ...`).
///    A bare `and` followed by an unquoted word that is *not* an allowed program
///    and not an option (`and sh -c ...`) is rejected as ambiguous; a bare `and`
///    followed by an option or a quoted word, or at the end, is an ordinary argument.
///  * Single quotes keep everything literal; double quotes keep everything literal
///    except `\"`, `\\`, `\$`, `` \` `` and backslash-newline. A `$` or backtick
///    inside double quotes is rejected (the shell would expand it). Quoted text may
///    hold any Unicode except bidirectional overrides and control characters other
///    than tab, newline and carriage return (the `Display` of a [`Command`] shows
///    arguments holding those escaped, so what is shown is what runs).
///  * Outside quotes, these are rejected wherever they appear: pipes `|` `||`,
///    redirections `>` `>>` `<` `N>` `&>`, heredocs `<<`, `$` in any form
///    (`$(...)`, `${...}`, `$VAR`, `$'...'`), backticks, background `&`, `(` `)`
///    `{` `}`, non-ASCII characters (lookalikes such as `；`, `ａws`, zero-width or
///    non-breaking spaces, bidi overrides) and control characters, including a
///    carriage return (so `\r\n` line endings are refused rather than guessed at).
///    NUL bytes are refused everywhere.
///  * A backslash before a newline outside single quotes is a line continuation and
///    is removed, as a shell does (`aws s3 \` + newline + `ls` is `aws s3 ls`).
///    A backslash before any other character makes that character literal.
///  * A `#` that starts the first word of a statement begins a comment that runs to
///    the end of the line and is skipped. A `#` starting any later word is rejected:
///    a trailing comment would silently drop words a reader may think will run.
///    A `#` inside a word (`a#b`) is literal.
///  * `*`, `?`, `[`, `~` and `!` are passed literally: no shell runs, so nothing
///    globs or expands them.
///  * Each resulting command must pass [`CommandPolicy::check`]; a `NAME=value`
///    word before the program (an environment assignment) is rejected.
///
///  One violation anywhere rejects the whole script with
///  [`Error::UnsafeCommand`], so a plan is never half-run.
pub fn parse_script(script: &str, policy: &CommandPolicy) -> Result<Vec<Command>> {
    let (statements, _) = Scanner::new(script).scan()?;
    let mut commands = Vec::with_capacity(statements.len().min(policy.max_commands()));
    // Managed policies the script creates (deny-only, by the policy check).
    let mut created: Vec<String> = Vec::new();
    // Everything the script creates, by name (specs that say `created`).
    let mut made: Vec<String> = Vec::new();
    for words in statements {
        for group in split_on_and(&words, policy, commands.len())? {
            let number = commands.len() + 1;
            policy.count_command(number, number)?;
            let mut command = tokenize(group, number)?;
            policy
                .check_in_script(&command, &[], &mut made, None)
                .map_err(|v| in_statement(v, number))?;
            attached_policies(&command, &mut created, number)?;
            command.verified_by = policy.fingerprint();
            commands.push(command);
        }
    }
    Ok(commands)
}

/// Parses a CLI script into plan steps, like [`parse_script`], except that a
/// script may also write a file a later command reads — the one kind of
/// redirection a remediation script needs (a GCP deny policy for
/// `gcloud iam policies create --policy-file=policy.json`, a JSON document for
/// `aws ... file://policy.json`). Two forms are understood, and become a
/// [`StepFile`](crate::plan::StepFile) attached to each later step that refers to
/// the file; nothing is written by a shell and the writing statement itself
/// never runs:
///
/// * `echo WORDS > NAME`: the words (unquoted as usual) joined by spaces, plus
///   a newline (`echo -n`: no newline). Words holding a backslash are refused
///   (shells disagree on what `echo` does with them).
/// * `cat > NAME <<'EOF'` (or `cat <<'EOF' > NAME`), then the lines up to a
///   line holding only the delimiter: the lines as written. With an unquoted
///   delimiter the body may not hold `$`, backticks or backslashes (a shell
///   would expand them). `<<-` and here-strings `<<<` are refused.
///
/// `NAME` must be a plain file name with an extension (`policy.json`; letters,
/// digits, `.`, `_`, `-`), written once, and read by a later command (as an
/// argument, an option's value, or `file://NAME`), once per command; anything
/// else — appending `>>`, file descriptors `2>`, redirecting a command's
/// output, reading `<`, a file no command reads, a command naming a file
/// twice (`--key f.json --body f.json`: which one is the file?), more than
/// [`MAX_STEP_FILES`](crate::plan::MAX_STEP_FILES) files, a bare `and` in an
/// `echo` that writes a file — rejects the whole script.
pub fn parse_script_steps(script: &str, policy: &CommandPolicy) -> Result<Vec<crate::plan::Step>> {
    parse_script_steps_for(script, policy, None)
}

/// [`parse_script_steps`] for a plan whose target is known: the same
/// refusals, and each command that also passes the target-dependent checks
/// is remembered as checked for `target` (see
/// [`CommandPolicy::check_for`]), so it is read once, not once here and
/// again before it runs.
pub(crate) fn parse_script_steps_for(
    script: &str,
    policy: &CommandPolicy,
    target: Option<&crate::model::Target>,
) -> Result<Vec<crate::plan::Step>> {
    use crate::plan::Step;
    use crate::plan::file::{MAX_STEP_FILES, StepFile, refers_once};
    let mut scanner = Scanner::new(script);
    scanner.files = true;
    let (statements, writes) = scanner.scan()?;
    let mut writes = writes.into_iter().peekable();
    let mut steps: Vec<Step> = Vec::with_capacity(statements.len().min(policy.max_commands()));
    let mut files: Vec<(StepFile, bool)> = Vec::new();
    // Managed policies the script creates (deny-only, by the policy check).
    let mut created: Vec<String> = Vec::new();
    // Everything the script creates, by name (specs that say `created`).
    let mut made: Vec<String> = Vec::new();
    let mut ahead = target.map(crate::plan::policy::ScriptTarget::new);
    for (index, words) in statements.iter().enumerate() {
        let number = index + 1;
        if let Some((_, write)) = writes.next_if(|(i, _)| *i == index) {
            if files.len() == MAX_STEP_FILES {
                return Err(Error::refused(
                    Refusal::StepFile,
                    format!("more than {MAX_STEP_FILES} files written, in statement {number}"),
                ));
            }
            let contents = match write.body {
                Some(body) => body,
                None => echo_text(words, number)?,
            };
            let file = StepFile::new(write.target, contents).map_err(|e| {
                Error::refused(Refusal::StepFile, format!("{e} in statement {number}"))
            })?;
            if files.iter().any(|(f, _)| f.name() == file.name()) {
                return Err(Error::refused(
                    Refusal::StepFile,
                    format!(
                        "file `{}` is written twice, in statement {number}",
                        file.name()
                    ),
                ));
            }
            files.push((file, false));
            continue;
        }
        let groups = split_on_and(words, policy, index)?;
        // A statement may hold several commands joined by a bare `and`.
        steps.reserve(groups.len().min(policy.max_commands()));
        for group in groups {
            policy.count_command(steps.len() + 1, number)?;
            let mut command = tokenize(group, number)?;
            let mut attached = Vec::new();
            for (file, used) in &mut files {
                let once = refers_once(&command, file.name()).map_err(|e| {
                    Error::refused(Refusal::StepFile, format!("{e}, in statement {number}"))
                })?;
                if once {
                    attached.push(file.clone());
                    *used = true;
                }
            }
            policy
                .check_in_script(&command, &attached, &mut made, ahead.as_mut())
                .map_err(|v| in_statement(v, number))?;
            attached_policies(&command, &mut created, number)?;
            if attached.is_empty() {
                command.verified_by = policy.fingerprint();
            }
            let mut step = Step::new(command);
            for file in attached {
                step = step.with_file(file);
            }
            steps.push(step);
        }
    }
    if let Some((file, _)) = files.iter().find(|(_, used)| !used) {
        return Err(Error::refused(
            Refusal::StepFile,
            format!(
                "file `{}` is written but no later command reads it",
                file.name()
            ),
        ));
    }
    Ok(steps)
}

/// A refusal inside statement `number` of a script.
fn in_statement(v: crate::plan::policy::Violation, number: usize) -> Error {
    Error::refused(v.code, format!("{} in statement {number}", v.reason))
}

/// Tracks the policies a script creates (`aws iam create-policy --policy-name
/// N`, deny-only by the policy check) and refuses attaching a customer-managed
/// policy the script did not create: an existing policy of the account may
/// grant anything. AWS-managed policies are checked by the policy itself.
fn attached_policies(command: &Command, created: &mut Vec<String>, number: usize) -> Result<()> {
    let Some(path) = crate::plan::policy::aws_operation(command) else {
        return Ok(());
    };
    match path {
        ("iam", "create-policy") => {
            for name in crate::plan::policy::option_values(command, "--policy-name") {
                created.push(name.to_owned());
            }
        }
        ("iam", "attach-user-policy" | "attach-role-policy" | "attach-group-policy") => {
            for arn in crate::plan::policy::option_values(command, "--policy-arn") {
                if arn.contains(":iam::aws:policy/") {
                    continue;
                }
                let name = arn.rsplit('/').next().unwrap_or_default();
                if !created.iter().any(|c| c == name) {
                    return Err(Error::refused(
                        Refusal::PolicyDocument,
                        format!(
                            "statement {number} attaches {arn:?}, a policy this script did not \
                             create as a deny policy: an existing policy may grant anything"
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The text `echo WORDS` prints: the words joined by spaces, then a newline
/// unless the first word is `-n`.
fn echo_text(words: &[RawWord<'_>], number: usize) -> Result<String> {
    // `echo x > f.json and aws ...`: a shell would print `and aws ...` into
    // the file, where the `and` rule would split off a command: refused
    // rather than guessed.
    if words.iter().skip(1).any(|w| w.is_bare("and")) {
        return Err(Error::unsafe_command(format!(
            "bare `and` in an `echo` that writes a file, in statement {number} (put the next \
             command on a line of its own, or quote the text)"
        )));
    }
    let command = tokenize(words, number)?;
    let mut args = command.args();
    let newline = match args.first().map(CompactString::as_str) {
        Some("-n") => {
            args = args.get(1..).unwrap_or_default();
            false
        }
        _ => true,
    };
    if let Some(flag) = args.first().filter(|a| a.starts_with('-')) {
        return Err(Error::unsafe_command(format!(
            "`echo {}` in statement {number}: only `echo -n` is understood",
            flag.escape_debug()
        )));
    }
    if args.iter().any(|a| a.contains('\\')) {
        return Err(Error::unsafe_command(format!(
            "backslash in `echo` text in statement {number} (shells disagree on its meaning)"
        )));
    }
    let mut text = args.join(" ");
    if newline {
        text.push('\n');
    }
    Ok(text)
}

/// Splits one statement's words at bare `and` words that join two commands.
fn split_on_and<'w, 'a>(
    words: &'w [RawWord<'a>],
    policy: &CommandPolicy,
    done: usize,
) -> Result<Vec<&'w [RawWord<'a>]>> {
    let mut groups = Vec::with_capacity(4);
    let mut start = 0;
    for i in 1..words.len() {
        let (Some(word), Some(next)) = (words.get(i), words.get(i + 1)) else {
            continue;
        };
        if !word.is_bare("and") || i == start {
            continue;
        }
        if !next.quoted && policy.allows_program(&next.text) {
            groups.push(&words[start..i]);
            start = i + 1;
        } else if !next.quoted && !next.text.starts_with('-') {
            return Err(Error::unsafe_command(format!(
                "bare `and` followed by {}, which is not an allowed program, in statement {}",
                quoted(&next.text),
                done + groups.len() + 1
            )));
        }
    }
    groups.push(&words[start..]);
    Ok(groups)
}

/// Unquotes one command's words. A word with no quote or backslash is its own
/// argument; a quoted word goes through shlex, which must read it as exactly
/// one argument, so the scanner and shlex can never disagree silently.
fn tokenize(words: &[RawWord<'_>], number: usize) -> Result<Command> {
    let mut argv: Vec<CompactString> = Vec::with_capacity(words.len());
    for word in words {
        if word.quoted {
            if let Some(inner) = single_quoted(&word.text) {
                argv.push(inner.into());
                continue;
            }
            match shlex::split(&word.text).as_deref_mut() {
                Some([arg]) => argv.push(std::mem::take(arg).into()),
                _ => {
                    return Err(Error::unsafe_command(format!(
                        "statement {number} could not be tokenized"
                    )));
                }
            }
        } else {
            argv.push(CompactString::from(&*word.text));
        }
    }
    let command = Command::from_argv(argv)
        .ok_or_else(|| Error::unsafe_command(format!("statement {number} is empty")))?;
    let program_word = words.first().map(|w| &*w.text).unwrap_or_default();
    if is_assignment(program_word) {
        return Err(Error::unsafe_command(format!(
            "environment assignment {} before the program in statement {number}",
            quoted(program_word.split('=').next().unwrap_or_default())
        )));
    }
    Ok(command)
}

/// The text inside a word that is one single-quoted string and nothing else
/// (`'...'`): every character in it is literal, so it needs no tokenizer.
fn single_quoted(word: &str) -> Option<&str> {
    let inner = word.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.contains('\'')).then_some(inner)
}

/// Whether a raw word is `NAME=...` with a shell variable name.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}
