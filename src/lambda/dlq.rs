//! Poison forwarded to an SQS dead-letter queue from inside a function,
//! with the SQS source's own send.

use super::invocation::Parker;
use crate::error::Result;
use crate::source::sqs::{DeadLetter, send_dead_letter};
use crate::telemetry::Stats;
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;

pub(super) struct SqsParker {
    pub(super) client: aws_sdk_sqs::Client,
    pub(super) queue_url: String,
    pub(super) stats: Arc<Stats>,
}

impl fmt::Debug for SqsParker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsParker")
            .field("queue_url", &self.queue_url)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Parker for SqsParker {
    async fn park(&self, message_id: &str, body: &[u8], reason: &str) -> Result<()> {
        let letter = DeadLetter {
            message_id,
            group: None,
            body,
            reason,
        };
        send_dead_letter(&self.client, &self.queue_url, letter, &self.stats).await
    }
}
