//! `ServiceBusSource` against the Service Bus REST emulator in
//! `tests/support/servicebus.rs` (no Service Bus emulator can run here; the
//! official one is a Docker image): the shared source conformance suite for a
//! queue and a topic subscription, lock expiry and redelivery, the maximum
//! delivery count and `$DeadLetterQueue`, empty receives, SAS failures,
//! secrets, interoperability with the official `azure_messaging_servicebus`
//! client, and Azure Prisma alerts end to end through the Prisma planner and
//! a recording `az` stand-in.

mod conformance;
mod support;

use async_trait::async_trait;
use azure_core::HttpClient;
use azure_messaging_servicebus::service_bus::{
    QueueClient, SendMessageOptions, SettableBrokerProperties,
};
use conformance::{QueueFactory, TestQueue, receive_one};
use remediation::ErrorKind;
use remediation::engine::{Engine, EngineConfig, MemoryAudit};
use remediation::executor::{CommandExecutor, StepOutcome, StepStatus};
use remediation::model::Target;
use remediation::plan::CommandPolicy;
use remediation::plan::Step;
use remediation::planner::AlertCliPlanner;
use remediation::redact::Secret;
use remediation::source::servicebus::{EndpointOverride, SOURCE_MESSAGE_ID_PROPERTY};
use remediation::source::servicebus::{ServiceBusSource, ServiceBusSourceBuilder};
use remediation::source::{AlertSource, DeadLetterMode};
use remediation::telemetry::ApiCall;
use remediation::telemetry::Stats;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::servicebus::{DLQ, EntityConfig, ROOT_RULE, SEND_ONLY_RULE, ServiceBusEmulator};

const NS: &str = "contoso-alerts";
const LOCK: Duration = Duration::from_secs(2);

fn short_lock(max_delivery_count: u32) -> EntityConfig {
    EntityConfig {
        lock_duration: LOCK,
        max_delivery_count,
    }
}

/// A source builder for `entity` on the emulator, with the root rule's key.
fn builder(emu: &ServiceBusEmulator, entity: &str) -> ServiceBusSourceBuilder {
    ServiceBusSource::builder()
        .with_endpoint(emu.endpoint())
        .with_namespace(emu.namespace())
        .with_shared_access_key(ROOT_RULE, Secret::new(emu.root_key()))
        .with_entity_path(entity)
        .with_wait(Duration::from_secs(1))
        .with_lock_duration(LOCK)
}

/// The official crate's queue client, routed to the emulator.
fn official_client(emu: &ServiceBusEmulator, queue: &str, rule: &str, key: &str) -> QueueClient {
    let http: Arc<dyn HttpClient> = Arc::new(
        EndpointOverride::new(azure_core::new_http_client(), &emu.endpoint()).expect("override"),
    );
    QueueClient::new(http, emu.namespace(), queue, rule, key.to_owned()).expect("queue client")
}

// ----------------------------------------------------------------- conformance

struct SbTestQueue {
    emu: Arc<ServiceBusEmulator>,
    source: Arc<dyn AlertSource>,
    /// Where messages are sent (queue or topic).
    send_to: String,
    /// Where dead letters end up.
    dead_letters: String,
}

#[async_trait]
impl TestQueue for SbTestQueue {
    fn source(&self) -> Arc<dyn AlertSource> {
        Arc::clone(&self.source)
    }
    async fn send(&self, body: &[u8]) {
        self.emu.send(&self.send_to, body);
    }
    async fn dead_letter_bodies(&self) -> Vec<Vec<u8>> {
        self.emu
            .messages(&self.dead_letters)
            .into_iter()
            .map(|m| m.body.to_vec())
            .collect()
    }
    fn lease(&self) -> Duration {
        LOCK
    }
}

struct Factory {
    emu: Arc<ServiceBusEmulator>,
    subscription: bool,
    next: AtomicU32,
}

