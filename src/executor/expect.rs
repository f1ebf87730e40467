//! Steps that carry an [`Expectation`](crate::plan::Expectation): run the
//! read-only query, check its JSON output against the expectation's pattern,
//! and poll until it holds or the poll's timeout passes. The engine runs
//! every step through [`run_step`].

use crate::error::Result;
use crate::model::Target;
use crate::plan::Step;
use crate::plan::execution::{CommandExecutor, StepOutcome, StepStatus};
use std::future::Future;
use std::pin::Pin;

/// Runs `step` through `executor`, then checks its [`Expectation`] if it has
/// one: the step's standard output must be JSON matching the expectation's
/// pattern, or the outcome becomes [`StepStatus::Failed`] with the reason at the
/// end of its stderr tail. A polled expectation repeats the query until it
/// holds or its timeout passes.
///
/// This is how the engine runs every step (the rules' probes run through the
/// planner's executor, unchecked). An outcome other than
/// [`StepStatus::Ok`] (a failed command, or a dry run's
/// [`Planned`](StepStatus::Planned)) is returned as it is, unchecked.
///
/// A step without an expectation is the executor's own future, unwrapped:
/// the common case costs no allocation and no extra state.
///
/// [`Expectation`]: crate::plan::Expectation
pub(crate) fn run_step<'a>(
    executor: &'a dyn CommandExecutor,
    step: &'a Step,
    target: &'a Target,
) -> Pin<Box<dyn Future<Output = Result<StepOutcome>> + Send + 'a>> {
    match &step.expect {
        None => executor.execute(step, target),
        Some(expect) => Box::pin(run_checked(executor, step, target, expect)),
    }
}

