//! [`DynamoDbGuardrailsBuilder`]: the table and how the client is made, set
//! in code or read through [`DynamoDbGuardrailsConfigKey`]s from the
//! environment; and [`DynamoDbGuardrails::create_table`] for tests and set-up.

use super::{DynamoDbGuardrails, KEY_ATTRIBUTE, TTL_ATTRIBUTE};
use crate::aws::AwsClientOptions;
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::telemetry::{Stats, StatsSlot};
use aws_sdk_dynamodb::Client;
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
            None => crate::aws::dynamo::client(&self.aws, self.timeout).await,
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

impl DynamoDbGuardrails {
    /// Creates the table if it does not exist (on-demand billing, partition
    /// key `pk` string, no sort key), waits until it is active, and enables
    /// TTL on `expires_at`. For tests and set-up; needs
    /// `dynamodb:CreateTable`, `DescribeTable` and `UpdateTimeToLive`.
    /// Idempotent. Not counted in the stats.
    pub async fn create_table(&self) -> Result<()> {
        crate::aws::dynamo::create_table(&self.client, &self.table, KEY_ATTRIBUTE, TTL_ATTRIBUTE)
            .await
    }

    /// Checks that the table is there, active, and keyed by `pk` (string)
    /// alone, without writing to it (`remediate check`). Needs
    /// `dynamodb:DescribeTable`.
    pub async fn verify_table(&self) -> Result<()> {
        crate::aws::dynamo::verify_table(&self.client, &self.table, KEY_ATTRIBUTE).await
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
