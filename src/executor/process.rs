//! Runs steps as child processes — the argv directly, never through a shell —
//! in the target account's context, with a timeout and bounded output capture.

use super::sandbox::Sandbox;
use super::{CommandExecutor, ContextMap, ExecContext, StepOutcome, StepStatus};
use crate::error::{Error, Result};
use crate::model::Target;
use crate::plan::CommandPolicy;
use crate::plan::Step;
use crate::redact::{Secret, redact, redact_argv};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Ambient credential variables removed from every child's environment.
///
/// Environment credentials take precedence over a profile in the AWS CLI's
/// credential chain, so if the worker's own `AWS_ACCESS_KEY_ID` leaked into
/// the child, the mapped `AWS_PROFILE` would be silently ignored and the
/// command would change whichever account those keys belong to.
pub const SCRUBBED_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
];

/// Variables the sandbox sets itself: given with
/// [`ProcessExecutor::with_env_var`], `PATH` is where the CLIs are looked up
/// and the configuration locations are the operator's files; a child never
/// gets them as given.
const SEALED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
];

/// Default per-step time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default size of the kept stdout and stderr tails, in bytes.
pub const DEFAULT_OUTPUT_LIMIT: usize = 4 * 1024;
/// Default size of the standard output kept for a read-only step (a query
/// whose JSON output a remediation reads), in bytes.
pub const DEFAULT_QUERY_OUTPUT_LIMIT: usize = 1024 * 1024;
/// Extra bytes captured beyond the limit, so a secret cut by the tail's edge
/// still has its key name in front of it when [`redact`] runs.
const REDACTION_MARGIN: usize = 512;
/// How long to wait for output pipes after the child exited or was killed: a
/// grandchild may still hold them open.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Runs each step as a child process with the target's context.
///
/// * The argv goes to the operating system as is (`tokio::process::Command`);
///   no shell ever sees it. Every step is re-checked against the policy and
///   the context map before it runs.
/// * The program is the absolute path resolved when the executor was built
///   (a program that was not found is refused as `cannot_start`).
/// * The child is sealed (see the `sandbox` module docs in the README's
///   security model): an empty environment plus an allowlist (`PATH` of the
///   resolved CLIs' directories, locale, proxies, CA bundles), the variables
///   given with [`with_env_var`](Self::with_env_var) minus [`SCRUBBED_ENV`],
///   then the resolved context (`AWS_PROFILE`, region...), in that order of
///   precedence. `HOME`, `TMPDIR` and the working directory are a fresh
///   private directory per command, holding the step's files and a generated
///   aws configuration (`cli_follow_urlparam = false`, no aliases, no
///   plugins); it is removed when the command ends. The child leads its own
///   process group, which is killed when the step ends or times out.
/// * stdin is closed; stdout and stderr are read incrementally and only their
///   last [`with_output_limit`](Self::with_output_limit) bytes are kept, both
///   passed through [`redact`].
/// * A step that outlives its timeout is killed (its whole process group) and reported as
///   `Ok(StepOutcome { status: Failed, exit_code: None, .. })` with a note at
///   the end of its stderr tail, like any other failed command: the engine
///   stops the plan and retries the delivery later. `Err` is reserved for
///   steps that could not run at all (refused, or the program was not found).
pub struct ProcessExecutor {
    policy: CommandPolicy,
    contexts: ContextMap,
    timeout: Duration,
    output_limit: usize,
    query_output_limit: usize,
    env: BTreeMap<String, String>,
    sandbox: Sandbox,
    source_credentials: Option<AwsSourceCredentials>,
}

/// AWS credentials a child may use as a named profile (`source_profile =
/// NAME` in the operator's config): written for each aws command into its
/// private home, never into a shared or predictable place.
#[derive(Clone)]
pub struct AwsSourceCredentials {
    profile: String,
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

impl std::fmt::Debug for AwsSourceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSourceCredentials")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl AwsSourceCredentials {
    /// Credentials known to the CLI as profile `profile`.
    pub fn new(
        profile: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    ) -> Self {
        AwsSourceCredentials {
            profile: profile.into(),
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token,
        }
    }

    /// The profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Writes a credentials file holding this profile into `home`.
    fn write(&self, home: &std::path::Path) -> Result<std::path::PathBuf> {
        let mut text = format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.profile,
            self.access_key_id,
            self.secret_access_key.expose()
        );
        if let Some(token) = &self.session_token {
            text.push_str(&format!("aws_session_token = {}\n", token.expose()));
        }
        let path = home.join(".aws").join("credentials");
        super::sandbox::write_private(&path, &text)?;
        Ok(path)
    }
}

