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

use super::{AlertSource, Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery, Settle};
use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use google_cloud_auth::credentials::Credentials;
use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

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

/// Checks a `projects/P/subscriptions/S` or `projects/P/topics/T` name.
fn check_resource(name: &str, kind: &str) -> Result<()> {
    let parts: Vec<&str> = name.split('/').collect();
    let ok = parts.len() == 4
        && parts[0] == "projects"
        && parts[2] == kind
        && !parts[1].is_empty()
        && !parts[3].is_empty()
        && name.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid Pub/Sub {} name {:?}: expected projects/PROJECT/{kind}/NAME",
            kind.trim_end_matches('s'),
            name.chars().take(200).collect::<String>()
        )))
    }
}

/// Builds a [`PubSubSource`]. Only [`build`](Self::build) can fail.
///
/// Credentials come from Application Default Credentials (the client's
/// default) unless set here or an emulator is configured.
#[derive(Clone)]
pub struct PubSubSourceBuilder {
    subscription: Option<String>,
    project: Option<String>,
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    anonymous: bool,
    dead_letter_topic: Option<String>,
    max_outstanding_messages: i64,
    max_outstanding_bytes: i64,
    max_lease: Duration,
    max_lease_extension: Duration,
    max_nack_delay: Duration,
    wait: Duration,
}

impl fmt::Debug for PubSubSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubSourceBuilder")
            .field("subscription", &self.subscription)
            .field("project", &self.project)
            .field("endpoint", &self.endpoint)
            // Never print credentials.
            .field("explicit_credentials", &self.credentials.is_some())
            .field("anonymous", &self.anonymous)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("max_outstanding_messages", &self.max_outstanding_messages)
            .field("max_outstanding_bytes", &self.max_outstanding_bytes)
            .field("max_lease", &self.max_lease)
            .field("max_lease_extension", &self.max_lease_extension)
            .field("max_nack_delay", &self.max_nack_delay)
            .field("wait", &self.wait)
            .finish()
    }
}

impl Default for PubSubSourceBuilder {
    fn default() -> Self {
        PubSubSourceBuilder {
            subscription: None,
            project: None,
            endpoint: None,
            credentials: None,
            anonymous: false,
            dead_letter_topic: None,
            max_outstanding_messages: 100,
            max_outstanding_bytes: 10 * 1024 * 1024,
            max_lease: Duration::from_secs(3600),
            max_lease_extension: Duration::from_secs(60),
            max_nack_delay: Duration::from_secs(600),
            wait: Duration::from_secs(10),
        }
    }
}

