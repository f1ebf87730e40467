//! Secret handling: a [`Secret`] newtype that never prints, and the one
//! redaction table used for everything the worker records: logs, errors and
//! every audit field (argv, stdout and stderr tails, dead-letter bodies).
//!
//! - [`redact`] / [`redact_cow`] mask likely secrets in free text;
//! - [`redact_argv`] masks the values of secret-bearing options in an argv;
//! - [`redact_json`] masks secret-named fields of a JSON value in place;
//! - [`is_secret_name`] says whether a variable, field or option name names a secret.
//!
//! All four share one table of names (`classify` below): a name is split
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

use memchr::memmem;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

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

// ---------------------------------------------------------------------------
// The table: which names hold secrets.
// ---------------------------------------------------------------------------

/// Substrings (of the lower-cased name without separators) that make a name
/// secret: `PRISMA_SECRET_KEY`, `clientSecret`, `SharedAccessKey`,
/// `AccountKey`, `primaryConnectionString`, `authorizationToken`...
const SECRET_WORDS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "credential",
    "privatekey",
    "accesskey",
    "accountkey",
    "saskey",
    "apikey",
    "authkey",
    "masterkey",
    "signingkey",
    "keymaterial",
    "connectionstring",
    "authorization",
    "redlockauth",
    "signature",
];

/// Whole names that are secret on their own (`Pwd=` in an ODBC string, SAS
/// `sig=`, the `auth` of a docker `config.json`).
const SECRET_NAMES: &[&str] = &["pwd", "pass", "sig", "auth"];

/// Parts of a name removed before looking for [`SECRET_WORDS`]: a service
/// called "secrets manager" and a public key are not secrets.
const NOT_SECRET_PARTS: &[&str] = &["secretsmanager", "secretmanager", "publickey"];

/// A last word that makes a secret-sounding name about the secret, not the
/// secret itself: `SecretId`, `SharedAccessKeyName`, `MinimumPasswordLength`,
/// `PasswordLastUsed`, `--password-reset-required`, `AuthorizationType`,
/// `AWS_WEB_IDENTITY_TOKEN_FILE`, `--password-stdin`...
const METADATA_WORDS: &[&str] = &[
    "id",
    "ids",
    "arn",
    "arns",
    "name",
    "names",
    "length",
    "age",
    "prevention",
    "policy",
    "policies",
    "required",
    "reset",
    "used",
    "enabled",
    "disabled",
    "expiry",
    "expiration",
    "expires",
    "expired",
    "at",
    "in",
    "rotation",
    "rotated",
    "type",
    "types",
    "spec",
    "usage",
    "state",
    "status",
    "count",
    "version",
    "versions",
    "stage",
    "stages",
    "date",
    "time",
    "timestamp",
    "created",
    "updated",
    "changed",
    "present",
    "exists",
    "ttl",
    "duration",
    "format",
    "region",
    "location",
    "tag",
    "tags",
    "label",
    "labels",
    "description",
    "file",
    "path",
    "dir",
    "directory",
    "stdin",
    "source",
    "provider",
    "uri",
    "url",
    "endpoint",
    "issuer",
    "kind",
    "mode",
    "level",
    "prompt",
    "rule",
    "rules",
    "configuration",
    "config",
    "metadata",
    "selector",
    "prefix",
    "suffix",
    "size",
    "scope",
    "scopes",
    "audience",
    "lifetime",
    "period",
    "days",
    "seconds",
    "minutes",
    "hours",
    "algorithm",
    "report",
    "reference",
    "ref",
    "hint",
    "strength",
    "complexity",
];

/// Concatenated last words ending like a metadata word (`accesskeyid`).
const METADATA_SUFFIXES: &[&str] = &["id", "ids", "arn", "arns", "name", "names"];

/// Words before `token` that make it bookkeeping, not a credential:
/// `NextToken`, `--starting-token`, `ClientToken`, `ClientRequestToken`,
/// and IMDS `--http-tokens required`.
const NOT_SECRET_TOKENS: &[&str] = &[
    "next",
    "starting",
    "start",
    "page",
    "pagination",
    "continuation",
    "client",
    "idempotency",
    "request",
    "resume",
    "marker",
    "sync",
    "cancel",
    "http",
    "max",
    "min",
];

/// Words before a final `key` that make it an identifier, not key material:
/// `S3Key`, `ObjectKey`, `PartitionKey`, `--kms-key`, `ssh_key`, `TagKey`...
const NOT_SECRET_KEYS: &[&str] = &[
    "s3",
    "object",
    "partition",
    "sort",
    "hash",
    "range",
    "kms",
    "cmk",
    "public",
    "ssh",
    "host",
    "tag",
    "tags",
    "foreign",
    "idempotency",
    "cache",
    "dedup",
    "deduplication",
    "routing",
    "row",
    "group",
    "lookup",
    "pgp",
    "gpg",
    "dns",
    "dnssec",
    "shard",
    "sharding",
    "index",
    "column",
    "attribute",
    "map",
    "unique",
    "composite",
    "message",
    "registry",
    "file",
];

/// Lower-case substrings one of which every name [`classify`] does not call
/// plain contains: the cheap pre-check before a name is split into words.
const NAME_TRIGGERS: &[&[u8]] = &[
    b"secret",
    b"pass",
    b"pwd",
    b"token",
    b"credential",
    b"key",
    b"auth",
    b"sig",
    b"connection",
];

/// Names whose value names another field's secret: `{"Key": "Password",
/// "Value": "x"}`, `ParameterKey=DBPassword,ParameterValue=x`,
/// `{"name": "DB_PASSWORD", "value": "x"}`, `{"keyName": "key1", "value": "x"}`,
/// `--name /prod/db/password --value x`.
const SIBLING_KEYS: &[&str] = &[
    "key",
    "name",
    "keyname",
    "parameterkey",
    "parametername",
    "attributename",
];

/// The fields that hold the value named by a [`SIBLING_KEYS`] field.
const SIBLING_VALUES: &[&str] = &["value", "parametervalue", "attributevalue"];

/// Authorization schemes kept in front of the masked credential.
const AUTH_SCHEMES: &[&str] = &[
    "bearer",
    "basic",
    "token",
    "digest",
    "negotiate",
    "ntlm",
    "aws4-hmac-sha256",
    "sharedaccesssignature",
    "sharedkey",
    "sharedkeylite",
];

/// Programs whose `login -p VALUE` takes a password.
const DOCKER_LIKE: &[&str] = &[
    "docker", "podman", "nerdctl", "helm", "oras", "buildah", "skopeo",
];

/// What a name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The value is a secret.
    Secret,
    /// Ends in `_KEY` / `Key`: a secret unless the value is an identifier.
    KeyLike,
    /// Nothing secret.
    Plain,
}