impl std::fmt::Debug for ProcessExecutor {
    // Extra environment values may be secrets: show their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("policy", &self.policy)
            .field("contexts", &self.contexts)
            .field("timeout", &self.timeout)
            .field("output_limit", &self.output_limit)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("programs", &self.sandbox.found().collect::<Vec<_>>())
            .field("source_credentials", &self.source_credentials)
            .finish()
    }
}

impl ProcessExecutor {
    /// An executor enforcing `policy` and resolving accounts through `contexts`.
    ///
    /// The policy's programs are resolved to absolute paths now, on the
    /// worker's `PATH` (absolute entries only), and the operator's CLI
    /// configuration is located from the worker's environment
    /// (`AWS_CONFIG_FILE` or `~/.aws/config`, `AWS_SHARED_CREDENTIALS_FILE`
    /// or `~/.aws/credentials`, `CLOUDSDK_CONFIG` or `~/.config/gcloud`,
    /// `AZURE_CONFIG_DIR` or `~/.azure`). The worker variables named in
    /// [`CHILD_ENV`](super::CHILD_ENV) (`REMEDIATION_CHILD_ENV=AWS_ENDPOINT_URL,...`)
    /// are passed to every command.
    pub fn new(policy: CommandPolicy, contexts: ContextMap) -> Self {
        Self::with_worker_env(policy, contexts, &|k| std::env::var(k).ok())
    }

    /// [`new`](Self::new), reading the worker's environment through `env`.
    pub(super) fn with_worker_env(
        policy: CommandPolicy,
        contexts: ContextMap,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        let sandbox = Sandbox::new(policy.programs(), env);
        ProcessExecutor {
            policy,
            contexts,
            timeout: DEFAULT_TIMEOUT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            query_output_limit: DEFAULT_QUERY_OUTPUT_LIMIT,
            env: BTreeMap::new(),
            sandbox,
            source_credentials: None,
        }
    }

