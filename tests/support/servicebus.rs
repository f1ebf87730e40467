//! A Service Bus REST emulator on loopback, implementing the documented
//! runtime protocol (Microsoft's REST reference: "Send Message", "Peek-Lock
//! Message (Non-Destructive Read)", "Receive and Delete Message", "Unlock
//! Message", "Renew-Lock for a Message", "Delete Message"), since no Service
//! Bus emulator can run here (the official one is a Docker image).
//!
//! * `POST /{queue|topic}/messages` — send; `BrokerProperties` (`MessageId`,
//!   `Label`, `CorrelationId`, `TimeToLive`, `ScheduledEnqueueTimeUtc`) and
//!   custom-property headers are kept; a topic copies the message to each
//!   subscription. `201`.
//! * `POST /{entity}/messages/head?timeout=N` — peek-lock the first available
//!   message: `201` with the body, `BrokerProperties` (`DeliveryCount`,
//!   `LockToken`, `LockedUntilUtc`, `MessageId`, `SequenceNumber`,
//!   `EnqueuedTimeUtc`, `State`, `TimeToLive`...) and `Location`
//!   (`https://{ns}.servicebus.windows.net/{entity}/messages/{MessageId}/{LockToken}`);
//!   `204` when nothing arrived within `timeout` seconds (default 60).
//!   `DELETE` on the same URI receives and deletes (`200`).
//! * `DELETE` / `PUT` / `POST` on a lock URI — complete / unlock / renew:
//!   `200`, or `404` when the lock is unknown or expired (the message id or
//!   sequence number must match too).
//! * Entities are queues, topics with subscriptions
//!   (`{topic}/subscriptions/{sub}`) and each one's `$DeadLetterQueue`. A lock
//!   lasts the entity's lock duration; when it expires the message is
//!   available again. `DeliveryCount` grows on every lock; a message whose
//!   lock expires or is unlocked after `MaxDeliveryCount` deliveries moves to
//!   `{entity}/$DeadLetterQueue` with `DeadLetterReason:
//!   MaxDeliveryCountExceeded`. An unknown entity answers `410` to peek-lock
//!   and settle calls, `404` to sends.
//! * Every request needs `Authorization: SharedAccessSignature sr=..&sig=..&se=..&skn=..`:
//!   the rule `skn` must exist and hold the right (Send to send, Listen to
//!   receive and settle), `se` must be in the future, `sr` (URL-decoded,
//!   scheme ignored) must name `{ns}.servicebus.windows.net` and a prefix of
//!   the requested resource, and `sig` must be base64(HMAC-SHA256(key,
//!   `sr` as sent + "\n" + `se`)). Otherwise `401` with an XML error body.
#![allow(dead_code)]

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// The dead-letter sub-queue's name.
pub const DLQ: &str = "$DeadLetterQueue";

/// Lock duration and delivery limit of a queue or subscription.
#[derive(Clone, Copy, Debug)]
pub struct EntityConfig {
    /// How long a peek-lock holds a message.
    pub lock_duration: Duration,
    /// Deliveries before a message moves to the dead-letter sub-queue.
    pub max_delivery_count: u32,
}

impl Default for EntityConfig {
    /// Service Bus's defaults: 60 s lock, 10 deliveries.
    fn default() -> Self {
        EntityConfig {
            lock_duration: Duration::from_secs(60),
            max_delivery_count: 10,
        }
    }
}

/// A shared access rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its name (`skn`).
    pub name: String,
    /// Its key.
    pub key: String,
    /// May send.
    pub send: bool,
    /// May receive and settle.
    pub listen: bool,
}

/// A message as stored, for inspection.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    /// The body.
    pub body: Bytes,
    /// `MessageId`.
    pub message_id: String,
    /// Deliveries so far.
    pub delivery_count: u32,
    /// Custom properties (header name → raw header value).
    pub properties: BTreeMap<String, String>,
    /// Whether it is locked right now.
    pub locked: bool,
}

#[derive(Clone, Debug)]
struct Lock {
    token: String,
    until: Instant,
    until_wall: SystemTime,
}

