//! Configuration shared by the Lambda examples, read from the function's
//! environment variables (the only configuration a function has).
//!
//! | variable | meaning |
//! |----------|---------|
//! | `REMEDIATION_PLANNERS` | planners to ask, in order, comma-separated: `alert-cli` (default), `cloudtrail` (needs `REMEDIATION_RULES`), `prisma` (feature `prisma`: `API_ENDPOINT`, `PRISMA_ACCESS_KEY_ID` + `PRISMA_SECRET_KEY` or `AUTH_KEY`) |
//! | `REMEDIATION_RULES` | CloudTrail rules file (JSON or YAML) for `cloudtrail`, e.g. packaged next to `bootstrap` |
//! | `ACCOUNT_PROFILES` | account→profile map, `123456789012=prod,210987654321=dev` |
//! | `REMEDIATION_DEFAULT_PROFILE` | profile for unmapped accounts (explicit opt-in) |
//! | `REMEDIATION_EXECUTE` | `true` runs the commands; anything else is a dry run |
//! | `REMEDIATION_SETTLE_IN_DRY_RUN` | `true`: a dry run reports records done (default: failed, so the queue keeps them) |
//! | `REMEDIATION_AUDIT` | `stdout` (default: one JSON line per record into the function's CloudWatch log stream), `none`, or a file path |
//! | `REMEDIATION_STEP_TIMEOUT_SECS` | per-step timeout (default 60) |
//! | `REMEDIATION_DEADLINE_MARGIN_SECS` | no new step starts this close to the invocation's deadline (default 5; under 900, Lambda's longest timeout); a running step is cut to the time the invocation has left |
//! | `REMEDIATION_MAX_DELIVERIES` | dead-letter a record failing at this receive count (default 5; keep it below the queue's `maxReceiveCount`) |
//! | `REMEDIATION_CONCURRENCY` | records in flight at once (default 8) |
//! | `REMEDIATION_DEDUP_TABLE` | feature `dynamodb`: share dedup in this DynamoDB table (`AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` override the endpoint) |
//! | `REMEDIATION_DEAD_LETTER` | `redrive` (default: poison reported failed, the redrive policy parks it) or `audit-only` |
//! | `SQS_DEAD_LETTER_QUEUE_URL` | feature `sqs`: send poison to this queue instead |
//! | `REMEDIATION_FUNCTION_PROFILE` | a profile name: the function role's credentials (from its environment, which the executor scrubs from every command) are written, for each aws command, into its private home (mode 0600, removed when the command ends) under this name, and `AWS_SHARED_CREDENTIALS_FILE` points the CLI at it, so profiles in the packaged `AWS_CONFIG_FILE` can use `source_profile = NAME` + `role_arn = ...` |

use remediation::engine::{AuditSink, EngineConfig, JsonLinesAudit, NoAudit};
use remediation::executor::{
    AwsSourceCredentials, CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor,
};
use remediation::lambda::{LambdaHandler, LambdaHandlerBuilder};
use remediation::plan::CommandPolicy;
use remediation::planner::{AlertCliPlanner, CloudTrailPlanner, PlannerChain, RemediationPlanner};
use remediation::redact::Secret;
use remediation::rules::RuleSet;
use remediation::telemetry::Stats;
use std::sync::Arc;
use std::time::Duration;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
    }
}

