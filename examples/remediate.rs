//! `remediate` — the configurable remediation worker.
//!
//! With no arguments it runs the bundled sample (`examples/data/sample-alerts.jsonl`)
//! through the `alert-cli` planner and the dry-run executor and prints what it would
//! do. `--source` takes a [`remediation::source::from_spec`] spec (queues configured
//! from their backend's environment variables), `--planner` picks planners in order,
//! `--account-profile` and friends map targets to contexts, `--execute` runs for real:
//!
//! ```text
//! cargo run --release --example remediate
//! cargo run --release --features sqs,prisma,dynamodb --example remediate -- \
//!     --source sqs:prisma-alerts --planner prisma --dedup-table remediation-dedup \
//!     --account-profile 123456789012=prod --audit audit.jsonl --execute
//! ```
//!
//! `--drain` stops once the source has been empty for one receive wait (a
//! queue drained, as `sqs_prisma_iam` does). The README's "Worker" section
//! shows each backend. Exit status 0 when the run completed, whatever the
//! decisions; 2 on bad configuration or an unreadable source.

use clap::Parser;
use remediation::engine::LeasePolicy;
use remediation::engine::{AuditSink, DedupStore, Engine, EngineConfig, JsonLinesAudit};
use remediation::engine::{TeeAudit, TextAudit, shutdown_on_signal};
use remediation::executor::{AwsProfileMapping, AzureSubscriptionMapping, GcpProjectMapping};
use remediation::executor::{CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor};
use remediation::pipeline::PolicyFilter;
use remediation::plan::CommandPolicy;
use remediation::planner::{AlertCliPlanner, CloudTrailPlanner, PlannerChain, RemediationPlanner};
use remediation::rules::RuleSet;
use remediation::source::{self, AlertSource, Drain, FileSource};
use remediation::telemetry::{Backoff, Summary};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[path = "remediate_support/check.rs"]
mod check;
#[path = "remediate_support/guardrails.rs"]
mod guardrails;

/// A failure that stops the worker before or during its run.
type Failure = Box<dyn std::error::Error>;

/// The bundled sample: every gate case, a garbage line, a CloudTrail event, an SNS wrapper.
const SAMPLE: &[u8] = include_bytes!("data/sample-alerts.jsonl");
/// The account the bundled sample's alerts belong to.
const SAMPLE_ACCOUNT: &str = "123456789012";

