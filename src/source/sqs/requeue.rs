//! Re-queueing instead of a visibility change: how a retried or deferred
//! delivery keeps its redrive budget for real attempts.
//!
//! SQS counts every receive toward the redrive policy's `maxReceiveCount`:
//! a deferral (a rate limit, another worker's claim), and a receive that
//! went to a worker that died while it waited (its long poll still took the
//! message and hid it for a visibility timeout). Enough of those and SQS
//! moves a finding to the dead-letter queue that no worker ever ran.
//!
//! So on a standard queue a nack or a deferral sends the body again as a new
//! message (`SendMessage` with `DelaySeconds`, its message attributes kept)
//! and then deletes the received one: the new message's receive count starts
//! at zero. What the worker must not forget travels in two attributes:
//!
//! | attribute | what |
//! |---|---|
//! | [`ATTEMPTS_ATTRIBUTE`] | failed attempts so far (a nack adds one, a deferral none) |
//! | [`FIRST_SEEN_ATTRIBUTE`] | when the finding was first received (ms since the epoch) |
//!
//! The delivery count the engine sees is attempts + the receive count, and
//! the attempt ([`Delivery::attempt`](crate::source::Delivery::attempt)) is
//! attempts + 1: a finding that keeps failing is dead-lettered at its
//! `max_deliveries`-th failed attempt (receives nobody settled do not use
//! them up), and one that crashes its worker each time (no settle at all)
//! still reaches the redrive policy. A release for now
//! (no delay: a shutdown, the end of a dry run's pass) and a message that
//! cannot be re-sent (a FIFO queue, a delay beyond SQS's 15 minutes, no room
//! for the attributes, a failed `SendMessage`) get a visibility change as
//! before. If the delete after a successful send fails, both copies exist
//! for a while: the dedup store runs the finding once.

use super::settle::SqsSettle;
use super::{ATTEMPTS_ATTRIBUTE, BACKEND, FIRST_SEEN_ATTRIBUTE};
use crate::aws::classify;
use crate::error::Result;
use crate::telemetry::ApiCall;
use aws_sdk_sqs::types::MessageAttributeValue;
use std::time::Duration;

/// The longest `DelaySeconds` SQS accepts (15 minutes).
const MAX_DELAY: Duration = Duration::from_secs(900);
/// The most message attributes SQS accepts on one message.
const MAX_ATTRIBUTES: usize = 10;

/// What a re-queued message carries of the received one.
#[derive(Clone, Debug, Default)]
pub(super) struct Carried {
    /// Failed attempts before this delivery.
    pub(super) attempts: u32,
    /// First received, ms since the epoch.
    pub(super) first_seen_ms: Option<u64>,
    /// The message's own attributes (not ours), sent again.
    pub(super) attributes: Vec<(String, MessageAttributeValue)>,
}

fn number(n: u64) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("Number")
        .string_value(n.to_string())
        .build()
        .ok()
}

impl SqsSettle {
    /// Sends the message again, due after `after`, carrying `attempts`, and
    /// deletes this one. `Ok(false)` when it could not be sent (nothing
    /// changed: the caller changes the visibility instead).
    pub(super) async fn requeue(&self, after: Duration, attempts: u32) -> Result<bool> {
        let (Some(carried), Some(body)) = (&self.carried, &self.body) else {
            return Ok(false);
        };
        let ours = 1 + usize::from(carried.first_seen_ms.is_some());
        if after > MAX_DELAY || carried.attributes.len() + ours > MAX_ATTRIBUTES {
            return Ok(false);
        }
        let Ok(text) = std::str::from_utf8(body) else {
            return Ok(false);
        };
        let delay = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        let mut send = self
            .shared
            .client
            .send_message()
            .queue_url(&self.shared.queue_url)
            .message_body(text)
            .delay_seconds(i32::try_from(delay).unwrap_or(900));
        for (name, value) in &carried.attributes {
            send = send.message_attributes(name, value.clone());
        }
        if let Some(v) = number(u64::from(attempts)) {
            send = send.message_attributes(ATTEMPTS_ATTRIBUTE, v);
        }
        if let Some(v) = carried.first_seen_ms.and_then(number) {
            send = send.message_attributes(FIRST_SEEN_ATTRIBUTE, v);
        }
        self.shared.slot.count_api_call(ApiCall::SqsSendMessage);
        if let Err(e) = send.send().await {
            let e = crate::error::Error::from(classify(BACKEND, "SendMessage (re-queue)", e));
            tracing::warn!(
                message_id = %self.message_id,
                error = %e,
                "re-queueing failed; changing the visibility instead"
            );
            return Ok(false);
        }
        // The copy is in the queue; the received one must go. If this
        // delete fails, the original comes back after its visibility
        // timeout as a second copy of the finding: the dedup store runs it
        // once.
        self.delete().await?;
        Ok(true)
    }
}

/// Reads what a received message carries for [`Carried`]: our attributes
/// parsed (missing or unreadable ones are zero or absent), the rest kept.
pub(super) fn carried(
    attributes: &std::collections::HashMap<String, MessageAttributeValue>,
    first_seen_ms: Option<u64>,
) -> Carried {
    let ours = |name: &str| {
        attributes
            .get(name)
            .and_then(|v| v.string_value())
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    let mut kept: Vec<(String, MessageAttributeValue)> = attributes
        .iter()
        .filter(|(name, _)| {
            name.as_str() != ATTEMPTS_ATTRIBUTE && name.as_str() != FIRST_SEEN_ATTRIBUTE
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    Carried {
        attempts: ours(ATTEMPTS_ATTRIBUTE).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        first_seen_ms: ours(FIRST_SEEN_ATTRIBUTE).or(first_seen_ms),
        attributes: kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn text(s: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(s)
            .build()
            .unwrap()
    }

    #[test]
    fn carried_reads_ours_and_keeps_the_rest() {
        let mut attrs = HashMap::new();
        attrs.insert(ATTEMPTS_ATTRIBUTE.to_owned(), number(3).unwrap());
        attrs.insert(
            FIRST_SEEN_ATTRIBUTE.to_owned(),
            number(1_700_000_000_000).unwrap(),
        );
        attrs.insert("origin".to_owned(), text("prisma"));
        let c = carried(&attrs, Some(5));
        assert_eq!(c.attempts, 3);
        assert_eq!(c.first_seen_ms, Some(1_700_000_000_000));
        assert_eq!(c.attributes.len(), 1);
        assert_eq!(c.attributes[0].0, "origin");
    }

    #[test]
    fn a_hostile_attempts_attribute_reads_as_nothing_or_saturates() {
        let mut attrs = HashMap::new();
        attrs.insert(ATTEMPTS_ATTRIBUTE.to_owned(), text("-1; drop"));
        assert_eq!(carried(&attrs, None).attempts, 0);
        attrs.insert(ATTEMPTS_ATTRIBUTE.to_owned(), text("99999999999"));
        assert_eq!(carried(&attrs, None).attempts, u32::MAX);
    }
}
