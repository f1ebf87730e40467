//! The HTTP side of the Prisma Cloud planner: one client for the login,
//! token-extend and remediation endpoints, with proactive token refresh, one
//! re-login on a 401, pacing by the `X-RateLimit-*` headers, and jittered
//! retries of 429s, 5xx answers, timeouts and connection errors.
//!
//! The token is only ever read through [`Secret::expose`] where the header is
//! built; error messages carry statuses and (redacted, truncated) answer
//! bodies, never a request.

use super::error::PrismaError;
use super::stats::{Endpoint, PrismaStats};
use super::{BACKEND, Credentials, RetryPolicy};
use crate::redact::{Secret, redact};
use crate::telemetry::{Stats, StatsSlot};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The header carrying the Prisma Cloud token.
const AUTH_HEADER: &str = "x-redlock-auth";

type Result<T, E = PrismaError> = std::result::Result<T, E>;

/// How long a token lives and how early it is refreshed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenTiming {
    pub(crate) lifetime: Duration,
    pub(crate) refresh_margin: Duration,
}

impl TokenTiming {
    fn refresh_after(&self) -> Duration {
        self.lifetime.saturating_sub(self.refresh_margin)
    }

    /// When a refresh that failed for a passing reason is tried again.
    fn retry_soon(&self) -> Duration {
        (self.refresh_margin / 4).clamp(Duration::from_millis(10), Duration::from_secs(30))
    }
}

/// A token with its schedule.
#[derive(Clone)]
struct Token {
    value: Secret,
    refresh_at: Instant,
    expires_at: Instant,
    /// Bumped at every login or extension, so concurrent 401s log in once.
    generation: u64,
}

/// What an authenticated call answered, when it is not an error.
#[derive(Debug)]
pub(crate) enum Reply {
    /// 2xx with its body.
    Ok(Bytes),
    /// 400, with a snippet of the body.
    BadRequest(String),
    /// 404, with a snippet of the body.
    NotFound(String),
}

/// One client shared by every batch.
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: Url,
    credentials: Credentials,
    timing: TokenTiming,
    retry: RetryPolicy,
    config_cooldown: Duration,
    token: tokio::sync::Mutex<Option<Token>>,
    /// Requests wait until then (the rate-limit headers said the quota is spent).
    pace: Mutex<Option<Instant>>,
    /// A setup failure (refused credentials): until when calls fail fast, and with what.
    blocked: Mutex<Option<(Instant, PrismaError)>>,
    pub(crate) stats: Arc<PrismaStats>,
    /// Where API calls are counted for the engine ([`Stats`]).
    pub(crate) slot: StatsSlot,
    seed: AtomicU64,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .field("credentials", &self.credentials)
            .field("timing", &self.timing)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// At most 200 characters of an answer body, secrets masked, control characters escaped.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    let more = if text.chars().count() > 200 {
        "…"
    } else {
        ""
    };
    format!(": {}{more}", redact(&short).escape_debug())
}

/// A transport error in words (reqwest's message names the URL, never a header).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the request timed out".to_owned()
    } else if e.is_connect() {
        format!("connecting failed: {e}")
    } else {
        e.to_string()
    }
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

/// How long the `X-RateLimit-*` headers say the quota takes to refill for
/// one more request: requested tokens / replenish rate (per second).
fn replenish_wait(headers: &HeaderMap) -> Option<Duration> {
    let rate = header_f64(headers, "x-ratelimit-replenish-rate").filter(|r| *r > 0.0)?;
    let tokens = header_f64(headers, "x-ratelimit-requested-tokens").unwrap_or(1.0);
    Some(Duration::from_secs_f64(
        (tokens.max(1.0) / rate).min(3600.0),
    ))
}

/// The wait a 429 asks for: `Retry-After` (seconds), else the replenish time.
fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    header_f64(headers, RETRY_AFTER.as_str())
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
        .or_else(|| replenish_wait(headers))
}

#[derive(Deserialize)]
struct TokenBody {
    token: Option<String>,
}

