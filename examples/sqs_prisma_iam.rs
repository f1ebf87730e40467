//! `sqs_prisma_iam` — the published Prisma Cloud IAM remediation script, ported.
//!
//! Reads Prisma Cloud alerts from an SQS queue, asks the Prisma Cloud API for
//! each alert's CLI remediation, and runs it — as argv, never through a shell —
//! with the AWS profile mapped to the alert's account. Configured like the
//! original, from the environment:
//!
//! | variable | meaning |
//! |----------|---------|
//! | `SQS_QUEUE_NAME` (or `SQS_QUEUE_URL`) | the queue |
//! | `API_ENDPOINT` | the Prisma Cloud API (`api.prismacloud.io`, `api2.eu`...) |
//! | `AUTH_KEY`, or `PRISMA_ACCESS_KEY_ID` + `PRISMA_SECRET_KEY` | credentials (a key pair can log in again when the token expires) |
//! | `ACCOUNT_PROFILES` | `123456789012=default,210987654321=prod`: which AWS profile runs each account's commands |
//! | `DEBUG` | `true`/`1`: debug logging |
//! | `AWS_ENDPOINT_URL`, `SQS_DEAD_LETTER_QUEUE_URL`, ... | as for `SqsSource::from_env` |
//!
//! Like the original it drains the queue and exits once a receive waited
//! `--drain-wait` seconds and got nothing (poison is dead-lettered on each
//! delivery, so it is parked — or redriven by the queue's policy — before the
//! exit, never left behind; a message whose step failed waits out its retry
//! delay in the queue for the next run); `--follow`
//! keeps it running until Ctrl-C. Unlike the original it deletes a message
//! only after its remediation succeeded, in batches, and extends visibility
//! while commands run.
//!
//! ```text
//! SQS_QUEUE_NAME=prisma-alerts API_ENDPOINT=api2.eu PRISMA_ACCESS_KEY_ID=... \
//! PRISMA_SECRET_KEY=... ACCOUNT_PROFILES=123456789012=default \
//!   cargo run --release --features sqs,prisma --example sqs_prisma_iam
//! ```

use clap::Parser;
use remediation::engine::{Engine, EngineConfig, JsonLinesAudit};
use remediation::executor::{CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::prisma::PrismaPlannerBuilder;
use remediation::source::sqs::SqsSourceBuilder;
use remediation::source::{AlertSource, Drain};
use remediation::telemetry::Stats;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "sqs_prisma_iam",
    about = "Remediate Prisma Cloud alerts from SQS"
)]
struct Args {
    /// Keep running until stopped instead of exiting once the queue is empty.
    #[arg(long)]
    follow: bool,
    /// Allow a plain-http API_ENDPOINT (loopback tests only).
    #[arg(long)]
    allow_http: bool,
    /// Long-poll wait when draining, in seconds: the queue counts as empty
    /// after one receive that waited this long and got nothing.
    #[arg(long, default_value_t = 2)]
    drain_wait: u64,
    /// Append one JSON audit line per message to PATH.
    #[arg(long)]
    audit: Option<std::path::PathBuf>,
    /// Plan and check every alert but run nothing that changes anything
    /// (read-only queries still run) and settle nothing: messages stay queued.
    #[arg(long)]
    dry_run: bool,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sqs_prisma_iam: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let debug = std::env::var("DEBUG")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false);
    tracing_subscriber::fmt()
        .with_env_filter(if debug { "debug" } else { "info" })
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();

    let contexts = match std::env::var("ACCOUNT_PROFILES") {
        Ok(list) => match ContextMap::parse_aws_profiles(&list) {
            Ok(c) => c,
            Err(e) => return fail(format!("ACCOUNT_PROFILES: {e}")),
        },
        Err(_) => return fail("ACCOUNT_PROFILES is not set (e.g. 123456789012=default)"),
    };
    let stats = Arc::new(Stats::new());
    let policy = CommandPolicy::default();
    let planner = match PrismaPlannerBuilder::from_env()
        .with_allow_http(args.allow_http)
        .with_policy(policy.clone())
        .with_engine_stats(Arc::clone(&stats))
        .build()
    {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut sqs = SqsSourceBuilder::from_env().with_stats(Arc::clone(&stats));
    if !args.follow {
        sqs = sqs.with_wait(Duration::from_secs(args.drain_wait));
    }
    let sqs = match sqs.build().await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let source: Arc<dyn AlertSource> = if args.follow {
        Arc::new(sqs)
    } else {
        Arc::new(Drain::new(sqs))
    };
    let process = ProcessExecutor::new(policy.clone(), contexts.clone());
    let executor: Arc<dyn CommandExecutor> = if args.dry_run {
        // Nothing mutating runs; read-only queries go to the process executor
        // a real run would use. Like `remediate`'s dry run, `aws` is not required.
        let dry = DryRunExecutor::new(policy, contexts);
        Arc::new(dry.with_query_executor(Arc::new(process)))
    } else {
        // A missing CLI is found now, not at the first alert.
        if let Err(e) = process.require_programs(["aws"]) {
            eprintln!("sqs_prisma_iam: {e}");
            return ExitCode::from(2);
        }
        // ... and one that cannot run sealed (a shim, a missing interpreter) too.
        if let Err(e) = process.verify_programs(["aws"]).await {
            eprintln!("sqs_prisma_iam: {e}");
            return ExitCode::from(2);
        }
        Arc::new(process)
    };
    let mut engine = Engine::builder(source, Arc::new(planner), executor)
        // Poison (undecodable, unsafe, unmapped account) is dead-lettered at once;
        // a failing step is retried on later deliveries.
        .config(EngineConfig::default())
        .stats(stats);
    if let Some(path) = &args.audit {
        match JsonLinesAudit::append(path) {
            Ok(a) => engine = engine.audit(Arc::new(a)),
            Err(e) => return fail(e),
        }
    }
    let engine = engine.build();

    let cancel = remediation::engine::shutdown_on_signal();
    match engine.run(cancel).await {
        Ok(summary) => {
            eprintln!(
                "sqs_prisma_iam: {}",
                serde_json::to_string(&summary.to_detailed_json()).unwrap_or_default()
            );
            if args.dry_run {
                eprintln!("sqs_prisma_iam: dry run: nothing ran and nothing was settled");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("source failed: {e}")),
    }
}
