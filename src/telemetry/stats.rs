//! Counters for everything the engine decides and every settle and cloud API
//! call it makes, readable while the worker runs and printed as a summary.

use super::ApiCall;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters. Cheap to update from many tasks.
///
/// Each counter is striped over a few cache-line-sized shards, and a thread
/// updates the shard it was given: worker threads counting every delivery
/// do not pass one cache line back and forth. Reading sums the shards.
#[derive(Default)]
pub struct Stats {
    shards: [Shard; SHARDS],
    api_calls: [AtomicU64; ApiCall::ALL.len()],
    /// Deliveries by reason code, for every decision but `executed` and
    /// `planned` (the guardrails' `rate_limited`, `circuit_open`...).
    reasons: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// Stripes per counter; threads beyond it share.
const SHARDS: usize = 8;
/// The number of [`Counter`]s (the last one declared, plus one).
const COUNTERS: usize = Counter::ReceiveErrors as usize + 1;

/// One stripe of every counter, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Shard([AtomicU64; COUNTERS]);

/// The shard of the calling thread, handed out round-robin.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Counter {
    /// A delivery was received.
    Received,
    /// A delivery's plan ran to the end.
    Executed,
    /// Dry run: a delivery's plan would have run.
    Planned,
    /// A delivery was deliberately skipped.
    Skipped,
    /// A delivery's plan failed (it will be retried or dead-lettered).
    Failed,
    /// A delivery was refused (undecodable, unsafe command, unmapped account).
    Rejected,
    /// A delivery was dead-lettered.
    DeadLettered,
    /// A delivery was acked.
    Acked,
    /// A delivery was nacked.
    Nacked,
    /// A lease was extended.
    Extended,
    /// A settle call failed.
    SettleErrors,
    /// A step was started.
    StepsRun,
    /// A step failed.
    StepsFailed,
    /// A delivery was deferred by a stage.
    Deferred,
    /// A plan was made and checked in shadow mode, not run.
    Shadow,
    /// An audit record could not be written (its delivery was not settled
    /// destructively).
    AuditErrors,
    /// A receive call failed.
    // Last: `COUNTERS` counts up to it.
    ReceiveErrors,
}

