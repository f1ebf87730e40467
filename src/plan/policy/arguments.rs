//! Argument classes: what the *allowed* CLI would do with each argument.
//!
//! A value that is a local path, a `file://` reference to something other
//! than a file attached to the step, an az `@file`, or a URL the CLI would
//! fetch makes an allowed operation read or write the worker's files or reach
//! the network on the attacker's behalf; options that carry whole parameter
//! sets (`--cli-input-json`), pass words through (`--`) or shape ssh are
//! refused outright; a context option named twice (the CLI takes the last,
//! a check would see the first) is refused too.

use super::Violation;
use crate::error::Refusal;
use crate::plan::Command;

/// Instance metadata keys that run code on the instance or grant ssh access
/// (GCE `startup-script`, `ssh-keys`...; EC2 user data is a denied option).
const CODE_METADATA: &[&str] = &[
    "startup-script",
    "shutdown-script",
    "windows-startup-script",
    "windows-shutdown-script",
    "sysprep-specialize-script",
    "ssh-keys",
    "sshkeys",
    "user-data",
];

/// The code-bearing metadata key a (lower-cased) `key=value,...` argument
/// sets, if any (also `enable-oslogin=false`, which re-enables metadata keys).
/// gcloud's `^X^` prefix picks another delimiter than `,`.
fn code_metadata(lower: &str) -> Option<&'static str> {
    let value = lower.strip_prefix("--metadata=").unwrap_or(lower);
    let (delimiter, value) = match value.strip_prefix('^').and_then(|r| r.split_once('^')) {
        Some((d, rest)) if !d.is_empty() => (d.to_owned(), rest),
        _ => (",".to_owned(), value),
    };
    value.split(delimiter.as_str()).find_map(|pair| {
        let (key, val) = pair.split_once('=').unwrap_or((pair, ""));
        let key = key.trim();
        if key == "enable-oslogin" && val.trim() == "false" {
            return Some("enable-oslogin");
        }
        CODE_METADATA
            .iter()
            .find(|k| key == **k || (key.starts_with(**k) && key.contains("-script")))
            .copied()
    })
}

/// Options of every program whose value names a file the CLI reads: it must
/// name a file attached to the step.
fn is_file_option(name: &str) -> bool {
    ["-file", "_file", "-from-file"]
        .iter()
        .any(|suffix| super::ends_with_ignore_case(name, suffix))
}

/// The options that pick a command's context, by program: named once at most,
/// and (for the argparse CLIs) never abbreviated.
fn context_options(program: &str) -> &'static [&'static str] {
    match program {
        "aws" => &["--region"],
        "gcloud" => &["--project", "--region", "--zone"],
        "az" => &["--subscription"],
        "gsutil" => &["-u", "-p"],
        _ => &[],
    }
}

