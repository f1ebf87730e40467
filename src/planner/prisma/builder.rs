//! [`PrismaPlannerBuilder`]: the endpoint, the credentials, batching,
//! token, retry and TLS settings, set in code or read through
//! [`PrismaConfigKey`]s from the environment or any list of pairs; `build`
//! reports every configuration problem at once.

use super::client::{ApiClient, TokenTiming};
use super::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_API_ENDPOINT, ENV_AUTH_KEY, ENV_SECRET_KEY, PrismaPlanner,
    RemediationApi, RetryPolicy, Shared, endpoint,
};
use crate::config::{self, Problems};
use crate::error::{Error, Result};
use crate::plan::CommandPolicy;
use crate::redact::Secret;
use crate::telemetry::Stats;
use reqwest::header::HeaderValue;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

config::config_keys! {
    /// The configuration keys of a [`PrismaPlannerBuilder`]
    /// ([`from_vars`](PrismaPlannerBuilder::from_vars),
    /// [`with_config`](PrismaPlannerBuilder::with_config)); each one's name
    /// is the environment variable [`from_env`](PrismaPlannerBuilder::from_env)
    /// reads (the `ENV_*` constants of [`prisma`](super) name them too).
    pub enum PrismaConfigKey {
        /// `API_ENDPOINT`: the API endpoint, a URL or a tenant name such as `api2.eu`.
        ApiEndpoint = "API_ENDPOINT",
        /// `AUTH_KEY`: a static token (as in the published script). Secret.
        AuthKey = "AUTH_KEY" => secret,
        /// `PRISMA_ACCESS_KEY_ID`: the access key id (logs in; preferred
        /// over `AUTH_KEY` when both are set, since it can log in again).
        AccessKeyId = "PRISMA_ACCESS_KEY_ID",
        /// `PRISMA_SECRET_KEY`: the access key's secret. Secret.
        SecretKey = "PRISMA_SECRET_KEY" => secret,
        /// `PRISMA_CUSTOMER_NAME`: the customer (tenant) name, for multi-tenant logins.
        CustomerName = "PRISMA_CUSTOMER_NAME",
    }
}

/// A token or secret as given: not empty, and carried by an HTTP header as
/// it is (secrets are not trimmed).
fn secret_value(text: &str) -> std::result::Result<Secret, String> {
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    HeaderValue::from_str(text)
        .map(|_| Secret::new(text))
        .map_err(|_| "holds characters an HTTP header cannot carry".to_owned())
}

/// Parses `value` as it is, untrimmed ([`Problems::parse`] trims), recording
/// a problem when it fails.
fn unchanged<T>(
    problems: &mut Problems,
    key: PrismaConfigKey,
    value: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, String>,
) -> Option<T> {
    parse(value)
        .map_err(|why| problems.bad_value(key, value, why))
        .ok()
}

/// The credentials read through [`PrismaConfigKey`]s, which become the
/// builder's credentials once they make a whole: the key pair (with the
/// customer name), or else the static token.
#[derive(Clone, Debug, Default)]
struct ConfiguredCredentials {
    access_key_id: Option<String>,
    secret_key: Option<Secret>,
    customer_name: Option<String>,
    token: Option<Secret>,
}

impl ConfiguredCredentials {
    fn whole(&self) -> Option<Credentials> {
        match (&self.access_key_id, &self.secret_key, &self.token) {
            (Some(id), Some(secret), _) => Some(Credentials::AccessKey {
                access_key_id: id.clone(),
                secret_key: secret.clone(),
                customer_name: self.customer_name.clone(),
            }),
            (None, None, Some(token)) => Some(Credentials::Token(token.clone())),
            _ => None,
        }
    }

    fn is_half_pair(&self) -> bool {
        self.access_key_id.is_some() != self.secret_key.is_some()
    }
}