    /// Fails, naming them, if any of `programs` was not found when the
    /// executor was built: a worker calls this at start-up for the CLIs its
    /// clouds need, so a missing CLI is found before the first alert.
    pub fn require_programs<'a>(&self, programs: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let missing: Vec<&str> = programs
            .into_iter()
            .filter(|p| self.sandbox.program(p).is_err())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "CLI not found on PATH (absolute entries only): {}",
            missing.join(", ")
        )))
    }

    /// The CLIs the executor found, with their absolute paths.
    pub fn programs(&self) -> impl Iterator<Item = (&str, &std::path::Path)> {
        self.sandbox.found()
    }

    /// Gives every aws command `credentials` as a named profile, in a
    /// credentials file written into the command's private home (and
    /// removed with it). For a worker whose own credentials live in its
    /// environment (AWS Lambda) and whose profiles assume roles from them.
    pub fn with_aws_source_credentials(mut self, credentials: AwsSourceCredentials) -> Self {
        self.source_credentials = Some(credentials);
        self
    }

    /// Sets the per-step timeout (default 300 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many trailing bytes of stdout and of stderr are kept (default 4 KiB).
    pub fn with_output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// Sets how many bytes of a [read-only](Step::read_only) step's standard
    /// output are kept (default 1 MiB), so its JSON arrives whole; longer
    /// output is cut and no longer parses.
    pub fn with_query_output_limit(mut self, bytes: usize) -> Self {
        self.query_output_limit = bytes;
        self
    }

    /// Sets an environment variable for every child (`AWS_ENDPOINT_URL`...).
    /// The resolved context wins over it, and the variables in
    /// [`SCRUBBED_ENV`] are never passed. Some keys configure the sandbox
    /// instead: `PATH` is where the CLIs are looked up (again, now; the
    /// child's `PATH` is their directories), and `AWS_CONFIG_FILE`,
    /// `AWS_SHARED_CREDENTIALS_FILE`, `CLOUDSDK_CONFIG`, `AZURE_CONFIG_DIR`
    /// name the operator's configuration. `HOME` and `TMPDIR` are always the
    /// command's private directory.
    pub fn with_env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        if key == "PATH" {
            let programs: Vec<String> = self.policy.programs().map(str::to_owned).collect();
            self.sandbox
                .resolve(programs.iter().map(String::as_str), &value);
        }
        self.sandbox.set_location(&key, &value);
        self.env.insert(key, value);
        self
    }

    /// [`with_env_var`](Self::with_env_var) from a worker flag's spelling:
    /// `NAME=VALUE`, or `NAME` alone to pass the worker's own value of it
    /// (nothing when the worker has none).
    pub fn with_child_env(self, spec: &str) -> Self {
        match spec.split_once('=') {
            Some((name, value)) => self.with_env_var(name, value),
            None => match std::env::var(spec) {
                Ok(value) => self.with_env_var(spec, value),
                Err(_) => self,
            },
        }
    }

    pub(super) async fn run(&self, step: &Step, ctx: ExecContext) -> Result<StepOutcome> {
        let command = &step.command;
        let program = self.sandbox.program(command.program())?;
        // The child's home, cwd and tmp: private, and removed (at the end of
        // this function) once the command and its process group are gone.
        let home = super::sandbox::private_home()?;
        let mut child_command = tokio::process::Command::new(program);
        if ctx.extra_args.is_empty() && step.files.is_empty() {
            child_command.args(command.args());
        } else {
            let mut argv = ctx.argv(command);
            if !step.files.is_empty() {
                let files = super::files::Materialized::write(home.path(), &step.files)?;
                argv = files.argv(argv, &step.files);
            }
            child_command.args(argv.get(1..).unwrap_or_default());
        }
        child_command
            .env_clear()
            .envs(self.sandbox.env(home.path()))
            .current_dir(home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        child_command.process_group(0);
        if command.program() == "aws" {
            let config = self.sandbox.write_aws_config(home.path())?;
            child_command.env("AWS_CONFIG_FILE", config);
            if let Some(source) = &self.source_credentials {
                let file = source.write(home.path())?;
                child_command.env("AWS_SHARED_CREDENTIALS_FILE", file);
            }
        }
        let extra = self.env.iter().filter(|(k, _)| {
            !SCRUBBED_ENV.contains(&k.as_str()) && !SEALED_ENV.contains(&k.as_str())
        });
        child_command.envs(extra).envs(ctx.env.iter());

        let start = Instant::now();
        let mut child = child_command
            .spawn()
            .map_err(|e| spawn_error(command.program(), e))?;
        let group = child.id();
        let keep = self.output_limit.saturating_add(REDACTION_MARGIN);
        let stdout_limit = if step.read_only {
            self.output_limit.max(self.query_output_limit)
        } else {
            self.output_limit
        };
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(read_tail(s, stdout_limit.saturating_add(REDACTION_MARGIN))));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(read_tail(s, keep)));

        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        let (status, exit_code, note) = match waited {
            Ok(Ok(exit)) => {
                let status = if exit.success() {
                    StepStatus::Ok
                } else {
                    StepStatus::Failed
                };
                (status, exit.code(), signal_note(&exit))
            }
            Ok(Err(e)) => {
                return Err(Error::io(format!("waiting for `{}`", command.program()), e));
            }
            Err(_) => {
                // The whole process group first: a grandchild must not finish
                // the work after the step is recorded as killed.
                kill_group(group);
                // kill_on_drop covers cancellation; here the child is killed and reaped now.
                if let Err(e) = child.kill().await {
                    tracing::warn!(error = %e, "could not kill timed-out child");
                }
                tracing::warn!(timeout = ?self.timeout, "step timed out; child killed");
                let note = format!(
                    "[remediation: killed after the step timeout of {:?}]",
                    self.timeout
                );
                (StepStatus::Failed, None, Some(note))
            }
        };
        // Whatever the child left running in its group ends with it.
        kill_group(group);
        let mut outcome = StepOutcome::new(status);
        outcome.exit_code = exit_code;
        outcome.duration = start.elapsed();
        outcome.context = ctx.env;
        outcome.extra_args = ctx.extra_args;
        outcome.stdout_tail = finish_tail(collect(stdout).await, stdout_limit);
        outcome.stderr_tail = finish_tail(collect(stderr).await, self.output_limit);
        if let Some(note) = note {
            if !outcome.stderr_tail.is_empty() && !outcome.stderr_tail.ends_with('\n') {
                outcome.stderr_tail.push('\n');
            }
            outcome.stderr_tail.push_str(&note);
        }
        drop(home);
        tracing::info!(
            status = ?outcome.status,
            exit_code = ?outcome.exit_code,
            duration = ?outcome.duration,
            "step finished"
        );
        Ok(outcome)
    }
}

