//! Grants: a remediation takes access away, it does not hand it out.
//!
//! Identity policy documents a script creates or puts may only deny; AWS-managed
//! policies may be attached only when they deny; resource policies may not
//! allow everyone or another account; ACLs, IAM bindings and snapshot shares
//! may not be opened to the public; firewall rules may not be opened to the
//! world. An operator can allow identity grants or public grants on the policy.

use super::Violation;
use super::catalog::Operation;
use crate::error::Refusal;
use crate::plan::{Command, StepFile};
use serde_json::Value;

/// What the policy lets through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct GrantRules {
    /// Identity policies that allow, and attaching any AWS-managed policy.
    pub(super) identity_grants: bool,
    /// Resource policies, ACLs and rules open to everyone or another account.
    pub(super) public_grants: bool,
}

/// aws operations that write an identity policy document (`--policy-document`).
const IDENTITY_DOCUMENTS: &[&str] = &[
    "iam create-policy",
    "iam create-policy-version",
    "iam put-group-policy",
    "iam put-role-policy",
    "iam put-user-policy",
];
/// aws operations that attach a managed policy (`--policy-arn`).
const ATTACH: &[&str] = &[
    "iam attach-group-policy",
    "iam attach-role-policy",
    "iam attach-user-policy",
];
/// AWS-managed policies that only deny, which a remediation may attach.
pub(crate) const DENY_MANAGED: &[&str] = &[
    "AWSCompromisedKeyQuarantine",
    "AWSCompromisedKeyQuarantineV2",
    "AWSCompromisedKeyQuarantineV3",
    "AWSDenyAll",
];
/// aws operations whose option holds a resource policy document.
const RESOURCE_DOCUMENTS: &[(&str, &str)] = &[
    ("ecr set-repository-policy", "--policy-text"),
    ("kms put-key-policy", "--policy"),
    ("s3api put-bucket-policy", "--policy"),
    ("secretsmanager put-resource-policy", "--resource-policy"),
    ("sqs set-queue-attributes", "--attributes"),
    ("sns set-topic-attributes", "--attribute-value"),
];
/// Canned ACLs that open a bucket or object.
const PUBLIC_ACLS: &[&str] = &["public-read", "public-read-write", "authenticated-read"];

/// Every value of option `name` in `command` (`--name v` or `--name=v`).
///
/// For the argparse CLIs (`aws`, `az`), which take any unambiguous
/// abbreviation of an option (`--policy-doc` is `--policy-document`), an
/// option that abbreviates `name` counts as `name`.
pub(crate) fn option_values<'c>(command: &'c Command, name: &str) -> Vec<&'c str> {
    options_values(command, &[name])
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// The values of any of the options `names`, in one walk of the argv, each
/// with the index in `names` of the option it was given for (read as
/// [`option_values`] reads one option).
pub(crate) fn options_values<'c>(command: &'c Command, names: &[&str]) -> Vec<(usize, &'c str)> {
    let abbreviates = super::ABBREVIATING_PROGRAMS.contains(&command.program());
    let matches = |given: &str, name: &str| {
        given == name
            || (abbreviates
                && given.starts_with("--")
                && given.len() > 2
                && name.starts_with(given))
    };
    let args = command.args();
    let mut values = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        // Only an option names one (values, often long documents, are skipped
        // before they are searched for `=`).
        if !arg.starts_with('-') {
            continue;
        }
        let (given, value) = match super::split_at_equals(arg) {
            Some((given, v)) => (given, Some(v)),
            None => (arg.as_str(), None),
        };
        for (n, name) in names.iter().enumerate() {
            if !matches(given, name) {
                continue;
            }
            match value {
                Some(v) => values.push((n, v)),
                None => {
                    if let Some(v) = args.get(i + 1) {
                        values.push((n, v.as_str()));
                    }
                }
            }
        }
    }
    values
}

/// The document a value stands for: an attached file's contents for
/// `file://NAME`, the value itself otherwise.
fn document<'a>(value: &'a str, files: &'a [StepFile]) -> &'a str {
    let name = value
        .strip_prefix("file://")
        .or_else(|| value.strip_prefix("fileb://"))
        .unwrap_or(value);
    files
        .iter()
        .find(|f| f.name() == name)
        .map_or(value, StepFile::contents)
}

fn refused(reason: String) -> Violation {
    Violation::new(Refusal::PolicyDocument, reason)
}

