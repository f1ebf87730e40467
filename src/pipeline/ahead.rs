//! Planning ahead, for a planner that [wants batches](RemediationPlanner::wants_batches)
//! (one that calls a rate-limited API per call): the events of every batch
//! waiting in the read-ahead are gathered into one `plan` call.
//!
//! One call runs at a time. The next one starts when the stock of planned
//! events not yet running (waiting for an execution slot) is below the
//! execution concurrency — so execution never starves — and takes
//! everything that arrived meanwhile. The planner's own limits (the Prisma
//! planner's batch size and window) then decide how many API calls that is.
//! While events wait here their batch keeps its leases (the caller wraps
//! the wait in the lease keeper).

use super::planning::{fewer_decisions, plan_guarded};
use crate::error::Result;
use crate::model::Event;
use crate::plan::Decision;
use crate::planner::RemediationPlanner;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Notify, oneshot};

/// The gatherer of one pipeline.
#[derive(Debug)]
pub(super) struct PlanAhead {
    planner: Arc<dyn RemediationPlanner>,
    /// Plan when fewer planned events than this wait to run.
    low: usize,
    state: Mutex<State>,
    /// Wakes the driver: a request arrived, or the stock fell.
    wake: Notify,
}

#[derive(Debug, Default)]
struct State {
    waiting: Vec<Request>,
    /// Whether a driver task is running.
    driving: bool,
    /// Planned events that have not started to run.
    stock: usize,
}

#[derive(Debug)]
struct Request {
    events: Vec<Event>,
    reply: oneshot::Sender<Answer>,
}

/// The planner's answer for one batch's events.
#[derive(Debug)]
pub(super) struct Answer {
    /// The events, given back in order.
    pub(super) events: Vec<Event>,
    /// One decision per event, in order.
    pub(super) decisions: Vec<Result<Decision>>,
    /// The batch's share of the stock.
    pub(super) stock: Stock,
}

/// The plans of one batch that have not started to run; each one
/// [`started`](Self::started) (or dropped with the rest) leaves the stock.
#[derive(Debug)]
pub(super) struct Stock {
    ahead: Arc<PlanAhead>,
    left: AtomicUsize,
}

impl Stock {
    /// One of this batch's plans runs now (or will not run at all).
    pub(super) fn started(&self) {
        let taken = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if taken {
            self.ahead.unstock(1);
        }
    }
}

impl Drop for Stock {
    fn drop(&mut self) {
        let left = std::mem::take(self.left.get_mut());
        if left > 0 {
            self.ahead.unstock(left);
        }
    }
}