impl PubSubSourceBuilder {
    /// A builder with the defaults: at most 100 messages and 10 MiB
    /// outstanding, leases extended by the client for up to 1 h in steps of
    /// 60 s, nack delays held for at most 10 min, receives waiting up to 10 s,
    /// no dead-letter topic.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment:
    ///
    /// * `PUBSUB_SUBSCRIPTION` — `projects/P/subscriptions/S`, or just `S`
    ///   with the project from `PUBSUB_PROJECT_ID` or `GOOGLE_CLOUD_PROJECT`;
    /// * `PUBSUB_EMULATOR_HOST` — `HOST:PORT` of an emulator: every client
    ///   talks plain HTTP/2 to it with anonymous credentials (as Google's
    ///   other client libraries do);
    /// * `PUBSUB_DEAD_LETTER_TOPIC` — `projects/P/topics/T`: publish poison
    ///   there instead of relying on the subscription's dead-letter policy;
    /// * `PUBSUB_MAX_OUTSTANDING_MESSAGES`, `PUBSUB_MAX_OUTSTANDING_BYTES` —
    ///   flow control;
    /// * `PUBSUB_MAX_LEASE`, `PUBSUB_MAX_LEASE_EXTENSION`,
    ///   `PUBSUB_MAX_NACK_DELAY` — whole seconds.
    ///
    /// Credentials otherwise come from Application Default Credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud ADC file, the metadata
    /// server). Unparsable numbers are ignored with a warning.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `var`
    /// (for tests and for configuration kept elsewhere).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        if let Some(project) = var("PUBSUB_PROJECT_ID").or_else(|| var("GOOGLE_CLOUD_PROJECT")) {
            b = b.with_project(project.trim());
        }
        if let Some(sub) = var("PUBSUB_SUBSCRIPTION") {
            b = b.with_subscription(sub.trim());
        }
        if let Some(host) = var("PUBSUB_EMULATOR_HOST") {
            b = b.with_emulator_host(host.trim());
        }
        if let Some(topic) = var("PUBSUB_DEAD_LETTER_TOPIC") {
            b = b.with_dead_letter_topic(topic.trim());
        }
        let number = |k: &str| {
            var(k).and_then(|v| match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(variable = k, error = %e, "ignoring unparsable setting");
                    None
                }
            })
        };
        if let Some(n) = number("PUBSUB_MAX_OUTSTANDING_MESSAGES") {
            b = b.with_max_outstanding_messages(n);
        }
        if let Some(n) = number("PUBSUB_MAX_OUTSTANDING_BYTES") {
            b = b.with_max_outstanding_bytes(n);
        }
        if let Some(n) = number("PUBSUB_MAX_LEASE") {
            b = b.with_max_lease(Duration::from_secs(n));
        }
        if let Some(n) = number("PUBSUB_MAX_LEASE_EXTENSION") {
            b = b.with_max_lease_extension(Duration::from_secs(n));
        }
        if let Some(n) = number("PUBSUB_MAX_NACK_DELAY") {
            b = b.with_max_nack_delay(Duration::from_secs(n));
        }
        b
    }

    /// The subscription: `projects/P/subscriptions/S`, or a bare name `S`
    /// completed with [`with_project`](Self::with_project).
    pub fn with_subscription(mut self, subscription: impl Into<String>) -> Self {
        self.subscription = Some(subscription.into());
        self
    }

    /// The project a bare subscription or topic name belongs to.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sends every call to `endpoint` (e.g. a regional endpoint, or
    /// `http://127.0.0.1:8085` for an emulator, then with
    /// [`with_anonymous_credentials`](Self::with_anonymous_credentials)).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The emulator at `host:port` (what `PUBSUB_EMULATOR_HOST` holds):
    /// endpoint `http://host:port` and anonymous credentials.
    pub fn with_emulator_host(self, host: impl AsRef<str>) -> Self {
        let host = host.as_ref();
        let endpoint = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        };
        self.with_endpoint(endpoint).with_anonymous_credentials()
    }

    /// Sends no credentials (emulators).
    pub fn with_anonymous_credentials(mut self) -> Self {
        self.anonymous = true;
        self.credentials = None;
        self
    }

    /// Explicit credentials instead of Application Default Credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self.anonymous = false;
        self
    }

    /// Publishes dead letters to this topic (`projects/P/topics/T`, or a
    /// bare name in the project), with the reason in the attribute
    /// [`REASON_ATTRIBUTE`], then acks them: [`DeadLetterOutcome::Parked`].
    ///
    /// Without one, a dead letter is nacked when the subscription has a
    /// dead-letter policy (Pub/Sub moves it to the policy's topic after its
    /// `maxDeliveryAttempts`: [`DeadLetterOutcome::LeftToRedrive`]); a
    /// subscription without a policy cannot park it, so it is acked and its
    /// body lives on in the audit record ([`DeadLetterOutcome::AuditOnly`]).
    /// Pub/Sub tells whether a subscription has a policy with every message
    /// (its delivery attempt), so no admin permission is needed.
    pub fn with_dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into());
        self
    }

    /// Flow control: the most messages handed out and not yet settled
    /// (the server stops sending beyond it). Default 100.
    pub fn with_max_outstanding_messages(mut self, n: u64) -> Self {
        self.max_outstanding_messages = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// Flow control: the most bytes of messages outstanding. Default 10 MiB.
    pub fn with_max_outstanding_bytes(mut self, n: u64) -> Self {
        self.max_outstanding_bytes = i64::try_from(n.max(1)).unwrap_or(i64::MAX);
        self
    }

    /// How long the client keeps extending a message's lease before it lets
    /// Pub/Sub redeliver it: longer than the slowest plan. Default 1 h.
    pub fn with_max_lease(mut self, max: Duration) -> Self {
        self.max_lease = max.max(Duration::from_secs(10));
        self
    }

    /// The ack deadline the client asks for on each extension (10 s to
    /// 600 s; the client clamps it). Default 60 s.
    pub fn with_max_lease_extension(mut self, extension: Duration) -> Self {
        self.max_lease_extension =
            extension.clamp(Duration::from_secs(10), Duration::from_secs(600));
        self
    }

    /// The longest a `nack(delay)` holds a message before nacking it.
    /// Default 10 min; never longer than the maximum lease.
    pub fn with_max_nack_delay(mut self, max: Duration) -> Self {
        self.max_nack_delay = max;
        self
    }

    /// How long a `receive` waits for a message. Default 10 s.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    fn qualify(&self, name: &str, kind: &str) -> Result<String> {
        if name.contains('/') {
            return Ok(name.to_owned());
        }
        match &self.project {
            Some(p) => Ok(format!("projects/{p}/{kind}/{name}")),
            None => Err(Error::Config(format!(
                "Pub/Sub {} {name:?} has no project: give projects/PROJECT/{kind}/{name}, \
                 or set PUBSUB_PROJECT_ID",
                kind.trim_end_matches('s')
            ))),
        }
    }

    fn credentials(&self) -> Option<Credentials> {
        if self.anonymous {
            Some(google_cloud_auth::credentials::anonymous::Builder::new().build())
        } else {
            self.credentials.clone()
        }
    }

    /// Builds the clients. Does not call Pub/Sub: a missing subscription is
    /// reported by the first `receive`.
    pub async fn build(self) -> Result<PubSubSource> {
        let subscription = self.subscription.as_deref().ok_or_else(|| {
            Error::Config(
                "no Pub/Sub subscription: set PUBSUB_SUBSCRIPTION \
                 (projects/PROJECT/subscriptions/NAME), or give one"
                    .into(),
            )
        })?;
        let subscription = self.qualify(subscription, "subscriptions")?;
        check_resource(&subscription, "subscriptions")?;
        let dead_letter_topic = match &self.dead_letter_topic {
            Some(t) => {
                let t = self.qualify(t, "topics")?;
                check_resource(&t, "topics")?;
                Some(t)
            }
            None => None,
        };
        let credentials = self.credentials();

        let mut sb = Subscriber::builder();
        if let Some(e) = &self.endpoint {
            sb = sb.with_endpoint(e.clone());
        }
        if let Some(c) = &credentials {
            sb = sb.with_credentials(c.clone());
        }
        let subscriber = sb
            .build()
            .await
            .map_err(|e| client_error("building the subscriber client", e))?;

        let publisher = match &dead_letter_topic {
            Some(topic) => {
                let mut pb = Publisher::builder(topic.clone());
                if let Some(e) = &self.endpoint {
                    pb = pb.with_endpoint(e.clone());
                }
                if let Some(c) = &credentials {
                    pb = pb.with_credentials(c.clone());
                }
                Some(
                    pb.build()
                        .await
                        .map_err(|e| client_error("building the dead-letter publisher", e))?,
                )
            }
            None => None,
        };

        let closing = CancellationToken::new();
        let (tx, rx) = mpsc::channel(HANDOFF);
        let name = format!("pubsub:{subscription}");
        let reader = Reader {
            subscriber,
            subscription: subscription.clone(),
            max_outstanding_messages: self.max_outstanding_messages,
            max_outstanding_bytes: self.max_outstanding_bytes,
            max_lease: self.max_lease,
            max_lease_extension: self.max_lease_extension,
            closing: closing.clone(),
        };
        Ok(PubSubSource {
            name,
            shared: Arc::new(Shared {
                subscription,
                dead_letter_topic,
                publisher,
                max_lease: self.max_lease,
                max_nack_delay: self.max_nack_delay.min(self.max_lease),
                wait: self.wait,
                rx: tokio::sync::Mutex::new(rx),
                reader: Mutex::new(ReaderState::Idle(Box::new(reader), tx)),
                counts: Mutex::new(HashMap::new()),
                audit_only: AtomicU64::new(0),
                closing: closing.clone(),
                _close_on_drop: closing.drop_guard(),
            }),
        })
    }
}

