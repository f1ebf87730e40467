//! Shared test helpers: a recording stand-in for `aws`/`az`/`gcloud` placed
//! first on a child's PATH, a moto server for tests against the real AWS CLI,
//! and a Service Bus REST emulator.
//!
//! Use from a test binary with `mod support;`. Helpers never touch the test
//! process's own environment (tests run in parallel threads): the PATH and the
//! stand-in's settings reach the child through the executor.
#![allow(dead_code)]

pub mod examples;
pub mod lambda_runtime;
pub mod moto;
pub mod proxy;
pub mod pubsub_emulator;
pub mod recording;
pub mod servicebus;
#[cfg(feature = "sqs")]
pub mod sqs_moto;
pub mod store_semantics;

use remediation::engine::Engine;
use remediation::executor::{ContextMap, ProcessExecutor};
use remediation::plan::CommandPolicy;
use remediation::telemetry::Summary;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The stand-in's source (plain Rust, no dependencies), shared by all three
/// program names. A compiled stand-in starts in about a millisecond, so tests
/// that run hundreds of commands measure the worker, not an interpreter.
const STANDIN_SOURCE: &str = include_str!("standin.rs");

/// Compiles the stand-in once per test binary (and once per source version
/// across binaries: the file name holds a hash of the source), returning its path.
fn standin_binary() -> &'static Path {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        STANDIN_SOURCE.hash(&mut hasher);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("standin");
        std::fs::create_dir_all(&dir).expect("stand-in build dir");
        let binary = dir.join(format!("standin-{:016x}", hasher.finish()));
        if binary.exists() {
            return binary;
        }
        // Build under a unique name, then rename: test binaries running in
        // parallel never see a half-written stand-in.
        let unique = format!("{}.{}", std::process::id(), hasher.finish());
        let source = dir.join(format!("standin-{unique}.rs"));
        let partial = dir.join(format!("standin-{unique}.partial"));
        std::fs::write(&source, STANDIN_SOURCE).expect("write stand-in source");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let status = std::process::Command::new(rustc)
            .args(["--edition", "2021", "--crate-name", "standin", "-O", "-o"])
            .arg(&partial)
            .arg(&source)
            .status()
            .expect("running rustc to build the stand-in");
        assert!(status.success(), "rustc failed to build the stand-in");
        std::fs::rename(&partial, &binary).expect("install stand-in");
        let _ = std::fs::remove_file(&source);
        binary
    })
}

/// The environment variable naming the stand-in's log file.
pub const LOG_VAR: &str = "REMEDIATION_STANDIN_LOG";

/// One recorded invocation of the stand-in.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The argv, program name first (basename, e.g. `aws`).
    pub argv: Vec<String>,
    /// The watched environment variables as the child saw them (`None` = unset).
    pub env: BTreeMap<String, Option<String>>,
    /// The stand-in's process id.
    pub pid: u32,
    /// Files named by absolute-path arguments: path → (permission bits, contents).
    pub files: BTreeMap<String, (u32, String)>,
    /// The child's whole environment.
    pub environ: BTreeMap<String, String>,
    /// The child's working directory.
    pub cwd: String,
}

impl Call {
    /// The value of a watched environment variable, if it was set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).and_then(|v| v.as_deref())
    }
}

/// A temp dir holding executable `aws`, `az` and `gcloud` stand-ins and their log.
#[derive(Debug)]
pub struct StandIn {
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl StandIn {
    /// Creates the stand-ins in a fresh temp dir.
    pub fn new() -> StandIn {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let binary = standin_binary();
        for program in ["aws", "az", "gcloud", "gsutil"] {
            // A symlink: the stand-in records the name it was called by.
            std::os::unix::fs::symlink(binary, bin.join(program)).expect("link stand-in");
        }
        let log = dir.path().join("calls.jsonl");
        StandIn { dir, log }
    }

    /// The directory holding the stand-in programs.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The log file the stand-ins append to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// A PATH with the stand-ins first, then the test process's PATH.
    pub fn path_env(&self) -> String {
        let inherited = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());
        format!("{}:{inherited}", self.bin_dir().display())
    }

