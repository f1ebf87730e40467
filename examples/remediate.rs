//! `remediate` — the configurable remediation worker.
//!
//! With no arguments it runs the bundled sample (`examples/data/sample-alerts.jsonl`)
//! through the `alert-cli` planner and the dry-run executor, and prints what it
//! would do. Point it at your own file or stdin, choose planners, map accounts to
//! AWS profiles, and add `--execute` to run the commands for real:
//!
//! ```text
//! cargo run --release --example remediate
//! cargo run --release --example remediate -- --source file:alerts.jsonl \
//!     --planner alert-cli --account-profile 123456789012=prod --audit audit.jsonl --execute
//! ```
//!
//! With the `prisma` feature, `--planner prisma` asks the Prisma Cloud API,
//! configured from the environment (`API_ENDPOINT`, and `PRISMA_ACCESS_KEY_ID` +
//! `PRISMA_SECRET_KEY` [+ `PRISMA_CUSTOMER_NAME`], or a static `AUTH_KEY`):
//!
//! ```text
//! API_ENDPOINT=api2.eu PRISMA_ACCESS_KEY_ID=... PRISMA_SECRET_KEY=... \
//!   cargo run --release --features prisma --example remediate -- \
//!     --source stdin --planner prisma --account-profile 123456789012=prod --execute
//! ```
//!
//! `--planner cloudtrail --rules rules.yaml` evaluates CloudTrail rules
//! (EventBridge event patterns routed to built-in remediations such as
//! `quarantine-iam-user` and `glue-dev-endpoint-guard`; see `remediation::rules`):
//!
//! ```text
//! cargo run --release --example remediate -- --source file:cloudtrail.json \
//!     --planner cloudtrail --rules rules.yaml --account-profile 123456789012=prod
//! ```
//!
//! With the `sqs` feature, `--source sqs:NAME_OR_URL` reads an Amazon SQS queue
//! (region and credentials from the standard AWS chain, `AWS_ENDPOINT_URL` for a
//! local server, `SQS_DEAD_LETTER_QUEUE_URL`, `SQS_VISIBILITY_TIMEOUT` and
//! `SQS_WAIT_TIME_SECONDS` as documented on `SqsSourceBuilder::from_env`):
//!
//! ```text
//! cargo run --release --features sqs --example remediate -- --source sqs:prisma-alerts \
//!     --account-profile 123456789012=prod --execute
//! ```
//!
//! With the `dynamodb` feature, `--dedup-table NAME` shares deduplication with
//! every other worker (and Lambda function) using the same DynamoDB table, so
//! each finding is remediated once however many of them receive it:
//!
//! ```text
//! cargo run --release --features sqs,dynamodb --example remediate -- --source sqs:prisma-alerts \
//!     --dedup-table remediation-dedup --account-profile 123456789012=prod --execute
//! ```
//!
//! With the `pubsub` feature, `--source pubsub:projects/P/subscriptions/S` reads a
//! Google Cloud Pub/Sub subscription (streaming pull; `PUBSUB_EMULATOR_HOST` for
//! the emulator, `PUBSUB_DEAD_LETTER_TOPIC`, flow control and leases as documented
//! on `PubSubSourceBuilder::from_env`; credentials from Application Default
//! Credentials):
//!
//! ```text
//! cargo run --release --features pubsub --example remediate -- \
//!     --source pubsub:projects/sec-ops/subscriptions/prisma-alerts --execute
//! ```
//!
//! With the `servicebus` feature, `--source servicebus:NAMESPACE/QUEUE` (or
//! `servicebus:NAMESPACE/TOPIC/subscriptions/SUB`) reads an Azure Service Bus
//! entity with peek-lock; the key comes from `SB_QUEUE_KEY_NAME` +
//! `SB_QUEUE_KEY` or `SERVICEBUS_CONNECTION_STRING`, `SERVICEBUS_ENDPOINT`
//! sends every call to a local server (see `ServiceBusSourceBuilder::from_env`):
//!
//! ```text
//! SB_QUEUE_KEY_NAME=listen SB_QUEUE_KEY=... \
//!   cargo run --release --features servicebus,prisma --example remediate -- \
//!     --source servicebus:contoso-alerts/prisma --planner prisma --execute
//! ```
//!
//! Exit status 0 when the run completed, whatever the decisions; 2 on bad
//! configuration or an unreadable source.

