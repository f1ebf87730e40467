//! Dead letters: poison sent to an SQS dead-letter queue (shared with the
//! Lambda adapter), and the redrive policy read when there is none.

use super::BACKEND;
use super::settle::SqsSettle;
use super::{REASON_ATTRIBUTE, SOURCE_MESSAGE_ID_ATTRIBUTE};
use crate::aws::classify;
use crate::error::{Error, ErrorKind, Result};
use crate::source::DeadLetterMode;
use crate::telemetry::{ApiCall, Stats, StatsSlot};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};

/// A poison message on its way to an SQS dead-letter queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeadLetter<'a> {
    /// The original message's id, sent as [`SOURCE_MESSAGE_ID_ATTRIBUTE`]
    /// (and, for a FIFO queue, the deduplication id).
    pub(crate) message_id: &'a str,
    /// The original message group, for a FIFO dead-letter queue
    /// (`dead-letter` when there is none).
    pub(crate) group: Option<&'a str>,
    /// The body, sent as it came (lossily as UTF-8).
    pub(crate) body: &'a [u8],
    /// Why it is poison, sent as [`REASON_ATTRIBUTE`].
    pub(crate) reason: &'a str,
}

/// Sends `letter` to the SQS queue at `queue_url`, with the reason and the
/// original message id as message attributes; counts the `SendMessage` in
/// `stats`. The one dead-letter send of the crate: the SQS source's and the
/// Lambda adapter's.
pub(crate) async fn send_dead_letter(
    client: &Client,
    queue_url: &str,
    letter: DeadLetter<'_>,
    stats: &Stats,
) -> Result<()> {
    let text = |s: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(s)
            .build()
    };
    // SQS limits the whole message to 256 KiB; a reason is short, but be safe.
    let reason: String = letter.reason.chars().take(4096).collect();
    let mut send = client
        .send_message()
        .queue_url(queue_url)
        .message_body(String::from_utf8_lossy(letter.body));
    if let Ok(v) = text(if reason.is_empty() { "-" } else { &reason }) {
        send = send.message_attributes(REASON_ATTRIBUTE, v);
    }
    if !letter.message_id.is_empty() {
        if let Ok(v) = text(letter.message_id) {
            send = send.message_attributes(SOURCE_MESSAGE_ID_ATTRIBUTE, v);
        }
    }
    if queue_url.ends_with(".fifo") {
        send = send
            .message_group_id(letter.group.unwrap_or("dead-letter"))
            .message_deduplication_id(dedup_id(letter.message_id));
    }
    stats.count_api_call(ApiCall::SqsSendMessage);
    send.send()
        .await
        .map_err(|e| classify(BACKEND, "SendMessage (dead-letter queue)", e))?;
    Ok(())
}

impl SqsSettle {
    /// Sends the body to the dead-letter queue, then deletes the original.
    pub(super) async fn park(&self, dlq: &str, reason: &str) -> Result<()> {
        let letter = DeadLetter {
            message_id: &self.message_id,
            group: self.group.as_deref(),
            body: self.body.as_deref().unwrap_or_default(),
            reason,
        };
        send_dead_letter(&self.shared.client, dlq, letter, self.shared.slot.get()).await?;
        self.delete().await
    }
}

/// Without a configured dead-letter queue: does the queue have a redrive
/// policy (and which queue does it move messages to, its ARN)? Without one,
/// released poison would come back forever, so dead letters are deleted and
/// live on in the audit record only.
pub(super) async fn redrive_mode(
    client: &Client,
    queue_url: &str,
    stats: &StatsSlot,
) -> Result<(DeadLetterMode, Option<String>)> {
    stats.count_api_call(ApiCall::SqsGetQueueAttributes);
    let out = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await;
    match out {
        Ok(out) => {
            let policy = out
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
                .filter(|p| !p.trim().is_empty());
            if let Some(policy) = policy {
                Ok((DeadLetterMode::Redrive, redrive_target(policy)))
            } else {
                tracing::warn!(
                    queue = queue_url,
                    "the queue has no redrive policy and no dead-letter queue is configured: \
                     poison is deleted and its body kept in the audit record only"
                );
                Ok((DeadLetterMode::AuditOnly, None))
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
                Ok((DeadLetterMode::Redrive, None))
            } else {
                Err(e)
            }
        }
    }
}

/// The `deadLetterTargetArn` of a redrive policy (JSON), if it names an
/// SQS queue.
fn redrive_target(policy: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = v.get("deadLetterTargetArn")?.as_str()?;
    queue_of_arn(arn).map(|_| arn.to_owned())
}

/// The queue name and owner account of an SQS queue ARN
/// (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`).
pub(super) fn queue_of_arn(arn: &str) -> Option<(&str, &str)> {
    match crate::model::split_arn(arn)? {
        (_, "sqs", _, account, name)
            if !account.is_empty() && !name.is_empty() && !name.contains(['/', ':']) =>
        {
            Some((name, account))
        }
        _ => None,
    }
}

/// The URL of the redrive policy's dead-letter queue (`GetQueueUrl` by
/// name and owner), or `None`, logged, when it cannot be found.
pub(super) async fn redrive_target_url(
    client: &Client,
    arn: &str,
    stats: &StatsSlot,
) -> Option<String> {
    let (name, account) = queue_of_arn(arn)?;
    stats.count_api_call(ApiCall::SqsGetQueueUrl);
    match client
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
    {
        Ok(out) => out.queue_url().map(str::to_owned),
        Err(e) => {
            let e = Error::from(classify(
                BACKEND,
                "GetQueueUrl (redrive dead-letter queue)",
                e,
            ));
            tracing::warn!(
                dead_letter_queue = arn,
                error = %e,
                "the redrive policy's dead-letter queue cannot be found: poison is released \
                 for the policy to move"
            );
            None
        }
    }
}

/// A FIFO deduplication id: at most 128 characters of `[!-~]`, never empty.
fn dedup_id(message_id: &str) -> String {
    let id: String = message_id
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect();
    if id.is_empty() { "-".to_owned() } else { id }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_targets_are_sqs_queue_arns() {
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:dlq","maxReceiveCount":"10"}"#;
        assert_eq!(
            redrive_target(policy).as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:dlq")
        );
        assert_eq!(
            queue_of_arn("arn:aws:sqs:us-east-1:123456789012:dlq"),
            Some(("dlq", "123456789012"))
        );
        assert_eq!(queue_of_arn("arn:aws:sns:us-east-1:123456789012:t"), None);
        assert_eq!(queue_of_arn("arn:aws:sqs:us-east-1::dlq"), None);
        assert_eq!(redrive_target("not json"), None);
    }

    #[test]
    fn dedup_ids_are_printable_short_and_never_empty() {
        assert_eq!(dedup_id("a b\tc"), "abc");
        assert_eq!(dedup_id(""), "-");
        assert_eq!(dedup_id(&"x".repeat(300)).len(), 128);
    }
}
