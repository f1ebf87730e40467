//! The `prisma` planner (feature `prisma`): asks the Prisma Cloud remediation
//! API for each alert's CLI commands and turns them into a [`Plan`] through the
//! same [`parse_script_steps`] and [`CommandPolicy`] as every other script, so
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
//!   A 401 after a fresh login, or a 403, is a configuration error: reported
//!   once, nacked, and the API is not asked again until a cooldown has passed.
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

mod client;
mod endpoint;
mod stats;

pub use stats::{PrismaStats, PrismaStatsSnapshot};

use super::RemediationPlanner;
use crate::error::{Error, Result};
use crate::model::Event;
use crate::plan::{CommandPolicy, parse_script_steps};
use crate::plan::{Decision, Plan, Skip, SkipReason, Step};
use crate::redact::Secret;
use crate::telemetry::{Backoff, Stats};
use async_trait::async_trait;
use client::{ApiClient, Failure, Reply, TokenTiming};
use reqwest::Method;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

/// Environment variable: the API endpoint (URL or tenant name such as `api2.eu`).
pub const ENV_API_ENDPOINT: &str = "API_ENDPOINT";
/// Environment variable: a static token (as in the published script).
pub const ENV_AUTH_KEY: &str = "AUTH_KEY";
/// Environment variable: the access key id (logs in; preferred over `AUTH_KEY`).
pub const ENV_ACCESS_KEY_ID: &str = "PRISMA_ACCESS_KEY_ID";
/// Environment variable: the access key's secret.
pub const ENV_SECRET_KEY: &str = "PRISMA_SECRET_KEY";
/// Environment variable: the customer (tenant) name, for multi-tenant logins.
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

/// Builds a [`PrismaPlanner`]. Only [`build`](Self::build) can fail.
#[derive(Debug, Clone)]
pub struct PrismaPlannerBuilder {
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    allow_http: bool,
    ca_bundles: Vec<PathBuf>,
    policy: CommandPolicy,
    max_batch: usize,
    batch_window: Duration,
    max_concurrent_requests: usize,
    token_lifetime: Duration,
    refresh_margin: Duration,
    retry: RetryPolicy,
    request_timeout: Duration,
    connect_timeout: Duration,
    api: RemediationApi,
    config_cooldown: Duration,
    engine_stats: Option<Arc<Stats>>,
    env_problem: Option<String>,
}

impl Default for PrismaPlannerBuilder {
    fn default() -> Self {
        PrismaPlannerBuilder {
            endpoint: None,
            credentials: None,
            allow_http: false,
            ca_bundles: Vec::new(),
            policy: CommandPolicy::default(),
            max_batch: 50,
            batch_window: Duration::from_millis(20),
            max_concurrent_requests: 4,
            token_lifetime: Duration::from_secs(10 * 60),
            refresh_margin: Duration::from_secs(5 * 60),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            api: RemediationApi::default(),
            config_cooldown: Duration::from_secs(60),
            engine_stats: None,
            env_problem: None,
        }
    }
}

