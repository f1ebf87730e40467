//! Amazon SQS as an [`AlertSource`]: long-polled batched receives, acks
//! batched into `DeleteMessageBatch`, visibility changes for nack and extend,
//! and dead letters parked in a configured queue or left to the queue's
//! redrive policy. Feature `sqs`.
//!
//! | verb        | SQS call |
//! |-------------|----------|
//! | receive     | `ReceiveMessage` (up to 10, long poll, `ApproximateReceiveCount` = delivery count) |
//! | ack         | `DeleteMessageBatch`, up to 10 acks per call, flushed after a few milliseconds |
//! | nack(delay) | `ChangeMessageVisibility(delay)` (at most 12 h) |
//! | extend(by)  | `ChangeMessageVisibility(by)` |
//! | dead-letter | `SendMessage` to the configured dead-letter queue + delete; or, without one, release for the queue's redrive policy; or, without either, delete (the body lives on in the audit record) |
//!
//! # FIFO queues
//!
//! SQS itself hands out no further message of a message group while one of
//! that group is in flight, but a single `ReceiveMessage` may return several
//! messages of the same group, and the engine works on the deliveries of one
//! receive concurrently. So for a FIFO queue (URL ending in `.fifo`) the source
//! hands out one message per group at a time: later messages of a group that
//! arrive in the same receive are held back and handed out, in order, by a
//! later `receive` once the earlier one was acked. If the earlier one is
//! nacked or left to the redrive policy, the held-back ones are released
//! (`ChangeMessageVisibilityBatch` to 0) so they queue up behind it again; if a
//! held-back message's visibility timeout is close to running out it is
//! dropped and SQS redelivers it, still in order. Held-back messages that
//! were never handed out return when their visibility timeout ends. While
//! messages are held back, receives poll for at most 1 s, so a held message is
//! handed out soon after its predecessor was settled.
//!
//! # Cancellation
//!
//! Dropping a `receive` future mid-call (the engine does so when it is
//! cancelled) loses nothing: messages SQS handed to the abandoned call stay
//! invisible until their visibility timeout ends, then are redelivered.

use super::{AlertSource, Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery, Settle};
use crate::aws::AwsClientOptions;
use crate::error::{Error, Result};
use crate::telemetry::{ApiCall, Stats};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
};
use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc, oneshot};

const BACKEND: &str = "sqs";
/// The most messages one SQS batch call takes.
const SQS_BATCH: usize = 10;
/// The longest visibility timeout SQS accepts (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 3600;
/// The longest long-poll wait SQS accepts.
const MAX_WAIT_SECS: u64 = 20;
/// Batched deletes in flight at once.
const DELETES_IN_FLIGHT: usize = 4;

/// The message attribute carrying the dead-letter reason on messages this
/// source parks in its dead-letter queue.
pub const REASON_ATTRIBUTE: &str = "remediation-dead-letter-reason";
/// The message attribute carrying the original message id on parked messages.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "remediation-source-message-id";

/// Where the queue is: its name (resolved with `GetQueueUrl`) or its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
enum QueueRef {
    Name(String),
    Url(String),
}

impl QueueRef {
    fn parse(spec: &str) -> QueueRef {
        if spec.starts_with("https://") || spec.starts_with("http://") {
            QueueRef::Url(spec.to_owned())
        } else {
            QueueRef::Name(spec.to_owned())
        }
    }
}

/// Builds an [`SqsSource`]. Only [`build`](Self::build) can fail.
///
/// Region and credentials come from the standard AWS chain (environment,
/// profile, SSO, instance metadata...) unless set here.
#[derive(Clone)]
pub struct SqsSourceBuilder {
    queue: Option<QueueRef>,
    aws: AwsClientOptions,
    client: Option<Client>,
    dead_letter_queue_url: Option<String>,
    wait: Duration,
    visibility: Duration,
    flush_after: Duration,
    stats: Option<Arc<Stats>>,
}

impl fmt::Debug for SqsSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsSourceBuilder")
            .field("queue", &self.queue)
            .field("aws", &self.aws)
            .field("custom_client", &self.client.is_some())
            .field("dead_letter_queue_url", &self.dead_letter_queue_url)
            .field("wait", &self.wait)
            .field("visibility", &self.visibility)
            .field("flush_after", &self.flush_after)
            .finish_non_exhaustive()
    }
}

