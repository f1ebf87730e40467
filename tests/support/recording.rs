//! An executor that records what it ran instead of running it: each step is
//! named by its last argument, can be delayed (by a function of that name)
//! and can fail its first attempt, for tests of delivery semantics.

use async_trait::async_trait;
use remediation::executor::{CommandExecutor, StepOutcome, StepStatus};
use remediation::model::Target;
use remediation::plan::Step;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Succeeds (unless failing a first attempt) and records each step's last
/// argument in completion order, after sleeping `delay_ms(last argument)`.
#[derive(Debug)]
pub struct RecordingExecutor {
    done: Mutex<Vec<String>>,
    delay_ms: fn(&str) -> u64,
    /// Whether each step's first attempt fails (exit 1).
    pub fail_first: bool,
    /// How many first attempts of each step fail (exit 1), besides `fail_first`.
    pub failures: u32,
    attempts: Mutex<HashMap<String, u32>>,
}

impl RecordingExecutor {
    /// Steps take `delay_ms(last argument)` milliseconds.
    pub fn new(delay_ms: fn(&str) -> u64) -> Self {
        RecordingExecutor {
            done: Mutex::new(Vec::new()),
            delay_ms,
            fail_first: false,
            failures: 0,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// The last arguments of the steps that succeeded, in order.
    pub fn done(&self) -> Vec<String> {
        self.done.lock().unwrap().clone()
    }
}

/// For [`RecordingExecutor::new`]: no step waits.
pub fn no_delay(_: &str) -> u64 {
    0
}

#[async_trait]
impl CommandExecutor for RecordingExecutor {
    fn check(&self, _step: &Step, _target: &Target) -> remediation::Result<()> {
        Ok(())
    }
    async fn execute(&self, step: &Step, _target: &Target) -> remediation::Result<StepOutcome> {
        let last = step
            .command
            .argv()
            .last()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(last.clone()).or_default();
            *n += 1;
            *n
        };
        let delay = (self.delay_ms)(&last);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if (self.fail_first && attempt == 1) || attempt <= self.failures {
            let mut o = StepOutcome::new(StepStatus::Failed);
            o.exit_code = Some(1);
            o.stderr_tail = "simulated failure".into();
            return Ok(o);
        }
        self.done.lock().unwrap().push(last);
        Ok(StepOutcome::new(StepStatus::Ok))
    }
}
