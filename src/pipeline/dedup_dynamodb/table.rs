//! Creating the table: for tests and operations.

use super::BACKEND;
use super::error::DynamoError;
use super::{DynamoDedup, KEY_ATTRIBUTE, TTL_ATTRIBUTE};
use crate::aws::classify;
use crate::error::{Error, Result};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use std::time::Duration;

impl DynamoDedup {
    /// Creates the table if it does not exist (on-demand billing, partition
    /// key `pk` string), waits until it is active, and enables TTL on
    /// `expires_at`. For tests and operations; needs `dynamodb:CreateTable`,
    /// `DescribeTable` and `UpdateTimeToLive`. Idempotent.
    pub async fn create_table(&self) -> Result<()> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| DynamoError::definition("table definition", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| DynamoError::definition("table definition", e))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(Error::from(classify(BACKEND, "CreateTable", e))),
        }
        let mut waited = Duration::ZERO;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| classify(BACKEND, "DescribeTable", e))?;
            let status = described.table().and_then(|t| t.table_status()).cloned();
            if status == Some(TableStatus::Active) {
                break;
            }
            if waited > Duration::from_secs(120) {
                return Err(DynamoError::NotActive {
                    table: self.table.clone(),
                    after: waited,
                }
                .into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            waited += Duration::from_millis(500);
        }
        let ttl = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| DynamoError::definition("TTL specification", e))?,
            )
            .send()
            .await;
        match ttl {
            Ok(_) => Ok(()),
            // Already enabled.
            Err(e)
                if e.as_service_error()
                    .and_then(|s| s.message())
                    .is_some_and(|m| m.contains("already enabled")) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::from(classify(BACKEND, "UpdateTimeToLive", e))),
        }
    }
}
