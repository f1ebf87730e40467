//! Azure Service Bus as an [`AlertSource`]: peek-lock receives over the
//! Service Bus REST protocol, complete / unlock / renew on the lock's URI,
//! dead letters forwarded to a configured queue or left to the entity's
//! maximum delivery count. Feature `servicebus`.
//!
//! | verb        | Service Bus REST call |
//! |-------------|-----------------------|
//! | receive     | `POST {entity}/messages/head?timeout=N` (peek-lock), several in flight to fill a batch: one message per call, `204` = empty |
//! | ack         | `DELETE {lock URI}` (complete) |
//! | nack(delay) | `PUT {lock URI}` (unlock) after `delay`; a delay longer than the remaining lock keeps the lock (renewing it if needed) and lets it lapse when the delay is over |
//! | extend(by)  | `POST {lock URI}` (renew), repeated in the background while `by` is longer than the entity's lock duration |
//! | dead-letter | send the body to the configured dead-letter queue, then complete; without one, unlock: the entity's `MaxDeliveryCount` moves the message to its `$DeadLetterQueue` |
//!
//! The entity is a queue (`alerts`) or a topic subscription
//! (`alerts/subscriptions/remediator`); a dead-letter sub-queue
//! (`alerts/$DeadLetterQueue`) is read the same way.
//!
//! # Why the REST protocol is spoken here
//!
//! Every call goes through an injected [`azure_core::HttpClient`] (by default
//! azure_core's reqwest client with rustls), signed with a Shared Access
//! Signature per the documented scheme. Receiving does not use
//! `azure_messaging_servicebus`'s `peek_lock_message2`: it does not check the
//! HTTP status (a `401` comes back as `Ok`), reads the body as UTF-8 text, and
//! parses `BrokerProperties` strictly (an `i32` `EnqueuedSequenceNumber`,
//! required `State` and `TimeToLive`) *after* the message was locked, so a
//! message it cannot parse is locked but can be neither settled nor recorded.
//! Here every status is checked, bodies are bytes, `BrokerProperties` is read
//! leniently, and a message is always handed out with its body so the engine
//! can settle it or record it. Dead letters forwarded to a queue are sent with
//! the crate's [`QueueClient`](azure_messaging_servicebus::service_bus::QueueClient).
//!
//! # Local servers
//!
//! [`ServiceBusSourceBuilder::with_endpoint`] (`SERVICEBUS_ENDPOINT`) sends
//! every call to another server speaking the protocol (an emulator on
//! loopback): an [`EndpointOverride`] rewrites scheme, host and port of each
//! request and keeps the path. Signatures still name the namespace's
//! `https://NAMESPACE.servicebus.windows.net/...` resource.
//!
//! # Configuration
//!
//! [`ServiceBusSourceBuilder::from_env`] reads the environment variables
//! named by [`ServiceBusConfigKey`]; [`from_vars`](ServiceBusSourceBuilder::from_vars)
//! and [`with_config`](ServiceBusSourceBuilder::with_config) take the same
//! keys from anywhere. `build` reports every problem at once.
//!
//! # Where things are
//!
//! `connection` (connection strings, SAS tokens), `endpoint`
//! ([`EndpointOverride`]), `builder`, `client` (the REST calls), `broker`
//! (`BrokerProperties`), `settle` (settling and lock renewal), `error` (the
//! backend's errors and their conversion).
//!
//! # Secrets
//!
//! The shared access key is held as a [`Secret`](crate::redact::Secret); SAS tokens exist only in
//! the `Authorization` header of a request. Neither appears in `Debug`
//! output, logs or errors. (azure_core 0.21's `Headers` `Debug` prints the
//! `Authorization` header, so requests are never logged here.)

mod broker;
mod builder;
mod client;
mod connection;
mod endpoint;
mod error;
mod settle;

pub use builder::{ServiceBusConfigKey, ServiceBusSourceBuilder};
pub use connection::ConnectionString;
pub use endpoint::EndpointOverride;

use crate::error::Result;
use crate::source::{AlertSource, Capabilities, DeadLetterMode, Delivery};
use crate::telemetry::Stats;
use async_trait::async_trait;
use client::Shared;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The DNS suffix of Service Bus namespaces (public Azure cloud).
pub const NAMESPACE_SUFFIX: &str = ".servicebus.windows.net";
/// The peek-lock timeout of the requests that fill a batch after the first
/// message arrived: they return at once when messages are waiting.
const FILL_TIMEOUT_SECS: u64 = 1;
/// The longest lock duration Service Bus allows.
const MAX_LOCK: Duration = Duration::from_secs(300);

