//! [`DynamoDedupBuilder`]: the table, how the client is made, the owner id,
//! set in code or read through [`DynamoDedupConfigKey`]s from the
//! environment or any list of pairs; `build` reports every configuration
//! problem at once.

use super::DynamoDedup;
use crate::aws::AwsClientOptions;
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::telemetry::{Stats, StatsSlot};
use aws_sdk_dynamodb::Client;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

config::config_keys! {
    /// The configuration keys of a [`DynamoDedupBuilder`]
    /// ([`from_vars`](DynamoDedupBuilder::from_vars),
    /// [`with_config`](DynamoDedupBuilder::with_config)); each one's name is
    /// the environment variable [`from_env`](DynamoDedupBuilder::from_env) reads.
    pub enum DynamoDedupConfigKey {
        /// `REMEDIATION_DEDUP_TABLE`: the table name.
        Table = "REMEDIATION_DEDUP_TABLE",
        /// `AWS_ENDPOINT_URL_DYNAMODB`, else `AWS_ENDPOINT_URL`: an endpoint
        /// override (a local server such as moto or DynamoDB Local).
        Endpoint = "AWS_ENDPOINT_URL_DYNAMODB" ["AWS_ENDPOINT_URL"],
        /// `REMEDIATION_DEDUP_TIMEOUT_SECS`: the per-call time limit, in
        /// seconds (fractions allowed) or with a unit (`1500ms`).
        Timeout = "REMEDIATION_DEDUP_TIMEOUT_SECS",
    }
}

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
    problems: Problems,
}

impl fmt::Debug for DynamoDedupBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDedupBuilder")
            .field("table", &self.table)
            .field("aws", &self.aws)
            .field("client", &self.client.is_some())
            .field("owner", &self.owner)
            .field("timeout", &self.timeout)
            .field("problems", &self.problems)
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
    /// Names it does not know are ignored; empty values count as unset; a bad
    /// value is reported by [`build`](Self::build), with every other problem.
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(DynamoDedupConfigKey);

    /// Sets one configuration value; a bad one is reported by
    /// [`build`](Self::build).
    pub fn with_config(mut self, key: DynamoDedupConfigKey, value: &str) -> Self {
        let mut problems = std::mem::take(&mut self.problems);
        let p = &mut problems;
        self = match key {
            DynamoDedupConfigKey::Table => match value.trim() {
                "" => {
                    p.bad_value(key, value, "empty");
                    self
                }
                table => self.with_table(table),
            },
            DynamoDedupConfigKey::Endpoint => match p.parse(key, value, config::http_url) {
                Some(url) => self.with_endpoint(url),
                None => self,
            },
            DynamoDedupConfigKey::Timeout => match p.parse(key, value, timeout) {
                Some(t) => self.with_timeout(t),
                None => self,
            },
        };
        self.problems = problems;
        self
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

    /// Counts every DynamoDB call in `stats` (see
    /// [`ApiCall`](crate::telemetry::ApiCall)) from the start. Not needed
    /// with an engine: it hands the store its own stats when it is built
    /// ([`DedupStore::attach_stats`](crate::pipeline::DedupStore::attach_stats)).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Builds the store. Fails with every configuration problem at once (bad
    /// values, no table); does not call DynamoDB.
    pub async fn build(self) -> Result<DynamoDedup> {
        const NO_TABLE: &str =
            "the DynamoDB dedup store needs a table (REMEDIATION_DEDUP_TABLE or with_table)";
        let mut problems = self.problems;
        let table = self.table.filter(|t| !t.trim().is_empty());
        if table.is_none() {
            problems.push(NO_TABLE);
        }
        problems.check("DynamoDedupBuilder")?;
        let table = table.ok_or_else(|| Error::Config(NO_TABLE.into()))?;
        let client = match self.client {
            Some(c) => c,
            None => crate::aws::dynamo::client(&self.aws, self.timeout).await,
        };
        Ok(DynamoDedup {
            client,
            table,
            owner: self.owner.unwrap_or_else(default_owner),
            claims: Arc::default(),
            slot: Arc::new(StatsSlot::new(self.stats)),
        })
    }
}

/// A per-call time limit: seconds (`2.5`) or a duration with its unit (`1500ms`), above zero.
fn timeout(text: &str) -> std::result::Result<Duration, String> {
    let t = match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| "not a number of seconds")?,
        Err(_) => config::duration(text)?,
    };
    if t.is_zero() {
        return Err("must be above zero".to_owned());
    }
    Ok(t)
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
    fn values_are_read_by_their_key_names() {
        let b = DynamoDedupBuilder::from_vars([
            ("AWS_ENDPOINT_URL", "http://localhost:1"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000"),
            ("REMEDIATION_DEDUP_TABLE", "dedup"),
            ("REMEDIATION_DEDUP_TIMEOUT_SECS", "2.5"),
        ]);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(b.table.as_deref(), Some("dedup"));
        assert_eq!(b.aws.endpoint(), Some("http://localhost:8000"));
        assert_eq!(b.timeout, Some(Duration::from_millis(2500)));
        let b = DynamoDedupBuilder::from_vars([("AWS_ENDPOINT_URL", "http://localhost:1")])
            .with_config(DynamoDedupConfigKey::Timeout, "1500ms");
        assert_eq!(b.aws.endpoint(), Some("http://localhost:1"));
        assert_eq!(b.timeout, Some(Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn every_bad_value_is_reported_by_build_at_once() {
        let b = DynamoDedupBuilder::from_vars([
            ("AWS_ENDPOINT_URL_DYNAMODB", "localhost:8000"),
            ("REMEDIATION_DEDUP_TIMEOUT_SECS", "0"),
        ])
        .with_config(DynamoDedupConfigKey::Table, " ")
        .with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value");
        let shown = format!("{b:?}");
        let e = b.build().await.expect_err("bad values").to_string();
        // The empty table, and no table at all.
        assert!(e.contains("DynamoDedupBuilder: 4 problems"), "{e}");
        for key in [
            DynamoDedupConfigKey::Table,
            DynamoDedupConfigKey::Endpoint,
            DynamoDedupConfigKey::Timeout,
        ] {
            assert!(e.contains(&format!("{key}: ")), "{key} missing: {e}");
        }
        for text in [&e, &shown] {
            assert!(!text.contains("s3cr3t-value"), "{text}");
            assert!(!text.contains("AKIAEXAMPLEKEYID"), "{text}");
        }
        let e = DynamoDedupBuilder::from_vars([("REMEDIATION_DEDUP_TIMEOUT_SECS", "soon")])
            .build()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 problems") && e.contains("REMEDIATION_DEDUP_TIMEOUT_SECS: \"soon\""),
            "{e}"
        );
    }

    #[test]
    fn owners_are_unique() {
        assert_ne!(default_owner(), default_owner());
    }
}
