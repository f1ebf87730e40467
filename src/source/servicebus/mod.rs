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
//! the crate's [`QueueClient`].
//!
//! # Local servers
//!
//! [`ServiceBusSourceBuilder::with_endpoint`] (`SERVICEBUS_ENDPOINT`) sends
//! every call to another server speaking the protocol (an emulator on
//! loopback): an [`EndpointOverride`] rewrites scheme, host and port of each
//! request and keeps the path. Signatures still name the namespace's
//! `https://NAMESPACE.servicebus.windows.net/...` resource.
//!
//! # Secrets
//!
//! The shared access key is held as a [`Secret`]; SAS tokens exist only in
//! the `Authorization` header of a request. Neither appears in `Debug`
//! output, logs or errors. (azure_core 0.21's `Headers` `Debug` prints the
//! `Authorization` header, so requests are never logged here.)

use super::{AlertSource, Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery, Settle};
use crate::error::{Error, Result};
use crate::redact::{Secret, redact};
use crate::telemetry::{ApiCall, Stats};
use async_trait::async_trait;
use azure_core::headers::{HeaderName, Headers};
use azure_core::{HttpClient, Method, Request, StatusCode, Url};
use azure_messaging_servicebus::service_bus::{
    QueueClient, SendMessageOptions, SettableBrokerProperties,
};
use base64::Engine as _;
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const BACKEND: &str = "servicebus";
/// The DNS suffix of Service Bus namespaces (public Azure cloud).
pub const NAMESPACE_SUFFIX: &str = ".servicebus.windows.net";
/// How long a SAS token signed for one request stays valid.
const SAS_TTL: Duration = Duration::from_secs(3600);
/// The peek-lock timeout of the requests that fill a batch after the first
/// message arrived: they return at once when messages are waiting.
const FILL_TIMEOUT_SECS: u64 = 1;
/// Slack on top of a request's own server-side timeout.
const REQUEST_SLACK: Duration = Duration::from_secs(20);
/// The timeout of settle calls.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A nack delay beyond this is not stretched by renewing the lock; the lock
/// lapses and the message comes back after the entity's lock duration.
const MAX_NACK_STRETCH: Duration = Duration::from_secs(15 * 60);
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

// ------------------------------------------------------------ connection string

/// The parts of a Service Bus connection string
/// (`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The namespace name (`NS` of `NS.servicebus.windows.net`).
    pub namespace: String,
    /// The shared access policy name.
    pub key_name: String,
    /// The shared access key.
    pub key: Secret,
    /// The entity (queue or topic) the string is scoped to, if any.
    pub entity_path: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("namespace", &self.namespace)
            .field("key_name", &self.key_name)
            .field("key", &self.key)
            .field("entity_path", &self.entity_path)
            .finish()
    }
}

impl ConnectionString {
    /// Parses a connection string as the Azure portal shows it. Keys are
    /// case-insensitive, values may contain `=` (base64 keys), unknown keys are
    /// ignored. Errors never repeat the string (it holds the key).
    pub fn parse(text: &str) -> Result<ConnectionString> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut entity_path = None;
        for part in text.trim().split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(Error::Config(
                    "SERVICEBUS_CONNECTION_STRING: every part must be Key=Value".into(),
                ));
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.to_owned()),
                "sharedaccesskey" => key = Some(Secret::new(v)),
                "entitypath" if !v.is_empty() => entity_path = Some(v.to_owned()),
                "sharedaccesssignature" => {
                    return Err(Error::Config(
                        "SERVICEBUS_CONNECTION_STRING: SharedAccessSignature connection strings \
                         are not supported; give SharedAccessKeyName and SharedAccessKey"
                            .into(),
                    ));
                }
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or_else(|| {
            Error::Config("SERVICEBUS_CONNECTION_STRING has no Endpoint=sb://NAMESPACE.servicebus.windows.net/".into())
        })?;
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        let namespace = namespace_name(host)
            .map_err(|e| Error::Config(format!("SERVICEBUS_CONNECTION_STRING Endpoint: {e}")))?;
        Ok(ConnectionString {
            namespace,
            key_name: key_name.ok_or_else(|| {
                Error::Config("SERVICEBUS_CONNECTION_STRING has no SharedAccessKeyName".into())
            })?,
            key: key.ok_or_else(|| {
                Error::Config("SERVICEBUS_CONNECTION_STRING has no SharedAccessKey".into())
            })?,
            entity_path,
        })
    }
}

/// `NS`, `NS.servicebus.windows.net` or `sb://NS.servicebus.windows.net/` → `NS`.
fn namespace_name(text: &str) -> std::result::Result<String, String> {
    let host = text
        .trim()
        .split_once("://")
        .map_or(text.trim(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let name = host.strip_suffix(NAMESPACE_SUFFIX).unwrap_or(&host);
    let valid = !name.is_empty()
        && name.len() <= 50
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{host:?} is not a Service Bus namespace (NAME or NAME{NAMESPACE_SUFFIX})"
        ))
    }
}

// --------------------------------------------------------------- HTTP routing

/// An [`HttpClient`] that sends every request to another server: scheme, host
/// and port are replaced, path and query kept. Used for
/// `SERVICEBUS_ENDPOINT=http://127.0.0.1:PORT`; works with the
/// `azure_messaging_servicebus` clients too, whose URLs are hard-coded to
/// `https://NAMESPACE.servicebus.windows.net`.
#[derive(Debug, Clone)]
pub struct EndpointOverride {
    inner: Arc<dyn HttpClient>,
    endpoint: Url,
}