impl Default for SqsSourceBuilder {
    fn default() -> Self {
        SqsSourceBuilder {
            queue: None,
            aws: AwsClientOptions::default(),
            client: None,
            dead_letter_queue_url: None,
            wait: Duration::from_secs(MAX_WAIT_SECS),
            visibility: Duration::from_secs(30),
            flush_after: Duration::from_millis(5),
            stats: None,
        }
    }
}

impl SqsSourceBuilder {
    /// A builder with the defaults: 20 s long polling, 30 s visibility
    /// timeout, acks flushed after 5 ms, no dead-letter queue (the queue's
    /// redrive policy parks poison).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment:
    ///
    /// * `SQS_QUEUE_URL` — the queue's URL, or else
    /// * `SQS_QUEUE_NAME` — its name, resolved with `GetQueueUrl`;
    /// * `AWS_ENDPOINT_URL` — an endpoint override (a local server such as moto);
    /// * `SQS_DEAD_LETTER_QUEUE_URL` — park poison there instead of relying on
    ///   the redrive policy;
    /// * `SQS_VISIBILITY_TIMEOUT` and `SQS_WAIT_TIME_SECONDS` — whole seconds.
    ///
    /// Region and credentials come from the standard AWS chain (`AWS_REGION`,
    /// `AWS_PROFILE`, `AWS_ACCESS_KEY_ID`...). Unparsable numbers are ignored
    /// with a warning and the defaults kept.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        if let Some(url) = var("SQS_QUEUE_URL") {
            b = b.with_queue_url(url);
        } else if let Some(name) = var("SQS_QUEUE_NAME") {
            b = b.with_queue_name(name);
        }
        if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
            b = b.with_endpoint(endpoint);
        }
        if let Some(dlq) = var("SQS_DEAD_LETTER_QUEUE_URL") {
            b = b.with_dead_letter_queue_url(dlq);
        }
        let secs = |k: &str| {
            var(k).and_then(|v| match v.trim().parse::<u64>() {
                Ok(n) => Some(Duration::from_secs(n)),
                Err(e) => {
                    tracing::warn!(variable = k, error = %e, "ignoring unparsable setting");
                    None
                }
            })
        };
        if let Some(v) = secs("SQS_VISIBILITY_TIMEOUT") {
            b = b.with_visibility_timeout(v);
        }
        if let Some(w) = secs("SQS_WAIT_TIME_SECONDS") {
            b = b.with_wait(w);
        }
        b
    }

    /// The queue, by URL (`https://...`) or by name.
    pub fn with_queue(mut self, name_or_url: impl AsRef<str>) -> Self {
        self.queue = Some(QueueRef::parse(name_or_url.as_ref()));
        self
    }

    /// The queue's name, resolved with `GetQueueUrl` when building.
    pub fn with_queue_name(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(QueueRef::Name(name.into()));
        self
    }

    /// The queue's URL.
    pub fn with_queue_url(mut self, url: impl Into<String>) -> Self {
        self.queue = Some(QueueRef::Url(url.into()));
        self
    }

    crate::aws::aws_client_setters!();

    /// A fully configured client; endpoint, region and credentials set on
    /// this builder are then ignored.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Parks dead letters in this queue (with the reason as the message
    /// attribute [`REASON_ATTRIBUTE`]) and deletes them from the source queue.
    ///
    /// Without one, [`build`](Self::build) reads the queue's redrive policy
    /// (`GetQueueAttributes`): if it has one, dead letters are released for
    /// redelivery and the policy moves them after `maxReceiveCount` receives
    /// ([`DeadLetterMode::Redrive`]); if not, they are deleted and their body
    /// lives on in the audit record only ([`DeadLetterMode::AuditOnly`]),
    /// rather than coming back forever.
    pub fn with_dead_letter_queue_url(mut self, url: impl Into<String>) -> Self {
        self.dead_letter_queue_url = Some(url.into());
        self
    }

    /// How long a receive waits for messages (long polling); whole seconds,
    /// at most 20. Default 20 s.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = Duration::from_secs(wait.as_secs().min(MAX_WAIT_SECS));
        self
    }

    /// The visibility timeout asked for on each receive: the lease the
    /// engine's lease keeper extends. Whole seconds, 1 s to 12 h. Default 30 s.
    pub fn with_visibility_timeout(mut self, visibility: Duration) -> Self {
        self.visibility = Duration::from_secs(visibility.as_secs().clamp(1, MAX_VISIBILITY_SECS));
        self
    }

    /// How long an ack waits for others to share its `DeleteMessageBatch`
    /// call (a batch is sent at once when it holds 10). Default 5 ms.
    pub fn with_ack_flush_after(mut self, after: Duration) -> Self {
        self.flush_after = after;
        self
    }

    /// Counts SQS API calls in `stats`; pass the engine's handle
    /// ([`EngineBuilder::stats`](crate::engine::EngineBuilder::stats)) so calls
    /// per alert can be read off one summary.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Connects: builds the client and resolves the queue URL if a name was given.
    pub async fn build(self) -> Result<SqsSource> {
        let queue = self.queue.clone().ok_or_else(|| {
            Error::Config("no SQS queue: set SQS_QUEUE_URL or SQS_QUEUE_NAME, or give one".into())
        })?;
        let stats = self.stats.clone().unwrap_or_default();
        let client = match self.client.clone() {
            Some(c) => c,
            None => {
                let config = self.aws.load().await;
                Client::new(&config)
            }
        };
        let queue_url = match queue {
            QueueRef::Url(url) => url,
            QueueRef::Name(name) => {
                stats.count_api_call(ApiCall::SqsGetQueueUrl);
                let out = client
                    .get_queue_url()
                    .queue_name(&name)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetQueueUrl", e))?;
                out.queue_url()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::Backend {
                        backend: BACKEND,
                        message: format!("GetQueueUrl for {name:?} returned no URL"),
                        temporary: false,
                        source: None,
                    })?
            }
        };
        let dead_letter_mode = if self.dead_letter_queue_url.is_some() {
            DeadLetterMode::Native
        } else {
            redrive_mode(&client, &queue_url, &stats).await?
        };
        let queue_name = queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&queue_url)
            .to_owned();
        let fifo = queue_name.ends_with(".fifo");
        Ok(SqsSource {
            name: format!("sqs:{queue_name}"),
            shared: Arc::new(Shared {
                client,
                queue_url,
                dead_letter_queue_url: self.dead_letter_queue_url,
                dead_letter_mode,
                wait: self.wait,
                visibility: self.visibility,
                flush_after: self.flush_after,
                fifo,
                stats,
                deleter: OnceLock::new(),
                groups: Mutex::new(Groups::default()),
                invalid_receipts: AtomicU64::new(0),
            }),
        })
    }
}