/// Builds the handler from the environment; the error names the variable.
pub async fn handler_from_env() -> Result<LambdaHandler, String> {
    let stats = Arc::new(Stats::new());
    let mut contexts = match var("ACCOUNT_PROFILES") {
        Some(list) => {
            ContextMap::parse_aws_profiles(&list).map_err(|e| format!("ACCOUNT_PROFILES: {e}"))?
        }
        None => ContextMap::new(),
    };
    if let Some(p) = var("REMEDIATION_DEFAULT_PROFILE") {
        contexts = contexts.with_default_aws_profile(p);
    }
    let function_credentials = function_profile()?;
    let execute = var("REMEDIATION_EXECUTE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let step_timeout = Duration::from_secs(number("REMEDIATION_STEP_TIMEOUT_SECS", 60)?);
    let policy = CommandPolicy::default();
    let process = |contexts: ContextMap| {
        let p = ProcessExecutor::new(policy.clone(), contexts).with_timeout(step_timeout);
        match &function_credentials {
            Some(credentials) => p.with_aws_source_credentials(credentials.clone()),
            None => p,
        }
    };
    let executor: Arc<dyn CommandExecutor> = if execute {
        Arc::new(process(contexts))
    } else {
        let queries = process(contexts.clone());
        Arc::new(
            DryRunExecutor::new(policy.clone(), contexts).with_query_executor(Arc::new(queries)),
        )
    };

    let names = var("REMEDIATION_PLANNERS").unwrap_or_else(|| "alert-cli".into());
    let mut planners: Vec<Box<dyn RemediationPlanner>> = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "alert-cli" => planners.push(Box::new(AlertCliPlanner::new(policy.clone()))),
            "cloudtrail" => {
                let path = var("REMEDIATION_RULES")
                    .ok_or("REMEDIATION_PLANNERS=cloudtrail needs REMEDIATION_RULES")?;
                let rules =
                    RuleSet::from_path(&path).map_err(|e| format!("REMEDIATION_RULES: {e}"))?;
                planners.push(Box::new(CloudTrailPlanner::new(
                    rules,
                    Arc::clone(&executor),
                )));
            }
            #[cfg(feature = "prisma")]
            "prisma" => {
                let p = remediation::planner::prisma::PrismaPlannerBuilder::from_env()
                    .with_policy(policy.clone())
                    .with_engine_stats(Arc::clone(&stats))
                    .build()
                    .map_err(|e| format!("prisma planner: {e}"))?;
                planners.push(Box::new(p));
            }
            #[cfg(not(feature = "prisma"))]
            "prisma" => return Err("the prisma planner needs the `prisma` cargo feature".into()),
            other => {
                return Err(format!(
                    "REMEDIATION_PLANNERS: unknown planner {other:?} (alert-cli, cloudtrail, prisma)"
                ));
            }
        }
    }
    let planner: Arc<dyn RemediationPlanner> = match planners.len() {
        0 => return Err("REMEDIATION_PLANNERS names no planner".into()),
        1 => Arc::from(planners.remove(0)),
        _ => Arc::new(PlannerChain::new(planners)),
    };

    let audit: Arc<dyn AuditSink> = match var("REMEDIATION_AUDIT").as_deref() {
        None | Some("stdout") => Arc::new(JsonLinesAudit::stdout()),
        Some("none") => Arc::new(NoAudit),
        Some(path) => {
            Arc::new(JsonLinesAudit::append(path).map_err(|e| format!("REMEDIATION_AUDIT: {e}"))?)
        }
    };

    let config = EngineConfig::default()
        .with_concurrency(number("REMEDIATION_CONCURRENCY", 8)?)
        .with_max_deliveries(number("REMEDIATION_MAX_DELIVERIES", 5)?)
        .with_settle_in_dry_run(
            var("REMEDIATION_SETTLE_IN_DRY_RUN").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        );
    let default_margin = remediation::lambda::DEFAULT_DEADLINE_MARGIN.as_secs();
    let margin = Duration::from_secs(number("REMEDIATION_DEADLINE_MARGIN_SECS", default_margin)?);
    if margin >= Duration::from_secs(900) {
        // No function runs longer than 15 minutes: nothing could ever run.
        return Err(format!(
            "REMEDIATION_DEADLINE_MARGIN_SECS={}: must be under 900 (Lambda's longest timeout), \
             or no step can ever start",
            margin.as_secs()
        ));
    }
    let mut builder = LambdaHandler::builder(planner, executor)
        .config(config)
        .audit(audit)
        .stats(Arc::clone(&stats))
        .deadline_margin(margin);
    builder = dedup(builder, &stats).await?;
    builder = match var("REMEDIATION_DEAD_LETTER").as_deref() {
        None | Some("redrive") => builder.with_dead_letter_redrive(),
        Some("audit-only") => builder.with_dead_letter_audit_only(),
        Some(other) => {
            return Err(format!(
                "REMEDIATION_DEAD_LETTER={other:?}: expected redrive or audit-only"
            ));
        }
    };
    builder = dead_letter_queue(builder).await?;
    Ok(builder.build())
}

/// `REMEDIATION_FUNCTION_PROFILE`: the function role's credentials as a named
/// profile, which the executor writes into each aws command's private home
/// (removed with it): never a file in a shared or predictable place.
fn function_profile() -> Result<Option<AwsSourceCredentials>, String> {
    let Some(name) = var("REMEDIATION_FUNCTION_PROFILE") else {
        return Ok(None);
    };
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "REMEDIATION_FUNCTION_PROFILE={name:?}: letters, digits, - _ . only"
        ));
    }
    let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err(
            "REMEDIATION_FUNCTION_PROFILE needs the function's credentials in \
             AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (Lambda sets them)"
                .into(),
        );
    };
    Ok(Some(AwsSourceCredentials::new(
        name,
        id,
        Secret::new(secret),
        var("AWS_SESSION_TOKEN").map(Secret::new),
    )))
}

#[cfg(feature = "dynamodb")]
async fn dedup(
    b: LambdaHandlerBuilder,
    stats: &Arc<Stats>,
) -> Result<LambdaHandlerBuilder, String> {
    if var("REMEDIATION_DEDUP_TABLE").is_none() {
        return Ok(b);
    }
    let store = remediation::engine::dedup_dynamodb::DynamoDedupBuilder::from_env()
        .with_stats(Arc::clone(stats))
        .build()
        .await
        .map_err(|e| format!("REMEDIATION_DEDUP_TABLE: {e}"))?;
    Ok(b.dedup(Arc::new(store)))
}

#[cfg(not(feature = "dynamodb"))]
async fn dedup(
    b: LambdaHandlerBuilder,
    _stats: &Arc<Stats>,
) -> Result<LambdaHandlerBuilder, String> {
    match var("REMEDIATION_DEDUP_TABLE") {
        Some(_) => Err("REMEDIATION_DEDUP_TABLE needs the `dynamodb` cargo feature".into()),
        None => Ok(b),
    }
}

#[cfg(feature = "sqs")]
async fn dead_letter_queue(b: LambdaHandlerBuilder) -> Result<LambdaHandlerBuilder, String> {
    let Some(url) = var("SQS_DEAD_LETTER_QUEUE_URL") else {
        return Ok(b);
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(b.with_dead_letter_queue(aws_sdk_sqs::Client::new(&config), url))
}

#[cfg(not(feature = "sqs"))]
async fn dead_letter_queue(b: LambdaHandlerBuilder) -> Result<LambdaHandlerBuilder, String> {
    match var("SQS_DEAD_LETTER_QUEUE_URL") {
        Some(_) => Err("SQS_DEAD_LETTER_QUEUE_URL needs the `sqs` cargo feature".into()),
        None => Ok(b),
    }
}

/// Logs go to stderr (CloudWatch Logs in Lambda); `RUST_LOG` filters (default `warn`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .init();
}