#[derive(Clone, Debug)]
struct Message {
    seq: i64,
    id: String,
    body: Bytes,
    content_type: Option<String>,
    delivery_count: u32,
    enqueued: SystemTime,
    visible_from: SystemTime,
    expires: Option<SystemTime>,
    ttl_secs: f64,
    label: Option<String>,
    correlation_id: Option<String>,
    properties: BTreeMap<String, String>,
    lock: Option<Lock>,
    dead_letter_source: Option<String>,
}

#[derive(Debug)]
struct Store {
    config: EntityConfig,
    messages: BTreeMap<i64, Message>,
}

#[derive(Debug, Default)]
struct State {
    /// Queues, subscriptions (`topic/subscriptions/sub`) and their DLQs.
    stores: HashMap<String, Store>,
    /// Topic → its subscriptions.
    topics: HashMap<String, Vec<String>>,
    next_seq: i64,
}

impl State {
    /// Releases expired locks (moving exhausted messages to the DLQ) and drops
    /// expired messages.
    fn maintain(&mut self) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut moves = Vec::new();
        for (path, store) in &mut self.stores {
            let max = store.config.max_delivery_count;
            let mut gone = Vec::new();
            for (seq, m) in &mut store.messages {
                if m.lock.as_ref().is_some_and(|l| l.until <= now) {
                    m.lock = None;
                    if m.delivery_count >= max && !path.ends_with(DLQ) {
                        moves.push((path.clone(), *seq, "MaxDeliveryCountExceeded"));
                        continue;
                    }
                }
                if m.lock.is_none() && m.expires.is_some_and(|e| e <= wall) {
                    gone.push(*seq);
                }
            }
            for seq in gone {
                store.messages.remove(&seq);
            }
        }
        for (path, seq, reason) in moves {
            self.dead_letter(&path, seq, reason);
        }
    }

    fn dead_letter(&mut self, path: &str, seq: i64, reason: &str) {
        let Some(mut m) = self
            .stores
            .get_mut(path)
            .and_then(|s| s.messages.remove(&seq))
        else {
            return;
        };
        m.lock = None;
        m.properties
            .insert("DeadLetterReason".into(), format!("\"{reason}\""));
        m.dead_letter_source = Some(path.to_owned());
        m.expires = None;
        self.next_seq += 1;
        m.seq = self.next_seq;
        let dlq = format!("{path}/{DLQ}");
        if let Some(store) = self.stores.get_mut(&dlq) {
            store.messages.insert(m.seq, m);
        }
    }

    fn add_store(&mut self, path: &str, config: EntityConfig) {
        self.stores.insert(
            path.to_owned(),
            Store {
                config,
                messages: BTreeMap::new(),
            },
        );
        self.stores.insert(
            format!("{path}/{DLQ}"),
            Store {
                config: EntityConfig {
                    lock_duration: config.lock_duration,
                    max_delivery_count: u32::MAX,
                },
                messages: BTreeMap::new(),
            },
        );
    }
}

struct Inner {
    namespace: String,
    rules: Vec<Rule>,
    state: Mutex<State>,
    requests: AtomicU64,
    unauthorized: AtomicU64,
    seed: u64,
    tokens: AtomicU64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_token(&self) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.seed ^ n);
        let r = h.finish();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r >> 32,
            r & 0xffff,
            n & 0xfff,
            (r >> 20) & 0xfff,
            n
        )
    }
}

