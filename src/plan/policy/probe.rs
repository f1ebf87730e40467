//! Read-only probes for removals that may lift a deny: with the operator's
//! `probe_deny_removal`, a removal whose spec notes "may lift a deny" (detach
//! a policy, delete an inline or bucket policy, delete an NSG or firewall
//! rule; also disabling a firewall rule) is not refused outright; instead the executor first runs a query
//! built here from the removal's own, already checked, values — it fetches
//! what is about to be removed — and the removal runs only if what came back
//! holds no deny. Anything the probe cannot read is treated as a deny (fail
//! closed).
//!
//! Operations without a probe here (leaving a group, replacing a policy
//! version or a bucket policy) stay refused unless the operator allows deny
//! removals outright.

use super::catalog::Operation;
use super::reader::Parsed;
use crate::plan::Command;
use serde_json::Value;

/// A read-only probe of what a removal would remove (see
/// [`CommandPolicy::probe_deny_removal`](super::CommandPolicy::probe_deny_removal)):
/// run [`query`](Self::query), give its standard output to
/// [`judge`](Self::judge), and run the next query it asks for until it says
/// [`NoDeny`](ProbeVerdict::NoDeny) or [`Deny`](ProbeVerdict::Deny).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyProbe(Probe);

/// What a probe fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Probe {
    /// An IAM managed policy: `get-policy`, then its default version.
    ManagedPolicy { arn: String },
    /// A query whose answer holds a policy document at `path` (a JSON
    /// object, or a string holding one).
    Document {
        query: Command,
        path: &'static [&'static str],
    },
    /// An Azure NSG rule: refused if its `access` is `Deny`.
    NsgRule { query: Command },
    /// A GCP firewall rule: refused if it has `denied` entries.
    FirewallRule { query: Command },
}

/// What a probe's answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeVerdict {
    /// Nothing in what is removed denies: the removal may run.
    NoDeny,
    /// What is removed denies (or could not be read): the removal is refused.
    Deny(String),
    /// Ask `Command` next (the managed policy's default version).
    Next(Command),
}

/// The operations a probe exists for.
pub(crate) fn supported(program: &str, path: &str) -> bool {
    matches!(
        (program, path),
        (
            "aws",
            "iam detach-user-policy"
                | "iam detach-role-policy"
                | "iam detach-group-policy"
                | "iam delete-user-policy"
                | "iam delete-role-policy"
                | "iam delete-group-policy"
                | "s3api delete-bucket-policy"
                | "ecr delete-repository-policy"
        ) | ("az", "network nsg rule delete")
            | (
                "gcloud",
                "compute firewall-rules delete" | "compute firewall-rules update"
            )
    )
}

/// Whether `parsed` switches a rule off (`gcloud compute firewall-rules
/// update NAME --disabled`): harmless for an allow rule, a grant for a deny
/// rule, so it is probed too when the operator has probes on.
pub(crate) fn disables(op: &Operation, parsed: &Parsed<'_>) -> bool {
    op.path == "compute firewall-rules update"
        && parsed
            .named("--disabled")
            .any(|p| p.value == Value::Bool(true))
}

/// The probe for a removal read as `parsed`, if its operation has one and
/// its selecting values are all present, each given once.
pub(crate) fn build(command: &Command, op: &Operation, parsed: &Parsed<'_>) -> Option<DenyProbe> {
    build_probe(command, op, parsed).map(DenyProbe)
}