    /// Adds PATH and the log variable to `executor`, so its children find the stand-ins.
    pub fn wire(&self, executor: ProcessExecutor) -> ProcessExecutor {
        executor
            .with_env_var("PATH", self.path_env())
            .with_env_var(LOG_VAR, self.log.display().to_string())
    }

    /// A process executor with the default policy and `contexts`, wired to the stand-ins.
    pub fn executor(&self, contexts: ContextMap) -> ProcessExecutor {
        self.wire(ProcessExecutor::new(CommandPolicy::default(), contexts))
    }

    /// Every invocation recorded so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.log.display()),
        };
        text.lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("stand-in log line is JSON");
                let argv = value["argv"]
                    .as_array()
                    .expect("argv array")
                    .iter()
                    .map(|a| a.as_str().expect("argv string").to_owned())
                    .collect();
                let env = value["env"]
                    .as_object()
                    .expect("env object")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                    .collect();
                let pid = value["pid"].as_u64().expect("pid") as u32;
                let files = value["files"]
                    .as_object()
                    .map(|files| {
                        files
                            .iter()
                            .map(|(path, f)| {
                                let mode = f["mode"].as_u64().expect("mode") as u32;
                                let contents = f["contents"].as_str().expect("contents");
                                (path.clone(), (mode, contents.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let environ = value["environ"]
                    .as_object()
                    .map(|vars| {
                        vars.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let cwd = value["cwd"].as_str().unwrap_or_default().to_owned();
                Call {
                    argv,
                    env,
                    pid,
                    files,
                    environ,
                    cwd,
                }
            })
            .collect()
    }
}

/// Runs `engine` until `done` holds (checked every 50 ms) or `limit` passes,
/// then cancels it; returns its summary and whether `done` held.
pub async fn run_until(
    engine: &Engine,
    limit: std::time::Duration,
    done: impl Fn(&Summary) -> bool,
) -> (Summary, bool) {
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let engine = engine.clone();
        let cancel = cancel.clone();
        async move { engine.run(cancel).await }
    });
    let t0 = std::time::Instant::now();
    let mut reached = false;
    while t0.elapsed() < limit {
        if done(&engine.stats().snapshot()) {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let summary = run.await.expect("engine task").expect("engine run");
    (summary, reached)
}

/// Runs this test binary again with `marker` and `env` set, executing only
/// the test `test`, and asserts that it ran and passed. For tests about the
/// worker's own environment, which a test must not change in its own process
/// (tests run in parallel).
pub fn rerun_with_env<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    test: &str,
    marker: &str,
    env: impl IntoIterator<Item = (K, V)>,
) {
    let exe = std::env::current_exe().expect("the test binary");
    let output = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(marker, "1")
        .envs(env)
        .output()
        .expect("re-running the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
}

/// The resource a test script's commands act on, for the alert that carries
/// it: the value after the first target option (`--user-name U`,
/// `--bucket B`...) or the first `gs://` bucket. Commands are bound to their
/// finding's resource, so a test alert names the one its script changes.
pub fn resource_of(script: &str) -> String {
    const TARGETS: &[&str] = &[
        "--user-name",
        "--bucket",
        "--role-name",
        "--group-name",
        "--endpoint-name",
        "--instance-id",
        "--trail-name",
        "--name",
    ];
    let words: Vec<&str> = script.split_whitespace().collect();
    for target in TARGETS {
        if let Some(at) = words.iter().position(|w| w == target) {
            if let Some(value) = words.get(at + 1) {
                return value.trim_matches(['\'', '"']).to_owned();
            }
        }
    }
    words
        .iter()
        .find_map(|w| w.strip_prefix("gs://"))
        .map(|b| b.trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// The policy an operator running a corpus entry would configure: its log
/// destinations, isolation groups, and consent to removals that may lift a deny.
pub fn operator_policy(
    destinations: &[String],
    isolation_groups: &[String],
    allow_deny_removal: bool,
) -> CommandPolicy {
    CommandPolicy::default()
        .with_destinations(destinations.iter().cloned())
        .with_isolation_groups(isolation_groups.iter().cloned())
        .allow_deny_removal(allow_deny_removal)
}
