//! Scope: one context per command. Every account, subscription or project a
//! command names — in an ARN, a resource id or URL, an option, a positional
//! argument or a document it reads — must be its finding's own.

use super::Violation;
use super::catalog::Operation;
use super::grants::{option_values, options_values};
use crate::error::Refusal;
use crate::model::{Cloud, Target};
use crate::plan::{Command, StepFile};
use regex::Regex;
use std::sync::LazyLock;

/// The account fields of the ARNs in `text`, left to right and not
/// overlapping: `arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:([0-9]{12}):` read by
/// hand (each part's class excludes `:`, so there is one way to match).
fn arn_accounts(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(at) = bytes.get(from..).and_then(|rest| ARN_PREFIX.find(rest)) {
            let start = from + at;
            match arn_account_at(bytes, start + 4) {
                Some((account, end)) => {
                    from = end;
                    // The account is 12 ASCII digits: a character boundary each side.
                    return text.get(account..account + 12);
                }
                None => from = start + 1,
            }
        }
        None
    })
}

/// After `arn:` at `i`: the account's offset and the end of the match.
fn arn_account_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let part = |mut i: usize, ok: fn(u8) -> bool| {
        while b.get(i).copied().is_some_and(ok) {
            i += 1;
        }
        (b.get(i) == Some(&b':')).then_some(i + 1)
    };
    let lower_dash = |c: u8| c.is_ascii_lowercase() || c == b'-';
    let lower_digit_dash = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    if b.get(i..i + 3) != Some(b"aws") {
        return None;
    }
    let i = part(i + 3, lower_dash)?;
    let i = part(i, lower_digit_dash)?;
    let i = part(i, lower_digit_dash)?;
    let digits = b.get(i..i + 12)?;
    (digits.iter().all(u8::is_ascii_digit) && b.get(i + 12) == Some(&b':')).then_some((i, i + 13))
}
/// A subscription in an Azure resource id.
static SUBSCRIPTION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)/subscriptions/([^/\s\x22'?#]*)").ok());
/// A project in a GCP resource name or URL (`projects/ID/...`).
static PROJECT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|[^a-z0-9_-])projects/([^/\s\x22'?#,]*)").ok());

/// aws options whose value names an account: a queue URL (first), then
/// options whose value is an account id.
const AWS_ACCOUNT_OPTIONS: &[&str] = &[
    "--queue-url",
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
            // Only a text naming `arn:`, or one whose escapes could hide
            // it (a text without a backslash reads as written), is decoded.
            let named = raw_texts(command, files)
                .filter(|t| names_arn(t) || memchr::memchr(b'\\', t.as_bytes()).is_some())
                .map(read_text)
                .filter(|t| names_arn(t));
            for text in named {
                if let Some(account) = arn_accounts(&text).find(|a| *a != own) {
                    return Err(mismatch(format!(
                        "an ARN names account {account}, but the finding is in account {own}"
                    )));
                }
            }
            // One walk of the argv for all of them; checked in their order.
            let named = options_values(command, AWS_ACCOUNT_OPTIONS);
            for (_, url) in named.iter().filter(|(n, _)| *n == 0) {
                let account = url.split('/').nth(3).unwrap_or_default();
                if account != own {
                    return Err(mismatch(format!(
                        "--queue-url names account {account:?}, but the finding is in account {own}"
                    )));
                }
            }
            for (n, option) in AWS_ACCOUNT_OPTIONS.iter().enumerate().skip(1) {
                if let Some((_, v)) = named.iter().find(|(i, v)| *i == n && *v != own) {
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

#[cfg(test)]
mod tests {
    use super::arn_accounts;
    use regex::Regex;

    /// The ARN reader finds exactly what the expression it replaced finds.
    #[test]
    fn arn_reader_agrees_with_the_expression() {
        let re = Regex::new(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:([0-9]{12}):").expect("regex");
        let by_re = |t: &str| -> Vec<String> {
            re.captures_iter(t)
                .map(|c| c.get(1).map_or("", |m| m.as_str()).to_owned())
                .collect()
        };
        let fixed = [
            "arn:aws:iam::123456789012:user/a",
            "arn:aws-us-gov:s3:us-east-1:123456789012:x",
            "xarn:arn:aws:iam::123456789012:root",
            "arn:aws:iam::12345678901:arn:aws:iam::210987654321:role/r",
            "arn:aws:iam::1234567890123:",
            "arn:aws:iam::123456789012:arn:aws:iam::123456789012:",
            "arn:AWS:iam::123456789012:",
            "arn:aws:iam:eu-west-1:123456789012",
            "{\"Resource\":\"arn:aws:sqs:us-east-1:111122223333:q\"}",
        ];
        for t in fixed {
            let got: Vec<String> = arn_accounts(t).map(str::to_owned).collect();
            assert_eq!(got, by_re(t), "{t:?}");
        }
        // Random texts over an alphabet that makes near-misses likely.
        let alphabet: Vec<char> = "arnws:-01e9xAé".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 60) as usize;
            let mut t = String::new();
            for _ in 0..len {
                match next() % 5 {
                    0 => t.push_str("arn:aws"),
                    1 => t.push_str("123456789012"),
                    _ => t.push(alphabet[(next() % alphabet.len() as u64) as usize]),
                }
            }
            let got: Vec<String> = arn_accounts(&t).map(str::to_owned).collect();
            assert_eq!(got, by_re(&t), "{t:?}");
        }
    }
}
