//! What the DynamoDB-backed stores (the dedup store, the guardrail store)
//! share: their client, made with a per-call time limit, and their table —
//! one string partition key, on-demand billing, TTL on one attribute —
//! created for tests and set-up.

use super::{AwsClientOptions, classify};
use crate::error::{Error, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use std::time::Duration;

const BACKEND: &str = "dynamodb";

/// A DynamoDB client from `aws`, each call limited to `timeout` (default
/// 5 s; connecting to at most 2 s of it).
pub(crate) async fn client(aws: &AwsClientOptions, timeout: Option<Duration>) -> Client {
    let shared = aws.load().await;
    let timeout = timeout.unwrap_or(Duration::from_secs(5));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .operation_attempt_timeout(timeout)
        .operation_timeout(timeout)
        .build();
    Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&shared)
            .timeout_config(timeouts)
            .build(),
    )
}

/// A table part that could not be built (`what`), as a configuration error.
fn part<T>(what: &str, built: std::result::Result<T, impl std::fmt::Display>) -> Result<T> {
    built.map_err(|e| Error::Config(format!("{what}: {e}")))
}

/// Creates `table` if it does not exist (on-demand billing, partition key
/// `key` string, no sort key), waits until it is active (at most 2
/// minutes), and enables TTL on `ttl`. Idempotent. Needs
/// `dynamodb:CreateTable`, `DescribeTable` and `UpdateTimeToLive`.
pub(crate) async fn create_table(client: &Client, table: &str, key: &str, ttl: &str) -> Result<()> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(part(
            "table definition",
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build(),
        )?)
        .key_schema(part(
            "table definition",
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build(),
        )?)
        .send()
        .await;
    if let Err(e) = created {
        if !e
            .as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception())
        {
            return Err(classify(BACKEND, "CreateTable", e).into());
        }
    }
    let step = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            break;
        }
        if waited > Duration::from_secs(120) {
            return Err(Error::Timeout {
                what: format!("DynamoDB table {table} becoming active"),
                after: waited,
            });
        }
        tokio::time::sleep(step).await;
        waited += step;
    }
    let spec = part(
        "TTL specification",
        TimeToLiveSpecification::builder()
            .attribute_name(ttl)
            .enabled(true)
            .build(),
    )?;
    let enabled = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(spec)
        .send()
        .await;
    match enabled {
        Err(e)
            if !e
                .as_service_error()
                .and_then(|s| s.message())
                .is_some_and(|m| m.contains("already enabled")) =>
        {
            Err(classify(BACKEND, "UpdateTimeToLive", e).into())
        }
        _ => Ok(()),
    }
}

/// Checks that `table` is there, active, and keyed by the string
/// partition key `key` alone: what a store writes to. Needs
/// `dynamodb:DescribeTable`. A missing table or another key is a
/// configuration error naming what was found.
pub(crate) async fn verify_table(client: &Client, table: &str, key: &str) -> Result<()> {
    let described = client.describe_table().table_name(table).send().await;
    let described = match described {
        Ok(d) => d,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return Err(Error::Config(format!(
                "DynamoDB table {table} does not exist (create it: partition key `{key}`, string)"
            )));
        }
        Err(e) => return Err(classify(BACKEND, "DescribeTable", e).into()),
    };
    let Some(t) = described.table() else {
        return Err(Error::Config(format!(
            "DynamoDB table {table}: no description"
        )));
    };
    let keys: Vec<String> = t
        .key_schema()
        .iter()
        .map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str()))
        .collect();
    let hash_only = matches!(t.key_schema(), [k] if k.attribute_name() == key && *k.key_type() == KeyType::Hash);
    let string_key = t
        .attribute_definitions()
        .iter()
        .any(|a| a.attribute_name() == key && *a.attribute_type() == ScalarAttributeType::S);
    if !(hash_only && string_key) {
        return Err(Error::Config(format!(
            "DynamoDB table {table} is keyed by {}, not by the string partition key `{key}` alone",
            keys.join(", ")
        )));
    }
    match t.table_status() {
        Some(TableStatus::Active) | Some(TableStatus::Updating) => Ok(()),
        other => Err(Error::Config(format!(
            "DynamoDB table {table} is not active ({})",
            other.map_or("unknown", |s| s.as_str())
        ))),
    }
}
