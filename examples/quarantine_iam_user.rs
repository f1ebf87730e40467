//! Quarantines IAM users who change IAM without being admins — one rule built
//! in Rust code: an EventBridge pattern routed to the built-in
//! `quarantine-iam-user` remediation.
//!
//! ```text
//! cargo run --example quarantine_iam_user -- --source cloudtrail.json \
//!     --admin-group Admins --account-profile 123456789012=prod \
//!     --ignore-principal 'arn:aws:iam::*:role/remediator' [--execute]
//! ```
//!
//! Reads CloudTrail events (EventBridge events, bare records or a `Records`
//! log file; `-` for stdin). Dry run by default: read-only queries (group
//! membership, attached policies) run for real, changes are only printed.

use clap::Parser;
use remediation::engine::{Engine, JsonLinesAudit};
use remediation::executor::{
    AwsProfileMapping, CommandExecutor, ContextMap, DryRunExecutor, ProcessExecutor,
};
use remediation::plan::CommandPolicy;
use remediation::plan::EventPattern;
use remediation::planner::CloudTrailPlanner;
use remediation::rules::{
    PrincipalPattern, QuarantineIamUser, QuarantineParameters, Rule, RuleSet,
};
use remediation::source::FileSource;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// CloudTrail events: a file, or `-` for stdin.
    #[arg(long)]
    source: String,
    /// Members of this IAM group are never quarantined.
    #[arg(long)]
    admin_group: Option<String>,
    /// Attach this deny policy (default: create `RemediationQuarantineDeny`).
    #[arg(long)]
    deny_policy_arn: Option<String>,
    /// ACCOUNT=PROFILE (repeatable).
    #[arg(long = "account-profile")]
    account_profiles: Vec<String>,
    /// Ignore events caused by principals matching this ARN pattern (repeatable; `*` wildcard).
    #[arg(long = "ignore-principal")]
    ignore: Vec<String>,
    /// Run the changes (default: dry run).
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

    let pattern = EventPattern::from_json(
        r#"{"source": ["aws.iam"], "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventName": [{"anything-but": {"prefix": "Get"}}],
                       "readOnly": [false, {"exists": false}],
                       "errorCode": [{"exists": false}]}}"#,
    )?;
    let mut params = QuarantineParameters::default();
    params.admin_group = args.admin_group;
    params.deny_policy_arn = args.deny_policy_arn;
    let mut rules = RuleSet::new().with_rule(Rule::new(
        "quarantine-iam-writers",
        pattern,
        Arc::new(QuarantineIamUser::new(params)),
    ));
    for p in args.ignore {
        rules = rules.with_ignored_principal(PrincipalPattern::new(p)?);
    }

    let source = if args.source == "-" {
        FileSource::stdin()
    } else {
        FileSource::open(&args.source)?
    };
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(CloudTrailPlanner::new(rules, Arc::clone(&executor))),
        executor,
    )
    .audit(Arc::new(JsonLinesAudit::stdout()))
    .build();
    let summary = engine.run(CancellationToken::new()).await?;
    eprintln!(
        "executed {} planned {} skipped {} failed {}",
        summary.executed, summary.planned, summary.skipped, summary.failed
    );
    Ok(())
}