impl ApiClient {
    pub(crate) fn new(
        http: reqwest::Client,
        base: Url,
        credentials: Credentials,
        timing: TokenTiming,
        retry: RetryPolicy,
        config_cooldown: Duration,
        engine_stats: Option<Arc<Stats>>,
    ) -> Self {
        // A static token's age is unknown: count its life from now and extend
        // it on schedule, as if it had just been issued.
        let token = match &credentials {
            Credentials::Token(value) => Some(Token {
                value: value.clone(),
                refresh_at: Instant::now() + timing.refresh_after(),
                expires_at: Instant::now() + timing.lifetime,
                generation: 1,
            }),
            Credentials::AccessKey { .. } => None,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into());
        ApiClient {
            http,
            base,
            credentials,
            timing,
            retry,
            config_cooldown,
            token: tokio::sync::Mutex::new(token),
            pace: Mutex::new(None),
            blocked: Mutex::new(None),
            stats: Arc::new(PrismaStats::default()),
            slot: StatsSlot::new(engine_stats),
            seed: AtomicU64::new(seed),
        }
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `path` relative to the base URL.
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| PrismaError::Config(format!("building the URL for {path}: {e}")))
    }

    fn can_login(&self) -> bool {
        matches!(self.credentials, Credentials::AccessKey { .. })
    }

    /// Fails fast while a setup failure is fresh, so a bad key does not
    /// make every delivery hammer the API.
    fn check_blocked(&self) -> Result<()> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((until, why)) = blocked.as_ref() {
            let now = Instant::now();
            if now < *until {
                return Err(why.clone().with_note(&format!(
                    "(not asking the API again for {}s)",
                    (*until - now).as_secs() + 1
                )));
            }
            *blocked = None;
        }
        Ok(())
    }

    /// Records a setup failure (refused credentials, a missing endpoint):
    /// calls fail fast with it until the cooldown ends.
    pub(crate) fn setup_failure(&self, e: PrismaError) -> PrismaError {
        tracing::error!(
            backend = BACKEND,
            cooldown = ?self.config_cooldown,
            "{e}; failing fast until the cooldown ends"
        );
        self.stats.failed();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        *blocked = Some((Instant::now() + self.config_cooldown, e.clone()));
        e
    }

    async fn wait_pace(&self) {
        let until = *self.pace.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = until {
            if until > Instant::now() {
                tokio::time::sleep_until(until).await;
            }
        }
    }

    /// A spent quota (`X-RateLimit-Remaining: 0`) pauses every request until
    /// it has refilled, instead of spending a 429 to learn it.
    fn note_rate_headers(&self, headers: &HeaderMap) {
        if header_f64(headers, "x-ratelimit-remaining").is_some_and(|r| r < 1.0) {
            let wait = replenish_wait(headers)
                .unwrap_or(Duration::from_secs(1))
                .min(self.retry.max_wait);
            let until = Instant::now() + wait;
            let mut pace = self.pace.lock().unwrap_or_else(|p| p.into_inner());
            if pace.is_none_or(|p| p < until) {
                *pace = Some(until);
            }
        }
    }

    /// Sends one request, retrying 429, 408, 5xx, timeouts and connection
    /// errors with jittered exponential backoff (a 429's `Retry-After` or
    /// replenish time is honoured when longer). Returns the first answer that
    /// is not retried; a temporary error once the retries are spent.
    async fn send(
        &self,
        endpoint: Endpoint,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        token: Option<&Secret>,
        ids: usize,
    ) -> Result<(StatusCode, HeaderMap, Bytes)> {
        let what = match endpoint {
            Endpoint::Login => "login",
            Endpoint::Extend => "token extension",
            Endpoint::Remediation => "remediation request",
        };
        let mut attempt = 0u32;
        loop {
            self.wait_pace().await;
            self.stats.sent(endpoint, ids);
            self.slot.count_api_call(endpoint.api_call_kind());
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(token) = token {
                let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                    PrismaError::Config(
                        "the Prisma Cloud token holds characters a header cannot carry".into(),
                    )
                })?;
                value.set_sensitive(true);
                request = request.header(AUTH_HEADER, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let mut asked_wait = None;
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    self.note_rate_headers(&headers);
                    let retried = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status.is_server_error();
                    match response.bytes().await {
                        Ok(bytes) if !retried => return Ok((status, headers, bytes)),
                        Ok(bytes) => {
                            if status == StatusCode::TOO_MANY_REQUESTS {
                                self.stats.rate_limited();
                                asked_wait = rate_limit_wait(&headers);
                            }
                            format!("HTTP {status}{}", snippet(&bytes))
                        }
                        Err(e) => format!("reading the answer failed: {}", describe(&e)),
                    }
                }
                Err(e) => describe(&e),
            };
            attempt += 1;
            if attempt > self.retry.max_retries {
                self.stats.failed();
                return Err(PrismaError::Unavailable(format!(
                    "{what} failed after {attempt} attempts; last: {failure}"
                )));
            }
            let backoff = self
                .retry
                .backoff
                .delay(attempt, self.seed.fetch_add(1, Ordering::Relaxed));
            let delay = asked_wait.map_or(backoff, |w| w.max(backoff));
            if delay > self.retry.max_wait {
                self.stats.failed();
                return Err(PrismaError::Unavailable(format!(
                    "{what} failed ({failure}) and the API asks to wait {delay:?}, \
                     longer than the {:?} this planner waits",
                    self.retry.max_wait
                )));
            }
            tracing::warn!(
                backend = BACKEND,
                attempt,
                ?delay,
                "{what} failed ({failure}); retrying"
            );
            self.stats.retried();
            tokio::time::sleep(delay).await;
        }
    }

    fn schedule(&self, value: Secret, generation: u64) -> Token {
        let now = Instant::now();
        Token {
            value,
            refresh_at: now + self.timing.refresh_after(),
            expires_at: now + self.timing.lifetime,
            generation,
        }
    }

    /// `POST /login` with the access key pair.
    async fn login(&self) -> Result<Secret> {
        let Credentials::AccessKey {
            access_key_id,
            secret_key,
            customer_name,
        } = &self.credentials
        else {
            return Err(PrismaError::Config(
                "a static AUTH_KEY cannot log in again; configure PRISMA_ACCESS_KEY_ID and \
                 PRISMA_SECRET_KEY"
                    .into(),
            ));
        };
        let mut body = serde_json::json!({
            "username": access_key_id,
            "password": secret_key.expose(),
        });
        if let Some(name) = customer_name {
            body["customerName"] = serde_json::Value::from(name.as_str());
        }
        let url = self.url("login")?;
        let (status, _, bytes) = self
            .send(Endpoint::Login, Method::POST, &url, Some(&body), None, 0)
            .await?;
        drop(body);
        if status.is_success() {
            return match serde_json::from_slice::<TokenBody>(&bytes) {
                Ok(TokenBody { token: Some(t) }) if !t.is_empty() => {
                    tracing::info!(backend = BACKEND, "logged in to Prisma Cloud");
                    Ok(Secret::new(t))
                }
                _ => {
                    self.stats.failed();
                    Err(PrismaError::NoToken {
                        answer: "login",
                        status: status.as_u16(),
                    })
                }
            };
        }
        let refused = format!(
            "login refused (HTTP {status}{}): check PRISMA_ACCESS_KEY_ID, PRISMA_SECRET_KEY \
             and PRISMA_CUSTOMER_NAME",
            snippet(&bytes)
        );
        match status.as_u16() {
            400 => Err(self.setup_failure(PrismaError::Config(refused))),
            code @ (401 | 403) => Err(self.setup_failure(PrismaError::Status {
                status: code,
                message: refused,
            })),
            404 => Err(self.setup_failure(PrismaError::Config(format!(
                "no login endpoint at {url} (HTTP 404): check API_ENDPOINT"
            )))),
            code => {
                self.stats.failed();
                Err(PrismaError::Status {
                    status: code,
                    message: format!("login failed (HTTP {status}{})", snippet(&bytes)),
                })
            }
        }
    }

    /// `GET /auth_token/extend`: a fresh token for a still valid one.
    async fn extend(&self, current: &Secret) -> Result<Secret> {
        let url = self.url("auth_token/extend")?;
        let (status, _, bytes) = self
            .send(Endpoint::Extend, Method::GET, &url, None, Some(current), 0)
            .await?;
        if status.is_success() {
            if let Ok(TokenBody { token: Some(t) }) = serde_json::from_slice(&bytes) {
                if !t.is_empty() {
                    tracing::debug!(backend = BACKEND, "token extended");
                    return Ok(Secret::new(t));
                }
            }
            return Err(PrismaError::NoToken {
                answer: "token extension",
                status: status.as_u16(),
            });
        }
        Err(PrismaError::Status {
            status: status.as_u16(),
            message: format!("token extension refused (HTTP {status}{})", snippet(&bytes)),
        })
    }

    /// The token to use now: logs in when there is none, extends it when its
    /// refresh time has come (well before it expires), logs in again when
    /// extending is refused.
    async fn current_token(&self) -> Result<Token> {
        let mut slot = self.token.lock().await;
        let now = Instant::now();
        if let Some(token) = slot.as_ref().cloned() {
            if now < token.refresh_at {
                return Ok(token);
            }
            if now < token.expires_at || !self.can_login() {
                match self.extend(&token.value).await {
                    Ok(value) => {
                        let fresh = self.schedule(value, token.generation + 1);
                        *slot = Some(fresh.clone());
                        return Ok(fresh);
                    }
                    // Still valid, or nothing better to use: keep it, try again soon.
                    Err(e) if (e.is_temporary() && now < token.expires_at) || !self.can_login() => {
                        tracing::warn!(backend = BACKEND, error = %e, "extending the token failed; keeping the current one");
                        let mut kept = token;
                        kept.refresh_at = now + self.timing.retry_soon();
                        *slot = Some(kept.clone());
                        return Ok(kept);
                    }
                    Err(e) => {
                        tracing::info!(backend = BACKEND, error = %e, "extending the token failed; logging in again");
                    }
                }
            }
        }
        let generation = slot.as_ref().map_or(1, |t| t.generation + 1);
        let value = self.login().await?;
        let fresh = self.schedule(value, generation);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Whether the credentials work, asking the API once: a login with
    /// the access key pair, or an extension of a static token (preflight).
    pub(crate) async fn verify(&self) -> Result<&'static str> {
        if self.can_login() {
            self.login().await.map(|_| "logged in with the access key")
        } else {
            let token = self.current_token().await?;
            self.extend(&token.value)
                .await
                .map(|_| "the static token was extended")
        }
    }

    /// Drops the token a 401 refused, unless another call already replaced it.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.token.lock().await;
        if self.can_login() && slot.as_ref().is_some_and(|t| t.generation == generation) {
            *slot = None;
        }
    }

    /// An authenticated call to a remediation endpoint. A 401 logs in again
    /// once (key pair only); a second 401, or a 403, is a setup failure
    /// (unauthenticated, permission denied) that fails calls fast for the
    /// cooldown.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
        ids: usize,
    ) -> Result<Reply> {
        self.check_blocked()?;
        let mut logged_in_again = false;
        loop {
            let token = self.current_token().await?;
            let (status, headers, bytes) = self
                .send(
                    Endpoint::Remediation,
                    method.clone(),
                    url,
                    body,
                    Some(&token.value),
                    ids,
                )
                .await?;
            match status.as_u16() {
                200..=299 => return Ok(Reply::Ok(bytes)),
                401 => {
                    let why = if String::from_utf8_lossy(&bytes).contains("token_expired")
                        || headers
                            .get("x-redlock-status")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.contains("token_expired"))
                    {
                        "token_expired"
                    } else {
                        "token refused"
                    };
                    if self.can_login() && !logged_in_again {
                        tracing::info!(backend = BACKEND, why, "HTTP 401; logging in again");
                        logged_in_again = true;
                        self.invalidate(token.generation).await;
                        continue;
                    }
                    let hint = if self.can_login() {
                        "even after a fresh login: check the access key's role"
                    } else {
                        "the static AUTH_KEY is expired or invalid: configure \
                         PRISMA_ACCESS_KEY_ID and PRISMA_SECRET_KEY so the planner can log in"
                    };
                    return Err(self.setup_failure(PrismaError::Status {
                        status: 401,
                        message: format!("HTTP 401 ({why}) {hint}"),
                    }));
                }
                403 => {
                    return Err(self.setup_failure(PrismaError::Status {
                        status: 403,
                        message: format!(
                            "HTTP 403 Forbidden{}: the access key's role may not read \
                             remediation commands",
                            snippet(&bytes)
                        ),
                    }));
                }
                400 => return Ok(Reply::BadRequest(snippet(&bytes))),
                404 => return Ok(Reply::NotFound(snippet(&bytes))),
                code => {
                    self.stats.failed();
                    return Err(PrismaError::Status {
                        status: code,
                        message: format!(
                            "remediation request refused (HTTP {status}{})",
                            snippet(&bytes)
                        ),
                    });
                }
            }
        }
    }
}