fn build_probe(command: &Command, op: &Operation, parsed: &Parsed<'_>) -> Option<Probe> {
    let one = |name: &str| -> Option<String> {
        let mut values = parsed.named(name);
        let first = values.next()?;
        if values.next().is_some() {
            return None;
        }
        first.value.as_str().map(str::to_owned)
    };
    let aws = |words: &[&str], args: &[(&str, &str)]| -> Option<Command> {
        let mut argv: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        for (option, from) in args {
            argv.push((*option).to_owned());
            argv.push(one(from)?);
        }
        if let Some(region) = one("--region") {
            argv.extend(["--region".to_owned(), region]);
        }
        argv.extend(["--output".to_owned(), "json".to_owned()]);
        Some(Command::new("aws", argv))
    };
    let inline = |kind: &str| -> Option<Probe> {
        let name = format!("--{kind}-name");
        Some(Probe::Document {
            query: aws(
                &["iam", &format!("get-{kind}-policy")],
                &[(&name, &name), ("--policy-name", "--policy-name")],
            )?,
            path: &["PolicyDocument"],
        })
    };
    match (command.program(), op.path.as_str()) {
        ("aws", p) if p.starts_with("iam detach-") => Some(Probe::ManagedPolicy {
            arn: one("--policy-arn")?,
        }),
        ("aws", "iam delete-user-policy") => inline("user"),
        ("aws", "iam delete-role-policy") => inline("role"),
        ("aws", "iam delete-group-policy") => inline("group"),
        ("aws", "s3api delete-bucket-policy") => Some(Probe::Document {
            query: aws(&["s3api", "get-bucket-policy"], &[("--bucket", "--bucket")])?,
            path: &["Policy"],
        }),
        ("aws", "ecr delete-repository-policy") => Some(Probe::Document {
            query: aws(
                &["ecr", "get-repository-policy"],
                &[("--repository-name", "--repository-name")],
            )?,
            path: &["policyText"],
        }),
        ("az", "network nsg rule delete") => {
            let mut argv = vec!["network", "nsg", "rule", "show"]
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            for option in ["--resource-group", "--nsg-name", "--name"] {
                argv.extend([option.to_owned(), one(option)?]);
            }
            argv.extend(["--output".to_owned(), "json".to_owned()]);
            Some(Probe::NsgRule {
                query: Command::new("az", argv),
            })
        }
        ("gcloud", "compute firewall-rules delete" | "compute firewall-rules update") => {
            let [name] = parsed.positionals.as_slice() else {
                return None;
            };
            Some(Probe::FirewallRule {
                query: Command::new(
                    "gcloud",
                    [
                        "compute",
                        "firewall-rules",
                        "describe",
                        name,
                        "--format=json",
                    ],
                ),
            })
        }
        _ => None,
    }
}

impl DenyProbe {
    /// The first (read-only) query to run, in the removal's context.
    pub fn query(&self) -> Command {
        self.0.query()
    }

    /// What the standard output `stdout` of `query` (the last query run)
    /// says.
    pub fn judge(&self, query: &Command, stdout: &str) -> ProbeVerdict {
        self.0.judge(query, stdout)
    }
}

impl Probe {
    fn query(&self) -> Command {
        match self {
            Probe::ManagedPolicy { arn } => Command::new(
                "aws",
                ["iam", "get-policy", "--policy-arn", arn, "--output", "json"],
            ),
            Probe::Document { query, .. }
            | Probe::NsgRule { query }
            | Probe::FirewallRule { query } => query.clone(),
        }
    }

    fn judge(&self, query: &Command, stdout: &str) -> ProbeVerdict {
        let Ok(answer) = serde_json::from_str::<Value>(stdout) else {
            return ProbeVerdict::Deny("the probe's answer is not JSON".into());
        };
        match self {
            Probe::ManagedPolicy { arn } => {
                if query.args().get(1).map(|a| a.as_ref()) == Some("get-policy") {
                    let Some(version) = answer
                        .pointer("/Policy/DefaultVersionId")
                        .and_then(Value::as_str)
                        .filter(|v| is_version_id(v))
                    else {
                        return ProbeVerdict::Deny("no default version in the answer".into());
                    };
                    return ProbeVerdict::Next(Command::new(
                        "aws",
                        [
                            "iam",
                            "get-policy-version",
                            "--policy-arn",
                            arn,
                            "--version-id",
                            version,
                            "--output",
                            "json",
                        ],
                    ));
                }
                document_verdict(answer.pointer("/PolicyVersion/Document"))
            }
            Probe::Document { path, .. } => {
                let mut at = Some(&answer);
                for key in *path {
                    at = at.and_then(|v| v.get(key));
                }
                document_verdict(at)
            }
            Probe::NsgRule { .. } => match answer.get("access").and_then(Value::as_str) {
                Some(a) if a.eq_ignore_ascii_case("allow") => ProbeVerdict::NoDeny,
                Some(a) => ProbeVerdict::Deny(format!("the rule's access is {a}")),
                None => ProbeVerdict::Deny("the answer has no access".into()),
            },
            Probe::FirewallRule { .. } => match answer.get("denied") {
                None | Some(Value::Null) => ProbeVerdict::NoDeny,
                Some(Value::Array(d)) if d.is_empty() => ProbeVerdict::NoDeny,
                Some(_) => ProbeVerdict::Deny("the rule denies traffic".into()),
            },
        }
    }
}