/// The statements of a policy document (a list, or a single object).
fn statements(text: &str, what: &str) -> Result<Vec<Value>, Violation> {
    let mut doc: Value = serde_json::from_str(text.trim())
        .map_err(|e| refused(format!("{what} is not a JSON policy document ({e})")))?;
    // Taken out of the document, not copied.
    match doc.get_mut("Statement").map(Value::take) {
        Some(Value::Array(list)) => Ok(list),
        Some(one @ Value::Object(_)) => Ok(vec![one]),
        _ => Err(refused(format!("{what} has no Statement"))),
    }
}

/// Checks the grants `command` makes; `account` is the finding's AWS account
/// when known, so a principal of another account is told apart.
pub(super) fn check(
    command: &Command,
    op: &Operation,
    files: &[StepFile],
    rules: GrantRules,
    account: Option<&str>,
) -> Result<(), Violation> {
    let path = op.path.as_str();
    match command.program() {
        "aws" => aws(command, path, files, rules, account),
        "gsutil" if !rules.public_grants => gsutil(command, op),
        "gcloud" => gcloud(command, path, rules),
        "az" if !rules.public_grants => az(command, path),
        _ => Ok(()),
    }
}

fn aws(
    command: &Command,
    path: &str,
    files: &[StepFile],
    rules: GrantRules,
    account: Option<&str>,
) -> Result<(), Violation> {
    if !rules.identity_grants && IDENTITY_DOCUMENTS.contains(&path) {
        for value in option_values(command, "--policy-document") {
            let text = document(value, files);
            if super::deny_doc::only_denies(text) == Some(true) {
                continue;
            }
            for statement in statements(text, "--policy-document")? {
                if statement.get("Effect").and_then(Value::as_str) != Some("Deny") {
                    return Err(refused(format!(
                        "`aws {path}` writes an identity policy with a statement that does not \
                         deny: a remediation's identity policies may only deny"
                    )));
                }
            }
        }
    }
    if !rules.identity_grants && ATTACH.contains(&path) {
        for arn in option_values(command, "--policy-arn") {
            if let Some((_, name)) = arn.split_once(":iam::aws:policy/") {
                let name = name.rsplit('/').next().unwrap_or(name);
                if !DENY_MANAGED.contains(&name) {
                    return Err(refused(format!(
                        "`aws {path}` attaches the AWS-managed policy {name}, which grants: only \
                         deny policies ({}) may be attached",
                        DENY_MANAGED.join(", ")
                    )));
                }
            }
        }
    }
    if rules.public_grants {
        return Ok(());
    }
    aws_principals(command, path, files, account)?;
    for acl in option_values(command, "--acl") {
        if PUBLIC_ACLS.contains(&acl.to_ascii_lowercase().as_str()) {
            return Err(refused(format!("`aws {path}` sets the public ACL {acl}")));
        }
    }
    let shares = path.ends_with("-snapshot-attribute") || path.ends_with("image-attribute");
    let network = path.contains("authorize-security-group") || path == "eks update-cluster-config";
    // Lower-cased, decoded copies only where a check reads them.
    // AllUsers / AuthenticatedUsers are granted through ACLs.
    let groups = path.contains("acl")
        && command
            .args()
            .iter()
            .any(|a| super::contains_ignore_case(a, "users") || a.contains('\\'));
    if !(groups || shares || network) {
        return Ok(());
    }
    let lower = decoded_lower(command);
    if lower
        .iter()
        .any(|a| a.contains("/global/allusers") || a.contains("/global/authenticatedusers"))
    {
        return Err(refused(format!(
            "`aws {path}` grants to all users or all authenticated users"
        )));
    }
    let adds = |a: &String| {
        a == "add"
            || a.ends_with("=add")
            || a.contains("add=")
            || a.contains("\"add\"")
            || a.contains("add:")
            || (a.starts_with("--values-to-a") && "--values-to-add".starts_with(a.as_str()))
    };
    if shares && lower.iter().any(adds) {
        return Err(refused(format!("`aws {path}` shares a snapshot or image")));
    }
    if network && opens_to_world(&lower) {
        return Err(refused(format!(
            "`aws {path}` opens a security group to the whole internet"
        )));
    }
    Ok(())
}

