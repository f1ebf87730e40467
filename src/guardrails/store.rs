//! Where guardrails keep what they count, so several workers and Lambda
//! functions obey one limit: the [`GuardrailStore`] trait and the
//! in-process [`MemoryGuardrails`] (the DynamoDB store is in `dynamodb.rs`).
//!
//! Three shapes of state, each changed by one atomic call:
//! - a **rate bucket** per key, kept as one instant (GCRA, the "theoretical
//!   arrival time"): a token is free when that instant is at most `burst`
//!   intervals ahead of now;
//! - a **sliding window** per key: the entries (with an optional member,
//!   such as a resource id) of the last `window`, admitted while fewer than
//!   `limit` are in it;
//! - a **circuit** per key: open (since when, why, until when) or absent.

use crate::error::Result;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What a sliding window said to one more entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// Counted: the window now holds `count` entries.
    Admitted {
        /// Entries in the window, this one included.
        count: u32,
    },
    /// The member is in the window already: admitted, not counted again.
    Counted,
    /// Full: `count` entries in the window, the oldest leaves in `retry_after`.
    Full {
        /// Entries in the window.
        count: u32,
        /// When the oldest entry leaves the window.
        retry_after: Duration,
    },
}

impl Window {
    /// Whether the entry was let in (counted now or before).
    pub fn admitted(&self) -> bool {
        !matches!(self, Window::Full { .. })
    }
}

/// An open circuit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Circuit {
    /// When it opened.
    pub opened_at: SystemTime,
    /// Why (`more than 20 remediations in 60s`).
    pub reason: String,
    /// When it closes by itself (a cool-down), if ever.
    pub until: Option<SystemTime>,
}

impl Circuit {
    /// A circuit opened at `opened_at` for `reason`, closing by itself at `until`.
    pub fn new(
        opened_at: SystemTime,
        reason: impl Into<String>,
        until: Option<SystemTime>,
    ) -> Self {
        Circuit {
            opened_at,
            reason: reason.into(),
            until,
        }
    }

