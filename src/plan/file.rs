//! Files attached to a step: content a command reads from a file (a GCP deny
//! policy for `gcloud iam policies create --policy-file=...`, a JSON document
//! for `aws ... file://...`), written by the executor to a private temporary
//! file, never by a shell redirection.
//!
//! A step refers to an attached file by its plain [name](StepFile::name), as an
//! argument of its own (`policy.json`), as an option's value
//! (`--policy-file=policy.json`) or as an AWS CLI file URL (`file://policy.json`,
//! `fileb://policy.json`). When the step runs, the process executor creates a
//! private directory (mode `0700`), writes each file in it (mode `0600`),
//! replaces each reference with the file's absolute path, and removes the
//! directory when the command has finished. Audit records and dry runs show the
//! argv as planned, with the name.

use super::Command;
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

/// Longest file name accepted.
const MAX_NAME_LEN: usize = 100;
/// Largest content accepted per file, in bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most files a script may write, and a step may carry.
pub const MAX_STEP_FILES: usize = 32;

/// Content a step's command reads from a file, by name.
///
/// Cloning shares the content: a file read by many steps is held once.
#[derive(Clone, PartialEq, Eq)]
pub struct StepFile {
    name: String,
    contents: Arc<str>,
}

impl fmt::Debug for StepFile {
    // The content can be long: its size is enough to recognise it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepFile")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

impl StepFile {
    /// A file named `name` holding `contents`.
    ///
    /// The name must be plain: ASCII letters, digits, `.`, `_` and `-`, not
    /// starting with `.` or `-`, with an extension (`policy.json`: a name
    /// without a dot could be mistaken for a subcommand word), at most 100
    /// characters (no directories, so it can only ever land in the executor's
    /// private directory). The
    /// content is at most [`MAX_FILE_BYTES`] and holds no NUL byte.
    pub fn new(name: impl Into<String>, contents: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let contents = contents.into();
        if !is_plain_name(&name) {
            return Err(Error::refused(
                crate::Refusal::StepFile,
                format!(
                    "file name {:?} is not a plain name (letters, digits, `.`, `_`, `-`)",
                    name.escape_debug().to_string()
                ),
            ));
        }
        if contents.len() > MAX_FILE_BYTES {
            return Err(Error::refused(
                crate::Refusal::StepFile,
                format!(
                    "file `{name}` holds {} bytes, more than {MAX_FILE_BYTES}",
                    contents.len()
                ),
            ));
        }
        if contents.contains('\0') {
            return Err(Error::refused(
                crate::Refusal::StepFile,
                format!("file `{name}` holds a NUL byte"),
            ));
        }
        Ok(StepFile {
            name,
            contents: contents.into(),
        })
    }