impl EndpointOverride {
    /// Routes `inner`'s requests to `endpoint` (`http://127.0.0.1:PORT`).
    /// Plain `http` is allowed only for loopback hosts: a SAS token must not
    /// cross a network in clear text.
    pub fn new(inner: Arc<dyn HttpClient>, endpoint: &str) -> Result<EndpointOverride> {
        let url = Url::parse(endpoint.trim())
            .map_err(|e| Error::Config(format!("SERVICEBUS_ENDPOINT {endpoint:?}: {e}")))?;
        let loopback = matches!(
            url.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
        );
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(Error::Config(format!(
                    "SERVICEBUS_ENDPOINT {endpoint:?}: plain http is allowed for loopback hosts only"
                )));
            }
            other => {
                return Err(Error::Config(format!(
                    "SERVICEBUS_ENDPOINT {endpoint:?}: unsupported scheme {other:?} (http or https)"
                )));
            }
        }
        if url.host_str().is_none() || !url.path().trim_matches('/').is_empty() {
            return Err(Error::Config(format!(
                "SERVICEBUS_ENDPOINT {endpoint:?}: expected scheme://host[:port] without a path"
            )));
        }
        Ok(EndpointOverride {
            inner,
            endpoint: url,
        })
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

#[async_trait]
impl HttpClient for EndpointOverride {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<azure_core::Response> {
        let mut request = request.clone();
        let url = request.url_mut();
        let rewrite = url.set_scheme(self.endpoint.scheme()).is_ok()
            && url.set_host(self.endpoint.host_str()).is_ok()
            && url.set_port(self.endpoint.port()).is_ok();
        if !rewrite {
            return Err(azure_core::Error::message(
                azure_core::error::ErrorKind::Other,
                "could not route the request to SERVICEBUS_ENDPOINT",
            ));
        }
        self.inner.execute_request(&request).await
    }
}

// ---------------------------------------------------------------- SAS tokens

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A SAS token for `resource` (a URI), valid until `expiry` (Unix seconds):
/// `SharedAccessSignature sr={urlencoded resource}&sig={urlencoded
/// base64(HMAC-SHA256(key, sr + "\n" + expiry))}&se={expiry}&skn={key name}`.
fn sas_token(resource: &str, key_name: &str, key: &Secret, expiry: u64) -> Result<String> {
    let sr = url_encode(resource);
    let to_sign = format!("{sr}\n{expiry}");
    // azure_core's hmac takes a base64 key and decodes it; Service Bus signs
    // with the key's text as bytes.
    let encoded_key = azure_core::auth::Secret::new(
        base64::engine::general_purpose::STANDARD.encode(key.expose()),
    );
    let sig = azure_core::hmac::hmac_sha256(&to_sign, &encoded_key)
        .map_err(|_| Error::Config("could not sign a Service Bus SAS token".into()))?;
    Ok(format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        url_encode(&sig),
        url_encode(key_name)
    ))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ------------------------------------------------------------------- builder

/// Builds a [`ServiceBusSource`]. Only [`build`](Self::build) can fail.
#[derive(Clone)]
pub struct ServiceBusSourceBuilder {
    namespace: Option<String>,
    entity: Option<String>,
    key_name: Option<String>,
    key: Option<Secret>,
    endpoint: Option<String>,
    http_client: Option<Arc<dyn HttpClient>>,
    dead_letter_queue: Option<String>,
    wait: Duration,
    lock_duration: Duration,
    receives_in_flight: usize,
    stats: Option<Arc<Stats>>,
    /// Configuration errors found by setters, reported by `build`.
    errors: Vec<String>,
}

impl fmt::Debug for ServiceBusSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceBusSourceBuilder")
            .field("namespace", &self.namespace)
            .field("entity", &self.entity)
            .field("key_name", &self.key_name)
            // Never the key, not even its length.
            .field("key", &self.key.as_ref().map(|_| "[REDACTED]"))
            .field("endpoint", &self.endpoint)
            .field("custom_http_client", &self.http_client.is_some())
            .field("dead_letter_queue", &self.dead_letter_queue)
            .field("wait", &self.wait)
            .field("lock_duration", &self.lock_duration)
            .field("receives_in_flight", &self.receives_in_flight)
            .finish_non_exhaustive()
    }
}

impl Default for ServiceBusSourceBuilder {
    fn default() -> Self {
        ServiceBusSourceBuilder {
            namespace: None,
            entity: None,
            key_name: None,
            key: None,
            endpoint: None,
            http_client: None,
            dead_letter_queue: None,
            wait: Duration::from_secs(20),
            lock_duration: Duration::from_secs(60),
            receives_in_flight: 10,
            stats: None,
            errors: Vec::new(),
        }
    }
}