/// Turn cloud security findings into safe, automatic fixes.
#[derive(Parser, Debug)]
#[command(name = "remediate")]
struct Args {
    /// `file:PATH`, `stdin`, `sqs:NAME_OR_URL`, `pubsub:SUBSCRIPTION`, `servicebus:NS/ENTITY` (default: the sample).
    #[arg(long)]
    source: Option<String>,
    /// Planner to ask, in order (repeatable): `alert-cli`, `cloudtrail` (with --rules), `prisma`.
    #[arg(long = "planner", default_value = "alert-cli", value_parser = ["alert-cli", "cloudtrail", "prisma"])]
    planners: Vec<String>,
    /// CloudTrail rules for `--planner cloudtrail`: a JSON (`.json`) or YAML file.
    #[arg(long, value_name = "FILE", value_parser = |p: &str| RuleSet::from_path(p))]
    rules: Option<RuleSet>,
    /// Run the commands (default: dry run, nothing runs and nothing is settled).
    #[arg(long)]
    execute: bool,
    /// Append one JSON audit line per delivery to PATH.
    #[arg(long)]
    audit: Option<PathBuf>,
    /// Map an AWS account to the profile its commands run with (repeatable).
    #[arg(long = "account-profile", value_name = "ACCOUNT=PROFILE")]
    account_profiles: Vec<AwsProfileMapping>,
    /// Profile for accounts without a mapping (explicit opt-in; otherwise they are refused).
    #[arg(long)]
    default_profile: Option<String>,
    /// Run `az` for this subscription (repeatable), with its own `AZURE_CONFIG_DIR` if given.
    #[arg(
        long = "azure-subscription",
        value_name = "SUBSCRIPTION[=AZURE_CONFIG_DIR]"
    )]
    azure_subscriptions: Vec<AzureSubscriptionMapping>,
    /// Run `gcloud` for this project (repeatable), with its own `CLOUDSDK_CONFIG` if given.
    #[arg(long = "gcp-project", value_name = "PROJECT[=CLOUDSDK_CONFIG]")]
    gcp_projects: Vec<GcpProjectMapping>,
    /// Plans running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Deliveries received and not yet settled (running, waiting to be
    /// planned or to run); at least the concurrency. Default 64.
    #[arg(long)]
    read_ahead: Option<usize>,
    /// `json`: the last stdout line is the summary as JSON. `text`: a summary line on stderr.
    #[arg(long, value_parser = ["json", "text"], default_value = "text")]
    summary: String,
    /// Per-step timeout in seconds.
    #[arg(long, default_value_t = 300)]
    step_timeout: u64,
    /// Seconds before a failed delivery is retried after its first failed
    /// attempt; doubled for each failed attempt after it, up to 15 min.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    retry_after: u64,
    /// Seconds each lease extension asks for while a delivery is held (SQS:
    /// the visibility timeout it sets), sent before the lease ends; a worker
    /// that dies leaves its deliveries hidden this long at most.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    lease_extension: u64,
    /// Dead-letter a failing delivery at this failed attempt (where the
    /// source counts attempts apart from receives, as SQS re-queueing does;
    /// else at this delivery count), or at twice this delivery count.
    #[arg(long, default_value_t = 5)]
    max_deliveries: u32,
    /// Refuse a script (alert-cli, prisma) holding more commands than this.
    #[arg(long, default_value_t = remediation::plan::DEFAULT_MAX_COMMANDS)]
    max_commands: usize,
    /// Widen or narrow the operation catalog from a YAML or JSON file (README: security model).
    #[arg(long, value_name = "FILE", value_parser = |p: &str| CommandPolicy::from_file(p))]
    command_policy: Option<CommandPolicy>,
    /// Give every command this variable (repeatable; `NAME` alone passes the worker's own).
    #[arg(long = "child-env", value_name = "NAME[=VALUE]")]
    child_env: Vec<String>,
    /// In dry run, settle deliveries as a real run would.
    #[arg(long)]
    settle_in_dry_run: bool,
    /// Prisma: allow a plain http:// API_ENDPOINT on a loopback host (tests against a mock).
    #[arg(long)]
    allow_http: bool,
    /// Prisma: the most alert ids per remediation request.
    #[arg(long, default_value_t = 50)]
    prisma_max_batch: usize,
    /// Prisma: how long to collect ids for one request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    prisma_batch_window_ms: u64,
    /// Prisma: `v1` (batched POST, default) or `v2` (one GET per alert).
    #[arg(long, value_parser = ["v1", "v2"], default_value = "v1")]
    prisma_api: String,
    /// Prisma: also trust the CA certificates in this PEM file (verification stays on).
    #[arg(long)]
    prisma_ca_bundle: Option<PathBuf>,
    /// Share deduplication with other workers in this DynamoDB table (default: in memory).
    #[arg(long, value_name = "NAME")]
    dedup_table: Option<String>,
    /// How long a dedup claim lasts, in seconds, with a store that renews
    /// claims (memory, DynamoDB): renewed every third of it while its
    /// delivery's work runs, so a worker that dies frees its claims within it.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    claim_lease: u64,
    /// Stop once one receive waited the source's whole wait and got nothing
    /// (`SQS_WAIT_TIME_SECONDS`: default 10 s; `SERVICEBUS_WAIT_SECONDS`: 20 s; Pub/Sub
    /// 10 s), after the work in flight finished; files and stdin end at their end.
    #[arg(long)]
    drain: bool,
    /// Remediate only alerts of this Prisma policy, by name or id (repeatable);
    /// the others are skipped with `excluded`.
    #[arg(long = "only-policy", value_name = "NAME")]
    only_policies: Vec<String>,
    /// Skip alerts of this Prisma policy, by name or id (repeatable), with `excluded`.
    #[arg(long = "skip-policy", value_name = "NAME")]
    skip_policies: Vec<String>,
    /// Stop with an error once the audit sink has failed this many seconds
    /// (meanwhile nothing is acked or dead-lettered without its record).
    #[arg(long, default_value_t = 60)]
    audit_outage_limit: u64,
    /// Do not print a line per delivery.
    #[arg(long, short)]
    quiet: bool,
    /// Guardrails — rate limits, circuit breakers, shadow mode — from a YAML
    /// or JSON file (README: guardrails).
    #[arg(long, global = true, value_name = "FILE")]
    guardrails: Option<PathBuf>,
    /// A tool instead of the worker.
    #[command(subcommand)]
    tool: Option<Tool>,
}

