//! Scope: one context per command. Every account, subscription or project a
//! command names — in an ARN, a resource id or URL, an option, a positional
//! argument or a document it reads — must be its finding's own.

use super::Violation;
use super::catalog::Operation;
use super::grants::option_values;
use crate::error::Refusal;
use crate::model::{Cloud, Target};
use crate::plan::{Command, StepFile};
use regex::Regex;
use std::sync::LazyLock;

/// The account field of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:`).
static ARN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:([0-9]{12}):").ok());
/// A subscription in an Azure resource id.
static SUBSCRIPTION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)/subscriptions/([^/\s\x22'?#]*)").ok());
/// A project in a GCP resource name or URL (`projects/ID/...`).
static PROJECT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[^a-z0-9_-])projects/([^/\s\x22'?#,]*)").ok());

/// aws options whose value is an account id.
const AWS_ACCOUNT_OPTIONS: &[&str] = &[
    "--account-id",
    "--expected-bucket-owner",
    "--source-account",
];
/// gcloud options that act above the project.
const GCLOUD_ABOVE_PROJECT: &[&str] = &["--organization", "--folder", "--billing-account"];

fn mismatch(reason: String) -> Violation {
    Violation::new(Refusal::ContextMismatch, reason)
}

/// The texts a command hands its CLI, as written: its arguments and the
/// files it reads.
fn raw_texts<'a>(command: &'a Command, files: &'a [StepFile]) -> impl Iterator<Item = &'a str> {
    command
        .args()
        .iter()
        .map(|a| a.as_str())
        .chain(files.iter().map(StepFile::contents))
}

/// A text as the CLI reads it: JSON escapes decoded (see [`super::decoded`]).
/// A text without a backslash is returned as it is.
fn read_text(t: &str) -> std::borrow::Cow<'_, str> {
    match t.split_once('=') {
        // `--opt={...}`: the value is the document.
        Some((option, value)) if option.starts_with('-') => match super::decoded(value) {
            std::borrow::Cow::Owned(v) => std::borrow::Cow::Owned(v),
            std::borrow::Cow::Borrowed(_) => std::borrow::Cow::Borrowed(t),
        },
        _ => super::decoded(t),
    }
}

/// The texts a command hands its CLI, as the CLI reads them.
fn texts<'a>(
    command: &'a Command,
    files: &'a [StepFile],
) -> impl Iterator<Item = std::borrow::Cow<'a, str>> {
    raw_texts(command, files).map(read_text)
}

/// The searcher for `arn:`, built once (building one per text cost more than
/// searching most texts).
static ARN_PREFIX: LazyLock<memchr::memmem::Finder<'static>> =
    LazyLock::new(|| memchr::memmem::Finder::new(b"arn:"));

/// Whether `text` names `arn:`.
fn names_arn(text: &str) -> bool {
    ARN_PREFIX.find(text.as_bytes()).is_some()
}

