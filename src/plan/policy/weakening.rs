//! Weakening: catalog operations used backwards. The operation that turns
//! versioning on also suspends it; the one that hardens a web app also sets
//! its startup command. These rules refuse the option values that make a
//! resource less safe, set credentials, run code, or set arbitrary properties
//! (`weakens`).

use super::Violation;
use super::catalog::Operation;
use super::grants::option_values;
use crate::error::Refusal;
use crate::plan::Command;

/// What a rule forbids for its option.
#[derive(Clone, Copy, Debug)]
enum Forbid {
    /// The option at all (flags, and options whose every value weakens).
    Any,
    /// These values (case-insensitive; a value containing one counts).
    Values(&'static [&'static str]),
    /// Every value but these (case-insensitive, exact).
    AllBut(&'static [&'static str]),
    /// Exactly these words (case-insensitive): for positional settings.
    Exact(&'static [&'static str]),
    /// A value must be given, and be one of these (case-insensitive).
    Required(&'static [&'static str]),
}

/// A rule: program, operation (`*` = every operation), option (`""` =
/// positional words), what is forbidden, and why.
type Rule = (
    &'static str,
    &'static str,
    &'static str,
    Forbid,
    &'static str,
);

#[rustfmt::skip]
const RULES: &[Rule] = &[
    // aws
    ("aws", "s3api put-bucket-versioning", "--versioning-configuration", Forbid::Values(&["suspended"]), "suspends versioning"),
    ("aws", "guardduty update-detector", "--no-enable", Forbid::Any, "disables the detector"),
    ("aws", "iam update-access-key", "--status", Forbid::AllBut(&["inactive"]), "activates an access key"),
    ("aws", "*", "--publicly-accessible", Forbid::Any, "makes a database public"),
    ("aws", "ssm modify-document-permission", "--account-ids-to-add", Forbid::Any, "shares a document"),
    ("aws", "lambda update-function-url-config", "--auth-type", Forbid::AllBut(&["aws_iam"]), "opens a function URL"),
    ("aws", "ec2 modify-subnet-attribute", "--map-public-ip-on-launch", Forbid::Any, "gives instances public IPs"),
    ("aws", "cloudtrail update-trail", "--no-enable-log-file-validation", Forbid::Any, "turns log validation off"),
    ("aws", "cloudtrail update-trail", "--no-is-multi-region-trail", Forbid::Any, "narrows the trail"),
    ("aws", "cloudtrail update-trail", "--s3-bucket-name", Forbid::Any, "redirects the logs"),
    ("aws", "kms put-key-policy", "--bypass-policy-lockout-safety-check", Forbid::Any, "bypasses the lockout check"),
    ("aws", "s3api put-public-access-block", "--public-access-block-configuration", Forbid::Values(&["=false", ":false"]), "turns a public access block off"),
    ("aws", "s3control put-public-access-block", "--public-access-block-configuration", Forbid::Values(&["=false", ":false"]), "turns a public access block off"),
    // az
    ("az", "acr update", "--admin-enabled", Forbid::AllBut(&["false"]), "enables the admin user"),
    ("az", "sql server audit-policy update", "--state", Forbid::AllBut(&["enabled"]), "turns auditing off"),
    ("az", "sql db tde set", "--status", Forbid::AllBut(&["enabled"]), "turns encryption off"),
    ("az", "network nsg rule create", "--access", Forbid::Required(&["deny"]), "creates an allow rule (Allow is the default)"),
    ("az", "network nsg rule update", "--access", Forbid::AllBut(&["deny"]), "turns a rule into an allow rule"),
    ("az", "webapp config set", "--startup-file", Forbid::Any, "sets the command the app runs"),
    ("az", "webapp config set", "--linux-fx-version", Forbid::Any, "sets the image the app runs"),
    ("az", "webapp config set", "--windows-fx-version", Forbid::Any, "sets the image the app runs"),
    ("az", "webapp config set", "--generic-configurations", Forbid::Any, "sets arbitrary configuration"),
    ("az", "functionapp config set", "--startup-file", Forbid::Any, "sets the command the app runs"),
    ("az", "functionapp config set", "--linux-fx-version", Forbid::Any, "sets the image the app runs"),
    ("az", "functionapp config set", "--generic-configurations", Forbid::Any, "sets arbitrary configuration"),
    ("az", "policy assignment create", "--mi-system-assigned", Forbid::Any, "creates an identity"),
    ("az", "policy assignment create", "--mi-user-assigned", Forbid::Any, "assigns an identity"),
    ("az", "policy assignment create", "--role", Forbid::Any, "grants a role"),
    ("az", "security pricing create", "--tier", Forbid::AllBut(&["standard"]), "lowers the Defender tier"),
    ("az", "aks update", "--attach-acr", Forbid::Any, "grants a registry"),
    ("az", "aks update", "--enable-local-accounts", Forbid::Any, "enables local accounts"),
    ("az", "storage account update", "--https-only", Forbid::AllBut(&["true"]), "allows plain HTTP"),
    ("az", "webapp update", "--https-only", Forbid::AllBut(&["true"]), "allows plain HTTP"),
    // gcloud
    ("gcloud", "compute firewall-rules update", "--no-disabled", Forbid::Any, "re-enables a rule"),
    ("gcloud", "compute firewall-rules update", "--allow", Forbid::Any, "widens a rule"),
    ("gcloud", "compute firewall-rules update", "--rules", Forbid::Any, "widens a rule"),
    ("gcloud", "*", "--acl-file", Forbid::Any, "sets an ACL from a file (it can grant anything)"),
    ("gcloud", "*", "--default-object-acl-file", Forbid::Any, "sets an ACL from a file (it can grant anything)"),
    ("gcloud", "*", "--lifecycle-file", Forbid::Any, "sets a lifecycle (it can delete every object)"),
    ("gcloud", "*", "--cors-file", Forbid::Any, "sets CORS from a file"),
    ("gcloud", "logging sinks create", "", Forbid::Values(&["storage.googleapis.com/"]), "sends logs to a bucket, which names no project"),
    ("az", "*", "--add", Forbid::Any, "adds arbitrary entries (access policies, network rules)"),
    ("gcloud", "compute instances remove-metadata", "--all", Forbid::Any, "removes every protection key"),
    ("gcloud", "compute instances remove-metadata", "--keys", Forbid::Values(&["enable-oslogin", "block-project-ssh-keys"]), "removes a protection key"),
    ("gcloud", "compute networks subnets update", "--no-enable-flow-logs", Forbid::Any, "turns flow logs off"),
    ("gcloud", "container clusters update", "--no-enable-master-authorized-networks", Forbid::Any, "opens the control plane"),
    ("gcloud", "container clusters update", "--enable-legacy-authorization", Forbid::Any, "enables legacy authorization"),
    ("gcloud", "dns managed-zones update", "--dnssec-state", Forbid::AllBut(&["on", "transfer"]), "turns DNSSEC off"),
    ("gcloud", "sql instances patch", "--assign-ip", Forbid::Any, "gives the instance a public IP"),
    ("gcloud", "storage buckets update", "--add-acl-grant", Forbid::Any, "adds an ACL grant"),
    ("gcloud", "storage buckets update", "--no-public-access-prevention", Forbid::Any, "allows public access"),
    // gsutil: the setting is a positional word
    ("gsutil", "logging set", "", Forbid::Exact(&["off"]), "turns logging off"),
    ("gsutil", "versioning set", "", Forbid::Exact(&["off"]), "turns versioning off"),
    ("gsutil", "ubla set", "", Forbid::Exact(&["off"]), "turns uniform access off"),
    ("gsutil", "uniformbucketlevelaccess set", "", Forbid::Exact(&["off"]), "turns uniform access off"),
    ("gsutil", "pap set", "", Forbid::Exact(&["unspecified", "inherited"]), "allows public access"),
    ("gsutil", "publicaccessprevention set", "", Forbid::Exact(&["unspecified", "inherited"]), "allows public access"),
];

