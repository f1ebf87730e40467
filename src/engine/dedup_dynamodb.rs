//! A [`DedupStore`] in a DynamoDB table, shared by every worker and Lambda
//! instance that points at it, so a finding is remediated once however many
//! of them receive it. Feature `dynamodb`.
//!
//! One item per key, partition key `pk` (string):
//!
//! | attribute     | meaning |
//! |---------------|---------|
//! | `pk`          | the dedup key (alert id + status, CloudTrail event id) |
//! | `state`       | `claimed` or `done` |
//! | `owner`       | the store instance that wrote it (claims are released only by their owner) |
//! | `lease_until` | claimed: when the claim lapses, epoch milliseconds |
//! | `expires_at`  | epoch **seconds**: when the item may be forgotten — the table's TTL attribute |
//!
//! | call       | DynamoDB request |
//! |------------|------------------|
//! | `claim`    | `PutItem` if `attribute_not_exists(pk) OR (state = claimed AND lease_until < now) OR (state = done AND expires_at < now)`; when the condition fails, the old item (returned with the failure, or read with a consistent `GetItem`) says `AlreadyDone` (done, not expired) or `InProgress` |
//! | `complete` | `UpdateItem` to `done` with `expires_at = now + ttl`, if the item is missing, claimed, or ours (someone else's `done` is left as it is) |
//! | `release`  | `DeleteItem` if `state = claimed AND owner = me` |
//!
//! Expiry is checked on every read, so it does not matter that DynamoDB's TTL
//! deletes expired items only eventually; enabling TTL on `expires_at`
//! ([`DynamoDedup::create_table`] does) just keeps the table small. Leases
//! and expiry compare the workers' wall clocks: keep them in sync (NTP), and
//! keep the lease well above any skew.
//!
//! Every failure (throttling, an unreachable endpoint, a missing table) is an
//! error: the engine then fails the delivery with `dedup_unavailable` and
//! nacks it, so nothing runs without the store's answer.

use super::dedup::{Claim, DedupStore};
use crate::aws::AwsClientOptions;
use crate::error::{Error, Result};
use crate::telemetry::{ApiCall, Stats};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BACKEND: &str = "dynamodb";

/// The partition key attribute (string).
pub const KEY_ATTRIBUTE: &str = "pk";
/// `claimed` or `done`.
pub const STATE_ATTRIBUTE: &str = "state";
/// The store instance that wrote the item.
pub const OWNER_ATTRIBUTE: &str = "owner";
/// When a claim lapses, epoch milliseconds.
pub const LEASE_ATTRIBUTE: &str = "lease_until";
/// When the item may be forgotten, epoch seconds: the table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";

const CLAIMED: &str = "claimed";
const DONE: &str = "done";
/// How long an abandoned claim's item lingers after its lease before
/// DynamoDB's TTL may delete it (it is claimable again as soon as the lease ends).
const CLAIM_LINGER_SECS: u64 = 3600;

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

/// A [`DedupStore`] in a DynamoDB table; see the [module docs](self) for the
/// item layout and the conditional requests.
///
/// ```no_run
/// # async fn f() -> remediation::Result<()> {
/// use remediation::engine::DynamoDedup;
/// // REMEDIATION_DEDUP_TABLE=remediation-dedup, region and credentials from the AWS chain
/// let dedup = DynamoDedup::from_env().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoDedup {
    client: Client,
    table: String,
    owner: String,
    stats: Arc<Stats>,
}

impl fmt::Debug for DynamoDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDedup")
            .field("table", &self.table)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl DynamoDedup {
    /// A builder.
    pub fn builder() -> DynamoDedupBuilder {
        DynamoDedupBuilder::new()
    }

    /// A store configured from the environment (see [`DynamoDedupBuilder::from_env`]).
    pub async fn from_env() -> Result<DynamoDedup> {
        DynamoDedupBuilder::from_env().build().await
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// This instance's owner id.
    pub fn owner(&self) -> &str {
        &self.owner
    }

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
                    .map_err(|e| Error::Config(format!("table definition: {e}")))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| Error::Config(format!("table definition: {e}")))?,
            )
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(sdk_error("CreateTable", e)),
        }
        let mut waited = Duration::ZERO;
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            let status = described.table().and_then(|t| t.table_status()).cloned();
            if status == Some(TableStatus::Active) {
                break;
            }
            if waited > Duration::from_secs(120) {
                return Err(Error::Timeout {
                    what: format!("DynamoDB table {} becoming active", self.table),
                    after: waited,
                });
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
                    .map_err(|e| Error::Config(format!("TTL specification: {e}")))?,
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
            Err(e) => Err(sdk_error("UpdateTimeToLive", e)),
        }
    }

    /// Reads the item under `key` (consistent read).
    async fn read(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        self.stats.count_api_call(ApiCall::DynamoDbGetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }
}

