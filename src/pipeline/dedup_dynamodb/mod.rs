//! A [`DedupStore`](super::DedupStore) in a DynamoDB table, shared by every worker and Lambda
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
//! | `claim`       | the token of the claim call that wrote it |
//! | `steps_done`  | string set: the plan's steps recorded done under a claim (kept when a claim lapses or is released, removed at completion) |
//! | `expires_at`  | epoch **seconds**: when the item may be forgotten — the table's TTL attribute |
//!
//! | call          | DynamoDB request |
//! |---------------|------------------|
//! | `claim`       | `UpdateItem` setting `state`, `owner`, `claim`, `lease_until` and `expires_at` (`steps_done` left as it is; returning the new item) if `attribute_not_exists(pk) OR (state = claimed AND lease_until < now) OR (state = done AND expires_at < now)`; the item's `steps_done` are the steps already done. One request: a takeover never drops the recorded steps, whatever happens to the worker after it. When the condition fails, the item (returned with the failure, or read with a consistent `GetItem`) says `AlreadyDone` (done, not expired) or `InProgress`, with the other worker's remaining lease |
//! | `renew`       | `UpdateItem` of `lease_until` if `state = claimed AND owner = me` (the engine renews every third of the claim's 60 s while the plan runs) |
//! | `record_step` | `UpdateItem ADD steps_done` if `state = claimed AND owner = me` |
//! | `complete`    | `UpdateItem` to `done` with `expires_at = now + ttl`, `steps_done` removed, if the item is missing, claimed, or ours (someone else's `done` is left as it is) |
//! | `release`     | `UpdateItem` of `lease_until` to 0 (lapsed; the steps stay for the next claim) if `state = claimed AND owner = me` |
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

mod builder;
mod error;
mod store;
mod table;

pub use builder::{DynamoDedupBuilder, DynamoDedupConfigKey};

use crate::error::Result;
use crate::telemetry::StatsSlot;
use aws_sdk_dynamodb::Client;
use std::fmt;
use std::sync::Arc;

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
/// The token of the claim call that wrote the item (unique per call), so a
/// claim whose reply was lost — the SDK retries it, and the retry finds the
/// item — is recognised as this call's own, not as another delivery's.
pub const CLAIM_ATTRIBUTE: &str = "claim";
/// The ids of the plan's steps recorded done under the claim (string set).
pub const STEPS_ATTRIBUTE: &str = "steps_done";

const CLAIMED: &str = "claimed";
const DONE: &str = "done";
/// How long an abandoned claim's item lingers after its lease before
/// DynamoDB's TTL may delete it (it is claimable again as soon as the lease ends).
const CLAIM_LINGER_SECS: u64 = 3600;

/// A [`DedupStore`](super::DedupStore) in a DynamoDB table; see the [module docs](self) for the
/// item layout and the conditional requests.
///
/// ```no_run
/// # async fn f() -> remediation::Result<()> {
/// use remediation::engine::dedup_dynamodb::DynamoDedup;
/// // REMEDIATION_DEDUP_TABLE=remediation-dedup, region and credentials from the AWS chain
/// let dedup = DynamoDedup::from_env().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoDedup {
    client: Client,
    table: String,
    owner: String,
    /// Numbers this store's claim calls (shared by clones).
    claims: Arc<std::sync::atomic::AtomicU64>,
    /// Where calls are counted (shared by clones).
    slot: Arc<StatsSlot>,
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
}
