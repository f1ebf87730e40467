//! Loop prevention: the [`OwnIdentities`] stage skips (reason `own_change`)
//! every CloudTrail event the worker caused itself — its remediation makes
//! API calls, CloudTrail records them, and a rule that reacts to them would
//! remediate its own remediation — for every rule, without listing the
//! worker's principals in each rule's `ignore-principals`.
//!
//! Identities are ARNs, configured or discovered at start-up with
//! [`discover`] (`aws sts get-caller-identity` per profile). A role
//! (`arn:aws:iam::111122223333:role/ops/remediator`) matches its sessions
//! (`arn:aws:sts::111122223333:assumed-role/remediator/SESSION`, and the
//! session issuer's ARN, path included); an assumed-role ARN — what
//! discovery returns for a role — stands for its role, whatever the session
//! name (each credential refresh may bring a new one); a user or the root
//! matches itself. Partition and account must be the same: the same role
//! name in another account is someone else.

use super::exclude::principals;
use crate::error::{Error, Result};
use crate::model::Event;
use crate::pipeline::{Stage, StageDecision};
use crate::source::Delivery;
use async_trait::async_trait;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One of the worker's identities, normalized for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Identity {
    /// A role (from a role ARN, with or without a path, or an assumed-role ARN).
    Role {
        partition: String,
        account: String,
        name: String,
    },
    /// Any other principal, matched exactly (users, the root).
    Exact(String),
}

/// `arn:PARTITION:SERVICE::ACCOUNT:RESOURCE` split, or `None`.
fn split_arn(arn: &str) -> Option<(&str, &str, &str, &str)> {
    let (partition, service, _region, account, resource) = crate::model::split_arn(arn)?;
    Some((partition, service, account, resource))
}

impl Identity {
    fn parse(arn: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("identity {arn:?}: {why}"));
        let (partition, service, account, resource) = split_arn(arn.trim())
            .ok_or_else(|| bad("not an ARN (arn:aws:iam::ACCOUNT:role/NAME)"))?;
        if account.is_empty() || account.contains('*') {
            return Err(bad("name one account, without wildcards"));
        }
        let role = |name: &str| Identity::Role {
            partition: partition.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        };
        match (service, resource.split_once('/')) {
            ("iam", Some(("role", path_name))) => {
                let name = path_name.rsplit('/').next().unwrap_or(path_name);
                Ok(role(name))
            }
            ("sts", Some(("assumed-role", role_session))) => {
                let name = role_session.split('/').next().unwrap_or(role_session);
                Ok(role(name))
            }
            ("iam" | "sts", _) => Ok(Identity::Exact(arn.trim().to_owned())),
            _ => Err(bad("not an IAM or STS principal")),
        }
    }

    fn matches(&self, caller: &str) -> bool {
        match self {
            Identity::Exact(arn) => arn == caller,
            Identity::Role {
                partition,
                account,
                name,
            } => {
                let Some((p, service, a, resource)) = split_arn(caller) else {
                    return false;
                };
                if p != partition || a != account {
                    return false;
                }
                match (service, resource.split_once('/')) {
                    ("iam", Some(("role", path_name))) => {
                        path_name.rsplit('/').next() == Some(name.as_str())
                    }
                    ("sts", Some(("assumed-role", rest))) => rest.split('/').next() == Some(name),
                    _ => false,
                }
            }
        }
    }
}

/// The loop-prevention stage: skips (`own_change`) every event whose caller
/// is one of the worker's identities. A role matches its assumed-role
/// sessions and its ARN with any path; an assumed-role ARN stands for its
/// role whatever the session; users and the root match exactly; partition
/// and account must be the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnIdentities {
    identities: Vec<(String, Identity)>,
}

impl OwnIdentities {
    /// No identities yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the worker's identity `arn` (a role, assumed-role, user or root
    /// ARN); refused when it is not one.
    pub fn identity(mut self, arn: &str) -> Result<Self> {
        let parsed = Identity::parse(arn)?;
        if !self.identities.iter().any(|(_, i)| *i == parsed) {
            self.identities.push((arn.trim().to_owned(), parsed));
        }
        Ok(self)
    }

    /// Whether no identity is known.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The identity (as given) that caused `event`, if one of them did.
    pub fn caused_by(&self, event: &Event) -> Option<(&str, String)> {
        let callers = principals(event);
        callers.into_iter().find_map(|caller| {
            self.identities
                .iter()
                .find(|(_, i)| i.matches(&caller))
                .map(|(given, _)| (given.as_str(), caller))
        })
    }
}

#[async_trait]
impl Stage for OwnIdentities {
    fn name(&self) -> &str {
        "own-identities"
    }

    async fn before_plan(&self, event: &Event, _delivery: &Delivery) -> StageDecision {
        match self.caused_by(event) {
            Some((identity, caller)) => StageDecision::skip(
                "own_change",
                format!("caused by the worker's own identity {identity} (caller {caller})"),
            ),
            None => StageDecision::Proceed,
        }
    }
}

