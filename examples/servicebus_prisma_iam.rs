//! `servicebus_prisma_iam` — the published Prisma Cloud Azure remediation
//! script, done right.
//!
//! The published script reads alerts from an Azure Service Bus queue with a
//! retired SDK, asks the Prisma Cloud API for each alert's CLI remediation and
//! runs the literal string `az cli_commands` through a shell with an AWS
//! variable set. This reads the queue with peek-lock, asks the Prisma Cloud
//! API for many alerts at once, runs each `az` command as argv (never a
//! shell) in the alert's subscription (`--subscription`, and the mapped
//! `AZURE_CONFIG_DIR` login), completes a message only after its commands
//! succeeded, renews the lock while they run, and leaves poison to the
//! queue's `MaxDeliveryCount` (or forwards it to a dead-letter queue).
//!
//! | variable | meaning |
//! |----------|---------|
//! | `SB_QUEUE_NAME_SPACE`, `SB_QUEUE_NAME`, `SB_QUEUE_KEY_NAME`, `SB_QUEUE_KEY` | the queue and its key, as in the published script |
//! | `SERVICEBUS_CONNECTION_STRING` | instead of the `SB_QUEUE_*` key variables (`Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...`) |
//! | `SERVICEBUS_ENDPOINT`, `SERVICEBUS_DEAD_LETTER_QUEUE`, ... | as for `ServiceBusSourceBuilder::from_env` |
//! | `API_ENDPOINT` | the Prisma Cloud API (`api.prismacloud.io`, `api2.eu`...) |
//! | `AUTH_KEY`, or `PRISMA_ACCESS_KEY_ID` + `PRISMA_SECRET_KEY` | Prisma Cloud credentials |
//! | `AZURE_SUBSCRIPTIONS` | `SUB[=AZURE_CONFIG_DIR],...`: the subscriptions whose alerts may be remediated, each optionally with the `az` login directory to use; any other subscription is refused |
//! | `DEBUG` | `true`/`1`: debug logging |
//!
//! Like the original it drains the queue and exits once a receive waited
//! `--drain-wait` seconds and got nothing; `--follow` keeps it running until
//! Ctrl-C. Exit status 2 on bad configuration or a failing queue (a wrong key
//! is reported at once, naming the namespace).
//!
//! ```text
//! SB_QUEUE_NAME_SPACE=contoso-alerts SB_QUEUE_NAME=prisma SB_QUEUE_KEY_NAME=listen \
//! SB_QUEUE_KEY=... API_ENDPOINT=api2.eu PRISMA_ACCESS_KEY_ID=... PRISMA_SECRET_KEY=... \
//! AZURE_SUBSCRIPTIONS=0b1f6471-1bf0-4dda-aec3-111122223333 \
//!   cargo run --release --features servicebus,prisma --example servicebus_prisma_iam
//! ```

use clap::Parser;
use remediation::engine::{Engine, EngineConfig, JsonLinesAudit};
use remediation::executor::{AzureSubscriptionMapping, CommandExecutor, ContextMap};
use remediation::executor::{DryRunExecutor, ProcessExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::prisma::PrismaPlannerBuilder;
use remediation::source::servicebus::ServiceBusSourceBuilder;
use remediation::source::{AlertSource, Drain};
use remediation::telemetry::Stats;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "servicebus_prisma_iam",
    about = "Remediate Prisma Cloud Azure alerts from a Service Bus queue"
)]
struct Args {
    /// Keep running until stopped instead of exiting once the queue is empty.
    #[arg(long)]
    follow: bool,
    /// Allow a plain-http API_ENDPOINT (loopback tests only).
    #[arg(long)]
    allow_http: bool,
    /// Peek-lock wait when draining, in seconds: the queue counts as empty
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
    eprintln!("servicebus_prisma_iam: {message}");
    ExitCode::from(2)
}

/// `AZURE_SUBSCRIPTIONS`: `SUB[=AZURE_CONFIG_DIR]`, comma-separated.
fn subscriptions(list: &str) -> remediation::Result<ContextMap> {
    let mut contexts = ContextMap::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        contexts = contexts.with_azure_mapping(item.parse::<AzureSubscriptionMapping>()?);
    }
    Ok(contexts)
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

    let contexts = match std::env::var("AZURE_SUBSCRIPTIONS") {
        Ok(list) => match subscriptions(&list) {
            Ok(c) => c,
            Err(e) => return fail(format!("AZURE_SUBSCRIPTIONS: {e}")),
        },
        Err(_) => {
            return fail(
                "AZURE_SUBSCRIPTIONS is not set (e.g. 0b1f6471-1bf0-4dda-aec3-111122223333 \
                 or SUB=/home/me/.azure-prod)",
            );
        }
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
    let mut queue = ServiceBusSourceBuilder::from_env().with_stats(Arc::clone(&stats));
    if !args.follow {
        queue = queue.with_wait(Duration::from_secs(args.drain_wait));
    }
    let queue = match queue.build() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let source: Arc<dyn AlertSource> = if args.follow {
        Arc::new(queue)
    } else {
        Arc::new(Drain::new(queue))
    };
    let process = ProcessExecutor::new(policy.clone(), contexts.clone());
    let executor: Arc<dyn CommandExecutor> = if args.dry_run {
        // Nothing mutating runs; read-only queries go to the process executor
        // a real run would use. Like `remediate`'s dry run, `az` is not required.
        let dry = DryRunExecutor::new(policy, contexts);
        Arc::new(dry.with_query_executor(Arc::new(process)))
    } else {
        // A missing CLI is found now, not at the first alert.
        if let Err(e) = process.require_programs(["az"]) {
            eprintln!("servicebus_prisma_iam: {e}");
            return ExitCode::from(2);
        }
        // ... and one that cannot run sealed (a shim, a missing interpreter) too.
        if let Err(e) = process.verify_programs(["az"]).await {
            eprintln!("servicebus_prisma_iam: {e}");
            return ExitCode::from(2);
        }
        Arc::new(process)
    };
    let mut engine = Engine::builder(source, Arc::new(planner), executor)
        // Poison (undecodable, unsafe, unmapped subscription) is dead-lettered at
        // once; a failing step is retried on later deliveries.
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
                "servicebus_prisma_iam: {}",
                serde_json::to_string(&summary.to_detailed_json()).unwrap_or_default()
            );
            if args.dry_run {
                eprintln!("servicebus_prisma_iam: dry run: nothing ran and nothing was settled");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("source failed: {e}")),
    }
}
