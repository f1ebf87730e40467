//! Two small pieces of pipeline state: how long the audit sink has been
//! failing ([`AuditHealth`]), and the deliveries a dry run keeps until its
//! pass ends ([`Held`]).

use crate::source::Delivery;
use crate::telemetry::{Counter, Stats};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When the audit sink started failing, if it is failing now.
#[derive(Debug, Default)]
pub(super) struct AuditHealth {
    broken_since: Mutex<Option<Instant>>,
}

impl AuditHealth {
    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.broken_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A record was written.
    pub(super) fn ok(&self) {
        let mut since = self.lock();
        if since.is_some() {
            tracing::info!("the audit sink writes again");
            *since = None;
        }
    }

    /// A record could not be written.
    pub(super) fn failed(&self) {
        self.lock().get_or_insert_with(Instant::now);
    }

    /// How long it has been failing.
    pub(super) fn outage(&self) -> Option<Duration> {
        self.lock().map(|since| since.elapsed())
    }
}

/// Dry run: deliveries kept (not settled) until the pass ends, by message id
/// (a delivery seen again replaces the older handle).
#[derive(Debug, Default)]
pub(super) struct Held {
    deliveries: Mutex<HashMap<String, Delivery>>,
}

impl Held {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Delivery>> {
        self.deliveries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(super) fn put(&self, delivery: Delivery) {
        self.lock()
            .insert(delivery.message_id().to_owned(), delivery);
    }

    /// Releases every held delivery for immediate redelivery.
    pub(super) async fn release_all(&self, stats: &Stats) {
        let held: Vec<Delivery> = self.lock().drain().map(|(_, d)| d).collect();
        if held.is_empty() {
            return;
        }
        tracing::info!(count = held.len(), "dry run: releasing what it held");
        let releases = held.into_iter().map(|d| async move {
            let id = d.message_id().to_owned();
            // Not an attempt: nothing was tried.
            match d.defer(Duration::ZERO).await {
                Ok(()) => stats.incr(Counter::Nacked),
                Err(e) => {
                    stats.incr(Counter::SettleErrors);
                    tracing::warn!(message_id = id, error = %e, "releasing a held delivery failed");
                }
            }
        });
        futures_util::future::join_all(releases).await;
    }
}