/// Options whose name says they set a credential: a remediation never does.
fn sets_credential(name: &str) -> bool {
    if !name.starts_with("--") {
        return false;
    }
    if !super::contains_ignore_case(name, "pass")
        && !super::contains_ignore_case(name, "secret")
        && !super::contains_ignore_case(name, "token")
    {
        return false;
    }
    let name = name.to_ascii_lowercase();
    let words = [
        "password",
        "passwd",
        "secret-string",
        "secret-binary",
        "auth-token",
        "access-token",
    ];
    // Not the switches about passwords (`--allow-users-to-change-password`).
    let switch = [
        "--allow-",
        "--require-",
        "--no-",
        "--manage-",
        "--hard-expiry",
    ]
    .iter()
    .any(|p| name.starts_with(p));
    name.starts_with("--") && !switch && words.iter().any(|w| name.ends_with(w))
}

/// Property names an az generic setter (`--set KEY=VALUE`, `--add`) may not
/// touch at all: code, images, credentials, identities.
const AZ_SENSITIVE_KEYS: &[&str] = &[
    "startup",
    "command",
    "script",
    "linuxfxversion",
    "windowsfxversion",
    "password",
    "secret",
    "identity",
    "role",
    "connectionstring",
    "appsettings",
];
/// Property names that open something when set to an opening value.
const AZ_OPENING_KEYS: &[&str] = &[
    "public",
    "allow",
    "anonymous",
    "admin",
    "localauth",
    "remotedebugging",
    "ftp",
    "cors",
];
/// Values that open.
const OPENING_VALUES: &[&str] = &[
    "true",
    "enabled",
    "allow",
    "allowall",
    "*",
    "0.0.0.0/0",
    "internet",
];

/// Every word given to an az generic setter: `--set a=1 b=2` sets both, and
/// `--set=a=1` one.
fn setter_words<'c>(command: &'c Command, option: &str) -> Vec<&'c str> {
    let args = command.args();
    let mut words = Vec::new();
    let mut taking = false;
    for arg in args {
        if arg.starts_with('-') {
            let split = super::split_at_equals(arg);
            let name = split.map_or(arg.as_str(), |(n, _)| n);
            taking = name.len() > 2 && option.starts_with(name);
            if let Some((_, v)) = split.filter(|_| taking) {
                words.push(v);
                taking = false;
            }
            continue;
        }
        if taking {
            words.push(arg.as_str());
        }
    }
    words
}

