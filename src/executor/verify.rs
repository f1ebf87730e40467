//! Start-up verification: each CLI a worker needs runs once inside the
//! sealed child, so one that is found on the worker's `PATH` but cannot run
//! sealed (a pyenv shim, a script whose interpreter is not on the sealed
//! `PATH`) is a clear start-up error instead of a failure of every step.

use super::{ExecContext, ProcessExecutor, StepStatus};
use crate::error::{Error, Result};
use crate::plan::{Command, Step};

impl ProcessExecutor {
    /// Runs each of `programs` once with `--version` inside the sealed child
    /// (cleared environment, private home, the sealed `PATH`), and fails,
    /// naming each one and why, if any cannot run there: it cannot be
    /// started, exits 126 or 127 (a shim, or an interpreter not on the sealed
    /// `PATH`), or is killed. A worker calls this
    /// at start-up, after [`require_programs`](Self::require_programs).
    pub async fn verify_programs<'a>(
        &self,
        programs: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        let mut broken = Vec::new();
        for program in programs {
            if let Err(why) = self.version_line(program).await {
                broken.push(format!("{program} ({why})"));
            }
        }
        if broken.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "CLI cannot run inside the sealed child: {}",
            broken.join("; ")
        )))
    }

    /// `program --version` run once inside the sealed child: the first line
    /// it printed (stdout, else stderr; aws CLI v1 prints to stderr), or,
    /// as a configuration error, why it cannot run there (see
    /// [`verify_programs`](Self::verify_programs)).
    pub async fn program_version(&self, program: &str) -> Result<String> {
        self.version_line(program).await.map_err(|why| {
            Error::Config(format!(
                "CLI cannot run inside the sealed child: {program} ({why})"
            ))
        })
    }

    /// The first line `program --version` printed, or why it cannot run sealed.
    async fn version_line(&self, program: &str) -> std::result::Result<String, String> {
        let step = Step::read_only(Command::new(program, ["--version"]));
        match self.run(&step, ExecContext::default()).await {
            // It started and answered: whatever its exit code, it runs
            // sealed. 126/127 (cannot execute, not found) come from a
            // shim or an interpreter missing on the sealed PATH, no exit
            // code from a signal.
            Ok(outcome)
                if outcome.status == StepStatus::Ok
                    || outcome.exit_code.is_some_and(|c| !matches!(c, 126 | 127)) =>
            {
                let first = |text: &str| {
                    text.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(str::to_owned)
                };
                Ok(first(&outcome.stdout_tail)
                    .or_else(|| first(&outcome.stderr_tail))
                    .unwrap_or_default())
            }
            Ok(outcome) => Err(format!(
                "exit {}: {}",
                outcome
                    .exit_code
                    .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                outcome.stderr_tail.lines().last().unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::ContextMap;
    use crate::plan::CommandPolicy;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn a_cli_that_cannot_run_sealed_is_a_start_up_error() {
        let dir = tempfile::tempdir().unwrap();
        // A pyenv-style shim: found on the worker's PATH, but it needs
        // `pyenv`, which the sealed PATH (the CLIs' own directories) lacks.
        script(dir.path(), "aws", "#!/bin/sh\nexec pyenv exec aws \"$@\"\n");
        script(
            dir.path(),
            "gcloud",
            "#!/bin/sh\necho 'Google Cloud SDK 528.0.0'\n",
        );
        // Runs, but answers `--version` with an error: it does run sealed.
        script(dir.path(), "az", "#!/bin/sh\nexit 2\n");
        let path = dir.path().display().to_string();
        let env = move |k: &str| (k == "PATH").then(|| path.clone());
        let executor =
            ProcessExecutor::with_worker_env(CommandPolicy::default(), ContextMap::new(), &env);
        executor.require_programs(["aws", "gcloud", "az"]).unwrap();
        executor.verify_programs(["gcloud", "az"]).await.unwrap();
        let err = executor
            .verify_programs(["gcloud", "aws"])
            .await
            .unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("aws (exit 127"), "{shown}");
        assert!(!shown.contains("gcloud"), "{shown}");
    }
}