/// An Amazon SQS queue as a source of deliveries. Cheap to clone.
///
/// Acks are batched: [`Delivery::ack`] completes once the `DeleteMessageBatch`
/// call carrying it succeeded, and fails (per entry) if SQS refused that
/// entry, so the engine learns of every delete that did not happen. A receipt
/// handle SQS no longer accepts (the message was redelivered, or deleted) is
/// reported as an error, counted in [`invalid_receipts`](Self::invalid_receipts)
/// and logged; it never panics.
#[derive(Clone)]
pub struct SqsSource {
    name: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for SqsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsSource")
            .field("queue_url", &self.shared.queue_url)
            .field("fifo", &self.shared.fifo)
            .field("dead_letter_queue_url", &self.shared.dead_letter_queue_url)
            .field("wait", &self.shared.wait)
            .field("visibility", &self.shared.visibility)
            .finish_non_exhaustive()
    }
}

impl SqsSource {
    /// A builder.
    pub fn builder() -> SqsSourceBuilder {
        SqsSourceBuilder::new()
    }

    /// A source configured from the environment (see
    /// [`SqsSourceBuilder::from_env`]), connected.
    pub async fn from_env() -> Result<SqsSource> {
        SqsSourceBuilder::from_env().build().await
    }

    /// The queue's URL.
    pub fn queue_url(&self) -> &str {
        &self.shared.queue_url
    }

    /// Whether the queue is a FIFO queue.
    pub fn is_fifo(&self) -> bool {
        self.shared.fifo
    }

