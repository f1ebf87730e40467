//! The `prisma` planner (feature `prisma`): asks the Prisma Cloud remediation
//! API for each alert's CLI commands and turns them into a [`Plan`] through the
//! same [`parse_script_steps`](crate::plan::parse_script_steps) and [`CommandPolicy`] as every other script, so
//! whatever the parser refuses stays refused.
//!
//! What it does that the published script does not:
//!
//! * **TLS verification is always on** (rustls with the Mozilla roots; extra CA
//!   certificates may be added, verification cannot be turned off). Plain
//!   `http://` only when explicitly allowed, and only to a loopback host.
//! * **Batching**: the engine plans from many tasks at once; the ids of
//!   concurrent `plan` calls are coalesced by one background batcher into
//!   `POST /api/v1/permission/alert/remediation` requests of up to
//!   [`max_batch`](PrismaPlannerBuilder::with_max_batch) ids (grouped by policy,
//!   so the answer's `cliDescription` fits every alert of the request). A 400
//!   for a batch is asked again alert by alert, to isolate the bad one.
//! * **Tokens**: a static `AUTH_KEY`, or an access key pair that logs in
//!   (`POST /login`), extends the token (`GET /auth_token/extend`) well before
//!   its 10-minute lifetime, and logs in again once on a 401 `token_expired`.
//! * **Retries**: 429 (honouring `Retry-After` and the `X-RateLimit-*`
//!   headers), 408, 5xx, timeouts and connection errors are retried with
//!   jittered exponential backoff up to a bound; then the events fail with a
//!   temporary error, which the engine nacks (never acks, never dead-letters).
//!   A 401 after a fresh login ([`Unauthenticated`](crate::ErrorKind::Unauthenticated)),
//!   a 403 ([`PermissionDenied`](crate::ErrorKind::PermissionDenied)) or a
//!   refused login is a setup problem: reported once, nacked, and the API is
//!   not asked again until a cooldown has passed.
//! * **Telemetry**: every request counts in [`PrismaStats`] and, as an
//!   [`ApiCall`](crate::telemetry::ApiCall), in the engine's
//!   [`Stats`] once the engine attached them.
//!
//! An alert the API has no script for is skipped with `no_remediation`;
//! events that are not Prisma Cloud alerts are skipped with `no_remediation`
//! too, so a [`PlannerChain`](super::PlannerChain) can ask the next planner.
//!
//! Secrets (token, secret key) are held in [`Secret`] and appear in no
//! `Debug` output, log line, error or audit record.
//!
//! ```no_run
//! use remediation::planner::prisma::PrismaPlanner;
//!
//! # fn run() -> remediation::Result<()> {
//! // API_ENDPOINT=api2.eu, PRISMA_ACCESS_KEY_ID=..., PRISMA_SECRET_KEY=...
//! let planner = PrismaPlanner::builder_from_env().with_max_batch(50).build()?;
//! # Ok(()) }
//! ```

mod batcher;
mod builder;
mod client;
mod endpoint;
mod error;
mod stats;

pub use builder::{PrismaConfigKey, PrismaPlannerBuilder};
pub use stats::{PrismaStats, PrismaStatsSnapshot};

use super::RemediationPlanner;
use crate::error::Result;
use crate::model::Event;
use crate::plan::{CommandPolicy, parse_script_steps_for};
use crate::plan::{Decision, Plan, Skip, SkipReason, Step};
use crate::redact::Secret;
use crate::telemetry::{Backoff, Stats};
use async_trait::async_trait;
use client::ApiClient;
use error::PrismaError;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The backend name in errors and logs.
const BACKEND: &str = "prisma";

// The names of the `PrismaConfigKey`s, as constants (a unit test of the
// builder checks they match).
/// Environment variable ([`PrismaConfigKey::ApiEndpoint`]): the API endpoint
/// (URL or tenant name such as `api2.eu`).
pub const ENV_API_ENDPOINT: &str = "API_ENDPOINT";
/// Environment variable ([`PrismaConfigKey::AuthKey`]): a static token (as
/// in the published script).
pub const ENV_AUTH_KEY: &str = "AUTH_KEY";
/// Environment variable ([`PrismaConfigKey::AccessKeyId`]): the access key
/// id (logs in; preferred over `AUTH_KEY`).
pub const ENV_ACCESS_KEY_ID: &str = "PRISMA_ACCESS_KEY_ID";
/// Environment variable ([`PrismaConfigKey::SecretKey`]): the access key's secret.
pub const ENV_SECRET_KEY: &str = "PRISMA_SECRET_KEY";
/// Environment variable ([`PrismaConfigKey::CustomerName`]): the customer
/// (tenant) name, for multi-tenant logins.
pub const ENV_CUSTOMER_NAME: &str = "PRISMA_CUSTOMER_NAME";