impl PrismaPlannerBuilder {
    /// A builder with the defaults and no endpoint or credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the process environment: `API_ENDPOINT`,
    /// `AUTH_KEY`, `PRISMA_ACCESS_KEY_ID`, `PRISMA_SECRET_KEY`,
    /// `PRISMA_CUSTOMER_NAME` (see [`from_vars`](Self::from_vars)).
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    /// A builder configured from `vars` (name, value pairs; other names are
    /// ignored, empty values count as unset). The key pair wins over
    /// `AUTH_KEY` when both are set, since it can log in again; half a key
    /// pair is reported by [`build`](Self::build).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut found: HashMap<&'static str, String> = HashMap::new();
        let known = [
            ENV_API_ENDPOINT,
            ENV_AUTH_KEY,
            ENV_ACCESS_KEY_ID,
            ENV_SECRET_KEY,
            ENV_CUSTOMER_NAME,
        ];
        for (k, v) in vars {
            if let Some(name) = known.iter().find(|n| **n == k.as_ref()) {
                let v: String = v.into();
                if !v.trim().is_empty() {
                    found.insert(name, v);
                }
            }
        }
        let mut builder = PrismaPlannerBuilder {
            endpoint: found.remove(ENV_API_ENDPOINT),
            ..Self::default()
        };
        let id = found.remove(ENV_ACCESS_KEY_ID);
        let secret = found.remove(ENV_SECRET_KEY).map(Secret::new);
        let customer = found.remove(ENV_CUSTOMER_NAME);
        let token = found.remove(ENV_AUTH_KEY).map(Secret::new);
        builder.credentials = match (id, secret, token) {
            (Some(access_key_id), Some(secret_key), _) => Some(Credentials::AccessKey {
                access_key_id: access_key_id.trim().to_owned(),
                secret_key,
                customer_name: customer,
            }),
            (Some(_), None, _) | (None, Some(_), _) => {
                builder.env_problem = Some(format!(
                    "{ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} must be set together"
                ));
                None
            }
            (None, None, Some(token)) => Some(Credentials::Token(token)),
            (None, None, None) => None,
        };
        builder
    }

    /// The API endpoint: a full `https://` URL or a tenant name (`api`,
    /// `api2`, `api.eu`, `api2.eu`, `api.gov`, `app2`... — `app` hosts map to
    /// the matching `api` host).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Authenticates with a static token (`AUTH_KEY`).
    pub fn with_token(mut self, token: Secret) -> Self {
        self.credentials = Some(Credentials::Token(token));
        self
    }

    /// Authenticates with an access key pair (logs in, refreshes, re-logs in).
    pub fn with_access_key(
        mut self,
        access_key_id: impl Into<String>,
        secret_key: Secret,
        customer_name: Option<String>,
    ) -> Self {
        self.credentials = Some(Credentials::AccessKey {
            access_key_id: access_key_id.into(),
            secret_key,
            customer_name,
        });
        self
    }

    /// Sets the credentials.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Allows a plain `http://` endpoint on a loopback host (local tests
    /// against a mock). Non-loopback `http://` endpoints are refused anyway.
    pub fn with_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Trusts the CA certificates in a PEM file too (a TLS-inspecting proxy),
    /// in addition to the built-in roots. Verification stays on.
    pub fn with_ca_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundles.push(path.into());
        self
    }

    /// The policy scripts are parsed with (default: [`CommandPolicy::default`]).
    pub fn with_policy(mut self, policy: CommandPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The most alert ids per remediation request (default 50, at least 1).
    pub fn with_max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// How long the batcher waits for more ids after the first of a batch
    /// (default 20 ms). Zero sends what has arrived at once.
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.batch_window = window;
        self
    }

    /// The most remediation requests in flight at once (default 4, at least 1).
    pub fn with_max_concurrent_requests(mut self, n: usize) -> Self {
        self.max_concurrent_requests = n.max(1);
        self
    }

    /// How long a token lives (default 10 minutes, as Prisma Cloud's JWT).
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// How long before expiry the token is extended (default 5 minutes).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The limit for one HTTP request, answer included (default 30 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The limit for opening a connection (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Which remediation endpoint to ask (default: the v1 batch endpoint).
    pub fn with_api(mut self, api: RemediationApi) -> Self {
        self.api = api;
        self
    }

    /// After a configuration failure (401 after a fresh login, 403, refused
    /// login), how long calls fail at once without asking the API (default 60 s).
    pub fn with_config_cooldown(mut self, cooldown: Duration) -> Self {
        self.config_cooldown = cooldown;
        self
    }

    /// Also counts every request in the engine's stats
    /// (`prisma.remediation`, `prisma.login`, `prisma.auth_token_extend`).
    pub fn with_engine_stats(mut self, stats: Arc<Stats>) -> Self {
        self.engine_stats = Some(stats);
        self
    }

    /// Checks the configuration and builds the planner. Needs no runtime; the
    /// batcher task starts with the first [`plan`](RemediationPlanner::plan).
    pub fn build(self) -> Result<PrismaPlanner> {
        if let Some(problem) = self.env_problem {
            return Err(Error::Config(problem));
        }
        let endpoint = self.endpoint.ok_or_else(|| {
            Error::Config(format!(
                "no Prisma Cloud API endpoint: set {ENV_API_ENDPOINT} (e.g. api2.eu or \
                 https://api2.eu.prismacloud.io)"
            ))
        })?;
        let base = endpoint::resolve(&endpoint, self.allow_http)?;
        let credentials = self.credentials.ok_or_else(|| {
            Error::Config(format!(
                "no Prisma Cloud credentials: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} \
                 (or a static {ENV_AUTH_KEY})"
            ))
        })?;
        match &credentials {
            Credentials::Token(t) if t.expose().trim().is_empty() => {
                return Err(Error::Config(format!("{ENV_AUTH_KEY} is empty")));
            }
            Credentials::AccessKey {
                access_key_id,
                secret_key,
                ..
            } if access_key_id.trim().is_empty() || secret_key.expose().is_empty() => {
                return Err(Error::Config(format!(
                    "{ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} must not be empty"
                )));
            }
            _ => {}
        }
        if self.refresh_margin >= self.token_lifetime {
            return Err(Error::Config(
                "the token refresh margin must be shorter than the token lifetime".into(),
            ));
        }
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .https_only(!self.allow_http)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("remediation/", env!("CARGO_PKG_VERSION")));
        for path in &self.ca_bundles {
            let pem = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading CA bundle {}", path.display()), e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "CA bundle {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        let client = ApiClient::new(
            http,
            base,
            credentials,
            TokenTiming {
                lifetime: self.token_lifetime,
                refresh_margin: self.refresh_margin,
            },
            self.retry,
            self.config_cooldown,
            self.engine_stats,
        );
        Ok(PrismaPlanner {
            shared: Arc::new(Shared {
                client,
                policy: self.policy,
                max_batch: self.max_batch,
                batch_window: self.batch_window,
                max_concurrent_requests: self.max_concurrent_requests,
                api: self.api,
            }),
            batcher: OnceLock::new(),
        })
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
type Answer = std::result::Result<Option<Remedy>, Failure>;

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

    /// The API traffic counters.
    pub fn stats(&self) -> &Arc<PrismaStats> {
        &self.shared.client.stats
    }

    fn batcher(&self) -> &mpsc::Sender<Lookup> {
        self.batcher.get_or_init(|| {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(run_batcher(Arc::clone(&self.shared), rx));
            tx
        })
    }

    fn decide(&self, event: &Event, id: &str, answer: Answer) -> Result<Decision> {
        let remedy = match answer {
            Err(failure) => return Err(failure.to_error()),
            Ok(None) => {
                return Ok(Decision::Skip(Skip::new(
                    SkipReason::NoRemediation,
                    format!("Prisma Cloud has no remediation command for alert {id}"),
                )));
            }
            Ok(Some(remedy)) => remedy,
        };
        let steps: Vec<Step> = parse_script_steps(&remedy.script, &self.shared.policy)?;
        if steps.is_empty() {
            return Ok(Decision::Skip(Skip::new(
                SkipReason::NoRemediation,
                format!("the remediation command for alert {id} holds no command"),
            )));
        }
        let mut plan = Plan::new(Self::NAME, event.target(), steps);
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
                Err(Error::Backend {
                    backend: client::BACKEND,
                    message: "the request batcher stopped (runtime shutting down?)".into(),
                    temporary: true,
                    source: None,
                })
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

/// Collects lookups for up to `batch_window` after the first one (or until a
/// group is full) and sends each group as one request; requests run
/// concurrently up to `max_concurrent_requests`. Ends when the planner is
/// dropped, after the requests in flight have answered.
async fn run_batcher(shared: Arc<Shared>, mut lookups: mpsc::Receiver<Lookup>) {
    let permits = Arc::new(Semaphore::new(shared.max_concurrent_requests));
    let mut in_flight = JoinSet::new();
    'outer: loop {
        let first = tokio::select! {
            next = lookups.recv() => match next {
                Some(l) => l,
                None => break 'outer,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
        };
        let deadline = tokio::time::Instant::now() + shared.batch_window;
        let mut groups: HashMap<String, Vec<Lookup>> = HashMap::new();
        let mut closed = false;
        let add = |lookup: Lookup, groups: &mut HashMap<String, Vec<Lookup>>| {
            let key = match shared.api {
                RemediationApi::V1Batch => lookup.group.clone(),
                // One request per id: group by id, so duplicates share it.
                RemediationApi::V2PerAlert => lookup.id.clone(),
            };
            let group = groups.entry(key.clone()).or_default();
            group.push(lookup);
            let full = shared.api == RemediationApi::V1Batch
                && distinct_ids(group).len() >= shared.max_batch;
            full.then_some(key)
        };
        let dispatch = |group: Vec<Lookup>, in_flight: &mut JoinSet<()>| {
            let shared = Arc::clone(&shared);
            let permits = Arc::clone(&permits);
            in_flight.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                shared.resolve(group).await;
            });
        };
        if let Some(full) = add(first, &mut groups) {
            if let Some(group) = groups.remove(&full) {
                dispatch(group, &mut in_flight);
            }
        }
        loop {
            tokio::select! {
                biased;
                next = lookups.recv() => match next {
                    Some(l) => {
                        if let Some(full) = add(l, &mut groups) {
                            if let Some(group) = groups.remove(&full) {
                                dispatch(group, &mut in_flight);
                            }
                        }
                    }
                    None => {
                        closed = true;
                        break;
                    }
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for (_, group) in groups.drain() {
            dispatch(group, &mut in_flight);
        }
        if closed {
            break;
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// The distinct ids of a group, in arrival order.
fn distinct_ids(group: &[Lookup]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(group.len());
    for l in group {
        if !ids.contains(&l.id) {
            ids.push(l.id.clone());
        }
    }
    ids
}

/// The v1 answer: `{"alertIdVsCliScript": {id: script}, "cliDescription": ...}`.
#[derive(Deserialize)]
struct V1Body {
    #[serde(default, rename = "alertIdVsCliScript")]
    scripts: Option<HashMap<String, serde_json::Value>>,
    #[serde(default, rename = "cliDescription")]
    description: Option<serde_json::Value>,
}

/// The v2 answer: `{"cliCommand": ..., "cliDescription": ...}`.
#[derive(Deserialize)]
struct V2Body {
    #[serde(default, rename = "cliCommand")]
    command: Option<serde_json::Value>,
    #[serde(default, rename = "cliDescription")]
    description: Option<serde_json::Value>,
}

/// A script as the API may spell it: a string, or an object carrying one.
fn script_text(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(o) => o
            .get("cliScript")
            .or_else(|| o.get("cliCommand"))
            .and_then(serde_json::Value::as_str)?,
        _ => return None,
    };
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// The description for `id`: one string for the whole answer, or one per id.
fn description_for(value: Option<&serde_json::Value>, id: &str) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Object(o) => o.get(id).and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    }
}

/// The outcome of one v1 request.
enum V1Outcome {
    Scripts(HashMap<String, Remedy>),
    BadRequest(String),
}

impl Shared {
    /// Answers every lookup of one group.
    async fn resolve(&self, group: Vec<Lookup>) {
        let ids = distinct_ids(&group);
        let mut answers: HashMap<String, Answer> = match self.api {
            RemediationApi::V1Batch => self.fetch_v1(&ids).await,
            RemediationApi::V2PerAlert => {
                let mut answers = HashMap::new();
                for id in ids {
                    let answer = self.fetch_v2(&id).await;
                    answers.insert(id, answer);
                }
                answers
            }
        };
        for lookup in group {
            let answer = answers
                .get(&lookup.id)
                .cloned()
                .unwrap_or_else(|| Err(Failure::temporary("the alert was not asked for")));
            // The caller may have gone away (cancelled); nothing to do then.
            let _ = lookup.reply.send(answer);
        }
        answers.clear();
    }

    /// Asks for `ids` in one request; a 400 for several ids asks again one by one.
    async fn fetch_v1(&self, ids: &[String]) -> HashMap<String, Answer> {
        match self.remediation_v1(ids).await {
            Ok(V1Outcome::Scripts(mut scripts)) => ids
                .iter()
                .map(|id| (id.clone(), Ok(scripts.remove(id))))
                .collect(),
            Ok(V1Outcome::BadRequest(why)) if ids.len() > 1 => {
                tracing::warn!(
                    backend = client::BACKEND,
                    ids = ids.len(),
                    "the API refused a batch (HTTP 400{why}); asking alert by alert"
                );
                self.client.stats.split();
                let mut answers = HashMap::new();
                for id in ids {
                    let single = std::slice::from_ref(id);
                    let answer = match self.remediation_v1(single).await {
                        Ok(V1Outcome::Scripts(mut scripts)) => Ok(scripts.remove(id)),
                        Ok(V1Outcome::BadRequest(why)) => Err(refused(id, &why)),
                        Err(e) => Err(Failure::from(&e)),
                    };
                    answers.insert(id.clone(), answer);
                }
                answers
            }
            Ok(V1Outcome::BadRequest(why)) => ids
                .iter()
                .map(|id| (id.clone(), Err(refused(id, &why))))
                .collect(),
            Err(e) => {
                let failure = Failure::from(&e);
                ids.iter()
                    .map(|id| (id.clone(), Err(failure.clone())))
                    .collect()
            }
        }
    }

    async fn remediation_v1(&self, ids: &[String]) -> Result<V1Outcome> {
        let url = self.client.url("api/v1/permission/alert/remediation")?;
        let body = serde_json::json!({ "alerts": ids });
        match self
            .client
            .call(Method::POST, &url, Some(&body), ids.len())
            .await?
        {
            Reply::Ok(bytes) => {
                let parsed: V1Body = serde_json::from_slice(&bytes).map_err(|e| {
                    self.client.stats.failed();
                    Error::Backend {
                        backend: client::BACKEND,
                        message: format!("unreadable remediation answer: {e}"),
                        temporary: true,
                        source: None,
                    }
                })?;
                let scripts = parsed.scripts.unwrap_or_default();
                let mut out = HashMap::new();
                for id in ids {
                    if let Some(script) = scripts.get(id).and_then(script_text) {
                        let description = description_for(parsed.description.as_ref(), id);
                        out.insert(
                            id.clone(),
                            Remedy {
                                script,
                                description,
                            },
                        );
                    }
                }
                Ok(V1Outcome::Scripts(out))
            }
            Reply::BadRequest(why) => Ok(V1Outcome::BadRequest(why)),
            Reply::NotFound(why) => Err(self.client.config_error(format!(
                "no remediation endpoint at {url} (HTTP 404{why}): check {ENV_API_ENDPOINT}"
            ))),
        }
    }

    async fn fetch_v2(&self, id: &str) -> Answer {
        let mut url = self
            .client
            .url("iam/api/v2/alert/")
            .map_err(|e| Failure::from(&e))?;
        match url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().push(id).push("remediation_command");
            }
            Err(()) => return Err(Failure::permanent("the API base URL cannot carry a path")),
        }
        match self.client.call(Method::GET, &url, None, 1).await {
            Ok(Reply::Ok(bytes)) => {
                let parsed: V2Body = serde_json::from_slice(&bytes).map_err(|e| {
                    self.client.stats.failed();
                    Failure::temporary(format!("unreadable remediation answer: {e}"))
                })?;
                Ok(parsed
                    .command
                    .as_ref()
                    .and_then(script_text)
                    .map(|script| Remedy {
                        script,
                        description: description_for(parsed.description.as_ref(), id),
                    }))
            }
            Ok(Reply::NotFound(_)) => Ok(None),
            Ok(Reply::BadRequest(why)) => Err(refused(id, &why)),
            Err(e) => Err(Failure::from(&e)),
        }
    }
}

/// The API refused one alert: a permanent failure for that alert alone.
fn refused(id: &str, why: &str) -> Failure {
    Failure::permanent(format!(
        "the Prisma Cloud API refused alert {id} (HTTP 400{why})"
    ))
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

    #[test]
    fn from_vars_prefers_the_key_pair_and_reports_half_pairs() {
        let b = PrismaPlannerBuilder::from_vars([
            ("API_ENDPOINT", "api2"),
            ("AUTH_KEY", "tok"),
            ("PRISMA_ACCESS_KEY_ID", "id"),
            ("PRISMA_SECRET_KEY", "sec"),
        ]);
        assert!(matches!(b.credentials, Some(Credentials::AccessKey { .. })));
        let half =
            PrismaPlannerBuilder::from_vars([("API_ENDPOINT", "api2"), ("PRISMA_SECRET_KEY", "s")]);
        let err = half.build().expect_err("half a key pair");
        assert!(err.to_string().contains("must be set together"), "{err}");
        let none = PrismaPlannerBuilder::from_vars([("API_ENDPOINT", "api2"), ("AUTH_KEY", " ")]);
        assert!(none.build().is_err(), "blank AUTH_KEY counts as unset");
        let ok = PrismaPlannerBuilder::from_vars([("API_ENDPOINT", "app2.eu"), ("AUTH_KEY", "t")])
            .build()
            .expect("planner");
        assert_eq!(ok.base_url(), "https://api2.eu.prismacloud.io/");
        let debug = format!("{ok:?}");
        assert!(!debug.contains("\"t\""), "{debug}");
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
        assert!(decisions[0].as_ref().is_err_and(Error::is_temporary));
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

    #[test]
    fn scripts_and_descriptions_are_read_leniently() {
        assert_eq!(
            script_text(&serde_json::json!("aws s3 ls")).as_deref(),
            Some("aws s3 ls")
        );
        assert_eq!(
            script_text(&serde_json::json!({"cliScript": "aws s3 ls"})).as_deref(),
            Some("aws s3 ls")
        );
        assert_eq!(script_text(&serde_json::json!("  ")), None);
        assert_eq!(script_text(&serde_json::Value::Null), None);
        let per_id = serde_json::json!({"a": "for a"});
        assert_eq!(
            description_for(Some(&per_id), "a").as_deref(),
            Some("for a")
        );
        assert_eq!(description_for(Some(&per_id), "b"), None);
        let all = serde_json::json!("for all");
        assert_eq!(description_for(Some(&all), "b").as_deref(), Some("for all"));
    }
}
