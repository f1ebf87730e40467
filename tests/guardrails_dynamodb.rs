//! `DynamoDbGuardrails` against a real moto server: the same semantics as
//! the memory store's tests (bucket spacing and burst, window members
//! counted once and sliding, circuits opened once, closed with their counts,
//! listed), the calls counted in the stats, and two stores on two clients
//! racing for one bucket and one window without over-admitting.
//!
//! moto checks a conditional write and then writes without a lock; DynamoDB
//! applies it atomically. The server here handles one request at a time
//! ([`MotoServer::start_serialized`]), which gives the tests DynamoDB's
//! guarantee. Without the venv these tests fail with instructions.

mod support;

use remediation::guardrails::{DynamoDbGuardrails, GuardrailStore, Window};
use remediation::telemetry::{ApiCall, Stats};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::moto::{MotoServer, venv};
use support::store_semantics;

async fn store(moto: &MotoServer, table: &str) -> DynamoDbGuardrails {
    DynamoDbGuardrails::builder()
        .with_table(table)
        .with_endpoint(moto.endpoint())
        .with_region("us-east-1")
        .with_static_credentials("testing", "testing")
        .with_timeout(Duration::from_secs(3))
        .build()
        .await
        .expect("guardrail store")
}

async fn table(moto: &MotoServer, name: &str) -> DynamoDbGuardrails {
    let s = store(moto, name).await;
    s.create_table().await.expect("create table");
    s.create_table()
        .await
        .expect("create table again (idempotent)");
    s
}

/// A whole millisecond near the real time (the items' TTL stays in the
/// future), so the tests pass explicit, exact times.
fn base() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
}

#[tokio::test]
async fn a_bucket_spaces_tokens_after_its_burst() {
    let moto = MotoServer::start_serialized(&venv());
    let store = table(&moto, "guardrails-bucket").await;
    let stats = Arc::new(Stats::new());
    store.attach_stats(&stats);
    let t0 = base();
    store_semantics::buckets(&store, t0).await;
    // Every answer is one read; a token taken is one conditional write.
    assert_eq!(stats.api_calls(ApiCall::DynamoDbGetItem), 11);
    assert_eq!(stats.api_calls(ApiCall::DynamoDbPutItem), 7);
}

#[tokio::test]
async fn a_window_counts_members_once_and_slides() {
    let moto = MotoServer::start_serialized(&venv());
    let store = table(&moto, "guardrails-window").await;
    let t0 = base();
    store_semantics::windows(&store, t0).await;
}

#[tokio::test]
async fn circuits_open_once_and_close_with_their_counts() {
    let moto = MotoServer::start_serialized(&venv());
    let store = table(&moto, "guardrails-circuits").await;
    let stats = Arc::new(Stats::new());
    store.attach_stats(&stats);
    let t0 = base();
    store_semantics::circuits(&store, t0).await;
    assert!(stats.api_calls(ApiCall::DynamoDbScan) >= 3);
    assert_eq!(stats.api_calls(ApiCall::DynamoDbDeleteItem), 9);
}

#[tokio::test]
async fn a_missing_table_is_an_error_not_an_answer() {
    let moto = MotoServer::start_serialized(&venv());
    let store = store(&moto, "no-such-table").await;
    let now = base();
    assert!(
        store
            .take("k", Duration::from_secs(1), 1, now)
            .await
            .is_err()
    );
    assert!(
        store
            .admit("k", Duration::from_secs(1), 1, None, now)
            .await
            .is_err()
    );
    assert!(store.circuits().await.is_err());
}

/// Two stores on two clients, `tasks` tasks each, calling `attempt` in a
/// loop for `run`; the times (whole milliseconds) at which it said yes.
async fn race<F, Fut>(
    stores: [DynamoDbGuardrails; 2],
    tasks: usize,
    run: Duration,
    attempt: F,
) -> Vec<SystemTime>
where
    F: Fn(DynamoDbGuardrails, SystemTime) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Duration>> + Send,
{
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let end = SystemTime::now() + run;
    let mut handles = Vec::new();
    for i in 0..tasks {
        let store = stores[i % 2].clone();
        let attempt = attempt.clone();
        let admitted = Arc::clone(&admitted);
        handles.push(tokio::spawn(async move {
            while SystemTime::now() < end {
                let now = base();
                match attempt(store.clone(), now).await {
                    Ok(()) => admitted.lock().unwrap().push(now),
                    // Wake just when the token is due: the racers collide.
                    Err(wait) => tokio::time::sleep(wait.min(Duration::from_millis(500))).await,
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("racer");
    }
    let mut times = admitted.lock().unwrap().clone();
    times.sort();
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_workers_never_take_more_tokens_than_the_bucket_holds() {
    let moto = MotoServer::start_serialized(&venv());
    let a = table(&moto, "guardrails-race").await;
    let b = store(&moto, "guardrails-race").await;
    let stats = Arc::new(Stats::new());
    a.attach_stats(&stats);
    b.attach_stats(&stats);
    let every = Duration::from_millis(200);
    let run = Duration::from_secs(3);
    let times = race([a.clone(), b], 8, run, move |s, now| async move {
        match s.take("rate:aws:1:us-east-1", every, 1, now).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => panic!("take: {e}"),
        }
    })
    .await;
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        assert!(gap >= every, "two tokens {gap:?} apart: {times:?}");
    }
    // And the racers did get tokens: about one every 200 ms.
    assert!(times.len() >= 10, "only {} tokens in {run:?}", times.len());
    // The race was real: some writes lost it and were made again from a new read.
    let puts = stats.api_calls(ApiCall::DynamoDbPutItem);
    assert!(
        puts > times.len() as u64,
        "{puts} writes for {} tokens",
        times.len()
    );

    // A sliding window under the same race: never more than `limit` in any `window`.
    let window = Duration::from_millis(1_000);
    let limit = 3;
    let times = race(
        [a.clone(), store(&moto, "guardrails-race").await],
        8,
        Duration::from_millis(2_500),
        move |s, now| async move {
            match s.admit("rule:race#runs", window, limit, None, now).await {
                Ok(Window::Full { retry_after, .. }) => Err(retry_after),
                Ok(_) => Ok(()),
                Err(e) => panic!("admit: {e}"),
            }
        },
    )
    .await;
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t).unwrap() < window)
            .count();
        assert!(
            within <= limit as usize,
            "{within} admitted within {window:?} of {t:?}: {times:?}"
        );
    }
    assert!(times.len() >= 6, "only {} admitted", times.len());
}