/// A name split into lower-case words: `SSEKMSKeyId` → `ssekms key id`,
/// `AWS_SECRET_ACCESS_KEY` → `aws secret access key`, `S3Key` → `s3 key`.
fn words(name: &str) -> Vec<String> {
    let b = name.as_bytes();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in b.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = i
                .checked_sub(1)
                .and_then(|j| b.get(j))
                .copied()
                .unwrap_or(b' ');
            let next_lower = b.get(i + 1).is_some_and(u8::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(char::from(c.to_ascii_lowercase()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether `hay` contains `needle` (lower-case), ignoring ASCII case.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    // Names are short: a plain window scan beats setting up a vector search.
    if hay.len() < 64 {
        return !needle.is_empty()
            && hay
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle));
    }
    find_ci(hay, needle, 0).is_some()
}

/// The first position at or after `from` where `needle` (lower-case) occurs
/// in `hay`, ignoring ASCII case.
fn find_ci(hay: &[u8], needle: &[u8], mut from: usize) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    while let Some(off) = memchr::memchr2(first, first.to_ascii_uppercase(), hay.get(from..)?) {
        let at = from + off;
        if hay
            .get(at + 1..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(rest))
        {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Whether `name` equals `target` (lower-case, no separators) once case and
/// `-`/`_`/`.` are ignored. Allocation-free.
fn norm_eq(name: &[u8], target: &str) -> bool {
    let mut t = target.bytes();
    for &c in name {
        if matches!(c, b'-' | b'_' | b'.') {
            continue;
        }
        if t.next() != Some(c.to_ascii_lowercase()) {
            return false;
        }
    }
    t.next().is_none()
}

/// Whether `name` is one of `targets` (see [`norm_eq`]).
fn norm_in(name: &[u8], targets: &[&str]) -> bool {
    targets.iter().any(|t| norm_eq(name, t))
}

/// The table itself: what `name` says about its value.
fn classify(name: &str) -> Class {
    if !NAME_TRIGGERS
        .iter()
        .any(|t| contains_ci(name.as_bytes(), t))
    {
        return Class::Plain;
    }
    // `Key`, `ParameterKey`, `keyName` name a field; their value is a name.
    if norm_in(name.as_bytes(), SIBLING_KEYS) {
        return Class::Plain;
    }
    let words = words(name);
    let Some(last) = words.last() else {
        return Class::Plain;
    };
    let joined = words.concat();
    if SECRET_NAMES.contains(&joined.as_str()) {
        return Class::Secret;
    }
    let mut hay = joined;
    for part in NOT_SECRET_PARTS {
        if hay.contains(part) {
            hay = hay.replace(part, "_");
        }
    }
    let found: Vec<&str> = SECRET_WORDS
        .iter()
        .copied()
        .filter(|w| hay.contains(w))
        .collect();
    if !found.is_empty() {
        let metadata = METADATA_WORDS.contains(&last.as_str())
            || METADATA_SUFFIXES
                .iter()
                .any(|s| last.len() > s.len() + 2 && last.ends_with(s));
        if metadata || (found.iter().all(|w| *w == "token") && bookkeeping_token(&words)) {
            return Class::Plain;
        }
        return Class::Secret;
    }
    let before_last = words.len().checked_sub(2).and_then(|i| words.get(i));
    match before_last {
        Some(prev)
            if matches!(last.as_str(), "key" | "keys")
                && !NOT_SECRET_KEYS.contains(&prev.as_str()) =>
        {
            Class::KeyLike
        }
        _ => Class::Plain,
    }
}

/// Whether the last `token` word of `words` is a pagination, idempotency or
/// IMDS token ([`NOT_SECRET_TOKENS`]).
fn bookkeeping_token(words: &[String]) -> bool {
    let Some(k) = words.iter().rposition(|w| w.contains("token")) else {
        return false;
    };
    let Some(word) = words.get(k) else {
        return false;
    };
    if word == "token" || word == "tokens" {
        return k
            .checked_sub(1)
            .and_then(|j| words.get(j))
            .is_some_and(|prev| NOT_SECRET_TOKENS.contains(&prev.as_str()));
    }
    let stem = word
        .strip_suffix("tokens")
        .or_else(|| word.strip_suffix("token"));
    stem.is_some_and(|s| NOT_SECRET_TOKENS.contains(&s))
}

/// Whether a variable, JSON field or option name (`PRISMA_SECRET_KEY`,
/// `clientSecret`, `--master-user-password`, `SB_QUEUE_KEY`) names a secret,
/// by the same table [`redact`] uses. Names ending in `_KEY` count (their
/// value might be an identifier; this errs on the safe side); names about a
/// secret (`SecretId`, `KeyName`, `MinimumPasswordLength`, `NextToken`) do not.
pub fn is_secret_name(name: &str) -> bool {
    classify(name.trim_start_matches('-')) != Class::Plain
}

/// A value that is never a secret: empty, `null`/`true`/`false`, already
/// masked, or a resource identifier (`arn:…`, `projects/…`,
/// `/subscriptions/…`, an attached `file://` name).
fn inert(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || ["null", "none", "nil", "true", "false", "undefined", "~"]
            .iter()
            .any(|w| v.eq_ignore_ascii_case(w))
        || v.starts_with(REDACTED)
        || [
            "arn:",
            "projects/",
            "/subscriptions/",
            "file://",
            "fileb://",
        ]
        .iter()
        .any(|p| v.starts_with(p))
}

/// Whether the value of a `…_KEY` name is an identifier rather than key
/// material: `alias/x`, a UUID, a URL, a path or file name, an ssh public key.
fn looks_like_identifier(value: &str) -> bool {
    let v = value.trim();
    let uuid = v.len() == 36
        && v.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    uuid || [
        "alias/", "mrk-", "ssh-", "ecdsa-", "http://", "https://", "/", "~",
    ]
    .iter()
    .any(|p| v.starts_with(p))
        || v.contains(['.', ':', ' '])
}

/// Whether `value` is padded base64 of at least 40 characters with mixed
/// case and digits: an Azure storage or Service Bus key.
fn looks_like_account_key(value: &str) -> bool {
    let body = value.trim_end_matches('=');
    value.len() >= 40
        && body.len() + 2 >= value.len()
        && body.len() < value.len()
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        && body.bytes().any(|c| c.is_ascii_digit())
        && body.bytes().any(|c| c.is_ascii_uppercase())
        && body.bytes().any(|c| c.is_ascii_lowercase())
}

/// Whether a field `name` of class `class` holding `value` is masked.
fn masks(name: &str, class: Class, value: &str) -> bool {
    if inert(value) {
        return false;
    }
    match class {
        // `PWD=/home/x` in an environment dump is the working directory.
        Class::Secret => !(name.eq_ignore_ascii_case("pwd") && value.starts_with('/')),
        Class::KeyLike => !looks_like_identifier(value),
        Class::Plain => norm_eq(name.as_bytes(), "value") && looks_like_account_key(value),
    }
}

/// Whether the value of a [`SIBLING_KEYS`] field names a secret, so that the
/// next [`SIBLING_VALUES`] field is masked: `Password`, `DB_PASSWORD`,
/// `/prod/db/password`, and `key1`/`primary` after `keyName`.
fn sibling_names_secret(key: &[u8], value: &str) -> bool {
    let last = value.rsplit(['/', ':']).next().unwrap_or(value);
    if last.is_empty() || inert(value) {
        return false;
    }
    if classify(last) != Class::Plain {
        return true;
    }
    norm_eq(key, "keyname")
        && (last.eq_ignore_ascii_case("primary")
            || last.eq_ignore_ascii_case("secondary")
            || (last.get(..3).is_some_and(|k| k.eq_ignore_ascii_case("key"))
                && last.bytes().skip(3).all(|c| c.is_ascii_digit())))
}

// ---------------------------------------------------------------------------
// Free text.
// ---------------------------------------------------------------------------

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

/// A byte that can be part of a variable, field or option name (and of a
/// JWT or access key id).
fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The first position at or after `i` that is not a space or tab.
fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// The first position at or after `i` that is not whitespace.
fn skip_space(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// How a value follows its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `name=value`, `name = value`, `name => value`.
    Eq,
    /// `name: value` (a blank or a quote after the colon: ARNs stay whole).
    Colon,
    /// `--option value`.
    Space,
    /// `"--option", "value"` (an argv printed with `{:?}`).
    List,
    /// `<Name>value</Name>`.
    Xml,
}

/// Where a bare (unquoted) value ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bare {
    /// At whitespace or punctuation.
    Word,
    /// At the end of the line or a structural delimiter (`name: value`).
    Line,
    /// At the end of the line (an environment dump).
    EnvLine,
    /// At the next `<`.
    Xml,
}

/// A parsed value: the masked content `start..end`, and where scanning
/// resumes (after a closing quote).
#[derive(Debug, Clone, Copy)]
struct Val {
    start: usize,
    end: usize,
    next: usize,
    quoted: bool,
}

/// The one-pass scanner for named values, JWTs, access key ids and bearer
/// tokens.
struct Scanner<'t, 'r> {
    text: &'t str,
    b: &'t [u8],
    ranges: &'r mut Vec<(usize, usize)>,
    /// Where the value of a [`SIBLING_KEYS`] field naming a secret ended.
    sibling: Option<usize>,
    docker_login: Option<bool>,
    secure_string: Option<bool>,
}

impl<'t, 'r> Scanner<'t, 'r> {
    fn new(text: &'t str, ranges: &'r mut Vec<(usize, usize)>) -> Self {
        Scanner {
            text,
            b: text.as_bytes(),
            ranges,
            sibling: None,
            docker_login: None,
            secure_string: None,
        }
    }

    /// Whether the text is a `docker login` (or the like) command.
    fn docker_login(&mut self) -> bool {
        let b = self.b;
        *self.docker_login.get_or_insert_with(|| {
            contains_ci(b, b"login") && DOCKER_LIKE.iter().any(|p| contains_ci(b, p.as_bytes()))
        })
    }

    /// Whether the text mentions an SSM `SecureString` (its `--value` is secret).
    fn secure_string(&mut self) -> bool {
        let b = self.b;
        *self
            .secure_string
            .get_or_insert_with(|| memmem::find(b, b"SecureString").is_some())
    }

    fn run(&mut self) {
        let n = self.b.len();
        let mut i = 0;
        while i < n {
            if !self.b.get(i).copied().is_some_and(is_name_byte) {
                i += 1;
                continue;
            }
            let start = i;
            while self.b.get(i).copied().is_some_and(is_name_byte) {
                i += 1;
            }
            if let Some(next) = self.token(start, i) {
                i = next.max(i);
            }
        }
    }

    fn push(&mut self, start: usize, end: usize) {
        if start < end {
            self.ranges.push((start, end));
        }
    }

    /// Handles the name-like token `start..end`; returns where to resume when
    /// it consumed a masked value.
    fn token(&mut self, start: usize, end: usize) -> Option<usize> {
        let b = self.b;
        let mut s = start;
        // A name right after a `\n` escape: an env dump inside a JSON string.
        if s > 0
            && b.get(s - 1) == Some(&b'\\')
            && matches!(b.get(s), Some(b'n' | b'r' | b't'))
            && end > s + 1
        {
            s += 1;
        }
        self.jwts(s, end);
        self.access_key_id(s, end);
        let tok = b.get(s..end)?;
        let dashes = tok.iter().take_while(|&&c| c == b'-').count();
        let after_blank = s == 0
            || matches!(
                b.get(s - 1),
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'(' | b'[' | b'\0')
            );
        let docker_p = dashes == 1 && tok == b"-p" && after_blank && self.docker_login();
        let option = after_blank && (dashes == 2 || docker_p);
        let name_start = s + dashes;
        let name_b = b.get(name_start..end)?;
        if !name_b.first().is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name = self.text.get(name_start..end)?;
        if name.eq_ignore_ascii_case("bearer") {
            return self.bearer(end);
        }
        // Most tokens are not followed by a separator: check that first.
        let (sep, q) = self.separator(s, end, option)?;
        let sibling_key = norm_in(name_b, SIBLING_KEYS);
        let sibling_value = norm_in(name_b, SIBLING_VALUES);
        // A value field answers the name field before it, or none; a new
        // name field replaces the last.
        let named_by_sibling = sibling_value && self.sibling_applies(start);
        if sibling_key {
            self.sibling = None;
        }
        let class = classify(name);
        if class == Class::Plain && !sibling_key && !sibling_value && !docker_p {
            return None;
        }
        if class == Class::Secret && b.get(q) == Some(&b'{') {
            return self.arm_value(q);
        }
        let env_name = name_b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
        let bare = match sep {
            Sep::Eq if env_name && self.at_line_start(s) => Bare::EnvLine,
            Sep::Colon => Bare::Line,
            Sep::Xml => Bare::Xml,
            _ => Bare::Word,
        };
        let mut v = self.value(q, sep, bare)?;
        let header = name_b.len() >= 13
            && name_b
                .get(name_b.len() - 13..)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"authorization"));
        if !v.quoted && (header || norm_eq(name_b, "sharedaccesssignature")) {
            let first_word_end = (v.start..v.end)
                .find(|&i| b.get(i).is_some_and(u8::is_ascii_whitespace))
                .unwrap_or(v.end);
            let scheme = self.text.get(v.start..first_word_end).unwrap_or_default();
            if AUTH_SCHEMES.iter().any(|w| scheme.eq_ignore_ascii_case(w)) {
                let q2 = skip_blanks(b, first_word_end);
                v = self.value(q2, Sep::Space, bare)?;
            }
        }
        let value = self.text.get(v.start..v.end)?;
        let sibling_hit = named_by_sibling && !inert(value);
        let secret = masks(name, class, value)
            || sibling_hit
            || (docker_p && !inert(value))
            || (option && norm_eq(name_b, "value") && !inert(value) && self.secure_string());
        if sibling_key && !secret && sibling_names_secret(name_b, value) {
            self.sibling = Some(v.next);
        }
        if secret {
            self.push(v.start, v.end);
            return Some(v.next);
        }
        None
    }

    /// Whether a [`SIBLING_KEYS`] field naming a secret ended shortly before
    /// `at`, in the same object (no brace between). Consumes it.
    fn sibling_applies(&mut self, at: usize) -> bool {
        let Some(end) = self.sibling.take() else {
            return false;
        };
        at >= end
            && at - end <= 300
            && self
                .b
                .get(end..at)
                .is_some_and(|gap| !gap.iter().any(|c| matches!(c, b'{' | b'}')))
    }

    /// Whether the token at `s` starts a line (or follows `export `,
    /// `declare -x ` or `set `): an environment dump line.
    fn at_line_start(&self, s: usize) -> bool {
        let b = self.b;
        let mut ls = s;
        let mut at_start = false;
        while s - ls <= 12 {
            if ls == 0 {
                at_start = true;
                break;
            }
            match b.get(ls - 1) {
                Some(b'\n' | b'\r' | b'\0') => {
                    at_start = true;
                    break;
                }
                // A `\n` escape: `ls - 1` is the `n` after a backslash.
                Some(b'n' | b'r') if ls >= 2 && b.get(ls - 2) == Some(&b'\\') => {
                    at_start = true;
                    break;
                }
                _ => ls -= 1,
            }
        }
        let prefix = b.get(ls..s).unwrap_or_default();
        at_start && matches!(prefix, b"" | b"export " | b"declare -x " | b"set ")
    }

    /// The separator after the name `s..end`, and where the value starts.
    fn separator(&self, s: usize, end: usize, option: bool) -> Option<(Sep, usize)> {
        let b = self.b;
        let mut p = end;
        let mut closed = false;
        match (b.get(p), b.get(p + 1)) {
            (Some(b'\\'), Some(b'"' | b'\'')) => {
                p += 2;
                closed = true;
            }
            (Some(b'"' | b'\''), _) => {
                p += 1;
                closed = true;
            }
            (Some(b'>'), _) if s > 0 && b.get(s - 1) == Some(&b'<') => {
                return Some((Sep::Xml, p + 1));
            }
            _ => {}
        }
        let q = skip_blanks(b, p);
        match b.get(q) {
            Some(b'=') if b.get(q + 1) != Some(&b'=') => {
                let after = if b.get(q + 1) == Some(&b'>') {
                    q + 2
                } else {
                    q + 1
                };
                Some((Sep::Eq, skip_blanks(b, after)))
            }
            Some(b':') if b.get(q + 1) != Some(&b':') => {
                let v = skip_blanks(b, q + 1);
                let quote = matches!(b.get(v), Some(b'"' | b'\''))
                    || (b.get(v) == Some(&b'\\') && matches!(b.get(v + 1), Some(b'"' | b'\'')));
                (v > q + 1 || quote).then_some((Sep::Colon, v))
            }
            Some(b',') if option && closed => {
                let v = skip_blanks(b, q + 1);
                matches!(b.get(v), Some(b'"' | b'\'')).then_some((Sep::List, v))
            }
            Some(_) if option && !closed && q > p => Some((Sep::Space, q)),
            _ => None,
        }
    }

    /// The value starting at `q`.
    fn value(&self, q: usize, sep: Sep, bare: Bare) -> Option<Val> {
        let b = self.b;
        if b.get(q..)
            .is_some_and(|r| r.starts_with(REDACTED.as_bytes()))
        {
            return None;
        }
        let first = *b.get(q)?;
        let v = match (first, b.get(q + 1).copied()) {
            (b'"' | b'\'', _) if sep != Sep::Xml => self.quoted(q + 1, first, false),
            (b'\\', Some(quote @ (b'"' | b'\''))) if sep != Sep::Xml => {
                self.quoted(q + 2, quote, true)
            }
            (b'b', Some(quote @ (b'"' | b'\''))) if sep != Sep::Xml => {
                self.quoted(q + 2, quote, false)
            }
            (b'{' | b'[' | b'(', _) if sep != Sep::Xml => return None,
            _ if sep == Sep::List => return None,
            (b'-', Some(c)) if sep == Sep::Space && (c == b'-' || c.is_ascii_alphabetic()) => {
                return None;
            }
            _ => self.bare(q, bare),
        };
        (v.start < v.end).then_some(v)
    }

    /// A quoted value whose content starts at `start`; `escaped`: the quotes
    /// are themselves escaped (`\"x\"`, JSON inside a JSON string). An
    /// unterminated quote runs to the end of the line.
    fn quoted(&self, start: usize, quote: u8, escaped: bool) -> Val {
        let b = self.b;
        let mut j = start;
        while let Some(&c) = b.get(j) {
            match c {
                b'\\' if escaped && b.get(j + 1) == Some(&quote) => {
                    return Val {
                        start,
                        end: j,
                        next: j + 2,
                        quoted: true,
                    };
                }
                b'\\' => j += 2,
                b'\n' | b'\r' => break,
                c if c == quote && !escaped => {
                    return Val {
                        start,
                        end: j,
                        next: j + 1,
                        quoted: true,
                    };
                }
                _ => j += 1,
            }
        }
        let end = j.min(b.len());
        Val {
            start,
            end,
            next: end,
            quoted: true,
        }
    }

    /// An unquoted value starting at `start`.
    fn bare(&self, start: usize, mode: Bare) -> Val {
        let b = self.b;
        let mut j = start;
        while let Some(&c) = b.get(j) {
            let stop = match c {
                b'\n' | b'\r' | b'\0' => true,
                b'\\' => matches!(b.get(j + 1), Some(b'n' | b'r' | b't' | b'"' | b'\'')),
                b'<' => true,
                b'"' => mode != Bare::Xml,
                b' ' | b'\t' => mode == Bare::Word,
                b'\'' | b',' | b';' | b'&' | b'>' | b'}' | b']' | b')' | b'`' => {
                    matches!(mode, Bare::Word | Bare::Line)
                }
                _ => false,
            };
            if stop {
                break;
            }
            j += 1;
        }
        let mut end = j;
        while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t')) {
            end -= 1;
        }
        Val {
            start,
            end,
            next: j,
            quoted: false,
        }
    }

    /// `"adminPassword": {"value": "x"}` (an ARM parameter): masks `x`.
    fn arm_value(&mut self, brace: usize) -> Option<usize> {
        let b = self.b;
        let p = skip_space(b, brace + 1);
        if !b
            .get(p..p + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"\"value\""))
        {
            return None;
        }
        let p = skip_space(b, p + 7);
        if b.get(p) != Some(&b':') {
            return None;
        }
        let p = skip_space(b, p + 1);
        if b.get(p) != Some(&b'"') {
            return None;
        }
        let v = self.quoted(p + 1, b'"', false);
        if inert(self.text.get(v.start..v.end)?) {
            return None;
        }
        self.push(v.start, v.end);
        Some(v.next)
    }

    /// `Bearer <token68>` anywhere: masks the token.
    fn bearer(&mut self, end: usize) -> Option<usize> {
        let b = self.b;
        let p = skip_blanks(b, end);
        if p == end {
            return None;
        }
        let mut j = p;
        while b
            .get(j)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || b"._~+/=-".contains(&c))
        {
            j += 1;
        }
        if j - p < 8 {
            return None;
        }
        self.push(p, j);
        Some(j)
    }

    /// JWTs (`eyJ….eyJ….sig`) inside the token `s..end`.
    fn jwts(&mut self, s: usize, end: usize) {
        let Some(tok) = self.b.get(s..end) else {
            return;
        };
        let mut from = 0;
        while let Some(off) = tok.get(from..).and_then(|t| memmem::find(t, b"eyJ")) {
            let p = from + off;
            let dot = |i: usize| {
                tok.get(i..)
                    .and_then(|t| memchr::memchr(b'.', t))
                    .map(|d| i + d)
            };
            let Some(d1) = dot(p) else { return };
            if !tok.get(d1 + 1..).is_some_and(|t| t.starts_with(b"eyJ")) {
                from = p + 3;
                continue;
            }
            let Some(d2) = dot(d1 + 1) else { return };
            let e3 = dot(d2 + 1).unwrap_or(tok.len());
            self.push(s + p, s + e3);
            from = e3;
        }
    }

    /// `AKIA…`/`ASIA…` access key ids: the prefix (long-term or temporary)
    /// is kept, the 16 characters after it masked.
    fn access_key_id(&mut self, s: usize, end: usize) {
        let Some(tok) = self.b.get(s..end) else {
            return;
        };
        let shaped = (tok.starts_with(b"AKIA") || tok.starts_with(b"ASIA"))
            && tok.get(4..20).is_some_and(|k| {
                k.iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            })
            && !tok
                .get(20)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if shaped {
            self.push(s + 4, s + 20);
        }
    }
}

