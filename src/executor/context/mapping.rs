//! The `ACCOUNT=PROFILE`, `SUBSCRIPTION=CONFIG_DIR` and `PROJECT=CONFIG_DIR`
//! pairs of configuration, parsed and checked.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{AzureContext, GcpContext};

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

/// One `SUBSCRIPTION[=AZURE_CONFIG_DIR]` mapping, as written in configuration
/// (the worker's `--azure-subscription`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureSubscriptionMapping {
    /// The subscription id (a GUID).
    pub subscription: String,
    /// How `az` runs for it.
    pub context: AzureContext,
}

impl FromStr for AzureSubscriptionMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (id, dir) = split_mapping(s);
        if !is_guid(id) {
            return Err(Error::Config(format!(
                "invalid Azure subscription id {id:?} (expected a GUID)"
            )));
        }
        let mut context = AzureContext::new();
        if let Some(dir) = dir {
            context = context.with_config_dir(config_dir(dir, "AZURE_CONFIG_DIR")?);
        }
        Ok(AzureSubscriptionMapping {
            subscription: id.to_ascii_lowercase(),
            context,
        })
    }
}

/// One `PROJECT[=CLOUDSDK_CONFIG]` mapping, as written in configuration (the
/// worker's `--gcp-project`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcpProjectMapping {
    /// The project id.
    pub project: String,
    /// How `gcloud` runs for it.
    pub context: GcpContext,
}

impl FromStr for GcpProjectMapping {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (id, dir) = split_mapping(s);
        if !is_project_id(id) {
            return Err(Error::Config(format!(
                "invalid GCP project id {id:?} (6 to 30 lower-case letters, digits and \
                 hyphens, starting with a letter)"
            )));
        }
        let mut context = GcpContext::new();
        if let Some(dir) = dir {
            context = context.with_config_dir(config_dir(dir, "CLOUDSDK_CONFIG")?);
        }
        Ok(GcpProjectMapping {
            project: id.to_owned(),
            context,
        })
    }
}

fn split_mapping(s: &str) -> (&str, Option<&str>) {
    match s.split_once('=') {
        Some((id, dir)) => (id.trim(), Some(dir.trim())),
        None => (s.trim(), None),
    }
}

fn config_dir(dir: &str, what: &str) -> Result<PathBuf> {
    if dir.is_empty() || !Path::new(dir).is_absolute() {
        return Err(Error::Config(format!(
            "{what} must be an absolute directory path, got {dir:?}"
        )));
    }
    Ok(PathBuf::from(dir))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_guid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A GCP project id: 6–30 characters, lower-case letters, digits and hyphens,
/// starting with a letter, not ending with a hyphen. (Legacy domain-scoped ids
/// `example.com:project` are accepted too.)
fn is_project_id(id: &str) -> bool {
    let name = id.rsplit_once(':').map_or(id, |(_, name)| name);
    (6..=30).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.')
        })
}