/// The custom property carrying the dead-letter reason on messages this
/// source forwards to its dead-letter queue.
pub const REASON_PROPERTY: &str = "remediation-dead-letter-reason";
/// The custom property carrying the original message id on forwarded messages.
pub const SOURCE_MESSAGE_ID_PROPERTY: &str = "remediation-source-message-id";
/// Set to `"base64"` on a forwarded message whose original body was not
/// UTF-8 text (the forwarded body is then its base64 encoding).
pub const BODY_ENCODING_PROPERTY: &str = "remediation-body-encoding";

/// An Azure Service Bus queue or topic subscription as a source of
/// deliveries, read with peek-lock. Cheap to clone.
///
/// A `401` or `403` (wrong key, missing Listen right) makes
/// [`receive`](AlertSource::receive) fail with a permanent
/// ([`Unauthenticated`](crate::ErrorKind::Unauthenticated) or
/// [`PermissionDenied`](crate::ErrorKind::PermissionDenied)) error naming the
/// namespace and entity, so a worker stops with a clear message instead of
/// polling in vain. A lock lost before a complete or renew (`404`/`410`) is
/// reported as a permanent error on that delivery; Service Bus redelivers the
/// message.
#[derive(Clone)]
pub struct ServiceBusSource {
    name: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for ServiceBusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusSource")
            .field("namespace", &self.shared.namespace)
            .field("entity", &self.shared.entity)
            .field("key_name", &self.shared.key_name)
            .field("endpoint", &self.shared.endpoint)
            .field("dead_letter_queue", &self.shared.dead_letter_queue)
            .field("wait", &self.shared.wait)
            .field("lock_duration", &self.shared.lock_duration())
            .finish_non_exhaustive()
    }
}

impl ServiceBusSource {
    /// A builder.
    pub fn builder() -> ServiceBusSourceBuilder {
        ServiceBusSourceBuilder::new()
    }

    /// A source configured from the environment (see
    /// [`ServiceBusSourceBuilder::from_env`]).
    pub fn from_env() -> Result<ServiceBusSource> {
        ServiceBusSourceBuilder::from_env().build()
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    /// The entity path (`QUEUE` or `TOPIC/subscriptions/SUB`).
    pub fn entity(&self) -> &str {
        &self.shared.entity
    }

    /// The lock duration in use: the one observed on received messages, or
    /// the configured one before the first message.
    pub fn lock_duration(&self) -> Duration {
        self.shared.lock_duration()
    }

    /// The stats the source counts its calls in: those given to
    /// [`with_stats`](ServiceBusSourceBuilder::with_stats) or attached by an
    /// engine, else its own.
    pub fn stats(&self) -> &Arc<Stats> {
        self.shared.slot.get()
    }
}

#[async_trait]
impl AlertSource for ServiceBusSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// One peek-lock waiting up to the configured wait; once it returned a
    /// message, up to `max - 1` more in flight at once (bounded by
    /// `receives_in_flight`) with a 1 s timeout, in waves until a wave comes
    /// back with an empty (`204`) answer or the batch is full.
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let shared = &self.shared;
        let max = max.max(1);
        let Some(first) = shared.peek_lock(shared.wait.as_secs()).await? else {
            return Ok(Vec::new());
        };
        let mut out = vec![first];
        while out.len() < max {
            let wave = (max - out.len()).min(shared.receives_in_flight);
            let results = futures_util::future::join_all(
                (0..wave).map(|_| shared.peek_lock(FILL_TIMEOUT_SECS)),
            )
            .await;
            let mut empty = false;
            for r in results {
                match r {
                    Ok(Some(d)) => out.push(d),
                    Ok(None) => empty = true,
                    Err(e) => {
                        // What was received is handed out; a persistent
                        // problem shows on the next receive.
                        tracing::warn!(source = %self.name, error = %e, "a batch-filling peek-lock failed");
                        empty = true;
                    }
                }
            }
            if empty {
                break;
            }
        }
        Ok(out)
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.shared.slot.attach(stats);
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extend: true,
            redelivery: true,
            dead_letter: if self.shared.dead_letter_queue.is_some() {
                DeadLetterMode::Native
            } else {
                DeadLetterMode::Redrive
            },
            lease: Some(self.shared.lock_duration()),
            max_batch: self
                .shared
                .receives_in_flight
                .saturating_mul(4)
                .clamp(1, 100),
        }
    }
}