#[async_trait]
impl QueueFactory for Factory {
    async fn make(&self) -> Box<dyn TestQueue> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (entity, send_to, dead_letters, source) = if self.subscription {
            // A topic subscription, dead letters forwarded to a queue.
            let topic = format!("alerts-{n}");
            self.emu.create_topic(&topic);
            self.emu
                .create_subscription(&topic, "remediator", short_lock(5));
            let dlq = format!("parked-{n}");
            self.emu.create_queue(&dlq, short_lock(5));
            let entity = format!("{topic}/subscriptions/remediator");
            let source = builder(&self.emu, &entity)
                .with_dead_letter_queue(&dlq)
                .build()
                .expect("source");
            assert_eq!(source.capabilities().dead_letter, DeadLetterMode::Native);
            (entity, topic, dlq, source)
        } else {
            // A queue; dead letters left to MaxDeliveryCount.
            let queue = format!("queue-{n}");
            self.emu.create_queue(&queue, short_lock(3));
            let source = builder(&self.emu, &queue).build().expect("source");
            assert_eq!(source.capabilities().dead_letter, DeadLetterMode::Redrive);
            (
                queue.clone(),
                queue.clone(),
                format!("{queue}/{DLQ}"),
                source,
            )
        };
        assert_eq!(source.entity(), entity);
        Box::new(SbTestQueue {
            emu: Arc::clone(&self.emu),
            source: Arc::new(source),
            send_to,
            dead_letters,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_queue() {
    let emu = Arc::new(ServiceBusEmulator::start(NS).await);
    conformance::run_all(&Factory {
        emu,
        subscription: false,
        next: AtomicU32::new(0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_a_topic_subscription() {
    let emu = Arc::new(ServiceBusEmulator::start(NS).await);
    conformance::run_all(&Factory {
        emu,
        subscription: true,
        next: AtomicU32::new(0),
    })
    .await;
}

// ------------------------------------------------------------ lock semantics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_redelivers_with_a_higher_count_and_the_old_lock_is_lost() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("expiring", short_lock(10));
    emu.send("expiring", b"{\"n\":1}");
    let source = builder(&emu, "expiring").build().unwrap();
    let first = receive_one(&source, Duration::from_secs(5))
        .await
        .expect("first delivery");
    assert_eq!(first.delivery_count(), 1);
    let deadline = first.lease_deadline().expect("lease deadline");
    let left = deadline.saturating_duration_since(Instant::now());
    // LockedUntilUtc and Date have whole seconds: the observed lock is the
    // real one, or a second less when a second boundary passed in between
    // (an underestimate only makes renewals come earlier).
    let observed = source.lock_duration();
    assert!(
        observed == LOCK || observed == LOCK - Duration::from_secs(1),
        "observed from the server: {observed:?}"
    );
    assert!(
        left <= observed && left > observed - Duration::from_millis(300),
        "lease deadline follows LockedUntilUtc: {left:?} for {observed:?}"
    );
    // Nobody else gets it while locked.
    assert!(
        receive_one(&source, Duration::from_millis(900))
            .await
            .is_none()
    );
    tokio::time::sleep(LOCK).await;
    let second = receive_one(&source, Duration::from_secs(5))
        .await
        .expect("redelivered after the lock expired");
    assert_eq!(second.delivery_count(), 2);
    assert_eq!(&second.body()[..], b"{\"n\":1}");
    // The first lock is gone: completing with it fails clearly, not silently.
    let e = first.ack().await.expect_err("a lost lock cannot complete");
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("lock was lost"), "{e}");
    assert!(e.to_string().contains(NS), "{e}");
    let e = second
        .extend(Duration::from_secs(1))
        .await
        .map(|()| "renewed");
    assert_eq!(e.ok(), Some("renewed"));
    second.ack().await.expect("complete with the live lock");
    assert!(emu.messages("expiring").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_delivery_count_moves_the_message_to_the_dead_letter_queue_readable_the_same_way() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("poisoned", short_lock(2));
    emu.send("poisoned", b"poison");
    let source = builder(&emu, "poisoned").build().unwrap();
    // Delivery 1: unlocked; delivery 2: the lock lapses -> dead-lettered.
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    d.nack(Duration::ZERO).await.unwrap();
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    assert_eq!(d.delivery_count(), 2);
    drop(d);
    tokio::time::sleep(LOCK + Duration::from_millis(300)).await;
    assert!(receive_one(&source, Duration::from_secs(1)).await.is_none());
    assert_eq!(emu.dead_letter_bodies("poisoned"), [b"poison".to_vec()]);

    let dlq = builder(&emu, &format!("poisoned/{DLQ}")).build().unwrap();
    let parked = receive_one(&dlq, Duration::from_secs(5))
        .await
        .expect("the dead-letter queue reads like a queue");
    assert_eq!(&parked.body()[..], b"poison");
    assert_eq!(
        parked
            .attributes()
            .get("DeadLetterReason")
            .map(String::as_str),
        Some("MaxDeliveryCountExceeded")
    );
    assert_eq!(
        parked
            .attributes()
            .get("DeadLetterSource")
            .map(String::as_str),
        Some("poisoned")
    );
    parked.ack().await.unwrap();
    assert!(emu.dead_letter_bodies("poisoned").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_entity_answers_204_after_the_wait() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("empty", short_lock(10));
    let stats = Arc::new(Stats::new());
    let source = builder(&emu, "empty")
        .with_stats(Arc::clone(&stats))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let got = source
        .receive(10)
        .await
        .expect("an empty receive is not an error");
    assert!(got.is_empty());
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(
        stats.snapshot().api_calls[ApiCall::ServiceBusPeekLock.as_str()],
        1,
        "no batch fill when empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_filled_by_several_receives_in_flight() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("busy", short_lock(10));
    for i in 0..25 {
        emu.send("busy", format!("m{i}").as_bytes());
    }
    let stats = Arc::new(Stats::new());
    let source = builder(&emu, "busy")
        .with_lock_duration(Duration::from_secs(30))
        .with_stats(Arc::clone(&stats))
        .build()
        .unwrap();
    let a = source.receive(10).await.unwrap();
    let b = source.receive(10).await.unwrap();
    let c = source.receive(10).await.unwrap();
    assert_eq!((a.len(), b.len(), c.len()), (10, 10, 5));
    let mut bodies: Vec<String> = a
        .iter()
        .chain(&b)
        .chain(&c)
        .map(|d| String::from_utf8(d.body().to_vec()).unwrap())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 25, "each message handed out once");
    // 10 + 10 + (5 found + 5 empty answers) peek-locks.
    assert_eq!(
        stats.snapshot().api_calls[ApiCall::ServiceBusPeekLock.as_str()],
        30
    );
    for d in a.into_iter().chain(b).chain(c) {
        d.ack().await.unwrap();
    }
    assert!(emu.messages("busy").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_longer_than_the_lock_is_honoured_by_keeping_the_lock() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("later", short_lock(10));
    emu.send("later", b"later");
    let source = builder(&emu, "later").build().unwrap();
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    let delay = LOCK * 2 + Duration::from_millis(500);
    let t0 = Instant::now();
    d.nack(delay).await.unwrap();
    let again = receive_one(&source, delay + LOCK * 3)
        .await
        .expect("redelivered after the delay");
    assert!(
        t0.elapsed() >= delay,
        "redelivered after {:?}, before the nack delay {delay:?}",
        t0.elapsed()
    );
    assert_eq!(
        again.delivery_count(),
        2,
        "renewals do not count as deliveries"
    );
    again.ack().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_longer_than_the_lock_keeps_renewing_until_settled() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("long", short_lock(10));
    emu.send("long", b"long");
    let stats = Arc::new(Stats::new());
    let source = builder(&emu, "long")
        .with_stats(Arc::clone(&stats))
        .build()
        .unwrap();
    let other = builder(&emu, "long").build().unwrap();
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    d.extend(LOCK * 4).await.expect("renew");
    let t0 = Instant::now();
    while t0.elapsed() < LOCK * 3 {
        assert!(
            other.receive(1).await.unwrap().is_empty(),
            "delivered to a second consumer while extended"
        );
    }
    d.ack().await.expect("complete after background renewals");
    assert!(stats.snapshot().api_calls[ApiCall::ServiceBusRenewLock.as_str()] >= 3);
    assert!(emu.messages("long").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_delivers_to_each_subscription() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_topic("prisma");
    emu.create_subscription("prisma", "aws", short_lock(10));
    emu.create_subscription("prisma", "azure", short_lock(10));
    emu.send("prisma", b"fan-out");
    for sub in ["aws", "azure"] {
        let s = builder(&emu, &format!("prisma/subscriptions/{sub}"))
            .build()
            .unwrap();
        let d = receive_one(&s, Duration::from_secs(5)).await.expect(sub);
        assert_eq!(&d.body()[..], b"fan-out");
        d.ack().await.unwrap();
    }
}

// ---------------------------------------------------------- auth and secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_fast_with_a_clear_error_naming_the_namespace() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    emu.send("alerts", b"{}");
    let wrong_key = "d3Jvbmcta2V5LXRoYXQtbG9va3MtcmVhbC0xMjM0NTY=";
    let source = builder(&emu, "alerts")
        .with_shared_access_key(ROOT_RULE, Secret::new(wrong_key))
        .build()
        .unwrap();
    let e = source.receive(10).await.expect_err("401");
    let text = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(!e.is_temporary(), "a wrong key is not retried: {text}");
    for needle in ["401", NS, "alerts", ROOT_RULE, "SB_QUEUE_KEY"] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    for secret in [wrong_key, emu.root_key(), "sig=", "SharedAccessSignature"] {
        assert!(!text.contains(secret), "{secret:?} leaked into {text}");
    }
    assert_eq!(
        emu.messages("alerts")[0].delivery_count,
        0,
        "nothing was locked"
    );

    // The engine stops on it at once, with that error.
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(Recorder::default()),
    )
    .build();
    let t0 = Instant::now();
    let run = tokio::time::timeout(
        Duration::from_secs(10),
        engine.run(tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("the engine must stop, not poll forever");
    let e = run.expect_err("a permanent source failure");
    assert!(e.to_string().contains("401"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

    // A rule without the Listen right: 401 too, naming the rule.
    let send_only = builder(&emu, "alerts")
        .with_shared_access_key(
            SEND_ONLY_RULE,
            Secret::new(emu.rule(SEND_ONLY_RULE).key.clone()),
        )
        .build()
        .unwrap();
    let e = send_only.receive(1).await.expect_err("no Listen right");
    assert!(e.to_string().contains(SEND_ONLY_RULE), "{e}");
    assert!(e.to_string().contains("Listen"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_entity_is_a_permanent_error() {
    let emu = ServiceBusEmulator::start(NS).await;
    let source = builder(&emu, "nowhere").build().unwrap();
    let e = source.receive(1).await.expect_err("410");
    assert!(!e.is_temporary());
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_temporary() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let source = ServiceBusSource::builder()
        .with_endpoint(endpoint)
        .with_namespace(NS)
        .with_shared_access_key(ROOT_RULE, Secret::new("a2V5"))
        .with_queue("q")
        .build()
        .unwrap();
    let e = source.receive(1).await.expect_err("connection refused");
    assert!(e.is_temporary(), "{e}");
}

/// Tracing output captured for the secrets test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_sas_tokens_never_reach_debug_output_errors_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    emu.create_queue("parked", short_lock(10));
    emu.send("alerts", b"{\"alertId\":\"P-1\"}");
    let key = emu.root_key().to_owned();
    let cs = emu.connection_string(Some("alerts"));
    let b = ServiceBusSource::builder()
        .with_connection_string(&cs)
        .with_endpoint(emu.endpoint())
        .with_wait(Duration::from_secs(1))
        .with_dead_letter_queue("parked");
    let mut shown = vec![format!("{b:?}")];
    let source = b.build().unwrap();
    shown.push(format!("{source:?}"));
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    shown.push(format!("{d:?}"));
    shown.push(format!("{:?}", d.attributes()));
    d.extend(Duration::from_secs(1)).await.unwrap();
    d.dead_letter("poison: test").await.unwrap();
    let parked = emu.messages("parked");
    assert_eq!(parked.len(), 1);
    assert!(
        parked[0]
            .properties
            .contains_key(SOURCE_MESSAGE_ID_PROPERTY)
    );
    // Errors: a wrong key, a bad connection string.
    let bad = builder(&emu, "alerts")
        .with_shared_access_key(ROOT_RULE, Secret::new("bm9wZQ=="))
        .build()
        .unwrap();
    shown.push(bad.receive(1).await.unwrap_err().to_string());
    shown.push(format!("{bad:?}"));
    shown.push(
        ServiceBusSource::builder()
            .with_connection_string(&cs.replace("Endpoint=sb://", "Endpoint=sb://bad_ns!"))
            .build()
            .unwrap_err()
            .to_string(),
    );
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("performing request"),
        "trace logs were captured: {logs}"
    );
    shown.push(logs);
    for text in &shown {
        for secret in [key.as_str(), "bm9wZQ==", "sig=", "SharedAccessSignature sr"] {
            assert!(!text.contains(secret), "{secret:?} leaked: {text}");
        }
    }
}

// ------------------------------------------------- the official client, too

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_with_the_official_client_are_received_with_their_properties() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    let client = official_client(&emu, "alerts", ROOT_RULE, emu.root_key());
    client
        .send_message(
            "{\"alertId\":\"P-7\"}",
            Some(SendMessageOptions {
                broker_properties: Some(SettableBrokerProperties {
                    message_id: Some("prisma-P-7".into()),
                    label: Some("alert".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        )
        .await
        .expect("the official client's SAS token is accepted");
    let source = builder(&emu, "alerts").build().unwrap();
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    assert_eq!(d.message_id(), "prisma-P-7");
    assert_eq!(
        d.attributes().get("Label").map(String::as_str),
        Some("alert")
    );
    assert!(d.attributes().contains_key("SequenceNumber"));
    assert!(d.first_seen().is_some());
    d.ack().await.unwrap();

    // The pitfall this source avoids: the crate's peek_lock_message2 returns
    // Ok for a 401 (a wrong key), so a worker built on it polls forever.
    let wrong = official_client(&emu, "alerts", ROOT_RULE, "d3Jvbmc=");
    let answer = wrong.peek_lock_message2(Some(Duration::from_secs(1))).await;
    let answer = answer.expect("Ok despite the 401");
    assert_eq!(u16::from(*answer.status()), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_refuses_expired_tokens_and_foreign_audiences() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    let http = EndpointOverride::new(azure_core::new_http_client(), &emu.endpoint()).unwrap();
    let sign = |sr: &str, se: u64| {
        use base64::Engine as _;
        use hmac::Mac;
        let sr = sr.replace(':', "%3A").replace('/', "%2F");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(emu.root_key().as_bytes()).unwrap();
        mac.update(format!("{sr}\n{se}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let sig = sig
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}&skn={ROOT_RULE}")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let head = format!("https://{NS}.servicebus.windows.net/alerts/messages/head?timeout=0");
    let status = |token: String| {
        let http = http.clone();
        let head = head.clone();
        async move {
            let mut req = azure_core::Request::new(head.parse().unwrap(), azure_core::Method::Post);
            req.insert_header(azure_core::headers::AUTHORIZATION, token);
            req.insert_header(azure_core::headers::CONTENT_LENGTH, "0");
            u16::from(http.execute_request(&req).await.unwrap().status())
        }
    };
    let ours = format!("https://{NS}.servicebus.windows.net/alerts");
    assert_eq!(status(sign(&ours, now + 600)).await, 204, "a valid token");
    assert_eq!(
        status(sign(
            &format!("https://{NS}.servicebus.windows.net"),
            now + 600
        ))
        .await,
        204,
        "a namespace-wide token"
    );
    assert_eq!(status(sign(&ours, now - 1)).await, 401, "expired");
    assert_eq!(
        status(sign(
            "https://other.servicebus.windows.net/alerts",
            now + 600
        ))
        .await,
        401,
        "another namespace"
    );
    assert_eq!(
        status(sign(
            &format!("https://{NS}.servicebus.windows.net/other"),
            now + 600
        ))
        .await,
        401,
        "another entity"
    );
    assert_eq!(
        status(sign(&ours, now + 600).replace("&se=", "&se=1")).await,
        401,
        "tampered expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_dead_letter_is_forwarded_base64_with_its_reason() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    emu.create_queue("parked", short_lock(10));
    let body = b"\xff\xfe not UTF-8 \x00";
    emu.send("alerts", body);
    let source = builder(&emu, "alerts")
        .with_dead_letter_queue("parked")
        .build()
        .unwrap();
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&d.body()[..], body, "bodies are bytes, not text");
    let id = d.message_id().to_owned();
    let how = d
        .dead_letter("undecodable: not UTF-8\nsecond line")
        .await
        .unwrap();
    assert_eq!(how, remediation::source::DeadLetterOutcome::Parked);
    let parked = emu.messages("parked");
    assert_eq!(parked.len(), 1);
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&parked[0].body)
            .unwrap(),
        body
    );
    let props = &parked[0].properties;
    assert_eq!(props["remediation-body-encoding"], "\"base64\"");
    assert_eq!(
        props["remediation-dead-letter-reason"],
        "\"undecodable: not UTF-8?second line\""
    );
    assert_eq!(props[SOURCE_MESSAGE_ID_PROPERTY], format!("\"{id}\""));
    assert_eq!(parked[0].message_id, id);
    assert!(
        emu.messages("alerts").is_empty(),
        "completed after forwarding"
    );
}

// ------------------------------------------------------------ test executor

/// Succeeds, recording each step's argv.
#[derive(Debug, Default)]
struct Recorder {
    ran: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl CommandExecutor for Recorder {
    fn check(&self, _step: &Step, _target: &Target) -> remediation::Result<()> {
        Ok(())
    }
    async fn execute(&self, step: &Step, _target: &Target) -> remediation::Result<StepOutcome> {
        self.ran.lock().unwrap().push(step.command.to_argv());
        Ok(StepOutcome::new(StepStatus::Ok))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_left_to_max_delivery_count_is_audited_with_its_body() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(3));
    let poison = "{\"this is\": not JSON";
    emu.send("alerts", poison.as_bytes());
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(builder(&emu, "alerts").build().unwrap()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(Recorder::default()),
    )
    .config(EngineConfig::default())
    .audit(audit.clone())
    .build();
    let (summary, reached) = support::run_until(&engine, Duration::from_secs(30), |_| {
        !emu.dead_letter_bodies("alerts").is_empty()
    })
    .await;
    assert!(reached, "never dead-lettered: {summary:?}");
    assert_eq!(
        emu.dead_letter_bodies("alerts"),
        [poison.as_bytes().to_vec()]
    );
    let records = audit.records();
    assert_eq!(records.len(), 3, "one record per delivery: {records:?}");
    for r in &records {
        assert_eq!(r.dead_letter.as_deref(), Some("left_to_redrive"));
        assert_eq!(r.body.as_deref(), Some(poison));
    }
    assert!(emu.messages("alerts").is_empty());
}

// ------------------------------------------------------------------ end to end

/// Azure Prisma alerts on a Service Bus queue → the Prisma planner (a wiremock
/// mock of the remediation API) → `ProcessExecutor` running a recording `az`
/// stand-in in each alert's subscription.
#[cfg(feature = "prisma")]
mod azure_end_to_end {
    use super::*;
    use remediation::engine::AuditDecision;
    use remediation::executor::{AzureContext, ContextMap, ProcessExecutor};
    use remediation::planner::prisma::PrismaPlanner;
    use remediation::telemetry::{Backoff, Counter, Summary};
    use std::collections::{HashMap, HashSet};
    use std::path::{Path, PathBuf};
    use support::StandIn;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    pub(super) const PRISMA_TOKEN: &str = "tok-servicebus-e2e-9c1d";
    /// Four subscriptions; alert `AZ-n` belongs to `SUBSCRIPTIONS[n % 4]`.
    pub(super) const SUBSCRIPTIONS: [&str; 4] = [
        "0b1f6471-1bf0-4dda-aec3-111122223333",
        "1c2e7582-2cf1-4eeb-bfd4-222233334444",
        "2d3f8693-3d02-4ffc-80e5-333344445555",
        "3e409704-4e13-4a0d-91f6-444455556666",
    ];
    pub(super) const POISON: &str = "{\"this is\": not JSON at all";

    pub(super) fn subscription_of(n: usize) -> &'static str {
        SUBSCRIPTIONS[n % SUBSCRIPTIONS.len()]
    }

    /// A Prisma Cloud alert for Azure: the account id is the subscription id.
    pub(super) fn azure_alert(n: usize) -> String {
        serde_json::json!({
            "alertId": format!("AZ-{n}"),
            "alertStatus": "open",
            "accountId": subscription_of(n),
            "accountName": format!("sub-{}", n % SUBSCRIPTIONS.len()),
            "cloudType": "azure",
            "resourceRegionId": "westeurope",
            "policyId": "pol-azure-nsg",
            "policyName": "Azure Network Security Group allows SSH from the internet",
            "severity": "high",
            "resourceId": format!("/subscriptions/{}/resourceGroups/rg-{n}/providers/Microsoft.Network/networkSecurityGroups/nsg-{n}", subscription_of(n)),
        })
        .to_string()
    }

    /// The remediation the API mock returns for alert `AZ-n`: two `az`
    /// commands, both on the alert's own NSG.
    pub(super) fn script_for(n: usize) -> String {
        format!(
            "az network nsg rule update --resource-group rg-{n} --nsg-name nsg-{n} --name allow-ssh --access Deny; \
             az network nsg rule update --resource-group rg-{n} --nsg-name nsg-{n} --name allow-rdp --access Deny"
        )
    }

    /// The argv of each command of `script_for(n)`, without the subscription flag.
    fn commands_of(n: usize) -> Vec<Vec<String>> {
        script_for(n)
            .split(';')
            .map(|c| shlex::split(c.trim()).expect("words"))
            .collect()
    }

    /// The documented v1 remediation endpoint: `{"alerts": [ids]}` →
    /// `{"alertIdVsCliScript": {id: script}}`.
    pub(super) async fn prisma_mock() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/permission/alert/remediation"))
            .and(header("x-redlock-auth", PRISMA_TOKEN))
            .respond_with(|request: &Request| {
                let body: serde_json::Value =
                    serde_json::from_slice(&request.body).expect("JSON body");
                let mut scripts = serde_json::Map::new();
                for id in body["alerts"].as_array().expect("alerts") {
                    let id = id.as_str().expect("id");
                    let n: usize = id.trim_start_matches("AZ-").parse().expect("AZ-n");
                    scripts.insert(id.to_owned(), script_for(n).into());
                }
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "alertIdVsCliScript": scripts,
                    "cliDescription": "Denies SSH from the internet; enforces HTTPS.",
                }))
            })
            .mount(&server)
            .await;
        server
    }

    fn planner(server: &MockServer) -> Arc<PrismaPlanner> {
        Arc::new(
            PrismaPlanner::builder()
                .with_endpoint(server.uri())
                .with_allow_http(true)
                .with_token(Secret::new(PRISMA_TOKEN))
                .build()
                .expect("prisma planner"),
        )
    }

    /// Every subscription mapped, each with its own `AZURE_CONFIG_DIR`.
    pub(super) fn contexts(dir: &Path) -> (ContextMap, HashMap<String, PathBuf>) {
        let mut map = ContextMap::new();
        let mut dirs = HashMap::new();
        for sub in SUBSCRIPTIONS {
            let config = dir.join(format!("azure-{sub}"));
            std::fs::create_dir_all(&config).unwrap();
            map = map.with_azure_subscription(sub, AzureContext::new().with_config_dir(&config));
            dirs.insert(sub.to_owned(), config);
        }
        (map, dirs)
    }

    fn fast_retry() -> Backoff {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(1))
    }

    /// Splits a recorded `az` call into (argv without `--subscription X`, X).
    fn without_subscription(argv: &[String]) -> (Vec<String>, Option<String>) {
        let mut out = Vec::new();
        let mut sub = None;
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            if a == "--subscription" {
                sub = it.next().cloned();
            } else {
                out.push(a.clone());
            }
        }
        (out, sub)
    }

    /// Which alert a recorded command belongs to (`rg-N`).
    fn alert_of(argv: &[String]) -> usize {
        let rg = argv
            .iter()
            .find_map(|a| a.strip_prefix("rg-"))
            .expect("resource group argument");
        rg.parse().expect("alert number")
    }

    fn assert_ran_once_each(standin: &StandIn, alerts: usize, dirs: &HashMap<String, PathBuf>) {
        let mut ran: HashMap<Vec<String>, usize> = HashMap::new();
        for call in standin.calls() {
            let (argv, sub) = without_subscription(&call.argv);
            let n = alert_of(&argv);
            assert_eq!(
                sub.as_deref(),
                Some(subscription_of(n)),
                "alert AZ-{n} ran in the wrong subscription: {:?}",
                call.argv
            );
            assert_eq!(
                call.var("AZURE_CONFIG_DIR"),
                Some(dirs[subscription_of(n)].to_str().unwrap()),
                "alert AZ-{n}: wrong az login"
            );
            assert_eq!(call.var("AWS_PROFILE"), None);
            *ran.entry(argv).or_default() += 1;
        }
        for n in 0..alerts {
            for command in commands_of(n) {
                assert_eq!(ran.get(&command), Some(&1), "AZ-{n}: {command:?}");
            }
        }
        assert_eq!(ran.len(), alerts * 2, "nothing else ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn azure_alerts_run_once_each_in_their_subscription_and_poison_is_dead_lettered() {
        let emu = ServiceBusEmulator::start(NS).await;
        emu.create_queue(
            "prisma",
            EntityConfig {
                lock_duration: Duration::from_secs(30),
                max_delivery_count: 3,
            },
        );
        let alerts = 100;
        for n in 0..alerts {
            emu.send("prisma", azure_alert(n).as_bytes());
        }
        emu.send("prisma", POISON.as_bytes());
        let server = prisma_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let (contexts, dirs) = contexts(dir.path());
        let standin = StandIn::new();
        let stats = Arc::new(Stats::new());
        let source = builder(&emu, "prisma")
            .with_lock_duration(Duration::from_secs(30))
            .with_stats(Arc::clone(&stats))
            .build()
            .unwrap();
        let audit = Arc::new(MemoryAudit::new());
        let engine = Engine::builder(
            Arc::new(source),
            planner(&server),
            Arc::new(standin.executor(contexts)),
        )
        .config(
            EngineConfig::default()
                .with_concurrency(16)
                .with_retry(fast_retry()),
        )
        .stats(stats)
        .audit(audit.clone())
        .build();
        let expected = alerts as u64;
        let (summary, reached) = support::run_until(&engine, Duration::from_secs(120), |s| {
            s.executed >= expected && s.acked >= expected && s.dead_lettered >= 3
        })
        .await;
        let failures: Vec<_> = audit
            .records()
            .into_iter()
            .filter(|r| r.decision != AuditDecision::Executed && r.body.as_deref() != Some(POISON))
            .map(|r| format!("{:?}: {:?}", r.alert_id, r.reason))
            .take(5)
            .collect();
        assert!(reached, "{summary:?}; first failures: {failures:?}");
        assert_eq!(summary.executed, expected, "{failures:?}");
        assert_eq!(summary.settle_errors, 0, "{summary:?}");
        assert_ran_once_each(&standin, alerts, &dirs);
        // Poison: left to MaxDeliveryCount (3), so three deliveries, each
        // audited with its body, then Service Bus moved it to $DeadLetterQueue.
        let poison: Vec<_> = audit
            .records()
            .into_iter()
            .filter(|r| r.body.as_deref() == Some(POISON))
            .collect();
        assert_eq!(poison.len(), 3, "{poison:?}");
        assert!(
            poison
                .iter()
                .all(|r| r.dead_letter.as_deref() == Some("left_to_redrive"))
        );
        assert_eq!(
            emu.dead_letter_bodies("prisma"),
            [POISON.as_bytes().to_vec()]
        );
        assert!(emu.messages("prisma").is_empty(), "queue not empty");
        eprintln!(
            "end to end: {alerts} alerts, Service Bus calls: {:?}",
            summary.api_calls
        );
    }

    /// Runs the first attempt of each alert's first command through `failing`,
    /// everything else through `ok`.
    #[derive(Debug)]
    struct FailFirst {
        ok: ProcessExecutor,
        failing: ProcessExecutor,
        seen: Mutex<HashSet<Vec<String>>>,
    }

    #[async_trait]
    impl CommandExecutor for FailFirst {
        fn check(&self, step: &Step, target: &Target) -> remediation::Result<()> {
            self.ok.check(step, target)
        }
        async fn execute(&self, step: &Step, target: &Target) -> remediation::Result<StepOutcome> {
            // Only the first command of a plan (`... --name allow-ssh ...`) fails, once.
            let argv = step.command.argv();
            let first = argv.iter().any(|a| a == "allow-ssh")
                && self.seen.lock().unwrap().insert(step.command.to_argv());
            if first {
                self.failing.execute(step, target).await
            } else {
                self.ok.execute(step, target).await
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_az_command_is_redelivered_and_succeeds_later() {
        let emu = ServiceBusEmulator::start(NS).await;
        emu.create_queue("prisma", short_lock(10));
        let alerts = 5;
        for n in 0..alerts {
            emu.send("prisma", azure_alert(n).as_bytes());
        }
        let server = prisma_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let (contexts, dirs) = contexts(dir.path());
        let standin = StandIn::new();
        let executor = FailFirst {
            ok: standin.executor(contexts.clone()),
            failing: standin
                .executor(contexts)
                .with_env_var("STANDIN_EXIT_CODE", "1")
                .with_env_var("STANDIN_STDERR", "ERROR: (AuthorizationFailed) simulated"),
            seen: Mutex::new(HashSet::new()),
        };
        let audit = Arc::new(MemoryAudit::new());
        let engine = Engine::builder(
            Arc::new(builder(&emu, "prisma").build().unwrap()),
            planner(&server),
            Arc::new(executor),
        )
        .config(EngineConfig::default().with_retry(fast_retry()))
        .audit(audit.clone())
        .build();
        let (summary, reached) = support::run_until(&engine, Duration::from_secs(40), |s| {
            s.executed >= alerts as u64 && s.acked >= alerts as u64
        })
        .await;
        assert!(reached, "{summary:?}");
        assert_eq!(
            summary.failed, alerts as u64,
            "each alert failed once: {summary:?}"
        );
        assert_eq!(summary.nacked, alerts as u64);
        assert_eq!(summary.executed, alerts as u64);
        for r in audit.records() {
            match r.decision {
                AuditDecision::Failed => assert_eq!(r.delivery_count, 1, "{r:?}"),
                AuditDecision::Executed => assert_eq!(r.delivery_count, 2, "{r:?}"),
                other => panic!("unexpected {other:?}: {r:?}"),
            }
        }
        // The first command of each alert ran twice (failed, then succeeded);
        // the second ran once, after the first succeeded.
        let calls = standin.calls();
        for n in 0..alerts {
            let [first, second] = <[Vec<String>; 2]>::try_from(commands_of(n)).unwrap();
            let count = |c: &Vec<String>| {
                calls
                    .iter()
                    .filter(|call| &without_subscription(&call.argv).0 == c)
                    .count()
            };
            assert_eq!((count(&first), count(&second)), (2, 1), "AZ-{n}");
            for call in &calls {
                let (argv, sub) = without_subscription(&call.argv);
                assert_eq!(sub.as_deref(), Some(subscription_of(alert_of(&argv))));
                assert_eq!(
                    call.var("AZURE_CONFIG_DIR"),
                    Some(dirs[subscription_of(alert_of(&argv))].to_str().unwrap())
                );
            }
        }
        assert!(emu.messages("prisma").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_outliving_the_lock_is_renewed_not_duplicated() {
        let emu = ServiceBusEmulator::start(NS).await;
        emu.create_queue("prisma", short_lock(10));
        let alerts = 3;
        for n in 0..alerts {
            emu.send("prisma", azure_alert(n).as_bytes());
        }
        let server = prisma_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let (contexts, dirs) = contexts(dir.path());
        let standin = StandIn::new();
        // Each az command takes 3 s: an alert's plan outlives three 2 s locks.
        let executor = standin
            .executor(contexts)
            .with_env_var("STANDIN_SLEEP", "3");
        let stats = Arc::new(Stats::new());
        let audit = Arc::new(MemoryAudit::new());
        let engine = Engine::builder(
            Arc::new(
                builder(&emu, "prisma")
                    .with_stats(Arc::clone(&stats))
                    .build()
                    .unwrap(),
            ),
            planner(&server),
            Arc::new(executor),
        )
        .stats(Arc::clone(&stats))
        .audit(audit.clone())
        .build();
        // A second consumer of the same queue, polling all along.
        let other = builder(&emu, "prisma").build().unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let run = tokio::spawn({
            let engine = engine.clone();
            let cancel = cancel.clone();
            async move { engine.run(cancel).await }
        });
        // Once the worker holds every message, the other consumer must see none
        // of them until they are completed (about 6 s: three 2 s locks).
        let t0 = Instant::now();
        while engine.stats().get(Counter::Received) < alerts as u64 {
            assert!(t0.elapsed() < Duration::from_secs(20), "never received");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut stolen = 0;
        while engine.stats().get(Counter::Acked) < alerts as u64 {
            assert!(t0.elapsed() < Duration::from_secs(40), "never finished");
            stolen += other.receive(1).await.expect("receive").len();
        }
        cancel.cancel();
        let summary: Summary = run.await.unwrap().unwrap();
        assert_eq!(
            stolen, 0,
            "delivered to a second consumer while being worked on"
        );
        assert_eq!(summary.received, alerts as u64, "{summary:?}");
        assert_eq!(summary.executed, alerts as u64, "{summary:?}");
        assert!(summary.extended >= alerts as u64, "{summary:?}");
        assert!(
            summary.api_calls[ApiCall::ServiceBusRenewLock.as_str()] >= 2 * alerts as u64,
            "{:?}",
            summary.api_calls
        );
        assert_eq!(summary.settle_errors, 0, "{summary:?}");
        assert!(audit.records().iter().all(|r| r.delivery_count == 1));
        assert_ran_once_each(&standin, alerts, &dirs);
        assert!(emu.messages("prisma").is_empty());
    }

    fn no_secrets(texts: &[&str], secrets: &[&str]) {
        for text in texts {
            for secret in secrets {
                assert!(!text.contains(secret), "{secret:?} leaked: {text}");
            }
            assert!(!text.contains("sig="), "a SAS token leaked: {text}");
        }
    }

    /// The worker binary: `--source servicebus:NS/TOPIC/subscriptions/SUB`
    /// with a connection string, the Prisma planner, `--azure-subscription`
    /// mappings and the `az` stand-in; stopped with SIGINT once done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_remediates_from_a_topic_subscription() {
        let bin = crate::support::examples::example_binary("remediate").await;
        let emu = ServiceBusEmulator::start(NS).await;
        emu.create_topic("prisma");
        emu.create_subscription("prisma", "remediator", short_lock(5));
        let alerts = 8;
        for n in 0..alerts {
            emu.send("prisma", azure_alert(n).as_bytes());
        }
        let server = prisma_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let (_, dirs) = contexts(dir.path());
        let standin = StandIn::new();
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args([
            "--source",
            &format!("servicebus:{NS}/prisma/subscriptions/remediator"),
            "--planner",
            "prisma",
            "--allow-http",
            "--execute",
            "--summary",
            "json",
        ]);
        for (sub, config) in &dirs {
            cmd.args([
                "--azure-subscription",
                &format!("{sub}={}", config.display()),
            ]);
        }
        let child = cmd
            .env("SERVICEBUS_CONNECTION_STRING", emu.connection_string(None))
            .env_remove("SB_QUEUE_KEY")
            .env_remove("SB_QUEUE_KEY_NAME")
            .env("SERVICEBUS_ENDPOINT", emu.endpoint())
            .env("SERVICEBUS_WAIT_SECONDS", "1")
            .env("API_ENDPOINT", server.uri())
            .env("AUTH_KEY", PRISMA_TOKEN)
            .env("RUST_LOG", "debug")
            .env("PATH", standin.path_env())
            .env(support::LOG_VAR, standin.log_path())
            .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the worker");
        let t0 = Instant::now();
        while standin.calls().len() < 2 * alerts
            || !emu.messages("prisma/subscriptions/remediator").is_empty()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the worker did not finish"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pid = child.id().expect("pid").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
        assert!(killed.success());
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("the worker stops on SIGINT")
            .expect("worker output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().expect("summary")).expect("JSON summary");
        assert_eq!(summary["executed"], alerts, "{stdout}\n{stderr}");
        assert_ran_once_each(&standin, alerts, &dirs);
        no_secrets(&[&stdout, &stderr], &[emu.root_key(), PRISMA_TOKEN]);
    }

    /// The published Azure script done right (`examples/servicebus_prisma_iam.rs`)
    /// drains a queue configured with the `SB_QUEUE_*` names and exits: alerts
    /// remediated in their subscriptions, poison in `$DeadLetterQueue`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ported_azure_script_drains_the_queue_and_exits() {
        let bin = crate::support::examples::example_binary("servicebus_prisma_iam").await;
        let emu = ServiceBusEmulator::start(NS).await;
        emu.create_queue("prisma", short_lock(2));
        let alerts = 6;
        for n in 0..alerts {
            emu.send("prisma", azure_alert(n).as_bytes());
        }
        emu.send("prisma", POISON.as_bytes());
        let server = prisma_mock().await;
        let dir = tempfile::tempdir().unwrap();
        let (_, dirs) = contexts(dir.path());
        let standin = StandIn::new();
        let mapping: Vec<String> = dirs
            .iter()
            .map(|(sub, config)| format!("{sub}={}", config.display()))
            .collect();
        let run = tokio::process::Command::new(&bin)
            .arg("--allow-http")
            .env_clear()
            .env("PATH", standin.path_env())
            .env(support::LOG_VAR, standin.log_path())
            .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
            .env("HOME", dir.path())
            .env("SB_QUEUE_NAME_SPACE", NS)
            .env("SB_QUEUE_NAME", "prisma")
            .env("SB_QUEUE_KEY_NAME", ROOT_RULE)
            .env("SB_QUEUE_KEY", emu.root_key())
            .env("SERVICEBUS_ENDPOINT", emu.endpoint())
            .env("API_ENDPOINT", server.uri())
            .env("AUTH_KEY", PRISMA_TOKEN)
            .env("AZURE_SUBSCRIPTIONS", mapping.join(","))
            .env("DEBUG", "true")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(90), run)
            .await
            .expect("the script did not exit: it must drain and stop")
            .expect("run the example");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_ran_once_each(&standin, alerts, &dirs);
        assert!(emu.messages("prisma").is_empty(), "{stderr}");
        assert_eq!(
            emu.dead_letter_bodies("prisma"),
            [POISON.as_bytes().to_vec()]
        );
        no_secrets(&[&stderr], &[emu.root_key(), PRISMA_TOKEN]);
    }
}

// ------------------------------------------------------------------- binaries

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_stops_at_once_on_a_wrong_key_naming_the_namespace() {
    let bin = support::examples::example_binary("remediate").await;
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    emu.send("alerts", b"{}");
    let wrong_key = "d3Jvbmcta2V5LWZvci10aGUtd29ya2VyLXRlc3Q=";
    let run = tokio::process::Command::new(&bin)
        .args(["--source", &format!("servicebus:{NS}/alerts"), "--execute"])
        .env_remove("SERVICEBUS_CONNECTION_STRING")
        .env("SB_QUEUE_KEY_NAME", ROOT_RULE)
        .env("SB_QUEUE_KEY", wrong_key)
        .env("SERVICEBUS_ENDPOINT", emu.endpoint())
        .env("RUST_LOG", "debug")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker must stop on a wrong key, not poll forever")
        .expect("run the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("source failed"), "{stderr}");
    for needle in ["401", NS, "alerts"] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    for text in [&stderr, &stdout] {
        assert!(!text.contains(wrong_key), "key leaked: {text}");
        assert!(!text.contains("sig="), "SAS token leaked: {text}");
    }
    assert_eq!(emu.unauthorized(), 1, "one refused call, then stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_refuses_a_malformed_servicebus_source() {
    let bin = support::examples::example_binary("remediate").await;
    let out = tokio::process::Command::new(&bin)
        .args(["--source", "servicebus:only-a-namespace"])
        .output()
        .await
        .expect("run the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("servicebus:NAMESPACE/QUEUE"), "{stderr}");
}

// ------------------------------------------------ configuration and telemetry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_configured_from_vars_receives_and_counts_in_the_engines_stats() {
    let emu = ServiceBusEmulator::start(NS).await;
    emu.create_queue("alerts", short_lock(10));
    emu.send("alerts", b"one");
    let source = ServiceBusSourceBuilder::from_vars([
        ("SERVICEBUS_CONNECTION_STRING", emu.connection_string(None)),
        ("SB_QUEUE_NAME", "alerts".to_owned()),
        ("SERVICEBUS_ENDPOINT", emu.endpoint()),
        ("SERVICEBUS_WAIT_SECONDS", "1".to_owned()),
    ])
    .build()
    .expect("a good configuration");
    let d = receive_one(&source, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&d.body()[..], b"one");
    d.ack().await.unwrap();
    let own = source.stats().api_calls(ApiCall::ServiceBusPeekLock);
    assert!(own >= 1, "counted in its own stats before an engine: {own}");

    // Built into an engine, it counts in the engine's stats, with what it
    // counted before.
    let source = Arc::new(source);
    let engine = Engine::builder(
        Arc::clone(&source) as Arc<dyn AlertSource>,
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(Recorder::default()),
    )
    .build();
    assert!(Arc::ptr_eq(source.stats(), engine.stats()));
    assert_eq!(engine.stats().api_calls(ApiCall::ServiceBusPeekLock), own);
    assert_eq!(engine.stats().api_calls(ApiCall::ServiceBusComplete), 1);
    let _ = source.receive(1).await.unwrap();
    assert!(engine.stats().api_calls(ApiCall::ServiceBusPeekLock) > own);
}

#[test]
fn a_bad_configuration_is_reported_by_build_without_the_key() {
    let key = "a-key-that-must-not-be-shown";
    let e = ServiceBusSourceBuilder::from_vars([
        ("SB_QUEUE_KEY", key),
        ("SERVICEBUS_WAIT_SECONDS", "soon"),
        ("SERVICEBUS_ENDPOINT", "ftp://127.0.0.1"),
    ])
    .build()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let text = e.to_string();
    for needle in [
        "SERVICEBUS_WAIT_SECONDS",
        "SERVICEBUS_ENDPOINT",
        "no namespace",
        "no key name",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
    assert!(!text.contains(key), "{text}");
}
