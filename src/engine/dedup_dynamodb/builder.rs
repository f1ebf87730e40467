//! [`DynamoDedupBuilder`]: the table, how the client is made, the owner id.

use super::DynamoDedup;
use crate::aws::AwsClientOptions;
use crate::error::{Error, Result};
use crate::telemetry::Stats;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Builds a [`DynamoDedup`]. Only [`build`](Self::build) can fail.
///
/// Region and credentials come from the standard AWS chain (environment,
/// profile, container or instance role) unless set here.
#[derive(Clone, Default)]
pub struct DynamoDedupBuilder {
    table: Option<String>,
    aws: AwsClientOptions,
    client: Option<Client>,
    owner: Option<String>,
    timeout: Option<Duration>,
    stats: Option<Arc<Stats>>,
}

impl fmt::Debug for DynamoDedupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDedupBuilder")
            .field("table", &self.table)
            .field("aws", &self.aws)
            .field("client", &self.client.is_some())
            .field("owner", &self.owner)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl DynamoDedupBuilder {
    /// An empty builder; a table name is required.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment:
    ///
    /// * `REMEDIATION_DEDUP_TABLE` — the table name;
    /// * `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL` — an endpoint
    ///   override (a local server such as moto or DynamoDB Local);
    /// * `REMEDIATION_DEDUP_TIMEOUT_SECS` — the per-call time limit
    ///   ([`with_timeout`](Self::with_timeout), default 5);
    ///
    /// region and credentials from the standard AWS chain (`AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, roles).
    /// Names it does not know are ignored; empty values count as unset.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        if let Some(table) = var("REMEDIATION_DEDUP_TABLE") {
            b = b.with_table(table);
        }
        if let Some(endpoint) = var("AWS_ENDPOINT_URL_DYNAMODB").or_else(|| var("AWS_ENDPOINT_URL"))
        {
            b = b.with_endpoint(endpoint);
        }
        if let Some(secs) =
            var("REMEDIATION_DEDUP_TIMEOUT_SECS").and_then(|s| s.trim().parse::<f64>().ok())
        {
            if secs.is_finite() && secs > 0.0 {
                b = b.with_timeout(Duration::from_secs_f64(secs));
            }
        }
        b
    }

    /// The table (see [`DynamoDedup::create_table`] for its shape).
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

    /// This instance's owner id, written on its claims (default: unique per
    /// instance, from the Lambda log stream or host, the process id and the time).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The most one call may take, retries included (default 5 s), so an
    /// unreachable store fails the delivery instead of stalling it.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Counts every DynamoDB call in `stats` (see [`ApiCall`]).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Builds the store. Fails if no table is named; does not call DynamoDB.
    pub async fn build(self) -> Result<DynamoDedup> {
        let table = self.table.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            Error::Config(
                "the DynamoDB dedup store needs a table (REMEDIATION_DEDUP_TABLE or with_table)"
                    .into(),
            )
        })?;
        let client = match self.client {
            Some(c) => c,
            None => {
                let shared = self.aws.load().await;
                let timeout = self.timeout.unwrap_or(Duration::from_secs(5));
                let config = aws_sdk_dynamodb::config::Builder::from(&shared)
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(timeout.min(Duration::from_secs(2)))
                            .operation_attempt_timeout(timeout)
                            .operation_timeout(timeout)
                            .build(),
                    )
                    .build();
                Client::from_conf(config)
            }
        };
        Ok(DynamoDedup {
            client,
            table,
            owner: self.owner.unwrap_or_else(default_owner),
            stats: self.stats.unwrap_or_default(),
        })
    }
}

/// Unique per store instance: where it runs, the process, the time, a counter.
fn default_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let place = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "worker".to_owned());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{place}/{}/{nanos:x}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builder_needs_a_table_and_hides_credentials() {
        let b =
            DynamoDedupBuilder::new().with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value");
        let shown = format!("{b:?}");
        assert!(
            !shown.contains("AKIAEXAMPLEKEYID") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        let err = b.build().await.unwrap_err();
        assert!(err.to_string().contains("REMEDIATION_DEDUP_TABLE"), "{err}");
    }

    #[test]
    fn owners_are_unique() {
        assert_ne!(default_owner(), default_owner());
    }
}
