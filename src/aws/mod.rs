//! What every AWS-SDK-backed part (the SQS source, the DynamoDB dedup store,
//! the Lambda adapter's dead-letter queue, the AWS clients still to come)
//! shares: [`AwsClientOptions`] — endpoint, region, credentials, HTTP client —
//! with their builder setters written once, the configuration they load, and
//! one classifier of SDK errors on the SDK's structured error codes; and, for
//! the DynamoDB-backed stores (dedup, guardrails), their client and table
//! (`dynamo.rs`).

#[cfg(feature = "dynamodb")]
pub(crate) mod dynamo;
mod error;
mod options;

#[allow(unused_imports)] // see error.rs: adopted in the next step
pub(crate) use error::{AwsError, classify};
pub use options::AwsClientOptions;
pub(crate) use options::aws_client_setters;
