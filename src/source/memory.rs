//! An in-process queue with the delivery semantics of a real one: leases that
//! expire and redeliver, nack with delay, extend, delivery counts, a maximum
//! delivery count, and a dead-letter list that keeps every body.
//!
//! It is the reference implementation the engine is tested against, and a way
//! to feed the engine from your own code (a webhook handler, a test).

use super::{AlertSource, Capabilities, DeadLetterMode, DeadLetterOutcome, Delivery, Settle};
use crate::error::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// A message parked in the dead-letter list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The message id.
    pub message_id: String,
    /// The body, unchanged.
    pub body: Bytes,
    /// How many times it was delivered.
    pub delivery_count: u32,
    /// Why it was parked.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: Bytes,
    count: u32,
    first_seen: SystemTime,
}

#[derive(Debug)]
struct InFlight {
    message: Message,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Message>,
    delayed: Vec<(Instant, Message)>,
    /// Keyed by the queue's own lease tokens: a fast hasher is enough.
    in_flight: foldhash::HashMap<u64, InFlight>,
    dead: Vec<DeadLetter>,
    acked: u64,
    next_token: u64,
    next_id: u64,
    closed: bool,
}

impl State {
    /// Closed, and every message settled: nothing will ever be delivered again.
    fn drained(&self) -> bool {
        self.closed && self.ready.is_empty() && self.delayed.is_empty() && self.in_flight.is_empty()
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    ready: Notify,
    space: Notify,
    lease: Duration,
    wait: Duration,
    capacity: usize,
    max_deliveries: Option<u32>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update; the
        // queue's invariants hold between statements, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves expired leases and due delays back to the ready queue.
    fn promote(&self, state: &mut State, now: Instant) {
        let expired: Vec<u64> = state
            .in_flight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            if let Some(f) = state.in_flight.remove(&token) {
                self.requeue(state, f.message, "lease expired");
            }
        }
        let mut i = 0;
        while i < state.delayed.len() {
            if state.delayed[i].0 <= now {
                let (_, m) = state.delayed.swap_remove(i);
                self.requeue(state, m, "nacked");
            } else {
                i += 1;
            }
        }
    }

    /// Puts a message back, or dead-letters it if it has been delivered too often.
    fn requeue(&self, state: &mut State, message: Message, why: &str) {
        match self.max_deliveries {
            Some(max) if message.count >= max => {
                state.dead.push(DeadLetter {
                    message_id: message.id,
                    body: message.body,
                    delivery_count: message.count,
                    reason: format!("maximum delivery count {max} reached ({why})"),
                });
                // The queue has room again.
                self.space.notify_one();
            }
            _ => state.ready.push_back(message),
        }
    }

    fn next_wakeup(&self, state: &State) -> Option<Instant> {
        state
            .in_flight
            .values()
            .map(|f| f.deadline)
            .chain(state.delayed.iter().map(|(d, _)| *d))
            .min()
    }
}

/// An in-process queue. Cloning gives another handle to the same queue.
#[derive(Clone)]
pub struct MemorySource {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemorySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("MemorySource")
            .field("ready", &s.ready.len())
            .field("delayed", &s.delayed.len())
            .field("in_flight", &s.in_flight.len())
            .field("dead", &s.dead.len())
            .field("closed", &s.closed)
            .finish()
    }
}

impl Default for MemorySource {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySource {
    /// A queue with a 30 s lease, 1 s receive wait, room for 10 000 messages and
    /// no maximum delivery count.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a queue with non-default settings.
    pub fn builder() -> MemorySourceBuilder {
        MemorySourceBuilder::default()
    }

    /// Enqueues `body`, waiting while the queue is full. Returns the message id.
    pub async fn send(&self, body: impl Into<Bytes>) -> Result<String> {
        let body = body.into();
        loop {
            let space = self.shared.space.notified();
            {
                let mut s = self.shared.lock();
                if s.closed {
                    return Err(Error::Backend {
                        backend: "memory",
                        message: "queue is closed".into(),
                        temporary: false,
                        source: None,
                    });
                }
                let depth = s.ready.len() + s.delayed.len() + s.in_flight.len();
                if depth < self.shared.capacity {
                    s.next_id += 1;
                    let id = format!("mem-{}", s.next_id);
                    s.ready.push_back(Message {
                        id: id.clone(),
                        body,
                        count: 0,
                        first_seen: SystemTime::now(),
                    });
                    drop(s);
                    self.shared.ready.notify_one();
                    return Ok(id);
                }
            }
            space.await;
        }
    }

    /// Enqueues `body` without waiting; fails if the queue is full or closed.
    pub fn try_send(&self, body: impl Into<Bytes>) -> Result<String> {
        let mut s = self.shared.lock();
        let depth = s.ready.len() + s.delayed.len() + s.in_flight.len();
        if s.closed || depth >= self.shared.capacity {
            return Err(Error::Backend {
                backend: "memory",
                message: if s.closed {
                    "queue is closed"
                } else {
                    "queue is full"
                }
                .into(),
                temporary: !s.closed,
                source: None,
            });
        }
        s.next_id += 1;
        let id = format!("mem-{}", s.next_id);
        s.ready.push_back(Message {
            id: id.clone(),
            body: body.into(),
            count: 0,
            first_seen: SystemTime::now(),
        });
        drop(s);
        self.shared.ready.notify_one();
        Ok(id)
    }

    /// Closes the queue to new messages; it is exhausted once everything in it is settled.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_waiters();
        // Senders waiting for room learn that the queue is closed.
        self.shared.space.notify_waiters();
    }

