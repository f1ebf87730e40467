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

use remediation::guardrails::{Circuit, DynamoDbGuardrails, GuardrailStore, Window};
use remediation::telemetry::{ApiCall, Stats};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::moto::{MotoServer, venv};

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
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let every = Duration::from_millis(500);
    // Burst 2: two at once, then one every 500 ms.
    assert_eq!(store.take("k", every, 2, at(0)).await.unwrap(), None);
    assert_eq!(store.take("k", every, 2, at(0)).await.unwrap(), None);
    assert_eq!(
        store.take("k", every, 2, at(0)).await.unwrap(),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        store.take("k", every, 2, at(200)).await.unwrap(),
        Some(Duration::from_millis(300))
    );
    assert_eq!(store.take("k", every, 2, at(500)).await.unwrap(), None);
    // Another key has its own bucket.
    assert_eq!(store.take("other", every, 1, at(500)).await.unwrap(), None);
    assert_eq!(
        store.take("other", every, 1, at(600)).await.unwrap(),
        Some(Duration::from_millis(400))
    );
    // A fraction of a millisecond is kept: three a second, exactly.
    let third = Duration::from_secs(1) / 3;
    for i in 0..3 {
        assert_eq!(
            store
                .take("thirds", third, 1, at(1_000) + third * i)
                .await
                .unwrap(),
            None
        );
    }
    assert!(
        store
            .take("thirds", third, 1, at(1_999))
            .await
            .unwrap()
            .is_some()
    );
    // Every answer is one read; a token taken is one conditional write.
    assert_eq!(stats.api_calls(ApiCall::DynamoDbGetItem), 11);
    assert_eq!(stats.api_calls(ApiCall::DynamoDbPutItem), 7);
}

#[tokio::test]
async fn a_window_counts_members_once_and_slides() {
    let moto = MotoServer::start_serialized(&venv());
    let store = table(&moto, "guardrails-window").await;
    let t0 = base();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let w = Duration::from_secs(10);
    assert_eq!(
        store.admit("r", w, 2, Some("a"), at(0)).await.unwrap(),
        Window::Admitted { count: 1 }
    );
    assert_eq!(
        store.admit("r", w, 2, Some("a"), at(1)).await.unwrap(),
        Window::Counted
    );
    assert_eq!(
        store.admit("r", w, 2, Some("b"), at(2_000)).await.unwrap(),
        Window::Admitted { count: 2 }
    );
    assert_eq!(
        store.admit("r", w, 2, Some("c"), at(3_000)).await.unwrap(),
        Window::Full {
            count: 2,
            retry_after: Duration::from_secs(7)
        }
    );
    // `a` left the window at 10 s.
    assert_eq!(
        store.admit("r", w, 2, Some("c"), at(10_000)).await.unwrap(),
        Window::Admitted { count: 2 }
    );
    // `b` is still in it, `c` now too; anonymous entries count each time.
    assert_eq!(
        store.admit("r", w, 2, Some("b"), at(10_001)).await.unwrap(),
        Window::Counted
    );
    assert_eq!(
        store.admit("anon", w, 2, None, at(0)).await.unwrap(),
        Window::Admitted { count: 1 }
    );
    assert_eq!(
        store.admit("anon", w, 2, None, at(0)).await.unwrap(),
        Window::Admitted { count: 2 }
    );
    assert!(
        !store
            .admit("anon", w, 2, None, at(9_999))
            .await
            .unwrap()
            .admitted()
    );
}

#[tokio::test]
async fn circuits_open_once_and_close_with_their_counts() {
    let moto = MotoServer::start_serialized(&venv());
    let store = table(&moto, "guardrails-circuits").await;
    let stats = Arc::new(Stats::new());
    store.attach_stats(&stats);
    let t0 = base();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let first = Circuit::new(at(0), "first", None);
    store.open("rule:x", &first).await.unwrap();
    store
        .open("rule:x", &Circuit::new(at(5), "second", None))
        .await
        .unwrap();
    assert_eq!(store.circuit("rule:x").await.unwrap(), Some(first.clone()));
    let cooling = Circuit::new(at(0), "cools", Some(at(60_000)));
    store
        .open("target:aws:1:us-east-1", &cooling)
        .await
        .unwrap();
    assert_eq!(
        store.circuits().await.unwrap(),
        vec![
            ("rule:x".to_owned(), first),
            ("target:aws:1:us-east-1".to_owned(), cooling)
        ]
    );
    // The counts beside it (and buckets and windows) are not circuits.
    let w = Duration::from_secs(60);
    store.admit("rule:x#runs", w, 1, None, at(0)).await.unwrap();
    store
        .admit("rule:x#failures", w, 1, None, at(0))
        .await
        .unwrap();
    store.take("rate:x", w, 1, at(0)).await.unwrap();
    assert!(
        !store
            .admit("rule:x#runs", w, 1, None, at(1))
            .await
            .unwrap()
            .admitted()
    );
    assert_eq!(store.circuits().await.unwrap().len(), 2);

    assert!(store.close("rule:x").await.unwrap());
    assert!(!store.close("rule:x").await.unwrap());
    assert_eq!(store.circuit("rule:x").await.unwrap(), None);
    let left = store.circuits().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "target:aws:1:us-east-1");
    // Its counts went with it.
    for window in ["rule:x#runs", "rule:x#failures"] {
        assert_eq!(
            store.admit(window, w, 1, None, at(2)).await.unwrap(),
            Window::Admitted { count: 1 },
            "{window}"
        );
    }
    // Through the library call too (a bare name is a rule).
    store
        .open("rule:y", &Circuit::new(at(0), "y", None))
        .await
        .unwrap();
    assert!(
        remediation::guardrails::close_circuit(&store, "y")
            .await
            .unwrap()
    );
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