/// PEM private keys (`-----BEGIN … PRIVATE KEY-----` to `-----END …-----`),
/// whole; without an END (a cut tail) to the closing quote or the end of the
/// text; an END without its BEGIN (a tail cut at the front) back over the
/// base64 lines.
fn scan_pem(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if memmem::find(b, b"PRIVATE KEY").is_none() {
        return;
    }
    // The end of the `-----` that closes the marker starting at `at`, if the
    // marker says PRIVATE KEY.
    let marker_end = |at: usize, skip: usize| -> Option<usize> {
        let from = at + skip;
        let tail = b.get(from..)?;
        let close = tail.get(..100).unwrap_or(tail);
        let off = memmem::find(close, b"-----")?;
        memmem::find(close.get(..off)?, b"PRIVATE KEY")?;
        Some(from + off + 5)
    };
    let mut covered = 0;
    for begin in memmem::find_iter(b, b"-----BEGIN") {
        if begin < covered {
            continue;
        }
        let Some(body) = marker_end(begin, 10) else {
            continue;
        };
        let end = match b.get(body..).and_then(|t| memmem::find(t, b"-----END")) {
            Some(off) => {
                let e = body + off;
                marker_end(e, 8)
                    .or_else(|| {
                        b.get(e + 8..)
                            .and_then(|t| memmem::find(t, b"-----"))
                            .map(|o| e + 8 + o + 5)
                    })
                    .unwrap_or(b.len())
            }
            None => b
                .get(body..)
                .and_then(|t| memchr::memchr2(b'"', b'\'', t))
                .map_or(b.len(), |o| body + o),
        };
        ranges.push((begin, end));
        covered = end;
    }
    for e in memmem::find_iter(b, b"-----END") {
        if e < covered {
            continue;
        }
        let Some(end) = marker_end(e, 8) else {
            continue;
        };
        let mut j = e;
        loop {
            match (
                j.checked_sub(2).and_then(|k| b.get(k)),
                j.checked_sub(1).and_then(|k| b.get(k)),
            ) {
                (Some(b'\\'), Some(b'n' | b'r')) => j -= 2,
                (_, Some(&c))
                    if c.is_ascii_alphanumeric()
                        || matches!(c, b'+' | b'/' | b'=' | b'\n' | b'\r') =>
                {
                    j -= 1
                }
                _ => break,
            }
        }
        // Keep the line break in front of the first base64 line.
        loop {
            match (b.get(j), b.get(j + 1)) {
                (Some(b'\n' | b'\r'), _) => j += 1,
                (Some(b'\\'), Some(b'n' | b'r')) => j += 2,
                _ => break,
            }
        }
        ranges.push((j, end));
        covered = end;
    }
}

