//! [`PubSubSourceBuilder`]: which subscription, how the clients reach
//! Pub/Sub (endpoint, emulator, credentials), flow control and leases, set
//! in code or read through [`PubSubConfigKey`]s from the environment or any
//! list of pairs; `build` reports every configuration problem at once, then
//! builds the clients (calling nothing).

use super::error::PubSubError;
use super::reader::{Reader, ReaderState, Shared};
use super::{HANDOFF, PubSubSource};
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::telemetry::{Stats, StatsSlot};
use google_cloud_auth::credentials::Credentials;
use google_cloud_pubsub::client::{Publisher, Subscriber};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A whole number (`0` is taken as the least the setter accepts).
fn whole_number(text: &str) -> std::result::Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| "not a whole number".to_owned())
}

/// What `PUBSUB_EMULATOR_HOST` holds: `HOST:PORT`, or an http(s) URL.
fn emulator_host(text: &str) -> std::result::Result<String, String> {
    if text.starts_with("http://") || text.starts_with("https://") {
        return config::http_url(text);
    }
    match text.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok() =>
        {
            Ok(text.to_owned())
        }
        _ => Err("not HOST:PORT".to_owned()),
    }
}

/// Checks a `projects/P/subscriptions/S` or `projects/P/topics/T` name.
pub(super) fn check_resource(name: &str, kind: &str) -> std::result::Result<(), String> {
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
        Err(format!(
            "invalid Pub/Sub {} name {:?}: expected projects/PROJECT/{kind}/NAME",
            kind.trim_end_matches('s'),
            name.chars().take(200).collect::<String>()
        ))
    }
}

config::config_keys! {
    /// The configuration keys of a [`PubSubSourceBuilder`]
    /// ([`from_vars`](PubSubSourceBuilder::from_vars),
    /// [`with_config`](PubSubSourceBuilder::with_config)); each one's name is
    /// the environment variable [`from_env`](PubSubSourceBuilder::from_env) reads.
    pub enum PubSubConfigKey {
        /// `PUBSUB_PROJECT_ID` (or `GOOGLE_CLOUD_PROJECT`; `PUBSUB_PROJECT_ID`
        /// wins when both are set): the project of a bare subscription or
        /// topic name.
        ProjectId = "PUBSUB_PROJECT_ID" ["GOOGLE_CLOUD_PROJECT"],
        /// `PUBSUB_SUBSCRIPTION`: `projects/P/subscriptions/S`, or a bare `S`.
        Subscription = "PUBSUB_SUBSCRIPTION",
        /// `PUBSUB_EMULATOR_HOST`: `HOST:PORT` of an emulator (plain HTTP/2,
        /// anonymous credentials).
        EmulatorHost = "PUBSUB_EMULATOR_HOST",
        /// `PUBSUB_DEAD_LETTER_TOPIC`: `projects/P/topics/T` (or a bare `T`):
        /// publish poison there instead of relying on the subscription's
        /// dead-letter policy.
        DeadLetterTopic = "PUBSUB_DEAD_LETTER_TOPIC",
        /// `PUBSUB_MAX_OUTSTANDING_MESSAGES`: flow control, messages.
        MaxOutstandingMessages = "PUBSUB_MAX_OUTSTANDING_MESSAGES",
        /// `PUBSUB_MAX_OUTSTANDING_BYTES`: flow control, bytes.
        MaxOutstandingBytes = "PUBSUB_MAX_OUTSTANDING_BYTES",
        /// `PUBSUB_MAX_LEASE`: the maximum lease, whole seconds.
        MaxLease = "PUBSUB_MAX_LEASE",
        /// `PUBSUB_MAX_LEASE_EXTENSION`: the lease extension, whole seconds.
        MaxLeaseExtension = "PUBSUB_MAX_LEASE_EXTENSION",
        /// `PUBSUB_MAX_NACK_DELAY`: the longest `nack(delay)` hold, whole seconds.
        MaxNackDelay = "PUBSUB_MAX_NACK_DELAY",
    }
}