/// Refuses az generic setters that run code, set credentials, or open access.
fn az_setters(command: &Command, op: &Operation) -> Result<(), Violation> {
    for option in ["--set"] {
        for pair in setter_words(command, option) {
            if pair.trim_start().starts_with(['{', '['])
                || pair.contains("={")
                || pair.contains("=[")
            {
                return Err(Violation::new(
                    Refusal::Weakens,
                    format!(
                        "`az {}` {option} {}: a generic setter may set plain values only",
                        op.path,
                        super::quoted(pair)
                    ),
                ));
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.to_ascii_lowercase().replace(['_', '-'], "");
            let value = value.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
            let sensitive = AZ_SENSITIVE_KEYS.iter().any(|k| key.contains(k));
            let opening = AZ_OPENING_KEYS.iter().any(|k| key.contains(k))
                && OPENING_VALUES.contains(&value.as_str());
            if sensitive || opening {
                return Err(Violation::new(
                    Refusal::Weakens,
                    format!(
                        "`az {}` {option} {}: a generic setter may not set code, credentials, \
                         identities or open access",
                        op.path,
                        super::quoted(pair)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses what weakens, sets credentials or runs code.
pub(super) fn check(command: &Command, op: &Operation) -> Result<(), Violation> {
    let program = command.program();
    let refused = |why: &str, shown: &str| {
        Violation::new(
            Refusal::Weakens,
            format!("`{program} {}` {why} ({})", op.path, super::quoted(shown)),
        )
    };
    if let Some(arg) = command
        .args()
        .iter()
        .find(|a| super::option_name(a).is_some_and(sets_credential))
    {
        return Err(refused("sets a credential", arg));
    }
    if program == "az" {
        az_setters(command, op)?;
    }
    if program == "gcloud" {
        metadata(command, op)?;
    }
    for (p, path, option, forbid, why) in RULES {
        if *p != program || (*path != "*" && *path != op.path) {
            continue;
        }
        if option.is_empty() {
            let after = op.path_at.last().map_or(0, |i| i + 1);
            let words = command.args().get(after..).unwrap_or_default();
            if let Some(w) = words.iter().find(|w| forbidden(forbid, w)) {
                return Err(refused(why, w));
            }
            continue;
        }
        let abbreviates = super::ABBREVIATING_PROGRAMS.contains(&program);
        let present = command.args().iter().any(|a| {
            let Some(name) = super::option_name(a) else {
                return false;
            };
            name == *option
                || (abbreviates
                    && name.starts_with("--")
                    && name.len() > 2
                    && option.starts_with(name))
        });
        let values = option_values(command, option);
        let hit = match forbid {
            Forbid::Any => present || !values.is_empty(),
            Forbid::Required(_) => values.is_empty() || values.iter().any(|v| forbidden(forbid, v)),
            _ => values.iter().any(|v| forbidden(forbid, &super::decoded(v))),
        };
        if hit {
            return Err(refused(why, option));
        }
    }
    Ok(())
}

fn forbidden(forbid: &Forbid, value: &str) -> bool {
    let value = value.to_ascii_lowercase();
    match forbid {
        Forbid::Any => true,
        Forbid::Values(values) => values.iter().any(|v| value.contains(v)),
        Forbid::AllBut(allowed) | Forbid::Required(allowed) => !allowed.iter().any(|v| value == *v),
        Forbid::Exact(words) => words.iter().any(|v| value == *v),
    }
}

/// Metadata keys an `add-metadata` may set, and the values that protect.
const SAFE_METADATA: &[(&str, &[&str])] = &[
    ("block-project-ssh-keys", &["true", "1"]),
    ("enable-oslogin", &["true", "1"]),
    ("enable-oslogin-2fa", &["true", "1"]),
    ("serial-port-enable", &["false", "0"]),
    ("serial-port-logging-enable", &["false", "0"]),
    ("enable-guest-attributes", &["false", "0"]),
];

/// `gcloud ... add-metadata`: only protective keys with protective values.
fn metadata(command: &Command, op: &Operation) -> Result<(), Violation> {
    if !op.path.ends_with("add-metadata") {
        return Ok(());
    }
    for value in option_values(command, "--metadata") {
        let (delimiter, pairs) = match value.strip_prefix('^').and_then(|r| r.split_once('^')) {
            Some((d, rest)) if !d.is_empty() => (d, rest),
            _ => (",", value),
        };
        for pair in pairs.split(delimiter) {
            let (key, val) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.trim().to_ascii_lowercase();
            let safe = SAFE_METADATA.iter().any(|(k, vals)| {
                *k == key && vals.iter().any(|v| val.trim().eq_ignore_ascii_case(v))
            });
            if !safe {
                return Err(Violation::new(
                    Refusal::Weakens,
                    format!(
                        "`gcloud {}` sets metadata {}: only protective keys may be set ({})",
                        op.path,
                        super::quoted(pair),
                        SAFE_METADATA
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}
