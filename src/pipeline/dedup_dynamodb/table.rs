//! Creating the table: for tests and operations.

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
}