/// What a held item means to a claimer.
fn verdict(item: &HashMap<String, AttributeValue>, now_ms: u64) -> Claim {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    match text(STATE_ATTRIBUTE) {
        Some(DONE) if number(TTL_ATTRIBUTE).is_none_or(|s| s >= now_ms / 1000) => {
            Claim::AlreadyDone
        }
        // A live claim, or an item that changed under us: ask again later.
        _ => Claim::InProgress,
    }
}

#[async_trait]
impl DedupStore for DynamoDedup {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        let now_ms = epoch_millis();
        let lease_until =
            now_ms.saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let expires_at = lease_until / 1000 + CLAIM_LINGER_SECS;
        self.stats.count_api_call(ApiCall::DynamoDbPutItem);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(STATE_ATTRIBUTE, AttributeValue::S(CLAIMED.into()))
            .item(OWNER_ATTRIBUTE, AttributeValue::S(self.owner.clone()))
            .item(LEASE_ATTRIBUTE, AttributeValue::N(lease_until.to_string()))
            .item(TTL_ATTRIBUTE, AttributeValue::N(expires_at.to_string()))
            .condition_expression(
                "attribute_not_exists(#pk) OR (#state = :claimed AND #lease < :now_ms) \
                 OR (#state = :done AND #expires < :now_s)",
            )
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":done", AttributeValue::S(DONE.into()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => {
                let held = match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(c)) => {
                        Some(c.item().cloned())
                    }
                    _ => None,
                };
                match held {
                    None => Err(sdk_error("PutItem", e)),
                    Some(Some(item)) => Ok(verdict(&item, now_ms)),
                    // The server did not return the item: read it.
                    Some(None) => Ok(match self.read(key).await? {
                        Some(item) => verdict(&item, now_ms),
                        None => Claim::InProgress,
                    }),
                }
            }
        }
    }

    async fn complete(&self, key: &str, ttl: Duration) -> Result<()> {
        let expires_at = (epoch_millis() / 1000).saturating_add(ttl.as_secs());
        self.stats.count_api_call(ApiCall::DynamoDbUpdateItem);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .update_expression(
                "SET #state = :done, #owner = :me, #expires = :expires REMOVE #lease",
            )
            .condition_expression("attribute_not_exists(#pk) OR #state = :claimed OR #owner = :me")
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":done", AttributeValue::S(DONE.into()))
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            // Someone else completed it: it is done either way.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateItem", e)),
        }
    }

    async fn release(&self, key: &str) -> Result<()> {
        self.stats.count_api_call(ApiCall::DynamoDbDeleteItem);
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .condition_expression("#state = :claimed AND #owner = :me")
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            // Not our claim any more (lapsed and taken over, or done): leave it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteItem", e)),
        }
    }
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

/// Maps an SDK error to the crate's error: throttling, 5xx, timeouts and
/// connection failures are temporary; a missing table or refused access is not.
fn sdk_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, temporary) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let status = s.raw().status().as_u16();
            let temporary = code.contains("Throttl")
                || matches!(
                    code,
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TransactionConflictException"
                )
                || status >= 500
                || status == 429;
            (
                format!("{op}: {code}: {}", e.message().unwrap_or("")),
                temporary,
            )
        }
        SdkError::ConstructionFailure(_) => (format!("{op}: request could not be built"), false),
        SdkError::TimeoutError(_) => (format!("{op}: timed out"), true),
        SdkError::DispatchFailure(d) => (
            format!(
                "{op}: could not reach DynamoDB: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ),
            !d.is_user(),
        ),
        SdkError::ResponseError(_) => (format!("{op}: unreadable response"), true),
        _ => (
            format!(
                "{op}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ),
            true,
        ),
    };
    Error::Backend {
        backend: BACKEND,
        message,
        temporary,
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_reads_done_and_expiry() {
        let now_ms = 1_700_000_000_000;
        let item = |state: &str, expires_s: u64| {
            HashMap::from([
                (STATE_ATTRIBUTE.to_owned(), AttributeValue::S(state.into())),
                (
                    TTL_ATTRIBUTE.to_owned(),
                    AttributeValue::N(expires_s.to_string()),
                ),
            ])
        };
        assert_eq!(
            verdict(&item(DONE, now_ms / 1000 + 10), now_ms),
            Claim::AlreadyDone
        );
        assert_eq!(
            verdict(&item(DONE, now_ms / 1000 - 10), now_ms),
            Claim::InProgress
        );
        assert_eq!(
            verdict(&item(CLAIMED, now_ms / 1000 + 10), now_ms),
            Claim::InProgress
        );
    }

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
