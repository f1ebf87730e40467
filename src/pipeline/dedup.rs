//! Deduplication: queues deliver at least once, so the engine remembers which
//! findings it has remediated (and which it is remediating) behind a small
//! [`DedupStore`] trait. The in-memory store is the default; a shared store
//! lets several workers remediate each finding once.

use crate::error::Result;
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The answer to a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Claim {
    /// The key is yours until you complete or release it, or the lease runs out.
    Claimed,
    /// The key was completed recently: the finding was already remediated.
    AlreadyDone,
    /// Someone else holds a live claim on the key.
    InProgress,
}

/// A claim's answer with what the store knows besides it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimDetail {
    /// The answer.
    pub claim: Claim,
    /// For [`Claim::InProgress`] when another worker holds the claim: how
    /// long its claim lasts at most (unless renewed). The engine defers the
    /// delivery that long instead of asking again after its usual backoff
    /// (each receive may count towards the queue's redrive policy). `None`
    /// when the holder is this worker (it is about to finish) or unknown.
    pub held_for: Option<Duration>,
    /// For [`Claim::Claimed`]: the steps recorded done under this key by an
    /// earlier claim ([`DedupStore::record_step`]), in the order recorded.
    pub steps_done: Vec<String>,
}

impl ClaimDetail {
    /// An answer with nothing besides it.
    pub fn new(claim: Claim) -> Self {
        ClaimDetail {
            claim,
            held_for: None,
            steps_done: Vec::new(),
        }
    }
}

/// Remembers finding keys across deliveries.
///
/// Only [`claim`](Self::claim), [`complete`](Self::complete) and
/// [`release`](Self::release) are required. A store that also renews
/// claims ([`renews`](Self::renews)) gets short claims kept alive while the
/// work runs (so a dead worker's claims free up quickly), and one that
/// records steps ([`record_step`](Self::record_step), read back through
/// [`claim_detailed`](Self::claim_detailed)) lets a retried plan go on from
/// the first step not done.
#[async_trait]
pub trait DedupStore: Send + Sync + fmt::Debug {
    /// Claims `key` for `lease` (a crashed worker's claim expires after it).
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim>;
    /// Marks `key` done; claims within `ttl` answer [`Claim::AlreadyDone`].
    /// The steps recorded under it are forgotten.
    async fn complete(&self, key: &str, ttl: Duration) -> Result<()>;
    /// Gives up a claim without completing it (the remediation failed or was
    /// not run). The steps recorded under it are kept for the next claim.
    async fn release(&self, key: &str) -> Result<()>;

    /// [`claim`](Self::claim), with the other holder's remaining time and
    /// the steps already done. The default asks `claim` and knows nothing more.
    async fn claim_detailed(&self, key: &str, lease: Duration) -> Result<ClaimDetail> {
        self.claim(key, lease).await.map(ClaimDetail::new)
    }

    /// Whether [`renew`](Self::renew) extends claims. The engine takes
    /// short claims ([`EngineConfig::claim_lease`](crate::engine::EngineConfig::claim_lease))
    /// from a store that renews, and long ones
    /// ([`EngineConfig::dedup_lease`](crate::engine::EngineConfig::dedup_lease)) otherwise.
    fn renews(&self) -> bool {
        false
    }

    /// Extends this holder's claim on `key` to `lease` from now: `Ok(false)`
    /// when the claim is no longer this holder's (it lapsed and was taken
    /// over, or was completed). The default does nothing and says it holds.
    async fn renew(&self, key: &str, lease: Duration) -> Result<bool> {
        let _ = (key, lease);
        Ok(true)
    }

    /// Records that the step `step` (an opaque id the engine derives from
    /// the step's command) of the plan for `key` succeeded, while this holder
    /// claims it. The default records nothing.
    async fn record_step(&self, key: &str, step: &str) -> Result<()> {
        let _ = (key, step);
        Ok(())
    }

    /// Counts this store's API calls in `stats` from now on: the engine
    /// calls it with its own when it is built.
    fn attach_stats(&self, stats: &Arc<crate::telemetry::Stats>) {
        let _ = stats;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Claimed(Instant),
    Done(Instant),
}

#[derive(Debug, Default)]
struct Inner {
    /// Key → the steps recorded done under it (kept across releases,
    /// dropped at completion and with the key's entry).
    steps: HashMap<Arc<str>, Vec<String>>,
    /// Key → (state, generation of the insertion that created it).
    entries: HashMap<Arc<str>, (Entry, u64)>,
    /// Insertion order for eviction, oldest first. An item whose generation no
    /// longer matches its key's entry is stale (the key was released or
    /// re-inserted) and is skipped.
    order: VecDeque<(Arc<str>, u64)>,
    generation: u64,
}

/// An in-process [`DedupStore`] with TTLs and a bound on the number of keys
/// (oldest forgotten first), so memory stays bounded whatever the traffic.
#[derive(Debug)]
pub struct MemoryDedup {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl Default for MemoryDedup {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryDedup {
    /// A store remembering at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, inner: &mut Inner, key: &str, entry: Entry) {
        if let Some((e, _)) = inner.entries.get_mut(key) {
            *e = entry;
            return;
        }
        inner.generation += 1;
        let generation = inner.generation;
        // One allocation for the key, shared by the map and the order.
        let key: Arc<str> = Arc::from(key);
        inner.entries.insert(Arc::clone(&key), (entry, generation));
        inner.order.push_back((key, generation));
        while inner.entries.len() > self.capacity {
            let Some((old, g)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&old).is_some_and(|(_, eg)| *eg == g) {
                inner.entries.remove(&old);
                inner.steps.remove(&old);
            }
        }
        // Released keys leave stale items behind: compact before they pile up.
        if inner.order.len() > 2 * self.capacity.max(inner.entries.len()) {
            let Inner { entries, order, .. } = inner;
            order.retain(|(k, g)| entries.get(k).is_some_and(|(_, eg)| eg == g));
        }
    }

