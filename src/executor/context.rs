//! Per-account execution context: which environment (AWS profile and region,
//! later Azure subscription and GCP project) a step runs with.
//!
//! An account with no mapping is refused unless a default was configured
//! explicitly: falling back to ambient credentials is how the wrong account gets changed.

use crate::error::{Error, Result};
use crate::model::{Cloud, Target};
use crate::planner::Step;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// The environment variable naming the AWS profile.
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The environment variable naming the AWS region (SDKs and CLI v2).
pub const AWS_REGION: &str = "AWS_REGION";
/// The environment variable naming the AWS region (CLI v1 and older SDKs).
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";

/// Where AWS findings for the pseudo-region `global` (IAM, CloudFront...) are fixed.
const GLOBAL_AWS_REGION: &str = "us-east-1";

/// Maps accounts to the environment their commands run with.
///
/// Profiles are names in the operator's AWS config, not secrets, so `Debug`
/// shows them. Azure and GCP targets are refused for now; their subscription
/// and project maps will be added as fields here (the struct is
/// `#[non_exhaustive]` and built through methods only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextMap {
    aws_profiles: HashMap<String, String>,
    default_aws_profile: Option<String>,
}

/// One `ACCOUNT=PROFILE` pair, as written in configuration. `*=PROFILE` is the
/// explicit default for unmapped accounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsProfileMapping {
    /// The 12-digit AWS account id, or `None` for the `*` default.
    pub account: Option<String>,
    /// The profile name in the AWS config.
    pub profile: String,
}

impl FromStr for AwsProfileMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (account, profile) = s
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("expected ACCOUNT=PROFILE, got {s:?}")))?;
        let (account, profile) = (account.trim(), profile.trim());
        let valid_profile = !profile.is_empty()
            && profile
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '=' | ',' | '\'' | '"'));
        if !valid_profile {
            return Err(Error::Config(format!(
                "invalid AWS profile name {profile:?}"
            )));
        }
        let account = match account {
            "*" => None,
            a if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_owned()),
            a => {
                return Err(Error::Config(format!(
                    "invalid AWS account id {a:?} (expected 12 digits or `*`)"
                )));
            }
        };
        Ok(AwsProfileMapping {
            account,
            profile: profile.to_owned(),
        })
    }
}

impl ContextMap {
    /// An empty map: every account is refused.
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

    /// Checks that `target` has a mapped context, without building the
    /// environment (what [`resolve`](Self::resolve) would refuse, this refuses).
    pub fn check(&self, target: &Target) -> Result<()> {
        match target.cloud {
            Cloud::Aws if self.aws_profile(target.account_id.as_deref()).is_some() => Ok(()),
            _ => Err(unmapped(target)),
        }
    }

    /// The environment a step must run with for `target`, or
    /// [`Error::UnmappedAccount`] when no context is mapped.
    ///
    /// For AWS: `AWS_PROFILE`, plus `AWS_REGION` and `AWS_DEFAULT_REGION` from
    /// the target's region (`global` means `us-east-1`) unless the command
    /// names its own `--region`, which then wins and no region is set.
    pub fn resolve(&self, step: &Step, target: &Target) -> Result<BTreeMap<String, String>> {
        let account = target.account_id.as_deref();
        match target.cloud {
            Cloud::Aws => {
                let profile = self.aws_profile(account).ok_or_else(|| unmapped(target))?;
                let mut env = BTreeMap::new();
                env.insert(AWS_PROFILE.to_owned(), profile.to_owned());
                let own_region = step.command.option_value("--region").is_some();
                if let (Some(region), false) = (target.region.as_deref(), own_region) {
                    let region = if region.eq_ignore_ascii_case("global") {
                        GLOBAL_AWS_REGION
                    } else {
                        region
                    };
                    env.insert(AWS_REGION.to_owned(), region.to_owned());
                    env.insert(AWS_DEFAULT_REGION.to_owned(), region.to_owned());
                }
                Ok(env)
            }
            _ => Err(unmapped(target)),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Command;

    fn step(args: &[&str]) -> Step {
        Step::new(Command::new("aws", args.iter().copied()))
    }

    fn aws(account: Option<&str>, region: Option<&str>) -> Target {
        let t = Target::new(Cloud::Aws, account.map(str::to_owned));
        match region {
            Some(r) => t.with_region(r),
            None => t,
        }
    }

    #[test]
    fn maps_account_to_profile_and_region() {
        let map = ContextMap::new().with_aws_profile("123456789012", "prod");
        let env = map
            .resolve(
                &step(&["s3", "ls"]),
                &aws(Some("123456789012"), Some("eu-west-1")),
            )
            .unwrap();
        assert_eq!(env["AWS_PROFILE"], "prod");
        assert_eq!(env["AWS_REGION"], "eu-west-1");
        assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");
        let env = map
            .resolve(&step(&["iam"]), &aws(Some("123456789012"), Some("global")))
            .unwrap();
        assert_eq!(env["AWS_REGION"], "us-east-1");
        let env = map
            .resolve(
                &step(&["ec2", "--region", "ap-south-1"]),
                &aws(Some("123456789012"), Some("eu-west-1")),
            )
            .unwrap();
        assert!(!env.contains_key("AWS_REGION"));
        assert!(!env.contains_key("AWS_DEFAULT_REGION"));
    }

    #[test]
    fn unmapped_accounts_are_refused_unless_default() {
        let map = ContextMap::new().with_aws_profile("123456789012", "prod");
        for target in [aws(Some("210987654321"), None), aws(None, None)] {
            let err = map.resolve(&step(&["s3"]), &target).unwrap_err();
            assert!(matches!(err, Error::UnmappedAccount { .. }), "{err}");
        }
        let map = map.with_default_aws_profile("fallback");
        let env = map.resolve(&step(&["s3"]), &aws(None, None)).unwrap();
        assert_eq!(env["AWS_PROFILE"], "fallback");
        let azure = Target::new(Cloud::Azure, Some("sub".to_owned()));
        assert!(matches!(
            map.resolve(&step(&["s3"]), &azure),
            Err(Error::UnmappedAccount { .. })
        ));
    }

    #[test]
    fn parses_profile_lists() {
        let map =
            ContextMap::parse_aws_profiles(" 123456789012=default, 210987654321=prod ,").unwrap();
        assert_eq!(map.aws_profile(Some("210987654321")), Some("prod"));
        assert_eq!(map.aws_profile(Some("000000000000")), None);
        let map = ContextMap::parse_aws_profiles("*=ops").unwrap();
        assert_eq!(map.aws_profile(Some("000000000000")), Some("ops"));
        for bad in [
            "123=prod",
            "123456789012",
            "123456789012=",
            "123456789012=a b",
        ] {
            assert!(ContextMap::parse_aws_profiles(bad).is_err(), "{bad}");
        }
    }
}
