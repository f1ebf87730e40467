//! The sealed child: what a command's process may see of the worker.
//!
//! A child starts with an empty environment plus an allowlist — `PATH` made
//! of the directories of the CLIs resolved at start-up, locale and time
//! zone, proxy and CA-bundle variables when the worker has them, the
//! operator's own variables ([`ProcessExecutor::with_env_var`]), and its
//! context. Its `HOME`, `TMPDIR` and working directory are one fresh private
//! directory (`0700`), removed when the command ends, holding the step's
//! attached files and a generated CLI configuration: aws
//! `cli_follow_urlparam = false` with no aliases or plugins, gcloud without
//! prompts or usage reporting, az without dynamic extension installs or
//! telemetry. The CLIs' credentials stay where the operator keeps them:
//! `AWS_SHARED_CREDENTIALS_FILE`, `CLOUDSDK_CONFIG` and `AZURE_CONFIG_DIR`
//! point at the operator's files, resolved when the executor is built.
//!
//! [`ProcessExecutor::with_env_var`]: super::ProcessExecutor::with_env_var

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Worker variables a child keeps (when set): locale, time zone, proxies and
/// CA bundles, which the CLIs need to reach their APIs as the worker does.
const PASSED_THROUGH: &[&str] = &[
    "LANG",
    "LANGUAGE",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
];

/// The worker variable listing (comma-separated) more worker variables every
/// command gets, such as `AWS_ENDPOINT_URL`. The operator's choice: never list
/// a secret.
pub const CHILD_ENV: &str = "REMEDIATION_CHILD_ENV";

/// Locale categories passed through.
const LOCALE: &[&str] = &[
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_COLLATE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_MONETARY",
];

/// Settings every child gets: no prompts, no telemetry, no self-updates, no
/// extensions installed on the fly.
const QUIET_CLIS: &[(&str, &str)] = &[
    ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1"),
    ("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true"),
    ("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true"),
    ("CLOUDSDK_SURVEY_DISABLE_PROMPTS", "true"),
    ("AZURE_CORE_COLLECT_TELEMETRY", "false"),
    ("AZURE_CORE_SURVEY_MESSAGE", "false"),
    ("AZURE_CORE_NO_COLOR", "true"),
    ("AZURE_EXTENSION_USE_DYNAMIC_INSTALL", "no"),
    ("AZURE_EXTENSION_RUN_AFTER_DYNAMIC_INSTALL", "false"),
    ("AWS_PAGER", ""),
];

/// The operator's CLI configuration locations, and the programs found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sandbox {
    /// Program name → absolute path, for the programs found.
    programs: BTreeMap<String, PathBuf>,
    /// The search path the programs were resolved on (for error messages).
    searched: String,
    /// The child's `PATH`: the resolved programs' directories.
    path: String,
    /// Variables passed through from the worker.
    passed: Vec<(String, String)>,
    /// The operator's aws config file, read for each aws command.
    aws_config: Option<PathBuf>,
    /// The operator's aws credentials file.
    aws_credentials: Option<PathBuf>,
    /// The operator's gcloud configuration directory.
    gcloud_config: Option<PathBuf>,
    /// The operator's az configuration directory.
    azure_config: Option<PathBuf>,
}

/// Where the worker's own configuration is, from its environment:
/// `AWS_CONFIG_FILE` or `~/.aws/config`, and so on.
fn located(explicit: Option<String>, home: Option<&Path>, default: &str) -> Option<PathBuf> {
    match explicit.filter(|v| !v.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None => home.map(|h| h.join(default)).filter(|p| p.exists()),
    }
}