impl ServiceBusSourceBuilder {
    /// A builder with the defaults: 20 s peek-lock wait, a 60 s lock duration
    /// assumed until the first message tells the real one, up to 10 receives
    /// in flight, no dead-letter queue (the entity's `MaxDeliveryCount` parks
    /// poison in its `$DeadLetterQueue`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment:
    ///
    /// * `SERVICEBUS_CONNECTION_STRING` — `Endpoint=sb://NS.servicebus.windows.net/;
    ///   SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]`;
    /// * the names of the published Prisma Cloud script, each overriding the
    ///   connection string's part: `SB_QUEUE_NAME_SPACE` (namespace),
    ///   `SB_QUEUE_NAME` (queue, or `TOPIC/subscriptions/SUB`),
    ///   `SB_QUEUE_KEY_NAME` and `SB_QUEUE_KEY`;
    /// * `SERVICEBUS_ENDPOINT` — send every call to this server instead
    ///   (`http://127.0.0.1:PORT`, loopback only for plain http);
    /// * `SERVICEBUS_DEAD_LETTER_QUEUE` — forward poison to this queue;
    /// * `SERVICEBUS_WAIT_SECONDS`, `SERVICEBUS_LOCK_DURATION_SECONDS` — whole seconds.
    ///
    /// Problems (an unparsable connection string or number) are reported by
    /// [`build`](Self::build), never with the key.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        if let Some(cs) = var("SERVICEBUS_CONNECTION_STRING") {
            b = b.with_connection_string(&cs);
        }
        if let Some(ns) = var("SB_QUEUE_NAME_SPACE") {
            b = b.with_namespace(ns);
        }
        if let Some(entity) = var("SB_QUEUE_NAME") {
            b = b.with_entity_path(entity);
        }
        if let Some(name) = var("SB_QUEUE_KEY_NAME") {
            b.key_name = Some(name);
        }
        if let Some(key) = var("SB_QUEUE_KEY") {
            b.key = Some(Secret::new(key));
        }
        if let Some(endpoint) = var("SERVICEBUS_ENDPOINT") {
            b = b.with_endpoint(endpoint);
        }
        if let Some(dlq) = var("SERVICEBUS_DEAD_LETTER_QUEUE") {
            b = b.with_dead_letter_queue(dlq);
        }
        let mut secs = |k: &str| {
            var(k).and_then(|v| match v.trim().parse::<u64>() {
                Ok(n) => Some(Duration::from_secs(n)),
                Err(e) => {
                    b.errors.push(format!("{k}={v:?}: {e}"));
                    None
                }
            })
        };
        let wait = secs("SERVICEBUS_WAIT_SECONDS");
        let lock = secs("SERVICEBUS_LOCK_DURATION_SECONDS");
        if let Some(w) = wait {
            b = b.with_wait(w);
        }
        if let Some(l) = lock {
            b = b.with_lock_duration(l);
        }
        b
    }

    /// Namespace, key name, key and (if it names one) the entity from a
    /// connection string.
    pub fn with_connection_string(mut self, text: &str) -> Self {
        match ConnectionString::parse(text) {
            Ok(cs) => {
                self.namespace = Some(cs.namespace);
                self.key_name = Some(cs.key_name);
                self.key = Some(cs.key);
                if let Some(entity) = cs.entity_path {
                    self.entity = Some(entity);
                }
            }
            Err(e) => self.errors.push(e.to_string()),
        }
        self
    }

    /// The namespace: `NAME`, `NAME.servicebus.windows.net` or `sb://NAME.servicebus.windows.net/`.
    pub fn with_namespace(mut self, namespace: impl AsRef<str>) -> Self {
        match namespace_name(namespace.as_ref()) {
            Ok(ns) => self.namespace = Some(ns),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Reads a queue.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.entity = Some(queue.into());
        self
    }

    /// Reads a topic subscription.
    pub fn with_subscription(mut self, topic: &str, subscription: &str) -> Self {
        self.entity = Some(format!("{topic}/subscriptions/{subscription}"));
        self
    }

    /// Reads the entity at `path`: `QUEUE`, `TOPIC/subscriptions/SUB`, or
    /// either followed by `/$DeadLetterQueue`.
    pub fn with_entity_path(mut self, path: impl Into<String>) -> Self {
        self.entity = Some(path.into());
        self
    }

    /// The shared access policy name and key (`SB_QUEUE_KEY_NAME`, `SB_QUEUE_KEY`).
    pub fn with_shared_access_key(mut self, key_name: impl Into<String>, key: Secret) -> Self {
        self.key_name = Some(key_name.into());
        self.key = Some(key);
        self
    }

    /// Sends every call to `endpoint` (`http://127.0.0.1:PORT`, a local server
    /// speaking the Service Bus REST protocol) instead of Azure.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The HTTP client to send requests with (default: azure_core's reqwest
    /// client). With [`with_endpoint`](Self::with_endpoint), it is wrapped in
    /// an [`EndpointOverride`].
    pub fn with_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Forwards dead letters to this queue (in the same namespace, sent with
    /// the custom properties [`REASON_PROPERTY`] and
    /// [`SOURCE_MESSAGE_ID_PROPERTY`]), then completes the original.
    ///
    /// Without one, a dead letter is unlocked and the entity's
    /// `MaxDeliveryCount` moves it to the entity's `$DeadLetterQueue` once its
    /// delivery count is used up ([`DeadLetterMode::Redrive`]); the engine
    /// records the body in the audit either way.
    pub fn with_dead_letter_queue(mut self, queue: impl Into<String>) -> Self {
        self.dead_letter_queue = Some(queue.into());
        self
    }

    /// How long a peek-lock waits for a message, whole seconds, 1 s to 10 min.
    /// Default 20 s.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = Duration::from_secs(wait.as_secs().clamp(1, 600));
        self
    }

    /// The entity's lock duration (`LockDuration`, 5 s to 5 min; Service Bus
    /// defaults to 60 s), used until the first message tells the real one
    /// (`LockedUntilUtc` against the response's `Date`). Default 60 s.
    pub fn with_lock_duration(mut self, lock: Duration) -> Self {
        self.lock_duration = lock.clamp(Duration::from_secs(1), MAX_LOCK);
        self
    }

    /// How many peek-lock requests may be in flight at once to fill one
    /// batch (REST returns one message per request). Default 10.
    pub fn with_receives_in_flight(mut self, n: usize) -> Self {
        self.receives_in_flight = n.clamp(1, 100);
        self
    }

    /// Counts Service Bus calls in `stats` (pass the engine's handle).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Checks the configuration and builds the source. No call is made: a
    /// wrong key shows on the first receive, as a permanent error naming the
    /// namespace and entity.
    pub fn build(self) -> Result<ServiceBusSource> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Config(format!("Service Bus: {e}")));
        }
        let namespace = self.namespace.ok_or_else(|| {
            Error::Config(
                "Service Bus: no namespace: set SB_QUEUE_NAME_SPACE or SERVICEBUS_CONNECTION_STRING"
                    .into(),
            )
        })?;
        let entity = self
            .entity
            .map(|e| e.trim().trim_matches('/').to_owned())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| {
                Error::Config(format!(
                    "Service Bus namespace {namespace}: no queue or subscription: set SB_QUEUE_NAME \
                     (QUEUE or TOPIC/subscriptions/SUB) or EntityPath in the connection string"
                ))
            })?;
        check_entity_path(&entity)
            .map_err(|e| Error::Config(format!("Service Bus namespace {namespace}: {e}")))?;
        let key_name = self.key_name.ok_or_else(|| {
            Error::Config(format!(
                "Service Bus namespace {namespace}: no key name: set SB_QUEUE_KEY_NAME or \
                 SERVICEBUS_CONNECTION_STRING"
            ))
        })?;
        let key = self.key.ok_or_else(|| {
            Error::Config(format!(
                "Service Bus namespace {namespace}: no key: set SB_QUEUE_KEY or \
                 SERVICEBUS_CONNECTION_STRING"
            ))
        })?;
        if let Some(dlq) = &self.dead_letter_queue {
            if dlq.contains('/') || dlq.trim().is_empty() {
                return Err(Error::Config(format!(
                    "Service Bus namespace {namespace}: the dead-letter queue {dlq:?} must be a queue name"
                )));
            }
        }
        let mut http = self.http_client.unwrap_or_else(azure_core::new_http_client);
        if let Some(endpoint) = &self.endpoint {
            http = Arc::new(EndpointOverride::new(http, endpoint)?);
        }
        let host = format!("{namespace}{NAMESPACE_SUFFIX}");
        Ok(ServiceBusSource {
            name: format!("servicebus:{namespace}/{entity}"),
            shared: Arc::new(Shared {
                http,
                base: format!("https://{host}"),
                namespace,
                entity,
                key_name,
                key,
                endpoint: self.endpoint,
                dead_letter_queue: self.dead_letter_queue,
                wait: self.wait,
                configured_lock: self.lock_duration,
                observed_lock: Mutex::new(None),
                receives_in_flight: self.receives_in_flight,
                stats: self.stats.unwrap_or_default(),
            }),
        })
    }
}

