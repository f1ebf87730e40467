//! The table of secret names: which variable, field and option names hold
//! a secret (a name split into words, then looked up), and which values
//! under such a name are never, or always, secrets.

use super::REDACTED;

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
pub(super) const SIBLING_KEYS: &[&str] = &[
    "key",
    "name",
    "keyname",
    "parameterkey",
    "parametername",
    "attributename",
];

/// The fields that hold the value named by a [`SIBLING_KEYS`] field.
pub(super) const SIBLING_VALUES: &[&str] = &["value", "parametervalue", "attributevalue"];

/// Programs whose `login -p VALUE` takes a password.
pub(super) const DOCKER_LIKE: &[&str] = &[
    "docker", "podman", "nerdctl", "helm", "oras", "buildah", "skopeo",
];

/// What a name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
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
pub(super) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
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
pub(super) fn norm_eq(name: &[u8], target: &str) -> bool {
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
pub(super) fn norm_in(name: &[u8], targets: &[&str]) -> bool {
    targets.iter().any(|t| norm_eq(name, t))
}

/// The table itself: what `name` says about its value.
pub(super) fn classify(name: &str) -> Class {
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

/// A value that is never a secret: empty, `null`/`true`/`false`, already
/// masked, or a resource identifier (`arn:…`, `projects/…`,
/// `/subscriptions/…`, an attached `file://` name).
pub(super) fn inert(value: &str) -> bool {
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
pub(super) fn masks(name: &str, class: Class, value: &str) -> bool {
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
pub(super) fn sibling_names_secret(key: &[u8], value: &str) -> bool {
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
