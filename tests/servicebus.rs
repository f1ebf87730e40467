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
use remediation::engine::{Engine, EngineConfig, MemoryAudit, Stats};
use remediation::executor::{CommandExecutor, CommandPolicy, StepOutcome, StepStatus};
use remediation::model::Target;
use remediation::planner::{AlertCliPlanner, Step};
use remediation::redact::Secret;
use remediation::source::servicebus::{EndpointOverride, SOURCE_MESSAGE_ID_PROPERTY, api};
use remediation::source::{AlertSource, DeadLetterMode, ServiceBusSource, ServiceBusSourceBuilder};
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
    assert!(
        left <= LOCK && left > LOCK / 2,
        "lease deadline follows LockedUntilUtc: {left:?}"
    );
    assert_eq!(source.lock_duration(), LOCK, "observed from the server");
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
        stats.snapshot().api_calls[api::PEEK_LOCK],
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
    assert_eq!(stats.snapshot().api_calls[api::PEEK_LOCK], 30);
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
    assert!(stats.snapshot().api_calls[api::RENEW_LOCK] >= 3);
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
    assert_eq!(e.kind(), ErrorKind::Backend);
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
        self.ran.lock().unwrap().push(step.command.argv().to_vec());
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
