//! Dead letters: poison sent to an SQS dead-letter queue (shared with the
//! Lambda adapter), and the redrive policy read when there is none.

use super::BACKEND;
use super::settle::SqsSettle;
use super::{REASON_ATTRIBUTE, SOURCE_MESSAGE_ID_ATTRIBUTE};
use crate::aws::classify;
use crate::error::Result;
use crate::error::{Error, ErrorKind};
use crate::source::DeadLetterMode;
use crate::telemetry::{ApiCall, Stats};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

impl SqsSettle {
    /// Sends the body to the dead-letter queue, then deletes the original.
    pub(super) async fn park(&self, dlq: &str, reason: &str) -> Result<()> {
        let body = String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned();
        let text = |s: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(s)
                .build()
        };
        // SQS limits the whole message to 256 KiB; a reason is short, but be safe.
        let reason: String = reason.chars().take(4096).collect();
        let mut send = self
            .shared
            .client
            .send_message()
            .queue_url(dlq)
            .message_body(body);
        if let Ok(v) = text(if reason.is_empty() { "-" } else { &reason }) {
            send = send.message_attributes(REASON_ATTRIBUTE, v);
        }
        if let Ok(v) = text(&self.message_id) {
            send = send.message_attributes(SOURCE_MESSAGE_ID_ATTRIBUTE, v);
        }
        if dlq.ends_with(".fifo") {
            send = send
                .message_group_id(self.group.clone().unwrap_or_else(|| "dead-letter".into()))
                .message_deduplication_id(dedup_id(&self.message_id));
        }
        self.shared.stats.count_api_call(ApiCall::SqsSendMessage);
        send.send()
            .await
            .map_err(|e| classify(BACKEND, "SendMessage (dead-letter queue)", e))?;
        self.shared.delete(&self.receipt).await
    }
}

/// Without a configured dead-letter queue: does the queue have a redrive
/// policy? Without one, released poison would come back forever, so dead
/// letters are deleted and live on in the audit record only.
pub(super) async fn redrive_mode(
    client: &Client,
    queue_url: &str,
    stats: &Stats,
) -> Result<DeadLetterMode> {
    stats.count_api_call(ApiCall::SqsGetQueueAttributes);
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await;
    match out {
        Ok(out) => {
            let has_policy = out
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
                .is_some_and(|p| !p.trim().is_empty());
            if has_policy {
                Ok(DeadLetterMode::Redrive)
            } else {
                tracing::warn!(
                    queue = queue_url,
                    "the queue has no redrive policy and no dead-letter queue is configured: \
                     poison is deleted and its body kept in the audit record only"
                );
                Ok(DeadLetterMode::AuditOnly)
            }
        }
        Err(e) => {
            let e = Error::from(classify(BACKEND, "GetQueueAttributes", e));
            if e.kind() == ErrorKind::PermissionDenied {
                tracing::warn!(
                    queue = queue_url,
                    error = %e,
                    "cannot read the queue's redrive policy; assuming it has one"
                );
                Ok(DeadLetterMode::Redrive)
            } else {
                Err(e)
            }
        }
    }
}

/// A FIFO deduplication id (at most 128 characters of `[!-~]`).
fn dedup_id(message_id: &str) -> String {
    message_id
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect()
}