    /// The stats the source counts its API calls in.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// How many settle calls SQS refused because the receipt handle was no
    /// longer valid (`ReceiptHandleIsInvalid`, `MessageNotInflight`).
    pub fn invalid_receipts(&self) -> u64 {
        self.shared.invalid_receipts.load(Ordering::Relaxed)
    }
}

struct Shared {
    client: Client,
    queue_url: String,
    dead_letter_queue_url: Option<String>,
    dead_letter_mode: DeadLetterMode,
    wait: Duration,
    visibility: Duration,
    flush_after: Duration,
    fifo: bool,
    stats: Arc<Stats>,
    /// The ack batcher, started on first use (it needs a runtime).
    deleter: OnceLock<mpsc::Sender<AckRequest>>,
    groups: Mutex<Groups>,
    invalid_receipts: AtomicU64,
}

/// FIFO bookkeeping: groups with a delivery out, and messages held back.
#[derive(Default)]
struct Groups {
    busy: HashSet<String>,
    held: HashMap<String, VecDeque<Held>>,
    /// Group order of first arrival, so held groups are served fairly.
    order: VecDeque<String>,
}

struct Held {
    message: Message,
    deadline: Instant,
}

impl Shared {
    fn groups(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note_error(&self, e: &Error) {
        if is_invalid_receipt(e) {
            self.invalid_receipts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = %self.queue_url, error = %e, "receipt handle no longer valid");
        }
    }

