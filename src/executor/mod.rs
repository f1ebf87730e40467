//! Execution: running a [`Step`](crate::plan::Step) in a target's context.
//!
//! Commands are argv vectors, never shell strings ([`Command`](crate::plan::Command)); scripts from an
//! API or an alert go through [`parse_script`](crate::plan::parse_script) and a [`CommandPolicy`](crate::plan::CommandPolicy) first.
//! A [`ContextMap`] says which AWS profile and region each account's steps run
//! with; [`ProcessExecutor`] runs them as child processes and
//! [`DryRunExecutor`] records what would run.

mod context;
mod dry_run;
mod expect;
mod files;
mod probe;
mod process;
mod sandbox;
mod verify;
pub use sandbox::CHILD_ENV;

pub(crate) use expect::run_step;

pub use crate::plan::execution::{CommandExecutor, Env, ProbeRun, StepOutcome, StepStatus};
pub use context::{
    AWS_DEFAULT_REGION, AWS_PROFILE, AWS_REGION, AZURE_CONFIG_DIR, AwsProfileMapping, AzureContext,
    AzureSubscriptionMapping, CLOUDSDK_CONFIG, CLOUDSDK_CORE_PROJECT, ContextMap, ExecContext,
    GcpContext, GcpProjectMapping,
};
pub use dry_run::{DEFAULT_RECORD_LIMIT, DryRunExecutor, RecordedStep};
pub use process::{
    AwsSourceCredentials, DEFAULT_OUTPUT_LIMIT, DEFAULT_QUERY_OUTPUT_LIMIT, DEFAULT_TIMEOUT,
    ProcessExecutor, SCRUBBED_ENV,
};
