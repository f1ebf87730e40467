//! The [`DedupStore`] calls, each one conditional `UpdateItem`: `claim`
//! (setting the claim's attributes and leaving the recorded steps as they
//! are, returning the new item), `complete`, `release` (the claim lapses,
//! its steps stay), `renew` and `record_step`.

use super::BACKEND;
use super::error::{held_unless_condition_failed, unless_condition_failed};
use super::{
    CLAIM_ATTRIBUTE, CLAIM_LINGER_SECS, CLAIMED, DONE, DynamoDedup, KEY_ATTRIBUTE, LEASE_ATTRIBUTE,
    OWNER_ATTRIBUTE, STATE_ATTRIBUTE, STEPS_ATTRIBUTE, TTL_ATTRIBUTE,
};
use crate::aws::classify;
use crate::error::{Error, Result};
use crate::pipeline::dedup::{Claim, ClaimDetail, DedupStore};
use crate::telemetry::{ApiCall, Stats};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
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

    /// An `UpdateItem` of `key`'s item on the condition that this store
    /// holds its claim.
    fn owned_update(&self, key: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .condition_expression("#state = :claimed AND #owner = :me")
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
    }
}

/// What a held item means to the claim call with `token` by `owner`.
fn verdict(
    item: &HashMap<String, AttributeValue>,
    token: &str,
    owner: &str,
    now_ms: u64,
) -> ClaimDetail {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.as_str()),
        _ => None,
    };
    if text(STATE_ATTRIBUTE) == Some(CLAIMED) && text(CLAIM_ATTRIBUTE) == Some(token) {
        // This very call's write, whose reply was lost and which the SDK
        // retried: the claim is ours.
        return ClaimDetail {
            steps_done: steps_of(item),
            ..ClaimDetail::new(Claim::Claimed)
        };
    }
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    match text(STATE_ATTRIBUTE) {
        Some(DONE) if number(TTL_ATTRIBUTE).is_none_or(|s| s >= now_ms / 1000) => {
            ClaimDetail::new(Claim::AlreadyDone)
        }
        // Another worker's live claim: it lasts until its lease at most.
        Some(CLAIMED) if text(OWNER_ATTRIBUTE) != Some(owner) => ClaimDetail {
            held_for: number(LEASE_ATTRIBUTE)
                .map(|until| Duration::from_millis(until.saturating_sub(now_ms))),
            ..ClaimDetail::new(Claim::InProgress)
        },
        // This worker's own claim (another delivery of the same finding), or
        // an item that changed under us: ask again later.
        _ => ClaimDetail::new(Claim::InProgress),
    }
}

/// The steps recorded done in an item.
fn steps_of(item: &HashMap<String, AttributeValue>) -> Vec<String> {
    match item.get(STEPS_ATTRIBUTE) {
        Some(AttributeValue::Ss(steps)) => steps.clone(),
        _ => Vec::new(),
    }
}

