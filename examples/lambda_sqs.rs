//! `lambda_sqs` — an SQS-triggered AWS Lambda function that remediates the
//! queue's alerts (Prisma Cloud alerts, CloudTrail events) with the engine,
//! and answers with the partial-batch response so only failed records come
//! back. Enable `ReportBatchItemFailures` on the event source mapping.
//!
//! Configured from environment variables (see `lambda_support/config.rs`):
//! `REMEDIATION_PLANNERS`, `ACCOUNT_PROFILES`, `REMEDIATION_EXECUTE`,
//! `REMEDIATION_AUDIT`, `REMEDIATION_DEDUP_TABLE`, ...
//!
//! ```text
//! cargo lambda build --release --features lambda,dynamodb --example lambda_sqs
//! # or: cargo build --release --target x86_64-unknown-linux-musl --features lambda --example lambda_sqs
//! #     and ship the binary as `bootstrap` on the provided.al2023 runtime
//! ```
//!
//! Exits 2 when the configuration is invalid (Lambda reports
//! `Runtime.ExitError`; the message is in the function's log).

#[path = "lambda_support/config.rs"]
mod config;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    config::init_logging();
    let handler = match config::handler_from_env().await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("lambda_sqs: {e}");
            return ExitCode::from(2);
        }
    };
    match remediation::lambda::run_sqs(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda_sqs: runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
