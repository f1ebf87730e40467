//! [`StatsSlot`]: where a component counts — its own [`Stats`] until the
//! engine it is built into hands it the engine's, so a user wires `Stats`
//! once.

use super::{ApiCall, Stats};
use std::sync::{Arc, OnceLock};

/// A component's counters: its own until [attached](Self::attach) to the
/// engine's. Calls counted before (a queue URL looked up while building)
/// move over when it is attached.
#[derive(Debug, Default)]
// Only the cloud backends count API calls.
#[cfg_attr(not(cloud_backend), allow(dead_code))]
pub(crate) struct StatsSlot {
    own: Arc<Stats>,
    attached: OnceLock<Arc<Stats>>,
}

#[cfg_attr(not(cloud_backend), allow(dead_code))]
impl StatsSlot {
    /// A slot counting into `stats` from the start (a builder's
    /// `with_stats`), or into its own counters when `None`.
    pub(crate) fn new(stats: Option<Arc<Stats>>) -> Self {
        let slot = StatsSlot::default();
        if let Some(stats) = stats {
            slot.attach(&stats);
        }
        slot
    }

    /// The counters to count in now.
    pub(crate) fn get(&self) -> &Arc<Stats> {
        self.attached.get().unwrap_or(&self.own)
    }

    /// Counts into `stats` from now on, with what was counted so far. The
    /// first attachment wins: a component shared by two engines counts in
    /// the first one's.
    pub(crate) fn attach(&self, stats: &Arc<Stats>) {
        if self.attached.set(Arc::clone(stats)).is_ok() && !Arc::ptr_eq(&self.own, stats) {
            for &kind in &ApiCall::ALL {
                let n = self.own.api_calls(kind);
                for _ in 0..n {
                    stats.count_api_call(kind);
                }
            }
        }
    }

    /// Counts one call of `kind`.
    pub(crate) fn count_api_call(&self, kind: ApiCall) {
        self.get().count_api_call(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_counted_before_attaching_move_to_the_engines_stats() {
        let slot = StatsSlot::new(None);
        slot.count_api_call(ApiCall::SqsGetQueueUrl);
        let engine = Arc::new(Stats::new());
        slot.attach(&engine);
        slot.count_api_call(ApiCall::SqsReceiveMessage);
        assert_eq!(engine.api_calls(ApiCall::SqsGetQueueUrl), 1);
        assert_eq!(engine.api_calls(ApiCall::SqsReceiveMessage), 1);
        let other = Arc::new(Stats::new());
        slot.attach(&other);
        slot.count_api_call(ApiCall::SqsReceiveMessage);
        assert_eq!(engine.api_calls(ApiCall::SqsReceiveMessage), 2);
        assert_eq!(other.api_calls(ApiCall::SqsReceiveMessage), 0);
    }
}