/// `identities:` in the guardrails file: the worker's own ARNs, and the
/// profiles whose identities the worker discovers at start-up.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IdentitiesFile {
    /// Role, assumed-role, user or root ARNs.
    #[serde(default)]
    pub arns: Vec<String>,
    /// Profiles to ask `sts get-caller-identity` at start-up (`""`: the
    /// default chain).
    #[serde(default)]
    pub discover_profiles: Vec<String>,
}

impl IdentitiesFile {
    /// The stage for the configured ARNs, or the mistake with its path.
    pub fn compile(&self) -> Result<OwnIdentities> {
        let mut own = OwnIdentities::new();
        for (i, arn) in self.arns.iter().enumerate() {
            own = own.identity(arn).map_err(|e| {
                Error::Config(format!("guardrails: identities.arns[{i}]: {}", shown(e)))
            })?;
        }
        Ok(own)
    }
}

fn shown(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// Where [`discover`] finds the aws CLI and its configuration: the only
/// variables its child gets (its environment is cleared).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryEnv {
    /// `PATH` (absolute entries are searched for `aws`).
    pub path: String,
    /// `HOME` (where the CLI finds `~/.aws` when no files are named).
    pub home: Option<PathBuf>,
    /// `AWS_CONFIG_FILE`.
    pub config_file: Option<PathBuf>,
    /// `AWS_SHARED_CREDENTIALS_FILE`.
    pub credentials_file: Option<PathBuf>,
    /// `AWS_ENDPOINT_URL` (an emulator).
    pub endpoint_url: Option<String>,
}

impl DiscoveryEnv {
    /// The worker's own `PATH`, `HOME`, `AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_ENDPOINT_URL`; nothing else
    /// (no access keys: each profile brings its own credentials).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        DiscoveryEnv {
            path: var("PATH").unwrap_or_default(),
            home: var("HOME").map(PathBuf::from),
            config_file: var("AWS_CONFIG_FILE").map(PathBuf::from),
            credentials_file: var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from),
            endpoint_url: var("AWS_ENDPOINT_URL"),
        }
    }

    /// Sets `PATH`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`.
    pub fn with_files(
        mut self,
        config: impl Into<PathBuf>,
        credentials: impl Into<PathBuf>,
    ) -> Self {
        self.config_file = Some(config.into());
        self.credentials_file = Some(credentials.into());
        self
    }

    /// Sets `AWS_ENDPOINT_URL`.
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    fn aws(&self) -> Result<PathBuf> {
        self.path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| PathBuf::from(d).join("aws"))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::Config(format!(
                    "identity discovery: `aws` not found on PATH {:?}",
                    self.path
                ))
            })
    }
}

/// `sts get-caller-identity`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CallerIdentity {
    arn: String,
}

/// The `Arn` of `aws sts get-caller-identity --output json`'s output.
pub fn parse_caller_identity(stdout: &[u8]) -> Result<String> {
    let id: CallerIdentity = serde_json::from_slice(stdout).map_err(|e| {
        Error::Config(format!(
            "identity discovery: unreadable get-caller-identity output: {e}"
        ))
    })?;
    Identity::parse(&id.arn)?;
    Ok(id.arn)
}

/// Asks `aws sts get-caller-identity --output json` for each profile (`""`:
/// the default chain) and returns the ARNs, in order. The child runs with a
/// cleared environment holding only what `env` names and `AWS_PROFILE`, in
/// its own process group, killed after 60 s; its output is never logged
/// (an error shows a redacted tail of its stderr).
pub async fn discover(profiles: &[String], env: &DiscoveryEnv) -> Result<Vec<String>> {
    let aws = env.aws()?;
    let mut arns = Vec::with_capacity(profiles.len());
    for profile in profiles {
        let mut cmd = tokio::process::Command::new(&aws);
        cmd.args(["sts", "get-caller-identity", "--output", "json"])
            .env_clear()
            .env("PATH", &env.path)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let optional = [
            ("HOME", env.home.as_ref().map(|p| p.display().to_string())),
            (
                "AWS_CONFIG_FILE",
                env.config_file.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                env.credentials_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
            ),
            ("AWS_ENDPOINT_URL", env.endpoint_url.clone()),
            (
                "AWS_PROFILE",
                Some(profile.clone()).filter(|p| !p.is_empty()),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        let failed = |why: String| {
            Error::Config(format!("identity discovery for profile {profile:?}: {why}"))
        };
        let output = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| failed("aws sts get-caller-identity took over 60 s".to_owned()))?
            .map_err(|e| failed(format!("cannot run {}: {e}", aws.display())))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(failed(format!(
                "aws sts get-caller-identity failed ({}): {}",
                output.status,
                crate::redact::redact(tail.trim())
            )));
        }
        let arn = parse_caller_identity(&output.stdout).map_err(|e| failed(e.to_string()))?;
        tracing::info!(profile = %profile, identity = %arn, "discovered the worker's own identity");
        arns.push(arn);
    }
    Ok(arns)
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
