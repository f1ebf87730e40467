//! Secret handling: a [`Secret`] newtype that never prints, and the one
//! redaction table used for everything the worker records: logs, errors and
//! every audit field (argv, stdout and stderr tails, dead-letter bodies).
//!
//! - [`redact`] / [`redact_cow`] mask likely secrets in free text;
//! - [`redact_argv`] masks the values of secret-bearing options in an argv;
//! - [`redact_json`] masks secret-named fields of a JSON value in place;
//! - [`is_secret_name`] says whether a variable, field or option name names a secret.
//!
//! All four share one table of names (`names::classify`): a name is split
//! into words (`AZURE_CLIENT_SECRET`, `clientSecret`, `--client-secret` are all
//! `client secret`) and it is secret when it holds a secret word (`secret`,
//! `password`, `token`, `credential`, `private key`, `access key`, `account
//! key`, `connection string`, `authorization`, `signature`…) unless its last
//! word says it is only about the secret (`SecretId`, `SharedAccessKeyName`,
//! `MinimumPasswordLength`, `PasswordLastUsed`…) or it is a pagination,
//! idempotency or IMDS token (`NextToken`, `ClientToken`, `HttpTokens`).
//! Names ending in `_KEY` / `Key` (`SB_QUEUE_KEY`, `primaryKey`) are secret
//! unless their value looks like an identifier (an ARN, `alias/…`, a UUID, a
//! path). Besides named values the text scanner masks PEM private keys, URL
//! userinfo passwords, JWTs, bearer tokens, the secret part of access key ids,
//! and long base64 blobs (`aws ecr get-login-password`).
//!
//! The scanner is hand-written, one pass over the bytes plus `memchr`
//! searches for the rarer markers: this crate's `regex` is built without its
//! `perf` features (a PikeVM only), where a single pattern took ~70 ms on
//! 800 KB of query output; this scanner takes ~7 ms per megabyte. Text without anything to mask is returned
//! borrowed by [`redact_cow`].
//!
//! Inside: `names` (the table), `scan` (the byte scanner for named values),
//! `shapes` (PEM keys, URL userinfo, base64 blobs, validation errors), `argv`
//! and `json`; this file holds the public API and the pass that runs them.

mod argv;
mod json;
mod names;
mod scan;
mod shapes;
#[cfg(test)]
mod tests;

use names::{Class, classify};
use scan::Scanner;
use shapes::{scan_blobs, scan_pem, scan_urls, scan_validation_errors};
use std::borrow::Cow;
use std::fmt;

pub use argv::redact_argv;
pub use json::redact_json;

/// What a masked value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// A secret string (API token, access key secret, SAS key). `Debug` and
/// `Display` print `[REDACTED]`; it is deliberately not `Serialize`. Use
/// [`expose`](Self::expose) at the single place the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Whether a variable, JSON field or option name (`PRISMA_SECRET_KEY`,
/// `clientSecret`, `--master-user-password`, `SB_QUEUE_KEY`) names a secret,
/// by the same table [`redact`] uses. Names ending in `_KEY` count (their
/// value might be an identifier; this errs on the safe side); names about a
/// secret (`SecretId`, `KeyName`, `MinimumPasswordLength`, `NextToken`) do not.
pub fn is_secret_name(name: &str) -> bool {
    classify(name.trim_start_matches('-')) != Class::Plain
}

/// Replaces anything that looks like a secret in `text` with `[REDACTED]`
/// (see the [module docs](self) and [`redact_cow`] for what is masked).
/// Ordinary text is returned unchanged. Redacting twice gives the same text
/// as redacting once.
///
/// It is a safety net for free text, not a guarantee: secrets in unknown
/// formats pass through, so secrets should not be printed in the first place.
pub fn redact(text: &str) -> String {
    redact_cow(text).into_owned()
}

