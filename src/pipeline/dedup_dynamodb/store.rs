//! The [`DedupStore`] calls: `claim` as a conditional `PutItem`, `complete`
//! as a conditional `UpdateItem`, `release` as a conditional `DeleteItem`.

use super::BACKEND;
use super::error::unless_condition_failed;
use super::{
    CLAIM_ATTRIBUTE, CLAIM_LINGER_SECS, CLAIMED, DONE, DynamoDedup, KEY_ATTRIBUTE, LEASE_ATTRIBUTE,
    OWNER_ATTRIBUTE, STATE_ATTRIBUTE, TTL_ATTRIBUTE,
};
use crate::aws::classify;
use crate::error::{Error, Result};
use crate::pipeline::dedup::{Claim, DedupStore};
use crate::telemetry::{ApiCall, Stats};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl DynamoDedup {
    /// Reads the item under `key` (consistent read).
    async fn read(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        self.slot.count_api_call(ApiCall::DynamoDbGetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "GetItem", e))?;
        Ok(out.item)
    }
}

/// What a held item means to the claim call with `token`.
fn verdict(item: &HashMap<String, AttributeValue>, token: &str, now_ms: u64) -> Claim {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    if text(STATE_ATTRIBUTE) == Some(CLAIMED) && text(CLAIM_ATTRIBUTE) == Some(token) {
        // This very call's write, whose reply was lost and which the SDK
        // retried: the claim is ours.
        return Claim::Claimed;
    }
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
        let n = self
            .claims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}/{now_ms}/{n}", self.owner);
        self.slot.count_api_call(ApiCall::DynamoDbPutItem);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .item(STATE_ATTRIBUTE, AttributeValue::S(CLAIMED.into()))
            .item(OWNER_ATTRIBUTE, AttributeValue::S(self.owner.clone()))
            .item(CLAIM_ATTRIBUTE, AttributeValue::S(token.clone()))
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
                    None => Err(Error::from(classify(BACKEND, "PutItem", e))),
                    Some(Some(item)) => Ok(verdict(&item, &token, now_ms)),
                    // The server did not return the item: read it.
                    Some(None) => Ok(match self.read(key).await? {
                        Some(item) => verdict(&item, &token, now_ms),
                        None => Claim::InProgress,
                    }),
                }
            }
        }
    }

    async fn complete(&self, key: &str, ttl: Duration) -> Result<()> {
        let expires_at = (epoch_millis() / 1000).saturating_add(ttl.as_secs());
        self.slot.count_api_call(ApiCall::DynamoDbUpdateItem);
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
        // The condition failed: someone else completed it, it is done either way.
        unless_condition_failed("UpdateItem", update)
    }

    async fn release(&self, key: &str) -> Result<()> {
        self.slot.count_api_call(ApiCall::DynamoDbDeleteItem);
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
        // The condition failed: not our claim any more (lapsed and taken
        // over, or done), leave it.
        unless_condition_failed("DeleteItem", delete)
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.slot.attach(stats);
    }
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
        let token = "worker-a/1/0";
        assert_eq!(
            verdict(&item(DONE, now_ms / 1000 + 10), token, now_ms),
            Claim::AlreadyDone
        );
        assert_eq!(
            verdict(&item(DONE, now_ms / 1000 - 10), token, now_ms),
            Claim::InProgress
        );
        assert_eq!(
            verdict(&item(CLAIMED, now_ms / 1000 + 10), token, now_ms),
            Claim::InProgress
        );
    }

    #[test]
    fn a_claim_found_with_the_calls_own_token_is_the_calls_own() {
        let now_ms = 1_700_000_000_000;
        let claimed_by = |token: &str| {
            HashMap::from([
                (
                    STATE_ATTRIBUTE.to_owned(),
                    AttributeValue::S(CLAIMED.into()),
                ),
                (CLAIM_ATTRIBUTE.to_owned(), AttributeValue::S(token.into())),
            ])
        };
        // The SDK retried a PutItem whose reply was lost: the item is this call's.
        assert_eq!(
            verdict(&claimed_by("worker-a/1/7"), "worker-a/1/7", now_ms),
            Claim::Claimed
        );
        // Another call — another delivery of the same finding, even in this
        // worker — is someone else's claim.
        assert_eq!(
            verdict(&claimed_by("worker-a/1/6"), "worker-a/1/7", now_ms),
            Claim::InProgress
        );
    }
}
