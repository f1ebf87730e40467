//! `pubsub_worker` — a Google Cloud Pub/Sub remediation worker in a page:
//! `PubSubSource` (streaming pull, flow control, the client's lease
//! management) → `alert-cli` (Prisma Cloud GCP alerts carrying their `gcloud`
//! script) → `gcloud` run in the mapped project, one JSON audit line per
//! delivery on stdout.
//!
//! Configuration from the environment (see `PubSubSourceBuilder::from_env`):
//! `PUBSUB_SUBSCRIPTION` (`projects/P/subscriptions/S`), `PUBSUB_EMULATOR_HOST`
//! for the emulator, `PUBSUB_DEAD_LETTER_TOPIC`, `PUBSUB_MAX_OUTSTANDING_MESSAGES`...
//!
//! ```text
//! PUBSUB_SUBSCRIPTION=projects/sec-ops/subscriptions/prisma-alerts \
//!   cargo run --release --features pubsub --example pubsub_worker -- \
//!     --gcp-project prod-project-1 --gcp-project prod-project-2=/etc/remediation/gcloud-prod2 --execute
//! ```
//!
//! Runs until Ctrl-C, or with `--drain SECS` until the subscription has been
//! idle that long. Without `--execute` it is a dry run: it prints what it would
//! run and settles nothing. Exit status 2 on bad configuration.

use clap::Parser;
use remediation::engine::{Engine, EngineConfig, JsonLinesAudit};
use remediation::executor::{
    CommandExecutor, ContextMap, DryRunExecutor, GcpProjectMapping, ProcessExecutor,
};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::pubsub::PubSubSource;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "pubsub_worker",
    about = "Remediate findings from a Pub/Sub subscription"
)]
struct Args {
    /// A GCP project whose commands may run, with an optional CLOUDSDK_CONFIG
    /// directory: `PROJECT[=DIR]` (repeatable). Other projects are refused.
    #[arg(long = "gcp-project", value_name = "PROJECT[=CLOUDSDK_CONFIG]")]
    gcp_projects: Vec<String>,
    /// Run the commands (default: dry run).
    #[arg(long)]
    execute: bool,
    /// Stop once no message arrived for SECS seconds and nothing is in flight.
    #[arg(long, value_name = "SECS")]
    drain: Option<u64>,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("pubsub_worker: {e}");
        ExitCode::from(2)
    };

    let mut contexts = ContextMap::new();
    for m in &args.gcp_projects {
        match m.parse::<GcpProjectMapping>() {
            Ok(m) => contexts = contexts.with_gcp_mapping(m),
            Err(e) => return fail(&format!("--gcp-project {m:?}: {e}")),
        }
    }
    let source = match PubSubSource::from_env().await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let policy = CommandPolicy::default();
    let executor: Arc<dyn CommandExecutor> = if args.execute {
        let executor = ProcessExecutor::new(policy.clone(), contexts);
        // A missing CLI is found now, not at the first alert.
        if let Err(e) = executor.require_programs(["gcloud"]) {
            return fail(&e);
        }
        if let Err(e) = executor.verify_programs(["gcloud"]).await {
            return fail(&e);
        }
        Arc::new(executor)
    } else {
        Arc::new(DryRunExecutor::new(policy.clone(), contexts))
    };
    let audit = JsonLinesAudit::stdout();
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(policy)),
        executor,
    )
    .config(EngineConfig::default().with_concurrency(args.concurrency))
    .audit(Arc::new(audit))
    .build();

    let cancel = remediation::engine::shutdown_on_signal();
    if let Some(idle) = args.drain.map(Duration::from_secs) {
        // Idle: nothing received for `idle`, and every delivery decided.
        let (engine, cancel) = (engine.clone(), cancel.clone());
        tokio::spawn(async move {
            let (mut seen, mut since) = (u64::MAX, Instant::now());
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = engine.stats().snapshot();
                let decided = s.executed + s.planned + s.skipped + s.failed + s.rejected;
                if s.received != seen || decided < s.received {
                    (seen, since) = (s.received, Instant::now());
                } else if since.elapsed() >= idle {
                    cancel.cancel();
                    return;
                }
            }
        });
    }

    let outcome = engine.run(cancel).await;
    // Sends the acks the client still holds; nacks what was never handed out.
    source.shutdown().await;
    match outcome {
        Ok(s) => {
            eprintln!(
                "pubsub_worker: received {} executed {} planned {} skipped {} failed {} rejected {} dead_lettered {}",
                s.received, s.executed, s.planned, s.skipped, s.failed, s.rejected, s.dead_lettered
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("source failed: {e}")),
    }
}