/// [`redact`] without a copy when there is nothing to mask. Masks:
///
/// - values of secret-named variables and fields ([`is_secret_name`]) in
///   every usual form: `NAME=value` and `export NAME="value"` (environment
///   dumps, to the end of the line), `name = value` (INI), `"name": "value"`
///   (JSON, also JSON escaped inside a JSON string), `'name': b'value'`
///   (Python repr), `name: value` (YAML, headers), `<Name>value</Name>`
///   (XML), `--option value` / `--option=value`, ARM `"adminPassword":
///   {"value": "x"}`, and a value named by its sibling (`Key=Password,Value=x`,
///   `{"name": "DB_PASSWORD", "value": "x"}`, `keyName`/`value` pairs of
///   `az storage account keys list`);
/// - Azure connection strings (`SharedAccessKey=`, `AccountKey=`,
///   `SharedAccessSignature=`), SAS `sig=`, presigned `X-Amz-Signature=`;
/// - `Authorization` values (the scheme is kept), bearer tokens, JWTs,
///   `x-redlock-auth`, the secret part of `AKIA`/`ASIA` access key ids;
/// - PEM private keys, whole, raw or with `\n` escapes, also cut short;
/// - the password of URL userinfo (`https://user:[REDACTED]@host`);
/// - base64 blobs of 200 characters or more (`aws ecr get-login-password`)
///   and 88-character `==`-padded ones (Azure account keys);
/// - `docker login -p VALUE`, `--value` of an SSM `SecureString`, and AWS
///   validation errors quoting a value: `Value 'x' at 'masterUserPassword'`.
pub fn redact_cow(text: &str) -> Cow<'_, str> {
    let Cow::Owned(mut current) = redact_once(text) else {
        return Cow::Borrowed(text);
    };
    // A mask can split a token the first pass read as one
    // (`…KEY-----Bearer x` → `[REDACTED]Bearer x`): run again until nothing
    // changes, so that redacting twice is redacting once. Every pass only
    // turns text into `[REDACTED]`, so this ends after a pass or two.
    for _ in 0..4 {
        match redact_once(&current) {
            Cow::Owned(next) => current = next,
            Cow::Borrowed(_) => break,
        }
    }
    Cow::Owned(current)
}

/// One pass of every scanner over `text`.
fn redact_once(text: &str) -> Cow<'_, str> {
    let mut ranges = Vec::new();
    Scanner::new(text, &mut ranges).run();
    scan_pem(text.as_bytes(), &mut ranges);
    scan_urls(text.as_bytes(), &mut ranges);
    scan_blobs(text.as_bytes(), &mut ranges);
    scan_validation_errors(text.as_bytes(), &mut ranges);
    apply(text, ranges)
}

/// Replaces each of `ranges` (merged where they overlap or touch) with
/// [`REDACTED`].
fn apply(text: &str, mut ranges: Vec<(usize, usize)>) -> Cow<'_, str> {
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    // Every range starts and ends next to an ASCII byte, so on a character
    // boundary; widen defensively rather than slice inside a character.
    for (start, end) in &mut ranges {
        *end = (*end).min(text.len());
        while *start > 0 && !text.is_char_boundary(*start) {
            *start -= 1;
        }
        while *end < text.len() && !text.is_char_boundary(*end) {
            *end += 1;
        }
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut done = 0;
    let mut current: Option<(usize, usize)> = None;
    for (start, end) in ranges {
        match current {
            Some((s, e)) if start <= e => current = Some((s, e.max(end))),
            _ => {
                if let Some((s, e)) = current {
                    out.push_str(text.get(done..s).unwrap_or_default());
                    out.push_str(REDACTED);
                    done = e;
                }
                current = Some((start, end));
            }
        }
    }
    if let Some((s, e)) = current {
        out.push_str(text.get(done..s).unwrap_or_default());
        out.push_str(REDACTED);
        done = e;
    }
    out.push_str(text.get(done..).unwrap_or_default());
    Cow::Owned(out)
}