fn client_error(what: &str, e: impl fmt::Display) -> Error {
    Error::Backend {
        backend: BACKEND,
        message: format!("{what}: {e}"),
        temporary: false,
        source: None,
    }
}

/// Whether a client error is worth retrying (network, throttling, server side).
fn is_temporary(e: &google_cloud_pubsub::Error) -> bool {
    use google_cloud_gax::error::rpc::Code;
    match e.status() {
        Some(s) => matches!(
            s.code,
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Internal
                | Code::Unknown
                | Code::Cancelled
        ),
        None => !e.is_authentication() && !e.is_binding() && !e.is_serialization(),
    }
}

fn stream_error(e: &google_cloud_pubsub::Error, subscription: &str) -> Error {
    Error::Backend {
        backend: BACKEND,
        message: format!("streaming pull on {subscription}: {e}"),
        temporary: is_temporary(e),
        source: None,
    }
}

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

    /// Stops reading: messages received but not handed out, and messages
    /// held by a `nack(delay)`, are nacked at once; acks still batched in the
    /// client are sent. Call it after the engine's `run` returned (deliveries
    /// still unsettled are waited for, at most 30 s). Later `receive`s
    /// return nothing.
    pub async fn shutdown(&self) {
        self.shared.closing.cancel();
        {
            let mut rx = self.shared.rx.lock().await;
            rx.close();
            // Dropping a handler nacks its message.
            while rx.try_recv().is_ok() {}
        }
        let task = {
            let mut reader = self.shared.reader();
            std::mem::replace(&mut *reader, ReaderState::Closed)
        };
        if let ReaderState::Running(handle) = task {
            if tokio::time::timeout(SHUTDOWN_WAIT, handle).await.is_err() {
                tracing::warn!(
                    subscription = %self.shared.subscription,
                    "Pub/Sub subscriber did not finish within {SHUTDOWN_WAIT:?} \
                     (deliveries left unsettled?); their messages return after their lease"
                );
            }
        }
    }
}