    fn deleter(self: &Arc<Self>) -> mpsc::Sender<AckRequest> {
        self.deleter
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel(1024);
                let flusher = Flusher {
                    client: self.client.clone(),
                    queue_url: self.queue_url.clone(),
                    stats: Arc::clone(&self.stats),
                    flush_after: self.flush_after,
                    in_flight: Arc::new(Semaphore::new(DELETES_IN_FLIGHT)),
                };
                // The task ends when every sender (this source and its
                // deliveries) is gone, after flushing what it holds.
                tokio::spawn(flusher.run(rx));
                tx
            })
            .clone()
    }

    async fn delete(self: &Arc<Self>, receipt: &str) -> Result<()> {
        let (done, result) = oneshot::channel();
        let request = AckRequest {
            receipt: receipt.to_owned(),
            done,
        };
        let closed = || Error::Backend {
            backend: BACKEND,
            message: "the ack batcher stopped".into(),
            temporary: true,
            source: None,
        };
        self.deleter().send(request).await.map_err(|_| closed())?;
        let outcome = result.await.map_err(|_| closed())?;
        if let Err(e) = &outcome {
            self.note_error(e);
        }
        outcome
    }

    async fn change_visibility(&self, receipt: &str, secs: u64) -> Result<()> {
        self.stats
            .count_api_call(ApiCall::SqsChangeMessageVisibility);
        let outcome = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_secs(secs))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("ChangeMessageVisibility", e));
        if let Err(e) = &outcome {
            self.note_error(e);
        }
        outcome
    }

    /// Turns a received message into a delivery; `None` (logged) if SQS sent
    /// one without a receipt handle, which cannot be settled.
    fn delivery(self: &Arc<Self>, m: Message, deadline: Instant) -> Option<Delivery> {
        let Some(receipt) = m.receipt_handle.clone() else {
            tracing::warn!(message_id = ?m.message_id, "SQS returned a message without a receipt handle; ignored");
            return None;
        };
        let attrs = m.attributes.unwrap_or_default();
        let attr = |name: MessageSystemAttributeName| attrs.get(&name).cloned();
        let count = attr(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse::<u32>().ok())
            .unwrap_or(1);
        let first_seen = attr(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp)
            .or_else(|| attr(MessageSystemAttributeName::SentTimestamp))
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        let group = attr(MessageSystemAttributeName::MessageGroupId);
        let message_id = m.message_id.unwrap_or_default();
        let body = Bytes::from(m.body.unwrap_or_default());
        let settle = SqsSettle {
            shared: Arc::clone(self),
            receipt,
            message_id: message_id.clone(),
            group: group.clone(),
            body: self.dead_letter_queue_url.as_ref().map(|_| body.clone()),
            settled: AtomicBool::new(false),
        };
        let mut d = Delivery::new(message_id, body, Arc::new(settle))
            .with_delivery_count(count)
            .with_lease_deadline(deadline);
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
        for (name, value) in m.message_attributes.unwrap_or_default() {
            if let Some(s) = value.string_value() {
                d = d.with_attribute(format!("attribute.{name}"), s);
            }
        }
        Some(d)
    }

    /// FIFO: held-back messages whose group is free again, oldest group first.
    fn take_held(self: &Arc<Self>, max: usize) -> Vec<Delivery> {
        let margin = self.held_margin();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut g = self.groups();
        let Groups { busy, held, order } = &mut *g;
        let mut i = 0;
        while i < order.len() && out.len() < max {
            let group = &order[i];
            if busy.contains(group) {
                i += 1;
                continue;
            }
            let Some(queue) = held.get_mut(group) else {
                order.remove(i);
                continue;
            };
            match queue.pop_front() {
                Some(h) if h.deadline > now + margin => {
                    if let Some(d) = self.delivery(h.message, h.deadline) {
                        busy.insert(group.clone());
                        out.push(d);
                    }
                }
                Some(_) => {
                    // Its visibility is about to end: SQS will redeliver it,
                    // and the rest of its group after it, in order.
                    tracing::debug!(group = %group, "held-back FIFO messages expired; left to SQS");
                    queue.clear();
                }
                None => {}
            }
            if queue.is_empty() {
                held.remove(group);
                order.remove(i);
            } else {
                i += 1;
            }
        }
        out
    }

    /// A held-back message this close to the end of its visibility timeout
    /// is not handed out any more.
    fn held_margin(&self) -> Duration {
        (self.visibility / 4).clamp(Duration::from_millis(500), Duration::from_secs(10))
    }

    /// FIFO: the delivery of `group` was settled. Acked: the group may go on.
    /// Returned to the queue: its held-back successors are released behind it.
    async fn group_done(&self, group: &str, returned: bool) {
        let released = {
            let mut g = self.groups();
            g.busy.remove(group);
            if returned {
                g.order.retain(|o| o != group);
                g.held.remove(group).unwrap_or_default()
            } else {
                VecDeque::new()
            }
        };
        if released.is_empty() {
            return;
        }
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = released
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(h.message.receipt_handle.clone())
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        self.stats
            .count_api_call(ApiCall::SqsChangeMessageVisibilityBatch);
        let outcome = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match outcome {
            Ok(out) if out.failed().is_empty() => {}
            Ok(out) => tracing::warn!(
                group,
                failed = out.failed().len(),
                "releasing held-back FIFO messages partly failed; they return after their visibility timeout"
            ),
            Err(e) => tracing::warn!(
                group,
                error = %sdk_error("ChangeMessageVisibilityBatch", e),
                "releasing held-back FIFO messages failed; they return after their visibility timeout"
            ),
        }
    }
}

#[async_trait]
impl AlertSource for SqsSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let max = max.clamp(1, SQS_BATCH);
        let shared = &self.shared;
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
        shared.stats.count_api_call(ApiCall::SqsReceiveMessage);
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
            .map_err(|e| sdk_error("ReceiveMessage", e))?;
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

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extend: true,
            redelivery: true,
            dead_letter: self.shared.dead_letter_mode,
            lease: Some(self.shared.visibility),
            max_batch: SQS_BATCH,
        }
    }
}

/// Settles one received message by its receipt handle.
struct SqsSettle {
    shared: Arc<Shared>,
    receipt: String,
    message_id: String,
    group: Option<String>,
    /// The body, kept (shared, not copied) when dead letters are sent to a queue.
    body: Option<Bytes>,
    /// Set once ack, nack or dead-letter ran (FIFO bookkeeping on drop).
    settled: AtomicBool,
}

impl Drop for SqsSettle {
    fn drop(&mut self) {
        // A FIFO delivery dropped unsettled comes back when its visibility
        // timeout ends; its held-back successors must not overtake it, so they
        // are forgotten too (SQS redelivers them after it, in order).
        if self.shared.fifo && !self.settled.load(Ordering::Relaxed) {
            if let Some(group) = &self.group {
                let mut g = self.shared.groups();
                g.busy.remove(group);
                g.held.remove(group);
                g.order.retain(|o| o != group);
            }
        }
    }
}