    /// How many keys are remembered (claimed or done).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn order_len(&self) -> usize {
        self.lock().order.len()
    }
}

#[async_trait]
impl DedupStore for MemoryDedup {
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim> {
        self.claim_detailed(key, lease).await.map(|d| d.claim)
    }

    async fn claim_detailed(&self, key: &str, lease: Duration) -> Result<ClaimDetail> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.entries.get(key).map(|(e, _)| *e) {
            Some(Entry::Done(until)) if until > now => Ok(ClaimDetail::new(Claim::AlreadyDone)),
            // The holder is in this process and about to finish: no
            // `held_for`, the engine asks again after its usual backoff.
            Some(Entry::Claimed(until)) if until > now => Ok(ClaimDetail::new(Claim::InProgress)),
            Some(Entry::Done(_)) => {
                // A completion that expired: a new finding, nothing done yet.
                inner.steps.remove(key);
                self.insert(&mut inner, key, Entry::Claimed(now + lease));
                Ok(ClaimDetail::new(Claim::Claimed))
            }
            _ => {
                self.insert(&mut inner, key, Entry::Claimed(now + lease));
                Ok(ClaimDetail {
                    steps_done: inner.steps.get(key).cloned().unwrap_or_default(),
                    ..ClaimDetail::new(Claim::Claimed)
                })
            }
        }
    }

    async fn complete(&self, key: &str, ttl: Duration) -> Result<()> {
        let mut inner = self.lock();
        inner.steps.remove(key);
        self.insert(&mut inner, key, Entry::Done(Instant::now() + ttl));
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<()> {
        let mut inner = self.lock();
        if let Some((Entry::Claimed(_), _)) = inner.entries.get(key) {
            inner.entries.remove(key);
            // Steps recorded under a released claim wait for the next one;
            // an abandoned key's are bounded like the keys themselves.
            if inner.steps.len() > self.capacity {
                inner.steps.clear();
            }
        }
        Ok(())
    }

    fn renews(&self) -> bool {
        true
    }

    async fn renew(&self, key: &str, lease: Duration) -> Result<bool> {
        let mut inner = self.lock();
        match inner.entries.get_mut(key) {
            Some((Entry::Claimed(until), _)) => {
                *until = Instant::now() + lease;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_step(&self, key: &str, step: &str) -> Result<()> {
        let mut inner = self.lock();
        let Some((key, _)) = inner.entries.get_key_value(key) else {
            return Ok(());
        };
        let key = Arc::clone(key);
        let steps = inner.steps.entry(key).or_default();
        if !steps.iter().any(|s| s == step) {
            steps.push(step.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claim_complete_release() {
        let d = MemoryDedup::new(10);
        let lease = Duration::from_secs(60);
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::Claimed);
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::InProgress);
        d.release("a").await.unwrap();
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::Claimed);
        d.complete("a", Duration::from_secs(60)).await.unwrap();
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::AlreadyDone);
        // release does not undo a completion
        d.release("a").await.unwrap();
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::AlreadyDone);
    }

    #[tokio::test]
    async fn expired_claims_and_completions_are_forgotten() {
        let d = MemoryDedup::new(10);
        assert_eq!(d.claim("a", Duration::ZERO).await.unwrap(), Claim::Claimed);
        assert_eq!(
            d.claim("a", Duration::from_secs(9)).await.unwrap(),
            Claim::Claimed
        );
        d.complete("b", Duration::ZERO).await.unwrap();
        assert_eq!(
            d.claim("b", Duration::from_secs(9)).await.unwrap(),
            Claim::Claimed
        );
    }

    #[tokio::test]
    async fn released_keys_do_not_accumulate() {
        let d = MemoryDedup::new(10);
        for i in 0..10_000 {
            let k = format!("k{i}");
            assert_eq!(
                d.claim(&k, Duration::from_secs(60)).await.unwrap(),
                Claim::Claimed
            );
            d.release(&k).await.unwrap();
        }
        assert!(d.is_empty());
        assert!(
            d.order_len() <= 20,
            "eviction queue grew to {}",
            d.order_len()
        );
    }

    #[tokio::test]
    async fn reinserted_key_is_not_evicted_by_its_stale_twin() {
        let d = MemoryDedup::new(2);
        let lease = Duration::from_secs(60);
        d.claim("a", lease).await.unwrap();
        d.release("a").await.unwrap();
        d.complete("b", lease).await.unwrap();
        d.complete("a", lease).await.unwrap();
        // "a" is newer than "b" now: adding "c" must evict "b", not "a".
        d.complete("c", lease).await.unwrap();
        assert_eq!(d.claim("a", lease).await.unwrap(), Claim::AlreadyDone);
        assert_eq!(d.claim("b", lease).await.unwrap(), Claim::Claimed);
    }

    #[tokio::test]
    async fn capacity_bounds_memory() {
        let d = MemoryDedup::new(3);
        for k in ["a", "b", "c", "d"] {
            d.complete(k, Duration::from_secs(60)).await.unwrap();
        }
        assert_eq!(d.len(), 3);
        assert_eq!(
            d.claim("a", Duration::from_secs(1)).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            d.claim("d", Duration::from_secs(1)).await.unwrap(),
            Claim::AlreadyDone
        );
    }
}