impl Sandbox {
    /// The sandbox for `programs`, resolved on `search_path` (the worker's
    /// `PATH` unless the operator gave one), with the configuration the
    /// worker's environment (`env`) names.
    pub(crate) fn new<'a>(
        programs: impl IntoIterator<Item = &'a str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let home = env("HOME")
            .filter(|h| h.starts_with('/'))
            .map(PathBuf::from);
        let home = home.as_deref();
        let mut passed: Vec<(String, String)> = PASSED_THROUGH
            .iter()
            .filter_map(|k| env(k).map(|v| ((*k).to_owned(), v)))
            .collect();
        passed.extend(
            LOCALE
                .iter()
                .filter_map(|k| env(k).map(|v| ((*k).to_owned(), v))),
        );
        // The operator's own list of variables commands need (endpoints, tooling).
        let listed = env(CHILD_ENV).unwrap_or_default();
        for name in listed.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let sealed = super::process::SCRUBBED_ENV.contains(&name)
                || ["PATH", "HOME", "TMPDIR"].contains(&name);
            if let Some(value) = env(name).filter(|_| !sealed) {
                passed.push((name.to_owned(), value));
            }
        }
        let mut sandbox = Sandbox {
            passed,
            aws_config: located(env("AWS_CONFIG_FILE"), home, ".aws/config"),
            aws_credentials: located(env("AWS_SHARED_CREDENTIALS_FILE"), home, ".aws/credentials"),
            gcloud_config: located(env("CLOUDSDK_CONFIG"), home, ".config/gcloud"),
            azure_config: located(env("AZURE_CONFIG_DIR"), home, ".azure"),
            ..Sandbox::default()
        };
        sandbox.resolve(programs, &env("PATH").unwrap_or_default());
        sandbox
    }

    /// Resolves `programs` on `search_path`, ignoring empty and relative
    /// entries (an empty entry means the current directory to a shell).
    pub(crate) fn resolve<'a>(
        &mut self,
        programs: impl IntoIterator<Item = &'a str>,
        search_path: &str,
    ) {
        self.programs.clear();
        self.searched = search_path.to_owned();
        let dirs: Vec<&Path> = search_path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(Path::new)
            .collect();
        let mut path_dirs: Vec<&Path> = Vec::new();
        for program in programs {
            if let Some(dir) = dirs.iter().find(|d| is_executable(&d.join(program))) {
                self.programs.insert(program.to_owned(), dir.join(program));
                if !path_dirs.contains(dir) {
                    path_dirs.push(dir);
                }
            }
        }
        self.path = path_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
    }

    /// Points at the operator's files given as executor variables.
    pub(crate) fn set_location(&mut self, key: &str, value: &str) {
        let slot = match key {
            "AWS_CONFIG_FILE" => &mut self.aws_config,
            "AWS_SHARED_CREDENTIALS_FILE" => &mut self.aws_credentials,
            "CLOUDSDK_CONFIG" => &mut self.gcloud_config,
            "AZURE_CONFIG_DIR" => &mut self.azure_config,
            _ => return,
        };
        *slot = Some(PathBuf::from(value));
    }

    /// The absolute path of `program`, or why it cannot start.
    pub(crate) fn program(&self, program: &str) -> Result<&Path> {
        self.programs
            .get(program)
            .map(PathBuf::as_path)
            .ok_or_else(|| {
                Error::refused(
                    crate::Refusal::CannotStart,
                    format!(
                        "`{program}` was not found on the PATH the executor was built with \
                     (absolute entries of {:?})",
                        self.searched
                    ),
                )
            })
    }

    /// The programs found, by name.
    pub(crate) fn found(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.programs.iter().map(|(k, v)| (k.as_str(), v.as_path()))
    }

    /// The base environment of a child whose private home is `home`.
    pub(crate) fn env(&self, home: &Path) -> Vec<(String, String)> {
        let home = home.display().to_string();
        let mut env: Vec<(String, String)> = self.passed.clone();
        env.extend(
            QUIET_CLIS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env.push(("PATH".to_owned(), self.path.clone()));
        env.push(("HOME".to_owned(), home.clone()));
        env.push(("TMPDIR".to_owned(), home));
        if let Some(file) = &self.aws_credentials {
            env.push((
                "AWS_SHARED_CREDENTIALS_FILE".to_owned(),
                file.display().to_string(),
            ));
        }
        if let Some(dir) = &self.gcloud_config {
            env.push(("CLOUDSDK_CONFIG".to_owned(), dir.display().to_string()));
        }
        if let Some(dir) = &self.azure_config {
            env.push(("AZURE_CONFIG_DIR".to_owned(), dir.display().to_string()));
        }
        env
    }

    /// Writes the generated aws configuration into `home` and returns its
    /// path: the operator's profiles (if any) with `cli_follow_urlparam =
    /// false` in each, without `[plugins]` or `cli_legacy_plugin_path`.
    pub(crate) fn write_aws_config(&self, home: &Path) -> Result<PathBuf> {
        // A missing file is an empty configuration, as the CLI reads it.
        let operator = match &self.aws_config {
            Some(file) => match std::fs::read_to_string(file) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => {
                    return Err(Error::io(
                        format!("reading the aws config file {}", file.display()),
                        e,
                    ));
                }
            },
            None => String::new(),
        };
        let dir = home.join(".aws");
        std::fs::create_dir(&dir).map_err(|e| Error::io("creating the private .aws", e))?;
        let path = dir.join("config");
        write_private(&path, &generated_aws_config(&operator))?;
        Ok(path)
    }
}

/// The operator's aws config with URL following off in every profile and no
/// plugins.
fn generated_aws_config(operator: &str) -> String {
    let mut out = String::with_capacity(operator.len() + 64);
    let mut skipping = false;
    let mut has_default = false;
    for line in operator.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let section = trimmed.trim_matches(['[', ']']).trim();
            skipping = section == "plugins";
            if skipping {
                continue;
            }
            out.push_str(line);
            out.push('\n');
            if section == "default" || section.starts_with("profile ") {
                has_default |= section == "default";
                out.push_str("cli_follow_urlparam = false\n");
            }
            continue;
        }
        let key = trimmed.split('=').next().unwrap_or_default().trim();
        if skipping || key == "cli_follow_urlparam" || key == "cli_legacy_plugin_path" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_default {
        out.push_str("[default]\ncli_follow_urlparam = false\n");
    }
    out
}

/// Creates `path` readable by the owner only and writes `contents`.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    std::io::Write::write_all(&mut handle, contents.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// A fresh private directory (`0700`) for one command: its home, cwd and tmp.
pub(crate) fn private_home() -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("remediation-home-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder
        .tempdir()
        .map_err(|e| Error::io("creating a private home for a command", e))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_relative_path_entries_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("aws");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut sandbox = Sandbox::default();
        sandbox.resolve(["aws", "az"], &format!(":.:bin:{}", dir.path().display()));
        assert_eq!(sandbox.program("aws").unwrap(), bin);
        assert!(sandbox.program("az").is_err());
        assert_eq!(sandbox.path, dir.path().display().to_string());
    }

    #[test]
    fn generated_aws_config_turns_url_following_off_and_drops_plugins() {
        let text = generated_aws_config(
            "[profile p]\nregion = eu-west-1\ncli_follow_urlparam = true\n[plugins]\nx = evil\n\
             cli_legacy_plugin_path = /tmp\n[default]\nregion = us-east-1\n",
        );
        assert!(!text.contains("evil"), "{text}");
        assert!(!text.contains("cli_follow_urlparam = true"), "{text}");
        assert!(!text.contains("cli_legacy_plugin_path"), "{text}");
        assert_eq!(
            text.matches("cli_follow_urlparam = false").count(),
            2,
            "{text}"
        );
        assert!(generated_aws_config("").contains("[default]\ncli_follow_urlparam = false"));
    }
}
