//! The memory source passes the shared source conformance suite.

mod conformance;

use async_trait::async_trait;
use conformance::{QueueFactory, TestQueue};
use remediation::source::{AlertSource, MemorySource};
use std::sync::Arc;
use std::time::Duration;

struct MemQueue(MemorySource);

#[async_trait]
impl TestQueue for MemQueue {
    fn source(&self) -> Arc<dyn AlertSource> {
        Arc::new(self.0.clone())
    }
    async fn send(&self, body: &[u8]) {
        self.0.send(body.to_vec()).await.expect("send");
    }
    async fn dead_letter_bodies(&self) -> Vec<Vec<u8>> {
        self.0
            .dead_letters()
            .into_iter()
            .map(|d| d.body.to_vec())
            .collect()
    }
    fn lease(&self) -> Duration {
        Duration::from_millis(300)
    }
}

struct Factory;

#[async_trait]
impl QueueFactory for Factory {
    async fn make(&self) -> Box<dyn TestQueue> {
        Box::new(MemQueue(
            MemorySource::builder()
                .with_lease(Duration::from_millis(300))
                .with_wait(Duration::from_millis(50))
                .build(),
        ))
    }
}

#[tokio::test]
async fn memory_source_conforms() {
    conformance::run_all(&Factory).await;
}

#[tokio::test]
async fn max_deliveries_parks_natively() {
    let q = MemorySource::builder()
        .with_lease(Duration::from_millis(100))
        .with_wait(Duration::from_millis(20))
        .with_max_deliveries(2)
        .build();
    q.send(&b"flaky"[..]).await.unwrap();
    for _ in 0..2 {
        let d = conformance::receive_one(&q, Duration::from_secs(2))
            .await
            .unwrap();
        d.nack(Duration::ZERO).await.unwrap();
    }
    assert!(
        conformance::receive_one(&q, Duration::from_millis(300))
            .await
            .is_none()
    );
    let dead = q.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].body[..], b"flaky");
    assert_eq!(dead[0].delivery_count, 2);
}

#[tokio::test]
async fn closed_queue_is_exhausted_only_when_everything_is_settled() {
    let q = MemorySource::builder()
        .with_wait(Duration::from_millis(20))
        .build();
    q.send(&b"x"[..]).await.unwrap();
    q.close();
    assert!(!q.is_exhausted());
    let d = conformance::receive_one(&q, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(!q.is_exhausted(), "in flight is not exhausted");
    d.ack().await.unwrap();
    assert!(q.is_exhausted());
    assert!(q.send(&b"late"[..]).await.is_err());
}

#[tokio::test]
async fn send_waits_while_full() {
    let q = MemorySource::builder()
        .with_capacity(1)
        .with_wait(Duration::from_millis(20))
        .build();
    q.send(&b"a"[..]).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(100), q.send(&b"b"[..])).await;
    assert!(blocked.is_err(), "send on a full queue must wait");
    let d = conformance::receive_one(&q, Duration::from_secs(1))
        .await
        .unwrap();
    d.ack().await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), q.send(&b"b"[..]))
        .await
        .expect("room after ack")
        .unwrap();
}

#[tokio::test]
async fn room_made_by_native_dead_lettering_wakes_a_waiting_sender() {
    let q = MemorySource::builder()
        .with_capacity(1)
        .with_lease(Duration::from_millis(50))
        .with_wait(Duration::from_millis(20))
        .with_max_deliveries(1)
        .build();
    q.send(&b"poison"[..]).await.unwrap();
    let d = conformance::receive_one(&q, Duration::from_secs(1))
        .await
        .unwrap();
    drop(d); // never settled: the lease expires and max deliveries parks it
    let sender = {
        let q = q.clone();
        tokio::spawn(async move { q.send(&b"next"[..]).await })
    };
    // The next receive notices the expired lease and parks the message.
    let got = conformance::receive_one(&q, Duration::from_secs(2)).await;
    let sent = tokio::time::timeout(Duration::from_secs(2), sender).await;
    assert!(sent.is_ok(), "the sender was never woken");
    assert_eq!(q.dead_letters().len(), 1);
    drop(got);
}

#[tokio::test]
async fn closing_wakes_senders_waiting_for_room() {
    let q = MemorySource::builder().with_capacity(1).build();
    q.send(&b"a"[..]).await.unwrap();
    let sender = {
        let q = q.clone();
        tokio::spawn(async move { q.send(&b"b"[..]).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.close();
    let result = tokio::time::timeout(Duration::from_secs(2), sender)
        .await
        .expect("woken by close")
        .unwrap();
    assert!(result.is_err(), "a closed queue refuses the message");
}

#[tokio::test]
async fn a_receiver_waiting_on_a_closed_queue_returns_when_the_last_message_is_settled() {
    // The receive would wait an hour for new messages (or for the lease of
    // the one in flight to end); the ack of that last message must end it
    // instead, since nothing more can come.
    let q = MemorySource::builder()
        .with_wait(Duration::from_secs(3600))
        .with_lease(Duration::from_secs(3600))
        .build();
    q.try_send(&b"a"[..]).expect("send");
    q.close();
    let first = q.receive(10).await.expect("receive");
    assert_eq!(first.len(), 1);
    let waiting = tokio::spawn({
        let q = q.clone();
        async move { q.receive(10).await }
    });
    // Let the receiver start waiting before the ack.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a message is still in flight");
    first
        .into_iter()
        .next()
        .expect("one")
        .ack()
        .await
        .expect("ack");
    let rest = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the receiver was not woken by the last ack")
        .expect("join")
        .expect("receive");
    assert!(rest.is_empty());
    assert!(q.is_exhausted());
}