/// `QUEUE`, `TOPIC/subscriptions/SUB`, optionally `/$DeadLetterQueue`.
fn check_entity_path(path: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = path.split('/').collect();
    let base = match parts.as_slice() {
        [rest @ .., "$DeadLetterQueue"] => rest,
        all => all,
    };
    let ok_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 260
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
    };
    let fine = match base {
        [queue] => ok_name(queue),
        [topic, "subscriptions", sub] => ok_name(topic) && ok_name(sub),
        _ => false,
    };
    if fine {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not an entity path (QUEUE, TOPIC/subscriptions/SUB, optionally /$DeadLetterQueue)"
        ))
    }
}

// -------------------------------------------------------------------- source

/// An Azure Service Bus queue or topic subscription as a source of
/// deliveries, read with peek-lock. Cheap to clone.
///
/// A `401` or `403` (wrong key, missing Listen right) makes
/// [`receive`](AlertSource::receive) fail with a permanent error naming the
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

    /// The stats the source counts its calls in.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }
}

struct Shared {
    http: Arc<dyn HttpClient>,
    /// `https://NS.servicebus.windows.net` (requests are routed by `http`).
    base: String,
    namespace: String,
    entity: String,
    key_name: String,
    key: Secret,
    endpoint: Option<String>,
    dead_letter_queue: Option<String>,
    wait: Duration,
    configured_lock: Duration,
    observed_lock: Mutex<Option<Duration>>,
    receives_in_flight: usize,
    stats: Arc<Stats>,
}

/// What one HTTP exchange returned.
struct Reply {
    status: StatusCode,
    headers: Headers,
    body: Bytes,
}

impl Shared {
    fn lock_duration(&self) -> Duration {
        self.observed_lock
            .lock()
            .ok()
            .and_then(|l| *l)
            .unwrap_or(self.configured_lock)
    }

    fn entity_uri(&self, entity: &str) -> String {
        format!("{}/{entity}", self.base)
    }