/// The password of URL userinfo: `https://user:pass@host` →
/// `https://user:[REDACTED]@host`, `redis://:pass@host`; a user part alone
/// when it is a long token (`https://ghp_…@github.com`).
fn scan_urls(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if memchr::memchr(b'@', b).is_none() {
        return;
    }
    for pos in memmem::find_iter(b, b"://") {
        if !pos
            .checked_sub(1)
            .and_then(|k| b.get(k))
            .is_some_and(u8::is_ascii_alphanumeric)
        {
            continue;
        }
        let a = pos + 3;
        let mut j = a;
        let mut at = None;
        while let Some(&c) = b.get(j) {
            if j - a > 1024
                || c.is_ascii_whitespace()
                || matches!(
                    c,
                    b'/' | b'?' | b'#' | b'\\' | b'"' | b'\'' | b'<' | b'>' | b'`'
                )
            {
                break;
            }
            if c == b'@' {
                at = Some(j);
            }
            j += 1;
        }
        let Some(at) = at else { continue };
        let Some(info) = b.get(a..at) else { continue };
        if let Some(colon) = memchr::memchr(b':', info) {
            let p = a + colon + 1;
            if p < at
                && !b
                    .get(p..)
                    .is_some_and(|r| r.starts_with(REDACTED.as_bytes()))
            {
                ranges.push((p, at));
            }
        } else if info.len() >= 20
            && info
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
            && info.iter().any(u8::is_ascii_digit)
        {
            ranges.push((a, at));
        }
    }
}

/// Bare base64 blobs: 200 characters or more (an ECR login password, a
/// session token), or exactly 88 with `==` (an Azure account key in table
/// output); with upper case, lower case and digits.
fn scan_blobs(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    if b.len() < 88 {
        return;
    }
    let is_b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let mut i = 0;
    while i < b.len() {
        if !b.get(i).copied().is_some_and(is_b64) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut upper, mut lower, mut digit) = (false, false, false);
        while let Some(&c) = b.get(i).filter(|c| is_b64(**c)) {
            upper |= c.is_ascii_uppercase();
            lower |= c.is_ascii_lowercase();
            digit |= c.is_ascii_digit();
            i += 1;
        }
        let mut end = i;
        while end - i < 2 && b.get(end) == Some(&b'=') {
            end += 1;
        }
        let len = i - start;
        let mixed = upper && lower && digit;
        let edge = |k: Option<&u8>| k.is_some_and(|c| matches!(c, b'-' | b'_' | b'.'));
        let account_key = len == 86
            && end - i == 2
            && !edge(start.checked_sub(1).and_then(|k| b.get(k)))
            && !edge(b.get(end));
        if mixed && (len >= 200 || account_key) {
            ranges.push((start, end));
        }
        i = end.max(i);
    }
}

/// AWS validation errors quote the value before naming its field:
/// `Value 'hunter22' at 'masterUserPassword' failed to satisfy constraint`.
fn scan_validation_errors(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    for pos in memmem::find_iter(b, b"alue '") {
        if !pos
            .checked_sub(1)
            .and_then(|k| b.get(k))
            .is_some_and(|c| matches!(c, b'v' | b'V'))
        {
            continue;
        }
        let start = pos + 6;
        let Some(rest) = b.get(start..) else { continue };
        let Some(off) = memmem::find(rest, b"' at '") else {
            continue;
        };
        let name_start = start + off + 6;
        let Some(name_len) = b.get(name_start..).and_then(|t| memchr::memchr(b'\'', t)) else {
            continue;
        };
        let field = b
            .get(name_start..name_start + name_len)
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or_default();
        let last = field.rsplit('.').next().unwrap_or(field);
        if classify(last) != Class::Plain && off > 0 {
            ranges.push((start, start + off));
        }
    }
}

// ---------------------------------------------------------------------------
// argv.
// ---------------------------------------------------------------------------

/// The option in `arg`: its name, its inline value, and the length of what
/// to keep in front of a masked inline value (`--name=`, `-p`).
fn split_option(arg: &str, docker_login: bool) -> Option<(&str, Option<&str>, usize)> {
    if let Some(rest) = arg.strip_prefix("--") {
        return Some(match rest.split_once('=') {
            Some((name, value)) => (name, Some(value), name.len() + 3),
            None => (rest, None, arg.len()),
        });
    }
    let rest = arg.strip_prefix("-p").filter(|_| docker_login)?;
    Some(match rest.strip_prefix('=') {
        Some(value) => ("p", Some(value), 3),
        None if rest.is_empty() => ("p", None, 2),
        None => ("p", Some(rest), 2),
    })
}

/// Whether `arg` is an option rather than the value of the option before it.
fn looks_like_option(arg: &str) -> bool {
    let mut bytes = arg.bytes();
    bytes.next() == Some(b'-')
        && bytes
            .next()
            .is_some_and(|c| c == b'-' || c.is_ascii_alphabetic())
}