/// The subcommands: tools for an operator, beside the worker.
#[derive(clap::Subcommand, Debug)]
enum Tool {
    /// The circuit breakers of `--guardrails FILE`'s shared store.
    Circuit {
        #[command(subcommand)]
        action: CircuitAction,
    },
    /// Summarises an audit file per rule: decisions, reason codes, accounts
    /// and resources touched, refusals, and the plans shadow mode would have run.
    Report {
        /// The audit file (`--audit` of a run).
        #[arg(long, value_name = "FILE")]
        audit: PathBuf,
        /// JSON for a pipeline instead of a table for a person.
        #[arg(long)]
        json: bool,
    },
    /// Preflight: the source, each CLI (found, runs sealed, its version),
    /// every `--account-profile` account (`sts get-caller-identity` names
    /// it), the `--dedup-table`, the `--guardrails` file and its store's
    /// table, the Prisma login (`--planner prisma`). Exit 1 when a check failed.
    Check {
        /// JSON for a pipeline instead of a table for a person.
        #[arg(long)]
        json: bool,
    },
}

/// `remediate circuit ...`.
#[derive(clap::Subcommand, Debug)]
enum CircuitAction {
    /// Every open circuit: key, state, since when, why.
    List,
    /// Closes a circuit (`rule:NAME`, `target:CLOUD:ACCOUNT:REGION`, or a
    /// rule's name): the plans it held run at their next delivery.
    Close {
        /// The circuit.
        key: String,
    },
}

/// `--dedup-table NAME`: the shared DynamoDB store.
#[cfg(feature = "dynamodb")]
async fn dedup_store(table: &str) -> Result<Arc<dyn DedupStore>, Failure> {
    use remediation::engine::dedup_dynamodb::DynamoDedupBuilder;
    let store = DynamoDedupBuilder::from_env().with_table(table);
    Ok(Arc::new(store.build().await?))
}

#[cfg(not(feature = "dynamodb"))]
async fn dedup_store(_table: &str) -> Result<Arc<dyn DedupStore>, Failure> {
    Err("--dedup-table needs the `dynamodb` cargo feature".into())
}

/// The execution contexts the flags map targets to.
fn contexts(args: &Args) -> ContextMap {
    let aws = args.account_profiles.iter().cloned();
    let mut contexts = aws.fold(ContextMap::new(), ContextMap::with_aws_mapping);
    if let Some(p) = &args.default_profile {
        contexts = contexts.with_default_aws_profile(p);
    }
    let azure = args.azure_subscriptions.iter().cloned();
    contexts = azure.fold(contexts, ContextMap::with_azure_mapping);
    let gcp = args.gcp_projects.iter().cloned();
    contexts = gcp.fold(contexts, ContextMap::with_gcp_mapping);
    if args.source.is_none() && contexts.clis().is_empty() {
        eprintln!(
            "remediate: running the bundled sample; mapping its account {SAMPLE_ACCOUNT} to profile \
             `default` for this demo (use --account-profile to map your own)"
        );
        contexts = contexts.with_aws_profile(SAMPLE_ACCOUNT, "default");
    }
    contexts
}

/// The executor: the process executor with `--execute` (after checking that
/// the CLIs of the mapped clouds are there, `aws` when none is mapped), else
/// the dry run, whose read-only queries still run through a process executor.
async fn executor(
    args: &Args,
    policy: &CommandPolicy,
) -> Result<Arc<dyn CommandExecutor>, Failure> {
    let contexts = contexts(args);
    let timeout = Duration::from_secs(args.step_timeout);
    let clis = contexts.clis();
    let mut process = ProcessExecutor::new(policy.clone(), contexts.clone()).with_timeout(timeout);
    for spec in &args.child_env {
        process = process.with_child_env(spec);
    }
    if !args.execute {
        let dry = DryRunExecutor::new(policy.clone(), contexts);
        return Ok(Arc::new(dry.with_query_executor(Arc::new(process))));
    }
    let clis = if clis.is_empty() { vec!["aws"] } else { clis };
    process.require_programs(clis.iter().copied())?;
    // Each CLI runs once, sealed: one that cannot is a start-up error.
    process.verify_programs(clis.iter().copied()).await?;
    Ok(Arc::new(process))
}

