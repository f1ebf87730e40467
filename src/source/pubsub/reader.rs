//! The streaming pull: a background [`Reader`] reads the client's
//! `MessageStream` (opening a new one after a failure) and hands messages
//! through a small channel to `receive`, which turns them into deliveries
//! ([`Shared`], the state a source and its deliveries share).

use super::error::PubSubError;
use super::settle::PubSubSettle;
use super::{COUNTS_KEPT, HANDOFF, MAX_BATCH, SHUTDOWN_WAIT};
use crate::error::{Error, Result};
use crate::source::Delivery;
use crate::telemetry::{ApiCall, StatsSlot};
use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A message and its handler read from the stream, or the stream's failure.
pub(super) type Received = std::result::Result<(Message, Handler), Error>;

/// The background reader's state: built, running, or shut down.
pub(super) enum ReaderState {
    Idle(Box<Reader>, mpsc::Sender<Received>),
    Running(tokio::task::JoinHandle<()>),
    Closed,
}

/// What a source and its deliveries share.
pub(super) struct Shared {
    pub(super) subscription: String,
    pub(super) dead_letter_topic: Option<String>,
    pub(super) publisher: Option<Publisher>,
    pub(super) max_lease: Duration,
    pub(super) max_nack_delay: Duration,
    pub(super) wait: Duration,
    /// Where calls are counted (shared with the reader).
    pub(super) slot: Arc<StatsSlot>,
    pub(super) rx: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    pub(super) reader: Mutex<ReaderState>,
    /// Fallback delivery counts by message id (no dead-letter policy).
    pub(super) counts: Mutex<HashMap<String, u32>>,
    pub(super) audit_only: AtomicU64,
    pub(super) closing: CancellationToken,
    pub(super) _close_on_drop: DropGuard,
}

impl Shared {
    fn reader(&self) -> MutexGuard<'_, ReaderState> {
        self.reader.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the background reader on first use (it needs a runtime).
    fn start(&self) {
        let mut state = self.reader();
        if matches!(*state, ReaderState::Idle(..)) {
            if let ReaderState::Idle(reader, tx) =
                std::mem::replace(&mut *state, ReaderState::Closed)
            {
                *state = ReaderState::Running(tokio::spawn(reader.run(tx)));
            }
        }
    }