/// Checks that `command` acts only on `target`.
pub(super) fn check(
    command: &Command,
    op: &Operation,
    files: &[StepFile],
    target: &Target,
) -> Result<(), Violation> {
    let own = target.account_id.as_deref().unwrap_or_default();
    match target.cloud {
        Cloud::Aws => {
            if let Some(arn) = ARN.as_ref() {
                // Only a text naming `arn:`, or one whose escapes could hide
                // it (a text without a backslash reads as written), is decoded.
                let named = raw_texts(command, files)
                    .filter(|t| names_arn(t) || memchr::memchr(b'\\', t.as_bytes()).is_some())
                    .map(read_text)
                    .filter(|t| names_arn(t));
                for text in named {
                    for found in arn.captures_iter(&text) {
                        let account = found.get(1).map_or("", |m| m.as_str());
                        if account != own {
                            return Err(mismatch(format!(
                                "an ARN names account {account}, but the finding is in account {own}"
                            )));
                        }
                    }
                }
            }
            for url in option_values(command, "--queue-url") {
                let account = url.split('/').nth(3).unwrap_or_default();
                if account != own {
                    return Err(mismatch(format!(
                        "--queue-url names account {account:?}, but the finding is in account {own}"
                    )));
                }
            }
            for option in AWS_ACCOUNT_OPTIONS {
                if let Some(v) = option_values(command, option)
                    .into_iter()
                    .find(|v| *v != own)
                {
                    return Err(mismatch(format!(
                        "{option} {v:?}, but the finding is in account {own}"
                    )));
                }
            }
        }
        Cloud::Azure => {
            if let Some(re) = SUBSCRIPTION.as_ref() {
                for text in texts(command, files) {
                    if text
                        .to_ascii_lowercase()
                        .contains("/providers/microsoft.management/")
                    {
                        return Err(mismatch(format!(
                            "a resource id names a management group, above the finding's \
                             subscription {own}"
                        )));
                    }
                    for found in re.captures_iter(&text) {
                        let sub = found.get(1).map_or("", |m| m.as_str());
                        if !sub.eq_ignore_ascii_case(own) {
                            return Err(mismatch(format!(
                                "a resource id names subscription {sub:?}, but the finding is in \
                                 subscription {own}"
                            )));
                        }
                    }
                }
            }
        }
        Cloud::Gcp => gcp(command, op, files, own)?,
        _ => {}
    }
    Ok(())
}

fn gcp(command: &Command, op: &Operation, files: &[StepFile], own: &str) -> Result<(), Violation> {
    if let Some(re) = PROJECT.as_ref() {
        for text in texts(command, files) {
            // Attachment points are URL-encoded (`...googleapis.com%2Fprojects%2FP`).
            let decoded = text.replace("%2F", "/").replace("%2f", "/");
            // A service account's email names its project.
            for word in decoded.split(|c: char| !(c.is_ascii_alphanumeric() || "@.-_".contains(c)))
            {
                if let Some(project) = word
                    .strip_suffix(".iam.gserviceaccount.com")
                    .and_then(|w| w.rsplit_once('@'))
                    .map(|(_, p)| p)
                {
                    if project != own {
                        return Err(mismatch(format!(
                            "a service account of project {project:?}, but the finding is in \
                             project {own}"
                        )));
                    }
                }
            }
            for found in re.captures_iter(&decoded) {
                let project = found.get(1).map_or("", |m| m.as_str());
                if project != own {
                    return Err(mismatch(format!(
                        "a resource names project {project:?}, but the finding is in project {own}"
                    )));
                }
            }
        }
    }
    let program = command.program();
    if program == "gcloud" {
        for option in GCLOUD_ABOVE_PROJECT {
            if !option_values(command, option).is_empty() {
                return Err(mismatch(format!(
                    "{option} acts above the finding's project {own}"
                )));
            }
        }
        // `gcloud projects VERB PROJECT`: the positional is the project.
        if op.path.starts_with("projects ") {
            let after = op.path_at.last().map_or(0, |p| p + 1);
            let named = command
                .args()
                .get(after..)
                .unwrap_or_default()
                .iter()
                .find(|a| !a.starts_with('-'));
            match named {
                Some(p) if p == own => {}
                Some(p) => {
                    return Err(mismatch(format!(
                        "`gcloud {}` names project {p:?}, but the finding is in project {own}",
                        op.path
                    )));
                }
                None => {}
            }
        }
    }
    if program == "gsutil" {
        let args = command.args();
        let first = op.path_at.first().copied().unwrap_or(0);
        for (i, arg) in args.iter().enumerate() {
            let billed = i < first && arg == "-u";
            let made_in = arg == "-p" && op.path.starts_with("mb");
            if billed || made_in {
                if let Some(v) = args.get(i + 1).filter(|v| *v != own) {
                    return Err(mismatch(format!(
                        "gsutil {arg} {v:?}, but the finding is in project {own}"
                    )));
                }
            }
        }
    }
    Ok(())
}