impl Stats {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter's place in a shard: its declaration order.
    fn slot(c: Counter) -> usize {
        c as usize
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(&self, c: Counter, n: u64) {
        self.shards[shard_index()].0[Self::slot(c)].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub(crate) fn incr(&self, c: Counter) {
        self.add(c, 1);
    }

    /// The current value of a counter.
    pub fn get(&self, c: Counter) -> u64 {
        let slot = Self::slot(c);
        self.shards.iter().fold(0u64, |sum, s| {
            sum.wrapping_add(s.0[slot].load(Ordering::Relaxed))
        })
    }

    /// Counts one cloud API call of `kind`.
    #[cfg_attr(not(cloud_backend), allow(dead_code))]
    pub(crate) fn count_api_call(&self, kind: ApiCall) {
        self.api_calls[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many calls of `kind` were counted.
    pub fn api_calls(&self, kind: ApiCall) -> u64 {
        self.api_calls[kind as usize].load(Ordering::Relaxed)
    }

    /// Counts one delivery settled with reason `code`.
    pub(crate) fn count_reason(&self, code: &str) {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        match reasons.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                reasons.insert(code.to_owned(), 1);
            }
        }
    }

    /// How many deliveries were settled with reason `code` (any decision
    /// but `executed` and `planned`).
    pub fn reason(&self, code: &str) -> u64 {
        let reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        reasons.get(code).copied().unwrap_or(0)
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> Summary {
        Summary {
            received: self.get(Counter::Received),
            executed: self.get(Counter::Executed),
            planned: self.get(Counter::Planned),
            skipped: self.get(Counter::Skipped),
            failed: self.get(Counter::Failed),
            rejected: self.get(Counter::Rejected),
            dead_lettered: self.get(Counter::DeadLettered),
            deferred: self.get(Counter::Deferred),
            shadow: self.get(Counter::Shadow),
            audit_errors: self.get(Counter::AuditErrors),
            acked: self.get(Counter::Acked),
            nacked: self.get(Counter::Nacked),
            extended: self.get(Counter::Extended),
            settle_errors: self.get(Counter::SettleErrors),
            steps_run: self.get(Counter::StepsRun),
            steps_failed: self.get(Counter::StepsFailed),
            receive_errors: self.get(Counter::ReceiveErrors),
            reasons: self
                .reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            api_calls: ApiCall::ALL
                .iter()
                .filter_map(|&kind| {
                    let n = self.api_calls(kind);
                    (n > 0).then(|| (kind.as_str().to_owned(), n))
                })
                .collect(),
        }
    }
}

/// A snapshot of the counters. Serializes with the decision counts first, in
/// the order the worker's `--summary json` line promises.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Deliveries received.
    pub received: u64,
    /// Deliveries whose plan ran to the end.
    pub executed: u64,
    /// Dry run: deliveries whose plan would have run.
    pub planned: u64,
    /// Deliveries deliberately skipped.
    pub skipped: u64,
    /// Deliveries whose plan failed.
    pub failed: u64,
    /// Deliveries refused.
    pub rejected: u64,
    /// Deliveries dead-lettered.
    pub dead_lettered: u64,
    /// Deliveries deferred by a stage (written only when some were).
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: u64,
    /// Plans made and checked in shadow mode, not run (written only when
    /// some were).
    #[serde(skip_serializing_if = "is_zero")]
    pub shadow: u64,
    /// Audit records that could not be written (written only when some
    /// could not).
    #[serde(skip_serializing_if = "is_zero")]
    pub audit_errors: u64,
    /// Deliveries acked.
    #[serde(skip)]
    pub acked: u64,
    /// Deliveries nacked.
    #[serde(skip)]
    pub nacked: u64,
    /// Lease extensions.
    #[serde(skip)]
    pub extended: u64,
    /// Failed settle calls.
    #[serde(skip)]
    pub settle_errors: u64,
    /// Steps started.
    #[serde(skip)]
    pub steps_run: u64,
    /// Steps failed.
    #[serde(skip)]
    pub steps_failed: u64,
    /// Failed receive calls.
    #[serde(skip)]
    pub receive_errors: u64,
    /// Cloud API calls by kind ([`ApiCall::as_str`]), the kinds never
    /// called left out.
    #[serde(skip)]
    pub api_calls: BTreeMap<String, u64>,
    /// Deliveries by reason code, for every decision but `executed` and
    /// `planned`: in the detailed summary only, so the summary line keeps
    /// its documented shape.
    #[serde(skip)]
    pub reasons: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One line of decision counts, then the API calls made if any:
/// `received 12 executed 10 planned 0 skipped 1 failed 0 rejected 1
/// dead_lettered 1; api calls sqs.ReceiveMessage=3 sqs.DeleteMessageBatch=2`.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} executed {} planned {} skipped {} failed {} rejected {} dead_lettered {}",
            self.received,
            self.executed,
            self.planned,
            self.skipped,
            self.failed,
            self.rejected,
            self.dead_lettered
        )?;
        // Stage decisions, only when some were made.
        if self.deferred > 0 {
            write!(f, " deferred {}", self.deferred)?;
        }
        if self.shadow > 0 {
            write!(f, " shadow {}", self.shadow)?;
        }
        for (i, (kind, n)) in self.api_calls.iter().enumerate() {
            f.write_str(if i == 0 { "; api calls " } else { " " })?;
            write!(f, "{kind}={n}")?;
        }
        Ok(())
    }
}

impl Summary {
    /// How many calls of `kind` were counted.
    pub fn api_calls(&self, kind: ApiCall) -> u64 {
        self.api_calls.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// Every counter as a JSON object (the decision counts, then the rest).
    pub fn to_detailed_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("acked".into(), self.acked.into());
            o.insert("nacked".into(), self.nacked.into());
            o.insert("extended".into(), self.extended.into());
            o.insert("settle_errors".into(), self.settle_errors.into());
            o.insert("steps_run".into(), self.steps_run.into());
            o.insert("steps_failed".into(), self.steps_failed.into());
            o.insert("receive_errors".into(), self.receive_errors.into());
            o.insert(
                "api_calls".into(),
                serde_json::to_value(&self.api_calls).unwrap_or_default(),
            );
            o.insert(
                "reasons".into(),
                serde_json::to_value(&self.reasons).unwrap_or_default(),
            );
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let stats = Stats::new();
        std::thread::scope(|s| {
            for t in 0..(SHARDS as u64 + 3) {
                let stats = &stats;
                s.spawn(move || {
                    for _ in 0..1000 {
                        stats.incr(Counter::Acked);
                    }
                    stats.add(Counter::StepsRun, t);
                });
            }
        });
        stats.incr(Counter::Received);
        let summary = stats.snapshot();
        assert_eq!(summary.acked, (SHARDS as u64 + 3) * 1000);
        assert_eq!(summary.steps_run, (0..SHARDS as u64 + 3).sum::<u64>());
        assert_eq!(summary.received, 1);
        assert_eq!(summary.nacked, 0);
    }
}