type Received = std::result::Result<(Message, Handler), Error>;

/// The background reader's state: built, running, or shut down.
enum ReaderState {
    Idle(Box<Reader>, mpsc::Sender<Received>),
    Running(tokio::task::JoinHandle<()>),
    Closed,
}

struct Shared {
    subscription: String,
    dead_letter_topic: Option<String>,
    publisher: Option<Publisher>,
    max_lease: Duration,
    max_nack_delay: Duration,
    wait: Duration,
    rx: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    reader: Mutex<ReaderState>,
    /// Fallback delivery counts by message id (no dead-letter policy).
    counts: Mutex<HashMap<String, u32>>,
    audit_only: AtomicU64,
    closing: CancellationToken,
    _close_on_drop: DropGuard,
}

impl Shared {
    fn reader(&self) -> MutexGuard<'_, ReaderState> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the background reader on first use (it needs a runtime).
    fn start(&self) {
        let mut state = self.reader();
        if matches!(*state, ReaderState::Idle(..)) {
            if let ReaderState::Idle(reader, tx) =
                std::mem::replace(&mut *state, ReaderState::Closed)
            {
                *state = ReaderState::Running(tokio::spawn(reader.run(tx)));
            }
        }
    }

    fn count(&self, message_id: &str, attempt: Option<i32>) -> u32 {
        if let Some(n) = attempt.and_then(|a| u32::try_from(a).ok()) {
            return n.max(1);
        }
        let mut counts = self.counts();
        if counts.len() >= COUNTS_KEPT && !counts.contains_key(message_id) {
            // Bounded memory: start over rather than grow without limit.
            counts.clear();
        }
        let n = counts.entry(message_id.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    fn forget(&self, message_id: &str) {
        self.counts().remove(message_id);
    }

    fn delivery(self: &Arc<Self>, message: Message, handler: Handler) -> Delivery {
        let attempt = handler.delivery_attempt();
        let count = self.count(&message.message_id, attempt);
        let body = message.data.clone();
        let settle = PubSubSettle {
            shared: Arc::clone(self),
            message_id: message.message_id.clone(),
            handler: Mutex::new(Some(handler)),
            has_policy: attempt.is_some(),
            body: self.dead_letter_topic.as_ref().map(|_| body.clone()),
            attributes: if self.dead_letter_topic.is_some() {
                message.attributes.clone()
            } else {
                HashMap::new()
            },
            handed_out: Instant::now(),
        };
        let mut d = Delivery::new(message.message_id.clone(), body, Arc::new(settle))
            .with_delivery_count(count);
        if let Some(t) = &message.publish_time {
            let (secs, nanos) = (t.seconds(), t.nanos());
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(secs), u32::try_from(nanos)) {
                d = d.with_first_seen(UNIX_EPOCH + Duration::new(secs, nanos));
            }
        }
        if !message.ordering_key.is_empty() {
            d = d.with_attribute("ordering_key", message.ordering_key.clone());
        }
        let attributes: BTreeMap<&String, &String> = message.attributes.iter().collect();
        for (k, v) in attributes {
            d = d.with_attribute(format!("attribute.{k}"), v.clone());
        }
        d
    }
}

/// Reads the streaming pull and hands messages over through a channel.
struct Reader {
    subscriber: Subscriber,
    subscription: String,
    max_outstanding_messages: i64,
    max_outstanding_bytes: i64,
    max_lease: Duration,
    max_lease_extension: Duration,
    closing: CancellationToken,
}

impl Reader {
    fn stream(&self) -> google_cloud_pubsub::subscriber::MessageStream {
        self.subscriber
            .subscribe(self.subscription.clone())
            .set_max_outstanding_messages(self.max_outstanding_messages)
            .set_max_outstanding_bytes(self.max_outstanding_bytes)
            .set_max_lease(self.max_lease)
            .set_max_lease_extension(self.max_lease_extension)
            .build()
    }

