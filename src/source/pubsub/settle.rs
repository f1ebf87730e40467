//! [`PubSubSettle`]: the settle verbs of one Pub/Sub message, through the
//! client's handler (ack, nack, a held nack for a delay, dead-letter to a
//! topic or to the subscription's policy). Each ack and nack the source asks
//! for is counted as one `Acknowledge` / `ModifyAckDeadline` (the client
//! batches them into its RPCs), each dead-letter publish as one `Publish`.

use super::error::PubSubError;
use super::reader::Shared;
use super::{REASON_ATTRIBUTE, SOURCE_MESSAGE_ID_ATTRIBUTE, SOURCE_SUBSCRIPTION_ATTRIBUTE};
use crate::error::{Error, Result};
use crate::source::{DeadLetterOutcome, Settle};
use crate::telemetry::{ApiCall, StatsSlot};
use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settles one message through its client handler.
pub(super) struct PubSubSettle {
    pub(super) shared: Arc<Shared>,
    pub(super) message_id: String,
    pub(super) handler: Mutex<Option<Handler>>,
    /// Whether the subscription has a dead-letter policy (Pub/Sub sent a
    /// delivery attempt).
    pub(super) has_policy: bool,
    /// The body and attributes, kept (shared, not copied) when dead letters
    /// are published to a topic.
    pub(super) body: Option<Bytes>,
    pub(super) attributes: HashMap<String, String>,
    pub(super) handed_out: Instant,
}

impl fmt::Debug for PubSubSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubSettle")
            .field("message_id", &self.message_id)
            .field("has_policy", &self.has_policy)
            .finish_non_exhaustive()
    }
}

/// Nacks through `handler`, counted in `slot`.
fn nack(handler: Handler, slot: &StatsSlot) {
    slot.count_api_call(ApiCall::PubSubModifyAckDeadline);
    handler.nack();
}

impl PubSubSettle {
    fn take(&self) -> Result<Handler> {
        self.handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| Error::AlreadySettled {
                message_id: self.message_id.clone(),
            })
    }

    async fn ack_handler(&self, handler: Handler) -> Result<()> {
        self.shared.forget(&self.message_id);
        self.shared.slot.count_api_call(ApiCall::PubSubAcknowledge);
        match handler {
            Handler::ExactlyOnce(h) => h
                .confirmed_ack()
                .await
                .map_err(|e| PubSubError::ack(&e, &self.message_id).into()),
            other => {
                other.ack();
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Settle for PubSubSettle {
    async fn ack(&self) -> Result<()> {
        let handler = self.take()?;
        self.ack_handler(handler).await
    }

    async fn nack(&self, retry_after: Duration) -> Result<()> {
        let handler = self.take()?;
        // Held no longer than the client keeps the lease, nor past shutdown.
        let left = self
            .shared
            .max_nack_delay
            .min(
                self.shared
                    .max_lease
                    .saturating_sub(self.handed_out.elapsed()),
            )
            .saturating_sub(Duration::from_secs(1));
        let hold = retry_after.min(left);
        if hold.is_zero() || self.shared.closing.is_cancelled() {
            nack(handler, &self.shared.slot);
            return Ok(());
        }
        let closing = self.shared.closing.clone();
        let slot = Arc::clone(&self.shared.slot);
        tokio::spawn(async move {
            tokio::select! {
                () = closing.cancelled() => {}
                () = tokio::time::sleep(hold) => {}
            }
            nack(handler, &slot);
        });
        Ok(())
    }

    async fn extend(&self, by: Duration) -> Result<()> {
        let held = self
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !held {
            return Err(Error::AlreadySettled {
                message_id: self.message_id.clone(),
            });
        }
        if self.handed_out.elapsed() + by > self.shared.max_lease {
            return Err(PubSubError::LeaseTooLong {
                message_id: self.message_id.clone(),
                max_lease: self.shared.max_lease,
            }
            .into());
        }
        // The client's lease management is already extending it.
        Ok(())
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        let handler = self.take()?;
        if let Some(publisher) = &self.shared.publisher {
            let mut attributes = self.attributes.clone();
            let reason: String = reason.chars().take(1024).collect();
            attributes.insert(
                REASON_ATTRIBUTE.to_owned(),
                if reason.is_empty() {
                    "-".into()
                } else {
                    reason
                },
            );
            attributes.insert(
                SOURCE_MESSAGE_ID_ATTRIBUTE.to_owned(),
                self.message_id.clone(),
            );
            attributes.insert(
                SOURCE_SUBSCRIPTION_ATTRIBUTE.to_owned(),
                self.shared.subscription.clone(),
            );
            let message = Message::new()
                .set_data(self.body.clone().unwrap_or_default())
                .set_attributes(attributes);
            // On failure the handler is dropped here, which nacks: the
            // message comes back rather than being lost.
            self.shared.slot.count_api_call(ApiCall::PubSubPublish);
            publisher.publish(message).await.map_err(|e| {
                PubSubError::publish(
                    &e,
                    &self.message_id,
                    self.shared.dead_letter_topic.as_deref().unwrap_or(""),
                )
            })?;
            self.ack_handler(handler).await?;
            return Ok(DeadLetterOutcome::Parked);
        }
        if self.has_policy {
            // The subscription's dead-letter policy forwards it after its
            // maxDeliveryAttempts; each nack counts as one.
            nack(handler, &self.shared.slot);
            return Ok(DeadLetterOutcome::LeftToRedrive);
        }
        // No policy and no topic: nacked, it would come back forever.
        self.shared.audit_only.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            subscription = %self.shared.subscription,
            message_id = %self.message_id,
            "the subscription has no dead-letter policy and no dead-letter topic is configured: \
             poison is acked and its body kept in the audit record only"
        );
        self.ack_handler(handler).await?;
        Ok(DeadLetterOutcome::AuditOnly)
    }
}
