//! A byte budget for read-ahead: a reader thread takes a body's size from the
//! budget before handing the body on, and gets it back when the delivery
//! holding it is dropped (settled, or released unhandled). So what a source
//! has read and not yet seen settled is bounded in bytes, not only in count —
//! a small gzip file can expand to records of 16 MiB each.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

/// Bytes that may be read ahead and in flight at once.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

impl ByteBudget {
    /// A budget of `max` bytes (at least 1).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(ByteBudget {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// Takes `n` bytes, blocking the (reader) thread until they fit. A body
    /// larger than the whole budget waits until nothing else is held, then
    /// goes alone: it is never refused, only read when nothing else is.
    pub(crate) fn take(self: &Arc<Self>, n: usize) -> BudgetGuard {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && used.saturating_add(n) > self.max {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += n;
        BudgetGuard {
            budget: Arc::clone(self),
            n,
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `n` bytes of a [`ByteBudget`], given back when dropped.
pub(crate) struct BudgetGuard {
    budget: Arc<ByteBudget>,
    n: usize,
}

impl fmt::Debug for BudgetGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetGuard")
            .field("bytes", &self.n)
            .finish()
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.n);
        drop(used);
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn takes_block_until_bytes_are_given_back_and_oversize_goes_alone() {
        let budget = ByteBudget::new(10);
        let a = budget.take(6);
        let b = budget.take(4);
        assert_eq!(budget.used(), 10);
        let taken = Arc::new(AtomicBool::new(false));
        let (budget2, taken2) = (Arc::clone(&budget), Arc::clone(&taken));
        let waiter = std::thread::spawn(move || {
            // 25 > 10: waits until nothing else is held.
            let big = budget2.take(25);
            taken2.store(true, Ordering::SeqCst);
            drop(big);
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !taken.load(Ordering::SeqCst),
            "blocked while bytes are held"
        );
        drop(a);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!taken.load(Ordering::SeqCst), "still 4 bytes held");
        drop(b);
        waiter.join().unwrap();
        assert!(taken.load(Ordering::SeqCst));
        assert_eq!(budget.used(), 0);
    }
}