/// `v` followed by digits: an IAM policy version id.
fn is_version_id(v: &str) -> bool {
    v.strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The verdict on a policy document: an object, or a string holding one
/// (plain or URL-encoded, as IAM returns it).
fn document_verdict(document: Option<&Value>) -> ProbeVerdict {
    let parsed;
    let document = match document {
        Some(Value::String(text)) => {
            let decoded = percent_decode(text);
            parsed = serde_json::from_str::<Value>(text)
                .or_else(|_| serde_json::from_str::<Value>(&decoded));
            match &parsed {
                Ok(v) => v,
                Err(_) => return ProbeVerdict::Deny("the policy document is not JSON".into()),
            }
        }
        Some(v @ Value::Object(_)) => v,
        _ => return ProbeVerdict::Deny("the answer holds no policy document".into()),
    };
    let statements: Vec<&Value> = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        None => Vec::new(),
        Some(_) => return ProbeVerdict::Deny("the policy's Statement is malformed".into()),
    };
    for statement in statements {
        match statement.get("Effect").and_then(Value::as_str) {
            Some(e) if e.eq_ignore_ascii_case("allow") => {}
            Some(e) => return ProbeVerdict::Deny(format!("the policy has an {e} statement")),
            None => return ProbeVerdict::Deny("a statement without an Effect".into()),
        }
    }
    ProbeVerdict::NoDeny
}

/// `%XX` escapes decoded (`+` left alone); invalid escapes kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(effects: &[&str]) -> String {
        let statements: Vec<Value> = effects
            .iter()
            .map(|e| serde_json::json!({"Effect": e, "Action": "*", "Resource": "*"}))
            .collect();
        serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
    }

    #[test]
    fn documents_with_a_deny_or_unreadable_are_denies() {
        let allow = Value::String(doc(&["Allow"]));
        assert_eq!(document_verdict(Some(&allow)), ProbeVerdict::NoDeny);
        let deny = Value::String(doc(&["Allow", "Deny"]));
        assert!(matches!(
            document_verdict(Some(&deny)),
            ProbeVerdict::Deny(_)
        ));
        let encoded = Value::String(doc(&["Deny"]).replace('{', "%7B").replace('"', "%22"));
        assert!(matches!(
            document_verdict(Some(&encoded)),
            ProbeVerdict::Deny(_)
        ));
        let single: Value = serde_json::json!({"Statement": {"Effect": "deny"}});
        assert!(matches!(
            document_verdict(Some(&single)),
            ProbeVerdict::Deny(_)
        ));
        let no_effect: Value = serde_json::json!({"Statement": [{"Action": "*"}]});
        assert!(matches!(
            document_verdict(Some(&no_effect)),
            ProbeVerdict::Deny(_)
        ));
        assert!(matches!(document_verdict(None), ProbeVerdict::Deny(_)));
        let garbage = Value::String("%7Bnot".into());
        assert!(matches!(
            document_verdict(Some(&garbage)),
            ProbeVerdict::Deny(_)
        ));
    }

    #[test]
    fn a_managed_policy_is_read_at_its_default_version() {
        let probe = Probe::ManagedPolicy {
            arn: "arn:aws:iam::123456789012:policy/p".into(),
        };
        let first = probe.query();
        let answer = r#"{"Policy": {"DefaultVersionId": "v3"}}"#;
        let ProbeVerdict::Next(next) = probe.judge(&first, answer) else {
            panic!("expected a second query");
        };
        assert!(next.args().iter().any(|a| a == "v3"));
        let bad = r#"{"Policy": {"DefaultVersionId": "v3 --debug"}}"#;
        assert!(matches!(probe.judge(&first, bad), ProbeVerdict::Deny(_)));
        let version = serde_json::json!({"PolicyVersion": {"Document": {"Statement": [
            {"Effect": "Deny", "Action": "*", "Resource": "*"}]}}});
        assert!(matches!(
            probe.judge(&next, &version.to_string()),
            ProbeVerdict::Deny(_)
        ));
    }

    #[test]
    fn rules_deny_by_access_or_denied_entries() {
        let nsg = Probe::NsgRule {
            query: Command::new("az", ["x"]),
        };
        let q = nsg.query();
        assert_eq!(
            nsg.judge(&q, r#"{"access": "Allow"}"#),
            ProbeVerdict::NoDeny
        );
        assert!(matches!(
            nsg.judge(&q, r#"{"access": "Deny"}"#),
            ProbeVerdict::Deny(_)
        ));
        assert!(matches!(nsg.judge(&q, "not json"), ProbeVerdict::Deny(_)));
        let fw = Probe::FirewallRule {
            query: Command::new("gcloud", ["x"]),
        };
        assert_eq!(fw.judge(&q, r#"{"allowed": [{}]}"#), ProbeVerdict::NoDeny);
        assert!(matches!(
            fw.judge(&q, r#"{"denied": [{"IPProtocol": "all"}]}"#),
            ProbeVerdict::Deny(_)
        ));
    }
}
