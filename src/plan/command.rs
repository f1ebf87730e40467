//! Commands as argv vectors, the [`CommandPolicy`] allowlist, and [`parse_script`],
//! which turns CLI-script text (from an API or an alert) into commands without ever
//! giving it to a shell.
//!
//! # How a script is read
//!
//! A quote-aware scan splits the text into statements and rejects every shell
//! construct that would make the text mean more than "run these programs with
//! these words"; each statement's words are then unquoted by the [`shlex`] crate.
//! The rules, in the order a reader needs them:
//!
//! * Statements are separated by `;`, `&&`, newlines, and the bare (unquoted)
//!   word `and` when the next word is an allowed program (the Prisma Cloud API
//!   writes `aws iam create-policy ... and aws iam attach-user-policy ...`).
//!   A bare `and` followed by an unquoted word that is *not* an allowed program
//!   and not an option (`and sh -c ...`) is rejected as ambiguous; a bare `and`
//!   followed by an option or a quoted word, or at the end, is an ordinary argument.
//! * Single quotes keep everything literal; double quotes keep everything literal
//!   except `\"`, `\\`, `\$`, `` \` `` and backslash-newline. A `$` or backtick
//!   inside double quotes is rejected (the shell would expand it). Quoted text may
//!   hold any Unicode except bidirectional overrides and control characters other
//!   than tab, newline and carriage return (the `Display` of a [`Command`] shows
//!   arguments holding those escaped, so what is shown is what runs).
//! * Outside quotes, these are rejected wherever they appear: pipes `|` `||`,
//!   redirections `>` `>>` `<` `N>` `&>`, heredocs `<<`, `$` in any form
//!   (`$(...)`, `${...}`, `$VAR`, `$'...'`), backticks, background `&`, `(` `)`
//!   `{` `}`, non-ASCII characters (lookalikes such as `；`, `ａws`, zero-width or
//!   non-breaking spaces, bidi overrides) and control characters, including a
//!   carriage return (so `\r\n` line endings are refused rather than guessed at).
//!   NUL bytes are refused everywhere.
//! * A backslash before a newline outside single quotes is a line continuation and
//!   is removed, as a shell does (`aws s3 \` + newline + `ls` is `aws s3 ls`).
//!   A backslash before any other character makes that character literal.
//! * A `#` that starts the first word of a statement begins a comment that runs to
//!   the end of the line and is skipped. A `#` starting any later word is rejected:
//!   a trailing comment would silently drop words a reader may think will run.
//!   A `#` inside a word (`a#b`) is literal.
//! * `*`, `?`, `[`, `~` and `!` are passed literally: no shell runs, so nothing
//!   globs or expands them.
//! * Each resulting command must pass [`CommandPolicy::check`]; a `NAME=value`
//!   word before the program (an environment assignment) is rejected.
//!
//! One violation anywhere rejects the whole script with
//! [`Error::UnsafeCommand`], so a plan is never half-run.

use super::CommandPolicy;
use crate::error::{Error, Refusal, Result};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
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

