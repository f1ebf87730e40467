//! Retries keep their redrive budget (issue 32): on a standard queue with a
//! redrive policy, a nacked or deferred delivery is re-queued as a new
//! message carrying its failed attempts, so receives that nobody worked on
//! — deferrals, and a dead worker's long poll that took the message and
//! hid it — no longer push a finding into the dead-letter queue unrun.
//! Against moto, whose redrive policy moves a message at the receive after
//! its count reached `maxReceiveCount`.

mod support;

use aws_sdk_sqs::types::MessageAttributeValue;
use remediation::source::AlertSource;
use remediation::source::sqs::{ATTEMPTS_ATTRIBUTE, SqsSource};
use std::time::Duration;
use support::sqs_moto::Moto;

/// A receive by a worker that then died: the message is hidden for
/// `hide` and its receive count goes up; nobody settles it.
async fn dead_receive(moto: &Moto, url: &str, hide: i32) -> usize {
    let out = moto
        .client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(hide)
        .wait_time_seconds(5)
        .send()
        .await
        .expect("receive");
    out.messages().len()
}

async fn source(moto: &Moto, url: &str, requeue: bool) -> SqsSource {
    moto.source()
        .with_queue_url(url)
        .with_wait(Duration::from_secs(5))
        .requeue_retries(requeue)
        .build()
        .await
        .expect("source")
}

/// One delivery from `source`, waiting up to ~10 s.
async fn one(source: &SqsSource) -> Option<remediation::source::Delivery> {
    for _ in 0..2 {
        let mut got = source.receive(1).await.expect("receive");
        if let Some(d) = got.pop() {
            return Some(d);
        }
    }
    None
}

async fn send_with_attribute(moto: &Moto, url: &str, body: &str) {
    moto.client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .message_attributes(
            "origin",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("prisma")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("send");
}

/// maxReceiveCount 3: one failed attempt, then two receives by dead
/// workers. Without re-queueing that is the third receive, and the next one
/// moves the finding to the DLQ unrun; re-queued, it comes back to a live
/// worker with its attempt counted and its attributes kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_receives_after_a_retry_do_not_dead_letter_a_finding_unrun() {
    for requeue in [true, false] {
        let moto = Moto::start().await;
        let (url, dlq) = moto.create_redrive_pair("phantom", 3).await;
        send_with_attribute(&moto, &url, "{\"alertId\":\"P-1\"}").await;
        let source = source(&moto, &url, requeue).await;
        let d = one(&source).await.expect("first delivery");
        assert_eq!(d.delivery_count(), 1);
        d.nack(Duration::from_secs(1)).await.expect("nack");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(dead_receive(&moto, &url, 1).await, 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(dead_receive(&moto, &url, 1).await, 1);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let again = one(&source).await;
        if !requeue {
            // The behaviour this replaces, shown on the same moto.
            assert!(again.is_none(), "moto did not redrive as SQS does");
            assert_eq!(moto.peek(&dlq).await.len(), 1);
            continue;
        }
        let again = again.expect("the finding came back to a live worker");
        // One failed attempt + three receives of the copy; its second attempt.
        assert_eq!(again.delivery_count(), 4);
        assert_eq!(again.attempt(), 2);
        assert_eq!(&again.body()[..], b"{\"alertId\":\"P-1\"}");
        assert_eq!(
            again
                .attributes()
                .get("attribute.origin")
                .map(String::as_str),
            Some("prisma")
        );
        assert_eq!(
            again
                .attributes()
                .get(&format!("attribute.{ATTEMPTS_ATTRIBUTE}"))
                .map(String::as_str),
            Some("1")
        );
        assert!(again.first_seen().is_some());
        again.ack().await.expect("ack");
        assert!(moto.peek(&dlq).await.is_empty(), "dead-lettered unrun");
        assert_eq!(moto.depth(&url).await, (0, 0, 0));
    }
}

/// Deferrals add no attempt and use up no receives: six of them on a queue
/// that dead-letters at the fourth receive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferrals_cost_no_receives_and_no_attempts() {
    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("deferred", 3).await;
    send_with_attribute(&moto, &url, "{\"alertId\":\"P-2\"}").await;
    let source = source(&moto, &url, true).await;
    for _ in 0..6 {
        let d = one(&source).await.expect("delivered again");
        assert_eq!(d.delivery_count(), 1, "a deferral counted");
        assert_eq!(d.attempt(), 1);
        d.defer(Duration::from_secs(1)).await.expect("defer");
    }
    let d = one(&source).await.expect("delivered again");
    d.ack().await.expect("ack");
    assert!(moto.peek(&dlq).await.is_empty());
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

/// A re-queued copy that the engine dead-letters (its attempts used up) is
/// parked in the redrive policy's queue at once, with its reason, and so is
/// poison: its receive count no longer decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_copy_is_dead_lettered_into_the_policys_queue() {
    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("parked", 3).await;
    send_with_attribute(&moto, &url, "{\"alertId\":\"P-3\"}").await;
    let source = source(&moto, &url, true).await;
    let d = one(&source).await.expect("first");
    d.nack(Duration::from_secs(1)).await.expect("nack");
    let d = one(&source).await.expect("second");
    assert_eq!(d.delivery_count(), 2);
    let how = d
        .dead_letter("step_failed after 2 deliveries")
        .await
        .unwrap();
    assert_eq!(how, remediation::source::DeadLetterOutcome::Parked);
    let parked = moto.peek(&dlq).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, "{\"alertId\":\"P-3\"}");
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
    moto.send_all(&url, &["poison".to_owned()], None).await;
    let d = one(&source).await.expect("poison");
    let how = d.dead_letter("undecodable").await.unwrap();
    assert_eq!(how, remediation::source::DeadLetterOutcome::Parked);
    let parked = moto.peek(&dlq).await;
    assert_eq!(parked.len(), 2);
    assert!(parked.iter().any(|(body, attrs)| {
        body == "poison"
            && attrs
                .get(remediation::source::sqs::REASON_ATTRIBUTE)
                .map(String::as_str)
                == Some("undecodable")
    }));
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}

