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

/// Remembers finding keys across deliveries.
#[async_trait]
pub trait DedupStore: Send + Sync + fmt::Debug {
    /// Claims `key` for `lease` (a crashed worker's claim expires after it).
    async fn claim(&self, key: &str, lease: Duration) -> Result<Claim>;
    /// Marks `key` done; claims within `ttl` answer [`Claim::AlreadyDone`].
    async fn complete(&self, key: &str, ttl: Duration) -> Result<()>;
    /// Gives up a claim without completing it (the remediation failed or was not run).
    async fn release(&self, key: &str) -> Result<()>;

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
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.entries.get(key).map(|(e, _)| *e) {
            Some(Entry::Done(until)) if until > now => Ok(Claim::AlreadyDone),
            Some(Entry::Claimed(until)) if until > now => Ok(Claim::InProgress),
            _ => {
                self.insert(&mut inner, key, Entry::Claimed(now + lease));
                Ok(Claim::Claimed)
            }
        }
    }

    async fn complete(&self, key: &str, ttl: Duration) -> Result<()> {
        let mut inner = self.lock();
        self.insert(&mut inner, key, Entry::Done(Instant::now() + ttl));
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<()> {
        let mut inner = self.lock();
        if let Some((Entry::Claimed(_), _)) = inner.entries.get(key) {
            inner.entries.remove(key);
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
