//! [`DynamoDbGuardrailsBuilder`]: the table and how the client is made, set
//! in code or read through [`DynamoDbGuardrailsConfigKey`]s from the
//! environment; and [`DynamoDbGuardrails::create_table`] for tests and set-up.

use super::{BACKEND, DynamoDbGuardrails, KEY_ATTRIBUTE, TTL_ATTRIBUTE};
use crate::aws::{AwsClientOptions, classify};
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::telemetry::{Stats, StatsSlot};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

config::config_keys! {
    /// The configuration keys of a [`DynamoDbGuardrailsBuilder`]; each
    /// one's name is the environment variable
    /// [`from_env`](DynamoDbGuardrailsBuilder::from_env) reads.
    pub enum DynamoDbGuardrailsConfigKey {
        /// `REMEDIATION_GUARDRAILS_TABLE`: the table name.
        Table = "REMEDIATION_GUARDRAILS_TABLE",
        /// `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL`: an endpoint
        /// override (a local server such as moto or DynamoDB Local).
        Endpoint = "AWS_ENDPOINT_URL_DYNAMODB" ["AWS_ENDPOINT_URL"],
        /// `REMEDIATION_GUARDRAILS_TIMEOUT_SECS`: the per-call time limit,
        /// whole seconds or with a unit (`1500ms`).
        Timeout = "REMEDIATION_GUARDRAILS_TIMEOUT_SECS",
    }
}

/// Builds a [`DynamoDbGuardrails`]. Only [`build`](Self::build) can fail.
///
/// Region and credentials come from the standard AWS chain (environment,
/// profile, container or instance role) unless set here.
#[derive(Clone, Default)]
pub struct DynamoDbGuardrailsBuilder {
    table: Option<String>,
    aws: AwsClientOptions,
    client: Option<Client>,
    timeout: Option<Duration>,
    stats: Option<Arc<Stats>>,
    problems: Problems,
}

impl fmt::Debug for DynamoDbGuardrailsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbGuardrailsBuilder")
            .field("table", &self.table)
            .field("aws", &self.aws)
            .field("client", &self.client.is_some())
            .field("timeout", &self.timeout)
            .field("problems", &self.problems)
            .finish()
    }
}

impl DynamoDbGuardrailsBuilder {
    /// An empty builder; a table name is required.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment: the
    /// [`DynamoDbGuardrailsConfigKey`]s (`REMEDIATION_GUARDRAILS_TABLE`,
    /// `AWS_ENDPOINT_URL_DYNAMODB` else `AWS_ENDPOINT_URL`,
    /// `REMEDIATION_GUARDRAILS_TIMEOUT_SECS`), region and credentials from
    /// the standard AWS chain. Names it does not know are ignored; a bad
    /// value is reported by [`build`](Self::build).
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(DynamoDbGuardrailsConfigKey);

    /// Sets one configuration value; a bad one is reported by [`build`](Self::build).
    pub fn with_config(mut self, key: DynamoDbGuardrailsConfigKey, value: &str) -> Self {
        let mut problems = std::mem::take(&mut self.problems);
        self = match key {
            DynamoDbGuardrailsConfigKey::Table => match value.trim() {
                "" => {
                    problems.bad_value(key, value, "empty");
                    self
                }
                table => self.with_table(table),
            },
            DynamoDbGuardrailsConfigKey::Endpoint => {
                match problems.parse(key, value, config::http_url) {
                    Some(url) => self.with_endpoint(url),
                    None => self,
                }
            }
            DynamoDbGuardrailsConfigKey::Timeout => match problems.parse(key, value, timeout) {
                Some(t) => self.with_timeout(t),
                None => self,
            },
        };
        self.problems = problems;
        self
    }

    /// The table (see [`DynamoDbGuardrails::create_table`] for its shape).
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    crate::aws::aws_client_setters!();

