//! [`SqsSourceBuilder`]: where the queue is, how the client is made, and
//! the receive and settle settings, set in code or read through
//! [`SqsConfigKey`]s from the environment or any list of pairs; `build`
//! reports every configuration problem at once, then connects.

use super::dead_letter::{redrive_mode, redrive_target_url};
use super::error::SqsError;
use super::fifo::Groups;
use super::{BACKEND, DEFAULT_WAIT_SECS, MAX_VISIBILITY_SECS, MAX_WAIT_SECS, Shared, SqsSource};
use crate::aws::{AwsClientOptions, classify};
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::source::DeadLetterMode;
use crate::telemetry::{ApiCall, Stats, StatsSlot};
use aws_sdk_sqs::Client;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

config::config_keys! {
    /// The configuration keys of an [`SqsSourceBuilder`]
    /// ([`from_vars`](SqsSourceBuilder::from_vars),
    /// [`with_config`](SqsSourceBuilder::with_config)); each one's name is
    /// the environment variable [`from_env`](SqsSourceBuilder::from_env) reads.
    pub enum SqsConfigKey {
        /// `SQS_QUEUE_NAME`: the queue's name, resolved with `GetQueueUrl`
        /// (`SQS_QUEUE_URL` wins when both are set).
        QueueName = "SQS_QUEUE_NAME",
        /// `SQS_QUEUE_URL`: the queue's URL.
        QueueUrl = "SQS_QUEUE_URL",
        /// `AWS_ENDPOINT_URL`: an endpoint override (a local server such as moto).
        Endpoint = "AWS_ENDPOINT_URL",
        /// `SQS_DEAD_LETTER_QUEUE_URL`: park poison in this queue instead of
        /// relying on the redrive policy.
        DeadLetterQueueUrl = "SQS_DEAD_LETTER_QUEUE_URL",
        /// `SQS_VISIBILITY_TIMEOUT`: the visibility timeout, whole seconds.
        VisibilityTimeout = "SQS_VISIBILITY_TIMEOUT",
        /// `SQS_WAIT_TIME_SECONDS`: the long-poll wait, whole seconds.
        WaitTimeSeconds = "SQS_WAIT_TIME_SECONDS",
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
    requeue: bool,
    wait: Duration,
    visibility: Duration,
    flush_after: Option<Duration>,
    stats: Option<Arc<Stats>>,
    problems: Problems,
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
            .field("problems", &self.problems)
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
            requeue: true,
            wait: Duration::from_secs(DEFAULT_WAIT_SECS),
            visibility: Duration::from_secs(30),
            flush_after: None,
            stats: None,
            problems: Problems::default(),
        }
    }
}

impl SqsSourceBuilder {
    /// A builder with the defaults: 10 s long polling, 30 s visibility
    /// timeout, settles coalesced over a tenth of it, no dead-letter queue
    /// (the queue's redrive policy parks poison).
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
    /// `AWS_PROFILE`, `AWS_ACCESS_KEY_ID`...). Empty values count as unset;
    /// a bad value (a URL that is not one, a number that is not one) is
    /// reported by [`build`](Self::build), with every other problem.
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(SqsConfigKey);