/// The checks of a resource policy's principals (for `account`, the
/// finding's: another account's principal is a grant too).
fn aws_principals(
    command: &Command,
    path: &str,
    files: &[StepFile],
    account: Option<&str>,
) -> Result<(), Violation> {
    if let Some((_, option)) = RESOURCE_DOCUMENTS.iter().find(|(p, _)| *p == path) {
        for value in option_values(command, option) {
            let text = document(value, files);
            resource_document(path, option, text, account)?;
        }
    }
    if path == "lambda add-permission" {
        for principal in option_values(command, "--principal") {
            if principal == "*" || foreign(principal, account) {
                return Err(refused(format!(
                    "`aws {path}` grants to {principal:?}: everyone or another account"
                )));
            }
        }
    }
    Ok(())
}

/// What of [`check`] depends on the finding's account: the principals of
/// resource policies. The rest passed when the command was checked alone.
pub(super) fn check_principals(
    command: &Command,
    op: &Operation,
    files: &[StepFile],
    rules: GrantRules,
    account: Option<&str>,
) -> Result<(), Violation> {
    if command.program() != "aws" || rules.public_grants {
        return Ok(());
    }
    aws_principals(command, &op.path, files, account)
}

/// The arguments as the CLI reads them (JSON escapes decoded), lower-cased.
fn decoded_lower(command: &Command) -> Vec<String> {
    command
        .args()
        .iter()
        .map(|a| super::decoded(a).to_ascii_lowercase())
        .collect()
}

/// Whether one of the (lower-cased) arguments names a network range wider
/// than a `/8` (IPv4) or a `/16` (IPv6): `0.0.0.0/0`, or two `/1`s.
pub(super) fn opens_to_world(lower: &[String]) -> bool {
    lower.iter().any(|a| {
        a.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':' || c == '/'))
            .filter_map(|word| word.split_once('/'))
            .any(|(address, prefix)| {
                let Ok(bits) = prefix.parse::<u8>() else {
                    return false;
                };
                let v4 = address.split('.').count() == 4
                    && address.split('.').all(|o| o.parse::<u8>().is_ok());
                let v6 = address.contains(':');
                (v4 && bits < 8) || (v6 && bits < 16)
            })
    })
}

/// Whether `principal` names an account other than `account`.
fn foreign(principal: &str, account: Option<&str>) -> bool {
    let id = if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        Some(principal)
    } else if principal.starts_with("arn:") {
        principal.split(':').nth(4).filter(|a| a.len() == 12)
    } else {
        None
    };
    match (id, account) {
        (Some(id), Some(account)) => id != account,
        _ => false,
    }
}