/// Builds a [`PrismaPlanner`]. Only [`build`](Self::build) can fail. Its
/// `Debug` shows no secret.
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
    configured: ConfiguredCredentials,
    problems: Problems,
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
            configured: ConfiguredCredentials::default(),
            problems: Problems::default(),
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
    /// `PRISMA_CUSTOMER_NAME` (see [`PrismaConfigKey`]). Empty values count
    /// as unset. The key pair wins over `AUTH_KEY` when both are set, since
    /// it can log in again; half a key pair, or a bad value, is reported by
    /// [`build`](Self::build).
    pub fn from_env() -> Self {
        Self::from_vars(config::env_vars())
    }

    crate::config::from_vars!(PrismaConfigKey);

    /// Sets one configuration value; a bad one is reported by
    /// [`build`](Self::build). The credential keys take effect once they
    /// make a whole: the key pair, or else `AUTH_KEY`.
    pub fn with_config(mut self, key: PrismaConfigKey, value: &str) -> Self {
        let p = &mut self.problems;
        let c = &mut self.configured;
        match key {
            // Checked by `build`, which knows whether plain http is allowed.
            PrismaConfigKey::ApiEndpoint => self.endpoint = Some(value.to_owned()),
            PrismaConfigKey::AuthKey => {
                if let Some(token) = unchanged(p, key, value, secret_value) {
                    c.token = Some(token);
                }
            }
            PrismaConfigKey::AccessKeyId => {
                if let Some(id) = p.parse(key, value, config::not_empty) {
                    c.access_key_id = Some(id);
                }
            }
            PrismaConfigKey::SecretKey => {
                if let Some(secret) = unchanged(p, key, value, secret_value) {
                    c.secret_key = Some(secret);
                }
            }
            PrismaConfigKey::CustomerName => c.customer_name = Some(value.to_owned()),
        }
        if let Some(credentials) = self.configured.whole() {
            self.credentials = Some(credentials);
        }
        self
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

    /// Counts every request in `stats` from the start
    /// ([`ApiCall::PrismaRemediation`](crate::telemetry::ApiCall::PrismaRemediation),
    /// `PrismaLogin`, `PrismaAuthTokenExtend`). Not needed with an engine:
    /// the engine hands the planner its own stats when it is built
    /// ([`RemediationPlanner::attach_stats`](crate::planner::RemediationPlanner::attach_stats)),
    /// with the calls counted until then.
    pub fn with_engine_stats(mut self, stats: Arc<Stats>) -> Self {
        self.engine_stats = Some(stats);
        self
    }

    /// Checks the configuration and builds the planner: fails with every
    /// configuration problem at once (bad values, no endpoint, no or half
    /// credentials). Needs no runtime; the batcher task starts with the first
    /// [`plan`](crate::planner::RemediationPlanner::plan).
    pub fn build(self) -> Result<PrismaPlanner> {
        let mut problems = self.problems.clone();
        let base = match &self.endpoint {
            None => {
                problems.push(format!(
                    "no Prisma Cloud API endpoint: set {ENV_API_ENDPOINT} (e.g. api2.eu or \
                     https://api2.eu.prismacloud.io)"
                ));
                None
            }
            Some(given) => endpoint::resolve(given, self.allow_http)
                .map_err(|why| problems.bad_value(PrismaConfigKey::ApiEndpoint, given, why))
                .ok(),
        };
        match &self.credentials {
            _ if self.configured.is_half_pair() => problems.push(format!(
                "{ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} must be set together"
            )),
            None => problems.push(format!(
                "no Prisma Cloud credentials: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} \
                 (or a static {ENV_AUTH_KEY})"
            )),
            Some(Credentials::Token(t)) if t.expose().trim().is_empty() => {
                problems.push(format!("{ENV_AUTH_KEY} is empty"));
            }
            Some(Credentials::AccessKey {
                access_key_id,
                secret_key,
                ..
            }) if access_key_id.trim().is_empty() || secret_key.expose().is_empty() => {
                problems.push(format!(
                    "{ENV_ACCESS_KEY_ID} and {ENV_SECRET_KEY} must not be empty"
                ));
            }
            Some(_) => {}
        }
        if self.refresh_margin >= self.token_lifetime {
            problems.push("the token refresh margin must be shorter than the token lifetime");
        }
        problems.check("PrismaPlannerBuilder")?;
        let (Some(base), Some(credentials)) = (base, self.credentials) else {
            return Err(Error::Config(
                "PrismaPlannerBuilder: no endpoint or no credentials".into(),
            ));
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigKey;
    use crate::planner::prisma::ENV_CUSTOMER_NAME;

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

    #[test]
    fn the_env_constants_are_the_keys_names() {
        assert_eq!(PrismaConfigKey::ApiEndpoint.name(), ENV_API_ENDPOINT);
        assert_eq!(PrismaConfigKey::AuthKey.name(), ENV_AUTH_KEY);
        assert_eq!(PrismaConfigKey::AccessKeyId.name(), ENV_ACCESS_KEY_ID);
        assert_eq!(PrismaConfigKey::SecretKey.name(), ENV_SECRET_KEY);
        assert_eq!(PrismaConfigKey::CustomerName.name(), ENV_CUSTOMER_NAME);
        assert!(PrismaConfigKey::AuthKey.is_secret() && PrismaConfigKey::SecretKey.is_secret());
        assert!(!PrismaConfigKey::AccessKeyId.is_secret());
    }

    #[test]
    fn values_are_read_by_their_key_names() {
        let b = PrismaPlannerBuilder::from_vars([
            ("api_endpoint", "api2.eu"),
            ("PRISMA_ACCESS_KEY_ID", " id "),
            ("PRISMA_SECRET_KEY", "sec "),
            ("PRISMA_CUSTOMER_NAME", "acme"),
            ("UNRELATED", "whatever"),
        ]);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        match &b.credentials {
            Some(Credentials::AccessKey {
                access_key_id,
                secret_key,
                customer_name,
            }) => {
                assert_eq!(access_key_id, "id");
                assert_eq!(secret_key.expose(), "sec ", "a secret is taken as it is");
                assert_eq!(customer_name.as_deref(), Some("acme"));
            }
            other => panic!("expected a key pair, got {other:?}"),
        }
        let key: PrismaConfigKey = "prisma_customer_name".parse().unwrap();
        assert_eq!(key, PrismaConfigKey::CustomerName);
        let planner = b.with_config(key, "other").build().expect("planner");
        assert_eq!(planner.base_url(), "https://api2.eu.prismacloud.io/");
    }

    #[test]
    fn every_bad_value_is_reported_by_build_at_once_without_secrets() {
        let token = "tok-s3cr3t\nvalue";
        let secret = "sk-s3cr3t\u{7f}value";
        let b = PrismaPlannerBuilder::from_vars([
            ("API_ENDPOINT", "ftp://api.prismacloud.io"),
            ("AUTH_KEY", token),
            ("PRISMA_ACCESS_KEY_ID", "id"),
            ("PRISMA_SECRET_KEY", secret),
        ])
        .with_config(PrismaConfigKey::AccessKeyId, "")
        .with_token_lifetime(Duration::from_secs(60))
        .with_refresh_margin(Duration::from_secs(60));
        let shown = format!("{b:?}");
        let e = b.build().expect_err("bad values");
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        let e = e.to_string();
        assert!(e.contains("PrismaPlannerBuilder: 6 problems"), "{e}");
        for needle in [
            "API_ENDPOINT: \"ftp://api.prismacloud.io\": ",
            "AUTH_KEY: holds characters an HTTP header cannot carry",
            "PRISMA_SECRET_KEY: holds characters an HTTP header cannot carry",
            "PRISMA_ACCESS_KEY_ID: \"\": empty",
            "PRISMA_ACCESS_KEY_ID and PRISMA_SECRET_KEY must be set together",
            "refresh margin",
        ] {
            assert!(e.contains(needle), "{needle:?} missing from {e}");
        }
        for text in [&e, &shown] {
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        let e = PrismaPlannerBuilder::new().build().unwrap_err().to_string();
        assert!(e.contains("2 problems"), "{e}");
        assert!(e.contains("no Prisma Cloud API endpoint"), "{e}");
        assert!(e.contains("no Prisma Cloud credentials"), "{e}");
    }
}
