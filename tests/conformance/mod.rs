//! The conformance suite every [`AlertSource`] must pass, whatever the backend:
//! ack → never redelivered; nack(d) → redelivered no sooner than d; extend →
//! not redelivered while extended; delivery count grows; dead-letter → parked
//! with its body; a cancelled receiver or an abandoned delivery loses nothing.
//!
//! A backend test implements [`TestQueue`] for a fresh queue and calls
//! [`run_all`].

#![allow(dead_code)]

use async_trait::async_trait;
use remediation::source::{AlertSource, DeadLetterOutcome, Delivery};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh, empty queue under test.
#[async_trait]
pub trait TestQueue: Send + Sync {
    /// The source reading the queue.
    fn source(&self) -> Arc<dyn AlertSource>;
    /// Puts `body` on the queue.
    async fn send(&self, body: &[u8]);
    /// Bodies parked in the dead-letter queue.
    async fn dead_letter_bodies(&self) -> Vec<Vec<u8>>;
    /// The lease the queue gives a delivery before redelivering it.
    fn lease(&self) -> Duration;
}

/// Makes a fresh queue per case.
#[async_trait]
pub trait QueueFactory: Send + Sync {
    /// A new empty queue.
    async fn make(&self) -> Box<dyn TestQueue>;
}

/// Receives until a delivery arrives or `within` passes.
pub async fn receive_one(source: &dyn AlertSource, within: Duration) -> Option<Delivery> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let mut got = source.receive(1).await.expect("receive");
        if let Some(d) = got.pop() {
            assert!(got.is_empty(), "asked for one delivery, got more");
            return Some(d);
        }
    }
    None
}

pub async fn ack_is_final(q: &dyn TestQueue) {
    let s = q.source();
    q.send(b"{\"case\":\"ack\"}").await;
    let d = receive_one(&*s, q.lease() * 4)
        .await
        .expect("first delivery");
    assert_eq!(&d.body()[..], b"{\"case\":\"ack\"}");
    assert_eq!(d.delivery_count(), 1);
    d.ack().await.expect("ack");
    assert!(
        receive_one(&*s, q.lease() * 3).await.is_none(),
        "an acked message came back"
    );
}

pub async fn nack_redelivers_after_delay(q: &dyn TestQueue) {
    let s = q.source();
    q.send(b"nack").await;
    let d = receive_one(&*s, q.lease() * 4)
        .await
        .expect("first delivery");
    let delay = q.lease() / 2 + Duration::from_millis(100);
    let t0 = Instant::now();
    d.nack(delay).await.expect("nack");
    let again = receive_one(&*s, q.lease() * 4 + delay)
        .await
        .expect("redelivery");
    assert!(
        t0.elapsed() >= delay,
        "redelivered after {:?}, before the nack delay {delay:?}",
        t0.elapsed()
    );
    assert_eq!(&again.body()[..], b"nack");
    assert_eq!(again.delivery_count(), 2);
    again.ack().await.expect("ack");
}

pub async fn extend_keeps_the_lease(q: &dyn TestQueue) {
    let s = q.source();
    q.send(b"extend").await;
    let d = receive_one(&*s, q.lease() * 4)
        .await
        .expect("first delivery");
    let hold = q.lease() * 3;
    let t0 = Instant::now();
    while t0.elapsed() < hold {
        d.extend(q.lease()).await.expect("extend");
        // Nobody else may see it while it is extended.
        assert!(
            receive_one(&*s, q.lease() / 3).await.is_none(),
            "redelivered while its lease was being extended"
        );
    }
    d.ack().await.expect("ack");
}

pub async fn delivery_count_grows(q: &dyn TestQueue) {
    let s = q.source();
    q.send(b"count").await;
    for expected in 1..=3 {
        let d = receive_one(&*s, q.lease() * 4).await.expect("delivery");
        assert_eq!(d.delivery_count(), expected);
        if expected < 3 {
            d.nack(Duration::ZERO).await.expect("nack");
        } else {
            d.ack().await.expect("ack");
        }
    }
}

pub async fn dead_letter_parks_the_body(q: &dyn TestQueue) {
    let s = q.source();
    let body = b"{\"poison\":true, \"bytes\":\"\xc3\xa9\"}";
    q.send(body).await;
    let d = receive_one(&*s, q.lease() * 4).await.expect("delivery");
    let how = d.dead_letter("poison: test").await.expect("dead-letter");
    assert!(
        matches!(
            how,
            DeadLetterOutcome::Parked | DeadLetterOutcome::LeftToRedrive
        ),
        "{how:?}"
    );
    // Either parked now, or parked by redrive; wait for it to show up.
    let until = Instant::now() + q.lease() * 6;
    loop {
        if q.dead_letter_bodies().await.iter().any(|b| b == body) {
            break;
        }
        assert!(
            Instant::now() < until,
            "dead-lettered body never reached the DLQ"
        );
        // Drive redrive-based sources: receiving lets the queue count the delivery.
        if let Some(d) = receive_one(&*s, q.lease()).await {
            d.nack(Duration::ZERO).await.expect("nack");
        }
    }
    assert!(
        receive_one(&*s, q.lease() * 2).await.is_none(),
        "a dead-lettered message came back"
    );
}

pub async fn cancelled_receiver_loses_nothing(q: &dyn TestQueue) {
    let s = q.source();
    // A receive abandoned while waiting...
    let waiting = {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.receive(10).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    waiting.abort();
    let _ = waiting.await;
    q.send(b"after-cancel").await;
    let d = receive_one(&*s, q.lease() * 4)
        .await
        .expect("message sent after a cancelled receive");
    // ...and a delivery dropped without settling: the lease runs out, it comes back.
    drop(d);
    let again = receive_one(&*s, q.lease() * 6)
        .await
        .expect("an unsettled delivery must come back after its lease");
    assert_eq!(&again.body()[..], b"after-cancel");
    assert!(again.delivery_count() >= 2);
    again.ack().await.expect("ack");
}

/// Runs every case, each on a fresh queue.
pub async fn run_all(factory: &dyn QueueFactory) {
    ack_is_final(&*factory.make().await).await;
    nack_redelivers_after_delay(&*factory.make().await).await;
    extend_keeps_the_lease(&*factory.make().await).await;
    delivery_count_grows(&*factory.make().await).await;
    dead_letter_parks_the_body(&*factory.make().await).await;
    cancelled_receiver_loses_nothing(&*factory.make().await).await;
}
