//! Running a [`DenyProbe`] before a removal that may lift a deny: each query
//! runs as a read-only step for the removal's target (checked by the policy
//! and sealed like any step; a dry run runs it for real too); the removal
//! runs only when the answers show no deny.

use super::CommandExecutor;
use crate::error::{Error, Refusal, Result};
use crate::model::Target;
use crate::plan::execution::{ProbeRun, StepOutcome, StepStatus};
use crate::plan::{DenyProbe, ProbeVerdict, Step};
use crate::redact::redact_argv;

/// At most this many queries per probe (a managed policy takes two).
const MAX_QUERIES: usize = 3;

/// Runs `probe` for the removal `step` with `queries`: `Ok(Ok(runs))` when
/// it found no deny; `Ok(Err(outcome))` when a query failed (the step fails
/// with the query's outcome, and is retried like any failed step); a refusal
/// when what the step removes denies, or could not be read.
pub(super) async fn run_probe(
    queries: &dyn CommandExecutor,
    probe: &DenyProbe,
    step: &Step,
    target: &Target,
) -> Result<std::result::Result<Vec<ProbeRun>, StepOutcome>> {
    let mut runs = Vec::new();
    let mut query = probe.query();
    for _ in 0..MAX_QUERIES {
        let query_step = Step::read_only(query.clone());
        let outcome = queries.execute(&query_step, target).await?;
        let argv = redact_argv(query.argv());
        if outcome.status != StepStatus::Ok {
            runs.push(ProbeRun {
                argv,
                exit_code: outcome.exit_code,
                verdict: "failed".to_owned(),
            });
            let mut failed = StepOutcome {
                stdout_tail: String::new(),
                probes: runs,
                ..outcome
            };
            failed
                .stderr_tail
                .push_str("\n[remediation: the deny probe failed; the removal did not run]");
            return Ok(Err(failed));
        }
        let verdict = probe.judge(&query, &outcome.stdout_tail);
        let (word, next) = match verdict {
            ProbeVerdict::NoDeny => ("no_deny".to_owned(), None),
            ProbeVerdict::Next(next) => ("next".to_owned(), Some(next)),
            ProbeVerdict::Deny(why) => {
                tracing::warn!(probe = %argv.join(" "), %why, "deny probe refused a removal");
                return Err(Error::refused(
                    Refusal::Weakening,
                    format!(
                        "`{}` removes a deny: the probe `{}` found {why}",
                        redact_argv(step.command.argv()).join(" "),
                        argv.join(" ")
                    ),
                ));
            }
        };
        runs.push(ProbeRun {
            argv,
            exit_code: outcome.exit_code,
            verdict: word,
        });
        match next {
            None => return Ok(Ok(runs)),
            Some(next) => query = next,
        }
    }
    Err(Error::refused(
        Refusal::Weakening,
        "the deny probe did not reach an answer",
    ))
}
