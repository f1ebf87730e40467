//! `MemoryGuardrails` has the semantics every guardrail store must have
//! (`tests/support/store_semantics.rs`, run against DynamoDB in
//! `tests/guardrails_dynamodb.rs`).

mod support;

use remediation::guardrails::MemoryGuardrails;
use std::time::{Duration, SystemTime};
use support::store_semantics;

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000)
}

#[tokio::test]
async fn a_bucket_spaces_tokens_after_its_burst() {
    store_semantics::buckets(&MemoryGuardrails::new(), t0()).await;
}

#[tokio::test]
async fn a_window_counts_members_once_and_slides() {
    store_semantics::windows(&MemoryGuardrails::new(), t0()).await;
}

#[tokio::test]
async fn circuits_open_once_and_close_with_their_counts() {
    store_semantics::circuits(&MemoryGuardrails::new(), t0()).await;
}