    /// Messages parked in the dead-letter list.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.lock().dead.clone()
    }

    /// How many messages were acked.
    pub fn acked(&self) -> u64 {
        self.shared.lock().acked
    }

    /// Messages not yet acked or dead-lettered (ready, delayed or leased).
    pub fn pending(&self) -> usize {
        let s = self.shared.lock();
        s.ready.len() + s.delayed.len() + s.in_flight.len()
    }
}

/// Builds a [`MemorySource`].
#[derive(Debug, Clone)]
pub struct MemorySourceBuilder {
    lease: Duration,
    wait: Duration,
    capacity: usize,
    max_deliveries: Option<u32>,
}

impl Default for MemorySourceBuilder {
    fn default() -> Self {
        MemorySourceBuilder {
            lease: Duration::from_secs(30),
            wait: Duration::from_secs(1),
            capacity: 10_000,
            max_deliveries: None,
        }
    }
}

impl MemorySourceBuilder {
    /// How long a delivery is leased before it is redelivered.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }
    /// How long `receive` waits for a message before returning empty.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
    /// How many messages the queue holds before `send` waits.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }
    /// Dead-letters a message natively once it was delivered this many times and
    /// comes back again (like an SQS redrive policy's `maxReceiveCount`).
    pub fn with_max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = Some(max.max(1));
        self
    }
    /// Builds the queue.
    pub fn build(self) -> MemorySource {
        MemorySource {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                space: Notify::new(),
                lease: self.lease,
                wait: self.wait,
                capacity: self.capacity,
                max_deliveries: self.max_deliveries,
            }),
        }
    }
}

#[async_trait]
impl AlertSource for MemorySource {
    fn name(&self) -> &str {
        "memory"
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        let give_up = Instant::now() + self.shared.wait;
        loop {
            let notified = self.shared.ready.notified();
            let wake = {
                let now = Instant::now();
                let mut s = self.shared.lock();
                self.shared.promote(&mut s, now);
                if !s.ready.is_empty() {
                    let mut out = Vec::with_capacity(max.max(1).min(s.ready.len()));
                    while out.len() < max.max(1) {
                        let Some(mut m) = s.ready.pop_front() else {
                            break;
                        };
                        m.count += 1;
                        s.next_token += 1;
                        let token = s.next_token;
                        let deadline = now + self.shared.lease;
                        let delivery = Delivery::new(
                            m.id.clone(),
                            m.body.clone(),
                            Arc::new(MemorySettle {
                                shared: Arc::clone(&self.shared),
                                token,
                            }),
                        )
                        .with_delivery_count(m.count)
                        .with_first_seen(m.first_seen)
                        .with_lease_deadline(deadline);
                        s.in_flight.insert(
                            token,
                            InFlight {
                                message: m,
                                deadline,
                            },
                        );
                        out.push(delivery);
                    }
                    return Ok(out);
                }
                if s.drained() {
                    return Ok(Vec::new());
                }
                self.shared.next_wakeup(&s)
            };
            let now = Instant::now();
            if now >= give_up {
                return Ok(Vec::new());
            }
            let until = wake.map_or(give_up, |w| w.min(give_up));
            let _ = tokio::time::timeout(until.saturating_duration_since(now), notified).await;
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extend: true,
            redelivery: true,
            dead_letter: DeadLetterMode::Native,
            lease: Some(self.shared.lease),
            max_batch: 10,
        }
    }

    fn is_exhausted(&self) -> bool {
        self.shared.lock().drained()
    }

    fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }
}

#[derive(Debug)]
struct MemorySettle {
    shared: Arc<Shared>,
    token: u64,
}

impl MemorySettle {
    fn take(&self, state: &mut State) -> Result<InFlight> {
        state
            .in_flight
            .remove(&self.token)
            .ok_or_else(|| Error::Backend {
                backend: "memory",
                message: "lease expired: the message was already redelivered".into(),
                temporary: false,
                source: None,
            })
    }
}

#[async_trait]
impl Settle for MemorySettle {
    async fn ack(&self) -> Result<()> {
        let mut s = self.shared.lock();
        let taken = self.take(&mut s);
        if taken.is_ok() {
            s.acked += 1;
        }
        let drained = s.drained();
        // The message is freed after the lock is released: other deliveries
        // settle and receive meanwhile.
        drop(s);
        taken?;
        self.shared.space.notify_one();
        if drained {
            // A receiver waiting on a closed queue learns at once that
            // nothing more will come.
            self.shared.ready.notify_waiters();
        }
        Ok(())
    }

    async fn nack(&self, retry_after: Duration) -> Result<()> {
        let mut s = self.shared.lock();
        let f = self.take(&mut s)?;
        if retry_after.is_zero() {
            self.shared.requeue(&mut s, f.message, "nacked");
        } else {
            s.delayed.push((Instant::now() + retry_after, f.message));
        }
        drop(s);
        self.shared.ready.notify_waiters();
        Ok(())
    }

    async fn extend(&self, by: Duration) -> Result<()> {
        let mut s = self.shared.lock();
        match s.in_flight.get_mut(&self.token) {
            Some(f) => {
                f.deadline = Instant::now() + by;
                Ok(())
            }
            None => Err(Error::Backend {
                backend: "memory",
                message: "cannot extend: the lease already expired".into(),
                temporary: false,
                source: None,
            }),
        }
    }

    async fn dead_letter(&self, reason: &str) -> Result<DeadLetterOutcome> {
        let mut s = self.shared.lock();
        let f = self.take(&mut s)?;
        s.dead.push(DeadLetter {
            message_id: f.message.id,
            body: f.message.body,
            delivery_count: f.message.count,
            reason: reason.to_owned(),
        });
        drop(s);
        self.shared.space.notify_one();
        self.shared.ready.notify_waiters();
        Ok(DeadLetterOutcome::Parked)
    }
}