    /// Sets one configuration value; a bad one is reported by
    /// [`build`](Self::build).
    pub fn with_config(mut self, key: SqsConfigKey, value: &str) -> Self {
        let mut problems = std::mem::take(&mut self.problems);
        let p = &mut problems;
        self = match key {
            SqsConfigKey::QueueName => self.set(
                p.parse(key, value, config::not_empty),
                Self::with_queue_name,
            ),
            SqsConfigKey::QueueUrl => {
                self.set(p.parse(key, value, config::http_url), Self::with_queue_url)
            }
            SqsConfigKey::Endpoint => {
                self.set(p.parse(key, value, config::http_url), Self::with_endpoint)
            }
            SqsConfigKey::DeadLetterQueueUrl => self.set(
                p.parse(key, value, config::http_url),
                Self::with_dead_letter_queue_url,
            ),
            SqsConfigKey::VisibilityTimeout => self.set(
                p.parse(key, value, config::seconds),
                Self::with_visibility_timeout,
            ),
            SqsConfigKey::WaitTimeSeconds => {
                self.set(p.parse(key, value, config::seconds), Self::with_wait)
            }
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
    /// attribute [`REASON_ATTRIBUTE`](super::REASON_ATTRIBUTE)) and deletes them from the source queue.
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

    /// Whether a retried or deferred delivery on a standard queue is
    /// re-queued as a new message (`SendMessage` with a delay, then a
    /// delete) rather than made visible again, so that its receive count —
    /// which the redrive policy dead-letters by — starts again and counts
    /// only what happens from then on; its failed attempts travel in
    /// [`ATTEMPTS_ATTRIBUTE`](super::ATTEMPTS_ATTRIBUTE). With a redrive
    /// policy, the source then parks dead letters in the policy's queue
    /// itself (found with `GetQueueUrl`; when it cannot be found, they are
    /// released for the policy as without re-queueing). Default on, for standard queues whose
    /// dead letters go by a redrive policy (the only case where receive
    /// counts dead-letter anything); FIFO queues always change the
    /// visibility.
    pub fn requeue_retries(mut self, yes: bool) -> Self {
        self.requeue = yes;
        self
    }

    /// How long a receive waits for messages (long polling); whole seconds,
    /// at most 20. Default 10 s: a worker killed while its receive waits
    /// leaves that receive alive in SQS, hiding what it takes for a
    /// visibility timeout; a shorter wait makes that rarer, at the cost of
    /// more empty receives while idle (6 a minute at 10 s, 3 at 20 s).
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

    /// How long an ack (or a nack) waits for others to share its
    /// `DeleteMessageBatch` (`ChangeMessageVisibilityBatch`) call. A batch is
    /// sent sooner when it holds 10, when every delivery handed out is
    /// settled or waiting in a batch, or when the source is closed; an
    /// extension waits at most 20 ms. Default: a tenth of the visibility
    /// timeout, between 5 ms and 5 s (3 s for the default 30 s).
    pub fn with_ack_flush_after(mut self, after: Duration) -> Self {
        self.flush_after = Some(after);
        self
    }

    /// Counts SQS API calls in `stats` from the start. Not needed with an
    /// engine: the engine hands the source its own stats when it is built
    /// ([`AlertSource::attach_stats`](crate::source::AlertSource::attach_stats)),
    /// with the calls counted until then.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Connects: builds the client and resolves the queue URL if a name was
    /// given. Fails with every configuration problem at once (bad values,
    /// no queue) before calling SQS.
    pub async fn build(self) -> Result<SqsSource> {
        const NO_QUEUE: &str = "no SQS queue: set SQS_QUEUE_URL or SQS_QUEUE_NAME, or give one";
        let mut problems = self.problems.clone();
        if self.queue.is_none() {
            problems.push(NO_QUEUE);
        }
        problems.check("SqsSourceBuilder")?;
        let queue = self
            .queue
            .clone()
            .ok_or_else(|| Error::Config(NO_QUEUE.into()))?;
        let slot = Arc::new(StatsSlot::new(self.stats.clone()));
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
                slot.count_api_call(ApiCall::SqsGetQueueUrl);
                let out = client
                    .get_queue_url()
                    .queue_name(&name)
                    .send()
                    .await
                    .map_err(|e| classify(BACKEND, "GetQueueUrl", e))?;
                out.queue_url()
                    .map(str::to_owned)
                    .ok_or(SqsError::NoQueueUrl { name })?
            }
        };
        let queue_name = queue_url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(&queue_url)
            .to_owned();
        let fifo = queue_name.ends_with(".fifo");
        let (dead_letter_mode, target) = if self.dead_letter_queue_url.is_some() {
            (DeadLetterMode::Native, None)
        } else {
            redrive_mode(&client, &queue_url, &slot).await?
        };
        // Receive counts dead-letter only through a redrive policy.
        let requeue = self.requeue && !fifo && dead_letter_mode == DeadLetterMode::Redrive;
        // Re-queued retries start their receive count again, so the policy
        // would only move poison after as many more receives: park it there
        // ourselves.
        let redrive_target_url = match target.filter(|_| requeue) {
            Some(arn) => redrive_target_url(&client, &arn, &slot).await,
            None => None,
        };
        Ok(SqsSource {
            name: format!("sqs:{queue_name}"),
            shared: Arc::new(Shared {
                client,
                queue_url,
                dead_letter_queue_url: self.dead_letter_queue_url,
                dead_letter_mode,
                wait: self.wait,
                visibility: self.visibility,
                flush_after: self
                    .flush_after
                    .unwrap_or_else(|| super::batcher::window_for(self.visibility)),
                fifo,
                requeue,
                redrive_target_url,
                slot,
                deleter: OnceLock::new(),
                visibility_changer: OnceLock::new(),
                outstanding: Default::default(),
                groups: Mutex::new(Groups::default()),
                invalid_receipts: AtomicU64::new(0),
            }),
        })
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
    fn the_default_wait_is_ten_seconds() {
        assert_eq!(SqsSourceBuilder::new().wait, Duration::from_secs(10));
    }

    #[test]
    fn wait_and_visibility_are_capped() {
        let b = SqsSourceBuilder::new()
            .with_wait(Duration::from_secs(60))
            .with_visibility_timeout(Duration::from_secs(0));
        assert_eq!(b.wait, Duration::from_secs(20));
        assert_eq!(b.visibility, Duration::from_secs(1));
    }

    #[test]
    fn values_are_read_by_their_key_names() {
        let b = SqsSourceBuilder::from_vars([
            ("SQS_QUEUE_NAME", "alerts"),
            (
                "SQS_QUEUE_URL",
                " http://localhost:4566/000000000000/alerts ",
            ),
            ("AWS_ENDPOINT_URL", "http://localhost:4566"),
            ("SQS_DEAD_LETTER_QUEUE_URL", ""),
            ("SQS_VISIBILITY_TIMEOUT", "45"),
            ("SQS_WAIT_TIME_SECONDS", "3"),
            ("UNRELATED", "whatever"),
        ]);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        assert_eq!(
            b.queue,
            Some(QueueRef::Url(
                "http://localhost:4566/000000000000/alerts".into()
            ))
        );
        assert_eq!(b.aws.endpoint(), Some("http://localhost:4566"));
        assert_eq!(b.dead_letter_queue_url, None);
        assert_eq!(b.visibility, Duration::from_secs(45));
        assert_eq!(b.wait, Duration::from_secs(3));
        let key: SqsConfigKey = "sqs_wait_time_seconds".parse().unwrap();
        assert_eq!(key, SqsConfigKey::WaitTimeSeconds);
        assert_eq!(b.with_config(key, "7").wait, Duration::from_secs(7));
    }

    #[tokio::test]
    async fn every_bad_value_is_reported_by_build_at_once() {
        let b = SqsSourceBuilder::from_vars([
            ("SQS_QUEUE_NAME", "alerts"),
            ("SQS_QUEUE_URL", "ftp://example.com/alerts"),
            ("AWS_ENDPOINT_URL", "localhost:4566"),
            ("SQS_DEAD_LETTER_QUEUE_URL", "https://"),
            ("SQS_VISIBILITY_TIMEOUT", "soon"),
            ("SQS_WAIT_TIME_SECONDS", "-1"),
        ])
        .with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value");
        let shown = format!("{b:?}");
        let e = b.build().await.expect_err("bad values").to_string();
        assert!(e.contains("SqsSourceBuilder: 5 problems"), "{e}");
        for key in [
            SqsConfigKey::QueueUrl,
            SqsConfigKey::Endpoint,
            SqsConfigKey::DeadLetterQueueUrl,
            SqsConfigKey::VisibilityTimeout,
            SqsConfigKey::WaitTimeSeconds,
        ] {
            assert!(e.contains(&format!("{key}: ")), "{key} missing: {e}");
        }
        for text in [&e, &shown] {
            assert!(!text.contains("s3cr3t-value"), "{text}");
            assert!(!text.contains("AKIAEXAMPLEKEYID"), "{text}");
        }
        let e = SqsSourceBuilder::new().build().await.unwrap_err();
        assert!(e.to_string().contains("SQS_QUEUE_URL"), "{e}");
    }

    #[test]
    fn builder_debug_hides_credentials() {
        let b = SqsSourceBuilder::new().with_static_credentials("AKIAEXAMPLEKEYID", "s3cr3t-value");
        let text = format!("{b:?}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("AKIAEXAMPLEKEYID"), "{text}");
    }
}