/// The planners named by `--planner`, in order.
fn planner(
    args: &Args,
    policy: &CommandPolicy,
    executor: &Arc<dyn CommandExecutor>,
) -> Result<Arc<dyn RemediationPlanner>, Failure> {
    let mut planners: Vec<Box<dyn RemediationPlanner>> = Vec::new();
    for name in &args.planners {
        planners.push(match name.as_str() {
            "cloudtrail" => {
                let rules = args
                    .rules
                    .clone()
                    .ok_or("--planner cloudtrail needs --rules FILE")?;
                Box::new(CloudTrailPlanner::new(rules, Arc::clone(executor)))
            }
            #[cfg(feature = "prisma")]
            "prisma" => Box::new(prisma_planner(args, policy)?),
            #[cfg(not(feature = "prisma"))]
            "prisma" => return Err("--planner prisma needs the `prisma` cargo feature".into()),
            _ => Box::new(AlertCliPlanner::new(policy.clone())),
        });
    }
    Ok(match planners.len() {
        1 => Arc::from(planners.remove(0)),
        _ => Arc::new(PlannerChain::new(planners)),
    })
}

/// The Prisma planner's own API counters, printed after the run.
#[cfg(feature = "prisma")]
static PRISMA_STATS: std::sync::OnceLock<Arc<remediation::planner::prisma::PrismaStats>> =
    std::sync::OnceLock::new();

/// The Prisma Cloud planner, configured from the environment and the flags.
#[cfg(feature = "prisma")]
fn prisma_planner(
    args: &Args,
    policy: &CommandPolicy,
) -> remediation::Result<remediation::planner::prisma::PrismaPlanner> {
    use remediation::planner::prisma::{PrismaPlannerBuilder, RemediationApi};
    let api = match args.prisma_api.as_str() {
        "v2" => RemediationApi::V2PerAlert,
        _ => RemediationApi::V1Batch,
    };
    let mut builder = PrismaPlannerBuilder::from_env()
        .with_allow_http(args.allow_http)
        .with_policy(policy.clone())
        .with_max_batch(args.prisma_max_batch)
        .with_batch_window(Duration::from_millis(args.prisma_batch_window_ms))
        .with_api(api);
    if let Some(path) = &args.prisma_ca_bundle {
        builder = builder.with_ca_bundle(path);
    }
    let planner = builder.build()?;
    PRISMA_STATS.get_or_init(|| Arc::clone(planner.stats()));
    Ok(planner)
}

/// `--retry-after SECS`: the default retry schedule from that first delay.
fn retry(secs: u64) -> Backoff {
    Backoff::new(Duration::from_secs(secs), Backoff::default().max)
}

/// `--lease-extension SECS`: the default lease policy extending by that much.
fn lease(secs: u64) -> LeasePolicy {
    let mut lease = LeasePolicy::default();
    lease.extension = Duration::from_secs(secs);
    lease
}

/// Builds the worker from the flags and runs it to the end of its source.
async fn run(args: &Args) -> Result<Summary, Failure> {
    let opened: Arc<dyn AlertSource> = match args.source.as_deref() {
        None => Arc::new(FileSource::reader("sample", std::io::Cursor::new(SAMPLE))),
        Some(spec) => source::from_spec(spec).await?,
    };
    // `--drain`: the engine stops at the first empty receive (a file or stdin
    // ends at its end anyway).
    let source: Arc<dyn AlertSource> = if args.drain {
        Arc::new(Drain::new(Arc::clone(&opened)))
    } else {
        Arc::clone(&opened)
    };
    let policy = args.command_policy.clone().unwrap_or_default();
    let policy = policy.with_max_commands(args.max_commands);
    let executor = executor(args, &policy).await?;
    let planner = planner(args, &policy, &executor)?;
    let mut sinks: Vec<Arc<dyn AuditSink>> = Vec::new();
    if !args.quiet {
        sinks.push(Arc::new(TextAudit::stdout()));
    }
    if let Some(path) = &args.audit {
        sinks.push(Arc::new(JsonLinesAudit::append(path)?));
    }
    let mut config = EngineConfig::default()
        .with_concurrency(args.concurrency)
        .with_max_deliveries(args.max_deliveries)
        .with_claim_lease(Duration::from_secs(args.claim_lease))
        .with_retry(retry(args.retry_after))
        .with_lease(lease(args.lease_extension))
        .with_settle_in_dry_run(args.settle_in_dry_run);
    if let Some(n) = args.read_ahead {
        config = config.with_read_ahead(n);
    }
    let filter = args
        .only_policies
        .iter()
        .fold(PolicyFilter::new(), |f, name| f.only(name));
    let filter = args
        .skip_policies
        .iter()
        .fold(filter, |f, name| f.skip(name));
    let mut builder = Engine::builder(Arc::clone(&source), planner, executor)
        .config(config.with_audit_outage_limit(Duration::from_secs(args.audit_outage_limit)))
        .audit(Arc::new(TeeAudit::new(sinks)));
    if !filter.is_empty() {
        builder = builder.stage(Arc::new(filter));
    }
    if let Some(path) = &args.guardrails {
        for stage in guardrails::stages(path).await? {
            builder = builder.stage(stage);
        }
    }
    if let Some(table) = &args.dedup_table {
        builder = builder.dedup(dedup_store(table).await?);
    }
    let outcome = builder.build().run(shutdown_on_signal()).await;
    // Sends what the source still batches (Pub/Sub acks). Closed on the
    // opened source itself: `Drain` does not forward `close`.
    opened.close().await;
    Ok(outcome.map_err(|e| match &e {
        remediation::Error::Backend {
            backend: "audit", ..
        } => format!("audit failed: {e}"),
        _ => format!("source failed: {e}"),
    })?)
}