fn resource_document(
    path: &str,
    option: &str,
    text: &str,
    account: Option<&str>,
) -> Result<(), Violation> {
    let text = if path == "sqs set-queue-attributes" {
        // A JSON map of attributes whose `Policy` is the document as a string.
        if !super::decoded(text).contains("Policy") {
            return Ok(());
        }
        let map: Value = serde_json::from_str(text.trim()).map_err(|_| {
            refused(format!(
                "`aws {path}` sets a Policy attribute that is not given as JSON"
            ))
        })?;
        match map.get("Policy").and_then(Value::as_str) {
            Some(policy) => policy.to_owned(),
            None => return Ok(()),
        }
    } else {
        if path == "sns set-topic-attributes" && !text.trim_start().starts_with('{') {
            return Ok(());
        }
        text.to_owned()
    };
    for statement in statements(&text, option)? {
        let effect = statement.get("Effect").and_then(Value::as_str);
        if effect.is_some_and(|e| e.eq_ignore_ascii_case("deny")) {
            continue;
        }
        if statement.get("NotPrincipal").is_some() {
            return Err(refused(format!(
                "`aws {path}` allows with NotPrincipal: everyone but a few"
            )));
        }
        let mut principals = Vec::new();
        match statement.get("Principal") {
            Some(Value::String(p)) => principals.push(p.clone()),
            Some(Value::Object(map)) => {
                for value in map.values() {
                    match value {
                        Value::String(p) => principals.push(p.clone()),
                        Value::Array(list) => principals
                            .extend(list.iter().filter_map(Value::as_str).map(str::to_owned)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if let Some(p) = principals
            .iter()
            .find(|p| p.contains('*') || foreign(p, account))
        {
            return Err(refused(format!(
                "`aws {path}` allows {p:?}: a resource policy may not grant to everyone or \
                 another account"
            )));
        }
    }
    Ok(())
}

fn gsutil(command: &Command, op: &Operation) -> Result<(), Violation> {
    let path = op.path.as_str();
    let args = command.args();
    if path.ends_with(" ch") {
        let mut i = op.path_at.last().map_or(0, |p| p + 1);
        while let Some(arg) = args.get(i) {
            i += 1;
            match arg.as_str() {
                "-d" => i += 1,
                "-R" | "-r" | "-f" => {}
                a if a.starts_with("gs://") => {}
                a => {
                    return Err(refused(format!(
                        "`gsutil {path}` may only remove entries (`-d`), not add {}",
                        super::quoted(a)
                    )));
                }
            }
        }
    }
    // `acl set` / `defacl set`: a canned ACL that keeps the bucket private,
    // never a file (which could grant anything).
    if path.ends_with("acl set") {
        let after = op.path_at.last().map_or(0, |p| p + 1);
        let acl = args
            .get(after..)
            .unwrap_or_default()
            .iter()
            .find(|a| !a.starts_with('-'));
        let private = [
            "private",
            "project-private",
            "bucket-owner-read",
            "bucket-owner-full-control",
        ];
        if !acl.is_some_and(|a| private.iter().any(|p| a.eq_ignore_ascii_case(p))) {
            return Err(refused(format!(
                "`gsutil {path}` may only set a private canned ACL ({})",
                private.join(", ")
            )));
        }
    }
    Ok(())
}

fn gcloud(command: &Command, path: &str, rules: GrantRules) -> Result<(), Violation> {
    if !rules.identity_grants && path.starts_with("iam policies ") {
        let kinds = option_values(command, "--kind");
        if kinds.is_empty()
            || kinds
                .iter()
                .any(|k| !k.eq_ignore_ascii_case("denypolicies"))
        {
            return Err(refused(format!(
                "`gcloud {path}` must write deny policies (`--kind=denypolicies`)"
            )));
        }
    }
    if rules.public_grants || path.contains("remove") {
        return Ok(());
    }
    let lower = decoded_lower(command);
    if lower
        .iter()
        .any(|a| a.contains("allusers") || a.contains("allauthenticatedusers"))
    {
        return Err(refused(format!(
            "`gcloud {path}` grants to allUsers or allAuthenticatedUsers"
        )));
    }
    let public_acl = lower.iter().any(|a| {
        let value = a.rsplit('=').next().unwrap_or(a);
        matches!(
            value,
            "publicread" | "publicreadwrite" | "authenticatedread"
        )
    });
    if public_acl {
        return Err(refused(format!("`gcloud {path}` sets a public ACL")));
    }
    let network = path.starts_with("compute firewall-rules")
        || path == "sql instances patch"
        || path == "container clusters update";
    if network && opens_to_world(&lower) {
        return Err(refused(format!(
            "`gcloud {path}` opens a firewall rule to the whole internet"
        )));
    }
    Ok(())
}

fn az(command: &Command, path: &str) -> Result<(), Violation> {
    let opened = |name: &str, closed: &[&str]| {
        option_values(command, name)
            .iter()
            .any(|v| !closed.iter().any(|c| v.eq_ignore_ascii_case(c)))
    };
    if opened("--public-access", &["off", "none"])
        || opened("--allow-blob-public-access", &["false"])
        || opened("--public-network-access", &["disabled"])
        || opened("--default-action", &["deny"])
    {
        return Err(refused(format!("`az {path}` opens public access")));
    }
    if path == "aks update"
        && option_values(command, "--api-server-authorized-ip-ranges")
            .iter()
            .any(|v| v.trim().is_empty())
    {
        return Err(refused(format!(
            "`az {path}` removes the API server's authorized ranges"
        )));
    }
    let lower = decoded_lower(command);
    if matches!(
        path,
        "aks update" | "network nsg rule create" | "network nsg rule update"
    ) && opens_to_world(&lower)
    {
        return Err(refused(format!("`az {path}` opens to the whole internet")));
    }
    let allows = option_values(command, "--access")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("allow"));
    let world = ["--source-address-prefixes", "--source-address-prefix"]
        .iter()
        .flat_map(|o| option_values(command, o))
        .any(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "*" | "0.0.0.0/0" | "internet" | "any"
            )
        });
    if allows && world {
        return Err(refused(format!(
            "`az {path}` allows traffic from the whole internet"
        )));
    }
    Ok(())
}