/// The emulator: a Service Bus namespace on a loopback port. Stops when dropped.
pub struct ServiceBusEmulator {
    inner: Arc<Inner>,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServiceBusEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rule with every right the emulator starts with.
pub const ROOT_RULE: &str = "RootManageSharedAccessKey";
/// A rule that may only send.
pub const SEND_ONLY_RULE: &str = "send-only";

fn random_key() -> String {
    use base64::Engine as _;
    let mut bytes = Vec::new();
    for _ in 0..4 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        bytes.extend_from_slice(&h.finish().to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl ServiceBusEmulator {
    /// Starts a namespace called `namespace` with a root rule (all rights) and
    /// a send-only rule, each with a fresh random key.
    pub async fn start(namespace: &str) -> ServiceBusEmulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the emulator");
        let addr = listener.local_addr().expect("emulator address");
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write_u64(1);
        let inner = Arc::new(Inner {
            namespace: namespace.to_ascii_lowercase(),
            rules: vec![
                Rule {
                    name: ROOT_RULE.into(),
                    key: random_key(),
                    send: true,
                    listen: true,
                },
                Rule {
                    name: SEND_ONLY_RULE.into(),
                    key: random_key(),
                    send: true,
                    listen: false,
                },
            ],
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            seed: seed.finish(),
            tokens: AtomicU64::new(0),
        });
        let server = Arc::clone(&inner);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = Arc::clone(&server);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let inner = Arc::clone(&inner);
                        async move { Ok::<_, Infallible>(handle(&inner, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ServiceBusEmulator { inner, addr, task }
    }

    /// `http://127.0.0.1:PORT`, for `SERVICEBUS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// A rule by name.
    pub fn rule(&self, name: &str) -> &Rule {
        self.inner
            .rules
            .iter()
            .find(|r| r.name == name)
            .expect("rule")
    }

    /// The root rule's key.
    pub fn root_key(&self) -> &str {
        &self.rule(ROOT_RULE).key
    }

    /// A connection string for the root rule.
    pub fn connection_string(&self, entity: Option<&str>) -> String {
        let mut cs = format!(
            "Endpoint=sb://{}.servicebus.windows.net/;SharedAccessKeyName={ROOT_RULE};SharedAccessKey={}",
            self.inner.namespace,
            self.root_key()
        );
        if let Some(e) = entity {
            cs.push_str(&format!(";EntityPath={e}"));
        }
        cs
    }

    /// Creates a queue (and its dead-letter sub-queue).
    pub fn create_queue(&self, name: &str, config: EntityConfig) {
        self.inner.state().add_store(name, config);
    }

    /// Creates a topic.
    pub fn create_topic(&self, name: &str) {
        self.inner
            .state()
            .topics
            .entry(name.to_owned())
            .or_default();
    }

    /// Creates a subscription of `topic` (and its dead-letter sub-queue).
    pub fn create_subscription(&self, topic: &str, name: &str, config: EntityConfig) {
        let mut s = self.inner.state();
        s.topics
            .entry(topic.to_owned())
            .or_default()
            .push(name.to_owned());
        s.add_store(&format!("{topic}/subscriptions/{name}"), config);
    }

    /// Puts `body` on a queue or topic, as a send with no properties would.
    pub fn send(&self, entity: &str, body: &[u8]) {
        let mut s = self.inner.state();
        assert!(
            enqueue(
                &mut s,
                entity,
                Bytes::copy_from_slice(body),
                &SendProps::default()
            ),
            "no entity {entity}"
        );
    }

    /// Messages in `path` (a queue, subscription or dead-letter sub-queue), in order.
    pub fn messages(&self, path: &str) -> Vec<StoredMessage> {
        let mut s = self.inner.state();
        s.maintain();
        s.stores
            .get(path)
            .map(|st| {
                st.messages
                    .values()
                    .map(|m| StoredMessage {
                        body: m.body.clone(),
                        message_id: m.id.clone(),
                        delivery_count: m.delivery_count,
                        properties: m.properties.clone(),
                        locked: m.lock.is_some(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bodies in `path`'s dead-letter sub-queue.
    pub fn dead_letter_bodies(&self, path: &str) -> Vec<Vec<u8>> {
        self.messages(&format!("{path}/{DLQ}"))
            .into_iter()
            .map(|m| m.body.to_vec())
            .collect()
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Requests refused with 401 so far.
    pub fn unauthorized(&self) -> u64 {
        self.inner.unauthorized.load(Ordering::Relaxed)
    }
}

// ------------------------------------------------------------------ handling

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn error(status: StatusCode, detail: &str) -> Reply {
    let body = format!(
        "<Error><Code>{}</Code><Detail>{detail} TrackingId:emulator</Detail></Error>",
        status.as_u16()
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/xml; charset=utf-8".parse().unwrap(),
    );
    r
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The right a request needs.
#[derive(Clone, Copy, PartialEq)]
enum Right {
    Send,
    Listen,
}

/// Checks the SAS token for `resource` (`ns.servicebus.windows.net/path`).
fn authorize(
    inner: &Inner,
    header: Option<&str>,
    resource: &str,
    right: Right,
) -> Result<(), String> {
    let header = header.ok_or("MissingToken: the request has no Authorization header.")?;
    let token = header
        .strip_prefix("SharedAccessSignature ")
        .ok_or("InvalidToken: not a SharedAccessSignature token.")?;
    let mut parts: HashMap<&str, &str> = HashMap::new();
    for pair in token.split('&') {
        let (k, v) = pair
            .split_once('=')
            .ok_or("InvalidToken: malformed token.")?;
        parts.insert(k, v);
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) = (
        parts.get("sr"),
        parts.get("sig"),
        parts.get("se"),
        parts.get("skn"),
    ) else {
        return Err("InvalidToken: sr, sig, se and skn are required.".into());
    };
    let skn = percent_decode(skn);
    let rule = inner
        .rules
        .iter()
        .find(|r| r.name == skn)
        .ok_or("InvalidSignature: unknown shared access key name.")?;
    let expiry: u64 = se
        .parse()
        .map_err(|_| "InvalidToken: se is not a number.")?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if expiry <= now {
        return Err("ExpiredToken: the token is expired.".into());
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(rule.key.as_bytes()).unwrap();
    mac.update(format!("{sr}\n{se}").as_bytes());
    let expected = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    if percent_decode(sig) != expected {
        return Err("InvalidSignature: the token has an invalid signature.".into());
    }
    let audience = percent_decode(sr).to_ascii_lowercase();
    let audience = audience
        .split_once("://")
        .map_or(audience.as_str(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned();
    let host = format!("{}.servicebus.windows.net", inner.namespace);
    let resource = resource.to_ascii_lowercase();
    let covers = audience.starts_with(&host)
        && (resource == audience || resource.starts_with(&format!("{audience}/")));
    if !covers {
        return Err(format!(
            "InvalidAudience: the token audience {audience} does not cover {resource}."
        ));
    }
    let allowed = match right {
        Right::Send => rule.send,
        Right::Listen => rule.listen,
    };
    if !allowed {
        return Err(format!(
            "Unauthorized access. '{}' claim(s) are required to perform this operation.",
            if right == Right::Send {
                "Send"
            } else {
                "Listen"
            }
        ));
    }
    Ok(())
}

/// What a path asks for.
enum Op {
    Send(String),
    Head(String),
    Lock {
        entity: String,
        reference: String,
        token: String,
    },
}

fn route(path: &str) -> Option<Op> {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let i = segments.iter().rposition(|s| s == "messages")?;
    if i == 0 {
        return None;
    }
    let entity = segments[..i].join("/");
    match &segments[i + 1..] {
        [] => Some(Op::Send(entity)),
        [head] if head == "head" => Some(Op::Head(entity)),
        [reference, token] => Some(Op::Lock {
            entity,
            reference: reference.clone(),
            token: token.clone(),
        }),
        _ => None,
    }
}

#[derive(Default)]
struct SendProps {
    message_id: Option<String>,
    label: Option<String>,
    correlation_id: Option<String>,
    ttl: Option<f64>,
    scheduled: Option<SystemTime>,
    content_type: Option<String>,
    properties: BTreeMap<String, String>,
}

/// Standard headers that are not custom properties.
const STANDARD_HEADERS: &[&str] = &[
    "authorization",
    "brokerproperties",
    "content-type",
    "content-length",
    "host",
    "accept",
    "accept-encoding",
    "user-agent",
    "connection",
    "x-ms-version",
    "transfer-encoding",
];

fn enqueue(state: &mut State, entity: &str, body: Bytes, props: &SendProps) -> bool {
    let targets: Vec<String> = if let Some(subs) = state.topics.get(entity) {
        subs.iter()
            .map(|s| format!("{entity}/subscriptions/{s}"))
            .collect()
    } else if state.stores.contains_key(entity) && !entity.contains('/') {
        vec![entity.to_owned()]
    } else {
        return false;
    };
    let now = SystemTime::now();
    for path in targets {
        state.next_seq += 1;
        let seq = state.next_seq;
        let id = props
            .message_id
            .clone()
            .unwrap_or_else(|| format!("{:032x}", u128::from(seq as u64) * 0x9e37_79b9_7f4a_7c15));
        let ttl = props.ttl.unwrap_or(922_337_203_685.477_5);
        let message = Message {
            seq,
            id,
            body: body.clone(),
            content_type: props.content_type.clone(),
            delivery_count: 0,
            enqueued: now,
            visible_from: props.scheduled.unwrap_or(now),
            expires: props.ttl.map(|t| now + Duration::from_secs_f64(t.max(0.0))),
            ttl_secs: ttl,
            label: props.label.clone(),
            correlation_id: props.correlation_id.clone(),
            properties: props.properties.clone(),
            lock: None,
            dead_letter_source: None,
        };
        if let Some(store) = state.stores.get_mut(&path) {
            store.messages.insert(seq, message);
        }
    }
    true
}

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

fn broker_properties(m: &Message, lock: Option<&Lock>) -> String {
    let mut p = serde_json::json!({
        "DeliveryCount": m.delivery_count,
        "EnqueuedSequenceNumber": 0,
        "EnqueuedTimeUtc": http_date(m.enqueued),
        "MessageId": m.id,
        "SequenceNumber": m.seq,
        "State": "Active",
        "TimeToLive": m.ttl_secs,
    });
    if let Some(l) = lock {
        p["LockToken"] = l.token.clone().into();
        p["LockedUntilUtc"] = http_date(l.until_wall).into();
    }
    if let Some(label) = &m.label {
        p["Label"] = label.clone().into();
    }
    if let Some(c) = &m.correlation_id {
        p["CorrelationId"] = c.clone().into();
    }
    if let Some(src) = &m.dead_letter_source {
        p["DeadLetterSource"] = src.clone().into();
    }
    p.to_string()
}

fn message_reply(
    status: StatusCode,
    m: &Message,
    lock: Option<&Lock>,
    location: Option<String>,
) -> Reply {
    let mut r = Response::new(Full::new(m.body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        "brokerproperties",
        broker_properties(m, lock).parse().unwrap(),
    );
    h.insert(
        "content-type",
        m.content_type
            .as_deref()
            .unwrap_or("application/atom+xml;type=entry;charset=utf-8")
            .parse()
            .unwrap(),
    );
    if let Some(loc) = location {
        h.insert("location", loc.parse().unwrap());
    }
    for (k, v) in &m.properties {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    r
}

async fn handle(inner: &Inner, req: Request<Incoming>) -> Reply {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Some(op) = route(&path) else {
        return error(StatusCode::BAD_REQUEST, "unknown operation");
    };
    let resource = format!(
        "{}.servicebus.windows.net{}",
        inner.namespace,
        percent_decode(&path)
    );
    let right = match (&op, &method) {
        (Op::Send(_), &Method::POST) => Right::Send,
        _ => Right::Listen,
    };
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if let Err(detail) = authorize(inner, auth, &resource, right) {
        inner.unauthorized.fetch_add(1, Ordering::Relaxed);
        return error(StatusCode::UNAUTHORIZED, &detail);
    }
    match (op, method) {
        (Op::Send(entity), Method::POST) => send(inner, &entity, &headers, body),
        (Op::Head(entity), Method::POST) => peek_lock(inner, &entity, &query).await,
        (Op::Head(entity), Method::DELETE) => receive_and_delete(inner, &entity, &query).await,
        (
            Op::Lock {
                entity,
                reference,
                token,
            },
            m,
        ) if m == Method::DELETE || m == Method::PUT || m == Method::POST => {
            settle(inner, &entity, &reference, &token, &m)
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

fn send(inner: &Inner, entity: &str, headers: &hyper::HeaderMap, body: Bytes) -> Reply {
    let mut props = SendProps::default();
    if let Some(bp) = headers.get("brokerproperties") {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bp.as_bytes()) else {
            return error(StatusCode::BAD_REQUEST, "BrokerProperties is not JSON.");
        };
        let text = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        props.message_id = text("MessageId");
        props.label = text("Label");
        props.correlation_id = text("CorrelationId");
        props.ttl = value.get("TimeToLive").and_then(|v| v.as_f64());
        props.scheduled =
            text("ScheduledEnqueueTimeUtc").and_then(|t| httpdate::parse_http_date(&t).ok());
    }
    props.content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    for (name, value) in headers {
        if STANDARD_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            props
                .properties
                .insert(name.as_str().to_owned(), v.to_owned());
        }
    }
    let mut state = inner.state();
    if enqueue(&mut state, entity, body, &props) {
        reply(StatusCode::CREATED)
    } else {
        error(
            StatusCode::NOT_FOUND,
            &format!("The messaging entity '{entity}' could not be found."),
        )
    }
}

/// The `timeout` query parameter (seconds, default 60); `None` if invalid.
fn timeout_of(query: &str) -> Option<Duration> {
    for pair in query.split('&') {
        if let Some(v) = pair.strip_prefix("timeout=") {
            return v.parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    Some(Duration::from_secs(60))
}

/// Waits up to the timeout for an available message; `take` decides what
/// happens to it (lock or delete) and builds the reply.
async fn wait_for_message(
    inner: &Inner,
    entity: &str,
    query: &str,
    take: impl Fn(&Inner, &mut Store, i64) -> Reply,
) -> Reply {
    let Some(timeout) = timeout_of(query) else {
        return error(StatusCode::BAD_REQUEST, "Invalid timeout.");
    };
    let until = Instant::now() + timeout;
    loop {
        {
            let mut state = inner.state();
            state.maintain();
            let Some(store) = state.stores.get_mut(entity) else {
                return error(
                    StatusCode::GONE,
                    &format!("The messaging entity '{entity}' does not exist."),
                );
            };
            let now = SystemTime::now();
            let next = store
                .messages
                .values()
                .find(|m| m.lock.is_none() && m.visible_from <= now)
                .map(|m| m.seq);
            if let Some(seq) = next {
                return take(inner, store, seq);
            }
        }
        if Instant::now() >= until {
            return reply(StatusCode::NO_CONTENT);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn peek_lock(inner: &Inner, entity: &str, query: &str) -> Reply {
    let host = format!("{}.servicebus.windows.net", inner.namespace);
    wait_for_message(inner, entity, query, |inner, store, seq| {
        let lock_duration = store.config.lock_duration;
        let m = store.messages.get_mut(&seq).expect("message");
        m.delivery_count += 1;
        let lock = Lock {
            token: inner.lock_token(),
            until: Instant::now() + lock_duration,
            until_wall: SystemTime::now() + lock_duration,
        };
        m.lock = Some(lock.clone());
        let location = format!(
            "https://{host}/{entity}/messages/{}/{}",
            encode_segment(&m.id),
            lock.token
        );
        message_reply(StatusCode::CREATED, m, Some(&lock), Some(location))
    })
    .await
}

async fn receive_and_delete(inner: &Inner, entity: &str, query: &str) -> Reply {
    wait_for_message(inner, entity, query, |_, store, seq| {
        let mut m = store.messages.remove(&seq).expect("message");
        m.delivery_count += 1;
        message_reply(StatusCode::OK, &m, None, None)
    })
    .await
}

fn settle(inner: &Inner, entity: &str, reference: &str, token: &str, method: &Method) -> Reply {
    let mut state = inner.state();
    state.maintain();
    let Some(store) = state.stores.get_mut(entity) else {
        return error(
            StatusCode::GONE,
            &format!("The messaging entity '{entity}' does not exist."),
        );
    };
    let found = store
        .messages
        .values()
        .find(|m| {
            m.lock.as_ref().is_some_and(|l| l.token == token)
                && (m.id == reference || m.seq.to_string() == reference)
        })
        .map(|m| m.seq);
    let Some(seq) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.",
        );
    };
    let max = store.config.max_delivery_count;
    if *method == Method::DELETE {
        store.messages.remove(&seq);
    } else if *method == Method::PUT {
        let m = store.messages.get_mut(&seq).expect("message");
        m.lock = None;
        if m.delivery_count >= max && !entity.ends_with(DLQ) {
            state.dead_letter(entity, seq, "MaxDeliveryCountExceeded");
        }
    } else {
        let lock_duration = store.config.lock_duration;
        let m = store.messages.get_mut(&seq).expect("message");
        if let Some(l) = &mut m.lock {
            l.until = Instant::now() + lock_duration;
            l.until_wall = SystemTime::now() + lock_duration;
        }
    }
    reply(StatusCode::OK)
}
