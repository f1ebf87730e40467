//! The table: created for tests and operations, verified by preflight.

use super::{DynamoDedup, KEY_ATTRIBUTE, TTL_ATTRIBUTE};
use crate::error::Result;

impl DynamoDedup {
    /// Creates the table if it does not exist (on-demand billing, partition
    /// key `pk` string), waits until it is active, and enables TTL on
    /// `expires_at`. For tests and operations; needs `dynamodb:CreateTable`,
    /// `DescribeTable` and `UpdateTimeToLive`. Idempotent.
    pub async fn create_table(&self) -> Result<()> {
        crate::aws::dynamo::create_table(&self.client, &self.table, KEY_ATTRIBUTE, TTL_ATTRIBUTE)
            .await
    }

    /// Checks that the table is there, active, and keyed by `pk` (string)
    /// alone, without writing to it: `remediate check` and other preflights.
    /// Needs `dynamodb:DescribeTable`.
    pub async fn verify_table(&self) -> Result<()> {
        crate::aws::dynamo::verify_table(&self.client, &self.table, KEY_ATTRIBUTE).await
    }
}
