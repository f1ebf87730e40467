//! How DynamoDB failures become the crate's errors: a failed SDK call through
//! the shared AWS classifier ([`crate::aws::classify`]; throttling, 5xx,
//! timeouts and connection failures are temporary, a missing table or refused
//! access is not).

use super::BACKEND;
use crate::aws::classify;
use crate::error::Result;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// The outcome of the conditional write `op` that says whether it held:
/// `Ok(true)` when sent, `Ok(false)` when its condition failed; any other
/// failure classified.
pub(super) fn held_unless_condition_failed<T, E>(
    op: &str,
    sent: std::result::Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = classify(BACKEND, op, e);
            if e.code() == Some("ConditionalCheckFailedException") {
                Ok(false)
            } else {
                Err(e.into())
            }
        }
    }
}

/// The outcome of the conditional write `op` when a failed condition means
/// there is nothing left to do: `Ok` then, as on success; any other failure
/// classified.
pub(super) fn unless_condition_failed<T, E>(
    op: &str,
    sent: std::result::Result<T, SdkError<E, HttpResponse>>,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = classify(BACKEND, op, e);
            if e.code() == Some("ConditionalCheckFailedException") {
                Ok(())
            } else {
                Err(e.into())
            }
        }
    }
}
