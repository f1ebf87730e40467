//! Per-target execution context: which environment and which extra options
//! a step runs with — the AWS profile and region for an AWS account, the
//! subscription (and `az` configuration directory) for an Azure subscription,
//! the project (and `gcloud` configuration directory) for a GCP project.
//!
//! A target with no mapping is refused. For AWS a default profile can be
//! configured explicitly; falling back to ambient credentials is how the wrong
//! account gets changed. Azure subscriptions and GCP projects have no default:
//! each one a worker may change is named.

mod fields;
mod mapping;
#[cfg(test)]
mod tests;

pub use mapping::{AwsProfileMapping, AzureSubscriptionMapping, GcpProjectMapping};

use crate::error::{Error, Result};
use crate::model::{Cloud, Target};
use crate::plan::Step;
use crate::plan::execution::Env;
use compact_str::CompactString;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Maps keyed by configuration (account ids, profiles), not by message
/// content: a fast hasher is enough.
type FastMap<K, V> = foldhash::HashMap<K, V>;

/// Most distinct (profile, region) environments a thread keeps for reuse;
/// past it the cache starts over (regions come from findings, so the set is open).
const ENV_CACHE_LIMIT: usize = 1024;

/// The environment variable naming the AWS profile.
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The environment variable naming the AWS region (SDKs and CLI v2).
pub const AWS_REGION: &str = "AWS_REGION";
/// The environment variable naming the AWS region (CLI v1 and older SDKs).
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// The environment variable naming the `az` configuration directory (its
/// logins and default subscription).
pub const AZURE_CONFIG_DIR: &str = "AZURE_CONFIG_DIR";
/// The environment variable setting `gcloud`'s `core/project` property.
pub const CLOUDSDK_CORE_PROJECT: &str = "CLOUDSDK_CORE_PROJECT";
/// The environment variable naming the `gcloud` configuration directory.
pub const CLOUDSDK_CONFIG: &str = "CLOUDSDK_CONFIG";

/// Where AWS findings for the pseudo-region `global` (IAM, CloudFront...) are fixed.
const GLOBAL_AWS_REGION: &str = "us-east-1";

/// `az` command groups that act on the tenant or the CLI itself and do not
/// take `--subscription`: the option is not added to them.
const AZ_TENANT_LEVEL: &[&str] = &[
    "ad",
    "bicep",
    "config",
    "extension",
    "feedback",
    "find",
    "login",
    "logout",
    "upgrade",
    "version",
];

/// How `az` runs for one Azure subscription.
///
/// By default `--subscription <id>` is added to every command that does not
/// name it (tenant-level groups such as `az ad` excepted); a configuration
/// directory (`AZURE_CONFIG_DIR`) selects which login the command uses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureContext {
    /// `AZURE_CONFIG_DIR` for the command, if set.
    pub config_dir: Option<PathBuf>,
    /// Whether `--subscription <id>` is added to commands.
    pub subscription_flag: bool,
}

impl Default for AzureContext {
    fn default() -> Self {
        AzureContext {
            config_dir: None,
            subscription_flag: true,
        }
    }
}

impl AzureContext {
    /// Adds `--subscription <id>`; uses the ambient `az` configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `az` with `AZURE_CONFIG_DIR=dir` (a directory holding the login
    /// for this subscription).
    pub fn with_config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// Does not add `--subscription`: the configuration directory's default
    /// subscription must be the mapped one.
    pub fn without_subscription_flag(mut self) -> Self {
        self.subscription_flag = false;
        self
    }
}

/// How `gcloud` runs for one GCP project.
///
/// `CLOUDSDK_CORE_PROJECT=<id>` is always set, and by default `--project <id>`
/// is added to commands that do not name it; a configuration directory
/// (`CLOUDSDK_CONFIG`) selects which credentials the command uses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcpContext {
    /// `CLOUDSDK_CONFIG` for the command, if set.
    pub config_dir: Option<PathBuf>,
    /// Whether `--project <id>` is added to commands.
    pub project_flag: bool,
}

impl Default for GcpContext {
    fn default() -> Self {
        GcpContext {
            config_dir: None,
            project_flag: true,
        }
    }
}