    /// Sends one signed request (SAS scoped to `entity`), with a time limit.
    async fn call(
        &self,
        what: &str,
        method: Method,
        url: &str,
        entity: &str,
        body: Option<Bytes>,
        limit: Duration,
    ) -> Result<Reply> {
        let url = Url::parse(url).map_err(|e| Error::Backend {
            backend: BACKEND,
            message: format!("{what}: bad URL: {e}"),
            temporary: false,
            source: None,
        })?;
        let token = sas_token(
            &self.entity_uri(entity),
            &self.key_name,
            &self.key,
            unix_now() + SAS_TTL.as_secs(),
        )?;
        let mut request = Request::new(url, method);
        request.insert_header(azure_core::headers::AUTHORIZATION, token);
        match body {
            Some(b) => {
                request.insert_header(azure_core::headers::CONTENT_LENGTH, b.len().to_string());
                request.set_body(b);
            }
            None => {
                request.insert_header(azure_core::headers::CONTENT_LENGTH, "0");
                request.set_body(azure_core::EMPTY_BODY);
            }
        }
        let exchange = async {
            let response = self.http.execute_request(&request).await?;
            let (status, headers, body) = response.deconstruct();
            let body = body.collect().await?;
            azure_core::Result::Ok(Reply {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{what} on namespace {} entity {entity}: could not reach Service Bus: {}",
                    self.namespace,
                    redact(&e.to_string())
                ),
                temporary: true,
                source: None,
            }),
            Err(_) => Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "{what} on namespace {} entity {entity}: no answer within {limit:?}",
                    self.namespace
                ),
                temporary: true,
                source: None,
            }),
        }
    }

    /// The one place an unexpected HTTP status becomes an error.
    fn status_error(&self, what: &str, entity: &str, reply: &Reply, settle: bool) -> Error {
        let code = u16::from(reply.status);
        let ns = &self.namespace;
        let detail = server_detail(&reply.body);
        let (message, temporary) = match code {
            401 => (
                format!(
                    "{what}: 401 Unauthorized on namespace {ns} entity {entity}: the shared access \
                     key name {:?} or its key was refused (check SB_QUEUE_KEY_NAME / SB_QUEUE_KEY \
                     or SERVICEBUS_CONNECTION_STRING){detail}",
                    self.key_name
                ),
                false,
            ),
            403 => (
                format!(
                    "{what}: 403 Forbidden on namespace {ns} entity {entity}: the shared access \
                     policy {:?} lacks the right (Listen to receive, Send to forward dead letters) \
                     or a quota was exceeded{detail}",
                    self.key_name
                ),
                false,
            ),
            404 if settle => (
                format!(
                    "{what}: 404 on namespace {ns} entity {entity}: the message lock was lost (it \
                     expired, or the message was settled already); Service Bus delivers the message \
                     again{detail}"
                ),
                false,
            ),
            404 | 410 if !settle => (
                format!(
                    "{what}: {code} on namespace {ns}: the entity {entity} does not exist{detail}"
                ),
                false,
            ),
            410 => (
                format!(
                    "{what}: 410 Gone on namespace {ns}: the lock was lost or the entity {entity} \
                     no longer exists{detail}"
                ),
                false,
            ),
            408 | 429 | 500..=599 => (
                format!("{what}: {code} on namespace {ns} entity {entity}: try again{detail}"),
                true,
            ),
            _ => (
                format!("{what}: unexpected {code} on namespace {ns} entity {entity}{detail}"),
                false,
            ),
        };
        Error::Backend {
            backend: BACKEND,
            message,
            temporary,
            source: None,
        }
    }

    /// One peek-lock; `None` when nothing arrived within `timeout_secs`.
    async fn peek_lock(self: &Arc<Self>, timeout_secs: u64) -> Result<Option<Delivery>> {
        let url = format!(
            "{}/messages/head?timeout={timeout_secs}",
            self.entity_uri(&self.entity)
        );
        self.stats.count_api_call(ApiCall::ServiceBusPeekLock);
        let reply = self
            .call(
                "peek-lock",
                Method::Post,
                &url,
                &self.entity,
                None,
                Duration::from_secs(timeout_secs) + REQUEST_SLACK,
            )
            .await?;
        let received_at = Instant::now();
        match u16::from(reply.status) {
            204 => Ok(None),
            200 | 201 => Ok(Some(self.delivery(reply, received_at))),
            _ => Err(self.status_error("peek-lock", &self.entity, &reply, false)),
        }
    }

    /// Turns a peek-locked message into a delivery. Never fails: a message
    /// whose lock cannot be located is still handed out (its body reaches the
    /// audit), and its settle calls report why they cannot work.
    fn delivery(self: &Arc<Self>, reply: Reply, received_at: Instant) -> Delivery {
        let header = |name: &'static str| {
            reply
                .headers
                .get_optional_str(&HeaderName::from_static(name))
        };
        let props = header("brokerproperties")
            .map(BrokerProperties::parse)
            .unwrap_or_default();
        // Lock duration from the server's own clock: LockedUntilUtc - Date.
        // Both have whole seconds, so this may come out a second short when a
        // second boundary passed between locking and answering: renewals then
        // come early, never late.
        let lock_for = match (
            props.locked_until.as_deref().and_then(parse_http_date),
            header("date").and_then(parse_http_date),
        ) {
            (Some(until), Some(now)) if until > now => {
                let observed = Duration::from_secs((until - now) as u64).min(MAX_LOCK);
                if let Ok(mut o) = self.observed_lock.lock() {
                    if *o != Some(observed) {
                        if observed < self.configured_lock {
                            tracing::info!(
                                namespace = %self.namespace,
                                entity = %self.entity,
                                ?observed,
                                "the entity's lock duration is shorter than configured; using it"
                            );
                        }
                        *o = Some(observed);
                    }
                }
                observed
            }
            _ => self.lock_duration(),
        };
        let lock_url = self.lock_url(header("location"), &props);
        if lock_url.is_none() {
            tracing::error!(
                namespace = %self.namespace,
                entity = %self.entity,
                message_id = ?props.message_id,
                "peek-lock returned a message without a usable Location or LockToken; it cannot be \
                 settled and returns when its lock expires"
            );
        }
        let message_id = props
            .message_id
            .clone()
            .or_else(|| props.sequence_number.map(|n| n.to_string()))
            .unwrap_or_default();
        // A little early: the lock started before the response arrived.
        let deadline = received_at + lock_for.saturating_sub(Duration::from_millis(50));
        let body = reply.body;
        let settle = ServiceBusSettle {
            shared: Arc::clone(self),
            lock_url,
            message_id: message_id.clone(),
            body: self.dead_letter_queue.as_ref().map(|_| body.clone()),
            lock_for,
            deadline: Mutex::new(deadline),
            keeper: Mutex::new(None),
        };
        let mut d = Delivery::new(message_id, body, Arc::new(settle))
            .with_delivery_count(props.delivery_count.unwrap_or(1))
            .with_lease_deadline(deadline);
        if let Some(at) = props.enqueued_time.as_deref().and_then(parse_http_date) {
            if let Ok(secs) = u64::try_from(at) {
                d = d.with_first_seen(UNIX_EPOCH + Duration::from_secs(secs));
            }
        }
        if let Some(n) = props.sequence_number {
            d = d.with_attribute("SequenceNumber", n.to_string());
        }
        for (name, value) in [
            ("LockedUntilUtc", &props.locked_until),
            ("EnqueuedTimeUtc", &props.enqueued_time),
            ("Label", &props.label),
            ("CorrelationId", &props.correlation_id),
            ("DeadLetterSource", &props.dead_letter_source),
        ] {
            if let Some(v) = value {
                d = d.with_attribute(name, v.clone());
            }
        }
        for name in ["deadletterreason", "deadlettererrordescription"] {
            if let Some(v) = header(name) {
                let v = v.trim().trim_matches('"');
                let key = if name == "deadletterreason" {
                    "DeadLetterReason"
                } else {
                    "DeadLetterErrorDescription"
                };
                d = d.with_attribute(key, v);
            }
        }
        d
    }

    /// The lock URI: the `Location` header's path (which must lie under this
    /// entity; the host is always the namespace's, so a SAS token never goes
    /// elsewhere), or, without one, built from the documented parts
    /// `{entity}/messages/{SequenceNumber|MessageId}/{LockToken}`.
    fn lock_url(&self, location: Option<&str>, props: &BrokerProperties) -> Option<String> {
        let prefix = format!("/{}/messages/", self.entity);
        if let Some(path) = location
            .and_then(|l| Url::parse(l).ok())
            .map(|u| u.path().to_owned())
            .filter(|p| p.starts_with(&prefix) && p.len() > prefix.len())
        {
            return Some(format!("{}{path}", self.base));
        }
        let token = props.lock_token.as_deref().filter(|t| !t.is_empty())?;
        let reference = props
            .sequence_number
            .map(|n| n.to_string())
            .or_else(|| props.message_id.clone())?;
        Some(format!(
            "{}{prefix}{}/{}",
            self.base,
            url_encode(&reference),
            url_encode(token)
        ))
    }

    /// Complete, unlock or renew on a lock URI.
    async fn on_lock(&self, what: &'static str, method: Method, url: &str) -> Result<()> {
        self.stats.count_api_call(match what {
            "complete" => ApiCall::ServiceBusComplete,
            "unlock" => ApiCall::ServiceBusUnlock,
            _ => ApiCall::ServiceBusRenewLock,
        });
        let reply = self
            .call(what, method, url, &self.entity, None, SETTLE_TIMEOUT)
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(what, &self.entity, &reply, true))
        }
    }

    async fn forward(
        &self,
        queue: &str,
        message_id: &str,
        body: &Bytes,
        reason: &str,
    ) -> Result<()> {
        self.stats.count_api_call(ApiCall::ServiceBusSend);
        let client = QueueClient::new(
            Arc::clone(&self.http),
            self.namespace.clone(),
            queue.to_owned(),
            self.key_name.clone(),
            azure_core::auth::Secret::new(self.key.expose().to_owned()),
        )
        .map_err(|_| Error::Config("could not build the dead-letter queue client".into()))?;
        let mut properties = HashMap::new();
        properties.insert(REASON_PROPERTY.to_owned(), header_string(reason));
        properties.insert(
            SOURCE_MESSAGE_ID_PROPERTY.to_owned(),
            header_string(message_id),
        );
        let text = match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                properties.insert(BODY_ENCODING_PROPERTY.to_owned(), header_string("base64"));
                base64::engine::general_purpose::STANDARD.encode(body)
            }
        };
        let options = SendMessageOptions {
            content_type: None,
            broker_properties: Some(SettableBrokerProperties {
                message_id: Some(message_id.to_owned()).filter(|m| !m.is_empty()),
                ..Default::default()
            }),
            custom_properties: Some(properties),
        };
        let sent =
            tokio::time::timeout(SETTLE_TIMEOUT, client.send_message(&text, Some(options))).await;
        let failure = |message: String, temporary: bool| Error::Backend {
            backend: BACKEND,
            message,
            temporary,
            source: None,
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let status = e.as_http_error().map(|h| u16::from(h.status()));
                let temporary = status.is_none_or(|s| matches!(s, 408 | 429 | 500..=599));
                Err(failure(
                    format!(
                        "forwarding to the dead-letter queue {queue} on namespace {} failed{}",
                        self.namespace,
                        status.map(|s| format!(": HTTP {s}")).unwrap_or_default()
                    ),
                    temporary,
                ))
            }
            Err(_) => Err(failure(
                format!(
                    "forwarding to the dead-letter queue {queue} on namespace {}: no answer within {SETTLE_TIMEOUT:?}",
                    self.namespace
                ),
                true,
            )),
        }
    }
}

