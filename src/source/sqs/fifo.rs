//! FIFO queues: one delivery per message group at a time; later messages
//! of a busy group are held back and handed out, in order, once it is acked.

use super::{BACKEND, Shared};
use crate::aws::classify;
use crate::error::Error;
use crate::source::Delivery;
use crate::telemetry::ApiCall;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, Message};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

/// FIFO bookkeeping: groups with a delivery out, and messages held back.
#[derive(Default)]
pub(super) struct Groups {
    pub(super) busy: HashSet<String>,
    pub(super) held: HashMap<String, VecDeque<Held>>,
    /// Group order of first arrival, so held groups are served fairly.
    pub(super) order: VecDeque<String>,
}

pub(super) struct Held {
    pub(super) message: Message,
    pub(super) deadline: Instant,
}

impl Shared {
    pub(super) fn groups(&self) -> MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// FIFO: held-back messages whose group is free again, oldest group first.
    pub(super) fn take_held(self: &Arc<Self>, max: usize) -> Vec<Delivery> {
        let margin = self.held_margin();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut g = self.groups();
        let Groups { busy, held, order } = &mut *g;
        let mut i = 0;
        while i < order.len() && out.len() < max {
            let group = &order[i];
            if busy.contains(group) {
                i += 1;
                continue;
            }
            let Some(queue) = held.get_mut(group) else {
                order.remove(i);
                continue;
            };
            match queue.pop_front() {
                Some(h) if h.deadline > now + margin => {
                    if let Some(d) = self.delivery(h.message, h.deadline) {
                        busy.insert(group.clone());
                        out.push(d);
                    }
                }
                Some(_) => {
                    // Its visibility is about to end: SQS will redeliver it,
                    // and the rest of its group after it, in order.
                    tracing::debug!(group = %group, "held-back FIFO messages expired; left to SQS");
                    queue.clear();
                }
                None => {}
            }
            if queue.is_empty() {
                held.remove(group);
                order.remove(i);
            } else {
                i += 1;
            }
        }
        out
    }

    /// A held-back message this close to the end of its visibility timeout
    /// is not handed out any more.
    fn held_margin(&self) -> Duration {
        (self.visibility / 4).clamp(Duration::from_millis(500), Duration::from_secs(10))
    }

    /// FIFO: the delivery of `group` was settled. Acked: the group may go on.
    /// Returned to the queue: its held-back successors are released behind it.
    pub(super) async fn group_done(&self, group: &str, returned: bool) {
        let released = {
            let mut g = self.groups();
            g.busy.remove(group);
            if returned {
                g.order.retain(|o| o != group);
                g.held.remove(group).unwrap_or_default()
            } else {
                VecDeque::new()
            }
        };
        if released.is_empty() {
            return;
        }
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = released
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(h.message.receipt_handle.clone())
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        self.slot
            .count_api_call(ApiCall::SqsChangeMessageVisibilityBatch);
        let outcome = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
        match outcome {
            Ok(out) if out.failed().is_empty() => {}
            Ok(out) => tracing::warn!(
                group,
                failed = out.failed().len(),
                "releasing held-back FIFO messages partly failed; they return after their visibility timeout"
            ),
            Err(e) => tracing::warn!(
                group,
                error = %Error::from(classify(BACKEND, "ChangeMessageVisibilityBatch", e)),
                "releasing held-back FIFO messages failed; they return after their visibility timeout"
            ),
        }
    }
}
