//! The vocabulary of a remediation: what a planner decides and an executor
//! runs.
//!
//! * a [`Decision`] for each event: a [`Plan`] of ordered [`Step`]s in one
//!   [`Target`](crate::model::Target), or a [`Skip`] with a [`SkipReason`];
//! * a step's [`Command`] — an argv, never a shell string — with the
//!   [`StepFile`]s it reads and an [`Expectation`] on its output (an
//!   [`EventPattern`], checked once or [polled](Poll));
//! * [`parse_script`], which turns CLI-script text from an alert or an API
//!   into commands, and the [`CommandPolicy`] every command must pass.
//!
//! This module imports nothing of the pipeline (sources, planners,
//! executors, the engine): every part of it may use these words.

mod command;
pub(crate) mod execution;
pub(crate) mod file;
mod pattern;
pub(crate) mod policy;
mod step;

pub(crate) use command::parse_script_steps_for;
pub use command::{Command, parse_script, parse_script_steps};
pub use file::{MAX_FILE_BYTES, MAX_STEP_FILES, StepFile};
pub(crate) use pattern::Wildcard;
pub use pattern::{EventPattern, NUMERIC_LIMIT, PatternError};
pub use policy::{
    CommandPolicy, DEFAULT_MAX_COMMANDS, DenyProbe, OperationClass, PolicyFile, ProbeVerdict,
    is_query,
};
pub use step::{Decision, Expectation, Plan, Poll, Skip, SkipReason, Step};