/// A custom property value as Service Bus REST expects it in a header: a
/// quoted string, printable ASCII only, bounded.
fn header_string(text: &str) -> String {
    let clean: String = text
        .chars()
        .take(1024)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                if c == '"' || c == '\\' { '\'' } else { c }
            } else {
                '?'
            }
        })
        .collect();
    format!("\"{clean}\"")
}

/// The server's error detail (`<Detail>` of the XML body, or the text),
/// short and redacted, for an error message.
fn server_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = match (text.find("<Detail>"), text.find("</Detail>")) {
        (Some(a), Some(b)) if b > a => text[a + 8..b].to_owned(),
        _ => text.trim().to_owned(),
    };
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(" (server: {})", redact(&short))
}

/// Parses an RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(text: &str) -> Option<i64> {
    azure_core::date::parse_rfc1123(text.trim())
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `BrokerProperties`, read leniently: every field optional, numbers as
/// numbers or strings, unknown fields ignored.
#[derive(Debug, Default)]
struct BrokerProperties {
    delivery_count: Option<u32>,
    lock_token: Option<String>,
    locked_until: Option<String>,
    message_id: Option<String>,
    sequence_number: Option<i64>,
    enqueued_time: Option<String>,
    label: Option<String>,
    correlation_id: Option<String>,
    dead_letter_source: Option<String>,
}

