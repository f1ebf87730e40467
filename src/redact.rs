//! Secret handling: a [`Secret`] newtype that never prints, and [`redact`],
//! which masks likely secrets in free text (stderr and stdout tails, before
//! they reach logs or audit records).

use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

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

/// A value after a key: optional closing quote, `:` or `=` (or whitespace
/// after `--option`), optional opening quote. Group 1 is kept, group 2 masked.
// `b?` before the opening quote: botocore's debug output prints header
// values as Python bytes literals (`'X-Amz-Security-Token': b'IQo...'`).
const SEP: &str = r#"["']?\s*[:=]\s*(?:b?["'])?"#;
/// A secret value: up to the next quote, whitespace or structural delimiter.
const VALUE: &str = r#"[^\s"',;}&<>]+"#;

/// Every pattern has exactly two groups: what to keep, then the secret.
/// Order matters only for readability: masking is idempotent.
static PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    let sources = [
        // AWS secret keys and session tokens in CLI output, config files, env dumps.
        format!(
            r"(?i)((?:aws_?)?secret_?access_?key{SEP})({VALUE})"
        ),
        format!(
            r"(?i)((?:aws_?session_?token|sessiontoken|aws_?security_?token|x-amz-security-token){SEP})({VALUE})"
        ),
        // Prisma Cloud's auth header, and any Authorization header value.
        format!(r"(?i)(x-redlock-auth{SEP})({VALUE})"),
        format!(r"(?i)(authorization{SEP}(?:(?:bearer|basic|token)\s+)?)({VALUE})"),
        r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})".to_owned(),
        // Generic key=value / "key": "value" secrets.
        format!(
            r"(?i)(\b(?:password|passwd|pwd|token|access_?token|refresh_?token|id_?token|client_?secret|secret|api_?key|private_?key){SEP})({VALUE})"
        ),
        // CLI options carrying secrets.
        r"(?i)(--(?:password|admin-password|secret|client-secret|token|sas-token|account-key)[=\s]+)(\S+)".to_owned(),
        // Azure connection strings and SAS signatures.
        r"(?i)(\b(?:SharedAccessKey|AccountKey|SharedAccessSignature)=)([^;\s&'\x22]+)".to_owned(),
        r"(?i)(\bsig=)([^&\s;'\x22]+)".to_owned(),
        // JWTs anywhere (Prisma tokens, OIDC tokens).
        r"()(eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)".to_owned(),
        // Access key ids: the prefix says long-term (AKIA) or temporary (ASIA), keep it.
        r"(\b(?:AKIA|ASIA))([A-Z0-9]{16})\b".to_owned(),
    ];
    // The patterns are constants covered by a unit test; a pattern that failed
    // to compile would be skipped rather than take the worker down.
    sources.iter().filter_map(|s| Regex::new(s).ok()).collect()
});

/// The number of patterns [`redact`] applies (for the compile test).
/// Whether an option's name says its value is a secret
/// (`--master-user-password`, `--client-secret`, `--sas-token`, `--account-key`...).
fn secret_option(name: &str) -> bool {
    let name = name.trim_start_matches('-').to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "account-key",
        "private-key",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A copy of `argv` fit for logs and audit records: the values of options
/// whose names say they are secrets (`--master-user-password X`,
/// `--client-secret=X`) are masked, and every argument goes through
/// [`redact`]. What runs is never changed, only what is recorded.
pub fn redact_argv<S: AsRef<str>>(argv: &[S]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut mask_next = false;
    for arg in argv {
        let arg = arg.as_ref();
        if mask_next && !arg.starts_with("--") {
            out.push(REDACTED.to_owned());
            mask_next = false;
            continue;
        }
        mask_next = false;
        if let Some(name) = arg.strip_prefix("--") {
            match name.split_once('=') {
                Some((key, _)) if secret_option(key) => {
                    out.push(format!("--{key}={REDACTED}"));
                    continue;
                }
                None if secret_option(name) => mask_next = true,
                _ => {}
            }
        }
        out.push(redact(arg));
    }
    out
}

#[cfg(test)]
const PATTERN_COUNT: usize = 11;

/// Replaces anything that looks like a secret in `text` with `[REDACTED]`:
/// AWS secret access keys and session tokens (after their usual key names),
/// access key ids (`AKIA`/`ASIA` kept), `x-redlock-auth` and `Authorization`
/// values, bearer tokens, JWTs, `password`/`token`/`secret`/`api_key` values,
/// secret-carrying CLI options (`--password x`), Azure `SharedAccessKey=`,
/// `AccountKey=` and SAS `sig=` values. Ordinary text is returned unchanged.
///
/// It is a safety net for free text, not a guarantee: secrets in unknown
/// formats pass through, so secrets should not be printed in the first place.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    for pattern in PATTERNS.iter() {
        if let std::borrow::Cow::Owned(replaced) =
            pattern.replace_all(&out, |caps: &regex::Captures<'_>| {
                let keep = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
                format!("{keep}{REDACTED}")
            })
        {
            out = replaced;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

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
        let out = redact(line);
        assert!(!out.contains("IQoJb3JpZ2lu"), "{out}");
        assert!(!out.contains("AWS4-HMAC-SHA256 Credential"), "{out}");
        // A value that merely starts with `b` keeps nothing of itself.
        assert!(!redact("password: bob123").contains("ob123"));
    }

    #[test]
    fn all_patterns_compile() {
        assert_eq!(PATTERNS.len(), PATTERN_COUNT);
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
        ] {
            let out = redact(&text);
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.contains(REDACTED), "{out}");
        }
    }

    #[test]
    fn session_tokens() {
        let out = redact(r#"{"SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz+abc=="}"#);
        assert_eq!(out, r#"{"SessionToken": "[REDACTED]"}"#);
        let out = redact("aws_session_token=FwoGZXIvYXdzEJr");
        assert_eq!(out, "aws_session_token=[REDACTED]");
    }

    #[test]
    fn access_key_ids_keep_their_prefix() {
        assert_eq!(
            redact("key AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A."),
            "key AKIA[REDACTED] and ASIA[REDACTED]."
        );
    }

    #[test]
    fn auth_headers_and_jwts() {
        assert_eq!(
            redact("x-redlock-auth: abc.def"),
            "x-redlock-auth: [REDACTED]"
        );
        assert_eq!(
            redact("Authorization: Bearer abcdefgh12345"),
            "Authorization: Bearer [REDACTED]"
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(redact(&format!("got {jwt} back")), "got [REDACTED] back");
    }

    #[test]
    fn passwords_tokens_and_azure_keys() {
        assert_eq!(
            redact(r#"{"password":"p@ss"}"#),
            r#"{"password":"[REDACTED]"}"#
        );
        assert_eq!(redact("token=abc123"), "token=[REDACTED]");
        assert_eq!(
            redact("az x --admin-password Sup3r!"),
            "az x --admin-password [REDACTED]"
        );
        assert_eq!(
            redact("Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=abc+/=;"),
            "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=[REDACTED];"
        );
        assert_eq!(
            redact("https://a.blob.core.windows.net/c?sv=2022&sig=AbC%2Bd%3D&se=1"),
            "https://a.blob.core.windows.net/c?sv=2022&sig=[REDACTED]&se=1"
        );
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
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn redaction_is_idempotent() {
        let once = redact(&format!("SecretAccessKey={SECRET} AKIAIOSFODNN7EXAMPLE"));
        assert_eq!(redact(&once), once);
    }
}