/// Parses a CLI script into commands, rejecting the whole script on anything
/// unsafe (see the [module docs](self) for the exact rules).
///
/// An empty script, or one holding only blank lines and comments, yields no commands.
pub fn parse_script(script: &str, policy: &CommandPolicy) -> Result<Vec<Command>> {
    let (statements, _) = Scanner::new(script).scan()?;
    let mut commands = Vec::with_capacity(statements.len().min(policy.max_commands()));
    // Managed policies the script creates (deny-only, by the policy check).
    let mut created: Vec<String> = Vec::new();
    for words in statements {
        for group in split_on_and(&words, policy, commands.len())? {
            let number = commands.len() + 1;
            policy.count_command(number, number)?;
            let mut command = tokenize(group, number)?;
            policy
                .violation(&command, &[], None, false)
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
/// [`StepFile`](super::StepFile) attached to each later step that refers to
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
/// [`MAX_STEP_FILES`](super::files::MAX_STEP_FILES) files, a bare `and` in an
/// `echo` that writes a file — rejects the whole script.
pub fn parse_script_steps(script: &str, policy: &CommandPolicy) -> Result<Vec<crate::plan::Step>> {
    use super::file::{MAX_STEP_FILES, StepFile, refers_once};
    use crate::plan::Step;
    let mut scanner = Scanner::new(script);
    scanner.files = true;
    let (statements, writes) = scanner.scan()?;
    let mut writes = writes.into_iter().peekable();
    let mut steps: Vec<Step> = Vec::with_capacity(statements.len().min(policy.max_commands()));
    let mut files: Vec<(StepFile, bool)> = Vec::new();
    // Managed policies the script creates (deny-only, by the policy check).
    let mut created: Vec<String> = Vec::new();
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
                .violation(&command, &attached, None, false)
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
fn in_statement(v: super::policy::Violation, number: usize) -> Error {
    Error::refused(v.code, format!("{} in statement {number}", v.reason))
}

/// Tracks the policies a script creates (`aws iam create-policy --policy-name
/// N`, deny-only by the policy check) and refuses attaching a customer-managed
/// policy the script did not create: an existing policy of the account may
/// grant anything. AWS-managed policies are checked by the policy itself.
fn attached_policies(command: &Command, created: &mut Vec<String>, number: usize) -> Result<()> {
    let Some(path) = super::policy::aws_operation(command) else {
        return Ok(());
    };
    match path.as_str() {
        "iam create-policy" => {
            for name in super::policy::option_values(command, "--policy-name") {
                created.push(name.to_owned());
            }
        }
        "iam attach-user-policy" | "iam attach-role-policy" | "iam attach-group-policy" => {
            for arn in super::policy::option_values(command, "--policy-arn") {
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

/// A statement that writes a file (only scanned when files are allowed).
#[derive(Debug, Default)]
struct FileWrite {
    /// The file name after `>`.
    target: String,
    /// The heredoc's delimiter and whether it was quoted.
    heredoc: Option<(String, bool)>,
    /// The heredoc's body, once read.
    body: Option<String>,
}

/// One word as written (quotes kept, line continuations removed), for shlex to unquote.
///
/// The text borrows from the script unless a line continuation inside the
/// word forced a copy, so scanning allocates nothing per character.
#[derive(Debug)]
struct RawWord<'a> {
    text: Cow<'a, str>,
    /// Byte offset in the script just after the word's last character.
    end: usize,
    /// Whether any part of the word was quoted or escaped.
    quoted: bool,
}

impl RawWord<'_> {
    fn is_bare(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }
}

/// How the last statement ended, which decides whether an empty statement is an error.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Separator {
    Semicolon,
    AndAnd,
    Newline,
    End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Reads a script character by character, knowing its byte position.
struct Cursor<'a> {
    script: &'a str,
    /// Byte offset just after the last character read.
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.script
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn next_if(&mut self, accept: impl Fn(&char) -> bool) -> Option<char> {
        let c = self.peek().filter(|c| accept(c))?;
        self.pos += c.len_utf8();
        Some(c)
    }
}

/// The quote-aware scan: finds statement boundaries and word boundaries and
/// rejects shell syntax. It never unquotes; shlex does that afterwards.
/// Bytes that are ordinary word characters outside quotes, in a table: the
/// scanner's fast path tests every byte of a script against it.
const PLAIN_UNQUOTED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'/' | b':' | b'=' | b',' | b'@' | b'+' | b'%'
            );
        b += 1;
    }
    table
};

struct Scanner<'a> {
    chars: Cursor<'a>,
    statements: Vec<Vec<RawWord<'a>>>,
    words: Vec<RawWord<'a>>,
    word: Option<RawWord<'a>>,
    /// The previous separator was `&&`, so the next statement must not be empty.
    after_and_and: bool,
    /// Whether `echo ... > NAME` and `cat <<EOF > NAME` statements are understood.
    files: bool,
    /// The current statement's file write, while it is being read.
    pending: Option<FileWrite>,
    /// File writes, by statement index.
    writes: Vec<(usize, FileWrite)>,
}

impl<'a> Scanner<'a> {
    fn new(script: &'a str) -> Self {
        Scanner {
            chars: Cursor { script, pos: 0 },
            statements: Vec::with_capacity(4),
            words: Vec::with_capacity(16),
            word: None,
            after_and_and: false,
            files: false,
            pending: None,
            writes: Vec::new(),
        }
    }

    /// The statement being read, 1-based, for error messages.
    fn number(&self) -> usize {
        self.statements.len() + 1
    }

    fn reject(&self, what: impl fmt::Display) -> Error {
        Error::unsafe_command(format!("{what} in statement {}", self.number()))
    }

    /// Appends the text the cursor just read — the last `len` bytes before
    /// it — to the current word, starting one if needed.
    fn push_read(&mut self, len: usize, quoted: bool) {
        let end = self.chars.pos;
        let start = end.saturating_sub(len);
        let script = self.chars.script;
        let piece = script.get(start..end).unwrap_or_default();
        match &mut self.word {
            None => {
                self.word = Some(RawWord {
                    text: Cow::Borrowed(piece),
                    end,
                    quoted,
                });
            }
            Some(word) => {
                match &mut word.text {
                    // Contiguous with what came before: widen the borrowed slice.
                    Cow::Borrowed(text) if word.end == start => {
                        let begin = start - text.len();
                        *text = script.get(begin..end).unwrap_or_default();
                    }
                    // A line continuation was removed in between: copy.
                    text => text.to_mut().push_str(piece),
                }
                word.end = end;
                word.quoted |= quoted;
            }
        }
    }

    /// Consumes a run of ASCII characters that need no decision in the current
    /// quoting state — nothing a shell would treat specially, nothing this
    /// scanner rejects — and appends it in one step. Everything else (and
    /// every non-ASCII character) takes the character-by-character path.
    fn plain_run(&mut self, quote: Quote) -> bool {
        let rest = self
            .chars
            .script
            .as_bytes()
            .get(self.chars.pos..)
            .unwrap_or_default();
        fn quoted_text(b: u8) -> bool {
            b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\n' | b'\r')
        }
        let n = match quote {
            Quote::None => rest
                .iter()
                .take_while(|&&b| PLAIN_UNQUOTED[usize::from(b)])
                .count(),
            Quote::Single => rest
                .iter()
                .take_while(|&&b| b != b'\'' && quoted_text(b))
                .count(),
            Quote::Double => rest
                .iter()
                .take_while(|&&b| !matches!(b, b'"' | b'$' | b'`' | b'\\') && quoted_text(b))
                .count(),
        };
        if n == 0 {
            return false;
        }
        self.chars.pos += n;
        self.push_read(n, quote != Quote::None);
        true
    }

    /// Appends the character just read.
    fn push(&mut self, c: char, quoted: bool) {
        self.push_read(c.len_utf8(), quoted);
    }

    /// Appends a backslash and the character just read after it (both kept
    /// for shlex to unquote).
    fn push_escaped(&mut self, escaped: char) {
        self.push_read(1 + escaped.len_utf8(), true);
    }

    fn end_word(&mut self) {
        if let Some(word) = self.word.take() {
            self.words.push(word);
        }
    }

    fn end_statement(&mut self, separator: Separator) -> Result<()> {
        self.end_word();
        if let Some(write) = self.pending.take() {
            self.finish_write(write, separator)?;
        }
        if self.words.is_empty() {
            return match separator {
                Separator::AndAnd => Err(self.reject("`&&` without a command before it")),
                Separator::Semicolon if self.after_and_and => {
                    Err(self.reject("`;` right after `&&`"))
                }
                Separator::End if self.after_and_and => Err(self.reject("script ends with `&&`")),
                // A newline after `&&` continues the statement list, as in a shell.
                _ => Ok(()),
            };
        }
        // The next statement's words get a buffer of their own, unless
        // there is no next statement.
        let capacity = if separator == Separator::End {
            0
        } else {
            self.words.len().max(16)
        };
        self.statements.push(std::mem::replace(
            &mut self.words,
            Vec::with_capacity(capacity),
        ));
        self.after_and_and = separator == Separator::AndAnd;
        Ok(())
    }

    /// Checks the shape of a statement that writes a file and records it.
    fn finish_write(&mut self, write: FileWrite, separator: Separator) -> Result<()> {
        let first = self.words.first();
        let shape_ok = match &write.heredoc {
            None => first.is_some_and(|w| w.is_bare("echo")),
            Some(_) => self.words.len() == 1 && first.is_some_and(|w| w.is_bare("cat")),
        };
        if write.target.is_empty() || !shape_ok {
            let what = if write.target.is_empty() {
                "heredoc `<<`"
            } else {
                "redirection `>`"
            };
            return Err(self.reject(format!(
                "{what} outside quotes (a script may only write a file with \
                 `echo TEXT > NAME` or `cat > NAME <<'EOF'`)"
            )));
        }
        if write.heredoc.is_some() && write.body.is_none() {
            return Err(self.reject(match separator {
                Separator::End => "heredoc without a body",
                _ => "heredoc not at the end of its line",
            }));
        }
        self.writes.push((self.statements.len(), write));
        Ok(())
    }

    /// `> NAME` or `<<DELIM` in a statement that may write a file.
    fn file_redirect(&mut self, c: char) -> Result<()> {
        let next = self.chars.peek();
        let fd_prefix = self
            .word
            .as_ref()
            .is_some_and(|w| !w.quoted && w.text.bytes().all(|b| b.is_ascii_digit()));
        let heredoc = match (c, next) {
            ('>', n) if !fd_prefix && !matches!(n, Some('>' | '&' | '(' | '|')) => false,
            ('<', Some('<')) if !fd_prefix => {
                self.chars.next();
                match self.chars.peek() {
                    Some('<') => return Err(self.reject("here-string `<<<` outside quotes")),
                    Some('-') => return Err(self.reject("heredoc `<<-` (use `<<` without tabs)")),
                    _ => true,
                }
            }
            _ => return Err(self.redirection(c, next)),
        };
        self.end_word();
        while self.chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        let start = self.chars.pos;
        let quote = self.chars.next_if(|&c| heredoc && (c == '\'' || c == '"'));
        while self
            .chars
            .next_if(|&c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .is_some()
        {}
        let name_start = start + usize::from(quote.is_some());
        let name = self
            .chars
            .script
            .get(name_start..self.chars.pos)
            .unwrap_or_default()
            .to_owned();
        if let Some(q) = quote {
            if self.chars.next_if(|&c| c == q).is_none() {
                return Err(self.reject("unterminated heredoc delimiter"));
            }
        }
        let ends_word = matches!(
            self.chars.peek(),
            None | Some(' ' | '\t' | '\n' | ';' | '&' | '<' | '>')
        );
        if name.is_empty() || !ends_word {
            return Err(self.reject(if heredoc {
                "heredoc `<<` delimiter that is not a plain word"
            } else {
                "redirection `>` to a name that is not a plain file name (letters, digits, \
                 `.`, `_`, `-`)"
            }));
        }
        let write = self.pending.get_or_insert_with(FileWrite::default);
        if heredoc {
            if write.heredoc.is_some() {
                return Err(self.reject("two heredocs in one statement"));
            }
            write.heredoc = Some((name, quote.is_some()));
        } else {
            if !write.target.is_empty() {
                return Err(self.reject("two redirections in one statement"));
            }
            write.target = name;
        }
        Ok(())
    }

    /// Reads a heredoc's body: the lines after the current one, up to a line
    /// holding only the delimiter.
    fn read_heredoc_body(&mut self) -> Result<()> {
        let Some((delimiter, quoted)) = self.pending.as_ref().and_then(|w| w.heredoc.clone())
        else {
            return Ok(());
        };
        let mut body = String::new();
        loop {
            let rest = self.chars.script.get(self.chars.pos..).unwrap_or_default();
            if rest.is_empty() {
                return Err(self.reject(format!(
                    "heredoc not terminated by a `{}` line",
                    delimiter.escape_debug()
                )));
            }
            let (line, consumed) = match rest.find('\n') {
                Some(i) => (rest.get(..i).unwrap_or_default(), i + 1),
                None => (rest, rest.len()),
            };
            self.chars.pos += consumed;
            if line == delimiter {
                break;
            }
            for c in line.chars() {
                self.check_quoted_char(c)?;
                if !quoted && matches!(c, '$' | '`' | '\\') {
                    return Err(self.reject(format!(
                        "`{c}` in a heredoc with an unquoted delimiter (a shell would expand \
                         it; quote the delimiter: <<'{delimiter}')"
                    )));
                }
            }
            body.push_str(line);
            body.push('\n');
        }
        if let Some(write) = &mut self.pending {
            write.body = Some(body);
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn scan(mut self) -> Result<(Vec<Vec<RawWord<'a>>>, Vec<(usize, FileWrite)>)> {
        let mut quote = Quote::None;
        loop {
            if self.plain_run(quote) {
                continue;
            }
            let Some(c) = self.chars.next() else { break };
            if c == '\0' {
                return Err(self.reject("NUL byte"));
            }
            quote = match quote {
                Quote::None => self.unquoted(c)?,
                Quote::Single => self.single_quoted(c)?,
                Quote::Double => self.double_quoted(c)?,
            };
        }
        match quote {
            Quote::None => {}
            Quote::Single => return Err(self.reject("unterminated single quote")),
            Quote::Double => return Err(self.reject("unterminated double quote")),
        }
        self.end_statement(Separator::End)?;
        Ok((self.statements, self.writes))
    }

    fn unquoted(&mut self, c: char) -> Result<Quote> {
        let next = self.chars.peek();
        match c {
            ' ' | '\t' => self.end_word(),
            '\n' => {
                if self.pending.is_some() {
                    self.end_word();
                    self.read_heredoc_body()?;
                }
                self.end_statement(Separator::Newline)?;
            }
            ';' => self.end_statement(Separator::Semicolon)?,
            '\'' => {
                self.push(c, true);
                return Ok(Quote::Single);
            }
            '"' => {
                self.push(c, true);
                return Ok(Quote::Double);
            }
            '\\' => match self.chars.next() {
                None => return Err(self.reject("trailing backslash")),
                // Line continuation: removed, as a shell does before splitting words.
                Some('\n') => {}
                Some(escaped) => {
                    self.check_unquoted_char(escaped)?;
                    self.push_escaped(escaped);
                }
            },
            '#' if self.word.is_none() => {
                if !self.words.is_empty() {
                    return Err(self.reject("comment `#` after a command"));
                }
                // A comment line: skip to the newline, which still ends the statement.
                while self.chars.next_if(|&n| n != '\n').is_some() {}
            }
            '&' => {
                return match next {
                    Some('&') => {
                        self.chars.next();
                        self.end_statement(Separator::AndAnd)?;
                        Ok(Quote::None)
                    }
                    Some('>') => Err(self.reject("redirection `&>` outside quotes")),
                    _ => Err(self.reject("background `&` outside quotes")),
                };
            }
            '|' => {
                return Err(match next {
                    Some('|') => self.reject("`||` outside quotes"),
                    Some('&') => self.reject("pipe `|&` outside quotes"),
                    _ => self.reject("pipe `|` outside quotes"),
                });
            }
            '>' | '<' if self.files => self.file_redirect(c)?,
            '>' | '<' => return Err(self.redirection(c, next)),
            '$' => {
                return Err(match next {
                    Some('(') => self.reject("command substitution `$(` outside quotes"),
                    Some('{') => self.reject("parameter expansion `${` outside quotes"),
                    Some('\'') => self.reject("ANSI-C quoting `$'` outside quotes"),
                    _ => self.reject("variable expansion `$` outside quotes"),
                });
            }
            '`' => return Err(self.reject("command substitution with backticks")),
            '(' | ')' => return Err(self.reject(format!("subshell or grouping `{c}`"))),
            '{' | '}' => {
                return Err(self.reject(format!("brace group or brace expansion `{c}`")));
            }
            _ => {
                self.check_unquoted_char(c)?;
                self.push(c, false);
            }
        }
        Ok(Quote::None)
    }

    fn redirection(&self, c: char, next: Option<char>) -> Error {
        let fd = self
            .word
            .as_ref()
            .filter(|w| !w.quoted && w.text.chars().all(|d| d.is_ascii_digit()))
            .map(|w| &*w.text)
            .unwrap_or_default();
        let what = match (c, next) {
            ('<', Some('<')) => "heredoc `<<`".to_owned(),
            ('<', Some('(')) => "process substitution `<(`".to_owned(),
            ('>', Some('(')) => "process substitution `>(`".to_owned(),
            ('>', Some('>')) => format!("redirection `{fd}>>`"),
            ('>', Some('&')) => format!("redirection `{fd}>&`"),
            _ => format!("redirection `{fd}{c}`"),
        };
        self.reject(format!("{what} outside quotes"))
    }

    fn check_unquoted_char(&self, c: char) -> Result<()> {
        if c == '\r' {
            return Err(self.reject("carriage return `\\r` outside quotes"));
        }
        if c.is_control() {
            return Err(self.reject(format!(
                "control character U+{:04X} outside quotes",
                u32::from(c)
            )));
        }
        if !c.is_ascii() {
            return Err(self.reject(format!(
                "non-ASCII character U+{:04X} outside quotes",
                u32::from(c)
            )));
        }
        Ok(())
    }

    fn check_quoted_char(&self, c: char) -> Result<()> {
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            return Err(self.reject(format!(
                "control character U+{:04X} inside quotes",
                u32::from(c)
            )));
        }
        // Bidirectional overrides and isolates make displayed text differ from
        // what runs ("Trojan Source"); no CLI argument needs them.
        if matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            return Err(self.reject(format!(
                "bidirectional control character U+{:04X}",
                u32::from(c)
            )));
        }
        Ok(())
    }

    fn single_quoted(&mut self, c: char) -> Result<Quote> {
        self.check_quoted_char(c)?;
        self.push(c, true);
        Ok(if c == '\'' {
            Quote::None
        } else {
            Quote::Single
        })
    }

    fn double_quoted(&mut self, c: char) -> Result<Quote> {
        match c {
            '"' => {
                self.push(c, true);
                return Ok(Quote::None);
            }
            '$' => return Err(self.reject("`$` inside double quotes (expanded by a shell)")),
            '`' => return Err(self.reject("backtick inside double quotes (expanded by a shell)")),
            '\\' => match self.chars.peek() {
                None => return Err(self.reject("unterminated double quote")),
                Some('\n') => {
                    self.chars.next();
                }
                Some(escaped @ ('$' | '`' | '"' | '\\')) => {
                    self.chars.next();
                    self.push_escaped(escaped);
                }
                // Any other backslash is literal; the next character is read normally.
                Some(_) => self.push('\\', true),
            },
            _ => {
                self.check_quoted_char(c)?;
                self.push(c, true);
            }
        }
        Ok(Quote::Double)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DEFAULT_MAX_COMMANDS, is_query};

    /// The default policy with every operation allowed: these tests are
    /// about the parser, not the catalog.
    fn open() -> CommandPolicy {
        use crate::plan::OperationClass::Remediating;
        ["aws", "az", "gcloud", "gsutil"]
            .into_iter()
            .fold(CommandPolicy::default(), |p, program| {
                p.allow_operation(program, "*", Remediating)
            })
    }

    fn parse(script: &str) -> Result<Vec<Command>> {
        parse_script(script, &open())
    }

    #[test]
    fn queries_are_told_from_changes() {
        let q =
            |program: &str, args: &[&str]| is_query(&Command::new(program, args.iter().copied()));
        assert!(q("aws", &["iam", "get-user", "--user-name", "u"]));
        assert!(q(
            "aws",
            &["iam", "list-attached-user-policies", "--user-name", "u"]
        ));
        assert!(q(
            "aws",
            &["glue", "get-dev-endpoint", "--endpoint-name", "e"]
        ));
        assert!(q("aws", &["ec2", "describe-vpcs"]));
        assert!(!q("aws", &["iam", "delete-user", "--user-name", "get-x"]));
        assert!(!q("aws", &["iam", "attach-user-policy"]));
        assert!(q("aws", &["--region", "us-east-1", "iam", "get-user"]));
        assert!(q("gcloud", &["projects", "get-iam-policy", "p"]));
        assert!(!q(
            "gcloud",
            &["projects", "remove-iam-policy-binding", "p"]
        ));
        assert!(q("az", &["vm", "show", "-n", "x"]));
        assert!(!q("az", &["vm", "delete", "-n", "x"]));
        assert!(!q("sh", &["-c", "list"]));
    }

    #[test]
    fn nul_bytes_are_refused_inside_quotes_too() {
        for script in ["aws s3 ls 'a\0b'", "aws s3 ls \"a\0b\"", "aws s3 ls a\\\0b"] {
            let err = parse(script).unwrap_err().to_string();
            assert!(
                err.contains("NUL") || err.contains("U+0000"),
                "{script:?}: {err}"
            );
        }
    }

    #[test]
    fn a_parse_verdict_carries_only_to_an_identical_policy() {
        let commands = parse("aws s3 ls --recursive").unwrap();
        let command = &commands[0];
        // Same rules, built separately: the memoized verdict applies.
        assert_eq!(open().fingerprint(), open().fingerprint());
        assert!(open().check(command).is_ok());
        // Any changed rule changes the fingerprint, so the command is walked again.
        let stricter = open().deny_option("aws", "--recursive");
        assert_ne!(stricter.fingerprint(), open().fingerprint());
        assert!(stricter.check(command).is_err());
        let fewer_programs = open().with_programs(["gcloud"]);
        assert!(fewer_programs.check(command).is_err());
        // A command built by hand, or deserialized, was never verified.
        let by_hand = Command::new("aws", ["configure"]);
        assert!(open().check(&by_hand).is_err());
        let round_trip: Command =
            serde_json::from_str(&serde_json::to_string(command).unwrap()).unwrap();
        assert_eq!(&round_trip, command);
        assert_eq!(round_trip.verified_by, 0);
    }

    fn argvs(script: &str) -> Vec<Vec<String>> {
        parse(script)
            .unwrap()
            .into_iter()
            .map(|c| c.to_argv())
            .collect()
    }

    fn reason(script: &str) -> String {
        match parse(script) {
            Err(Error::UnsafeCommand { reason, .. }) => reason,
            other => panic!("expected UnsafeCommand for {script:?}, got {other:?}"),
        }
    }

    #[test]
    fn splits_statements() {
        assert_eq!(
            argvs("aws s3 ls; aws iam list-users && az group list\ngcloud projects list"),
            vec![
                vec!["aws", "s3", "ls"],
                vec!["aws", "iam", "list-users"],
                vec!["az", "group", "list"],
                vec!["gcloud", "projects", "list"],
            ]
        );
        assert!(parse("").unwrap().is_empty());
        assert!(parse("  \n ; \n# only a comment\n").unwrap().is_empty());
    }

    #[test]
    fn quotes_keep_metacharacters_as_data() {
        let doc = r#"{"a": "x; y | z && w > v $HOME `id`"}"#;
        let got = argvs(&format!("aws iam put --doc '{doc}'"));
        assert_eq!(got, vec![vec!["aws", "iam", "put", "--doc", doc]]);
        assert_eq!(
            argvs(r#"aws x --doc "a \"b\" \$c \\ \q""#),
            vec![vec!["aws", "x", "--doc", r#"a "b" $c \ \q"#]]
        );
    }

    #[test]
    fn and_splits_only_before_allowed_programs() {
        assert_eq!(
            argvs("aws a and aws b"),
            vec![vec!["aws", "a"], vec!["aws", "b"]]
        );
        assert_eq!(
            argvs("aws a 'and' aws b"),
            vec![vec!["aws", "a", "and", "aws", "b"]]
        );
        assert_eq!(argvs("aws a and"), vec![vec!["aws", "a", "and"]]);
        assert_eq!(
            argvs("aws a and --x 'sh'"),
            vec![vec!["aws", "a", "and", "--x", "sh"]]
        );
        assert!(reason("aws a and sh -c x").contains("`sh`"));
    }

    #[test]
    fn continuation_and_comments() {
        assert_eq!(
            argvs("# fix it\naws s3 \\\nls\n  # done"),
            vec![vec!["aws", "s3", "ls"]]
        );
        assert!(reason("aws s3 ls # hidden").contains("comment"));
        assert_eq!(argvs("aws a#b"), vec![vec!["aws", "a#b"]]);
        // What is displayed is what runs: a carriage return cannot hide text.
        let spoof = parse_script(
            "aws iam delete-user --user-name 'admin\r aws s3 ls'",
            &open(),
        )
        .unwrap();
        assert!(spoof[0].to_string().contains("\\r"), "{}", spoof[0]);
        // A continuation inside a word joins its halves, quoted or not.
        assert_eq!(argvs("aws s\\\n3 ls"), vec![vec!["aws", "s3", "ls"]]);
        assert_eq!(
            argvs("aws x --doc \"{\\\n\\\"a\\\": 1}\" y"),
            vec![vec!["aws", "x", "--doc", "{\"a\": 1}", "y"]]
        );
        assert_eq!(
            argvs("aws a\\ b 'c d'\\\n'e' f\\;g"),
            vec![vec!["aws", "a b", "c de", "f;g"]]
        );
    }

    #[test]
    fn rejections_name_what_was_found() {
        assert!(reason("aws a; aws b | sh").contains("pipe `|` outside quotes in statement 2"));
        assert!(reason("aws a 2>&1").contains("`2>&`"));
        assert!(reason("aws a && ").contains("ends with `&&`"));
        assert!(reason("&& aws a").contains("`&&` without"));
        assert!(reason("FOO=1 aws a").contains("assignment `FOO`"));
        assert!(reason("aws a\r\n").contains("carriage return"));
        assert!(reason("aws a\u{FF1B} rm").contains("U+FF1B"));
        assert!(reason("aws 'a\u{202E}b'").contains("bidirectional"));
        assert!(reason("aws --prof x s3 ls").contains("--profile"));
        assert!(reason("aws configure set region x").contains("aws configure"));
        assert!(reason("az account set -s x").contains("az account set"));
        assert!(reason("aws s3 ls --debug").contains("--debug"));
        assert!(reason("az rest --url https://example.com").contains("az rest"));
        assert!(reason("gcloud compute instances list --log-http").contains("--log-http"));
        assert!(reason("gcloud iam roles list --flags-file=f.yaml").contains("--flags-file"));
    }

    #[test]
    fn policy_checks_commands_built_directly() {
        let policy = open();
        assert!(policy.check(&Command::new("aws", ["s3", "ls"])).is_ok());
        assert!(policy.check(&Command::new("/usr/bin/aws", ["s3"])).is_err());
        assert!(
            policy
                .check(&Command::new("aws", ["--endpoint-url=http://x"]))
                .is_err()
        );
        assert!(policy.check(&Command::new("aws", ["s3", "a\0b"])).is_err());
        assert!(
            policy
                .check(&Command::new("az", ["vm", "--subscription", "s"]))
                .is_ok()
        );
        assert!(
            policy
                .check(&Command::new(
                    "gcloud",
                    ["compute", "x", "--config", "c.yaml"]
                ))
                .is_ok()
        );
        assert!(
            policy
                .check(&Command::new("gcloud", ["--configuration=x"]))
                .is_err()
        );
        let custom = open().with_programs(["kubectl"]);
        assert!(custom.check(&Command::new("aws", ["s3", "ls"])).is_err());
        assert!(
            custom
                .allow_program("aws")
                .check(&Command::new("aws", ["s3", "ls"]))
                .is_ok()
        );
        // The default catalog knows no `aws s3 ls`.
        let err = CommandPolicy::default()
            .check(&Command::new("aws", ["s3", "ls"]))
            .unwrap_err();
        assert_eq!(err.refusal(), Some(crate::Refusal::OperationNotAllowed));
    }

    #[test]
    fn command_serializes_as_argv_and_displays_quoted() {
        let c = Command::new("aws", ["s3", "ls", "a b"]);
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"["aws","s3","ls","a b"]"#
        );
        assert_eq!(c.to_string(), "aws s3 ls 'a b'");
        let back: Command = serde_json::from_str(r#"["aws","s3"]"#).unwrap();
        assert_eq!(back.args(), ["s3"]);
        assert!(serde_json::from_str::<Command>("[]").is_err());
        assert_eq!(
            Command::new("aws", ["--region=eu-west-1"]).option_value("--region"),
            Some("eu-west-1")
        );
    }

    fn steps(script: &str) -> Result<Vec<crate::plan::Step>> {
        parse_script_steps(script, &open())
    }

    #[test]
    fn a_script_holds_at_most_max_commands() {
        let policy = CommandPolicy::default();
        assert_eq!(policy.max_commands(), DEFAULT_MAX_COMMANDS);
        for sep in ["\n", " ; ", " && ", " and "] {
            let full = script_of(DEFAULT_MAX_COMMANDS, sep);
            assert_eq!(parse(&full).unwrap().len(), DEFAULT_MAX_COMMANDS, "{sep:?}");
            assert_eq!(steps(&full).unwrap().len(), DEFAULT_MAX_COMMANDS, "{sep:?}");
            let over = script_of(DEFAULT_MAX_COMMANDS + 1, sep);
            for err in [parse(&over).unwrap_err(), steps(&over).unwrap_err()] {
                assert_eq!(err.kind(), crate::ErrorKind::UnsafeCommand, "{sep:?}");
                assert!(
                    err.to_string()
                        .contains(&format!("more than {DEFAULT_MAX_COMMANDS} commands")),
                    "{err}"
                );
            }
        }
        // A file write is not a command; a policy sets its own limit (at least 1).
        let two = open().with_max_commands(2);
        let writes =
            "echo '{}' > p.json\naws iam a --doc file://p.json\naws iam b --doc file://p.json";
        assert_eq!(parse_script_steps(writes, &two).unwrap().len(), 2);
        let three = format!("{writes}\naws iam c");
        assert!(parse_script_steps(&three, &two).is_err());
        assert!(parse_script(&script_of(3, "\n"), &two).is_err());
        assert_eq!(parse_script(&script_of(2, "\n"), &two).unwrap().len(), 2);
        let one = CommandPolicy::default().with_max_commands(0);
        assert_eq!(one.max_commands(), 1);
        assert!(parse_script(&script_of(2, "\n"), &one).is_err());
        assert_eq!(parse_script(&script_of(1, "\n"), &one).unwrap().len(), 1);
    }

    /// `n` commands joined by `sep`.
    fn script_of(n: usize, sep: &str) -> String {
        (0..n)
            .map(|i| format!("aws iam get-user --user-name u{i}"))
            .collect::<Vec<_>>()
            .join(sep)
    }

    #[test]
    fn file_writes_become_attached_files() {
        let script = "echo '{\"rules\":[{\"deniedPrincipals\":[\"principalSet://goog/public:all\"]}]}' > policy.json\n\
             gcloud iam policies create deny-1 --attachment-point=cloudresourcemanager.googleapis.com/projects/p --kind=denypolicies --policy-file=policy.json";
        let got = steps(script).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].command.program(), "gcloud");
        assert_eq!(got[0].files.len(), 1);
        assert_eq!(got[0].files[0].name(), "policy.json");
        assert_eq!(
            got[0].files[0].contents(),
            "{\"rules\":[{\"deniedPrincipals\":[\"principalSet://goog/public:all\"]}]}\n"
        );
        // A heredoc, quoted delimiter: `$` stays literal; echo -n; && and file://.
        let script = "cat > deny.json <<'EOF'\n{\"a\": \"$HOME ; | && `x`\"}\n  two\nEOF\n\
             echo -n hello world > note.txt && aws s3 cp note.txt s3://b/k\n\
             gcloud iam policies create d --kind=denypolicies --policy-file deny.json && aws iam put --doc file://deny.json";
        let got = steps(script).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].files[0].contents(), "hello world");
        assert_eq!(
            got[1].files[0].contents(),
            "{\"a\": \"$HOME ; | && `x`\"}\n  two\n"
        );
        assert_eq!(got[2].files[0].name(), "deny.json");
        // `cat <<EOF > name`, unquoted delimiter without expansions.
        let got = steps("cat <<EOF >p.json\n{}\nEOF\ngcloud x --policy-file=p.json").unwrap();
        assert_eq!(got[0].files[0].contents(), "{}\n");
        // Without files, parse_script still refuses every redirection.
        assert!(
            parse_script(
                "echo x > p.json\ngcloud x --f=p.json",
                &CommandPolicy::default()
            )
            .is_err()
        );
    }

    #[test]
    fn a_script_writes_at_most_max_step_files() {
        use crate::plan::MAX_STEP_FILES;
        let script = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("f{i}.json")).collect();
            let writes: String = names.iter().map(|f| format!("echo x > {f}\n")).collect();
            format!("{writes}aws a {}", names.join(" "))
        };
        assert_eq!(
            steps(&script(MAX_STEP_FILES)).unwrap()[0].files.len(),
            MAX_STEP_FILES
        );
        let err = steps(&script(MAX_STEP_FILES + 1)).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
        // Quoted, `and` is text.
        let got = steps("echo 'x and y' > p.json\naws a p.json").unwrap();
        assert_eq!(got[0].files[0].contents(), "x and y\n");
    }

    #[test]
    fn unsupported_file_writes_are_rejected() {
        let cases = [
            ("echo x >> p.json\ngcloud a p.json", "`>>`"),
            ("echo x 2> p.json\ngcloud a p.json", "`2>`"),
            (
                "aws s3 ls > p.json\ngcloud a p.json",
                "may only write a file",
            ),
            ("echo x > /etc/p.json\ngcloud a p.json", "plain file name"),
            ("echo x > ../p.json\ngcloud a p.json", "plain file name"),
            ("echo x > 'p.json'\ngcloud a p.json", "plain file name"),
            ("echo x > policy\ngcloud a policy", "not a plain name"),
            ("echo x > p.json", "no later command reads it"),
            (
                "gcloud a p.json\necho x > p.json",
                "no later command reads it",
            ),
            (
                "echo x > p.json\necho y > p.json\ngcloud a p.json",
                "written twice",
            ),
            (
                "echo x > a.json > b.json\ngcloud a a.json b.json",
                "two redirections",
            ),
            ("echo -e 'a\\nb' > p.json\ngcloud a p.json", "echo -n"),
            ("echo 'a\\nb' > p.json\ngcloud a p.json", "backslash"),
            (
                "cat > p.json <<EOF\n$HOME\nEOF\ngcloud a p.json",
                "unquoted delimiter",
            ),
            (
                "cat > p.json <<EOF\n`id`\nEOF\ngcloud a p.json",
                "unquoted delimiter",
            ),
            ("cat > p.json <<'EOF'\nx\ngcloud a p.json", "not terminated"),
            ("cat > p.json <<'EOF'", "without a body"),
            (
                "cat > p.json <<'EOF'; gcloud a p.json\nx\nEOF",
                "end of its line",
            ),
            ("cat <<< x > p.json\ngcloud a p.json", "here-string"),
            ("cat <<-EOF > p.json\n\tx\nEOF\ngcloud a p.json", "`<<-`"),
            (
                "cat x.json > p.json\ngcloud a p.json",
                "may only write a file",
            ),
            ("gcloud a < p.json", "redirection `<`"),
            ("echo x > p.json | sh", "pipe"),
            ("echo x > p.json && sh p.json", "not allowed"),
            (
                "cat > p.json <<'EOF'\n\u{202e}x\nEOF\ngcloud a p.json",
                "bidirectional",
            ),
            (
                "echo x > p.json and aws s3 cp p.json s3://b/k\naws s3 cp p.json s3://b/c",
                "bare `and`",
            ),
            (
                "echo '{}' > policy.json\naws s3api put-object --bucket b --key policy.json --body policy.json",
                "named 2 times",
            ),
            (
                "echo x > p.json\naws a --x=--y=p.json",
                "no later command reads it",
            ),
        ];
        for (script, expected) in cases {
            let err = steps(script).expect_err(script).to_string();
            assert!(err.contains(expected), "{script:?}: {err}");
        }
    }
}