impl BrokerProperties {
    fn parse(text: &str) -> BrokerProperties {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        else {
            tracing::warn!("unparsable BrokerProperties header; using defaults");
            return BrokerProperties::default();
        };
        let string = |k: &str| match map.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let number = |k: &str| match map.get(k) {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        BrokerProperties {
            delivery_count: number("DeliveryCount").and_then(|n| u32::try_from(n).ok()),
            lock_token: string("LockToken"),
            locked_until: string("LockedUntilUtc"),
            message_id: string("MessageId"),
            sequence_number: number("SequenceNumber"),
            enqueued_time: string("EnqueuedTimeUtc"),
            label: string("Label"),
            correlation_id: string("CorrelationId"),
            dead_letter_source: string("DeadLetterSource"),
        }
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

// -------------------------------------------------------------------- settle

/// Settles one peek-locked message through its lock URI.
struct ServiceBusSettle {
    shared: Arc<Shared>,
    lock_url: Option<String>,
    message_id: String,
    /// The body, kept (shared, not copied) when dead letters are forwarded.
    body: Option<Bytes>,
    /// The entity's lock duration as seen on this message.
    lock_for: Duration,
    /// When the current lock ends (local clock).
    deadline: Mutex<Instant>,
    /// Stops the background renewals of an `extend` longer than one lock.
    keeper: Mutex<Option<CancellationToken>>,
}

impl fmt::Debug for ServiceBusSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lock URI holds the lock token: not printed.
        f.debug_struct("ServiceBusSettle")
            .field("entity", &self.shared.entity)
            .field("message_id", &self.message_id)
            .field("lock_for", &self.lock_for)
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceBusSettle {
    fn drop(&mut self) {
        self.stop_keeper();
    }
}

impl ServiceBusSettle {
    fn url(&self) -> Result<&str> {
        self.lock_url.as_deref().ok_or_else(|| Error::Backend {
            backend: BACKEND,
            message: format!(
                "message {} on namespace {} entity {}: peek-lock returned no Location or LockToken, \
                 so it cannot be settled; it returns when its lock expires",
                self.message_id, self.shared.namespace, self.shared.entity
            ),
            temporary: false,
            source: None,
        })
    }

    fn stop_keeper(&self) {
        if let Some(token) = self.keeper.lock().ok().and_then(|mut k| k.take()) {
            token.cancel();
        }
    }

    fn remaining(&self) -> Duration {
        self.deadline
            .lock()
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    fn renewed_now(&self) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Instant::now() + self.lock_for;
        }
    }
}

/// Renews the lock at `url` so that it lasts until `until`: one renewal
/// every half lock while more than a lock is left, then one last renewal a
/// lock before `until` (the lock then lapses at about `until`). Stops early
/// when `stop` fires or a renewal fails (the lock then lapses on its own).
async fn renew_until(
    shared: Arc<Shared>,
    url: String,
    lock_for: Duration,
    mut lock_ends: Instant,
    until: Instant,
    stop: Option<CancellationToken>,
) {
    let step = (lock_for / 2).max(Duration::from_millis(200));
    loop {
        let now = Instant::now();
        if lock_ends >= until {
            return;
        }
        // Renew when `until` is within one lock of now, or half a lock before
        // the current lock ends, whichever comes first.
        let last = until.checked_sub(lock_for).unwrap_or(now);
        let next = last
            .min(lock_ends.checked_sub(step).unwrap_or(now))
            .max(now);
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
        match &stop {
            Some(stop) => {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = sleep => {}
                }
            }
            None => sleep.await,
        }
        if let Err(e) = shared.on_lock("renew", Method::Post, &url).await {
            tracing::warn!(entity = %shared.entity, error = %e, "background lock renewal failed; the lock lapses");
            return;
        }
        lock_ends = Instant::now() + lock_for;
    }
}

#[async_trait]
impl Settle for ServiceBusSettle {
    async fn ack(&self) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?;
        self.shared.on_lock("complete", Method::Delete, url).await
    }