/// How the planner authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// A token obtained elsewhere (`AUTH_KEY`). It is extended on schedule;
    /// once the API refuses it, it cannot be renewed.
    Token(Secret),
    /// An access key pair: logs in, extends, logs in again when needed.
    AccessKey {
        /// The access key id (the login's `username`).
        access_key_id: String,
        /// The secret key (the login's `password`).
        secret_key: Secret,
        /// The customer name, for users of several tenants.
        customer_name: Option<String>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(t) => f.debug_tuple("Token").field(t).finish(),
            Credentials::AccessKey {
                access_key_id,
                secret_key,
                customer_name,
            } => {
                // The id names the key; show enough to recognise it.
                let shown: String = access_key_id.chars().take(4).collect();
                f.debug_struct("AccessKey")
                    .field("access_key_id", &format_args!("{shown}…"))
                    .field("secret_key", secret_key)
                    .field("customer_name", customer_name)
                    .finish()
            }
        }
    }
}

/// Which remediation endpoint to ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemediationApi {
    /// `POST /api/v1/permission/alert/remediation` with many ids per request (default).
    #[default]
    V1Batch,
    /// `GET /iam/api/v2/alert/{id}/remediation_command`, one request per alert.
    V2PerAlert,
}

/// Which failures are retried, how often and how long apart.
///
/// Retried: HTTP 429, 408 and 5xx answers, timeouts and connection errors.
/// Not retried: every other answer (401 is handled by logging in again).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 4: five attempts in all).
    pub max_retries: u32,
    /// The delay schedule (default 500 ms doubling up to 20 s, ±50 % jitter).
    pub backoff: Backoff,
    /// The longest wait honoured (`Retry-After`, replenish time, backoff);
    /// asked to wait longer, the planner gives up at once with a temporary
    /// error and lets the engine nack. Default 60 s.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(20))
                .with_jitter(0.5),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// `max_retries` retries on the `backoff` schedule.
    pub fn new(max_retries: u32, backoff: Backoff) -> Self {
        RetryPolicy {
            max_retries,
            backoff,
            ..Self::default()
        }
    }

    /// Sets the longest wait honoured.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }
}

/// Plans Prisma Cloud alerts with the commands the Prisma Cloud remediation
/// API returns for them (see the [module docs](self)).
pub struct PrismaPlanner {
    shared: Arc<Shared>,
    /// Started by the first `plan`; dropping the planner closes the channel,
    /// and the batcher ends once its requests in flight have answered.
    batcher: OnceLock<mpsc::Sender<Lookup>>,
}

impl fmt::Debug for PrismaPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrismaPlanner")
            .field("client", &self.shared.client)
            .field("max_batch", &self.shared.max_batch)
            .field("batch_window", &self.shared.batch_window)
            .field("api", &self.shared.api)
            .finish_non_exhaustive()
    }
}

/// What the batcher and its requests share.
#[derive(Debug)]
struct Shared {
    client: ApiClient,
    policy: CommandPolicy,
    max_batch: usize,
    batch_window: Duration,
    max_concurrent_requests: usize,
    api: RemediationApi,
}

/// One alert waiting for its script.
#[derive(Debug)]
struct Lookup {
    /// Alerts are batched with others of the same policy.
    group: String,
    id: String,
    reply: oneshot::Sender<Answer>,
}

/// A script and its description, as the API returned them.
#[derive(Clone, Debug)]
struct Remedy {
    script: String,
    description: Option<String>,
}

/// The API's answer for one alert: a script, none, or a failure.
type Answer = std::result::Result<Option<Remedy>, PrismaError>;

impl PrismaPlanner {
    /// The planner name: `prisma`.
    pub const NAME: &'static str = "prisma";

    /// A builder with the defaults.
    pub fn builder() -> PrismaPlannerBuilder {
        PrismaPlannerBuilder::new()
    }

    /// A builder configured from the environment (see [`PrismaPlannerBuilder::from_env`]).
    pub fn builder_from_env() -> PrismaPlannerBuilder {
        PrismaPlannerBuilder::from_env()
    }

    /// The planner configured from the environment alone.
    pub fn from_env() -> Result<Self> {
        PrismaPlannerBuilder::from_env().build()
    }

    /// The API base URL in use.
    pub fn base_url(&self) -> &str {
        self.shared.client.base().as_str()
    }

