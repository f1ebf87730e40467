//! Receiving: `ReceiveMessage` long polls, and each message turned into a
//! [`Delivery`] (receive count, first-seen time, attributes).

use super::fifo::Held;
use super::settle::{SqsSettle, visibility_secs};
use super::{BACKEND, SQS_BATCH, Shared};
use crate::aws::classify;
use crate::error::Result;
use crate::source::Delivery;
use crate::telemetry::ApiCall;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

impl Shared {
    /// Up to `max` deliveries: held-back FIFO messages first, else one
    /// `ReceiveMessage` call.
    pub(super) async fn receive(self: &Arc<Self>, max: usize) -> Result<Vec<Delivery>> {
        let max = max.clamp(1, SQS_BATCH);
        let shared = self;
        if shared.fifo {
            let ready = shared.take_held(max);
            if !ready.is_empty() {
                return Ok(ready);
            }
        }
        // With messages held back, poll briefly: a held message is handed out
        // by the first receive after its group's delivery is settled.
        let wait = if shared.fifo && !shared.groups().held.is_empty() {
            shared.wait.min(Duration::from_secs(1))
        } else {
            shared.wait
        };
        let asked = Instant::now();
        shared.slot.count_api_call(ApiCall::SqsReceiveMessage);
        let out = shared
            .client
            .receive_message()
            .queue_url(&shared.queue_url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20))
            .visibility_timeout(visibility_secs(shared.visibility.as_secs()))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(
                MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
            )
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::SequenceNumber)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| classify(BACKEND, "ReceiveMessage", e))?;
        // The lease counts from when the request was sent: never later than SQS's clock.
        let deadline = asked + shared.visibility;
        let messages = out.messages.unwrap_or_default();
        if !shared.fifo {
            return Ok(messages
                .into_iter()
                .filter_map(|m| shared.delivery(m, deadline))
                .collect());
        }
        let mut out = Vec::with_capacity(messages.len());
        let mut g = shared.groups();
        for m in messages {
            let group = m
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_default();
            if g.busy.contains(&group) || g.held.contains_key(&group) {
                if !g.held.contains_key(&group) {
                    g.order.push_back(group.clone());
                }
                g.held.entry(group).or_default().push_back(Held {
                    message: m,
                    deadline,
                });
            } else if let Some(d) = shared.delivery(m, deadline) {
                g.busy.insert(group);
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Turns a received message into a delivery; `None` (logged) if SQS sent
    /// one without a receipt handle, which cannot be settled.
    pub(super) fn delivery(self: &Arc<Self>, m: Message, deadline: Instant) -> Option<Delivery> {
        let Some(receipt) = m.receipt_handle.clone() else {
            tracing::warn!(message_id = ?m.message_id, "SQS returned a message without a receipt handle; ignored");
            return None;
        };
        let attrs = m.attributes.unwrap_or_default();
        let attr = |name: MessageSystemAttributeName| attrs.get(&name).cloned();
        let receives = attr(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1);
        let first_seen_ms = attr(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
            .or_else(|| attr(MessageSystemAttributeName::SentTimestamp))
            .and_then(|ms| ms.parse::<u64>().ok());
        let message_attributes = m.message_attributes.unwrap_or_default();
        // Re-queued retries carry their attempts and first-seen time.
        let carried = (self.requeue && !self.fifo)
            .then(|| super::requeue::carried(&message_attributes, first_seen_ms));
        let count = carried
            .as_ref()
            .map_or(receives, |c| c.attempts.saturating_add(receives));
        let first_seen = carried
            .as_ref()
            .map_or(first_seen_ms, |c| c.first_seen_ms)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        let group = attr(MessageSystemAttributeName::MessageGroupId);
        let message_id = m.message_id.unwrap_or_default();
        let body = Bytes::from(m.body.unwrap_or_default());
        let attempt = carried.as_ref().map(|c| c.attempts.saturating_add(1));
        let settle = SqsSettle {
            shared: Arc::clone(self),
            receipt,
            message_id: message_id.clone(),
            group: group.clone(),
            body: (self.dead_letter_queue_url.is_some()
                || self.redrive_target_url.is_some()
                || carried.is_some())
            .then(|| body.clone()),
            carried,
            settled: AtomicBool::new(false),
            open: AtomicBool::new(true),
        };
        self.outstanding.handed_out();
        let mut d = Delivery::new(message_id, body, Arc::new(settle))
            .with_delivery_count(count)
            .with_lease_deadline(deadline);
        if let Some(attempt) = attempt {
            d = d.with_attempt(attempt);
        }
        if let Some(at) = first_seen.filter(|t| *t <= SystemTime::now() + Duration::from_secs(3600))
        {
            d = d.with_first_seen(at);
        }
        for (name, value) in &attrs {
            match name {
                MessageSystemAttributeName::ApproximateReceiveCount
                | MessageSystemAttributeName::ApproximateFirstReceiveTimestamp => {}
                _ => d = d.with_attribute(name.as_str(), value.clone()),
            }
        }
        for (name, value) in message_attributes {
            if let Some(s) = value.string_value() {
                d = d.with_attribute(format!("attribute.{name}"), s);
            }
        }
        Some(d)
    }
}