/// A finding whose step failed, and whose re-queued copy then went to a dead
/// worker's receive, keeps its attempts: with `max_deliveries` 3, its second
/// failed attempt comes with delivery count 3 (one attempt + two receives of
/// the copy) and is retried, not dead-lettered; the third attempt succeeds.
/// (Before, the delivery count decided, and the finding was dead-lettered
/// after two real attempts.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receive_does_not_use_up_a_findings_attempts() {
    use remediation::engine::{AuditDecision, Engine, EngineConfig, MemoryAudit};
    use remediation::plan::CommandPolicy;
    use remediation::planner::AlertCliPlanner;
    use remediation::telemetry::Backoff;
    use std::sync::Arc;
    use support::recording::{RecordingExecutor, no_delay};

    let moto = Moto::start().await;
    let (url, dlq) = moto.create_redrive_pair("attempts", 10).await;
    let alert = serde_json::json!({
        "alertId": "P-4",
        "accountId": "123456789012",
        "cloudType": "aws",
        "resourceRegionId": "global",
        "policyName": "AWS IAM user with risky permissions",
        "resourceName": "flaky",
        "alertRemediationCli": "aws iam get-user --user-name flaky",
    })
    .to_string();
    moto.send_all(&url, &[alert], None).await;
    let mut executor = RecordingExecutor::new(no_delay);
    executor.failures = 2;
    let executor = Arc::new(executor);
    let audit = Arc::new(MemoryAudit::new());
    // One engine per worker, receiving with a 1 s wait: a stopped worker's
    // last receive still runs in moto for up to 1 s (a dead receive of its
    // own), so retries come after 2 s, when it has ended.
    let worker = |source: SqsSource| {
        Engine::builder(
            Arc::new(source),
            Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
            executor.clone(),
        )
        .config(
            EngineConfig::default()
                .with_max_deliveries(3)
                .with_retry(Backoff::new(Duration::from_secs(2), Duration::from_secs(2))),
        )
        .audit(audit.clone())
        .build()
    };
    let quick = || async {
        moto.source()
            .with_queue_url(&url)
            .with_wait(Duration::from_secs(1))
            .build()
            .await
            .expect("source")
    };
    // The first attempt fails and is re-queued with a 2 s delay (the worker
    // stops once that re-queue is done).
    let first = worker(quick().await);
    let (summary, reached) =
        support::run_until(&first, Duration::from_secs(20), |s| s.nacked >= 1).await;
    assert!(reached, "{summary:?}");
    // A worker takes the copy and dies.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(dead_receive(&moto, &url, 1).await, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = worker(quick().await);
    let (summary, reached) =
        support::run_until(&second, Duration::from_secs(30), |s| s.executed >= 1).await;
    assert!(reached, "{summary:?}");
    let records = audit.records();
    let seen: Vec<(AuditDecision, u32, bool)> = records
        .iter()
        .map(|r| (r.decision, r.delivery_count, r.dead_letter.is_some()))
        .collect();
    assert_eq!(
        seen,
        [
            (AuditDecision::Failed, 1, false),
            (AuditDecision::Failed, 3, false),
            (AuditDecision::Executed, 3, false),
        ],
        "{records:?}"
    );
    assert_eq!(executor.done(), ["flaky"]);
    assert!(moto.peek(&dlq).await.is_empty(), "dead-lettered");
    assert_eq!(moto.depth(&url).await, (0, 0, 0));
}
