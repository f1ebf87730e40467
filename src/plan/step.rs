//! The words of a plan: a [`Plan`] of [`Step`]s for one target, or a
//! [`Skip`] with a reason, and the [`Expectation`] a read-only step's output
//! must meet.

use super::{Command, EventPattern, StepFile};
use crate::model::Target;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// One step of a plan: a command and why it runs.
///
/// A step is *mutating* unless marked [read-only](Step::read_only): a `get` or
/// `list` query that changes nothing. A dry run executes read-only steps for
/// real (up to the first mutating step) and only records the mutating ones. A
/// read-only step may carry an [`Expectation`] its JSON output must meet — a
/// post-condition checked once, or polled until it holds (waiting for a
/// resource to become ready while the engine keeps the delivery leased).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The command to run (an argv, never a shell string).
    pub command: Command,
    /// A human description, if the planner had one.
    pub description: Option<String>,
    /// Whether the command only reads (a query): dry runs execute it.
    pub read_only: bool,
    /// For a read-only step: what its JSON output must match.
    pub expect: Option<Expectation>,
    /// Files the command reads, written by the executor to a private
    /// temporary directory while it runs (see [`StepFile`]).
    pub files: Vec<StepFile>,
}

impl Step {
    /// A (mutating) step running `command`.
    pub fn new(command: Command) -> Self {
        Step {
            command,
            description: None,
            read_only: false,
            expect: None,
            files: Vec::new(),
        }
    }

    /// A read-only step running the query `command` (which must change
    /// nothing: dry runs execute it).
    pub fn read_only(command: Command) -> Self {
        Step {
            read_only: true,
            ..Step::new(command)
        }
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Attaches a file the command refers to by its name (an argument, an
    /// option's value or a `file://` URL); see [`StepFile`].
    pub fn with_file(mut self, file: StepFile) -> Self {
        self.files.push(file);
        self
    }

    /// Sets the condition the step's JSON output must meet (read-only steps only:
    /// [`Step::new`] steps with an expectation are refused when run).
    pub fn with_expectation(mut self, expect: Expectation) -> Self {
        self.expect = Some(expect);
        self
    }
}

/// A condition on a read-only step's standard output, parsed as JSON: an
/// EventBridge-style [`EventPattern`] it must match, checked once or polled.
///
/// A step whose output does not match (or is not JSON) fails like a command
/// that exited non-zero, so the plan stops there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expectation {
    /// What the output must match.
    pub pattern: EventPattern,
    /// If set, the query is repeated until the output matches or this gives up.
    pub poll: Option<Poll>,
}

impl Expectation {
    /// The output must match `pattern` (checked once).
    pub fn new(pattern: EventPattern) -> Self {
        Expectation {
            pattern,
            poll: None,
        }
    }

    /// Repeats the query every `interval` until the output matches, for at most `timeout`.
    pub fn polled(mut self, interval: Duration, timeout: Duration) -> Self {
        self.poll = Some(Poll { interval, timeout });
        self
    }
}

/// How often and how long to repeat a query until its [`Expectation`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Poll {
    /// The pause between attempts.
    pub interval: Duration,
    /// When to give up (counted from the first attempt).
    pub timeout: Duration,
}

/// An ordered list of steps for one event, run in `target`'s context. Execution
/// stops at the first failed step.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// Which planner made this plan (`alert-cli`, `prisma`...).
    pub planner: String,
    /// A human description (for Prisma, the API's `cliDescription`).
    pub description: Option<String>,
    /// Where the steps run.
    pub target: Target,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The rule that made it, where a planner holds several (the CloudTrail
    /// planner: the rule's name). Guardrails count and configure by rule:
    /// this, else the finding's policy (Prisma), else the planner.
    pub rule: Option<String>,
}

impl Plan {
    /// A plan by `planner` running `steps` in `target`.
    pub fn new(planner: impl Into<String>, target: Target, steps: Vec<Step>) -> Self {
        Plan {
            planner: planner.into(),
            description: None,
            target,
            steps,
            rule: None,
        }
    }

    /// Sets the rule that made the plan.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Sets the description.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// Why an event is deliberately not remediated. A skipped delivery is acked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// The alert is not open (resolved, dismissed, snoozed).
    NotOpen,
    /// Prisma Cloud says the alert is not remediable.
    NotRemediable,
    /// Prisma Cloud's test notification (`T-0`).
    TestNotification,
    /// The same finding was already remediated (or is being remediated).
    Duplicate,
    /// No planner has anything to run for this event.
    NoRemediation,
    /// The event was caused by the remediator itself, or filtered out by a rule.
    Ignored,
}

impl SkipReason {
    /// The reason code written in audit records.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::NotOpen => "not_open",
            SkipReason::NotRemediable => "not_remediable",
            SkipReason::TestNotification => "test_notification",
            SkipReason::Duplicate => "duplicate",
            SkipReason::NoRemediation => "no_remediation",
            SkipReason::Ignored => "ignored",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A deliberate decision not to remediate, with a reason code and detail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skip {
    /// The reason code.
    pub reason: SkipReason,
    /// Human detail.
    pub detail: String,
}

impl Skip {
    /// A skip for `reason` with `detail`.
    pub fn new(reason: SkipReason, detail: impl Into<String>) -> Self {
        Skip {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a planner decided for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one decision per event, moved a few times: boxing a plan would cost an allocation each"
)]
pub enum Decision {
    /// Run these steps.
    Plan(Plan),
    /// Do nothing, deliberately.
    Skip(Skip),
}