#[async_trait]
impl CommandExecutor for ProcessExecutor {
    fn check(&self, step: &Step, target: &Target) -> Result<()> {
        self.policy.check_for(step, target)?;
        crate::plan::file::check(&step.command, &step.files)?;
        self.contexts.check(step, target)
    }

    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        // Re-checked here: a caller may execute without having called check.
        self.policy.check_for(step, target)?;
        crate::plan::file::check(&step.command, &step.files)?;
        let probes = match self.policy.deny_probe(step) {
            Some(probe) => match super::probe::run_probe(self, &probe, step, target).await? {
                Ok(runs) => runs,
                Err(failed) => return Ok(failed),
            },
            None => Vec::new(),
        };
        let ctx = self.contexts.resolve(step, target)?;
        let span = tracing::info_span!(
            "step",
            program = step.command.program(),
            command = %redact_argv(step.command.argv()).join(" "),
            cloud = %target.cloud,
            account = target.account_id.as_deref().unwrap_or("<none>"),
            profile = ctx.env.get(super::context::AWS_PROFILE).map(String::as_str).unwrap_or(""),
        );
        let mut outcome = self.run(step, ctx).instrument(span).await?;
        outcome.probes = probes;
        Ok(outcome)
    }
}

/// A spawn failure: a command that cannot start (missing program,
/// permission, argument list too long) is refused, not retried; anything
/// else (out of processes) is temporary.
fn spawn_error(program: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    const E2BIG: i32 = 7;
    let cannot_start = matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied)
        || e.raw_os_error() == Some(E2BIG);
    if cannot_start {
        Error::refused(
            crate::Refusal::CannotStart,
            format!("`{program}` could not be started: {e}"),
        )
    } else {
        Error::io(format!("spawning `{program}`"), e)
    }
}

/// Kills the process group the child leads (it was started with
/// `process_group(0)`), grandchildren included. A group already gone is fine.
#[cfg(unix)]
fn kill_group(group: Option<u32>) {
    let pid = group
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_group: Option<u32>) {}

/// Why a process that exited without a code ended.
#[cfg(unix)]
fn signal_note(exit: &std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    exit.signal()
        .map(|signal| format!("[remediation: terminated by signal {signal}]"))
}

#[cfg(not(unix))]
fn signal_note(_exit: &std::process::ExitStatus) -> Option<String> {
    None
}

/// The last bytes of a stream, and how many bytes were dropped before them.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

/// Reads `stream` to its end, keeping only the last `keep` bytes, so a chatty
/// process cannot exhaust memory.
async fn read_tail<R: AsyncRead + Unpin>(mut stream: R, keep: usize) -> Tail {
    let mut tail = Tail::default();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.bytes
                    .extend_from_slice(buf.get(..n).unwrap_or_default());
                if tail.bytes.len() > keep {
                    let excess = tail.bytes.len() - keep;
                    tail.bytes.drain(..excess);
                    tail.dropped += excess as u64;
                }
            }
        }
    }
    tail
}

/// Waits briefly for a reader: after exit or kill, a grandchild may still hold the pipe.
async fn collect(reader: Option<JoinHandle<Tail>>) -> Tail {
    let Some(mut reader) = reader else {
        return Tail::default();
    };
    match tokio::time::timeout(PIPE_GRACE, &mut reader).await {
        Ok(Ok(tail)) => tail,
        Ok(Err(_)) => Tail::default(),
        Err(_) => {
            reader.abort();
            Tail::default()
        }
    }
}

/// Redacts the captured bytes, then cuts them to `limit` bytes on a character
/// boundary, marking the cut.
fn finish_tail(tail: Tail, limit: usize) -> String {
    let text = redact(&String::from_utf8_lossy(&tail.bytes));
    if text.len() <= limit && tail.dropped == 0 {
        return text;
    }
    let mut cut = text.len().saturating_sub(limit);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let kept = text.get(cut..).unwrap_or_default();
    format!("[…truncated…]{kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tail_keeps_the_last_bytes() {
        let data: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let tail = read_tail(&data[..], 10).await;
        assert_eq!(tail.bytes, &data[data.len() - 10..]);
        assert_eq!(tail.dropped, 99_990);
    }

    #[test]
    fn debug_shows_env_names_not_values() {
        let e = ProcessExecutor::new(CommandPolicy::default(), ContextMap::new())
            .with_env_var("API_TOKEN", "s3cr3t-value");
        let shown = format!("{e:?}");
        assert!(shown.contains("API_TOKEN"));
        assert!(!shown.contains("s3cr3t-value"));
    }

    #[test]
    fn finish_tail_redacts_then_cuts_on_char_boundary() {
        let tail = Tail {
            bytes: "ééé token=abcdef".as_bytes().to_vec(),
            dropped: 0,
        };
        let text = finish_tail(tail, 17);
        assert!(text.starts_with("[…truncated…]"), "{text}");
        assert!(text.ends_with("token=[REDACTED]"), "{text}");
        let short = Tail {
            bytes: b"ok".to_vec(),
            dropped: 0,
        };
        assert_eq!(finish_tail(short, 10), "ok");
    }
}