impl fmt::Debug for SqsSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The receipt handle is a bearer token for this message: not printed.
        f.debug_struct("SqsSettle")
            .field("message_id", &self.message_id)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl SqsSettle {
    async fn done(&self, returned: bool) {
        self.settled.store(true, Ordering::Relaxed);
        if self.shared.fifo {
            if let Some(group) = &self.group {
                self.shared.group_done(group, returned).await;
            }
        }
    }
}

#[async_trait]
impl Settle for SqsSettle {
    async fn ack(&self) -> Result<()> {
        let outcome = self.shared.delete(&self.receipt).await;
        // Deleted or not, this delivery is over: a failed delete means SQS
        // redelivers the message, after any held-back successor was handed
        // out — the same as SQS does when a visibility timeout lapses.
        self.done(outcome.is_err()).await;
        outcome
    }

    async fn nack(&self, retry_after: Duration) -> Result<()> {
        let outcome = self
            .shared
            .change_visibility(&self.receipt, ceil_secs(retry_after))
            .await;
        self.done(true).await;
        outcome
    }

    async fn extend(&self, by: Duration) -> Result<()> {
        self.shared
            .change_visibility(&self.receipt, ceil_secs(by).max(1))
            .await
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        match (
            &self.shared.dead_letter_queue_url,
            self.shared.dead_letter_mode,
        ) {
            (Some(dlq), _) => {
                let outcome = self.park(dlq, reason).await;
                self.done(outcome.is_err()).await;
                outcome.map(|()| DeadLetterOutcome::Parked)
            }
            (None, DeadLetterMode::Redrive) => {
                // Release it now: each receive counts towards the redrive
                // policy's maxReceiveCount, which moves it to the DLQ.
                let outcome = self.shared.change_visibility(&self.receipt, 0).await;
                self.done(true).await;
                outcome.map(|()| DeadLetterOutcome::LeftToRedrive)
            }
            (None, _) => {
                // Nowhere to park it: released, it would come back forever.
                // Delete it; the engine keeps the body in the audit record.
                let outcome = self.shared.delete(&self.receipt).await;
                self.done(outcome.is_err()).await;
                outcome.map(|()| DeadLetterOutcome::AuditOnly)
            }
        }
    }
}

impl SqsSettle {
    /// Sends the body to the dead-letter queue, then deletes the original.
    async fn park(&self, dlq: &str, reason: &str) -> Result<()> {
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
            .map_err(|e| sdk_error("SendMessage (dead-letter queue)", e))?;
        self.shared.delete(&self.receipt).await
    }
}

/// Without a configured dead-letter queue: does the queue have a redrive
/// policy? Without one, released poison would come back forever, so dead
/// letters are deleted and live on in the audit record only.
async fn redrive_mode(client: &Client, queue_url: &str, stats: &Stats) -> Result<DeadLetterMode> {
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
            let e = sdk_error("GetQueueAttributes", e);
            if e.to_string().contains("AccessDenied") {
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

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn visibility_secs(secs: u64) -> i32 {
    i32::try_from(secs.min(MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX)
}

/// One ack waiting for its batch.
struct AckRequest {
    receipt: String,
    done: oneshot::Sender<Result<()>>,
}

/// Collects acks into `DeleteMessageBatch` calls: a batch goes out when it
/// holds 10 entries or `flush_after` after its first entry arrived.
struct Flusher {
    client: Client,
    queue_url: String,
    stats: Arc<Stats>,
    flush_after: Duration,
    in_flight: Arc<Semaphore>,
}

impl Flusher {
    async fn run(self, mut rx: mpsc::Receiver<AckRequest>) {
        let this = Arc::new(self);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + this.flush_after;
            while batch.len() < SQS_BATCH {
                match tokio::time::timeout_at(until, rx.recv()).await {
                    Ok(Some(request)) => batch.push(request),
                    Ok(None) | Err(_) => break,
                }
            }
            let permit = Arc::clone(&this.in_flight).acquire_owned().await;
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                this.flush(batch).await;
                drop(permit);
            });
        }
    }

    async fn flush(&self, batch: Vec<AckRequest>) {
        let entries: Vec<DeleteMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.receipt)
                    .build()
                    .ok()
            })
            .collect();
        self.stats.count_api_call(ApiCall::SqsDeleteMessageBatch);
        let sent = self
            .client
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let e = sdk_error("DeleteMessageBatch", e);
                let (message, temporary) = (e.to_string(), e.is_temporary());
                for r in batch {
                    let _ = r.done.send(Err(Error::Backend {
                        backend: BACKEND,
                        message: message.clone(),
                        temporary,
                        source: None,
                    }));
                }
                return;
            }
        };
        let mut failed: HashMap<&str, _> = out.failed().iter().map(|f| (f.id(), f)).collect();
        let ok: HashSet<&str> = out.successful().iter().map(|s| s.id()).collect();
        for (i, r) in batch.into_iter().enumerate() {
            let id = i.to_string();
            let result = if ok.contains(id.as_str()) {
                Ok(())
            } else if let Some(f) = failed.remove(id.as_str()) {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "DeleteMessageBatch entry: {}: {}",
                        f.code(),
                        f.message().unwrap_or("")
                    ),
                    temporary: !f.sender_fault() && !is_permanent_code(f.code()),
                    source: None,
                })
            } else {
                Err(Error::Backend {
                    backend: BACKEND,
                    message: "DeleteMessageBatch returned no result for the entry".into(),
                    temporary: true,
                    source: None,
                })
            };
            let _ = r.done.send(result);
        }
    }
}