impl GcpContext {
    /// Adds `--project <id>` and sets `CLOUDSDK_CORE_PROJECT`; uses the
    /// ambient `gcloud` configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `gcloud` with `CLOUDSDK_CONFIG=dir`.
    pub fn with_config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config_dir = Some(dir.into());
        self
    }

    /// Does not add `--project` (`CLOUDSDK_CORE_PROJECT` is still set).
    pub fn without_project_flag(mut self) -> Self {
        self.project_flag = false;
        self
    }
}

/// What a step runs with: environment variables to set, and options to add
/// at the end of its argv (before a `--`, if it has one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecContext {
    /// Variables set in the child's environment (profile, region, project...).
    pub env: Env,
    /// Options added to the command (`--subscription <id>`, `--project <id>`).
    pub extra_args: Vec<String>,
}

impl ExecContext {
    /// The argv to run: the command's, with [`extra_args`](Self::extra_args)
    /// inserted before a `--` separator or at the end.
    pub fn argv(&self, command: &crate::plan::Command) -> Vec<String> {
        let argv = command.argv();
        let mut out = Vec::with_capacity(argv.len() + self.extra_args.len());
        let cut = argv
            .iter()
            .skip(1)
            .position(|a| a == "--")
            .map_or(argv.len(), |i| i + 1);
        let (before, after) = argv.split_at_checked(cut).unwrap_or((argv, &[]));
        out.extend(before.iter().map(|a| a.to_string()));
        out.extend(self.extra_args.iter().cloned());
        out.extend(after.iter().map(|a| a.to_string()));
        out
    }
}

/// Maps targets (AWS accounts, Azure subscriptions, GCP projects) to the
/// context their commands run with.
///
/// Profiles, subscription ids, project ids and configuration paths are not
/// secrets, so `Debug` shows them. Built through methods only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextMap {
    aws_profiles: FastMap<String, String>,
    default_aws_profile: Option<String>,
    /// Keyed by the lower-case subscription id (GUIDs compare case-insensitively).
    azure: FastMap<String, AzureContext>,
    gcp: FastMap<String, GcpContext>,
}

/// The AWS environment for `profile` and `region`, built once per thread.
///
/// An environment depends on nothing but its profile and region, so each
/// worker thread keeps the ones it built: most steps share a handful, and
/// reusing one takes no lock and touches no reference count another thread
/// is also updating.
fn aws_env(profile: &str, region: Option<&str>) -> Env {
    thread_local! {
        static BUILT: std::cell::RefCell<FastMap<CompactString, Env>> =
            std::cell::RefCell::new(FastMap::default());
    }
    let mut key = CompactString::with_capacity(profile.len() + 1 + region.map_or(0, str::len));
    key.push_str(profile);
    if let Some(region) = region {
        key.push('\0');
        key.push_str(region);
    }
    BUILT.with(|built| {
        let mut built = built.borrow_mut();
        if let Some(env) = built.get(key.as_str()) {
            return Arc::clone(env);
        }
        let mut env = BTreeMap::new();
        env.insert(AWS_PROFILE.to_owned(), profile.to_owned());
        if let Some(region) = region {
            env.insert(AWS_REGION.to_owned(), region.to_owned());
            env.insert(AWS_DEFAULT_REGION.to_owned(), region.to_owned());
        }
        let env = Arc::new(env);
        if built.len() >= ENV_CACHE_LIMIT {
            built.clear();
        }
        built.insert(key, Arc::clone(&env));
        env
    })
}

/// The cloud a known CLI acts on.
fn program_cloud(program: &str) -> Option<Cloud> {
    match program {
        "aws" => Some(Cloud::Aws),
        "az" => Some(Cloud::Azure),
        "gcloud" | "gsutil" => Some(Cloud::Gcp),
        _ => None,
    }
}

impl ContextMap {
    /// An empty map: every target is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs commands for AWS `account` with `profile`.
    pub fn with_aws_profile(
        mut self,
        account: impl Into<String>,
        profile: impl Into<String>,
    ) -> Self {
        self.aws_profiles.insert(account.into(), profile.into());
        self
    }

    /// Runs commands for unmapped AWS accounts (and AWS targets without an
    /// account) with `profile`. An explicit opt-in: without it they are refused.
    pub fn with_default_aws_profile(mut self, profile: impl Into<String>) -> Self {
        self.default_aws_profile = Some(profile.into());
        self
    }