    fn count(&self, message_id: &str, attempt: Option<i32>) -> u32 {
        if let Some(n) = attempt.and_then(|a| u32::try_from(a).ok()) {
            return n.max(1);
        }
        let mut counts = self.counts();
        if counts.len() >= COUNTS_KEPT && !counts.contains_key(message_id) {
            // Bounded memory: start over rather than grow without limit.
            counts.clear();
        }
        let n = counts.entry(message_id.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub(super) fn forget(&self, message_id: &str) {
        self.counts().remove(message_id);
    }

    /// Up to `max` deliveries: waits for the first one at most `wait`, then
    /// takes what is already there.
    pub(super) async fn receive(self: &Arc<Self>, max: usize) -> Result<Vec<Delivery>> {
        if self.closing.is_cancelled() {
            return Ok(Vec::new());
        }
        self.start();
        let max = max.clamp(1, MAX_BATCH);
        let mut rx = self.rx.lock().await;
        let first = match tokio::time::timeout(self.wait, rx.recv()).await {
            Err(_) | Ok(None) => return Ok(Vec::new()),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(pair))) => pair,
        };
        let mut out = Vec::with_capacity(max.min(HANDOFF));
        out.push(self.delivery(first.0, first.1));
        while out.len() < max {
            match rx.try_recv() {
                Ok(Ok((m, h))) => out.push(self.delivery(m, h)),
                // An error after messages: the next receive reports it... but
                // it is already taken from the channel, so log it here.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "Pub/Sub stream error");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// See [`PubSubSource::shutdown`](super::PubSubSource::shutdown).
    pub(super) async fn shutdown(&self) {
        self.closing.cancel();
        {
            let mut rx = self.rx.lock().await;
            rx.close();
            // Dropping a handler nacks its message.
            while let Ok(item) = rx.try_recv() {
                if item.is_ok() {
                    self.slot.count_api_call(ApiCall::PubSubModifyAckDeadline);
                }
            }
        }
        let task = {
            let mut reader = self.reader();
            std::mem::replace(&mut *reader, ReaderState::Closed)
        };
        if let ReaderState::Running(handle) = task {
            if tokio::time::timeout(SHUTDOWN_WAIT, handle).await.is_err() {
                tracing::warn!(
                    subscription = %self.subscription,
                    "Pub/Sub subscriber did not finish within {SHUTDOWN_WAIT:?} \
                     (deliveries left unsettled?); their messages return after their lease"
                );
            }
        }
    }

    fn delivery(self: &Arc<Self>, message: Message, handler: Handler) -> Delivery {
        let attempt = handler.delivery_attempt();
        let count = self.count(&message.message_id, attempt);
        let body = message.data.clone();
        let settle = PubSubSettle {
            shared: Arc::clone(self),
            message_id: message.message_id.clone(),
            handler: Mutex::new(Some(handler)),
            has_policy: attempt.is_some(),
            body: self.dead_letter_topic.as_ref().map(|_| body.clone()),
            attributes: if self.dead_letter_topic.is_some() {
                message.attributes.clone()
            } else {
                HashMap::new()
            },
            handed_out: Instant::now(),
        };
        let mut d = Delivery::new(message.message_id.clone(), body, Arc::new(settle))
            .with_delivery_count(count);
        if let Some(t) = &message.publish_time {
            let (secs, nanos) = (t.seconds(), t.nanos());
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(secs), u32::try_from(nanos)) {
                d = d.with_first_seen(UNIX_EPOCH + Duration::new(secs, nanos));
            }
        }
        if !message.ordering_key.is_empty() {
            d = d.with_attribute("ordering_key", message.ordering_key.clone());
        }
        let attributes: BTreeMap<&String, &String> = message.attributes.iter().collect();
        for (k, v) in attributes {
            d = d.with_attribute(format!("attribute.{k}"), v.clone());
        }
        d
    }
}

/// Reads the streaming pull and hands messages over through a channel.
pub(super) struct Reader {
    pub(super) subscriber: Subscriber,
    pub(super) subscription: String,
    pub(super) max_outstanding_messages: i64,
    pub(super) max_outstanding_bytes: i64,
    pub(super) max_lease: Duration,
    pub(super) max_lease_extension: Duration,
    pub(super) slot: Arc<StatsSlot>,
    pub(super) closing: CancellationToken,
}

impl Reader {
    /// A new message stream (counted as one streaming pull; the client may
    /// reopen the gRPC stream beneath it on its own).
    fn stream(&self) -> google_cloud_pubsub::subscriber::MessageStream {
        self.slot.count_api_call(ApiCall::PubSubStreamingPull);
        self.subscriber
            .subscribe(self.subscription.clone())
            .set_max_outstanding_messages(self.max_outstanding_messages)
            .set_max_outstanding_bytes(self.max_outstanding_bytes)
            .set_max_lease(self.max_lease)
            .set_max_lease_extension(self.max_lease_extension)
            .build()
    }

    async fn run(self: Box<Self>, tx: mpsc::Sender<Received>) {
        let mut backoff = Duration::from_millis(500);
        'streams: while !self.closing.is_cancelled() {
            let mut stream = self.stream();
            let token = stream.shutdown_token();
            loop {
                let next = tokio::select! {
                    biased;
                    () = self.closing.cancelled() => None,
                    n = stream.next() => Some(n),
                };
                let Some(next) = next else {
                    // Close the gRPC stream first, so the server sends it
                    // nothing more; then flush pending acks and nack what was
                    // received but never handed out.
                    drop(stream);
                    token.shutdown().await;
                    break 'streams;
                };
                let item = match next {
                    Some(Ok(pair)) => {
                        backoff = Duration::from_millis(500);
                        Ok(pair)
                    }
                    Some(Err(e)) => {
                        let err = Error::from(PubSubError::stream(&e, &self.subscription));
                        tracing::warn!(subscription = %self.subscription, error = %err, "Pub/Sub stream failed; reopening");
                        Err(err)
                    }
                    None => Err(Error::from(PubSubError::StreamEnded {
                        subscription: self.subscription.clone(),
                    })),
                };
                let failed = item.is_err();
                let sent = tokio::select! {
                    biased;
                    () = self.closing.cancelled() => false,
                    r = tx.send(item) => r.is_ok(),
                };
                if !sent {
                    // The source is gone or closing; an item not handed over
                    // was dropped here, which nacks it.
                    drop(stream);
                    token.shutdown().await;
                    break 'streams;
                }
                if failed {
                    // The client closed the stream; open a new one after a pause.
                    drop(stream);
                    tokio::select! {
                        () = self.closing.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue 'streams;
                }
            }
        }
    }
}