    /// `retry_after` zero: unlock now. Within the remaining lock: unlock
    /// when it has passed. Longer: keep the lock (renewing it) and let it
    /// lapse when `retry_after` is over, so the message is not redelivered
    /// early; beyond 15 minutes the lock just lapses. Waiting happens in a
    /// background task; `nack` returns at once.
    async fn nack(&self, retry_after: Duration) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        if retry_after.is_zero() {
            return self.shared.on_lock("unlock", Method::Put, &url).await;
        }
        let remaining = self.remaining();
        let shared = Arc::clone(&self.shared);
        if retry_after < remaining {
            tokio::spawn(async move {
                tokio::time::sleep(retry_after).await;
                if let Err(e) = shared.on_lock("unlock", Method::Put, &url).await {
                    tracing::debug!(error = %e, "delayed unlock failed; the lock lapses instead");
                }
            });
        } else if retry_after <= MAX_NACK_STRETCH {
            let now = Instant::now();
            let (lock_for, lock_ends) = (self.lock_for, now + remaining);
            tokio::spawn(renew_until(
                shared,
                url,
                lock_for,
                lock_ends,
                now + retry_after,
                None,
            ));
        }
        Ok(())
    }

    /// Renews the lock now (Service Bus renews for the entity's lock
    /// duration); when `by` is longer, keeps renewing in the background until
    /// `by` is covered or the delivery is settled or dropped.
    async fn extend(&self, by: Duration) -> Result<()> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        self.shared.on_lock("renew", Method::Post, &url).await?;
        self.renewed_now();
        if by > self.lock_for {
            let stop = CancellationToken::new();
            if let Ok(mut k) = self.keeper.lock() {
                *k = Some(stop.clone());
            }
            let now = Instant::now();
            tokio::spawn(renew_until(
                Arc::clone(&self.shared),
                url,
                self.lock_for,
                now + self.lock_for,
                now + by,
                Some(stop),
            ));
        }
        Ok(())
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        self.stop_keeper();
        let url = self.url()?.to_owned();
        match (&self.shared.dead_letter_queue, &self.body) {
            (Some(queue), Some(body)) => {
                self.shared
                    .forward(queue, &self.message_id, body, reason)
                    .await?;
                self.shared
                    .on_lock("complete", Method::Delete, &url)
                    .await?;
                Ok(DeadLetterOutcome::Parked)
            }
            _ => {
                // Abandon: each delivery counts towards MaxDeliveryCount,
                // after which Service Bus moves it to $DeadLetterQueue.
                self.shared.on_lock("unlock", Method::Put, &url).await?;
                Ok(DeadLetterOutcome::LeftToRedrive)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS12YWx1ZS1mb3ItdGVzdHM9PQ==";

    #[test]
    fn connection_strings_parse_with_and_without_entity() {
        let cs = ConnectionString::parse(&format!(
            "Endpoint=sb://Contoso-Alerts.servicebus.windows.net/;SharedAccessKeyName=Listen;SharedAccessKey={KEY};EntityPath=prisma"
        ))
        .unwrap();
        assert_eq!(cs.namespace, "contoso-alerts");
        assert_eq!(cs.key_name, "Listen");
        assert_eq!(cs.key.expose(), KEY);
        assert_eq!(cs.entity_path.as_deref(), Some("prisma"));
        let text = format!("{cs:?}");
        assert!(!text.contains(KEY), "{text}");
        let cs = ConnectionString::parse(&format!(
            " endpoint=sb://ns1.servicebus.windows.net ; sharedaccesskeyname=r ; sharedaccesskey={KEY} ; "
        ))
        .unwrap();
        assert_eq!((cs.namespace.as_str(), cs.entity_path), ("ns1", None));
    }

    #[test]
    fn bad_connection_strings_are_clear_and_keep_the_key_out() {
        for bad in [
            format!("SharedAccessKeyName=r;SharedAccessKey={KEY}"),
            format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey={KEY}"),
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=r".to_owned(),
            format!("Endpoint=sb://bad_ns!/;SharedAccessKeyName=r;SharedAccessKey={KEY}"),
            format!("garbage;SharedAccessKey={KEY}"),
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=abc".to_owned(),
        ] {
            let e = ConnectionString::parse(&bad).expect_err(&bad);
            let text = e.to_string();
            assert!(!text.contains(KEY) && !text.contains("sig=abc"), "{text}");
            assert!(text.contains("SERVICEBUS_CONNECTION_STRING"), "{text}");
        }
    }

    #[test]
    fn sas_tokens_follow_the_documented_scheme() {
        // HMAC-SHA256 over "urlencoded(resource)\nexpiry", keyed by the key's text.
        let token = sas_token(
            "https://ns.servicebus.windows.net/q",
            "RootManageSharedAccessKey",
            &Secret::new("key"),
            1_700_000_000,
        )
        .unwrap();
        let sr = "https%3A%2F%2Fns.servicebus.windows.net%2Fq";
        assert!(
            token.starts_with(&format!("SharedAccessSignature sr={sr}&sig=")),
            "{token}"
        );
        assert!(token.ends_with("&se=1700000000&skn=RootManageSharedAccessKey"));
        // Reference value computed independently (Python hmac/hashlib).
        let sig = token
            .split("&sig=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(sig, "qBPJfuerbE2MYvoiKuCb4gatEDtkALQzqq85wqO3aEE%3D");
    }

    #[test]
    fn entity_paths_are_checked() {
        for ok in [
            "alerts",
            "t/subscriptions/s",
            "alerts/$DeadLetterQueue",
            "t/subscriptions/s/$DeadLetterQueue",
        ] {
            assert!(check_entity_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "t/subs/s", "q?x=1", "a b", "../x"] {
            assert!(check_entity_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn broker_properties_are_read_leniently() {
        let p = BrokerProperties::parse(
            r#"{"DeliveryCount":3,"EnqueuedSequenceNumber":56294995342131200,"LockToken":"7da9cfd5","LockedUntilUtc":"Fri, 18 Jun 2021 20:28:42 GMT","MessageId":"m1","SequenceNumber":"56294995342131201","State":"Active","Extra":{"x":1}}"#,
        );
        assert_eq!(p.delivery_count, Some(3));
        assert_eq!(p.sequence_number, Some(56_294_995_342_131_201));
        assert_eq!(p.lock_token.as_deref(), Some("7da9cfd5"));
        assert_eq!(
            parse_http_date(p.locked_until.as_deref().unwrap()),
            Some(1_624_048_122)
        );
        let p = BrokerProperties::parse("not json");
        assert_eq!(p.delivery_count, None);
    }

    #[test]
    fn plain_http_endpoints_only_on_loopback() {
        let http = azure_core::new_http_client();
        assert!(EndpointOverride::new(Arc::clone(&http), "http://127.0.0.1:5000").is_ok());
        assert!(EndpointOverride::new(Arc::clone(&http), "https://sb.example.com").is_ok());
        assert!(EndpointOverride::new(Arc::clone(&http), "http://sb.example.com").is_err());
        assert!(EndpointOverride::new(Arc::clone(&http), "http://127.0.0.1:5000/path").is_err());
        assert!(EndpointOverride::new(http, "ftp://127.0.0.1").is_err());
    }

    #[test]
    fn the_lock_uri_stays_on_the_namespace_and_under_the_entity() {
        let source = ServiceBusSourceBuilder::new()
            .with_namespace("ns")
            .with_shared_access_key("r", Secret::new("k"))
            .with_subscription("t", "s")
            .build()
            .unwrap();
        let props = BrokerProperties::parse(
            r#"{"LockToken":"lt-1","SequenceNumber":42,"MessageId":"m/1"}"#,
        );
        let lock = |location: Option<&str>| source.shared.lock_url(location, &props);
        let base = "https://ns.servicebus.windows.net/t/subscriptions/s/messages";
        // The Location header's path, on the namespace's own host.
        assert_eq!(
            lock(Some(
                "https://elsewhere.example/t/subscriptions/s/messages/m1/lt-1"
            )),
            Some(format!("{base}/m1/lt-1"))
        );
        // A Location outside the entity is ignored: built from the documented parts.
        for bad in [
            Some("https://ns.servicebus.windows.net/other/messages/m1/lt-1"),
            Some("not a url"),
            None,
        ] {
            assert_eq!(lock(bad), Some(format!("{base}/42/lt-1")), "{bad:?}");
        }
        let no_token = BrokerProperties::parse(r#"{"MessageId":"m1"}"#);
        assert_eq!(source.shared.lock_url(None, &no_token), None);
    }

    #[test]
    fn builder_debug_hides_the_key() {
        let b = ServiceBusSourceBuilder::new()
            .with_connection_string(&format!(
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey={KEY}"
            ))
            .with_queue("q");
        let text = format!("{b:?}");
        assert!(!text.contains(KEY), "{text}");
        let source = b.build().unwrap();
        let text = format!("{source:?}");
        assert!(!text.contains(KEY), "{text}");
        assert_eq!(source.name(), "servicebus:ns/q");
    }
}