    /// Whether it is still open at `now`.
    pub fn is_open(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// The shared state of the guardrails. Every call is one atomic change (the
/// DynamoDB store: a conditional write, retried on a lost race), so workers
/// sharing a store obey one limit.
#[async_trait]
pub trait GuardrailStore: Send + Sync + fmt::Debug {
    /// Takes a token from the bucket `key` (one every `every`, at most
    /// `burst` at once) at `now`: `None` when taken, or how long until one is free.
    async fn take(
        &self,
        key: &str,
        every: Duration,
        burst: u32,
        now: SystemTime,
    ) -> Result<Option<Duration>>;

    /// Counts one entry (`member`, or an anonymous one) in the sliding window
    /// `key` of length `window` at `now`, if fewer than `limit` are in it.
    async fn admit(
        &self,
        key: &str,
        window: Duration,
        limit: u32,
        member: Option<&str>,
        now: SystemTime,
    ) -> Result<Window>;

    /// The circuit `key`, if one was opened and not closed (it may have
    /// cooled down: see [`Circuit::is_open`]).
    async fn circuit(&self, key: &str) -> Result<Option<Circuit>>;

    /// Opens the circuit `key`; a circuit already open stays as it was.
    /// Whether this call opened it (`false`: it was open already, perhaps
    /// opened by another worker a moment before).
    async fn open(&self, key: &str, circuit: &Circuit) -> Result<bool>;

    /// Closes the circuit `key` and empties its counts (`key`'s windows), so
    /// what was held back may run; whether it was open.
    async fn close(&self, key: &str) -> Result<bool>;

    /// Every circuit opened and not closed, by key.
    async fn circuits(&self) -> Result<Vec<(String, Circuit)>>;

    /// How long a call may take and its answer still count: a rate limit
    /// spaces tokens this much further apart and gives up a token whose
    /// call took longer, so a slow answer never lets a plan start closer to
    /// the previous one than the rate allows. 10 ms unless a store says.
    fn answer_within(&self) -> Duration {
        Duration::from_millis(10)
    }
}

/// The entries of one sliding window: when each came and its member.
type Entries = VecDeque<(SystemTime, Option<String>)>;

/// A [`GuardrailStore`] in this process: limits for one worker.
#[derive(Debug, Default)]
pub struct MemoryGuardrails {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<String, SystemTime>,
    windows: HashMap<String, Entries>,
    circuits: BTreeMap<String, Circuit>,
}

impl MemoryGuardrails {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change is made whole under the lock: a panic cannot leave
        // the state half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// GCRA on one instant: `tat` is when the bucket is next empty.
pub(crate) fn gcra(
    tat: Option<SystemTime>,
    every: Duration,
    burst: u32,
    now: SystemTime,
) -> std::result::Result<SystemTime, Duration> {
    let tat = tat.filter(|t| *t > now).unwrap_or(now);
    // Up to `burst` tokens may be taken ahead: `tat` may run `burst - 1`
    // intervals ahead of now before the next token must wait.
    let ahead = every.saturating_mul(burst.max(1) - 1);
    let lead = tat.duration_since(now).unwrap_or_default();
    if lead > ahead {
        Err(lead - ahead)
    } else {
        Ok(tat + every)
    }
}

/// Drops the entries of `entries` older than `window` before `now`.
pub(crate) fn prune(entries: &mut Entries, window: Duration, now: SystemTime) {
    while entries
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() >= window)
    {
        entries.pop_front();
    }
}

/// One more entry in a pruned window.
pub(crate) fn count(
    entries: &mut Entries,
    window: Duration,
    limit: u32,
    member: Option<&str>,
    now: SystemTime,
) -> Window {
    if let Some(m) = member {
        if entries.iter().any(|(_, e)| e.as_deref() == Some(m)) {
            return Window::Counted;
        }
    }
    let held = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    if held >= limit {
        let oldest = entries.front().map_or(now, |(t, _)| *t);
        let leaves = (oldest + window).duration_since(now).unwrap_or_default();
        return Window::Full {
            count: held,
            retry_after: leaves,
        };
    }
    entries.push_back((now, member.map(str::to_owned)));
    Window::Admitted { count: held + 1 }
}

#[async_trait]
impl GuardrailStore for MemoryGuardrails {
    async fn take(
        &self,
        key: &str,
        every: Duration,
        burst: u32,
        now: SystemTime,
    ) -> Result<Option<Duration>> {
        let mut state = self.lock();
        let tat = state.buckets.get(key).copied();
        match gcra(tat, every, burst, now) {
            Ok(next) => {
                state.buckets.insert(key.to_owned(), next);
                Ok(None)
            }
            Err(wait) => Ok(Some(wait)),
        }
    }

    async fn admit(
        &self,
        key: &str,
        window: Duration,
        limit: u32,
        member: Option<&str>,
        now: SystemTime,
    ) -> Result<Window> {
        let mut state = self.lock();
        let entries = state.windows.entry(key.to_owned()).or_default();
        prune(entries, window, now);
        Ok(count(entries, window, limit, member, now))
    }

    async fn circuit(&self, key: &str) -> Result<Option<Circuit>> {
        Ok(self.lock().circuits.get(key).cloned())
    }

    async fn open(&self, key: &str, circuit: &Circuit) -> Result<bool> {
        let mut state = self.lock();
        if state.circuits.contains_key(key) {
            return Ok(false);
        }
        state.circuits.insert(key.to_owned(), circuit.clone());
        Ok(true)
    }

    async fn close(&self, key: &str) -> Result<bool> {
        let mut state = self.lock();
        let prefix = format!("{key}#");
        state.windows.retain(|k, _| !k.starts_with(&prefix));
        Ok(state.circuits.remove(key).is_some())
    }

    async fn circuits(&self) -> Result<Vec<(String, Circuit)>> {
        Ok(self
            .lock()
            .circuits
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect())
    }
}

// The store semantics (buckets, windows, circuits) are tested against the
// memory and the DynamoDB store alike: tests/support/store_semantics.rs.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circuit_with_an_end_cools_down_then() {
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms);
        let cooling = Circuit::new(at(0), "c", Some(at(1_000)));
        assert!(cooling.is_open(at(999)));
        assert!(!cooling.is_open(at(1_000)));
        assert!(Circuit::new(at(0), "held", None).is_open(at(u64::from(u32::MAX))));
    }
}
