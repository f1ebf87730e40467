//! `lambda_eventbridge` — an EventBridge-triggered AWS Lambda function: a
//! rule routes CloudTrail events (`AWS API Call via CloudTrail`), or Prisma
//! Cloud alerts relayed by EventBridge, to it; it plans and runs the
//! remediation with the engine. An event that fails (or is poison, or runs
//! out of time) fails the invocation, so Lambda's own retries and the
//! function's failure destination apply.
//!
//! Configured from environment variables (see `lambda_support/config.rs`);
//! for CloudTrail rules set `REMEDIATION_PLANNERS=cloudtrail` and
//! `REMEDIATION_RULES=rules.yaml`.
//!
//! ```text
//! cargo lambda build --release --features lambda --example lambda_eventbridge
//! ```

#[path = "lambda_support/config.rs"]
mod config;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    config::init_logging();
    let handler = match config::handler_from_env().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("lambda_eventbridge: {e}");
            return ExitCode::from(2);
        }
    };
    match remediation::lambda::run_eventbridge(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda_eventbridge: runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
