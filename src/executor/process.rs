//! Runs steps as child processes — the argv directly, never through a shell —
//! in the target account's context, with a timeout and bounded output capture.

use super::{CommandExecutor, CommandPolicy, ContextMap, ExecContext, StepOutcome, StepStatus};
use crate::error::{Error, Result};
use crate::model::Target;
use crate::planner::Step;
use crate::redact::redact;
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
/// * The child inherits the worker's environment minus [`SCRUBBED_ENV`], plus
///   the variables given with [`with_env_var`](Self::with_env_var), plus the
///   resolved context (`AWS_PROFILE`, region), in that order of precedence.
/// * stdin is closed; stdout and stderr are read incrementally and only their
///   last [`with_output_limit`](Self::with_output_limit) bytes are kept, both
///   passed through [`redact`].
/// * A step that outlives its timeout is killed and reported as
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
            .finish()
    }
}

impl ProcessExecutor {
    /// An executor enforcing `policy` and resolving accounts through `contexts`.
    pub fn new(policy: CommandPolicy, contexts: ContextMap) -> Self {
        ProcessExecutor {
            policy,
            contexts,
            timeout: DEFAULT_TIMEOUT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            query_output_limit: DEFAULT_QUERY_OUTPUT_LIMIT,
            env: BTreeMap::new(),
        }
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

    /// Sets an environment variable for every child (`PATH`, `AWS_CONFIG_FILE`,
    /// `AWS_ENDPOINT_URL`...). The resolved context wins over it, and the
    /// variables in [`SCRUBBED_ENV`] are removed even when set here.
    pub fn with_env_var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    async fn run(&self, step: &Step, ctx: ExecContext) -> Result<StepOutcome> {
        let command = &step.command;
        let mut child_command = tokio::process::Command::new(command.program());
        // Attached files live until the command has finished (dropped at the end).
        let mut written = None;
        if ctx.extra_args.is_empty() && step.files.is_empty() {
            child_command.args(command.args());
        } else {
            let mut argv = ctx.argv(command);
            if !step.files.is_empty() {
                let files = super::files::Materialized::write(&step.files)?;
                argv = files.argv(argv, &step.files);
                written = Some(files);
            }
            child_command.args(argv.get(1..).unwrap_or_default());
        }
        child_command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in SCRUBBED_ENV {
            child_command.env_remove(key);
        }
        let extra = self
            .env
            .iter()
            .filter(|(k, _)| !SCRUBBED_ENV.contains(&k.as_str()));
        child_command.envs(extra).envs(ctx.env.iter());

        let start = Instant::now();
        let mut child = child_command
            .spawn()
            .map_err(|e| Error::io(format!("spawning `{}`", command.program()), e))?;
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
        drop(written);
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
        self.policy.check(&step.command)?;
        super::files::check(&step.command, &step.files)?;
        self.contexts.check(step, target)
    }

    async fn execute(&self, step: &Step, target: &Target) -> Result<StepOutcome> {
        // Re-checked here: a caller may execute without having called check.
        self.policy.check(&step.command)?;
        super::files::check(&step.command, &step.files)?;
        let ctx = self.contexts.resolve(step, target)?;
        let span = tracing::info_span!(
            "step",
            program = step.command.program(),
            command = %redact(&step.command.to_string()),
            cloud = %target.cloud,
            account = target.account_id.as_deref().unwrap_or("<none>"),
            profile = ctx.env.get(super::context::AWS_PROFILE).map(String::as_str).unwrap_or(""),
        );
        self.run(step, ctx).instrument(span).await
    }
}

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