/// [`run_step`] for a step with an expectation.
async fn run_checked(
    executor: &dyn CommandExecutor,
    step: &Step,
    target: &Target,
    expect: &crate::plan::Expectation,
) -> Result<StepOutcome> {
    if !step.read_only {
        return Err(crate::Error::refused(
            crate::Refusal::OperationNotAllowed,
            format!(
                "`{}` carries an expectation but is not read-only",
                step.command
            ),
        ));
    }
    let started = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        let mut outcome = executor.execute(step, target).await?;
        attempts += 1;
        if outcome.status != StepStatus::Ok {
            return Ok(outcome);
        }
        let verdict = match serde_json::from_str::<serde_json::Value>(&outcome.stdout_tail) {
            Ok(json) if expect.pattern.matches(&json) => return Ok(outcome),
            Ok(_) => format!("output does not match {}", expect.pattern),
            Err(e) => format!("output is not JSON ({e})"),
        };
        if let Some(poll) = expect.poll {
            if started.elapsed() + poll.interval <= poll.timeout {
                tracing::debug!(attempts, %verdict, "expectation not met yet; polling");
                tokio::time::sleep(poll.interval).await;
                continue;
            }
        }
        outcome.status = StepStatus::Failed;
        if !outcome.stderr_tail.is_empty() && !outcome.stderr_tail.ends_with('\n') {
            outcome.stderr_tail.push('\n');
        }
        outcome.stderr_tail.push_str(&format!(
            "[remediation: expectation not met after {attempts} attempt(s): {verdict}]"
        ));
        return Ok(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cloud;
    use crate::plan::{Command, EventPattern, Expectation};
    use async_trait::async_trait;
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Answers each aws operation (argv[2]) from a script: the answers in
    /// order, the last one repeated.
    #[derive(Debug, Default)]
    struct ScriptedAws {
        answers: Mutex<HashMap<String, Vec<String>>>,
        calls: Mutex<Vec<String>>,
    }

    impl ScriptedAws {
        fn answer(self, operation: &str, stdout: Value) -> Self {
            self.push(operation, Ok(stdout.to_string()))
        }

        fn push(self, operation: &str, answer: std::result::Result<String, String>) -> Self {
            let answer = answer.unwrap_or_else(|e| e);
            let mut answers = self.answers.lock().unwrap();
            answers
                .entry(operation.to_owned())
                .or_default()
                .push(answer);
            drop(answers);
            self
        }

        fn operations(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl CommandExecutor for ScriptedAws {
        fn check(&self, _: &Step, _: &Target) -> Result<()> {
            Ok(())
        }

        async fn execute(&self, step: &Step, _: &Target) -> Result<StepOutcome> {
            let argv = step.command.to_argv();
            self.calls.lock().unwrap().push(argv[2].clone());
            let mut answers = self.answers.lock().unwrap();
            let stdout = match answers.get_mut(&argv[2]) {
                Some(l) if l.len() > 1 => l.remove(0),
                Some(l) if l.len() == 1 => l[0].clone(),
                _ => String::new(),
            };
            let mut outcome = StepOutcome::new(StepStatus::Ok);
            outcome.exit_code = Some(0);
            outcome.stdout_tail = stdout;
            Ok(outcome)
        }
    }

    fn target() -> Target {
        Target::new(Cloud::Aws, Some("123456789012".to_owned())).with_region("us-east-1")
    }

    fn ready_when(status: &str) -> Value {
        json!({"DevEndpoint": {"EndpointName": "ep", "Status": status}})
    }

    fn wait_step(interval_ms: u64, timeout_ms: u64) -> Step {
        let pattern = EventPattern::from_json(r#"{"DevEndpoint":{"Status":["READY"]}}"#).unwrap();
        Step::read_only(Command::new(
            "aws",
            ["glue", "get-dev-endpoint", "--endpoint-name", "ep"],
        ))
        .with_expectation(Expectation::new(pattern).polled(
            Duration::from_millis(interval_ms),
            Duration::from_millis(timeout_ms),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn polled_expectations_repeat_until_the_output_matches() {
        let aws = ScriptedAws::default()
            .answer("get-dev-endpoint", ready_when("PROVISIONING"))
            .answer("get-dev-endpoint", ready_when("PROVISIONING"))
            .answer("get-dev-endpoint", ready_when("READY"));
        let outcome = run_step(&aws, &wait_step(1000, 60_000), &target())
            .await
            .unwrap();
        assert_eq!(outcome.status, StepStatus::Ok);
        assert_eq!(aws.operations().len(), 3);

        let never = ScriptedAws::default().answer("get-dev-endpoint", ready_when("PROVISIONING"));
        let outcome = run_step(&never, &wait_step(1000, 5_000), &target())
            .await
            .unwrap();
        assert_eq!(outcome.status, StepStatus::Failed);
        assert!(
            outcome.stderr_tail.contains("expectation not met"),
            "{}",
            outcome.stderr_tail
        );
        assert_eq!(
            never.operations().len(),
            6,
            "attempts at 0, 1, .. 5 s: the last one at the deadline"
        );

        // Checked once when not polled; non-JSON output fails the check.
        let pattern = EventPattern::from_json(r#"{"PolicyName":["q"]}"#).unwrap();
        let once = Step::read_only(Command::new("aws", ["iam", "get-user-policy"]))
            .with_expectation(Expectation::new(pattern.clone()));
        let garbage = ScriptedAws::default().push("get-user-policy", Ok("not json".into()));
        let outcome = run_step(&garbage, &once, &target()).await.unwrap();
        assert_eq!(outcome.status, StepStatus::Failed);
        assert!(
            outcome.stderr_tail.contains("not JSON"),
            "{}",
            outcome.stderr_tail
        );
        // Only read-only steps may carry an expectation.
        let mut mutating = Step::new(Command::new("aws", ["iam", "get-user-policy"]))
            .with_expectation(Expectation::new(pattern));
        assert!(run_step(&garbage, &mutating, &target()).await.is_err());
        mutating.read_only = true;
        assert_eq!(
            run_step(&garbage, &mutating, &target())
                .await
                .unwrap()
                .status,
            StepStatus::Failed
        );
    }
}
