//! Google Cloud Pub/Sub as an [`AlertSource`]: a streaming pull on one
//! subscription through the official `google-cloud-pubsub` client, with its
//! flow control and lease management. Feature `pubsub`.
//!
//! | verb        | Pub/Sub |
//! |-------------|---------|
//! | receive     | streaming pull (the client's `MessageStream`); flow control caps the messages and bytes outstanding |
//! | ack         | the handler's ack (`confirmed_ack` on exactly-once subscriptions) |
//! | nack(0)     | the handler's nack: the lease is dropped, Pub/Sub redelivers at once (after the subscription's retry policy backoff, if it has one) |
//! | nack(delay) | the message stays leased (the client keeps extending it) for `delay`, capped by [`PubSubSourceBuilder::with_max_nack_delay`], then nacked |
//! | extend      | nothing to do: the client extends every outstanding lease itself, up to the maximum lease |
//! | dead-letter | publish to the configured dead-letter topic, then ack; or, without one, nack for the subscription's dead-letter policy; or, without either, ack (the body lives on in the audit record) |
//!
//! # No per-message delay
//!
//! Pub/Sub has no "redeliver no sooner than" on a nack, and the client does
//! not expose `ModifyAckDeadline`. So `nack(delay)` keeps the message leased
//! for `delay` and nacks it then: nobody else receives it meanwhile. A held
//! message counts against flow control (a burst of failures slows the intake
//! instead of spinning on redeliveries); on [`PubSubSource::shutdown`] held
//! messages are nacked at once. A subscription's retry policy
//! (`minimumBackoff`/`maximumBackoff`) adds Pub/Sub's own backoff on top.
//!
//! # Delivery count
//!
//! Pub/Sub counts delivery attempts only on subscriptions with a dead-letter
//! policy (the handler's `delivery_attempt()`), and the source uses that
//! count. Without a policy, the source counts how often *this process* has
//! received the message id (a bounded in-memory map), so the engine's
//! `max_deliveries` still works on one worker; other workers' deliveries are
//! not seen.
//!
//! # Cancellation and shutdown
//!
//! A background task reads the stream and hands messages to `receive` through
//! a small channel. Dropping a `receive` future loses nothing: a message stays
//! in the channel until the next `receive`. A delivery dropped unsettled is
//! nacked by the client's handler (redelivered at once). Messages the client
//! received but nobody took are nacked when the source shuts down or is
//! dropped. Call [`PubSubSource::shutdown`] after the engine finished, so
//! acks still batched in the client reach Pub/Sub before the process exits.
//!
//! # Emulator
//!
//! `google-cloud-pubsub` does not read `PUBSUB_EMULATOR_HOST` itself. Like
//! Google's other client libraries, [`PubSubSourceBuilder::from_env`] turns
//! it into an endpoint override (`http://HOST:PORT`) plus anonymous
//! credentials on every client it builds, so the same code runs against the
//! emulator and production.
//!
//! # Stats
//!
//! The client batches acks and nacks into its own `Acknowledge` and
//! `ModifyAckDeadline` RPCs and does not expose them, so the source counts
//! what it asks for, in [`PubSubSource::stats`]:
//!
//! | counter | counted once per |
//! |---------|------------------|
//! | `pubsub.StreamingPull` | message stream the source opens (the client may reopen the gRPC stream beneath it: not counted) |
//! | `pubsub.Acknowledge` | message the source acks (an ack, a parked or audit-only dead letter) |
//! | `pubsub.ModifyAckDeadline` | message the source nacks (a nack, a held nack ending, a dead letter left to the policy, a message not handed out when the source shuts down); the client's own lease extensions are not counted |
//! | `pubsub.Publish` | dead letter published to the dead-letter topic |

mod builder;
mod error;
mod reader;
mod settle;
#[cfg(test)]
mod tests;

pub use builder::{PubSubConfigKey, PubSubSourceBuilder};

use super::{AlertSource, Capabilities, DeadLetterMode, Delivery};
use crate::error::Result;
use crate::telemetry::Stats;
use async_trait::async_trait;
use reader::Shared;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const BACKEND: &str = "pubsub";
/// The most deliveries one `receive` returns.
const MAX_BATCH: usize = 100;
/// Messages read from the stream but not yet taken by `receive`.
const HANDOFF: usize = 32;
/// How many message ids the fallback delivery counter remembers.
const COUNTS_KEPT: usize = 100_000;
/// How long [`PubSubSource::shutdown`] waits for the client to flush.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// The message attribute carrying the dead-letter reason on messages this
/// source publishes to its dead-letter topic.
pub const REASON_ATTRIBUTE: &str = "remediation-dead-letter-reason";
/// The message attribute carrying the original message id on dead letters.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "remediation-source-message-id";
/// The message attribute carrying the subscription a dead letter came from.
pub const SOURCE_SUBSCRIPTION_ATTRIBUTE: &str = "remediation-source-subscription";

/// A Pub/Sub subscription as a source of deliveries. Cheap to clone.
#[derive(Clone)]
pub struct PubSubSource {
    name: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for PubSubSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubSource")
            .field("subscription", &self.shared.subscription)
            .field("dead_letter_topic", &self.shared.dead_letter_topic)
            .field("max_lease", &self.shared.max_lease)
            .field("max_nack_delay", &self.shared.max_nack_delay)
            .finish_non_exhaustive()
    }
}

impl PubSubSource {
    /// A builder.
    pub fn builder() -> PubSubSourceBuilder {
        PubSubSourceBuilder::new()
    }

    /// A source configured from the environment (see
    /// [`PubSubSourceBuilder::from_env`]).
    pub async fn from_env() -> Result<PubSubSource> {
        PubSubSourceBuilder::from_env().build().await
    }

    /// The subscription, `projects/P/subscriptions/S`.
    pub fn subscription(&self) -> &str {
        &self.shared.subscription
    }

    /// How many dead letters were acked without being parked anywhere (the
    /// subscription has no dead-letter policy and no topic was configured).
    pub fn audit_only_dead_letters(&self) -> u64 {
        self.shared.audit_only.load(Ordering::Relaxed)
    }

    /// The stats the source counts its calls in (see the module's "Stats"):
    /// its own, those of [`with_stats`](PubSubSourceBuilder::with_stats), or
    /// the engine's once it was [attached](AlertSource::attach_stats).
    pub fn stats(&self) -> &Arc<Stats> {
        self.shared.slot.get()
    }

    /// Stops reading: messages received but not handed out, and messages
    /// held by a `nack(delay)`, are nacked at once; acks still batched in the
    /// client are sent. Call it after the engine's `run` returned (deliveries
    /// still unsettled are waited for, at most 30 s). Later `receive`s
    /// return nothing.
    pub async fn shutdown(&self) {
        self.shared.shutdown().await;
    }
}

#[async_trait]
impl AlertSource for PubSubSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        self.shared.receive(max).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // The client extends every outstanding lease itself.
            extend: false,
            redelivery: true,
            dead_letter: if self.shared.dead_letter_topic.is_some() {
                DeadLetterMode::Native
            } else {
                DeadLetterMode::Redrive
            },
            lease: Some(self.shared.max_lease),
            max_batch: MAX_BATCH,
        }
    }

    /// [`shutdown`](PubSubSource::shutdown): sends the acks the client still
    /// batches and closes the stream.
    async fn close(&self) {
        self.shutdown().await;
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.shared.slot.attach(stats);
    }
}