/// With `--planner prisma`, the Prisma login added to `report`.
#[cfg(feature = "prisma")]
async fn prisma_check(
    args: &Args,
    policy: &CommandPolicy,
    mut report: remediation::preflight::Report,
) -> remediation::preflight::Report {
    use remediation::preflight::Check;
    if args.planners.iter().any(|p| p == "prisma") {
        report.push(match prisma_planner(args, policy) {
            Ok(prisma) => Check::from_result(
                format!("prisma api {}", prisma.base_url()),
                prisma.verify_login().await.map(str::to_owned),
            ),
            Err(e) => Check::failed("prisma api", e.to_string()),
        });
    }
    report
}

/// `remediate check [--json]`: exit 0 when every check passed, 1 when one
/// failed, 2 when the checks could not be set up.
async fn preflight(args: &Args, json: bool) -> ExitCode {
    let contexts = contexts(args);
    let clis = match contexts.clis() {
        clis if clis.is_empty() => vec!["aws"],
        clis => clis,
    };
    let policy = args.command_policy.clone().unwrap_or_default();
    let mut executor = ProcessExecutor::new(policy.clone(), contexts)
        .with_timeout(Duration::from_secs(args.step_timeout));
    for spec in &args.child_env {
        executor = executor.with_child_env(spec);
    }
    let report = check::run(check::Setup {
        source: args.source.as_deref(),
        dedup_table: args.dedup_table.as_deref(),
        guardrails: args.guardrails.as_deref(),
        executor: &executor,
        clis,
        accounts: args
            .account_profiles
            .iter()
            .filter_map(|m| m.account.clone())
            .collect(),
    })
    .await;
    #[cfg(feature = "prisma")]
    let report = prisma_check(args, &policy, report).await;
    #[cfg(not(feature = "prisma"))]
    let _ = policy;
    if json {
        match serde_json::to_string(&report) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("remediate: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("{report}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    log.with_ansi(std::io::stderr().is_terminal()).init();
    let args = Args::parse();
    if let Some(tool) = &args.tool {
        let done = match tool {
            Tool::Circuit { action } => {
                let close = match action {
                    CircuitAction::List => None,
                    CircuitAction::Close { key } => Some(key.as_str()),
                };
                guardrails::circuit(args.guardrails.as_deref(), close).await
            }
            Tool::Report { audit, json } => guardrails::report(audit, *json),
            Tool::Check { json } => return preflight(&args, *json).await,
        };
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("remediate: {e}");
                ExitCode::from(2)
            }
        };
    }
    let summary = match run(&args).await {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("remediate: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.execute && !args.quiet {
        eprintln!("remediate: dry run: nothing ran and nothing was settled (use --execute)");
    }
    #[cfg(feature = "prisma")]
    if let Some(prisma) = PRISMA_STATS.get() {
        let line = serde_json::to_string(&prisma.snapshot()).unwrap_or_default();
        eprintln!("remediate: prisma api {line}");
    }
    match args.summary.as_str() {
        "json" => println!("{}", serde_json::to_string(&summary).unwrap_or_default()),
        _ => eprintln!("remediate: {summary}"),
    }
    ExitCode::SUCCESS
}
