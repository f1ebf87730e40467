//! Read-ahead and planning ahead: the worker receives full batches whatever
//! the execution concurrency, a planner that wants batches is asked once for
//! everything waiting, and deliveries waiting to run keep their leases.

use async_trait::async_trait;
use remediation::Result;
use remediation::engine::{Engine, EngineConfig, LeasePolicy, MemoryAudit};
use remediation::executor::{CommandExecutor, StepOutcome, StepStatus};
use remediation::model::{Event, Target};
use remediation::plan::{CommandPolicy, Decision, Step};
use remediation::planner::{AlertCliPlanner, RemediationPlanner};
use remediation::source::{AlertSource, Capabilities, Delivery, MemorySource};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn alert(n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "alertId": format!("P-{n}"),
        "accountId": "123456789012",
        "cloudType": "aws",
        "resourceRegionId": "us-east-1",
        "resourceName": format!("user-{n}"),
        "policyName": "test policy",
        "alertRemediationCli": format!("aws iam get-user --user-name user-{n}"),
    }))
    .unwrap()
}

/// Runs every step in `step` (a stand-in for a CLI that takes real time).
#[derive(Debug)]
struct Slow {
    step: Duration,
    runs: AtomicUsize,
}

#[async_trait]
impl CommandExecutor for Slow {
    fn check(&self, step: &Step, _target: &Target) -> Result<()> {
        CommandPolicy::default().check(&step.command)
    }
    async fn execute(&self, _step: &Step, _target: &Target) -> Result<StepOutcome> {
        tokio::time::sleep(self.step).await;
        self.runs.fetch_add(1, Ordering::SeqCst);
        Ok(StepOutcome::new(StepStatus::Ok))
    }
}

/// `alert-cli` behind an API that counts calls: it wants batches.
#[derive(Debug, Default)]
struct Batching {
    inner: AlertCliPlanner,
    calls: Mutex<Vec<usize>>,
}

#[async_trait]
impl RemediationPlanner for Batching {
    fn name(&self) -> &str {
        "batching"
    }
    fn wants_batches(&self) -> bool {
        true
    }
    async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
        self.calls.lock().unwrap().push(events.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.inner.plan(events).await
    }
}

/// Records how many deliveries each receive asked for.
#[derive(Debug)]
struct Asking {
    inner: MemorySource,
    asked: Mutex<Vec<usize>>,
}

#[async_trait]
impl AlertSource for Asking {
    fn name(&self) -> &str {
        "asking"
    }
    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        self.asked.lock().unwrap().push(max);
        self.inner.receive(max).await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn is_exhausted(&self) -> bool {
        self.inner.is_exhausted()
    }
}

fn queue_of(n: usize, lease: Duration) -> MemorySource {
    let q = MemorySource::builder()
        .with_capacity(n)
        .with_lease(lease)
        .with_wait(Duration::from_millis(20))
        .build();
    for i in 0..n {
        q.try_send(alert(i)).unwrap();
    }
    q.close();
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batching_planner_is_asked_once_for_everything_waiting() {
    let n = 80;
    let q = queue_of(n, Duration::from_secs(30));
    let planner = Arc::new(Batching::default());
    let exec = Arc::new(Slow {
        step: Duration::from_millis(50),
        runs: AtomicUsize::new(0),
    });
    let engine = Engine::builder(Arc::new(q.clone()), planner.clone(), exec.clone())
        .config(
            EngineConfig::default()
                .with_concurrency(2)
                .with_read_ahead(n),
        )
        .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!(summary.executed as usize, n, "{summary:?}");
    assert_eq!(q.acked() as usize, n);
    let calls = planner.calls.lock().unwrap().clone();
    assert_eq!(
        calls.iter().sum::<usize>(),
        n,
        "each event planned once: {calls:?}"
    );
    // Planned batch by batch as received, it would be 8 calls of 10; the
    // first call takes the first receive, the next one all that waited.
    assert!(calls.len() <= 3, "planner calls {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_ask_for_full_batches_whatever_the_concurrency() {
    let n = 60;
    let q = Asking {
        inner: queue_of(n, Duration::from_secs(30)),
        asked: Mutex::new(Vec::new()),
    };
    let q = Arc::new(q);
    let exec = Arc::new(Slow {
        step: Duration::from_millis(10),
        runs: AtomicUsize::new(0),
    });
    let engine = Engine::builder(q.clone(), Arc::new(AlertCliPlanner::default()), exec)
        .config(EngineConfig::default().with_concurrency(2))
        .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!(summary.executed as usize, n, "{summary:?}");
    let asked = q.asked.lock().unwrap().clone();
    assert!(
        asked.iter().all(|&m| m == 10),
        "receives asked for {asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_waiting_to_run_keep_their_leases() {
    // 20 read ahead, one running at a time, 100 ms each: the last waits
    // about 2 s, well past its 400 ms lease, and must not be redelivered.
    let n = 20;
    let q = queue_of(n, Duration::from_millis(400));
    let exec = Arc::new(Slow {
        step: Duration::from_millis(100),
        runs: AtomicUsize::new(0),
    });
    let audit = Arc::new(MemoryAudit::new());
    let mut lease = LeasePolicy::default();
    lease.extension = Duration::from_millis(400);
    lease.margin = Duration::from_millis(150);
    let engine = Engine::builder(
        Arc::new(q.clone()),
        Arc::new(AlertCliPlanner::default()),
        exec.clone(),
    )
    .config(
        EngineConfig::default()
            .with_concurrency(1)
            .with_read_ahead(n)
            .with_lease(lease),
    )
    .audit(audit.clone())
    .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!(summary.executed as usize, n, "{summary:?}");
    assert_eq!(exec.runs.load(Ordering::SeqCst), n, "a step ran twice");
    assert!(summary.extended > 0, "{summary:?}");
    for r in audit.records() {
        assert_eq!(r.delivery_count, 1, "redelivered: {r:?}");
    }
}

/// Draining with a read-ahead: the first receive takes everything, the next
/// finds the queue empty while work is still in flight. A delivery released
/// meanwhile (here a duplicate waiting for the first run's claim; on SQS,
/// poison on its way to the redrive policy) must be received again before
/// the drain ends, not left behind.
#[tokio::test]
async fn a_drain_receives_again_after_the_work_in_flight() {
    let q = MemorySource::builder().with_wait(Duration::ZERO).build();
    q.send(alert(1)).await.unwrap();
    q.send(alert(1)).await.unwrap();
    let exec = Arc::new(Slow {
        step: Duration::from_millis(500),
        runs: AtomicUsize::new(0),
    });
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(remediation::source::Drain::new(q.clone())),
        Arc::new(AlertCliPlanner::default()),
        exec.clone(),
    )
    .config(
        EngineConfig::default().with_retry(remediation::telemetry::Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(100),
        )),
    )
    .audit(audit.clone())
    .build();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        engine.run(CancellationToken::new()),
    )
    .await
    .expect("drained")
    .unwrap();
    let codes: Vec<_> = audit
        .records()
        .iter()
        .map(|r| r.reason_code.clone().unwrap_or_default())
        .collect();
    assert_eq!(exec.runs.load(Ordering::SeqCst), 1, "{codes:?}");
    assert_eq!(summary.executed, 1, "{codes:?}");
    assert_eq!(q.pending(), 0, "left on the queue: {codes:?}");
    assert_eq!(
        codes.last().map(String::as_str),
        Some("duplicate"),
        "{codes:?}"
    );
}