    /// Checks the API credentials without planning anything (`remediate
    /// check`): logs in with the access key pair, or extends a static
    /// token; says which. Counted in the [stats](Self::stats).
    pub async fn verify_login(&self) -> Result<&'static str> {
        Ok(self.shared.client.verify().await?)
    }

    /// The API traffic counters.
    pub fn stats(&self) -> &Arc<PrismaStats> {
        &self.shared.client.stats
    }

    fn batcher(&self) -> &mpsc::Sender<Lookup> {
        self.batcher.get_or_init(|| {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(batcher::run_batcher(Arc::clone(&self.shared), rx));
            tx
        })
    }

    fn decide(&self, event: &Event, id: &str, answer: Answer) -> Result<Decision> {
        let remedy = match answer {
            Err(failure) => return Err(failure.into()),
            Ok(None) => {
                return Ok(Decision::Skip(Skip::new(
                    SkipReason::NoRemediation,
                    format!("Prisma Cloud has no remediation command for alert {id}"),
                )));
            }
            Ok(Some(remedy)) => remedy,
        };
        let target = event.target();
        let steps: Vec<Step> =
            parse_script_steps_for(&remedy.script, &self.shared.policy, Some(&target))?;
        if steps.is_empty() {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                format!("the remediation command for alert {id} holds no command"),
            )));
        }
        let mut plan = Plan::new(Self::NAME, target, steps);
        if let Some(description) = remedy.description {
            plan = plan.with_description(description);
        }
        Ok(Decision::Plan(plan))
    }
}

#[async_trait]
impl RemediationPlanner for PrismaPlanner {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn attach_stats(&self, stats: &Arc<Stats>) {
        self.shared.client.slot.attach(stats);
    }

    /// Yes: each call to the remediation API counts against its rate limit.
    fn wants_batches(&self) -> bool {
        true
    }

    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
        enum Waiting {
            NotPrisma,
            Stopped,
            Reply(oneshot::Receiver<Answer>),
        }
        let sender = self.batcher();
        // Enqueue every id first, so this call's ids share batches with
        // those of concurrent calls; then wait for the answers.
        let mut waiting = Vec::with_capacity(events.len());
        for event in events {
            let Event::PrismaAlert(alert) = event else {
                waiting.push(Waiting::NotPrisma);
                continue;
            };
            let (reply, answer) = oneshot::channel();
            let lookup = Lookup {
                group: alert.policy_id().unwrap_or_default().to_owned(),
                id: alert.id().to_owned(),
                reply,
            };
            waiting.push(match sender.send(lookup).await {
                Ok(()) => Waiting::Reply(answer),
                Err(_) => Waiting::Stopped,
            });
        }
        let mut decisions = Vec::with_capacity(events.len());
        for (event, waiting) in events.iter().zip(waiting) {
            let stopped = || {
                Err(PrismaError::Unavailable(
                    "the request batcher stopped (runtime shutting down?)".into(),
                )
                .into())
            };
            decisions.push(match waiting {
                Waiting::NotPrisma => Ok(Decision::Skip(Skip::new(
                    SkipReason::NoRemediation,
                    "the prisma planner only plans Prisma Cloud alerts",
                ))),
                Waiting::Stopped => stopped(),
                Waiting::Reply(answer) => match answer.await {
                    Ok(answer) => self.decide(event, event.alert_id().unwrap_or(""), answer),
                    Err(_) => stopped(),
                },
            });
        }
        decisions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::AccessKey {
            access_key_id: "0123456789abcdef".into(),
            secret_key: Secret::new("very-secret-value"),
            customer_name: Some("acme".into()),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        let t = format!("{:?}", Credentials::Token(Secret::new("eyJtoken")));
        assert!(!t.contains("eyJtoken"), "{t}");
    }

    #[tokio::test]
    async fn dropping_the_planner_ends_its_batcher() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let planner = PrismaPlanner::builder()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_token(Secret::new("t"))
            .with_retry(RetryPolicy::new(0, Backoff::default()))
            .build()
            .expect("planner");
        let event = crate::model::decode(br#"{"alertId":"P-1","accountId":"1"}"#)
            .expect("alert")
            .events;
        let decisions = planner.plan(&event).await;
        assert!(decisions[0].as_ref().is_err_and(crate::Error::is_temporary));
        let shared = Arc::downgrade(&planner.shared);
        drop(planner);
        // The batcher holds the only other reference; it must let go.
        for _ in 0..200 {
            if shared.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the batcher task outlived its planner");
    }
}