impl PlanAhead {
    pub(super) fn new(planner: Arc<dyn RemediationPlanner>, concurrency: usize) -> Arc<Self> {
        Arc::new(PlanAhead {
            planner,
            low: concurrency.max(1),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unstock(&self, n: usize) {
        let mut st = self.state();
        st.stock = st.stock.saturating_sub(n);
        if st.stock < self.low && !st.waiting.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Plans `events` with whatever else is waiting. `None` only if the
    /// driver went away without answering (the runtime is shutting down):
    /// the events are then lost to the caller, who releases its deliveries.
    pub(super) async fn plan(self: &Arc<Self>, events: Vec<Event>) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut st = self.state();
            st.waiting.push(Request { events, reply });
            !std::mem::replace(&mut st.driving, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drive());
        } else {
            self.wake.notify_one();
        }
        answer.await.ok()
    }

    /// Runs planner calls while requests wait; ends when none is left.
    async fn drive(self: Arc<Self>) {
        loop {
            let batch = loop {
                let woken = self.wake.notified();
                {
                    let mut st = self.state();
                    // A caller that gave up (its task was dropped) is not planned.
                    st.waiting.retain(|r| !r.reply.is_closed());
                    if st.waiting.is_empty() {
                        st.driving = false;
                        return;
                    }
                    if st.stock < self.low {
                        break std::mem::take(&mut st.waiting);
                    }
                }
                woken.await;
            };
            let mut events = Vec::with_capacity(batch.iter().map(|r| r.events.len()).sum());
            let mut lens = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for mut r in batch {
                lens.push(r.events.len());
                events.append(&mut r.events);
                replies.push(r.reply);
            }
            let mut decisions = plan_guarded(&*self.planner, &events).await;
            // A planner that answered fewer decisions than events: the rest fail.
            decisions.truncate(events.len());
            while decisions.len() < events.len() {
                decisions.push(Err(fewer_decisions(&*self.planner)));
            }
            let mut events = events.into_iter();
            let mut decisions = decisions.into_iter();
            for (reply, n) in replies.into_iter().zip(lens) {
                let events: Vec<Event> = events.by_ref().take(n).collect();
                let decisions: Vec<Result<Decision>> = decisions.by_ref().take(n).collect();
                let planned = decisions
                    .iter()
                    .filter(|d| matches!(d, Ok(Decision::Plan(_))))
                    .count();
                self.state().stock += planned;
                let stock = Stock {
                    ahead: Arc::clone(&self),
                    left: AtomicUsize::new(planned),
                };
                // A caller gone meanwhile drops the answer, and its stock with it.
                let _ = reply.send(Answer {
                    events,
                    decisions,
                    stock,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PrismaAlert;
    use crate::model::{Cloud, Target};
    use crate::plan::{Plan, Skip, SkipReason};
    use async_trait::async_trait;

    /// Plans every event, recording the size of each call.
    #[derive(Debug, Default)]
    struct Counting {
        calls: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl RemediationPlanner for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        async fn plan(&self, events: &[Event]) -> Vec<Result<Decision>> {
            self.calls.lock().unwrap().push(events.len());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            events
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    Ok(if i % 2 == 0 {
                        Decision::Plan(Plan::new(
                            "counting",
                            Target::new(Cloud::Aws, None),
                            Vec::new(),
                        ))
                    } else {
                        Decision::Skip(Skip::new(SkipReason::NotOpen, "resolved"))
                    })
                })
                .collect()
        }
    }

    fn events(n: usize, tag: &str) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let body = format!(r#"{{"alertId":"P-{tag}{i}","status":"open"}}"#);
                Event::PrismaAlert(Box::new(
                    serde_json::from_str::<PrismaAlert>(&body).expect("alert"),
                ))
            })
            .collect()
    }

    #[tokio::test]
    async fn batches_waiting_behind_a_call_share_the_next_one_and_get_their_own_events_back() {
        let planner = Arc::new(Counting::default());
        let ahead = PlanAhead::new(planner.clone(), 8);
        let first = tokio::spawn({
            let ahead = Arc::clone(&ahead);
            async move { ahead.plan(events(3, "a")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Three more batches arrive while the first call runs.
        let later: Vec<_> = ["b", "c", "d"]
            .into_iter()
            .map(|tag| {
                let ahead = Arc::clone(&ahead);
                tokio::spawn(async move { ahead.plan(events(4, tag)).await })
            })
            .collect();
        let a = first.await.unwrap().expect("answer");
        assert_eq!(a.events.len(), 3);
        assert_eq!(a.decisions.len(), 3);
        for (tag, h) in ["b", "c", "d"].into_iter().zip(later) {
            let answer = h.await.unwrap().expect("answer");
            let ids: Vec<_> = answer.events.iter().filter_map(Event::alert_id).collect();
            let want: Vec<String> = (0..4).map(|i| format!("P-{tag}{i}")).collect();
            assert_eq!(ids, want);
        }
        assert_eq!(*planner.calls.lock().unwrap(), [3, 12]);
    }

    #[tokio::test]
    async fn a_full_stock_holds_the_next_call_until_plans_start() {
        let planner = Arc::new(Counting::default());
        // Plan again only when fewer than 2 planned events wait to run.
        let ahead = PlanAhead::new(planner.clone(), 2);
        let a = ahead.plan(events(4, "a")).await.expect("answer");
        // Two of the four were plans: the stock is full.
        assert_eq!(ahead.state().stock, 2);
        let next = tokio::spawn({
            let ahead = Arc::clone(&ahead);
            async move { ahead.plan(events(2, "b")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        assert_eq!(
            *planner.calls.lock().unwrap(),
            [4],
            "planned while the stock was full"
        );
        a.stock.started();
        let b = next.await.unwrap().expect("answer");
        assert_eq!(*planner.calls.lock().unwrap(), [4, 2]);
        assert_eq!(ahead.state().stock, 2);
        drop(a);
        drop(b);
        assert_eq!(ahead.state().stock, 0, "dropped stock is given back");
    }
}