/// Builds a [`PubSubSource`]. Only [`build`](Self::build) can fail.
///
/// Credentials come from Application Default Credentials (the client's
/// default) unless set here or an emulator is configured.
#[derive(Clone)]
pub struct PubSubSourceBuilder {
    pub(super) subscription: Option<String>,
    project: Option<String>,
    pub(super) endpoint: Option<String>,
    credentials: Option<Credentials>,
    pub(super) anonymous: bool,
    pub(super) dead_letter_topic: Option<String>,
    pub(super) max_outstanding_messages: i64,
    pub(super) max_outstanding_bytes: i64,
    pub(super) max_lease: Duration,
    pub(super) max_lease_extension: Duration,
    pub(super) max_nack_delay: Duration,
    wait: Duration,
    stats: Option<Arc<Stats>>,
    pub(super) problems: Problems,
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
            .field("problems", &self.problems)
            .finish_non_exhaustive()
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
            stats: None,
            problems: Problems::default(),
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
    ///   with the project from `PUBSUB_PROJECT_ID` or `GOOGLE_CLOUD_PROJECT`
    ///   (`PUBSUB_PROJECT_ID` wins);
    /// * `PUBSUB_EMULATOR_HOST` — `HOST:PORT` of an emulator: every client
    ///   talks plain HTTP/2 to it with anonymous credentials (as Google's
    ///   other client libraries do);
    /// * `PUBSUB_DEAD_LETTER_TOPIC` — `projects/P/topics/T`: publish poison
    ///   there instead of relying on the subscription's dead-letter policy;
    /// * `PUBSUB_MAX_OUTSTANDING_MESSAGES`, `PUBSUB_MAX_OUTSTANDING_BYTES` —
    ///   flow control, whole numbers;
    /// * `PUBSUB_MAX_LEASE`, `PUBSUB_MAX_LEASE_EXTENSION`,
    ///   `PUBSUB_MAX_NACK_DELAY` — whole seconds.
    ///
    /// Credentials otherwise come from Application Default Credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud ADC file, the metadata
    /// server). Empty values count as unset; a bad value (a number that is
    /// not one, an emulator host without a port) is reported by
    /// [`build`](Self::build), with every other problem.
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(PubSubConfigKey);

    /// Sets one configuration value; a bad one is reported by
    /// [`build`](Self::build).
    pub fn with_config(mut self, key: PubSubConfigKey, value: &str) -> Self {
        let mut problems = std::mem::take(&mut self.problems);
        let p = &mut problems;
        self = match key {
            PubSubConfigKey::ProjectId => {
                self.set(p.parse(key, value, config::not_empty), Self::with_project)
            }
            PubSubConfigKey::Subscription => self.set(
                p.parse(key, value, config::not_empty),
                Self::with_subscription,
            ),
            PubSubConfigKey::EmulatorHost => {
                self.set(p.parse(key, value, emulator_host), Self::with_emulator_host)
            }
            PubSubConfigKey::DeadLetterTopic => self.set(
                p.parse(key, value, config::not_empty),
                Self::with_dead_letter_topic,
            ),
            PubSubConfigKey::MaxOutstandingMessages => self.set(
                p.parse(key, value, whole_number),
                Self::with_max_outstanding_messages,
            ),
            PubSubConfigKey::MaxOutstandingBytes => self.set(
                p.parse(key, value, whole_number),
                Self::with_max_outstanding_bytes,
            ),
            PubSubConfigKey::MaxLease => {
                self.set(p.parse(key, value, config::seconds), Self::with_max_lease)
            }
            PubSubConfigKey::MaxLeaseExtension => self.set(
                p.parse(key, value, config::seconds),
                Self::with_max_lease_extension,
            ),
            PubSubConfigKey::MaxNackDelay => self.set(
                p.parse(key, value, config::seconds),
                Self::with_max_nack_delay,
            ),
        };
        self.problems = problems;
        self
    }