    /// A fully configured client; endpoint, region, credentials and timeout
    /// set on this builder are then ignored.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The most one DynamoDB call may take, the SDK's retries included
    /// (default 5 s): an unreachable store defers plans instead of stalling them.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Counts every DynamoDB call in `stats` (see
    /// [`ApiCall`](crate::telemetry::ApiCall)) from the start.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Builds the store. Fails with every configuration problem at once;
    /// does not call DynamoDB.
    pub async fn build(self) -> Result<DynamoDbGuardrails> {
        const NO_TABLE: &str = "the DynamoDB guardrail store needs a table \
             (REMEDIATION_GUARDRAILS_TABLE or with_table)";
        let mut problems = self.problems;
        let table = self.table.filter(|t| !t.trim().is_empty());
        if table.is_none() {
            problems.push(NO_TABLE);
        }
        problems.check("DynamoDbGuardrailsBuilder")?;
        let table = table.ok_or_else(|| Error::Config(NO_TABLE.into()))?;
        let client = match self.client {
            Some(c) => c,
            None => {
                let shared = self.aws.load().await;
                let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
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
        };
        Ok(DynamoDbGuardrails {
            client,
            table,
            slot: Arc::new(StatsSlot::new(self.stats)),
        })
    }
}

/// A per-call time limit above zero: whole seconds or with a unit.
fn timeout(text: &str) -> std::result::Result<Duration, String> {
    match config::duration(text)? {
        t if t.is_zero() => Err("must be above zero".to_owned()),
        t => Ok(t),
    }
}

/// Builds a table-definition part, or says which could not be built.
fn part<T>(built: std::result::Result<T, impl fmt::Display>) -> Result<T> {
    built.map_err(|e| Error::Config(format!("guardrails table definition: {e}")))
}

impl DynamoDbGuardrails {
    /// Creates the table if it does not exist (on-demand billing, partition
    /// key `pk` string, no sort key), waits until it is active, and enables
    /// TTL on `expires_at`. For tests and set-up; needs
    /// `dynamodb:CreateTable`, `DescribeTable` and `UpdateTimeToLive`.
    /// Idempotent. Not counted in the stats.
    pub async fn create_table(&self) -> Result<()> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(part(
                AttributeDefinition::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )?)
            .key_schema(part(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
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
        while self.status().await? != Some(TableStatus::Active) {
            if waited > Duration::from_secs(120) {
                return Err(Error::Timeout {
                    what: format!("DynamoDB table {} becoming active", self.table),
                    after: waited,
                });
            }
            tokio::time::sleep(step).await;
            waited += step;
        }
        let spec = part(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build(),
        )?;
        let ttl = self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await;
        match ttl {
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

    async fn status(&self) -> Result<Option<TableStatus>> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "DescribeTable", e))?;
        Ok(described.table().and_then(|t| t.table_status()).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_table_is_required_and_every_bad_value_reported() {
        let e = DynamoDbGuardrailsBuilder::from_vars([
            ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"),
            ("REMEDIATION_GUARDRAILS_TIMEOUT_SECS", "0"),
        ])
        .with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value")
        .build()
        .await
        .expect_err("bad values")
        .to_string();
        assert!(e.contains("DynamoDbGuardrailsBuilder: 3 problems"), "{e}");
        assert!(e.contains("REMEDIATION_GUARDRAILS_TABLE"), "{e}");
        assert!(
            !e.contains("s3cr3t") && !e.contains("AKIAEXAMPLEKEYID"),
            "{e}"
        );
    }

    #[test]
    fn values_are_read_by_their_key_names() {
        let b = DynamoDbGuardrailsBuilder::from_vars([
            ("AWS_ENDPOINT_URL", "http://localhost:1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000"),
            ("REMEDIATION_GUARDRAILS_TABLE", "guardrails"),
            ("REMEDIATION_GUARDRAILS_TIMEOUT_SECS", "1500ms"),
        ]);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(b.table.as_deref(), Some("guardrails"));
        assert_eq!(b.aws.endpoint(), Some("http://localhost:8000"));
        assert_eq!(b.timeout, Some(Duration::from_millis(1500)));
    }
}