use clap::Parser;
use remediation::engine::{AuditRecord, AuditSink, Engine, EngineConfig, JsonLinesAudit, TeeAudit};
use remediation::executor::{
    AwsProfileMapping, AzureSubscriptionMapping, CommandExecutor, ContextMap, DryRunExecutor,
    GcpProjectMapping, ProcessExecutor,
};
use remediation::plan::CommandPolicy;
use remediation::planner::{AlertCliPlanner, CloudTrailPlanner, PlannerChain, RemediationPlanner};
use remediation::rules::RuleSet;
use remediation::source::{AlertSource, FileSource};
use remediation::telemetry::{Stats, Summary};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The bundled sample: every gate case, a garbage line, a CloudTrail event, an SNS wrapper.
const SAMPLE: &[u8] = include_bytes!("data/sample-alerts.jsonl");
/// The account the bundled sample's alerts belong to.
const SAMPLE_ACCOUNT: &str = "123456789012";

#[derive(Parser, Debug)]
#[command(
    name = "remediate",
    about = "Turn cloud security findings into safe, automatic fixes"
)]
struct Args {
    /// Where deliveries come from: `file:PATH` (JSON lines or a CloudTrail Records
    /// file, .gz too), `stdin`, `sqs:NAME_OR_URL` (feature `sqs`), or
    /// `pubsub:projects/P/subscriptions/S` (feature `pubsub`),
    /// `servicebus:NAMESPACE/QUEUE` / `servicebus:NAMESPACE/TOPIC/subscriptions/SUB`
    /// (feature `servicebus`). Default: the bundled sample.
    #[arg(long)]
    source: Option<String>,
    /// Planner to ask, in order (repeatable): `alert-cli`, `cloudtrail` (needs
    /// --rules), `prisma` (needs the `prisma` feature; configured from
    /// API_ENDPOINT and PRISMA_ACCESS_KEY_ID + PRISMA_SECRET_KEY, or AUTH_KEY).
    #[arg(long = "planner", default_value = "alert-cli")]
    planners: Vec<String>,
    /// CloudTrail rules for `--planner cloudtrail`: a JSON (`.json`) or YAML file.
    #[arg(long, value_name = "FILE")]
    rules: Option<std::path::PathBuf>,
    /// Run the commands (default: dry run, nothing runs and nothing is settled).
    #[arg(long)]
    execute: bool,
    /// Append one JSON audit line per delivery to PATH.
    #[arg(long)]
    audit: Option<std::path::PathBuf>,
    /// Map an AWS account to the profile its commands run with (repeatable).
    #[arg(long = "account-profile", value_name = "ACCOUNT=PROFILE")]
    account_profiles: Vec<String>,
    /// Profile for accounts without a mapping (explicit opt-in; otherwise they are refused).
    #[arg(long)]
    default_profile: Option<String>,
    /// Map an Azure subscription (GUID) to how `az` runs for it (repeatable):
    /// `--subscription <id>` is added to its commands, and `AZURE_CONFIG_DIR`
    /// is set when a directory is given. Unmapped subscriptions are refused.
    #[arg(
        long = "azure-subscription",
        value_name = "SUBSCRIPTION[=AZURE_CONFIG_DIR]"
    )]
    azure_subscriptions: Vec<String>,
    /// Map a GCP project to how `gcloud` runs for it (repeatable): `--project`
    /// and `CLOUDSDK_CORE_PROJECT` are set, and `CLOUDSDK_CONFIG` when a
    /// directory is given. Unmapped projects are refused.
    #[arg(long = "gcp-project", value_name = "PROJECT[=CLOUDSDK_CONFIG]")]
    gcp_projects: Vec<String>,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `json`: the last stdout line is the summary as JSON. `text`: a summary line on stderr.
    #[arg(long, value_parser = ["json", "text"], default_value = "text")]
    summary: String,
    /// Per-step timeout in seconds.
    #[arg(long, default_value_t = 300)]
    step_timeout: u64,
    /// Dead-letter a failing delivery at this delivery count.
    #[arg(long, default_value_t = 5)]
    max_deliveries: u32,
    /// Refuse a script (alert-cli, prisma) holding more commands than this.
    #[arg(long, default_value_t = remediation::plan::DEFAULT_MAX_COMMANDS)]
    max_commands: usize,
    /// Widen or narrow the operation catalog from a YAML or JSON file (see the
    /// README's security model).
    #[arg(long, value_name = "FILE")]
    command_policy: Option<std::path::PathBuf>,
    /// Give every command this variable (repeatable): `NAME=VALUE`, or `NAME`
    /// to pass the worker's own value. Commands see nothing else of the
    /// worker's environment but locale, proxies and CA bundles.
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
    prisma_ca_bundle: Option<std::path::PathBuf>,
    /// Share deduplication with other workers in this DynamoDB table (feature
    /// `dynamodb`; region and credentials from the AWS chain,
    /// `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` for a local server).
    /// Default: in-memory, this process only.
    #[arg(long, value_name = "NAME")]
    dedup_table: Option<String>,
    /// Do not print a line per delivery.
    #[arg(long, short)]
    quiet: bool,
}

