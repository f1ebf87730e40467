//! [`ServiceBusSourceBuilder`] and its configuration keys
//! ([`ServiceBusConfigKey`]): namespace, entity and key from a connection
//! string or the `SB_QUEUE_*` names, checked by `build`, which reports every
//! problem at once and never a key.

use super::client::Shared;
use super::connection::{ConnectionString, namespace_name};
use super::endpoint::{EndpointOverride, check_endpoint};
use super::{MAX_LOCK, NAMESPACE_SUFFIX, ServiceBusSource};
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::redact::Secret;
use crate::telemetry::{Stats, StatsSlot};
use azure_core::HttpClient;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

config::config_keys! {
    /// The configuration keys of a [`ServiceBusSourceBuilder`]
    /// ([`from_vars`](ServiceBusSourceBuilder::from_vars),
    /// [`with_config`](ServiceBusSourceBuilder::with_config)); each one's
    /// name is the environment variable [`from_env`](ServiceBusSourceBuilder::from_env) reads.
    pub enum ServiceBusConfigKey {
        /// `SERVICEBUS_CONNECTION_STRING`: `Endpoint=sb://NS.servicebus.windows.net/;
        /// SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]` (a secret).
        ConnectionString = "SERVICEBUS_CONNECTION_STRING" => secret,
        /// `SB_QUEUE_NAME_SPACE`: the namespace, overriding the connection string's.
        Namespace = "SB_QUEUE_NAME_SPACE",
        /// `SB_QUEUE_NAME`: the entity (`QUEUE` or `TOPIC/subscriptions/SUB`),
        /// overriding the connection string's `EntityPath`.
        Entity = "SB_QUEUE_NAME",
        /// `SB_QUEUE_KEY_NAME`: the shared access policy name.
        KeyName = "SB_QUEUE_KEY_NAME",
        /// `SB_QUEUE_KEY`: the shared access key (a secret).
        Key = "SB_QUEUE_KEY" => secret,
        /// `SERVICEBUS_ENDPOINT`: send every call to this server
        /// (`http://127.0.0.1:PORT`, loopback only for plain http).
        Endpoint = "SERVICEBUS_ENDPOINT",
        /// `SERVICEBUS_DEAD_LETTER_QUEUE`: forward poison to this queue.
        DeadLetterQueue = "SERVICEBUS_DEAD_LETTER_QUEUE",
        /// `SERVICEBUS_WAIT_SECONDS`: the peek-lock wait, whole seconds.
        Wait = "SERVICEBUS_WAIT_SECONDS",
        /// `SERVICEBUS_LOCK_DURATION_SECONDS`: the entity's lock duration, whole seconds.
        LockDuration = "SERVICEBUS_LOCK_DURATION_SECONDS",
    }
}

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
    /// Configuration problems found by setters, reported by `build`.
    problems: Problems,
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
            .field("problems", &self.problems)
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
            problems: Problems::default(),
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

    /// A builder configured from the environment ([`ServiceBusConfigKey`]):
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
    /// [`build`](Self::build), all at once, never with the key.
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(ServiceBusConfigKey);

    /// Sets one configuration value; a bad one is reported by
    /// [`build`](Self::build) (a secret's value never is).
    pub fn with_config(mut self, key: ServiceBusConfigKey, value: &str) -> Self {
        match key {
            ServiceBusConfigKey::ConnectionString => self.with_connection_string(value),
            ServiceBusConfigKey::Namespace => self.with_namespace(value),
            ServiceBusConfigKey::Entity => self.with_entity_path(value),
            ServiceBusConfigKey::KeyName => {
                self.key_name = Some(value.to_owned());
                self
            }
            ServiceBusConfigKey::Key => {
                self.key = Some(Secret::new(value));
                self
            }
            ServiceBusConfigKey::Endpoint => self.with_endpoint(value),
            ServiceBusConfigKey::DeadLetterQueue => self.with_dead_letter_queue(value),
            ServiceBusConfigKey::Wait => match self.problems.parse(key, value, config::seconds) {
                Some(wait) => self.with_wait(wait),
                None => self,
            },
            ServiceBusConfigKey::LockDuration => {
                match self.problems.parse(key, value, config::seconds) {
                    Some(lock) => self.with_lock_duration(lock),
                    None => self,
                }
            }
        }
    }

    /// Namespace, key name, key and (if it names one) the entity from a
    /// connection string.
    pub fn with_connection_string(mut self, text: &str) -> Self {
        match ConnectionString::parse_text(text) {
            Ok(cs) => {
                self.namespace = Some(cs.namespace);
                self.key_name = Some(cs.key_name);
                self.key = Some(cs.key);
                if let Some(entity) = cs.entity_path {
                    self.entity = Some(entity);
                }
            }
            // The problem names the key, never the string (it holds the key).
            Err(problem) => self.problems.push(problem),
        }
        self
    }

    /// The namespace: `NAME`, `NAME.servicebus.windows.net` or `sb://NAME.servicebus.windows.net/`.
    pub fn with_namespace(mut self, namespace: impl AsRef<str>) -> Self {
        match namespace_name(namespace.as_ref()) {
            Ok(ns) => self.namespace = Some(ns),
            Err(e) => self
                .problems
                .push(format!("{}: {e}", ServiceBusConfigKey::Namespace)),
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
    /// speaking the Service Bus REST protocol) instead of Azure. Plain `http`
    /// is allowed for loopback hosts only; a bad endpoint is reported by
    /// [`build`](Self::build).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        if let Err(problem) = check_endpoint(&endpoint) {
            self.problems.push(problem);
        }
        self.endpoint = Some(endpoint);
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
    /// the custom properties [`REASON_PROPERTY`](super::REASON_PROPERTY) and
    /// [`SOURCE_MESSAGE_ID_PROPERTY`](super::SOURCE_MESSAGE_ID_PROPERTY)), then completes the original.
    ///
    /// Without one, a dead letter is unlocked and the entity's
    /// `MaxDeliveryCount` moves it to the entity's `$DeadLetterQueue` once its
    /// delivery count is used up ([`DeadLetterMode::Redrive`](crate::source::DeadLetterMode::Redrive)); the engine
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

    /// Counts Service Bus calls in `stats` (pass the engine's handle; an
    /// engine attaches its own otherwise).
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Checks the configuration and builds the source: every problem is
    /// reported at once, as one [`Config`](crate::ErrorKind::Config) error.
    /// No call is made: a wrong key shows on the first receive, as a
    /// permanent error naming the namespace and entity.
    pub fn build(self) -> Result<ServiceBusSource> {
        let mut problems = self.problems;
        let at = match &self.namespace {
            Some(ns) => format!("namespace {ns}: "),
            None => {
                problems
                    .push("no namespace: set SB_QUEUE_NAME_SPACE or SERVICEBUS_CONNECTION_STRING");
                String::new()
            }
        };
        let entity = self
            .entity
            .map(|e| e.trim().trim_matches('/').to_owned())
            .filter(|e| !e.is_empty());
        match &entity {
            None => problems.push(format!(
                "{at}no queue or subscription: set SB_QUEUE_NAME (QUEUE or \
                 TOPIC/subscriptions/SUB) or EntityPath in the connection string"
            )),
            Some(entity) => {
                if let Err(e) = check_entity_path(entity) {
                    problems.push(format!("{at}{e}"));
                }
            }
        }
        if self.key_name.is_none() {
            problems.push(format!(
                "{at}no key name: set SB_QUEUE_KEY_NAME or SERVICEBUS_CONNECTION_STRING"
            ));
        }
        if self.key.is_none() {
            problems.push(format!(
                "{at}no key: set SB_QUEUE_KEY or SERVICEBUS_CONNECTION_STRING"
            ));
        }
        if let Some(dlq) = &self.dead_letter_queue {
            if dlq.contains('/') || dlq.trim().is_empty() {
                problems.push(format!(
                    "{at}the dead-letter queue {dlq:?} must be a queue name"
                ));
            }
        }
        problems.check("Service Bus")?;
        let (Some(namespace), Some(entity), Some(key_name), Some(key)) =
            (self.namespace, entity, self.key_name, self.key)
        else {
            return Err(Error::Config(
                "Service Bus: incomplete configuration".into(),
            ));
        };
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
                slot: StatsSlot::new(self.stats),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::source::AlertSource;

    const KEY: &str = "c2VjcmV0LWtleS12YWx1ZS1mb3ItdGVzdHM9PQ==";

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

    #[test]
    fn from_vars_reads_the_environment_names_and_the_script_names_win() {
        let source = ServiceBusSourceBuilder::from_vars([
            (
                "SERVICEBUS_CONNECTION_STRING",
                format!(
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey={KEY};EntityPath=from-cs"
                ),
            ),
            ("sb_queue_name", "t/subscriptions/s".to_owned()),
            ("SERVICEBUS_ENDPOINT", "http://127.0.0.1:5000".to_owned()),
            ("SERVICEBUS_WAIT_SECONDS", "3".to_owned()),
            ("SERVICEBUS_LOCK_DURATION_SECONDS", "30".to_owned()),
            ("SERVICEBUS_DEAD_LETTER_QUEUE", "parked".to_owned()),
            ("UNRELATED", "x".to_owned()),
        ])
        .build()
        .unwrap();
        assert_eq!(source.name(), "servicebus:ns/t/subscriptions/s");
        assert_eq!(source.shared.wait, Duration::from_secs(3));
        assert_eq!(source.lock_duration(), Duration::from_secs(30));
        assert_eq!(source.shared.dead_letter_queue.as_deref(), Some("parked"));
        assert_eq!(
            "sb_queue_key".parse::<ServiceBusConfigKey>().unwrap(),
            ServiceBusConfigKey::Key
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once_and_no_secret_is_shown() {
        let key = "s3cr3t-sb-key-value";
        let cs_key = "c2VjcmV0LWluLWEtYmFkLWNvbm5lY3Rpb24tc3RyaW5n";
        let b = ServiceBusSourceBuilder::from_vars([
            // A secret that does not parse.
            (
                "SERVICEBUS_CONNECTION_STRING",
                format!("garbage;SharedAccessKey={cs_key}"),
            ),
            // Text with a syntax: a namespace, an entity, a queue name.
            ("SB_QUEUE_NAME_SPACE", "bad_ns!".to_owned()),
            ("SB_QUEUE_NAME", "a/b".to_owned()),
            ("SERVICEBUS_DEAD_LETTER_QUEUE", "q/x".to_owned()),
            ("SB_QUEUE_KEY_NAME", "r".to_owned()),
            // A secret that is fine: it must not show either.
            ("SB_QUEUE_KEY", key.to_owned()),
            // A URL.
            ("SERVICEBUS_ENDPOINT", "http://sb.example.com".to_owned()),
            // Numbers of seconds.
            ("SERVICEBUS_WAIT_SECONDS", "soon".to_owned()),
            ("SERVICEBUS_LOCK_DURATION_SECONDS", "1.5".to_owned()),
        ]);
        let debug = format!("{b:?}");
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        // The seven bad values, and the namespace therefore missing.
        assert!(text.contains("Service Bus: 8 problems"), "{text}");
        for name in [
            "SERVICEBUS_CONNECTION_STRING",
            "SB_QUEUE_NAME_SPACE",
            "\"a/b\" is not an entity path",
            "the dead-letter queue \"q/x\"",
            "SERVICEBUS_ENDPOINT",
            "SERVICEBUS_WAIT_SECONDS",
            "SERVICEBUS_LOCK_DURATION_SECONDS",
            "no namespace",
        ] {
            assert!(text.contains(name), "{name:?} missing from {text}");
        }
        for shown in [&text, &debug] {
            for secret in [key, cs_key] {
                assert!(!shown.contains(secret), "{secret:?} leaked: {shown}");
            }
        }
    }
}