/// A copy of `argv` fit for logs and audit records: the values of options
/// whose names say they are secrets are masked (`--master-user-password X`,
/// `--secret-string=X`, `--new-password`, `--client-secret`, `--sas-token`,
/// `--account-key`, `--connection-string`, `--private-key`, `--auth-token`,
/// `--credentials`, `--*-key` when the value is not an identifier, docker
/// `login -p`, the `--value` of an SSM `SecureString` or of a `--name` that
/// names a secret), and every other argument goes through [`redact`] (so a
/// `--parameters` JSON holding a `"password"` is masked inside). Identifiers
/// (`--kms-key-id`, `--key-name`, `--secret-id`, ARNs) are kept. What runs is
/// never changed, only what is recorded.
pub fn redact_argv<S: AsRef<str>>(argv: &[S]) -> Vec<String> {
    let args: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let program = args
        .first()
        .map(|p| p.rsplit(['/', '\\']).next().unwrap_or(p))
        .unwrap_or_default();
    let docker_login = DOCKER_LIKE.iter().any(|d| {
        program.eq_ignore_ascii_case(d) || program.eq_ignore_ascii_case(&format!("{d}.exe"))
    }) && args.contains(&"login");
    let secure_string = args.iter().any(|a| {
        a.eq_ignore_ascii_case("SecureString") || a.eq_ignore_ascii_case("--type=SecureString")
    });
    let mut named_secret = false;
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while let Some(&arg) = args.get(i) {
        i += 1;
        let Some((name, inline, keep)) = split_option(arg, docker_login) else {
            out.push(redact(arg));
            continue;
        };
        let value = inline.or_else(|| args.get(i).copied().filter(|next| !looks_like_option(next)));
        let Some(value) = value else {
            out.push(redact(arg));
            continue;
        };
        let name_b = name.as_bytes();
        let sibling_value = norm_in(name_b, SIBLING_VALUES);
        let secret = !inert(value)
            && ((name == "p" && docker_login)
                || masks(name, classify(name), value)
                || (sibling_value
                    && (named_secret || (secure_string && norm_eq(name_b, "value")))));
        if norm_in(name_b, SIBLING_KEYS) {
            named_secret = sibling_names_secret(name_b, value);
        } else if sibling_value {
            named_secret = false;
        }
        match (secret, inline) {
            (true, Some(_)) => out.push(format!("{}{REDACTED}", arg.get(..keep).unwrap_or(arg))),
            (true, None) => {
                out.push(redact(arg));
                out.push(REDACTED.to_owned());
                i += 1;
            }
            (false, _) => out.push(redact(arg)),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// JSON.
// ---------------------------------------------------------------------------

/// Masks `value` in place for a log or audit record (a dead-letter body, an
/// audit field, a CLI's JSON output): every string field whose name is
/// secret by the table of [`is_secret_name`] becomes `"[REDACTED]"` (also
/// numbers under such names, the strings of an array under one, and the
/// `"value"` of an ARM parameter `{"adminPassword": {"value": "x"}}`); a
/// `"Value"`/`"ParameterValue"`/`"value"` named secret by its sibling
/// (`{"Key": "Password", "Value": "x"}`, `{"keyName": "key1", "value": "x"}`)
/// too; every other string, and every object key, goes through [`redact`],
/// which also catches secrets inside strings holding JSON or an env dump.
/// Identifiers (`KeyId`, `SecretId`, ARNs) are kept.
pub fn redact_json(value: &mut Value) {
    match value {
        Value::String(s) => redact_string(s),
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => redact_object(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// [`redact`] in place, without a copy when nothing is masked.
fn redact_string(s: &mut String) {
    let masked = match redact_cow(s) {
        Cow::Owned(masked) => masked,
        Cow::Borrowed(_) => return,
    };
    *s = masked;
}

/// Masks a string unless it is [`inert`].
fn mask_string(s: &mut String) {
    if !inert(s) {
        REDACTED.clone_into(s);
    }
}

fn redact_object(map: &mut Map<String, Value>) {
    let sibling = map.iter().any(|(k, v)| {
        norm_in(k.as_bytes(), SIBLING_KEYS)
            && v.as_str()
                .is_some_and(|s| sibling_names_secret(k.as_bytes(), s))
    });
    for (key, v) in map.iter_mut() {
        let class = classify(key);
        let named_by_sibling = sibling && norm_in(key.as_bytes(), SIBLING_VALUES);
        match v {
            Value::String(s) => {
                if masks(key, class, s) || named_by_sibling {
                    mask_string(s);
                } else {
                    redact_string(s);
                }
            }
            Value::Number(_) if class == Class::Secret || named_by_sibling => {
                *v = Value::String(REDACTED.to_owned());
            }
            Value::Array(items) if class == Class::Secret => {
                for item in items {
                    match item {
                        Value::String(s) => mask_string(s),
                        other => redact_json(other),
                    }
                }
            }
            Value::Object(inner) if class == Class::Secret => {
                for (k, inner_value) in inner.iter_mut() {
                    if let (true, Value::String(s)) =
                        (k.eq_ignore_ascii_case("value"), &mut *inner_value)
                    {
                        mask_string(s);
                    }
                }
                redact_object(inner);
            }
            other => redact_json(other),
        }
    }
    if map.keys().any(|k| matches!(redact_cow(k), Cow::Owned(_))) {
        let old = std::mem::take(map);
        for (k, v) in old {
            map.insert(redact(&k), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// `text` redacted, checked to be a fixed point of [`redact`].
    fn r(text: &str) -> String {
        let once = redact(text);
        assert_eq!(redact(&once), once, "not idempotent for {text:?}");
        once
    }

    fn argv(args: &[&str]) -> Vec<String> {
        let shown = redact_argv(args);
        assert_eq!(redact_argv(&shown), shown, "argv not idempotent");
        shown
    }

    #[test]
    fn argv_secrets_are_masked_for_the_record() {
        let argv: Vec<String> = [
            "aws",
            "rds",
            "modify-db-instance",
            "--db-instance-identifier",
            "db1",
            "--master-user-password",
            "hunter22",
            "--client-secret=abc123",
            "--apply-immediately",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let shown = redact_argv(&argv);
        assert_eq!(shown[4], "db1");
        assert_eq!(shown[6], REDACTED);
        assert_eq!(shown[7], format!("--client-secret={REDACTED}"));
        assert_eq!(shown[8], "--apply-immediately");
        assert!(!shown.join(" ").contains("hunter22"));
    }

    #[test]
    fn botocore_debug_headers_are_masked() {
        let line = "2026-11-22 DEBUG - Sending http request: <AWSPreparedRequest headers={'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEXAMPLETOKENvalue123', 'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261122'}>";
        let out = r(line);
        assert!(!out.contains("IQoJb3JpZ2lu"), "{out}");
        assert!(!out.contains("AWS4-HMAC-SHA256 Credential"), "{out}");
        // A value that merely starts with `b` keeps nothing of itself.
        assert!(!r("password: bob123").contains("ob123"));
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn aws_secret_access_keys() {
        for text in [
            format!(r#""SecretAccessKey": "{SECRET}","#),
            format!("aws_secret_access_key = {SECRET}"),
            format!("AWS_SECRET_ACCESS_KEY={SECRET}"),
            format!("<SecretAccessKey>{SECRET}</SecretAccessKey>"),
        ] {
            let out = r(&text);
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn session_tokens() {
        let out = r(r#"{"SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz+abc=="}"#);
        assert_eq!(out, r#"{"SessionToken": "[REDACTED]"}"#);
        let out = r("aws_session_token=FwoGZXIvYXdzEJr");
        assert_eq!(out, "aws_session_token=[REDACTED]");
    }

    #[test]
    fn access_key_ids_keep_their_prefix() {
        assert_eq!(
            r("key AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A."),
            "key AKIA[REDACTED] and ASIA[REDACTED]."
        );
    }

    #[test]
    fn auth_headers_and_jwts() {
        assert_eq!(r("x-redlock-auth: abc.def"), "x-redlock-auth: [REDACTED]");
        assert_eq!(
            r("Authorization: Bearer abcdefgh12345"),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            r("curl -H 'Bearer abcdefgh12345'"),
            "curl -H 'Bearer [REDACTED]'"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(r(&format!("got {jwt} back")), "got [REDACTED] back");
        assert_eq!(
            r("Authorization: SharedKey acct:ctzMq410TV3wS7upTBcunJTDLEJwMAZuFPfr0mrrA08="),
            "Authorization: SharedKey [REDACTED]"
        );
    }

    #[test]
    fn passwords_tokens_and_azure_keys() {
        assert_eq!(r(r#"{"password":"p@ss"}"#), r#"{"password":"[REDACTED]"}"#);
        assert_eq!(r("token=abc123"), "token=[REDACTED]");
        assert_eq!(
            r("az x --admin-password Sup3r!"),
            "az x --admin-password [REDACTED]"
        );
        assert_eq!(
            r("Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=abc+/=;"),
            "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=[REDACTED];"
        );
        assert_eq!(
            r("https://a.blob.core.windows.net/c?sv=2022&sig=AbC%2Bd%3D&se=1"),
            "https://a.blob.core.windows.net/c?sv=2022&sig=[REDACTED]&se=1"
        );
    }

    #[test]
    fn environment_dumps() {
        for (line, kept) in [
            ("PRISMA_SECRET_KEY=abc", "PRISMA_SECRET_KEY="),
            ("AUTH_KEY=k3y-value", "AUTH_KEY="),
            (
                "SB_QUEUE_KEY=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
                "SB_QUEUE_KEY=",
            ),
            (
                "AZURE_CLIENT_SECRET=Qx8Q~abc.def_ghi",
                "AZURE_CLIENT_SECRET=",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN=Basic dXNlcjpwYXNz",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN=",
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS=/var/run/gcp/key.json",
                "GOOGLE_APPLICATION_CREDENTIALS=",
            ),
            ("DB_PASSWORD=correct horse battery", "DB_PASSWORD="),
            (
                "export ARM_CLIENT_SECRET=\"s3cr3t value\"",
                "export ARM_CLIENT_SECRET=\"",
            ),
            (
                "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                "GITHUB_TOKEN=",
            ),
            ("DD_API_KEY=0123456789abcdef", "DD_API_KEY="),
            ("STORAGE_ACCOUNT_KEY=abc", "STORAGE_ACCOUNT_KEY="),
            ("MY_PRIVATE_KEY=abc", "MY_PRIVATE_KEY="),
            ("SAS_KEY=abc", "SAS_KEY="),
            ("X_CREDENTIAL=abc", "X_CREDENTIAL="),
            ("LDAP_PASSWD=abc", "LDAP_PASSWD="),
        ] {
            let dump = format!("HOME=/home/w\n{line}\nPATH=/usr/bin\n");
            let out = r(&dump);
            assert_eq!(
                out,
                format!(
                    "HOME=/home/w\n{kept}{REDACTED}{}\nPATH=/usr/bin\n",
                    if kept.ends_with('"') { "\"" } else { "" }
                ),
                "{line}"
            );
        }
        // `/proc/self/environ` is NUL-separated; an env dump inside a JSON string uses `\n`.
        assert_eq!(
            r("A=1\0PRISMA_SECRET_KEY=abc def\0B=2"),
            "A=1\0PRISMA_SECRET_KEY=[REDACTED]\0B=2"
        );
        assert_eq!(
            r(r#"{"out": "A=1\nAZURE_CLIENT_SECRET=abc\nB=2"}"#),
            r#"{"out": "A=1\nAZURE_CLIENT_SECRET=[REDACTED]\nB=2"}"#
        );
        // JSON and Python repr forms.
        assert_eq!(
            r(r#"{"PRISMA_SECRET_KEY": "abc", "REGION": "eu"}"#),
            r#"{"PRISMA_SECRET_KEY": "[REDACTED]", "REGION": "eu"}"#
        );
        assert_eq!(
            r("environ({'AZURE_CLIENT_SECRET': 'abc', 'LANG': 'C'})"),
            "environ({'AZURE_CLIENT_SECRET': '[REDACTED]', 'LANG': 'C'})"
        );
        // Names about a secret, and the working directory, stay.
        for plain in [
            "PWD=/home/w",
            "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials",
            "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/w",
            "SSH_AUTH_SOCK=/tmp/agent.1",
            "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000",
            "KMS_KEY=alias/prod",
        ] {
            assert_eq!(r(plain), plain);
        }
    }

    #[test]
    fn secret_json_fields() {
        for field in [
            "SecretString",
            "SecretBinary",
            "password",
            "Password",
            "clientSecret",
            "client_secret",
            "privateKey",
            "accessToken",
            "access_token",
            "refresh_token",
            "id_token",
            "SessionToken",
            "SecretAccessKey",
            "authorizationToken",
            "primaryKey",
            "secondaryKey",
            "primaryConnectionString",
            "primaryMasterKey",
            "KeyMaterial",
            "PasswordData",
        ] {
            let text = format!(r#"{{"{field}": "s3cr3t-Value+/=", "Name": "n"}}"#);
            assert_eq!(
                r(&text),
                format!(r#"{{"{field}": "[REDACTED]", "Name": "n"}}"#),
                "{field}"
            );
            // YAML form.
            assert_eq!(
                r(&format!("{field}: s3cr3t-Value+/=")),
                format!("{field}: [REDACTED]")
            );
        }
        // A value with escaped quotes is masked whole.
        assert_eq!(
            r(r#"{"SecretString": "{\"username\":\"u\",\"password\":\"p w\"}"}"#),
            r#"{"SecretString": "[REDACTED]"}"#
        );
        // JSON escaped inside a JSON string (a dead-letter body).
        assert_eq!(
            r(r#"{"body": "{\"password\": \"p w\", \"user\": \"u\"}"}"#),
            r#"{"body": "{\"password\": \"[REDACTED]\", \"user\": \"u\"}"}"#
        );
    }

    #[test]
    fn gcp_service_account_json() {
        let sa = r#"{"type": "service_account", "project_id": "p", "private_key_id": "0123abcd", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n", "client_email": "sa@p.iam.gserviceaccount.com"}"#;
        assert_eq!(
            r(sa),
            r#"{"type": "service_account", "project_id": "p", "private_key_id": "0123abcd", "private_key": "[REDACTED]", "client_email": "sa@p.iam.gserviceaccount.com"}"#
        );
    }

    #[test]
    fn pem_blocks() {
        let raw = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3\nxfn/ygWyF8PbnGy0AHB7MhgHcTz6\n-----END RSA PRIVATE KEY-----\ndone";
        assert_eq!(r(raw), "key:\n[REDACTED]\ndone");
        let escaped = r"x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY----- y";
        assert_eq!(r(escaped), "x [REDACTED] y");
        // Cut at the end (a tail limit) or at the front.
        assert_eq!(
            r("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk"),
            REDACTED
        );
        assert_eq!(
            r("[…truncated…]\nMHcCAQEEIBkg4LVWM9nuwNSk\nAoGBAKt\n-----END PRIVATE KEY-----\nok"),
            "[…truncated…]\n[REDACTED]\nok"
        );
        // Certificates and public keys are not secrets.
        let cert = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----";
        assert_eq!(r(cert), cert);
    }

    #[test]
    fn connection_strings() {
        assert_eq!(
            r(
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Zm9vYmFy+/==;EntityPath=q"
            ),
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=[REDACTED];EntityPath=q"
        );
        assert_eq!(
            r(
                "DefaultEndpointsProtocol=https;AccountName=sa;AccountKey=abc+def==;EndpointSuffix=core.windows.net"
            ),
            "DefaultEndpointsProtocol=https;AccountName=sa;AccountKey=[REDACTED];EndpointSuffix=core.windows.net"
        );
        assert_eq!(
            r(
                "Endpoint=sb://ns/;SharedAccessSignature=sr=amqps%3A%2F%2Fns%2Fq&sig=AbC%3D&se=1700000000&skn=Root"
            ),
            "Endpoint=sb://ns/;SharedAccessSignature=[REDACTED]&sig=[REDACTED]&se=1700000000&skn=Root"
        );
        assert_eq!(
            r("Authorization: SharedAccessSignature sr=x&sig=AbC%3D&se=1&skn=Root"),
            "Authorization: SharedAccessSignature [REDACTED]&sig=[REDACTED]&se=1&skn=Root"
        );
        assert_eq!(
            r(
                "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abcdef0123&X-Amz-Expires=60"
            ),
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60"
        );
        assert_eq!(
            r("Server=db;Uid=sa;Pwd=p@ss;"),
            "Server=db;Uid=sa;Pwd=[REDACTED];"
        );
    }

    #[test]
    fn url_userinfo() {
        assert_eq!(
            r("cloning https://user:pa55@github.com/o/r.git"),
            "cloning https://user:[REDACTED]@github.com/o/r.git"
        );
        assert_eq!(
            r("redis://:pa55@cache:6379/0"),
            "redis://:[REDACTED]@cache:6379/0"
        );
        assert_eq!(
            r("mongodb+srv://u:p@ss@c.mongodb.net/db"),
            "mongodb+srv://u:[REDACTED]@c.mongodb.net/db"
        );
        assert_eq!(
            r("https://ghp_abcdefghijklmnop1234@github.com/o/r"),
            "https://[REDACTED]@github.com/o/r"
        );
        for plain in [
            "https://host:443/path?a=b@c",
            "ssh://git@github.com/o/r",
            "mail bob@example.com about https://example.com",
            "s3://bucket/a:b@c",
        ] {
            assert_eq!(r(plain), plain);
        }
    }

    #[test]
    fn ecr_login_passwords() {
        let blob: String = "eyJwYXlsb2FkIjoiQ2tBNW".repeat(20);
        assert!(blob.len() >= 200);
        assert_eq!(r(&format!("{blob}\n")), format!("{REDACTED}\n"));
        let shown = argv(&[
            "docker",
            "login",
            "--username",
            "AWS",
            "-p",
            "hunter22",
            "1.dkr.ecr.us-east-1.amazonaws.com",
        ]);
        assert_eq!(shown[5], REDACTED);
        assert_eq!(shown[6], "1.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(
            argv(&["docker", "login", "-phunter22"])[2],
            format!("-p{REDACTED}")
        );
        assert_eq!(
            argv(&["docker", "login", "--password", "hunter22", "r"])[3],
            REDACTED
        );
        // --password-stdin is a flag: the registry after it stays.
        assert_eq!(
            argv(&["docker", "login", "--password-stdin", "r.example"])[3],
            "r.example"
        );
        assert_eq!(
            r("docker login -u AWS -p hunter22 1.dkr.ecr.us-east-1.amazonaws.com"),
            "docker login -u AWS -p [REDACTED] 1.dkr.ecr.us-east-1.amazonaws.com"
        );
        // `-p` elsewhere is a port or a profile.
        assert_eq!(
            argv(&["docker", "run", "-p", "8080:80", "img"])[3],
            "8080:80"
        );
        // An Azure account key in table output.
        let key = format!("{}==", "Ab1+".repeat(21) + "Cd");
        assert_eq!(key.len(), 88);
        assert_eq!(
            r(&format!("key1  FULL  {key}")),
            format!("key1  FULL  {REDACTED}")
        );
    }

    #[test]
    fn azure_keys_list() {
        let key = format!("{}==", "Ab1+".repeat(21) + "Cd");
        let out = r(&format!(
            "[\n  {{\n    \"keyName\": \"key1\",\n    \"permissions\": \"FULL\",\n    \"value\": \"{key}\"\n  }}\n]"
        ));
        assert!(!out.contains("Ab1+"), "{out}");
        // Named by a sibling, whatever the value looks like.
        assert_eq!(
            r(r#"[{"keyName": "key2", "permissions": "FULL", "value": "short"}]"#),
            r#"[{"keyName": "key2", "permissions": "FULL", "value": "[REDACTED]"}]"#
        );
        // A plain value stays.
        let tags = r#"[{"Key": "Name", "Value": "web"}, {"keyName": "x", "value": "y"}]"#;
        assert_eq!(r(tags), tags);
    }

    #[test]
    fn values_named_by_a_sibling() {
        assert_eq!(
            r("--tags Key=Password,Value=hunter22 Key=env,Value=prod"),
            "--tags Key=Password,Value=[REDACTED] Key=env,Value=prod"
        );
        assert_eq!(
            r("ParameterKey=DBPassword,ParameterValue=hunter22"),
            "ParameterKey=DBPassword,ParameterValue=[REDACTED]"
        );
        assert_eq!(
            r(
                r#"{"environment": [{"name": "PRISMA_SECRET_KEY", "value": "abc"}, {"name": "LANG", "value": "C"}]}"#
            ),
            r#"{"environment": [{"name": "PRISMA_SECRET_KEY", "value": "[REDACTED]"}, {"name": "LANG", "value": "C"}]}"#
        );
        assert_eq!(
            r("env:\n- name: DB_PASSWORD\n  value: hunter22\n- name: LANG\n  value: C\n"),
            "env:\n- name: DB_PASSWORD\n  value: [REDACTED]\n- name: LANG\n  value: C\n"
        );
        assert_eq!(
            r(r#"{"adminPassword": {"value": "hunter22"}, "location": {"value": "westeurope"}}"#),
            r#"{"adminPassword": {"value": "[REDACTED]"}, "location": {"value": "westeurope"}}"#
        );
    }

    #[test]
    fn secret_options_in_argv() {
        for option in [
            "--master-user-password",
            "--secret-string",
            "--new-password",
            "--old-password",
            "--password",
            "--admin-password",
            "--client-secret",
            "--sas-token",
            "--account-key",
            "--connection-string",
            "--private-key",
            "--secret-binary",
            "--auth-token",
            "--db-password",
            "--credentials",
            "--token-code",
            "--storage-key",
        ] {
            let shown = argv(&[
                "aws",
                "x",
                "y",
                option,
                "hunter22Xy",
                "--region",
                "eu-west-1",
            ]);
            assert_eq!(shown[4], REDACTED, "{option}");
            assert_eq!(shown[6], "eu-west-1", "{option}");
            let shown = argv(&["aws", "x", &format!("{option}=hunter22Xy")]);
            assert_eq!(shown[2], format!("{option}={REDACTED}"), "{option}");
            // The same in a logged command line.
            assert_eq!(
                r(&format!("aws x {option} 'hunter22' --region eu")),
                format!("aws x {option} '{REDACTED}' --region eu"),
                "{option}"
            );
            assert_eq!(
                r(&format!("aws x {option}=hunter22Xy --region eu")),
                format!("aws x {option}={REDACTED} --region eu"),
                "{option}"
            );
        }
        assert_eq!(
            r("aws x --secret-string 'two words' --region eu"),
            "aws x --secret-string '[REDACTED]' --region eu"
        );
        // A JSON secret string is masked whole.
        let shown = argv(&[
            "aws",
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            "prod/db",
            "--secret-string",
            r#"{"password":"p"}"#,
        ]);
        assert_eq!(shown[4], "prod/db");
        assert_eq!(shown[6], REDACTED);
        // Debug-printed argv.
        assert_eq!(
            r(r#"["aws", "--master-user-password", "hunter22", "--region", "eu"]"#),
            r#"["aws", "--master-user-password", "[REDACTED]", "--region", "eu"]"#
        );
        // SSM SecureString values, and values named by --name.
        let shown = argv(&[
            "aws",
            "ssm",
            "put-parameter",
            "--name",
            "/app/url",
            "--type",
            "SecureString",
            "--value",
            "hunter22",
        ]);
        assert_eq!(shown[8], REDACTED);
        let shown = argv(&[
            "aws",
            "ssm",
            "put-parameter",
            "--name",
            "/prod/db/password",
            "--value",
            "hunter22",
        ]);
        assert_eq!(shown[6], REDACTED);
        let shown = argv(&[
            "aws",
            "ssm",
            "put-parameter",
            "--name",
            "/app/url",
            "--value",
            "https://x",
        ]);
        assert_eq!(shown[6], "https://x");
        assert_eq!(
            r("aws ssm put-parameter --name /app/url --type SecureString --value hunter22"),
            "aws ssm put-parameter --name /app/url --type SecureString --value [REDACTED]"
        );
        // --parameters / --attributes JSON: the JSON rules apply inside.
        let shown = argv(&[
            "az",
            "deployment",
            "group",
            "create",
            "--parameters",
            r#"{"adminPassword": {"value": "hunter22"}, "sku": {"value": "S1"}}"#,
        ]);
        assert_eq!(shown[4], "--parameters");
        assert_eq!(
            shown[5],
            r#"{"adminPassword": {"value": "[REDACTED]"}, "sku": {"value": "S1"}}"#
        );
        let shown = argv(&[
            "aws",
            "x",
            "--attributes",
            r#"{"KmsMasterKeyId": "alias/aws/sqs", "password": "p"}"#,
        ]);
        assert_eq!(
            shown[3],
            r#"{"KmsMasterKeyId": "alias/aws/sqs", "password": "[REDACTED]"}"#
        );
        let shown = argv(&[
            "az",
            "webapp",
            "config",
            "appsettings",
            "set",
            "--settings",
            "DB_PASSWORD=hunter22",
            "LANG=C",
        ]);
        assert_eq!(shown[6], format!("DB_PASSWORD={REDACTED}"));
        assert_eq!(shown[7], "LANG=C");
    }

    #[test]
    fn identifier_options_stay() {
        for args in [
            &[
                "aws",
                "kms",
                "enable-key-rotation",
                "--key-id",
                "1234abcd-12ab-34cd-56ef-1234567890ab",
            ][..],
            &[
                "aws",
                "ec2",
                "create-key-pair",
                "--key-name",
                "prod",
                "--key-type",
                "ed25519",
            ],
            &[
                "aws",
                "kms",
                "create-key",
                "--key-spec",
                "SYMMETRIC_DEFAULT",
                "--key-usage",
                "ENCRYPT_DECRYPT",
            ],
            &[
                "aws",
                "ec2",
                "copy-snapshot",
                "--kms-key-id",
                "arn:aws:kms:us-east-1:123456789012:key/abcd",
                "--encrypted",
            ],
            &[
                "aws",
                "s3api",
                "copy-object",
                "--sse-kms-key-id",
                "alias/x",
                "--ssekms-key-id",
                "alias/y",
            ],
            &[
                "aws",
                "secretsmanager",
                "rotate-secret",
                "--secret-id",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
            ],
            &[
                "aws",
                "lambda",
                "update-function-code",
                "--s3-key",
                "builds/fn.zip",
                "--s3-bucket",
                "b",
            ],
            &[
                "aws",
                "dynamodb",
                "get-item",
                "--key",
                r#"{"id": {"S": "1"}}"#,
            ],
            &[
                "aws",
                "iam",
                "update-account-password-policy",
                "--minimum-password-length",
                "14",
                "--require-symbols",
                "--password-reuse-prevention",
                "24",
                "--max-password-age",
                "90",
            ],
            &[
                "aws",
                "iam",
                "create-login-profile",
                "--user-name",
                "u",
                "--password-reset-required",
            ],
            &[
                "aws",
                "ec2",
                "modify-instance-metadata-options",
                "--instance-id",
                "i-0abc",
                "--http-tokens",
                "required",
                "--http-endpoint",
                "enabled",
            ],
            &[
                "aws",
                "ec2",
                "describe-instances",
                "--starting-token",
                "eyJNYXJrZXIiOiBudWxsfQ==",
                "--max-items",
                "5",
            ],
            &[
                "aws",
                "cloudformation",
                "create-stack",
                "--client-request-token",
                "tok-1",
                "--stack-name",
                "s",
            ],
            &[
                "aws",
                "ec2",
                "revoke-security-group-ingress",
                "--group-id",
                "sg-0123456789abcdef0",
                "--protocol",
                "tcp",
                "--port",
                "22",
                "--cidr",
                "0.0.0.0/0",
            ],
            &[
                "aws",
                "s3api",
                "put-public-access-block",
                "--bucket",
                "my-bucket",
                "--public-access-block-configuration",
                "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
            ],
            &[
                "aws",
                "apigateway",
                "put-integration",
                "--credentials",
                "arn:aws:iam::123456789012:role/apigw",
            ],
            &[
                "aws",
                "sns",
                "set-topic-attributes",
                "--topic-arn",
                "arn:aws:sns:us-east-1:123456789012:t",
                "--attribute-name",
                "KmsMasterKeyId",
                "--attribute-value",
                "alias/aws/sns",
            ],
            &[
                "az",
                "storage",
                "account",
                "update",
                "--name",
                "sa",
                "--resource-group",
                "rg",
                "--allow-blob-public-access",
                "false",
                "--min-tls-version",
                "TLS1_2",
            ],
            &[
                "az",
                "storage",
                "account",
                "keys",
                "renew",
                "--key",
                "primary",
                "--account-name",
                "sa",
            ],
            &[
                "az",
                "storage",
                "blob",
                "list",
                "--auth-mode",
                "login",
                "--account-name",
                "sa",
            ],
            &[
                "az",
                "keyvault",
                "secret",
                "set-attributes",
                "--vault-name",
                "v",
                "--name",
                "db-password",
                "--expires",
                "2030-01-01T00:00:00Z",
            ],
            &[
                "gcloud",
                "compute",
                "firewall-rules",
                "update",
                "allow-ssh",
                "--disabled",
                "--project",
                "p",
            ],
            &[
                "gcloud",
                "kms",
                "keys",
                "update",
                "k",
                "--keyring",
                "r",
                "--location",
                "global",
                "--rotation-period",
                "90d",
            ],
            &[
                "aws",
                "iam",
                "put-user-policy",
                "--user-name",
                "x",
                "--policy-name",
                "deny",
                "--policy-document",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["secretsmanager:GetSecretValue","s3:*"],"Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
            ],
            &[
                "aws",
                "s3api",
                "put-bucket-encryption",
                "--bucket",
                "b",
                "--server-side-encryption-configuration",
                r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"arn:aws:kms:us-east-1:123456789012:key/abcd"}}]}"#,
            ],
            &[
                "aws",
                "iam",
                "put-role-policy",
                "--role-name",
                "r",
                "--policy-name",
                "p",
                "--policy-document",
                r#"{"Statement":[{"Effect":"Deny","Principal":{"Federated":"token.actions.githubusercontent.com"},"Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"sts.amazonaws.com"}}}]}"#,
            ],
        ] {
            let shown = argv(args);
            assert_eq!(
                shown,
                args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            );
            let line = args.join(" ");
            assert_eq!(r(&line), line);
        }
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in [
            "",
            "An error occurred (NoSuchEntity) when calling the GetUser operation: The user with name bob cannot be found.",
            "The security token included in the request is invalid.",
            "arn:aws:iam::123456789012:policy/X attached to user U",
            "usage: aws [options] <command> <subcommand> [<subcommand> ...]",
            "ünïcode text, signature ok, password policy updated",
            "An error occurred (AccessDenied) when calling the PutUserPolicy operation: User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:PutUserPolicy on resource: user x because no identity-based policy allows the iam:PutUserPolicy action",
            "An error occurred (InvalidClientTokenId) when calling the GetCallerIdentity operation: The security token included in the request is invalid.",
            "An error occurred (ExpiredToken) when calling the GetCallerIdentity operation: The security token included in the request is expired",
            "An error occurred (SignatureDoesNotMatch) when calling the ListBuckets operation: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            "An error occurred (ResourceNotFoundException) when calling the RotateSecret operation: Secrets Manager can't find the specified secret.",
            "An error occurred (NotFoundException) when calling the DescribeKey operation: Key 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' does not exist",
            "Unable to locate credentials. You can configure credentials by running \"aws configure\".",
            "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY",
            "ERROR: (gcloud.compute.firewall-rules.update) Could not fetch resource:\n - The resource 'projects/p/global/firewalls/x' was not found",
            "ERROR: (gcloud.secrets.versions.access) PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied on resource 'projects/p/secrets/s'",
            "(AuthorizationFailed) The client 'abc' with object id 'def' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '/subscriptions/0000/resourceGroups/rg' or the scope is invalid.\nCode: AuthorizationFailed",
            r#"{"KeyMetadata": {"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "Arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}}"#,
            r#"{"PasswordPolicy": {"MinimumPasswordLength": 14, "RequireSymbols": true, "AllowUsersToChangePassword": true, "ExpirePasswords": true, "MaxPasswordAge": 90, "PasswordReusePrevention": 24, "HardExpiry": false}}"#,
            r#"{"AccessKeyMetadata": [{"UserName": "bob", "Status": "Active", "CreateDate": "2024-01-01T00:00:00Z"}], "IsTruncated": false}"#,
            r#"{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", "Name": "prod/db", "SecretVersionsToStages": {"v1": ["AWSCURRENT"]}, "RotationEnabled": true, "NextRotationDate": "2025-01-01"}"#,
            r#"{"MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2}, "KeyName": "prod", "SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "web"}]}"#,
            r#"{"authorizationType": "NONE", "apiKeyRequired": false, "token_type": "Bearer", "expires_in": 3600}"#,
            "Value null at 'password' failed to satisfy constraint",
        ] {
            assert_eq!(r(text), text);
            assert!(matches!(redact_cow(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn aws_validation_errors_quoting_a_value() {
        assert_eq!(
            r(
                "An error occurred (ValidationException): 1 validation error detected: Value 'hunter 22' at 'masterUserPassword' failed to satisfy constraint"
            ),
            "An error occurred (ValidationException): 1 validation error detected: Value '[REDACTED]' at 'masterUserPassword' failed to satisfy constraint"
        );
        let plain = "Value 'x y' at 'dBInstanceIdentifier' failed to satisfy constraint";
        assert_eq!(r(plain), plain);
    }

    #[test]
    fn redact_json_masks_fields_in_place() {
        let mut body = serde_json::json!({
            "SecretString": "{\"password\":\"p\"}",
            "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "SecretId": "prod/db",
            "password": 123456,
            "passwords": ["a", "b"],
            "adminPassword": {"value": "hunter22"},
            "Credentials": {"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "SecretAccessKey": "x", "Expiration": "2026"},
            "Tags": [{"Key": "Password", "Value": "hunter22"}, {"Key": "env", "Value": "prod"}],
            "keys": [{"keyName": "key1", "value": "abc"}],
            "log": "PRISMA_SECRET_KEY=abc",
            "url": "https://u:p@h/x",
            "MinimumPasswordLength": 14,
            "RequireSymbols": true,
            "token=abc": true,
            "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        });
        redact_json(&mut body);
        let again = {
            let mut b = body.clone();
            redact_json(&mut b);
            b
        };
        assert_eq!(again, body, "not idempotent");
        assert_eq!(
            body,
            serde_json::json!({
                "SecretString": REDACTED,
                "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
                "SecretId": "prod/db",
                "password": REDACTED,
                "passwords": [REDACTED, REDACTED],
                "adminPassword": {"value": REDACTED},
                "Credentials": {"AccessKeyId": "ASIA[REDACTED]", "SecretAccessKey": REDACTED, "Expiration": "2026"},
                "Tags": [{"Key": "Password", "Value": REDACTED}, {"Key": "env", "Value": "prod"}],
                "keys": [{"keyName": "key1", "value": REDACTED}],
                "log": "PRISMA_SECRET_KEY=[REDACTED]",
                "url": "https://u:[REDACTED]@h/x",
                "MinimumPasswordLength": 14,
                "RequireSymbols": true,
                "token=[REDACTED]": true,
                "private_key": REDACTED,
            })
        );
    }

    #[test]
    fn secret_names_table() {
        for name in [
            "PRISMA_SECRET_KEY",
            "AUTH_KEY",
            "SB_QUEUE_KEY",
            "AZURE_CLIENT_SECRET",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "--master-user-password",
            "clientSecret",
            "SharedAccessKey",
            "x-redlock-auth",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "KeyId",
            "KeyName",
            "SecretId",
            "SecretARN",
            "--kms-key-id",
            "--key-name",
            "--key-spec",
            "--sse-kms-key-id",
            "SharedAccessKeyName",
            "NextToken",
            "HttpTokens",
            "MinimumPasswordLength",
            "PasswordLastUsed",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "Key",
            "S3Key",
            "PublicKey",
            "PublicKeyMaterial",
            "SSH_AUTH_SOCK",
            "secretsmanager",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn a_mask_that_splits_a_token_is_still_idempotent() {
        // The first pass reads `KEY-----Bearer` as one token.
        let out = r("-----END PRIVATE KEY-----Bearer abcdefgh1");
        assert!(!out.contains("abcdefgh1"), "{out}");
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = redact(&format!("SecretAccessKey={SECRET} AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(redact(&once), once);
    }

    #[test]
    fn large_output_without_secrets_is_borrowed() {
        let mut big = String::new();
        for i in 0..2000 {
            big.push_str(&format!(
                "{{\"InstanceId\": \"i-{i:08x}\", \"KeyName\": \"prod\", \"Tags\": [{{\"Key\": \"Name\", \"Value\": \"web {i}\"}}]}},\n"
            ));
        }
        assert!(matches!(redact_cow(&big), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        #[test]
        fn redact_is_idempotent_and_total(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "PRISMA_SECRET_KEY=", "\"password\": ", "'", "\"", "\\\"", "\\n", "\n", " ", ":", "=",
                "--secret-string ", "https://", "u:p@h", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
                "AKIAIOSFODNN7EXAMPLE", "eyJa.eyJb.c", "Bearer abcdefgh1", "sig=x&", "Key=Password,Value=", "{", "}",
                "[REDACTED]", "abc", "ü", "Value 'x' at 'password'", "SharedAccessKey=", ";", ",",
                "\0", "export ", "<Password>", "</Password>", "docker login ", "-p ", "SecureString ", "--value ",
                "\"keyName\": \"key1\", ", "\"value\": ", "Authorization: ", "AWS4-HMAC-SHA256 ", "b'",
                "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
                "SB_QUEUE_KEY=", "PWD=/x", "Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Cd==",
            ]), 0..24)) {
            let text: String = parts.concat();
            let once = redact(&text);
            proptest::prop_assert_eq!(redact(&once), once);
            let argv_once = redact_argv(&parts);
            proptest::prop_assert_eq!(redact_argv(&argv_once), argv_once);
        }
    }
}
