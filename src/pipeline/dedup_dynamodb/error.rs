//! How DynamoDB failures become the crate's errors: a failed SDK call through
//! the shared AWS classifier ([`crate::aws::classify`]; throttling, 5xx,
//! timeouts and connection failures are temporary, a missing table or refused
//! access is not), everything else through [`DynamoError`].

use super::BACKEND;
use crate::aws::classify;
use crate::error::{Error, Result};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

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

/// A failure of the DynamoDB store that is not an SDK call failing.
#[derive(Debug)]
pub(super) enum DynamoError {
    /// A request part (`what`: the table definition, the TTL specification)
    /// could not be built.
    Definition {
        /// What could not be built.
        what: &'static str,
        /// The SDK builder's complaint.
        message: String,
    },
    /// The table did not become active in time.
    NotActive {
        /// The table.
        table: String,
        /// How long it was waited for.
        after: Duration,
    },
}

impl DynamoError {
    /// `what` could not be built, because of `e`.
    pub(super) fn definition(what: &'static str, e: impl std::fmt::Display) -> DynamoError {
        DynamoError::Definition {
            what,
            message: e.to_string(),
        }
    }
}

impl From<DynamoError> for Error {
    fn from(e: DynamoError) -> Self {
        match e {
            DynamoError::Definition { what, message } => {
                Error::Config(format!("{what}: {message}"))
            }
            DynamoError::NotActive { table, after } => Error::Timeout {
                what: format!("DynamoDB table {table} becoming active"),
                after,
            },
        }
    }
}