/// Prints one human line per delivery (and the argv of each step) to stdout.
#[derive(Debug)]
struct HumanAudit {
    out: Mutex<std::io::Stdout>,
}

impl AuditSink for HumanAudit {
    fn record(&self, r: &AuditRecord) -> remediation::Result<()> {
        let id = r
            .alert_id
            .as_deref()
            .or(r.event_id.as_deref())
            .unwrap_or(&r.message_id);
        let mut text = format!(
            "{:<9} {:<14} {:<13} {}",
            r.decision.as_str(),
            id,
            r.account_id.as_deref().unwrap_or("-"),
            r.reason.as_deref().unwrap_or("")
        );
        for s in &r.steps {
            let ctx: Vec<String> = s.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // Escaped when it holds control characters, so what is shown is what runs.
            let argv = if s.argv.iter().any(|a| a.chars().any(char::is_control)) {
                format!("{:?}", s.argv)
            } else {
                shlex::try_join(s.argv.iter().map(String::as_str))
                    .unwrap_or_else(|_| format!("{:?}", s.argv))
            };
            text.push_str(&format!(
                "\n    [{}] {} {}",
                serde_json::to_value(s.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                ctx.join(" "),
                argv
            ));
        }
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{text}").map_err(|e| remediation::Error::io("writing to stdout", e))
    }
}

/// `sqs:NAME_OR_URL`: the queue from the spec, everything else from the environment.
#[cfg(feature = "sqs")]
async fn sqs_source(spec: &str, stats: &Arc<Stats>) -> Result<Arc<dyn AlertSource>, String> {
    let queue = spec.trim_start_matches("sqs:");
    if queue.is_empty() {
        return Err("--source sqs: needs a queue name or URL (sqs:NAME_OR_URL)".into());
    }
    remediation::source::SqsSourceBuilder::from_env()
        .with_queue(queue)
        .with_stats(Arc::clone(stats))
        .build()
        .await
        .map(|s| Arc::new(s) as Arc<dyn AlertSource>)
        .map_err(|e| e.to_string())
}

/// Without the feature, say how to get it rather than "unknown source".
#[cfg(not(feature = "sqs"))]
async fn sqs_source(spec: &str, _stats: &Arc<Stats>) -> Result<Arc<dyn AlertSource>, String> {
    Err(format!(
        "--source {spec} needs the `sqs` cargo feature: \
         cargo run --release --features sqs --example remediate -- --source {spec} ..."
    ))
}

/// `--dedup-table NAME`: the shared DynamoDB store.
#[cfg(feature = "dynamodb")]
async fn dedup_store(
    table: &str,
    stats: &Arc<Stats>,
) -> Result<Arc<dyn remediation::engine::DedupStore>, String> {
    remediation::engine::DynamoDedupBuilder::from_env()
        .with_table(table)
        .with_stats(Arc::clone(stats))
        .build()
        .await
        .map(|s| Arc::new(s) as Arc<dyn remediation::engine::DedupStore>)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "dynamodb"))]
