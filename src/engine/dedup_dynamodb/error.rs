//! How DynamoDB failures become the crate's errors: a failed SDK call through
//! the shared AWS classifier ([`crate::aws::classify`]; throttling, 5xx,
//! timeouts and connection failures are temporary, a missing table or refused
//! access is not), everything else through [`DynamoError`].

use crate::error::Error;
use std::time::Duration;

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