    /// Adds one parsed mapping.
    pub fn with_aws_mapping(self, mapping: AwsProfileMapping) -> Self {
        match mapping.account {
            Some(account) => self.with_aws_profile(account, mapping.profile),
            None => self.with_default_aws_profile(mapping.profile),
        }
    }

    /// Runs `az` commands for Azure `subscription` (a GUID, compared
    /// case-insensitively) as `context` says.
    pub fn with_azure_subscription(
        mut self,
        subscription: impl Into<String>,
        context: AzureContext,
    ) -> Self {
        self.azure
            .insert(subscription.into().to_ascii_lowercase(), context);
        self
    }

    /// Adds one parsed Azure mapping.
    pub fn with_azure_mapping(self, mapping: AzureSubscriptionMapping) -> Self {
        self.with_azure_subscription(mapping.subscription, mapping.context)
    }

    /// Runs `gcloud` commands for GCP `project` as `context` says.
    pub fn with_gcp_project(mut self, project: impl Into<String>, context: GcpContext) -> Self {
        self.gcp.insert(project.into(), context);
        self
    }

    /// Adds one parsed GCP mapping.
    pub fn with_gcp_mapping(self, mapping: GcpProjectMapping) -> Self {
        self.with_gcp_project(mapping.project, mapping.context)
    }