/// Checks every argument of `command` except the operation path words
/// (`path_at`), given the names of the files attached to the step.
pub(super) fn check(command: &Command, path_at: &[usize], files: &[&str]) -> Result<(), Violation> {
    let program = command.program();
    let args = command.args();
    let contexts = context_options(program);
    let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
    let mut options: Vec<(&str, Option<&str>)> = Vec::new();
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        i += 1;
        if path_at.contains(&(i - 1)) {
            continue;
        }
        if arg == "--" {
            return Err(Violation::new(
                Refusal::DeniedOption,
                format!("`--` in `{program}`: words after it are passed through unchecked"),
            ));
        }
        let metadata = (program == "gcloud").then(|| code_metadata(&arg.to_ascii_lowercase()));
        if let Some(key) = metadata.flatten() {
            return Err(Violation::new(
                Refusal::DeniedOption,
                format!(
                    "{} sets `{key}`, metadata that runs code or grants shell access",
                    super::quoted(arg)
                ),
            ));
        }
        if super::contains_ignore_case(arg, "proxycommand") {
            return Err(Violation::new(
                Refusal::DeniedOption,
                format!("{} sets an ssh ProxyCommand", super::quoted(arg)),
            ));
        }
        let is_option = arg.starts_with('-') && arg.len() > 1;
        if !is_option {
            value(program, arg, arg, files)?;
            continue;
        }
        let (name, inline) = match super::split_at_equals(arg) {
            Some((name, value)) => (name, Some(value)),
            None => (arg.as_str(), None),
        };

        // Context options: once, and not abbreviated.
        if let Some(context) = contexts.iter().find(|c| {
            **c == name || (name.starts_with("--") && name.len() > 2 && c.starts_with(name))
        }) {
            if *context != name {
                return Err(Violation::new(
                    Refusal::ContextMismatch,
                    format!(
                        "{} abbreviates the context option {context}",
                        super::quoted(name)
                    ),
                ));
            }
            // Named twice: the CLI would use the last one, a check may have
            // read the first. The same value twice (a Prisma template does
            // that) changes nothing.
            let value = inline.or_else(|| args.get(i).map(|a| a.as_str()));
            if let Some((_, first)) = seen.iter().find(|(c, _)| c == context) {
                if *first != value {
                    return Err(Violation::new(
                        Refusal::ContextMismatch,
                        format!(
                            "{context} is named twice with different values: the CLI would use the last one"
                        ),
                    ));
                }
            }
            seen.push((context, value));
        }
        // Any other option named twice with another value: the CLI keeps
        // the last one, a check may have read the first. (Abbreviations
        // cannot be told from other options here; the checks that read a
        // sensitive option read every value of every abbreviation.)
        // gsutil's `-d` is repeated by design (one entry removed per `-d`).
        let value_here = inline.or_else(|| {
            args.get(i)
                .map(|a| a.as_str())
                .filter(|a| !a.starts_with('-'))
        });
        if name.starts_with("--") {
            if let Some((other, _)) = options.iter().find(|(o, v)| *o == name && *v != value_here) {
                return Err(Violation::new(
                    Refusal::DeniedOption,
                    format!(
                        "{} is named twice with different values: the CLI would use the last one",
                        super::quoted(other)
                    ),
                ));
            }
            options.push((name, value_here));
        }
        if is_file_option(name) {
            let named = match inline {
                Some(v) => Some(v),
                None => args
                    .get(i)
                    .map(|a| a.as_str())
                    .filter(|a| !a.starts_with('-')),
            };
            let attached = named.is_some_and(|v| {
                let v = v
                    .strip_prefix("file://")
                    .or_else(|| v.strip_prefix("fileb://"))
                    .unwrap_or(v);
                files.contains(&v)
            });
            if !attached {
                return Err(Violation::new(
                    Refusal::FileReference,
                    format!(
                        "{} reads a file: its value must name a file attached to the step",
                        super::quoted(name)
                    ),
                ));
            }
            if inline.is_none() {
                i += 1;
            }
            continue;
        }
        // `aws sqs ... --queue-url https://sqs...`: a URL the CLI never
        // fetches (its paramfile handling exempts it); scope checks its account.
        let queue_url = program == "aws" && name.len() > 4 && "--queue-url".starts_with(name);
        if queue_url {
            let url = inline.or_else(|| args.get(i).map(|a| a.as_str()));
            if url.is_some_and(is_sqs_url) {
                if inline.is_none() {
                    i += 1;
                }
                continue;
            }
        }
        // aws names that start with `/` and are no files: CloudWatch log
        // groups (`/aws/lambda/x`), IAM paths (`/division/`). The aws CLI reads
        // files only through `file://`, which the value check still applies.
        let aws_name = program == "aws"
            && ["log-group-name", "--path", "--path-prefix"]
                .iter()
                .any(|n| name.contains(n));
        if aws_name {
            let v = inline.or_else(|| args.get(i).map(|a| a.as_str()));
            if let Some(v) = v.filter(|v| v.starts_with('/') && !v.contains("://")) {
                if inline.is_none() && args.get(i).map(|a| a.as_str()) == Some(v) {
                    i += 1;
                }
                continue;
            }
        }
        if let Some(v) = inline {
            value(program, v, arg, files)?;
        }
    }
    Ok(())
}

/// Whether `url` is an SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`,
/// or the legacy `https://queue.amazonaws.com/...`).
pub(super) fn is_sqs_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    (host.starts_with("sqs.") || host == "queue.amazonaws.com")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
}