    /// Applies `set` with a value that parsed; nothing for one that did not.
    fn set<T>(self, parsed: Option<T>, set: impl FnOnce(Self, T) -> Self) -> Self {
        match parsed {
            Some(value) => set(self, value),
            None => self,
        }
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
    /// [`REASON_ATTRIBUTE`](super::REASON_ATTRIBUTE), then acks them:
    /// [`DeadLetterOutcome::Parked`](crate::source::DeadLetterOutcome::Parked).
    ///
    /// Without one, a dead letter is nacked when the subscription has a
    /// dead-letter policy (Pub/Sub moves it to the policy's topic after its
    /// `maxDeliveryAttempts`:
    /// [`DeadLetterOutcome::LeftToRedrive`](crate::source::DeadLetterOutcome::LeftToRedrive));
    /// a subscription without a policy cannot park it, so it is acked and its
    /// body lives on in the audit record
    /// ([`DeadLetterOutcome::AuditOnly`](crate::source::DeadLetterOutcome::AuditOnly)).
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

    /// Counts the source's Pub/Sub calls in `stats` from the start. Not
    /// needed with an engine: the engine hands the source its own stats when
    /// it is built
    /// ([`AlertSource::attach_stats`](crate::source::AlertSource::attach_stats)).
    /// What is counted: see [`PubSubSource::stats`].
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    pub(super) fn qualify(&self, name: &str, kind: &str) -> std::result::Result<String, String> {
        if name.contains('/') {
            return Ok(name.to_owned());
        }
        match &self.project {
            Some(p) => Ok(format!("projects/{p}/{kind}/{name}")),
            None => Err(format!(
                "Pub/Sub {} {name:?} has no project: give projects/PROJECT/{kind}/{name}, \
                 or set PUBSUB_PROJECT_ID",
                kind.trim_end_matches('s')
            )),
        }
    }

    /// The full name of the `kind` resource `name`, or a problem recorded.
    fn resource(&self, name: &str, kind: &str, problems: &mut Problems) -> Option<String> {
        let full = self
            .qualify(name, kind)
            .and_then(|full| check_resource(&full, kind).map(|()| full));
        match full {
            Ok(full) => Some(full),
            Err(problem) => {
                problems.push(problem);
                None
            }
        }
    }

    fn credentials(&self) -> Option<Credentials> {
        if self.anonymous {
            Some(google_cloud_auth::credentials::anonymous::Builder::new().build())
        } else {
            self.credentials.clone()
        }
    }

    /// Builds the clients. Fails with every configuration problem at once
    /// (bad values, no subscription, names that are not Pub/Sub names).
    /// Does not call Pub/Sub: a missing subscription is reported by the
    /// first `receive`.
    pub async fn build(self) -> Result<PubSubSource> {
        const NO_SUBSCRIPTION: &str = "no Pub/Sub subscription: set PUBSUB_SUBSCRIPTION \
                                       (projects/PROJECT/subscriptions/NAME), or give one";
        let mut problems = self.problems.clone();
        let subscription = match &self.subscription {
            Some(s) => self.resource(s, "subscriptions", &mut problems),
            None => {
                problems.push(NO_SUBSCRIPTION);
                None
            }
        };
        let dead_letter_topic = match &self.dead_letter_topic {
            Some(t) => self.resource(t, "topics", &mut problems),
            None => None,
        };
        problems.check("PubSubSourceBuilder")?;
        let subscription = subscription.ok_or_else(|| Error::Config(NO_SUBSCRIPTION.into()))?;
        let credentials = self.credentials();
        let slot = Arc::new(StatsSlot::new(self.stats.clone()));

        let mut sb = Subscriber::builder();
        if let Some(e) = &self.endpoint {
            sb = sb.with_endpoint(e.clone());
        }
        if let Some(c) = &credentials {
            sb = sb.with_credentials(c.clone());
        }
        let subscriber = sb.build().await.map_err(|e| PubSubError::Client {
            what: "building the subscriber client",
            cause: e.to_string(),
        })?;

        let publisher = match &dead_letter_topic {
            Some(topic) => {
                let mut pb = Publisher::builder(topic.clone());
                if let Some(e) = &self.endpoint {
                    pb = pb.with_endpoint(e.clone());
                }
                if let Some(c) = &credentials {
                    pb = pb.with_credentials(c.clone());
                }
                Some(pb.build().await.map_err(|e| PubSubError::Client {
                    what: "building the dead-letter publisher",
                    cause: e.to_string(),
                })?)
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
            slot: Arc::clone(&slot),
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
                slot,
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