    /// The name the command refers to it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content written to the file.
    pub fn contents(&self) -> &str {
        &self.contents
    }
}

/// Whether `name` is a plain file name as [`StepFile::new`] requires.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name.trim_end_matches('.').contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// If `arg` refers to the file `name` — `NAME`, `file://NAME`,
/// `fileb://NAME`, or one of those as an option's value (`--opt=NAME`, one
/// level only) — the argument with `path` in its place.
pub(crate) fn substitute(arg: &str, name: &str, path: &str) -> Option<String> {
    fn whole(arg: &str, name: &str, path: &str) -> Option<String> {
        if arg == name {
            return Some(path.to_owned());
        }
        ["file://", "fileb://"]
            .into_iter()
            .find(|prefix| arg.strip_prefix(prefix) == Some(name))
            .map(|prefix| format!("{prefix}{path}"))
    }
    if let Some(replaced) = whole(arg, name, path) {
        return Some(replaced);
    }
    let (option, value) = arg.split_once('=')?;
    if !option.starts_with('-') {
        return None;
    }
    whole(value, name, path).map(|value| format!("{option}={value}"))
}

/// How many of `command`'s arguments refer to the file `name`.
pub(crate) fn references(command: &Command, name: &str) -> usize {
    command
        .args()
        .iter()
        .filter(|arg| substitute(arg, name, "").is_some())
        .count()
}

/// Whether `command` refers to the file `name` exactly once; naming it twice
/// is ambiguous (`--key policy.json --body policy.json`: only one of the two
/// means the file), and an error.
pub(crate) fn refers_once(command: &Command, name: &str) -> Result<bool> {
    match references(command, name) {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(Error::refused(
            crate::Refusal::StepFile,
            format!(
                "file `{name}` is named {n} times in `{command}`: which argument is the file \
             is ambiguous"
            ),
        )),
    }
}

/// Checks a step's files: at most [`MAX_STEP_FILES`], unique names, each
/// referred to exactly once by the command.
pub(crate) fn check(command: &Command, files: &[StepFile]) -> Result<()> {
    if files.len() > MAX_STEP_FILES {
        return Err(Error::refused(
            crate::Refusal::StepFile,
            format!(
                "{} files attached to `{command}`, more than {MAX_STEP_FILES}",
                files.len()
            ),
        ));
    }
    for (i, file) in files.iter().enumerate() {
        if files
            .get(..i)
            .unwrap_or_default()
            .iter()
            .any(|f| f.name == file.name)
        {
            return Err(Error::refused(
                crate::Refusal::StepFile,
                format!("file `{}` is attached twice", file.name),
            ));
        }
        if !refers_once(command, &file.name)? {
            return Err(Error::refused(
                crate::Refusal::StepFile,
                format!(
                    "file `{}` is attached to `{command}`, which does not refer to it",
                    file.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain() {
        for good in ["policy.json", "deny_policy-1.yaml", "a.b.c"] {
            assert!(StepFile::new(good, "{}").is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "-rf",
            "../x",
            "/etc/passwd",
            "a/b",
            "a b",
            "p\u{ff0e}json",
            "a\0",
            "policy",
            "policy.",
        ] {
            assert!(StepFile::new(bad, "{}").is_err(), "{bad:?}");
        }
        assert!(StepFile::new("big", "x".repeat(MAX_FILE_BYTES + 1)).is_err());
        assert!(StepFile::new("nul", "a\0b").is_err());
    }

    #[test]
    fn references_are_whole_arguments_option_values_or_file_urls() {
        let c = Command::new(
            "gcloud",
            [
                "iam",
                "policies",
                "create",
                "p",
                "--policy-file=policy.json",
            ],
        );
        assert_eq!(references(&c, "policy.json"), 1);
        assert_eq!(references(&c, "policy"), 0);
        let c = Command::new("aws", ["iam", "put", "--doc", "file://d.json", "x=d.json"]);
        assert_eq!(references(&c, "d.json"), 1);
        let c = Command::new("aws", ["iam", "put", "x=d.json", "d.json.bak"]);
        assert_eq!(references(&c, "d.json"), 0);
        let f = StepFile::new("d.json", "{}").unwrap();
        assert!(check(&c, std::slice::from_ref(&f)).is_err());
        let c = Command::new("aws", ["iam", "put", "--doc", "fileb://d.json"]);
        assert!(check(&c, std::slice::from_ref(&f)).is_ok());
        assert!(check(&c, &[f.clone(), f]).is_err());
    }

    #[test]
    fn option_values_are_references_one_level_deep_only() {
        let c = Command::new("gcloud", ["x", "--a=--b=p.json"]);
        assert_eq!(references(&c, "p.json"), 0);
        let c = Command::new("aws", ["x", "--doc=file://p.json"]);
        assert_eq!(references(&c, "p.json"), 1);
        // Once recursive: this many prefixes overflowed a worker's stack.
        let deep = format!("{}p.json", "-=".repeat(200_000));
        let c = Command::new("aws", ["a".to_owned(), deep]);
        assert_eq!(references(&c, "p.json"), 0);
    }

    #[test]
    fn a_file_named_twice_by_one_command_is_ambiguous() {
        let f = StepFile::new("policy.json", "{}").unwrap();
        let c = Command::new(
            "aws",
            [
                "s3api",
                "put-object",
                "--key",
                "policy.json",
                "--body",
                "policy.json",
            ],
        );
        let e = check(&c, std::slice::from_ref(&f)).unwrap_err().to_string();
        assert!(e.contains("named 2 times"), "{e}");
    }

    #[test]
    fn a_step_carries_at_most_max_step_files() {
        let names: Vec<String> = (0..=MAX_STEP_FILES).map(|i| format!("f{i}.json")).collect();
        let files: Vec<StepFile> = names
            .iter()
            .map(|n| StepFile::new(n.as_str(), "{}").unwrap())
            .collect();
        let c = Command::new("aws", names.iter().map(String::as_str));
        assert!(check(&c, &files[..MAX_STEP_FILES]).is_ok());
        let e = check(&c, &files).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn clones_share_the_contents() {
        let f = StepFile::new("p.json", "x".repeat(1000)).unwrap();
        let g = f.clone();
        assert!(std::ptr::eq(f.contents(), g.contents()));
    }
}