/// Checks one value (`arg` is the whole argument, for the reason).
fn value(program: &str, v: &str, arg: &str, files: &[&str]) -> Result<(), Violation> {
    let t = v.trim_start();
    let starts = |prefix: &str| {
        t.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let scheme = t.contains("://");
    if scheme
        && (super::contains_ignore_case(t, "file://") || super::contains_ignore_case(t, "fileb://"))
    {
        let shown = super::quoted(arg);
        let attached = ["file://", "fileb://"]
            .iter()
            .any(|p| t.strip_prefix(p).is_some_and(|name| files.contains(&name)));
        if !attached {
            return Err(Violation::new(
                Refusal::FileReference,
                format!("{shown} names a file that is not attached to the step"),
            ));
        }
        return Ok(());
    }
    if scheme && (starts("http://") || starts("https://") || starts("ftp://")) {
        let lower = t.to_ascii_lowercase();
        let google_resource = matches!(program, "gcloud" | "gsutil")
            && (lower.starts_with("https://www.googleapis.com/")
                || lower
                    .strip_prefix("https://")
                    .and_then(|rest| rest.split('/').next())
                    .is_some_and(|host| host.ends_with(".googleapis.com")));
        if !google_resource {
            return Err(Violation::new(
                Refusal::Url,
                format!("{} is a URL the CLI would fetch", super::quoted(arg)),
            ));
        }
        return Ok(());
    }
    // az loads `@path` — also after the first `=` of any word (`--tags k=@f`).
    let after_equals = t.split_once('=').map(|(_, rest)| rest.trim_start());
    if program == "az" && (t.starts_with('@') || after_equals.is_some_and(|r| r.starts_with('@'))) {
        return Err(Violation::new(
            Refusal::FileReference,
            format!("{}: az reads `@` values from a file", super::quoted(arg)),
        ));
    }
    let azure_id = program == "az" && (starts("/subscriptions/") || starts("/providers/"));
    let path = (t.starts_with('/') && !azure_id)
        || t.starts_with('~')
        || t.starts_with("./")
        || t.starts_with("../")
        || t == "."
        || t == ".."
        || t.starts_with('\\');
    if path {
        return Err(Violation::new(
            Refusal::LocalPath,
            format!("{} is a local path", super::quoted(arg)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(program: &str, args: &[&str], files: &[&str]) -> Option<Refusal> {
        check(&Command::new(program, args.iter().copied()), &[], files)
            .err()
            .map(|v| v.code)
    }

    #[test]
    fn values_are_classed() {
        use Refusal::*;
        let aws = |a: &[&str]| code("aws", a, &["policy.json"]);
        assert_eq!(aws(&["--policy-document", "file://policy.json"]), None);
        assert_eq!(aws(&["--policy-document=file://policy.json"]), None);
        assert_eq!(
            aws(&["--policy-document", "file://~/.aws/credentials"]),
            Some(FileReference)
        );
        assert_eq!(
            aws(&["--policy-document", "FILE:///etc/passwd"]),
            Some(FileReference)
        );
        assert_eq!(
            aws(&["--policy-document", " file://x"]),
            Some(FileReference)
        );
        assert_eq!(aws(&["--body", "fileb://$HOME/x"]), Some(FileReference));
        assert_eq!(
            aws(&["--policy-document", "https://evil.example/p"]),
            Some(Url)
        );
        assert_eq!(aws(&["--body", "/proc/self/environ"]), Some(LocalPath));
        assert_eq!(aws(&["--body=~/x"]), Some(LocalPath));
        assert_eq!(aws(&["../x"]), Some(LocalPath));
        assert_eq!(aws(&["s3://bucket/key", "--bucket", "b"]), None);
        assert_eq!(aws(&["--cli-input-json-file", "x"]), Some(FileReference));
        assert_eq!(aws(&["--", "x"]), Some(DeniedOption));
        assert_eq!(
            aws(&["--region", "a", "--region", "b"]),
            Some(ContextMismatch)
        );
        assert_eq!(aws(&["--regio", "b"]), Some(ContextMismatch));
        let az = |a: &[&str]| code("az", a, &[]);
        assert_eq!(az(&["--ids", "/subscriptions/x/resourceGroups/r"]), None);
        assert_eq!(az(&["--parameters", "@params.json"]), Some(FileReference));
        assert_eq!(az(&["--template-file", "t.json"]), Some(FileReference));
        assert_eq!(
            az(&["--subscription", "a", "--subscription=b"]),
            Some(ContextMismatch)
        );
        let gcloud = |a: &[&str]| code("gcloud", a, &["policy.json"]);
        assert_eq!(gcloud(&["--policy-file=policy.json"]), None);
        assert_eq!(gcloud(&["--policy-file", "policy.json"]), None);
        assert_eq!(gcloud(&["--exec-file=run.sh"]), Some(FileReference));
        assert_eq!(
            gcloud(&["--metadata-from-file", "startup-script=/x"]),
            Some(FileReference)
        );
        assert_eq!(
            gcloud(&["https://www.googleapis.com/compute/v1/projects/p/global/networks/n"]),
            None
        );
        assert_eq!(
            gcloud(&["--ssh-flag=-oProxyCommand=sh"]),
            Some(DeniedOption)
        );
        assert_eq!(
            gcloud(&["--project=a", "--project", "b"]),
            Some(ContextMismatch)
        );
    }
}