/// Error codes that retrying the same request cannot fix.
fn is_permanent_code(code: &str) -> bool {
    matches!(
        code,
        "ReceiptHandleIsInvalid"
            | "MessageNotInflight"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "InvalidParameterValue"
            | "InvalidAddress"
            | "InvalidSecurity"
            | "UnsupportedOperation"
            | "InvalidIdFormat"
    )
}

fn is_invalid_receipt(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("ReceiptHandleIsInvalid") || text.contains("MessageNotInflight")
}

/// Converts an SDK error into the crate's error, classifying it as temporary
/// (network, throttling, server side) or permanent. Credentials never appear
/// in SDK error messages.
fn sdk_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, temporary) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let status = s.raw().status().as_u16();
            let temporary = !is_permanent_code(code)
                && (code.contains("Throttl")
                    || matches!(
                        code,
                        "RequestThrottled"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "KmsThrottled"
                    )
                    || status >= 500
                    || status == 429
                    || e.code().is_none());
            (
                format!("{op}: {code}: {}", e.message().unwrap_or("")),
                temporary,
            )
        }
        SdkError::ConstructionFailure(_) => (format!("{op}: request could not be built"), false),
        SdkError::TimeoutError(_) => (format!("{op}: timed out"), true),
        SdkError::DispatchFailure(d) => (
            format!(
                "{op}: could not reach SQS: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&err)
            ),
            !d.is_user(),
        ),
        SdkError::ResponseError(_) => (format!("{op}: unreadable response"), true),
        _ => (
            format!("{op}: {}", aws_sdk_sqs::error::DisplayErrorContext(&err)),
            true,
        ),
    };
    Error::Backend {
        backend: BACKEND,
        message,
        temporary,
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_spec_is_a_url_or_a_name() {
        assert_eq!(
            QueueRef::parse("https://sqs.us-east-1.amazonaws.com/123456789012/alerts"),
            QueueRef::Url("https://sqs.us-east-1.amazonaws.com/123456789012/alerts".into())
        );
        assert_eq!(QueueRef::parse("alerts"), QueueRef::Name("alerts".into()));
    }

    #[test]
    fn durations_round_up_and_cap() {
        assert_eq!(ceil_secs(Duration::from_millis(1100)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(100_000), 43_200);
        let b = SqsSourceBuilder::new()
            .with_wait(Duration::from_secs(60))
            .with_visibility_timeout(Duration::from_secs(0));
        assert_eq!(b.wait, Duration::from_secs(20));
        assert_eq!(b.visibility, Duration::from_secs(1));
    }

    #[test]
    fn builder_debug_hides_credentials() {
        let b = SqsSourceBuilder::new().with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value");
        let text = format!("{b:?}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("AKIAEXAMPLEKEYID"), "{text}");
    }
}
