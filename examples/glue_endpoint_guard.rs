//! Deletes Glue dev endpoints created without a security configuration,
//! security groups, public keys or a subnet — the built-in
//! `glue-dev-endpoint-guard` behind an EventBridge pattern, from a rule file
//! written inline.
//!
//! ```text
//! cargo run --example glue_endpoint_guard -- --source cloudtrail.json \
//!     --account-profile 123456789012=prod [--execute]
//! ```
//!
//! The plan waits (polling `get-dev-endpoint`) until the endpoint is READY
//! before deleting it; the engine keeps the delivery leased meanwhile.

use clap::Parser;
use remediation::engine::{Engine, JsonLinesAudit};
use remediation::executor::{
    AwsProfileMapping, CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor,
};
use remediation::plan::CommandPolicy;
use remediation::planner::CloudTrailPlanner;
use remediation::rules::RuleSet;
use remediation::source::FileSource;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const RULES: &str = r#"
rules:
  - name: insecure-glue-dev-endpoints
    pattern:
      source: [aws.glue]
      detail-type: [AWS API Call via CloudTrail]
      detail:
        eventName: [CreateDevEndpoint]
        errorCode: [{exists: false}]
    remediation: glue-dev-endpoint-guard
    parameters:
      poll-interval-secs: 15
      ready-timeout-secs: 900
"#;

#[derive(Parser, Debug)]
struct Args {
    /// CloudTrail events: a file, or `-` for stdin.
    #[arg(long)]
    source: String,
    /// ACCOUNT=PROFILE (repeatable).
    #[arg(long = "account-profile")]
    account_profiles: Vec<String>,
    /// Delete for real (default: dry run — the READY wait runs, the delete is printed).
    #[arg(long)]
    execute: bool,
}

#[tokio::main]
async fn main() -> remediation::Result<()> {
    let args = Args::parse();
    let mut contexts = ContextMap::new();
    for pair in &args.account_profiles {
        contexts = contexts.with_aws_mapping(pair.parse::<AwsProfileMapping>()?);
    }
    let policy = CommandPolicy::default();
    let executor: Arc<dyn CommandExecutor> = if args.execute {
        Arc::new(ProcessExecutor::new(policy, contexts))
    } else {
        Arc::new(DryRunExecutor::new(policy, contexts))
    };
    let source = if args.source == "-" {
        FileSource::stdin()
    } else {
        FileSource::open(&args.source)?
    };
    let planner = CloudTrailPlanner::new(RuleSet::from_yaml(RULES)?, Arc::clone(&executor));
    let engine = Engine::builder(Arc::new(source), Arc::new(planner), executor)
        .audit(Arc::new(JsonLinesAudit::stdout()))
        .build();
    let summary = engine.run(CancellationToken::new()).await?;
    eprintln!(
        "executed {} planned {} skipped {} failed {}",
        summary.executed, summary.planned, summary.skipped, summary.failed
    );
    Ok(())
}