async fn dedup_store(
    _table: &str,
    _stats: &Arc<Stats>,
) -> Result<Arc<dyn remediation::engine::DedupStore>, String> {
    Err("--dedup-table needs the `dynamodb` cargo feature: \
         cargo run --release --features dynamodb --example remediate -- --dedup-table NAME ..."
        .into())
}

/// `pubsub:projects/P/subscriptions/S`: the subscription from the spec,
/// everything else from the environment.
#[cfg(feature = "pubsub")]
async fn pubsub_source(spec: &str) -> Result<remediation::source::PubSubSource, String> {
    let subscription = spec.trim_start_matches("pubsub:");
    if subscription.is_empty() {
        return Err(
            "--source pubsub: needs a subscription (pubsub:projects/P/subscriptions/S)".into(),
        );
    }
    remediation::source::PubSubSourceBuilder::from_env()
        .with_subscription(subscription)
        .build()
        .await
        .map_err(|e| e.to_string())
}

/// `servicebus:NAMESPACE/ENTITY`: namespace and entity from the spec, the key
/// and everything else from the environment.
#[cfg(feature = "servicebus")]
fn servicebus_source(spec: &str, stats: &Arc<Stats>) -> Result<Arc<dyn AlertSource>, String> {
    let rest = spec.trim_start_matches("servicebus:");
    let Some((namespace, entity)) = rest
        .split_once('/')
        .filter(|(n, e)| !n.is_empty() && !e.is_empty())
    else {
        return Err(format!(
            "--source {spec}: expected servicebus:NAMESPACE/QUEUE or \
             servicebus:NAMESPACE/TOPIC/subscriptions/SUB"
        ));
    };
    remediation::source::ServiceBusSourceBuilder::from_env()
        .with_namespace(namespace)
        .with_entity_path(entity)
        .with_stats(Arc::clone(stats))
        .build()
        .map(|s| Arc::new(s) as Arc<dyn AlertSource>)
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "servicebus"))]
fn servicebus_source(spec: &str, _stats: &Arc<Stats>) -> Result<Arc<dyn AlertSource>, String> {
    Err(format!(
        "--source {spec} needs the `servicebus` cargo feature: \
         cargo run --release --features servicebus --example remediate -- --source {spec} ..."
    ))
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("remediate: {message}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    // Shared by the engine and the backends that count their API calls.
    let stats = Arc::new(Stats::new());

    // Shut down after the run, so acks the client still batches are sent.
    #[cfg(feature = "pubsub")]
    let mut pubsub: Option<remediation::source::PubSubSource> = None;
    let source: Arc<dyn AlertSource> = match args.source.as_deref() {
        None => Arc::new(FileSource::reader("sample", std::io::Cursor::new(SAMPLE))),
        Some("stdin" | "-") => Arc::new(FileSource::stdin()),
        Some(spec) if spec.starts_with("file:") => {
            match FileSource::open(FileSource::path_from_spec(spec)) {
                Ok(s) => Arc::new(s),
                Err(e) => return fail(e),
            }
        }
        Some(spec) if spec.starts_with("sqs:") => match sqs_source(spec, &stats).await {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        #[cfg(feature = "pubsub")]
        Some(spec) if spec.starts_with("pubsub:") => match pubsub_source(spec).await {
            Ok(s) => {
                pubsub = Some(s.clone());
                Arc::new(s)
            }
            Err(e) => return fail(e),
        },
        #[cfg(not(feature = "pubsub"))]
        Some(spec) if spec.starts_with("pubsub:") => {
            return fail(format!(
                "--source {spec} needs the `pubsub` cargo feature: \
                 cargo run --release --features pubsub --example remediate -- --source {spec} ..."
            ));
        }
        Some(spec) if spec.starts_with("servicebus:") => match servicebus_source(spec, &stats) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        Some(other) => {
            return fail(format!(
                "unknown source {other:?}: expected file:PATH, stdin, sqs:NAME_OR_URL, \
                 servicebus:NAMESPACE/ENTITY or pubsub:projects/P/subscriptions/S"
            ));
        }
    };

    let mut contexts = ContextMap::new();
    for pair in &args.account_profiles {
        match pair.parse::<AwsProfileMapping>() {
            Ok(m) => contexts = contexts.with_aws_mapping(m),
            Err(e) => return fail(format!("--account-profile {pair:?}: {e}")),
        }
    }
    if let Some(p) = &args.default_profile {
        contexts = contexts.with_default_aws_profile(p);
    }
    for mapping in &args.azure_subscriptions {
        match mapping.parse::<AzureSubscriptionMapping>() {
            Ok(m) => contexts = contexts.with_azure_mapping(m),
            Err(e) => return fail(format!("--azure-subscription {mapping:?}: {e}")),
        }
    }
    for mapping in &args.gcp_projects {
        match mapping.parse::<GcpProjectMapping>() {
            Ok(m) => contexts = contexts.with_gcp_mapping(m),
            Err(e) => return fail(format!("--gcp-project {mapping:?}: {e}")),
        }
    }
    if args.source.is_none()
        && args.account_profiles.is_empty()
        && args.default_profile.is_none()
        && args.azure_subscriptions.is_empty()
        && args.gcp_projects.is_empty()
    {
        eprintln!(
            "remediate: running the bundled sample; mapping its account {SAMPLE_ACCOUNT} to profile \
             `default` for this demo (use --account-profile to map your own)"
        );
        contexts = contexts.with_aws_profile(SAMPLE_ACCOUNT, "default");
    }

    let policy = match &args.command_policy {
        Some(path) => match CommandPolicy::from_file(path) {
            Ok(policy) => policy,
            Err(e) => return fail(format!("--command-policy: {e}")),
        },
        None => CommandPolicy::default(),
    };
    let policy = policy.with_max_commands(args.max_commands);
    let process = |contexts: ContextMap| {
        let mut executor = ProcessExecutor::new(policy.clone(), contexts)
            .with_timeout(Duration::from_secs(args.step_timeout));
        for var in &args.child_env {
            let (name, value) = match var.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (var.as_str(), std::env::var(var).ok()),
            };
            if let Some(value) = value {
                executor = executor.with_env_var(name, value);
            }
        }
        executor
    };
    // Built before the planners: the cloudtrail planner's read-only queries run through it.
    let executor: Arc<dyn CommandExecutor> = if args.execute {
        let executor = process(contexts.clone());
        // A CLI the mapped clouds need and that is missing is found now, not at the first alert.
        let needed = [
            (
                "aws",
                !args.account_profiles.is_empty()
                    || args.default_profile.is_some()
                    || (args.azure_subscriptions.is_empty() && args.gcp_projects.is_empty()),
            ),
            ("az", !args.azure_subscriptions.is_empty()),
            ("gcloud", !args.gcp_projects.is_empty()),
        ];
        let needed = needed.iter().filter(|(_, n)| *n).map(|(p, _)| *p);
        if let Err(e) = executor.require_programs(needed) {
            return fail(e.to_string());
        }
        Arc::new(executor)
    } else {
        let queries = process(contexts.clone());
        Arc::new(
            DryRunExecutor::new(policy.clone(), contexts).with_query_executor(Arc::new(queries)),
        )
    };
    #[cfg(feature = "prisma")]
    let mut prisma_stats = None;
    let mut planners: Vec<Box<dyn RemediationPlanner>> = Vec::new();
    for name in &args.planners {
        match name.as_str() {
            "alert-cli" => planners.push(Box::new(AlertCliPlanner::new(policy.clone()))),
            "cloudtrail" => {
                let Some(path) = &args.rules else {
                    return fail("--planner cloudtrail needs --rules FILE");
                };
                match RuleSet::from_path(path) {
                    Ok(rules) => planners.push(Box::new(CloudTrailPlanner::new(
                        rules,
                        Arc::clone(&executor),
                    ))),
                    Err(e) => return fail(format!("--rules: {e}")),
                }
            }
            #[cfg(feature = "prisma")]
            "prisma" => match prisma_planner(&args, &policy, &stats) {
                Ok(p) => {
                    prisma_stats = Some(Arc::clone(p.stats()));
                    planners.push(Box::new(p));
                }
                Err(e) => return fail(format!("--planner prisma: {e}")),
            },
            #[cfg(not(feature = "prisma"))]
            "prisma" => {
                return fail(
                    "the prisma planner needs the `prisma` cargo feature: \
                     cargo run --features prisma --example remediate -- --planner prisma ...",
                );
            }
            other => {
                return fail(format!(
                    "unknown planner {other:?}: available: alert-cli, cloudtrail, prisma"
                ));
            }
        }
    }
    let planner: Arc<dyn RemediationPlanner> = if planners.len() == 1 {
        Arc::from(planners.remove(0))
    } else {
        Arc::new(PlannerChain::new(planners))
    };

    let mut sinks: Vec<Arc<dyn AuditSink>> = Vec::new();
    if !args.quiet {
        sinks.push(Arc::new(HumanAudit {
            out: Mutex::new(std::io::stdout()),
        }));
    }
    if let Some(path) = &args.audit {
        match JsonLinesAudit::append(path) {
            Ok(a) => sinks.push(Arc::new(a)),
            Err(e) => return fail(e),
        }
    }

    let config = EngineConfig::default()
        .with_concurrency(args.concurrency)
        .with_max_deliveries(args.max_deliveries)
        .with_settle_in_dry_run(args.settle_in_dry_run);
    let mut builder = Engine::builder(source, planner, executor)
        .config(config)
        .audit(Arc::new(TeeAudit::new(sinks)));
    if let Some(table) = &args.dedup_table {
        match dedup_store(table, &stats).await {
            Ok(d) => builder = builder.dedup(d),
            Err(e) => return fail(format!("--dedup-table: {e}")),
        }
    }
    let engine = builder.stats(stats).build();

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("remediate: stopping: finishing or releasing in-flight deliveries");
            on_signal.cancel();
        }
    });

    let outcome = engine.run(cancel).await;
    #[cfg(feature = "pubsub")]
    if let Some(p) = &pubsub {
        p.shutdown().await;
    }
    let summary: Summary = match outcome {
        Ok(s) => s,
        Err(e) => return fail(format!("source failed: {e}")),
    };
    if !args.execute && !args.quiet {
        eprintln!(
            "remediate: dry run: nothing was executed and nothing was settled (use --execute)"
        );
    }
    #[cfg(feature = "prisma")]
    if let Some(prisma) = &prisma_stats {
        match serde_json::to_string(&prisma.snapshot()) {
            Ok(line) => eprintln!("remediate: prisma api {line}"),
            Err(e) => return fail(e),
        }
    }
    match args.summary.as_str() {
        "json" => match serde_json::to_string(&summary) {
            Ok(line) => println!("{line}"),
            Err(e) => return fail(e),
        },
        _ => eprintln!(
            "remediate: received {} executed {} planned {} skipped {} failed {} rejected {} dead_lettered {}",
            summary.received,
            summary.executed,
            summary.planned,
            summary.skipped,
            summary.failed,
            summary.rejected,
            summary.dead_lettered
        ),
    }
    if !summary.api_calls.is_empty() && args.summary != "json" {
        let calls: Vec<String> = summary
            .api_calls
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!("remediate: api calls {}", calls.join(" "));
    }
    ExitCode::SUCCESS
}

/// The Prisma Cloud planner, configured from the environment and the flags.
#[cfg(feature = "prisma")]
fn prisma_planner(
    args: &Args,
    policy: &CommandPolicy,
    stats: &Arc<Stats>,
) -> remediation::Result<remediation::planner::PrismaPlanner> {
    use remediation::planner::prisma::{PrismaPlannerBuilder, RemediationApi};
    let mut builder = PrismaPlannerBuilder::from_env()
        .with_allow_http(args.allow_http)
        .with_policy(policy.clone())
        .with_max_batch(args.prisma_max_batch)
        .with_batch_window(Duration::from_millis(args.prisma_batch_window_ms))
        .with_engine_stats(Arc::clone(stats))
        .with_api(if args.prisma_api == "v2" {
            RemediationApi::V2PerAlert
        } else {
            RemediationApi::V1Batch
        });
    if let Some(path) = &args.prisma_ca_bundle {
        builder = builder.with_ca_bundle(path);
    }
    builder.build()
}
