//! Per-account execution context: which profile (subscription, project) a step
//! runs with. STUB: the executor helper replaces this file.

use crate::error::{Error, Result};
use crate::model::{Cloud, Target};
use crate::planner::Step;
use std::collections::{BTreeMap, HashMap};

/// Maps accounts to how their commands run.
#[derive(Clone, Debug, Default)]
pub struct ContextMap {
    aws_profiles: HashMap<String, String>,
    default_aws_profile: Option<String>,
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
    /// Runs commands for unmapped AWS accounts with `profile` (explicit opt-in).
    pub fn with_default_aws_profile(mut self, profile: impl Into<String>) -> Self {
        self.default_aws_profile = Some(profile.into());
        self
    }
    /// The environment a step must run with for `target`, or an unmapped-account error.
    pub fn resolve(&self, _step: &Step, target: &Target) -> Result<BTreeMap<String, String>> {
        let account = target.account_id.clone().unwrap_or_else(|| "<none>".into());
        match target.cloud {
            Cloud::Aws => {
                let profile = self
                    .aws_profiles
                    .get(&account)
                    .or(self.default_aws_profile.as_ref())
                    .ok_or_else(|| Error::UnmappedAccount {
                        cloud: "aws".into(),
                        account: account.clone(),
                    })?;
                Ok(BTreeMap::from([(
                    "AWS_PROFILE".to_owned(),
                    profile.clone(),
                )]))
            }
            _ => Err(Error::UnmappedAccount {
                cloud: target.cloud.to_string(),
                account,
            }),
        }
    }
}
