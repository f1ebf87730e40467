//! The semantics every [`GuardrailStore`] must have, run against each store
//! (`tests/guardrail_store.rs`: memory; `tests/guardrails_dynamodb.rs`:
//! DynamoDB on moto) with explicit times from `t0` (a whole millisecond).

use remediation::guardrails::{Circuit, GuardrailStore, Window};
use std::time::{Duration, SystemTime};

/// Token buckets: the burst, then one token every `every`; keys apart;
/// fractions of a millisecond kept.
pub async fn buckets(store: &dyn GuardrailStore, t0: SystemTime) {
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
}

/// Sliding windows: a member counted once, entries leaving the window,
/// anonymous entries counted each time.
pub async fn windows(store: &dyn GuardrailStore, t0: SystemTime) {
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

/// Circuits: opened once, listed apart from the counts beside them, closed
/// with their counts, also through the library call.
pub async fn circuits(store: &dyn GuardrailStore, t0: SystemTime) {
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let first = Circuit::new(at(0), "first", None);
    assert!(store.open("rule:x", &first).await.unwrap());
    assert!(
        !store
            .open("rule:x", &Circuit::new(at(5), "second", None))
            .await
            .unwrap()
    );
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
        remediation::guardrails::close_circuit(store, "y")
            .await
            .unwrap()
    );
}