    async fn run(self: Box<Self>, tx: mpsc::Sender<Received>) {
        let mut backoff = Duration::from_millis(500);
        'streams: while !self.closing.is_cancelled() {
            let mut stream = self.stream();
            let token = stream.shutdown_token();
            loop {
                let next = tokio::select! {
                    biased;
                    () = self.closing.cancelled() => None,
                    n = stream.next() => Some(n),
                };
                let Some(next) = next else {
                    // Close the gRPC stream first, so the server sends it
                    // nothing more; then flush pending acks and nack what was
                    // received but never handed out.
                    drop(stream);
                    token.shutdown().await;
                    break 'streams;
                };
                let item = match next {
                    Some(Ok(pair)) => {
                        backoff = Duration::from_millis(500);
                        Ok(pair)
                    }
                    Some(Err(e)) => {
                        let err = stream_error(&e, &self.subscription);
                        tracing::warn!(subscription = %self.subscription, error = %err, "Pub/Sub stream failed; reopening");
                        Err(err)
                    }
                    None => Err(Error::Backend {
                        backend: BACKEND,
                        message: format!("streaming pull on {} ended", self.subscription),
                        temporary: true,
                        source: None,
                    }),
                };
                let failed = item.is_err();
                let sent = tokio::select! {
                    biased;
                    () = self.closing.cancelled() => false,
                    r = tx.send(item) => r.is_ok(),
                };
                if !sent {
                    // The source is gone or closing; an item not handed over
                    // was dropped here, which nacks it.
                    drop(stream);
                    token.shutdown().await;
                    break 'streams;
                }
                if failed {
                    // The client closed the stream; open a new one after a pause.
                    drop(stream);
                    tokio::select! {
                        () = self.closing.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue 'streams;
                }
            }
        }
    }
}

#[async_trait]
impl AlertSource for PubSubSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let shared = &self.shared;
        if shared.closing.is_cancelled() {
            return Ok(Vec::new());
        }
        shared.start();
        let max = max.clamp(1, MAX_BATCH);
        let mut rx = shared.rx.lock().await;
        let first = match tokio::time::timeout(shared.wait, rx.recv()).await {
            Err(_) | Ok(None) => return Ok(Vec::new()),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(pair))) => pair,
        };
        let mut out = Vec::with_capacity(max.min(HANDOFF));
        out.push(shared.delivery(first.0, first.1));
        while out.len() < max {
            match rx.try_recv() {
                Ok(Ok((m, h))) => out.push(shared.delivery(m, h)),
                // An error after messages: the next receive reports it... but
                // it is already taken from the channel, so log it here.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Pub/Sub stream error");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(out)
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
}

/// Settles one message through its client handler.
struct PubSubSettle {
    shared: Arc<Shared>,
    message_id: String,
    handler: Mutex<Option<Handler>>,
    /// Whether the subscription has a dead-letter policy (Pub/Sub sent a
    /// delivery attempt).
    has_policy: bool,
    /// The body and attributes, kept (shared, not copied) when dead letters
    /// are published to a topic.
    body: Option<Bytes>,
    attributes: HashMap<String, String>,
    handed_out: Instant,
}

impl fmt::Debug for PubSubSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PubSubSettle")
            .field("message_id", &self.message_id)
            .field("has_policy", &self.has_policy)
            .finish_non_exhaustive()
    }
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
        match handler {
            Handler::ExactlyOnce(h) => h.confirmed_ack().await.map_err(|e| Error::Backend {
                backend: BACKEND,
                message: format!("ack of {}: {e}", self.message_id),
                temporary: true,
                source: None,
            }),
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
            handler.nack();
            return Ok(());
        }
        let closing = self.shared.closing.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = closing.cancelled() => {}
                () = tokio::time::sleep(hold) => {}
            }
            handler.nack();
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
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "message {}: a lease past the subscriber's maximum lease ({:?}) is not kept; \
                     Pub/Sub will redeliver it",
                    self.message_id, self.shared.max_lease
                ),
                temporary: false,
                source: None,
            });
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
            publisher
                .publish(message)
                .await
                .map_err(|e| Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "publishing {} to the dead-letter topic {}: {e}",
                        self.message_id,
                        self.shared.dead_letter_topic.as_deref().unwrap_or("")
                    ),
                    temporary: true,
                    source: None,
                })?;
            self.ack_handler(handler).await?;
            return Ok(DeadLetterOutcome::Parked);
        }
        if self.has_policy {
            // The subscription's dead-letter policy forwards it after its
            // maxDeliveryAttempts; each nack counts as one.
            handler.nack();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_checked() {
        assert!(check_resource("projects/p/subscriptions/s", "subscriptions").is_ok());
        assert!(check_resource("projects/p/topics/t", "topics").is_ok());
        for bad in [
            "s",
            "projects/p/topics/t",
            "projects//subscriptions/s",
            "projects/p/subscriptions/",
            "projects/p/subscriptions/s/x",
            "projects/p q/subscriptions/s",
        ] {
            let err = check_resource(bad, "subscriptions").unwrap_err();
            assert!(
                err.to_string()
                    .contains("projects/PROJECT/subscriptions/NAME"),
                "{err}"
            );
        }
    }

    #[test]
    fn from_vars_reads_the_documented_variables() {
        let vars: HashMap<&str, &str> = [
            ("PUBSUB_SUBSCRIPTION", "alerts"),
            ("PUBSUB_PROJECT_ID", "my-project"),
            ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
            ("PUBSUB_DEAD_LETTER_TOPIC", "projects/other/topics/dlt"),
            ("PUBSUB_MAX_OUTSTANDING_MESSAGES", "7"),
            ("PUBSUB_MAX_OUTSTANDING_BYTES", "4096"),
            ("PUBSUB_MAX_LEASE", "120"),
            ("PUBSUB_MAX_LEASE_EXTENSION", "5"),
            ("PUBSUB_MAX_NACK_DELAY", "oops"),
        ]
        .into_iter()
        .collect();
        let b = PubSubSourceBuilder::from_vars(|k| vars.get(k).map(|v| (*v).to_owned()));
        assert_eq!(
            b.qualify(b.subscription.as_deref().unwrap(), "subscriptions")
                .unwrap(),
            "projects/my-project/subscriptions/alerts"
        );
        assert_eq!(b.endpoint.as_deref(), Some("http://127.0.0.1:8085"));
        assert!(b.anonymous);
        assert_eq!(
            b.dead_letter_topic.as_deref(),
            Some("projects/other/topics/dlt")
        );
        assert_eq!(b.max_outstanding_messages, 7);
        assert_eq!(b.max_outstanding_bytes, 4096);
        assert_eq!(b.max_lease, Duration::from_secs(120));
        // The client accepts 10 s to 600 s.
        assert_eq!(b.max_lease_extension, Duration::from_secs(10));
        assert_eq!(b.max_nack_delay, Duration::from_secs(600));
    }

    #[tokio::test]
    async fn a_built_source_prints_no_secrets_and_names_its_subscription() {
        let key = serde_json::json!({
            "type": "service_account",
            "client_email": "remediator@proj.iam.gserviceaccount.com",
            "private_key_id": "key-id-0123456789",
            "private_key": "-----BEGIN PRIVATE KEY-----\nS3CR3T\n-----END PRIVATE KEY-----\n",
            "project_id": "proj",
        });
        let credentials = google_cloud_auth::credentials::service_account::Builder::new(key)
            .build()
            .expect("service account credentials");
        // Building calls nothing: the endpoint is never reached.
        let source = PubSubSource::builder()
            .with_subscription("alerts")
            .with_project("proj")
            .with_endpoint("http://127.0.0.1:9")
            .with_credentials(credentials)
            .build()
            .await
            .expect("build");
        assert_eq!(source.name(), "pubsub:projects/proj/subscriptions/alerts");
        let text = format!("{source:?}");
        assert!(
            !text.contains("S3CR3T") && !text.contains("key-id"),
            "{text}"
        );
        assert_eq!(source.capabilities().dead_letter, DeadLetterMode::Redrive);
        let err = PubSubSource::builder().build().await.unwrap_err();
        assert!(err.to_string().contains("PUBSUB_SUBSCRIPTION"), "{err}");
    }

    #[test]
    fn a_bare_subscription_needs_a_project() {
        let b = PubSubSourceBuilder::new().with_subscription("alerts");
        let err = b.qualify("alerts", "subscriptions").unwrap_err();
        assert!(err.to_string().contains("PUBSUB_PROJECT_ID"), "{err}");
    }

    #[tokio::test]
    async fn debug_hides_credentials() {
        let key = serde_json::json!({
            "type": "service_account",
            "client_email": "remediator@proj.iam.gserviceaccount.com",
            "private_key_id": "key-id-0123456789",
            "private_key": "-----BEGIN PRIVATE KEY-----\nS3CR3T-PRIVATE-KEY-MATERIAL\n-----END PRIVATE KEY-----\n",
            "project_id": "proj",
            "universe_domain": "googleapis.com"
        });
        let credentials = google_cloud_auth::credentials::service_account::Builder::new(key)
            .build()
            .expect("service account credentials");
        let b = PubSubSourceBuilder::new()
            .with_subscription("projects/proj/subscriptions/alerts")
            .with_credentials(credentials);
        let text = format!("{b:?}");
        assert!(text.contains("explicit_credentials: true"), "{text}");
        for secret in ["S3CR3T", "key-id-0123456789", "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