    /// Parses a comma-separated list of `ACCOUNT=PROFILE` pairs
    /// (`"123456789012=default,210987654321=prod"`); `*=PROFILE` sets the
    /// default for unmapped accounts. Blank entries are ignored.
    pub fn parse_aws_profiles(list: &str) -> Result<Self> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .try_fold(Self::new(), |map, entry| {
                Ok(map.with_aws_mapping(entry.parse()?))
            })
    }

    /// The profile for AWS `account`, falling back to the configured default.
    pub fn aws_profile(&self, account: Option<&str>) -> Option<&str> {
        account
            .and_then(|a| self.aws_profiles.get(a))
            .or(self.default_aws_profile.as_ref())
            .map(String::as_str)
    }

    /// The context for Azure `subscription`, if mapped.
    pub fn azure_subscription(&self, subscription: &str) -> Option<&AzureContext> {
        self.azure
            .get(subscription)
            .or_else(|| self.azure.get(&subscription.to_ascii_lowercase()))
    }

    /// The CLIs the mapped targets' commands run with, in a fixed order:
    /// `aws` for mapped accounts or a default profile, `az` for subscriptions,
    /// `gcloud` for projects. A worker passes them to
    /// [`ProcessExecutor::require_programs`](crate::executor::ProcessExecutor::require_programs)
    /// at start-up.
    pub fn clis(&self) -> Vec<&'static str> {
        let aws = !self.aws_profiles.is_empty() || self.default_aws_profile.is_some();
        [
            ("aws", aws),
            ("az", !self.azure.is_empty()),
            ("gcloud", !self.gcp.is_empty()),
        ]
        .into_iter()
        .filter_map(|(cli, mapped)| mapped.then_some(cli))
        .collect()
    }

    /// The context for GCP `project`, if mapped.
    pub fn gcp_project(&self, project: &str) -> Option<&GcpContext> {
        self.gcp.get(project)
    }

    /// Checks that `step` may run for `target` without building its context:
    /// what [`resolve`](Self::resolve) would refuse, this refuses.
    pub fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.resolve_with(step, target, false).map(drop)
    }

    /// The context `step` must run with for `target`.
    ///
    /// * A known CLI must act on the target's cloud (`aws` on AWS, `az` on
    ///   Azure, `gcloud` on GCP): anything else is refused.
    /// * **AWS:** `AWS_PROFILE`, plus `AWS_REGION` and `AWS_DEFAULT_REGION`
    ///   from the target's region (`global` means `us-east-1`) unless the
    ///   command names its own `--region`, which then wins and no region is set.
    /// * **Azure:** the subscription must be mapped. `--subscription <id>` is
    ///   added unless the context says otherwise or the command group is
    ///   tenant-level (`az ad`...); `AZURE_CONFIG_DIR` when configured. A
    ///   command naming another subscription is refused.
    /// * **GCP:** the project must be mapped. `CLOUDSDK_CORE_PROJECT`, and
    ///   `--project <id>` unless the context says otherwise;
    ///   `CLOUDSDK_CONFIG` when configured. A command naming another project
    ///   is refused.
    ///
    /// An unmapped target is [`Error::UnmappedAccount`]; a command acting
    /// outside its target is [`Error::UnsafeCommand`].
    pub fn resolve(&self, step: &Step, target: &Target) -> Result<ExecContext> {
        self.resolve_with(step, target, true)
            .map(Option::unwrap_or_default)
    }

    /// Checks `step` against `target`, and builds its context if `build`
    /// (`None` when not asked: a check allocates nothing).
    fn resolve_with(
        &self,
        step: &Step,
        target: &Target,
        build: bool,
    ) -> Result<Option<ExecContext>> {
        let command = &step.command;
        let program = command.program();
        fields::check(target)?;
        if let Some(cloud) = program_cloud(program).filter(|c| *c != target.cloud) {
            return Err(Error::refused(
                crate::Refusal::ContextMismatch,
                format!(
                    "`{program}` acts on {cloud}, but the finding is in {}",
                    target.cloud
                ),
            ));
        }
        let ctx = match target.cloud {
            Cloud::Aws => {
                let account = target.account_id.as_deref();
                let profile = self.aws_profile(account).ok_or_else(|| unmapped(target))?;
                if !build {
                    return Ok(None);
                }
                let own_region = command.option_value("--region").is_some();
                let region = target.region.as_deref().filter(|_| !own_region).map(|r| {
                    if r.eq_ignore_ascii_case("global") {
                        GLOBAL_AWS_REGION
                    } else {
                        r
                    }
                });
                ExecContext {
                    env: aws_env(profile, region),
                    extra_args: Vec::new(),
                }
            }
            Cloud::Azure => {
                let subscription = target.account_id.as_deref().unwrap_or_default();
                let azure = self
                    .azure_subscription(subscription)
                    .ok_or_else(|| unmapped(target))?;
                let named = command.option_value("--subscription");
                if let Some(named) = named.filter(|n| !n.eq_ignore_ascii_case(subscription)) {
                    return Err(Error::refused(
                        crate::Refusal::ContextMismatch,
                        format!(
                            "`{program}` names subscription {named:?}, but the finding is in \
                         subscription {subscription}"
                        ),
                    ));
                }
                if !build {
                    return Ok(None);
                }
                let mut ctx = ExecContext::default();
                if let Some(dir) = &azure.config_dir {
                    let env =
                        BTreeMap::from([(AZURE_CONFIG_DIR.to_owned(), dir.display().to_string())]);
                    ctx.env = Arc::new(env);
                }
                let tenant_level = command
                    .args()
                    .first()
                    .is_some_and(|group| AZ_TENANT_LEVEL.contains(&group.as_str()));
                if program == "az" && azure.subscription_flag && named.is_none() && !tenant_level {
                    ctx.extra_args = vec!["--subscription".to_owned(), subscription.to_owned()];
                }
                ctx
            }
            Cloud::Gcp => {
                let project = target.account_id.as_deref().unwrap_or_default();
                let gcp = self.gcp_project(project).ok_or_else(|| unmapped(target))?;
                let named = command.option_value("--project");
                if let Some(named) = named.filter(|n| *n != project) {
                    return Err(Error::refused(
                        crate::Refusal::ContextMismatch,
                        format!(
                            "`{program}` names project {named:?}, but the finding is in project \
                         {project}"
                        ),
                    ));
                }
                if !build {
                    return Ok(None);
                }
                let mut env = BTreeMap::new();
                env.insert(CLOUDSDK_CORE_PROJECT.to_owned(), project.to_owned());
                if let Some(dir) = &gcp.config_dir {
                    env.insert(CLOUDSDK_CONFIG.to_owned(), dir.display().to_string());
                }
                let mut extra_args = Vec::new();
                if program == "gcloud" && gcp.project_flag && named.is_none() {
                    extra_args = vec!["--project".to_owned(), project.to_owned()];
                }
                ExecContext {
                    env: Arc::new(env),
                    extra_args,
                }
            }
            _ => return Err(unmapped(target)),
        };
        Ok(Some(ctx))
    }
}

fn unmapped(target: &Target) -> Error {
    Error::UnmappedAccount {
        cloud: target.cloud.to_string(),
        account: target
            .account_id
            .clone()
            .unwrap_or_else(|| "<none>".to_owned()),
    }
}