#[async_trait]
impl DedupStore for DynamoDedup {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        self.claim_detailed(key, lease).await.map(|d| d.claim)
    }

    async fn claim_detailed(&self, key: &str, lease: Duration) -> Result<ClaimDetail> {
        let now_ms = epoch_millis();
        let lease_until = now_ms.saturating_add(millis(lease));
        let expires_at = lease_until / 1000 + CLAIM_LINGER_SECS;
        let n = self
            .claims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}/{now_ms}/{n}", self.owner);
        self.slot.count_api_call(ApiCall::DynamoDbUpdateItem);
        // One conditional write takes the claim, fresh or over a lapsed (or
        // expired) one, and leaves `steps_done` as it is: no second write to
        // lose, and nothing of the old item dropped even if this request
        // lands after its worker died.
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(key.to_owned()))
            .update_expression(
                "SET #state = :claimed, #owner = :me, #claim = :token, \
                 #lease = :until, #expires = :expires",
            )
            .condition_expression(
                "attribute_not_exists(#pk) OR (#state = :claimed AND #lease < :now_ms) \
                 OR (#state = :done AND #expires < :now_s)",
            )
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_names("#claim", CLAIM_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":done", AttributeValue::S(DONE.into()))
            .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
            .expression_attribute_values(":token", AttributeValue::S(token.clone()))
            .expression_attribute_values(":until", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":now_s", AttributeValue::N((now_ms / 1000).to_string()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match update {
            // The claim as written, with the steps recorded under earlier
            // claims (an expired completion's item has none: `complete`
            // removes them).
            Ok(out) => Ok(ClaimDetail {
                steps_done: out.attributes.as_ref().map(steps_of).unwrap_or_default(),
                ..ClaimDetail::new(Claim::Claimed)
            }),
            Err(e) => {
                let held = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        Some(c.item().cloned())
                    }
                    _ => None,
                };
                match held {
                    None => Err(Error::from(classify(BACKEND, "UpdateItem", e))),
                    Some(Some(item)) => Ok(verdict(&item, &token, &self.owner, now_ms)),
                    // The server did not return the item: read it.
                    Some(None) => Ok(match self.read(key).await? {
                        Some(item) => verdict(&item, &token, &self.owner, now_ms),
                        None => ClaimDetail::new(Claim::InProgress),
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
                "SET #state = :done, #owner = :me, #expires = :expires REMOVE #lease, #steps",
            )
            .condition_expression("attribute_not_exists(#pk) OR #state = :claimed OR #owner = :me")
            .expression_attribute_names("#pk", KEY_ATTRIBUTE)
            .expression_attribute_names("#state", STATE_ATTRIBUTE)
            .expression_attribute_names("#owner", OWNER_ATTRIBUTE)
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_names("#steps", STEPS_ATTRIBUTE)
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
        self.slot.count_api_call(ApiCall::DynamoDbUpdateItem);
        // The claim lapses at once; the item stays (until its TTL) with the
        // steps recorded under it, for the next claim.
        let update = self
            .owned_update(key)
            .update_expression("SET #lease = :zero")
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        // The condition failed: not our claim any more (lapsed and taken
        // over, or done), leave it.
        unless_condition_failed("UpdateItem", update)
    }

    fn renews(&self) -> bool {
        true
    }

    async fn renew(&self, key: &str, lease: Duration) -> Result<bool> {
        let lease_until = epoch_millis().saturating_add(millis(lease));
        let expires_at = lease_until / 1000 + CLAIM_LINGER_SECS;
        self.slot.count_api_call(ApiCall::DynamoDbUpdateItem);
        let update = self
            .owned_update(key)
            .update_expression("SET #lease = :until, #expires = :expires")
            .expression_attribute_names("#lease", LEASE_ATTRIBUTE)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":until", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        held_unless_condition_failed("UpdateItem", update)
    }

    async fn record_step(&self, key: &str, step: &str) -> Result<()> {
        self.slot.count_api_call(ApiCall::DynamoDbUpdateItem);
        let update = self
            .owned_update(key)
            .update_expression("ADD #steps :steps")
            .expression_attribute_names("#steps", STEPS_ATTRIBUTE)
            .expression_attribute_values(":steps", AttributeValue::Ss(vec![step.to_owned()]))
            .send()
            .await;
        // The condition failed: the claim is not ours any more; whoever holds
        // it now runs the plan from its own records.
        unless_condition_failed("UpdateItem", update)
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.slot.attach(stats);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
            verdict(&item(DONE, now_ms / 1000 + 10), token, "worker-a", now_ms).claim,
            Claim::AlreadyDone
        );
        assert_eq!(
            verdict(&item(DONE, now_ms / 1000 - 10), token, "worker-a", now_ms).claim,
            Claim::InProgress
        );
        assert_eq!(
            verdict(
                &item(CLAIMED, now_ms / 1000 + 10),
                token,
                "worker-a",
                now_ms
            )
            .claim,
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
        // The SDK retried a claim write whose reply was lost: the item is this call's.
        assert_eq!(
            verdict(
                &claimed_by("worker-a/1/7"),
                "worker-a/1/7",
                "worker-a",
                now_ms
            )
            .claim,
            Claim::Claimed
        );
        // Another call — another delivery of the same finding, even in this
        // worker — is someone else's claim.
        assert_eq!(
            verdict(
                &claimed_by("worker-a/1/6"),
                "worker-a/1/7",
                "worker-a",
                now_ms
            )
            .claim,
            Claim::InProgress
        );
    }

    #[test]
    fn another_workers_claim_is_held_until_its_lease() {
        let now_ms = 1_700_000_000_000;
        let item = |owner: &str| {
            HashMap::from([
                (
                    STATE_ATTRIBUTE.to_owned(),
                    AttributeValue::S(CLAIMED.into()),
                ),
                (OWNER_ATTRIBUTE.to_owned(), AttributeValue::S(owner.into())),
                (
                    LEASE_ATTRIBUTE.to_owned(),
                    AttributeValue::N((now_ms + 42_000).to_string()),
                ),
                (
                    STEPS_ATTRIBUTE.to_owned(),
                    AttributeValue::Ss(vec!["0:ab".into()]),
                ),
            ])
        };
        let theirs = verdict(&item("worker-b"), "worker-a/1/7", "worker-a", now_ms);
        assert_eq!(theirs.claim, Claim::InProgress);
        assert_eq!(theirs.held_for, Some(Duration::from_secs(42)));
        // This worker's own claim (another delivery here) ends soon: no wait.
        let ours = verdict(&item("worker-a"), "worker-a/1/7", "worker-a", now_ms);
        assert_eq!((ours.claim, ours.held_for), (Claim::InProgress, None));
        assert_eq!(steps_of(&item("x")), ["0:ab"]);
    }
}
