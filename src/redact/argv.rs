//! Argv masking for logs and audit records: the values of secret-bearing
//! options are masked, every other argument goes through [`redact`].

use super::names::{
    DOCKER_LIKE, SIBLING_KEYS, SIBLING_VALUES, classify, inert, masks, norm_eq, norm_in,
    sibling_names_secret,
};
use super::{REDACTED, redact};

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
